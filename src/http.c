/* http.c — /metrics (Prometheus text format 0.0.4), /health and /pools,
 * served by libevent's evhttp on the main thread. Every figure comes from
 * pool_figures() (a short pool lock) and atomic counters, so a scrape
 * never waits for, or blocks, a worker. */
#include "http.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "pool.h"
#include "runtime.h"
#include "stats.h"
#include "util/clock.h"

static struct evhttp *server;

/* --- text helpers --- */

/* A Prometheus label value or a JSON string body: backslash, quote and
 * newline escaped (control characters dropped for JSON safety). */
static void add_escaped(struct evbuffer *b, const char *s)
{
	for (; s != NULL && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '\\' || c == '"')
			evbuffer_add_printf(b, "\\%c", c);
		else if (c == '\n')
			evbuffer_add(b, "\\n", 2);
		else if (c >= 0x20)
			evbuffer_add(b, s, 1);
	}
}

static void add_labels(struct evbuffer *b, const struct pool *p)
{
	evbuffer_add_printf(b, "database=\"");
	add_escaped(b, p->db_name);
	evbuffer_add_printf(b, "\",user=\"");
	add_escaped(b, p->user_name);
	evbuffer_add(b, "\"", 1);
}

/* --- /metrics --- */

struct family {
	const char *name;
	const char *type; /* gauge, counter, histogram */
	const char *help;
};

struct metrics_ctx {
	struct evbuffer *b;
	int64_t now;
	int family; /* index into families while walking the pools */
};

enum fam {
	F_CLIENTS,
	F_SERVERS,
	F_POOL_SIZE,
	F_MAX_WAIT,
	F_UNREACHABLE,
	F_WAIT_HIST,
	F_HOLD_HIST,
	F_XACT,
	F_QUERY,
	F_RECV,
	F_SENT,
	F_XACT_TIME,
	F_QUERY_TIME,
	F_ASSIGN,
	F_TIMEOUTS,
	F_REFUSED,
	F_LEAKS,
	F_DEAD,
	F_CONNECT_FAIL,
	F_ROLLBACK,
	F__COUNT
};

static const struct family families[F__COUNT] = {
    [F_CLIENTS] = {"pgsluice_clients", "gauge",
                   "Client connections of the pool by state (active: linked to a server)."},
    [F_SERVERS] = {"pgsluice_servers", "gauge", "Server connections of the pool by state."},
    [F_POOL_SIZE] = {"pgsluice_pool_size", "gauge", "Server connections the pool may open."},
    [F_MAX_WAIT] = {"pgsluice_max_wait_seconds", "gauge",
                    "How long the longest-waiting client has waited so far."},
    [F_UNREACHABLE] = {"pgsluice_server_unreachable", "gauge",
                       "1 while the pool's latest connects failed and it has no server."},
    [F_WAIT_HIST] = {"pgsluice_wait_seconds", "histogram",
                     "How long clients waited for a server connection."},
    [F_HOLD_HIST] = {"pgsluice_hold_seconds", "histogram",
                     "How long a server connection stayed linked to one client."},
    [F_XACT] = {"pgsluice_transactions_total", "counter", "Transactions finished."},
    [F_QUERY] = {"pgsluice_queries_total", "counter", "Queries answered."},
    [F_RECV] = {"pgsluice_received_bytes_total", "counter", "Bytes received from clients."},
    [F_SENT] = {"pgsluice_sent_bytes_total", "counter", "Bytes sent to clients."},
    [F_XACT_TIME] = {"pgsluice_transaction_seconds_total", "counter", "Time spent in transactions."},
    [F_QUERY_TIME] = {"pgsluice_query_seconds_total", "counter", "Time servers spent on queries."},
    [F_ASSIGN] = {"pgsluice_server_assignments_total", "counter",
                  "Times a server connection was linked to a client."},
    [F_TIMEOUTS] = {"pgsluice_timeouts_total", "counter", "Timeouts by kind."},
    [F_REFUSED] = {"pgsluice_refused_clients_total", "counter", "Clients refused, by reason."},
    [F_LEAKS] = {"pgsluice_leak_warnings_total", "counter",
                 "Clients reported for holding a server idle past leak_warn_timeout."},
    [F_DEAD] = {"pgsluice_dead_servers_total", "counter",
                "Idle server connections found closed or readable and dropped."},
    [F_CONNECT_FAIL] = {"pgsluice_server_connect_failures_total", "counter",
                        "Server connects or logins that failed."},
    [F_ROLLBACK] = {"pgsluice_release_rollbacks_total", "counter",
                    "ROLLBACKs sent when a server was released in a transaction."},
};

