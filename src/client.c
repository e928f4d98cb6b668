/* client.c — application connections: startup, authentication, login
 * (with a server when its parameters must be learnt), waiting for a
 * server, errors, timeouts, cancel routing and close. */
#include "client.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "auth/md5.h"
#include "auth/scram.h"
#include "auth/userlist.h"
#include "pool.h"
#include "proto/frame.h"
#include "proto/protocol.h"
#include "proto/startup.h"
#include "relay.h"
#include "tracked.h"
#include "runtime.h"
#include "server.h"
#include "util/assert.h"
#include "util/clock.h"
#include "welcome.h"
#include "worker.h"

static atomic_ullong next_client_id = 1;

/* Answers the clients of the virtual databases; registered once at start. */
static const struct client_console *console;

void client_set_console(const struct client_console *c)
{
	console = c;
}

void client_console_tick(struct client *cl)
{
	if (cl->is_admin && console != NULL)
		console->tick(cl);
}

/* The moves a client's connection can make; anything else is a bug. */
static bool client_move_ok(enum client_state from, enum client_state to)
{
	switch (to) {
	case CL_STARTUP:
		return from == CL_STARTUP; /* the first setting, at accept */
	case CL_AUTH:
		return from == CL_STARTUP;
	case CL_LOGIN_WAIT:
		return from == CL_STARTUP || from == CL_AUTH;
	case CL_IDLE:
		return from != CL_CLOSED;
	case CL_WAITING:
		return from == CL_IDLE;
	case CL_ACTIVE:
		return from == CL_IDLE || from == CL_WAITING || from == CL_LOGIN_WAIT || from == CL_ACTIVE;
	case CL_CLOSED:
		return true;
	}
	return false;
}

/* Only the client's own worker changes its state. Its place in the pool
 * (queued, or with a server on its way) is the pool's, moved under the
 * pool's lock by whichever worker links it. */
void client_set_state(struct client *cl, enum client_state to)
{
	PGS_ASSERT(client_move_ok(cl->state, to));
	cl->state = to;
}

static void client_read_cb(evutil_socket_t fd, short what, void *arg);
static void client_write_cb(evutil_socket_t fd, short what, void *arg);

static const struct config *ccfg(const struct client *cl)
{
	return cl->worker->gen->cfg;
}

void client_accept(struct worker *w, int fd, const char *addr, bool data_waiting)
{
	struct client *cl = calloc(1, sizeof(*cl));
	if (cl == NULL) {
		close(fd);
		return;
	}
	cl->id = atomic_fetch_add(&next_client_id, 1);
	cl->worker = w;
	conn_init(&cl->conn, fd);
	list_init(&cl->pc.node);
	str_lcopy(cl->addr, addr, sizeof(cl->addr));
	cl->connected_at = cl->last_activity = clock_now_usec();
	list_add_tail(&w->clients, &cl->worker_node);
	atomic_fetch_add(&rt.n_clients, 1);
	client_set_state(cl, CL_STARTUP);
	if (!conn_attach(&cl->conn, w->base, client_read_cb, client_write_cb, cl)) {
		client_close(cl, "cannot create events");
		return;
	}
	conn_want_read(&cl->conn, true);
	if (data_waiting)
		client_read_cb(fd, EV_READ, cl);
}

bool client_flush(struct client *cl)
{
	if (cl->closing && cl->state == CL_CLOSED)
		return false;
	enum io_result r = conn_write(&cl->conn, NULL);
	if (r == IO_CLOSED || r == IO_ERROR) {
		client_close(cl, "write to client failed");
		return false;
	}
	conn_want_write(&cl->conn, r == IO_AGAIN);
	return true;
}

void client_error(struct client *cl, const char *severity, const char *sqlstate, const char *message,
                  const char *detail, const char *hint, char ready)
{
	msg_error(&cl->conn.out, false, severity, sqlstate, message, detail, hint);
	if (ready)
		msg_ready(&cl->conn.out, ready);
	client_flush(cl);
}

void client_fatal(struct client *cl, const char *sqlstate, const char *message, const char *detail)
{
	if (cl->closing)
		return;
	log_client(cl, LOG_INFO, "fatal %s: %s", sqlstate, message);
	msg_error(&cl->conn.out, false, "FATAL", sqlstate, message, detail, NULL);
	cl->fatal_sent = true;
	/* The error goes out before the close; a full socket loses it, which is
	 * the peer's own doing. */
	if (cl->server == NULL || cl->server->client != cl) {
		enum io_result r = conn_write(&cl->conn, NULL);
		(void)r;
	} else {
		if (conn_take_span(&cl->conn, cl->server->conn.in)) {
			enum io_result r = conn_write(&cl->conn, NULL);
			(void)r;
		}
	}
	client_close(cl, message);
}

