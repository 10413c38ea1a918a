/* common/sha256: FIPS 180-4's examples, and OpenSSL's answer for every length
 * from 0 to 300 bytes (every padding case: a tail under 56 bytes, 56 to 63,
 * whole blocks). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/sha.h>

#include "common/sha256.h"

static void hex(const unsigned char *md, char out[65])
{
	for (int i = 0; i < 32; i++) {
		out[2 * i] = "0123456789abcdef"[md[i] >> 4];
		out[2 * i + 1] = "0123456789abcdef"[md[i] & 15];
	}
	out[64] = '\0';
}

static void check(const char *msg, const char *want)
{
	unsigned char md[SHA256_LEN];
	char got[65];

	sha256(msg, strlen(msg), md);
	hex(md, got);
	assert_string_equal(got, want);
}

static void test_fips_examples(void **state)
{
	(void)state;
	check("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	check("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	check("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
	      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_every_length_against_openssl(void **state)
{
	unsigned char buf[300], a[SHA256_LEN], b[SHA256_LEN];

	(void)state;
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)(i * 131 + 7);
	for (size_t n = 0; n <= sizeof(buf); n++) {
		sha256(buf, n, a);
		SHA256(buf, n, b);
		assert_memory_equal(a, b, SHA256_LEN);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fips_examples),
		cmocka_unit_test(test_every_length_against_openssl),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
