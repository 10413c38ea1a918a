/*
 * The Redis counter back end against a real redis-server (Debian's, started
 * here on a free loopback port with its own directory, no persistence; the
 * tests are skipped when there is no redis-server): the window rule through
 * the counter store (take, take_n, peek, add, Retry-After from Redis's clock),
 * keys per policy and hashed when long, the script loaded again after
 * SCRIPT FLUSH (what a Redis restart does), a dead Redis answering within
 * timeout_ms and each on_failure, and the breaker that keeps a worker from
 * trying on every call.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "common/counter.h"
#include "common/log.h"
#include "common/redisconn.h"
#include "common/redisstore.h"

#define TMPDIR_FILE COUNTER_FILE
#include "tests/unit/tmpdir.h"

static pid_t redis_pid;
static int redis_port;
static char redis_dir[64];

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int s = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (s >= 0 && bind(s, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(s, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (s >= 0)
		close(s);
	return port;
}

static redisContext *admin(void)
{
	struct timeval tv = { 2, 0 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", redis_port, tv);

	if (c && c->err) {
		redisFree(c);
		return NULL;
	}
	return c;
}

static int start_redis(void)
{
	char port[16];

	if (access("/usr/bin/redis-server", X_OK) != 0)
		return -1;
	redis_port = free_port();
	snprintf(port, sizeof(port), "%d", redis_port);
	snprintf(redis_dir, sizeof(redis_dir), "/tmp/hg-redis-unit-XXXXXX");
	if (!mkdtemp(redis_dir))
		return -1;
	redis_pid = fork();
	if (redis_pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int null = open("/dev/null", O_WRONLY);

		if (null >= 0)
			dup2(null, 1);
		execl("/usr/bin/redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1",
		      "--dir", redis_dir, "--save", "", "--appendonly", "no", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		redisContext *c = admin();

		if (c) {
			redisFree(c);
			return 0;
		}
		usleep(20000);
	}
	return -1;
}

static void stop_redis(void)
{
	if (redis_pid > 0) {
		kill(redis_pid, SIGKILL);
		waitpid(redis_pid, NULL, 0);
		redis_pid = 0;
		rmdir(redis_dir);
	}
}

static void admin_cmd(const char *cmd)
{
	redisContext *c = admin();
	redisReply *r;

	assert_non_null(c);
	r = redisCommand(c, cmd);
	assert_non_null(r);
	freeReplyObject(r);
	redisFree(c);
}

struct rfix {
	struct fixture tmp;	/* must stay first: tmpdir.h's setup and teardown */
	struct counter_store *cs;
	struct redis_store *rs;
};

static int rsetup(void **state)
{
	struct rfix *f;

	if (redis_pid <= 0)
		return 0;
	if (setup(state) != 0)
		return -1;
	f = realloc(*state, sizeof(*f));
	if (!f)
		return -1;
	*state = f;
	f->rs = NULL;
	f->cs = counter_open(f->tmp.dir, 0);
	return f->cs ? 0 : -1;
}

static int rteardown(void **state)
{
	struct rfix *f = *state;

	if (redis_pid <= 0 || !f)
		return 0;
	counter_set_remote(f->cs, NULL);
	redis_store_free(f->rs);
	counter_close(f->cs);
	return teardown(state);
}

static void attach(struct rfix *f, int port, int timeout_ms, enum counter_fallback fb)
{
	struct redis_target t = { "127.0.0.1", port, NULL, 0, NULL, timeout_ms };
	struct counter_remote r;

	counter_set_remote(f->cs, NULL);
	redis_store_free(f->rs);
	f->rs = redis_store_new(&t, "ut:");
	assert_non_null(f->rs);
	r = (struct counter_remote){ redis_store_op, f->rs, fb };
	counter_set_remote(f->cs, &r);
}

#define NEED_REDIS() do { if (redis_pid <= 0) { skip(); return; } } while (0)

static void unique(char *key, size_t cap, const char *what)
{
	static unsigned n;
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(key, cap, "rl:api:t:inbound#0:k:%s-%ld-%u", what, (long)ts.tv_nsec, n++);
}

