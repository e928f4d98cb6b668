/* doctor.h — the config doctor behind `pgsluice --check --online`: lints a
 * loaded configuration against the settings of the PostgreSQL servers its
 * [databases] entries lead to.
 * Owns: the plan (one login per distinct host, port, dbname and user; what
 *       the pools can open on each server), what each login read, the findings.
 * Exports: doctor_check_online() — the whole run, printed, returning the exit
 *          status; doctor_plan_build(), doctor_judge() and doctor_pg_setting()
 *          are pure (no network), so every decision is unit tested without a
 *          server; doctor_login_run() is the one blocking login.
 * Never: runs inside the pooler: its I/O blocks (each step bounded by
 *        server_connect_timeout). Never changes anything on a server: one
 *        read-only query per login. Never prints a password. */
#ifndef PGS_DOCTOR_H
#define PGS_DOCTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "auth/userlist.h"
#include "config.h"
#include "util/str.h"

#ifndef PGS_MUST_CHECK
#define PGS_MUST_CHECK __attribute__((warn_unused_result))
#endif

enum doctor_severity { DOCTOR_OK, DOCTOR_INFO, DOCTOR_WARNING, DOCTOR_ERROR };

enum doctor_login_status {
	DOCTOR_LOGIN_NOT_TRIED,
	DOCTOR_LOGIN_OK,           /* logged in and read the settings */
	DOCTOR_LOGIN_UNREACHABLE,  /* no connection: refused, timed out, unknown host */
	DOCTOR_LOGIN_REFUSED,      /* PostgreSQL answered with an ErrorResponse */
	DOCTOR_LOGIN_FAILED,       /* failed on our side, as it would for pgsluice (no usable password...) */
	DOCTOR_LOGIN_CANNOT_CHECK, /* pgsluice could log in with a client's SCRAM proof; the doctor has no
	                              client */
};

/* A setting that was not read (no login, or a server too old to have it). */
#define DOCTOR_UNKNOWN (-1LL)

/* The server's settings as pg_settings shows them to this login (role and
 * database level SETs included). Timeouts in ms, 0 = off. */
struct doctor_pg_settings {
	long long max_connections;
	long long superuser_reserved_connections;
	long long idle_session_timeout_ms;
	long long idle_in_transaction_session_timeout_ms;
};

struct doctor_login {
	char *server; /* owned; "host:port" or "/socket/dir:port": pool sums are per server */
	char *host;   /* owned; one host of the entry, or the unix socket dir ("/...") */
	int port;
	char *dbname;         /* owned */
	char *user;           /* owned */
	const char *password; /* borrowed from the config or the userlist; NULL: none known */
	char *entries;        /* owned; the [databases] entries that log in so: "appdb, reports" */
	/* Results, filled by doctor_login_run() (or by a unit test). */
	enum doctor_login_status status;
	char *reason;            /* owned; why it failed, with PostgreSQL's own text when it sent one */
	const char *auth_method; /* static: "trust", "password", "md5", "SCRAM-SHA-256" */
	char server_version[32]; /* from ParameterStatus; "" when not sent */
	struct doctor_pg_settings pg;
};

/* The most one [databases] entry can open on one server. */
struct doctor_demand {
	long long connections;
	char *how; /* owned; "appdb 5 users x 20" */
};

struct doctor_server {
	char *name;                    /* owned; same text as doctor_login.server */
	struct doctor_demand *demands; /* owned array, in config order */
	int n_demands;
	long long total;
};

struct doctor_plan {
	struct doctor_login *logins; /* owned array */
	int n_logins;
	struct doctor_server *servers; /* owned array */
	int n_servers;
};

struct doctor_finding {
	enum doctor_severity severity;
	char *text; /* owned; one line, without the severity word and newline */
};

struct doctor_findings {
	struct doctor_finding *items; /* owned array */
	int n;
	int cap;
};

/* The logins and per-server demands for CFG. users may be NULL (no
 * auth_file). default_user logs in for entries without user= (the caller
 * picks it: the first auth_file user). false with err only on out of
 * memory; the half-built plan is then freed. */
PGS_MUST_CHECK bool doctor_plan_build(const struct config *cfg, const struct userlist *users,
                                      const char *default_user, struct doctor_plan *plan, char *err,
                                      size_t err_size);
void doctor_plan_free(struct doctor_plan *plan); /* tolerates a zeroed plan */

/* Findings from CFG and PLAN whose logins carry their results, in print
 * order: logins, pool sums per server, timeouts per login, TCP settings.
 * false on out of memory (out is then empty). */
PGS_MUST_CHECK bool doctor_judge(const struct config *cfg, const struct doctor_plan *plan,
                                 struct doctor_findings *out);
void doctor_findings_free(struct doctor_findings *f);
int doctor_findings_count(const struct doctor_findings *f, enum doctor_severity severity);

/* Records one pg_settings row in pg; names it does not know are ignored.
 * false when a known name has a value that is not an integer. */
PGS_MUST_CHECK bool doctor_pg_setting(struct doctor_pg_settings *pg, const char *name, const char *value);

/* Logs in as l says and reads the settings, blocking: connect and login
 * within timeout, then the query within timeout again. Fills l's results. */
void doctor_login_run(struct doctor_login *l, pgs_usec_t timeout);

/* The whole `--check --online` run on a loaded, valid configuration: one
 * line per finding on out, then "N errors, M warnings". Returns the exit
 * status: 1 when any ERROR, else 0. */
int doctor_check_online(const struct config *cfg, const struct userlist *users, FILE *out);

#endif
