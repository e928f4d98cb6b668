/* conn.h — one socket with its two events, its lent input buffer and the
 * bytes pgsluice itself wants to send to that peer.
 * Owns: the fd, both events, the input buffer (lent), the out buffer.
 * Exports: conn_read()/conn_write() with the IO_* vocabulary, event
 *          attach/detach for moving a connection between workers, socket options.
 * Never: interprets protocol bytes (that is client.c/server.c/relay.c). */
#ifndef PGS_CONN_H
#define PGS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "buf.h"
#include "proto/frame.h"
#include "proto/msg.h"

#define PGS_MUST_CHECK __attribute__((warn_unused_result))

enum io_result { IO_OK, IO_AGAIN, IO_CLOSED, IO_ERROR };

struct conn {
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

/* One recv into c->in (lent from bp when missing). IO_AGAIN also when the
 * buffer is full: the caller must drain it before asking again. */
PGS_MUST_CHECK enum io_result conn_read(struct conn *c, struct buf_pool *bp);
static inline bool conn_in_full(const struct conn *c)
{
	return c->in != NULL && c->in->end == c->in->cap && c->in->start == 0;
}
/* Write c->out, then span's [start, scan) (a linked peer's framed bytes;
 * may be NULL). IO_OK when everything went out, IO_AGAIN when the socket is full. */
PGS_MUST_CHECK enum io_result conn_write(struct conn *c, struct buf *span);
static inline bool conn_out_empty(const struct conn *c)
{
	return c->out_sent >= c->out.len;
}
/* Append the framed-but-unsent bytes of span to c->out so that what is
 * appended next keeps its place in the stream. false on OOM. */
PGS_MUST_CHECK bool conn_take_span(struct conn *c, struct buf *span);
/* Give the input buffer back if nothing is in it. */
void conn_release_in(struct conn *c, struct buf_pool *bp);
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
