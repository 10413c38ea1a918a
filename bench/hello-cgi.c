/*
 * hello-cgi — the CGI hello-world the benchmark measures hostgate's CGI mode
 * against: the cheapest useful CGI program, answering with a fixed body and
 * no libraries beyond libc.
 *
 *   GET .../hello/small.json   200, the small JSON body (bench_small_body)
 *   GET .../hello/big.bin      200, BIG_BODY_LEN bytes of 'x'
 *   hello-cgi --small | --big  the same body alone on stdout, no headers: the
 *                              benchmark writes its static files with it, so
 *                              nginx and this program serve identical bytes
 *
 * Exit status 0, or 1 when stdout fails. Built by bench/run in its temp dir.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BIG_BODY_LEN 65536

/* ~100 bytes, like a small API answer */
static const char bench_small_body[] =
	"{\"status\":\"ok\",\"service\":\"hostgate-bench\",\"items\":[1,2,3,4,5,6,7,8],"
	"\"note\":\"a small fixed API answer\"}\n";

static char big_body[BIG_BODY_LEN];

static int write_all(const char *buf, size_t n)
{
	while (n) {
		ssize_t w = write(STDOUT_FILENO, buf, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		buf += w;
		n -= (size_t)w;
	}
	return 0;
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

int main(int argc, char **argv)
{
	const char *path_info = getenv("PATH_INFO");
	const char *ctype = "application/json";
	const char *body = bench_small_body;
	size_t len = sizeof(bench_small_body) - 1;
	char head[256];
	int big, n;

	if (argc > 1)
		big = strcmp(argv[1], "--big") == 0;
	else
		big = path_info && ends_with(path_info, "/big.bin");
	if (big) {
		memset(big_body, 'x', sizeof(big_body));
		body = big_body;
		len = sizeof(big_body);
		ctype = "application/octet-stream";
	}
	if (argc > 1)
		return write_all(body, len) == 0 ? 0 : 1;
	n = snprintf(head, sizeof(head),
		     "Status: 200 OK\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n",
		     ctype, len);
	if (n < 0 || (size_t)n >= sizeof(head))
		return 1;
	return write_all(head, (size_t)n) == 0 && write_all(body, len) == 0 ? 0 : 1;
}
