/* config.c — loads pgsluice.ini (pgbouncer.ini compatible) into an immutable
 * struct config: one table of keys (name, type, target, default, bounds,
 * reload behaviour), libinih for the file, a libpq-style parser for the
 * [databases] and [users] values, and every problem reported as
 * "FILE:LINE: message". Also the lookups that resolve per-database and
 * per-user overrides, and the key table walk behind SHOW CONFIG and SET. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------ */
/* The key table                                                        */
/* ------------------------------------------------------------------ */

enum cfg_type {
	CFG_INT,         /* int; bounds inclusive */
	CFG_OCTAL,       /* int written in octal, as file modes are */
	CFG_BOOL,        /* 1/0, on/off, yes/no, true/false */
	CFG_LEVEL,       /* bool that also takes pgbouncer's numeric levels min..max */
	CFG_DURATION,    /* pgs_usec_t; a bare number is seconds; bounds in usec */
	CFG_DURATION_MS, /* same, but a bare number is milliseconds (pgbouncer's unit for the key) */
	CFG_PERCENT,     /* int, "10" or "10%" */
	CFG_STRING,      /* char *, owned */
	CFG_POOL_MODE,   /* enum pool_mode */
	CFG_AUTH_TYPE,   /* enum auth_type */
	CFG_SSLMODE,     /* libpq sslmode; accepted only, nothing stores it */
};

/* Reload behaviour and, for pgbouncer keys we only accept, when to warn. */
#define CFG_RESTART 0x0u  /* a new value needs a restart */
#define CFG_RELOAD 0x1u   /* a reload (or SET) applies it */
#define CFG_COMPAT 0x2u   /* no effect; warn when the value differs from pgbouncer's default */
#define CFG_QUIET 0x4u    /* no effect, and nothing worth telling the user about */
#define CFG_WARN_SET 0x8u /* no effect; warn whenever it is set to anything */

/* Keys that are only accepted have nowhere to go. */
#define NO_STORE ((size_t)-1)
#define OFF(f) offsetof(struct config, f)

#define MS(n) ((long long)(n)*PGS_USEC_PER_MS)
#define SEC(n) ((long long)(n)*PGS_USEC_PER_SEC)
#define MINUTES(n) SEC((n)*60LL)
#define HOURS(n) SEC((n)*3600LL)
#define DAYS(n) SEC((n)*86400LL)

struct config_key {
	const char *name;
	enum cfg_type type;
	size_t off;         /* offsetof in struct config, or NO_STORE */
	const char *def;    /* the only place a default is written; NULL = unset */
	long long min, max; /* in the stored unit: microseconds for durations */
	unsigned flags;
	const char *note; /* for accepted-only keys: what the user should know */
};

/* Defaults are written in the form SHOW CONFIG prints them, so a fresh
 * load shows exactly the default text for every key. */
