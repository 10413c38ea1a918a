/*
 * img — the image of our own: one file, offsets instead of pointers, mapped
 * read-only (MAP_SHARED, so every process shares the page cache's copy).
 *
 * Layout (little-endian; the header fills page 0):
 *   header    magic "HGIMAGE\0", format version, header size, generation,
 *             file size, checksum of the header itself, checksum of the page
 *             sums, and the section table (offset, length)
 *   STRINGS   strings every API shares (methods, templates, backend URLs):
 *             u32 length, bytes, NUL
 *   ROUTES    u32 bucket count (a power of two), then buckets of
 *             { u32 hash's high half, u32 offset of the API's block }, 0:
 *             empty; open addressing on the lower-cased API path, load <= 0.5
 *   BLOCKS    one block per API, everything a request of that API reads in
 *             one place (one or two pages, not five scattered sections):
 *             struct img_api, its struct img_op array, its plans (struct
 *             img_plan + struct img_step each), its own strings; offsets in a
 *             block are relative to the block, except shared strings
 *   PAGESUMS  one u64 checksum per 4 KiB page from page 1 to the end of
 *             BLOCKS
 * Damage is detected where it matters at O(1) cost per request: open checks
 * the header's checksum and the page sums' checksum (a page sum per 4 KiB:
 * 0.2% of the image); a lookup checks each page it reads the first time this
 * process reads it (a bitmap remembers). A damaged page makes the lookup fail
 * (the product would then serve from the document, and log it). Set
 * STUDY_FULL_VERIFY=1 to check every page at open instead, for comparison.
 */
#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "study.h"

const char *const store_name = "img";

#define IMG_MAGIC "HGIMAGE"
#define IMG_VERSION 1
#define IMG_PAGE 4096

enum { SEC_STRINGS, SEC_ROUTES, SEC_BLOCKS, SEC_PAGESUMS, SEC_N };

struct img_section {
	uint64_t off, len;
};

struct img_header {
	char magic[8];
	uint32_t version;
	uint32_t header_size;
	uint64_t generation;
	uint64_t file_size;
	uint64_t header_sum;	/* of this header with header_sum = 0 */
	uint64_t pagesums_sum;	/* of the PAGESUMS section */
	struct img_section sec[SEC_N];
};

struct img_bucket {
	uint32_t hash_hi, block;	/* block: offset in BLOCKS + 1, 0: empty */
};

struct img_api {
	uint32_t block_size;
	uint32_t path;		/* block-relative string */
	uint32_t api_id;	/* block-relative string */
	uint32_t op_count;
	/* struct img_op[op_count] follows */
};

struct img_op {
	uint32_t method, tmpl;	/* shared strings */
	uint32_t plan;		/* block-relative */
	uint32_t op_id;		/* block-relative string */
};

struct img_plan {
	uint32_t backend;	/* shared string */
	uint32_t n_steps;
	/* struct img_step[n_steps] follows */
};

struct img_step {
	uint32_t kind;		/* 1: set-header */
	uint32_t name, value;	/* block-relative strings */
};

struct store {
	const unsigned char *base;
	size_t size;
	const struct img_header *h;
	const char *strings;
	const struct img_bucket *buckets;
	uint32_t mask;
	const unsigned char *blocks;
	const uint64_t *pagesums;
	size_t n_pages;		/* pages 1..n_pages are summed */
	unsigned char *checked;	/* bitmap: page already verified */
};

/* ---- a growing buffer ---------------------------------------------------- */

struct buf {
	unsigned char *p;
	size_t len, cap;
};

static size_t buf_add(struct buf *b, const void *data, size_t n)
{
	size_t at = b->len;

	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;

		while (cap < b->len + n)
			cap *= 2;
		b->p = realloc(b->p, cap);
		if (!b->p) {
			perror("img");
			exit(1);
		}
		b->cap = cap;
	}
	if (data)
		memcpy(b->p + b->len, data, n);
	else
		memset(b->p + b->len, 0, n);
	b->len += n;
	return at;
}

static void buf_align(struct buf *b, size_t to)
{
	if (b->len % to)
		buf_add(b, NULL, to - b->len % to);
}

