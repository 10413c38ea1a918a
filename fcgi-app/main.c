/*
 * hostgate-fcgi — the data plane. One binary, three ways to run
 * (shared/spec/commands-and-files.md):
 *   under a FastCGI process manager: fd 0 is the listening socket it was given;
 *   --listen ADDR [--workers N] [--user NAME]: a FastCGI server of its own,
 *     a supervisor process and N workers sharing the socket;
 *   plain CGI: fd 0 is not a socket; one request from the environment, then exit.
 * --check FILE validates a configuration document; --version prints the version.
 */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "common/fileread.h"
#include "common/log.h"
#include "fcgi-app/handler.h"

extern char **environ;

#define MAX_WORKERS 256

static volatile sig_atomic_t stopping;

static void usage(void)
{
	fprintf(stderr,
		"usage: hostgate-fcgi                      (under a FastCGI process manager, or as CGI)\n"
		"       hostgate-fcgi --listen ADDR [--workers N] [--user NAME]\n"
		"                     ADDR is HOST:PORT or unix:/path/to.sock\n"
		"       hostgate-fcgi --check FILE\n"
		"       hostgate-fcgi --version\n");
	exit(2);
}

/* ---- --check ----------------------------------------------------------- */

/* Says on stderr why the running app would refuse path, or warn about it
 * (fcgi-app/reload.h): --check runs as an admin, who may not notice that
 * the web server's user can swap the file. */
static void check_trust(const char *path)
{
	char why[4096 + 128];
	struct stat st;

	if (lstat(path, &st) != 0)
		return;		/* gw_load_file says why */
	if (S_ISLNK(st.st_mode)) {
		fprintf(stderr, "%s: warning: a symbolic link: hostgate-fcgi refuses to follow it\n",
			path);
		return;
	}
	switch (file_trust(path, &st, why, sizeof(why))) {
	case FILE_UNSAFE:
		fprintf(stderr, "%s: warning: %s: hostgate-fcgi refuses it\n", path, why);
		break;
	case FILE_OWN:
		fprintf(stderr, "%s: warning: %s: run as the web server's user, hostgate-fcgi "
			"loads it but warns (docs/deploying.md)\n", path, why);
		break;
	case FILE_TRUSTED:
		break;
	}
}

static int check_file(const char *path)
{
	struct cfg_errors errs = CFG_ERRORS_INIT;
	struct gateway *gw = gw_load_file(path, &errs);
	int rc = 0;

	if (gw) {
		printf("%s: ok: generation %lld, %zu APIs, %zu backends\n", path,
		       (long long)gw->generation, gw->n_apis, gw->n_backends);
	} else {
		for (size_t i = 0; i < errs.n; i++)
			printf("%s: %s\n", path, errs.msg[i]);
		if (errs.dropped)
			printf("%s: %zu more errors not shown\n", path, errs.dropped);
		rc = 1;
	}
	/* a warning, not a failure: the document itself is valid */
	fflush(stdout);
	check_trust(path);
	gw_free(gw);
	cfg_errors_release(&errs);
	return rc;
}

/* ---- the FastCGI front ------------------------------------------------- */

static long fcgx_read(struct io *io, char *buf, size_t n)
{
	FCGX_Request *r = io->ctx;
	int got = FCGX_GetStr(buf, n > INT_MAX ? INT_MAX : (int)n, r->in);

	if (got <= 0 && FCGX_GetError(r->in))
		return -1;
	return got;
}

static int fcgx_write(struct io *io, const char *buf, size_t n)
{
	FCGX_Request *r = io->ctx;

	if (FCGX_PutStr(buf, (int)n, r->out) != (int)n)
		return -1;
	return 0;
}

static int fcgx_flush(struct io *io)
{
	FCGX_Request *r = io->ctx;

	return FCGX_FFlush(r->out) == 0 ? 0 : -1;
}

static void log_to_request(void *ctx, const char *line, size_t len)
{
	FCGX_Request *r = ctx;

	FCGX_PutStr(line, (int)len, r->err);
	FCGX_FFlush(r->err);
}

static void on_stop(int sig)
{
	(void)sig;
	stopping = 1;
	FCGX_ShutdownPending();
}

static void serve_fastcgi(int sock)
{
	struct app app;
	FCGX_Request req;
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;	/* no SA_RESTART: accept() must return */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);	/* mod_fcgid's graceful stop */
	if (app_init(&app, environ) != 0)
		fatal("cannot initialise libcurl");
	if (FCGX_Init() != 0 || FCGX_InitRequest(&req, sock, FCGI_FAIL_ACCEPT_ON_INTR) != 0)
		fatal("cannot initialise libfcgi");
	while (!stopping && FCGX_Accept_r(&req) >= 0) {
		struct io io = {
			.params = req.envp, .read = fcgx_read, .write = fcgx_write,
			.flush = fcgx_flush, .ctx = &req,
		};

		log_set_hook(log_to_request, &req);
		handle_request(&app, &io);
		log_set_hook(NULL, NULL);
		if (io.aborted)
			/* no FCGI_END_REQUEST: the web server sees the answer cut short */
			shutdown(req.ipcFd, SHUT_RDWR);
		FCGX_Finish_r(&req);
	}
	app_release(&app);
}

/* ---- the CGI front ----------------------------------------------------- */

