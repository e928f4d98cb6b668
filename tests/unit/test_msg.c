/* tests/unit/test_msg.c — message builders compared byte for byte with
 * hand-written PostgreSQL messages, the sticky failure, and the readers on
 * good, truncated and malformed bodies (held in exact-size heap copies so
 * ASan catches any read past n). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "proto/msg.h"

/* Byte arrays below are written as string literals; sizeof - 1 drops the
 * literal's own terminator, so every "\0" in them is a protocol byte. */
#define BYTES(lit) (const uint8_t *)(lit), sizeof(lit) - 1

static void assert_built(struct msgbuf *m, const uint8_t *want, size_t n)
{
	assert_true(msg_ok(m));
	assert_int_equal(m->len, n);
	assert_memory_equal(m->data, want, n);
}

/* An exact-size heap copy: any read past n is a heap overflow for ASan. */
static uint8_t *dup_exact(const void *p, size_t n)
{
	uint8_t *c = malloc(n > 0 ? n : 1);

	assert_non_null(c);
	if (n > 0)
		memcpy(c, p, n);
	return c;
}

static int setup(void **state)
{
	struct msgbuf *m = malloc(sizeof(*m));

	if (m == NULL)
		return -1;
	msgbuf_init(m, MSGBUF_DEFAULT_MAX);
	*state = m;
	return 0;
}

static int teardown(void **state)
{
	msgbuf_free(*state);
	free(*state);
	return 0;
}

static void test_ready(void **state)
{
	static const uint8_t want[] = {0x5a, 0x00, 0x00, 0x00, 0x05, 0x49};
	struct msgbuf *m = *state;

	msg_ready(m, 'I');
	assert_built(m, want, sizeof(want));
	msgbuf_reset(m);
	msg_ready(m, 'T');
	assert_built(m, BYTES("Z\0\0\0\5T"));
	msgbuf_reset(m);
	msg_ready(m, 'E');
	assert_built(m, BYTES("Z\0\0\0\5E"));
}

static void test_error(void **state)
{
	struct msgbuf *m = *state;

	/* What PostgreSQL sends for a wrong password, minus its F/L/R
	 * source-location fields. */
	msg_error(m, false, "FATAL", "28P01", "password authentication failed for user \"bob\"", NULL, NULL);
	assert_built(m, BYTES("E\0\0\0\x49"
	                      "SFATAL\0"
	                      "VFATAL\0"
	                      "C28P01\0"
	                      "Mpassword authentication failed for user \"bob\"\0"
	                      "\0"));
}

static void test_notice_with_detail_and_hint(void **state)
{
	struct msgbuf *m = *state;

	msg_error(m, true, "WARNING", "01000", "pool nearly full", "20 of 20 in use", "raise pool_size");
	assert_built(m, BYTES("N\0\0\0\x52"
	                      "SWARNING\0"
	                      "VWARNING\0"
	                      "C01000\0"
	                      "Mpool nearly full\0"
	                      "D20 of 20 in use\0"
	                      "Hraise pool_size\0"
	                      "\0"));
}

static void test_param_status(void **state)
{
	struct msgbuf *m = *state;

	msg_param_status(m, "client_encoding", "UTF8");
	assert_built(m, BYTES("S\0\0\0\x19"
	                      "client_encoding\0UTF8\0"));
}

static void test_backend_key(void **state)
{
	static const uint8_t want[] = {'K', 0, 0, 0, 12, 0x00, 0x00, 0x30, 0x39, 0xde, 0xad, 0xbe, 0xef};
	struct msgbuf *m = *state;

	msg_backend_key(m, 12345, 0xdeadbeef);
	assert_built(m, want, sizeof(want));
}

