/*
 * image — the compiled configuration as one mapped file (see image.h for the
 * contract, docs/scale.md for the format and why it looks like this).
 *
 * Layout, little-endian, every offset from the start of the file:
 *   page 0      struct img_header (the rest of the page zero)
 *   BASE        the gateway section as a document of its own, NUL-terminated
 *   ROUTES      route_buckets x {u64 hash, u64 entry}, then the entries: a
 *               struct img_entry, the key bytes, the hosts
 *               ({u32 host offset in the entry, u32 API index}, sorted by
 *               host) and their NUL-terminated names; every entry 8-aligned
 *   BLOCKS      one NUL-terminated document per API
 *   APIDIR      n_apis x {u64 offset, u64 length} of the API blocks
 *   SUBS        sub_buckets x u64 (record offset in the section, 0: empty),
 *               then the records: struct img_sub, id, NUL, target, NUL
 *   (zeros to the next page)
 *   PAGESUMS    one u64 checksum per page from page 1 to PAGESUMS
 * Offsets inside ROUTES and SUBS are relative to their section.
 */
#include "policy/image.h"

#include <errno.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/atomicfile.h"
#include "common/fileread.h"
#include "common/log.h"
#include "common/sha256.h"
#include "policy/loader.h"
#include "policy/policies.h"
#include "policy/polmod.h"
#include "policy/route.h"

#define IMG_PAGE 4096u
#define IMG_BYTE_ORDER 0x01020304u

enum { SEC_BASE, SEC_ROUTES, SEC_BLOCKS, SEC_APIDIR, SEC_SUBS, SEC_PAGESUMS, SEC_N };

struct img_section {
	uint64_t off, len;
};

struct img_header {
	char magic[8];		/* "HGIMAGE" */
	uint32_t format_version, header_size, byte_order, page_size;
	uint8_t layout_id[16];
	int64_t generation;
	uint64_t doc_dev, doc_ino, doc_size;
	int64_t doc_mtime_ns;
	uint8_t doc_sha256[32];
	uint64_t file_size, n_pages, n_apis, n_subs;
	uint32_t max_depth, route_buckets, sub_buckets, reserved;
	struct img_section sec[SEC_N];
	uint64_t pagesums_sum;
	uint64_t header_sum;	/* of every byte before it */
};

struct img_bucket {
	uint64_t hash, entry;
};

struct img_entry {
	uint32_t key_len;
	uint32_t any;		/* the API without hostnames, index + 1; 0: none */
	uint32_t n_hosts;
	uint32_t size;		/* of the whole entry, 8-aligned */
};

struct img_host {
	uint32_t name, api;
};

struct img_apidir {
	uint64_t off, len;
};

struct img_sub {
	uint8_t digest[32];
	uint32_t scope, active;
	int64_t expires;
	uint32_t id_len, target_len;
};

struct gw_image {
	const unsigned char *map;
	size_t size;
	int guard;		/* its slot in guards[], -1: none */
	struct img_header h;
	uint64_t data_end;	/* where PAGESUMS starts: page sums cover below */
	uint8_t *checked;	/* one bit per page */
	const char *damage;	/* why the image is damaged; NULL: it is not */
	char why[160];
	struct gateway **apis;	/* compiled on first use, index as in APIDIR */
	size_t n_cached;
	/* which APIs are compiled, for a CLOCK eviction: slots[] holds their
	 * indexes, used[] a bit per API set on every hit, hand the next slot
	 * to look at; an API recently used survives one sweep */
	uint32_t slots[IMAGE_CACHE_MAX];
	uint32_t slot_bytes[IMAGE_CACHE_MAX];	/* the block's size, in cached_bytes */
	size_t cached_bytes;
	uint8_t *used;
	size_t hand;
};

/* ---- shared by writer and reader ----------------------------------------- */

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

uint64_t image_key_hash(const char *key, size_t len)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)key[i]) * 1099511628211ull;
	return h ^ (h >> 29);
}

/* This build: its version, the image format and its policy modules. An image
 * from another build is foreign: its blocks may hold policies or attributes
 * this one reads differently. Two checksums, not SHA-256: this is an identity
 * between builds, not a defence (an image is trusted by its owner and mode,
 * docs/security.md), and OpenSSL 3's first digest initialises its library
 * context — its configuration file and error strings, about 1 ms, which every
 * CGI process that maps an image paid for this alone (docs/performance.md). */
static void layout_id(uint8_t out[16])
{
	uint64_t a, b;
	char buf[4096];
	size_t n = 0;
	int w = snprintf(buf, sizeof(buf), "hostgate %s image %d header %zu|", HOSTGATE_VERSION,
			 IMAGE_FORMAT_VERSION, sizeof(struct img_header));

	if (w > 0)
		n = (size_t)w < sizeof(buf) ? (size_t)w : sizeof(buf) - 1;
	for (const struct pol_module *const *m = pol_modules(); *m && n < sizeof(buf); m++) {
		w = snprintf(buf + n, sizeof(buf) - n, "%s|", (*m)->name);
		if (w > 0)
			n += (size_t)w < sizeof(buf) - n ? (size_t)w : sizeof(buf) - n - 1;
	}
	a = checksum((const unsigned char *)buf, n);
	b = checksum((const unsigned char *)buf, n / 2) ^ a;
	memcpy(out, &a, 8);
	memcpy(out + 8, &b, 8);
}

static uint64_t round_up(uint64_t v, uint64_t to)
{
	return (v + to - 1) / to * to;
}

static uint32_t pow2_at_least(uint64_t n)
{
	uint32_t b = 8;

	while (b < n && b < (1u << 30))
		b <<= 1;
	return b;
}

/* ---- the writer ----------------------------------------------------------- */

struct obuf {
	unsigned char *p;
	size_t len, cap;
	int oom;
};

static void ob_reserve(struct obuf *b, size_t more)
{
	size_t ncap;
	unsigned char *p;

	if (b->oom || b->len + more <= b->cap)
		return;
	ncap = b->cap ? b->cap : 65536;
	while (ncap < b->len + more)
		ncap *= 2;
	p = realloc(b->p, ncap);
	if (!p) {
		b->oom = 1;
		return;
	}
	b->p = p;
	b->cap = ncap;
}

