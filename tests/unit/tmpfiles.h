/* tests/unit/tmpfiles.h — files a unit test writes for the code under test
 * to read (configurations, auth files); every one is removed by
 * tmpfiles_teardown, which a test group uses as its teardown. Include after
 * cmocka.h. */
#ifndef PGS_TEST_TMPFILES_H
#define PGS_TEST_TMPFILES_H

#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define TMPFILES_MAX 8

static char tmp_paths[TMPFILES_MAX][64];
static int n_tmp;

static const char *write_tmp(const char *text)
{
	assert_true(n_tmp < TMPFILES_MAX);
	char *path = tmp_paths[n_tmp++];
	strcpy(path, "/tmp/pgs_unit_test_XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static int tmpfiles_teardown(void **state)
{
	(void)state;
	for (int i = 0; i < n_tmp; i++)
		unlink(tmp_paths[i]);
	n_tmp = 0;
	return 0;
}

#endif
