/* relay.c — linked traffic. Both directions frame incrementally: a
 * message's header is read, the pooler inspects only what it must, and the
 * bytes are marked for forwarding ([start, scan) of the source buffer) and
 * written straight from there with the peer's own pending bytes in front. */
#include "relay.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client.h"
#include "pool.h"
#include "proto/frame.h"
#include "proto/protocol.h"
#include "server.h"
#include "util/clock.h"
#include "tracked.h"
#include "util/shared.h"
#include "worker.h"

#define NAMED_STMT_MARKER "pgsluice_named_prepared_statements_unsupported_in_transaction_mode"

/* Step over one message of total bytes at b->scan: forwarded, or dropped
 * (span already taken). What has not arrived yet is streamed through, or
 * dropped, as it comes (body_left). */
static void pass_message(struct conn *c, uint32_t total, bool drop)
{
	struct buf *b = c->in;
	uint32_t have = b->end - b->scan;
	if (total <= have) {
		b->scan += total;
	} else {
		b->scan = b->end;
		c->body_left = total - have;
		c->body_drop = drop;
	}
	if (drop)
		b->start = b->scan;
}

static void drop_message(struct conn *c, uint32_t total)
{
	pass_message(c, total, true);
}

static void mark_forward(struct conn *c, uint32_t total)
{
	pass_message(c, total, false);
}

/* Stream body bytes already announced by a header, as far as this buffer
 * holds them. */
static void advance_body(struct conn *c)
{
	struct buf *b = c->in;
	uint32_t have = b->end - b->scan;
	uint32_t n = c->body_left < have ? c->body_left : have;
	b->scan += n;
	c->body_left -= n;
	if (c->body_drop) {
		b->start = b->scan;
		if (c->body_left == 0)
			c->body_drop = false;
	}
}

/* Stream the rest of a message body already announced, then read the
 * next header at b->scan; FRAME_NEED_MORE once the buffer is used up. */
static enum frame_result next_header(struct conn *c, enum frame_side side, struct frame *f)
{
	struct buf *b = c->in;
	while (b != NULL && b->scan < b->end && c->body_left > 0)
		advance_body(c);
	if (b == NULL || b->scan >= b->end)
		return FRAME_NEED_MORE;
	return frame_header(side, b->data + b->scan, b->end - b->scan, f);
}

/* --- the link --- */

void relay_link(struct client *cl, struct server *s)
{
	cl->server = s;
	s->client = cl;
}

void relay_unlink(struct client *cl, struct server *s)
{
	if (s == NULL || s->client != cl)
		return;
	server_note_unlink(s);
	s->client = NULL;
	cl->server = NULL;
}

/* --- client → server --- */

/* STEP_GONE: the connection was closed or handed on (a released server may
 * already belong to another worker): the caller must not touch it again. */
enum frame_step { STEP_MORE, STEP_STOP, STEP_GONE };

static bool client_in_transaction_mode(const struct client *cl)
{
	return cl->pool != NULL && pool_mode_of(cl->pool) == POOL_MODE_TRANSACTION;
}

/* Keep the start of the statement for SHOW CLIENTS, SHOW LEAKS and leak
 * reports: at most LAST_SQL_MAX bytes of what has arrived. */
static void remember_sql(struct client *cl, const uint8_t *text, size_t avail)
{
	if (cl->last_sql == NULL && (cl->last_sql = malloc(LAST_SQL_MAX + 1)) == NULL)
		return;
	size_t n = strnlen((const char *)text, avail < LAST_SQL_MAX ? avail : LAST_SQL_MAX);
	memcpy(cl->last_sql, text, n);
	cl->last_sql[n] = '\0';
}

