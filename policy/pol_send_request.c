/*
 * send-request — a side call to a configured backend (polmod.h), APIM's
 * send-request in mode "new": the call starts empty (nothing of the client's
 * request goes unless a value puts it there), is made by the app
 * (pol_app_ops.side_call: the backend's credentials and TLS, no redirects,
 * within the request's deadline) and its answer becomes variables of the
 * request:
 *
 *   NAME.status            "200", or "0" when no answer came (ignore-error)
 *   NAME.body              the body (at most POL_MAX_SIDE_BODY)
 *   NAME.header.<lower>    each header, repeated ones joined with ", "
 *
 * Never an open proxy: backend-id names a backend of the document, set-url is
 * a path (and query) below its URL — values URL-encoded, no scheme or
 * authority, no dot segment (refused at load when literal, 400 when a value
 * makes one). Without ignore-error a failure fails the request: 504 when the
 * time ran out, 502 otherwise. The body and headers are never logged.
 */
#include "policy/polmod.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/engine.h"
#include "policy/loader.h"
#include "policy/path.h"

#define VAR_NAME_MAX 80

struct hdr {
	char *name;
	int exists;	/* enum pol_exists */
	struct pol_tpls values;
};

struct conf {
	char *mode;
	char *var;
	int64_t timeout;
	int ignore_error;
	char *backend_id;
	struct tpl *url;
	char *method;
	struct tpl *body;
	/* compile's */
	const struct gw_backend *backend;
	struct hdr *hdrs;
	size_t n_hdrs;
};

static const struct pol_attr attrs[] = {
	{ "mode", POL_A_STR, 0, 0, 0, 0, "new", NULL, offsetof(struct conf, mode) },
	{ "response-variable-name", POL_A_STR, POL_A_REQUIRED, 0, 0, 0, NULL, NULL,
	  offsetof(struct conf, var) },
	{ "timeout", POL_A_INT, 0, 1, 240, 20, NULL, NULL, offsetof(struct conf, timeout) },
	{ "ignore-error", POL_A_BOOL, 0, 0, 0, 0, NULL, NULL, offsetof(struct conf, ignore_error) },
	{ "backend-id", POL_A_STR, POL_A_REQUIRED, 0, 0, 0, NULL, NULL,
	  offsetof(struct conf, backend_id) },
	{ "set-url", POL_A_TPL, 0, 0, 0, 0, NULL, NULL, offsetof(struct conf, url) },
	{ "set-method", POL_A_STR, 0, 0, 0, 0, "GET", NULL, offsetof(struct conf, method) },
	{ "set-header", POL_A_RAW, 0, 0, 0, 0, NULL, NULL, 0 },
	{ "set-body", POL_A_TPL, 0, 0, 0, 0, NULL, NULL, offsetof(struct conf, body) },
	POL_ATTRS_END
};

static const char *const actions[] = { "override", "skip", "append", "delete", NULL };

static const struct pol_attr hdr_attrs[] = {
	{ "name", POL_A_HEADER_NAME, POL_A_REQUIRED, 0, 0, 0, NULL, NULL, offsetof(struct hdr, name) },
	{ "exists-action", POL_A_ENUM, 0, 0, 0, POL_EXISTS_OVERRIDE, NULL, actions,
	  offsetof(struct hdr, exists) },
	{ "value", POL_A_TPL_LIST, 0, 0, 0, 0, NULL, NULL, offsetof(struct hdr, values) },
	POL_ATTRS_END
};

static int is_var_name(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > VAR_NAME_MAX)
		return 0;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

/* The literal parts of set-url: a path below the backend, from its first
 * byte; no literal piece of the path makes a dot segment, a fragment or an
 * authority. What values add is checked on each request. */
static void check_url(struct loader *ld, const struct tpl *t)
{
	const struct tpl_part *first = t->n ? &t->v[0] : NULL;
	int in_query = 0;

	if (!first || first->root != TPL_LITERAL || !first->len ||
	    (first->text[0] != '/' && first->text[0] != '?')) {
		ld_err(ld, "must be a path below the backend's URL, starting with '/' "
		       "(never a URL: the backend is 'backend-id')");
		return;
	}
	if (first->len > 1 && first->text[0] == '/' &&
	    (first->text[1] == '/' || first->text[1] == '\\')) {
		ld_err(ld, "must not start with '//' (an authority)");
		return;
	}
	for (size_t i = 0; i < t->n; i++) {
		const struct tpl_part *p = &t->v[i];
		size_t plen;

		if (p->root != TPL_LITERAL)
			continue;
		if (memchr(p->text, '#', p->len)) {
			ld_err(ld, "must not hold a fragment ('#')");
			return;
		}
		if (in_query)
			continue;
		plen = strcspn(p->text, "?");
		if (plen > p->len)
			plen = p->len;
		if (path_check(p->text, plen) != 0) {
			ld_err(ld, "must not hold a '.' or '..' segment (it would leave the "
			       "backend's path)");
			return;
		}
		if (plen < p->len)
			in_query = 1;
	}
}