static void ob_put(struct obuf *b, const void *s, size_t n)
{
	ob_reserve(b, n);
	if (b->oom)
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void ob_str(struct obuf *b, const char *s)
{
	ob_put(b, s, strlen(s));
}

static void ob_zero_to(struct obuf *b, size_t align)
{
	static const unsigned char zeros[64];

	while (!b->oom && b->len % align)
		ob_put(b, zeros, align - b->len % align < sizeof(zeros) ?
		       align - b->len % align : sizeof(zeros));
}

/* a JSON value as compact text. json-c keeps the text of every object it
 * serialised until the object is freed (100k APIs: hundreds of MB, and a
 * fifth of the compile in freeing it): so the value is serialised inside a
 * throw-away array, whose text goes with it */
static void ob_json(struct obuf *b, json_object *v)
{
	json_object *holder = json_object_new_array();
	const char *s;
	size_t n = 0;

	if (!holder || json_object_array_add(holder, json_object_get(v)) != 0) {
		json_object_put(holder);
		b->oom = 1;
		return;
	}
	s = json_object_to_json_string_length(holder, JSON_C_TO_STRING_PLAIN |
					      JSON_C_TO_STRING_NOSLASHESCAPE, &n);
	if (!s || n < 2)
		b->oom = 1;
	else
		ob_put(b, s + 1, n - 2);	/* without the array's brackets */
	json_object_put(holder);
}

/* The strings of a JSON value, object keys included, in order: what a block
 * may refer to by backend id or {{named value}}. */
struct strs {
	const char **v;
	size_t n, cap;
	int oom;
};

static void strs_add(struct strs *s, const char *str)
{
	if (s->n == s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 64;
		const char **nv = realloc(s->v, ncap * sizeof(*nv));

		if (!nv) {
			s->oom = 1;
			return;
		}
		s->v = nv;
		s->cap = ncap;
	}
	s->v[s->n++] = str;
}

static void strs_collect(struct strs *s, json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_string:
		strs_add(s, json_object_get_string(v));
		break;
	case json_type_object: {
		json_object_object_foreach(v, key, val) {
			strs_add(s, key);
			strs_collect(s, val);
		}
		break;
	}
	case json_type_array:
		for (size_t i = 0; i < json_object_array_length(v); i++)
			strs_collect(s, json_object_array_get_idx(v, i));
		break;
	default:
		break;
	}
}

/* The named values strs[from..) refer to as {{name}}, added to nv_out (an
 * object: name -> the document's entry), once each. */
static void refer_named(json_object *nvs, const struct strs *s, size_t from, json_object *out)
{
	for (size_t i = from; nvs && i < s->n; i++) {
		const char *p = s->v[i];

		while ((p = strstr(p, "{{")) != NULL) {
			const char *end = strstr(p + 2, "}}");
			char name[96];
			json_object *e;
			size_t n;

			if (!end)
				break;
			n = (size_t)(end - p - 2);
			if (n > 0 && n < sizeof(name)) {
				memcpy(name, p + 2, n);
				name[n] = '\0';
				if (!json_object_object_get_ex(out, name, NULL) &&
				    json_object_object_get_ex(nvs, name, &e))
					json_object_object_add(out, name, json_object_get(e));
			}
			p = end + 2;
		}
	}
}

struct compile {
	json_object *root, *gateway, *named_values, *backends, *products, *policies;
	const struct gateway *gw;
	struct obuf *out;
};

/* What every document of the image starts with: format, generation, the
 * gateway section and the named values nv it uses (no closing brace). */
static void write_head(struct compile *cc, json_object *nv)
{
	char gen[32];

	snprintf(gen, sizeof(gen), "%lld", (long long)cc->gw->generation);
	ob_str(cc->out, "{\"format\":1,\"generation\":");
	ob_str(cc->out, gen);
	if (cc->gateway) {
		ob_str(cc->out, ",\"gateway\":");
		ob_json(cc->out, cc->gateway);
	}
	ob_str(cc->out, ",\"named_values\":");
	ob_json(cc->out, nv);
}

/* Copies backend b's entry into be (once), and collects its strings. */
static void add_backend(struct compile *cc, json_object *be, struct strs *s,
			const struct gw_backend *b)
{
	json_object *e;

	if (b && cc->backends && !json_object_object_get_ex(be, b->id, NULL) &&
	    json_object_object_get_ex(cc->backends, b->id, &e)) {
		json_object_object_add(be, b->id, json_object_get(e));
		strs_collect(s, e);
	}
}

struct backend_walk {
	struct compile *cc;
	json_object *be;
	struct strs *s;
};

static void add_policy_backend(const struct pol_policy *p, void *arg)
{
	struct backend_walk *w = arg;

	if (p->kind == POL_MODULE && p->mod->backend)
		add_backend(w->cc, w->be, w->s, p->mod->backend(p->conf));
}

/* The backends a scope's policies name (pol_module.backend), nested ones
 * (choose) included. */
static void scope_backends(struct compile *cc, json_object *be, struct strs *s,
			   const struct pol_scope *sc)
{
	struct backend_walk w = { cc, be, s };

	for (int sec = 0; sc && sec < POL_N_SECTIONS; sec++)
		for (size_t i = 0; i < sc->n[sec]; i++)
			pol_walk(sc->s[sec][i], add_policy_backend, &w);
}

/* One API's block: a complete document holding that API alone, the backends
 * and named values it refers to, the products that include it (listing only
 * it) and the global policies. Valid because the whole document was. */
