/*
 * redisconn — one process's connections to Redis, with the rules every user
 * of Redis in the gateway needs and none should repeat: connect lazily, keep
 * connections for the life of the process, bound every operation by one
 * deadline, never hold up the process's other requests while Redis answers,
 * and after a failure stop trying for a while (a small circuit breaker of its
 * own). The only file besides redisstore.c that includes hiredis (users that
 * read replies include it too); it knows nothing about counters. The counter
 * store (common/redisstore.h) is its first user; the cache's store
 * (common/cacheredis.h) shares the same connections:
 *
 *   struct redis_target t = { .host = "127.0.0.1", .port = 6379, .timeout_ms = 50 };
 *   struct redis_conn *rc = redis_conn_new(&t);         copies t
 *   struct redis_op op;
 *   if (redis_conn_begin(rc, &op) == 0) {                 deadline set
 *           redisReply *r = redis_conn_call(&op, argc, argv, lens);
 *           if (r) { ... use r ...; freeReplyObject(r); }
 *           ... more calls share the same deadline ...
 *           redis_conn_end(&op);
 *   }                                                     else: unavailable now
 *   redis_conn_free(rc);                                  no operation in progress
 *
 * Deadline: an operation (begin to end) takes at most timeout_ms: the
 * connect (when no connection is free), AUTH, SELECT and every call share
 * it, so a caller never waits longer than timeout_ms for Redis whatever
 * Redis does (refuses, accepts and never answers, answers slowly). A host
 * name is resolved by getaddrinfo, which the deadline does not bound: name
 * Redis by address (or a unix socket) where that matters.
 *
 * Waiting: the sockets are non-blocking and every wait is a fiber_poll
 * (common/fiber.h): on a fiber, the process's other requests run while this
 * one waits for Redis; elsewhere (CGI, tools) it is poll(2). A call takes a
 * connection of its own for its command and reply and gives it back after,
 * so requests of one process that count at the same time each use one:
 * connections are opened as calls need them, up to REDIS_CONN_MAX, and
 * kept; past that a call waits (within its deadline) for one to be given
 * back, so a slow Redis is not sent ever more connections.
 *
 * Failure: a connect that fails, an I/O error or timeout, or a reply that is
 * a protocol error (or one the caller calls unusable, redis_conn_fail)
 * closes the connections and opens the breaker: begin returns -1 at once (no
 * system call) until the retry time, which starts 1 s after the failure and
 * doubles with each failure in a row up to REDIS_CONN_BACKOFF_MAX_MS; one
 * success on a connection opened since resets it. Calls already waiting on a
 * connection opened before the failure finish as they will (their replies
 * are good ones), and their connections are closed after: they neither
 * count as another failure nor close the breaker. An error reply from Redis
 * (-ERR, -NOSCRIPT) is a reply, not a failure: the caller decides.
 *
 * Fork: connections belong to the process that opened them; a child that
 * inherits some (the app forks its FastCGI workers) drops them without a
 * word to Redis and connects on its own first use.
 *
 * State for health and metrics: redis_conn_state says ok / degraded with the
 * last error as text (no address or password in it) and how many failures
 * this process has seen.
 *
 * Ownership: the conn owns copies of the target's strings (the password is
 * wiped when freed). Replies belong to the caller (freeReplyObject). A conn
 * is freed only when redis_conn_users says no operation is in progress (a
 * fiber may be waiting inside one). One thread at a time.
 */
#ifndef HOSTGATE_REDISCONN_H
#define HOSTGATE_REDISCONN_H

#include <stddef.h>
#include <stdint.h>

/* hiredis's reply (hiredis/hiredis.h): only redisconn.c and its users that
 * read replies include hiredis */
struct redisReply;

#define REDIS_CONN_BACKOFF_MIN_MS 1000
#define REDIS_CONN_BACKOFF_MAX_MS 8000
#define REDIS_CONN_ERROR_MAX 128	/* bytes of the last error, with the NUL */
#define REDIS_CONN_MAX 8	/* connections one process opens at most */

/* Where Redis is: host and port, or unix_path (host NULL). */
struct redis_target {
	const char *host;
	int port;
	const char *unix_path;
	int db;			/* SELECTed after connecting when not 0 */
	const char *password;	/* NULL: no AUTH */
	int timeout_ms;		/* each operation, 1..10000 */
};

struct redis_conn;

/* One operation: filled by redis_conn_begin, passed to its calls and end. */
struct redis_op {
	struct redis_conn *rc;
	int64_t deadline_us;	/* monotonic */
};

struct redis_conn_state {
	int up;			/* 1: the last operation worked (or none yet failed) */
	int connected;		/* connections open in this process now */
	uint64_t failures;	/* in this process */
	uint64_t connects;	/* connections opened by this process */
	char error[REDIS_CONN_ERROR_MAX];	/* "" when up */
};

/* Returns a new conn (not yet connected) or NULL (no memory). */
struct redis_conn *redis_conn_new(const struct redis_target *t);
void redis_conn_free(struct redis_conn *rc);

/* Starts one operation: 0 with its deadline set (end it with
 * redis_conn_end), -1 when Redis is unavailable (the breaker is open: there
 * is nothing to end). */
int redis_conn_begin(struct redis_conn *rc, struct redis_op *op);
/* One command within the operation's deadline, on a connection of its own
 * for the command and its reply (connected now when none is free). Returns
 * the reply (the caller frees it; an error reply included) or NULL: Redis
 * failed (the breaker is open). */
struct redisReply *redis_conn_call(struct redis_op *op, int argc, const char **argv,
				   const size_t *lens);
void redis_conn_end(struct redis_op *op);
/* Operations begun and not ended (fibers may wait inside them). */
int redis_conn_users(const struct redis_conn *rc);
/* A reply the caller found unusable (a protocol surprise): fail like I/O. */
void redis_conn_fail(struct redis_conn *rc, const char *why);
/* PING within one operation: 0 ok, -1 unavailable. For health answers.
 * With every connection busy on calls, the state as they left it, at once. */
int redis_conn_ping(struct redis_conn *rc);

void redis_conn_state(const struct redis_conn *rc, struct redis_conn_state *st);

#endif
