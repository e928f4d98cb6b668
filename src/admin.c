/* admin.c — the admin console: a table of commands answered over the
 * simple query protocol, with PgBouncer's column names first and ours
 * after them. SHOW CLIENTS, SERVERS and LEAKS wait for a snapshot from
 * every worker; everything else answers at once. */
#include "admin.h"

#include <ctype.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "pool.h"
#include "proto/frame.h"
#include "proto/protocol.h"
#include "reload.h"
#include "runtime.h"
#include "server.h"
#include "snapshot.h"
#include "util/clock.h"
#include "worker.h"

/* Type OIDs PgBouncer's console uses. */
#define T_TEXT 25u
#define T_INT4 23u
#define T_INT8 20u
#define T_NUMERIC 1700u

#define MAX_COLS 32

struct col {
	const char *name;
	uint32_t oid;
};

/* One result row being built: cells formatted into one buffer. */
struct row {
	int n;
	const char *vals[MAX_COLS];
	char buf[4096];
	size_t used;
};

static void cell(struct row *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cell(struct row *r, const char *fmt, ...)
{
	if (r->n >= MAX_COLS)
		return;
	size_t room = sizeof(r->buf) - r->used;
	va_list ap;
	va_start(ap, fmt);
	int k = vsnprintf(r->buf + r->used, room, fmt, ap);
	va_end(ap);
	if (k < 0)
		k = 0;
	if ((size_t)k >= room)
		k = room > 0 ? (int)room - 1 : 0;
	r->vals[r->n++] = r->buf + r->used;
	r->used += (size_t)k + 1;
}

static void cell_null(struct row *r)
{
	if (r->n < MAX_COLS)
		r->vals[r->n++] = NULL;
}

static void cell_str(struct row *r, const char *s)
{
	cell(r, "%s", s != NULL ? s : "");
}

static void header(struct client *cl, const struct col *cols, int n)
{
	const char *names[MAX_COLS];
	uint32_t oids[MAX_COLS];
	for (int i = 0; i < n && i < MAX_COLS; i++) {
		names[i] = cols[i].name;
		oids[i] = cols[i].oid;
	}
	msg_row_description_typed(&cl->conn.out, n, names, oids);
}

static void send_row(struct client *cl, struct row *r)
{
	msg_data_row(&cl->conn.out, r->n, r->vals);
	r->n = 0;
	r->used = 0;
}

#define NCOLS(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const struct config *acfg(struct client *cl)
{
	return cl->worker->gen->cfg;
}

/* A monotonic instant as PgBouncer prints times: "2024-01-31 12:00:00 UTC". */
static void cell_time(struct row *r, int64_t mono_usec, int64_t now_mono, int64_t now_wall)
{
	if (mono_usec <= 0) {
		cell_null(r);
		return;
	}
	time_t t = (time_t)((now_wall - (now_mono - mono_usec)) / 1000000);
	struct tm tm;
	gmtime_r(&t, &tm);
	char s[40];
	strftime(s, sizeof(s), "%Y-%m-%d %H:%M:%S UTC", &tm);
	cell_str(r, s);
}

static void cell_secs(struct row *r, int64_t usec)
{
	cell(r, "%.3f", (double)(usec > 0 ? usec : 0) / 1e6);
}

static const char *txn_words(char txn)
{
	switch (txn) {
	case PQ_TXN_IDLE:
		return "idle";
	case PQ_TXN_IN_BLOCK:
		return "in transaction";
	case PQ_TXN_FAILED:
		return "failed";
	default:
		return "";
	}
}

/* --- SHOW VERSION, CONFIG, LISTS, USERS, DATABASES --- */

static void show_version(struct client *cl, const char *arg)
{
	(void)arg;
	static const struct col cols[] = {{"version", T_TEXT}};
	header(cl, cols, NCOLS(cols));
	struct row r = {0};
	cell(&r, "pgsluice %s", rt.version);
	send_row(cl, &r);
}

static void show_config(struct client *cl, const char *arg)
{
	(void)arg;
	static const struct col cols[] = {
	    {"key", T_TEXT},
	    {"value", T_TEXT},
	    {"default", T_TEXT},
	    {"changeable", T_TEXT},
	};
	header(cl, cols, NCOLS(cols));
	const char *name, *def;
	char value[512];
	bool reloadable;
	for (int i = 0; config_key_at(acfg(cl), i, &name, value, sizeof(value), &def, &reloadable); i++) {
		struct row r = {0};
		cell_str(&r, name);
		cell_str(&r, value);
		cell_str(&r, def);
		cell_str(&r, reloadable ? "yes" : "no");
		send_row(cl, &r);
	}
}

struct totals {
	int pools, clients_used, servers_free, servers_used;
};

static void add_totals(struct pool *p, void *arg)
{
	struct totals *t = arg;
	struct pool_figures f;
	pool_figures(p, clock_now_usec(), &f);
	t->pools++;
	t->clients_used += f.cl_active + f.cl_idle + f.cl_waiting;
	t->servers_free += f.sv_idle;
	t->servers_used += f.sv_active + f.sv_used + f.sv_login;
}

static void show_lists(struct client *cl, const char *arg)
{
	(void)arg;
	static const struct col cols[] = {{"list", T_TEXT}, {"items", T_INT4}};
	struct totals t = {0};
	pool_for_each(add_totals, &t);
	const struct config *cfg = acfg(cl);
	int n_clients = atomic_load(&rt.n_clients);
	struct {
		const char *name;
		int items;
	} lists[] = {
	    {"databases", cfg->n_dbs + (cfg->fallback_db != NULL)},
	    {"users", cfg->n_users},
	    {"pools", t.pools},
	    {"free_clients", 0},
	    {"used_clients", n_clients},
	    {"login_clients", n_clients > t.clients_used ? n_clients - t.clients_used : 0},
	    {"free_servers", t.servers_free},
	    {"used_servers", t.servers_used},
	    {"dns_names", 0},
	    {"dns_zones", 0},
	    {"dns_queries", 0},
	    {"dns_pending", 0},
	};
	header(cl, cols, NCOLS(cols));
	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		struct row r = {0};
		cell_str(&r, lists[i].name);
		cell(&r, "%d", lists[i].items);
		send_row(cl, &r);
	}
}