void client_close(struct client *cl, const char *reason)
{
	if (cl->closing)
		return;
	cl->closing = true;
	const struct config *cfg = ccfg(cl);
	if (cfg->log_disconnections && cl->state != CL_STARTUP)
		log_client(cl, LOG_INFO, "closing: %s", reason);
	else
		log_client(cl, LOG_DEBUG, "closing: %s", reason);
	conn_detach(&cl->conn);
	bool pending = false;
	/* Whoever takes a client off the queue (a server for it, a failed
	 * login) counts a hand-off under the pool lock: that count alone says
	 * whether a message about this client is still on its way. A client
	 * refused before it queued has none. */
	/* After leaving (under the pool lock) nobody can link this client any
	 * more. A server already on its way is released by the hand-off's
	 * handler when it arrives, never from here while in transit. */
	if (cl->pool != NULL && pool_client_leave(cl->pool, &cl->pc) > 0)
		pending = true;
	else if (cl->server != NULL && cl->server->client == cl)
		server_release(cl->server, reason);
	client_set_state(cl, CL_CLOSED);
	if (!pending)
		worker_reap_client(cl->worker, cl);
}

/* Called from the janitor's tick, not per message. */
void client_count_bytes(struct client *cl)
{
	if (cl->pool == NULL)
		return;
	if (cl->conn.bytes_in != cl->bytes_in_counted) {
		stats_add(&cl->pool->stats, ST_RECV, cl->conn.bytes_in - cl->bytes_in_counted);
		cl->bytes_in_counted = cl->conn.bytes_in;
	}
	if (cl->conn.bytes_out != cl->bytes_out_counted) {
		stats_add(&cl->pool->stats, ST_SENT, cl->conn.bytes_out - cl->bytes_out_counted);
		cl->bytes_out_counted = cl->conn.bytes_out;
	}
}

/* The login is over (or the client gone): what it needed is not kept for
 * the connection's life, and the secret does not linger in freed memory. */
static void forget_login(struct client *cl)
{
	struct client_login *lg = cl->login;
	if (lg == NULL)
		return;
	if (lg->secret != NULL) {
		OPENSSL_cleanse(lg->secret, strlen(lg->secret));
		free(lg->secret);
	}
	scram_server_free(lg->scram);
	params_clear(&lg->guc);
	free(lg);
	cl->login = NULL;
}

const char *client_app_name(const struct client *cl)
{
	const char *app = params_get(pset_params(cl->tracked), "application_name");
	return app != NULL ? app : "";
}

void client_free(struct client *cl)
{
	if (list_linked(&cl->worker_node)) {
		list_del(&cl->worker_node);
		if (!cl->reaping)
			atomic_fetch_sub(&rt.n_clients, 1); /* worker_reap_client counted it out */
	}
	client_count_bytes(cl);
	if (cl->is_admin && console != NULL)
		console->gone(cl);
	conn_close(&cl->conn, &cl->worker->bufs);
	free(cl->last_sql);
	free(cl->aborted_reason);
	shared_str_put(cl->user);
	shared_str_put(cl->database);
	pset_put(cl->tracked);
	forget_login(cl);
	free(cl);
}

/* --- login --- */

/* The end of a login: ParameterStatus, BackendKeyData, ReadyForQuery. */
static void welcome_client(struct client *cl, const struct welcome *wel, uint32_t pid)
{
	const struct pset *tracked = pset_ref(wel->tracked);
	pset_put(cl->tracked);
	cl->tracked = tracked;
	msg_bytes(&cl->conn.out, wel->msgs.data, wel->msgs.len);
	cl->cancel_pid = pid;
	msg_backend_key(&cl->conn.out, cl->cancel_pid, cl->cancel_key);
	msg_ready(&cl->conn.out, PQ_TXN_IDLE);
	cl->login_done = true;
	if (ccfg(cl)->log_connections)
		log_client(cl, LOG_INFO, "login ok (%s)",
		           cl->pool ? config_pool_mode_name(pool_mode_of(cl->pool)) : "admin");
}

static void send_params_and_ready(struct client *cl, const struct params *server_params, uint32_t pid)
{
	struct welcome wel;
	if (!welcome_build(&wel, server_params, cl->tracked)) {
		client_fatal(cl, "53200", "pgsluice: out of memory", NULL);
		return;
	}
	welcome_client(cl, &wel, pid);
	welcome_clear(&wel);
}

static void request_server(struct client *cl);

/* With the client's SCRAM key, pgsluice can log in to a server holding the
 * same secret without knowing the password: the pool keeps the keys. */
static void learn_scram_keys(struct client *cl)
{
	uint8_t ck[SCRAM_KEY_LEN];
	struct scram_secret sec;
	struct client_login *lg = cl->login;
	if (lg == NULL || lg->scram == NULL || lg->secret == NULL ||
	    !scram_server_client_key(lg->scram, ck) || !scram_parse_secret(lg->secret, &sec))
		return;
	pool_learn_scram_keys(cl->pool, ck, sec.server_key);
	OPENSSL_cleanse(ck, sizeof(ck));
	OPENSSL_cleanse(&sec, sizeof(sec));
}

