/* proto/msg.c — building the PostgreSQL v3 messages pgsluice writes itself
 * (errors, login replies, admin console rows, the startup and cancel
 * packets it sends to servers) and reading the few backend messages it has
 * to look inside.
 *
 * Builders share one sticky failure: a caller writes a whole message and
 * checks msg_ok() once, before anything reaches a socket. Readers take a
 * body whose length came from the wire and never look past it. */
#include "proto/msg.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/protocol.h"
#include "proto/startup.h"

/* First allocation; the messages we build are mostly well under this. */
#define MSGBUF_MIN_CAP 256

void msgbuf_init(struct msgbuf *m, size_t max)
{
	m->data = NULL;
	m->len = 0;
	m->cap = 0;
	m->max = max < UINT32_MAX ? (uint32_t)max : UINT32_MAX;
	m->msg_start = 0;
	m->failed = false;
}

void msgbuf_free(struct msgbuf *m)
{
	free(m->data);
	/* Keeps max so the buffer can be used again without a new init. */
	msgbuf_init(m, m->max);
}

void msgbuf_reset(struct msgbuf *m)
{
	m->len = 0;
	m->msg_start = 0;
	m->failed = false;
}

/* Room for n more bytes, or the sticky failure. */
static bool msg_reserve(struct msgbuf *m, size_t n)
{
	size_t need, cap;
	uint8_t *p;

	if (m->failed)
		return false;
	if (n > m->max || m->len > m->max - n) {
		m->failed = true;
		return false;
	}
	need = m->len + n;
	if (need <= m->cap)
		return true;
	cap = m->cap < MSGBUF_MIN_CAP ? MSGBUF_MIN_CAP : m->cap;
	while (cap < need && cap <= SIZE_MAX / 2)
		cap *= 2;
	if (cap < need)
		cap = need;
	if (cap > m->max)
		cap = m->max;
	p = realloc(m->data, cap);
	if (p == NULL) {
		m->failed = true;
		return false;
	}
	m->data = p;
	m->cap = (uint32_t)cap; /* at most max */
	return true;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

void msg_begin(struct msgbuf *m, uint8_t type)
{
	if (m->failed)
		return;
	m->msg_start = m->len;
	if (type != 0)
		msg_byte(m, type);
	/* Placeholder for the length, patched by msg_end(). It must be zero:
	 * msg_end() tells an untyped message by the 0 at msg_start. */
	msg_int32(m, 0);
}

void msg_byte(struct msgbuf *m, uint8_t v)
{
	if (!msg_reserve(m, 1))
		return;
	m->data[m->len++] = v;
}

void msg_int16(struct msgbuf *m, uint16_t v)
{
	if (!msg_reserve(m, 2))
		return;
	m->data[m->len++] = (uint8_t)(v >> 8);
	m->data[m->len++] = (uint8_t)v;
}

void msg_int32(struct msgbuf *m, uint32_t v)
{
	if (!msg_reserve(m, 4))
		return;
	put_be32(m->data + m->len, v);
	m->len += 4;
}

void msg_bytes(struct msgbuf *m, const void *p, size_t n)
{
	if (n == 0 || !msg_reserve(m, n))
		return;
	memcpy(m->data + m->len, p, n);
	m->len += n;
}

void msg_str(struct msgbuf *m, const char *s)
{
	/* A NULL here is a caller bug; failing the message is better than
	 * sending one with a field silently missing. */
	if (s == NULL) {
		m->failed = true;
		return;
	}
	msg_bytes(m, s, strlen(s) + 1);
}

void msg_end(struct msgbuf *m)
{
	size_t at, len;

	if (m->failed)
		return;
	if (m->msg_start >= m->len || m->len - m->msg_start < 4) {
		m->failed = true; /* no msg_begin() since the last reset */
		return;
	}
	/* Typed messages start with a non-zero type byte and their length
	 * follows it; an untyped one starts with the zeroed length itself. */
	at = m->data[m->msg_start] != 0 ? m->msg_start + 1 : m->msg_start;
	if (m->len - at < 4) {
		m->failed = true;
		return;
	}
	len = m->len - at;
	if (len > INT32_MAX) {
		m->failed = true;
		return;
	}
	put_be32(m->data + at, (uint32_t)len);
}

/* Whole messages. */

void msg_error(struct msgbuf *m, bool notice, const char *severity, const char *sqlstate, const char *message,
               const char *detail, const char *hint)
{
	/* Field order as PostgreSQL sends it; some drivers log fields in the
	 * order received. V (non-localised severity) exists since 9.6 and is
	 * what modern drivers read; we never localise, so it equals S. */
	const struct {
		char code;
		const char *value;
	} fields[] = {
	    {PQ_DIAG_SEVERITY, severity}, {PQ_DIAG_SEVERITY_V, severity}, {PQ_DIAG_SQLSTATE, sqlstate},
	    {PQ_DIAG_MESSAGE, message},   {PQ_DIAG_DETAIL, detail},       {PQ_DIAG_HINT, hint},
	};

	msg_begin(m, notice ? PqMsg_NoticeResponse : PqMsg_ErrorResponse);
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		if (fields[i].value == NULL)
			continue;
		msg_byte(m, (uint8_t)fields[i].code);
		msg_str(m, fields[i].value);
	}
	msg_byte(m, 0);
	msg_end(m);
}

