/*
 * test_path — path_decode, path_check (the open-proxy defence) and
 * path_encode, as tables. Inputs are copied into buffers of their exact
 * length (no terminator), so ASan catches a read past len.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy/path.h"

/* len 0 means strlen(s); inputs with a NUL give their length */
struct check_case {
	const char *path;
	size_t len;
	int want;		/* 0 or -1 */
};

static const struct check_case check_cases[] = {
	{ "", 0, 0 },
	{ "/", 0, 0 },
	{ "/a/b", 0, 0 },
	{ "/a//b/", 0, 0 },
	{ "/a/.b", 0, 0 },
	{ "/a/b.", 0, 0 },
	{ "/.../x", 0, 0 },
	{ "/a/%2e%2e%2e", 0, 0 },
	{ "/.a./..b", 0, 0 },
	{ "/group%2Fproject", 0, 0 },
	{ "/a;b/c;..", 0, 0 },	/* after the ';' is a parameter, not a piece */
	{ "/%41%42", 0, 0 },
	{ "/a+b", 0, 0 },
	{ "/%252e%252e", 0, 0 },	/* decodes once to "%2e%2e": not a dot piece */
	{ "/%E2%82%AC", 0, 0 },
	{ "/a%09b", 0, 0 },
	/* dot pieces, in every disguise */
	{ "/..", 0, -1 },
	{ "/.", 0, -1 },
	{ "..", 0, -1 },
	{ ".", 0, -1 },
	{ "/a/../b", 0, -1 },
	{ "/a/./b", 0, -1 },
	{ "/a/..", 0, -1 },
	{ "/a/../", 0, -1 },
	{ "/%2e%2e/x", 0, -1 },
	{ "/%2E%2E/x", 0, -1 },
	{ "/%2E./x", 0, -1 },
	{ "/.%2e/x", 0, -1 },
	{ "/a/%2e", 0, -1 },
	{ "/..%2f..", 0, -1 },
	{ "/..%2F..%2Fetc", 0, -1 },
	{ "/a%2f..%2fb", 0, -1 },
	{ "/a%5c..%5cb", 0, -1 },
	{ "/a%5C.", 0, -1 },
	{ "/a\\..\\b", 0, -1 },
	{ "\\..", 0, -1 },
	{ "/..\\x", 0, -1 },
	{ "/a/..;/b", 0, -1 },
	{ "/a/.;x/b", 0, -1 },
	{ "/a/%2e%2e;jsessionid=1", 0, -1 },
	/* NUL, CR, LF, raw or encoded */
	{ "/.%00", 0, -1 },
	{ "/a%00", 0, -1 },
	{ "/a%0d%0aX-Evil: 1", 0, -1 },
	{ "/%0A", 0, -1 },
	{ "/a\rb", 0, -1 },
	{ "/a\nb", 0, -1 },
	{ "/a\0b", 4, -1 },
	/* malformed escapes */
	{ "/%", 0, -1 },
	{ "/%4", 0, -1 },
	{ "/%zz", 0, -1 },
	{ "/%g0", 0, -1 },
	{ "/a%2", 0, -1 },
	{ "/%%41", 0, -1 },
};

static void test_check(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(check_cases) / sizeof(check_cases[0]); i++) {
		const struct check_case *c = &check_cases[i];
		size_t len = c->len ? c->len : strlen(c->path);
		char *buf = malloc(len ? len : 1);
		int got;

		assert_non_null(buf);
		memcpy(buf, c->path, len);
		got = path_check(buf, len);
		free(buf);
		if (got != c->want)
			fail_msg("path_check case %zu '%s': got %d, want %d", i, c->path, got, c->want);
	}
}

struct decode_case {
	const char *in;
	const char *out;	/* NULL: -1 */
	size_t out_len;		/* 0: strlen(out) */
};

static const struct decode_case decode_cases[] = {
	{ "", "", 0 },
	{ "abc", "abc", 0 },
	{ "a%20b", "a b", 0 },
	{ "%41%42%43", "ABC", 0 },
	{ "%4a%4A", "JJ", 0 },
	{ "a+b", "a+b", 0 },
	{ "%2F%2f", "//", 0 },
	{ "%e2%82%ac", "\xe2\x82\xac", 0 },
	{ "%00x", "\0x", 2 },
	{ "%2525", "%25", 0 },
	{ "%", NULL, 0 },
	{ "%4", NULL, 0 },
	{ "a%2", NULL, 0 },
	{ "%zz", NULL, 0 },
	{ "%-1", NULL, 0 },
	{ "ok%", NULL, 0 },
};

