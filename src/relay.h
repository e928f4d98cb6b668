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
struct params;
struct pset;

/* A digest of a list's tracked parameters, recomputed only when the list
 * changed (see params.version). */
struct tracked_digest {
	uint64_t digest; /* 0: not computed */
	unsigned version;
};

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
/* Is this one of the parameters pgsluice keeps consistent per client
 * (client_encoding, DateStyle, TimeZone, ...)? */
bool relay_is_tracked(const char *name);
/* Equal digests: the two lists agree on every tracked parameter. */
uint64_t relay_tracked_digest(const struct params *p, struct tracked_digest *cache);
/* The same digest of a shared list (NULL: empty), kept in the list. */
uint64_t relay_tracked_digest_shared(const struct pset *ps);

#endif
