/*
 * face — what the gateways' agents talk to (management-protocol.md): their
 * documents (built once per generation from what each gateway serves,
 * signed, cached), heartbeats and metrics, each behind the gateway's own
 * token.
 */
#include "manage/face.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "manage/app.h"
#include "manage/crypto.h"
#include "manage/model.h"
#include "policy/products.h"

#define MAX_SERIES 100000		/* per metrics document */

static const int hist_bounds[STORE_HIST_BUCKETS - 1] = STORE_HIST_BOUNDS_MS;

static int gateway_auth(struct mapp *app, const struct mreq *req, struct mresp *resp,
			const char *g)
{
	char hash[CRYPTO_HEX_LEN], *owner = NULL;
	const char *token;
	int64_t expires = 0;
	int r, rc = -1;

	if (app_token_of(req->authorization, "GatewayKey", &token) != 0 || strlen(token) > 256) {
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

int face_document(struct mapp *app, const char *g, char **body, size_t *len, char **etag,
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

void face_send_document(struct mapp *app, const char *g, const struct mreq *req,
			  struct mresp *resp)
{
	char *body = NULL, *etag = NULL, *sig = NULL;
	size_t len = 0;
	int64_t gen = 0;
	int r = face_document(app, g, &body, &len, &etag, &sig, &gen);

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
	json_object *obj = app_parse_body(req, resp, MANAGE_MAX_HEARTBEAT, json_type_object);

	if (!obj)
		return;
	if (store_heartbeat_put(app->st, g, app_json_text(obj), util_now()) != 0)
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
	json_object *obj = app_parse_body(req, resp, MANAGE_MAX_BODY, json_type_object), *series;
	const char *instance, *from, *why;
	int64_t t, now = util_now();
	int began = 0, r;
	char path[48];

	if (!obj)
		return;
	instance = jget_str(obj, "instance");
	from = jget_str(obj, "from");
	if (!instance || !*instance || strlen(instance) > 128) {
		app_error_at(resp, "instance", "required: the agent's instance id");
		goto out;
	}
	if (!from || products_parse_time(from, &t) != 0) {
		app_error_at(resp, "from", "required: an RFC 3339 time");
		goto out;
	}
	if (!json_object_object_get_ex(obj, "series", &series) ||
	    !json_object_is_type(series, json_type_array) ||
	    json_object_array_length(series) > MAX_SERIES) {
		app_error_at(resp, "series", "required: an array (at most %d)", MAX_SERIES);
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
			app_error_at(resp, path, "%s", why);
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


void face_handle(struct mapp *app, const struct mreq *req, struct mresp *resp, const char *g,
		 const char *leaf)
{
	if (gateway_auth(app, req, resp, g) != 0)
		return;
	if (!strcmp(leaf, "configuration") &&
	    (!strcmp(req->method, "GET") || !strcmp(req->method, "HEAD")))
		face_send_document(app, g, req, resp);
	else if (!strcmp(leaf, "heartbeat") && !strcmp(req->method, "POST"))
		do_heartbeat(app, g, req, resp);
	else if (!strcmp(leaf, "metrics") && !strcmp(req->method, "POST"))
		do_metrics_in(app, g, req, resp);
	else
		app_error(resp, 404, "no such resource");
}
