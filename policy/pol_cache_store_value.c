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

enum ctype { CT_PREFER_EXTERNAL, CT_INTERNAL, CT_EXTERNAL };

struct conf {
	struct tpl *key, *value;
	int64_t duration;
	int caching_type;
};

static const char *const ctype_names[] = { "prefer-external", "internal", "external", NULL };

static const struct pol_attr attrs[] = {
	{ "key", POL_A_TPL, POL_A_REQUIRED, 0, 0, 0, NULL, NULL, offsetof(struct conf, key) },
	{ "value", POL_A_TPL, POL_A_REQUIRED, 0, 0, 0, NULL, NULL, offsetof(struct conf, value) },
	{ "duration", POL_A_INT, POL_A_REQUIRED, 1, CACHE_TTL_MAX, 0, NULL, NULL,
	  offsetof(struct conf, duration) },
	{ "caching-type", POL_A_ENUM, 0, 0, 0, CT_PREFER_EXTERNAL, NULL, ctype_names,
	  offsetof(struct conf, caching_type) },
	POL_ATTRS_END
};

static void compile(struct loader *ld, json_object *o, void *conf)
{
	struct conf *cf = conf;

	(void)o;
	if (cf->caching_type == CT_EXTERNAL) {
		size_t mark = ld_push_member(ld, "caching-type");

		ld_err(ld, "\"external\" needs a Redis server named by gateway.counters, "
			   "which this gateway does not support yet");
		ld_pop(ld, mark);
	}
}

static enum pol_step run(struct pol_call *c, const struct pol_policy *p, enum pol_section_id sec)
{
	static int warned;
	const struct conf *cf = p->conf;
	enum pol_step step = POL_STEP_NEXT;
	char *key = NULL, *val = NULL, *kb = NULL;
	enum tpl_status st;
	size_t klen;

	(void)sec;
	if (!c->cache) {
		if (!warned++)
			log_warn("cache-store-value: no cache store (state directory not usable): "
				 "nothing is stored");
		return POL_STEP_NEXT;
	}
	st = pol_expand(c, cf->key, TPL_ENC_RAW, &key);
	if (st == TPL_OK)
		st = pol_expand(c, cf->value, TPL_ENC_RAW, &val);
	if (st != TPL_OK) {
		step = pol_fail_tpl(c, st);
		goto out;
	}
	klen = strlen(key);
	kb = malloc(klen + 2);
	if (!kb) {
		step = pol_oom(c);
		goto out;
	}
	kb[0] = 'v';	/* values: apart from cache-lookup's "r..." keys */
	memcpy(kb + 1, key, klen + 1);
	cache_store(c->cache, kb, klen + 1, val, strlen(val), (uint32_t)cf->duration, c->now);
out:
	free(kb);
	free(val);
	free(key);
	return step;
}

const struct pol_module pol_mod_cache_store_value = {
	.name = "cache-store-value",
	.sections = POL_SEC_ALL,
	.attrs = attrs,
	.conf_size = sizeof(struct conf),
	.compile = compile,
	.run = run,
};
