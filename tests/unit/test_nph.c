/*
 * test_nph — the CGI output the handler makes, turned into the HTTP message
 * an NPH program must send: the status line, the framing, and a cut-short
 * answer left without its last chunk.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fcgi-app/nph.h"

static char out[1 << 20];
static size_t out_len;
static int fail_writes;

static int sink(void *ctx, const char *buf, size_t n)
{
	(void)ctx;
	if (fail_writes)
		return -1;
	assert_true(out_len + n < sizeof(out));
	memcpy(out + out_len, buf, n);
	out_len += n;
	out[out_len] = '\0';
	return 0;
}

static struct nph n;

static void start(const char *proto, const char *method)
{
	out_len = 0;
	out[0] = '\0';
	fail_writes = 0;
	nph_init(&n, proto, method, sink, NULL);
}

/* out without its Date line, which changes every second */
static const char *undated(void)
{
	static char buf[sizeof(out)];
	char *d = strstr(out, "Date: ");
	size_t pre;
	char *eol;

	if (!d)
		return out;
	pre = (size_t)(d - out);
	eol = strstr(d, "\r\n");
	memcpy(buf, out, pre);
	memcpy(buf + pre, eol + 2, strlen(eol + 2) + 1);
	return buf;
}

static void test_wanted(void **state)
{
	(void)state;
	assert_true(nph_wanted("/usr/lib/cgi-bin/nph-hostgate-fcgi"));
	assert_true(nph_wanted("nph-x"));
	assert_false(nph_wanted("/usr/lib/cgi-bin/hostgate-fcgi"));
	assert_false(nph_wanted("/srv/nph-dir/hostgate-fcgi"));
	assert_false(nph_wanted(NULL));
}

static void test_unknown_length_is_chunked_and_ended(void **state)
{
	(void)state;
	start("HTTP/1.1", "GET");
	assert_int_equal(nph_write(&n, "Status: 200 OK\r\nContent-Type: text/plain\r\n", 42), 0);
	assert_int_equal(out_len, 0);	/* held until the blank line */
	assert_int_equal(nph_write(&n, "X-Request-Id: r1\r\n\r\n", 20), 0);
	assert_int_equal(nph_write(&n, "hello", 5), 0);
	assert_int_equal(nph_write(&n, "", 0), 0);	/* no empty chunk: it would end the body */
	assert_int_equal(nph_finish(&n, 0), 0);
	assert_string_equal(undated(),
			    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Request-Id: r1\r\n"
			    "Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
			    "5\r\nhello\r\n0\r\n\r\n");
	assert_non_null(strstr(out, "\r\nDate: "));
}

static void test_aborted_has_no_last_chunk(void **state)
{
	(void)state;
	start("HTTP/1.1", "GET");
	assert_int_equal(nph_write(&n, "Status: 200 OK\r\n\r\nabc", 21), 0);
	assert_int_equal(nph_finish(&n, 1), 0);
	assert_string_equal(undated(), "HTTP/1.1 200 OK\r\nConnection: close\r\n"
			    "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n");
}

static void test_known_length_passes_as_is(void **state)
{
	(void)state;
	start("HTTP/1.1", "GET");
	assert_int_equal(nph_write(&n, "Status: 404 Not Found\r\nContent-Length: 2\r\n\r\n", 44), 0);
	assert_int_equal(nph_write(&n, "{}", 2), 0);
	assert_int_equal(nph_finish(&n, 0), 0);
	assert_string_equal(undated(), "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n"
			    "Connection: close\r\n\r\n{}");
}

static void test_http10_and_bodiless_answers_are_not_chunked(void **state)
{
	(void)state;
	start("HTTP/1.0", "GET");
	assert_int_equal(nph_write(&n, "Status: 200 OK\r\n\r\nab", 20), 0);
	assert_int_equal(nph_finish(&n, 0), 0);
	assert_string_equal(undated(), "HTTP/1.0 200 OK\r\nConnection: close\r\n\r\nab");

	start("HTTP/1.1", "HEAD");
	assert_int_equal(nph_write(&n, "Status: 200 OK\r\n\r\n", 18), 0);
	assert_int_equal(nph_write(&n, "never", 5), 0);
	assert_int_equal(nph_finish(&n, 0), 0);
	assert_string_equal(undated(), "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");

	start("HTTP/1.1", "GET");
	assert_int_equal(nph_write(&n, "Status: 304 Not Modified\r\n\r\n", 28), 0);
	assert_int_equal(nph_finish(&n, 0), 0);
	assert_string_equal(undated(), "HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n");
}

