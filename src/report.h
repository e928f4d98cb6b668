/* report.h — the main thread's periodic accounting: the averaging periods
 * behind SHOW STATS (stats_period) and one INFO line per pool every
 * stats_log_period, so a degradation can be drawn from the log alone.
 * Exports: report_tick(), called by the janitor.
 * Never: touches a connection; reads pools through pool_figures() and
 *        their atomic counters. */
#ifndef PGS_REPORT_H
#define PGS_REPORT_H

#include <stdint.h>

#include "config.h"

void report_tick(const struct config *cfg, int64_t now_usec);

#endif
