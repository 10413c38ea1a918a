/*
 * cache-remove-value — drops a value from the cache (APIM's
 * cache-remove-value; docs/policies.md). Any section; key is a template, the
 * host's (shared by every API and process). Removing an absent key, or having
 * no store, is not an error.
 */
#include "policy/polmod.h"

#include <stdlib.h>
#include <string.h>

#include "common/cache.h"
#include "policy/engine.h"
#include "policy/loader.h"

enum ctype { CT_PREFER_EXTERNAL, CT_INTERNAL, CT_EXTERNAL };

struct conf {
	struct tpl *key;
	int caching_type;
};

static const char *const ctype_names[] = { "prefer-external", "internal", "external", NULL };

static const struct pol_attr attrs[] = {
	{ "key", POL_A_TPL, POL_A_REQUIRED, 0, 0, 0, NULL, NULL, offsetof(struct conf, key) },
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
	const struct conf *cf = p->conf;
	char *key = NULL, *kb;
	enum tpl_status st;
	size_t klen;

	(void)sec;
	if (!c->cache)
		return POL_STEP_NEXT;
	st = pol_expand(c, cf->key, TPL_ENC_RAW, &key);
	if (st != TPL_OK)
		return pol_fail_tpl(c, st);
	klen = strlen(key);
	kb = malloc(klen + 2);
	if (!kb) {
		free(key);
		return pol_oom(c);
	}
	kb[0] = 'v';
	memcpy(kb + 1, key, klen + 1);
	cache_remove(c->cache, kb, klen + 1);
	free(kb);
	free(key);
	return POL_STEP_NEXT;
}

const struct pol_module pol_mod_cache_remove_value = {
	.name = "cache-remove-value",
	.sections = POL_SEC_ALL,
	.attrs = attrs,
	.conf_size = sizeof(struct conf),
	.compile = compile,
	.run = run,
};
