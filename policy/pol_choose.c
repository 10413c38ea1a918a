/*
 * choose — runs the policies of the first "when" whose condition holds, or
 * those of "otherwise" (polmod.h; APIM's <choose>):
 *   {"when": [{"condition": "EXPR", "policies": [ELEMENT...]}, ...],
 *    "otherwise": [ELEMENT...]}
 * Every section; at least one "when", at most POL_MAX_WHEN; nests up to
 * POL_MAX_DEPTH. The nested lists are parsed as the section they are in
 * (pol_parse_list: each element checked against the section, "base"
 * refused) and the generic code sees them through the lists hook (counter
 * prefixes, claims, needs, the image's backends, freeing). A nested policy
 * that answers or fails stops the section, as at top level.
 */
#include "policy/polmod.h"

#include <stdlib.h>
#include <string.h>

#include "policy/engine.h"
#include "policy/expr.h"
#include "policy/loader.h"

#define POL_MAX_WHEN 64

struct conf {
	struct expr **conds;	/* n_when */
	struct pol_list *lists;	/* n_when + 1: each when's, then otherwise (may be empty) */
	size_t n_when;
};

static const struct pol_attr attrs[] = {
	{ "when", POL_A_RAW, POL_A_REQUIRED, 0, 0, 0, NULL, NULL, 0 },
	{ "otherwise", POL_A_RAW, 0, 0, 0, 0, NULL, NULL, 0 },
	POL_ATTRS_END
};

struct when {
	struct expr *cond;
};

static const struct pol_attr when_attrs[] = {
	{ "condition", POL_A_COND, POL_A_REQUIRED, 0, 0, 0, NULL, NULL,
	  offsetof(struct when, cond) },
	{ "policies", POL_A_RAW, POL_A_REQUIRED, 0, 0, 0, NULL, NULL, 0 },
	POL_ATTRS_END
};

static void compile(struct loader *ld, json_object *o, void *conf)
{
	struct conf *cf = conf;
	json_object *w = ld_get(ld, o, "when", 0), *other = ld_get(ld, o, "otherwise", 0);
	size_t n, mark;

	if (!w)
		return;
	mark = ld_push_member(ld, "when");
	if (ld_is_array(ld, w) != 0)
		goto out;
	n = json_object_array_length(w);
	if (n < 1 || n > POL_MAX_WHEN) {
		ld_err(ld, "must have 1 to %d conditions", POL_MAX_WHEN);
		goto out;
	}
	cf->conds = calloc(n, sizeof(*cf->conds));
	cf->lists = calloc(n + 1, sizeof(*cf->lists));
	if (!cf->conds || !cf->lists) {
		ld_err(ld, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(w, i), *pl;
		struct when wh = { NULL };
		size_t m2 = ld_push_index(ld, i);

		cf->n_when++;
		if (ld_is_object(ld, e) == 0) {
			pol_attrs_parse(ld, e, when_attrs, &wh);
			cf->conds[i] = wh.cond;
			pl = ld_get(ld, e, "policies", 0);
			if (pl) {
				size_t m3 = ld_push_member(ld, "policies");

				(void)pol_parse_list(ld, pl, &cf->lists[i]);
				ld_pop(ld, m3);
			}
		}
		ld_pop(ld, m2);
	}
	ld_pop(ld, mark);
	if (other) {
		mark = ld_push_member(ld, "otherwise");
		(void)pol_parse_list(ld, other, &cf->lists[n]);
		ld_pop(ld, mark);
	}
	return;
out:
	ld_pop(ld, mark);
}

static enum pol_step run(struct pol_call *c, const struct pol_policy *p, enum pol_section_id sec)
{
	const struct conf *cf = p->conf;

	for (size_t i = 0; i < cf->n_when; i++) {
		int r = pol_cond(c, cf->conds[i]);

		if (r < 0)
			return POL_STEP_ERROR;
		if (r)
			return pol_run_list(c, &cf->lists[i], sec);
	}
	return pol_run_list(c, &cf->lists[cf->n_when], sec);
}

static const struct pol_list *lists(const void *conf, size_t *n)
{
	const struct conf *cf = conf;

	*n = cf->lists ? cf->n_when + 1 : 0;
	return cf->lists;
}

/* the generic code has freed the policies of every list (lists hook) */
static void release(void *conf)
{
	struct conf *cf = conf;

	for (size_t i = 0; i < cf->n_when; i++)
		expr_free(cf->conds ? cf->conds[i] : NULL);
	for (size_t i = 0; cf->lists && i <= cf->n_when; i++)
		free(cf->lists[i].v);
	free(cf->conds);
	free(cf->lists);
}

const struct pol_module pol_mod_choose = {
	.name = "choose",
	.sections = POL_SEC_ALL,
	.attrs = attrs,
	.conf_size = sizeof(struct conf),
	.compile = compile,
	.run = run,
	.release = release,
	.lists = lists,
};