static void test_row_description(void **state)
{
	/* As PostgreSQL 15 sends it for SELECT version(): an expression
	 * column has no table, type text. */
	static const uint8_t want[] = {
	    'T',  0x00, 0x00, 0x00, 0x20,                 /* length 32 */
	    0x00, 0x01,                                   /* one column */
	    'v',  'e',  'r',  's',  'i',  'o', 'n', 0x00, /* name */
	    0x00, 0x00, 0x00, 0x00,                       /* table oid 0 */
	    0x00, 0x00,                                   /* attnum 0 */
	    0x00, 0x00, 0x00, 0x19,                       /* type oid 25 (text) */
	    0xff, 0xff,                                   /* typlen -1 */
	    0xff, 0xff, 0xff, 0xff,                       /* typmod -1 */
	    0x00, 0x00,                                   /* format text */
	};
	static const char *const names[] = {"version"};
	struct msgbuf *m = *state;

	msg_row_description(m, 1, names);
	assert_built(m, want, sizeof(want));

	/* Captured from PostgreSQL 15 answering SHOW server_version. */
	static const char *const show[] = {"server_version"};
	msgbuf_reset(m);
	msg_row_description(m, 1, show);
	assert_built(m, BYTES("T\0\0\0\x27\0\1server_version\0"
	                      "\0\0\0\0\0\0\0\0\0\x19\xff\xff\xff\xff\xff\xff\0\0"));
}

static void test_data_row_with_null(void **state)
{
	static const uint8_t want[] = {
	    'D',  0x00, 0x00, 0x00, 0x0f, /* length 15 */
	    0x00, 0x02,                   /* two columns */
	    0x00, 0x00, 0x00, 0x01, '1',  /* "1" */
	    0xff, 0xff, 0xff, 0xff,       /* NULL */
	};
	static const char *const values[] = {"1", NULL};
	struct msgbuf *m = *state;

	msg_data_row(m, 2, values);
	assert_built(m, want, sizeof(want));
	/* An empty string is not NULL. */
	msgbuf_reset(m);
	static const char *const empty[] = {""};
	msg_data_row(m, 1, empty);
	assert_built(m, BYTES("D\0\0\0\x0a\0\1\0\0\0\0"));
}

static void test_command_complete(void **state)
{
	struct msgbuf *m = *state;

	msg_command_complete(m, "SHOW");
	assert_built(m, BYTES("C\0\0\0\x09SHOW\0"));
}

static void test_startup(void **state)
{
	/* Given in another order: user and database still go first. */
	static const char *const kv[] = {"application_name", "psql", "database", "app", "user", "bob", NULL};
	struct msgbuf *m = *state;

	msg_startup(m, kv);
	assert_built(m, BYTES("\0\0\0\x35"
	                      "\0\3\0\0" /* protocol 3.0 */
	                      "user\0bob\0"
	                      "database\0app\0"
	                      "application_name\0psql\0"
	                      "\0"));
	/* No pairs at all: version and the terminator. */
	msgbuf_reset(m);
	msg_startup(m, NULL);
	assert_built(m, BYTES("\0\0\0\x09\0\3\0\0\0"));
	/* An odd-length array stops at the missing value. */
	static const char *const odd[] = {"user", "bob", "database", NULL};
	msgbuf_reset(m);
	msg_startup(m, odd);
	assert_built(m, BYTES("\0\0\0\x12\0\3\0\0user\0bob\0\0"));
}

static void test_cancel_request(void **state)
{
	static const uint8_t want[] = {0x00, 0x00, 0x00, 0x10, 0x04, 0xd2, 0x16, 0x2e, /* 80877102 */
	                               0x00, 0x00, 0x30, 0x39, 0xde, 0xad, 0xbe, 0xef};
	struct msgbuf *m = *state;

	msg_cancel_request(m, 12345, 0xdeadbeef);
	assert_built(m, want, sizeof(want));
}

