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
#include "policy/engine.h"
#include "policy/gateway.h"
#include "policy/route.h"

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


/* ---- the policies through the engine ------------------------------------ */

#define CDOC(LOOKUP, STORE) \
	"{\"format\":1,\"generation\":1,\"backends\":{\"w\":{\"url\":\"https://w.example\"}}," \
	"\"apis\":[{\"id\":\"a\",\"path\":\"a\",\"backend\":\"w\",\"subscription_required\":false," \
	"\"policies\":{\"inbound\":[{\"cache-lookup\":" LOOKUP "}]," \
	"\"outbound\":[{\"cache-store\":" STORE "}]}}]}"

struct call {
	struct route_match m;
	struct pol_call c;
	int rc;
};

static void call_start(struct call *k, struct gateway *gw, struct cache_store *cs,
		       const char *method, const char *path, const char *query, const char *hdr)
{
	assert_int_equal(route_match(gw, path, strlen(path), NULL, method, &k->m), ROUTE_OK);
	engine_call_init(&k->c, gw, &k->m, "192.0.2.1", "req", T0, NULL);
	k->c.cache = cs;
	k->c.method = strdup(method);
	k->c.path = strndup(k->m.rest, k->m.rest_len);
	k->c.query = strdup(query);
	if (hdr)
		assert_int_equal(pol_headers_add(&k->c.req_headers, "Authorization", hdr), 0);
	k->rc = engine_inbound(&k->c);
}

/* The backend answers status with body (NULs allowed) and a header. */
static void call_backend(struct call *k, int status, const char *body, size_t len,
			 const char *hname, const char *hvalue)
{
	assert_true(engine_outbound_needs_body(&k->c));
	k->c.status = status;
	assert_int_equal(pol_headers_add(&k->c.resp_headers, hname, hvalue), 0);
	assert_int_equal(pol_headers_add(&k->c.resp_headers, "Connection", "close"), 0);
	free(k->c.body);
	k->c.body = malloc(len + 1);
	assert_non_null(k->c.body);
	memcpy(k->c.body, body, len);
	k->c.body_len = len;
	k->c.resp_body_buffered = 1;
	assert_int_equal(engine_outbound(&k->c), POL_CONTINUE);
}

static void call_end(struct call *k)
{
	engine_finish(&k->c);
	engine_call_release(&k->c);
}

static struct gateway *load_doc(const char *doc)
{
	struct cfg_errors errs = CFG_ERRORS_INIT;
	struct gateway *gw = gw_load_buffer(doc, strlen(doc), &errs);

	for (size_t i = 0; i < errs.n; i++)
		print_message("    error: %s\n", errs.msg[i]);
	cfg_errors_release(&errs);
	return gw;
}

static void test_policies_hit_miss(void **state)
{
	struct cache_store *cs = open_store(state, 0);
	struct gateway *gw = load_doc(CDOC("{\"downstream-caching-type\":\"private\"}",
					   "{\"duration\":60}"));
	struct call k;

	assert_non_null(gw);
	/* a miss goes to the backend, and its answer is stored */
	call_start(&k, gw, cs, "GET", "/a/x", "q=1", NULL);
	assert_int_equal(k.rc, POL_CONTINUE);
	call_backend(&k, 200, "hel\0lo", 6, "Content-Type", "text/plain");
	call_end(&k);
	/* a hit answers it whole, with Age and Cache-Control, and no hop-by-hop */
	call_start(&k, gw, cs, "GET", "/a/x", "q=1", NULL);
	assert_int_equal(k.rc, POL_RESPOND);
	assert_int_equal(k.c.status, 200);
	assert_int_equal(k.c.body_len, 6);
	assert_memory_equal(k.c.body, "hel\0lo", 6);
	assert_string_equal(pol_headers_get(&k.c.resp_headers, "Content-Type"), "text/plain");
	assert_string_equal(pol_headers_get(&k.c.resp_headers, "Age"), "0");
	assert_string_equal(pol_headers_get(&k.c.resp_headers, "Cache-Control"),
			    "private, max-age=60, must-revalidate");
	assert_null(pol_headers_get(&k.c.resp_headers, "Connection"));
	call_end(&k);
	/* HEAD is answered from GET's entry */
	call_start(&k, gw, cs, "HEAD", "/a/x", "q=1", NULL);
	assert_int_equal(k.rc, POL_RESPOND);
	call_end(&k);
	/* another query is another entry; a POST is never looked up */
	call_start(&k, gw, cs, "GET", "/a/x", "q=2", NULL);
	assert_int_equal(k.rc, POL_CONTINUE);
	call_end(&k);
	call_start(&k, gw, cs, "POST", "/a/x", "q=1", NULL);
	assert_int_equal(k.rc, POL_CONTINUE);
	call_backend(&k, 200, "post", 4, "Content-Type", "text/plain");
	call_end(&k);
	/* Authorization: neither served nor stored */
	call_start(&k, gw, cs, "GET", "/a/x", "q=1", "Bearer t");
	assert_int_equal(k.rc, POL_CONTINUE);
	call_backend(&k, 200, "private", 7, "Content-Type", "text/plain");
	call_end(&k);
	call_start(&k, gw, cs, "GET", "/a/x", "q=1", NULL);
	assert_int_equal(k.rc, POL_RESPOND);
	assert_memory_equal(k.c.body, "hel\0lo", 6);
	call_end(&k);
	gw_free(gw);
	cache_close(cs);
}

