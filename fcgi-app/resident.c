/* CGI with resident workers. See resident.h. */
#define _GNU_SOURCE		/* struct ucred */
#include "fcgi-app/resident.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "common/log.h"
#include "common/paths.h"
#include "common/prefork.h"
#include "common/sha256.h"
#include "fcgi-app/fcgirec.h"
#include "fcgi-app/io.h"
#include "fcgi-app/nph.h"

extern char **environ;

/* Besides HOSTGATE_*, what the workers inherit from the CGI environment:
 * what the C library, OpenSSL and the sanitizers read. */
static const char *const keep_env[] = {
	"PATH", "TZ", "LANG", "LC_ALL", "OPENSSL_CONF", "OPENSSL_MODULES",
	"SSL_CERT_FILE", "SSL_CERT_DIR", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS",
};

#define IDLE_DEFAULT_S 300
#define IDLE_MAX_S 86400
/* A CGI process starts a supervisor at most this often (the lock file's
 * mtime): one that cannot start does not double every request's cost. */
#define RESPAWN_S 2
/* How long a supervisor waits for the lock of one that is stopping. */
#define LOCK_WAIT_S 5
/* The relay's own bound while the worker lives: the longest request the
 * document can allow (client_request_timeout_ms), and a minute. */
#define BACKSTOP_MS (86400000 + 60000)
#define CHUNK 65535

struct where {
	int workers, idle_s;
	char *exe;		/* the path this process was started by (AT_EXECFN) */
	char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char lock[PATH_MAX + 32], log[PATH_MAX + 32];
	char **env;		/* the workers' environment, sorted */
};

static int env_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int env_kept(const char *e)
{
	size_t n = strcspn(e, "=");

	if (!e[n])
		return 0;
	if (strncmp(e, "HOSTGATE_", 9) == 0)
		return 1;
	for (size_t i = 0; i < sizeof(keep_env) / sizeof(keep_env[0]); i++)
		if (strlen(keep_env[i]) == n && strncmp(e, keep_env[i], n) == 0)
			return 1;
	return 0;
}

static int env_int(const char *name, int def, int min, int max, int *out)
{
	const char *v = getenv(name);
	char *end;
	long n;

	*out = def;
	if (!v || !*v)
		return 0;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || *end || n < min || n > max) {
		log_warn("%s '%s' is not a number from %d to %d: no resident workers",
			 name, v, min, max);
		return -1;
	}
	*out = (int)n;
	return 0;
}

/* Fills w from the environment. Returns 0, 1 when resident workers are not
 * set up (HOSTGATE_CGI_WORKERS unset or 0), -1 (logged) when they cannot be
 * used. */
