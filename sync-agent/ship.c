#include "sync-agent/ship.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/atomicfile.h"
#include "common/fileread.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/shmfile.h"

/*
 * One flush: drain the store's deltas into a document, put it in the outbox
 * (metrics-outbox/ beside config_path: the agent's own directory, agent.h),
 * then POST every document of the outbox, oldest
 * first, removing each one the endpoint acknowledges with 2xx; stop at the
 * first failure (the rest waits for the next flush).
 *
 * Outbox files are named "{seq}-{series}-{dropped}.json" (seq: 16 digits, so
 * names sort by age). The outbox holds at most OUTBOX_MAX bytes: to make room,
 * the oldest documents are removed and their series-windows (series, plus the
 * drops they were reporting) added to {outbox}/dropped, which the next document
 * reports and then resets.
 *
 * Links: what the agent reads from the outbox it POSTs to the endpoint, and
 * what it removes there it deletes, so nothing in it is followed: the
 * directory must be a real directory of the agent's own user, and an entry
 * that is a symbolic link (or anything but a regular file) is skipped
 * (file_read opens with O_NOFOLLOW; unlink removes a link, never its target).
 *
 * Order: the document is in the outbox (fsynced) before the store's deltas are
 * committed, so a crash in between ships those counts twice at worst (the next
 * window starts at the same "from"; the endpoint de-duplicates on instance and
 * from) and never loses them.
 */

#define OUTBOX_DIR "metrics-outbox"
#define OUTBOX_MAX (16u * 1024 * 1024)
#define OUTBOX_FILES_MAX 100000u
#define NAME_MAX_LEN 96