void msg_ready(struct msgbuf *m, char txn_status)
{
	msg_begin(m, PqMsg_ReadyForQuery);
	msg_byte(m, (uint8_t)txn_status);
	msg_end(m);
}

void msg_param_status(struct msgbuf *m, const char *name, const char *value)
{
	msg_begin(m, PqMsg_ParameterStatus);
	msg_str(m, name);
	msg_str(m, value);
	msg_end(m);
}

void msg_backend_key(struct msgbuf *m, uint32_t pid, uint32_t key)
{
	msg_begin(m, PqMsg_BackendKeyData);
	msg_int32(m, pid);
	msg_int32(m, key);
	msg_end(m);
}

void msg_auth(struct msgbuf *m, uint32_t code, const void *data, size_t n)
{
	msg_begin(m, PqMsg_AuthenticationRequest);
	msg_int32(m, code);
	msg_bytes(m, data, n);
	msg_end(m);
}

void msg_query(struct msgbuf *m, const char *sql)
{
	msg_begin(m, PqMsg_Query);
	msg_str(m, sql);
	msg_end(m);
}

void msg_terminate(struct msgbuf *m)
{
	msg_begin(m, PqMsg_Terminate);
	msg_end(m);
}

void msg_sync(struct msgbuf *m)
{
	msg_begin(m, PqMsg_Sync);
	msg_end(m);
}

void msg_copy_fail(struct msgbuf *m, const char *reason)
{
	msg_begin(m, PqMsg_CopyFail);
	msg_str(m, reason);
	msg_end(m);
}

/* Bytes as given: a cleartext or MD5 password must include its NUL, a
 * SASLResponse must not. */
void msg_password(struct msgbuf *m, const void *data, size_t n)
{
	msg_begin(m, PqMsg_PasswordMessage);
	msg_bytes(m, data, n);
	msg_end(m);
}

void msg_sasl_initial(struct msgbuf *m, const char *mech, const void *data, size_t n)
{
	msg_begin(m, PqMsg_SASLInitialResponse);
	msg_str(m, mech);
	/* -1 is the protocol's "no initial response"; SCRAM always has one,
	 * but a NULL here must not turn into a zero-length response. */
	if (data == NULL) {
		msg_int32(m, UINT32_MAX);
	} else if (n > INT32_MAX) {
		m->failed = true;
	} else {
		msg_int32(m, (uint32_t)n);
		msg_bytes(m, data, n);
	}
	msg_end(m);
}

void msg_row_description(struct msgbuf *m, int ncols, const char *const *names)
{
	msg_row_description_typed(m, ncols, names, NULL);
}

void msg_row_description_typed(struct msgbuf *m, int ncols, const char *const *names,
                               const uint32_t *type_oids)
{
	if (ncols < 0 || ncols > UINT16_MAX) {
		m->failed = true;
		return;
	}
	msg_begin(m, PqMsg_RowDescription);
	msg_int16(m, (uint16_t)ncols);
	for (int i = 0; i < ncols; i++) {
		msg_str(m, names[i]);
		msg_int32(m, 0);                                      /* table oid: not a table column */
		msg_int16(m, 0);                                      /* attribute number */
		uint32_t oid = type_oids != NULL ? type_oids[i] : 25; /* default: text */
		msg_int32(m, oid);
		msg_int16(m, oid == 20   ? 8
		             : oid == 23 ? 4
		             : oid == 16 ? 1
		                         : UINT16_MAX); /* typlen; -1: variable */
		msg_int32(m, UINT32_MAX);               /* typmod -1 */
		msg_int16(m, 0);                        /* format: text */
	}
	msg_end(m);
}

void msg_data_row(struct msgbuf *m, int ncols, const char *const *values)
{
	if (ncols < 0 || ncols > UINT16_MAX) {
		m->failed = true;
		return;
	}
	msg_begin(m, PqMsg_DataRow);
	msg_int16(m, (uint16_t)ncols);
	for (int i = 0; i < ncols; i++) {
		size_t n;

		if (values[i] == NULL) {
			msg_int32(m, UINT32_MAX); /* -1: SQL NULL */
			continue;
		}
		n = strlen(values[i]);
		if (n > INT32_MAX) {
			m->failed = true;
			return;
		}
		msg_int32(m, (uint32_t)n);
		msg_bytes(m, values[i], n);
	}
	msg_end(m);
}

void msg_command_complete(struct msgbuf *m, const char *tag)
{
	msg_begin(m, PqMsg_CommandComplete);
	msg_str(m, tag);
	msg_end(m);
}

void msg_empty_query(struct msgbuf *m)
{
	msg_begin(m, PqMsg_EmptyQueryResponse);
	msg_end(m);
}

