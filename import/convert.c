/*
 * convert — APIM definitions in memory → one format 1 document (convert.h).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/jsonget.h"
#include "import/convert.h"

struct cx {
	const struct imp_artifacts *a;
	const struct imp_options *o;
	struct cfg_errors *errs;
	struct cfg_errors *real_errs;	/* errs of the first round: notes only then */
	struct cfg_errors notes;
	struct px_origins orig;
	json_object *doc;
	json_object *report;
	unsigned char *api_bad;	/* per API: something cannot be carried over */
	unsigned char *api_skip;	/* per API: not served by --gateway */
	int failed;		/* an error outside any API */
	long cur_api;		/* the API being converted, -1: none */
	json_object *reasons;	/* per API: why it cannot be carried over (strings) */
};

/* appends msg to API ai's reasons, once */
static void S_reason(struct cx *c, long ai, const char *msg)
{
	json_object *arr;
	size_t i;

	if (ai < 0 || !c->reasons)
		return;
	arr = json_object_array_get_idx(c->reasons, (size_t)ai);
	if (!arr)
		return;
	for (i = 0; i < json_object_array_length(arr); i++)
		if (!strcmp(json_object_get_string(json_object_array_get_idx(arr, i)), msg))
			return;
	json_object_array_add(arr, json_object_new_string(msg));
}

/* the messages errs got since n0 become API ai's reasons */
static void S_reasons_since(struct cx *c, long ai, size_t n0)
{
	size_t i;

	for (i = n0; i < c->errs->n; i++)
		S_reason(c, ai, c->errs->msg[i]);
}

static void S_err(struct cx *c, const char *file, long line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void S_err(struct cx *c, const char *file, long line, const char *fmt, ...)
{
	char where[600], msg[1024];
	va_list ap;

	snprintf(where, sizeof(where), "%s:%ld", file ? file : "-", line);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cfg_error(c->errs, where, "%s", msg);
	if (c->cur_api >= 0) {
		char full[1700];
		snprintf(full, sizeof(full), "%s: %s", where, msg);
		S_reason(c, c->cur_api, full);
		c->api_bad[c->cur_api] = 1;
	} else {
		c->failed = 1;
	}
}

static json_object *S_props(json_object *info)
{
	json_object *p;

	if (info && json_object_object_get_ex(info, "properties", &p) &&
	    json_object_is_type(p, json_type_object))
		return p;
	return info;
}

static int S_bool(json_object *o, const char *name, int dflt)
{
	json_object *v;

	if (!o || !json_object_object_get_ex(o, name, &v) || !v)
		return dflt;
	if (json_object_is_type(v, json_type_string))
		return !strcasecmp(json_object_get_string(v), "true");
	return json_object_get_boolean(v);
}

static int S_id_ok(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > IMP_MAX_NAME)
		return 0;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
			return 0;
	return 1;
}

/* ---- operations from OpenAPI ----------------------------------------------- */

char *imp_op_name(const char *operation_id, const char *method, const char *path)
{
	char src[1024], *o;
	size_t i, n = 0;
	int dash = 0;

	if (operation_id)
		snprintf(src, sizeof(src), "%s", operation_id);
	else
		snprintf(src, sizeof(src), "%s-%s", method, path);
	o = malloc(IMP_MAX_NAME + 1);
	if (!o)
		return NULL;
	for (i = 0; src[i] && n < IMP_MAX_NAME; i++) {
		unsigned char ch = (unsigned char)src[i];
		if (isalnum(ch)) {
			if (dash && n > 0 && n < IMP_MAX_NAME)
				o[n++] = '-';
			dash = 0;
			if (n < IMP_MAX_NAME)
				o[n++] = (char)tolower(ch);
		} else {
			dash = 1;
		}
	}
	o[n] = '\0';
	if (!n) {
		free(o);
		return NULL;
	}
	return o;
}

static const char *const methods[] = { "get", "put", "post", "delete", "options", "head",
	"patch", "trace", NULL };

int imp_openapi_operations(json_object *spec, const char *file, json_object *ops,
			   struct cfg_errors *errs)
{
	json_object *paths;
	char where[600];
	int rc = 0;

	snprintf(where, sizeof(where), "%s:1", file);
	if (!json_object_is_type(spec, json_type_object) ||
	    (!jget_str(spec, "openapi") && !jget_str(spec, "swagger"))) {
		cfg_error(errs, where, "not an OpenAPI 2 or 3 document (no 'openapi' or 'swagger')");
		return -1;
	}
	if (!json_object_object_get_ex(spec, "paths", &paths) ||
	    !json_object_is_type(paths, json_type_object))
		return 0;
	json_object_object_foreach(paths, path, item) {
		const char *const *m;
		char tpl[1024];
		const char *q;

		if (!json_object_is_type(item, json_type_object))
			continue;
		if (path[0] != '/') {
			cfg_error(errs, where, "path '%s' does not start with '/'", path);
			rc = -1;
			continue;
		}
		/* APIM's templates may carry a query part; operations match the path */
		q = strchr(path, '?');
		snprintf(tpl, sizeof(tpl), "%.*s", q ? (int)(q - path) : (int)strlen(path), path);
		for (m = methods; *m; m++) {
			json_object *op, *id, *e;
			char *name, *u;
			char cand[IMP_MAX_NAME + 16];
			size_t k, i;
			int dup;

			if (!json_object_object_get_ex(item, *m, &op) ||
			    !json_object_is_type(op, json_type_object))
				continue;
			name = imp_op_name(json_object_object_get_ex(op, "operationId", &id) &&
					   json_object_is_type(id, json_type_string) ?
					   json_object_get_string(id) : NULL, *m, tpl);
			if (!name) {
				cfg_error(errs, where, "%s %s: no operation name can be made", *m, path);
				rc = -1;
				continue;
			}
			/* duplicates numbered: name, name-1, name-2 ... (truncated to fit) */
			snprintf(cand, sizeof(cand), "%s", name);
			for (k = 1;; k++) {
				dup = 0;
				for (i = 0; i < json_object_array_length(ops); i++) {
					json_object *o2 = json_object_array_get_idx(ops, i);
					if (!strcmp(jget_str(o2, "id"), cand))
						dup = 1;
				}
				if (!dup || k > 999)
					break;
				char suf[8];
				int sl = snprintf(suf, sizeof(suf), "-%zu", k);
				size_t keep = strlen(name);
				if (keep + (size_t)sl > IMP_MAX_NAME)
					keep = IMP_MAX_NAME - (size_t)sl;
				snprintf(cand, sizeof(cand), "%.*s%s", (int)keep, name, suf);
			}
			free(name);
			e = json_object_new_object();
			json_object_object_add(e, "id", json_object_new_string(cand));
			u = strdup(*m);
			for (i = 0; u && u[i]; i++)
				u[i] = (char)toupper((unsigned char)u[i]);
			json_object_object_add(e, "method", json_object_new_string(u ? u : ""));
			free(u);
			json_object_object_add(e, "url_template", json_object_new_string(tpl));
			json_object_array_add(ops, e);
		}
	}
	return rc;
}

