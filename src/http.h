/* http.h — the HTTP endpoint (http_addr:http_port): /metrics, /health,
 * /pools. Runs on the main thread's event loop.
 * Exports: http_start(), http_stop().
 * Never: touches a connection or waits for a worker. */
#ifndef PGS_HTTP_H
#define PGS_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>

#include "config.h"

/* Listen when cfg->http_port is not 0; false with err filled when the
 * address cannot be bound. */
bool http_start(struct event_base *base, const struct config *cfg, char *err, size_t err_size);
void http_stop(void);

#endif
