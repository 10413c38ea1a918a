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

static void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char line[2048];
	int n = 0, m;
	struct timespec ts;
	struct tm tm;

	if (level > log_level)
		return;
	if (log_sink == LOG_TO_SYSLOG) {
		vsyslog(syslog_prio[level], fmt, ap);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02dZ %s[%ld]: %s: ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		     tm.tm_min, tm.tm_sec, log_prog, (long)getpid(), level_names[level]);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	if (m < 0)
		m = 0;
	n += m;
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
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
