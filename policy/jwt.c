/*
 * jwt — compact JWS parsing, key choice, and JWT claim checks. See jwt.h.
 */
#include "policy/jwt.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/crypto.h>

static enum jwt_status fail(struct jwt_result *res, enum jwt_status status, const char *reason)
{
	res->status = status;
	res->reason = reason;
	return status;
}

/* Counts the members of every object in v. */
static size_t count_members(struct json_object *v)
{
	size_t n = 0;

	if (json_object_is_type(v, json_type_object)) {
		struct json_object_iterator it = json_object_iter_begin(v);
		struct json_object_iterator end = json_object_iter_end(v);

		for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
			n++;
			n += count_members(json_object_iter_peek_value(&it));
		}
	} else if (json_object_is_type(v, json_type_array)) {
		size_t len = json_object_array_length(v);

		for (size_t i = 0; i < len; i++)
			n += count_members(json_object_array_get_idx(v, i));
	}
	return n;
}

/* Counts the name separators (':') outside strings of valid JSON text: one per
 * member as written, duplicates included. */
static size_t count_colons(const char *s, size_t len)
{
	size_t n = 0;
	int in_string = 0;

	for (size_t i = 0; i < len; i++) {
		if (in_string) {
			if (s[i] == '\\')
				i++;
			else if (s[i] == '"')
				in_string = 0;
		} else if (s[i] == '"') {
			in_string = 1;
		} else if (s[i] == ':') {
			n++;
		}
	}
	return n;
}

static int json_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Parses text[0..len) as one JSON object under the caps in jwt.h. Returns the
 * object, or NULL (*why set). */
static struct json_object *parse_object(const char *text, size_t len, const char **why)
{
	struct json_tokener *tok = NULL;
	struct json_object *obj = NULL;
	int ok = 0;
	size_t end;

	*why = "part is not a json object";
	if (len == 0 || memchr(text, '\0', len))
		goto out;
	/* json-c counts its own top state: depth + 1 allows 'depth' levels. */
	tok = json_tokener_new_ex(JWT_MAX_JSON_DEPTH + 1);
	if (!tok) {
		*why = "out of memory";
		goto out;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS |
				    JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, text, (int)len);
	if (!obj || json_tokener_get_error(tok) != json_tokener_success) {
		if (json_tokener_get_error(tok) == json_tokener_error_depth)
			*why = "json nested too deeply";
		goto out;
	}
	for (end = json_tokener_get_parse_end(tok); end < len; end++)
		if (!json_ws(text[end]))
			goto out;
	if (!json_object_is_type(obj, json_type_object))
		goto out;
	/* json-c keeps the last of repeated members silently; a claim that two
	 * parsers read differently ("aud", "exp") is refused instead. */
	if (count_colons(text, len) != count_members(obj)) {
		*why = "json object repeats a member name";
		goto out;
	}
	ok = 1;
out:
	if (tok)	/* json-c 0.16 does not take NULL here */
		json_tokener_free(tok);
	if (!ok) {
		json_object_put(obj);
		obj = NULL;
	}
	return obj;
}

