/*
 * test_choose — expressions in policies (config-v1.md, "Expressions,
 * variables, and the policies that use them"): "$(EXPR)" and every "${...}"
 * root in template values, conditions, set-variable, choose (nested, in
 * every section), set-body and the expression forms of set-status and
 * return-response; every load error at its JSON path.
 *
 * Documents are written with ' for " (dq()); an expression's own string
 * literal quote is written ` (backquote) and becomes '.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "policy/engine.h"
#include "policy/gateway.h"
#include "policy/route.h"

#define HEAD "{'format':1,'generation':1,'backends':{'w':{'url':'https://w.example/v1'}," \
	"'x':{'url':'https://x.example'}},"
/* API "a" at /a, open; P: its "policies" value */
#define DOC(P) HEAD "'apis':[{'id':'a','path':'a','backend':'w','subscription_required':false," \
	"'policies':" P "}]}"
#define NOW 1800000000

static char *dq(const char *s)
{
	char *r = strdup(s);

	assert_non_null(r);
	for (char *p = r; *p; p++) {
		if (*p == '\'')
			*p = '"';
		else if (*p == '`')
			*p = '\'';
	}
	return r;
}

/* Loads doc: NULL when it does not load, with the errors joined in err. */
static struct gateway *try_load(const char *doc, char *err, size_t cap)
{
	struct cfg_errors errs = CFG_ERRORS_INIT;
	char *d = dq(doc);
	struct gateway *gw = gw_load_buffer(d, strlen(d), &errs);
	size_t l = 0;

	if (cap)
		err[0] = '\0';
	for (size_t i = 0; i < errs.n && l < cap; i++)
		l += (size_t)snprintf(err + l, cap - l, "%s%s", i ? "\n" : "", errs.msg[i]);
	cfg_errors_release(&errs);
	free(d);
	return gw;
}

static struct gateway *load(const char *doc)
{
	char err[2000];
	struct gateway *gw = try_load(doc, err, sizeof(err));

	if (!gw)
		fail_msg("does not load: %s", err);
	return gw;
}

struct run {
	struct gateway *gw;
	struct route_match m;
	struct pol_call c;
	struct pol_app_ops ops;
	const char *body;	/* what read_body hands over */
	int rc;
};

static int read_body(void *ctx, char **body, size_t *len)
{
	struct run *r = ctx;

	*body = strdup(r->body ? r->body : "");
	*len = strlen(*body);
	return 0;
}

/* Starts a request: method path?query, headers "Name: value" (NULL-ended),
 * client body. */
static void start(struct run *r, const char *doc, const char *method, const char *path,
		  const char *query, const char *const *headers, const char *body)
{
	memset(r, 0, sizeof(*r));
	r->gw = load(doc);
	assert_int_equal(route_match(r->gw, path, strlen(path), NULL, method, &r->m), ROUTE_OK);
	engine_call_init(&r->c, r->gw, &r->m, "192.0.2.1", "req-1", NOW, NULL);
	r->ops.read_body = read_body;
	r->body = body;
	r->c.ops = &r->ops;
	r->c.ops_ctx = r;
	r->c.method = strdup(method);
	r->c.path = strndup(r->m.rest, r->m.rest_len);
	r->c.query = strdup(query ? query : "");
	for (size_t i = 0; headers && headers[i]; i++) {
		const char *colon = strchr(headers[i], ':');
		char *name = strndup(headers[i], (size_t)(colon - headers[i]));

		assert_int_equal(pol_headers_add(&r->c.req_headers, name, colon + 2), 0);
		free(name);
	}
	r->rc = engine_inbound(&r->c);
}

/* The backend answers status with headers and body; runs outbound. */
static __attribute__((unused)) void backend(struct run *r, int status, const char *const *headers, const char *body)
{
	r->c.status = status;
	for (size_t i = 0; headers && headers[i]; i++) {
		const char *colon = strchr(headers[i], ':');
		char *name = strndup(headers[i], (size_t)(colon - headers[i]));

		assert_int_equal(pol_headers_add(&r->c.resp_headers, name, colon + 2), 0);
		free(name);
	}
	if (engine_outbound_needs_body(&r->c)) {
		r->c.body = strdup(body ? body : "");
		r->c.body_len = strlen(r->c.body);
		r->c.resp_body_buffered = 1;
	}
	r->rc = engine_outbound(&r->c);
}

static void stop(struct run *r)
{
	engine_finish(&r->c);
	engine_call_release(&r->c);
	gw_free(r->gw);
}

static const char *req_header(const struct run *r, const char *name)
{
	return pol_headers_get(&r->c.req_headers, name);
}

