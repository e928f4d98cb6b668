/* admin.h — the virtual database `pgsluice` (alias `pgbouncer`).
 * Exports: admin_welcome() after login, admin_input() for each request.
 * Never: holds a server connection. */
#ifndef PGS_ADMIN_H
#define PGS_ADMIN_H

struct client;

void admin_welcome(struct client *cl);
void admin_input(struct client *cl);
/* The admin client is being freed: forget what it was waiting for. */
void admin_client_gone(struct client *cl);
/* The worker tick: finish a PAUSE whose servers have all been released. */
void admin_tick(struct client *cl);

#endif
