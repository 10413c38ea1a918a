/*
 * test_bodies — send-request and find-and-replace in the engine, with the
 * app's services faked (read_body, side_call): the side call the policy asks
 * for (method, target, headers, body, timeout, backend), the answer as
 * variables read by later values, ignore-error, the failure statuses,
 * find-and-replace on both bodies and its limits, and every load error at
 * its JSON path. Documents are written with ' for " (dq()); an expression's
 * own quote is ` (backquote).
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
#include "policy/polmod.h"
#include "policy/route.h"

#define HEAD "{'format':1,'generation':1,'gateway':{'max_request_body_bytes':100}," \
	"'backends':{'w':{'url':'https://w.example/v1'},'auth':{'url':'https://auth.example/idp'}},"
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

static struct gateway *try_load(const char *doc, char *err, size_t cap)
{
	struct cfg_errors errs = CFG_ERRORS_INIT;
	char *d = dq(doc);
	struct gateway *gw = gw_load_buffer(d, strlen(d), &errs);
	size_t l = 0;

	err[0] = '\0';
	for (size_t i = 0; i < errs.n && l < cap; i++)
		l += (size_t)snprintf(err + l, cap - l, "%s%s", i ? "\n" : "", errs.msg[i]);
	cfg_errors_release(&errs);
	free(d);
	return gw;
}

struct run {
	struct gateway *gw;
	struct route_match m;
	struct pol_call c;
	struct pol_app_ops ops;
	const char *body;		/* the client's body */
	/* the side call seen, and the answer to give */
	int calls;
	char method[16], target[256], auth[256], body_seen[256];
	const char *backend_url;
	long timeout_ms;
	int answer_status;		/* 0: fail */
	int timed_out;
	const char *answer_body;
};

static int read_body(void *ctx, char **body, size_t *len)
{
	struct run *r = ctx;

	if (r->body && strlen(r->body) > 100)
		return 413;
	*body = strdup(r->body ? r->body : "");
	*len = strlen(*body);
	return 0;
}

static int side_call(void *ctx, const struct pol_side_request *rq, struct pol_side_response *rs)
{
	struct run *r = ctx;
	const char *a = pol_headers_get(rq->headers, "Authorization");

	r->calls++;
	snprintf(r->method, sizeof(r->method), "%s", rq->method);
	snprintf(r->target, sizeof(r->target), "%s", rq->target);
	snprintf(r->auth, sizeof(r->auth), "%s", a ? a : "");
	snprintf(r->body_seen, sizeof(r->body_seen), "%.*s", (int)rq->body_len,
		 rq->body ? rq->body : "");
	r->backend_url = rq->backend->url;
	r->timeout_ms = rq->timeout_ms;
	memset(rs, 0, sizeof(*rs));
	if (!r->answer_status) {
		rs->error = r->timed_out ? "timed out" : "unreachable";
		rs->timed_out = r->timed_out;
		return -1;
	}
	rs->status = r->answer_status;
	assert_int_equal(pol_headers_add(&rs->headers, "Content-Type", "application/json"), 0);
	assert_int_equal(pol_headers_add(&rs->headers, "X-Multi", "a"), 0);
	assert_int_equal(pol_headers_add(&rs->headers, "x-multi", "b"), 0);
	rs->body = strdup(r->answer_body ? r->answer_body : "");
	rs->body_len = strlen(rs->body);
	return 0;
}

static void start(struct run *r, const char *policies, const char *body)
{
	char doc[8000], err[2000];

	snprintf(doc, sizeof(doc), DOC("%s"), policies);
	r->gw = try_load(doc, err, sizeof(err));
	if (!r->gw)
		fail_msg("does not load: %s", err);
	assert_int_equal(route_match(r->gw, "/a/x", 4, NULL, "POST", &r->m), ROUTE_OK);
	engine_call_init(&r->c, r->gw, &r->m, "192.0.2.1", "req-1", NOW, NULL);
	r->ops.read_body = read_body;
	r->ops.side_call = side_call;
	r->body = body;
	r->c.ops = &r->ops;
	r->c.ops_ctx = r;
	r->c.method = strdup("POST");
	r->c.path = strdup("/x");
	r->c.query = strdup("q=1");
	assert_int_equal(pol_headers_add(&r->c.req_headers, "Authorization", "client-secret"), 0);
}

static void stop(struct run *r)
{
	engine_finish(&r->c);
	engine_call_release(&r->c);
	gw_free(r->gw);
}

static const char *var(struct run *r, const char *name)
{
	size_t len;

	return pol_var_get(&r->c, name, strlen(name), &len);
}

