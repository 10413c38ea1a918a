/*
 * crypto — the few cryptographic chores of hostgate-manage, over OpenSSL:
 * hashing tokens and keys (they are stored only as SHA-256), making new
 * ones, and signing documents with Ed25519 exactly as the agent verifies
 * them (sync-agent/verify.c: "ed25519=" + base64 of the 64-byte signature
 * over the body's bytes).
 *
 * Errors: -1 (nothing allocated); messages go to err where given.
 */
#ifndef HOSTGATE_MANAGE_CRYPTO_H
#define HOSTGATE_MANAGE_CRYPTO_H

#include <stddef.h>

#define CRYPTO_HEX_LEN 65	/* 64 hex digits and the NUL */
#define CRYPTO_TOKEN_LEN 44	/* 32 random bytes as base64url, and the NUL */
#define CRYPTO_SIG_LEN 100	/* "ed25519=" + 88 base64 and the NUL */

struct evp_pkey_st;

/* Lower-case hex SHA-256 of buf[0..n) into out. Never fails. */
void crypto_sha256_hex(const void *buf, size_t n, char out[CRYPTO_HEX_LEN]);
/* A new random token (base64url, 43 characters). 0 or -1. */
int crypto_token(char out[CRYPTO_TOKEN_LEN]);
/* Constant-time equality of two NUL-terminated strings of public length. */
int crypto_equal(const char *a, const char *b);
/* Loads an Ed25519 private key (PEM). NULL with err set. */
struct evp_pkey_st *crypto_load_signing_key(const char *path, char *err, size_t errlen);
void crypto_free_key(struct evp_pkey_st *key);
/* "ed25519=BASE64" over body into out. 0 or -1. */
int crypto_sign(struct evp_pkey_st *key, const void *body, size_t n, char out[CRYPTO_SIG_LEN]);

#endif
