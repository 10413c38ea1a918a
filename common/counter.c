#include "common/counter.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/shmfile.h"

/*
 * The file: a 128-byte header, then nslots + COUNTER_PROBE slots (a key hashes
 * to a home in [0, nslots) and may use the COUNTER_PROBE slots from there: no
 * wrap-around, so "earlier in a key's probe sequence" is "lower index" for every
 * key), then nholders holder words for concurrency seats.
 *
 * A slot is four 64-bit words: k1, k2 (the key's 128-bit hash; the low two bits
 * of k1 carry the kind; 0 = never used) and st, the state:
 *   window, breaker   end of window (32 bits, unix seconds) | count (32 bits);
 *                     a breaker's count COUNT_TRIP means "open until end"
 *   concurrency       time of the last recount (32) | holders (32); holders
 *                     COUNT_RECOUNT means "unknown: count the holder words"
 *   locked            0xffffffff | pid of the holder of the slot's lock
 * st is 0 only for a slot never used (with k1 == 0); slots never become empty
 * again, so a key's lookup stops at the first empty slot.
 *
 * Counting is a compare-and-swap of st. A slot changes key only under the
 * insert lock (one per file) and with st locked; a window slot is given to a new
 * key only once its window has ended at the inserter's now, and the new key
 * starts at (now + 1, 0): st never takes again a value it had under the previous
 * key, so a compare-and-swap prepared for the old key fails.
 *
 * Holder words: 0 (free) or (slot + 1) << 32 | pid. Added and removed only with
 * the slot's st locked, which keeps holders exact; a process killed in between
 * leaves st locked by a dead pid, and whoever takes the lock over sets holders
 * to COUNT_RECOUNT.
 */

#define COUNTER_MAGIC "HGCOUNT"
#define COUNTER_VERSION 1u

#define KIND_WINDOW 1u
#define KIND_CONC 2u
#define KIND_BREAKER 3u
#define KIND_MASK 3u

#define LOCK_HI 0xffffffffu
#define TIME_MAX 0xfffffffeu
#define COUNT_MAX 0xfffffffeu
#define COUNT_TRIP 0xffffffffu
#define COUNT_RECOUNT 0xffffffffu
#define RECOUNT_EVERY_S 1
#define HOLDER_SPAN COUNTER_SEATS_MAX
#define STALE_CONC_S 60
#define FULL_WARN_EVERY_S 60

_Static_assert(ATOMIC_LONG_LOCK_FREE == 2 && ATOMIC_LLONG_LOCK_FREE == 2,
	       "64-bit atomics must be lock-free to work across processes");

struct counter_hdr {
	struct shmfile_hdr shm;
	uint64_t seed[2];
	uint32_t nslots;
	uint32_t nholders;
	_Atomic uint64_t insert_lock;	/* 0 or the pid of its holder */
	_Atomic uint64_t full;
	_Atomic uint64_t takeovers;
	_Atomic uint64_t reclaimed;
	_Atomic uint64_t remote_fallbacks;	/* was reserved: 0 in older files */
	uint64_t reserved[5];
};
_Static_assert(sizeof(struct counter_hdr) == 128, "counter header is 128 bytes");

struct counter_slot {
	_Atomic uint64_t k1;
	_Atomic uint64_t k2;
	_Atomic uint64_t st;
	uint64_t reserved;
};

struct counter_store {
	struct shmfile file;
	struct counter_hdr *hdr;
	struct counter_slot *slots;
	_Atomic uint64_t *holders;
	uint32_t nslots;
	uint32_t nholders;
	int64_t warned_at;
	int has_remote;
	struct counter_remote remote;
	char path[4096];
};

/* ---- words ---------------------------------------------------------------- */

static uint64_t st_make(uint32_t hi, uint32_t lo)
{
	return (uint64_t)hi << 32 | lo;
}

static uint32_t st_hi(uint64_t x)
{
	return (uint32_t)(x >> 32);
}

static uint32_t st_lo(uint64_t x)
{
	return (uint32_t)x;
}

static int st_locked(uint64_t x)
{
	return st_hi(x) == LOCK_HI;
}

