/*
 * set-status — the status (and reason phrase) of the answer (polmod.h).
 */
#include "policy/polmod.h"

#include <stdlib.h>
#include <string.h>

#include "policy/engine.h"
#include "policy/loader.h"

#define REASON_MAX 256

struct conf {
	struct pol_int_expr code;	/* a number, or "$(EXPR)" checked per request */
	char *reason;	/* NULL: the standard phrase */
};

static const struct pol_attr attrs[] = {
	{ "code", POL_A_INT_EXPR, POL_A_REQUIRED, 100, 599, 200, NULL, NULL, offsetof(struct conf, code) },
	{ "reason", POL_A_STR, 0, 0, 0, 0, NULL, NULL, offsetof(struct conf, reason) },
	POL_ATTRS_END
};

/* the reason goes into the status line as it is */
static void compile(struct loader *ld, json_object *o, void *conf)
{
	struct conf *cf = conf;
	const char *s = cf->reason;

	(void)o;
	if (!s)
		return;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			break;
	if (*s || strlen(cf->reason) > REASON_MAX) {
		size_t mark = ld_push_member(ld, "reason");

		ld_err(ld, "must be at most %d characters without control characters",
		       REASON_MAX);
		ld_pop(ld, mark);
	}
}

static enum pol_step run(struct pol_call *c, const struct pol_policy *p, enum pol_section_id sec)
{
	const struct conf *cf = p->conf;
	int64_t code;

	(void)sec;
	if (pol_eval_int(c, &cf->code, &code) != 0)
		return POL_STEP_ERROR;
	if (code < 100 || code > 599)
		return pol_fail(c, 500, "Expression failed.", "set-status code out of 100-599");
	c->status = (int)code;
	free(c->reason);
	c->reason = cf->reason ? strdup(cf->reason) : NULL;
	return POL_STEP_NEXT;
}

const struct pol_module pol_mod_set_status = {
	.name = "set-status",
	.sections = POL_SEC_OUT | POL_SEC_ERR,
	.attrs = attrs,
	.conf_size = sizeof(struct conf),
	.compile = compile,
	.run = run,
};
