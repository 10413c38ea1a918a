/*
 * jose — base64url, JOSE keys and signature checks over OpenSSL 3's EVP API.
 * See jose.h for the contract.
 */
#include "policy/jose.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 8192
#define HMAC_MIN_BYTES 32
#define HMAC_MAX_BYTES 4096
#define KID_MAX_BYTES 1024

struct jose_key {
	enum jose_kind kind;
	enum jose_alg alg;	/* JOSE_ALG_INVALID: any algorithm that fits */
	char *kid;		/* NULL when absent */
	int curve;		/* EC: 256, 384 or 521; OKP: 25519; else 0 */
	unsigned char *secret;	/* HMAC */
	size_t secret_len;
	EVP_PKEY *pkey;		/* RSA, EC, OKP */
};

struct jose_keyset {
	struct jose_key **keys;
	size_t n, cap;
};

static void set_why(const char **why, const char *reason)
{
	if (why)
		*why = reason;
}

/* json-c 0.16 takes a non-const object in json_object_get_string() although
 * it does not modify it; this keeps the const of our interface honest. */
static struct json_object *json_unconst(const struct json_object *o)
{
	union {
		const struct json_object *c;
		struct json_object *m;
	} u;

	u.c = o;
	return u.m;
}

/* ---- base64 ---------------------------------------------------------------- */

#define B64_URL 1		/* '-' '_' */
#define B64_STD 2		/* '+' '/' */
#define B64_PAD 4		/* exact '=' padding allowed */

static int b64_value(unsigned char c, int flags)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if ((flags & B64_URL) && c == '-')
		return 62;
	if ((flags & B64_URL) && c == '_')
		return 63;
	if ((flags & B64_STD) && c == '+')
		return 62;
	if ((flags & B64_STD) && c == '/')
		return 63;
	return -1;
}

static long b64_decode(const char *src, size_t len, unsigned char *dst, size_t cap, int flags)
{
	size_t i, out, need;
	unsigned int acc = 0;
	int bits = 0;

	if ((flags & B64_PAD) && len > 0 && len % 4 == 0 && src[len - 1] == '=') {
		len--;
		if (src[len - 1] == '=')
			len--;
	}
	if (len % 4 == 1 || len > (size_t)LONG_MAX / 3 * 4 - 4)
		return -1;
	need = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
	if (need > cap)
		return -1;
	out = 0;
	for (i = 0; i < len; i++) {
		int v = b64_value((unsigned char)src[i], flags);

		if (v < 0)
			return -1;
		acc = (acc << 6) | (unsigned int)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			dst[out++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* Leftover bits must be zero, so that each value has one encoding. */
	if (acc != 0)
		return -1;
	return (long)out;
}

size_t jose_b64_decoded_max(size_t len)
{
	return len / 4 * 3 + 2;
}

long jose_b64url_decode(const char *src, size_t len, unsigned char *dst, size_t cap)
{
	return b64_decode(src, len, dst, cap, B64_URL);
}

long jose_b64_decode(const char *src, size_t len, unsigned char *dst, size_t cap)
{
	return b64_decode(src, len, dst, cap, B64_STD | B64_PAD);
}

long jose_b64url_encode(const unsigned char *src, size_t len, char *dst, size_t cap)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t i, out = 0, need;

	if (len > (size_t)LONG_MAX / 4 * 3 - 3)
		return -1;
	need = len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0);
	if (need + 1 > cap)
		return -1;
	for (i = 0; i + 2 < len; i += 3) {
		unsigned int v = (unsigned int)src[i] << 16 | (unsigned int)src[i + 1] << 8 | src[i + 2];

		dst[out++] = alphabet[v >> 18 & 63];
		dst[out++] = alphabet[v >> 12 & 63];
		dst[out++] = alphabet[v >> 6 & 63];
		dst[out++] = alphabet[v & 63];
	}
	if (len - i == 1) {
		unsigned int v = (unsigned int)src[i] << 16;

		dst[out++] = alphabet[v >> 18 & 63];
		dst[out++] = alphabet[v >> 12 & 63];
	} else if (len - i == 2) {
		unsigned int v = (unsigned int)src[i] << 16 | (unsigned int)src[i + 1] << 8;

		dst[out++] = alphabet[v >> 18 & 63];
		dst[out++] = alphabet[v >> 12 & 63];
		dst[out++] = alphabet[v >> 6 & 63];
	}
	dst[out] = '\0';
	return (long)out;
}

