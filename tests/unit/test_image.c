/*
 * test_image — the compiled image (policy/image.c) loses nothing (issue 9,
 * item 5, at the library level):
 *
 *  - equivalence: documents built here (hostnames, several APIs at one path,
 *    nested paths, "", escapes and mixed case, {param} and {*rest}, products
 *    with policies, subscriptions of every scope and state, named values in
 *    policies and credentials, set-backend-service both ways, global
 *    policies), a generated one, and every JSON document of the repository
 *    that loads: compiled to an image and opened, the image's gateway answers
 *    every request (hits, misses, wrong hosts, Host with port, upper case,
 *    trailing dot, bad paths) as the in-memory gateway does — status, API,
 *    operation, rest, parameters, subscription keys (id, state, expiry,
 *    whether the scope covers the API) and the shape of the plans;
 *  - damage: single-byte flips over the whole file of a 300-API image are
 *    refused at open or give the undamaged answers or ROUTE_UNAVAILABLE,
 *    never another API; a flip in a page the reader checks is always
 *    noticed; truncated, empty, zero-filled, other-format and other-build
 *    files are refused; a stale image is IMAGE_STALE unless doc is NULL;
 *    images whose checksums were made right after a change (forged) are
 *    still refused where an offset leaves its section or is misaligned;
 *  - more APIs than IMAGE_CACHE_MAX: eviction changes no answer;
 *  - compiling: a document that does not load gives gw_load_buffer's errors
 *    and leaves the old image; the image is never readable by more than
 *    its document.
 *
 * Every request path is copied into a heap buffer of its exact length, so
 * ASan catches a read past it. The header layout is mirrored here (struct
 * hdr) because the tests patch it: keep it in step with policy/image.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define TMPDIR_FILE "config.json"
#include "tests/unit/tmpdir.h"

#include "policy/gateway.h"
#include "policy/image.h"
#include "policy/policies.h"
#include "policy/polmod.h"
#include "policy/products.h"
#include "policy/route.h"

/* ---- the header, as policy/image.c writes it ------------------------------ */

struct hdr_section {
	uint64_t off, len;
};

struct hdr {
	char magic[8];
	uint32_t format_version, header_size, byte_order, page_size;
	uint8_t layout_id[16];
	int64_t generation;
	uint64_t doc_dev, doc_ino, doc_size;
	int64_t doc_mtime_ns;
	uint8_t doc_sha256[32];
	uint64_t file_size, n_pages, n_apis, n_subs;
	uint32_t max_depth, route_buckets, sub_buckets, reserved;
	struct hdr_section sec[6];	/* BASE ROUTES BLOCKS APIDIR SUBS PAGESUMS */
	uint64_t pagesums_sum;
	uint64_t header_sum;
};

#define PAGE 4096u
#define SEC_BASE 0
#define SEC_PAGESUMS 5

/* image.c's checksum, to patch a header and keep it consistent */
static uint64_t checksum(const unsigned char *p, size_t n)
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

/* ---- helpers -------------------------------------------------------------- */

static char *dq(const char *s)
{
	char *r = strdup(s);

	assert_non_null(r);
	for (char *p = r; *p; p++)
		if (*p == '\'')
			*p = '"';
	return r;
}

static void write_file(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static unsigned char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	long n;

	if (!f)
		return NULL;
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	assert_int_equal(fseek(f, 0, SEEK_SET), 0);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	buf[n] = '\0';
	*len = (size_t)n;
	return buf;
}

/* A growing string, for generated documents and request paths. */
struct str {
	char *p;
	size_t len, cap;
};

static void str_add(struct str *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void str_add(struct str *s, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(s->p ? s->p + s->len : NULL, s->p ? s->cap - s->len : 0, fmt, ap);
		va_end(ap);
		assert_true(n >= 0);
		if (s->p && s->len + (size_t)n < s->cap)
			break;
		s->cap = (s->cap + (size_t)n + 1) * 2;
		s->p = realloc(s->p, s->cap);
		assert_non_null(s->p);
	}
	s->len += (size_t)n;
}

static struct gateway *load_mem(const char *doc, size_t len, int quiet)
{
	struct cfg_errors errs = CFG_ERRORS_INIT;
	struct gateway *gw = gw_load_buffer(doc, len, &errs);

	for (size_t i = 0; !quiet && i < errs.n; i++)
		print_message("    error: %s\n", errs.msg[i]);
	cfg_errors_release(&errs);
	return gw;
}

/* Opens path as an image; doc as image_open takes it. */
static struct gateway *open_image(const char *path, const struct stat *doc,
				  enum image_status *status)
{
	char why[256];
	struct stat st;
	struct gateway *gw;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	why[0] = '\0';
	gw = image_open(fd, &st, doc, status, why, sizeof(why));
	close(fd);
	if (!gw)
		assert_true(why[0] != '\0');
	else
		assert_int_equal(*status, IMAGE_OK);
	return gw;
}

/* Writes doc to f->path, compiles f->path.image, opens it with the
 * document's stat. */
static struct gateway *compile_and_open(const struct fixture *f, const char *doc, size_t len,
					char *image_path, size_t plen, struct stat *doc_st)
{
	struct cfg_errors errs = CFG_ERRORS_INIT;
	struct image_stats stats;
	enum image_status status;
	struct gateway *gw;

	write_file(f->path, doc, len);
	assert_int_equal(stat(f->path, doc_st), 0);
	snprintf(image_path, plen, "%s%s", f->path, IMAGE_SUFFIX);
	if (image_compile_buffer(doc, len, doc_st, image_path, &errs, &stats) != 0) {
		for (size_t i = 0; i < errs.n; i++)
			print_message("    compile error: %s\n", errs.msg[i]);
		fail_msg("image_compile_buffer failed");
	}
	cfg_errors_release(&errs);
	gw = open_image(image_path, doc_st, &status);
	assert_non_null(gw);
	assert_non_null(gw->image);
	assert_int_equal(image_n_apis(gw->image), stats.n_apis);
	return gw;
}

/* ---- the requests ---------------------------------------------------------- */

struct req {
	char *host;		/* NULL: no Host */
	char *method;
	char *path;
	size_t len;
};

struct reqs {
	struct req *v;
	size_t n, cap;
};

static void req_add(struct reqs *r, const char *host, const char *method, const char *path,
		    size_t len)
{
	struct req *q;

	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 256;
		r->v = realloc(r->v, r->cap * sizeof(*r->v));
		assert_non_null(r->v);
	}
	q = &r->v[r->n++];
	q->host = host ? strdup(host) : NULL;
	q->method = strdup(method);
	/* exactly len bytes, no terminator */
	q->path = malloc(len ? len : 1);
	assert_true((!host || q->host) && q->method && q->path);
	memcpy(q->path, path, len);
	q->len = len;
}

static void reqs_release(struct reqs *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->v[i].host);
		free(r->v[i].method);
		free(r->v[i].path);
	}
	free(r->v);
	memset(r, 0, sizeof(*r));
}

/* A template with every {param} given a value and {*rest} rest (which may
 * be empty). */
static void instantiate(struct str *s, const char *tmpl, const char *rest)
{
	unsigned k = 0;

	for (const char *p = tmpl; *p; p++) {
		if (*p == '{') {
			const char *end = strchr(p, '}');

			assert_non_null(end);
			if (p[1] == '*')
				str_add(s, "%s", rest);
			else
				str_add(s, "v%u", k++);
			p = end;
			continue;
		}
		str_add(s, "%c", *p);
	}
}

