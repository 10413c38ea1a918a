/*
 * engine — runs the policies of one API call (config-v1.md, Products and
 * subscriptions, Policies, Errors). Pure except for the shared counter store
 * it is handed (common/counter.h): no sockets, no FastCGI, no curl. The data
 * plane (fcgi-app/) builds a pol_call from the request and drives it:
 *
 *   struct pol_call c;
 *   engine_call_init(&c, gw, &route_match, client_ip, request_id, time(NULL), counters);
 *   c.method = strdup(method); c.path = strdup(rest below the API, raw);
 *   c.query = strdup(raw query without '?'); pol_headers_add(&c.req_headers, ...) per
 *   client header (hop-by-hop ones removed);
 *   if (engine_inbound(&c) == POL_RESPOND) {
 *           send c.status, c.reason, c.resp_headers, c.body[0..c.body_len)
 *   } else {
 *           forward c.method to c.backend_url + c.path + "?" + c.query with
 *           c.req_headers, c.timeout_ms, c.follow_redirects, c.retry (the
 *           backend's credentials and X-Forwarded-* are the app's, as before);
 *           on a failure before the response's headers went out:
 *                   c.backend_failed = 1; engine_on_error(&c, 502 or 504, "...");
 *                   send c's response
 *           else:   c.status = backend status; c.resp_headers = backend headers
 *                   (hop-by-hop removed); if (engine_outbound(&c) == POL_RESPOND)
 *                   send c's response (drop the backend's body), else send c.status,
 *                   c.reason (NULL: standard phrase), c.resp_headers and stream
 *                   the backend's body; c.backend_failed = status >= 500
 *   }
 *   c.bytes_out = body bytes sent (bandwidth quotas);
 *   engine_finish(&c);          always, once: seats, breakers, bandwidth
 *   engine_call_release(&c);    frees every string c owns
 *
 * Decisions:
 *  - a policy that refuses (401, 403, 429, 400...) or fails makes an error
 *    response {"statusCode": N, "message": "...", "requestId": "..."} and runs
 *    the on-error section; engine_inbound then returns POL_RESPOND with the
 *    final answer. return-response, mock-response and a CORS preflight answer
 *    directly (no on-error, no outbound), as in APIM;
 *  - counters == NULL while a plan has a rate limit, quota or
 *    limit-concurrency: the request fails closed with 500 (a gateway must not
 *    silently stop limiting); a full counter table fails open (counter.h);
 *  - ${request.*} values read the request as the policies before have left it
 *    (the subscription key is already removed); request.path is c->path;
 *  - counter keys are "<kind>:<scope>:<section>#<position>:<value>" (policies.c):
 *    editing a section's order starts its counters afresh.
 *
 * Ownership: c owns method, path, query, reason, body and both header lists
 * (all heap, freed by engine_call_release); gw, route, client_ip, request_id
 * and counters are borrowed and must outlive c. backend, backend_url,
 * subscription and product point into gw.
 *
 * Errors: engine_* return POL_CONTINUE or POL_RESPOND; they never fail
 * otherwise (out of memory becomes a 500 response).
 */
#ifndef HOSTGATE_ENGINE_H
#define HOSTGATE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "common/cache.h"
#include "common/counter.h"
#include "policy/gateway.h"
#include "policy/jwt.h"
#include "policy/policies.h"
#include "policy/route.h"

#define POL_CONTINUE 0
#define POL_RESPOND 1

#define POL_MAX_HEADERS 256	/* per list; more is a 400 (request) or 502 */
#define POL_MAX_VALUE_BYTES 65536	/* one expanded value, URL or body template */
#define POL_MAX_VARS 64			/* variables of one request (set-variable, send-request...) */
#define POL_MAX_VAR_BYTES (1u << 20)	/* their values' bytes, all together */
#define POL_MAX_RESP_BODY (10u << 20)	/* a backend body buffered for the outbound section */
#define POL_MAX_SIDE_BODY (1u << 20)	/* a send-request answer's body */

struct pol_header {
	char *name, *value;	/* owned by the list (its blocks): never freed alone */
};

/* A list's strings live in blocks of its own (engine.c), not one malloc per
 * string: a request's headers cost a few allocations instead of two per
 * header. pol_headers_del drops entries, their bytes stay until release.
 * Zeroed = empty; moving a list by struct copy moves its blocks too. */
struct pol_hblock;

