/*
 * retry — when and how often the forwarder calls the backend again
 * (polmod.h); the forwarder (fcgi-app/forward.c) reads c->retry.
 */
#include "policy/polmod.h"

#include <stdlib.h>
#include <string.h>

#include "policy/engine.h"
#include "policy/loader.h"

struct conf {
	int64_t count, interval, max_interval, delta;
	int first_fast_retry;
	unsigned conditions;	/* POL_RETRY_* */
	int *statuses;
	size_t n_statuses;
};

static const struct pol_attr attrs[] = {
	{ "count", POL_A_INT, POL_A_REQUIRED, 1, 50, 1, NULL, NULL, offsetof(struct conf, count) },
	{ "interval", POL_A_INT, POL_A_REQUIRED, 0, 3600, 0, NULL, NULL,
	  offsetof(struct conf, interval) },
	{ "max-interval", POL_A_INT, 0, 0, 3600, 0, NULL, NULL, offsetof(struct conf, max_interval) },
	{ "delta", POL_A_INT, 0, 0, 3600, 0, NULL, NULL, offsetof(struct conf, delta) },
	{ "first-fast-retry", POL_A_BOOL, 0, 0, 0, 0, NULL, NULL,
	  offsetof(struct conf, first_fast_retry) },
	/* 'connect-error', 'timeout', '4xx', '5xx' or status codes, mixed */
	{ "condition", POL_A_RAW, POL_A_REQUIRED, 0, 0, 0, NULL, NULL, 0 },
	POL_ATTRS_END
};

static void condition(struct loader *ld, json_object *c, struct conf *cf)
{
	const char *s = json_object_is_type(c, json_type_string) ? json_object_get_string(c) : NULL;
	int64_t st;

	if (json_object_is_type(c, json_type_int)) {
		if (ld_int(ld, c, 100, 599, &st) == 0)
			cf->statuses[cf->n_statuses++] = (int)st;
	} else if (s && strcmp(s, "connect-error") == 0) {
		cf->conditions |= POL_RETRY_CONNECT_ERROR;
	} else if (s && strcmp(s, "timeout") == 0) {
		cf->conditions |= POL_RETRY_TIMEOUT;
	} else if (s && strcmp(s, "4xx") == 0) {
		cf->conditions |= POL_RETRY_4XX;
	} else if (s && strcmp(s, "5xx") == 0) {
		cf->conditions |= POL_RETRY_5XX;
	} else if (s && pol_parse_decimal(s, &st) == 0 && st >= 100 && st <= 599) {
		cf->statuses[cf->n_statuses++] = (int)st;
	} else {
		ld_err(ld, "is not a retry condition ('connect-error', 'timeout', '4xx', '5xx' or a "
		       "status code)");
	}
}

static void compile(struct loader *ld, json_object *o, void *conf)
{
	struct conf *cf = conf;
	json_object *v;
	size_t mark, n;

	v = ld_get(ld, o, "condition", 0);	/* missing: reported from the table */
	if (!v)
		return;
	mark = ld_push_member(ld, "condition");
	if (ld_is_array(ld, v) != 0)
		goto out;
	n = json_object_array_length(v);
	if (n == 0 || n > POL_MAX_VALUES) {
		ld_err(ld, "must hold 1 to %d conditions", POL_MAX_VALUES);
		goto out;
	}
	cf->statuses = calloc(n, sizeof(int));
	if (!cf->statuses) {
		ld_err(ld, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		size_t m2 = ld_push_index(ld, i);

		condition(ld, json_object_array_get_idx(v, i), cf);
		ld_pop(ld, m2);
	}
out:
	ld_pop(ld, mark);
}

static enum pol_step run(struct pol_call *c, const struct pol_policy *p, enum pol_section_id sec)
{
	const struct conf *cf = p->conf;

	(void)sec;
	c->retry.conditions = cf->conditions;
	c->retry.statuses = cf->statuses;
	c->retry.n_statuses = cf->n_statuses;
	c->retry.count = (uint32_t)cf->count;
	c->retry.interval = (uint32_t)cf->interval;
	c->retry.max_interval = (uint32_t)cf->max_interval;
	c->retry.delta = (uint32_t)cf->delta;
	c->retry.first_fast_retry = cf->first_fast_retry;
	return POL_STEP_NEXT;
}

static void release(void *conf)
{
	struct conf *cf = conf;

	free(cf->statuses);
}

const struct pol_module pol_mod_retry = {
	.name = "retry",
	.sections = POL_SEC_BK,
	.attrs = attrs,
	.conf_size = sizeof(struct conf),
	.compile = compile,
	.run = run,
	.release = release,
};
