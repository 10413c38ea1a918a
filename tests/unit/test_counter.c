/*
 * Counter store: windows, exact limits under a race of processes, retry-after,
 * eviction, a full table, concurrency seats and their reclaim from dead
 * processes, circuit breakers, persistence, and processes SIGKILLed at random
 * moments. Time is injected through the now parameter; children start together
 * on a pipe; alarm() bounds every multi-process test.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
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

#include "common/counter.h"
#include "common/log.h"
#include "common/shmfile.h"

#define T0 1700000000

#define TMPDIR_FILE COUNTER_FILE
#include "tests/unit/tmpdir.h"

static struct counter_store *open_store(void **state, uint32_t slots)
{
	struct fixture *f = *state;
	struct counter_store *cs = counter_open(f->dir, slots);

	assert_non_null(cs);
	return cs;
}

/* fork() for a child that dies with the test process (a failed assertion
 * leaves no child behind holding pipes open). */
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

/* ---- single process ------------------------------------------------------- */

static void test_siphash_vector(void **state)
{
	/* SipHash-2-4 reference vectors (key 00..0f) */
	const uint64_t seed[2] = { 0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL };
	unsigned char msg[15];
	uint64_t out[2];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(msg); i++)
		msg[i] = (unsigned char)i;
	shmfile_hash128(seed, 0, msg, 0, out);
	assert_true(out[0] == 0x726fdb47dd0e0e31ULL);
	shmfile_hash128(seed, 0, msg, 15, out);
	assert_true(out[0] == 0xa129ca6149be45e5ULL);
	shmfile_hash128(seed, 0, msg, 8, out);
	assert_true(out[0] == 0x93f5f5799a932462ULL);
}

static void test_window_exact_and_retry_after(void **state)
{
	struct counter_store *cs = open_store(state, 0);
	uint32_t retry = 99, left = 99;

	assert_int_equal(counter_take(cs, "rl:a", 3, 10, T0, &retry, &left), COUNTER_ALLOW);
	assert_int_equal(left, 2);
	assert_int_equal(retry, 0);
	assert_int_equal(counter_take(cs, "rl:a", 3, 10, T0 + 1, &retry, &left), COUNTER_ALLOW);
	assert_int_equal(left, 1);
	assert_int_equal(counter_take(cs, "rl:a", 3, 10, T0 + 2, &retry, &left), COUNTER_ALLOW);
	assert_int_equal(left, 0);
	assert_int_equal(counter_take(cs, "rl:a", 3, 10, T0 + 2, &retry, &left), COUNTER_DENY);
	assert_int_equal(retry, 8);
	assert_int_equal(left, 0);
	assert_int_equal(counter_take(cs, "rl:a", 3, 10, T0 + 9, &retry, NULL), COUNTER_DENY);
	assert_int_equal(retry, 1);
	/* the window ends at T0 + 10 exactly */
	assert_int_equal(counter_take(cs, "rl:a", 3, 10, T0 + 10, &retry, &left), COUNTER_ALLOW);
	assert_int_equal(left, 2);
	/* another key is untouched */
	assert_int_equal(counter_take(cs, "rl:b", 1, 10, T0 + 10, NULL, &left), COUNTER_ALLOW);
	assert_int_equal(left, 0);
	assert_int_equal(counter_take(cs, "rl:b", 1, 10, T0 + 10, &retry, NULL), COUNTER_DENY);
	assert_int_equal(retry, 10);
	counter_close(cs);
}

