/* proto/frame.c — the 5-byte header of PostgreSQL v3 messages, checked
 * against a per-side, per-type length table before anyone reserves memory
 * for the body or starts forwarding it.
 *
 * Only the header is examined: bodies are streamed in chunks by the caller,
 * so a 1 GiB DataRow or CopyData never has to sit whole in a buffer. */
#include "proto/frame.h"

/* 1 GiB - 1: PostgreSQL's MaxAllocSize, the most any peer can legitimately
 * put in one message. */
#define FRAME_LEN_HUGE 0x3fffffffu
/* Messages made of a few names and small integers. PostgreSQL itself caps
 * such frontend messages at 10000 bytes; 64 KiB leaves room for long
 * identifiers and SASL exchanges without letting a peer make us buffer
 * megabytes on a message that should be tiny. */
#define FRAME_LEN_SMALL 0x10000u

/* {4, max} for variable-size messages, {n, n} for fixed-size ones. */
struct frame_limit {
	uint32_t min; /* min == max: fixed-size message */
	uint32_t max; /* 0: this side may not send the type */
};

/* Frontend messages. */
static const struct frame_limit client_limits[256] = {
    ['Q'] = {4, FRAME_LEN_HUGE},  /* Query */
    ['P'] = {4, FRAME_LEN_HUGE},  /* Parse */
    ['B'] = {4, FRAME_LEN_HUGE},  /* Bind */
    ['d'] = {4, FRAME_LEN_HUGE},  /* CopyData */
    ['F'] = {4, FRAME_LEN_HUGE},  /* FunctionCall */
    ['E'] = {4, FRAME_LEN_SMALL}, /* Execute */
    ['D'] = {4, FRAME_LEN_SMALL}, /* Describe */
    ['C'] = {4, FRAME_LEN_SMALL}, /* Close */
    ['f'] = {4, FRAME_LEN_SMALL}, /* CopyFail */
    ['p'] = {4, FRAME_LEN_SMALL}, /* PasswordMessage, SASLInitialResponse, SASLResponse */
    ['S'] = {4, 4},               /* Sync */
    ['H'] = {4, 4},               /* Flush */
    ['X'] = {4, 4},               /* Terminate */
    ['c'] = {4, 4},               /* CopyDone */
};

/* Backend messages. */
static const struct frame_limit server_limits[256] = {
    ['Z'] = {5, 5},               /* ReadyForQuery: one status byte */
    ['K'] = {12, 12},             /* BackendKeyData: we speak 3.0 to servers, so the key is 4 bytes */
    ['1'] = {4, 4},               /* ParseComplete */
    ['2'] = {4, 4},               /* BindComplete */
    ['3'] = {4, 4},               /* CloseComplete */
    ['n'] = {4, 4},               /* NoData */
    ['s'] = {4, 4},               /* PortalSuspended */
    ['I'] = {4, 4},               /* EmptyQueryResponse */
    ['c'] = {4, 4},               /* CopyDone */
    ['R'] = {4, FRAME_LEN_SMALL}, /* Authentication* */
    ['S'] = {4, FRAME_LEN_SMALL}, /* ParameterStatus */
    ['C'] = {4, FRAME_LEN_SMALL}, /* CommandComplete: a tag and a row count */
    ['v'] = {4, FRAME_LEN_SMALL}, /* NegotiateProtocolVersion */
    ['G'] = {4, FRAME_LEN_SMALL}, /* CopyInResponse: 3 bytes + 2 per column (<= 1600) */
    ['H'] = {4, FRAME_LEN_SMALL}, /* CopyOutResponse */
    ['W'] = {4, FRAME_LEN_SMALL}, /* CopyBothResponse */
    /* These carry user data or server text of unbounded size (a NOTIFY
     * payload, an error quoting a huge statement, 1600 column names). */
    ['T'] = {4, FRAME_LEN_HUGE}, /* RowDescription */
    ['t'] = {4, FRAME_LEN_HUGE}, /* ParameterDescription */
    ['E'] = {4, FRAME_LEN_HUGE}, /* ErrorResponse */
    ['N'] = {4, FRAME_LEN_HUGE}, /* NoticeResponse */
    ['A'] = {4, FRAME_LEN_HUGE}, /* NotificationResponse */
    ['D'] = {4, FRAME_LEN_HUGE}, /* DataRow */
    ['d'] = {4, FRAME_LEN_HUGE}, /* CopyData */
    ['V'] = {4, FRAME_LEN_HUGE}, /* FunctionCallResponse */
};

static const struct frame_limit *frame_limit(enum frame_side side, uint8_t type)
{
	return side == FRAME_FROM_SERVER ? &server_limits[type] : &client_limits[type];
}

uint32_t frame_max_len(enum frame_side side, uint8_t type)
{
	return frame_limit(side, type)->max;
}

/* out is filled whenever the 5 header bytes are there, so that a caller
 * rejecting a message can still name its type and length in the log. */
enum frame_result frame_header(enum frame_side side, const uint8_t *p, size_t avail, struct frame *out)
{
	const struct frame_limit *lim;

	/* A partial header is never consumed: the caller keeps the bytes and
	 * calls again when more have arrived. */
	if (avail < 5)
		return FRAME_NEED_MORE;
	out->type = p[0];
	out->len = frame_be32(p + 1);

	lim = frame_limit(side, out->type);
	if (lim->max == 0)
		return FRAME_BAD_TYPE;
	/* len is unsigned: a negative int32 on the wire shows up here as
	 * something above 2 GiB and fails the max test. */
	if (out->len < lim->min || out->len > lim->max)
		return FRAME_BAD_LENGTH;
	return FRAME_OK;
}