/* Decodes a base64url part into a fresh NUL-terminated buffer. */
static char *decode_part(const char *s, size_t len, size_t *out_len)
{
	size_t cap = jose_b64_decoded_max(len);
	char *buf = malloc(cap + 1);
	long n;

	if (!buf)
		return NULL;
	n = jose_b64url_decode(s, len, (unsigned char *)buf, cap);
	if (n < 0) {
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	*out_len = (size_t)n;
	return buf;
}

static int str_eq(struct json_object *v, const char *want)
{
	size_t len = strlen(want);

	return json_object_is_type(v, json_type_string) &&
	       (size_t)json_object_get_string_len(v) == len &&
	       memcmp(json_object_get_string(v), want, len) == 0;
}

/* Reads a NumericDate claim: 1 with *t set, 0 when absent, -1 when not a number. */
static int numeric_date(struct json_object *claims, const char *name, double *t)
{
	struct json_object *v;

	if (!json_object_object_get_ex(claims, name, &v))
		return 0;
	if (json_object_is_type(v, json_type_int)) {
		*t = (double)json_object_get_int64(v);
		return 1;
	}
	if (json_object_is_type(v, json_type_double)) {
		*t = json_object_get_double(v);
		return 1;
	}
	return -1;
}

/* Returns 1 when the scalar v (string, number, boolean) is want, split on
 * separator when it is a string and separator is not 0. */
static int scalar_has(struct json_object *v, const char *want, char separator)
{
	size_t want_len = strlen(want);
	const char *s;
	size_t len;

	switch (json_object_get_type(v)) {
	case json_type_string:
		s = json_object_get_string(v);
		len = (size_t)json_object_get_string_len(v);
		break;
	case json_type_int:
	case json_type_double:
	case json_type_boolean:
		s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
		len = strlen(s);
		break;
	default:
		return 0;
	}
	if (!separator)
		return len == want_len && memcmp(s, want, len) == 0;
	for (size_t i = 0; i <= len;) {
		const char *p = memchr(s + i, separator, len - i);
		size_t j = p ? (size_t)(p - s) : len;

		if (j - i == want_len && memcmp(s + i, want, want_len) == 0)
			return 1;
		i = j + 1;
	}
	return 0;
}

/* Returns 1 when the claim value v (a scalar or an array of scalars) holds want. */
static int claim_has(struct json_object *v, const char *want, char separator)
{
	if (json_object_is_type(v, json_type_array)) {
		size_t n = json_object_array_length(v);

		for (size_t i = 0; i < n; i++)
			if (scalar_has(json_object_array_get_idx(v, i), want, separator))
				return 1;
		return 0;
	}
	return scalar_has(v, want, separator);
}

static enum jwt_status check_claims(struct json_object *claims, const struct jwt_rules *rules,
				    struct jwt_result *res)
{
	double now = (double)rules->now, t;
	double skew = rules->clock_skew > 0 ? (double)rules->clock_skew : 0;
	struct json_object *v;
	int rc;

	rc = numeric_date(claims, "exp", &t);
	if (rc < 0)
		return fail(res, JWT_BAD_CLAIM, "'exp' is not a number");
	if (rc == 0 && rules->require_expiration)
		return fail(res, JWT_NO_EXPIRATION, "token has no expiration time");
	if (rc == 1 && now >= t + skew)
		return fail(res, JWT_EXPIRED, "token expired");
	rc = numeric_date(claims, "nbf", &t);
	if (rc < 0)
		return fail(res, JWT_BAD_CLAIM, "'nbf' is not a number");
	if (rc == 1 && now + skew < t)
		return fail(res, JWT_NOT_YET_VALID, "token not yet valid");

	if (rules->n_issuers) {
		size_t i;

		if (!json_object_object_get_ex(claims, "iss", &v))
			return fail(res, JWT_BAD_ISSUER, "token has no issuer");
		for (i = 0; i < rules->n_issuers; i++)
			if (str_eq(v, rules->issuers[i]))
				break;
		if (i == rules->n_issuers)
			return fail(res, JWT_BAD_ISSUER, "issuer not accepted");
	}

	if (rules->n_audiences) {
		int found = 0;

		if (!json_object_object_get_ex(claims, "aud", &v))
			return fail(res, JWT_BAD_AUDIENCE, "token has no audience");
		if (!json_object_is_type(v, json_type_string) &&
		    !json_object_is_type(v, json_type_array))
			return fail(res, JWT_BAD_CLAIM, "'aud' is not a string or an array");
		for (size_t i = 0; i < rules->n_audiences && !found; i++) {
			if (json_object_is_type(v, json_type_string)) {
				found = str_eq(v, rules->audiences[i]);
				continue;
			}
			for (size_t j = 0; j < json_object_array_length(v) && !found; j++)
				found = str_eq(json_object_array_get_idx(v, j), rules->audiences[i]);
		}
		if (!found)
			return fail(res, JWT_BAD_AUDIENCE, "audience not accepted");
	}

	for (size_t i = 0; i < rules->n_claims; i++) {
		const struct jwt_required_claim *rc_ = &rules->claims[i];
		size_t hits = 0;

		if (!json_object_object_get_ex(claims, rc_->name, &v) || !v)
			return fail(res, JWT_CLAIM_MISMATCH, "a required claim is missing");
		for (size_t j = 0; j < rc_->n_values; j++)
			if (claim_has(v, rc_->values[j], rc_->separator))
				hits++;
		if (rc_->n_values && (rc_->match == JWT_MATCH_ALL ? hits < rc_->n_values : hits == 0))
			return fail(res, JWT_CLAIM_MISMATCH, "a required claim does not match");
	}
	return JWT_OK;
}

/* Tries the keys that fit alg and kid. */
static enum jwt_status check_signature(const struct jwt_rules *rules, enum jose_alg alg,
				       const char *kid, const char *input, size_t input_len,
				       const unsigned char *sig, size_t sig_len,
				       struct jwt_result *res)
{
	size_t n = rules->keys ? jose_keyset_count(rules->keys) : 0;
	int kid_known = 0, tried = 0;

	if (kid) {
		for (size_t i = 0; i < n; i++) {
			const struct jose_key *key = jose_keyset_key(rules->keys, i);
			const char *k = jose_key_kid(key);

			if (k && strcmp(k, kid) == 0 && jose_key_fits(key, alg))
				kid_known = 1;
		}
	}
	for (size_t i = 0; i < n; i++) {
		const struct jose_key *key = jose_keyset_key(rules->keys, i);
		const char *k = jose_key_kid(key);

		if (!jose_key_fits(key, alg))
			continue;
		if (kid && kid_known && !(k && strcmp(k, kid) == 0))
			continue;
		if (kid && !kid_known && k)
			continue;
		tried++;
		if (jose_verify(key, alg, input, input_len, sig, sig_len, NULL) == 0)
			return JWT_OK;
	}
	if (!tried)
		return fail(res, JWT_NO_KEY, "no key for the token's algorithm and kid");
	return fail(res, JWT_BAD_SIGNATURE, "signature does not verify");
}

enum jwt_status jwt_validate(const char *token, size_t len, const struct jwt_rules *rules,
			     struct jwt_result *res)
{
	struct json_object *header = NULL, *claims = NULL, *v;
	char *hbuf = NULL, *pbuf = NULL, *sbuf = NULL;
	size_t hlen = 0, plen = 0, slen = 0;
	const char *d1, *d2, *why, *kid = NULL;
	enum jwt_status st;

	res->status = JWT_INTERNAL;
	res->reason = "internal error";
	res->alg = JOSE_ALG_INVALID;
	res->claims = NULL;

	if (!token || len == 0) {
		st = fail(res, JWT_MALFORMED, "token is empty");
		goto out;
	}
	if (len > JWT_MAX_TOKEN_BYTES) {
		st = fail(res, JWT_MALFORMED, "token longer than 16 KiB");
		goto out;
	}
	d1 = memchr(token, '.', len);
	d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
	if (!d1 || !d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token))) {
		st = fail(res, JWT_MALFORMED, "token is not three dot-separated parts");
		goto out;
	}
	hbuf = decode_part(token, (size_t)(d1 - token), &hlen);
	pbuf = decode_part(d1 + 1, (size_t)(d2 - d1 - 1), &plen);
	sbuf = decode_part(d2 + 1, len - (size_t)(d2 + 1 - token), &slen);
	if (!hbuf || !pbuf || !sbuf) {
		st = fail(res, JWT_MALFORMED, "token part is not base64url");
		goto out;
	}

	header = parse_object(hbuf, hlen, &why);
	if (!header) {
		st = fail(res, JWT_MALFORMED, why);
		goto out;
	}
	if (!json_object_object_get_ex(header, "alg", &v) ||
	    !json_object_is_type(v, json_type_string)) {
		st = fail(res, JWT_BAD_ALG, "header has no 'alg'");
		goto out;
	}
	res->alg = jose_alg_from_name(json_object_get_string(v));
	if (strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v))
		res->alg = JOSE_ALG_INVALID;	/* "HS256\u0000..." */
	if (res->alg == JOSE_ALG_INVALID) {
		st = fail(res, JWT_BAD_ALG, "algorithm not accepted");
		goto out;
	}
	if (json_object_object_get_ex(header, "crit", NULL)) {
		st = fail(res, JWT_BAD_ALG, "'crit' header extensions are not supported");
		goto out;
	}
	if (json_object_object_get_ex(header, "kid", &v)) {
		if (!json_object_is_type(v, json_type_string) ||
		    strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v)) {
			st = fail(res, JWT_MALFORMED, "'kid' is not a string");
			goto out;
		}
		kid = json_object_get_string(v);
	}
	if (slen == 0) {
		st = fail(res, JWT_MALFORMED, "token has no signature");
		goto out;
	}
	st = check_signature(rules, res->alg, kid, token, (size_t)(d2 - token),
			     (const unsigned char *)sbuf, slen, res);
	if (st != JWT_OK)
		goto out;

	claims = parse_object(pbuf, plen, &why);
	if (!claims) {
		st = fail(res, JWT_MALFORMED, why);
		goto out;
	}
	st = check_claims(claims, rules, res);
	if (st != JWT_OK)
		goto out;
	res->claims = claims;
	claims = NULL;
	st = fail(res, JWT_OK, "ok");
