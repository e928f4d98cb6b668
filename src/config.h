/* config.h — the configuration, one immutable generation per load.
 * Owns: struct config and everything hanging from it (databases, users).
 * Exports: config_load(), config_free(), lookups that resolve per-database
 *          and per-user overrides, the key table for SHOW CONFIG / SET.
 * Never: touches sockets or pools. A loaded generation is never modified;
 *        SIGHUP builds a new one and the old one is freed when unused. */
#ifndef PGS_CONFIG_H
#define PGS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "util/str.h"

enum pool_mode {
	POOL_MODE_UNSET = 0, /* inherit: user → database → global */
	POOL_MODE_SESSION,
	POOL_MODE_TRANSACTION,
};

enum auth_type {
	AUTH_TRUST,
	AUTH_PLAIN,
	AUTH_MD5,
	AUTH_SCRAM,
};

/* One [databases] entry. Integer fields are -1 when not given (inherit). */
struct db_config {
	char *name;                 /* the key; "*" for the fallback entry */
	char *host;                 /* NULL: unix socket in unix_socket_dir of the server
	                               ("/var/run/postgresql"); a leading '/' means a socket dir;
	                               may be a comma-separated list */
	int port;                   /* default 5432 */
	char *dbname;               /* NULL: same as the client's database name */
	char *user;                 /* NULL: the client's user */
	char *password;             /* NULL: from auth_file or the client */
	char *application_name;     /* NULL: the client's */
	char *target_session_attrs; /* NULL: any */
	int pool_size;              /* -1: default_pool_size */
	int min_pool_size;          /* -1: global min_pool_size */
	int reserve_pool;           /* -1: global reserve_pool_size */
	int max_db_connections;     /* -1: global max_db_connections */
	enum pool_mode pool_mode;   /* UNSET: inherit */
	bool read_only;
	int line; /* where it was defined, for messages */
};

/* One [users] entry. */
struct user_config {
	char *name;
	enum pool_mode pool_mode; /* UNSET: inherit */
	int max_user_connections; /* -1: global */
	int pool_size;            /* -1: inherit */
	int line;
};

struct config {
	char *path; /* owned copy of the file name */

	/* [pgsluice] / [pgbouncer] */
	char *listen_addr;        /* "127.0.0.1"; "*" = all; comma list allowed; "" = no TCP */
	int listen_port;          /* 6432 */
	char *unix_socket_dir;    /* "" = no unix socket; pgbouncer default "/tmp" */
	int unix_socket_mode;     /* 0777 */
	enum auth_type auth_type; /* md5 */
	char *auth_file;          /* NULL or path */
	char *admin_users;        /* comma list, may be NULL */
	char *stats_users;
	enum pool_mode pool_mode;                     /* session */
	int default_pool_size;                        /* 20 */
	int min_pool_size;                            /* 0 */
	int reserve_pool_size;                        /* 0 */
	pgs_usec_t reserve_pool_timeout;              /* 5s */
	int max_client_conn;                          /* 100 */
	int max_db_connections;                       /* 0 = unlimited */
	int max_user_connections;                     /* 0 = unlimited */
	char *server_reset_query;                     /* "DISCARD ALL" */
	bool server_reset_query_always;               /* 0 */
	char *server_check_query;                     /* "select 1" */
	pgs_usec_t server_check_delay;                /* 30s */
	pgs_usec_t server_check_timeout;              /* 1s */
	pgs_usec_t server_lifetime;                   /* 3600s, 0 = unlimited */
	int server_lifetime_jitter;                   /* percent, 10 */
	pgs_usec_t server_idle_timeout;               /* 600s, 0 = off */
	pgs_usec_t server_connect_timeout;            /* 15s */
	pgs_usec_t server_login_retry;                /* 15s */
	int server_connect_concurrency;               /* 4 */
	pgs_usec_t query_timeout;                     /* 0 = off */
	pgs_usec_t query_wait_timeout;                /* 120s, 0 = off */
	pgs_usec_t client_idle_timeout;               /* 0 = off */
	pgs_usec_t client_login_timeout;              /* 60s */
	pgs_usec_t idle_transaction_timeout;          /* 0 = off */
	pgs_usec_t leak_warn_timeout;                 /* 10s */
	int max_waiting_clients;                      /* 0 = unlimited */
	bool tcp_keepalive;                           /* 1 */
	int tcp_keepidle, tcp_keepintvl, tcp_keepcnt; /* 0 = kernel default */
	pgs_usec_t tcp_user_timeout;                  /* 0 = kernel default */
	int tcp_defer_accept;            /* non-zero: TCP_DEFER_ACCEPT on the listening sockets (1) */
	char *ignore_startup_parameters; /* comma list, may be NULL */
	int max_prepared_statements;     /* 0 */
	bool log_connections, log_disconnections; /* 1, 1 */
	pgs_usec_t stats_period;                  /* 60s */
	pgs_usec_t stats_log_period;              /* 60s */
	pgs_usec_t shutdown_timeout;              /* 30s (ours: SIGTERM drain bound) */
	int workers;                              /* 0 = number of cores */
	char *http_addr;                          /* "127.0.0.1" */
	int http_port;                            /* 9127, 0 = off */
	pgs_usec_t health_max_wait;               /* 1s */
	char *logfile;                            /* NULL = stderr only */
	char *pidfile;                            /* NULL = none */
	bool verbose;                             /* pgbouncer's "verbose": debug logging */