static uint32_t time32(int64_t now)
{
	if (now < 1)
		return 1;
	if (now > (int64_t)TIME_MAX)
		return TIME_MAX;
	return (uint32_t)now;
}

static uint32_t time_after(uint32_t t, uint32_t s)
{
	uint64_t e = (uint64_t)t + s;

	return e > TIME_MAX ? TIME_MAX : (uint32_t)e;
}

static size_t counter_file_size(uint32_t nslots, uint32_t nholders)
{
	return sizeof(struct counter_hdr) +
	       ((size_t)nslots + COUNTER_PROBE) * sizeof(struct counter_slot) +
	       (size_t)nholders * sizeof(uint64_t);
}

/* ---- the file ------------------------------------------------------------- */

static int counter_init(void *base, size_t size, void *arg)
{
	struct counter_hdr *h = base;
	const uint32_t *nslots = arg;

	(void)size;
	shmfile_seed(h->seed);
	h->nslots = *nslots;
	h->nholders = *nslots;
	return 0;
}

static int counter_check(const void *base, size_t size, void *arg)
{
	const struct counter_hdr *h = base;

	(void)arg;
	if (size < sizeof(*h) || h->nslots < COUNTER_MIN_SLOTS || h->nslots > COUNTER_MAX_SLOTS ||
	    h->nholders < 1 || h->nholders > COUNTER_MAX_SLOTS ||
	    counter_file_size(h->nslots, h->nholders) != size)
		return -1;
	return 0;
}

struct counter_store *counter_open(const char *state_dir, uint32_t slots)
{
	struct shmfile_want want = { COUNTER_MAGIC, COUNTER_VERSION, 0 };
	struct counter_store *cs;

	if (slots == 0)
		slots = COUNTER_DEFAULT_SLOTS;
	if (slots < COUNTER_MIN_SLOTS)
		slots = COUNTER_MIN_SLOTS;
	if (slots > COUNTER_MAX_SLOTS)
		slots = COUNTER_MAX_SLOTS;
	want.size = counter_file_size(slots, slots);
	cs = calloc(1, sizeof(*cs));
	if (!cs) {
		log_err("cannot open counters: out of memory");
		return NULL;
	}
	if (shmfile_path(cs->path, sizeof(cs->path), state_dir, COUNTER_FILE) < 0) {
		log_err("cannot open counters in '%s': name too long", state_dir);
		free(cs);
		return NULL;
	}
	if (shmfile_open(&cs->file, cs->path, &want, counter_init, counter_check, &slots) < 0) {
		free(cs);
		return NULL;
	}
	cs->hdr = cs->file.base;
	cs->nslots = cs->hdr->nslots;
	cs->nholders = cs->hdr->nholders;
	cs->slots = (struct counter_slot *)((char *)cs->file.base + sizeof(struct counter_hdr));
	cs->holders = (_Atomic uint64_t *)(cs->slots + cs->nslots + COUNTER_PROBE);
	cs->warned_at = INT64_MIN;
	return cs;
}

void counter_close(struct counter_store *cs)
{
	if (!cs)
		return;
	shmfile_close(&cs->file);
	free(cs);
}

/* ---- locks ---------------------------------------------------------------- */

static void spin_pause(unsigned spins)
{
	if (spins > 4)
		sched_yield();
}

/* Whether the holder of a lock can never release it. Our own pid in a lock we
 * are waiting for is a previous process that had the same pid (locks are not
 * taken twice by one process). */
static int holder_dead(uint32_t pid)
{
	return pid == (uint32_t)getpid() || shmfile_pid_dead((int)pid);
}

/* Takes the lock x of slot i over from its dead holder, leaving the slot
 * unlocked in a state that is safe whatever the holder was doing. */