static void test_window_starts_with_first_call_after_end(void **state)
{
	struct counter_store *cs = open_store(state, 0);
	uint32_t retry, left;
	int i;

	assert_int_equal(counter_take(cs, "k", 2, 60, T0, NULL, NULL), COUNTER_ALLOW);
	/* nothing for a while: the next window starts at T0 + 100, not T0 + 60 */
	for (i = 0; i < 2; i++)
		assert_int_equal(counter_take(cs, "k", 2, 60, T0 + 100, NULL, NULL), COUNTER_ALLOW);
	assert_int_equal(counter_take(cs, "k", 2, 60, T0 + 130, &retry, &left), COUNTER_DENY);
	assert_int_equal(retry, 30);
	assert_int_equal(counter_take(cs, "k", 2, 60, T0 + 159, &retry, NULL), COUNTER_DENY);
	assert_int_equal(retry, 1);
	/* denied calls started nothing */
	assert_int_equal(counter_take(cs, "k", 2, 60, T0 + 160, NULL, &left), COUNTER_ALLOW);
	assert_int_equal(left, 1);
	counter_close(cs);
}

static void test_take_n_add_peek(void **state)
{
	struct counter_store *cs = open_store(state, 0);
	uint32_t retry, left;

	assert_int_equal(counter_take_n(cs, "q", 4, 10, 100, T0, NULL, &left), COUNTER_ALLOW);
	assert_int_equal(left, 6);
	assert_int_equal(counter_take_n(cs, "q", 7, 10, 100, T0, &retry, NULL), COUNTER_DENY);
	assert_int_equal(retry, 100);
	assert_int_equal(counter_take_n(cs, "q", 6, 10, 100, T0, NULL, &left), COUNTER_ALLOW);
	assert_int_equal(left, 0);
	assert_int_equal(counter_take_n(cs, "q2", 11, 10, 100, T0, &retry, NULL), COUNTER_DENY);
	assert_int_equal(retry, 100);
	assert_int_equal(counter_take_n(cs, "q2", 0, 10, 100, T0, NULL, NULL), COUNTER_ERROR);
	assert_int_equal(counter_take(cs, "q3", 0, 100, T0, &retry, NULL), COUNTER_DENY);

	/* bandwidth: check before, add after */
	assert_int_equal(counter_peek(cs, "bw", 100, T0, NULL, &left), COUNTER_ALLOW);
	assert_int_equal(left, 100);
	assert_int_equal(counter_add(cs, "bw", 60, 3600, T0), COUNTER_ALLOW);
	assert_int_equal(counter_peek(cs, "bw", 100, T0 + 1, NULL, &left), COUNTER_ALLOW);
	assert_int_equal(left, 40);
	assert_int_equal(counter_add(cs, "bw", 60, 3600, T0 + 2), COUNTER_ALLOW);
	assert_int_equal(counter_peek(cs, "bw", 100, T0 + 3, &retry, &left), COUNTER_DENY);
	assert_int_equal(retry, 3597);
	assert_int_equal(left, 0);
	/* the same string as a breaker key is another counter */
	assert_int_equal(counter_breaker_open(cs, "bw", T0 + 3, NULL), 0);
	assert_int_equal(counter_peek(cs, "bw", 100, T0 + 3600, NULL, &left), COUNTER_ALLOW);
	assert_int_equal(left, 100);
	counter_close(cs);
}

static void test_key_too_long(void **state)
{
	struct counter_store *cs = open_store(state, 0);
	struct counter_seat seat;
	char *key = malloc(COUNTER_KEY_MAX + 2);

	assert_non_null(key);
	memset(key, 'x', COUNTER_KEY_MAX + 1);
	key[COUNTER_KEY_MAX + 1] = '\0';
	assert_int_equal(counter_take(cs, key, 1, 1, T0, NULL, NULL), COUNTER_ERROR);
	assert_int_equal(counter_acquire(cs, key, 1, T0, &seat), COUNTER_ERROR);
	key[COUNTER_KEY_MAX] = '\0';
	assert_int_equal(counter_take(cs, key, 1, 1, T0, NULL, NULL), COUNTER_ALLOW);
	free(key);
	counter_close(cs);
}

