/*
 * fuzz_jwt — jwt_validate on arbitrary tokens against a fixed key set (RFC
 * 7515 A.1 HMAC, A.2 RSA, A.3 P-256, A.4 P-521, RFC 8037 Ed25519), and, for an
 * input that starts with '{', '[' or '"', jose_keyset_add on it as a key.
 * Invariants: a result always has a reason; claims exist exactly on JWT_OK and
 * are an object whose claims can be read as text; an accepted token has three
 * parts, each canonical base64url (decode then encode gives it back); a key
 * spec either adds keys or adds none and says why.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "policy/jose.h"
#include "policy/jwt.h"
#include "tests/fuzz/check.h"

static const char key_set[] =
	"{\"keys\":["
	"{\"kty\":\"oct\",\"kid\":\"hmac\","
	"\"k\":\"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow\"},"
	"{\"kty\":\"RSA\",\"e\":\"AQAB\",\"n\":\"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJr"
	"cS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexM"
	"dbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9"
	"iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ\"},"
	"{\"kty\":\"EC\",\"crv\":\"P-256\","
	"\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
	"\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"},"
	"{\"kty\":\"EC\",\"crv\":\"P-521\","
	"\"x\":\"AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk\","
	"\"y\":\"ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDhjDly79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2\"},"
	"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}"
	"]}";

static struct jose_keyset *keys;

static void init(void)
{
	struct json_object *o;
	const char *why = NULL;

	if (keys)
		return;
	keys = jose_keyset_new();
	o = json_tokener_parse(key_set);
	CHECK(keys && o);
	CHECK(jose_keyset_add(keys, o, &why) == 0);
	CHECK(jose_keyset_count(keys) == 5);
	json_object_put(o);
}

/* Each part of an accepted token is canonical base64url. */
static void check_canonical(const char *part, size_t len)
{
	size_t cap = jose_b64_decoded_max(len);
	unsigned char *raw = malloc(cap ? cap : 1);
	char *back = malloc(len + 2);
	long n, m;

	CHECK(raw && back);
	n = jose_b64url_decode(part, len, raw, cap);
	CHECK(n >= 0);
	m = jose_b64url_encode(raw, (size_t)n, back, len + 2);
	CHECK(m == (long)len && memcmp(back, part, len) == 0);
	free(raw);
	free(back);
}

static void fuzz_token(const char *tok, size_t size)
{
	static const char *const iss[] = { "joe", "https://login.example" };
	static const char *const aud[] = { "api" };
	static const char *const roles[] = { "admin", "ops" };
	struct jwt_required_claim rc = { .name = "role", .match = JWT_MATCH_ANY, .values = roles,
					 .n_values = 2, .separator = ' ' };
	struct jwt_rules rules = { .keys = keys, .now = 1300819379, .clock_skew = 60 };
	struct jwt_result res;
	enum jwt_status st;

	/* Once without claim rules (so that RFC tokens pass), once with them. */
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1) {
			rules.issuers = iss;
			rules.n_issuers = 2;
			rules.audiences = aud;
			rules.n_audiences = 1;
			rules.claims = &rc;
			rules.n_claims = 1;
			rules.require_expiration = 1;
		}
		st = jwt_validate(tok, size, &rules, &res);
		CHECK(st == res.status && res.reason != NULL);
		CHECK(st >= JWT_OK && st <= JWT_INTERNAL);
		CHECK((st == JWT_OK) == (res.claims != NULL));
		if (st == JWT_OK) {
			const char *d1 = memchr(tok, '.', size);
			const char *d2 = d1 ? memchr(d1 + 1, '.', size - (size_t)(d1 + 1 - tok)) : NULL;
			size_t len;

			CHECK(size <= JWT_MAX_TOKEN_BYTES && d1 && d2);
			CHECK(res.alg != JOSE_ALG_INVALID);
			CHECK(json_object_is_type(res.claims, json_type_object));
			check_canonical(tok, (size_t)(d1 - tok));
			check_canonical(d1 + 1, (size_t)(d2 - d1 - 1));
			check_canonical(d2 + 1, size - (size_t)(d2 + 1 - tok));
			jwt_claim_text(&res, "iss", &len);
			jwt_claim_text(&res, "role", &len);
			jwt_claim_text(&res, "exp", &len);
		}
		jwt_result_release(&res);
		CHECK(res.claims == NULL);
	}
}

static void fuzz_key(const char *text, size_t size)
{
	struct json_tokener *tok = json_tokener_new_ex(32);
	struct jose_keyset *ks = jose_keyset_new();
	struct json_object *o;
	const char *why = NULL;

	CHECK(tok && ks);
	o = json_tokener_parse_ex(tok, text, (int)size);
	if (o) {
		int rc = jose_keyset_add(ks, o, &why);

		if (rc == 0) {
			CHECK(jose_keyset_count(ks) >= 1);
			for (size_t i = 0; i < jose_keyset_count(ks); i++) {
				const struct jose_key *k = jose_keyset_key(ks, i);

				CHECK(jose_key_alg(k) == JOSE_ALG_INVALID || jose_key_fits(k, jose_key_alg(k)));
			}
		} else {
			CHECK(rc == -1 && why != NULL && jose_keyset_count(ks) == 0);
		}
		json_object_put(o);
	}
	json_tokener_free(tok);
	jose_keyset_free(ks);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf;

	if (size > 2 * JWT_MAX_TOKEN_BYTES)
		return 0;
	init();
	/* A copy of exactly size bytes, so that ASan sees any overread. */
	buf = malloc(size ? size : 1);
	CHECK(buf);
	memcpy(buf, data, size);
	if (size > 0 && (buf[0] == '{' || buf[0] == '[' || buf[0] == '"'))
		fuzz_key(buf, size);
	else
		fuzz_token(buf, size);
	free(buf);
	return 0;
}
