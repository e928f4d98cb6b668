/* util/assert.h — PGS_ASSERT: an impossible state stops the process in
 * debug and sanitizer builds (PGS_ASSERTIONS, set by the Makefile when
 * SANITIZE or DEBUG is given) and costs nothing in a release build. */
#ifndef PGS_UTIL_ASSERT_H
#define PGS_UTIL_ASSERT_H

#ifdef PGS_ASSERTIONS
#include <stdio.h>
#include <stdlib.h>
#define PGS_ASSERT(cond)                                                                                     \
	((cond) ? (void)0                                                                                    \
	        : (fprintf(stderr, "pgsluice: assertion failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__),   \
	           abort()))
#else
#define PGS_ASSERT(cond) ((void)sizeof(!(cond))) /* not evaluated */
#endif

#endif
