/* util/shared.h — values many connections hold alike, stored once: user and
 * database names, application names and the tracked-parameter lists of
 * clients. Each distinct value is kept once in a process-wide table and
 * counted by reference; the last holder to let go frees it.
 * Owns: the table and every shared value.
 * Exports: shared_str*, pset_*; safe from any thread (one mutex, taken at
 *   login, logout and when a client changes a tracked setting; never per
 *   message).
 * Never: lets a holder change a value: a new value is a new entry. */
#ifndef PGS_UTIL_SHARED_H
#define PGS_UTIL_SHARED_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/params.h"

/* A shared copy of s (NUL-terminated); NULL when s is NULL or on OOM. */
const char *shared_str(const char *s);
/* Let go of a value shared_str() returned; NULL is ignored. */
void shared_str_put(const char *s);

/* An immutable parameter list. NULL stands for the empty list. */
struct pset {
	struct params params;    /* read-only view; its strings live in the entry */
	_Atomic uint64_t digest; /* for the holder's use (relay's tracked digest); 0: not computed */
};

/* The shared list equal to p (same names, values and order) in *out, with
 * one reference taken; an empty p gives NULL. false on OOM (*out untouched). */
bool pset_intern(const struct params *p, const struct pset **out);
void pset_put(const struct pset *ps);
/* One more reference to a list the caller holds (or knows to be held). */
const struct pset *pset_ref(const struct pset *ps);
/* The list's entries; an empty list for NULL. */
const struct params *pset_params(const struct pset *ps);
/* *slot becomes the shared list equal to p; the old one is let go. */
bool pset_replace(const struct pset **slot, const struct params *p);
/* *slot becomes its list with name set to value. */
bool pset_set(const struct pset **slot, const char *name, const char *value);

/* Distinct values held now (for tests and SHOW MEM-like figures). */
int shared_count(void);

#endif