static void test_persists_across_reopen(void **state)
{
	struct fixture *f = *state;
	struct counter_store *cs = open_store(state, 64);
	struct counter_stats st;
	struct stat sb;
	uint32_t left;

	assert_int_equal(counter_take(cs, "quota:x", 3, 86400, T0, NULL, NULL), COUNTER_ALLOW);
	assert_int_equal(counter_take(cs, "quota:x", 3, 86400, T0, NULL, NULL), COUNTER_ALLOW);
	counter_close(cs);
	/* a restart: a new mapping of the same file (asking for another size) */
	cs = open_store(state, 4096);
	counter_get_stats(cs, &st);
	assert_int_equal(st.slots, 64 + COUNTER_PROBE);
	assert_int_equal(counter_take(cs, "quota:x", 3, 86400, T0 + 5, NULL, &left), COUNTER_ALLOW);
	assert_int_equal(left, 0);
	assert_int_equal(counter_take(cs, "quota:x", 3, 86400, T0 + 5, NULL, NULL), COUNTER_DENY);
	counter_close(cs);
	assert_int_equal(stat(f->path, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0660);
}

static void test_foreign_file_replaced(void **state)
{
	struct fixture *f = *state;
	struct counter_store *cs;
	struct stat sb;
	mode_t old = umask(077);
	int fd;

	fd = open(f->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "not a counter store, much too short", 35), 35);
	close(fd);
	cs = open_store(state, 16);
	assert_int_equal(counter_take(cs, "a", 1, 10, T0, NULL, NULL), COUNTER_ALLOW);
	assert_int_equal(counter_take(cs, "a", 1, 10, T0, NULL, NULL), COUNTER_DENY);
	counter_close(cs);
	assert_int_equal(stat(f->path, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0660);	/* whatever the umask */
	assert_true(sb.st_size > 1000);
	umask(old);

	/* a file of our magic but a corrupt size is replaced too */
	assert_int_equal(truncate(f->path, sb.st_size - 8), 0);
	cs = open_store(state, 16);
	assert_int_equal(counter_take(cs, "a", 1, 10, T0, NULL, NULL), COUNTER_ALLOW);
	counter_close(cs);
}

static void test_eviction_and_full_table(void **state)
{
	struct counter_store *cs = open_store(state, COUNTER_MIN_SLOTS);
	struct counter_stats st;
	char key[32];
	int i, n = 0;

	log_set_level(LOG_LEVEL_ERR);	/* the "table full" warning is expected */
	/* fill: every key a live window of limit 1 */
	for (i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "old:%d", i);
		if (counter_take(cs, key, 1, 10, T0, NULL, NULL) != COUNTER_ALLOW)
			break;
		n++;
	}
	counter_get_stats(cs, &st);
	assert_true(n >= (int)COUNTER_PROBE);
	assert_true(n <= (int)st.slots);
	assert_int_equal(st.full, 1);
	/* full of live keys where the key that found no slot may go: it fails
	 * open, and is not counted (another key may still find room: its slots
	 * are others) */
	snprintf(key, sizeof(key), "old:%d", n);
	assert_int_equal(counter_take(cs, key, 1, 10, T0 + 1, NULL, NULL), COUNTER_FULL);
	assert_int_equal(counter_take(cs, key, 1, 10, T0 + 1, NULL, NULL), COUNTER_FULL);
	counter_get_stats(cs, &st);
	assert_int_equal(st.full, 3);
	/* keys already in stay limited */
	assert_int_equal(counter_take(cs, "old:0", 1, 10, T0 + 1, NULL, NULL), COUNTER_DENY);
	snprintf(key, sizeof(key), "old:%d", n - 1);
	assert_int_equal(counter_take(cs, key, 1, 10, T0 + 1, NULL, NULL), COUNTER_DENY);
	/* the windows end: their slots take new keys (any COUNTER_PROBE keys fit,
	 * whatever their hashes) */
	for (i = 0; i < (int)COUNTER_PROBE; i++) {
		snprintf(key, sizeof(key), "fresh:%d", i);
		assert_int_equal(counter_take(cs, key, 1, 10, T0 + 10, NULL, NULL), COUNTER_ALLOW);
		assert_int_equal(counter_take(cs, key, 1, 10, T0 + 10, NULL, NULL), COUNTER_DENY);
	}
	counter_get_stats(cs, &st);
	assert_true(st.used <= st.slots);
	assert_int_equal(st.full, 3);
	/* an old key evicted: it starts again */
	assert_int_equal(counter_take(cs, "old:0", 1, 10, T0 + 20, NULL, NULL), COUNTER_ALLOW);
	log_set_level(LOG_LEVEL_INFO);
	counter_close(cs);
}

