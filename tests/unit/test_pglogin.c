/* tests/unit/test_pglogin.c — pgsluice's answers to PostgreSQL's
 * Authentication requests: cleartext, md5 (against a value computed with
 * Python's hashlib when the test was written), whole SCRAM exchanges with
 * auth/scram.c's verifier standing in for the server (from a password, and
 * from keys a client's proof gave), the refusals and their texts, malformed
 * input, the StartupMessage and the default socket directory. Request bodies
 * are exact-size heap copies so ASan catches any read past their end. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/pglogin.h"
#include "auth/scram.h"
#include "proto/frame.h"
#include "proto/protocol.h"

#define BYTES(lit) (const uint8_t *)(lit), sizeof(lit) - 1

#define USER "alice"
#define PASSWORD "correct horse"
/* md5_secret(PASSWORD, USER) and the answer to salt ca fe 00 07. */
#define MD5_SECRET "md527d601e4766ef321bab4559b3758b31c"
#define MD5_ANSWER "md54ea9f94d17b4ea2a4588572d6f78913b"
static const uint8_t md5_salt[4] = {0xca, 0xfe, 0x00, 0x07};

#define NO_SCRAM_TEXT                                                                                        \
	"server asks for SCRAM and neither a plaintext password nor a client's SCRAM proof is known"

struct fixture {
	struct msgbuf out;
	struct pglogin st;
	char why[200];
	char detail[200];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	msgbuf_init(&f->out, MSGBUF_DEFAULT_MAX);
	pglogin_init(&f->st, USER, PASSWORD);
	f->st.detail = f->detail;
	f->st.detail_size = sizeof(f->detail);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	pglogin_clear(&f->st);
	msgbuf_free(&f->out);
	free(f);
	return 0;
}

/* Use another password or secret (borrowed, like the real callers'). */
static void use_password(struct fixture *f, const char *password)
{
	pglogin_clear(&f->st);
	pglogin_init(&f->st, USER, password);
	f->st.detail = f->detail;
	f->st.detail_size = sizeof(f->detail);
}

/* Feeds one AuthenticationRequest body: code, then n bytes of data. */
static enum pglogin_step answer(struct fixture *f, uint32_t code, const void *data, size_t n)
{
	uint8_t *body = malloc(4 + n);

	assert_non_null(body);
	body[0] = (uint8_t)(code >> 24);
	body[1] = (uint8_t)(code >> 16);
	body[2] = (uint8_t)(code >> 8);
	body[3] = (uint8_t)code;
	if (n > 0)
		memcpy(body + 4, data, n);
	f->why[0] = '\0';
	enum pglogin_step r = pglogin_answer(&f->st, body, 4 + n, &f->out, f->why, sizeof(f->why));
	free(body);
	return r;
}

/* The one message in f->out: its type and body (pointing into out). */
static const uint8_t *only_message(struct fixture *f, uint8_t type, size_t *n)
{
	assert_true(msg_ok(&f->out));
	assert_true(f->out.len >= 5);
	assert_int_equal(f->out.data[0], type);
	assert_int_equal(frame_be32(f->out.data + 1) + 1, f->out.len);
	*n = f->out.len - 5;
	return f->out.data + 5;
}

static void assert_fail(struct fixture *f, enum pglogin_step r, enum pglogin_fail why, const char *text)
{
	assert_int_equal(r, PGLOGIN_FAIL);
	assert_int_equal(f->st.fail, why);
	assert_string_equal(f->why, text);
	assert_int_equal(f->out.len, 0); /* nothing to send on a refusal */
}

static void test_ok(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(answer(f, AUTH_REQ_OK, NULL, 0), PGLOGIN_OK);
	assert_int_equal(f->out.len, 0);
	/* Trust needs no credentials. */
	use_password(f, NULL);
	assert_int_equal(answer(f, AUTH_REQ_OK, NULL, 0), PGLOGIN_OK);
}

