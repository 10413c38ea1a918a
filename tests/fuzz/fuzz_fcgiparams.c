/*
 * fuzz_fcgiparams — a request's FastCGI parameters as the front takes them
 * (fcgi-app/front.c: the content of the PARAMS records, whatever a web
 * server, or whoever can reach the socket, sends), through fcgirec_params.
 * Invariants: malformed input is refused, never read past; every string it
 * gives holds a '=' (between name and value) and lies inside the one
 * allocation; there are at most half as many strings as input bytes (each
 * pair takes at least two length bytes).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fcgi-app/fcgirec.h"
#include "tests/fuzz/check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char **envp = NULL;
	size_t n = 0;

	if (fcgirec_params((const char *)data, size, &envp) != 0) {
		CHECK(envp == NULL);
		return 0;
	}
	CHECK(envp != NULL);
	while (envp[n])
		n++;
	for (size_t i = 0; i < n; i++) {
		const char *base = (const char *)(envp + n + 1), *s = envp[i];

		/* inside the strings' part of the allocation, and in order */
		CHECK(s >= base && s < base + size + 1);
		CHECK(i == 0 || s > envp[i - 1]);
		/* the name may hold a NUL: the '=' is then past strlen */
		CHECK(memchr(s, '=', (size_t)(base + size + 1 - s)) != NULL);
	}
	CHECK(n <= size / 2);
	free(envp);
	return 0;
}
