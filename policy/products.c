/*
 * products — products, subscriptions, pools, circuit breakers and the key
 * table (products.h, loader.h).
 */
#include "policy/products.h"

#include <json-c/json.h>
#include <openssl/crypto.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/image.h"
#include "policy/loader.h"
#include "policy/policies.h"

#define POOL_MAX 64

struct keytab_entry {
	const unsigned char *digest;	/* NULL: empty */
	const struct gw_subscription *sub;
};

struct gw_keytab {
	struct keytab_entry *v;
	size_t mask;
};

/* ids sorted for a binary search: a product may list 100,000 APIs and
 * there may be as many subscriptions, so no linear look-ups */
struct id_index {
	struct id_slot {
		const char *id;
		size_t i;
	} *v;
	size_t n;
};

static int slot_cmp(const void *a, const void *b)
{
	return strcmp(((const struct id_slot *)a)->id, ((const struct id_slot *)b)->id);
}

/* Indexes the n ids at base + i * stride (a char * member of an array). */
static int index_build(struct id_index *ix, const void *base, size_t n, size_t stride,
		       size_t off)
{
	ix->n = 0;
	ix->v = calloc(n ? n : 1, sizeof(*ix->v));
	if (!ix->v)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const char *id = *(char *const *)(const void *)((const char *)base + i * stride + off);

		if (id) {
			ix->v[ix->n].id = id;
			ix->v[ix->n++].i = i;
		}
	}
	qsort(ix->v, ix->n, sizeof(*ix->v), slot_cmp);
	return 0;
}

/* The position of id, or -1. */
static long index_find(const struct id_index *ix, const char *id)
{
	struct id_slot key = { id, 0 };
	const struct id_slot *s = ix->v ? bsearch(&key, ix->v, ix->n, sizeof(key), slot_cmp) : NULL;

	return s ? (long)s->i : -1;
}