static void slot_takeover(struct counter_store *cs, uint32_t i, uint64_t x, int64_t now)
{
	struct counter_slot *s = &cs->slots[i];
	uint64_t me = st_make(LOCK_HI, (uint32_t)getpid()), k1;

	if (!atomic_compare_exchange_strong(&s->st, &x, me))
		return;
	k1 = atomic_load_explicit(&s->k1, memory_order_relaxed);
	/* a window or breaker: an ended empty window; concurrency: count again */
	if ((k1 & KIND_MASK) == KIND_CONC)
		x = st_make(time32(now), COUNT_RECOUNT);
	else
		x = st_make(time32(now), 0);
	atomic_store_explicit(&s->st, x, memory_order_release);
	atomic_fetch_add_explicit(&cs->hdr->takeovers, 1, memory_order_relaxed);
}

/* Returns st of slot i once it is not locked. */
static uint64_t slot_wait(struct counter_store *cs, uint32_t i, int64_t now)
{
	struct counter_slot *s = &cs->slots[i];
	unsigned spins = 0;
	uint64_t x;

	for (;;) {
		x = atomic_load_explicit(&s->st, memory_order_acquire);
		if (!st_locked(x))
			return x;
		if (++spins % 16 == 0 && holder_dead(st_lo(x))) {
			slot_takeover(cs, i, x, now);
			continue;
		}
		spin_pause(spins);
	}
}

/* Locks slot i; returns the st it had. */
static uint64_t slot_lock(struct counter_store *cs, uint32_t i, int64_t now)
{
	uint64_t me = st_make(LOCK_HI, (uint32_t)getpid()), x;

	for (;;) {
		x = slot_wait(cs, i, now);
		if (atomic_compare_exchange_weak_explicit(&cs->slots[i].st, &x, me,
							  memory_order_acq_rel,
							  memory_order_relaxed))
			return x;
	}
}

static void slot_unlock(struct counter_store *cs, uint32_t i, uint64_t x)
{
	atomic_store_explicit(&cs->slots[i].st, x, memory_order_release);
}

static void insert_lock(struct counter_store *cs)
{
	uint64_t me = (uint64_t)getpid(), x;
	unsigned spins = 0;

	for (;;) {
		x = 0;
		if (atomic_compare_exchange_weak_explicit(&cs->hdr->insert_lock, &x, me,
							  memory_order_acquire,
							  memory_order_relaxed))
			return;
		if (x != 0 && ++spins % 16 == 0 && holder_dead((uint32_t)x) &&
		    atomic_compare_exchange_strong(&cs->hdr->insert_lock, &x, me)) {
			atomic_fetch_add_explicit(&cs->hdr->takeovers, 1, memory_order_relaxed);
			return;
		}
		spin_pause(spins);
	}
}

static void insert_unlock(struct counter_store *cs)
{
	atomic_store_explicit(&cs->hdr->insert_lock, 0, memory_order_release);
}

/* ---- holders -------------------------------------------------------------- */

/* The holder words of slot i are in a region of holder_span() words from
 * holder_start(i) (wrapping): a recount reads only that much. */
static uint32_t holder_span(const struct counter_store *cs)
{
	return cs->nholders < HOLDER_SPAN ? cs->nholders : HOLDER_SPAN;
}

static uint32_t holder_start(const struct counter_store *cs, uint32_t i)
{
	return (uint32_t)(((uint64_t)i * 0x9e3779b97f4a7c15ULL >> 32) % cs->nholders);
}

/* Counts the holder words of slot i; with reap, frees those of dead processes
 * first. Call with the slot locked. */
static uint32_t holders_recount(struct counter_store *cs, uint32_t i)
{
	uint32_t j, n = 0, tag = i + 1, start = holder_start(cs, i), span = holder_span(cs);
	_Atomic uint64_t *hw;
	uint64_t w;

	for (j = 0; j < span; j++) {
		hw = &cs->holders[(start + j) % cs->nholders];
		w = atomic_load_explicit(hw, memory_order_relaxed);
		if (st_hi(w) != tag)
			continue;
		if (shmfile_pid_dead((int)st_lo(w))) {
			if (atomic_compare_exchange_strong(hw, &w, 0))
				atomic_fetch_add_explicit(&cs->hdr->reclaimed, 1,
							  memory_order_relaxed);
			continue;
		}
		n++;
	}
	return n;
}

