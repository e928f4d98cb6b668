/* nullserver.c — a "null backend" for bench/run: a single-process epoll
 * server that speaks just enough of the PostgreSQL v3 protocol for
 * `pgbench -S -n` (simple or extended query protocol, and the default TPC-B
 * script) to run through a pooler, answering every query at once without
 * doing any work. Pointing both poolers at it measures the poolers alone.
 *
 * Usage: nullserver PORT [SCALE]     listens on 127.0.0.1:PORT; SCALE (default
 *        10) is what "select count(*) from pgbench_branches" returns.
 *
 * Answers:
 *   startup       AuthenticationOk, the ParameterStatus set libpq and the
 *                 poolers read, BackendKeyData, ReadyForQuery
 *   SSLRequest, GSSENCRequest   'N';  CancelRequest   close
 *   Query         by the first word: SELECT/WITH/SHOW/VALUES get one int4 row;
 *                 pgbench's scale query gets SCALE; its partition query gets
 *                 (1, NULL, 0); SET gets ParameterStatus (for reported
 *                 settings) + "SET"; BEGIN/COMMIT/ROLLBACK move the
 *                 transaction status; anything else gets a plausible tag
 *   Parse/Bind/Describe/Execute/Sync/Close/Flush   the matching replies
 *   Terminate     close
 * It never checks a password, never fails a query, and keeps no data.
 *
 * Not part of pgsluice: built by bench/run with `cc -O2`. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define NS_MAX_MSG (64 * 1024 * 1024) /* longer messages are a protocol error: close */
#define NS_READ_CHUNK 65536

struct buf {
	char *data;
	size_t len, cap;
};

enum query_kind { Q_ROW, Q_SCALE, Q_PARTITION, Q_SET, Q_BEGIN, Q_END, Q_EMPTY, Q_OTHER };

struct conn {
	int fd;
	int started;             /* 1 once the StartupMessage has been answered */
	char txn;                /* 'I' or 'T': what ReadyForQuery reports */
	int want_out;            /* EPOLLOUT registered */
	enum query_kind unnamed; /* kind of the last Parse, for Describe/Execute */
	char tag[64];            /* CommandComplete tag of the last Parse (Q_OTHER) */
	struct buf in, out;
};

static int scale = 10;
static int epfd;
static uint32_t next_pid = 1000;

static int buf_reserve(struct buf *b, size_t more)
{
	if (b->len + more <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more)
		cap *= 2;
	char *p = realloc(b->data, cap);
	if (p == NULL)
		return -1;
	b->data = p;
	b->cap = cap;
	return 0;
}

