#include "manage/app.h"

#include <json-c/json.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "manage/crypto.h"
#include "manage/model.h"
#include "manage/ui.h"
#include "policy/gateway.h"

#define STATUS_WINDOW_S (3 * 60)	/* admin-api.md: online within 3 x 60 s */
#define DEFAULT_TOKEN_DAYS 365
#define MAX_SERIES 100000		/* per metrics document */

static const int hist_bounds[STORE_HIST_BUCKETS - 1] = {
	5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
};

/* ---- answers ---- */

const char *app_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 412: return "Precondition Failed";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Unknown";
	}
}

void mresp_release(struct mresp *resp)
{
	sbuf_release(&resp->head);
	sbuf_release(&resp->body);
}

static void request_id(char *out, size_t n)
{
	char t[CRYPTO_TOKEN_LEN];

	if (crypto_token(t) != 0)
		snprintf(t, sizeof(t), "%ld", (long)getpid());
	snprintf(out, n, "%.16s", t);
}

static void set_json(struct mresp *resp, int status, json_object *o)
{
	resp->status = status;
	sbuf_release(&resp->body);
	sbuf_adds(&resp->body, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							      JSON_C_TO_STRING_NOSLASHESCAPE));
	sbuf_add(&resp->body, "\n", 1);
}

/* The gateway's JSON error shape, plus "errors" when given (taken). */
static void error_with(struct mresp *resp, int status, const char *message, json_object *errors)
{
	json_object *o = json_object_new_object();
	char rid[32];

	request_id(rid, sizeof(rid));
	json_object_object_add(o, "statusCode", json_object_new_int(status));
	json_object_object_add(o, "message", json_object_new_string(message));
	json_object_object_add(o, "requestId", json_object_new_string(rid));
	if (errors)
		json_object_object_add(o, "errors", errors);
	sbuf_release(&resp->head);
	set_json(resp, status, o);
	json_object_put(o);
}

void app_error(struct mresp *resp, int status, const char *message)
{
	error_with(resp, status, message, NULL);
}

