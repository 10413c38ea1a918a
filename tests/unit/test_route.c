/*
 * test_route — route_build and route_match on gateways built by hand (no
 * loader): API selection (longest path, segment boundaries, case, hostnames
 * with fallback), operation selection (literal, {param}, {*rest}, methods,
 * backtracking), raw slices, bad paths, build errors, and 10,000 APIs.
 *
 * Every request path is copied into a heap buffer of its exact length (no
 * terminator), so ASan catches a read past len, and slices are checked to lie
 * inside it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy/gateway.h"
#include "policy/route.h"

/* ---- gateways by hand --------------------------------------------------- */

#define SPEC_MAX_HOSTS 4
#define SPEC_MAX_OPS 20

struct op_spec {
	const char *id, *method, *url_template;
};

struct api_spec {
	const char *id, *path;
	const char *hosts[SPEC_MAX_HOSTS];	/* up to the first NULL */
	struct op_spec ops[SPEC_MAX_OPS];	/* up to the first without an id */
};

static char *xstrdup(const char *s)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	assert_non_null(d);
	return d;
}

static void api_fill(struct gw_api *a, const struct api_spec *s)
{
	size_t nh = 0, no = 0;

	memset(a, 0, sizeof(*a));
	a->id = xstrdup(s->id);
	a->path = xstrdup(s->path);
	while (nh < SPEC_MAX_HOSTS && s->hosts[nh])
		nh++;
	while (no < SPEC_MAX_OPS && s->ops[no].id)
		no++;
	if (nh) {
		a->hostnames = calloc(nh, sizeof(*a->hostnames));
		assert_non_null(a->hostnames);
		for (size_t i = 0; i < nh; i++)
			a->hostnames[i] = xstrdup(s->hosts[i]);
		a->n_hostnames = nh;
	}
	if (no) {
		a->operations = calloc(no, sizeof(*a->operations));
		assert_non_null(a->operations);
		for (size_t i = 0; i < no; i++) {
			a->operations[i].id = xstrdup(s->ops[i].id);
			a->operations[i].method = xstrdup(s->ops[i].method);
			a->operations[i].url_template = xstrdup(s->ops[i].url_template);
		}
		a->n_operations = no;
	}
}

static struct gateway *gw_make(const struct api_spec *specs, size_t n)
{
	struct gateway *gw = calloc(1, sizeof(*gw));

	assert_non_null(gw);
	gw->apis = calloc(n ? n : 1, sizeof(*gw->apis));
	assert_non_null(gw->apis);
	gw->n_apis = n;
	for (size_t i = 0; i < n; i++)
		api_fill(&gw->apis[i], &specs[i]);
	return gw;
}

static void gw_destroy(struct gateway *gw)
{
	route_free(gw);
	for (size_t i = 0; i < gw->n_apis; i++) {
		struct gw_api *a = &gw->apis[i];

		free(a->id);
		free(a->path);
		for (size_t j = 0; j < a->n_hostnames; j++)
			free(a->hostnames[j]);
		free(a->hostnames);
		for (size_t j = 0; j < a->n_operations; j++) {
			free(a->operations[j].id);
			free(a->operations[j].method);
			free(a->operations[j].url_template);
		}
		free(a->operations);
	}
	free(gw->apis);
	free(gw);
}

static struct gateway *gw_build_ok(const struct api_spec *specs, size_t n)
{
	struct cfg_errors errs = CFG_ERRORS_INIT;
	struct gateway *gw = gw_make(specs, n);

	if (route_build(gw, &errs) != 0)
		fail_msg("route_build failed: %s", errs.n ? errs.msg[0] : "(no message)");
	assert_int_equal(errs.n, 0);
	cfg_errors_release(&errs);
	return gw;
}

/* ---- matching ----------------------------------------------------------- */

struct match_case {
	const char *host, *method, *path;
	enum route_status want;
	const char *api;	/* id, on OK and NO_OPERATION */
	const char *op;		/* id, or NULL for none */
	const char *rest;	/* exact bytes */
	const char *params;	/* "name=raw|name=raw" */
};

static const char *const status_name[] = { "OK", "BAD_PATH", "NO_API", "NO_OPERATION" };

