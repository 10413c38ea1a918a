/*
 * sha256 — SHA-256 (FIPS 180-4) of a buffer, without OpenSSL.
 *
 *   unsigned char md[SHA256_LEN];
 *   sha256(buf, len, md);
 *
 * Why not OpenSSL's SHA256(): in OpenSSL 3 the first digest of a process
 * initialises the library context — it reads /etc/ssl/openssl.cnf, loads the
 * error strings and the default provider, about 1 ms of CPU — and a CGI
 * process is a new process per request: hashing a subscription key cost more
 * than routing the request (docs/performance.md, issue 15). The digests
 * hostgate computes are of short keys and fingerprints, where this plain C
 * loop is as fast as anything. Signatures and HMAC (policy/jose.c) stay
 * OpenSSL's. tests/unit/test_sha256.c checks it against FIPS 180-4's
 * examples and against OpenSSL on every length up to 300 bytes.
 */
#ifndef HOSTGATE_SHA256_H
#define HOSTGATE_SHA256_H

#include <stddef.h>

#define SHA256_LEN 32

void sha256(const void *data, size_t len, unsigned char out[SHA256_LEN]);

#endif
