/*
 * Cache store: hit, miss, replace, expiry with a passed clock, eviction under
 * pressure, refusal of oversized values, concurrent fills of one key from
 * forked processes (never a torn value), a process SIGKILLed while holding the
 * lock, a process killed in the middle of writing a value, and a value
 * corrupted in the file (the checksum refuses it). alarm() bounds every
 * multi-process test.
 */
#define _GNU_SOURCE	/* memmem */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/cache.h"

#define T0 1700000000

#define TMPDIR_FILE CACHE_FILE
#include "tests/unit/tmpdir.h"

static struct cache_store *open_store(void **state, size_t bytes)
{
	struct fixture *f = *state;
	struct cache_store *cs = cache_open(f->dir, bytes);

	assert_non_null(cs);
	return cs;
}

static pid_t spawn(void)
{
	pid_t parent = getpid(), pid = fork();

	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
	}
	return pid;
}

static void expect_hit(struct cache_store *cs, const char *key, int64_t now, const char *want)
{
	char *v = NULL;
	size_t len = 0;

	assert_int_equal(cache_lookup(cs, key, strlen(key), now, &v, &len, NULL), 1);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(v, want, len);
	assert_int_equal(v[len], '\0');
	free(v);
}

static void expect_miss(struct cache_store *cs, const char *key, int64_t now)
{
	char *v = NULL;
	size_t len = 7;

	assert_int_equal(cache_lookup(cs, key, strlen(key), now, &v, &len, NULL), 0);
	assert_null(v);
	assert_int_equal(len, 0);
}

static int put(struct cache_store *cs, const char *key, const char *v, uint32_t ttl, int64_t now)
{
	return cache_store(cs, key, strlen(key), v, strlen(v), ttl, now);
}

/* ---- one process ---------------------------------------------------------- */

static void test_hit_miss_replace(void **state)
{
	struct cache_store *cs = open_store(state, 0);
	struct cache_stats st;
	int64_t age = -1;
	char *v;
	size_t len;

	expect_miss(cs, "a", T0);
	assert_int_equal(put(cs, "a", "hello", 60, T0), 0);
	expect_hit(cs, "a", T0, "hello");
	assert_int_equal(cache_lookup(cs, "a", 1, T0 + 7, &v, &len, &age), 1);
	assert_int_equal(age, 7);
	free(v);
	/* a key is its bytes: "a" and "a\0" differ */
	assert_int_equal(cache_lookup(cs, "a\0", 2, T0, &v, &len, NULL), 0);
	assert_int_equal(put(cs, "a", "a longer value", 60, T0 + 1), 0);
	expect_hit(cs, "a", T0 + 1, "a longer value");
	/* empty values are values */
	assert_int_equal(put(cs, "e", "", 60, T0), 0);
	expect_hit(cs, "e", T0, "");
	assert_int_equal(cache_remove(cs, "a", 1), 1);
	assert_int_equal(cache_remove(cs, "a", 1), 0);
	expect_miss(cs, "a", T0 + 1);
	cache_get_stats(cs, &st);
	assert_int_equal(st.live, 1);
	assert_true(st.hits >= 4);
	assert_int_equal(st.blocks, CACHE_DEFAULT_BYTES / CACHE_BLOCK);
	/* bad arguments */
	assert_int_equal(cache_store(cs, "k", 1, "v", 1, 0, T0), -1);
	assert_int_equal(cache_store(cs, "k", 1, "v", 1, CACHE_TTL_MAX + 1, T0), -1);
	assert_int_equal(cache_lookup(NULL, "k", 1, T0, &v, &len, NULL), -1);
	cache_close(cs);
}

static void test_expiry(void **state)
{
	struct cache_store *cs = open_store(state, 0);
	struct cache_stats st;

	assert_int_equal(put(cs, "k", "v", 2, T0), 0);
	expect_hit(cs, "k", T0 + 1, "v");
	expect_miss(cs, "k", T0 + 2);
	cache_get_stats(cs, &st);
	assert_int_equal(st.live, 0);
	assert_int_equal(st.expired, 1);
	cache_close(cs);
}