static void test_window(void **state)
{
	struct rfix *f = *state;
	uint32_t retry, left;
	char k[128];

	NEED_REDIS();
	attach(f, redis_port, 500, COUNTER_FALLBACK_DENY);
	unique(k, sizeof(k), "w");
	for (uint32_t i = 0; i < 3; i++) {
		assert_int_equal(counter_take(f->cs, k, 3, 60, 0, &retry, &left), COUNTER_ALLOW);
		assert_int_equal(left, 2 - i);
	}
	assert_int_equal(counter_take(f->cs, k, 3, 60, 0, &retry, &left), COUNTER_DENY);
	assert_true(retry >= 59 && retry <= 60);
	assert_int_equal(left, 0);
	/* nothing was counted locally: the shared memory has no window */
	counter_set_remote(f->cs, NULL);
	assert_int_equal(counter_take(f->cs, k, 3, 60, time(NULL), &retry, &left), COUNTER_ALLOW);
	attach(f, redis_port, 500, COUNTER_FALLBACK_DENY);
	/* a refused call counts nothing; n larger than the limit: DENY, period */
	unique(k, sizeof(k), "n");
	assert_int_equal(counter_take_n(f->cs, k, 5, 4, 30, 0, &retry, &left), COUNTER_DENY);
	assert_int_equal(retry, 30);
	assert_int_equal(counter_take_n(f->cs, k, 3, 4, 30, 0, &retry, &left), COUNTER_ALLOW);
	assert_int_equal(left, 1);
	assert_int_equal(counter_take_n(f->cs, k, 2, 4, 30, 0, &retry, &left), COUNTER_DENY);
	assert_int_equal(counter_take_n(f->cs, k, 1, 4, 30, 0, &retry, &left), COUNTER_ALLOW);
	assert_int_equal(left, 0);
}

static void test_window_ends(void **state)
{
	struct rfix *f = *state;
	uint32_t retry, left;
	char k[128];

	NEED_REDIS();
	attach(f, redis_port, 500, COUNTER_FALLBACK_DENY);
	unique(k, sizeof(k), "end");
	assert_int_equal(counter_take(f->cs, k, 1, 1, 0, &retry, &left), COUNTER_ALLOW);
	assert_int_equal(counter_take(f->cs, k, 1, 1, 0, &retry, &left), COUNTER_DENY);
	assert_int_equal(retry, 1);
	usleep(1100000);
	/* the next window starts with the first call after the end */
	assert_int_equal(counter_take(f->cs, k, 1, 1, 0, &retry, &left), COUNTER_ALLOW);
}

static void test_peek_and_add(void **state)
{
	struct rfix *f = *state;
	uint32_t retry, left;
	char k[128];

	NEED_REDIS();
	attach(f, redis_port, 500, COUNTER_FALLBACK_DENY);
	unique(k, sizeof(k), "bw");
	assert_int_equal(counter_peek(f->cs, k, 10, 0, &retry, &left), COUNTER_ALLOW);
	assert_int_equal(left, 10);
	assert_int_equal(counter_add(f->cs, k, 7, 100, 0), COUNTER_ALLOW);
	assert_int_equal(counter_peek(f->cs, k, 10, 0, &retry, &left), COUNTER_ALLOW);
	assert_int_equal(left, 3);
	assert_int_equal(counter_add(f->cs, k, 7, 100, 0), COUNTER_ALLOW);	/* whatever the limit */
	assert_int_equal(counter_peek(f->cs, k, 10, 0, &retry, &left), COUNTER_DENY);
	assert_true(retry >= 99 && retry <= 100);
}

static void test_keys(void **state)
{
	struct rfix *f = *state;
	char long_key[3000], out[512];
	redisContext *c;
	redisReply *r;
	uint32_t retry, left;

	NEED_REDIS();
	attach(f, redis_port, 500, COUNTER_FALLBACK_DENY);
	assert_int_equal(redis_store_key(f->rs, "rl:a", out, sizeof(out)), 0);
	assert_string_equal(out, "ut:rl:a");
	memset(long_key, 'x', sizeof(long_key) - 1);
	long_key[sizeof(long_key) - 1] = '\0';
	assert_int_equal(redis_store_key(f->rs, long_key, out, sizeof(out)), 0);
	assert_int_equal(strlen(out), 3 + 2 + 64);
	assert_memory_equal(out, "ut:h:", 5);
	long_key[0] = 'y';
	assert_int_equal(counter_take(f->cs, long_key, 1, 60, 0, &retry, &left), COUNTER_ALLOW);
	assert_int_equal(counter_take(f->cs, long_key, 1, 60, 0, &retry, &left), COUNTER_DENY);
	assert_int_equal(redis_store_key(f->rs, long_key, out, sizeof(out)), 0);
	c = admin();
	assert_non_null(c);
	r = redisCommand(c, "GET %s", out);
	assert_int_equal(r->type, REDIS_REPLY_STRING);
	assert_string_equal(r->str, "1");
	freeReplyObject(r);
	redisFree(c);
}

