/* snapshot.c — every worker describes its own connections; idle servers
 * are described from their pools. */
#include "snapshot.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "pool.h"
#include "proto/protocol.h"
#include "runtime.h"
#include "server.h"
#include "util/clock.h"
#include "util/str.h"
#include "worker.h"

static struct snap_row *add_row(struct snapshot *snap)
{
	if (snap->n == snap->cap) {
		int cap = snap->cap ? snap->cap * 2 : 64;
		struct snap_row *r = realloc(snap->rows, (size_t)cap * sizeof(*r));
		if (r == NULL) {
			snap->failed = true;
			return NULL;
		}
		snap->rows = r;
		snap->cap = cap;
	}
	struct snap_row *row = &snap->rows[snap->n++];
	memset(row, 0, sizeof(*row));
	return row;
}

static void copy_str(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src != NULL ? src : "");
}

/* "1.2.3.4:5678", "[::1]:5678" or "unix" into address and port. */
static void split_addr(const char *in, char *addr, size_t size, int *port)
{
	*port = 0;
	const char *colon = strrchr(in, ':');
	if (colon == NULL || strcmp(in, "unix") == 0) {
		copy_str(addr, size, in);
		return;
	}
	const char *start = in;
	size_t len = (size_t)(colon - in);
	if (in[0] == '[' && len >= 2 && in[len - 1] == ']') {
		start++;
		len -= 2;
	}
	snprintf(addr, size, "%.*s", (int)len, start);
	*port = atoi(colon + 1);
}

static void local_of(int fd, char *addr, size_t size, int *port)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	*port = 0;
	copy_str(addr, size, "unix");
	if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		return;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &in->sin_addr, addr, (socklen_t)size);
		*port = ntohs(in->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, addr, (socklen_t)size);
		*port = ntohs(in6->sin6_port);
	}
}

static const char *client_word(enum client_state st)
{
	switch (st) {
	case CL_STARTUP:
	case CL_AUTH:
		return "login";
	case CL_LOGIN_WAIT:
	case CL_WAITING:
		return "waiting";
	default:
		return "active";
	}
}

static const char *client_detail(enum client_state st)
{
	static const char *const names[] = {"startup", "auth",   "login_wait", "idle",
	                                    "waiting", "active", "closed"};
	return (unsigned)st < sizeof(names) / sizeof(names[0]) ? names[st] : "?";
}

static const char *server_word(enum server_state st)
{
	switch (st) {
	case SV_CONNECTING:
	case SV_LOGIN:
		return "new";
	case SV_IDLE:
		return "idle";
	case SV_ACTIVE:
		return "active";
	case SV_TESTING:
		return "tested";
	default:
		return "used";
	}
}

static const char *server_detail(enum server_state st)
{
	static const char *const names[] = {"connecting", "login",   "idle",  "active",
	                                    "reset",      "testing", "closed"};
	return (unsigned)st < sizeof(names) / sizeof(names[0]) ? names[st] : "?";
}

/* What a linked pair shows in both rows. */
static void describe_link(struct snap_row *row, const struct client *cl, const struct server *s, int64_t now,
                          int64_t leak_usec)
{
	if (s == NULL || cl == NULL)
		return;
	row->held_usec = s->linked_at > 0 ? now - s->linked_at : 0;
	row->backend_pid = s->backend_pid;
	row->txn = s->txn_status;
	if (s->pending_rfq == 0 && s->answered_at > 0)
		row->idle_usec = now - s->answered_at;
	row->leak = client_holds_idle(cl, now, leak_usec);
	copy_str(row->last_sql, sizeof(row->last_sql), cl->last_sql);
}

static void describe_client(struct snapshot *snap, const struct client *cl, int64_t now, int64_t leak_usec)
{
	struct snap_row *row = add_row(snap);
	if (row == NULL)
		return;
	row->type = 'C';
	row->ptr = cl;
	row->link = cl->server;
	row->id = cl->id;
	row->pool = cl->pool;
	copy_str(row->user, sizeof(row->user), cl->user);
	copy_str(row->database, sizeof(row->database), cl->database);
	copy_str(row->application_name, sizeof(row->application_name), client_app_name(cl));
	row->word = client_word(cl->state);
	row->detail = client_detail(cl->state);
	split_addr(cl->addr, row->addr, sizeof(row->addr), &row->port);
	local_of(cl->conn.fd, row->local_addr, sizeof(row->local_addr), &row->local_port);
	row->connect_at = cl->connected_at;
	row->request_at = cl->last_activity;
	if (cl->state == CL_WAITING || cl->state == CL_LOGIN_WAIT)
		row->wait_usec = cl->pc.wait_started > 0 ? now - cl->pc.wait_started : 0;
	row->remote_pid = cl->cancel_pid;
	describe_link(row, cl, cl->server, now, leak_usec);
	if (cl->server == NULL)
		copy_str(row->last_sql, sizeof(row->last_sql), cl->last_sql);
}