static void authenticated(struct client *cl)
{
	msg_auth(&cl->conn.out, AUTH_REQ_OK, NULL, 0);
	if (cl->is_admin) {
		forget_login(cl);
		if (console != NULL)
			console->welcome(cl);
		return;
	}
	const struct config *cfg = ccfg(cl);
	struct pool *p = pool_get(cfg, cl->worker->gen->users, cl->database, cl->user, &cl->login->guc);
	if (p == NULL) {
		client_fatal(cl, "53200", "pgsluice: out of memory", NULL);
		return;
	}
	pool_client_join(p, &cl->pc, cl->worker);
	cl->pool = p;
	learn_scram_keys(cl);
	forget_login(cl);
	if (pool_mode_of(cl->pool) == POOL_MODE_TRANSACTION) {
		/* Every tracked value the client asked for is one the pool's
		 * servers already reported in the same spelling: answer without
		 * a server, from the worker's cached answer. */
		const struct pset *reported = pool_server_params(cl->pool);
		const struct welcome *wel =
		    reported != NULL ? welcome_lookup(&cl->worker->welcomes, reported, cl->tracked) : NULL;
		pset_put(reported); /* the cache holds its own reference */
		if (wel != NULL && wel->without_server) {
			welcome_client(cl, wel, cl->cancel_pid);
			client_set_state(cl, CL_IDLE);
			client_flush(cl);
			return;
		}
	}
	client_flush(cl);
	client_set_state(cl, CL_LOGIN_WAIT);
	request_server(cl);
}

void client_login_server_ready(struct client *cl)
{
	struct server *s = cl->server;
	if (s->failed_internal) {
		client_fatal(cl, s->last_sqlstate ? s->last_sqlstate : "22023",
		             s->last_error ? s->last_error : "invalid startup parameter", NULL);
		return;
	}
	/* The server's spelling wins (client_encoding 'utf8' is reported as
	 * 'UTF8'), as it would on a direct connection. */
	const struct params *have = pset_params(cl->tracked);
	struct params tracked = PARAMS_INIT;
	bool ok = params_copy(&tracked, have);
	for (int i = 0; i < have->n && ok; i++) {
		const char *v = params_get(&s->params, have->items[i].name);
		if (v != NULL && strcmp(v, have->items[i].value) != 0)
			ok = params_set(&tracked, have->items[i].name, v);
	}
	ok = ok && pset_replace(&cl->tracked, &tracked); /* an equal list is the same shared entry */
	params_clear(&tracked);
	if (!ok) {
		client_fatal(cl, "53200", "pgsluice: out of memory", NULL);
		return;
	}
	bool session = pool_mode_of(cl->pool) == POOL_MODE_SESSION;
	/* In session mode the client sees its backend's real pid, so
	 * pg_backend_pid() and NOTIFY agree; the secret stays ours. */
	send_params_and_ready(cl, &s->params, session ? s->backend_pid : cl->cancel_pid);
	client_set_state(cl, CL_ACTIVE);
	client_flush(cl);
	relay_check_release(s);
}

/* Bring the linked server's tracked parameters to the client's values. */
static void apply_tracked(struct client *cl, struct server *s)
{
	/* Most links find the server already agreeing with the client: two
	 * cached digests say so without comparing any string. */
	if (tracked_digest_shared(cl->tracked) == tracked_digest(&s->params, &s->tracked_digest))
		return;
	const struct params *tracked = pset_params(cl->tracked);
	char sql[2048];
	size_t n = 0;
	sql[0] = '\0';
	for (int i = 0; i < tracked->n; i++) {
		const struct param *p = &tracked->items[i];
		const char *have = params_get(&s->params, p->name);
		if (have != NULL && strcmp(have, p->value) == 0)
			continue;
		char quoted[600];
		size_t q = 0;
		for (const char *c = p->value; *c && q < sizeof(quoted) - 3; c++) {
			if (*c == '\'')
				quoted[q++] = '\'';
			quoted[q++] = *c;
		}
		quoted[q] = '\0';
		int m = snprintf(sql + n, sizeof(sql) - n, "SET %s = '%s';", p->name, quoted);
		if (m < 0 || (size_t)m >= sizeof(sql) - n)
			break;
		n += (size_t)m;
	}
	if (n > 0)
		server_send_internal(s, sql);
}

void client_got_server(struct client *cl, struct server *s)
{
	relay_link(cl, s);
	s->saw_fatal = false;
	apply_tracked(cl, s);
	if (!cl->login_done) {
		/* Login answers may release s at once (transaction mode): after
		 * client_login_server_ready, s is no longer ours to touch. */
		if (s->internal_rfq == 0)
			client_login_server_ready(cl);
		else
			relay_flush_server(s);
		return;
	}
	client_set_state(cl, CL_ACTIVE);
	relay_pump_client(cl);
}

