/* admin.c — the admin console: a table of commands answered over the
 * simple query protocol, as PgBouncer's console is. */
#include "admin.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "client.h"
#include "proto/frame.h"
#include "runtime.h"
#include "worker.h"

struct admin_cmd {
	const char *words; /* upper-case, single spaces */
	void (*run)(struct client *cl);
};

static void show_version(struct client *cl)
{
	static const char *const cols[] = { "version" };
	char v[64];
	snprintf(v, sizeof(v), "pgsluice %s", rt.version);
	const char *vals[] = { v };
	msg_row_description(&cl->conn.out, 1, cols);
	msg_data_row(&cl->conn.out, 1, vals);
	msg_command_complete(&cl->conn.out, "SHOW");
}

static const struct admin_cmd commands[] = {
	{ "SHOW VERSION", show_version },
};

void admin_welcome(struct client *cl)
{
	static const char *const params[][2] = {
		{ "server_version", "15.0 (pgsluice " PGSLUICE_VERSION ")" },
		{ "server_encoding", "UTF8" },
		{ "client_encoding", "UTF8" },
		{ "DateStyle", "ISO, MDY" },
		{ "TimeZone", "UTC" },
		{ "integer_datetimes", "on" },
		{ "standard_conforming_strings", "on" },
		{ "application_name", "" },
	};
	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++)
		msg_param_status(&cl->conn.out, params[i][0], params[i][1]);
	msg_backend_key(&cl->conn.out, cl->cancel_pid, cl->cancel_key);
	msg_ready(&cl->conn.out, 'I');
	cl->login_done = true;
	client_set_state(cl, CL_IDLE);
	client_flush(cl);
}

/* Upper-case, collapse spaces, drop a trailing ';'. */
static void normalise(const char *in, char *out, size_t size)
{
	size_t n = 0;
	bool space = false;
	for (; *in && n + 1 < size; in++) {
		unsigned char c = (unsigned char)*in;
		if (isspace(c) || c == ';') {
			space = n > 0;
			continue;
		}
		if (space && n + 2 < size)
			out[n++] = ' ';
		space = false;
		out[n++] = (char)toupper(c);
	}
	out[n] = '\0';
}

static void run_query(struct client *cl, const char *sql)
{
	char norm[256];
	normalise(sql, norm, sizeof(norm));
	if (norm[0] == '\0') {
		msg_empty_query(&cl->conn.out);
		return;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(commands[i].words, norm) == 0) {
			commands[i].run(cl);
			return;
		}
	}
	char msg[300];
	snprintf(msg, sizeof(msg), "pgsluice: unsupported admin console command: %.200s", sql);
	msg_error(&cl->conn.out, false, "ERROR", "42601", msg, NULL, "the console answers SHOW VERSION");
}

void admin_input(struct client *cl)
{
	for (;;) {
		if (cl->closing)
			return;
		struct frame f;
		const uint8_t *body;
		size_t n;
		enum frame_result r = conn_next_message(&cl->conn, FRAME_FROM_CLIENT, &f, &body, &n);
		if (r == FRAME_NEED_MORE)
			break;
		if (r != FRAME_OK) {
			client_fatal(cl, "08P01", "pgsluice: invalid message to the admin console", NULL);
			return;
		}
		if (f.type == 'X') {
			client_close(cl, "client sent Terminate");
			return;
		}
		const char *sql;
		if (f.type != 'Q' || !msg_read_cstring(body, n, &sql)) {
			if (f.type == 'S') {
				msg_ready(&cl->conn.out, 'I');
				continue;
			}
			if (f.type == 'Q') {
				client_fatal(cl, "08P01", "pgsluice: malformed query message", NULL);
				return;
			}
			msg_error(&cl->conn.out, false, "ERROR", "0A000",
			          "pgsluice: the admin console speaks the simple query protocol only", NULL, NULL);
			continue;
		}
		run_query(cl, sql);
		msg_ready(&cl->conn.out, 'I');
	}
	conn_release_in(&cl->conn, &cl->worker->bufs);
	client_flush(cl);
}
