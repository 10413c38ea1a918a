/*
 * cache-store — stores the backend's answer in the response cache under the
 * key a cache-lookup of the same call missed (APIM's cache-store;
 * docs/policies.md). Outbound only; it needs the backend's whole body, so its
 * needs hook asks the app to buffer it (POL_NEED_RESP_BODY).
 *
 * Stored: only when cache-lookup left its key (POL_CACHE_KEY_VAR: a GET that may
 * be cached, and missed), where that lookup looked (the variable's first
 * byte: its caching-type); only status 200 unless cache-response; never an
 * answer with Set-Cookie, Cache-Control private or no-store, a Vary of "*",
 * or a body the app did not buffer; never more than CACHE_VALUE_MAX bytes
 * (cache.h). Hop-by-hop headers, Content-Length, Age and X-Request-Id are not
 * kept (the answer from the cache gets its own). The format is
 * pol_cache_lookup.c's.
 *
 * Failing to store never fails the call: the answer goes out as it came.
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

struct conf {
	int64_t duration;
	int cache_response;
};

static const struct pol_attr attrs[] = {
	{ "duration", POL_A_INT, POL_A_REQUIRED, 1, CACHE_TTL_MAX, 0, NULL, NULL,
	  offsetof(struct conf, duration) },
	{ "cache-response", POL_A_BOOL, 0, 0, 0, 0, NULL, NULL,
	  offsetof(struct conf, cache_response) },
	POL_ATTRS_END
};

static const char *const dropped[] = {
	"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE",
	"Trailer", "Transfer-Encoding", "Upgrade", "Content-Length", "Age", "X-Request-Id",
	NULL
};

static int is_dropped(const char *name)
{
	for (const char *const *d = dropped; *d; d++)
		if (strcasecmp(name, *d) == 0)
			return 1;
	return 0;
}

/* Whether a Cache-Control value holds the directive d (a token). */
static int has_directive(const char *v, const char *d)
{
	size_t n = strlen(d);

	while (*v) {
		while (*v == ' ' || *v == '\t' || *v == ',')
			v++;
		if (strncasecmp(v, d, n) == 0 &&
		    (v[n] == '\0' || v[n] == ',' || v[n] == ' ' || v[n] == '=' || v[n] == '\t'))
			return 1;
		while (*v && *v != ',')
			v++;
	}
	return 0;
}

static int storable(const struct pol_call *c)
{
	for (size_t i = 0; i < c->resp_headers.n; i++) {
		const char *n = c->resp_headers.v[i].name, *v = c->resp_headers.v[i].value;

		if (strcasecmp(n, "Set-Cookie") == 0)
			return 0;
		if (strcasecmp(n, "Cache-Control") == 0 &&
		    (has_directive(v, "private") || has_directive(v, "no-store")))
			return 0;
		if (strcasecmp(n, "Vary") == 0 && strchr(v, '*'))
			return 0;
	}
	return 1;
}

static int put(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (*len + n > CACHE_VALUE_MAX)
		return -1;
	if (*len + n > *cap) {
		size_t nc = (*len + n) * 2;
		char *p = realloc(*buf, nc);

		if (!p)
			return -1;
		*buf = p;
		*cap = nc;
	}
	memcpy(*buf + *len, s, n);
	*len += n;
	return 0;
}

/* Serialises c's answer into a new *out; -1 when too large or out of memory. */
static int serialise(const struct pol_call *c, int64_t duration, char **out, size_t *out_len)
{
	char *b = NULL, num[64];
	size_t len = 0, cap = 0, kept = 0, i;
	int rc = -1, m;

	for (i = 0; i < c->resp_headers.n; i++)
		kept += !is_dropped(c->resp_headers.v[i].name);
	m = snprintf(num, sizeof(num), "HGR1%c%d%c%" PRId64 "%c%zu%c", 0, c->status, 0, duration,
		     0, kept, 0);
	if (put(&b, &len, &cap, num, (size_t)m) < 0)
		goto out;
	for (i = 0; i < c->resp_headers.n; i++) {
		const struct pol_header *h = &c->resp_headers.v[i];

		if (is_dropped(h->name))
			continue;
		if (put(&b, &len, &cap, h->name, strlen(h->name) + 1) < 0 ||
		    put(&b, &len, &cap, h->value, strlen(h->value) + 1) < 0)
			goto out;
	}
	if (c->body_len && put(&b, &len, &cap, c->body, c->body_len) < 0)
		goto out;
	*out = b;
	*out_len = len;
	b = NULL;
	rc = 0;
out:
	free(b);
	return rc;
}

static enum pol_step run(struct pol_call *c, const struct pol_policy *p, enum pol_section_id sec)
{
	static int warned;
	const struct conf *cf = p->conf;
	enum cache_where where;
	const char *key;
	size_t klen, vlen;
	char *v = NULL;

	(void)sec;
	key = pol_var_get(c, POL_CACHE_KEY_VAR, strlen(POL_CACHE_KEY_VAR), &klen);
	if (!key || klen < 2 || !c->cache)
		return POL_STEP_NEXT;
	/* where cache-lookup looked (its caching-type), then the key */
	where = key[0] == POL_CACHE_WHERE_LOCAL ? CACHE_LOCAL : CACHE_SHARED;
	key++;
	klen--;
	if (c->status != 200 && !cf->cache_response)
		return POL_STEP_NEXT;
	if (!c->resp_body_buffered) {
		if (!warned++)
			log_warn("cache-store: the backend's body was not buffered: not stored");
		return POL_STEP_NEXT;
	}
	if (!storable(c) || serialise(c, cf->duration, &v, &vlen) < 0)
		return POL_STEP_NEXT;
	cache_store_at(c->cache, where, key, klen, v, vlen, (uint32_t)cf->duration, c->now);
	free(v);
	return POL_STEP_NEXT;
}

static unsigned needs(const void *conf, enum pol_section_id sec)
{
	(void)conf;
	return sec == POL_OUTBOUND ? POL_NEED_RESP_BODY : 0;
}

const struct pol_module pol_mod_cache_store = {
	.name = "cache-store",
	.sections = POL_SEC_OUT,
	.attrs = attrs,
	.conf_size = sizeof(struct conf),
	.run = run,
	.needs = needs,
};
