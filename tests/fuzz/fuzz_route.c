/*
 * fuzz_route — random requests through route_match on a fixed small gateway
 * (built once, in the target, without the loader).
 *
 * Input: "HOST\nMETHOD\nPATH" (PATH is every byte after the second newline;
 * an input with fewer newlines is a PATH alone, without a Host). Invariants:
 * the status is one of the four; on OK and NO_OPERATION an API is set and
 * rest is a suffix of the path, empty or starting with '/'; parameters are
 * slices of the path; an accepted path passes path_check; and the match does
 * not change when the path's letters are upper-cased (matching is
 * case-insensitive, escapes included).
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/path.h"
#include "policy/route.h"
#include "tests/fuzz/check.h"

#define FUZZ_MAX 65536

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz_op {
	const char *method, *tmpl;
};

struct fz_api {
	const char *path, *host;
	struct fz_op ops[8];
};

static const struct fz_api fz_apis[] = {
	{ "", NULL, { { NULL, NULL } } },
	{ "weather", NULL, { { "GET", "/forecast/{city}" }, { "GET", "/forecast/today" },
			     { "*", "/forecast/{city}/{*rest}" } } },
	{ "weather/v2", NULL, { { NULL, NULL } } },
	{ "weather/v2", "api.example.com", { { "GET", "/" }, { "POST", "/{a}/{b}" } } },
	{ "shop", "shop.example.com", { { NULL, NULL } } },
	{ "items", NULL, { { "GET", "/{id}" }, { "POST", "/new" }, { "*", "/{id}" },
			   { "GET", "/{id}/files/{*path}" }, { "GET", "/a%2Fb" },
			   { "PUT", "/{*all}" } } },
	{ "My%20Api", NULL, { { "GET", "/x" } } },
};

#define FZ_N_APIS (sizeof(fz_apis) / sizeof(fz_apis[0]))

static struct gateway fz_gw;
static struct gw_api fz_gw_apis[FZ_N_APIS];

static char *fz_strdup(const char *s)
{
	char *d = strdup(s);

	if (!d)
		abort();
	return d;
}

static void fz_init(void)
{
	struct cfg_errors errs = CFG_ERRORS_INIT;

	for (size_t i = 0; i < FZ_N_APIS; i++) {
		struct gw_api *a = &fz_gw_apis[i];
		size_t n = 0;

		a->id = fz_strdup(fz_apis[i].path);
		a->path = fz_strdup(fz_apis[i].path);
		if (fz_apis[i].host) {
			a->hostnames = calloc(1, sizeof(*a->hostnames));
			if (!a->hostnames)
				abort();
			a->hostnames[0] = fz_strdup(fz_apis[i].host);
			a->n_hostnames = 1;
		}
		while (n < 8 && fz_apis[i].ops[n].method)
			n++;
		if (n) {
			a->operations = calloc(n, sizeof(*a->operations));
			if (!a->operations)
				abort();
			for (size_t j = 0; j < n; j++) {
				a->operations[j].id = fz_strdup(fz_apis[i].ops[j].tmpl);
				a->operations[j].method = fz_strdup(fz_apis[i].ops[j].method);
				a->operations[j].url_template = fz_strdup(fz_apis[i].ops[j].tmpl);
			}
			a->n_operations = n;
		}
	}
	fz_gw.apis = fz_gw_apis;
	fz_gw.n_apis = FZ_N_APIS;
	if (route_build(&fz_gw, &errs) != 0) {
		fprintf(stderr, "fuzz_route: %s\n", errs.n ? errs.msg[0] : "route_build failed");
		abort();
	}
	cfg_errors_release(&errs);
}

static void check_match(enum route_status st, const struct route_match *m, const char *path,
			size_t len)
{
	CHECK(st == ROUTE_OK || st == ROUTE_BAD_PATH || st == ROUTE_NO_API ||
	      st == ROUTE_NO_OPERATION);
	if (st != ROUTE_OK && st != ROUTE_NO_OPERATION)
		return;
	CHECK(path_check(path, len) == 0);
	CHECK(m->api >= fz_gw_apis && m->api < fz_gw_apis + FZ_N_APIS);
	CHECK(m->rest >= path && m->rest + m->rest_len == path + len);
	CHECK(m->rest_len == 0 || m->rest[0] == '/');
	if (st == ROUTE_NO_OPERATION) {
		CHECK(m->api->n_operations > 0);
		return;
	}
	CHECK((m->op == NULL) == (m->api->n_operations == 0));
	CHECK(m->n_params <= ROUTE_MAX_PARAMS);
	for (size_t i = 0; i < m->n_params; i++) {
		CHECK(m->params[i].name && *m->params[i].name);
		CHECK(m->params[i].raw >= m->rest);
		CHECK(m->params[i].raw + m->params[i].raw_len <= path + len);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	const char *in = (const char *)data, *nl1, *nl2;
	char host[256], method[32];
	const char *h = NULL, *meth = "GET";
	const char *path = in;
	size_t len = size;
	char *copy = NULL, *upper = NULL;
	struct route_match m, mu;
	enum route_status st, su;

	if (!ready) {
		fz_init();
		ready = 1;
	}
	if (size > FUZZ_MAX)
		return 0;
	nl1 = memchr(in, '\n', size);
	nl2 = nl1 ? memchr(nl1 + 1, '\n', size - (size_t)(nl1 + 1 - in)) : NULL;
	if (nl2) {
		size_t hl = (size_t)(nl1 - in), ml = (size_t)(nl2 - nl1 - 1);

		if (hl < sizeof(host) && !memchr(in, '\0', hl)) {
			memcpy(host, in, hl);
			host[hl] = '\0';
			h = host;
		}
		if (ml < sizeof(method) && !memchr(nl1 + 1, '\0', ml)) {
			memcpy(method, nl1 + 1, ml);
			method[ml] = '\0';
			meth = method;
		}
		path = nl2 + 1;
		len = size - (size_t)(path - in);
	}
	/* exact-length copies: a read past len is a crash under ASan */
	copy = malloc(len ? len : 1);
	upper = malloc(len ? len : 1);
	if (!copy || !upper)
		goto out;
	memcpy(copy, path, len);
	for (size_t i = 0; i < len; i++)
		upper[i] = (char)toupper((unsigned char)copy[i]);

	st = route_match(&fz_gw, copy, len, h, meth, &m);
	check_match(st, &m, copy, len);
	su = route_match(&fz_gw, upper, len, h, meth, &mu);
	check_match(su, &mu, upper, len);
	CHECK(st == su);
	if (st == ROUTE_OK || st == ROUTE_NO_OPERATION) {
		CHECK(m.api == mu.api && m.op == mu.op && m.n_params == mu.n_params);
		CHECK(m.rest - copy == mu.rest - upper);
		for (size_t i = 0; i < m.n_params; i++)
			CHECK(m.params[i].raw - copy == mu.params[i].raw - upper &&
			      m.params[i].raw_len == mu.params[i].raw_len);
	}
out:
	free(copy);
	free(upper);
	return 0;
}
