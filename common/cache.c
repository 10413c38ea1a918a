#include "common/cache.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/shmfile.h"

/*
 * The file: a 192-byte header, then nbuckets bucket heads (uint32, a slot
 * index or NONE), nslots 64-byte slots, nblocks block links (uint32: the next
 * block of a chain, or of the free list) and nblocks data blocks of
 * CACHE_BLOCK bytes. nbuckets == nslots.
 *
 * A slot is FREE (on the free-slot list through next), WRITING (being filled:
 * on no list; dropped by a repair) or LIVE (on its bucket's chain through
 * next; its value in the chain of ceil(len / CACHE_BLOCK) blocks from first).
 * Everything is changed under the lock word; the state is written last when
 * an entry is made and first when it is dropped, so a repair after a death
 * (cache_repair) can rebuild every list from the states and chains alone.
 */

#define CACHE_MAGIC "HGCACHE"
#define CACHE_VERSION 1u
#define NONE UINT32_MAX

#define ST_FREE 0u
#define ST_LIVE 1u
#define ST_WRITING 2u

#define TWEAK_KEY 0x6b6579u
#define TWEAK_SUM 0x73756du
#define FULL_WARN_EVERY_S 60

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free across processes");

struct cache_hdr {
	struct shmfile_hdr shm;		/* 24 */
	uint64_t seed[2];
	uint32_t nslots, nblocks;
	_Atomic uint64_t lock;		/* 0 or the holder's pid */
	uint32_t hand, free_slot, free_block, nfree_blocks;
	uint32_t live, pad;
	uint64_t hits, misses, stores, evictions, expired, corrupt;
	_Atomic uint64_t takeovers;
};
#define HDR_SIZE 192
_Static_assert(sizeof(struct cache_hdr) <= HDR_SIZE, "cache header fits in HDR_SIZE bytes");

struct cache_slot {
	uint64_t k1, k2;
	uint64_t sum;		/* checksum of the value */
	int64_t created;
	int64_t expires;
	uint32_t len;
	uint32_t first;		/* first block, NONE when len is 0 */
	uint32_t next;		/* bucket chain (LIVE) or free list (FREE) */
	_Atomic uint32_t state;
	uint32_t ref;		/* read since the clock hand passed */
	uint32_t pad;
};
_Static_assert(sizeof(struct cache_slot) == 64, "cache slot is 64 bytes");

struct cache_store {
	struct shmfile file;
	struct cache_hdr *hdr;
	uint32_t *buckets;
	struct cache_slot *slots;
	uint32_t *links;
	unsigned char *data;
	uint32_t nslots, nblocks;
	int64_t warned_at;
	char path[4096];
};

void (*cache_test_mid_write)(void);

/* ---- the file ------------------------------------------------------------- */

static size_t cache_file_size(uint32_t nslots, uint32_t nblocks)
{
	return HDR_SIZE + (size_t)nslots * sizeof(uint32_t) + (size_t)nslots * sizeof(struct cache_slot) +
	       (size_t)nblocks * sizeof(uint32_t) + (size_t)nblocks * CACHE_BLOCK;
}

static void cache_map(struct cache_store *cs, void *base)
{
	char *p = base;

	cs->hdr = base;
	cs->nslots = cs->hdr->nslots;
	cs->nblocks = cs->hdr->nblocks;
	p += HDR_SIZE;
	cs->buckets = (uint32_t *)(void *)p;
	p += (size_t)cs->nslots * sizeof(uint32_t);
	cs->slots = (struct cache_slot *)(void *)p;
	p += (size_t)cs->nslots * sizeof(struct cache_slot);
	cs->links = (uint32_t *)(void *)p;
	p += (size_t)cs->nblocks * sizeof(uint32_t);
	cs->data = (unsigned char *)p;
}

/* Empty lists: every slot and block free, in order. */
static void cache_format(struct cache_store *cs)
{
	struct cache_hdr *h = cs->hdr;
	uint32_t i;

	for (i = 0; i < cs->nslots; i++) {
		cs->buckets[i] = NONE;
		memset(&cs->slots[i], 0, sizeof(cs->slots[i]));
		cs->slots[i].next = i + 1 < cs->nslots ? i + 1 : NONE;
	}
	for (i = 0; i < cs->nblocks; i++)
		cs->links[i] = i + 1 < cs->nblocks ? i + 1 : NONE;
	h->free_slot = 0;
	h->free_block = 0;
	h->nfree_blocks = cs->nblocks;
	h->hand = 0;
	h->live = 0;
}