static void error_at(struct mresp *resp, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void error_at(struct mresp *resp, const char *path, const char *fmt, ...)
{
	json_object *arr = json_object_new_array(), *e = json_object_new_object();
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_object_object_add(e, "path", json_object_new_string(path));
	json_object_object_add(e, "message", json_object_new_string(msg));
	json_object_array_add(arr, e);
	error_with(resp, 400, "the request is not valid", arr);
}

static void etag_header(struct mresp *resp, int64_t changed)
{
	sbuf_addf(&resp->head, "ETag: \"%lld\"\r\n", (long long)changed);
}

/* ---- request pieces ---- */

/* Parses a JSON body: a new object, or NULL with the answer set. */
static json_object *parse_body(const struct mreq *req, struct mresp *resp, size_t cap,
			       json_type want)
{
	struct json_tokener *tok;
	json_object *o;
	enum json_tokener_error e;

	if (req->body_too_big || req->body_len > cap) {
		app_error(resp, 413, "the request body is too large");
		return NULL;
	}
	if (req->body_len == 0) {
		app_error(resp, 400, "a JSON body is required");
		return NULL;
	}
	tok = json_tokener_new_ex(GW_MAX_JSON_DEPTH);
	if (!tok) {
		app_error(resp, 500, "out of memory");
		return NULL;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, req->body, (int)req->body_len);
	e = json_tokener_get_error(tok);
	if (e == json_tokener_success && json_tokener_get_parse_end(tok) != req->body_len) {
		size_t i = json_tokener_get_parse_end(tok);

		while (i < req->body_len && strchr(" \t\r\n", req->body[i]))
			i++;
		if (i != req->body_len) {
			json_object_put(o);
			o = NULL;
			e = json_tokener_error_parse_unexpected;
		}
	}
	json_tokener_free(tok);
	if (e != json_tokener_success || !o) {
		char m[160];

		json_object_put(o);
		snprintf(m, sizeof(m), "the body is not valid JSON: %s",
			 e == json_tokener_continue ? "unexpected end" : json_tokener_error_desc(e));
		app_error(resp, 400, m);
		return NULL;
	}
	if (!json_object_is_type(o, want)) {
		json_object_put(o);
		error_at(resp, "$", "must be a JSON %s", want == json_type_object ? "object" :
			 "array");
		return NULL;
	}
	return o;
}

/* The value of name in a query string, decoded into out: 1 found, 0 not. */
static int query_param(const char *q, const char *name, char *out, size_t n)
{
	size_t nl = strlen(name);

	while (q && *q) {
		const char *amp = strchr(q, '&'), *end = amp ? amp : q + strlen(q);

		if ((size_t)(end - q) > nl && !strncmp(q, name, nl) && q[nl] == '=') {
			const char *v = q + nl + 1;
			size_t o = 0;

			while (v < end && o + 1 < n) {
				if (*v == '%' && end - v >= 3) {
					char hx[3] = { v[1], v[2], 0 };

					out[o++] = (char)strtol(hx, NULL, 16);
					v += 3;
				} else {
					out[o++] = *v == '+' ? ' ' : *v;
					v++;
				}
			}
			out[o] = '\0';
			return 1;
		}
		q = amp ? amp + 1 : NULL;
	}
	return 0;
}

static const char *json_str(json_object *o, const char *name)
{
	json_object *v;

	if (!json_object_object_get_ex(o, name, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static const char *to_text(json_object *o)
{
	return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
					      JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* ---- authentication ---- */

static int token_of(const char *header, const char *scheme, const char **token)
{
	size_t sl = strlen(scheme);

	if (!header || strncasecmp(header, scheme, sl) != 0 || header[sl] != ' ')
		return -1;
	*token = header + sl + 1;
	while (**token == ' ')
		(*token)++;
	return **token ? 0 : -1;
}

int app_admin_token_ok(struct mapp *app, const char *token)
{
	char hash[CRYPTO_HEX_LEN], *owner = NULL;
	int64_t expires = 0;
	int r;

	if (!token || strlen(token) > 256)
		return -1;
	/* the lookup is by hash: nothing about the token itself leaks */
	crypto_sha256_hex(token, strlen(token), hash);
	r = store_token_find(app->st, "admin", hash, &owner, &expires);
	free(owner);
	if (r != 0 || (expires && expires < util_now()))
		return -1;
	return 0;
}

static int admin_auth(struct mapp *app, const struct mreq *req, struct mresp *resp)
{
	const char *token;

	if (token_of(req->authorization, "Bearer", &token) != 0 ||
	    app_admin_token_ok(app, token) != 0) {
		app_error(resp, 401, "an admin token is required: 'Authorization: Bearer TOKEN'");
		sbuf_adds(&resp->head, "WWW-Authenticate: Bearer\r\n");
		return -1;
	}
	return 0;
}

/* The gateway face: 0 when the token belongs to gateway g. */
static int gateway_auth(struct mapp *app, const struct mreq *req, struct mresp *resp,
			const char *g)
{
	char hash[CRYPTO_HEX_LEN], *owner = NULL;
	const char *token;
	int64_t expires = 0;
	int r, rc = -1;

	if (token_of(req->authorization, "GatewayKey", &token) != 0 || strlen(token) > 256) {
		app_error(resp, 401, "a gateway token is required: 'Authorization: GatewayKey TOKEN'");
		return -1;
	}
	crypto_sha256_hex(token, strlen(token), hash);
	r = store_token_find(app->st, "gateway", hash, &owner, &expires);
	if (r < 0) {
		app_error(resp, 500, "the database cannot be read");
	} else if (r == 1 || (expires && expires < util_now())) {
		app_error(resp, 401, "the gateway token is wrong or expired");
	} else if (!crypto_equal(owner, g)) {
		app_error(resp, 403, "this token belongs to another gateway");
	} else {
		rc = 0;
	}
	free(owner);
	return rc;
}

/* ---- generic objects ---- */

struct kind_info {
	const char *collection, *kind, *id_member;	/* id_member: listed with it */
	int has_id;					/* the object has an "id" member */
};

static const struct kind_info kinds[] = {
	{ "backends", "backend", "id", 0 },
	{ "apis", "api", "id", 1 },
	{ "products", "product", "id", 1 },
	{ "named-values", "named_value", "name", 0 },
	{ "subscriptions", "subscription", "id", 1 },
	{ "gateways", "gateway", "id", 0 },
};

static const struct kind_info *kind_by_collection(const char *c, size_t n)
{
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strlen(kinds[i].collection) == n && !strncmp(kinds[i].collection, c, n))
			return &kinds[i];
	return NULL;
}

/* What GET shows of a stored object: secrets and keys removed. New object. */
static json_object *shown(struct mapp *app, const struct kind_info *k, const char *id,
			  const char *json, int64_t generation)
{
	json_object *o = json_tokener_parse(json);

	if (!o)
		return NULL;
	if (!strcmp(k->kind, "named_value")) {
		json_object *s;

		if (json_object_object_get_ex(o, "secret", &s) && json_object_get_boolean(s))
			json_object_object_del(o, "value");
	} else if (!strcmp(k->kind, "subscription")) {
		json_object_object_del(o, "keys_sha256");
	} else if (!strcmp(k->kind, "gateway")) {
		json_object *state = app_gateway_state(app, id, generation);

		json_object_object_foreach(state, key, val)
			json_object_object_add(o, key, json_object_get(val));
		json_object_put(state);
	}
	if (!k->has_id || !strcmp(k->kind, "gateway"))
		json_object_object_add(o, k->id_member, json_object_new_string(id));
	return o;
}

json_object *app_gateway_state(struct mapp *app, const char *id, int64_t generation)
{
	json_object *o = json_object_new_object(), *hb = NULL, *g;
	char *json = NULL, t[32];
	int64_t received = 0;
	const char *status = "never";
	int r;

	if (!o)
		return NULL;
	json_object_object_add(o, "generation", json_object_new_int64(generation));
	r = store_heartbeat_get(app->st, id, &json, &received);
	if (r == 0)
		hb = json_tokener_parse(json);
	if (hb && json_object_is_type(hb, json_type_object)) {
		int recent = util_now() - received < STATUS_WINDOW_S;
		int current = json_object_object_get_ex(hb, "config_generation", &g) &&
			      json_object_is_type(g, json_type_int) &&
			      json_object_get_int64(g) == generation;

		util_format_time(received, t, sizeof(t));
		json_object_object_add(hb, "received", json_object_new_string(t));
		status = !recent ? "offline" : current ? "online" : "stale";
		json_object_object_add(o, "last_heartbeat", hb);
	} else {
		json_object_put(hb);
		json_object_object_add(o, "last_heartbeat", NULL);
	}
	json_object_object_add(o, "status", json_object_new_string(status));
	free(json);
	return o;
}

struct list_ctx {
	struct mapp *app;
	const struct kind_info *k;
	json_object *items;
	int64_t generation;
};

static int list_one(void *ctx, const char *id, const char *json, int64_t changed)
{
	struct list_ctx *l = ctx;
	json_object *o = shown(l->app, l->k, id, json, l->generation);

	(void)changed;
	if (o)
		json_object_array_add(l->items, o);
	return 0;
}

static void do_list(struct mapp *app, const struct kind_info *k, struct mresp *resp)
{
	struct list_ctx l = { app, k, json_object_new_array(), store_generation(app->st) };
	json_object *o = json_object_new_object();

	if (store_each(app->st, k->kind, list_one, &l) != 0) {
		json_object_put(l.items);
		json_object_put(o);
		app_error(resp, 500, "the database cannot be read");
		return;
	}
	json_object_object_add(o, "items", l.items);
	sbuf_addf(&resp->head, "ETag: \"g%lld\"\r\n", (long long)l.generation);
	set_json(resp, 200, o);
	json_object_put(o);
}

static void do_get(struct mapp *app, const struct kind_info *k, const char *id,
		   struct mresp *resp)
{
	char *json = NULL;
	int64_t changed = 0;
	int r = store_get(app->st, k->kind, id, &json, &changed);
	json_object *o;

	if (r != 0) {
		app_error(resp, r < 0 ? 500 : 404, r < 0 ? "the database cannot be read" :
			  "no such object");
		return;
	}
	o = shown(app, k, id, json, store_generation(app->st));
	free(json);
	if (!o) {
		app_error(resp, 500, "a stored object is not JSON");
		return;
	}
	etag_header(resp, changed);
	set_json(resp, 200, o);
	json_object_put(o);
}

/* If-Match against the stored object's ETag (changed; 0: absent). 0 or -1
 * (412 set). */
static int check_if_match(const struct mreq *req, struct mresp *resp, int64_t changed)
{
	char want[32];

	if (!req->if_match || !strcmp(req->if_match, "*")) {
		if (req->if_match && !changed)
			goto fail;
		return 0;
	}
	snprintf(want, sizeof(want), "\"%lld\"", (long long)changed);
	if (changed && !strcmp(req->if_match, want))
		return 0;
fail:
	app_error(resp, 412, "the object has changed (If-Match does not match its ETag)");
	return -1;
}

/* Stores obj as (kind, id) inside the open transaction: validates, raises
 * the generation, writes it and its references. candidate: the text the
 * validation sees (the body as sent, so duplicate members are caught). 0,
 * or -1 with the answer set (the caller rolls back). */
static int write_object(struct mapp *app, const char *kind, const char *id, json_object *obj,
			const char *candidate, struct mresp *resp, int64_t *gen)
{
	json_object *errors = NULL;
	char err[256], from[128], **refs = NULL;
	size_t n_refs = 0;
	int r;

	r = model_validate(app->st, kind, id, candidate, &errors, err, sizeof(err));
	if (r == 1) {
		error_with(resp, 400, "the object is not valid", errors);
		return -1;
	}
	if (r < 0) {
		app_error(resp, 500, err);
		return -1;
	}
	snprintf(from, sizeof(from), "%s/%s", kind, id);
	if (model_refs(kind, obj, &refs, &n_refs) != 0 || store_bump_generation(app->st, gen) != 0 ||
	    store_put(app->st, kind, id, to_text(obj), *gen) != 0 ||
	    store_set_refs(app->st, from, (const char *const *)refs, n_refs) != 0) {
		model_refs_free(refs, n_refs);
		app_error(resp, 500, "the database cannot be written");
		return -1;
	}
	model_refs_free(refs, n_refs);
	return 0;
}

/* The body as sent with "id": "ID" added first when it has none. New. */
static char *with_id(const struct mreq *req, const char *id)
{
	struct sbuf b = SBUF_INIT(MANAGE_MAX_OBJECT + 256);
	const char *p = req->body;

	while (*p && *p != '{')
		p++;
	sbuf_adds(&b, "{\"id\":");
	sbuf_add_json(&b, id);
	p++;
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	if (*p != '}')
		sbuf_add(&b, ",", 1);
	sbuf_adds(&b, p);
	if (b.failed) {
		sbuf_release(&b);
		return NULL;
	}
	return b.s;
}

static void answer_stored(struct mapp *app, const struct kind_info *k, const char *id,
			  json_object *obj, int status, int64_t gen, struct mresp *resp)
{
	json_object *o = shown(app, k, id, to_text(obj), gen);

	etag_header(resp, gen);
	set_json(resp, status, o ? o : obj);
	json_object_put(o);
}

static void do_put(struct mapp *app, const struct kind_info *k, const char *id,
		   const struct mreq *req, struct mresp *resp)
{
	json_object *obj = parse_body(req, resp, MANAGE_MAX_OBJECT, json_type_object), *v;
	char *json = NULL, *cand = NULL;
	const char *text = req->body;
	int64_t changed = 0, gen = 0;
	int r, began = 0;

	if (!obj)
		return;
	if (k->has_id) {
		if (json_object_object_get_ex(obj, "id", &v)) {
			if (!json_object_is_type(v, json_type_string) ||
			    strcmp(json_object_get_string(v), id) != 0) {
				error_at(resp, "id", "must equal the id in the path '%s'", id);
				goto out;
			}
		} else {
			cand = with_id(req, id);
			if (!cand) {
				app_error(resp, 500, "out of memory");
				goto out;
			}
			text = cand;
			json_object_object_add(obj, "id", json_object_new_string(id));
		}
	}
	if (!strcmp(k->kind, "named_value")) {
		static const char *const known[] = { "value", "secret" };

		json_object_object_foreach(obj, key, val) {
			int ok = strncmp(key, "x-", 2) == 0;

			(void)val;
			for (size_t i = 0; i < 2; i++)
				ok |= !strcmp(key, known[i]);
			if (!ok) {
				error_at(resp, key, "unknown member (a named value is {\"value\", "
					 "\"secret\"})");
				goto out;
			}
		}
	}
	if (store_begin(app->st) != 0) {
		app_error(resp, 503, "the database is busy");
		goto out;
	}
	began = 1;
	r = store_get(app->st, k->kind, id, &json, &changed);
	if (r < 0) {
		app_error(resp, 500, "the database cannot be read");
		goto out;
	}
	if (check_if_match(req, resp, r == 0 ? changed : 0) != 0 ||
	    write_object(app, k->kind, id, obj, text, resp, &gen) != 0)
		goto out;
	if (store_commit(app->st) != 0) {
		began = 0;
		app_error(resp, 500, "the database cannot be written");
		goto out;
	}
	began = 0;
	answer_stored(app, k, id, obj, r == 1 ? 201 : 200, gen, resp);
out:
	if (began)
		store_rollback(app->st);
	free(json);
	free(cand);
	json_object_put(obj);
}

struct referrers {
	json_object *list;
};

static int add_referrer(void *ctx, const char *from, const char *json, int64_t changed)
{
	struct referrers *r = ctx;
	char shown_ref[160];
	const char *slash = strchr(from, '/');

	(void)json;
	(void)changed;
	if (!slash)
		return 0;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (strlen(kinds[i].kind) == (size_t)(slash - from) &&
		    !strncmp(kinds[i].kind, from, (size_t)(slash - from))) {
			snprintf(shown_ref, sizeof(shown_ref), "%s%s", kinds[i].collection, slash);
			json_object_array_add(r->list, json_object_new_string(shown_ref));
			return 0;
		}
	}
	json_object_array_add(r->list, json_object_new_string(from));
	return 0;
}

static void do_delete(struct mapp *app, const struct kind_info *k, const char *id,
		      const struct mreq *req, struct mresp *resp)
{
	struct referrers refs = { json_object_new_array() };
	json_object *errors = NULL;
	char *json = NULL, self[128], err[256];
	int64_t changed = 0, gen;
	int r, began = 0;

	if (store_begin(app->st) != 0) {
		app_error(resp, 503, "the database is busy");
		goto out;
	}
	began = 1;
	r = store_get(app->st, k->kind, id, &json, &changed);
	if (r != 0) {
		app_error(resp, r < 0 ? 500 : 404, r < 0 ? "the database cannot be read" :
			  "no such object");
		goto out;
	}
	if (check_if_match(req, resp, changed) != 0)
		goto out;
	snprintf(self, sizeof(self), "%s/%s", k->kind, id);
	if (store_referrers(app->st, self, add_referrer, &refs) != 0) {
		app_error(resp, 500, "the database cannot be read");
		goto out;
	}
	if (json_object_array_length(refs.list)) {
		json_object *o = json_object_new_object();
		char rid[32];

		request_id(rid, sizeof(rid));
		json_object_object_add(o, "statusCode", json_object_new_int(409));
		json_object_object_add(o, "message", json_object_new_string(
					       "the object is still referenced"));
		json_object_object_add(o, "requestId", json_object_new_string(rid));
		json_object_object_add(o, "referrers", json_object_get(refs.list));
		set_json(resp, 409, o);
		json_object_put(o);
		goto out;
	}
	if (strcmp(k->kind, "gateway") != 0) {
		r = model_validate(app->st, k->kind, id, NULL, &errors, err, sizeof(err));
		if (r != 0) {
			if (r == 1)
				error_with(resp, 409, "deleting the object would make the "
					   "configuration invalid", errors);
			else
				app_error(resp, 500, err);
			goto out;
		}
	}
	if (store_delete(app->st, k->kind, id) != 0 || store_bump_generation(app->st, &gen) != 0 ||
	    (!strcmp(k->kind, "gateway") &&
	     store_token_drop_owner(app->st, "gateway", id) != 0) ||
	    store_commit(app->st) != 0) {
		app_error(resp, 500, "the database cannot be written");
		goto out;
	}
	began = 0;
	resp->status = 204;
out:
	if (began)
		store_rollback(app->st);
	json_object_put(refs.list);
	free(json);
}

/* ---- policies ---- */

static void do_policies(struct mapp *app, const struct mreq *req, struct mresp *resp)
{
	char *json = NULL;
	int64_t changed = 0, gen;
	int r, began = 0;
	json_object *obj = NULL;

	if (!strcmp(req->method, "GET")) {
		r = store_get(app->st, "policies", "global", &json, &changed);
		if (r < 0) {
			app_error(resp, 500, "the database cannot be read");
			return;
		}
		etag_header(resp, changed);
		resp->status = 200;
		sbuf_adds(&resp->body, r == 0 ? json : "{}");
		sbuf_add(&resp->body, "\n", 1);
		free(json);
		return;
	}
	if (strcmp(req->method, "PUT") != 0) {
		app_error(resp, 405, "use GET or PUT");
		return;
	}
	obj = parse_body(req, resp, MANAGE_MAX_OBJECT, json_type_object);
	if (!obj)
		return;
	if (store_begin(app->st) != 0) {
		app_error(resp, 503, "the database is busy");
		goto out;
	}
	began = 1;
	r = store_get(app->st, "policies", "global", &json, &changed);
	if (r < 0 || check_if_match(req, resp, r == 0 ? changed : 0) != 0 ||
	    write_object(app, "policies", "global", obj, req->body, resp, &gen) != 0) {
		if (r < 0)
			app_error(resp, 500, "the database cannot be read");
		goto out;
	}
	if (store_commit(app->st) != 0) {
		began = 0;
		app_error(resp, 500, "the database cannot be written");
		goto out;
	}
	began = 0;
	etag_header(resp, gen);
	set_json(resp, r == 1 ? 201 : 200, obj);
out:
	if (began)
		store_rollback(app->st);
	free(json);
	json_object_put(obj);
}

/* ---- subscriptions ---- */

static int new_keys(char keys[2][CRYPTO_TOKEN_LEN], json_object **hashes)
{
	char h[CRYPTO_HEX_LEN];

	*hashes = json_object_new_array();
	for (int i = 0; i < 2; i++) {
		if (crypto_token(keys[i]) != 0)
			return -1;
		crypto_sha256_hex(keys[i], strlen(keys[i]), h);
		json_object_array_add(*hashes, json_object_new_string(h));
	}
	return 0;
}

static void do_sub_create(struct mapp *app, const struct mreq *req, struct mresp *resp)
{
	static const char *const known[] = { "id", "scope", "state", "expires", NULL };
	json_object *obj = parse_body(req, resp, MANAGE_MAX_OBJECT, json_type_object), *hashes;
	char keys[2][CRYPTO_TOKEN_LEN], *json = NULL;
	const char *id;
	int64_t gen;
	int began = 0, r;

	if (!obj)
		return;
	json_object_object_foreach(obj, key, val) {
		int ok = 0;

		(void)val;
		for (size_t i = 0; known[i]; i++)
			ok |= !strcmp(key, known[i]);
		if (!ok) {
			error_at(resp, key, "unknown member (the keys are made here, shown once)");
			goto out;
		}
	}
	id = json_str(obj, "id");
	if (!id || !util_is_id(id)) {
		error_at(resp, "id", "a subscription id is required ([A-Za-z0-9._-]{1,80})");
		goto out;
	}
	if (new_keys(keys, &hashes) != 0) {
		json_object_put(hashes);
		app_error(resp, 500, "cannot make keys");
		goto out;
	}
	json_object_object_add(obj, "keys_sha256", hashes);
	if (store_begin(app->st) != 0) {
		app_error(resp, 503, "the database is busy");
		goto out;
	}
	began = 1;
	r = store_get(app->st, "subscription", id, &json, NULL);
	if (r != 1) {
		app_error(resp, r < 0 ? 500 : 409, r < 0 ? "the database cannot be read" :
			  "a subscription with this id exists");
		goto out;
	}
	if (write_object(app, "subscription", id, obj, to_text(obj), resp, &gen) != 0)
		goto out;
	if (store_commit(app->st) != 0) {
		began = 0;
		app_error(resp, 500, "the database cannot be written");
		goto out;
	}
	began = 0;
	{
		json_object *o = json_object_new_object();

		json_object_object_add(o, "id", json_object_new_string(id));
		json_object_object_add(o, "primary_key", json_object_new_string(keys[0]));
		json_object_object_add(o, "secondary_key", json_object_new_string(keys[1]));
		etag_header(resp, gen);
		sbuf_addf(&resp->head, "Location: subscriptions/%s\r\n", id);
		set_json(resp, 201, o);
		json_object_put(o);
	}
out:
	OPENSSL_cleanse(keys, sizeof(keys));
	if (began)
		store_rollback(app->st);
	free(json);
	json_object_put(obj);
}

/* PATCH (a JSON merge patch: null removes) or regenerate (which = 0 or 1). */
static void do_sub_change(struct mapp *app, const char *id, const struct mreq *req,
			  struct mresp *resp, int which)
{
	static const struct kind_info *sk = &kinds[4];
	json_object *patch = NULL, *obj = NULL, *hashes;
	char key[CRYPTO_TOKEN_LEN] = "", h[CRYPTO_HEX_LEN], *json = NULL;
	int64_t changed = 0, gen;
	int began = 0, r;

	if (which < 0) {
		patch = parse_body(req, resp, MANAGE_MAX_OBJECT, json_type_object);
		if (!patch)
			return;
		json_object_object_foreach(patch, k, v) {
			(void)v;
			if (!strcmp(k, "id") || !strcmp(k, "keys_sha256")) {
				error_at(resp, k, "cannot be changed (keys: POST .../regenerate)");
				goto out;
			}
		}
	}
	if (store_begin(app->st) != 0) {
		app_error(resp, 503, "the database is busy");
		goto out;
	}
	began = 1;
	r = store_get(app->st, "subscription", id, &json, &changed);
	if (r != 0) {
		app_error(resp, r < 0 ? 500 : 404, r < 0 ? "the database cannot be read" :
			  "no such subscription");
		goto out;
	}
	if (check_if_match(req, resp, changed) != 0)
		goto out;
	obj = json_tokener_parse(json);
	if (!obj) {
		app_error(resp, 500, "a stored object is not JSON");
		goto out;
	}
	if (patch) {
		json_object_object_foreach(patch, k, v) {
			if (!v)
				json_object_object_del(obj, k);
			else
				json_object_object_add(obj, k, json_object_get(v));
		}
	} else {
		if (!json_object_object_get_ex(obj, "keys_sha256", &hashes) ||
		    json_object_array_length(hashes) < 2 || crypto_token(key) != 0) {
			app_error(resp, 500, "the subscription has no keys to replace");
			goto out;
		}
		crypto_sha256_hex(key, strlen(key), h);
		json_object_array_put_idx(hashes, (size_t)which, json_object_new_string(h));
	}
	if (write_object(app, "subscription", id, obj, to_text(obj), resp, &gen) != 0)
		goto out;
	if (store_commit(app->st) != 0) {
		began = 0;
		app_error(resp, 500, "the database cannot be written");
		goto out;
	}
	began = 0;
	if (patch) {
		answer_stored(app, sk, id, obj, 200, gen, resp);
	} else {
		json_object *o = json_object_new_object();

		json_object_object_add(o, which ? "secondary_key" : "primary_key",
				       json_object_new_string(key));
		etag_header(resp, gen);
		set_json(resp, 200, o);
		json_object_put(o);
	}
out:
	OPENSSL_cleanse(key, sizeof(key));
	if (began)
		store_rollback(app->st);
	free(json);
	json_object_put(obj);
	json_object_put(patch);
}

/* ---- gateways ---- */

static void do_gateway_put(struct mapp *app, const char *id, const struct mreq *req,
			   struct mresp *resp)
{
	json_object *obj = parse_body(req, resp, MANAGE_MAX_OBJECT, json_type_object), *apis, *gwm;
	json_object *errors = NULL;
	char *json = NULL, err[256], **refs = NULL, from[128];
	size_t n_refs = 0;
	int64_t changed = 0, gen;
	int began = 0, r, r2;

	if (!obj)
		return;
	json_object_object_foreach(obj, key, val) {
		(void)val;
		if (strcmp(key, "apis") != 0 && strcmp(key, "gateway") != 0 &&
		    strncmp(key, "x-", 2) != 0) {
			error_at(resp, key, "unknown member (a gateway is {\"apis\", \"gateway\"})");
			goto out;
		}
	}
	if (!json_object_object_get_ex(obj, "apis", &apis) ||
	    !(json_object_is_type(apis, json_type_array) ||
	      (json_object_is_type(apis, json_type_string) &&
	       !strcmp(json_object_get_string(apis), "*")))) {
		error_at(resp, "apis", "required: an array of API ids, or \"*\" for all");
		goto out;
	}
	if (store_begin(app->st) != 0) {
		app_error(resp, 503, "the database is busy");
		goto out;
	}
	began = 1;
	if (json_object_is_type(apis, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(apis); i++) {
			json_object *a = json_object_array_get_idx(apis, i);
			char path[32], *aj = NULL;

			snprintf(path, sizeof(path), "apis[%zu]", i);
			if (!json_object_is_type(a, json_type_string) ||
			    !util_is_id(json_object_get_string(a))) {
				error_at(resp, path, "must be an API id");
				goto out;
			}
			r = store_get(app->st, "api", json_object_get_string(a), &aj, NULL);
			free(aj);
			if (r != 0) {
				if (r < 0)
					app_error(resp, 500, "the database cannot be read");
				else
					error_at(resp, path, "unknown API '%s'",
						 json_object_get_string(a));
				goto out;
			}
		}
	}
	r = store_get(app->st, "gateway", id, &json, &changed);
	if (r < 0 || check_if_match(req, resp, r == 0 ? changed : 0) != 0) {
		if (r < 0)
			app_error(resp, 500, "the database cannot be read");
		goto out;
	}
	if (json_object_object_get_ex(obj, "gateway", &gwm)) {
		r2 = model_validate(app->st, "gateway", id, to_text(gwm), &errors, err, sizeof(err));
		if (r2 == 1) {
			error_with(resp, 400, "the gateway object is not valid", errors);
			goto out;
		}
		if (r2 < 0) {
			app_error(resp, 500, err);
			goto out;
		}
	}
	snprintf(from, sizeof(from), "gateway/%s", id);
	if (model_refs("gateway", obj, &refs, &n_refs) != 0 ||
	    store_bump_generation(app->st, &gen) != 0 ||
	    store_put(app->st, "gateway", id, to_text(obj), gen) != 0 ||
	    store_set_refs(app->st, from, (const char *const *)refs, n_refs) != 0 ||
	    store_commit(app->st) != 0) {
		app_error(resp, 500, "the database cannot be written");
		goto out;
	}
	began = 0;
	answer_stored(app, &kinds[5], id, obj, r == 1 ? 201 : 200, gen, resp);
out:
	model_refs_free(refs, n_refs);
	if (began)
		store_rollback(app->st);
	free(json);
	json_object_put(obj);
}

static void do_gateway_token(struct mapp *app, const char *id, const struct mreq *req,
			     struct mresp *resp)
{
	char token[CRYPTO_TOKEN_LEN], hash[CRYPTO_HEX_LEN], t[32], *json = NULL;
	int64_t expires = util_now() + (int64_t)DEFAULT_TOKEN_DAYS * 86400;
	json_object *obj = NULL, *o;
	int r;

	if (req->body_len) {
		const char *e;

		obj = parse_body(req, resp, MANAGE_MAX_HEARTBEAT, json_type_object);
		if (!obj)
			return;
		e = json_str(obj, "expires");
		if (json_object_object_get_ex(obj, "expires", NULL) &&
		    (!e || util_parse_time(e, &expires) != 0)) {
			error_at(resp, "expires", "must be an RFC 3339 time");
			goto out;
		}
		if (expires <= util_now()) {
			error_at(resp, "expires", "must be in the future");
			goto out;
		}
	}
	r = store_get(app->st, "gateway", id, &json, NULL);
	if (r != 0) {
		app_error(resp, r < 0 ? 500 : 404, r < 0 ? "the database cannot be read" :
			  "no such gateway");
		goto out;
	}
	if (crypto_token(token) != 0) {
		app_error(resp, 500, "cannot make a token");
		goto out;
	}
	crypto_sha256_hex(token, strlen(token), hash);
	if (store_token_add(app->st, "gateway", id, hash, expires) != 0) {
		app_error(resp, 500, "the database cannot be written");
		goto out;
	}
	util_format_time(expires, t, sizeof(t));
	o = json_object_new_object();
	json_object_object_add(o, "token", json_object_new_string(token));
	json_object_object_add(o, "expires", json_object_new_string(t));
	set_json(resp, 201, o);
	json_object_put(o);
out:
	OPENSSL_cleanse(token, sizeof(token));
	free(json);
	json_object_put(obj);
}

int app_document(struct mapp *app, const char *g, char **body, size_t *len, char **etag,
		 char **sig, int64_t *generation)
{
	char err[512], hash[CRYPTO_HEX_LEN], et[64], sg[CRYPTO_SIG_LEN];
	int64_t gen = store_generation(app->st);
	int r;

	if (gen < 0)
		return -1;
	r = store_doc_get(app->st, g, gen, body, len, etag, sig);
	if (r != 1) {
		*generation = gen;
		return r;
	}
	/* build it once per generation, in a transaction: the document and the
	 * generation it carries come from one snapshot */
	if (store_begin(app->st) != 0)
		return -1;
	gen = store_generation(app->st);
	r = model_gateway_document(app->st, g, gen, body, len, err, sizeof(err));
	if (r != 0) {
		store_rollback(app->st);
		if (r < 0)
			log_err("%s", err);
		return r;
	}
	crypto_sha256_hex(*body, *len, hash);
	snprintf(et, sizeof(et), "\"%lld-%.16s\"", (long long)gen, hash);
	if (app->key && crypto_sign(app->key, *body, *len, sg) != 0) {
		log_err("cannot sign the document of gateway '%s'", g);
		store_rollback(app->st);
		free(*body);
		return -1;
	}
	if (store_doc_put(app->st, g, gen, *body, *len, et, app->key ? sg : NULL) != 0 ||
	    store_commit(app->st) != 0) {
		store_rollback(app->st);
		free(*body);
		return -1;
	}
	*etag = strdup(et);
	*sig = app->key ? strdup(sg) : NULL;
	*generation = gen;
	if (!*etag) {
		free(*body);
		free(*sig);
		return -1;
	}
	return 0;
}

static void send_document(struct mapp *app, const char *g, const struct mreq *req,
			  struct mresp *resp)
{
	char *body = NULL, *etag = NULL, *sig = NULL;
	size_t len = 0;
	int64_t gen = 0;
	int r = app_document(app, g, &body, &len, &etag, &sig, &gen);

	if (r != 0) {
		app_error(resp, r < 0 ? 500 : 404, r < 0 ? "the document cannot be made" :
			  "no such gateway");
		return;
	}
	sbuf_addf(&resp->head, "ETag: %s\r\n", etag);
	if (sig)
		sbuf_addf(&resp->head, "Hostgate-Signature: %s\r\n", sig);
	if (req->if_none_match && !strcmp(req->if_none_match, etag)) {
		resp->status = 304;
	} else {
		resp->status = 200;
		sbuf_add(&resp->body, body, len);
	}
	free(body);
	free(etag);
	free(sig);
}

/* ---- the gateway face: heartbeat and metrics ---- */

static void do_heartbeat(struct mapp *app, const char *g, const struct mreq *req,
			 struct mresp *resp)
{
	json_object *obj = parse_body(req, resp, MANAGE_MAX_HEARTBEAT, json_type_object);

	if (!obj)
		return;
	if (store_heartbeat_put(app->st, g, to_text(obj), util_now()) != 0)
		app_error(resp, 500, "the database cannot be written");
	else
		resp->status = 204;
	json_object_put(obj);
}

static int int_member(json_object *o, const char *name, int64_t *out)
{
	json_object *v;

	if (!json_object_object_get_ex(o, name, &v) || !json_object_is_type(v, json_type_int))
		return -1;
	*out = json_object_get_int64(v);
	return *out < 0 ? -1 : 0;
}

/* Reads one series into m. 0, or -1 with *why. */
static int read_series(json_object *s, struct store_metric *m, const char **why)
{
	static const char *const names[] = { "api", "operation", "subscription" };
	const char **dst[] = { &m->api, &m->operation, &m->subscription };
	json_object *v, *lat, *le, *counts;
	int64_t status;

	*why = "must be an object";
	if (!json_object_is_type(s, json_type_object))
		return -1;
	for (int i = 0; i < 3; i++) {
		*dst[i] = "";
		if (json_object_object_get_ex(s, names[i], &v) && v) {
			*why = "api, operation and subscription are strings or null";
			if (!json_object_is_type(v, json_type_string) ||
			    strlen(json_object_get_string(v)) > 80)
				return -1;
			*dst[i] = json_object_get_string(v);
		}
	}
	*why = "status, count, errors, bytes_in and bytes_out are integers >= 0";
	if (int_member(s, "status", &status) || status > 999 || int_member(s, "count", &m->count) ||
	    int_member(s, "errors", &m->errors) || int_member(s, "bytes_in", &m->bytes_in) ||
	    int_member(s, "bytes_out", &m->bytes_out))
		return -1;
	m->status = (int)status;
	memset(m->hist, 0, sizeof(m->hist));
	if (!json_object_object_get_ex(s, "latency_ms", &lat) || !lat)
		return 0;
	*why = "latency_ms is {\"le\": [bounds], \"counts\": [one more than bounds]}";
	if (!json_object_object_get_ex(lat, "le", &le) ||
	    !json_object_object_get_ex(lat, "counts", &counts) ||
	    !json_object_is_type(le, json_type_array) ||
	    !json_object_is_type(counts, json_type_array) ||
	    json_object_array_length(counts) != json_object_array_length(le) + 1 ||
	    json_object_array_length(le) > 64)
		return -1;
	for (size_t i = 0; i < json_object_array_length(counts); i++) {
		json_object *c = json_object_array_get_idx(counts, i);
		int64_t bound = i < json_object_array_length(le) ?
			json_object_get_int64(json_object_array_get_idx(le, i)) : INT64_MAX;
		size_t j = 0;

		if (!json_object_is_type(c, json_type_int) || json_object_get_int64(c) < 0)
			return -1;
		/* a bucket goes to the first of ours that holds all of it */
		while (j < STORE_HIST_BUCKETS - 1 && hist_bounds[j] < bound)
			j++;
		m->hist[j] += json_object_get_int64(c);
	}
	return 0;
}

static void do_metrics_in(struct mapp *app, const char *g, const struct mreq *req,
			  struct mresp *resp)
{
	json_object *obj = parse_body(req, resp, MANAGE_MAX_BODY, json_type_object), *series;
	const char *instance, *from, *why;
	int64_t t, now = util_now();
	int began = 0, r;
	char path[48];

	if (!obj)
		return;
	instance = json_str(obj, "instance");
	from = json_str(obj, "from");
	if (!instance || !*instance || strlen(instance) > 128) {
		error_at(resp, "instance", "required: the agent's instance id");
		goto out;
	}
	if (!from || util_parse_time(from, &t) != 0) {
		error_at(resp, "from", "required: an RFC 3339 time");
		goto out;
	}
	if (!json_object_object_get_ex(obj, "series", &series) ||
	    !json_object_is_type(series, json_type_array) ||
	    json_object_array_length(series) > MAX_SERIES) {
		error_at(resp, "series", "required: an array (at most %d)", MAX_SERIES);
		goto out;
	}
	if (store_begin(app->st) != 0) {
		app_error(resp, 503, "the database is busy");
		goto out;
	}
	began = 1;
	r = store_metrics_window(app->st, instance, from, now);
	if (r < 0) {
		app_error(resp, 500, "the database cannot be written");
		goto out;
	}
	if (r == 1) {		/* seen: acknowledged, ignored */
		resp->status = 204;
		goto out;
	}
	for (size_t i = 0; i < json_object_array_length(series); i++) {
		struct store_metric m = { .minute = t - t % 60, .gateway = g };

		if (read_series(json_object_array_get_idx(series, i), &m, &why) != 0) {
			snprintf(path, sizeof(path), "series[%zu]", i);
			error_at(resp, path, "%s", why);
			goto out;
		}
		if (store_metrics_add(app->st, &m) != 0) {
			app_error(resp, 500, "the database cannot be written");
			goto out;
		}
	}
	if (store_metrics_expire(app->st, now - (int64_t)app->retention_days * 86400) != 0 ||
	    store_commit(app->st) != 0) {
		app_error(resp, 500, "the database cannot be written");
		goto out;
	}
	began = 0;
	resp->status = 204;
out:
	if (began)
		store_rollback(app->st);
	json_object_put(obj);
}

/* ---- /admin/v1/metrics ---- */

int64_t app_percentile(const int64_t *hist, double q)
{
	int64_t count = 0, want, seen = 0;

	for (int i = 0; i < STORE_HIST_BUCKETS; i++)
		count += hist[i];
	want = (int64_t)(q * (double)count + 0.999999);
	if (count <= 0)
		return 0;
	for (int i = 0; i < STORE_HIST_BUCKETS; i++) {
		seen += hist[i];
		if (seen >= want)
			return i < STORE_HIST_BUCKETS - 1 ? hist_bounds[i] :
				hist_bounds[STORE_HIST_BUCKETS - 2];
	}
	return hist_bounds[STORE_HIST_BUCKETS - 2];
}

struct mq {
	json_object *series;
	unsigned group_by;
};

static int metrics_row(void *ctx, const struct store_metric *m)
{
	struct mq *q = ctx;
	json_object *o = json_object_new_object(), *lat = json_object_new_object();
	char t[32];

	if (q->group_by & STORE_BY_GATEWAY)
		json_object_object_add(o, "gateway", json_object_new_string(m->gateway));
	if (q->group_by & STORE_BY_API)
		json_object_object_add(o, "api", *m->api ? json_object_new_string(m->api) : NULL);
	if (q->group_by & STORE_BY_OPERATION)
		json_object_object_add(o, "operation", *m->operation ?
				       json_object_new_string(m->operation) : NULL);
	if (q->group_by & STORE_BY_SUBSCRIPTION)
		json_object_object_add(o, "subscription", *m->subscription ?
				       json_object_new_string(m->subscription) : NULL);
	if (q->group_by & STORE_BY_STATUS)
		json_object_object_add(o, "status", json_object_new_int(m->status));
	if (q->group_by & (STORE_BY_MINUTE | STORE_BY_HOUR)) {
		util_format_time(m->minute, t, sizeof(t));
		json_object_object_add(o, q->group_by & STORE_BY_MINUTE ? "minute" : "hour",
				       json_object_new_string(t));
	}
	json_object_object_add(o, "count", json_object_new_int64(m->count));
	json_object_object_add(o, "errors", json_object_new_int64(m->errors));
	json_object_object_add(o, "bytes_in", json_object_new_int64(m->bytes_in));
	json_object_object_add(o, "bytes_out", json_object_new_int64(m->bytes_out));
	json_object_object_add(lat, "p50", json_object_new_int64(app_percentile(m->hist, 0.50)));
	json_object_object_add(lat, "p95", json_object_new_int64(app_percentile(m->hist, 0.95)));
	json_object_object_add(lat, "p99", json_object_new_int64(app_percentile(m->hist, 0.99)));
	json_object_object_add(o, "latency_ms", lat);
	json_object_array_add(q->series, o);
	return 0;
}

/* Parses the query of /admin/v1/metrics into f and group_by: 0, or -1 with
 * the answer set. Strings in f point into bufs. */
static int metrics_query(struct mapp *app, const char *query, struct store_metrics_filter *f,
		      unsigned *group_by, char bufs[5][128], struct mresp *resp)
{
	static const char *const names[] = { "gateway", "api", "operation", "subscription" };
	static const char *const groups[] = { "gateway", "api", "operation", "subscription",
					      "status", "minute", "hour" };
	const char **dst[] = { &f->gateway, &f->api, &f->operation, &f->subscription };
	char t[64];

	memset(f, 0, sizeof(*f));
	*group_by = 0;
	f->to = util_now() + 60;
	f->from = util_now() - (int64_t)app->retention_days * 86400;
	for (int i = 0; i < 4; i++)
		if (query_param(query, names[i], bufs[i], 128) && bufs[i][0])
			*dst[i] = bufs[i];
	if (query_param(query, "from", t, sizeof(t)) && util_parse_time(t, &f->from) != 0) {
		error_at(resp, "from", "must be an RFC 3339 time");
		return -1;
	}
	if (query_param(query, "to", t, sizeof(t)) && util_parse_time(t, &f->to) != 0) {
		error_at(resp, "to", "must be an RFC 3339 time");
		return -1;
	}
	if (query_param(query, "group_by", bufs[4], 128)) {
		char *p = bufs[4];

		while (*p) {
			size_t n = strcspn(p, ",");
			int found = 0;

			for (unsigned i = 0; i < 7; i++) {
				if (strlen(groups[i]) == n && !strncmp(groups[i], p, n)) {
					*group_by |= 1u << i;
					found = 1;
				}
			}
			if (!found) {
				error_at(resp, "group_by", "'%.*s' is not one of gateway, api, "
					 "operation, subscription, status, minute, hour", (int)n, p);
				return -1;
			}
			p += n;
			if (*p == ',')
				p++;
		}
	}
	return 0;
}

static void do_metrics_out(struct mapp *app, const struct mreq *req, struct mresp *resp)
{
	struct store_metrics_filter f;
	struct mq q = { json_object_new_array(), 0 };
	char bufs[5][128];
	json_object *o;

	if (metrics_query(app, req->query, &f, &q.group_by, bufs, resp) != 0) {
		json_object_put(q.series);
		return;
	}
	if (store_metrics_query(app->st, &f, q.group_by, metrics_row, &q) != 0) {
		json_object_put(q.series);
		app_error(resp, 500, "the database cannot be read");
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "series", q.series);
	set_json(resp, 200, o);
	json_object_put(o);
}

/* ---- routing ---- */

/* Splits path into at most max segments (borrowed into buf). */
static size_t split(const char *path, char *buf, size_t n, char **seg, size_t max)
{
	size_t k = 0;
	char *p;

	snprintf(buf, n, "%s", path);
	p = buf;
	while (*p == '/')
		p++;
	while (*p && k < max) {
		char *s = strchr(p, '/');

		seg[k++] = p;
		if (!s)
			break;
		*s = '\0';
		p = s + 1;
	}
	if (*p && k == max)
		return max + 1;	/* too many */
	return k;
}

static void admin(struct mapp *app, const struct mreq *req, struct mresp *resp, char **seg,
		  size_t n)
{
	const struct kind_info *k;
	const char *m = req->method;

	if (admin_auth(app, req, resp) != 0)
		return;
	if (n == 1 && !strcmp(seg[0], "policies")) {
		do_policies(app, req, resp);
		return;
	}
	if (n == 1 && !strcmp(seg[0], "metrics")) {
		if (strcmp(m, "GET") != 0)
			app_error(resp, 405, "use GET");
		else
			do_metrics_out(app, req, resp);
		return;
	}
	k = n >= 1 ? kind_by_collection(seg[0], strlen(seg[0])) : NULL;
	if (!k || n > 3) {
		app_error(resp, 404, "no such resource");
		return;
	}
	if (n == 1) {
		if (!strcmp(m, "GET"))
			do_list(app, k, resp);
		else if (!strcmp(k->kind, "subscription") && !strcmp(m, "POST"))
			do_sub_create(app, req, resp);
		else
			app_error(resp, 405, "use GET (or POST for subscriptions)");
		return;
	}
	if (!util_is_id(seg[1])) {
		error_at(resp, "$", "'%.80s' is not an id ([A-Za-z0-9._-]{1,80})", seg[1]);
		return;
	}
	if (n == 3) {
		char which[32] = "";

		if (!strcmp(k->kind, "gateway") && !strcmp(seg[2], "tokens") && !strcmp(m, "POST"))
			do_gateway_token(app, seg[1], req, resp);
		else if (!strcmp(k->kind, "gateway") && !strcmp(seg[2], "configuration") &&
			 !strcmp(m, "GET"))
			send_document(app, seg[1], req, resp);
		else if (!strcmp(k->kind, "subscription") && !strcmp(seg[2], "regenerate") &&
			 !strcmp(m, "POST")) {
			query_param(req->query, "key", which, sizeof(which));
			if (strcmp(which, "primary") && strcmp(which, "secondary"))
				error_at(resp, "key", "must be 'primary' or 'secondary'");
			else
				do_sub_change(app, seg[1], req, resp, which[0] == 's');
		} else
			app_error(resp, 404, "no such resource");
		return;
	}
	if (!strcmp(m, "GET"))
		do_get(app, k, seg[1], resp);
	else if (!strcmp(m, "DELETE"))
		do_delete(app, k, seg[1], req, resp);
	else if (!strcmp(m, "PUT") && !strcmp(k->kind, "gateway"))
		do_gateway_put(app, seg[1], req, resp);
	else if (!strcmp(m, "PUT") && strcmp(k->kind, "subscription") != 0)
		do_put(app, k, seg[1], req, resp);
	else if (!strcmp(m, "PATCH") && !strcmp(k->kind, "subscription"))
		do_sub_change(app, seg[1], req, resp, -1);
	else
		app_error(resp, 405, "method not allowed here");
}

void app_handle(struct mapp *app, const struct mreq *req, struct mresp *resp)
{
	char buf[1024], *seg[6];
	size_t n;

	resp->status = 500;
	if (strlen(req->path) >= sizeof(buf)) {
		app_error(resp, 404, "no such resource");
		return;
	}
	n = split(req->path, buf, sizeof(buf), seg, 6);
	if (n >= 1 && !strcmp(seg[0], "ui")) {
		ui_handle(app, req, resp, seg + 1, n - 1);
		return;
	}
	if (n == 3 && !strcmp(seg[0], "gateways")) {
		if (!util_is_id(seg[1])) {
			app_error(resp, 404, "no such gateway");
			return;
		}
		if (gateway_auth(app, req, resp, seg[1]) != 0)
			return;
		if (!strcmp(seg[2], "configuration") &&
		    (!strcmp(req->method, "GET") || !strcmp(req->method, "HEAD")))
			send_document(app, seg[1], req, resp);
		else if (!strcmp(seg[2], "heartbeat") && !strcmp(req->method, "POST"))
			do_heartbeat(app, seg[1], req, resp);
		else if (!strcmp(seg[2], "metrics") && !strcmp(req->method, "POST"))
			do_metrics_in(app, seg[1], req, resp);
		else
			app_error(resp, 404, "no such resource");
		return;
	}
	if (n >= 2 && n <= 5 && !strcmp(seg[0], "admin") && !strcmp(seg[1], "v1")) {
		admin(app, req, resp, seg + 2, n - 2);
		return;
	}
	app_error(resp, 404, "no such resource");
}

/* ---- set-up ---- */

int app_open(struct mapp *app, char *err, size_t errlen)
{
	const char *db = getenv("HOSTGATE_MANAGE_DB"), *key = getenv("HOSTGATE_MANAGE_SIGNING_KEY");
	const char *ret = getenv("HOSTGATE_MANAGE_RETENTION_DAYS");

	memset(app, 0, sizeof(*app));
	app->retention_days = 7;
	if (ret && *ret) {
		char *end;
		long d = strtol(ret, &end, 10);

		if (*end || d < 1 || d > 3650) {
			snprintf(err, errlen, "bad HOSTGATE_MANAGE_RETENTION_DAYS '%s': 1 to 3650",
				 ret);
			return -1;
		}
		app->retention_days = (int)d;
	}
	if (key && *key) {
		app->key = crypto_load_signing_key(key, err, errlen);
		if (!app->key)
			return -1;
	}
	app->st = store_open(db && *db ? db : MANAGE_DEFAULT_DB, err, errlen);
	if (!app->st) {
		crypto_free_key(app->key);
		app->key = NULL;
		return -1;
	}
	return 0;
}

void app_close(struct mapp *app)
{
	store_close(app->st);
	crypto_free_key(app->key);
	memset(app, 0, sizeof(*app));
}