static void test_cleartext(void **state)
{
	struct fixture *f = *state;
	size_t n;

	assert_int_equal(answer(f, AUTH_REQ_PASSWORD, NULL, 0), PGLOGIN_SENT);
	const uint8_t *body = only_message(f, PqMsg_PasswordMessage, &n);
	assert_int_equal(n, sizeof(PASSWORD)); /* with its NUL */
	assert_memory_equal(body, PASSWORD, sizeof(PASSWORD));
	assert_int_equal(f->st.code, AUTH_REQ_PASSWORD);
}

static void test_cleartext_needs_plaintext(void **state)
{
	static const char *const not_plain[] = {NULL, MD5_SECRET, "SCRAM-SHA-256$4096:c2FsdA==$AAAA:AAAA"};
	struct fixture *f = *state;

	for (size_t i = 0; i < sizeof(not_plain) / sizeof(not_plain[0]); i++) {
		use_password(f, not_plain[i]);
		assert_fail(f, answer(f, AUTH_REQ_PASSWORD, NULL, 0), PGLOGIN_NO_CLEARTEXT,
		            "server asks for a cleartext password and no plaintext password is known");
	}
}

static void test_md5(void **state)
{
	struct fixture *f = *state;
	size_t n;

	assert_int_equal(answer(f, AUTH_REQ_MD5, md5_salt, sizeof(md5_salt)), PGLOGIN_SENT);
	const uint8_t *body = only_message(f, PqMsg_PasswordMessage, &n);
	assert_int_equal(n, sizeof(MD5_ANSWER));
	assert_memory_equal(body, MD5_ANSWER, sizeof(MD5_ANSWER));

	/* A stored md5 secret answers the same without the password. */
	use_password(f, MD5_SECRET);
	msgbuf_reset(&f->out);
	assert_int_equal(answer(f, AUTH_REQ_MD5, md5_salt, sizeof(md5_salt)), PGLOGIN_SENT);
	body = only_message(f, PqMsg_PasswordMessage, &n);
	assert_int_equal(n, sizeof(MD5_ANSWER));
	assert_memory_equal(body, MD5_ANSWER, sizeof(MD5_ANSWER));
}

static void test_md5_refusals(void **state)
{
	static const char text[] = "server asks for md5 and no password or md5 secret is known";
	struct fixture *f = *state;

	/* The salt is 4 bytes; fewer is not something to hash. */
	assert_fail(f, answer(f, AUTH_REQ_MD5, md5_salt, 3), PGLOGIN_NO_MD5, text);
	use_password(f, NULL);
	assert_fail(f, answer(f, AUTH_REQ_MD5, md5_salt, 4), PGLOGIN_NO_MD5, text);
	use_password(f, "SCRAM-SHA-256$4096:c2FsdA==$AAAA:AAAA");
	assert_fail(f, answer(f, AUTH_REQ_MD5, md5_salt, 4), PGLOGIN_NO_MD5, text);
}

/* Plays a whole SCRAM login of f->st against a verifier for sec: true when
 * the verifier accepted the proof and pglogin the verifier's signature. */
