/*
 * gateway — the compiled configuration: what one configuration document
 * (shared/spec/config-v1.md, format 1) becomes once it is parsed, validated and
 * compiled. Both binaries load documents through this one interface, so the agent
 * never installs a document that the app would refuse.
 *
 *   struct cfg_errors errs = CFG_ERRORS_INIT;
 *   struct gateway *gw = gw_load_file(path, &errs);
 *   if (!gw) { for each errs.msg[i]: print; }
 *   cfg_errors_release(&errs);
 *   ... route_match(gw, ...) ...
 *   gw_free(gw);
 *
 * Ownership: a gateway owns every string and array reachable from it; it is
 * immutable once returned (a reload builds a new one and swaps the pointer).
 * Named values ({{name}}) are already substituted in every string. Pointers
 * between parts (api->backend) point inside the same gateway.
 *
 * Errors: the loaders return NULL and append one message per problem to errs,
 * each "JSON.path: what is wrong" (e.g. "apis[2].operations[0].method: 'FETCH' is
 * not an HTTP method", map keys in brackets: "backends[\"weather\"].url: ..."). A
 * message never contains the value of a secret named value.
 */
#ifndef HOSTGATE_GATEWAY_H
#define HOSTGATE_GATEWAY_H

#include <stddef.h>
#include <stdint.h>

#define GW_MAX_DOCUMENT_BYTES (64u * 1024 * 1024)
#define GW_MAX_JSON_DEPTH 64

/* How long a client may take (config-v1.md, gateway; docs/configuration.md
 * says why these values). A request body must arrive within
 * GW_DEFAULT_CLIENT_BODY_TIMEOUT_MS plus one second for every
 * GW_DEFAULT_CLIENT_BODY_MIN_RATE bytes received, as Apache's mod_reqtimeout
 * does; no single read or write may wait longer than the idle timeout; no
 * request may last longer than the request timeout. The front applies them
 * even before a document is loaded, so they live here. */
#define GW_DEFAULT_CLIENT_REQUEST_TIMEOUT_MS 120000
#define GW_DEFAULT_CLIENT_IDLE_TIMEOUT_MS 10000
#define GW_DEFAULT_CLIENT_BODY_TIMEOUT_MS 1000
#define GW_DEFAULT_CLIENT_BODY_MIN_RATE 500

/* ---- errors ------------------------------------------------------------ */

#define CFG_ERRORS_MAX 100	/* more are counted in 'dropped', not kept */

struct cfg_errors {
	char **msg;		/* "path: message", owned */
	size_t n, cap;
	size_t dropped;
};
#define CFG_ERRORS_INIT { NULL, 0, 0, 0 }

/* Appends "path: message" (path a plain JSON path, "$" when NULL or empty;
 * the message a printf format). Never fails: past CFG_ERRORS_MAX, or when out of
 * memory, the message is only counted in dropped. */
