/*
 * test_policies — the policy parts of the loader (policy/policies.c,
 * policy/products.c, policy/template.c): documents that must be refused with
 * "path: ...message...", documents that must load with their attributes
 * checked, the base rule as flattened plans, RFC 3339 times and templates.
 *
 * Documents are written with ' for " (dq()).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <malloc.h>

#include "policy/gateway.h"
#include "policy/policies.h"
#include "policy/polmod.h"
#include "policy/products.h"
#include "policy/template.h"

#define K1 "6ab9f1eb8f7d3388f4f9d586f66e99fd54080df2c446f0e58668b09c08a16dd0"
#define HEAD "{'format':1,'generation':1,'backends':{'w':{'url':'https://w.example/v1'}},"
#define API(X, T) HEAD "'apis':[{'id':'a','path':'a','backend':'w'" X "}]" T "}"
#define IN(P) API(",'policies':{'inbound':[" P "]}", "")
#define PI "apis[0].policies.inbound[0]"

static char *dq(const char *s)
{
	char *r = strdup(s);

	assert_non_null(r);
	for (char *p = r; *p; p++)
		if (*p == '\'')
			*p = '"';
	return r;
}

static struct gateway *load(const char *doc, struct cfg_errors *errs)
{
	char *d = dq(doc);
	struct gateway *gw = gw_load_buffer(d, strlen(d), errs);

	free(d);
	return gw;
}

/* The "name" attribute of a module policy (set-header). */
static const char *name_of(const struct pol_policy *p)
{
	char *const *v = pol_attr_value(p, "name");

	assert_non_null(v);
	return *v;
}

struct bad_case {
	const char *doc, *path, *msg;
};

