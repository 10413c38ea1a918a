/*
 * products — products, subscriptions, backend pools and circuit breakers as
 * the loader builds them (config-v1.md, Products and subscriptions;
 * Backends), and the subscription key table the engine looks keys up in.
 *
 *   loader (loader.h): products_parse(), products_parse_subscriptions(),
 *                      products_parse_pool(), products_parse_breaker(),
 *                      then products_build_keytab() after pol_compile()
 *   engine:            sub = products_find_key(gw, sha256_of_presented_key, &buf)
 *   gw_free:           products_free() after pol_free_gateway()
 *
 * The key table maps a key's SHA-256 digest to its subscription: an open
 * addressing hash table on the digest's first bytes, built once at load, so a
 * look-up costs the same with 10 or 100,000 subscriptions. Every candidate is
 * compared over all 32 bytes with CRYPTO_memcmp (constant time). The same
 * digest in two subscriptions is a load error.
 *
 * Ownership: all of it belongs to the gateway. Errors: parse functions report
 * at the loader's path; products_find_key returns NULL when nothing matches.
 */
#ifndef HOSTGATE_PRODUCTS_H
#define HOSTGATE_PRODUCTS_H

#include <stddef.h>
#include <stdint.h>

#include "policy/gateway.h"

#define PRODUCTS_MAX_KEYS 16	/* keys_sha256 per subscription */

struct loader;

struct json_object;

/* The top-level "products" array (current path "products"). */
void products_parse(struct loader *ld, struct json_object *v);
/* The top-level "subscriptions" array; after products_parse(). */
void products_parse_subscriptions(struct loader *ld, struct json_object *v);
/* A backend's "pool" and "circuit_breaker" values (path at the member). */
void products_parse_pool(struct loader *ld, struct json_object *v, struct gw_backend *be);
void products_parse_breaker(struct loader *ld, struct json_object *v, struct gw_backend *be);
/* Builds gw->keytab from the subscriptions. Returns 0 or -1 (reported). */
int products_build_keytab(struct loader *ld);
/* Frees products, subscriptions, the key table and backend pools. */
void products_free(struct gateway *gw);

/* The subscription whose key has this SHA-256 digest, or NULL. For an API
 * compiled from an image the answer is built in *buf (the caller's: each
 * request its own); otherwise it is the gateway's own. */
const struct gw_subscription *products_find_key(const struct gateway *gw,
						const unsigned char digest[32],
						struct gw_subscription *buf);
/* Whether sub's scope includes api (all; api:ID; product:ID that lists it). */
int products_sub_covers(const struct gw_subscription *sub, const struct gw_api *api);
/* Parses an RFC 3339 date-time ("2027-01-01T00:00:00Z", "...+02:00",
 * fractions ignored) into unix seconds. Returns 0 or -1. */
int products_parse_time(const char *s, int64_t *out);

#endif