#define TOKEN_FLOW "{'inbound':[{'send-request':{'response-variable-name':'tok'," \
	"'backend-id':'auth','set-url':'/token/${request.header.X-Tenant}?scope=a+b'," \
	"'set-method':'POST','timeout':3,'set-header':[{'name':'Authorization'," \
	"'value':'Basic Y2xpZW50'}],'set-body':'grant_type=client_credentials'}}," \
	"{'set-header':{'name':'Authorization','value':'Bearer $(json(${var.tok.body}, `access_token`))'}}," \
	"{'set-header':{'name':'X-Ct','value':'${var.tok.header.CONTENT-TYPE}|${var.tok.header.x-multi}|${var.tok.status}'}}]}"

static void test_token_exchange(void **state)
{
	struct run r;

	(void)state;
	memset(&r, 0, sizeof(r));
	r.answer_status = 200;
	r.answer_body = "{\"access_token\":\"T-123\",\"expires_in\":60}";
	start(&r, TOKEN_FLOW, NULL);
	assert_int_equal(pol_headers_add(&r.c.req_headers, "X-Tenant", "a/b c"), 0);
	assert_int_equal(engine_inbound(&r.c), POL_CONTINUE);
	assert_int_equal(r.calls, 1);
	assert_string_equal(r.method, "POST");
	/* the value is URL-encoded: no new segment */
	assert_string_equal(r.target, "/token/a%2Fb%20c?scope=a+b");
	assert_string_equal(r.auth, "Basic Y2xpZW50");	/* never the client's */
	assert_string_equal(r.body_seen, "grant_type=client_credentials");
	assert_string_equal(r.backend_url, "https://auth.example/idp");
	assert_int_equal(r.timeout_ms, 3000);
	assert_string_equal(pol_headers_get(&r.c.req_headers, "Authorization"), "Bearer T-123");
	assert_string_equal(pol_headers_get(&r.c.req_headers, "X-Ct"), "application/json|a, b|200");
	assert_string_equal(var(&r, "tok.status"), "200");
	stop(&r);

	/* a value that makes a dot segment (encoded or not): 400, no call */
	memset(&r, 0, sizeof(r));
	r.answer_status = 200;
	start(&r, TOKEN_FLOW, NULL);
	assert_int_equal(pol_headers_add(&r.c.req_headers, "X-Tenant", ".."), 0);
	assert_int_equal(engine_inbound(&r.c), POL_RESPOND);
	assert_int_equal(r.c.status, 400);
	assert_int_equal(r.calls, 0);
	stop(&r);
}