static int where_init(struct where *w)
{
	const char *state = getenv("HOSTGATE_STATE_DIR");
	char dir[PATH_MAX], hex[17];
	unsigned char sum[SHA256_LEN];
	size_t n = 0, len;
	struct stat st;
	char *id;

	memset(w, 0, sizeof(*w));
	if (env_int("HOSTGATE_CGI_WORKERS", 0, 0, PREFORK_MAX, &w->workers) != 0)
		return -1;
	if (w->workers == 0)
		return 1;
	if (env_int("HOSTGATE_CGI_IDLE_S", IDLE_DEFAULT_S, 1, IDLE_MAX_S, &w->idle_s) != 0)
		return -1;
	if (!state || !*state)
		state = HOSTGATE_STATE_DIR_DEFAULT;
	if ((size_t)snprintf(dir, sizeof(dir), "%s/cgi-workers", state) >= sizeof(dir))
		return -1;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		log_warn("cannot make '%s': %s: no resident workers", dir, strerror(errno));
		return -1;
	}
	/* the socket's directory decides who can bind it: ours alone */
	if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 022)) {
		log_err("'%s' is not a directory of this user that only it can write: "
			"no resident workers", dir);
		return -1;
	}
	/* the binary, as it was started (what the supervisor is started
	 * by), and its identity, whatever link led to it */
	w->exe = (char *)getauxval(AT_EXECFN);
	if (!w->exe || stat(w->exe, &st) != 0)
		return -1;
	for (char **e = environ; *e; e++)
		n += env_kept(*e);
	w->env = calloc(n + 1, sizeof(*w->env));
	if (!w->env)
		return -1;
	n = 0;
	for (char **e = environ; *e; e++)
		if (env_kept(*e))
			w->env[n++] = *e;
	qsort(w->env, n, sizeof(*w->env), env_cmp);
	/* the key: the binary and the environment, '\0'-separated */
	len = 100;
	for (size_t i = 0; i < n; i++)
		len += strlen(w->env[i]) + 1;
	id = malloc(len);
	if (!id) {
		free(w->env);
		return -1;
	}
	len = (size_t)snprintf(id, len, "%ju:%ju:%jd:%jd.%ld", (uintmax_t)st.st_dev, (uintmax_t)st.st_ino, (intmax_t)st.st_size,
			       (intmax_t)st.st_mtim.tv_sec, st.st_mtim.tv_nsec) + 1;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(w->env[i]) + 1;

		memcpy(id + len, w->env[i], l);
		len += l;
	}
	sha256(id, len, sum);
	free(id);
	for (int i = 0; i < 8; i++)
		snprintf(hex + 2 * i, 3, "%02x", sum[i]);
	snprintf(w->lock, sizeof(w->lock), "%s/%s.lock", dir, hex);
	snprintf(w->log, sizeof(w->log), "%s/%s.log", dir, hex);
	if ((size_t)snprintf(w->sock, sizeof(w->sock), "%s/%s.sock", dir, hex) >= sizeof(w->sock)) {
		log_warn("'%s' is too long a path for a Unix socket: no resident workers", dir);
		free(w->env);
		return -1;
	}
	return 0;
}

/* ---- starting the supervisor ------------------------------------------- */

/* Starts EXE --cgi-workers in its own session, with none of this
 * process's descriptors (a web server waits for the end of a CGI program's
 * stdout and stderr), unless a CGI process did so less than RESPAWN_S ago. */
