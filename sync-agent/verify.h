/*
 * verify — the agent's OpenSSL user: Ed25519 signatures over configuration
 * documents, and SHA-256 to tell documents apart.
 *
 *   struct evp_pkey_st *key = verify_load_key("/etc/hostgate/mgmt.pub", err, sizeof(err));
 *   if (verify_signature(key, "ed25519=BASE64", body, len, err, sizeof(err)) < 0) refuse;
 *   verify_free_key(key);
 *
 * The key file is a PEM public key ("-----BEGIN PUBLIC KEY-----", what
 * `openssl pkey -pubout` writes); any other key type is refused. The signature
 * line is the value of the Hostgate-Signature header or the content of the
 * .sig file: "ed25519=" and the standard base64 of the 64-byte signature,
 * surrounding whitespace ignored. The signature covers the exact bytes.
 *
 * Errors: -1 with a one-line message in err (never key material).
 */
#ifndef HOSTGATE_VERIFY_H
#define HOSTGATE_VERIFY_H

#include <stddef.h>

struct evp_pkey_st;		/* OpenSSL's EVP_PKEY */

/* Returns the key (free with verify_free_key) or NULL. */
struct evp_pkey_st *verify_load_key(const char *path, char *err, size_t errlen);
/* Returns 0 when sigline is a valid signature of buf by key, else -1. */
int verify_signature(struct evp_pkey_st *key, const char *sigline, const void *buf,
		     size_t len, char *err, size_t errlen);
/* SHA-256 of buf into out. Returns 0 or -1. */
int verify_sha256(const void *buf, size_t len, unsigned char out[32]);
void verify_free_key(struct evp_pkey_st *key);

#endif