static const struct bad_case bad_cases[] = {
	/* elements */
	{ IN("{'rate-limt':{}}"), PI "[\"rate-limt\"]", "unknown policy" },
	{ IN("{'base':{},'set-header':{}}"), PI, "exactly one member" },
	{ IN("{'base':{}},{'base':{}}"), "apis[0].policies.inbound[1]", "more than once" },
	{ API(",'policies':{'inbound':[],'inbond':[]}", ""), "apis[0].policies.inbond", "unknown member" },
	{ API(",'policies':{'outbound':[{'rate-limit':{'calls':1,'renewal-period':1}}]}", ""),
	  "apis[0].policies.outbound[0][\"rate-limit\"]", "not allowed in the 'outbound' section" },
	/* attributes */
	{ IN("{'rate-limit':{'calls':10,'renewal-period':60,'callz':1}}"), PI "[\"rate-limit\"].callz", "unknown member" },
	{ IN("{'rate-limit':{'calls':'ten','renewal-period':60}}"), PI "[\"rate-limit\"].calls", "must be an integer" },
	{ IN("{'rate-limit':{'calls':0,'renewal-period':60}}"), PI "[\"rate-limit\"].calls", "from 1 to" },
	{ IN("{'rate-limit':{'calls':1}}"), PI "[\"rate-limit\"]", "missing required member 'renewal-period'" },
	{ IN("{'rate-limit-by-key':{'calls':1,'renewal-period':1}}"), PI "[\"rate-limit-by-key\"]", "'counter-key'" },
	{ IN("{'rate-limit-by-key':{'calls':1,'renewal-period':1,'counter-key':'${request.nope}'}}"),
	  PI "[\"rate-limit-by-key\"].counter-key", "is not a known value" },
	{ IN("{'rate-limit-by-key':{'calls':1,'renewal-period':1,'counter-key':'${request.ip'}}"),
	  PI "[\"rate-limit-by-key\"].counter-key", "unterminated" },
	{ IN("{'quota':{'renewal-period':1}}"), PI "[\"quota\"]", "needs 'calls' or 'bandwidth'" },
	{ IN("{'set-header':{'name':'${request.ip}','value':'x'}}"), PI "[\"set-header\"].name", "'${' is not allowed" },
	{ IN("{'set-header':{'name':'X A','value':'x'}}"), PI "[\"set-header\"].name", "not a valid header name" },
	{ IN("{'set-header':{'name':'X','exists-action':'replace','value':'x'}}"), PI "[\"set-header\"].exists-action", "is not one of" },
	{ IN("{'set-header':{'name':'X'}}"), PI "[\"set-header\"]", "missing required member 'value'" },
	{ IN("{'check-header':{'name':'X','failed-check-httpcode':400,'failed-check-error-message':'m','ignore-case':'maybe'}}"),
	  PI "[\"check-header\"].ignore-case", "must be a boolean" },
	{ IN("{'ip-filter':{'action':'allow','address':['10.0.0.1/8']}}"), PI "[\"ip-filter\"].address[0]", "host bits" },
	{ IN("{'ip-filter':{'action':'allow'}}"), PI "[\"ip-filter\"]", "needs 'address'" },
	{ IN("{'ip-filter':{'action':'allow','address-range':[{'from':'10.0.0.9','to':'10.0.0.1'}]}}"),
	  PI "[\"ip-filter\"].address-range[0]", "'from' is above 'to'" },
	{ IN("{'validate-jwt':{'issuer-signing-keys':['c2hvcnQ=']}}"), PI "[\"validate-jwt\"].issuer-signing-keys[0]", "not a usable key" },
	{ IN("{'validate-jwt':{'issuer-signing-keys':[]}}"), PI "[\"validate-jwt\"].issuer-signing-keys", "at least one key" },
	{ IN("{'validate-jwt':{'header-name':'A','query-parameter-name':'t','issuer-signing-keys':['MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=']}}"),
	  PI "[\"validate-jwt\"]", "at most one of" },
	{ IN("{'set-backend-service':{'base-url':'https://other.example'}}"), PI "[\"set-backend-service\"].base-url", "not the URL of a configured backend" },
	/* no request value can choose any part of the upstream URL but a rewritten path */
	{ IN("{'set-backend-service':{'base-url':'https://w.example/v1/${request.query.p}'}}"), PI "[\"set-backend-service\"].base-url", "${" },
	{ IN("{'set-backend-service':{'backend-id':'nope'}}"), PI "[\"set-backend-service\"].backend-id", "is not a backend" },
	{ IN("{'rewrite-uri':{'template':'v2/{id}'}}"), PI "[\"rewrite-uri\"].template", "must start with '/'" },
	{ IN("{'rewrite-uri':{'template':'/v2/{*rest}'}}"), PI "[\"rewrite-uri\"].template", "not a parameter name" },
	{ IN("{'rewrite-uri':{'template':'/v2/../{id}'}}"), PI "[\"rewrite-uri\"].template", "'..' path segment" },
	{ IN("{'rewrite-uri':{'template':'/v2/%2E/{id}?a=1'}}"), PI "[\"rewrite-uri\"].template", "'..' path segment" },
	{ IN("{'rewrite-uri':{'template':'/v2/{id}/..'}}"), PI "[\"rewrite-uri\"].template", "'..' path segment" },
	{ IN("{'set-header':{'name':'X-A','value':'a\\u000bb'}}"), PI "[\"set-header\"].value", "control character" },
	{ IN("{'set-header':{'name':'X-A','value':['ok','${api.id}\\u007f']}}"), PI "[\"set-header\"].value", "control character" },
	{ IN("{'cors':{'allowed-origins':['*'],'allow-credentials':true}}"), PI "[\"cors\"]", "cannot be true" },
	{ IN("{'return-response':{'status-code':99}}"), PI "[\"return-response\"].status-code", "from 100 to 599" },
	{ API(",'policies':{'backend':[{'retry':{'condition':['sometimes'],'count':1,'interval':1}}]}", ""),
	  "apis[0].policies.backend[0][\"retry\"].condition[0]", "not a retry condition" },
	{ API(",'operations':[{'id':'o','method':'GET','url_template':'/x','policies':{'inbound':[{'nope':{}}]}}]", ""),
	  "apis[0].operations[0].policies.inbound[0][\"nope\"]", "unknown policy" },
	/* modules (polmod.h): the generic attribute checks say the same as above */
#define PB "apis[0].policies.backend[0]"
#define PO "apis[0].policies.outbound[0]"
#define BK(P) API(",'policies':{'backend':[" P "]}", "")
#define OUTB(P) API(",'policies':{'outbound':[" P "]}", "")
	{ OUTB("{'set-status':{'code':200,'reson':'x'}}"), PO "[\"set-status\"].reson", "unknown member" },
	{ OUTB("{'set-status':{'reason':'x'}}"), PO "[\"set-status\"]", "missing required member 'code'" },
	{ OUTB("{'set-status':{'code':'2oo'}}"), PO "[\"set-status\"].code", "must be an integer" },
	{ OUTB("{'set-status':{'code':600}}"), PO "[\"set-status\"].code", "from 100 to 599, not 600" },
	{ OUTB("{'set-status':{'code':200,'reason':'a\\u0001'}}"), PO "[\"set-status\"].reason", "without control characters" },
	{ OUTB("{'set-status':{'code':200,'reason':7}}"), PO "[\"set-status\"].reason", "must be a string" },
	{ IN("{'set-status':{'code':200}}"), PI "[\"set-status\"]", "not allowed in the 'inbound' section" },
	{ BK("{'forward-request':{'timeout':0}}"), PB "[\"forward-request\"].timeout", "from 1 to 3600" },
	{ BK("{'forward-request':{'follow-redirects':'yes'}}"), PB "[\"forward-request\"].follow-redirects", "must be a boolean" },
	{ IN("{'set-method':{'method':'GE T'}}"), PI "[\"set-method\"].method", "not a valid header name" },
	{ IN("{'set-method':{'method':'${request.method}'}}"), PI "[\"set-method\"].method", "'${' is not allowed" },
	{ IN("{'set-method':{}}"), PI "[\"set-method\"]", "missing required member 'method'" },
	{ IN("{'set-method':null}"), PI "[\"set-method\"]", "not null" },
	{ IN("{'return-response':{'body':'x'}}"), PI "[\"return-response\"]", "missing required member 'status-code'" },
	{ IN("{'return-response':{'status-code':200,'content-type':'text/plain'}}"), PI "[\"return-response\"].content-type", "unknown member" },
	{ IN("{'mock-response':{'headers':{'A B':'x'}}}"), PI "[\"mock-response\"].headers[\"A B\"]", "not a valid header name" },
	{ IN("{'mock-response':{'headers':{'A':null}}}"), PI "[\"mock-response\"].headers[\"A\"]", "not null" },
	{ IN("{'mock-response':{'content-type':'a\\u0001'}}"), PI "[\"mock-response\"]", "'content-type' is not a valid header value" },
	{ BK("{'retry':{'count':1,'interval':1}}"), PB "[\"retry\"]", "missing required member 'condition'" },
	{ BK("{'retry':{'condition':null,'count':1,'interval':1}}"), PB "[\"retry\"].condition", "must not be null" },
	{ BK("{'retry':{'condition':[],'count':1,'interval':1}}"), PB "[\"retry\"].condition", "1 to 64 conditions" },
	{ BK("{'retry':{'condition':[99],'count':1,'interval':1}}"), PB "[\"retry\"].condition[0]", "from 100 to 599" },
	{ BK("{'retry':{'condition':['5xx'],'count':51,'interval':1}}"), PB "[\"retry\"].count", "from 1 to 50" },
	{ IN("{'authentication-basic':{'username':'a:b','password':'p'}}"), PI "[\"authentication-basic\"].username", "must not contain ':'" },
	{ IN("{'authentication-basic':{'username':'a'}}"), PI "[\"authentication-basic\"]", "missing required member 'password'" },
	{ IN("{'check-header':{'name':'X','failed-check-httpcode':200,'failed-check-error-message':'m','ignore-case':true}}"),
	  PI "[\"check-header\"].failed-check-httpcode", "from 400 to 599" },
	/* products and subscriptions */
	{ API("", ",'products':[{'id':'p','apis':['zz']}]"), "products[0].apis[0]", "'zz' is not an API" },
	{ API("", ",'products':[{'id':'p','apis':[]},{'id':'p','apis':[]}]"), "products[1].id", "duplicate id" },
	{ API("", ",'subscriptions':[{'id':'s','scope':'product:zz','keys_sha256':['" K1 "']}]"), "subscriptions[0].scope", "product that does not exist" },
	{ API("", ",'subscriptions':[{'id':'s','scope':'api:a','keys_sha256':['ABCD']}]"), "subscriptions[0].keys_sha256[0]", "64 lowercase hex" },
	{ API("", ",'subscriptions':[{'id':'s','scope':'everything','keys_sha256':['" K1 "']}]"), "subscriptions[0].scope", "is not a scope" },
	{ API("", ",'subscriptions':[{'id':'s','scope':'all','state':'on','keys_sha256':['" K1 "']}]"), "subscriptions[0].state", "is not a state" },
	{ API("", ",'subscriptions':[{'id':'s','scope':'all','expires':'2027-02-30T00:00:00Z','keys_sha256':['" K1 "']}]"), "subscriptions[0].expires", "RFC 3339" },
	{ API("", ",'subscriptions':[{'id':'s','scope':'all','keys_sha256':['" K1 "']},{'id':'t','scope':'all','keys_sha256':['" K1 "']}]"),
	  "subscriptions[1].keys_sha256[0]", "already used by subscription 's'" },
	/* pools and breakers */
	{ "{'format':1,'generation':1,'backends':{'w':{'pool':[{'url':'ftp://a'}]}}}", "backends[\"w\"].pool[0].url", "http" },
	{ "{'format':1,'generation':1,'backends':{'w':{'pool':[]}}}", "backends[\"w\"].pool", "1 to 64 members" },
	{ "{'format':1,'generation':1,'backends':{'w':{'pool':[{'url':'https://a','weight':0}]}}}", "backends[\"w\"].pool[0].weight", "from 1 to" },
	{ "{'format':1,'generation':1,'backends':{'w':{'url':'https://a','circuit_breaker':{'failures':5,'tripp':1}}}}",
	  "backends[\"w\"].circuit_breaker.tripp", "unknown member" },
};

