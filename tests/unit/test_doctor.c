/* test_doctor.c — the config doctor's decisions, without a server: the
 * plan (logins deduplicated, host lists, unix sockets, the fallback entry,
 * where passwords come from), what an entry's pools can open (users,
 * reserve, [users] overrides, max_db_connections), and every finding of
 * doctor_judge() from a plan whose logins carry made-up results: pool sums
 * against max_connections, coupled idle timeouts, idle transactions, TCP
 * settings, logins that failed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "tmpfiles.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/userlist.h"
#include "config.h"
#include "doctor.h"

static void no_report(void *arg, enum config_severity sev, const char *line)
{
	(void)arg;
	if (sev == CONFIG_ERROR)
		fail_msg("config error: %s", line);
}

/* "[pgsluice]\n" + main + "[databases]\n" + dbs (+ users). */
static struct config *load_config(const char *main, const char *dbs, const char *users)
{
	char text[4096];
	snprintf(text, sizeof(text), "[pgsluice]\n%s\n[databases]\n%s\n%s%s", main, dbs,
	         users ? "[users]\n" : "", users ? users : "");
	struct config *c = config_load(write_tmp(text), no_report, NULL);
	assert_non_null(c);
	return c;
}

static struct userlist *load_users(const char *text)
{
	char err[256] = "";
	struct userlist *u = userlist_load(write_tmp(text), err, sizeof(err));
	if (u == NULL)
		fail_msg("userlist: %s", err);
	return u;
}

static const struct doctor_login *find_login(const struct doctor_plan *p, const char *server,
                                             const char *dbname, const char *user)
{
	for (int i = 0; i < p->n_logins; i++) {
		const struct doctor_login *l = &p->logins[i];
		if (strcmp(l->server, server) == 0 && strcmp(l->dbname, dbname) == 0 &&
		    strcmp(l->user, user) == 0)
			return l;
	}
	return NULL;
}

static const struct doctor_server *find_server(const struct doctor_plan *p, const char *name)
{
	for (int i = 0; i < p->n_servers; i++)
		if (strcmp(p->servers[i].name, name) == 0)
			return &p->servers[i];
	return NULL;
}

/* Every login succeeded with these settings. */
static void all_logins_ok(struct doctor_plan *p, long long max_conn, long long reserved, long long idle_ms,
                          long long idle_tx_ms)
{
	for (int i = 0; i < p->n_logins; i++) {
		struct doctor_login *l = &p->logins[i];
		l->status = DOCTOR_LOGIN_OK;
		l->auth_method = "md5";
		l->pg = (struct doctor_pg_settings){max_conn, reserved, idle_ms, idle_tx_ms};
	}
}

/* The finding of that severity containing needle, or NULL. */
static const char *found(const struct doctor_findings *f, enum doctor_severity sev, const char *needle)
{
	for (int i = 0; i < f->n; i++)
		if (f->items[i].severity == sev && strstr(f->items[i].text, needle) != NULL)
			return f->items[i].text;
	return NULL;
}

static void dump(const struct doctor_findings *f)
{
	for (int i = 0; i < f->n; i++)
		print_message("  [%d] %s\n", f->items[i].severity, f->items[i].text);
}

/* Everything one case needs, freed in one place. */
struct run {
	struct config *cfg;
	struct userlist *users;
	struct doctor_plan plan;
	struct doctor_findings findings;
};

static void run_plan(struct run *r, const char *main, const char *dbs, const char *users_section,
                     const char *userlist_text)
{
	char err[128];
	memset(r, 0, sizeof(*r));
	r->cfg = load_config(main, dbs, users_section);
	r->users = userlist_text != NULL ? load_users(userlist_text) : NULL;
	assert_true(doctor_plan_build(r->cfg, r->users, "first", &r->plan, err, sizeof(err)));
}

static void run_judge(struct run *r)
{
	assert_true(doctor_judge(r->cfg, &r->plan, &r->findings));
}

static void run_free(struct run *r)
{
	doctor_findings_free(&r->findings);
	doctor_plan_free(&r->plan);
	userlist_free(r->users);
	config_free(r->cfg);
}

