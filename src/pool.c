/* pool.c — pools, their idle lists and wait queues, and the registry of
 * pools. Every figure a pool reports is changed here, under its lock, in the
 * same step that moves the object it counts. */
#include "pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "log.h"
#include "runtime.h"
#include "server.h"
#include "util/clock.h"
#include "worker.h"

static pthread_mutex_t registry_lock =
    PTHREAD_MUTEX_INITIALIZER; /* guards the three lists; taken before a pool's lock */

/* Databases paused by PAUSE or KILL; guarded by registry_lock. */
static struct {
	char **names;
	int n;
	bool all;
} paused;

static bool db_paused_locked(const char *db)
{
	if (paused.all)
		return true;
	for (int i = 0; i < paused.n; i++)
		if (strcmp(paused.names[i], db) == 0)
			return true;
	return false;
}

static struct list pools = LIST_INIT(pools);
static struct list db_limits = LIST_INIT(db_limits);
static struct list user_limits = LIST_INIT(user_limits);

static struct pool_limit *limit_get(struct list *head, const char *name)
{
	struct list *it;
	list_for_each(it, head)
	{
		struct pool_limit *l = container_of(it, struct pool_limit, node);
		if (strcmp(l->name, name) == 0)
			return l;
	}
	struct pool_limit *l = calloc(1, sizeof(*l));
	if (l == NULL || (l->name = strdup(name)) == NULL) {
		free(l);
		return NULL;
	}
	atomic_init(&l->used, 0);
	list_add_tail(head, &l->node);
	return l;
}

static void settings_free(struct pool_settings *s)
{
	if (s == NULL)
		return;
	free(s->hosts);
	free(s->dbname);
	free(s->server_user);
	free(s->password);
	free(s->application_name);
	free(s);
}

/* Everything a pool's servers need, resolved from one configuration. */
static struct pool_settings *settings_build(const struct config *cfg, const char *db_name,
                                            const char *user_name)
{
	const struct db_config *db = config_find_db(cfg, db_name);
	const struct user_config *u = config_find_user(cfg, user_name);
	struct pool_settings *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	if (db == NULL) {
		s->removed = true;
		s->pool_size = cfg->default_pool_size;
		s->mode = cfg->pool_mode;
		s->connect_concurrency = cfg->server_connect_concurrency;
		return s;
	}
	s->hosts = str_dup(db->host);
	s->port = db->port > 0 ? db->port : 5432;
	s->dbname = str_dup(db->dbname != NULL ? db->dbname : db_name);
	s->server_user = str_dup(db->user != NULL ? db->user : user_name);
	s->application_name = str_dup(db->application_name);
	s->pool_size = config_effective_pool_size(cfg, db, u);
	s->min_pool_size = config_effective_min_pool_size(cfg, db);
	s->max_db_connections = config_effective_max_db_connections(cfg, db);
	s->max_user_connections = config_effective_max_user_connections(cfg, u);
	s->connect_concurrency = cfg->server_connect_concurrency > 0 ? cfg->server_connect_concurrency : 1;
	s->max_waiting = cfg->max_waiting_clients;
	s->check_delay = cfg->server_check_query != NULL && cfg->server_check_query[0] != '\0'
	                     ? (int64_t)cfg->server_check_delay
	                     : -1;
	s->reserve_size = db->reserve_pool >= 0 ? db->reserve_pool : cfg->reserve_pool_size;
	s->reserve_timeout = (int64_t)cfg->reserve_pool_timeout;
	s->login_retry = cfg->server_login_retry > 250000 ? (int64_t)cfg->server_login_retry : 250000;
	s->mode = config_effective_pool_mode(cfg, db, u);
	s->read_only = db->read_only;
	if (db->password != NULL) {
		s->password = strdup(db->password);
	} else {
		/* The auth_file secret of the user we log in as, when there is one. */
		struct cfg_gen *g = runtime_gen_acquire();
		const char *secret =
		    g != NULL && g->users != NULL ? userlist_find(g->users, s->server_user) : NULL;
		s->password = str_dup(secret);
		runtime_gen_release(g);
	}
	return s;
}