static void write_block(struct compile *cc, size_t i)
{
	const struct gw_api *api = &cc->gw->apis[i];
	json_object *ao = json_object_array_get_idx(json_object_object_get(cc->root, "apis"), i);
	json_object *nv = json_object_new_object(), *be = json_object_new_object();
	json_object *prods = json_object_new_array();
	struct strs s = { 0 };
	struct obuf *b = cc->out;

	if (!nv || !be || !prods) {
		b->oom = 1;
		goto out;
	}
	strs_collect(&s, ao);
	if (cc->gateway)
		strs_collect(&s, cc->gateway);
	if (cc->policies)
		strs_collect(&s, cc->policies);
	for (size_t k = 0; k < api->n_products; k++) {
		json_object *po = json_object_array_get_idx(cc->products, api->products[k]->index);
		json_object *copy = json_object_new_object(), *ids = json_object_new_array();

		if (!copy || !ids) {
			json_object_put(copy);
			json_object_put(ids);
			b->oom = 1;
			goto out;
		}
		json_object_object_foreach(po, key, val) {
			if (strcmp(key, "apis") != 0) {
				json_object_object_add(copy, key, json_object_get(val));
				strs_collect(&s, val);
			}
		}
		json_object_array_add(ids, json_object_new_string(api->id));
		json_object_object_add(copy, "apis", ids);
		json_object_array_add(prods, copy);
	}
	/* backends: the API's, and those its pipeline's policies name */
	add_backend(cc, be, &s, api->backend);
	scope_backends(cc, be, &s, cc->gw->policies);
	scope_backends(cc, be, &s, api->policies);
	for (size_t k = 0; k < api->n_operations; k++)
		scope_backends(cc, be, &s, api->operations[k].policies);
	for (size_t k = 0; k < api->n_products; k++)
		scope_backends(cc, be, &s, api->products[k]->policies);
	refer_named(cc->named_values, &s, 0, nv);
	if (s.oom) {
		b->oom = 1;
		goto out;
	}
	write_head(cc, nv);
	ob_str(b, ",\"backends\":");
	ob_json(b, be);
	if (api->n_products) {
		ob_str(b, ",\"products\":");
		ob_json(b, prods);
	}
	if (cc->policies) {
		ob_str(b, ",\"policies\":");
		ob_json(b, cc->policies);
	}
	ob_str(b, ",\"apis\":[");
	ob_json(b, ao);
	ob_str(b, "]}");
out:
	free(s.v);
	json_object_put(nv);
	json_object_put(be);
	json_object_put(prods);
}

static void write_base(struct compile *cc)
{
	struct obuf *b = cc->out;
	struct strs s = { 0 };
	json_object *nv = json_object_new_object();

	if (!nv) {
		b->oom = 1;
		return;
	}
	if (cc->gateway)
		strs_collect(&s, cc->gateway);
	refer_named(cc->named_values, &s, 0, nv);
	if (s.oom)
		b->oom = 1;
	write_head(cc, nv);
	ob_str(b, "}");
	ob_put(b, "", 1);
	free(s.v);
	json_object_put(nv);
}

/* A route key and the APIs at it. */
struct rkey {
	char *key;
	size_t len;
	size_t api;
};

static int rkey_cmp(const void *a, const void *b)
{
	const struct rkey *x = a, *y = b;
	int c = memcmp(x->key, y->key, x->len < y->len ? x->len : y->len);

	if (c != 0)
		return c;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return x->api < y->api ? -1 : x->api > y->api;
}

struct hostref {
	char name[ROUTE_MAX_HOST + 1];
	uint32_t api;
};

static int hostref_cmp(const void *a, const void *b)
{
	return strcmp(((const struct hostref *)a)->name, ((const struct hostref *)b)->name);
}

/* ROUTES: the keys of the compiled APIs (route_build accepted them, so two
 * APIs share a key only with different hostnames, or one without). */
static int write_routes(struct compile *cc, struct img_header *h)
{
	const struct gateway *gw = cc->gw;
	struct obuf *b = cc->out;
	struct rkey *keys = calloc(gw->n_apis ? gw->n_apis : 1, sizeof(*keys));
	struct hostref *hosts = NULL;
	size_t n_groups = 0, base = b->len;
	struct img_bucket *bk;
	int rc = -1;

	if (!keys)
		return -1;
	for (size_t i = 0; i < gw->n_apis; i++) {
		if (route_api_key(gw->apis[i].path ? gw->apis[i].path : "", &keys[i].key,
				  &keys[i].len) != 0)
			goto out;
		keys[i].api = i;
		{
			uint32_t depth = keys[i].len ? 1 : 0;

			for (size_t j = 0; j < keys[i].len; j++)
				depth += keys[i].key[j] == '\0';
			if (depth > h->max_depth)
				h->max_depth = depth;
		}
	}
	qsort(keys, gw->n_apis, sizeof(*keys), rkey_cmp);
	for (size_t i = 0; i < gw->n_apis; i++)
		if (i == 0 || keys[i].len != keys[i - 1].len ||
		    memcmp(keys[i].key, keys[i - 1].key, keys[i].len) != 0)
			n_groups++;
	h->route_buckets = pow2_at_least(n_groups * 2);
	ob_reserve(b, (size_t)h->route_buckets * sizeof(*bk));
	if (b->oom)
		goto out;
	memset(b->p + base, 0, (size_t)h->route_buckets * sizeof(*bk));
	b->len += (size_t)h->route_buckets * sizeof(*bk);
	for (size_t i = 0; i < gw->n_apis;) {
		size_t j = i, n_hosts = 0, start = b->len;
		struct img_entry e = { (uint32_t)keys[i].len, 0, 0, 0 };
		uint64_t hash = image_key_hash(keys[i].key, keys[i].len);
		size_t slot;

		while (j < gw->n_apis && keys[j].len == keys[i].len &&
		       memcmp(keys[j].key, keys[i].key, keys[i].len) == 0)
			j++;
		for (size_t k = i; k < j; k++)
			n_hosts += gw->apis[keys[k].api].n_hostnames;
		free(hosts);
		hosts = calloc(n_hosts ? n_hosts : 1, sizeof(*hosts));
		if (!hosts)
			goto out;
		n_hosts = 0;
		for (size_t k = i; k < j; k++) {
			const struct gw_api *api = &gw->apis[keys[k].api];

			if (api->n_hostnames == 0)
				e.any = (uint32_t)keys[k].api + 1;
			for (size_t m = 0; m < api->n_hostnames; m++) {
				if (route_host_norm(api->hostnames[m], strlen(api->hostnames[m]),
						    hosts[n_hosts].name) < 0)
					continue;
				hosts[n_hosts++].api = (uint32_t)keys[k].api;
			}
		}
		qsort(hosts, n_hosts, sizeof(*hosts), hostref_cmp);
		/* an API naming one host twice: once */
		{
			size_t w = 0;

			for (size_t k = 0; k < n_hosts; k++)
				if (w == 0 || strcmp(hosts[w - 1].name, hosts[k].name) != 0)
					hosts[w++] = hosts[k];
			n_hosts = w;
		}
		e.n_hosts = (uint32_t)n_hosts;
		ob_put(b, &e, sizeof(e));
		ob_put(b, keys[i].key, keys[i].len);
		ob_zero_to(b, 8);
		{
			size_t table = b->len, names = table + n_hosts * sizeof(struct img_host);

			ob_reserve(b, n_hosts * sizeof(struct img_host));
			if (b->oom)
				goto out;
			b->len = names;
			for (size_t k = 0; k < n_hosts; k++) {
				struct img_host hr = { (uint32_t)(b->len - start), hosts[k].api };

				memcpy(b->p + table + k * sizeof(hr), &hr, sizeof(hr));
				ob_put(b, hosts[k].name, strlen(hosts[k].name) + 1);
				if (b->oom)
					goto out;
			}
		}
		ob_zero_to(b, 8);
		if (b->oom)
			goto out;
		e.size = (uint32_t)(b->len - start);
		memcpy(b->p + start, &e, sizeof(e));
		slot = hash & (h->route_buckets - 1);
		for (;;) {
			bk = (struct img_bucket *)(void *)(b->p + base + slot * sizeof(*bk));
			if (bk->entry == 0)
				break;
			slot = (slot + 1) & (h->route_buckets - 1);
		}
		bk->hash = hash;
		bk->entry = start - base;
		i = j;
	}
	rc = 0;
out:
	for (size_t i = 0; i < gw->n_apis; i++)
		free(keys[i].key);
	free(keys);
	free(hosts);
	return rc;
}

