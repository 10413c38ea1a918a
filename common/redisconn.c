/*
 * redisconn — see redisconn.h. hiredis's non-blocking contexts, driven by
 * hand: the command is appended and written, then the reply read, each wait
 * a fiber_poll bounded by what is left of the operation's deadline.
 */
#include "common/redisconn.h"

#include <hiredis/hiredis.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/fiber.h"
#include "common/log.h"

/* One connection. */
struct link {
	redisContext *ctx;
	uint64_t gen;		/* the conn's gen when it was opened */
	struct link *next;	/* on the idle list */
};

struct redis_conn {
	char *host, *unix_path, *password;
	int port, db, timeout_ms;
	struct link *idle;	/* open, no call on them */
	int n_open;		/* idle and in use */
	struct fiber_queue waiters;	/* calls waiting for a link */
	int users;		/* operations begun, not ended */
	pid_t pid;		/* the process the open links belong to */
	uint64_t gen;		/* + 1 with each failure: older links are closed */
	int64_t retry_at_ms;	/* breaker: no attempt before this */
	int64_t backoff_ms;	/* the next failure's wait */
	int up;
	uint64_t failures, connects;
	char error[REDIS_CONN_ERROR_MAX];
};

static int64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t mono_ms(void)
{
	return mono_us() / 1000;
}

/* Whole ms left until deadline_us, rounded up (a wait's timeout). */
static int ms_until(int64_t deadline_us)
{
	int64_t left = deadline_us - mono_us();

	return left <= 0 ? 0 : (int)((left + 999) / 1000);
}

static char *dup_or_null(const char *s, int *bad)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*bad = 1;
	return d;
}

struct redis_conn *redis_conn_new(const struct redis_target *t)
{
	struct redis_conn *rc = calloc(1, sizeof(*rc));
	int bad = 0;

	if (!rc)
		return NULL;
	rc->host = dup_or_null(t->host, &bad);
	rc->unix_path = dup_or_null(t->unix_path, &bad);
	rc->password = dup_or_null(t->password, &bad);
	rc->port = t->port;
	rc->db = t->db;
	rc->timeout_ms = t->timeout_ms > 0 ? t->timeout_ms : 50;
	rc->backoff_ms = REDIS_CONN_BACKOFF_MIN_MS;
	rc->up = 1;
	rc->pid = getpid();
	if (bad || (!rc->host && !rc->unix_path)) {
		redis_conn_free(rc);
		return NULL;
	}
	return rc;
}

/* Closes l; a call waiting for a link may open one now. */
static void link_close(struct redis_conn *rc, struct link *l)
{
	if (l->ctx)
		redisFree(l->ctx);	/* close(): a forked copy sends Redis nothing */
	free(l);
	rc->n_open--;
	fiber_wake(&rc->waiters, 0);
}

static void close_idle(struct redis_conn *rc)
{
	while (rc->idle) {
		struct link *l = rc->idle;

		rc->idle = l->next;
		link_close(rc, l);
	}
}

void redis_conn_free(struct redis_conn *rc)
{
	if (!rc)
		return;
	close_idle(rc);
	free(rc->host);
	free(rc->unix_path);
	if (rc->password) {
		explicit_bzero(rc->password, strlen(rc->password));
		free(rc->password);
	}
	free(rc);
}

void redis_conn_fail(struct redis_conn *rc, const char *why)
{
	int64_t now = mono_ms();

	rc->gen++;
	close_idle(rc);
	fiber_wake(&rc->waiters, 1);	/* they find the breaker open */
	if (rc->up)	/* the change, not every retry */
		log_warn("redis: %s; retrying in %lld ms", why, (long long)rc->backoff_ms);
	snprintf(rc->error, sizeof(rc->error), "%s", why);
	rc->up = 0;
	rc->failures++;
	rc->retry_at_ms = now + rc->backoff_ms;
	rc->backoff_ms *= 2;
	if (rc->backoff_ms > REDIS_CONN_BACKOFF_MAX_MS)
		rc->backoff_ms = REDIS_CONN_BACKOFF_MAX_MS;
}

/* A link that failed for why: closed; a failure of Redis when the link is
 * as new as the last failure (an older one's fate was decided then). */