static void upper_ascii(char *p)
{
	for (; *p; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
}

/* The Host values to try against an API: none, each hostname as written,
 * upper case, with a port, with a trailing dot, and hosts nobody names. */
static void hosts_for(const struct gw_api *api, struct str *hosts, size_t *n)
{
	static const char *const others[] = { "other.example", "", ":80", "[::1]:8443" };

	/* NUL-separated in hosts->p */
	*n = 0;
	for (size_t i = 0; i < api->n_hostnames; i++) {
		const char *h = api->hostnames[i];
		char up[300];

		str_add(hosts, "%s%c", h, 0);
		snprintf(up, sizeof(up), "%s", h);
		upper_ascii(up);
		str_add(hosts, "%s%c", up, 0);
		str_add(hosts, "%s:8080%c", h, 0);
		if (h[0] != '[')
			str_add(hosts, "%s.%c", up, 0);
		*n += h[0] != '[' ? 4 : 3;
	}
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		str_add(hosts, "%s%c", others[i], 0);
		(*n)++;
	}
}

static void add_with_hosts(struct reqs *r, const struct gw_api *api, const char *method,
			   const char *path, size_t len)
{
	struct str hosts = { 0 };
	size_t nh;
	const char *h;

	req_add(r, NULL, method, path, len);
	hosts_for(api, &hosts, &nh);
	h = hosts.p;
	for (size_t i = 0; i < nh; i++) {
		req_add(r, h, method, path, len);
		h += strlen(h) + 1;
	}
	free(hosts.p);
}

/* Requests for every API and operation of gw, and misses and bad paths. */
static void reqs_for(const struct gateway *gw, struct reqs *r)
{
	static const char *const bad[] = {
		"", "/", "//", "noslash", "/..", "/a/../b", "/%2e%2E/x", "/a%2f..%2fb", "/%zz",
		"/a%00b", "/a\\..\\b", "/%", "/a%2", "/%0d%0a", "/./x", "/unknown/path",
		"/%2F%2F", "/x//y///", "/%e2%82%ac/%C3%A9",
	};
	static const char *const methods[] = { "GET", "POST", "DELETE", "get" };
	struct str deep = { 0 };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		req_add(r, NULL, "GET", bad[i], strlen(bad[i]));
		req_add(r, "other.example", "GET", bad[i], strlen(bad[i]));
	}
	for (int i = 0; i < 130; i++)
		str_add(&deep, "/s");
	req_add(r, NULL, "GET", deep.p, deep.len);
	free(deep.p);

	for (size_t a = 0; a < gw->n_apis; a++) {
		const struct gw_api *api = &gw->apis[a];
		struct str prefix = { 0 }, up = { 0 }, enc = { 0 }, s = { 0 };
		const char *p = api->path ? api->path : "";

		str_add(&prefix, "%s%s", *p ? "/" : "", p);
		/* the same, upper case, and with its first letter percent-encoded */
		str_add(&up, "%s", prefix.p);
		upper_ascii(up.p);
		if (prefix.len > 1 && prefix.p[1] != '%')
			str_add(&enc, "/%%%02X%s", (unsigned char)prefix.p[1], prefix.p + 2);
		else
			str_add(&enc, "%s", prefix.p);

		const char *const prefixes[] = { prefix.p, up.p, enc.p };

		for (size_t v = 0; v < 3; v++) {
			const char *pre = prefixes[v];

			s.len = 0;
			str_add(&s, "%s", pre);
			add_with_hosts(r, api, "GET", s.p, s.len);
			str_add(&s, "/");
			add_with_hosts(r, api, "GET", s.p, s.len);
			str_add(&s, "zz/Deeper/%%41");
			add_with_hosts(r, api, "PATCH", s.p, s.len);
			/* a miss: the API's path one level down */
			s.len = 0;
			str_add(&s, "/zz-miss%s", pre);
			add_with_hosts(r, api, "GET", s.p, s.len);
			for (size_t o = 0; o < api->n_operations; o++) {
				const struct gw_operation *op = &api->operations[o];

				for (int rest = 0; rest < 2; rest++) {
					s.len = 0;
					str_add(&s, "%s", pre);
					instantiate(&s, op->url_template, rest ? "r1/R%2F2" : "");
					add_with_hosts(r, api, strcmp(op->method, "*") ? op->method : "PUT",
						       s.p, s.len);
					if (v == 0)
						for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++)
							req_add(r, api->n_hostnames ? api->hostnames[0] : NULL,
								methods[m], s.p, s.len);
				}
			}
		}
		free(prefix.p);
		free(up.p);
		free(enc.p);
		free(s.p);
	}
}

/* ---- comparing the two gateways -------------------------------------------- */

static void backend_equal(const struct gw_backend *x, const struct gw_backend *y)
{
	assert_string_equal(x->id, y->id);
	assert_string_equal(x->url, y->url);
	assert_int_equal(x->timeout_ms, y->timeout_ms);
	assert_int_equal(x->n_pool, y->n_pool);
	for (size_t i = 0; i < x->n_pool; i++)
		assert_string_equal(x->pool[i].url, y->pool[i].url);
	assert_true((x->basic_password == NULL) == (y->basic_password == NULL));
	if (x->basic_password)
		assert_string_equal(x->basic_password, y->basic_password);
	assert_int_equal(x->n_cred_headers, y->n_cred_headers);
	for (size_t i = 0; i < x->n_cred_headers; i++)
		assert_string_equal(x->cred_headers[i].value, y->cred_headers[i].value);
	assert_int_equal(x->n_cred_query, y->n_cred_query);
	for (size_t i = 0; i < x->n_cred_query; i++)
		assert_string_equal(x->cred_query[i].value, y->cred_query[i].value);
}

static void plan_equal(const struct pol_plan *a, const struct pol_plan *b, const char *what)
{
	assert_non_null(a);
	assert_non_null(b);
	for (int s = 0; s < POL_N_SECTIONS; s++) {
		if (a->s[s].n != b->s[s].n)
			fail_msg("%s: section %s has %zu policies in memory, %zu in the image", what,
				 pol_section_name((enum pol_section_id)s), a->s[s].n, b->s[s].n);
		for (size_t i = 0; i < a->s[s].n; i++) {
			const struct pol_policy *x = a->s[s].v[i], *y = b->s[s].v[i];

			assert_string_equal(pol_policy_name(x), pol_policy_name(y));
			/* set-backend-service's target, by id or by URL */
			if (x->kind == POL_MODULE && x->mod->backend) {
				const struct gw_backend *bx = x->mod->backend(x->conf);
				const struct gw_backend *by = y->mod->backend(y->conf);

				assert_true((bx == NULL) == (by == NULL));
				if (bx)
					backend_equal(bx, by);
			}
			if (x->counter_prefix || y->counter_prefix) {
				assert_non_null(x->counter_prefix);
				assert_non_null(y->counter_prefix);
				assert_string_equal(x->counter_prefix, y->counter_prefix);
			}
		}
	}
}

static const struct gw_product *product_by_id(const struct gw_api *api, const char *id)
{
	for (size_t k = 0; k < api->n_products; k++)
		if (strcmp(api->products[k]->id, id) == 0)
			return api->products[k];
	return NULL;
}

