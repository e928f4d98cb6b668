/* server.c — connections to PostgreSQL: non-blocking connect, login with
 * trust/password/md5/SCRAM, the idle watch, reset after a client leaves,
 * cancel requests, close. The linked traffic itself is relay.c's. */
#include "server.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "auth/scram.h"
#include "client.h"
#include "pool.h"
#include "proto/frame.h"
#include "proto/protocol.h"
#include "relay.h"
#include "runtime.h"
#include "util/clock.h"
#include "worker.h"

#define DRAIN_TIMEOUT_USEC (5 * PGS_USEC_PER_SEC)
#define CANCEL_TIMEOUT_SEC 5
#define CANCEL_REQUEST_LEN 16 /* length, code, backend pid and key */

static atomic_ullong next_server_id = 1;

struct cancel_req {
	struct list server_node;
	struct server *server; /* borrowed; NULL once the server is gone */
	struct conn conn;      /* its own connection to PostgreSQL; out holds the packet */
	struct event *ev;      /* conn.fd, one direction at a time, with a timeout */
	bool connected;
};

const char *server_pool_name(const struct server *s)
{
	return s->pool != NULL ? s->pool->name : "-";
}

void server_set_state(struct server *s, enum server_state to)
{
	if (to == SV_CLOSED && s->ps.state == SV_CLOSED)
		return; /* counted out already (a failed login, or taken out by the janitor) */
	pool_server_move(s->pool, &s->ps, to);
}

void server_free_idle(struct pool_server *ps)
{
	server_free(container_of(ps, struct server, ps));
}

static void server_read_cb(evutil_socket_t fd, short what, void *arg);
static void server_write_cb(evutil_socket_t fd, short what, void *arg);
static void server_idle_readable(struct server *s);

void server_free(struct server *s)
{
	if (s == NULL)
		return;
	struct list *n;
	if (s->dns_req != NULL) {
		evdns_getaddrinfo_cancel(s->dns_req);
		s->dns_req = NULL;
	}
	/* The backend goes with its server: a pending cancel has nothing left to do. */
	while ((n = list_pop_head(&s->cancels)) != NULL) {
		struct cancel_req *c = container_of(n, struct cancel_req, server_node);
		if (c->ev != NULL)
			event_free(c->ev);
		conn_close(&c->conn, NULL);
		free(c);
	}
	struct buf_pool *bp = s->worker != NULL ? &s->worker->bufs : NULL;
	if (bp != NULL) {
		conn_close(&s->conn, bp);
	} else {
		struct buf_pool tmp = {0};
		conn_close(&s->conn, &tmp);
		buf_pool_destroy(&tmp);
	}
	free(s->host);
	free(s->dbname);
	free(s->user);
	free(s->password);
	free(s->last_error);
	free(s->last_sqlstate);
	free(s->last_detail);
	params_clear(&s->startup);
	params_clear(&s->params);
	pglogin_clear(&s->login);
	free(s);
}

/* Best effort: a Terminate lets PostgreSQL log a clean disconnect. */
static void send_terminate(struct server *s)
{
	static const uint8_t term[5] = {PqMsg_Terminate, 0, 0, 0, 4};
	conn_send_now(&s->conn, term, sizeof(term));
}

void server_fail_waiters(struct list *failed, const char *sqlstate, const char *message, const char *detail)
{
	struct worker *me = worker_self();
	struct list *n;
	while ((n = list_pop_head(failed)) != NULL) {
		struct client *cl = client_of_pool(container_of(n, struct pool_client, node));
		if (cl->worker == me) {
			pool_handoffs_pending(cl->pool, &cl->pc, -1);
			client_fail_wait(cl, sqlstate, message, detail);
			if (cl->closing)
				worker_reap_client(me, cl);
			continue;
		}
		struct worker_msg *m = worker_msg_new(WMSG_LOGIN_FAIL);
		if (m != NULL) {
			m->client = cl;
			m->sqlstate = str_dup(sqlstate);
			m->message = str_dup(message);
			m->detail = str_dup(detail);
			worker_post(cl->worker, m);
			continue;
		}
		/* No message: the waiter is told on this thread only if it is ours;
		 * otherwise its query_wait_timeout still ends the wait. */
		pool_handoffs_pending(cl->pool, &cl->pc, -1);
	}
}

