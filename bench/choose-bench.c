/*
 * choose-bench — what a 10-condition choose adds to engine_inbound (issue
 * 10): the engine alone, in process, no web server, no sockets. Each
 * scenario loads a small document and runs the same request through
 * engine_call_init + engine_inbound + engine_finish + engine_call_release
 * N times; the median of 9 rounds is printed in ns of this thread's CPU
 * time per request (wall time would count the other work on the machine).
 *
 *   make bench-engine            (builds build/bench/choose-bench and runs it)
 *   build/bench/choose-bench [N] (default N = 50000)
 *
 * Scenarios: no policies; one set-header (what the winning branch does);
 * choose with 10 "when"s of the form ${request.header.X-Tier} == 'tK', each
 * with one set-header, hit on the first, on the last, and on "otherwise"
 * (no when true: all 10 conditions evaluated); and the same 10 conditions as
 * lower(${request.header.X-Tier}) == 'tK' (a function that allocates).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy/engine.h"
#include "policy/gateway.h"
#include "policy/route.h"

#define DOCMAX 16384

static double now_ns(void)
{
	struct timespec ts;

	/* this thread's CPU time: a machine shared with other work preempts
	 * it, which wall time would count */
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* The document with API "a" whose inbound section is inbound. */
static struct gateway *load(const char *inbound)
{
	static char doc[DOCMAX];
	struct cfg_errors errs = CFG_ERRORS_INIT;
	struct gateway *gw;

	snprintf(doc, sizeof(doc),
		 "{\"format\":1,\"generation\":1,\"backends\":{\"w\":{\"url\":\"https://w.example\"}},"
		 "\"apis\":[{\"id\":\"a\",\"path\":\"a\",\"backend\":\"w\",\"subscription_required\":false,"
		 "\"policies\":{\"inbound\":[%s]}}]}", inbound);
	gw = gw_load_buffer(doc, strlen(doc), &errs);
	if (!gw) {
		for (size_t i = 0; i < errs.n; i++)
			fprintf(stderr, "choose-bench: %s\n", errs.msg[i]);
		exit(1);
	}
	cfg_errors_release(&errs);
	return gw;
}

/* CPU ns per request, median of 9 rounds of n */
static double measure(const struct gateway *gw, const char *tier, long n)
{
	struct route_match m;
	double r[9];

	if (route_match(gw, "/a/x", 4, NULL, "GET", &m) != ROUTE_OK) {
		fprintf(stderr, "choose-bench: no route\n");
		exit(1);
	}
	for (int k = 0; k < 9; k++) {
		double t0 = now_ns();

		for (long i = 0; i < n; i++) {
			struct pol_call c;

			engine_call_init(&c, gw, &m, "192.0.2.1", "req-1", 1800000000, NULL);
			c.method = strdup("GET");
			c.path = strdup("/x");
			c.query = strdup("");
			pol_headers_add(&c.req_headers, "Host", "gw.example");
			pol_headers_add(&c.req_headers, "Accept", "application/json");
			if (tier)
				pol_headers_add(&c.req_headers, "X-Tier", tier);
			if (engine_inbound(&c) != POL_CONTINUE) {
				fprintf(stderr, "choose-bench: the request was answered (%d)\n", c.status);
				exit(1);
			}
			engine_finish(&c);
			engine_call_release(&c);
		}
		r[k] = (now_ns() - t0) / (double)n;
	}
	for (int i = 0; i < 9; i++)
		for (int j = i + 1; j < 9; j++)
			if (r[j] < r[i]) {
				double x = r[i];

				r[i] = r[j];
				r[j] = x;
			}
	return r[4];
}

/* choose with 10 whens: conditions "<lhs> == 'tK'" */
static void choose_doc(char *out, size_t cap, const char *lhs)
{
	size_t l = (size_t)snprintf(out, cap, "{\"choose\":{\"when\":[");

	for (int k = 0; k < 10; k++) {
		char cond[200];

		snprintf(cond, sizeof(cond), "%s == 't%d'", lhs, k);
		l += (size_t)snprintf(out + l, cap - l, "%s{\"condition\":\"%s\",\"policies\":["
				      "{\"set-header\":{\"name\":\"X-Branch\",\"value\":\"b%d\"}}]}",
				      k ? "," : "", cond, k);
	}
	snprintf(out + l, cap - l, "],\"otherwise\":[{\"set-header\":{\"name\":\"X-Branch\","
		 "\"value\":\"other\"}}]}}");
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 50000;
	char plain[DOCMAX / 2], lower[DOCMAX / 2];
	struct gateway *none, *one, *ch, *chl;
	double base;

	if (n < 1)
		n = 1;
	choose_doc(plain, sizeof(plain), "${request.header.X-Tier}");
	choose_doc(lower, sizeof(lower), "lower(${request.header.X-Tier})");
	none = load("");
	one = load("{\"set-header\":{\"name\":\"X-Branch\",\"value\":\"b0\"}}");
	ch = load(plain);
	chl = load(lower);
	printf("engine_inbound, CPU ns per request (median of 9 x %ld)\n", n);
	base = measure(none, "t0", n);
	printf("%-44s %8.0f\n", "no policies", base);
	printf("%-44s %8.0f\n", "one set-header", measure(one, "t0", n));
	printf("%-44s %8.0f\n", "choose x10 ==, first when true", measure(ch, "t0", n));
	printf("%-44s %8.0f\n", "choose x10 ==, last when true", measure(ch, "t9", n));
	printf("%-44s %8.0f\n", "choose x10 ==, otherwise (10 evaluated)", measure(ch, "zz", n));
	printf("%-44s %8.0f\n", "choose x10 lower()==, first when true", measure(chl, "T0", n));
	printf("%-44s %8.0f\n", "choose x10 lower()==, otherwise", measure(chl, "zz", n));
	gw_free(none);
	gw_free(one);
	gw_free(ch);
	gw_free(chl);
	return 0;
}