struct pool *pool_get(const struct config *cfg, const char *db_name, const char *user_name,
                      const struct params *guc)
{
	char *key = params_canonical(guc);
	if (key == NULL)
		return NULL;
	pthread_mutex_lock(&registry_lock);
	struct list *it;
	list_for_each(it, &pools)
	{
		struct pool *p = container_of(it, struct pool, node);
		if (strcmp(p->db_name, db_name) == 0 && strcmp(p->user_name, user_name) == 0 &&
		    strcmp(p->params_key, key) == 0) {
			pthread_mutex_unlock(&registry_lock);
			free(key);
			return p;
		}
	}
	struct pool *p = calloc(1, sizeof(*p));
	if (p == NULL)
		goto fail;
	pthread_mutex_init(&p->lock, NULL);
	if (!stats_init(&p->stats, rt.n_workers))
		goto fail;
	list_init(&p->idle);
	list_init(&p->waiters);
	list_init(&p->node);
	p->params_key = key;
	key = NULL;
	p->db_name = strdup(db_name);
	p->user_name = strdup(user_name);
	p->name = str_printf("%s/%s", user_name, db_name);
	p->set = settings_build(cfg, db_name, user_name);
	p->db_limit = limit_get(&db_limits, db_name);
	p->user_limit = limit_get(&user_limits, user_name);
	if (p->db_name == NULL || p->user_name == NULL || p->name == NULL || p->set == NULL ||
	    p->db_limit == NULL || p->user_limit == NULL || !params_copy(&p->guc, guc))
		goto fail;
	atomic_init(&p->mode, (int)p->set->mode);
	p->paused = db_paused_locked(db_name);
	atomic_store(&p->stats.period_start_usec, clock_now_usec());
	atomic_init(&p->max_waiting, p->set->max_waiting);
	list_add_tail(&pools, &p->node);
	log_msg(LOG_INFO, "pool %s created (mode=%s pool_size=%d)", p->name,
	        config_pool_mode_name(p->set->mode), p->set->pool_size);
	pthread_mutex_unlock(&registry_lock);
	return p;
fail:
	pthread_mutex_unlock(&registry_lock);
	free(key);
	if (p != NULL) {
		settings_free(p->set);
		free(p->db_name);
		free(p->user_name);
		free(p->name);
		free(p->params_key);
		params_clear(&p->guc);
		stats_free(&p->stats);
		free(p);
	}
	return NULL;
}

void pool_prewarm(const struct config *cfg)
{
	struct params none = PARAMS_INIT;
	for (int i = 0; i < cfg->n_dbs; i++) {
		const struct db_config *db = &cfg->dbs[i];
		if (db->user != NULL && config_effective_min_pool_size(cfg, db) > 0 &&
		    pool_get(cfg, db->name, db->user, &none) == NULL)
			log_msg(LOG_WARNING, "pool %s/%s: cannot create it ahead of clients (out of memory)",
			        db->user, db->name);
	}
}

void pool_reconfigure_all(const struct config *cfg)
{
	pthread_mutex_lock(&registry_lock);
	struct list *it;
	list_for_each(it, &pools)
	{
		struct pool *p = container_of(it, struct pool, node);
		struct pool_settings *s = settings_build(cfg, p->db_name, p->user_name);
		if (s == NULL)
			continue;
		pthread_mutex_lock(&p->lock);
		struct pool_settings *old = p->set;
		p->set = s;
		atomic_store(&p->mode, (int)s->mode);
		atomic_store(&p->max_waiting, s->max_waiting);
		pthread_mutex_unlock(&p->lock);
		settings_free(old);
	}
	pthread_mutex_unlock(&registry_lock);
}

/* Under lock: may one more server be opened? Counts it if so. */
/* Count one more connection to open, if the pool's size (or cap), the
 * connect pacing, the login backoff and the shared limits allow it. */
