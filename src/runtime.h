/* runtime.h — process-wide state: the workers, the current configuration
 * generation, global client counts.
 * Owns: the configuration generations (refcounted) and the worker array.
 * Exports: runtime_gen_acquire()/release(), the `rt` singleton.
 * Never: touches a connection. Lock order: gen_lock is a leaf lock. */
#ifndef PGS_RUNTIME_H
#define PGS_RUNTIME_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "auth/userlist.h"
#include "config.h"

/* One loaded configuration with its auth_file; immutable once published. */
struct cfg_gen {
	struct config *cfg;     /* owned */
	struct userlist *users; /* owned; NULL when no auth_file */
	atomic_int refs;
	unsigned long number; /* 1 for the first load, +1 per reload */
};

struct worker;

struct runtime {
	int n_workers;
	struct worker *workers;   /* owned array */
	pthread_mutex_t gen_lock; /* guards gen (the pointer, not the generation) */
	struct cfg_gen *gen;      /* current generation; holds one reference */
	atomic_int n_clients;     /* clients connected, for max_client_conn */
	atomic_ullong refused_max_client_conn;
	atomic_bool shutting_down;
	atomic_uint next_fake_pid;
	atomic_ulong generations; /* the last generation number handed out */
	const char *version;
};

extern struct runtime rt;

struct cfg_gen *runtime_gen_new(struct config *cfg, struct userlist *users, unsigned long number);
/* A new reference to the current generation. */
struct cfg_gen *runtime_gen_acquire(void);
void runtime_gen_release(struct cfg_gen *g);
/* Publish g as current (takes over the caller's reference). */
void runtime_gen_publish(struct cfg_gen *g);
/* A generation for cfg (taken over) with its auth_file loaded and the next
 * number; NULL with err filled when the auth_file cannot be read. */
struct cfg_gen *runtime_gen_load(struct config *cfg, char *err, size_t err_size);

#define PGSLUICE_VERSION "0.1.0"

#endif
