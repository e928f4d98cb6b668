/* auth/scram.c — SCRAM-SHA-256 (RFC 5802 / 7677) as PostgreSQL speaks it,
 * in both directions: verifying a client against a stored secret, and
 * proving ourselves to a server from a password or from keys recovered out
 * of a client's exchange.
 *
 * Messages arrive as (pointer, length) straight from the wire; each is copied
 * into a NUL-terminated buffer first, and one with an embedded NUL is
 * rejected, so the attribute parsers below can use ordinary string functions.
 *
 * Passwords are used as their raw bytes. PostgreSQL runs SASLprep first,
 * which is the identity for printable ASCII; a non-ASCII password that
 * SASLprep would rewrite (NFKC, non-ASCII spaces) derives different keys
 * than PostgreSQL does. Secrets taken from PostgreSQL are not affected. */
#include "auth/scram.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "proto/protocol.h"

#define SCRAM_NONCE_RAW_LEN 18 /* 24 base64 characters, no padding */
#define SCRAM_SALT_LEN 16      /* what PostgreSQL generates */
#define SCRAM_SECRET_PREFIX SCRAM_MECHANISM "$"

/* Tests only: not thread-safe, and never set in a running pooler. */
static char scram_test_nonce[128];
static bool scram_test_nonce_set;

/* ---------- small helpers ---------- */

/* Fills err and returns false, so a parser can `return scram_fail(...)`. */
__attribute__((format(printf, 3, 4))) static bool scram_fail(char *err, size_t err_size, const char *fmt, ...)
{
	if (err != NULL && err_size > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, err_size, fmt, ap);
		va_end(ap);
	}
	return false;
}

/* malloc'd printf; a local copy so this module links without util/str.c. */
__attribute__((format(printf, 1, 2))) static char *scram_printf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	char *s = malloc((size_t)n + 1);
	if (s == NULL)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

/* Wire bytes → C string; NULL for an embedded NUL or no memory. */
static char *scram_copy_message(const char *msg, size_t n, char *err, size_t err_size)
{
	if (msg == NULL || n == 0) {
		scram_fail(err, err_size, "empty SCRAM message");
		return NULL;
	}
	if (memchr(msg, '\0', n) != NULL) {
		scram_fail(err, err_size, "SCRAM message contains a NUL byte");
		return NULL;
	}
	char *s = malloc(n + 1);
	if (s == NULL) {
		scram_fail(err, err_size, "out of memory");
		return NULL;
	}
	memcpy(s, msg, n);
	s[n] = '\0';
	return s;
}

static void scram_free_string(char **s)
{
	if (*s != NULL) {
		OPENSSL_cleanse(*s, strlen(*s));
		free(*s);
		*s = NULL;
	}
}

static char *scram_b64_encode(const uint8_t *data, size_t len)
{
	if (len > INT_MAX / 2)
		return NULL;
	char *out = malloc((len + 2) / 3 * 4 + 1);
	if (out == NULL)
		return NULL;
	EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	return out;
}

static bool scram_b64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
	       c == '/';
}

/* Strict standard base64 with padding. EVP_DecodeBlock alone is too lenient
 * (it skips surrounding whitespace) and reports the padded length, so the
 * alphabet and '=' placement are checked here and the padding subtracted.
 * *out is malloc'd; the caller frees it. */
static bool scram_b64_decode(const char *s, size_t len, uint8_t **out, size_t *out_len)
{
	*out = NULL;
	*out_len = 0;
	if (len == 0 || len % 4 != 0 || len > INT_MAX)
		return false;
	size_t pad = 0;
	if (s[len - 1] == '=')
		pad = s[len - 2] == '=' ? 2 : 1;
	for (size_t i = 0; i < len - pad; i++)
		if (!scram_b64_char(s[i]))
			return false;
	uint8_t *buf = malloc(len / 4 * 3);
	if (buf == NULL)
		return false;
	int n = EVP_DecodeBlock(buf, (const unsigned char *)s, (int)len);
	if (n < 0 || (size_t)n != len / 4 * 3) {
		free(buf);
		return false;
	}
	*out = buf;
	*out_len = (size_t)n - pad;
	return true;
}

/* Decode a value that must be exactly want bytes long (keys, proofs). */
static bool scram_b64_decode_exact(const char *s, size_t len, uint8_t *dst, size_t want)
{
	uint8_t *buf;
	size_t n;
	if (!scram_b64_decode(s, len, &buf, &n))
		return false;
	bool ok = n == want;
	if (ok)
		memcpy(dst, buf, want);
	OPENSSL_cleanse(buf, n);
	free(buf);
	return ok;
}