static void sample_line(struct evbuffer *b, const char *name, const struct pool *p, const char *extra,
                        double v)
{
	evbuffer_add_printf(b, "%s{", name);
	add_labels(b, p);
	if (extra != NULL)
		evbuffer_add_printf(b, ",%s", extra);
	evbuffer_add_printf(b, "} %.15g\n", v);
}

static void histogram_lines(struct evbuffer *b, const char *name, const struct pool *p, enum stat_hist h)
{
	uint64_t cum[STATS_HIST_BUCKETS], count, sum;
	stats_hist_read(&p->stats, h, cum, &count, &sum);
	for (int i = 0; i < STATS_HIST_BUCKETS; i++) {
		char le[48];
		if (i < STATS_HIST_BUCKETS - 1)
			snprintf(le, sizeof(le), "le=\"%g\"", (double)stats_hist_bounds_usec[i] / 1e6);
		else
			snprintf(le, sizeof(le), "le=\"+Inf\"");
		evbuffer_add_printf(b, "%s_bucket{", name);
		add_labels(b, p);
		evbuffer_add_printf(b, ",%s} %llu\n", le, (unsigned long long)cum[i]);
	}
	evbuffer_add_printf(b, "%s_sum{", name);
	add_labels(b, p);
	evbuffer_add_printf(b, "} %.6f\n", (double)sum / 1e6);
	evbuffer_add_printf(b, "%s_count{", name);
	add_labels(b, p);
	evbuffer_add_printf(b, "} %llu\n", (unsigned long long)count);
}