#define FIVE_USERS "\"first\" \"p1\"\n\"b\" \"p2\"\n\"c\" \"p3\"\n\"d\" \"p4\"\n\"e\" \"p5\"\n"

/* ------------------------------------------------------------------ */
/* plan                                                                 */

static void test_plan_logins_and_servers(void **state)
{
	struct run r;
	(void)state;
	run_plan(&r, "",
	         "a = host=10.0.0.1 port=5433 dbname=app user=u\n"
	         "b = host=10.0.0.1 port=5433 dbname=app user=u\n"   /* same login as a */
	         "c = host=10.0.0.1 port=5433 dbname=other user=u\n" /* other database: own login */
	         "d = host=/run/pg port=5433 dbname=app user=u\n"
	         "e = host=::1 dbname=app user=u\n"
	         "f = host=h1,h2 dbname=app user=u\n"
	         "* = host=10.0.0.1 port=5433\n",
	         NULL, FIVE_USERS);

	const struct doctor_plan *p = &r.plan;
	const struct doctor_login *ab = find_login(p, "10.0.0.1:5433", "app", "u");
	assert_non_null(ab);
	assert_string_equal(ab->entries, "a, b");
	assert_string_equal(ab->host, "10.0.0.1");
	assert_int_equal(ab->port, 5433);
	assert_int_equal(ab->status, DOCTOR_LOGIN_NOT_TRIED);
	assert_true(ab->pg.max_connections == DOCTOR_UNKNOWN &&
	            ab->pg.idle_session_timeout_ms == DOCTOR_UNKNOWN);
	assert_non_null(find_login(p, "10.0.0.1:5433", "other", "u"));
	const struct doctor_login *d = find_login(p, "/run/pg:5433", "app", "u");
	assert_non_null(d);
	assert_string_equal(d->host, "/run/pg");
	assert_non_null(find_login(p, "[::1]:5432", "app", "u"));
	/* A host list: one login per host. */
	assert_non_null(find_login(p, "h1:5432", "app", "u"));
	assert_non_null(find_login(p, "h2:5432", "app", "u"));
	/* The fallback has neither a database nor a user of its own. */
	const struct doctor_login *fb = find_login(p, "10.0.0.1:5433", "postgres", "first");
	assert_non_null(fb);
	assert_string_equal(fb->entries, "*");
	assert_int_equal(p->n_logins, 7);

	/* a, b, c and * all open pools on 10.0.0.1:5433: 4 entries x 5 users x 20. */
	const struct doctor_server *s = find_server(p, "10.0.0.1:5433");
	assert_non_null(s);
	assert_int_equal(s->n_demands, 4);
	assert_int_equal(s->total, 4 * 5 * 20);
	assert_string_equal(s->demands[0].how, "a 5 users x 20");
	assert_string_equal(s->demands[3].how, "* 5 users x 20 per database served (counted once)");
	/* Each host of a list can receive the whole entry. */
	assert_int_equal(find_server(p, "h1:5432")->total, 100);
	assert_int_equal(find_server(p, "h2:5432")->total, 100);
	assert_int_equal(p->n_servers, 5);
	run_free(&r);
}

static void test_plan_default_unix_socket(void **state)
{
	struct run r;
	(void)state;
	run_plan(&r, "", "a = dbname=app\n", NULL, NULL);
	assert_int_equal(r.plan.n_logins, 1);
	const struct doctor_login *l = &r.plan.logins[0];
	/* server.c's choice: /var/run/postgresql when it exists, else /tmp. */
	assert_true(strcmp(l->host, "/var/run/postgresql") == 0 || strcmp(l->host, "/tmp") == 0);
	char want[64];
	snprintf(want, sizeof(want), "%s:5432", l->host);
	assert_string_equal(l->server, want);
	assert_string_equal(l->user, "first"); /* no user=: the default user */
	assert_string_equal(l->dbname, "app");
	run_free(&r);
}

