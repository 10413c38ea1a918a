/*
 * test_engine_override — set-header and set-query-parameter with
 * exists-action override read the value they replace: the value is expanded
 * before the old header or parameter is removed (policy/engine.c). Found by
 * tests/integration/test_policies.py (scope order through X-Trail). Also: a
 * decoded NUL in a query or path value put into a header is a 400, not a
 * value cut short at the NUL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy/engine.h"
#include "policy/gateway.h"
#include "policy/route.h"

static char *dq(const char *s)
{
	char *r = strdup(s);

	assert_non_null(r);
	for (char *p = r; *p; p++)
		if (*p == '\'')
			*p = '"';
	return r;
}

/* Runs GET /a/x?query with header X-T: t through inbound (no counters). */
static void run(const char *policies, const char *query, const char *t,
		const char *want_header, const char *want_query)
{
	char doc[2048];
	struct cfg_errors errs = CFG_ERRORS_INIT;
	struct route_match m;
	struct pol_call c;
	struct gateway *gw;
	char *d;

	snprintf(doc, sizeof(doc), "{'format':1,'generation':1,'backends':{'w':{'url':"
		 "'https://w.example'}},'apis':[{'id':'a','path':'a','backend':'w',"
		 "'subscription_required':false,'policies':{'inbound':%s}}]}", policies);
	d = dq(doc);
	gw = gw_load_buffer(d, strlen(d), &errs);
	for (size_t i = 0; i < errs.n; i++)
		print_message("    error: %s\n", errs.msg[i]);
	cfg_errors_release(&errs);
	free(d);
	assert_non_null(gw);
	assert_int_equal(route_match(gw, "/a/x", 4, NULL, "GET", &m), ROUTE_OK);
	engine_call_init(&c, gw, &m, "192.0.2.1", "req-1", 1800000000, NULL);
	c.method = strdup("GET");
	c.path = strndup(m.rest, m.rest_len);
	c.query = strdup(query);
	if (t)
		assert_int_equal(pol_headers_add(&c.req_headers, "X-T", t), 0);
	assert_int_equal(engine_inbound(&c), POL_CONTINUE);
	if (want_header)
		assert_string_equal(pol_headers_get(&c.req_headers, "X-T"), want_header);
	if (want_query)
		assert_string_equal(c.query, want_query);
	engine_finish(&c);
	engine_call_release(&c);
	gw_free(gw);
}

static void test_header_override_reads_old_value(void **state)
{
	(void)state;
	run("[{'set-header':{'name':'X-T','value':'${request.header.X-T}>1'}},"
	    "{'set-header':{'name':'X-T','exists-action':'override','value':'${request.header.X-T}>2'}}]",
	    "", "c", "c>1>2", NULL);
	run("[{'set-header':{'name':'X-T','value':'${request.header.X-T}>1'}}]", "", NULL, ">1",
	    NULL);
}

static void test_header_append_and_skip_unchanged(void **state)
{
	(void)state;
	run("[{'set-header':{'name':'X-T','exists-action':'skip','value':'new'}}]", "", "old",
	    "old", NULL);
	run("[{'set-header':{'name':'X-T','exists-action':'skip','value':'new'}}]", "", NULL,
	    "new", NULL);
	run("[{'set-header':{'name':'X-T','exists-action':'append','value':'${request.header.X-T}!'}}]",
	    "", "old", "old", NULL);
}

static void test_query_override_reads_old_value(void **state)
{
	(void)state;
	run("[{'set-query-parameter':{'name':'q','value':'${request.query.q}-2'}}]", "a=1&q=x",
	    NULL, NULL, "a=1&q=x-2");
	run("[{'set-query-parameter':{'name':'q','exists-action':'delete'}}]", "q=x&a=1", NULL,
	    NULL, "a=1");
	run("[{'set-query-parameter':{'name':'q','exists-action':'skip','value':'y'}}]", "q=x",
	    NULL, NULL, "q=x");
}

