/* pol_cache — what the cache policies share; the manual is pol_cache.h. */
#include "policy/pol_cache.h"

#include <stdlib.h>
#include <string.h>

#include "policy/loader.h"

const char *const pol_cache_type_names[] = { "prefer-external", "internal", "external", NULL };

enum cache_where pol_cache_where(int caching_type)
{
	return caching_type == POL_CACHE_INTERNAL ? CACHE_LOCAL : CACHE_SHARED;
}

void pol_cache_check_type(struct loader *ld, int caching_type)
{
	size_t mark;

	if (caching_type != POL_CACHE_EXTERNAL || ld->gw->counters.store == GW_COUNTERS_REDIS)
		return;
	mark = ld_push_member(ld, "caching-type");
	ld_err(ld, "\"external\" needs gateway.counters to name a Redis server "
		   "(\"prefer-external\" uses it when there is one)");
	ld_pop(ld, mark);
}

void pol_cache_compile(struct loader *ld, json_object *o, void *conf)
{
	(void)o;
	pol_cache_check_type(ld, *(const int *)conf);
}

enum pol_step pol_cache_value_key(struct pol_call *c, const struct tpl *t, char **key,
				  size_t *key_len)
{
	enum pol_step step = POL_STEP_NEXT;
	char *s = NULL, *kb;
	enum tpl_status st;
	size_t n;

	*key = NULL;
	st = pol_expand(c, t, TPL_ENC_RAW, &s);
	if (st != TPL_OK) {
		step = pol_fail_tpl(c, st);
		goto out;
	}
	n = strlen(s);
	kb = malloc(n + 2);
	if (!kb) {
		step = pol_oom(c);
		goto out;
	}
	kb[0] = 'v';	/* values: apart from cache-lookup's "r..." keys */
	memcpy(kb + 1, s, n + 1);
	*key = kb;
	*key_len = n + 1;
out:
	free(s);
	return step;
}