struct digests {
	unsigned char (*v)[32];
	size_t n;
};

/* Every key digest of gw, and a few nobody has. */
static void digests_for(const struct gateway *gw, struct digests *d)
{
	size_t n = 4;

	for (size_t i = 0; i < gw->n_subscriptions; i++)
		n += gw->subscriptions[i].n_keys;
	d->v = calloc(n, sizeof(*d->v));
	assert_non_null(d->v);
	d->n = 0;
	for (size_t i = 0; i < gw->n_subscriptions; i++)
		for (size_t k = 0; k < gw->subscriptions[i].n_keys; k++)
			memcpy(d->v[d->n++], gw->subscriptions[i].keys[k], 32);
	for (size_t i = 0; i < 4; i++) {
		memset(d->v[d->n], (int)(0x11 * (i + 1)), 32);
		/* same first bytes as a real key (same bucket), differs at the end */
		if (i == 3 && d->n > 3) {
			memcpy(d->v[d->n], d->v[0], 32);
			d->v[d->n][31] ^= 1;
		}
		d->n++;
	}
}

/* One subscription look-up on both sides. Returns 0 when equal; -1 when the
 * image side failed because its image is damaged (allowed only then). */
static int key_equal(const struct route_match *a, const struct route_match *b,
		     const unsigned char digest[32], int allow_damage)
{
	struct gw_subscription xb, yb;
	const struct gw_subscription *x = products_find_key(a->gw, digest, &xb);
	const struct gw_subscription *y = products_find_key(b->gw, digest, &yb);

	if (x && !y && allow_damage && image_damaged(b->gw->image, NULL))
		return -1;
	if (!x || !y) {
		if (x != NULL || y != NULL)
			fail_msg("key of '%s' found on one side only", x ? x->id : y->id);
		return 0;
	}
	assert_string_equal(x->id, y->id);
	assert_int_equal(x->scope, y->scope);
	assert_int_equal(x->active, y->active);
	assert_int_equal(x->expires, y->expires);
	assert_int_equal(products_sub_covers(x, a->api), products_sub_covers(y, b->api));
	if (x->product && products_sub_covers(x, a->api)) {
		/* the plan the engine runs for this subscriber */
		assert_non_null(y->product);
		assert_string_equal(x->product->id, y->product->id);
		plan_equal(pol_plan_for(a->api, a->op, x->product),
			   pol_plan_for(b->api, b->op, y->product), "subscription's product plan");
	}
	return 0;
}

struct tally {
	size_t requests, matched, keys;
	size_t by_status[ROUTE_UNAVAILABLE + 1];
};

/* route_match of one request on both: same status, API, operation, rest
 * and parameters; then keys and plans. *b_status gets the image's status. */
static void compare_one(const struct gateway *mem, const struct gateway *img, const struct req *q,
			const struct digests *d, int with_plans, struct tally *t)
{
	struct route_match a, b;
	enum route_status sa = route_match(mem, q->path, q->len, q->host, q->method, &a);
	enum route_status sb = route_match(img, q->path, q->len, q->host, q->method, &b);

	t->requests++;
	t->by_status[sa]++;
	if (sa != sb)
		fail_msg("'%.*s' host '%s' %s: status %d in memory, %d from the image", (int)q->len,
			 q->path, q->host ? q->host : "(none)", q->method, sa, sb);
	if (sa != ROUTE_OK && sa != ROUTE_NO_OPERATION)
		return;
	t->matched++;
	assert_ptr_equal(a.gw, mem);
	assert_non_null(b.gw);
	assert_true(b.gw != img);
	assert_string_equal(a.api->id, b.api->id);
	assert_true((a.op == NULL) == (b.op == NULL));
	if (a.op) {
		assert_string_equal(a.op->id, b.op->id);
		assert_string_equal(a.op->method, b.op->method);
	}
	assert_true(b.rest >= q->path && b.rest + b.rest_len == q->path + q->len);
	assert_int_equal(a.rest - q->path, b.rest - q->path);
	assert_int_equal(a.rest_len, b.rest_len);
	assert_int_equal(a.n_params, b.n_params);
	for (size_t i = 0; i < a.n_params; i++) {
		assert_string_equal(a.params[i].name, b.params[i].name);
		assert_int_equal(a.params[i].raw - q->path, b.params[i].raw - q->path);
		assert_int_equal(a.params[i].raw_len, b.params[i].raw_len);
	}
	if (sa != ROUTE_OK || !with_plans)
		return;
	/* what the forwarder reads from the API */
	assert_int_equal(a.api->subscription_required, b.api->subscription_required);
	assert_string_equal(a.api->subscription_key_header, b.api->subscription_key_header);
	assert_string_equal(a.api->subscription_key_query, b.api->subscription_key_query);
	assert_true((a.api->backend == NULL) == (b.api->backend == NULL));
	if (a.api->backend)
		backend_equal(a.api->backend, b.api->backend);
	/* the products of the API, in order, and every plan of this operation */
	assert_int_equal(a.api->n_products, b.api->n_products);
	for (size_t k = 0; k < a.api->n_products; k++)
		assert_string_equal(a.api->products[k]->id, b.api->products[k]->id);
	plan_equal(pol_plan_for(a.api, a.op, NULL), pol_plan_for(b.api, b.op, NULL), "no product");
	for (size_t k = 0; k < a.api->n_products; k++)
		plan_equal(pol_plan_for(a.api, a.op, a.api->products[k]),
			   pol_plan_for(b.api, b.op, product_by_id(b.api, a.api->products[k]->id)),
			   a.api->products[k]->id);
	for (size_t k = 0; k < d->n; k++) {
		assert_int_equal(key_equal(&a, &b, d->v[k], 0), 0);
		t->keys++;
	}
}

/* The whole comparison for one document. */
static void equivalent(const struct fixture *f, const char *doc, size_t len, const char *name,
		       struct tally *t)
{
	struct gateway *mem = load_mem(doc, len, 0), *img;
	char image_path[256];
	struct stat doc_st;
	struct reqs r = { 0 };
	struct digests d;

	if (!mem)
		fail_msg("'%s' does not load", name);
	img = compile_and_open(f, doc, len, image_path, sizeof(image_path), &doc_st);
	assert_int_equal(image_n_apis(img->image), mem->n_apis);
	assert_int_equal(image_generation(img->image), mem->generation);
	/* the gateway section comes through whole */
	assert_int_equal(img->generation, mem->generation);
	assert_string_equal(img->health_path, mem->health_path);
	assert_int_equal(img->max_request_body_bytes, mem->max_request_body_bytes);
	assert_int_equal(img->forwarded_headers, mem->forwarded_headers);
	assert_int_equal(img->n_trusted_proxies, mem->n_trusted_proxies);
	assert_true((img->metrics_path == NULL) == (mem->metrics_path == NULL));
	reqs_for(mem, &r);
	digests_for(mem, &d);
	for (size_t i = 0; i < r.n; i++)
		compare_one(mem, img, &r.v[i], &d, 1, t);
	assert_false(image_damaged(img->image, NULL));
	free(d.v);
	reqs_release(&r);
	gw_free(img);
	gw_free(mem);
}

/* ---- the documents ----------------------------------------------------------- */