void products_parse(struct loader *ld, json_object *v)
{
	static const char *const known[] = { "id", "apis", "policies", NULL };
	struct gateway *gw = ld->gw;
	struct id_index apis = { NULL, 0 };
	unsigned char *seen = NULL;	/* per API: listed by this product already */
	char **ids = NULL;
	size_t n;

	if (ld_is_array(ld, v) != 0)
		return;
	n = json_object_array_length(v);
	if (n == 0)
		return;
	gw->products = calloc(n, sizeof(*gw->products));
	ids = calloc(n, sizeof(*ids));
	seen = calloc(gw->n_apis ? gw->n_apis : 1, 1);
	if (!gw->products || !ids || !seen ||
	    index_build(&apis, gw->apis, gw->n_apis, sizeof(*gw->apis),
			offsetof(struct gw_api, id)) != 0) {
		ld_err(ld, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		json_object *o = json_object_array_get_idx(v, i), *a;
		struct gw_product *pr = &gw->products[i];
		size_t mark = ld_push_index(ld, i), m2;

		gw->n_products = i + 1;
		pr->index = i;
		if (ld_is_object(ld, o) != 0) {
			ld_pop(ld, mark);
			continue;
		}
		ld_check_members(ld, o, known);
		a = ld_get(ld, o, "id", 1);
		if (a) {
			m2 = ld_push_member(ld, "id");
			ld_id(ld, a, &pr->id);
			ids[i] = pr->id;
			ld_pop(ld, m2);
		}
		a = ld_get(ld, o, "apis", 1);
		if (a) {
			m2 = ld_push_member(ld, "apis");
			if (ld_is_array(ld, a) == 0) {
				size_t na = json_object_array_length(a);

				pr->apis = calloc(na ? na : 1, sizeof(*pr->apis));
				if (!pr->apis)
					ld_err(ld, "out of memory");
				for (size_t j = 0; pr->apis && j < na; j++) {
					size_t m3 = ld_push_index(ld, j);
					char *id;

					if (ld_id(ld, json_object_array_get_idx(a, j), &id) == 0) {
						long k = index_find(&apis, id);

						if (k < 0)
							ld_err(ld, "'%s' is not an API", id);
						else if (seen[k])
							ld_err(ld, "'%s' is listed twice", id);
						else
							pr->apis[pr->n_apis++] = &gw->apis[k];
						if (k >= 0)
							seen[k] = 1;
						free(id);
					}
					ld_pop(ld, m3);
				}
			}
			ld_pop(ld, m2);
		}
		a = ld_get(ld, o, "policies", 0);
		if (a) {
			m2 = ld_push_member(ld, "policies");
			pol_parse_scope(ld, a, &pr->policies);
			ld_pop(ld, m2);
		}
		for (size_t j = 0; j < pr->n_apis; j++)
			seen[pr->apis[j] - gw->apis] = 0;
		ld_pop(ld, mark);
	}
	ld_check_unique_ids(ld, (const char *const *)ids, n);
out:
	free(ids);
	free(seen);
	free(apis.v);
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static int digits(const char *s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

/* Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

int products_parse_time(const char *s, int64_t *out)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int y, mo, d, h, mi, se, oh = 0, om = 0, sign = 0;
	const char *p;

	if (strlen(s) < 20 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) ||
	    s[7] != '-' || digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
	    digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' ||
	    digits(s + 17, 2, &se))
		return -1;
	p = s + 19;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -1;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p == '+' ? 1 : -1;
		if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) || oh > 23 ||
		    om > 59)
			return -1;
		p += 6;
	} else {
		return -1;
	}
	if (*p || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 ||
	    se > 60)
		return -1;
	if (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return -1;
	*out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se -
	       sign * (oh * 3600 + om * 60);
	return 0;
}

static void parse_subscription(struct loader *ld, json_object *o, struct gw_subscription *sub,
			       const struct id_index *apis, const struct id_index *products)
{
	static const char *const known[] = { "id", "scope", "keys_sha256", "state", "expires",
		NULL };
	struct gateway *gw = ld->gw;
	json_object *a;
	size_t m2;
	char *s;

	sub->active = 1;
	if (ld_is_object(ld, o) != 0)
		return;
	ld_check_members(ld, o, known);
	a = ld_get(ld, o, "id", 1);
	if (a) {
		m2 = ld_push_member(ld, "id");
		ld_id(ld, a, &sub->id);
		ld_pop(ld, m2);
	}
	a = ld_get(ld, o, "scope", 1);
	if (a) {
		m2 = ld_push_member(ld, "scope");
		if (ld_string(ld, a, 0, &s, NULL) == 0) {
			if (strcmp(s, "all") == 0) {
				sub->scope = GW_SCOPE_ALL;
			} else if (strncmp(s, "api:", 4) == 0) {
				sub->scope = GW_SCOPE_API;
				long k = index_find(apis, s + 4);

				sub->api = k >= 0 ? &gw->apis[k] : NULL;
				if (!sub->api)
					ld_err_value(ld, s, 0, "names an API that does not exist");
			} else if (strncmp(s, "product:", 8) == 0) {
				sub->scope = GW_SCOPE_PRODUCT;
				long k = index_find(products, s + 8);

				sub->product = k >= 0 ? &gw->products[k] : NULL;
				if (!sub->product)
					ld_err_value(ld, s, 0, "names a product that does not exist");
			} else {
				ld_err_value(ld, s, 0, "is not a scope ('all', 'api:ID' or "
					     "'product:ID')");
			}
			free(s);
		}
		ld_pop(ld, m2);
	}
	a = ld_get(ld, o, "keys_sha256", 1);
	if (a) {
		m2 = ld_push_member(ld, "keys_sha256");
		if (ld_is_array(ld, a) == 0) {
			size_t n = json_object_array_length(a);

			if (n == 0 || n > PRODUCTS_MAX_KEYS)
				ld_err(ld, "must hold 1 to %d keys", PRODUCTS_MAX_KEYS);
			else if (!(sub->keys = calloc(n, sizeof(*sub->keys))))
				ld_err(ld, "out of memory");
			for (size_t i = 0; sub->keys && i < n; i++) {
				json_object *k = json_object_array_get_idx(a, i);
				size_t m3 = ld_push_index(ld, i);
				const char *h;
				int ok = 1;

				if (json_object_is_type(k, json_type_string) &&
				    json_object_get_string_len(k) == 64) {
					h = json_object_get_string(k);
					for (int j = 0; j < 32 && ok; j++) {
						int hi = hexval(h[2 * j]), lo = hexval(h[2 * j + 1]);

						if (hi < 0 || lo < 0)
							ok = 0;
						else
							sub->keys[sub->n_keys][j] =
								(unsigned char)(hi << 4 | lo);
					}
				} else {
					ok = 0;
				}
				if (ok)
					sub->n_keys++;
				else
					ld_err(ld, "must be a SHA-256 digest: 64 lowercase hex digits");
				ld_pop(ld, m3);
			}
		}
		ld_pop(ld, m2);
	}
	a = ld_get(ld, o, "state", 0);
	if (a) {
		m2 = ld_push_member(ld, "state");
		if (ld_string(ld, a, 0, &s, NULL) == 0) {
			if (strcmp(s, "active") == 0)
				sub->active = 1;
			else if (strcmp(s, "suspended") == 0)
				sub->active = 0;
			else
				ld_err_value(ld, s, 0, "is not a state ('active' or 'suspended')");
			free(s);
		}
		ld_pop(ld, m2);
	}
	a = ld_get(ld, o, "expires", 0);
	if (a) {
		m2 = ld_push_member(ld, "expires");
		if (ld_string(ld, a, 0, &s, NULL) == 0) {
			if (products_parse_time(s, &sub->expires) != 0)
				ld_err_value(ld, s, 0, "is not an RFC 3339 date-time "
					     "(2027-01-01T00:00:00Z)");
			else if (sub->expires == 0)
				sub->expires = 1;
			free(s);
		}
		ld_pop(ld, m2);
	}
}

void products_parse_subscriptions(struct loader *ld, json_object *v)
{
	struct gateway *gw = ld->gw;
	struct id_index apis = { NULL, 0 }, products = { NULL, 0 };
	char **ids = NULL;
	size_t n;

	if (ld_is_array(ld, v) != 0)
		return;
	n = json_object_array_length(v);
	if (n == 0)
		return;
	gw->subscriptions = calloc(n, sizeof(*gw->subscriptions));
	ids = calloc(n, sizeof(*ids));
	if (!gw->subscriptions || !ids ||
	    index_build(&apis, gw->apis, gw->n_apis, sizeof(*gw->apis),
			offsetof(struct gw_api, id)) != 0 ||
	    index_build(&products, gw->products, gw->n_products, sizeof(*gw->products),
			offsetof(struct gw_product, id)) != 0) {
		ld_err(ld, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		size_t mark = ld_push_index(ld, i);

		gw->n_subscriptions = i + 1;
		parse_subscription(ld, json_object_array_get_idx(v, i), &gw->subscriptions[i], &apis,
				   &products);
		ids[i] = gw->subscriptions[i].id;
		ld_pop(ld, mark);
	}
	ld_check_unique_ids(ld, (const char *const *)ids, n);
out:
	free(ids);
	free(apis.v);
	free(products.v);
}

void products_parse_pool(struct loader *ld, json_object *v, struct gw_backend *be)
{
	static const char *const known[] = { "url", "weight", "priority", NULL };
	size_t n;
	uint32_t best = UINT32_MAX;

	if (ld_is_array(ld, v) != 0)
		return;
	n = json_object_array_length(v);
	if (n == 0 || n > POOL_MAX) {
		ld_err(ld, "must hold 1 to %d members", POOL_MAX);
		return;
	}
	be->pool = calloc(n, sizeof(*be->pool));
	if (!be->pool) {
		ld_err(ld, "out of memory");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		json_object *o = json_object_array_get_idx(v, i), *u;
		struct gw_pool_member *m = &be->pool[be->n_pool];
		size_t mark = ld_push_index(ld, i), m2;
		int64_t w = 1, pr = 1;

		if (ld_is_object(ld, o) != 0) {
			ld_pop(ld, mark);
			continue;
		}
		ld_check_members(ld, o, known);
		u = ld_get(ld, o, "url", 1);
		if (u) {
			char *s;
			int secret;

			m2 = ld_push_member(ld, "url");
			if (ld_string(ld, u, STR_SUBST, &s, &secret) == 0) {
				ld_check_url(ld, s, secret, &m->url);
				explicit_bzero(s, strlen(s));
				free(s);
			}
			ld_pop(ld, m2);
		}
		u = ld_get(ld, o, "weight", 0);
		if (u) {
			m2 = ld_push_member(ld, "weight");
			ld_int(ld, u, 1, 1000, &w);
			ld_pop(ld, m2);
		}
		u = ld_get(ld, o, "priority", 0);
		if (u) {
			m2 = ld_push_member(ld, "priority");
			ld_int(ld, u, 1, 100, &pr);
			ld_pop(ld, m2);
		}
		m->weight = (uint32_t)w;
		m->priority = (uint32_t)pr;
		if (m->url) {
			be->n_pool++;
			if (m->priority < best) {
				best = m->priority;
				free(be->url);
				be->url = strdup(m->url);
				if (!be->url)
					ld_err(ld, "out of memory");
			}
		}
		ld_pop(ld, mark);
	}
}

void products_parse_breaker(struct loader *ld, json_object *v, struct gw_backend *be)
{
	static const char *const known[] = { "failures", "interval_s", "trip_duration_s", NULL };
	int64_t f = 5, i = 60, t = 30;
	json_object *a;
	size_t mark;

	if (ld_is_object(ld, v) != 0)
		return;
	ld_check_members(ld, v, known);
	a = ld_get(ld, v, "failures", 1);
	if (a) {
		mark = ld_push_member(ld, "failures");
		ld_int(ld, a, 1, 1000000, &f);
		ld_pop(ld, mark);
	}
	a = ld_get(ld, v, "interval_s", 0);
	if (a) {
		mark = ld_push_member(ld, "interval_s");
		ld_int(ld, a, 1, 86400, &i);
		ld_pop(ld, mark);
	}
	a = ld_get(ld, v, "trip_duration_s", 0);
	if (a) {
		mark = ld_push_member(ld, "trip_duration_s");
		ld_int(ld, a, 1, 86400, &t);
		ld_pop(ld, mark);
	}
	be->cb_failures = (uint32_t)f;
	be->cb_interval_s = (uint32_t)i;
	be->cb_trip_s = (uint32_t)t;
}

static size_t slot_of(const unsigned char *d, size_t mask)
{
	uint64_t h;

	memcpy(&h, d, sizeof(h));
	return (size_t)(h & mask);
}

int products_build_keytab(struct loader *ld)
{
	struct gateway *gw = ld->gw;
	struct gw_keytab *kt;
	size_t total = 0, size = 16;

	for (size_t i = 0; i < gw->n_subscriptions; i++)
		total += gw->subscriptions[i].n_keys;
	while (size < total * 2)
		size *= 2;
	kt = calloc(1, sizeof(*kt));
	if (kt)
		kt->v = calloc(size, sizeof(*kt->v));
	if (!kt || !kt->v) {
		free(kt);
		ld_err(ld, "out of memory");
		return -1;
	}
	kt->mask = size - 1;
	gw->keytab = kt;
	for (size_t i = 0; i < gw->n_subscriptions; i++) {
		const struct gw_subscription *sub = &gw->subscriptions[i];

		for (size_t k = 0; k < sub->n_keys; k++) {
			size_t s = slot_of(sub->keys[k], kt->mask);

			while (kt->v[s].digest) {
				if (memcmp(kt->v[s].digest, sub->keys[k], 32) == 0) {
					size_t mark = ld_push_member(ld, "subscriptions");

					ld_push_index(ld, i);
					ld_push_member(ld, "keys_sha256");
					ld_push_index(ld, k);
					ld_err(ld, "the same key is already used by subscription '%s'",
					       kt->v[s].sub->id);
					ld_pop(ld, mark);
					return -1;
				}
				s = (s + 1) & kt->mask;
			}
			kt->v[s].digest = sub->keys[k];
			kt->v[s].sub = sub;
		}
	}
	return 0;
}

const struct gw_subscription *products_find_key(const struct gateway *gw,
						const unsigned char digest[32],
						struct gw_subscription *buf)
{
	const struct gw_keytab *kt = gw->keytab;
	const struct gw_subscription *found = NULL;
	size_t s;

	/* an API compiled from an image: the subscriptions stay in the image */
	if (gw->image && !gw->owns_image)
		return image_find_key(gw, digest, buf);
	if (!kt)
		return NULL;
	/* the probe sequence depends only on the digest of what the client sent;
	 * each candidate is compared in constant time */
	for (s = slot_of(digest, kt->mask); kt->v[s].digest; s = (s + 1) & kt->mask)
		if (CRYPTO_memcmp(kt->v[s].digest, digest, 32) == 0)
			found = kt->v[s].sub;
	return found;
}

int products_sub_covers(const struct gw_subscription *sub, const struct gw_api *api)
{
	switch (sub->scope) {
	case GW_SCOPE_ALL:
		return 1;
	case GW_SCOPE_API:
		return sub->api == api;
	case GW_SCOPE_PRODUCT: {
		/* the API's products, sorted by index (pol_compile): a product may
		 * hold 100,000 APIs, an API only a few products */
		size_t lo = 0, hi = api->n_products;

		while (sub->product && lo < hi) {
			size_t mid = lo + (hi - lo) / 2;

			if (api->products[mid] == sub->product)
				return 1;
			if (api->products[mid]->index < sub->product->index)
				lo = mid + 1;
			else
				hi = mid;
		}
		return 0;
	}
	}
	return 0;
}

void products_free(struct gateway *gw)
{
	for (size_t i = 0; i < gw->n_products; i++) {
		free(gw->products[i].id);
		free(gw->products[i].apis);
	}
	free(gw->products);
	gw->products = NULL;
	gw->n_products = 0;
	for (size_t i = 0; i < gw->n_subscriptions; i++) {
		struct gw_subscription *sub = &gw->subscriptions[i];

		free(sub->id);
		if (sub->keys) {
			explicit_bzero(sub->keys, sub->n_keys * sizeof(*sub->keys));
			free(sub->keys);
		}
	}
	free(gw->subscriptions);
	gw->subscriptions = NULL;
	gw->n_subscriptions = 0;
	if (gw->keytab) {
		free(gw->keytab->v);
		free(gw->keytab);
		gw->keytab = NULL;
	}
	for (size_t i = 0; i < gw->n_backends; i++) {
		struct gw_backend *be = &gw->backends[i];

		for (size_t j = 0; j < be->n_pool; j++)
			free(be->pool[j].url);
		free(be->pool);
		be->pool = NULL;
		be->n_pool = 0;
	}
}