static void test_decode(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(decode_cases) / sizeof(decode_cases[0]); i++) {
		const struct decode_case *c = &decode_cases[i];
		size_t len = strlen(c->in);
		char *src = malloc(len ? len : 1), *dst = malloc(len ? len : 1);
		long got;

		assert_non_null(src);
		assert_non_null(dst);
		memcpy(src, c->in, len);
		got = path_decode(src, len, dst);
		if (!c->out) {
			if (got != -1)
				fail_msg("path_decode case %zu '%s': got %ld, want -1", i, c->in, got);
		} else {
			size_t want = c->out_len ? c->out_len : strlen(c->out);

			if (got != (long)want || memcmp(dst, c->out, want) != 0)
				fail_msg("path_decode case %zu '%s': got %ld bytes", i, c->in, got);
		}
		free(src);
		free(dst);
	}
}

struct encode_case {
	const char *in;
	size_t in_len;		/* 0: strlen(in) */
	const char *keep;
	size_t cap;
	const char *out;	/* NULL: -1 */
};

static const struct encode_case encode_cases[] = {
	{ "", 0, "", 8, "" },
	{ "AZaz09-._~", 0, "", 64, "AZaz09-._~" },
	{ "a b", 0, "", 64, "a%20b" },
	{ "a/b", 0, "", 64, "a%2Fb" },
	{ "a/b", 0, "/", 64, "a/b" },
	{ "a/b", 0, NULL, 64, "a%2Fb" },
	{ "a&b=c", 0, "", 64, "a%26b%3Dc" },
	{ "a&b=c", 0, "=", 64, "a%26b=c" },
	{ "%", 0, "", 64, "%25" },
	{ "\xff\x80", 0, "", 64, "%FF%80" },
	{ "\r\n", 0, "", 64, "%0D%0A" },
	{ "a\0b", 3, "/", 64, "a%00b" },	/* a NUL is never kept */
	{ "+", 0, "", 64, "%2B" },
	/* capacity: exact fit, one short */
	{ "abc", 0, "", 3, "abc" },
	{ "abc", 0, "", 2, NULL },
	{ "a b", 0, "", 5, "a%20b" },
	{ "a b", 0, "", 4, NULL },
	{ " ", 0, "", 2, NULL },
	{ "x", 0, "", 0, NULL },
};

static void test_encode(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(encode_cases) / sizeof(encode_cases[0]); i++) {
		const struct encode_case *c = &encode_cases[i];
		size_t len = c->in_len ? c->in_len : strlen(c->in);
		char *dst = malloc(c->cap ? c->cap : 1);
		long got;

		assert_non_null(dst);
		got = path_encode(c->in, len, c->keep, dst, c->cap);
		if (!c->out) {
			if (got != -1)
				fail_msg("path_encode case %zu: got %ld, want -1", i, got);
		} else if (got != (long)strlen(c->out) || memcmp(dst, c->out, strlen(c->out)) != 0) {
			fail_msg("path_encode case %zu: got %ld '%.*s', want '%s'", i, got,
				 got > 0 ? (int)got : 0, dst, c->out);
		}
		free(dst);
	}
}

/* decode(encode(x)) == x for every byte, whatever is kept */
static void test_round_trip(void **state)
{
	static const char *const keeps[] = { "", "/", "/:@!$&'()*+,;=" };
	char all[256], enc[256 * 3], dec[256 * 3];

	(void)state;
	for (int i = 0; i < 256; i++)
		all[i] = (char)i;
	for (size_t k = 0; k < sizeof(keeps) / sizeof(keeps[0]); k++) {
		long n = path_encode(all, sizeof(all), keeps[k], enc, sizeof(enc));
		long d;

		assert_true(n > 0);
		/* the encoded form is printable ASCII and passes no CR, LF or NUL */
		for (long j = 0; j < n; j++)
			assert_true(enc[j] > ' ' && enc[j] < 0x7f);
		d = path_decode(enc, (size_t)n, dec);
		assert_int_equal(d, 256);
		assert_memory_equal(dec, all, 256);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_decode),
		cmocka_unit_test(test_encode),
		cmocka_unit_test(test_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