/* Decodes a base64url member into a fresh buffer. Returns the buffer (length
 * in *out_len), or NULL. */
static unsigned char *b64_dup(const char *s, size_t len, int flags, size_t *out_len)
{
	size_t cap = jose_b64_decoded_max(len);
	unsigned char *buf = malloc(cap ? cap : 1);
	long n;

	if (!buf)
		return NULL;
	n = b64_decode(s, len, buf, cap, flags);
	if (n < 0) {
		OPENSSL_cleanse(buf, cap);
		free(buf);
		return NULL;
	}
	*out_len = (size_t)n;
	return buf;
}

/* ---- algorithms ---------------------------------------------------------- */

static const struct {
	const char *name;
	enum jose_alg alg;
} alg_names[] = {
	{ "HS256", JOSE_HS256 }, { "HS384", JOSE_HS384 }, { "HS512", JOSE_HS512 },
	{ "RS256", JOSE_RS256 }, { "RS384", JOSE_RS384 }, { "RS512", JOSE_RS512 },
	{ "PS256", JOSE_PS256 }, { "PS384", JOSE_PS384 }, { "PS512", JOSE_PS512 },
	{ "ES256", JOSE_ES256 }, { "ES384", JOSE_ES384 }, { "ES512", JOSE_ES512 },
	{ "EdDSA", JOSE_EDDSA },
};

enum jose_alg jose_alg_from_name(const char *name)
{
	if (!name)
		return JOSE_ALG_INVALID;
	for (size_t i = 0; i < sizeof(alg_names) / sizeof(alg_names[0]); i++)
		if (strcmp(name, alg_names[i].name) == 0)
			return alg_names[i].alg;
	return JOSE_ALG_INVALID;
}

const char *jose_alg_name(enum jose_alg alg)
{
	for (size_t i = 0; i < sizeof(alg_names) / sizeof(alg_names[0]); i++)
		if (alg_names[i].alg == alg)
			return alg_names[i].name;
	return "invalid";
}

static enum jose_kind alg_kind(enum jose_alg alg)
{
	switch (alg) {
	case JOSE_HS256: case JOSE_HS384: case JOSE_HS512:
		return JOSE_KEY_HMAC;
	case JOSE_ES256: case JOSE_ES384: case JOSE_ES512:
		return JOSE_KEY_EC;
	case JOSE_EDDSA:
		return JOSE_KEY_OKP;
	default:
		return JOSE_KEY_RSA;
	}
}

/* The digest of alg, NULL for EdDSA. */
static const EVP_MD *alg_md(enum jose_alg alg)
{
	switch (alg) {
	case JOSE_HS256: case JOSE_RS256: case JOSE_PS256: case JOSE_ES256:
		return EVP_sha256();
	case JOSE_HS384: case JOSE_RS384: case JOSE_PS384: case JOSE_ES384:
		return EVP_sha384();
	case JOSE_HS512: case JOSE_RS512: case JOSE_PS512: case JOSE_ES512:
		return EVP_sha512();
	default:
		return NULL;
	}
}

static size_t hmac_min_bytes(enum jose_alg alg)
{
	switch (alg) {
	case JOSE_HS384:
		return 48;
	case JOSE_HS512:
		return 64;
	default:
		return HMAC_MIN_BYTES;
	}
}

static int alg_curve(enum jose_alg alg)
{
	switch (alg) {
	case JOSE_ES256:
		return 256;
	case JOSE_ES384:
		return 384;
	case JOSE_ES512:
		return 521;
	case JOSE_EDDSA:
		return 25519;
	default:
		return 0;
	}
}

/* Bytes of one EC coordinate (and of r and s). */
static size_t curve_bytes(int curve)
{
	return ((size_t)curve + 7) / 8;
}

int jose_key_fits(const struct jose_key *key, enum jose_alg alg)
{
	if (!key || alg == JOSE_ALG_INVALID)
		return 0;
	if (key->alg != JOSE_ALG_INVALID && key->alg != alg)
		return 0;
	if (key->kind != alg_kind(alg))
		return 0;
	switch (key->kind) {
	case JOSE_KEY_HMAC:
		return key->secret_len >= hmac_min_bytes(alg);
	case JOSE_KEY_EC:
	case JOSE_KEY_OKP:
		return key->curve == alg_curve(alg);
	case JOSE_KEY_RSA:
		return 1;
	}
	return 0;
}