/* Runs one case; returns 0, or -1 after printing what differs. */
static int match_one(const struct gateway *gw, const struct match_case *c, size_t idx)
{
	size_t len = strlen(c->path);
	char *path = malloc(len ? len : 1);
	char params[1024] = "";
	size_t pl = 0;
	struct route_match m;
	enum route_status st;
	int rc = -1;

	assert_non_null(path);
	memcpy(path, c->path, len);
	memset(&m, 0x5a, sizeof(m));
	st = route_match(gw, path, len, c->host, c->method, &m);
	if (st != c->want) {
		print_error("case %zu %s '%s' host '%s': status %s, want %s\n", idx, c->method,
			    c->path, c->host ? c->host : "(none)", status_name[st],
			    status_name[c->want]);
		goto out;
	}
	if (st != ROUTE_OK && st != ROUTE_NO_OPERATION) {
		rc = 0;
		goto out;
	}
	if (!m.api || strcmp(m.api->id, c->api) != 0) {
		print_error("case %zu '%s': api '%s', want '%s'\n", idx, c->path,
			    m.api ? m.api->id : "(null)", c->api);
		goto out;
	}
	/* rest: a suffix of the path, exactly the expected bytes */
	if (m.rest < path || m.rest + m.rest_len != path + len ||
	    m.rest_len != strlen(c->rest) || memcmp(m.rest, c->rest, m.rest_len) != 0) {
		print_error("case %zu '%s': rest '%.*s', want '%s'\n", idx, c->path,
			    (int)m.rest_len, m.rest >= path && m.rest <= path + len ? m.rest : "?",
			    c->rest);
		goto out;
	}
	if (st == ROUTE_NO_OPERATION) {
		rc = 0;
		goto out;
	}
	if ((m.op == NULL) != (c->op == NULL) || (m.op && strcmp(m.op->id, c->op) != 0)) {
		print_error("case %zu %s '%s': operation '%s', want '%s'\n", idx, c->method,
			    c->path, m.op ? m.op->id : "(none)", c->op ? c->op : "(none)");
		goto out;
	}
	for (size_t i = 0; i < m.n_params; i++) {
		const struct route_param *p = &m.params[i];

		if (p->raw < path || p->raw + p->raw_len > path + len) {
			print_error("case %zu: parameter '%s' is not a slice of the path\n", idx,
				    p->name);
			goto out;
		}
		pl += (size_t)snprintf(params + pl, sizeof(params) - pl, "%s%s=%.*s",
				       i ? "|" : "", p->name, (int)p->raw_len, p->raw);
		assert_true(pl < sizeof(params));
	}
	if (strcmp(params, c->params ? c->params : "") != 0) {
		print_error("case %zu %s '%s': parameters '%s', want '%s'\n", idx, c->method,
			    c->path, params, c->params ? c->params : "");
		goto out;
	}
	rc = 0;
out:
	free(path);
	return rc;
}

static void match_table(const struct gateway *gw, const struct match_case *cases, size_t n)
{
	size_t failed = 0;

	for (size_t i = 0; i < n; i++)
		if (match_one(gw, &cases[i], i) != 0)
			failed++;
	if (failed)
		fail_msg("%zu of %zu cases failed", failed, n);
}

/* ---- API selection ------------------------------------------------------ */

static const struct api_spec api_specs[] = {
	{ .id = "root", .path = "" },
	{ .id = "weather", .path = "weather" },
	{ .id = "weather-v2", .path = "weather/v2" },
	{ .id = "weather-v2-hosted", .path = "Weather/V2", .hosts = { "api.example.com" } },
	{ .id = "shop", .path = "shop", .hosts = { "shop.example.com", "[::1]", "192.0.2.1" } },
	{ .id = "shop-admin", .path = "shop/admin", .hosts = { "admin.example.com" } },
	{ .id = "enc", .path = "My%20Api/x%2Fy" },
	{ .id = "deep", .path = "a/b/c/d" },
};

