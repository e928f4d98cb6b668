/* listener.h — listening sockets: one SO_REUSEPORT TCP socket per worker
 * and listen address (the kernel spreads connections over workers), and
 * the unix socket on worker 0.
 * Never: accepts on a thread other than the worker that owns the socket. */
#ifndef PGS_LISTENER_H
#define PGS_LISTENER_H

#include <stdbool.h>

#include "config.h"

struct worker;

/* Creates w's listeners; err gets a one-line reason on failure. */
bool listener_setup(struct worker *w, const struct config *cfg, bool with_unix, char *err, unsigned err_size);
/* Apply cfg's TCP options (keepalive, TCP_USER_TIMEOUT) to w's TCP
 * listening sockets: connections accepted from now on inherit them. */
void listener_tune(struct worker *w, const struct config *cfg);
/* Remove the unix socket file at exit. */
void listener_cleanup(const struct config *cfg);

#endif
