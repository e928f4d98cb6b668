/* log.h — one-line log records to stderr (and logfile when set).
 * Exports: log_msg() and the level enum; client/server wrappers live in
 *          client.h and server.h so each line starts with the peer's identity.
 * Never: blocks on anything but the write of the line itself. */
#ifndef PGS_LOG_H
#define PGS_LOG_H

#include <stdbool.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERROR, LOG_FATAL };

void log_set_debug(bool on);
/* Also append to this file (NULL: stderr only). Returns false if it cannot be opened. */
bool log_set_file(const char *path);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool log_enabled(enum log_level level);

#endif