static void spawn(struct where *w)
{
	char arg1[] = "--cgi-workers";
	char *argv[] = { w->exe, arg1, NULL };
	struct stat st;
	pid_t pid;
	int fd;

	if (stat(w->lock, &st) == 0 && time(NULL) - st.st_mtime < RESPAWN_S)
		return;
	fd = open(w->lock, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return;
	(void)futimens(fd, NULL);
	close(fd);
	pid = fork();
	if (pid < 0)
		return;
	if (pid == 0) {
		if (fork() != 0)
			_exit(0);
		setsid();
		fd = open("/dev/null", O_RDWR);
		if (fd < 0 || dup2(fd, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(127);
		close_range(3, ~0U, 0);
		execve(w->exe, argv, w->env);
		_exit(127);
	}
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

/* ---- the relay --------------------------------------------------------- */

/* A byte queue: p[off..len) waits to be written. */
struct queue {
	char *p;
	size_t off, len, cap;
};

static int queue_add(struct queue *q, const void *d, size_t n)
{
	if (q->off == q->len)
		q->off = q->len = 0;
	if (q->len + n > q->cap) {
		size_t cap = q->cap ? q->cap : 4096;
		char *p;

		while (cap < q->len + n)
			cap *= 2;
		p = realloc(q->p, cap);
		if (!p)
			return -1;
		q->p = p;
		q->cap = cap;
	}
	memcpy(q->p + q->len, d, n);
	q->len += n;
	return 0;
}

static int queue_record(struct queue *q, int type, int id, const void *d, size_t n)
{
	unsigned char h[8];

	fcgirec_header(h, type, id, n);
	if (queue_add(q, h, sizeof(h)) != 0)
		return -1;
	return n ? queue_add(q, d, n) : 0;
}

/* Writes what q holds to fd (non-blocking; SIGPIPE is ignored: main.c)
 * without waiting. Returns 0, or -1 (errno) when fd is broken. */
static int queue_send(struct queue *q, int fd)
{
	while (q->off < q->len) {
		ssize_t w = write(fd, q->p + q->off, q->len - q->off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (w <= 0)
			return -1;
		q->off += (size_t)w;
	}
	return 0;
}

static size_t nv_len(unsigned char *p, size_t len)
{
	if (len < 128) {
		p[0] = (unsigned char)len;
		return 1;
	}
	p[0] = (unsigned char)(0x80 | ((len >> 24) & 0x7f));
	p[1] = (unsigned char)(len >> 16);
	p[2] = (unsigned char)(len >> 8);
	p[3] = (unsigned char)len;
	return 4;
}

/* The request's head: a GET_VALUES (its answer shows a worker has taken the
 * connection), BEGIN_REQUEST and the environment as PARAMS. */
static int queue_head(struct queue *q)
{
	static const unsigned char get_values[] = { 15, 0, 'F', 'C', 'G', 'I', '_', 'M', 'P',
						    'X', 'S', '_', 'C', 'O', 'N', 'N', 'S' };
	static const unsigned char begin[8] = { 0, FCGIREC_RESPONDER, 0 };
	struct queue params = { 0 };
	int rc = -1;

	if (queue_record(q, FCGIREC_GET_VALUES, 0, get_values, sizeof(get_values)) != 0 ||
	    queue_record(q, FCGIREC_BEGIN_REQUEST, 1, begin, sizeof(begin)) != 0)
		return -1;
	for (char **e = environ; *e; e++) {
		const char *eq = strchr(*e, '=');
		unsigned char lens[8];
		size_t k;

		if (!eq)
			continue;
		k = nv_len(lens, (size_t)(eq - *e));
		k += nv_len(lens + k, strlen(eq + 1));
		if (queue_add(&params, lens, k) != 0 ||
		    queue_add(&params, *e, (size_t)(eq - *e)) != 0 ||
		    queue_add(&params, eq + 1, strlen(eq + 1)) != 0)
			goto out;
	}
	for (size_t at = 0; at < params.len; at += CHUNK) {
		size_t n = params.len - at < CHUNK ? params.len - at : CHUNK;

		if (queue_record(q, FCGIREC_PARAMS, 1, params.p + at, n) != 0)
			goto out;
	}
	rc = queue_record(q, FCGIREC_PARAMS, 1, NULL, 0);
out:
	free(params.p);
	return rc;
}

struct relay {
	int sock;
	struct queue to_worker, to_client;
	int64_t body_left;	/* bytes of body still to read; -1: to the end */
	struct fcgirec_reader rd;	/* rd.acked: a worker has the request;
					 * rd.ended: FCGI_END_REQUEST came */
	int worker_eof;		/* the worker's side is read to its end */
	int worker_gone;	/* ...or it hung up, and what it sent is finite */
	int send_dead;		/* the worker takes no more */
	int nph;
	struct nph nph_state;
};

static int client_append(void *ctx, const char *buf, size_t n)
{
	struct relay *r = ctx;

	return queue_add(&r->to_client, buf, n);
}

/* content for fcgirec_take: the answer to the client, the log lines to ours */
static int on_content(void *ctx, int type, const char *p, size_t n)
{
	struct relay *r = ctx;

	if (type == FCGIREC_STDERR) {
		(void)!write(STDERR_FILENO, p, n);
		return 0;
	}
	return r->nph ? nph_write(&r->nph_state, p, n) : client_append(r, p, n);
}

/* Reads what stdin holds of the body: to the worker while it takes it, to
 * nowhere once it is gone (the web server may write all of the body before it
 * reads any of the answer). */
static void read_body(struct relay *r)
{
	char buf[CHUNK];
	size_t want = r->body_left < 0 || r->body_left > CHUNK ? CHUNK : (size_t)r->body_left;
	ssize_t got = read(STDIN_FILENO, buf, want);

	if (got < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (got > 0 && r->body_left > 0)
		r->body_left -= got;
	if (got <= 0)
		r->body_left = 0;
	if (r->send_dead || r->rd.ended || r->worker_eof)
		return;
	if ((got > 0 && queue_record(&r->to_worker, FCGIREC_STDIN, 1, buf, (size_t)got) != 0) ||
	    (r->body_left == 0 && queue_record(&r->to_worker, FCGIREC_STDIN, 1, NULL, 0) != 0))
		r->send_dead = 1;
}

/* Reads what the worker sent, when the client has taken all before it. */
static int read_worker(struct relay *r)
{
	char buf[CHUNK + 1];
	ssize_t got = recv(r->sock, buf, sizeof(buf), MSG_DONTWAIT);

	if (got < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (got <= 0) {
		r->worker_eof = r->worker_gone = 1;
		return 0;
	}
	if (fcgirec_take(&r->rd, buf, (size_t)got, on_content, r) != 0) {
		log_err("the resident worker sent a broken FastCGI record");
		return -1;
	}
	if (r->rd.ended && r->nph && nph_finish(&r->nph_state, 0) != 0)
		return -1;
	return 0;
}

/* Returns the exit status, or -1 when the worker went before taking it. */
static int relay_run(struct relay *r)
{
	int64_t done_ms = 0, moved_ms = 0;	/* when the worker was done; the
						 * client last took something */

	for (;;) {
		int live = !r->rd.ended && !r->worker_eof && !r->worker_gone;
		int out = r->to_client.off < r->to_client.len;
		struct pollfd p[3] = {
			{ .fd = -1 }, { .fd = -1 }, { .fd = -1 },
		};
		int64_t now = io_now_ms(), wait = BACKSTOP_MS;
		size_t sent;
		int rc;

		if (!r->rd.acked && r->worker_eof)
			return -1;
		if (!live) {
			if (!done_ms)
				done_ms = moved_ms = now;
			/* what is left of the body is drained for a while
			 * only: a trickle must not hold the process */
			if (now >= done_ms + RESIDENT_TAIL_MS)
				r->body_left = 0;
			wait = RESIDENT_TAIL_MS;
			if (out)
				wait = moved_ms + RESIDENT_TAIL_MS - now;
			if (r->body_left != 0 && done_ms + RESIDENT_TAIL_MS - now < wait)
				wait = done_ms + RESIDENT_TAIL_MS - now;
			if (out && now >= moved_ms + RESIDENT_TAIL_MS)
				break;	/* the client takes nothing more */
		}
		if ((r->rd.ended || r->worker_eof) && !out && r->body_left == 0)
			break;
		/* the worker: while it lives, and for what it left once the
		 * client has taken what came before (a hung-up socket is
		 * always ready) */
		if (!r->rd.ended && !r->worker_eof && (!r->worker_gone || !out)) {
			p[0].fd = r->sock;
			if (r->to_worker.off < r->to_worker.len && !r->send_dead)
				p[0].events |= POLLOUT;
			if (!out)
				p[0].events |= POLLIN;
		}
		if (out) {
			p[1].fd = STDOUT_FILENO;
			p[1].events = POLLOUT;
		}
		/* the body once a worker has the request, and only as fast
		 * as the worker takes it */
		if (r->body_left != 0 && r->rd.acked &&
		    (r->to_worker.off == r->to_worker.len || r->send_dead || !live)) {
			p[2].fd = STDIN_FILENO;
			p[2].events = POLLIN;
		}
		rc = poll(p, 3, (int)(wait > 0 ? wait : 0));
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0 || (rc == 0 && live))
			break;	/* nothing moved for the longest request there is */
		sent = r->to_client.off;
		if (p[1].revents && queue_send(&r->to_client, STDOUT_FILENO) != 0)
			break;	/* the client went away */
		if (r->to_client.off != sent)
			moved_ms = io_now_ms();
		if ((p[0].revents & POLLOUT) && queue_send(&r->to_worker, r->sock) != 0)
			r->send_dead = 1;
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			if (!out) {
				if (read_worker(r) != 0)
					break;
			} else {
				r->worker_gone = 1;
			}
		}
		if (p[2].revents)
			read_body(r);
	}
	if (!r->rd.acked)
		return -1;
	return r->rd.ended && r->to_client.off == r->to_client.len ? 0 : 1;
}

/* Connects to the workers' socket. Returns the socket, -1 to serve here. */
static int connect_workers(struct where *w)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return -1;
	memcpy(sa.sun_path, w->sock, strlen(w->sock) + 1);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int e = errno;

		close(fd);
		if (e == ENOENT || e == ECONNREFUSED)
			spawn(w);
		else if (e != EAGAIN)	/* EAGAIN: every worker busy, the queue full */
			log_warn("cannot connect to the resident workers at '%s': %s",
				 w->sock, strerror(e));
		return -1;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != geteuid()) {
		log_err("the process at '%s' is not this user's: not using it", w->sock);
		close(fd);
		return -1;
	}
	return fd;
}

int resident_relay(int nph)
{
	/* static: one request per process, and the NPH head buffer is too
	 * large to clear on every start */
	static struct relay r;
	struct where w;
	const char *cl = getenv("CONTENT_LENGTH");
	int rc = -1;

	if (where_init(&w) != 0)
		return -1;
	r.nph = nph;
	r.sock = connect_workers(&w);
	free(w.env);
	if (r.sock < 0)
		return -1;
	if (cl && *cl) {
		char *end;

		errno = 0;
		r.body_left = strtoll(cl, &end, 10);
		if (errno || *end || r.body_left < 0)
			r.body_left = 0;	/* the worker answers 400 */
	} else if (getenv("HTTP_TRANSFER_ENCODING")) {
		r.body_left = -1;
	}
	if (nph)
		nph_init(&r.nph_state, getenv("SERVER_PROTOCOL"), getenv("REQUEST_METHOD"),
			 client_append, &r);
	if (queue_head(&r.to_worker) == 0 &&
	    (r.body_left != 0 || queue_record(&r.to_worker, FCGIREC_STDIN, 1, NULL, 0) == 0))
		rc = relay_run(&r);
	close(r.sock);
	free(r.to_worker.p);
	free(r.to_client.p);
	return rc;
}

/* ---- the supervisor ---------------------------------------------------- */

static void on_alarm(int sig)
{
	(void)sig;
}

int resident_serve(void (*serve)(int sock))
{
	struct where w;
	struct sigaction sa;
	int lock, fd, sock, rc;

	if (where_init(&w) != 0)
		fatal("HOSTGATE_CGI_WORKERS and HOSTGATE_STATE_DIR set no usable resident workers");
	lock = open(w.lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lock < 0)
		fatal("cannot open '%s': %s", w.lock, strerror(errno));
	/* another supervisor: a live one keeps it (we go), one stopping
	 * lets go within moments */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;	/* no SA_RESTART: flock() must return */
	sigaction(SIGALRM, &sa, NULL);
	alarm(LOCK_WAIT_S);
	rc = flock(lock, LOCK_EX);
	alarm(0);
	if (rc != 0)
		return 0;
	fd = open(w.log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd >= 0) {
		dup2(fd, STDERR_FILENO);
		close(fd);
	}
	unlink(w.sock);		/* a stopped supervisor's, or none */
	umask(077);
	/* a short queue: when every worker is busy and as many requests
	 * wait, a CGI process's connect fails (EAGAIN) and it serves its
	 * request itself instead of queueing behind slow ones */
	sock = FCGX_OpenSocket(w.sock, w.workers);
	if (sock < 0)
		fatal("cannot listen on '%s': %s", w.sock, strerror(errno));
	rc = prefork_run(sock, w.workers, serve, w.sock, w.idle_s);
	unlink(w.sock);
	/* stopped on purpose: the next CGI process may start them at once */
	(void)futimens(lock, (const struct timespec[2]){ { 0, 0 }, { 0, 0 } });
	free(w.env);
	return rc;
}