static void show_users(struct client *cl, const char *arg)
{
	(void)arg;
	static const struct col cols[] = {{"name", T_TEXT}, {"pool_mode", T_TEXT}};
	const struct config *cfg = acfg(cl);
	header(cl, cols, NCOLS(cols));
	for (int i = 0; i < cfg->n_users; i++) {
		const struct user_config *u = &cfg->users[i];
		struct row r = {0};
		cell_str(&r, u->name);
		if (u->pool_mode == POOL_MODE_UNSET)
			cell_null(&r);
		else
			cell_str(&r, config_pool_mode_name(u->pool_mode));
		send_row(cl, &r);
	}
}

struct db_count {
	const char *name;
	int servers;
	bool paused;
};

static void count_db_servers(struct pool *p, void *arg)
{
	struct db_count *c = arg;
	if (strcmp(p->db_name, c->name) != 0 && strcmp(c->name, "*") != 0)
		return;
	struct pool_figures f;
	pool_figures(p, clock_now_usec(), &f);
	c->servers += f.sv_active + f.sv_idle + f.sv_used + f.sv_login;
}

static void database_row(struct client *cl, const struct db_config *db)
{
	const struct config *cfg = acfg(cl);
	struct db_count c = {.name = db->name};
	pool_for_each(count_db_servers, &c);
	struct row r = {0};
	cell_str(&r, db->name);
	if (db->host != NULL)
		cell_str(&r, db->host);
	else
		cell_null(&r);
	cell(&r, "%d", db->port);
	cell_str(&r, db->dbname != NULL ? db->dbname : db->name);
	if (db->user != NULL)
		cell_str(&r, db->user);
	else
		cell_null(&r);
	cell(&r, "%d", config_effective_pool_size(cfg, db, NULL));
	cell(&r, "%d", config_effective_min_pool_size(cfg, db));
	cell(&r, "%d", db->reserve_pool >= 0 ? db->reserve_pool : cfg->reserve_pool_size);
	enum pool_mode m = config_effective_pool_mode(cfg, db, NULL);
	cell_str(&r, config_pool_mode_name(m));
	cell(&r, "%d", config_effective_max_db_connections(cfg, db));
	cell(&r, "%d", c.servers);
	cell(&r, "%d", 0);
	cell(&r, "%d", 0);
	send_row(cl, &r);
}

static void show_databases(struct client *cl, const char *arg)
{
	(void)arg;
	static const struct col cols[] = {
	    {"name", T_TEXT},
	    {"host", T_TEXT},
	    {"port", T_INT4},
	    {"database", T_TEXT},
	    {"force_user", T_TEXT},
	    {"pool_size", T_INT4},
	    {"min_pool_size", T_INT4},
	    {"reserve_pool", T_INT4},
	    {"pool_mode", T_TEXT},
	    {"max_connections", T_INT4},
	    {"current_connections", T_INT4},
	    {"paused", T_INT4},
	    {"disabled", T_INT4},
	};
	const struct config *cfg = acfg(cl);
	header(cl, cols, NCOLS(cols));
	for (int i = 0; i < cfg->n_dbs; i++)
		database_row(cl, &cfg->dbs[i]);
	if (cfg->fallback_db != NULL)
		database_row(cl, cfg->fallback_db);
}

/* --- SHOW POOLS --- */

struct pools_ctx {
	struct client *cl;
	int64_t now;
};

static void pool_row(struct pool *p, void *arg)
{
	struct pools_ctx *ctx = arg;
	struct pool_figures f;
	pool_figures(p, ctx->now, &f);
	struct row r = {0};
	cell_str(&r, p->db_name);
	cell_str(&r, p->user_name);
	cell(&r, "%d", f.cl_active + f.cl_idle); /* PgBouncer counts logged-in idle clients as active */
	cell(&r, "%d", f.cl_waiting);
	cell(&r, "0");
	cell(&r, "0");
	cell(&r, "%d", f.sv_active);
	cell(&r, "0");
	cell(&r, "0");
	cell(&r, "%d", f.sv_idle);
	cell(&r, "%d", f.sv_used);
	cell(&r, "%d", f.sv_tested);
	cell(&r, "%d", f.sv_login);
	cell(&r, "%lld", (long long)(f.maxwait_usec / 1000000));
	cell(&r, "%lld", (long long)(f.maxwait_usec % 1000000));
	cell_str(&r, config_pool_mode_name(f.mode));
	/* ours */
	cell(&r, "%d", f.pool_size);
	cell(&r, "%d", f.cl_active);
	cell(&r, "%d", f.cl_idle);
	cell(&r, "%llu", (unsigned long long)stats_read(&p->stats, ST_WAIT_TIMEOUT));
	cell_str(&r, pool_figures_unreachable(&f) ? "unreachable" : "ok");
	cell_str(&r, f.last_error);
	send_row(ctx->cl, &r);
}

