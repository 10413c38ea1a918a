/*
 * test_jwt — compact JWS parsing, key choice and claim checks of jwt_validate(),
 * with tokens made here (HMAC over hand-written JSON, so every malformation
 * can be expressed), the RFC 7515 appendix A tokens run through the whole
 * path, and tokens signed at test time by Debian's python3-jwt (PyJWT) for
 * every algorithm (tests/jwt/pyjwt_tokens.py; skipped when PyJWT is absent).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "policy/jose.h"
#include "policy/jwt.h"

#define NOW 1700000000

/* Two 32-byte HMAC secrets, base64url: "0123456789abcdef0123456789abcdef" and
 * "fedcba9876543210fedcba9876543210". */
static const char secret_a[] = "0123456789abcdef0123456789abcdef";
static const char secret_b[] = "fedcba9876543210fedcba9876543210";
static const char secret_a_b64[] = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY";
static const char secret_b_b64[] = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA";

/* RFC 7515 A.1 (HS256), A.2 (RS256) and A.3 (ES256): payload
 * {"iss":"joe",\r\n "exp":1300819380,\r\n "http://example.com/is_root":true}. */
static const char a1_jwk[] =
	"{\"kty\":\"oct\","
	"\"k\":\"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow\"}";
static const char a1_jws[] =
	"eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
	".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
	".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
static const char a2_jwk[] =
	"{\"kty\":\"RSA\",\"e\":\"AQAB\",\"n\":\"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJr"
	"cS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexM"
	"dbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9"
	"iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ\"}";
static const char a2_jws[] =
	"eyJhbGciOiJSUzI1NiJ9"
	".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
	".cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUA"
	"r7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--"
	"xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_Io"
	"ypGlUPQGe77Rw";
static const char a3_jwk[] =
	"{\"kty\":\"EC\",\"crv\":\"P-256\","
	"\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
	"\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}";
static const char a3_jws[] =
	"eyJhbGciOiJFUzI1NiJ9"
	".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
	".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
#define A1_EXP 1300819380

/* The RFC 7515 A.2 public key as PEM: the key an attacker would use as an HMAC
 * secret. */
static const char a2_spki_pem[] =
	"-----BEGIN PUBLIC KEY-----\n"
	"MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAofgWCuLjybRlzo0tZWJj\n"
	"NiuSfb4p4fAkd/wWJcyQoTbji9k0l8W26mPddxHmfHQp+Vaw+4qPCJrcS2mJPMEz\n"
	"P1Pt0Bm4d4QlL+yRT+SFd2lZS+pCgNMsD1W/YpRPEwOWvG6b32690r2jZ47soMZo\n"
	"9wGzjb/7OMg0LOL+bSf63kpaSHSXndS5z5rexMdbBYUsLA9e+KXBdQOS+UTo7WTB\n"
	"EMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6/I5IhlJH7aGhyxX\n"
	"FvUK+DWNmoudF8NAco9/h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXp\n"
	"oQIDAQAB\n"
	"-----END PUBLIC KEY-----\n";

/* ---- helpers ------------------------------------------------------------- */

#define TOKEN_CAP (JWT_MAX_TOKEN_BYTES * 2)

static void append_b64(char *out, size_t cap, size_t *at, const void *data, size_t len)
{
	long n = jose_b64url_encode(data, len, out + *at, cap - *at);

	assert_true(n >= 0);
	*at += (size_t)n;
}

/* Builds header.payload.signature from raw JSON texts; the signature is an
 * HMAC with md over the signing input, or sig_b64 as given when secret is NULL. */
static const char *token_raw(char *out, const char *header, size_t header_len,
			     const char *payload, size_t payload_len,
			     const EVP_MD *md, const void *secret, size_t secret_len,
			     const char *sig_b64)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;
	size_t at = 0;

	append_b64(out, TOKEN_CAP, &at, header, header_len);
	out[at++] = '.';
	append_b64(out, TOKEN_CAP, &at, payload, payload_len);
	if (secret) {
		assert_non_null(HMAC(md, secret, (int)secret_len, (const unsigned char *)out, at, mac, &mac_len));
		out[at++] = '.';
		append_b64(out, TOKEN_CAP, &at, mac, mac_len);
	} else {
		size_t n = strlen(sig_b64);

		out[at++] = '.';
		assert_true(at + n < TOKEN_CAP);
		memcpy(out + at, sig_b64, n + 1);
	}
	return out;
}

/* An HS256 token over header and payload signed with secret (a C string). */
static const char *token_hs(char *out, const char *header, const char *payload, const char *secret)
{
	return token_raw(out, header, strlen(header), payload, strlen(payload), EVP_sha256(),
			 secret, strlen(secret), NULL);
}

static struct jose_keyset *keys_from(const char *json_text)
{
	struct jose_keyset *ks = jose_keyset_new();
	struct json_object *o = json_tokener_parse(json_text);
	const char *why = NULL;

	assert_non_null(ks);
	assert_non_null(o);
	if (jose_keyset_add(ks, o, &why) != 0)
		fail_msg("jose_keyset_add: %s", why);
	json_object_put(o);
	return ks;
}

static void keys_add(struct jose_keyset *ks, const char *json_text)
{
	struct json_object *o = json_tokener_parse(json_text);
	const char *why = NULL;

	assert_non_null(o);
	if (jose_keyset_add(ks, o, &why) != 0)
		fail_msg("jose_keyset_add: %s", why);
	json_object_put(o);
}

/* The default key set: secret_a (kid "a"), secret_b (kid "b"). */
static struct jose_keyset *keys_ab(void)
{
	char buf[256];
	struct jose_keyset *ks;

