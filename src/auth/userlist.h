/* auth/userlist.h — the auth_file in PgBouncer's userlist.txt format:
 * one `"user" "secret"` pair per line, "" to escape a quote, ';' comments.
 * Secrets are plaintext, "md5<32 hex>" or "SCRAM-SHA-256$...".
 * Owns: the loaded entries.
 * Never: logs secrets. */
#ifndef PGS_AUTH_USERLIST_H
#define PGS_AUTH_USERLIST_H

#include <stdbool.h>

struct userlist;

/* NULL on an unreadable file or a malformed line (err says file:line). */
struct userlist *userlist_load(const char *path, char *err, unsigned err_size);
void userlist_free(struct userlist *u);
/* The stored secret for user, or NULL. */
const char *userlist_find(const struct userlist *u, const char *user);
int userlist_count(const struct userlist *u);
/* The user listed first in the file, or NULL when there is none. */
const char *userlist_first_user(const struct userlist *u);

#endif
