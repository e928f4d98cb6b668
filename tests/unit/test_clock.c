/* test_clock.c — util/clock: within an event callback every stamp shares
 * the reading taken when it started; outside one, and after it, the clock
 * is read afresh; a nested bracket keeps the outer reading; each thread
 * has its own. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <unistd.h>

#include "util/clock.h"

static void test_outside_a_callback_the_clock_is_read(void **state)
{
	(void)state;
	int64_t a = clock_event_usec();
	usleep(2000);
	int64_t b = clock_event_usec();
	assert_true(b - a >= 2000);
}

static void test_one_reading_per_callback(void **state)
{
	(void)state;
	int64_t outer = clock_event_begin();
	assert_int_equal(outer, 0);
	int64_t first = clock_event_usec();
	usleep(2000);
	assert_int_equal(clock_event_usec(), first);
	/* The precise clock still moves on. */
	assert_true(clock_now_usec() - first >= 2000);

	int64_t inner = clock_event_begin();
	assert_int_equal(inner, first);
	assert_int_equal(clock_event_usec(), first);
	clock_event_end(inner);
	assert_int_equal(clock_event_usec(), first);

	clock_event_end(outer);
	assert_true(clock_event_usec() - first >= 2000);
}

static void *other_thread(void *arg)
{
	int64_t *seen = arg;
	*seen = clock_event_usec(); /* no bracket here: a fresh reading */
	return NULL;
}

static void test_each_thread_has_its_own_reading(void **state)
{
	(void)state;
	int64_t outer = clock_event_begin();
	int64_t mine = clock_event_usec();
	usleep(2000);
	int64_t seen = 0;
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, other_thread, &seen), 0);
	pthread_join(t, NULL);
	assert_true(seen - mine >= 2000);
	clock_event_end(outer);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_outside_a_callback_the_clock_is_read),
	    cmocka_unit_test(test_one_reading_per_callback),
	    cmocka_unit_test(test_each_thread_has_its_own_reading),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
