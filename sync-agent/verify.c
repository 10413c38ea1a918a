#include "sync-agent/verify.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SIG_PREFIX "ed25519="
#define ED25519_SIG_LEN 64
#define SIG_B64_MAX 128

struct evp_pkey_st *verify_load_key(const char *path, char *err, size_t errlen)
{
	EVP_PKEY *key = NULL;
	struct stat st;
	FILE *fp;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "cannot open 'public_key_file' '%s': %s", path,
			 fd < 0 ? strerror(errno) : "not a regular file");
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	fp = fdopen(fd, "r");
	if (!fp) {
		snprintf(err, errlen, "cannot open 'public_key_file' '%s': %s", path,
			 strerror(errno));
		close(fd);
		return NULL;
	}
	key = PEM_read_PUBKEY(fp, NULL, NULL, NULL);
	fclose(fp);
	if (!key) {
		snprintf(err, errlen, "'%s' holds no PEM public key", path);
		return NULL;
	}
	if (EVP_PKEY_get_id(key) != EVP_PKEY_ED25519) {
		snprintf(err, errlen, "'%s' is not an Ed25519 public key", path);
		EVP_PKEY_free(key);
		return NULL;
	}
	return key;
}

/* Decodes "ed25519=BASE64" into sig. Returns 0 or -1. */
static int parse_sigline(const char *line, unsigned char sig[ED25519_SIG_LEN])
{
	unsigned char out[SIG_B64_MAX];
	char b64[SIG_B64_MAX + 1];
	size_t n, pad = 0;
	int m;

	while (*line == ' ' || *line == '\t' || *line == '\r' || *line == '\n')
		line++;
	if (strncmp(line, SIG_PREFIX, sizeof(SIG_PREFIX) - 1) != 0)
		return -1;
	line += sizeof(SIG_PREFIX) - 1;
	n = strlen(line);
	while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t' || line[n - 1] == '\r' ||
			 line[n - 1] == '\n'))
		n--;
	if (n == 0 || n % 4 != 0 || n > SIG_B64_MAX)
		return -1;
	memcpy(b64, line, n);
	b64[n] = '\0';
	for (size_t i = 0; i < n; i++) {
		char c = b64[i];
		int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			 (c >= '0' && c <= '9') || c == '+' || c == '/' ||
			 (c == '=' && i >= n - 2);

		if (!ok)
			return -1;
	}
	if (b64[n - 1] == '=')
		pad++;
	if (b64[n - 2] == '=')
		pad++;
	/* EVP_DecodeBlock counts padding as zero bytes */
	m = EVP_DecodeBlock(out, (const unsigned char *)b64, (int)n);
	if (m < 0 || (size_t)m < pad || (size_t)m - pad != ED25519_SIG_LEN)
		return -1;
	memcpy(sig, out, ED25519_SIG_LEN);
	return 0;
}

int verify_signature(struct evp_pkey_st *key, const char *sigline, const void *buf,
		     size_t len, char *err, size_t errlen)
{
	unsigned char sig[ED25519_SIG_LEN];
	EVP_MD_CTX *ctx = NULL;
	int rc = -1;

	if (parse_sigline(sigline, sig) < 0) {
		snprintf(err, errlen, "the signature is not 'ed25519=' and 64 bytes of base64");
		goto out;
	}
	ctx = EVP_MD_CTX_new();
	if (!ctx) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	/* Ed25519 hashes internally: no digest, one-shot verify */
	if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) != 1) {
		snprintf(err, errlen, "cannot set up signature verification");
		goto out;
	}
	if (EVP_DigestVerify(ctx, sig, sizeof(sig), buf, len) != 1) {
		snprintf(err, errlen, "the signature does not match the document and "
			 "'public_key_file'");
		goto out;
	}
	rc = 0;
out:
	EVP_MD_CTX_free(ctx);
	return rc;
}

int verify_sha256(const void *buf, size_t len, unsigned char out[32])
{
	unsigned int n = 0;

	if (EVP_Digest(buf, len, out, &n, EVP_sha256(), NULL) != 1 || n != 32)
		return -1;
	return 0;
}

void verify_free_key(struct evp_pkey_st *key)
{
	EVP_PKEY_free(key);
}
