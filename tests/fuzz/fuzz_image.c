/*
 * fuzz_image — any bytes as a compiled image (policy/image.c): image_open()
 * with no document to compare with, then, when it opens, a fixed set of
 * requests through route_match, a few subscription look-ups and the plans of
 * what matched. Nothing may crash or read outside the file.
 *
 * Each input runs twice: as it is (the header and page checksums then refuse
 * almost every mutation), and repaired — this build's layout id, the file
 * size, every page sum and the header's checksum made right — so that the
 * fuzzer reaches what lies behind the checksums: the offsets, lengths and
 * counts of the route table, the API directory and the subscription table,
 * each of which the reader must check against its section before use.
 *
 * The header is mirrored here (struct fz_hdr) as in tests/unit/test_image.c;
 * keep both in step with policy/image.c. The corpus (tests/fuzz/corpus/image)
 * holds small images written by `hostgate-fcgi --compile`.
 */
#define _GNU_SOURCE	/* memfd_create */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy/gateway.h"
#include "policy/image.h"
#include "policy/policies.h"
#include "policy/products.h"
#include "policy/route.h"
#include "tests/fuzz/check.h"

#define FUZZ_MAX (1u << 20)
#define FZ_PAGE 4096u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz_section {
	uint64_t off, len;
};

struct fz_hdr {
	char magic[8];
	uint32_t format_version, header_size, byte_order, page_size;
	uint8_t layout_id[16];
	int64_t generation;
	uint64_t doc_dev, doc_ino, doc_size;
	int64_t doc_mtime_ns;
	uint8_t doc_sha256[32];
	uint64_t file_size, n_pages, n_apis, n_subs;
	uint32_t max_depth, route_buckets, sub_buckets, reserved;
	struct fz_section sec[6];	/* the last is the page-sum table */
	uint64_t pagesums_sum;
	uint64_t header_sum;
};

static const struct {
	const char *host, *method, *path;
} fz_reqs[] = {
	{ NULL, "GET", "" },
	{ NULL, "GET", "/" },
	{ NULL, "GET", "/weather/forecast/oslo" },
	{ "api.example.com", "GET", "/weather/v1/forecast/oslo" },
	{ "API.Example.com.:8443", "POST", "/weather/v1/files/a/b%2Fc" },
	{ NULL, "GET", "/shop/items/1" },
	{ "a.example", "PUT", "/shop/items/new" },
	{ "b.example", "DELETE", "/SHOP/x/y/z" },
	{ NULL, "GET", "/a/b/c/d/e/f/g/h" },
	{ NULL, "GET", "/q/x" },
	{ NULL, "GET", "/g0/a1/r/7" },
	{ "h9.example", "GET", "/g0/A8/f/x" },
	{ NULL, "GET", "/demo/anything" },
	{ NULL, "GET", "/%2e%2e/x" },
	{ NULL, "GET", "/My-Api/V.2~x/y" },
};

/* image.c's checksum */
static uint64_t fz_checksum(const unsigned char *p, size_t n)
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

/* This build's layout id, read from an image it writes. */
static uint8_t fz_layout[16];

static void fz_init(void)
{
	static const char doc[] = "{\"format\":1,\"generation\":1,\"apis\":[]}";
	char dir[] = "/tmp/fuzz_image.XXXXXX", path[64], image[80];
	struct cfg_errors errs = CFG_ERRORS_INIT;
	struct fz_hdr h;
	struct stat st;
	FILE *f;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/c.json", dir);
	snprintf(image, sizeof(image), "%s%s", path, IMAGE_SUFFIX);
	f = fopen(path, "wb");
	CHECK(f && fwrite(doc, 1, sizeof(doc) - 1, f) == sizeof(doc) - 1 && fclose(f) == 0);
	CHECK(stat(path, &st) == 0);
	CHECK(image_compile_buffer(doc, sizeof(doc) - 1, &st, image, &errs, NULL) == 0);
	f = fopen(image, "rb");
	CHECK(f && fread(&h, 1, sizeof(h), f) == sizeof(h));
	fclose(f);
	memcpy(fz_layout, h.layout_id, sizeof(fz_layout));
	unlink(image);
	unlink(path);
	rmdir(dir);
	cfg_errors_release(&errs);
}

