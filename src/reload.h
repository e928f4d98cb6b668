/* reload.h — applying a new configuration generation.
 * Exports: reload_apply().
 * Never: reads files (runtime_gen_load does) or blocks. */
#ifndef PGS_RELOAD_H
#define PGS_RELOAD_H

#include "runtime.h"

/* Make g current everywhere (takes over the caller's reference): pools
 * resized, listeners re-tuned, every worker told. Safe from any thread. */
void reload_apply(struct cfg_gen *g);

#endif
