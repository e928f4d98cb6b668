/* pool.c — pools, their server lists and wait queues, and the registry of
 * pools. A server's state is the list it is on, moved by move_server()
 * under the pool's lock, so every figure a pool reports is a list length
 * and cannot drift from what is on the lists. */
#include "pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/userlist.h"
#include "log.h"
#include "util/assert.h"
#include "util/clock.h"

/* The first wait after a failed connect; it doubles up to server_login_retry,
 * so a server coming back is found within seconds and one that is down is
 * not hammered. */
#define BACKOFF_FIRST_USEC 250000

/* How far down the idle list and the queue a same-worker match is looked
 * for: a short scan keeps checkout O(1) when workers are unbalanced. */
#define SAME_WORKER_SCAN 8

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
static struct pool_settings *settings_build(const struct config *cfg, const struct userlist *users,
                                            const char *db_name, const char *user_name)
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
	s->login_retry = cfg->server_login_retry > BACKOFF_FIRST_USEC ? (int64_t)cfg->server_login_retry
	                                                              : BACKOFF_FIRST_USEC;
	s->mode = config_effective_pool_mode(cfg, db, u);
	s->read_only = db->read_only;
	if (db->password != NULL) {
		s->password = strdup(db->password);
	} else {
		/* The auth_file secret of the user we log in as, from the same
		 * generation as cfg (a reload's new secret, not the old one). */
		const char *secret = users != NULL ? userlist_find(users, s->server_user) : NULL;
		s->password = str_dup(secret);
	}
	return s;
}

void pool_work_init(struct pool_work *w, struct pool *p)
{
	list_init(&w->node);
	w->pool = p;
	w->launch = 0;
	list_init(&w->handed);
	list_init(&w->close);
	list_init(&w->failed);
}

static struct pool_work *work_new(struct pool *p)
{
	struct pool_work *w = malloc(sizeof(*w));
	if (w != NULL)
		pool_work_init(w, p);
	return w;
}

/* Append w to works when it holds something to do, free it otherwise. */
static void work_keep(struct list *works, struct pool_work *w)
{
	if (w == NULL)
		return;
	if (pool_work_empty(w))
		free(w);
	else
		list_add_tail(works, &w->node);
}

struct pool *pool_get(const struct config *cfg, const struct userlist *users, const char *db_name,
                      const char *user_name, const struct params *guc)
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
	if (!stats_init(&p->stats, stats_worker_threads()))
		goto fail;
	for (int i = 0; i < SV_LISTS; i++)
		clist_init(&p->servers[i]);
	clist_init(&p->waiters);
	list_init(&p->node);
	p->params_key = key;
	key = NULL;
	p->db_name = strdup(db_name);
	p->user_name = strdup(user_name);
	p->name = str_printf("%s/%s", user_name, db_name);
	p->set = settings_build(cfg, users, db_name, user_name);
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

void pool_prewarm(const struct config *cfg, const struct userlist *users)
{
	struct params none = PARAMS_INIT;
	for (int i = 0; i < cfg->n_dbs; i++) {
		const struct db_config *db = &cfg->dbs[i];
		if (db->user != NULL && config_effective_min_pool_size(cfg, db) > 0 &&
		    pool_get(cfg, users, db->name, db->user, &none) == NULL)
			log_msg(LOG_WARNING, "pool %s/%s: cannot create it ahead of clients (out of memory)",
			        db->user, db->name);
	}
}

