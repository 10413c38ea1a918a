/*
 * test_engine — the policy engine (policy/engine.c) end to end: a
 * configuration snippet and a request in, the decision and the upstream
 * request (or the answer) out. Counters live in a temporary directory.
 *
 * Documents are written with ' for " (dq()). Keys: k1..k4, whose SHA-256
 * digests are K1..K4 below.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/counter.h"
#include "policy/engine.h"
#include "policy/gateway.h"
#include "policy/jose.h"
#include "policy/route.h"

#define K1 "6ab9f1eb8f7d3388f4f9d586f66e99fd54080df2c446f0e58668b09c08a16dd0"
#define K2 "015f7e6bc5aeaf483724089e9252cc13b50951a6b69412522765cff4d780306e"
#define K3 "2f5052c9fd15b19a18c584d01363568198613f0c34e84409ef7938709a159ec2"
#define K4 "94091dd64a21ffe94214bc6d17deeb43873a5cf2f0a71b4b5caa9a5c81b6967d"

#define HEAD "{'format':1,'generation':1,'backends':{'w':{'url':'https://w.example/v1'}," \
	"'x':{'url':'https://x.example'}},"
/* API "a" at /a with operation GET /items/{id}; X: more API members; T: top level */
#define DOC(X, T) HEAD "'apis':[{'id':'a','path':'a','backend':'w'" X "}," \
	"{'id':'b','path':'b','backend':'w'}]" T "}"
#define SUBS ",'products':[{'id':'p','apis':['a']},{'id':'q','apis':['b']}]," \
	"'subscriptions':[{'id':'s1','scope':'all','keys_sha256':['" K1 "']}," \
	"{'id':'s2','scope':'product:p','keys_sha256':['" K2 "']}," \
	"{'id':'s3','scope':'api:b','keys_sha256':['" K3 "']}," \
	"{'id':'s4','scope':'all','state':'suspended','keys_sha256':['" K4 "']}]"
#define OPEN ",'subscription_required':false"
#define NOW 1800000000

static char dir[64];
static struct counter_store *cs;

static char *dq(const char *s)
{
	char *r = strdup(s);

	assert_non_null(r);
	for (char *p = r; *p; p++)
		if (*p == '\'')
			*p = '"';
	return r;
}

static struct gateway *load(const char *doc)
{
	struct cfg_errors errs = CFG_ERRORS_INIT;
	char *d = dq(doc);
	struct gateway *gw = gw_load_buffer(d, strlen(d), &errs);

	for (size_t i = 0; i < errs.n; i++)
		print_message("    error: %s\n", errs.msg[i]);
	cfg_errors_release(&errs);
	free(d);
	assert_non_null(gw);
	return gw;
}

struct req {
	const char *method, *path, *query;
	const char *headers[8];	/* "Name: value" */
	const char *ip;
};

struct run {
	struct gateway *gw;
	struct route_match m;
	struct pol_call c;
	int rc;
};

static void start(struct run *r, const char *doc, const struct req *q, int64_t now)
{
	size_t rest;

	r->gw = load(doc);
	assert_int_equal(route_match(r->gw, q->path, strlen(q->path), NULL, q->method, &r->m),
			 ROUTE_OK);
	engine_call_init(&r->c, r->gw, &r->m, q->ip ? q->ip : "192.0.2.1", "req-1", now, cs);
	rest = r->m.rest_len;
	r->c.method = strdup(q->method);
	r->c.path = strndup(r->m.rest, rest);
	r->c.query = strdup(q->query ? q->query : "");
	for (size_t i = 0; i < 8 && q->headers[i]; i++) {
		const char *colon = strchr(q->headers[i], ':');
		char *name = strndup(q->headers[i], (size_t)(colon - q->headers[i]));

		assert_int_equal(pol_headers_add(&r->c.req_headers, name, colon + 2), 0);
		free(name);
	}
	r->rc = engine_inbound(&r->c);
}

static void stop(struct run *r)
{
	engine_finish(&r->c);
	engine_call_release(&r->c);
	gw_free(r->gw);
}

static const char *resp_header(const struct run *r, const char *name)
{
	return pol_headers_get(&r->c.resp_headers, name);
}

/* ---- table: request decisions ---------------------------------------------- */

struct dcase {
	const char *doc;
	struct req req;
	int rc;			/* POL_CONTINUE / POL_RESPOND */
	int status;		/* for POL_RESPOND */
	const char *body_part;	/* in the answer's body, or NULL */
	const char *up_path, *up_query;	/* for POL_CONTINUE, NULL: not checked */
	const char *up_header;	/* "Name: value" expected upstream, or "Name" must be absent: "!Name" */
};