static bool scram_sha256(const uint8_t *data, size_t len, uint8_t out[SCRAM_KEY_LEN])
{
	unsigned int n = 0;
	return EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) == 1 && n == SCRAM_KEY_LEN;
}

static bool scram_hmac(const uint8_t *key, size_t key_len, const void *data, size_t len,
                       uint8_t out[SCRAM_KEY_LEN])
{
	unsigned int n = 0;
	return HMAC(EVP_sha256(), key, (int)key_len, data, len, out, &n) != NULL && n == SCRAM_KEY_LEN;
}

/* SaltedPassword → ClientKey and ServerKey (RFC 5802 section 3). */
static bool scram_derive_keys(const char *password, const uint8_t *salt, size_t salt_len, int iterations,
                              uint8_t client_key[SCRAM_KEY_LEN], uint8_t server_key[SCRAM_KEY_LEN])
{
	uint8_t salted[SCRAM_KEY_LEN];
	size_t pw_len = strlen(password);
	bool ok = pw_len <= INT_MAX && salt_len <= INT_MAX && iterations > 0 &&
	          PKCS5_PBKDF2_HMAC(password, (int)pw_len, salt, (int)salt_len, iterations, EVP_sha256(),
	                            SCRAM_KEY_LEN, salted) == 1 &&
	          scram_hmac(salted, sizeof(salted), "Client Key", 10, client_key) &&
	          scram_hmac(salted, sizeof(salted), "Server Key", 10, server_key);
	OPENSSL_cleanse(salted, sizeof(salted));
	return ok;
}

/* 18 random bytes in base64, or the fixed test nonce. */
static char *scram_make_nonce(void)
{
	if (scram_test_nonce_set)
		return scram_printf("%s", scram_test_nonce);
	uint8_t raw[SCRAM_NONCE_RAW_LEN];
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return NULL;
	return scram_b64_encode(raw, sizeof(raw));
}

/* RFC 5802 "printable": %x21-7E except ','. */
static bool scram_nonce_valid(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] < 0x21 || s[i] > 0x7e || s[i] == ',')
			return false;
	return true;
}

/* Reads "<name>=<value>" at *p; value runs to the next ',' or the end, and
 * *p moves past that ','. */
static bool scram_read_attr(const char **p, char name, const char **val, size_t *len)
{
	const char *s = *p;
	if (s[0] != name || s[1] != '=')
		return false;
	s += 2;
	const char *comma = strchr(s, ',');
	*val = s;
	*len = comma != NULL ? (size_t)(comma - s) : strlen(s);
	*p = comma != NULL ? comma + 1 : s + *len;
	return true;
}

/* Skips one "<letter>=<value>" extension attribute. */
static bool scram_skip_attr(const char **p)
{
	const char *val;
	size_t len;
	char name = **p;
	if (!((name >= 'a' && name <= 'z') || (name >= 'A' && name <= 'Z')))
		return false;
	return scram_read_attr(p, name, &val, &len);
}

/* Decimal 1..INT_MAX, nothing else. */
static bool scram_parse_iterations(const char *s, size_t len, int *out)
{
	if (len == 0 || len > 10)
		return false;
	long long v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	if (v < 1 || v > INT_MAX)
		return false;
	*out = (int)v;
	return true;
}

/* AuthMessage = client-first-bare "," server-first "," client-final-without-proof */
static char *scram_auth_message(const char *client_first_bare, const char *server_first,
                                const char *final_no_proof, size_t final_no_proof_len)
{
	if (final_no_proof_len > INT_MAX)
		return NULL;
	return scram_printf("%s,%s,%.*s", client_first_bare, server_first, (int)final_no_proof_len,
	                    final_no_proof);
}

/* ---------- secrets ---------- */

bool scram_is_secret(const char *text)
{
	return text != NULL && strncmp(text, SCRAM_SECRET_PREFIX, strlen(SCRAM_SECRET_PREFIX)) == 0;
}