/* ---- policies ---------------------------------------------------------------- */

/* policy.xml → json, NULL when absent or refused (reported) */
static json_object *S_policy(struct cx *c, const struct imp_text *t)
{
	json_object *p = NULL;
	size_t n0 = c->errs->n;

	if (!t->file || !t->text)
		return NULL;
	if (px_convert(t->text, t->len, t->file, c->a->frags, c->a->n_frags, &p, &c->orig,
		       c->errs, c->errs == c->real_errs ? &c->notes : NULL) != 0) {
		if (c->cur_api >= 0) {
			c->api_bad[c->cur_api] = 1;
			S_reasons_since(c, c->cur_api, n0);
		} else {
			c->failed = 1;
		}
	}
	/* a refused policy's remainder still goes to the loader, for its errors:
	 * the document is never written then */
	return p;
}

static void S_origin_line(struct cx *c, json_object *obj, const char *file, size_t line);

static void S_origin(struct cx *c, json_object *obj, const char *file)
{
	S_origin_line(c, obj, file, 1);
}

/* the line of a specification where path is a key ("/a/{b}": or '/a/{b}': or
 * /a/{b}:), 1 when not found */
static size_t S_spec_line(const char *text, const char *path)
{
	const char *p = text;
	size_t n = strlen(path), line = 1;

	if (!text || !n)
		return 1;
	while ((p = strstr(p, path)) != NULL) {
		const char *e = p + n;
		if ((*e == '"' || *e == '\'' || *e == ':' || *e == '?') &&
		    (p == text || p[-1] == '"' || p[-1] == '\'' || p[-1] == ' ' || p[-1] == '\n')) {
			const char *q;
			for (q = text; q < p; q++)
				line += *q == '\n';
			return line;
		}
		p++;
	}
	return 1;
}

static void S_origin_line(struct cx *c, json_object *obj, const char *file, size_t line)
{
	struct px_origins *o = &c->orig;
	char where[600];

	if (o->n == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 32;
		struct px_origin *nv = realloc(o->v, cap * sizeof(*nv));
		if (!nv)
			return;
		o->v = nv;
		o->cap = cap;
	}
	snprintf(where, sizeof(where), "%s:%zu", file, line);
	o->v[o->n].obj = obj;
	o->v[o->n].where = strdup(where);
	o->v[o->n].refused = 0;
	if (o->v[o->n].where)
		o->n++;
}

/* ---- named values, backends ---------------------------------------------------- */

static void S_named_values(struct cx *c)
{
	json_object *nv = json_object_new_object(), *secrets;
	size_t i;

	json_object_object_add(c->doc, "named_values", nv);
	secrets = json_object_new_array();
	json_object_object_add(c->report, "secrets", secrets);
	for (i = 0; i < c->a->n_named_values; i++) {
		const struct imp_item *it = &c->a->named_values[i];
		json_object *p = S_props(it->info), *e, *kv;
		const char *dn = jget_str(p, "displayName"), *v = jget_str(p, "value");
		int secret = S_bool(p, "secret", 0);

		if (!dn)
			dn = it->name;
		if (!S_id_ok(dn)) {
			S_err(c, it->file, 1, "named value '%s': the name is not importable"
			      " (1-80 of A-Z a-z 0-9 . _ -)", dn);
			continue;
		}
		if (secret || (json_object_object_get_ex(p, "keyVault", &kv) && kv)) {
			json_object *s = json_object_new_object();
			json_object_object_add(s, "name", json_object_new_string(dn));
			json_object_object_add(s, "file", json_object_new_string(it->file));
			json_object_object_add(s, "supplied", json_object_new_boolean(v != NULL));
			json_object_array_add(secrets, s);
		}
		if (!v) {
			S_err(c, it->file, 1, "named value '%s' has no value in the artifacts (a secret"
			      " or Key Vault value): supply it in --overrides under namedValues", dn);
			continue;
		}
		e = json_object_new_object();
		json_object_object_add(e, "value", json_object_new_string(v));
		json_object_object_add(e, "secret", json_object_new_boolean(secret));
		json_object_object_add(nv, dn, e);
		S_origin(c, e, it->file);
	}
}

static const struct imp_item *S_backend_item(struct cx *c, const char *ref)
{
	const char *slash = strrchr(ref, '/');
	const char *name = slash ? slash + 1 : ref;
	size_t i;

	for (i = 0; i < c->a->n_backends; i++)
		if (!strcmp(c->a->backends[i].name, name))
			return &c->a->backends[i];
	return NULL;
}

/* a member that is there and not null, false or an empty array */
static int S_nonempty(json_object *o, const char *name)
{
	json_object *v;

	if (!json_object_object_get_ex(o, name, &v) || !v)
		return 0;
	if (json_object_is_type(v, json_type_array))
		return json_object_array_length(v) > 0;
	return !json_object_is_type(v, json_type_boolean) || json_object_get_boolean(v);
}

static json_object *S_num(json_object *o, const char *name, long long dflt)
{
	json_object *v;

	if (o && json_object_object_get_ex(o, name, &v) && v)
		return json_object_new_int64(json_object_get_int64(v));
	return json_object_new_int64(dflt);
}

