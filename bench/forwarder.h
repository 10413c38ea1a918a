/*
 * forwarder.h — what bench/bare-forwarder.c and bench/event-forwarder.c share:
 * their command line, the supervisor that forks their workers, and the
 * Content-Type they copy from the upstream's answer. Static functions: each
 * program is one file compiled on its own by the benchmark scripts.
 */
#ifndef HOSTGATE_BENCH_FORWARDER_H
#define HOSTGATE_BENCH_FORWARDER_H

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_WORKERS 64

/* BARE_UPSTREAM, BARE_MOUNT ("" when unset), BARE_CAFILE (NULL: libcurl's
 * default CAs), set by forwarder_args */
static const char *upstream, *mount, *cafile;

/* Copies the value of a "Content-Type:" header line (LEN bytes at BUF, as
 * libcurl hands them over) into OUT; other lines, and values that do not
 * fit, leave OUT as it is. */
static void header_ctype(const char *buf, size_t len, char *out, size_t outsz)
{
	size_t v = 13, e = len;

	if (len <= 13 || strncasecmp(buf, "Content-Type:", 13) != 0)
		return;
	while (v < e && buf[v] == ' ')
		v++;
	while (e > v && (buf[e - 1] == '\r' || buf[e - 1] == '\n'))
		e--;
	if (e - v < outsz) {
		memcpy(out, buf + v, e - v);
		out[e - v] = '\0';
	}
}

/* --listen unix:PATH [--workers N], and the environment above: 0, or -1
 * after a message on stderr. *workers keeps its default unless given. */
static int forwarder_args(int argc, char **argv, const char *name, const char **listen_addr,
			  long *workers)
{
	*listen_addr = NULL;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--listen") == 0) {
			*listen_addr = argv[i + 1];
		} else if (strcmp(argv[i], "--workers") == 0) {
			char *end;

			*workers = strtol(argv[i + 1], &end, 10);
			if (*end || *workers < 1 || *workers > MAX_WORKERS) {
				fprintf(stderr, "%s: bad --workers '%s'\n", name, argv[i + 1]);
				return -1;
			}
		}
	}
	if (!*listen_addr || strncmp(*listen_addr, "unix:", 5) != 0 || !getenv("BARE_UPSTREAM")) {
		fprintf(stderr, "usage: BARE_UPSTREAM=URL [BARE_MOUNT=/p] [BARE_CAFILE=ca.pem] %s "
			"--listen unix:PATH [--workers N]\n", name);
		return -1;
	}
	upstream = getenv("BARE_UPSTREAM");
	mount = getenv("BARE_MOUNT");
	if (!mount)
		mount = "";
	cafile = getenv("BARE_CAFILE");
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

/* Installs on_term for SIGTERM and SIGINT (it sets *stopping), forks
 * WORKERS processes running worker(sock) (which must not return) and waits
 * until *stopping; then stops them. Returns the program's exit status. */
static int supervise(long workers, void (*worker)(int), int sock, void (*on_term)(int),
		     volatile sig_atomic_t *stopping)
{
	pid_t pids[MAX_WORKERS];
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	for (long i = 0; i < workers; i++) {
		pids[i] = fork();
		if (pids[i] == 0)
			worker(sock);
	}
	while (!*stopping) {
		if (wait(NULL) < 0 && errno != EINTR)
			break;
	}
	for (long i = 0; i < workers; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGTERM);
	while (wait(NULL) > 0 || errno == EINTR)
		;
	return 0;
}

#endif