/* The login failed: tell the pool, and every client it gives up on. */
static void login_failed(struct server *s, const char *sqlstate, const char *message, const char *detail)
{
	struct pool_work work;
	pool_work_init(&work, s->pool);
	log_server(s, LOG_WARNING, "login to %s:%d failed: %s (%s)", s->host ? s->host : "unix", s->port,
	           message, sqlstate);
	pool_connect_failed(s->pool, &s->ps, message, &work);
	server_fail_waiters(&work.failed, sqlstate, message, detail);
}

static void server_finish_close(struct server *s, const char *reason)
{
	if (s->ps.state != SV_CONNECTING && s->ps.state != SV_LOGIN)
		log_server(s, LOG_INFO, "closing: %s", reason);
	conn_detach(&s->conn);
	if (list_linked(&s->worker_node))
		list_del(&s->worker_node);
	server_set_state(s, SV_CLOSED);
	worker_reap_server(s->worker, s);
}

void server_close(struct server *s, const char *reason)
{
	if (s->ps.state == SV_CLOSED)
		return;
	if (s->ps.state == SV_CONNECTING || s->ps.state == SV_LOGIN) {
		char msg[256];
		snprintf(msg, sizeof(msg), "pgsluice: could not log in to server %s:%d for pool %s: %s",
		         s->host ? s->host : "unix", s->port, server_pool_name(s), reason);
		login_failed(s, "08006", msg, NULL);
		server_finish_close(s, reason);
		return;
	}
	if (s->ps.state == SV_TESTING)
		stats_add(&s->pool->stats, ST_DEAD_SERVER, 1); /* failed its check, or died during it */
	send_terminate(s);
	if (s->client != NULL)
		relay_unlink(s->client, s);
	bool launch = pool_server_closed(s->pool, &s->ps);
	struct pool *p = s->pool;
	struct worker *w = s->worker;
	server_finish_close(s, reason);
	if (launch)
		server_launch(p, w);
}

void server_close_detached(struct server *s, const char *reason)
{
	log_server(s, LOG_INFO, "closing idle server: %s", reason);
	send_terminate(s);
	conn_detach(&s->conn);
	s->worker = NULL;
	server_free(s);
}

/* --- connect --- */

static void dns_done(int result, struct evutil_addrinfo *res, void *arg);

static bool resolve(struct server *s, char *err, size_t errlen)
{
	memset(&s->addr, 0, sizeof(s->addr));
	const char *h = s->host;
	if (h == NULL || h[0] == '\0' || h[0] == '/') {
		const char *dir = h;
		if (dir == NULL || dir[0] == '\0')
			dir = pglogin_socket_dir();
		struct sockaddr_un *un = (struct sockaddr_un *)&s->addr;
		un->sun_family = AF_UNIX;
		int n = snprintf(un->sun_path, sizeof(un->sun_path), "%s/.s.PGSQL.%d", dir, s->port);
		if (n < 0 || (size_t)n >= sizeof(un->sun_path)) {
			snprintf(err, errlen, "unix socket path too long");
			return false;
		}
		s->addr_len = sizeof(*un);
		return true;
	}
	struct sockaddr_in *in4 = (struct sockaddr_in *)&s->addr;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&s->addr;
	if (inet_pton(AF_INET, h, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)s->port);
		s->addr_len = sizeof(*in4);
		return true;
	}
	if (inet_pton(AF_INET6, h, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)s->port);
		s->addr_len = sizeof(*in6);
		return true;
	}
	struct evutil_addrinfo hints;
	char port[16];
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
	snprintf(port, sizeof(port), "%d", s->port);
	s->addr_len = 0; /* filled by dns_done */
	s->dns_req = evdns_getaddrinfo(s->worker->dns, h, port, &hints, dns_done, s);
	(void)err;
	(void)errlen;
	return true;
}