static void test_plan_entry_name_is_the_default_dbname(void **state)
{
	struct run r;
	(void)state;
	run_plan(&r, "", "shop = host=db1\n", NULL, NULL);
	assert_non_null(find_login(&r.plan, "db1:5432", "shop", "first"));
	run_free(&r);
}

static void test_plan_password_sources(void **state)
{
	struct run r;
	(void)state;
	run_plan(&r, "",
	         "a = host=h dbname=a user=alice password=fromentry\n"
	         "b = host=h dbname=b user=alice\n"
	         "c = host=h dbname=c user=nobody\n",
	         NULL, "\"alice\" \"fromfile\"\n");
	assert_string_equal(find_login(&r.plan, "h:5432", "a", "alice")->password, "fromentry");
	assert_string_equal(find_login(&r.plan, "h:5432", "b", "alice")->password, "fromfile");
	assert_null(find_login(&r.plan, "h:5432", "c", "nobody")->password);
	run_free(&r);
}

/* What one entry can open, from the config alone. */
static void test_entry_demand_table(void **state)
{
	static const struct {
		const char *main, *db, *users_section, *userlist;
		long long want;
		const char *how;
	} cases[] = {
	    /* No auth_file: one user at least. */
	    {"", "x = host=h\n", NULL, NULL, 20, "x 1 user x 20"},
	    {"default_pool_size = 7", "x = host=h\n", NULL, FIVE_USERS, 35, "x 5 users x 7"},
	    {"", "x = host=h pool_size=5\n", NULL, FIVE_USERS, 25, "x 5 users x 5"},
	    {"reserve_pool_size = 2", "x = host=h pool_size=5\n", NULL, FIVE_USERS, 35,
	     "x 5 users x (5+2 reserve)"},
	    {"reserve_pool_size = 2", "x = host=h pool_size=5 reserve_pool=1\n", NULL, FIVE_USERS, 30,
	     "x 5 users x (5+1 reserve)"},
	    /* A forced user= still makes one pool per client user. */
	    {"", "x = host=h user=svc pool_size=4\n", NULL, FIVE_USERS, 20, "x 5 users x 4"},
	    /* max_db_connections caps the entry, when it is below the sum. */
	    {"max_db_connections = 30", "x = host=h\n", NULL, FIVE_USERS, 30, "x max_db_connections=30"},
	    {"max_db_connections = 30", "x = host=h max_db_connections=12\n", NULL, FIVE_USERS, 12,
	     "x max_db_connections=12"},
	    {"max_db_connections = 500", "x = host=h\n", NULL, FIVE_USERS, 100, "x 5 users x 20"},
	    /* [users] pool_size counts for users in the auth_file only. */
	    {"", "x = host=h pool_size=5\n", "b = pool_size=50\nghost = pool_size=99\n", FIVE_USERS,
	     4 * 5 + 50, "x 1 user x 50 + 4 users x 5"},
	    {"", "x = host=h\n", "b = pool_size=50\nc = pool_size=50\n", FIVE_USERS, 3 * 20 + 2 * 50,
	     "x 2 users x 50 + 3 users x 20"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct run r;
		run_plan(&r, cases[i].main, cases[i].db, cases[i].users_section, cases[i].userlist);
		assert_int_equal(r.plan.n_servers, 1);
		const struct doctor_server *s = &r.plan.servers[0];
		assert_int_equal(s->n_demands, 1);
		if (s->total != cases[i].want || strcmp(s->demands[0].how, cases[i].how) != 0)
			fail_msg("case %zu: got %lld \"%s\", want %lld \"%s\"", i, s->total,
			         s->demands[0].how, cases[i].want, cases[i].how);
		run_free(&r);
		tmpfiles_teardown(NULL);
	}
}

/* ------------------------------------------------------------------ */
/* judge: pool sums                                                     */

static void test_pool_sum_above_max_connections(void **state)
{
	struct run r;
	(void)state;
	run_plan(&r, "",
	         "appdb = host=127.0.0.1 dbname=appdb user=app\n"
	         "reports = host=127.0.0.1 dbname=appdb user=rep pool_size=4\n",
	         NULL, FIVE_USERS);
	all_logins_ok(&r.plan, 100, 3, 0, 0);
	run_judge(&r);
	const char *e = found(&r.findings, DOCTOR_ERROR, "pools can open");
	if (e == NULL)
		dump(&r.findings);
	assert_non_null(e);
	assert_string_equal(
	    e, "127.0.0.1:5432: pools can open 120 connections (appdb 5 users x 20, reports 5 users "
	       "x 4) but max_connections=100 leaves 97 after superuser_reserved_connections=3");
	assert_int_equal(doctor_findings_count(&r.findings, DOCTOR_ERROR), 1);
	run_free(&r);
}

/* 97 fits in 97; 98 does not. */
static void test_pool_sum_boundary(void **state)
{
	static const struct {
		long long max_conn;
		bool error;
	} cases[] = {{100, false}, {99, true}, {101, false}};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct run r;
		/* 1 user x (95 + 2 reserve) = 97 */
		run_plan(&r, "reserve_pool_size = 2", "a = host=h pool_size=95\n", NULL, NULL);
		all_logins_ok(&r.plan, cases[i].max_conn, 3, 0, 0);
		run_judge(&r);
		bool is_error = found(&r.findings, DOCTOR_ERROR, "pools can open 97 connections") != NULL;
		bool is_ok = found(&r.findings, DOCTOR_OK,
		                   "pools can open 97 connections (a 1 user x (95+2 reserve)), "
		                   "within the") != NULL;
		if (is_error != cases[i].error || is_ok == cases[i].error) {
			dump(&r.findings);
			fail_msg("max_connections=%lld: error expected %d", cases[i].max_conn,
			         cases[i].error);
		}
		run_free(&r);
		tmpfiles_teardown(NULL);
	}
}

