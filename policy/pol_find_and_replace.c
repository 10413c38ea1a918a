/*
 * find-and-replace — replaces every occurrence of one string with another in
 * the body of the section's message (polmod.h): the client's body in inbound
 * and backend (read whole first, through the app's read_body), the backend's
 * in outbound (the app buffers it whole, engine_outbound_needs_body), the
 * error answer's in on-error. Bytes, not characters: no encoding is assumed.
 * Occurrences are found left to right and do not overlap; a replacement is
 * never searched again. The result is bounded as the body it replaces:
 * gateway.max_request_body_bytes (413) or POL_MAX_RESP_BODY (502).
 */
#include "policy/polmod.h"

#include <stdlib.h>
#include <string.h>

#include "policy/engine.h"
#include "policy/loader.h"

struct conf {
	struct tpl *from, *to;
};

static const struct pol_attr attrs[] = {
	{ "from", POL_A_TPL, POL_A_REQUIRED, 0, 0, 0, NULL, NULL, offsetof(struct conf, from) },
	{ "to", POL_A_TPL, POL_A_REQUIRED, 0, 0, 0, NULL, NULL, offsetof(struct conf, to) },
	POL_ATTRS_END
};

static void compile(struct loader *ld, json_object *o, void *conf)
{
	struct conf *cf = conf;
	size_t literal = 0;

	(void)o;
	if (!cf->from || cf->from->dynamic)
		return;
	for (size_t i = 0; i < cf->from->n; i++)
		literal += cf->from->v[i].len;
	if (!literal) {
		size_t mark = ld_push_member(ld, "from");

		ld_err(ld, "must not be empty");
		ld_pop(ld, mark);
	}
}

/* The first n[0..nl) in h[0..hl), or NULL (memmem is not C11 nor POSIX). */
static const char *find(const char *h, size_t hl, const char *n, size_t nl)
{
	const char *end = h + hl;

	while ((size_t)(end - h) >= nl) {
		const char *p = memchr(h, n[0], (size_t)(end - h) - nl + 1);

		if (!p)
			return NULL;
		if (memcmp(p, n, nl) == 0)
			return p;
		h = p + 1;
	}
	return NULL;
}

/* Replaces every from[0..fl) in (*body)[0..*len) with to[0..tl), into a new
 * buffer when anything matched. Returns 0, 1 (the result would pass max), or
 * -1 (no memory). */
static int replace_all(char **body, size_t *len, const char *from, size_t fl,
		       const char *to, size_t tl, size_t max)
{
	const char *b = *body, *end = b + *len, *p;
	size_t count = 0, nlen;
	char *out, *o;

	for (p = b; p && (size_t)(end - p) >= fl; p += fl) {
		p = find(p, (size_t)(end - p), from, fl);
		if (!p)
			break;
		count++;
	}
	if (!count)
		return 0;
	/* nlen = len - count * fl + count * tl, checked against max first */
	if (tl > fl && (tl - fl) > (max - (*len < max ? *len : max)) / count)
		return 1;
	nlen = *len - count * fl + count * tl;
	if (nlen > max)
		return 1;
	out = malloc(nlen + 1);
	if (!out)
		return -1;
	o = out;
	for (p = b; (size_t)(end - p) >= fl;) {
		const char *m = find(p, (size_t)(end - p), from, fl);

		if (!m)
			break;
		memcpy(o, p, (size_t)(m - p));
		o += m - p;
		memcpy(o, to, tl);
		o += tl;
		p = m + fl;
	}
	memcpy(o, p, (size_t)(end - p));
	o += end - p;
	*o = '\0';
	free(*body);
	*body = out;
	*len = nlen;
	return 0;
}

static enum pol_step run(struct pol_call *c, const struct pol_policy *p, enum pol_section_id sec)
{
	const struct conf *cf = p->conf;
	int request = sec == POL_INBOUND || sec == POL_BACKEND;
	char *from = NULL, *to = NULL;
	enum pol_step r = POL_STEP_NEXT;
	enum tpl_status st;
	int rc;

	if (request && pol_request_body(c) != POL_STEP_NEXT)
		return POL_STEP_ERROR;
	/* a HEAD's answer has no body to search */
	if (sec == POL_OUTBOUND && !c->resp_body_buffered)
		return POL_STEP_NEXT;
	st = pol_expand(c, cf->from, TPL_ENC_RAW, &from);
	if (st == TPL_OK)
		st = pol_expand(c, cf->to, TPL_ENC_RAW, &to);
	if (st != TPL_OK) {
		r = pol_fail_tpl(c, st);
		goto out;
	}
	if (!*from)
		goto out;	/* a value made it empty: nothing to find */
	if (request)
		rc = replace_all(&c->req_body, &c->req_body_len, from, strlen(from), to, strlen(to),
				 (size_t)c->gw->max_request_body_bytes);
	else
		rc = replace_all(&c->body, &c->body_len, from, strlen(from), to, strlen(to),
				 POL_MAX_RESP_BODY);
	if (rc < 0)
		r = pol_oom(c);
	else if (rc > 0 && request)
		r = pol_fail(c, 413, "Request body too large.", "find-and-replace: body over the limit");
	else if (rc > 0)
		r = pol_fail(c, 502, "Backend answer too large for the policies.",
			     "find-and-replace: answer over the limit");
out:
	free(from);
	free(to);
	return r;
}

static unsigned needs(const void *conf, enum pol_section_id sec)
{
	(void)conf;
	if (sec == POL_INBOUND || sec == POL_BACKEND)
		return POL_NEED_REQ_BODY;
	return sec == POL_OUTBOUND ? POL_NEED_RESP_BODY : 0;
}

const struct pol_module pol_mod_find_and_replace = {
	.name = "find-and-replace",
	.sections = POL_SEC_ALL,
	.attrs = attrs,
	.conf_size = sizeof(struct conf),
	.compile = compile,
	.run = run,
	.needs = needs,
};