static const struct match_case api_cases[] = {
	/* longest path wins, whole segments only */
	{ NULL, "GET", "/weather/forecast", ROUTE_OK, "weather", NULL, "/forecast", NULL },
	{ NULL, "GET", "/weather", ROUTE_OK, "weather", NULL, "", NULL },
	{ NULL, "GET", "/weather/", ROUTE_OK, "weather", NULL, "/", NULL },
	{ NULL, "GET", "/weatherx", ROUTE_OK, "root", NULL, "/weatherx", NULL },
	{ NULL, "GET", "/weatherx/v2", ROUTE_OK, "root", NULL, "/weatherx/v2", NULL },
	{ NULL, "GET", "/weather/v2", ROUTE_OK, "weather-v2", NULL, "", NULL },
	{ NULL, "GET", "/weather/v2x", ROUTE_OK, "weather", NULL, "/v2x", NULL },
	{ NULL, "GET", "/weather/v2/x/y", ROUTE_OK, "weather-v2", NULL, "/x/y", NULL },
	/* case-insensitive, also when encoded */
	{ NULL, "GET", "/WEATHER/V2/Oslo", ROUTE_OK, "weather-v2", NULL, "/Oslo", NULL },
	{ NULL, "GET", "/%57eather/x", ROUTE_OK, "weather", NULL, "/x", NULL },
	/* empty segments are ignored; rest keeps the raw bytes */
	{ NULL, "GET", "//weather//v2//x//", ROUTE_OK, "weather-v2", NULL, "//x//", NULL },
	{ NULL, "GET", "/weather/v2?", ROUTE_OK, "weather", NULL, "/v2?", NULL },
	/* the "" API */
	{ NULL, "GET", "", ROUTE_OK, "root", NULL, "", NULL },
	{ NULL, "GET", "/", ROUTE_OK, "root", NULL, "/", NULL },
	{ NULL, "GET", "/nothing/here", ROUTE_OK, "root", NULL, "/nothing/here", NULL },
	/* hostnames: port, case and trailing dot ignored; host beats no host */
	{ "api.example.com", "GET", "/weather/v2/x", ROUTE_OK, "weather-v2-hosted", NULL, "/x", NULL },
	{ "API.Example.COM:8080", "GET", "/weather/v2/x", ROUTE_OK, "weather-v2-hosted", NULL, "/x",
	  NULL },
	{ "api.example.com.", "GET", "/weather/v2", ROUTE_OK, "weather-v2-hosted", NULL, "", NULL },
	{ "other.example.com", "GET", "/weather/v2/x", ROUTE_OK, "weather-v2", NULL, "/x", NULL },
	{ "api.example.com.evil", "GET", "/weather/v2", ROUTE_OK, "weather-v2", NULL, "", NULL },
	{ "", "GET", "/weather/v2", ROUTE_OK, "weather-v2", NULL, "", NULL },
	/* hostnames exclude the request: the next-longest is tried */
	{ "shop.example.com", "GET", "/shop/cart", ROUTE_OK, "shop", NULL, "/cart", NULL },
	{ "[::1]:8443", "GET", "/shop/cart", ROUTE_OK, "shop", NULL, "/cart", NULL },
	{ "[::1]", "GET", "/shop/cart", ROUTE_OK, "shop", NULL, "/cart", NULL },
	{ "192.0.2.1:80", "GET", "/shop", ROUTE_OK, "shop", NULL, "", NULL },
	{ "evil.example.com", "GET", "/shop/cart", ROUTE_OK, "root", NULL, "/shop/cart", NULL },
	{ NULL, "GET", "/shop/cart", ROUTE_OK, "root", NULL, "/shop/cart", NULL },
	{ "admin.example.com", "GET", "/shop/admin/users", ROUTE_OK, "shop-admin", NULL, "/users",
	  NULL },
	{ "shop.example.com", "GET", "/shop/admin/users", ROUTE_OK, "shop", NULL, "/admin/users",
	  NULL },
	{ "admin.example.com", "GET", "/shop/x", ROUTE_OK, "root", NULL, "/shop/x", NULL },
	/* API paths are compared decoded; an encoded slash is one segment */
	{ NULL, "GET", "/my%20api/X%2fY/z", ROUTE_OK, "enc", NULL, "/z", NULL },
	{ NULL, "GET", "/My Api/x%2Fy", ROUTE_OK, "enc", NULL, "", NULL },
	{ NULL, "GET", "/My%20Api/x/y/z", ROUTE_OK, "root", NULL, "/My%20Api/x/y/z", NULL },
	/* a partial walk down a deep API falls back */
	{ NULL, "GET", "/a/b/c", ROUTE_OK, "root", NULL, "/a/b/c", NULL },
	{ NULL, "GET", "/a/b/c/d/e", ROUTE_OK, "deep", NULL, "/e", NULL },
	/* bad paths */
	{ NULL, "GET", "/weather/../admin", ROUTE_BAD_PATH, NULL, NULL, NULL, NULL },
	{ NULL, "GET", "/weather/%2e%2e/admin", ROUTE_BAD_PATH, NULL, NULL, NULL, NULL },
	{ NULL, "GET", "/weather/%2E.", ROUTE_BAD_PATH, NULL, NULL, NULL, NULL },
	{ NULL, "GET", "/weather/..%2f..", ROUTE_BAD_PATH, NULL, NULL, NULL, NULL },
	{ NULL, "GET", "/weather/a%5c..%5cb", ROUTE_BAD_PATH, NULL, NULL, NULL, NULL },
	{ NULL, "GET", "/weather/.%00", ROUTE_BAD_PATH, NULL, NULL, NULL, NULL },
	{ NULL, "GET", "/weather/./x", ROUTE_BAD_PATH, NULL, NULL, NULL, NULL },
	{ NULL, "GET", "/weather/%zz", ROUTE_BAD_PATH, NULL, NULL, NULL, NULL },
	{ NULL, "GET", "/weather/%", ROUTE_BAD_PATH, NULL, NULL, NULL, NULL },
	{ NULL, "GET", "weather", ROUTE_BAD_PATH, NULL, NULL, NULL, NULL },
};

static void test_api_selection(void **state)
{
	struct gateway *gw = gw_build_ok(api_specs, sizeof(api_specs) / sizeof(api_specs[0]));

	(void)state;
	match_table(gw, api_cases, sizeof(api_cases) / sizeof(api_cases[0]));
	gw_destroy(gw);
}

/* without a "" API, unmatched paths are ROUTE_NO_API */
static const struct api_spec noroot_specs[] = {
	{ .id = "weather", .path = "weather" },
	{ .id = "hosted", .path = "hosted", .hosts = { "h.example" } },
};

static const struct match_case noroot_cases[] = {
	{ NULL, "GET", "/weather/x", ROUTE_OK, "weather", NULL, "/x", NULL },
	{ NULL, "GET", "/weath", ROUTE_NO_API, NULL, NULL, NULL, NULL },
	{ NULL, "GET", "/", ROUTE_NO_API, NULL, NULL, NULL, NULL },
	{ NULL, "GET", "", ROUTE_NO_API, NULL, NULL, NULL, NULL },
	{ NULL, "GET", "/hosted", ROUTE_NO_API, NULL, NULL, NULL, NULL },
	{ "x.example", "GET", "/hosted", ROUTE_NO_API, NULL, NULL, NULL, NULL },
	{ "h.example:1", "GET", "/hosted", ROUTE_OK, "hosted", NULL, "", NULL },
	/* a bad path is a 400 even where no API would match */
	{ NULL, "GET", "/nope/..", ROUTE_BAD_PATH, NULL, NULL, NULL, NULL },
};