bool scram_parse_secret(const char *text, struct scram_secret *out)
{
	struct scram_secret tmp;
	uint8_t *salt = NULL;
	size_t salt_len = 0;
	bool ok = false;

	memset(&tmp, 0, sizeof(tmp));
	if (!scram_is_secret(text))
		goto done;
	const char *iter = text + strlen(SCRAM_SECRET_PREFIX);
	const char *colon1 = strchr(iter, ':');
	if (colon1 == NULL || !scram_parse_iterations(iter, (size_t)(colon1 - iter), &tmp.iterations))
		goto done;
	const char *salt_b64 = colon1 + 1;
	const char *dollar = strchr(salt_b64, '$');
	if (dollar == NULL || !scram_b64_decode(salt_b64, (size_t)(dollar - salt_b64), &salt, &salt_len) ||
	    salt_len == 0 || salt_len > sizeof(tmp.salt))
		goto done;
	memcpy(tmp.salt, salt, salt_len);
	tmp.salt_len = salt_len;
	const char *stored = dollar + 1;
	const char *colon2 = strchr(stored, ':');
	if (colon2 == NULL ||
	    !scram_b64_decode_exact(stored, (size_t)(colon2 - stored), tmp.stored_key, SCRAM_KEY_LEN) ||
	    !scram_b64_decode_exact(colon2 + 1, strlen(colon2 + 1), tmp.server_key, SCRAM_KEY_LEN))
		goto done;
	*out = tmp;
	ok = true;
done:
	free(salt);
	OPENSSL_cleanse(&tmp, sizeof(tmp));
	return ok;
}

bool scram_secret_from_password(const char *password, struct scram_secret *out)
{
	struct scram_secret tmp;
	uint8_t client_key[SCRAM_KEY_LEN];
	bool ok = false;

	memset(&tmp, 0, sizeof(tmp));
	if (password == NULL)
		goto done;
	tmp.iterations = SCRAM_DEFAULT_ITERATIONS;
	tmp.salt_len = SCRAM_SALT_LEN;
	if (RAND_bytes(tmp.salt, SCRAM_SALT_LEN) != 1 ||
	    !scram_derive_keys(password, tmp.salt, tmp.salt_len, tmp.iterations, client_key,
	                       tmp.server_key) ||
	    !scram_sha256(client_key, SCRAM_KEY_LEN, tmp.stored_key))
		goto done;
	*out = tmp;
	ok = true;
done:
	OPENSSL_cleanse(client_key, sizeof(client_key));
	OPENSSL_cleanse(&tmp, sizeof(tmp));
	return ok;
}

/* ---------- pgsluice as verifier ---------- */

enum scram_server_state {
	SCRAM_SERVER_INIT,       /* waiting for client-first */
	SCRAM_SERVER_FIRST_SENT, /* waiting for client-final */
	SCRAM_SERVER_DONE,       /* one proof checked; no second attempt */
};

struct scram_server {
	enum scram_server_state step;
	/* A copy, not a pointer: a config reload may free the auth_file entry
	 * while this exchange is still waiting for the client. */
	struct scram_secret secret;
	char *gs2_header;        /* owned: "n,," or "y,,", what c= must encode */
	char *client_first_bare; /* owned */
	char *server_first;      /* owned: exactly the bytes we sent */
	char *nonce;             /* owned: client nonce + our nonce */
	bool proof_ok;
	uint8_t client_key[SCRAM_KEY_LEN]; /* valid when proof_ok */
};

struct scram_server *scram_server_new(const struct scram_secret *secret)
{
	if (secret == NULL || secret->iterations < 1 || secret->salt_len == 0 ||
	    secret->salt_len > sizeof(secret->salt))
		return NULL;
	struct scram_server *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->step = SCRAM_SERVER_INIT;
	s->secret = *secret;
	return s;
}

void scram_server_free(struct scram_server *s)
{
	if (s == NULL)
		return;
	scram_free_string(&s->gs2_header);
	scram_free_string(&s->client_first_bare);
	scram_free_string(&s->server_first);
	scram_free_string(&s->nonce);
	OPENSSL_cleanse(s, sizeof(*s));
	free(s);
}