static void headers(struct loader *ld, json_object *v, struct conf *cf)
{
	size_t n;

	if (ld_is_array(ld, v) != 0)
		return;
	n = json_object_array_length(v);
	if (n > POL_MAX_VALUES) {
		ld_err(ld, "has more than %d headers", POL_MAX_VALUES);
		return;
	}
	if (!n)
		return;
	cf->hdrs = calloc(n, sizeof(*cf->hdrs));
	if (!cf->hdrs) {
		ld_err(ld, "out of memory");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		size_t mark = ld_push_index(ld, i);
		json_object *h = json_object_array_get_idx(v, i);
		struct hdr *d = &cf->hdrs[cf->n_hdrs++];

		if (ld_is_object(ld, h) == 0) {
			pol_attrs_parse(ld, h, hdr_attrs, d);
			if (d->exists != POL_EXISTS_DELETE && !ld_present(h, "value"))
				ld_err(ld, "missing required member 'value' (only 'delete' goes without)");
		}
		ld_pop(ld, mark);
	}
}

static void compile(struct loader *ld, json_object *o, void *conf)
{
	struct conf *cf = conf;
	json_object *v;
	size_t mark;

	if (cf->mode && strcmp(cf->mode, "new") != 0) {
		mark = ld_push_member(ld, "mode");
		if (strcmp(cf->mode, "copy") == 0)
			ld_err(ld, "'copy' is not supported: a side call starts empty (\"new\"), "
			       "so that nothing of the client's request goes elsewhere unless "
			       "a value puts it there");
		else
			ld_err(ld, "must be \"new\"");
		ld_pop(ld, mark);
	}
	if (cf->var && !is_var_name(cf->var)) {
		mark = ld_push_member(ld, "response-variable-name");
		ld_err(ld, "must be 1 to %d characters of A-Z a-z 0-9 _ -", VAR_NAME_MAX);
		ld_pop(ld, mark);
	}
	if (cf->backend_id) {
		cf->backend = gw_backend_find(ld->gw, cf->backend_id);
		if (!cf->backend) {
			mark = ld_push_member(ld, "backend-id");
			ld_err(ld, "'%s' is not a backend", cf->backend_id);
			ld_pop(ld, mark);
		}
	}
	if (cf->method && !pol_is_token(cf->method)) {
		mark = ld_push_member(ld, "set-method");
		ld_err(ld, "must be an HTTP method (a token)");
		ld_pop(ld, mark);
	}
	if (cf->url) {
		mark = ld_push_member(ld, "set-url");
		check_url(ld, cf->url);
		ld_pop(ld, mark);
	}
	v = ld_get(ld, o, "set-header", 0);
	if (v) {
		mark = ld_push_member(ld, "set-header");
		headers(ld, v, cf);
		ld_pop(ld, mark);
	}
}

static void release(void *conf)
{
	struct conf *cf = conf;

	for (size_t i = 0; i < cf->n_hdrs; i++)
		pol_attrs_release(hdr_attrs, &cf->hdrs[i]);
	free(cf->hdrs);
	cf->hdrs = NULL;
	cf->n_hdrs = 0;
}

/* The side call's headers, as set-header would make them on an empty list. */
static enum pol_step side_headers(struct pol_call *c, const struct conf *cf, struct pol_headers *h)
{
	for (size_t i = 0; i < cf->n_hdrs; i++) {
		const struct hdr *d = &cf->hdrs[i];

		if (d->exists == POL_EXISTS_DELETE) {
			pol_headers_del(h, d->name);
			continue;
		}
		if (d->exists == POL_EXISTS_SKIP && pol_headers_get(h, d->name))
			continue;
		if (d->exists == POL_EXISTS_OVERRIDE)
			pol_headers_del(h, d->name);
		for (size_t j = 0; j < d->values.n; j++) {
			char *v;
			enum tpl_status st = pol_expand(c, d->values.v[j], TPL_ENC_HEADER, &v);

			if (st != TPL_OK)
				return pol_fail_tpl(c, st);
			if (pol_headers_add(h, d->name, v) != 0) {
				free(v);
				return pol_fail(c, 400, "Too many headers.", "too many headers");
			}
			free(v);
		}
	}
	return POL_STEP_NEXT;
}

/* Sets NAME.SUFFIX to value[0..len). Returns 0 or -1. */
static int set_var(struct pol_call *c, const char *var, const char *suffix, const char *value,
		   size_t len)
{
	char name[512];
	int n = snprintf(name, sizeof(name), "%s.%s", var, suffix);

	if (n < 0 || (size_t)n >= sizeof(name))
		return -1;
	return pol_var_set(c, name, value, len);
}