	snprintf(buf, sizeof(buf), "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"a\",\"k\":\"%s\"},"
		 "{\"kty\":\"oct\",\"kid\":\"b\",\"k\":\"%s\"}]}", secret_a_b64, secret_b_b64);
	ks = keys_from(buf);
	assert_int_equal(jose_keyset_count(ks), 2);
	return ks;
}

/* Validates and checks the invariants of every result: claims only on
 * success, a reason always, the token never in the reason. */
static enum jwt_status run(const char *token, size_t len, const struct jwt_rules *rules,
			   struct jwt_result *res)
{
	enum jwt_status st = jwt_validate(token, len, rules, res);

	assert_int_equal(st, res->status);
	assert_non_null(res->reason);
	assert_true(strlen(res->reason) < 80);
	if (st == JWT_OK)
		assert_non_null(res->claims);
	else
		assert_null(res->claims);
	if (len > 10) {
		char head[11];

		memcpy(head, token, 10);
		head[10] = '\0';
		assert_null(strstr(res->reason, head));
	}
	return st;
}

/* Runs and releases; returns the status. */
static enum jwt_status check(const char *token, const struct jwt_rules *rules)
{
	struct jwt_result res;
	enum jwt_status st = run(token, strlen(token), rules, &res);

	jwt_result_release(&res);
	return st;
}

#define assert_status(token, rules, want) do { \
		enum jwt_status st_ = check((token), (rules)); \
		if (st_ != (want)) \
			fail_msg("status %s, want %s", jwt_status_name(st_), jwt_status_name(want)); \
	} while (0)

static const char hs256[] = "{\"alg\":\"HS256\"}";

/* ---- the RFC tokens through the whole path ------------------------------- */

static void test_rfc7515_tokens(void **state)
{
	struct jwt_rules rules = { .now = A1_EXP - 1, .require_expiration = 1 };
	const char *iss[] = { "joe" };
	struct jose_keyset *ks;
	struct jwt_result res;
	const char *v;
	size_t len;

	(void)state;
	ks = keys_from(a1_jwk);
	rules.keys = ks;
	rules.issuers = iss;
	rules.n_issuers = 1;
	assert_int_equal(run(a1_jws, strlen(a1_jws), &rules, &res), JWT_OK);
	assert_int_equal(res.alg, JOSE_HS256);
	v = jwt_claim_text(&res, "iss", &len);
	assert_non_null(v);
	assert_int_equal(len, 3);
	assert_string_equal(v, "joe");
	v = jwt_claim_text(&res, "http://example.com/is_root", &len);
	assert_string_equal(v, "true");
	v = jwt_claim_text(&res, "exp", &len);
	assert_string_equal(v, "1300819380");
	assert_null(jwt_claim_text(&res, "sub", &len));
	jwt_result_release(&res);
	assert_null(jwt_claim_text(&res, "iss", &len));

	/* exp is exclusive: at exp the token is expired. */
	rules.now = A1_EXP;
	assert_status(a1_jws, &rules, JWT_EXPIRED);
	rules.clock_skew = 10;
	rules.now = A1_EXP + 9;
	assert_status(a1_jws, &rules, JWT_OK);
	rules.now = A1_EXP + 10;
	assert_status(a1_jws, &rules, JWT_EXPIRED);
	rules.clock_skew = 0;
	rules.now = A1_EXP - 1;
	jose_keyset_free(ks);

	ks = keys_from(a2_jwk);
	rules.keys = ks;
	assert_status(a2_jws, &rules, JWT_OK);
	assert_status(a1_jws, &rules, JWT_NO_KEY);	/* HS256 with only an RSA key */
	jose_keyset_free(ks);

	ks = keys_from(a3_jwk);
	rules.keys = ks;
	assert_status(a3_jws, &rules, JWT_OK);
	assert_status(a2_jws, &rules, JWT_NO_KEY);
	jose_keyset_free(ks);
}

/* ---- alg ----------------------------------------------------------------- */

static void test_alg_none_and_unknown(void **state)
{
	struct jose_keyset *ks = keys_ab();
	struct jwt_rules rules = { .keys = ks, .now = NOW };
	static const char *const headers[] = {
		"{\"alg\":\"none\"}", "{\"alg\":\"None\"}", "{\"alg\":\"NONE\"}", "{\"alg\":\"\"}",
		"{\"alg\":\"HS257\"}", "{\"alg\":\"hs256\"}", "{\"alg\":null}", "{\"alg\":256}",
		"{\"alg\":[\"HS256\"]}", "{\"typ\":\"JWT\"}", "{}", "{\"alg\":\"HS256\\u0000\"}",
	};
	char tok[TOKEN_CAP];

	(void)state;
	for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
		/* Unsigned (empty signature, RFC 7515 A.5), and signed with a real key. */
		assert_status(token_raw(tok, headers[i], strlen(headers[i]), "{}", 2, NULL, NULL, 0, ""),
			      &rules, JWT_BAD_ALG);
		assert_status(token_hs(tok, headers[i], "{}", secret_a), &rules, JWT_BAD_ALG);
	}
	/* RFC 7515 A.5 verbatim. */
	assert_status("eyJhbGciOiJub25lIn0"
		      ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.",
		      &rules, JWT_BAD_ALG);
	/* HS256 header, empty signature. */
	assert_status(token_raw(tok, hs256, strlen(hs256), "{}", 2, NULL, NULL, 0, ""), &rules, JWT_MALFORMED);
	/* A critical extension we cannot understand. */
	assert_status(token_hs(tok, "{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}", "{}", secret_a),
		      &rules, JWT_BAD_ALG);
	/* The control: the same token without those defects passes. */
	assert_status(token_hs(tok, hs256, "{}", secret_a), &rules, JWT_OK);
	jose_keyset_free(ks);
}

