/* test_pool.c — the pool as a data structure: checkout, wait queue order,
 * hand-back, limits, failure of a whole queue, the work it returns, and the
 * figures, which are the lengths of its lists. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "pool.h"
#include "util/clock.h"

static struct config *load(const char *text)
{
	char path[] = "/tmp/test_pool_XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	struct config *c = config_load(path, NULL, NULL);
	unlink(path);
	assert_non_null(c);
	return c;
}

struct fixture {
	struct config *cfg;
	struct worker *w, *other; /* compared by the pool, never dereferenced */
	char w_token, other_token;
	struct pool_client cl[8];
	struct pool_server sv[8];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	f->cfg = load("[pgsluice]\ndefault_pool_size = 2\nserver_connect_concurrency = 4\n"
	              "max_db_connections = 3\n[databases]\n* = host=127.0.0.1 port=5432\n");
	f->w = (struct worker *)&f->w_token;
	f->other = (struct worker *)&f->other_token;
	for (int i = 0; i < 8; i++) {
		list_init(&f->cl[i].node);
		f->cl[i].worker = f->w;
		pool_server_init(&f->sv[i], 0, 0);
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	pool_registry_destroy(NULL);
	config_free(f->cfg);
	free(f);
	return 0;
}

static struct pool *get_pool(struct fixture *f, const char *db, const char *user)
{
	struct params none = PARAMS_INIT;
	struct pool *p = pool_get(f->cfg, NULL, db, user, &none);
	assert_non_null(p);
	return p;
}

static struct pool_figures figures(struct pool *p)
{
	struct pool_figures fig;
	pool_figures(p, clock_now_usec(), &fig);
	return fig;
}

/* A counted launch becomes a server that connected and is logging in. */
static void connected(struct pool *p, struct pool_server *ps)
{
	pool_server_add(p, ps);
	assert_int_equal(ps->state, SV_CONNECTING);
	pool_server_move(p, ps, SV_LOGIN);
	pool_connect_succeeded(p);
}

static enum pool_checkout_result checkout(struct pool *p, struct pool_client *pc, struct pool_server **got)
{
	return pool_checkout(p, pc, clock_now_usec(), got);
}

static void test_same_key_same_pool(void **state)
{
	struct fixture *f = *state;
	struct params a = PARAMS_INIT, b = PARAMS_INIT;
	params_set(&a, "search_path", "x");
	params_set(&b, "search_path", "y");
	struct pool *p1 = pool_get(f->cfg, NULL, "db", "u", &a);
	struct pool *p2 = pool_get(f->cfg, NULL, "db", "u", &a);
	struct pool *p3 = pool_get(f->cfg, NULL, "db", "u", &b);
	assert_ptr_equal(p1, p2);
	assert_ptr_not_equal(p1, p3);
	assert_int_equal(p1->set->pool_size, 2);
	params_clear(&a);
	params_clear(&b);
}

static void test_empty_pool_queues_and_launches_up_to_size(void **state)
{
	struct fixture *f = *state;
	struct pool *p = get_pool(f, "db1", "u");
	struct pool_server *got;
	assert_int_equal(checkout(p, &f->cl[0], &got), POOL_WAIT_LAUNCH);
	assert_int_equal(checkout(p, &f->cl[1], &got), POOL_WAIT_LAUNCH);
	/* pool_size is 2: the third waits without a new connection */
	assert_int_equal(checkout(p, &f->cl[2], &got), POOL_WAIT);
	struct pool_figures fig = figures(p);
	assert_int_equal(fig.sv_total, 2);
	assert_int_equal(fig.sv_login, 2);
	assert_int_equal(fig.cl_waiting, 3);
	assert_true(f->cl[0].queued && f->cl[2].queued);
}

static void test_give_serves_waiters_in_arrival_order(void **state)
{
	struct fixture *f = *state;
	struct pool *p = get_pool(f, "db2", "u");
	struct pool_server *got;
	for (int i = 0; i < 3; i++)
		checkout(p, &f->cl[i], &got);
	for (int i = 0; i < 3; i++) {
		/* two servers log in; the third waiter gets the second back from its client */
		if (i < 2)
			connected(p, &f->sv[i]);
		struct pool_client *to;
		struct pool_server *ps = i < 2 ? &f->sv[i] : &f->sv[1];
		assert_int_equal(pool_give(p, ps, f->w, &to), POOL_GIVE_WAITER);
		assert_ptr_equal(to, &f->cl[i]);
		assert_false(f->cl[i].queued);
		assert_int_equal(ps->state, SV_ACTIVE);
	}
	assert_int_equal(figures(p).cl_waiting, 0);
	assert_int_equal(figures(p).sv_active, 2);
}

