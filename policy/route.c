/*
 * route — the route table (see route.h for the contract).
 *
 * Two kinds of trie, one node type:
 *  - the API trie, built once per gateway: one node per decoded, lower-cased
 *    API path segment; children sorted by key for binary search; a node where
 *    APIs end holds those with hostnames (sorted by hostname) and the one
 *    without;
 *  - an operation trie per API: literal children (sorted, as above), one
 *    {param} child, and two method lists: templates that end at the node and
 *    templates whose {*rest} starts at it.
 *
 * A match walks the request's segments once down the API trie, remembering
 * every node where an API ends, and tries them deepest first. The operation
 * walk is a depth-first search in the order literal, {param}, {*rest}; each
 * node is reached by one path only, so it visits at most every node of the
 * API's operation trie once. At a node where templates end the method is
 * chosen exact first, then "*"; when neither fits, the search goes on, so
 * "GET /items/{id}" still serves GET /items/new when only "POST /items/new"
 * exists.
 *
 * Request segments are compared without being copied: a raw segment is
 * decoded and lower-cased byte by byte as it is compared with a key, which was
 * decoded and lower-cased at build time. Both orders are unsigned-byte
 * lexicographic with a prefix first, so the binary searches agree.
 *
 * A path must be empty or start with '/' (PATH_INFO and REQUEST_URI always
 * do); anything else is ROUTE_BAD_PATH. Matching splits on the raw '/' only:
 * "group%2Fproject" is one segment (the dot check in path_check splits on
 * the decoded '/' and '\' as well).
 */
#include "policy/route.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/image.h"
#include "policy/path.h"

#define ROUTE_MAX_SEGMENT_BYTES 4096	/* a longer raw segment: ROUTE_BAD_PATH */
#define ROUTE_MAX_PARAM_NAME 64
#define ROUTE_MAX_TEMPLATE 8192

struct rt_host {
	char *host;		/* normalised: lower case, no port, no trailing dot */
	const struct gw_api *api;
	size_t index;		/* in gw->apis, for messages */
};

struct rt_leaf {
	const char *method;	/* borrowed from the operation */
	const struct gw_operation *op;
	size_t index;		/* in api->operations, for messages */
	char **names;		/* owned; the parameters in template order */
	size_t n_names;
};

struct rt_node {
	char *key;		/* decoded, lower-cased segment; NULL at a root or {param} */
	size_t key_len;
	struct rt_node **kids;	/* sorted by key */
	size_t n_kids, cap_kids;
	/* API trie */
	struct rt_host *hosts;	/* sorted by host once built */
	size_t n_hosts, cap_hosts;
	const struct gw_api *any;	/* the API here without hostnames */
	size_t any_index;
	/* operation trie */
	struct rt_node *param;
	struct rt_leaf *leaves;	/* templates ending here */
	size_t n_leaves;
	struct rt_leaf *rests;	/* templates whose {*name} starts here */
	size_t n_rests;
};

struct route_table {
	struct rt_node *root;
};

struct route_ops {
	struct rt_node *root;
};

/* a non-empty segment of a request path */
struct seg {
	const char *raw;
	size_t len;
};

/* ---- helpers ------------------------------------------------------------ */

static unsigned char lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/* Grows an array to hold need elements; returns the (moved) array, or NULL
 * with the old one intact. */
static void *grow(void *v, size_t *cap, size_t need, size_t size)
{
	size_t ncap = *cap ? *cap : 4;
	void *p;

	if (need <= *cap)
		return v;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2)
			return NULL;
		ncap *= 2;
	}
	if (ncap > SIZE_MAX / size)
		return NULL;
	p = realloc(v, ncap * size);
	if (!p)
		return NULL;
	*cap = ncap;
	return p;
}

static int key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c != 0)
		return c;
	return alen < blen ? -1 : alen > blen;
}

/* Compares a raw request segment, decoded and lower-cased on the fly, with a
 * key. The path was checked by path_check, so escapes are well formed; a
 * stray '%' would be compared as itself. */
