#include "manage/crypto.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

void crypto_sha256_hex(const void *buf, size_t n, char out[CRYPTO_HEX_LEN])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[SHA256_DIGEST_LENGTH];

	SHA256(buf, n, md);
	for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
	OPENSSL_cleanse(md, sizeof(md));
}

int crypto_token(char out[CRYPTO_TOKEN_LEN])
{
	static const char b64u[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned char raw[33];
	int o = 0;

	/* 33 bytes make 44 characters; the token keeps 43 (256 bits and more) */
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -1;
	for (int i = 0; i < 33 && o < CRYPTO_TOKEN_LEN - 1; i += 3) {
		unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 | raw[i + 2];

		for (int k = 3; k >= 0 && o < CRYPTO_TOKEN_LEN - 1; k--)
			out[o++] = b64u[(v >> (6 * k)) & 63];
	}
	out[o] = '\0';
	OPENSSL_cleanse(raw, sizeof(raw));
	return 0;
}

int crypto_equal(const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);

	if (na != nb)
		return 0;
	return CRYPTO_memcmp(a, b, na) == 0;
}

struct evp_pkey_st *crypto_load_signing_key(const char *path, char *err, size_t errlen)
{
	FILE *fp = fopen(path, "re");
	EVP_PKEY *key;

	if (!fp) {
		snprintf(err, errlen, "cannot open the signing key '%s': %s", path, strerror(errno));
		return NULL;
	}
	key = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
	fclose(fp);
	if (!key) {
		snprintf(err, errlen, "'%s' holds no PEM private key", path);
		return NULL;
	}
	if (EVP_PKEY_get_id(key) != EVP_PKEY_ED25519) {
		snprintf(err, errlen, "'%s' is not an Ed25519 private key", path);
		EVP_PKEY_free(key);
		return NULL;
	}
	return key;
}

void crypto_free_key(struct evp_pkey_st *key)
{
	EVP_PKEY_free(key);
}

int crypto_sign(struct evp_pkey_st *key, const void *body, size_t n, char out[CRYPTO_SIG_LEN])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char sig[64];
	size_t slen = sizeof(sig);
	int rc = -1;

	if (!md)
		return -1;
	if (EVP_DigestSignInit(md, NULL, NULL, NULL, key) != 1 ||
	    EVP_DigestSign(md, sig, &slen, body, n) != 1 || slen != 64)
		goto out;
	memcpy(out, "ed25519=", 8);
	if (EVP_EncodeBlock((unsigned char *)out + 8, sig, 64) != 88)
		goto out;
	rc = 0;
out:
	EVP_MD_CTX_free(md);
	return rc;
}
