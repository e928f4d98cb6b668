/* proto/startup.h — the first packet of a client connection.
 * Owns: the strings of a struct startup.
 * Exports: startup_parse() for StartupMessage, SSLRequest, GSSENCRequest
 *          and CancelRequest; startup_split_options() for the options
 *          parameter.
 * Never: trusts the length word; nothing is read past the declared length. */
#ifndef PGS_PROTO_STARTUP_H
#define PGS_PROTO_STARTUP_H

#include <stddef.h>
#include <stdint.h>

#include "util/params.h"

#define STARTUP_MAX_LEN 10000 /* PostgreSQL's own limit for this packet */

#define STARTUP_CODE_CANCEL 80877102u
#define STARTUP_CODE_SSL 80877103u
#define STARTUP_CODE_GSSENC 80877104u
#define STARTUP_PROTO_30 196608u /* 3 << 16 */

enum startup_kind {
	STARTUP_MESSAGE,
	STARTUP_SSL_REQUEST,
	STARTUP_GSSENC_REQUEST,
	STARTUP_CANCEL_REQUEST,
};

enum startup_result {
	STARTUP_OK,
	STARTUP_NEED_MORE,
	STARTUP_BAD, /* err filled: length out of range, bad version, malformed pairs */
};

struct startup {
	enum startup_kind kind;
	uint32_t version;     /* protocol word as sent (STARTUP_MESSAGE) */
	char *user;           /* owned; NULL when absent */
	char *database;       /* owned; NULL: defaults to user */
	char *options;        /* owned raw "options" value; NULL when absent */
	char *replication;    /* owned; NULL when absent */
	struct params params; /* every other pair, in order; "_pq_." ones included */
	uint32_t cancel_pid;  /* STARTUP_CANCEL_REQUEST */
	uint32_t cancel_key;
};

/* Parse from p (avail bytes). On STARTUP_OK, *consumed is the packet size.
 * err gets a lower-case one-line reason on STARTUP_BAD. A protocol major
 * other than 3 is STARTUP_BAD; 3.x with x > 0 is accepted (the caller
 * negotiates down). */
enum startup_result startup_parse(const uint8_t *p, size_t avail, struct startup *out, size_t *consumed,
                                  char *err, size_t err_size);
void startup_free(struct startup *s);

/* Split a libpq "options" string into GUC settings, as PostgreSQL does:
 * words separated by spaces (backslash escapes a space or backslash);
 * "-c name=value", "-cname=value" and "--name=value" set name (with '-' in
 * names turned into '_'). Other switches are an error. Appends to out. */
bool startup_split_options(const char *options, struct params *out, char *err, size_t err_size);

#endif
