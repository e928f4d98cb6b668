/* worker.c — the event-loop threads. Other threads talk to a worker only
 * through its inbox: a locked list plus an eventfd the sender writes to
 * wake the loop. The sender never takes the receiving loop's libevent
 * lock, which that loop holds whenever it runs outside a callback: a
 * worker descheduled there would stall every worker posting to it. */
#include "worker.h"

#include <event2/dns.h>
#include <event2/listener.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "client.h"
#include "log.h"
#include "pool.h"
#include "relay.h"
#include "runtime.h"
#include "server.h"
#include "stats.h"
#include "util/clock.h"

static _Thread_local struct worker *self;

struct worker *worker_self(void)
{
	return self;
}

struct worker_msg *worker_msg_new(enum worker_msg_kind kind)
{
	struct worker_msg *m = calloc(1, sizeof(*m));
	if (m != NULL) {
		m->kind = kind;
		list_init(&m->node);
	}
	return m;
}

void worker_msg_free(struct worker_msg *m)
{
	if (m == NULL)
		return;
	free(m->sqlstate);
	free(m->message);
	free(m->detail);
	free(m);
}

bool worker_call(struct worker *w, worker_call_fn fn, void *arg)
{
	if (worker_self() == w) {
		fn(w, arg);
		return true;
	}
	return worker_call_later(w, fn, arg);
}

bool worker_call_later(struct worker *w, worker_call_fn fn, void *arg)
{
	struct worker_msg *m = worker_msg_new(WMSG_CALL);
	if (m == NULL)
		return false;
	m->call = fn;
	m->arg = arg;
	worker_post(w, m);
	return true;
}

void worker_post(struct worker *w, struct worker_msg *m)
{
	pthread_mutex_lock(&w->inbox_lock);
	list_add_tail(&w->inbox, &m->node);
	pthread_mutex_unlock(&w->inbox_lock);
	if (worker_self() == w) {
		event_active(w->inbox_ev, EV_READ, 0);
		return;
	}
	/* One write wakes the loop for everything posted until it reads. */
	if (!atomic_exchange_explicit(&w->inbox_signalled, true, memory_order_acq_rel)) {
		uint64_t one = 1;
		while (write(w->wake_fd, &one, sizeof(one)) < 0 && errno == EINTR) {
		}
	}
}

/* A closed client or server moves from the worker's live list to its reap
 * list (the same node: it is on one list of the worker at a time). */
void worker_reap_client(struct worker *w, struct client *cl)
{
	if (cl->reaping)
		return; /* already queued for freeing */
	cl->reaping = true;
	if (list_linked(&cl->worker_node)) {
		list_del(&cl->worker_node);
		atomic_fetch_sub(&rt.n_clients, 1);
	}
	list_add_tail(&w->reap_clients, &cl->worker_node);
	event_active(w->reap_ev, EV_READ, 0);
}

void worker_reap_server(struct worker *w, struct server *s)
{
	if (list_linked(&s->worker_node))
		list_del(&s->worker_node);
	list_add_tail(&w->reap_servers, &s->worker_node);
	event_active(w->reap_ev, EV_READ, 0);
}

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct list *n;
	(void)fd;
	(void)what;
	while ((n = list_pop_head(&w->reap_clients)) != NULL)
		client_free(container_of(n, struct client, worker_node));
	while ((n = list_pop_head(&w->reap_servers)) != NULL)
		server_free(container_of(n, struct server, worker_node));
}

static void handle_msg(struct worker *w, struct worker_msg *m)
{
	switch (m->kind) {
	case WMSG_HANDOFF: {
		struct client *cl = m->client;
		struct server *s = m->server;
		pool_handoffs_pending(cl->pool, &cl->pc, -1);
		server_attach(s, w);
		if (cl->closing) {
			relay_link(cl, s);
			server_release(s, "client left while a server was on its way");
			worker_reap_client(w, cl);
		} else {
			client_got_server(cl, s);
		}
		break;
	}
	case WMSG_LOGIN_FAIL: {
		struct client *cl = m->client;
		pool_handoffs_pending(cl->pool, &cl->pc, -1);
		if (cl->closing)
			worker_reap_client(w, cl);
		else
			client_fail_wait(cl, m->sqlstate, m->message, m->detail);
		break;
	}
	case WMSG_CANCEL:
		client_handle_cancel(w, m->pid, m->key);
		break;
	case WMSG_CONFIG: {
		struct cfg_gen *old = w->gen;
		w->gen = m->gen;
		m->gen = NULL;
		runtime_gen_release(old);
		break;
	}
	case WMSG_SHUTDOWN:
		w->shutting_down = true;
		for (int i = 0; i < w->n_listeners; i++)
			evconnlistener_disable(w->listeners[i]);
		break;
	case WMSG_LAUNCH:
		server_launch(m->pool, w);
		break;
	case WMSG_CALL:
		m->call(w, m->arg);
		break;
	case WMSG_STOP:
		event_base_loopbreak(w->base);
		break;
	}
}