static void test_no_api(void **state)
{
	struct gateway *gw = gw_build_ok(noroot_specs, sizeof(noroot_specs) / sizeof(noroot_specs[0]));

	(void)state;
	match_table(gw, noroot_cases, sizeof(noroot_cases) / sizeof(noroot_cases[0]));
	gw_destroy(gw);
}

/* ---- operation selection ----------------------------------------------- */

static const struct api_spec op_specs[] = {
	{ .id = "items", .path = "items", .ops = {
		{ "list", "GET", "/" },
		{ "get", "GET", "/{id}" },
		{ "create-new", "POST", "/new" },
		{ "any-id", "*", "/{id}" },
		{ "files", "GET", "/{id}/files/{*path}" },
		{ "special-rest", "GET", "/special/{*rest}" },
		{ "special-x", "GET", "/special/x" },
		{ "put-all", "PUT", "/{*all}" },
		{ "mixed", "GET", "/Mixed/Case" },
		{ "enc-slash", "GET", "/a%2Fb" },
		{ "enc-space", "GET", "/hello%20world/{who}" },
		{ "two", "GET", "/{a}/{b}" },
		{ "two-lit", "DELETE", "/x/{b}" },
		{ "deep-lit", "GET", "/x/y/z" },
	} },
	{ .id = "weather", .path = "weather", .ops = {
		{ "forecast", "GET", "/forecast/{city}" },
		{ "today", "GET", "/forecast/today" },
	} },
	{ .id = "open", .path = "open" },
};

static const struct match_case op_cases[] = {
	/* template "/" is the API's root; trailing slashes are ignored */
	{ NULL, "GET", "/items", ROUTE_OK, "items", "list", "", NULL },
	{ NULL, "GET", "/items/", ROUTE_OK, "items", "list", "/", NULL },
	{ NULL, "GET", "/items//", ROUTE_OK, "items", "list", "//", NULL },
	/* parameters are raw slices */
	{ NULL, "GET", "/items/42", ROUTE_OK, "items", "get", "/42", "id=42" },
	{ NULL, "GET", "/items/42/", ROUTE_OK, "items", "get", "/42/", "id=42" },
	{ NULL, "GET", "/items/x%2Fy%20z", ROUTE_OK, "items", "get", "/x%2Fy%20z", "id=x%2Fy%20z" },
	/* exact method beats "*" */
	{ NULL, "DELETE", "/items/42", ROUTE_OK, "items", "any-id", "/42", "id=42" },
	{ NULL, "PATCH", "/items/42", ROUTE_OK, "items", "any-id", "/42", "id=42" },
	{ NULL, "get", "/items/42", ROUTE_OK, "items", "any-id", "/42", "id=42" },
	/* literal matches the path but not the method: the param branch is tried */
	{ NULL, "GET", "/items/new", ROUTE_OK, "items", "get", "/new", "id=new" },
	{ NULL, "POST", "/items/new", ROUTE_OK, "items", "create-new", "/new", NULL },
	{ NULL, "POST", "/items/NEW", ROUTE_OK, "items", "create-new", "/NEW", NULL },
	{ NULL, "POST", "/items/%6eew", ROUTE_OK, "items", "create-new", "/%6eew", NULL },
	/* catch-all: the raw remainder, '/' included, empty allowed */
	{ NULL, "GET", "/items/7/files/a/b%2Fc", ROUTE_OK, "items", "files", "/7/files/a/b%2Fc",
	  "id=7|path=/a/b%2Fc" },
	{ NULL, "GET", "/items/7/files/", ROUTE_OK, "items", "files", "/7/files/", "id=7|path=/" },
	{ NULL, "GET", "/items/7/files", ROUTE_OK, "items", "files", "/7/files", "id=7|path=" },
	{ NULL, "GET", "/items/7/files//x", ROUTE_OK, "items", "files", "/7/files//x",
	  "id=7|path=//x" },
	/* literal beats param beats catch-all */
	{ NULL, "GET", "/items/special/x", ROUTE_OK, "items", "special-x", "/special/x", NULL },
	{ NULL, "GET", "/items/special/y/z", ROUTE_OK, "items", "special-rest", "/special/y/z",
	  "rest=/y/z" },
	{ NULL, "GET", "/items/special", ROUTE_OK, "items", "special-rest", "/special", "rest=" },
	{ NULL, "GET", "/items/x/y", ROUTE_OK, "items", "two", "/x/y", "a=x|b=y" },
	{ NULL, "DELETE", "/items/x/y", ROUTE_OK, "items", "two-lit", "/x/y", "b=y" },
	{ NULL, "GET", "/items/x/y/z", ROUTE_OK, "items", "deep-lit", "/x/y/z", NULL },
	/* deep literal fails, back up two levels to {a}/{b}... which needs two segments */
	{ NULL, "GET", "/items/x/y/q", ROUTE_NO_OPERATION, "items", NULL, "/x/y/q", NULL },
	{ NULL, "PUT", "/items/x/y/q", ROUTE_OK, "items", "put-all", "/x/y/q", "all=/x/y/q" },
	{ NULL, "PUT", "/items", ROUTE_OK, "items", "put-all", "", "all=" },
	/* literals: decoded, case-insensitive */
	{ NULL, "GET", "/items/mixed/CASE", ROUTE_OK, "items", "mixed", "/mixed/CASE", NULL },
	{ NULL, "GET", "/items/a%2fb", ROUTE_OK, "items", "enc-slash", "/a%2fb", NULL },
	{ NULL, "GET", "/items/A%2FB", ROUTE_OK, "items", "enc-slash", "/A%2FB", NULL },
	{ NULL, "GET", "/items/a/b", ROUTE_OK, "items", "two", "/a/b", "a=a|b=b" },
	{ NULL, "GET", "/items/Hello%20World/me", ROUTE_OK, "items", "enc-space",
	  "/Hello%20World/me", "who=me" },
	{ NULL, "GET", "/items/hello world/me", ROUTE_OK, "items", "enc-space", "/hello world/me",
	  "who=me" },
	/* nothing matches: NO_OPERATION names the API */
	{ NULL, "POST", "/items", ROUTE_NO_OPERATION, "items", NULL, "", NULL },
	{ NULL, "PATCH", "/items/1/2", ROUTE_NO_OPERATION, "items", NULL, "/1/2", NULL },
	{ NULL, "GET", "/weather", ROUTE_NO_OPERATION, "weather", NULL, "", NULL },
	{ NULL, "GET", "/weather/forecast", ROUTE_NO_OPERATION, "weather", NULL, "/forecast", NULL },
	{ NULL, "GET", "/weather/forecast/oslo", ROUTE_OK, "weather", "forecast", "/forecast/oslo",
	  "city=oslo" },
	{ NULL, "GET", "/WEATHER/Forecast/Today", ROUTE_OK, "weather", "today",
	  "/Forecast/Today", NULL },
	{ NULL, "GET", "/weather/forecast/oslo/x", ROUTE_NO_OPERATION, "weather", NULL,
	  "/forecast/oslo/x", NULL },
	{ NULL, NULL, "/weather/forecast/oslo", ROUTE_NO_OPERATION, "weather", NULL,
	  "/forecast/oslo", NULL },
	/* an API without operations takes everything */
	{ NULL, "BREW", "/open/any/thing", ROUTE_OK, "open", NULL, "/any/thing", NULL },
	/* dot segments never reach operation matching */
	{ NULL, "GET", "/items/%2e%2e", ROUTE_BAD_PATH, NULL, NULL, NULL, NULL },
	{ NULL, "PUT", "/items/a/..;/b", ROUTE_BAD_PATH, NULL, NULL, NULL, NULL },
};