static void show_pools(struct client *cl, const char *arg)
{
	(void)arg;
	static const struct col cols[] = {
	    {"database", T_TEXT},
	    {"user", T_TEXT},
	    {"cl_active", T_INT4},
	    {"cl_waiting", T_INT4},
	    {"cl_active_cancel_req", T_INT4},
	    {"cl_waiting_cancel_req", T_INT4},
	    {"sv_active", T_INT4},
	    {"sv_active_cancel", T_INT4},
	    {"sv_being_canceled", T_INT4},
	    {"sv_idle", T_INT4},
	    {"sv_used", T_INT4},
	    {"sv_tested", T_INT4},
	    {"sv_login", T_INT4},
	    {"maxwait", T_INT4},
	    {"maxwait_us", T_INT4},
	    {"pool_mode", T_TEXT},
	    {"pool_size", T_INT4},
	    {"cl_linked", T_INT4},
	    {"cl_idle", T_INT4},
	    {"wait_timeouts", T_INT8},
	    {"server_status", T_TEXT},
	    {"last_connect_error", T_TEXT},
	};
	header(cl, cols, NCOLS(cols));
	struct pools_ctx ctx = {cl, clock_now_usec()};
	pool_for_each(pool_row, &ctx);
}

/* --- SHOW STATS, STATS_TOTALS, STATS_AVERAGES: per database --- */

struct db_stats {
	char name[64];
	uint64_t total[ST__COUNT];
	double rate[ST__COUNT];     /* per second over the last period */
	uint64_t period[ST__COUNT]; /* deltas over the last period */
};

struct stats_ctx {
	struct db_stats *dbs;
	int n, cap;
	bool failed;
};

static void add_pool_stats(struct pool *p, void *arg)
{
	struct stats_ctx *ctx = arg;
	struct db_stats *d = NULL;
	for (int i = 0; i < ctx->n; i++)
		if (strcmp(ctx->dbs[i].name, p->db_name) == 0)
			d = &ctx->dbs[i];
	if (d == NULL) {
		if (ctx->n == ctx->cap) {
			int cap = ctx->cap ? ctx->cap * 2 : 16;
			struct db_stats *n = realloc(ctx->dbs, (size_t)cap * sizeof(*n));
			if (n == NULL) {
				ctx->failed = true;
				return;
			}
			ctx->dbs = n;
			ctx->cap = cap;
		}
		d = &ctx->dbs[ctx->n++];
		memset(d, 0, sizeof(*d));
		snprintf(d->name, sizeof(d->name), "%s", p->db_name);
	}
	for (int k = 0; k < ST__COUNT; k++) {
		d->total[k] += stats_read(&p->stats, (enum stat_counter)k);
		d->rate[k] += stats_rate(&p->stats, (enum stat_counter)k);
		d->period[k] += stats_period_delta(&p->stats, (enum stat_counter)k);
	}
}

static double per(const struct db_stats *d, enum stat_counter num, enum stat_counter den)
{
	return d->period[den] == 0 ? 0 : (double)d->period[num] / (double)d->period[den];
}

static void totals_cells(struct row *r, const struct db_stats *d)
{
	cell(r, "%llu", (unsigned long long)d->total[ST_XACT]);
	cell(r, "%llu", (unsigned long long)d->total[ST_QUERY]);
	cell(r, "%llu", (unsigned long long)d->total[ST_RECV]);
	cell(r, "%llu", (unsigned long long)d->total[ST_SENT]);
	cell(r, "%llu", (unsigned long long)d->total[ST_XACT_USEC]);
	cell(r, "%llu", (unsigned long long)d->total[ST_QUERY_USEC]);
	cell(r, "%llu", (unsigned long long)d->total[ST_WAIT_USEC]);
}

static void averages_cells(struct row *r, const struct db_stats *d)
{
	cell(r, "%.0f", d->rate[ST_XACT]);
	cell(r, "%.0f", d->rate[ST_QUERY]);
	cell(r, "%.0f", d->rate[ST_RECV]);
	cell(r, "%.0f", d->rate[ST_SENT]);
	cell(r, "%.0f", per(d, ST_XACT_USEC, ST_XACT));
	cell(r, "%.0f", per(d, ST_QUERY_USEC, ST_QUERY));
	cell(r, "%.0f", per(d, ST_WAIT_USEC, ST_ASSIGN));
}

enum stats_view { STATS_BOTH, STATS_TOTALS, STATS_AVERAGES };