static const struct config_key keys[] = {
    /* where clients connect */
    {"listen_addr", CFG_STRING, OFF(listen_addr), "127.0.0.1", 0, 0, CFG_RESTART, NULL},
    {"listen_port", CFG_INT, OFF(listen_port), "6432", 1, 65535, CFG_RESTART, NULL},
    {"unix_socket_dir", CFG_STRING, OFF(unix_socket_dir), "/tmp", 0, 0, CFG_RESTART, NULL},
    {"unix_socket_mode", CFG_OCTAL, OFF(unix_socket_mode), "0777", 0, 0777, CFG_RESTART, NULL},
    {"workers", CFG_INT, OFF(workers), "0", 0, 1024, CFG_RESTART, NULL},
    {"http_addr", CFG_STRING, OFF(http_addr), "127.0.0.1", 0, 0, CFG_RESTART, NULL},
    {"http_port", CFG_INT, OFF(http_port), "9127", 0, 65535, CFG_RESTART, NULL},
    {"health_max_wait", CFG_DURATION, OFF(health_max_wait), "1s", MS(1), HOURS(1), CFG_RELOAD, NULL},

    /* who may connect */
    {"auth_type", CFG_AUTH_TYPE, OFF(auth_type), "md5", 0, 0, CFG_RELOAD, NULL},
    {"auth_file", CFG_STRING, OFF(auth_file), NULL, 0, 0, CFG_RELOAD, NULL},
    {"admin_users", CFG_STRING, OFF(admin_users), NULL, 0, 0, CFG_RELOAD, NULL},
    {"stats_users", CFG_STRING, OFF(stats_users), NULL, 0, 0, CFG_RELOAD, NULL},
    {"ignore_startup_parameters", CFG_STRING, OFF(ignore_startup_parameters), NULL, 0, 0, CFG_RELOAD, NULL},

    /* pool sizing */
    {"pool_mode", CFG_POOL_MODE, OFF(pool_mode), "session", 0, 0, CFG_RELOAD, NULL},
    {"default_pool_size", CFG_INT, OFF(default_pool_size), "20", 1, 10000, CFG_RELOAD, NULL},
    {"min_pool_size", CFG_INT, OFF(min_pool_size), "0", 0, 10000, CFG_RELOAD, NULL},
    {"reserve_pool_size", CFG_INT, OFF(reserve_pool_size), "0", 0, 10000, CFG_RELOAD, NULL},
    {"reserve_pool_timeout", CFG_DURATION, OFF(reserve_pool_timeout), "5s", 0, DAYS(1), CFG_RELOAD, NULL},
    {"max_client_conn", CFG_INT, OFF(max_client_conn), "100", 1, 1000000, CFG_RELOAD, NULL},
    {"max_db_connections", CFG_INT, OFF(max_db_connections), "0", 0, 1000000, CFG_RELOAD, NULL},
    {"max_user_connections", CFG_INT, OFF(max_user_connections), "0", 0, 1000000, CFG_RELOAD, NULL},
    {"max_waiting_clients", CFG_INT, OFF(max_waiting_clients), "0", 0, 1000000, CFG_RELOAD, NULL},
    {"max_prepared_statements", CFG_INT, OFF(max_prepared_statements), "0", 0, 100000, CFG_RELOAD, NULL},

    /* server connections */
    {"server_reset_query", CFG_STRING, OFF(server_reset_query), "DISCARD ALL", 0, 0, CFG_RELOAD, NULL},
    {"server_reset_query_always", CFG_BOOL, OFF(server_reset_query_always), "0", 0, 0, CFG_RELOAD, NULL},
    {"server_check_query", CFG_STRING, OFF(server_check_query), "select 1", 0, 0, CFG_RELOAD, NULL},
    {"server_check_delay", CFG_DURATION, OFF(server_check_delay), "30s", 0, DAYS(1), CFG_RELOAD, NULL},
    /* Zero would fail every check at once and close every server. */
    {"server_check_timeout", CFG_DURATION, OFF(server_check_timeout), "1s", MS(1), MINUTES(10), CFG_RELOAD,
     NULL},
    {"server_lifetime", CFG_DURATION, OFF(server_lifetime), "3600s", 0, DAYS(365), CFG_RELOAD, NULL},
    {"server_lifetime_jitter", CFG_PERCENT, OFF(server_lifetime_jitter), "10%", 0, 100, CFG_RELOAD, NULL},
    {"server_idle_timeout", CFG_DURATION, OFF(server_idle_timeout), "600s", 0, DAYS(365), CFG_RELOAD, NULL},
    {"server_connect_timeout", CFG_DURATION, OFF(server_connect_timeout), "15s", MS(1), HOURS(1), CFG_RELOAD,
     NULL},
    {"server_login_retry", CFG_DURATION, OFF(server_login_retry), "15s", 0, HOURS(1), CFG_RELOAD, NULL},
    {"server_connect_concurrency", CFG_INT, OFF(server_connect_concurrency), "4", 1, 1000, CFG_RELOAD, NULL},

    /* client timeouts */
    {"query_timeout", CFG_DURATION, OFF(query_timeout), "0", 0, DAYS(365), CFG_RELOAD, NULL},
    {"query_wait_timeout", CFG_DURATION, OFF(query_wait_timeout), "120s", 0, DAYS(365), CFG_RELOAD, NULL},
    {"client_idle_timeout", CFG_DURATION, OFF(client_idle_timeout), "0", 0, DAYS(365), CFG_RELOAD, NULL},
    {"client_login_timeout", CFG_DURATION, OFF(client_login_timeout), "60s", 0, DAYS(1), CFG_RELOAD, NULL},
    {"idle_transaction_timeout", CFG_DURATION, OFF(idle_transaction_timeout), "0", 0, DAYS(365), CFG_RELOAD,
     NULL},
    {"leak_warn_timeout", CFG_DURATION, OFF(leak_warn_timeout), "10s", 0, DAYS(1), CFG_RELOAD, NULL},
    {"shutdown_timeout", CFG_DURATION, OFF(shutdown_timeout), "30s", 0, DAYS(1), CFG_RELOAD, NULL},

    /* TCP; 0 leaves the kernel's value. Upper bounds are Linux's own limits. */
    {"tcp_keepalive", CFG_BOOL, OFF(tcp_keepalive), "1", 0, 0, CFG_RELOAD, NULL},
    {"tcp_keepidle", CFG_INT, OFF(tcp_keepidle), "30", 0, 32767, CFG_RELOAD, NULL},
    {"tcp_keepintvl", CFG_INT, OFF(tcp_keepintvl), "10", 0, 32767, CFG_RELOAD, NULL},
    {"tcp_keepcnt", CFG_INT, OFF(tcp_keepcnt), "3", 0, 127, CFG_RELOAD, NULL},
    {"tcp_user_timeout", CFG_DURATION_MS, OFF(tcp_user_timeout), "30s", 0, DAYS(1), CFG_RELOAD, NULL},
    {"tcp_defer_accept", CFG_INT, OFF(tcp_defer_accept), "1", 0, INT_MAX, CFG_RELOAD, NULL},

    /* logging and statistics */
    {"log_connections", CFG_BOOL, OFF(log_connections), "1", 0, 0, CFG_RELOAD, NULL},
    {"log_disconnections", CFG_BOOL, OFF(log_disconnections), "1", 0, 0, CFG_RELOAD, NULL},
    {"verbose", CFG_LEVEL, OFF(verbose), "0", 0, 2, CFG_RELOAD, NULL},
    {"logfile", CFG_STRING, OFF(logfile), NULL, 0, 0, CFG_RESTART, NULL},
    {"pidfile", CFG_STRING, OFF(pidfile), NULL, 0, 0, CFG_RESTART, NULL},
    {"stats_period", CFG_DURATION, OFF(stats_period), "60s", SEC(1), DAYS(1), CFG_RELOAD, NULL},
    {"stats_log_period", CFG_DURATION, OFF(stats_log_period), "60s", 0, DAYS(1), CFG_RELOAD, NULL},

    /* pgbouncer keys accepted so an existing pgbouncer.ini loads; defaults are pgbouncer's */
    {"user", CFG_STRING, NO_STORE, NULL, 0, 0, CFG_WARN_SET,
     "pgsluice does not switch users; start it as the user it should run as"},
    {"syslog", CFG_BOOL, NO_STORE, "0", 0, 0, CFG_COMPAT, "logs go to stderr or logfile"},
    {"syslog_ident", CFG_STRING, NO_STORE, "pgbouncer", 0, 0, CFG_COMPAT, NULL},
    {"syslog_facility", CFG_STRING, NO_STORE, "daemon", 0, 0, CFG_COMPAT, NULL},
    {"server_round_robin", CFG_BOOL, NO_STORE, "0", 0, 0, CFG_COMPAT, NULL},
    {"disable_pqexec", CFG_BOOL, NO_STORE, "0", 0, 0, CFG_COMPAT, NULL},
    {"application_name_add_host", CFG_BOOL, NO_STORE, "0", 0, 0, CFG_COMPAT, NULL},
    {"conffile", CFG_STRING, NO_STORE, NULL, 0, 0, CFG_QUIET, NULL},
    {"service_name", CFG_STRING, NO_STORE, NULL, 0, 0, CFG_QUIET, NULL},
    {"job_name", CFG_STRING, NO_STORE, NULL, 0, 0, CFG_QUIET, NULL},
    {"listen_backlog", CFG_INT, NO_STORE, "128", 0, INT_MAX, CFG_COMPAT, NULL},
    {"sbuf_loopcnt", CFG_INT, NO_STORE, "5", 0, INT_MAX, CFG_COMPAT, NULL},
    {"so_reuseport", CFG_BOOL, NO_STORE, "0", 0, 0, CFG_COMPAT, NULL},

    {"tcp_socket_buffer", CFG_INT, NO_STORE, "0", 0, INT_MAX, CFG_COMPAT, NULL},
    {"pkt_buf", CFG_INT, NO_STORE, "4096", 0, INT_MAX, CFG_COMPAT, NULL},
    {"max_packet_size", CFG_INT, NO_STORE, "2147483647", 0, UINT32_MAX, CFG_COMPAT, NULL},
    {"suspend_timeout", CFG_DURATION, NO_STORE, "10s", 0, DAYS(365), CFG_COMPAT, NULL},
    {"dns_max_ttl", CFG_DURATION, NO_STORE, "15s", 0, DAYS(365), CFG_COMPAT, NULL},
    {"dns_nxdomain_ttl", CFG_DURATION, NO_STORE, "15s", 0, DAYS(365), CFG_COMPAT, NULL},
    {"dns_zone_check_period", CFG_DURATION, NO_STORE, "0", 0, DAYS(365), CFG_COMPAT, NULL},
    {"resolv_conf", CFG_STRING, NO_STORE, NULL, 0, 0, CFG_COMPAT, NULL},
    {"auth_hba_file", CFG_STRING, NO_STORE, NULL, 0, 0, CFG_COMPAT, "auth_type hba is not supported"},
    {"auth_ident_file", CFG_STRING, NO_STORE, NULL, 0, 0, CFG_COMPAT, NULL},
    {"auth_ldap_options", CFG_STRING, NO_STORE, NULL, 0, 0, CFG_COMPAT, NULL},
    /* auth_query only matters together with auth_user, which warns. */
    {"auth_query", CFG_STRING, NO_STORE, NULL, 0, 0, CFG_QUIET, NULL},
    {"auth_user", CFG_STRING, NO_STORE, NULL, 0, 0, CFG_WARN_SET,
     "auth_query lookups are not supported; list users in auth_file"},
    {"auth_dbname", CFG_STRING, NO_STORE, NULL, 0, 0, CFG_WARN_SET,
     "auth_query lookups are not supported; list users in auth_file"},
    {"track_extra_parameters", CFG_STRING, NO_STORE, "IntervalStyle", 0, 0, CFG_COMPAT, NULL},
    {"server_fast_close", CFG_BOOL, NO_STORE, "0", 0, 0, CFG_COMPAT, NULL},
    {"peer_id", CFG_INT, NO_STORE, "0", 0, INT_MAX, CFG_COMPAT, NULL},
    {"log_pooler_errors", CFG_BOOL, NO_STORE, "1", 0, 0, CFG_COMPAT, NULL},
    {"log_stats", CFG_BOOL, NO_STORE, "1", 0, 0, CFG_COMPAT,
     "stats_log_period = 0 turns the stats lines off"},
    {"autodb_idle_timeout", CFG_DURATION, NO_STORE, "3600s", 0, DAYS(365), CFG_COMPAT, NULL},
    {"unix_socket_group", CFG_STRING, NO_STORE, NULL, 0, 0, CFG_COMPAT, NULL},
    {"max_db_client_connections", CFG_INT, NO_STORE, "0", 0, INT_MAX, CFG_COMPAT, NULL},
    {"max_user_client_connections", CFG_INT, NO_STORE, "0", 0, INT_MAX, CFG_COMPAT, NULL},
    {"query_wait_notify", CFG_INT, NO_STORE, "5", 0, INT_MAX, CFG_COMPAT, NULL},
    {"cancel_wait_timeout", CFG_DURATION, NO_STORE, "10s", 0, DAYS(365), CFG_COMPAT, NULL},
    {"transaction_timeout", CFG_DURATION, NO_STORE, "0", 0, DAYS(365), CFG_COMPAT, NULL},
    {"scram_iterations", CFG_INT, NO_STORE, "4096", 0, INT_MAX, CFG_COMPAT, NULL},

    /* TLS: accepted, not supported yet. The sslmode rows warn by mode. */
    {"client_tls_sslmode", CFG_SSLMODE, NO_STORE, "disable", 0, 0, CFG_COMPAT, NULL},
    {"client_tls_key_file", CFG_STRING, NO_STORE, NULL, 0, 0, CFG_COMPAT, "TLS is not supported yet"},
    {"client_tls_cert_file", CFG_STRING, NO_STORE, NULL, 0, 0, CFG_COMPAT, "TLS is not supported yet"},
    {"client_tls_ca_file", CFG_STRING, NO_STORE, NULL, 0, 0, CFG_COMPAT, "TLS is not supported yet"},
    {"client_tls_protocols", CFG_STRING, NO_STORE, "secure", 0, 0, CFG_COMPAT, "TLS is not supported yet"},
    {"client_tls_ciphers", CFG_STRING, NO_STORE, "default", 0, 0, CFG_COMPAT, "TLS is not supported yet"},
    {"client_tls13_ciphers", CFG_STRING, NO_STORE, NULL, 0, 0, CFG_COMPAT, "TLS is not supported yet"},
    {"client_tls_ecdhcurve", CFG_STRING, NO_STORE, "auto", 0, 0, CFG_COMPAT, "TLS is not supported yet"},
    {"client_tls_dheparams", CFG_STRING, NO_STORE, "auto", 0, 0, CFG_COMPAT, "TLS is not supported yet"},
    {"server_tls_sslmode", CFG_SSLMODE, NO_STORE, "prefer", 0, 0, CFG_COMPAT, NULL},
    {"server_tls_ca_file", CFG_STRING, NO_STORE, NULL, 0, 0, CFG_COMPAT, "TLS is not supported yet"},
    {"server_tls_key_file", CFG_STRING, NO_STORE, NULL, 0, 0, CFG_COMPAT, "TLS is not supported yet"},
    {"server_tls_cert_file", CFG_STRING, NO_STORE, NULL, 0, 0, CFG_COMPAT, "TLS is not supported yet"},
    {"server_tls_protocols", CFG_STRING, NO_STORE, "secure", 0, 0, CFG_COMPAT, "TLS is not supported yet"},
    {"server_tls_ciphers", CFG_STRING, NO_STORE, "default", 0, 0, CFG_COMPAT, "TLS is not supported yet"},
    {"server_tls13_ciphers", CFG_STRING, NO_STORE, NULL, 0, 0, CFG_COMPAT, "TLS is not supported yet"},
};

