/* pool.h — one pool per (database, user, startup GUCs): a locked data
 * structure of servers and waiting clients.
 * Owns: every server of the pool on one counted list per state (the idle
 *       list is one of them), the FIFO wait queue, the count of its
 *       logged-in clients, connect pacing and backoff, its settings copy
 *       (replaced on reload).
 * Exports: pool_get(), pool_checkout(), pool_give(), pool_leave_queue(),
 *          pool_server_move(), pool_server_closed(), pool_connect_failed(),
 *          pool_maintain_all(), the admin verbs, and pool_figures(): the one
 *          source of every figure a pool reports.
 * Never: calls into servers, clients, workers or the runtime. A call that
 *        decides work returns it (struct pool_work: start N connections,
 *        hand this server to that waiter, close these, tell those) and the
 *        caller carries it out. Does no I/O. Lock rules: pool.lock is taken
 *        only in pool.c, and nothing outside pool.c runs under it but the
 *        read-only visitor of pool_for_each_idle(); never two pools' locks
 *        at once; the registry lock, when both are needed, is taken first. */
#ifndef PGS_POOL_H
#define PGS_POOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "auth/scram.h"
#include "config.h"
#include "stats.h"
#include "util/list.h"
#include "util/params.h"
#include "util/shared.h"

struct worker;
struct userlist;

/* A server's state is the list of its pool it is on. */
enum server_state {
	SV_CONNECTING, /* TCP connect in progress */
	SV_LOGIN,      /* startup and authentication */
	SV_IDLE,       /* in its pool's idle list; watched for death */
	SV_ACTIVE,     /* linked to a client (or on its way to one) */
	SV_RESET,      /* unlinked: draining what a departed client left, then ROLLBACK / reset query */
	SV_TESTING,    /* taken from the idle list for server_check_query before anyone uses it */
	SV_CLOSED,     /* on no list of its pool any more */
};
#define SV_LISTS SV_CLOSED /* one list per state before SV_CLOSED */

/* The pool's part of a server, embedded in struct server. Guarded by the
 * pool's lock; the server's own worker reads state without it while the
 * server is not idle (nobody else moves a server it does not own). */
struct pool_server {
	struct list node;           /* on pool->servers[state] */
	struct list work_node;      /* on a pool_work list (handed or close) */
	enum server_state state;    /* moved only by pool.c (pool_server_move() for callers) */
	struct pool_client *to;     /* on a handed list: the waiter it goes to */
	struct worker *idle_worker; /* while idle: whose loop watches it (compared, never dereferenced) */
	unsigned epoch;             /* the pool's epoch at launch (RECONNECT) */
	int idle_jitter_permille;   /* server_idle_timeout is shortened by this much for this server */
	int64_t idle_since, created_at, lifetime_usec; /* monotonic usec; lifetime 0: none */
};

/* The pool's part of a client, embedded in struct client. */
struct pool_client {
	struct list node;      /* on pool->waiters while queued; then on a pool_work list while being told */
	struct worker *worker; /* the client's loop (compared, never dereferenced) */
	int64_t wait_started;  /* when its latest request for a server began (set by pool_checkout) */
	int handoffs_pending;  /* messages on their way to its worker about it; guarded by pool.lock */
	bool queued;           /* on pool->waiters; guarded by pool.lock */
};

/* Connection counters shared by every pool of one database or one user. */
struct pool_limit {
	struct list node;
	char *name;
	atomic_int used;
};

/* What a pool's servers connect to; replaced as a whole on reload. */
struct pool_settings {
	char *hosts; /* comma list; NULL: default unix socket dir */
	int port;
	char *dbname;
	char *server_user;
	char *password;         /* plaintext, "md5..." or "SCRAM-SHA-256$..."; NULL: none */
	char *application_name; /* forced by the database entry, or NULL */
	int pool_size;
	int min_pool_size;
	int max_db_connections;   /* 0: unlimited */
	int max_user_connections; /* 0: unlimited */
	int connect_concurrency;
	int max_waiting;     /* max_waiting_clients; 0: unlimited */
	int64_t check_delay; /* server_check_delay: an idle server older than this is checked; <0: never */
	int reserve_size;    /* reserve_pool_size */
	int64_t reserve_timeout; /* reserve_pool_timeout */
	int64_t login_retry;     /* server_login_retry: the longest backoff after failed connects */
	enum pool_mode mode;
	bool read_only;
	bool removed; /* the database entry is gone: no new clients */
};

struct pool {
	pthread_mutex_t lock; /* see the header comment for the rules */
	struct list node;     /* registry list; guarded by the registry lock */
	char *db_name;        /* as the client names it */
	char *user_name;
	char *params_key;            /* canonical text of guc */
	struct params guc;           /* GUCs every server of this pool starts with */
	char *name;                  /* "db/user" for messages */
	struct pool_limit *db_limit; /* borrowed from the registry */
	struct pool_limit *user_limit;
	atomic_int mode;        /* enum pool_mode, readable without the lock (reload updates it) */
	atomic_int max_waiting; /* max_waiting_clients, readable without the lock */
	atomic_uint epoch;      /* RECONNECT bumps it: servers of an older epoch are closed, not reused */