static int seg_cmp(const char *raw, size_t len, const char *key, size_t klen)
{
	size_t i = 0, k = 0;

	while (i < len && k < klen) {
		unsigned char c = (unsigned char)raw[i];

		if (c == '%' && len - i >= 3 && path_hexval((unsigned char)raw[i + 1]) >= 0 &&
		    path_hexval((unsigned char)raw[i + 2]) >= 0) {
			c = (unsigned char)(path_hexval((unsigned char)raw[i + 1]) << 4 |
					    path_hexval((unsigned char)raw[i + 2]));
			i += 3;
		} else {
			i++;
		}
		c = lower(c);
		if (c != (unsigned char)key[k])
			return c < (unsigned char)key[k] ? -1 : 1;
		k++;
	}
	if (i < len)
		return 1;
	return k < klen ? -1 : 0;
}

static const struct rt_node *kid_find(const struct rt_node *n, const char *raw, size_t len)
{
	size_t lo = 0, hi = n->n_kids;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct rt_node *k = n->kids[mid];
		int c = seg_cmp(raw, len, k->key, k->key_len);

		if (c == 0)
			return k;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* Returns the child with this decoded key, adding it; NULL when out of memory. */
static struct rt_node *kid_add(struct rt_node *n, const char *key, size_t klen)
{
	size_t lo = 0, hi = n->n_kids;
	struct rt_node *k, **v;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = key_cmp(key, klen, n->kids[mid]->key, n->kids[mid]->key_len);

		if (c == 0)
			return n->kids[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	v = grow(n->kids, &n->cap_kids, n->n_kids + 1, sizeof(*v));
	if (!v)
		return NULL;
	n->kids = v;
	k = calloc(1, sizeof(*k));
	if (!k)
		return NULL;
	k->key = malloc(klen + 1);
	if (!k->key) {
		free(k);
		return NULL;
	}
	memcpy(k->key, key, klen);
	k->key[klen] = '\0';
	k->key_len = klen;
	memmove(&n->kids[lo + 1], &n->kids[lo], (n->n_kids - lo) * sizeof(*v));
	n->kids[lo] = k;
	n->n_kids++;
	return k;
}

static void leaves_free(struct rt_leaf *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < v[i].n_names; j++)
			free(v[i].names[j]);
		free(v[i].names);
	}
	free(v);
}

static void node_free(struct rt_node *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->n_kids; i++)
		node_free(n->kids[i]);
	free(n->kids);
	for (size_t i = 0; i < n->n_hosts; i++)
		free(n->hosts[i].host);
	free(n->hosts);
	node_free(n->param);
	leaves_free(n->leaves, n->n_leaves);
	leaves_free(n->rests, n->n_rests);
	free(n->key);
	free(n);
}

long route_host_norm(const char *h, size_t len, char *dst)
{
	const char *end, *colon;
	size_t n;

	if (len > 0 && h[0] == '[') {
		end = memchr(h, ']', len);
		if (!end)
			return -1;
		h++;
	} else {
		end = h + len;
		colon = memchr(h, ':', len);
		/* more than one ':' is a bare IPv6 address, not a port */
		if (colon && !memchr(colon + 1, ':', (size_t)(end - colon - 1)))
			end = colon;
	}
	n = (size_t)(end - h);
	if (n > 0 && h[n - 1] == '.')
		n--;
	if (n == 0 || n > ROUTE_MAX_HOST)
		return -1;
	for (size_t i = 0; i < n; i++)
		dst[i] = (char)lower((unsigned char)h[i]);
	dst[n] = '\0';
	return (long)n;
}

/* Splits a raw path into its non-empty segments. Returns the count, or -1
 * when there are too many or one is too long. */
static long split_path(const char *path, size_t len, struct seg *segs)
{
	size_t i = 0, n = 0;

	while (i < len) {
		size_t start;

		while (i < len && path[i] == '/')
			i++;
		if (i == len)
			break;
		start = i;
		while (i < len && path[i] != '/')
			i++;
		if (n == ROUTE_MAX_SEGMENTS || i - start > ROUTE_MAX_SEGMENT_BYTES)
			return -1;
		segs[n].raw = path + start;
		segs[n].len = i - start;
		n++;
	}
	return (long)n;
}

/* ---- building the API trie ---------------------------------------------- */

/* An API path in a form that sorts like the trie: decoded, lower-cased
 * segments joined by NUL (no segment holds a NUL: path_check refuses it). */
struct api_key {
	char *flat;
	size_t len;
	size_t index;
};

