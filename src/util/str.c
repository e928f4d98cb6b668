/* util/str.c — bounded string helpers and the value parsers shared by the
 * configuration file, admin SET and anything else that reads a number, a
 * boolean or a duration from text. Pure functions; see str.h. */
#include "util/str.h"

#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *skip_space(const char *s)
{
	while (*s != '\0' && isspace((unsigned char)*s))
		s++;
	return s;
}

/* Reads one run of decimal digits into *out. False on no digits or overflow. */
static bool parse_digits(const char **sp, unsigned long long limit, unsigned long long *out)
{
	const char *s = *sp;
	unsigned long long v = 0;

	if (!isdigit((unsigned char)*s))
		return false;
	for (; isdigit((unsigned char)*s); s++) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (limit - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*sp = s;
	*out = v;
	return true;
}

bool str_parse_int(const char *s, long long *out)
{
	bool neg = false;
	unsigned long long v;

	if (s == NULL)
		return false;
	s = skip_space(s);
	if (*s == '+' || *s == '-')
		neg = (*s++ == '-');
	/* One more than LLONG_MAX is allowed only for the negative side. */
	if (!parse_digits(&s, neg ? (unsigned long long)LLONG_MAX + 1 : (unsigned long long)LLONG_MAX, &v))
		return false;
	if (*skip_space(s) != '\0')
		return false;
	if (neg)
		*out = v == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)v;
	else
		*out = (long long)v;
	return true;
}

static const struct {
	const char *name;
	pgs_usec_t usec;
} duration_units[] = {
    {"us", 1},
    {"ms", PGS_USEC_PER_MS},
    {"s", PGS_USEC_PER_SEC},
    {"sec", PGS_USEC_PER_SEC},
    {"min", 60 * PGS_USEC_PER_SEC},
    {"h", 3600 * PGS_USEC_PER_SEC},
    {"d", 86400 * PGS_USEC_PER_SEC},
    /* "m" is deliberately absent: minutes or milliseconds? Refusing it is
     * kinder than guessing. */
};

/* Digits after the decimal point that are taken into account; further
 * digits are checked but cannot change the result by a whole microsecond
 * for any unit we know. */
#define FRAC_DIGITS 9

bool str_parse_duration(const char *s, pgs_usec_t default_unit_usec, pgs_usec_t *out)
{
	unsigned long long whole, frac = 0, frac_scale = 1;
	pgs_usec_t unit = default_unit_usec;
	const char *p, *u;
	size_t ulen;

	if (s == NULL || default_unit_usec <= 0)
		return false;
	p = skip_space(s);
	if (!parse_digits(&p, (unsigned long long)INT64_MAX, &whole))
		return false;
	/* pgbouncer reads its time keys with strtod, so "0.5" is a valid
	 * pgbouncer.ini value; keep accepting it, without floating point. */
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return false;
		for (; isdigit((unsigned char)*p); p++) {
			if (frac_scale < 1000000000ULL) {
				frac = frac * 10 + (unsigned)(*p - '0');
				frac_scale *= 10;
			}
		}
	}
	p = skip_space(p);
	u = p;
	while (isalpha((unsigned char)*p))
		p++;
	ulen = (size_t)(p - u);
	if (*skip_space(p) != '\0')
		return false;
	if (ulen > 0) {
		size_t i;
		for (i = 0; i < sizeof(duration_units) / sizeof(duration_units[0]); i++) {
			if (strlen(duration_units[i].name) == ulen &&
			    strncasecmp(duration_units[i].name, u, ulen) == 0)
				break;
		}
		if (i == sizeof(duration_units) / sizeof(duration_units[0]))
			return false;
		unit = duration_units[i].usec;
	}

	long long v;
	if (__builtin_mul_overflow((long long)whole, (long long)unit, &v))
		return false;
	/* frac < 1e9 and unit <= 1 day (8.64e10 us): the product needs 128 bits. */
	unsigned __int128 fv = (unsigned __int128)frac * (unsigned long long)unit / frac_scale;
	if (__builtin_add_overflow(v, (long long)fv, &v))
		return false;
	*out = v;
	return true;
}

bool str_parse_bool(const char *s, bool *out)
{
	static const struct {
		const char *word;
		bool value;
	} words[] = {
	    {"1", true},   {"0", false},  {"on", true},   {"off", false},
	    {"yes", true}, {"no", false}, {"true", true}, {"false", false},
	};
	char buf[8];
	size_t n;

	if (s == NULL)
		return false;
	s = skip_space(s);
	n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	if (n == 0 || n >= sizeof(buf))
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if (strcasecmp(buf, words[i].word) == 0) {
			*out = words[i].value;
			return true;
		}
	}
	return false;
}

char *str_dup(const char *s)
{
	return s == NULL ? NULL : strdup(s);
}

char *str_printf(const char *fmt, ...)
{
	va_list ap;
	char *out = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&out, fmt, ap);
	va_end(ap);
	return n < 0 ? NULL : out;
}

size_t str_lcopy(char *dst, const char *src, size_t size)
{
	size_t len = strlen(src);

	if (size > 0) {
		size_t n = len < size - 1 ? len : size - 1;
		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}

int str_edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	int small[64];
	int *row = small;

	/* One row of the classic table is enough; keys are short, so the
	 * stack buffer nearly always suffices. */
	if (lb + 1 > sizeof(small) / sizeof(small[0])) {
		row = malloc((lb + 1) * sizeof(*row));
		if (row == NULL)
			return INT_MAX;
	}
	for (size_t j = 0; j <= lb; j++)
		row[j] = (int)j;
	for (size_t i = 1; i <= la; i++) {
		int diag = row[0]; /* the cell above-left of row[j] */
		row[0] = (int)i;
		for (size_t j = 1; j <= lb; j++) {
			int up = row[j];
			int best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	int d = row[lb];
	if (row != small)
		free(row);
	return d;
}

/* "1500" with scale 1000 → "1.5"; trailing zeros of the fraction dropped. */
static void format_scaled(long long v, long long scale, const char *unit, char *buf, size_t size)
{
	long long whole = v / scale, frac = v % scale;
	int digits = 0;

	if (frac == 0) {
		snprintf(buf, size, "%lld%s", whole, unit);
		return;
	}
	for (long long s = scale; s > 1; s /= 10)
		digits++;
	while (frac % 10 == 0) {
		frac /= 10;
		digits--;
	}
	snprintf(buf, size, "%lld.%0*lld%s", whole, digits, frac, unit);
}

void str_format_duration(pgs_usec_t v, char *buf, size_t size)
{
	const char *sign = "";
	char tmp[48];

	if (size == 0)
		return;
	if (v == 0) {
		str_lcopy(buf, "0", size);
		return;
	}
	if (v < 0) {
		sign = "-";
		/* INT64_MIN has no positive twin; it is never a real setting. */
		v = v == INT64_MIN ? INT64_MAX : -v;
	}
	if (v < PGS_USEC_PER_MS)
		snprintf(tmp, sizeof(tmp), "%lldus", (long long)v);
	else if (v < PGS_USEC_PER_SEC)
		format_scaled(v, PGS_USEC_PER_MS, "ms", tmp, sizeof(tmp));
	else
		format_scaled(v, PGS_USEC_PER_SEC, "s", tmp, sizeof(tmp));
	snprintf(buf, size, "%s%s", sign, tmp);
}
