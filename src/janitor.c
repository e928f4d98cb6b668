/* janitor.c — the periodic work, in one place. On each worker, every
 * WORKER_TICK_USEC: client login, wait (query_wait_timeout), idle
 * (client_idle_timeout), idle-in-transaction (idle_transaction_timeout) and
 * leak (leak_warn_timeout) timeouts; server query_timeout and the connect,
 * login, drain and check deadlines. On the main loop, every MAIN_TICK_USEC:
 * the pools' round (server_idle_timeout, server_lifetime, min_pool_size,
 * the reserve pool, RECONNECT, limits) and the stats log. */
#include "janitor.h"

#include <stdlib.h>

#include "client.h"
#include "log.h"
#include "pool.h"
#include "proto/protocol.h"
#include "report.h"
#include "runtime.h"
#include "server.h"
#include "util/clock.h"
#include "worker.h"

#define WORKER_TICK_USEC 100000 /* client and server timeouts are checked at this granularity */
#define MAIN_TICK_USEC 250000   /* the pools' round and the stats log */

/* --- clients --- */

static void wait_timed_out(struct client *cl, int64_t now)
{
	struct pool *p = cl->pool;
	if (!pool_leave_queue(p, &cl->pc))
		return; /* a server is on its way */
	/* The same figures as SHOW POOLS and /health show at this moment. */
	struct pool_figures f;
	pool_note_wait_timeout(p, now, &f);
	int size = f.pool_size, active = f.sv_active, waiting = f.cl_waiting;
	char msg[300];
	double waited = (double)(now - cl->pc.wait_started) / 1e6;
	snprintf(msg, sizeof(msg),
	         "pgsluice: pool %s saturated: waited %.1fs for a server connection (pool_size=%d active=%d "
	         "waiting=%d); see SHOW POOLS",
	         p->name, waited, size, active, waiting);
	log_client(cl, LOG_WARNING, "query_wait_timeout: waited %.1fs (pool_size=%d active=%d waiting=%d)",
	           waited, size, active, waiting);
	client_refuse_request(cl, "53300", msg);
}

/* leak_warn_timeout and idle_transaction_timeout for a linked client.
 * true when the link was ended. */
static bool holds_too_long(struct client *cl, const struct config *cfg, int64_t now)
{
	struct server *s = cl->server;
	if (s == NULL || s->client != cl)
		return false;
	if (!cl->leak_reported && client_holds_idle(cl, now, cfg->leak_warn_timeout)) {
		cl->leak_reported = true;
		stats_add(&cl->pool->stats, ST_LEAK_WARNING, 1);
		log_client(cl, LOG_WARNING,
		           "leak: application_name=%s holds server S-%llu (backend %u) %s for %.1fs "
		           "(linked %.1fs ago, leak_warn_timeout=%.1fs); last statement: %s",
		           client_app_name(cl), (unsigned long long)s->id, s->backend_pid,
		           s->txn_status == PQ_TXN_IDLE     ? "idle"
		           : s->txn_status == PQ_TXN_FAILED ? "idle in a failed transaction"
		                                            : "idle in transaction",
		           (double)(now - s->answered_at) / 1e6, (double)(now - s->linked_at) / 1e6,
		           (double)cfg->leak_warn_timeout / 1e6, cl->last_sql ? cl->last_sql : "");
	}
	if (cfg->idle_transaction_timeout <= 0 || s->txn_status == PQ_TXN_IDLE || s->pending_rfq > 0 ||
	    s->answered_at == 0 || now - s->answered_at < cfg->idle_transaction_timeout)
		return false;
	double idle = (double)(now - s->answered_at) / 1e6;
	char *why = str_printf("pgsluice: transaction rolled back: it was idle for %.1fs, beyond "
	                       "idle_transaction_timeout=%.1fs",
	                       idle, (double)cfg->idle_transaction_timeout / 1e6);
	if (why == NULL)
		return false;
	stats_add(&cl->pool->stats, ST_IDLE_TXN_TIMEOUT, 1);
	log_client(
	    cl, LOG_WARNING,
	    "idle_transaction_timeout: application_name=%s idle in transaction for %.1fs (limit %.1fs) on "
	    "backend %u: rolled back, server returned to the pool; last statement: %s",
	    client_app_name(cl), idle, (double)cfg->idle_transaction_timeout / 1e6, s->backend_pid,
	    cl->last_sql ? cl->last_sql : "");
	free(cl->aborted_reason);
	cl->aborted_reason = why;
	cl->aborted_skip_to_sync = false;
	server_release(s, "idle_transaction_timeout");
	client_set_state(cl, CL_IDLE);
	return true;
}

static void client_idle_timed_out(struct client *cl)
{
	if (cl->pool != NULL)
		stats_add(&cl->pool->stats, ST_CLIENT_IDLE_TIMEOUT, 1);
	client_fatal(cl, "57P05", "pgsluice: terminating connection due to client_idle_timeout", NULL);
}

