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
#include "fcgi-app/fcgirec.h"
#include "fcgi-app/forward.h"
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

/* ---- deadlines --------------------------------------------------------- */

/* Waits until fd is ready for events or the deadline passes. Returns 0 when it
 * is ready (or broken: the read or write that follows says so), -1 when the
 * deadline passed (timed_out set) or poll failed. */
static int wait_fd(struct io *io, int fd, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		int64_t left = deadline - io_now_ms();
		int rc;

		if (left <= 0) {
			io->timed_out = 1;
			return -1;
		}
		rc = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (rc > 0)
			return 0;
		if (rc < 0 && errno != EINTR)
			return -1;
	}
}

/* ---- the FastCGI front ------------------------------------------------- */

/*
 * libfcgi parses the connection (FCGX_Accept_r, the params and stdin records)
 * and frames stderr; stdout is framed and written here, and the request is
 * ended here too (the end of stdout and FCGI_END_REQUEST), so that every
 * write of the answer is a sendmsg(MSG_DONTWAIT) that only waits, in poll(2)
 * with the time left, when the socket is full:
 *
 *   - a write that fits in the front's own stdout buffer (FCGX_OBUF, 64 KiB:
 *     libfcgi's is 8 KiB and never used) is copied there (no system call);
 *   - a write that does not fit goes out at once, with what the buffer holds,
 *     as records of up to FCGIREC_MAX bytes in one sendmsg (the head of
 *     an answer and the first piece of its body are one record); a flush
 *     sends what the buffer holds. The handler flushes only before it waits
 *     (forward.c, flush_answer), so what arrived together leaves together: a
 *     small chunked answer in one sendmsg instead of three, a 64 KiB one in
 *     two instead of five (docs/performance.md, "Fewer writes per answer");
 *   - the end of the request sends what the buffer holds, the empty stdout
 *     record and FCGI_END_REQUEST in one sendmsg, then marks libfcgi's stdout
 *     closed and its writers done, so FCGX_Finish_r writes nothing more. This
 *     uses fields fcgiapp.h calls private (nWriters, detached): libfcgi 2.4.
 *
 * Reads stay libfcgi's blocking read(2), bounded by SO_RCVTIMEO. The option is
 * set only when the time left has moved by more than FCGX_TIMEO_SLACK_MS from
 * the value last set on this connection (never below the time left: a read
 * that timed out early would be taken for a slow client), so a request pays
 * one setsockopt instead of one per read; a read may overrun its deadline by
 * at most twice the slack. stderr (log lines for the web server's log) is
 * still written by libfcgi, after a poll, under SO_SNDTIMEO set the same way.
 */

#define FCGX_TIMEO_SLACK_MS 50
/* records per sendmsg: each is a header and up to two pieces */
#define FCGX_BATCH 8
/* the front's stdout buffer (header comment) */
#define FCGX_OBUF 65536

/* One FastCGI connection of a worker, and what is set on it. */
struct fcgx_front {
	FCGX_Request *r;
	int64_t rcv_ms, snd_ms;	/* SO_RCVTIMEO / SO_SNDTIMEO as last set; 0: none */
	size_t olen;		/* stdout bytes not yet written, in obuf */
	char obuf[FCGX_OBUF];
	int err_used;		/* something was written to stderr */
	int ended;		/* fcgx_answer_end ran: 1 sent, -1 failed */
};

/* Sets a socket timeout of about ms (at least 1), unless the one set last is
 * already between ms and ms + 2 * slack (header comment). */
static void fcgx_sock_timeout(struct fcgx_front *f, int opt, int64_t ms)
{
	int64_t *cur = opt == SO_RCVTIMEO ? &f->rcv_ms : &f->snd_ms;
	struct timeval tv;

	if (ms < 1)
		ms = 1;		/* 0 would mean "no timeout" */
	if (*cur >= ms && *cur <= ms + 2 * FCGX_TIMEO_SLACK_MS)
		return;
	ms += FCGX_TIMEO_SLACK_MS;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	if (setsockopt(f->r->ipcFd, SOL_SOCKET, opt, &tv, sizeof(tv)) == 0)
		*cur = ms;
	else
		*cur = 0;
}

/* Clears both timeouts, if set: an idle kept connection waits for its next
 * request as long as the web server likes. */
static void fcgx_sock_notimeout(struct fcgx_front *f)
{
	struct timeval none = { 0, 0 };

	if (f->rcv_ms)
		(void)setsockopt(f->r->ipcFd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof(none));
	if (f->snd_ms)
		(void)setsockopt(f->r->ipcFd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof(none));
	f->rcv_ms = f->snd_ms = 0;
}

static int fcgx_timed_out(FCGX_Stream *s)
{
	int e = FCGX_GetError(s);

	return e == EAGAIN || e == EWOULDBLOCK;
}

