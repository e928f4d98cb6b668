/* proto/startup.c — the first packet a client sends (StartupMessage,
 * SSLRequest, GSSENCRequest or CancelRequest), and the libpq "options"
 * parameter split into GUC settings the way a PostgreSQL backend does it.
 *
 * The packet has no type byte, so its length word is all there is to go
 * on: it is checked against STARTUP_MAX_LEN as soon as four bytes are in,
 * before we wait for (or buffer) the rest, and nothing is read past it. */
#include "proto/startup.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/str.h"

static void startup_set_err(char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void startup_set_err(char *err, size_t err_size, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || err_size == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, err_size, fmt, ap);
	va_end(ap);
}

static uint32_t startup_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void startup_init(struct startup *s)
{
	static const struct params empty_params = PARAMS_INIT;

	memset(s, 0, sizeof(*s));
	s->params = empty_params;
}

void startup_free(struct startup *s)
{
	free(s->user);
	free(s->database);
	free(s->options);
	free(s->replication);
	params_clear(&s->params);
	startup_init(s);
}

/* Replaces *field: a repeated "user" wins the second time, as it does in
 * PostgreSQL. */
static bool startup_take(char **field, const char *value)
{
	char *v = str_dup(value);

	if (v == NULL)
		return false;
	free(*field);
	*field = v;
	return true;
}

/* Name/value pairs from offset 8 to len, which must end with the empty
 * name that terminates the list, exactly on the last byte. */
static enum startup_result startup_parse_pairs(const uint8_t *p, uint32_t len, struct startup *out, char *err,
                                               size_t err_size)
{
	size_t off = 8;

	for (;;) {
		const uint8_t *name_end, *value_end;
		const char *name, *value;
		bool ok;

		if (off >= len)
			goto layout; /* ran out before the terminator: odd pairs or no final NUL */
		if (p[off] == '\0') {
			if (off != (size_t)len - 1)
				goto layout; /* bytes after the terminator */
			return STARTUP_OK;
		}
		/* memchr bounded by len: the client's strings are not trusted to
		 * be terminated inside the packet. */
		name_end = memchr(p + off, 0, len - off);
		if (name_end == NULL)
			goto layout;
		name = (const char *)(p + off);
		off = (size_t)(name_end - p) + 1;
		if (off >= len)
			goto layout;
		value_end = memchr(p + off, 0, len - off);
		if (value_end == NULL)
			goto layout;
		value = (const char *)(p + off);
		off = (size_t)(value_end - p) + 1;

		if (strcmp(name, "user") == 0)
			ok = startup_take(&out->user, value);
		else if (strcmp(name, "database") == 0)
			ok = startup_take(&out->database, value);
		else if (strcmp(name, "options") == 0)
			ok = startup_take(&out->options, value);
		else if (strcmp(name, "replication") == 0)
			ok = startup_take(&out->replication, value);
		else
			ok = params_set(&out->params, name, value);
		if (!ok) {
			startup_set_err(err, err_size, "out of memory while reading the startup packet");
			return STARTUP_BAD;
		}
	}
layout:
	/* PostgreSQL's own wording for every malformed pair list. */
	startup_set_err(err, err_size, "invalid startup packet layout: expected terminator as last byte");
	return STARTUP_BAD;
}

enum startup_result startup_parse(const uint8_t *p, size_t avail, struct startup *out, size_t *consumed,
                                  char *err, size_t err_size)
{
	enum startup_result r = STARTUP_BAD;
	uint32_t len, code, expect = 0;
	const char *what = NULL;

	/* out is always initialised, so startup_free() is safe after any
	 * result. */
	startup_init(out);
	*consumed = 0;
	if (avail < 4)
		return STARTUP_NEED_MORE;
	len = startup_be32(p);
	/* Rejected before waiting for the rest: a client announcing 2 GiB must
	 * not make us buffer anything. */
	if (len < 8 || len > STARTUP_MAX_LEN) {
		startup_set_err(err, err_size, "invalid length of startup packet");
		return STARTUP_BAD;
	}
	if (avail < len)
		return STARTUP_NEED_MORE;

	code = startup_be32(p + 4);
	switch (code) {
	case STARTUP_CODE_SSL:
		out->kind = STARTUP_SSL_REQUEST;
		what = "SSL request";
		expect = 8;
		break;
	case STARTUP_CODE_GSSENC:
		out->kind = STARTUP_GSSENC_REQUEST;
		what = "GSSENC request";
		expect = 8;
		break;
	case STARTUP_CODE_CANCEL:
		out->kind = STARTUP_CANCEL_REQUEST;
		what = "cancel request";
		/* 3.2 allows longer keys, but we hand out 4-byte keys only, so a
		 * longer cancel cannot match anything of ours. */
		expect = 16;
		break;
	default:
		out->kind = STARTUP_MESSAGE;
		break;
	}
	if (what != NULL) {
		if (len != expect) {
			startup_set_err(err, err_size, "invalid length of %s packet: %u bytes, expected %u",
			                what, len, expect);
			goto fail;
		}
		if (out->kind == STARTUP_CANCEL_REQUEST) {
			out->cancel_pid = startup_be32(p + 8);
			out->cancel_key = startup_be32(p + 12);
		}
		*consumed = len;
		return STARTUP_OK;
	}

	/* Any 3.x is fine here: the caller answers a newer minor with
	 * NegotiateProtocolVersion, as PostgreSQL does. */
	if (code >> 16 != 3) {
		startup_set_err(err, err_size,
		                "unsupported frontend protocol %u.%u: server supports 3.0 to 3.0", code >> 16,
		                code & 0xffffu);
		goto fail;
	}
	out->version = code;
	r = startup_parse_pairs(p, len, out, err, err_size);
	if (r != STARTUP_OK)
		goto fail;
	*consumed = len;
	return STARTUP_OK;
fail:
	startup_free(out);
	return STARTUP_BAD;
}

