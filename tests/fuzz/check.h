/* The fuzz targets' invariant check. A broken invariant aborts, so libFuzzer
 * keeps the input that broke it, and the corpus replay in `make test` fails
 * naming the file and line. */
#ifndef HOSTGATE_FUZZ_CHECK_H
#define HOSTGATE_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(c) do { \
	if (!(c)) { \
		fprintf(stderr, "%s:%d: '%s' failed\n", __FILE__, __LINE__, #c); \
		abort(); \
	} \
} while (0)

#endif