/* ---- malformed tokens ---------------------------------------------------- */

static void test_malformed(void **state)
{
	struct jose_keyset *ks = keys_ab();
	struct jwt_rules rules = { .keys = ks, .now = NOW };
	char tok[TOKEN_CAP], *big;
	size_t n;

	(void)state;
	token_hs(tok, hs256, "{\"sub\":\"x\"}", secret_a);
	assert_status(tok, &rules, JWT_OK);
	n = strlen(tok);

	assert_status("", &rules, JWT_MALFORMED);
	assert_status(".", &rules, JWT_MALFORMED);
	assert_status("..", &rules, JWT_MALFORMED);
	assert_status("abc", &rules, JWT_MALFORMED);
	/* Two parts; four parts. */
	*strrchr(tok, '.') = '\0';
	assert_status(tok, &rules, JWT_MALFORMED);
	token_hs(tok, hs256, "{\"sub\":\"x\"}", secret_a);
	memcpy(tok + n, ".AAAA", 6);
	assert_status(tok, &rules, JWT_MALFORMED);
	/* A character outside base64url, padding, whitespace, in each part. */
	token_hs(tok, hs256, "{\"sub\":\"x\"}", secret_a);
	tok[2] = '+';
	assert_status(tok, &rules, JWT_MALFORMED);
	token_hs(tok, hs256, "{\"sub\":\"x\"}", secret_a);
	memcpy(tok + n, "=", 2);
	assert_status(tok, &rules, JWT_MALFORMED);
	token_hs(tok, hs256, "{\"sub\":\"x\"}", secret_a);
	tok[strchr(tok, '.') - tok + 3] = ' ';
	assert_status(tok, &rules, JWT_MALFORMED);
	/* A NUL inside the length given. */
	{
		struct jwt_result res;

		token_hs(tok, hs256, "{\"sub\":\"x\"}", secret_a);
		tok[5] = '\0';
		assert_int_equal(run(tok, n, &rules, &res), JWT_MALFORMED);
		jwt_result_release(&res);
	}
	/* Header is not a JSON object, not JSON, has trailing bytes, a raw NUL. */
	assert_status(token_hs(tok, "[\"HS256\"]", "{}", secret_a), &rules, JWT_MALFORMED);
	assert_status(token_hs(tok, "\"HS256\"", "{}", secret_a), &rules, JWT_MALFORMED);
	assert_status(token_hs(tok, "1", "{}", secret_a), &rules, JWT_MALFORMED);
	assert_status(token_hs(tok, "{alg:\"HS256\"}", "{}", secret_a), &rules, JWT_MALFORMED);
	assert_status(token_hs(tok, "{\"alg\":\"HS256\",}", "{}", secret_a), &rules, JWT_MALFORMED);
	assert_status(token_hs(tok, "{\"alg\":\"HS256\"}x", "{}", secret_a), &rules, JWT_MALFORMED);
	assert_status(token_hs(tok, "{\"alg\":\"HS256\"}{}", "{}", secret_a), &rules, JWT_MALFORMED);
	assert_status(token_hs(tok, "{\"alg\":\"HS256\"", "{}", secret_a), &rules, JWT_MALFORMED);
	assert_status(token_hs(tok, "", "{}", secret_a), &rules, JWT_MALFORMED);
	assert_status(token_raw(tok, "{\"alg\":\"HS256\"}\0", 16, "{}", 2, EVP_sha256(),
				secret_a, 32, NULL), &rules, JWT_MALFORMED);
	/* Whitespace around the JSON is JSON. */
	assert_status(token_hs(tok, " {\"alg\" : \"HS256\"}\r\n", "\t{ }\n", secret_a), &rules, JWT_OK);
	/* Payload not an object, not JSON, or with bytes that are not UTF-8. */
	assert_status(token_hs(tok, hs256, "[]", secret_a), &rules, JWT_MALFORMED);
	assert_status(token_hs(tok, hs256, "\"sub\"", secret_a), &rules, JWT_MALFORMED);
	assert_status(token_hs(tok, hs256, "", secret_a), &rules, JWT_MALFORMED);
	assert_status(token_hs(tok, hs256, "{\"sub\":\"\xff\xfe\"}", secret_a), &rules, JWT_MALFORMED);
	/* kid must be a string. */
	assert_status(token_hs(tok, "{\"alg\":\"HS256\",\"kid\":1}", "{}", secret_a), &rules, JWT_MALFORMED);
	assert_status(token_hs(tok, "{\"alg\":\"HS256\",\"kid\":\"a\\u0000b\"}", "{}", secret_a),
		      &rules, JWT_MALFORMED);

	/* Size: the cap is on the token's length, whatever it holds. */
	big = malloc(JWT_MAX_TOKEN_BYTES + 100);
	assert_non_null(big);
	{
		size_t pad = 0;
		char payload[JWT_MAX_TOKEN_BYTES];

		/* Find the largest "x" claim that still fits, then one more byte. */
		for (pad = 11000; pad < sizeof(payload) - 20; pad++) {
			memcpy(payload, "{\"x\":\"", 6);
			memset(payload + 6, 'a', pad);
			memcpy(payload + 6 + pad, "\"}", 3);
			token_hs(tok, hs256, payload, secret_a);
			if (strlen(tok) > JWT_MAX_TOKEN_BYTES)
				break;
			memcpy(big, tok, strlen(tok) + 1);
		}
		assert_true(strlen(big) <= JWT_MAX_TOKEN_BYTES);
		assert_true(strlen(big) > JWT_MAX_TOKEN_BYTES - 8);
		assert_status(big, &rules, JWT_OK);
		assert_true(strlen(tok) > JWT_MAX_TOKEN_BYTES);
		assert_status(tok, &rules, JWT_MALFORMED);
	}
	free(big);
	jose_keyset_free(ks);
}

