/* test_config.c — the configuration loader: every key's default, the
 * [pgbouncer] alias, bad values reported at the exact FILE:LINE, "did you
 * mean" hints, [databases] connection strings, [users], inheritance,
 * durations, pgbouncer compatibility keys, config_set and config_copy. */
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

#include "config.h"

/* Every reported line, kept for the assertions. */
struct reports {
	char *lines[64];
	enum config_severity sev[64];
	int n, warnings, errors;
};

static void collect(void *arg, enum config_severity sev, const char *line)
{
	struct reports *r = arg;

	if (sev == CONFIG_ERROR)
		r->errors++;
	else
		r->warnings++;
	if (r->n < 64) {
		r->sev[r->n] = sev;
		r->lines[r->n++] = strdup(line);
	}
}

static void reports_clear(struct reports *r)
{
	for (int i = 0; i < r->n; i++)
		free(r->lines[i]);
	memset(r, 0, sizeof(*r));
}

/* The first reported line containing NEEDLE, or NULL. */
static const char *reported(const struct reports *r, const char *needle)
{
	for (int i = 0; i < r->n; i++) {
		if (strstr(r->lines[i], needle) != NULL)
			return r->lines[i];
	}
	return NULL;
}

/* Loads TEXT from a temporary file; *path_out gets the file name. */
static struct config *load(const char *text, struct reports *r, const char **path_out)
{
	const char *path = write_tmp(text);
	if (path_out != NULL)
		*path_out = path;
	return config_load(path, collect, r);
}

/* A report that starts with exactly "PATH:LINE: " and contains REST. */
static void expect_line(const struct reports *r, const char *path, int line, const char *rest)
{
	char prefix[256];
	size_t n = (size_t)snprintf(prefix, sizeof(prefix), "%s:%d: ", path, line);

	for (int i = 0; i < r->n; i++) {
		if (strncmp(r->lines[i], prefix, n) == 0 && strstr(r->lines[i] + n, rest) != NULL)
			return;
	}
	for (int i = 0; i < r->n; i++)
		print_message("reported: %s\n", r->lines[i]);
	fail_msg("expected a report \"%s...%s\"", prefix, rest);
}

/* ------------------------------------------------------------------ */

static void test_defaults_every_key(void **state)
{
	struct reports r = {0};
	struct config *c = load("[pgsluice]\n", &r, NULL);
	const char *name, *def;
	char value[256], nvalue[256];
	bool reloadable;
	int i;

	(void)state;
	assert_non_null(c);
	assert_int_equal(r.n, 0);
	for (i = 0; config_key_at(c, i, &name, value, sizeof(value), &def, &reloadable); i++) {
		/* Defaults are written the way SHOW CONFIG prints values. */
		if (strcmp(value, def) != 0)
			fail_msg("%s: value '%s' differs from default '%s'", name, value, def);
		/* And the table works without a loaded config too. */
		assert_true(config_key_at(NULL, i, NULL, nvalue, sizeof(nvalue), NULL, NULL));
		assert_string_equal(nvalue, def);
	}
	assert_true(i >= 50);
	assert_false(config_key_at(c, i, &name, value, sizeof(value), &def, &reloadable));
	assert_false(config_key_at(c, -1, &name, value, sizeof(value), &def, &reloadable));

	assert_string_equal(c->listen_addr, "127.0.0.1");
	assert_int_equal(c->listen_port, 6432);
	assert_string_equal(c->unix_socket_dir, "/tmp");
	assert_int_equal(c->unix_socket_mode, 0777);
	assert_int_equal(c->auth_type, AUTH_MD5);
	assert_null(c->auth_file);
	assert_null(c->admin_users);
	assert_null(c->stats_users);
	assert_int_equal(c->pool_mode, POOL_MODE_SESSION);
	assert_int_equal(c->default_pool_size, 20);
	assert_int_equal(c->min_pool_size, 0);
	assert_int_equal(c->reserve_pool_size, 0);
	assert_int_equal(c->reserve_pool_timeout, 5 * PGS_USEC_PER_SEC);
	assert_int_equal(c->max_client_conn, 100);
	assert_int_equal(c->max_db_connections, 0);
	assert_int_equal(c->max_user_connections, 0);
	assert_string_equal(c->server_reset_query, "DISCARD ALL");
	assert_false(c->server_reset_query_always);
	assert_string_equal(c->server_check_query, "select 1");
	assert_int_equal(c->server_check_delay, 30 * PGS_USEC_PER_SEC);
	assert_int_equal(c->server_check_timeout, 1 * PGS_USEC_PER_SEC);
	assert_int_equal(c->server_lifetime, 3600 * PGS_USEC_PER_SEC);
	assert_int_equal(c->server_lifetime_jitter, 10);
	assert_int_equal(c->server_idle_timeout, 600 * PGS_USEC_PER_SEC);
	assert_int_equal(c->server_connect_timeout, 15 * PGS_USEC_PER_SEC);
	assert_int_equal(c->server_login_retry, 15 * PGS_USEC_PER_SEC);
	assert_int_equal(c->server_connect_concurrency, 4);
	assert_int_equal(c->query_timeout, 0);
	assert_int_equal(c->query_wait_timeout, 120 * PGS_USEC_PER_SEC);
	assert_int_equal(c->client_idle_timeout, 0);
	assert_int_equal(c->client_login_timeout, 60 * PGS_USEC_PER_SEC);
	assert_int_equal(c->idle_transaction_timeout, 0);
	assert_int_equal(c->leak_warn_timeout, 10 * PGS_USEC_PER_SEC);
	assert_int_equal(c->max_waiting_clients, 0);
	assert_true(c->tcp_keepalive);
	assert_int_equal(c->tcp_keepidle, 30);
	assert_int_equal(c->tcp_keepintvl, 10);
	assert_int_equal(c->tcp_keepcnt, 3);
	assert_int_equal(c->tcp_user_timeout, 30 * PGS_USEC_PER_SEC);
	assert_null(c->ignore_startup_parameters);
	assert_int_equal(c->max_prepared_statements, 0);
	assert_true(c->log_connections);
	assert_true(c->log_disconnections);
	assert_int_equal(c->stats_period, 60 * PGS_USEC_PER_SEC);
	assert_int_equal(c->stats_log_period, 60 * PGS_USEC_PER_SEC);
	assert_int_equal(c->shutdown_timeout, 30 * PGS_USEC_PER_SEC);
	assert_int_equal(c->workers, 0);
	assert_string_equal(c->http_addr, "127.0.0.1");
	assert_int_equal(c->http_port, 9127);
	assert_int_equal(c->health_max_wait, 1 * PGS_USEC_PER_SEC);
	assert_null(c->logfile);
	assert_null(c->pidfile);
	assert_false(c->verbose);
	assert_int_equal(c->n_dbs, 0);
	assert_null(c->fallback_db);
	assert_int_equal(c->n_users, 0);
	assert_string_equal(c->path, tmp_paths[0]);
	config_free(c);
	reports_clear(&r);
}