static void test_pool_sum_per_server(void **state)
{
	struct run r;
	(void)state;
	/* 100 on each server: neither exceeds 197, together they would. */
	run_plan(&r, "",
	         "a = host=db1 dbname=a user=u pool_size=100\n"
	         "b = host=db2 dbname=b user=u pool_size=100\n",
	         NULL, NULL);
	all_logins_ok(&r.plan, 200, 3, 0, 0);
	run_judge(&r);
	assert_non_null(found(&r.findings, DOCTOR_OK, "db1:5432: pools can open 100 connections"));
	assert_non_null(found(&r.findings, DOCTOR_OK, "db2:5432: pools can open 100 connections"));
	assert_int_equal(doctor_findings_count(&r.findings, DOCTOR_ERROR), 0);
	run_free(&r);
}

static void test_pool_sum_not_checked_without_a_login(void **state)
{
	struct run r;
	(void)state;
	run_plan(&r, "tcp_user_timeout = 10s", "a = host=127.0.0.1 port=6000 dbname=a user=u pool_size=500\n",
	         NULL, NULL);
	struct doctor_login *l = &r.plan.logins[0];
	l->status = DOCTOR_LOGIN_UNREACHABLE;
	l->reason = strdup("cannot connect: Connection refused");
	run_judge(&r);
	assert_string_equal(found(&r.findings, DOCTOR_ERROR, "127.0.0.1:6000"),
	                    "127.0.0.1:6000 db=a user=u (entry a): cannot connect: Connection refused");
	assert_non_null(found(&r.findings, DOCTOR_INFO, "127.0.0.1:6000: pool sizes not checked"));
	assert_null(found(&r.findings, DOCTOR_ERROR, "pools can open"));
	assert_int_equal(doctor_findings_count(&r.findings, DOCTOR_ERROR), 1);
	assert_int_equal(doctor_findings_count(&r.findings, DOCTOR_WARNING), 0);
	run_free(&r);
}

/* ------------------------------------------------------------------ */
/* judge: logins                                                        */

