/*
 * cache-lookup — answers a GET from the response cache (APIM's cache-lookup;
 * docs/policies.md has the exact behaviour). Inbound only. On a hit the
 * stored status, headers and body go out with Age (and Cache-Control for
 * downstream-caching-type private/public) and the backend is not called; on
 * a miss the call remembers the key in the reserved variable POL_CACHE_KEY_VAR,
 * which cache-store (pol_cache_store.c) reads in outbound to store the answer
 * (its first byte says where: caching-type internal or not).
 *
 * HEAD is answered from a GET's entry (the app sends no body) and never stored.
 *
 * The key: "r", api id, operation id, "GET", path, then the
 * query part — every listed vary-by-query-parameter's decoded value (or a
 * mark for absent), or the whole raw query when the list is absent — then
 * every vary-by-header's values, then the subscription id (vary-by-developer)
 * and product id (vary-by-developer-groups). Each piece is length-prefixed,
 * so no two different requests make the same key.
 *
 * A stored answer (written by cache-store): "HGR1" NUL status NUL duration
 * NUL count NUL, count times name NUL value NUL, then the body's bytes.
 *
 * Private requests: one with Authorization is neither served from nor stored
 * in the cache unless allow-private-response-caching; one that presented a
 * subscription key only with vary-by-developer, vary-by-developer-groups or
 * allow-private-response-caching (config-v1.md).
 *
 * No store (no usable state directory): every lookup is a miss and nothing is
 * marked for storing; said once per process in the log.
 */
#include "policy/polmod.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/cache.h"
#include "common/log.h"
#include "policy/engine.h"
#include "policy/loader.h"
#include "policy/pol_cache.h"

#define KEY_MAX ((size_t)256 << 10)

enum downstream { DS_NONE, DS_PRIVATE, DS_PUBLIC };

struct conf {
	int vary_dev, vary_groups, must_revalidate, allow_private;
	int downstream, caching_type;
	struct pol_strings headers, params;
	int params_given;
};

static const char *const downstream_names[] = { "none", "private", "public", NULL };

static const struct pol_attr attrs[] = {
	{ "vary-by-developer", POL_A_BOOL, 0, 0, 0, 0, NULL, NULL, offsetof(struct conf, vary_dev) },
	{ "vary-by-developer-groups", POL_A_BOOL, 0, 0, 0, 0, NULL, NULL,
	  offsetof(struct conf, vary_groups) },
	{ "vary-by-header", POL_A_STR_LIST, 0, 0, 0, 0, NULL, NULL,
	  offsetof(struct conf, headers) },
	{ "vary-by-query-parameter", POL_A_STR_LIST, 0, 0, 0, 0, NULL, NULL,
	  offsetof(struct conf, params) },
	{ "downstream-caching-type", POL_A_ENUM, 0, 0, 0, DS_NONE, NULL, downstream_names,
	  offsetof(struct conf, downstream) },
	{ "must-revalidate", POL_A_BOOL, 0, 0, 0, 1, NULL, NULL,
	  offsetof(struct conf, must_revalidate) },
	{ "allow-private-response-caching", POL_A_BOOL, 0, 0, 0, 0, NULL, NULL,
	  offsetof(struct conf, allow_private) },
	POL_CACHE_TYPE_ATTR(struct conf, caching_type),
	POL_ATTRS_END
};

static void compile(struct loader *ld, json_object *o, void *conf)
{
	struct conf *cf = conf;
	size_t i;

	cf->params_given = ld_get(ld, o, "vary-by-query-parameter", 0) != NULL;
	for (i = 0; i < cf->headers.n; i++)
		if (!pol_is_token(cf->headers.v[i]))
			ld_err(ld, "'vary-by-header' '%s' is not a header name", cf->headers.v[i]);
	for (i = 0; i < cf->params.n; i++)
		if (cf->params.v[i][0] == '\0')
			ld_err(ld, "'vary-by-query-parameter' has an empty name");
	pol_cache_check_type(ld, cf->caching_type);
}

/* ---- the key -------------------------------------------------------------- */

