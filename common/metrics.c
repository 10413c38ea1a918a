#include "common/metrics.h"

#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/shmfile.h"

/*
 * The file: a 128-byte header, nseries slots, then one overflow slot. A slot's
 * state is 0 (empty), CLAIMED (0xffffffff << 32 | pid: being filled) or READY;
 * once READY its key and labels never change. Counters are 64-bit and only
 * grow; "shipped" is written by the drainer only.
 */

#define METRICS_MAGIC "HGMETRC"
#define METRICS_VERSION 2u	/* 2: times in milliseconds */

#define SLOT_EMPTY 0u
#define SLOT_READY 1u
#define CLAIM_HI 0xffffffffu

_Static_assert(ATOMIC_LONG_LOCK_FREE == 2 && ATOMIC_LLONG_LOCK_FREE == 2,
	       "64-bit atomics must be lock-free to work across processes");

static const uint32_t bounds_ms[METRICS_BUCKETS - 1] = METRICS_BOUNDS_MS;
static const char *const bounds_s[METRICS_BUCKETS - 1] = {
	"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10"
};

struct metrics_hdr {
	struct shmfile_hdr shm;
	uint64_t seed[2];
	uint32_t nseries;
	uint32_t reserved0;
	uint64_t created;	/* unix milliseconds */
	_Atomic uint64_t drained;	/* the last commit's "to" in unix ms, 0: never */
	uint64_t reserved[8];
};
_Static_assert(sizeof(struct metrics_hdr) == 128, "metrics header is 128 bytes");

#define LABEL_API 1u
#define LABEL_OPERATION 2u
#define LABEL_SUBSCRIPTION 4u
#define LABEL_OVERFLOW 8u

struct mctr {
	_Atomic uint64_t count, errors, bytes_in, bytes_out;
	_Atomic uint64_t lat[METRICS_BUCKETS];
	_Atomic uint64_t lat_sum_us;
	_Atomic uint64_t blat[METRICS_BUCKETS];
	_Atomic uint64_t blat_sum_us, blat_count;
};

struct mslot {
	_Atomic uint64_t state;
	uint64_t k1, k2;
	int32_t status;
	uint32_t labels;		/* LABEL_* present */
	char api[METRICS_LABEL_MAX];
	char operation[METRICS_LABEL_MAX];
	char subscription[METRICS_LABEL_MAX];
	struct mctr cur;
	struct mctr shipped;
};

struct metrics_store {
	struct shmfile file;
	struct metrics_hdr *hdr;
	struct mslot *slots;		/* nseries + 1: the last is the overflow */
	uint32_t nseries;
};

static size_t metrics_file_size(uint32_t nseries)
{
	return sizeof(struct metrics_hdr) + ((size_t)nseries + 1) * sizeof(struct mslot);
}

/* ---- the file ------------------------------------------------------------- */

static int metrics_init(void *base, size_t size, void *arg)
{
	struct metrics_hdr *h = base;
	const uint32_t *nseries = arg;
	struct mslot *of;

	(void)size;
	shmfile_seed(h->seed);
	h->nseries = *nseries;
	{
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		h->created = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	}
	of = (struct mslot *)((char *)base + sizeof(*h)) + h->nseries;
	of->labels = LABEL_OVERFLOW;
	atomic_store(&of->state, SLOT_READY);
	return 0;
}

static int metrics_check(const void *base, size_t size, void *arg)
{
	const struct metrics_hdr *h = base;

	(void)arg;
	if (size < sizeof(*h) || h->nseries < METRICS_MIN_SERIES ||
	    h->nseries > METRICS_MAX_SERIES || metrics_file_size(h->nseries) != size)
		return -1;
	return 0;
}

struct metrics_store *metrics_open(const char *state_dir, uint32_t series)
{
	struct shmfile_want want = { METRICS_MAGIC, METRICS_VERSION, 0 };
	struct metrics_store *ms;
	char path[4096];