static void put(struct buf *b, const void *p, size_t n)
{
	if (buf_reserve(b, n) < 0) {
		fprintf(stderr, "nullserver: out of memory\n");
		exit(1);
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

static void put_u8(struct buf *b, uint8_t v)
{
	put(b, &v, 1);
}
static void put_u16(struct buf *b, uint16_t v)
{
	v = htons(v);
	put(b, &v, 2);
}
static void put_u32(struct buf *b, uint32_t v)
{
	v = htonl(v);
	put(b, &v, 4);
}
static void put_str(struct buf *b, const char *s)
{
	put(b, s, strlen(s) + 1);
}

/* Messages are built in place: msg_begin() writes the type and a length
 * placeholder, msg_end() patches the length. */
static size_t msg_begin(struct buf *b, char type)
{
	put_u8(b, (uint8_t)type);
	size_t at = b->len;
	put_u32(b, 0);
	return at;
}

static void msg_end(struct buf *b, size_t at)
{
	uint32_t len = htonl((uint32_t)(b->len - at));
	memcpy(b->data + at, &len, 4);
}

static void send_param(struct buf *b, const char *name, const char *value)
{
	size_t at = msg_begin(b, 'S');
	put_str(b, name);
	put_str(b, value);
	msg_end(b, at);
}

static void send_ready(struct conn *c)
{
	size_t at = msg_begin(&c->out, 'Z');
	put_u8(&c->out, (uint8_t)c->txn);
	msg_end(&c->out, at);
}

static void send_complete(struct conn *c, const char *tag)
{
	size_t at = msg_begin(&c->out, 'C');
	put_str(&c->out, tag);
	msg_end(&c->out, at);
}

/* One column description: name, int4 or text, text format. */
static void put_column(struct buf *b, const char *name, uint32_t type_oid, int16_t typlen)
{
	put_str(b, name);
	put_u32(b, 0); /* table oid */
	put_u16(b, 0); /* column number */
	put_u32(b, type_oid);
	put_u16(b, (uint16_t)typlen);
	put_u32(b, 0xffffffff); /* typmod -1 */
	put_u16(b, 0);          /* text format */
}

static void send_row_description(struct conn *c, enum query_kind k)
{
	size_t at = msg_begin(&c->out, 'T');
	if (k == Q_PARTITION) {
		put_u16(&c->out, 3);
		put_column(&c->out, "n", 23, 4);
		put_column(&c->out, "partstrat", 18, 1);
		put_column(&c->out, "count", 20, 8);
	} else {
		put_u16(&c->out, 1);
		put_column(&c->out, k == Q_SCALE ? "count" : "abalance", k == Q_SCALE ? 20 : 23,
		           k == Q_SCALE ? 8 : 4);
	}
	msg_end(&c->out, at);
}

static void put_value(struct buf *b, const char *v)
{
	if (v == NULL) {
		put_u32(b, 0xffffffff);
		return;
	}
	put_u32(b, (uint32_t)strlen(v));
	put(b, v, strlen(v));
}

static void send_data_row(struct conn *c, enum query_kind k)
{
	size_t at = msg_begin(&c->out, 'D');
	if (k == Q_PARTITION) {
		put_u16(&c->out, 3);
		put_value(&c->out, "1");
		put_value(&c->out, NULL);
		put_value(&c->out, "0");
	} else {
		char num[16];
		snprintf(num, sizeof(num), "%d", k == Q_SCALE ? scale : 0);
		put_u16(&c->out, 1);
		put_value(&c->out, num);
	}
	msg_end(&c->out, at);
}

static int word_is(const char *p, const char *w)
{
	size_t n = strlen(w);
	return strncasecmp(p, w, n) == 0 && !isalnum((unsigned char)p[n]) && p[n] != '_';
}

/* Classifies a query by its text; for Q_OTHER, writes its CommandComplete tag. */
static enum query_kind classify(const char *q, char *tag, size_t tagsz)
{
	while (isspace((unsigned char)*q) || *q == '(')
		q++;
	if (*q == '\0' || *q == ';')
		return Q_EMPTY;
	if (strcasestr(q, "pgbench_branches") && strcasestr(q, "count("))
		return Q_SCALE;
	if (strcasestr(q, "partstrat"))
		return Q_PARTITION;
	if (word_is(q, "select") || word_is(q, "with") || word_is(q, "values") || word_is(q, "show"))
		return Q_ROW;
	if (word_is(q, "set"))
		return Q_SET;
	if (word_is(q, "begin") || word_is(q, "start"))
		return Q_BEGIN;
	if (word_is(q, "commit") || word_is(q, "end") || word_is(q, "rollback") || word_is(q, "abort"))
		return Q_END;
	if (word_is(q, "insert"))
		snprintf(tag, tagsz, "INSERT 0 1");
	else if (word_is(q, "update") || word_is(q, "delete"))
		snprintf(tag, tagsz, "%s 1", word_is(q, "update") ? "UPDATE" : "DELETE");
	else if (word_is(q, "discard"))
		snprintf(tag, tagsz, "DISCARD ALL");
	else {
		size_t n = 0;
		while (n + 1 < tagsz && isalpha((unsigned char)q[n])) {
			tag[n] = (char)toupper((unsigned char)q[n]);
			n++;
		}
		tag[n] = '\0';
	}
	return Q_OTHER;
}

/* SET [SESSION|LOCAL] name {=|TO} value: reported settings get a ParameterStatus. */
static void answer_set(struct conn *c, const char *q)
{
	static const char *reported[] = {"application_name",   "client_encoding",
	                                 "DateStyle",          "IntervalStyle",
	                                 "TimeZone",           "standard_conforming_strings",
	                                 "extra_float_digits", NULL};
	char name[64] = "", value[256] = "";
	const char *p = q;
	while (isspace((unsigned char)*p))
		p++;
	p += 3;
	while (isspace((unsigned char)*p))
		p++;
	if (word_is(p, "session") || word_is(p, "local")) {
		while (isalpha((unsigned char)*p))
			p++;
		while (isspace((unsigned char)*p))
			p++;
	}
	size_t n = 0;
	while ((isalnum((unsigned char)*p) || *p == '_') && n + 1 < sizeof(name))
		name[n++] = *p++;
	name[n] = '\0';
	while (isspace((unsigned char)*p) || *p == '=')
		p++;
	if (word_is(p, "to"))
		p += 2;
	while (isspace((unsigned char)*p) || *p == '\'')
		p++;
	n = 0;
	while (*p && *p != '\'' && *p != ';' && n + 1 < sizeof(value))
		value[n++] = *p++;
	while (n > 0 && isspace((unsigned char)value[n - 1]))
		n--;
	value[n] = '\0';
	for (int i = 0; reported[i]; i++)
		if (strcasecmp(name, reported[i]) == 0 && strcmp(reported[i], "extra_float_digits") != 0)
			send_param(&c->out, reported[i], value);
	send_complete(c, "SET");
}

/* Everything a query produces except ReadyForQuery; describe says whether a
 * RowDescription goes first (simple protocol: yes; Execute: no). */
static void answer_query(struct conn *c, enum query_kind k, const char *tag, const char *text, int describe)
{
	switch (k) {
	case Q_ROW:
	case Q_SCALE:
	case Q_PARTITION:
		if (describe)
			send_row_description(c, k);
		send_data_row(c, k);
		send_complete(c, "SELECT 1");
		break;
	case Q_SET:
		if (text)
			answer_set(c, text);
		else
			send_complete(c, "SET");
		break;
	case Q_BEGIN:
		c->txn = 'T';
		send_complete(c, "BEGIN");
		break;
	case Q_END:
		c->txn = 'I';
		send_complete(c, "COMMIT");
		break;
	case Q_EMPTY: {
		size_t at = msg_begin(&c->out, 'I');
		msg_end(&c->out, at);
		break;
	}
	case Q_OTHER:
		send_complete(c, tag);
		break;
	}
}

static void answer_startup(struct conn *c, const char *p, size_t len)
{
	const char *app = "";
	const char *user = "postgres";
	/* p: name\0value\0 ... \0 after the 8-byte header */
	size_t i = 8;
	while (i < len && p[i] != '\0') {
		const char *name = p + i;
		size_t nl = strnlen(name, len - i);
		if (i + nl + 1 >= len)
			break;
		const char *value = name + nl + 1;
		size_t vl = strnlen(value, len - i - nl - 1);
		if (strcmp(name, "application_name") == 0)
			app = value;
		if (strcmp(name, "user") == 0)
			user = value;
		i += nl + 1 + vl + 1;
	}
	size_t at = msg_begin(&c->out, 'R');
	put_u32(&c->out, 0);
	msg_end(&c->out, at);
	send_param(&c->out, "application_name", app);
	send_param(&c->out, "client_encoding", "UTF8");
	send_param(&c->out, "DateStyle", "ISO, MDY");
	send_param(&c->out, "default_transaction_read_only", "off");
	send_param(&c->out, "in_hot_standby", "off");
	send_param(&c->out, "integer_datetimes", "on");
	send_param(&c->out, "IntervalStyle", "postgres");
	send_param(&c->out, "is_superuser", "on");
	send_param(&c->out, "server_encoding", "UTF8");
	send_param(&c->out, "server_version", "15.0 (nullserver)");
	send_param(&c->out, "session_authorization", user);
	send_param(&c->out, "standard_conforming_strings", "on");
	send_param(&c->out, "TimeZone", "UTC");
	at = msg_begin(&c->out, 'K');
	put_u32(&c->out, next_pid++);
	put_u32(&c->out, 0x5eed5eedu);
	msg_end(&c->out, at);
	c->started = 1;
	send_ready(c);
}

/* Handles every complete message in c->in. Returns -1 to close. */
static int process(struct conn *c)
{
	size_t off = 0;
	int rc = 0;
	for (;;) {
		char *p = c->in.data + off;
		size_t avail = c->in.len - off;
		if (!c->started) {
			if (avail < 8)
				break;
			uint32_t len, code;
			memcpy(&len, p, 4);
			memcpy(&code, p + 4, 4);
			len = ntohl(len);
			code = ntohl(code);
			if (len < 8 || len > 10000) {
				rc = -1;
				break;
			}
			if (avail < len)
				break;
			if (code == 80877103 || code == 80877104) /* SSLRequest, GSSENCRequest */
				put_u8(&c->out, 'N');
			else if (code == 80877102) { /* CancelRequest: nothing to cancel */
				rc = -1;
				break;
			} else
				answer_startup(c, p, len);
			off += len;
			continue;
		}
		if (avail < 5)
			break;
		uint32_t len;
		memcpy(&len, p + 1, 4);
		len = ntohl(len);
		if (len < 4 || len > NS_MAX_MSG) {
			rc = -1;
			break;
		}
		if (avail < (size_t)len + 1)
			break;
		char type = p[0];
		char *body = p + 5;
		size_t blen = len - 4;
		char tag[64] = "";
		switch (type) {
		case 'Q': {
			/* the text's own terminator is the last byte; never trust it */
			if (blen > 0)
				body[blen - 1] = '\0';
			enum query_kind k = classify(blen > 0 ? body : "", tag, sizeof(tag));
			answer_query(c, k, tag, body, 1);
			send_ready(c);
			break;
		}
		case 'P': { /* Parse: name\0 query\0 ... */
			size_t nl = strnlen(body, blen);
			const char *q = "";
			if (nl < blen && memchr(body + nl + 1, '\0', blen - nl - 1) != NULL)
				q = body + nl + 1;
			c->unnamed = classify(q, c->tag, sizeof(c->tag));
			size_t at = msg_begin(&c->out, '1');
			msg_end(&c->out, at);
			break;
		}
		case 'B': {
			size_t at = msg_begin(&c->out, '2');
			msg_end(&c->out, at);
			break;
		}
		case 'D':
			if (blen > 0 && body[0] == 'S') {
				size_t at = msg_begin(&c->out, 't');
				put_u16(&c->out, 0);
				msg_end(&c->out, at);
			}
			if (c->unnamed == Q_ROW || c->unnamed == Q_SCALE || c->unnamed == Q_PARTITION)
				send_row_description(c, c->unnamed);
			else {
				size_t at = msg_begin(&c->out, 'n'); /* NoData */
				msg_end(&c->out, at);
			}
			break;
		case 'E':
			answer_query(c, c->unnamed, c->tag, NULL, 0);
			break;
		case 'C': {
			size_t at = msg_begin(&c->out, '3');
			msg_end(&c->out, at);
			break;
		}
		case 'S':
			send_ready(c);
			break;
		case 'H':
			break;
		case 'X':
			rc = -1;
			break;
		default: { /* unknown: ErrorResponse, as a server would */
			size_t at = msg_begin(&c->out, 'E');
			put_u8(&c->out, 'S');
			put_str(&c->out, "ERROR");
			put_u8(&c->out, 'C');
			put_str(&c->out, "08P01");
			put_u8(&c->out, 'M');
			put_str(&c->out, "nullserver: unsupported message type");
			put_u8(&c->out, 0);
			msg_end(&c->out, at);
			send_ready(c);
		}
		}
		off += (size_t)len + 1;
		if (rc < 0)
			break;
	}
	if (off > 0) {
		memmove(c->in.data, c->in.data + off, c->in.len - off);
		c->in.len -= off;
	}
	return rc;
}

static void conn_close(struct conn *c)
{
	close(c->fd); /* also removes it from the epoll set */
	free(c->in.data);
	free(c->out.data);
	free(c);
}

/* Writes what it can; registers or drops EPOLLOUT as needed. -1: close. */
static int flush_out(struct conn *c)
{
	size_t done = 0;
	while (done < c->out.len) {
		ssize_t n = send(c->fd, c->out.data + done, c->out.len - done, MSG_NOSIGNAL);
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		return -1;
	}
	memmove(c->out.data, c->out.data + done, c->out.len - done);
	c->out.len -= done;
	int want = c->out.len > 0;
	if (want != c->want_out) {
		struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
		if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
			return -1;
		c->want_out = want;
	}
	return 0;
}

static void on_readable(struct conn *c)
{
	for (;;) {
		if (buf_reserve(&c->in, NS_READ_CHUNK) < 0) {
			conn_close(c);
			return;
		}
		ssize_t n = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len, 0);
		if (n > 0) {
			c->in.len += (size_t)n;
			if ((size_t)n < c->in.cap - c->in.len + (size_t)n)
				break; /* short read: the socket is drained */
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		conn_close(c); /* EOF or error */
		return;
	}
	int rc = process(c);
	if (flush_out(c) < 0 || rc < 0)
		conn_close(c);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: nullserver PORT [SCALE]\n");
		return 2;
	}
	int port = atoi(argv[1]);
	if (argc > 2)
		scale = atoi(argv[2]);
	signal(SIGPIPE, SIG_IGN);

	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1024) < 0) {
		perror("nullserver: bind/listen");
		return 1;
	}
	epfd = epoll_create1(0);
	struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
	epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev);
	fprintf(stderr, "nullserver: listening on 127.0.0.1:%d\n", port);

	struct epoll_event evs[256];
	for (;;) {
		int n = epoll_wait(epfd, evs, 256, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("nullserver: epoll_wait");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (c == NULL) {
				for (;;) {
					int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
					if (fd < 0)
						break;
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					struct conn *nc = calloc(1, sizeof(*nc));
					if (nc == NULL) {
						close(fd);
						continue;
					}
					nc->fd = fd;
					nc->txn = 'I';
					struct epoll_event ev = {.events = EPOLLIN, .data.ptr = nc};
					if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
						conn_close(nc);
				}
				continue;
			}
			if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				on_readable(c);
			else if (evs[i].events & EPOLLOUT) {
				if (flush_out(c) < 0)
					conn_close(c);
			}
		}
	}
}
