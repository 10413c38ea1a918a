/*
 * validate-jwt — the call needs a valid signed JWT from a header, a query
 * parameter or a template; its claims become ${jwt.claim.NAME} (polmod.h,
 * jwt.h, jose.h).
 */
#include "policy/polmod.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy/engine.h"
#include "policy/jose.h"
#include "policy/jwt.h"
#include "policy/loader.h"

struct conf {
	char *header_name;	/* default "Authorization" when no other source */
	char *query_name;
	struct tpl *token_value;
	char *require_scheme;	/* NULL: none required */
	int64_t code;
	char *message;
	int require_exp, require_signed;
	int64_t clock_skew;
	struct pol_strings audiences, issuers;
	struct jose_keyset *keys;
	struct jwt_cache *cache;	/* validated tokens; mutable, per process */
	struct jwt_required_claim *claims;	/* strings owned */
	size_t n_claims;
};

static const struct pol_attr attrs[] = {
	/* at most one of the three sources */
	{ "header-name", POL_A_HEADER_NAME, 0, 0, 0, 0, NULL, NULL, offsetof(struct conf, header_name) },
	{ "query-parameter-name", POL_A_STR, 0, 0, 0, 0, NULL, NULL, offsetof(struct conf, query_name) },
	{ "token-value", POL_A_TPL, 0, 0, 0, 0, NULL, NULL, offsetof(struct conf, token_value) },
	{ "require-scheme", POL_A_STR, 0, 0, 0, 0, NULL, NULL, offsetof(struct conf, require_scheme) },
	{ "failed-validation-httpcode", POL_A_INT, 0, 400, 599, 401, NULL, NULL,
	  offsetof(struct conf, code) },
	{ "failed-validation-error-message", POL_A_STR, 0, 0, 0, 0,
	  "Unauthorized. Access token is missing or invalid.", NULL, offsetof(struct conf, message) },
	{ "require-expiration-time", POL_A_BOOL, 0, 0, 0, 1, NULL, NULL,
	  offsetof(struct conf, require_exp) },
	{ "require-signed-tokens", POL_A_BOOL, 0, 0, 0, 1, NULL, NULL,
	  offsetof(struct conf, require_signed) },
	{ "clock-skew", POL_A_INT, 0, 0, 86400, 0, NULL, NULL, offsetof(struct conf, clock_skew) },
	{ "audiences", POL_A_STR_LIST, 0, 0, 0, 0, NULL, NULL, offsetof(struct conf, audiences) },
	{ "issuers", POL_A_STR_LIST, 0, 0, 0, 0, NULL, NULL, offsetof(struct conf, issuers) },
	/* [{name, match all/any, separator, value}] (claim_attrs) */
	{ "required-claims", POL_A_RAW, 0, 0, 0, 0, NULL, NULL, 0 },
	/* JWKs, PEM or base64 secrets (jose.h) */
	{ "issuer-signing-keys", POL_A_RAW, POL_A_REQUIRED, 0, 0, 0, NULL, NULL, 0 },
	POL_ATTRS_END
};

/* one element of required-claims, validated by the same table code */
struct claim {
	char *name, *separator;
	int match;
	struct pol_strings values;
};

static const char *const matches[] = { "all", "any", NULL };

static const struct pol_attr claim_attrs[] = {
	{ "name", POL_A_STR, POL_A_REQUIRED, 0, 0, 0, NULL, NULL, offsetof(struct claim, name) },
	{ "match", POL_A_ENUM, 0, 0, 0, 0, NULL, matches, offsetof(struct claim, match) },
	{ "separator", POL_A_STR, 0, 0, 0, 0, NULL, NULL, offsetof(struct claim, separator) },
	{ "value", POL_A_STR_LIST, 0, 0, 0, 0, NULL, NULL, offsetof(struct claim, values) },
	POL_ATTRS_END
};

