/* log.c — timestamped log lines, safe from every thread: each line is
 * formatted into a local buffer and written with one write(2), so lines
 * from different workers never interleave. */
#include "log.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static atomic_bool debug_on; /* set by reload on the main thread, read everywhere */
static int log_fd = -1;
static pthread_mutex_t log_file_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"DEBUG", "INFO", "WARNING", "ERROR", "FATAL"};

void log_set_debug(bool on)
{
	atomic_store_explicit(&debug_on, on, memory_order_relaxed);
}

bool log_enabled(enum log_level level)
{
	return level != LOG_DEBUG || atomic_load_explicit(&debug_on, memory_order_relaxed);
}

bool log_set_file(const char *path)
{
	int fd = -1;
	if (path != NULL && path[0] != '\0') {
		fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (fd < 0)
			return false;
	}
	pthread_mutex_lock(&log_file_lock);
	if (log_fd >= 0)
		close(log_fd);
	log_fd = fd;
	pthread_mutex_unlock(&log_file_lock);
	return true;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char line[2048];
	struct timeval tv;
	struct tm tm;
	size_t n;
	va_list ap;

	if (!log_enabled(level))
		return;
	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%d %H:%M:%S", &tm);
	n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03d %d %s ", (int)(tv.tv_usec / 1000),
	                      (int)getpid(), level_names[level]);
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += (size_t)m;
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, n);
	(void)w;
	pthread_mutex_lock(&log_file_lock);
	if (log_fd >= 0) {
		w = write(log_fd, line, n);
		(void)w;
	}
	pthread_mutex_unlock(&log_file_lock);
}