static bool reserve_launch_upto(struct pool *p, int cap)
{
	struct pool_settings *s = p->set;
	if (s->removed || p->paused || p->n_servers >= cap || p->n_connecting >= s->connect_concurrency)
		return false;
	if (p->retry_at > 0 && clock_now_usec() < p->retry_at)
		return false; /* server_login_retry: the server failed us a moment ago */
	if (s->max_db_connections > 0 && atomic_fetch_add(&p->db_limit->used, 1) >= s->max_db_connections) {
		atomic_fetch_sub(&p->db_limit->used, 1);
		return false;
	}
	if (s->max_db_connections <= 0)
		atomic_fetch_add(&p->db_limit->used, 1);
	if (s->max_user_connections > 0 &&
	    atomic_fetch_add(&p->user_limit->used, 1) >= s->max_user_connections) {
		atomic_fetch_sub(&p->user_limit->used, 1);
		atomic_fetch_sub(&p->db_limit->used, 1);
		return false;
	}
	if (s->max_user_connections <= 0)
		atomic_fetch_add(&p->user_limit->used, 1);
	p->n_servers++;
	p->n_connecting++;
	return true;
}

static bool reserve_launch(struct pool *p)
{
	return reserve_launch_upto(p, p->set->pool_size);
}

static void link_pair(struct client *cl, struct server *s)
{
	cl->server = s;
	s->client = cl;
}

/* Under p->lock: cl has just been linked to a server. */
static void note_assignment(struct pool *p, struct client *cl)
{
	/* Both instants may come from callback-start readings on two threads
	 * (clock_event_usec), each early by up to its callback's length: the
	 * difference may come out below 0, and counts as 0. */
	int64_t waited = cl->wait_started > 0 ? clock_event_usec() - cl->wait_started : 0;
	if (waited < 0)
		waited = 0;
	stats_add(&p->stats, ST_ASSIGN, 1);
	stats_add(&p->stats, ST_WAIT_USEC, (uint64_t)waited);
	stats_observe(&p->stats, SH_WAIT, waited);
	stats_note_max(&p->stats.wait_max_usec, waited);
}

/* Under p->lock: the first waiter leaves the queue linked to s. */
static struct client *link_waiter(struct pool *p, struct client *cl, struct server *s)
{
	list_del(&cl->wait_node);
	cl->queued = false;
	p->n_waiting--;
	server_set_state(s, SV_ACTIVE);
	link_pair(cl, s);
	note_assignment(p, cl);
	return cl;
}

static struct client *link_head_waiter(struct pool *p, struct server *s)
{
	return link_waiter(p, container_of(p->waiters.next, struct client, wait_node), s);
}

/* Waiters that queued within this long (0.25 ms) of the longest waiter count as
 * arriving together. */
#define SIMULTANEOUS_USEC 250

/* Under p->lock, waiters not empty: who gets a server that worker w returns.
 * The longest waiter, unless one that arrived together with it lives on w:
 * that one takes the server with no hand-off to another thread (a message,
 * a wake-up and moving the server's events). Under load most releases find
 * one, so the queue stays first come, first served to within 0.25 ms. */
static struct client *pick_waiter(struct pool *p, struct worker *w)
{
	struct client *head = container_of(p->waiters.next, struct client, wait_node);
	if (head->worker == w)
		return head;
	int scanned = 0;
	for (struct list *it = head->wait_node.next; it != &p->waiters && scanned < 8;
	     it = it->next, scanned++) {
		struct client *cl = container_of(it, struct client, wait_node);
		if (cl->wait_started - head->wait_started > SIMULTANEOUS_USEC)
			break;
		if (cl->worker == w)
			return cl;
	}
	return head;
}

void pool_connect_succeeded(struct pool *p)
{
	pthread_mutex_lock(&p->lock);
	p->n_connecting--;
	p->connect_failures_in_row = 0;
	p->retry_at = 0;
	free(p->last_connect_error);
	p->last_connect_error = NULL;
	pthread_mutex_unlock(&p->lock);
}

/* Whether idle server s must pass server_check_query before use. now is
 * the start of the caller's callback (clock_event_usec) and idle_since that
 * of another worker's, so the difference may be slightly negative: a delay
 * of 0 means every time, whatever the difference. */
static bool idle_too_long(const struct server *s, int64_t delay, int64_t now)
{
	return delay == 0 || (delay > 0 && now - s->idle_since > delay);
}