static void test_reloadable_flags(void **state)
{
	static const struct {
		const char *key;
		bool reloadable;
	} cases[] = {
	    {"listen_addr", false}, {"listen_port", false},      {"unix_socket_dir", false},
	    {"workers", false},     {"http_port", false},        {"pidfile", false},
	    {"pool_mode", true},    {"default_pool_size", true}, {"query_wait_timeout", true},
	    {"auth_file", true},    {"leak_warn_timeout", true}, {"verbose", true},
	};
	(void)state;
	for (size_t j = 0; j < sizeof(cases) / sizeof(cases[0]); j++) {
		const char *name;
		bool reloadable, found = false;
		for (int i = 0; config_key_at(NULL, i, &name, NULL, 0, NULL, &reloadable); i++) {
			if (strcmp(name, cases[j].key) == 0) {
				found = true;
				assert_int_equal(reloadable, cases[j].reloadable);
			}
		}
		if (!found)
			fail_msg("key %s not in the table", cases[j].key);
	}
}

static void test_pgbouncer_alias(void **state)
{
	struct reports r = {0};
	struct config *c = load("[pgbouncer]\nlisten_port = 7000\npool_mode = transaction\n"
	                        "[PgSluice]\ndefault_pool_size = 7\n",
	                        &r, NULL);

	(void)state;
	assert_non_null(c);
	assert_int_equal(r.n, 0);
	assert_int_equal(c->listen_port, 7000);
	assert_int_equal(c->pool_mode, POOL_MODE_TRANSACTION);
	assert_int_equal(c->default_pool_size, 7);
	config_free(c);
	reports_clear(&r);
}

