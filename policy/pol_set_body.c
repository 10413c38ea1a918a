/*
 * set-body — replaces the body of the backend call (inbound, backend) or of
 * the answer (outbound, on-error) with a template (polmod.h):
 * {"value": "..."}. Every substituted value is escaped for the message's
 * Content-Type as earlier policies left it (pol_body_enc: JSON string
 * content, XML text, or raw), so a value never changes the document's
 * structure; a "$(...)" integer goes in as digits. Inbound: c->req_body
 * (read marks it sent instead of the client's; the app sets its length).
 * Outbound: the backend's body is dropped for this one (engine_outbound
 * answers POL_RESPOND).
 */
#include "policy/polmod.h"

#include <stdlib.h>
#include <string.h>

#include "policy/engine.h"
#include "policy/loader.h"

struct conf {
	struct tpl *value;
};

static const struct pol_attr attrs[] = {
	{ "value", POL_A_TPL, POL_A_REQUIRED, 0, 0, 0, NULL, NULL, offsetof(struct conf, value) },
	POL_ATTRS_END
};

static enum pol_step run(struct pol_call *c, const struct pol_policy *p, enum pol_section_id sec)
{
	const struct conf *cf = p->conf;
	int out = sec == POL_OUTBOUND || sec == POL_ON_ERROR;
	const struct pol_headers *h = out ? &c->resp_headers : &c->req_headers;
	enum tpl_enc enc = pol_body_enc(pol_headers_get(h, "Content-Type"));
	char *body;
	size_t len;
	enum tpl_status st = pol_expand_body(c, cf->value, enc, &body, &len);

	if (st != TPL_OK)
		return pol_fail_tpl(c, st);
	if (out) {
		pol_replace_body(c, body, len);
		return POL_STEP_NEXT;
	}
	free(c->req_body);
	c->req_body = body;
	c->req_body_len = len;
	/* the app sends req_body with its own length (the client's
	 * Content-Length is never forwarded as a header) */
	c->req_body_read = 1;
	return POL_STEP_NEXT;
}

const struct pol_module pol_mod_set_body = {
	.name = "set-body",
	.sections = POL_SEC_ALL,
	.attrs = attrs,
	.conf_size = sizeof(struct conf),
	.run = run,
};