struct kbuf {
	char *p;
	size_t len, cap;
	int err;
};

static void kput(struct kbuf *k, const char *s, size_t n)
{
	char num[24];
	int m;

	if (k->err)
		return;
	m = snprintf(num, sizeof(num), "%zu:", n);
	if (k->len + (size_t)m + n > KEY_MAX) {
		k->err = 1;
		return;
	}
	if (k->len + (size_t)m + n > k->cap) {
		size_t cap = (k->len + (size_t)m + n) * 2;
		char *p = realloc(k->p, cap);

		if (!p) {
			k->err = 1;
			return;
		}
		k->p = p;
		k->cap = cap;
	}
	memcpy(k->p + k->len, num, (size_t)m);
	k->len += (size_t)m;
	memcpy(k->p + k->len, s, n);
	k->len += n;
}

static void kputs(struct kbuf *k, const char *s)
{
	kput(k, s ? s : "", s ? strlen(s) : 0);
}

/* A listed parameter name may hold several, separated by ';' (APIM's form). */
static void key_params(struct kbuf *k, const struct pol_call *c, const char *names)
{
	const char *s = names, *e;

	while (*s) {
		char name[257];
		size_t n;
		char *v;

		e = strchr(s, ';');
		n = e ? (size_t)(e - s) : strlen(s);
		if (n > 0 && n < sizeof(name)) {
			memcpy(name, s, n);
			name[n] = '\0';
			kput(k, name, n);
			v = pol_query_value(c->query ? c->query : "", name);
			if (v) {
				kputs(k, "=");
				kputs(k, v);
				free(v);
			} else {
				kputs(k, "!");	/* absent, unlike empty */
			}
		}
		if (!e)
			break;
		s = e + 1;
	}
}

static int make_key(const struct pol_call *c, const struct conf *cf, struct kbuf *k)
{
	const struct route_match *r = c->route;
	size_t i, j;

	kputs(k, "r");
	kputs(k, r && r->api ? r->api->id : "");
	kputs(k, r && r->op ? r->op->id : "");
	kputs(k, "GET");	/* HEAD reads GET's entries */
	kputs(k, c->path);
	if (cf->params_given) {
		kputs(k, "q");
		for (i = 0; i < cf->params.n; i++)
			key_params(k, c, cf->params.v[i]);
	} else {
		kputs(k, "Q");
		kputs(k, c->query);
	}
	for (i = 0; i < cf->headers.n; i++) {
		kputs(k, "h");
		kputs(k, cf->headers.v[i]);
		for (j = 0; j < c->req_headers.n; j++)
			if (strcasecmp(c->req_headers.v[j].name, cf->headers.v[i]) == 0)
				kputs(k, c->req_headers.v[j].value);
	}
	if (cf->vary_dev) {
		kputs(k, "d");
		kputs(k, c->subscription ? c->subscription->id : "");
	}
	if (cf->vary_groups) {
		kputs(k, "g");
		kputs(k, c->product ? c->product->id : "");
	}
	return k->err ? -1 : 0;
}

/* ---- a stored answer ------------------------------------------------------ */

/* The next NUL-terminated field of v[*at..len), or NULL. */
static const char *field(const char *v, size_t len, size_t *at)
{
	const char *s = v + *at, *z;

	if (*at >= len)
		return NULL;
	z = memchr(s, '\0', len - *at);
	if (!z)
		return NULL;
	*at = (size_t)(z - v) + 1;
	return s;
}

