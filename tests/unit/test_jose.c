/*
 * test_jose — base64url, keys from every configuration form, and signature
 * checks against the published vectors: RFC 7515 appendix A (A.1 HS256, A.2
 * RS256, A.3 ES256, A.4 ES512), RFC 8037 appendix A.4 (Ed25519 with the A.2
 * key) and RFC 7520 section 4 (4.1 RS256, 4.2 PS384, 4.3 ES512, 4.4 HS256).
 * Each vector must verify, and must stop verifying when one byte of the
 * signing input or of the signature changes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "policy/jose.h"

/* ---- the vectors, copied from the RFCs ----------------------------------- */

/* RFC 7515 A.1: JWS using HMAC SHA-256. */
static const char a1_jwk[] =
	"{\"kty\":\"oct\","
	"\"k\":\"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow\"}";
static const char a1_jws[] =
	"eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
	".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
	".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/* RFC 7515 A.2: JWS using RSASSA-PKCS1-v1_5 SHA-256 (public members). */
static const char a2_n[] =
	"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-"
	"pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2"
	"CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9"
	"gb54h4FRWyuXpoQ";
#define A2_JWK_PUB(extra) "{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\"" extra "}"
static const char a2_jws[] =
	"eyJhbGciOiJSUzI1NiJ9"
	".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
	".cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUA"
	"r7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--"
	"xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_Io"
	"ypGlUPQGe77Rw";

/* RFC 7515 A.3: JWS using ECDSA P-256 SHA-256 (public members). */
static const char a3_jwk[] =
	"{\"kty\":\"EC\",\"crv\":\"P-256\","
	"\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
	"\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}";
static const char a3_jws[] =
	"eyJhbGciOiJFUzI1NiJ9"
	".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
	".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

/* RFC 7515 A.4: JWS using ECDSA P-521 SHA-512 (public members). */
static const char a4_jwk[] =
	"{\"kty\":\"EC\",\"crv\":\"P-521\","
	"\"x\":\"AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk\","
	"\"y\":\"ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDhjDly79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2\"}";
static const char a4_jws[] =
	"eyJhbGciOiJFUzUxMiJ9.UGF5bG9hZA"
	".AdwMgeerwtHoh-l192l60hp9wAHZFVJbLfD_UxMi70cwnZOYaRI1bKPWROc-mZZqwqT2SI-KGDKB34XO0aw_7XdtAG8GaSwFKdCAPZgoXD2YBJZCPEX3"
	"xKpRwcdOO8KpEHwJjyqOgzDO7iKvU8vcnwNrmxYbSW9ERBXukOXolLzeO_Jn";

/* RFC 8037 A.2 (public key) and A.4 (signature). */
static const char ed_jwk[] =
	"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}";
static const char ed_jws[] =
	"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
	".hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

/* RFC 7520 3.4 (RSA key, with its private members, which must be ignored). */
static const char r7520_rsa_jwk[] =
	"{\"kty\":\"RSA\",\"kid\":\"bilbo.baggins@hobbiton.example\",\"use\":\"sig\","
	"\"n\":\"n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQHz_AJmSCpMaJMRBSFKrKb2w"
	"qVwGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-oBHqFEHYpPe7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJ"
	"lsde3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3-tVTU4fg_3L_vniUFAKwuCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQk"
	"qgc5gHdrNP5zw\",\"e\":\"AQAB\","
	"\"d\":\"bWUC9B-EFRIo8kpGfh0ZuyGPvMNKvYWNtB_ikiH9k20eT-O1q_I78eiZkpXxXQ0UTEs2LsNRS-8uJbvQ-A1irkwMSMkK1J3XTGgdrhCk"
	"u9gRldY7sNA_AKZGh-Q661_42rINLRCe8W-nZ34ui_qOfkLnK9QWDDqpaIsA-bMwWWSDFu2MUBYwkHTMEzLYGqOe04noqeq1hExBTHBOBdkMXiu"
	"FhUq1BU6l-DqEiWxqg82sXt2h-LMnT3046AOYJoRioz75tSUQfGCshWTBnP5uDjd18kKhyv07lhfSJdrPdM5Plyl21hsFf4L_mHCuoFau7gdsPf"
	"HPxxjVOcOpBrQzwQ\","
	"\"p\":\"3Slxg_DwTXJcb6095RoXygQCAZ5RnAvZlno1yhHtnUex_fp7AZ_9nRaO7HX_-SFfGQeutao2TDjDAWU4Vupk8rw9JR0AzZ0N2fvuIAmr"
	"_WCsmGpeNqQnev1T7IyEsnh8UMt-n5CafhkikzhEsrmndH6LxOrvRJlsPp6Zv8bUq0k\","
	"\"q\":\"uKE2dh-cTf6ERF4k4e_jy78GfPYUIaUyoSSJuBzp3Cubk3OCqs6grT8bR_cu0Dm1MZwWmtdqDyI95HrUeq3MP15vMMON8lHTeZu2lmKv"
	"wqW7anV5UzhM1iZ7z4yMkuUwFWoBvyY898EXvRD-hdqRxHlSqAZ192zB3pVFJ0s7pFc\","
	"\"dp\":\"B8PVvXkvJrj2L-GYQ7v3y9r6Kw5g9SahXBwsWUzp19TVlgI-YV85q1NIb1rxQtD-IsXXR3-TanevuRPRt5OBOdiMGQp8pbt26gljYfK"
	"U_E9xn-RULHz0-ed9E9gXLKD4VGngpz-PfQ_q29pk5xWHoJp009Qf1HvChixRX59ehik\","
	"\"dq\":\"CLDmDGduhylc9o7r84rEUVn7pzQ6PF83Y-iBZx5NT-TpnOZKF1pErAMVeKzFEl41DlHHqqBLSM0W1sOFbwTxYWZDm6sI6og5iTbwQGI"
	"C3gnJKbi_7k_vJgGHwHxgPaX2PnvP-zyEkDERuf-ry4c_Z11Cq9AqC2yeL6kdKT1cYF8\","
	"\"qi\":\"3PiqvXQN0zwMeE-sBvZgi289XP9XCQF3VWqPzMKnIgQp7_Tugo6-NZBKCQsMf3HaEGBjTVJs_jcK8-TRXvaKe-7ZMaQj8VfBdYkssbu"
	"0NKDDhjJ-GtiseaDVWt7dcH0cfwxgFUHpQh7FoCrjFJ6h6ZEpMF6xmujs4qMpPz8aaI4\"}";

