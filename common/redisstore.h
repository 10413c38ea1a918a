/*
 * redisstore — rate-limit and quota windows counted in Redis, so that every
 * gateway naming the same Redis, database and prefix counts together
 * (config-v1.md, gateway.counters). It is a back end of the counter store
 * (common/counter.h, struct counter_remote): the policies call counter_take,
 * counter_peek and counter_add as always, and the store asks Redis first.
 *
 *   struct redis_store *rs = redis_store_new(&target, "hostgate:");
 *   struct counter_remote r = { redis_store_op, rs, COUNTER_FALLBACK_LOCAL };
 *   counter_set_remote(counters, &r);
 *   ...
 *   counter_set_remote(counters, NULL);
 *   redis_store_free(rs);
 *
 * The window rule is counter.h's, exactly: a window of period_s starts with
 * the first counted call for a key; at most limit units pass in it; a refused
 * call counts nothing and starts nothing; the next window starts with the
 * first call after it ends. In Redis a window is one string key holding the
 * count, whose expiry (PX) is the window's end: Redis's clock decides the
 * edges and Retry-After (the remaining PTTL, rounded up to whole seconds, at
 * least 1), so hosts whose clocks differ still agree. Every counted call is
 * one EVALSHA of one Lua script (atomic on the server: no two gateways can
 * both take the last unit); the script's SHA-1 is computed here and the script
 * loaded (SCRIPT LOAD) only when Redis answers NOSCRIPT: after its own
 * restart, or the first time.
 *
 * Keys: prefix + the counter store's key ("rl:<scope>:<section>#<pos>:s:<id>",
 * which names the policy's scope, section and position, so two policies never
 * share a counter); a key longer than REDIS_STORE_KEY_HASH_OVER bytes becomes
 * prefix + "h:" + the hex SHA-256 of it.
 *
 * Failures are redisconn.h's (deadline timeout_ms, breaker): the op returns
 * COUNTER_UNAVAILABLE and the counter store applies on_failure. An error reply
 * other than NOSCRIPT (a key of another type, a script error) is a failure
 * too, logged.
 *
 * Ownership: the store owns its redis_conn (redis_store_conn lends it, for
 * health and metrics) and a copy of the prefix.
 */
#ifndef HOSTGATE_REDISSTORE_H
#define HOSTGATE_REDISSTORE_H

#include <stdint.h>

#include "common/counter.h"
#include "common/redisconn.h"

#define REDIS_STORE_KEY_HASH_OVER 200	/* bytes of prefix + key */
#define REDIS_STORE_PREFIX_MAX 64

struct redis_store;

/* Returns a new store (not yet connected) or NULL (no memory, prefix too
 * long). */
struct redis_store *redis_store_new(const struct redis_target *t, const char *prefix);
void redis_store_free(struct redis_store *rs);

/* struct counter_remote's op, ctx being a struct redis_store. */
enum counter_result redis_store_op(void *ctx, enum counter_op op, const char *key, uint32_t n,
				   uint32_t limit, uint32_t period_s, uint32_t *retry_after,
				   uint32_t *remaining);

struct redis_conn *redis_store_conn(struct redis_store *rs);

/* The Redis key for a counter key, into out (cap bytes). Returns 0, or -1
 * when cap is too small. For tests. */
int redis_store_key(const struct redis_store *rs, const char *key, char *out, size_t cap);

#endif