static void request_server(struct client *cl)
{
	struct pool_server *ps = NULL;
	if (cl->state != CL_LOGIN_WAIT)
		client_set_state(cl, CL_WAITING);
	enum pool_checkout_result r = pool_checkout(cl->pool, &cl->pc, clock_event_usec(), &ps);
	struct server *s = ps != NULL ? server_of_pool(ps) : NULL;
	if (r == POOL_GOT_SERVER) {
		server_attach(s, cl->worker);
		client_got_server(cl, s);
		return;
	}
	if (r == POOL_UNREACHABLE) {
		struct pool_figures f;
		pool_figures(cl->pool, clock_now_usec(), &f);
		char msg[400];
		/* The stored reason is PostgreSQL's own error or our connect error. */
		if (f.last_error[0] != '\0')
			snprintf(msg, sizeof(msg), "%s (server unreachable; retried with backoff)",
			         f.last_error);
		else
			snprintf(msg, sizeof(msg), "pgsluice: pool %s cannot reach its server",
			         cl->pool->name);
		log_client(cl, LOG_WARNING, "refused: server unreachable (%d failed attempts in a row)",
		           f.connect_failures_in_row);
		client_fail_wait(cl, "08006", msg, NULL);
		return;
	}
	if (r == POOL_REFUSED) {
		char msg[300];
		snprintf(msg, sizeof(msg),
		         "pgsluice: pool %s refused the request: max_waiting_clients=%d clients already wait "
		         "for a "
		         "server connection; see SHOW POOLS",
		         cl->pool->name, atomic_load(&cl->pool->max_waiting));
		log_client(cl, LOG_WARNING, "refused: max_waiting_clients=%d reached",
		           atomic_load(&cl->pool->max_waiting));
		client_refuse_request(cl, "53300", msg);
		return;
	}
	if (r == POOL_WAIT_LAUNCH)
		server_launch(cl->pool, cl->worker);
	else if (r == POOL_WAIT_CHECK)
		server_start_check(s, cl->worker);
}

void client_fail_wait(struct client *cl, const char *sqlstate, const char *message, const char *detail)
{
	if (cl->closing)
		return;
	if (!cl->login_done) {
		client_fatal(cl, sqlstate, message, detail);
		return;
	}
	/* Logged in already: the client stays and can retry. */
	struct buf *b = cl->conn.in;
	if (b != NULL)
		b->start = b->scan = b->end = 0;
	cl->conn.body_left = 0;
	client_set_state(cl, CL_IDLE);
	client_error(cl, "ERROR", sqlstate, message, detail, NULL, PQ_TXN_IDLE);
}

void client_server_gone(struct client *cl, bool server_died, bool fatal_relayed)
{
	relay_unlink(cl, cl->server);
	if (cl->closing)
		return;
	if (!server_died) {
		client_set_state(cl, CL_IDLE);
		client_flush(cl);
		/* More input may already be here (pipelined after the last Sync). */
		if (cl->conn.in != NULL && !buf_is_empty(cl->conn.in))
			event_active(cl->conn.ev_read, EV_READ, 0);
		return;
	}
	if (fatal_relayed) {
		cl->fatal_sent = true;
		client_flush(cl);
		client_close(cl, "server sent FATAL");
		return;
	}
	client_fatal(cl, "08006", "pgsluice: server connection closed unexpectedly", NULL);
}

/* --- startup and authentication --- */

static bool user_may_admin(const struct config *cfg, const char *user)
{
	return config_list_contains(cfg->admin_users, user) || config_list_contains(cfg->stats_users, user);
}

static void make_cancel_key(struct client *cl)
{
	uint32_t r = worker_random(cl->worker);
	/* The key says which worker owns the client, so a CancelRequest
	 * arriving on any worker goes straight to the right one. */
	uint32_t nw = (uint32_t)rt.n_workers;
	cl->cancel_key = r - (r % nw) + (uint32_t)cl->worker->id;
	if (cl->cancel_key % nw != (uint32_t)cl->worker->id)
		cl->cancel_key = (uint32_t)cl->worker->id;
	cl->cancel_pid = 0x40000000u | (atomic_fetch_add(&rt.next_fake_pid, 1) & 0x3fffffffu);
}

static void start_auth(struct client *cl)
{
	const struct config *cfg = ccfg(cl);
	struct cfg_gen *g = cl->worker->gen;
	const char *secret = g->users != NULL ? userlist_find(g->users, cl->user) : NULL;
	if (cfg->auth_type == AUTH_TRUST) {
		authenticated(cl);
		return;
	}
	if (secret == NULL) {
		log_client(cl, LOG_WARNING, "login failed: no such user in auth_file");
		client_fatal(cl, "28000", "pgsluice: no such user", NULL);
		return;
	}
	cl->login->secret = strdup(secret);
	if (cl->login->secret == NULL) {
		client_fatal(cl, "53200", "pgsluice: out of memory", NULL);
		return;
	}
	bool is_scram = scram_is_secret(secret);
	client_set_state(cl, CL_AUTH);
	if (cfg->auth_type == AUTH_PLAIN) {
		cl->login->auth_step = AUTH_REQ_PASSWORD;
		msg_auth(&cl->conn.out, AUTH_REQ_PASSWORD, NULL, 0);
	} else if (cfg->auth_type == AUTH_MD5 && !is_scram) {
		cl->login->auth_step = AUTH_REQ_MD5;
		uint32_t salt = worker_random(cl->worker);
		memcpy(cl->login->md5_salt, &salt, 4);
		msg_auth(&cl->conn.out, AUTH_REQ_MD5, cl->login->md5_salt, 4);
	} else {
		struct scram_secret sec;
		bool ok = is_scram ? scram_parse_secret(secret, &sec)
		                   : (!md5_is_secret(secret) && scram_secret_from_password(secret, &sec));
		if (!ok) {
			log_client(cl, LOG_WARNING,
			           "login failed: auth_file secret cannot be used for SCRAM");
			client_fatal(cl, "28P01", "password authentication failed", NULL);
			return;
		}
		cl->login->scram = scram_server_new(&sec);
		cl->login->auth_step = AUTH_REQ_SASL;
		static const char mech[] = SCRAM_MECHANISM "\0";
		msg_auth(&cl->conn.out, AUTH_REQ_SASL, mech, sizeof(mech));
	}
	client_flush(cl);
}

