/* test_pool.c — the pool's state machine: checkout, wait queue order,
 * hand-back, limits, failure of a whole queue, and the counters that
 * follow every move. */
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

#include "client.h"
#include "config.h"
#include "pool.h"
#include "util/clock.h"
#include "server.h"
#include "worker.h"

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
	struct worker w;
	struct client cl[8];
	struct server sv[8];
	int fds[8][2];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	f->cfg = load("[pgsluice]\ndefault_pool_size = 2\nserver_connect_concurrency = 4\n"
	              "max_db_connections = 3\n[databases]\n* = host=127.0.0.1 port=5432\n");
	f->w.base = event_base_new();
	list_init(&f->w.servers);
	for (int i = 0; i < 8; i++) {
		f->cl[i].id = (uint64_t)i;
		f->cl[i].worker = &f->w;
		list_init(&f->cl[i].wait_node);
		f->sv[i].id = (uint64_t)i;
		f->sv[i].worker = &f->w;
		list_init(&f->sv[i].pool_node);
		list_init(&f->sv[i].worker_node);
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, f->fds[i]), 0);
		conn_init(&f->sv[i].conn, f->fds[i][0]);
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	for (int i = 0; i < 8; i++) {
		conn_detach(&f->sv[i].conn);
		if (f->sv[i].conn.ev_read)
			event_free(f->sv[i].conn.ev_read);
		if (f->sv[i].conn.ev_write)
			event_free(f->sv[i].conn.ev_write);
		msgbuf_free(&f->sv[i].conn.out);
		close(f->fds[i][0]);
		close(f->fds[i][1]);
	}
	pool_registry_destroy(false);
	event_base_free(f->w.base);
	config_free(f->cfg);
	free(f);
	return 0;
}

static struct pool *get_pool(struct fixture *f, const char *db, const char *user)
{
	struct params none = PARAMS_INIT;
	struct pool *p = pool_get(f->cfg, db, user, &none);
	assert_non_null(p);
	return p;
}

static void test_same_key_same_pool(void **state)
{
	struct fixture *f = *state;
	struct params a = PARAMS_INIT, b = PARAMS_INIT;
	params_set(&a, "search_path", "x");
	params_set(&b, "search_path", "y");
	struct pool *p1 = pool_get(f->cfg, "db", "u", &a);
	struct pool *p2 = pool_get(f->cfg, "db", "u", &a);
	struct pool *p3 = pool_get(f->cfg, "db", "u", &b);
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
	struct server *got;
	assert_int_equal(pool_checkout(p, &f->cl[0], &f->w, &got), POOL_WAIT_LAUNCH);
	assert_int_equal(pool_checkout(p, &f->cl[1], &f->w, &got), POOL_WAIT_LAUNCH);
	/* pool_size is 2: the third waits without a new connection */
	assert_int_equal(pool_checkout(p, &f->cl[2], &f->w, &got), POOL_WAIT);
	assert_int_equal(p->n_servers, 2);
	assert_int_equal(p->n_connecting, 2);
	assert_int_equal(p->n_waiting, 3);
	assert_true(f->cl[0].queued && f->cl[2].queued);
}

static void test_give_serves_waiters_in_arrival_order(void **state)
{
	struct fixture *f = *state;
	struct pool *p = get_pool(f, "db2", "u");
	struct server *got;
	for (int i = 0; i < 3; i++)
		pool_checkout(p, &f->cl[i], &f->w, &got);
	bool close_it;
	for (int i = 0; i < 3; i++) {
		f->sv[i].pool = p;
		struct client *cl = pool_give(p, &f->sv[i], &f->w, &close_it);
		assert_false(close_it);
		assert_ptr_equal(cl, &f->cl[i]);
		assert_ptr_equal(f->cl[i].server, &f->sv[i]);
		assert_ptr_equal(f->sv[i].client, &f->cl[i]);
		assert_false(f->cl[i].queued);
		assert_int_equal(f->sv[i].state, SV_ACTIVE);
	}
	assert_int_equal(p->n_waiting, 0);
}

static void test_give_prefers_a_simultaneous_waiter_on_its_own_worker(void **state)
{
	struct fixture *f = *state;
	struct pool *p = get_pool(f, "db2w", "u");
	struct worker other;
	memset(&other, 0, sizeof(other));
	struct server *got;
	/* cl0 (other worker) first; cl1 (this worker) 0.2 ms later; cl2 (other)
	 * and cl3 (this one) 4 ms after cl0. */
	const int64_t started[4] = {1000000, 1000200, 1004000, 1005000};
	for (int i = 0; i < 4; i++) {
		f->cl[i].worker = i % 2 == 0 ? &other : &f->w;
		f->cl[i].wait_started = started[i];
		pool_checkout(p, &f->cl[i], f->cl[i].worker, &got);
	}
	bool close_it;
	for (int i = 0; i < 4; i++)
		f->sv[i].pool = p;
	/* Returned on this worker: cl1 arrived together with cl0 and needs no hand-off. */
	assert_ptr_equal(pool_give(p, &f->sv[0], &f->w, &close_it), &f->cl[1]);
	assert_int_equal(f->cl[1].handoffs_pending, 0);
	/* cl3 is on this worker too, but 4 ms behind cl0: cl0 is served first. */
	assert_ptr_equal(pool_give(p, &f->sv[1], &f->w, &close_it), &f->cl[0]);
	assert_int_equal(f->cl[0].handoffs_pending, 1);
	assert_ptr_equal(pool_give(p, &f->sv[2], &other, &close_it), &f->cl[2]);
	assert_ptr_equal(pool_give(p, &f->sv[3], &other, &close_it), &f->cl[3]);
	assert_int_equal(p->n_waiting, 0);
	for (int i = 0; i < 4; i++)
		f->cl[i].worker = &f->w;
}