static bool scram_login(struct fixture *f, const struct scram_secret *sec, struct scram_server **verifier_out)
{
	static const char mechs[] = "SCRAM-SHA-256-PLUS\0" SCRAM_MECHANISM "\0";
	char err[256] = "";
	size_t n;
	struct scram_server *verifier = scram_server_new(sec);
	assert_non_null(verifier);

	/* AuthenticationSASL → SASLInitialResponse: mechanism, int32 length, client-first. */
	assert_int_equal(answer(f, AUTH_REQ_SASL, mechs, sizeof(mechs)), PGLOGIN_SENT);
	const uint8_t *body = only_message(f, PqMsg_SASLInitialResponse, &n);
	assert_true(n > sizeof(SCRAM_MECHANISM) + 4);
	assert_memory_equal(body, SCRAM_MECHANISM, sizeof(SCRAM_MECHANISM));
	uint32_t first_len = frame_be32(body + sizeof(SCRAM_MECHANISM));
	assert_int_equal(first_len, n - sizeof(SCRAM_MECHANISM) - 4);
	char *server_first = NULL;
	assert_true(scram_server_first(verifier, (const char *)body + sizeof(SCRAM_MECHANISM) + 4, first_len,
	                               &server_first, err, sizeof(err)));
	msgbuf_reset(&f->out);

	/* AuthenticationSASLContinue → SASLResponse: client-final, no NUL. */
	assert_int_equal(answer(f, AUTH_REQ_SASL_CONT, server_first, strlen(server_first)), PGLOGIN_SENT);
	free(server_first);
	body = only_message(f, PqMsg_SASLResponse, &n);
	bool proof_ok = false;
	char *server_final = NULL;
	assert_true(
	    scram_server_final(verifier, (const char *)body, n, &proof_ok, &server_final, err, sizeof(err)));
	msgbuf_reset(&f->out);
	if (!proof_ok) {
		scram_server_free(verifier);
		return false;
	}

	/* AuthenticationSASLFinal: nothing to send when the signature verifies. */
	enum pglogin_step r = answer(f, AUTH_REQ_SASL_FIN, server_final, strlen(server_final));
	free(server_final);
	assert_int_equal(f->out.len, 0);
	if (verifier_out != NULL)
		*verifier_out = verifier;
	else
		scram_server_free(verifier);
	return r == PGLOGIN_WAIT;
}

static void test_scram_with_password(void **state)
{
	struct fixture *f = *state;
	struct scram_secret sec;

	assert_true(scram_secret_from_password(PASSWORD, &sec));
	assert_true(scram_login(f, &sec, NULL));
	assert_int_equal(answer(f, AUTH_REQ_OK, NULL, 0), PGLOGIN_OK);
}

static void test_scram_wrong_password(void **state)
{
	struct fixture *f = *state;
	struct scram_secret sec;

	assert_true(scram_secret_from_password("another password", &sec));
	assert_false(scram_login(f, &sec, NULL));
}

/* What server.c does with a SCRAM secret alone: keys recovered from a
 * client's proof (here: a first login with the password) log in. */
static void test_scram_with_client_keys(void **state)
{
	struct fixture *f = *state;
	struct scram_secret sec;
	struct scram_server *verifier = NULL;
	uint8_t client_key[SCRAM_KEY_LEN];

	assert_true(scram_secret_from_password(PASSWORD, &sec));
	assert_true(scram_login(f, &sec, &verifier));
	assert_true(scram_server_client_key(verifier, client_key));
	scram_server_free(verifier);

	use_password(f, "SCRAM-SHA-256$4096:c2FsdA==$AAAA:AAAA"); /* never read with keys set */
	f->st.scram = scram_client_new_keys(client_key, sec.server_key);
	assert_non_null(f->st.scram);
	msgbuf_reset(&f->out);
	assert_true(scram_login(f, &sec, NULL));
}

