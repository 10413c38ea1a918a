/*
 * redisconn — see redisconn.h. hiredis's blocking API with the socket's send
 * and receive timeouts set, before each command, to what is left of the
 * operation's deadline.
 */
#include "common/redisconn.h"

#include <hiredis/hiredis.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

struct redis_conn {
	char *host, *unix_path, *password;
	int port, db, timeout_ms;
	redisContext *ctx;
	pid_t pid;		/* the process that opened ctx */
	int64_t deadline_us;	/* of the operation in progress (monotonic) */
	int64_t retry_at_ms;	/* breaker: no attempt before this */
	int64_t backoff_ms;	/* the next failure's wait */
	int sock_ms;		/* the socket's timeout now; 0: not set */
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

static struct timeval tv_ms(int64_t ms)
{
	struct timeval tv;

	if (ms < 1)
		ms = 1;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000 * 1000);
	return tv;
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
	if (bad || (!rc->host && !rc->unix_path)) {
		redis_conn_free(rc);
		return NULL;
	}
	return rc;
}

static void drop(struct redis_conn *rc)
{
	if (rc->ctx)
		redisFree(rc->ctx);	/* close(): a forked copy sends Redis nothing */
	rc->ctx = NULL;
	rc->sock_ms = 0;
}

void redis_conn_free(struct redis_conn *rc)
{
	if (!rc)
		return;
	drop(rc);
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

	drop(rc);
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

/* The context's error as text without addresses: a timeout is named so. */
static void fail_ctx(struct redis_conn *rc, const char *what)
{
	char why[REDIS_CONN_ERROR_MAX];
	const redisContext *c = rc->ctx;

	if (!c)
		snprintf(why, sizeof(why), "%s: out of memory", what);
	else if (c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK ||
					    errno == EINPROGRESS || errno == ETIMEDOUT))
		snprintf(why, sizeof(why), "%s: timed out", what);
	else if (c->err == REDIS_ERR_EOF)
		snprintf(why, sizeof(why), "%s: connection closed by Redis", what);
	else
		snprintf(why, sizeof(why), "%.32s: %.80s", what, c->errstr[0] ? c->errstr : "I/O error");
	redis_conn_fail(rc, why);
}

static int left_ms(const struct redis_conn *rc)
{
	int64_t left = rc->deadline_us - mono_us();

	return left <= 0 ? 0 : (int)((left + 999) / 1000);	/* whole ms, rounded up */
}

/* One command for connect's AUTH/SELECT: 0 when the reply is not an error. */
static int setup_call(struct redis_conn *rc, int argc, const char **argv, const char *what)
{
	redisReply *r = redis_conn_call(rc, argc, argv, NULL);
	char why[REDIS_CONN_ERROR_MAX];

	if (!r)
		return -1;
	if (r->type == REDIS_REPLY_ERROR) {
		/* the text is Redis's own ("WRONGPASS ...", "ERR DB index ...") */
		snprintf(why, sizeof(why), "%s: %.80s", what, r->str);
		freeReplyObject(r);
		redis_conn_fail(rc, why);
		return -1;
	}
	freeReplyObject(r);
	return 0;
}

static int connect_now(struct redis_conn *rc)
{
	struct timeval tv = tv_ms(left_ms(rc));
	char db[16];

	if (rc->unix_path)
		rc->ctx = redisConnectUnixWithTimeout(rc->unix_path, tv);
	else
		rc->ctx = redisConnectWithTimeout(rc->host, rc->port, tv);
	if (!rc->ctx || rc->ctx->err) {
		fail_ctx(rc, "connect");
		return -1;
	}
	rc->pid = getpid();
	rc->connects++;
	if (rc->password) {
		const char *argv[] = { "AUTH", rc->password };

		if (setup_call(rc, 2, argv, "AUTH") != 0)
			return -1;
	}
	if (rc->db) {
		const char *argv[] = { "SELECT", db };

		snprintf(db, sizeof(db), "%d", rc->db);
		if (setup_call(rc, 2, argv, "SELECT") != 0)
			return -1;
	}
	return 0;
}

int redis_conn_begin(struct redis_conn *rc)
{
	int64_t now = mono_ms();

	if (rc->ctx && rc->pid != getpid())
		drop(rc);	/* inherited across fork */
	rc->deadline_us = mono_us() + (int64_t)rc->timeout_ms * 1000;
	if (rc->ctx)
		return 0;
	if (!rc->up && now < rc->retry_at_ms)
		return -1;
	return connect_now(rc);
}

redisReply *redis_conn_call(struct redis_conn *rc, int argc, const char **argv,
			    const size_t *lens)
{
	redisReply *r;
	int left;

	if (!rc->ctx)
		return NULL;
	left = left_ms(rc);
	if (left <= 0) {
		redis_conn_fail(rc, "timed out");
		return NULL;
	}
	/* the usual call starts an operation: the whole timeout_ms is left and
	 * the socket already has it; only a later call of the operation (after
	 * a connect, SCRIPT LOAD) needs the two setsockopt() */
	if (left < rc->sock_ms - 1 || rc->sock_ms < left - 1 || rc->sock_ms == 0) {
		int set = left > rc->timeout_ms - 2 ? rc->timeout_ms : left;

		if (redisSetTimeout(rc->ctx, tv_ms(set)) != REDIS_OK) {
			fail_ctx(rc, "setting the timeout");
			return NULL;
		}
		rc->sock_ms = set;
	}
	r = redisCommandArgv(rc->ctx, argc, argv, lens);
	if (!r) {
		fail_ctx(rc, argv[0]);
		return NULL;
	}
	if (!rc->up) {
		log_info("redis: answering again");
		rc->up = 1;
		rc->error[0] = '\0';
	}
	rc->backoff_ms = REDIS_CONN_BACKOFF_MIN_MS;
	return r;
}

int redis_conn_ping(struct redis_conn *rc)
{
	const char *argv[] = { "PING" };
	redisReply *r;
	int ok;

	if (redis_conn_begin(rc) != 0)
		return -1;
	r = redis_conn_call(rc, 1, argv, NULL);
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
	st->connected = rc->ctx != NULL;
	st->failures = rc->failures;
	st->connects = rc->connects;
	memcpy(st->error, rc->error, sizeof(st->error));
}