static void test_give_prefers_a_simultaneous_waiter_on_its_own_worker(void **state)
{
	struct fixture *f = *state;
	struct pool *p = get_pool(f, "db2w", "u");
	struct pool_server *got;
	/* cl0 (other worker) first; cl1 (this worker) 0.2 ms later; cl2 (other)
	 * and cl3 (this one) 4 ms after cl0. */
	const int64_t started[4] = {1000000, 1000200, 1004000, 1005000};
	for (int i = 0; i < 4; i++) {
		f->cl[i].worker = i % 2 == 0 ? f->other : f->w;
		pool_checkout(p, &f->cl[i], started[i], &got);
	}
	connected(p, &f->sv[0]);
	connected(p, &f->sv[1]);
	struct pool_client *to;
	/* Returned on this worker: cl1 arrived together with cl0 and needs no hand-off. */
	pool_give(p, &f->sv[0], f->w, &to);
	assert_ptr_equal(to, &f->cl[1]);
	assert_int_equal(f->cl[1].handoffs_pending, 0);
	/* cl3 is on this worker too, but 4 ms behind cl0: cl0 is served first. */
	pool_give(p, &f->sv[1], f->w, &to);
	assert_ptr_equal(to, &f->cl[0]);
	assert_int_equal(f->cl[0].handoffs_pending, 1);
	pool_give(p, &f->sv[0], f->other, &to);
	assert_ptr_equal(to, &f->cl[2]);
	pool_give(p, &f->sv[1], f->other, &to);
	assert_ptr_equal(to, &f->cl[3]);
	assert_int_equal(figures(p).cl_waiting, 0);
}

static void test_idle_server_is_checked_out_again(void **state)
{
	struct fixture *f = *state;
	struct pool *p = get_pool(f, "db3", "u");
	struct pool_server *got;
	struct pool_client *to;
	assert_int_equal(checkout(p, &f->cl[0], &got), POOL_WAIT_LAUNCH);
	connected(p, &f->sv[0]);
	assert_int_equal(pool_give(p, &f->sv[0], f->w, &to), POOL_GIVE_WAITER);
	assert_ptr_equal(to, &f->cl[0]);
	/* the client is done: the server goes idle, watched from this worker */
	assert_int_equal(pool_give(p, &f->sv[0], f->w, &to), POOL_GIVE_IDLE);
	assert_null(to);
	assert_int_equal(f->sv[0].state, SV_IDLE);
	assert_ptr_equal(f->sv[0].idle_worker, f->w);
	assert_int_equal(figures(p).sv_idle, 1);
	assert_int_equal(checkout(p, &f->cl[1], &got), POOL_GOT_SERVER);
	assert_ptr_equal(got, &f->sv[0]);
	struct pool_figures fig = figures(p);
	assert_int_equal(fig.sv_idle, 0);
	assert_int_equal(fig.sv_total, 1);
	assert_int_equal(f->sv[0].state, SV_ACTIVE);
}

static void test_a_check_in_flight_does_not_queue_the_next_client(void **state)
{
	/* Two servers idle past server_check_delay. The first client's checkout
	 * checks one and queues for it; the next client must not queue behind
	 * it while the other server sits idle (that queue used to feed itself:
	 * every later checkout queued and idle servers stayed unused). */
	struct fixture *f = *state;
	struct pool *p = get_pool(f, "db3c", "u");
	struct pool_server *got;
	struct pool_client *to;
	for (int i = 0; i < 2; i++) {
		assert_int_equal(checkout(p, &f->cl[i], &got), POOL_WAIT_LAUNCH);
		connected(p, &f->sv[i]);
		pool_give(p, &f->sv[i], f->w, &to);
		assert_ptr_equal(to, &f->cl[i]);
	}
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pool_give(p, &f->sv[i], f->w, &to), POOL_GIVE_IDLE);
		f->sv[i].idle_since -= p->set->check_delay + 1000000; /* stale */
	}
	assert_int_equal(figures(p).sv_idle, 2);
	assert_int_equal(checkout(p, &f->cl[2], &got), POOL_WAIT_CHECK);
	assert_int_equal(got->state, SV_TESTING);
	assert_int_equal(figures(p).sv_tested, 1);
	assert_int_equal(figures(p).cl_waiting, 1);
	/* The next client takes (and checks) the other idle server. */
	assert_int_equal(checkout(p, &f->cl[3], &got), POOL_WAIT_CHECK);
	assert_int_equal(figures(p).sv_tested, 2);
	assert_int_equal(figures(p).sv_idle, 0);
	/* A check that ends hands its server to the first waiter. */
	assert_int_equal(pool_give(p, got, f->w, &to), POOL_GIVE_WAITER);
	assert_ptr_equal(to, &f->cl[2]);
	assert_int_equal(figures(p).sv_tested, 1);
	assert_int_equal(figures(p).cl_waiting, 1);
}