/* Splits "gs2-header client-first-bare" and checks both halves. */
static bool scram_server_parse_first(struct scram_server *s, const char *msg, const char **cnonce,
                                     size_t *cnonce_len, char *err, size_t err_size)
{
	const char *p = msg;
	if (p[0] == 'p' && p[1] == '=')
		return scram_fail(
		    err, err_size,
		    "SCRAM channel binding was requested (p=) but pgsluice does not offer " SCRAM_MECHANISM
		    "-PLUS");
	/* "y": the client could bind but believes we cannot; true, since we never
	 * advertise -PLUS, so this is not a downgrade. */
	if ((p[0] != 'n' && p[0] != 'y') || p[1] != ',')
		return scram_fail(err, err_size,
		                  "malformed SCRAM client-first-message: expected gs2 flag n, y or p=");
	p += 2;
	if (p[0] == 'a' && p[1] == '=')
		return scram_fail(err, err_size, "SCRAM authorization identity (a=) is not supported");
	if (p[0] != ',')
		return scram_fail(err, err_size, "malformed SCRAM client-first-message: bad gs2 header");
	p++;
	s->gs2_header = scram_printf("%.*s", (int)(p - msg), msg);
	s->client_first_bare = scram_printf("%s", p);
	if (s->gs2_header == NULL || s->client_first_bare == NULL)
		return scram_fail(err, err_size, "out of memory");

	if (p[0] == 'm' && p[1] == '=')
		return scram_fail(err, err_size, "SCRAM mandatory extension (m=) is not supported");
	const char *user;
	size_t user_len;
	/* PostgreSQL ignores this name (the startup packet's user counts), so
	 * any value is accepted, including the empty one libpq sends. */
	if (!scram_read_attr(&p, 'n', &user, &user_len))
		return scram_fail(err, err_size, "malformed SCRAM client-first-message: expected n=");
	if (!scram_read_attr(&p, 'r', cnonce, cnonce_len))
		return scram_fail(err, err_size, "malformed SCRAM client-first-message: expected r=");
	if (!scram_nonce_valid(*cnonce, *cnonce_len))
		return scram_fail(err, err_size, "malformed SCRAM client-first-message: invalid nonce");
	while (*p != '\0')
		if (!scram_skip_attr(&p))
			return scram_fail(err, err_size,
			                  "malformed SCRAM client-first-message: bad attribute");
	return true;
}

bool scram_server_first(struct scram_server *s, const char *client_first, size_t n, char **server_first,
                        char *err, size_t err_size)
{
	char *msg = NULL;
	char *snonce = NULL;
	char *salt_b64 = NULL;
	bool ok = false;
	const char *cnonce;
	size_t cnonce_len;

	*server_first = NULL;
	if (s->step != SCRAM_SERVER_INIT) {
		scram_fail(err, err_size, "unexpected SCRAM client-first-message");
		goto done;
	}
	/* One try: a malformed first message ends the exchange. */
	s->step = SCRAM_SERVER_DONE;
	if ((msg = scram_copy_message(client_first, n, err, err_size)) == NULL)
		goto done;
	if (!scram_server_parse_first(s, msg, &cnonce, &cnonce_len, err, err_size))
		goto done;
	if ((snonce = scram_make_nonce()) == NULL ||
	    (salt_b64 = scram_b64_encode(s->secret.salt, s->secret.salt_len)) == NULL ||
	    (s->nonce = scram_printf("%.*s%s", (int)cnonce_len, cnonce, snonce)) == NULL ||
	    (s->server_first = scram_printf("r=%s,s=%s,i=%d", s->nonce, salt_b64, s->secret.iterations)) ==
	        NULL ||
	    (*server_first = scram_printf("%s", s->server_first)) == NULL) {
		scram_fail(err, err_size,
		           "could not build SCRAM server-first-message (out of memory or no randomness)");
		goto done;
	}
	s->step = SCRAM_SERVER_FIRST_SENT;
	ok = true;
done:
	free(msg);
	free(snonce);
	free(salt_b64);
	return ok;
}

