/* tracked.h — the parameters pgsluice keeps consistent per client: a
 * client's values are brought to whichever server it is linked to.
 * Exports: tracked_param(), tracked_digest(), tracked_digest_shared().
 * Never: allocates; a digest is recomputed only when its list changed. */
#ifndef PGS_TRACKED_H
#define PGS_TRACKED_H

#include <stdbool.h>
#include <stdint.h>

struct params;
struct pset;

/* A digest of a list's tracked parameters, recomputed only when the list
 * changed (see params.version). */
struct tracked_digest {
	uint64_t digest; /* 0: not computed */
	unsigned version;
};

/* Is this one of the parameters pgsluice keeps consistent per client
 * (client_encoding, DateStyle, TimeZone, ...)? */
bool tracked_param(const char *name);
/* Equal digests: the two lists agree on every tracked parameter. */
uint64_t tracked_digest(const struct params *p, struct tracked_digest *cache);
/* The same digest of a shared list (NULL: empty), kept in the list. */
uint64_t tracked_digest_shared(const struct pset *ps);

#endif