static void free_secret(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* A copy of the JSON value v with {{named values}} substituted in every string
 * (issuer-signing-keys), or NULL (reported). */
static json_object *subst_copy(struct loader *ld, json_object *v)
{
	json_object *r = NULL;

	switch (json_object_get_type(v)) {
	case json_type_string: {
		char *s;

		if (ld_string(ld, v, STR_SUBST, &s, NULL) != 0)
			return NULL;
		r = json_object_new_string(s);
		free_secret(s);
		break;
	}
	case json_type_object:
		r = json_object_new_object();
		json_object_object_foreach(v, k, e) {
			size_t mark = ld_push_member(ld, k);
			json_object *c = e ? subst_copy(ld, e) : NULL;

			ld_pop(ld, mark);
			if (e && !c) {
				json_object_put(r);
				return NULL;
			}
			if (r)
				json_object_object_add(r, k, c);
		}
		break;
	case json_type_array:
		r = json_object_new_array();
		for (size_t i = 0; r && i < json_object_array_length(v); i++) {
			size_t mark = ld_push_index(ld, i);
			json_object *c = subst_copy(ld, json_object_array_get_idx(v, i));

			ld_pop(ld, mark);
			if (!c) {
				json_object_put(r);
				return NULL;
			}
			json_object_array_add(r, c);
		}
		break;
	default:
		return json_object_get(v);
	}
	if (!r)
		ld_err(ld, "out of memory");
	return r;
}

static void one_claim(struct loader *ld, json_object *c, struct jwt_required_claim *rc)
{
	struct claim cl;

	memset(&cl, 0, sizeof(cl));
	if (ld_is_object(ld, c) != 0)
		return;
	pol_attrs_parse(ld, c, claim_attrs, &cl);
	if (cl.separator) {
		if (strlen(cl.separator) != 1)
			ld_err(ld, "'separator' must be one character");
		else
			rc->separator = cl.separator[0];
	}
	/* the strings move into rc, which the policy frees */
	rc->name = cl.name;
	rc->match = cl.match ? JWT_MATCH_ANY : JWT_MATCH_ALL;
	rc->values = (const char *const *)cl.values.v;
	rc->n_values = cl.values.n;
	cl.name = NULL;
	cl.values.v = NULL;
	cl.values.n = 0;
	pol_attrs_release(claim_attrs, &cl);
}

static void claims(struct loader *ld, json_object *v, struct conf *cf)
{
	size_t n;

	if (ld_is_array(ld, v) != 0)
		return;
	n = json_object_array_length(v);
	if (n > POL_MAX_VALUES) {
		ld_err(ld, "has more than %d claims", POL_MAX_VALUES);
		return;
	}
	if (n == 0)
		return;
	cf->claims = calloc(n, sizeof(*cf->claims));
	if (!cf->claims) {
		ld_err(ld, "out of memory");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		size_t mark = ld_push_index(ld, i);

		one_claim(ld, json_object_array_get_idx(v, i), &cf->claims[cf->n_claims++]);
		ld_pop(ld, mark);
	}
}

static void keys(struct loader *ld, json_object *v, struct conf *cf)
{
	size_t n;

	cf->keys = jose_keyset_new();
	cf->cache = jwt_cache_new();
	if (!cf->keys || !cf->cache) {
		ld_err(ld, "out of memory");
		return;
	}
	if (ld_is_array(ld, v) != 0)
		return;
	n = json_object_array_length(v);
	if (n == 0)
		ld_err(ld, "must hold at least one key");
	for (size_t i = 0; i < n; i++) {
		size_t m2 = ld_push_index(ld, i);
		json_object *k = subst_copy(ld, json_object_array_get_idx(v, i));
		const char *why = NULL;

		if (k && jose_keyset_add(cf->keys, k, &why) != 0)
			ld_err(ld, "not a usable key: %s", why ? why : "unknown reason");
		json_object_put(k);
		ld_pop(ld, m2);
	}
}

static void compile(struct loader *ld, json_object *o, void *conf)
{
	struct conf *cf = conf;
	int sources = ld_present(o, "header-name") + ld_present(o, "query-parameter-name") +
		ld_present(o, "token-value");
	json_object *v;
	size_t mark;

	if (cf->query_name && !pol_is_query_name(cf->query_name)) {
		mark = ld_push_member(ld, "query-parameter-name");
		ld_err(ld, "is not a valid query parameter name");
		ld_pop(ld, mark);
	}
	if (sources > 1)
		ld_err(ld, "give at most one of 'header-name', 'query-parameter-name', "
		       "'token-value'");
	if (sources == 0 && !(cf->header_name = strdup("Authorization")))
		ld_err(ld, "out of memory");
	if (!cf->require_scheme && cf->header_name &&
	    strcasecmp(cf->header_name, "Authorization") == 0 &&
	    !(cf->require_scheme = strdup("Bearer")))
		ld_err(ld, "out of memory");
	if (!cf->require_signed) {
		mark = ld_push_member(ld, "require-signed-tokens");
		ld_err(ld, "unsigned tokens are never accepted by this gateway (leave it true)");
		ld_pop(ld, mark);
	}
	v = ld_get(ld, o, "required-claims", 0);
	if (v) {
		mark = ld_push_member(ld, "required-claims");
		claims(ld, v, cf);
		ld_pop(ld, mark);
	}
	v = ld_get(ld, o, "issuer-signing-keys", 0);
	if (v) {
		mark = ld_push_member(ld, "issuer-signing-keys");
		keys(ld, v, cf);
		ld_pop(ld, mark);
	}
}

/* The token as presented, in a new string, or NULL (absent). Returns TPL_OK
 * or a template failure. */
static enum tpl_status token(struct pol_call *c, const struct conf *cf, char **out)
{
	const char *tok;

	*out = NULL;
	if (cf->token_value)
		return pol_expand(c, cf->token_value, TPL_ENC_RAW, out);
	if (cf->query_name) {
		if (c->query)
			*out = pol_query_value(c->query, cf->query_name);
		return TPL_OK;
	}
	tok = pol_headers_get(&c->req_headers, cf->header_name);
	if (tok && cf->require_scheme) {
		size_t sl = strlen(cf->require_scheme);

		if (strncasecmp(tok, cf->require_scheme, sl) == 0 && tok[sl] == ' ')
			tok += sl + 1;
		else
			tok = NULL;
	}
	while (tok && *tok == ' ')
		tok++;
	if (tok)
		*out = strdup(tok);
	return TPL_OK;
}

static enum pol_step run(struct pol_call *c, const struct pol_policy *p, enum pol_section_id sec)
{
	const struct conf *cf = p->conf;
	char *tok = NULL;
	struct jwt_rules rules;
	struct jwt_result res;
	enum tpl_status st = token(c, cf, &tok);
	enum pol_step r;

	(void)sec;
	if (st != TPL_OK)
		return pol_fail_tpl(c, st);
	if (!tok || !*tok) {
		free(tok);
		return pol_fail(c, (int)cf->code, cf->message, "jwt: token missing");
	}
	memset(&rules, 0, sizeof(rules));
	rules.keys = cf->keys;
	rules.now = c->now;
	rules.clock_skew = cf->clock_skew;
	rules.require_expiration = cf->require_exp;
	rules.issuers = (const char *const *)cf->issuers.v;
	rules.n_issuers = cf->issuers.n;
	rules.audiences = (const char *const *)cf->audiences.v;
	rules.n_audiences = cf->audiences.n;
	rules.claims = cf->claims;
	rules.n_claims = cf->n_claims;
	memset(&res, 0, sizeof(res));
	if (jwt_validate_cached(cf->cache, tok, strlen(tok), &rules, &res) == JWT_OK) {
		jwt_result_release(&c->jwt);
		c->jwt = res;
		r = POL_STEP_NEXT;
	} else {
		r = pol_fail(c, (int)cf->code, cf->message, res.reason);
		jwt_result_release(&res);
	}
	/* a bearer token is a credential */
	free_secret(tok);
	return r;
}

static void release(void *conf)
{
	struct conf *cf = conf;

	jose_keyset_free(cf->keys);
	jwt_cache_free(cf->cache);
	for (size_t i = 0; i < cf->n_claims; i++) {
		char **vals = (char **)(uintptr_t)cf->claims[i].values;

		free((char *)(uintptr_t)cf->claims[i].name);
		for (size_t j = 0; j < cf->claims[i].n_values; j++)
			free(vals[j]);
		free(vals);
	}
	free(cf->claims);
}

const struct pol_module pol_mod_validate_jwt = {
	.name = "validate-jwt",
	.sections = POL_SEC_IN,
	.attrs = attrs,
	.conf_size = sizeof(struct conf),
	.compile = compile,
	.run = run,
	.release = release,
};
