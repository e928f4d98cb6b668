/* util/clock.c — the per-thread reading shared within one event callback
 * (clock.h). */
#include "util/clock.h"

_Thread_local int64_t clock_event_now;
