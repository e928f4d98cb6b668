/* test_str.c — util/str (durations, integers, booleans, edit distance,
 * duration formatting, bounded copies) and util/params (case-insensitive
 * lists and their canonical text). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/params.h"
#include "util/str.h"

#define SEC PGS_USEC_PER_SEC
#define MSEC PGS_USEC_PER_MS

static void test_parse_duration_valid(void **state)
{
	static const struct {
		const char *text;
		pgs_usec_t unit;
		pgs_usec_t expect;
	} cases[] = {
	    {"0", SEC, 0},
	    {"10", SEC, 10 * SEC},
	    {"10", MSEC, 10 * MSEC},
	    {"0.5", SEC, 500 * MSEC},
	    {"1.25", SEC, 1250 * MSEC},
	    {"250us", SEC, 250},
	    {"500ms", SEC, 500 * MSEC},
	    {"1.5ms", SEC, 1500},
	    {"10s", SEC, 10 * SEC},
	    {"10sec", SEC, 10 * SEC},
	    {"10 s", SEC, 10 * SEC},
	    {"  10s  ", SEC, 10 * SEC},
	    {"5min", SEC, 300 * SEC},
	    {"1.5min", SEC, 90 * SEC},
	    {"2h", SEC, 7200 * SEC},
	    {"1d", SEC, 86400 * SEC},
	    {"0.000001d", SEC, 86400}, /* fractions of big units stay exact */
	    {"5MIN", SEC, 300 * SEC},
	    {"10s", MSEC, 10 * SEC}, /* a unit overrides the default */
	    {"0.0000001", SEC, 0},   /* below a microsecond truncates */
	    {"9223372036854775807us", SEC, INT64_MAX},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pgs_usec_t v = -1;
		if (!str_parse_duration(cases[i].text, cases[i].unit, &v))
			fail_msg("'%s' rejected", cases[i].text);
		if (v != cases[i].expect)
			fail_msg("'%s' gave %lld, want %lld", cases[i].text, (long long)v,
			         (long long)cases[i].expect);
	}
}

static void test_parse_duration_invalid(void **state)
{
	static const char *const bad[] = {
	    "",
	    " ",
	    "s",
	    "abc",
	    "-1",
	    "-1s",
	    "+5",
	    "1.",
	    ".5",
	    "1..5",
	    "5m",
	    "5 m",
	    "5 minutes",
	    "5x",
	    "5s5",
	    "5s s",
	    "1e3",
	    "0x10",
	    "10,5",
	    /* overflow */
	    "9223372036854775808us",
	    "99999999999999999999",
	    "9223372036854775807s",
	    "200000000d",
	};
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		pgs_usec_t v = 12345;
		if (str_parse_duration(bad[i], SEC, &v))
			fail_msg("'%s' accepted as %lld", bad[i], (long long)v);
		assert_int_equal(v, 12345); /* untouched on failure */
	}
	pgs_usec_t v;
	assert_false(str_parse_duration(NULL, SEC, &v));
	assert_false(str_parse_duration("1", 0, &v));
}

static void test_parse_int(void **state)
{
	static const struct {
		const char *text;
		bool ok;
		long long expect;
	} cases[] = {
	    {"0", true, 0},
	    {"42", true, 42},
	    {" 42 ", true, 42},
	    {"+7", true, 7},
	    {"-7", true, -7},
	    {"007", true, 7},
	    {"9223372036854775807", true, INT64_MAX},
	    {"-9223372036854775808", true, INT64_MIN},
	    {"9223372036854775808", false, 0},
	    {"-9223372036854775809", false, 0},
	    {"", false, 0},
	    {"-", false, 0},
	    {"4 2", false, 0},
	    {"42x", false, 0},
	    {"0x10", false, 0},
	    {"1.5", false, 0},
	    {"- 1", false, 0},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		long long v = 0;
		bool ok = str_parse_int(cases[i].text, &v);
		if (ok != cases[i].ok)
			fail_msg("'%s': ok=%d", cases[i].text, ok);
		if (ok && v != cases[i].expect)
			fail_msg("'%s' gave %lld", cases[i].text, v);
	}
	long long v;
	assert_false(str_parse_int(NULL, &v));
}

