/*
 * admin — the admin API, /admin/v1/… (shared/spec/admin-api.md): backends,
 * APIs, products, named values, global policies, subscriptions and gateways
 * as the configuration document has them, each write one transaction that
 * policy/ validates (model.h) and that raises the generation; and the
 * metrics the gateways reported.
 */
#include "manage/admin.h"

#include <json-c/json.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manage/app.h"
#include "manage/crypto.h"
#include "manage/face.h"
#include "manage/model.h"
#include "policy/products.h"

#define STATUS_WINDOW_S (3 * 60)	/* admin-api.md: online within 3 x 60 s */
#define DEFAULT_TOKEN_DAYS 365

static int admin_auth(struct mapp *app, const struct mreq *req, struct mresp *resp)
{
	const char *token;

	if (app_token_of(req->authorization, "Bearer", &token) != 0 ||
	    app_admin_token_ok(app, token) != 0) {
		app_error(resp, 401, "an admin token is required: 'Authorization: Bearer TOKEN'");
		sbuf_adds(&resp->head, "WWW-Authenticate: Bearer\r\n");
		return -1;
	}
	return 0;
}

/* The gateway face: 0 when the token belongs to gateway g. */
/* ---- generic objects ---- */

struct kind_info {
	const char *collection, *kind, *id_member;	/* id_member: listed with it */
	int has_id;					/* the object has an "id" member */
};

enum { K_BACKEND, K_API, K_PRODUCT, K_NAMED_VALUE, K_SUBSCRIPTION, K_GATEWAY };
static const struct kind_info kinds[] = {
	[K_BACKEND] = { "backends", "backend", "id", 0 },
	[K_API] = { "apis", "api", "id", 1 },
	[K_PRODUCT] = { "products", "product", "id", 1 },
	[K_NAMED_VALUE] = { "named-values", "named_value", "name", 0 },
	[K_SUBSCRIPTION] = { "subscriptions", "subscription", "id", 1 },
	[K_GATEWAY] = { "gateways", "gateway", "id", 0 },
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
	app_set_json(resp, 200, o);
	json_object_put(o);
}

static void do_get(struct mapp *app, const struct kind_info *k, const char *id,
		   const struct mreq *req, struct mresp *resp)
{
	char *json = NULL, etag[32];
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
	app_etag(resp, changed);
	snprintf(etag, sizeof(etag), "\"%lld\"", (long long)changed);
	/* a gateway's answer also holds its state, which changes without it */
	if (req->if_none_match && !strcmp(req->if_none_match, etag) &&
	    strcmp(k->kind, "gateway") != 0)
		resp->status = 304;
	else
		app_set_json(resp, 200, o);
	json_object_put(o);
}

/* If-Match against the stored object's ETag (changed; 0: absent). 0 or -1
 * (412 set). */
static int check_if_match(const struct mreq *req, struct mresp *resp, int64_t changed)
{
	char want[32];
	int ok;

	snprintf(want, sizeof(want), "\"%lld\"", (long long)changed);
	if (!req->if_match)
		ok = 1;
	else if (!strcmp(req->if_match, "*"))
		ok = changed != 0;	/* "*": any current version, so none fails */
	else
		ok = changed != 0 && !strcmp(req->if_match, want);
	if (!ok)
		app_error(resp, 412, "the object has changed (If-Match does not match its ETag)");
	return ok ? 0 : -1;
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
		app_error_with(resp, 400, "the object is not valid", errors);
		return -1;
	}
	if (r < 0) {
		app_error(resp, 500, err);
		return -1;
	}
	snprintf(from, sizeof(from), "%s/%s", kind, id);
	if (model_refs(kind, obj, &refs, &n_refs) != 0 || store_bump_generation(app->st, gen) != 0 ||
	    store_put(app->st, kind, id, app_json_text(obj), *gen) != 0 ||
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
	json_object *o = shown(app, k, id, app_json_text(obj), gen);

	app_etag(resp, gen);
	app_set_json(resp, status, o ? o : obj);
	json_object_put(o);
}