struct geometry {
	uint32_t nslots, nblocks;
};

static int cache_init(void *base, size_t size, void *arg)
{
	const struct geometry *g = arg;
	struct cache_store tmp;

	(void)size;
	memset(&tmp, 0, sizeof(tmp));
	shmfile_seed(((struct cache_hdr *)base)->seed);
	((struct cache_hdr *)base)->nslots = g->nslots;
	((struct cache_hdr *)base)->nblocks = g->nblocks;
	cache_map(&tmp, base);
	cache_format(&tmp);
	return 0;
}

static int cache_check(const void *base, size_t size, void *arg)
{
	const struct cache_hdr *h = base;

	(void)arg;
	if (size < HDR_SIZE || h->nslots < 16 || h->nblocks < 16 ||
	    (size_t)h->nblocks * CACHE_BLOCK > CACHE_MAX_BYTES ||
	    cache_file_size(h->nslots, h->nblocks) != size)
		return -1;
	return 0;
}

struct cache_store *cache_open(const char *state_dir, size_t bytes)
{
	struct shmfile_want want = { CACHE_MAGIC, CACHE_VERSION, 0 };
	struct cache_store *cs;
	struct geometry g;

	if (bytes == 0)
		bytes = CACHE_DEFAULT_BYTES;
	if (bytes < CACHE_MIN_BYTES)
		bytes = CACHE_MIN_BYTES;
	if (bytes > CACHE_MAX_BYTES)
		bytes = CACHE_MAX_BYTES;
	g.nblocks = (uint32_t)(bytes / CACHE_BLOCK);
	g.nslots = (uint32_t)(bytes / CACHE_BYTES_PER_SLOT);
	want.size = cache_file_size(g.nslots, g.nblocks);
	cs = calloc(1, sizeof(*cs));
	if (!cs) {
		log_err("cannot open cache: out of memory");
		return NULL;
	}
	if (shmfile_path(cs->path, sizeof(cs->path), state_dir, CACHE_FILE) < 0) {
		log_err("cannot open cache in '%s': name too long", state_dir);
		free(cs);
		return NULL;
	}
	if (shmfile_open(&cs->file, cs->path, &want, cache_init, cache_check, &g) < 0) {
		free(cs);
		return NULL;
	}
	cache_map(cs, cs->file.base);
	cs->warned_at = INT64_MIN;
	return cs;
}

void cache_close(struct cache_store *cs)
{
	if (!cs)
		return;
	shmfile_close(&cs->file);
	free(cs);
}

/* ---- repair --------------------------------------------------------------- */

static uint32_t blocks_for(uint32_t len)
{
	return (uint32_t)(((uint64_t)len + CACHE_BLOCK - 1) / CACHE_BLOCK);
}

static uint32_t bucket_of(const struct cache_store *cs, uint64_t k2)
{
	return (uint32_t)(k2 % cs->nslots);
}

/* Marks the chain of slot s in used; 0, or -1 (out of range, a block used
 * twice, too short) with nothing left marked. */
static int chain_mark(struct cache_store *cs, const struct cache_slot *s, unsigned char *used)
{
	uint32_t n = blocks_for(s->len), b = s->first, i, k;

	for (i = 0; i < n; i++) {
		if (b >= cs->nblocks || used[b])
			break;
		used[b] = 1;
		b = cs->links[b];
	}
	if (i == n)
		return 0;
	for (k = 0, b = s->first; k < i; k++) {
		used[b] = 0;
		b = cs->links[b];
	}
	return -1;
}

/* Rebuilds the lists from the slots after a holder of the lock died: called
 * with the lock taken over. Without memory for the bitmap, empties the cache
 * (always safe). */