static void test_bad(void **state)
{
	size_t failures = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		struct cfg_errors errs = CFG_ERRORS_INIT;
		struct gateway *gw = load(bad_cases[i].doc, &errs);
		int found = 0;
		size_t pl = strlen(bad_cases[i].path);

		for (size_t j = 0; j < errs.n; j++)
			if (strncmp(errs.msg[j], bad_cases[i].path, pl) == 0 &&
			    errs.msg[j][pl] == ':' && strstr(errs.msg[j] + pl, bad_cases[i].msg))
				found = 1;
		if (gw || !found) {
			print_message("case %zu: %s\n  want \"%s: ...%s...\"%s\n", i, bad_cases[i].doc,
				      bad_cases[i].path, bad_cases[i].msg, gw ? " but it loaded" : "");
			for (size_t j = 0; j < errs.n; j++)
				print_message("    error: %s\n", errs.msg[j]);
			failures++;
		}
		gw_free(gw);
		cfg_errors_release(&errs);
	}
	assert_int_equal(failures, 0);
}

static struct gateway *load_ok(const char *doc)
{
	struct cfg_errors errs = CFG_ERRORS_INIT;
	struct gateway *gw = load(doc, &errs);

	for (size_t j = 0; j < errs.n; j++)
		print_message("    error: %s\n", errs.msg[j]);
	cfg_errors_release(&errs);
	assert_non_null(gw);
	return gw;
}