/* Reads what libfcgi has buffered, or waits (within the read deadline) for the
 * web server to send more and takes one buffer's worth. Never asks libfcgi
 * for more than it holds: FCGX_GetStr loops until it has all n bytes, so a
 * client sending a byte every second would keep it going forever. */
static long fcgx_read(struct io *io, char *buf, size_t n)
{
	struct fcgx_front *f = io->ctx;
	FCGX_Stream *in = f->r->in;
	int want = n > INT_MAX ? INT_MAX : (int)n;
	int got = 0, avail;

	if (want == 0)
		return 0;
	if (in->rdNext == in->stop) {
		int64_t now = io_now_ms(), deadline = io_read_deadline(io, now);
		int c;

		if (in->isClosed)
			return FCGX_GetError(in) ? -1 : 0;
		/* no poll(2) here: libfcgi may already hold the next record in a
		 * buffer we cannot see, and the socket then has nothing to say */
		if (deadline <= now) {
			io->timed_out = 1;
			return -1;
		}
		fcgx_sock_timeout(f, SO_RCVTIMEO, deadline - now);
		c = FCGX_GetChar(in);	/* one fill of libfcgi's buffer */
		if (c == EOF) {
			if (fcgx_timed_out(in))
				io->timed_out = 1;
			return FCGX_GetError(in) ? -1 : 0;
		}
		buf[got++] = (char)c;
	}
	avail = (int)(in->stop - in->rdNext);
	if (avail > want - got)
		avail = want - got;
	got += FCGX_GetStr(buf + got, avail, in);	/* buffered: no read(2) */
	io->body_read += got;
	return got;
}

/* Runs fn (a libfcgi call that writes the socket: stderr only) within the
 * write deadline. Returns 0, or -1 (timed_out set when the client was too
 * slow). */
static int fcgx_bounded(struct io *io, FCGX_Stream *s, int (*fn)(FCGX_Stream *s, const void *arg),
			const void *arg)
{
	struct fcgx_front *f = io->ctx;
	int64_t deadline = io_write_deadline(io, io_now_ms());
	int rc;

	if (wait_fd(io, f->r->ipcFd, POLLOUT, deadline) != 0) {
		io->write_failed = 1;
		return -1;
	}
	fcgx_sock_timeout(f, SO_SNDTIMEO, deadline - io_now_ms());
	rc = fn(s, arg);
	/* write(2) cut short by the socket timeout reports the bytes it sent,
	 * and libfcgi takes that for success: the clock tells */
	if (fcgx_timed_out(s) || io_now_ms() >= deadline) {
		io->timed_out = 1;
		rc = -1;
	}
	if (rc != 0)
		io->write_failed = 1;
	return rc;
}

static int flush_out(FCGX_Stream *s, const void *arg)
{
	(void)arg;
	return FCGX_FFlush(s) == 0 ? 0 : -1;
}

static int close_out(FCGX_Stream *s, const void *arg)
{
	(void)arg;
	return FCGX_FClose(s) == 0 ? 0 : -1;
}

/* Sends all of iov[0..n) without ever blocking: a full socket is waited for
 * in poll(2), each wait within the write deadline counted from the last
 * progress. Returns 0, or -1 (write_failed set; timed_out when the client
 * was too slow). A record cut short leaves the connection unusable: the end
 * of the request then drops it (fcgx_finish). */
static int fcgx_sendv(struct io *io, struct iovec *iov, int n)
{
	struct fcgx_front *f = io->ctx;
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)n };
	int rc = -1;

	while (m.msg_iovlen) {
		ssize_t w = sendmsg(f->r->ipcFd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (wait_fd(io, f->r->ipcFd, POLLOUT,
				    io_write_deadline(io, io_now_ms())) != 0)
				goto out;
			continue;
		}
		if (w < 0)
			goto out;
		while (m.msg_iovlen && (size_t)w >= m.msg_iov->iov_len) {
			w -= (ssize_t)m.msg_iov->iov_len;
			m.msg_iov++;
			m.msg_iovlen--;
		}
		if (m.msg_iovlen) {
			m.msg_iov->iov_base = (char *)m.msg_iov->iov_base + w;
			m.msg_iov->iov_len -= (size_t)w;
		}
	}
	rc = 0;
out:
	if (rc != 0)
		io->write_failed = 1;
	return rc;
}

/* Sends what the stdout buffer holds followed by buf[0..n) as stdout
 * records, then (end) the empty stdout record and FCGI_END_REQUEST. */