static int open_socket_to(const struct sockaddr_storage *addr, socklen_t len, char *err, size_t errlen)
{
	int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (const struct sockaddr *)addr, len) < 0 && errno != EINPROGRESS) {
		snprintf(err, errlen, "connect: %s", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Takes over the pool's connect target: the next host, the credentials,
 * and the SCRAM keys a client's proof gave. */
static bool copy_target(struct server *s, struct pool *p)
{
	struct pool_target t;
	bool ok = pool_connect_target(p, &t);
	s->host = t.host;
	s->port = t.port;
	s->dbname = t.dbname;
	s->user = t.user;
	s->password = t.password;
	s->startup = t.startup;
	t.host = t.dbname = t.user = t.password = NULL;
	t.startup = (struct params)PARAMS_INIT;
	pglogin_init(&s->login, s->user, s->password);
	if (ok && t.have_scram_keys && scram_is_secret(s->password)) {
		struct scram_secret sec;
		if (scram_parse_secret(s->password, &sec))
			s->login.scram = scram_client_new_keys(t.scram_client_key, sec.server_key);
	}
	pool_target_clear(&t);
	return ok;
}

/* The address is known: open the socket and wait for the connect. */
static void start_connect(struct server *s)
{
	char err[256];
	struct worker *w = s->worker;
	const struct config *cfg = w->gen->cfg;
	int fd = open_socket_to(&s->addr, s->addr_len, err, sizeof(err));
	if (fd < 0) {
		server_close(s, err);
		return;
	}
	s->conn.fd = fd;
	if (s->addr.ss_family != AF_UNIX)
		sock_tune_tcp(fd, cfg->tcp_keepalive, cfg->tcp_keepidle, cfg->tcp_keepintvl, cfg->tcp_keepcnt,
		              (long)(cfg->tcp_user_timeout / 1000));
	if (!conn_attach(&s->conn, w->base, server_read_cb, server_write_cb, s)) {
		server_close(s, "cannot create events");
		return;
	}
	conn_want_write(&s->conn, true);
	log_server(s, LOG_DEBUG, "connecting to %s:%d", s->host ? s->host : "unix", s->port);
}

/* A host name resolved by evdns (never a blocking lookup on a loop thread). */
static void dns_done(int result, struct evutil_addrinfo *res, void *arg)
{
	struct server *s = arg;
	if (result == EVUTIL_EAI_CANCEL) {
		if (res)
			evutil_freeaddrinfo(res);
		return; /* the server is being freed */
	}
	s->dns_req = NULL;
	if (result != 0 || res == NULL) {
		char msg[300];
		snprintf(msg, sizeof(msg), "cannot resolve host \"%s\": %s", s->host,
		         evutil_gai_strerror(result));
		if (res)
			evutil_freeaddrinfo(res);
		server_close(s, msg);
		return;
	}
	memcpy(&s->addr, res->ai_addr, res->ai_addrlen);
	s->addr_len = (socklen_t)res->ai_addrlen;
	evutil_freeaddrinfo(res);
	start_connect(s);
}

void server_launch_failed(struct pool *p, const char *why)
{
	struct pool_work work;
	pool_work_init(&work, p);
	log_msg(LOG_WARNING, "pool %s: cannot open a server connection: %s", p->name, why);
	pool_launch_abandoned(p, why, &work);
	server_fail_waiters(&work.failed, "53200", "pgsluice: out of memory", NULL);
}

void server_launch(struct pool *p, struct worker *w)
{
	struct server *s = calloc(1, sizeof(*s));
	char err[256] = "out of memory";
	if (s == NULL) {
		server_launch_failed(p, "out of memory");
		return;
	}
	const struct config *cfg = w->gen->cfg;
	int64_t now = clock_now_usec();
	s->id = atomic_fetch_add(&next_server_id, 1);
	s->pool = p;
	pool_server_init(&s->ps, atomic_load(&p->epoch), now);
	s->worker = w;
	s->txn_status = PQ_TXN_IDLE;
	list_init(&s->worker_node);
	list_init(&s->cancels);
	conn_init(&s->conn, -1);
	pool_server_add(p, &s->ps);
	list_add_tail(&w->servers, &s->worker_node);
	if (cfg->server_lifetime > 0) {
		/* Spread expiry so connections opened together do not all close together. */
		int64_t spread = cfg->server_lifetime * cfg->server_lifetime_jitter / 100;
		int64_t r =
		    spread > 0 ? (int64_t)((uint64_t)random() % (uint64_t)(2 * spread + 1)) - spread : 0;
		s->ps.lifetime_usec = cfg->server_lifetime + r;
	}
	/* Idle expiry is spread too, only ever earlier than server_idle_timeout,
	 * so servers idle since the same burst do not all close at once. */
	s->ps.idle_jitter_permille =
	    (int)((uint64_t)random() % (uint64_t)(cfg->server_lifetime_jitter * 10 + 1));
	s->deadline = cfg->server_connect_timeout > 0 ? now + cfg->server_connect_timeout : 0;
	if (!copy_target(s, p) || !resolve(s, err, sizeof(err))) {
		server_close(s, err);
		return;
	}
	/* A name lookup may still run (dns_done connects), or may have finished
	 * already, from /etc/hosts. */
	if (s->dns_req == NULL && s->conn.fd < 0 && s->ps.state == SV_CONNECTING && s->addr_len > 0)
		start_connect(s);
}

static void connected(struct server *s)
{
	int soerr = 0;
	socklen_t len = sizeof(soerr);
	if (getsockopt(s->conn.fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		soerr = errno;
	if (soerr != 0) {
		char msg[200];
		snprintf(msg, sizeof(msg), "connect: %s", strerror(soerr));
		server_close(s, msg);
		return;
	}
	server_set_state(s, SV_LOGIN);
	pglogin_startup(&s->conn.out, s->user, s->dbname, &s->startup);
	if (!msg_ok(&s->conn.out)) {
		server_close(s, "startup packet too large");
		return;
	}
	conn_want_read(&s->conn, true);
	relay_flush_server(s);
}

/* --- login --- */

/* One whole authentication request from the server. false: s was closed. */
static bool login_auth(struct server *s, const uint8_t *body, size_t n)
{
	char why[200];
	if (pglogin_answer(&s->login, body, n, &s->conn.out, why, sizeof(why)) == PGLOGIN_FAIL) {
		server_close(s, why);
		return false;
	}
	return true;
}

static void login_done(struct server *s)
{
	log_server(s, LOG_DEBUG, "logged in, backend pid %u", s->backend_pid);
	pglogin_clear(&s->login);
	pool_learn_params(s->pool, &s->params);
	pool_connect_succeeded(s->pool);
	s->txn_status = PQ_TXN_IDLE;
	s->deadline = 0;
	server_return_to_pool(s);
}

static void login_read(struct server *s)
{
	for (;;) {
		struct frame f;
		const uint8_t *body;
		size_t n;
		enum frame_result r = conn_next_message(&s->conn, FRAME_FROM_SERVER, &f, &body, &n);
		if (r == FRAME_NEED_MORE)
			return;
		if (r != FRAME_OK) {
			server_close(s, "invalid message from server during login");
			return;
		}
		struct buf *b = s->conn.in;
		switch (f.type) {
		case PqMsg_AuthenticationRequest:
			if (!login_auth(s, body, n))
				return;
			relay_flush_server(s);
			break;
		case PqMsg_ParameterStatus: {
			const char *name, *value;
			if (msg_read_param_status(body, n, &name, &value))
				params_set(&s->params, name, value);
			break;
		}
		case PqMsg_BackendKeyData:
			msg_read_backend_key(body, n, &s->backend_pid, &s->backend_key);
			break;
		case PqMsg_ErrorResponse: {
			struct pg_error e;
			if (!msg_read_error(body, n, &e)) {
				server_close(s, "malformed error from server during login");
				return;
			}
			/* Relay PostgreSQL's own words: the client sees 3D000 or 28P01
			 * exactly as if it had connected directly. */
			login_failed(s, e.sqlstate ? e.sqlstate : "08006",
			             e.message ? e.message : "login failed", e.detail);
			server_finish_close(s, "server refused login");
			return;
		}
		case PqMsg_ReadyForQuery:
			if (b->start == b->end)
				buf_give_back(&s->worker->bufs, &s->conn.in);
			login_done(s);
			return;
		default:
			break; /* NoticeResponse, NegotiateProtocolVersion: nothing to do */
		}
	}
}

/* --- events --- */

static void server_readable(struct server *s)
{
	/* Only this loop sets idle_watch, or another after deleting this
	 * event (which waits for this callback): no race on it. */
	if (s->idle_watch) {
		server_idle_readable(s);
		return;
	}
	switch (s->ps.state) {
	case SV_LOGIN: {
		enum io_result r = conn_read(&s->conn, &s->worker->bufs);
		if (r == IO_CLOSED || r == IO_ERROR) {
			server_close(s, r == IO_CLOSED ? "server closed the connection during login"
			                               : "read error during login");
			return;
		}
		login_read(s);
		return;
	}
	case SV_ACTIVE:
	case SV_RESET:
	case SV_TESTING:
		relay_server_readable(s);
		return;
	default:
		return;
	}
}

static void server_read_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	int64_t outer = clock_event_begin();
	server_readable(arg);
	clock_event_end(outer);
}

static void server_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;
	(void)fd;
	(void)what;
	int64_t outer = clock_event_begin();
	if (s->ps.state == SV_CONNECTING) {
		conn_want_write(&s->conn, false);
		connected(s);
	} else {
		relay_server_writable(s);
	}
	clock_event_end(outer);
}

/* An idle server must never be readable: anything there is an unsolicited
 * error or a FIN. Replace it now, before a client is handed a dead one. */
static void server_idle_readable(struct server *s)
{
	struct worker *w = worker_self();
	if (!pool_take_idle(s->pool, &s->ps))
		return; /* another worker took it a moment ago */
	stats_add(&s->pool->stats, ST_DEAD_SERVER, 1);
	s->worker = w;
	list_add_tail(&w->servers, &s->worker_node);
	bool launch = pool_server_closed(s->pool, &s->ps);
	struct pool *p = s->pool;
	server_finish_close(s, "server closed or sent data while idle");
	if (launch)
		server_launch(p, w);
}

/* Make w's loop the one that reads s. When the events already are on w's
 * base (the server stays on its worker, the common case) nothing is
 * re-registered: no epoll_ctl per transaction. An idle server's watch is
 * deleted from the other base first (thread-safe in libevent, and it waits
 * for a callback running there to finish). A server handed off was
 * detached by the worker it left, so nothing is deleted here and nothing
 * waits: that worker must not touch it after server_hand_off. */
static void take_events(struct server *s, struct worker *w)
{
	if (!conn_on_base(&s->conn, w->base)) {
		conn_detach(&s->conn);
		conn_attach(&s->conn, w->base, server_read_cb, server_write_cb, s);
	}
	s->idle_watch = false;
	s->worker = w;
	if (!list_linked(&s->worker_node))
		list_add_tail(&w->servers, &s->worker_node);
	conn_want_read(&s->conn, true);
}

/* Put s's read event on w's base with the idle-death callback, before
 * pool_give can make it visible on the idle list: no other thread can then
 * take it while its watch is half set up. */
static void arm_idle_watch(struct server *s, struct worker *w)
{
	if (!conn_on_base(&s->conn, w->base)) {
		conn_detach(&s->conn);
		if (!conn_attach(&s->conn, w->base, server_read_cb, server_write_cb, s))
			return;
	}
	conn_want_write(&s->conn, false);
	conn_want_read(&s->conn, true);
	s->idle_watch = true;
}

void server_attach(struct server *s, struct worker *w)
{
	take_events(s, w);
	s->linked_at = s->answered_at = clock_event_usec();
}

void server_return_to_pool(struct server *s)
{
	struct worker *w = s->worker;
	s->deadline = 0;
	if (s->conn.in != NULL && !buf_is_empty(s->conn.in)) {
		server_close(s, "server sent data after its last ReadyForQuery");
		return;
	}
	buf_give_back(&w->bufs, &s->conn.in);
	s->conn.body_left = 0;
	s->pending_rfq = s->internal_rfq = 0;
	s->ext_unsynced = s->copy_in = s->copy_out = false;
	s->reset_rollback_sent = s->reset_query_sent = s->failed_internal = false;
	if (s->txn_status != PQ_TXN_IDLE) {
		server_close(s, "server not idle at release");
		return;
	}
	/* The events stay on this worker's base: going idle here re-arms
	 * nothing, and a waiter on this worker takes it without a syscall. */
	arm_idle_watch(s, w);
	if (list_linked(&s->worker_node))
		list_del(&s->worker_node);
	struct pool_client *to;
	enum pool_give_result r = pool_give(s->pool, &s->ps, w, &to);
	if (r == POOL_GIVE_CLOSE) {
		list_add_tail(&w->servers, &s->worker_node);
		server_close(s, "pool is above its size, or RECONNECT");
		return;
	}
	if (r == POOL_GIVE_IDLE)
		return; /* from here on the pool's: another worker may have it already */
	struct client *cl = client_of_pool(to);
	/* Serving a waiter can release the server again at once (a login in
	 * transaction mode), which serves the next waiter: bound that recursion
	 * and let the inbox continue the chain. */
	static _Thread_local int give_depth;
	if (cl->worker == w && give_depth < 4) {
		give_depth++;
		server_attach(s, w);
		client_got_server(cl, s);
		give_depth--;
		return;
	}
	if (cl->worker == w)
		pool_handoffs_pending(s->pool, &cl->pc, +1);
	/* Nothing may be read here once it is on its way to another loop. */
	conn_detach(&s->conn);
	server_hand_off(s, cl);
}

/* From here on s belongs to cl's worker, which attaches it without waiting
 * for this callback to end: nothing on this thread may touch s after the
 * post (callers return STEP_GONE or equivalent). */
void server_hand_off(struct server *s, struct client *cl)
{
	struct worker_msg *m = worker_msg_new(WMSG_HANDOFF);
	if (m == NULL) {
		struct worker *w = worker_self();
		s->worker = w;
		list_add_tail(&w->servers, &s->worker_node);
		server_close(s, "out of memory");
		return;
	}
	m->client = cl;
	m->server = s;
	worker_post(cl->worker, m);
}

void server_carry_out(struct pool_work *work, struct worker *w)
{
	static atomic_uint next_worker;
	struct pool *p = work->pool;
	for (int i = 0; i < work->launch; i++) {
		if (w != NULL) {
			server_launch(p, w);
			continue;
		}
		/* From the main thread: a launch runs on a worker, handed over. */
		struct worker *to = &rt.workers[atomic_fetch_add(&next_worker, 1) % (unsigned)rt.n_workers];
		struct worker_msg *m = worker_msg_new(WMSG_LAUNCH);
		if (m == NULL) {
			server_launch_failed(p, "out of memory");
			continue;
		}
		m->pool = p;
		worker_post(to, m);
	}
	work->launch = 0;
	struct list *n;
	while ((n = list_pop_head(&work->handed)) != NULL) {
		struct server *s = container_of(n, struct server, ps.work_node);
		server_hand_off(s, client_of_pool(s->ps.to));
	}
	while ((n = list_pop_head(&work->close)) != NULL)
		server_close_detached(container_of(n, struct server, ps.work_node),
		                      "idle timeout, lifetime, RECONNECT or a limit");
	server_fail_waiters(&work->failed, "08006", "pgsluice: the pool gave up waiting for a server", NULL);
}

bool server_send_internal(struct server *s, const char *sql)
{
	msg_query(&s->conn.out, sql);
	if (!msg_ok(&s->conn.out))
		return false;
	s->internal_rfq++;
	return true;
}

void server_start_check(struct server *s, struct worker *w)
{
	const struct config *cfg = w->gen->cfg;
	int64_t now = clock_now_usec();
	take_events(s, w);
	log_server(s, LOG_DEBUG, "checking with server_check_query after %.1fs idle",
	           (double)(now - s->ps.idle_since) / 1e6);
	s->failed_internal = false;
	s->deadline = now + cfg->server_check_timeout;
	if (!server_send_internal(s, cfg->server_check_query)) {
		server_close(s, "out of memory");
		return;
	}
	relay_flush_server(s);
}

/* The check's answers are in. */
static void check_done(struct server *s)
{
	if (s->failed_internal || s->txn_status != PQ_TXN_IDLE) {
		server_close(s, s->failed_internal ? "server_check_query failed"
		                                   : "server_check_query left a transaction open");
		return;
	}
	server_return_to_pool(s);
}

/* Decide the next reset step; called whenever a reset has nothing in flight. */
void server_reset_step(struct server *s)
{
	if (s->pending_rfq > 0 || s->internal_rfq > 0 || s->cancels_in_flight > 0)
		return;
	if (s->ps.state == SV_TESTING) {
		check_done(s);
		return;
	}
	if (s->failed_internal) {
		server_close(s, "reset query failed");
		return;
	}
	const struct config *cfg = s->worker->gen->cfg;
	if (s->txn_status != PQ_TXN_IDLE && !s->reset_rollback_sent) {
		s->reset_rollback_sent = true;
		server_send_internal(s, "ROLLBACK");
		stats_add(&s->pool->stats, ST_RELEASE_ROLLBACK, 1);
		relay_flush_server(s);
		return;
	}
	bool session = pool_mode_of(s->pool) == POOL_MODE_SESSION;
	if ((session || cfg->server_reset_query_always) && !s->reset_query_sent &&
	    cfg->server_reset_query != NULL && cfg->server_reset_query[0] != '\0') {
		s->reset_query_sent = true;
		server_send_internal(s, cfg->server_reset_query);
		relay_flush_server(s);
		return;
	}
	server_return_to_pool(s);
}

void server_note_unlink(struct server *s)
{
	if (s->linked_at == 0)
		return;
	int64_t held = clock_event_usec() - s->linked_at;
	stats_observe(&s->pool->stats, SH_HOLD, held);
	stats_note_max(&s->pool->stats.hold_max_usec, held);
	s->linked_at = 0;
}

void server_release(struct server *s, const char *why)
{
	struct client *cl = s->client;
	if (cl != NULL) {
		relay_unlink(cl, s);
		/* Complete messages the client sent still go first. */
		if (cl->conn.in != NULL && !conn_take_span(&s->conn, cl->conn.in)) {
			server_close(s, "out of memory");
			return;
		}
		if (cl->conn.body_left > 0 && !cl->conn.body_drop) {
			/* Half a message is on its way to PostgreSQL: it cannot be completed. */
			server_close(s, "client left in the middle of a message");
			return;
		}
	}
	server_set_state(s, SV_RESET);
	/* Reading may have been paused for a slow client: what is left is
	 * swallowed now, and PostgreSQL only acts on a cancel once its writes
	 * can proceed. */
	conn_want_read(&s->conn, true);
	/* Bytes framed for the departed client have nobody to go to. */
	if (s->conn.in != NULL)
		s->conn.in->start = s->conn.in->scan;
	log_server(s, LOG_DEBUG, "release: %s (pending=%d txn=%c)", why, s->pending_rfq, s->txn_status);
	if (s->copy_in) {
		msg_copy_fail(&s->conn.out, "client disconnected");
		s->copy_in = false;
	}
	if (s->ext_unsynced) {
		msg_sync(&s->conn.out);
		s->pending_rfq++;
		s->ext_unsynced = false;
	}
	if (!msg_ok(&s->conn.out)) {
		server_close(s, "out of memory");
		return;
	}
	if (s->pending_rfq > 0) {
		/* A query may still run: cancel it so nothing is left running on
		 * PostgreSQL for nobody, then drain its answers. */
		server_send_cancel(s);
		s->deadline = clock_now_usec() + DRAIN_TIMEOUT_USEC;
	}
	if (!relay_flush_server(s))
		return;
	server_reset_step(s);
}

/* --- cancel requests --- */

static void cancel_done(struct cancel_req *c)
{
	struct server *s = c->server;
	if (c->ev != NULL)
		event_free(c->ev);
	conn_close(&c->conn, NULL);
	if (s != NULL) {
		list_del(&c->server_node);
		if (--s->cancels_in_flight == 0) {
			if (s->ps.state == SV_RESET)
				server_reset_step(s);
			else if (s->ps.state == SV_ACTIVE)
				relay_check_release(s);
		}
	}
	free(c);
}

static void cancel_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cancel_req *c = arg;
	if (what & EV_TIMEOUT) {
		cancel_done(c);
		return;
	}
	if (!c->connected) {
		int soerr = 0;
		socklen_t len = sizeof(soerr);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
		if (soerr != 0) {
			cancel_done(c);
			return;
		}
		c->connected = true;
	}
	if (!conn_out_empty(&c->conn)) {
		enum io_result w = conn_write(&c->conn, NULL);
		if (w == IO_CLOSED || w == IO_ERROR) {
			cancel_done(c);
			return;
		}
		if (w == IO_OK) {
			/* PostgreSQL closes the connection once the signal is sent: wait for that. */
			struct timeval tv = {CANCEL_TIMEOUT_SEC, 0};
			event_del(c->ev);
			event_assign(c->ev, event_get_base(c->ev), fd, EV_READ | EV_PERSIST, cancel_cb, c);
			event_add(c->ev, &tv);
		}
		return;
	}
	char tmp[64];
	enum io_result r = conn_read_into(&c->conn, tmp, sizeof(tmp));
	if (r == IO_CLOSED || r == IO_ERROR)
		cancel_done(c);
}

void server_send_cancel(struct server *s)
{
	char err[128];
	if (s->backend_pid == 0)
		return;
	struct cancel_req *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return;
	int fd = open_socket_to(&s->addr, s->addr_len, err, sizeof(err));
	if (fd < 0) {
		log_server(s, LOG_WARNING, "cannot send cancel request: %s", err);
		free(c);
		return;
	}
	conn_init(&c->conn, fd);
	msg_cancel_request(&c->conn.out, s->backend_pid, s->backend_key);
	if (!msg_ok(&c->conn.out) || c->conn.out.len != CANCEL_REQUEST_LEN) {
		conn_close(&c->conn, NULL);
		free(c);
		return;
	}
	c->ev = event_new(s->worker->base, fd, EV_WRITE | EV_PERSIST, cancel_cb, c);
	struct timeval tv = {CANCEL_TIMEOUT_SEC, 0};
	if (c->ev == NULL || event_add(c->ev, &tv) < 0) {
		if (c->ev)
			event_free(c->ev);
		conn_close(&c->conn, NULL);
		free(c);
		return;
	}
	c->server = s;
	list_add_tail(&s->cancels, &c->server_node);
	s->cancels_in_flight++;
	log_server(s, LOG_DEBUG, "cancel request sent to backend %u", s->backend_pid);
}