static void test_bad_values_name_file_line(void **state)
{
	static const struct {
		const char *line;
		const char *message;
	} cases[] = {
	    {"default_pool_size = 0", "bad value for default_pool_size: '0' is out of range (1..10000)"},
	    {"default_pool_size = lots", "bad value for default_pool_size: 'lots' is not an integer"},
	    {"listen_port = 70000", "bad value for listen_port: '70000' is out of range (1..65535)"},
	    {"http_port = -1", "bad value for http_port: '-1' is out of range (0..65535)"},
	    {"server_check_timeout = 0",
	     "bad value for server_check_timeout: '0' is out of range (1ms..600s)"},
	    {"server_check_timeout = 11min",
	     "bad value for server_check_timeout: '11min' is out of range (1ms..600s)"},
	    {"query_timeout = 5m", "bad value for query_timeout: '5m' is not a duration"},
	    {"query_timeout = -1", "bad value for query_timeout: '-1' is not a duration"},
	    {"server_lifetime_jitter = 101%",
	     "bad value for server_lifetime_jitter: '101%' is out of range (0..100)"},
	    {"server_lifetime_jitter = ten", "'ten' is not a percentage"},
	    {"tcp_keepalive = maybe", "bad value for tcp_keepalive: 'maybe' is not a boolean"},
	    {"tcp_keepcnt = 128", "'128' is out of range (0..127)"},
	    {"unix_socket_mode = 0999", "bad value for unix_socket_mode: '0999' is not an octal number"},
	    {"auth_type = hba",
	     "auth_type 'hba' is not supported; supported: trust, plain, md5, scram-sha-256"},
	    {"auth_type = pam", "supported: trust, plain, md5, scram-sha-256"},
	    {"auth_type = cert", "supported: trust, plain, md5, scram-sha-256"},
	    {"auth_type = any", "supported: trust, plain, md5, scram-sha-256"},
	    {"pool_mode = statement", "bad value for pool_mode: statement pooling is not supported"},
	    {"pool_mode = sessions", "'sessions' is not a pool mode (session, transaction)"},
	    {"verbose = 3", "bad value for verbose"},
	    {"workers = 5000", "(0..1024)"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct reports r = {0};
		char text[256];
		const char *path;
		/* The bad line is line 4, after a comment and a good key. */
		snprintf(text, sizeof(text), "; test\n[pgsluice]\nlisten_port = 6500\n%s\n", cases[i].line);
		struct config *c = load(text, &r, &path);
		assert_null(c);
		assert_int_equal(r.errors, 1);
		expect_line(&r, path, 4, cases[i].message);
		reports_clear(&r);
		tmpfiles_teardown(NULL);
	}
}

static void test_all_errors_reported(void **state)
{
	struct reports r = {0};
	const char *path;
	struct config *c = load("[pgsluice]\nlisten_port = x\n\ndefault_pool_size = 0\n"
	                        "[databases]\napp = port=0\n",
	                        &r, &path);

	(void)state;
	assert_null(c);
	assert_int_equal(r.errors, 3);
	expect_line(&r, path, 2, "bad value for listen_port");
	expect_line(&r, path, 4, "bad value for default_pool_size");
	expect_line(&r, path, 6, "database 'app': bad value for port: '0' is out of range (1..65535)");
	reports_clear(&r);
}

static void test_unknown_key_did_you_mean(void **state)
{
	struct reports r = {0};
	const char *path;
	struct config *c = load("[pgsluice]\ndefualt_pool_size = 3\nserver_lifetme = 10\n"
	                        "completely_different_thing = 1\n",
	                        &r, &path);

	(void)state;
	assert_non_null(c); /* unknown keys are warnings */
	assert_int_equal(r.errors, 0);
	assert_int_equal(r.warnings, 3);
	expect_line(&r, path, 2,
	            "unknown key 'defualt_pool_size' in [pgsluice]; did you mean 'default_pool_size'?");
	expect_line(&r, path, 3,
	            "unknown key 'server_lifetme' in [pgsluice]; did you mean 'server_lifetime'?");
	expect_line(&r, path, 4, "unknown key 'completely_different_thing' in [pgsluice], ignored");
	assert_int_equal(c->default_pool_size, 20);
	config_free(c);
	reports_clear(&r);
}

static void test_unknown_section_and_stray_lines(void **state)
{
	struct reports r = {0};
	const char *path;
	struct config *c = load("stray = 1\n[databse]\nx = 1\n[peers]\n1 = host=a\n", &r, &path);

	(void)state;
	assert_non_null(c);
	expect_line(&r, path, 1, "key 'stray' outside any section, ignored");
	expect_line(&r, path, 2, "unknown section [databse]; did you mean [databases]?");
	expect_line(&r, path, 4, "section [peers] is not supported");
	assert_int_equal(r.warnings, 3);
	assert_int_equal(c->n_dbs, 0);
	config_free(c);
	reports_clear(&r);

	c = load("[pgsluice]\nthis line has no equals sign\n[databases\n", &r, &path);
	assert_null(c);
	expect_line(&r, path, 2, "syntax error: expected 'key = value'");
	expect_line(&r, path, 3, "syntax error: section header without ']'");
	reports_clear(&r);
}

static void test_duplicate_key_later_wins(void **state)
{
	struct reports r = {0};
	const char *path;
	char want[256];
	struct config *c =
	    load("[pgsluice]\ndefault_pool_size = 5\n[pgbouncer]\ndefault_pool_size = 6\n", &r, &path);

	(void)state;
	assert_non_null(c);
	assert_int_equal(c->default_pool_size, 6);
	snprintf(want, sizeof(want), "default_pool_size is set again (earlier at %s:2); the later value wins",
	         path);
	expect_line(&r, path, 4, want);
	config_free(c);
	reports_clear(&r);
}

static void test_durations_with_units(void **state)
{
	static const struct {
		const char *text;
		pgs_usec_t usec;
	} cases[] = {
	    {"0", 0},
	    {"10", 10 * PGS_USEC_PER_SEC}, /* bare number: seconds, as in pgbouncer */
	    {"0.5", 500 * PGS_USEC_PER_MS},
	    {"250us", 250},
	    {"500ms", 500 * PGS_USEC_PER_MS},
	    {"10s", 10 * PGS_USEC_PER_SEC},
	    {"10 sec", 10 * PGS_USEC_PER_SEC},
	    {"5min", 300 * PGS_USEC_PER_SEC},
	    {"1.5min", 90 * PGS_USEC_PER_SEC},
	    {"2h", 7200 * PGS_USEC_PER_SEC},
	    {"1d", 86400 * PGS_USEC_PER_SEC},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct reports r = {0};
		char text[128];
		snprintf(text, sizeof(text), "[pgsluice]\nquery_wait_timeout = %s\n", cases[i].text);
		struct config *c = load(text, &r, NULL);
		assert_non_null(c);
		assert_int_equal(c->query_wait_timeout, cases[i].usec);
		config_free(c);
		reports_clear(&r);
		tmpfiles_teardown(NULL);
	}
}

static void test_tcp_user_timeout_bare_number_is_ms(void **state)
{
	struct reports r = {0};
	char value[64];
	const char *name;
	struct config *c = load("[pgsluice]\ntcp_user_timeout = 1500\n", &r, NULL);

	(void)state;
	assert_non_null(c);
	assert_int_equal(c->tcp_user_timeout, 1500 * PGS_USEC_PER_MS);
	for (int i = 0; config_key_at(c, i, &name, value, sizeof(value), NULL, NULL); i++) {
		if (strcmp(name, "tcp_user_timeout") == 0)
			assert_string_equal(value, "1.5s");
	}
	config_free(c);
	reports_clear(&r);
}

static void test_databases_connection_strings(void **state)
{
	struct reports r = {0};
	const char *path;
	const struct db_config *d;
	struct config *c = load("[databases]\n"
	                        "app = host=10.0.0.1 port=5433 dbname=appdb user=u password=secret\n"
	                        "quoted = password='it\\'s a \\\\ ; secret' application_name = 'my app'\n"
	                        "sized = pool_size=5 min_pool_size=1 reserve_pool=2 max_db_connections=50\n"
	                        "alias = reserve_pool_size=3 pool_mode=transaction read_only=1\n"
	                        "multi = host=a,b,c target_session_attrs=read-write\n"
	                        "bare =\n"
	                        "escaped = password=a\\ b\n",
	                        &r, &path);

	(void)state;
	assert_non_null(c);
	assert_int_equal(r.n, 0);
	assert_int_equal(c->n_dbs, 7);

	d = config_find_db(c, "app");
	assert_non_null(d);
	assert_string_equal(d->host, "10.0.0.1");
	assert_int_equal(d->port, 5433);
	assert_string_equal(d->dbname, "appdb");
	assert_string_equal(d->user, "u");
	assert_string_equal(d->password, "secret");
	assert_int_equal(d->line, 2);

	d = config_find_db(c, "quoted");
	assert_string_equal(d->password, "it's a \\ ; secret");
	assert_string_equal(d->application_name, "my app");

	d = config_find_db(c, "sized");
	assert_int_equal(d->pool_size, 5);
	assert_int_equal(d->min_pool_size, 1);
	assert_int_equal(d->reserve_pool, 2);
	assert_int_equal(d->max_db_connections, 50);
	assert_int_equal(d->pool_mode, POOL_MODE_UNSET);

	d = config_find_db(c, "alias");
	assert_int_equal(d->reserve_pool, 3);
	assert_int_equal(d->pool_mode, POOL_MODE_TRANSACTION);
	assert_true(d->read_only);

	d = config_find_db(c, "multi");
	assert_string_equal(d->host, "a,b,c");
	assert_string_equal(d->target_session_attrs, "read-write");

	/* Nothing given: every field inherits. */
	d = config_find_db(c, "bare");
	assert_null(d->host);
	assert_null(d->dbname);
	assert_null(d->user);
	assert_null(d->password);
	assert_null(d->target_session_attrs);
	assert_int_equal(d->port, 5432);
	assert_int_equal(d->pool_size, -1);
	assert_int_equal(d->min_pool_size, -1);
	assert_int_equal(d->reserve_pool, -1);
	assert_int_equal(d->max_db_connections, -1);
	assert_int_equal(d->pool_mode, POOL_MODE_UNSET);
	assert_false(d->read_only);

	assert_string_equal(config_find_db(c, "escaped")->password, "a b");
	assert_null(config_find_db(c, "nope"));
	assert_null(config_find_db(c, "APP")); /* database names are exact */
	config_free(c);
	reports_clear(&r);
}

static void test_databases_errors(void **state)
{
	static const struct {
		const char *value;
		const char *message;
	} cases[] = {
	    {"host=x hots=y", "database 'db': unknown key 'hots'; did you mean 'host'?"},
	    {"port=abc", "database 'db': bad value for port: 'abc' is not an integer"},
	    {"port=5432,5433", "database 'db': bad value for port: '5432,5433' is not an integer"},
	    {"pool_size=-1", "bad value for pool_size: '-1' is out of range (0..10000)"},
	    {"pool_mode=statement", "bad value for pool_mode: statement pooling is not supported"},
	    {"read_only=2", "bad value for read_only"},
	    {"target_session_attrs=primary", "bad value for target_session_attrs: 'primary'"},
	    {"password='unterminated", "unterminated quoted value for password"},
	    {"password='a'b", "unexpected text after the quoted value for password"},
	    {"host", "expected '=' after 'host'"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct reports r = {0};
		char text[256];
		const char *path;
		snprintf(text, sizeof(text), "[databases]\nok = host=a\ndb = %s\n", cases[i].value);
		struct config *c = load(text, &r, &path);
		assert_null(c);
		expect_line(&r, path, 3, cases[i].message);
		reports_clear(&r);
		tmpfiles_teardown(NULL);
	}
}

static void test_databases_unsupported_keys_warn(void **state)
{
	struct reports r = {0};
	const char *path;
	struct config *c =
	    load("[databases]\n"
	         "db = host=a connect_query='SELECT 1' client_encoding=UTF8 datestyle=ISO timezone=UTC\n",
	         &r, &path);

	(void)state;
	assert_non_null(c);
	assert_int_equal(r.warnings, 4);
	expect_line(&r, path, 2, "database 'db': connect_query is not supported, ignored");
	expect_line(&r, path, 2, "database 'db': timezone is not supported, ignored");
	assert_string_equal(config_find_db(c, "db")->host, "a");
	config_free(c);
	reports_clear(&r);
}

static void test_fallback_and_duplicate_databases(void **state)
{
	struct reports r = {0};
	const char *path;
	struct config *c = load("[databases]\n"
	                        "app = host=first\n"
	                        "* = host=fallback port=6000\n"
	                        "app = host=second\n",
	                        &r, &path);

	(void)state;
	assert_non_null(c);
	assert_int_equal(c->n_dbs, 1); /* "*" is not in dbs */
	assert_non_null(c->fallback_db);
	assert_string_equal(c->fallback_db->name, "*");
	assert_string_equal(c->fallback_db->host, "fallback");
	assert_int_equal(c->fallback_db->port, 6000);
	assert_string_equal(config_find_db(c, "app")->host, "second");
	assert_ptr_equal(config_find_db(c, "anything"), c->fallback_db);
	expect_line(&r, path, 4, "database 'app' is defined again (earlier at line 2); the later entry wins");
	config_free(c);
	reports_clear(&r);
}

static void test_users_section(void **state)
{
	struct reports r = {0};
	const char *path;
	const struct user_config *u;
	struct config *c = load("[users]\n"
	                        "alice = pool_mode=transaction max_user_connections=10 pool_size=3\n"
	                        "bob = max_user_connections=2\n",
	                        &r, &path);

	(void)state;
	assert_non_null(c);
	assert_int_equal(c->n_users, 2);
	u = config_find_user(c, "alice");
	assert_non_null(u);
	assert_int_equal(u->pool_mode, POOL_MODE_TRANSACTION);
	assert_int_equal(u->max_user_connections, 10);
	assert_int_equal(u->pool_size, 3);
	assert_int_equal(u->line, 2);
	u = config_find_user(c, "bob");
	assert_int_equal(u->pool_mode, POOL_MODE_UNSET);
	assert_int_equal(u->pool_size, -1);
	assert_null(config_find_user(c, "carol"));
	config_free(c);
	reports_clear(&r);

	c = load("[users]\nalice = pool_mode=statement\nbob = host=x\n", &r, &path);
	assert_null(c);
	expect_line(&r, path, 2, "user 'alice': bad value for pool_mode: statement pooling is not supported");
	expect_line(&r, path, 3, "user 'bob': unknown key 'host'");
	reports_clear(&r);
}

static void test_inheritance(void **state)
{
	struct reports r = {0};
	struct config *c =
	    load("[pgsluice]\ndefault_pool_size = 20\npool_mode = session\nmin_pool_size = 2\n"
	         "max_db_connections = 100\nmax_user_connections = 30\n"
	         "[databases]\n"
	         "plain = host=a\n"
	         "tuned = host=a pool_size=10 pool_mode=transaction min_pool_size=4 max_db_connections=0\n"
	         "[users]\n"
	         "u_plain = max_user_connections=5\n"
	         "u_tuned = pool_size=3 pool_mode=session\n",
	         &r, NULL);
	const struct db_config *plain, *tuned;
	const struct user_config *up, *ut;

	(void)state;
	assert_non_null(c);
	plain = config_find_db(c, "plain");
	tuned = config_find_db(c, "tuned");
	up = config_find_user(c, "u_plain");
	ut = config_find_user(c, "u_tuned");

	/* pool_size: user → database → default_pool_size */
	assert_int_equal(config_effective_pool_size(c, NULL, NULL), 20);
	assert_int_equal(config_effective_pool_size(c, plain, NULL), 20);
	assert_int_equal(config_effective_pool_size(c, tuned, NULL), 10);
	assert_int_equal(config_effective_pool_size(c, tuned, up), 10);
	assert_int_equal(config_effective_pool_size(c, tuned, ut), 3);
	assert_int_equal(config_effective_pool_size(c, plain, ut), 3);

	/* pool_mode: same order */
	assert_int_equal(config_effective_pool_mode(c, plain, NULL), POOL_MODE_SESSION);
	assert_int_equal(config_effective_pool_mode(c, tuned, NULL), POOL_MODE_TRANSACTION);
	assert_int_equal(config_effective_pool_mode(c, tuned, up), POOL_MODE_TRANSACTION);
	assert_int_equal(config_effective_pool_mode(c, tuned, ut), POOL_MODE_SESSION);

	assert_int_equal(config_effective_min_pool_size(c, plain), 2);
	assert_int_equal(config_effective_min_pool_size(c, tuned), 4);
	assert_int_equal(config_effective_min_pool_size(c, NULL), 2);
	assert_int_equal(config_effective_max_db_connections(c, plain), 100);
	assert_int_equal(config_effective_max_db_connections(c, tuned), 0); /* explicit 0 = unlimited wins */
	assert_int_equal(config_effective_max_user_connections(c, up), 5);
	assert_int_equal(config_effective_max_user_connections(c, ut), 30);
	assert_int_equal(config_effective_max_user_connections(c, NULL), 30);
	config_free(c);
	reports_clear(&r);
}

static void test_list_contains(void **state)
{
	static const struct {
		const char *list, *name;
		bool expect;
	} cases[] = {
	    {"admin", "admin", true},
	    {"alice,bob", "bob", true},
	    {"alice, bob", "bob", true},
	    {"alice bob", "alice", true},
	    {" , alice ,, bob ", "bob", true},
	    {"alice,bob", "bo", false},
	    {"alice,bob", "alice,bob", false},
	    {"Alice", "alice", false},
	    {"*", "alice", false}, /* "*" is not a wildcard here */
	    {"*", "*", true},
	    {"", "alice", false},
	    {NULL, "alice", false},
	    {"extra_float_digits", "extra_float_digits", true},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (config_list_contains(cases[i].list, cases[i].name) != cases[i].expect)
			fail_msg("list '%s' name '%s'", cases[i].list ? cases[i].list : "(null)",
			         cases[i].name);
	}
}

static void test_pgbouncer_keys_quiet_at_default(void **state)
{
	struct reports r = {0};
	/* pgbouncer's own defaults, written out: no warning for any. */
	struct config *c =
	    load("[pgbouncer]\n"
	         "logfile = /tmp/x.log\npidfile = /tmp/x.pid\nverbose = 0\n"
	         "syslog = 0\nsyslog_ident = pgbouncer\nsyslog_facility = daemon\n"
	         "server_round_robin = 0\ndisable_pqexec = 0\napplication_name_add_host = 0\n"
	         "conffile = /etc/pgbouncer/pgbouncer.ini\nservice_name = pgbouncer\njob_name = pgbouncer\n"
	         "listen_backlog = 128\nsbuf_loopcnt = 5\nso_reuseport = 0\ntcp_defer_accept = 1\n"
	         "tcp_socket_buffer = 0\npkt_buf = 4096\nmax_packet_size = 2147483647\n"
	         "suspend_timeout = 10\ndns_max_ttl = 15\ndns_nxdomain_ttl = 15\n"
	         "dns_zone_check_period = 0\nresolv_conf =\nauth_hba_file =\n"
	         "auth_query = SELECT usename, passwd FROM pg_shadow WHERE usename=$1\n"
	         "auth_user =\nauth_dbname =\ntrack_extra_parameters = IntervalStyle\n"
	         "server_fast_close = 0\npeer_id = 0\n"
	         "client_tls_sslmode = disable\nclient_tls_key_file =\nclient_tls_cert_file =\n"
	         "client_tls_ca_file =\nclient_tls_protocols = secure\nclient_tls_ciphers = default\n"
	         "client_tls_ecdhcurve = auto\nclient_tls_dheparams = auto\n"
	         "server_tls_sslmode = prefer\nserver_tls_ca_file =\nserver_tls_key_file =\n"
	         "server_tls_cert_file =\nserver_tls_protocols = secure\nserver_tls_ciphers = default\n",
	         &r, NULL);

	(void)state;
	assert_non_null(c);
	for (int i = 0; i < r.n; i++)
		print_message("unexpected: %s\n", r.lines[i]);
	assert_int_equal(r.n, 0);
	assert_string_equal(c->logfile, "/tmp/x.log");
	assert_string_equal(c->pidfile, "/tmp/x.pid");
	config_free(c);
	reports_clear(&r);
}

static void test_pgbouncer_keys_warn_when_changed(void **state)
{
	static const struct {
		const char *line;
		const char *message;
	} cases[] = {
	    {"syslog = 1", "syslog = 1: accepted for compatibility, has no effect"},
	    {"listen_backlog = 4096", "listen_backlog = 4096: accepted for compatibility, has no effect"},
	    {"suspend_timeout = 20", "suspend_timeout = 20: accepted for compatibility, has no effect"},
	    {"syslog_ident = mine", "syslog_ident = mine: accepted for compatibility, has no effect"},
	    {"user = postgres",
	     "user = postgres: accepted for compatibility, has no effect; pgsluice does not switch users"},
	    {"auth_user = pgbouncer", "auth_user = pgbouncer: accepted for compatibility, has no effect; "
	                              "auth_query lookups are not supported"},
	    {"client_tls_key_file = /k.pem", "client_tls_key_file = /k.pem: accepted for compatibility, has "
	                                     "no effect; TLS is not supported yet"},
	    {"client_tls_sslmode = require", "client_tls_sslmode = require: TLS is not supported yet"},
	    {"server_tls_sslmode = verify-full",
	     "server_tls_sslmode = verify-full: TLS is not supported yet"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct reports r = {0};
		char text[256];
		const char *path;
		snprintf(text, sizeof(text), "[pgbouncer]\n%s\n", cases[i].line);
		struct config *c = load(text, &r, &path);
		assert_non_null(c);
		assert_int_equal(r.warnings, 1);
		expect_line(&r, path, 2, cases[i].message);
		config_free(c);
		reports_clear(&r);
		tmpfiles_teardown(NULL);
	}
	/* allow/prefer without TLS is what those modes permit: no warning. */
	struct reports r = {0};
	struct config *c =
	    load("[pgbouncer]\nclient_tls_sslmode = allow\nserver_tls_sslmode = disable\n", &r, NULL);
	assert_non_null(c);
	assert_int_equal(r.n, 0);
	config_free(c);
	reports_clear(&r);
}

static void test_config_set(void **state)
{
	struct reports r = {0};
	struct config *c = load("[pgsluice]\nauth_file = /etc/a.txt\n", &r, NULL);
	char err[256];
	const char *name;
	char value[256];

	(void)state;
	assert_non_null(c);
	assert_true(config_set(c, "default_pool_size", "33", err, sizeof(err)));
	assert_int_equal(c->default_pool_size, 33);
	assert_true(config_set(c, "query_wait_timeout", "2.5s", err, sizeof(err)));
	assert_int_equal(c->query_wait_timeout, 2500 * PGS_USEC_PER_MS);
	assert_true(config_set(c, "pool_mode", "transaction", err, sizeof(err)));
	assert_int_equal(c->pool_mode, POOL_MODE_TRANSACTION);
	assert_true(config_set(c, "auth_file", "/etc/b.txt", err, sizeof(err)));
	assert_string_equal(c->auth_file, "/etc/b.txt");
	assert_true(config_set(c, "auth_file", "", err, sizeof(err)));
	assert_null(c->auth_file);
	assert_true(config_set(c, "server_reset_query", "", err, sizeof(err)));
	assert_string_equal(c->server_reset_query, ""); /* "" = no reset query, not the default */
	assert_true(config_set(c, "Server_Lifetime_Jitter", "25%", err, sizeof(err)));
	assert_int_equal(c->server_lifetime_jitter, 25);

	assert_false(config_set(c, "default_pool_size", "0", err, sizeof(err)));
	assert_string_equal(err, "bad value for default_pool_size: '0' is out of range (1..10000)");
	assert_int_equal(c->default_pool_size, 33);
	assert_false(config_set(c, "pool_mode", "statement", err, sizeof(err)));
	assert_non_null(strstr(err, "statement pooling is not supported"));
	assert_false(config_set(c, "defualt_pool_size", "3", err, sizeof(err)));
	assert_string_equal(err, "unknown key 'defualt_pool_size'; did you mean 'default_pool_size'?");
	assert_false(config_set(c, "listen_port", "7000", err, sizeof(err)));
	assert_string_equal(err, "listen_port can only be changed by a restart");
	assert_int_equal(c->listen_port, 6432);
	assert_false(config_set(c, "syslog", "1", err, sizeof(err)));
	assert_non_null(strstr(err, "has no effect"));

	/* Every reloadable key takes back the text SHOW CONFIG prints for it. */
	for (int i = 0; config_key_at(c, i, &name, value, sizeof(value), NULL, NULL); i++) {
		bool reloadable;
		config_key_at(c, i, NULL, NULL, 0, NULL, &reloadable);
		if (!reloadable)
			continue;
		if (!config_set(c, name, value, err, sizeof(err)))
			fail_msg("SET %s = '%s': %s", name, value, err);
	}
	config_free(c);
	reports_clear(&r);
}

static void test_config_copy(void **state)
{
	struct reports r = {0};
	struct config *c = load("[pgsluice]\nauth_file = /etc/a.txt\n[databases]\napp = host=h password=p\n"
	                        "* = host=f\n[users]\nu = pool_size=2\n",
	                        &r, NULL);
	struct config *copy;
	char err[128];

	(void)state;
	assert_non_null(c);
	copy = config_copy(c);
	assert_non_null(copy);
	assert_true(config_set(copy, "auth_file", "/etc/b.txt", err, sizeof(err)));
	assert_string_equal(c->auth_file, "/etc/a.txt"); /* the original generation is untouched */
	assert_string_equal(copy->auth_file, "/etc/b.txt");
	assert_ptr_not_equal(copy->dbs, c->dbs);
	assert_string_equal(config_find_db(copy, "app")->password, "p");
	assert_string_equal(config_find_db(copy, "zzz")->host, "f");
	assert_int_equal(config_find_user(copy, "u")->pool_size, 2);
	assert_string_equal(copy->path, c->path);
	assert_string_equal(copy->listen_addr, "127.0.0.1");
	config_free(c);
	config_free(copy);
	reports_clear(&r);
}

static void test_lines_pgbouncer_style(void **state)
{
	struct reports r = {0};
	char text[1024], host[400];
	struct config *c;

	(void)state;
	/* Longer than libinih's line buffer, indented, ';' inside a value,
	 * '#' comment, CRLF endings, UTF-8 byte order mark. */
	memset(host, 'h', sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	snprintf(text, sizeof(text),
	         "\xEF\xBB\xBF; first\r\n[databases]\r\n"
	         "  long = host=%s password=a;b\r\n"
	         "# comment\r\n"
	         "\tsemi = password='x ;y'\r\n",
	         host);
	c = load(text, &r, NULL);
	assert_non_null(c);
	for (int i = 0; i < r.n; i++)
		print_message("unexpected: %s\n", r.lines[i]);
	assert_int_equal(r.n, 0);
	assert_string_equal(config_find_db(c, "long")->host, host);
	assert_string_equal(config_find_db(c, "long")->password, "a;b");
	assert_string_equal(config_find_db(c, "semi")->password, "x ;y");
	assert_int_equal(config_find_db(c, "semi")->line, 5);
	config_free(c);
	reports_clear(&r);

	/* A value with a trailing comment is an error, as in pgbouncer. */
	const char *path;
	c = load("[pgsluice]\ndefault_pool_size = 5 ; five\n", &r, &path);
	assert_null(c);
	expect_line(&r, path, 2, "bad value for default_pool_size: '5 ; five' is not an integer");
	reports_clear(&r);
}

static void test_include(void **state)
{
	struct reports r = {0};
	char text[256];
	const char *inc = write_tmp("[databases]\nincluded = host=inc\nbroken = port=x\n");
	const char *path;
	struct config *c;

	(void)state;
	snprintf(text, sizeof(text),
	         "[pgsluice]\nlisten_port = 7001\n%%include %s\n[users]\nu = pool_size=1\n", inc);
	c = load(text, &r, &path);
	assert_null(c);
	/* The error names the included file and its own line. */
	expect_line(&r, inc, 3, "database 'broken': bad value for port");
	reports_clear(&r);

	inc = write_tmp("default_pool_size = 9\n[databases]\nincluded = host=inc\n");
	snprintf(text, sizeof(text), "[pgsluice]\n%%include %s\n[users]\nu = pool_size=1\n", inc);
	c = load(text, &r, &path);
	assert_non_null(c);
	assert_int_equal(c->default_pool_size, 9); /* the section carries into the file */
	assert_string_equal(config_find_db(c, "included")->host, "inc");
	assert_int_equal(config_find_user(c, "u")->pool_size, 1);
	config_free(c);
	reports_clear(&r);

	c = load("[pgsluice]\n%include /nonexistent/pgsluice.ini\n%frobnicate\n", &r, &path);
	assert_null(c);
	expect_line(&r, path, 2, "cannot open /nonexistent/pgsluice.ini");
	expect_line(&r, path, 3, "unknown directive '%frobnicate'");
	reports_clear(&r);
}

static void test_missing_file(void **state)
{
	struct reports r = {0};
	struct config *c = config_load("/nonexistent/pgsluice.ini", collect, &r);

	(void)state;
	assert_null(c);
	assert_int_equal(r.errors, 1);
	assert_non_null(reported(&r, "/nonexistent/pgsluice.ini: cannot open /nonexistent/pgsluice.ini"));
	reports_clear(&r);
	/* A NULL reporter is allowed. */
	assert_null(config_load("/nonexistent/pgsluice.ini", NULL, NULL));
}

static void test_empty_values(void **state)
{
	struct reports r = {0};
	struct config *c = load("[pgsluice]\nlisten_addr =\nunix_socket_dir =\nauth_file =\nadmin_users = \n"
	                        "logfile =\nlisten_addr = *\nunix_socket_dir=\n",
	                        &r, NULL);

	(void)state;
	assert_non_null(c);
	assert_string_equal(c->listen_addr, "*");
	assert_string_equal(c->unix_socket_dir, ""); /* "" = no unix socket */
	assert_null(c->auth_file);                   /* unset stays unset */
	assert_null(c->admin_users);
	assert_null(c->logfile);
	config_free(c);
	reports_clear(&r);
}

static void test_enum_names_and_values(void **state)
{
	static const struct {
		const char *text;
		enum auth_type type;
	} auths[] = {
	    {"trust", AUTH_TRUST},         {"plain", AUTH_PLAIN},         {"md5", AUTH_MD5},
	    {"scram-sha-256", AUTH_SCRAM}, {"SCRAM-SHA-256", AUTH_SCRAM},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(auths) / sizeof(auths[0]); i++) {
		struct reports r = {0};
		char text[128];
		snprintf(text, sizeof(text), "[pgsluice]\nauth_type = %s\nverbose = 2\n", auths[i].text);
		struct config *c = load(text, &r, NULL);
		assert_non_null(c);
		assert_int_equal(c->auth_type, auths[i].type);
		assert_true(c->verbose);
		config_free(c);
		reports_clear(&r);
		tmpfiles_teardown(NULL);
	}
	assert_string_equal(config_pool_mode_name(POOL_MODE_SESSION), "session");
	assert_string_equal(config_pool_mode_name(POOL_MODE_TRANSACTION), "transaction");
	assert_string_equal(config_pool_mode_name(POOL_MODE_UNSET), "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_defaults_every_key, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_reloadable_flags, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_pgbouncer_alias, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_bad_values_name_file_line, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_all_errors_reported, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_unknown_key_did_you_mean, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_unknown_section_and_stray_lines, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_duplicate_key_later_wins, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_durations_with_units, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_tcp_user_timeout_bare_number_is_ms, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_databases_connection_strings, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_databases_errors, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_databases_unsupported_keys_warn, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_fallback_and_duplicate_databases, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_users_section, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_inheritance, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_list_contains, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_pgbouncer_keys_quiet_at_default, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_pgbouncer_keys_warn_when_changed, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_config_set, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_config_copy, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_lines_pgbouncer_style, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_include, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_missing_file, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_empty_values, tmpfiles_teardown),
	    cmocka_unit_test_teardown(test_enum_names_and_values, tmpfiles_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