/* ---- keys ---------------------------------------------------------------- */

static struct jose_key *key_new(enum jose_kind kind)
{
	struct jose_key *key = calloc(1, sizeof(*key));

	if (key)
		key->kind = kind;
	return key;
}

void jose_key_free(struct jose_key *key)
{
	if (!key)
		return;
	if (key->secret) {
		OPENSSL_cleanse(key->secret, key->secret_len);
		free(key->secret);
	}
	EVP_PKEY_free(key->pkey);
	free(key->kid);
	free(key);
}

enum jose_kind jose_key_kind(const struct jose_key *key)
{
	return key->kind;
}

const char *jose_key_kid(const struct jose_key *key)
{
	return key->kid;
}

enum jose_alg jose_key_alg(const struct jose_key *key)
{
	return key->alg;
}

struct jose_key *jose_key_from_secret(const unsigned char *secret, size_t len, const char **why)
{
	struct jose_key *key;

	if (len < HMAC_MIN_BYTES) {
		set_why(why, "hmac key shorter than 32 bytes");
		return NULL;
	}
	if (len > HMAC_MAX_BYTES) {
		set_why(why, "hmac key longer than 4096 bytes");
		return NULL;
	}
	key = key_new(JOSE_KEY_HMAC);
	if (key)
		key->secret = malloc(len);
	if (!key || !key->secret) {
		free(key);
		set_why(why, "out of memory");
		return NULL;
	}
	memcpy(key->secret, secret, len);
	key->secret_len = len;
	return key;
}

/* Checks an RSA key's size and public exponent. Returns 0 or -1. */
static int rsa_check(const BIGNUM *n, const BIGNUM *e, const char **why)
{
	int bits = BN_num_bits(n);

	if (bits < RSA_MIN_BITS) {
		set_why(why, "rsa key shorter than 2048 bits");
		return -1;
	}
	if (bits > RSA_MAX_BITS) {
		set_why(why, "rsa key longer than 8192 bits");
		return -1;
	}
	/* e = 1 would make every padded digest its own signature. */
	if (!BN_is_odd(e) || BN_num_bits(e) < 2 || BN_num_bits(e) > 64) {
		set_why(why, "rsa public exponent is not an odd number from 3 to 2^64");
		return -1;
	}
	return 0;
}

static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;

	if (!params)
		goto out;
	ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	if (!ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
out:
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return pkey;
}

static struct jose_key *rsa_from_bytes(const unsigned char *n, size_t n_len,
				       const unsigned char *e, size_t e_len, const char **why)
{
	OSSL_PARAM_BLD *bld = NULL;
	BIGNUM *bn = NULL, *be = NULL;
	struct jose_key *key = NULL;
	EVP_PKEY *pkey = NULL;

	bn = BN_bin2bn(n, (int)n_len, NULL);
	be = BN_bin2bn(e, (int)e_len, NULL);
	if (!bn || !be) {
		set_why(why, "out of memory");
		goto out;
	}
	if (rsa_check(bn, be, why) != 0)
		goto out;
	bld = OSSL_PARAM_BLD_new();
	if (bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
		pkey = pkey_fromdata("RSA", bld);
	if (!pkey) {
		set_why(why, "cannot build the rsa key");
		goto out;
	}
	key = key_new(JOSE_KEY_RSA);
	if (!key) {
		set_why(why, "out of memory");
		goto out;
	}
	key->pkey = pkey;
	pkey = NULL;
out:
	EVP_PKEY_free(pkey);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn);
	BN_free(be);
	return key;
}

static const char *curve_group(int curve)
{
	switch (curve) {
	case 256:
		return "prime256v1";
	case 384:
		return "secp384r1";
	case 521:
		return "secp521r1";
	default:
		return NULL;
	}
}

/* Returns 1 when the public key is valid for its group, else 0. */
static int pkey_public_ok(EVP_PKEY *pkey)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	int ok;

	if (!ctx)
		return 0;
	ok = EVP_PKEY_public_check(ctx) == 1;
	EVP_PKEY_CTX_free(ctx);
	ERR_clear_error();
	return ok;
}

