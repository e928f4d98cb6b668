/* tests/unit/test_md5.c — PostgreSQL md5 secrets and salted responses.
 * Expected values were computed with Python's hashlib when the test was
 * written; md5_secret("password", "user") also equals what PostgreSQL 15
 * stored for CREATE ROLE "user" PASSWORD 'password' with md5 encryption. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "auth/md5.h"

#define SECRET_PASSWORD_USER "md54d45974e13472b5a0be3533de4666414"

static void test_secret(void **state)
{
	char out[MD5_SECRET_LEN + 1];
	assert_true(md5_secret("password", "user", out));
	assert_string_equal(out, SECRET_PASSWORD_USER);
	assert_true(md5_secret("", "", out));
	assert_string_equal(out, "md5d41d8cd98f00b204e9800998ecf8427e"); /* md5 of nothing */
	/* Order matters: password first, then user. */
	assert_true(md5_secret("user", "password", out));
	assert_string_not_equal(out, SECRET_PASSWORD_USER);
	assert_false(md5_secret(NULL, "user", out));
	assert_false(md5_secret("password", NULL, out));
}

static void test_response(void **state)
{
	static const struct {
		uint8_t salt[4];
		const char *expect; /* "md5" + md5(hex(secret) || salt) */
	} cases[] = {
	    {{0x01, 0x02, 0x03, 0x04}, "md5a3576f1ae039b8996bc4fc2720f9c71a"},
	    {{0xde, 0xad, 0xbe, 0xef}, "md51b9db6132a24afffa2977ba84e4b389b"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char from_pw[MD5_SECRET_LEN + 1], from_secret[MD5_SECRET_LEN + 1];
		assert_true(md5_response("password", "user", cases[i].salt, from_pw));
		assert_true(md5_response(SECRET_PASSWORD_USER, NULL, cases[i].salt, from_secret));
		assert_string_equal(from_pw, cases[i].expect);
		assert_string_equal(from_secret, cases[i].expect);
	}
	/* A plaintext password cannot be turned into a secret without the user. */
	char out[MD5_SECRET_LEN + 1];
	static const uint8_t salt[4] = {1, 2, 3, 4};
	assert_false(md5_response("password", NULL, salt, out));
	assert_false(md5_response(NULL, "user", salt, out));
}

static void test_is_secret(void **state)
{
	assert_true(md5_is_secret(SECRET_PASSWORD_USER));
	assert_false(md5_is_secret(NULL));
	assert_false(md5_is_secret(""));
	assert_false(md5_is_secret("password"));
	assert_false(md5_is_secret("md5"));
	assert_false(md5_is_secret("md54d45974e13472b5a0be3533de466641"));   /* 31 digits */
	assert_false(md5_is_secret("md54d45974e13472b5a0be3533de46664140")); /* 33 digits */
	assert_false(md5_is_secret("md54D45974E13472B5A0BE3533DE4666414"));  /* PostgreSQL wants lower case */
	assert_false(md5_is_secret("md54d45974e13472b5a0be3533de466641g"));
	assert_false(md5_is_secret("MD54d45974e13472b5a0be3533de4666414"));
	assert_false(md5_is_secret("SCRAM-SHA-256$4096:c2FsdA==$AAAA:AAAA"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_secret),
	    cmocka_unit_test(test_response),
	    cmocka_unit_test(test_is_secret),
	};
	return cmocka_run_group_tests_name("md5", tests, NULL, NULL);
}