static int fcgx_send_stdout(struct io *io, const char *buf, size_t n, int end)
{
	struct fcgx_front *f = io->ctx;
	FCGX_Request *r = f->r;
	unsigned char hdr[FCGX_BATCH][8], tail[24];
	const char *held = f->obuf;
	size_t nheld = f->olen;

	do {
		struct iovec iov[FCGX_BATCH * 3 + 1];
		int k = 0, recs = 0;

		while (recs < FCGX_BATCH && (nheld || n)) {
			size_t a = nheld < FCGIREC_MAX ? nheld : FCGIREC_MAX;
			size_t b = n < FCGIREC_MAX - a ? n : FCGIREC_MAX - a;

			fcgirec_header(hdr[recs], FCGIREC_STDOUT, r->requestId, a + b);
			iov[k++] = (struct iovec){ hdr[recs], 8 };
			if (a)
				iov[k++] = (struct iovec){ (void *)(uintptr_t)held, a };
			if (b)
				iov[k++] = (struct iovec){ (void *)(uintptr_t)buf, b };
			held += a;
			nheld -= a;
			buf += b;
			n -= b;
			recs++;
		}
		if (end && !nheld && !n) {
			fcgirec_header(tail, FCGIREC_STDOUT, r->requestId, 0);
			fcgirec_header(tail + 8, FCGIREC_END_REQUEST, r->requestId, 8);
			tail[16] = (unsigned char)(((unsigned)r->appStatus >> 24) & 0xff);
			tail[17] = (unsigned char)(((unsigned)r->appStatus >> 16) & 0xff);
			tail[18] = (unsigned char)(((unsigned)r->appStatus >> 8) & 0xff);
			tail[19] = (unsigned char)((unsigned)r->appStatus & 0xff);
			tail[20] = 0;	/* FCGI_REQUEST_COMPLETE */
			tail[21] = tail[22] = tail[23] = 0;
			iov[k++] = (struct iovec){ tail, sizeof(tail) };
		}
		if (k && fcgx_sendv(io, iov, k) != 0)
			return -1;
	} while (nheld || n);
	f->olen = 0;
	return 0;
}

/* Copies into the stdout buffer while it has room; a write that does not
 * fit goes out at once, with what the buffer holds (header comment). */
static int fcgx_write(struct io *io, const char *buf, size_t n)
{
	struct fcgx_front *f = io->ctx;
	FCGX_Stream *out = f->r->out;

	if (io->write_failed || FCGX_GetError(out) || out->isClosed)
		return -1;
	if (n <= FCGX_OBUF - f->olen) {
		if (n)
			memcpy(f->obuf + f->olen, buf, n);
		f->olen += n;
		return 0;
	}
	return fcgx_send_stdout(io, buf, n, 0);
}

static int fcgx_flush(struct io *io)
{
	struct fcgx_front *f = io->ctx;

	if (io->write_failed || FCGX_GetError(f->r->out))
		return -1;
	if (!f->olen)
		return 0;
	return fcgx_send_stdout(io, NULL, 0, 0);
}

/* Ends stdout and the request (header comment): what libfcgi holds, the empty
 * stdout record and FCGI_END_REQUEST in one write; stderr is closed first (it
 * writes nothing when nothing was written to it). */
static int fcgx_end(struct io *io)
{
	struct fcgx_front *f = io->ctx;
	FCGX_Request *r = f->r;
	FCGX_Stream *out = r->out;

	if (f->err_used ? fcgx_bounded(io, r->err, close_out, NULL) != 0 :
	    FCGX_FClose(r->err) != 0)
		return -1;
	if (FCGX_GetError(out) || out->isClosed)
		return -1;
	if (fcgx_send_stdout(io, NULL, 0, 1) != 0)
		return -1;
	/* as FCGX_FClose leaves it, so that FCGX_Finish_r writes nothing */
	out->wasFCloseCalled = 1;
	out->isClosed = 1;
	out->rdNext = out->stop = out->wrNext;
	r->nWriters = 0;
	return 0;
}

/* The answer gets one idle period of its own, even when the read that ran
 * out of time used up the request's: a 408 must still go out. */
static struct io answer_io(const struct io *io)
{
	struct io answer = *io;

	answer.timed_out = 0;
	answer.write_failed = 0;
	answer.started_ms = io_now_ms();
	answer.limits.request_ms = answer.limits.idle_ms;
	return answer;
}

/* io->end: the answer's end (fcgx_end), once, before the request is logged.
 * The request's stderr ends with it: later log lines (the access log's own
 * complaints) go to the worker's stderr again. */
static int fcgx_answer_end(struct io *io)
{
	struct fcgx_front *f = io->ctx;

	if (!f->ended) {
		struct io answer = answer_io(io);

		f->ended = fcgx_end(&answer) == 0 ? 1 : -1;
		log_set_hook(NULL, NULL);
	}
	return f->ended > 0 ? 0 : -1;
}

/* How long a body that ran out of time is still drained once the answer is
 * out. */
#define FCGX_LINGER_MS 250

