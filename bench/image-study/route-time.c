/*
 * route-time — how long route_match() takes on today's compiled gateway, for
 * bench/scale's "route matching" row: loads a document with gw_load_file(),
 * then times LOOKUPS matches of paths that bench/gen-doc's APIs serve
 * ("/svc%05d/items/ID", API chosen by a fixed pseudo-random sequence, so every
 * size sees the same kind of spread) and of a path no API serves ("/nope").
 *
 *   route-time DOC N_APIS [LOOKUPS [HOSTS]]
 *
 * HOSTS=1: the document has gen-doc --hostnames, so each lookup sends the
 * first hostname of its API ("h%d-0.example") as Host.
 *
 * Prints one line: "load_ms=… hit_ns=… miss_ns=…" (median of 5 rounds each).
 * Built by bench/scale against build/libpolicy.a; benchmark code, not product.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy/gateway.h"
#include "policy/route.h"

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* xorshift: the same sequence in every run and for both prototypes */
static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

int main(int argc, char **argv)
{
	struct cfg_errors errs = CFG_ERRORS_INIT;
	struct gateway *gw;
	double t0, load_ms, hit[5], miss[5];
	unsigned long n_apis, lookups = 200000;
	char (*paths)[64], (*hosts)[32];
	int with_hosts = argc > 4 && !strcmp(argv[4], "1");
	volatile unsigned long sink = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: route-time DOC N_APIS [LOOKUPS]\n");
		return 2;
	}
	n_apis = strtoul(argv[2], NULL, 10);
	if (argc > 3)
		lookups = strtoul(argv[3], NULL, 10);
	if (n_apis == 0 || lookups == 0)
		return 2;
	t0 = now_ns();
	gw = gw_load_file(argv[1], &errs);
	load_ms = (now_ns() - t0) / 1e6;
	if (!gw) {
		fprintf(stderr, "route-time: cannot load '%s': %s\n", argv[1],
			errs.n ? errs.msg[0] : "?");
		return 1;
	}
	/* the paths are made before timing, so only matching is measured */
	paths = malloc(lookups * sizeof(*paths));
	hosts = malloc(lookups * sizeof(*hosts));
	if (!paths || !hosts)
		return 1;
	uint64_t s = 0x9e3779b97f4a7c15ull;
	for (unsigned long i = 0; i < lookups; i++) {
		unsigned long api = (unsigned long)(next_rand(&s) % n_apis);

		snprintf(paths[i], sizeof(paths[i]), "/svc%05lu/items/%lu", api, i);
		snprintf(hosts[i], sizeof(hosts[i]), "h%lu-0.example", api);
	}
	for (int round = 0; round < 5; round++) {
		struct route_match m;

		t0 = now_ns();
		for (unsigned long i = 0; i < lookups; i++) {
			if (route_match(gw, paths[i], strlen(paths[i]),
					with_hosts ? hosts[i] : NULL, "GET", &m) == ROUTE_OK)
				sink++;
		}
		hit[round] = (now_ns() - t0) / (double)lookups;
		t0 = now_ns();
		for (unsigned long i = 0; i < lookups; i++) {
			if (route_match(gw, "/nope", 5, NULL, "GET", &m) == ROUTE_NO_API)
				sink++;
		}
		miss[round] = (now_ns() - t0) / (double)lookups;
	}
	if (sink != 10 * lookups) {
		fprintf(stderr, "route-time: %lu of %lu lookups gave the expected answer\n",
			sink, 10 * lookups);
		return 1;
	}
	qsort(hit, 5, sizeof(double), cmp_double);
	qsort(miss, 5, sizeof(double), cmp_double);
	printf("load_ms=%.1f hit_ns=%.1f miss_ns=%.1f\n", load_ms, hit[2], miss[2]);
	free(paths);
	free(hosts);
	gw_free(gw);
	cfg_errors_release(&errs);
	return 0;
}