/* Every policy with every attribute loads, numbers and booleans as strings too. */
static void test_every_policy_loads(void **state)
{
	struct gateway *gw;
	const struct pol_plan *pl;
	const struct pol_policy *p;

	(void)state;
	gw = load_ok(API(",'policies':{'inbound':["
		"{'check-header':{'name':'X-V','failed-check-httpcode':'401','failed-check-error-message':'m','ignore-case':'true','value':['1','${request.ip}']}},"
		"{'ip-filter':{'action':'forbid','address':['10.0.0.0/8','2001:db8::/32','192.0.2.1'],'address-range':{'from':'::1','to':'::9'}}},"
		"{'rate-limit':{'calls':'10','renewal-period':'60','retry-after-header-name':'X-Retry','remaining-calls-header-name':'X-Left','total-calls-header-name':'X-Total'}},"
		"{'rate-limit-by-key':{'calls':10,'renewal-period':60,'counter-key':'${request.ip}'}},"
		"{'quota':{'calls':1000,'bandwidth':'4096','renewal-period':86400}},"
		"{'quota-by-key':{'calls':5,'renewal-period':86400,'counter-key':'${subscription.id}'}},"
		"{'limit-concurrency':{'key':'${subscription.id}','max-count':'4'}},"
		"{'validate-jwt':{'header-name':'X-Token','require-scheme':'Bearer','failed-validation-httpcode':403,'failed-validation-error-message':'no',"
		"'require-expiration-time':'false','require-signed-tokens':true,'clock-skew':'30','issuer-signing-keys':['MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY='],"
		"'audiences':['aud'],'issuers':['iss'],'required-claims':[{'name':'role','match':'any','separator':' ','value':['a','b']}]}},"
		"{'set-backend-service':{'base-url':'https://w.example/v1/'}},"
		"{'authentication-basic':{'username':'u','password':'p'}},"
		"{'set-header':{'name':'X-A','exists-action':'append','value':['a','b']}},"
		"{'set-query-parameter':{'name':'q','exists-action':'skip','value':'v'}},"
		"{'rewrite-uri':{'template':'/v2/{id}?x=${request.query.x}','copy-unmatched-params':false}},"
		"{'set-method':{'method':'PATCH'}},"
		"{'mock-response':{'status-code':'200','content-type':'application/json'}},"
		"{'cors':{'allowed-origins':['*'],'allowed-methods':['*'],'allowed-headers':['*'],'expose-headers':['X'],'allow-credentials':'false','preflight-result-max-age':'60','terminate-unmatched-request':'false'}}],"
		"'backend':[{'forward-request':{'timeout':'10','follow-redirects':false}},{'retry':{'condition':['timeout','4xx','503'],'count':'2','interval':'1','max-interval':10,'delta':'1','first-fast-retry':'true'}}],"
		"'outbound':[{'set-status':{'code':'202','reason':'Accepted'}},{'return-response':{'status-code':200,'headers':{'A':'${request.method}'},'body':'b'}}]}", ""));
	pl = pol_plan_for(&gw->apis[0], NULL, NULL);
	assert_non_null(pl);
	assert_int_equal(pl->s[POL_INBOUND].n, 16);
	assert_int_equal(pl->s[POL_BACKEND].n, 2);
	assert_int_equal(pl->s[POL_OUTBOUND].n, 2);
	p = pl->s[POL_INBOUND].v[0];
	assert_int_equal(*(const int64_t *)pol_attr_value(p, "failed-check-httpcode"), 401);
	assert_int_equal(*(const int *)pol_attr_value(p, "ignore-case"), 1);
	assert_int_equal(((const struct pol_tpls *)pol_attr_value(p, "value"))->n, 2);
	assert_null(pol_attr_value(p, "nope"));
	p = pl->s[POL_INBOUND].v[1];
	/* what they match: test_engine's ip-filter cases */
	assert_int_equal(((const struct pol_strings *)pol_attr_value(p, "address"))->n, 3);
	assert_int_equal(*(const int *)pol_attr_value(p, "action"), 0);
	p = pl->s[POL_INBOUND].v[2];
	assert_int_equal(*(const int64_t *)pol_attr_value(p, "calls"), 10);
	assert_string_equal(*(char *const *)pol_attr_value(p, "retry-after-header-name"), "X-Retry");
	assert_string_equal(p->counter_prefix, "rl:api:a:inbound#2");
	p = pl->s[POL_INBOUND].v[4];
	assert_int_equal(*(const int64_t *)pol_attr_value(p, "bandwidth"), 4096);
	p = pl->s[POL_INBOUND].v[7];
	assert_int_equal(*(const int64_t *)pol_attr_value(p, "failed-validation-httpcode"), 403);
	assert_int_equal(*(const int *)pol_attr_value(p, "require-expiration-time"), 0);
	assert_int_equal(*(const int64_t *)pol_attr_value(p, "clock-skew"), 30);
	/* required-claims' match and separator: test_engine, test_validate_jwt */
	p = pl->s[POL_INBOUND].v[12];
	assert_int_equal(*(const int *)pol_attr_value(p, "copy-unmatched-params"), 0);
	p = pl->s[POL_INBOUND].v[15];
	assert_int_equal(((const struct pol_strings *)pol_attr_value(p, "allowed-origins"))->n, 1);
	assert_int_equal(*(const int64_t *)pol_attr_value(p, "preflight-result-max-age"), 60);
	assert_int_equal(*(const int *)pol_attr_value(p, "terminate-unmatched-request"), 0);
	p = pl->s[POL_BACKEND].v[1];
	/* the conditions are checked through the engine (test_engine, test_pool_and_breaker) */
	assert_int_equal(*(const int64_t *)pol_attr_value(p, "count"), 2);
	assert_int_equal(*(const int64_t *)pol_attr_value(p, "delta"), 1);
	assert_int_equal(*(const int *)pol_attr_value(p, "first-fast-retry"), 1);
	gw_free(gw);
}