/* a string: u32 length, bytes, NUL; returns the offset of its first byte */
static uint32_t str_add(struct buf *b, const char *s)
{
	uint32_t len = (uint32_t)strlen(s);

	buf_add(b, &len, 4);
	return (uint32_t)buf_add(b, s, len + 1);
}

static uint64_t path_hash(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)tolower((unsigned char)s[i])) * 0x100000001b3ull;
	/* FNV's low bits depend only on the input's low bits: fold the high ones
	 * in, or similar paths ("svc00001", "svc00002") pile up in one run */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	return h ^ (h >> 33);
}

/* A checksum that reads 8 bytes at a time: it detects damage (bit rot, a
 * foreign or truncated file), not tampering — the directory's ownership is
 * what keeps an attacker from writing an image. */
static uint64_t img_checksum(const unsigned char *p, size_t n)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t w;

		memcpy(&w, p + i, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdull;
		h ^= h >> 32;
	}
	for (; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

int store_build(const char *path, uint32_t n)
{
	struct buf strs = { 0 }, routes = { 0 }, blocks = { 0 }, out = { 0 };
	uint32_t method_s[STUDY_OPS], tmpl_s[STUDY_OPS], backend_s;
	uint32_t nb = 16;
	char tmp[4096], s[64];
	struct img_header h = { .version = IMG_VERSION, .header_size = sizeof(h), .generation = 1 };
	struct img_bucket *b;
	int fd;

	memcpy(h.magic, IMG_MAGIC, 8);
	for (int j = 0; j < STUDY_OPS; j++) {
		method_s[j] = str_add(&strs, study_op_method[j]);
		tmpl_s[j] = str_add(&strs, study_op_tmpl[j]);
	}
	backend_s = str_add(&strs, STUDY_BACKEND);
	while (nb < 2 * n)
		nb *= 2;
	buf_add(&routes, &nb, 4);
	buf_add(&routes, NULL, 4);
	buf_add(&routes, NULL, (size_t)nb * sizeof(*b));
	b = (struct img_bucket *)(routes.p + 8);
	for (uint32_t i = 0; i < n; i++) {
		struct buf blk = { 0 };
		struct img_api a = { .op_count = STUDY_OPS };
		size_t ops_at, plan_at[STUDY_OPS];
		uint64_t hash;
		uint32_t k, value = 0, name = 0, op_id[STUDY_OPS];

		buf_add(&blk, &a, sizeof(a));
		ops_at = buf_add(&blk, NULL, STUDY_OPS * sizeof(struct img_op));
		for (int j = 0; j < STUDY_OPS; j++) {
			struct img_plan pl = { .backend = backend_s, .n_steps = i % 10 == 0 };

			buf_align(&blk, 4);
			plan_at[j] = buf_add(&blk, &pl, sizeof(pl));
			if (pl.n_steps)
				buf_add(&blk, NULL, sizeof(struct img_step));
		}
		snprintf(s, sizeof(s), "svc%05u", i);
		a.path = str_add(&blk, s);
		hash = path_hash(s, strlen(s));
		snprintf(s, sizeof(s), "api%u", i);
		a.api_id = str_add(&blk, s);
		for (int j = 0; j < STUDY_OPS; j++) {
			snprintf(s, sizeof(s), "op%d", j);
			op_id[j] = str_add(&blk, s);
		}
		if (i % 10 == 0) {
			name = str_add(&blk, "X-Api");
			snprintf(s, sizeof(s), "api-%u", i);
			value = str_add(&blk, s);
		}
		buf_align(&blk, 8);
		a.block_size = (uint32_t)blk.len;
		memcpy(blk.p, &a, sizeof(a));
		for (int j = 0; j < STUDY_OPS; j++) {
			struct img_op o = { .method = method_s[j], .tmpl = tmpl_s[j],
					    .plan = (uint32_t)plan_at[j], .op_id = op_id[j] };
			struct img_step st = { .kind = 1, .name = name, .value = value };

			memcpy(blk.p + ops_at + j * sizeof(o), &o, sizeof(o));
			if (i % 10 == 0)
				memcpy(blk.p + plan_at[j] + sizeof(struct img_plan), &st, sizeof(st));
		}
		for (k = (uint32_t)hash & (nb - 1); b[k].block; k = (k + 1) & (nb - 1))
			;
		b[k].hash_hi = (uint32_t)(hash >> 32);
		b[k].block = (uint32_t)blocks.len + 1;
		buf_add(&blocks, blk.p, blk.len);
		free(blk.p);
	}
	buf_add(&out, NULL, IMG_PAGE);
	struct buf *secs[SEC_PAGESUMS] = { &strs, &routes, &blocks };
	for (int i = 0; i < SEC_PAGESUMS; i++) {
		buf_align(&out, 8);
		h.sec[i].off = out.len;
		h.sec[i].len = secs[i]->len;
		buf_add(&out, secs[i]->p, secs[i]->len);
		free(secs[i]->p);
	}
	buf_align(&out, IMG_PAGE);
	h.sec[SEC_PAGESUMS].off = out.len;
	h.sec[SEC_PAGESUMS].len = (out.len / IMG_PAGE - 1) * 8;
	for (size_t pg = 1; pg < h.sec[SEC_PAGESUMS].off / IMG_PAGE; pg++) {
		uint64_t sum = img_checksum(out.p + pg * IMG_PAGE, IMG_PAGE);

		buf_add(&out, &sum, 8);
	}
	h.pagesums_sum = img_checksum(out.p + h.sec[SEC_PAGESUMS].off, h.sec[SEC_PAGESUMS].len);
	h.file_size = out.len;
	h.header_sum = img_checksum((const unsigned char *)&h, sizeof(h));
	memcpy(out.p, &h, sizeof(h));
	/* installed as any configuration file: a reader sees the old or the new */
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, out.p, out.len) != (ssize_t)out.len || fsync(fd) != 0 ||
	    close(fd) != 0 || rename(tmp, path) != 0) {
		perror(tmp);
		return -1;
	}
	free(out.p);
	return 0;
}