static void do_put(struct mapp *app, const struct kind_info *k, const char *id,
		   const struct mreq *req, struct mresp *resp)
{
	json_object *obj = app_parse_body(req, resp, MANAGE_MAX_OBJECT, json_type_object), *v;
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
				app_error_at(resp, "id", "must equal the id in the path '%s'", id);
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
				app_error_at(resp, key, "unknown member (a named value is {\"value\", "
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

		app_request_id(rid, sizeof(rid));
		json_object_object_add(o, "statusCode", json_object_new_int(409));
		json_object_object_add(o, "message", json_object_new_string(
					       "the object is still referenced"));
		json_object_object_add(o, "requestId", json_object_new_string(rid));
		json_object_object_add(o, "referrers", json_object_get(refs.list));
		app_set_json(resp, 409, o);
		json_object_put(o);
		goto out;
	}
	if (strcmp(k->kind, "gateway") != 0) {
		r = model_validate(app->st, k->kind, id, NULL, &errors, err, sizeof(err));
		if (r != 0) {
			if (r == 1)
				app_error_with(resp, 409, "deleting the object would make the "
					   "configuration invalid", errors);
			else
				app_error(resp, 500, err);
			goto out;
		}
	}
	if (store_delete(app->st, k->kind, id) != 0 || store_bump_generation(app->st, &gen) != 0 ||
	    (!strcmp(k->kind, "gateway") &&
	     (store_token_drop_owner(app->st, "gateway", id) != 0 ||
	      store_gateway_forget(app->st, id) != 0)) ||
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
		app_etag(resp, changed);
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
	obj = app_parse_body(req, resp, MANAGE_MAX_OBJECT, json_type_object);
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
	app_etag(resp, gen);
	app_set_json(resp, r == 1 ? 201 : 200, obj);
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
	json_object *obj = app_parse_body(req, resp, MANAGE_MAX_OBJECT, json_type_object), *hashes;
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
			app_error_at(resp, key, "unknown member (the keys are made here, shown once)");
			goto out;
		}
	}
	id = jget_str(obj, "id");
	if (!id || !util_is_id(id)) {
		app_error_at(resp, "id", "a subscription id is required ([A-Za-z0-9._-]{1,80})");
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
	if (write_object(app, "subscription", id, obj, app_json_text(obj), resp, &gen) != 0)
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
		app_etag(resp, gen);
		sbuf_addf(&resp->head, "Location: subscriptions/%s\r\n", id);
		app_set_json(resp, 201, o);
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
	const struct kind_info *sk = &kinds[K_SUBSCRIPTION];
	json_object *patch = NULL, *obj = NULL, *hashes;
	char key[CRYPTO_TOKEN_LEN] = "", h[CRYPTO_HEX_LEN], *json = NULL;
	int64_t changed = 0, gen;
	int began = 0, r;

	if (which < 0) {
		patch = app_parse_body(req, resp, MANAGE_MAX_OBJECT, json_type_object);
		if (!patch)
			return;
		json_object_object_foreach(patch, k, v) {
			(void)v;
			if (!strcmp(k, "id") || !strcmp(k, "keys_sha256")) {
				app_error_at(resp, k, "cannot be changed (keys: POST .../regenerate)");
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
	if (write_object(app, "subscription", id, obj, app_json_text(obj), resp, &gen) != 0)
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
		app_etag(resp, gen);
		app_set_json(resp, 200, o);
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
	json_object *obj = app_parse_body(req, resp, MANAGE_MAX_OBJECT, json_type_object), *apis, *gwm;
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
			app_error_at(resp, key, "unknown member (a gateway is {\"apis\", \"gateway\"})");
			goto out;
		}
	}
	if (!json_object_object_get_ex(obj, "apis", &apis) ||
	    !(json_object_is_type(apis, json_type_array) ||
	      (json_object_is_type(apis, json_type_string) &&
	       !strcmp(json_object_get_string(apis), "*")))) {
		app_error_at(resp, "apis", "required: an array of API ids, or \"*\" for all");
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
				app_error_at(resp, path, "must be an API id");
				goto out;
			}
			r = store_get(app->st, "api", json_object_get_string(a), &aj, NULL);
			free(aj);
			if (r != 0) {
				if (r < 0)
					app_error(resp, 500, "the database cannot be read");
				else
					app_error_at(resp, path, "unknown API '%s'",
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
		r2 = model_validate(app->st, "gateway", id, app_json_text(gwm), &errors, err, sizeof(err));
		if (r2 == 1) {
			app_error_with(resp, 400, "the gateway object is not valid", errors);
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
	    store_put(app->st, "gateway", id, app_json_text(obj), gen) != 0 ||
	    store_set_refs(app->st, from, (const char *const *)refs, n_refs) != 0 ||
	    store_commit(app->st) != 0) {
		app_error(resp, 500, "the database cannot be written");
		goto out;
	}
	began = 0;
	answer_stored(app, &kinds[K_GATEWAY], id, obj, r == 1 ? 201 : 200, gen, resp);
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

		obj = app_parse_body(req, resp, MANAGE_MAX_HEARTBEAT, json_type_object);
		if (!obj)
			return;
		e = jget_str(obj, "expires");
		if (json_object_object_get_ex(obj, "expires", NULL) &&
		    (!e || products_parse_time(e, &expires) != 0)) {
			app_error_at(resp, "expires", "must be an RFC 3339 time");
			goto out;
		}
		if (expires <= util_now()) {
			app_error_at(resp, "expires", "must be in the future");
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
	app_set_json(resp, 201, o);
	json_object_put(o);
out:
	OPENSSL_cleanse(token, sizeof(token));
	free(json);
	json_object_put(obj);
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
		if (app_query_param(query, names[i], bufs[i], 128) && bufs[i][0])
			*dst[i] = bufs[i];
	if (app_query_param(query, "from", t, sizeof(t)) && products_parse_time(t, &f->from) != 0) {
		app_error_at(resp, "from", "must be an RFC 3339 time");
		return -1;
	}
	if (app_query_param(query, "to", t, sizeof(t)) && products_parse_time(t, &f->to) != 0) {
		app_error_at(resp, "to", "must be an RFC 3339 time");
		return -1;
	}
	if (app_query_param(query, "group_by", bufs[4], 128)) {
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
				app_error_at(resp, "group_by", "'%.*s' is not one of gateway, api, "
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
	app_set_json(resp, 200, o);
	json_object_put(o);
}

void admin_handle(struct mapp *app, const struct mreq *req, struct mresp *resp, char **seg,
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
		app_error_at(resp, "$", "'%.80s' is not an id ([A-Za-z0-9._-]{1,80})", seg[1]);
		return;
	}
	if (n == 3) {
		char which[32] = "";

		if (!strcmp(k->kind, "gateway") && !strcmp(seg[2], "tokens") && !strcmp(m, "POST"))
			do_gateway_token(app, seg[1], req, resp);
		else if (!strcmp(k->kind, "gateway") && !strcmp(seg[2], "configuration") &&
			 !strcmp(m, "GET"))
			face_send_document(app, seg[1], req, resp);
		else if (!strcmp(k->kind, "subscription") && !strcmp(seg[2], "regenerate") &&
			 !strcmp(m, "POST")) {
			app_query_param(req->query, "key", which, sizeof(which));
			if (strcmp(which, "primary") && strcmp(which, "secondary"))
				app_error_at(resp, "key", "must be 'primary' or 'secondary'");
			else
				do_sub_change(app, seg[1], req, resp, which[0] == 's');
		} else
			app_error(resp, 404, "no such resource");
		return;
	}
	if (!strcmp(m, "GET"))
		do_get(app, k, seg[1], req, resp);
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

