/*
 * metrics — what the app's processes record about each request, shared by
 * every process of the host in the file "{state_dir}/metrics" mapped MAP_SHARED
 * (common/shmfile.h; docs/state.md has the layout). The app records; the agent
 * drains deltas and ships them (management-protocol.md, "Metrics"); the
 * metrics path serves the cumulative totals as Prometheus text
 * (config-v1.md, "The health path and metrics").
 *
 *   app, at start and per request:
 *     struct metrics_store *ms = metrics_open(state_dir, 0);
 *     struct metrics_sample s = { api, op, sub, status, error, in, out, us, backend_us };
 *     metrics_record(ms, &s);                        never fails, never blocks
 *     metrics_prometheus(ms, &gauges, &text, &len);  the metrics path; free(text)
 *
 *   agent, every flush (one drainer at a time: the agent's sync.lock):
 *     struct metrics_snapshot snap;
 *     metrics_snapshot(ms, time(NULL), &snap);       deltas since the last commit
 *     metrics_snapshot_json(&snap, instance, dropped, &json, &len);
 *     ... keep json in the outbox ...
 *     metrics_commit(ms, &snap);                     those deltas are now taken
 *     metrics_snapshot_release(&snap);
 *
 * A series is one (api, operation, subscription, status) tuple: count, errors,
 * bytes in and out, a latency histogram with the bounds METRICS_BOUNDS_MS (one
 * more bucket for everything above the last; per-bucket counts) and the sum of
 * latencies, and the same histogram for the backend. Each is a fixed slot,
 * found by a SipHash of the tuple (seeded per file); its labels are stored in
 * the slot, each cut to METRICS_LABEL_MAX - 1 bytes (at a UTF-8 character
 * boundary) before hashing, so two labels that differ only past the cut share
 * a series. Recording is relaxed atomic adds in the mapping: no lock, no system
 * call, no file write. A new tuple claims an empty slot with a compare-and-swap
 * naming its pid; a process killed in the middle of a claim leaves it to the
 * next process that looks, which frees it once that pid is dead. When the
 * METRICS_PROBE slots a tuple may use are all taken, the request is counted in
 * the overflow series (api, operation and subscription null, status 0) and the
 * series table never grows: memory is bounded. Slots are never reused: a file
 * holds at most its number of series for its lifetime (delete the file, with
 * the app stopped, to start afresh; an upgrade that changes the layout does it).
 *
 * Deltas: each slot also holds what has been shipped. metrics_snapshot reads
 * cumulative minus shipped; metrics_commit adds those same deltas to shipped,
 * so what is recorded between the two stays for the next drain: nothing
 * recorded is lost, nothing is shipped twice (by one drainer at a time).
 * "from" is the time of the last commit (the file's creation before the
 * first), "to" the now given to metrics_snapshot.
 *
 * Ownership: the store owns its mapping; a sample's strings are only read
 * during the call. Like counter.h, claims are named by pid: one process, one
 * thread recording at a time (a store opened before fork() serves the children). A snapshot owns its array (metrics_snapshot_release). Text
 * and JSON are new buffers the caller frees.
 *
 * Errors: metrics_open returns NULL (logged); the others return 0 or -1 (out of
 * memory, or the text would pass METRICS_TEXT_MAX).
 */
#ifndef HOSTGATE_METRICS_H
#define HOSTGATE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define METRICS_FILE "metrics"
#define METRICS_DEFAULT_SERIES 4096u
#define METRICS_MIN_SERIES 4u
#define METRICS_MAX_SERIES (1u << 20)
#define METRICS_PROBE 64u
#define METRICS_LABEL_MAX 64u		/* bytes, with the NUL */
#define METRICS_BUCKETS 12u		/* the bounds, and one above them */
#define METRICS_TEXT_MAX (16u * 1024 * 1024)
#define METRICS_BOUNDS_MS { 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000 }

struct metrics_store;