/* Adds a holder word (slot i, our pid); returns its index or -1 (the region
 * is full). Call with the slot locked. */
static int64_t holders_add(struct counter_store *cs, uint32_t i, uint64_t *word)
{
	uint32_t pid = (uint32_t)getpid(), j, h, start = holder_start(cs, i);
	uint32_t span = holder_span(cs);
	uint64_t w = st_make(i + 1, pid), zero;

	for (j = 0; j < span; j++) {
		h = (start + j) % cs->nholders;
		zero = 0;
		if (atomic_load_explicit(&cs->holders[h], memory_order_relaxed) == 0 &&
		    atomic_compare_exchange_strong(&cs->holders[h], &zero, w)) {
			*word = w;
			return h;
		}
	}
	return -1;
}

/* ---- lookup and insertion ------------------------------------------------- */

static uint32_t key_home(const struct counter_store *cs, uint64_t k2)
{
	return (uint32_t)(k2 % cs->nslots);
}

enum hold { HOLD_NO, HOLD_YES, HOLD_RETRY };

/* Whether slot i holds (k1, k2) while its st is x: the key is read between two
 * reads of st (a seqlock), so that a key being changed is never taken for the
 * one before it. HOLD_RETRY: the key matched but st moved on (another count,
 * or a change of key): read st again. */
static enum hold slot_holds(struct counter_store *cs, uint32_t i, uint64_t x, uint64_t k1,
			    uint64_t k2)
{
	struct counter_slot *s = &cs->slots[i];

	if (atomic_load_explicit(&s->k1, memory_order_relaxed) != k1 ||
	    atomic_load_explicit(&s->k2, memory_order_relaxed) != k2)
		return HOLD_NO;
	atomic_thread_fence(memory_order_acquire);
	return atomic_load_explicit(&s->st, memory_order_relaxed) == x ? HOLD_YES : HOLD_RETRY;
}

/* Returns the slot of (k1, k2) with its st in *x, or -1 when absent. A key
 * that another process is putting in right now may be missed: slot_get then
 * looks again under the insert lock, where keys do not change. */
static int64_t slot_find(struct counter_store *cs, uint64_t k1, uint64_t k2, int64_t now,
			 uint64_t *x)
{
	uint32_t home = key_home(cs, k2), i;
	enum hold h;
	uint64_t v;

	for (i = home; i < home + COUNTER_PROBE; i++) {
		do {
			v = slot_wait(cs, i, now);
			h = slot_holds(cs, i, v, k1, k2);
		} while (h == HOLD_RETRY);
		if (h == HOLD_YES) {
			*x = v;
			return i;
		}
		/* never used: the key is not further on */
		if (v == 0 && atomic_load_explicit(&cs->slots[i].k1, memory_order_relaxed) == 0)
			return -1;
	}
	return -1;
}

/* Whether slot i (k1, st x) might take a new key at now, judged without its
 * lock: an ended window, or concurrency that may have no live holder. */
static int slot_maybe_reusable(uint64_t k1, uint64_t x, int64_t now)
{
	uint32_t t = time32(now), h = st_lo(x);

	if (x == 0)
		return 1;
	if ((k1 & KIND_MASK) != KIND_CONC)
		return st_hi(x) <= t;
	return h == 0 || h == COUNT_RECOUNT || t >= time_after(st_hi(x), STALE_CONC_S);
}

/* Locks slot i if it might take a new key (its st, before, in *x). Call with
 * the insert lock held: keys change only under it, so k1 stays as read.
 * Returns 0 (locked) or -1 (in use). */
static int slot_try_lock(struct counter_store *cs, uint32_t i, int64_t now, uint64_t *x)
{
	uint64_t me = st_make(LOCK_HI, (uint32_t)getpid()), k1;

	for (;;) {
		*x = slot_wait(cs, i, now);
		k1 = atomic_load_explicit(&cs->slots[i].k1, memory_order_relaxed);
		if (!slot_maybe_reusable(k1, *x, now))
			return -1;
		if (atomic_compare_exchange_weak_explicit(&cs->slots[i].st, x, me,
							  memory_order_acq_rel,
							  memory_order_relaxed))
			return 0;
	}
}

