/* report.c — averaging periods and the stats log line. */
#include "report.h"

#include "log.h"
#include "pool.h"
#include "stats.h"

static int64_t last_roll, last_log;

static void roll(struct pool *p, void *arg)
{
	stats_roll_period(&p->stats, *(const int64_t *)arg);
}

static void log_pool(struct pool *p, void *arg)
{
	int64_t now = *(const int64_t *)arg;
	struct pool_figures f;
	pool_figures(p, now, &f);
	struct pool_stats *st = &p->stats;
	uint64_t xact = stats_read(st, ST_XACT);
	double secs = st->log_at_usec > 0 ? (double)(now - st->log_at_usec) / 1e6 : 0;
	double tps = secs > 0 ? (double)(xact - st->log_xact) / secs : 0;
	st->log_xact = xact;
	st->log_at_usec = now;
	int64_t wait_max = atomic_exchange_explicit(&st->wait_max_usec, 0, memory_order_relaxed);
	int64_t hold_max = atomic_exchange_explicit(&st->hold_max_usec, 0, memory_order_relaxed);
	if (f.maxwait_usec > wait_max)
		wait_max = f.maxwait_usec;
	log_msg(LOG_INFO,
	        "stats %s: clients active=%d idle=%d waiting=%d; servers active=%d idle=%d used=%d login=%d "
	        "pool_size=%d; max_wait=%.3fs xact/s=%.1f worst_hold=%.3fs; wait_timeouts=%llu "
	        "leak_warnings=%llu%s%s",
	        p->name, f.cl_active, f.cl_idle, f.cl_waiting, f.sv_active, f.sv_idle, f.sv_used, f.sv_login,
	        f.pool_size, (double)wait_max / 1e6, tps, (double)hold_max / 1e6,
	        (unsigned long long)stats_read(st, ST_WAIT_TIMEOUT),
	        (unsigned long long)stats_read(st, ST_LEAK_WARNING),
	        pool_figures_unreachable(&f) ? "; server unreachable: " : "",
	        pool_figures_unreachable(&f) ? f.last_error : "");
}

void report_tick(const struct config *cfg, int64_t now_usec)
{
	if (last_roll == 0)
		last_roll = last_log = now_usec;
	if (cfg->stats_period > 0 && now_usec - last_roll >= cfg->stats_period) {
		last_roll = now_usec;
		pool_for_each(roll, &now_usec);
	}
	if (cfg->stats_log_period > 0 && now_usec - last_log >= cfg->stats_log_period) {
		last_log = now_usec;
		pool_for_each(log_pool, &now_usec);
	}
}