static void describe_server(struct snapshot *snap, const struct server *s, int64_t now, int64_t leak_usec)
{
	struct snap_row *row = add_row(snap);
	if (row == NULL)
		return;
	row->type = 'S';
	row->ptr = s;
	row->link = s->client;
	row->id = s->id;
	row->pool = s->pool;
	copy_str(row->user, sizeof(row->user), s->pool != NULL ? s->pool->user_name : s->user);
	copy_str(row->database, sizeof(row->database), s->pool != NULL ? s->pool->db_name : s->dbname);
	const char *app = params_get(&s->params, "application_name");
	copy_str(row->application_name, sizeof(row->application_name), app);
	row->word = server_word(s->ps.state);
	row->detail = server_detail(s->ps.state);
	copy_str(row->addr, sizeof(row->addr), s->host != NULL ? s->host : "unix");
	row->port = s->port;
	local_of(s->conn.fd, row->local_addr, sizeof(row->local_addr), &row->local_port);
	row->connect_at = s->ps.created_at;
	row->request_at = s->ps.state == SV_IDLE ? s->ps.idle_since
	                  : s->answered_at > 0   ? s->answered_at
	                                         : s->ps.created_at;
	row->remote_pid = s->backend_pid;
	describe_link(row, s->client, s, now, leak_usec);
	if (s->client == NULL)
		row->txn = s->ps.state == SV_IDLE ? PQ_TXN_IDLE : s->txn_status;
}

static void finish(struct worker *w, void *arg)
{
	(void)w;
	struct snapshot *snap = arg;
	snap->done(snap, snap->arg);
}

static void idle_server(const struct pool_server *ps, void *arg)
{
	const struct server *s = container_of(ps, struct server, ps);
	describe_server(arg, s, clock_now_usec(), 0);
}

/* Idle servers belong to their pool: read under its lock, by its visitor. */
static void idle_servers_of(struct pool *p, void *arg)
{
	pool_for_each_idle(p, idle_server, arg);
}

static void collect(struct worker *w, void *arg)
{
	struct snapshot *snap = arg;
	int64_t now = clock_now_usec();
	int64_t leak_usec = w->gen->cfg->leak_warn_timeout;
	pthread_mutex_lock(&snap->lock);
	struct list *it;
	list_for_each(it, &w->clients)
	{
		const struct client *cl = container_of(it, struct client, worker_node);
		if (!cl->closing)
			describe_client(snap, cl, now, leak_usec);
	}
	list_for_each(it, &w->servers)
	{
		const struct server *s = container_of(it, struct server, worker_node);
		if (s->ps.state != SV_CLOSED)
			describe_server(snap, s, now, leak_usec);
	}
	bool last = --snap->pending == 0;
	pthread_mutex_unlock(&snap->lock);
	if (!last)
		return;
	/* Idle servers belong to no worker: the pools describe them, from the
	 * thread that asked. */
	if (!worker_call_later(snap->owner, finish, snap))
		snap->failed = true; /* nothing more can be done without memory */
}

static void owner_collect_idle(struct worker *w, void *arg)
{
	(void)w;
	pool_for_each(idle_servers_of, arg);
}

bool snapshot_start(snapshot_done_fn done, void *arg, struct snapshot **out)
{
	struct snapshot *snap = calloc(1, sizeof(*snap));
	if (snap == NULL)
		return false;
	pthread_mutex_init(&snap->lock, NULL);
	snap->owner = worker_self();
	snap->done = done;
	snap->arg = arg;
	snap->taken_at = clock_now_usec();
	snap->pending = rt.n_workers;
	*out = snap;
	owner_collect_idle(snap->owner, snap);
	for (int i = 0; i < rt.n_workers; i++) {
		if (!worker_call_later(&rt.workers[i], collect, snap)) {
			/* This worker will never answer: count it done ourselves. */
			pthread_mutex_lock(&snap->lock);
			snap->failed = true;
			bool last = --snap->pending == 0;
			pthread_mutex_unlock(&snap->lock);
			if (last && !worker_call_later(snap->owner, finish, snap))
				return false; /* nothing will ever finish it: the caller frees it */
		}
	}
	return true;
}

void snapshot_free(struct snapshot *snap)
{
	if (snap == NULL)
		return;
	pthread_mutex_destroy(&snap->lock);
	free(snap->rows);
	free(snap);
}