/* One request, as the app saw it. */
struct metrics_sample {
	const char *api;		/* NULL: none (404, ...) */
	const char *operation;		/* NULL: none */
	const char *subscription;	/* NULL: keyless API */
	int status;			/* HTTP status sent */
	int error;			/* the gateway's own 502/503/504, or aborted */
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint64_t duration_us;		/* the whole request */
	int64_t backend_us;		/* the backend's part; < 0: no backend call */
};

struct metrics_counts {
	uint64_t count;
	uint64_t errors;
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint64_t latency[METRICS_BUCKETS];	/* per bucket, not cumulative */
	uint64_t latency_sum_us;
	uint64_t backend[METRICS_BUCKETS];
	uint64_t backend_sum_us;
	uint64_t backend_count;
};

struct metrics_series {
	char api[METRICS_LABEL_MAX];
	char operation[METRICS_LABEL_MAX];
	char subscription[METRICS_LABEL_MAX];
	unsigned char has_api, has_operation, has_subscription;	/* 0: null */
	unsigned char overflow;		/* the overflow series */
	int status;
	struct metrics_counts c;
	uint32_t slot;			/* where it came from (for metrics_commit) */
};

struct metrics_snapshot {
	int64_t from, to;		/* unix milliseconds; to > from always */
	size_t n;
	struct metrics_series *series;	/* owned; only series with a delta */
};
#define METRICS_SNAPSHOT_INIT { 0, 0, 0, NULL }

/* What the metrics path shows besides the series; < 0: unknown, left out
 * (counter_store 0: the counter store's lines left out). */
struct metrics_gauges {
	int64_t config_generation;
	int64_t config_age_s;
	int counter_store;		/* 1: gateway.counters names Redis: show the two below */
	int counter_store_up;		/* 1: Redis answers this process, 0: not */
	uint64_t counter_store_errors;	/* counted calls Redis could not answer, host-wide */
};

/* Opens "{state_dir}/metrics", creating it with series slots (0: the default;
 * clamped to [METRICS_MIN_SERIES, METRICS_MAX_SERIES]) when absent; an existing
 * file keeps its size. Returns the store or NULL (logged). */
struct metrics_store *metrics_open(const char *state_dir, uint32_t series);
void metrics_close(struct metrics_store *ms);

/* Counts one request. Never fails: a full table counts it in the overflow
 * series. */
void metrics_record(struct metrics_store *ms, const struct metrics_sample *s);

/* Fills snap with the deltas since the last commit (series without any
 * left out). Returns 0 or -1 (out of memory; snap empty). */
int metrics_snapshot(struct metrics_store *ms, int64_t now, struct metrics_snapshot *snap);
/* Marks snap's deltas as shipped and its "to" as the next "from". Call once
 * per snapshot, with no other drain in between. Returns 0. */
int metrics_commit(struct metrics_store *ms, const struct metrics_snapshot *snap);
/* Frees the array; snap is empty afterwards. */
void metrics_snapshot_release(struct metrics_snapshot *snap);

/* The management protocol's document for snap: {"instance", "from", "to",
 * "dropped", "series": [...]}. Returns 0 with a new NUL-terminated *out
 * (*len bytes), or -1. */
int metrics_snapshot_json(const struct metrics_snapshot *snap, const char *instance,
			  uint64_t dropped, char **out, size_t *len);

/* Prometheus text exposition (format 0.0.4) of the cumulative totals:
 * hostgate_requests_total{api,operation,status}, the histograms
 * hostgate_request_duration_seconds and hostgate_backend_duration_seconds
 * {api,operation} (cumulative le buckets, _sum, _count), and the gauges
 * hostgate_config_generation, hostgate_config_age_seconds,
 * hostgate_counter_store_up and hostgate_counter_store_errors_total when known. A null
 * label is "". Returns 0 with a new NUL-terminated *out, or -1. */
int metrics_prometheus(struct metrics_store *ms, const struct metrics_gauges *g, char **out,
		       size_t *len);

#endif
