/*
 * cache — the response and value cache of cache-lookup/cache-store and
 * cache-lookup-value/cache-store-value/cache-remove-value, shared by every
 * process of one host: a fixed-size file "{state_dir}/cache" mapped
 * MAP_SHARED (common/shmfile.h; docs/state.md has the layout). Nothing here
 * knows about policies or HTTP: a key is a byte string, a value is a byte
 * string, each with a time to live; the callers (policy/pol_cache_*.c) build
 * the key and serialise what they keep.
 *
 *   struct cache_store *cs = cache_open(getenv("HOSTGATE_STATE_DIR"), 0);
 *   char *v; size_t len; int64_t age;
 *   if (cache_lookup(cs, key, klen, time(NULL), &v, &len, &age) == 1)
 *           ... use v[0..len) (a copy, NUL-terminated, the caller frees it)
 *   cache_store(cs, key, klen, value, vlen, ttl_s, time(NULL));
 *   cache_remove(cs, key, klen, time(NULL));
 *   cache_close(cs);
 *
 * Bounded: the file has a fixed data area (bytes given at creation; 0 is
 * CACHE_DEFAULT_BYTES, 64 MiB) cut in CACHE_BLOCK-byte blocks, and a slot per
 * 4 KiB of it (an entry is a slot plus a chain of blocks). An existing file
 * keeps its own size. A value larger than CACHE_VALUE_MAX, or than a quarter
 * of the data area, is refused (cache_store returns -1): one answer never
 * empties the cache.
 *
 * Evicting: a store that finds no free slot or not enough free blocks first
 * drops every expired entry, then runs CLOCK over the slots (an entry read
 * since the hand last passed gets a second chance). Expired entries are also
 * dropped when a lookup meets them.
 *
 * Keys are hashed with SipHash-2-4 under a random 128-bit seed kept in the
 * file (shmfile_hash128: 128 bits identify a key; keys are not stored).
 * Values are stored whole, with a SipHash checksum checked on every read: an
 * entry that does not match is dropped and answered as a miss, never served.
 *
 * Multi-process: every operation holds one lock word in the file holding the
 * holder's pid, for the few microseconds of a hash walk and a copy. A process
 * that dies holding it (SIGKILL) does not wedge the cache: a waiter that sees
 * the holder dead takes the lock over and REPAIRS the file from its slots —
 * an entry being written (state WRITING) is dropped, every live entry's block
 * chain is checked (in range, no block used twice, the right length), the
 * hash chains and free lists are rebuilt. An entry becomes visible (LIVE)
 * only after its value and checksum are written: a half-written entry is never
 * served. Two processes filling the same key: both stores happen, one after
 * the other, and the last one stays; a reader sees one of them, whole.
 *
 * The lock is named by pid, so one process must not use the store from two
 * threads at once (the app forks its workers and has no threads).
 *
 * A shared store (Redis, when gateway.counters names one: common/cacheredis.h)
 * plugs in with cache_set_remote; the *_at calls then take a cache_where:
 *
 *   cache_set_remote(cs, &remote);          process-local; NULL drops it
 *   cache_lookup_at(cs, CACHE_SHARED, key, klen, now, &v, &len, &age);
 *   cache_store_at(cs, CACHE_SHARED, key, klen, value, vlen, ttl_s, now);
 *   cache_remove_at(cs, CACHE_SHARED, key, klen);
 *
 * CACHE_LOCAL is this file only (caching-type "internal"; the plain calls
 * above). CACHE_SHARED is the remote store when one is set, and this file when
 * none is or when the remote call fails (unavailable, timed out, breaker
 * open): for that call only, counted in cache_stats.remote_fallbacks, so a
 * Redis outage costs hit rate, never a request. A remote answer (hit or miss)
 * is final: a remote miss does not look here. A remove drops the key from
 * both (an entry stored here during an outage must not come back at the next
 * one). Values are bounded as here (CACHE_VALUE_MAX) before the remote is
 * asked.
 *
 * Ownership: the store owns its mapping; keys and values are only read during
 * the call; cache_lookup's *value is the caller's. Errors: cache_open returns
 * NULL (logged); the others return -1 for a bad argument or no room, never
 * abort, never log on the request path except the first full-store warning.
 */