/* With slot i locked (its st was x): whether it can take a new key at now. A
 * concurrency slot's holders may be counted again (and st updated in *x). */
static int slot_reusable(struct counter_store *cs, uint32_t i, uint64_t *x, int64_t now)
{
	uint64_t k1 = atomic_load_explicit(&cs->slots[i].k1, memory_order_relaxed);
	uint32_t t = time32(now), h;

	if (*x == 0)
		return 1;
	if ((k1 & KIND_MASK) != KIND_CONC)
		return st_hi(*x) <= t;
	h = st_lo(*x);
	if (h == COUNT_RECOUNT || (h > 0 && t >= time_after(st_hi(*x), STALE_CONC_S))) {
		h = holders_recount(cs, i);
		*x = st_make(t, h);
	}
	return h == 0;
}

/* Returns the slot of (k1, k2), giving it one when it has none; -1 when no slot
 * is free (counted and warned about). */
static int64_t slot_get(struct counter_store *cs, uint64_t k1, uint64_t k2, int64_t now)
{
	uint32_t home = key_home(cs, k2), i;
	int64_t found;
	uint64_t x;

	found = slot_find(cs, k1, k2, now, &x);
	if (found >= 0)
		return found;
	insert_lock(cs);
	found = slot_find(cs, k1, k2, now, &x);
	if (found >= 0)
		goto out;
	for (i = home; i < home + COUNTER_PROBE; i++) {
		if (slot_try_lock(cs, i, now, &x) < 0)
			continue;
		if (!slot_reusable(cs, i, &x, now)) {
			slot_unlock(cs, i, x);
			continue;
		}
		/* the lock is visible before the key changes (see slot_holds) */
		atomic_thread_fence(memory_order_release);
		atomic_store_explicit(&cs->slots[i].k1, k1, memory_order_relaxed);
		atomic_store_explicit(&cs->slots[i].k2, k2, memory_order_relaxed);
		slot_unlock(cs, i, st_make(time_after(time32(now), 1), 0));
		found = i;
		goto out;
	}
	atomic_fetch_add_explicit(&cs->hdr->full, 1, memory_order_relaxed);
	if (cs->warned_at == INT64_MIN || now < cs->warned_at ||
	    now - cs->warned_at >= FULL_WARN_EVERY_S) {
		cs->warned_at = now;
		log_warn("counter table '%s' is full: new keys are not limited", cs->path);
	}
out:
	insert_unlock(cs);
	return found;
}

static int key_hash(struct counter_store *cs, unsigned kind, const char *key, uint64_t k[2])
{
	size_t len = strnlen(key, COUNTER_KEY_MAX + 1);

	if (len > COUNTER_KEY_MAX)
		return -1;
	shmfile_hash128(cs->hdr->seed, kind, key, len, k);
	k[0] = (k[0] & ~(uint64_t)KIND_MASK) | kind;
	return 0;
}

/* ---- windows -------------------------------------------------------------- */

enum win_op { WIN_TAKE, WIN_ADD };