static void test_idle_server_is_checked_out_again(void **state)
{
	struct fixture *f = *state;
	struct pool *p = get_pool(f, "db3", "u");
	struct server *got;
	assert_int_equal(pool_checkout(p, &f->cl[0], &f->w, &got), POOL_WAIT_LAUNCH);
	pthread_mutex_lock(&p->lock);
	p->n_connecting--; /* what login_done does */
	pthread_mutex_unlock(&p->lock);
	f->sv[0].pool = p;
	bool close_it;
	assert_ptr_equal(pool_give(p, &f->sv[0], &f->w, &close_it), &f->cl[0]);
	f->cl[0].server = NULL;
	f->sv[0].client = NULL;
	/* the client is done: the server goes idle with its watch armed */
	assert_null(pool_give(p, &f->sv[0], &f->w, &close_it));
	assert_int_equal(f->sv[0].state, SV_IDLE);
	assert_int_equal(p->n_idle, 1);
	assert_true(f->sv[0].conn.reading);
	assert_int_equal(pool_checkout(p, &f->cl[1], &f->w, &got), POOL_GOT_SERVER);
	assert_ptr_equal(got, &f->sv[0]);
	assert_int_equal(p->n_idle, 0);
	assert_int_equal(p->n_servers, 1);
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
	struct server *got;
	bool close_it;
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pool_checkout(p, &f->cl[i], &f->w, &got), POOL_WAIT_LAUNCH);
		pthread_mutex_lock(&p->lock);
		p->n_connecting--;
		pthread_mutex_unlock(&p->lock);
		f->sv[i].pool = p;
		assert_ptr_equal(pool_give(p, &f->sv[i], &f->w, &close_it), &f->cl[i]);
	}
	for (int i = 0; i < 2; i++) {
		f->cl[i].server = NULL;
		f->sv[i].client = NULL;
		assert_null(pool_give(p, &f->sv[i], &f->w, &close_it));
		f->sv[i].idle_since -= p->set->check_delay + 1000000; /* stale */
	}
	assert_int_equal(p->n_idle, 2);
	assert_int_equal(pool_checkout(p, &f->cl[2], &f->w, &got), POOL_WAIT_CHECK);
	assert_int_equal(got->state, SV_TESTING);
	assert_int_equal(p->n_testing, 1);
	assert_int_equal(p->n_waiting, 1);
	/* The next client takes (and checks) the other idle server. */
	assert_int_equal(pool_checkout(p, &f->cl[3], &f->w, &got), POOL_WAIT_CHECK);
	assert_int_equal(p->n_testing, 2);
	assert_int_equal(p->n_idle, 0);
	/* A check that ends hands its server to the first waiter. */
	assert_ptr_equal(pool_give(p, got, &f->w, &close_it), &f->cl[2]);
	assert_int_equal(p->n_testing, 1);
	assert_int_equal(p->n_waiting, 1);
}

static void test_check_delay_zero_checks_every_time(void **state)
{
	/* server_check_delay = 0: checked before every use, even when the
	 * server went idle after the checking-out callback began (its
	 * idle_since stamped by another worker's later clock reading). */
	struct fixture *f = *state;
	struct pool *p = get_pool(f, "db3z", "u");
	p->set->check_delay = 0;
	struct server *got;
	bool close_it;
	assert_int_equal(pool_checkout(p, &f->cl[0], &f->w, &got), POOL_WAIT_LAUNCH);
	pthread_mutex_lock(&p->lock);
	p->n_connecting--;
	pthread_mutex_unlock(&p->lock);
	f->sv[0].pool = p;
	assert_ptr_equal(pool_give(p, &f->sv[0], &f->w, &close_it), &f->cl[0]);
	f->cl[0].server = NULL;
	f->sv[0].client = NULL;
	assert_null(pool_give(p, &f->sv[0], &f->w, &close_it));
	f->sv[0].idle_since = clock_now_usec() + 1000000;
	assert_int_equal(pool_checkout(p, &f->cl[1], &f->w, &got), POOL_WAIT_CHECK);
	assert_ptr_equal(got, &f->sv[0]);
	assert_int_equal(got->state, SV_TESTING);
}