/* Nesting depth: at most JWT_MAX_JSON_DEPTH levels, header and payload. */
static void test_depth(void **state)
{
	struct jose_keyset *ks = keys_ab();
	struct jwt_rules rules = { .keys = ks, .now = NOW };
	char tok[TOKEN_CAP], json[256];
	size_t at;

	(void)state;
	for (int depth = JWT_MAX_JSON_DEPTH - 1; depth <= JWT_MAX_JSON_DEPTH + 1; depth++) {
		/* The object itself is level 1; then depth-1 arrays. */
		at = 0;
		at += (size_t)snprintf(json, sizeof(json), "{\"x\":");
		for (int i = 1; i < depth; i++)
			json[at++] = '[';
		json[at++] = '1';
		for (int i = 1; i < depth; i++)
			json[at++] = ']';
		json[at++] = '}';
		json[at] = '\0';
		assert_status(token_hs(tok, hs256, json, secret_a), &rules,
			      depth <= JWT_MAX_JSON_DEPTH ? JWT_OK : JWT_MALFORMED);
		memmove(json + 19, json + 5, at - 5 + 1);
		memcpy(json, "{\"alg\":\"HS256\",\"x\":", 19);
		assert_status(token_hs(tok, json, "{}", secret_a), &rules,
			      depth <= JWT_MAX_JSON_DEPTH ? JWT_OK : JWT_MALFORMED);
	}
	jose_keyset_free(ks);
}

/* Repeated member names: json-c would keep the last one silently. */
static void test_duplicates(void **state)
{
	struct jose_keyset *ks = keys_ab();
	struct jwt_rules rules = { .keys = ks, .now = NOW, .require_expiration = 1 };
	const char *aud[] = { "api" };
	char tok[TOKEN_CAP];

	(void)state;
	assert_status(token_hs(tok, "{\"alg\":\"none\",\"alg\":\"HS256\"}", "{\"exp\":1800000000}", secret_a),
		      &rules, JWT_MALFORMED);
	assert_status(token_hs(tok, "{\"alg\":\"HS256\",\"kid\":\"b\",\"kid\":\"a\"}", "{\"exp\":1800000000}",
			       secret_a), &rules, JWT_MALFORMED);
	assert_status(token_hs(tok, hs256, "{\"exp\":1,\"exp\":1800000000}", secret_a), &rules, JWT_MALFORMED);
	/* Nested objects count too; a name repeated in different objects is fine. */
	assert_status(token_hs(tok, hs256, "{\"exp\":1800000000,\"o\":{\"a\":1,\"a\":2}}", secret_a),
		      &rules, JWT_MALFORMED);
	assert_status(token_hs(tok, hs256, "{\"exp\":1800000000,\"o\":{\"exp\":1},\"p\":[{\"exp\":2}]}", secret_a),
		      &rules, JWT_OK);
	/* Colons and quotes inside strings are not members. */
	assert_status(token_hs(tok, hs256, "{\"exp\":1800000000,\"u\":\"a:b\\\":c\",\"v:\":\"\\\\\"}", secret_a),
		      &rules, JWT_OK);
	rules.audiences = aud;
	rules.n_audiences = 1;
	assert_status(token_hs(tok, hs256, "{\"exp\":1800000000,\"aud\":\"x\",\"aud\":\"api\"}", secret_a),
		      &rules, JWT_MALFORMED);
	jose_keyset_free(ks);
}

/* ---- keys ---------------------------------------------------------------- */

static void test_kid_selection(void **state)
{
	struct jose_keyset *ks = keys_ab();
	struct jwt_rules rules = { .keys = ks, .now = NOW };
	char tok[TOKEN_CAP];

	(void)state;
	/* The kid picks the key. */
	assert_status(token_hs(tok, "{\"alg\":\"HS256\",\"kid\":\"b\"}", "{}", secret_b), &rules, JWT_OK);
	assert_status(token_hs(tok, "{\"alg\":\"HS256\",\"kid\":\"a\"}", "{}", secret_a), &rules, JWT_OK);
	/* A kid naming another key than the one that signed: only that key is tried. */
	assert_status(token_hs(tok, "{\"alg\":\"HS256\",\"kid\":\"a\"}", "{}", secret_b), &rules, JWT_BAD_SIGNATURE);
	/* Without a kid, every key that fits is tried. */
	assert_status(token_hs(tok, hs256, "{}", secret_b), &rules, JWT_OK);
	/* An unknown kid: keys that have another kid are not tried. */
	assert_status(token_hs(tok, "{\"alg\":\"HS256\",\"kid\":\"zzz\"}", "{}", secret_b), &rules, JWT_NO_KEY);
	/* ...but keys without a kid are. */
	{
		char buf[128];

		snprintf(buf, sizeof(buf), "\"%s\"", "Y2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2M=");	/* 32 x 'c' */
		keys_add(ks, buf);
	}
	assert_status(token_hs(tok, "{\"alg\":\"HS256\",\"kid\":\"zzz\"}", "{}", "cccccccccccccccccccccccccccccccc"),
		      &rules, JWT_OK);
	assert_status(token_hs(tok, "{\"alg\":\"HS256\",\"kid\":\"zzz\"}", "{}", secret_b), &rules, JWT_BAD_SIGNATURE);
	/* A wrong secret. */
	assert_status(token_hs(tok, hs256, "{}", "dddddddddddddddddddddddddddddddd"), &rules, JWT_BAD_SIGNATURE);
	/* HS512 with 32-byte keys: none fits (RFC 7518 3.2 wants 64 bytes). */
	assert_status(token_raw(tok, "{\"alg\":\"HS512\"}", 15, "{}", 2, EVP_sha512(), secret_a, 32, NULL),
		      &rules, JWT_NO_KEY);
	/* No keys at all. */
	rules.keys = NULL;
	assert_status(token_hs(tok, hs256, "{}", secret_a), &rules, JWT_NO_KEY);
	jose_keyset_free(ks);
}

