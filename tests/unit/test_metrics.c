/*
 * Metrics store: recording from many processes sums exactly, a drain gives
 * deltas and a second none, the JSON document of the management protocol, the
 * Prometheus text (label escaping, cumulative buckets), a full table counted in
 * the overflow series, and processes SIGKILLed while they record.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "common/log.h"
#include "common/metrics.h"

#define T0 4000000000000LL	/* unix ms, after any file's creation */

#define TMPDIR_FILE METRICS_FILE
#include "tests/unit/tmpdir.h"

static struct metrics_store *open_store(void **state, uint32_t series)
{
	struct fixture *f = *state;
	struct metrics_store *ms = metrics_open(f->dir, series);

	assert_non_null(ms);
	return ms;
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

static void rec(struct metrics_store *ms, const char *api, const char *op, const char *sub,
		int status, int error, uint64_t in, uint64_t out, uint64_t us, int64_t backend_us)
{
	struct metrics_sample s = { api, op, sub, status, error, in, out, us, backend_us };

	metrics_record(ms, &s);
}

static int eq(const char *a, int has, const char *b)
{
	if (!b)
		return !has;
	return has && strcmp(a, b) == 0;
}

static const struct metrics_series *find(const struct metrics_snapshot *snap, const char *api,
					 const char *op, const char *sub, int status)
{
	size_t i;

	for (i = 0; i < snap->n; i++) {
		const struct metrics_series *m = &snap->series[i];

		if (!m->overflow && eq(m->api, m->has_api, api) &&
		    eq(m->operation, m->has_operation, op) &&
		    eq(m->subscription, m->has_subscription, sub) && m->status == status)
			return m;
	}
	return NULL;
}

static uint64_t bucket_sum(const uint64_t *b)
{
	uint64_t s = 0;
	unsigned i;

	for (i = 0; i < METRICS_BUCKETS; i++)
		s += b[i];
	return s;
}

static void test_record_and_drain(void **state)
{
	struct metrics_store *ms = open_store(state, 0);
	struct metrics_snapshot snap = METRICS_SNAPSHOT_INIT;
	const struct metrics_series *m;

	rec(ms, "weather", "forecast", "acme", 200, 0, 10, 1000, 3000, 2000);
	rec(ms, "weather", "forecast", "acme", 200, 0, 0, 2000, 7000, 5000);
	rec(ms, "weather", "forecast", "acme", 200, 0, 5, 0, 20000000, -1);
	rec(ms, NULL, NULL, NULL, 404, 0, 0, 50, 100, -1);
	rec(ms, "weather", "forecast", "acme", 502, 1, 0, 60, 5000, 5000);

	assert_int_equal(metrics_snapshot(ms, T0 + 60, &snap), 0);
	assert_int_equal(snap.n, 3);
	assert_int_equal(snap.to, T0 + 60);
	m = find(&snap, "weather", "forecast", "acme", 200);
	assert_non_null(m);
	assert_int_equal(m->c.count, 3);
	assert_int_equal(m->c.errors, 0);
	assert_int_equal(m->c.bytes_in, 15);
	assert_int_equal(m->c.bytes_out, 3000);
	assert_int_equal(m->c.latency[0], 1);	/* 3 ms <= 5 */
	assert_int_equal(m->c.latency[1], 1);	/* 7 ms <= 10 */
	assert_int_equal(m->c.latency[11], 1);	/* 20 s > 10 s */
	assert_int_equal(bucket_sum(m->c.latency), 3);
	assert_int_equal(m->c.latency_sum_us, 20010000);
	assert_int_equal(m->c.backend_count, 2);
	assert_int_equal(m->c.backend[0], 2);	/* 2 ms and exactly 5 ms: le is inclusive */
	m = find(&snap, NULL, NULL, NULL, 404);
	assert_non_null(m);
	assert_int_equal(m->c.count, 1);
	assert_int_equal(m->c.backend_count, 0);
	m = find(&snap, "weather", "forecast", "acme", 502);
	assert_non_null(m);
	assert_int_equal(m->c.errors, 1);
	assert_int_equal(metrics_commit(ms, &snap), 0);
	metrics_snapshot_release(&snap);

	/* nothing new: nothing to ship */
	assert_int_equal(metrics_snapshot(ms, T0 + 120, &snap), 0);
	assert_int_equal(snap.n, 0);
	assert_int_equal(snap.from, T0 + 60);
	metrics_snapshot_release(&snap);

	rec(ms, "weather", "forecast", "acme", 200, 0, 0, 1, 1000, -1);
	assert_int_equal(metrics_snapshot(ms, T0 + 180, &snap), 0);
	assert_int_equal(snap.n, 1);
	assert_int_equal(snap.from, T0 + 60);
	assert_int_equal(snap.series[0].c.count, 1);
	assert_int_equal(snap.series[0].c.bytes_out, 1);
	assert_int_equal(snap.series[0].c.latency_sum_us, 1000);
	metrics_snapshot_release(&snap);
	metrics_close(ms);
}

static void test_commit_keeps_what_came_after_the_snapshot(void **state)
{
	struct metrics_store *ms = open_store(state, 0);
	struct metrics_snapshot snap = METRICS_SNAPSHOT_INIT;

	rec(ms, "a", "b", NULL, 200, 0, 0, 0, 1, -1);
	rec(ms, "a", "b", NULL, 200, 0, 0, 0, 1, -1);
	assert_int_equal(metrics_snapshot(ms, T0, &snap), 0);
	assert_int_equal(snap.n, 1);
	assert_int_equal(snap.series[0].c.count, 2);
	/* recorded while the agent was shipping */
	rec(ms, "a", "b", NULL, 200, 0, 0, 0, 1, -1);
	rec(ms, "a", "b", NULL, 201, 0, 0, 0, 1, -1);
	metrics_commit(ms, &snap);
	metrics_snapshot_release(&snap);
	assert_int_equal(metrics_snapshot(ms, T0 + 1, &snap), 0);
	assert_int_equal(snap.n, 2);
	assert_int_equal(find(&snap, "a", "b", NULL, 200)->c.count, 1);
	assert_int_equal(find(&snap, "a", "b", NULL, 201)->c.count, 1);
	/* a snapshot not committed (the POST failed) is taken again */
	metrics_snapshot_release(&snap);
	assert_int_equal(metrics_snapshot(ms, T0 + 2, &snap), 0);
	assert_int_equal(snap.n, 2);
	assert_int_equal(snap.from, T0);
	metrics_snapshot_release(&snap);
	metrics_close(ms);
}

#define NPROC 16
#define PER_CHILD 3000
#define NTUPLES 5

static void test_many_processes_sum_exactly(void **state)
{
	struct metrics_store *ms = open_store(state, 0);
	struct metrics_snapshot snap = METRICS_SNAPSHOT_INIT;
	static const char *const apis[NTUPLES] = { "a", "b", "c", "d", "e" };
	pid_t pids[NPROC];
	int go[2], i, status;
	uint64_t total = 0;
	size_t k;

	alarm(120);
	assert_int_equal(pipe(go), 0);
	for (i = 0; i < NPROC; i++) {
		pids[i] = spawn();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			char c;
			int j;

			close(go[1]);
			if (read(go[0], &c, 1) != 0)
				_exit(1);
			for (j = 0; j < PER_CHILD; j++)
				rec(ms, apis[j % NTUPLES], "op", "sub", 200 + (j % 2), j % 7 == 0,
				    1, 2, (uint64_t)(j % 50) * 1000, j % 3 ? 1000 : -1);
			_exit(0);
		}
	}
	close(go[0]);
	close(go[1]);	/* EOF: all start together */
	for (i = 0; i < NPROC; i++) {
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	assert_int_equal(metrics_snapshot(ms, T0, &snap), 0);
	assert_int_equal(snap.n, NTUPLES * 2);
	for (k = 0; k < snap.n; k++) {
		const struct metrics_series *m = &snap.series[k];

		assert_int_equal(m->c.count, (uint64_t)NPROC * PER_CHILD / (NTUPLES * 2));
		assert_int_equal(bucket_sum(m->c.latency), m->c.count);
		assert_int_equal(m->c.bytes_in, m->c.count);
		assert_int_equal(m->c.bytes_out, 2 * m->c.count);
		assert_int_equal(bucket_sum(m->c.backend), m->c.backend_count);
		total += m->c.count;
	}
	assert_int_equal(total, (uint64_t)NPROC * PER_CHILD);
	metrics_snapshot_release(&snap);
	metrics_close(ms);
	alarm(0);
}

static void assert_contains(const char *text, const char *line)
{
	if (!strstr(text, line)) {
		print_error("missing line: %s\nin:\n%s\n", line, text);
		fail();
	}
}

static void test_prometheus_text(void **state)
{
	struct metrics_store *ms = open_store(state, 0);
	struct metrics_snapshot snap = METRICS_SNAPSHOT_INIT;
	struct metrics_gauges g = { 42, 3600, 0, 0, 0 };
	const char *api = "we\"ird\\api";
	char *text = NULL, *line, *nl;
	size_t len = 0;
	uint64_t prev = 0;
	int buckets = 0;

	rec(ms, api, "op", "A", 200, 0, 0, 0, 1000, -1);		/* 1 ms */
	rec(ms, api, "op", "B", 200, 0, 0, 0, 30000, 20000);		/* 30 ms */
	rec(ms, api, "op", "A", 500, 1, 0, 0, 20000000, -1);		/* 20 s */
	rec(ms, NULL, NULL, NULL, 404, 0, 0, 0, 100, -1);
	/* a drain does not change what Prometheus sees */
	metrics_snapshot(ms, T0, &snap);
	metrics_commit(ms, &snap);
	metrics_snapshot_release(&snap);

	assert_int_equal(metrics_prometheus(ms, &g, &text, &len), 0);
	assert_non_null(text);
	assert_int_equal(strlen(text), len);
	assert_contains(text, "# TYPE hostgate_requests_total counter\n");
	/* summed over the two subscriptions; quote and backslash escaped */
	assert_contains(text, "\nhostgate_requests_total{api=\"we\\\"ird\\\\api\",operation=\"op\",status=\"200\"} 2\n");
	assert_contains(text, "\nhostgate_requests_total{api=\"we\\\"ird\\\\api\",operation=\"op\",status=\"500\"} 1\n");
	assert_contains(text, "\nhostgate_requests_total{api=\"\",operation=\"\",status=\"404\"} 1\n");
	assert_contains(text, "# TYPE hostgate_request_duration_seconds histogram\n");
	/* cumulative buckets over every status */
	assert_contains(text, "\nhostgate_request_duration_seconds_bucket{api=\"we\\\"ird\\\\api\",operation=\"op\",le=\"0.005\"} 1\n");
	assert_contains(text, "\nhostgate_request_duration_seconds_bucket{api=\"we\\\"ird\\\\api\",operation=\"op\",le=\"0.025\"} 1\n");
	assert_contains(text, "\nhostgate_request_duration_seconds_bucket{api=\"we\\\"ird\\\\api\",operation=\"op\",le=\"0.05\"} 2\n");
	assert_contains(text, "\nhostgate_request_duration_seconds_bucket{api=\"we\\\"ird\\\\api\",operation=\"op\",le=\"10\"} 2\n");
	assert_contains(text, "\nhostgate_request_duration_seconds_bucket{api=\"we\\\"ird\\\\api\",operation=\"op\",le=\"+Inf\"} 3\n");
	assert_contains(text, "\nhostgate_request_duration_seconds_sum{api=\"we\\\"ird\\\\api\",operation=\"op\"} 20.031000\n");
	assert_contains(text, "\nhostgate_request_duration_seconds_count{api=\"we\\\"ird\\\\api\",operation=\"op\"} 3\n");
	assert_contains(text, "\nhostgate_backend_duration_seconds_bucket{api=\"we\\\"ird\\\\api\",operation=\"op\",le=\"0.01\"} 0\n");
	assert_contains(text, "\nhostgate_backend_duration_seconds_bucket{api=\"we\\\"ird\\\\api\",operation=\"op\",le=\"0.025\"} 1\n");
	assert_contains(text, "\nhostgate_backend_duration_seconds_count{api=\"we\\\"ird\\\\api\",operation=\"op\"} 1\n");
	/* no backend histogram for what had no backend call */
	assert_null(strstr(text, "hostgate_backend_duration_seconds_count{api=\"\""));
	assert_contains(text, "\nhostgate_config_generation 42\n");
	assert_contains(text, "\nhostgate_config_age_seconds 3600\n");
	assert_null(strstr(text, "hostgate_counter_store"));	/* no Redis store */
	assert_int_equal(text[len - 1], '\n');
	{
		struct metrics_gauges g2 = { 42, 3600, 1, 0, 17 };
		char *t2 = NULL;
		size_t l2 = 0;

		assert_int_equal(metrics_prometheus(ms, &g2, &t2, &l2), 0);
		assert_contains(t2, "# TYPE hostgate_counter_store_up gauge\nhostgate_counter_store_up 0\n");
		assert_contains(t2, "# TYPE hostgate_counter_store_errors_total counter\n"
				    "hostgate_counter_store_errors_total 17\n");
		free(t2);
	}

	/* every line: a comment or "name{labels} value"; buckets never decrease */
	for (line = text; *line; line = nl + 1) {
		const char *sp;

		nl = strchr(line, '\n');
		assert_non_null(nl);
		*nl = '\0';
		if (line[0] == '#')
			continue;
		sp = strrchr(line, ' ');
		assert_non_null(sp);
		if (strstr(line, "hostgate_request_duration_seconds_bucket{api=\"we")) {
			uint64_t v = strtoull(sp + 1, NULL, 10);

			assert_true(v >= prev);
			prev = v;
			buckets++;
		}
	}
	assert_int_equal(buckets, METRICS_BUCKETS);
	free(text);

	g.config_generation = -1;
	g.config_age_s = -1;
	assert_int_equal(metrics_prometheus(ms, &g, &text, &len), 0);
	assert_null(strstr(text, "hostgate_config_generation"));
	free(text);
	metrics_close(ms);
}

static void test_json_document(void **state)
{
	struct metrics_store *ms = open_store(state, 0);
	struct metrics_snapshot snap = METRICS_SNAPSHOT_INIT;
	struct json_object *doc, *v, *series, *s, *le, *counts;
	char *json = NULL;
	size_t len = 0, i;
	int saw_null = 0, saw_weather = 0;

	rec(ms, "weather", "forecast", "ac\"me\x01", 200, 0, 0, 20480, 7000, -1);
	rec(ms, NULL, NULL, NULL, 404, 0, 0, 0, 100, -1);
	rec(ms, "bad\xff", "op", NULL, 502, 1, 0, 0, 100, -1);
	assert_int_equal(metrics_snapshot(ms, T0 + 60123, &snap), 0);
	snap.from = T0;
	assert_int_equal(metrics_snapshot_json(&snap, "0123abcd", 7, &json, &len), 0);
	assert_int_equal(strlen(json), len);
	doc = json_tokener_parse(json);
	assert_non_null(doc);
	assert_true(json_object_object_get_ex(doc, "instance", &v));
	assert_string_equal(json_object_get_string(v), "0123abcd");
	assert_true(json_object_object_get_ex(doc, "from", &v));
	assert_string_equal(json_object_get_string(v), "2096-10-02T07:06:40.000Z");
	assert_true(json_object_object_get_ex(doc, "to", &v));
	assert_string_equal(json_object_get_string(v), "2096-10-02T07:07:40.123Z");
	assert_true(json_object_object_get_ex(doc, "dropped", &v));
	assert_int_equal(json_object_get_int64(v), 7);
	assert_true(json_object_object_get_ex(doc, "series", &series));
	assert_int_equal(json_object_array_length(series), 3);
	for (i = 0; i < 3; i++) {
		s = json_object_array_get_idx(series, i);
		assert_true(json_object_object_get_ex(s, "latency_ms", &v));
		assert_true(json_object_object_get_ex(v, "le", &le));
		assert_true(json_object_object_get_ex(v, "counts", &counts));
		assert_int_equal(json_object_array_length(le), 11);
		assert_int_equal(json_object_get_int(json_object_array_get_idx(le, 0)), 5);
		assert_int_equal(json_object_get_int(json_object_array_get_idx(le, 10)), 10000);
		assert_int_equal(json_object_array_length(counts), 12);
		assert_true(json_object_object_get_ex(s, "api", &v));
		if (!v) {
			saw_null = 1;
			assert_true(json_object_object_get_ex(s, "subscription", &v));
			assert_null(v);
			assert_true(json_object_object_get_ex(s, "status", &v));
			assert_int_equal(json_object_get_int(v), 404);
		} else if (strcmp(json_object_get_string(v), "weather") == 0) {
			saw_weather = 1;
			assert_true(json_object_object_get_ex(s, "subscription", &v));
			assert_string_equal(json_object_get_string(v), "ac\"me\x01");
			assert_true(json_object_object_get_ex(s, "bytes_out", &v));
			assert_int_equal(json_object_get_int64(v), 20480);
			assert_true(json_object_object_get_ex(s, "count", &v));
			assert_int_equal(json_object_get_int64(v), 1);
			assert_int_equal(json_object_get_int(json_object_array_get_idx(counts, 1)), 1);
		} else {
			/* not UTF-8: replaced, the document stays valid */
			assert_string_equal(json_object_get_string(v), "bad\xef\xbf\xbd");
			assert_true(json_object_object_get_ex(s, "errors", &v));
			assert_int_equal(json_object_get_int64(v), 1);
		}
	}
	assert_true(saw_null && saw_weather);
	json_object_put(doc);
	free(json);
	metrics_snapshot_release(&snap);

	/* an empty window is still a document */
	assert_int_equal(metrics_snapshot_json(&snap, "x", 0, &json, &len), 0);
	doc = json_tokener_parse(json);
	assert_non_null(doc);
	assert_true(json_object_object_get_ex(doc, "series", &series));
	assert_int_equal(json_object_array_length(series), 0);
	json_object_put(doc);
	free(json);
	metrics_close(ms);
}

static void test_full_table_overflows(void **state)
{
	struct metrics_store *ms = open_store(state, METRICS_MIN_SERIES);
	struct metrics_snapshot snap = METRICS_SNAPSHOT_INIT;
	uint64_t total = 0, overflow = 0;
	char api[16];
	size_t k;
	int i;

	for (i = 0; i < 50; i++) {
		snprintf(api, sizeof(api), "api%d", i);
		rec(ms, api, "op", NULL, 200, 0, 0, 0, 1000, -1);
	}
	assert_int_equal(metrics_snapshot(ms, T0, &snap), 0);
	for (k = 0; k < snap.n; k++) {
		total += snap.series[k].c.count;
		if (snap.series[k].overflow) {
			overflow = snap.series[k].c.count;
			assert_false(snap.series[k].has_api);
			assert_int_equal(snap.series[k].status, 0);
		}
	}
	assert_int_equal(total, 50);
	assert_int_equal(overflow, 50 - METRICS_MIN_SERIES);
	assert_int_equal(snap.n, METRICS_MIN_SERIES + 1);
	metrics_snapshot_release(&snap);
	metrics_close(ms);
}

static void test_labels_cut(void **state)
{
	struct metrics_store *ms = open_store(state, 0);
	struct metrics_snapshot snap = METRICS_SNAPSHOT_INIT;
	char longa[200], longb[200], utf[200];

	memset(longa, 'a', sizeof(longa) - 1);
	longa[sizeof(longa) - 1] = '\0';
	memcpy(longb, longa, sizeof(longb));
	longb[150] = 'b';	/* differs only past the cut */
	/* 62 ASCII bytes then a 3-byte character across the cut */
	memset(utf, 'u', 62);
	memcpy(utf + 62, "\xe2\x82\xac", 4);
	rec(ms, longa, "op", NULL, 200, 0, 0, 0, 1, -1);
	rec(ms, longb, "op", NULL, 200, 0, 0, 0, 1, -1);
	rec(ms, utf, "op", NULL, 200, 0, 0, 0, 1, -1);
	assert_int_equal(metrics_snapshot(ms, T0, &snap), 0);
	assert_int_equal(snap.n, 2);
	assert_int_equal(strlen(snap.series[0].api) + strlen(snap.series[1].api), 63 + 62);
	assert_non_null(find(&snap, "uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu",
			     "op", NULL, 200));
	metrics_snapshot_release(&snap);
	metrics_close(ms);
}

static void test_survives_reopen(void **state)
{
	struct fixture *f = *state;
	struct metrics_store *ms = open_store(state, 16);
	struct metrics_snapshot snap = METRICS_SNAPSHOT_INIT;
	struct stat sb;
	char *text;
	size_t len;

	rec(ms, "a", "b", NULL, 200, 0, 0, 0, 1, -1);
	rec(ms, "a", "b", NULL, 200, 0, 0, 0, 1, -1);
	metrics_snapshot(ms, T0, &snap);
	metrics_commit(ms, &snap);
	metrics_snapshot_release(&snap);
	rec(ms, "a", "b", NULL, 200, 0, 0, 0, 1, -1);
	metrics_close(ms);

	ms = open_store(state, 0);
	assert_int_equal(metrics_snapshot(ms, T0 + 10, &snap), 0);
	assert_int_equal(snap.n, 1);
	assert_int_equal(snap.series[0].c.count, 1);
	assert_int_equal(snap.from, T0);
	metrics_snapshot_release(&snap);
	assert_int_equal(metrics_prometheus(ms, NULL, &text, &len), 0);
	assert_contains(text, "hostgate_requests_total{api=\"a\",operation=\"b\",status=\"200\"} 3\n");
	free(text);
	metrics_close(ms);
	assert_int_equal(stat(f->path, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0660);
}

#define KILL_PROCS 6
#define KILLS 150

/* Records new tuples (claims) and old ones until killed; one pipe byte after
 * each record. */
static void chaos_child(struct metrics_store *ms, int out, unsigned n)
{
	char api[16];

	for (;;) {
		n = n * 1103515245u + 12345u;
		snprintf(api, sizeof(api), "k%u", (n >> 8) % 400);
		rec(ms, api, "op", NULL, 200, 0, 0, 0, 1, -1);
		if (write(out, "r", 1) != 1)
			_exit(1);
	}
}

static void test_sigkill_while_recording(void **state)
{
	struct metrics_store *ms = open_store(state, 1024);
	struct metrics_snapshot snap = METRICS_SNAPSHOT_INIT;
	pid_t pids[KILL_PROCS];
	uint64_t reported = 0, counted = 0;
	int p[2], i, k, status;
	char buf[256], api[16];
	ssize_t n;
	size_t s;

	alarm(120);
	srand((unsigned)getpid());
	assert_int_equal(pipe(p), 0);
	for (i = 0; i < KILL_PROCS; i++) {
		pids[i] = spawn();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			close(p[0]);
			chaos_child(ms, p[1], (unsigned)i + 1);
		}
	}
	for (k = 0; k < KILLS; k++) {
		int want = 1 + rand() % 100;

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
			chaos_child(ms, p[1], (unsigned)rand());
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

	/* no wedge: every tuple can still be recorded */
	for (i = 0; i < 400; i++) {
		snprintf(api, sizeof(api), "k%d", i);
		rec(ms, api, "op", NULL, 200, 0, 0, 0, 1, -1);
	}
	assert_int_equal(metrics_snapshot(ms, T0, &snap), 0);
	for (s = 0; s < snap.n; s++)
		counted += snap.series[s].c.count;
	metrics_snapshot_release(&snap);
	counted -= 400;
	assert_true(counted >= reported);
	assert_true(counted <= reported + KILLS + KILL_PROCS);
	metrics_close(ms);
	alarm(0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_record_and_drain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_keeps_what_came_after_the_snapshot,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_processes_sum_exactly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prometheus_text, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json_document, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_table_overflows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_labels_cut, setup, teardown),
		cmocka_unit_test_setup_teardown(test_survives_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sigkill_while_recording, setup, teardown),
	};

	log_init("test_metrics", LOG_TO_STDERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