static enum frame_step frame_client(struct client *cl, struct server *s)
{
	struct conn *c = &cl->conn;
	struct buf *b = c->in;
	for (;;) {
		struct frame f;
		enum frame_result r = next_header(c, FRAME_FROM_CLIENT, &f);
		if (r == FRAME_NEED_MORE)
			break;
		if (r != FRAME_OK) {
			log_client(cl, LOG_WARNING, "protocol violation: %s (type 0x%02x, length %u)",
			           r == FRAME_BAD_TYPE ? "unknown message type" : "invalid message length",
			           b->data[b->scan], frame_be32(b->data + b->scan + 1));
			client_fatal(cl, "08P01",
			             r == FRAME_BAD_TYPE ? "pgsluice: invalid frontend message type"
			                                 : "pgsluice: invalid message length",
			             NULL);
			return STEP_GONE;
		}
		uint32_t total = (uint32_t)frame_total(&f);
		uint32_t have = b->end - b->scan;
		/* Parse: the statement name and the start of the text; Query: the
		 * start of the text. Everything else streams from its header. */
		uint32_t head = f.type == PqMsg_Parse   ? 5 + 64 + LAST_SQL_MAX
		                : f.type == PqMsg_Query ? 5 + LAST_SQL_MAX
		                                        : 5;
		uint32_t need = total < head ? total : head;
		if (have < need)
			break;
		const uint8_t *body = b->data + b->scan + 5;
		size_t body_have = (have < total ? have : total) - 5;
		if ((f.type == PqMsg_Query || f.type == PqMsg_FunctionCall || f.type == PqMsg_Sync) &&
		    s->pending_rfq == 0) {
			s->busy_since = clock_event_usec();
			s->timeout_cancel_sent = false;
			if (s->xact_started == 0)
				s->xact_started = s->busy_since;
			cl->leak_reported = false;
		}
		switch (f.type) {
		case PqMsg_Query:
			remember_sql(cl, body, body_have);
			s->pending_rfq++;
			break;
		case PqMsg_FunctionCall:
			s->pending_rfq++;
			break;
		case PqMsg_Sync:
			s->pending_rfq++;
			s->ext_unsynced = false;
			break;
		case PqMsg_Terminate:
			/* Terminate: the client leaves; what it sent before still goes. */
			b->end = b->scan; /* the Terminate itself is not forwarded */
			client_close(cl, "client sent Terminate");
			return STEP_GONE;
		case PqMsg_Parse: {
			s->ext_unsynced = true;
			size_t name_len = strnlen((const char *)body, body_have);
			if (name_len < body_have)
				remember_sql(cl, body + name_len + 1, body_have - name_len - 1);
			if (client_in_transaction_mode(cl) && body[0] != '\0') {
				/* A named statement would stay on this server for whoever gets it
				 * next. Replace the Parse by one PostgreSQL rejects, so the server
				 * itself enters the error-until-Sync state; its error is then
				 * rewritten into ours (see frame_server). */
				if (!conn_take_span(&s->conn, b)) {
					client_close(cl, "out of memory");
					return STEP_GONE;
				}
				drop_message(c, total);
				struct msgbuf *o = &s->conn.out;
				msg_begin(o, PqMsg_Parse);
				msg_str(o, "");
				msg_str(o, NAMED_STMT_MARKER);
				msg_int16(o, 0);
				msg_end(o);
				continue;
			}
			break;
		}
		case PqMsg_Bind:
		case PqMsg_Execute:
		case PqMsg_Describe:
		case PqMsg_Close:
		case PqMsg_Flush:
			s->ext_unsynced = true;
			break;
		default:
			break;
		}
		mark_forward(c, total);
	}
	return STEP_MORE;
}

bool relay_flush_server(struct server *s)
{
	struct client *cl = s->client;
	struct buf *span = cl != NULL ? cl->conn.in : NULL;
	enum io_result r = conn_write(&s->conn, span);
	if (r == IO_CLOSED || r == IO_ERROR) {
		if (cl != NULL)
			client_server_gone(cl, true, false);
		server_close(s, "write to server failed");
		return false;
	}
	if (r == IO_AGAIN) {
		conn_want_write(&s->conn, true);
		if (cl != NULL)
			conn_want_read(&cl->conn, false);
		return true;
	}
	conn_want_write(&s->conn, false);
	if (cl != NULL) {
		if (span != NULL && buf_is_empty(span))
			buf_give_back(&cl->worker->bufs, &cl->conn.in);
		conn_want_read(&cl->conn, true);
	}
	return true;
}

void relay_pump_client(struct client *cl)
{
	struct server *s = cl->server;
	if (s == NULL)
		return;
	if (frame_client(cl, s) == STEP_GONE)
		return;
	relay_flush_server(s);
}

void relay_client_readable(struct client *cl)
{
	enum io_result r = conn_read(&cl->conn, &cl->worker->bufs);
	if (r == IO_CLOSED || r == IO_ERROR) {
		client_close(cl, r == IO_CLOSED ? "client closed the connection" : "client read error");
		return;
	}
	relay_pump_client(cl);
}

void relay_server_writable(struct server *s)
{
	if (!relay_flush_server(s))
		return;
	if (server_in_upkeep(s) && conn_out_empty(&s->conn))
		server_reset_step(s);
	else if (s->client != NULL && s->client->conn.in != NULL)
		relay_pump_client(s->client);
}

/* --- server → client --- */