#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

struct enum_name {
	const char *name;
	int value;
};

static const struct enum_name pool_mode_names[] = {
    {"session", POOL_MODE_SESSION},
    {"transaction", POOL_MODE_TRANSACTION},
    {NULL, 0},
};

static const struct enum_name auth_type_names[] = {
    {"trust", AUTH_TRUST}, {"plain", AUTH_PLAIN}, {"md5", AUTH_MD5}, {"scram-sha-256", AUTH_SCRAM}, {NULL, 0},
};

enum sslmode {
	SSLMODE_DISABLE,
	SSLMODE_ALLOW,
	SSLMODE_PREFER,
	SSLMODE_REQUIRE,
	SSLMODE_VERIFY_CA,
	SSLMODE_VERIFY_FULL
};

static const struct enum_name sslmode_names[] = {
    {"disable", SSLMODE_DISABLE},
    {"allow", SSLMODE_ALLOW},
    {"prefer", SSLMODE_PREFER},
    {"require", SSLMODE_REQUIRE},
    {"verify-ca", SSLMODE_VERIFY_CA},
    {"verify-full", SSLMODE_VERIFY_FULL},
    {NULL, 0},
};

static bool enum_lookup(const struct enum_name *t, const char *s, int *out)
{
	for (; t->name != NULL; t++) {
		if (strcasecmp(t->name, s) == 0) {
			*out = t->value;
			return true;
		}
	}
	return false;
}

static const char *enum_name_of(const struct enum_name *t, int v)
{
	for (; t->name != NULL; t++) {
		if (t->value == v)
			return t->name;
	}
	return "";
}

const char *config_pool_mode_name(enum pool_mode m)
{
	return enum_name_of(pool_mode_names, (int)m);
}

static const struct config_key *key_find(const char *name)
{
	for (size_t i = 0; i < N_KEYS; i++) {
		if (strcasecmp(keys[i].name, name) == 0)
			return &keys[i];
	}
	return NULL;
}

/* The closest of CANDIDATES (NULL-terminated, or all keys when NULL) to
 * NAME, if it is within 3 edits; NULL otherwise. */
static const char *suggest(const char *name, const char *const *candidates)
{
	char lower[128];
	const char *best = NULL;
	int best_d = 4;
	size_t i;

	for (i = 0; name[i] != '\0' && i < sizeof(lower) - 1; i++)
		lower[i] = (char)tolower((unsigned char)name[i]);
	lower[i] = '\0';
	for (i = 0;; i++) {
		const char *cand = candidates != NULL ? candidates[i] : (i < N_KEYS ? keys[i].name : NULL);
		if (cand == NULL)
			break;
		int d = str_edit_distance(lower, cand);
		if (d < best_d) {
			best_d = d;
			best = cand;
		}
	}
	return best;
}

/* ------------------------------------------------------------------ */
/* Parsing and storing one value                                       */
/* ------------------------------------------------------------------ */

/* A parsed non-string value, before it is stored. */
union cfg_value {
	long long i; /* INT, OCTAL, PERCENT, enums */
	bool b;      /* BOOL, LEVEL */
	pgs_usec_t d;
};

static void format_bound(const struct config_key *k, long long v, char *buf, size_t size)
{
	if (k->type == CFG_DURATION || k->type == CFG_DURATION_MS)
		str_format_duration(v, buf, size);
	else if (k->type == CFG_OCTAL)
		snprintf(buf, size, "0%llo", v);
	else
		snprintf(buf, size, "%lld", v);
}

static bool out_of_range(const struct config_key *k, const char *text, char *why, size_t why_size)
{
	char lo[32], hi[32];

	format_bound(k, k->min, lo, sizeof(lo));
	format_bound(k, k->max, hi, sizeof(hi));
	snprintf(why, why_size, "'%s' is out of range (%s..%s)", text, lo, hi);
	return false;
}

static bool parse_octal(const char *s, long long *out)
{
	long long v = 0;

	while (isspace((unsigned char)*s))
		s++;
	if (*s < '0' || *s > '7')
		return false;
	for (; *s >= '0' && *s <= '7'; s++) {
		if (v > 077777777)
			return false;
		v = v * 8 + (*s - '0');
	}
	while (isspace((unsigned char)*s))
		s++;
	if (*s != '\0')
		return false;
	*out = v;
	return true;
}

/* Checks TEXT against K's type and bounds. Numbers and enums land in *v;
 * strings need no parsing. On failure WHY says what is wrong, naming the
 * accepted values or bounds. */
