/* runtime.c — the process-wide singleton and configuration generations. */
#include "runtime.h"

#include <stdio.h>
#include <stdlib.h>

#include "log.h"

struct runtime rt = {
    .gen_lock = PTHREAD_MUTEX_INITIALIZER,
    .version = PGSLUICE_VERSION,
};

struct cfg_gen *runtime_gen_new(struct config *cfg, struct userlist *users, unsigned long number)
{
	struct cfg_gen *g = calloc(1, sizeof(*g));
	if (g == NULL)
		return NULL;
	g->cfg = cfg;
	g->users = users;
	g->number = number;
	atomic_init(&g->refs, 1);
	return g;
}

struct cfg_gen *runtime_gen_acquire(void)
{
	pthread_mutex_lock(&rt.gen_lock);
	struct cfg_gen *g = rt.gen;
	if (g != NULL)
		atomic_fetch_add(&g->refs, 1);
	pthread_mutex_unlock(&rt.gen_lock);
	return g;
}

void runtime_gen_release(struct cfg_gen *g)
{
	if (g == NULL || atomic_fetch_sub(&g->refs, 1) != 1)
		return;
	config_free(g->cfg);
	userlist_free(g->users);
	free(g);
}

void runtime_gen_publish(struct cfg_gen *g)
{
	pthread_mutex_lock(&rt.gen_lock);
	struct cfg_gen *old = rt.gen;
	rt.gen = g;
	pthread_mutex_unlock(&rt.gen_lock);
	runtime_gen_release(old);
}

struct cfg_gen *runtime_gen_load(struct config *cfg, char *err, size_t err_size)
{
	struct userlist *users = NULL;
	if (cfg->auth_file != NULL && cfg->auth_file[0] != '\0') {
		users = userlist_load(cfg->auth_file, err, (unsigned)err_size);
		if (users == NULL) {
			config_free(cfg);
			return NULL;
		}
	}
	struct cfg_gen *g = runtime_gen_new(cfg, users, atomic_fetch_add(&rt.generations, 1) + 1);
	if (g == NULL) {
		snprintf(err, err_size, "out of memory");
		config_free(cfg);
		userlist_free(users);
	}
	return g;
}