/* Loads doc (single quotes for double), runs GET /a/x?query through inbound
 * (no counters): the status of the answer, or 0 when the call goes upstream.
 * hdr (when not NULL) gets X-V's value then, or "(none)". */
static int inbound_status(const char *doc, const char *query, char *hdr, size_t hdr_len)
{
	struct cfg_errors errs = CFG_ERRORS_INIT;
	struct route_match m;
	struct pol_call c;
	struct gateway *gw;
	const char *v;
	char *d = dq(doc);
	int status = 0;

	gw = gw_load_buffer(d, strlen(d), &errs);
	for (size_t i = 0; i < errs.n; i++)
		print_message("    error: %s\n", errs.msg[i]);
	cfg_errors_release(&errs);
	free(d);
	assert_non_null(gw);
	assert_int_equal(route_match(gw, "/a/x", 4, NULL, "GET", &m), ROUTE_OK);
	engine_call_init(&c, gw, &m, "192.0.2.1", "req-1", 1800000000, NULL);
	c.method = strdup("GET");
	c.path = strndup(m.rest, m.rest_len);
	c.query = strdup(query);
	if (engine_inbound(&c) == POL_RESPOND)
		status = c.status;
	if (hdr) {
		v = pol_headers_get(&c.req_headers, "X-V");
		snprintf(hdr, hdr_len, "%s", v ? v : "(none)");
	}
	engine_finish(&c);
	engine_call_release(&c);
	gw_free(gw);
	return status;
}

/* GET /a/x?query with a set-header of value tmpl (see inbound_status). */
static int one_value(const char *tmpl, const char *query, char *hdr, size_t hdr_len)
{
	char doc[1024];

	snprintf(doc, sizeof(doc), "{'format':1,'generation':1,'backends':{'w':{'url':"
		 "'https://w.example'}},'apis':[{'id':'a','path':'a','backend':'w',"
		 "'subscription_required':false,'operations':[{'id':'o','method':'GET',"
		 "'url_template':'/{p}'}],'policies':{'inbound':[{'set-header':{'name':'X-V',"
		 "'value':'%s'}}]}}]}", tmpl);
	return inbound_status(doc, query, hdr, hdr_len);
}

static void test_decoded_nul_into_header_is_400(void **state)
{
	char h[64];

	(void)state;
	assert_int_equal(one_value("${request.query.v}", "v=a%00b", h, sizeof(h)), 400);
	assert_int_equal(one_value("${request.query.v}", "v=a%0d%0ab", h, sizeof(h)), 400);
	assert_int_equal(one_value("${request.query.v}", "v=a%20b", h, sizeof(h)), 0);
	assert_string_equal(h, "a b");
}

/* A subscription key in the query is compared whole: "key-1%00junk" is not
 * "key-1" (its decoded NUL once cut the value short), nor is a parameter
 * whose decoded name has a NUL after "subscription-key". */
static int key_status(const char *query)
{
	return inbound_status("{'format':1,'generation':1,'backends':{'w':{'url':"
			      "'https://w.example'}},'apis':[{'id':'a','path':'a','backend':'w'}],"
			      "'subscriptions':[{'id':'s','scope':'all','state':'active',"
			      "'keys_sha256':['be2974546978e3739e6d6da85c4be9f334ce32df2b9fd4b6ff1b55c0d57e9d44']}]}", query, NULL, 0);
}

static void test_query_key_with_nul_is_refused(void **state)
{
	(void)state;
	assert_int_equal(key_status("subscription-key=key-1"), 0);
	assert_int_equal(key_status("subscription-key=key-1%00junk"), 401);
	assert_int_equal(key_status("subscription-key%00x=key-1"), 401);
	assert_int_equal(key_status("subscription-key=key-2"), 401);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_override_reads_old_value),
		cmocka_unit_test(test_header_append_and_skip_unchanged),
		cmocka_unit_test(test_query_override_reads_old_value),
		cmocka_unit_test(test_decoded_nul_into_header_is_400),
		cmocka_unit_test(test_query_key_with_nul_is_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