static void link_lost(struct redis_conn *rc, struct link *l, const char *why)
{
	int current = l->gen == rc->gen;

	link_close(rc, l);
	if (current)
		redis_conn_fail(rc, why);
}

/* link_lost with the context's error as text without addresses. */
static void link_fail(struct redis_conn *rc, struct link *l, const char *what, int timed_out)
{
	char why[REDIS_CONN_ERROR_MAX];
	const redisContext *c = l->ctx;

	if (timed_out)
		snprintf(why, sizeof(why), "%s: timed out", what);
	else if (!c)
		snprintf(why, sizeof(why), "%s: out of memory", what);
	else if (c->err == REDIS_ERR_EOF)
		snprintf(why, sizeof(why), "%s: connection closed by Redis", what);
	else
		snprintf(why, sizeof(why), "%.32s: %.80s", what, c->errstr[0] ? c->errstr : "I/O error");
	link_lost(rc, l, why);
}

/* Waits until fd is ready for events or the deadline: 1 ready, 0 not. */
static int wait_fd(int fd, short events, int64_t deadline_us)
{
	struct pollfd p = { .fd = fd, .events = events };
	int ms, n = 0;

	while ((ms = ms_until(deadline_us)) > 0 &&
	       (n = fiber_poll(&p, 1, ms)) < 0 && errno == EINTR)
		;
	return n > 0;
}

/* One command on l: its reply, or NULL with *timed_out said (l's context
 * holds any other error). */
static redisReply *command(redisContext *c, int64_t deadline_us, int argc, const char **argv,
			   const size_t *lens, int *timed_out)
{
	void *reply = NULL;
	int done = 0;

	*timed_out = 0;
	if (redisAppendCommandArgv(c, argc, argv, lens) != REDIS_OK)
		return NULL;
	for (;;) {
		if (redisBufferWrite(c, &done) != REDIS_OK)
			return NULL;
		if (done)
			break;
		if (!wait_fd(c->fd, POLLOUT, deadline_us)) {
			*timed_out = 1;
			return NULL;
		}
	}
	for (;;) {
		if (redisGetReplyFromReader(c, &reply) != REDIS_OK)
			return NULL;
		if (reply)
			return reply;
		if (!wait_fd(c->fd, POLLIN, deadline_us)) {
			*timed_out = 1;
			return NULL;
		}
		if (redisBufferRead(c) != REDIS_OK)
			return NULL;
	}
}

/* One command for a new link's AUTH/SELECT: 0 when the reply is not an
 * error. */
static int setup_call(struct redis_conn *rc, struct link *l, int64_t deadline_us, int argc,
		      const char **argv, const char *what)
{
	int timed_out;
	redisReply *r = command(l->ctx, deadline_us, argc, argv, NULL, &timed_out);
	char why[REDIS_CONN_ERROR_MAX];

	if (!r) {
		link_fail(rc, l, what, timed_out);
		return -1;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		/* the text is Redis's own ("WRONGPASS ...", "ERR DB index ...") */
		snprintf(why, sizeof(why), "%s: %.80s", what, r->str);
		freeReplyObject(r);
		link_lost(rc, l, why);
		return -1;
	}
	freeReplyObject(r);
	return 0;
}

/* A new link, connected (and authenticated, its database selected) within
 * the deadline; NULL: failed (reported). */
static struct link *link_open(struct redis_conn *rc, int64_t deadline_us)
{
	struct link *l = calloc(1, sizeof(*l));
	int err = 0;
	socklen_t len = sizeof(err);
	char db[16];