static long cgi_read(struct io *io, char *buf, size_t n)
{
	ssize_t got;

	(void)io;
	do
		got = read(STDIN_FILENO, buf, n);
	while (got < 0 && errno == EINTR);
	return got < 0 ? -1 : (long)got;
}

static int cgi_write(struct io *io, const char *buf, size_t n)
{
	(void)io;
	while (n) {
		ssize_t w = write(STDOUT_FILENO, buf, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		buf += w;
		n -= (size_t)w;
	}
	return 0;
}

static int cgi_flush(struct io *io)
{
	(void)io;
	return 0;
}

static int serve_cgi(void)
{
	struct app app;
	struct io io = {
		.params = environ, .read = cgi_read, .write = cgi_write, .flush = cgi_flush,
	};

	const char *cl = getenv("CONTENT_LENGTH"), *te = getenv("HTTP_TRANSFER_ENCODING");
	char buf[65536];

	if (app_init(&app, environ) != 0)
		fatal("cannot initialise libcurl");
	handle_request(&app, &io);
	app_release(&app);
	/* a CGI server writes the whole body before it reads the answer: one
	 * refused unread (404, 413, a policy) must still be taken, or the server
	 * fails writing it and the client never sees the answer */
	if ((cl && *cl && strcmp(cl, "0") != 0) || te)
		while (cgi_read(&io, buf, sizeof(buf)) > 0)
			;
	return io.aborted ? 1 : 0;
}

/* ---- --listen: supervisor and workers ----------------------------------- */

static int open_listener(const char *addr, const struct passwd *pw)
{
	int sock;

	if (strncmp(addr, "unix:", 5) == 0) {
		const char *path = addr + 5;
		struct stat st;

		if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
			unlink(path);	/* stale socket of an earlier run */
		sock = FCGX_OpenSocket(path, 128);
		if (sock < 0)
			fatal("cannot listen on '%s': %s", path, strerror(errno));
		if (chmod(path, 0660) != 0 ||
		    (pw && chown(path, pw->pw_uid, pw->pw_gid) != 0))
			fatal("cannot set the owner and mode of '%s': %s", path, strerror(errno));
		return sock;
	}
	if (!strchr(addr, ':'))
		fatal("bad --listen address '%s': use HOST:PORT or unix:/path", addr);
	sock = FCGX_OpenSocket(addr, 128);
	if (sock < 0)
		fatal("cannot listen on '%s': %s", addr, strerror(errno));
	return sock;
}

static void drop_privileges(const struct passwd *pw)
{
	if (!pw)
		return;
	if (setgroups(1, &pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
	    setuid(pw->pw_uid) != 0)
		fatal("cannot switch to user '%s': %s", pw->pw_name, strerror(errno));
}

static pid_t spawn_worker(int sock)
{
	pid_t pid = fork();

	if (pid == 0) {
		serve_fastcgi(sock);
		_exit(0);
	}
	if (pid < 0)
		log_err("cannot start a worker: %s", strerror(errno));
	return pid;
}

static int serve_listen(const char *addr, int workers, const char *user)
{
	struct passwd *pw = NULL;
	pid_t pids[MAX_WORKERS];
	struct sigaction sa;
	int sock;

	if (user) {
		pw = getpwnam(user);
		if (!pw)
			fatal("unknown user '%s'", user);
	}
	sock = open_listener(addr, pw);
	drop_privileges(pw);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	for (int i = 0; i < workers; i++)
		pids[i] = spawn_worker(sock);
	log_info("listening on '%s' with %d workers", addr, workers);

	while (!stopping) {
		int status;
		pid_t pid = wait(&status);

		if (pid < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < workers; i++) {
			if (pids[i] != pid)
				continue;
			if (WIFSIGNALED(status))
				log_err("worker %ld died of signal %d: starting another",
					(long)pid, WTERMSIG(status));
			pids[i] = stopping ? -1 : spawn_worker(sock);
		}
	}
	for (int i = 0; i < workers; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGTERM);
	while (wait(NULL) > 0 || errno == EINTR)
		;
	return 0;
}

int main(int argc, char **argv)
{
	const char *listen_addr = NULL, *user = NULL;
	int workers = 4;

	log_init("hostgate-fcgi", LOG_TO_STDERR);
	signal(SIGPIPE, SIG_IGN);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--version")) {
			printf("hostgate-fcgi %s\n", HOSTGATE_VERSION);
			return 0;
		} else if (!strcmp(a, "--check") && i + 1 < argc) {
			return check_file(argv[++i]);
		} else if (!strcmp(a, "--listen") && i + 1 < argc) {
			listen_addr = argv[++i];
		} else if (!strcmp(a, "--user") && i + 1 < argc) {
			user = argv[++i];
		} else if (!strcmp(a, "--workers") && i + 1 < argc) {
			char *end;
			long n = strtol(argv[++i], &end, 10);

			if (*end || n < 1 || n > MAX_WORKERS)
				fatal("bad --workers '%s': 1 to %d", argv[i], MAX_WORKERS);
			workers = (int)n;
		} else {
			usage();
		}
	}
	if (listen_addr)
		return serve_listen(listen_addr, workers, user);
	if (user)
		usage();
	if (FCGX_IsCGI())
		return serve_cgi();
	serve_fastcgi(0);
	return 0;
}