static void inbox_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct list batch;
	(void)fd;
	(void)what;
	/* Drain the eventfd, then lower the flag, then take the list. In that
	 * order a sender whose write was drained here posted before the take
	 * (its message is in this batch), and any later sender sees the flag
	 * down and writes again. Lowered before the drain instead, a write
	 * drained here could leave the flag up with nothing left to wake us. */
	uint64_t count;
	while (read(w->wake_fd, &count, sizeof(count)) < 0 && errno == EINTR) {
	}
	atomic_store_explicit(&w->inbox_signalled, false, memory_order_seq_cst);
	list_init(&batch);
	pthread_mutex_lock(&w->inbox_lock);
	if (!list_empty(&w->inbox)) {
		batch.next = w->inbox.next;
		batch.prev = w->inbox.prev;
		batch.next->prev = &batch;
		batch.prev->next = &batch;
		list_init(&w->inbox);
	}
	pthread_mutex_unlock(&w->inbox_lock);
	int64_t outer = clock_event_begin();
	struct list *n;
	while ((n = list_pop_head(&batch)) != NULL) {
		struct worker_msg *m = container_of(n, struct worker_msg, node);
		handle_msg(w, m);
		if (m->gen != NULL)
			runtime_gen_release(m->gen);
		worker_msg_free(m);
	}
	clock_event_end(outer);
}

uint32_t worker_random(struct worker *w)
{
	if (w->random_left == 0) {
		if (RAND_bytes((unsigned char *)w->random, sizeof(w->random)) != 1) {
			for (size_t i = 0; i < sizeof(w->random) / sizeof(w->random[0]); i++)
				w->random[i] = (uint32_t)random() ^ ((uint32_t)random() << 16);
		}
		w->random_left = sizeof(w->random) / sizeof(w->random[0]);
	}
	uint32_t v = w->random[--w->random_left];
	w->random[w->random_left] = 0; /* a value handed out is not kept */
	return v;
}

bool worker_init(struct worker *w, int id, struct cfg_gen *gen)
{
	memset(w, 0, sizeof(*w));
	w->wake_fd = -1;
	w->id = id;
	w->gen = gen;
	pthread_mutex_init(&w->inbox_lock, NULL);
	list_init(&w->inbox);
	list_init(&w->clients);
	list_init(&w->servers);
	list_init(&w->reap_clients);
	list_init(&w->reap_servers);
	w->base = event_base_new();
	if (w->base == NULL)
		return false;
	w->dns = evdns_base_new(w->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
	if (w->dns == NULL)
		w->dns = evdns_base_new(w->base, 0); /* no resolv.conf: /etc/hosts still works */
	if (w->dns == NULL)
		return false;
	w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->wake_fd < 0)
		return false;
	w->inbox_ev = event_new(w->base, w->wake_fd, EV_READ | EV_PERSIST, inbox_cb, w);
	w->reap_ev = event_new(w->base, -1, EV_PERSIST, reap_cb, w);
	if (w->inbox_ev == NULL || w->reap_ev == NULL)
		return false;
	event_add(w->inbox_ev, NULL);
	return true;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	self = w;
	stats_set_thread_slot(w->id + 1);
	event_base_dispatch(w->base);
	return NULL;
}

bool worker_start(struct worker *w)
{
	return pthread_create(&w->thread, NULL, worker_main, w) == 0;
}

void worker_join(struct worker *w)
{
	pthread_join(w->thread, NULL);
}

void worker_close_all(struct worker *w)
{
	struct list *n, *tmp;
	self = w;
	list_for_each_safe(n, tmp, &w->clients)
	{
		struct client *cl = container_of(n, struct client, worker_node);
		if (!cl->closing)
			client_close(cl, "pooler stopping");
	}
	list_for_each_safe(n, tmp, &w->servers)
	{
		struct server *s = container_of(n, struct server, worker_node);
		list_del(&s->worker_node);
		server_set_state(s, SV_CLOSED);
		worker_reap_server(w, s);
	}
	reap_cb(-1, 0, w);
	/* Clients whose hand-off never arrived. */
	list_for_each_safe(n, tmp, &w->clients) client_free(container_of(n, struct client, worker_node));
	self = NULL;
}

void worker_destroy(struct worker *w)
{
	self = w;
	for (int i = 0; i < w->n_listeners; i++)
		evconnlistener_free(w->listeners[i]);
	free(w->listeners);
	struct list *m;
	while ((m = list_pop_head(&w->inbox)) != NULL) {
		struct worker_msg *msg = container_of(m, struct worker_msg, node);
		if (msg->gen)
			runtime_gen_release(msg->gen);
		worker_msg_free(msg);
	}
	event_free(w->inbox_ev);
	if (w->wake_fd >= 0)
		close(w->wake_fd);
	event_free(w->reap_ev);
	if (w->tick_ev != NULL)
		event_free(w->tick_ev);
	buf_pool_destroy(&w->bufs);
	OPENSSL_cleanse(w->random, sizeof(w->random));
	welcome_cache_clear(&w->welcomes);
	evdns_base_free(w->dns, 0);
	event_base_free(w->base);
	runtime_gen_release(w->gen);
	pthread_mutex_destroy(&w->inbox_lock);
	self = NULL;
}
