/* doctor.c — `pgsluice --check --online`: log in to every server the
 * [databases] entries lead to, read the few settings that decide whether the
 * configuration can work against it, and report what does not add up.
 *
 * Three parts that do not know each other's insides:
 *   plan   config → logins (distinct host, port, dbname, user) and, per
 *          server, the most connections each entry's pools can open;
 *   login  one blocking PostgreSQL client (trust, password, md5, SCRAM) that
 *          reads pg_settings — this runs once from the command line, never on
 *          an event loop, so blocking with a deadline is the simple answer;
 *   judge  config + plan with results → findings. Pure: unit tested without
 *          a server.
 * The message builders, framing and the login itself (auth/pglogin: the
 * StartupMessage, the answers to authentication requests, the default
 * socket directory) are the pooler's own modules; only what they lack for a
 * blocking client, and the wording of a failure for a person, live here. */
#include "doctor.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "auth/pglogin.h"
#include "proto/frame.h"
#include "proto/msg.h"
#include "proto/protocol.h"
#include "util/clock.h"

/* The fallback entry "*" has no database of its own to log in to. */
#define DOCTOR_FALLBACK_DBNAME "postgres"
/* Every message we expect is a few hundred bytes; a peer announcing more is
 * not a PostgreSQL server we should keep reading from. */
#define DOCTOR_MAX_BODY (1u << 20)
#define DOCTOR_SETTINGS_QUERY                                                                                \
	"select name, setting from pg_settings where name in ('max_connections', "                           \
	"'superuser_reserved_connections', 'idle_session_timeout', 'idle_in_transaction_session_timeout')"

/* ------------------------------------------------------------------ */
/* plan: config → logins and per-server demand                         */

static void login_free(struct doctor_login *l)
{
	free(l->server);
	free(l->host);
	free(l->dbname);
	free(l->user);
	free(l->entries);
	free(l->reason);
}

void doctor_plan_free(struct doctor_plan *plan)
{
	for (int i = 0; i < plan->n_logins; i++)
		login_free(&plan->logins[i]);
	free(plan->logins);
	for (int i = 0; i < plan->n_servers; i++) {
		struct doctor_server *s = &plan->servers[i];
		for (int k = 0; k < s->n_demands; k++)
			free(s->demands[k].how);
		free(s->demands);
		free(s->name);
	}
	free(plan->servers);
	memset(plan, 0, sizeof(*plan));
}

/* *list += ", " + name (or = name); false on out of memory. */
static bool append_name(char **list, const char *name)
{
	char *joined = *list == NULL ? str_dup(name) : str_printf("%s, %s", *list, name);
	if (joined == NULL)
		return false;
	free(*list);
	*list = joined;
	return true;
}

static bool list_has_name(const char *list, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = list; p != NULL && *p != '\0';) {
		const char *end = strstr(p, ", ");
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
		if (len == n && strncmp(p, name, n) == 0)
			return true;
		p = end != NULL ? end + 2 : NULL;
	}
	return false;
}

/* One element of an entry's host list, as server.c reads it: split on ','
 * without trimming; empty or NULL means the default unix socket dir. Returns
 * a malloc'd host (TCP) or socket dir (starts with '/'). */
static char *host_at(const char *hosts, int index)
{
	const char *start = hosts;

	for (int i = 0; start != NULL && i < index; i++)
		start = strchr(start, ',') + 1;
	size_t len = start != NULL ? strcspn(start, ",") : 0;
	if (len == 0)
		return str_dup(pglogin_socket_dir()); /* as server.c's resolve() */
	return strndup(start, len);
}

static int host_count(const char *hosts)
{
	int n = 1;
	for (const char *c = hosts; c != NULL && *c != '\0'; c++)
		n += *c == ',';
	return n;
}

static bool host_is_unix(const char *host)
{
	return host[0] == '/';
}

/* "host:port", "[v6]:port", or "/socket/dir:port". */
static char *server_name(const char *host, int port)
{
	if (!host_is_unix(host) && strchr(host, ':') != NULL)
		return str_printf("[%s]:%d", host, port);
	return str_printf("%s:%d", host, port);
}

/* Users of the pools of one entry sharing one pool size. */
struct user_group {
	int pool_size;
	int users;
};

static void group_add(struct user_group *g, int *n, int pool_size, int users)
{
	for (int i = 0; i < *n; i++) {
		if (g[i].pool_size == pool_size) {
			g[i].users += users;
			return;
		}
	}
	g[*n].pool_size = pool_size;
	g[*n].users = users;
	(*n)++;
}

/* The most entry DB can open: a pool per client user (pools are keyed by
 * database and client user, also when the entry forces user=), each
 * pool_size + reserve; at most max_db_connections. Users are the auth_file's,
 * at least one; [users] pool_size overrides count for the users listed in
 * both. */
static bool entry_demand(const struct config *cfg, const struct db_config *db, const struct userlist *users,
                         struct doctor_demand *d)
{
	int reserve = db->reserve_pool >= 0 ? db->reserve_pool : cfg->reserve_pool_size;
	int n_users = userlist_count(users) > 0 ? userlist_count(users) : 1;
	int remaining = n_users, n_groups = 0;
	long long sum = 0;
	char *how = NULL;
	bool ok = false;
	struct user_group *groups = calloc((size_t)cfg->n_users + 1, sizeof(*groups));

