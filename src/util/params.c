/* util/params.c — ordered name=value lists for startup parameters and
 * ParameterStatus values, and the canonical text that pools are keyed by.
 * Names compare case-insensitively (ASCII only, as GUC names do, and
 * independent of the process locale); values compare exactly. */
#include "util/params.h"

#include <stdlib.h>
#include <string.h>

#include "util/str.h"

static int ascii_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

static int ascii_casecmp(const char *a, const char *b)
{
	for (;; a++, b++) {
		int ca = ascii_lower((unsigned char)*a), cb = ascii_lower((unsigned char)*b);
		if (ca != cb || ca == '\0')
			return ca - cb;
	}
}

static int params_find(const struct params *p, const char *name)
{
	for (int i = 0; i < p->n; i++) {
		if (ascii_casecmp(p->items[i].name, name) == 0)
			return i;
	}
	return -1;
}

/* One allocation holds "name\0value\0": half the small blocks a list of
 * parameters would otherwise cost (every client keeps one). */
static bool param_fill(struct param *dst, const char *name, const char *value)
{
	size_t nl = strlen(name), vl = strlen(value);
	char *block = malloc(nl + vl + 2);
	if (block == NULL)
		return false;
	memcpy(block, name, nl + 1);
	memcpy(block + nl + 1, value, vl + 1);
	dst->name = block;
	dst->value = block + nl + 1;
	return true;
}

bool params_set(struct params *p, const char *name, const char *value)
{
	int i = params_find(p, name);
	if (value == NULL)
		value = "";
	if (i >= 0) {
		/* Replace in place: the position a name first appeared at (and its
		 * spelling) is kept. */
		struct param fresh;
		if (!param_fill(&fresh, p->items[i].name, value))
			return false;
		free(p->items[i].name);
		p->items[i] = fresh;
		p->version++;
		return true;
	}
	if (p->n == p->cap) {
		int cap = p->cap > 0 ? p->cap * 2 : 4;
		struct param *items = realloc(p->items, (size_t)cap * sizeof(*items));
		if (items == NULL)
			return false;
		p->items = items;
		p->cap = cap;
	}
	if (!param_fill(&p->items[p->n], name, value))
		return false;
	p->n++;
	p->version++;
	return true;
}

const char *params_get(const struct params *p, const char *name)
{
	int i = params_find(p, name);
	return i >= 0 ? p->items[i].value : NULL;
}

bool params_remove(struct params *p, const char *name)
{
	int i = params_find(p, name);

	if (i < 0)
		return false;
	free(p->items[i].name); /* the value shares its block */
	memmove(&p->items[i], &p->items[i + 1], (size_t)(p->n - i - 1) * sizeof(p->items[0]));
	p->n--;
	p->version++;
	return true;
}

void params_clear(struct params *p)
{
	for (int i = 0; i < p->n; i++)
		free(p->items[i].name); /* the value shares its block */
	free(p->items);
	p->items = NULL;
	p->n = 0;
	p->cap = 0;
	p->version++;
}

bool params_copy(struct params *dst, const struct params *src)
{
	params_clear(dst);
	for (int i = 0; i < src->n; i++) {
		if (!params_set(dst, src->items[i].name, src->items[i].value)) {
			params_clear(dst); /* never leave a half copy behind */
			return false;
		}
	}
	return true;
}

bool params_equal(const struct params *a, const struct params *b)
{
	/* Names are unique within a list (params_set replaces), so equal
	 * counts plus every name of a found in b with the same value is
	 * set equality. */
	if (a->n != b->n)
		return false;
	for (int i = 0; i < a->n; i++) {
		const char *v = params_get(b, a->items[i].name);
		if (v == NULL || strcmp(v, a->items[i].value) != 0)
			return false;
	}
	return true;
}

static int cmp_by_name(const void *x, const void *y)
{
	const struct param *a = *(const struct param *const *)x;
	const struct param *b = *(const struct param *const *)y;
	return ascii_casecmp(a->name, b->name);
}

#define CANON_SEP '\x1f'

/* Length of s once escaped; with out != NULL also writes it. The escape
 * keeps the text unambiguous even when a client sends a value holding '='
 * or the separator, so equal text really means equal lists. */
static size_t put_escaped(char *out, const char *s, bool lower)
{
	size_t n = 0;
	for (; *s != '\0'; s++) {
		char c = *s;
		if (c == '\\' || c == '=' || c == CANON_SEP) {
			if (out != NULL)
				out[n] = '\\';
			n++;
		}
		if (out != NULL)
			out[n] = lower ? (char)ascii_lower((unsigned char)c) : c;
		n++;
	}
	return n;
}

char *params_canonical(const struct params *p)
{
	const struct param **sorted = NULL;
	size_t len = 1;
	char *out = NULL;

	if (p->n > 0) {
		sorted = malloc((size_t)p->n * sizeof(*sorted));
		if (sorted == NULL)
			return NULL;
	}
	for (int i = 0; i < p->n; i++) {
		sorted[i] = &p->items[i];
		len += put_escaped(NULL, p->items[i].name, true) + 1 +
		       put_escaped(NULL, p->items[i].value, false) + 1;
	}
	if (p->n > 1)
		qsort(sorted, (size_t)p->n, sizeof(*sorted), cmp_by_name);
	out = malloc(len);
	if (out != NULL) {
		size_t pos = 0;
		for (int i = 0; i < p->n; i++) {
			if (i > 0)
				out[pos++] = CANON_SEP;
			pos += put_escaped(out + pos, sorted[i]->name, true);
			out[pos++] = '=';
			pos += put_escaped(out + pos, sorted[i]->value, false);
		}
		out[pos] = '\0';
	}
	free(sorted);
	return out;
}
