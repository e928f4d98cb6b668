/* stats.c — pool counters, histograms and per-period averages. */
#include "stats.h"

/* 100us .. 60s: a pooled transaction is usually well under a millisecond,
 * a wait or a hold near the top is the incident we are here to show. */
const int64_t stats_hist_bounds_usec[STATS_HIST_BUCKETS - 1] = {
	100, 500, 1000, 5000, 10000, 50000, 100000, 500000, 1000000, 5000000, 10000000, 30000000, 60000000,
};

#define RELAXED memory_order_relaxed

void stats_observe(struct stats_hist *h, int64_t usec)
{
	if (usec < 0)
		usec = 0;
	int i = 0;
	while (i < STATS_HIST_BUCKETS - 1 && usec > stats_hist_bounds_usec[i])
		i++;
	atomic_fetch_add_explicit(&h->bucket[i], 1, RELAXED);
	atomic_fetch_add_explicit(&h->count, 1, RELAXED);
	atomic_fetch_add_explicit(&h->sum_usec, (uint64_t)usec, RELAXED);
}

void stats_hist_read(const struct stats_hist *h, uint64_t cumulative[STATS_HIST_BUCKETS], uint64_t *count,
                     uint64_t *sum_usec)
{
	struct stats_hist *m = (struct stats_hist *)h;
	uint64_t run = 0;
	for (int i = 0; i < STATS_HIST_BUCKETS; i++) {
		run += atomic_load_explicit(&m->bucket[i], RELAXED);
		cumulative[i] = run;
	}
	/* Concurrent observers may have moved on: keep +Inf equal to the count
	 * so the exposition stays self-consistent. */
	*count = run;
	*sum_usec = atomic_load_explicit(&m->sum_usec, RELAXED);
}

int64_t stats_hist_quantile(const struct stats_hist *h, double q)
{
	uint64_t cum[STATS_HIST_BUCKETS], count, sum;
	stats_hist_read(h, cum, &count, &sum);
	if (count == 0)
		return 0;
	double want = q * (double)count;
	for (int i = 0; i < STATS_HIST_BUCKETS - 1; i++) {
		if ((double)cum[i] >= want)
			return stats_hist_bounds_usec[i];
	}
	return stats_hist_bounds_usec[STATS_HIST_BUCKETS - 2] * 2;
}

void stats_roll_period(struct pool_stats *st, int64_t now_usec)
{
	for (int k = 0; k < ST__COUNT; k++) {
		atomic_store_explicit(&st->period_prev[k], atomic_load_explicit(&st->period_start[k], RELAXED), RELAXED);
		atomic_store_explicit(&st->period_start[k], atomic_load_explicit(&st->c[k], RELAXED), RELAXED);
	}
	atomic_store_explicit(&st->period_prev_usec, atomic_load_explicit(&st->period_start_usec, RELAXED), RELAXED);
	atomic_store_explicit(&st->period_start_usec, now_usec, RELAXED);
}

uint64_t stats_period_delta(const struct pool_stats *st, enum stat_counter k)
{
	struct pool_stats *m = (struct pool_stats *)st;
	uint64_t a = atomic_load_explicit(&m->period_start[k], RELAXED);
	uint64_t b = atomic_load_explicit(&m->period_prev[k], RELAXED);
	return a >= b ? a - b : 0;
}

double stats_rate(const struct pool_stats *st, enum stat_counter k)
{
	struct pool_stats *m = (struct pool_stats *)st;
	int64_t t1 = atomic_load_explicit(&m->period_start_usec, RELAXED);
	int64_t t0 = atomic_load_explicit(&m->period_prev_usec, RELAXED);
	if (t0 == 0 || t1 <= t0)
		return 0; /* no full period yet, as PgBouncer shows */
	return (double)stats_period_delta(st, k) * 1e6 / (double)(t1 - t0);
}

double stats_avg_per(const struct pool_stats *st, enum stat_counter num, enum stat_counter den)
{
	uint64_t d = stats_period_delta(st, den);
	return d == 0 ? 0 : (double)stats_period_delta(st, num) / (double)d;
}
