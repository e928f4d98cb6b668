/* snapshot.h — a picture of every client and server connection, for SHOW
 * CLIENTS, SHOW SERVERS and SHOW LEAKS.
 * Owns: the rows of one snapshot.
 * Exports: snapshot_start() (asynchronous: each worker describes its own
 *          connections on its own thread, then `done` runs on the worker
 *          that asked), snapshot_free().
 * Never: reads a connection from a thread that does not own it; idle
 *        servers are read under their pool's lock. */
#ifndef PGS_SNAPSHOT_H
#define PGS_SNAPSHOT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "client.h"

struct pool;
struct worker;

struct snap_row {
	char type;              /* 'C' client, 'S' server */
	const void *ptr, *link; /* identities, shown as PgBouncer's ptr/link */
	uint64_t id;
	const struct pool *pool; /* NULL: not in a pool (logging in, admin console) */
	char user[64], database[64], application_name[64];
	const char *word;   /* PgBouncer's word: active, waiting, idle, used, new, login */
	const char *detail; /* ours: the exact state */
	char addr[64];
	int port;
	char local_addr[64];
	int local_port;
	int64_t connect_at, request_at; /* monotonic usec */
	int64_t wait_usec;              /* a client's current wait for a server */
	int64_t held_usec;              /* how long the link between client and server has lasted */
	int64_t idle_usec;              /* how long the linked server has waited on its client */
	char txn;             /* the linked server's transaction state: 'I', 'T', 'E'; 0: no server */
	uint32_t remote_pid;  /* client: the pid it was given; server: the backend's */
	uint32_t backend_pid; /* the linked (or own) server's backend; 0: none */
	bool leak;            /* held idle (in a transaction) past leak_warn_timeout */
	char last_sql[LAST_SQL_MAX + 1];
};

struct snapshot;
typedef void (*snapshot_done_fn)(struct snapshot *snap, void *arg);

struct snapshot {
	pthread_mutex_t lock; /* guards rows and pending while workers fill it */
	struct snap_row *rows;
	int n, cap;
	int pending;
	bool failed; /* out of memory somewhere: rows are incomplete */
	struct worker *owner;
	snapshot_done_fn done;
	void *arg;        /* the owner may clear it (its client left); done still runs */
	int64_t taken_at; /* monotonic */
};

/* Must run on a worker thread; done runs later, from its inbox. false on
 * OOM: done will not run and the caller frees *out. */
bool snapshot_start(snapshot_done_fn done, void *arg, struct snapshot **out);
void snapshot_free(struct snapshot *snap);

#endif
