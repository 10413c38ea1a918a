/*
 * jose — the JOSE pieces that JWT validation needs (RFC 7515, 7517, 7518, 8037):
 * base64url, keys from their configuration forms, and checking one signature.
 * OpenSSL 3 only through EVP (no deprecated low-level key APIs).
 *
 *   struct jose_keyset *ks = jose_keyset_new();
 *   for each KEY of "issuer-signing-keys":
 *           if (jose_keyset_add(ks, KEY, &why) != 0) report why;
 *   ... per request (jwt.c does this) ...
 *   enum jose_alg alg = jose_alg_from_name(header.alg);
 *   for each key in ks that jose_key_fits(key, alg):
 *           if (jose_verify(key, alg, input, input_len, sig, sig_len, NULL) == 0) valid;
 *   jose_keyset_free(ks);
 *
 * The key forms jose_keyset_add() takes (config-v1.md, validate-jwt):
 *  - a string: APIM's form, an HMAC secret in base64 (standard or url alphabet);
 *  - {"n": "...", "e": "..."} without "kty": APIM's form of an RSA public key;
 *  - {"pem": "-----BEGIN PUBLIC KEY-----..."}: a SubjectPublicKeyInfo, a PKCS#1
 *    "RSA PUBLIC KEY" or a "CERTIFICATE" (its public key; the certificate is not
 *    checked otherwise); private keys are refused;
 *  - a JWK ({"kty": ...}): RSA (n, e), EC (crv P-256/P-384/P-521, x, y), OKP
 *    (crv Ed25519, x), oct (k); private members (d, p, ...) are ignored;
 *  - a JWK set ({"keys": [JWK...]}): keys whose "use" is not "sig", whose
 *    "key_ops" lack "verify", whose "kty" or "crv" is unknown, or whose "alg" is
 *    not a signature algorithm are skipped (RFC 7517 section 5); a malformed key
 *    of a known type is an error, and so is a set that yields no key.
 * The objects above may also carry "kid" and "alg" (a key with "alg" verifies
 * only that algorithm).
 *
 * Decisions (the defence against weak keys and algorithm confusion):
 *  - alg/key binding is strict: HS* only with an HMAC key, RS* and PS* only with an
 *    RSA key, ES256/ES384/ES512 only with a P-256/P-384/P-521 key, EdDSA only
 *    with an Ed25519 key; "none" is not an algorithm here at all;
 *  - RSA keys must have 2048 to 8192 bits (RFC 7518 section 3.3) and an odd
 *    public exponent of at least 3;
 *  - HMAC secrets must have at least 32 bytes, and at least the hash size for
 *    HS384 (48) and HS512 (64) (RFC 7518 section 3.2);
 *  - ECDSA signatures must have exactly twice the curve's size; EC coordinates
 *    at most the curve's size (shorter ones, whose leading zero octets an
 *    encoder dropped, are padded: the point is the same and is checked to be
 *    on the curve).
 *
 * Ownership: a keyset owns its keys; secrets are zeroed when freed. Keys are
 * immutable once built and may be shared by any number of threads.
 *
 * Errors: functions return 0/-1 or NULL; where there is a 'why', it is set to a
 * short static reason (lower case, never containing key material or a token),
 * e.g. "rsa key shorter than 2048 bits". 'why' may be NULL.
 */
#ifndef HOSTGATE_JOSE_H
#define HOSTGATE_JOSE_H

#include <stddef.h>

struct json_object;

#define JOSE_MAX_KEYS 64		/* per keyset */
#define JOSE_MAX_PEM_BYTES 65536
#define JOSE_MAX_SIG_BYTES 1024		/* an RSA-8192 signature */

enum jose_kind { JOSE_KEY_HMAC, JOSE_KEY_RSA, JOSE_KEY_EC, JOSE_KEY_OKP };

enum jose_alg {
	JOSE_ALG_INVALID = 0,	/* unknown, absent, or "none" */
	JOSE_HS256, JOSE_HS384, JOSE_HS512,
	JOSE_RS256, JOSE_RS384, JOSE_RS512,
	JOSE_PS256, JOSE_PS384, JOSE_PS512,
	JOSE_ES256, JOSE_ES384, JOSE_ES512,
	JOSE_EDDSA,
};

