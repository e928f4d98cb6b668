/* stats.h — a pool's counters and histograms, and the per-period averages
 * SHOW STATS reports.
 * Owns: struct pool_stats (embedded in each pool), the histogram bucket
 *       bounds, the period snapshot used for averages.
 * Exports: stats_add(), stats_observe(), stats_read(), stats_roll_period().
 * Never: takes a lock or a contended atomic. Each thread adds to its own
 *        share (on transaction boundaries and ticks, not per message);
 *        readers (admin console, HTTP, stats log) sum the shares. */
#ifndef PGS_STATS_H
#define PGS_STATS_H

#include <stdatomic.h>
#include <stdbool.h>
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

enum stat_hist { SH_WAIT, SH_HOLD, SH__COUNT };

/* One thread's share of a pool's figures. Only that thread writes it, with
 * plain (relaxed, non-RMW) stores, so the hot path never contends for a
 * cache line; readers sum the shares. */
struct stats_shard {
	uint64_t c[ST__COUNT];
	uint64_t bucket[SH__COUNT][STATS_HIST_BUCKETS]; /* not cumulative */
	uint64_t hist_count[SH__COUNT], hist_sum_usec[SH__COUNT];
} __attribute__((aligned(64)));

struct pool_stats {
	struct stats_shard *shard; /* one per writing thread: the main thread, then each worker */
	int n_shard;
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

/* Shares for the main thread and n_workers workers; false on OOM. */
bool stats_init(struct pool_stats *st, int n_workers);
void stats_free(struct pool_stats *st);
/* Which share this thread writes: 0 for the main thread (the default),
 * 1 + id for worker id. */
void stats_set_thread_slot(int slot);
/* How many worker threads write shares (set once at start, before any pool
 * exists); stats_init for a pool takes one share per worker plus the main thread's. */
void stats_set_worker_threads(int n_workers);
int stats_worker_threads(void);
extern _Thread_local int stats_thread_slot;

static inline struct stats_shard *stats_mine(struct pool_stats *st)
{
	return &st->shard[stats_thread_slot < st->n_shard ? stats_thread_slot : 0];
}

/* x += n by the only thread that writes x. */
static inline void stats_bump(uint64_t *x, uint64_t n)
{
	__atomic_store_n(x, __atomic_load_n(x, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

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
	stats_bump(&stats_mine(st)->c[k], n);
}

uint64_t stats_read(const struct pool_stats *st, enum stat_counter k);

void stats_observe(struct pool_stats *st, enum stat_hist h, int64_t usec);
/* A consistent-enough copy: buckets made cumulative for Prometheus. */
void stats_hist_read(const struct pool_stats *st, enum stat_hist h, uint64_t cumulative[STATS_HIST_BUCKETS],
                     uint64_t *count, uint64_t *sum_usec);
/* Quantile estimate (upper bound of the bucket holding it), usec; 0 when empty. */
int64_t stats_hist_quantile(const struct pool_stats *st, enum stat_hist h, double q);

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