static const struct dcase dcases[] = {
	/* subscriptions */
	{ DOC("", SUBS), { "GET", "/a/x", NULL, { NULL }, NULL }, POL_RESPOND, 401,
	  "Access denied due to missing subscription key. Make sure to include subscription key "
	  "when making requests to an API.", NULL, NULL, NULL },
	{ DOC("", SUBS), { "GET", "/a/x", NULL, { "Ocp-Apim-Subscription-Key: nope" }, NULL },
	  POL_RESPOND, 401, "Access denied due to invalid subscription key. Make sure to provide "
	  "a valid key for an active subscription.", NULL, NULL, NULL },
	{ DOC("", SUBS), { "GET", "/a/x", NULL, { "ocp-apim-subscription-key: k1" }, NULL },
	  POL_CONTINUE, 0, NULL, "/x", "", "!Ocp-Apim-Subscription-Key" },
	{ DOC("", SUBS), { "GET", "/a/x", "a=1&subscription-key=k1&b=2", { NULL }, NULL },
	  POL_CONTINUE, 0, NULL, "/x", "a=1&b=2", NULL },
	{ DOC("", SUBS), { "GET", "/a/x", "subscription-key=k%31", { NULL }, NULL },
	  POL_CONTINUE, 0, NULL, "/x", "", NULL },
	{ DOC("", SUBS), { "GET", "/a/x", NULL, { "Ocp-Apim-Subscription-Key: k2" }, NULL },
	  POL_CONTINUE, 0, NULL, "/x", NULL, NULL },
	/* s3 is for api b only; s4 is suspended */
	{ DOC("", SUBS), { "GET", "/a/x", NULL, { "Ocp-Apim-Subscription-Key: k3" }, NULL },
	  POL_RESPOND, 401, "invalid subscription key", NULL, NULL, NULL },
	{ DOC("", SUBS), { "GET", "/b/x", NULL, { "Ocp-Apim-Subscription-Key: k3" }, NULL },
	  POL_CONTINUE, 0, NULL, "/x", NULL, NULL },
	{ DOC("", SUBS), { "GET", "/b/x", NULL, { "Ocp-Apim-Subscription-Key: k2" }, NULL },
	  POL_RESPOND, 401, "invalid subscription key", NULL, NULL, NULL },
	{ DOC("", SUBS), { "GET", "/a/x", NULL, { "Ocp-Apim-Subscription-Key: k4" }, NULL },
	  POL_RESPOND, 401, "invalid subscription key", NULL, NULL, NULL },
	/* expired: NOW is 2027-01-15 */
	{ DOC("", ",'subscriptions':[{'id':'e','scope':'all','expires':'2027-01-01T00:00:00Z',"
	      "'keys_sha256':['" K1 "']}]"),
	  { "GET", "/a/x", NULL, { "Ocp-Apim-Subscription-Key: k1" }, NULL },
	  POL_RESPOND, 401, "invalid subscription key", NULL, NULL, NULL },
	{ DOC("", ",'subscriptions':[{'id':'e','scope':'all','expires':'2027-02-01T00:00:00+01:00',"
	      "'keys_sha256':['" K1 "']}]"),
	  { "GET", "/a/x", NULL, { "Ocp-Apim-Subscription-Key: k1" }, NULL },
	  POL_CONTINUE, 0, NULL, "/x", NULL, NULL },
	/* open API: no key is fine, a wrong key is not, the key never goes upstream */
	{ DOC(OPEN, SUBS), { "GET", "/a/x", NULL, { NULL }, NULL }, POL_CONTINUE, 0, NULL, "/x",
	  NULL, NULL },
	{ DOC(OPEN, SUBS), { "GET", "/a/x", NULL, { "Ocp-Apim-Subscription-Key: bad" }, NULL },
	  POL_RESPOND, 401, "invalid", NULL, NULL, NULL },
	/* set-header with values */
	{ DOC(OPEN ",'policies':{'inbound':[{'set-header':{'name':'X-Q','value':'${request.query.q}'}}]}", ""),
	  { "GET", "/a/x", "q=a%26b+c", { NULL }, NULL }, POL_CONTINUE, 0, NULL, NULL, NULL,
	  "X-Q: a&b c" },
	{ DOC(OPEN ",'policies':{'inbound':[{'set-header':{'name':'X-Q','value':'${request.query.q}'}}]}", ""),
	  { "GET", "/a/x", "q=a%0d%0aEvil:%201", { NULL }, NULL }, POL_RESPOND, 400,
	  "control character", NULL, NULL, NULL },
	{ DOC("", SUBS ",'policies':{'inbound':[{'set-header':{'name':'X-S','value':'${subscription.id}/${product.id}/${api.id}/$${x}'}}]}"),
	  { "GET", "/a/x", NULL, { "Ocp-Apim-Subscription-Key: k2" }, NULL }, POL_CONTINUE, 0,
	  NULL, NULL, NULL, "X-S: s2/p/a/${x}" },
	{ DOC(OPEN ",'policies':{'inbound':[{'set-header':{'name':'Accept','exists-action':'delete'}}]}", ""),
	  { "GET", "/a/x", NULL, { "accept: */*" }, NULL }, POL_CONTINUE, 0, NULL, NULL, NULL,
	  "!Accept" },
	{ DOC(OPEN ",'policies':{'inbound':[{'set-header':{'name':'Accept','exists-action':'skip','value':'y'}}]}", ""),
	  { "GET", "/a/x", NULL, { "accept: z" }, NULL }, POL_CONTINUE, 0, NULL, NULL, NULL,
	  "Accept: z" },
	/* header values: every control byte but HTAB is refused (VT, FF, DEL, 0x01,
	 * 0x1f as well as CR, LF, NUL); HTAB and bytes >= 0x80 pass */
	{ DOC(OPEN ",'policies':{'inbound':[{'set-header':{'name':'X-Q','value':'<${request.query.q}>'}}]}", ""),
	  { "GET", "/a/x", "q=a%0bb", { NULL }, NULL }, POL_RESPOND, 400,
	  "control character", NULL, NULL, NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'set-header':{'name':'X-Q','value':'<${request.query.q}>'}}]}", ""),
	  { "GET", "/a/x", "q=a%7fb", { NULL }, NULL }, POL_RESPOND, 400,
	  "control character", NULL, NULL, NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'set-header':{'name':'X-Q','value':'<${request.query.q}>'}}]}", ""),
	  { "GET", "/a/x", "q=a%0cb", { NULL }, NULL }, POL_RESPOND, 400,
	  "control character", NULL, NULL, NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'set-header':{'name':'X-Q','value':'<${request.query.q}>'}}]}", ""),
	  { "GET", "/a/x", "q=a%1fb", { NULL }, NULL }, POL_RESPOND, 400,
	  "control character", NULL, NULL, NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'set-header':{'name':'X-Q','value':'<${request.query.q}>'}}]}", ""),
	  { "GET", "/a/x", "q=a%01b", { NULL }, NULL }, POL_RESPOND, 400,
	  "control character", NULL, NULL, NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'set-header':{'name':'X-Q','value':'<${request.query.q}>'}}]}", ""),
	  { "GET", "/a/x", "q=a%00b", { NULL }, NULL }, POL_RESPOND, 400,
	  "control character", NULL, NULL, NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'set-header':{'name':'X-Q','value':'<${request.query.q}>'}}]}", ""),
	  { "GET", "/a/x", "q=a%0ab", { NULL }, NULL }, POL_RESPOND, 400,
	  "control character", NULL, NULL, NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'set-header':{'name':'X-Q','value':'<${request.query.q}>'}}]}", ""),
	  { "GET", "/a/x", "q=a%0db", { NULL }, NULL }, POL_RESPOND, 400,
	  "control character", NULL, NULL, NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'set-header':{'name':'X-Q','value':'<${request.query.q}>'}}]}", ""),
	  { "GET", "/a/x", "q=a%09b", { NULL }, NULL }, POL_CONTINUE, 0, NULL, NULL, NULL,
	  "X-Q: <a\tb>" },
	{ DOC(OPEN ",'policies':{'inbound':[{'set-header':{'name':'X-Q','value':'<${request.query.q}>'}}]}", ""),
	  { "GET", "/a/x", "q=a%20b~%7e", { NULL }, NULL }, POL_CONTINUE, 0, NULL, NULL, NULL,
	  "X-Q: <a b~~>" },
	{ DOC(OPEN ",'policies':{'inbound':[{'set-header':{'name':'X-Q','value':'<${request.query.q}>'}}]}", ""),
	  { "GET", "/a/x", "q=%c3%a9", { NULL }, NULL }, POL_CONTINUE, 0, NULL, NULL, NULL,
	  "X-Q: <\xc3\xa9>" },
	{ DOC(OPEN ",'policies':{'inbound':[{'set-header':{'name':'X-C','value':'${request.header.X-In}'}}]}", ""),
	  { "GET", "/a/x", NULL, { "X-In: a\vb" }, NULL }, POL_RESPOND, 400, "control character",
	  NULL, NULL, NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'return-response':{'status-code':200,'headers':{'X-R':'${request.query.q}'}}}]}", ""),
	  { "GET", "/a/x", "q=a%7f", { NULL }, NULL }, POL_RESPOND, 400, "control character",
	  NULL, NULL, NULL },
	/* rewrite-uri: no value makes a '.' or '..' segment, however encoded (the
	 * finished path is checked as a client's is); a double-encoded value is
	 * encoded again and never decodes to dots in one step */
	{ DOC(OPEN ",'policies':{'inbound':[{'rewrite-uri':{'template':'/v2/${request.query.v}/x'}}]}", ""),
	  { "GET", "/a/x", "v=..", { NULL }, NULL }, POL_RESPOND, 400, "segment",
	  NULL, NULL, NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'rewrite-uri':{'template':'/v2/${request.query.v}/x'}}]}", ""),
	  { "GET", "/a/x", "v=.", { NULL }, NULL }, POL_RESPOND, 400, "segment",
	  NULL, NULL, NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'rewrite-uri':{'template':'/v2/${request.query.v}/x'}}]}", ""),
	  { "GET", "/a/x", "v=%2e%2e", { NULL }, NULL }, POL_RESPOND, 400, "segment",
	  NULL, NULL, NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'rewrite-uri':{'template':'/v2/${request.query.v}/x'}}]}", ""),
	  { "GET", "/a/x", "v=%2E.", { NULL }, NULL }, POL_RESPOND, 400, "segment",
	  NULL, NULL, NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'rewrite-uri':{'template':'/v2/${request.query.v}/x'}}]}", ""),
	  { "GET", "/a/x", "v=.%2e", { NULL }, NULL }, POL_RESPOND, 400, "segment",
	  NULL, NULL, NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'rewrite-uri':{'template':'/v2/${request.query.v}/x'}}]}", ""),
	  { "GET", "/a/x", "v=..%2f..", { NULL }, NULL }, POL_RESPOND, 400, "segment",
	  NULL, NULL, NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'rewrite-uri':{'template':'/v2/${request.query.v}/x'}}]}", ""),
	  { "GET", "/a/x", "v=..%5c", { NULL }, NULL }, POL_RESPOND, 400, "segment",
	  NULL, NULL, NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'rewrite-uri':{'template':'/v2/${request.query.v}/x'}}]}", ""),
	  { "GET", "/a/x", "v=..%3bx", { NULL }, NULL }, POL_RESPOND, 400, "segment",
	  NULL, NULL, NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'rewrite-uri':{'template':'/v2/${request.query.v}/x'}}]}", ""),
	  { "GET", "/a/x", "v=%2e", { NULL }, NULL }, POL_RESPOND, 400, "segment",
	  NULL, NULL, NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'rewrite-uri':{'template':'/v2/.${request.query.v}/x'}}]}", ""),
	  { "GET", "/a/x", "v=.", { NULL }, NULL }, POL_RESPOND, 400, "segment",
	  NULL, NULL, NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'rewrite-uri':{'template':'/v2/${request.query.v}./x'}}]}", ""),
	  { "GET", "/a/x", "v=", { NULL }, NULL }, POL_RESPOND, 400, "segment",
	  NULL, NULL, NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'rewrite-uri':{'template':'/v2/${request.query.v}${request.query.v}/x'}}]}", ""),
	  { "GET", "/a/x", "v=.", { NULL }, NULL }, POL_RESPOND, 400, "segment",
	  NULL, NULL, NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'rewrite-uri':{'template':'/v2/${request.query.v}/x'}}]}", ""),
	  { "GET", "/a/x", "v=%252e%252e", { NULL }, NULL }, POL_CONTINUE, 0, NULL, "/v2/%252e%252e/x", NULL,
	  NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'rewrite-uri':{'template':'/v2/${request.query.v}/x'}}]}", ""),
	  { "GET", "/a/x", "v=...", { NULL }, NULL }, POL_CONTINUE, 0, NULL, "/v2/.../x", NULL,
	  NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'rewrite-uri':{'template':'/v2/${request.query.v}/x'}}]}", ""),
	  { "GET", "/a/x", "v=a..b", { NULL }, NULL }, POL_CONTINUE, 0, NULL, "/v2/a..b/x", NULL,
	  NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'rewrite-uri':{'template':'/v2/${request.query.v}/x'}}]}", ""),
	  { "GET", "/a/x", "v=..a", { NULL }, NULL }, POL_CONTINUE, 0, NULL, "/v2/..a/x", NULL,
	  NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'rewrite-uri':{'template':'/v2/${request.query.v}/x'}}]}", ""),
	  { "GET", "/a/x", "v=a%2fb", { NULL }, NULL }, POL_CONTINUE, 0, NULL, "/v2/a%2Fb/x", NULL,
	  NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'rewrite-uri':{'template':'/v2/${request.query.v}/x'}}]}", ""),
	  { "GET", "/a/x", "v=", { NULL }, NULL }, POL_CONTINUE, 0, NULL, "/v2//x", NULL,
	  NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'rewrite-uri':{'template':'/v2/.${request.query.v}/x'}}]}", ""),
	  { "GET", "/a/x", "v=x", { NULL }, NULL }, POL_CONTINUE, 0, NULL, "/v2/.x/x", NULL,
	  NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'rewrite-uri':{'template':'/v2/${request.header.X-In}/x'}}]}", ""),
	  { "GET", "/a/x", NULL, { "X-In: .." }, NULL }, POL_RESPOND, 400, "segment", NULL, NULL,
	  NULL },
	/* base rules: global sets X-G; the API's section with base keeps it, without drops it */
	{ DOC(OPEN ",'policies':{'inbound':[{'base':{}}]}", ",'policies':{'inbound':[{'set-header':{'name':'X-G','value':'g'}}]}"),
	  { "GET", "/a/x", NULL, { NULL }, NULL }, POL_CONTINUE, 0, NULL, NULL, NULL, "X-G: g" },
	{ DOC(OPEN ",'policies':{'inbound':[]}", ",'policies':{'inbound':[{'set-header':{'name':'X-G','value':'g'}}]}"),
	  { "GET", "/a/x", NULL, { NULL }, NULL }, POL_CONTINUE, 0, NULL, NULL, NULL, "!X-G" },
	{ DOC(OPEN ",'policies':{'outbound':[]}", ",'policies':{'inbound':[{'set-header':{'name':'X-G','value':'g'}}]}"),
	  { "GET", "/a/x", NULL, { NULL }, NULL }, POL_CONTINUE, 0, NULL, NULL, NULL, "X-G: g" },
	/* product scope runs for the subscription's product only */
	{ DOC("", ",'products':[{'id':'p','apis':['a'],'policies':{'inbound':[{'set-header':{'name':'X-P','value':'p'}}]}}],"
	      "'subscriptions':[{'id':'s1','scope':'all','keys_sha256':['" K1 "']},{'id':'s2','scope':'product:p','keys_sha256':['" K2 "']}]"),
	  { "GET", "/a/x", NULL, { "Ocp-Apim-Subscription-Key: k2" }, NULL }, POL_CONTINUE, 0,
	  NULL, NULL, NULL, "X-P: p" },
	{ DOC("", ",'products':[{'id':'p','apis':['a'],'policies':{'inbound':[{'set-header':{'name':'X-P','value':'p'}}]}}],"
	      "'subscriptions':[{'id':'s1','scope':'all','keys_sha256':['" K1 "']},{'id':'s2','scope':'product:p','keys_sha256':['" K2 "']}]"),
	  { "GET", "/a/x", NULL, { "Ocp-Apim-Subscription-Key: k1" }, NULL }, POL_CONTINUE, 0,
	  NULL, NULL, NULL, "!X-P" },
	/* operation scope: rewrite-uri with a parameter and a query value, both encoded */
	{ DOC(OPEN ",'operations':[{'id':'get','method':'GET','url_template':'/items/{id}',"
	      "'policies':{'inbound':[{'rewrite-uri':{'template':'/v2/{id}/x?q=${request.query.q}'}}]}}]", ""),
	  { "GET", "/a/items/a%2Fb", "q=1%262&keep=y", { NULL }, NULL }, POL_CONTINUE, 0, NULL,
	  "/v2/a%2Fb/x", "q=1%262&keep=y", NULL },
	{ DOC(OPEN ",'operations':[{'id':'get','method':'GET','url_template':'/items/{id}',"
	      "'policies':{'inbound':[{'rewrite-uri':{'template':'/v2/{id}','copy-unmatched-params':'false'}}]}}]", ""),
	  { "GET", "/a/items/..%3F", "keep=y", { NULL }, NULL }, POL_CONTINUE, 0, NULL,
	  "/v2/..%3F", "", NULL },
	/* set-query-parameter */
	{ DOC(OPEN ",'policies':{'inbound':[{'set-query-parameter':{'name':'k','value':['a b','c&d']}}]}", ""),
	  { "GET", "/a/x", "k=old&z=1", { NULL }, NULL }, POL_CONTINUE, 0, NULL, NULL,
	  "z=1&k=a%20b&k=c%26d", NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'set-query-parameter':{'name':'k','exists-action':'append','value':'n'}}]}", ""),
	  { "GET", "/a/x", "k=old", { NULL }, NULL }, POL_CONTINUE, 0, NULL, NULL, "k=old&k=n",
	  NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'set-query-parameter':{'name':'k','exists-action':'delete'}}]}", ""),
	  { "GET", "/a/x", "a=1&k=old&k=2", { NULL }, NULL }, POL_CONTINUE, 0, NULL, NULL, "a=1",
	  NULL },
	/* ip-filter */
	{ DOC(OPEN ",'policies':{'inbound':[{'ip-filter':{'action':'allow','address':['10.0.0.0/8','2001:db8::/32']}}]}", ""),
	  { "GET", "/a/x", NULL, { NULL }, "10.1.2.3" }, POL_CONTINUE, 0, NULL, NULL, NULL, NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'ip-filter':{'action':'allow','address':['10.0.0.0/8','2001:db8::/32']}}]}", ""),
	  { "GET", "/a/x", NULL, { NULL }, "2001:db8::1" }, POL_CONTINUE, 0, NULL, NULL, NULL, NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'ip-filter':{'action':'allow','address':['10.0.0.0/8']}}]}", ""),
	  { "GET", "/a/x", NULL, { NULL }, "11.0.0.1" }, POL_RESPOND, 403, "Forbidden", NULL,
	  NULL, NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'ip-filter':{'action':'forbid','address-range':[{'from':'192.0.2.10','to':'192.0.2.20'}]}}]}", ""),
	  { "GET", "/a/x", NULL, { NULL }, "192.0.2.15" }, POL_RESPOND, 403, NULL, NULL, NULL, NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'ip-filter':{'action':'forbid','address-range':[{'from':'192.0.2.10','to':'192.0.2.20'}]}}]}", ""),
	  { "GET", "/a/x", NULL, { NULL }, "192.0.2.21" }, POL_CONTINUE, 0, NULL, NULL, NULL, NULL },
	/* check-header */
	{ DOC(OPEN ",'policies':{'inbound':[{'check-header':{'name':'X-V','failed-check-httpcode':'412','failed-check-error-message':'bad version','ignore-case':true,'value':['v1','V2']}}]}", ""),
	  { "GET", "/a/x", NULL, { "x-v: v2" }, NULL }, POL_CONTINUE, 0, NULL, NULL, NULL, NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'check-header':{'name':'X-V','failed-check-httpcode':'412','failed-check-error-message':'bad version','ignore-case':false,'value':['v1','V2']}}]}", ""),
	  { "GET", "/a/x", NULL, { "x-v: v2" }, NULL }, POL_RESPOND, 412, "bad version", NULL,
	  NULL, NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'check-header':{'name':'X-V','failed-check-httpcode':400,'failed-check-error-message':'no','ignore-case':true}}]}", ""),
	  { "GET", "/a/x", NULL, { NULL }, NULL }, POL_RESPOND, 400, "no", NULL, NULL, NULL },
	/* return-response, set-method, authentication-basic */
	{ DOC(OPEN ",'policies':{'inbound':[{'return-response':{'status-code':418,'headers':{'X-R':'${request.method}'},'body':'hi ${request.header.X-N}'}}]}", ""),
	  { "GET", "/a/x", NULL, { "X-N: bob" }, NULL }, POL_RESPOND, 418, "hi bob", NULL, NULL,
	  NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'set-method':{'method':'post'}},{'authentication-basic':{'username':'u','password':'p'}}]}", ""),
	  { "GET", "/a/x", NULL, { "Authorization: x" }, NULL }, POL_CONTINUE, 0, NULL, NULL,
	  NULL, "Authorization: Basic dTpw" },
	/* on-error changes the error answer */
	{ DOC(OPEN ",'policies':{'inbound':[{'ip-filter':{'action':'allow','address':['10.0.0.1']}}],"
	      "'on-error':[{'set-status':{'code':404}},{'set-header':{'name':'X-E','value':'${api.id}'}}]}", ""),
	  { "GET", "/a/x", NULL, { NULL }, "10.0.0.2" }, POL_RESPOND, 404, NULL, NULL, NULL, NULL },
	/* cors */
	{ DOC(OPEN ",'policies':{'inbound':[{'cors':{'allowed-origins':['https://app.example'],'allowed-methods':['GET','PUT'],'allowed-headers':['X-A'],'preflight-result-max-age':300}}]}", ""),
	  { "OPTIONS", "/a/x", NULL, { "Origin: https://app.example", "Access-Control-Request-Method: PUT",
	    "Access-Control-Request-Headers: x-a" }, NULL }, POL_RESPOND, 200, NULL, NULL, NULL, NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'cors':{'allowed-origins':['https://app.example'],'allowed-methods':['GET']}}]}", ""),
	  { "GET", "/a/x", NULL, { "Origin: https://evil.example" }, NULL }, POL_RESPOND, 200,
	  NULL, NULL, NULL, NULL },
	{ DOC(OPEN ",'policies':{'inbound':[{'cors':{'allowed-origins':['https://app.example'],'allowed-methods':['GET'],'terminate-unmatched-request':false}}]}", ""),
	  { "GET", "/a/x", NULL, { "Origin: https://evil.example" }, NULL }, POL_CONTINUE, 0,
	  NULL, NULL, NULL, NULL },
};