#define KA "6ab9f1eb8f7d3388f4f9d586f66e99fd54080df2c446f0e58668b09c08a16dd0"
#define KB "015f7e6bc5aeaf483724089e9252cc13b50951a6b69412522765cff4d780306e"
#define KC "2f5052c9fd15b19a18c584d01363568198613f0c34e84409ef7938709a159ec2"
#define KD "94091dd64a21ffe94214bc6d17deeb43873a5cf2f0a71b4b5caa9a5c81b6967d"
#define KE "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define KF "aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define KG "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* Every feature the brief names, in one document. */
static const char doc_rich[] =
	"{'format':1,'generation':7,"
	"'gateway':{'health_path':'/h-{{hs}}','trusted_proxies':['10.0.0.0/8'],"
	"'max_request_body_bytes':4096,'forwarded_headers':false,"
	"'metrics':{'path':'/m','allow':['127.0.0.1/32']}},"
	"'named_values':{'hs':{'value':'abc'},'pass':{'value':'s3cret','secret':true},"
	"'hdr':{'value':'hv'},'key':{'value':'k3y','secret':true},'unused':{'value':'u'},"
	"'zhost':{'value':'z2.example'},'pk':{'value':'product-key','secret':true}},"
	"'backends':{"
	"'w':{'url':'https://w.example/v1','credentials':{'basic':{'username':'u','password':'{{pass}}'},"
	"'header':{'x-api-key':'{{key}}'},'query':{'appid':'{{hdr}}'}}},"
	"'x':{'url':'https://x.example'},"
	"'y':{'url':'https://y.example/base'},"
	"'z':{'pool':[{'url':'https://z1.example'},{'url':'https://{{zhost}}','priority':2}]},"
	"'only-by-id':{'url':'https://id.example'},"
	"'only-by-url':{'url':'https://url.example/u'},"
	"'only-in-product':{'url':'https://p.example','credentials':{'query':{'k':'{{pk}}'}}},"
	"'unused':{'url':'https://unused.example'}},"
	"'apis':["
	"{'id':'root','path':'','backend':'x','subscription_required':false},"
	"{'id':'shop-a','path':'shop','hostnames':['a.example','A2.Example.'],'backend':'w',"
	" 'operations':[{'id':'get-item','method':'GET','url_template':'/items/{id}'},"
	"  {'id':'put-item','method':'PUT','url_template':'/items/{id}'},"
	"  {'id':'new','method':'POST','url_template':'/items/new'},"
	"  {'id':'files','method':'*','url_template':'/files/{*rest}'}]},"
	"{'id':'shop-b','path':'/shop/','hostnames':['b.example','[2001:db8::1]'],'backend':'x',"
	" 'policies':{'inbound':[{'base':{}},{'set-backend-service':{'backend-id':'only-by-id'}}]}},"
	"{'id':'shop-any','path':'Shop','backend':'y',"
	" 'policies':{'inbound':[{'set-backend-service':{'base-url':'https://url.example/u'}}]}},"
	"{'id':'nested','path':'a/b','backend':'w',"
	" 'operations':[{'id':'deep','method':'GET','url_template':'/{x}/{y}'},"
	"  {'id':'deep-rest','method':'GET','url_template':'/{x}/{y}/{*rest}'}]},"
	"{'id':'outer','path':'a','backend':'x',"
	" 'operations':[{'id':'any','method':'*','url_template':'/{*rest}'},"
	"  {'id':'lit','method':'GET','url_template':'/b2/c'}]},"
	"{'id':'nested-host','path':'a/b/c','hostnames':['c.example'],'backend':'x'},"
	"{'id':'enc','path':'My-Api/V.2~x','backend':'x'},"
	"{'id':'punct','path':'a:b@c/$1;x=2,y*','backend':'x'},"
	"{'id':'mixed','path':'MiXeD/Case','hostnames':['Mixed.Example'],'backend':'x',"
	" 'operations':[{'id':'m1','method':'get','url_template':'/Lit/{p}'},"
	"  {'id':'m2','method':'*','url_template':'/Lit/{p}/{*rest}'}]},"
	"{'id':'quota','path':'q','backend':'z',"
	" 'policies':{'inbound':[{'base':{}},{'rate-limit':{'calls':5,'renewal-period':60}}],"
	"  'outbound':[{'base':{}},{'set-header':{'name':'X-S','value':'{{hdr}}'}}]},"
	" 'operations':[{'id':'op','method':'GET','url_template':'/x',"
	"  'policies':{'inbound':[{'base':{}},{'set-header':{'name':'X-O','value':'o'}}]}},"
	"  {'id':'op2','method':'POST','url_template':'/x/{id}'}]},"
	"{'id':'pool-member','path':'pm','backend':'x',"
	" 'policies':{'inbound':[{'set-backend-service':{'base-url':'https://z1.example'}}]}},"
	"{'id':'basic','path':'auth','backend':'x',"
	" 'policies':{'inbound':[{'authentication-basic':{'username':'u','password':'{{pass}}'}}]}}"
	"],"
	"'products':["
	"{'id':'p1','apis':['shop-a','quota'],"
	" 'policies':{'inbound':[{'base':{}},{'set-header':{'name':'X-P','value':'p1 {{hdr}}'}}]}},"
	"{'id':'p2','apis':['quota','nested','basic'],"
	" 'policies':{'inbound':[{'base':{}},{'rate-limit':{'calls':10,'renewal-period':1}}]}},"
	"{'id':'p3','apis':['outer','pool-member'],"
	" 'policies':{'backend':[{'set-backend-service':{'backend-id':'only-in-product'}}]}}],"
	"'subscriptions':["
	"{'id':'s-all','scope':'all','keys_sha256':['" KA "']},"
	"{'id':'s-api','scope':'api:shop-a','keys_sha256':['" KB "','" KE "']},"
	"{'id':'s-prod','scope':'product:p2','keys_sha256':['" KC "']},"
	"{'id':'s-susp','scope':'product:p1','state':'suspended','keys_sha256':['" KD "']},"
	"{'id':'s-exp','scope':'all','expires':'2020-01-01T00:00:00Z','keys_sha256':['" KF "']},"
	"{'id':'s-later','scope':'api:nested','expires':'2099-01-01T00:00:00+02:00',"
	" 'keys_sha256':['" KG "']}],"
	"'policies':{'inbound':[{'set-header':{'name':'X-G','value':'g'}}],"
	" 'outbound':[{'set-header':{'name':'X-GO','value':'{{hdr}}','exists-action':'append'}}]}"
	"}";

/* A small document with no products, subscriptions or global policies. */
static const char doc_plain[] =
	"{'format':1,'generation':1,'backends':{'b':{'url':'http://127.0.0.1:9'}},"
	"'apis':[{'id':'only','path':'only/here','backend':'b','subscription_required':false}]}";

/* n APIs over a few levels: parents and children, hostnames on some, several
 * APIs at one path, operations on half, products of 50 APIs each and
 * subscriptions of every scope. The caller frees it. */