static void test_script_reloaded(void **state)
{
	struct rfix *f = *state;
	uint32_t retry, left;
	char k[128];

	NEED_REDIS();
	attach(f, redis_port, 500, COUNTER_FALLBACK_DENY);
	unique(k, sizeof(k), "flush");
	assert_int_equal(counter_take(f->cs, k, 5, 60, 0, &retry, &left), COUNTER_ALLOW);
	admin_cmd("SCRIPT FLUSH");
	assert_int_equal(counter_take(f->cs, k, 5, 60, 0, &retry, &left), COUNTER_ALLOW);
	assert_int_equal(left, 3);
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_unavailable(void **state)
{
	struct rfix *f = *state;
	struct counter_stats st0, st1;
	struct redis_conn_state cst;
	uint32_t retry, left;
	int dead = free_port();
	char k[128];

	NEED_REDIS();
	unique(k, sizeof(k), "down");
	counter_get_stats(f->cs, &st0);
	attach(f, dead, 200, COUNTER_FALLBACK_DENY);
	assert_int_equal(counter_take(f->cs, k, 2, 60, time(NULL), &retry, &left),
			 COUNTER_UNAVAILABLE);
	redis_conn_state(redis_store_conn(f->rs), &cst);
	assert_int_equal(cst.up, 0);
	assert_int_equal(cst.failures, 1);
	assert_non_null(strstr(cst.error, "connect"));
	/* the breaker: no second attempt within a second */
	assert_int_equal(counter_take(f->cs, k, 2, 60, time(NULL), &retry, &left),
			 COUNTER_UNAVAILABLE);
	redis_conn_state(redis_store_conn(f->rs), &cst);
	assert_int_equal(cst.failures, 1);
	counter_get_stats(f->cs, &st1);
	assert_int_equal(st1.remote_fallbacks - st0.remote_fallbacks, 2);

	attach(f, dead, 200, COUNTER_FALLBACK_ALLOW);
	for (int i = 0; i < 4; i++)
		assert_int_equal(counter_take(f->cs, k, 2, 60, time(NULL), &retry, &left),
				 COUNTER_FULL);
	assert_int_equal(left, 2);

	attach(f, dead, 200, COUNTER_FALLBACK_LOCAL);
	assert_int_equal(counter_take(f->cs, k, 2, 60, time(NULL), &retry, &left), COUNTER_ALLOW);
	assert_int_equal(counter_take(f->cs, k, 2, 60, time(NULL), &retry, &left), COUNTER_ALLOW);
	assert_int_equal(counter_take(f->cs, k, 2, 60, time(NULL), &retry, &left), COUNTER_DENY);
}

/* A listener that accepts and never answers: every operation ends within
 * timeout_ms. */
static void test_silent_redis(void **state)
{
	struct rfix *f = *state;
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int s = socket(AF_INET, SOCK_STREAM, 0);
	uint32_t retry, left;
	int64_t t0, dt;
	char k[128];

	NEED_REDIS();
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s, 8), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
	attach(f, ntohs(a.sin_port), 150, COUNTER_FALLBACK_DENY);
	unique(k, sizeof(k), "silent");
	t0 = mono_ms();
	assert_int_equal(counter_take(f->cs, k, 2, 60, 0, &retry, &left), COUNTER_UNAVAILABLE);
	dt = mono_ms() - t0;
	assert_true(dt >= 140 && dt < 400);
	t0 = mono_ms();
	assert_int_equal(counter_take(f->cs, k, 2, 60, 0, &retry, &left), COUNTER_UNAVAILABLE);
	assert_true(mono_ms() - t0 < 20);	/* the breaker */
	close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_window, rsetup, rteardown),
		cmocka_unit_test_setup_teardown(test_window_ends, rsetup, rteardown),
		cmocka_unit_test_setup_teardown(test_peek_and_add, rsetup, rteardown),
		cmocka_unit_test_setup_teardown(test_keys, rsetup, rteardown),
		cmocka_unit_test_setup_teardown(test_script_reloaded, rsetup, rteardown),
		cmocka_unit_test_setup_teardown(test_unavailable, rsetup, rteardown),
		cmocka_unit_test_setup_teardown(test_silent_redis, rsetup, rteardown),
	};
	int rc;

	log_set_level(LOG_LEVEL_ERR);
	if (start_redis() != 0)
		print_message("no redis-server: the Redis tests are skipped\n");
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	stop_redis();
	return rc;
}