static void check_up_header(const struct pol_call *c, const char *want, size_t i)
{
	if (want[0] == '!') {
		if (pol_headers_get(&c->req_headers, want + 1))
			fail_msg("case %zu: header '%s' must not go upstream", i, want + 1);
	} else {
		const char *colon = strchr(want, ':');
		char *name = strndup(want, (size_t)(colon - want));
		const char *got = pol_headers_get(&c->req_headers, name);

		if (!got || strcmp(got, colon + 2) != 0)
			fail_msg("case %zu: header '%s' is '%s', want '%s'", i, name,
				 got ? got : "(absent)", colon + 2);
		free(name);
	}
}

static void test_decisions(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(dcases) / sizeof(dcases[0]); i++) {
		const struct dcase *d = &dcases[i];
		struct run r;

		start(&r, d->doc, &d->req, NOW);
		if (r.rc != d->rc)
			fail_msg("case %zu: rc %d, want %d (status %d, body %s, error %s)", i, r.rc,
				 d->rc, r.c.status, r.c.body ? r.c.body : "", r.c.error ? r.c.error : "");
		if (d->rc == POL_RESPOND) {
			if (r.c.status != d->status)
				fail_msg("case %zu: status %d, want %d", i, r.c.status, d->status);
			if (d->body_part && (!r.c.body || !strstr(r.c.body, d->body_part)))
				fail_msg("case %zu: body '%s' lacks '%s'", i, r.c.body ? r.c.body : "",
					 d->body_part);
		} else {
			if (d->up_path && strcmp(r.c.path, d->up_path) != 0)
				fail_msg("case %zu: path '%s', want '%s'", i, r.c.path, d->up_path);
			if (d->up_query && strcmp(r.c.query, d->up_query) != 0)
				fail_msg("case %zu: query '%s', want '%s'", i, r.c.query, d->up_query);
			assert_non_null(r.c.backend_url);
		}
		if (d->up_header)
			check_up_header(&r.c, d->up_header, i);
		stop(&r);
	}
}