static char *doc_generated(size_t n, size_t *len)
{
	struct str s = { 0 };

	str_add(&s, "{'format':1,'generation':%zu,'named_values':{'nv':{'value':'v','secret':true}},"
		"'backends':{'b':{'url':'http://127.0.0.1:9','credentials':{'header':"
		"{'x-k':'{{nv}}'}}},'c':{'url':'http://127.0.0.1:10'}},'apis':[", n);
	for (size_t i = 0; i < n; i++) {
		str_add(&s, "%s{'id':'api%zu','backend':'%s'", i ? "," : "", i, i % 5 ? "b" : "c");
		if (i % 10 == 0)
			str_add(&s, ",'path':'g%zu'", i / 10);
		else if (i % 10 == 9)
			/* at the path of the one before, for another host */
			str_add(&s, ",'path':'g%zu/A%zu','hostnames':['h%zu.example']", i / 10, i - 1, i);
		else
			str_add(&s, ",'path':'g%zu/a%zu'", i / 10, i);
		if (i % 10 == 8)
			str_add(&s, ",'hostnames':['h%zu.example','x%zu.example']", i, i % 3);
		if (i % 2)
			str_add(&s, ",'operations':[{'id':'o1','method':'GET','url_template':'/r/{id}'},"
				"{'id':'o2','method':'*','url_template':'/f/{*rest}'},"
				"{'id':'o3','method':'POST','url_template':'/r/new'}]");
		if (i % 7 == 0)
			str_add(&s, ",'policies':{'inbound':[{'base':{}},{'set-header':"
				"{'name':'X-A','value':'a%zu'}}]}", i);
		str_add(&s, "}");
	}
	str_add(&s, "],'products':[");
	for (size_t p = 0; p * 50 < n; p++) {
		str_add(&s, "%s{'id':'p%zu','apis':[", p ? "," : "", p);
		for (size_t i = p * 50; i < n && i < p * 50 + 50; i += 2)
			str_add(&s, "%s'api%zu'", i > p * 50 ? "," : "", i);
		str_add(&s, "],'policies':{'inbound':[{'base':{}},{'rate-limit':{'calls':%zu,"
			"'renewal-period':60}}]}}", p + 1);
	}
	str_add(&s, "],'subscriptions':[");
	for (size_t k = 0; k < 40; k++) {
		const char *scope = k % 3 == 0 ? "all" : k % 3 == 1 ? "api" : "product";

		str_add(&s, "%s{'id':'s%zu','scope':'%s", k ? "," : "", k, scope);
		if (k % 3 == 1)
			str_add(&s, ":api%zu", (k * 7) % n);
		else if (k % 3 == 2)
			str_add(&s, ":p%zu", k % ((n + 49) / 50));
		str_add(&s, "','keys_sha256':['%064zx']%s%s}", (size_t)(k * 0x9e3779b97f4a7c15ull + 1),
			k % 4 == 3 ? ",'state':'suspended'" : "",
			k % 5 == 4 ? ",'expires':'2021-06-01T00:00:00Z'" : "");
	}
	str_add(&s, "]}");
	for (char *p = s.p; *p; p++)
		if (*p == '\'')
			*p = '"';
	*len = s.len;
	return s.p;
}

/* ---- equivalence ------------------------------------------------------------- */

static void test_equivalent_built(void **state)
{
	struct fixture *f = *state;
	struct tally t = { 0 };
	char *rich = dq(doc_rich), *plain = dq(doc_plain), *gen;
	size_t glen;

	equivalent(f, rich, strlen(rich), "rich", &t);
	equivalent(f, plain, strlen(plain), "plain", &t);
	gen = doc_generated(60, &glen);
	equivalent(f, gen, glen, "generated", &t);
	print_message("    %zu requests (%zu ok, %zu no operation, %zu no API, %zu bad path), "
		      "%zu key look-ups\n", t.requests, t.by_status[ROUTE_OK],
		      t.by_status[ROUTE_NO_OPERATION], t.by_status[ROUTE_NO_API],
		      t.by_status[ROUTE_BAD_PATH], t.keys);
	/* the requests reach the APIs, and every kind of answer is compared */
	assert_true(t.matched > t.requests / 3);
	assert_true(t.by_status[ROUTE_NO_OPERATION] > 50);
	assert_true(t.by_status[ROUTE_NO_API] > 50);
	assert_true(t.by_status[ROUTE_BAD_PATH] > 20);
	assert_true(t.keys > 1000);
	free(rich);
	free(plain);
	free(gen);
}

/* Every JSON file under dir (recursively, build/ and dot files skipped). */
static void walk_json(const struct fixture *f, const char *dir, size_t *loaded, size_t *skipped,
		      struct tally *t)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d)) != NULL) {
		char path[1024];
		struct stat st;
		size_t n = strlen(e->d_name), len;
		unsigned char *buf;
		struct gateway *gw;

		if (e->d_name[0] == '.' || strcmp(e->d_name, "build") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (lstat(path, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			walk_json(f, path, loaded, skipped, t);
			continue;
		}
		if (!S_ISREG(st.st_mode) || n < 6 || strcmp(e->d_name + n - 5, ".json") != 0 ||
		    st.st_size > 4 * 1024 * 1024)
			continue;
		buf = read_file(path, &len);
		assert_non_null(buf);
		gw = load_mem((const char *)buf, len, 1);
		if (!gw) {
			(*skipped)++;
		} else {
			gw_free(gw);
			print_message("    %s\n", path);
			equivalent(f, (const char *)buf, len, path, t);
			(*loaded)++;
		}
		free(buf);
	}
	closedir(d);
}

static void test_equivalent_repository(void **state)
{
	struct fixture *f = *state;
	struct tally t = { 0 };
	size_t loaded = 0, skipped = 0;

	/* run from the top of the tree (tests/run-unit does) */
	walk_json(f, "examples", &loaded, &skipped, &t);
	walk_json(f, "tests", &loaded, &skipped, &t);
	print_message("    %zu documents compared (%zu requests), %zu JSON files not documents\n",
		      loaded, t.requests, skipped);
	/* examples/demo/config.json, tests/unit/data/full.json at least */
	assert_true(loaded >= 2);
	assert_true(t.matched > 0);
}

/* ---- damage --------------------------------------------------------------------- */

struct answer {
	enum route_status st;
	const char *api, *op;	/* borrowed from the in-memory gateway */
	ptrdiff_t rest;
	size_t n_params;
};

static void answer_of(const struct gateway *gw, const struct req *q, struct answer *a,
		      struct route_match *m)
{
	a->st = route_match(gw, q->path, q->len, q->host, q->method, m);
	a->api = a->op = NULL;
	a->rest = -1;
	a->n_params = 0;
	if (a->st == ROUTE_OK || a->st == ROUTE_NO_OPERATION) {
		a->api = m->api->id;
		a->op = m->op ? m->op->id : NULL;
		a->rest = m->rest - q->path;
		a->n_params = m->n_params;
	}
}

/* A request per API (an operation's, when it has some) and a few misses. */
static void damage_reqs(const struct gateway *gw, struct reqs *r)
{
	for (size_t a = 0; a < gw->n_apis; a++) {
		const struct gw_api *api = &gw->apis[a];
		struct str s = { 0 };

		str_add(&s, "/%s", api->path);
		if (api->n_operations)
			instantiate(&s, api->operations[0].url_template, "");
		req_add(r, api->n_hostnames ? api->hostnames[0] : NULL, "GET", s.p, s.len);
		free(s.p);
	}
	for (int i = 0; i < 200; i++) {
		char miss[64];
		int n = snprintf(miss, sizeof(miss), "/miss%d/g%d/x", i, i % 40);

		req_add(r, i % 2 ? "h9.example" : NULL, "GET", miss, (size_t)n);
	}
}

struct flips {
	size_t tried, refused_foreign, refused_damaged, opened_same, noticed_later;
	size_t in_data, in_data_noticed;
};

/* Opens the image at path, damaged; every answer must be the undamaged one
 * or ROUTE_UNAVAILABLE. Returns whether the damage was seen. */
static int check_damaged_copy(const char *path, const struct stat *doc_st, const struct gateway *mem,
			      const struct reqs *r, const struct answer *want,
			      const struct digests *d, struct flips *fl)
{
	enum image_status status;
	struct gateway *img = open_image(path, doc_st, &status);
	int seen = 0, unavailable = 0;

	if (!img) {
		assert_true(status == IMAGE_DAMAGED || status == IMAGE_FOREIGN);
		if (status == IMAGE_FOREIGN)
			fl->refused_foreign++;
		else
			fl->refused_damaged++;
		return 1;
	}
	for (size_t i = 0; i < r->n; i++) {
		struct route_match m, mm;
		struct answer got;

		answer_of(img, &r->v[i], &got, &m);
		if (got.st == ROUTE_UNAVAILABLE) {
			assert_true(image_damaged(img->image, NULL));
			unavailable = 1;
			continue;
		}
		if (got.st != want[i].st)
			fail_msg("'%.*s': status %d from a damaged image, %d undamaged",
				 (int)r->v[i].len, r->v[i].path, got.st, want[i].st);
		if (got.api) {
			assert_string_equal(got.api, want[i].api);
			assert_true((got.op == NULL) == (want[i].op == NULL));
			if (got.op)
				assert_string_equal(got.op, want[i].op);
			assert_int_equal(got.rest, want[i].rest);
			assert_int_equal(got.n_params, want[i].n_params);
			/* keys once, on the first API's gateway */
			if (i == 0) {
				assert_int_equal(route_match(mem, r->v[i].path, r->v[i].len,
							     r->v[i].host, r->v[i].method, &mm),
						 want[i].st);
				for (size_t k = 0; k < d->n; k++)
					key_equal(&mm, &m, d->v[k], 1);
			}
		}
	}
	seen = image_damaged(img->image, NULL);
	assert_true(seen || !unavailable);
	if (seen)
		fl->noticed_later++;
	else
		fl->opened_same++;
	gw_free(img);
	return seen;
}

static void flip_byte(const char *path, size_t off)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	unsigned char c;

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, (off_t)off), 1);
	c ^= 0x20;
	assert_int_equal(pwrite(fd, &c, 1, (off_t)off), 1);
	close(fd);
}