static void test_concurrency_seats(void **state)
{
	struct counter_store *cs = open_store(state, 0);
	struct counter_seat a, b, c, d;

	assert_int_equal(counter_acquire(cs, "cc:x", 2, T0, &a), COUNTER_ALLOW);
	assert_int_equal(counter_acquire(cs, "cc:x", 2, T0, &b), COUNTER_ALLOW);
	assert_int_equal(counter_acquire(cs, "cc:x", 2, T0, &c), COUNTER_DENY);
	assert_true(c.word == 0);
	/* a later denial recounts: the holders are alive, still refused */
	assert_int_equal(counter_acquire(cs, "cc:x", 2, T0 + 5, &c), COUNTER_DENY);
	assert_int_equal(counter_acquire(cs, "cc:y", 1, T0, &d), COUNTER_ALLOW);
	counter_release(cs, &a, T0);
	assert_true(a.word == 0);
	counter_release(cs, &a, T0);	/* twice: nothing */
	assert_int_equal(counter_acquire(cs, "cc:x", 2, T0, &c), COUNTER_ALLOW);
	assert_int_equal(counter_acquire(cs, "cc:x", 2, T0, &a), COUNTER_DENY);
	counter_release(cs, &b, T0);
	counter_release(cs, &c, T0);
	counter_release(cs, &d, T0);
	assert_int_equal(counter_acquire(cs, "cc:x", 0, T0, &a), COUNTER_DENY);
	assert_int_equal(counter_acquire(cs, "cc:x", 2, T0, &a), COUNTER_ALLOW);
	assert_int_equal(counter_acquire(cs, "cc:x", 2, T0, &b), COUNTER_ALLOW);
	counter_release(cs, &a, T0);
	counter_release(cs, &b, T0);
	counter_close(cs);
}

/* A child takes seats and dies without giving them back. With reap, the
 * parent reaps it before asking again; without, it is still a zombie. */
static void dead_owner(void **state, int reap)
{
	struct counter_store *cs = open_store(state, 0);
	struct counter_seat s1, s2, s3;
	struct counter_stats st;
	int p[2], status;
	char c;
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	pid = spawn();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct counter_seat a, b;

		if (counter_acquire(cs, "cc:dead", 2, T0, &a) != COUNTER_ALLOW ||
		    counter_acquire(cs, "cc:dead", 2, T0, &b) != COUNTER_ALLOW)
			_exit(1);
		if (write(p[1], "x", 1) != 1)
			_exit(1);
		if (reap)
			_exit(0);
		raise(SIGKILL);
		_exit(1);
	}
	close(p[1]);
	assert_int_equal(read(p[0], &c, 1), 1);
	close(p[0]);
	if (reap) {
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	} else {
		/* wait (polling, bounded) until it is a zombie, without reaping it */
		siginfo_t si;
		int i;

		for (i = 0; i < 10000; i++) {
			memset(&si, 0, sizeof(si));
			assert_int_equal(waitid(P_PID, (id_t)pid, &si,
						WEXITED | WNOHANG | WNOWAIT), 0);
			if (si.si_pid == pid)
				break;
			usleep(1000);
		}
		assert_int_equal(si.si_pid, pid);
	}
	/* at the child's second, within the once-a-second recount: refused */
	assert_int_equal(counter_acquire(cs, "cc:dead", 2, T0, &s1), COUNTER_DENY);
	/* a second later the dead holders are counted again and freed */
	assert_int_equal(counter_acquire(cs, "cc:dead", 2, T0 + 2, &s1), COUNTER_ALLOW);
	assert_int_equal(counter_acquire(cs, "cc:dead", 2, T0 + 2, &s2), COUNTER_ALLOW);
	assert_int_equal(counter_acquire(cs, "cc:dead", 2, T0 + 4, &s3), COUNTER_DENY);
	counter_get_stats(cs, &st);
	assert_int_equal(st.reclaimed, 2);
	counter_release(cs, &s1, T0 + 4);
	counter_release(cs, &s2, T0 + 4);
	if (!reap)
		assert_int_equal(waitpid(pid, &status, 0), pid);
	counter_close(cs);
}

