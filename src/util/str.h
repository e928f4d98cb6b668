/* util/str.h — bounded string helpers and unit-aware value parsing.
 * Owns: nothing (pure functions).
 * Exports: str_parse_duration(), str_parse_int(), str_parse_bool(), str_dup(), str_lcopy().
 * Never: allocates except str_dup/str_printf, which return NULL on failure. */
#ifndef PGS_UTIL_STR_H
#define PGS_UTIL_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Microseconds; every duration in pgsluice is held in this unit. */
typedef int64_t pgs_usec_t;
#define PGS_USEC_PER_MS 1000LL
#define PGS_USEC_PER_SEC 1000000LL

/* "500ms", "10s", "5min", "2h", "1d", "250us"; a bare number is in
 * default_unit_usec (seconds for pgbouncer keys). Returns false on garbage,
 * negative values or overflow. */
bool str_parse_duration(const char *s, pgs_usec_t default_unit_usec, pgs_usec_t *out);

/* Whole decimal integer, optional sign, surrounding spaces allowed. */
bool str_parse_int(const char *s, long long *out);

/* 1/0, on/off, yes/no, true/false (case-insensitive). */
bool str_parse_bool(const char *s, bool *out);

/* strdup that tolerates NULL (returns NULL). */
char *str_dup(const char *s);

/* malloc'd printf; NULL on failure. */
char *str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* strlcpy: always NUL-terminates when size > 0; returns strlen(src). */
size_t str_lcopy(char *dst, const char *src, size_t size);

/* Levenshtein distance, for "did you mean" hints. */
int str_edit_distance(const char *a, const char *b);

/* Format a duration compactly for messages and SHOW CONFIG: "1.5s", "500ms", "0". */
void str_format_duration(pgs_usec_t v, char *buf, size_t size);

#endif