enum pool_checkout_result pool_checkout(struct pool *p, struct client *cl, struct worker *w,
                                        struct server **out)
{
	enum pool_checkout_result r = POOL_WAIT;
	*out = NULL;
	pthread_mutex_lock(&p->lock);
	int64_t now = clock_event_usec();
	int64_t delay = p->set->check_delay;
	/* Idle servers are kept most recent first: the head is the freshest. */
	/* Waiters that only wait for a server being checked do not hold the
	 * others back: with them alone in the queue, an idle server is handed
	 * out at once. Otherwise the queue, once started by a check, would feed
	 * itself while idle servers sat unused. */
	if (!list_empty(&p->idle) && p->n_waiting <= p->n_testing && !p->paused) {
		/* Prefer a fresh server already on this worker: no cross-thread event move. */
		struct server *pick = NULL;
		int scanned = 0;
		struct list *it;
		list_for_each(it, &p->idle)
		{
			struct server *s = container_of(it, struct server, pool_node);
			if (pick == NULL)
				pick = s;
			if (s->worker == w && !idle_too_long(s, delay, now)) {
				pick = s;
				break;
			}
			if (++scanned >= 8)
				break;
		}
		list_del(&pick->pool_node);
		p->n_idle--;
		if (idle_too_long(pick, delay, now)) {
			/* Idle too long to trust: the client queues while it is checked;
			 * whichever server is ready first serves it. */
			server_set_state(pick, SV_TESTING);
			p->n_testing++;
			list_add_tail(&p->waiters, &cl->wait_node);
			cl->queued = true;
			p->n_waiting++;
			*out = pick;
			pthread_mutex_unlock(&p->lock);
			return POOL_WAIT_CHECK;
		}
		server_set_state(pick, SV_ACTIVE);
		link_pair(cl, pick);
		note_assignment(p, cl);
		*out = pick;
		pthread_mutex_unlock(&p->lock);
		return POOL_GOT_SERVER;
	}
	if (p->n_servers == 0 && p->retry_at > 0 && now < p->retry_at && !p->paused) {
		/* Nothing to wait for: the server failed us a moment ago. */
		pthread_mutex_unlock(&p->lock);
		return POOL_UNREACHABLE;
	}
	if (p->set->max_waiting > 0 && p->n_waiting >= p->set->max_waiting) {
		stats_add(&p->stats, ST_REFUSED_QUEUE, 1);
		pthread_mutex_unlock(&p->lock);
		return POOL_REFUSED;
	}
	list_add_tail(&p->waiters, &cl->wait_node);
	cl->queued = true;
	p->n_waiting++;
	if (reserve_launch(p))
		r = POOL_WAIT_LAUNCH;
	pthread_mutex_unlock(&p->lock);
	return r;
}

struct client *pool_give(struct pool *p, struct server *s, struct worker *w, bool *close_it)
{
	struct client *cl = NULL;
	*close_it = false;
	pthread_mutex_lock(&p->lock);
	if (s->state == SV_TESTING)
		p->n_testing--;
	/* Above the size (reserve connections, a smaller size after a reload),
	 * a server still serves the queue, and is closed once nobody waits. */
	bool surplus = p->n_servers > p->set->pool_size && (list_empty(&p->waiters) || p->paused);
	if (surplus || p->set->removed || s->epoch != atomic_load(&p->epoch)) {
		*close_it = true;
	} else if (!list_empty(&p->waiters) && !p->paused) {
		cl = link_waiter(p, pick_waiter(p, w), s);
		if (cl->worker != w)
			cl->handoffs_pending++;
	} else {
		server_set_state(s, SV_IDLE);
		s->idle_since = clock_event_usec();
		/* Armed before the server becomes visible on the idle list, so no
		 * other thread can take it while its watch is half set up. */
		server_arm_idle_watch(s, w);
		list_add_head(&p->idle, &s->pool_node);
		p->n_idle++;
	}
	pthread_mutex_unlock(&p->lock);
	return cl;
}