static struct jose_key *ec_from_bytes(int curve, const unsigned char *x, size_t x_len,
				      const unsigned char *y, size_t y_len, const char **why)
{
	size_t size = curve_bytes(curve);
	unsigned char point[1 + 2 * 66];
	OSSL_PARAM_BLD *bld = NULL;
	struct jose_key *key = NULL;
	EVP_PKEY *pkey = NULL;

	/* RFC 7518 wants full-size coordinates, but some encoders (PyJWT before
	 * 2.8) drop leading zero octets: the value is the same, so pad it. */
	if (x_len == 0 || y_len == 0 || x_len > size || y_len > size) {
		set_why(why, "ec coordinate is longer than the curve's size");
		return NULL;
	}
	memset(point, 0, sizeof(point));
	point[0] = 0x04;	/* uncompressed */
	memcpy(point + 1 + size - x_len, x, x_len);
	memcpy(point + 1 + 2 * size - y_len, y, y_len);
	bld = OSSL_PARAM_BLD_new();
	if (bld &&
	    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, curve_group(curve), 0) &&
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * size))
		pkey = pkey_fromdata("EC", bld);
	if (!pkey || !pkey_public_ok(pkey)) {
		set_why(why, "ec point is not on the curve");
		goto out;
	}
	key = key_new(JOSE_KEY_EC);
	if (!key) {
		set_why(why, "out of memory");
		goto out;
	}
	key->curve = curve;
	key->pkey = pkey;
	pkey = NULL;
out:
	ERR_clear_error();
	EVP_PKEY_free(pkey);
	OSSL_PARAM_BLD_free(bld);
	return key;
}

static struct jose_key *ed25519_from_bytes(const unsigned char *x, size_t x_len, const char **why)
{
	struct jose_key *key;
	EVP_PKEY *pkey;

	if (x_len != 32) {
		set_why(why, "ed25519 key is not 32 bytes");
		return NULL;
	}
	pkey = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, x, x_len);
	if (!pkey) {
		ERR_clear_error();
		set_why(why, "cannot build the ed25519 key");
		return NULL;
	}
	key = key_new(JOSE_KEY_OKP);
	if (!key) {
		EVP_PKEY_free(pkey);
		set_why(why, "out of memory");
		return NULL;
	}
	key->curve = 25519;
	key->pkey = pkey;
	return key;
}

/* Classifies a decoded public key. Takes ownership of pkey. */
static struct jose_key *key_from_pkey(EVP_PKEY *pkey, const char **why)
{
	struct jose_key *key = NULL;
	BIGNUM *n = NULL, *e = NULL;
	char group[64];

	if (EVP_PKEY_is_a(pkey, "RSA")) {
		if (!EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n) ||
		    !EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e)) {
			set_why(why, "cannot read the rsa key");
			goto out;
		}
		if (rsa_check(n, e, why) != 0)
			goto out;
		key = key_new(JOSE_KEY_RSA);
	} else if (EVP_PKEY_is_a(pkey, "EC")) {
		int curve = 0;

		if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME,
						    group, sizeof(group), NULL)) {
			set_why(why, "cannot read the ec key's curve");
			goto out;
		}
		if (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0)
			curve = 256;
		else if (strcmp(group, "secp384r1") == 0 || strcmp(group, "P-384") == 0)
			curve = 384;
		else if (strcmp(group, "secp521r1") == 0 || strcmp(group, "P-521") == 0)
			curve = 521;
		if (!curve) {
			set_why(why, "ec curve is not P-256, P-384 or P-521");
			goto out;
		}
		if (!pkey_public_ok(pkey)) {
			set_why(why, "ec point is not on the curve");
			goto out;
		}
		key = key_new(JOSE_KEY_EC);
		if (key)
			key->curve = curve;
	} else if (EVP_PKEY_is_a(pkey, "ED25519")) {
		key = key_new(JOSE_KEY_OKP);
		if (key)
			key->curve = 25519;
	} else {
		set_why(why, "key type is not rsa, ec or ed25519");
		goto out;
	}
	if (!key) {
		set_why(why, "out of memory");
		goto out;
	}
	key->pkey = pkey;
	pkey = NULL;
out:
	ERR_clear_error();
	BN_free(n);
	BN_free(e);
	EVP_PKEY_free(pkey);
	return key;
}

static int contains(const char *hay, size_t len, const char *needle)
{
	size_t nlen = strlen(needle);

	for (size_t i = 0; i + nlen <= len; i++)
		if (memcmp(hay + i, needle, nlen) == 0)
			return 1;
	return 0;
}

struct jose_key *jose_key_from_pem(const char *pem, size_t len, const char **why)
{
	OSSL_DECODER_CTX *dctx = NULL;
	EVP_PKEY *pkey = NULL;
	X509 *cert = NULL;
	BIO *bio = NULL;