	if (series == 0)
		series = METRICS_DEFAULT_SERIES;
	if (series < METRICS_MIN_SERIES)
		series = METRICS_MIN_SERIES;
	if (series > METRICS_MAX_SERIES)
		series = METRICS_MAX_SERIES;
	want.size = metrics_file_size(series);
	if (shmfile_path(path, sizeof(path), state_dir, METRICS_FILE) < 0) {
		log_err("cannot open metrics in '%s': name too long", state_dir);
		return NULL;
	}
	ms = calloc(1, sizeof(*ms));
	if (!ms) {
		log_err("cannot open '%s': out of memory", path);
		return NULL;
	}
	if (shmfile_open(&ms->file, path, &want, metrics_init, metrics_check, &series) < 0) {
		free(ms);
		return NULL;
	}
	ms->hdr = ms->file.base;
	ms->nseries = ms->hdr->nseries;
	ms->slots = (struct mslot *)((char *)ms->file.base + sizeof(struct metrics_hdr));
	return ms;
}

void metrics_close(struct metrics_store *ms)
{
	if (!ms)
		return;
	shmfile_close(&ms->file);
	free(ms);
}

/* ---- recording ------------------------------------------------------------ */

/* Copies s into dst (METRICS_LABEL_MAX), cut at a character boundary. */
static void label_copy(char *dst, const char *s)
{
	size_t n = strnlen(s, METRICS_LABEL_MAX);

	if (n == METRICS_LABEL_MAX) {
		n = METRICS_LABEL_MAX - 1;
		/* do not split a UTF-8 sequence: back up over continuation bytes */
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(dst, s, n);
	dst[n] = '\0';
}

/* The tuple of a sample, labels cut as stored. */
struct tuple {
	uint32_t labels;
	int32_t status;
	char api[METRICS_LABEL_MAX];
	char operation[METRICS_LABEL_MAX];
	char subscription[METRICS_LABEL_MAX];
};

static void tuple_make(struct tuple *t, const struct metrics_sample *s)
{
	memset(t, 0, sizeof(*t));
	t->status = s->status;
	if (s->api) {
		t->labels |= LABEL_API;
		label_copy(t->api, s->api);
	}
	if (s->operation) {
		t->labels |= LABEL_OPERATION;
		label_copy(t->operation, s->operation);
	}
	if (s->subscription) {
		t->labels |= LABEL_SUBSCRIPTION;
		label_copy(t->subscription, s->subscription);
	}
}

static void tuple_hash(const struct metrics_store *ms, const struct tuple *t, uint64_t k[2])
{
	unsigned char buf[8 + 3 * METRICS_LABEL_MAX];
	size_t n = 0, l;

	memcpy(buf, &t->labels, 4);
	memcpy(buf + 4, &t->status, 4);
	n = 8;
	l = strlen(t->api) + 1;
	memcpy(buf + n, t->api, l);
	n += l;
	l = strlen(t->operation) + 1;
	memcpy(buf + n, t->operation, l);
	n += l;
	l = strlen(t->subscription) + 1;
	memcpy(buf + n, t->subscription, l);
	n += l;
	shmfile_hash128(ms->hdr->seed, 0, buf, n, k);
}

/* Fills a claimed slot and publishes it. */
static void slot_fill(struct mslot *sl, const struct tuple *t, const uint64_t k[2])
{
	sl->k1 = k[0];
	sl->k2 = k[1];
	sl->status = t->status;
	sl->labels = t->labels;
	memcpy(sl->api, t->api, sizeof(sl->api));
	memcpy(sl->operation, t->operation, sizeof(sl->operation));
	memcpy(sl->subscription, t->subscription, sizeof(sl->subscription));
	atomic_store_explicit(&sl->state, SLOT_READY, memory_order_release);
}

/* Returns the slot of t, claiming one if needed; the overflow slot when none
 * is free. */
static struct mslot *slot_for(struct metrics_store *ms, const struct tuple *t)
{
	uint64_t k[2], x, me;
	uint32_t home, j;
	unsigned spins;
	struct mslot *sl;

	tuple_hash(ms, t, k);
	home = (uint32_t)(k[1] % ms->nseries);
	for (j = 0; j < METRICS_PROBE && j < ms->nseries; j++) {
		sl = &ms->slots[(home + j) % ms->nseries];
		spins = 0;
		for (;;) {
			x = atomic_load_explicit(&sl->state, memory_order_acquire);
			if (x == SLOT_READY) {
				if (sl->k1 == k[0] && sl->k2 == k[1])
					return sl;
				break;
			}
			if (x == SLOT_EMPTY) {
				/* only a claim needs the pid: a series seen
				 * before (every request but its first) makes
				 * no system call here (issue 15) */
				me = (uint64_t)CLAIM_HI << 32 | (uint32_t)getpid();
				if (atomic_compare_exchange_strong(&sl->state, &x, me)) {
					slot_fill(sl, t, k);
					return sl;
				}
				continue;
			}
			/* being claimed (perhaps for t): wait for it, or free it
			 * if its claimer died */
			if (++spins % 16 == 0 &&
			    ((uint32_t)x == (uint32_t)getpid() || shmfile_pid_dead((int)(uint32_t)x))) {
				atomic_compare_exchange_strong(&sl->state, &x, SLOT_EMPTY);
				continue;
			}
			if (spins > 4)
				sched_yield();
		}
	}
	return &ms->slots[ms->nseries];
}

static unsigned bucket_of(uint64_t us)
{
	unsigned i;

	for (i = 0; i < METRICS_BUCKETS - 1; i++)
		if (us <= (uint64_t)bounds_ms[i] * 1000)
			return i;
	return METRICS_BUCKETS - 1;
}

void metrics_record(struct metrics_store *ms, const struct metrics_sample *s)
{
	const memory_order rx = memory_order_relaxed;
	struct tuple t;
	struct mslot *sl;
	struct mctr *c;

	if (!ms || !s)
		return;
	tuple_make(&t, s);
	sl = slot_for(ms, &t);
	c = &sl->cur;
	atomic_fetch_add_explicit(&c->count, 1, rx);
	if (s->error)
		atomic_fetch_add_explicit(&c->errors, 1, rx);
	if (s->bytes_in)
		atomic_fetch_add_explicit(&c->bytes_in, s->bytes_in, rx);
	if (s->bytes_out)
		atomic_fetch_add_explicit(&c->bytes_out, s->bytes_out, rx);
	atomic_fetch_add_explicit(&c->lat[bucket_of(s->duration_us)], 1, rx);
	atomic_fetch_add_explicit(&c->lat_sum_us, s->duration_us, rx);
	if (s->backend_us >= 0) {
		atomic_fetch_add_explicit(&c->blat[bucket_of((uint64_t)s->backend_us)], 1, rx);
		atomic_fetch_add_explicit(&c->blat_sum_us, (uint64_t)s->backend_us, rx);
		atomic_fetch_add_explicit(&c->blat_count, 1, rx);
	}
}

/* ---- reading -------------------------------------------------------------- */

/* Reads c (minus base when not NULL) into out; returns whether any is not 0. */
static int counts_read(const struct mctr *c, const struct mctr *base, struct metrics_counts *out)
{
	const memory_order rx = memory_order_relaxed;
	int any = 0;
	unsigned i;

#define RD(field) (atomic_load_explicit(&c->field, rx) - \
		   (base ? atomic_load_explicit(&base->field, rx) : 0))
	out->count = RD(count);
	out->errors = RD(errors);
	out->bytes_in = RD(bytes_in);
	out->bytes_out = RD(bytes_out);
	for (i = 0; i < METRICS_BUCKETS; i++) {
		out->latency[i] = RD(lat[i]);
		out->backend[i] = RD(blat[i]);
		any |= out->latency[i] != 0 || out->backend[i] != 0;
	}
	out->latency_sum_us = RD(lat_sum_us);
	out->backend_sum_us = RD(blat_sum_us);
	out->backend_count = RD(blat_count);
#undef RD
	any |= out->count != 0 || out->errors != 0 || out->bytes_in != 0 || out->bytes_out != 0 ||
	       out->latency_sum_us != 0 || out->backend_sum_us != 0 || out->backend_count != 0;
	return any;
}