void pool_reconfigure_all(const struct config *cfg, const struct userlist *users)
{
	pthread_mutex_lock(&registry_lock);
	struct list *it;
	list_for_each(it, &pools)
	{
		struct pool *p = container_of(it, struct pool, node);
		struct pool_settings *s = settings_build(cfg, users, p->db_name, p->user_name);
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

/* --- the lists (all under p->lock) --- */

/* Every server of the pool, those decided but not started included. */
static int n_servers(const struct pool *p)
{
	int n = p->n_launching;
	for (int i = 0; i < SV_LISTS; i++)
		n += p->servers[i].n;
	return n;
}

static int n_connecting(const struct pool *p)
{
	return p->n_launching + p->servers[SV_CONNECTING].n + p->servers[SV_LOGIN].n;
}

/* The moves a server can make; anything else is a bug. */
static bool server_move_ok(enum server_state from, enum server_state to)
{
	if (to == SV_CLOSED)
		return from != SV_CLOSED;
	switch (from) {
	case SV_CONNECTING:
		return to == SV_LOGIN;
	case SV_LOGIN:
	case SV_RESET:
	case SV_TESTING:
		return to == SV_IDLE || to == SV_ACTIVE;
	case SV_IDLE:
		return to == SV_ACTIVE || to == SV_TESTING || to == SV_RESET;
	case SV_ACTIVE:
		return to == SV_ACTIVE || to == SV_IDLE || to == SV_RESET;
	case SV_CLOSED:
		return to == SV_CONNECTING; /* a new server (pool_server_init), never a closed one again */
	}
	return false;
}

/* The one place a server changes state: off its list, onto the new one. */
static void move_server(struct pool *p, struct pool_server *ps, enum server_state to)
{
	PGS_ASSERT(server_move_ok(ps->state, to));
	if (ps->state != SV_CLOSED)
		clist_del(&p->servers[ps->state], &ps->node);
	if (to == SV_IDLE)
		clist_add_head(&p->servers[to], &ps->node); /* most recent first */
	else if (to != SV_CLOSED)
		clist_add_tail(&p->servers[to], &ps->node);
	ps->state = to;
}

static void enqueue(struct pool *p, struct pool_client *pc)
{
	PGS_ASSERT(!pc->queued);
	clist_add_tail(&p->waiters, &pc->node);
	pc->queued = true;
}

static void dequeue(struct pool *p, struct pool_client *pc)
{
	PGS_ASSERT(pc->queued);
	clist_del(&p->waiters, &pc->node);
	pc->queued = false;
}

static struct pool_client *head_waiter(const struct pool *p)
{
	struct list *n = clist_first(&p->waiters);
	return n != NULL ? container_of(n, struct pool_client, node) : NULL;
}

/* Count one more connection to open, if the pool's size (or cap), the
 * connect pacing, the login backoff and the shared limits allow it. */
static bool reserve_launch_upto(struct pool *p, int cap)
{
	struct pool_settings *s = p->set;
	if (s->removed || p->paused || n_servers(p) >= cap || n_connecting(p) >= s->connect_concurrency)
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
	p->n_launching++;
	return true;
}

static bool reserve_launch(struct pool *p)
{
	return reserve_launch_upto(p, p->set->pool_size);
}

static void count_out(struct pool *p)
{
	atomic_fetch_sub(&p->db_limit->used, 1);
	atomic_fetch_sub(&p->user_limit->used, 1);
}

/* A client has just been given a server: its wait is observed. */
static void note_assignment(struct pool *p, const struct pool_client *pc)
{
	/* Both instants may come from callback-start readings on two threads
	 * (clock_event_usec), each early by up to its callback's length: the
	 * difference may come out below 0, and counts as 0. */
	int64_t waited = pc->wait_started > 0 ? clock_event_usec() - pc->wait_started : 0;
	if (waited < 0)
		waited = 0;
	stats_add(&p->stats, ST_ASSIGN, 1);
	stats_add(&p->stats, ST_WAIT_USEC, (uint64_t)waited);
	stats_observe(&p->stats, SH_WAIT, waited);
	stats_note_max(&p->stats.wait_max_usec, waited);
}

/* Waiters that queued within this long (0.25 ms) of the longest waiter count as
 * arriving together. */
#define SIMULTANEOUS_USEC 250

/* Waiters not empty: who gets a server that worker w returns. The longest
 * waiter, unless one that arrived together with it lives on w: that one
 * takes the server with no hand-off to another thread (a message, a
 * wake-up and moving the server's events). Under load most releases find
 * one, so the queue stays first come, first served to within 0.25 ms. */
static struct pool_client *pick_waiter(struct pool *p, struct worker *w)
{
	struct pool_client *head = head_waiter(p);
	if (head->worker == w)
		return head;
	int scanned = 0;
	for (struct list *it = head->node.next; it != &p->waiters.head && scanned < SAME_WORKER_SCAN;
	     it = it->next, scanned++) {
		struct pool_client *pc = container_of(it, struct pool_client, node);
		if (pc->wait_started - head->wait_started > SIMULTANEOUS_USEC)
			break;
		if (pc->worker == w)
			return pc;
	}
	return head;
}

/* The first waiter leaves the queue with ps (made ACTIVE). */
static void give_to_waiter(struct pool *p, struct pool_server *ps, struct pool_client *pc)
{
	dequeue(p, pc);
	move_server(p, ps, SV_ACTIVE);
	note_assignment(p, pc);
}

/* Whether idle server ps must pass server_check_query before use. now is
 * the start of the caller's callback (clock_event_usec) and idle_since that
 * of another worker's, so the difference may be slightly negative: a delay
 * of 0 means every time, whatever the difference. */
static bool idle_too_long(const struct pool_server *ps, int64_t delay, int64_t now)
{
	return delay == 0 || (delay > 0 && now - ps->idle_since > delay);
}

/* --- clients --- */

void pool_client_join(struct pool *p, struct pool_client *pc, struct worker *w)
{
	pthread_mutex_lock(&p->lock);
	pc->worker = w;
	p->n_clients++;
	pthread_mutex_unlock(&p->lock);
}

int pool_client_leave(struct pool *p, struct pool_client *pc)
{
	pthread_mutex_lock(&p->lock);
	if (pc->queued)
		dequeue(p, pc);
	p->n_clients--;
	int pending = pc->handoffs_pending;
	pthread_mutex_unlock(&p->lock);
	return pending;
}

enum pool_checkout_result pool_checkout(struct pool *p, struct pool_client *pc, int64_t now,
                                        struct pool_server **out)
{
	enum pool_checkout_result r = POOL_WAIT;
	*out = NULL;
	pthread_mutex_lock(&p->lock);
	pc->wait_started = now;
	int64_t delay = p->set->check_delay;
	/* Waiters that only wait for a server being checked do not hold the
	 * others back: with them alone in the queue, an idle server is handed
	 * out at once. Otherwise the queue, once started by a check, would feed
	 * itself while idle servers sat unused. */
	if (p->servers[SV_IDLE].n > 0 && p->waiters.n <= p->servers[SV_TESTING].n && !p->paused) {
		/* Idle servers are kept most recent first: the head is the freshest.
		 * Prefer a fresh one already on this worker: no cross-thread event move. */
		struct pool_server *pick = NULL;
		int scanned = 0;
		struct list *it;
		list_for_each(it, &p->servers[SV_IDLE].head)
		{
			struct pool_server *ps = container_of(it, struct pool_server, node);
			if (pick == NULL)
				pick = ps;
			if (ps->idle_worker == pc->worker && !idle_too_long(ps, delay, now)) {
				pick = ps;
				break;
			}
			if (++scanned >= SAME_WORKER_SCAN)
				break;
		}
		*out = pick;
		if (idle_too_long(pick, delay, now)) {
			/* Idle too long to trust: the client queues while it is checked;
			 * whichever server is ready first serves it. */
			move_server(p, pick, SV_TESTING);
			enqueue(p, pc);
			pthread_mutex_unlock(&p->lock);
			return POOL_WAIT_CHECK;
		}
		move_server(p, pick, SV_ACTIVE);
		note_assignment(p, pc);
		pthread_mutex_unlock(&p->lock);
		return POOL_GOT_SERVER;
	}
	if (n_servers(p) == 0 && p->retry_at > 0 && now < p->retry_at && !p->paused) {
		/* Nothing to wait for: the server failed us a moment ago. */
		pthread_mutex_unlock(&p->lock);
		return POOL_UNREACHABLE;
	}
	if (p->set->max_waiting > 0 && p->waiters.n >= p->set->max_waiting) {
		stats_add(&p->stats, ST_REFUSED_QUEUE, 1);
		pthread_mutex_unlock(&p->lock);
		return POOL_REFUSED;
	}
	enqueue(p, pc);
	if (reserve_launch(p))
		r = POOL_WAIT_LAUNCH;
	pthread_mutex_unlock(&p->lock);
	return r;
}

enum pool_give_result pool_give(struct pool *p, struct pool_server *ps, struct worker *w,
                                struct pool_client **to)
{
	enum pool_give_result r;
	*to = NULL;
	pthread_mutex_lock(&p->lock);
	/* Above the size (reserve connections, a smaller size after a reload),
	 * a server still serves the queue, and is closed once nobody waits. */
	bool surplus = n_servers(p) > p->set->pool_size && (p->waiters.n == 0 || p->paused);
	if (surplus || p->set->removed || ps->epoch != atomic_load(&p->epoch)) {
		r = POOL_GIVE_CLOSE;
	} else if (p->waiters.n > 0 && !p->paused) {
		struct pool_client *pc = pick_waiter(p, w);
		give_to_waiter(p, ps, pc);
		if (pc->worker != w)
			pc->handoffs_pending++;
		*to = pc;
		r = POOL_GIVE_WAITER;
	} else {
		ps->idle_since = clock_event_usec();
		ps->idle_worker = w;
		move_server(p, ps, SV_IDLE);
		r = POOL_GIVE_IDLE;
	}
	pthread_mutex_unlock(&p->lock);
	return r;
}

bool pool_leave_queue(struct pool *p, struct pool_client *pc)
{
	bool left = false;
	pthread_mutex_lock(&p->lock);
	if (pc->queued) {
		dequeue(p, pc);
		left = true;
	}
	pthread_mutex_unlock(&p->lock);
	return left;
}

int pool_handoffs_pending(struct pool *p, struct pool_client *pc, int delta)
{
	pthread_mutex_lock(&p->lock);
	pc->handoffs_pending += delta;
	int n = pc->handoffs_pending;
	pthread_mutex_unlock(&p->lock);
	return n;
}

/* --- servers --- */

void pool_server_init(struct pool_server *ps, unsigned epoch, int64_t created_at)
{
	*ps = (struct pool_server){.state = SV_CLOSED, .epoch = epoch, .created_at = created_at};
	list_init(&ps->node);
	list_init(&ps->work_node);
}

void pool_server_add(struct pool *p, struct pool_server *ps)
{
	pthread_mutex_lock(&p->lock);
	PGS_ASSERT(p->n_launching > 0 && !list_linked(&ps->node));
	p->n_launching--;
	move_server(p, ps, SV_CONNECTING);
	pthread_mutex_unlock(&p->lock);
}

void pool_server_move(struct pool *p, struct pool_server *ps, enum server_state to)
{
	pthread_mutex_lock(&p->lock);
	move_server(p, ps, to);
	pthread_mutex_unlock(&p->lock);
}

bool pool_server_closed(struct pool *p, struct pool_server *ps)
{
	pthread_mutex_lock(&p->lock);
	move_server(p, ps, SV_CLOSED);
	count_out(p);
	bool launch = p->waiters.n > 0 && reserve_launch(p);
	pthread_mutex_unlock(&p->lock);
	return launch;
}

/* Under lock: a connection is counted out after a failure; backoff, and
 * with no server left every waiter goes to work->failed. */
static void connect_failed_locked(struct pool *p, const char *why, struct pool_work *work)
{
	count_out(p);
	p->connect_failures_in_row++;
	int64_t backoff = BACKOFF_FIRST_USEC;
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
	/* With no server left there is nothing to wait for: fail everyone now
	 * with the server's own reason instead of letting them time out. */
	if (n_servers(p) == 0) {
		struct pool_client *pc;
		while ((pc = head_waiter(p)) != NULL) {
			dequeue(p, pc);
			pc->handoffs_pending++;
			list_add_tail(&work->failed, &pc->node);
		}
	}
}

void pool_connect_failed(struct pool *p, struct pool_server *ps, const char *why, struct pool_work *work)
{
	stats_add(&p->stats, ST_CONNECT_FAIL, 1);
	pthread_mutex_lock(&p->lock);
	move_server(p, ps, SV_CLOSED);
	connect_failed_locked(p, why, work);
	pthread_mutex_unlock(&p->lock);
}

void pool_launch_abandoned(struct pool *p, const char *why, struct pool_work *work)
{
	stats_add(&p->stats, ST_CONNECT_FAIL, 1);
	pthread_mutex_lock(&p->lock);
	PGS_ASSERT(p->n_launching > 0);
	p->n_launching--;
	connect_failed_locked(p, why, work);
	pthread_mutex_unlock(&p->lock);
}

void pool_connect_succeeded(struct pool *p)
{
	pthread_mutex_lock(&p->lock);
	p->connect_failures_in_row = 0;
	p->retry_at = 0;
	free(p->last_connect_error);
	p->last_connect_error = NULL;
	pthread_mutex_unlock(&p->lock);
}

bool pool_take_idle(struct pool *p, struct pool_server *ps)
{
	bool taken = false;
	pthread_mutex_lock(&p->lock);
	if (ps->state == SV_IDLE) {
		move_server(p, ps, SV_RESET);
		taken = true;
	}
	pthread_mutex_unlock(&p->lock);
	return taken;
}

bool pool_connect_target(struct pool *p, struct pool_target *t)
{
	memset(t, 0, sizeof(*t));
	pthread_mutex_lock(&p->lock);
	struct pool_settings *st = p->set;
	bool ok = true;
	if (st->hosts != NULL) {
		int n = 1;
		for (const char *c = st->hosts; *c; c++)
			n += *c == ',';
		int pick = (int)(p->next_host++ % (unsigned)n);
		const char *start = st->hosts;
		for (int i = 0; i < pick; i++)
			start = strchr(start, ',') + 1;
		t->host = strndup(start, strcspn(start, ","));
		ok = t->host != NULL;
	}
	t->port = st->port;
	t->dbname = str_dup(st->dbname);
	t->user = str_dup(st->server_user);
	t->password = str_dup(st->password);
	ok = ok && params_copy(&t->startup, &p->guc);
	if (st->application_name != NULL)
		ok = ok && params_set(&t->startup, "application_name", st->application_name);
	/* Enforced by the server itself, and kept across DISCARD ALL because
	 * it is a startup value, whichever host this connection reaches. */
	if (st->read_only)
		ok = ok && params_set(&t->startup, "default_transaction_read_only", "on");
	t->have_scram_keys = p->have_scram_keys;
	if (t->have_scram_keys)
		memcpy(t->scram_client_key, p->scram_client_key, SCRAM_KEY_LEN);
	pthread_mutex_unlock(&p->lock);
	return ok && t->dbname != NULL && t->user != NULL && (st->password == NULL || t->password != NULL);
}

void pool_target_clear(struct pool_target *t)
{
	free(t->host);
	free(t->dbname);
	free(t->user);
	free(t->password);
	params_clear(&t->startup);
	memset(t, 0, sizeof(*t));
}

/* --- figures --- */

static void figures_locked(struct pool *p, int64_t now_usec, struct pool_figures *f)
{
	memset(f, 0, sizeof(*f));
	f->mode = pool_mode_of(p);
	f->paused = p->paused;
	f->sv_active = p->servers[SV_ACTIVE].n;
	f->sv_idle = p->servers[SV_IDLE].n;
	f->sv_used = p->servers[SV_RESET].n;
	f->sv_tested = p->servers[SV_TESTING].n;
	f->sv_login = n_connecting(p);
	f->sv_total = n_servers(p);
	f->cl_waiting = p->waiters.n;
	/* Every linked client holds exactly one ACTIVE server. */
	f->cl_active = p->servers[SV_ACTIVE].n;
	f->cl_idle = p->n_clients - f->cl_waiting - f->cl_active;
	if (f->cl_idle < 0)
		f->cl_idle = 0; /* a server on its way to a client that is leaving */
	f->pool_size = p->set->pool_size;
	const struct pool_client *head = head_waiter(p);
	if (head != NULL && head->wait_started > 0)
		f->maxwait_usec = now_usec - head->wait_started;
	f->connect_failures_in_row = p->connect_failures_in_row;
	snprintf(f->last_error, sizeof(f->last_error), "%s",
	         p->last_connect_error ? p->last_connect_error : "");
}

void pool_figures(struct pool *p, int64_t now_usec, struct pool_figures *f)
{
	pthread_mutex_lock(&p->lock);
	figures_locked(p, now_usec, f);
	pthread_mutex_unlock(&p->lock);
}

void pool_note_wait_timeout(struct pool *p, int64_t now_usec, struct pool_figures *f)
{
	stats_add(&p->stats, ST_WAIT_TIMEOUT, 1);
	pool_figures(p, now_usec, f);
}

bool pool_figures_unreachable(const struct pool_figures *f)
{
	return f->connect_failures_in_row > 0 && f->sv_active + f->sv_idle + f->sv_used == 0;
}

/* --- admin verbs --- */

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
		if (!matches(p, db))
			continue;
		pthread_mutex_lock(&p->lock);
		if (p->servers[SV_ACTIVE].n + p->servers[SV_RESET].n > 0)
			quiet = false;
		pthread_mutex_unlock(&p->lock);
	}
	pthread_mutex_unlock(&registry_lock);
	return quiet;
}