static void S_backends(struct cx *c, json_object *bs)
{
	size_t i;

	for (i = 0; i < c->a->n_backends; i++) {
		const struct imp_item *it = &c->a->backends[i];
		json_object *p = S_props(it->info), *b, *cr, *tls, *pool, *v;
		const char *url = jget_str(p, "url"), *proto = jget_str(p, "protocol"),
			*type = jget_str(p, "type");

		if (!S_id_ok(it->name)) {
			S_err(c, it->file, 1, "backend '%s': the name is not importable", it->name);
			continue;
		}
		if (proto && strcasecmp(proto, "http")) {
			S_err(c, it->file, 1, "backend '%s': protocol '%s' is not importable (format 1"
			      " forwards HTTP only)", it->name, proto);
			continue;
		}
		b = json_object_new_object();
		S_origin(c, b, it->file);
		if (type && !strcasecmp(type, "Pool")) {
			json_object *svcs, *arr = json_object_new_array();
			size_t k;
			json_object_object_add(b, "pool", arr);
			if (!json_object_object_get_ex(p, "pool", &pool) ||
			    !json_object_object_get_ex(pool, "services", &svcs) ||
			    !json_object_is_type(svcs, json_type_array)) {
				S_err(c, it->file, 1, "backend '%s': a pool without services", it->name);
			} else {
				for (k = 0; k < json_object_array_length(svcs); k++) {
					json_object *s = json_object_array_get_idx(svcs, k), *m;
					const char *ref = jget_str(s, "id");
					const struct imp_item *mb = ref ? S_backend_item(c, ref) : NULL;
					const char *mu = mb ? jget_str(S_props(mb->info), "url") : NULL;
					if (!mu) {
						S_err(c, it->file, 1, "backend '%s': pool member '%s' is not"
						      " a backend with a url among the artifacts", it->name,
						      ref ? ref : "?");
						continue;
					}
					m = json_object_new_object();
					json_object_object_add(m, "url", json_object_new_string(mu));
					json_object_object_add(m, "weight", S_num(s, "weight", 1));
					json_object_object_add(m, "priority", S_num(s, "priority", 1));
					json_object_array_add(arr, m);
				}
			}
		} else if (url) {
			json_object_object_add(b, "url", json_object_new_string(url));
		} else {
			S_err(c, it->file, 1, "backend '%s' has no url", it->name);
		}
		if (json_object_object_get_ex(p, "credentials", &cr) && cr) {
			json_object *co = json_object_new_object(), *h;
			const char *kinds[] = { "header", "query" };
			size_t k;
			for (k = 0; k < 2; k++) {
				if (!json_object_object_get_ex(cr, kinds[k], &h) || !h)
					continue;
				if (!json_object_is_type(h, json_type_object)) {
					S_err(c, it->file, 1, "backend '%s': credentials %s is not an"
					      " object", it->name, kinds[k]);
					continue;
				}
				json_object *m = json_object_new_object();
				json_object_object_foreach(h, hk, hv) {
					if (json_object_is_type(hv, json_type_array) &&
					    json_object_array_length(hv) == 1)
						hv = json_object_array_get_idx(hv, 0);
					if (!json_object_is_type(hv, json_type_string)) {
						S_err(c, it->file, 1, "backend '%s': credentials %s '%s' with"
						      " several values is not importable", it->name,
						      kinds[k], hk);
						continue;
					}
					json_object_object_add(m, hk, json_object_get(hv));
				}
				json_object_object_add(co, kinds[k], m);
			}
			if (json_object_object_get_ex(cr, "authorization", &h) && h)
				S_err(c, it->file, 1, "backend '%s': credentials authorization is not"
				      " importable (format 1 has basic username/password, not a"
				      " scheme and parameter: write the header under credentials"
				      " header)", it->name);
			if (S_nonempty(cr, "certificate") || S_nonempty(cr, "certificateIds"))
				S_err(c, it->file, 1, "backend '%s': client certificates live in APIM's"
				      " certificate store, not in the artifacts: give tls.client_certificate"
				      " by hand", it->name);
			json_object_object_add(b, "credentials", co);
		}
		if (json_object_object_get_ex(p, "tls", &tls) && tls) {
			int chain = S_bool(tls, "validateCertificateChain", 1);
			int name = S_bool(tls, "validateCertificateName", 1);
			if (chain != name)
				S_err(c, it->file, 1, "backend '%s': validating only one of the certificate"
				      " chain and name is not importable (format 1 verifies both or"
				      " neither)", it->name);
			else if (!chain) {
				json_object *t = json_object_new_object();
				json_object_object_add(t, "verify", json_object_new_boolean(0));
				json_object_object_add(b, "tls", t);
			}
		}
		if (json_object_object_get_ex(p, "circuitBreaker", &v) && v)
			S_err(c, it->file, 1, "backend '%s': APIM's circuitBreaker rules (status code"
			      " ranges, ISO durations) are not importable: write"
			      " circuit_breaker by hand", it->name);
		json_object_object_add(bs, it->name, b);
	}
}

/* the backend for an API's serviceUrl: a named backend with the same url, or
 * api-NAME made for it */
static const char *S_api_backend(struct cx *c, json_object *bs, const struct imp_api *api,
				 const char *url, char *buf, size_t bl)
{
	json_object *nb;

	json_object_object_foreach(bs, id, b) {
		const char *u = jget_str(b, "url");
		/* only a plain backend: its credentials or TLS settings are not the
		 * serviceUrl's */
		if (u && !strcmp(u, url) && json_object_object_length(b) == 1)
			return id;
	}
	snprintf(buf, bl, "api-%s", api->name);
	if (strlen(buf) > IMP_MAX_NAME) {
		S_err(c, api->file, 1, "API '%s': the name is too long to name its backend", api->name);
		return NULL;
	}
	if (json_object_object_get_ex(bs, buf, NULL)) {
		S_err(c, api->file, 1, "API '%s': its serviceUrl needs a backend named '%s', and a"
		      " backend of the artifacts has that name with another URL", api->name, buf);
		return NULL;
	}
	nb = json_object_new_object();
	json_object_object_add(nb, "url", json_object_new_string(url));
	json_object_object_add(bs, buf, nb);
	S_origin(c, nb, api->file);
	return buf;
}

/* ---- APIs ---------------------------------------------------------------------- */