struct jose_key;		/* opaque */
struct jose_keyset;		/* opaque */

/* ---- base64 ------------------------------------------------------------- */

/* Upper bound of the decoded size of len characters. */
size_t jose_b64_decoded_max(size_t len);
/* Decodes base64url (RFC 4648 section 5) src[0..len) into dst (cap bytes).
 * Strict: no padding, no whitespace, no character outside [A-Za-z0-9_-], no
 * length of the form 4k+1, no non-zero bits left over. Returns the decoded
 * length, or -1. */
long jose_b64url_decode(const char *src, size_t len, unsigned char *dst, size_t cap);
/* Decodes standard base64 (RFC 4648 section 4): padding optional but, when
 * present, exact; otherwise as strict as jose_b64url_decode(). Returns the
 * decoded length, or -1. */
long jose_b64_decode(const char *src, size_t len, unsigned char *dst, size_t cap);
/* Encodes src[0..len) as base64url without padding into dst (cap bytes, NUL
 * terminated). Returns the length written (without the NUL), or -1 when it
 * would not fit. */
long jose_b64url_encode(const unsigned char *src, size_t len, char *dst, size_t cap);

/* ---- algorithms ---------------------------------------------------------- */

/* Returns the algorithm named name ("RS256", ...; case-sensitive), or
 * JOSE_ALG_INVALID for NULL, "none" and anything unknown. */
enum jose_alg jose_alg_from_name(const char *name);
/* Returns the JOSE name of alg, or "invalid". */
const char *jose_alg_name(enum jose_alg alg);

/* ---- keys ---------------------------------------------------------------- */

/* Builds a key from one JWK object (kty RSA, EC, OKP or oct). Returns the key
 * (free with jose_key_free()), or NULL with why set. */
struct jose_key *jose_key_from_jwk(const struct json_object *jwk, const char **why);
/* Builds a key from PEM text pem[0..len) (public key or certificate). Returns
 * the key, or NULL with why set. */
struct jose_key *jose_key_from_pem(const char *pem, size_t len, const char **why);
/* Builds an HMAC key from raw secret bytes (copied). Returns the key, or NULL
 * with why set (too short, out of memory). */
struct jose_key *jose_key_from_secret(const unsigned char *secret, size_t len,
				      const char **why);
/* Frees key, zeroing any secret; NULL is fine. */
void jose_key_free(struct jose_key *key);

/* Returns the key's kind. */
enum jose_kind jose_key_kind(const struct jose_key *key);
/* Returns the key's "kid", or NULL when it has none. */
const char *jose_key_kid(const struct jose_key *key);
/* Returns the key's "alg", or JOSE_ALG_INVALID when it has none. */
enum jose_alg jose_key_alg(const struct jose_key *key);
/* Returns 1 when key may verify alg (kind, curve, size and the key's own
 * "alg" all agree), else 0. */
int jose_key_fits(const struct jose_key *key, enum jose_alg alg);

/* Checks sig[0..sig_len) over input[0..input_len) with key and alg. ECDSA
 * signatures are JOSE's raw r||s. Returns 0 when the signature is valid, -1
 * when it is not or when key does not fit alg (why says which). */
int jose_verify(const struct jose_key *key, enum jose_alg alg,
		const void *input, size_t input_len,
		const unsigned char *sig, size_t sig_len, const char **why);

/* ---- key sets ------------------------------------------------------------ */

/* Returns an empty keyset, or NULL when out of memory. */
struct jose_keyset *jose_keyset_new(void);
/* Adds the key(s) of one configuration KEY (any form listed above). On error
 * nothing is added. Returns 0, or -1 with why set. */
int jose_keyset_add(struct jose_keyset *ks, const struct json_object *spec, const char **why);
/* Adds key, taking ownership (on failure too: it is freed). Returns 0, or -1
 * when the set is full or out of memory. */
int jose_keyset_add_key(struct jose_keyset *ks, struct jose_key *key);
/* Returns the number of keys. */
size_t jose_keyset_count(const struct jose_keyset *ks);
/* Returns key i (< count), borrowed from ks. */
const struct jose_key *jose_keyset_key(const struct jose_keyset *ks, size_t i);
/* Frees ks and its keys; NULL is fine. */
void jose_keyset_free(struct jose_keyset *ks);

#endif
