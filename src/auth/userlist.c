/* auth/userlist.c — loads the auth_file (PgBouncer's userlist.txt format)
 * into a sorted array searched by exact user name.
 *
 * Format, one entry a line:   "user" "secret" [anything else is ignored]
 * A doubled "" inside quotes is one quote. Blank lines and lines starting
 * with ';' or '#' (after optional spaces) are skipped. A user listed twice
 * keeps its last secret, as in PgBouncer. Any other line is an error, so a
 * typo never silently locks a user out. */
#include "auth/userlist.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct userlist_entry {
	char *user;   /* owned */
	char *secret; /* owned; wiped before it is freed */
	int seq;      /* load order, so the last duplicate can win after sorting */
};

struct userlist {
	struct userlist_entry *items; /* owned; sorted by user after load */
	int n;
	int cap;
};

__attribute__((format(printf, 3, 4))) static void userlist_err(char *err, unsigned err_size, const char *fmt,
                                                               ...)
{
	if (err == NULL || err_size == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, err_size, fmt, ap);
	va_end(ap);
}

static void userlist_wipe_free(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static const char *userlist_skip_space(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* Reads the "..." token whose opening quote is at p into *out (malloc'd,
 * "" unescaped). Returns the position after the closing quote, or NULL with
 * *why set. */
static const char *userlist_quoted(const char *p, char **out, const char **why)
{
	*out = NULL;
	p++;
	/* The unescaped token is never longer than the rest of the line. */
	char *buf = malloc(strlen(p) + 1);
	if (buf == NULL) {
		*why = "out of memory";
		return NULL;
	}
	size_t n = 0;
	for (;;) {
		if (*p == '\0') {
			*why = "unterminated quoted string";
			buf[n] = '\0';
			userlist_wipe_free(buf);
			return NULL;
		}
		if (*p == '"') {
			if (p[1] != '"')
				break;
			p++; /* "" → one quote */
		}
		buf[n++] = *p++;
	}
	buf[n] = '\0';
	*out = buf;
	return p + 1;
}

static bool userlist_add(struct userlist *u, char *user, char *secret)
{
	if (u->n == u->cap) {
		int cap = u->cap == 0 ? 16 : u->cap * 2;
		struct userlist_entry *items = realloc(u->items, (size_t)cap * sizeof(*items));
		if (items == NULL)
			return false;
		u->items = items;
		u->cap = cap;
	}
	u->items[u->n] = (struct userlist_entry){.user = user, .secret = secret, .seq = u->n};
	u->n++;
	return true;
}

/* Parses one line; false with *why for a malformed one. A skipped line
 * (blank, comment) returns true with *user NULL. */
static bool userlist_parse_line(const char *line, char **user, char **secret, const char **why)
{
	*user = NULL;
	*secret = NULL;
	const char *p = userlist_skip_space(line);
	if (*p == '\0' || *p == ';' || *p == '#')
		return true;
	if (*p != '"') {
		*why = "expected a double-quoted user name";
		return false;
	}
	if ((p = userlist_quoted(p, user, why)) == NULL)
		return false;
	if (**user == '\0') {
		*why = "empty user name";
		goto fail;
	}
	const char *q = userlist_skip_space(p);
	if (q == p) {
		*why = "expected whitespace and a double-quoted password after the user name";
		goto fail;
	}
	if (*q != '"') {
		*why = "expected a double-quoted password after the user name";
		goto fail;
	}
	if ((p = userlist_quoted(q, secret, why)) == NULL)
		goto fail;
	/* PgBouncer ignores further fields; so do we, but they must be separated. */
	if (*p != '\0' && *p != ' ' && *p != '\t') {
		*why = "unexpected text right after the closing quote of the password";
		goto fail;
	}
	return true;
fail:
	userlist_wipe_free(*user);
	userlist_wipe_free(*secret);
	*user = NULL;
	*secret = NULL;
	return false;
}

static int userlist_cmp(const void *a, const void *b)
{
	const struct userlist_entry *x = a, *y = b;
	int c = strcmp(x->user, y->user);
	if (c != 0)
		return c;
	return (x->seq > y->seq) - (x->seq < y->seq);
}

/* Sort, then keep only the last-loaded entry of each user. */
static void userlist_finish(struct userlist *u)
{
	if (u->n == 0)
		return;
	qsort(u->items, (size_t)u->n, sizeof(u->items[0]), userlist_cmp);
	int out = 0;
	for (int i = 0; i < u->n; i++) {
		if (i + 1 < u->n && strcmp(u->items[i].user, u->items[i + 1].user) == 0) {
			userlist_wipe_free(u->items[i].user);
			userlist_wipe_free(u->items[i].secret);
			continue;
		}
		u->items[out++] = u->items[i];
	}
	u->n = out;
}

struct userlist *userlist_load(const char *path, char *err, unsigned err_size)
{
	struct userlist *u = NULL;
	FILE *f = NULL;
	char *line = NULL;
	size_t line_cap = 0;
	int lineno = 0;
	bool ok = false;

	if (path == NULL) {
		userlist_err(err, err_size, "no auth_file given");
		goto done;
	}
	if ((f = fopen(path, "r")) == NULL) {
		userlist_err(err, err_size, "%s: could not open auth_file: %s", path, strerror(errno));
		goto done;
	}
	if ((u = calloc(1, sizeof(*u))) == NULL) {
		userlist_err(err, err_size, "%s: out of memory", path);
		goto done;
	}
	for (;;) {
		errno = 0;
		ssize_t len = getline(&line, &line_cap, f);
		if (len < 0) {
			if (ferror(f)) {
				userlist_err(err, err_size, "%s:%d: read error: %s", path, lineno + 1,
				             strerror(errno != 0 ? errno : EIO));
				goto done;
			}
			break;
		}
		lineno++;
		if (memchr(line, '\0', (size_t)len) != NULL) {
			userlist_err(err, err_size, "%s:%d: line contains a NUL byte", path, lineno);
			goto done;
		}
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		const char *text = line;
		/* Files saved by some Windows editors start with a UTF-8 BOM. */
		if (lineno == 1 && strncmp(text, "\xef\xbb\xbf", 3) == 0)
			text += 3;

		char *user, *secret;
		const char *why = NULL;
		if (!userlist_parse_line(text, &user, &secret, &why)) {
			userlist_err(err, err_size, "%s:%d: %s", path, lineno, why);
			goto done;
		}
		if (user == NULL)
			continue;
		if (!userlist_add(u, user, secret)) {
			userlist_wipe_free(user);
			userlist_wipe_free(secret);
			userlist_err(err, err_size, "%s:%d: out of memory", path, lineno);
			goto done;
		}
	}
	userlist_finish(u);
	ok = true;
done:
	/* The buffer held secrets: wipe its whole capacity, not just the last line. */
	if (line != NULL)
		explicit_bzero(line, line_cap);
	free(line);
	if (f != NULL)
		fclose(f);
	if (!ok) {
		userlist_free(u);
		u = NULL;
	}
	return u;
}

void userlist_free(struct userlist *u)
{
	if (u == NULL)
		return;
	for (int i = 0; i < u->n; i++) {
		userlist_wipe_free(u->items[i].user);
		userlist_wipe_free(u->items[i].secret);
	}
	free(u->items);
	free(u);
}

const char *userlist_find(const struct userlist *u, const char *user)
{
	if (u == NULL || user == NULL || u->n == 0)
		return NULL;
	int lo = 0, hi = u->n - 1;
	while (lo <= hi) {
		int mid = lo + (hi - lo) / 2;
		int c = strcmp(user, u->items[mid].user);
		if (c == 0)
			return u->items[mid].secret;
		if (c < 0)
			hi = mid - 1;
		else
			lo = mid + 1;
	}
	return NULL;
}

int userlist_count(const struct userlist *u)
{
	return u == NULL ? 0 : u->n;
}

const char *userlist_first_user(const struct userlist *u)
{
	const struct userlist_entry *first = NULL;
	for (int i = 0; u != NULL && i < u->n; i++)
		if (first == NULL || u->items[i].seq < first->seq)
			first = &u->items[i];
	return first != NULL ? first->user : NULL;
}