/* ---- answers in detail ------------------------------------------------------ */

static void test_error_form_and_on_error(void **state)
{
	struct req q = { "GET", "/a/x", NULL, { NULL }, "10.0.0.2" };
	struct run r;

	(void)state;
	start(&r, DOC(OPEN ",'policies':{'inbound':[{'ip-filter':{'action':'allow','address':['10.0.0.1']}}],"
		      "'on-error':[{'set-header':{'name':'X-E','value':'${api.id}'}}]}", ""), &q, NOW);
	assert_int_equal(r.rc, POL_RESPOND);
	assert_int_equal(r.c.status, 403);
	assert_string_equal(r.c.body, "{\"statusCode\": 403, \"message\": \"Forbidden.\", "
			    "\"requestId\": \"req-1\"}");
	assert_int_equal(r.c.body_len, strlen(r.c.body));
	assert_string_equal(resp_header(&r, "Content-Type"), "application/json");
	assert_string_equal(resp_header(&r, "X-E"), "a");
	stop(&r);
}

static void test_cors_headers(void **state)
{
	struct req pre = { "OPTIONS", "/a/x", NULL, { "Origin: https://app.example",
		"Access-Control-Request-Method: PUT", "Access-Control-Request-Headers: X-A" }, NULL };
	struct req bad = { "OPTIONS", "/a/x", NULL, { "Origin: https://app.example",
		"Access-Control-Request-Method: DELETE" }, NULL };
	struct req get = { "GET", "/a/x", NULL, { "Origin: https://app.example" }, NULL };
	const char *doc = DOC(OPEN ",'policies':{'inbound':[{'cors':{'allowed-origins':['https://app.example'],"
			      "'allowed-methods':['GET','PUT'],'allowed-headers':['x-a'],'expose-headers':['X-Total'],"
			      "'allow-credentials':true,'preflight-result-max-age':'300'}}]}", "");
	struct run r;

	(void)state;
	start(&r, doc, &pre, NOW);
	assert_int_equal(r.rc, POL_RESPOND);
	assert_int_equal(r.c.status, 200);
	assert_string_equal(resp_header(&r, "Access-Control-Allow-Origin"), "https://app.example");
	assert_string_equal(resp_header(&r, "Access-Control-Allow-Methods"), "GET, PUT");
	assert_string_equal(resp_header(&r, "Access-Control-Allow-Headers"), "x-a");
	assert_string_equal(resp_header(&r, "Access-Control-Max-Age"), "300");
	assert_string_equal(resp_header(&r, "Access-Control-Allow-Credentials"), "true");
	stop(&r);
	start(&r, doc, &bad, NOW);
	assert_int_equal(r.rc, POL_RESPOND);
	assert_null(resp_header(&r, "Access-Control-Allow-Origin"));
	stop(&r);
	/* an actual request: forwarded; the headers go on the backend's answer */
	start(&r, doc, &get, NOW);
	assert_int_equal(r.rc, POL_CONTINUE);
	r.c.status = 200;
	assert_int_equal(pol_headers_add(&r.c.resp_headers, "X-Total", "3"), 0);
	assert_int_equal(engine_outbound(&r.c), POL_CONTINUE);
	assert_string_equal(resp_header(&r, "Access-Control-Allow-Origin"), "https://app.example");
	assert_string_equal(resp_header(&r, "Access-Control-Expose-Headers"), "X-Total");
	stop(&r);
}

