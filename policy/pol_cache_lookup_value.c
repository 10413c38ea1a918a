/*
 * cache-lookup-value — reads a value from the cache into a variable (APIM's
 * cache-lookup-value; docs/policies.md). Any section. The key is a template;
 * keys are the host's, shared by every API and process (config-v1.md), and
 * never meet cache-lookup's response keys (their own prefix). A hit sets
 * variable-name to the stored value; a miss sets it to default-value, or
 * leaves it unset without one (APIM assigns null). No store (no usable state
 * directory): a miss, said once per process in the log.
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
	struct tpl *key;
	char *var;
	struct tpl *def;	/* NULL: none */
	int caching_type;
};

static const struct pol_attr attrs[] = {
	{ "key", POL_A_TPL, POL_A_REQUIRED, 0, 0, 0, NULL, NULL, offsetof(struct conf, key) },
	{ "variable-name", POL_A_STR, POL_A_REQUIRED, 0, 0, 0, NULL, NULL,
	  offsetof(struct conf, var) },
	{ "default-value", POL_A_TPL, 0, 0, 0, 0, NULL, NULL, offsetof(struct conf, def) },
	POL_CACHE_TYPE_ATTR(struct conf, caching_type),
	POL_ATTRS_END
};

/* A name ${var.NAME} can read: 1..64 of [A-Za-z0-9_-], not starting with a digit
 * or '-'. */
static int good_var_name(const char *s)
{
	size_t n = 0;

	if (!s || !((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
		return 0;
	for (; s[n]; n++)
		if (!((s[n] >= 'A' && s[n] <= 'Z') || (s[n] >= 'a' && s[n] <= 'z') ||
		      (s[n] >= '0' && s[n] <= '9') || s[n] == '_' || s[n] == '-'))
			return 0;
	return n <= 64;
}

static void compile(struct loader *ld, json_object *o, void *conf)
{
	struct conf *cf = conf;
	size_t mark;

	(void)o;
	if (cf->var && !good_var_name(cf->var)) {
		mark = ld_push_member(ld, "variable-name");
		ld_err(ld, "must be 1 to 64 letters, digits, '_' or '-', starting with a letter or '_'");
		ld_pop(ld, mark);
	}
	pol_cache_check_type(ld, cf->caching_type);
}

static enum pol_step run(struct pol_call *c, const struct pol_policy *p, enum pol_section_id sec)
{
	static int warned;
	const struct conf *cf = p->conf;
	enum pol_step step = POL_STEP_NEXT;
	char *key = NULL, *v = NULL, *def = NULL;
	enum tpl_status st;
	size_t klen, len = 0;
	int rc = 0;

	(void)sec;
	step = pol_cache_value_key(c, cf->key, &key, &klen);
	if (step != POL_STEP_NEXT)
		return step;
	if (c->cache) {
		rc = cache_lookup_at(c->cache, pol_cache_where(cf->caching_type), key, klen, c->now,
				     &v, &len, NULL);
	} else if (!warned++) {
		log_warn("cache-lookup-value: no cache store (state directory not usable): "
			 "every lookup is a miss");
	}
	if (rc == 1) {
		if (pol_var_set(c, cf->var, v, len) < 0)
			step = pol_fail(c, 500, "Internal server error.", "too many variables");
		goto out;
	}
	if (!cf->def)
		goto out;
	st = pol_expand(c, cf->def, TPL_ENC_RAW, &def);
	if (st != TPL_OK) {
		step = pol_fail_tpl(c, st);
		goto out;
	}
	if (pol_var_set(c, cf->var, def, strlen(def)) < 0)
		step = pol_fail(c, 500, "Internal server error.", "too many variables");
out:
	free(def);
	free(v);
	free(key);
	return step;
}

const struct pol_module pol_mod_cache_lookup_value = {
	.name = "cache-lookup-value",
	.sections = POL_SEC_ALL,
	.attrs = attrs,
	.conf_size = sizeof(struct conf),
	.compile = compile,
	.run = run,
};