static enum counter_result win_update(struct counter_store *cs, const char *key,
				      enum win_op op, uint32_t n, uint32_t limit,
				      uint32_t period_s, int64_t now, uint32_t *retry_after,
				      uint32_t *remaining)
{
	uint32_t t = time32(now), end, cnt;
	uint64_t k[2], x, y;
	enum hold h;
	int64_t i;

	if (retry_after)
		*retry_after = 0;
	if (remaining)
		*remaining = limit;
	if (n == 0 || !key || key_hash(cs, KIND_WINDOW, key, k) < 0)
		return COUNTER_ERROR;
	if (period_s == 0)
		period_s = 1;
	if (op == WIN_TAKE && (limit == 0 || n > limit)) {
		if (retry_after)
			*retry_after = period_s;
		if (remaining)
			*remaining = 0;
		return COUNTER_DENY;
	}
	for (;;) {
		i = slot_get(cs, k[0], k[1], now);
		if (i < 0)
			return COUNTER_FULL;
		for (;;) {
			x = slot_wait(cs, (uint32_t)i, now);
			h = slot_holds(cs, (uint32_t)i, x, k[0], k[1]);
			if (h == HOLD_RETRY)
				continue;
			if (h == HOLD_NO)
				break;	/* the slot changed key: find ours again */
			end = st_hi(x);
			cnt = st_lo(x);
			if (end <= t || cnt == 0) {
				end = time_after(t, period_s);
				cnt = 0;
			}
			if (op == WIN_TAKE && cnt + (uint64_t)n > limit) {
				if (retry_after)
					*retry_after = end - t;
				if (remaining)
					*remaining = 0;
				return COUNTER_DENY;
			}
			cnt = cnt + (uint64_t)n > COUNT_MAX ? COUNT_MAX : cnt + n;
			y = st_make(end, cnt);
			if (atomic_compare_exchange_strong_explicit(&cs->slots[i].st, &x, y,
								    memory_order_acq_rel,
								    memory_order_relaxed)) {
				if (remaining)
					*remaining = cnt >= limit ? 0 : limit - cnt;
				return COUNTER_ALLOW;
			}
		}
	}
}

static enum counter_result local_take(struct counter_store *cs, const char *key, uint32_t limit,
			      uint32_t period_s, int64_t now, uint32_t *retry_after,
			      uint32_t *remaining)
{
	return win_update(cs, key, WIN_TAKE, 1, limit, period_s, now, retry_after, remaining);
}

static enum counter_result local_take_n(struct counter_store *cs, const char *key, uint32_t n,
				   uint32_t limit, uint32_t period_s, int64_t now,
				   uint32_t *retry_after, uint32_t *remaining)
{
	return win_update(cs, key, WIN_TAKE, n, limit, period_s, now, retry_after, remaining);
}

static enum counter_result local_add(struct counter_store *cs, const char *key, uint32_t n,
				uint32_t period_s, int64_t now)
{
	return win_update(cs, key, WIN_ADD, n, 0, period_s, now, NULL, NULL);
}

static enum counter_result local_peek(struct counter_store *cs, const char *key, uint32_t limit,
				 int64_t now, uint32_t *retry_after, uint32_t *remaining)
{
	uint32_t t = time32(now);
	uint64_t k[2], x = 0;

	if (retry_after)
		*retry_after = 0;
	if (remaining)
		*remaining = limit;
	if (!key || key_hash(cs, KIND_WINDOW, key, k) < 0)
		return COUNTER_ERROR;
	if (slot_find(cs, k[0], k[1], now, &x) < 0 || st_hi(x) <= t || st_lo(x) == 0)
		return limit > 0 ? COUNTER_ALLOW : COUNTER_DENY;
	if (st_lo(x) < limit) {
		if (remaining)
			*remaining = limit - st_lo(x);
		return COUNTER_ALLOW;
	}
	if (retry_after)
		*retry_after = st_hi(x) - t;
	if (remaining)
		*remaining = 0;
	return COUNTER_DENY;
}


void counter_set_remote(struct counter_store *cs, const struct counter_remote *r)
{
	if (!cs)
		return;
	cs->has_remote = r != NULL;
	if (r)
		cs->remote = *r;
}

#define COUNT_HERE (-2)	/* remote_call: count in this file */

/* Asks the remote; returns COUNT_HERE when the caller should count in this
 * file, else the answer (outputs set). */