static void stats_table(struct client *cl, enum stats_view view)
{
	static const struct col both[] = {
	    {"database", T_TEXT},
	    {"total_xact_count", T_NUMERIC},
	    {"total_query_count", T_NUMERIC},
	    {"total_received", T_NUMERIC},
	    {"total_sent", T_NUMERIC},
	    {"total_xact_time", T_NUMERIC},
	    {"total_query_time", T_NUMERIC},
	    {"total_wait_time", T_NUMERIC},
	    {"avg_xact_count", T_NUMERIC},
	    {"avg_query_count", T_NUMERIC},
	    {"avg_recv", T_NUMERIC},
	    {"avg_sent", T_NUMERIC},
	    {"avg_xact_time", T_NUMERIC},
	    {"avg_query_time", T_NUMERIC},
	    {"avg_wait_time", T_NUMERIC},
	    /* ours: PgBouncer before 1.8 called total_query_count this, and
	     * exporters still read it (Debian's prometheus-pgbouncer-exporter) */
	    {"total_requests", T_NUMERIC},
	};
	static const struct col one[] = {
	    {"database", T_TEXT},          {"xact_count", T_NUMERIC}, {"query_count", T_NUMERIC},
	    {"bytes_received", T_NUMERIC}, {"bytes_sent", T_NUMERIC}, {"xact_time", T_NUMERIC},
	    {"query_time", T_NUMERIC},     {"wait_time", T_NUMERIC},
	};
	struct stats_ctx ctx = {0};
	pool_for_each(add_pool_stats, &ctx);
	if (view == STATS_BOTH)
		header(cl, both, NCOLS(both));
	else
		header(cl, one, NCOLS(one));
	for (int i = 0; i < ctx.n; i++) {
		struct row r = {0};
		cell_str(&r, ctx.dbs[i].name);
		if (view != STATS_AVERAGES)
			totals_cells(&r, &ctx.dbs[i]);
		if (view != STATS_TOTALS)
			averages_cells(&r, &ctx.dbs[i]);
		if (view == STATS_BOTH)
			cell(&r, "%llu", (unsigned long long)ctx.dbs[i].total[ST_QUERY]);
		send_row(cl, &r);
	}
	free(ctx.dbs);
}

static void show_stats(struct client *cl, const char *arg)
{
	(void)arg;
	stats_table(cl, STATS_BOTH);
}

static void show_stats_totals(struct client *cl, const char *arg)
{
	(void)arg;
	stats_table(cl, STATS_TOTALS);
}

static void show_stats_averages(struct client *cl, const char *arg)
{
	(void)arg;
	stats_table(cl, STATS_AVERAGES);
}

/* --- SHOW CLIENTS, SERVERS, LEAKS: from a snapshot --- */

enum conn_view { VIEW_CLIENTS, VIEW_SERVERS, VIEW_LEAKS };

/* A command answered later: a snapshot from the workers, or a PAUSE
 * waiting for its servers to be released. */
enum pending_kind { PEND_SNAPSHOT, PEND_PAUSE };

struct admin_pending {
	enum pending_kind kind;
	struct client *cl;   /* NULL once the admin client left (a snapshot still in flight frees it) */
	enum conn_view view; /* PEND_SNAPSHOT */
	char *db;            /* PEND_PAUSE; NULL: every database */
};

static void pending_free(struct admin_pending *pd)
{
	if (pd != NULL)
		free(pd->db);
	free(pd);
}

static const struct col conn_cols[] = {
    {"type", T_TEXT},
    {"user", T_TEXT},
    {"database", T_TEXT},
    {"state", T_TEXT},
    {"addr", T_TEXT},
    {"port", T_INT4},
    {"local_addr", T_TEXT},
    {"local_port", T_INT4},
    {"connect_time", T_TEXT},
    {"request_time", T_TEXT},
    {"wait", T_INT4},
    {"wait_us", T_INT4},
    {"close_needed", T_INT4},
    {"ptr", T_TEXT},
    {"link", T_TEXT},
    {"remote_pid", T_INT4},
    {"tls", T_TEXT},
    {"application_name", T_TEXT},
    /* ours */
    {"id", T_INT8},
    {"state_detail", T_TEXT},
    {"held_for", T_NUMERIC},
    {"xact_state", T_TEXT},
    {"idle_for", T_NUMERIC},
    {"leak", T_TEXT},
    {"last_statement", T_TEXT},
};

static const struct col leak_cols[] = {
    {"user", T_TEXT},        {"database", T_TEXT},         {"addr", T_TEXT},
    {"port", T_INT4},        {"application_name", T_TEXT}, {"pool_mode", T_TEXT},
    {"held_for", T_NUMERIC}, {"idle_for", T_NUMERIC},      {"xact_state", T_TEXT},
    {"client_id", T_INT8},   {"server_pid", T_INT4},       {"last_statement", T_TEXT},
};