bool pool_leave_queue(struct pool *p, struct client *cl)
{
	bool left = false;
	pthread_mutex_lock(&p->lock);
	if (cl->queued) {
		list_del(&cl->wait_node);
		cl->queued = false;
		p->n_waiting--;
		left = true;
	}
	pthread_mutex_unlock(&p->lock);
	return left;
}

int pool_handoffs_pending(struct pool *p, struct client *cl, int delta)
{
	pthread_mutex_lock(&p->lock);
	cl->handoffs_pending += delta;
	int n = cl->handoffs_pending;
	pthread_mutex_unlock(&p->lock);
	return n;
}

static void count_out(struct pool *p)
{
	p->n_servers--;
	atomic_fetch_sub(&p->db_limit->used, 1);
	atomic_fetch_sub(&p->user_limit->used, 1);
}

bool pool_server_closed(struct pool *p, struct server *s)
{
	pthread_mutex_lock(&p->lock);
	if (s->state == SV_CONNECTING || s->state == SV_LOGIN)
		p->n_connecting--;
	if (s->state == SV_TESTING)
		p->n_testing--;
	if (list_linked(&s->pool_node)) {
		list_del(&s->pool_node);
		p->n_idle--;
	}
	count_out(p);
	bool launch = !list_empty(&p->waiters) && reserve_launch(p);
	pthread_mutex_unlock(&p->lock);
	return launch;
}

bool pool_connect_failed(struct pool *p, struct server *s, const char *why, struct list *failed)
{
	stats_add(&p->stats, ST_CONNECT_FAIL, 1);
	pthread_mutex_lock(&p->lock);
	p->n_connecting--;
	p->connect_failures_in_row++;
	/* Back off before trying again: 250 ms doubling up to server_login_retry,
	 * so a server coming back is found within seconds and a server that is
	 * down is not hammered. */
	int64_t backoff = 250000;
	for (int i = 1; i < p->connect_failures_in_row && backoff < p->set->login_retry; i++)
		backoff *= 2;
	if (backoff > p->set->login_retry)
		backoff = p->set->login_retry;
	p->retry_at = clock_now_usec() + backoff;
	if (why != NULL) {
		char *copy = str_dup(why);
		if (copy != NULL) {
			free(p->last_connect_error);
			p->last_connect_error = copy;
		}
	}
	count_out(p);
	/* With no server left there is nothing to wait for: fail everyone now
	 * with the server's own reason instead of letting them time out. */
	if (p->n_servers == 0) {
		struct list *n;
		while ((n = list_pop_head(&p->waiters)) != NULL) {
			struct client *cl = container_of(n, struct client, wait_node);
			cl->queued = false;
			cl->handoffs_pending++;
			p->n_waiting--;
			list_add_tail(failed, &cl->wait_node);
		}
	}
	pthread_mutex_unlock(&p->lock);
	(void)s;
	return false;
}

void pool_figures(struct pool *p, int64_t now_usec, struct pool_figures *f)
{
	memset(f, 0, sizeof(*f));
	f->cl_active = stats_gauge(&p->stats, SG_CLIENTS, CL_ACTIVE);
	f->cl_idle = stats_gauge(&p->stats, SG_CLIENTS, CL_IDLE);
	f->sv_active = stats_gauge(&p->stats, SG_SERVERS, SV_ACTIVE);
	f->sv_used = stats_gauge(&p->stats, SG_SERVERS, SV_RESET);
	f->sv_tested = stats_gauge(&p->stats, SG_SERVERS, SV_TESTING);
	f->sv_login =
	    stats_gauge(&p->stats, SG_SERVERS, SV_CONNECTING) + stats_gauge(&p->stats, SG_SERVERS, SV_LOGIN);
	f->mode = pool_mode_of(p);
	pthread_mutex_lock(&p->lock);
	f->paused = p->paused;
	f->cl_waiting = p->n_waiting;
	f->sv_idle = p->n_idle;
	f->pool_size = p->set->pool_size;
	if (!list_empty(&p->waiters)) {
		const struct client *head = container_of(p->waiters.next, struct client, wait_node);
		if (head->wait_started > 0)
			f->maxwait_usec = now_usec - head->wait_started;
	}
	f->connect_failures_in_row = p->connect_failures_in_row;
	snprintf(f->last_error, sizeof(f->last_error), "%s",
	         p->last_connect_error ? p->last_connect_error : "");
	pthread_mutex_unlock(&p->lock);
}

