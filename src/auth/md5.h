/* auth/md5.h — PostgreSQL's md5 password scheme.
 * Exports: md5_secret() ("md5" + hex(md5(password || user))) and
 *          md5_response() for a 4-byte salt, from either a password or a stored secret.
 * Never: keeps anything. */
#ifndef PGS_AUTH_MD5_H
#define PGS_AUTH_MD5_H

#include <stdbool.h>
#include <stdint.h>

#define MD5_SECRET_LEN 35 /* "md5" + 32 hex digits */

/* out gets MD5_SECRET_LEN + 1 bytes. */
bool md5_secret(const char *password, const char *user, char out[MD5_SECRET_LEN + 1]);
/* Is text a stored md5 secret? */
bool md5_is_secret(const char *text);
/* The AuthenticationMD5Password answer: "md5" + hex(md5(hex(secret) || salt)).
 * secret_or_password: a stored "md5..." secret, or a plaintext password
 * (then user is needed to derive the secret first). */
bool md5_response(const char *secret_or_password, const char *user, const uint8_t salt[4],
                  char out[MD5_SECRET_LEN + 1]);

#endif