static bool releasable(struct server *s)
{
	struct client *cl = s->client;
	return cl != NULL && cl->login_done && client_in_transaction_mode(cl) && s->pending_rfq == 0 &&
	       s->internal_rfq == 0 && !s->ext_unsynced && !s->copy_in && !s->copy_out &&
	       s->txn_status == PQ_TXN_IDLE && cl->conn.body_left == 0 &&
	       (cl->conn.in == NULL || buf_is_empty(cl->conn.in));
}

static void send_our_error(struct client *cl, struct server *s, const char *sqlstate, const char *message,
                           const char *hint)
{
	if (!conn_take_span(&cl->conn, s->conn.in))
		return;
	msg_error(&cl->conn.out, false, "ERROR", sqlstate, message, NULL, hint);
}

/* A ReadyForQuery answered the client: count the query and, when the
 * server is idle again, the transaction. */
static void count_answer(struct server *s)
{
	struct pool_stats *st = &s->pool->stats;
	stats_add(st, ST_QUERY, 1);
	if (s->pending_rfq > 0)
		return;
	int64_t now = clock_event_usec();
	s->answered_at = now;
	stats_add(st, ST_QUERY_USEC, (uint64_t)(now - s->busy_since));
	if (s->txn_status == PQ_TXN_IDLE && s->xact_started > 0) {
		stats_add(st, ST_XACT, 1);
		stats_add(st, ST_XACT_USEC, (uint64_t)(now - s->xact_started));
		s->xact_started = 0;
	}
}

static enum frame_step frame_server(struct server *s)
{
	struct conn *c = &s->conn;
	struct buf *b = c->in;
	for (;;) {
		struct frame f;
		enum frame_result r = next_header(c, FRAME_FROM_SERVER, &f);
		if (r == FRAME_NEED_MORE)
			break;
		struct client *cl = s->client;
		if (r != FRAME_OK) {
			log_server(s, LOG_WARNING, "protocol violation by server: type 0x%02x length %u",
			           b->data[b->scan], frame_be32(b->data + b->scan + 1));
			if (cl != NULL) {
				client_server_gone(cl, true, false);
				client_fatal(cl, "08P01", "pgsluice: server sent an invalid message", NULL);
			}
			server_close(s, "invalid message from server");
			return STEP_GONE;
		}
		uint32_t total = (uint32_t)frame_total(&f);
		uint32_t have = b->end - b->scan;
		bool whole_needed =
		    f.type == PqMsg_ReadyForQuery || f.type == PqMsg_BackendKeyData ||
		    ((f.type == PqMsg_ParameterStatus || f.type == PqMsg_ErrorResponse) && total <= b->cap);
		if (whole_needed && have < total) {
			if (b->start > 0 && b->start == b->scan)
				buf_compact(b);
			break;
		}
		bool swallow = s->internal_rfq > 0 || server_in_upkeep(s) || cl == NULL;
		const uint8_t *body = b->data + b->scan + 5;
		size_t n = f.len - 4;
		bool stop_after = false;
		switch (f.type) {
		case PqMsg_ReadyForQuery:
			s->txn_status = (char)body[0];
			s->copy_in = s->copy_out = false;
			if (s->internal_rfq > 0) {
				s->internal_rfq--;
				swallow = true;
				if (s->internal_rfq == 0 && cl != NULL && !cl->login_done) {
					if (!conn_take_span(&cl->conn, b))
						return STEP_GONE;
					drop_message(c, total);
					/* The client's login may release s at once: from here
					 * on it may belong to another worker. */
					client_login_server_ready(cl);
					return STEP_GONE;
				}
			} else if (s->pending_rfq > 0) {
				s->pending_rfq--;
				count_answer(s);
			}
			if (!swallow && releasable(s))
				stop_after = true;
			break;
		case PqMsg_ParameterStatus: {
			const char *name, *value;
			if (whole_needed && msg_read_param_status(body, n, &name, &value)) {
				params_set(&s->params, name, value);
				if (cl != NULL && tracked_param(name))
					pset_set(&cl->tracked, name, value);
			}
			break;
		}
		case PqMsg_ErrorResponse: {
			struct pg_error e;
			if (!whole_needed || !msg_read_error(body, n, &e))
				break;
			if (e.severity_v != NULL &&
			    (strcmp(e.severity_v, "FATAL") == 0 || strcmp(e.severity_v, "PANIC") == 0))
				s->saw_fatal = true;
			if (swallow) {
				if (s->internal_rfq > 0 || server_in_upkeep(s)) {
					s->failed_internal = true;
					free(s->last_error);
					free(s->last_sqlstate);
					s->last_error = str_dup(e.message);
					s->last_sqlstate = str_dup(e.sqlstate);
				}
				break;
			}
			if (e.message != NULL && strstr(e.message, NAMED_STMT_MARKER) != NULL) {
				send_our_error(cl, s, "0A000",
				               "pgsluice: named prepared statements are not supported in "
				               "transaction pooling "
				               "mode",
				               "use session pooling for this database, or turn prepared "
				               "statements off in the "
				               "driver (psycopg: prepare_threshold=None)");
				drop_message(c, total);
				continue;
			}
			break;
		}
		case PqMsg_CopyInResponse:
			s->copy_in = true;
			break;
		case PqMsg_CopyOutResponse:
			s->copy_out = true;
			break;
		case PqMsg_CopyBothResponse:
			s->copy_in = s->copy_out = true;
			break;
		case PqMsg_CopyDone:
			s->copy_out = false;
			break;
		default:
			break;
		}
		if (swallow) {
			if (cl != NULL && !conn_take_span(&cl->conn, b))
				return STEP_GONE;
			drop_message(c, total);
			if (b->start == b->end && b->start > 0) {
				b->start = b->scan = b->end = 0;
			}
			continue;
		}
		mark_forward(c, total);
		if (stop_after)
			return STEP_STOP;
	}
	return STEP_MORE;
}

