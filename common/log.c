#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static const char *log_prog = "hostgate";
static enum log_sink log_sink = LOG_TO_STDERR;
static enum log_level log_level = LOG_LEVEL_INFO;
static void (*log_hook)(void *, const char *, size_t);
static void *log_hook_ctx;

static const char *const level_names[] = { "error", "warning", "info", "debug" };
static const int syslog_prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

void log_init(const char *prog, enum log_sink sink)
{
	log_prog = prog;
	log_sink = sink;
	if (sink == LOG_TO_SYSLOG)
		openlog(prog, LOG_PID, LOG_DAEMON);
}

void log_set_hook(void (*fn)(void *ctx, const char *line, size_t len), void *ctx)
{
	log_hook = fn;
	log_hook_ctx = ctx;
}

void log_set_level(enum log_level level)
{
	log_level = level;
}

/* Appends msg to line (from n, within cap, room left for the newline) with
 * each control byte as \xNN: text from a peer (a Redis error, a backend's
 * answer) never starts a line of its own or reaches a terminal raw. */
static int put_escaped(char *line, int n, int cap, const char *msg)
{
	for (; *msg && n < cap - 1; msg++) {
		unsigned char c = (unsigned char)*msg;

		if (c >= 0x20 && c != 0x7f) {
			line[n++] = (char)c;
		} else if (n + 4 < cap) {
			snprintf(line + n, 5, "\\x%02x", c);
			n += 4;
		} else {
			break;
		}
	}
	return n;
}

static void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char msg[2048], line[2048];
	int n = 0;
	struct timespec ts;
	struct tm tm;

	if (level > log_level)
		return;
	if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
		msg[0] = '\0';
	if (log_sink == LOG_TO_SYSLOG) {
		line[put_escaped(line, 0, (int)sizeof(line), msg)] = '\0';
		syslog(syslog_prio[level], "%s", line);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02dZ %s[%ld]: %s: ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		     tm.tm_min, tm.tm_sec, log_prog, (long)getpid(), level_names[level]);
	n = put_escaped(line, n, (int)sizeof(line), msg);
	line[n++] = '\n';
	if (log_hook) {
		log_hook(log_hook_ctx, line, (size_t)n);
		return;
	}
	/* one write per line: concurrent processes share this descriptor */
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LEVEL_ERR, fmt, ap);
	va_end(ap);
	exit(2);
}