static bool key_parse(const struct config_key *k, const char *text, union cfg_value *v, char *why,
                      size_t why_size)
{
	int e;

	switch (k->type) {
	case CFG_INT:
		if (!str_parse_int(text, &v->i)) {
			snprintf(why, why_size, "'%s' is not an integer", text);
			return false;
		}
		if (v->i < k->min || v->i > k->max)
			return out_of_range(k, text, why, why_size);
		return true;
	case CFG_OCTAL:
		if (!parse_octal(text, &v->i)) {
			snprintf(why, why_size, "'%s' is not an octal number", text);
			return false;
		}
		if (v->i < k->min || v->i > k->max)
			return out_of_range(k, text, why, why_size);
		return true;
	case CFG_BOOL:
		if (!str_parse_bool(text, &v->b)) {
			snprintf(why, why_size, "'%s' is not a boolean (1/0, on/off, yes/no, true/false)",
			         text);
			return false;
		}
		return true;
	case CFG_LEVEL: {
		long long n;
		if (str_parse_bool(text, &v->b))
			return true;
		if (str_parse_int(text, &n) && n >= k->min && n <= k->max) {
			v->b = n > 0;
			return true;
		}
		snprintf(why, why_size, "'%s' is not a boolean or a level %lld..%lld", text, k->min, k->max);
		return false;
	}
	case CFG_DURATION:
	case CFG_DURATION_MS: {
		pgs_usec_t unit = k->type == CFG_DURATION ? PGS_USEC_PER_SEC : PGS_USEC_PER_MS;
		if (!str_parse_duration(text, unit, &v->d)) {
			snprintf(why, why_size,
			         "'%s' is not a duration (a number with an optional unit us, ms, s, min, h "
			         "or d; a bare number is %s)",
			         text, k->type == CFG_DURATION ? "seconds" : "milliseconds");
			return false;
		}
		if (v->d < k->min || v->d > k->max)
			return out_of_range(k, text, why, why_size);
		return true;
	}
	case CFG_PERCENT: {
		char buf[32];
		size_t n = strlen(text);
		while (n > 0 && isspace((unsigned char)text[n - 1]))
			n--;
		if (n > 0 && text[n - 1] == '%')
			n--;
		if (n >= sizeof(buf)) {
			snprintf(why, why_size, "'%s' is not a percentage", text);
			return false;
		}
		memcpy(buf, text, n);
		buf[n] = '\0';
		if (!str_parse_int(buf, &v->i)) {
			snprintf(why, why_size, "'%s' is not a percentage", text);
			return false;
		}
		if (v->i < k->min || v->i > k->max)
			return out_of_range(k, text, why, why_size);
		return true;
	}
	case CFG_STRING:
		return true;
	case CFG_POOL_MODE:
		if (strcasecmp(text, "statement") == 0) {
			snprintf(why, why_size,
			         "statement pooling is not supported; use session or transaction");
			return false;
		}
		if (!enum_lookup(pool_mode_names, text, &e)) {
			snprintf(why, why_size, "'%s' is not a pool mode (session, transaction)", text);
			return false;
		}
		v->i = e;
		return true;
	case CFG_AUTH_TYPE:
		if (!enum_lookup(auth_type_names, text, &e)) {
			snprintf(
			    why, why_size,
			    "auth_type '%s' is not supported; supported: trust, plain, md5, scram-sha-256",
			    text);
			return false;
		}
		v->i = e;
		return true;
	case CFG_SSLMODE:
		if (!enum_lookup(sslmode_names, text, &e)) {
			snprintf(why, why_size,
			         "'%s' is not an sslmode (disable, allow, prefer, require, verify-ca, "
			         "verify-full)",
			         text);
			return false;
		}
		v->i = e;
		return true;
	}
	snprintf(why, why_size, "internal error: key type %d", (int)k->type);
	return false;
}

/* Writes a value already checked by key_parse() into C. Only a string can
 * fail (out of memory); the old value is kept then. */
static bool key_store(struct config *c, const struct config_key *k, const char *text,
                      const union cfg_value *v)
{
	char *p = (char *)c + k->off;

	switch (k->type) {
	case CFG_INT:
	case CFG_OCTAL:
	case CFG_PERCENT:
		*(int *)p = (int)v->i;
		break;
	case CFG_BOOL:
	case CFG_LEVEL:
		*(bool *)p = v->b;
		break;
	case CFG_DURATION:
	case CFG_DURATION_MS:
		*(pgs_usec_t *)p = v->d;
		break;
	case CFG_POOL_MODE:
		*(enum pool_mode *)p = (enum pool_mode)v->i;
		break;
	case CFG_AUTH_TYPE:
		*(enum auth_type *)p = (enum auth_type)v->i;
		break;
	case CFG_STRING: {
		/* Keys that default to unset (auth_file, logfile...) stay unset
		 * when given an empty value, so users of the config test one
		 * thing (NULL). Keys with a default keep "", which means "off"
		 * for them (no TCP listener, no reset query). */
		char *s = NULL;
		if (text != NULL && (text[0] != '\0' || k->def != NULL)) {
			s = str_dup(text);
			if (s == NULL)
				return false;
		}
		free(*(char **)p);
		*(char **)p = s;
		break;
	}
	case CFG_SSLMODE:
		break; /* nothing stores it */
	}
	return true;
}

static void key_format(const struct config *c, const struct config_key *k, char *buf, size_t size)
{
	const char *p = (const char *)c + k->off;

	switch (k->type) {
	case CFG_INT:
		snprintf(buf, size, "%d", *(const int *)p);
		return;
	case CFG_OCTAL:
		snprintf(buf, size, "0%o", (unsigned)*(const int *)p);
		return;
	case CFG_PERCENT:
		snprintf(buf, size, "%d%%", *(const int *)p);
		return;
	case CFG_BOOL:
	case CFG_LEVEL:
		str_lcopy(buf, *(const bool *)p ? "1" : "0", size);
		return;
	case CFG_DURATION:
	case CFG_DURATION_MS:
		str_format_duration(*(const pgs_usec_t *)p, buf, size);
		return;
	case CFG_POOL_MODE:
		str_lcopy(buf, config_pool_mode_name(*(const enum pool_mode *)p), size);
		return;
	case CFG_AUTH_TYPE:
		str_lcopy(buf, enum_name_of(auth_type_names, (int)*(const enum auth_type *)p), size);
		return;
	case CFG_STRING: {
		const char *s = *(char *const *)p;
		str_lcopy(buf, s != NULL ? s : "", size);
		return;
	}
	case CFG_SSLMODE:
		break;
	}
	if (size > 0)
		buf[0] = '\0';
}

/* ------------------------------------------------------------------ */
/* Freeing and copying                                                 */
/* ------------------------------------------------------------------ */

static void db_config_clear(struct db_config *d)
{
	free(d->name);
	free(d->host);
	free(d->dbname);
	free(d->user);
	free(d->password);
	free(d->application_name);
	free(d->target_session_attrs);
	memset(d, 0, sizeof(*d));
}

static void user_config_clear(struct user_config *u)
{
	free(u->name);
	memset(u, 0, sizeof(*u));
}

static void db_config_init(struct db_config *d)
{
	memset(d, 0, sizeof(*d));
	d->port = 5432;
	d->pool_size = -1;
	d->min_pool_size = -1;
	d->reserve_pool = -1;
	d->max_db_connections = -1;
	d->pool_mode = POOL_MODE_UNSET;
}

static void user_config_init(struct user_config *u)
{
	memset(u, 0, sizeof(*u));
	u->pool_mode = POOL_MODE_UNSET;
	u->max_user_connections = -1;
	u->pool_size = -1;
}

void config_free(struct config *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < N_KEYS; i++) {
		if (keys[i].off != NO_STORE && keys[i].type == CFG_STRING)
			free(*(char **)((char *)c + keys[i].off));
	}
	for (int i = 0; i < c->n_dbs; i++)
		db_config_clear(&c->dbs[i]);
	free(c->dbs);
	if (c->fallback_db != NULL)
		db_config_clear(c->fallback_db);
	free(c->fallback_db);
	for (int i = 0; i < c->n_users; i++)
		user_config_clear(&c->users[i]);
	free(c->users);
	free(c->path);
	free(c);
}

static bool dup_field(char **dst, const char *src)
{
	*dst = str_dup(src);
	return src == NULL || *dst != NULL;
}

