/* tests/unit/test_startup.c — the first packet of a client connection:
 * SSL/GSSENC/cancel requests, StartupMessage pairs, every truncation,
 * hostile lengths and versions; and the "options" parameter split as a
 * PostgreSQL backend splits it. Packets live in exact-size heap copies so
 * ASan catches any read past the available bytes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "proto/startup.h"

/* A packet: length word, code word, then body as given. */
struct pkt {
	uint8_t *data; /* exact-size heap copy */
	size_t len;
};

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static struct pkt pkt_make_len(uint32_t len_word, uint32_t code, const void *body, size_t n)
{
	struct pkt k;

	k.len = 8 + n;
	k.data = malloc(k.len);
	assert_non_null(k.data);
	put_be32(k.data, len_word);
	put_be32(k.data + 4, code);
	if (n > 0)
		memcpy(k.data + 8, body, n);
	return k;
}

static struct pkt pkt_make(uint32_t code, const void *body, size_t n)
{
	return pkt_make_len((uint32_t)(8 + n), code, body, n);
}

/* Body from a string literal: every "\0" in it is a packet byte. */
#define PKT(code, lit) pkt_make((code), (lit), sizeof(lit) - 1)

static enum startup_result parse(const struct pkt *k, size_t avail, struct startup *s, size_t *consumed,
                                 char *err, size_t err_size)
{
	/* Only avail bytes in an exact-size copy. */
	uint8_t *p = malloc(avail > 0 ? avail : 1);
	enum startup_result r;

	assert_non_null(p);
	memcpy(p, k->data, avail);
	r = startup_parse(p, avail, s, consumed, err, err_size);
	free(p);
	return r;
}

static void expect_bad(const struct pkt *k, const char *want_err)
{
	struct startup s;
	size_t consumed = 99;
	char err[256] = "";

	assert_int_equal(parse(k, k->len, &s, &consumed, err, sizeof(err)), STARTUP_BAD);
	if (strstr(err, want_err) == NULL)
		print_error("error \"%s\" does not contain \"%s\"\n", err, want_err);
	assert_non_null(strstr(err, want_err));
	assert_int_equal(consumed, 0);
	assert_null(s.user);
	assert_int_equal(s.params.n, 0);
	startup_free(&s); /* safe after BAD */
}

static void test_ssl_request(void **state)
{
	struct pkt k = pkt_make(STARTUP_CODE_SSL, NULL, 0);
	static const uint8_t want[] = {0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16, 0x2f};
	struct startup s;
	size_t consumed = 0;
	char err[128];

	(void)state;
	assert_memory_equal(k.data, want, 8);
	assert_int_equal(parse(&k, 8, &s, &consumed, err, sizeof(err)), STARTUP_OK);
	assert_int_equal(s.kind, STARTUP_SSL_REQUEST);
	assert_int_equal(consumed, 8);
	startup_free(&s);
	free(k.data);

	/* A client that pipelines its TLS ClientHello right after: only the 8
	 * bytes are consumed. */
	k = PKT(STARTUP_CODE_SSL, "\x16\x03\x01\x02");
	put_be32(k.data, 8);
	assert_int_equal(parse(&k, k.len, &s, &consumed, err, sizeof(err)), STARTUP_OK);
	assert_int_equal(s.kind, STARTUP_SSL_REQUEST);
	assert_int_equal(consumed, 8);
	startup_free(&s);
	free(k.data);

	k = PKT(STARTUP_CODE_SSL, "abcd");
	expect_bad(&k, "invalid length of SSL request packet");
	free(k.data);
}

static void test_gssenc_request(void **state)
{
	struct pkt k = pkt_make(STARTUP_CODE_GSSENC, NULL, 0);
	struct startup s;
	size_t consumed = 0;
	char err[128];

	(void)state;
	assert_int_equal(k.data[7], 0x30);
	assert_int_equal(parse(&k, 8, &s, &consumed, err, sizeof(err)), STARTUP_OK);
	assert_int_equal(s.kind, STARTUP_GSSENC_REQUEST);
	assert_int_equal(consumed, 8);
	startup_free(&s);
	free(k.data);

	k = PKT(STARTUP_CODE_GSSENC, "\0");
	expect_bad(&k, "invalid length of GSSENC request packet");
	free(k.data);
}

