/*
 * check-header — refuses a request without a header, or without one of the
 * values (polmod.h).
 */
#include "policy/polmod.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy/engine.h"

struct conf {
	char *name;
	int64_t code;
	char *message;
	int ignore_case;
	struct pol_tpls values;	/* none: the header need only be present */
};

static const struct pol_attr attrs[] = {
	{ "name", POL_A_HEADER_NAME, POL_A_REQUIRED, 0, 0, 0, NULL, NULL, offsetof(struct conf, name) },
	{ "failed-check-httpcode", POL_A_INT, POL_A_REQUIRED, 400, 599, 400, NULL, NULL,
	  offsetof(struct conf, code) },
	{ "failed-check-error-message", POL_A_STR, POL_A_REQUIRED, 0, 0, 0, NULL, NULL,
	  offsetof(struct conf, message) },
	{ "ignore-case", POL_A_BOOL, POL_A_REQUIRED, 0, 0, 0, NULL, NULL,
	  offsetof(struct conf, ignore_case) },
	{ "value", POL_A_TPL_LIST, 0, 0, 0, 0, NULL, NULL, offsetof(struct conf, values) },
	POL_ATTRS_END
};

static enum pol_step run(struct pol_call *c, const struct pol_policy *p, enum pol_section_id sec)
{
	const struct conf *cf = p->conf;
	int found = 0, ok = cf->values.n == 0;

	(void)sec;
	for (size_t i = 0; i < c->req_headers.n; i++) {
		if (strcasecmp(c->req_headers.v[i].name, cf->name) != 0)
			continue;
		found = 1;
		for (size_t j = 0; !ok && j < cf->values.n; j++) {
			char *v;
			enum tpl_status st = pol_expand(c, cf->values.v[j], TPL_ENC_RAW, &v);

			if (st != TPL_OK)
				return pol_fail_tpl(c, st);
			if (cf->ignore_case ? strcasecmp(v, c->req_headers.v[i].value) == 0 :
			    strcmp(v, c->req_headers.v[i].value) == 0)
				ok = 1;
			free(v);
		}
	}
	if (found && ok)
		return POL_STEP_NEXT;
	return pol_fail(c, (int)cf->code, cf->message, "check-header failed");
}

const struct pol_module pol_mod_check_header = {
	.name = "check-header",
	.sections = POL_SEC_IN,
	.attrs = attrs,
	.conf_size = sizeof(struct conf),
	.run = run,
};
