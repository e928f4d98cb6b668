/* relay.h — forwarding between a linked client and server: incremental
 * framing on both sides, the few inspections pooling needs (ReadyForQuery,
 * ParameterStatus, ErrorResponse, Query/Sync/Parse counts), flow control.
 * Owns: nothing; works on the two connections' buffers.
 * Never: waits for a whole result; copies bytes except when pgsluice must
 *        put its own message between forwarded ones. */
#ifndef PGS_RELAY_H
#define PGS_RELAY_H

#include <stdbool.h>
#include <stdint.h>

struct client;
struct server;

/* The one place a client and a server are paired and unpaired; both run
 * on the worker that owns the pair (a server handed to a waiter on another
 * worker is linked when it arrives there). Unlinking observes the hold time. */
void relay_link(struct client *cl, struct server *s);
void relay_unlink(struct client *cl, struct server *s);

void relay_client_readable(struct client *cl);
void relay_client_writable(struct client *cl);
void relay_server_readable(struct server *s);
void relay_server_writable(struct server *s);
/* Frame and forward what the client has buffered (after a link). */
void relay_pump_client(struct client *cl);
/* Re-check whether the linked server can go back to the pool (a cancel finished). */
void relay_check_release(struct server *s);
/* Flush s's out buffer (our own queries) and the linked client's span. */
bool relay_flush_server(struct server *s);
#endif