bool scram_server_final(struct scram_server *s, const char *client_final, size_t n, bool *proof_ok,
                        char **server_final, char *err, size_t err_size)
{
	char *msg = NULL;
	char *auth = NULL;
	char *sig_b64 = NULL;
	uint8_t *cbind = NULL;
	size_t cbind_len = 0;
	uint8_t proof[SCRAM_KEY_LEN], client_sig[SCRAM_KEY_LEN], client_key[SCRAM_KEY_LEN];
	uint8_t stored[SCRAM_KEY_LEN], server_sig[SCRAM_KEY_LEN];
	bool ok = false;
	const char *val;
	size_t len;

	*proof_ok = false;
	*server_final = NULL;
	if (s->step != SCRAM_SERVER_FIRST_SENT) {
		scram_fail(err, err_size, "unexpected SCRAM client-final-message");
		goto done;
	}
	s->step = SCRAM_SERVER_DONE;
	if ((msg = scram_copy_message(client_final, n, err, err_size)) == NULL)
		goto done;

	const char *p = msg;
	if (!scram_read_attr(&p, 'c', &val, &len)) {
		scram_fail(err, err_size, "malformed SCRAM client-final-message: expected c=");
		goto done;
	}
	if (!scram_b64_decode(val, len, &cbind, &cbind_len)) {
		scram_fail(err, err_size, "malformed SCRAM client-final-message: bad base64 in c=");
		goto done;
	}
	if (cbind_len != strlen(s->gs2_header) || memcmp(cbind, s->gs2_header, cbind_len) != 0) {
		scram_fail(err, err_size, "SCRAM channel binding data (c=) does not match the gs2 header");
		goto done;
	}
	if (!scram_read_attr(&p, 'r', &val, &len)) {
		scram_fail(err, err_size, "malformed SCRAM client-final-message: expected r=");
		goto done;
	}
	if (len != strlen(s->nonce) || memcmp(val, s->nonce, len) != 0) {
		scram_fail(err, err_size, "SCRAM nonce in client-final-message does not match");
		goto done;
	}
	while (!(p[0] == 'p' && p[1] == '=')) {
		if (*p == '\0' || !scram_skip_attr(&p)) {
			scram_fail(err, err_size, "malformed SCRAM client-final-message: expected p=");
			goto done;
		}
	}
	/* client-final-without-proof ends before the ',' that precedes p=. */
	size_t no_proof_len = (size_t)(p - msg) - 1;
	if (!scram_read_attr(&p, 'p', &val, &len) || *p != '\0' ||
	    !scram_b64_decode_exact(val, len, proof, SCRAM_KEY_LEN)) {
		scram_fail(err, err_size, "malformed SCRAM client-final-message: bad proof");
		goto done;
	}

	if ((auth = scram_auth_message(s->client_first_bare, s->server_first, msg, no_proof_len)) == NULL ||
	    !scram_hmac(s->secret.stored_key, SCRAM_KEY_LEN, auth, strlen(auth), client_sig)) {
		scram_fail(err, err_size, "could not compute SCRAM client signature");
		goto done;
	}
	for (int i = 0; i < SCRAM_KEY_LEN; i++)
		client_key[i] = proof[i] ^ client_sig[i];
	if (!scram_sha256(client_key, SCRAM_KEY_LEN, stored)) {
		scram_fail(err, err_size, "could not compute SCRAM stored key");
		goto done;
	}
	ok = true;
	if (CRYPTO_memcmp(stored, s->secret.stored_key, SCRAM_KEY_LEN) != 0) {
		/* Well-formed, wrong password: true with *proof_ok false. */
		scram_fail(err, err_size, "SCRAM proof does not match the stored secret");
		goto done;
	}

	if (!scram_hmac(s->secret.server_key, SCRAM_KEY_LEN, auth, strlen(auth), server_sig) ||
	    (sig_b64 = scram_b64_encode(server_sig, SCRAM_KEY_LEN)) == NULL ||
	    (*server_final = scram_printf("v=%s", sig_b64)) == NULL) {
		scram_fail(err, err_size, "could not build SCRAM server-final-message");
		ok = false;
		goto done;
	}
	memcpy(s->client_key, client_key, SCRAM_KEY_LEN);
	s->proof_ok = true;
	*proof_ok = true;
done:
	free(msg);
	free(cbind);
	free(sig_b64);
	scram_free_string(&auth);
	OPENSSL_cleanse(proof, sizeof(proof));
	OPENSSL_cleanse(client_sig, sizeof(client_sig));
	OPENSSL_cleanse(client_key, sizeof(client_key));
	return ok;
}

bool scram_server_client_key(const struct scram_server *s, uint8_t out[SCRAM_KEY_LEN])
{
	if (s == NULL || !s->proof_ok)
		return false;
	memcpy(out, s->client_key, SCRAM_KEY_LEN);
	return true;
}

/* ---------- pgsluice as prover ---------- */

enum scram_client_state {
	SCRAM_CLIENT_INIT,       /* client-first not built yet */
	SCRAM_CLIENT_FIRST_SENT, /* waiting for server-first */
	SCRAM_CLIENT_FINAL_SENT, /* waiting for server-final */
	SCRAM_CLIENT_DONE,
};