	/* guarded by lock */
	struct pool_settings *set;        /* owned */
	struct clist servers[SV_LISTS];   /* struct pool_server by state; idle: most recent first */
	struct clist waiters;             /* struct pool_client, FIFO */
	int n_launching;                  /* connections decided and counted, not started yet */
	int n_clients;                    /* logged-in clients (pool_client_join/leave) */
	unsigned next_host;               /* round robin over hosts */
	bool paused;                      /* PAUSE/KILL: queue everyone, hand out nothing, open nothing */
	const struct pset *server_params; /* ParameterStatus seen at the latest login (shared); NULL: none */
	bool have_scram_keys;             /* a client proved the same SCRAM secret: keys to log in with */
	uint8_t scram_client_key[SCRAM_KEY_LEN];
	uint8_t scram_server_key[SCRAM_KEY_LEN];
	char *last_connect_error; /* why the latest connect or login failed; NULL after a success */
	int connect_failures_in_row;
	int64_t retry_at; /* no new connect before this (backoff after failures); 0: now */

	/* readable from any thread: counters and histograms */
	struct pool_stats stats;
};

/* Work a pool call decided and its caller carries out, outside the lock. */
struct pool_work {
	struct list node; /* in a list of works (pool_maintain_all, pool_resume_db) */
	struct pool *pool;
	int launch;         /* start this many server connections (already counted) */
	struct list handed; /* struct pool_server (work_node), ACTIVE, ->to set (a hand-off counted): give it
	                       to that waiter */
	struct list close;  /* struct pool_server (work_node), CLOSED and counted out: close them */
	struct list
	    failed; /* struct pool_client, off the queue (a hand-off counted): tell them the pool gave up */
};
void pool_work_init(struct pool_work *w, struct pool *p);
static inline bool pool_work_empty(const struct pool_work *w)
{
	return w->launch == 0 && list_empty(&w->handed) && list_empty(&w->close) && list_empty(&w->failed);
}

enum pool_checkout_result {
	POOL_GOT_SERVER,  /* *out is ACTIVE, the caller links it */
	POOL_WAIT,        /* queued */
	POOL_WAIT_LAUNCH, /* queued, and the caller must start one server connection (already counted) */
	POOL_REFUSED,     /* max_waiting_clients already wait: not queued */
	POOL_WAIT_CHECK,  /* queued, and the caller must check *out (idle too long, now TESTING) */
	POOL_UNREACHABLE, /* no server, and the last connects failed moments ago (pool_figures says why) */
};

enum pool_give_result {
	POOL_GIVE_IDLE,   /* on the idle list: the caller armed its idle watch before the call */
	POOL_GIVE_WAITER, /* ACTIVE for *to, which left the queue: link them (or hand s off if *to lives
	                     elsewhere) */
	POOL_GIVE_CLOSE,  /* above the pool's size, removed, or RECONNECT: the caller closes it */
};

/* Find or create the pool; NULL on OOM. Settings are taken from cfg and
 * users (the auth_file of the same generation; NULL: none). */
struct pool *pool_get(const struct config *cfg, const struct userlist *users, const char *db_name,
                      const char *user_name, const struct params *guc);
/* The pool's mode, safe from any thread. */
static inline enum pool_mode pool_mode_of(struct pool *p)
{
	return (enum pool_mode)atomic_load_explicit(&p->mode, memory_order_relaxed);
}

/* Create, ahead of any client, the pools of [databases] entries that name
 * their user and want min_pool_size > 0, so the janitor warms them. */
void pool_prewarm(const struct config *cfg, const struct userlist *users);

/* Recompute every pool's settings from a new configuration and its auth_file. */
void pool_reconfigure_all(const struct config *cfg, const struct userlist *users);

/* A logged-in client joins its pool's count, or leaves it (and the queue);
 * leaving returns how many hand-offs are still on their way to it. */
void pool_client_join(struct pool *p, struct pool_client *pc, struct worker *w);
int pool_client_leave(struct pool *p, struct pool_client *pc);

/* cl wants a server: an idle one (preferably on worker w, cl's), or a
 * place in the queue. */
enum pool_checkout_result pool_checkout(struct pool *p, struct pool_client *pc, int64_t now,
                                        struct pool_server **out);
/* A server ready for use (logged in, reset, checked, or released by its
 * client) returns on worker w. */
enum pool_give_result pool_give(struct pool *p, struct pool_server *ps, struct worker *w,
                                struct pool_client **to);
/* Leave the wait queue; false when a server has already been linked (a
 * hand-off is on its way to the client's worker). */
bool pool_leave_queue(struct pool *p, struct pool_client *pc);
/* Add delta to a client's count of messages on their way to it; returns the new count. */
int pool_handoffs_pending(struct pool *p, struct pool_client *pc, int delta);

/* A new server's record: on no list (CLOSED) until pool_server_add. */
void pool_server_init(struct pool_server *ps, unsigned epoch, int64_t created_at);
/* A server launched for a counted connection (state CONNECTING). */
void pool_server_add(struct pool *p, struct pool_server *ps);
/* A counted connection could not even be started (out of memory). */
void pool_launch_abandoned(struct pool *p, const char *why, struct pool_work *work);
/* Move a server of p to another state (the caller owns it): the lists and
 * every figure follow. An impossible move stops a debug build. */