static void test_parse_bool(void **state)
{
	static const struct {
		const char *text;
		bool ok, expect;
	} cases[] = {
	    {"1", true, true},    {"0", true, false},       {"on", true, true},      {"off", true, false},
	    {"yes", true, true},  {"no", true, false},      {"true", true, true},    {"false", true, false},
	    {"TRUE", true, true}, {" Off ", true, false},   {"", false, false},      {"2", false, false},
	    {"y", false, false},  {"enable", false, false}, {"truee", false, false},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool v = !cases[i].expect;
		bool ok = str_parse_bool(cases[i].text, &v);
		if (ok != cases[i].ok)
			fail_msg("'%s': ok=%d", cases[i].text, ok);
		if (ok && v != cases[i].expect)
			fail_msg("'%s' gave %d", cases[i].text, v);
	}
	bool b;
	assert_false(str_parse_bool(NULL, &b));
}

static void test_edit_distance(void **state)
{
	static const struct {
		const char *a, *b;
		int d;
	} cases[] = {
	    {"", "", 0},
	    {"abc", "", 3},
	    {"", "abc", 3},
	    {"pool_mode", "pool_mode", 0},
	    {"defualt_pool_size", "default_pool_size", 2},
	    {"server_lifetme", "server_lifetime", 1},
	    {"kitten", "sitting", 3},
	    {"flaw", "lawn", 2},
	    {"databse", "databases", 2},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (str_edit_distance(cases[i].a, cases[i].b) != cases[i].d)
			fail_msg("'%s' '%s' gave %d", cases[i].a, cases[i].b,
			         str_edit_distance(cases[i].a, cases[i].b));
	}
	/* Longer than the stack row: the heap path gives the same answer. */
	char a[200], b[200];
	memset(a, 'x', sizeof(a) - 1);
	a[sizeof(a) - 1] = '\0';
	memcpy(b, a, sizeof(b));
	b[100] = 'y';
	assert_int_equal(str_edit_distance(a, b), 1);
	b[150] = '\0';
	assert_int_equal(str_edit_distance(a, b), 49 + 1);
}

static void test_format_duration(void **state)
{
	static const struct {
		pgs_usec_t v;
		const char *text;
	} cases[] = {
	    {0, "0"},
	    {1, "1us"},
	    {999, "999us"},
	    {1000, "1ms"},
	    {1500, "1.5ms"},
	    {500000, "500ms"},
	    {1000000, "1s"},
	    {1500000, "1.5s"},
	    {1000001, "1.000001s"},
	    {120000000, "120s"},
	    {3600 * SEC, "3600s"},
	    {-1500000, "-1.5s"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[32];
		str_format_duration(cases[i].v, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].text);
		/* What we print, we read back. */
		pgs_usec_t back;
		if (cases[i].v >= 0) {
			assert_true(str_parse_duration(buf, SEC, &back));
			assert_int_equal(back, cases[i].v);
		}
	}
	char small[4];
	str_format_duration(1500000, small, sizeof(small));
	assert_string_equal(small, "1.5");
	str_format_duration(1500000, small, 0); /* must not write */
}

static void test_lcopy_dup_printf(void **state)
{
	char buf[6];

	(void)state;
	assert_int_equal(str_lcopy(buf, "hello world", sizeof(buf)), 11);
	assert_string_equal(buf, "hello");
	assert_int_equal(str_lcopy(buf, "hi", sizeof(buf)), 2);
	assert_string_equal(buf, "hi");
	buf[0] = 'z';
	assert_int_equal(str_lcopy(buf, "abc", 0), 3);
	assert_int_equal(buf[0], 'z');

	assert_null(str_dup(NULL));
	char *d = str_dup("x");
	assert_string_equal(d, "x");
	free(d);

	char *p = str_printf("%s=%d", "pool_size", 20);
	assert_string_equal(p, "pool_size=20");
	free(p);
}

/* ------------------------------------------------------------------ */
/* params                                                              */
/* ------------------------------------------------------------------ */