static void test_side_failures(void **state)
{
	static const struct {
		const char *policies;
		int timed_out;
		int want;	/* 0: continues with status "0" */
	} cases[] = {
		{ "{'inbound':[{'send-request':{'response-variable-name':'t','backend-id':'auth'}}]}", 0, 502 },
		{ "{'inbound':[{'send-request':{'response-variable-name':'t','backend-id':'auth'}}]}", 1, 504 },
		{ "{'inbound':[{'send-request':{'response-variable-name':'t','backend-id':'auth',"
		  "'ignore-error':true}},{'set-header':{'name':'X-S','value':'${var.t.status}'}}]}", 1, 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct run r;

		memset(&r, 0, sizeof(r));
		r.timed_out = cases[i].timed_out;
		start(&r, cases[i].policies, NULL);
		if (cases[i].want) {
			assert_int_equal(engine_inbound(&r.c), POL_RESPOND);
			assert_int_equal(r.c.status, cases[i].want);
		} else {
			assert_int_equal(engine_inbound(&r.c), POL_CONTINUE);
			assert_string_equal(pol_headers_get(&r.c.req_headers, "X-S"), "0");
		}
		assert_int_equal(r.calls, 1);
		assert_string_equal(r.method, "GET");
		assert_string_equal(r.target, "");
		assert_int_equal(r.timeout_ms, 20000);
		stop(&r);
	}
}

static void test_find_and_replace_request(void **state)
{
	struct run r;

	(void)state;
	memset(&r, 0, sizeof(r));
	start(&r, "{'inbound':[{'find-and-replace':{'from':'cat','to':'${request.header.X-To}'}}]}",
	      "cat, catcat, dog");
	assert_int_equal(pol_headers_add(&r.c.req_headers, "X-To", "lion"), 0);
	assert_int_equal(engine_inbound(&r.c), POL_CONTINUE);
	assert_int_equal(r.c.req_body_read, 1);
	assert_int_equal(r.c.req_body_len, strlen("lion, lionlion, dog"));
	assert_string_equal(r.c.req_body, "lion, lionlion, dog");
	stop(&r);

	/* grown past max_request_body_bytes (100): 413 */
	memset(&r, 0, sizeof(r));
	start(&r, "{'backend':[{'find-and-replace':{'from':'a','to':'aaaa'}}]}",
	      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	assert_int_equal(engine_inbound(&r.c), POL_RESPOND);
	assert_int_equal(r.c.status, 413);
	stop(&r);

	/* a client body over the limit: read_body's 413 */
	memset(&r, 0, sizeof(r));
	start(&r, "{'inbound':[{'find-and-replace':{'from':'a','to':'b'}}]}",
	      "0123456789012345678901234567890123456789012345678901234567890123456789"
	      "0123456789012345678901234567890123456789");
	assert_int_equal(engine_inbound(&r.c), POL_RESPOND);
	assert_int_equal(r.c.status, 413);
	stop(&r);
}

static void test_find_and_replace_response(void **state)
{
	struct run r;

	(void)state;
	memset(&r, 0, sizeof(r));
	start(&r, "{'outbound':[{'find-and-replace':{'from':'secret','to':''}},"
	      "{'find-and-replace':{'from':'xx','to':'x'}}]}", NULL);
	assert_int_equal(engine_inbound(&r.c), POL_CONTINUE);
	/* only the response: the request body is never read */
	assert_int_equal(r.c.req_body_read, 0);
	assert_true(engine_outbound_needs_body(&r.c));
	r.c.status = 200;
	r.c.body = strdup("a secret xxxx secretsecret");
	r.c.body_len = strlen(r.c.body);
	r.c.resp_body_buffered = 1;
	assert_int_equal(engine_outbound(&r.c), POL_CONTINUE);
	/* non-overlapping, left to right, a replacement not searched again */
	assert_string_equal(r.c.body, "a  xx ");
	assert_int_equal(r.c.body_len, 6);
	stop(&r);

	/* no outbound find-and-replace: nothing is buffered */
	memset(&r, 0, sizeof(r));
	start(&r, "{'inbound':[{'find-and-replace':{'from':'a','to':'b'}}]}", "a");
	assert_int_equal(engine_inbound(&r.c), POL_CONTINUE);
	assert_false(engine_outbound_needs_body(&r.c));
	stop(&r);
}

static const struct {
	const char *policies, *want;
} lcases[] = {
	{ "{'inbound':[{'send-request':{'response-variable-name':'t','backend-id':'nope'}}]}",
	  "apis[0].policies.inbound[0][\"send-request\"].backend-id: 'nope' is not a backend" },
	{ "{'inbound':[{'send-request':{'response-variable-name':'t','backend-id':'auth',"
	  "'mode':'copy'}}]}", "inbound[0][\"send-request\"].mode: 'copy' is not supported" },
	{ "{'inbound':[{'send-request':{'response-variable-name':'a.b','backend-id':'auth'}}]}",
	  "[\"send-request\"].response-variable-name: must be 1 to 80 characters" },
	{ "{'inbound':[{'send-request':{'backend-id':'auth'}}]}",
	  "missing required member 'response-variable-name'" },
	{ "{'inbound':[{'send-request':{'response-variable-name':'t'}}]}",
	  "missing required member 'backend-id'" },
	{ "{'inbound':[{'send-request':{'response-variable-name':'t','backend-id':'auth',"
	  "'set-url':'http://evil.example/x'}}]}", "[\"send-request\"].set-url: must be a path" },
	{ "{'inbound':[{'send-request':{'response-variable-name':'t','backend-id':'auth',"
	  "'set-url':'//evil.example/x'}}]}", "set-url: must not start with '//'" },
	{ "{'inbound':[{'send-request':{'response-variable-name':'t','backend-id':'auth',"
	  "'set-url':'/a/../../admin'}}]}", "set-url: must not hold a '.' or '..' segment" },
	{ "{'inbound':[{'send-request':{'response-variable-name':'t','backend-id':'auth',"
	  "'set-url':'/a/%2e%2e/admin'}}]}", "set-url: must not hold a '.' or '..' segment" },
	{ "{'inbound':[{'send-request':{'response-variable-name':'t','backend-id':'auth',"
	  "'timeout':241}}]}", "[\"send-request\"].timeout" },
	{ "{'inbound':[{'send-request':{'response-variable-name':'t','backend-id':'auth',"
	  "'set-method':'GE T'}}]}", "set-method: must be an HTTP method" },
	{ "{'inbound':[{'send-request':{'response-variable-name':'t','backend-id':'auth',"
	  "'set-header':[{'name':'X-A'}]}}]}",
	  "set-header[0]: missing required member 'value'" },
	{ "{'inbound':[{'find-and-replace':{'from':'','to':'x'}}]}",
	  "[\"find-and-replace\"].from: must not be empty" },
	{ "{'inbound':[{'find-and-replace':{'from':'x'}}]}", "missing required member 'to'" },
};

static void test_load_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(lcases) / sizeof(lcases[0]); i++) {
		char doc[8000], err[4000];
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
		cmocka_unit_test(test_token_exchange),
		cmocka_unit_test(test_side_failures),
		cmocka_unit_test(test_find_and_replace_request),
		cmocka_unit_test(test_find_and_replace_response),
		cmocka_unit_test(test_load_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
