/*
 * cache-store-value — stores a value in the cache for duration seconds (APIM's
 * cache-store-value; docs/policies.md). Any section. key and value are
 * templates; keys are the host's, shared by every API and process
 * (config-v1.md). A value that cannot be stored (larger than the cache takes)
 * or no store at all never fails the call: cache-lookup-value then misses.
 */
#include "policy/polmod.h"

#include <stdlib.h>
#include <string.h>

#include "common/cache.h"
#include "common/log.h"
#include "policy/engine.h"
#include "policy/loader.h"
#include "policy/pol_cache.h"

struct conf {
	int caching_type;	/* first: pol_cache_compile() */
	struct tpl *key, *value;
	int64_t duration;
};

static const struct pol_attr attrs[] = {
	{ "key", POL_A_TPL, POL_A_REQUIRED, 0, 0, 0, NULL, NULL, offsetof(struct conf, key) },
	{ "value", POL_A_TPL, POL_A_REQUIRED, 0, 0, 0, NULL, NULL, offsetof(struct conf, value) },
	{ "duration", POL_A_INT, POL_A_REQUIRED, 1, CACHE_TTL_MAX, 0, NULL, NULL,
	  offsetof(struct conf, duration) },
	POL_CACHE_TYPE_ATTR(struct conf, caching_type),
	POL_ATTRS_END
};

static enum pol_step run(struct pol_call *c, const struct pol_policy *p, enum pol_section_id sec)
{
	static int warned;
	const struct conf *cf = p->conf;
	enum pol_step step = POL_STEP_NEXT;
	char *key = NULL, *val = NULL;
	enum tpl_status st;
	size_t klen;

	(void)sec;
	if (!c->cache) {
		if (!warned++)
			log_warn("cache-store-value: no cache store (state directory not usable): "
				 "nothing is stored");
		return POL_STEP_NEXT;
	}
	step = pol_cache_value_key(c, cf->key, &key, &klen);
	if (step != POL_STEP_NEXT)
		goto out;
	st = pol_expand(c, cf->value, TPL_ENC_RAW, &val);
	if (st != TPL_OK) {
		step = pol_fail_tpl(c, st);
		goto out;
	}
	cache_store_at(c->cache, pol_cache_where(cf->caching_type), key, klen, val, strlen(val),
		       (uint32_t)cf->duration, c->now);
out:
	free(val);
	free(key);
	return step;
}

const struct pol_module pol_mod_cache_store_value = {
	.name = "cache-store-value",
	.sections = POL_SEC_ALL,
	.attrs = attrs,
	.conf_size = sizeof(struct conf),
	.compile = pol_cache_compile,
	.run = run,
};
