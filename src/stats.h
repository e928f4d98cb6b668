/* stats.h — a pool's counters and histograms, and the per-period averages
 * SHOW STATS reports.
 * Owns: struct pool_stats (embedded in each pool), the histogram bucket
 *       bounds, the period snapshot used for averages.
 * Exports: stats_add(), stats_observe(), stats_read(), stats_roll_period().
 * Never: takes a lock. Writers are worker threads adding relaxed atomics
 *        (on transaction boundaries and ticks, not per message); readers
 *        (admin console, HTTP, stats log) load them. */
#ifndef PGS_STATS_H
#define PGS_STATS_H

#include <stdatomic.h>
#include <stdint.h>

enum stat_counter {
	ST_XACT,             /* transactions finished (ReadyForQuery 'I' after work) */
	ST_QUERY,            /* queries answered (ReadyForQuery) */
	ST_RECV,             /* bytes received from clients */
	ST_SENT,             /* bytes sent to clients */
	ST_XACT_USEC,        /* time spent in transactions */
	ST_QUERY_USEC,       /* time servers were busy with queries */
	ST_WAIT_USEC,        /* time clients waited for a server */
	ST_ASSIGN,           /* server assignments (checkouts) */
	ST_WAIT_TIMEOUT,     /* query_wait_timeout reached */
	ST_QUERY_TIMEOUT,    /* query_timeout reached */
	ST_IDLE_TXN_TIMEOUT, /* idle_transaction_timeout reached */
	ST_CLIENT_IDLE_TIMEOUT,
	ST_LEAK_WARNING,     /* leak_warn_timeout reports */
	ST_REFUSED_QUEUE,    /* max_waiting_clients */
	ST_REFUSED_PAUSED,   /* refused while the database is disabled */
	ST_CONNECT_FAIL,     /* server connect or login failed */
	ST_DEAD_SERVER,      /* an idle server was found closed or readable */
	ST_RELEASE_ROLLBACK, /* ROLLBACK sent when a server was released */
	ST__COUNT
};

#define STATS_HIST_BUCKETS 14
/* Upper bounds in microseconds; the last bucket is +Inf. */
extern const int64_t stats_hist_bounds_usec[STATS_HIST_BUCKETS - 1];

struct stats_hist {
	atomic_uint_fast64_t bucket[STATS_HIST_BUCKETS]; /* not cumulative */
	atomic_uint_fast64_t count;
	atomic_uint_fast64_t sum_usec;
};

struct pool_stats {
	atomic_uint_fast64_t c[ST__COUNT];
	struct stats_hist wait;  /* how long clients waited for a server */
	struct stats_hist hold;  /* how long a server stayed linked to one client */
	/* totals at the start of the current and the previous averaging period;
	 * written by the main thread only, read anywhere */
	atomic_uint_fast64_t period_start[ST__COUNT];
	atomic_uint_fast64_t period_prev[ST__COUNT];
	atomic_int_fast64_t period_start_usec, period_prev_usec;
	/* the longest wait and hold seen since the stats log last took them
	 * (holds still running are fed in by the worker ticks) */
	atomic_int_fast64_t wait_max_usec, hold_max_usec;
	/* the stats log's own marks; main thread only */
	uint64_t log_xact;
	int64_t log_at_usec;
};

/* Raise *slot to v if v is larger. */
static inline void stats_note_max(atomic_int_fast64_t *slot, int64_t v)
{
	int_fast64_t cur = atomic_load_explicit(slot, memory_order_relaxed);
	while (v > cur && !atomic_compare_exchange_weak_explicit(slot, &cur, v, memory_order_relaxed,
	                                                         memory_order_relaxed)) {
	}
}

static inline void stats_add(struct pool_stats *st, enum stat_counter k, uint64_t n)
{
	atomic_fetch_add_explicit(&st->c[k], n, memory_order_relaxed);
}

static inline uint64_t stats_read(const struct pool_stats *st, enum stat_counter k)
{
	return atomic_load_explicit(&((struct pool_stats *)st)->c[k], memory_order_relaxed);
}

void stats_observe(struct stats_hist *h, int64_t usec);
/* A consistent-enough copy: buckets made cumulative for Prometheus. */
void stats_hist_read(const struct stats_hist *h, uint64_t cumulative[STATS_HIST_BUCKETS], uint64_t *count,
                     uint64_t *sum_usec);
/* Quantile estimate (upper bound of the bucket holding it), usec; 0 when empty. */
int64_t stats_hist_quantile(const struct stats_hist *h, double q);

/* Main thread, every stats_period: the last full period becomes the base of
 * the averages. */
void stats_roll_period(struct pool_stats *st, int64_t now_usec);
/* Per-second rate of a counter over the last full period (or since start). */
double stats_rate(const struct pool_stats *st, enum stat_counter k);
/* How much a counter grew over the last full period. */
uint64_t stats_period_delta(const struct pool_stats *st, enum stat_counter k);
/* Average of counter num per unit of counter den over the last period. */
double stats_avg_per(const struct pool_stats *st, enum stat_counter num, enum stat_counter den);

#endif
