/*
 * forward-request — timeout and redirects of the backend call (polmod.h).
 */
#include "policy/polmod.h"

#include "policy/engine.h"

struct conf {
	int64_t timeout;	/* seconds; -1: the backend's own */
	int follow_redirects;	/* -1: unchanged */
};

static const struct pol_attr attrs[] = {
	{ "timeout", POL_A_INT, 0, 1, 3600, -1, NULL, NULL, offsetof(struct conf, timeout) },
	{ "follow-redirects", POL_A_BOOL, 0, 0, 0, -1, NULL, NULL,
	  offsetof(struct conf, follow_redirects) },
	POL_ATTRS_END
};

static enum pol_step run(struct pol_call *c, const struct pol_policy *p, enum pol_section_id sec)
{
	const struct conf *cf = p->conf;

	(void)sec;
	if (cf->timeout >= 0)
		c->timeout_ms = (long)cf->timeout * 1000;
	if (cf->follow_redirects >= 0)
		c->follow_redirects = cf->follow_redirects;
	return POL_STEP_NEXT;
}

const struct pol_module pol_mod_forward_request = {
	.name = "forward-request",
	.sections = POL_SEC_BK,
	.attrs = attrs,
	.conf_size = sizeof(struct conf),
	.run = run,
};
