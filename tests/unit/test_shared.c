/* test_shared.c — util/shared: one copy per distinct value, reference
 * counts that free the last copy, parameter lists that change by becoming
 * another shared list, and the table used from several threads at once. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "util/shared.h"

static void test_strings_are_shared_and_freed(void **state)
{
	(void)state;
	int base = shared_count();
	char a[] = "postgres", b[] = "postgres";
	const char *x = shared_str(a), *y = shared_str(b), *z = shared_str("appdb");
	assert_non_null(x);
	assert_ptr_equal(x, y);
	assert_ptr_not_equal(x, z);
	assert_string_equal(x, "postgres");
	assert_int_equal(shared_count(), base + 2);
	shared_str_put(x);
	assert_int_equal(shared_count(), base + 2); /* y still holds it */
	assert_string_equal(y, "postgres");
	shared_str_put(y);
	shared_str_put(z);
	shared_str_put(NULL);
	assert_null(shared_str(NULL));
	assert_int_equal(shared_count(), base);
}

static void test_psets_equal_lists_share(void **state)
{
	(void)state;
	int base = shared_count();
	struct params p = PARAMS_INIT, q = PARAMS_INIT;
	params_set(&p, "client_encoding", "UTF8");
	params_set(&p, "DateStyle", "ISO, MDY");
	params_set(&q, "client_encoding", "UTF8");
	params_set(&q, "DateStyle", "ISO, MDY");
	const struct pset *a = NULL, *b = NULL, *empty = (const struct pset *)&p;
	assert_true(pset_intern(&p, &a));
	assert_true(pset_intern(&q, &b));
	assert_ptr_equal(a, b);
	assert_int_equal(pset_params(a)->n, 2);
	assert_string_equal(params_get(pset_params(a), "datestyle"), "ISO, MDY");
	/* A string and a list with the same bytes are different values. */
	const char *s = shared_str("client_encoding");
	assert_int_equal(shared_count(), base + 2);

	struct params none = PARAMS_INIT;
	assert_true(pset_intern(&none, &empty));
	assert_null(empty);
	assert_int_equal(pset_params(NULL)->n, 0);

	pset_put(a);
	pset_put(b);
	shared_str_put(s);
	assert_int_equal(shared_count(), base);
	params_clear(&p);
	params_clear(&q);
}

static void test_pset_set_makes_a_new_list(void **state)
{
	(void)state;
	int base = shared_count();
	struct params p = PARAMS_INIT;
	params_set(&p, "client_encoding", "UTF8");
	params_set(&p, "TimeZone", "UTC");
	const struct pset *one = NULL, *two = NULL;
	assert_true(pset_intern(&p, &one));
	assert_true(pset_intern(&p, &two));
	assert_ptr_equal(one, two);

	/* Setting the value it already has changes nothing. */
	const struct pset *before = two;
	assert_true(pset_set(&two, "timezone", "UTC"));
	assert_ptr_equal(two, before);

	assert_true(pset_set(&two, "TimeZone", "Europe/Paris"));
	assert_ptr_not_equal(one, two);
	assert_string_equal(params_get(pset_params(one), "TimeZone"), "UTC");
	assert_string_equal(params_get(pset_params(two), "TimeZone"), "Europe/Paris");
	assert_int_equal(shared_count(), base + 2);

	/* Back to the first value: back to the first list. */
	assert_true(pset_set(&two, "TimeZone", "UTC"));
	assert_ptr_equal(one, two);
	assert_int_equal(shared_count(), base + 1);

	assert_true(pset_replace(&two, &(struct params)PARAMS_INIT));
	assert_null(two);
	pset_put(one);
	assert_int_equal(shared_count(), base);
	params_clear(&p);
}

static void test_many_values_grow_the_table(void **state)
{
	(void)state;
	int base = shared_count();
	enum { N = 3000 };
	static const char *held[N];
	char name[32];
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "app-%d", i);
		held[i] = shared_str(name);
		assert_non_null(held[i]);
	}
	assert_int_equal(shared_count(), base + N);
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "app-%d", i);
		const char *again = shared_str(name);
		assert_ptr_equal(again, held[i]);
		shared_str_put(again);
	}
	for (int i = 0; i < N; i++)
		shared_str_put(held[i]);
	assert_int_equal(shared_count(), base);
}

static void *churn(void *arg)
{
	char name[32];
	for (int i = 0; i < 20000; i++) {
		snprintf(name, sizeof(name), "user-%d", i % 7);
		const char *s = shared_str(name);
		if (s == NULL || strcmp(s, name) != 0)
			return arg;
		const struct pset *ps = NULL;
		if (!pset_set(&ps, "application_name", name) ||
		    strcmp(params_get(pset_params(ps), "application_name"), name) != 0)
			return arg;
		pset_put(ps);
		shared_str_put(s);
	}
	return NULL;
}

static void test_threads_share_one_table(void **state)
{
	(void)state;
	int base = shared_count();
	pthread_t t[4];
	int failed = 0;
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, churn, &failed);
	for (int i = 0; i < 4; i++) {
		void *r;
		pthread_join(t[i], &r);
		assert_null(r);
	}
	assert_int_equal(shared_count(), base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_strings_are_shared_and_freed),
	    cmocka_unit_test(test_psets_equal_lists_share),
	    cmocka_unit_test(test_pset_set_makes_a_new_list),
	    cmocka_unit_test(test_many_values_grow_the_table),
	    cmocka_unit_test(test_threads_share_one_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