static void test_small_frontend_messages(void **state)
{
	struct msgbuf *m = *state;

	msg_query(m, "select 1");
	assert_built(m, BYTES("Q\0\0\0\x0dselect 1\0"));
	msgbuf_reset(m);
	msg_terminate(m);
	assert_built(m, BYTES("X\0\0\0\4"));
	msgbuf_reset(m);
	msg_sync(m);
	assert_built(m, BYTES("S\0\0\0\4"));
	msgbuf_reset(m);
	msg_copy_fail(m, "COPY aborted");
	assert_built(m, BYTES("f\0\0\0\x11"
	                      "COPY aborted\0"));
	msgbuf_reset(m);
	msg_password(m, "md5abc", 7);
	assert_built(m, BYTES("p\0\0\0\x0bmd5abc\0"));
	msgbuf_reset(m);
	msg_sasl_initial(m, "SCRAM-SHA-256", "n,,n=,r=abc", 11);
	assert_built(m, BYTES("p\0\0\0\x21SCRAM-SHA-256\0\0\0\0\x0bn,,n=,r=abc"));
	msgbuf_reset(m);
	msg_sasl_initial(m, "SCRAM-SHA-256", NULL, 0);
	assert_built(m, BYTES("p\0\0\0\x16SCRAM-SHA-256\0\xff\xff\xff\xff"));
}

static void test_small_backend_messages(void **state)
{
	static const char *const opts[] = {"_pq_.foo"};
	struct msgbuf *m = *state;

	msg_auth(m, 0, NULL, 0);
	assert_built(m, BYTES("R\0\0\0\x08\0\0\0\0"));
	msgbuf_reset(m);
	msg_auth(m, 5, "\x01\x02\x03\x04", 4);
	assert_built(m, BYTES("R\0\0\0\x0c\0\0\0\x05\x01\x02\x03\x04"));
	msgbuf_reset(m);
	msg_empty_query(m);
	assert_built(m, BYTES("I\0\0\0\4"));
	msgbuf_reset(m);
	msg_negotiate_version(m, 0, 1, opts);
	assert_built(m, BYTES("v\0\0\0\x15\0\3\0\0\0\0\0\1_pq_.foo\0"));
}

/* Several messages in one buffer: each length is patched at its own
 * start, not at the buffer's. */
static void test_several_messages(void **state)
{
	struct msgbuf *m = *state;

	msg_auth(m, 0, NULL, 0);
	msg_param_status(m, "client_encoding", "UTF8");
	msg_backend_key(m, 12345, 0xdeadbeef);
	msg_ready(m, 'I');
	assert_built(m, BYTES("R\0\0\0\x08\0\0\0\0"
	                      "S\0\0\0\x19"
	                      "client_encoding\0UTF8\0"
	                      "K\0\0\0\x0c\0\0\x30\x39\xde\xad\xbe\xef"
	                      "Z\0\0\0\5I"));
}

static void test_growth(void **state)
{
	struct msgbuf *m = *state;
	size_t n = 100000;
	char *sql = malloc(n + 1);

	(void)state;
	assert_non_null(sql);
	memset(sql, 'x', n);
	sql[n] = '\0';
	msg_query(m, sql);
	assert_true(msg_ok(m));
	assert_int_equal(m->len, n + 6);
	assert_int_equal(m->data[0], 'Q');
	assert_int_equal(m->data[1], 0x00);
	assert_int_equal(m->data[2], 0x01);
	assert_int_equal(m->data[3], 0x86);
	assert_int_equal(m->data[4], 0xa5); /* 100005 */
	assert_memory_equal(m->data + 5, sql, n + 1);
	free(sql);
}

