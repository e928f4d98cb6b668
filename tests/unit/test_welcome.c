/* test_welcome.c — the login answer: one ParameterStatus per reported
 * setting with the client's own tracked values, the tracked values the
 * client ends up with, whether a server is needed, and the worker's cache
 * (same pair, same answer; references let go when it is cleared). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "util/shared.h"
#include "welcome.h"

static const struct pset *list_of(const char *const *kv)
{
	struct params p = PARAMS_INIT;
	for (int i = 0; kv[i] != NULL; i += 2)
		params_set(&p, kv[i], kv[i + 1]);
	const struct pset *ps = NULL;
	assert_true(pset_intern(&p, &ps));
	params_clear(&p);
	return ps;
}

/* The value the answer's ParameterStatus messages give name; NULL if none. */
static const char *status_of(const struct welcome *w, const char *name, int *count)
{
	const uint8_t *d = w->msgs.data, *end = d + w->msgs.len;
	const char *found = NULL;
	*count = 0;
	while (d < end) {
		assert_int_equal(d[0], 'S');
		uint32_t len = (uint32_t)d[1] << 24 | (uint32_t)d[2] << 16 | (uint32_t)d[3] << 8 | d[4];
		const char *n = (const char *)d + 5, *v = n + strlen(n) + 1;
		if (strcmp(n, name) == 0)
			found = v;
		(*count)++;
		d += 1 + len;
	}
	return found;
}

static const char *const reported_kv[] = {
    "server_version", "15.8", "client_encoding",  "UTF8", "DateStyle", "ISO, MDY",
    "TimeZone",       "UTC",  "application_name", "",     NULL};

static void test_answer_uses_the_clients_values(void **state)
{
	(void)state;
	int base = shared_count();
	const struct pset *reported = list_of(reported_kv);
	const struct pset *asked =
	    list_of((const char *const[]){"application_name", "billing", "TimeZone", "UTC", NULL});
	struct welcome w;
	assert_true(welcome_build(&w, pset_params(reported), asked));
	int n;
	assert_string_equal(status_of(&w, "application_name", &n), "billing");
	assert_int_equal(n, 5);
	assert_string_equal(status_of(&w, "server_version", &n), "15.8");
	assert_string_equal(status_of(&w, "DateStyle", &n), "ISO, MDY");
	/* Tracked values not asked for start at the server's. */
	const struct params *t = pset_params(w.tracked);
	assert_string_equal(params_get(t, "application_name"), "billing");
	assert_string_equal(params_get(t, "client_encoding"), "UTF8");
	assert_string_equal(params_get(t, "DateStyle"), "ISO, MDY");
	assert_null(params_get(t, "server_version"));
	assert_true(w.without_server);
	welcome_clear(&w);
	pset_put(asked);
	pset_put(reported);
	assert_int_equal(shared_count(), base);
}

static void test_other_spelling_needs_a_server(void **state)
{
	(void)state;
	const struct pset *reported = list_of(reported_kv);
	const struct pset *asked = list_of((const char *const[]){"client_encoding", "utf8", NULL});
	struct welcome w;
	assert_true(welcome_build(&w, pset_params(reported), asked));
	assert_false(w.without_server);
	welcome_clear(&w);
	pset_put(asked);
	asked = list_of((const char *const[]){"TimeZone", "Europe/Paris", NULL});
	assert_true(welcome_build(&w, pset_params(reported), asked));
	assert_false(w.without_server);
	int n;
	assert_string_equal(status_of(&w, "TimeZone", &n), "Europe/Paris");
	welcome_clear(&w);
	pset_put(asked);
	pset_put(reported);
}

static void test_cache_reuses_and_lets_go(void **state)
{
	(void)state;
	int base = shared_count();
	struct welcome_cache c;
	memset(&c, 0, sizeof(c));
	const struct pset *reported = list_of(reported_kv);
	const struct pset *asked[WELCOME_CACHE + 2];
	char app[32];
	for (int i = 0; i < WELCOME_CACHE + 2; i++) {
		snprintf(app, sizeof(app), "app-%d", i);
		asked[i] = list_of((const char *const[]){"application_name", app, NULL});
	}
	const struct welcome *a = welcome_lookup(&c, reported, asked[0]);
	assert_non_null(a);
	assert_ptr_equal(welcome_lookup(&c, reported, asked[0]), a);
	/* A client with no tracked values at all (NULL list) has its own answer. */
	const struct welcome *none = welcome_lookup(&c, reported, NULL);
	assert_non_null(none);
	assert_ptr_not_equal(none, a);
	int n;
	assert_string_equal(status_of(none, "application_name", &n), "");
	/* More pairs than slots: the oldest are replaced, answers stay right. */
	for (int i = 1; i < WELCOME_CACHE + 2; i++) {
		const struct welcome *w = welcome_lookup(&c, reported, asked[i]);
		assert_non_null(w);
		snprintf(app, sizeof(app), "app-%d", i);
		assert_string_equal(status_of(w, "application_name", &n), app);
	}
	welcome_cache_clear(&c);
	for (int i = 0; i < WELCOME_CACHE + 2; i++)
		pset_put(asked[i]);
	pset_put(reported);
	assert_int_equal(shared_count(), base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_answer_uses_the_clients_values),
	    cmocka_unit_test(test_other_spelling_needs_a_server),
	    cmocka_unit_test(test_cache_reuses_and_lets_go),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