static int api_key_cmp(const void *a, const void *b)
{
	const struct api_key *x = a, *y = b;
	int c = key_cmp(x->flat, x->len, y->flat, y->len);

	if (c != 0)
		return c;
	return x->index < y->index ? -1 : x->index > y->index;
}

static int host_cmp(const void *a, const void *b)
{
	const struct rt_host *x = a, *y = b;
	int c = strcmp(x->host, y->host);

	if (c != 0)
		return c;
	return x->index < y->index ? -1 : x->index > y->index;
}

/* "apis[i].path" or "apis[i].operations[j].url_template" into buf (room for
 * 96): built for every API and operation, so without printf. */
static const char *api_jpath(char *buf, size_t i, const size_t *j)
{
	char num[24];
	size_t n = 0, k;

	memcpy(buf, "apis[", 5);
	n = 5;
	k = sizeof(num);
	do {
		num[--k] = (char)('0' + i % 10);
		i /= 10;
	} while (i);
	memcpy(buf + n, num + k, sizeof(num) - k);
	n += sizeof(num) - k;
	if (!j) {
		memcpy(buf + n, "].path", 7);
		return buf;
	}
	memcpy(buf + n, "].operations[", 13);
	n += 13;
	i = *j;
	k = sizeof(num);
	do {
		num[--k] = (char)('0' + i % 10);
		i /= 10;
	} while (i);
	memcpy(buf + n, num + k, sizeof(num) - k);
	n += sizeof(num) - k;
	memcpy(buf + n, "].url_template", 15);
	return buf;
}

/* Decodes and validates apis[i].path into k. Returns 0, or -1 with an error. */
static int api_key_make(const struct gw_api *api, size_t i, struct api_key *k,
			struct cfg_errors *errs)
{
	const char *p = api->path ? api->path : "";
	size_t len = strlen(p), pos = 0, nseg = 0;
	char jpath[96];

	api_jpath(jpath, i, NULL);
	k->index = i;
	k->len = 0;
	if (strpbrk(p, "?#")) {
		cfg_error(errs, jpath, "'%s' must not contain '?' or '#'", p);
		return -1;
	}
	if (path_check(p, len) != 0) {
		cfg_error(errs, jpath, "'%s' has a '.' or '..' segment, a malformed escape "
			  "or an encoded NUL, CR or LF", p);
		return -1;
	}
	k->flat = malloc(len + 1);
	if (!k->flat) {
		cfg_error(errs, jpath, "out of memory");
		return -1;
	}
	while (pos < len) {
		size_t start;
		long d;

		while (pos < len && p[pos] == '/')
			pos++;
		if (pos == len)
			break;
		start = pos;
		while (pos < len && p[pos] != '/')
			pos++;
		if (++nseg > ROUTE_MAX_SEGMENTS || pos - start > ROUTE_MAX_SEGMENT_BYTES) {
			cfg_error(errs, jpath, "'%s' has more than %d segments or one longer "
				  "than %d bytes", p, ROUTE_MAX_SEGMENTS, ROUTE_MAX_SEGMENT_BYTES);
			return -1;
		}
		if (k->len > 0)
			k->flat[k->len++] = '\0';
		d = path_decode(p + start, pos - start, k->flat + k->len);
		if (d < 0)
			return -1;	/* path_check already refused it */
		for (long j = 0; j < d; j++)
			k->flat[k->len + (size_t)j] = (char)lower((unsigned char)k->flat[k->len + (size_t)j]);
		k->len += (size_t)d;
	}
	return 0;
}

int route_api_key(const char *path, char **key, size_t *len)
{
	struct gw_api api;
	struct api_key k;
	struct cfg_errors errs = CFG_ERRORS_INIT;
	int rc;

	memset(&api, 0, sizeof(api));
	memset(&k, 0, sizeof(k));
	api.path = (char *)(uintptr_t)path;
	rc = api_key_make(&api, 0, &k, &errs);
	cfg_errors_release(&errs);
	if (rc != 0) {
		free(k.flat);
		return -1;
	}
	*key = k.flat;
	*len = k.len;
	return 0;
}