	if (groups == NULL)
		return false;
	for (int i = 0; i < cfg->n_users && remaining > 0; i++) {
		const struct user_config *u = &cfg->users[i];
		if (u->pool_size < 0 || userlist_find(users, u->name) == NULL)
			continue;
		group_add(groups, &n_groups, config_effective_pool_size(cfg, db, u), 1);
		remaining--;
	}
	if (remaining > 0)
		group_add(groups, &n_groups, config_effective_pool_size(cfg, db, NULL), remaining);

	if ((how = str_dup(db->name)) == NULL)
		goto done;
	for (int i = 0; i < n_groups; i++) {
		char *next;
		sum += (long long)groups[i].users * (groups[i].pool_size + reserve);
		if (reserve > 0)
			next = str_printf("%s%s %d user%s x (%d+%d reserve)", how, i > 0 ? " +" : "",
			                  groups[i].users, groups[i].users == 1 ? "" : "s",
			                  groups[i].pool_size, reserve);
		else
			next = str_printf("%s%s %d user%s x %d", how, i > 0 ? " +" : "", groups[i].users,
			                  groups[i].users == 1 ? "" : "s", groups[i].pool_size);
		free(how);
		if ((how = next) == NULL)
			goto done;
	}
	int cap = config_effective_max_db_connections(cfg, db);
	if (cap > 0 && cap < sum) {
		free(how);
		sum = cap;
		if ((how = str_printf("%s max_db_connections=%d", db->name, cap)) == NULL)
			goto done;
	}
	/* Each database name a client asks for gets pools of its own. */
	if (db == cfg->fallback_db) {
		char *next = str_printf("%s per database served (counted once)", how);
		free(how);
		if ((how = next) == NULL)
			goto done;
	}
	d->connections = sum;
	d->how = how;
	how = NULL;
	ok = true;
done:
	free(how);
	free(groups);
	return ok;
}

/* Takes d (its how) whatever happens. */
static bool plan_add_demand(struct doctor_plan *plan, const char *server, const struct doctor_demand *d)
{
	struct doctor_server *s = NULL;

	for (int i = 0; i < plan->n_servers && s == NULL; i++)
		if (strcmp(plan->servers[i].name, server) == 0)
			s = &plan->servers[i];
	if (s == NULL) {
		struct doctor_server *grown =
		    realloc(plan->servers, ((size_t)plan->n_servers + 1) * sizeof(*grown));
		if (grown == NULL)
			goto fail;
		plan->servers = grown;
		s = &plan->servers[plan->n_servers];
		memset(s, 0, sizeof(*s));
		if ((s->name = str_dup(server)) == NULL)
			goto fail;
		plan->n_servers++;
	}
	struct doctor_demand *grown = realloc(s->demands, ((size_t)s->n_demands + 1) * sizeof(*grown));
	if (grown == NULL)
		goto fail;
	s->demands = grown;
	s->demands[s->n_demands++] = *d;
	s->total += d->connections;
	return true;
fail:
	free(d->how);
	return false;
}

static bool plan_add_login(struct doctor_plan *plan, const char *server, const char *host, int port,
                           const char *dbname, const char *user, const char *password, const char *entry)
{
	for (int i = 0; i < plan->n_logins; i++) {
		struct doctor_login *l = &plan->logins[i];
		if (strcmp(l->host, host) == 0 && l->port == port && strcmp(l->dbname, dbname) == 0 &&
		    strcmp(l->user, user) == 0)
			return list_has_name(l->entries, entry) || append_name(&l->entries, entry);
	}
	struct doctor_login *grown = realloc(plan->logins, ((size_t)plan->n_logins + 1) * sizeof(*grown));
	if (grown == NULL)
		return false;
	plan->logins = grown;
	struct doctor_login *l = &plan->logins[plan->n_logins++];
	memset(l, 0, sizeof(*l));
	l->port = port;
	l->password = password;
	l->status = DOCTOR_LOGIN_NOT_TRIED;
	l->pg = (struct doctor_pg_settings){DOCTOR_UNKNOWN, DOCTOR_UNKNOWN, DOCTOR_UNKNOWN, DOCTOR_UNKNOWN};
	l->server = str_dup(server);
	l->host = str_dup(host);
	l->dbname = str_dup(dbname);
	l->user = str_dup(user);
	l->entries = str_dup(entry);
	return l->server != NULL && l->host != NULL && l->dbname != NULL && l->user != NULL &&
	       l->entries != NULL;
}

static bool plan_add_entry(struct doctor_plan *plan, const struct config *cfg, const struct db_config *db,
                           const struct userlist *users, const char *default_user)
{
	const char *dbname = db->dbname != NULL       ? db->dbname
	                     : db == cfg->fallback_db ? DOCTOR_FALLBACK_DBNAME
	                                              : db->name;
	const char *user = db->user != NULL ? db->user : default_user;
	/* Where the pool takes its password from (pool.c settings_build). */
	const char *password = db->password != NULL ? db->password : userlist_find(users, user);
	int port = db->port > 0 ? db->port : 5432;
	int n_hosts = host_count(db->host);

	for (int i = 0; i < n_hosts; i++) {
		struct doctor_demand d = {0, NULL};
		char *host = host_at(db->host, i);
		char *server = host != NULL ? server_name(host, port) : NULL;
		/* Connections spread over a host list, but when the others are
		 * down all of them can land on one: each host gets the whole. */
		bool ok = server != NULL && entry_demand(cfg, db, users, &d) &&
		          plan_add_demand(plan, server, &d) &&
		          plan_add_login(plan, server, host, port, dbname, user, password, db->name);
		free(host);
		free(server);
		if (!ok)
			return false;
	}
	return true;
}