out:
	json_object_put(header);
	json_object_put(claims);
	free(hbuf);
	free(pbuf);
	free(sbuf);
	return st;
}

/* ---- the cache ------------------------------------------------------------ */

struct jwt_cache_entry {
	char *token;			/* NULL: free slot */
	size_t len;
	uint64_t hash;
	uint64_t used;			/* last hit, for eviction */
	enum jose_alg alg;
	struct json_object *claims;	/* one reference held */
};

struct jwt_cache {
	uint64_t tick;
	struct jwt_cache_entry e[JWT_CACHE_SLOTS];
};

/* FNV-1a: finds candidates only; equality is decided on the whole token. */
static uint64_t token_hash(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
	return h;
}

struct jwt_cache *jwt_cache_new(void)
{
	return calloc(1, sizeof(struct jwt_cache));
}

static void entry_clear(struct jwt_cache_entry *e)
{
	if (e->token) {
		explicit_bzero(e->token, e->len);
		free(e->token);
	}
	json_object_put(e->claims);
	memset(e, 0, sizeof(*e));
}

void jwt_cache_free(struct jwt_cache *cache)
{
	if (!cache)
		return;
	for (size_t i = 0; i < JWT_CACHE_SLOTS; i++)
		entry_clear(&cache->e[i]);
	free(cache);
}