static void test_outbound(void **state)
{
	struct req q = { "GET", "/a/x", NULL, { NULL }, NULL };
	struct run r;

	(void)state;
	start(&r, DOC(OPEN ",'policies':{'outbound':[{'base':{}},{'set-header':{'name':'Server','exists-action':'delete'}},"
		      "{'set-status':{'code':'201','reason':'Made'}},{'set-header':{'name':'X-Id','value':'${context.request_id}'}}]}",
		      ",'policies':{'outbound':[{'set-header':{'name':'X-G','value':'g'}}]}"), &q, NOW);
	assert_int_equal(r.rc, POL_CONTINUE);
	r.c.status = 200;
	pol_headers_add(&r.c.resp_headers, "Server", "nginx");
	assert_int_equal(engine_outbound(&r.c), POL_CONTINUE);
	assert_int_equal(r.c.status, 201);
	assert_string_equal(r.c.reason, "Made");
	assert_null(resp_header(&r, "Server"));
	assert_string_equal(resp_header(&r, "X-G"), "g");
	assert_string_equal(resp_header(&r, "X-Id"), "req-1");
	stop(&r);
	/* return-response in outbound replaces the backend's answer */
	start(&r, DOC(OPEN ",'policies':{'outbound':[{'return-response':{'status-code':200,'body':'mine'}}]}", ""), &q, NOW);
	r.c.status = 500;
	assert_int_equal(engine_outbound(&r.c), POL_RESPOND);
	assert_int_equal(r.c.status, 200);
	assert_string_equal(r.c.body, "mine");
	stop(&r);
	/* engine_on_error for the app's own failures */
	start(&r, DOC(OPEN ",'policies':{'on-error':[{'set-header':{'name':'X-E','value':'e'}}]}", ""), &q, NOW);
	assert_int_equal(engine_on_error(&r.c, 504, "Backend timeout."), POL_RESPOND);
	assert_int_equal(r.c.status, 504);
	assert_non_null(strstr(r.c.body, "Backend timeout."));
	assert_string_equal(resp_header(&r, "X-E"), "e");
	stop(&r);
}