struct scram_client {
	enum scram_client_state step;
	char *password; /* owned; NULL when the keys were given */
	bool have_keys;
	uint8_t client_key[SCRAM_KEY_LEN];
	uint8_t server_key[SCRAM_KEY_LEN];
	char *nonce;                             /* owned: our half of the nonce */
	char *client_first_bare;                 /* owned */
	uint8_t server_signature[SCRAM_KEY_LEN]; /* what server-final must carry */
};

struct scram_client *scram_client_new(const char *password)
{
	if (password == NULL)
		return NULL;
	struct scram_client *c = calloc(1, sizeof(*c));
	if (c == NULL || (c->password = scram_printf("%s", password)) == NULL)
		goto fail;
	c->step = SCRAM_CLIENT_INIT;
	return c;
fail:
	scram_client_free(c);
	return NULL;
}

struct scram_client *scram_client_new_keys(const uint8_t client_key[SCRAM_KEY_LEN],
                                           const uint8_t server_key[SCRAM_KEY_LEN])
{
	struct scram_client *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->step = SCRAM_CLIENT_INIT;
	c->have_keys = true;
	memcpy(c->client_key, client_key, SCRAM_KEY_LEN);
	memcpy(c->server_key, server_key, SCRAM_KEY_LEN);
	return c;
}

void scram_client_free(struct scram_client *c)
{
	if (c == NULL)
		return;
	scram_free_string(&c->password);
	scram_free_string(&c->nonce);
	scram_free_string(&c->client_first_bare);
	OPENSSL_cleanse(c, sizeof(*c));
	free(c);
}

char *scram_client_first(struct scram_client *c)
{
	if (c == NULL || c->step != SCRAM_CLIENT_INIT)
		return NULL;
	/* libpq sends an empty n=: PostgreSQL takes the user from the startup packet. */
	char *out = NULL;
	if ((c->nonce = scram_make_nonce()) == NULL ||
	    (c->client_first_bare = scram_printf("n=,r=%s", c->nonce)) == NULL ||
	    (out = scram_printf("n,,%s", c->client_first_bare)) == NULL) {
		scram_free_string(&c->nonce);
		scram_free_string(&c->client_first_bare);
		return NULL;
	}
	c->step = SCRAM_CLIENT_FIRST_SENT;
	return out;
}