static void cache_repair(struct cache_store *cs)
{
	struct cache_hdr *h = cs->hdr;
	unsigned char *used = calloc(cs->nblocks ? cs->nblocks : 1, 1);
	uint32_t i, b, prev_free = NONE, nfree = 0;

	if (!used) {
		cache_format(cs);
		return;
	}
	for (i = 0; i < cs->nslots; i++)
		cs->buckets[i] = NONE;
	h->free_slot = NONE;
	h->live = 0;
	for (i = cs->nslots; i-- > 0;) {
		struct cache_slot *s = &cs->slots[i];
		uint32_t st = atomic_load_explicit(&s->state, memory_order_acquire), j, bk;

		if (st == ST_LIVE && s->len <= CACHE_VALUE_MAX && chain_mark(cs, s, used) == 0) {
			/* a key stored twice (a death between the two): keep the newer */
			bk = bucket_of(cs, s->k2);
			for (j = cs->buckets[bk]; j != NONE; j = cs->slots[j].next)
				if (cs->slots[j].k1 == s->k1 && cs->slots[j].k2 == s->k2)
					break;
			if (j == NONE) {
				s->next = cs->buckets[bk];
				cs->buckets[bk] = i;
				h->live++;
				continue;
			}
			/* drop s: give its blocks back to the bitmap */
			{
				uint32_t n = blocks_for(s->len), k;

				for (k = 0, b = s->first; k < n; k++) {
					used[b] = 0;
					b = cs->links[b];
				}
			}
		}
		atomic_store_explicit(&s->state, ST_FREE, memory_order_relaxed);
		s->next = h->free_slot;
		h->free_slot = i;
	}
	for (b = cs->nblocks; b-- > 0;) {
		if (used[b])
			continue;
		cs->links[b] = prev_free;
		prev_free = b;
		nfree++;
	}
	h->free_block = prev_free;
	h->nfree_blocks = nfree;
	h->hand %= cs->nslots;
	free(used);
}

/* ---- the lock ------------------------------------------------------------- */

/* Our own pid in the lock we wait for is a previous process that had our pid
 * (a process never takes the lock twice). */
static int holder_dead(uint64_t pid)
{
	return pid == (uint64_t)getpid() || shmfile_pid_dead((int)pid);
}

static void cache_lock(struct cache_store *cs)
{
	uint64_t me = (uint64_t)getpid(), x;
	unsigned spins = 0;

	for (;;) {
		x = 0;
		if (atomic_compare_exchange_weak_explicit(&cs->hdr->lock, &x, me,
							  memory_order_acquire,
							  memory_order_relaxed))
			return;
		if (x != 0 && ++spins % 16 == 0 && holder_dead(x) &&
		    atomic_compare_exchange_strong(&cs->hdr->lock, &x, me)) {
			atomic_fetch_add_explicit(&cs->hdr->takeovers, 1, memory_order_relaxed);
			log_warn("cache '%s': took the lock over from dead process %llu, repairing",
				 cs->path, (unsigned long long)x);
			cache_repair(cs);
			return;
		}
		if (spins > 4)
			sched_yield();
	}
}

static void cache_unlock(struct cache_store *cs)
{
	atomic_store_explicit(&cs->hdr->lock, 0, memory_order_release);
}

void cache_test_lock(struct cache_store *cs)
{
	cache_lock(cs);
}

/* ---- entries (all with the lock held) ---------------------------------------- */

static int64_t find(struct cache_store *cs, const uint64_t k[2], uint32_t *prev)
{
	uint32_t j, p = NONE, steps = 0;

	for (j = cs->buckets[bucket_of(cs, k[1])]; j != NONE && j < cs->nslots && steps < cs->nslots;
	     j = cs->slots[j].next, steps++) {
		if (cs->slots[j].k1 == k[0] && cs->slots[j].k2 == k[1]) {
			if (prev)
				*prev = p;
			return j;
		}
		p = j;
	}
	return -1;
}

/* Drops LIVE slot i: state first, then off its chain, then its blocks and
 * itself onto the free lists. */