static void test_persists_across_opens(void **state)
{
	struct cache_store *cs = open_store(state, 0), *cs2;

	assert_int_equal(put(cs, "k", "kept", 60, T0), 0);
	cache_close(cs);
	cs2 = open_store(state, 0);
	expect_hit(cs2, "k", T0, "kept");
	cache_close(cs2);
}

static void test_eviction(void **state)
{
	struct cache_store *cs = open_store(state, CACHE_MIN_BYTES);
	struct cache_stats st;
	char key[32], *big = malloc(3000);
	unsigned i, hits = 0;

	assert_non_null(big);
	memset(big, 'x', 2999);
	big[2999] = '\0';
	/* 64 KiB: 64 blocks, 16 slots; 3000-byte values take 3 blocks */
	for (i = 0; i < 200; i++) {
		snprintf(key, sizeof(key), "k%u", i);
		assert_int_equal(put(cs, key, big, 600, T0), 0);
		/* keep k0 read: CLOCK gives it a second chance each round */
		if (i % 4 == 0) {
			char *v;
			size_t len;

			hits += cache_lookup(cs, "k0", 2, T0, &v, &len, NULL) == 1;
			if (hits)
				free(v);
		}
	}
	cache_get_stats(cs, &st);
	assert_true(st.evictions > 150);
	assert_true(st.live <= st.slots);
	assert_true(st.live * 3 <= st.blocks);
	/* the most recent is there */
	expect_hit(cs, "k199", T0, big);
	/* expired entries go first: they are not counted as evictions */
	{
		uint64_t ev = st.evictions;

		for (i = 0; i < 3; i++) {
			snprintf(key, sizeof(key), "short%u", i);
			assert_int_equal(put(cs, key, big, 1, T0 + 1000), 0);
		}
		cache_get_stats(cs, &st);
		assert_true(st.expired >= 1 || st.evictions > ev);
	}
	/* more than a quarter of the area is refused, and nothing is evicted */
	{
		char *huge = calloc(1, CACHE_MIN_BYTES / 4 + 1);

		assert_non_null(huge);
		assert_int_equal(cache_store(cs, "h", 1, huge, CACHE_MIN_BYTES / 4 + 1, 60, T0), -1);
		free(huge);
	}
	free(big);
	cache_close(cs);
}

static void test_large_value_roundtrip(void **state)
{
	struct cache_store *cs = open_store(state, 0);
	size_t n = 1000000, len;
	char *v, *out;

	v = malloc(n);
	assert_non_null(v);
	for (size_t i = 0; i < n; i++)
		v[i] = (char)(i * 7);
	assert_int_equal(cache_store(cs, "big", 3, v, n, 60, T0), 0);
	assert_int_equal(cache_lookup(cs, "big", 3, T0, &out, &len, NULL), 1);
	assert_int_equal(len, n);
	assert_memory_equal(out, v, n);
	free(out);
	free(v);
	cache_close(cs);
}

/* ---- several processes ---------------------------------------------------- */

/* A value whose every byte says who wrote it: length 100 + 997 * who. */
static size_t fill(char *buf, unsigned who)
{
	size_t n = 100 + 997 * (size_t)who;

	memset(buf, 'A' + (int)who, n);
	return n;
}

static int whole(const char *v, size_t len)
{
	unsigned who;

	if (len < 100)
		return 0;
	who = (unsigned)(v[0] - 'A');
	if (len != 100 + 997 * (size_t)who)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (v[i] != v[0])
			return 0;
	return 1;
}

