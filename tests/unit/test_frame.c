/* tests/unit/test_frame.c — framing of PostgreSQL v3 messages: per-side,
 * per-type length limits, hostile lengths (0, 3, 2^31, 0x7fffffff), fixed
 * sizes, unknown types, and streams fed one byte at a time. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "proto/frame.h"

#define HUGE_MAX 0x3fffffffu
#define SMALL_MAX 0x10000u

static void put_header(uint8_t *p, uint8_t type, uint32_t len)
{
	p[0] = type;
	p[1] = (uint8_t)(len >> 24);
	p[2] = (uint8_t)(len >> 16);
	p[3] = (uint8_t)(len >> 8);
	p[4] = (uint8_t)len;
}

struct header_case {
	enum frame_side side;
	uint8_t type;
	uint32_t len;
	enum frame_result want;
};

#define C FRAME_FROM_CLIENT
#define S FRAME_FROM_SERVER

static const struct header_case header_cases[] = {
    /* Hostile lengths on a type that allows 1 GiB. */
    {C, 'Q', 0, FRAME_BAD_LENGTH},
    {C, 'Q', 3, FRAME_BAD_LENGTH},
    {C, 'Q', 4, FRAME_OK},
    {C, 'Q', HUGE_MAX, FRAME_OK},
    {C, 'Q', HUGE_MAX + 1, FRAME_BAD_LENGTH},
    {C, 'Q', 0x7fffffffu, FRAME_BAD_LENGTH},
    {C, 'Q', 0x80000000u, FRAME_BAD_LENGTH}, /* 2^31: negative as an int32 */
    {C, 'Q', 0xffffffffu, FRAME_BAD_LENGTH}, /* -1 */
    {S, 'D', 0, FRAME_BAD_LENGTH},
    {S, 'D', 3, FRAME_BAD_LENGTH},
    {S, 'D', 0x80000000u, FRAME_BAD_LENGTH},
    {S, 'D', 0x7fffffffu, FRAME_BAD_LENGTH},

    /* Client: big messages. */
    {C, 'P', HUGE_MAX, FRAME_OK},
    {C, 'B', HUGE_MAX, FRAME_OK},
    {C, 'd', HUGE_MAX, FRAME_OK},
    {C, 'F', HUGE_MAX, FRAME_OK},
    {C, 'P', HUGE_MAX + 1, FRAME_BAD_LENGTH},
    {C, 'd', HUGE_MAX + 1, FRAME_BAD_LENGTH},
    /* Client: small messages. */
    {C, 'E', SMALL_MAX, FRAME_OK},
    {C, 'E', SMALL_MAX + 1, FRAME_BAD_LENGTH},
    {C, 'D', SMALL_MAX, FRAME_OK},
    {C, 'D', SMALL_MAX + 1, FRAME_BAD_LENGTH},
    {C, 'C', SMALL_MAX + 1, FRAME_BAD_LENGTH},
    {C, 'f', SMALL_MAX + 1, FRAME_BAD_LENGTH},
    {C, 'p', SMALL_MAX, FRAME_OK},
    {C, 'p', SMALL_MAX + 1, FRAME_BAD_LENGTH},
    {C, 'p', 3, FRAME_BAD_LENGTH},
    /* Client: fixed 4. */
    {C, 'S', 4, FRAME_OK},
    {C, 'S', 5, FRAME_BAD_LENGTH},
    {C, 'H', 4, FRAME_OK},
    {C, 'H', 8, FRAME_BAD_LENGTH},
    {C, 'X', 4, FRAME_OK},
    {C, 'X', 3, FRAME_BAD_LENGTH},
    {C, 'c', 4, FRAME_OK},
    {C, 'c', 5, FRAME_BAD_LENGTH},
    /* Client: types only a server may send, and garbage. */
    {C, 'Z', 5, FRAME_BAD_TYPE},
    {C, 'K', 12, FRAME_BAD_TYPE},
    {C, 'R', 8, FRAME_BAD_TYPE},
    {C, 'T', 6, FRAME_BAD_TYPE},
    {C, 'A', 10, FRAME_BAD_TYPE},
    {C, 0x00, 8, FRAME_BAD_TYPE}, /* a second startup packet */
    {C, 0xff, 4, FRAME_BAD_TYPE},
    {C, 'G', 0, FRAME_BAD_TYPE},  /* the type is judged before the length */
    {C, 0x16, 4, FRAME_BAD_TYPE}, /* TLS handshake record after "no SSL" */

    /* Server: fixed sizes. */
    {S, 'Z', 5, FRAME_OK},
    {S, 'Z', 4, FRAME_BAD_LENGTH},
    {S, 'Z', 6, FRAME_BAD_LENGTH},
    {S, 'K', 12, FRAME_OK},
    {S, 'K', 11, FRAME_BAD_LENGTH},
    {S, 'K', 13, FRAME_BAD_LENGTH},
    {S, 'K', 0x80000000u, FRAME_BAD_LENGTH},
    {S, '1', 4, FRAME_OK},
    {S, '1', 5, FRAME_BAD_LENGTH},
    {S, '2', 4, FRAME_OK},
    {S, '2', 3, FRAME_BAD_LENGTH},
    {S, '3', 4, FRAME_OK},
    {S, 'n', 4, FRAME_OK},
    {S, 'n', 6, FRAME_BAD_LENGTH},
    {S, 's', 4, FRAME_OK},
    {S, 'I', 4, FRAME_OK},
    {S, 'I', 5, FRAME_BAD_LENGTH},
    {S, 'c', 4, FRAME_OK},
    {S, 'c', 5, FRAME_BAD_LENGTH},
    /* Server: small messages. */
    {S, 'R', 8, FRAME_OK},
    {S, 'R', SMALL_MAX, FRAME_OK},
    {S, 'R', SMALL_MAX + 1, FRAME_BAD_LENGTH},
    {S, 'S', SMALL_MAX, FRAME_OK},
    {S, 'S', SMALL_MAX + 1, FRAME_BAD_LENGTH},
    {S, 'C', 13, FRAME_OK},
    {S, 'v', 12, FRAME_OK},
    {S, 'G', 7, FRAME_OK},
    {S, 'H', 7, FRAME_OK},
    {S, 'W', 7, FRAME_OK},
    /* Server: big messages. */
    {S, 'T', HUGE_MAX, FRAME_OK},
    {S, 'T', HUGE_MAX + 1, FRAME_BAD_LENGTH},
    {S, 't', HUGE_MAX, FRAME_OK},
    {S, 'E', HUGE_MAX, FRAME_OK},
    {S, 'E', HUGE_MAX + 1, FRAME_BAD_LENGTH},
    {S, 'N', HUGE_MAX, FRAME_OK},
    {S, 'A', HUGE_MAX, FRAME_OK},
    {S, 'D', HUGE_MAX, FRAME_OK},
    {S, 'D', HUGE_MAX + 1, FRAME_BAD_LENGTH},
    {S, 'd', HUGE_MAX, FRAME_OK},
    {S, 'd', HUGE_MAX + 1, FRAME_BAD_LENGTH},
    {S, 'V', HUGE_MAX, FRAME_OK},
    /* Server: types only a client may send, and garbage. */
    {S, 'Q', 10, FRAME_BAD_TYPE},
    {S, 'P', 10, FRAME_BAD_TYPE},
    {S, 'B', 10, FRAME_BAD_TYPE},
    {S, 'X', 4, FRAME_BAD_TYPE},
    {S, 'p', 10, FRAME_BAD_TYPE},
    {S, 'F', 10, FRAME_BAD_TYPE},
    {S, 'f', 10, FRAME_BAD_TYPE},
    {S, 0x00, 4, FRAME_BAD_TYPE},
    {S, 'z', 5, FRAME_BAD_TYPE},
};

