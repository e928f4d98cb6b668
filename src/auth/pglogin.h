/* auth/pglogin.h — pgsluice logging in to PostgreSQL as a client: the
 * StartupMessage, the answer to each Authentication request (trust,
 * cleartext password, md5, SCRAM-SHA-256) and where the server's unix
 * socket is when no host is named. The pooler's server connections
 * (server.c, event driven) and `--check --online` (doctor.c, blocking) both
 * log in through it, so the check cannot drift from what the pooler does.
 * Owns: the SCRAM client state of one login (struct pglogin.scram).
 * Exports: pglogin_init/clear, pglogin_answer(), pglogin_method_name(),
 *          pglogin_startup(), pglogin_socket_dir().
 * Never: does I/O: the caller sends what is appended to its msgbuf and
 *        feeds back what the server answers. Never logs or copies the
 *        password or secret it is given. */
#ifndef PGS_AUTH_PGLOGIN_H
#define PGS_AUTH_PGLOGIN_H

#include <stddef.h>
#include <stdint.h>

#include "proto/msg.h"
#include "util/params.h"

struct scram_client;

enum pglogin_step {
	PGLOGIN_SENT, /* an answer was appended to out: send it and read on */
	PGLOGIN_WAIT, /* nothing to send (the server's SCRAM signature verified): read on */
	PGLOGIN_OK,   /* AuthenticationOk: ParameterStatus and the rest up to ReadyForQuery follow */
	PGLOGIN_FAIL, /* why says why; st->fail says which case */
};

/* Why a login cannot go on, for callers that word it their own way. */
enum pglogin_fail {
	PGLOGIN_MALFORMED,         /* not an Authentication request body */
	PGLOGIN_NO_CLEARTEXT,      /* cleartext asked; no password, or only a hash */
	PGLOGIN_NO_MD5,            /* md5 asked; no password, a SCRAM secret, or no salt */
	PGLOGIN_NO_MECHANISM,      /* SASL offered without SCRAM-SHA-256 */
	PGLOGIN_SCRAM_SECRET_ONLY, /* SCRAM asked; a SCRAM secret and no keys from a client's proof */
	PGLOGIN_NO_SCRAM_PASSWORD, /* SCRAM asked; no password, or an md5 secret */
	PGLOGIN_NO_MEMORY,         /* starting SCRAM */
	PGLOGIN_SCRAM_CONTINUE,    /* SASLContinue unexpected or refused; detail says which */
	PGLOGIN_SCRAM_FINAL,       /* SASLFinal unexpected or its signature wrong; detail says which */
	PGLOGIN_UNSUPPORTED,       /* another request code, in st->code */
};

struct pglogin {
	const char *user;     /* borrowed; md5 needs it */
	const char *password; /* borrowed: plaintext, "md5..." or "SCRAM-SHA-256$..."; NULL: none */
	/* Owned. NULL until SCRAM starts with the password; may be set before
	 * the first answer (scram_client_new_keys) from keys a client's proof
	 * gave, which is how a SCRAM secret alone can log in. */
	struct scram_client *scram;
	uint32_t code;          /* of the last well-formed request */
	enum pglogin_fail fail; /* after PGLOGIN_FAIL */
	/* Optional, set by the caller: where the SCRAM step's own reason goes
	 * after PGLOGIN_SCRAM_CONTINUE/FINAL ("" when there is none). */
	char *detail;
	size_t detail_size;
};

/* user and password are borrowed and must outlive st. */
void pglogin_init(struct pglogin *st, const char *user, const char *password);
/* Frees the SCRAM state; st can be initialised again. */
void pglogin_clear(struct pglogin *st);

/* One AuthenticationRequest body (after type and length) from the server.
 * PGLOGIN_FAIL: why (why_len bytes) gets the sentence the pooler reports;
 * st->fail, st->code and st->detail say the same for other wordings. */
enum pglogin_step pglogin_answer(struct pglogin *st, const uint8_t *body, size_t n, struct msgbuf *out,
                                 char *why, size_t why_len);

/* What an Authentication request code asks for: "password", "md5",
 * "SCRAM-SHA-256"; NULL for the others (OK, SASL continuation, unknown). */
const char *pglogin_method_name(uint32_t code);

/* StartupMessage (protocol 3.0) with user, database and then extra's
 * parameters in order (the first 64; extra may be NULL). */
void pglogin_startup(struct msgbuf *out, const char *user, const char *dbname, const struct params *extra);

/* Where PostgreSQL puts its socket when no host is named: /var/run/postgresql
 * when it exists (Debian's), /tmp otherwise (PostgreSQL's own default). */
const char *pglogin_socket_dir(void);

#endif