static int remote_call(struct counter_store *cs, enum counter_op op, const char *key,
		       uint32_t n, uint32_t limit, uint32_t period_s, uint32_t *retry_after,
		       uint32_t *remaining)
{
	uint32_t ra = 0, rem = limit;
	enum counter_result r;

	if (!cs->has_remote || !key || strlen(key) > COUNTER_KEY_MAX)
		return COUNT_HERE;
	if (op != COUNTER_OP_PEEK && n == 0)
		return COUNT_HERE;
	if (period_s == 0)
		period_s = 1;
	r = cs->remote.op(cs->remote.ctx, op, key, n, limit, period_s, &ra, &rem);
	if (r == COUNTER_UNAVAILABLE) {
		atomic_fetch_add_explicit(&cs->hdr->remote_fallbacks, 1, memory_order_relaxed);
		if (cs->remote.on_failure == COUNTER_FALLBACK_LOCAL)
			return COUNT_HERE;
		ra = 0;
		rem = limit;
		r = cs->remote.on_failure == COUNTER_FALLBACK_ALLOW ? COUNTER_FULL
								    : COUNTER_UNAVAILABLE;
	}
	if (retry_after)
		*retry_after = ra;
	if (remaining)
		*remaining = rem;
	return (int)r;
}

enum counter_result counter_take(struct counter_store *cs, const char *key, uint32_t limit,
				 uint32_t period_s, int64_t now, uint32_t *retry_after,
				 uint32_t *remaining)
{
	int r = remote_call(cs, COUNTER_OP_TAKE, key, 1, limit, period_s, retry_after, remaining);

	if (r == COUNT_HERE)
		return local_take(cs, key, limit, period_s, now, retry_after, remaining);
	return (enum counter_result)r;
}

enum counter_result counter_take_n(struct counter_store *cs, const char *key, uint32_t n,
				   uint32_t limit, uint32_t period_s, int64_t now,
				   uint32_t *retry_after, uint32_t *remaining)
{
	int r = remote_call(cs, COUNTER_OP_TAKE, key, n, limit, period_s, retry_after, remaining);

	if (r == COUNT_HERE)
		return local_take_n(cs, key, n, limit, period_s, now, retry_after, remaining);
	return (enum counter_result)r;
}

enum counter_result counter_add(struct counter_store *cs, const char *key, uint32_t n,
				uint32_t period_s, int64_t now)
{
	int r = remote_call(cs, COUNTER_OP_ADD, key, n, 0, period_s, NULL, NULL);

	if (r == COUNT_HERE)
		return local_add(cs, key, n, period_s, now);
	return (enum counter_result)r;
}

enum counter_result counter_peek(struct counter_store *cs, const char *key, uint32_t limit,
				 int64_t now, uint32_t *retry_after, uint32_t *remaining)
{
	int r = remote_call(cs, COUNTER_OP_PEEK, key, 0, limit, 0, retry_after, remaining);

	if (r == COUNT_HERE)
		return local_peek(cs, key, limit, now, retry_after, remaining);
	return (enum counter_result)r;
}

/* ---- concurrency ---------------------------------------------------------- */

enum counter_result counter_acquire(struct counter_store *cs, const char *key, uint32_t max,
				    int64_t now, struct counter_seat *seat)
{
	uint32_t t = time32(now), h, last;
	uint64_t k[2], x, word;
	int64_t i, j;

	memset(seat, 0, sizeof(*seat));
	if (!key || key_hash(cs, KIND_CONC, key, k) < 0)
		return COUNTER_ERROR;
	if (max == 0)
		return COUNTER_DENY;
	for (;;) {
		i = slot_get(cs, k[0], k[1], now);
		if (i < 0)
			return COUNTER_FULL;
		x = slot_lock(cs, (uint32_t)i, now);
		if (atomic_load_explicit(&cs->slots[i].k1, memory_order_relaxed) != k[0] ||
		    atomic_load_explicit(&cs->slots[i].k2, memory_order_relaxed) != k[1]) {
			slot_unlock(cs, (uint32_t)i, x);
			continue;
		}
		break;
	}
	h = st_lo(x);
	last = st_hi(x);
	if (h == COUNT_RECOUNT || (h >= max && t >= time_after(last, RECOUNT_EVERY_S))) {
		h = holders_recount(cs, (uint32_t)i);
		last = t;
	}
	if (h >= max) {
		slot_unlock(cs, (uint32_t)i, st_make(last, h));
		return COUNTER_DENY;
	}
	j = holders_add(cs, (uint32_t)i, &word);
	if (j < 0) {
		slot_unlock(cs, (uint32_t)i, st_make(last, h));
		return COUNTER_FULL;
	}
	slot_unlock(cs, (uint32_t)i, st_make(last, h + 1));
	seat->slot = (uint32_t)i;
	seat->holder = (uint32_t)j;
	seat->word = word;
	return COUNTER_ALLOW;
}