static int api_insert(struct rt_node *root, const struct gateway *gw, const struct api_key *k,
		      struct cfg_errors *errs)
{
	const struct gw_api *api = &gw->apis[k->index];
	struct rt_node *n = root;
	size_t pos = 0;
	char jpath[96];
	int rc = 0;

	api_jpath(jpath, k->index, NULL);
	while (pos < k->len) {
		const char *end = memchr(k->flat + pos, '\0', k->len - pos);
		size_t slen = end ? (size_t)(end - (k->flat + pos)) : k->len - pos;

		n = kid_add(n, k->flat + pos, slen);
		if (!n) {
			cfg_error(errs, jpath, "out of memory");
			return -1;
		}
		pos += slen + 1;
	}
	if (api->n_hostnames == 0) {
		if (n->any) {
			cfg_error(errs, jpath, "'%s' is the same path as apis[%zu], and neither "
				  "has hostnames", api->path ? api->path : "", n->any_index);
			return -1;
		}
		n->any = api;
		n->any_index = k->index;
		return 0;
	}
	for (size_t h = 0; h < api->n_hostnames; h++) {
		char buf[ROUTE_MAX_HOST + 1], hpath[96];
		const char *name = api->hostnames[h] ? api->hostnames[h] : "";
		struct rt_host *v;
		long hl = route_host_norm(name, strlen(name), buf);

		if (hl < 0) {
			snprintf(hpath, sizeof(hpath), "apis[%zu].hostnames[%zu]", k->index, h);
			cfg_error(errs, hpath, "'%s' is not a hostname", name);
			rc = -1;
			continue;
		}
		v = grow(n->hosts, &n->cap_hosts, n->n_hosts + 1, sizeof(*v));
		if (!v) {
			cfg_error(errs, jpath, "out of memory");
			return -1;
		}
		n->hosts = v;
		v[n->n_hosts].host = strdup(buf);
		if (!v[n->n_hosts].host) {
			cfg_error(errs, jpath, "out of memory");
			return -1;
		}
		v[n->n_hosts].api = api;
		v[n->n_hosts].index = k->index;
		n->n_hosts++;
	}
	return rc;
}

/* Sorts every node's hostnames, drops an API's repeated ones and reports two
 * APIs at one path serving one host. */
static int hosts_finish(struct rt_node *n, const struct gateway *gw, struct cfg_errors *errs)
{
	size_t w = 0;
	int rc = 0;

	for (size_t i = 0; i < n->n_kids; i++)
		if (hosts_finish(n->kids[i], gw, errs) != 0)
			rc = -1;
	if (n->n_hosts == 0)
		return rc;
	qsort(n->hosts, n->n_hosts, sizeof(*n->hosts), host_cmp);
	for (size_t i = 0; i < n->n_hosts; i++) {
		struct rt_host *h = &n->hosts[i];

		if (w > 0 && strcmp(n->hosts[w - 1].host, h->host) == 0) {
			if (n->hosts[w - 1].index != h->index) {
				char jpath[64];
				const char *p = gw->apis[h->index].path;

				snprintf(jpath, sizeof(jpath), "apis[%zu].path", h->index);
				cfg_error(errs, jpath, "'%s' is the same path as apis[%zu], and both "
					  "serve host '%s'", p ? p : "", n->hosts[w - 1].index, h->host);
				rc = -1;
			}
			free(h->host);
			continue;
		}
		n->hosts[w++] = *h;
	}
	n->n_hosts = w;
	return rc;
}

static int apis_build(struct gateway *gw, struct route_table *t, struct cfg_errors *errs)
{
	struct api_key *keys;
	size_t n = 0;
	int rc = 0;

	keys = calloc(gw->n_apis ? gw->n_apis : 1, sizeof(*keys));
	if (!keys) {
		cfg_error(errs, "apis", "out of memory");
		return -1;
	}
	for (size_t i = 0; i < gw->n_apis; i++) {
		if (api_key_make(&gw->apis[i], i, &keys[n], errs) != 0) {
			free(keys[n].flat);
			keys[n].flat = NULL;
			rc = -1;
			continue;
		}
		n++;
	}
	/* sorted, every insertion appends to its parent's children */
	if (n)
		qsort(keys, n, sizeof(*keys), api_key_cmp);
	for (size_t i = 0; i < n; i++)
		if (api_insert(t->root, gw, &keys[i], errs) != 0)
			rc = -1;
	if (hosts_finish(t->root, gw, errs) != 0)
		rc = -1;
	for (size_t i = 0; i < n; i++)
		free(keys[i].flat);
	free(keys);
	return rc;
}

