/*
 * fuzz_path — path_check, path_decode and path_encode on arbitrary bytes.
 * Invariants: decode(encode(x)) == x whatever is kept (when '%' is not kept);
 * the encoded form is printable ASCII; encode fits exactly its own length and
 * fails one byte shorter; path_check answers the same for every encoding
 * of the same bytes; a path that path_check accepts decodes, and a dot
 * piece is never accepted.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/path.h"
#include "tests/fuzz/check.h"

#define FUZZ_MAX 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const keeps[] = { "", "/", "/:@!$&'()*+,;=" };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	char *enc, *dec;
	long n, d;
	int ok, enc_ok = 0;

	if (size > FUZZ_MAX)
		return 0;
	enc = malloc(size * 3 + 1);
	dec = malloc(size * 3 + 1);
	if (!enc || !dec)
		goto out;

	ok = path_check(in, size);
	CHECK(ok == 0 || ok == -1);
	d = path_decode(in, size, dec);
	CHECK(d >= -1 && d <= (long)size);
	if (ok == 0) {
		CHECK(d >= 0);
		/* no decoded NUL, CR, LF; no piece "." or ".." */
		CHECK(!memchr(dec, '\0', (size_t)d) && !memchr(dec, '\r', (size_t)d) &&
		      !memchr(dec, '\n', (size_t)d));
		for (long i = 0, start = 0; i <= d; i++) {
			if (i < d && dec[i] != '/' && dec[i] != '\\')
				continue;
			CHECK(!(i - start == 1 && dec[start] == '.'));
			CHECK(!(i - start == 2 && dec[start] == '.' && dec[start + 1] == '.'));
			start = i + 1;
		}
	}

	for (size_t k = 0; k < sizeof(keeps) / sizeof(keeps[0]); k++) {
		n = path_encode(in, size, keeps[k], enc, size * 3);
		CHECK(n >= (long)size && n <= (long)size * 3);
		for (long i = 0; i < n; i++)
			CHECK(enc[i] > ' ' && enc[i] < 0x7f);
		d = path_decode(enc, (size_t)n, dec);
		CHECK(d == (long)size && memcmp(dec, in, size) == 0);
		/* path_check sees decoded bytes only: how they were encoded
		 * does not change its answer */
		if (k == 0)
			enc_ok = path_check(enc, (size_t)n);
		else
			CHECK(path_check(enc, (size_t)n) == enc_ok);
		/* a raw string without '%' decodes to itself */
		if (k == 0 && !memchr(in, '%', size))
			CHECK(path_check(in, size) == enc_ok);
		CHECK(path_encode(in, size, keeps[k], enc, (size_t)n) == n);
		if (n > 0)
			CHECK(path_encode(in, size, keeps[k], enc, (size_t)n - 1) == -1);
	}
out:
	free(enc);
	free(dec);
	return 0;
}
