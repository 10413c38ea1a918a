/*
 * sanitizer — where the sanitizers of a SANITIZE=1 build write their reports.
 *
 * A hostgate process under a web server has its stderr in the server's error
 * log, a FastCGI stream or /dev/null, so a report written there is read by
 * nobody and the test run passes with a leak in every request. Linked into
 * hostgate-fcgi and hostgate-sync (never into libcommon.a: nothing calls
 * these functions, so an archive member holding them would never be linked),
 * this file gives ASan, UBSan and LSan a default log_path, so that every
 * report lands in a file that tests/run-integration and tests/run-all read
 * and fail on, whatever the process's stderr and environment:
 *
 *   $HOSTGATE_SANITIZER_DIR/hostgate.<program>.<pid>   when the variable is set
 *   HOSTGATE_SANITIZER_DEFAULT_DIR/hostgate.<program>.<pid>   otherwise
 *
 * The directory must exist and be writable by the process's user (the test
 * runners create it with mode 1777). ASAN_OPTIONS and the like still override
 * any of these settings. In a build without sanitizers the file is empty.
 */
#if defined(__SANITIZE_ADDRESS__)
#define HOSTGATE_HAVE_SANITIZERS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HOSTGATE_HAVE_SANITIZERS 1
#endif
#endif

#ifdef HOSTGATE_HAVE_SANITIZERS

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sanitizer/common_interface_defs.h>

#ifndef HOSTGATE_SANITIZER_DEFAULT_DIR
#define HOSTGATE_SANITIZER_DEFAULT_DIR "/tmp/hostgate-sanitizer"
#endif

/* Called by the sanitizer runtimes (weak definitions there), so not static. */
const char *__asan_default_options(void);
const char *__ubsan_default_options(void);
const char *__lsan_default_options(void);

/*
 * The runtimes call these while they initialise, before main and before the
 * shadow memory exists: no instrumented code, no libc.
 */
#define UNINSTRUMENTED __attribute__((no_sanitize("address", "undefined"), used))

/* one buffer per runtime: none of them has to copy its string at once */
#define OPTIONS_MAX 1024
static char asan_options[OPTIONS_MAX], ubsan_options[OPTIONS_MAX], lsan_options[OPTIONS_MAX];

UNINSTRUMENTED
static size_t append(char *buf, size_t at, const char *s)
{
	while (*s && at + 1 < OPTIONS_MAX)
		buf[at++] = *s++;
	buf[at] = '\0';
	return at;
}

/* The value of HOSTGATE_SANITIZER_DIR, or NULL when it is unset or unusable
 * (empty, relative, or too long for a report's file name). */
static const char *dir_from_env(void)
{
	const char *v = getenv("HOSTGATE_SANITIZER_DIR");

	if (!v || v[0] != '/' || strlen(v) > 512)
		return NULL;
	return v;
}

/*
 * The options are read before libc has set up the environment (environ is
 * still empty then), so the directory the environment names is applied
 * here, before main, once libc is up. The runtimes open the report file only
 * when they have something to report.
 */
__attribute__((constructor))
static void sanitizer_dir_from_env(void)
{
	static char path[600];
	const char *dir = dir_from_env();

	if (!dir)
		return;
	snprintf(path, sizeof(path), "%s/hostgate", dir);
	__sanitizer_set_report_path(path);
}

/*
 * halt_on_error: the first report ends the process, so that a request never
 * continues on corrupted memory and the report is the last thing it wrote.
 * exitcode 86 ("sanitizer"): distinct from the programs' own 0, 1 and 2.
 * log_exe_name: hostgate-fcgi and hostgate-sync tell their files apart.
 */
UNINSTRUMENTED
static const char *build(char *buf, const char *extra)
{
	size_t at = 0;

	at = append(buf, at, "log_path=");
	at = append(buf, at, HOSTGATE_SANITIZER_DEFAULT_DIR);
	at = append(buf, at, "/hostgate:log_exe_name=1:halt_on_error=1:exitcode=86");
	append(buf, at, extra);
	return buf;
}

UNINSTRUMENTED
const char *__asan_default_options(void)
{
	return build(asan_options, ":detect_leaks=1:abort_on_error=0");
}

UNINSTRUMENTED
const char *__ubsan_default_options(void)
{
	return build(ubsan_options, ":print_stacktrace=1");
}

UNINSTRUMENTED
const char *__lsan_default_options(void)
{
	return build(lsan_options, "");
}

#endif /* HOSTGATE_HAVE_SANITIZERS */
