/*
 * set-variable — stores a named value for the rest of the request
 * (polmod.h): {"name": "x", "value": "${...}/$(...)" | 42 | true}. Every
 * section; later policies read it as ${var.x}. A number or a boolean is
 * stored as its JSON text ("42", "true"), a string as its expansion.
 */
#include "policy/polmod.h"

#include <stdlib.h>
#include <string.h>

#include "policy/engine.h"
#include "policy/expr.h"
#include "policy/loader.h"

struct conf {
	char *name;
	struct tpl *value;	/* a constant for a number or a boolean */
};

static const struct pol_attr attrs[] = {
	{ "name", POL_A_STR, POL_A_REQUIRED, 0, 0, 0, NULL, NULL, offsetof(struct conf, name) },
	{ "value", POL_A_RAW, POL_A_REQUIRED, 0, 0, 0, NULL, NULL, 0 },
	POL_ATTRS_END
};

static int name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > EXPR_VAR_MAX)
		return 0;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

static void compile(struct loader *ld, json_object *o, void *conf)
{
	struct conf *cf = conf;
	json_object *v = ld_get(ld, o, "value", 0);
	size_t mark;
	char why[200];

	if (cf->name && !name_ok(cf->name)) {
		mark = ld_push_member(ld, "name");
		ld_err_value(ld, cf->name, 0, "is not a variable name (1 to %d of A-Z a-z 0-9 _ -)",
			     EXPR_VAR_MAX);
		ld_pop(ld, mark);
	}
	if (!v)
		return;
	mark = ld_push_member(ld, "value");
	if (json_object_is_type(v, json_type_string)) {
		(void)pol_value_tpl(ld, v, 0, &cf->value);
	} else if (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double) ||
		   json_object_is_type(v, json_type_boolean)) {
		const char *t = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);

		/* "$" would start a value: write it doubled (no JSON number has one) */
		if (!t || tpl_parse(t, strlen(t), 0, &cf->value, why, sizeof(why)) != 0)
			ld_err(ld, "out of memory");
	} else {
		ld_err(ld, "must be a string, a number or a boolean");
	}
	ld_pop(ld, mark);
}

static enum pol_step run(struct pol_call *c, const struct pol_policy *p, enum pol_section_id sec)
{
	const struct conf *cf = p->conf;
	char *v = NULL;
	size_t len = 0;
	enum tpl_status st;

	(void)sec;
	/* a variable may hold a body (${request.body}): the body's budget */
	st = pol_expand_body(c, cf->value, TPL_ENC_RAW, &v, &len);
	if (st != TPL_OK)
		return pol_fail_tpl(c, st);
	if (pol_var_set(c, cf->name, v, len) != 0) {
		free(v);
		return pol_fail(c, 500, "Internal server error.",
				"variables over their count or size limit");
	}
	free(v);
	return POL_STEP_NEXT;
}

static void release(void *conf)
{
	struct conf *cf = conf;

	tpl_free(cf->value);
}

const struct pol_module pol_mod_set_variable = {
	.name = "set-variable",
	.sections = POL_SEC_ALL,
	.attrs = attrs,
	.conf_size = sizeof(struct conf),
	.compile = compile,
	.run = run,
	.release = release,
};
