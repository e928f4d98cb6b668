/* conn.c — reads and writes for one connection, through its transport
 * (conn_ops; the plain socket one is here). A write sends our own bytes
 * first and then the linked peer's framed span in one writev, so
 * forwarding copies nothing in the common case. */
#include "conn.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define CONN_OUT_MAX (64u << 20) /* our own bytes; bounded by what one peer can owe another */

/* --- the plain socket transport --- */

static enum io_result plain_read(struct conn *c, void *dst, size_t len, size_t *got)
{
	for (;;) {
		ssize_t n = recv(c->fd, dst, len, 0);
		if (n > 0) {
			*got = (size_t)n;
			return IO_OK;
		}
		if (n == 0)
			return IO_CLOSED;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return IO_AGAIN;
		c->err = errno;
		return errno == ECONNRESET ? IO_CLOSED : IO_ERROR;
	}
}

static enum io_result plain_writev(struct conn *c, const struct iovec *iov, int n_iov, size_t *sent)
{
	struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n_iov};
	for (;;) {
		ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
		if (w > 0) {
			*sent = (size_t)w;
			return IO_OK;
		}
		if (w == 0)
			return IO_AGAIN;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return IO_AGAIN;
		c->err = errno;
		return (errno == EPIPE || errno == ECONNRESET) ? IO_CLOSED : IO_ERROR;
	}
}

static size_t plain_pending(const struct conn *c)
{
	(void)c;
	return 0; /* the kernel's buffer is all there is, and poll sees it */
}

static void plain_want_read(struct conn *c, bool on)
{
	if (on)
		event_add(c->ev_read, NULL);
	else
		event_del(c->ev_read);
}

static void plain_want_write(struct conn *c, bool on)
{
	if (on)
		event_add(c->ev_write, NULL);
	else
		event_del(c->ev_write);
}

static void plain_close(struct conn *c)
{
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
}

const struct conn_ops conn_plain_ops = {
    .name = "plain",
    .read = plain_read,
    .writev = plain_writev,
    .pending = plain_pending,
    .want_read = plain_want_read,
    .want_write = plain_want_write,
    .close = plain_close,
};

/* --- connections --- */

/* Bytes held inside the transport make no socket readable: while there are
 * some and the caller reads, run the read callback again as a readable
 * socket would (level-triggered, like the rest of the loop). Plain sockets
 * never hold any; TLS does (a decrypted record not yet returned, or records
 * read ahead), after a read that filled the buffer or when reading is
 * turned back on after the caller drained it. */
static inline void reactivate_if_pending(struct conn *c)
{
	if (c->reading && c->ops->pending(c) > 0)
		event_active(c->ev_read, EV_READ, 0);
}

void conn_init(struct conn *c, int fd)
{
	memset(c, 0, sizeof(*c));
	c->ops = &conn_plain_ops;
	c->fd = fd;
	msgbuf_init(&c->out, CONN_OUT_MAX);
}

bool conn_attach(struct conn *c, struct event_base *base, event_callback_fn read_cb,
                 event_callback_fn write_cb, void *arg)
{
	c->reading = c->writing = false;
	c->write_cb = write_cb;
	if (c->ev_read == NULL) {
		c->ev_read = event_new(base, c->fd, EV_READ | EV_PERSIST, read_cb, arg);
		return c->ev_read != NULL;
	}
	if (event_assign(c->ev_read, base, c->fd, EV_READ | EV_PERSIST, read_cb, arg) != 0)
		return false;
	return c->ev_write == NULL ||
	       event_assign(c->ev_write, base, c->fd, EV_WRITE | EV_PERSIST, write_cb, arg) == 0;
}

bool conn_on_base(const struct conn *c, const struct event_base *base)
{
	return c->ev_read != NULL && event_get_base(c->ev_read) == base;
}

void conn_detach(struct conn *c)
{
	/* Events not added are not touched: their base may be another worker's,
	 * and libevent would take that loop's lock, which a descheduled thread
	 * may hold (a server handed on was detached by the worker it left). */
	if (c->ev_read != NULL && c->reading)
		event_del(c->ev_read);
	if (c->ev_write != NULL && c->writing)
		event_del(c->ev_write);
	c->reading = c->writing = false;
}

void conn_want_read(struct conn *c, bool on)
{
	if (c->reading == on || c->ev_read == NULL)
		return;
	c->reading = on;
	c->ops->want_read(c, on);
	if (on)
		reactivate_if_pending(c);
}

void conn_want_write(struct conn *c, bool on)
{
	if (c->writing == on || c->ev_read == NULL)
		return;
	if (c->ev_write == NULL) {
		if (!on)
			return;
		c->ev_write = event_new(event_get_base(c->ev_read), c->fd, EV_WRITE | EV_PERSIST, c->write_cb,
		                        event_get_callback_arg(c->ev_read));
		if (c->ev_write == NULL)
			return; /* out of memory: the next read or tick tries again */
	}
	c->writing = on;
	c->ops->want_write(c, on);
}