/* The attack: take the RSA public key's PEM (public), HMAC a token with it,
 * claim HS256. The configured key is RSA, so no HMAC key exists to try. */
static void test_alg_confusion(void **state)
{
	struct jose_keyset *ks = jose_keyset_new();
	struct jwt_rules rules = { .now = NOW };
	struct json_object *o = json_object_new_object();
	const char *why = NULL;
	char tok[TOKEN_CAP];

	(void)state;
	json_object_object_add(o, "pem", json_object_new_string(a2_spki_pem));
	json_object_object_add(o, "kid", json_object_new_string("rsa"));
	assert_int_equal(jose_keyset_add(ks, o, &why), 0);
	json_object_put(o);
	rules.keys = ks;
	assert_status(token_hs(tok, "{\"alg\":\"HS256\"}", "{\"sub\":\"admin\"}", a2_spki_pem), &rules, JWT_NO_KEY);
	assert_status(token_hs(tok, "{\"alg\":\"HS256\",\"kid\":\"rsa\"}", "{\"sub\":\"admin\"}", a2_spki_pem),
		      &rules, JWT_NO_KEY);
	/* Nor with the key in any other encoding (here: the JWK's n). */
	assert_status(token_hs(tok, "{\"alg\":\"HS256\"}", "{\"sub\":\"admin\"}", a2_jwk), &rules, JWT_NO_KEY);
	/* The real RS256 token still verifies with that key. */
	rules.now = A1_EXP - 1;
	assert_status(a2_jws, &rules, JWT_OK);
	jose_keyset_free(ks);
}

/* ---- claims -------------------------------------------------------------- */

static void test_exp_nbf(void **state)
{
	struct jose_keyset *ks = keys_ab();
	struct jwt_rules rules = { .keys = ks, .now = NOW };
	char tok[TOKEN_CAP];

	(void)state;
	/* No exp: fine unless required. */
	token_hs(tok, hs256, "{\"sub\":\"x\"}", secret_a);
	assert_status(tok, &rules, JWT_OK);
	rules.require_expiration = 1;
	assert_status(tok, &rules, JWT_NO_EXPIRATION);
	assert_status(token_hs(tok, hs256, "{\"exp\":null}", secret_a), &rules, JWT_BAD_CLAIM);
	assert_status(token_hs(tok, hs256, "{\"exp\":\"1800000000\"}", secret_a), &rules, JWT_BAD_CLAIM);
	assert_status(token_hs(tok, hs256, "{\"exp\":true}", secret_a), &rules, JWT_BAD_CLAIM);

	/* exp, with and without skew; fractional seconds. */
	token_hs(tok, hs256, "{\"exp\":1700000000}", secret_a);
	assert_status(tok, &rules, JWT_EXPIRED);
	rules.now = NOW - 1;
	assert_status(tok, &rules, JWT_OK);
	rules.now = NOW + 30;
	rules.clock_skew = 30;
	assert_status(tok, &rules, JWT_EXPIRED);
	rules.now = NOW + 29;
	assert_status(tok, &rules, JWT_OK);
	rules.clock_skew = 0;
	rules.now = NOW;
	assert_status(token_hs(tok, hs256, "{\"exp\":1700000000.5}", secret_a), &rules, JWT_OK);
	assert_status(token_hs(tok, hs256, "{\"exp\":1699999999.5}", secret_a), &rules, JWT_EXPIRED);
	assert_status(token_hs(tok, hs256, "{\"exp\":1.7e9}", secret_a), &rules, JWT_EXPIRED);
	assert_status(token_hs(tok, hs256, "{\"exp\":99999999999999999999}", secret_a), &rules, JWT_OK);
	assert_status(token_hs(tok, hs256, "{\"exp\":-1}", secret_a), &rules, JWT_EXPIRED);

	/* nbf. */
	token_hs(tok, hs256, "{\"exp\":1800000000,\"nbf\":1700000100}", secret_a);
	assert_status(tok, &rules, JWT_NOT_YET_VALID);
	rules.clock_skew = 99;
	assert_status(tok, &rules, JWT_NOT_YET_VALID);
	rules.clock_skew = 100;
	assert_status(tok, &rules, JWT_OK);
	rules.clock_skew = 0;
	rules.now = NOW + 100;
	assert_status(tok, &rules, JWT_OK);
	assert_status(token_hs(tok, hs256, "{\"exp\":1800000000,\"nbf\":\"0\"}", secret_a), &rules, JWT_BAD_CLAIM);
	jose_keyset_free(ks);
}

/* The cache: a hit still checks time and claims, a failure is never cached,
 * and only the exact token hits. */
