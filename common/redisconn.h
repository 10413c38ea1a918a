/*
 * redisconn — one process's connection to Redis, with the rules every user of
 * Redis in the gateway needs and none should repeat: connect lazily, keep the
 * connection for the life of the process, bound every operation by one
 * deadline, and after a failure stop trying for a while (a small circuit
 * breaker of its own). The only file besides redisstore.c that includes
 * hiredis (users that read replies include it too); it knows nothing
 * about counters. The counter store
 * (common/redisstore.h) is its first user; a response cache would be the next:
 *
 *   struct redis_target t = { .host = "127.0.0.1", .port = 6379, .timeout_ms = 50 };
 *   struct redis_conn *rc = redis_conn_new(&t);         copies t
 *   if (redis_conn_begin(rc) == 0) {                     connected, deadline set
 *           redisReply *r = redis_conn_call(rc, argc, argv, lens);
 *           if (r) { ... use r ...; freeReplyObject(r); }
 *           ... more calls share the same deadline ...
 *   }                                                    else: unavailable now
 *   redis_conn_free(rc);
 *
 * Deadline: redis_conn_begin starts one operation of at most timeout_ms: the
 * connect (when there is no connection), AUTH, SELECT and every
 * redis_conn_call until the next begin share it (each socket wait is set to
 * what is left), so a caller never waits longer than timeout_ms for Redis
 * whatever Redis does (refuses, accepts and never answers, answers slowly).
 * A host name is resolved by getaddrinfo, which the deadline does not bound:
 * name Redis by address (or a unix socket) where that matters.
 *
 * Failure: a connect that fails, an I/O error or timeout, or a reply that is
 * a protocol error drops the connection and opens the breaker: begin returns
 * -1 at once (no system call) until the retry time, which starts 1 s after
 * the failure and doubles with each failure in a row up to
 * REDIS_CONN_BACKOFF_MAX_MS; one success resets it. An error reply from Redis
 * (-ERR, -NOSCRIPT) is a reply, not a failure: the caller decides.
 *
 * Fork: a connection belongs to the process that opened it; a child that
 * inherits one (the app forks its FastCGI workers) drops it without a word to
 * Redis and connects on its own first use.
 *
 * State for health and metrics: redis_conn_state says ok / degraded with the
 * last error as text (no address or password in it) and how many failures
 * this process has seen.
 *
 * Ownership: the conn owns copies of the target's strings (the password is
 * wiped when freed). Replies belong to the caller (freeReplyObject). One
 * thread at a time.
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

struct redis_conn_state {
	int up;			/* 1: the last operation worked (or none yet failed) */
	int connected;		/* a connection is open in this process */
	uint64_t failures;	/* in this process */
	uint64_t connects;	/* connections opened by this process */
	char error[REDIS_CONN_ERROR_MAX];	/* "" when up */
};

/* Returns a new conn (not yet connected) or NULL (no memory). */
struct redis_conn *redis_conn_new(const struct redis_target *t);
void redis_conn_free(struct redis_conn *rc);

/* Starts one operation: 0 when a connection is open (made now if needed)
 * with the deadline set, -1 when Redis is unavailable (breaker open, or the
 * connect failed: the breaker is now open). */
int redis_conn_begin(struct redis_conn *rc);
/* One command within the operation's deadline. Returns the reply (the
 * caller frees it; an error reply included) or NULL: the connection failed
 * (dropped, breaker open). */
struct redisReply *redis_conn_call(struct redis_conn *rc, int argc, const char **argv,
				   const size_t *lens);
/* A reply the caller found unusable (a protocol surprise): fail like I/O. */
void redis_conn_fail(struct redis_conn *rc, const char *why);
/* PING within one operation: 0 ok, -1 unavailable. For health answers. */
int redis_conn_ping(struct redis_conn *rc);

void redis_conn_state(const struct redis_conn *rc, struct redis_conn_state *st);

#endif