static void test_scram_refusals(void **state)
{
	static const char scram_only[] = SCRAM_MECHANISM "\0";
	struct fixture *f = *state;

	/* Only channel binding offered, or the name not terminated. */
	assert_fail(f, answer(f, AUTH_REQ_SASL, BYTES("SCRAM-SHA-256-PLUS\0\0")), PGLOGIN_NO_MECHANISM,
	            "server offers no SASL mechanism pgsluice supports");
	assert_fail(f, answer(f, AUTH_REQ_SASL, BYTES(SCRAM_MECHANISM)), PGLOGIN_NO_MECHANISM,
	            "server offers no SASL mechanism pgsluice supports");
	assert_fail(f, answer(f, AUTH_REQ_SASL, NULL, 0), PGLOGIN_NO_MECHANISM,
	            "server offers no SASL mechanism pgsluice supports");

	/* A SCRAM secret without keys, an md5 secret, nothing: one text for
	 * the pooler, two cases for the doctor's wording. */
	use_password(f, "SCRAM-SHA-256$4096:c2FsdA==$AAAA:AAAA");
	assert_fail(f, answer(f, AUTH_REQ_SASL, scram_only, sizeof(scram_only)), PGLOGIN_SCRAM_SECRET_ONLY,
	            NO_SCRAM_TEXT);
	use_password(f, MD5_SECRET);
	assert_fail(f, answer(f, AUTH_REQ_SASL, scram_only, sizeof(scram_only)), PGLOGIN_NO_SCRAM_PASSWORD,
	            NO_SCRAM_TEXT);
	use_password(f, NULL);
	assert_fail(f, answer(f, AUTH_REQ_SASL, scram_only, sizeof(scram_only)), PGLOGIN_NO_SCRAM_PASSWORD,
	            NO_SCRAM_TEXT);
	assert_int_equal(f->st.code, AUTH_REQ_SASL);
}

static void test_scram_out_of_order(void **state)
{
	struct fixture *f = *state;

	assert_fail(f, answer(f, AUTH_REQ_SASL_CONT, BYTES("r=abc,s=c2FsdA==,i=4096")),
	            PGLOGIN_SCRAM_CONTINUE, "bad SCRAM server-first message");
	assert_string_equal(f->detail, "unexpected SASLContinue");
	assert_fail(f, answer(f, AUTH_REQ_SASL_FIN, BYTES("v=AAAA")), PGLOGIN_SCRAM_FINAL,
	            "server's SCRAM signature does not verify");
	assert_string_equal(f->detail, "unexpected SASLFinal");
}

static void test_scram_bad_server_messages(void **state)
{
	static const char scram_only[] = SCRAM_MECHANISM "\0";
	struct fixture *f = *state;
	struct scram_secret sec;
	char err[256] = "";
	size_t n;

	/* A server-first that is not one. */
	assert_int_equal(answer(f, AUTH_REQ_SASL, scram_only, sizeof(scram_only)), PGLOGIN_SENT);
	msgbuf_reset(&f->out);
	assert_fail(f, answer(f, AUTH_REQ_SASL_CONT, BYTES("garbage")), PGLOGIN_SCRAM_CONTINUE,
	            "bad SCRAM server-first message");
	assert_true(f->detail[0] != '\0'); /* the SCRAM module's reason */

	/* A server-final with a signature from another key. */
	use_password(f, PASSWORD);
	assert_true(scram_secret_from_password(PASSWORD, &sec));
	struct scram_server *verifier = scram_server_new(&sec);
	assert_non_null(verifier);
	assert_int_equal(answer(f, AUTH_REQ_SASL, scram_only, sizeof(scram_only)), PGLOGIN_SENT);
	const uint8_t *body = only_message(f, PqMsg_SASLInitialResponse, &n);
	char *server_first = NULL;
	assert_true(scram_server_first(verifier, (const char *)body + sizeof(SCRAM_MECHANISM) + 4,
	                               n - sizeof(SCRAM_MECHANISM) - 4, &server_first, err, sizeof(err)));
	msgbuf_reset(&f->out);
	assert_int_equal(answer(f, AUTH_REQ_SASL_CONT, server_first, strlen(server_first)), PGLOGIN_SENT);
	free(server_first);
	scram_server_free(verifier);
	msgbuf_reset(&f->out);
	assert_fail(f, answer(f, AUTH_REQ_SASL_FIN, BYTES("v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")),
	            PGLOGIN_SCRAM_FINAL, "server's SCRAM signature does not verify");
	assert_true(f->detail[0] != '\0');
}

