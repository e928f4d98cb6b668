/* conn.h — one connection with its two events, its lent input buffer and
 * the bytes pgsluice itself wants to send to that peer, over a transport
 * (struct conn_ops: plain sockets here; TLS is a second table).
 * Owns: the fd, the transport state, both events, the input buffer (lent),
 *       the out buffer.
 * Exports: conn_read()/conn_write() with the IO_* vocabulary, event
 *          attach/detach for moving a connection between workers, socket options.
 * Never: interprets protocol bytes (that is client.c/server.c/relay.c); no
 *        other module reads or writes a client or server socket itself. */
#ifndef PGS_CONN_H
#define PGS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <event2/event.h>

#include "buf.h"
#include "proto/frame.h"
#include "proto/msg.h"

#define PGS_MUST_CHECK __attribute__((warn_unused_result))

/* The outcome of one transport operation:
 *   IO_OK      bytes moved (at least one);
 *   IO_AGAIN   nothing can move now: wait for the connection's event (the
 *              transport has arranged, see want_read/want_write, that the
 *              event fires when it can move bytes again);
 *   IO_CLOSED  the peer closed the connection (EOF, reset, broken pipe, or a
 *              TLS close_notify): the connection is over, without blame;
 *   IO_ERROR   any other failure; conn.err holds an errno for the log. */
enum io_result { IO_OK, IO_AGAIN, IO_CLOSED, IO_ERROR };

struct conn;

/* A transport: how bytes cross one connection. conn_init() sets the plain
 * socket table; a TLS upgrade swaps c->ops (and fills c->transport) once its
 * handshake is done, on a connection whose out buffer is empty.
 *
 * Every operation is non-blocking, retries EINTR itself and never raises
 * SIGPIPE. None is called by code outside conn.c and the transports.
 *
 * read     Move up to len (> 0) bytes of the peer's stream into dst.
 *          IO_OK with *got in [1, len]; IO_AGAIN, IO_CLOSED, IO_ERROR with
 *          *got untouched. A transport that buffers decoded bytes (TLS
 *          records) may return them without touching the socket.
 * writev   Send iov[0..n_iov) in order as one stream (n_iov is 1 or 2, each
 *          iov_len > 0). IO_OK with *sent in [1, total]: a short count means
 *          the transport cannot take more now, and the caller waits for the
 *          write event instead of calling again. IO_AGAIN when nothing was
 *          taken. After IO_AGAIN or a short count, the next call starts with
 *          the first unsent byte (the same bytes at a possibly moved address,
 *          possibly followed by more) — what SSL_write's retry rule asks for
 *          with SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER and partial writes on.
 *          The plain table sends both iovecs with one sendmsg: forwarding
 *          our own bytes and a peer's span costs one syscall and no copy.
 * pending  Bytes the transport already holds for read() that a poll of the
 *          socket cannot see (SSL_pending); plain: 0. conn.c re-activates
 *          the read event itself while this is > 0 (see conn_read and
 *          conn_want_read), so level-triggered callers never stall on them.
 * want_read, want_write
 *          Called when the caller turns interest in reading or writing on or
 *          off (c->reading / c->writing already updated; ev_write exists when
 *          on). Plain: add or delete ev_read / ev_write. A transport whose
 *          operation needs the other direction (SSL_write returning
 *          WANT_READ, SSL_read returning WANT_WRITE) arms the event for the
 *          readiness it needs here, and re-arms from read/writev when that
 *          need appears while the event is already on, so that the caller's
 *          callback runs when its operation can make progress.
 * close    Best-effort orderly end (TLS: one non-blocking SSL_shutdown),
 *          free the transport state, close fd and set it to -1. Tolerates
 *          fd < 0. Events and buffers are conn.c's, not the transport's. */
struct conn_ops {
	const char *name; /* "plain", "tls": for logs and SHOW */
	enum io_result (*read)(struct conn *c, void *dst, size_t len, size_t *got);
	enum io_result (*writev)(struct conn *c, const struct iovec *iov, int n_iov, size_t *sent);
	size_t (*pending)(const struct conn *c);
	void (*want_read)(struct conn *c, bool on);
	void (*want_write)(struct conn *c, bool on);
	void (*close)(struct conn *c);
};