static bool db_config_copy(struct db_config *dst, const struct db_config *src)
{
	*dst = *src;
	dst->name = dst->host = dst->dbname = dst->user = dst->password = NULL;
	dst->application_name = dst->target_session_attrs = NULL;
	return dup_field(&dst->name, src->name) && dup_field(&dst->host, src->host) &&
	       dup_field(&dst->dbname, src->dbname) && dup_field(&dst->user, src->user) &&
	       dup_field(&dst->password, src->password) &&
	       dup_field(&dst->application_name, src->application_name) &&
	       dup_field(&dst->target_session_attrs, src->target_session_attrs);
}

struct config *config_copy(const struct config *src)
{
	struct config *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	*c = *src;
	/* Unshare every pointer first, so config_free() can take a half-built copy. */
	for (size_t i = 0; i < N_KEYS; i++) {
		if (keys[i].off != NO_STORE && keys[i].type == CFG_STRING)
			*(char **)((char *)c + keys[i].off) = NULL;
	}
	c->path = NULL;
	c->dbs = NULL;
	c->n_dbs = 0;
	c->fallback_db = NULL;
	c->users = NULL;
	c->n_users = 0;

	if (!dup_field(&c->path, src->path))
		goto fail;
	for (size_t i = 0; i < N_KEYS; i++) {
		if (keys[i].off == NO_STORE || keys[i].type != CFG_STRING)
			continue;
		if (!dup_field((char **)((char *)c + keys[i].off),
		               *(char *const *)((const char *)src + keys[i].off)))
			goto fail;
	}
	if (src->n_dbs > 0) {
		c->dbs = calloc((size_t)src->n_dbs, sizeof(*c->dbs));
		if (c->dbs == NULL)
			goto fail;
		for (; c->n_dbs < src->n_dbs; c->n_dbs++) {
			if (!db_config_copy(&c->dbs[c->n_dbs], &src->dbs[c->n_dbs])) {
				c->n_dbs++; /* the half copy is freed with the rest */
				goto fail;
			}
		}
	}
	if (src->fallback_db != NULL) {
		c->fallback_db = calloc(1, sizeof(*c->fallback_db));
		if (c->fallback_db == NULL || !db_config_copy(c->fallback_db, src->fallback_db))
			goto fail;
	}
	if (src->n_users > 0) {
		c->users = calloc((size_t)src->n_users, sizeof(*c->users));
		if (c->users == NULL)
			goto fail;
		for (; c->n_users < src->n_users; c->n_users++) {
			c->users[c->n_users] = src->users[c->n_users];
			c->users[c->n_users].name = NULL;
			if (!dup_field(&c->users[c->n_users].name, src->users[c->n_users].name)) {
				c->n_users++;
				goto fail;
			}
		}
	}
	return c;
fail:
	config_free(c);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Loading: line reader, reporting                                     */
/* ------------------------------------------------------------------ */

enum section { SECT_NONE, SECT_MAIN, SECT_DATABASES, SECT_USERS, SECT_PEERS, SECT_UNKNOWN };

static const struct {
	const char *name;
	enum section kind;
} sections[] = {
    {"pgsluice", SECT_MAIN},       {"pgbouncer", SECT_MAIN}, /* so an existing pgbouncer.ini runs unchanged */
    {"databases", SECT_DATABASES}, {"users", SECT_USERS},    {"peers", SECT_PEERS},
};

#define N_SECTIONS (sizeof(sections) / sizeof(sections[0]))

/* %include nesting beyond this is almost surely a file including itself. */
#define MAX_INCLUDE_DEPTH 10

struct src_file {
	FILE *fp;
	const char *path; /* borrowed from load_ctx.paths */
	int lineno;
	struct src_file *up; /* the file whose %include opened this one */
};

struct load_ctx {
	struct config *cfg;
	config_report_fn report;
	void *arg;
	int n_errors;

	struct src_file *top; /* the file being read; NULL at the end */
	int depth;
	char **paths; /* every file opened, kept for "earlier at FILE:LINE" */
	int n_paths;

	char *line; /* getline buffer */
	size_t line_cap;
	char *cur; /* the current line, whole, leading space skipped */

	struct {
		const char *file;
		int line;
	} seen[N_KEYS]; /* where each main key was last set */
	int db_cap, user_cap;
};

static void reportv(struct load_ctx *x, enum config_severity sev, const char *fmt, va_list ap)
{
	char msg[1024], out[1400];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (x->top != NULL)
		snprintf(out, sizeof(out), "%s:%d: %s", x->top->path, x->top->lineno, msg);
	else
		snprintf(out, sizeof(out), "%s: %s", x->cfg->path != NULL ? x->cfg->path : "(config)", msg);
	if (sev == CONFIG_ERROR)
		x->n_errors++;
	if (x->report != NULL)
		x->report(x->arg, sev, out);
}

static void __attribute__((format(printf, 2, 3))) warn(struct load_ctx *x, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	reportv(x, CONFIG_WARNING, fmt, ap);
	va_end(ap);
}

static void __attribute__((format(printf, 2, 3))) error(struct load_ctx *x, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	reportv(x, CONFIG_ERROR, fmt, ap);
	va_end(ap);
}

static bool push_file(struct load_ctx *x, const char *path)
{
	struct src_file *f = NULL;
	char **paths;
	char *copy = NULL;

	if (x->depth >= MAX_INCLUDE_DEPTH) {
		error(x, "%%include nested more than %d deep (does a file include itself?)",
		      MAX_INCLUDE_DEPTH);
		return false;
	}
	paths = realloc(x->paths, (size_t)(x->n_paths + 1) * sizeof(*paths));
	if (paths == NULL)
		goto oom;
	x->paths = paths;
	copy = str_dup(path);
	f = calloc(1, sizeof(*f));
	if (copy == NULL || f == NULL)
		goto oom;
	f->fp = fopen(path, "r");
	if (f->fp == NULL) {
		error(x, "cannot open %s: %s", path, strerror(errno));
		free(copy);
		free(f);
		return false;
	}
	x->paths[x->n_paths++] = copy;
	f->path = copy;
	f->up = x->top;
	x->top = f;
	x->depth++;
	return true;
oom:
	error(x, "out of memory");
	free(copy);
	free(f);
	return false;
}

static void pop_file(struct load_ctx *x)
{
	struct src_file *f = x->top;

	fclose(f->fp);
	x->top = f->up;
	x->depth--;
	free(f);
}

static char *trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		end--;
	*end = '\0';
	return s;
}

static enum section section_kind(const char *name)
{
	for (size_t i = 0; i < N_SECTIONS; i++) {
		if (strcasecmp(sections[i].name, name) == 0)
			return sections[i].kind;
	}
	return SECT_UNKNOWN;
}

/* Warns about a section header we will not use, at its own line. */
static bool check_section_line(struct load_ctx *x, const char *line)
{
	const char *close = strchr(line, ']');
	char name[128];
	size_t n;

	if (close == NULL) {
		error(x, "syntax error: section header without ']'");
		return false;
	}
	n = (size_t)(close - line - 1);
	if (n >= sizeof(name)) {
		error(x, "section name too long");
		return false;
	}
	memcpy(name, line + 1, n);
	name[n] = '\0';
	char *t = trim(name);
	switch (section_kind(t)) {
	case SECT_PEERS:
		warn(x, "section [%s] is not supported; its keys are ignored", t);
		break;
	case SECT_UNKNOWN: {
		const char *names[N_SECTIONS + 1];
		for (size_t i = 0; i < N_SECTIONS; i++)
			names[i] = sections[i].name;
		names[N_SECTIONS] = NULL;
		const char *hint = suggest(t, names);
		if (hint != NULL)
			warn(x, "unknown section [%s]; did you mean [%s]? Its keys are ignored", t, hint);
		else
			warn(x, "unknown section [%s]; its keys are ignored", t);
		break;
	}
	default:
		break;
	}
	return true;
}

static void include_directive(struct load_ctx *x, char *line)
{
	char *arg;

	if (strncmp(line, "%include", 8) != 0 || (line[8] != '\0' && !isspace((unsigned char)line[8]))) {
		error(x, "unknown directive '%s' (only %%include is supported)", line);
		return;
	}
	arg = trim(line + 8);
	if (*arg == '\0') {
		error(x, "%%include needs a file name");
		return;
	}
	/* As in pgbouncer, a relative name is taken from the working directory. */
	push_file(x, arg);
}