	if (len > JOSE_MAX_PEM_BYTES) {
		set_why(why, "pem longer than 64 KiB");
		return NULL;
	}
	if (contains(pem, len, "PRIVATE KEY")) {
		set_why(why, "pem holds a private key: give the public key or certificate");
		return NULL;
	}
	bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio) {
		set_why(why, "out of memory");
		return NULL;
	}
	if (contains(pem, len, "-----BEGIN CERTIFICATE-----")) {
		cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
		if (cert)
			pkey = X509_get_pubkey(cert);
	} else {
		dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, "PEM", NULL, NULL,
						     EVP_PKEY_PUBLIC_KEY, NULL, NULL);
		if (dctx && !OSSL_DECODER_from_bio(dctx, bio)) {
			EVP_PKEY_free(pkey);
			pkey = NULL;
		}
	}
	OSSL_DECODER_CTX_free(dctx);
	X509_free(cert);
	BIO_free(bio);
	ERR_clear_error();
	if (!pkey) {
		set_why(why, "pem is not a public key or certificate");
		return NULL;
	}
	return key_from_pkey(pkey, why);
}

/* Looks up member name of o: 1 with *s and *len set when it is a string, 0
 * when absent, -1 when it is something else. */
static int member_str(const struct json_object *o, const char *name, const char **s, size_t *len)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, name, &v) || !v)
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return -1;
	*s = json_object_get_string(v);
	*len = (size_t)json_object_get_string_len(v);
	return 1;
}

/* Decodes base64 member name of o into a fresh buffer; NULL when absent or bad. */
static unsigned char *member_b64(const struct json_object *o, const char *name, int flags,
				 size_t *len)
{
	const char *s;
	size_t slen;

	if (member_str(o, name, &s, &slen) != 1)
		return NULL;
	return b64_dup(s, slen, flags, len);
}

/* Reads the optional "kid" and "alg" of o into key. Returns 0, 1 when "alg"
 * names no signature algorithm (a set skips such a key), or -1. */
static int key_attrs(struct jose_key *key, const struct json_object *o, const char **why)
{
	const char *s;
	size_t len;
	int rc;

	rc = member_str(o, "kid", &s, &len);
	if (rc < 0 || (rc == 1 && (len > KID_MAX_BYTES || strlen(s) != len))) {
		set_why(why, "'kid' is not a string of at most 1024 bytes");
		return -1;
	}
	if (rc == 1) {
		key->kid = strdup(s);
		if (!key->kid) {
			set_why(why, "out of memory");
			return -1;
		}
	}
	rc = member_str(o, "alg", &s, &len);
	if (rc < 0) {
		set_why(why, "'alg' is not a string");
		return -1;
	}
	if (rc == 1) {
		key->alg = jose_alg_from_name(s);
		if (key->alg == JOSE_ALG_INVALID) {
			set_why(why, "'alg' is not a supported signature algorithm");
			return 1;
		}
		if (!jose_key_fits(key, key->alg)) {
			set_why(why, "'alg' does not fit the key");
			return -1;
		}
	}
	return 0;
}

/* Builds a key from a JWK. Returns 0 with *out set, 1 when the key is of a
 * kind or use this module does not verify with (a set skips it), or -1. */