bool pool_figures_unreachable(const struct pool_figures *f)
{
	return f->connect_failures_in_row > 0 && f->sv_active + f->sv_idle + f->sv_used == 0;
}

static bool matches(const struct pool *p, const char *db)
{
	return db == NULL || strcmp(p->db_name, db) == 0;
}

int pool_pause_db(const char *db)
{
	int n = 0;
	pthread_mutex_lock(&registry_lock);
	if (db == NULL) {
		paused.all = true;
	} else if (!db_paused_locked(db)) {
		char **names = realloc(paused.names, (size_t)(paused.n + 1) * sizeof(*names));
		char *copy = strdup(db);
		if (names != NULL)
			paused.names = names;
		if (names != NULL && copy != NULL)
			paused.names[paused.n++] = copy;
		else
			free(copy);
	}
	struct list *it;
	list_for_each(it, &pools)
	{
		struct pool *p = container_of(it, struct pool, node);
		if (!matches(p, db))
			continue;
		pthread_mutex_lock(&p->lock);
		p->paused = true;
		pthread_mutex_unlock(&p->lock);
		n++;
	}
	pthread_mutex_unlock(&registry_lock);
	return n;
}

int pool_count_db(const char *db)
{
	int n = 0;
	pthread_mutex_lock(&registry_lock);
	struct list *it;
	list_for_each(it, &pools) n += matches(container_of(it, struct pool, node), db);
	pthread_mutex_unlock(&registry_lock);
	return n;
}

bool pool_db_quiet(const char *db)
{
	bool quiet = true;
	pthread_mutex_lock(&registry_lock);
	struct list *it;
	list_for_each(it, &pools)
	{
		struct pool *p = container_of(it, struct pool, node);
		if (matches(p, db) && stats_gauge(&p->stats, SG_SERVERS, SV_ACTIVE) +
		                              stats_gauge(&p->stats, SG_SERVERS, SV_RESET) >
		                          0)
			quiet = false;
	}
	pthread_mutex_unlock(&registry_lock);
	return quiet;
}

/* Under p->lock: pair waiters with idle servers; returns launches needed. */
static int serve_queue_locked(struct pool *p, struct list *handed)
{
	int n_launch = 0;
	while (!list_empty(&p->waiters) && !list_empty(&p->idle)) {
		struct server *s = container_of(list_pop_head(&p->idle), struct server, pool_node);
		p->n_idle--;
		link_head_waiter(p, s)->handoffs_pending++;
		list_add_tail(handed, &s->pool_node);
	}
	while (p->n_waiting > p->n_connecting && reserve_launch(p))
		n_launch++;
	return n_launch;
}

int pool_resume_db(const char *db)
{
	int n = 0;
	struct list handed;
	list_init(&handed);
	pthread_mutex_lock(&registry_lock);
	if (db == NULL) {
		paused.all = false;
		for (int i = 0; i < paused.n; i++)
			free(paused.names[i]);
		paused.n = 0;
	}
	for (int i = 0; db != NULL && i < paused.n; i++) {
		if (strcmp(paused.names[i], db) == 0) {
			free(paused.names[i]);
			paused.names[i] = paused.names[--paused.n];
			break;
		}
	}
	struct list *it;
	list_for_each(it, &pools)
	{
		struct pool *p = container_of(it, struct pool, node);
		if (!matches(p, db))
			continue;
		n++;
		pthread_mutex_lock(&p->lock);
		p->paused = db_paused_locked(p->db_name);
		int n_launch = p->paused ? 0 : serve_queue_locked(p, &handed);
		pthread_mutex_unlock(&p->lock);
		for (int k = 0; k < n_launch; k++)
			server_launch(p, worker_self());
	}
	pthread_mutex_unlock(&registry_lock);
	struct list *sn;
	while ((sn = list_pop_head(&handed)) != NULL) {
		struct server *s = container_of(sn, struct server, pool_node);
		server_hand_off(s, s->client);
	}
	return n;
}