static void series_labels(struct metrics_series *m, const struct mslot *sl, uint32_t idx)
{
	memcpy(m->api, sl->api, sizeof(m->api));
	memcpy(m->operation, sl->operation, sizeof(m->operation));
	memcpy(m->subscription, sl->subscription, sizeof(m->subscription));
	m->api[METRICS_LABEL_MAX - 1] = '\0';
	m->operation[METRICS_LABEL_MAX - 1] = '\0';
	m->subscription[METRICS_LABEL_MAX - 1] = '\0';
	m->has_api = (sl->labels & LABEL_API) != 0;
	m->has_operation = (sl->labels & LABEL_OPERATION) != 0;
	m->has_subscription = (sl->labels & LABEL_SUBSCRIPTION) != 0;
	m->overflow = (sl->labels & LABEL_OVERFLOW) != 0;
	m->status = sl->status;
	m->slot = idx;
}

/* Reads every ready slot: deltas (since shipped) or totals. Returns 0 with a
 * new array (only series with something in it), or -1. */
static int collect(struct metrics_store *ms, int deltas, struct metrics_series **out, size_t *n)
{
	struct metrics_series *arr = NULL, *m;
	size_t cap = 0, cnt = 0;
	struct mslot *sl;
	uint32_t i;

	for (i = 0; i <= ms->nseries; i++) {
		sl = &ms->slots[i];
		if (atomic_load_explicit(&sl->state, memory_order_acquire) != SLOT_READY)
			continue;
		if (cnt == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct metrics_series *narr = realloc(arr, ncap * sizeof(*narr));

			if (!narr) {
				free(arr);
				return -1;
			}
			arr = narr;
			cap = ncap;
		}
		m = &arr[cnt];
		memset(m, 0, sizeof(*m));
		if (!counts_read(&sl->cur, deltas ? &sl->shipped : NULL, &m->c))
			continue;
		series_labels(m, sl, i);
		cnt++;
	}
	*out = arr;
	*n = cnt;
	return 0;
}

