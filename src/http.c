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

struct family;

/* The samples one pool gives a computed family, from the pool's figures
 * of this scrape. */
typedef void family_samples_fn(struct evbuffer *b, const struct family *fam, const struct pool *p,
                               const struct pool_figures *f);

/* One metric family. A counter family that reads per-pool counters needs
 * no code: its row names them in counters[], the first always and each
 * next one while it has a label (the samples of a family differ by their
 * labels), each sample the counter's total divided by divisor (0: as is;
 * 1e6 turns microseconds into seconds). Any other family names the
 * function that writes its samples. */
struct family {
	const char *name;
	const char *type; /* gauge, counter, histogram */
	const char *help;
	family_samples_fn *samples; /* NULL: the samples are counters[] */
	struct {
		enum stat_counter st;
		const char *label; /* e.g. kind="query_timeout"; NULL: none */
	} counters[4];
	double divisor;
	enum stat_hist hist; /* histogram_samples */
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

static void counter_samples(struct evbuffer *b, const struct family *fam, const struct pool *p)
{
	double divisor = fam->divisor > 0 ? fam->divisor : 1;
	for (size_t i = 0; i < sizeof(fam->counters) / sizeof(fam->counters[0]); i++) {
		if (i > 0 && fam->counters[i].label == NULL)
			break;
		sample_line(b, fam->name, p, fam->counters[i].label,
		            (double)stats_read(&p->stats, fam->counters[i].st) / divisor);
	}
}

static void histogram_samples(struct evbuffer *b, const struct family *fam, const struct pool *p,
                              const struct pool_figures *f)
{
	const char *name = fam->name;
	uint64_t cum[STATS_HIST_BUCKETS], count, sum;
	stats_hist_read(&p->stats, fam->hist, cum, &count, &sum);
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

static void clients_samples(struct evbuffer *b, const struct family *fam, const struct pool *p,
                            const struct pool_figures *f)
{
	sample_line(b, fam->name, p, "state=\"active\"", f->cl_active);
	sample_line(b, fam->name, p, "state=\"idle\"", f->cl_idle);
	sample_line(b, fam->name, p, "state=\"waiting\"", f->cl_waiting);
}

static void servers_samples(struct evbuffer *b, const struct family *fam, const struct pool *p,
                            const struct pool_figures *f)
{
	sample_line(b, fam->name, p, "state=\"active\"", f->sv_active);
	sample_line(b, fam->name, p, "state=\"idle\"", f->sv_idle);
	sample_line(b, fam->name, p, "state=\"used\"", f->sv_used);
	sample_line(b, fam->name, p, "state=\"connecting\"", f->sv_login);
	sample_line(b, fam->name, p, "state=\"testing\"", f->sv_tested);
}

static void pool_size_sample(struct evbuffer *b, const struct family *fam, const struct pool *p,
                             const struct pool_figures *f)
{
	sample_line(b, fam->name, p, NULL, f->pool_size);
}

static void max_wait_sample(struct evbuffer *b, const struct family *fam, const struct pool *p,
                            const struct pool_figures *f)
{
	sample_line(b, fam->name, p, NULL, (double)f->maxwait_usec / 1e6);
}

static void unreachable_sample(struct evbuffer *b, const struct family *fam, const struct pool *p,
                               const struct pool_figures *f)
{
	sample_line(b, fam->name, p, NULL, pool_figures_unreachable(f) ? 1 : 0);
}

/* In the order of the exposition. A new per-pool counter is one row here
 * (after its ST_ entry in stats.h and its stats_add() call). */
static const struct family families[] = {
    {"pgsluice_clients", "gauge", "Client connections of the pool by state (active: linked to a server).",
     .samples = clients_samples},
    {"pgsluice_servers", "gauge", "Server connections of the pool by state.", .samples = servers_samples},
    {"pgsluice_pool_size", "gauge", "Server connections the pool may open.", .samples = pool_size_sample},
    {"pgsluice_max_wait_seconds", "gauge", "How long the longest-waiting client has waited so far.",
     .samples = max_wait_sample},
    {"pgsluice_server_unreachable", "gauge",
     "1 while the pool's latest connects failed and it has no server.", .samples = unreachable_sample},
    {"pgsluice_wait_seconds", "histogram", "How long clients waited for a server connection.",
     .samples = histogram_samples, .hist = SH_WAIT},
    {"pgsluice_hold_seconds", "histogram", "How long a server connection stayed linked to one client.",
     .samples = histogram_samples, .hist = SH_HOLD},
    {"pgsluice_transactions_total", "counter", "Transactions finished.", .counters = {{ST_XACT}}},
    {"pgsluice_queries_total", "counter", "Queries answered.", .counters = {{ST_QUERY}}},
    {"pgsluice_received_bytes_total", "counter", "Bytes received from clients.", .counters = {{ST_RECV}}},
    {"pgsluice_sent_bytes_total", "counter", "Bytes sent to clients.", .counters = {{ST_SENT}}},
    {"pgsluice_transaction_seconds_total", "counter", "Time spent in transactions.",
     .counters = {{ST_XACT_USEC}}, .divisor = 1e6},
    {"pgsluice_query_seconds_total", "counter", "Time servers spent on queries.",
     .counters = {{ST_QUERY_USEC}}, .divisor = 1e6},
    {"pgsluice_server_assignments_total", "counter", "Times a server connection was linked to a client.",
     .counters = {{ST_ASSIGN}}},
    {"pgsluice_timeouts_total", "counter", "Timeouts by kind.",
     .counters = {{ST_WAIT_TIMEOUT, "kind=\"query_wait_timeout\""},
                  {ST_QUERY_TIMEOUT, "kind=\"query_timeout\""},
                  {ST_IDLE_TXN_TIMEOUT, "kind=\"idle_transaction_timeout\""},
                  {ST_CLIENT_IDLE_TIMEOUT, "kind=\"client_idle_timeout\""}}},
    {"pgsluice_refused_clients_total", "counter", "Clients refused, by reason.",
     .counters = {{ST_REFUSED_QUEUE, "reason=\"max_waiting_clients\""}}},
    {"pgsluice_leak_warnings_total", "counter",
     "Clients reported for holding a server idle past leak_warn_timeout.", .counters = {{ST_LEAK_WARNING}}},
    {"pgsluice_dead_servers_total", "counter",
     "Idle server connections found closed or readable and dropped.", .counters = {{ST_DEAD_SERVER}}},
    {"pgsluice_server_connect_failures_total", "counter", "Server connects or logins that failed.",
     .counters = {{ST_CONNECT_FAIL}}},
    {"pgsluice_release_rollbacks_total", "counter",
     "ROLLBACKs sent when a server was released in a transaction.", .counters = {{ST_RELEASE_ROLLBACK}}},
};

#define N_FAMILIES (sizeof(families) / sizeof(families[0]))

/* The exposition groups the samples by family, so each family's samples go
 * to their own buffer while the pools are walked once (one pool_figures()
 * each); the buffers are joined in the families' order afterwards. */
struct metrics_ctx {
	int64_t now;
	struct evbuffer *fam_out[N_FAMILIES];
};

static void metrics_of_pool(struct pool *p, void *arg)
{
	struct metrics_ctx *m = arg;
	struct pool_figures f;
	pool_figures(p, m->now, &f);
	for (size_t i = 0; i < N_FAMILIES; i++) {
		if (families[i].samples != NULL)
			families[i].samples(m->fam_out[i], &families[i], p, &f);
		else
			counter_samples(m->fam_out[i], &families[i], p);
	}
}

/* false when out of memory */
static bool write_metrics(struct evbuffer *b)
{
	struct metrics_ctx m = {.now = clock_now_usec()};
	for (size_t i = 0; i < N_FAMILIES; i++) {
		if ((m.fam_out[i] = evbuffer_new()) == NULL) {
			while (i-- > 0)
				evbuffer_free(m.fam_out[i]);
			return false;
		}
	}
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
	pool_for_each(metrics_of_pool, &m);
	for (size_t i = 0; i < N_FAMILIES; i++) {
		const struct family *fam = &families[i];
		evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", fam->name, fam->help, fam->name,
		                    fam->type);
		evbuffer_add_buffer(b, m.fam_out[i]);
		evbuffer_free(m.fam_out[i]);
	}
	return true;
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
	if (write_metrics(b))
		reply(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", b);
	else
		evhttp_send_error(req, 500, "out of memory");
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
