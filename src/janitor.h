/* janitor.h — the periodic work: timeouts, lifetimes, pool upkeep, the
 * stats log. One timer per worker (its own clients and servers) and one on
 * the main loop (the pools).
 * Exports: janitor_start_worker(), janitor_start_main().
 * Never: touches another worker's connections; its worker timer runs on
 *        the worker's own loop. */
#ifndef PGS_JANITOR_H
#define PGS_JANITOR_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

struct worker;

/* The worker's timer, on its base (w->tick_ev, freed with the worker). */
bool janitor_start_worker(struct worker *w);
/* The main loop's timer (the caller frees it); after(now) runs at the end
 * of each round (main's drain check). NULL on OOM. */
typedef void (*janitor_after_fn)(int64_t now_usec);
struct event *janitor_start_main(struct event_base *base, janitor_after_fn after);

#endif