static int jwk_parse(const struct json_object *jwk, struct jose_key **out, const char **why)
{
	unsigned char *a = NULL, *b = NULL;
	struct jose_key *key = NULL;
	size_t a_len = 0, b_len = 0;
	const char *kty, *s;
	size_t len;
	struct json_object *ops;
	int rc = -1;

	*out = NULL;
	if (!json_object_is_type(jwk, json_type_object)) {
		set_why(why, "key is not an object");
		return -1;
	}
	if (member_str(jwk, "kty", &kty, &len) != 1) {
		set_why(why, "'kty' is missing or not a string");
		return -1;
	}
	if (member_str(jwk, "use", &s, &len) == 1 && strcmp(s, "sig") != 0) {
		set_why(why, "'use' is not \"sig\"");
		return 1;
	}
	if (json_object_object_get_ex(jwk, "key_ops", &ops)) {
		int verify = 0;

		if (!json_object_is_type(ops, json_type_array)) {
			set_why(why, "'key_ops' is not an array");
			return -1;
		}
		for (size_t i = 0; i < json_object_array_length(ops); i++) {
			struct json_object *op = json_object_array_get_idx(ops, i);

			if (json_object_is_type(op, json_type_string) &&
			    strcmp(json_object_get_string(op), "verify") == 0)
				verify = 1;
		}
		if (!verify) {
			set_why(why, "'key_ops' lacks \"verify\"");
			return 1;
		}
	}
	if (strcmp(kty, "RSA") == 0) {
		a = member_b64(jwk, "n", B64_URL, &a_len);
		b = member_b64(jwk, "e", B64_URL, &b_len);
		if (!a || !b) {
			set_why(why, "rsa 'n' or 'e' is missing or not base64url");
			goto out;
		}
		key = rsa_from_bytes(a, a_len, b, b_len, why);
	} else if (strcmp(kty, "EC") == 0) {
		int curve = 0;

		if (member_str(jwk, "crv", &s, &len) != 1) {
			set_why(why, "ec 'crv' is missing");
			goto out;
		}
		if (strcmp(s, "P-256") == 0)
			curve = 256;
		else if (strcmp(s, "P-384") == 0)
			curve = 384;
		else if (strcmp(s, "P-521") == 0)
			curve = 521;
		if (!curve) {
			set_why(why, "ec 'crv' is not P-256, P-384 or P-521");
			rc = 1;
			goto out;
		}
		a = member_b64(jwk, "x", B64_URL, &a_len);
		b = member_b64(jwk, "y", B64_URL, &b_len);
		if (!a || !b) {
			set_why(why, "ec 'x' or 'y' is missing or not base64url");
			goto out;
		}
		key = ec_from_bytes(curve, a, a_len, b, b_len, why);
	} else if (strcmp(kty, "OKP") == 0) {
		if (member_str(jwk, "crv", &s, &len) != 1 || strcmp(s, "Ed25519") != 0) {
			set_why(why, "okp 'crv' is not Ed25519");
			rc = 1;
			goto out;
		}
		a = member_b64(jwk, "x", B64_URL, &a_len);
		if (!a) {
			set_why(why, "okp 'x' is missing or not base64url");
			goto out;
		}
		key = ed25519_from_bytes(a, a_len, why);
	} else if (strcmp(kty, "oct") == 0) {
		a = member_b64(jwk, "k", B64_URL, &a_len);
		if (!a) {
			set_why(why, "oct 'k' is missing or not base64url");
			goto out;
		}
		key = jose_key_from_secret(a, a_len, why);
	} else {
		set_why(why, "'kty' is not RSA, EC, OKP or oct");
		rc = 1;
		goto out;
	}
	if (!key)
		goto out;
	rc = key_attrs(key, jwk, why);
	if (rc != 0)
		goto out;
	*out = key;
	key = NULL;
out:
	if (a) {
		OPENSSL_cleanse(a, a_len);
		free(a);
	}
	free(b);
	jose_key_free(key);
	return rc;
}

struct jose_key *jose_key_from_jwk(const struct json_object *jwk, const char **why)
{
	struct jose_key *key;

	if (jwk_parse(jwk, &key, why) != 0)
		return NULL;
	return key;
}

/* ---- verification -------------------------------------------------------- */

static int verify_hmac(const struct jose_key *key, enum jose_alg alg, const void *input,
		       size_t input_len, const unsigned char *sig, size_t sig_len)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;
	int ok;

	if (key->secret_len > INT_MAX ||
	    !HMAC(alg_md(alg), key->secret, (int)key->secret_len, input, input_len, mac, &mac_len))
		return -1;
	ok = sig_len == mac_len && CRYPTO_memcmp(mac, sig, mac_len) == 0;
	OPENSSL_cleanse(mac, sizeof(mac));
	return ok ? 0 : -1;
}

/* JOSE's r||s to the DER that OpenSSL verifies. Returns the length written into
 * *der (OPENSSL_free it), or -1. */
static int ecdsa_der(const unsigned char *sig, size_t half, unsigned char **der)
{
	ECDSA_SIG *es = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(sig, (int)half, NULL);
	BIGNUM *s = BN_bin2bn(sig + half, (int)half, NULL);
	unsigned char *p;
	int len = -1;

	*der = NULL;
	if (!es || !r || !s || !ECDSA_SIG_set0(es, r, s)) {
		BN_free(r);
		BN_free(s);
		goto out;
	}
	len = i2d_ECDSA_SIG(es, NULL);
	if (len > 0)
		*der = OPENSSL_malloc((size_t)len);
	if (!*der) {
		len = -1;
		goto out;
	}
	p = *der;
	len = i2d_ECDSA_SIG(es, &p);
out:
	ECDSA_SIG_free(es);
	return len;
}