/* ---- building an operation trie ---------------------------------------- */

enum tseg_kind { TSEG_LITERAL, TSEG_PARAM, TSEG_REST };

struct tseg {
	enum tseg_kind kind;
	char *text;		/* owned: decoded lower-cased literal, or parameter name */
	size_t len;
};

static int name_valid(const char *s, size_t n)
{
	if (n == 0 || n > ROUTE_MAX_PARAM_NAME)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

/* Parses one template into segs (room for ROUTE_MAX_SEGMENTS). Returns the
 * count, or -1 with an error at jpath; segs[0..count) own their text either
 * way (the caller frees them). */
static long template_parse(const char *t, const char *jpath, struct tseg *segs, size_t *nsegs,
			   struct cfg_errors *errs)
{
	size_t len, pos = 0, n = 0, params = 0;

	*nsegs = 0;
	if (!t || t[0] != '/') {
		cfg_error(errs, jpath, "'%s' must start with '/'", t ? t : "");
		return -1;
	}
	len = strlen(t);
	if (len > ROUTE_MAX_TEMPLATE) {
		cfg_error(errs, jpath, "template is longer than %d bytes", ROUTE_MAX_TEMPLATE);
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)t[i];

		if (c == '?' || c == '#') {
			cfg_error(errs, jpath, "'%s' must not contain '%c' (a template is a path)", t, c);
			return -1;
		}
		if (c <= ' ' || c == 0x7f) {
			cfg_error(errs, jpath, "'%s' contains a space or a control character", t);
			return -1;
		}
	}
	while (pos < len) {
		size_t start, slen;
		const char *s;
		struct tseg *g;

		while (pos < len && t[pos] == '/')
			pos++;
		if (pos == len)
			break;
		start = pos;
		while (pos < len && t[pos] != '/')
			pos++;
		s = t + start;
		slen = pos - start;
		if (n == ROUTE_MAX_SEGMENTS || slen > ROUTE_MAX_SEGMENT_BYTES) {
			cfg_error(errs, jpath, "'%s' has more than %d segments or one longer than "
				  "%d bytes", t, ROUTE_MAX_SEGMENTS, ROUTE_MAX_SEGMENT_BYTES);
			return -1;
		}
		if (n > 0 && segs[n - 1].kind == TSEG_REST) {
			cfg_error(errs, jpath, "'%s': the catch-all '{*%s}' must be the last segment",
				  t, segs[n - 1].text);
			return -1;
		}
		g = &segs[n];
		if (memchr(s, '{', slen) || memchr(s, '}', slen)) {
			const char *name = s + 1;
			size_t nlen = slen - 2;

			if (slen < 2 || s[0] != '{' || s[slen - 1] != '}' ||
			    memchr(name, '{', nlen) || memchr(name, '}', nlen)) {
				cfg_error(errs, jpath, "'%s': segment '%.*s' mixes text and a parameter; "
					  "a parameter must be a whole segment", t, (int)slen, s);
				return -1;
			}
			g->kind = TSEG_PARAM;
			if (nlen > 0 && name[0] == '*') {
				g->kind = TSEG_REST;
				name++;
				nlen--;
			}
			if (!name_valid(name, nlen)) {
				cfg_error(errs, jpath, "'%s': parameter name '%.*s' must be 1 to %d of "
					  "[A-Za-z0-9_-]", t, (int)nlen, name, ROUTE_MAX_PARAM_NAME);
				return -1;
			}
			for (size_t j = 0; j < n; j++) {
				if (segs[j].kind != TSEG_LITERAL && segs[j].len == nlen &&
				    memcmp(segs[j].text, name, nlen) == 0) {
					cfg_error(errs, jpath, "'%s': parameter '%.*s' appears twice",
						  t, (int)nlen, name);
					return -1;
				}
			}
			if (++params > ROUTE_MAX_PARAMS) {
				cfg_error(errs, jpath, "'%s' has more than %d parameters", t,
					  ROUTE_MAX_PARAMS);
				return -1;
			}
			g->text = malloc(nlen + 1);
			if (!g->text) {
				cfg_error(errs, jpath, "out of memory");
				return -1;
			}
			memcpy(g->text, name, nlen);
			g->text[nlen] = '\0';
			g->len = nlen;
			*nsegs = ++n;
			continue;
		}
		if (path_check(s, slen) != 0) {
			cfg_error(errs, jpath, "'%s': segment '%.*s' is a '.' or '..' segment, or has "
				  "a malformed escape or an encoded NUL, CR or LF", t, (int)slen, s);
			return -1;
		}
		g->kind = TSEG_LITERAL;
		g->text = malloc(slen + 1);
		if (!g->text) {
			cfg_error(errs, jpath, "out of memory");
			return -1;
		}
		*nsegs = ++n;
		g->len = (size_t)path_decode(s, slen, g->text);
		for (size_t j = 0; j < g->len; j++)
			g->text[j] = (char)lower((unsigned char)g->text[j]);
		g->text[g->len] = '\0';
	}
	return (long)n;
}

