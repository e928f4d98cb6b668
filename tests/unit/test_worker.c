/* test_worker.c — a worker's inbox: messages posted from several threads at
 * once all reach the running loop, in order per sender, and none is left
 * without a wake-up (one eventfd write per batch, see worker_post). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/thread.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "runtime.h"
#include "worker.h"

#define SENDERS 4
#define POSTS_PER_SENDER 20000

struct tally {
	long calls;         /* only the worker's thread writes it */
	long last[SENDERS]; /* the last sequence number seen from each sender */
	bool out_of_order;
};

struct post {
	struct tally *tally;
	int sender;
	long seq;
};

static void count_call(struct worker *w, void *arg)
{
	struct post *p = arg;
	(void)w;
	p->tally->calls++;
	if (p->seq != p->tally->last[p->sender] + 1)
		p->tally->out_of_order = true;
	p->tally->last[p->sender] = p->seq;
	free(p);
}

struct sender {
	struct worker *w;
	struct tally *tally;
	int id;
};

static void *send_many(void *arg)
{
	struct sender *s = arg;
	for (long i = 1; i <= POSTS_PER_SENDER; i++) {
		struct post *p = malloc(sizeof(*p));
		p->tally = s->tally;
		p->sender = s->id;
		p->seq = i;
		if (!worker_call_later(s->w, count_call, p))
			free(p);
		if (i % 500 == 0)
			usleep(5000); /* the loop drains and sleeps now and then; ticks run meanwhile */
	}
	return NULL;
}

/* A configuration generation for the worker's ticks (defaults). */
static struct cfg_gen *default_gen(void)
{
	char path[] = "/tmp/test_worker_XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	static const char text[] = "[pgsluice]\n[databases]\n";
	assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
	close(fd);
	struct cfg_gen *g = calloc(1, sizeof(*g));
	assert_non_null(g);
	g->cfg = config_load(path, NULL, NULL);
	unlink(path);
	assert_non_null(g->cfg);
	atomic_init(&g->refs, 1);
	g->number = 1;
	return g;
}

static void on_alarm(int sig)
{
	(void)sig;
	static const char msg[] = "test_worker: the loop stopped taking messages (a lost wake-up)\n";
	(void)!write(2, msg, sizeof(msg) - 1);
	_exit(1);
}

static void test_posts_from_many_threads_all_arrive(void **state)
{
	(void)state;
	signal(SIGALRM, on_alarm);
	alarm(30);
	struct worker w;
	assert_true(worker_init(&w, 0, default_gen()));
	struct tally tally;
	memset(&tally, 0, sizeof(tally));
	assert_true(worker_start(&w));
	pthread_t t[SENDERS];
	struct sender s[SENDERS];
	for (int i = 0; i < SENDERS; i++) {
		s[i] = (struct sender){&w, &tally, i};
		assert_int_equal(pthread_create(&t[i], NULL, send_many, &s[i]), 0);
	}
	for (int i = 0; i < SENDERS; i++)
		pthread_join(t[i], NULL);
	/* Posted after every sender finished: the loop stops after the rest. */
	worker_post(&w, worker_msg_new(WMSG_STOP));
	worker_join(&w);
	alarm(0);
	assert_int_equal(tally.calls, (long)SENDERS * POSTS_PER_SENDER);
	assert_false(tally.out_of_order);
	worker_close_all(&w);
	worker_destroy(&w);
}

int main(void)
{
	evthread_use_pthreads();
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_posts_from_many_threads_all_arrive),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