static void auth_failed(struct client *cl, const char *why)
{
	log_client(cl, LOG_WARNING, "login failed: %s", why);
	char msg[200];
	snprintf(msg, sizeof(msg), "password authentication failed for user \"%s\"", cl->user);
	client_fatal(cl, "28P01", msg, NULL);
}

static void auth_message(struct client *cl, const uint8_t *body, size_t n)
{
	char err[200];
	if (cl->login->auth_step == AUTH_REQ_PASSWORD || cl->login->auth_step == AUTH_REQ_MD5) {
		if (n == 0 || body[n - 1] != '\0') {
			client_fatal(cl, "08P01", "pgsluice: malformed password message", NULL);
			return;
		}
		const char *given = (const char *)body;
		bool ok;
		if (cl->login->auth_step == AUTH_REQ_PASSWORD) {
			if (md5_is_secret(cl->login->secret)) {
				char m[MD5_SECRET_LEN + 1];
				ok = md5_secret(given, cl->user, m) && strcmp(m, cl->login->secret) == 0;
			} else {
				ok = strcmp(given, cl->login->secret) == 0;
			}
		} else {
			char expect[MD5_SECRET_LEN + 1];
			ok = md5_response(cl->login->secret, cl->user, cl->login->md5_salt, expect) &&
			     strcmp(expect, given) == 0;
		}
		if (!ok) {
			auth_failed(cl, "wrong password");
			return;
		}
		authenticated(cl);
		return;
	}
	if (cl->login->auth_step == AUTH_REQ_SASL) {
		/* SASLInitialResponse: mechanism, int32 length, data. */
		const char *mech = (const char *)body;
		size_t ml = strnlen(mech, n);
		if (ml == n || n < ml + 5 || strcmp(mech, SCRAM_MECHANISM) != 0) {
			client_fatal(cl, "08P01", "pgsluice: unsupported or malformed SASL mechanism", NULL);
			return;
		}
		uint32_t dl = frame_be32(body + ml + 1);
		if (dl != n - ml - 5) {
			client_fatal(cl, "08P01", "pgsluice: malformed SASLInitialResponse", NULL);
			return;
		}
		char *first = NULL;
		if (!scram_server_first(cl->login->scram, (const char *)body + ml + 5, dl, &first, err,
		                        sizeof(err))) {
			client_fatal(cl, "08P01", err, NULL);
			return;
		}
		msg_auth(&cl->conn.out, AUTH_REQ_SASL_CONT, first, strlen(first));
		free(first);
		cl->login->auth_step = AUTH_REQ_SASL_CONT;
		client_flush(cl);
		return;
	}
	if (cl->login->auth_step == AUTH_REQ_SASL_CONT) {
		bool proof_ok = false;
		char *fin = NULL;
		if (!scram_server_final(cl->login->scram, (const char *)body, n, &proof_ok, &fin, err,
		                        sizeof(err))) {
			client_fatal(cl, "08P01", err, NULL);
			return;
		}
		if (!proof_ok) {
			free(fin);
			auth_failed(cl, "wrong SCRAM proof");
			return;
		}
		msg_auth(&cl->conn.out, AUTH_REQ_SASL_FIN, fin, strlen(fin));
		free(fin);
		authenticated(cl);
		return;
	}
	client_fatal(cl, "08P01", "pgsluice: unexpected message during authentication", NULL);
}

static bool split_params(struct client *cl, struct startup *st, char *err, size_t errlen)
{
	const struct config *cfg = ccfg(cl);
	struct params all = PARAMS_INIT, tracked = PARAMS_INIT;
	bool ok = true;
	for (int i = 0; i < st->params.n && ok; i++)
		ok = params_set(&all, st->params.items[i].name, st->params.items[i].value);
	if (ok && st->options != NULL && !startup_split_options(st->options, &all, err, errlen)) {
		params_clear(&all);
		return false;
	}
	for (int i = 0; i < all.n && ok; i++) {
		const struct param *p = &all.items[i];
		if (strncmp(p->name, "_pq_.", 5) == 0 ||
		    config_list_contains(cfg->ignore_startup_parameters, p->name))
			continue;
		if (tracked_param(p->name))
			ok = params_set(&tracked, p->name, p->value);
		else
			ok = params_set(&cl->login->guc, p->name, p->value);
	}
	ok = ok && pset_replace(&cl->tracked, &tracked);
	params_clear(&all);
	params_clear(&tracked);
	if (!ok)
		snprintf(err, errlen, "out of memory");
	return ok;
}