static void test_cache(void **state)
{
	struct jose_keyset *ks = keys_ab();
	struct jwt_rules rules = { .keys = ks, .now = NOW };
	struct jwt_cache *cache = jwt_cache_new();
	struct jwt_result res;
	char tok[TOKEN_CAP], bad[TOKEN_CAP];
	const char *sub;
	size_t len;

	(void)state;
	assert_non_null(cache);
	token_hs(tok, hs256, "{\"exp\":1700000100,\"sub\":\"alice\",\"aud\":\"api\"}", secret_a);
	for (int i = 0; i < 3; i++) {	/* a miss, then hits */
		memset(&res, 0, sizeof(res));
		assert_int_equal(jwt_validate_cached(cache, tok, strlen(tok), &rules, &res), JWT_OK);
		sub = jwt_claim_text(&res, "sub", &len);
		assert_non_null(sub);
		assert_memory_equal(sub, "alice", 5);
		jwt_result_release(&res);
	}
	/* the same cached token, other rules: the claims are checked again */
	{
		const char *aud[] = { "other" };

		rules.audiences = aud;
		rules.n_audiences = 1;
		memset(&res, 0, sizeof(res));
		assert_int_equal(jwt_validate_cached(cache, tok, strlen(tok), &rules, &res),
				 JWT_BAD_AUDIENCE);
		assert_null(res.claims);
		rules.audiences = NULL;
		rules.n_audiences = 0;
	}
	/* a tampered signature is not the cached token: verified, refused */
	memcpy(bad, tok, strlen(tok) + 1);
	bad[strlen(bad) - 2] = bad[strlen(bad) - 2] == 'A' ? 'B' : 'A';
	memset(&res, 0, sizeof(res));
	assert_int_equal(jwt_validate_cached(cache, bad, strlen(bad), &rules, &res), JWT_BAD_SIGNATURE);
	/* ... and not cached either */
	memset(&res, 0, sizeof(res));
	assert_int_equal(jwt_validate_cached(cache, bad, strlen(bad), &rules, &res), JWT_BAD_SIGNATURE);
	/* time moves on: the cached token expires like any other */
	rules.now = NOW + 100;
	memset(&res, 0, sizeof(res));
	assert_int_equal(jwt_validate_cached(cache, tok, strlen(tok), &rules, &res), JWT_EXPIRED);
	assert_null(res.claims);
	/* more distinct tokens than slots: still right */
	rules.now = NOW;
	for (int i = 0; i < JWT_CACHE_SLOTS + 10; i++) {
		char payload[96];

		snprintf(payload, sizeof(payload), "{\"exp\":1700000100,\"n\":%d}", i);
		token_hs(tok, hs256, payload, secret_a);
		memset(&res, 0, sizeof(res));
		assert_int_equal(jwt_validate_cached(cache, tok, strlen(tok), &rules, &res), JWT_OK);
		jwt_result_release(&res);
	}
	jwt_cache_free(cache);
	jose_keyset_free(ks);
}

static void test_issuer_audience(void **state)
{
	struct jose_keyset *ks = keys_ab();
	const char *iss[] = { "https://login.example/a", "https://login.example/b" };
	const char *aud[] = { "api://weather", "api://maps" };
	struct jwt_rules rules = { .keys = ks, .now = NOW, .issuers = iss, .n_issuers = 2 };
	char tok[TOKEN_CAP];

	(void)state;
	assert_status(token_hs(tok, hs256, "{\"iss\":\"https://login.example/b\"}", secret_a), &rules, JWT_OK);
	assert_status(token_hs(tok, hs256, "{\"iss\":\"https://login.example/c\"}", secret_a), &rules, JWT_BAD_ISSUER);
	assert_status(token_hs(tok, hs256, "{\"iss\":\"https://login.example/B\"}", secret_a), &rules, JWT_BAD_ISSUER);
	assert_status(token_hs(tok, hs256, "{\"iss\":\"https://login.example/b/\"}", secret_a), &rules, JWT_BAD_ISSUER);
	assert_status(token_hs(tok, hs256, "{\"iss\":\"https://login.example/b\\u0000x\"}", secret_a),
		      &rules, JWT_BAD_ISSUER);
	assert_status(token_hs(tok, hs256, "{\"iss\":[\"https://login.example/b\"]}", secret_a), &rules, JWT_BAD_ISSUER);
	assert_status(token_hs(tok, hs256, "{\"sub\":\"x\"}", secret_a), &rules, JWT_BAD_ISSUER);

	rules.n_issuers = 0;
	rules.audiences = aud;
	rules.n_audiences = 2;
	assert_status(token_hs(tok, hs256, "{\"aud\":\"api://maps\"}", secret_a), &rules, JWT_OK);
	assert_status(token_hs(tok, hs256, "{\"aud\":[\"x\",\"api://weather\"]}", secret_a), &rules, JWT_OK);
	assert_status(token_hs(tok, hs256, "{\"aud\":[1,null,{},\"api://maps\"]}", secret_a), &rules, JWT_OK);
	assert_status(token_hs(tok, hs256, "{\"aud\":[\"x\",\"y\"]}", secret_a), &rules, JWT_BAD_AUDIENCE);
	assert_status(token_hs(tok, hs256, "{\"aud\":[]}", secret_a), &rules, JWT_BAD_AUDIENCE);
	assert_status(token_hs(tok, hs256, "{\"aud\":\"api://map\"}", secret_a), &rules, JWT_BAD_AUDIENCE);
	assert_status(token_hs(tok, hs256, "{\"sub\":\"x\"}", secret_a), &rules, JWT_BAD_AUDIENCE);
	assert_status(token_hs(tok, hs256, "{\"aud\":7}", secret_a), &rules, JWT_BAD_CLAIM);
	/* Without audiences configured, aud is not looked at. */
	rules.n_audiences = 0;
	assert_status(token_hs(tok, hs256, "{\"aud\":7}", secret_a), &rules, JWT_OK);
	jose_keyset_free(ks);
}

