/* pool.h — one pool per (database, user, startup GUCs).
 * Owns: the idle server list, the FIFO wait queue, the pool's counters and
 *       its settings copy (replaced on reload).
 * Exports: pool_get(), pool_checkout(), pool_give(), pool_leave_queue(),
 *          pool_server_closed(), pool_connect_failed(), pool_maintain().
 * Never: does I/O or blocks while holding its lock. Lock rules: pool.lock is
 *        taken only here; never hold two pools' locks; the only lock taken
 *        under it is an event_base's (to arm an idle server's watch). */
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

struct client;
struct server;
struct worker;

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
	int max_waiting; /* max_waiting_clients; 0: unlimited */
	int64_t
	    check_delay;  /* server_check_delay: an idle server older than this is checked first; <0: never */
	int reserve_size; /* reserve_pool_size */
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
	struct pool_settings *set; /* owned */
	struct list idle;          /* struct server (pool_node), most recent first */
	struct list waiters;       /* struct client (wait_node), FIFO */
	int n_servers;             /* every server of the pool, connecting included */
	int n_connecting;
	int n_idle;
	int n_waiting;
	int n_testing;      /* servers being checked (SV_TESTING), each for a queued client */
	unsigned next_host; /* round robin over hosts */
	bool paused;        /* PAUSE/KILL: queue everyone, hand out nothing, open nothing */
	const struct pset
	    *server_params;   /* ParameterStatus seen at the latest login (shared); NULL: none yet */
	bool have_scram_keys; /* a client proved the same SCRAM secret: keys to log in with */
	uint8_t scram_client_key[SCRAM_KEY_LEN];
	uint8_t scram_server_key[SCRAM_KEY_LEN];
	char *last_connect_error; /* why the latest connect or login failed; NULL after a success */
	int connect_failures_in_row;
	int64_t retry_at; /* no new connect before this (backoff after failures); 0: now */

	/* readable from any thread: counters, histograms, and the gauges of
	 * clients (SG_CLIENTS, by enum client_state) and servers (SG_SERVERS,
	 * by enum server_state) */
	struct pool_stats stats;
};

enum pool_checkout_result {
	POOL_GOT_SERVER,  /* *out is linked to the client */
	POOL_WAIT,        /* queued */
	POOL_WAIT_LAUNCH, /* queued, and the caller must start one server connection (already counted) */
	POOL_REFUSED,     /* max_waiting_clients already wait: not queued */
	POOL_WAIT_CHECK,  /* queued, and the caller must check *out (idle too long, now TESTING) */
	POOL_UNREACHABLE, /* no server, and the last connects failed moments ago (pool_figures says why) */
};

/* Find or create the pool; NULL on OOM. Settings are taken from cfg. */
struct pool *pool_get(const struct config *cfg, const char *db_name, const char *user_name,
                      const struct params *guc);
/* The pool's mode, safe from any thread. */
static inline enum pool_mode pool_mode_of(struct pool *p)
{
	return (enum pool_mode)atomic_load_explicit(&p->mode, memory_order_relaxed);
}

/* Create, ahead of any client, the pools of [databases] entries that name
 * their user and want min_pool_size > 0, so the janitor warms them. */
void pool_prewarm(const struct config *cfg);

/* Recompute every pool's settings from a new configuration. */
void pool_reconfigure_all(const struct config *cfg);

enum pool_checkout_result pool_checkout(struct pool *p, struct client *cl, struct worker *w,
                                        struct server **out);
/* A server ready for use (logged in, or reset to idle) returns. If a client
 * waits, it is linked to s and returned; otherwise s is put on the idle
 * list (its idle watch armed on w's base) and NULL is returned. *close_it
 * is set when the pool is above its size and s should be closed instead. */
struct client *pool_give(struct pool *p, struct server *s, struct worker *w, bool *close_it);
/* Leave the wait queue; false when a server has already been linked (a
 * hand-off is on its way to the client's worker). */
bool pool_leave_queue(struct pool *p, struct client *cl);
/* Add delta to a client's count of messages on their way to it; returns the new count. */
int pool_handoffs_pending(struct pool *p, struct client *cl, int delta);
/* A server of this pool is gone (closed in any state). Returns true when
 * clients still wait and another connection may be started now (counted). */
bool pool_server_closed(struct pool *p, struct server *s);
/* A connect or login failed: the server is counted out. When the pool has
 * no server left, every waiter is taken off the queue and returned through
 * *failed (a list of clients linked by wait_node) to be told why. Returns
 * true when clients still wait and a new connection may be started now (counted). */
bool pool_connect_failed(struct pool *p, struct server *s, const char *why, struct list *failed);
/* A server finished its login: the pool can reach its server again. */
void pool_connect_succeeded(struct pool *p);
/* The idle server's watch fired: remove it if it is still idle. */
bool pool_take_idle(struct pool *p, struct server *s);
/* Remember the ParameterStatus set a server reported at login. */
void pool_learn_params(struct pool *p, const struct params *server_params);
/* The latest login's ParameterStatus list, with a reference for the caller
 * (pset_put it); NULL when no server has logged in yet. */
const struct pset *pool_server_params(struct pool *p);
void pool_learn_scram_keys(struct pool *p, const uint8_t ck[SCRAM_KEY_LEN], const uint8_t sk[SCRAM_KEY_LEN]);

/* Main-thread janitor: close idle servers past server_idle_timeout or
 * their lifetime, start connections for waiters blocked by limits and for
 * min_pool_size. Returns how many servers should be launched per pool
 * through the callback. */
typedef void (*pool_launch_fn)(struct pool *p, void *arg);
void pool_maintain_all(const struct config *cfg, int64_t now_usec, pool_launch_fn launch, void *arg);

/* Admin commands on every pool of database db (NULL: all databases).
 * PAUSE: clients queue, servers stay idle, nothing new is opened; pools
 * created later for db start paused. Returns how many pools it touched. */
int pool_pause_db(const char *db);
/* How many pools serve database db. */
int pool_count_db(const char *db);
/* Whether no server of db's pools is linked or being reset. */
bool pool_db_quiet(const char *db);
/* RESUME: the queues are served from the idle lists (hand-offs to the
 * clients' workers) and new connections started on the calling worker. */
int pool_resume_db(const char *db);
/* RECONNECT: servers in use are closed when released, idle ones by the
 * janitor; new ones replace them as clients need them. */
int pool_reconnect_db(const char *db);

/* A pool's figures at one moment, for SHOW POOLS, /metrics, /health and
 * the stats log. Clients and servers by PgBouncer's words. */
struct pool_figures {
	int cl_active;  /* linked to a server */
	int cl_idle;    /* logged in, not linked, not waiting */
	int cl_waiting; /* in the wait queue (or waiting for a login server) */
	int sv_active, sv_idle, sv_used, sv_login, sv_tested;
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

/* Each pool in the registry (for stats and admin). */
void pool_for_each(void (*fn)(struct pool *p, void *arg), void *arg);
/* At exit; idle servers are freed too unless the caller owns them (tests). */
void pool_registry_destroy(bool free_idle_servers);

#endif