/* The answer as variables (module header). Returns 0 or -1 (too many). */
static int answer_vars(struct pol_call *c, const char *var, const struct pol_side_response *rs)
{
	char status[16];
	int n = snprintf(status, sizeof(status), "%d", rs->status);

	if (set_var(c, var, "status", status, (size_t)n) != 0 ||
	    set_var(c, var, "body", rs->body ? rs->body : "", rs->body_len) != 0)
		return -1;
	for (size_t i = 0; i < rs->headers.n; i++) {
		const char *hn = rs->headers.v[i].name;
		char suffix[300], joined[POL_MAX_VALUE_BYTES];
		size_t len = 0, k;

		for (k = 0; hn[k] && k + 8 < sizeof(suffix) - 1; k++)
			suffix[7 + k] = (char)((hn[k] >= 'A' && hn[k] <= 'Z') ? hn[k] + 32 : hn[k]);
		if (hn[k])
			continue;	/* a name too long to be a variable's */
		memcpy(suffix, "header.", 7);
		suffix[7 + k] = '\0';
		/* once per name: the first occurrence joins every value */
		for (k = 0; k < i; k++)
			if (!strcasecmp(rs->headers.v[k].name, hn))
				break;
		if (k < i)
			continue;
		for (k = i; k < rs->headers.n; k++) {
			const char *v = rs->headers.v[k].value;
			size_t vl = strlen(v);

			if (strcasecmp(rs->headers.v[k].name, hn) != 0)
				continue;
			if (len + vl + 2 > sizeof(joined))
				break;
			if (len) {
				memcpy(joined + len, ", ", 2);
				len += 2;
			}
			memcpy(joined + len, v, vl);
			len += vl;
		}
		if (set_var(c, var, suffix, joined, len) != 0)
			return -1;
	}
	return 0;
}

static enum pol_step run(struct pol_call *c, const struct pol_policy *p, enum pol_section_id sec)
{
	const struct conf *cf = p->conf;
	struct pol_headers h = { 0 };
	struct pol_side_request rq;
	struct pol_side_response rs;
	char *target = NULL, *body = NULL;
	enum pol_step r;
	enum tpl_status st;

	(void)sec;
	memset(&rs, 0, sizeof(rs));
	r = side_headers(c, cf, &h);
	if (r != POL_STEP_NEXT)
		goto out;
	st = cf->url ? pol_expand(c, cf->url, TPL_ENC_URL, &target) : TPL_OK;
	if (st == TPL_OK && !target) {
		target = strdup("");
		st = target ? TPL_OK : TPL_NOMEM;
	}
	if (st == TPL_OK && cf->body)
		st = pol_expand(c, cf->body, TPL_ENC_RAW, &body);
	if (st != TPL_OK) {
		r = pol_fail_tpl(c, st);
		goto out;
	}
	if (path_check(target, strcspn(target, "?")) != 0) {
		r = pol_fail(c, 400, "Bad request.", "send-request: a value made a dot segment");
		goto out;
	}
	if (!c->ops || !c->ops->side_call) {
		r = pol_fail(c, 500, "Internal server error.", "send-request: no side calls here");
		goto out;
	}
	memset(&rq, 0, sizeof(rq));
	rq.backend = cf->backend;
	rq.method = cf->method;
	rq.target = target;
	rq.headers = &h;
	rq.body = body;
	rq.body_len = body ? strlen(body) : 0;
	rq.timeout_ms = (long)cf->timeout * 1000;
	if (c->ops->side_call(c->ops_ctx, &rq, &rs) != 0) {
		if (!cf->ignore_error) {
			r = rs.timed_out ?
				pol_fail(c, 504, "Side request timed out.",
					 rs.error ? rs.error : "send-request: timed out") :
				pol_fail(c, 502, "Side request failed.",
					 rs.error ? rs.error : "send-request: failed");
			goto out;
		}
		pol_side_response_release(&rs);
		rs.status = 0;
	}
	r = answer_vars(c, cf->var, &rs) == 0 ? POL_STEP_NEXT :
		pol_fail(c, 500, "Internal server error.", "send-request: too many variables");
out:
	pol_side_response_release(&rs);
	pol_headers_release(&h);
	free(target);
	free(body);
	return r;
}

static const struct gw_backend *named_backend(const void *conf)
{
	return ((const struct conf *)conf)->backend;
}

const struct pol_module pol_mod_send_request = {
	.name = "send-request",
	.sections = POL_SEC_ALL,
	.attrs = attrs,
	.conf_size = sizeof(struct conf),
	.compile = compile,
	.run = run,
	.release = release,
	.backend = named_backend,
};