static void test_required_claims(void **state)
{
	struct jose_keyset *ks = keys_ab();
	static const char *const admin[] = { "admin" };
	static const char *const admin_ops[] = { "admin", "ops" };
	static const char *const read_write[] = { "read", "write" };
	static const char *const three[] = { "3" };
	static const char *const yes[] = { "true" };
	struct jwt_required_claim rc[1];
	struct jwt_rules rules = { .keys = ks, .now = NOW, .claims = rc, .n_claims = 1 };
	char tok[TOKEN_CAP];
	static const struct {
		const char *payload;
		const char *name;
		enum jwt_match match;
		const char *const *values;
		size_t n;
		char sep;
		enum jwt_status want;
	} table[] = {
		{ "{\"role\":\"admin\"}", "role", JWT_MATCH_ALL, admin, 1, 0, JWT_OK },
		{ "{\"role\":\"Admin\"}", "role", JWT_MATCH_ALL, admin, 1, 0, JWT_CLAIM_MISMATCH },
		{ "{\"role\":[\"user\",\"admin\"]}", "role", JWT_MATCH_ALL, admin, 1, 0, JWT_OK },
		{ "{\"role\":[\"user\",\"admin\"]}", "role", JWT_MATCH_ALL, admin_ops, 2, 0, JWT_CLAIM_MISMATCH },
		{ "{\"role\":[\"user\",\"admin\"]}", "role", JWT_MATCH_ANY, admin_ops, 2, 0, JWT_OK },
		{ "{\"role\":[\"ops\",\"admin\"]}", "role", JWT_MATCH_ALL, admin_ops, 2, 0, JWT_OK },
		{ "{\"role\":[\"user\"]}", "role", JWT_MATCH_ANY, admin_ops, 2, 0, JWT_CLAIM_MISMATCH },
		{ "{\"role\":\"admin ops\"}", "role", JWT_MATCH_ALL, admin_ops, 2, 0, JWT_CLAIM_MISMATCH },
		{ "{\"scope\":\"read write\"}", "scope", JWT_MATCH_ALL, read_write, 2, ' ', JWT_OK },
		{ "{\"scope\":\"write\"}", "scope", JWT_MATCH_ALL, read_write, 2, ' ', JWT_CLAIM_MISMATCH },
		{ "{\"scope\":\"write\"}", "scope", JWT_MATCH_ANY, read_write, 2, ' ', JWT_OK },
		{ "{\"scope\":\"readwrite\"}", "scope", JWT_MATCH_ANY, read_write, 2, ' ', JWT_CLAIM_MISMATCH },
		{ "{\"scope\":\" read  \"}", "scope", JWT_MATCH_ANY, read_write, 2, ' ', JWT_OK },
		{ "{\"level\":3}", "level", JWT_MATCH_ALL, three, 1, 0, JWT_OK },
		{ "{\"level\":\"3\"}", "level", JWT_MATCH_ALL, three, 1, 0, JWT_OK },
		{ "{\"level\":[1,3]}", "level", JWT_MATCH_ALL, three, 1, 0, JWT_OK },
		{ "{\"level\":4}", "level", JWT_MATCH_ALL, three, 1, 0, JWT_CLAIM_MISMATCH },
		{ "{\"ok\":true}", "ok", JWT_MATCH_ALL, yes, 1, 0, JWT_OK },
		{ "{\"role\":{\"admin\":1}}", "role", JWT_MATCH_ANY, admin, 1, 0, JWT_CLAIM_MISMATCH },
		{ "{\"role\":null}", "role", JWT_MATCH_ANY, admin, 1, 0, JWT_CLAIM_MISMATCH },
		{ "{\"other\":\"admin\"}", "role", JWT_MATCH_ANY, admin, 1, 0, JWT_CLAIM_MISMATCH },
		/* No values: presence only. */
		{ "{\"tid\":\"x\"}", "tid", JWT_MATCH_ALL, NULL, 0, 0, JWT_OK },
		{ "{\"tid\":0}", "tid", JWT_MATCH_ALL, NULL, 0, 0, JWT_OK },
		{ "{\"tid\":null}", "tid", JWT_MATCH_ALL, NULL, 0, 0, JWT_CLAIM_MISMATCH },
		{ "{\"sub\":\"x\"}", "tid", JWT_MATCH_ALL, NULL, 0, 0, JWT_CLAIM_MISMATCH },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		enum jwt_status st;

		rc[0].name = table[i].name;
		rc[0].match = table[i].match;
		rc[0].values = table[i].values;
		rc[0].n_values = table[i].n;
		rc[0].separator = table[i].sep;
		st = check(token_hs(tok, hs256, table[i].payload, secret_a), &rules);
		if (st != table[i].want)
			fail_msg("case %zu (%s): status %s, want %s", i, table[i].payload,
				 jwt_status_name(st), jwt_status_name(table[i].want));
	}
	/* Several rules: all must hold. */
	{
		struct jwt_required_claim two[2] = {
			{ .name = "role", .match = JWT_MATCH_ANY, .values = admin, .n_values = 1 },
			{ .name = "scope", .match = JWT_MATCH_ALL, .values = read_write, .n_values = 2, .separator = ' ' },
		};

		rules.claims = two;
		rules.n_claims = 2;
		assert_status(token_hs(tok, hs256, "{\"role\":\"admin\",\"scope\":\"write read\"}", secret_a), &rules, JWT_OK);
		assert_status(token_hs(tok, hs256, "{\"role\":\"admin\",\"scope\":\"read\"}", secret_a), &rules,
			      JWT_CLAIM_MISMATCH);
		assert_status(token_hs(tok, hs256, "{\"role\":\"user\",\"scope\":\"write read\"}", secret_a), &rules,
			      JWT_CLAIM_MISMATCH);
	}
	jose_keyset_free(ks);
}

