/* client.h — one application connection and its state machine:
 * startup → auth → (login wait) → idle ⇄ waiting → active → closed.
 * Owns: its socket, its startup parameters, its auth exchange, the
 *       parameter values it has been told.
 * Exports: client_accept(), client_got_server(), client_fail_wait(),
 *          client_close(), client_error().
 * Never: frees itself on the call stack (client_close queues it), or
 *        touches a server that is not linked to it. */
#ifndef PGS_CLIENT_H
#define PGS_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "conn.h"
#include "pool.h"
#include "relay.h"
#include "log.h"
#include "util/list.h"
#include "util/params.h"
#include "util/shared.h"
#include "util/str.h"

struct pool;
struct server;
struct worker;
struct scram_server;
struct admin_pending;
struct frame;

enum client_state {
	CL_STARTUP,    /* waiting for the startup packet */
	CL_AUTH,       /* password / SASL exchange */
	CL_LOGIN_WAIT, /* authenticated; waiting for a server to finish login */
	CL_IDLE,       /* logged in, no server */
	CL_WAITING,    /* in its pool's wait queue */
	CL_ACTIVE,     /* linked to a server */
	CL_CLOSED,
};

/* "[IPv6 address, 45 characters at most]:65535" or "unix", NUL included */
#define CLIENT_ADDR_MAX 56

struct client {
	struct pool_client pc; /* its place in its pool: the queue, hand-offs on their way */
	uint64_t id;
	enum client_state state; /* changed only by client_set_state(), on its own worker */
	struct conn conn;
	struct worker *worker;
	struct list worker_node; /* worker->clients; worker->reap_clients once closed */
	struct server
	    *server; /* linked server (borrowed); set under pool.lock when linked by another thread */
	struct pool *pool;
	struct admin_pending *admin_pending; /* a command still being answered (admin.c's) */

	const char *user, *database; /* shared (util/shared.h) */
	const struct pset
	    *tracked; /* client_encoding, DateStyle, TimeZone, ... as the client knows them (shared) */
	struct client_login *login; /* until logged in: what only the login needs */
	char *last_sql; /* first LAST_SQL_MAX bytes of the latest Query or Parse (owned, lazily allocated) */
	char *aborted_reason; /* idle_transaction_timeout ended its transaction: why (owned); NULL: normal */

	int64_t connected_at, last_activity; /* monotonic usec */
	uint64_t bytes_in_counted,
	    bytes_out_counted;           /* parts of conn.bytes_* already added to the pool's stats */
	uint32_t cancel_pid, cancel_key; /* what we gave the client in BackendKeyData */

	bool reaping; /* on worker->reap_clients */
	bool is_admin;
	bool admin_full; /* in admin_users: may change things, not only look */
	bool closing;
	bool login_done;
	bool leak_reported;        /* leak_warn_timeout reported for the current hold */
	bool aborted_skip_to_sync; /* an extended-protocol batch already got its 25P03 */
	bool fatal_sent;
	char addr[CLIENT_ADDR_MAX]; /* peer address for logs */
};

#define LAST_SQL_MAX 200

/* What a client needs only while it logs in; freed once it is logged in. */
struct client_login {
	struct params guc;          /* startup GUCs that are not tracked (the pool key) */
	char *secret;               /* the auth_file secret (owned; wiped when freed) */
	struct scram_server *scram; /* a SCRAM exchange */
	uint8_t md5_salt[4];
	int auth_step;
};

/* The client's application_name as it stands ("" when it has none). */
const char *client_app_name(const struct client *cl);

static inline struct client *client_of_pool(struct pool_client *pc)
{
	return container_of(pc, struct client, pc);
}

#define log_client(cl, level, fmt, ...)                                                                      \
	log_msg(level, "C-%llu %s/%s@%s: " fmt, (unsigned long long)(cl)->id,                                \
	        (cl)->database ? (cl)->database : "-", (cl)->user ? (cl)->user : "-", (cl)->addr,            \
	        ##__VA_ARGS__)

/* What answers a client of the virtual databases (the admin console)
 * instead of a server: chosen at login (is_admin), registered at start, so
 * the connection machine knows no console. */
struct client_console {
	void (*welcome)(struct client *cl); /* authenticated */
	void (*input)(struct client *cl);   /* a request is in its input buffer */
	void (*tick)(struct client *cl);    /* worker tick while a command of it is pending */
	void (*gone)(struct client *cl);    /* about to be freed */
};
void client_set_console(const struct client_console *c);

/* A new connection accepted on w; data_waiting: its first bytes are
 * most likely in already (read them at once). */
void client_accept(struct worker *w, int fd, const char *addr, bool data_waiting);

/* s has been linked to cl (directly or by a hand-off that arrived). */
void client_got_server(struct client *cl, struct server *s);
/* The pool gave up on finding a server for cl (login to the server failed):
 * FATAL before the client's login is done, ERROR after. */
void client_fail_wait(struct client *cl, const char *sqlstate, const char *message, const char *detail);
/* The linked server finished what cl asked and was released, or died. */
void client_server_gone(struct client *cl, bool server_died, bool fatal_relayed);
/* Login finished on the linked server (tracked parameters applied). */
void client_login_server_ready(struct client *cl);

/* The next whole message of a client answered without a server (admin
 * console, aborted transaction). false: none complete yet, or the client
 * was closed (a protocol violation gets 08P01; Terminate). */
bool client_next_request(struct client *cl, struct frame *f, const uint8_t **body, size_t *n);

/* Send an ErrorResponse (plus ReadyForQuery when ready is non-zero). */
void client_error(struct client *cl, const char *severity, const char *sqlstate, const char *message,
                  const char *detail, const char *hint, char ready);
/* FATAL error then close. */
void client_fatal(struct client *cl, const char *sqlstate, const char *message, const char *detail);

void client_close(struct client *cl, const char *reason);
void client_free(struct client *cl);
void client_set_state(struct client *cl, enum client_state to);

/* Flush what is owed to the client (its out buffer and the linked server's
 * span). Returns false when the client was closed. */
bool client_flush(struct client *cl);

/* Whether cl holds its server idle, in a transaction (or, in session mode,
 * at all), for limit usec or longer: what leak_warn_timeout reports. */
bool client_holds_idle(const struct client *cl, int64_t now, int64_t limit);

/* The client's pending request cannot be served (wait timeout, queue
 * full): each Query/Sync in it gets ERROR + ReadyForQuery, and the client
 * stays connected (FATAL before its login is done). */
void client_refuse_request(struct client *cl, const char *sqlstate, const char *msg);
/* Add what the client sent and received since the last call to its pool's stats. */
void client_count_bytes(struct client *cl);
/* The console's tick for a client whose command is still being answered. */
void client_console_tick(struct client *cl);

/* A cancel request for one of w's clients. */
void client_handle_cancel(struct worker *w, uint32_t pid, uint32_t key);

#endif