/* Ends the request: the answer first (what is buffered and the end-of-request
 * record), then whatever of the body nobody read. libfcgi's own drain (in
 * FCGX_Finish_r) reads on as long as a byte comes every two seconds; ours
 * stops at the body's deadline and then drops the connection. */
static void fcgx_finish(struct fcgx_front *f, struct io *io)
{
	FCGX_Request *r = f->r;
	struct io answer = answer_io(io), *drain;
	char buf[4096];
	long n = 0;

	if (io->aborted || io->write_failed) {
		/* no FCGI_END_REQUEST: the web server sees the answer cut short,
		 * after what it had put out (a backend's body up to its break) */
		if (!io->write_failed)
			(void)fcgx_flush(io);
		shutdown(r->ipcFd, SHUT_RDWR);
		goto out;
	}
	if (fcgx_answer_end(io) != 0) {
		shutdown(r->ipcFd, SHUT_RDWR);
		goto out;
	}
	/* The rest of the body, within its own deadline: Apache's mod_proxy_fcgi
	 * passes the answer on only once it has sent us the whole body, so an
	 * honest upload refused with 413 must still be taken. A body that ran
	 * out of time gets FCGX_LINGER_MS, for a web server in the middle of
	 * writing a record; lighttpd hangs up as soon as the answer is complete,
	 * which ends this at once. */
	answer.started_ms = io_now_ms();
	answer.body_read = 0;
	answer.limits.request_ms = FCGX_LINGER_MS;
	answer.limits.body_ms = FCGX_LINGER_MS;
	drain = io_read_deadline(io, answer.started_ms) > answer.started_ms + FCGX_LINGER_MS ?
		io : &answer;
	while (!r->in->isClosed && (n = fcgx_read(drain, buf, sizeof(buf))) > 0)
		;
	if (n < 0)
		shutdown(r->ipcFd, SHUT_RDWR);
	else if (r->keepConnection)
		fcgx_sock_notimeout(f);	/* the next request may be a while coming */
	else if (r->in->isClosed && !FCGX_GetError(r->in))
		/* The web server has sent all it will (stdin ended) and we have
		 * read it: nothing is left to answer with a reset, so libfcgi's
		 * lingering close (shutdown, then poll and read until the web
		 * server hangs up, up to 2 s) has nothing to protect. A plain
		 * close; FCGX_Free clears the flag again. */
		r->detached = 1;
out:
	FCGX_Finish_r(r);
	if (r->ipcFd < 0)
		f->rcv_ms = f->snd_ms = 0;	/* a new connection comes next */
	f->olen = 0;
	f->err_used = 0;
	f->ended = 0;
}

/* The web server reads this on the request's own connection: a client that
 * stops reading blocks it like the answer, so it has the same deadline. */
static void log_to_request(void *ctx, const char *line, size_t len)
{
	struct io *io = ctx;
	struct fcgx_front *f = io->ctx;
	FCGX_Request *r = f->r;

	if (io->write_failed || (size_t)(r->err->stop - r->err->wrNext) < len)
		return;	/* a line that does not fit would block unbounded: drop it */
	FCGX_PutStr(line, (int)len, r->err);
	f->err_used = 1;
	(void)fcgx_bounded(io, r->err, flush_out, NULL);
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
	struct fcgx_front front = { .r = &req };
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;	/* no SA_RESTART: accept() must return */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);	/* mod_fcgid's graceful stop */
	no_fast_bins();
	/* a worker sets libcurl up before its first request (a CGI process
	 * only when its request goes to a backend: forward.h) */
	if (app_init(&app, environ) != 0 || forward_load(&app) != 0)
		fatal("cannot initialise libcurl");
	if (FCGX_Init() != 0 || FCGX_InitRequest(&req, sock, FCGI_FAIL_ACCEPT_ON_INTR) != 0)
		fatal("cannot initialise libfcgi");
	/* a worker lives on: a changed document is compiled beside the
	 * requests, never in one (reload.h) */
	app.reload.background = 1;
	while (!stopping && FCGX_Accept_r(&req) >= 0) {
		struct io io = {
			.params = req.envp, .read = fcgx_read, .write = fcgx_write,
			.flush = fcgx_flush, .end = fcgx_answer_end, .ctx = &front,
		};

		prefork_busy(1);
		io_start(&io);
		log_set_hook(log_to_request, &io);
		handle_request(&app, &io);
		log_set_hook(NULL, NULL);
		fcgx_finish(&front, &io);
		prefork_busy(0);
		/* between requests: a new image is mapped (or a finished load
		 * taken) now, not when the next request is already waiting */
		reload_current(&app.reload, io_now_ms());
	}
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
		if (wait_fd(io, STDIN_FILENO, POLLIN, io_read_deadline(io, io_now_ms())) != 0)
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
			if (wait_fd(io, STDOUT_FILENO, POLLOUT,
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
