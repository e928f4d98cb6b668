/* test_conn.c — the plain transport over a socketpair: reads into a lent
 * buffer, the IO_* results, our own bytes and a peer's span in one writev,
 * a partial write's accounting, conn_take_span, and the read event being
 * re-activated while a transport holds bytes a poll cannot see. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "conn.h"

struct pair {
	struct conn c; /* on fd[0] */
	int peer;      /* fd[1] */
	struct buf_pool bp;
};

static void pair_open(struct pair *p)
{
	int fd[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fd), 0);
	conn_init(&p->c, fd[0]);
	assert_ptr_equal(p->c.ops, &conn_plain_ops);
	p->peer = fd[1];
	memset(&p->bp, 0, sizeof(p->bp));
}

static void pair_close(struct pair *p)
{
	conn_close(&p->c, &p->bp);
	assert_int_equal(p->c.fd, -1);
	if (p->peer >= 0)
		close(p->peer);
	assert_int_equal(p->bp.lent, 0);
	buf_pool_destroy(&p->bp);
}

/* Everything the peer can read now (at most cap bytes). */
static size_t peer_drain(int fd, uint8_t *dst, size_t cap)
{
	size_t got = 0;
	while (got < cap) {
		ssize_t n = recv(fd, dst + got, cap - got, 0);
		if (n <= 0) {
			assert_true(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
			break;
		}
		got += (size_t)n;
	}
	return got;
}

/* A span: a lent buffer holding framed bytes [0, framed) and unframed ones after. */
static struct buf *make_span(struct buf_pool *bp, size_t framed, size_t unframed, uint8_t seed)
{
	struct buf *b = buf_lend(bp);
	assert_non_null(b);
	assert_true(framed + unframed <= b->cap);
	for (size_t i = 0; i < framed + unframed; i++)
		b->data[i] = (uint8_t)(seed + i * 7);
	b->start = 0;
	b->scan = (uint32_t)framed;
	b->end = (uint32_t)(framed + unframed);
	return b;
}

/* A transport that counts writev calls and iovecs, then sends like plain. */
static int writev_calls, writev_last_iovs;
static enum io_result counting_writev(struct conn *c, const struct iovec *iov, int n_iov, size_t *sent)
{
	writev_calls++;
	writev_last_iovs = n_iov;
	return conn_plain_ops.writev(c, iov, n_iov, sent);
}

static void test_read_into_lent_buffer(void **state)
{
	(void)state;
	struct pair p;
	pair_open(&p);
	assert_null(p.c.in);
	assert_int_equal(send(p.peer, "hello", 5, 0), 5);
	assert_int_equal(conn_read(&p.c, &p.bp), IO_OK);
	assert_non_null(p.c.in);
	assert_int_equal(p.bp.lent, 1);
	assert_int_equal(p.c.in->end - p.c.in->start, 5);
	assert_memory_equal(p.c.in->data + p.c.in->start, "hello", 5);
	assert_int_equal(p.c.bytes_in, 5);
	/* Not given back while bytes are in it; given back once consumed. */
	conn_release_in(&p.c, &p.bp);
	assert_non_null(p.c.in);
	p.c.in->start = p.c.in->scan = p.c.in->end;
	conn_release_in(&p.c, &p.bp);
	assert_null(p.c.in);
	assert_int_equal(p.bp.lent, 0);
	pair_close(&p);
}

static void test_read_empty_is_again(void **state)
{
	(void)state;
	struct pair p;
	pair_open(&p);
	assert_int_equal(conn_read(&p.c, &p.bp), IO_AGAIN);
	assert_int_equal(p.c.bytes_in, 0);
	uint8_t tmp[8];
	assert_int_equal(conn_read_into(&p.c, tmp, sizeof(tmp)), IO_AGAIN);
	pair_close(&p);
}

static void test_read_full_buffer_is_again(void **state)
{
	(void)state;
	struct pair p;
	pair_open(&p);
	assert_int_equal(send(p.peer, "x", 1, 0), 1);
	p.c.in = buf_lend(&p.bp);
	assert_non_null(p.c.in);
	p.c.in->start = p.c.in->scan = 0;
	p.c.in->end = p.c.in->cap; /* full, nothing consumed: no room after compacting */
	assert_true(conn_in_full(&p.c));
	assert_int_equal(conn_read(&p.c, &p.bp), IO_AGAIN);
	assert_int_equal(p.c.bytes_in, 0);
	/* Once drained, the byte waiting in the socket is read. */
	p.c.in->start = p.c.in->scan = p.c.in->end;
	assert_int_equal(conn_read(&p.c, &p.bp), IO_OK);
	assert_int_equal(p.c.in->start, 0); /* compacted */
	assert_int_equal(p.c.in->end, 1);
	assert_int_equal(p.c.in->data[0], 'x');
	pair_close(&p);
}

static void test_peer_close_is_closed(void **state)
{
	(void)state;
	struct pair p;
	pair_open(&p);
	assert_int_equal(send(p.peer, "ab", 2, 0), 2);
	close(p.peer);
	p.peer = -1;
	/* What was sent before the close is read first. */
	assert_int_equal(conn_read(&p.c, &p.bp), IO_OK);
	assert_int_equal(p.c.in->end, 2);
	assert_int_equal(conn_read(&p.c, &p.bp), IO_CLOSED);
	uint8_t tmp[4];
	assert_int_equal(conn_read_into(&p.c, tmp, sizeof(tmp)), IO_CLOSED);
	/* Writing to a closed peer is IO_CLOSED too, without SIGPIPE. */
	msg_bytes(&p.c.out, "zz", 2);
	assert_int_equal(conn_write(&p.c, NULL), IO_CLOSED);
	assert_int_equal(p.c.err, EPIPE);
	pair_close(&p);
}

static void test_own_bytes_and_span_in_one_writev(void **state)
{
	(void)state;
	struct pair p;
	pair_open(&p);
	struct conn_ops counting = conn_plain_ops;
	counting.writev = counting_writev;
	p.c.ops = &counting;
	writev_calls = 0;

	msg_bytes(&p.c.out, "own", 3);
	assert_true(msg_ok(&p.c.out));
	struct buf *span = make_span(&p.bp, 10, 4, 'a');
	assert_int_equal(conn_write(&p.c, span), IO_OK);
	assert_int_equal(writev_calls, 1);
	assert_int_equal(writev_last_iovs, 2);
	assert_int_equal(p.c.bytes_out, 13);
	assert_int_equal(span->start, 10); /* the framed bytes went */
	assert_int_equal(span->scan, 10);
	assert_int_equal(span->end, 14); /* the unframed ones stay */
	assert_true(conn_out_empty(&p.c));
	assert_int_equal(p.c.out.len, 0); /* an idle connection keeps no output buffer */
	assert_int_equal(p.c.out_sent, 0);

	uint8_t got[64];
	assert_int_equal(peer_drain(p.peer, got, sizeof(got)), 13);
	assert_memory_equal(got, "own", 3);
	assert_memory_equal(got + 3, span->data, 10);

	/* Nothing to send: no transport call at all. */
	assert_int_equal(conn_write(&p.c, span), IO_OK);
	assert_int_equal(conn_write(&p.c, NULL), IO_OK);
	assert_int_equal(writev_calls, 1);

	/* conn_send_now: one write of its own bytes, bypassing out. */
	conn_send_now(&p.c, "X\0\0\0\4", 5);
	assert_int_equal(writev_calls, 2);
	assert_int_equal(writev_last_iovs, 1);
	assert_int_equal(peer_drain(p.peer, got, sizeof(got)), 5);
	assert_int_equal(got[0], 'X');

	buf_give_back(&p.bp, &span);
	pair_close(&p);
}

/* Our own bytes, then a span, through a small socket: each IO_AGAIN
 * accounts for exactly what the peer received, and the stream arrives whole
 * and in order. */
static void partial_write(size_t own_len, size_t span_len)
{
	struct pair p;
	pair_open(&p);
	int small = 4096;
	assert_int_equal(setsockopt(p.c.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);

	size_t total = own_len + span_len;
	uint8_t *want = malloc(total), *got = malloc(total + 1);
	assert_non_null(want);
	assert_non_null(got);
	for (size_t i = 0; i < own_len; i++)
		want[i] = (uint8_t)(i * 13 + 1);
	msg_bytes(&p.c.out, want, own_len);
	assert_true(msg_ok(&p.c.out));
	struct buf *span = make_span(&p.bp, span_len, 3, 'S');
	memcpy(want + own_len, span->data, span_len);

	size_t received = 0;
	int agains = 0;
	enum io_result r;
	while ((r = conn_write(&p.c, span)) == IO_AGAIN) {
		agains++;
		assert_true(p.c.bytes_out < total);
		/* Sent = our bytes sent + the span's consumed bytes; the span only
		 * moves once all our own bytes are out. */
		assert_int_equal(p.c.bytes_out, (uint64_t)p.c.out_sent + span->start);
		if (p.c.out_sent < own_len)
			assert_int_equal(span->start, 0);
		assert_int_equal(span->scan, span_len);
		/* The socket is full: asking again sends nothing. */
		uint64_t before = p.c.bytes_out;
		assert_int_equal(conn_write(&p.c, span), IO_AGAIN);
		assert_int_equal(p.c.bytes_out, before);
		received += peer_drain(p.peer, got + received, total + 1 - received);
		assert_int_equal(received, p.c.bytes_out);
	}
	assert_int_equal(r, IO_OK);
	assert_true(agains > 0);
	assert_int_equal(p.c.bytes_out, total);
	assert_int_equal(span->start, span_len);
	assert_true(conn_out_empty(&p.c));
	received += peer_drain(p.peer, got + received, total + 1 - received);
	assert_int_equal(received, total);
	assert_memory_equal(got, want, total);

	free(want);
	free(got);
	buf_give_back(&p.bp, &span);
	pair_close(&p);
}

static void test_partial_write_inside_span(void **state)
{
	(void)state;
	partial_write(100, PGS_BUF_SIZE - 3);
}

static void test_partial_write_inside_own_bytes(void **state)
{
	(void)state;
	partial_write(200000, 5000);
}

static void test_take_span(void **state)
{
	(void)state;
	struct pair p;
	pair_open(&p);
	assert_true(conn_take_span(&p.c, NULL));
	msg_bytes(&p.c.out, "ab", 2);
	struct buf *span = make_span(&p.bp, 6, 2, 'k');
	uint8_t framed[6], unframed[2];
	memcpy(framed, span->data, 6);
	memcpy(unframed, span->data + 6, 2);
	assert_true(conn_take_span(&p.c, span));
	assert_int_equal(span->start, 6);
	assert_int_equal(span->scan, 6);
	assert_int_equal(span->end, 8);
	assert_memory_equal(span->data + 6, unframed, 2);
	assert_int_equal(p.c.out.len, 8);
	assert_memory_equal(p.c.out.data, "ab", 2);
	assert_memory_equal(p.c.out.data + 2, framed, 6);
	/* An empty span takes nothing. */
	assert_true(conn_take_span(&p.c, span));
	assert_int_equal(p.c.out.len, 8);
	/* What is appended next keeps its place after the taken bytes. */
	msg_bytes(&p.c.out, "Z", 1);
	assert_int_equal(conn_write(&p.c, span), IO_OK);
	uint8_t got[16];
	assert_int_equal(peer_drain(p.peer, got, sizeof(got)), 9);
	assert_memory_equal(got, "ab", 2);
	assert_memory_equal(got + 2, framed, 6);
	assert_int_equal(got[8], 'Z');
	buf_give_back(&p.bp, &span);
	pair_close(&p);
}

/* A transport holding bytes no poll can see (as TLS does) gets its read
 * callback run anyway once reading is turned on, and again after a read
 * while it still holds some. */
static size_t fake_held;
static size_t held_pending(const struct conn *c)
{
	(void)c;
	return fake_held;
}
static enum io_result held_read(struct conn *c, void *dst, size_t len, size_t *got)
{
	(void)c;
	if (fake_held == 0)
		return IO_AGAIN;
	size_t n = len < fake_held ? len : fake_held;
	memset(dst, 'h', n);
	fake_held -= n;
	*got = n;
	return IO_OK;
}

static int read_cb_calls;
static void count_read_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	read_cb_calls++;
}

static void test_pending_bytes_reactivate_read(void **state)
{
	(void)state;
	struct pair p;
	pair_open(&p);
	struct event_base *base = event_base_new();
	assert_non_null(base);
	struct conn_ops held = conn_plain_ops;
	held.read = held_read;
	held.pending = held_pending;
	p.c.ops = &held;
	assert_true(conn_attach(&p.c, base, count_read_cb, count_read_cb, NULL));
	read_cb_calls = 0;

	/* Nothing held, the socket empty: reading on runs no callback. */
	fake_held = 0;
	conn_want_read(&p.c, true);
	assert_int_equal(event_base_loop(base, EVLOOP_NONBLOCK), 0);
	assert_int_equal(read_cb_calls, 0);

	/* Turned on while bytes are held: the callback runs. */
	conn_want_read(&p.c, false);
	fake_held = 10;
	conn_want_read(&p.c, true);
	assert_int_equal(event_base_loop(base, EVLOOP_NONBLOCK), 0);
	assert_int_equal(read_cb_calls, 1);

	/* A read that leaves bytes held runs it again; one that takes the last does not. */
	p.c.in = buf_lend(&p.bp);
	p.c.in->end = p.c.in->scan = p.c.in->cap - 4;
	assert_int_equal(conn_read(&p.c, &p.bp), IO_OK);
	assert_int_equal(fake_held, 6);
	assert_int_equal(event_base_loop(base, EVLOOP_NONBLOCK), 0);
	assert_int_equal(read_cb_calls, 2);
	p.c.in->start = p.c.in->scan = p.c.in->end;
	assert_int_equal(conn_read(&p.c, &p.bp), IO_OK);
	assert_int_equal(fake_held, 0);
	assert_int_equal(event_base_loop(base, EVLOOP_NONBLOCK), 0);
	assert_int_equal(read_cb_calls, 2);

	/* Reading off: held bytes run nothing. */
	conn_want_read(&p.c, false);
	fake_held = 3;
	p.c.in->start = p.c.in->scan = p.c.in->end = 0;
	assert_int_equal(conn_read(&p.c, &p.bp), IO_OK);
	assert_true(event_base_loop(base, EVLOOP_NONBLOCK) >= 0); /* 1: no event left */
	assert_int_equal(read_cb_calls, 2);

	conn_detach(&p.c);
	pair_close(&p);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_read_into_lent_buffer),
	    cmocka_unit_test(test_read_empty_is_again),
	    cmocka_unit_test(test_read_full_buffer_is_again),
	    cmocka_unit_test(test_peer_close_is_closed),
	    cmocka_unit_test(test_own_bytes_and_span_in_one_writev),
	    cmocka_unit_test(test_partial_write_inside_span),
	    cmocka_unit_test(test_partial_write_inside_own_bytes),
	    cmocka_unit_test(test_take_span),
	    cmocka_unit_test(test_pending_bytes_reactivate_read),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