static void test_claim_text(void **state)
{
	struct jose_keyset *ks = keys_ab();
	struct jwt_rules rules = { .keys = ks, .now = NOW };
	struct jwt_result res;
	char tok[TOKEN_CAP];
	const char *v;
	size_t len = 0;

	(void)state;
	token_hs(tok, hs256, "{\"sub\":\"al/ice\",\"n\":42,\"f\":1.5,\"b\":false,\"z\":null,"
		 "\"a\":[\"x\",1],\"o\":{\"k\":\"v\"},\"nul\":\"a\\u0000b\",\"crlf\":\"a\\r\\nb\"}", secret_a);
	assert_int_equal(run(tok, strlen(tok), &rules, &res), JWT_OK);
	assert_string_equal(jwt_claim_text(&res, "sub", &len), "al/ice");
	assert_string_equal(jwt_claim_text(&res, "n", &len), "42");
	assert_int_equal(len, 2);
	assert_string_equal(jwt_claim_text(&res, "f", &len), "1.5");
	assert_string_equal(jwt_claim_text(&res, "b", &len), "false");
	assert_null(jwt_claim_text(&res, "z", &len));
	assert_null(jwt_claim_text(&res, "missing", &len));
	assert_string_equal(jwt_claim_text(&res, "a", &len), "[\"x\",1]");
	assert_string_equal(jwt_claim_text(&res, "o", &len), "{\"k\":\"v\"}");
	v = jwt_claim_text(&res, "nul", &len);
	assert_int_equal(len, 3);
	assert_memory_equal(v, "a\0b", 3);
	v = jwt_claim_text(&res, "crlf", &len);
	assert_int_equal(len, 4);
	assert_memory_equal(v, "a\r\nb", 4);
	jwt_result_release(&res);
	jwt_result_release(&res);	/* twice is fine */

	/* A token that fails gives no claims, even when its payload is readable. */
	token_hs(tok, hs256, "{\"sub\":\"mallory\"}", "dddddddddddddddddddddddddddddddd");
	assert_int_equal(run(tok, strlen(tok), &rules, &res), JWT_BAD_SIGNATURE);
	assert_null(jwt_claim_text(&res, "sub", &len));
	jwt_result_release(&res);
	jose_keyset_free(ks);
}

/* ---- cross-check with PyJWT ---------------------------------------------- */

static void test_pyjwt(void **state)
{
	static const char script[] = "tests/jwt/pyjwt_tokens.py";
	const char *aud[] = { "hostgate" };
	const char *iss[] = { "pyjwt" };
	const char *admin[] = { "admin" };
	const char *rw[] = { "write", "read" };
	const char *three[] = { "3" };
	struct jwt_required_claim rc[3] = {
		{ .name = "role", .match = JWT_MATCH_ANY, .values = admin, .n_values = 1 },
		{ .name = "scope", .match = JWT_MATCH_ALL, .values = rw, .n_values = 2, .separator = ' ' },
		{ .name = "level", .match = JWT_MATCH_ALL, .values = three, .n_values = 1 },
	};
	struct jwt_rules rules = { .now = (int64_t)time(NULL), .clock_skew = 5, .require_expiration = 1,
				   .issuers = iss, .n_issuers = 1, .audiences = aud, .n_audiences = 1,
				   .claims = rc, .n_claims = 3 };
	char *line = NULL;
	size_t cap = 0, lines = 0, ok = 0;
	ssize_t got;
	FILE *p;
	int status;

	(void)state;
	if (access("/usr/bin/python3", X_OK) != 0 || access(script, R_OK) != 0) {
		print_message("no /usr/bin/python3 or %s (run from the repository root): skipped\n", script);
		skip();
	}
	p = popen("/usr/bin/python3 tests/jwt/pyjwt_tokens.py", "r");
	assert_non_null(p);
	while ((got = getline(&line, &cap, p)) > 0) {
		char *expect = line, *alg, *jwk, *token, *tab;
		struct jose_keyset *ks;
		struct jwt_result res;
		enum jwt_status st;

		line[strcspn(line, "\n")] = '\0';
		alg = strchr(expect, '\t');
		assert_non_null(alg);
		*alg++ = '\0';
		jwk = strchr(alg, '\t');
		assert_non_null(jwk);
		*jwk++ = '\0';
		token = strchr(jwk, '\t');
		assert_non_null(token);
		*token++ = '\0';
		lines++;

		ks = keys_from(jwk);
		rules.keys = ks;
		st = run(token, strlen(token), &rules, &res);
		if (strcmp(jwt_status_name(st), expect) != 0)
			fail_msg("pyjwt %s token: status %s (%s), want %s", alg, jwt_status_name(st), res.reason, expect);
		if (st == JWT_OK) {
			size_t len;

			ok++;
			assert_int_equal(res.alg, jose_alg_from_name(alg));
			assert_string_equal(jwt_claim_text(&res, "sub", &len), "alice");
			assert_string_equal(jwt_claim_text(&res, "level", &len), "3");
		}
		jwt_result_release(&res);

		/* One payload character changed: the signature no longer holds. */
		tab = strchr(token, '.') + 5;
		*tab = *tab == 'A' ? 'B' : 'A';
		assert_status(token, &rules, JWT_BAD_SIGNATURE);
		jose_keyset_free(ks);
	}
	free(line);
	status = pclose(p);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 77 && lines == 0) {
		print_message("python3-jwt is not installed: skipped\n");
		skip();
	}
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* 13 algorithms, 3 tokens each; one in three should pass. */
	assert_int_equal(lines, 13 * 3);
	assert_int_equal(ok, 13);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc7515_tokens),
		cmocka_unit_test(test_alg_none_and_unknown),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_kid_selection),
		cmocka_unit_test(test_alg_confusion),
		cmocka_unit_test(test_exp_nbf),
		cmocka_unit_test(test_cache),
		cmocka_unit_test(test_issuer_audience),
		cmocka_unit_test(test_required_claims),
		cmocka_unit_test(test_claim_text),
		cmocka_unit_test(test_pyjwt),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