enum io_result conn_read(struct conn *c, struct buf_pool *bp)
{
	if (c->in == NULL && (c->in = buf_lend(bp)) == NULL) {
		c->err = ENOMEM;
		return IO_ERROR;
	}
	struct buf *b = c->in;
	if (b->end == b->cap)
		buf_compact(b);
	if (b->end == b->cap) {
		reactivate_if_pending(c);
		return IO_AGAIN;
	}
	size_t n = 0;
	enum io_result r = c->ops->read(c, b->data + b->end, b->cap - b->end, &n);
	if (r == IO_OK) {
		b->end += (uint32_t)n;
		c->bytes_in += (uint64_t)n;
		reactivate_if_pending(c);
	}
	return r;
}

enum io_result conn_read_into(struct conn *c, void *dst, size_t len)
{
	size_t n = 0;
	enum io_result r = c->ops->read(c, dst, len, &n);
	if (r == IO_OK)
		c->bytes_in += (uint64_t)n;
	return r;
}

enum io_result conn_write(struct conn *c, struct buf *span)
{
	for (;;) {
		struct iovec iov[2];
		int n_iov = 0;
		size_t own = c->out.len - c->out_sent;
		size_t fwd = span != NULL ? buf_pending(span) : 0;
		if (own > 0) {
			iov[n_iov].iov_base = c->out.data + c->out_sent;
			iov[n_iov++].iov_len = own;
		}
		if (fwd > 0) {
			iov[n_iov].iov_base = span->data + span->start;
			iov[n_iov++].iov_len = fwd;
		}
		if (n_iov == 0) {
			if (c->out.len > 0) {
				/* All sent: an idle connection keeps no output buffer. */
				c->out_sent = 0;
				msgbuf_free(&c->out);
			}
			return IO_OK;
		}
		size_t w = 0;
		enum io_result r = c->ops->writev(c, iov, n_iov, &w);
		if (r != IO_OK)
			return r;
		size_t done = w;
		c->bytes_out += done;
		size_t from_own = done < own ? done : own;
		c->out_sent += from_own;
		done -= from_own;
		if (done > 0)
			span->start += (uint32_t)done;
		if (w < own + fwd)
			return IO_AGAIN;
	}
}

void conn_send_now(struct conn *c, const void *data, size_t len)
{
	if (c->fd < 0 || len == 0)
		return;
	struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
	size_t w = 0;
	enum io_result r = c->ops->writev(c, &iov, 1, &w);
	(void)r;
}

bool conn_take_span(struct conn *c, struct buf *span)
{
	if (span == NULL || buf_pending(span) == 0)
		return true;
	msg_bytes(&c->out, span->data + span->start, buf_pending(span));
	if (!msg_ok(&c->out))
		return false;
	span->start = span->scan;
	return true;
}

void conn_release_in(struct conn *c, struct buf_pool *bp)
{
	if (c->in != NULL && buf_is_empty(c->in))
		buf_give_back(bp, &c->in);
}

void conn_close(struct conn *c, struct buf_pool *bp)
{
	if (c->ev_read != NULL) {
		event_free(c->ev_read);
		c->ev_read = NULL;
	}
	if (c->ev_write != NULL) {
		event_free(c->ev_write);
		c->ev_write = NULL;
	}
	c->ops->close(c);
	buf_give_back(bp, &c->in);
	msgbuf_free(&c->out);
	c->out_sent = 0;
}

enum frame_result conn_next_message(struct conn *c, enum frame_side side, struct frame *f,
                                    const uint8_t **body, size_t *body_len)
{
	struct buf *b = c->in;
	if (b == NULL || b->start == b->end)
		return FRAME_NEED_MORE;
	enum frame_result r = frame_header(side, b->data + b->start, b->end - b->start, f);
	if (r != FRAME_OK)
		return r;
	if (frame_total(f) > b->cap)
		return FRAME_BAD_LENGTH;
	if (b->end - b->start < frame_total(f)) {
		buf_compact(b);
		return FRAME_NEED_MORE;
	}
	*body = b->data + b->start + 5;
	*body_len = f->len - 4;
	b->start += (uint32_t)frame_total(f);
	b->scan = b->start;
	return FRAME_OK;
}

bool sock_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0;
}

void sock_tune_tcp(int fd, bool keepalive, int idle, int intvl, int cnt, long user_timeout_ms)
{
	int one = 1, ka = keepalive ? 1 : 0;
	/* Small protocol messages must not wait for Nagle's timer. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* Keepalive and the user timeout are set even when off: a listening
	 * socket re-tuned by a reload passes them on to accepted sockets. */
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &ka, sizeof(ka));
	if (keepalive) {
		if (idle > 0)
			setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
		if (intvl > 0)
			setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
		if (cnt > 0)
			setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	}
	unsigned int t = user_timeout_ms > 0 ? (unsigned int)user_timeout_ms : 0;
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &t, sizeof(t));
}