enum jwt_status jwt_validate_cached(struct jwt_cache *cache, const char *token, size_t len,
				    const struct jwt_rules *rules, struct jwt_result *res)
{
	struct jwt_cache_entry *hit = NULL, *victim;
	uint64_t h;
	enum jwt_status st;

	if (!cache || !token || len == 0 || len > JWT_MAX_TOKEN_BYTES)
		return jwt_validate(token, len, rules, res);
	h = token_hash(token, len);
	victim = &cache->e[0];
	for (size_t i = 0; i < JWT_CACHE_SLOTS; i++) {
		struct jwt_cache_entry *e = &cache->e[i];

		if (e->token && e->hash == h && e->len == len &&
		    CRYPTO_memcmp(e->token, token, len) == 0) {
			hit = e;
			break;
		}
		/* the first free slot, else the least recently used */
		if (!e->token) {
			if (victim->token)
				victim = e;
		} else if (victim->token && e->used < victim->used) {
			victim = e;
		}
	}
	if (hit) {
		res->alg = hit->alg;
		res->claims = NULL;
		st = check_claims(hit->claims, rules, res);
		if (st != JWT_OK) {
			entry_clear(hit);	/* expired: it will not pass again */
			return st;
		}
		hit->used = ++cache->tick;
		res->claims = json_object_get(hit->claims);
		return fail(res, JWT_OK, "ok");
	}
	st = jwt_validate(token, len, rules, res);
	if (st != JWT_OK)
		return st;
	entry_clear(victim);
	victim->token = malloc(len);
	if (!victim->token)
		return st;	/* not cached; the answer stands */
	memcpy(victim->token, token, len);
	victim->len = len;
	victim->hash = h;
	victim->alg = res->alg;
	victim->claims = json_object_get(res->claims);
	victim->used = ++cache->tick;
	return st;
}

void jwt_result_release(struct jwt_result *res)
{
	json_object_put(res->claims);
	res->claims = NULL;
}

const char *jwt_claim_text(const struct jwt_result *res, const char *name, size_t *len)
{
	struct json_object *v;
	const char *s;

	if (!res->claims || !json_object_object_get_ex(res->claims, name, &v) || !v)
		return NULL;
	if (json_object_is_type(v, json_type_string)) {
		*len = (size_t)json_object_get_string_len(v);
		return json_object_get_string(v);
	}
	s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!s)
		return NULL;
	*len = strlen(s);
	return s;
}

const char *jwt_status_name(enum jwt_status status)
{
	switch (status) {
	case JWT_OK: return "ok";
	case JWT_MALFORMED: return "malformed";
	case JWT_BAD_ALG: return "bad-alg";
	case JWT_NO_KEY: return "no-key";
	case JWT_BAD_SIGNATURE: return "bad-signature";
	case JWT_EXPIRED: return "expired";
	case JWT_NOT_YET_VALID: return "not-yet-valid";
	case JWT_NO_EXPIRATION: return "no-expiration";
	case JWT_BAD_CLAIM: return "bad-claim";
	case JWT_BAD_ISSUER: return "bad-issuer";
	case JWT_BAD_AUDIENCE: return "bad-audience";
	case JWT_CLAIM_MISMATCH: return "claim-mismatch";
	case JWT_INTERNAL: return "internal";
	}
	return "unknown";
}