static void test_operations(void **state)
{
	struct gateway *gw = gw_build_ok(op_specs, sizeof(op_specs) / sizeof(op_specs[0]));

	(void)state;
	match_table(gw, op_cases, sizeof(op_cases) / sizeof(op_cases[0]));
	/* the compiled table belongs to each API with operations */
	assert_non_null(gw->routes);
	assert_non_null(gw->apis[0].ops);
	assert_null(gw->apis[2].ops);
	gw_destroy(gw);
}

/* ---- limits ------------------------------------------------------------- */

static enum route_status match_str(const struct gateway *gw, const char *path,
				   struct route_match *m)
{
	return route_match(gw, path, strlen(path), NULL, "GET", m);
}

static void test_limits(void **state)
{
	static const struct api_spec specs[] = {
		{ .id = "root", .path = "" },
		{ .id = "p", .path = "p", .ops = { { "all", "GET", "/{*rest}" } } },
	};
	struct gateway *gw = gw_build_ok(specs, 2);
	struct route_match m;
	char *path;
	size_t n;

	(void)state;
	/* ROUTE_MAX_SEGMENTS segments pass, one more is a bad path */
	path = calloc(ROUTE_MAX_SEGMENTS + 1, 2 + 1);
	assert_non_null(path);
	for (n = 0; n < ROUTE_MAX_SEGMENTS; n++)
		memcpy(path + 2 * n, "/a", 2);
	assert_int_equal(match_str(gw, path, &m), ROUTE_OK);
	assert_string_equal(m.api->id, "root");
	memcpy(path + 2 * n, "/a", 2);
	assert_int_equal(match_str(gw, path, &m), ROUTE_BAD_PATH);
	/* empty segments do not count */
	memcpy(path + 2 * (n - 1), "//", 2);
	assert_int_equal(match_str(gw, path, &m), ROUTE_OK);
	free(path);

	/* a segment of 4096 bytes passes, 4097 is a bad path */
	path = calloc(1, 4 + 4097 + 1);
	assert_non_null(path);
	memcpy(path, "/p/", 3);
	memset(path + 3, 'x', 4096);
	assert_int_equal(match_str(gw, path, &m), ROUTE_OK);
	assert_string_equal(m.op->id, "all");
	assert_int_equal(m.params[0].raw_len, 4097);
	path[3 + 4096] = 'x';
	assert_int_equal(match_str(gw, path, &m), ROUTE_BAD_PATH);
	free(path);

	/* a Host longer than a DNS name matches no hostname, and is no error */
	path = calloc(1, 400);
	assert_non_null(path);
	memset(path, 'h', 399);
	assert_int_equal(route_match(gw, "/p/x", 4, path, "GET", &m), ROUTE_OK);
	free(path);

	/* NULL path is the empty path */
	assert_int_equal(route_match(gw, NULL, 0, NULL, "GET", &m), ROUTE_OK);
	assert_string_equal(m.api->id, "root");
	assert_int_equal(m.rest_len, 0);
	gw_destroy(gw);
}