static void write_subs(struct compile *cc, struct img_header *h)
{
	const struct gateway *gw = cc->gw;
	struct obuf *b = cc->out;
	size_t base = b->len, n = 0;

	for (size_t i = 0; i < gw->n_subscriptions; i++)
		n += gw->subscriptions[i].n_keys;
	h->n_subs = n;
	h->sub_buckets = pow2_at_least(n * 2);
	ob_reserve(b, (size_t)h->sub_buckets * 8);
	if (b->oom)
		return;
	memset(b->p + base, 0, (size_t)h->sub_buckets * 8);
	b->len += (size_t)h->sub_buckets * 8;
	for (size_t i = 0; i < gw->n_subscriptions; i++) {
		const struct gw_subscription *sub = &gw->subscriptions[i];
		const char *target = sub->scope == GW_SCOPE_API ? sub->api->id :
				     sub->scope == GW_SCOPE_PRODUCT ? sub->product->id : "";

		for (size_t k = 0; k < sub->n_keys; k++) {
			struct img_sub r;
			uint64_t slot, at = b->len - base;

			memset(&r, 0, sizeof(r));
			memcpy(r.digest, sub->keys[k], 32);
			r.scope = (uint32_t)sub->scope;
			r.active = (uint32_t)sub->active;
			r.expires = sub->expires;
			r.id_len = (uint32_t)strlen(sub->id);
			r.target_len = (uint32_t)strlen(target);
			ob_put(b, &r, sizeof(r));
			ob_put(b, sub->id, r.id_len + 1);
			ob_put(b, target, r.target_len + 1);
			ob_zero_to(b, 8);
			if (b->oom)
				return;
			memcpy(&slot, r.digest, 8);
			slot &= h->sub_buckets - 1;
			for (;;) {
				uint64_t cur;

				memcpy(&cur, b->p + base + slot * 8, 8);
				if (cur == 0)
					break;
				slot = (slot + 1) & (h->sub_buckets - 1);
			}
			memcpy(b->p + base + slot * 8, &at, 8);
		}
	}
}

static void section_end(struct obuf *b, struct img_header *h, int sec, size_t start)
{
	h->sec[sec].off = start;
	h->sec[sec].len = b->len - start;
	ob_zero_to(b, 8);
}

int image_compile_buffer(const char *buf, size_t len, const struct stat *doc,
			 const char *image_path, struct cfg_errors *errs,
			 struct image_stats *stats)
{
	struct compile cc;
	struct obuf out = { 0 };
	struct img_header h;
	struct img_apidir *dir = NULL;
	struct atomicfile af = ATOMICFILE_INIT;
	struct gateway *gw;
	json_object *root = NULL;
	size_t start;
	int rc = -1;

	gw = ld_load(buf, len, errs, &root);
	if (!gw)
		return -1;
	memset(&cc, 0, sizeof(cc));
	memset(&h, 0, sizeof(h));
	cc.root = root;
	cc.gw = gw;
	cc.out = &out;
	json_object_object_get_ex(root, "gateway", &cc.gateway);
	json_object_object_get_ex(root, "named_values", &cc.named_values);
	json_object_object_get_ex(root, "backends", &cc.backends);
	json_object_object_get_ex(root, "products", &cc.products);
	json_object_object_get_ex(root, "policies", &cc.policies);

	memcpy(h.magic, "HGIMAGE", 8);
	h.format_version = IMAGE_FORMAT_VERSION;
	h.header_size = sizeof(h);
	h.byte_order = IMG_BYTE_ORDER;
	h.page_size = IMG_PAGE;
	layout_id(h.layout_id);
	h.generation = gw->generation;
	h.doc_dev = (uint64_t)doc->st_dev;
	h.doc_ino = (uint64_t)doc->st_ino;
	h.doc_size = (uint64_t)doc->st_size;
	h.doc_mtime_ns = (int64_t)doc->st_mtim.tv_sec * 1000000000 + doc->st_mtim.tv_nsec;
	sha256(buf, len, h.doc_sha256);
	h.n_apis = gw->n_apis;

	ob_reserve(&out, IMG_PAGE);
	if (out.oom)
		goto oom;
	memset(out.p, 0, IMG_PAGE);
	out.len = IMG_PAGE;

	start = out.len;
	write_base(&cc);
	section_end(&out, &h, SEC_BASE, start);

	start = out.len;
	if (write_routes(&cc, &h) != 0) {
		cfg_error(errs, "apis", "cannot build the image's route table");
		goto out;
	}
	section_end(&out, &h, SEC_ROUTES, start);