#undef C
#undef S

static void test_header_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(header_cases) / sizeof(header_cases[0]); i++) {
		const struct header_case *c = &header_cases[i];
		/* Exactly five bytes on the heap: ASan proves nothing past the
		 * header is read. */
		uint8_t *p = malloc(5);
		struct frame f = {0, 0};
		enum frame_result r;

		assert_non_null(p);
		put_header(p, c->type, c->len);
		r = frame_header(c->side, p, 5, &f);
		if (r != c->want)
			print_error("case %zu: side %d type 0x%02x len %u: got %d want %d\n", i, (int)c->side,
			            c->type, c->len, (int)r, (int)c->want);
		assert_int_equal(r, c->want);
		if (r == FRAME_OK) {
			assert_int_equal(f.type, c->type);
			assert_int_equal(f.len, c->len);
			assert_int_equal(frame_total(&f), (size_t)c->len + 1);
		}
		free(p);
	}
}

/* Every byte value on each side: exactly the listed types are valid, and
 * frame_max_len() gives their limit. */
static void check_side_table(enum frame_side side, const char *fixed4, const char *small, const char *huge)
{
	for (int t = 0; t < 256; t++) {
		uint32_t want = 0;

		if (t != 0 && strchr(fixed4, t) != NULL)
			want = 4;
		else if (t != 0 && strchr(small, t) != NULL)
			want = SMALL_MAX;
		else if (t != 0 && strchr(huge, t) != NULL)
			want = HUGE_MAX;
		if (side == FRAME_FROM_SERVER && t == 'Z')
			want = 5;
		if (side == FRAME_FROM_SERVER && t == 'K')
			want = 12;
		if (frame_max_len(side, (uint8_t)t) != want)
			print_error("side %d type 0x%02x: max %u want %u\n", (int)side, t,
			            frame_max_len(side, (uint8_t)t), want);
		assert_int_equal(frame_max_len(side, (uint8_t)t), want);
	}
}