/* a gateway that was never built matches nothing */
static void test_unbuilt(void **state)
{
	static const struct api_spec specs[] = { { .id = "root", .path = "" } };
	struct gateway *gw = gw_make(specs, 1);
	struct route_match m;

	(void)state;
	assert_int_equal(route_match(gw, "/x", 2, NULL, "GET", &m), ROUTE_NO_API);
	assert_int_equal(route_match(gw, "/..", 3, NULL, "GET", &m), ROUTE_BAD_PATH);
	route_free(gw);
	route_free(gw);
	gw_destroy(gw);
}

/* ---- build errors ------------------------------------------------------- */

struct build_case {
	struct api_spec apis[3];
	size_t n_apis;
	const char *errors[3];	/* expected messages, each a prefix then a substring */
};

#define ONE_OP(t) { .id = "a", .path = "a", .ops = { { "o", "GET", t } } }

static const struct build_case build_cases[] = {
	{ { ONE_OP("forecast") }, 1,
	  { "apis[0].operations[0].url_template: |must start with '/'" } },
	{ { ONE_OP("") }, 1, { "apis[0].operations[0].url_template: |must start with '/'" } },
	{ { ONE_OP("/a{b}") }, 1, { "apis[0].operations[0].url_template: |a parameter must be a whole segment" } },
	{ { ONE_OP("/{a}b") }, 1, { "apis[0].operations[0].url_template: |whole segment" } },
	{ { ONE_OP("/{a}{b}") }, 1, { "apis[0].operations[0].url_template: |whole segment" } },
	{ { ONE_OP("/x/{a") }, 1, { "apis[0].operations[0].url_template: |whole segment" } },
	{ { ONE_OP("/x/a}") }, 1, { "apis[0].operations[0].url_template: |whole segment" } },
	{ { ONE_OP("/{}") }, 1, { "apis[0].operations[0].url_template: |parameter name" } },
	{ { ONE_OP("/{*}") }, 1, { "apis[0].operations[0].url_template: |parameter name" } },
	{ { ONE_OP("/{a.b}") }, 1, { "apis[0].operations[0].url_template: |parameter name 'a.b'" } },
	{ { ONE_OP("/{a b}") }, 1, { "apis[0].operations[0].url_template: |space" } },
	{ { ONE_OP("/{*rest}/x") }, 1, { "apis[0].operations[0].url_template: |must be the last segment" } },
	{ { ONE_OP("/{*a}/{*b}") }, 1, { "apis[0].operations[0].url_template: |must be the last segment" } },
	{ { ONE_OP("/{a}/{a}") }, 1, { "apis[0].operations[0].url_template: |'a' appears twice" } },
	{ { ONE_OP("/{id}/{*id}") }, 1, { "apis[0].operations[0].url_template: |'id' appears twice" } },
	{ { ONE_OP("/x/../y") }, 1, { "apis[0].operations[0].url_template: |'..'" } },
	{ { ONE_OP("/x/.") }, 1, { "apis[0].operations[0].url_template: |'..'" } },
	{ { ONE_OP("/x/%2e%2E") }, 1, { "apis[0].operations[0].url_template: |'..'" } },
	{ { ONE_OP("/x%2f..") }, 1, { "apis[0].operations[0].url_template: |'..'" } },
	{ { ONE_OP("/x?y=1") }, 1, { "apis[0].operations[0].url_template: |'?'" } },
	{ { ONE_OP("/x#y") }, 1, { "apis[0].operations[0].url_template: |'#'" } },
	{ { ONE_OP("/x%zz") }, 1, { "apis[0].operations[0].url_template: |malformed escape" } },
	{ { ONE_OP("/x%00") }, 1, { "apis[0].operations[0].url_template: |NUL" } },
	{ { ONE_OP("/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}/{j}/{k}/{l}/{m}/{n}/{o}/{p}/{q}") }, 1,
	  { "apis[0].operations[0].url_template: |more than 16 parameters" } },
	{ { { .id = "a", .path = "a", .ops = { { "o", NULL, "/x" } } } }, 1,
	  { "apis[0].operations[0].method: |missing" } },
	/* duplicate method and shape: the error is at the second operation */
	{ { { .id = "a", .path = "a", .ops = { { "o1", "GET", "/a/{x}" }, { "o2", "GET", "/A/{y}/" } } } }, 1,
	  { "apis[0].operations[1].url_template: |same method and template as operations[0]" } },
	{ { { .id = "a", .path = "a", .ops = { { "o1", "*", "/{*x}" }, { "o2", "GET", "/{x}" },
					       { "o3", "*", "/{*y}" } } } }, 1,
	  { "apis[0].operations[2].url_template: |operations[0]" } },
	{ { { .id = "a", .path = "a", .ops = { { "o1", "GET", "/%61" }, { "o2", "GET", "/a" } } } }, 1,
	  { "apis[0].operations[1].url_template: |operations[0]" } },
	/* every bad operation is reported, with its API's index */
	{ { { .id = "ok", .path = "ok" }, { .id = "ok2", .path = "ok2", .ops = { { "o", "GET", "/" } } },
	    { .id = "bad", .path = "bad", .ops = { { "o1", "GET", "/" }, { "o2", "GET", "x" },
						   { "o3", "GET", "/{" } } } }, 3,
	  { "apis[2].operations[1].url_template: |'x'", "apis[2].operations[2].url_template: |'/{'" } },
	/* two APIs at one path */
	{ { { .id = "a", .path = "weather" }, { .id = "b", .path = "Weather" } }, 2,
	  { "apis[1].path: |same path as apis[0]" } },
	{ { { .id = "a", .path = "w%65ather/x" }, { .id = "b", .path = "weather/X" } }, 2,
	  { "apis[1].path: |same path as apis[0]" } },
	{ { { .id = "a", .path = "" }, { .id = "b", .path = "x" }, { .id = "c", .path = "" } }, 3,
	  { "apis[2].path: |same path as apis[0]" } },
	{ { { .id = "a", .path = "w", .hosts = { "a.example", "b.example" } },
	    { .id = "b", .path = "W", .hosts = { "c.example", "B.example" } } }, 2,
	  { "apis[1].path: |same path as apis[0], and both serve host 'b.example'" } },
	{ { { .id = "a", .path = "w", .hosts = { "a.example" } },
	    { .id = "b", .path = "x", .hosts = { "a.example" } },
	    { .id = "c", .path = "w", .hosts = { "a.example:8080" } } }, 3,
	  { "apis[2].path: |same path as apis[0]" } },
	/* bad API paths and hostnames */
	{ { { .id = "a", .path = "a/../b" } }, 1, { "apis[0].path: |'..'" } },
	{ { { .id = "a", .path = "a%zz" } }, 1, { "apis[0].path: |malformed escape" } },
	{ { { .id = "a", .path = "a?b" } }, 1, { "apis[0].path: |'?'" } },
	{ { { .id = "a", .path = "a", .hosts = { "ok.example", "" } } }, 1,
	  { "apis[0].hostnames[1]: |not a hostname" } },
	/* fine: same template shape with another method, same path on other hosts */
	{ { { .id = "a", .path = "a", .ops = { { "o1", "GET", "/{x}" }, { "o2", "*", "/{y}" },
					       { "o3", "GET", "/{*z}" }, { "o4", "GET", "/x" } } } }, 1,
	  { NULL } },
	{ { { .id = "a", .path = "w", .hosts = { "a.example" } },
	    { .id = "b", .path = "w", .hosts = { "b.example" } },
	    { .id = "c", .path = "w" } }, 3, { NULL } },
	{ { { .id = "a", .path = "w", .hosts = { "a.example", "A.EXAMPLE" } } }, 1, { NULL } },
};