	dir = calloc(gw->n_apis ? gw->n_apis : 1, sizeof(*dir));
	if (!dir)
		goto oom;
	start = out.len;
	for (size_t i = 0; i < gw->n_apis; i++) {
		size_t at = out.len;

		write_block(&cc, i);
		dir[i].off = at;
		dir[i].len = out.len - at;
		ob_put(&out, "", 1);
		if (out.oom)
			goto oom;
	}
	section_end(&out, &h, SEC_BLOCKS, start);
	start = out.len;
	ob_put(&out, dir, gw->n_apis * sizeof(*dir));
	section_end(&out, &h, SEC_APIDIR, start);

	start = out.len;
	write_subs(&cc, &h);
	section_end(&out, &h, SEC_SUBS, start);
	ob_zero_to(&out, IMG_PAGE);
	if (out.oom)
		goto oom;

	h.n_pages = out.len / IMG_PAGE - 1;
	start = out.len;
	for (uint64_t pg = 1; pg <= h.n_pages; pg++) {
		uint64_t sum = checksum(out.p + pg * IMG_PAGE, IMG_PAGE);

		ob_put(&out, &sum, 8);
		if (out.oom)
			goto oom;
	}
	h.sec[SEC_PAGESUMS].off = start;
	h.sec[SEC_PAGESUMS].len = out.len - start;
	h.pagesums_sum = checksum(out.p + start, out.len - start);
	h.file_size = out.len;
	h.header_sum = checksum((const unsigned char *)&h, offsetof(struct img_header, header_sum));
	memcpy(out.p, &h, sizeof(h));

	/* never readable by more than the document is; its group, so the web
	 * server that reads the document by its group reads the image too */
	if (atomicfile_begin(&af, image_path, doc->st_mode & 0644, 0) < 0) {
		cfg_error(errs, "$", "cannot write '%s': %s: %s", image_path, af.step,
			  strerror(errno));
		goto out;
	}
	if (fchown(af.fd, (uid_t)-1, doc->st_gid) < 0 && !(doc->st_mode & S_IROTH)) {
		cfg_error(errs, "$", "cannot give '%s' the document's group %ld: %s (run this "
			  "as the document's owner or root)", image_path, (long)doc->st_gid,
			  strerror(errno));
		goto out;
	}
	if (atomicfile_write(&af, out.p, out.len) < 0 || atomicfile_commit(&af) < 0) {
		cfg_error(errs, "$", "cannot write '%s': %s: %s", image_path, af.step,
			  strerror(errno));
		goto out;
	}
	if (stats) {
		stats->n_apis = gw->n_apis;
		stats->n_subscriptions = h.n_subs;
		stats->bytes = out.len;
	}
	rc = 0;
	goto out;
oom:
	cfg_error(errs, "$", "out of memory while compiling the image");
out:
	atomicfile_release(&af);
	if (out.p) {
		explicit_bzero(out.p, out.len);	/* secrets */
		free(out.p);
	}
	free(dir);
	json_object_put(root);
	gw_free(gw);
	return rc;
}

int image_compile_file(const char *doc_path, struct cfg_errors *errs, struct image_stats *stats)
{
	char image_path[4096];
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	int rc;

	if (snprintf(image_path, sizeof(image_path), "%s%s", doc_path, IMAGE_SUFFIX) >=
	    (int)sizeof(image_path)) {
		cfg_error(errs, "$", "the path '%s' is too long", doc_path);
		return -1;
	}
	/* the image records the identity of exactly what was read */
	if (file_read_stat(doc_path, GW_MAX_DOCUMENT_BYTES, &buf, &len, &st) < 0) {
		cfg_error(errs, "$", "cannot read '%s': %s", doc_path,
			  errno == EFBIG ? "larger than the limit" : errno == EINVAL ?
			  "not a regular file" : strerror(errno));
		return -1;
	}
	rc = image_compile_buffer(buf, len, &st, image_path, errs, stats);
	explicit_bzero(buf, len);	/* it may hold secrets */
	free(buf);
	return rc;
}

/* ---- a file cut short under the mapping ---------------------------------------
 *
 * The image is replaced by rename, never in place; but an admin's `cp` over
 * it truncates the very file every process has mapped, and a read past the
 * new end is SIGBUS. The handler puts a zero page where the file went and
 * marks the image: the checksums (or the check after each read) then treat
 * it as damaged, and the document serves. The ranges live in a fixed table
 * the handler reads without locks: a process maps one image at a time, two
 * while it swaps. Any other SIGBUS gets the default action, as before. */

#define GUARDS 8

static struct {
	volatile uintptr_t start, end;	/* 0: free */
	volatile sig_atomic_t hit;
} guards[GUARDS];

static void on_sigbus(int sig, siginfo_t *si, void *ctx)
{
	uintptr_t a = (uintptr_t)si->si_addr, page = a & ~(uintptr_t)(IMG_PAGE - 1);

	(void)ctx;
	for (int i = 0; i < GUARDS; i++) {
		if (guards[i].start && a >= guards[i].start && a < guards[i].end &&
		    mmap((void *)page, IMG_PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
			 -1, 0) != MAP_FAILED) {
			guards[i].hit = 1;
			return;
		}
	}
	signal(sig, SIG_DFL);	/* not ours: the fault repeats and kills, as always */
}

static int guard_add(const void *map, size_t size)
{
	static int installed;

	if (!installed) {
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = on_sigbus;
		sa.sa_flags = SA_SIGINFO;
		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGBUS, &sa, NULL) != 0)
			return -1;
		installed = 1;
	}
	for (int i = 0; i < GUARDS; i++) {
		if (!guards[i].start) {
			guards[i].hit = 0;
			guards[i].end = (uintptr_t)map + size;
			guards[i].start = (uintptr_t)map;
			return i;
		}
	}
	return -1;
}

static void guard_remove(int i)
{
	if (i >= 0) {
		guards[i].start = 0;
		guards[i].end = 0;
	}
}

/* Whether the file was cut short under this image since it was mapped. */
static int cut_short(struct gw_image *img)
{
	if (img->guard >= 0 && guards[img->guard].hit && !img->damage)
		img->damage = "the file was cut short while mapped (replace it by rename)";
	return img->damage != NULL;
}

/* ---- the reader ----------------------------------------------------------- */

