/* proto/frame.c — the 5-byte header of PostgreSQL v3 messages, checked
 * against a per-side, per-type length table before anyone reserves memory
 * for the body or starts forwarding it.
 *
 * Only the header is examined: bodies are streamed in chunks by the caller,
 * so a 1 GiB DataRow or CopyData never has to sit whole in a buffer. */
#include "proto/frame.h"

#include "proto/protocol.h"

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
    [PqMsg_Query] = {4, FRAME_LEN_HUGE},
    [PqMsg_Parse] = {4, FRAME_LEN_HUGE},
    [PqMsg_Bind] = {4, FRAME_LEN_HUGE},
    [PqMsg_CopyData] = {4, FRAME_LEN_HUGE},
    [PqMsg_FunctionCall] = {4, FRAME_LEN_HUGE},
    [PqMsg_Execute] = {4, FRAME_LEN_SMALL},
    [PqMsg_Describe] = {4, FRAME_LEN_SMALL},
    [PqMsg_Close] = {4, FRAME_LEN_SMALL},
    [PqMsg_CopyFail] = {4, FRAME_LEN_SMALL},
    [PqMsg_PasswordMessage] = {4, FRAME_LEN_SMALL}, /* also SASLInitialResponse, SASLResponse, GSSResponse */
    [PqMsg_Sync] = {4, 4},
    [PqMsg_Flush] = {4, 4},
    [PqMsg_Terminate] = {4, 4},
    [PqMsg_CopyDone] = {4, 4},
};

/* Backend messages. */
static const struct frame_limit server_limits[256] = {
    [PqMsg_ReadyForQuery] = {5, 5},    /* one status byte */
    [PqMsg_BackendKeyData] = {12, 12}, /* we speak 3.0 to servers, so the key is 4 bytes */
    [PqMsg_ParseComplete] = {4, 4},
    [PqMsg_BindComplete] = {4, 4},
    [PqMsg_CloseComplete] = {4, 4},
    [PqMsg_NoData] = {4, 4},
    [PqMsg_PortalSuspended] = {4, 4},
    [PqMsg_EmptyQueryResponse] = {4, 4},
    [PqMsg_CopyDone] = {4, 4},
    [PqMsg_AuthenticationRequest] = {4, FRAME_LEN_SMALL}, /* every Authentication request */
    [PqMsg_ParameterStatus] = {4, FRAME_LEN_SMALL},
    [PqMsg_CommandComplete] = {4, FRAME_LEN_SMALL}, /* a tag and a row count */
    [PqMsg_NegotiateProtocolVersion] = {4, FRAME_LEN_SMALL},
    [PqMsg_CopyInResponse] = {4, FRAME_LEN_SMALL}, /* 3 bytes + 2 per column (<= 1600) */
    [PqMsg_CopyOutResponse] = {4, FRAME_LEN_SMALL},
    [PqMsg_CopyBothResponse] = {4, FRAME_LEN_SMALL},
    /* These carry user data or server text of unbounded size (a NOTIFY
     * payload, an error quoting a huge statement, 1600 column names). */
    [PqMsg_RowDescription] = {4, FRAME_LEN_HUGE},
    [PqMsg_ParameterDescription] = {4, FRAME_LEN_HUGE},
    [PqMsg_ErrorResponse] = {4, FRAME_LEN_HUGE},
    [PqMsg_NoticeResponse] = {4, FRAME_LEN_HUGE},
    [PqMsg_NotificationResponse] = {4, FRAME_LEN_HUGE},
    [PqMsg_DataRow] = {4, FRAME_LEN_HUGE},
    [PqMsg_CopyData] = {4, FRAME_LEN_HUGE},
    [PqMsg_FunctionCallResponse] = {4, FRAME_LEN_HUGE},
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