static void handle_startup(struct client *cl, struct startup *st)
{
	const struct config *cfg = ccfg(cl);
	char err[256];
	if (st->user == NULL || st->user[0] == '\0') {
		client_fatal(cl, "28000", "no PostgreSQL user name specified in startup packet", NULL);
		return;
	}
	cl->user = shared_str(st->user);
	cl->database = shared_str(st->database != NULL && st->database[0] ? st->database : st->user);
	cl->login = calloc(1, sizeof(*cl->login));
	if (cl->user == NULL || cl->database == NULL || cl->login == NULL) {
		client_fatal(cl, "53200", "pgsluice: out of memory", NULL);
		return;
	}
	if (atomic_load(&rt.n_clients) > cfg->max_client_conn) {
		char msg[160];
		snprintf(msg, sizeof(msg), "pgsluice: no more connections allowed (max_client_conn=%d)",
		         cfg->max_client_conn);
		atomic_fetch_add(&rt.refused_max_client_conn, 1);
		log_client(cl, LOG_WARNING, "refused: max_client_conn=%d reached", cfg->max_client_conn);
		client_fatal(cl, "53300", msg, NULL);
		return;
	}
	if (atomic_load(&rt.shutting_down)) {
		client_fatal(cl, "57P01", "pgsluice: the pooler is shutting down", NULL);
		return;
	}
	if (st->replication != NULL && strcmp(st->replication, "false") != 0 &&
	    strcmp(st->replication, "0") != 0) {
		client_fatal(cl, "0A000", "pgsluice: replication connections are not supported", NULL);
		return;
	}
	if (!split_params(cl, st, err, sizeof(err))) {
		client_fatal(cl, "22023", err, NULL);
		return;
	}
	/* 3.x with x > 0: offer 3.0 and name the options we do not know, as
	 * PostgreSQL does. */
	if ((st->version & 0xffff) != 0 || st->params.n > 0) {
		const char *opts[32];
		int n_opts = 0;
		for (int i = 0; i < st->params.n && n_opts < 32; i++)
			if (strncmp(st->params.items[i].name, "_pq_.", 5) == 0)
				opts[n_opts++] = st->params.items[i].name;
		if ((st->version & 0xffff) != 0 || n_opts > 0)
			msg_negotiate_version(&cl->conn.out, 0, n_opts, opts);
	}
	make_cancel_key(cl);
	if (strcmp(cl->database, "pgsluice") == 0 || strcmp(cl->database, "pgbouncer") == 0) {
		if (!user_may_admin(cfg, cl->user)) {
			log_client(cl, LOG_WARNING,
			           "admin console refused: not in admin_users or stats_users");
			client_fatal(cl, "28000", "pgsluice: not allowed to use the admin console", NULL);
			return;
		}
		cl->is_admin = true;
		cl->admin_full = config_list_contains(cfg->admin_users, cl->user);
	} else if (config_find_db(cfg, cl->database) == NULL) {
		char msg[200];
		snprintf(msg, sizeof(msg), "pgsluice: no such database: %s", cl->database);
		log_client(cl, LOG_WARNING, "login refused: no such database");
		client_fatal(cl, "3D000", msg, NULL);
		return;
	}
	start_auth(cl);
}

static void read_startup(struct client *cl)
{
	for (;;) {
		struct buf *b = cl->conn.in;
		if (b == NULL || b->start == b->end || cl->closing)
			return;
		struct startup st;
		size_t used = 0;
		char err[200];
		memset(&st, 0, sizeof(st));
		enum startup_result r =
		    startup_parse(b->data + b->start, b->end - b->start, &st, &used, err, sizeof(err));
		if (r == STARTUP_NEED_MORE) {
			buf_compact(b);
			return;
		}
		if (r == STARTUP_BAD) {
			log_client(cl, LOG_WARNING, "bad startup packet: %s", err);
			bool version = strstr(err, "protocol") != NULL;
			client_fatal(cl, version ? "0A000" : "08P01", err, NULL);
			startup_free(&st);
			return;
		}
		b->start += (uint32_t)used;
		b->scan = b->start;
		switch (st.kind) {
		case STARTUP_SSL_REQUEST:
		case STARTUP_GSSENC_REQUEST:
			/* Neither is offered yet: 'N' and the client goes on in the clear. */
			msg_byte(&cl->conn.out, PQ_ENCRYPTION_REFUSED);
			client_flush(cl);
			break;
		case STARTUP_CANCEL_REQUEST: {
			uint32_t target = st.cancel_key % (uint32_t)rt.n_workers;
			struct worker_msg *m = worker_msg_new(WMSG_CANCEL);
			if (m != NULL) {
				m->pid = st.cancel_pid;
				m->key = st.cancel_key;
				worker_post(&rt.workers[target], m);
			}
			startup_free(&st);
			client_close(cl, "cancel request handled");
			return;
		}
		case STARTUP_MESSAGE:
			if (b->start != b->end) {
				startup_free(&st);
				client_fatal(cl, "08P01",
				             "pgsluice: data after the startup packet before authentication",
				             NULL);
				return;
			}
			handle_startup(cl, &st);
			startup_free(&st);
			return;
		}
		startup_free(&st);
	}
}