static void test_leave_queue(void **state)
{
	struct fixture *f = *state;
	struct pool *p = get_pool(f, "db4", "u");
	struct server *got;
	pool_checkout(p, &f->cl[0], &f->w, &got);
	assert_true(pool_leave_queue(p, &f->cl[0]));
	assert_false(pool_leave_queue(p, &f->cl[0]));
	assert_int_equal(p->n_waiting, 0);
}

static void test_failed_connect_fails_whole_queue(void **state)
{
	struct fixture *f = *state;
	struct pool *p = get_pool(f, "db5", "u");
	struct server *got;
	assert_int_equal(pool_checkout(p, &f->cl[0], &f->w, &got), POOL_WAIT_LAUNCH);
	pool_checkout(p, &f->cl[1], &f->w, &got);
	pool_checkout(p, &f->cl[2], &f->w, &got);
	struct list failed;
	list_init(&failed);
	pool_connect_failed(p, &f->sv[0], "connection refused", &failed);
	pool_connect_failed(p, &f->sv[1], "connection refused", &failed);
	int n = 0;
	struct list *it;
	list_for_each(it, &failed)
	{
		assert_ptr_equal(container_of(it, struct client, wait_node), &f->cl[n]);
		n++;
	}
	assert_int_equal(n, 3);
	assert_int_equal(p->n_servers, 0);
	assert_int_equal(p->n_waiting, 0);
	assert_int_equal(f->cl[0].handoffs_pending, 1);
	assert_int_equal(stats_read(&p->stats, ST_CONNECT_FAIL), 2);
	assert_int_equal(p->connect_failures_in_row, 2);
	assert_string_equal(p->last_connect_error, "connection refused");
	/* backing off (500 ms after two failures): a new request fails fast
	 * instead of queueing behind nothing, and nothing is launched */
	int64_t now = clock_now_usec();
	assert_true(p->retry_at > now + 400000 && p->retry_at <= now + 500000);
	assert_int_equal(pool_checkout(p, &f->cl[3], &f->w, &got), POOL_UNREACHABLE);
	assert_int_equal(p->n_waiting, 0);
	/* the backoff over, the next request queues and launches again */
	pthread_mutex_lock(&p->lock);
	p->retry_at = now - 1;
	pthread_mutex_unlock(&p->lock);
	assert_int_equal(pool_checkout(p, &f->cl[3], &f->w, &got), POOL_WAIT_LAUNCH);
	pool_connect_succeeded(p);
	assert_int_equal(p->connect_failures_in_row, 0);
	assert_int_equal(p->retry_at, 0);
	assert_null(p->last_connect_error);
}

static void test_max_db_connections_across_users(void **state)
{
	struct fixture *f = *state;
	struct pool *a = get_pool(f, "db6", "alice");
	struct pool *b = get_pool(f, "db6", "bob");
	struct server *got;
	assert_int_equal(pool_checkout(a, &f->cl[0], &f->w, &got), POOL_WAIT_LAUNCH);
	assert_int_equal(pool_checkout(a, &f->cl[1], &f->w, &got), POOL_WAIT_LAUNCH);
	assert_int_equal(pool_checkout(b, &f->cl[2], &f->w, &got), POOL_WAIT_LAUNCH);
	/* max_db_connections = 3 reached for db6 */
	assert_int_equal(pool_checkout(b, &f->cl[3], &f->w, &got), POOL_WAIT);
	assert_int_equal(atomic_load(&a->db_limit->used), 3);
	assert_ptr_equal(a->db_limit, b->db_limit);
	f->sv[0].state = SV_ACTIVE;
	/* a closed server frees its slot, and a's waiters take it at once */
	assert_true(pool_server_closed(a, &f->sv[0]));
	assert_int_equal(a->n_servers, 2);
	assert_int_equal(atomic_load(&a->db_limit->used), 3);
}

static void test_give_above_size_serves_the_queue_then_closes(void **state)
{
	struct fixture *f = *state;
	struct pool *p = get_pool(f, "db7", "u");
	struct server *got;
	pool_checkout(p, &f->cl[0], &f->w, &got);
	pthread_mutex_lock(&p->lock);
	p->n_servers = 3; /* as after a reload shrank the pool, or with reserve connections */
	pthread_mutex_unlock(&p->lock);
	bool close_it;
	/* someone waits: the surplus server serves them */
	assert_ptr_equal(pool_give(p, &f->sv[0], &f->w, &close_it), &f->cl[0]);
	assert_false(close_it);
	/* nobody waits: it is closed instead of kept idle */
	assert_null(pool_give(p, &f->sv[1], &f->w, &close_it));
	assert_true(close_it);
	pthread_mutex_lock(&p->lock);
	p->n_servers = 1;
	pthread_mutex_unlock(&p->lock);
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
	    cmocka_unit_test_setup_teardown(test_max_db_connections_across_users, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_give_above_size_serves_the_queue_then_closes, setup,
	                                    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