/* "PATH: |SUB": the message starts with PATH and contains SUB */
static int message_is(const char *msg, const char *want)
{
	const char *bar = strchr(want, '|');
	size_t plen = (size_t)(bar - want);

	return strncmp(msg, want, plen) == 0 && strstr(msg + plen, bar + 1) != NULL;
}

static void test_build_errors(void **state)
{
	size_t failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(build_cases) / sizeof(build_cases[0]); i++) {
		const struct build_case *c = &build_cases[i];
		struct cfg_errors errs = CFG_ERRORS_INIT;
		struct gateway *gw = gw_make(c->apis, c->n_apis);
		size_t want = 0;
		int rc = route_build(gw, &errs);

		while (want < 3 && c->errors[want])
			want++;
		if (rc != (want ? -1 : 0) || errs.n != want) {
			print_error("build case %zu: rc %d with %zu errors, want %zu%s%s\n", i, rc,
				    errs.n, want, errs.n ? ": " : "", errs.n ? errs.msg[0] : "");
			failed++;
		} else {
			for (size_t j = 0; j < want; j++) {
				if (!message_is(errs.msg[j], c->errors[j])) {
					print_error("build case %zu: '%s', want '%s'\n", i,
						    errs.msg[j], c->errors[j]);
					failed++;
				}
			}
		}
		/* a failed build leaves nothing behind */
		if (rc != 0) {
			assert_null(gw->routes);
			for (size_t j = 0; j < gw->n_apis; j++)
				assert_null(gw->apis[j].ops);
		}
		cfg_errors_release(&errs);
		gw_destroy(gw);
	}
	if (failed)
		fail_msg("%zu build cases failed", failed);
}

/* ---- scale -------------------------------------------------------------- */

#define SCALE_APIS 10000

