/*
 * app — the request's way to its face (admin.c, face.c, ui.c), the answers'
 * shape, and the helpers the faces share (app.h).
 */
#include "manage/app.h"

#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "manage/admin.h"
#include "manage/crypto.h"
#include "manage/face.h"
#include "manage/ui.h"
#include "policy/gateway.h"

static const int hist_bounds[STORE_HIST_BUCKETS - 1] = STORE_HIST_BOUNDS_MS;

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

void app_request_id(char *out, size_t n)
{
	char t[CRYPTO_TOKEN_LEN];

	if (crypto_token(t) != 0)
		snprintf(t, sizeof(t), "%ld", (long)getpid());
	snprintf(out, n, "%.16s", t);
}

void app_set_json(struct mresp *resp, int status, json_object *o)
{
	resp->status = status;
	sbuf_release(&resp->body);
	sbuf_adds(&resp->body, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							      JSON_C_TO_STRING_NOSLASHESCAPE));
	sbuf_add(&resp->body, "\n", 1);
}

/* The gateway's JSON error shape, plus "errors" when given (taken). */
void app_error_with(struct mresp *resp, int status, const char *message, json_object *errors)
{
	json_object *o = json_object_new_object();
	char rid[32];

	app_request_id(rid, sizeof(rid));
	json_object_object_add(o, "statusCode", json_object_new_int(status));
	json_object_object_add(o, "message", json_object_new_string(message));
	json_object_object_add(o, "requestId", json_object_new_string(rid));
	if (errors)
		json_object_object_add(o, "errors", errors);
	sbuf_release(&resp->head);
	app_set_json(resp, status, o);
	json_object_put(o);
}

void app_error(struct mresp *resp, int status, const char *message)
{
	app_error_with(resp, status, message, NULL);
}

void app_error_at(struct mresp *resp, const char *path, const char *fmt, ...)
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
	app_error_with(resp, 400, "the request is not valid", arr);
}

void app_etag(struct mresp *resp, int64_t changed)
{
	sbuf_addf(&resp->head, "ETag: \"%lld\"\r\n", (long long)changed);
}

/* ---- request pieces ---- */

/* Parses a JSON body: a new object, or NULL with the answer set. */
json_object *app_parse_body(const struct mreq *req, struct mresp *resp, size_t cap,
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
		app_error_at(resp, "$", "must be a JSON %s", want == json_type_object ? "object" :
			 "array");
		return NULL;
	}
	return o;
}

/* The value of name in a query string, decoded into out: 1 found, 0 not. */
int app_query_param(const char *q, const char *name, char *out, size_t n)
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

const char *app_json_text(json_object *o)
{
	return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
					      JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* ---- authentication ---- */

int app_token_of(const char *header, const char *scheme, const char **token)
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
		face_handle(app, req, resp, seg[1], seg[2]);
		return;
	}
	if (n >= 2 && n <= 5 && !strcmp(seg[0], "admin") && !strcmp(seg[1], "v1")) {
		admin_handle(app, req, resp, seg + 2, n - 2);
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