int pool_reconnect_db(const char *db)
{
	int n = 0;
	pthread_mutex_lock(&registry_lock);
	struct list *it;
	list_for_each(it, &pools)
	{
		struct pool *p = container_of(it, struct pool, node);
		if (matches(p, db)) {
			atomic_fetch_add(&p->epoch, 1);
			n++;
		}
	}
	pthread_mutex_unlock(&registry_lock);
	return n;
}

bool pool_take_idle(struct pool *p, struct server *s)
{
	bool taken = false;
	pthread_mutex_lock(&p->lock);
	if (s->state == SV_IDLE && list_linked(&s->pool_node)) {
		list_del(&s->pool_node);
		p->n_idle--;
		server_set_state(s, SV_RESET);
		taken = true;
	}
	pthread_mutex_unlock(&p->lock);
	return taken;
}

void pool_learn_params(struct pool *p, const struct params *server_params)
{
	const struct pset *fresh;
	if (!pset_intern(server_params, &fresh))
		return;
	pthread_mutex_lock(&p->lock);
	const struct pset *old = p->server_params;
	p->server_params = fresh;
	pthread_mutex_unlock(&p->lock);
	pset_put(old);
}

const struct pset *pool_server_params(struct pool *p)
{
	pthread_mutex_lock(&p->lock);
	const struct pset *ps = pset_ref(p->server_params);
	pthread_mutex_unlock(&p->lock);
	return ps;
}

void pool_learn_scram_keys(struct pool *p, const uint8_t ck[SCRAM_KEY_LEN], const uint8_t sk[SCRAM_KEY_LEN])
{
	pthread_mutex_lock(&p->lock);
	memcpy(p->scram_client_key, ck, SCRAM_KEY_LEN);
	memcpy(p->scram_server_key, sk, SCRAM_KEY_LEN);
	p->have_scram_keys = true;
	pthread_mutex_unlock(&p->lock);
}