void counter_release(struct counter_store *cs, struct counter_seat *seat, int64_t now)
{
	uint64_t x, w = seat->word;
	uint32_t h;

	if (w == 0 || seat->slot >= cs->nslots + COUNTER_PROBE || seat->holder >= cs->nholders)
		goto out;
	x = slot_lock(cs, seat->slot, now);
	h = st_lo(x);
	/* the word is gone only if our seat was taken back for a dead pid that
	 * was ours: then the slot no longer counts us */
	if (atomic_compare_exchange_strong(&cs->holders[seat->holder], &w, 0) &&
	    h != COUNT_RECOUNT && h > 0)
		h--;
	slot_unlock(cs, seat->slot, st_make(st_hi(x), h));
out:
	memset(seat, 0, sizeof(*seat));
}

/* ---- circuit breakers ----------------------------------------------------- */

int counter_breaker_open(struct counter_store *cs, const char *url, int64_t now,
			 uint32_t *retry_after)
{
	uint32_t t = time32(now);
	uint64_t k[2], x = 0;

	if (retry_after)
		*retry_after = 0;
	if (!url || key_hash(cs, KIND_BREAKER, url, k) < 0)
		return 0;
	if (slot_find(cs, k[0], k[1], now, &x) < 0)
		return 0;
	if (st_lo(x) != COUNT_TRIP || st_hi(x) <= t)
		return 0;
	if (retry_after)
		*retry_after = st_hi(x) - t;
	return 1;
}

int counter_breaker_failure(struct counter_store *cs, const char *url, uint32_t failures,
			    uint32_t interval_s, uint32_t trip_s, int64_t now)
{
	uint32_t t = time32(now), end, cnt;
	uint64_t k[2], x, y;
	enum hold h;
	int64_t i;
	int tripped;

	if (!url || key_hash(cs, KIND_BREAKER, url, k) < 0)
		return 0;
	if (interval_s == 0)
		interval_s = 1;
	for (;;) {
		i = slot_get(cs, k[0], k[1], now);
		if (i < 0)
			return 0;
		for (;;) {
			x = slot_wait(cs, (uint32_t)i, now);
			h = slot_holds(cs, (uint32_t)i, x, k[0], k[1]);
			if (h == HOLD_RETRY)
				continue;
			if (h == HOLD_NO)
				break;
			end = st_hi(x);
			cnt = st_lo(x);
			if (end <= t || cnt == 0) {
				end = time_after(t, interval_s);
				cnt = 0;
			} else if (cnt == COUNT_TRIP) {
				return 0;
			}
			tripped = cnt + 1 >= failures;
			y = tripped ? st_make(time_after(t, trip_s), COUNT_TRIP)
				    : st_make(end, cnt + 1);
			if (atomic_compare_exchange_strong_explicit(&cs->slots[i].st, &x, y,
								    memory_order_acq_rel,
								    memory_order_relaxed))
				return tripped;
		}
	}
}

/* ---- stats ---------------------------------------------------------------- */

void counter_get_stats(struct counter_store *cs, struct counter_stats *st)
{
	uint32_t i, used = 0;

	for (i = 0; i < cs->nslots + COUNTER_PROBE; i++)
		if (atomic_load_explicit(&cs->slots[i].k1, memory_order_relaxed) != 0)
			used++;
	st->slots = cs->nslots + COUNTER_PROBE;
	st->used = used;
	st->full = atomic_load_explicit(&cs->hdr->full, memory_order_relaxed);
	st->takeovers = atomic_load_explicit(&cs->hdr->takeovers, memory_order_relaxed);
	st->reclaimed = atomic_load_explicit(&cs->hdr->reclaimed, memory_order_relaxed);
	st->remote_fallbacks = atomic_load_explicit(&cs->hdr->remote_fallbacks,
						    memory_order_relaxed);
}