static void test_check_delay_zero_checks_every_time(void **state)
{
	/* server_check_delay = 0: checked before every use, even when the
	 * server went idle after the checking-out callback began (its
	 * idle_since stamped by another worker's later clock reading). */
	struct fixture *f = *state;
	struct pool *p = get_pool(f, "db3z", "u");
	p->set->check_delay = 0;
	struct pool_server *got;
	struct pool_client *to;
	assert_int_equal(checkout(p, &f->cl[0], &got), POOL_WAIT_LAUNCH);
	connected(p, &f->sv[0]);
	pool_give(p, &f->sv[0], f->w, &to);
	assert_ptr_equal(to, &f->cl[0]);
	assert_int_equal(pool_give(p, &f->sv[0], f->w, &to), POOL_GIVE_IDLE);
	f->sv[0].idle_since = clock_now_usec() + 1000000;
	assert_int_equal(checkout(p, &f->cl[1], &got), POOL_WAIT_CHECK);
	assert_ptr_equal(got, &f->sv[0]);
	assert_int_equal(got->state, SV_TESTING);
}

static void test_leave_queue(void **state)
{
	struct fixture *f = *state;
	struct pool *p = get_pool(f, "db4", "u");
	struct pool_server *got;
	checkout(p, &f->cl[0], &got);
	assert_true(pool_leave_queue(p, &f->cl[0]));
	assert_false(pool_leave_queue(p, &f->cl[0]));
	assert_int_equal(figures(p).cl_waiting, 0);
}

static void test_failed_connect_fails_whole_queue(void **state)
{
	struct fixture *f = *state;
	struct pool *p = get_pool(f, "db5", "u");
	struct pool_server *got;
	assert_int_equal(checkout(p, &f->cl[0], &got), POOL_WAIT_LAUNCH);
	checkout(p, &f->cl[1], &got);
	checkout(p, &f->cl[2], &got);
	struct pool_work work;
	pool_work_init(&work, p);
	pool_server_add(p, &f->sv[0]);
	pool_server_add(p, &f->sv[1]);
	pool_connect_failed(p, &f->sv[0], "connection refused", &work);
	pool_connect_failed(p, &f->sv[1], "connection refused", &work);
	assert_int_equal(f->sv[0].state, SV_CLOSED);
	int n = 0;
	struct list *it;
	list_for_each(it, &work.failed)
	{
		assert_ptr_equal(container_of(it, struct pool_client, node), &f->cl[n]);
		n++;
	}
	assert_int_equal(n, 3);
	struct pool_figures fig = figures(p);
	assert_int_equal(fig.sv_total, 0);
	assert_int_equal(fig.cl_waiting, 0);
	assert_int_equal(f->cl[0].handoffs_pending, 1);
	assert_int_equal(stats_read(&p->stats, ST_CONNECT_FAIL), 2);
	assert_int_equal(fig.connect_failures_in_row, 2);
	assert_string_equal(fig.last_error, "connection refused");
	/* backing off (500 ms after two failures): a new request fails fast
	 * instead of queueing behind nothing, and nothing is launched */
	int64_t now = clock_now_usec();
	assert_true(p->retry_at > now + 400000 && p->retry_at <= now + 500000);
	assert_int_equal(checkout(p, &f->cl[3], &got), POOL_UNREACHABLE);
	assert_int_equal(figures(p).cl_waiting, 0);
	/* the backoff over, the next request queues and launches again */
	p->retry_at = now - 1;
	assert_int_equal(checkout(p, &f->cl[3], &got), POOL_WAIT_LAUNCH);
	pool_connect_succeeded(p);
	fig = figures(p);
	assert_int_equal(fig.connect_failures_in_row, 0);
	assert_int_equal(p->retry_at, 0);
	assert_string_equal(fig.last_error, "");
}