/* Value of name among the first pairs of kv. A NULL value ends the list as
 * a NULL name does, so an odd-length array is never read past its end. */
static const char *kv_find(const char *const *kv, const char *name)
{
	for (size_t i = 0; kv != NULL && kv[i] != NULL && kv[i + 1] != NULL; i += 2)
		if (strcmp(kv[i], name) == 0)
			return kv[i + 1];
	return NULL;
}

void msg_startup(struct msgbuf *m, const char *const *kv)
{
	const char *user = kv_find(kv, "user");
	const char *database = kv_find(kv, "database");

	msg_begin(m, 0);
	msg_int32(m, STARTUP_PROTO_30);
	/* user and database first, as libpq sends them: they are what a
	 * server log line or a packet capture is read for. */
	if (user != NULL) {
		msg_str(m, "user");
		msg_str(m, user);
	}
	if (database != NULL) {
		msg_str(m, "database");
		msg_str(m, database);
	}
	for (size_t i = 0; kv != NULL && kv[i] != NULL && kv[i + 1] != NULL; i += 2) {
		if (strcmp(kv[i], "user") == 0 || strcmp(kv[i], "database") == 0)
			continue;
		msg_str(m, kv[i]);
		msg_str(m, kv[i + 1]);
	}
	msg_byte(m, 0);
	msg_end(m);
}

void msg_cancel_request(struct msgbuf *m, uint32_t pid, uint32_t key)
{
	msg_begin(m, 0);
	msg_int32(m, STARTUP_CODE_CANCEL);
	msg_int32(m, pid);
	msg_int32(m, key);
	msg_end(m);
}

void msg_negotiate_version(struct msgbuf *m, uint32_t minor, int n_opts, const char *const *opts)
{
	if (n_opts < 0) {
		m->failed = true;
		return;
	}
	msg_begin(m, PqMsg_NegotiateProtocolVersion);
	/* The protocol text calls this field "newest minor version", but
	 * PostgreSQL sends the whole version word (PG_PROTOCOL_LATEST) and
	 * libpq compares it as one: a bare 0 would read as protocol 0.0. */
	msg_int32(m, (3u << 16) | (minor & 0xffffu));
	msg_int32(m, (uint32_t)n_opts);
	for (int i = 0; i < n_opts; i++)
		msg_str(m, opts[i]);
	msg_end(m);
}

/* Readers. */

/* The string starting at *off, which must end with a NUL before n; *off
 * moves past that NUL. */
static bool read_cstring_at(const uint8_t *body, size_t n, size_t *off, const char **s)
{
	const uint8_t *nul;

	if (*off >= n)
		return false;
	nul = memchr(body + *off, 0, n - *off);
	if (nul == NULL)
		return false;
	*s = (const char *)(body + *off);
	*off = (size_t)(nul - body) + 1;
	return true;
}

bool msg_read_error(const uint8_t *body, size_t n, struct pg_error *out)
{
	static const struct pg_error empty;
	size_t off = 0;

	*out = empty;
	for (;;) {
		uint8_t code;
		const char *value;

		if (off >= n)
			goto bad; /* no terminating zero byte */
		code = body[off++];
		if (code == 0)
			break;
		if (!read_cstring_at(body, n, &off, &value))
			goto bad;
		switch (code) {
		case PQ_DIAG_SEVERITY:
			out->severity = value;
			break;
		case PQ_DIAG_SEVERITY_V:
			out->severity_v = value;
			break;
		case PQ_DIAG_SQLSTATE:
			out->sqlstate = value;
			break;
		case PQ_DIAG_MESSAGE:
			out->message = value;
			break;
		case PQ_DIAG_DETAIL:
			out->detail = value;
			break;
		case PQ_DIAG_HINT:
			out->hint = value;
			break;
		default:
			break; /* F, L, R, P, W, s, t...: relayed, not read */
		}
	}
	/* Bytes after the terminator mean the length and the content disagree:
	 * the stream is no longer trustworthy. */
	if (off != n)
		goto bad;
	return true;
bad:
	*out = empty;
	return false;
}

bool msg_read_param_status(const uint8_t *body, size_t n, const char **name, const char **value)
{
	size_t off = 0;

	if (!read_cstring_at(body, n, &off, name) || !read_cstring_at(body, n, &off, value))
		return false;
	return off == n;
}

bool msg_read_backend_key(const uint8_t *body, size_t n, uint32_t *pid, uint32_t *key)
{
	/* Exactly 8: servers are spoken to in 3.0, where the key is 4 bytes
	 * (3.2 made it variable-length). */
	if (n != 8)
		return false;
	*pid = get_be32(body);
	*key = get_be32(body + 4);
	return true;
}

bool msg_read_auth(const uint8_t *body, size_t n, uint32_t *code, const uint8_t **data, size_t *data_len)
{
	if (n < 4)
		return false;
	*code = get_be32(body);
	*data = body + 4;
	*data_len = n - 4;
	return true;
}

bool msg_read_cstring(const uint8_t *body, size_t n, const char **s)
{
	size_t off = 0;

	return read_cstring_at(body, n, &off, s);
}