extern const struct conn_ops conn_plain_ops;

struct conn {
	const struct conn_ops *ops; /* the transport; conn_plain_ops after conn_init */
	void *transport;            /* the transport's own state (plain: NULL) */
	int fd;
	int err;               /* errno of the last IO_ERROR */
	struct event *ev_read; /* owned; assigned to the current worker's base */
	struct event
	    *ev_write; /* owned; made the first time a write would block (idle connections have none) */
	event_callback_fn write_cb; /* for ev_write (its argument is ev_read's) */
	struct buf *in;             /* lent while bytes are in flight */
	struct msgbuf out; /* bytes pgsluice made for this peer; sent before the peer's forwarded span */
	uint32_t out_sent;
	uint32_t body_left;    /* bytes of the message being streamed through that are not framed yet */
	bool body_drop;        /* those bytes are dropped, not forwarded */
	bool reading, writing; /* whether ev_read / ev_write are added */
	uint64_t bytes_in, bytes_out; /* totals, for stats */
};

/* A plain connection on fd (may be -1 and set later, before conn_attach). */
void conn_init(struct conn *c, int fd);
/* (Re)assign both events to base; they start disabled. */
bool conn_attach(struct conn *c, struct event_base *base, event_callback_fn read_cb,
                 event_callback_fn write_cb, void *arg);
/* Remove both events from their base (safe from another thread). */
void conn_detach(struct conn *c);
/* Whether c's events belong to base. */
bool conn_on_base(const struct conn *c, const struct event_base *base);
void conn_want_read(struct conn *c, bool on);
void conn_want_write(struct conn *c, bool on);

/* One transport read into c->in (lent from bp when missing). IO_AGAIN also
 * when the buffer is full: the caller must drain it before asking again.
 * While the transport still holds bytes (pending) and reading is on, the
 * read event is activated again, as a readable socket would be. */
PGS_MUST_CHECK enum io_result conn_read(struct conn *c, struct buf_pool *bp);
static inline bool conn_in_full(const struct conn *c)
{
	return c->in != NULL && c->in->end == c->in->cap && c->in->start == 0;
}
/* Write c->out, then span's [start, scan) (a linked peer's framed bytes;
 * may be NULL), both in one transport writev. IO_OK when everything went
 * out, IO_AGAIN when the transport is full (c->out_sent and span->start
 * say how far it got). */
PGS_MUST_CHECK enum io_result conn_write(struct conn *c, struct buf *span);
static inline bool conn_out_empty(const struct conn *c)
{
	return c->out_sent >= c->out.len;
}
/* Append the framed-but-unsent bytes of span to c->out so that what is
 * appended next keeps its place in the stream. false on OOM. */
PGS_MUST_CHECK bool conn_take_span(struct conn *c, struct buf *span);
/* One transport read into dst, bypassing c->in (a connection that only
 * waits for its peer to close, like a cancel request's). */
PGS_MUST_CHECK enum io_result conn_read_into(struct conn *c, void *dst, size_t len);
/* Best effort, now: hand data to the transport if it takes it without
 * waiting, bypassing c->out (a Terminate before a close). Anything not
 * taken is dropped. */
void conn_send_now(struct conn *c, const void *data, size_t len);
/* Give the input buffer back if nothing is in it. */
void conn_release_in(struct conn *c, struct buf_pool *bp);
/* Free the events, end the transport (closing fd), give the buffers back;
 * bp may be NULL when no input buffer is lent. */
void conn_close(struct conn *c, struct buf_pool *bp);

/* For the phases that handle one whole message at a time (login, auth,
 * admin console): the next complete message in c->in, consumed. FRAME_OK
 * with *body and *body_len set; FRAME_NEED_MORE (the buffer is compacted);
 * FRAME_BAD_* for a bad header or a message larger than the buffer. */
enum frame_result conn_next_message(struct conn *c, enum frame_side side, struct frame *f,
                                    const uint8_t **body, size_t *body_len);

/* Socket options. */
bool sock_set_nonblock(int fd);
void sock_tune_tcp(int fd, bool keepalive, int idle, int intvl, int cnt, long user_timeout_ms);

#endif