/* 10,000 APIs: prefixes of each other ("s1" vs "s10"), nested, and one path
 * served on 2,000 hostnames; every one is found, and near misses fall back */
static void test_scale(void **state)
{
	struct gateway *gw = calloc(1, sizeof(*gw));
	struct cfg_errors errs = CFG_ERRORS_INIT;
	struct route_match m;
	char path[128], host[64];
	size_t n = 0;

	(void)state;
	assert_non_null(gw);
	gw->apis = calloc(SCALE_APIS, sizeof(*gw->apis));
	assert_non_null(gw->apis);
	gw->n_apis = SCALE_APIS;
	for (size_t i = 0; i < SCALE_APIS; i++) {
		struct gw_api *a = &gw->apis[i];

		snprintf(path, sizeof(path), "%zu", i);
		a->id = xstrdup(path);
		if (i < 6000)
			snprintf(path, sizeof(path), "s%zu", i);		/* s0 .. s5999 */
		else if (i < 8000)
			snprintf(path, sizeof(path), "s%zu/n%zu", i - 6000, i);	/* under s0 .. */
		else
			snprintf(path, sizeof(path), "hosted");
		a->path = xstrdup(path);
		if (i >= 8000) {
			snprintf(host, sizeof(host), "h%zu.example", i);
			a->hostnames = calloc(1, sizeof(*a->hostnames));
			assert_non_null(a->hostnames);
			a->hostnames[0] = xstrdup(host);
			a->n_hostnames = 1;
		}
		if (i % 97 == 0) {
			a->operations = calloc(2, sizeof(*a->operations));
			assert_non_null(a->operations);
			a->operations[0].id = xstrdup("get");
			a->operations[0].method = xstrdup("GET");
			a->operations[0].url_template = xstrdup("/items/{id}");
			a->operations[1].id = xstrdup("list");
			a->operations[1].method = xstrdup("GET");
			a->operations[1].url_template = xstrdup("/items");
			a->n_operations = 2;
		}
	}
	if (route_build(gw, &errs) != 0)
		fail_msg("route_build: %s", errs.n ? errs.msg[0] : "?");
	cfg_errors_release(&errs);

	for (size_t i = 0; i < SCALE_APIS; i++) {
		const struct gw_api *a = &gw->apis[i];
		const char *h = a->n_hostnames ? a->hostnames[0] : NULL;
		enum route_status st;

		snprintf(path, sizeof(path), "/%s/items/%zu", a->path, i);
		st = route_match(gw, path, strlen(path), h, "GET", &m);
		if (st != ROUTE_OK || m.api != a ||
		    (a->n_operations && (!m.op || strcmp(m.op->id, "get") != 0 ||
					 m.n_params != 1 || m.params[0].raw_len != strlen(path + strlen(a->path) + 8)))) {
			print_error("scale: '%s' host '%s': status %d api '%s'\n", path,
				    h ? h : "", st, m.api ? m.api->id : "(none)");
			n++;
		}
	}
	if (n)
		fail_msg("%zu of %d APIs not found", n, SCALE_APIS);

	/* near misses */
	assert_int_equal(match_str(gw, "/s6000", &m), ROUTE_NO_API);
	assert_int_equal(match_str(gw, "/s1x/n6001", &m), ROUTE_NO_API);
	assert_int_equal(match_str(gw, "/S1/N6001/x", &m), ROUTE_OK);
	assert_ptr_equal(m.api, &gw->apis[6001]);
	assert_int_equal(match_str(gw, "/s1/n6002/x", &m), ROUTE_OK);
	assert_ptr_equal(m.api, &gw->apis[1]);
	assert_string_equal(m.rest, "/n6002/x");
	assert_int_equal(match_str(gw, "/hosted/x", &m), ROUTE_NO_API);
	assert_int_equal(route_match(gw, "/hosted", 7, "h7999.example", "GET", &m), ROUTE_NO_API);
	assert_int_equal(route_match(gw, "/hosted", 7, "H9999.EXAMPLE:1", "GET", &m), ROUTE_OK);
	assert_ptr_equal(m.api, &gw->apis[9999]);
	assert_int_equal(match_str(gw, "/s97/items", &m), ROUTE_OK);
	assert_string_equal(m.op->id, "list");
	assert_int_equal(match_str(gw, "/s97/items/1/2", &m), ROUTE_NO_OPERATION);

	for (size_t i = 0; i < SCALE_APIS; i++)
		free(gw->apis[i].id);
	route_free(gw);
	for (size_t i = 0; i < SCALE_APIS; i++) {
		struct gw_api *a = &gw->apis[i];

		free(a->path);
		if (a->n_hostnames)
			free(a->hostnames[0]);
		free(a->hostnames);
		for (size_t j = 0; j < a->n_operations; j++) {
			free(a->operations[j].id);
			free(a->operations[j].method);
			free(a->operations[j].url_template);
		}
		free(a->operations);
	}
	free(gw->apis);
	free(gw);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_api_selection),
		cmocka_unit_test(test_no_api),
		cmocka_unit_test(test_operations),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_unbuilt),
		cmocka_unit_test(test_build_errors),
		cmocka_unit_test(test_scale),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