int metrics_snapshot(struct metrics_store *ms, int64_t now, struct metrics_snapshot *snap)
{
	uint64_t from = atomic_load_explicit(&ms->hdr->drained, memory_order_acquire);

	memset(snap, 0, sizeof(*snap));
	snap->from = (int64_t)(from ? from : ms->hdr->created);
	/* windows never share a "from": the endpoint de-duplicates on it */
	snap->to = now > snap->from ? now : snap->from + 1;
	if (collect(ms, 1, &snap->series, &snap->n) < 0) {
		memset(snap, 0, sizeof(*snap));
		return -1;
	}
	return 0;
}

int metrics_commit(struct metrics_store *ms, const struct metrics_snapshot *snap)
{
	const memory_order rx = memory_order_relaxed;
	const struct metrics_counts *d;
	struct mctr *sh;
	size_t i;
	unsigned b;

	for (i = 0; i < snap->n; i++) {
		if (snap->series[i].slot > ms->nseries)
			continue;
		sh = &ms->slots[snap->series[i].slot].shipped;
		d = &snap->series[i].c;
		atomic_fetch_add_explicit(&sh->count, d->count, rx);
		atomic_fetch_add_explicit(&sh->errors, d->errors, rx);
		atomic_fetch_add_explicit(&sh->bytes_in, d->bytes_in, rx);
		atomic_fetch_add_explicit(&sh->bytes_out, d->bytes_out, rx);
		for (b = 0; b < METRICS_BUCKETS; b++) {
			atomic_fetch_add_explicit(&sh->lat[b], d->latency[b], rx);
			atomic_fetch_add_explicit(&sh->blat[b], d->backend[b], rx);
		}
		atomic_fetch_add_explicit(&sh->lat_sum_us, d->latency_sum_us, rx);
		atomic_fetch_add_explicit(&sh->blat_sum_us, d->backend_sum_us, rx);
		atomic_fetch_add_explicit(&sh->blat_count, d->backend_count, rx);
	}
	atomic_store_explicit(&ms->hdr->drained, (uint64_t)(snap->to > 0 ? snap->to : 1),
			      memory_order_release);
	return 0;
}