static void test_framing_headers_are_ours(void **state)
{
	(void)state;
	start("HTTP/1.1", "GET");
	{
	const char *cgi = "Status: 200 OK\r\nConnection: keep-alive\r\n"
			  "Transfer-Encoding: gzip\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n";

	assert_int_equal(nph_write(&n, cgi, strlen(cgi)), 0);
	assert_int_equal(nph_finish(&n, 0), 0);
	assert_string_equal(out, "HTTP/1.1 200 OK\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n"
			    "Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
	}
}

static void test_head_split_anywhere(void **state)
{
	const char *cgi = "Status: 201 Created\r\nLocation: https://a/b\r\n\r\nxyz";
	char whole[4096];
	size_t whole_len;

	(void)state;
	start("HTTP/1.1", "POST");
	assert_int_equal(nph_write(&n, cgi, strlen(cgi)), 0);
	assert_int_equal(nph_finish(&n, 0), 0);
	memcpy(whole, undated(), strlen(undated()) + 1);
	whole_len = strlen(whole);
	for (size_t cut = 1; cut < strlen(cgi); cut++) {
		start("HTTP/1.1", "POST");
		assert_int_equal(nph_write(&n, cgi, cut), 0);
		assert_int_equal(nph_write(&n, cgi + cut, strlen(cgi) - cut), 0);
		assert_int_equal(nph_finish(&n, 0), 0);
		/* the same message, though the body may come in more chunks */
		if (cut >= strlen(cgi) - 3)
			continue;
		assert_int_equal(strlen(undated()), whole_len);
		assert_string_equal(undated(), whole);
	}
}

static void test_bad_heads_fail(void **state)
{
	static char big[NPH_HEAD_MAX + 10];

	(void)state;
	start("HTTP/1.1", "GET");
	assert_int_equal(nph_write(&n, "Content-Type: x\r\n\r\n", 19), -1);
	assert_int_equal(nph_finish(&n, 0), -1);
	assert_int_equal(out_len, 0);

	start("HTTP/1.1", "GET");
	assert_int_equal(nph_write(&n, "Status: 2x0 OK\r\n\r\n", 18), -1);

	start("HTTP/1.1", "GET");
	memset(big, 'a', sizeof(big));
	assert_int_equal(nph_write(&n, big, sizeof(big)), -1);
	assert_int_equal(out_len, 0);

	/* a lone CR or LF in the head (found by fuzz_fcgirec): the client would
	 * see a blank line there and take the rest of the head for the body */
	start("HTTP/1.1", "GET");
	assert_int_equal(nph_write(&n, "Status: 200 OK\r\n\r/x: y\r\n\r\nbody", 30), -1);
	assert_int_equal(out_len, 0);
	start("HTTP/1.1", "GET");
	assert_int_equal(nph_write(&n, "Status: 200 OK\r\nA: b\nC: d\r\n\r\n", 29), -1);
	assert_int_equal(out_len, 0);

	start("HTTP/1.1", "GET");
	assert_int_equal(nph_write(&n, "\r\nX: y\r\nStatus: 200 OK\r\n\r\n", 26), -1);
	assert_int_equal(out_len, 0);

	start("HTTP/1.1", "GET");
	fail_writes = 1;
	assert_int_equal(nph_write(&n, "Status: 200 OK\r\n\r\n", 18), -1);
	assert_int_equal(nph_write(&n, "x", 1), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wanted),
		cmocka_unit_test(test_unknown_length_is_chunked_and_ended),
		cmocka_unit_test(test_aborted_has_no_last_chunk),
		cmocka_unit_test(test_known_length_passes_as_is),
		cmocka_unit_test(test_http10_and_bodiless_answers_are_not_chunked),
		cmocka_unit_test(test_framing_headers_are_ours),
		cmocka_unit_test(test_head_split_anywhere),
		cmocka_unit_test(test_bad_heads_fail),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