/* Under p->lock: pair waiters with idle servers and count connections for
 * the rest. */
static void serve_queue_locked(struct pool *p, struct pool_work *work)
{
	while (p->waiters.n > 0 && p->servers[SV_IDLE].n > 0) {
		struct pool_server *ps =
		    container_of(clist_first(&p->servers[SV_IDLE]), struct pool_server, node);
		struct pool_client *pc = head_waiter(p);
		give_to_waiter(p, ps, pc);
		pc->handoffs_pending++;
		ps->to = pc;
		list_add_tail(&work->handed, &ps->work_node);
	}
	while (p->waiters.n > n_connecting(p) && reserve_launch(p))
		work->launch++;
}

int pool_resume_db(const char *db, struct list *works)
{
	int n = 0;
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
		struct pool_work *work = work_new(p);
		pthread_mutex_lock(&p->lock);
		p->paused = db_paused_locked(p->db_name);
		if (!p->paused && work != NULL)
			serve_queue_locked(p, work);
		pthread_mutex_unlock(&p->lock);
		work_keep(works, work);
	}
	pthread_mutex_unlock(&registry_lock);
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

/* --- what servers learn for the pool --- */

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

/* --- the janitor's round --- */

/* Under p->lock: take idle server ps out of the pool, to be closed. */
static void take_out_idle(struct pool *p, struct pool_server *ps, struct pool_work *work)
{
	move_server(p, ps, SV_CLOSED);
	count_out(p);
	list_add_tail(&work->close, &ps->work_node);
}

