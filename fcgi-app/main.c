/*
 * hostgate-fcgi — the data plane. One binary, three ways to run
 * (shared/spec/commands-and-files.md):
 *   under a FastCGI process manager: fd 0 is the listening socket it was given;
 *   --listen ADDR [--workers N] [--user NAME]: a FastCGI server of its own,
 *     a supervisor process and N workers sharing the socket;
 *   plain CGI: fd 0 is not a socket; one request from the environment, then exit
 *     (or handed to resident workers, which --cgi-workers runs: resident.h).
 * --check FILE validates a configuration document; --compile FILE validates it
 * and writes its image FILE.image (policy/image.h) that every process maps;
 * --version prints the version.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <malloc.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <fcgiapp.h>

#include "common/fileread.h"
#include "common/log.h"
#include "common/prefork.h"
#include "fcgi-app/forward.h"
#include "fcgi-app/front.h"
#include "fcgi-app/handler.h"
#include "fcgi-app/nph.h"
#include "fcgi-app/resident.h"
#include "policy/image.h"

extern char **environ;

#define MAX_WORKERS PREFORK_MAX

static volatile sig_atomic_t stopping;

static void usage(void)
{
	fprintf(stderr,
		"usage: hostgate-fcgi                      (under a FastCGI process manager, or as CGI)\n"
		"       hostgate-fcgi --listen ADDR [--workers N] [--user NAME]\n"
		"                     ADDR is HOST:PORT or unix:/path/to.sock\n"
		"       hostgate-fcgi --cgi-workers       (started by a CGI process: resident.h)\n"
		"       hostgate-fcgi --check FILE\n"
		"       hostgate-fcgi --compile FILE    (writes FILE.image, which every process maps)\n"
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

/* glibc without fast bins (the tcache still serves small sizes), where they
 * cost more than they save:
 * - --check and --compile build millions of small objects and free them all
 *   at once: the fast bins then cost a quarter of the run in
 *   malloc_consolidate (perf, 100k APIs). Without them: about 25% faster;
 * - a FastCGI worker allocates libfcgi's 8 KiB stream buffers and libcurl's
 *   16 KiB download buffer per request, and each of those consolidated the
 *   request's small frees first (~2k instructions per small HTTPS request,
 *   issue 15). */
static void no_fast_bins(void)
{
	mallopt(M_MXFAST, 0);
}

/* Validates like --check, then writes the image beside the document, as the
 * agent does after each install. Run it as the user who writes the document
 * (root or the agent's), never as the web server's: an image the web
 * server's user could write is never used. */
static int compile_file(const char *path)
{
	struct cfg_errors errs = CFG_ERRORS_INIT;
	struct image_stats st = { 0 };
	int rc = 0;

	if (image_compile_file(path, &errs, &st) == 0) {
		printf("%s: ok: wrote '%s%s': %zu APIs, %zu subscription keys, %zu bytes\n", path,
		       path, IMAGE_SUFFIX, st.n_apis, st.n_subscriptions, st.bytes);
	} else {
		for (size_t i = 0; i < errs.n; i++)
			printf("%s: %s\n", path, errs.msg[i]);
		if (errs.dropped)
			printf("%s: %zu more errors not shown\n", path, errs.dropped);
		rc = 1;
	}
	fflush(stdout);
	check_trust(path);
	cfg_errors_release(&errs);
	return rc;
}

/* ---- the FastCGI front ------------------------------------------------- */

static void on_stop(int sig)
{
	(void)sig;
	stopping = 1;
	front_stop();
}

/* How many connections one process takes at once (front.h). */
static int front_connections(void)
{
	const char *v = getenv("HOSTGATE_CONNECTIONS");
	char *end;
	long n;

	if (!v || !*v)
		return FRONT_CONNECTIONS;
	n = strtol(v, &end, 10);
	if (*end || n < 1 || n > 4096)
		fatal("bad HOSTGATE_CONNECTIONS '%s': 1 to 4096", v);
	return (int)n;
}

static void serve_fastcgi(int sock)
{
	struct app app;
	struct sigaction sa;
	int max = front_connections();

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;	/* no SA_RESTART: the loop's wait must return */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);	/* mod_fcgid's graceful stop */
	no_fast_bins();
	/* a worker sets libcurl up before its first request (a CGI process
	 * only when its request goes to a backend: forward.h) */
	if (app_init(&app, environ) != 0 || forward_load(&app) != 0)
		fatal("cannot initialise libcurl");
	/* a worker lives on: a changed document is compiled beside the
	 * requests, never in one (reload.h) */
	app.reload.background = 1;
	front_serve(sock, &app, max);
	app_release(&app);
}