/* Plans: global -> product -> API -> operation with APIM's base rule. */
static void test_base_rule(void **state)
{
	struct gateway *gw;
	const struct pol_plan *pl;
	const struct gw_api *api;

#define SH(N) "{'set-header':{'name':'" N "','value':'v'}}"
	(void)state;
	gw = load_ok(HEAD "'apis':[{'id':'a','path':'a','backend':'w',"
		     "'policies':{'inbound':[" SH("A1") ",{'base':{}}," SH("A2") "],'outbound':[" SH("AO") "]},"
		     "'operations':[{'id':'o1','method':'GET','url_template':'/1','policies':{'inbound':[" SH("O") ",{'base':{}}]}},"
		     "{'id':'o2','method':'GET','url_template':'/2','policies':{'inbound':[" SH("O2") "]}},"
		     "{'id':'o3','method':'GET','url_template':'/3'}]}],"
		     "'products':[{'id':'p','apis':['a'],'policies':{'inbound':[" SH("P") ",{'base':{}}]}}],"
		     "'policies':{'inbound':[" SH("G") "],'outbound':[{'base':{}}," SH("GO") "]}}");
	api = &gw->apis[0];
	pl = pol_plan_for(api, &api->operations[0], NULL);
	assert_int_equal(pl->s[POL_INBOUND].n, 4);	/* O A1 G A2 */
	assert_string_equal(name_of(pl->s[POL_INBOUND].v[0]), "O");
	assert_string_equal(name_of(pl->s[POL_INBOUND].v[1]), "A1");
	assert_string_equal(name_of(pl->s[POL_INBOUND].v[2]), "G");
	assert_string_equal(name_of(pl->s[POL_INBOUND].v[3]), "A2");
	/* the API's outbound has no base: the global one does not run */
	assert_int_equal(pl->s[POL_OUTBOUND].n, 1);
	assert_string_equal(name_of(pl->s[POL_OUTBOUND].v[0]), "AO");
	pl = pol_plan_for(api, &api->operations[0], &gw->products[0]);
	assert_int_equal(pl->s[POL_INBOUND].n, 5);	/* O A1 P G A2 */
	assert_string_equal(name_of(pl->s[POL_INBOUND].v[2]), "P");
	assert_string_equal(name_of(pl->s[POL_INBOUND].v[3]), "G");
	pl = pol_plan_for(api, &api->operations[1], &gw->products[0]);
	assert_int_equal(pl->s[POL_INBOUND].n, 1);	/* O2 only */
	/* absent section = base */
	pl = pol_plan_for(api, &api->operations[2], NULL);
	assert_int_equal(pl->s[POL_INBOUND].n, 3);	/* A1 G A2 */
	assert_int_equal(pl->s[POL_BACKEND].n, 0);
	gw_free(gw);
#undef SH
}