static void test_concurrency_dead_owner_reaped(void **state)
{
	dead_owner(state, 1);
}

static void test_concurrency_dead_owner_zombie(void **state)
{
	dead_owner(state, 0);
}

static void test_breaker(void **state)
{
	struct counter_store *cs = open_store(state, 0);
	const char *url = "https://a.example/v1";
	uint32_t retry;

	assert_int_equal(counter_breaker_open(cs, url, T0, &retry), 0);
	assert_int_equal(counter_breaker_failure(cs, url, 3, 60, 30, T0), 0);
	assert_int_equal(counter_breaker_failure(cs, url, 3, 60, 30, T0 + 1), 0);
	assert_int_equal(counter_breaker_open(cs, url, T0 + 1, NULL), 0);
	assert_int_equal(counter_breaker_failure(cs, url, 3, 60, 30, T0 + 2), 1);
	assert_int_equal(counter_breaker_open(cs, url, T0 + 2, &retry), 1);
	assert_int_equal(retry, 30);
	/* more failures while open change nothing */
	assert_int_equal(counter_breaker_failure(cs, url, 3, 60, 30, T0 + 3), 0);
	assert_int_equal(counter_breaker_open(cs, url, T0 + 31, &retry), 1);
	assert_int_equal(retry, 1);
	assert_int_equal(counter_breaker_open(cs, url, T0 + 32, &retry), 0);
	assert_int_equal(retry, 0);
	/* closed with nothing counted: two failures do not trip it */
	assert_int_equal(counter_breaker_failure(cs, url, 3, 60, 30, T0 + 32), 0);
	assert_int_equal(counter_breaker_failure(cs, url, 3, 60, 30, T0 + 33), 0);
	assert_int_equal(counter_breaker_open(cs, url, T0 + 33, NULL), 0);
	/* the interval ends: counting starts again */
	assert_int_equal(counter_breaker_failure(cs, url, 3, 60, 30, T0 + 92), 0);
	assert_int_equal(counter_breaker_failure(cs, url, 3, 60, 30, T0 + 93), 0);
	assert_int_equal(counter_breaker_failure(cs, url, 3, 60, 30, T0 + 94), 1);
	/* another backend is independent */
	assert_int_equal(counter_breaker_open(cs, "https://b.example/v1", T0 + 94, NULL), 0);
	assert_int_equal(counter_breaker_failure(cs, "https://b.example/v1", 1, 60, 5, T0), 1);
	counter_close(cs);
}

/* ---- many processes ------------------------------------------------------- */

#define NPROC 16

static void read_all(int fd, void *buf, size_t len)
{
	char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		assert_true(n > 0);
		p += n;
		len -= (size_t)n;
	}
}