	/* [databases]; the "*" entry, if any, is fallback_db (not in dbs) */
	struct db_config *dbs;
	int n_dbs;
	struct db_config *fallback_db;

	/* [users] */
	struct user_config *users;
	int n_users;
};

enum config_severity { CONFIG_WARNING, CONFIG_ERROR };

/* Receives each problem as one line "FILE:LINE: message" (no newline). */
typedef void (*config_report_fn)(void *arg, enum config_severity sev, const char *line);

/* Parse FILE with libinih. Every problem goes to report; returns NULL when
 * any error was reported (or the file cannot be read). Unknown keys and
 * sections are warnings with a "did you mean" hint. */
struct config *config_load(const char *path, config_report_fn report, void *arg);
void config_free(struct config *c);

/* A deep copy of C. Admin SET changes a copy with config_set() and
 * publishes it as the next generation, so a loaded one is never modified.
 * NULL on out of memory. */
struct config *config_copy(const struct config *c);

/* Exact match first, then the "*" fallback; NULL if neither. */
const struct db_config *config_find_db(const struct config *c, const char *name);
const struct user_config *config_find_user(const struct config *c, const char *name);

/* Effective values after user → database → global inheritance (user or db may be NULL). */
enum pool_mode config_effective_pool_mode(const struct config *c, const struct db_config *db,
                                          const struct user_config *u);
int config_effective_pool_size(const struct config *c, const struct db_config *db,
                               const struct user_config *u);
int config_effective_min_pool_size(const struct config *c, const struct db_config *db);
int config_effective_max_db_connections(const struct config *c, const struct db_config *db);
int config_effective_max_user_connections(const struct config *c, const struct user_config *u);

/* Is NAME in a comma-separated list (admin_users, ignore_startup_parameters)? */
bool config_list_contains(const char *list, const char *name);

const char *config_pool_mode_name(enum pool_mode m);

/* The key table, for SHOW CONFIG and SET: iterate with an index from 0
 * until it returns false. Fills name, the current value as text, the
 * default as text and whether a reload applies it (false: restart needed). */
bool config_key_at(const struct config *c, int i, const char **name, char *value, size_t value_size,
                   const char **default_text, bool *reloadable);

/* Apply "key = value" to an existing generation (admin SET). Returns false
 * and fills err on unknown key or bad value. */
bool config_set(struct config *c, const char *key, const char *value, char *err, size_t err_size);

#endif