/* Makes every checksum of buf right and its layout this build's, so the
 * reader goes past them. */
static void fz_repair(unsigned char *buf, size_t size)
{
	struct fz_hdr h;
	uint64_t off, len, n;

	memcpy(&h, buf, sizeof(h));
	memcpy(h.layout_id, fz_layout, sizeof(h.layout_id));
	h.file_size = size;
	off = h.sec[5].off;
	len = h.sec[5].len;
	if (off >= FZ_PAGE && off % FZ_PAGE == 0 && off <= size) {
		n = off / FZ_PAGE - 1;
		h.n_pages = n;
		if (len == n * 8 && size - off == len) {
			for (uint64_t pg = 1; pg <= n; pg++) {
				uint64_t sum = fz_checksum(buf + pg * FZ_PAGE, FZ_PAGE);

				memcpy(buf + off + (pg - 1) * 8, &sum, 8);
			}
			h.pagesums_sum = fz_checksum(buf + off, len);
		}
	}
	h.header_sum = fz_checksum((const unsigned char *)&h, offsetof(struct fz_hdr, header_sum));
	memcpy(buf, &h, sizeof(h));
}

static void fz_route(const struct gateway *gw)
{
	unsigned char digest[32];

	for (size_t i = 0; i < sizeof(fz_reqs) / sizeof(fz_reqs[0]); i++) {
		size_t len = strlen(fz_reqs[i].path);
		/* exact length: a read past it is a crash under ASan */
		char *path = malloc(len ? len : 1);
		struct route_match m;
		enum route_status st;

		CHECK(path != NULL);
		memcpy(path, fz_reqs[i].path, len);
		st = route_match(gw, path, len, fz_reqs[i].host, fz_reqs[i].method, &m);
		CHECK(st <= ROUTE_UNAVAILABLE);
		if (st == ROUTE_UNAVAILABLE)
			CHECK(image_damaged(gw->image, NULL));
		if (st == ROUTE_OK || st == ROUTE_NO_OPERATION) {
			CHECK(m.gw && m.api && m.gw->n_apis == 1 && m.api == &m.gw->apis[0]);
			CHECK(m.rest >= path && m.rest + m.rest_len == path + len);
			for (size_t k = 0; k < 4; k++) {
				const struct gw_subscription *sub;
				struct gw_subscription buf;

				memset(digest, (int)(k * 0x55), sizeof(digest));
				sub = products_find_key(m.gw, digest, &buf);
				if (sub)
					(void)products_sub_covers(sub, m.api);
			}
			if (st == ROUTE_OK)
				CHECK(pol_plan_for(m.api, m.op, NULL) != NULL);
		}
		free(path);
	}
}

static void fz_open(const unsigned char *buf, size_t size)
{
	int fd = memfd_create("fuzz_image", MFD_CLOEXEC);
	enum image_status status;
	struct gateway *gw;
	struct stat st;
	char why[256];

	CHECK(fd >= 0);
	CHECK(size == 0 || write(fd, buf, size) == (ssize_t)size);
	CHECK(fstat(fd, &st) == 0);
	gw = image_open(fd, &st, NULL, &status, why, sizeof(why));
	if (gw) {
		CHECK(status == IMAGE_OK && gw->image);
		fz_route(gw);
		/* a second pass: the compiled APIs come from the cache */
		fz_route(gw);
		gw_free(gw);
	} else {
		CHECK(status == IMAGE_DAMAGED || status == IMAGE_FOREIGN);
		CHECK(memchr(why, '\0', sizeof(why)) != NULL && why[0] != '\0');
	}
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	unsigned char *copy;

	if (!ready) {
		fz_init();
		ready = 1;
	}
	if (size > FUZZ_MAX)
		return 0;
	fz_open(data, size);
	if (size < FZ_PAGE || memcmp(data, "HGIMAGE", 8) != 0)
		return 0;
	copy = malloc(size);
	CHECK(copy != NULL);
	memcpy(copy, data, size);
	fz_repair(copy, size);
	fz_open(copy, size);
	free(copy);
	return 0;
}
