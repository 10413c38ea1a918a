/*
 * cache-remove-value — drops a value from the cache (APIM's
 * cache-remove-value; docs/policies.md). Any section; key is a template, the
 * host's (shared by every API and process). Removing an absent key, or having
 * no store, is not an error.
 */
#include "policy/polmod.h"

#include <stdlib.h>

#include "common/cache.h"
#include "policy/engine.h"
#include "policy/loader.h"
#include "policy/pol_cache.h"

struct conf {
	int caching_type;	/* first: pol_cache_compile() */
	struct tpl *key;
};

static const struct pol_attr attrs[] = {
	{ "key", POL_A_TPL, POL_A_REQUIRED, 0, 0, 0, NULL, NULL, offsetof(struct conf, key) },
	POL_CACHE_TYPE_ATTR(struct conf, caching_type),
	POL_ATTRS_END
};

static enum pol_step run(struct pol_call *c, const struct pol_policy *p, enum pol_section_id sec)
{
	const struct conf *cf = p->conf;
	enum pol_step step;
	char *key = NULL;
	size_t klen;

	(void)sec;
	if (!c->cache)
		return POL_STEP_NEXT;
	step = pol_cache_value_key(c, cf->key, &key, &klen);
	if (step != POL_STEP_NEXT)
		return step;
	cache_remove_at(c->cache, pol_cache_where(cf->caching_type), key, klen);
	free(key);
	return POL_STEP_NEXT;
}

const struct pol_module pol_mod_cache_remove_value = {
	.name = "cache-remove-value",
	.sections = POL_SEC_ALL,
	.attrs = attrs,
	.conf_size = sizeof(struct conf),
	.compile = pol_cache_compile,
	.run = run,
};