static void damaged(struct gw_image *img, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void damaged(struct gw_image *img, const char *fmt, ...)
{
	va_list ap;

	if (img->damage)
		return;
	va_start(ap, fmt);
	vsnprintf(img->why, sizeof(img->why), fmt, ap);
	va_end(ap);
	img->damage = img->why;
}

/* The bytes [off, off + len) of the image, every page under them checked
 * once; NULL (and the image marked damaged) when they are outside the
 * checked area or a page's sum is wrong. */
static const void *need(struct gw_image *img, uint64_t off, uint64_t len)
{
	if (img->damage)
		return NULL;
	if (off < IMG_PAGE || off > img->data_end || len > img->data_end - off) {
		damaged(img, "an offset points outside the image (%llu)", (unsigned long long)off);
		return NULL;
	}
	for (uint64_t pg = off / IMG_PAGE; len && pg <= (off + len - 1) / IMG_PAGE; pg++) {
		uint64_t want;

		if (img->checked[pg / 8] & (1u << (pg % 8)))
			continue;
		memcpy(&want, img->map + img->h.sec[SEC_PAGESUMS].off + (pg - 1) * 8, 8);
		if (checksum(img->map + pg * IMG_PAGE, IMG_PAGE) != want) {
			damaged(img, "page %llu fails its checksum", (unsigned long long)pg);
			return NULL;
		}
		img->checked[pg / 8] |= (uint8_t)(1u << (pg % 8));
	}
	if (cut_short(img))
		return NULL;
	return img->map + off;
}

/* an offset inside a section, checked */
static const void *need_in(struct gw_image *img, int sec, uint64_t rel, uint64_t len)
{
	const struct img_section *s = &img->h.sec[sec];

	if (rel > s->len || len > s->len - rel) {
		damaged(img, "an offset points outside its section (%llu)", (unsigned long long)rel);
		return NULL;
	}
	return need(img, s->off + rel, len);
}

static int header_check(struct gw_image *img, size_t size, enum image_status *status, char *why,
			size_t whylen)
{
	struct img_header *h = &img->h;
	uint8_t lid[16];
	uint64_t end = IMG_PAGE;

	*status = IMAGE_FOREIGN;
	if (size < IMG_PAGE || memcmp(img->map, "HGIMAGE", 8) != 0) {
		snprintf(why, whylen, "not a hostgate image");
		return -1;
	}
	memcpy(h, img->map, sizeof(*h));
	if (h->byte_order != IMG_BYTE_ORDER || h->format_version != IMAGE_FORMAT_VERSION ||
	    h->header_size != sizeof(*h) || h->page_size != IMG_PAGE) {
		snprintf(why, whylen, "format %u (this build reads %d) or another byte order",
			 h->format_version, IMAGE_FORMAT_VERSION);
		return -1;
	}
	*status = IMAGE_DAMAGED;
	if (checksum(img->map, offsetof(struct img_header, header_sum)) != h->header_sum) {
		snprintf(why, whylen, "the header fails its checksum");
		return -1;
	}
	layout_id(lid);
	if (memcmp(lid, h->layout_id, sizeof(lid)) != 0) {
		*status = IMAGE_FOREIGN;
		snprintf(why, whylen, "written by another build of hostgate");
		return -1;
	}
	if (h->file_size != size) {
		snprintf(why, whylen, "%zu bytes long, its header says %llu (cut short?)", size,
			 (unsigned long long)h->file_size);
		return -1;
	}
	/* sections in order, inside the file, PAGESUMS last and covering the rest */
	for (int s = 0; s < SEC_N; s++) {
		/* 8-aligned, as written: the tables are read in place */
		if (h->sec[s].off < end || h->sec[s].off > size || h->sec[s].off % 8 ||
		    h->sec[s].len > size - h->sec[s].off) {
			snprintf(why, whylen, "section %d lies outside the file", s);
			return -1;
		}
		end = h->sec[s].off + h->sec[s].len;
	}
	if (h->sec[SEC_PAGESUMS].off % IMG_PAGE || h->n_pages != h->sec[SEC_PAGESUMS].off / IMG_PAGE - 1 ||
	    h->sec[SEC_PAGESUMS].len != h->n_pages * 8 || end != size ||
	    checksum(img->map + h->sec[SEC_PAGESUMS].off, h->sec[SEC_PAGESUMS].len) != h->pagesums_sum) {
		snprintf(why, whylen, "its page checksums are damaged");
		return -1;
	}
	if (h->route_buckets == 0 || (h->route_buckets & (h->route_buckets - 1)) ||
	    (uint64_t)h->route_buckets * sizeof(struct img_bucket) > h->sec[SEC_ROUTES].len ||
	    h->sub_buckets == 0 || (h->sub_buckets & (h->sub_buckets - 1)) ||
	    (uint64_t)h->sub_buckets * 8 > h->sec[SEC_SUBS].len ||
	    h->n_apis > h->sec[SEC_APIDIR].len / sizeof(struct img_apidir) ||
	    h->max_depth > ROUTE_MAX_SEGMENTS || h->sec[SEC_BASE].len == 0) {
		snprintf(why, whylen, "its tables are damaged");
		return -1;
	}
	img->data_end = h->sec[SEC_PAGESUMS].off;
	return 0;
}

/* A NUL-terminated document at [off, off + len] (the NUL at off + len). */
static const char *need_doc(struct gw_image *img, uint64_t off, uint64_t len)
{
	const char *p = need(img, off, len + 1);

	if (p && p[len] != '\0') {
		damaged(img, "a document in the image is not terminated (at %llu)",
			(unsigned long long)off);
		return NULL;
	}
	return p;
}

struct gateway *image_open(int fd, const struct stat *st, const struct stat *doc,
			   enum image_status *status, char *why, size_t whylen)
{
	struct gw_image *img = calloc(1, sizeof(*img));
	struct cfg_errors errs = CFG_ERRORS_INIT;
	struct gateway *gw = NULL;
	const char *base;
	void *map;

	*status = IMAGE_DAMAGED;
	if (!img) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	img->guard = -1;
	if (st->st_size < (off_t)IMG_PAGE) {
		*status = IMAGE_FOREIGN;
		snprintf(why, whylen, "too short to be an image (%lld bytes)", (long long)st->st_size);
		goto fail;
	}
	map = mmap(NULL, (size_t)st->st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		snprintf(why, whylen, "cannot map it: %s", strerror(errno));
		goto fail;
	}
	img->map = map;
	img->size = (size_t)st->st_size;
	img->guard = guard_add(map, img->size);
	if (header_check(img, img->size, status, why, whylen) != 0)
		goto fail;
	if (doc && !image_compiled_from(img, doc)) {
		*status = IMAGE_STALE;
		snprintf(why, whylen, "compiled from another version of the document (generation %lld)",
			 (long long)img->h.generation);
		goto fail;
	}
	img->checked = calloc(img->h.n_pages / 8 + 2, 1);
	img->apis = calloc(img->h.n_apis ? img->h.n_apis : 1, sizeof(*img->apis));
	img->used = calloc(img->h.n_apis / 8 + 1, 1);
	if (!img->checked || !img->apis || !img->used) {
		snprintf(why, whylen, "out of memory");
		goto fail;
	}
	base = need_doc(img, img->h.sec[SEC_BASE].off, img->h.sec[SEC_BASE].len - 1);
	if (!base) {
		snprintf(why, whylen, "%s", img->damage);
		goto fail;
	}
	gw = gw_load_buffer(base, img->h.sec[SEC_BASE].len - 1, &errs);
	if (!gw) {
		snprintf(why, whylen, "its gateway section does not load: %s",
			 errs.n ? errs.msg[0] : "out of memory");
		goto fail;
	}
	cfg_errors_release(&errs);
	gw->image = img;
	gw->owns_image = 1;
	*status = IMAGE_OK;
	why[0] = '\0';
	return gw;
fail:
	cfg_errors_release(&errs);
	image_release(img);
	return NULL;
}

static void cache_clear(struct gw_image *img)
{
	for (size_t k = 0; k < img->n_cached; k++) {
		gw_free(img->apis[img->slots[k]]);
		img->apis[img->slots[k]] = NULL;
	}
	img->n_cached = 0;
	img->cached_bytes = 0;
}

/* Drops the API in slot k, and moves the last slot there. */
static void cache_drop(struct gw_image *img, size_t k)
{
	size_t api = img->slots[k], last = --img->n_cached;

	gw_free(img->apis[api]);
	img->apis[api] = NULL;
	img->cached_bytes -= img->slot_bytes[k];
	img->slots[k] = img->slots[last];
	img->slot_bytes[k] = img->slot_bytes[last];
	if (img->hand >= img->n_cached)
		img->hand = 0;
}

/* Room for one more API whose block has bytes: while the cache holds
 * IMAGE_CACHE_MAX APIs, or their blocks and this one's would pass
 * IMAGE_CACHE_BYTES (a compiled API takes about 30 times its block: the
 * bound on a worker's memory, whatever the document's shape), it drops the
 * first API the hand finds unused since it last passed (CLOCK). Returns the
 * free slot. */
static size_t cache_slot(struct gw_image *img, size_t bytes)
{
	while (img->n_cached > 0 && (img->n_cached >= IMAGE_CACHE_MAX ||
				     img->cached_bytes + bytes > IMAGE_CACHE_BYTES)) {
		size_t k = img->hand, api = img->slots[k];

		if (img->used[api / 8] & (1u << (api % 8))) {
			img->used[api / 8] &= (uint8_t)~(1u << (api % 8));
			img->hand = (img->hand + 1) % img->n_cached;
			continue;
		}
		cache_drop(img, k);
	}
	img->slot_bytes[img->n_cached] = (uint32_t)(bytes < UINT32_MAX ? bytes : UINT32_MAX);
	img->cached_bytes += img->slot_bytes[img->n_cached];
	return img->n_cached++;
}

void image_release(struct gw_image *img)
{
	if (!img)
		return;
	if (img->apis)
		cache_clear(img);
	free(img->apis);
	free(img->used);
	free(img->checked);
	guard_remove(img->guard);
	if (img->map)
		munmap((void *)(uintptr_t)img->map, img->size);
	free(img);
}

int image_compiled_from(const struct gw_image *img, const struct stat *doc)
{
	return img->h.doc_dev == (uint64_t)doc->st_dev && img->h.doc_ino == (uint64_t)doc->st_ino &&
	       img->h.doc_size == (uint64_t)doc->st_size &&
	       img->h.doc_mtime_ns == (int64_t)doc->st_mtim.tv_sec * 1000000000 + doc->st_mtim.tv_nsec;
}

void image_set_damaged(struct gw_image *img, const char *why)
{
	damaged(img, "%s", why);
}

int image_damaged(const struct gw_image *img, const char **why)
{
	cut_short((struct gw_image *)(uintptr_t)img);
	if (why)
		*why = img->damage;
	return img->damage != NULL;
}

int64_t image_generation(const struct gw_image *img)
{
	return img->h.generation;
}

size_t image_n_apis(const struct gw_image *img)
{
	return (size_t)img->h.n_apis;
}

/* The entry at a key, or NULL (none; or damaged, then img->damage is set). */
static const struct img_entry *find_entry(struct gw_image *img, const char *key, size_t len)
{
	uint64_t hash = image_key_hash(key, len), mask = img->h.route_buckets - 1;

	for (uint64_t i = 0, slot = hash & mask; i <= mask; i++, slot = (slot + 1) & mask) {
		const struct img_bucket *b = need_in(img, SEC_ROUTES, slot * sizeof(*b), sizeof(*b));
		const struct img_entry *e;
		const char *k;

		if (!b || b->entry == 0)
			return NULL;
		if (b->hash != hash)
			continue;
		if (b->entry % 8) {
			damaged(img, "a route entry is misaligned (at %llu)", (unsigned long long)b->entry);
			return NULL;
		}
		e = need_in(img, SEC_ROUTES, b->entry, sizeof(*e));
		if (!e || !(k = need_in(img, SEC_ROUTES, b->entry + sizeof(*e), e->key_len)) ||
		    !need_in(img, SEC_ROUTES, b->entry, e->size))
			return NULL;
		if (e->key_len == len && memcmp(k, key, len) == 0)
			return e;
	}
	return NULL;
}

long image_find_api(struct gw_image *img, const char *key, const size_t *ends, size_t nseg,
		    const char *host, size_t *used)
{
	size_t k = nseg < img->h.max_depth ? nseg : img->h.max_depth;

	for (;; k--) {
		const struct img_entry *e = find_entry(img, key, ends[k]);
		const unsigned char *base = (const unsigned char *)e;
		long api = -1;

		if (cut_short(img))
			return -2;
		if (e && host && e->n_hosts) {
			/* the entry's pages were checked whole by find_entry */
			size_t table = round_up(sizeof(*e) + e->key_len, 8), lo = 0, hi = e->n_hosts;

			if (table + e->n_hosts * sizeof(struct img_host) > e->size) {
				damaged(img, "a route entry is damaged (%u hosts)", e->n_hosts);
				return -2;
			}
			while (lo < hi) {
				size_t mid = lo + (hi - lo) / 2;
				struct img_host hr;
				int c;

				memcpy(&hr, base + table + mid * sizeof(hr), sizeof(hr));
				if (hr.name >= e->size || !memchr(base + hr.name, '\0', e->size - hr.name)) {
					damaged(img, "a route entry is damaged (host at %u)", hr.name);
					return -2;
				}
				c = strcmp(host, (const char *)base + hr.name);
				if (c == 0) {
					api = hr.api;
					break;
				}
				if (c < 0)
					hi = mid;
				else
					lo = mid + 1;
			}
		}
		if (e && api < 0 && e->any)
			api = (long)e->any - 1;
		if (api >= 0) {
			if ((uint64_t)api >= img->h.n_apis) {
				damaged(img, "a route names API %llu", (unsigned long long)api);
				return -2;
			}
			if (cut_short(img))
				return -2;	/* what was read may be the zeros */
			*used = k;
			return api;
		}
		if (k == 0)
			return cut_short(img) ? -2 : -1;
	}
}

const struct gateway *image_api(struct gw_image *img, size_t index)
{
	struct cfg_errors errs = CFG_ERRORS_INIT;
	const struct img_apidir *d;
	const char *doc;
	struct gateway *gw;

	if (index >= img->h.n_apis)
		return NULL;
	if (img->apis[index]) {
		img->used[index / 8] |= (uint8_t)(1u << (index % 8));
		return img->apis[index];
	}
	d = need_in(img, SEC_APIDIR, index * sizeof(*d), sizeof(*d));
	if (!d)
		return NULL;
	/* before need_doc, and without a sum that can wrap: a length of
	 * 2^64 - 1 would make need_doc's len + 1 zero */
	if (d->off < img->h.sec[SEC_BLOCKS].off ||
	    d->off - img->h.sec[SEC_BLOCKS].off >= img->h.sec[SEC_BLOCKS].len ||
	    d->len >= img->h.sec[SEC_BLOCKS].len - (d->off - img->h.sec[SEC_BLOCKS].off)) {
		damaged(img, "API %llu's block lies outside its section", (unsigned long long)index);
		return NULL;
	}
	doc = need_doc(img, d->off, d->len);
	if (!doc)
		return NULL;
	gw = gw_load_buffer(doc, (size_t)d->len, &errs);
	if (cut_short(img)) {
		gw_free(gw);	/* it may have been read from the zeros */
		cfg_errors_release(&errs);
		return NULL;
	}
	if (!gw || gw->n_apis != 1) {
		/* the checksums held, so this build reads the block differently
		 * from the one that wrote it: the layout id should have said so */
		log_err("the image's block of API %zu does not load: %s", index,
			gw ? "it holds more than one API" : errs.n ? errs.msg[0] : "out of memory");
		/* a bug, not damage, but the cure is the same: the document */
		damaged(img, "API %llu's block does not load", (unsigned long long)index);
		gw_free(gw);
		cfg_errors_release(&errs);
		return NULL;
	}
	cfg_errors_release(&errs);
	gw->image = img;
	/* a cached gateway a request still uses is only given back by the
	 * eviction: the request holds it (gw_hold) */
	img->slots[cache_slot(img, (size_t)d->len)] = (uint32_t)index;
	img->apis[index] = gw;
	return gw;
}

const struct gw_subscription *image_find_key(const struct gateway *gw,
					     const unsigned char digest[32],
					     struct gw_subscription *out)
{
	struct gw_image *img = gw->image;
	uint64_t mask = img->h.sub_buckets - 1, slot;

	memcpy(&slot, digest, 8);
	for (uint64_t i = 0; i <= mask; i++, slot++) {
		const uint64_t *b = need_in(img, SEC_SUBS, (slot & mask) * 8, 8);
		const struct img_sub *r;
		const char *id, *target;

		if (!b || *b == 0)
			return NULL;
		if (*b % 8) {
			damaged(img, "a subscription record is misaligned (at %llu)", (unsigned long long)*b);
			return NULL;
		}
		r = need_in(img, SEC_SUBS, *b, sizeof(*r));
		if (!r)
			return NULL;
		if (CRYPTO_memcmp(r->digest, digest, 32) != 0)
			continue;
		id = need_in(img, SEC_SUBS, *b + sizeof(*r), (uint64_t)r->id_len + 1);
		target = need_in(img, SEC_SUBS, *b + sizeof(*r) + r->id_len + 1,
				 (uint64_t)r->target_len + 1);
		if (!id || !target || id[r->id_len] || target[r->target_len] || r->scope > GW_SCOPE_PRODUCT) {
			damaged(img, "a subscription record is damaged (at %llu)", (unsigned long long)*b);
			return NULL;
		}
		memset(out, 0, sizeof(*out));
		out->id = (char *)(uintptr_t)id;
		out->scope = (enum gw_scope_kind)r->scope;
		out->active = (int)r->active;
		out->expires = r->expires;
		/* the scope, resolved against the API's gateway: another API or a
		 * product that does not include this one resolves to nothing */
		if (r->scope == GW_SCOPE_API && gw->n_apis == 1 && strcmp(gw->apis[0].id, target) == 0)
			out->api = &gw->apis[0];
		for (size_t k = 0; r->scope == GW_SCOPE_PRODUCT && k < gw->n_products; k++)
			if (strcmp(gw->products[k].id, target) == 0)
				out->product = &gw->products[k];
		return out;
	}
	return NULL;
}