/* ---- the CGI front ----------------------------------------------------- */

/* stdin and stdout are made non-blocking (serve_cgi), so that every wait is a
 * poll(2) with the time left: a blocking write(2) of a large buffer to a pipe
 * would wait for all of it, however long the client takes to read. */
static long cgi_read(struct io *io, char *buf, size_t n)
{
	for (;;) {
		ssize_t got;

		/* also when data is there: a fast sender must not keep a drain
		 * going past the body's deadline */
		if (io_read_deadline(io, io_now_ms()) <= io_now_ms()) {
			io->timed_out = 1;
			return -1;
		}
		got = read(STDIN_FILENO, buf, n);

		if (got >= 0) {
			io->body_read += got;
			return (long)got;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		if (io_wait_fd(io, STDIN_FILENO, POLLIN, io_read_deadline(io, io_now_ms())) != 0)
			return -1;
	}
}

static int cgi_write(struct io *io, const char *buf, size_t n)
{
	if (io->write_failed)
		return -1;
	while (n) {
		ssize_t w = write(STDOUT_FILENO, buf, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (io_wait_fd(io, STDOUT_FILENO, POLLOUT,
				    io_write_deadline(io, io_now_ms())) != 0) {
				io->write_failed = 1;
				return -1;
			}
			continue;
		}
		if (w <= 0) {
			io->write_failed = 1;
			return -1;
		}
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

static void set_nonblocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl >= 0)
		(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* NPH mode (nph.h): the handler's CGI output becomes the whole HTTP message */
static struct nph nph_state;

static int cgi_raw_write(void *ctx, const char *buf, size_t n)
{
	return cgi_write(ctx, buf, n);
}

static int nph_io_write(struct io *io, const char *buf, size_t n)
{
	(void)io;
	return nph_write(&nph_state, buf, n);
}

/* io->end: the last chunk, only for a whole answer (without it the client
 * sees an answer cut short as one), before the request is logged */
static int nph_io_end(struct io *io)
{
	(void)io;
	return nph_finish(&nph_state, 0);
}

static int serve_cgi(void)
{
	struct app app;
	struct io io = {
		.params = environ, .read = cgi_read, .write = cgi_write, .flush = cgi_flush,
	};

	const char *cl = getenv("CONTENT_LENGTH"), *te = getenv("HTTP_TRANSFER_ENCODING");
	int nph = nph_wanted(getenv("SCRIPT_FILENAME")), rc;
	char buf[65536];

	set_nonblocking(STDIN_FILENO);
	set_nonblocking(STDOUT_FILENO);
	/* resident workers (HOSTGATE_CGI_WORKERS), when there are any */
	rc = resident_relay(nph);
	if (rc >= 0)
		return rc;
	io_start(&io);
	if (app_init(&app, environ) != 0)
		fatal("cannot initialise libcurl");
	if (nph) {
		nph_init(&nph_state, getenv("SERVER_PROTOCOL"), getenv("REQUEST_METHOD"),
			 cgi_raw_write, &io);
		io.write = nph_io_write;
		io.end = nph_io_end;
	}
	handle_request(&app, &io);
	app_release(&app);
	/* a CGI server writes the whole body before it reads the answer: one
	 * refused unread (404, 413, a policy) must still be taken, or the server
	 * fails writing it and the client never sees the answer; but only within
	 * the body's deadline, or a trickling client holds the process for good */
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

static int serve_listen(const char *addr, int workers, const char *user)
{
	struct passwd *pw = NULL;
	int sock;

	if (user) {
		pw = getpwnam(user);
		if (!pw)
			fatal("unknown user '%s'", user);
	}
	sock = open_listener(addr, pw);
	drop_privileges(pw);
	return prefork_run(sock, workers, serve_fastcgi, addr, 0);
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
			printf("hostgate-fcgi %s\n%s (embedded, Debian curl %s)\n",
			       HOSTGATE_VERSION, curl_version(), HOSTGATE_CURL_DEB);
#ifdef HOSTGATE_STATIC_DEBS
			/* make STATIC_LIBS=1 (the default): their fixes need a
			 * rebuild, so say which ones are in */
			printf("linked statically from Debian's %s\n", HOSTGATE_STATIC_DEBS);
#endif
			return 0;
		} else if (!strcmp(a, "--check") && i + 1 < argc) {
			no_fast_bins();
			return check_file(argv[++i]);
		} else if (!strcmp(a, "--compile") && i + 1 < argc) {
			no_fast_bins();
			return compile_file(argv[++i]);
		} else if (!strcmp(a, "--cgi-workers")) {
			return resident_serve(serve_fastcgi);
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