static void test_sticky_failure(void **state)
{
	struct msgbuf m;

	(void)state;
	/* Too small even for the header. */
	msgbuf_init(&m, 4);
	msg_ready(&m, 'I');
	assert_false(msg_ok(&m));
	/* Later calls that would fit do not clear it. */
	msgbuf_reset(&m);
	assert_true(msg_ok(&m));
	msg_terminate(&m); /* 5 bytes: still too many */
	assert_false(msg_ok(&m));
	msg_byte(&m, 1);
	assert_false(msg_ok(&m));
	msgbuf_free(&m);

	/* Exactly enough for one ReadyForQuery, not for a second. */
	msgbuf_init(&m, 6);
	msg_ready(&m, 'I');
	assert_true(msg_ok(&m));
	assert_int_equal(m.len, 6);
	msg_ready(&m, 'I');
	assert_false(msg_ok(&m));
	msg_ready(&m, 'I');
	assert_false(msg_ok(&m));
	/* Reset keeps the memory and clears the failure. */
	msgbuf_reset(&m);
	msg_ready(&m, 'T');
	assert_built(&m, BYTES("Z\0\0\0\5T"));
	msgbuf_free(&m);

	/* Fails in the middle of a message: the error is the one check. */
	msgbuf_init(&m, 20);
	msg_error(&m, false, "ERROR", "53300", "too many clients already", NULL, NULL);
	assert_false(msg_ok(&m));
	msgbuf_free(&m);

	/* msg_end without msg_begin is a caller bug, reported the same way. */
	msgbuf_init(&m, 64);
	msg_end(&m);
	assert_false(msg_ok(&m));
	msgbuf_free(&m);

	/* NULL strings and bad counts fail instead of writing half a message. */
	msgbuf_init(&m, 64);
	msg_param_status(&m, "TimeZone", NULL);
	assert_false(msg_ok(&m));
	msgbuf_reset(&m);
	msg_row_description(&m, -1, NULL);
	assert_false(msg_ok(&m));
	msgbuf_reset(&m);
	msg_data_row(&m, 70000, NULL);
	assert_false(msg_ok(&m));
	msgbuf_free(&m);
}

static void test_read_error(void **state)
{
	/* A captured FATAL, with the source-location fields we do not read. */
	static const char body[] = "SFATAL\0VFATAL\0C28P01\0"
	                           "Mpassword authentication failed for user \"bob\"\0"
	                           "Fauth.c\0L323\0Rauth_failed\0"
	                           "\0";
	struct pg_error e;
	uint8_t *b = dup_exact(body, sizeof(body) - 1);

	(void)state;
	assert_true(msg_read_error(b, sizeof(body) - 1, &e));
	assert_string_equal(e.severity, "FATAL");
	assert_string_equal(e.severity_v, "FATAL");
	assert_string_equal(e.sqlstate, "28P01");
	assert_string_equal(e.message, "password authentication failed for user \"bob\"");
	assert_null(e.detail);
	assert_null(e.hint);
	/* Every truncation is refused, and never read past. */
	for (size_t n = 0; n < sizeof(body) - 1; n++) {
		uint8_t *t = dup_exact(body, n);
		assert_false(msg_read_error(t, n, &e));
		assert_null(e.message);
		free(t);
	}
	free(b);

	/* Captured from PostgreSQL 15 for "selec": with P (position). */
	static const char syntax[] = "SERROR\0VERROR\0C42601\0Msyntax error at or near \"selec\"\0"
	                             "P1\0Fscan.l\0L1188\0Rscanner_yyerror\0\0";
	b = dup_exact(syntax, sizeof(syntax) - 1);
	assert_true(msg_read_error(b, sizeof(syntax) - 1, &e));
	assert_string_equal(e.severity, "ERROR");
	assert_string_equal(e.sqlstate, "42601");
	assert_string_equal(e.message, "syntax error at or near \"selec\"");
	free(b);

	/* Just the terminator: valid, no fields. */
	b = dup_exact("", 1);
	assert_true(msg_read_error(b, 1, &e));
	assert_null(e.severity);
	assert_null(e.message);
	free(b);

	/* Bytes after the terminator. */
	b = dup_exact("Mx\0\0Z", 5);
	assert_false(msg_read_error(b, 5, &e));
	free(b);

	/* Last field without its NUL, then nothing. */
	b = dup_exact("SERROR\0Mboom", 12);
	assert_false(msg_read_error(b, 12, &e));
	free(b);
}

static void test_read_error_roundtrip(void **state)
{
	struct msgbuf *m = *state;
	struct pg_error e;

	msg_error(m, false, "ERROR", "57014", "canceling statement due to statement timeout", "d", "h");
	assert_true(msg_ok(m));
	assert_true(msg_read_error(m->data + 5, m->len - 5, &e));
	assert_string_equal(e.severity, "ERROR");
	assert_string_equal(e.sqlstate, "57014");
	assert_string_equal(e.message, "canceling statement due to statement timeout");
	assert_string_equal(e.detail, "d");
	assert_string_equal(e.hint, "h");
}

