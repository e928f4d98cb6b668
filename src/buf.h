/* buf.h — fixed-size input buffers, lent from a per-worker free list only
 * while bytes are in flight, so an idle connection holds none.
 * Layout: [0, start) consumed; [start, scan) framed and ready to forward;
 * [scan, end) read but not yet framed; [end, cap) free.
 * Never: shared between threads; a buffer belongs to the worker that lent it
 *        until it is given back (a moving connection gives its buffer back first). */
#ifndef PGS_BUF_H
#define PGS_BUF_H

#include <stdbool.h>
#include <stdint.h>

#define PGS_BUF_SIZE (32u * 1024u)
#define PGS_BUF_FREE_MAX 64 /* buffers a worker keeps for reuse */

struct buf {
	uint32_t start, scan, end, cap;
	struct buf *next_free;
	uint8_t data[];
};

struct buf_pool {
	struct buf *free; /* owned singly-linked list */
	int n_free;
	long lent; /* buffers currently out (for stats) */
};

struct buf *buf_lend(struct buf_pool *bp);
/* Gives *b back and sets it to NULL; tolerates NULL. */
void buf_give_back(struct buf_pool *bp, struct buf **b);
void buf_pool_destroy(struct buf_pool *bp);

static inline uint32_t buf_unframed(const struct buf *b)
{
	return b->end - b->scan;
}
static inline uint32_t buf_pending(const struct buf *b)
{
	return b->scan - b->start;
}
static inline bool buf_is_empty(const struct buf *b)
{
	return b->start == b->end;
}
/* Move unconsumed bytes to the front to make room at the end. */
void buf_compact(struct buf *b);

#endif
