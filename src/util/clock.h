/* util/clock.h — monotonic time in microseconds for timeouts and ages. */
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

#endif