static void test_params_set_get_case_insensitive(void **state)
{
	struct params p = PARAMS_INIT;

	(void)state;
	assert_true(params_set(&p, "DateStyle", "ISO, MDY"));
	assert_true(params_set(&p, "application_name", "app"));
	assert_string_equal(params_get(&p, "datestyle"), "ISO, MDY");
	assert_string_equal(params_get(&p, "DATESTYLE"), "ISO, MDY");
	assert_null(params_get(&p, "TimeZone"));

	/* Replacing keeps the first position and spelling of the name. */
	assert_true(params_set(&p, "DATESTYLE", "German"));
	assert_int_equal(p.n, 2);
	assert_string_equal(p.items[0].name, "DateStyle");
	assert_string_equal(p.items[0].value, "German");
	assert_true(params_set(&p, "empty", NULL));
	assert_string_equal(params_get(&p, "empty"), "");

	assert_true(params_remove(&p, "Application_Name"));
	assert_false(params_remove(&p, "application_name"));
	assert_int_equal(p.n, 2);
	assert_string_equal(p.items[1].name, "empty");

	for (int i = 0; i < 40; i++) { /* grows past the first allocation */
		char name[16];
		snprintf(name, sizeof(name), "p%d", i);
		assert_true(params_set(&p, name, name));
	}
	assert_int_equal(p.n, 42);
	assert_string_equal(params_get(&p, "P39"), "p39");
	params_clear(&p);
	assert_int_equal(p.n, 0);
	assert_null(p.items);
	params_clear(&p); /* twice is fine */
}

static void test_params_copy_equal(void **state)
{
	struct params a = PARAMS_INIT, b = PARAMS_INIT, c = PARAMS_INIT;

	(void)state;
	assert_true(params_equal(&a, &b));
	params_set(&a, "TimeZone", "UTC");
	params_set(&a, "search_path", "public");
	params_set(&b, "search_path", "public");
	params_set(&b, "timezone", "UTC");
	assert_true(params_equal(&a, &b)); /* order and name case do not matter */
	params_set(&b, "timezone", "utc");
	assert_false(params_equal(&a, &b)); /* values are exact */
	params_set(&b, "timezone", "UTC");
	params_set(&b, "extra", "1");
	assert_false(params_equal(&a, &b));
	assert_false(params_equal(&b, &a));

	params_set(&c, "old", "value");
	assert_true(params_copy(&c, &a)); /* replaces what was there */
	assert_true(params_equal(&c, &a));
	assert_null(params_get(&c, "old"));
	assert_ptr_not_equal(c.items[0].name, a.items[0].name);
	params_clear(&a);
	params_clear(&b);
	params_clear(&c);
}

static void test_params_canonical(void **state)
{
	struct params a = PARAMS_INIT, b = PARAMS_INIT;
	char *ca, *cb;

	(void)state;
	ca = params_canonical(&a);
	assert_string_equal(ca, "");
	free(ca);

	params_set(&a, "TimeZone", "UTC");
	params_set(&a, "application_name", "App");
	params_set(&a, "DateStyle", "ISO");
	ca = params_canonical(&a);
	assert_string_equal(ca, "application_name=App\x1f"
	                        "datestyle=ISO\x1f"
	                        "timezone=UTC");

	params_set(&b, "datestyle", "ISO");
	params_set(&b, "TIMEZONE", "UTC");
	params_set(&b, "Application_Name", "App");
	cb = params_canonical(&b);
	assert_string_equal(ca, cb);
	free(cb);

	params_set(&b, "application_name", "app");
	cb = params_canonical(&b);
	assert_string_not_equal(ca, cb);
	free(ca);
	free(cb);
	params_clear(&a);
	params_clear(&b);

	/* A value holding the separators cannot pass for two parameters. */
	params_set(&a, "a",
	           "1\x1f"
	           "b=2");
	params_set(&b, "a", "1");
	params_set(&b, "b", "2");
	ca = params_canonical(&a);
	cb = params_canonical(&b);
	assert_false(params_equal(&a, &b));
	assert_string_not_equal(ca, cb);
	assert_string_equal(ca, "a=1\\\x1f"
	                        "b\\=2");
	free(ca);
	free(cb);
	params_clear(&a);
	params_clear(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_duration_valid),
	    cmocka_unit_test(test_parse_duration_invalid),
	    cmocka_unit_test(test_parse_int),
	    cmocka_unit_test(test_parse_bool),
	    cmocka_unit_test(test_edit_distance),
	    cmocka_unit_test(test_format_duration),
	    cmocka_unit_test(test_lcopy_dup_printf),
	    cmocka_unit_test(test_params_set_get_case_insensitive),
	    cmocka_unit_test(test_params_copy_equal),
	    cmocka_unit_test(test_params_canonical),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
