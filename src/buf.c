/* buf.c — the per-worker free list of input buffers. */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

struct buf *buf_lend(struct buf_pool *bp)
{
	struct buf *b = bp->free;
	if (b != NULL) {
		bp->free = b->next_free;
		bp->n_free--;
	} else {
		b = malloc(sizeof(*b) + PGS_BUF_SIZE);
		if (b == NULL)
			return NULL;
		b->cap = PGS_BUF_SIZE;
	}
	b->start = b->scan = b->end = 0;
	b->next_free = NULL;
	bp->lent++;
	return b;
}

void buf_give_back(struct buf_pool *bp, struct buf **bufp)
{
	struct buf *b = *bufp;
	if (b == NULL)
		return;
	*bufp = NULL;
	bp->lent--;
	if (bp->n_free >= PGS_BUF_FREE_MAX) {
		free(b);
		return;
	}
	b->next_free = bp->free;
	bp->free = b;
	bp->n_free++;
}

void buf_pool_destroy(struct buf_pool *bp)
{
	while (bp->free != NULL) {
		struct buf *b = bp->free;
		bp->free = b->next_free;
		free(b);
	}
	bp->n_free = 0;
}

void buf_compact(struct buf *b)
{
	if (b->start == 0)
		return;
	memmove(b->data, b->data + b->start, b->end - b->start);
	b->scan -= b->start;
	b->end -= b->start;
	b->start = 0;
}