static void test_max_len_client(void **state)
{
	(void)state;
	check_side_table(FRAME_FROM_CLIENT, "SHXc", "EDCfp", "QPBdF");
}

static void test_max_len_server(void **state)
{
	(void)state;
	check_side_table(FRAME_FROM_SERVER, "123nsIc", "RSCvGHW", "TtENADdV");
}

static void test_need_more(void **state)
{
	uint8_t hdr[5];
	struct frame f;

	(void)state;
	put_header(hdr, 'Q', 100);
	for (size_t avail = 0; avail < 5; avail++) {
		assert_int_equal(frame_header(FRAME_FROM_CLIENT, hdr, avail, &f), FRAME_NEED_MORE);
		assert_int_equal(frame_header(FRAME_FROM_SERVER, hdr, avail, &f), FRAME_NEED_MORE);
	}
	/* Even a hostile header is only judged once all 5 bytes are in. */
	put_header(hdr, 0xff, 0xffffffffu);
	assert_int_equal(frame_header(FRAME_FROM_CLIENT, hdr, 4, &f), FRAME_NEED_MORE);
	assert_int_equal(frame_header(FRAME_FROM_CLIENT, hdr, 5, &f), FRAME_BAD_TYPE);
	/* The header alone is enough: the body need not have arrived. */
	put_header(hdr, 'Q', 100);
	assert_int_equal(frame_header(FRAME_FROM_CLIENT, hdr, 5, &f), FRAME_OK);
	assert_int_equal(f.len, 100);
	assert_int_equal(frame_total(&f), 101);
}

/* A failed header still reports what it saw, for the log line. */
static void test_bad_header_reports_fields(void **state)
{
	uint8_t hdr[5];
	struct frame f = {0, 0};

	(void)state;
	put_header(hdr, 'Z', 6);
	assert_int_equal(frame_header(FRAME_FROM_SERVER, hdr, 5, &f), FRAME_BAD_LENGTH);
	assert_int_equal(f.type, 'Z');
	assert_int_equal(f.len, 6);
}

struct stream {
	uint8_t data[512];
	size_t len;
	size_t starts[16]; /* offset of each message */
	uint8_t types[16];
	int n;
};

static void stream_add(struct stream *s, uint8_t type, const void *body, size_t n)
{
	assert_true(s->len + 5 + n <= sizeof(s->data));
	s->starts[s->n] = s->len;
	s->types[s->n] = type;
	s->n++;
	put_header(s->data + s->len, type, (uint32_t)(n + 4));
	if (n > 0)
		memcpy(s->data + s->len + 5, body, n);
	s->len += 5 + n;
}

/* What a server sends after a successful login and "SHOW server_version". */
static void server_stream(struct stream *s)
{
	static const uint8_t auth_ok[] = {0, 0, 0, 0};
	static const char ps[] = "server_version\00015.6";
	static const uint8_t key[] = {0, 0, 0x30, 0x39, 0xde, 0xad, 0xbe, 0xef};
	static const uint8_t rd[] = {0,   1,   's', 'e',  'r',  'v',  'e',  'r',  '_',  'v', 'e', 'r',
	                             's', 'i', 'o', 'n',  0,    0,    0,    0,    0,    0,   0,   0,
	                             0,   0,   25,  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0,   0};
	static const uint8_t dr[] = {0, 1, 0, 0, 0, 4, '1', '5', '.', '6'};
	static const char cc[] = "SHOW";

	memset(s, 0, sizeof(*s));
	stream_add(s, 'R', auth_ok, sizeof(auth_ok));
	stream_add(s, 'S', ps, sizeof(ps));
	stream_add(s, 'K', key, sizeof(key));
	stream_add(s, 'Z', "I", 1);
	stream_add(s, 'T', rd, sizeof(rd));
	stream_add(s, 'D', dr, sizeof(dr));
	stream_add(s, 'C', cc, sizeof(cc));
	stream_add(s, 'Z', "I", 1);
}

static void client_stream(struct stream *s)
{
	static const char q[] = "select 1";
	static const char parse[] = "\0select $1\0\0\0";
	static const char bind[] = "\0\0\0\0\0\1\0\0\0\1x\0\0";
	static const char exec[] = "\0\0\0\0";

	memset(s, 0, sizeof(*s));
	stream_add(s, 'Q', q, sizeof(q));
	stream_add(s, 'P', parse, sizeof(parse) - 1);
	stream_add(s, 'B', bind, sizeof(bind) - 1);
	stream_add(s, 'E', exec, sizeof(exec));
	stream_add(s, 'S', NULL, 0);
	stream_add(s, 'X', NULL, 0);
}

