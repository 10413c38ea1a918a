/*
 * set-header — sets, appends, keeps or deletes a header of the backend call
 * (inbound, backend) or of the answer (outbound, on-error) (polmod.h).
 */
#include "policy/polmod.h"

#include <stdlib.h>
#include <string.h>

#include "policy/engine.h"
#include "policy/loader.h"

struct conf {
	char *name;
	int exists;	/* enum pol_exists */
	struct pol_tpls values;
};

static const char *const actions[] = { "override", "skip", "append", "delete", NULL };

static const struct pol_attr attrs[] = {
	{ "name", POL_A_HEADER_NAME, POL_A_REQUIRED, 0, 0, 0, NULL, NULL, offsetof(struct conf, name) },
	{ "exists-action", POL_A_ENUM, 0, 0, 0, POL_EXISTS_OVERRIDE, NULL, actions,
	  offsetof(struct conf, exists) },
	{ "value", POL_A_TPL_LIST, 0, 0, 0, 0, NULL, NULL, offsetof(struct conf, values) },
	POL_ATTRS_END
};

/* Do the literal parts of every template fit a header value? The engine
 * would refuse them on every request (tpl_expand); say so at load. */
static int literals_fit_header(const struct pol_tpls *l)
{
	for (size_t i = 0; i < l->n; i++)
		for (size_t j = 0; j < l->v[i]->n; j++)
			if (l->v[i]->v[j].root == TPL_LITERAL &&
			    tpl_header_check(l->v[i]->v[j].text, l->v[i]->v[j].len) != 0)
				return 0;
	return 1;
}

static void compile(struct loader *ld, json_object *o, void *conf)
{
	struct conf *cf = conf;

	if (!literals_fit_header(&cf->values)) {
		size_t mark = ld_push_member(ld, "value");

		ld_err(ld, "has a control character (only tab is allowed in a header value)");
		ld_pop(ld, mark);
	}
	if (cf->exists != POL_EXISTS_DELETE && cf->values.n == 0 && !ld_present(o, "value"))
		ld_err(ld, "missing required member 'value' (only 'delete' goes without)");
}

static enum pol_step run(struct pol_call *c, const struct pol_policy *p, enum pol_section_id sec)
{
	const struct conf *cf = p->conf;
	struct pol_headers *h = sec == POL_OUTBOUND || sec == POL_ON_ERROR ? &c->resp_headers :
		&c->req_headers;
	struct pol_headers vals = { 0 };
	enum pol_step r = POL_STEP_NEXT;

	if (cf->exists == POL_EXISTS_DELETE) {
		pol_headers_del(h, cf->name);
		return POL_STEP_NEXT;
	}
	if (cf->exists == POL_EXISTS_SKIP && pol_headers_get(h, cf->name))
		return POL_STEP_NEXT;
	/* every value before the old header goes: an override may read the
	 * header it replaces (${request.header.NAME}) */
	for (size_t i = 0; i < cf->values.n; i++) {
		char *v;
		enum tpl_status st = pol_expand(c, cf->values.v[i], TPL_ENC_HEADER, &v);

		if (st != TPL_OK) {
			r = pol_fail_tpl(c, st);
			goto out;
		}
		if (pol_headers_add(&vals, cf->name, v) != 0) {
			free(v);
			r = pol_oom(c);
			goto out;
		}
		free(v);
	}
	if (cf->exists == POL_EXISTS_OVERRIDE)
		pol_headers_del(h, cf->name);
	for (size_t i = 0; i < vals.n; i++) {
		if (pol_headers_add(h, cf->name, vals.v[i].value) != 0) {
			r = pol_fail(c, 400, "Too many headers.", "too many headers");
			goto out;
		}
	}
out:
	pol_headers_release(&vals);
	return r;
}

const struct pol_module pol_mod_set_header = {
	.name = "set-header",
	.sections = POL_SEC_ALL,
	.attrs = attrs,
	.conf_size = sizeof(struct conf),
	.compile = compile,
	.run = run,
};