static const struct imp_item *S_version_set(struct cx *c, const char *ref)
{
	const char *slash = strrchr(ref, '/');
	const char *name = slash ? slash + 1 : ref;
	size_t i;

	for (i = 0; i < c->a->n_version_sets; i++)
		if (!strcmp(c->a->version_sets[i].name, name))
			return &c->a->version_sets[i];
	return NULL;
}

static json_object *S_api(struct cx *c, size_t idx, json_object *bs)
{
	const struct imp_api *api = &c->a->apis[idx];
	json_object *p = S_props(api->info), *o, *ops, *pol, *v;
	const char *path = jget_str(p, "path"), *url = jget_str(p, "serviceUrl"),
		*type = jget_str(p, "type"), *vs = jget_str(p, "apiVersionSetId"),
		*ver = jget_str(p, "apiVersion");
	char bbuf[IMP_MAX_NAME + 8], fullpath[1024];
	const char *backend;
	size_t i, k;

	c->cur_api = (long)idx;
	if (!S_id_ok(api->name))
		S_err(c, api->file, 1, "API '%s': the name is not importable (1-80 of A-Z a-z 0-9"
		      " . _ -)", api->name);
	if (type && strcasecmp(type, "http"))
		S_err(c, api->file, 1, "API '%s': type '%s' is not importable (format 1 forwards"
		      " HTTP APIs)", api->name, type);
	if (!path)
		path = "";
	snprintf(fullpath, sizeof(fullpath), "%s", path);
	if (vs) {
		const struct imp_item *set = S_version_set(c, vs);
		const char *scheme = set ? jget_str(S_props(set->info), "versioningScheme") : NULL;
		if (!set || !scheme)
			S_err(c, api->file, 1, "API '%s': version set '%s' is not among the artifacts",
			      api->name, vs);
		else if (strcasecmp(scheme, "Segment"))
			S_err(c, api->file, 1, "API '%s': versioning by %s is not importable (format 1"
			      " routes by path only; Segment versioning is)", api->name, scheme);
		else if (ver && *ver)
			snprintf(fullpath, sizeof(fullpath), "%s%s%s", path, *path ? "/" : "", ver);
	}
	o = json_object_new_object();
	S_origin(c, o, api->file);
	json_object_object_add(o, "id", json_object_new_string(api->name));
	json_object_object_add(o, "path", json_object_new_string(fullpath));
	if (!url) {
		S_err(c, api->file, 1, "API '%s' has no serviceUrl: format 1 APIs have a backend"
		      " (give one in --overrides under apis: properties: serviceUrl)", api->name);
	} else {
		backend = S_api_backend(c, bs, api, url, bbuf, sizeof(bbuf));
		if (backend)
			json_object_object_add(o, "backend", json_object_new_string(backend));
	}
	json_object_object_add(o, "subscription_required",
			       json_object_new_boolean(S_bool(p, "subscriptionRequired", 1)));
	if (json_object_object_get_ex(p, "subscriptionKeyParameterNames", &v) && v) {
		json_object *sk = json_object_new_object();
		const char *h = jget_str(v, "header"), *q = jget_str(v, "query");
		if (h)
			json_object_object_add(sk, "header", json_object_new_string(h));
		if (q)
			json_object_object_add(sk, "query", json_object_new_string(q));
		json_object_object_add(o, "subscription_key", sk);
	}
	ops = json_object_new_array();
	if (api->operations) {
		/* APIM's own list (the agent): method and template as APIM has them */
		for (i = 0; i < json_object_array_length(api->operations); i++)
			json_object_array_add(ops, json_object_get(
				json_object_array_get_idx(api->operations, i)));
		if (json_object_array_length(ops) == 0)
			S_err(c, api->file, 1, "API '%s' has no operations (APIM answers 404 to"
			      " every call; a format 1 API without operations forwards every"
			      " call)", api->name);
	} else if (api->spec_refused)
		S_err(c, api->spec_file, 1, "API '%s': the specification is not OpenAPI (WSDL,"
		      " GraphQL...): not importable", api->name);
	else if (!api->spec)
		S_err(c, api->file, 1, "API '%s' has no specification: its operations (method and"
		      " URL template) cannot be known", api->name);
	else {
		size_t n0 = c->errs->n;
		if (imp_openapi_operations(api->spec, api->spec_file, ops, c->errs) != 0) {
			c->api_bad[idx] = 1;
			S_reasons_since(c, (long)idx, n0);
		}
	}
	for (i = 0; i < json_object_array_length(ops); i++)
		/* a template format 1 refuses is the specification's doing */
		S_origin_line(c, json_object_array_get_idx(ops, i),
			      api->operations ? api->file : api->spec_file,
			      api->operations ? 1 : S_spec_line(api->spec_text,
					  jget_str(json_object_array_get_idx(ops, i), "url_template")));
	if (!api->operations && !api->spec_refused && api->spec &&
	    json_object_array_length(ops) == 0 &&
	    !c->api_bad[idx])
		S_err(c, api->spec_file, 1, "API '%s': the specification has no operations (APIM"
		      " answers 404 to every call; a format 1 API without operations forwards"
		      " every call)", api->name);
	/* operation policies by the extractor's folder names */
	for (k = 0; k < api->n_ops; k++) {
		json_object *op = NULL;
		for (i = 0; i < json_object_array_length(ops); i++) {
			json_object *x = json_object_array_get_idx(ops, i);
			if (!strcmp(jget_str(x, "id"), api->ops[k].name))
				op = x;
		}
		if (!op) {
			S_err(c, api->ops[k].policy.file ? api->ops[k].policy.file : api->file, 1,
			      "API '%s': operation '%s' has a policy but is not in the"
			      " specification", api->name, api->ops[k].name);
			continue;
		}
		pol = S_policy(c, &api->ops[k].policy);
		if (pol)
			json_object_object_add(op, "policies", pol);
	}
	/* empty only when already refused: not worth a second message */
	if (json_object_array_length(ops) > 0)
		json_object_object_add(o, "operations", ops);
	else
		json_object_put(ops);
	pol = S_policy(c, &api->policy);
	if (pol)
		json_object_object_add(o, "policies", pol);
	c->cur_api = -1;
	return o;
}

/* ---- products, subscriptions ---------------------------------------------------- */

