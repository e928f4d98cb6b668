/* main.c — command line, configuration load and reload, signals, the
 * workers' start and stop, and the main thread's janitor (idle timeouts,
 * lifetimes, connections for waiters held back by limits). */
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "auth/userlist.h"
#include "config.h"
#include "doctor.h"
#include "listener.h"
#include "http.h"
#include "janitor.h"
#include "log.h"
#include "pool.h"
#include "report.h"
#include "reload.h"
#include "runtime.h"
#include "server.h"
#include "util/clock.h"
#include "worker.h"

static struct event_base *main_base;
static int draining; /* SIGTERM: 1 while transactions finish */
static int64_t drain_deadline;

static void report_to_stderr(void *arg, enum config_severity sev, const char *line)
{
	int *errors = arg;
	if (sev == CONFIG_ERROR && errors != NULL)
		(*errors)++;
	fprintf(stderr, "%s: %s\n", sev == CONFIG_ERROR ? "error" : "warning", line);
}

static void report_to_log(void *arg, enum config_severity sev, const char *line)
{
	(void)arg;
	log_msg(sev == CONFIG_ERROR ? LOG_ERROR : LOG_WARNING, "config: %s", line);
}

/* Load config and its auth_file; NULL with the reason reported. */
static struct cfg_gen *load_generation(const char *path, config_report_fn report, void *arg)
{
	struct config *cfg = config_load(path, report, arg);
	if (cfg == NULL)
		return NULL;
	char err[300];
	struct cfg_gen *g = runtime_gen_load(cfg, err, sizeof(err));
	if (g == NULL)
		report(arg, CONFIG_ERROR, err);
	return g;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: pgsluice [OPTIONS] CONFIG.ini\n"
	           "  pgsluice --check CONFIG.ini   validate the configuration, exit 0/1\n"
	           "  pgsluice --check --online CONFIG.ini\n"
	           "                                also log in to each server and lint the\n"
	           "                                configuration against its settings, exit 0/1\n"
	           "  pgsluice --version | --help\n"
	           "options:\n"
	           "  -v, --verbose                 debug logging\n");
}

static void reload(const char *path)
{
	log_msg(LOG_INFO, "reloading %s", path);
	struct cfg_gen *g = load_generation(path, report_to_log, NULL);
	if (g == NULL) {
		log_msg(LOG_ERROR, "reload failed: configuration has errors; keeping the previous one");
		return;
	}
	unsigned long number = g->number;
	reload_apply(g);
	struct cfg_gen *cur = runtime_gen_acquire();
	pool_prewarm(cur->cfg, cur->users);
	runtime_gen_release(cur);
	log_msg(LOG_INFO, "reload done (generation %lu)", number);
}

static const char *config_path;

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	(void)arg;
	if (sig == SIGHUP) {
		reload(config_path);
	} else if (sig == SIGTERM && !draining) {
		log_msg(LOG_INFO, "SIGTERM: not accepting new clients; draining");
		draining = 1;
		atomic_store(&rt.shutting_down, true);
		struct cfg_gen *g = runtime_gen_acquire();
		drain_deadline = clock_now_usec() + g->cfg->shutdown_timeout;
		runtime_gen_release(g);
		for (int i = 0; i < rt.n_workers; i++) {
			struct worker_msg *m = worker_msg_new(WMSG_SHUTDOWN);
			if (m)
				worker_post(&rt.workers[i], m);
		}
	} else {
		log_msg(LOG_INFO, "signal %d: stopping", (int)sig);
		event_base_loopbreak(main_base);
	}
}

/* After each janitor round: a drain ends when the last client left or at shutdown_timeout. */
static void drain_check(int64_t now)
{
	if (draining && (atomic_load(&rt.n_clients) == 0 || now >= drain_deadline))
		event_base_loopbreak(main_base);
}

static bool write_pidfile(const char *path)
{
	if (path == NULL || path[0] == '\0')
		return true;
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return false;
	fprintf(f, "%d\n", (int)getpid());
	return fclose(f) == 0;
}