static void read_auth(struct client *cl)
{
	while (cl->state == CL_AUTH && !cl->closing) {
		struct frame f;
		const uint8_t *body;
		size_t n;
		enum frame_result r = conn_next_message(&cl->conn, FRAME_FROM_CLIENT, &f, &body, &n);
		if (r == FRAME_NEED_MORE)
			return;
		if (r == FRAME_OK && f.type == PqMsg_Terminate) {
			client_close(cl, "client left during authentication");
			return;
		}
		if (r != FRAME_OK || f.type != PqMsg_PasswordMessage) {
			client_fatal(cl, "08P01", "pgsluice: expected a password message", NULL);
			return;
		}
		auth_message(cl, body, n);
	}
}

/* ROLLBACK, ABORT, COMMIT or END, with optional WORK/TRANSACTION and ';'. */
static bool ends_transaction(const char *sql)
{
	static const char *const verbs[] = {"rollback", "abort", "commit", "end"};
	static const char *const nouns[] = {"work", "transaction"};
	while (isspace((unsigned char)*sql))
		sql++;
	size_t n = 0;
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]) && n == 0; i++)
		if (strncasecmp(sql, verbs[i], strlen(verbs[i])) == 0)
			n = strlen(verbs[i]);
	if (n == 0)
		return false;
	sql += n;
	while (isspace((unsigned char)*sql))
		sql++;
	for (size_t i = 0; i < sizeof(nouns) / sizeof(nouns[0]); i++) {
		size_t k = strlen(nouns[i]);
		if (strncasecmp(sql, nouns[i], k) == 0 && !isalnum((unsigned char)sql[k])) {
			sql += k;
			break;
		}
	}
	while (isspace((unsigned char)*sql) || *sql == ';')
		sql++;
	return *sql == '\0';
}

bool client_next_request(struct client *cl, struct frame *f, const uint8_t **body, size_t *n)
{
	enum frame_result r = conn_next_message(&cl->conn, FRAME_FROM_CLIENT, f, body, n);
	if (r == FRAME_NEED_MORE)
		return false;
	if (r != FRAME_OK) {
		log_client(cl, LOG_WARNING, "protocol violation: invalid message (%s)",
		           r == FRAME_BAD_TYPE ? "unknown type" : "bad length");
		client_fatal(cl, "08P01", "pgsluice: invalid message from client", NULL);
		return false;
	}
	cl->last_activity = clock_event_usec();
	if (f->type == PqMsg_Terminate) {
		client_close(cl, "client sent Terminate");
		return false;
	}
	return true;
}

/* After idle_transaction_timeout the transaction is gone but the client
 * does not know: every statement gets 25P03 with the reason, as
 * PostgreSQL answers 25P02 in an aborted transaction, until the client
 * ends the transaction. No server is needed for that. */
static void aborted_input(struct client *cl)
{
	static const char hint[] = "end the transaction with ROLLBACK and retry it";
	struct frame f;
	const uint8_t *body;
	size_t n;
	while (client_next_request(cl, &f, &body, &n)) {
		if (f.type == PqMsg_Query) {
			const char *sql;
			if (msg_read_cstring(body, n, &sql) && ends_transaction(sql)) {
				log_client(cl, LOG_INFO,
				           "ended the transaction idle_transaction_timeout rolled back");
				msg_command_complete(&cl->conn.out, "ROLLBACK");
				msg_ready(&cl->conn.out, PQ_TXN_IDLE);
				free(cl->aborted_reason);
				cl->aborted_reason = NULL;
				break;
			}
			msg_error(&cl->conn.out, false, "ERROR", "25P03", cl->aborted_reason, NULL, hint);
			msg_ready(&cl->conn.out, PQ_TXN_FAILED);
		} else if (f.type == PqMsg_Sync) {
			cl->aborted_skip_to_sync = false;
			msg_ready(&cl->conn.out, PQ_TXN_FAILED);
		} else if (!cl->aborted_skip_to_sync) {
			cl->aborted_skip_to_sync = true;
			msg_error(&cl->conn.out, false, "ERROR", "25P03", cl->aborted_reason, NULL, hint);
		}
	}
	if (cl->closing || !client_flush(cl))
		return;
	if (cl->aborted_reason == NULL && cl->conn.in != NULL && !buf_is_empty(cl->conn.in))
		event_active(cl->conn.ev_read, EV_READ, 0); /* what follows the ROLLBACK runs normally */
	else
		conn_release_in(&cl->conn, &cl->worker->bufs);
}

/* Input while the client has no server: a Terminate, or the start of a
 * request that needs one. */
static void idle_input(struct client *cl)
{
	struct buf *b = cl->conn.in;
	if (b == NULL || b->start == b->end)
		return;
	struct frame f;
	enum frame_result r = frame_header(FRAME_FROM_CLIENT, b->data + b->start, b->end - b->start, &f);
	if (r == FRAME_NEED_MORE)
		return;
	if (r != FRAME_OK) {
		log_client(cl, LOG_WARNING, "protocol violation: bad message header (type 0x%02x)",
		           b->data[b->start]);
		client_fatal(cl, "08P01", "pgsluice: invalid message from client", NULL);
		return;
	}
	if (f.type == PqMsg_Terminate) {
		client_close(cl, "client sent Terminate");
		return;
	}
	if (cl->is_admin) {
		if (console != NULL)
			console->input(cl);
		return;
	}
	if (cl->aborted_reason != NULL) {
		aborted_input(cl);
		return;
	}
	request_server(cl);
}