/* A plan holds exactly what its sections hold: a plan per operation and
 * product adds up (issue 9: POL_MAX_PLAN slots a section made a 10k-API
 * document cost ~874 MiB). */
static void test_plan_sizes(void **state)
{
	struct gateway *gw;
	const struct pol_plan *pl;
	const struct gw_api *api;

	(void)state;
	gw = load_ok(HEAD "'apis':[{'id':'a','path':'a','backend':'w',"
		     "'policies':{'inbound':[{'set-header':{'name':'A','value':'v'}},{'base':{}}]},"
		     "'operations':[{'id':'o1','method':'GET','url_template':'/1'}]}],"
		     "'policies':{'inbound':[{'set-header':{'name':'G','value':'v'}}]}}");
	api = &gw->apis[0];
	pl = pol_plan_for(api, &api->operations[0], NULL);
	assert_int_equal(pl->s[POL_INBOUND].n, 2);
	assert_true(malloc_usable_size((void *)(uintptr_t)pl->s[POL_INBOUND].v) < 8 * sizeof(void *));
	for (int s = POL_BACKEND; s < POL_N_SECTIONS; s++) {
		assert_int_equal(pl->s[s].n, 0);
		assert_null(pl->s[s].v);
	}
	gw_free(gw);
}

/* docs/policies.md against the modules' tables: every policy has its row in
 * "The policies" table, every attribute of a module is named in its row as
 * `name` (or in the row it points to with "as `OTHER`"), and every row is
 * a policy the loader knows. Run from the tree's
 * root (tests/run-unit). */