static void test_launch_abandoned_fails_the_queue_too(void **state)
{
	/* Out of memory before a counted connection exists: the same failure
	 * path, so no waiter is left in a list nobody reads. */
	struct fixture *f = *state;
	struct pool *p = get_pool(f, "db5b", "u");
	struct pool_server *got;
	assert_int_equal(checkout(p, &f->cl[0], &got), POOL_WAIT_LAUNCH);
	struct pool_work work;
	pool_work_init(&work, p);
	pool_launch_abandoned(p, "out of memory", &work);
	assert_false(list_empty(&work.failed));
	assert_int_equal(f->cl[0].handoffs_pending, 1);
	assert_int_equal(figures(p).sv_total, 0);
}

static void test_max_db_connections_across_users(void **state)
{
	struct fixture *f = *state;
	struct pool *a = get_pool(f, "db6", "alice");
	struct pool *b = get_pool(f, "db6", "bob");
	struct pool_server *got;
	assert_int_equal(checkout(a, &f->cl[0], &got), POOL_WAIT_LAUNCH);
	assert_int_equal(checkout(a, &f->cl[1], &got), POOL_WAIT_LAUNCH);
	assert_int_equal(checkout(b, &f->cl[2], &got), POOL_WAIT_LAUNCH);
	/* max_db_connections = 3 reached for db6 */
	assert_int_equal(checkout(b, &f->cl[3], &got), POOL_WAIT);
	assert_int_equal(atomic_load(&a->db_limit->used), 3);
	assert_ptr_equal(a->db_limit, b->db_limit);
	connected(a, &f->sv[0]);
	struct pool_client *to;
	assert_int_equal(pool_give(a, &f->sv[0], f->w, &to), POOL_GIVE_WAITER);
	/* a closed server frees its slot, and a's waiters take it at once */
	assert_true(pool_server_closed(a, &f->sv[0]));
	assert_int_equal(figures(a).sv_total, 2);
	assert_int_equal(atomic_load(&a->db_limit->used), 3);
}

static void test_give_above_size_serves_the_queue_then_closes(void **state)
{
	struct fixture *f = *state;
	struct pool *p = get_pool(f, "db7", "u");
	struct pool_server *got;
	struct pool_client *to;
	for (int i = 0; i < 2; i++) {
		checkout(p, &f->cl[i], &got);
		connected(p, &f->sv[i]);
	}
	p->set->pool_size = 1; /* as after a reload shrank the pool */
	/* someone waits: the surplus server serves them */
	assert_int_equal(pool_give(p, &f->sv[0], f->w, &to), POOL_GIVE_WAITER);
	assert_ptr_equal(to, &f->cl[0]);
	assert_int_equal(pool_give(p, &f->sv[1], f->w, &to), POOL_GIVE_WAITER);
	/* nobody waits: it is closed instead of kept idle */
	assert_int_equal(pool_give(p, &f->sv[1], f->w, &to), POOL_GIVE_CLOSE);
	assert_null(to);
}

static void test_figures_are_the_lists(void **state)
{
	/* One source: "active" counts ACTIVE servers, whatever else the pool
	 * holds (connecting, testing, idle), in every figure it reports. */
	struct fixture *f = *state;
	struct pool *p = get_pool(f, "db8", "u");
	struct pool_server *got;
	struct pool_client *to;
	for (int i = 0; i < 3; i++)
		pool_client_join(p, &f->cl[i], f->w);
	checkout(p, &f->cl[0], &got);
	checkout(p, &f->cl[1], &got);
	connected(p, &f->sv[0]);
	pool_give(p, &f->sv[0], f->w, &to); /* cl0 active */
	struct pool_figures fig = figures(p);
	assert_int_equal(fig.sv_active, 1);
	assert_int_equal(fig.sv_login, 1); /* the second launch, counted, not started */
	assert_int_equal(fig.cl_active, 1);
	assert_int_equal(fig.cl_waiting, 1);
	assert_int_equal(fig.cl_idle, 1);
	struct pool_figures timed;
	pool_note_wait_timeout(p, clock_now_usec(), &timed);
	assert_int_equal(timed.sv_active, fig.sv_active);
	assert_int_equal(stats_read(&p->stats, ST_WAIT_TIMEOUT), 1);
	pool_client_leave(p, &f->cl[1]);
	assert_int_equal(figures(p).cl_waiting, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_same_key_same_pool, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_empty_pool_queues_and_launches_up_to_size, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_give_serves_waiters_in_arrival_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_give_prefers_a_simultaneous_waiter_on_its_own_worker, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_idle_server_is_checked_out_again, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_a_check_in_flight_does_not_queue_the_next_client, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_check_delay_zero_checks_every_time, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_leave_queue, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failed_connect_fails_whole_queue, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_launch_abandoned_fails_the_queue_too, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_max_db_connections_across_users, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_give_above_size_serves_the_queue_then_closes, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_figures_are_the_lists, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