/* Under p->lock. Returns how long the head waiter has waited when a
 * reserve connection was counted for it, else 0. */
static int64_t maintain_locked(struct pool *p, const struct config *cfg, int64_t now, struct pool_work *work)
{
	struct list *it, *tmp;
	list_for_each_safe(it, tmp, &p->servers[SV_IDLE].head)
	{
		struct pool_server *ps = container_of(it, struct pool_server, node);
		int64_t idle_limit =
		    cfg->server_idle_timeout - cfg->server_idle_timeout * ps->idle_jitter_permille / 1000;
		bool idle_out = cfg->server_idle_timeout > 0 && now - ps->idle_since >= idle_limit;
		bool too_old = ps->lifetime_usec > 0 && now - ps->created_at >= ps->lifetime_usec;
		bool too_many = n_servers(p) > p->set->pool_size || p->set->removed;
		bool reconnect = ps->epoch != atomic_load(&p->epoch);
		if (idle_out || too_old || too_many || reconnect)
			take_out_idle(p, ps, work);
	}
	/* Waiters blocked by a limit, and min_pool_size. */
	while (p->waiters.n > n_connecting(p) && reserve_launch(p))
		work->launch++;
	while (n_servers(p) < p->set->min_pool_size && reserve_launch(p))
		work->launch++;
	/* reserve_pool_size: one more connection per round while the head of
	 * the queue has waited reserve_pool_timeout. */
	const struct pool_client *head = head_waiter(p);
	if (p->set->reserve_size > 0 && head != NULL && p->servers[SV_IDLE].n == 0 && n_connecting(p) == 0) {
		int64_t head_wait = head->wait_started > 0 ? now - head->wait_started : 0;
		if (head_wait >= p->set->reserve_timeout &&
		    reserve_launch_upto(p, p->set->pool_size + p->set->reserve_size)) {
			work->launch++;
			return head_wait;
		}
	}
	return 0;
}