static char *doc_row(const char *doc, const char *name)
{
	char head[128];
	const char *r;
	size_t n;

	snprintf(head, sizeof(head), "\n| `%s` |", name);
	r = strstr(doc, head);
	if (!r)
		return NULL;
	r++;
	n = strcspn(r, "\n");
	return strndup(r, n);
}

/* Is `attr` named in row, or in the row of the policy row refers to with
 * "as `OTHER`" ("as `rate-limit` + `counter-key`"), up to depth more? */
static int row_names(const char *doc, const char *row, const char *attr, int depth)
{
	char quoted[128], other[128];
	const char *as = strstr(row, "as `");
	char *orow;
	size_t l;
	int found;

	snprintf(quoted, sizeof(quoted), "`%s`", attr);
	if (strstr(row, quoted))
		return 1;
	if (!as || depth == 0)
		return 0;
	l = strcspn(as + 4, "`");
	if (l >= sizeof(other))
		return 0;
	memcpy(other, as + 4, l);
	other[l] = '\0';
	orow = doc_row(doc, other);
	found = orow && row_names(doc, orow, attr, depth - 1);
	free(orow);
	return found;
}

static void test_docs_match_tables(void **state)
{
	const struct pol_module *const *mods = pol_modules();
	FILE *f = fopen("docs/policies.md", "r");
	char *doc, *row, *p;
	size_t n, missing = 0;

	(void)state;
	assert_non_null(f);
	doc = calloc(1, 1 << 20);
	assert_non_null(doc);
	n = fread(doc, 1, (1 << 20) - 1, f);
	fclose(f);
	assert_true(n > 0);
	for (size_t i = 0; mods[i]; i++) {
		row = doc_row(doc, mods[i]->name);
		if (!row) {
			print_error("docs/policies.md: no row for '%s'\n", mods[i]->name);
			missing++;
			continue;
		}
		for (const struct pol_attr *a = mods[i]->attrs; a->name; a++) {
			if (!row_names(doc, row, a->name, 3)) {
				print_error("docs/policies.md: '%s' row lacks attribute '%s'\n",
					    mods[i]->name, a->name);
				missing++;
			}
		}
		free(row);
	}
	/* the reverse: every row of the table names a policy */
	for (p = strstr(doc, "\n| `"); p; p = strstr(p + 1, "\n| `")) {
		char name[128];
		size_t l = strcspn(p + 4, "`");
		int known = 0;

		if (l >= sizeof(name))
			continue;
		memcpy(name, p + 4, l);
		name[l] = '\0';
		for (size_t i = 0; mods[i]; i++)
			known |= strcmp(mods[i]->name, name) == 0;
		if (!known) {
			print_error("docs/policies.md: row '%s' is not a policy\n", name);
			missing++;
		}
	}
	free(doc);
	assert_int_equal(missing, 0);
}

static void test_times(void **state)
{
	int64_t t;

	(void)state;
	assert_int_equal(products_parse_time("1970-01-01T00:00:00Z", &t), 0);
	assert_int_equal(t, 0);
	assert_int_equal(products_parse_time("2027-01-01T00:00:00Z", &t), 0);
	assert_int_equal(t, 1798761600);
	assert_int_equal(products_parse_time("2027-01-01T02:00:00.123+02:00", &t), 0);
	assert_int_equal(t, 1798761600);
	assert_int_equal(products_parse_time("2024-02-29T00:00:00Z", &t), 0);
	assert_int_equal(products_parse_time("2023-02-29T00:00:00Z", &t), -1);
	assert_int_equal(products_parse_time("2027-01-01 00:00:00Z", &t), -1);
	assert_int_equal(products_parse_time("2027-01-01T00:00:00", &t), -1);
	assert_int_equal(products_parse_time("2027-13-01T00:00:00Z", &t), -1);
}

