/*
 * set-query-parameter — sets, appends, keeps or deletes a query parameter of
 * the backend call (polmod.h).
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
	{ "name", POL_A_STR, POL_A_REQUIRED, 0, 0, 0, NULL, NULL, offsetof(struct conf, name) },
	{ "exists-action", POL_A_ENUM, 0, 0, 0, POL_EXISTS_OVERRIDE, NULL, actions,
	  offsetof(struct conf, exists) },
	{ "value", POL_A_TPL_LIST, 0, 0, 0, 0, NULL, NULL, offsetof(struct conf, values) },
	POL_ATTRS_END
};

static void compile(struct loader *ld, json_object *o, void *conf)
{
	struct conf *cf = conf;

	if (cf->name && !pol_is_query_name(cf->name)) {
		size_t mark = ld_push_member(ld, "name");

		ld_err_value(ld, cf->name, 0, "is not a valid query parameter name");
		ld_pop(ld, mark);
	}
	if (cf->exists != POL_EXISTS_DELETE && cf->values.n == 0 && !ld_present(o, "value"))
		ld_err(ld, "missing required member 'value' (only 'delete' goes without)");
}

/* Appends "&name=value" (value URL-encoded) to the growing query b. */
static enum tpl_status query_append(struct tpl_buf *b, const char *name, const char *value)
{
	enum tpl_status st = TPL_OK;

	if (b->len > 0)
		st = tpl_buf_put(b, "&", 1, TPL_ENC_RAW);
	if (st == TPL_OK)
		st = tpl_buf_put(b, name, strlen(name), TPL_ENC_URL);
	if (st == TPL_OK)
		st = tpl_buf_put(b, "=", 1, TPL_ENC_RAW);
	if (st == TPL_OK)
		st = tpl_buf_put(b, value, strlen(value), TPL_ENC_URL);
	return st;
}

static enum pol_step run(struct pol_call *c, const struct pol_policy *p, enum pol_section_id sec)
{
	const struct conf *cf = p->conf;
	struct tpl_buf b = TPL_BUF_INIT(POL_MAX_VALUE_BYTES);
	struct pol_headers vals = { 0 };
	enum tpl_status st = TPL_OK;
	enum pol_step r = POL_STEP_NEXT;
	int exists = c->query && pol_query_has(c->query, cf->name);

	(void)sec;
	if (cf->exists == POL_EXISTS_SKIP && exists)
		return POL_STEP_NEXT;
	/* values before the old parameter goes, as in set-header */
	for (size_t i = 0; cf->exists != POL_EXISTS_DELETE && i < cf->values.n; i++) {
		char *v;

		st = pol_expand(c, cf->values.v[i], TPL_ENC_RAW, &v);
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
	if (cf->exists == POL_EXISTS_DELETE || cf->exists == POL_EXISTS_OVERRIDE)
		pol_query_del(c->query, cf->name);
	if (cf->exists == POL_EXISTS_DELETE)
		goto out;
	st = tpl_buf_put(&b, c->query, strlen(c->query), TPL_ENC_RAW);
	for (size_t i = 0; st == TPL_OK && i < vals.n; i++)
		st = query_append(&b, cf->name, vals.v[i].value);
	if (st != TPL_OK) {
		r = pol_fail_tpl(c, st);
		goto out;
	}
	free(c->query);
	c->query = b.p;
	b.p = NULL;
out:
	tpl_buf_release(&b);
	pol_headers_release(&vals);
	return r;
}

const struct pol_module pol_mod_set_query_parameter = {
	.name = "set-query-parameter",
	.sections = POL_SEC_IN | POL_SEC_BK,
	.attrs = attrs,
	.conf_size = sizeof(struct conf),
	.compile = compile,
	.run = run,
};