#define R7520_PAYLOAD \
	"SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5k" \
	"IGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4"

/* RFC 7520 4.1: RSA v1.5 signature. */
static const char r7520_41_jws[] =
	"eyJhbGciOiJSUzI1NiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9." R7520_PAYLOAD
	".MRjdkly7_-oTPTS3AXP41iQIGKa80A0ZmTuV5MEaHoxnW2e5CZ5NlKtainoFmKZopdHM1O2U4mwzJdQx996ivp83xuglII7PNDi84wnB-BDkoBwA"
	"78185hX-Es4JIwmDLJK3lfWRa-XtL0RnltuYv746iYTh_qHRD68BNt1uSNCrUCTJDt5aAE6x8wW1Kt9eRo4QPocSadnHXFxnt8Is9UzpERV0ePPQ"
	"dLuW3IS_de3xyIrDaLGdjluPxUAhb6L2aXic1U12podGU0KLUQSE_oI-ZnmKJ3F4uOZDnd6QZWJushZ41Axf_fcIe8u9ipH84ogoree7vjbU5y18"
	"kDquDg";

/* RFC 7520 4.2: RSA-PSS signature. */
static const char r7520_42_jws[] =
	"eyJhbGciOiJQUzM4NCIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9." R7520_PAYLOAD
	".cu22eBqkYDKgIlTpzDXGvaFfz6WGoz7fUDcfT0kkOy42miAh2qyBzk1xEsnk2IpN6-tPid6VrklHkqsGqDqHCdP6O8TTB5dDDItllVo6_1OLPpcb"
	"UrhiUSMxbbXUvdvWXzg-UD8biiReQFlfz28zGWVsdiNAUf8ZnyPEgVFn442ZdNqiVJRmBqrYRXe8P_ijQ7p8Vdz0TTrxUeT3lm8d9shnr2lfJT8I"
	"mUjvAA2Xez2Mlp8cBE5awDzT0qI0n6uiP1aCN_2_jLAeQTlqRHtfa64QQSUmFAAjVKPbByi7xho0uTOcbH510a6GYmJUAfmWjwZ6oD4ifKo8DYM-"
	"X72Eaw";

/* RFC 7520 3.2 (EC P-521 key, private member included) and 4.3: ECDSA signature. */
static const char r7520_ec_jwk[] =
	"{\"kty\":\"EC\",\"kid\":\"bilbo.baggins@hobbiton.example\",\"use\":\"sig\",\"crv\":\"P-521\","
	"\"x\":\"AHKZLLOsCOzz5cY97ewNUajB957y-C-U88c3v13nmGZx6sYl_oJXu9A5RkTKqjqvjyekWF-7ytDyRXYgCF5cj0Kt\","
	"\"y\":\"AdymlHvOiLxXkEhayXQnNCvDX4h9htZaCJN34kfmC6pV5OhQHiraVySsUdaQkAgDPrwQrJmbnX9cwlGfP-HqHZR1\","
	"\"d\":\"AAhRON2r9cqXX1hg-RoI6R1tX5p2rUAYdmpHZoC1XNM56KtscrX6zbKipQrCW9CGZH3T4ubpnoTKLDYJ_fF3_rJt\"}";
static const char r7520_43_jws[] =
	"eyJhbGciOiJFUzUxMiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9." R7520_PAYLOAD
	".AE_R_YZCChjn4791jSQCrdPZCNYqHXCTZH0-JZGYNlaAjP2kqaluUIIUnC9qvbu9Plon7KRTzoNEuT4Va2cmL1eJAQy3mtPBu_u_sDDyYjnAMDxX"
	"Pn7XrT0lw-kvAD890jl8e2puQens_IEKBpHABlsbEPX6sFY8OcGDqoRuBomu9xQ2";

/* RFC 7520 3.5 (symmetric key) and 4.4: HMAC-SHA2 integrity protection. */
static const char r7520_oct_jwk[] =
	"{\"kty\":\"oct\",\"kid\":\"018c0ae5-4d9b-471b-bfd6-eef314bc7037\",\"use\":\"sig\",\"alg\":\"HS256\","
	"\"k\":\"hJtXIZ2uSN5kbQfbtTNWbpdmhkV8FJG-Onbc6mxCcYg\"}";
static const char r7520_44_jws[] =
	"eyJhbGciOiJIUzI1NiIsImtpZCI6IjAxOGMwYWU1LTRkOWItNDcxYi1iZmQ2LWVlZjMxNGJjNzAzNyJ9." R7520_PAYLOAD
	".s0h6KThzkfBBBkLspW1h84VsJZFTsPPqMDA7g1Md7p0";