static void wait_all(pid_t *pids, int n)
{
	int i, status;

	for (i = 0; i < n; i++) {
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
}

#define ROUNDS 5
#define ATTEMPTS 3000
#define LIMIT 20011

/* Children hammer one key; round by round (the parent's go-byte), all at the
 * same now: exactly LIMIT calls pass in each window, whoever races. */
static void race_rounds(void **state, const char *key, int64_t base)
{
	struct counter_store *cs = open_store(state, 0);
	int go[NPROC][2], res[2], i, r;
	pid_t pids[NPROC];

	assert_int_equal(pipe(res), 0);
	for (i = 0; i < NPROC; i++)
		assert_int_equal(pipe(go[i]), 0);
	for (i = 0; i < NPROC; i++) {
		pids[i] = spawn();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			int j;

			close(res[0]);
			for (j = 0; j < NPROC; j++)
				close(go[j][1]);
			for (r = 0; r < ROUNDS; r++) {
				int32_t ok = 0;
				char c;
				int a;

				if (read(go[i][0], &c, 1) != 1)
					_exit(1);
				for (a = 0; a < ATTEMPTS; a++)
					if (counter_take(cs, key, LIMIT, 60, base + 60 * r,
							 NULL, NULL) == COUNTER_ALLOW)
						ok++;
				if (write(res[1], &ok, sizeof(ok)) != sizeof(ok))
					_exit(1);
			}
			_exit(0);
		}
	}
	close(res[1]);
	for (i = 0; i < NPROC; i++)
		close(go[i][0]);
	for (r = 0; r < ROUNDS; r++) {
		int32_t sum = 0, ok;

		/* each child its own go-byte: none can run ahead a round */
		for (i = 0; i < NPROC; i++)
			assert_int_equal(write(go[i][1], "g", 1), 1);
		for (i = 0; i < NPROC; i++) {
			read_all(res[0], &ok, sizeof(ok));
			sum += ok;
		}
		assert_int_equal(sum, LIMIT);
	}
	for (i = 0; i < NPROC; i++)
		close(go[i][1]);
	close(res[0]);
	wait_all(pids, NPROC);
	counter_close(cs);
}

static void test_race_exact_limit(void **state)
{
	alarm(120);
	race_rounds(state, "rl:race", T0);
	alarm(0);
}

#define NKEYS 300
#define KEY_LIMIT 5

/* Every child makes the same new keys at the same time: each key is put in
 * one slot only (else its limit would be passed). */
static void test_race_new_keys(void **state)
{
	struct counter_store *cs = open_store(state, 0);
	int go[2], res[2], i, k;
	int32_t total[NKEYS] = { 0 };
	pid_t pids[NPROC];

	alarm(120);
	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(res), 0);
	for (i = 0; i < NPROC; i++) {
		pids[i] = spawn();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			int32_t ok[NKEYS] = { 0 };
			char key[32], c;
			int a;

			close(go[1]);
			close(res[0]);
			if (read(go[0], &c, 1) != 1)
				_exit(1);
			for (a = 0; a < 3; a++)
				for (k = 0; k < NKEYS; k++) {
					snprintf(key, sizeof(key), "nk:%d", (k * 7 + i) % NKEYS);
					if (counter_take(cs, key, KEY_LIMIT, 60, T0, NULL, NULL) ==
					    COUNTER_ALLOW)
						ok[(k * 7 + i) % NKEYS]++;
				}
			/* sizeof(ok) < PIPE_BUF: one atomic write */
			if (write(res[1], ok, sizeof(ok)) != sizeof(ok))
				_exit(1);
			_exit(0);
		}
	}
	close(go[0]);
	close(res[1]);
	{
		char gobytes[NPROC];

		memset(gobytes, 'g', sizeof(gobytes));
		assert_int_equal(write(go[1], gobytes, sizeof(gobytes)), NPROC);
	}
	for (i = 0; i < NPROC; i++) {
		int32_t ok[NKEYS];

		read_all(res[0], ok, sizeof(ok));
		for (k = 0; k < NKEYS; k++)
			total[k] += ok[k];
	}
	for (k = 0; k < NKEYS; k++)
		assert_int_equal(total[k], KEY_LIMIT);
	close(go[1]);
	close(res[0]);
	wait_all(pids, NPROC);
	alarm(0);
	counter_close(cs);
}

#define CC_MAX 3