static long S_api_index(struct cx *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->a->n_apis; i++)
		if (!strcmp(c->a->apis[i].name, name))
			return (long)i;
	return -1;
}

static int S_api_kept(struct cx *c, long i)
{
	return i >= 0 && !c->api_skip[i] && !c->api_bad[i];
}

static void S_left_out(struct cx *c, const char *kind, const char *name, const char *why)
{
	json_object *l, *e;

	if (!json_object_object_get_ex(c->report, "left_out", &l)) {
		l = json_object_new_array();
		json_object_object_add(c->report, "left_out", l);
	}
	e = json_object_new_object();
	json_object_object_add(e, "kind", json_object_new_string(kind));
	json_object_object_add(e, "name", json_object_new_string(name));
	json_object_object_add(e, "why", json_object_new_string(why));
	json_object_array_add(l, e);
}

/* A product that requires no subscription opens its APIs to anonymous calls
 * under its policies: format 1 has no such product, so each of its APIs
 * cannot be carried over exactly (and is left out whole with
 * --exclude-unconvertible). */
static void S_open_products(struct cx *c, size_t ai)
{
	size_t i, k;

	for (i = 0; i < c->a->n_products; i++) {
		const struct imp_item *it = &c->a->products[i];
		if (S_bool(S_props(it->info), "subscriptionRequired", 1))
			continue;
		for (k = 0; k < it->n_apis; k++) {
			if (strcmp(it->apis[k], c->a->apis[ai].name))
				continue;
			c->cur_api = (long)ai;
			S_err(c, it->file, 1, "product '%s' requires no subscription, which opens API"
			      " '%s' to calls without a key under the product's policies: format 1"
			      " products are reached through subscriptions only", it->name,
			      it->apis[k]);
			c->cur_api = -1;
		}
	}
}

static void S_products(struct cx *c, json_object *arr)
{
	size_t i, k;

	for (i = 0; i < c->a->n_products; i++) {
		const struct imp_item *it = &c->a->products[i];
		json_object *p = S_props(it->info), *o, *apis, *pol;

		apis = json_object_new_array();
		for (k = 0; k < it->n_apis; k++) {
			long ai = S_api_index(c, it->apis[k]);
			if (ai < 0)
				S_err(c, it->file, 1, "product '%s' names API '%s', which is not among"
				      " the artifacts", it->name, it->apis[k]);
			else if (S_api_kept(c, ai))
				json_object_array_add(apis, json_object_new_string(it->apis[k]));
		}
		if (json_object_array_length(apis) == 0) {
			json_object_put(apis);
			S_left_out(c, "product", it->name, "it reaches no imported API");
			continue;
		}
		if (!S_bool(p, "subscriptionRequired", 1)) {
			/* its APIs were refused by S_open_products: none is left */
			json_object_put(apis);
			continue;
		}
		o = json_object_new_object();
		S_origin(c, o, it->file);
		json_object_object_add(o, "id", json_object_new_string(it->name));
		json_object_object_add(o, "apis", apis);
		pol = S_policy(c, &it->policy);
		if (pol)
			json_object_object_add(o, "policies", pol);
		json_object_array_add(arr, o);
	}
}

static int S_product_kept(json_object *products, const char *id)
{
	size_t i;

	for (i = 0; i < json_object_array_length(products); i++)
		if (!strcmp(jget_str(json_object_array_get_idx(products, i), "id"), id))
			return 1;
	return 0;
}

