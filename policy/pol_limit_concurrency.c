/*
 * limit-concurrency — at most max-count calls at once per key, held in the
 * shared counter store until the call ends (polmod.h, common/counter.h).
 */
#include "policy/polmod.h"

#include <stdlib.h>
#include <string.h>

#include "policy/engine.h"

struct conf {
	struct tpl *key;
	int64_t max;
};

static const struct pol_attr attrs[] = {
	{ "key", POL_A_TPL, POL_A_REQUIRED, 0, 0, 0, NULL, NULL, offsetof(struct conf, key) },
	{ "max-count", POL_A_INT, POL_A_REQUIRED, 1, 4096, 1, NULL, NULL, offsetof(struct conf, max) },
	POL_ATTRS_END
};

/* a seat is held until engine_finish() */
static void claims(const void *conf, size_t *seats, size_t *bandwidth)
{
	(void)conf;
	(void)bandwidth;
	(*seats)++;
}

static enum pol_step run(struct pol_call *c, const struct pol_policy *p, enum pol_section_id sec)
{
	const struct conf *cf = p->conf;
	char *value, *k;
	size_t n, pl, vl;
	enum tpl_status st;
	enum counter_result cr;
	struct counter_seat seat;

	(void)sec;
	if (!c->counters)
		return pol_fail(c, 500, "Internal server error.", "no counter store for limits");
	st = pol_expand(c, cf->key, TPL_ENC_RAW, &value);
	if (st != TPL_OK)
		return pol_fail_tpl(c, st);
	/* "<prefix>:k:<value>", as the limits' keys */
	pl = strlen(p->counter_prefix);
	vl = strlen(value);
	n = pl + vl + 4;
	k = n > COUNTER_KEY_MAX ? NULL : malloc(n);
	if (k) {
		memcpy(k, p->counter_prefix, pl);
		memcpy(k + pl, ":k:", 3);
		memcpy(k + pl + 3, value, vl + 1);
	}
	free(value);
	if (!k)
		return pol_fail(c, 400, "A computed value is too long.", "counter key too long");
	memset(&seat, 0, sizeof(seat));
	cr = counter_acquire(c->counters, k, (uint32_t)cf->max, c->now, &seat);
	free(k);
	if (cr == COUNTER_DENY)
		return pol_fail(c, 429, "Too many concurrent requests.", "concurrency limit");
	if (cr == COUNTER_ALLOW)
		pol_hold_seat(c, &seat);
	return POL_STEP_NEXT;
}

const struct pol_module pol_mod_limit_concurrency = {
	.name = "limit-concurrency",
	.sections = POL_SEC_IN,
	.attrs = attrs,
	.conf_size = sizeof(struct conf),
	.run = run,
	.counter_tag = "lc",
	.claims = claims,
};
