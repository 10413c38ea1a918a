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

#include "common/counter.h"
#include "policy/gateway.h"
#include "policy/jwt.h"
#include "policy/policies.h"
#include "policy/route.h"

#define POL_CONTINUE 0
#define POL_RESPOND 1

#define POL_MAX_HEADERS 256	/* per list; more is a 400 (request) or 502 */
#define POL_MAX_VALUE_BYTES 65536	/* one expanded value, URL or body template */

struct pol_header {
	char *name, *value;	/* owned */
};

struct pol_headers {
	struct pol_header *v;
	size_t n, cap;
};

/* The retry policy's parameters, for the app (retry: count 0 = none). */
struct pol_retry {
	unsigned conditions;	/* POL_RETRY_* (policies.h) */
	const int *statuses;	/* also retried; borrowed from the gateway */
	size_t n_statuses;
	uint32_t count, interval, max_interval, delta;
	int first_fast_retry;
};

struct pol_call {
	/* inputs, borrowed */
	const struct gateway *gw;
	const struct route_match *route;
	const char *client_ip;
	const char *request_id;
	int64_t now;			/* unix seconds */
	struct counter_store *counters;

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

	/* private to the engine */
	struct {
		const struct pol_plan *plan;
		struct counter_seat seats[POL_MAX_SEATS];
		size_t n_seats;
		char *bw_keys[POL_MAX_BANDWIDTH];
		uint32_t bw_period[POL_MAX_BANDWIDTH];
		size_t n_bw;
		struct pol_headers extra;	/* added to whatever response goes out */
		char *scratch;			/* a decoded value for the resolver */
		int in_error;
		int finished;
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
 * POL_RESPOND (send c->body instead). */
int engine_outbound(struct pol_call *c);
/* Makes the error answer status/message (the gateway's JSON error form) and
 * runs the on-error section. For failures outside the engine (backend
 * unreachable 502, timeout 504). Always returns POL_RESPOND. */
int engine_on_error(struct pol_call *c, int status, const char *message);
/* Releases concurrency seats, records the circuit-breaker outcome of
 * c->backend_url (c->backend_failed), adds bandwidth (c->bytes_out). Once;
 * later calls do nothing. */
void engine_finish(struct pol_call *c);
/* Frees what c owns (after engine_finish). */
void engine_call_release(struct pol_call *c);

/* SHA-256 of key[0..len) as 32 bytes (OpenSSL EVP). Returns 0 or -1. */
int engine_sha256(const char *key, size_t len, unsigned char out[32]);

#endif
