/* welcome.h — what a client is told when its login succeeds: one
 * ParameterStatus per setting the server reported, with the client's own
 * values for the tracked settings, and the tracked values it ends up with.
 * The answer depends only on (what the servers reported, what the client
 * asked), both shared lists, so each worker computes it once per distinct
 * pair and reuses it for every login that brings the same pair.
 * Owns: each worker's few cached answers (references to the lists).
 * Never: takes a lock of its own; a worker's cache is its alone. */
#ifndef PGS_WELCOME_H
#define PGS_WELCOME_H

#include <stdbool.h>

#include "proto/msg.h"
#include "util/shared.h"

struct welcome {
	const struct pset *reported; /* key: the servers' ParameterStatus values (held) */
	const struct pset *asked;    /* key: the client's tracked values before login (held) */
	const struct pset *tracked;  /* the client's tracked values after login (held) */
	struct msgbuf msgs;          /* the ParameterStatus messages */
	bool without_server; /* every value asked for (but application_name) was reported as spelled */
};

#define WELCOME_CACHE 4

struct welcome_cache {
	struct welcome slot[WELCOME_CACHE];
	unsigned next; /* round-robin replacement */
};

/* Compute the answer for these lists into w (references taken). false on OOM. */
bool welcome_build(struct welcome *w, const struct params *reported, const struct pset *asked);
void welcome_clear(struct welcome *w);

/* The cached answer for (reported, asked), computed on first use. NULL on OOM. */
const struct welcome *welcome_lookup(struct welcome_cache *c, const struct pset *reported,
                                     const struct pset *asked);
void welcome_cache_clear(struct welcome_cache *c);

#endif
