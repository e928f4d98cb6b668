/* reload.c — a configuration generation made current everywhere: pools
 * rebuilt from it (with its own auth_file), listeners re-tuned, every
 * worker told, then published. */
#include "reload.h"

#include "listener.h"
#include "log.h"
#include "pool.h"
#include "worker.h"

void reload_apply(struct cfg_gen *g)
{
	/* The generation itself is passed, so a pool never reads the secret of
	 * the generation this one replaces. */
	pool_reconfigure_all(g->cfg, g->users);
	log_set_debug(g->cfg->verbose);
	for (int i = 0; i < rt.n_workers; i++) {
		listener_tune(&rt.workers[i], g->cfg);
		struct worker_msg *m = worker_msg_new(WMSG_CONFIG);
		if (m == NULL)
			continue;
		atomic_fetch_add(&g->refs, 1);
		m->gen = g;
		worker_post(&rt.workers[i], m);
	}
	runtime_gen_publish(g);
}
