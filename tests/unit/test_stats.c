/* Pool counters: histogram buckets, cumulative reads, quantiles, and the
 * per-period averages behind SHOW STATS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "stats.h"

static void test_observation_lands_in_its_bucket(void **state)
{
	(void)state;
	struct pool_stats h = {0};
	assert_true(stats_init(&h, 0));
	stats_observe(&h, SH_WAIT, 100);      /* on the bound: in the 100us bucket */
	stats_observe(&h, SH_WAIT, 101);      /* just above: next bucket */
	stats_observe(&h, SH_WAIT, -5);       /* clock skew counts as 0 */
	stats_observe(&h, SH_WAIT, 90000000); /* beyond 60s: +Inf */
	stats_observe(&h, SH_HOLD, 7);        /* another histogram */
	uint64_t cum[STATS_HIST_BUCKETS], count, sum;
	stats_hist_read(&h, SH_WAIT, cum, &count, &sum);
	assert_int_equal(cum[0], 2);
	assert_int_equal(cum[1], 3);
	assert_int_equal(cum[STATS_HIST_BUCKETS - 2], 3);
	assert_int_equal(cum[STATS_HIST_BUCKETS - 1], 4);
	assert_int_equal(count, 4);
	assert_int_equal(sum, 100 + 101 + 0 + 90000000);
	stats_free(&h);
}

static void test_quantile_is_the_upper_bound_of_its_bucket(void **state)
{
	(void)state;
	struct pool_stats h = {0};
	assert_true(stats_init(&h, 0));
	assert_int_equal(stats_hist_quantile(&h, SH_HOLD, 0.99), 0);
	for (int i = 0; i < 98; i++)
		stats_observe(&h, SH_HOLD, 300); /* 500us bucket */
	stats_observe(&h, SH_HOLD, 2000000);     /* 5s bucket */
	stats_observe(&h, SH_HOLD, 2000000);
	assert_int_equal(stats_hist_quantile(&h, SH_HOLD, 0.5), 500);
	assert_int_equal(stats_hist_quantile(&h, SH_HOLD, 0.98), 500);
	assert_int_equal(stats_hist_quantile(&h, SH_HOLD, 0.99), 5000000);
	stats_free(&h);
}

static void test_thread_shares_are_summed(void **state)
{
	(void)state;
	struct pool_stats st = {0};
	assert_true(stats_init(&st, 2)); /* the main thread and two workers */
	stats_add(&st, ST_QUERY, 3);
	stats_set_thread_slot(2);
	stats_add(&st, ST_QUERY, 4);
	stats_set_thread_slot(0);
	assert_int_equal(stats_read(&st, ST_QUERY), 7);
	stats_free(&st);
}

static void test_rates_cover_the_last_full_period(void **state)
{
	(void)state;
	struct pool_stats st = {0};
	assert_true(stats_init(&st, 0));
	atomic_store(&st.period_start_usec, 1000000);
	stats_add(&st, ST_XACT, 50);
	assert_true(stats_rate(&st, ST_XACT) == 0); /* no full period yet */
	stats_roll_period(&st, 3000000);            /* 50 transactions in 2s */
	stats_add(&st, ST_XACT, 1000);              /* the running period does not count */
	assert_true(stats_rate(&st, ST_XACT) > 24.99 && stats_rate(&st, ST_XACT) < 25.01);
	assert_int_equal(stats_period_delta(&st, ST_XACT), 50);
	stats_add(&st, ST_XACT_USEC, 0);
	stats_roll_period(&st, 4000000); /* 1000 in 1s */
	assert_true(stats_rate(&st, ST_XACT) > 999.9 && stats_rate(&st, ST_XACT) < 1000.1);
	stats_free(&st);
}

static void test_average_per_event(void **state)
{
	(void)state;
	struct pool_stats st = {0};
	assert_true(stats_init(&st, 0));
	stats_roll_period(&st, 1000000);
	stats_add(&st, ST_QUERY, 4);
	stats_add(&st, ST_QUERY_USEC, 1000);
	stats_roll_period(&st, 2000000);
	assert_true(stats_avg_per(&st, ST_QUERY_USEC, ST_QUERY) == 250.0);
	assert_true(stats_avg_per(&st, ST_XACT_USEC, ST_XACT) == 0.0); /* nothing to divide by */
	stats_free(&st);
}

static void test_note_max_keeps_the_largest(void **state)
{
	(void)state;
	atomic_int_fast64_t slot = 0;
	stats_note_max(&slot, 5);
	stats_note_max(&slot, 3);
	stats_note_max(&slot, 9);
	assert_int_equal(atomic_load(&slot), 9);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_observation_lands_in_its_bucket),
	    cmocka_unit_test(test_quantile_is_the_upper_bound_of_its_bucket),
	    cmocka_unit_test(test_rates_cover_the_last_full_period),
	    cmocka_unit_test(test_average_per_event),
	    cmocka_unit_test(test_note_max_keeps_the_largest),
	    cmocka_unit_test(test_thread_shares_are_summed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