static void client_readable(struct client *cl)
{
	if (cl->closing)
		return;
	if (cl->state == CL_ACTIVE && cl->server != NULL) {
		cl->last_activity = clock_event_usec();
		relay_client_readable(cl);
		return;
	}
	if (conn_in_full(&cl->conn)) {
		/* Waiting with a full buffer: stop reading until a server takes it. */
		conn_want_read(&cl->conn, false);
		if (cl->state == CL_IDLE)
			idle_input(cl);
		return;
	}
	enum io_result r = conn_read(&cl->conn, &cl->worker->bufs);
	if (r == IO_CLOSED || r == IO_ERROR) {
		client_close(cl, r == IO_CLOSED ? "client closed the connection" : "client read error");
		return;
	}
	cl->last_activity = clock_event_usec();
	switch (cl->state) {
	case CL_STARTUP:
		read_startup(cl);
		break;
	case CL_AUTH:
		read_auth(cl);
		break;
	case CL_IDLE:
		idle_input(cl);
		break;
	default:
		break; /* waiting: keep the bytes for the server */
	}
	/* An idle client holds no input buffer (a lent 32 kB buffer with one
	 * touched page is most of what an idle client would cost). Only states
	 * in which no other thread can link a server to it are looked at. */
	if (!cl->closing && (cl->state == CL_IDLE || cl->state == CL_STARTUP || cl->state == CL_AUTH))
		conn_release_in(&cl->conn, &cl->worker->bufs);
}

static void client_read_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	int64_t outer = clock_event_begin();
	client_readable(arg);
	clock_event_end(outer);
}

static void client_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client *cl = arg;
	(void)fd;
	(void)what;
	if (cl->closing)
		return;
	int64_t outer = clock_event_begin();
	if (cl->state == CL_ACTIVE && cl->server != NULL)
		relay_client_writable(cl);
	else
		client_flush(cl);
	clock_event_end(outer);
}

/* --- refusals --- */

/* The client's pending request cannot be served (wait timeout, queue
 * full): drop it and answer each Query/Sync in it with ERROR +
 * ReadyForQuery, so the client stays connected and can retry. */
void client_refuse_request(struct client *cl, const char *sqlstate, const char *msg)
{
	if (!cl->login_done) {
		client_fatal(cl, sqlstate, msg, NULL);
		return;
	}
	struct buf *b = cl->conn.in;
	int units = 0;
	uint32_t pos = b != NULL ? b->start : 0;
	while (b != NULL && pos < b->end) {
		struct frame f;
		if (frame_header(FRAME_FROM_CLIENT, b->data + pos, b->end - pos, &f) != FRAME_OK ||
		    pos + frame_total(&f) > b->end) {
			client_fatal(cl, sqlstate, msg, NULL);
			return;
		}
		if (f.type == PqMsg_Query || f.type == PqMsg_Sync || f.type == PqMsg_FunctionCall)
			units++;
		pos += (uint32_t)frame_total(&f);
	}
	if (b != NULL)
		b->start = b->scan = b->end = 0;
	client_set_state(cl, CL_IDLE);
	conn_want_read(&cl->conn, true);
	if (units == 0)
		units = 1;
	for (int i = 0; i < units; i++)
		msg_error(&cl->conn.out, false, "ERROR", sqlstate, msg, NULL, NULL);
	for (int i = 0; i < units; i++)
		msg_ready(&cl->conn.out, PQ_TXN_IDLE);
	client_flush(cl);
}

bool client_holds_idle(const struct client *cl, int64_t now, int64_t limit)
{
	const struct server *s = cl->server;
	if (limit <= 0 || s == NULL || cl->state != CL_ACTIVE || s->pending_rfq > 0 || s->answered_at == 0)
		return false;
	if (s->txn_status == PQ_TXN_IDLE && pool_mode_of(cl->pool) != POOL_MODE_SESSION)
		return false;
	return now - s->answered_at >= limit;
}

void client_handle_cancel(struct worker *w, uint32_t pid, uint32_t key)
{
	struct list *it;
	list_for_each(it, &w->clients)
	{
		struct client *cl = container_of(it, struct client, worker_node);
		if (cl->cancel_key != key || cl->cancel_pid != pid || !cl->login_done)
			continue;
		/* Only the server linked to this client right now: a server that
		 * has moved on is never hit. */
		if (cl->server != NULL && cl->server->client == cl && cl->state == CL_ACTIVE) {
			log_client(cl, LOG_INFO, "cancel request forwarded to backend %u",
			           cl->server->backend_pid);
			server_send_cancel(cl->server);
		}
		return;
	}
	log_msg(LOG_INFO, "cancel request for an unknown key ignored");
}