static void family_of_pool(struct pool *p, void *arg)
{
	struct metrics_ctx *m = arg;
	struct evbuffer *b = m->b;
	const struct pool_stats *st = &p->stats;
	const char *name = families[m->family].name;
	struct pool_figures f;
	switch ((enum fam)m->family) {
	case F_CLIENTS:
		pool_figures(p, m->now, &f);
		sample_line(b, name, p, "state=\"active\"", f.cl_active);
		sample_line(b, name, p, "state=\"idle\"", f.cl_idle);
		sample_line(b, name, p, "state=\"waiting\"", f.cl_waiting);
		break;
	case F_SERVERS:
		pool_figures(p, m->now, &f);
		sample_line(b, name, p, "state=\"active\"", f.sv_active);
		sample_line(b, name, p, "state=\"idle\"", f.sv_idle);
		sample_line(b, name, p, "state=\"used\"", f.sv_used);
		sample_line(b, name, p, "state=\"connecting\"", f.sv_login);
		sample_line(b, name, p, "state=\"testing\"", f.sv_tested);
		break;
	case F_POOL_SIZE:
		pool_figures(p, m->now, &f);
		sample_line(b, name, p, NULL, f.pool_size);
		break;
	case F_MAX_WAIT:
		pool_figures(p, m->now, &f);
		sample_line(b, name, p, NULL, (double)f.maxwait_usec / 1e6);
		break;
	case F_UNREACHABLE:
		pool_figures(p, m->now, &f);
		sample_line(b, name, p, NULL, pool_figures_unreachable(&f) ? 1 : 0);
		break;
	case F_WAIT_HIST:
		histogram_lines(b, name, p, SH_WAIT);
		break;
	case F_HOLD_HIST:
		histogram_lines(b, name, p, SH_HOLD);
		break;
	case F_XACT:
		sample_line(b, name, p, NULL, (double)stats_read(st, ST_XACT));
		break;
	case F_QUERY:
		sample_line(b, name, p, NULL, (double)stats_read(st, ST_QUERY));
		break;
	case F_RECV:
		sample_line(b, name, p, NULL, (double)stats_read(st, ST_RECV));
		break;
	case F_SENT:
		sample_line(b, name, p, NULL, (double)stats_read(st, ST_SENT));
		break;
	case F_XACT_TIME:
		sample_line(b, name, p, NULL, (double)stats_read(st, ST_XACT_USEC) / 1e6);
		break;
	case F_QUERY_TIME:
		sample_line(b, name, p, NULL, (double)stats_read(st, ST_QUERY_USEC) / 1e6);
		break;
	case F_ASSIGN:
		sample_line(b, name, p, NULL, (double)stats_read(st, ST_ASSIGN));
		break;
	case F_TIMEOUTS:
		sample_line(b, name, p, "kind=\"query_wait_timeout\"",
		            (double)stats_read(st, ST_WAIT_TIMEOUT));
		sample_line(b, name, p, "kind=\"query_timeout\"", (double)stats_read(st, ST_QUERY_TIMEOUT));
		sample_line(b, name, p, "kind=\"idle_transaction_timeout\"",
		            (double)stats_read(st, ST_IDLE_TXN_TIMEOUT));
		sample_line(b, name, p, "kind=\"client_idle_timeout\"",
		            (double)stats_read(st, ST_CLIENT_IDLE_TIMEOUT));
		break;
	case F_REFUSED:
		sample_line(b, name, p, "reason=\"max_waiting_clients\"",
		            (double)stats_read(st, ST_REFUSED_QUEUE));
		break;
	case F_LEAKS:
		sample_line(b, name, p, NULL, (double)stats_read(st, ST_LEAK_WARNING));
		break;
	case F_DEAD:
		sample_line(b, name, p, NULL, (double)stats_read(st, ST_DEAD_SERVER));
		break;
	case F_CONNECT_FAIL:
		sample_line(b, name, p, NULL, (double)stats_read(st, ST_CONNECT_FAIL));
		break;
	case F_ROLLBACK:
		sample_line(b, name, p, NULL, (double)stats_read(st, ST_RELEASE_ROLLBACK));
		break;
	case F__COUNT:
		break;
	}
}

static void write_metrics(struct evbuffer *b)
{
	struct metrics_ctx m = {b, clock_now_usec(), 0};
	evbuffer_add_printf(
	    b, "# HELP pgsluice_up 1 while pgsluice answers.\n# TYPE pgsluice_up gauge\npgsluice_up 1\n");
	evbuffer_add_printf(
	    b,
	    "# HELP pgsluice_build_info The running version.\n# TYPE pgsluice_build_info gauge\n"
	    "pgsluice_build_info{version=\"%s\"} 1\n",
	    PGSLUICE_VERSION);
	evbuffer_add_printf(
	    b,
	    "# HELP pgsluice_client_connections Client connections open, all pools and logins.\n"
	    "# TYPE pgsluice_client_connections gauge\npgsluice_client_connections %d\n",
	    atomic_load(&rt.n_clients));
	evbuffer_add_printf(
	    b,
	    "# HELP pgsluice_refused_connections_total Connections refused before login, by reason.\n"
	    "# TYPE pgsluice_refused_connections_total counter\n"
	    "pgsluice_refused_connections_total{reason=\"max_client_conn\"} %llu\n",
	    (unsigned long long)atomic_load(&rt.refused_max_client_conn));
	for (m.family = 0; m.family < F__COUNT; m.family++) {
		const struct family *fam = &families[m.family];
		evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", fam->name, fam->help, fam->name,
		                    fam->type);
		pool_for_each(family_of_pool, &m);
	}
}

