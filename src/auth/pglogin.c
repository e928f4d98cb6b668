/* auth/pglogin.c — the client half of PostgreSQL's login, shared by the
 * pooler's server connections and the doctor's blocking check.
 *
 * Which credential may answer which request is decided here once:
 * cleartext needs a plaintext password; md5 takes a password or a stored md5
 * secret (never a SCRAM secret); SCRAM takes a plaintext password, or keys
 * recovered from a client's SCRAM proof (set by the caller). */
#include "auth/pglogin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "auth/md5.h"
#include "auth/scram.h"
#include "proto/protocol.h"

#define PGLOGIN_SOCKET_DIR "/var/run/postgresql"
#define PGLOGIN_SOCKET_DIR_FALLBACK "/tmp"
/* Startup parameters sent besides user and database. */
#define PGLOGIN_MAX_EXTRA 64

void pglogin_init(struct pglogin *st, const char *user, const char *password)
{
	memset(st, 0, sizeof(*st));
	st->user = user;
	st->password = password;
}

void pglogin_clear(struct pglogin *st)
{
	scram_client_free(st->scram);
	st->scram = NULL;
}

static bool is_hashed(const char *pw)
{
	return md5_is_secret(pw) || scram_is_secret(pw);
}

static enum pglogin_step fail(struct pglogin *st, enum pglogin_fail why_code, char *why, size_t why_len,
                              const char *text)
{
	st->fail = why_code;
	snprintf(why, why_len, "%s", text);
	return PGLOGIN_FAIL;
}

static void scram_detail(struct pglogin *st, const char *text)
{
	if (st->detail != NULL && st->detail_size > 0)
		snprintf(st->detail, st->detail_size, "%s", text);
}

/* Is SCRAM-SHA-256 among the NUL-terminated names of an AuthenticationSASL
 * body? The list ends with an empty name; a name without its NUL ends it too. */
static bool offers_scram(const uint8_t *data, size_t n)
{
	for (size_t i = 0; i < n;) {
		const char *name = (const char *)data + i;
		size_t len = strnlen(name, n - i);
		if (len == 0 || len == n - i)
			break;
		if (strcmp(name, SCRAM_MECHANISM) == 0)
			return true;
		i += len + 1;
	}
	return false;
}

static enum pglogin_step answer_sasl(struct pglogin *st, const uint8_t *data, size_t n, struct msgbuf *out,
                                     char *why, size_t why_len)
{
	if (!offers_scram(data, n))
		return fail(st, PGLOGIN_NO_MECHANISM, why, why_len,
		            "server offers no SASL mechanism pgsluice supports");
	if (st->scram == NULL) {
		if (st->password == NULL || is_hashed(st->password))
			return fail(st,
			            scram_is_secret(st->password) ? PGLOGIN_SCRAM_SECRET_ONLY
			                                          : PGLOGIN_NO_SCRAM_PASSWORD,
			            why, why_len,
			            "server asks for SCRAM and neither a plaintext password nor a client's "
			            "SCRAM proof is known");
		st->scram = scram_client_new(st->password);
	}
	char *first = st->scram != NULL ? scram_client_first(st->scram) : NULL;
	if (first == NULL)
		return fail(st, PGLOGIN_NO_MEMORY, why, why_len, "out of memory");
	msg_sasl_initial(out, SCRAM_MECHANISM, first, strlen(first));
	free(first);
	return PGLOGIN_SENT;
}

enum pglogin_step pglogin_answer(struct pglogin *st, const uint8_t *body, size_t n, struct msgbuf *out,
                                 char *why, size_t why_len)
{
	uint32_t code;
	const uint8_t *data;
	size_t dlen;
	char err[200] = "";

	scram_detail(st, "");
	if (!msg_read_auth(body, n, &code, &data, &dlen))
		return fail(st, PGLOGIN_MALFORMED, why, why_len, "malformed authentication request");
	st->code = code;
	switch (code) {
	case AUTH_REQ_OK:
		return PGLOGIN_OK;
	case AUTH_REQ_PASSWORD:
		if (st->password == NULL || is_hashed(st->password))
			return fail(
			    st, PGLOGIN_NO_CLEARTEXT, why, why_len,
			    "server asks for a cleartext password and no plaintext password is known");
		msg_password(out, st->password, strlen(st->password) + 1);
		return PGLOGIN_SENT;
	case AUTH_REQ_MD5: {
		char resp[MD5_SECRET_LEN + 1];
		if (dlen < 4 || st->password == NULL || scram_is_secret(st->password) ||
		    !md5_response(st->password, st->user, data, resp))
			return fail(st, PGLOGIN_NO_MD5, why, why_len,
			            "server asks for md5 and no password or md5 secret is known");
		msg_password(out, resp, strlen(resp) + 1);
		return PGLOGIN_SENT;
	}
	case AUTH_REQ_SASL:
		return answer_sasl(st, data, dlen, out, why, why_len);
	case AUTH_REQ_SASL_CONT: {
		char *fin = NULL;
		if (st->scram == NULL) {
			scram_detail(st, "unexpected SASLContinue");
		} else if (scram_client_final(st->scram, (const char *)data, dlen, &fin, err, sizeof(err))) {
			msg_password(out, fin, strlen(fin));
			free(fin);
			return PGLOGIN_SENT;
		} else {
			scram_detail(st, err);
		}
		return fail(st, PGLOGIN_SCRAM_CONTINUE, why, why_len, "bad SCRAM server-first message");
	}
	case AUTH_REQ_SASL_FIN:
		if (st->scram == NULL)
			scram_detail(st, "unexpected SASLFinal");
		else if (scram_client_verify(st->scram, (const char *)data, dlen, err, sizeof(err)))
			return PGLOGIN_WAIT;
		else
			scram_detail(st, err);
		return fail(st, PGLOGIN_SCRAM_FINAL, why, why_len,
		            "server's SCRAM signature does not verify");
	default:
		st->fail = PGLOGIN_UNSUPPORTED;
		snprintf(why, why_len, "unsupported authentication request %u", code);
		return PGLOGIN_FAIL;
	}
}

const char *pglogin_method_name(uint32_t code)
{
	switch (code) {
	case AUTH_REQ_PASSWORD:
		return "password";
	case AUTH_REQ_MD5:
		return "md5";
	case AUTH_REQ_SASL:
		return SCRAM_MECHANISM;
	default:
		return NULL;
	}
}

void pglogin_startup(struct msgbuf *out, const char *user, const char *dbname, const struct params *extra)
{
	const char *kv[2 * PGLOGIN_MAX_EXTRA + 5];
	int n = 0;

	kv[n++] = "user";
	kv[n++] = user;
	kv[n++] = "database";
	kv[n++] = dbname;
	for (int i = 0; extra != NULL && i < extra->n && n < 2 * PGLOGIN_MAX_EXTRA + 2; i++) {
		kv[n++] = extra->items[i].name;
		kv[n++] = extra->items[i].value;
	}
	kv[n] = NULL;
	msg_startup(out, kv);
}

const char *pglogin_socket_dir(void)
{
	struct stat st;

	return stat(PGLOGIN_SOCKET_DIR, &st) == 0 ? PGLOGIN_SOCKET_DIR : PGLOGIN_SOCKET_DIR_FALLBACK;
}
