/* listener.c — TCP and unix listening sockets and accept. */
#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/listener.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "client.h"
#include "conn.h"
#include "runtime.h"
#include "worker.h"

/* "a.b.c.d:port", "[v6]:port" or "unix", without printf: a connection
 * storm formats one per login. */
static void format_peer(const struct sockaddr *sa, char *out, size_t size)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
		const uint8_t *b = (const uint8_t *)&in->sin_addr;
		char tmp[32], *p = tmp + sizeof(tmp);
		unsigned port = ntohs(in->sin_port);
		*--p = '\0';
		do
			*--p = (char)('0' + port % 10);
		while ((port /= 10) > 0);
		for (int i = 3; i >= 0; i--) {
			*--p = i == 3 ? ':' : '.';
			unsigned v = b[i];
			do
				*--p = (char)('0' + v % 10);
			while ((v /= 10) > 0);
		}
		str_lcopy(out, p, size);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
		char ip[INET6_ADDRSTRLEN];
		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		snprintf(out, size, "[%s]:%d", ip, ntohs(in6->sin6_port));
	} else {
		str_lcopy(out, "unix", size);
	}
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
	struct worker *w = arg;
	char addr[CLIENT_ADDR_MAX];
	(void)l;
	(void)len;
	if (w->shutting_down) {
		close(fd);
		return;
	}
	/* libevent accepted it non-blocking and close-on-exec, and it inherited
	 * the listening socket's TCP options (tune_listening_socket): no syscall
	 * here before the first read. With tcp_defer_accept the kernel reported
	 * the connection only once its first bytes (the startup packet) were
	 * in: read them now, without another trip through epoll. */
	format_peer(sa, addr, sizeof(addr));
	client_accept(w, fd, addr, sa->sa_family != AF_UNIX && w->gen->cfg->tcp_defer_accept != 0);
}

/* Accepted sockets inherit these from the listening socket (Linux copies
 * TCP_NODELAY, the keepalive settings and TCP_USER_TIMEOUT to the new socket). */
static void tune_listening_socket(int fd, const struct config *cfg)
{
	sock_tune_tcp(fd, cfg->tcp_keepalive, cfg->tcp_keepidle, cfg->tcp_keepintvl, cfg->tcp_keepcnt,
	              (long)(cfg->tcp_user_timeout / 1000));
	/* As PgBouncer does: wait up to 45 s for the client's first bytes. */
	int defer = cfg->tcp_defer_accept != 0 ? 45 : 0;
	setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof(defer));
}

void listener_tune(struct worker *w, const struct config *cfg)
{
	for (int i = 0; i < w->n_listeners; i++) {
		int fd = evconnlistener_get_fd(w->listeners[i]);
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 && ss.ss_family != AF_UNIX)
			tune_listening_socket(fd, cfg);
	}
}

static bool add_listener(struct worker *w, int fd, char *err, unsigned err_size)
{
	struct evconnlistener *l = evconnlistener_new(
	    w->base, accept_cb, w, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 1024, fd);
	if (l == NULL) {
		snprintf(err, err_size, "cannot create listener");
		close(fd);
		return false;
	}
	struct evconnlistener **grown = realloc(w->listeners, sizeof(*grown) * (size_t)(w->n_listeners + 1));
	if (grown == NULL) {
		evconnlistener_free(l);
		return false;
	}
	w->listeners = grown;
	w->listeners[w->n_listeners++] = l;
	return true;
}

static bool listen_tcp(struct worker *w, const struct config *cfg, const char *host, int port, char *err,
                       unsigned err_size)
{
	struct addrinfo hints, *res = NULL;
	char portstr[16];
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(portstr, sizeof(portstr), "%d", port);
	const char *h = strcmp(host, "*") == 0 ? NULL : host;
	int rc = getaddrinfo(h, portstr, &hints, &res);
	if (rc != 0) {
		snprintf(err, err_size, "listen_addr %s: %s", host, gai_strerror(rc));
		return false;
	}
	bool any = false;
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		tune_listening_socket(fd, cfg);
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
			snprintf(err, err_size, "cannot listen on %s:%d: %s", host, port, strerror(errno));
			close(fd);
			continue;
		}
		if (!add_listener(w, fd, err, err_size)) {
			freeaddrinfo(res);
			return false;
		}
		any = true;
	}
	freeaddrinfo(res);
	return any;
}

static void unix_path(const struct config *cfg, char *path, size_t size)
{
	snprintf(path, size, "%s/.s.PGSQL.%d", cfg->unix_socket_dir, cfg->listen_port);
}

static bool listen_unix(struct worker *w, const struct config *cfg, char *err, unsigned err_size)
{
	struct sockaddr_un un;
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	unix_path(cfg, un.sun_path, sizeof(un.sun_path));
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	unlink(un.sun_path);
	if (bind(fd, (struct sockaddr *)&un, sizeof(un)) < 0 || listen(fd, 1024) < 0) {
		snprintf(err, err_size, "cannot listen on %s: %s", un.sun_path, strerror(errno));
		close(fd);
		return false;
	}
	chmod(un.sun_path, (mode_t)cfg->unix_socket_mode);
	return add_listener(w, fd, err, err_size);
}

bool listener_setup(struct worker *w, const struct config *cfg, bool with_unix, char *err, unsigned err_size)
{
	if (cfg->listen_addr != NULL && cfg->listen_addr[0] != '\0') {
		char *list = strdup(cfg->listen_addr), *save = NULL;
		if (list == NULL)
			return false;
		for (char *tok = strtok_r(list, ", ", &save); tok != NULL;
		     tok = strtok_r(NULL, ", ", &save)) {
			if (!listen_tcp(w, cfg, tok, cfg->listen_port, err, err_size)) {
				free(list);
				return false;
			}
		}
		free(list);
	}
	if (with_unix && cfg->unix_socket_dir != NULL && cfg->unix_socket_dir[0] != '\0')
		return listen_unix(w, cfg, err, err_size);
	return true;
}

void listener_cleanup(const struct config *cfg)
{
	if (cfg->unix_socket_dir == NULL || cfg->unix_socket_dir[0] == '\0')
		return;
	char path[108];
	unix_path(cfg, path, sizeof(path));
	unlink(path);
}