static void conn_row(struct client *cl, const struct snap_row *x, const struct snapshot *snap,
                     int64_t now_wall)
{
	struct row r = {0};
	cell(&r, "%c", x->type);
	cell_str(&r, x->user);
	cell_str(&r, x->database);
	cell_str(&r, x->word);
	cell_str(&r, x->addr);
	cell(&r, "%d", x->port);
	cell_str(&r, x->local_addr);
	cell(&r, "%d", x->local_port);
	cell_time(&r, x->connect_at, snap->taken_at, now_wall);
	cell_time(&r, x->request_at, snap->taken_at, now_wall);
	cell(&r, "%lld", (long long)(x->wait_usec / 1000000));
	cell(&r, "%lld", (long long)(x->wait_usec % 1000000));
	cell(&r, "0");
	cell(&r, "%p", x->ptr);
	if (x->link != NULL)
		cell(&r, "%p", x->link);
	else
		cell_str(&r, "");
	cell(&r, "%u", x->remote_pid);
	cell_null(&r);
	cell_str(&r, x->application_name);
	cell(&r, "%llu", (unsigned long long)x->id);
	cell_str(&r, x->detail);
	cell_secs(&r, x->held_usec);
	cell_str(&r, txn_words(x->txn));
	cell_secs(&r, x->idle_usec);
	cell_str(&r, x->leak ? "yes" : "no");
	cell_str(&r, x->last_sql);
	send_row(cl, &r);
}

static void leak_row(struct client *cl, const struct snap_row *x)
{
	struct row r = {0};
	cell_str(&r, x->user);
	cell_str(&r, x->database);
	cell_str(&r, x->addr);
	cell(&r, "%d", x->port);
	cell_str(&r, x->application_name);
	cell_str(&r, x->pool != NULL ? config_pool_mode_name(pool_mode_of((struct pool *)x->pool)) : "");
	cell_secs(&r, x->held_usec);
	cell_secs(&r, x->idle_usec);
	cell_str(&r, txn_words(x->txn));
	cell(&r, "%llu", (unsigned long long)x->id);
	cell(&r, "%u", x->backend_pid);
	cell_str(&r, x->last_sql);
	send_row(cl, &r);
}

static void admin_resume(struct client *cl);

static int by_idle_desc(const void *a, const void *b)
{
	const struct snap_row *x = a, *y = b;
	return x->idle_usec < y->idle_usec ? 1 : x->idle_usec > y->idle_usec ? -1 : 0;
}

static void snapshot_ready(struct snapshot *snap, void *arg)
{
	struct admin_pending *aw = arg;
	struct client *cl = aw->cl;
	if (cl == NULL || cl->closing) {
		pending_free(aw);
		snapshot_free(snap);
		return;
	}
	cl->admin_pending = NULL;
	int64_t now_wall = clock_wall_usec() - (clock_now_usec() - snap->taken_at);
	if (aw->view == VIEW_LEAKS) {
		qsort(snap->rows, (size_t)snap->n, sizeof(snap->rows[0]), by_idle_desc);
		header(cl, leak_cols, NCOLS(leak_cols));
	} else
		header(cl, conn_cols, NCOLS(conn_cols));
	for (int i = 0; i < snap->n; i++) {
		const struct snap_row *x = &snap->rows[i];
		if (aw->view == VIEW_CLIENTS && x->type == 'C' && x->ptr != cl)
			conn_row(cl, x, snap, now_wall);
		else if (aw->view == VIEW_SERVERS && x->type == 'S')
			conn_row(cl, x, snap, now_wall);
		else if (aw->view == VIEW_LEAKS && x->type == 'C' && x->leak)
			leak_row(cl, x);
	}
	msg_command_complete(&cl->conn.out, "SHOW");
	msg_ready(&cl->conn.out, PQ_TXN_IDLE);
	pending_free(aw);
	snapshot_free(snap);
	admin_resume(cl);
}

static void start_snapshot(struct client *cl, enum conn_view view)
{
	struct admin_pending *aw = calloc(1, sizeof(*aw));
	struct snapshot *snap = NULL;
	if (aw == NULL) {
		msg_error(&cl->conn.out, false, "ERROR", "53200", "pgsluice: out of memory", NULL, NULL);
		return;
	}
	aw->kind = PEND_SNAPSHOT;
	aw->cl = cl;
	aw->view = view;
	if (!snapshot_start(snapshot_ready, aw, &snap)) {
		pending_free(aw);
		snapshot_free(snap);
		msg_error(&cl->conn.out, false, "ERROR", "53200", "pgsluice: out of memory", NULL, NULL);
		return;
	}
	cl->admin_pending = aw;
}

static void show_clients(struct client *cl, const char *arg)
{
	(void)arg;
	start_snapshot(cl, VIEW_CLIENTS);
}

static void show_servers(struct client *cl, const char *arg)
{
	(void)arg;
	start_snapshot(cl, VIEW_SERVERS);
}

static void show_leaks(struct client *cl, const char *arg)
{
	(void)arg;
	start_snapshot(cl, VIEW_LEAKS);
}

/* --- commands that change things --- */

static void cmd_reload(struct client *cl, const char *arg)
{
	(void)arg;
	log_client(cl, LOG_INFO, "admin console: RELOAD");
	kill(getpid(), SIGHUP);
}

static void cmd_shutdown(struct client *cl, const char *arg)
{
	(void)arg;
	log_client(cl, LOG_INFO, "admin console: SHUTDOWN");
	kill(getpid(), SIGTERM);
}

/* PAUSE, RESUME, RECONNECT and KILL name one database or, without an
 * argument, all of them (KILL needs one). */