struct outbox_file {
	char name[NAME_MAX_LEN];
	uint64_t seq, series, dropped;
	uint64_t size;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int outbox_path(char *buf, size_t len, const struct agent *a, const char *leaf)
{
	int n;

	char dir[4096];

	if (agent_file(a, OUTBOX_DIR, dir, sizeof(dir)) < 0)
		return -1;
	if (leaf)
		n = snprintf(buf, len, "%s/%s", dir, leaf);
	else
		n = snprintf(buf, len, "%s", dir);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

static int cmp_seq(const void *pa, const void *pb)
{
	const struct outbox_file *a = pa, *b = pb;

	return (a->seq > b->seq) - (a->seq < b->seq);
}

/* Lists the outbox's documents, oldest first. Returns 0 or -1 (logged). */
static int outbox_list(const struct agent *a, struct outbox_file **out, size_t *n)
{
	char dir[4096], path[4096 + NAME_MAX_LEN];
	struct outbox_file *arr = NULL, *f;
	size_t cnt = 0, cap = 0;
	struct dirent *de;
	struct stat st;
	DIR *d;
	int rc = -1;

	*out = NULL;
	*n = 0;
	if (outbox_path(dir, sizeof(dir), a, NULL) < 0)
		return -1;
	d = opendir(dir);
	if (!d) {
		log_warn("cannot read '%s': %s", dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		uint64_t seq, series, dropped;
		int used = 0;

		if (strlen(de->d_name) >= NAME_MAX_LEN ||
		    sscanf(de->d_name, "%16" SCNu64 "-%" SCNu64 "-%" SCNu64 ".json%n", &seq,
			   &series, &dropped, &used) != 3 ||
		    used == 0 || de->d_name[used] != '\0')
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= (int)sizeof(path) ||
		    lstat(path, &st) < 0 || !S_ISREG(st.st_mode))
			continue;	/* a link is never followed (above) */
		if (cnt == OUTBOX_FILES_MAX)
			break;
		if (cnt == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct outbox_file *narr = realloc(arr, ncap * sizeof(*narr));

			if (!narr) {
				log_warn("cannot list '%s': out of memory", dir);
				goto out;
			}
			arr = narr;
			cap = ncap;
		}
		f = &arr[cnt++];
		memcpy(f->name, de->d_name, strlen(de->d_name) + 1);
		f->seq = seq;
		f->series = series;
		f->dropped = dropped;
		f->size = (uint64_t)st.st_size;
	}
	if (cnt)
		qsort(arr, cnt, sizeof(*arr), cmp_seq);	/* arr is NULL when empty */
	*out = arr;
	*n = cnt;
	arr = NULL;
	rc = 0;
out:
	free(arr);
	closedir(d);
	return rc;
}

static uint64_t dropped_read(const struct agent *a)
{
	char path[4096], *buf = NULL, *end;
	unsigned long long v;
	size_t len;

	if (outbox_path(path, sizeof(path), a, "dropped") < 0 ||
	    file_read(path, 64, &buf, &len) < 0)
		return 0;
	errno = 0;
	v = strtoull(buf, &end, 10);
	if (errno || end == buf)
		v = 0;
	free(buf);
	return (uint64_t)v;
}

static void dropped_write(const struct agent *a, uint64_t v)
{
	char path[4096], buf[32];
	const char *step = NULL;
	int n;

	if (outbox_path(path, sizeof(path), a, "dropped") < 0)
		return;
	n = snprintf(buf, sizeof(buf), "%" PRIu64 "\n", v);
	if (atomicfile_replace(path, buf, (size_t)n, 0660, 0, &step) < 0)
		log_warn("cannot write '%s': %s: %s", path, step ? step : "write", strerror(errno));
}

/* Drains the store into a new outbox document (none when there is nothing to
 * report). Returns 0 or -1 (logged; the deltas stay in the store). */
static int outbox_add(struct agent *a)
{
	struct metrics_snapshot snap = METRICS_SNAPSHOT_INIT;
	struct metrics_store *ms = NULL;
	struct outbox_file *files = NULL;
	char path[4096 + NAME_MAX_LEN], name[NAME_MAX_LEN];
	const char *step = NULL;
	uint64_t dropped, total = 0, seq = 1;
	size_t n = 0, i, len = 0;
	char *json = NULL;
	int rc = -1;

	/* the app creates the store (with the web server's group); none yet:
	 * nothing was recorded */
	if (shmfile_path(path, sizeof(path), a->conf.state_dir, METRICS_FILE) < 0)
		return -1;
	if (access(path, F_OK) < 0)
		return 0;
	ms = metrics_open(a->conf.state_dir, 0);
	if (!ms)
		return -1;
	if (metrics_snapshot(ms, now_ms(), &snap) < 0) {
		log_warn("cannot read the metrics: out of memory");
		goto out;
	}
	dropped = dropped_read(a);
	if (snap.n == 0 && dropped == 0) {
		rc = 0;
		goto out;
	}
	if (outbox_list(a, &files, &n) < 0)
		goto out;
	if (n > 0)
		seq = files[n - 1].seq + 1;
	if (metrics_snapshot_json(&snap, a->instance_id, dropped, &json, &len) < 0) {
		log_warn("cannot build the metrics document: out of memory");
		goto out;
	}
	/* room for it: the oldest documents go first, and are counted */
	for (i = 0; i < n; i++)
		total += files[i].size;
	for (i = 0; i < n && total + len > OUTBOX_MAX; i++) {
		if (outbox_path(path, sizeof(path), a, files[i].name) < 0 || unlink(path) < 0)
			continue;
		total -= files[i].size;
		dropped += files[i].series + files[i].dropped;
		log_warn("metrics outbox full: dropped '%s'", files[i].name);
	}
	if (i > 0) {
		/* this document must report those drops too */
		free(json);
		json = NULL;
		if (metrics_snapshot_json(&snap, a->instance_id, dropped, &json, &len) < 0)
			goto out;
	}
	snprintf(name, sizeof(name), "%016" PRIu64 "-%zu-%" PRIu64 ".json", seq, snap.n, dropped);
	if (outbox_path(path, sizeof(path), a, name) < 0)
		goto out;
	if (atomicfile_replace(path, json, len, 0660, 0, &step) < 0) {
		log_warn("cannot write '%s': %s: %s", path, step ? step : "write", strerror(errno));
		goto out;
	}
	if (dropped)
		dropped_write(a, 0);
	metrics_commit(ms, &snap);
	rc = 0;
out:
	free(json);
	free(files);
	metrics_snapshot_release(&snap);
	metrics_close(ms);
	return rc;
}

/* POSTs the outbox, oldest first, until one fails. Returns 0 or -1. */
static int outbox_send(struct agent *a)
{
	struct outbox_file *files = NULL;
	char url[AGENT_URL_MAX], path[4096 + NAME_MAX_LEN];
	size_t n = 0, i, len;
	char *body;
	int rc = 0;

	if (outbox_list(a, &files, &n) < 0)
		return -1;
	if (n == 0)
		goto out;
	if (!a->fetch.curl) {
		log_warn("cannot send metrics to '%s': not an http(s) endpoint", a->conf.endpoint);
		rc = -1;
		goto out;
	}
	if (agent_url(a, "metrics", url, sizeof(url)) < 0) {
		rc = -1;
		goto out;
	}
	for (i = 0; i < n; i++) {
		struct fetch_response r = FETCH_RESPONSE_INIT;

		if (outbox_path(path, sizeof(path), a, files[i].name) < 0 ||
		    file_read(path, OUTBOX_MAX, &body, &len) < 0)
			continue;	/* vanished or unreadable: the next one */
		if (fetch_post_json(&a->fetch, url, body, len, &r) < 0) {
			if (!r.stopped)
				log_warn("metrics not sent: %s", r.error);
			rc = -1;
		} else if (r.status < 200 || r.status > 299) {
			log_warn("metrics to '%s' answered HTTP %ld", url, r.status);
			rc = -1;
		} else if (unlink(path) < 0) {
			log_warn("cannot remove '%s': %s", path, strerror(errno));
		}
		fetch_response_release(&r);
		free(body);
		if (rc < 0)
			break;
	}
out:
	free(files);
	return rc;
}

int metrics_flush(struct agent *a)
{
	char dir[4096];
	struct stat st;
	int rc = 0;

	if (outbox_path(dir, sizeof(dir), a, NULL) < 0) {
		log_warn("cannot ship metrics: state directory name too long");
		return -1;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		log_warn("cannot create '%s': %s", dir, strerror(errno));
		return -1;
	}
	/* a link here would send the agent's reads, writes and removals elsewhere */
	if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid()) {
		log_warn("refusing the metrics outbox '%s': not a directory of this user "
			 "(a symbolic link?)", dir);
		return -1;
	}
	if (outbox_add(a) < 0)
		rc = -1;
	if (outbox_send(a) < 0)
		rc = -1;
	return rc;
}