static void S_sha256_hex(const char *s, char out[65])
{
	unsigned char md[32];
	unsigned int n = 0, i;

	EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL);
	for (i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* "/apis", "/", ".../apis", or the service's own resource id: every API */
static int S_scope_all(const char *scope)
{
	size_t n = strlen(scope);
	const char *svc = strstr(scope, "/service/");

	if (!strcmp(scope, "/") || !strcmp(scope, "/apis") ||
	    (n >= 5 && !strcmp(scope + n - 5, "/apis")))
		return 1;
	return svc && !strchr(svc + 9, '/') && svc[9] != '\0';
}

static void S_subscriptions(struct cx *c, json_object *arr, json_object *products)
{
	json_object *nokeys = json_object_new_array();
	size_t i, k;

	json_object_object_add(c->report, "subscriptions_without_keys", nokeys);
	for (i = 0; i < c->a->n_subscriptions; i++) {
		const struct imp_item *it = &c->a->subscriptions[i];
		json_object *p = S_props(it->info), *o, *keys = NULL, *kh;
		const char *scope = jget_str(p, "scope"), *state = jget_str(p, "state"),
			*exp = jget_str(p, "expirationDate");
		const char *m, *mapi;
		char sc[200];

		if (!scope)
			scope = "";
		m = strstr(scope, "/products/");
		mapi = strstr(scope, "/apis/");
		if (m) {
			if (!S_product_kept(products, m + 10)) {
				S_left_out(c, "subscription", it->name, "its product is not imported");
				continue;
			}
			snprintf(sc, sizeof(sc), "product:%s", m + 10);
		} else if (mapi) {
			if (!S_api_kept(c, S_api_index(c, mapi + 6))) {
				S_left_out(c, "subscription", it->name, "its API is not imported");
				continue;
			}
			snprintf(sc, sizeof(sc), "api:%s", mapi + 6);
		} else if (S_scope_all(scope)) {
			snprintf(sc, sizeof(sc), "all");
		} else {
			S_err(c, it->file, 1, "subscription '%s': the scope '%s' is not importable (a"
			      " product, an API, all APIs or the service)", it->name, scope);
			continue;
		}
		if (strchr(sc, '/')) {
			S_err(c, it->file, 1, "subscription '%s': the scope '%s' is not importable",
			      it->name, scope);
			continue;
		}
		if (state && strcmp(state, "active") && strcmp(state, "suspended")) {
			S_left_out(c, "subscription", it->name, "its state is neither active nor suspended");
			continue;
		}
		if (c->o->keys)
			json_object_object_get_ex(c->o->keys, it->name, &keys);
		if (!keys || !json_object_is_type(keys, json_type_array) ||
		    json_object_array_length(keys) == 0) {
			json_object_array_add(nokeys, json_object_new_string(it->name));
			continue;
		}
		o = json_object_new_object();
		S_origin(c, o, it->file);
		json_object_object_add(o, "id", json_object_new_string(it->name));
		json_object_object_add(o, "scope", json_object_new_string(sc));
		kh = json_object_new_array();
		for (k = 0; k < json_object_array_length(keys); k++) {
			json_object *kv = json_object_array_get_idx(keys, k);
			char hex[65];
			if (!json_object_is_type(kv, json_type_string)) {
				S_err(c, "--keys", 1, "subscription '%s': keys must be strings", it->name);
				continue;
			}
			S_sha256_hex(json_object_get_string(kv), hex);
			json_object_array_add(kh, json_object_new_string(hex));
		}
		json_object_object_add(o, "keys_sha256", kh);
		json_object_object_add(o, "state", json_object_new_string(state ? state : "active"));
		if (exp && *exp) {
			/* APIM writes 2027-01-01T00:00:00Z or with fractions */
			char e[32];
			snprintf(e, sizeof(e), "%.19sZ", exp);
			json_object_object_add(o, "expires", json_object_new_string(e));
		}
		json_object_array_add(arr, o);
	}
}

/* ---- loader errors back to files ----------------------------------------------- */

/* "apis[0].policies.inbound[1][\"set-header\"].x: msg" → the deepest recorded
 * object on that path; its FILE:LINE, or NULL. *api set to the API's index. */
static const struct px_origin *S_where(struct cx *c, json_object *doc, const char *msg,
				       long *api)
{
	const char *p = msg;
	const struct px_origin *found = NULL, *w;
	json_object *cur = doc, *apis = NULL;
	char key[256];
	size_t n;

	*api = -1;
	json_object_object_get_ex(doc, "apis", &apis);
	while (*p && *p != ':' && *p != ' ' && cur) {
		if (*p == '.')
			p++;
		if (*p == '[' && p[1] == '"') {
			p += 2;
			for (n = 0; *p && !(*p == '"' && p[1] == ']') && n + 1 < sizeof(key); p++)
				key[n++] = *p == '\\' && p[1] ? *++p : *p;
			key[n] = '\0';
			if (*p)
				p += 2;
			if (!json_object_object_get_ex(cur, key, &cur))
				break;
		} else if (*p == '[') {
			char *e;
			unsigned long i = strtoul(p + 1, &e, 10);
			p = *e == ']' ? e + 1 : e;
			if (!json_object_is_type(cur, json_type_array))
				break;
			if (cur == apis)
				*api = (long)i;
			cur = json_object_array_get_idx(cur, i);
		} else {
			for (n = 0; *p && *p != '.' && *p != '[' && *p != ':' && *p != ' ' &&
			     n + 1 < sizeof(key); p++)
				key[n++] = *p;
			key[n] = '\0';
			if (!json_object_object_get_ex(cur, key, &cur))
				break;
		}
		w = cur ? px_origins_find(&c->orig, cur) : NULL;
		if (w)
			found = w;
	}
	return found;
}

static int S_already(const struct cfg_errors *errs, const char *where)
{
	size_t i, n = strlen(where);

	for (i = 0; i < errs->n; i++)
		if (!strncmp(errs->msg[i], where, n) && errs->msg[i][n] == ':')
			return 1;
	return 0;
}

/* load doc; errors mapped to files into c->errs and to APIs; 0 when it loads */
static int S_validate(struct cx *c, json_object *doc, int *api_errors)
{
	struct cfg_errors le = CFG_ERRORS_INIT;
	const char *s = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN);
	struct gateway *gw = gw_load_buffer(s, strlen(s), &le);
	size_t i;

	*api_errors = 0;
	if (gw) {
		gw_free(gw);
		return 0;
	}
	for (i = 0; i < le.n; i++) {
		long api;
		const struct px_origin *o = S_where(c, doc, le.msg[i], &api);
		const char *w = o ? o->where : NULL;
		char mapped[700];
		if (api >= 0) {
			const char *id = jget_str(json_object_array_get_idx(
				json_object_object_get(doc, "apis"), (size_t)api), "id");
			long ai = id ? S_api_index(c, id) : -1;
			if (ai >= 0) {
				c->api_bad[ai] = 1;
				(*api_errors)++;
			}
		} else {
			c->failed = 1;
		}
		snprintf(mapped, sizeof(mapped), "%s", w ? w : "(document)");
		/* an element already refused at that line (an attribute that did not
		 * convert is missing now): its first reason is the one to read */
		if (o && (o->refused || S_already(c->errs, w)))
			continue;
		{
			size_t n0 = c->errs->n;
			cfg_error(c->errs, mapped, "format 1 refuses it: %s", le.msg[i]);
			if (api >= 0) {
				const char *id = jget_str(json_object_array_get_idx(
					json_object_object_get(doc, "apis"), (size_t)api), "id");
				S_reasons_since(c, id ? S_api_index(c, id) : -1, n0);
			}
		}
	}
	if (le.dropped)
		c->failed = 1;
	cfg_errors_release(&le);
	return -1;
}

/* ---- send-request to a URL → to the backend that URL is under ------------------ */

/* s with every {{name}} of a non-secret named value replaced; a new string */
static char *S_expand(json_object *nv, const char *s)
{
	char out[4096];
	size_t n = 0;

	while (*s && n + 1 < sizeof(out)) {
		const char *e;
		json_object *v;
		char name[128];
		e = s[0] == '{' && s[1] == '{' ? strstr(s + 2, "}}") : NULL;
		if (e && (size_t)(e - s - 2) < sizeof(name)) {
			snprintf(name, sizeof(name), "%.*s", (int)(e - s - 2), s + 2);
			if (json_object_object_get_ex(nv, name, &v) && !S_bool(v, "secret", 0) &&
			    jget_str(v, "value")) {
				const char *val = jget_str(v, "value");
				size_t l = strlen(val);
				if (n + l + 1 >= sizeof(out))
					break;
				memcpy(out + n, val, l);
				n += l;
				s = e + 2;
				continue;
			}
		}
		out[n++] = *s++;
	}
	out[n] = '\0';
	return strdup(out);
}