static void test_damage_flips(void **state)
{
	struct fixture *f = *state;
	char *doc, image_path[256], copy[256];
	size_t len, size;
	struct stat doc_st;
	struct gateway *mem, *img;
	struct reqs r = { 0 };
	struct answer *want;
	struct digests d;
	struct flips fl = { 0 };
	unsigned char *bytes;
	struct hdr h;
	const size_t n_flips = 601;	/* prime: the offsets fall everywhere in a page */

	doc = doc_generated(300, &len);
	mem = load_mem(doc, len, 0);
	assert_non_null(mem);
	img = compile_and_open(f, doc, len, image_path, sizeof(image_path), &doc_st);
	damage_reqs(mem, &r);
	digests_for(mem, &d);
	want = calloc(r.n, sizeof(*want));
	assert_non_null(want);
	for (size_t i = 0; i < r.n; i++) {
		struct route_match m;
		struct answer a;

		answer_of(mem, &r.v[i], &want[i], &m);
		answer_of(img, &r.v[i], &a, &m);
		assert_int_equal(a.st, want[i].st);
	}
	gw_free(img);

	bytes = read_file(image_path, &size);
	assert_non_null(bytes);
	memcpy(&h, bytes, sizeof(h));
	assert_int_equal(h.header_size, sizeof(h));
	assert_int_equal(h.file_size, size);
	print_message("    image of %zu bytes, %llu pages\n", size, (unsigned long long)h.n_pages);
	snprintf(copy, sizeof(copy), "%s/copy.image", f->dir);
	write_file(copy, bytes, size);

	for (size_t i = 0; i < n_flips; i++) {
		size_t off = i * (size / n_flips) + i % 13;
		int in_data, seen;

		if (off >= size)
			continue;
		fl.tried++;
		flip_byte(copy, off);
		seen = check_damaged_copy(copy, &doc_st, mem, &r, want, &d, &fl);
		flip_byte(copy, off);
		/* the header and the page-sum table are checked at open; the
		 * pages between them when read, and this sweep reads them all;
		 * the rest of page 0 is padding that nothing reads */
		in_data = off >= PAGE && off < h.sec[SEC_PAGESUMS].off;
		if (off < sizeof(h) || off >= h.sec[SEC_PAGESUMS].off || in_data) {
			if (!seen)
				fail_msg("a flip at %zu (of %zu) went unnoticed", off, size);
		}
		fl.in_data += (size_t)in_data;
		fl.in_data_noticed += (size_t)(in_data && seen);
	}
	print_message("    %zu flips: %zu refused as foreign, %zu as damaged at open, %zu noticed "
		      "when read, %zu harmless (page 0 padding)\n", fl.tried, fl.refused_foreign,
		      fl.refused_damaged, fl.noticed_later, fl.opened_same);
	assert_true(fl.tried > 500);
	assert_true(fl.in_data > 400);
	assert_int_equal(fl.in_data_noticed, fl.in_data);
	/* the undamaged copy still answers as before */
	assert_int_equal(check_damaged_copy(copy, &doc_st, mem, &r, want, &d, &fl), 0);

	free(bytes);
	free(want);
	free(d.v);
	reqs_release(&r);
	gw_free(mem);
	free(doc);
}

/* More APIs than a process keeps compiled (IMAGE_CACHE_MAX): the cache is
 * emptied between two route_match calls and the answers do not change. */
static void test_cache_eviction(void **state)
{
	struct fixture *f = *state;
	size_t len, n = IMAGE_CACHE_MAX + 150;
	char *doc = doc_generated(n, &len), image_path[256];
	struct gateway *mem = load_mem(doc, len, 0), *img;
	struct stat doc_st;
	struct reqs r = { 0 };
	struct digests d;
	struct tally t = { 0 };

	assert_non_null(mem);
	img = compile_and_open(f, doc, len, image_path, sizeof(image_path), &doc_st);
	damage_reqs(mem, &r);
	digests_for(mem, &d);
	/* forwards, backwards, forwards: every API compiled again after eviction */
	for (int pass = 0; pass < 3; pass++)
		for (size_t i = 0; i < r.n; i++)
			compare_one(mem, img, &r.v[pass == 1 ? r.n - 1 - i : i], &d, 1, &t);
	assert_true(t.matched >= 3 * n);
	assert_false(image_damaged(img->image, NULL));
	free(d.v);
	reqs_release(&r);
	gw_free(img);
	gw_free(mem);
	free(doc);
}

/* ---- forged images: damage that the checksums do not see ----------------------
 *
 * An image whose checksums were made right after a change (a writer with a
 * bug; trust keeps out anyone else) must still never be read outside the
 * file or a section: the reader checks every offset it follows. */