#ifndef HOSTGATE_CACHE_H
#define HOSTGATE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#define CACHE_FILE "cache"
#define CACHE_DEFAULT_BYTES ((size_t)64 << 20)
#define CACHE_MIN_BYTES ((size_t)64 << 10)
#define CACHE_MAX_BYTES ((size_t)512 << 20)
#define CACHE_BLOCK 1024u		/* bytes of one data block */
#define CACHE_BYTES_PER_SLOT 4096u	/* one slot per this much data */
#define CACHE_VALUE_MAX ((size_t)4 << 20)	/* the largest value stored */
#define CACHE_KEY_MAX ((size_t)1 << 20)		/* longer keys are refused */
#define CACHE_TTL_MAX (365u * 86400u)

struct cache_store;

struct cache_stats {
	uint32_t slots, blocks;		/* sizes of the file */
	uint32_t live;			/* entries stored (expired or not) */
	uint32_t free_blocks;
	uint64_t hits, misses, stores, evictions, expired, corrupt, takeovers;
	uint64_t remote_fallbacks;	/* CACHE_SHARED calls the remote failed */
};

/* Where a call goes (caching-type): this file, or the remote store falling
 * back to this file. */
enum cache_where { CACHE_LOCAL = 0, CACHE_SHARED = 1 };

/* A remote store (common/cacheredis.h). Each returns as the call of the same
 * name, except -1 means "unavailable now" (the caller falls back); lookup's
 * *value is malloc'd and NUL-terminated. The arguments are checked before. */
struct cache_remote {
	int (*lookup)(void *ctx, const void *key, size_t key_len, int64_t now, char **value,
		      size_t *len, int64_t *age);
	int (*store)(void *ctx, const void *key, size_t key_len, const void *value, size_t len,
		     uint32_t ttl_s, int64_t now);
	int (*remove)(void *ctx, const void *key, size_t key_len);
	void *ctx;
};

/* Opens "{state_dir}/cache", creating it with a data area of bytes (0: the
 * default; clamped to [CACHE_MIN_BYTES, CACHE_MAX_BYTES]) when absent.
 * Returns the store or NULL (logged). */
struct cache_store *cache_open(const char *state_dir, size_t bytes);
/* Unmaps; cs may be NULL. */
void cache_close(struct cache_store *cs);

/* Looks key[0..key_len) up at now: 1 (hit: *value a new NUL-terminated copy
 * of *len bytes, *age whole seconds since it was stored; age may be NULL), 0
 * (miss: absent, expired, or failing its checksum) or -1 (bad argument, out of
 * memory). */
int cache_lookup(struct cache_store *cs, const void *key, size_t key_len, int64_t now,
		 char **value, size_t *len, int64_t *age);
/* Stores value[0..len) under key for ttl_s seconds (1..CACHE_TTL_MAX) from
 * now, replacing what the key held. Returns 0, or -1 (too large, bad
 * argument). */
int cache_store(struct cache_store *cs, const void *key, size_t key_len, const void *value,
		size_t len, uint32_t ttl_s, int64_t now);
/* Drops key. Returns 1 (it was there), 0 (absent) or -1 (bad argument). */
int cache_remove(struct cache_store *cs, const void *key, size_t key_len);

/* Sets (a copy of *r) or drops (r NULL) the remote store of this process's
 * handle; cs may be NULL. The remote's ctx must outlive its use here. */
void cache_set_remote(struct cache_store *cs, const struct cache_remote *r);
/* As cache_lookup, cache_store and cache_remove, at where (see above). */
int cache_lookup_at(struct cache_store *cs, enum cache_where where, const void *key,
		    size_t key_len, int64_t now, char **value, size_t *len, int64_t *age);
int cache_store_at(struct cache_store *cs, enum cache_where where, const void *key,
		   size_t key_len, const void *value, size_t len, uint32_t ttl_s, int64_t now);
int cache_remove_at(struct cache_store *cs, enum cache_where where, const void *key,
		    size_t key_len);

/* Fills *st (under the lock). */
void cache_get_stats(struct cache_store *cs, struct cache_stats *st);

/* Tests only: takes the store's lock and keeps it (the caller then dies), and
 * a function called in the middle of writing a value (NULL: none). */
void cache_test_lock(struct cache_store *cs);
extern void (*cache_test_mid_write)(void);

#endif