static void test_login_results(void **state)
{
	static const struct {
		enum doctor_login_status status;
		enum doctor_severity severity;
		const char *reason;
	} cases[] = {
	    {DOCTOR_LOGIN_UNREACHABLE, DOCTOR_ERROR,
	     "cannot connect: no answer within 1s (server_connect_timeout)"},
	    {DOCTOR_LOGIN_REFUSED, DOCTOR_ERROR,
	     "PostgreSQL refused the login: FATAL 28P01: password authentication failed for user \"u\""},
	    {DOCTOR_LOGIN_FAILED, DOCTOR_ERROR, "PostgreSQL asks for md5 and neither a password nor ..."},
	    {DOCTOR_LOGIN_CANNOT_CHECK, DOCTOR_WARNING,
	     "PostgreSQL asks for SCRAM and the auth_file holds ..."},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct run r;
		char want[256];
		run_plan(&r, "tcp_user_timeout = 10s",
		         "a = host=pg port=5432 dbname=d user=u\nb = host=pg port=5432 dbname=d user=u\n",
		         NULL, NULL);
		r.plan.logins[0].status = cases[i].status;
		r.plan.logins[0].reason = strdup(cases[i].reason);
		run_judge(&r);
		snprintf(want, sizeof(want), "pg:5432 db=d user=u (entries a, b): %s%s",
		         cases[i].status == DOCTOR_LOGIN_CANNOT_CHECK ? "not checked: " : "",
		         cases[i].reason);
		const char *line = found(&r.findings, cases[i].severity, "db=d");
		if (line == NULL || strcmp(line, want) != 0) {
			dump(&r.findings);
			fail_msg("case %zu: want \"%s\"", i, want);
		}
		/* A failed login reads no settings: no timeout findings for it. */
		assert_int_equal(r.findings.n, 2);
		run_free(&r);
		tmpfiles_teardown(NULL);
	}
}

static void test_login_ok_line_has_the_settings(void **state)
{
	struct run r;
	(void)state;
	run_plan(&r, "", "a = host=pg dbname=d user=u\n", NULL, NULL);
	all_logins_ok(&r.plan, 200, 3, 30000, 1500);
	strcpy(r.plan.logins[0].server_version, "15.4");
	run_judge(&r);
	assert_string_equal(
	    found(&r.findings, DOCTOR_OK, "logged in"),
	    "pg:5432 db=d user=u (entry a): logged in (md5), PostgreSQL 15.4; max_connections=200 "
	    "superuser_reserved_connections=3 idle_session_timeout=30s "
	    "idle_in_transaction_session_timeout=1.5s");
	run_free(&r);
}

static void test_no_entries(void **state)
{
	struct run r;
	(void)state;
	run_plan(&r, "tcp_keepalive = 0", "", NULL, NULL);
	run_judge(&r);
	assert_int_equal(r.findings.n, 1);
	assert_non_null(found(&r.findings, DOCTOR_INFO, "no [databases] entries"));
	run_free(&r);
}

/* ------------------------------------------------------------------ */
/* judge: timeouts                                                      */