/* --- /health and /pools --- */

struct json_ctx {
	struct evbuffer *b;
	int64_t now;
	int64_t max_wait_limit;
	int n;
	int unhealthy;
};

static void pool_json(struct evbuffer *b, const struct pool *p, const struct pool_figures *f)
{
	evbuffer_add_printf(b, "{\"database\":\"");
	add_escaped(b, p->db_name);
	evbuffer_add_printf(b, "\",\"user\":\"");
	add_escaped(b, p->user_name);
	evbuffer_add_printf(
	    b,
	    "\",\"pool_mode\":\"%s\",\"pool_size\":%d,\"cl_active\":%d,\"cl_idle\":%d,\"cl_waiting\":%d,"
	    "\"sv_active\":%d,\"sv_idle\":%d,\"sv_used\":%d,\"sv_tested\":%d,\"sv_login\":%d,"
	    "\"maxwait\":%lld,\"maxwait_us\":%lld,\"max_wait_seconds\":%.6f",
	    config_pool_mode_name(f->mode), f->pool_size, f->cl_active, f->cl_idle, f->cl_waiting,
	    f->sv_active, f->sv_idle, f->sv_used, f->sv_tested, f->sv_login,
	    (long long)(f->maxwait_usec / 1000000), (long long)(f->maxwait_usec % 1000000),
	    (double)f->maxwait_usec / 1e6);
}

static void health_of_pool(struct pool *p, void *arg)
{
	struct json_ctx *j = arg;
	struct pool_figures f;
	pool_figures(p, j->now, &f);
	bool waited = j->max_wait_limit > 0 && f.maxwait_usec > j->max_wait_limit;
	bool unreachable = pool_figures_unreachable(&f);
	if (j->n++ > 0)
		evbuffer_add(j->b, ",", 1);
	pool_json(j->b, p, &f);
	evbuffer_add_printf(j->b, ",\"healthy\":%s,\"reasons\":[", waited || unreachable ? "false" : "true");
	if (waited)
		evbuffer_add_printf(
		    j->b,
		    "\"a client has waited %.1fs for a server connection (health_max_wait=%.1fs; "
		    "active=%d waiting=%d pool_size=%d)\"",
		    (double)f.maxwait_usec / 1e6, (double)j->max_wait_limit / 1e6, f.sv_active, f.cl_waiting,
		    f.pool_size);
	if (unreachable) {
		evbuffer_add_printf(j->b, "%s\"server unreachable: ", waited ? "," : "");
		add_escaped(j->b, f.last_error);
		evbuffer_add(j->b, "\"", 1);
	}
	evbuffer_add(j->b, "]}", 2);
	if (waited || unreachable)
		j->unhealthy++;
}

static void pools_of_pool(struct pool *p, void *arg)
{
	struct json_ctx *j = arg;
	struct pool_figures f;
	pool_figures(p, j->now, &f);
	if (j->n++ > 0)
		evbuffer_add(j->b, ",", 1);
	pool_json(j->b, p, &f);
	evbuffer_add(j->b, "}", 1);
}

/* --- dispatch --- */

static void reply(struct evhttp_request *req, int code, const char *reason, const char *type,
                  struct evbuffer *b)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
	evhttp_send_reply(req, code, reason, b);
}

