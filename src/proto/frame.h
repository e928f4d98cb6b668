/* proto/frame.h — incremental framing of PostgreSQL v3 messages.
 * Owns: nothing; the parse position lives in the caller's connection.
 * Exports: frame_header(), frame_max_len().
 * Never: trusts a length before checking it against the per-type limit. */
#ifndef PGS_PROTO_FRAME_H
#define PGS_PROTO_FRAME_H

#include <stddef.h>
#include <stdint.h>

enum frame_side {
	FRAME_FROM_CLIENT, /* frontend messages */
	FRAME_FROM_SERVER, /* backend messages */
};

enum frame_result {
	FRAME_OK,
	FRAME_NEED_MORE,
	FRAME_BAD_LENGTH, /* shorter than 4 or above the type's limit */
	FRAME_BAD_TYPE,   /* not a message type this side may send */
};

struct frame {
	uint8_t type;
	uint32_t len; /* as on the wire: counts the 4 length bytes, not the type byte */
};

/* Bytes a whole message occupies: type byte + len. */
static inline size_t frame_total(const struct frame *f)
{
	return (size_t)f->len + 1;
}

static inline uint32_t frame_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint16_t frame_be16(const uint8_t *p)
{
	return (uint16_t)(((uint16_t)p[0] << 8) | p[1]);
}

/* Reads the 5-byte header at p (avail bytes available). */
enum frame_result frame_header(enum frame_side side, const uint8_t *p, size_t avail, struct frame *out);

/* Largest len accepted for a message type from that side; 0 if the type is
 * not valid there. */
uint32_t frame_max_len(enum frame_side side, uint8_t type);

#endif