/* Seats under a race: never more than CC_MAX holders at once. */
static void test_race_concurrency(void **state)
{
	struct counter_store *cs = open_store(state, 0);
	_Atomic int *shared;
	int go[2], i;
	pid_t pids[NPROC];
	struct counter_seat seat;

	alarm(120);
	shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(shared != MAP_FAILED);
	/* shared[0]: holders now, [1]: most seen, [2]: seats taken */
	atomic_store(&shared[0], 0);
	atomic_store(&shared[1], 0);
	atomic_store(&shared[2], 0);
	assert_int_equal(pipe(go), 0);
	for (i = 0; i < NPROC; i++) {
		pids[i] = spawn();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			struct counter_seat s;
			char c;
			int a, in, most;

			close(go[1]);
			if (read(go[0], &c, 1) != 1)
				_exit(1);
			for (a = 0; a < 300; a++) {
				if (counter_acquire(cs, "cc:race", CC_MAX, T0, &s) != COUNTER_ALLOW)
					continue;
				in = atomic_fetch_add(&shared[0], 1) + 1;
				most = atomic_load(&shared[1]);
				while (in > most && !atomic_compare_exchange_weak(&shared[1], &most, in))
					;
				atomic_fetch_add(&shared[2], 1);
				atomic_fetch_sub(&shared[0], 1);
				counter_release(cs, &s, T0);
			}
			_exit(0);
		}
	}
	close(go[0]);
	{
		char gobytes[NPROC];

		memset(gobytes, 'g', sizeof(gobytes));
		assert_int_equal(write(go[1], gobytes, sizeof(gobytes)), NPROC);
	}
	close(go[1]);
	wait_all(pids, NPROC);
	assert_true(atomic_load(&shared[1]) <= CC_MAX);
	assert_true(atomic_load(&shared[1]) >= 1);
	assert_true(atomic_load(&shared[2]) >= 300);
	/* every seat came back */
	for (i = 0; i < CC_MAX; i++) {
		assert_int_equal(counter_acquire(cs, "cc:race", CC_MAX, T0, &seat), COUNTER_ALLOW);
	}
	assert_int_equal(counter_acquire(cs, "cc:race", CC_MAX, T0, &seat), COUNTER_DENY);
	munmap(shared, 4096);
	alarm(0);
	counter_close(cs);
}

#define KILL_PROCS 8
#define KILLS 300
#define KILL_LIMIT 1000000u

/* A child that works until it is killed: takes on one key (reporting each
 * success on the pipe, after the fact), seats, new keys (the insert lock),
 * breaker failures. */
static void chaos_child(struct counter_store *cs, int out, unsigned seed)
{
	struct counter_seat s;
	char key[32];
	unsigned n = seed;

	for (;;) {
		n = n * 1103515245u + 12345u;
		if (counter_take(cs, "rl:chaos", KILL_LIMIT, 3600, T0, NULL, NULL) == COUNTER_ALLOW &&
		    write(out, "t", 1) != 1)
			_exit(1);
		if (counter_acquire(cs, "cc:chaos", 4, T0, &s) == COUNTER_ALLOW) {
			if (n & 0x100)
				counter_release(cs, &s, T0);
			else
				s.word = 0;	/* sometimes keep it: the kill leaks it */
		}
		snprintf(key, sizeof(key), "nk:%u", (n >> 8) % 5000);
		(void)counter_take(cs, key, 3, 60, T0, NULL, NULL);
		(void)counter_breaker_failure(cs, "https://chaos.example", 1000, 60, 5, T0);
	}
}

