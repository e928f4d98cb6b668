/* tests/unit/test_userlist.c — the auth_file loader: plaintext, md5 and SCRAM
 * secrets, "" escapes, comments, duplicates, malformed lines reported as
 * file:line, and a missing file. Each case writes its own temporary file. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/userlist.h"

#define SCRAM_SECRET                                                                                         \
	"SCRAM-SHA-256$4096:26fmR2agiMeM7hGYBYgmLA==$dWs7f4D4Zb33LLmskl4VnOBnN/29NTyw2MF7Icl5rNE=:"          \
	"aFR+0KkO7INOpYj8+xf1RUFk01YDnSYTLKnXo7mRy9Y="

/* Writes len bytes to a fresh temporary file; path gets its name. */
static void write_file_n(char path[64], const char *text, size_t len)
{
	strcpy(path, "/tmp/pgs_userlist_XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
}

static void write_file(char path[64], const char *text)
{
	write_file_n(path, text, strlen(text));
}

static struct userlist *load_ok(const char *text)
{
	char path[64], err[256] = "";
	write_file(path, text);
	struct userlist *u = userlist_load(path, err, sizeof(err));
	unlink(path);
	if (u == NULL)
		fail_msg("load failed: %s", err);
	return u;
}

static void test_secret_kinds(void **state)
{
	struct userlist *u = load_ok("\"alice\" \"plain password\"\n"
	                             "\"bob\" \"md54d45974e13472b5a0be3533de4666414\"\n"
	                             "\"carol\" \"" SCRAM_SECRET "\"\n");
	assert_int_equal(userlist_count(u), 3);
	assert_string_equal(userlist_find(u, "alice"), "plain password");
	assert_string_equal(userlist_find(u, "bob"), "md54d45974e13472b5a0be3533de4666414");
	assert_string_equal(userlist_find(u, "carol"), SCRAM_SECRET);
	/* Exact match only: no case folding, no prefixes. */
	assert_null(userlist_find(u, "Alice"));
	assert_null(userlist_find(u, "al"));
	assert_null(userlist_find(u, "alicex"));
	assert_null(userlist_find(u, ""));
	assert_null(userlist_find(u, NULL));
	userlist_free(u);
}

static void test_escapes_and_layout(void **state)
{
	struct userlist *u = load_ok("\xef\xbb\xbf\"bom\" \"first line after a BOM\"\n"
	                             "; a comment\n"
	                             "# another comment\n"
	                             "\n"
	                             "   \t\n"
	                             "   ; indented comment\n"
	                             "\"we\"\"ird\" \"pa\"\"ss\"\"\"\n"
	                             "\"with space\"\t\"tab-separated\"\n"
	                             "  \"indented\"   \"x\"   \"extra field\" ignored stuff\n"
	                             "\"crlf\" \"windows\"\r\n"
	                             "\"empty\" \"\"\n"
	                             "\"semi;colon\" \"#hash\"\n"
	                             "\"no-newline\" \"at end of file\"");
	assert_int_equal(userlist_count(u), 8);
	assert_string_equal(userlist_find(u, "bom"), "first line after a BOM");
	assert_string_equal(userlist_find(u, "we\"ird"), "pa\"ss\"");
	assert_string_equal(userlist_find(u, "with space"), "tab-separated");
	assert_string_equal(userlist_find(u, "indented"), "x");
	assert_string_equal(userlist_find(u, "crlf"), "windows");
	assert_string_equal(userlist_find(u, "empty"), "");
	assert_string_equal(userlist_find(u, "semi;colon"), "#hash");
	assert_string_equal(userlist_find(u, "no-newline"), "at end of file");
	userlist_free(u);
}

static void test_empty_and_duplicates(void **state)
{
	struct userlist *u = load_ok("; nothing but comments\n\n");
	assert_int_equal(userlist_count(u), 0);
	assert_null(userlist_find(u, "anyone"));
	assert_null(userlist_first_user(u));
	userlist_free(u);

	/* file order, not sorted order */
	u = load_ok("\"zed\" \"1\"\n\"alice\" \"2\"\n");
	assert_string_equal(userlist_first_user(u), "zed");
	userlist_free(u);

	/* As in PgBouncer, the last line for a user wins. */
	u = load_ok("\"dup\" \"one\"\n\"other\" \"x\"\n\"dup\" \"two\"\n\"dup\" \"three\"\n");
	assert_int_equal(userlist_count(u), 2);
	assert_string_equal(userlist_find(u, "dup"), "three");
	assert_string_equal(userlist_find(u, "other"), "x");
	userlist_free(u);
}

/* Enough users, in reverse order, for the sorted search to matter. */
static void test_many_users(void **state)
{
	size_t cap = 64 * 1024, len = 0;
	char *text = malloc(cap);
	assert_non_null(text);
	for (int i = 999; i >= 0; i--)
		len += (size_t)snprintf(text + len, cap - len, "\"user%03d\" \"pw%d\"\n", i, i);
	struct userlist *u = load_ok(text);
	free(text);
	assert_int_equal(userlist_count(u), 1000);
	for (int i = 0; i < 1000; i++) {
		char name[16], pw[16];
		snprintf(name, sizeof(name), "user%03d", i);
		snprintf(pw, sizeof(pw), "pw%d", i);
		assert_string_equal(userlist_find(u, name), pw);
	}
	assert_null(userlist_find(u, "user1000"));
	assert_null(userlist_find(u, "user"));
	userlist_free(u);
}

static void test_malformed(void **state)
{
	static const struct {
		const char *text;
		int line;
		const char *why;
	} cases[] = {
	    {"alice \"x\"\n", 1, "user name"},
	    {"\"ok\" \"x\"\n\"alice\"\n", 2, "password"},
	    {"\"ok\" \"x\"\n; c\n\"alice\" x\n", 3, "password"},
	    {"\"alice\" \"unterminated\n", 1, "unterminated"},
	    {"\"unterminated\n", 1, "unterminated"},
	    {"\"alice\"\"x\"\n", 1, "password"}, /* "" is an escape: user alice"x, no password */
	    {"\"alice\"\"\" \"x\"junk\n", 1, "after the closing quote"},
	    {"\"\" \"x\"\n", 1, "empty user name"},
	    {"\n\n\n\n'alice' 'x'\n", 5, "user name"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char path[64], err[256] = "", prefix[96];
		write_file(path, cases[i].text);
		struct userlist *u = userlist_load(path, err, sizeof(err));
		if (u != NULL)
			fail_msg("case %zu loaded: %s", i, cases[i].text);
		snprintf(prefix, sizeof(prefix), "%s:%d: ", path, cases[i].line);
		if (strncmp(err, prefix, strlen(prefix)) != 0 || strstr(err, cases[i].why) == NULL)
			fail_msg("case %zu: err \"%s\", want \"%s...%s\"", i, err, prefix, cases[i].why);
		unlink(path);
	}

	/* A NUL byte cannot be part of a name or secret. */
	char path[64], err[256] = "";
	write_file_n(path, "\"ok\" \"x\"\n\"a\0b\" \"x\"\n", 19);
	assert_null(userlist_load(path, err, sizeof(err)));
	assert_non_null(strstr(err, ":2: "));
	assert_non_null(strstr(err, "NUL"));
	/* No room for the message is not a crash. */
	assert_null(userlist_load(path, NULL, 0));
	assert_null(userlist_load(path, err, 4));
	assert_int_equal(strlen(err), 3);
	unlink(path);
}

static void test_missing_file(void **state)
{
	char err[256] = "";
	const char *path = "/nonexistent/pgsluice/userlist.txt";
	assert_null(userlist_load(path, err, sizeof(err)));
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "No such file"));
	assert_null(userlist_load(NULL, err, sizeof(err)));

	userlist_free(NULL);
	assert_int_equal(userlist_count(NULL), 0);
	assert_null(userlist_find(NULL, "alice"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_secret_kinds),
	    cmocka_unit_test(test_escapes_and_layout),
	    cmocka_unit_test(test_empty_and_duplicates),
	    cmocka_unit_test(test_many_users),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_missing_file),
	};
	return cmocka_run_group_tests_name("userlist", tests, NULL, NULL);
}