/* ---- limits ------------------------------------------------------------------ */

static void test_rate_limit_exact(void **state)
{
	const char *doc = DOC("", SUBS ",'policies':{'inbound':[{'rate-limit':{'calls':3,'renewal-period':60,"
			      "'remaining-calls-header-name':'X-Left'}}]}");
	struct req q1 = { "GET", "/a/x", NULL, { "Ocp-Apim-Subscription-Key: k1" }, NULL };
	struct req q2 = { "GET", "/a/x", NULL, { "Ocp-Apim-Subscription-Key: k2" }, NULL };
	struct run r;

	(void)state;
	for (int i = 0; i < 3; i++) {
		start(&r, doc, &q1, NOW + i);
		assert_int_equal(r.rc, POL_CONTINUE);
		r.c.status = 200;
		engine_outbound(&r.c);
		assert_int_equal(resp_header(&r, "X-Left")[0], '0' + 2 - i);
		stop(&r);
	}
	start(&r, doc, &q1, NOW + 10);
	assert_int_equal(r.rc, POL_RESPOND);
	assert_int_equal(r.c.status, 429);
	assert_string_equal(resp_header(&r, "Retry-After"), "50");
	assert_non_null(strstr(r.c.body, "Rate limit is exceeded. Try again in 50 seconds."));
	stop(&r);
	/* another subscription has its own window */
	start(&r, doc, &q2, NOW + 10);
	assert_int_equal(r.rc, POL_CONTINUE);
	stop(&r);
	/* the window ends */
	start(&r, doc, &q1, NOW + 60);
	assert_int_equal(r.rc, POL_CONTINUE);
	stop(&r);
}