static void test_cancel_request(void **state)
{
	struct pkt k = PKT(STARTUP_CODE_CANCEL, "\x00\x00\x30\x39\xde\xad\xbe\xef");
	struct startup s;
	size_t consumed = 0;
	char err[128];

	(void)state;
	assert_int_equal(k.len, 16);
	assert_int_equal(parse(&k, 16, &s, &consumed, err, sizeof(err)), STARTUP_OK);
	assert_int_equal(s.kind, STARTUP_CANCEL_REQUEST);
	assert_int_equal(s.cancel_pid, 12345);
	assert_int_equal(s.cancel_key, 0xdeadbeef);
	assert_int_equal(consumed, 16);
	startup_free(&s);
	/* Every prefix waits for more. */
	for (size_t n = 0; n < 16; n++)
		assert_int_equal(parse(&k, n, &s, &consumed, err, sizeof(err)), STARTUP_NEED_MORE);
	free(k.data);

	k = PKT(STARTUP_CODE_CANCEL, "\0\0\0\1");
	expect_bad(&k, "invalid length of cancel request packet");
	free(k.data);
	/* 3.2-style longer key. */
	k = PKT(STARTUP_CODE_CANCEL, "\0\0\0\1\1\2\3\4\5\6\7\10");
	expect_bad(&k, "invalid length of cancel request packet");
	free(k.data);
}

/* What psql sends with PGOPTIONS and a couple of extra GUCs. */
static const char normal_body[] = "user\0bob\0"
                                  "database\0app\0"
                                  "options\0-c search_path=a,b\0"
                                  "application_name\0psql\0"
                                  "DateStyle\0ISO\0"
                                  "client_encoding\0UTF8\0"
                                  "_pq_.foo\0bar\0"
                                  "\0";

static void test_normal_startup(void **state)
{
	struct pkt k = PKT(STARTUP_PROTO_30, normal_body);
	struct startup s;
	size_t consumed = 0;
	char err[128];

	(void)state;
	assert_int_equal(parse(&k, k.len, &s, &consumed, err, sizeof(err)), STARTUP_OK);
	assert_int_equal(consumed, k.len);
	assert_int_equal(s.kind, STARTUP_MESSAGE);
	assert_int_equal(s.version, STARTUP_PROTO_30);
	assert_string_equal(s.user, "bob");
	assert_string_equal(s.database, "app");
	assert_string_equal(s.options, "-c search_path=a,b");
	assert_null(s.replication);
	/* The others, in order. */
	assert_int_equal(s.params.n, 4);
	assert_string_equal(s.params.items[0].name, "application_name");
	assert_string_equal(s.params.items[0].value, "psql");
	assert_string_equal(s.params.items[1].name, "DateStyle");
	assert_string_equal(s.params.items[1].value, "ISO");
	assert_string_equal(s.params.items[2].name, "client_encoding");
	assert_string_equal(s.params.items[2].value, "UTF8");
	assert_string_equal(s.params.items[3].name, "_pq_.foo");
	assert_string_equal(s.params.items[3].value, "bar");
	startup_free(&s);
	assert_null(s.user);
	startup_free(&s); /* twice is harmless */
	free(k.data);
}

static void test_replication_and_minimal(void **state)
{
	struct pkt k = PKT(STARTUP_PROTO_30, "user\0rep\0replication\0database\0\0");
	struct startup s;
	size_t consumed = 0;
	char err[128];

	(void)state;
	assert_int_equal(parse(&k, k.len, &s, &consumed, err, sizeof(err)), STARTUP_OK);
	assert_string_equal(s.replication, "database");
	assert_null(s.database);
	startup_free(&s);
	free(k.data);

	/* Only the terminator: no user is not this layer's error. */
	k = PKT(STARTUP_PROTO_30, "\0");
	assert_int_equal(parse(&k, k.len, &s, &consumed, err, sizeof(err)), STARTUP_OK);
	assert_int_equal(consumed, 9);
	assert_null(s.user);
	assert_int_equal(s.params.n, 0);
	startup_free(&s);
	free(k.data);

	/* Empty values are values. */
	k = PKT(STARTUP_PROTO_30, "user\0bob\0application_name\0\0\0");
	assert_int_equal(parse(&k, k.len, &s, &consumed, err, sizeof(err)), STARTUP_OK);
	assert_string_equal(s.params.items[0].value, "");
	startup_free(&s);
	free(k.data);

	/* A repeated user: the last one wins, as in PostgreSQL. */
	k = PKT(STARTUP_PROTO_30, "user\0a\0user\0b\0\0");
	assert_int_equal(parse(&k, k.len, &s, &consumed, err, sizeof(err)), STARTUP_OK);
	assert_string_equal(s.user, "b");
	startup_free(&s);
	free(k.data);
}

static void test_truncated(void **state)
{
	struct pkt k = PKT(STARTUP_PROTO_30, normal_body);
	struct startup s;
	size_t consumed = 99;
	char err[128];

	(void)state;
	for (size_t n = 0; n < k.len; n++) {
		assert_int_equal(parse(&k, n, &s, &consumed, err, sizeof(err)), STARTUP_NEED_MORE);
		assert_int_equal(consumed, 0);
		startup_free(&s);
	}
	free(k.data);
}