	if (!l) {
		redis_conn_fail(rc, "connect: out of memory");
		return NULL;
	}
	l->gen = rc->gen;
	rc->n_open++;
	rc->connects++;
	l->ctx = rc->unix_path ? redisConnectUnixNonBlock(rc->unix_path)
			       : redisConnectNonBlock(rc->host, rc->port);
	if (!l->ctx || l->ctx->err) {
		link_fail(rc, l, "connect", 0);
		return NULL;
	}
	/* a non-blocking connect ends when the socket is writable */
	if (!wait_fd(l->ctx->fd, POLLOUT, deadline_us)) {
		link_fail(rc, l, "connect", 1);
		return NULL;
	}
	if (getsockopt(l->ctx->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err) {
		char why[REDIS_CONN_ERROR_MAX];

		snprintf(why, sizeof(why), "connect: %s", strerror(err ? err : errno));
		link_lost(rc, l, why);
		return NULL;
	}
	if (rc->password) {
		const char *argv[] = { "AUTH", rc->password };

		if (setup_call(rc, l, deadline_us, 2, argv, "AUTH") != 0)
			return NULL;
	}
	if (rc->db) {
		const char *argv[] = { "SELECT", db };

		snprintf(db, sizeof(db), "%d", rc->db);
		if (setup_call(rc, l, deadline_us, 2, argv, "SELECT") != 0)
			return NULL;
	}
	return l;
}

/* After a failure, until the retry time: Redis is not tried. */
static int breaker_open(const struct redis_conn *rc)
{
	return !rc->up && mono_ms() < rc->retry_at_ms;
}

/* A call now gets a link without waiting for one (outside fibers there is
 * nobody to wait for: it opens one). */
static int link_ready(const struct redis_conn *rc)
{
	return rc->idle || rc->n_open < REDIS_CONN_MAX || !fiber_on();
}

int redis_conn_begin(struct redis_conn *rc, struct redis_op *op)
{
	if (rc->pid != getpid()) {
		/* inherited across fork: the parent's; no call of this process
		 * is on one */
		close_idle(rc);
		rc->n_open = 0;
		rc->pid = getpid();
	}
	if (breaker_open(rc))
		return -1;
	op->rc = rc;
	op->deadline_us = mono_us() + (int64_t)rc->timeout_ms * 1000;
	rc->users++;
	return 0;
}

void redis_conn_end(struct redis_op *op)
{
	op->rc->users--;
}

int redis_conn_users(const struct redis_conn *rc)
{
	return rc->users;
}

redisReply *redis_conn_call(struct redis_op *op, int argc, const char **argv,
			    const size_t *lens)
{
	struct redis_conn *rc = op->rc;
	struct link *l;
	redisReply *r;
	int timed_out;

	for (;;) {
		int ms = ms_until(op->deadline_us);

		/* a failure since the operation began: Redis is not tried
		 * again */
		if (breaker_open(rc))
			return NULL;
		if (ms <= 0) {
			redis_conn_fail(rc, "timed out");
			return NULL;
		}
		if (link_ready(rc))
			break;
		(void)fiber_wait(&rc->waiters, ms);
	}
	if ((l = rc->idle))
		rc->idle = l->next;
	else if (!(l = link_open(rc, op->deadline_us)))
		return NULL;
	r = command(l->ctx, op->deadline_us, argc, argv, lens, &timed_out);
	if (!r) {
		link_fail(rc, l, argv[0], timed_out);
		return NULL;
	}
	if (l->gen != rc->gen) {
		/* opened before a failure that another call saw meanwhile: a
		 * good reply, but the breaker stays as that failure left it */
		link_close(rc, l);
		return r;
	}
	if (!rc->up) {
		log_info("redis: answering again");
		rc->up = 1;
		rc->error[0] = '\0';
	}
	rc->backoff_ms = REDIS_CONN_BACKOFF_MIN_MS;
	l->next = rc->idle;
	rc->idle = l;
	fiber_wake(&rc->waiters, 0);
	return r;
}

int redis_conn_ping(struct redis_conn *rc)
{
	const char *argv[] = { "PING" };
	struct redis_op op;
	redisReply *r;
	int ok;

	/* every connection busy: the calls in flight will tell; the health
	 * answer and the process's clock do not queue behind them */
	if (!link_ready(rc))
		return rc->up ? 0 : -1;
	if (redis_conn_begin(rc, &op) != 0)
		return -1;
	r = redis_conn_call(&op, 1, argv, NULL);
	redis_conn_end(&op);
	if (!r)
		return -1;
	ok = r->type == REDIS_REPLY_STATUS;
	freeReplyObject(r);
	if (!ok) {
		redis_conn_fail(rc, "PING: unexpected reply");
		return -1;
	}
	return 0;
}

void redis_conn_state(const struct redis_conn *rc, struct redis_conn_state *st)
{
	memset(st, 0, sizeof(*st));
	st->up = rc->up;
	st->connected = rc->n_open;
	st->failures = rc->failures;
	st->connects = rc->connects;
	memcpy(st->error, rc->error, sizeof(st->error));
}
