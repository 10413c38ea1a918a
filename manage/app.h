/*
 * app — hostgate-manage's requests, whatever front brought them (main.c:
 * FastCGI under a process manager, --listen, or CGI). Three faces under one
 * mount (shared/spec/admin-api.md):
 *   /gateways/{g}/configuration|heartbeat|metrics   the agents (face.c)
 *   /admin/v1/…                                     the admin API (admin.c)
 *   /ui/…                                           the dashboard (ui.c)
 * The faces read and write only through the store (store.h) and build
 * documents only through the model (model.h).
 *
 *   struct mapp app;  app_open(&app, err, sizeof(err));   once per process
 *   struct mresp resp = MRESP_INIT;
 *   app_handle(&app, &req, &resp);   then write resp.head and resp.body
 *   mresp_release(&resp);
 *   app_close(&app);
 *
 * The front fills struct mreq with borrowed strings (the path below the
 * mount, the query string without '?', the headers the app reads) and the
 * body, read up to MANAGE_MAX_BODY (body_too_big when the client sent
 * more: the answer is 413). Every answer is whole in resp: status, extra
 * header lines ("Name: value\r\n"), body.
 *
 * Environment (read by app_open): HOSTGATE_MANAGE_DB (default
 * /var/lib/hostgate-manage/manage.db), HOSTGATE_MANAGE_SIGNING_KEY (an
 * Ed25519 private key: every document is signed), HOSTGATE_MANAGE_RETENTION_DAYS
 * (default 7).
 */
#ifndef HOSTGATE_MANAGE_APP_H
#define HOSTGATE_MANAGE_APP_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "common/jsonget.h"
#include "manage/store.h"
#include "manage/util.h"

#define MANAGE_DEFAULT_DB "/var/lib/hostgate-manage/manage.db"
#define MANAGE_MAX_BODY (16u * 1024 * 1024 + 65536)	/* a full metrics buffer */
#define MANAGE_MAX_OBJECT (4u * 1024 * 1024)		/* one admin API body */
#define MANAGE_MAX_HEARTBEAT (64u * 1024)

struct evp_pkey_st;

struct mapp {
	struct store *st;
	struct evp_pkey_st *key;	/* NULL: documents are not signed */
	int retention_days;
	int https;			/* set per request by the front */
};

struct mreq {
	const char *method, *path, *query;
	const char *authorization, *if_match, *if_none_match, *cookie, *content_type;
	const char *origin, *host;
	const char *mount;		/* the URL prefix the app is mounted at, "" for none */
	int https;
	const char *body;		/* NUL-terminated */
	size_t body_len;
	int body_too_big;
};

struct mresp {
	int status;
	struct sbuf head;		/* extra header lines */
	struct sbuf body;
	const char *content_type;	/* default application/json */
};
#define MRESP_INIT { 0, SBUF_INIT(65536), SBUF_INIT(64u * 1024 * 1024), NULL }

/* 0, or -1 with err set (the database cannot be opened, the key read). */
int app_open(struct mapp *app, char *err, size_t errlen);
void app_close(struct mapp *app);
void app_handle(struct mapp *app, const struct mreq *req, struct mresp *resp);
void mresp_release(struct mresp *resp);
const char *app_reason(int status);

/* ---- for the faces (admin.c, face.c, ui.c) ---- */


/* Answers: the gateway's JSON error shape {"statusCode", "message",
 * "requestId"}, with "errors" (taken) when not NULL; app_error_at: one
 * validation error at a path relative to the body. Each replaces whatever
 * the answer held. */
void app_error(struct mresp *resp, int status, const char *message);
void app_error_with(struct mresp *resp, int status, const char *message,
		    struct json_object *errors);
void app_error_at(struct mresp *resp, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* A JSON answer (o stays the caller's). */
void app_set_json(struct mresp *resp, int status, struct json_object *o);
/* "ETag: \"changed\"" */
void app_etag(struct mresp *resp, int64_t changed);
/* A short random id for an answer into out. */
void app_request_id(char *out, size_t n);

/* The body as JSON of type want (json_type_object…), at most cap bytes:
 * a new object, or NULL with the answer set (400, 413). Depth-capped,
 * strict, nothing after the value but white space. */
struct json_object *app_parse_body(const struct mreq *req, struct mresp *resp, size_t cap,
				   enum json_type want);
/* A query parameter, percent-decoded into out: 1 found, 0 not. */
int app_query_param(const char *q, const char *name, char *out, size_t n);
/* The compact text of o (json-c's buffer); a string member: jget_str
 * (common/jsonget.h). */
const char *app_json_text(struct json_object *o);
/* "SCHEME TOKEN" in an Authorization header: 0 with *token, or -1. */
int app_token_of(const char *header, const char *scheme, const char **token);
/* The q-quantile (0..1) of a histogram with STORE_HIST_BUCKETS buckets,
 * as the upper bound of the bucket it falls in (ms), 0 when empty. */
int64_t app_percentile(const int64_t *hist, double q);
/* 0 when token (the whole secret) is a valid admin token. */
int app_admin_token_ok(struct mapp *app, const char *token);
/* A gateway's status as GET /admin/v1/gateways/{id} has it: a new object
 * holding "generation", "last_heartbeat" and "status", or NULL. */
struct json_object *app_gateway_state(struct mapp *app, const char *id, int64_t generation);

#endif