void pool_server_move(struct pool *p, struct pool_server *ps, enum server_state to);
/* A server of this pool is gone (closed in any state but idle-and-taken).
 * Returns true when clients still wait and another connection may be
 * started now (counted). */
bool pool_server_closed(struct pool *p, struct pool_server *ps);
/* A connect or login failed: the server is counted out (CLOSED). When the
 * pool has no server left, every waiter is taken off the queue into
 * work->failed, to be told why. The backoff decides the next launch. */
void pool_connect_failed(struct pool *p, struct pool_server *ps, const char *why, struct pool_work *work);
/* A server finished its login: the pool can reach its server again. */
void pool_connect_succeeded(struct pool *p);
/* The idle server's watch fired: take it off the idle list (RESET) if it is
 * still there; false when another worker took it a moment ago. */
bool pool_take_idle(struct pool *p, struct pool_server *ps);

/* What a new connection of p needs, copied under the lock. */
struct pool_target {
	char *host; /* owned; the next host of the list (round robin); NULL: default unix socket dir */
	int port;
	char *dbname, *user, *password; /* owned */
	struct params startup;          /* GUCs sent in the StartupMessage (the pool's, forced ones added) */
	bool have_scram_keys;           /* a client proved the same SCRAM secret: log in with its keys */
	uint8_t scram_client_key[SCRAM_KEY_LEN];
};
/* false on OOM (what was copied is freed by pool_target_clear). */
bool pool_connect_target(struct pool *p, struct pool_target *t);
void pool_target_clear(struct pool_target *t);

/* Remember the ParameterStatus set a server reported at login. */
void pool_learn_params(struct pool *p, const struct params *server_params);
/* The latest login's ParameterStatus list, with a reference for the caller
 * (pset_put it); NULL when no server has logged in yet. */
const struct pset *pool_server_params(struct pool *p);
void pool_learn_scram_keys(struct pool *p, const uint8_t ck[SCRAM_KEY_LEN], const uint8_t sk[SCRAM_KEY_LEN]);

/* The janitor's round: idle servers past server_idle_timeout or their
 * lifetime, above the size or of an older epoch are taken out to close;
 * connections are counted for waiters blocked by limits, for
 * min_pool_size and the reserve pool; a pool starved by a shared limit
 * takes the slot of another pool's idle server. Appends one malloc'd
 * struct pool_work per pool with work to do to *works (free them). */
void pool_maintain_all(const struct config *cfg, int64_t now_usec, struct list *works);

/* Admin commands on every pool of database db (NULL: all databases).
 * PAUSE: clients queue, servers stay idle, nothing new is opened; pools
 * created later for db start paused. Returns how many pools it touched. */
int pool_pause_db(const char *db);
/* How many pools serve database db. */
int pool_count_db(const char *db);
/* Whether no server of db's pools is linked or being reset. */
bool pool_db_quiet(const char *db);
/* RESUME: the queues are served from the idle lists and connections
 * counted for the rest; one malloc'd struct pool_work per pool with work
 * is appended to *works (carry them out, then free them). */
int pool_resume_db(const char *db, struct list *works);
/* RECONNECT: servers in use are closed when released, idle ones by the
 * janitor; new ones replace them as clients need them. */
int pool_reconnect_db(const char *db);

/* A pool's figures at one moment, for SHOW POOLS, /metrics, /health, the
 * stats log and client error messages: all read from the pool's lists in
 * one locked step. Clients and servers by PgBouncer's words. */
struct pool_figures {
	int cl_active;  /* linked to a server (or one is on its way) */
	int cl_idle;    /* logged in, not linked, not waiting */
	int cl_waiting; /* in the wait queue (or waiting for a login server) */
	int sv_active, sv_idle, sv_used, sv_login, sv_tested;
	int sv_total; /* every server, those being opened included */
	int pool_size;
	enum pool_mode mode;
	bool paused;
	int64_t maxwait_usec;        /* the longest current wait */
	int connect_failures_in_row; /* > 0 with no server logged in: the server is unreachable */
	char last_error[256];        /* why the latest connect failed; "" after a success */
};
void pool_figures(struct pool *p, int64_t now_usec, struct pool_figures *f);
/* No server logged in and the latest attempts failed. */
bool pool_figures_unreachable(const struct pool_figures *f);
/* A client's wait timed out: counted, with the figures for its error. */
void pool_note_wait_timeout(struct pool *p, int64_t now_usec, struct pool_figures *f);

/* Each pool in the registry (for stats and admin). */
void pool_for_each(void (*fn)(struct pool *p, void *arg), void *arg);
/* Each idle server of p, under its lock: fn must only read. */
void pool_for_each_idle(struct pool *p, void (*fn)(const struct pool_server *ps, void *arg), void *arg);
/* At exit. Idle servers are handed to fn (which frees them) unless fn is NULL (tests). */
void pool_registry_destroy(void (*free_idle)(struct pool_server *ps));

#endif