/* server_idle_timeout / server_lifetime against idle_session_timeout. */
static void test_idle_session_timeout_table(void **state)
{
	static const struct {
		const char *main;
		long long pg_ms;
		const char *warning; /* NULL: no warning */
	} cases[] = {
	    {"server_idle_timeout = 600s", 60000, "up to 600s (server_idle_timeout=600s)"},
	    {"server_idle_timeout = 60s", 60000,
	     "up to 60s (server_idle_timeout=60s)"}, /* equal counts as coupled */
	    {"server_idle_timeout = 59s", 60000, NULL},
	    {"server_idle_timeout = 30s", 60000, NULL},
	    {"server_idle_timeout = 600s", 0, NULL}, /* PostgreSQL's is off */
	    {"server_idle_timeout = 600s", DOCTOR_UNKNOWN, NULL},
	    /* Idle timeout off: the (jittered) lifetime is what closes idle servers. */
	    {"server_idle_timeout = 0\nserver_lifetime = 30s", 60000, NULL},
	    {"server_idle_timeout = 0\nserver_lifetime = 60s\nserver_lifetime_jitter = 0", 60000,
	     "up to 60s (server_lifetime=60s plus server_lifetime_jitter=0%, server_idle_timeout=0 (off))"},
	    {"server_idle_timeout = 0\nserver_lifetime = 55s", 60000,
	     "up to 60.5s (server_lifetime=55s plus server_lifetime_jitter=10%, server_idle_timeout=0 "
	     "(off))"},
	    /* A lifetime shorter than the idle timeout keeps idle servers young. */
	    {"server_idle_timeout = 90s\nserver_lifetime = 50s\nserver_lifetime_jitter = 0", 60000, NULL},
	    {"server_idle_timeout = 0\nserver_lifetime = 0", 60000,
	     "without limit (server_idle_timeout=0 and server_lifetime=0)"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct run r;
		char main[256];
		snprintf(main, sizeof(main), "%s\ntcp_user_timeout = 10s\nidle_transaction_timeout = 1s\n",
		         cases[i].main);
		run_plan(&r, main, "a = host=pg dbname=d user=u\n", NULL, NULL);
		all_logins_ok(&r.plan, 200, 3, cases[i].pg_ms, 0);
		run_judge(&r);
		const char *w = found(&r.findings, DOCTOR_WARNING, "idle_session_timeout");
		int n_warn = doctor_findings_count(&r.findings, DOCTOR_WARNING);
		bool ok = cases[i].warning == NULL
		              ? n_warn == 0
		              : n_warn == 1 && w != NULL && strstr(w, cases[i].warning) != NULL &&
		                    strncmp(w, "pg:5432 db=d user=u: ", 21) == 0 &&
		                    strstr(w, "set server_idle_timeout below 60s") != NULL;
		if (!ok) {
			dump(&r.findings);
			fail_msg("case %zu (%s, pg %lld ms): want %s", i, cases[i].main, cases[i].pg_ms,
			         cases[i].warning ? cases[i].warning : "no warning");
		}
		run_free(&r);
		tmpfiles_teardown(NULL);
	}
}

/* idle_transaction_timeout against idle_in_transaction_session_timeout. */
static void test_idle_transaction_timeout_table(void **state)
{
	static const struct {
		const char *ours;
		long long pg_ms;
		enum doctor_severity severity; /* DOCTOR_OK: nothing said */
		const char *text;
	} cases[] = {
	    {"0", 20000, DOCTOR_WARNING,
	     "idle_in_transaction_session_timeout=20s and idle_transaction_timeout=0 (off)"},
	    {"20s", 20000, DOCTOR_WARNING, "idle_transaction_timeout=20s is not below it"},
	    {"30s", 20000, DOCTOR_WARNING, "idle_transaction_timeout=30s is not below it"},
	    {"5s", 20000, DOCTOR_OK, NULL},
	    {"0", 0, DOCTOR_INFO, "nothing ends a transaction left idle"},
	    {"5s", 0, DOCTOR_OK, NULL},
	    {"0", DOCTOR_UNKNOWN, DOCTOR_OK, NULL},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct run r;
		char main[256];
		snprintf(main, sizeof(main), "idle_transaction_timeout = %s\ntcp_user_timeout = 10s\n",
		         cases[i].ours);
		run_plan(&r, main, "a = host=pg dbname=d user=u\n", NULL, NULL);
		all_logins_ok(&r.plan, 200, 3, 0, cases[i].pg_ms);
		run_judge(&r);
		int n_warn = doctor_findings_count(&r.findings, DOCTOR_WARNING);
		int n_info = doctor_findings_count(&r.findings, DOCTOR_INFO);
		bool ok;
		if (cases[i].severity == DOCTOR_OK)
			ok = n_warn == 0 && n_info == 0;
		else
			ok = n_warn + n_info == 1 &&
			     found(&r.findings, cases[i].severity, cases[i].text) != NULL;
		if (ok && cases[i].severity == DOCTOR_WARNING)
			ok = found(&r.findings, DOCTOR_WARNING, "25P03") != NULL &&
			     found(&r.findings, DOCTOR_WARNING, "set idle_transaction_timeout below 20s") !=
			         NULL;
		if (!ok) {
			dump(&r.findings);
			fail_msg("case %zu (ours %s, pg %lld ms)", i, cases[i].ours, cases[i].pg_ms);
		}
		run_free(&r);
		tmpfiles_teardown(NULL);
	}
}

/* ------------------------------------------------------------------ */
/* judge: TCP                                                           */

static void test_tcp_settings(void **state)
{
	static const struct {
		const char *main, *dbs;
		int warnings;
		const char *text;
	} cases[] = {
	    {"tcp_keepalive = 0\ntcp_user_timeout = 10s", "a = host=pg\n", 1, ": tcp_keepalive=0: "},
	    {"tcp_keepalive = 1\ntcp_user_timeout = 0", "a = host=pg\n", 1, ": tcp_user_timeout=0: "},
	    {"tcp_keepalive = 1", "a = host=pg\n", 0, NULL}, /* the defaults are sane */
	    {"tcp_keepalive = 0\ntcp_user_timeout = 0", "a = host=pg\n", 2, "tcp_keepalive=0"},
	    {"tcp_keepalive = 1\ntcp_user_timeout = 10s", "a = host=pg\n", 0, NULL},
	    /* Unix sockets only: TCP settings do not matter. */
	    {"tcp_keepalive = 0", "a = host=/run/pg\n", 0, NULL},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct run r;
		char main[256];
		snprintf(main, sizeof(main), "%s\nidle_transaction_timeout = 1s\n", cases[i].main);
		run_plan(&r, main, cases[i].dbs, NULL, NULL);
		all_logins_ok(&r.plan, 200, 3, 0, 0);
		run_judge(&r);
		int n = doctor_findings_count(&r.findings, DOCTOR_WARNING);
		if (n != cases[i].warnings ||
		    (cases[i].text != NULL && found(&r.findings, DOCTOR_WARNING, cases[i].text) == NULL)) {
			dump(&r.findings);
			fail_msg("case %zu: want %d warnings with \"%s\"", i, cases[i].warnings,
			         cases[i].text ? cases[i].text : "");
		}
		/* Named after the config file, the only place to fix it. */
		if (n > 0)
			assert_non_null(found(&r.findings, DOCTOR_WARNING, r.cfg->path));
		run_free(&r);
		tmpfiles_teardown(NULL);
	}
}

/* ------------------------------------------------------------------ */
/* pg_settings rows                                                     */

static void test_pg_setting(void **state)
{
	struct doctor_pg_settings pg = {DOCTOR_UNKNOWN, DOCTOR_UNKNOWN, DOCTOR_UNKNOWN, DOCTOR_UNKNOWN};
	(void)state;
	assert_true(doctor_pg_setting(&pg, "max_connections", "100"));
	assert_true(doctor_pg_setting(&pg, "superuser_reserved_connections", "3"));
	assert_true(doctor_pg_setting(&pg, "idle_session_timeout", "60000"));
	assert_true(doctor_pg_setting(&pg, "idle_in_transaction_session_timeout", "0"));
	assert_int_equal(pg.max_connections, 100);
	assert_int_equal(pg.superuser_reserved_connections, 3);
	assert_int_equal(pg.idle_session_timeout_ms, 60000);
	assert_int_equal(pg.idle_in_transaction_session_timeout_ms, 0);
	/* Other rows are none of our business. */
	assert_true(doctor_pg_setting(&pg, "work_mem", "4MB"));
	/* Ours must be whole numbers. */
	assert_false(doctor_pg_setting(&pg, "max_connections", "lots"));
	assert_false(doctor_pg_setting(&pg, "idle_session_timeout", "1min"));
	assert_false(doctor_pg_setting(&pg, "max_connections", "-1"));
	assert_int_equal(pg.max_connections, 100);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_plan_logins_and_servers, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_plan_default_unix_socket, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_plan_entry_name_is_the_default_dbname, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_plan_password_sources, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_entry_demand_table, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_pool_sum_above_max_connections, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_pool_sum_boundary, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_pool_sum_per_server, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_pool_sum_not_checked_without_a_login, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_login_results, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_login_ok_line_has_the_settings, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_no_entries, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_idle_session_timeout_table, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_idle_transaction_timeout_table, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_tcp_settings, tmpfiles_teardown),
	    cmocka_unit_test(test_pg_setting),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