/* 0 when every page of [off, off + len) is intact */
static int verify(struct store *s, size_t off, size_t len)
{
	size_t first = off / IMG_PAGE, last = (off + len - 1) / IMG_PAGE;

	if (off < IMG_PAGE || len == 0 || last > s->n_pages)
		return -1;
	for (size_t pg = first; pg <= last; pg++) {
		if (s->checked[pg / 8] & (1u << (pg % 8)))
			continue;
		if (img_checksum(s->base + pg * IMG_PAGE, IMG_PAGE) != s->pagesums[pg - 1])
			return -1;
		s->checked[pg / 8] |= (unsigned char)(1u << (pg % 8));
	}
	return 0;
}

struct store *store_open(const char *path)
{
	struct store *s = calloc(1, sizeof(*s));
	struct img_header h;
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (!s || fd < 0 || fstat(fd, &st) != 0 || (size_t)st.st_size < IMG_PAGE)
		goto bad;
	s->size = (size_t)st.st_size;
	s->base = mmap(NULL, s->size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	fd = -1;
	if (s->base == MAP_FAILED)
		goto bad;
	memcpy(&h, s->base, sizeof(h));
	s->h = (const struct img_header *)s->base;
	h.header_sum = 0;
	if (memcmp(h.magic, IMG_MAGIC, 8) || h.version != IMG_VERSION ||
	    h.header_size != sizeof(h) || h.file_size != s->size ||
	    img_checksum((const unsigned char *)&h, sizeof(h)) != s->h->header_sum)
		goto bad;
	for (int i = 0; i < SEC_N; i++)
		if (h.sec[i].off > s->size || h.sec[i].len > s->size - h.sec[i].off)
			goto bad;
	if (h.sec[SEC_PAGESUMS].off % IMG_PAGE ||
	    h.sec[SEC_PAGESUMS].len != (h.sec[SEC_PAGESUMS].off / IMG_PAGE - 1) * 8 ||
	    img_checksum(s->base + h.sec[SEC_PAGESUMS].off, h.sec[SEC_PAGESUMS].len) !=
	    h.pagesums_sum)
		goto bad;
	s->pagesums = (const uint64_t *)(s->base + h.sec[SEC_PAGESUMS].off);
	s->n_pages = h.sec[SEC_PAGESUMS].len / 8;
	s->checked = calloc(s->n_pages / 8 + 1, 1);
	if (!s->checked)
		goto bad;
	if (getenv("STUDY_FULL_VERIFY") && verify(s, IMG_PAGE, s->n_pages * IMG_PAGE) != 0)
		goto bad;
	/* the shared strings and the bucket count: read by every lookup */
	if (verify(s, h.sec[SEC_STRINGS].off, h.sec[SEC_STRINGS].len) != 0 ||
	    verify(s, h.sec[SEC_ROUTES].off, 8) != 0)
		goto bad;
	s->strings = (const char *)s->base + h.sec[SEC_STRINGS].off;
	s->mask = *((const uint32_t *)(s->base + h.sec[SEC_ROUTES].off)) - 1;
	if ((size_t)s->mask + 1 > (h.sec[SEC_ROUTES].len - 8) / sizeof(struct img_bucket))
		goto bad;
	s->buckets = (const struct img_bucket *)(s->base + h.sec[SEC_ROUTES].off + 8);
	s->blocks = s->base + h.sec[SEC_BLOCKS].off;
	return s;
bad:
	fprintf(stderr, "img: '%s' is not a usable image\n", path);
	if (fd >= 0)
		close(fd);
	if (s && s->base && s->base != MAP_FAILED)
		munmap((void *)s->base, s->size);
	if (s)
		free(s->checked);
	free(s);
	return NULL;
}

static const char *str_at(const char *base, uint32_t off, uint32_t *len)
{
	memcpy(len, base + off - 4, 4);
	return base + off;
}

uint64_t store_lookup(struct store *s, const char *path, const char *method)
{
	const char *seg, *rest, *blk, *p;
	size_t seglen;
	uint64_t hash;
	uint32_t k, len;
	const struct img_api *a = NULL;
	const struct img_op *ops, *best = NULL;
	int best_score = 0;

	if (*path != '/')
		return 0;
	seg = path + 1;
	rest = strchr(seg, '/');
	if (!rest)
		rest = seg + strlen(seg);
	seglen = (size_t)(rest - seg);
	hash = path_hash(seg, seglen);
	for (k = (uint32_t)hash & s->mask;; k = (k + 1) & s->mask) {
		const struct img_bucket *bk = &s->buckets[k];
		size_t boff;

		if (verify(s, (size_t)((const unsigned char *)bk - s->base), sizeof(*bk)) != 0)
			return 0;
		if (!bk->block)
			return 0;
		if (bk->hash_hi != (uint32_t)(hash >> 32))
			continue;
		boff = (size_t)(s->blocks - s->base) + bk->block - 1;
		blk = (const char *)s->base + boff;
		if (verify(s, boff, sizeof(struct img_api)) != 0 ||
		    verify(s, boff, ((const struct img_api *)blk)->block_size) != 0)
			return 0;
		p = str_at(blk, ((const struct img_api *)blk)->path, &len);
		if (len == seglen && !strncasecmp(p, seg, seglen)) {
			a = (const struct img_api *)blk;
			break;
		}
	}
	ops = (const struct img_op *)(a + 1);
	for (uint32_t j = 0; j < a->op_count; j++) {
		uint32_t tl;
		const char *t = str_at(s->strings, ops[j].tmpl, &tl);
		int score;

		if (strcmp(str_at(s->strings, ops[j].method, &len), method))
			continue;
		score = study_tmpl_match(t, tl, rest);
		if (score > best_score) {
			best_score = score;
			best = &ops[j];
		}
	}
	if (!best)
		return 0;
	const struct img_plan *pl = (const struct img_plan *)(blk + best->plan);
	const struct img_step *st = (const struct img_step *)(pl + 1);
	uint64_t d = 0xcbf29ce484222325ull;
	const char *v;

	v = str_at(s->strings, pl->backend, &len);
	d = study_mix(d, v, len);
	v = str_at(blk, a->api_id, &len);
	d = study_mix(d, v, len);
	v = str_at(blk, best->op_id, &len);
	d = study_mix(d, v, len);
	for (uint32_t i = 0; i < pl->n_steps; i++) {
		v = str_at(blk, st[i].name, &len);
		d = study_mix(d, v, len);
		v = str_at(blk, st[i].value, &len);
		d = study_mix(d, v, len);
	}
	return d | 1;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	munmap((void *)s->base, s->size);
	free(s->checked);
	free(s);
}