bool doctor_plan_build(const struct config *cfg, const struct userlist *users, const char *default_user,
                       struct doctor_plan *plan, char *err, size_t err_size)
{
	memset(plan, 0, sizeof(*plan));
	for (int i = 0; i <= cfg->n_dbs; i++) {
		const struct db_config *db = i < cfg->n_dbs ? &cfg->dbs[i] : cfg->fallback_db;
		if (db == NULL)
			continue;
		if (!plan_add_entry(plan, cfg, db, users, default_user)) {
			snprintf(err, err_size, "out of memory while planning the logins");
			doctor_plan_free(plan);
			return false;
		}
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* judge: config + plan with results → findings (pure)                 */

struct judge {
	const struct config *cfg;
	struct doctor_findings *out;
	bool failed; /* sticky: out of memory */
};

__attribute__((format(printf, 3, 4))) static void say(struct judge *j, enum doctor_severity sev,
                                                      const char *fmt, ...)
{
	struct doctor_findings *f = j->out;
	va_list ap;
	char *text = NULL;

	if (j->failed)
		return;
	if (f->n == f->cap) {
		int cap = f->cap == 0 ? 16 : f->cap * 2;
		struct doctor_finding *grown = realloc(f->items, (size_t)cap * sizeof(*grown));
		if (grown == NULL) {
			j->failed = true;
			return;
		}
		f->items = grown;
		f->cap = cap;
	}
	va_start(ap, fmt);
	if (vasprintf(&text, fmt, ap) < 0)
		text = NULL;
	va_end(ap);
	if (text == NULL) {
		j->failed = true;
		return;
	}
	f->items[f->n++] = (struct doctor_finding){sev, text};
}

void doctor_findings_free(struct doctor_findings *f)
{
	for (int i = 0; i < f->n; i++)
		free(f->items[i].text);
	free(f->items);
	memset(f, 0, sizeof(*f));
}

int doctor_findings_count(const struct doctor_findings *f, enum doctor_severity severity)
{
	int n = 0;
	for (int i = 0; i < f->n; i++)
		n += f->items[i].severity == severity;
	return n;
}

/* A duration in ms as config values print ("60s", "500ms", "0"). */
struct ms_text {
	char s[32];
};

static struct ms_text ms_text(long long ms)
{
	struct ms_text t;
	if (ms < 0)
		str_lcopy(t.s, "n/a", sizeof(t.s));
	else
		str_format_duration((pgs_usec_t)ms * PGS_USEC_PER_MS, t.s, sizeof(t.s));
	return t;
}

static struct ms_text usec_text(pgs_usec_t usec)
{
	struct ms_text t;
	str_format_duration(usec, t.s, sizeof(t.s));
	return t;
}

static void judge_login(struct judge *j, const struct doctor_login *l)
{
	const char *plural = strchr(l->entries, ',') != NULL ? "entries" : "entry";
	const char *reason = l->reason != NULL ? l->reason : "no reason recorded";

	switch (l->status) {
	case DOCTOR_LOGIN_OK:
		say(j, DOCTOR_OK,
		    "%s db=%s user=%s (%s %s): logged in (%s)%s%s; max_connections=%lld "
		    "superuser_reserved_connections=%lld idle_session_timeout=%s "
		    "idle_in_transaction_session_timeout=%s",
		    l->server, l->dbname, l->user, plural, l->entries,
		    l->auth_method ? l->auth_method : "trust", l->server_version[0] ? ", PostgreSQL " : "",
		    l->server_version, l->pg.max_connections, l->pg.superuser_reserved_connections,
		    ms_text(l->pg.idle_session_timeout_ms).s,
		    ms_text(l->pg.idle_in_transaction_session_timeout_ms).s);
		return;
	case DOCTOR_LOGIN_CANNOT_CHECK:
		say(j, DOCTOR_WARNING, "%s db=%s user=%s (%s %s): not checked: %s", l->server, l->dbname,
		    l->user, plural, l->entries, reason);
		return;
	case DOCTOR_LOGIN_NOT_TRIED:
		say(j, DOCTOR_WARNING, "%s db=%s user=%s (%s %s): not checked: no login was tried", l->server,
		    l->dbname, l->user, plural, l->entries);
		return;
	case DOCTOR_LOGIN_UNREACHABLE:
	case DOCTOR_LOGIN_REFUSED:
	case DOCTOR_LOGIN_FAILED:
		say(j, DOCTOR_ERROR, "%s db=%s user=%s (%s %s): %s", l->server, l->dbname, l->user, plural,
		    l->entries, reason);
		return;
	}
}

/* Sum of the pools against max_connections - superuser_reserved_connections. */
static void judge_pool_sum(struct judge *j, const struct doctor_plan *plan, const struct doctor_server *s)
{
	const struct doctor_login *read = NULL;
	char *how = NULL;

	for (int i = 0; i < plan->n_logins && read == NULL; i++) {
		const struct doctor_login *l = &plan->logins[i];
		if (l->status == DOCTOR_LOGIN_OK && strcmp(l->server, s->name) == 0 &&
		    l->pg.max_connections != DOCTOR_UNKNOWN &&
		    l->pg.superuser_reserved_connections != DOCTOR_UNKNOWN)
			read = l;
	}
	if (read == NULL) {
		say(j, DOCTOR_INFO, "%s: pool sizes not checked: no login to this server read its settings",
		    s->name);
		return;
	}
	for (int i = 0; i < s->n_demands; i++) {
		if (!append_name(&how, s->demands[i].how)) {
			j->failed = true;
			free(how);
			return;
		}
	}
	long long max = read->pg.max_connections, reserved = read->pg.superuser_reserved_connections;
	long long usable = max - reserved;
	if (s->total > usable)
		say(j, DOCTOR_ERROR,
		    "%s: pools can open %lld connections (%s) but max_connections=%lld leaves %lld after "
		    "superuser_reserved_connections=%lld",
		    s->name, s->total, how, max, usable, reserved);
	else
		say(j, DOCTOR_OK,
		    "%s: pools can open %lld connections (%s), within the %lld that "
		    "max_connections=%lld leaves after superuser_reserved_connections=%lld",
		    s->name, s->total, how, usable, max, reserved);
	free(how);
}

/* pgsluice closes an idle server at the first of server_idle_timeout and
 * its (jittered) server_lifetime; when that can come at or after
 * PostgreSQL's idle_session_timeout, PostgreSQL closes it first, and a
 * client can be handed a connection that is being closed.
 * Both limits count: a short server_lifetime alone keeps idle servers young. */
static void judge_idle_session(struct judge *j, const struct doctor_login *l)
{
	const struct config *cfg = j->cfg;
	long long pg_ms = l->pg.idle_session_timeout_ms;
	pgs_usec_t idle = cfg->server_idle_timeout;
	pgs_usec_t life =
	    cfg->server_lifetime > 0
	        ? cfg->server_lifetime + cfg->server_lifetime * cfg->server_lifetime_jitter / 100
	        : 0;

	if (pg_ms <= 0)
		return;
	pgs_usec_t pg_usec = (pgs_usec_t)pg_ms * PGS_USEC_PER_MS;
	pgs_usec_t longest;
	char why[192];
	if (idle > 0 && (life == 0 || idle <= life)) {
		longest = idle;
		snprintf(why, sizeof(why), "server_idle_timeout=%s", usec_text(idle).s);
	} else if (life > 0) {
		longest = life;
		snprintf(why, sizeof(why),
		         "server_lifetime=%s plus server_lifetime_jitter=%d%%, server_idle_timeout=%s",
		         usec_text(cfg->server_lifetime).s, cfg->server_lifetime_jitter,
		         idle > 0 ? usec_text(idle).s : "0 (off)");
	} else {
		longest = 0; /* no limit at all */
		snprintf(why, sizeof(why), "server_idle_timeout=0 and server_lifetime=0");
	}
	if (longest > 0 && longest < pg_usec)
		return;
	say(j, DOCTOR_WARNING,
	    "%s db=%s user=%s: an idle server connection can stay open %s%s (%s), at or above PostgreSQL's "
	    "idle_session_timeout=%s: PostgreSQL closes it first, and a client can be handed it as it "
	    "closes; "
	    "set server_idle_timeout below %s",
	    l->server, l->dbname, l->user, longest > 0 ? "up to " : "without limit",
	    longest > 0 ? usec_text(longest).s : "", why, ms_text(pg_ms).s, ms_text(pg_ms).s);
}

/* PostgreSQL ending an idle transaction sends FATAL and closes: the
 * application cannot tell it from a crash. pgsluice ending it first answers
 * 25P03 and keeps the client's connection. */
static void judge_idle_transaction(struct judge *j, const struct doctor_login *l)
{
	long long pg_ms = l->pg.idle_in_transaction_session_timeout_ms;
	pgs_usec_t ours = j->cfg->idle_transaction_timeout;

	if (pg_ms == DOCTOR_UNKNOWN)
		return;
	if (pg_ms == 0) {
		if (ours == 0)
			say(j, DOCTOR_INFO,
			    "%s db=%s user=%s: nothing ends a transaction left idle: PostgreSQL's "
			    "idle_in_transaction_session_timeout=0 and idle_transaction_timeout=0; a "
			    "forgotten "
			    "transaction holds its server connection until the client goes",
			    l->server, l->dbname, l->user);
		return;
	}
	pgs_usec_t pg_usec = (pgs_usec_t)pg_ms * PGS_USEC_PER_MS;
	if (ours > 0 && ours < pg_usec)
		return;
	char ours_text[96];
	if (ours == 0)
		snprintf(ours_text, sizeof(ours_text), "idle_transaction_timeout=0 (off)");
	else
		snprintf(ours_text, sizeof(ours_text), "idle_transaction_timeout=%s is not below it",
		         usec_text(ours).s);
	say(j, DOCTOR_WARNING,
	    "%s db=%s user=%s: PostgreSQL's idle_in_transaction_session_timeout=%s and %s: PostgreSQL ends "
	    "an "
	    "idle transaction with FATAL and a closed connection, which the application cannot tell from a "
	    "crash; set idle_transaction_timeout below %s so the client gets 25P03 and keeps its connection",
	    l->server, l->dbname, l->user, ms_text(pg_ms).s, ours_text, ms_text(pg_ms).s);
}

/* Without keepalive or TCP_USER_TIMEOUT, a server that vanishes without a
 * FIN (host down, network cut) holds its clients until the kernel gives up.
 * Only TCP servers are concerned. */
static void judge_tcp(struct judge *j, const struct doctor_plan *plan)
{
	const struct config *cfg = j->cfg;
	bool any_tcp = false;

	for (int i = 0; i < plan->n_logins; i++)
		any_tcp = any_tcp || !host_is_unix(plan->logins[i].host);
	if (!any_tcp)
		return;
	if (!cfg->tcp_keepalive)
		say(j, DOCTOR_WARNING,
		    "%s: tcp_keepalive=0: a server that vanishes without closing (host down, network cut) "
		    "holds "
		    "its idle connections, and the clients linked to them, until the kernel gives up; set "
		    "tcp_keepalive = 1",
		    cfg->path);
	if (cfg->tcp_user_timeout == 0)
		say(j, DOCTOR_WARNING,
		    "%s: tcp_user_timeout=0: a query sent to a server that vanished waits until the kernel "
		    "stops "
		    "retransmitting (about 15min with Linux defaults) before its client gets an error; set "
		    "tcp_user_timeout, e.g. 30s",
		    cfg->path);
}

bool doctor_judge(const struct config *cfg, const struct doctor_plan *plan, struct doctor_findings *out)
{
	struct judge j = {cfg, out, false};

	memset(out, 0, sizeof(*out));
	if (plan->n_logins == 0)
		say(&j, DOCTOR_INFO, "%s: no [databases] entries: no server to check", cfg->path);
	for (int i = 0; i < plan->n_logins; i++)
		judge_login(&j, &plan->logins[i]);
	for (int i = 0; i < plan->n_servers; i++)
		judge_pool_sum(&j, plan, &plan->servers[i]);
	for (int i = 0; i < plan->n_logins; i++) {
		if (plan->logins[i].status != DOCTOR_LOGIN_OK)
			continue;
		judge_idle_session(&j, &plan->logins[i]);
		judge_idle_transaction(&j, &plan->logins[i]);
	}
	judge_tcp(&j, plan);
	if (j.failed) {
		doctor_findings_free(out);
		return false;
	}
	return true;
}

bool doctor_pg_setting(struct doctor_pg_settings *pg, const char *name, const char *value)
{
	static const struct {
		const char *name;
		size_t off;
	} known[] = {
	    {"max_connections", offsetof(struct doctor_pg_settings, max_connections)},
	    {"superuser_reserved_connections",
	     offsetof(struct doctor_pg_settings, superuser_reserved_connections)},
	    {"idle_session_timeout", offsetof(struct doctor_pg_settings, idle_session_timeout_ms)},
	    {"idle_in_transaction_session_timeout",
	     offsetof(struct doctor_pg_settings, idle_in_transaction_session_timeout_ms)},
	};
	long long v;

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		if (strcmp(name, known[i].name) != 0)
			continue;
		/* pg_settings gives these as plain integers (ms for the timeouts). */
		if (!str_parse_int(value, &v) || v < 0)
			return false;
		*(long long *)((char *)pg + known[i].off) = v;
		return true;
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* wire: a blocking connection with one deadline per phase              */

struct wire {
	int fd;
	int64_t deadline;   /* clock_now_usec() after which a read or write gives up */
	pgs_usec_t timeout; /* server_connect_timeout, for messages */
	bool logged_in;     /* a Terminate is polite only after ReadyForQuery */
	struct msgbuf out;
	uint8_t *body; /* owned; the body of the last message read */
	size_t body_cap;
	char err[256]; /* why the last wire_* call returned false */
};

static void wire_init(struct wire *w, pgs_usec_t timeout)
{
	memset(w, 0, sizeof(*w));
	w->fd = -1;
	w->timeout = timeout;
	msgbuf_init(&w->out, MSGBUF_DEFAULT_MAX);
}

static void wire_start_phase(struct wire *w)
{
	w->deadline = clock_now_usec() + w->timeout;
}

/* Arms SO_RCVTIMEO or SO_SNDTIMEO with what is left of the deadline. */
static bool wire_arm(struct wire *w, int which)
{
	int64_t left = w->deadline - clock_now_usec();
	if (left <= 0) {
		snprintf(w->err, sizeof(w->err), "no answer within %s (server_connect_timeout)",
		         usec_text(w->timeout).s);
		return false;
	}
	struct timeval tv = {(time_t)(left / PGS_USEC_PER_SEC), (suseconds_t)(left % PGS_USEC_PER_SEC)};
	if (setsockopt(w->fd, SOL_SOCKET, which, &tv, sizeof(tv)) < 0) {
		snprintf(w->err, sizeof(w->err), "setsockopt: %s", strerror(errno));
		return false;
	}
	return true;
}

/* Non-blocking connect bounded by the deadline, then back to blocking. */
static int wire_try(struct wire *w, const struct sockaddr *addr, socklen_t len)
{
	int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(w->err, sizeof(w->err), "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, addr, len) < 0) {
		if (errno != EINPROGRESS) {
			snprintf(w->err, sizeof(w->err), "%s", strerror(errno));
			goto fail;
		}
		struct pollfd p = {fd, POLLOUT, 0};
		int rc;
		do {
			int64_t left = w->deadline - clock_now_usec();
			rc = left > 0 ? poll(&p, 1, (int)((left + 999) / 1000)) : 0;
		} while (rc < 0 && errno == EINTR);
		if (rc == 0) {
			snprintf(w->err, sizeof(w->err), "no answer within %s (server_connect_timeout)",
			         usec_text(w->timeout).s);
			goto fail;
		}
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		if (rc < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
			soerr = errno;
		if (soerr != 0) {
			snprintf(w->err, sizeof(w->err), "%s", strerror(soerr));
			goto fail;
		}
	}
	int flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
		snprintf(w->err, sizeof(w->err), "fcntl: %s", strerror(errno));
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

static bool wire_connect(struct wire *w, const char *host, int port)
{
	wire_start_phase(w);
	if (host_is_unix(host)) {
		struct sockaddr_un un = {.sun_family = AF_UNIX};
		int n = snprintf(un.sun_path, sizeof(un.sun_path), "%s/.s.PGSQL.%d", host, port);
		if (n < 0 || (size_t)n >= sizeof(un.sun_path)) {
			snprintf(w->err, sizeof(w->err), "unix socket path %s/.s.PGSQL.%d is too long", host,
			         port);
			return false;
		}
		w->fd = wire_try(w, (const struct sockaddr *)&un, sizeof(un));
		return w->fd >= 0;
	}
	struct addrinfo hints = {
	    .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG};
	struct addrinfo *res = NULL;
	char port_text[16];
	snprintf(port_text, sizeof(port_text), "%d", port);
	/* A blocking lookup is fine here (no event loop); it is the one step
	 * the deadline does not bound. */
	int rc = getaddrinfo(host, port_text, &hints, &res);
	if (rc != 0) {
		snprintf(w->err, sizeof(w->err), "cannot resolve host \"%s\": %s", host, gai_strerror(rc));
		return false;
	}
	/* Every address in turn, as libpq does: "localhost" may be ::1 first. */
	for (struct addrinfo *a = res; a != NULL && w->fd < 0; a = a->ai_next)
		w->fd = wire_try(w, a->ai_addr, a->ai_addrlen);
	freeaddrinfo(res);
	return w->fd >= 0;
}

/* Sends w->out whole, then empties it. */
static bool wire_send(struct wire *w)
{
	size_t off = 0;

	if (!msg_ok(&w->out)) {
		snprintf(w->err, sizeof(w->err), "could not build the message (too large or out of memory)");
		return false;
	}
	while (off < w->out.len) {
		if (!wire_arm(w, SO_SNDTIMEO))
			return false;
		ssize_t n = send(w->fd, w->out.data + off, w->out.len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				continue; /* wire_arm reports the deadline */
			snprintf(w->err, sizeof(w->err), "send: %s", strerror(errno));
			return false;
		}
		off += (size_t)n;
	}
	msgbuf_reset(&w->out);
	return true;
}

static bool wire_recv(struct wire *w, uint8_t *p, size_t want)
{
	size_t got = 0;

	while (got < want) {
		if (!wire_arm(w, SO_RCVTIMEO))
			return false;
		ssize_t n = recv(w->fd, p + got, want - got, 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			continue; /* EAGAIN: SO_RCVTIMEO expired; wire_arm reports the deadline */
		if (n < 0) {
			snprintf(w->err, sizeof(w->err), "recv: %s", strerror(errno));
			return false;
		}
		if (n == 0) {
			snprintf(w->err, sizeof(w->err), "server closed the connection");
			return false;
		}
		got += (size_t)n;
	}
	return true;
}

/* The next whole backend message: type in f, body in w->body. */
static bool wire_next(struct wire *w, struct frame *f, size_t *body_len)
{
	uint8_t hdr[5];

	if (!wire_recv(w, hdr, sizeof(hdr)))
		return false;
	switch (frame_header(FRAME_FROM_SERVER, hdr, sizeof(hdr), f)) {
	case FRAME_OK:
		break;
	case FRAME_BAD_TYPE:
		snprintf(w->err, sizeof(w->err), "not a PostgreSQL server? unexpected message type 0x%02x",
		         hdr[0]);
		return false;
	default:
		snprintf(w->err, sizeof(w->err), "not a PostgreSQL server? bad length %u for message '%c'",
		         (unsigned)f->len, (char)hdr[0]);
		return false;
	}
	size_t n = (size_t)f->len - 4;
	if (n > DOCTOR_MAX_BODY) {
		snprintf(w->err, sizeof(w->err), "message '%c' of %zu bytes is larger than anything expected",
		         (char)f->type, n);
		return false;
	}
	if (n > w->body_cap) {
		uint8_t *grown = realloc(w->body, n);
		if (grown == NULL) {
			snprintf(w->err, sizeof(w->err), "out of memory");
			return false;
		}
		w->body = grown;
		w->body_cap = n;
	}
	*body_len = n;
	return wire_recv(w, w->body, n);
}

static void wire_close(struct wire *w)
{
	if (w->fd >= 0) {
		if (w->logged_in) {
			/* Best effort: a Terminate lets PostgreSQL log a clean disconnect. */
			static const uint8_t term[5] = {PqMsg_Terminate, 0, 0, 0, 4};
			ssize_t n = send(w->fd, term, sizeof(term), MSG_NOSIGNAL | MSG_DONTWAIT);
			(void)n;
		}
		close(w->fd);
	}
	w->fd = -1;
	msgbuf_free(&w->out);
	free(w->body);
	w->body = NULL;
}

/* ------------------------------------------------------------------ */
/* login: startup, authentication, the settings query                   */

__attribute__((format(printf, 3, 4))) static void
login_fail(struct doctor_login *l, enum doctor_login_status status, const char *fmt, ...)
{
	va_list ap;
	char *text = NULL;

	va_start(ap, fmt);
	if (vasprintf(&text, fmt, ap) < 0)
		text = NULL;
	va_end(ap);
	free(l->reason);
	l->reason = text; /* NULL on out of memory: judged as "no reason recorded" */
	l->status = status;
}

/* PostgreSQL's own words: "FATAL 28P01: password authentication failed ...". */
static void login_refused(struct doctor_login *l, const char *what, const uint8_t *body, size_t n)
{
	struct pg_error e;
	if (!msg_read_error(body, n, &e)) {
		login_fail(l, DOCTOR_LOGIN_FAILED, "%s: malformed ErrorResponse from the server", what);
		return;
	}
	const char *sev = e.severity_v != NULL ? e.severity_v : e.severity != NULL ? e.severity : "ERROR";
	login_fail(l, DOCTOR_LOGIN_REFUSED, "%s: %s %s: %s%s%s", what, sev, e.sqlstate ? e.sqlstate : "?????",
	           e.message ? e.message : "(no message)", e.detail ? " DETAIL: " : "",
	           e.detail ? e.detail : "");
}

static const char *password_source(const struct doctor_login *l)
{
	return l->password == NULL ? "no password= in the entry and none in auth_file" : "the auth_file";
}

/* One Authentication request; queues the answer in w->out. false: l says why,
 * in words for whoever runs the check: which user, and what the auth_file
 * holds instead of what PostgreSQL asks for. */
static bool login_auth(struct wire *w, struct doctor_login *l, struct pglogin *st, const uint8_t *body,
                       size_t n)
{
	char why[200];
	enum pglogin_step r = pglogin_answer(st, body, n, &w->out, why, sizeof(why));
	const char *method = pglogin_method_name(st->code);

	if (method != NULL)
		l->auth_method = method;
	if (r != PGLOGIN_FAIL)
		return true;
	switch (st->fail) {
	case PGLOGIN_MALFORMED:
		login_fail(l, DOCTOR_LOGIN_FAILED, "malformed authentication request from the server");
		break;
	case PGLOGIN_NO_CLEARTEXT:
		login_fail(l, DOCTOR_LOGIN_FAILED,
		           "PostgreSQL asks for a cleartext password and no plaintext password is known for "
		           "user %s (%s)",
		           l->user, l->password == NULL ? password_source(l) : "the auth_file holds a hash");
		break;
	case PGLOGIN_NO_MD5:
		login_fail(
		    l, DOCTOR_LOGIN_FAILED,
		    "PostgreSQL asks for md5 and neither a password nor an md5 secret is known for user "
		    "%s (%s)",
		    l->user, l->password == NULL ? password_source(l) : "the auth_file holds a SCRAM secret");
		break;
	case PGLOGIN_NO_MECHANISM:
		login_fail(l, DOCTOR_LOGIN_FAILED, "PostgreSQL offers no SASL mechanism pgsluice supports");
		break;
	case PGLOGIN_SCRAM_SECRET_ONLY:
		login_fail(l, DOCTOR_LOGIN_CANNOT_CHECK,
		           "PostgreSQL asks for SCRAM and the auth_file holds a SCRAM secret for user %s: "
		           "pgsluice logs in with a client's proof, the doctor has no client; a plaintext "
		           "password in the entry or the auth_file lets it check this login",
		           l->user);
		break;
	case PGLOGIN_NO_SCRAM_PASSWORD:
		login_fail(l, DOCTOR_LOGIN_FAILED,
		           "PostgreSQL asks for SCRAM and no plaintext password is known for user %s (%s)",
		           l->user,
		           l->password == NULL ? password_source(l) : "the auth_file holds an md5 hash");
		break;
	case PGLOGIN_NO_MEMORY:
		login_fail(l, DOCTOR_LOGIN_FAILED, "out of memory starting SCRAM");
		break;
	case PGLOGIN_SCRAM_CONTINUE:
	case PGLOGIN_SCRAM_FINAL:
		login_fail(l, DOCTOR_LOGIN_FAILED, "SCRAM: %s", st->detail);
		break;
	case PGLOGIN_UNSUPPORTED:
		login_fail(l, DOCTOR_LOGIN_FAILED,
		           "PostgreSQL asks for authentication method %u; pgsluice speaks trust, password, "
		           "md5 and " SCRAM_MECHANISM,
		           st->code);
		break;
	}
	return false;
}

/* Startup to ReadyForQuery. false: l says why. */
static bool login_exchange(struct wire *w, struct doctor_login *l)
{
	struct params extra = PARAMS_INIT;
	struct pglogin st;
	char scram_detail[200] = "";
	bool ok = false;

	pglogin_init(&st, l->user, l->password);
	st.detail = scram_detail;
	st.detail_size = sizeof(scram_detail);
	if (!params_set(&extra, "application_name", "pgsluice --check --online"))
		w->out.failed = true; /* wire_send reports it */
	pglogin_startup(&w->out, l->user, l->dbname, &extra);
	params_clear(&extra);
	if (!wire_send(w))
		goto lost;
	for (;;) {
		struct frame f;
		size_t n;
		if (!wire_next(w, &f, &n))
			goto lost;
		switch (f.type) {
		case PqMsg_AuthenticationRequest:
			if (!login_auth(w, l, &st, w->body, n))
				goto done;
			if (w->out.len > 0 && !wire_send(w))
				goto lost;
			break;
		case PqMsg_ErrorResponse:
			login_refused(l, "PostgreSQL refused the login", w->body, n);
			goto done;
		case PqMsg_ParameterStatus: {
			const char *name, *value;
			if (msg_read_param_status(w->body, n, &name, &value) &&
			    strcmp(name, "server_version") == 0)
				str_lcopy(l->server_version, value, sizeof(l->server_version));
			break;
		}
		case PqMsg_BackendKeyData:
		case PqMsg_NoticeResponse:
		case PqMsg_NegotiateProtocolVersion:
			break;
		case PqMsg_ReadyForQuery:
			w->logged_in = true;
			ok = true;
			goto done;
		default:
			login_fail(l, DOCTOR_LOGIN_FAILED, "unexpected message '%c' during login",
			           (char)f.type);
			goto done;
		}
	}
lost:
	login_fail(l, DOCTOR_LOGIN_FAILED, "login did not complete: %s", w->err);
done:
	pglogin_clear(&st);
	return ok;
}

/* A DataRow of two text columns into name and value; false when it is not. */
static bool read_setting_row(const uint8_t *body, size_t n, char name[64], char value[64])
{
	char *cols[2] = {name, value};
	size_t off = 2;

	if (n < 2 || frame_be16(body) != 2)
		return false;
	for (int i = 0; i < 2; i++) {
		if (n - off < 4)
			return false;
		uint32_t len = frame_be32(body + off);
		off += 4;
		/* -1 (NULL) shows up as a huge len and fails here too. */
		if (len >= 64 || len > n - off)
			return false;
		memcpy(cols[i], body + off, len);
		cols[i][len] = '\0';
		off += len;
	}
	return off == n;
}

/* The settings query to its ReadyForQuery. false: l says why. */
static bool read_settings(struct wire *w, struct doctor_login *l)
{
	bool refused = false, bad_row = false;
	char bad[160] = "";

	wire_start_phase(w);
	msg_query(&w->out, DOCTOR_SETTINGS_QUERY);
	if (!wire_send(w))
		goto lost;
	for (;;) {
		struct frame f;
		size_t n;
		char name[64], value[64];
		if (!wire_next(w, &f, &n))
			goto lost;
		switch (f.type) {
		case PqMsg_DataRow:
			if (!read_setting_row(w->body, n, name, value)) {
				bad_row = true;
				snprintf(bad, sizeof(bad), "a malformed row");
			} else if (!doctor_pg_setting(&l->pg, name, value)) {
				bad_row = true;
				snprintf(bad, sizeof(bad), "%s = '%s', not a whole number", name, value);
			}
			break;
		case PqMsg_ErrorResponse:
			/* Keep reading: ReadyForQuery still follows. */
			if (!refused)
				login_refused(l, "PostgreSQL refused the settings query", w->body, n);
			refused = true;
			break;
		case PqMsg_RowDescription:
		case PqMsg_CommandComplete:
		case PqMsg_NoticeResponse:
		case PqMsg_ParameterStatus:
		case PqMsg_NotificationResponse:
			break;
		case PqMsg_ReadyForQuery:
			if (refused)
				return false;
			if (bad_row) {
				login_fail(l, DOCTOR_LOGIN_FAILED, "pg_settings answered with %s", bad);
				return false;
			}
			if (l->pg.max_connections == DOCTOR_UNKNOWN ||
			    l->pg.superuser_reserved_connections == DOCTOR_UNKNOWN) {
				login_fail(l, DOCTOR_LOGIN_FAILED,
				           "pg_settings did not show max_connections and "
				           "superuser_reserved_connections");
				return false;
			}
			return true;
		default:
			login_fail(l, DOCTOR_LOGIN_FAILED,
			           "unexpected message '%c' in the answer to the settings query",
			           (char)f.type);
			return false;
		}
	}
lost:
	login_fail(l, DOCTOR_LOGIN_FAILED, "the settings query did not complete: %s", w->err);
	return false;
}

void doctor_login_run(struct doctor_login *l, pgs_usec_t timeout)
{
	struct wire w;

	wire_init(&w, timeout);
	l->auth_method = "trust";
	if (!wire_connect(&w, l->host, l->port))
		login_fail(l, DOCTOR_LOGIN_UNREACHABLE, "cannot connect: %s", w.err);
	else if (login_exchange(&w, l) && read_settings(&w, l))
		l->status = DOCTOR_LOGIN_OK;
	wire_close(&w);
}

/* ------------------------------------------------------------------ */
/* the run                                                              */

/* Who logs in for entries without user=: the first auth_file user, else
 * the OS user (libpq's default), else "postgres". */
static char *pick_default_user(const struct config *cfg, const struct userlist *users)
{
	const char *first = userlist_first_user(users);
	if (first != NULL)
		return str_dup(first);
	const struct passwd *pw = getpwuid(geteuid());
	return str_dup(pw != NULL && pw->pw_name != NULL ? pw->pw_name : "postgres");
}

static const char *severity_word(enum doctor_severity s)
{
	switch (s) {
	case DOCTOR_OK:
		return "OK";
	case DOCTOR_INFO:
		return "INFO";
	case DOCTOR_WARNING:
		return "WARNING";
	case DOCTOR_ERROR:
		return "ERROR";
	}
	return "?";
}

int doctor_check_online(const struct config *cfg, const struct userlist *users, FILE *out)
{
	struct doctor_plan plan = {0};
	struct doctor_findings findings = {0};
	char err[200] = "out of memory";
	char *default_user = pick_default_user(cfg, users);
	int errors = 1, warnings = 0;

	if (default_user == NULL || !doctor_plan_build(cfg, users, default_user, &plan, err, sizeof(err))) {
		fprintf(out, "ERROR %s: cannot plan the online check: %s\n", cfg->path, err);
		goto done;
	}
	for (int i = 0; i < plan.n_logins; i++)
		doctor_login_run(&plan.logins[i], cfg->server_connect_timeout);
	if (!doctor_judge(cfg, &plan, &findings)) {
		fprintf(out, "ERROR %s: out of memory while judging the results\n", cfg->path);
		goto done;
	}
	for (int i = 0; i < findings.n; i++)
		fprintf(out, "%s %s\n", severity_word(findings.items[i].severity), findings.items[i].text);
	errors = doctor_findings_count(&findings, DOCTOR_ERROR);
	warnings = doctor_findings_count(&findings, DOCTOR_WARNING);
done:
	fprintf(out, "%d error%s, %d warning%s\n", errors, errors == 1 ? "" : "s", warnings,
	        warnings == 1 ? "" : "s");
	fflush(out);
	doctor_findings_free(&findings);
	doctor_plan_free(&plan);
	free(default_user);
	return errors > 0 ? 1 : 0;
}