/* Under the registry lock: p's waiters are held back only by
 * max_db_connections or max_user_connections; close the longest-idle
 * server of another pool sharing the limit to make room. */
static void make_room_for(struct pool *p, struct list *works)
{
	pthread_mutex_lock(&p->lock);
	bool starved = p->waiters.n > 0 && n_connecting(p) == 0 && p->servers[SV_IDLE].n == 0 &&
	               n_servers(p) < p->set->pool_size && !p->set->removed;
	pthread_mutex_unlock(&p->lock);
	if (!starved)
		return;
	struct list *it;
	list_for_each(it, &pools)
	{
		struct pool *q = container_of(it, struct pool, node);
		if (q == p || (q->db_limit != p->db_limit && q->user_limit != p->user_limit))
			continue;
		struct pool_work *work = work_new(q);
		if (work == NULL)
			return;
		pthread_mutex_lock(&q->lock);
		struct list *last = clist_last(&q->servers[SV_IDLE]);
		if (last != NULL)
			take_out_idle(q, container_of(last, struct pool_server, node), work);
		pthread_mutex_unlock(&q->lock);
		if (last == NULL) {
			free(work);
			continue;
		}
		log_msg(LOG_INFO, "pool %s: closing an idle server of pool %s to make room under a limit",
		        p->name, q->name);
		work_keep(works, work);
		return;
	}
}

