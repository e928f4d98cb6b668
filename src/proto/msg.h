/* proto/msg.h — building and reading PostgreSQL v3 messages.
 * Owns: the bytes of a struct msgbuf (growable up to a cap).
 * Exports: msg_* builders with a sticky error, readers for the backend
 *          messages the pooler inspects (ErrorResponse, ParameterStatus,
 *          BackendKeyData, Authentication).
 * Never: does I/O. A builder call never fails by itself: the first failure
 *        sticks and msg_ok() reports it once. */
#ifndef PGS_PROTO_MSG_H
#define PGS_PROTO_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct msgbuf {
	uint8_t *data; /* owned, malloc'd */
	uint32_t len;
	uint32_t cap;
	uint32_t max; /* growth limit (at most 4 GiB - 1: every connection has one, so it is kept small) */
	uint32_t msg_start; /* offset of the message being built */
	bool failed;        /* sticky */
};

#define MSGBUF_DEFAULT_MAX (1u << 20)

void msgbuf_init(struct msgbuf *m, size_t max);
void msgbuf_free(struct msgbuf *m);
void msgbuf_reset(struct msgbuf *m); /* len = 0, failed = false; keeps memory */
static inline bool msg_ok(const struct msgbuf *m)
{
	return !m->failed;
}

/* Raw builders. type 0 begins an untyped message (startup, cancel, SSL). */
void msg_begin(struct msgbuf *m, uint8_t type);
void msg_byte(struct msgbuf *m, uint8_t v);
void msg_int16(struct msgbuf *m, uint16_t v);
void msg_int32(struct msgbuf *m, uint32_t v);
void msg_bytes(struct msgbuf *m, const void *p, size_t n);
void msg_str(struct msgbuf *m, const char *s); /* with the terminating NUL */
void msg_end(struct msgbuf *m);                /* patches the length */

/* Whole messages. */
/* ErrorResponse ('E') or NoticeResponse ('N' when notice is true).
 * severity "ERROR"/"FATAL"/"WARNING"...; detail and hint may be NULL. */
void msg_error(struct msgbuf *m, bool notice, const char *severity, const char *sqlstate, const char *message,
               const char *detail, const char *hint);
void msg_ready(struct msgbuf *m, char txn_status);                            /* 'Z' */
void msg_param_status(struct msgbuf *m, const char *name, const char *value); /* 'S' */
void msg_backend_key(struct msgbuf *m, uint32_t pid, uint32_t key);           /* 'K' */
void msg_auth(struct msgbuf *m, uint32_t code, const void *data, size_t n);   /* 'R' */
void msg_query(struct msgbuf *m, const char *sql);                            /* 'Q' */
void msg_terminate(struct msgbuf *m);                                         /* 'X' */
void msg_sync(struct msgbuf *m);                                              /* 'S' from a frontend */
void msg_copy_fail(struct msgbuf *m, const char *reason);                     /* 'f' */
void msg_password(struct msgbuf *m, const void *data, size_t n);              /* 'p' */
/* SASLInitialResponse: 'p' with mechanism name, int32 length, data. */
void msg_sasl_initial(struct msgbuf *m, const char *mech, const void *data, size_t n);
/* RowDescription with text columns (type oid 25) of the given names. */
void msg_row_description(struct msgbuf *m, int ncols, const char *const *names);
/* The same with a type OID per column (text format). */
void msg_row_description_typed(struct msgbuf *m, int ncols, const char *const *names,
                               const uint32_t *type_oids);
/* DataRow; a NULL value is SQL NULL. */
void msg_data_row(struct msgbuf *m, int ncols, const char *const *values);
void msg_command_complete(struct msgbuf *m, const char *tag); /* 'C' */
void msg_empty_query(struct msgbuf *m);                       /* 'I' */
/* StartupMessage v3.0 with user, database and extra params (NULL-terminated
 * array of alternating names and values, may be NULL). */
void msg_startup(struct msgbuf *m, const char *const *kv);
void msg_cancel_request(struct msgbuf *m, uint32_t pid, uint32_t key);
/* NegotiateProtocolVersion ('v'): newest minor we support and the
 * unrecognised _pq_ options. */
void msg_negotiate_version(struct msgbuf *m, uint32_t minor, int n_opts, const char *const *opts);

/* Readers take the message body (after type and length) and its size. */
struct pg_error {
	const char *severity;   /* 'S' (localised) or NULL */
	const char *severity_v; /* 'V' (never localised) or NULL */
	const char *sqlstate;   /* 'C' or NULL */
	const char *message;    /* 'M' or NULL */
	const char *detail;     /* 'D' or NULL */
	const char *hint;       /* 'H' or NULL */
};
/* Fields point into body; false if the body is malformed (fields not
 * NUL-terminated, missing final NUL). */
bool msg_read_error(const uint8_t *body, size_t n, struct pg_error *out);
/* ParameterStatus: name and value point into body. */
bool msg_read_param_status(const uint8_t *body, size_t n, const char **name, const char **value);
bool msg_read_backend_key(const uint8_t *body, size_t n, uint32_t *pid, uint32_t *key);
/* Authentication request: code, and the bytes after it. */
bool msg_read_auth(const uint8_t *body, size_t n, uint32_t *code, const uint8_t **data, size_t *data_len);
/* First NUL-terminated string of body (Parse's statement name, Query's
 * text); false when no NUL within n bytes. */
bool msg_read_cstring(const uint8_t *body, size_t n, const char **s);

#endif
