/* auth/md5.c — PostgreSQL's md5 password scheme: the stored secret
 * "md5" + hex(md5(password || user)) and the salted answer to
 * AuthenticationMD5Password, built from either a password or a secret. */
#include "auth/md5.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define MD5_DIGEST_LEN 16

/* "md5" + lower-case hex of md5(a || b); the parts avoid a joined copy of a password. */
static bool md5_hex2(const void *a, size_t a_len, const void *b, size_t b_len, char out[MD5_SECRET_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t digest[MD5_DIGEST_LEN];
	unsigned int n = 0;
	/* Fails under a FIPS provider, where MD5 is not available. */
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 &&
	          EVP_DigestUpdate(ctx, a, a_len) == 1 && EVP_DigestUpdate(ctx, b, b_len) == 1 &&
	          EVP_DigestFinal_ex(ctx, digest, &n) == 1 && n == MD5_DIGEST_LEN;
	EVP_MD_CTX_free(ctx);
	if (ok) {
		memcpy(out, "md5", 3);
		for (int i = 0; i < MD5_DIGEST_LEN; i++) {
			out[3 + 2 * i] = hex[digest[i] >> 4];
			out[4 + 2 * i] = hex[digest[i] & 0x0f];
		}
		out[MD5_SECRET_LEN] = '\0';
	}
	OPENSSL_cleanse(digest, sizeof(digest));
	return ok;
}

bool md5_secret(const char *password, const char *user, char out[MD5_SECRET_LEN + 1])
{
	if (password == NULL || user == NULL)
		return false;
	return md5_hex2(password, strlen(password), user, strlen(user), out);
}

/* Same test as PostgreSQL: "md5" and exactly 32 lower-case hex digits. */
bool md5_is_secret(const char *text)
{
	return text != NULL && strlen(text) == MD5_SECRET_LEN && strncmp(text, "md5", 3) == 0 &&
	       strspn(text + 3, "0123456789abcdef") == MD5_SECRET_LEN - 3;
}

bool md5_response(const char *secret_or_password, const char *user, const uint8_t salt[4],
                  char out[MD5_SECRET_LEN + 1])
{
	char secret[MD5_SECRET_LEN + 1];
	bool ok;

	if (secret_or_password == NULL || salt == NULL)
		return false;
	/* As in PostgreSQL and PgBouncer, a plaintext password that happens to
	 * look like a secret is taken as one; nothing can tell them apart. */
	if (md5_is_secret(secret_or_password))
		memcpy(secret, secret_or_password, MD5_SECRET_LEN + 1);
	else if (!md5_secret(secret_or_password, user, secret))
		return false;
	/* The salted hash covers the hex digits only, not the "md5" prefix. */
	ok = md5_hex2(secret + 3, MD5_SECRET_LEN - 3, salt, 4, out);
	OPENSSL_cleanse(secret, sizeof(secret));
	return ok;
}