void pool_maintain_all(const struct config *cfg, int64_t now, struct list *works)
{
	pthread_mutex_lock(&registry_lock);
	struct list *it;
	list_for_each(it, &pools)
	{
		struct pool *p = container_of(it, struct pool, node);
		struct pool_work *work = work_new(p);
		if (work == NULL)
			continue; /* out of memory: the next round tries again */
		pthread_mutex_lock(&p->lock);
		int64_t reserve_wait = maintain_locked(p, cfg, now, work);
		int n = n_servers(p), size = p->set->pool_size, reserve = p->set->reserve_size;
		pthread_mutex_unlock(&p->lock);
		if (reserve_wait > 0)
			log_msg(LOG_WARNING,
			        "pool %s: opening a reserve connection (%d of pool_size %d + "
			        "reserve_pool_size %d): a client has waited %.1fs",
			        p->name, n, size, reserve, (double)reserve_wait / 1e6);
		work_keep(works, work);
	}
	list_for_each(it, &pools) make_room_for(container_of(it, struct pool, node), works);
	pthread_mutex_unlock(&registry_lock);
}

/* --- the registry --- */

void pool_for_each(void (*fn)(struct pool *p, void *arg), void *arg)
{
	pthread_mutex_lock(&registry_lock);
	struct list *it;
	list_for_each(it, &pools) fn(container_of(it, struct pool, node), arg);
	pthread_mutex_unlock(&registry_lock);
}

void pool_for_each_idle(struct pool *p, void (*fn)(const struct pool_server *ps, void *arg), void *arg)
{
	pthread_mutex_lock(&p->lock);
	struct list *it;
	list_for_each(it, &p->servers[SV_IDLE].head) fn(container_of(it, struct pool_server, node), arg);
	pthread_mutex_unlock(&p->lock);
}

void pool_registry_destroy(void (*free_idle)(struct pool_server *ps))
{
	struct list *n;
	pthread_mutex_lock(&registry_lock);
	while ((n = list_pop_head(&pools)) != NULL) {
		struct pool *p = container_of(n, struct pool, node);
		struct list *sn;
		while ((sn = clist_first(&p->servers[SV_IDLE])) != NULL) {
			struct pool_server *ps = container_of(sn, struct pool_server, node);
			move_server(p, ps, SV_CLOSED);
			if (free_idle != NULL)
				free_idle(ps);
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