static void drop(struct cache_store *cs, uint32_t i)
{
	struct cache_hdr *h = cs->hdr;
	struct cache_slot *s = &cs->slots[i];
	uint32_t bk = bucket_of(cs, s->k2), j, p = NONE, n, b, next, steps = 0;

	atomic_store_explicit(&s->state, ST_WRITING, memory_order_release);
	for (j = cs->buckets[bk]; j != NONE && j != i && steps < cs->nslots;
	     j = cs->slots[j].next, steps++)
		p = j;
	if (j == i) {
		if (p == NONE)
			cs->buckets[bk] = s->next;
		else
			cs->slots[p].next = s->next;
	}
	n = blocks_for(s->len);
	for (b = s->first; n > 0 && b < cs->nblocks; n--) {
		next = cs->links[b];
		cs->links[b] = h->free_block;
		h->free_block = b;
		h->nfree_blocks++;
		b = next;
	}
	s->len = 0;
	s->first = NONE;
	s->next = h->free_slot;
	h->free_slot = i;
	if (h->live > 0)
		h->live--;
	atomic_store_explicit(&s->state, ST_FREE, memory_order_release);
}

/* Drops every expired entry. */
static void sweep_expired(struct cache_store *cs, int64_t now)
{
	for (uint32_t i = 0; i < cs->nslots; i++)
		if (atomic_load_explicit(&cs->slots[i].state, memory_order_relaxed) == ST_LIVE &&
		    cs->slots[i].expires <= now) {
			drop(cs, i);
			cs->hdr->expired++;
		}
}

/* Makes room for a slot and need blocks: expired entries first, then CLOCK.
 * Returns 0 or -1 (cannot: need is more than the whole area). */
static int make_room(struct cache_store *cs, uint32_t need, int64_t now)
{
	struct cache_hdr *h = cs->hdr;
	uint64_t steps = 0;

	if (h->free_slot != NONE && h->nfree_blocks >= need)
		return 0;
	sweep_expired(cs, now);
	while (h->free_slot == NONE || h->nfree_blocks < need) {
		uint32_t i = h->hand % cs->nslots;
		struct cache_slot *s = &cs->slots[i];

		h->hand = (i + 1) % cs->nslots;
		if (++steps > 2 * (uint64_t)cs->nslots + 1)
			return -1;
		if (atomic_load_explicit(&s->state, memory_order_relaxed) != ST_LIVE)
			continue;
		if (s->ref) {
			s->ref = 0;
			continue;
		}
		drop(cs, i);
		h->evictions++;
	}
	return 0;
}

static uint64_t value_sum(const struct cache_store *cs, const void *v, size_t len)
{
	uint64_t out[2];

	shmfile_hash128(cs->hdr->seed, TWEAK_SUM, v, len, out);
	return out[0];
}

static int key_hash(const struct cache_store *cs, const void *key, size_t key_len, uint64_t k[2])
{
	if (!key || key_len > CACHE_KEY_MAX)
		return -1;
	shmfile_hash128(cs->hdr->seed, TWEAK_KEY, key, key_len, k);
	return 0;
}

/* ---- the calls ------------------------------------------------------------ */

int cache_lookup(struct cache_store *cs, const void *key, size_t key_len, int64_t now,
		 char **value, size_t *len, int64_t *age)
{
	struct cache_slot *s;
	uint64_t k[2];
	uint32_t b, n, left;
	char *out = NULL;
	int64_t i;
	int rc = 0;

	*value = NULL;
	*len = 0;
	if (age)
		*age = 0;
	if (!cs || key_hash(cs, key, key_len, k) < 0)
		return -1;
	cache_lock(cs);
	i = find(cs, k, NULL);
	if (i < 0) {
		cs->hdr->misses++;
		goto out;
	}
	s = &cs->slots[i];
	if (s->expires <= now) {
		drop(cs, (uint32_t)i);
		cs->hdr->expired++;
		cs->hdr->misses++;
		goto out;
	}
	out = malloc((size_t)s->len + 1);
	if (!out) {
		rc = -1;
		goto out;
	}
	n = blocks_for(s->len);
	left = s->len;
	for (b = s->first; n > 0; n--) {
		uint32_t piece = left < CACHE_BLOCK ? left : CACHE_BLOCK;

		if (b >= cs->nblocks)
			break;
		memcpy(out + (s->len - left), cs->data + (size_t)b * CACHE_BLOCK, piece);
		left -= piece;
		b = cs->links[b];
	}
	if (n > 0 || value_sum(cs, out, s->len) != s->sum) {
		drop(cs, (uint32_t)i);
		cs->hdr->corrupt++;
		cs->hdr->misses++;
		free(out);
		out = NULL;
		goto out;
	}
	out[s->len] = '\0';
	s->ref = 1;
	cs->hdr->hits++;
	*value = out;
	*len = s->len;
	if (age)
		*age = now > s->created ? now - s->created : 0;
	rc = 1;
out:
	cache_unlock(cs);
	return rc;
}