static int op_insert(struct rt_node *root, const struct gw_api *api, size_t ai, size_t oi,
		     struct cfg_errors *errs)
{
	const struct gw_operation *op = &api->operations[oi];
	struct tseg segs[ROUTE_MAX_SEGMENTS];
	struct rt_node *n = root;
	struct rt_leaf **vp, *v;
	size_t nsegs = 0, *np, cap, names = 0;
	char jpath[96];
	int rc = -1;

	api_jpath(jpath, ai, &oi);
	if (!op->method || !*op->method) {
		char mpath[96];

		snprintf(mpath, sizeof(mpath), "apis[%zu].operations[%zu].method", ai, oi);
		cfg_error(errs, mpath, "missing");
		goto out;
	}
	if (template_parse(op->url_template, jpath, segs, &nsegs, errs) < 0)
		goto out;
	for (size_t i = 0; i < nsegs; i++) {
		if (segs[i].kind == TSEG_LITERAL) {
			n = kid_add(n, segs[i].text, segs[i].len);
		} else if (segs[i].kind == TSEG_PARAM) {
			if (!n->param)
				n->param = calloc(1, sizeof(*n->param));
			n = n->param;
		}
		if (!n) {
			cfg_error(errs, jpath, "out of memory");
			goto out;
		}
		if (segs[i].kind != TSEG_LITERAL)
			names++;
	}
	if (nsegs > 0 && segs[nsegs - 1].kind == TSEG_REST) {
		vp = &n->rests;
		np = &n->n_rests;
	} else {
		vp = &n->leaves;
		np = &n->n_leaves;
	}
	for (size_t i = 0; i < *np; i++) {
		if (strcmp((*vp)[i].method, op->method) == 0) {
			cfg_error(errs, jpath, "'%s %s' has the same method and template as "
				  "operations[%zu] ('%s')", op->method, op->url_template,
				  (*vp)[i].index, (*vp)[i].op->url_template);
			goto out;
		}
	}
	/* arrays of leaves grow one by one: few methods share one template */
	cap = *np;
	v = grow(*vp, &cap, *np + 1, sizeof(*v));
	if (!v) {
		cfg_error(errs, jpath, "out of memory");
		goto out;
	}
	*vp = v;
	v = &v[*np];
	memset(v, 0, sizeof(*v));
	v->method = op->method;
	v->op = op;
	v->index = oi;
	v->names = calloc(names ? names : 1, sizeof(*v->names));
	if (!v->names) {
		cfg_error(errs, jpath, "out of memory");
		goto out;
	}
	(*np)++;
	for (size_t i = 0; i < nsegs; i++) {
		if (segs[i].kind == TSEG_LITERAL)
			continue;
		v->names[v->n_names++] = segs[i].text;
		segs[i].text = NULL;
	}
	rc = 0;
out:
	for (size_t i = 0; i < nsegs; i++)
		free(segs[i].text);
	return rc;
}

/* ---- the public functions ---------------------------------------------- */