static void test_bad_lengths(void **state)
{
	static const uint32_t bad[] = {0, 4, 7, STARTUP_MAX_LEN + 1, 0x7fffffffu, 0x80000000u, 0xffffffffu};
	struct startup s;
	size_t consumed = 99;
	char err[128];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct pkt k = pkt_make_len(bad[i], STARTUP_PROTO_30, "\0", 1);

		/* Refused from the length word alone: nothing is buffered for
		 * a client announcing gigabytes. */
		for (size_t avail = 4; avail <= k.len; avail++) {
			err[0] = '\0';
			assert_int_equal(parse(&k, avail, &s, &consumed, err, sizeof(err)), STARTUP_BAD);
			assert_string_equal(err, "invalid length of startup packet");
		}
		free(k.data);
	}
}

static void test_max_length(void **state)
{
	/* Exactly STARTUP_MAX_LEN: accepted. */
	size_t body_len = STARTUP_MAX_LEN - 8;
	char *body = malloc(body_len);
	struct startup s;
	size_t consumed = 0;
	char err[128];
	struct pkt k;

	(void)state;
	assert_non_null(body);
	memcpy(body, "application_name", 17);
	memset(body + 17, 'x', body_len - 17 - 2);
	body[body_len - 2] = '\0';
	body[body_len - 1] = '\0';
	k = pkt_make(STARTUP_PROTO_30, body, body_len);
	assert_int_equal(k.len, STARTUP_MAX_LEN);
	assert_int_equal(parse(&k, k.len, &s, &consumed, err, sizeof(err)), STARTUP_OK);
	assert_int_equal(consumed, STARTUP_MAX_LEN);
	assert_int_equal(strlen(s.params.items[0].value), body_len - 17 - 2);
	startup_free(&s);
	free(k.data);
	free(body);
}

static void test_versions(void **state)
{
	struct startup s;
	size_t consumed = 0;
	char err[128];
	struct pkt k;

	(void)state;
	k = PKT(0x00020000u, "user\0bob\0\0");
	expect_bad(&k, "unsupported frontend protocol 2.0: server supports 3.0 to 3.0");
	free(k.data);
	k = PKT(0x00040000u, "user\0bob\0\0");
	expect_bad(&k, "unsupported frontend protocol 4.0");
	free(k.data);
	/* 1234.5681 is no request we know: an unsupported version. */
	k = PKT(0x04d2162fu + 2, "user\0bob\0\0");
	expect_bad(&k, "unsupported frontend protocol 1234.5681");
	free(k.data);

	/* 3.2 is accepted; the caller negotiates down. */
	k = PKT(0x00030002u, "user\0bob\0_pq_.x\0y\0\0");
	assert_int_equal(parse(&k, k.len, &s, &consumed, err, sizeof(err)), STARTUP_OK);
	assert_int_equal(s.version, 0x00030002u);
	assert_string_equal(s.user, "bob");
	assert_string_equal(params_get(&s.params, "_pq_.x"), "y");
	startup_free(&s);
	free(k.data);
}

static void test_bad_layout(void **state)
{
	static const struct {
		const char *body;
		size_t n;
	} cases[] = {
#define CASE(lit) {(lit), sizeof(lit) - 1}
	    CASE(""),                        /* length 8: not even the terminator */
	    CASE("user\0bob\0"),             /* missing terminator */
	    CASE("user\0bob"),               /* last string unterminated */
	    CASE("user"),                    /* name unterminated */
	    CASE("user\0"),                  /* name without value */
	    CASE("user\0bob\0database\0\0"), /* odd number of strings */
	    CASE("user\0bob\0\0\0"),         /* bytes after the terminator */
	    CASE("user\0bob\0\0x\0y\0\0"),   /* pairs after the terminator */
	    CASE("\0user\0bob\0\0"),         /* terminator first */
#undef CASE
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pkt k = pkt_make(STARTUP_PROTO_30, cases[i].body, cases[i].n);
		expect_bad(&k, "invalid startup packet layout: expected terminator as last byte");
		free(k.data);
	}
}

static void test_err_may_be_null(void **state)
{
	struct pkt k = PKT(0x00020000u, "\0");
	struct startup s;
	size_t consumed;

	(void)state;
	assert_int_equal(startup_parse(k.data, k.len, &s, &consumed, NULL, 0), STARTUP_BAD);
	free(k.data);
}

struct split_case {
	const char *options;
	const char *want[8]; /* name, value, ... NULL; or on error: the message */
	bool ok;
};