void metrics_snapshot_release(struct metrics_snapshot *snap)
{
	free(snap->series);
	memset(snap, 0, sizeof(*snap));
}

/* ---- text ----------------------------------------------------------------- */

struct sbuf {
	char *p;
	size_t len, cap;
	int failed;
};

static void sb_grow(struct sbuf *b, size_t more)
{
	size_t ncap;
	char *np;

	if (b->failed)
		return;
	if (more > METRICS_TEXT_MAX || b->len + more + 1 > METRICS_TEXT_MAX) {
		b->failed = 1;
		return;
	}
	if (b->len + more + 1 <= b->cap)
		return;
	ncap = b->cap ? b->cap : 4096;
	while (ncap < b->len + more + 1)
		ncap *= 2;
	if (ncap > METRICS_TEXT_MAX)
		ncap = METRICS_TEXT_MAX;
	np = realloc(b->p, ncap);
	if (!np) {
		b->failed = 1;
		return;
	}
	b->p = np;
	b->cap = ncap;
}

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
	sb_grow(b, n);
	if (b->failed)
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		b->failed = 1;
		return;
	}
	sb_add(b, tmp, (size_t)n);
}

static int sb_finish(struct sbuf *b, char **out, size_t *len)
{
	if (!b->failed && !b->p)
		sb_add(b, "", 0);
	if (b->failed) {
		free(b->p);
		*out = NULL;
		*len = 0;
		return -1;
	}
	*out = b->p;
	*len = b->len;
	return 0;
}

/* A Prometheus label value: backslash, double quote and newline escaped. */
static void sb_prom_label(struct sbuf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			sb_add(b, "\\\\", 2);
		else if (*s == '"')
			sb_add(b, "\\\"", 2);
		else if (*s == '\n')
			sb_add(b, "\\n", 2);
		else
			sb_add(b, s, 1);
	}
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t len, i;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

/* A JSON string (quoted); bytes that are not UTF-8 become U+FFFD. */
static void sb_json_str(struct sbuf *b, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n = strlen(str), l;

	sb_add(b, "\"", 1);
	while (n > 0) {
		if (*s == '"' || *s == '\\') {
			sb_add(b, "\\", 1);
			sb_add(b, (const char *)s, 1);
			l = 1;
		} else if (*s < 0x20) {
			sb_printf(b, "\\u%04x", *s);
			l = 1;
		} else {
			l = utf8_len(s, n);
			if (l == 0) {
				sb_str(b, "\\ufffd");
				l = 1;
			} else {
				sb_add(b, (const char *)s, l);
			}
		}
		s += l;
		n -= l;
	}
	sb_add(b, "\"", 1);
}

static void sb_json_label(struct sbuf *b, int has, const char *s)
{
	if (has)
		sb_json_str(b, s);
	else
		sb_str(b, "null");
}