static int verify_pkey(const struct jose_key *key, enum jose_alg alg, const void *input,
		       size_t input_len, const unsigned char *sig, size_t sig_len, const char **why)
{
	EVP_MD_CTX *mctx = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	unsigned char *der = NULL;
	const EVP_MD *md = alg_md(alg);
	int rc = -1;

	switch (key->kind) {
	case JOSE_KEY_RSA:
		if ((int)sig_len != EVP_PKEY_get_size(key->pkey)) {
			set_why(why, "signature does not have the key's size");
			goto out;
		}
		break;
	case JOSE_KEY_EC: {
		size_t half = curve_bytes(key->curve);
		int der_len;

		if (sig_len != 2 * half) {
			set_why(why, "ecdsa signature does not have the curve's size");
			goto out;
		}
		der_len = ecdsa_der(sig, half, &der);
		if (der_len < 0) {
			set_why(why, "out of memory");
			goto out;
		}
		sig = der;
		sig_len = (size_t)der_len;
		break;
	}
	case JOSE_KEY_OKP:
		if (sig_len != 64) {
			set_why(why, "eddsa signature is not 64 bytes");
			goto out;
		}
		md = NULL;
		break;
	case JOSE_KEY_HMAC:
		goto out;
	}
	mctx = EVP_MD_CTX_new();
	if (!mctx || EVP_DigestVerifyInit(mctx, &pctx, md, NULL, key->pkey) != 1) {
		set_why(why, "cannot start the verification");
		goto out;
	}
	if (alg == JOSE_PS256 || alg == JOSE_PS384 || alg == JOSE_PS512) {
		if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
		    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0 ||
		    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) <= 0) {
			set_why(why, "cannot set up rsa-pss");
			goto out;
		}
	} else if (key->kind == JOSE_KEY_RSA) {
		if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) <= 0) {
			set_why(why, "cannot set up rsa padding");
			goto out;
		}
	}
	if (EVP_DigestVerify(mctx, sig, sig_len, input, input_len) == 1)
		rc = 0;
	else
		set_why(why, "signature does not verify");
out:
	ERR_clear_error();
	OPENSSL_free(der);
	EVP_MD_CTX_free(mctx);
	return rc;
}

int jose_verify(const struct jose_key *key, enum jose_alg alg,
		const void *input, size_t input_len,
		const unsigned char *sig, size_t sig_len, const char **why)
{
	if (alg == JOSE_ALG_INVALID) {
		set_why(why, "algorithm is not supported");
		return -1;
	}
	if (!jose_key_fits(key, alg)) {
		set_why(why, "key does not fit the algorithm");
		return -1;
	}
	if (sig_len == 0 || sig_len > JOSE_MAX_SIG_BYTES) {
		set_why(why, "signature is empty or too long");
		return -1;
	}
	if (key->kind == JOSE_KEY_HMAC) {
		if (verify_hmac(key, alg, input, input_len, sig, sig_len) != 0) {
			set_why(why, "signature does not verify");
			return -1;
		}
		return 0;
	}
	return verify_pkey(key, alg, input, input_len, sig, sig_len, why);
}

/* ---- key sets ------------------------------------------------------------ */

struct jose_keyset *jose_keyset_new(void)
{
	return calloc(1, sizeof(struct jose_keyset));
}

void jose_keyset_free(struct jose_keyset *ks)
{
	if (!ks)
		return;
	for (size_t i = 0; i < ks->n; i++)
		jose_key_free(ks->keys[i]);
	free(ks->keys);
	free(ks);
}

size_t jose_keyset_count(const struct jose_keyset *ks)
{
	return ks->n;
}

const struct jose_key *jose_keyset_key(const struct jose_keyset *ks, size_t i)
{
	return i < ks->n ? ks->keys[i] : NULL;
}

int jose_keyset_add_key(struct jose_keyset *ks, struct jose_key *key)
{
	if (!key)
		return -1;
	if (ks->n < JOSE_MAX_KEYS && ks->n == ks->cap) {
		size_t cap = ks->cap ? ks->cap * 2 : 4;
		struct jose_key **v = realloc(ks->keys, cap * sizeof(*v));

		if (v) {
			ks->keys = v;
			ks->cap = cap;
		}
	}
	if (ks->n >= JOSE_MAX_KEYS || ks->n == ks->cap) {
		jose_key_free(key);
		return -1;
	}
	ks->keys[ks->n++] = key;
	return 0;
}