static const struct split_case split_cases[] = {
    {"-c search_path=a,b", {"search_path", "a,b", NULL}, true},
    {"-csearch_path=x", {"search_path", "x", NULL}, true},
    {"--statement-timeout=5s", {"statement_timeout", "5s", NULL}, true},
    {"-c a=b\\ c", {"a", "b c", NULL}, true},
    {"-c log-min-messages=debug1", {"log_min_messages", "debug1", NULL}, true},
    {"-c search_path=my-schema", {"search_path", "my-schema", NULL}, true}, /* values keep dashes */
    {"-c a=x=y", {"a", "x=y", NULL}, true},
    {"-c a=", {"a", "", NULL}, true},
    {"-c a=\\\\", {"a", "\\", NULL}, true},
    {"-c a=b\\", {"a", "b", NULL}, true}, /* trailing lone backslash dropped */
    {"  -c geqo=off \t -c  work_mem=64MB  --x=1 ", {"geqo", "off", "work_mem", "64MB", "x", "1", NULL}, true},
    {"-c x=1 -c X=2", {"x", "2", NULL}, true}, /* same GUC twice: the last wins */
    {"", {NULL}, true},
    {"   ", {NULL}, true},
    {"--", {NULL}, true},
    {"-d 5", {"unsupported option in options parameter: -d"}, false},
    {"-B 100", {"unsupported option in options parameter: -B"}, false},
    {"-c a=1 -F", {"unsupported option in options parameter: -F"}, false},
    {"-c", {"-c requires a value"}, false},
    {"-c foo", {"-c foo requires a value"}, false},
    {"-cfoo", {"-c foo requires a value"}, false},
    {"--foo", {"--foo requires a value"}, false},
    {"-c =x", {"missing parameter name"}, false},
    {"foo", {"invalid command-line argument in options parameter: foo"}, false},
    {"-", {"invalid command-line argument in options parameter: -"}, false},
    {"-- -c a=b", {"invalid command-line argument in options parameter: -c"}, false},
    {"-c a=b\\ c d", {"invalid command-line argument in options parameter: d"}, false},
};

static void test_split_options(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(split_cases) / sizeof(split_cases[0]); i++) {
		const struct split_case *c = &split_cases[i];
		struct params out = PARAMS_INIT;
		char err[128] = "";
		bool ok;

		/* Something already there: kept on success, untouched on error. */
		assert_true(params_set(&out, "application_name", "app"));
		ok = startup_split_options(c->options, &out, err, sizeof(err));
		if (ok != c->ok)
			print_error("case %zu \"%s\": ok=%d err=\"%s\"\n", i, c->options, ok, err);
		assert_int_equal(ok, c->ok);
		if (ok) {
			int n = 0;

			while (c->want[n * 2] != NULL) {
				assert_string_equal(out.items[n + 1].name, c->want[n * 2]);
				assert_string_equal(out.items[n + 1].value, c->want[n * 2 + 1]);
				n++;
			}
			assert_int_equal(out.n, n + 1);
		} else {
			if (strstr(err, c->want[0]) == NULL)
				print_error("case %zu \"%s\": err \"%s\" lacks \"%s\"\n", i, c->options, err,
				            c->want[0]);
			assert_non_null(strstr(err, c->want[0]));
			assert_int_equal(out.n, 1);
		}
		assert_string_equal(out.items[0].name, "application_name");
		assert_string_equal(out.items[0].value, "app");
		params_clear(&out);
	}
}

static void test_split_options_exact_errors(void **state)
{
	struct params out = PARAMS_INIT;
	char err[128];

	(void)state;
	assert_false(startup_split_options("-d 5", &out, err, sizeof(err)));
	assert_string_equal(err, "unsupported option in options parameter: -d");
	/* A tiny err buffer is truncated, not overrun. */
	assert_false(startup_split_options("-d 5", &out, err, 4));
	assert_string_equal(err, "uns");
	assert_false(startup_split_options("-d 5", &out, NULL, 0));
	assert_true(startup_split_options(NULL, &out, err, sizeof(err)));
	assert_int_equal(out.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ssl_request),
	    cmocka_unit_test(test_gssenc_request),
	    cmocka_unit_test(test_cancel_request),
	    cmocka_unit_test(test_normal_startup),
	    cmocka_unit_test(test_replication_and_minimal),
	    cmocka_unit_test(test_truncated),
	    cmocka_unit_test(test_bad_lengths),
	    cmocka_unit_test(test_max_length),
	    cmocka_unit_test(test_versions),
	    cmocka_unit_test(test_bad_layout),
	    cmocka_unit_test(test_err_may_be_null),
	    cmocka_unit_test(test_split_options),
	    cmocka_unit_test(test_split_options_exact_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