static void test_unsupported(void **state)
{
	static const uint32_t codes[] = {AUTH_REQ_KRB5,     AUTH_REQ_CRYPT, 6,  AUTH_REQ_GSS,
	                                 AUTH_REQ_GSS_CONT, AUTH_REQ_SSPI,  13, 0xffffffffu};
	struct fixture *f = *state;
	char text[64];

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		snprintf(text, sizeof(text), "unsupported authentication request %u", codes[i]);
		assert_fail(f, answer(f, codes[i], NULL, 0), PGLOGIN_UNSUPPORTED, text);
		assert_int_equal(f->st.code, codes[i]);
	}
}

static void test_malformed(void **state)
{
	struct fixture *f = *state;

	for (size_t n = 0; n < 4; n++) {
		uint8_t *body = malloc(n > 0 ? n : 1);
		assert_non_null(body);
		memset(body, 0, n);
		f->why[0] = '\0';
		enum pglogin_step r = pglogin_answer(&f->st, body, n, &f->out, f->why, sizeof(f->why));
		free(body);
		assert_fail(f, r, PGLOGIN_MALFORMED, "malformed authentication request");
	}
}

static void test_why_truncated(void **state)
{
	struct fixture *f = *state;
	char small[8];
	uint8_t body[4] = {0, 0, 0, AUTH_REQ_GSS};

	assert_int_equal(pglogin_answer(&f->st, body, sizeof(body), &f->out, small, sizeof(small)),
	                 PGLOGIN_FAIL);
	assert_string_equal(small, "unsuppo"); /* 7 characters and the NUL */
}

static void test_method_names(void **state)
{
	(void)state;
	assert_string_equal(pglogin_method_name(AUTH_REQ_PASSWORD), "password");
	assert_string_equal(pglogin_method_name(AUTH_REQ_MD5), "md5");
	assert_string_equal(pglogin_method_name(AUTH_REQ_SASL), "SCRAM-SHA-256");
	assert_null(pglogin_method_name(AUTH_REQ_OK));
	assert_null(pglogin_method_name(AUTH_REQ_SASL_CONT));
	assert_null(pglogin_method_name(AUTH_REQ_SASL_FIN));
	assert_null(pglogin_method_name(AUTH_REQ_GSS));
}

static void test_startup(void **state)
{
	static const uint8_t want[] = "\0\0\0\x45"
	                              "\0\x03\0\0"
	                              "user\0alice\0"
	                              "database\0appdb\0"
	                              "application_name\0app\0"
	                              "TimeZone\0UTC\0"
	                              "\0";
	struct fixture *f = *state;
	struct params extra = PARAMS_INIT;

	assert_true(params_set(&extra, "application_name", "app"));
	assert_true(params_set(&extra, "TimeZone", "UTC"));
	pglogin_startup(&f->out, USER, "appdb", &extra);
	params_clear(&extra);
	assert_true(msg_ok(&f->out));
	assert_int_equal(f->out.len, sizeof(want) - 1);
	assert_memory_equal(f->out.data, want, sizeof(want) - 1);

	msgbuf_reset(&f->out);
	pglogin_startup(&f->out, USER, "appdb", NULL);
	assert_int_equal(f->out.len, 4 + 4 + sizeof("user\0alice\0database\0appdb\0") - 1 + 1);
}

static void test_socket_dir(void **state)
{
	(void)state;
	const char *dir = pglogin_socket_dir();
	assert_true(strcmp(dir, "/var/run/postgresql") == 0 || strcmp(dir, "/tmp") == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_ok, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cleartext, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cleartext_needs_plaintext, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_md5, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_md5_refusals, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scram_with_password, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scram_wrong_password, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scram_with_client_keys, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scram_refusals, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scram_out_of_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scram_bad_server_messages, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unsupported, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_why_truncated, setup, teardown),
	    cmocka_unit_test(test_method_names),
	    cmocka_unit_test_setup_teardown(test_startup, setup, teardown),
	    cmocka_unit_test(test_socket_dir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
