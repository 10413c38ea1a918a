/*
 * set-method — the method the backend is called with (polmod.h).
 */
#include "policy/polmod.h"

#include <stdlib.h>
#include <string.h>

#include "policy/engine.h"

struct conf {
	char *method;	/* upper case */
};

static const struct pol_attr attrs[] = {
	{ "method", POL_A_HEADER_NAME, POL_A_REQUIRED, 0, 0, 0, NULL, NULL,
	  offsetof(struct conf, method) },
	POL_ATTRS_END
};

/* methods are case-sensitive, but every backend we forward to means the upper
 * case one when a document says "post" */
static void compile(struct loader *ld, json_object *o, void *conf)
{
	struct conf *cf = conf;

	(void)ld;
	(void)o;
	for (char *c = cf->method; c && *c; c++)
		if (*c >= 'a' && *c <= 'z')
			*c = (char)(*c - 'a' + 'A');
}

static enum pol_step run(struct pol_call *c, const struct pol_policy *p, enum pol_section_id sec)
{
	const struct conf *cf = p->conf;
	char *m = strdup(cf->method);

	(void)sec;
	if (!m)
		return pol_oom(c);
	free(c->method);
	c->method = m;
	return POL_STEP_NEXT;
}

const struct pol_module pol_mod_set_method = {
	.name = "set-method",
	.sections = POL_SEC_IN | POL_SEC_BK,
	.attrs = attrs,
	.conf_size = sizeof(struct conf),
	.compile = compile,
	.run = run,
};