/* Feeds the stream one byte at a time into a reassembly buffer, the way a
 * connection would see it over a slow link; every boundary must be found,
 * and no message reported before all of it is in. */
static void check_byte_at_a_time(enum frame_side side, const struct stream *s)
{
	uint8_t acc[512];
	size_t acc_len = 0, consumed = 0;
	int found = 0;

	for (size_t i = 0; i < s->len; i++) {
		acc[acc_len++] = s->data[i];
		for (;;) {
			struct frame f;
			enum frame_result r = frame_header(side, acc, acc_len, &f);

			if (r == FRAME_NEED_MORE) {
				assert_true(acc_len < 5);
				break;
			}
			assert_int_equal(r, FRAME_OK);
			if (acc_len < frame_total(&f))
				break;
			assert_true(found < s->n);
			assert_int_equal(consumed, s->starts[found]);
			assert_int_equal(f.type, s->types[found]);
			assert_memory_equal(acc, s->data + consumed, frame_total(&f));
			found++;
			consumed += frame_total(&f);
			memmove(acc, acc + frame_total(&f), acc_len - frame_total(&f));
			acc_len -= frame_total(&f);
		}
	}
	assert_int_equal(found, s->n);
	assert_int_equal(acc_len, 0);
	assert_int_equal(consumed, s->len);
}

/* The streaming variant: only the 5 header bytes are ever held; bodies are
 * counted off as "forwarded" as each byte passes. */
static void check_streaming(enum frame_side side, const struct stream *s, size_t chunk)
{
	uint8_t hdr[5];
	size_t hdr_len = 0, body_left = 0, pos = 0;
	int found = 0;

	while (pos < s->len) {
		size_t n = s->len - pos < chunk ? s->len - pos : chunk;
		const uint8_t *p = s->data + pos;

		pos += n;
		while (n > 0) {
			if (body_left > 0) {
				size_t take = n < body_left ? n : body_left;
				body_left -= take;
				p += take;
				n -= take;
				continue;
			}
			hdr[hdr_len++] = *p++;
			n--;
			if (hdr_len == 5) {
				struct frame f;

				assert_int_equal(frame_header(side, hdr, 5, &f), FRAME_OK);
				assert_int_equal(f.type, s->types[found]);
				found++;
				body_left = f.len - 4;
				hdr_len = 0;
			} else {
				struct frame f;
				assert_int_equal(frame_header(side, hdr, hdr_len, &f), FRAME_NEED_MORE);
			}
		}
	}
	assert_int_equal(found, s->n);
	assert_int_equal(body_left, 0);
	assert_int_equal(hdr_len, 0);
}

static void test_split_reads_server(void **state)
{
	struct stream s;

	(void)state;
	server_stream(&s);
	check_byte_at_a_time(FRAME_FROM_SERVER, &s);
	for (size_t chunk = 1; chunk <= 17; chunk++)
		check_streaming(FRAME_FROM_SERVER, &s, chunk);
}

static void test_split_reads_client(void **state)
{
	struct stream s;

	(void)state;
	client_stream(&s);
	check_byte_at_a_time(FRAME_FROM_CLIENT, &s);
	for (size_t chunk = 1; chunk <= 17; chunk++)
		check_streaming(FRAME_FROM_CLIENT, &s, chunk);
}

/* A stream that goes bad halfway: the good messages before it frame fine,
 * the bad header is caught as soon as its 5 bytes are in. */
static void test_split_reads_then_garbage(void **state)
{
	struct stream s;
	uint8_t acc[512];
	size_t acc_len = 0;
	int found = 0;
	enum frame_result last = FRAME_NEED_MORE;

	(void)state;
	server_stream(&s);
	put_header(s.data + s.len, 'Z', 0x80000000u); /* ReadyForQuery claiming 2 GiB */
	s.len += 5;
	for (size_t i = 0; i < s.len && last != FRAME_BAD_LENGTH; i++) {
		acc[acc_len++] = s.data[i];
		for (;;) {
			struct frame f;

			last = frame_header(FRAME_FROM_SERVER, acc, acc_len, &f);
			if (last != FRAME_OK || acc_len < frame_total(&f))
				break;
			found++;
			memmove(acc, acc + frame_total(&f), acc_len - frame_total(&f));
			acc_len -= frame_total(&f);
		}
	}
	assert_int_equal(last, FRAME_BAD_LENGTH);
	assert_int_equal(found, s.n);
	assert_int_equal(acc_len, 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_header_table),
	    cmocka_unit_test(test_max_len_client),
	    cmocka_unit_test(test_max_len_server),
	    cmocka_unit_test(test_need_more),
	    cmocka_unit_test(test_bad_header_reports_fields),
	    cmocka_unit_test(test_split_reads_server),
	    cmocka_unit_test(test_split_reads_client),
	    cmocka_unit_test(test_split_reads_then_garbage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