static void serve_metrics(struct evhttp_request *req, struct evbuffer *b)
{
	write_metrics(b);
	reply(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", b);
}

static void serve_health(struct evhttp_request *req, struct evbuffer *b)
{
	struct cfg_gen *g = runtime_gen_acquire();
	struct json_ctx j = {b, clock_now_usec(), g->cfg->health_max_wait, 0, 0};
	runtime_gen_release(g);
	evbuffer_add_printf(b, "{\"pools\":[");
	pool_for_each(health_of_pool, &j);
	evbuffer_add_printf(b, "],\"status\":\"%s\",\"unhealthy_pools\":%d}\n",
	                    j.unhealthy ? "unhealthy" : "ok", j.unhealthy);
	if (j.unhealthy)
		reply(req, 503, "Service Unavailable", "application/json", b);
	else
		reply(req, 200, "OK", "application/json", b);
}

static void serve_pools(struct evhttp_request *req, struct evbuffer *b)
{
	struct json_ctx j = {b, clock_now_usec(), 0, 0, 0};
	evbuffer_add(b, "[", 1);
	pool_for_each(pools_of_pool, &j);
	evbuffer_add(b, "]\n", 2);
	reply(req, 200, "OK", "application/json", b);
}

/* A path is answered by its row; the query string is ignored. A method no
 * row takes, or one the path's row does not take, is answered 405; any
 * other path 404 with the list of paths. */
struct route {
	const char *path;
	int methods; /* EVHTTP_REQ_* bits it answers */
	void (*serve)(struct evhttp_request *req, struct evbuffer *b);
};

static const struct route routes[] = {
    {"/metrics", EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, serve_metrics},
    {"/health", EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, serve_health},
    {"/pools", EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, serve_pools},
};

#define N_ROUTES (sizeof(routes) / sizeof(routes[0]))

static void handle(struct evhttp_request *req, void *arg)
{
	(void)arg;
	const char *uri = evhttp_request_get_uri(req);
	char path[64];
	size_t n = strcspn(uri, "?");
	snprintf(path, sizeof(path), "%.*s", (int)(n < sizeof(path) - 1 ? n : sizeof(path) - 1), uri);
	struct evbuffer *b = evbuffer_new();
	if (b == NULL) {
		evhttp_send_error(req, 500, "out of memory");
		return;
	}
	int method = (int)evhttp_request_get_command(req), any_method = 0;
	const struct route *r = NULL;
	for (size_t i = 0; i < N_ROUTES; i++) {
		any_method |= routes[i].methods;
		if (strcmp(path, routes[i].path) == 0)
			r = &routes[i];
	}
	if (((r != NULL ? r->methods : any_method) & method) == 0) {
		evbuffer_add_printf(b, "only GET\n");
		reply(req, 405, "Method Not Allowed", "text/plain", b);
	} else if (r != NULL) {
		r->serve(req, b);
	} else {
		evbuffer_add_printf(b, "pgsluice:");
		for (size_t i = 0; i < N_ROUTES; i++)
			evbuffer_add_printf(b, "%s %s", i > 0 ? "," : "", routes[i].path);
		evbuffer_add(b, "\n", 1);
		reply(req, 404, "Not Found", "text/plain", b);
	}
	evbuffer_free(b);
}

bool http_start(struct event_base *base, const struct config *cfg, char *err, size_t err_size)
{
	if (cfg->http_port == 0)
		return true;
	server = evhttp_new(base);
	if (server == NULL) {
		snprintf(err, err_size, "cannot create the HTTP server");
		return false;
	}
	evhttp_set_gencb(server, handle, NULL);
	evhttp_set_allowed_methods(server, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
	const char *addr = cfg->http_addr != NULL && cfg->http_addr[0] ? cfg->http_addr : "127.0.0.1";
	if (evhttp_bind_socket(server, addr, (ev_uint16_t)cfg->http_port) != 0) {
		snprintf(err, err_size, "cannot listen for HTTP on %s:%d (http_addr, http_port)", addr,
		         cfg->http_port);
		evhttp_free(server);
		server = NULL;
		return false;
	}
	log_msg(LOG_INFO, "metrics and health on http://%s:%d/metrics and /health", addr, cfg->http_port);
	return true;
}

void http_stop(void)
{
	if (server != NULL)
		evhttp_free(server);
	server = NULL;
}