static void test_sigkill_chaos(void **state)
{
	struct counter_store *cs = open_store(state, 2048);
	pid_t pids[KILL_PROCS];
	struct counter_seat seats[4], extra;
	struct counter_stats st;
	uint32_t left = 0;
	uint64_t reported = 0, counted;
	int p[2], i, k, status;
	char buf[256];
	ssize_t n;

	alarm(240);
	log_set_level(LOG_LEVEL_ERR);	/* 5000 keys in 2048 slots: "full" is expected */
	srand((unsigned)getpid());
	assert_int_equal(pipe(p), 0);
	for (i = 0; i < KILL_PROCS; i++) {
		pids[i] = spawn();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			close(p[0]);
			chaos_child(cs, p[1], (unsigned)i * 7919u + 1);
		}
	}
	for (k = 0; k < KILLS; k++) {
		/* a random amount of work, then a random child dies */
		int want = 1 + rand() % 200;

		while (want > 0) {
			n = read(p[0], buf, (size_t)want < sizeof(buf) ? (size_t)want : sizeof(buf));
			assert_true(n > 0);
			reported += (uint64_t)n;
			want -= (int)n;
		}
		i = rand() % KILL_PROCS;
		kill(pids[i], SIGKILL);
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		pids[i] = spawn();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			close(p[0]);
			chaos_child(cs, p[1], (unsigned)rand());
		}
	}
	for (i = 0; i < KILL_PROCS; i++) {
		kill(pids[i], SIGKILL);
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
	}
	close(p[1]);
	while ((n = read(p[0], buf, sizeof(buf))) > 0)
		reported += (uint64_t)n;
	close(p[0]);

	/* counted exactly: what was reported, plus at most one unreported
	 * success per killed process */
	assert_int_equal(counter_peek(cs, "rl:chaos", KILL_LIMIT, T0, NULL, &left), COUNTER_ALLOW);
	counted = KILL_LIMIT - left;
	assert_true(counted >= reported);
	assert_true(counted <= reported + KILLS + KILL_PROCS);

	/* no wedge, and every seat of the dead comes back */
	for (i = 0; i < 4; i++)
		assert_int_equal(counter_acquire(cs, "cc:chaos", 4, T0 + 10, &seats[i]),
				 COUNTER_ALLOW);
	assert_int_equal(counter_acquire(cs, "cc:chaos", 4, T0 + 10, &extra), COUNTER_DENY);
	for (i = 0; i < 4; i++)
		counter_release(cs, &seats[i], T0 + 10);
	/* the table was full of the children's keys at T0; a minute later not */
	assert_int_equal(counter_take(cs, "nk:after", 2, 60, T0 + 60, NULL, NULL), COUNTER_ALLOW);
	assert_int_equal(counter_take(cs, "nk:after", 2, 60, T0 + 60, NULL, NULL), COUNTER_ALLOW);
	assert_int_equal(counter_take(cs, "nk:after", 2, 60, T0 + 60, NULL, NULL), COUNTER_DENY);
	counter_get_stats(cs, &st);
	print_message("chaos: %llu takes reported, %llu counted, %llu takeovers, %llu seats reclaimed\n",
		      (unsigned long long)reported, (unsigned long long)counted,
		      (unsigned long long)st.takeovers, (unsigned long long)st.reclaimed);
	counter_close(cs);
	log_set_level(LOG_LEVEL_INFO);
	alarm(0);

	/* and a race afterwards still counts exactly */
	race_rounds(state, "rl:after-chaos", T0 + 7200);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_siphash_vector),
		cmocka_unit_test_setup_teardown(test_window_exact_and_retry_after, setup, teardown),
		cmocka_unit_test_setup_teardown(test_window_starts_with_first_call_after_end, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_take_n_add_peek, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_too_long, setup, teardown),
		cmocka_unit_test_setup_teardown(test_persists_across_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_file_replaced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eviction_and_full_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrency_seats, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrency_dead_owner_reaped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrency_dead_owner_zombie, setup, teardown),
		cmocka_unit_test_setup_teardown(test_breaker, setup, teardown),
		cmocka_unit_test_setup_teardown(test_race_exact_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_race_new_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_race_concurrency, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sigkill_chaos, setup, teardown),
	};

	log_init("test_counter", LOG_TO_STDERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