static bool known_database(struct client *cl, const char *db)
{
	if (db == NULL)
		return true;
	const struct config *cfg = acfg(cl);
	for (int i = 0; i < cfg->n_dbs; i++)
		if (strcmp(cfg->dbs[i].name, db) == 0)
			return true;
	return pool_count_db(db) > 0; /* a pool made through the "*" entry */
}

static const char *db_arg(struct client *cl, const char *arg, const char *command)
{
	const char *db = arg[0] != '\0' ? arg : NULL;
	if (!known_database(cl, db)) {
		char msg[200];
		snprintf(msg, sizeof(msg), "pgsluice: %s: no such database: %s", command, db);
		msg_error(&cl->conn.out, false, "ERROR", "3D000", msg, NULL, NULL);
		return "";
	}
	return db;
}

#define DB_REFUSED(db) ((db) != NULL && (db)[0] == '\0')

static void cmd_pause(struct client *cl, const char *arg)
{
	const char *db = db_arg(cl, arg, "PAUSE");
	if (DB_REFUSED(db))
		return;
	pool_pause_db(db);
	log_client(cl, LOG_INFO, "admin console: PAUSE %s", db ? db : "(all)");
	if (pool_db_quiet(db)) {
		msg_command_complete(&cl->conn.out, "PAUSE");
		return;
	}
	/* As PgBouncer: the answer comes when the servers in use are released. */
	struct admin_pending *pd = calloc(1, sizeof(*pd));
	if (pd == NULL || (db != NULL && (pd->db = strdup(db)) == NULL)) {
		pending_free(pd);
		msg_command_complete(&cl->conn.out, "PAUSE");
		return;
	}
	pd->kind = PEND_PAUSE;
	pd->cl = cl;
	cl->admin_pending = pd;
}

static void cmd_resume(struct client *cl, const char *arg)
{
	const char *db = db_arg(cl, arg, "RESUME");
	if (DB_REFUSED(db))
		return;
	struct list works;
	list_init(&works);
	pool_resume_db(db, &works);
	/* The queues are served from the idle lists (hand-offs to the clients'
	 * workers) and new connections start on this worker. */
	struct list *n;
	while ((n = list_pop_head(&works)) != NULL) {
		struct pool_work *work = container_of(n, struct pool_work, node);
		server_carry_out(work, cl->worker);
		free(work);
	}
	log_client(cl, LOG_INFO, "admin console: RESUME %s", db ? db : "(all)");
	msg_command_complete(&cl->conn.out, "RESUME");
}

static void cmd_reconnect(struct client *cl, const char *arg)
{
	const char *db = db_arg(cl, arg, "RECONNECT");
	if (DB_REFUSED(db))
		return;
	int n = pool_reconnect_db(db);
	log_client(cl, LOG_INFO,
	           "admin console: RECONNECT %s (%d pools): servers are replaced as they are released",
	           db ? db : "(all)", n);
	msg_command_complete(&cl->conn.out, "RECONNECT");
}

struct kill_order {
	atomic_int workers_left;
	char db[];
};

static void kill_clients_of(struct worker *w, void *arg)
{
	struct kill_order *k = arg;
	char msg[200];
	snprintf(msg, sizeof(msg), "pgsluice: database %s was killed by an administrator (KILL)", k->db);
	struct list *it, *tmp;
	list_for_each_safe(it, tmp, &w->clients)
	{
		struct client *cl = container_of(it, struct client, worker_node);
		if (!cl->is_admin && !cl->closing && cl->database != NULL && strcmp(cl->database, k->db) == 0)
			client_fatal(cl, "57P01", msg, NULL);
	}
	if (atomic_fetch_sub(&k->workers_left, 1) == 1)
		free(k);
}

static void cmd_kill(struct client *cl, const char *arg)
{
	if (arg[0] == '\0') {
		msg_error(&cl->conn.out, false, "ERROR", "42601", "pgsluice: KILL needs a database name",
		          NULL, "to stop everything, use SHUTDOWN");
		return;
	}
	const char *db = db_arg(cl, arg, "KILL");
	if (DB_REFUSED(db))
		return;
	/* Paused first, so nobody takes a server while its clients go;
	 * servers are closed, not reused, as they come back. */
	pool_pause_db(db);
	pool_reconnect_db(db);
	log_client(cl, LOG_WARNING,
	           "admin console: KILL %s: its clients and servers are closed; RESUME %s to reopen", db, db);
	size_t len = strlen(db);
	struct kill_order *k = malloc(sizeof(*k) + len + 1);
	if (k == NULL) {
		msg_error(&cl->conn.out, false, "ERROR", "53200", "pgsluice: out of memory", NULL, NULL);
		return;
	}
	memcpy(k->db, db, len + 1);
	atomic_init(&k->workers_left, rt.n_workers);
	for (int i = 0; i < rt.n_workers; i++)
		if (!worker_call_later(&rt.workers[i], kill_clients_of, k) &&
		    atomic_fetch_sub(&k->workers_left, 1) == 1)
			free(k);
	msg_command_complete(&cl->conn.out, "KILL");
}

/* SET key = value: a copy of the running configuration with one key
 * changed becomes the next generation, as a reload would. */
