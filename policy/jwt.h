/*
 * jwt — validates a compact JWS carrying JWT claims (RFC 7515, 7519) for the
 * validate-jwt policy: parse, pick keys, check the signature, then the claims.
 * Pure: no I/O, no clock (the caller passes the time).
 *
 *   struct jwt_rules rules = { .keys = ks, .now = time(NULL), .clock_skew = 0,
 *                              .require_expiration = 1, .issuers = ..., ... };
 *   struct jwt_result res;
 *   if (jwt_validate(token, token_len, &rules, &res) != JWT_OK)
 *           answer 401 (log res.reason: it never holds the token)
 *   else
 *           v = jwt_claim_text(&res, "role", &len);     for ${jwt.claim.role}
 *   jwt_result_release(&res);
 *
 * Parsing: at most JWT_MAX_TOKEN_BYTES; exactly three base64url parts (strict,
 * no padding); header and payload are JSON objects (json-c, JSON_TOKENER_STRICT,
 * depth at most JWT_MAX_JSON_DEPTH, no NUL byte, no trailing bytes) with no
 * member name repeated in the same object. The header's "alg" must name a
 * supported algorithm ("none" never is); a "crit" header is refused (we
 * understand no extension); "jwk", "jku", "x5u" and "x5c" in the header are
 * ignored (keys come only from the configuration).
 *
 * Keys: only keys that fit "alg" (jose_key_fits: kind, curve, the key's own
 * "alg") are tried. When the token has a "kid", keys with that kid are tried,
 * and keys without a kid when no key has it; keys with another kid never are.
 * Without a "kid", every key that fits is tried.
 *
 * Claims, after the signature verified: "exp" and "nbf" are numbers (seconds,
 * fractions allowed); expired when now >= exp + clock_skew, not yet valid when
 * now + clock_skew < nbf; "exp" must be present when require_expiration. With
 * issuers, "iss" must equal one (exact bytes). With audiences, "aud" (a string or
 * an array of strings) must hold one of them. Each required claim must be
 * present; its value is a string, or an array of strings (numbers and booleans
 * compare as their JSON text); with separator, a string value is first split on
 * it ("scope": "a b"); "all" needs every listed value among the claim's values,
 * "any" at least one; with no values listed, presence is enough.
 *
 * Ownership: rules and everything they point to are borrowed. On JWT_OK,
 * res->claims holds the payload object (owned by res); jwt_result_release()
 * frees it. On failure res->claims is NULL: unverified claims are never shown.
 *
 * Errors: the status says which check failed (the engine answers 401 to all);
 * res->reason is a short static string, never containing the token or a claim.
 */
#ifndef HOSTGATE_JWT_H
#define HOSTGATE_JWT_H

#include <stddef.h>
#include <stdint.h>

#include "policy/jose.h"

struct json_object;

#define JWT_MAX_TOKEN_BYTES 16384
#define JWT_MAX_JSON_DEPTH 16

enum jwt_status {
	JWT_OK = 0,
	JWT_MALFORMED,		/* not three base64url parts, bad JSON, too long, too deep, duplicate member */
	JWT_BAD_ALG,		/* "alg" missing, "none", unknown; a "crit" header */
	JWT_NO_KEY,		/* no configured key fits the algorithm and kid */
	JWT_BAD_SIGNATURE,	/* keys were tried and none verified */
	JWT_EXPIRED,
	JWT_NOT_YET_VALID,
	JWT_NO_EXPIRATION,	/* "exp" required and absent */
	JWT_BAD_CLAIM,		/* "exp", "nbf", "iss" or "aud" of the wrong type */
	JWT_BAD_ISSUER,
	JWT_BAD_AUDIENCE,
	JWT_CLAIM_MISMATCH,	/* a required claim is absent or its values do not match */
	JWT_INTERNAL,		/* out of memory */
};

enum jwt_match { JWT_MATCH_ALL, JWT_MATCH_ANY };

struct jwt_required_claim {
	const char *name;
	enum jwt_match match;
	const char *const *values;
	size_t n_values;	/* 0: the claim need only be present */
	char separator;		/* 0, or e.g. ' ' to split a string value */
};

struct jwt_rules {
	const struct jose_keyset *keys;
	int64_t now;			/* seconds since the epoch */
	int64_t clock_skew;		/* seconds, >= 0 */
	int require_expiration;
	const char *const *issuers;	/* none: "iss" is not checked */
	size_t n_issuers;
	const char *const *audiences;	/* none: "aud" is not checked */
	size_t n_audiences;
	const struct jwt_required_claim *claims;
	size_t n_claims;
};

struct jwt_result {
	enum jwt_status status;
	const char *reason;		/* static, lower case; "ok" on success */
	enum jose_alg alg;		/* the header's algorithm, once known */
	struct json_object *claims;	/* the payload on JWT_OK, else NULL; owned */
};

/* Validates token[0..len) (need not be NUL-terminated; the caller strips any
 * "Bearer " scheme) against rules. Fills res in every case and returns
 * res->status. */
enum jwt_status jwt_validate(const char *token, size_t len, const struct jwt_rules *rules,
			     struct jwt_result *res);

/* Frees res->claims; res can be reused. */
void jwt_result_release(struct jwt_result *res);

/* The value of claim name (top-level) as text for ${jwt.claim.NAME}: a string
 * as it is, anything else (number, boolean, array, object) as compact JSON.
 * Returns a pointer borrowed from res (valid until jwt_result_release()) with
 * its length in *len (it may hold NUL, CR or LF: the caller checks before
 * putting it in a header), or NULL when res holds no claims, the claim is
 * absent, or null. */
const char *jwt_claim_text(const struct jwt_result *res, const char *name, size_t *len);

/* ---- a cache of validated tokens ----------------------------------------
 *
 * Clients send the same token for its whole lifetime, and verifying an RS256
 * signature costs more than the rest of a request (bench/analysis.md). A cache
 * remembers the last JWT_CACHE_SLOTS tokens that passed, by their exact bytes
 * (a 64-bit hash to find them, then CRYPTO_memcmp of the whole token), with
 * their claims. A hit skips decoding, parsing and the signature, but every
 * claim check (exp, nbf, skew against rules->now, issuers, audiences,
 * required claims) runs again; a token that fails is never cached.
 *
 * One cache belongs to one set of rules (one validate-jwt policy of one loaded
 * configuration): its keys never change under it. It is per process and not
 * thread-safe; it is freed with the configuration.
 */
#define JWT_CACHE_SLOTS 256

struct jwt_cache;

/* Returns a new empty cache, or NULL (out of memory). */
struct jwt_cache *jwt_cache_new(void);
void jwt_cache_free(struct jwt_cache *cache);
/* jwt_validate through cache (NULL: no cache). Same contract. */
enum jwt_status jwt_validate_cached(struct jwt_cache *cache, const char *token, size_t len,
				    const struct jwt_rules *rules, struct jwt_result *res);

/* Returns a constant name for status ("ok", "malformed", "expired", ...). */
const char *jwt_status_name(enum jwt_status status);

#endif
