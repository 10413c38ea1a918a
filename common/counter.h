/*
 * counter — rate limits, quotas, concurrency limits and circuit breakers that
 * hold across every process of one host: a fixed table in the file
 * "{state_dir}/counters" mapped MAP_SHARED (common/shmfile.h; docs/state.md
 * has the layout). The policy engine and the app call it; nothing here knows
 * about policies: the caller builds the key ("rl:<policy-id>:<counter-key>").
 *
 *   struct counter_store *cs = counter_open(getenv("HOSTGATE_STATE_DIR"), 0);
 *   uint32_t retry, left;
 *   switch (counter_take(cs, key, calls, period, time(NULL), &retry, &left)) {
 *   case COUNTER_DENY:  429, Retry-After: retry
 *   case COUNTER_FULL:  allowed, but not counted (the table is full: see below)
 *   case COUNTER_ALLOW: go on; left calls remain in this window
 *   case COUNTER_ERROR: a bad argument (a key longer than COUNTER_KEY_MAX)
 *   }
 *   struct counter_seat seat;
 *   if (counter_acquire(cs, key, max, time(NULL), &seat) == COUNTER_DENY) 429
 *   ... forward the request ...
 *   counter_release(cs, &seat, time(NULL));
 *   counter_close(cs);
 *
 * Windows (config-v1.md, Policies): a window of period_s seconds starts with the
 * first counted call for a key; at most limit units pass in it, exactly,
 * however many processes race (one 64-bit compare-and-swap per call on a word
 * holding the window's end and its count); the next window starts with the
 * first call after it ends. A refused call is not counted and starts nothing.
 * now is the caller's clock in seconds (time(NULL); tests pass their own), so
 * the processes of a host must agree on it. Times are kept as unsigned 32-bit
 * seconds (until 2106).
 *
 * Keys are hashed with SipHash-2-4 under a random 128-bit seed kept in the file
 * (two 64-bit hashes: a collision of 128 bits is what it would take for two keys
 * to share a counter); the kind of counter is part of the hash, so a rate-limit
 * key and a breaker key never meet. Keys are not stored.
 *
 * No lock that a dead process can hold forever: counting is lock-free; what
 * needs a moment of exclusion (putting a new key into a slot, changing a
 * concurrency slot's holders) holds a lock word containing the holder's pid,
 * which any process may take over once that pid is dead (gone, or a zombie).
 *
 * Bounded memory: the table has a fixed number of slots, set when the file is
 * created (0: COUNTER_DEFAULT_SLOTS); an existing file keeps its own size. A
 * slot whose window has ended (or, for concurrency, that has no holders) is
 * reused for a new key. When every slot a new key may use (COUNTER_PROBE slots
 * from its hash) holds a live key, the call returns COUNTER_FULL: FAIL OPEN —
 * the request is allowed and not counted, a warning is logged (at most once a
 * minute per process) and counted in counter_stats.full. Keys already in the
 * table go on being limited; only keys that find no slot pass unlimited,
 * until windows end and free slots. Failing closed would let anyone who can
 * make many distinct keys (one per client address) refuse service to everybody.
 *
 * Concurrency (limit-concurrency): a held seat is a word in the file that
 * records the key's slot and the holder's pid. A process that dies holding seats
 * (crash, SIGKILL) leaks them only until its pid is seen dead: when a key is at
 * its max, the seats of dead pids (gone, or zombies) are taken back before
 * refusing — at most once a second (of now) per key while it stays at max, at
 * once after a process died inside a call.
 *
 * Circuit breakers (per backend URL): failures are counted in a window of
 * interval_s that starts with the first failure; the failures-th failure inside
 * it trips the breaker for trip_s seconds; after that it is closed again with
 * no failures counted.
 *
 * Persistence: counts live in the file, so a web-server restart (new processes
 * mapping the same file) sees them: quotas survive. A file of another layout is
 * replaced (shmfile.h): counts start again from zero after such an upgrade.
 *
 * Ownership: the store owns its mapping; keys are only read during the call.
 * A store opened before fork() may be used by parent and children. Locks are
 * named by pid, so one process must not use the store from two threads at once
 * (the app forks its workers and has no threads).
 *
 * A remote store (gateway.counters, common/redisstore.h): counter_set_remote
 * makes counter_take, counter_take_n, counter_add and counter_peek ask the
 * remote first; concurrency seats and breakers always stay in this file. When
 * the remote cannot answer (its op returns COUNTER_UNAVAILABLE), the store's
 * on_failure decides: COUNTER_FALLBACK_LOCAL counts in this file as without a
 * remote, COUNTER_FALLBACK_ALLOW allows without counting (COUNTER_FULL, the
 * outputs of an allowed call), COUNTER_FALLBACK_DENY returns
 * COUNTER_UNAVAILABLE (the caller answers 503). Every such call is counted in
 * counter_stats.remote_fallbacks (shared by the host's processes). The remote
 * is per process (the struct, not the file): set it after fork().
 *
 * Errors: counter_open returns NULL (logged). The others return a status; on
 * COUNTER_ERROR and COUNTER_FULL the outputs are set as for an allowed call
 * with nothing counted (retry_after 0, remaining limit).
 */
#ifndef HOSTGATE_COUNTER_H
#define HOSTGATE_COUNTER_H

#include <stddef.h>
#include <stdint.h>

#define COUNTER_FILE "counters"
#define COUNTER_DEFAULT_SLOTS 65536u
#define COUNTER_MIN_SLOTS 8u
#define COUNTER_MAX_SLOTS (1u << 22)
#define COUNTER_PROBE 64u		/* slots a key may use, from its hash on */
#define COUNTER_KEY_MAX 4096u		/* longer keys are COUNTER_ERROR */
#define COUNTER_SEATS_MAX 4096u		/* seats per key: a larger max is not enforced */