int route_build(struct gateway *gw, struct cfg_errors *errs)
{
	struct route_table *t;
	int rc = 0;

	route_free(gw);
	t = calloc(1, sizeof(*t));
	if (t)
		t->root = calloc(1, sizeof(*t->root));
	gw->routes = t;
	if (!t || !t->root) {
		cfg_error(errs, "apis", "out of memory");
		rc = -1;
		goto out;
	}
	if (apis_build(gw, t, errs) != 0)
		rc = -1;
	for (size_t i = 0; i < gw->n_apis; i++) {
		struct gw_api *api = &gw->apis[i];

		if (api->n_operations == 0)
			continue;
		api->ops = calloc(1, sizeof(*api->ops));
		if (api->ops)
			api->ops->root = calloc(1, sizeof(*api->ops->root));
		if (!api->ops || !api->ops->root) {
			cfg_error(errs, "apis", "out of memory");
			rc = -1;
			goto out;
		}
		for (size_t j = 0; j < api->n_operations; j++)
			if (op_insert(api->ops->root, api, i, j, errs) != 0)
				rc = -1;
	}
out:
	if (rc != 0)
		route_free(gw);
	return rc;
}

void route_free(struct gateway *gw)
{
	if (!gw)
		return;
	if (gw->routes) {
		node_free(gw->routes->root);
		free(gw->routes);
		gw->routes = NULL;
	}
	if (!gw->apis)
		return;
	for (size_t i = 0; i < gw->n_apis; i++) {
		if (!gw->apis[i].ops)
			continue;
		node_free(gw->apis[i].ops->root);
		free(gw->apis[i].ops);
		gw->apis[i].ops = NULL;
	}
}

/* ---- matching ----------------------------------------------------------- */

struct op_walk {
	const struct seg *segs;	/* the segments below the API's path */
	size_t n;
	const char *method;
	const char *end;	/* end of the request path */
	struct seg raw[ROUTE_MAX_PARAMS + 1];
	const struct rt_leaf *leaf;
	size_t n_raw;
};

static const struct rt_leaf *pick_method(const struct rt_leaf *v, size_t n, const char *method)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].method, method) == 0)
			return &v[i];
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].method, "*") == 0)
			return &v[i];
	return NULL;
}

/* Matches segs[i..n) below node; pos is where the raw path continues after
 * the last consumed segment, np the parameters captured so far. */
static int op_walk(struct op_walk *w, const struct rt_node *node, size_t i, const char *pos,
		   size_t np)
{
	const struct rt_leaf *leaf;

	if (i == w->n) {
		leaf = pick_method(node->leaves, node->n_leaves, w->method);
		if (leaf && leaf->n_names == np) {
			w->leaf = leaf;
			w->n_raw = np;
			return 1;
		}
	} else {
		const struct seg *s = &w->segs[i];
		const struct rt_node *kid = kid_find(node, s->raw, s->len);

		if (kid && op_walk(w, kid, i + 1, s->raw + s->len, np))
			return 1;
		if (node->param && np < ROUTE_MAX_PARAMS) {
			w->raw[np] = *s;
			if (op_walk(w, node->param, i + 1, s->raw + s->len, np + 1))
				return 1;
		}
	}
	leaf = pick_method(node->rests, node->n_rests, w->method);
	if (leaf && leaf->n_names == np + 1) {
		w->raw[np].raw = pos;
		w->raw[np].len = (size_t)(w->end - pos);
		w->leaf = leaf;
		w->n_raw = np + 1;
		return 1;
	}
	return 0;
}

static const struct gw_api *host_find(const struct rt_node *n, const char *host)
{
	size_t lo = 0, hi = n->n_hosts;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(host, n->hosts[mid].host);

		if (c == 0)
			return n->hosts[mid].api;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* A gateway opened from an image: the image's table picks the API (by the
 * same rules as the API trie), then the API's own gateway, compiled from its
 * block on first use, matches the operation. */