static void test_limits_by_key_quota_concurrency(void **state)
{
	const char *rk = DOC(OPEN ",'policies':{'inbound':[{'rate-limit-by-key':{'calls':'2','renewal-period':'10',"
			     "'counter-key':'${request.header.X-User}'}}]}", "");
	const char *qt = DOC(OPEN ",'policies':{'inbound':[{'quota-by-key':{'calls':1,'renewal-period':7200,"
			     "'counter-key':'${request.ip}'}}]}", "");
	const char *lc = DOC(OPEN ",'policies':{'inbound':[{'limit-concurrency':{'key':'c','max-count':1}}]}", "");
	const char *bw = DOC(OPEN ",'policies':{'inbound':[{'quota':{'bandwidth':1,'renewal-period':100}}]}", "");
	struct req u1 = { "GET", "/a/x", NULL, { "X-User: u1" }, NULL };
	struct req u2 = { "GET", "/a/x", NULL, { "X-User: u2" }, NULL };
	struct req ip = { "GET", "/a/x", NULL, { NULL }, "198.51.100.7" };
	struct run r, r2;

	(void)state;
	for (int i = 0; i < 2; i++) {
		start(&r, rk, &u1, NOW);
		assert_int_equal(r.rc, POL_CONTINUE);
		stop(&r);
	}
	start(&r, rk, &u1, NOW);
	assert_int_equal(r.c.status, 429);
	stop(&r);
	start(&r, rk, &u2, NOW);
	assert_int_equal(r.rc, POL_CONTINUE);
	stop(&r);
	/* quota: 403 with Retry-After */
	start(&r, qt, &ip, NOW);
	assert_int_equal(r.rc, POL_CONTINUE);
	stop(&r);
	start(&r, qt, &ip, NOW + 1);
	assert_int_equal(r.rc, POL_RESPOND);
	assert_int_equal(r.c.status, 403);
	assert_string_equal(resp_header(&r, "Retry-After"), "7199");
	assert_non_null(strstr(r.c.body, "replenished in 01:59:59"));
	stop(&r);
	/* concurrency: a seat is held until engine_finish */
	start(&r, lc, &ip, NOW);
	assert_int_equal(r.rc, POL_CONTINUE);
	start(&r2, lc, &ip, NOW);
	assert_int_equal(r2.rc, POL_RESPOND);
	assert_int_equal(r2.c.status, 429);
	stop(&r2);
	stop(&r);
	start(&r, lc, &ip, NOW);
	assert_int_equal(r.rc, POL_CONTINUE);
	stop(&r);
	/* bandwidth: counted at finish, refused once the window is full */
	start(&r, bw, &ip, NOW);
	assert_int_equal(r.rc, POL_CONTINUE);
	r.c.bytes_out = 1500;
	stop(&r);
	start(&r, bw, &ip, NOW + 1);
	assert_int_equal(r.rc, POL_RESPOND);
	assert_int_equal(r.c.status, 403);
	stop(&r);
}

static void test_no_counter_store_fails_closed(void **state)
{
	struct counter_store *saved = cs;
	struct req q = { "GET", "/a/x", NULL, { NULL }, NULL };
	struct run r;

	(void)state;
	cs = NULL;
	start(&r, DOC(OPEN ",'policies':{'inbound':[{'rate-limit':{'calls':3,'renewal-period':60}}]}", ""), &q, NOW);
	assert_int_equal(r.rc, POL_RESPOND);
	assert_int_equal(r.c.status, 500);
	stop(&r);
	cs = saved;
}

static void test_pool_and_breaker(void **state)
{
	const char *doc = "{'format':1,'generation':1,'backends':{'w':{'pool':["
		"{'url':'https://a.example','priority':1},{'url':'https://b.example','priority':2}],"
		"'circuit_breaker':{'failures':2,'interval_s':60,'trip_duration_s':30}},"
		"'x':{'url':'https://x.example'}},"
		"'apis':[{'id':'a','path':'a','backend':'w','subscription_required':false}]}";
	const char *sbs = DOC(OPEN ",'policies':{'inbound':[{'set-backend-service':{'backend-id':'x'}}],"
			      "'backend':[{'forward-request':{'timeout':7,'follow-redirects':'true'}},"
			      "{'retry':{'condition':['5xx',429,'connect-error','timeout','503'],'count':3,'interval':1}}]}", "");
	struct req q = { "GET", "/a/x", NULL, { NULL }, NULL };
	struct run r;

	(void)state;
	start(&r, doc, &q, NOW);
	assert_int_equal(r.rc, POL_CONTINUE);
	assert_string_equal(r.c.backend_url, "https://a.example");
	/* fcgi-app code that does not know pools sees the best member */
	assert_string_equal(r.gw->backends[0].url, "https://a.example");
	r.c.backend_failed = 1;
	stop(&r);
	start(&r, doc, &q, NOW + 1);
	assert_string_equal(r.c.backend_url, "https://a.example");
	r.c.backend_failed = 1;
	stop(&r);
	/* a's circuit is open: priority 2 */
	start(&r, doc, &q, NOW + 2);
	assert_int_equal(r.rc, POL_CONTINUE);
	assert_string_equal(r.c.backend_url, "https://b.example");
	r.c.backend_failed = 1;
	stop(&r);
	start(&r, doc, &q, NOW + 3);
	r.c.backend_failed = 1;
	stop(&r);
	/* every circuit open: 503 */
	start(&r, doc, &q, NOW + 4);
	assert_int_equal(r.rc, POL_RESPOND);
	assert_int_equal(r.c.status, 503);
	stop(&r);
	/* and closed again after trip_duration_s */
	start(&r, doc, &q, NOW + 40);
	assert_int_equal(r.rc, POL_CONTINUE);
	assert_string_equal(r.c.backend_url, "https://a.example");
	stop(&r);
	start(&r, sbs, &q, NOW);
	assert_int_equal(r.rc, POL_CONTINUE);
	assert_string_equal(r.c.backend_url, "https://x.example");
	assert_int_equal(r.c.timeout_ms, 7000);
	assert_int_equal(r.c.follow_redirects, 1);
	assert_int_equal(r.c.retry.count, 3);
	assert_int_equal(r.c.retry.conditions,
			 POL_RETRY_5XX | POL_RETRY_CONNECT_ERROR | POL_RETRY_TIMEOUT);
	assert_int_equal(r.c.retry.n_statuses, 2);
	assert_int_equal(r.c.retry.statuses[0], 429);
	assert_int_equal(r.c.retry.statuses[1], 503);
	stop(&r);
	/* a pool member's URL names its pool's backend and that member */
	start(&r, "{'format':1,'generation':1,'backends':{'w':{'pool':["
	      "{'url':'https://a.example','priority':1},{'url':'https://b.example','priority':2}]}},"
	      "'apis':[{'id':'a','path':'a','backend':'w','subscription_required':false,"
	      "'policies':{'inbound':[{'set-backend-service':{'base-url':'https://b.example/'}}]}}]}",
	      &q, NOW);
	assert_int_equal(r.rc, POL_CONTINUE);
	assert_ptr_equal(r.c.backend, &r.gw->backends[0]);
	assert_string_equal(r.c.backend_url, "https://b.example");
	stop(&r);
}

