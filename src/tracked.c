/* tracked.c — the startup parameters pgsluice keeps consistent per client
 * (client_encoding, DateStyle, TimeZone, ...) and digests that say whether
 * two lists agree on them. */
#include "tracked.h"

#include <stdatomic.h>
#include <string.h>
#include <strings.h>

#include "util/shared.h"

static const char *const tracked_names[] = {
    "client_encoding",  "DateStyle", "TimeZone", "IntervalStyle", "standard_conforming_strings",
    "application_name", NULL};

static uint64_t tracked_digest_of(const struct params *p)
{
	uint64_t h =
	    1469598103934665603ull; /* FNV-1a over name=value of each tracked name, in a fixed order */
	for (int i = 0; tracked_names[i]; i++) {
		const char *v = params_get(p, tracked_names[i]);
		const char *parts[3] = {tracked_names[i], "=", v != NULL ? v : "\x01(unset)"};
		for (int k = 0; k < 3; k++)
			for (const unsigned char *c = (const unsigned char *)parts[k]; *c; c++)
				h = (h ^ *c) * 1099511628211ull;
		h = (h ^ 0x1e) * 1099511628211ull;
	}
	return h != 0 ? h : 1;
}

uint64_t tracked_digest(const struct params *p, struct tracked_digest *cache)
{
	if (cache->digest == 0 || cache->version != p->version) {
		cache->digest = tracked_digest_of(p);
		cache->version = p->version;
	}
	return cache->digest;
}

uint64_t tracked_digest_shared(const struct pset *ps)
{
	if (ps == NULL)
		return tracked_digest_of(pset_params(NULL));
	/* Whichever thread asks first computes it; the value is the same for all. */
	uint64_t d = atomic_load_explicit(&ps->digest, memory_order_relaxed);
	if (d == 0) {
		d = tracked_digest_of(&ps->params);
		atomic_store_explicit(&((struct pset *)ps)->digest, d, memory_order_relaxed);
	}
	return d;
}

bool tracked_param(const char *name)
{
	for (int i = 0; tracked_names[i]; i++)
		if (strcasecmp(tracked_names[i], name) == 0)
			return true;
	return false;
}
