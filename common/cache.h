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
 * A Redis store (gateway.counters naming one, issue 14) would sit behind the
 * same four calls: cache_open would take the Redis client, and each call would
 * try Redis first and fall back to this file when it fails (docs/state.md).
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

/* Fills *st (under the lock). */
void cache_get_stats(struct cache_store *cs, struct cache_stats *st);

/* Tests only: takes the store's lock and keeps it (the caller then dies), and
 * a function called in the middle of writing a value (NULL: none). */
void cache_test_lock(struct cache_store *cs);
extern void (*cache_test_mid_write)(void);

#endif