/* Login, wait, idle, idle-in-transaction and leak timeouts of w's clients. */
static void clients_tick(struct worker *w, int64_t now)
{
	struct list *it, *tmp;
	list_for_each_safe(it, tmp, &w->clients)
	{
		struct client *cl = container_of(it, struct client, worker_node);
		if (cl->closing)
			continue;
		if (cl->admin_pending != NULL) {
			client_console_tick(cl);
			continue;
		}
		client_count_bytes(cl);
		const struct config *cfg = w->gen->cfg;
		switch (cl->state) {
		case CL_STARTUP:
		case CL_AUTH:
			if (cfg->client_login_timeout > 0 &&
			    now - cl->connected_at > cfg->client_login_timeout) {
				if (cl->state == CL_AUTH)
					client_fatal(cl, "08006", "pgsluice: client_login_timeout reached",
					             NULL);
				else
					client_close(cl, "client_login_timeout reached");
			}
			break;
		case CL_WAITING:
		case CL_LOGIN_WAIT:
			/* Not cl->server: another worker may be linking it right now.
			 * Leaving the queue, under the pool lock, says whether it did. */
			if (cfg->query_wait_timeout > 0 &&
			    now - cl->pc.wait_started >= cfg->query_wait_timeout)
				wait_timed_out(cl, now);
			break;
		case CL_IDLE:
			if (cfg->client_idle_timeout > 0 &&
			    now - cl->last_activity > cfg->client_idle_timeout)
				client_idle_timed_out(cl);
			break;
		case CL_ACTIVE:
			if (holds_too_long(cl, cfg, now))
				break;
			if (cfg->client_idle_timeout > 0 && cl->server != NULL &&
			    cl->server->pending_rfq == 0 && cl->server->txn_status == PQ_TXN_IDLE &&
			    now - cl->last_activity > cfg->client_idle_timeout)
				client_idle_timed_out(cl);
			break;
		default:
			break;
		}
	}
}

/* --- servers --- */

/* query_timeout, and the connect, login, drain and check deadlines of w's servers. */
static void servers_tick(struct worker *w, int64_t now)
{
	struct list *it, *tmp;
	pgs_usec_t query_timeout = w->gen->cfg->query_timeout;
	list_for_each_safe(it, tmp, &w->servers)
	{
		struct server *s = container_of(it, struct server, worker_node);
		if (s->ps.state == SV_ACTIVE && s->linked_at > 0)
			stats_note_max(&s->pool->stats.hold_max_usec, now - s->linked_at);
		/* query_timeout: PostgreSQL's own cancel, so the client gets its
		 * 57014 and keeps its connection. */
		if (query_timeout > 0 && s->ps.state == SV_ACTIVE && s->pending_rfq > 0 &&
		    !s->timeout_cancel_sent && now - s->busy_since >= query_timeout) {
			s->timeout_cancel_sent = true;
			stats_add(&s->pool->stats, ST_QUERY_TIMEOUT, 1);
			log_server(s, LOG_WARNING, "query_timeout reached after %.1fs: cancelling the query",
			           (double)(now - s->busy_since) / 1e6);
			server_send_cancel(s);
		}
		if (s->deadline == 0 || now < s->deadline)
			continue;
		s->deadline = 0;
		if (s->ps.state == SV_CONNECTING || s->ps.state == SV_LOGIN)
			server_close(s, "server_connect_timeout reached");
		else if (s->ps.state == SV_RESET)
			server_close(s, "drain after a departed client took too long");
		else if (s->ps.state == SV_TESTING) {
			log_server(s, LOG_WARNING,
			           "no answer to server_check_query within server_check_timeout=%.1fs: "
			           "the connection is dead; closing it",
			           (double)s->worker->gen->cfg->server_check_timeout / 1e6);
			server_close(s, "server_check_timeout reached");
		}
	}
}

/* --- timers --- */

static void worker_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	(void)fd;
	(void)what;
	int64_t now = clock_now_usec();
	clients_tick(w, now);
	servers_tick(w, now);
}

bool janitor_start_worker(struct worker *w)
{
	w->tick_ev = event_new(w->base, -1, EV_PERSIST, worker_tick_cb, w);
	struct timeval tv = {0, WORKER_TICK_USEC};
	return w->tick_ev != NULL && event_add(w->tick_ev, &tv) == 0;
}

static janitor_after_fn main_after;

static void main_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	struct cfg_gen *g = runtime_gen_acquire();
	int64_t now = clock_now_usec();
	struct list works;
	list_init(&works);
	pool_maintain_all(g->cfg, now, &works);
	struct list *n;
	while ((n = list_pop_head(&works)) != NULL) {
		struct pool_work *work = container_of(n, struct pool_work, node);
		server_carry_out(work, NULL);
		free(work);
	}
	report_tick(g->cfg, now);
	runtime_gen_release(g);
	if (main_after != NULL)
		main_after(now);
}

struct event *janitor_start_main(struct event_base *base, janitor_after_fn after)
{
	main_after = after;
	struct event *ev = event_new(base, -1, EV_PERSIST, main_tick_cb, NULL);
	struct timeval tv = {0, MAIN_TICK_USEC};
	if (ev != NULL && event_add(ev, &tv) != 0) {
		event_free(ev);
		ev = NULL;
	}
	return ev;
}
