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

#endif