/* libinih's reader hook. libinih alone would cut lines at its fixed buffer
 * (200 bytes in Debian's build), treat " ;" inside a value as a comment
 * (passwords and connection strings may hold one), take indented lines as
 * continuations and not report line numbers: pgbouncer does none of that.
 * So this reader owns the lines: it counts them per file, follows
 * %include, reports malformed lines itself, keeps the whole current line
 * in x->cur and hands libinih only section headers and a stand-in for each
 * key line; the handler splits x->cur. */
static char *cfg_reader(char *buf, int size, void *stream)
{
	struct load_ctx *x = stream;

	while (x->top != NULL) {
		struct src_file *f = x->top;
		ssize_t n = getline(&x->line, &x->line_cap, f->fp);
		char *s;

		if (n < 0) {
			if (ferror(f->fp))
				error(x, "read error: %s", strerror(errno));
			pop_file(x);
			continue;
		}
		f->lineno++;
		s = x->line;
		if (f->lineno == 1 && (size_t)n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
			s += 3; /* UTF-8 byte order mark, in any file, not only the first */
		s = trim(s);
		x->cur = s;
		if (*s == '\0' || *s == ';' || *s == '#')
			continue;
		if (*s == '%') {
			include_directive(x, s);
			continue;
		}
		if (*s == '[') {
			if (!check_section_line(x, s))
				continue;
			str_lcopy(buf, s, (size_t)size - 1);
			strcat(buf, "\n");
			return buf;
		}
		if (strchr(s, '=') == NULL) {
			error(x, "syntax error: expected 'key = value', got '%s'", s);
			continue;
		}
		str_lcopy(buf, "k=v\n", (size_t)size);
		return buf;
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* [pgsluice]                                                          */
/* ------------------------------------------------------------------ */

/* A pgbouncer key we accept without acting on it: say so when the user
 * may be relying on it. */
static void compat_key(struct load_ctx *x, const struct config_key *k, const char *value)
{
	union cfg_value v, d;
	char why[256];
	bool differs;

	if (k->flags & CFG_QUIET)
		return;
	if (k->type == CFG_SSLMODE) {
		if (!key_parse(k, value, &v, why, sizeof(why))) {
			error(x, "bad value for %s: %s", k->name, why);
			return;
		}
		/* allow/prefer without TLS is plain text, which those modes permit. */
		if (v.i > SSLMODE_PREFER)
			warn(x, "%s = %s: TLS is not supported yet; connections will NOT be encrypted",
			     k->name, value);
		return;
	}
	if (k->flags & CFG_WARN_SET) {
		differs = value[0] != '\0';
	} else if (k->type == CFG_STRING) {
		differs = strcmp(value, k->def != NULL ? k->def : "") != 0;
	} else if (!key_parse(k, value, &v, why, sizeof(why))) {
		differs = true;
	} else {
		key_parse(k, k->def, &d, why, sizeof(why));
		if (k->type == CFG_BOOL || k->type == CFG_LEVEL)
			differs = v.b != d.b;
		else if (k->type == CFG_DURATION || k->type == CFG_DURATION_MS)
			differs = v.d != d.d;
		else
			differs = v.i != d.i;
	}
	if (differs)
		warn(x, "%s = %s: accepted for compatibility, has no effect%s%s", k->name, value,
		     k->note != NULL ? "; " : "", k->note != NULL ? k->note : "");
}

static void main_key(struct load_ctx *x, const char *section, const char *name, const char *value)
{
	const struct config_key *k = key_find(name);
	union cfg_value v;
	char why[256];

	if (k == NULL) {
		const char *hint = suggest(name, NULL);
		if (hint != NULL)
			warn(x, "unknown key '%s' in [%s]; did you mean '%s'?", name, section, hint);
		else
			warn(x, "unknown key '%s' in [%s], ignored", name, section);
		return;
	}
	size_t i = (size_t)(k - keys);
	if (x->seen[i].file != NULL)
		warn(x, "%s is set again (earlier at %s:%d); the later value wins", k->name, x->seen[i].file,
		     x->seen[i].line);
	x->seen[i].file = x->top->path;
	x->seen[i].line = x->top->lineno;

	if (k->off == NO_STORE) {
		compat_key(x, k, value);
		return;
	}
	if (!key_parse(k, value, &v, why, sizeof(why))) {
		error(x, "bad value for %s: %s", k->name, why);
		return;
	}
	if (!key_store(x->cfg, k, value, &v))
		error(x, "out of memory");
}

/* ------------------------------------------------------------------ */
/* [databases] and [users]: libpq-style "key=value ..." values          */
/* ------------------------------------------------------------------ */

enum entry_type {
	ENT_STRING,    /* char *, owned; empty means unset (NULL) */
	ENT_INT,       /* int within min..max */
	ENT_BOOL,      /* bool */
	ENT_POOL_MODE, /* enum pool_mode */
	ENT_TSA,       /* target_session_attrs, kept as text */
	ENT_IGNORED,   /* pgbouncer key we do not act on: warn */
};

struct entry_key {
	const char *name;
	enum entry_type type;
	size_t off; /* in struct db_config or struct user_config */
	int min, max;
};

#define DOFF(f) offsetof(struct db_config, f)
#define UOFF(f) offsetof(struct user_config, f)

static const struct entry_key db_keys[] = {
    {"host", ENT_STRING, DOFF(host), 0, 0},
    {"port", ENT_INT, DOFF(port), 1, 65535},
    {"dbname", ENT_STRING, DOFF(dbname), 0, 0},
    {"user", ENT_STRING, DOFF(user), 0, 0},
    {"password", ENT_STRING, DOFF(password), 0, 0},
    {"application_name", ENT_STRING, DOFF(application_name), 0, 0},
    {"target_session_attrs", ENT_TSA, DOFF(target_session_attrs), 0, 0},
    {"pool_size", ENT_INT, DOFF(pool_size), 0, 10000},
    {"min_pool_size", ENT_INT, DOFF(min_pool_size), 0, 10000},
    {"reserve_pool", ENT_INT, DOFF(reserve_pool), 0, 10000},
    {"reserve_pool_size", ENT_INT, DOFF(reserve_pool), 0, 10000},
    {"max_db_connections", ENT_INT, DOFF(max_db_connections), 0, 1000000},
    {"pool_mode", ENT_POOL_MODE, DOFF(pool_mode), 0, 0},
    {"read_only", ENT_BOOL, DOFF(read_only), 0, 0},
    {"connect_query", ENT_IGNORED, 0, 0, 0},
    {"client_encoding", ENT_IGNORED, 0, 0, 0},
    {"datestyle", ENT_IGNORED, 0, 0, 0},
    {"timezone", ENT_IGNORED, 0, 0, 0},
    {"auth_user", ENT_IGNORED, 0, 0, 0},
    {"auth_query", ENT_IGNORED, 0, 0, 0},
    {"auth_dbname", ENT_IGNORED, 0, 0, 0},
    {"server_lifetime", ENT_IGNORED, 0, 0, 0},
    {"load_balance_hosts", ENT_IGNORED, 0, 0, 0},
    {"max_db_client_connections", ENT_IGNORED, 0, 0, 0},
    {NULL, ENT_IGNORED, 0, 0, 0},
};

static const struct entry_key user_keys[] = {
    {"pool_mode", ENT_POOL_MODE, UOFF(pool_mode), 0, 0},
    {"max_user_connections", ENT_INT, UOFF(max_user_connections), 0, 1000000},
    {"pool_size", ENT_INT, UOFF(pool_size), 0, 10000},
    {"reserve_pool_size", ENT_IGNORED, 0, 0, 0},
    {"max_user_client_connections", ENT_IGNORED, 0, 0, 0},
    {NULL, ENT_IGNORED, 0, 0, 0},
};

static const char *const tsa_values[] = {"any", "read-write", "read-only", "prefer-standby", NULL};

/* Applies one key=value of an entry to TARGET. WHAT names the entry in
 * messages ("database 'app'"). */
static void entry_set(struct load_ctx *x, const struct entry_key *table, const char *what, void *target,
                      const char *key, const char *value)
{
	const struct entry_key *k;
	char *p;
	long long n;
	bool b;
	int e;

	for (k = table; k->name != NULL; k++) {
		if (strcasecmp(k->name, key) == 0)
			break;
	}
	if (k->name == NULL) {
		const char *names[32];
		size_t i;
		for (i = 0; table[i].name != NULL && i < 31; i++)
			names[i] = table[i].name;
		names[i] = NULL;
		const char *hint = suggest(key, names);
		error(x, "%s: unknown key '%s'%s%s%s", what, key, hint != NULL ? "; did you mean '" : "",
		      hint != NULL ? hint : "", hint != NULL ? "'?" : "");
		return;
	}
	p = (char *)target + k->off;
	switch (k->type) {
	case ENT_STRING:
		free(*(char **)p);
		*(char **)p = NULL;
		if (value[0] != '\0' && (*(char **)p = str_dup(value)) == NULL)
			error(x, "out of memory");
		return;
	case ENT_INT:
		if (!str_parse_int(value, &n)) {
			error(x, "%s: bad value for %s: '%s' is not an integer", what, k->name, value);
			return;
		}
		if (n < k->min || n > k->max) {
			error(x, "%s: bad value for %s: '%s' is out of range (%d..%d)", what, k->name, value,
			      k->min, k->max);
			return;
		}
		*(int *)p = (int)n;
		return;
	case ENT_BOOL:
		if (!str_parse_bool(value, &b)) {
			error(x, "%s: bad value for %s: '%s' is not a boolean (0 or 1)", what, k->name,
			      value);
			return;
		}
		*(bool *)p = b;
		return;
	case ENT_POOL_MODE:
		if (strcasecmp(value, "statement") == 0) {
			error(
			    x,
			    "%s: bad value for pool_mode: statement pooling is not supported; use session or "
			    "transaction",
			    what);
			return;
		}
		if (!enum_lookup(pool_mode_names, value, &e)) {
			error(x,
			      "%s: bad value for pool_mode: '%s' is not a pool mode (session, transaction)",
			      what, value);
			return;
		}
		*(enum pool_mode *)p = (enum pool_mode)e;
		return;
	case ENT_TSA:
		for (int i = 0; tsa_values[i] != NULL; i++) {
			if (strcmp(tsa_values[i], value) == 0) {
				free(*(char **)p);
				if ((*(char **)p = str_dup(value)) == NULL)
					error(x, "out of memory");
				return;
			}
		}
		error(x,
		      "%s: bad value for target_session_attrs: '%s' (any, read-write, read-only, "
		      "prefer-standby)",
		      what, value);
		return;
	case ENT_IGNORED:
		warn(x, "%s: %s is not supported, ignored", what, k->name);
		return;
	}
}

/* Walks "k1=v1 k2='v 2'" the way libpq reads a conninfo string: spaces
 * around '=' are allowed, a value is either a bare word or single-quoted,
 * and a backslash escapes the next character in both. Decodes in place. */
static void parse_connstr(struct load_ctx *x, const struct entry_key *table, const char *what, void *target,
                          char *s)
{
	for (;;) {
		char *key, *val, *out;

		while (isspace((unsigned char)*s))
			s++;
		if (*s == '\0')
			return;
		key = s;
		while (*s != '\0' && *s != '=' && !isspace((unsigned char)*s))
			s++;
		char *key_end = s;
		while (isspace((unsigned char)*s))
			s++;
		if (*s != '=') {
			*key_end = '\0';
			error(x, "%s: expected '=' after '%s'", what, key);
			return;
		}
		*key_end = '\0';
		s++;
		while (isspace((unsigned char)*s))
			s++;
		val = out = s;
		if (*s == '\'') {
			s++;
			for (;;) {
				if (*s == '\0') {
					error(x, "%s: unterminated quoted value for %s", what, key);
					return;
				}
				if (*s == '\'')
					break;
				if (*s == '\\' && s[1] != '\0')
					s++;
				*out++ = *s++;
			}
			s++; /* the closing quote */
			if (*s != '\0' && !isspace((unsigned char)*s)) {
				error(x, "%s: unexpected text after the quoted value for %s", what, key);
				return;
			}
		} else {
			while (*s != '\0' && !isspace((unsigned char)*s)) {
				if (*s == '\\' && s[1] != '\0')
					s++;
				*out++ = *s++;
			}
		}
		/* s stands on the separator or the end; decoding only shrinks,
		 * so the terminator lands at or before it. */
		char *next = *s != '\0' ? s + 1 : s;
		*out = '\0';
		s = next;
		entry_set(x, table, what, target, key, val);
	}
}

static void db_entry(struct load_ctx *x, const char *name, char *value)
{
	struct config *c = x->cfg;
	struct db_config d;
	char what[160];
	int errors_before = x->n_errors;

	db_config_init(&d);
	d.line = x->top->lineno;
	snprintf(what, sizeof(what), "database '%s'", name);
	if ((d.name = str_dup(name)) == NULL) {
		error(x, "out of memory");
		return;
	}
	parse_connstr(x, db_keys, what, &d, value);
	if (x->n_errors != errors_before) {
		db_config_clear(&d);
		return;
	}
	if (d.min_pool_size > 0 && d.pool_size >= 0 && d.min_pool_size > d.pool_size)
		warn(x, "%s: min_pool_size %d is larger than pool_size %d", what, d.min_pool_size,
		     d.pool_size);

	if (strcmp(name, "*") == 0) {
		if (c->fallback_db != NULL) {
			warn(x,
			     "fallback database '*' is defined again (earlier at line %d); the later entry "
			     "wins",
			     c->fallback_db->line);
			db_config_clear(c->fallback_db);
		} else if ((c->fallback_db = calloc(1, sizeof(*c->fallback_db))) == NULL) {
			error(x, "out of memory");
			db_config_clear(&d);
			return;
		}
		*c->fallback_db = d;
		return;
	}
	for (int i = 0; i < c->n_dbs; i++) {
		if (strcmp(c->dbs[i].name, name) == 0) {
			warn(x, "%s is defined again (earlier at line %d); the later entry wins", what,
			     c->dbs[i].line);
			db_config_clear(&c->dbs[i]);
			c->dbs[i] = d;
			return;
		}
	}
	if (c->n_dbs == x->db_cap) {
		int cap = x->db_cap > 0 ? x->db_cap * 2 : 8;
		struct db_config *dbs = realloc(c->dbs, (size_t)cap * sizeof(*dbs));
		if (dbs == NULL) {
			error(x, "out of memory");
			db_config_clear(&d);
			return;
		}
		c->dbs = dbs;
		x->db_cap = cap;
	}
	c->dbs[c->n_dbs++] = d;
}

static void user_entry(struct load_ctx *x, const char *name, char *value)
{
	struct config *c = x->cfg;
	struct user_config u;
	char what[160];
	int errors_before = x->n_errors;

	user_config_init(&u);
	u.line = x->top->lineno;
	snprintf(what, sizeof(what), "user '%s'", name);
	if ((u.name = str_dup(name)) == NULL) {
		error(x, "out of memory");
		return;
	}
	parse_connstr(x, user_keys, what, &u, value);
	if (x->n_errors != errors_before) {
		user_config_clear(&u);
		return;
	}
	for (int i = 0; i < c->n_users; i++) {
		if (strcmp(c->users[i].name, name) == 0) {
			warn(x, "%s is defined again (earlier at line %d); the later entry wins", what,
			     c->users[i].line);
			user_config_clear(&c->users[i]);
			c->users[i] = u;
			return;
		}
	}
	if (c->n_users == x->user_cap) {
		int cap = x->user_cap > 0 ? x->user_cap * 2 : 8;
		struct user_config *users = realloc(c->users, (size_t)cap * sizeof(*users));
		if (users == NULL) {
			error(x, "out of memory");
			user_config_clear(&u);
			return;
		}
		c->users = users;
		x->user_cap = cap;
	}
	c->users[c->n_users++] = u;
}

/* libinih's handler: called once per key line, right after cfg_reader()
 * returned it, so x->cur and x->top describe that line. */
static int cfg_handler(void *user, const char *section, const char *unused_name, const char *unused_value)
{
	struct load_ctx *x = user;
	char *eq = strchr(x->cur, '=');
	char *name, *value, *sect;
	char sect_buf[128];

	(void)unused_name;
	(void)unused_value;

	*eq = '\0';
	name = trim(x->cur);
	value = trim(eq + 1);
	str_lcopy(sect_buf, section, sizeof(sect_buf));
	sect = trim(sect_buf);
	if (*name == '\0') {
		error(x, "syntax error: missing key name before '='");
		return 1;
	}
	switch (section_kind(sect)) {
	case SECT_MAIN:
		main_key(x, sect, name, value);
		break;
	case SECT_DATABASES:
		db_entry(x, name, value);
		break;
	case SECT_USERS:
		user_entry(x, name, value);
		break;
	case SECT_PEERS:
	case SECT_UNKNOWN:
		break; /* warned about once, at the section header */
	case SECT_NONE:
		break;
	}
	if (*sect == '\0')
		warn(x, "key '%s' outside any section, ignored", name);
	/* Errors are counted in x; returning 0 would only make libinih
	 * remember a line number we already reported. */
	return 1;
}

static bool apply_defaults(struct load_ctx *x)
{
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct config_key *k = &keys[i];
		union cfg_value v;
		char why[256];

		if (k->off == NO_STORE)
			continue;
		/* A default that does not parse is a bug in the table; the unit
		 * test loads every default, so this only guards releases. */
		if (!key_parse(k, k->def != NULL ? k->def : "", &v, why, sizeof(why))) {
			error(x, "internal error: default of %s: %s", k->name, why);
			return false;
		}
		if (!key_store(x->cfg, k, k->def, &v)) {
			error(x, "out of memory");
			return false;
		}
	}
	return true;
}

struct config *config_load(const char *path, config_report_fn report, void *arg)
{
	struct load_ctx x;
	struct config *c;

	memset(&x, 0, sizeof(x));
	x.report = report;
	x.arg = arg;
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		if (report != NULL)
			report(arg, CONFIG_ERROR, "out of memory loading the configuration");
		return NULL;
	}
	x.cfg = c;
	if (path == NULL || (c->path = str_dup(path)) == NULL) {
		error(&x, path == NULL ? "no configuration file given" : "out of memory");
		goto done;
	}
	if (!apply_defaults(&x) || !push_file(&x, path))
		goto done;
	int rc = ini_parse_stream(cfg_reader, &x, cfg_handler, &x);
	if (rc != 0 && x.n_errors == 0)
		error(&x, "libinih could not parse the file (result %d)", rc);
done:
	while (x.top != NULL)
		pop_file(&x);
	for (int i = 0; i < x.n_paths; i++)
		free(x.paths[i]);
	free(x.paths);
	free(x.line);
	if (x.n_errors > 0) {
		config_free(c);
		return NULL;
	}
	return c;
}

/* ------------------------------------------------------------------ */
/* Lookups                                                             */
/* ------------------------------------------------------------------ */

const struct db_config *config_find_db(const struct config *c, const char *name)
{
	for (int i = 0; i < c->n_dbs; i++) {
		if (strcmp(c->dbs[i].name, name) == 0)
			return &c->dbs[i];
	}
	return c->fallback_db;
}

const struct user_config *config_find_user(const struct config *c, const char *name)
{
	for (int i = 0; i < c->n_users; i++) {
		if (strcmp(c->users[i].name, name) == 0)
			return &c->users[i];
	}
	return NULL;
}

enum pool_mode config_effective_pool_mode(const struct config *c, const struct db_config *db,
                                          const struct user_config *u)
{
	if (u != NULL && u->pool_mode != POOL_MODE_UNSET)
		return u->pool_mode;
	if (db != NULL && db->pool_mode != POOL_MODE_UNSET)
		return db->pool_mode;
	return c->pool_mode;
}

int config_effective_pool_size(const struct config *c, const struct db_config *db,
                               const struct user_config *u)
{
	if (u != NULL && u->pool_size >= 0)
		return u->pool_size;
	if (db != NULL && db->pool_size >= 0)
		return db->pool_size;
	return c->default_pool_size;
}

int config_effective_min_pool_size(const struct config *c, const struct db_config *db)
{
	return db != NULL && db->min_pool_size >= 0 ? db->min_pool_size : c->min_pool_size;
}

int config_effective_max_db_connections(const struct config *c, const struct db_config *db)
{
	return db != NULL && db->max_db_connections >= 0 ? db->max_db_connections : c->max_db_connections;
}

int config_effective_max_user_connections(const struct config *c, const struct user_config *u)
{
	return u != NULL && u->max_user_connections >= 0 ? u->max_user_connections : c->max_user_connections;
}

bool config_list_contains(const char *list, const char *name)
{
	size_t len;

	if (list == NULL || name == NULL)
		return false;
	len = strlen(name);
	while (*list != '\0') {
		const char *start;
		while (*list == ',' || isspace((unsigned char)*list))
			list++;
		start = list;
		while (*list != '\0' && *list != ',' && !isspace((unsigned char)*list))
			list++;
		if ((size_t)(list - start) == len && len > 0 && memcmp(start, name, len) == 0)
			return true;
	}
	return false;
}

/* ------------------------------------------------------------------ */
/* SHOW CONFIG and SET                                                 */
/* ------------------------------------------------------------------ */

bool config_key_at(const struct config *c, int i, const char **name, char *value, size_t value_size,
                   const char **default_text, bool *reloadable)
{
	int seen = 0;

	if (i < 0)
		return false;
	/* Accepted-only keys have no value of ours to show. */
	for (size_t j = 0; j < N_KEYS; j++) {
		const struct config_key *k = &keys[j];
		if (k->off == NO_STORE)
			continue;
		if (seen++ != i)
			continue;
		if (name != NULL)
			*name = k->name;
		if (value != NULL && value_size > 0) {
			if (c != NULL)
				key_format(c, k, value, value_size);
			else
				str_lcopy(value, k->def != NULL ? k->def : "", value_size);
		}
		if (default_text != NULL)
			*default_text = k->def != NULL ? k->def : "";
		if (reloadable != NULL)
			*reloadable = (k->flags & CFG_RELOAD) != 0;
		return true;
	}
	return false;
}

bool config_set(struct config *c, const char *key, const char *value, char *err, size_t err_size)
{
	const struct config_key *k = key != NULL ? key_find(key) : NULL;
	union cfg_value v;
	char why[256];

	if (value == NULL)
		value = "";
	if (k == NULL) {
		const char *hint = key != NULL ? suggest(key, NULL) : NULL;
		snprintf(err, err_size, "unknown key '%s'%s%s%s", key != NULL ? key : "",
		         hint != NULL ? "; did you mean '" : "", hint != NULL ? hint : "",
		         hint != NULL ? "'?" : "");
		return false;
	}
	if (k->off == NO_STORE) {
		snprintf(err, err_size,
		         "%s is accepted in the configuration file for compatibility but has no effect",
		         k->name);
		return false;
	}
	/* Changing it in the generation would make SHOW CONFIG claim a value
	 * that the running listeners do not use. */
	if (!(k->flags & CFG_RELOAD)) {
		snprintf(err, err_size, "%s can only be changed by a restart", k->name);
		return false;
	}
	if (!key_parse(k, value, &v, why, sizeof(why))) {
		snprintf(err, err_size, "bad value for %s: %s", k->name, why);
		return false;
	}
	if (!key_store(c, k, value, &v)) {
		snprintf(err, err_size, "out of memory");
		return false;
	}
	return true;
}
