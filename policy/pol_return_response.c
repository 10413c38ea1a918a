/*
 * return-response and mock-response — answer the client from the gateway,
 * without (or instead of) the backend (polmod.h). mock-response is
 * return-response with status 200 by default and a 'content-type' shorthand,
 * so both descriptors live here and share everything else.
 */
#include "policy/polmod.h"

#include <stdlib.h>
#include <string.h>

#include "policy/engine.h"
#include "policy/loader.h"

struct conf {
	struct pol_int_expr code;	/* a number, or "$(EXPR)" checked per request */
	struct tpl *body;	/* NULL: empty */
	char *content_type;	/* mock-response only; becomes a header */
	char **header_names;
	struct tpl **header_values;
	size_t n_headers;
};

static const struct pol_attr return_attrs[] = {
	{ "status-code", POL_A_INT_EXPR, POL_A_REQUIRED, 100, 599, 200, NULL, NULL,
	  offsetof(struct conf, code) },
	{ "body", POL_A_TPL, 0, 0, 0, 0, NULL, NULL, offsetof(struct conf, body) },
	/* a map of header name to value template */
	{ "headers", POL_A_RAW, 0, 0, 0, 0, NULL, NULL, 0 },
	POL_ATTRS_END
};

static const struct pol_attr mock_attrs[] = {
	{ "status-code", POL_A_INT_EXPR, 0, 100, 599, 200, NULL, NULL, offsetof(struct conf, code) },
	{ "body", POL_A_TPL, 0, 0, 0, 0, NULL, NULL, offsetof(struct conf, body) },
	{ "headers", POL_A_RAW, 0, 0, 0, 0, NULL, NULL, 0 },
	{ "content-type", POL_A_STR, 0, 0, 0, 0, NULL, NULL, offsetof(struct conf, content_type) },
	POL_ATTRS_END
};

static int good_value(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

static void parse_headers(struct loader *ld, json_object *v, struct conf *cf)
{
	size_t n = (size_t)json_object_object_length(v) + 1;	/* + content-type */

	if (n > POL_MAX_VALUES) {
		ld_err(ld, "has more than %d headers", POL_MAX_VALUES);
		return;
	}
	cf->header_names = calloc(n, sizeof(char *));
	cf->header_values = calloc(n, sizeof(struct tpl *));
	if (!cf->header_names || !cf->header_values) {
		ld_err(ld, "out of memory");
		return;
	}
	json_object_object_foreach(v, k, e) {
		size_t m2 = ld_push_key(ld, k);
		size_t i = cf->n_headers;

		if (!pol_is_token(k)) {
			ld_err(ld, "is not a valid header name");
		} else if (e && pol_value_tpl(ld, e, 0, &cf->header_values[i]) == 0) {
			cf->header_names[i] = strdup(k);
			cf->n_headers++;
			if (!cf->header_names[i])
				ld_err(ld, "out of memory");
		} else if (!e) {
			ld_err(ld, "must be a string, not null");
		}
		ld_pop(ld, m2);
	}
}

static void compile(struct loader *ld, json_object *o, void *conf)
{
	struct conf *cf = conf;
	json_object *v = ld_get(ld, o, "headers", 0);
	char why[200] = "out of memory";
	size_t i;

	if (v) {
		size_t mark = ld_push_member(ld, "headers");

		if (ld_is_object(ld, v) == 0)
			parse_headers(ld, v, cf);
		ld_pop(ld, mark);
	}
	if (!cf->content_type)
		return;
	if (!cf->header_values) {
		cf->header_names = calloc(1, sizeof(char *));
		cf->header_values = calloc(1, sizeof(struct tpl *));
	}
	i = cf->n_headers;
	if (!good_value(cf->content_type) || !cf->header_values || !cf->header_names)
		ld_err(ld, "'content-type' is not a valid header value");
	else if (tpl_parse(cf->content_type, strlen(cf->content_type), 0, &cf->header_values[i],
			   why, sizeof(why)) == 0 &&
		 (cf->header_names[i] = strdup("Content-Type")))
		cf->n_headers++;
	else
		ld_err(ld, "'content-type': %s", why);
}

static enum pol_step run(struct pol_call *c, const struct pol_policy *p, enum pol_section_id sec)
{
	const struct conf *cf = p->conf;
	char *body = NULL;
	size_t len = 0;
	struct pol_headers h = { 0 };
	int64_t code;

	(void)sec;
	if (pol_eval_int(c, &cf->code, &code) != 0)
		return POL_STEP_ERROR;
	if (code < 100 || code > 599)
		return pol_fail(c, 500, "Expression failed.", "return-response status out of 100-599");
	for (size_t i = 0; i < cf->n_headers; i++) {
		char *v;
		enum tpl_status st = pol_expand(c, cf->header_values[i], TPL_ENC_HEADER, &v);

		if (st != TPL_OK) {
			pol_headers_release(&h);
			return pol_fail_tpl(c, st);
		}
		if (pol_headers_add(&h, cf->header_names[i], v) != 0) {
			free(v);
			pol_headers_release(&h);
			return pol_oom(c);
		}
		free(v);
	}
	if (cf->body) {
		/* values escaped for the answer's own Content-Type */
		enum tpl_status st = pol_expand_body(c, cf->body,
						     pol_body_enc(pol_headers_get(&h, "Content-Type")),
						     &body, &len);

		if (st != TPL_OK) {
			pol_headers_release(&h);
			return pol_fail_tpl(c, st);
		}
	}
	pol_respond(c, (int)code, &h, body);
	c->body_len = len;
	return POL_STEP_RESPOND;
}

static void release(void *conf)
{
	struct conf *cf = conf;

	for (size_t i = 0; i < cf->n_headers; i++) {
		free(cf->header_names[i]);
		tpl_free(cf->header_values[i]);
	}
	free(cf->header_names);
	free(cf->header_values);
}

const struct pol_module pol_mod_return_response = {
	.name = "return-response",
	.sections = POL_SEC_ALL,
	.attrs = return_attrs,
	.conf_size = sizeof(struct conf),
	.compile = compile,
	.run = run,
	.release = release,
};

const struct pol_module pol_mod_mock_response = {
	.name = "mock-response",
	.sections = POL_SEC_ALL,
	.attrs = mock_attrs,
	.conf_size = sizeof(struct conf),
	.compile = compile,
	.run = run,
	.release = release,
};
