/* util/params.h — an ordered list of name=value pairs (startup parameters,
 * server ParameterStatus values).
 * Owns: its copies of every name and value.
 * Exports: params_set/get/remove, params_canonical() for pool keys.
 * Never: interprets the values. */
#ifndef PGS_UTIL_PARAMS_H
#define PGS_UTIL_PARAMS_H

#include <stdbool.h>
#include <stddef.h>

struct param {
	char *name;  /* owned: one block "name\0value\0" */
	char *value; /* points into name's block */
};

struct params {
	struct param *items; /* owned array */
	int n;
	int cap;
	unsigned version; /* changes with every change of the list, so a digest can be cached */
};

#define PARAMS_INIT                                                                                          \
	{                                                                                                    \
		NULL, 0, 0, 0                                                                                \
	}

/* Names compare case-insensitively (GUC names do). Returns false on OOM. */
bool params_set(struct params *p, const char *name, const char *value);
const char *params_get(const struct params *p, const char *name);
bool params_remove(struct params *p, const char *name);
void params_clear(struct params *p);
bool params_copy(struct params *dst, const struct params *src);
/* Same set of names with the same values (order ignored). */
bool params_equal(const struct params *a, const struct params *b);
/* A malloc'd canonical text "name=value\0name=value..." sorted by
 * lower-cased name, with '\x1f' separators; "" for an empty list. Two lists
 * get the same text exactly when params_equal() says so. NULL on OOM. */
char *params_canonical(const struct params *p);

#endif
