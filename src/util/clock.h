/* util/clock.h — monotonic time in microseconds for timeouts and ages, and
 * the wall clock for display. */
#ifndef PGS_UTIL_CLOCK_H
#define PGS_UTIL_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t clock_now_usec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Wall-clock time; only for showing a monotonic instant to people. */
static inline int64_t clock_wall_usec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* One reading of the clock shared by everything one event callback does.
 * A relayed transaction stamps seven instants (activity, query start,
 * checkout, link, answer, unlink, idle) within microseconds of each
 * other; reading the clock once per callback instead of seven times per
 * transaction saved about 3% of the pooler's instructions (callgrind).
 * Outside a callback (clock_event_begin not in force) it reads the clock. */
extern _Thread_local int64_t clock_event_now;

static inline int64_t clock_event_usec(void)
{
	return clock_event_now != 0 ? clock_event_now : clock_now_usec();
}

/* Bracket a callback: returns what to pass to clock_event_end. A nested
 * bracket keeps the outer reading. */
static inline int64_t clock_event_begin(void)
{
	int64_t outer = clock_event_now;
	if (outer == 0)
		clock_event_now = clock_now_usec();
	return outer;
}

static inline void clock_event_end(int64_t outer)
{
	clock_event_now = outer;
}

#endif