static enum pol_step answer(struct pol_call *c, const struct conf *cf, const char *v, size_t len,
			    int64_t age)
{
	struct pol_headers h = { 0 };
	const char *magic, *st, *dur, *cnt, *name, *val;
	int64_t status, duration, count, i;
	char num[64];
	size_t at = 0;
	char *body;

	magic = field(v, len, &at);
	st = field(v, len, &at);
	dur = field(v, len, &at);
	cnt = field(v, len, &at);
	if (!magic || strcmp(magic, "HGR1") != 0 || !st || !dur || !cnt ||
	    pol_parse_decimal(st, &status) < 0 || pol_parse_decimal(dur, &duration) < 0 ||
	    pol_parse_decimal(cnt, &count) < 0 || status < 100 || status > 599 || count < 0 ||
	    count > POL_MAX_HEADERS)
		return POL_STEP_NEXT;	/* not ours: a miss */
	for (i = 0; i < count; i++) {
		name = field(v, len, &at);
		val = name ? field(v, len, &at) : NULL;
		if (!val) {
			pol_headers_release(&h);
			return POL_STEP_NEXT;
		}
		if (pol_headers_add(&h, name, val) != 0)
			goto oom;
	}
	snprintf(num, sizeof(num), "%" PRId64, age);
	if (pol_headers_add(&h, "Age", num) != 0)
		goto oom;
	if (cf->downstream != DS_NONE) {
		int64_t left = duration > age ? duration - age : 0;

		pol_headers_del(&h, "Cache-Control");
		snprintf(num, sizeof(num), "%s, max-age=%" PRId64 "%s",
			 cf->downstream == DS_PUBLIC ? "public" : "private", left,
			 cf->must_revalidate ? ", must-revalidate" : "");
		if (pol_headers_add(&h, "Cache-Control", num) != 0)
			goto oom;
	}
	body = malloc(len - at + 1);
	if (!body)
		goto oom;
	memcpy(body, v + at, len - at);
	body[len - at] = '\0';
	pol_respond(c, (int)status, &h, body);
	c->body_len = len - at;	/* the body may hold NULs */
	return POL_STEP_RESPOND;
oom:
	pol_headers_release(&h);
	return pol_oom(c);
}

static enum pol_step run(struct pol_call *c, const struct pol_policy *p, enum pol_section_id sec)
{
	static int warned;
	const struct conf *cf = p->conf;
	enum cache_where where = pol_cache_where(cf->caching_type);
	struct kbuf k = { NULL, 0, 0, 0 };
	enum pol_step step = POL_STEP_NEXT;
	char *v = NULL, *mark = NULL;
	size_t len;
	int64_t age;
	int rc;

	(void)sec;
	if (!c->cache) {
		if (!warned++)
			log_warn("cache-lookup: no cache store (state directory not usable): "
				 "every lookup is a miss");
		return POL_STEP_NEXT;
	}
	if (!c->method || (strcmp(c->method, "GET") != 0 && strcmp(c->method, "HEAD") != 0))
		return POL_STEP_NEXT;
	if (pol_headers_get(&c->req_headers, "Authorization") && !cf->allow_private)
		return POL_STEP_NEXT;
	if (c->subscription && !cf->allow_private && !cf->vary_dev && !cf->vary_groups)
		return POL_STEP_NEXT;
	if (make_key(c, cf, &k) < 0)
		goto out;	/* too long to key: neither served nor stored */
	rc = cache_lookup_at(c->cache, where, k.p, k.len, c->now, &v, &len, &age);
	if (rc == 1) {
		step = answer(c, cf, v, len, age);
		if (step != POL_STEP_NEXT)
			goto out;
	}
	if (strcmp(c->method, "GET") != 0)
		goto out;
	/* a miss: cache-store (outbound) stores a GET's answer under this key,
	 * where this lookup looked: the variable is that (one byte) and the key */
	mark = malloc(k.len + 1);
	if (!mark) {
		step = pol_oom(c);
		goto out;
	}
	mark[0] = where == CACHE_LOCAL ? POL_CACHE_WHERE_LOCAL : POL_CACHE_WHERE_SHARED;
	memcpy(mark + 1, k.p, k.len);
	if (pol_var_set(c, POL_CACHE_KEY_VAR, mark, k.len + 1) < 0)
		log_warn("cache-lookup: too many variables: the answer will not be stored");
out:
	free(mark);
	free(v);
	free(k.p);
	return step;
}

const struct pol_module pol_mod_cache_lookup = {
	.name = "cache-lookup",
	.sections = POL_SEC_IN,
	.attrs = attrs,
	.conf_size = sizeof(struct conf),
	.compile = compile,
	.run = run,
};