#define SEC_ROUTES 1
#define SEC_APIDIR 3
#define SEC_SUBS 4

/* Makes the page sums, their table's sum and the header's sum right. */
static void repair(unsigned char *b, size_t size)
{
	struct hdr h;

	memcpy(&h, b, sizeof(h));
	for (uint64_t pg = 1; pg <= h.n_pages; pg++) {
		uint64_t sum = checksum(b + pg * PAGE, PAGE);

		memcpy(b + h.sec[SEC_PAGESUMS].off + (pg - 1) * 8, &sum, 8);
	}
	h.pagesums_sum = checksum(b + h.sec[SEC_PAGESUMS].off, h.sec[SEC_PAGESUMS].len);
	h.header_sum = checksum((const unsigned char *)&h, offsetof(struct hdr, header_sum));
	memcpy(b, &h, sizeof(h));
	assert_true(h.file_size == size);
}

static void put64(unsigned char *b, uint64_t off, uint64_t v)
{
	memcpy(b + off, &v, 8);
}

static uint64_t get64(const unsigned char *b, uint64_t off)
{
	uint64_t v;

	memcpy(&v, b + off, 8);
	return v;
}

enum forgery {
	FORGE_BLOCK_LEN_MAX,	/* API 0's block length 2^64 - 1 */
	FORGE_BLOCK_LEN_LONG,	/* API 0's block runs past its section */
	FORGE_BLOCK_IN_PAGE0,	/* API 0's block in the header page */
	FORGE_ENTRIES_ODD,	/* every route entry offset odd */
	FORGE_ENTRIES_FAR,	/* every route entry offset past its section */
	FORGE_SUBS_ODD,		/* every subscription record offset odd */
	FORGE_SUBS_FAR,		/* every subscription record offset past its section */
	FORGE_N_APIS,		/* more APIs than the directory holds */
	FORGE_N,
};

static void forge(unsigned char *b, const struct hdr *h, enum forgery what)
{
	const struct hdr_section *dir = &h->sec[SEC_APIDIR], *rt = &h->sec[SEC_ROUTES],
				 *subs = &h->sec[SEC_SUBS];
	struct hdr nh;

	switch (what) {
	case FORGE_BLOCK_LEN_MAX:
		put64(b, dir->off + 8, UINT64_MAX);
		break;
	case FORGE_BLOCK_LEN_LONG:
		put64(b, dir->off + 8, h->sec[2].len + 4096);
		break;
	case FORGE_BLOCK_IN_PAGE0:
		put64(b, dir->off, 16);
		break;
	case FORGE_ENTRIES_ODD:
	case FORGE_ENTRIES_FAR:
		for (uint64_t i = 0; i < h->route_buckets; i++) {
			uint64_t at = rt->off + i * 16 + 8;

			if (get64(b, at))
				put64(b, at, what == FORGE_ENTRIES_ODD ? get64(b, at) + 1 :
				      rt->len + 8 * i);
		}
		break;
	case FORGE_SUBS_ODD:
	case FORGE_SUBS_FAR:
		for (uint64_t i = 0; i < h->sub_buckets; i++) {
			uint64_t at = subs->off + i * 8;

			if (get64(b, at))
				put64(b, at, what == FORGE_SUBS_ODD ? get64(b, at) + 4 :
				      subs->len - 8);
		}
		break;
	case FORGE_N_APIS:
		memcpy(&nh, b, sizeof(nh));
		nh.n_apis = dir->len / 16 + 1;
		memcpy(b, &nh, sizeof(nh));
		break;
	case FORGE_N:
		break;
	}
}

static void test_forged(void **state)
{
	struct fixture *f = *state;
	size_t len, size;
	char *doc = doc_generated(40, &len), image_path[256], copy[256];
	struct gateway *mem = load_mem(doc, len, 0), *img;
	struct stat doc_st;
	struct reqs r = { 0 };
	struct answer *want;
	struct digests d;
	struct flips fl = { 0 };
	unsigned char *bytes, *b;
	struct hdr h;

	assert_non_null(mem);
	img = compile_and_open(f, doc, len, image_path, sizeof(image_path), &doc_st);
	gw_free(img);
	damage_reqs(mem, &r);
	digests_for(mem, &d);
	want = calloc(r.n, sizeof(*want));
	assert_non_null(want);
	for (size_t i = 0; i < r.n; i++) {
		struct route_match m;

		answer_of(mem, &r.v[i], &want[i], &m);
	}
	bytes = read_file(image_path, &size);
	assert_non_null(bytes);
	memcpy(&h, bytes, sizeof(h));
	b = malloc(size);
	assert_non_null(b);
	snprintf(copy, sizeof(copy), "%s/forged.image", f->dir);
	for (int what = 0; what < FORGE_N; what++) {
		memcpy(b, bytes, size);
		forge(b, &h, (enum forgery)what);
		repair(b, size);
		write_file(copy, b, size);
		if (!check_damaged_copy(copy, NULL, mem, &r, want, &d, &fl))
			fail_msg("forgery %d went unnoticed", what);
	}
	free(b);
	free(bytes);
	free(want);
	free(d.v);
	reqs_release(&r);
	gw_free(mem);
	free(doc);
}

/* ---- refused files and staleness ---------------------------------------------- */

static void expect_refused(const char *path, const void *buf, size_t len, int foreign_only,
			   const char *what)
{
	enum image_status status = IMAGE_OK;
	struct gateway *gw;

	write_file(path, buf, len);
	gw = open_image(path, NULL, &status);
	if (gw) {
		gw_free(gw);
		fail_msg("%s: opened", what);
	}
	if (foreign_only ? status != IMAGE_FOREIGN :
	    status != IMAGE_FOREIGN && status != IMAGE_DAMAGED)
		fail_msg("%s: status %d", what, status);
}

/* The header with one field changed and its checksum made right again. */
static void patched(const unsigned char *bytes, size_t size, const char *path,
		    void (*patch)(struct hdr *), const char *what)
{
	unsigned char *b = malloc(size);
	struct hdr h;

	assert_non_null(b);
	memcpy(b, bytes, size);
	memcpy(&h, b, sizeof(h));
	patch(&h);
	h.header_sum = checksum((const unsigned char *)&h, offsetof(struct hdr, header_sum));
	memcpy(b, &h, sizeof(h));
	expect_refused(path, b, size, 1, what);
	free(b);
}

static void patch_version(struct hdr *h) { h->format_version = 2; }
static void patch_order(struct hdr *h) { h->byte_order = 0x04030201u; }
static void patch_layout(struct hdr *h) { h->layout_id[3] ^= 1; }
static void patch_page(struct hdr *h) { h->page_size = 8192; }