enum counter_result {
	COUNTER_ERROR = -1,	/* bad argument: treat as allowed, log it */
	COUNTER_DENY = 0,	/* over the limit: refuse */
	COUNTER_ALLOW = 1,	/* counted and allowed */
	COUNTER_FULL = 2,	/* table full: allowed, not counted (fail open) */
	COUNTER_UNAVAILABLE = 3,	/* remote store down and on_failure deny: 503 */
};

/* What a remote store is asked; the arguments are those of counter_take_n,
 * counter_add and counter_peek. */
enum counter_op { COUNTER_OP_TAKE, COUNTER_OP_ADD, COUNTER_OP_PEEK };
enum counter_fallback {
	COUNTER_FALLBACK_LOCAL = 0,
	COUNTER_FALLBACK_ALLOW = 1,
	COUNTER_FALLBACK_DENY = 2,
};

/* A remote back end: op answers ALLOW or DENY (outputs as the local calls
 * set them; retry_after and remaining are never NULL), or UNAVAILABLE without
 * waiting longer than its own timeout. ctx is the back end's; the struct is
 * copied by counter_set_remote. */
struct counter_remote {
	enum counter_result (*op)(void *ctx, enum counter_op op, const char *key, uint32_t n,
				  uint32_t limit, uint32_t period_s, uint32_t *retry_after,
				  uint32_t *remaining);
	void *ctx;
	enum counter_fallback on_failure;
};

struct counter_store;

/* A held concurrency seat, filled by counter_acquire, given back to
 * counter_release. Plain data: copy it freely within the process. */
struct counter_seat {
	uint32_t slot;
	uint32_t holder;	/* index of the holder word */
	uint64_t word;		/* what the holder word holds; 0: no seat */
};

struct counter_stats {
	uint32_t slots;		/* size of the table */
	uint32_t used;		/* slots that hold a key (live or not) */
	uint64_t full;		/* calls that found the table full */
	uint64_t takeovers;	/* locks taken over from dead processes */
	uint64_t reclaimed;	/* seats taken back from dead processes */
	uint64_t remote_fallbacks;	/* calls the remote store could not answer */
};

/* Opens "{state_dir}/counters", creating it with slots slots (0: the default;
 * clamped to [COUNTER_MIN_SLOTS, COUNTER_MAX_SLOTS]) when absent. Returns the
 * store or NULL (logged). */
struct counter_store *counter_open(const char *state_dir, uint32_t slots);
/* Sends window calls to r first (NULL: this file only, the default). */
void counter_set_remote(struct counter_store *cs, const struct counter_remote *r);

/* Unmaps. Seats still held stay held until released or their pid dies. */
void counter_close(struct counter_store *cs);

/* One call against a window of limit calls per period_s seconds. ALLOW with
 * *remaining = what is left in the window; DENY with *retry_after = whole
 * seconds until the window ends (at least 1) and *remaining 0. retry_after and
 * remaining may be NULL. */
enum counter_result counter_take(struct counter_store *cs, const char *key, uint32_t limit,
				 uint32_t period_s, int64_t now, uint32_t *retry_after,
				 uint32_t *remaining);
/* The same for n units at once: allowed (and all n counted) only when they all
 * fit; n larger than limit is always DENY (retry_after period_s). n = 0 is
 * COUNTER_ERROR. */
enum counter_result counter_take_n(struct counter_store *cs, const char *key, uint32_t n,
				   uint32_t limit, uint32_t period_s, int64_t now,
				   uint32_t *retry_after, uint32_t *remaining);
/* Adds n units whatever the limit (bandwidth known only after the response:
 * KiB sent), starting a window of period_s when none is running; the count
 * saturates at UINT32_MAX - 1. Returns ALLOW, FULL or ERROR. */
enum counter_result counter_add(struct counter_store *cs, const char *key, uint32_t n,
				uint32_t period_s, int64_t now);
/* Whether the window still has room (count < limit), counting nothing: the
 * bandwidth quota's check before a request. ALLOW (with *remaining) or DENY
 * (with *retry_after). A key with no running window is ALLOW with limit. */
enum counter_result counter_peek(struct counter_store *cs, const char *key, uint32_t limit,
				 int64_t now, uint32_t *retry_after, uint32_t *remaining);

/* Takes one of max seats of key. ALLOW (seat filled: release it), DENY (max
 * seats held by live processes), FULL (allowed without a seat: table full, or
 * more than COUNTER_SEATS_MAX seats held around this key; releasing the empty
 * seat is a no-op) or ERROR. */
enum counter_result counter_acquire(struct counter_store *cs, const char *key, uint32_t max,
				    int64_t now, struct counter_seat *seat);
/* Gives the seat back and empties *seat. Releasing an empty seat, or twice, does
 * nothing. now only dates what the call may take over from a dead process. */
void counter_release(struct counter_store *cs, struct counter_seat *seat, int64_t now);

/* Whether the breaker of url is open (tripped) at now: 1 with *retry_after =
 * seconds until it closes (may be NULL), or 0 (closed). Never counts. */
int counter_breaker_open(struct counter_store *cs, const char *url, int64_t now,
			 uint32_t *retry_after);
/* Records one failure of url. Returns 1 when this failure tripped the breaker,
 * 0 otherwise (counted, already open, or the table full). failures 0 or 1 trips
 * on every failure. */
int counter_breaker_failure(struct counter_store *cs, const char *url, uint32_t failures,
			    uint32_t interval_s, uint32_t trip_s, int64_t now);

/* Fills *st. Reads only; never fails. */
void counter_get_stats(struct counter_store *cs, struct counter_stats *st);

#endif
