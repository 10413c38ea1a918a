/*
 * cors — answers preflights and adds the CORS headers to the answer of an
 * allowed origin (polmod.h).
 */
#include "policy/polmod.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy/engine.h"
#include "policy/loader.h"

struct conf {
	struct pol_strings origins, methods, headers, expose;
	int credentials;
	int64_t max_age;	/* -1: not sent */
	int terminate_unmatched;
	int any_origin, any_method, any_header;	/* '*' in the list */
};

static const struct pol_attr attrs[] = {
	{ "allowed-origins", POL_A_STR_LIST, POL_A_REQUIRED, 0, 0, 0, NULL, NULL,
	  offsetof(struct conf, origins) },
	{ "allowed-methods", POL_A_STR_LIST, 0, 0, 0, 0, NULL, NULL, offsetof(struct conf, methods) },
	{ "allowed-headers", POL_A_STR_LIST, 0, 0, 0, 0, NULL, NULL, offsetof(struct conf, headers) },
	{ "expose-headers", POL_A_STR_LIST, 0, 0, 0, 0, NULL, NULL, offsetof(struct conf, expose) },
	{ "allow-credentials", POL_A_BOOL, 0, 0, 0, 0, NULL, NULL,
	  offsetof(struct conf, credentials) },
	{ "preflight-result-max-age", POL_A_INT, 0, 0, 86400 * 365, -1, NULL, NULL,
	  offsetof(struct conf, max_age) },
	{ "terminate-unmatched-request", POL_A_BOOL, 0, 0, 0, 1, NULL, NULL,
	  offsetof(struct conf, terminate_unmatched) },
	POL_ATTRS_END
};

static int list_has(const struct pol_strings *l, const char *s, int nocase)
{
	for (size_t i = 0; i < l->n; i++)
		if (nocase ? strcasecmp(l->v[i], s) == 0 : strcmp(l->v[i], s) == 0)
			return 1;
	return 0;
}

static void compile(struct loader *ld, json_object *o, void *conf)
{
	struct conf *cf = conf;

	(void)o;
	cf->any_origin = list_has(&cf->origins, "*", 0);
	cf->any_method = list_has(&cf->methods, "*", 0);
	cf->any_header = list_has(&cf->headers, "*", 0);
	if (cf->origins.n == 0)
		ld_err(ld, "'allowed-origins' must hold at least one origin");
	if (cf->any_origin && cf->credentials)
		ld_err(ld, "'allow-credentials' cannot be true with the origin '*' (browsers "
		       "refuse it)");
}

/* Joins l with ", " into a new string. */
static char *join(const struct pol_strings *l)
{
	struct tpl_buf b = TPL_BUF_INIT(POL_MAX_VALUE_BYTES);

	tpl_buf_put(&b, "", 0, TPL_ENC_RAW);
	for (size_t i = 0; i < l->n; i++) {
		if ((i && tpl_buf_put(&b, ", ", 2, TPL_ENC_RAW) != TPL_OK) ||
		    tpl_buf_put(&b, l->v[i], strlen(l->v[i]), TPL_ENC_RAW) != TPL_OK) {
			tpl_buf_release(&b);
			return NULL;
		}
	}
	return b.p;
}

/* Are all the comma-separated headers of req allowed? */
static int headers_ok(const struct conf *cf, const char *req)
{
	char name[257];

	if (!req || cf->any_header)
		return 1;
	while (*req) {
		size_t n;

		while (*req == ' ' || *req == ',')
			req++;
		n = strcspn(req, ", ");
		if (n == 0)
			break;
		if (n >= sizeof(name))
			return 0;
		memcpy(name, req, n);
		name[n] = '\0';
		if (!list_has(&cf->headers, name, 1))
			return 0;
		req += n;
	}
	return 1;
}

static enum pol_step run(struct pol_call *c, const struct pol_policy *p, enum pol_section_id sec)
{
	const struct conf *cf = p->conf;
	const char *origin = pol_headers_get(&c->req_headers, "Origin");
	const char *want = pol_headers_get(&c->req_headers, "Access-Control-Request-Method");
	int preflight = c->method && strcmp(c->method, "OPTIONS") == 0 && want;
	int ok = origin && (cf->any_origin || list_has(&cf->origins, origin, 0));
	/* a preflight is answered here; an actual request's answer comes later */
	struct pol_headers *h = preflight ? &c->resp_headers : pol_extra_headers(c);
	struct pol_headers none = { 0 };
	const char *ao = cf->any_origin && !cf->credentials ? "*" : origin;

	(void)sec;
	if (!origin)
		return POL_STEP_NEXT;
	if (ok && preflight) {
		if (cf->any_method || cf->methods.n == 0 ?
		    (cf->any_method || strcmp(want, "GET") == 0 || strcmp(want, "POST") == 0) :
		    list_has(&cf->methods, want, 0))
			ok = headers_ok(cf, pol_headers_get(&c->req_headers,
							    "Access-Control-Request-Headers"));
		else
			ok = 0;
	}
	if (!ok) {
		if (!cf->terminate_unmatched)
			return POL_STEP_NEXT;
		pol_respond(c, 200, &none, NULL);
		return POL_STEP_RESPOND;
	}
	if (preflight)
		pol_respond(c, 200, &none, NULL);
	pol_headers_add(h, "Access-Control-Allow-Origin", ao);
	if (strcmp(ao, "*") != 0)
		pol_headers_add(h, "Vary", "Origin");
	if (cf->credentials)
		pol_headers_add(h, "Access-Control-Allow-Credentials", "true");
	if (preflight) {
		const char *rh = pol_headers_get(&c->req_headers, "Access-Control-Request-Headers");
		char *m = cf->any_method ? strdup(want) : join(&cf->methods);
		char num[32];

		if (m && *m)
			pol_headers_add(h, "Access-Control-Allow-Methods", m);
		else if (m)
			pol_headers_add(h, "Access-Control-Allow-Methods", "GET, POST");
		free(m);
		if (rh) {
			m = cf->any_header ? strdup(rh) : join(&cf->headers);
			if (m && *m)
				pol_headers_add(h, "Access-Control-Allow-Headers", m);
			free(m);
		}
		if (cf->max_age >= 0) {
			snprintf(num, sizeof(num), "%lld", (long long)cf->max_age);
			pol_headers_add(h, "Access-Control-Max-Age", num);
		}
		return POL_STEP_RESPOND;
	}
	if (cf->expose.n) {
		char *e = join(&cf->expose);

		if (e)
			pol_headers_add(h, "Access-Control-Expose-Headers", e);
		free(e);
	}
	return POL_STEP_NEXT;
}

const struct pol_module pol_mod_cors = {
	.name = "cors",
	.sections = POL_SEC_IN,
	.attrs = attrs,
	.conf_size = sizeof(struct conf),
	.compile = compile,
	.run = run,
};