bool scram_client_final(struct scram_client *c, const char *server_first, size_t n, char **client_final,
                        char *err, size_t err_size)
{
	char *msg = NULL;
	char *auth = NULL;
	char *proof_b64 = NULL;
	char *no_proof = NULL;
	uint8_t *salt = NULL;
	size_t salt_len = 0;
	uint8_t client_key[SCRAM_KEY_LEN], server_key[SCRAM_KEY_LEN], stored[SCRAM_KEY_LEN];
	uint8_t client_sig[SCRAM_KEY_LEN], proof[SCRAM_KEY_LEN];
	bool ok = false;
	const char *nonce, *salt_b64, *iter;
	size_t nonce_len, salt_b64_len, iter_len;
	int iterations;

	*client_final = NULL;
	if (c->step != SCRAM_CLIENT_FIRST_SENT) {
		scram_fail(err, err_size, "unexpected SCRAM server-first-message");
		goto done;
	}
	c->step = SCRAM_CLIENT_DONE;
	if ((msg = scram_copy_message(server_first, n, err, err_size)) == NULL)
		goto done;

	const char *p = msg;
	if (p[0] == 'm' && p[1] == '=') {
		scram_fail(err, err_size, "SCRAM mandatory extension (m=) from the server is not supported");
		goto done;
	}
	if (!scram_read_attr(&p, 'r', &nonce, &nonce_len) ||
	    !scram_read_attr(&p, 's', &salt_b64, &salt_b64_len) ||
	    !scram_read_attr(&p, 'i', &iter, &iter_len)) {
		scram_fail(err, err_size, "malformed SCRAM server-first-message: expected r=, s= and i=");
		goto done;
	}
	/* The server must extend our nonce, not replace or merely echo it. */
	size_t our_len = strlen(c->nonce);
	if (!scram_nonce_valid(nonce, nonce_len) || nonce_len <= our_len ||
	    memcmp(nonce, c->nonce, our_len) != 0) {
		scram_fail(err, err_size, "SCRAM server nonce does not extend the client nonce");
		goto done;
	}
	if (!scram_b64_decode(salt_b64, salt_b64_len, &salt, &salt_len) || salt_len == 0) {
		scram_fail(err, err_size, "malformed SCRAM server-first-message: bad salt");
		goto done;
	}
	if (!scram_parse_iterations(iter, iter_len, &iterations)) {
		scram_fail(err, err_size, "malformed SCRAM server-first-message: bad iteration count");
		goto done;
	}

	/* With given keys the salt and iteration count are only checked for
	 * form: the keys already embody the server's own salt and count. */
	if (c->have_keys) {
		memcpy(client_key, c->client_key, SCRAM_KEY_LEN);
		memcpy(server_key, c->server_key, SCRAM_KEY_LEN);
	} else if (!scram_derive_keys(c->password, salt, salt_len, iterations, client_key, server_key)) {
		scram_fail(err, err_size, "could not derive SCRAM keys");
		goto done;
	}

	/* Always "biws" (= "n,,"): we never ask for channel binding. */
	if ((no_proof = scram_printf("c=biws,r=%.*s", (int)nonce_len, nonce)) == NULL ||
	    (auth = scram_auth_message(c->client_first_bare, msg, no_proof, strlen(no_proof))) == NULL ||
	    !scram_sha256(client_key, SCRAM_KEY_LEN, stored) ||
	    !scram_hmac(stored, SCRAM_KEY_LEN, auth, strlen(auth), client_sig) ||
	    !scram_hmac(server_key, SCRAM_KEY_LEN, auth, strlen(auth), c->server_signature)) {
		scram_fail(err, err_size, "could not compute SCRAM proof");
		goto done;
	}
	for (int i = 0; i < SCRAM_KEY_LEN; i++)
		proof[i] = client_key[i] ^ client_sig[i];
	if ((proof_b64 = scram_b64_encode(proof, SCRAM_KEY_LEN)) == NULL ||
	    (*client_final = scram_printf("%s,p=%s", no_proof, proof_b64)) == NULL) {
		scram_fail(err, err_size, "out of memory");
		goto done;
	}
	c->step = SCRAM_CLIENT_FINAL_SENT;
	ok = true;
done:
	free(msg);
	free(salt);
	free(no_proof);
	scram_free_string(&auth);
	scram_free_string(&proof_b64);
	OPENSSL_cleanse(client_key, sizeof(client_key));
	OPENSSL_cleanse(server_key, sizeof(server_key));
	OPENSSL_cleanse(stored, sizeof(stored));
	OPENSSL_cleanse(client_sig, sizeof(client_sig));
	OPENSSL_cleanse(proof, sizeof(proof));
	return ok;
}

bool scram_client_verify(struct scram_client *c, const char *server_final, size_t n, char *err,
                         size_t err_size)
{
	char *msg = NULL;
	uint8_t sig[SCRAM_KEY_LEN];
	bool ok = false;
	const char *val;
	size_t len;

	if (c->step != SCRAM_CLIENT_FINAL_SENT) {
		scram_fail(err, err_size, "unexpected SCRAM server-final-message");
		goto done;
	}
	c->step = SCRAM_CLIENT_DONE;
	if ((msg = scram_copy_message(server_final, n, err, err_size)) == NULL)
		goto done;
	const char *p = msg;
	if (scram_read_attr(&p, 'e', &val, &len)) {
		scram_fail(err, err_size, "server rejected SCRAM authentication: %.*s",
		           (int)(len > 200 ? 200 : len), val);
		goto done;
	}
	if (!scram_read_attr(&p, 'v', &val, &len) || !scram_b64_decode_exact(val, len, sig, SCRAM_KEY_LEN)) {
		scram_fail(err, err_size, "malformed SCRAM server-final-message: expected v=<signature>");
		goto done;
	}
	/* A wrong signature means the server does not hold the secret: it may be
	 * an impostor that just accepted whatever proof we sent. */
	if (CRYPTO_memcmp(sig, c->server_signature, SCRAM_KEY_LEN) != 0) {
		scram_fail(err, err_size,
		           "SCRAM server signature does not match: server does not know the secret");
		goto done;
	}
	ok = true;
done:
	free(msg);
	return ok;
}

void scram_set_test_nonce(const char *nonce)
{
	if (nonce == NULL) {
		scram_test_nonce_set = false;
		scram_test_nonce[0] = '\0';
		return;
	}
	snprintf(scram_test_nonce, sizeof(scram_test_nonce), "%s", nonce);
	scram_test_nonce_set = true;
}
