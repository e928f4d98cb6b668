/* auth/scram.h — SCRAM-SHA-256 (RFC 5802 / 7677) in both directions:
 * pgsluice verifying a client, and pgsluice logging in to PostgreSQL.
 * Owns: the exchange state of one authentication.
 * Exports: scram_server_* (we are the verifier), scram_client_* (we prove),
 *          scram_parse_secret() for "SCRAM-SHA-256$iter:salt$stored:server",
 *          scram_is_secret() to tell such a secret from a password.
 * Never: logs or sends secrets; compares proofs in constant time. */
#ifndef PGS_AUTH_SCRAM_H
#define PGS_AUTH_SCRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SCRAM_KEY_LEN 32
#define SCRAM_DEFAULT_ITERATIONS 4096

struct scram_secret {
	int iterations;
	uint8_t salt[64];
	size_t salt_len;
	uint8_t stored_key[SCRAM_KEY_LEN];
	uint8_t server_key[SCRAM_KEY_LEN];
};

/* Does text look like PostgreSQL's stored form (the "SCRAM-SHA-256$" prefix;
 * scram_parse_secret() checks the rest)? false for NULL. */
bool scram_is_secret(const char *text);
/* Parse PostgreSQL's stored form; false if it is not one. */
bool scram_parse_secret(const char *text, struct scram_secret *out);
/* Derive a secret from a plaintext password with a fresh random salt. */
bool scram_secret_from_password(const char *password, struct scram_secret *out);

/* --- pgsluice as verifier (client → pgsluice) --- */
struct scram_server;
struct scram_server *scram_server_new(const struct scram_secret *secret);
void scram_server_free(struct scram_server *s);
/* client-first-message in, server-first-message out (malloc'd, NUL-terminated).
 * Rejects channel binding requests ("p=") and malformed input. */
bool scram_server_first(struct scram_server *s, const char *client_first, size_t n, char **server_first,
                        char *err, size_t err_size);
/* client-final-message in; *proof_ok says whether the proof matched; on a
 * match server_final (malloc'd "v=...") is filled. false only for malformed
 * input (bad nonce, bad base64). */
bool scram_server_final(struct scram_server *s, const char *client_final, size_t n, bool *proof_ok,
                        char **server_final, char *err, size_t err_size);
/* After a matching proof: the ClientKey recovered from it, which lets
 * pgsluice log in to a server that holds the same secret. */
bool scram_server_client_key(const struct scram_server *s, uint8_t out[SCRAM_KEY_LEN]);

/* --- pgsluice as prover (pgsluice → PostgreSQL) --- */
struct scram_client;
struct scram_client *scram_client_new(const char *password);
/* With keys recovered from a client's exchange instead of a password. */
struct scram_client *scram_client_new_keys(const uint8_t client_key[SCRAM_KEY_LEN],
                                           const uint8_t server_key[SCRAM_KEY_LEN]);
void scram_client_free(struct scram_client *c);
/* "n,,n=,r=<nonce>", malloc'd. */
char *scram_client_first(struct scram_client *c);
/* server-first in, client-final out (malloc'd). */
bool scram_client_final(struct scram_client *c, const char *server_first, size_t n, char **client_final,
                        char *err, size_t err_size);
/* server-final in: true if the server's signature is right. */
bool scram_client_verify(struct scram_client *c, const char *server_final, size_t n, char *err,
                         size_t err_size);

/* For tests: fixed nonce instead of a random one (NULL: random again). */
void scram_set_test_nonce(const char *nonce);

#endif
