/*
 * image — the compiled configuration as one read-only file that every process
 * maps (issue 9; the format and the evidence behind it: docs/scale.md).
 *
 *   writer (hostgate-fcgi --compile, the agent after it validated a document):
 *     image_compile_buffer(doc, len, &doc_stat, "/…/config.json.image", &errs)
 *   reader (every process, CGI per request, FastCGI per generation):
 *     gw = image_open(fd, &image_stat, &doc_stat, &status, why, sizeof(why));
 *     route_match(gw, …)     finds the API in the image, compiles it once
 *     gw_free(gw)            unmaps the image and everything compiled from it
 *
 * What the image holds: the gateway section (compiled by every process when it
 * opens the image: a few hundred bytes), a route table keyed by API path (an
 * open-addressing hash table of decoded, case-folded path prefixes, probed
 * from the request path's depth upwards: the cost depends on the path, never
 * on the number of APIs), one block per API — the API as a complete,
 * already-validated document of its own: its operations and policies, the
 * backends and named values it refers to, the products that include it, the
 * global policies — and a table of subscriptions keyed by the SHA-256 of
 * their keys. A process compiles an API's block the first time a request
 * routes to it (a small JSON document: tens of microseconds) and keeps it
 * until the image is released, at most IMAGE_CACHE_MAX of them, or as many as
 * IMAGE_CACHE_BYTES of blocks make, at once: the
 * memory of a process grows with the APIs it serves, not with the document.
 *
 * Integrity: a header with magic, format version, byte order, a layout id
 * (this build's version and policy modules: an image of another build is
 * foreign), the document's generation and identity (device, inode, size,
 * mtime: the staleness check is one stat), a checksum of the header and of the
 * page-sum table, and a checksum per 4 KiB page, checked the first time this
 * process reads the page. A header or table that fails is IMAGE_DAMAGED or
 * IMAGE_FOREIGN at open; a page that fails later marks the image damaged
 * (image_damaged()) and the read fails: nothing read from a damaged page is
 * ever used. Every offset is checked against its section before use.
 *
 * Trust is the caller's: open only a file that the process's own user cannot
 * write or replace (fcgi-app/reload.c, docs/deploying.md).
 *
 * Ownership: image_open() returns a gateway that owns the image; the gateways
 * compiled from its blocks belong to the image and live until it is released
 * (or until the cache, when full, drops the API least recently used — CLOCK —
 * to make room: a route_match result is good until the next route_match).
 * One thread per image: the cache is not locked.
 */
#ifndef HOSTGATE_IMAGE_H
#define HOSTGATE_IMAGE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "policy/gateway.h"

#define IMAGE_SUFFIX ".image"	/* the image of DOC is DOC.image */
#define IMAGE_FORMAT_VERSION 1
#define IMAGE_CACHE_MAX 512	/* compiled APIs a process keeps at once */
#define IMAGE_CACHE_BYTES (1u << 20)	/* ...and the size of their blocks: ~30 MiB compiled */

enum image_status {
	IMAGE_OK,
	IMAGE_DAMAGED,		/* a checksum, size or offset is wrong */
	IMAGE_FOREIGN,		/* another format, byte order or build */
	IMAGE_STALE,		/* compiled from another document than the one given */
};

struct gw_image;

/* What one compile did, for --compile's report. */
struct image_stats {
	size_t n_apis, n_subscriptions, bytes;
};

/* Validates the document buf[0..len) exactly as gw_load_buffer() does and
 * writes its image to image_path (atomically: a temporary file in the same
 * directory, fsync, rename). doc is the stat(2) of the document file the
 * image will stand beside (its identity is recorded: a later stat of the
 * document must match it); the image gets the document's group and at most
 * its mode. Returns 0, or -1 with errs filled (the old image untouched). */
int image_compile_buffer(const char *buf, size_t len, const struct stat *doc,
			 const char *image_path, struct cfg_errors *errs,
			 struct image_stats *stats);
/* Reads doc_path (at most GW_MAX_DOCUMENT_BYTES) and compiles it to
 * doc_path + IMAGE_SUFFIX. Returns 0, or -1 with errs filled. */
int image_compile_file(const char *doc_path, struct cfg_errors *errs, struct image_stats *stats);

/* Maps the image open on fd (st its fstat) and checks it. doc is the stat of
 * the document it must have been compiled from; NULL accepts any (a stale
 * image is still a last good configuration). Returns the gateway (its gateway
 * section; the APIs come from the image), or NULL with *status and why. fd is
 * not closed. */
struct gateway *image_open(int fd, const struct stat *st, const struct stat *doc,
			   enum image_status *status, char *why, size_t whylen);
/* Unmaps the image and frees every gateway compiled from it. NULL is fine. */
void image_release(struct gw_image *img);

/* Marks the image damaged (a reader found something the checksums could
 * not: a block that answers for another API). */
void image_set_damaged(struct gw_image *img, const char *why);
/* Whether a page failed its checksum since the image was opened (the reason
 * in why, when not NULL). */
int image_damaged(const struct gw_image *img, const char **why);
/* Whether the image was compiled from the document whose stat is doc. */
int image_compiled_from(const struct gw_image *img, const struct stat *doc);
/* The generation and the number of APIs recorded in the image. */
int64_t image_generation(const struct gw_image *img);
size_t image_n_apis(const struct gw_image *img);

/* ---- for route.c and products.c ------------------------------------------ */

/* The route table's hash of a decoded, case-folded API path (segments joined
 * by NUL bytes). */
uint64_t image_key_hash(const char *key, size_t len);
/* The API that serves a path: key is the request path's decoded, case-folded
 * segments joined by NUL, ends[k] the length of its first k segments
 * (ends[0] = 0), host the normalised Host or NULL. Tries the deepest prefix
 * first, as the route table does. Returns the API's index with *used the
 * number of segments its path has, -1 when none, -2 when the image is
 * damaged. */
long image_find_api(struct gw_image *img, const char *key, const size_t *ends, size_t nseg,
		    const char *host, size_t *used);
/* The gateway that holds API index alone, compiled on first use. NULL when
 * the image is damaged or memory ran out (logged). */
const struct gateway *image_api(struct gw_image *img, size_t index);
/* The subscription whose key has this digest, resolved against gw (a gateway
 * from image_api()), written to *out; returns out, or NULL. Its strings are
 * the image's: valid while gw is held. */
const struct gw_subscription *image_find_key(const struct gateway *gw,
					     const unsigned char digest[32],
					     struct gw_subscription *out);

#endif