void pool_maintain_all(const struct config *cfg, int64_t now, pool_launch_fn launch, void *arg)
{
	struct list expired;
	list_init(&expired);
	pthread_mutex_lock(&registry_lock);
	struct list *it;
	list_for_each(it, &pools)
	{
		struct pool *p = container_of(it, struct pool, node);
		int n_launch = 0;
		pthread_mutex_lock(&p->lock);
		struct list *sit, *tmp;
		list_for_each_safe(sit, tmp, &p->idle)
		{
			struct server *s = container_of(sit, struct server, pool_node);
			int64_t idle_limit = cfg->server_idle_timeout -
			                     cfg->server_idle_timeout * s->idle_jitter_permille / 1000;
			bool idle_out = cfg->server_idle_timeout > 0 && now - s->idle_since >= idle_limit;
			bool too_old = s->lifetime_usec > 0 && now - s->created_at >= s->lifetime_usec;
			bool too_many = p->n_servers > p->set->pool_size || p->set->removed;
			bool reconnect = s->epoch != atomic_load(&p->epoch);
			if (!idle_out && !too_old && !too_many && !reconnect)
				continue;
			list_del(&s->pool_node);
			p->n_idle--;
			count_out(p);
			server_set_state(s, SV_CLOSED);
			list_add_tail(&expired, &s->pool_node);
		}
		/* Waiters blocked by a limit, and min_pool_size. */
		while (p->n_waiting > p->n_connecting && reserve_launch(p))
			n_launch++;
		while (p->n_servers < p->set->min_pool_size && reserve_launch(p))
			n_launch++;
		/* reserve_pool_size: one more connection per round while the
		 * head of the queue has waited reserve_pool_timeout. */
		int64_t head_wait = 0;
		if (p->set->reserve_size > 0 && !list_empty(&p->waiters) && p->n_idle == 0 &&
		    p->n_connecting == 0) {
			const struct client *head = container_of(p->waiters.next, struct client, wait_node);
			head_wait = head->wait_started > 0 ? now - head->wait_started : 0;
			if (head_wait < p->set->reserve_timeout ||
			    !reserve_launch_upto(p, p->set->pool_size + p->set->reserve_size))
				head_wait = 0;
		}
		int n_servers = p->n_servers, size = p->set->pool_size, reserve = p->set->reserve_size;
		pthread_mutex_unlock(&p->lock);
		if (head_wait > 0) {
			n_launch++;
			log_msg(LOG_WARNING,
			        "pool %s: opening a reserve connection (%d of pool_size %d + "
			        "reserve_pool_size %d): a "
			        "client has waited %.1fs",
			        p->name, n_servers, size, reserve, (double)head_wait / 1e6);
		}
		for (int i = 0; i < n_launch; i++)
			launch(p, arg);
	}
	/* A pool whose waiters are held back only by max_db_connections or
	 * max_user_connections takes the slot of another pool's idle server. */
	list_for_each(it, &pools)
	{
		struct pool *p = container_of(it, struct pool, node);
		pthread_mutex_lock(&p->lock);
		bool starved = p->n_waiting > 0 && p->n_connecting == 0 && p->n_idle == 0 &&
		               p->n_servers < p->set->pool_size && !p->set->removed;
		pthread_mutex_unlock(&p->lock);
		if (!starved)
			continue;
		struct list *qit;
		list_for_each(qit, &pools)
		{
			struct pool *q = container_of(qit, struct pool, node);
			if (q == p || (q->db_limit != p->db_limit && q->user_limit != p->user_limit))
				continue;
			pthread_mutex_lock(&q->lock);
			struct server *victim = NULL;
			if (!list_empty(&q->idle)) {
				victim = container_of(q->idle.prev, struct server,
				                      pool_node); /* the longest idle */
				list_del(&victim->pool_node);
				q->n_idle--;
				count_out(q);
				server_set_state(victim, SV_CLOSED);
				list_add_tail(&expired, &victim->pool_node);
			}
			pthread_mutex_unlock(&q->lock);
			if (victim != NULL) {
				log_msg(
				    LOG_INFO,
				    "pool %s: closing an idle server of pool %s to make room under a limit",
				    p->name, q->name);
				break;
			}
		}
	}
	pthread_mutex_unlock(&registry_lock);
	struct list *n;
	while ((n = list_pop_head(&expired)) != NULL) {
		struct server *s = container_of(n, struct server, pool_node);
		server_close_detached(s, "idle timeout, lifetime, RECONNECT or a limit");
	}
}

void pool_for_each(void (*fn)(struct pool *p, void *arg), void *arg)
{
	pthread_mutex_lock(&registry_lock);
	struct list *it;
	list_for_each(it, &pools) fn(container_of(it, struct pool, node), arg);
	pthread_mutex_unlock(&registry_lock);
}

void pool_registry_destroy(bool free_idle_servers)
{
	struct list *n;
	pthread_mutex_lock(&registry_lock);
	while ((n = list_pop_head(&pools)) != NULL) {
		struct pool *p = container_of(n, struct pool, node);
		struct list *sn;
		while ((sn = list_pop_head(&p->idle)) != NULL) {
			struct server *s = container_of(sn, struct server, pool_node);
			server_set_state(s, SV_CLOSED);
			if (free_idle_servers)
				server_free(s);
		}
		settings_free(p->set);
		params_clear(&p->guc);
		pset_put(p->server_params);
		free(p->db_name);
		free(p->user_name);
		free(p->name);
		free(p->params_key);
		free(p->last_connect_error);
		stats_free(&p->stats);
		pthread_mutex_destroy(&p->lock);
		free(p);
	}
	while ((n = list_pop_head(&db_limits)) != NULL) {
		struct pool_limit *l = container_of(n, struct pool_limit, node);
		free(l->name);
		free(l);
	}
	while ((n = list_pop_head(&user_limits)) != NULL) {
		struct pool_limit *l = container_of(n, struct pool_limit, node);
		free(l->name);
		free(l);
	}
	for (int i = 0; i < paused.n; i++)
		free(paused.names[i]);
	free(paused.names);
	paused.names = NULL;
	paused.n = 0;
	paused.all = false;
	pthread_mutex_unlock(&registry_lock);
}
