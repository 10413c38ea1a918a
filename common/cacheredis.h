/*
 * cacheredis — the cache's shared store in Redis (config-v1.md: the cache
 * lives "in Redis when gateway.counters names one"), a struct cache_remote
 * (common/cache.h) over the worker's Redis connections (common/redisconn.h,
 * the counters' ones: redis_store_conn), so the cache has no connection,
 * deadline or breaker of its own:
 *
 *   struct cache_redis *cr = cache_redis_new(redis_store_conn(rs), "hostgate:");
 *   struct cache_remote r;
 *   cache_redis_remote(cr, &r);
 *   cache_set_remote(cache, &r);
 *   ... cache_lookup_at(cache, CACHE_SHARED, ...) ...
 *   cache_set_remote(cache, NULL);
 *   cache_redis_free(cr);             before the connection goes
 *
 * Keys: prefix + "cache:" + the hex SHA-256 of the cache key (the cache
 * policies' key, which names the API, operation and what the entry varies
 * by), so every gateway naming the same Redis, database and prefix shares the
 * entries of the same API and key, and a key of any length makes one short
 * Redis key. Values: Redis strings (binary safe) "HGC1", the stored-at unix
 * time (8 bytes, big-endian, for Age), then the value's bytes; written with
 * SET key value PX ttl (Redis expires them), read with GET, dropped with DEL.
 * A value is at most CACHE_VALUE_MAX bytes (as the shared-memory store); a
 * reply longer than that, or not starting with "HGC1", is a miss.
 *
 * Failures: redisconn's. Each call is one operation (redis_conn_begin: at
 * most timeout_ms, nothing while the breaker is open); a connection failure
 * returns -1 and the cache falls back to its file for that call. An error
 * reply from Redis (a key of another type, OOM under maxmemory) is a miss for
 * GET and a failure for SET (logged once a minute at most).
 *
 * Ownership: the cache_redis borrows the connection (it must outlive it) and
 * copies the prefix. One thread at a time, as the connection.
 */
#ifndef HOSTGATE_CACHEREDIS_H
#define HOSTGATE_CACHEREDIS_H

#include <stddef.h>

#include "common/cache.h"
#include "common/redisconn.h"

#define CACHE_REDIS_PREFIX_MAX 64	/* bytes, as gateway.counters' prefix */
#define CACHE_REDIS_KEY_MAX (CACHE_REDIS_PREFIX_MAX + 6 + 64 + 1)

struct cache_redis;

/* Returns a new store over rc or NULL (no memory, prefix too long). */
struct cache_redis *cache_redis_new(struct redis_conn *rc, const char *prefix);
void cache_redis_free(struct cache_redis *cr);

/* Fills *out with cr's ops and cr as ctx. */
void cache_redis_remote(struct cache_redis *cr, struct cache_remote *out);

/* The Redis key of a cache key into out (CACHE_REDIS_KEY_MAX bytes). For
 * tests and the docs. */
void cache_redis_key(const struct cache_redis *cr, const void *key, size_t key_len,
		     char out[CACHE_REDIS_KEY_MAX]);

#endif