struct pol_headers {
	struct pol_header *v;
	size_t n, cap;
	struct pol_hblock *blocks;	/* newest first */
};

/* The retry policy's parameters, for the app (retry: count 0 = none). */
struct pol_retry {
	unsigned conditions;	/* POL_RETRY_* (policies.h) */
	const int *statuses;	/* also retried; borrowed from the gateway */
	size_t n_statuses;
	uint32_t count, interval, max_interval, delta;
	int first_fast_retry;
};

/* A side call (send-request): to backend, never elsewhere. */
struct pol_side_request {
	const struct gw_backend *backend;	/* its URL, credentials and TLS settings */
	const char *method;
	const char *target;		/* raw path (and "?query") below the backend's URL */
	const struct pol_headers *headers;
	const char *body;		/* NULL: none */
	size_t body_len;
	long timeout_ms;		/* the app also holds it to the request's deadline */
};

/* Its answer. status 0: no answer (error says why, timed_out when it was
 * the time); the body is at most POL_MAX_SIDE_BODY (more is an error). */
struct pol_side_response {
	int status;
	struct pol_headers headers;	/* owned; hop-by-hop ones removed */
	char *body;			/* owned, NUL-terminated; NULL: empty */
	size_t body_len;
	const char *error;		/* static */
	int timed_out;
};

/* What the app does for the engine; set c->ops and c->ops_ctx after
 * engine_call_init. A NULL ops (or member) makes what needs it a 500. */
struct pol_app_ops {
	/* Reads the client's whole body into a new *body (NUL-terminated) and
	 * *len; from then on the app sends c->req_body upstream instead of
	 * streaming. Returns 0, or the HTTP status to fail with (413 over
	 * gateway.max_request_body_bytes, 408 client too slow, 400). */
	int (*read_body)(void *ctx, char **body, size_t *len);
	/* Makes a side call; fills *rs (released with pol_side_response_release).
	 * Returns 0 when an answer came (any status), -1 otherwise (rs->error). */
	int (*side_call)(void *ctx, const struct pol_side_request *rq, struct pol_side_response *rs);
};

struct pol_var {
	char *name, *value;	/* owned; value NUL-terminated, may hold NULs (len) */
	size_t len;
};

struct pol_call {
	/* inputs, borrowed */
	const struct gateway *gw;
	const struct route_match *route;
	const char *client_ip;
	const char *request_id;
	int64_t now;			/* unix seconds */
	struct counter_store *counters;
	/* the cache policies' store (common/cache.h), set by the app after
	 * engine_call_init; NULL: every cache policy acts as a miss */
	struct cache_store *cache;

	/* the upstream request: the client's, changed by inbound/backend policies */
	char *method;
	char *path;			/* raw, below the API ("" or "/..."), no query */
	char *query;			/* raw, without '?'; "" when none */
	struct pol_headers req_headers;
	const struct gw_backend *backend;	/* api->backend or set-backend-service */
	const char *backend_url;	/* chosen base URL (pool member); "" never */
	long timeout_ms;		/* backend's, or forward-request's */
	int follow_redirects;		/* forward-request; default 0 */
	struct pol_retry retry;

	/* identity */
	const struct gw_subscription *subscription;	/* NULL: none presented */
	struct gw_subscription sub_own;	/* an image's answer is built here */
	const struct gw_product *product;	/* the subscription's product, or NULL */
	struct jwt_result jwt;		/* the last validate-jwt that passed */

	/* the response: the backend's (outbound) or one a policy made */
	int status;
	char *reason;			/* NULL: the standard phrase */
	struct pol_headers resp_headers;
	char *body;
	size_t body_len;
	const char *error;		/* static reason for the access log, or NULL */

	/* set by the app before engine_finish */
	int backend_failed;		/* connect error, timeout or 5xx */
	uint64_t bytes_out;		/* response body bytes sent */

	/* the app's services (see struct pol_app_ops) */
	const struct pol_app_ops *ops;
	void *ops_ctx;
	/* the request body once read (pol_request_body): the app sends it, as
	 * policies left it, instead of streaming the client's */
	char *req_body;
	size_t req_body_len;
	int req_body_read;
	/* set by the app before engine_outbound when engine_outbound_needs_body:
	 * c->body/body_len hold the backend's whole body, and whatever the outbound
	 * section leaves there is the answer's body (POL_CONTINUE included) */
	int resp_body_buffered;