static void test_concurrent_fills(void **state)
{
	enum { KIDS = 6, ROUNDS = 400 };
	struct cache_store *cs = open_store(state, 0);
	pid_t pids[KIDS];
	int status, k;

	alarm(60);
	for (k = 0; k < KIDS; k++) {
		pids[k] = spawn();
		assert_true(pids[k] >= 0);
		if (pids[k] == 0) {
			char buf[100 + 997 * KIDS];
			int bad = 0;

			for (int r = 0; r < ROUNDS; r++) {
				char *v;
				size_t len;
				int rc;

				if (cache_store(cs, "same", 4, buf, fill(buf, (unsigned)k), 60, T0) != 0)
					bad = 1;
				rc = cache_lookup(cs, "same", 4, T0, &v, &len, NULL);
				if (rc == 1) {
					if (!whole(v, len))
						bad = 1;
					free(v);
				} else if (rc < 0) {
					bad = 1;
				}
			}
			_exit(bad ? 3 : 0);
		}
	}
	for (k = 0; k < KIDS; k++) {
		assert_int_equal(waitpid(pids[k], &status, 0), pids[k]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	{
		char *v;
		size_t len;
		struct cache_stats st;

		assert_int_equal(cache_lookup(cs, "same", 4, T0, &v, &len, NULL), 1);
		assert_true(whole(v, len));
		free(v);
		cache_get_stats(cs, &st);
		assert_int_equal(st.live, 1);
		assert_int_equal(st.stores, KIDS * ROUNDS);
	}
	alarm(0);
	cache_close(cs);
}

static void test_killed_holding_lock(void **state)
{
	struct cache_store *cs = open_store(state, 0);
	struct cache_stats st;
	int p[2], status;
	pid_t pid;
	char c;

	assert_int_equal(put(cs, "before", "kept", 60, T0), 0);
	assert_int_equal(pipe(p), 0);
	alarm(30);
	pid = spawn();
	if (pid == 0) {
		cache_test_lock(cs);
		if (write(p[1], "L", 1) != 1)
			_exit(2);
		pause();
		_exit(0);
	}
	close(p[1]);
	assert_int_equal(read(p[0], &c, 1), 1);
	close(p[0]);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	/* the next operation takes the lock over and goes on */
	expect_hit(cs, "before", T0, "kept");
	assert_int_equal(put(cs, "after", "works", 60, T0), 0);
	expect_hit(cs, "after", T0, "works");
	cache_get_stats(cs, &st);
	assert_int_equal(st.takeovers, 1);
	assert_int_equal(st.live, 2);
	alarm(0);
	cache_close(cs);
}

static void die_now(void)
{
	raise(SIGKILL);
}

static void test_killed_mid_write(void **state)
{
	struct cache_store *cs = open_store(state, 0);
	struct cache_stats st;
	char *big = malloc(50000);
	int status;
	pid_t pid;

	assert_non_null(big);
	memset(big, 'n', 50000);
	assert_int_equal(put(cs, "k", "old", 60, T0), 0);
	assert_int_equal(put(cs, "other", "untouched", 60, T0), 0);
	alarm(30);
	pid = spawn();
	if (pid == 0) {
		cache_test_mid_write = die_now;
		cache_store(cs, "k", 1, big, 50000, 60, T0);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	/* the half-written value is never served; the rest is intact */
	expect_miss(cs, "k", T0);
	expect_hit(cs, "other", T0, "untouched");
	cache_get_stats(cs, &st);
	assert_int_equal(st.takeovers, 1);
	assert_int_equal(st.live, 1);
	/* the blocks of the dead write came back: the whole area minus "other" */
	assert_int_equal(st.free_blocks, st.blocks - 1);
	assert_int_equal(cache_store(cs, "k", 1, big, 50000, 60, T0), 0);
	alarm(0);
	free(big);
	cache_close(cs);
}

static void test_corrupt_value_refused(void **state)
{
	struct fixture *f = *state;
	struct cache_store *cs = open_store(state, CACHE_MIN_BYTES);
	const char *val = "a-unique-marker-0123456789";
	struct stat sb;
	unsigned char *m, *hit;
	int fd;

	assert_int_equal(put(cs, "k", val, 60, T0), 0);
	fd = open(f->path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &sb), 0);
	assert_int_equal((sb.st_mode & 0777), 0660);
	m = mmap(NULL, (size_t)sb.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(m != MAP_FAILED);
	hit = memmem(m, (size_t)sb.st_size, val, strlen(val));
	assert_non_null(hit);
	hit[3] ^= 0x20;		/* a torn or scribbled value */
	munmap(m, (size_t)sb.st_size);
	close(fd);
	expect_miss(cs, "k", T0);
	{
		struct cache_stats st;

		cache_get_stats(cs, &st);
		assert_int_equal(st.corrupt, 1);
		assert_int_equal(st.live, 0);
	}
	cache_close(cs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hit_miss_replace, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_persists_across_opens, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eviction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_large_value_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_fills, setup, teardown),
		cmocka_unit_test_setup_teardown(test_killed_holding_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_killed_mid_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_value_refused, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