/* APIM's send-request names a URL; format 1's a backend and a path below it
 * (never an open proxy). An absolute set-url under exactly one configured
 * backend's URL (the longest, at a '/' boundary) becomes backend-id and the
 * rest; anything else is left for the loader to refuse at the element's line. */
static void S_send_request(json_object *doc, json_object *sr)
{
	json_object *bs, *nv = NULL, *u;
	const char *url, *best = NULL;
	char *x, *rest = NULL;
	size_t best_len = 0;

	if (!json_object_object_get_ex(sr, "set-url", &u) || !json_object_is_type(u, json_type_string) ||
	    json_object_object_get_ex(sr, "backend-id", NULL) ||
	    !json_object_object_get_ex(doc, "backends", &bs))
		return;
	json_object_object_get_ex(doc, "named_values", &nv);
	x = S_expand(nv, json_object_get_string(u));
	if (!x || (strncmp(x, "http://", 7) && strncmp(x, "https://", 8))) {
		free(x);
		return;
	}
	json_object_object_foreach(bs, id, b) {
		char *bu;
		size_t l;
		url = jget_str(b, "url");
		if (!url)
			continue;
		bu = S_expand(nv, url);
		if (!bu)
			continue;
		l = strlen(bu);
		while (l > 0 && bu[l - 1] == '/')
			l--;
		if (l > best_len && !strncasecmp(x, bu, l) && (x[l] == '\0' || x[l] == '/' || x[l] == '?')) {
			best = id;
			best_len = l;
		}
		free(bu);
	}
	if (best) {
		rest = strdup(x + best_len);
		json_object_object_add(sr, "backend-id", json_object_new_string(best));
		if (rest && *rest)
			json_object_object_add(sr, "set-url", json_object_new_string(
				rest[0] == '?' ? rest : rest));
		else
			json_object_object_del(sr, "set-url");
	}
	free(rest);
	free(x);
}

/* APIM's set-backend-service base-url may name any URL; format 1's must be a
 * configured backend's (its allow-list). A literal base-url (named values
 * allowed) that no backend has gets a plain backend of its own, "url-N":
 * the same URL, nothing added. An expression is left for the loader. */
static void S_base_url(json_object *doc, json_object *sbs)
{
	json_object *bs, *nv = NULL, *u, *nb;
	char *x, id[32];
	int found = 0;
	size_t n;

	if (!json_object_object_get_ex(sbs, "base-url", &u) ||
	    !json_object_is_type(u, json_type_string) ||
	    strstr(json_object_get_string(u), "$(") || strstr(json_object_get_string(u), "${") ||
	    !json_object_object_get_ex(doc, "backends", &bs))
		return;
	json_object_object_get_ex(doc, "named_values", &nv);
	x = S_expand(nv, json_object_get_string(u));
	if (!x)
		return;
	json_object_object_foreach(bs, bid, b) {
		char *bu = jget_str(b, "url") ? S_expand(nv, jget_str(b, "url")) : NULL;
		(void)bid;
		if (bu && !strcmp(bu, x))
			found = 1;
		free(bu);
	}
	free(x);
	if (found)
		return;
	for (n = 1; n < 100000; n++) {
		snprintf(id, sizeof(id), "url-%zu", n);
		if (!json_object_object_get_ex(bs, id, NULL))
			break;
	}
	nb = json_object_new_object();
	json_object_object_add(nb, "url", json_object_get(u));
	json_object_object_add(bs, id, nb);
}

static void S_walk_send_requests(json_object *doc, json_object *v, int depth)
{
	size_t i;

	if (depth > 64 || !v)
		return;
	if (json_object_is_type(v, json_type_array)) {
		for (i = 0; i < json_object_array_length(v); i++)
			S_walk_send_requests(doc, json_object_array_get_idx(v, i), depth + 1);
	} else if (json_object_is_type(v, json_type_object)) {
		json_object_object_foreach(v, k, m) {
			if (!strcmp(k, "send-request") && json_object_is_type(m, json_type_object))
				S_send_request(doc, m);
			else if (!strcmp(k, "set-backend-service") &&
				 json_object_is_type(m, json_type_object))
				S_base_url(doc, m);
			else if (strcmp(k, "backends") && strcmp(k, "named_values"))
				S_walk_send_requests(doc, m, depth + 1);
		}
	}
}

/* ---- the whole ----------------------------------------------------------------- */

static void S_gateway_filter(struct cx *c)
{
	const struct imp_item *g = NULL;
	size_t i, k;

	if (!c->o->gateway)
		return;
	for (i = 0; i < c->a->n_gateways; i++)
		if (!strcmp(c->a->gateways[i].name, c->o->gateway))
			g = &c->a->gateways[i];
	if (!g) {
		S_err(c, "gateways", 1, "no gateway '%s' among the artifacts", c->o->gateway);
		return;
	}
	for (i = 0; i < c->a->n_apis; i++) {
		int served = 0;
		for (k = 0; k < g->n_apis; k++)
			served |= !strcmp(g->apis[k], c->a->apis[i].name);
		c->api_skip[i] = !served;
	}
}

static json_object *S_build(struct cx *c)
{
	json_object *doc = json_object_new_object(), *bs, *apis, *products, *subs, *pol;
	size_t i;

	c->doc = doc;
	json_object_object_add(doc, "format", json_object_new_int(1));
	json_object_object_add(doc, "generation",
			       json_object_new_int64(c->o->generation > 0 ? c->o->generation : 1));
	S_named_values(c);
	bs = json_object_new_object();
	json_object_object_add(doc, "backends", bs);
	S_backends(c, bs);
	apis = json_object_new_array();
	for (i = 0; i < c->a->n_apis; i++) {
		json_object *o;
		if (c->api_skip[i])
			continue;
		o = S_api(c, i, bs);
		S_open_products(c, i);
		if (c->api_bad[i] && c->o->exclude_unconvertible) {
			char id[IMP_MAX_NAME + 8];
			/* and the backend made for its serviceUrl */
			snprintf(id, sizeof(id), "api-%s", c->a->apis[i].name);
			json_object_object_del(bs, id);
			json_object_put(o);
			continue;
		}
		json_object_array_add(apis, o);
	}
	json_object_object_add(doc, "apis", apis);
	products = json_object_new_array();
	S_products(c, products);
	json_object_object_add(doc, "products", products);
	subs = json_object_new_array();
	S_subscriptions(c, subs, products);
	json_object_object_add(doc, "subscriptions", subs);
	pol = S_policy(c, &c->a->policy);
	if (pol)
		json_object_object_add(doc, "policies", pol);
	S_walk_send_requests(doc, doc, 0);
	return doc;
}