/* The RFC 7515 A.2 public key as PEM (SubjectPublicKeyInfo and PKCS#1), and a
 * self-signed certificate for the RFC 7515 A.3 key, made with python3-cryptography. */
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
static const char a2_pkcs1_pem[] =
	"-----BEGIN RSA PUBLIC KEY-----\n"
	"MIIBCgKCAQEAofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd/wWJcyQoTbji9k0l8W2\n"
	"6mPddxHmfHQp+Vaw+4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL+yRT+SFd2lZS+pCgNMs\n"
	"D1W/YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb/7OMg0LOL+bSf63kpaSHSXndS5\n"
	"z5rexMdbBYUsLA9e+KXBdQOS+UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxv\n"
	"b3qCo5ZwKh9kG4LT6/I5IhlJH7aGhyxXFvUK+DWNmoudF8NAco9/h9iaGNj8q2et\n"
	"hFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQIDAQAB\n"
	"-----END RSA PUBLIC KEY-----\n";
static const char a3_cert_pem[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIIBFzCBvaADAgECAgEBMAoGCCqGSM49BAMCMBUxEzARBgNVBAMMCnJmYzc1MTUt\n"
	"YTMwHhcNMjAwMTAxMDAwMDAwWhcNNDAwMTAxMDAwMDAwWjAVMRMwEQYDVQQDDApy\n"
	"ZmM3NTE1LWEzMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEf83OJ3D2xF1Bg8vu\n"
	"b9tLe1gHMzV76e8Tus9uPHvRVEXH8UTNG72bfocs3+257rn0s2ldbqkLJK2KRiMo\n"
	"hYjlrTAKBggqhkjOPQQDAgNJADBGAiEAnKue2ooX+GcD8g7eQrhyZtQBFy7TDtk2\n"
	"RoOR+LZsBkcCIQCiXSklAqWjEZ5xTGdTryNveFd9n7tyg+K7sj+iQLpbkQ==\n"
	"-----END CERTIFICATE-----\n";
static const char a3_spki_pem[] =
	"-----BEGIN PUBLIC KEY-----\n"
	"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEf83OJ3D2xF1Bg8vub9tLe1gHMzV7\n"
	"6e8Tus9uPHvRVEXH8UTNG72bfocs3+257rn0s2ldbqkLJK2KRiMohYjlrQ==\n"
	"-----END PUBLIC KEY-----\n";
/* The A.2 modulus in standard base64 with padding (APIM's {"n","e"} form). */
static const char a2_n_std[] =
	"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd/wWJcyQoTbji9k0l8W26mPddxHmfHQp+Vaw+4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL+yRT+SFd2lZS+"
	"pCgNMsD1W/YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb/7OMg0LOL+bSf63kpaSHSXndS5z5rexMdbBYUsLA9e+KXBdQOS+UTo7WTBEMa2R2"
	"CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6/I5IhlJH7aGhyxXFvUK+DWNmoudF8NAco9/h9iaGNj8q2ethFkMLs91kzk2PAcDTW9"
	"gb54h4FRWyuXpoQ==";
/* A random 1024-bit modulus: too small. */
static const char n1024[] =
	"1PW5j1_fwp-Mn3PGRqN_E1rs7GoZZCz-kFtWupWXA3tB51_5xKWYMJYxxAaM13sP23TIdmu3eit_r7Xf5MI5zc7NkSmjgZeSOyXaNzn1UgXFr32JD"
	"zQ7oPSGbrcen8P527ckklmA-HBb6N0KcAMObqVgr7o1HcYhkb9i5IpY7_E";

/* ---- helpers ------------------------------------------------------------- */

static struct json_object *json(const char *text)
{
	struct json_object *o = json_tokener_parse(text);

	assert_non_null(o);
	return o;
}

/* Formats a JSON object (e.g. around a modulus). */
static struct json_object *json_n(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static struct json_object *json_n(const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	assert_true(len > 0 && (size_t)len < sizeof(buf));
	return json(buf);
}

static struct jose_key *key_jwk(struct json_object *o)
{
	const char *why = "";
	struct jose_key *key = jose_key_from_jwk(o, &why);

	if (!key)
		print_message("jose_key_from_jwk: %s\n", why);
	json_object_put(o);
	assert_non_null(key);
	return key;
}

static const char *key_jwk_fails(struct json_object *o)
{
	const char *why = NULL;
	struct jose_key *key = jose_key_from_jwk(o, &why);

	json_object_put(o);
	assert_null(key);
	assert_non_null(why);
	return why;
}

/* Verifies a compact JWS with key; then checks that one changed byte in the
 * signing input, and one in the signature, each make it fail. */
static void check_jws(const struct jose_key *key, enum jose_alg alg, const char *jws)
{
	const char *dot = strrchr(jws, '.');
	size_t input_len = (size_t)(dot - jws);
	unsigned char sig[JOSE_MAX_SIG_BYTES];
	char input[2048];
	const char *why = NULL;
	long sig_len;

	assert_non_null(dot);
	assert_true(input_len < sizeof(input));
	sig_len = jose_b64url_decode(dot + 1, strlen(dot + 1), sig, sizeof(sig));
	assert_true(sig_len > 0);
	memcpy(input, jws, input_len);

	if (jose_verify(key, alg, input, input_len, sig, (size_t)sig_len, &why) != 0)
		fail_msg("%s does not verify: %s", jose_alg_name(alg), why);

	input[input_len - 1] ^= 0x01;	/* a payload character */
	assert_int_equal(jose_verify(key, alg, input, input_len, sig, (size_t)sig_len, NULL), -1);
	input[input_len - 1] ^= 0x01;
	input[3] ^= 0x20;		/* a header character */
	assert_int_equal(jose_verify(key, alg, input, input_len, sig, (size_t)sig_len, NULL), -1);
	input[3] ^= 0x20;

	for (size_t at = 0; at < (size_t)sig_len; at += (size_t)sig_len / 3 + 1) {
		sig[at] ^= 0x80;
		assert_int_equal(jose_verify(key, alg, input, input_len, sig, (size_t)sig_len, NULL), -1);
		sig[at] ^= 0x80;
	}
	/* Truncated and extended signatures. */
	assert_int_equal(jose_verify(key, alg, input, input_len, sig, (size_t)sig_len - 1, NULL), -1);
	sig[sig_len] = 0;
	assert_int_equal(jose_verify(key, alg, input, input_len, sig, (size_t)sig_len + 1, NULL), -1);
	/* Intact again: still verifies (the checks above did not pass by accident). */
	assert_int_equal(jose_verify(key, alg, input, input_len, sig, (size_t)sig_len, NULL), 0);
}

/* ---- base64 -------------------------------------------------------------- */

static void test_b64url(void **state)
{
	unsigned char out[64];
	char enc[64];

	(void)state;
	assert_int_equal(jose_b64url_decode("", 0, out, sizeof(out)), 0);
	assert_int_equal(jose_b64url_decode("QQ", 2, out, sizeof(out)), 1);
	assert_int_equal(out[0], 'A');
	assert_int_equal(jose_b64url_decode("QUI", 3, out, sizeof(out)), 2);
	assert_memory_equal(out, "AB", 2);
	assert_int_equal(jose_b64url_decode("QUJD", 4, out, sizeof(out)), 3);
	assert_int_equal(jose_b64url_decode("-_-_", 4, out, sizeof(out)), 3);
	assert_int_equal(out[0], 0xfb);
	assert_int_equal(out[1], 0xff);
	assert_int_equal(out[2], 0xbf);
	/* Strict: no padding, no standard alphabet, no whitespace, no 4k+1. */
	assert_int_equal(jose_b64url_decode("QQ==", 4, out, sizeof(out)), -1);
	assert_int_equal(jose_b64url_decode("+/+/", 4, out, sizeof(out)), -1);
	assert_int_equal(jose_b64url_decode("QU I", 4, out, sizeof(out)), -1);
	assert_int_equal(jose_b64url_decode("QUJDR", 5, out, sizeof(out)), -1);
	assert_int_equal(jose_b64url_decode("Q\0JD", 4, out, sizeof(out)), -1);
	/* Non-zero leftover bits: "QR" would also decode to "A". */
	assert_int_equal(jose_b64url_decode("QR", 2, out, sizeof(out)), -1);
	assert_int_equal(jose_b64url_decode("QUJ", 3, out, sizeof(out)), -1);
	/* Capacity is respected. */
	assert_int_equal(jose_b64url_decode("QUJD", 4, out, 2), -1);

	assert_int_equal(jose_b64_decode("QQ==", 4, out, sizeof(out)), 1);
	assert_int_equal(jose_b64_decode("QUI=", 4, out, sizeof(out)), 2);
	assert_int_equal(jose_b64_decode("QUI", 3, out, sizeof(out)), 2);
	assert_int_equal(jose_b64_decode("+/+/", 4, out, sizeof(out)), 3);
	assert_int_equal(jose_b64_decode("QQ=", 3, out, sizeof(out)), -1);
	assert_int_equal(jose_b64_decode("QUI==", 5, out, sizeof(out)), -1);
	assert_int_equal(jose_b64_decode("Q===", 4, out, sizeof(out)), -1);
	assert_int_equal(jose_b64_decode("-_-_", 4, out, sizeof(out)), -1);

	assert_int_equal(jose_b64url_encode((const unsigned char *)"\xfb\xff\xbf", 3, enc, sizeof(enc)), 4);
	assert_string_equal(enc, "-_-_");
	assert_int_equal(jose_b64url_encode((const unsigned char *)"AB", 2, enc, sizeof(enc)), 3);
	assert_string_equal(enc, "QUI");
	assert_int_equal(jose_b64url_encode((const unsigned char *)"A", 1, enc, sizeof(enc)), 2);
	assert_string_equal(enc, "QQ");
	assert_int_equal(jose_b64url_encode((const unsigned char *)"ABC", 3, enc, 4), -1);
}

static void test_b64_roundtrip(void **state)
{
	unsigned char in[256], out[256];
	char enc[400];

	(void)state;
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(i * 37 + 11);
	for (size_t len = 0; len <= sizeof(in); len += 7) {
		long e = jose_b64url_encode(in, len, enc, sizeof(enc));

		assert_true(e >= 0);
		assert_int_equal(jose_b64url_decode(enc, (size_t)e, out, sizeof(out)), (long)len);
		assert_memory_equal(in, out, len);
	}
}

static void test_alg_names(void **state)
{
	(void)state;
	assert_int_equal(jose_alg_from_name("RS256"), JOSE_RS256);
	assert_int_equal(jose_alg_from_name("EdDSA"), JOSE_EDDSA);
	assert_int_equal(jose_alg_from_name("none"), JOSE_ALG_INVALID);
	assert_int_equal(jose_alg_from_name("None"), JOSE_ALG_INVALID);
	assert_int_equal(jose_alg_from_name("hs256"), JOSE_ALG_INVALID);
	assert_int_equal(jose_alg_from_name(""), JOSE_ALG_INVALID);
	assert_int_equal(jose_alg_from_name(NULL), JOSE_ALG_INVALID);
	assert_string_equal(jose_alg_name(JOSE_PS384), "PS384");
}

/* ---- the RFC vectors ----------------------------------------------------- */

static void test_rfc7515_a1_hs256(void **state)
{
	struct jose_key *key = key_jwk(json(a1_jwk));

	(void)state;
	assert_int_equal(jose_key_kind(key), JOSE_KEY_HMAC);
	check_jws(key, JOSE_HS256, a1_jws);
	jose_key_free(key);
}

static void test_rfc7515_a2_rs256(void **state)
{
	struct jose_key *key = key_jwk(json_n(A2_JWK_PUB(""), a2_n));

	(void)state;
	assert_int_equal(jose_key_kind(key), JOSE_KEY_RSA);
	check_jws(key, JOSE_RS256, a2_jws);
	/* The same key and signature under PKCS#1 v1.5 with another hash, or PSS,
	 * must not verify. */
	{
		const char *dot = strrchr(a2_jws, '.');
		unsigned char sig[512];
		long n = jose_b64url_decode(dot + 1, strlen(dot + 1), sig, sizeof(sig));

		assert_int_equal(jose_verify(key, JOSE_RS384, a2_jws, (size_t)(dot - a2_jws), sig, (size_t)n, NULL), -1);
		assert_int_equal(jose_verify(key, JOSE_PS256, a2_jws, (size_t)(dot - a2_jws), sig, (size_t)n, NULL), -1);
	}
	jose_key_free(key);
}

static void test_rfc7515_a3_es256(void **state)
{
	struct jose_key *key = key_jwk(json(a3_jwk));

	(void)state;
	assert_int_equal(jose_key_kind(key), JOSE_KEY_EC);
	check_jws(key, JOSE_ES256, a3_jws);
	jose_key_free(key);
}

static void test_rfc7515_a4_es512(void **state)
{
	struct jose_key *key = key_jwk(json(a4_jwk));

	(void)state;
	check_jws(key, JOSE_ES512, a4_jws);
	jose_key_free(key);
}

static void test_rfc8037_ed25519(void **state)
{
	struct jose_key *key = key_jwk(json(ed_jwk));

	(void)state;
	assert_int_equal(jose_key_kind(key), JOSE_KEY_OKP);
	check_jws(key, JOSE_EDDSA, ed_jws);
	jose_key_free(key);
}

static void test_rfc7520_41_rs256(void **state)
{
	struct jose_key *key = key_jwk(json(r7520_rsa_jwk));

	(void)state;
	assert_string_equal(jose_key_kid(key), "bilbo.baggins@hobbiton.example");
	check_jws(key, JOSE_RS256, r7520_41_jws);
	jose_key_free(key);
}

static void test_rfc7520_42_ps384(void **state)
{
	struct jose_key *key = key_jwk(json(r7520_rsa_jwk));

	(void)state;
	check_jws(key, JOSE_PS384, r7520_42_jws);
	jose_key_free(key);
}

static void test_rfc7520_43_es512(void **state)
{
	struct jose_key *key = key_jwk(json(r7520_ec_jwk));

	(void)state;
	check_jws(key, JOSE_ES512, r7520_43_jws);
	jose_key_free(key);
}

static void test_rfc7520_44_hs256(void **state)
{
	struct jose_key *key = key_jwk(json(r7520_oct_jwk));

	(void)state;
	assert_int_equal(jose_key_alg(key), JOSE_HS256);
	check_jws(key, JOSE_HS256, r7520_44_jws);
	jose_key_free(key);
}

/* ---- algorithm / key binding --------------------------------------------- */

static void test_alg_key_binding(void **state)
{
	struct jose_key *hmac = key_jwk(json(a1_jwk));
	struct jose_key *rsa = key_jwk(json_n(A2_JWK_PUB(""), a2_n));
	struct jose_key *p256 = key_jwk(json(a3_jwk));
	struct jose_key *p521 = key_jwk(json(a4_jwk));
	struct jose_key *ed = key_jwk(json(ed_jwk));
	struct jose_key *rs256_only = key_jwk(json_n(A2_JWK_PUB(",\"alg\":\"RS256\""), a2_n));
	static const struct {
		enum jose_alg alg;
		int hmac, rsa, p256, p521, ed;
	} table[] = {
		{ JOSE_HS256, 1, 0, 0, 0, 0 }, { JOSE_HS384, 1, 0, 0, 0, 0 }, { JOSE_HS512, 1, 0, 0, 0, 0 },
		{ JOSE_RS256, 0, 1, 0, 0, 0 }, { JOSE_RS512, 0, 1, 0, 0, 0 },
		{ JOSE_PS256, 0, 1, 0, 0, 0 }, { JOSE_PS512, 0, 1, 0, 0, 0 },
		{ JOSE_ES256, 0, 0, 1, 0, 0 }, { JOSE_ES384, 0, 0, 0, 0, 0 }, { JOSE_ES512, 0, 0, 0, 1, 0 },
		{ JOSE_EDDSA, 0, 0, 0, 0, 1 }, { JOSE_ALG_INVALID, 0, 0, 0, 0, 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		assert_int_equal(jose_key_fits(hmac, table[i].alg), table[i].hmac);
		assert_int_equal(jose_key_fits(rsa, table[i].alg), table[i].rsa);
		assert_int_equal(jose_key_fits(p256, table[i].alg), table[i].p256);
		assert_int_equal(jose_key_fits(p521, table[i].alg), table[i].p521);
		assert_int_equal(jose_key_fits(ed, table[i].alg), table[i].ed);
	}
	/* A key's own "alg" narrows it. */
	assert_int_equal(jose_key_fits(rs256_only, JOSE_RS256), 1);
	assert_int_equal(jose_key_fits(rs256_only, JOSE_PS256), 0);
	assert_int_equal(jose_key_fits(rs256_only, JOSE_RS512), 0);

	/* The A.2 signature given to a key of another kind fails before any math. */
	{
		const char *dot = strrchr(a2_jws, '.'), *why = NULL;
		unsigned char sig[512];
		long n = jose_b64url_decode(dot + 1, strlen(dot + 1), sig, sizeof(sig));

		assert_int_equal(jose_verify(hmac, JOSE_RS256, a2_jws, (size_t)(dot - a2_jws), sig, (size_t)n, &why), -1);
		assert_string_equal(why, "key does not fit the algorithm");
		assert_int_equal(jose_verify(rsa, JOSE_ALG_INVALID, a2_jws, (size_t)(dot - a2_jws), sig, (size_t)n, NULL), -1);
	}
	jose_key_free(hmac);
	jose_key_free(rsa);
	jose_key_free(p256);
	jose_key_free(p521);
	jose_key_free(ed);
	jose_key_free(rs256_only);
}

/* The classic confusion: an HS256 token whose secret is the RSA public key's
 * PEM text. A verifier that lets the token pick the algorithm would take the
 * RSA key's bytes as an HMAC secret; this one refuses. */
static void test_alg_confusion(void **state)
{
	const char *input = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9";
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;
	const char *why = NULL;
	struct jose_key *rsa = jose_key_from_pem(a2_spki_pem, strlen(a2_spki_pem), &why);

	(void)state;
	assert_non_null(rsa);
	assert_non_null(HMAC(EVP_sha256(), a2_spki_pem, (int)strlen(a2_spki_pem),
			     (const unsigned char *)input, strlen(input), mac, &mac_len));
	assert_int_equal(jose_verify(rsa, JOSE_HS256, input, strlen(input), mac, mac_len, &why), -1);
	assert_int_equal(jose_key_fits(rsa, JOSE_HS256), 0);
	jose_key_free(rsa);
}

static void test_ecdsa_lengths(void **state)
{
	struct jose_key *key = key_jwk(json(a3_jwk));
	const char *dot = strrchr(a3_jws, '.');
	size_t input_len = (size_t)(dot - a3_jws);
	unsigned char sig[200], der[200];
	const char *why = NULL;
	long n = jose_b64url_decode(dot + 1, strlen(dot + 1), sig, sizeof(sig));

	(void)state;
	assert_int_equal(n, 64);
	assert_int_equal(jose_verify(key, JOSE_ES256, a3_jws, input_len, sig, 64, NULL), 0);
	/* A DER signature (what OpenSSL itself produces) is not JOSE's r||s. */
	der[0] = 0x30;
	der[1] = 68;
	der[2] = 0x02;
	der[3] = 32;
	memcpy(der + 4, sig, 32);
	der[36] = 0x02;
	der[37] = 32;
	memcpy(der + 38, sig + 32, 32);
	assert_int_equal(jose_verify(key, JOSE_ES256, a3_jws, input_len, der, 70, &why), -1);
	assert_string_equal(why, "ecdsa signature does not have the curve's size");
	/* r||s with a zero byte prepended, and with r and s swapped. */
	memmove(sig + 1, sig, 64);
	sig[0] = 0;
	assert_int_equal(jose_verify(key, JOSE_ES256, a3_jws, input_len, sig, 65, NULL), -1);
	memmove(sig, sig + 1, 64);
	memcpy(der, sig + 32, 32);
	memcpy(der + 32, sig, 32);
	assert_int_equal(jose_verify(key, JOSE_ES256, a3_jws, input_len, der, 64, NULL), -1);
	/* r = s = 0. */
	memset(der, 0, 64);
	assert_int_equal(jose_verify(key, JOSE_ES256, a3_jws, input_len, der, 64, NULL), -1);
	jose_key_free(key);
}

/* ---- keys: forms and refusals -------------------------------------------- */

static void test_pem_forms(void **state)
{
	const char *why = NULL;
	struct jose_key *key;

	(void)state;
	key = jose_key_from_pem(a2_spki_pem, strlen(a2_spki_pem), &why);
	assert_non_null(key);
	assert_int_equal(jose_key_kind(key), JOSE_KEY_RSA);
	check_jws(key, JOSE_RS256, a2_jws);
	jose_key_free(key);

	key = jose_key_from_pem(a2_pkcs1_pem, strlen(a2_pkcs1_pem), &why);
	assert_non_null(key);
	check_jws(key, JOSE_RS256, a2_jws);
	jose_key_free(key);

	key = jose_key_from_pem(a3_cert_pem, strlen(a3_cert_pem), &why);
	assert_non_null(key);
	assert_int_equal(jose_key_kind(key), JOSE_KEY_EC);
	check_jws(key, JOSE_ES256, a3_jws);
	jose_key_free(key);

	key = jose_key_from_pem(a3_spki_pem, strlen(a3_spki_pem), &why);
	assert_non_null(key);
	assert_int_equal(jose_key_fits(key, JOSE_ES256), 1);
	assert_int_equal(jose_key_fits(key, JOSE_ES512), 0);
	jose_key_free(key);

	why = NULL;
	{
		static const char priv[] = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n";

		assert_null(jose_key_from_pem(priv, strlen(priv), &why));
	}
	assert_non_null(why);
	assert_null(jose_key_from_pem("not pem", 7, &why));
	assert_null(jose_key_from_pem(a2_spki_pem, 100, &why));	/* truncated */
}

static void test_jwk_refusals(void **state)
{
	char y_bad[] = "y_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
	char buf[1024];

	(void)state;
	assert_string_equal(key_jwk_fails(json_n(A2_JWK_PUB(""), n1024)), "rsa key shorter than 2048 bits");
	assert_non_null(key_jwk_fails(json_n("{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQ\"}", a2_n)));	/* e = 1 */
	assert_non_null(key_jwk_fails(json_n("{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAA\"}", a2_n)));	/* even e */
	assert_non_null(key_jwk_fails(json_n("{\"kty\":\"RSA\",\"n\":\"%s\"}", a2_n)));
	assert_non_null(key_jwk_fails(json_n("{\"kty\":\"RSA\",\"n\":\"%s=\",\"e\":\"AQAB\"}", a2_n)));
	/* A point off the curve, and a short coordinate. */
	snprintf(buf, sizeof(buf), "{\"kty\":\"EC\",\"crv\":\"P-256\","
		 "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\",\"y\":\"%s\"}", y_bad);
	assert_string_equal(key_jwk_fails(json(buf)), "ec point is not on the curve");
	assert_non_null(key_jwk_fails(json("{\"kty\":\"EC\",\"crv\":\"P-256\","
					   "\"x\":\"83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
					   "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}")));
	/* The A.3 coordinates claimed to be P-384. */
	assert_non_null(key_jwk_fails(json("{\"kty\":\"EC\",\"crv\":\"P-384\","
					   "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
					   "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}")));
	assert_non_null(key_jwk_fails(json("{\"kty\":\"EC\",\"crv\":\"secp256k1\",\"x\":\"AA\",\"y\":\"AA\"}")));
	assert_non_null(key_jwk_fails(json("{\"kty\":\"OKP\",\"crv\":\"Ed448\",\"x\":\"AA\"}")));
	assert_non_null(key_jwk_fails(json("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHUR\"}")));
	/* HMAC secrets: 16 bytes is too short; 32 bytes fit HS256 but not HS512. */
	assert_string_equal(key_jwk_fails(json("{\"kty\":\"oct\",\"k\":\"AAAAAAAAAAAAAAAAAAAAAA\"}")),
			    "hmac key shorter than 32 bytes");
	{
		struct jose_key *k = key_jwk(json("{\"kty\":\"oct\",\"k\":\"hJtXIZ2uSN5kbQfbtTNWbpdmhkV8FJG-Onbc6mxCcYg\"}"));

		assert_int_equal(jose_key_fits(k, JOSE_HS256), 1);
		assert_int_equal(jose_key_fits(k, JOSE_HS384), 0);
		assert_int_equal(jose_key_fits(k, JOSE_HS512), 0);
		jose_key_free(k);
	}
	assert_non_null(key_jwk_fails(json("{\"kty\":\"oct\",\"alg\":\"HS512\","
					   "\"k\":\"hJtXIZ2uSN5kbQfbtTNWbpdmhkV8FJG-Onbc6mxCcYg\"}")));
	/* "alg" of another kind, encryption keys, unknown kty, no kty. */
	assert_string_equal(key_jwk_fails(json_n(A2_JWK_PUB(",\"alg\":\"HS256\""), a2_n)), "'alg' does not fit the key");
	assert_non_null(key_jwk_fails(json_n(A2_JWK_PUB(",\"alg\":\"RSA-OAEP\""), a2_n)));
	assert_non_null(key_jwk_fails(json_n(A2_JWK_PUB(",\"use\":\"enc\""), a2_n)));
	assert_non_null(key_jwk_fails(json_n(A2_JWK_PUB(",\"key_ops\":[\"encrypt\"]"), a2_n)));
	assert_non_null(key_jwk_fails(json_n(A2_JWK_PUB(",\"kid\":7"), a2_n)));
	assert_non_null(key_jwk_fails(json("{\"kty\":\"foo\"}")));
	assert_non_null(key_jwk_fails(json("{\"k\":\"hJtXIZ2uSN5kbQfbtTNWbpdmhkV8FJG-Onbc6mxCcYg\"}")));
	assert_non_null(key_jwk_fails(json("[1]")));
	/* key_ops with verify is fine. */
	jose_key_free(key_jwk(json_n(A2_JWK_PUB(",\"key_ops\":[\"verify\"]"), a2_n)));
}

/* ---- key sets: every configuration form ---------------------------------- */

static size_t add(struct jose_keyset *ks, struct json_object *spec, int want)
{
	const char *why = NULL;
	int rc = jose_keyset_add(ks, spec, &why);

	if (rc != want)
		fail_msg("jose_keyset_add returned %d, want %d (%s)", rc, want, why ? why : "-");
	if (rc != 0)
		assert_non_null(why);
	json_object_put(spec);
	return jose_keyset_count(ks);
}

static void test_keyset_forms(void **state)
{
	struct jose_keyset *ks = jose_keyset_new();
	struct json_object *o;
	char buf[8192];

	(void)state;
	assert_non_null(ks);
	/* APIM's base64 HMAC secret: the RFC 7515 A.1 key in standard base64. */
	o = json_object_new_string("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ+EstJQLr/T+1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow==");
	assert_int_equal(add(ks, o, 0), 1);
	assert_int_equal(jose_key_kind(jose_keyset_key(ks, 0)), JOSE_KEY_HMAC);
	check_jws(jose_keyset_key(ks, 0), JOSE_HS256, a1_jws);
	assert_int_equal(add(ks, json_object_new_string("not base64!"), -1), 1);
	assert_int_equal(add(ks, json_object_new_string("c2hvcnQ="), -1), 1);	/* "short" */

	/* APIM's {"n","e"}: standard base64 and base64url. */
	assert_int_equal(add(ks, json_n("{\"n\":\"%s\",\"e\":\"AQAB\"}", a2_n_std), 0), 2);
	check_jws(jose_keyset_key(ks, 1), JOSE_RS256, a2_jws);
	assert_int_equal(add(ks, json_n("{\"n\":\"%s\",\"e\":\"AQAB\",\"kid\":\"apim\"}", a2_n), 0), 3);
	assert_string_equal(jose_key_kid(jose_keyset_key(ks, 2)), "apim");

	/* {"pem": ...} with a kid. */
	o = json_object_new_object();
	json_object_object_add(o, "pem", json_object_new_string(a3_cert_pem));
	json_object_object_add(o, "kid", json_object_new_string("cert"));
	assert_int_equal(add(ks, o, 0), 4);
	assert_string_equal(jose_key_kid(jose_keyset_key(ks, 3)), "cert");
	check_jws(jose_keyset_key(ks, 3), JOSE_ES256, a3_jws);

	/* A JWK, and a JWK set with keys to skip: an encryption key, an unknown
	 * kty, an unknown curve. */
	assert_int_equal(add(ks, json(ed_jwk), 0), 5);
	snprintf(buf, sizeof(buf), "{\"keys\":[%s,"
		 "{\"kty\":\"RSA\",\"use\":\"enc\",\"n\":\"%s\",\"e\":\"AQAB\"},"
		 "{\"kty\":\"foo\"},{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":\"AA\"},%s]}",
		 a4_jwk, a2_n, r7520_oct_jwk);
	assert_int_equal(add(ks, json(buf), 0), 7);
	check_jws(jose_keyset_key(ks, 5), JOSE_ES512, a4_jws);
	check_jws(jose_keyset_key(ks, 6), JOSE_HS256, r7520_44_jws);

	/* A set with a malformed key of a known type adds nothing; so does a set
	 * with nothing usable. */
	snprintf(buf, sizeof(buf), "{\"keys\":[%s,{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\"}]}", a4_jwk, n1024);
	assert_int_equal(add(ks, json(buf), -1), 7);
	assert_int_equal(add(ks, json("{\"keys\":[{\"kty\":\"foo\"}]}"), -1), 7);
	assert_int_equal(add(ks, json("{\"keys\":{}}"), -1), 7);
	assert_int_equal(add(ks, json("{\"keys\":[]}"), -1), 7);
	/* Objects of no known form; a private key PEM; a number. */
	assert_int_equal(add(ks, json("{\"x\":1}"), -1), 7);
	assert_int_equal(add(ks, json("{\"pem\":\"-----BEGIN EC PRIVATE KEY-----\\nAA\\n-----END EC PRIVATE KEY-----\"}"), -1), 7);
	assert_int_equal(add(ks, json("{\"pem\":5}"), -1), 7);
	assert_int_equal(add(ks, json_object_new_int(5), -1), 7);
	jose_keyset_free(ks);
}

static void test_keyset_cap(void **state)
{
	struct jose_keyset *ks = jose_keyset_new();

	(void)state;
	for (int i = 0; i < JOSE_MAX_KEYS; i++)
		assert_int_equal(add(ks, json(a1_jwk), 0), (size_t)i + 1);
	assert_int_equal(add(ks, json(a1_jwk), -1), JOSE_MAX_KEYS);
	jose_keyset_free(ks);
	jose_keyset_free(NULL);
	jose_key_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64url),
		cmocka_unit_test(test_b64_roundtrip),
		cmocka_unit_test(test_alg_names),
		cmocka_unit_test(test_rfc7515_a1_hs256),
		cmocka_unit_test(test_rfc7515_a2_rs256),
		cmocka_unit_test(test_rfc7515_a3_es256),
		cmocka_unit_test(test_rfc7515_a4_es512),
		cmocka_unit_test(test_rfc8037_ed25519),
		cmocka_unit_test(test_rfc7520_41_rs256),
		cmocka_unit_test(test_rfc7520_42_ps384),
		cmocka_unit_test(test_rfc7520_43_es512),
		cmocka_unit_test(test_rfc7520_44_hs256),
		cmocka_unit_test(test_alg_key_binding),
		cmocka_unit_test(test_alg_confusion),
		cmocka_unit_test(test_ecdsa_lengths),
		cmocka_unit_test(test_pem_forms),
		cmocka_unit_test(test_jwk_refusals),
		cmocka_unit_test(test_keyset_forms),
		cmocka_unit_test(test_keyset_cap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