static void fixed(void *ctx, enum tpl_root root, const char *name, size_t name_len,
		  const char **val, size_t *len)
{
	(void)ctx;
	(void)name;
	(void)name_len;
	*val = root == TPL_REQUEST_QUERY ? "a/b?c&d\r\n" : NULL;
	*len = *val ? strlen(*val) : 0;
}

static void test_templates(void **state)
{
	struct tpl *t;
	char why[300];
	struct tpl_buf b = TPL_BUF_INIT(1024);

	(void)state;
	assert_int_equal(tpl_parse("x$${y}$z", 8, 0, &t, why, sizeof(why)), 0);
	assert_string_equal(tpl_constant(t), "x${y}$z");
	tpl_free(t);
	assert_int_equal(tpl_parse("/p/${request.query.q}/${path.nope}", 34, 0, &t, why, sizeof(why)), 0);
	assert_null(tpl_constant(t));
	assert_int_equal(tpl_expand(t, fixed, NULL, TPL_ENC_URL, &b), TPL_OK);
	assert_string_equal(b.p, "/p/a%2Fb%3Fc%26d%0D%0A/");
	tpl_buf_release(&b);
	assert_int_equal(tpl_expand(t, fixed, NULL, TPL_ENC_HEADER, &b), TPL_BAD_VALUE);
	tpl_buf_release(&b);
	tpl_free(t);
	assert_int_equal(tpl_parse("${jwt.claim.}", 13, 0, &t, why, sizeof(why)), -1);
	assert_int_equal(tpl_parse("${context.nope}", 15, 0, &t, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "not a known value"));
	assert_int_equal(tpl_parse("{id}", 4, 0, &t, why, sizeof(why)), 0);
	assert_string_equal(tpl_constant(t), "{id}");
	tpl_free(t);
	assert_int_equal(tpl_parse("{id}", 4, TPL_PARSE_BRACES, &t, why, sizeof(why)), 0);
	assert_int_equal(t->v[0].root, TPL_PATH_PARAM);
	tpl_free(t);
	/* an APIM C# value copied as it is: refused, never sent as literal text */
	assert_int_equal(tpl_parse("@(context.Request.IpAddress)", 28, 0, &t, why, sizeof(why)), -1);
	assert_null(t);
	assert_non_null(strstr(why, "APIM C# expression ('@(...')"));
	assert_int_equal(tpl_parse("@{ return \"x\"; }", 16, 0, &t, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "write $(EXPR)"));
	/* an @ elsewhere, or not before ( or {, is text */
	assert_int_equal(tpl_parse("a@(b)", 5, 0, &t, why, sizeof(why)), 0);
	assert_string_equal(tpl_constant(t), "a@(b)");
	tpl_free(t);
	assert_int_equal(tpl_parse("@home", 5, 0, &t, why, sizeof(why)), 0);
	assert_string_equal(tpl_constant(t), "@home");
	tpl_free(t);
}

/* every byte value against the header rule: control bytes but HTAB refused */
static void test_header_bytes(void **state)
{
	(void)state;
	for (int c = 0; c < 256; c++) {
		char v[3] = { 'a', (char)c, 'b' };
		int bad = (c < 0x20 && c != '\t') || c == 0x7f;
		struct tpl_buf b = TPL_BUF_INIT(64);

		if (tpl_header_check(v, 3) != (bad ? -1 : 0))
			fail_msg("byte 0x%02x: tpl_header_check %d", c, tpl_header_check(v, 3));
		assert_int_equal(tpl_buf_put(&b, v, 3, TPL_ENC_HEADER), bad ? TPL_BAD_VALUE : TPL_OK);
		tpl_buf_release(&b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_every_policy_loads),
		cmocka_unit_test(test_base_rule),
		cmocka_unit_test(test_plan_sizes),
		cmocka_unit_test(test_docs_match_tables),
		cmocka_unit_test(test_times),
		cmocka_unit_test(test_templates),
		cmocka_unit_test(test_header_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