/* Drops the keys added after the first 'keep' (an add that failed halfway). */
static void keyset_truncate(struct jose_keyset *ks, size_t keep)
{
	while (ks->n > keep)
		jose_key_free(ks->keys[--ks->n]);
}

static int add_or_fail(struct jose_keyset *ks, struct jose_key *key, const char **why)
{
	if (!key)
		return -1;
	if (jose_keyset_add_key(ks, key) != 0) {
		set_why(why, "too many keys (at most 64)");
		return -1;
	}
	return 0;
}

static int add_jwk_set(struct jose_keyset *ks, struct json_object *keys, const char **why)
{
	size_t keep = ks->n, n;

	if (!json_object_is_type(keys, json_type_array)) {
		set_why(why, "'keys' is not an array");
		return -1;
	}
	n = json_object_array_length(keys);
	for (size_t i = 0; i < n; i++) {
		struct jose_key *key;
		int rc = jwk_parse(json_object_array_get_idx(keys, i), &key, why);

		if (rc < 0 || (rc == 0 && add_or_fail(ks, key, why) != 0)) {
			keyset_truncate(ks, keep);
			return -1;
		}
	}
	if (ks->n == keep) {
		set_why(why, "the key set has no usable signature key");
		return -1;
	}
	return 0;
}

/* APIM's {"n": "...", "e": "..."}: base64, either alphabet. */
static struct jose_key *apim_rsa(const struct json_object *spec, const char **why)
{
	unsigned char *n = NULL, *e = NULL;
	size_t n_len = 0, e_len = 0;
	struct jose_key *key = NULL;

	n = member_b64(spec, "n", B64_URL | B64_PAD, &n_len);
	if (!n)
		n = member_b64(spec, "n", B64_STD | B64_PAD, &n_len);
	e = member_b64(spec, "e", B64_URL | B64_PAD, &e_len);
	if (!e)
		e = member_b64(spec, "e", B64_STD | B64_PAD, &e_len);
	if (!n || !e)
		set_why(why, "rsa 'n' or 'e' is missing or not base64");
	else
		key = rsa_from_bytes(n, n_len, e, e_len, why);
	free(n);
	free(e);
	return key;
}

int jose_keyset_add(struct jose_keyset *ks, const struct json_object *spec, const char **why)
{
	struct json_object *v, *m = json_unconst(spec);
	struct jose_key *key = NULL;
	const char *s;
	size_t len;
	int rc;

	if (json_object_is_type(spec, json_type_string)) {
		unsigned char *secret;
		size_t secret_len = 0;

		s = json_object_get_string(m);
		len = (size_t)json_object_get_string_len(spec);
		secret = b64_dup(s, len, B64_STD | B64_PAD, &secret_len);
		if (!secret)
			secret = b64_dup(s, len, B64_URL | B64_PAD, &secret_len);
		if (!secret) {
			set_why(why, "hmac key is not base64");
			return -1;
		}
		key = jose_key_from_secret(secret, secret_len, why);
		OPENSSL_cleanse(secret, secret_len);
		free(secret);
		return add_or_fail(ks, key, why);
	}
	if (!json_object_is_type(spec, json_type_object)) {
		set_why(why, "key is not a string or an object");
		return -1;
	}
	if (json_object_object_get_ex(spec, "keys", &v))
		return add_jwk_set(ks, v, why);
	if (json_object_object_get_ex(spec, "kty", NULL)) {
		rc = jwk_parse(spec, &key, why);
		return rc == 0 ? add_or_fail(ks, key, why) : -1;
	}
	rc = member_str(spec, "pem", &s, &len);
	if (rc < 0) {
		set_why(why, "'pem' is not a string");
		return -1;
	}
	if (rc == 1)
		key = jose_key_from_pem(s, len, why);
	else if (json_object_object_get_ex(spec, "n", NULL))
		key = apim_rsa(spec, why);
	else {
		set_why(why, "key has none of 'kty', 'keys', 'pem' or 'n'");
		return -1;
	}
	if (!key)
		return -1;
	if (key_attrs(key, spec, why) != 0) {
		jose_key_free(key);
		return -1;
	}
	return add_or_fail(ks, key, why);
}
