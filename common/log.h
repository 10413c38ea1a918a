/*
 * log — one line per event, to stderr (the web server's error log for the app)
 * or to syslog (the agent, when asked).
 *
 *   log_init("hostgate-fcgi", LOG_TO_STDERR);
 *   log_warn("cannot open '%s': %s", path, strerror(errno));
 *   fatal("bad option '%s'", arg);            start-up only: logs and exits 2
 *
 * Messages are lower case, no full stop, subjects in single quotes. A line is
 * written with one write(2) so that lines of concurrent processes never mix.
 * A control byte in a message (from text a peer sent: a Redis error, a
 * backend's answer) is written as \xNN, so a message is one line whatever
 * its arguments hold.
 * Never pass a secret (key, token, password) to these functions.
 */
#ifndef HOSTGATE_LOG_H
#define HOSTGATE_LOG_H

#include <stddef.h>

enum log_sink { LOG_TO_STDERR, LOG_TO_SYSLOG };
enum log_level { LOG_LEVEL_ERR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* Sets the program name shown in each line and where lines go. Never fails. */
void log_init(const char *prog, enum log_sink sink);
/* While set, stderr lines go to fn instead (the app sends them down the
 * FastCGI request's error stream, which every web server writes to its own
 * error log; a bin-path child's stderr is often /dev/null). NULL restores
 * stderr. fn gets the whole line, newline included. */
void log_set_hook(void (*fn)(void *ctx, const char *line, size_t len), void *ctx);
/* Lines above this level are dropped (default LOG_LEVEL_INFO). */
void log_set_level(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Logs at error level and exits with status 2 (the "cannot run" exit code). */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#define log_err(...)   log_msg(LOG_LEVEL_ERR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