static void test_refused(void **state)
{
	struct fixture *f = *state;
	char *doc = dq(doc_rich), image_path[256], bad[256];
	size_t size;
	struct stat doc_st;
	struct gateway *img;
	unsigned char *bytes, *zeros;
	const size_t cuts[] = { 0, 1, 8, 100, PAGE - 1, PAGE, PAGE + 1 };

	img = compile_and_open(f, doc, strlen(doc), image_path, sizeof(image_path), &doc_st);
	gw_free(img);
	bytes = read_file(image_path, &size);
	assert_non_null(bytes);
	assert_true(size > 2 * PAGE);
	snprintf(bad, sizeof(bad), "%s/bad.image", f->dir);

	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++)
		expect_refused(bad, bytes, cuts[i], 0, "cut short");
	expect_refused(bad, bytes, size / 2, 0, "half");
	expect_refused(bad, bytes, size - 1, 0, "one byte short");
	expect_refused(bad, bytes, size - 8, 0, "one page sum short");
	expect_refused(bad, bytes, size - PAGE, 0, "a page short");
	{
		/* longer than its header says */
		unsigned char *longer = calloc(1, size + PAGE);

		assert_non_null(longer);
		memcpy(longer, bytes, size);
		expect_refused(bad, longer, size + PAGE, 0, "a page too long");
		free(longer);
	}
	zeros = calloc(1, 4 * PAGE);
	assert_non_null(zeros);
	expect_refused(bad, zeros, 4 * PAGE, 1, "zeros");
	expect_refused(bad, zeros, 0, 1, "empty");
	free(zeros);
	expect_refused(bad, doc, strlen(doc), 1, "the document itself");

	patched(bytes, size, bad, patch_version, "format version 2");
	patched(bytes, size, bad, patch_order, "another byte order");
	patched(bytes, size, bad, patch_layout, "another build");
	patched(bytes, size, bad, patch_page, "another page size");

	/* the header alone changed, its checksum not: damaged */
	{
		struct hdr h;

		memcpy(&h, bytes, sizeof(h));
		h.generation++;
		memcpy(bytes, &h, sizeof(h));
		expect_refused(bad, bytes, size, 0, "generation changed");
		h.generation--;
		memcpy(bytes, &h, sizeof(h));
	}
	/* and the untouched bytes still open */
	write_file(bad, bytes, size);
	{
		enum image_status status;

		img = open_image(bad, NULL, &status);
		assert_non_null(img);
		gw_free(img);
	}
	free(bytes);
	free(doc);
}

static void test_stale(void **state)
{
	struct fixture *f = *state;
	char *doc = dq(doc_rich), *other, image_path[256];
	struct stat doc_st, st;
	enum image_status status;
	struct gateway *img;

	img = compile_and_open(f, doc, strlen(doc), image_path, sizeof(image_path), &doc_st);
	gw_free(img);

	/* each part of the document's identity */
	st = doc_st;
	st.st_ino++;
	assert_null(open_image(image_path, &st, &status));
	assert_int_equal(status, IMAGE_STALE);
	st = doc_st;
	st.st_size++;
	assert_null(open_image(image_path, &st, &status));
	assert_int_equal(status, IMAGE_STALE);
	st = doc_st;
	st.st_mtim.tv_nsec = (st.st_mtim.tv_nsec + 1) % 1000000000;
	assert_null(open_image(image_path, &st, &status));
	assert_int_equal(status, IMAGE_STALE);
	st = doc_st;
	st.st_mtim.tv_sec--;
	assert_null(open_image(image_path, &st, &status));
	assert_int_equal(status, IMAGE_STALE);
	st = doc_st;
	st.st_dev++;
	assert_null(open_image(image_path, &st, &status));
	assert_int_equal(status, IMAGE_STALE);

	/* the document rewritten (as an editor does: a new file renamed over it) */
	other = dq(doc_plain);
	{
		char tmp[192];

		snprintf(tmp, sizeof(tmp), "%s.new", f->path);
		write_file(tmp, other, strlen(other));
		assert_int_equal(rename(tmp, f->path), 0);
	}
	assert_int_equal(stat(f->path, &st), 0);
	assert_null(open_image(image_path, &st, &status));
	assert_int_equal(status, IMAGE_STALE);

	/* without a document to compare with, a stale image is still good */
	img = open_image(image_path, NULL, &status);
	assert_non_null(img);
	assert_int_equal(image_generation(img->image), 7);
	{
		struct route_match m;

		assert_int_equal(route_match(img, "/shop/items/1", 13, "a.example", "GET", &m),
				 ROUTE_OK);
		assert_string_equal(m.api->id, "shop-a");
		assert_string_equal(m.op->id, "get-item");
	}
	gw_free(img);
	free(other);
	free(doc);
}

/* A document that does not load does not compile either, with the same
 * errors, and the image already there stays as it was. */
static void test_compile_refuses(void **state)
{
	struct fixture *f = *state;
	char *good = dq(doc_plain), image_path[256];
	struct stat doc_st;
	struct gateway *img;
	unsigned char *before, *after;
	size_t before_len, after_len, refused = 0;
	DIR *d;
	struct dirent *e;

	img = compile_and_open(f, good, strlen(good), image_path, sizeof(image_path), &doc_st);
	gw_free(img);
	before = read_file(image_path, &before_len);
	assert_non_null(before);
	d = opendir("tests/fuzz/corpus/config");
	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		struct cfg_errors le = CFG_ERRORS_INIT, ce = CFG_ERRORS_INIT;
		char path[512];
		unsigned char *buf;
		size_t len;
		struct gateway *gw;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "tests/fuzz/corpus/config/%s", e->d_name);
		buf = read_file(path, &len);
		assert_non_null(buf);
		gw = gw_load_buffer((const char *)buf, len, &le);
		if (gw) {
			gw_free(gw);
		} else {
			assert_int_equal(image_compile_buffer((const char *)buf, len, &doc_st,
							      image_path, &ce, NULL), -1);
			assert_int_equal(le.n, ce.n);
			for (size_t i = 0; i < le.n; i++)
				assert_string_equal(le.msg[i], ce.msg[i]);
			refused++;
		}
		cfg_errors_release(&le);
		cfg_errors_release(&ce);
		free(buf);
	}
	closedir(d);
	assert_true(refused >= 5);
	after = read_file(image_path, &after_len);
	assert_non_null(after);
	assert_int_equal(before_len, after_len);
	assert_memory_equal(before, after, before_len);
	free(before);
	free(after);
	free(good);
}

/* The image is never readable by more than its document is. */
static void test_compile_mode(void **state)
{
	struct fixture *f = *state;
	static const mode_t modes[] = { 0600, 0640, 0644, 0400 };
	char *doc = dq(doc_plain), image_path[256];

	snprintf(image_path, sizeof(image_path), "%s%s", f->path, IMAGE_SUFFIX);
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		struct cfg_errors errs = CFG_ERRORS_INIT;
		struct stat doc_st, st;

		unlink(f->path);
		write_file(f->path, doc, strlen(doc));
		assert_int_equal(chmod(f->path, modes[i]), 0);
		assert_int_equal(stat(f->path, &doc_st), 0);
		assert_int_equal(image_compile_buffer(doc, strlen(doc), &doc_st, image_path, &errs,
						      NULL), 0);
		cfg_errors_release(&errs);
		assert_int_equal(stat(image_path, &st), 0);
		/* never wider than the document, never writable but by its owner,
		 * never executable (a world-readable document's image is too) */
		assert_int_equal(st.st_mode & 07777 & ~modes[i], 0);
		assert_int_equal(st.st_mode & 0133, 0);
		assert_int_equal(st.st_gid, doc_st.st_gid);
	}
	free(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_equivalent_built, setup, teardown),
		cmocka_unit_test_setup_teardown(test_equivalent_repository, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damage_flips, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_eviction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compile_refuses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compile_mode, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