/* Word separators, as isspace() in the C locale: the backend splits with
 * isspace(), and the process locale must not change how options parse. */
static bool startup_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Next word of *s into word (which has room for strlen(*s) + 1), as
 * pg_split_opts(): a backslash takes the next character literally, so
 * "b\ c" is one word "b c"; a trailing lone backslash is dropped. False
 * when only spaces are left. */
static bool startup_next_word(const char **s, char *word)
{
	const char *p = *s;
	size_t n = 0;
	bool escaped = false;

	while (startup_is_space(*p))
		p++;
	if (*p == '\0') {
		*s = p;
		return false;
	}
	for (; *p != '\0'; p++) {
		if (!escaped && startup_is_space(*p))
			break;
		if (!escaped && *p == '\\') {
			escaped = true;
			continue;
		}
		escaped = false;
		word[n++] = *p;
	}
	word[n] = '\0';
	*s = p;
	return true;
}

/* "name=value" after -c or --: as ParseLongOption(), dashes in the name
 * become underscores (--statement-timeout=5s sets statement_timeout). */
static bool startup_add_setting(const char *arg, const char *flag, struct params *out, char *err,
                                size_t err_size)
{
	const char *eq = strchr(arg, '=');
	char *name;
	bool ok;

	if (eq == NULL) {
		startup_set_err(err, err_size, "%s%s requires a value", flag, arg);
		return false;
	}
	if (eq == arg) {
		startup_set_err(err, err_size, "missing parameter name in options parameter: %s%s", flag,
		                arg);
		return false;
	}
	name = strndup(arg, (size_t)(eq - arg));
	if (name == NULL) {
		startup_set_err(err, err_size, "out of memory while reading the options parameter");
		return false;
	}
	for (char *c = name; *c != '\0'; c++)
		if (*c == '-')
			*c = '_';
	ok = params_set(out, name, eq + 1);
	free(name);
	if (!ok)
		startup_set_err(err, err_size, "out of memory while reading the options parameter");
	return ok;
}

bool startup_split_options(const char *options, struct params *out, char *err, size_t err_size)
{
	struct params parsed = PARAMS_INIT;
	const char *s = options;
	char *word = NULL;
	bool want_c_arg = false;       /* the previous word was a bare "-c" */
	bool no_more_switches = false; /* after "--", as getopt() */
	bool ok = false;

	if (options == NULL)
		return true;
	word = malloc(strlen(options) + 1);
	if (word == NULL) {
		startup_set_err(err, err_size, "out of memory while reading the options parameter");
		return false;
	}
	while (startup_next_word(&s, word)) {
		if (want_c_arg) {
			/* getopt() takes the next word whole, even one starting
			 * with '-'. */
			want_c_arg = false;
			if (!startup_add_setting(word, "-c ", &parsed, err, err_size))
				goto done;
		} else if (no_more_switches || word[0] != '-' || word[1] == '\0') {
			startup_set_err(err, err_size,
			                "invalid command-line argument in options parameter: %s", word);
			goto done;
		} else if (word[1] == 'c') {
			if (word[2] == '\0')
				want_c_arg = true;
			else if (!startup_add_setting(word + 2, "-c ", &parsed, err, err_size))
				goto done;
		} else if (word[1] == '-') {
			if (word[2] == '\0')
				no_more_switches = true;
			else if (!startup_add_setting(word + 2, "--", &parsed, err, err_size))
				goto done;
		} else {
			/* Other backend switches (-d, -B, -F...) change things a
			 * pooled server connection cannot give one client. */
			startup_set_err(err, err_size, "unsupported option in options parameter: -%c",
			                word[1]);
			goto done;
		}
	}
	if (want_c_arg) {
		startup_set_err(err, err_size, "-c requires a value in options parameter");
		goto done;
	}
	/* Applied only once the whole string parsed, so an error leaves out
	 * as it was. */
	for (int i = 0; i < parsed.n; i++) {
		if (!params_set(out, parsed.items[i].name, parsed.items[i].value)) {
			startup_set_err(err, err_size, "out of memory while reading the options parameter");
			goto done;
		}
	}
	ok = true;
done:
	params_clear(&parsed);
	free(word);
	return ok;
}