int main(int argc, char **argv)
{
	bool check = false, online = false, verbose = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--check") == 0 || strcmp(a, "-C") == 0) {
			check = true;
		} else if (strcmp(a, "--online") == 0) {
			online = true;
		} else if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
			printf("pgsluice %s\n", PGSLUICE_VERSION);
			return 0;
		} else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
			verbose = true;
		} else if (a[0] == '-') {
			fprintf(stderr, "pgsluice: unknown option %s\n", a);
			usage(stderr);
			return 2;
		} else if (config_path == NULL) {
			config_path = a;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (config_path == NULL || (online && !check)) {
		usage(stderr);
		return 2;
	}
	int errors = 0;
	if (check) {
		struct cfg_gen *g = load_generation(config_path, report_to_stderr, &errors);
		if (g == NULL) {
			fprintf(stderr, "%s: configuration is not valid\n", config_path);
			return 1;
		}
		printf("%s: configuration is valid (%d database entries, %d user entries)\n", config_path,
		       g->cfg->n_dbs + (g->cfg->fallback_db != NULL), g->cfg->n_users);
		int status = online ? doctor_check_online(g->cfg, g->users, stdout) : 0;
		runtime_gen_release(g);
		return status;
	}

	struct cfg_gen *g = load_generation(config_path, report_to_stderr, &errors);
	if (g == NULL) {
		fprintf(stderr, "pgsluice: cannot start: %s has errors\n", config_path);
		return 1;
	}
	const struct config *cfg = g->cfg;
	log_set_debug(verbose || cfg->verbose);
	if (cfg->logfile != NULL && !log_set_file(cfg->logfile)) {
		fprintf(stderr, "pgsluice: cannot open logfile %s: %s\n", cfg->logfile, strerror(errno));
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	srandom((unsigned)(getpid() ^ clock_now_usec()));
	if (evthread_use_pthreads() != 0) {
		fprintf(stderr, "pgsluice: libevent has no thread support\n");
		return 1;
	}
	runtime_gen_publish(g);
	rt.n_workers = cfg->workers > 0 ? cfg->workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (rt.n_workers < 1)
		rt.n_workers = 1;
	stats_set_worker_threads(rt.n_workers);
	client_set_console(&admin_console);
	rt.workers = calloc((size_t)rt.n_workers, sizeof(struct worker));
	main_base = event_base_new();
	if (rt.workers == NULL || main_base == NULL)
		return 1;
	for (int i = 0; i < rt.n_workers; i++) {
		char err[300] = "cannot create the event loop";
		if (!worker_init(&rt.workers[i], i, runtime_gen_acquire()) ||
		    !janitor_start_worker(&rt.workers[i]) ||
		    !listener_setup(&rt.workers[i], cfg, i == 0, err, sizeof(err))) {
			fprintf(stderr, "pgsluice: %s\n", err);
			return 1;
		}
	}
	char http_err[300];
	if (!http_start(main_base, cfg, http_err, sizeof(http_err))) {
		fprintf(stderr, "pgsluice: %s\n", http_err);
		return 1;
	}
	if (!write_pidfile(cfg->pidfile)) {
		fprintf(stderr, "pgsluice: cannot write pidfile %s\n", cfg->pidfile);
		return 1;
	}
	struct event *sig_hup = evsignal_new(main_base, SIGHUP, signal_cb, NULL);
	struct event *sig_term = evsignal_new(main_base, SIGTERM, signal_cb, NULL);
	struct event *sig_int = evsignal_new(main_base, SIGINT, signal_cb, NULL);
	struct event *janitor = janitor_start_main(main_base, drain_check);
	evsignal_add(sig_hup, NULL);
	evsignal_add(sig_term, NULL);
	evsignal_add(sig_int, NULL);
	if (janitor == NULL)
		return 1;
	pool_prewarm(cfg, g->users);
	for (int i = 0; i < rt.n_workers; i++)
		worker_start(&rt.workers[i]);
	log_msg(LOG_INFO, "pgsluice %s listening on %s:%d with %d workers", PGSLUICE_VERSION,
	        cfg->listen_addr ? cfg->listen_addr : "-", cfg->listen_port, rt.n_workers);

	event_base_dispatch(main_base);

	for (int i = 0; i < rt.n_workers; i++) {
		struct worker_msg *m = worker_msg_new(WMSG_STOP);
		if (m)
			worker_post(&rt.workers[i], m);
	}
	for (int i = 0; i < rt.n_workers; i++)
		worker_join(&rt.workers[i]);
	http_stop();
	struct cfg_gen *last = runtime_gen_acquire();
	listener_cleanup(last->cfg);
	if (last->cfg->pidfile)
		unlink(last->cfg->pidfile);
	runtime_gen_release(last);
	for (int i = 0; i < rt.n_workers; i++)
		worker_close_all(&rt.workers[i]);
	/* Idle servers' events live on the workers' bases: free them first. */
	pool_registry_destroy(server_free_idle);
	for (int i = 0; i < rt.n_workers; i++)
		worker_destroy(&rt.workers[i]);
	event_free(sig_hup);
	event_free(sig_term);
	event_free(sig_int);
	event_free(janitor);
	event_base_free(main_base);
	free(rt.workers);
	runtime_gen_publish(NULL);
	libevent_global_shutdown();
	log_msg(LOG_INFO, "stopped");
	return 0;
}