/* An HS256 token over payload with a 32-byte secret. */
static char *hs256(const char *payload, const unsigned char *secret, size_t slen)
{
	const char *hdr = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
	char h64[256], p64[1024], s64[128], *out;
	unsigned char mac[32];
	unsigned int ml = 0;
	size_t n;

	jose_b64url_encode((const unsigned char *)hdr, strlen(hdr), h64, sizeof(h64));
	jose_b64url_encode((const unsigned char *)payload, strlen(payload), p64, sizeof(p64));
	n = strlen(h64) + strlen(p64) + 2;
	out = malloc(n + sizeof(s64));
	assert_non_null(out);
	snprintf(out, n, "%s.%s", h64, p64);
	HMAC(EVP_sha256(), secret, (int)slen, (const unsigned char *)out, strlen(out), mac, &ml);
	jose_b64url_encode(mac, ml, s64, sizeof(s64));
	memcpy(out + strlen(out), ".", 2);
	memcpy(out + strlen(out), s64, strlen(s64) + 1);
	return out;
}

static void test_validate_jwt(void **state)
{
	/* base64 of 32 bytes "0123456789abcdef0123456789abcdef" */
	const unsigned char secret[] = "0123456789abcdef0123456789abcdef";
	const char *doc = DOC(OPEN ",'policies':{'inbound':[{'validate-jwt':{'issuer-signing-keys':"
			      "['MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY='],'issuers':['me'],"
			      "'required-claims':[{'name':'role','value':['admin']}]}},"
			      "{'set-header':{'name':'X-Sub','value':'${jwt.claim.sub}'}}]}", "");
	char *good = hs256("{\"iss\":\"me\",\"sub\":\"alice\",\"role\":\"admin\",\"exp\":1900000000}",
			   secret, 32);
	char *wrong_iss = hs256("{\"iss\":\"you\",\"sub\":\"alice\",\"role\":\"admin\",\"exp\":1900000000}",
				secret, 32);
	char *expired = hs256("{\"iss\":\"me\",\"sub\":\"alice\",\"role\":\"admin\",\"exp\":1700000000}",
			      secret, 32);
	char hdr[2048];
	struct req q = { "GET", "/a/x", NULL, { hdr }, NULL };
	struct req none = { "GET", "/a/x", NULL, { NULL }, NULL };
	struct run r;

	(void)state;
	snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", good);
	start(&r, doc, &q, NOW);
	assert_int_equal(r.rc, POL_CONTINUE);
	assert_string_equal(pol_headers_get(&r.c.req_headers, "X-Sub"), "alice");
	stop(&r);
	snprintf(hdr, sizeof(hdr), "Authorization: Basic %s", good);
	start(&r, doc, &q, NOW);
	assert_int_equal(r.c.status, 401);
	assert_non_null(strstr(r.c.body, "Unauthorized. Access token is missing or invalid."));
	stop(&r);
	snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", wrong_iss);
	start(&r, doc, &q, NOW);
	assert_int_equal(r.c.status, 401);
	stop(&r);
	snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", expired);
	start(&r, doc, &q, NOW);
	assert_int_equal(r.c.status, 401);
	stop(&r);
	start(&r, doc, &none, NOW);
	assert_int_equal(r.c.status, 401);
	stop(&r);
	free(good);
	free(wrong_iss);
	free(expired);
	/* a required claim split at its separator, any one value enough */
	doc = DOC(OPEN ",'policies':{'inbound':[{'validate-jwt':{'issuer-signing-keys':"
		  "['MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY='],'failed-validation-httpcode':403,"
		  "'required-claims':[{'name':'scope','match':'any','separator':' ','value':['write','admin']}]}}]}", "");
	good = hs256("{\"scope\":\"read admin\",\"exp\":1900000000}", secret, 32);
	wrong_iss = hs256("{\"scope\":\"read\",\"exp\":1900000000}", secret, 32);
	snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", good);
	start(&r, doc, &q, NOW);
	assert_int_equal(r.rc, POL_CONTINUE);
	stop(&r);
	snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", wrong_iss);
	start(&r, doc, &q, NOW);
	assert_int_equal(r.c.status, 403);
	stop(&r);
	free(good);
	free(wrong_iss);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_engine.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	cs = counter_open(dir, 1024);
	return cs ? 0 : -1;
}

static int teardown(void **state)
{
	char path[128];

	(void)state;
	counter_close(cs);
	snprintf(path, sizeof(path), "%s/%s", dir, COUNTER_FILE);
	unlink(path);
	rmdir(dir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decisions),
		cmocka_unit_test(test_error_form_and_on_error),
		cmocka_unit_test(test_cors_headers),
		cmocka_unit_test(test_outbound),
		cmocka_unit_test(test_rate_limit_exact),
		cmocka_unit_test(test_limits_by_key_quota_concurrency),
		cmocka_unit_test(test_no_counter_store_fails_closed),
		cmocka_unit_test(test_pool_and_breaker),
		cmocka_unit_test(test_validate_jwt),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