int cache_store(struct cache_store *cs, const void *key, size_t key_len, const void *value,
		size_t len, uint32_t ttl_s, int64_t now)
{
	struct cache_hdr *h;
	struct cache_slot *s;
	uint32_t need, i, b, prev = NONE, bk;
	size_t done;
	uint64_t k[2];
	int64_t old;
	int rc = -1;

	if (!cs || key_hash(cs, key, key_len, k) < 0 || ttl_s == 0 || ttl_s > CACHE_TTL_MAX ||
	    len > CACHE_VALUE_MAX || (len && !value))
		return -1;
	h = cs->hdr;
	need = blocks_for((uint32_t)len);
	if (need > cs->nblocks / 4)
		return -1;
	cache_lock(cs);
	old = find(cs, k, NULL);
	if (old >= 0)
		drop(cs, (uint32_t)old);
	if (make_room(cs, need, now) < 0) {
		if (cs->warned_at == INT64_MIN || now - cs->warned_at >= FULL_WARN_EVERY_S) {
			cs->warned_at = now;
			log_warn("cache '%s' has no room for a value of %zu bytes", cs->path, len);
		}
		goto out;
	}
	i = h->free_slot;
	s = &cs->slots[i];
	h->free_slot = s->next;
	atomic_store_explicit(&s->state, ST_WRITING, memory_order_release);
	s->k1 = k[0];
	s->k2 = k[1];
	s->len = (uint32_t)len;
	s->created = now;
	s->expires = now + (int64_t)ttl_s;
	s->ref = 0;
	s->first = NONE;
	s->sum = value_sum(cs, value, len);
	/* take need blocks off the free list, writing each as it comes */
	for (done = 0; done < len;) {
		size_t piece = len - done < CACHE_BLOCK ? len - done : CACHE_BLOCK;

		b = h->free_block;
		h->free_block = cs->links[b];
		h->nfree_blocks--;
		cs->links[b] = NONE;
		if (prev == NONE)
			s->first = b;
		else
			cs->links[prev] = b;
		prev = b;
		memcpy(cs->data + (size_t)b * CACHE_BLOCK, (const char *)value + done, piece);
		done += piece;
		if (cache_test_mid_write && done >= len / 2)
			cache_test_mid_write();
	}
	bk = bucket_of(cs, k[1]);
	s->next = cs->buckets[bk];
	cs->buckets[bk] = i;
	h->live++;
	h->stores++;
	atomic_store_explicit(&s->state, ST_LIVE, memory_order_release);
	rc = 0;
out:
	cache_unlock(cs);
	return rc;
}

int cache_remove(struct cache_store *cs, const void *key, size_t key_len)
{
	uint64_t k[2];
	int64_t i;

	if (!cs || key_hash(cs, key, key_len, k) < 0)
		return -1;
	cache_lock(cs);
	i = find(cs, k, NULL);
	if (i >= 0)
		drop(cs, (uint32_t)i);
	cache_unlock(cs);
	return i >= 0;
}

void cache_get_stats(struct cache_store *cs, struct cache_stats *st)
{
	struct cache_hdr *h = cs->hdr;

	cache_lock(cs);
	st->slots = cs->nslots;
	st->blocks = cs->nblocks;
	st->live = h->live;
	st->free_blocks = h->nfree_blocks;
	st->hits = h->hits;
	st->misses = h->misses;
	st->stores = h->stores;
	st->evictions = h->evictions;
	st->expired = h->expired;
	st->corrupt = h->corrupt;
	st->takeovers = atomic_load_explicit(&h->takeovers, memory_order_relaxed);
	cache_unlock(cs);
}