static void cmd_set(struct client *cl, const char *arg)
{
	char key[64], value[512];
	const char *eq = strchr(arg, '=');
	if (eq == NULL) {
		msg_error(&cl->conn.out, false, "ERROR", "42601", "pgsluice: SET needs key = value", NULL,
		          NULL);
		return;
	}
	size_t klen = (size_t)(eq - arg);
	while (klen > 0 && isspace((unsigned char)arg[klen - 1]))
		klen--;
	snprintf(key, sizeof(key), "%.*s", (int)klen, arg);
	const char *v = eq + 1;
	while (isspace((unsigned char)*v))
		v++;
	size_t vlen = strlen(v);
	if (vlen >= 2 && v[0] == '\'' && v[vlen - 1] == '\'') {
		v++;
		vlen -= 2;
	}
	snprintf(value, sizeof(value), "%.*s", (int)vlen, v);
	for (char *p = key; *p; p++)
		*p = (char)tolower((unsigned char)*p);

	const char *name, *def;
	char current[512];
	bool reloadable = false, found = false;
	for (int i = 0;
	     !found && config_key_at(acfg(cl), i, &name, current, sizeof(current), &def, &reloadable); i++)
		found = strcmp(name, key) == 0;
	char err[300];
	if (found && !reloadable) {
		snprintf(err, sizeof(err), "pgsluice: %s cannot be changed while running (restart needed)",
		         key);
		msg_error(&cl->conn.out, false, "ERROR", "55P02", err, NULL, NULL);
		return;
	}
	struct cfg_gen *cur = runtime_gen_acquire();
	struct config *next = config_copy(cur->cfg);
	runtime_gen_release(cur);
	if (next == NULL) {
		msg_error(&cl->conn.out, false, "ERROR", "53200", "pgsluice: out of memory", NULL, NULL);
		return;
	}
	if (!config_set(next, key, value, err, sizeof(err))) {
		config_free(next);
		char msg[400];
		snprintf(msg, sizeof(msg), "pgsluice: SET %s: %s", key, err);
		msg_error(&cl->conn.out, false, "ERROR", found ? "22023" : "42704", msg, NULL, NULL);
		return;
	}
	struct cfg_gen *g = runtime_gen_load(next, err, sizeof(err));
	if (g == NULL) {
		char msg[400];
		snprintf(msg, sizeof(msg), "pgsluice: SET %s: %s", key, err);
		msg_error(&cl->conn.out, false, "ERROR", "58030", msg, NULL, NULL);
		return;
	}
	log_client(cl, LOG_INFO, "admin console: SET %s = %s (generation %lu)", key, value, g->number);
	reload_apply(g);
	char tag[600];
	snprintf(tag, sizeof(tag), "SET %s=%s", key, value);
	msg_command_complete(&cl->conn.out, tag);
}

/* --- dispatch --- */

struct admin_cmd {
	const char *words; /* upper-case, single spaces */
	const char *tag;   /* CommandComplete; NULL: the command sends its own */
	bool takes_arg;    /* the rest of the line is its argument */
	bool changes;      /* admin_users only; stats_users may only look */
	void (*run)(struct client *cl, const char *arg);
};

static const struct admin_cmd commands[] = {
    {"SHOW VERSION", "SHOW", false, false, show_version},
    {"SHOW CONFIG", "SHOW", false, false, show_config},
    {"SHOW LISTS", "SHOW", false, false, show_lists},
    {"SHOW USERS", "SHOW", false, false, show_users},
    {"SHOW DATABASES", "SHOW", false, false, show_databases},
    {"SHOW POOLS", "SHOW", false, false, show_pools},
    {"SHOW STATS", "SHOW", false, false, show_stats},
    {"SHOW STATS_TOTALS", "SHOW", false, false, show_stats_totals},
    {"SHOW STATS_AVERAGES", "SHOW", false, false, show_stats_averages},
    {"SHOW CLIENTS", "SHOW", false, false, show_clients},
    {"SHOW SERVERS", "SHOW", false, false, show_servers},
    {"SHOW LEAKS", "SHOW", false, false, show_leaks},
    {"RELOAD", "RELOAD", false, true, cmd_reload},
    {"PAUSE", NULL, true, true, cmd_pause},
    {"RESUME", NULL, true, true, cmd_resume},
    {"RECONNECT", NULL, true, true, cmd_reconnect},
    {"KILL", NULL, true, true, cmd_kill},
    {"SET", NULL, true, true, cmd_set},
    {"SHUTDOWN", "SHUTDOWN", false, true, cmd_shutdown},
};

/* Upper-case, collapse spaces, drop a trailing ';'. */
static void normalise(const char *in, char *out, size_t size)
{
	size_t n = 0;
	bool space = false;
	for (; *in && n + 1 < size; in++) {
		unsigned char c = (unsigned char)*in;
		if (isspace(c) || c == ';') {
			space = n > 0;
			continue;
		}
		if (space && n + 2 < size)
			out[n++] = ' ';
		space = false;
		out[n++] = (char)toupper(c);
	}
	out[n] = '\0';
}

/* The text after the first n_words words of sql, in its own case, without
 * surrounding spaces or a trailing ';'. */