static void test_policies_what_is_not_stored(void **state)
{
	struct cache_store *cs = open_store(state, 0);
	struct gateway *gw = load_doc(CDOC("{}", "{\"duration\":60}"));
	struct gateway *gw_any = load_doc(CDOC("{}", "{\"duration\":60,\"cache-response\":true}"));
	struct call k;

	assert_non_null(gw);
	assert_non_null(gw_any);
	call_start(&k, gw, cs, "GET", "/a/404", "", NULL);
	call_backend(&k, 404, "no", 2, "Content-Type", "text/plain");
	call_end(&k);
	call_start(&k, gw, cs, "GET", "/a/404", "", NULL);
	assert_int_equal(k.rc, POL_CONTINUE);	/* only 200 by default */
	call_backend(&k, 404, "no", 2, "Content-Type", "text/plain");
	call_end(&k);
	call_start(&k, gw_any, cs, "GET", "/a/404", "", NULL);
	assert_int_equal(k.rc, POL_CONTINUE);
	call_backend(&k, 404, "no", 2, "Content-Type", "text/plain");
	call_end(&k);
	call_start(&k, gw_any, cs, "GET", "/a/404", "", NULL);
	assert_int_equal(k.rc, POL_RESPOND);	/* cache-response: any status */
	assert_int_equal(k.c.status, 404);
	call_end(&k);
	call_start(&k, gw, cs, "GET", "/a/cookie", "", NULL);
	call_backend(&k, 200, "c", 1, "Set-Cookie", "s=1");
	call_end(&k);
	call_start(&k, gw, cs, "GET", "/a/cookie", "", NULL);
	assert_int_equal(k.rc, POL_CONTINUE);
	call_backend(&k, 200, "c", 1, "Cache-Control", "max-age=5, private");
	call_end(&k);
	call_start(&k, gw, cs, "GET", "/a/cookie", "", NULL);
	assert_int_equal(k.rc, POL_CONTINUE);
	call_backend(&k, 200, "c", 1, "cache-control", "No-Store");
	call_end(&k);
	call_start(&k, gw, cs, "GET", "/a/cookie", "", NULL);
	assert_int_equal(k.rc, POL_CONTINUE);
	call_end(&k);
	/* no store: a miss, the request goes on */
	call_start(&k, gw, NULL, "GET", "/a/cookie", "", NULL);
	assert_int_equal(k.rc, POL_CONTINUE);
	call_end(&k);
	gw_free(gw_any);
	gw_free(gw);
	cache_close(cs);
}

static void test_external_refused(void **state)
{
	struct cfg_errors errs = CFG_ERRORS_INIT;
	const char *doc = CDOC("{\"caching-type\":\"external\"}", "{\"duration\":60}");
	struct gateway *gw = gw_load_buffer(doc, strlen(doc), &errs);
	int named = 0;

	(void)state;
	assert_null(gw);
	for (size_t i = 0; i < errs.n; i++)
		named |= strstr(errs.msg[i], "caching-type") && strstr(errs.msg[i], "gateway.counters");
	assert_true(named);
	cfg_errors_release(&errs);
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
		cmocka_unit_test_setup_teardown(test_policies_hit_miss, setup, teardown),
		cmocka_unit_test_setup_teardown(test_policies_what_is_not_stored, setup, teardown),
		cmocka_unit_test(test_external_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