/* RFC 3339 with milliseconds, from unix milliseconds. */
static void rfc3339(int64_t ms, char *buf, size_t len)
{
	time_t tt = (time_t)(ms / 1000);
	struct tm tm;
	char sec[32];

	if (!gmtime_r(&tt, &tm) || strftime(sec, sizeof(sec), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		snprintf(sec, sizeof(sec), "1970-01-01T00:00:00");
	snprintf(buf, len, "%s.%03dZ", sec, (int)(ms % 1000));
}

int metrics_snapshot_json(const struct metrics_snapshot *snap, const char *instance,
			  uint64_t dropped, char **out, size_t *len)
{
	struct sbuf b = { NULL, 0, 0, 0 };
	const struct metrics_series *m;
	char from[40], to[40];
	size_t i;
	unsigned k;

	rfc3339(snap->from, from, sizeof(from));
	rfc3339(snap->to, to, sizeof(to));
	sb_str(&b, "{\"instance\":");
	sb_json_str(&b, instance ? instance : "");
	sb_printf(&b, ",\"from\":\"%s\",\"to\":\"%s\",\"dropped\":%llu,\"series\":[", from, to,
		  (unsigned long long)dropped);
	for (i = 0; i < snap->n; i++) {
		m = &snap->series[i];
		sb_str(&b, i ? ",{\"api\":" : "{\"api\":");
		sb_json_label(&b, m->has_api, m->api);
		sb_str(&b, ",\"operation\":");
		sb_json_label(&b, m->has_operation, m->operation);
		sb_str(&b, ",\"subscription\":");
		sb_json_label(&b, m->has_subscription, m->subscription);
		sb_printf(&b, ",\"status\":%d,\"count\":%llu,\"errors\":%llu", m->status,
			  (unsigned long long)m->c.count, (unsigned long long)m->c.errors);
		sb_printf(&b, ",\"bytes_in\":%llu,\"bytes_out\":%llu",
			  (unsigned long long)m->c.bytes_in, (unsigned long long)m->c.bytes_out);
		sb_str(&b, ",\"latency_ms\":{\"le\":[");
		for (k = 0; k < METRICS_BUCKETS - 1; k++)
			sb_printf(&b, k ? ",%u" : "%u", bounds_ms[k]);
		sb_str(&b, "],\"counts\":[");
		for (k = 0; k < METRICS_BUCKETS; k++)
			sb_printf(&b, k ? ",%llu" : "%llu", (unsigned long long)m->c.latency[k]);
		sb_str(&b, "]}}");
	}
	sb_str(&b, "]}");
	return sb_finish(&b, out, len);
}

/* ---- Prometheus ----------------------------------------------------------- */

static const char *label_or_empty(int has, const char *s)
{
	return has ? s : "";
}

static int cmp_api_op(const struct metrics_series *a, const struct metrics_series *b)
{
	int r = strcmp(label_or_empty(a->has_api, a->api), label_or_empty(b->has_api, b->api));

	if (r == 0)
		r = strcmp(label_or_empty(a->has_operation, a->operation),
			   label_or_empty(b->has_operation, b->operation));
	return r;
}

static int cmp_api_op_status(const void *pa, const void *pb)
{
	const struct metrics_series *a = pa, *b = pb;
	int r = cmp_api_op(a, b);

	if (r == 0)
		r = (a->status > b->status) - (a->status < b->status);
	return r;
}

static int cmp_api_op_only(const void *pa, const void *pb)
{
	return cmp_api_op(pa, pb);
}

static void prom_labels(struct sbuf *b, const struct metrics_series *m)
{
	sb_str(b, "api=\"");
	sb_prom_label(b, label_or_empty(m->has_api, m->api));
	sb_str(b, "\",operation=\"");
	sb_prom_label(b, label_or_empty(m->has_operation, m->operation));
	sb_str(b, "\"");
}

static void counts_sum(struct metrics_counts *acc, const struct metrics_counts *c)
{
	unsigned k;

	acc->count += c->count;
	acc->errors += c->errors;
	acc->bytes_in += c->bytes_in;
	acc->bytes_out += c->bytes_out;
	for (k = 0; k < METRICS_BUCKETS; k++) {
		acc->latency[k] += c->latency[k];
		acc->backend[k] += c->backend[k];
	}
	acc->latency_sum_us += c->latency_sum_us;
	acc->backend_sum_us += c->backend_sum_us;
	acc->backend_count += c->backend_count;
}

static void prom_histogram(struct sbuf *b, const char *name, const struct metrics_series *m,
			   const uint64_t *buckets, uint64_t sum_us, uint64_t count)
{
	uint64_t cum = 0;
	unsigned k;

	for (k = 0; k < METRICS_BUCKETS; k++) {
		cum += buckets[k];
		sb_printf(b, "%s_bucket{", name);
		prom_labels(b, m);
		sb_printf(b, ",le=\"%s\"} %llu\n", k < METRICS_BUCKETS - 1 ? bounds_s[k] : "+Inf",
			  (unsigned long long)cum);
	}
	sb_printf(b, "%s_sum{", name);
	prom_labels(b, m);
	sb_printf(b, "} %llu.%06llu\n", (unsigned long long)(sum_us / 1000000),
		  (unsigned long long)(sum_us % 1000000));
	sb_printf(b, "%s_count{", name);
	prom_labels(b, m);
	sb_printf(b, "} %llu\n", (unsigned long long)count);
}

int metrics_prometheus(struct metrics_store *ms, const struct metrics_gauges *g, char **out,
		       size_t *len)
{
	struct sbuf b = { NULL, 0, 0, 0 };
	struct metrics_series *arr = NULL, acc;
	size_t n = 0, i, j;
	int pass;

	if (collect(ms, 0, &arr, &n) < 0)
		return -1;

	/* requests by api, operation, status: summed over subscriptions */
	if (n)	/* arr is NULL when there is no series */
		qsort(arr, n, sizeof(*arr), cmp_api_op_status);
	sb_str(&b, "# HELP hostgate_requests_total Requests answered, by API, operation and status.\n"
		   "# TYPE hostgate_requests_total counter\n");
	for (i = 0; i < n; i = j) {
		uint64_t count = 0;

		for (j = i; j < n && cmp_api_op_status(&arr[i], &arr[j]) == 0; j++)
			count += arr[j].c.count;
		sb_str(&b, "hostgate_requests_total{");
		prom_labels(&b, &arr[i]);
		sb_printf(&b, ",status=\"%d\"} %llu\n", arr[i].status, (unsigned long long)count);
	}

	/* histograms by api, operation */
	if (n)
		qsort(arr, n, sizeof(*arr), cmp_api_op_only);
	for (pass = 0; pass < 2; pass++) {
		const char *name = pass == 0 ? "hostgate_request_duration_seconds"
					     : "hostgate_backend_duration_seconds";

		sb_printf(&b, "# HELP %s %s\n# TYPE %s histogram\n", name,
			  pass == 0 ? "Time to answer a request, by API and operation."
				    : "Time the backend took, by API and operation.",
			  name);
		for (i = 0; i < n; i = j) {
			memset(&acc, 0, sizeof(acc));
			for (j = i; j < n && cmp_api_op(&arr[i], &arr[j]) == 0; j++)
				counts_sum(&acc.c, &arr[j].c);
			if (pass == 0)
				prom_histogram(&b, name, &arr[i], acc.c.latency,
					       acc.c.latency_sum_us, acc.c.count);
			else if (acc.c.backend_count > 0)
				prom_histogram(&b, name, &arr[i], acc.c.backend,
					       acc.c.backend_sum_us, acc.c.backend_count);
		}
	}
	if (g && g->config_generation >= 0)
		sb_printf(&b, "# HELP hostgate_config_generation Generation of the configuration in use.\n"
			      "# TYPE hostgate_config_generation gauge\n"
			      "hostgate_config_generation %lld\n", (long long)g->config_generation);
	if (g && g->config_age_s >= 0)
		sb_printf(&b, "# HELP hostgate_config_age_seconds Age of the configuration in use.\n"
			      "# TYPE hostgate_config_age_seconds gauge\n"
			      "hostgate_config_age_seconds %lld\n", (long long)g->config_age_s);
	if (g && g->counter_store)
		sb_printf(&b, "# HELP hostgate_counter_store_up Whether the shared counter store "
			      "(Redis) answers this process.\n"
			      "# TYPE hostgate_counter_store_up gauge\n"
			      "hostgate_counter_store_up %d\n", g->counter_store_up ? 1 : 0);
	if (g && g->counter_store)
		sb_printf(&b, "# HELP hostgate_counter_store_errors_total Counted calls the shared "
			      "counter store could not answer.\n"
			      "# TYPE hostgate_counter_store_errors_total counter\n"
			      "hostgate_counter_store_errors_total %llu\n",
			  (unsigned long long)g->counter_store_errors);
	free(arr);
	return sb_finish(&b, out, len);
}
