/* worker.h — one thread, one event loop, and the connections it owns.
 * Owns: its event_base, its clients, the servers doing I/O on it, its
 *       buffer free list, its inbox of messages from other threads.
 * Exports: worker_start/stop, worker_post() (thread-safe hand-offs),
 *          worker_reap_*() for "free after the event batch", worker_self().
 * Never: touches another worker's connections except through worker_post()
 *        (and event_del on an idle server, which libevent makes thread-safe). */
#ifndef PGS_WORKER_H
#define PGS_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "buf.h"
#include "welcome.h"
#include "util/list.h"

struct client;
struct server;
struct worker;
struct cfg_gen;
struct pool;
struct evconnlistener;
struct evdns_base;

enum worker_msg_kind {
	WMSG_HANDOFF,    /* a server linked to one of our clients by another thread */
	WMSG_LOGIN_FAIL, /* the pool could not get a server for one of our waiting clients */
	WMSG_CANCEL,     /* a CancelRequest whose key says it is for one of our clients */
	WMSG_CONFIG,     /* a new configuration generation */
	WMSG_SHUTDOWN,   /* stop accepting; close idle clients */
	WMSG_STOP,       /* leave the loop */
	WMSG_LAUNCH,     /* open one server connection for pool (already counted in it) */
	WMSG_CALL,       /* run call(w, arg) on the worker's thread */
};

typedef void (*worker_call_fn)(struct worker *w, void *arg);

struct worker_msg {
	struct list node;
	enum worker_msg_kind kind;
	struct client
	    *client; /* HANDOFF, LOGIN_FAIL: has a pending hand-off, not freed before this arrives */
	struct server *server; /* HANDOFF */
	uint32_t pid, key;     /* CANCEL */
	struct cfg_gen *gen;   /* CONFIG: a reference for the worker */
	struct pool *pool;     /* LAUNCH */
	worker_call_fn call;   /* CALL */
	void *arg;             /* CALL */
	char *sqlstate;        /* LOGIN_FAIL, owned */
	char *message;         /* LOGIN_FAIL, owned */
	char *detail;          /* LOGIN_FAIL, owned, may be NULL */
};

struct worker {
	int id;
	pthread_t thread;
	struct event_base *base;     /* owned */
	struct evdns_base *dns;      /* owned; resolves server host names without blocking */
	struct event *inbox_ev;      /* owned; reads wake_fd, or made active by this thread */
	int wake_fd;                 /* owned; eventfd other threads write to wake the loop */
	atomic_bool inbox_signalled; /* wake_fd written and not yet read: no second write */
	struct event *reap_ev;       /* owned; frees the reap list after the current batch */
	struct event *tick_ev;       /* owned; the janitor's timer for this worker (janitor.c) */
	pthread_mutex_t inbox_lock;  /* guards inbox only; a leaf lock */
	struct list inbox;           /* of struct worker_msg */
	struct list clients;         /* every client of this worker (client.worker_node) */
	struct list servers; /* servers owned by this worker and not idle in a pool (server.worker_node) */
	struct list reap_clients; /* closed, freed by reap_ev */
	struct list reap_servers;
	struct buf_pool bufs;
	struct cfg_gen *gen;           /* reference to the generation this worker uses */
	struct welcome_cache welcomes; /* login answers (welcome.h) */
	uint32_t random[256];          /* CSPRNG output not used yet (worker_random) */
	unsigned random_left;
	struct evconnlistener **listeners; /* owned */
	int n_listeners;
	bool shutting_down;
	uint64_t counter; /* for ids in log lines */
};

/* 32 random bits from OpenSSL's CSPRNG, fetched 1 KiB at a time: one
 * RAND_bytes per login costs more than the rest of the login. */
uint32_t worker_random(struct worker *w);

/* The worker running on this thread (NULL on the main thread). */
struct worker *worker_self(void);

bool worker_init(struct worker *w, int id, struct cfg_gen *gen);
bool worker_start(struct worker *w);
void worker_join(struct worker *w);
/* At exit, after the loops stopped: close every client and server it owns
 * (pools still exist), then, once the pools are gone, free the loop. */
void worker_close_all(struct worker *w);
void worker_destroy(struct worker *w);

/* Thread-safe: queue msg (malloc'd, owned by the inbox) for w. */
void worker_post(struct worker *w, struct worker_msg *msg);
struct worker_msg *worker_msg_new(enum worker_msg_kind kind);
void worker_msg_free(struct worker_msg *m);
/* Thread-safe: run fn(w, arg) on w's thread (at once when that is this
 * thread). false on OOM: fn will not run. */
bool worker_call(struct worker *w, worker_call_fn fn, void *arg);
/* The same, but always through the inbox, never on the caller's stack. */
bool worker_call_later(struct worker *w, worker_call_fn fn, void *arg);

void worker_reap_client(struct worker *w, struct client *cl);
void worker_reap_server(struct worker *w, struct server *s);

#endif