void cfg_error(struct cfg_errors *errs, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Frees the messages; errs can be reused afterwards. */
void cfg_errors_release(struct cfg_errors *errs);

/* ---- the compiled gateway ---------------------------------------------- */

struct gw_kv {
	char *name;
	char *value;
	int secret;		/* value came from a secret named value: never log it */
};

struct gw_cidr {
	int family;		/* AF_INET or AF_INET6 */
	uint8_t addr[16];	/* network address, host bits zero; IPv4 in addr[0..3] */
	int prefix;		/* 0..32 or 0..128 */
};

struct gw_tls {
	int verify;		/* default 1 */
	char *ca_file, *client_certificate, *client_key;	/* NULL when absent */
};

/* One member of a backend pool (config-v1.md, Backends). */
struct gw_pool_member {
	char *url;		/* normalised as gw_backend.url */
	uint32_t weight;	/* >= 1, default 1 */
	uint32_t priority;	/* 1 is best (tried first), default 1 */
};

struct gw_backend {
	char *id;
	/* http(s)://host[:port][/base], no trailing slash, no query. For a pool
	 * backend: the first member of the best priority (a fallback for code that
	 * does not know pools; the engine picks the member, pol_call.backend_url) */
	char *url;
	long timeout_ms;	/* default 30000 */
	long connect_timeout_ms;	/* default 5000 */
	struct gw_tls tls;
	char *basic_username, *basic_password;	/* NULL when no basic credentials */
	struct gw_kv *cred_headers;	/* added (replacing the client's) upstream */
	size_t n_cred_headers;
	struct gw_kv *cred_query;	/* appended to the upstream query string */
	size_t n_cred_query;
	/* added by the policy engine's loader parts (policy/products.c) */
	struct gw_pool_member *pool;	/* NULL/0: a plain url backend */
	size_t n_pool;
	uint32_t cb_failures;	/* 0: no circuit breaker */
	uint32_t cb_interval_s, cb_trip_s;
};

struct route_ops;		/* route.h: the compiled operation table of one API */
struct pol_scope;		/* policies.h: the four sections of one scope, as written */
struct pol_plan;		/* policies.h: one flattened pipeline (global..operation) */
struct gw_product;

struct gw_operation {
	char *id;
	char *method;		/* upper case, or "*" */
	char *url_template;	/* as written, e.g. "/forecast/{city}" */
	struct pol_scope *policies;	/* NULL: the member was absent */
	/* plans[0]: no product; plans[1 + k]: api->products[k]'s (policies.h) */
	struct pol_plan **plans;
};

struct gw_api {
	char *id;
	char *path;		/* as written, without leading or trailing '/'; "" allowed */
	char **hostnames;	/* lower case, without port */
	size_t n_hostnames;
	const struct gw_backend *backend;
	int subscription_required;	/* default 1 */
	char *subscription_key_header;	/* default "Ocp-Apim-Subscription-Key" */
	char *subscription_key_query;	/* default "subscription-key" */
	struct gw_operation *operations;	/* NULL/0: everything is forwarded */
	size_t n_operations;
	struct route_ops *ops;	/* compiled from operations by route_build() */
	struct pol_scope *policies;	/* NULL: the member was absent */
	/* the products that include this API, sorted by gw_product.index */
	const struct gw_product **products;
	size_t n_products;
	/* without operations: plans[0] no product, plans[1 + k] products[k]'s */
	struct pol_plan **plans;
};

/* A product (config-v1.md, Products and subscriptions). */
struct gw_product {
	char *id;
	size_t index;		/* position in gateway.products */
	const struct gw_api **apis;
	size_t n_apis;
	struct pol_scope *policies;
};

enum gw_scope_kind { GW_SCOPE_ALL, GW_SCOPE_API, GW_SCOPE_PRODUCT };

/* A subscription. keys are SHA-256 digests of the keys; never logged. */
struct gw_subscription {
	char *id;
	enum gw_scope_kind scope;
	const struct gw_api *api;		/* GW_SCOPE_API */
	const struct gw_product *product;	/* GW_SCOPE_PRODUCT */
	unsigned char (*keys)[32];
	size_t n_keys;
	int active;		/* state "active" (else "suspended") */
	int64_t expires;	/* unix seconds; 0: never */
};

struct gw_keytab;		/* products.c: key digest -> subscription */

struct route_table;		/* route.h */
struct gw_image;		/* image.h: the compiled image a gateway was opened from */

/* gateway.counters (config-v1.md, after the policies table): where rate
 * limits and quotas count. store GW_COUNTERS_LOCAL leaves every other member
 * empty. A redis target is either host/port or unix_path, never both. */
enum gw_counter_store { GW_COUNTERS_LOCAL = 0, GW_COUNTERS_REDIS = 1 };
enum gw_counter_failure { GW_ON_FAILURE_LOCAL = 0, GW_ON_FAILURE_ALLOW = 1, GW_ON_FAILURE_DENY = 2 };
#define GW_COUNTERS_PREFIX_MAX 64	/* bytes of "prefix" */
#define GW_COUNTERS_DEFAULT_TIMEOUT_MS 50
struct gw_counters {
	enum gw_counter_store store;
	char *host;		/* redis://HOST:PORT/DB; NULL with unix_path */
	int port;		/* default 6379 */
	int db;			/* default 0 */
	char *unix_path;	/* unix:/PATH; NULL with host */
	char *password;		/* NULL: no AUTH */
	int64_t timeout_ms;	/* 1..10000, default GW_COUNTERS_DEFAULT_TIMEOUT_MS */
	enum gw_counter_failure on_failure;
	char *prefix;		/* default "hostgate:" */
};

struct gateway {
	int64_t generation;
	/* gateway section */
	struct gw_cidr *trusted_proxies;
	size_t n_trusted_proxies;
	int64_t max_request_body_bytes;	/* default 10485760 */
	int forwarded_headers;	/* default 1 */
	char *health_path;	/* default "/status-0123456789abcdef" */
	char *metrics_path;	/* NULL: metrics off */
	struct gw_cidr *metrics_allow;
	size_t n_metrics_allow;
	int64_t client_request_timeout_ms;	/* whole request; GW_DEFAULT_CLIENT_* */
	int64_t client_idle_timeout_ms;	/* each client read and write */
	int64_t client_body_timeout_ms;	/* grace for the body... */
	int64_t client_body_min_rate;	/* ...plus 1 s per this many bytes received */
	struct gw_counters counters;
	/* collections */
	struct gw_kv *named_values;	/* kept for secret redaction; values substituted already */
	size_t n_named_values;
	struct gw_backend *backends;
	size_t n_backends;
	struct gw_api *apis;
	size_t n_apis;
	struct route_table *routes;	/* built from apis by route_build() */
	/* added by the policy engine's loader parts (products.c, policies.c) */
	struct gw_product *products;
	size_t n_products;
	struct gw_subscription *subscriptions;
	size_t n_subscriptions;
	struct gw_keytab *keytab;
	struct pol_scope *policies;	/* global scope; NULL when absent */
	/* A gateway opened from an image (image.h) holds only the gateway
	 * section; route_match() finds each API in the image and compiles it
	 * on first use into a gateway of its own, which shares this image. */
	struct gw_image *image;	/* NULL: compiled in memory from the document */
	int owns_image;		/* gw_free() releases the image */
	unsigned holds;		/* gw_hold()s not yet given back */
};

/* Parses, validates and compiles a document of len bytes (need not be
 * NUL-terminated). Returns the gateway, or NULL with errs filled. */
struct gateway *gw_load_buffer(const char *buf, size_t len, struct cfg_errors *errs);
/* Reads path (at most GW_MAX_DOCUMENT_BYTES) and loads it. Returns the gateway,
 * or NULL with errs filled (an unreadable file is one error with path "$"). */
struct gateway *gw_load_file(const char *path, struct cfg_errors *errs);
/* Frees everything; NULL is fine. Secret values are zeroed before freeing.
 * A gateway held (gw_hold) is only given back: the last gw_free frees it. */
void gw_free(struct gateway *gw);
/* One more gw_free before gw goes: a request holds the gateway it runs on,
 * so that a reload (or an image's cache) that drops it while the request
 * waits does not free it under the request (common/fiber.h). NULL is fine.
 * Returns gw. */
const struct gateway *gw_hold(const struct gateway *gw);

/* Finds a backend by id; NULL when absent. */
const struct gw_backend *gw_backend_find(const struct gateway *gw, const char *id);

#endif