static void rest_after_words(const char *sql, int n_words, char *out, size_t size)
{
	const char *p = sql;
	for (int i = 0; i < n_words; i++) {
		while (isspace((unsigned char)*p))
			p++;
		while (*p && !isspace((unsigned char)*p) && *p != ';')
			p++;
	}
	while (isspace((unsigned char)*p))
		p++;
	size_t n = strlen(p);
	while (n > 0 && (isspace((unsigned char)p[n - 1]) || p[n - 1] == ';'))
		n--;
	snprintf(out, size, "%.*s", (int)n, p);
}

static int count_words(const char *s)
{
	int n = 1;
	for (; *s; s++)
		n += *s == ' ';
	return n;
}

static void run_query(struct client *cl, const char *sql)
{
	char norm[512];
	normalise(sql, norm, sizeof(norm));
	if (norm[0] == '\0') {
		msg_empty_query(&cl->conn.out);
		return;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		const struct admin_cmd *c = &commands[i];
		size_t len = strlen(c->words);
		if (strncmp(c->words, norm, len) != 0 ||
		    (norm[len] != '\0' && !(c->takes_arg && norm[len] == ' ')))
			continue;
		if (c->changes && !cl->admin_full) {
			log_client(cl, LOG_WARNING, "admin console: %s refused: not in admin_users",
			           c->words);
			msg_error(&cl->conn.out, false, "ERROR", "42501",
			          "pgsluice: permission denied: only admin_users may run this command", NULL,
			          "stats_users may run SHOW commands");
			return;
		}
		char arg[512] = "";
		if (c->takes_arg)
			rest_after_words(sql, count_words(c->words), arg, sizeof(arg));
		c->run(cl, arg);
		if (cl->admin_pending == NULL && c->tag != NULL)
			msg_command_complete(&cl->conn.out, c->tag);
		return;
	}
	char msg[300];
	snprintf(msg, sizeof(msg), "pgsluice: unsupported admin console command: %.200s", sql);
	msg_error(&cl->conn.out, false, "ERROR", "42601", msg, NULL,
	          "SHOW HELP is not needed: see docs/admin.md");
}

void admin_welcome(struct client *cl)
{
	static const char *const params[][2] = {
	    {"server_version", "15.0 (pgsluice " PGSLUICE_VERSION ")"},
	    {"server_encoding", "UTF8"},
	    {"client_encoding", "UTF8"},
	    {"DateStyle", "ISO, MDY"},
	    {"TimeZone", "UTC"},
	    {"integer_datetimes", "on"},
	    {"standard_conforming_strings", "on"},
	    {"application_name", ""},
	};
	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++)
		msg_param_status(&cl->conn.out, params[i][0], params[i][1]);
	msg_backend_key(&cl->conn.out, cl->cancel_pid, cl->cancel_key);
	msg_ready(&cl->conn.out, PQ_TXN_IDLE);
	cl->login_done = true;
	client_set_state(cl, CL_IDLE);
	client_flush(cl);
}

void admin_input(struct client *cl)
{
	struct frame f;
	const uint8_t *body;
	size_t n;
	while (!cl->closing && cl->admin_pending == NULL && client_next_request(cl, &f, &body, &n)) {
		const char *sql;
		if (f.type != PqMsg_Query || !msg_read_cstring(body, n, &sql)) {
			if (f.type == PqMsg_Sync) {
				msg_ready(&cl->conn.out, PQ_TXN_IDLE);
				continue;
			}
			if (f.type == PqMsg_Query) {
				client_fatal(cl, "08P01", "pgsluice: malformed query message", NULL);
				return;
			}
			msg_error(&cl->conn.out, false, "ERROR", "0A000",
			          "pgsluice: the admin console speaks the simple query protocol only", NULL,
			          NULL);
			continue;
		}
		run_query(cl, sql);
		if (cl->admin_pending == NULL)
			msg_ready(&cl->conn.out, PQ_TXN_IDLE);
	}
	if (cl->closing)
		return;
	if (cl->admin_pending == NULL)
		conn_release_in(&cl->conn, &cl->worker->bufs);
	client_flush(cl);
}

/* A snapshot answered: go on with what the client sent meanwhile. */
static void admin_resume(struct client *cl)
{
	admin_input(cl);
}

void admin_client_gone(struct client *cl)
{
	struct admin_pending *pd = cl->admin_pending;
	cl->admin_pending = NULL;
	if (pd == NULL)
		return;
	if (pd->kind == PEND_SNAPSHOT)
		pd->cl = NULL; /* the snapshot frees it when the workers are done */
	else
		pending_free(pd);
}

void admin_tick(struct client *cl)
{
	struct admin_pending *pd = cl->admin_pending;
	if (pd == NULL || pd->kind != PEND_PAUSE || !pool_db_quiet(pd->db))
		return;
	log_client(cl, LOG_INFO, "admin console: PAUSE %s done: no server in use", pd->db ? pd->db : "(all)");
	cl->admin_pending = NULL;
	pending_free(pd);
	msg_command_complete(&cl->conn.out, "PAUSE");
	msg_ready(&cl->conn.out, PQ_TXN_IDLE);
	admin_resume(cl);
}

const struct client_console admin_console = {
    .welcome = admin_welcome,
    .input = admin_input,
    .tick = admin_tick,
    .gone = admin_client_gone,
};