/* Move what is still owed to the client into its out buffer and unlink. */
static void release_to_pool(struct server *s)
{
	struct client *cl = s->client;
	if (s->cancels_in_flight > 0)
		return; /* relay_check_release runs again when they finish */
	if (!conn_take_span(&cl->conn, s->conn.in)) {
		client_close(cl, "out of memory");
		return;
	}
	if (s->conn.in != NULL && s->conn.in->start == s->conn.in->end)
		buf_give_back(&s->worker->bufs, &s->conn.in);
	relay_unlink(cl, s);
	client_server_gone(cl, false, false);
	server_return_to_pool(s);
}

/* Write to the client what it is owed. false: the client was closed. */
static bool flush_to_client(struct server *s)
{
	struct client *cl = s->client;
	if (cl == NULL)
		return true;
	enum io_result r = conn_write(&cl->conn, s->conn.in);
	if (r == IO_CLOSED || r == IO_ERROR) {
		client_close(cl, "write to client failed");
		return false;
	}
	if (r == IO_AGAIN) {
		conn_want_write(&cl->conn, true);
		conn_want_read(&s->conn, false);
		return true;
	}
	conn_want_write(&cl->conn, false);
	conn_want_read(&s->conn, true);
	if (s->conn.in != NULL && buf_is_empty(s->conn.in) && s->conn.in->start > 0)
		s->conn.in->start = s->conn.in->scan = s->conn.in->end = 0;
	return true;
}

static void process_server(struct server *s)
{
	enum frame_step st = frame_server(s);
	if (st == STEP_GONE)
		return;
	if (server_in_upkeep(s)) {
		if (s->conn.in != NULL && buf_is_empty(s->conn.in))
			buf_give_back(&s->worker->bufs, &s->conn.in);
		server_reset_step(s);
		return;
	}
	if (s->client == NULL)
		return;
	if (st == STEP_STOP && releasable(s)) {
		/* Send the answer's tail straight from the server's buffer first:
		 * only what the client's socket cannot take now is copied. */
		if (flush_to_client(s))
			release_to_pool(s);
		return;
	}
	flush_to_client(s);
}

void relay_server_readable(struct server *s)
{
	enum io_result r = conn_read(&s->conn, &s->worker->bufs);
	if (r == IO_CLOSED || r == IO_ERROR) {
		struct client *cl = s->client;
		if (cl != NULL) {
			/* Whatever PostgreSQL said last (its FATAL) still reaches the client. */
			if (frame_server(s) == STEP_GONE)
				return; /* closed, or released to a pool whose idle watch sees the EOF */
			if (s->client != NULL) {
				flush_to_client(s);
				if (s->client != NULL)
					client_server_gone(cl, true, s->saw_fatal);
			}
		}
		server_close(s, r == IO_CLOSED ? "server closed the connection" : "server read error");
		return;
	}
	process_server(s);
}

void relay_client_writable(struct client *cl)
{
	struct server *s = cl->server;
	if (s == NULL) {
		client_flush(cl);
		return;
	}
	if (!flush_to_client(s))
		return;
	if (s->conn.in != NULL && s->conn.in->scan < s->conn.in->end)
		process_server(s);
	else if (conn_out_empty(&cl->conn) && releasable(s))
		release_to_pool(s);
}

void relay_check_release(struct server *s)
{
	if (s->client != NULL && releasable(s))
		release_to_pool(s);
}