static void test_read_param_status(void **state)
{
	static const char body[] = "client_encoding\0UTF8\0";
	const char *name, *value;
	uint8_t *b = dup_exact(body, sizeof(body) - 1);

	(void)state;
	assert_true(msg_read_param_status(b, sizeof(body) - 1, &name, &value));
	assert_string_equal(name, "client_encoding");
	assert_string_equal(value, "UTF8");
	free(b);
	for (size_t n = 0; n < sizeof(body) - 1; n++) {
		b = dup_exact(body, n);
		assert_false(msg_read_param_status(b, n, &name, &value));
		free(b);
	}
	/* Empty value is fine. */
	b = dup_exact("application_name\0\0", 18);
	assert_true(msg_read_param_status(b, 18, &name, &value));
	assert_string_equal(value, "");
	free(b);
	/* A third string. */
	b = dup_exact("a\0b\0c\0", 6);
	assert_false(msg_read_param_status(b, 6, &name, &value));
	free(b);
}

static void test_read_backend_key(void **state)
{
	static const uint8_t body[] = {0x00, 0x00, 0x30, 0x39, 0xde, 0xad, 0xbe, 0xef, 0x00};
	uint32_t pid = 0, key = 0;
	uint8_t *b;

	(void)state;
	b = dup_exact(body, 8);
	assert_true(msg_read_backend_key(b, 8, &pid, &key));
	assert_int_equal(pid, 12345);
	assert_int_equal(key, 0xdeadbeef);
	free(b);
	for (size_t n = 0; n < 8; n++) {
		b = dup_exact(body, n);
		assert_false(msg_read_backend_key(b, n, &pid, &key));
		free(b);
	}
	b = dup_exact(body, 9);
	assert_false(msg_read_backend_key(b, 9, &pid, &key));
	free(b);
}

static void test_read_auth(void **state)
{
	static const uint8_t md5[] = {0, 0, 0, 5, 0x01, 0x02, 0x03, 0x04};
	uint32_t code = 99;
	const uint8_t *data;
	size_t data_len;
	uint8_t *b;

	(void)state;
	b = dup_exact(md5, 4);
	assert_true(msg_read_auth(b, 4, &code, &data, &data_len));
	assert_int_equal(code, 5);
	assert_int_equal(data_len, 0);
	free(b);
	b = dup_exact(md5, 8);
	assert_true(msg_read_auth(b, 8, &code, &data, &data_len));
	assert_int_equal(code, 5);
	assert_int_equal(data_len, 4);
	assert_memory_equal(data, md5 + 4, 4);
	free(b);
	for (size_t n = 0; n < 4; n++) {
		b = dup_exact(md5, n);
		assert_false(msg_read_auth(b, n, &code, &data, &data_len));
		free(b);
	}
}

static void test_read_cstring(void **state)
{
	const char *s;
	uint8_t *b;

	(void)state;
	b = dup_exact("select 1\0", 9);
	assert_true(msg_read_cstring(b, 9, &s));
	assert_string_equal(s, "select 1");
	free(b);
	b = dup_exact("select 1", 8); /* no NUL within n */
	assert_false(msg_read_cstring(b, 8, &s));
	free(b);
	b = dup_exact("", 0);
	assert_false(msg_read_cstring(b, 0, &s));
	free(b);
	b = dup_exact("\0rest", 5);
	assert_true(msg_read_cstring(b, 5, &s));
	assert_string_equal(s, "");
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_ready, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_error, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_notice_with_detail_and_hint, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_param_status, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_backend_key, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_row_description, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_data_row_with_null, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_command_complete, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_startup, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cancel_request, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_small_frontend_messages, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_small_backend_messages, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_several_messages, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_growth, setup, teardown),
	    cmocka_unit_test(test_sticky_failure),
	    cmocka_unit_test(test_read_error),
	    cmocka_unit_test_setup_teardown(test_read_error_roundtrip, setup, teardown),
	    cmocka_unit_test(test_read_param_status),
	    cmocka_unit_test(test_read_backend_key),
	    cmocka_unit_test(test_read_auth),
	    cmocka_unit_test(test_read_cstring),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