static enum route_status image_match(const struct gateway *gw, const char *path, size_t len,
				     const struct seg *segs, size_t nseg, const char *nhost,
				     const char *host, const char *method, struct route_match *m)
{
	size_t ends[ROUTE_MAX_SEGMENTS + 1], klen = 0, used;
	const struct gateway *api_gw;
	char *key = malloc(len + 1);
	enum route_status st;
	long idx;

	if (!key)
		return ROUTE_UNAVAILABLE;
	ends[0] = 0;
	for (size_t i = 0; i < nseg; i++) {
		long d;

		if (i > 0)
			key[klen++] = '\0';
		d = path_decode(segs[i].raw, segs[i].len, key + klen);
		if (d < 0) {
			free(key);
			return ROUTE_BAD_PATH;	/* path_check let it through: cannot be */
		}
		for (long j = 0; j < d; j++)
			key[klen + (size_t)j] = (char)lower((unsigned char)key[klen + (size_t)j]);
		klen += (size_t)d;
		ends[i + 1] = klen;
	}
	idx = image_find_api(gw->image, key, ends, nseg, nhost, &used);
	free(key);
	if (idx == -1)
		return ROUTE_NO_API;
	if (idx < 0 || !(api_gw = image_api(gw->image, (size_t)idx)))
		return ROUTE_UNAVAILABLE;
	/* the API's gateway holds that API alone: the trie finds it again, at
	 * the same depth, or the block is another API's (a forged directory) */
	st = route_match(api_gw, path, len, host, method, m);
	if ((st == ROUTE_OK || st == ROUTE_NO_OPERATION) &&
	    m->rest == (used ? segs[used - 1].raw + segs[used - 1].len : path))
		return st;
	image_set_damaged(gw->image, "an API's block answers for another path");
	memset(m, 0, sizeof(*m));
	return ROUTE_UNAVAILABLE;
}

enum route_status route_match(const struct gateway *gw, const char *path, size_t len,
			      const char *host, const char *method, struct route_match *m)
{
	struct seg segs[ROUTE_MAX_SEGMENTS];
	struct {
		const struct rt_node *node;
		size_t used;
	} cand[ROUTE_MAX_SEGMENTS + 1];
	char hbuf[ROUTE_MAX_HOST + 1];
	const struct rt_node *node;
	const struct gw_api *api = NULL;
	struct op_walk w;
	size_t nc = 0, used = 0;
	long nseg, hl = -1;

	memset(m, 0, sizeof(*m));
	if (!path) {
		path = "";
		len = 0;
	}
	if (len > 0 && path[0] != '/')
		return ROUTE_BAD_PATH;
	if (path_check(path, len) != 0)
		return ROUTE_BAD_PATH;
	nseg = split_path(path, len, segs);
	if (nseg < 0)
		return ROUTE_BAD_PATH;
	if (host) {
		size_t hlen = strnlen(host, ROUTE_MAX_HOST + 8);

		hl = route_host_norm(host, hlen, hbuf);
	}
	if (gw && gw->owns_image)
		return image_match(gw, path, len, segs, (size_t)nseg, hl >= 0 ? hbuf : NULL,
				   host, method, m);
	if (!gw || !gw->routes || !gw->routes->root)
		return ROUTE_NO_API;
	m->gw = gw;
	node = gw->routes->root;
	for (size_t i = 0;; i++) {
		if (node->any || node->n_hosts) {
			cand[nc].node = node;
			cand[nc].used = i;
			nc++;
		}
		if (i == (size_t)nseg)
			break;
		node = kid_find(node, segs[i].raw, segs[i].len);
		if (!node)
			break;
	}
	while (nc > 0 && !api) {
		nc--;
		if (hl >= 0 && cand[nc].node->n_hosts)
			api = host_find(cand[nc].node, hbuf);
		if (!api)
			api = cand[nc].node->any;
		used = cand[nc].used;
	}
	if (!api)
		return ROUTE_NO_API;
	m->api = api;
	m->rest = used ? segs[used - 1].raw + segs[used - 1].len : path;
	m->rest_len = (size_t)(path + len - m->rest);
	if (api->n_operations == 0 || !api->ops || !api->ops->root)
		return ROUTE_OK;

	memset(&w, 0, sizeof(w));
	w.segs = segs + used;
	w.n = (size_t)nseg - used;
	w.method = method ? method : "";
	w.end = path + len;
	if (!op_walk(&w, api->ops->root, 0, m->rest, 0))
		return ROUTE_NO_OPERATION;
	m->op = w.leaf->op;
	m->n_params = w.n_raw;
	for (size_t i = 0; i < w.n_raw; i++) {
		m->params[i].name = w.leaf->names[i];
		m->params[i].raw = w.raw[i].raw;
		m->params[i].raw_len = w.raw[i].len;
	}
	return ROUTE_OK;
}
