/* stats.c — pool counters, histograms and per-period averages. */
#include "stats.h"

#include <stdlib.h>
#include <string.h>

/* 100us .. 60s: a pooled transaction is usually well under a millisecond,
 * a wait or a hold near the top is the incident we are here to show. */
const int64_t stats_hist_bounds_usec[STATS_HIST_BUCKETS - 1] = {
    100, 500, 1000, 5000, 10000, 50000, 100000, 500000, 1000000, 5000000, 10000000, 30000000, 60000000,
};

#define RELAXED memory_order_relaxed

_Thread_local int stats_thread_slot;

void stats_set_thread_slot(int slot)
{
	stats_thread_slot = slot;
}

static int worker_threads;

void stats_set_worker_threads(int n_workers)
{
	worker_threads = n_workers;
}

int stats_worker_threads(void)
{
	return worker_threads;
}

bool stats_init(struct pool_stats *st, int n_workers)
{
	int n = n_workers > 0 ? n_workers + 1 : 1;
	st->shard = aligned_alloc(64, (size_t)n * sizeof(struct stats_shard));
	if (st->shard == NULL)
		return false;
	memset(st->shard, 0, (size_t)n * sizeof(struct stats_shard));
	st->n_shard = n;
	return true;
}

void stats_free(struct pool_stats *st)
{
	free(st->shard);
	st->shard = NULL;
	st->n_shard = 0;
}

static uint64_t load(const uint64_t *x)
{
	return __atomic_load_n(x, __ATOMIC_RELAXED);
}

uint64_t stats_read(const struct pool_stats *st, enum stat_counter k)
{
	uint64_t sum = 0;
	for (int i = 0; i < st->n_shard; i++)
		sum += load(&st->shard[i].c[k]);
	return sum;
}

void stats_observe(struct pool_stats *st, enum stat_hist h, int64_t usec)
{
	if (usec < 0)
		usec = 0;
	int i = 0;
	while (i < STATS_HIST_BUCKETS - 1 && usec > stats_hist_bounds_usec[i])
		i++;
	struct stats_shard *sh = stats_mine(st);
	stats_bump(&sh->bucket[h][i], 1);
	stats_bump(&sh->hist_count[h], 1);
	stats_bump(&sh->hist_sum_usec[h], (uint64_t)usec);
}

void stats_hist_read(const struct pool_stats *st, enum stat_hist h, uint64_t cumulative[STATS_HIST_BUCKETS],
                     uint64_t *count, uint64_t *sum_usec)
{
	uint64_t run = 0, sum = 0;
	for (int b = 0; b < STATS_HIST_BUCKETS; b++) {
		for (int i = 0; i < st->n_shard; i++)
			run += load(&st->shard[i].bucket[h][b]);
		cumulative[b] = run;
	}
	for (int i = 0; i < st->n_shard; i++)
		sum += load(&st->shard[i].hist_sum_usec[h]);
	/* Observers may have moved on meanwhile: keep +Inf equal to the count
	 * so the exposition stays self-consistent. */
	*count = run;
	*sum_usec = sum;
}

int64_t stats_hist_quantile(const struct pool_stats *st, enum stat_hist h, double q)
{
	uint64_t cum[STATS_HIST_BUCKETS], count, sum;
	stats_hist_read(st, h, cum, &count, &sum);
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
		atomic_store_explicit(&st->period_prev[k],
		                      atomic_load_explicit(&st->period_start[k], RELAXED), RELAXED);
		atomic_store_explicit(&st->period_start[k], stats_read(st, (enum stat_counter)k), RELAXED);
	}
	atomic_store_explicit(&st->period_prev_usec, atomic_load_explicit(&st->period_start_usec, RELAXED),
	                      RELAXED);
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