	/* private to the engine */
	struct {
		const struct pol_plan *plan;
		struct counter_seat seats[POL_MAX_SEATS];
		size_t n_seats;
		char *bw_keys[POL_MAX_BANDWIDTH];
		uint32_t bw_period[POL_MAX_BANDWIDTH];
		size_t n_bw;
		struct pol_headers extra;	/* added to whatever response goes out */
		char **scratch;			/* decoded values the resolver lent, until */
		size_t n_scratch, cap_scratch;	/* the evaluation that asked ends */
		char status_text[16];		/* ${response.status} */
		const char *expr_why;		/* the last expression's failure, static */
		int body_replaced;		/* set-body in outbound: send c->body */
		struct pol_var vars[POL_MAX_VARS];
		size_t n_vars, var_bytes;
		int in_error;
		int finished;
		int breaker_done;	/* engine_backend_done ran */
	} priv;
};

/* ---- header lists ---------------------------------------------------------- */

/* Appends a copy of name: value. Returns 0 or -1 (out of memory, or full). */
int pol_headers_add(struct pol_headers *h, const char *name, const char *value);
/* The first value of name (case-insensitive), or NULL. */
const char *pol_headers_get(const struct pol_headers *h, const char *name);
/* Removes every name (case-insensitive). Returns how many were removed. */
size_t pol_headers_del(struct pol_headers *h, const char *name);
/* Frees every entry; h can be reused. */
void pol_headers_release(struct pol_headers *h);

/* ---- the call ---------------------------------------------------------------- */

/* Zeroes c and sets the inputs; c->status 200, timeout_ms from the API's
 * backend, path and query are set by the caller. */
void engine_call_init(struct pol_call *c, const struct gateway *gw,
		      const struct route_match *route, const char *client_ip,
		      const char *request_id, int64_t now, struct counter_store *counters);
/* Subscription check, inbound section, backend section, then the backend
 * URL (pool pick, circuit breakers). Returns POL_CONTINUE (forward) or
 * POL_RESPOND (c->status, reason, resp_headers, body are the answer). */
int engine_inbound(struct pol_call *c);
/* Outbound section on c->status and c->resp_headers (the backend's). Returns
 * POL_CONTINUE (send the backend's body with c's status and headers) or
 * POL_RESPOND (send c->body instead: a policy answered, or set-body replaced
 * the backend's body). */
int engine_outbound(struct pol_call *c);
/* Makes the error answer status/message (the gateway's JSON error form) and
 * runs the on-error section. For failures outside the engine (backend
 * unreachable 502, timeout 504). message (static) is also c->error, the
 * access log's reason, unless one is set. Always returns POL_RESPOND. */
int engine_on_error(struct pol_call *c, int status, const char *message);
/* Records the circuit-breaker outcome of c->backend_url (c->backend_failed)
 * now, once: the forwarder calls it as soon as the backend's part is over,
 * before the answer goes out, so that a client that has the answer finds the
 * breaker already counting it (a CGI process writes straight to the client). */
void engine_backend_done(struct pol_call *c);
/* Releases concurrency seats, records the circuit-breaker outcome of
 * c->backend_url (c->backend_failed), adds bandwidth (c->bytes_out). Once;
 * later calls do nothing. */
void engine_finish(struct pol_call *c);
/* Frees what c owns (after engine_finish). */
void engine_call_release(struct pol_call *c);

/* Does the outbound section of c's plan read the backend's body (find-and-
 * replace, ${response.body}, cache-store)? Then the app buffers it, up to
 * POL_MAX_RESP_BODY (502 past it), into c->body and sets resp_body_buffered. */
int engine_outbound_needs_body(const struct pol_call *c);

/* ---- variables (set-variable, send-request, cache-lookup-value) ------------- */

/* Sets variable name to value[0..len) (a copy). Returns 0, or -1: more than
 * POL_MAX_VARS variables or POL_MAX_VAR_BYTES bytes, or out of memory. */
int pol_var_set(struct pol_call *c, const char *name, const char *value, size_t len);
/* The value of name[0..name_len), or NULL when unset; *len its length. */
const char *pol_var_get(const struct pol_call *c, const char *name, size_t name_len,
			size_t *len);

/* Frees what rs holds. */
void pol_side_response_release(struct pol_side_response *rs);

/* SHA-256 of key[0..len) as 32 bytes (OpenSSL EVP). Returns 0 or -1. */
int engine_sha256(const char *key, size_t len, unsigned char out[32]);

#endif
