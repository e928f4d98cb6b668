/* server.h — one connection to PostgreSQL and its state machine:
 * connecting → login → idle ⇄ active → reset → idle, or closing from anywhere.
 * Owns: its socket (struct conn), its copies of the connect target, the
 *       ParameterStatus values it reported, its BackendKeyData.
 * Exports: server_launch(), server_attach(), server_release(),
 *          server_close(), server_set_state(), server_carry_out().
 * Never: is touched by two threads at once: while idle it belongs to its
 *        pool (pool.lock), otherwise to the worker it is attached to. */
#ifndef PGS_SERVER_H
#define PGS_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include <sys/socket.h>

#include "auth/pglogin.h"
#include "conn.h"
#include "pool.h"
#include "log.h"
#include "relay.h"
#include "tracked.h"
#include "util/list.h"
#include "util/params.h"
#include "util/str.h"

struct pool;
struct client;
struct worker;
struct evdns_getaddrinfo_request;

struct server {
	struct pool_server ps; /* its state (the pool list it is on) and what the pool keeps of it */
	uint64_t id;
	struct conn conn;
	struct worker *worker;   /* the worker whose base the events are on */
	struct pool *pool;       /* borrowed; pools live as long as the process */
	struct client *client;   /* linked client (borrowed), while ACTIVE */
	struct list worker_node; /* worker->servers while not idle; worker->reap_servers once closed */

	/* connect target, copied from the pool's settings at launch */
	char *host; /* the host this connection went to */
	int port;
	char *dbname, *user, *password;
	struct params startup; /* GUCs sent in the StartupMessage */
	struct pglogin login;  /* its user and password point at the copies above */
	int64_t
	    deadline; /* connect/login/drain deadline (monotonic usec), 0: none; checked by the worker tick */
	struct sockaddr_storage addr; /* where it connected, for cancel requests */
	socklen_t addr_len;
	struct evdns_getaddrinfo_request *dns_req; /* a host name lookup in flight, or NULL */
	char *last_error; /* the server's error during login or one of our own queries (owned) */
	char *last_sqlstate;
	char *last_detail;

	/* what PostgreSQL told us */
	uint32_t backend_pid, backend_key;
	struct params params; /* current ParameterStatus values */
	struct tracked_digest tracked_digest;
	char txn_status; /* of the last ReadyForQuery: 'I', 'T' or 'E' */

	/* protocol accounting while linked or draining */
	int pending_rfq;   /* client Sync/Query/FunctionCall not yet answered by ReadyForQuery */
	int internal_rfq;  /* our own queries (SET, ROLLBACK, reset) not yet answered */
	bool ext_unsynced; /* extended-protocol messages since the last Sync */
	bool copy_in, copy_out;
	bool saw_fatal; /* a FATAL went to the client: its close is explained */
	bool reset_rollback_sent, reset_query_sent;
	bool failed_internal;  /* one of our own queries failed */
	int cancels_in_flight; /* cancel requests sent and not yet finished */
	struct list cancels;   /* struct cancel_req (server_node) */

	int64_t linked_at;    /* monotonic usec */
	int64_t busy_since;   /* when pending_rfq last went from 0 to 1 (query_timeout) */
	int64_t xact_started; /* first query after the server was last idle; 0: none */
	int64_t answered_at; /* when the client's last request was answered (or the link began): idle since */
	bool timeout_cancel_sent;
	bool idle_watch; /* idle in the pool, read events on this worker's base mean death */
};

#define log_server(s, level, fmt, ...)                                                                       \
	log_msg(level, "S-%llu %s: " fmt, (unsigned long long)(s)->id, server_pool_name(s), ##__VA_ARGS__)

const char *server_pool_name(const struct server *s);

/* Our own queries are in charge of s: a reset after a client, or a check. */
static inline struct server *server_of_pool(struct pool_server *ps)
{
	return container_of(ps, struct server, ps);
}

static inline bool server_in_upkeep(const struct server *s)
{
	return s->ps.state == SV_RESET || s->ps.state == SV_TESTING;
}

/* Run server_check_query on s (taken from the idle list, state TESTING) on
 * worker w, bounded by server_check_timeout: a pass returns it to the pool,
 * an error, a leftover transaction or silence closes it. */
void server_start_check(struct server *s, struct worker *w);

/* Start a new connection for pool p on worker w (the caller has counted it
 * in the pool). Failures are reported to the pool like a failed login. */
void server_launch(struct pool *p, struct worker *w);

/* A server just linked to a client on worker w by pool_checkout() or a
 * hand-off: take its events onto w's base. */
void server_attach(struct server *s, struct worker *w);
/* s, linked to cl with a hand-off counted, goes to cl's worker's inbox. */
void server_hand_off(struct server *s, struct client *cl);
/* The link to a client ends (release, departure, close): the hold time is observed. */
void server_note_unlink(struct server *s);

/* The linked client is done with s (transaction end, or client gone):
 * reset what must be reset and return it to the pool, or close it. */
void server_release(struct server *s, const char *why);

/* Close and count it out of its pool; safe in any state on its own worker. */
void server_close(struct server *s, const char *reason);
/* Close an idle server that pool.c has already removed from the idle list,
 * from any thread (the janitor). */
void server_close_detached(struct server *s, const char *reason);

/* The login to PostgreSQL finished, or a reset did: give s to its pool. */
void server_return_to_pool(struct server *s);

/* Continue a reset when nothing is in flight any more. */
void server_reset_step(struct server *s);

/* The one way a server changes state: it moves to that list of its pool
 * (pool_server_move), and every figure follows. Closing twice is allowed. */
void server_set_state(struct server *s, enum server_state to);
void server_free(struct server *s);
/* For pool_registry_destroy at exit. */
void server_free_idle(struct pool_server *ps);

/* Carry out what a pool decided (struct pool_work): start its launches on
 * worker w (NULL, on the main thread: handed to a worker each), hand its
 * handed servers to their waiters, close its closed ones, tell its failed
 * waiters. */
void server_carry_out(struct pool_work *work, struct worker *w);
/* A counted launch could not start (out of memory): the pool is told, and
 * the waiters it gives up on. */
void server_launch_failed(struct pool *p, const char *why);
/* The one way waiters the pool gave up on are told (each has a hand-off
 * counted): on this worker at once, others through their inbox. */
void server_fail_waiters(struct list *failed, const char *sqlstate, const char *message, const char *detail);

/* Queue one of our own simple queries (SET, ROLLBACK, reset); its
 * responses are swallowed. */
bool server_send_internal(struct server *s, const char *sql);

/* Open a CancelRequest connection to PostgreSQL for s's backend. */
void server_send_cancel(struct server *s);

#endif