/* ---- templates ------------------------------------------------------------ */

static void test_template_expr(void **state)
{
	static const char *const hs[] = { "X-A: abc", NULL };
	struct run r;

	(void)state;
	start(&r, DOC("{'inbound':["
		      "{'set-header':{'name':'X-E','value':'<$(upper(${request.header.X-A}) + `-` + "
		      "${request.query.q})>'}},"
		      "{'set-header':{'name':'X-N','value':'$(length(${request.query.q}) + 1)'}},"
		      "{'set-header':{'name':'X-B','value':'$(${request.method} == `GET`)$$'}},"
		      "{'set-header':{'name':'X-S','value':'${response.status}'}}]}"),
	      "GET", "/a/x", "q=h%20i&z=1", hs, NULL);
	assert_int_equal(r.rc, POL_CONTINUE);
	assert_string_equal(req_header(&r, "X-E"), "<ABC-h i>");
	assert_string_equal(req_header(&r, "X-N"), "4");
	assert_string_equal(req_header(&r, "X-B"), "true$");
	assert_string_equal(req_header(&r, "X-S"), "200");
	stop(&r);
}

/* Two decoded values live at once in one expression. */
static void test_template_two_decoded(void **state)
{
	struct run r;

	(void)state;
	start(&r, DOC("{'inbound':[{'set-header':{'name':'X-E','value':"
		      "'$(${request.query.a} + ${request.query.b} + ${request.query.a})'}}]}"),
	      "GET", "/a/x", "a=%41%41&b=%42", NULL, NULL);
	assert_string_equal(req_header(&r, "X-E"), "AABAA");
	stop(&r);
}

static void test_template_header_control(void **state)
{
	struct run r;

	(void)state;
	start(&r, DOC("{'inbound':[{'set-header':{'name':'X-E','value':"
		      "'$(replace(`a`, `a`, ${request.query.v}))'}}]}"),
	      "GET", "/a/x", "v=x%0d%0aEvil:%201", NULL, NULL);
	assert_int_equal(r.rc, POL_RESPOND);
	assert_int_equal(r.c.status, 400);
	stop(&r);
}

#define BIG " + 999999999999999999"
static void test_template_expr_fails(void **state)
{
	struct run r;

	(void)state;
	start(&r, DOC("{'inbound':[{'set-header':{'name':'X-E','value':"
		      "'$(int(${request.query.v})" BIG BIG BIG BIG BIG BIG BIG BIG BIG ")'}}]}"),
	      "GET", "/a/x", "v=999999999999999999", NULL, NULL);
	assert_int_equal(r.rc, POL_RESPOND);
	assert_int_equal(r.c.status, 500);
	assert_non_null(strstr(r.c.body, "Expression failed."));
	assert_string_equal(r.c.error, "integer overflow");
	stop(&r);
}

/* ---- load errors ----------------------------------------------------------- */

struct lcase {
	const char *policies;
	const char *want;	/* a substring of the errors */
};

static const struct lcase lcases[] = {
	{ "{'inbound':[{'set-header':{'name':'X','value':'$(1 +)'}}]}",
	  "apis[0].policies.inbound[0][\"set-header\"].value: in the '$(' at column 1: column 4: "
	  "expected a value, found ')'" },
	{ "{'inbound':[{'set-header':{'name':'X','value':'a $(1'}}]}",
	  "apis[0].policies.inbound[0][\"set-header\"].value: unterminated '$(' at column 3" },
	{ "{'inbound':[{'set-header':{'name':'X','value':'${response.body}'}}]}",
	  "apis[0].policies.inbound[0][\"set-header\"].value: '${response.body}' is only available "
	  "in the outbound and on-error sections" },
	{ "{'inbound':[{'set-header':{'name':'X','value':'${var.a b}'}}]}",
	  "a variable name is 1 to 80 of A-Z a-z 0-9 _ -" },
};

static void test_load_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(lcases) / sizeof(lcases[0]); i++) {
		char doc[4000], err[4000];
		struct gateway *gw;

		snprintf(doc, sizeof(doc), DOC("%s"), lcases[i].policies);
		gw = try_load(doc, err, sizeof(err));
		if (gw) {
			gw_free(gw);
			fail_msg("case %zu loads", i);
		}
		if (!strstr(err, lcases[i].want))
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, err, lcases[i].want);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_template_expr),
		cmocka_unit_test(test_template_two_decoded),
		cmocka_unit_test(test_template_header_control),
		cmocka_unit_test(test_template_expr_fails),
		cmocka_unit_test(test_load_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
