/* admin.h — the virtual database `pgsluice` (alias `pgbouncer`).
 * Exports: admin_console, the client_console its clients are answered by
 *          (registered with client_set_console at start).
 * Never: holds a server connection. */
#ifndef PGS_ADMIN_H
#define PGS_ADMIN_H

#include "client.h"

extern const struct client_console admin_console;

void admin_welcome(struct client *cl);
void admin_input(struct client *cl);
/* The admin client is being freed: forget what it was waiting for. */
void admin_client_gone(struct client *cl);
/* The worker tick: finish a PAUSE whose servers have all been released. */
void admin_tick(struct client *cl);

#endif