static void S_report_apis(struct cx *c)
{
	json_object *arr = json_object_new_array();
	size_t i;

	for (i = 0; i < c->a->n_apis; i++) {
		json_object *e = json_object_new_object();
		const char *st = c->api_skip[i] ? "not-on-gateway" :
			c->api_bad[i] ? (c->o->exclude_unconvertible ? "left-out" : "refused") :
			"imported";
		json_object_object_add(e, "name", json_object_new_string(c->a->apis[i].name));
		json_object_object_add(e, "status", json_object_new_string(st));
		if (c->api_bad[i] && !c->api_skip[i] && c->reasons)
			json_object_object_add(e, "why", json_object_get(
				json_object_array_get_idx(c->reasons, i)));
		json_object_array_add(arr, e);
	}
	json_object_object_add(c->report, "apis", arr);
}

int imp_convert(const struct imp_artifacts *a, const struct imp_options *o, json_object **doc,
		struct imp_report *r, struct cfg_errors *errs)
{
	struct cx c;
	json_object *d = NULL;
	int round, api_errors, rc = -1;
	struct cfg_errors scratch = CFG_ERRORS_INIT;

	memset(&c, 0, sizeof(c));
	c.a = a;
	c.o = o;
	c.errs = errs;
	c.real_errs = errs;
	c.cur_api = -1;
	*doc = NULL;
	c.api_bad = calloc(a->n_apis + 1, 1);
	c.api_skip = calloc(a->n_apis + 1, 1);
	if (!c.api_bad || !c.api_skip) {
		cfg_error(errs, NULL, "out of memory");
		goto out;
	}
	c.reasons = json_object_new_array();
	for (size_t i = 0; c.reasons && i < a->n_apis; i++)
		json_object_array_add(c.reasons, json_object_new_array());
	S_gateway_filter(&c);
	/* with --exclude-unconvertible, an API the loader refuses is left out and
	 * the rest built again: at most once per API */
	for (round = 0; round <= (int)a->n_apis; round++) {
		/* a later round meets the same refusals again: keep them once */
		cfg_errors_release(&scratch);
		c.errs = round ? &scratch : errs;
		json_object_put(d);
		json_object_put(c.report);
		px_origins_release(&c.orig);
		c.report = json_object_new_object();
		d = S_build(&c);
		c.errs = errs;
		if (S_validate(&c, d, &api_errors) == 0 && !c.failed) {
			size_t i;
			int bad = 0;
			for (i = 0; i < a->n_apis; i++)
				bad |= c.api_bad[i] && !c.api_skip[i];
			if (!bad || o->exclude_unconvertible)
				rc = 0;
			break;
		}
		if (!o->exclude_unconvertible || !api_errors || c.failed)
			break;
	}
	c.errs = errs;
	S_report_apis(&c);
	{
		json_object *n = json_object_new_array();
		size_t i;
		for (i = 0; i < c.notes.n; i++)
			json_object_array_add(n, json_object_new_string(c.notes.msg[i]));
		json_object_object_add(c.report, "notes", n);
		cfg_errors_release(&c.notes);
	}
out:
	cfg_errors_release(&scratch);
	if (rc == 0) {
		*doc = d;
		d = NULL;
	}
	json_object_put(d);
	r->j = c.report;
	px_origins_release(&c.orig);
	json_object_put(c.reasons);
	free(c.api_bad);
	free(c.api_skip);
	return rc;
}

void imp_report_print(const struct imp_report *r, const struct cfg_errors *errs, FILE *f)
{
	json_object *arr;
	size_t i;

	for (i = 0; errs && i < errs->n; i++)
		fprintf(f, "%s\n", errs->msg[i]);
	if (errs && errs->dropped)
		fprintf(f, "(%zu more errors)\n", errs->dropped);
	if (!r->j)
		return;
	if (json_object_object_get_ex(r->j, "notes", &arr))
		for (i = 0; i < json_object_array_length(arr); i++)
			fprintf(f, "note: %s\n", json_object_get_string(json_object_array_get_idx(arr, i)));
	if (json_object_object_get_ex(r->j, "apis", &arr))
		for (i = 0; i < json_object_array_length(arr); i++) {
			json_object *e = json_object_array_get_idx(arr, i), *why;
			fprintf(f, "api %s: %s", jget_str(e, "name"), jget_str(e, "status"));
			if (json_object_object_get_ex(e, "why", &why) &&
			    json_object_array_length(why) > 0)
				fprintf(f, ", first reason: %s%s", json_object_get_string(
					json_object_array_get_idx(why, 0)),
					json_object_array_length(why) > 1 ? " (and more above)" : "");
			fputc('\n', f);
		}
	if (json_object_object_get_ex(r->j, "left_out", &arr))
		for (i = 0; i < json_object_array_length(arr); i++) {
			json_object *e = json_object_array_get_idx(arr, i);
			fprintf(f, "%s %s: left out, %s\n", jget_str(e, "kind"), jget_str(e, "name"),
				jget_str(e, "why"));
		}
	if (json_object_object_get_ex(r->j, "secrets", &arr))
		for (i = 0; i < json_object_array_length(arr); i++) {
			json_object *e = json_object_array_get_idx(arr, i);
			fprintf(f, "secret named value %s (%s): %s\n", jget_str(e, "name"),
				jget_str(e, "file"), S_bool(e, "supplied", 0) ?
				"value supplied by the overrides" : "must be supplied (--overrides)");
		}
	if (json_object_object_get_ex(r->j, "subscriptions_without_keys", &arr))
		for (i = 0; i < json_object_array_length(arr); i++)
			fprintf(f, "subscription %s: left out, no keys (supply them with --keys)\n",
				json_object_get_string(json_object_array_get_idx(arr, i)));
}

void imp_report_release(struct imp_report *r)
{
	json_object_put(r->j);
	r->j = NULL;
}
