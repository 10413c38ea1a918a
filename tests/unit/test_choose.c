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
#include "policy/polmod.h"
#include "policy/route.h"

#define HEAD "{'format':1,'generation':1,'backends':{'w':{'url':'https://w.example/v1'}," \
	"'x':{'url':'https://x.example'}},"
/* API "a" at /a, open; P: its "policies" value */
#define DOC(P) HEAD "'apis':[{'id':'a','path':'a','backend':'w','subscription_required':false," \
	"'policies':" P "}]}"
#define NOW 1800000000
/* x inside a choose whose one condition is true */
#define CH(x) "{'choose':{'when':[{'condition':'true','policies':[" x "]}]}}"

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
	int reads;		/* read_body calls */
	int rc;
};

static int read_body(void *ctx, char **body, size_t *len)
{
	struct run *r = ctx;

	r->reads++;
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
static void backend(struct run *r, int status, const char *const *headers, const char *body)
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

/* Parses s as strict JSON (no single quotes, nothing after): NULL if not. */
static json_object *parse_strict(const char *s)
{
	struct json_tokener *tok = json_tokener_new();
	json_object *j;

	assert_non_null(tok);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	j = json_tokener_parse_ex(tok, s, (int)strlen(s) + 1);
	json_tokener_free(tok);
	return j;
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


/* ---- choose ------------------------------------------------------------------ */

/* X-Path records which branches ran, in order */
#define MARK(v) "{'set-header':{'name':'X-Path','exists-action':'append','value':'" v "'}}"
#define NESTED "{'inbound':[" MARK("start") ",{'choose':{'when':[" \
	"{'condition':'${request.query.a} == `1`','policies':[" MARK("a1") ",{'choose':{'when':[" \
	"  {'condition':'${request.query.b} == `1`','policies':[" MARK("b1") ",{'choose':{'when':[" \
	"    {'condition':'startsWith(${request.query.c}, `x`)','policies':[" MARK("c-x") "]}," \
	"    {'condition':'${request.query.c} != ``','policies':[" MARK("c-any") "]}]," \
	"    'otherwise':[" MARK("c-none") "]}}]}]," \
	"  'otherwise':[" MARK("b-other") "]}}," MARK("a1-end") "]}," \
	"{'condition':'length(${request.query.a}) > 0','policies':[" MARK("a-any") "]}]," \
	"'otherwise':[" MARK("otherwise") "]}}," MARK("end") "]}"

static void path_is(const char *query, const char *want)
{
	struct run r;
	char got[400] = "";
	size_t l = 0;

	start(&r, DOC(NESTED), "GET", "/a/x", query, NULL, NULL);
	assert_int_equal(r.rc, POL_CONTINUE);
	for (size_t i = 0; i < r.c.req_headers.n; i++)
		if (strcmp(r.c.req_headers.v[i].name, "X-Path") == 0)
			l += (size_t)snprintf(got + l, sizeof(got) - l, "%s%s", l ? " " : "",
					      r.c.req_headers.v[i].value);
	if (strcmp(got, want) != 0)
		fail_msg("'%s': ran \"%s\", want \"%s\"", query, got, want);
	stop(&r);
}

static void test_choose_nested(void **state)
{
	(void)state;
	path_is("a=1&b=1&c=xy", "start a1 b1 c-x a1-end end");	/* 3 deep, first true wins */
	path_is("a=1&b=1&c=y", "start a1 b1 c-any a1-end end");
	path_is("a=1&b=1", "start a1 b1 c-none a1-end end");	/* innermost otherwise */
	path_is("a=1&b=2", "start a1 b-other a1-end end");
	path_is("a=2", "start a-any end");	/* the second when */
	path_is("", "start otherwise end");
}

/* A nested policy that answers ends the section; one that fails runs on-error. */
static void test_choose_stops(void **state)
{
	struct run r;

	(void)state;
	start(&r, DOC("{'inbound':[{'choose':{'when':[{'condition':'true','policies':["
		      "{'return-response':{'status-code':'$(200 + int(${request.query.n}))',"
		      "'headers':{'Content-Type':'application/json'},"
		      "'body':'{\\'q\\': \\'${request.query.q}\\'}'}}]}]}}," MARK("after") "]}"),
	      "GET", "/a/x", "n=3&q=%22%5C%7D", NULL, NULL);
	assert_int_equal(r.rc, POL_RESPOND);
	assert_int_equal(r.c.status, 203);
	assert_null(req_header(&r, "X-Path"));
	{
		json_object *j = parse_strict(r.c.body);

		assert_non_null(j);
		assert_string_equal(json_object_get_string(json_object_object_get(j, "q")), "\"\\}");
		json_object_put(j);
	}
	stop(&r);
	start(&r, DOC("{'inbound':[{'choose':{'when':[{'condition':'true','policies':["
		      "{'return-response':{'status-code':'$(int(${request.query.n}))'}}]}]}}],"
		      "'on-error':[{'set-header':{'name':'X-Err','value':'seen'}}]}"),
	      "GET", "/a/x", "n=700", NULL, NULL);
	assert_int_equal(r.rc, POL_RESPOND);
	assert_int_equal(r.c.status, 500);
	assert_string_equal(r.c.error, "return-response status out of 100-599");
	assert_string_equal(pol_headers_get(&r.c.resp_headers, "X-Err"), "seen");
	stop(&r);
}

/* ---- variables and outbound ----------------------------------------------------- */

static void test_variables_across_sections(void **state)
{
	static const char *const hs[] = { "X-Tier: Gold", NULL };
	static const char *const bh[] = { "Content-Type: application/json", "Content-Length: 9",
					  NULL };
	struct run r;

	(void)state;
	start(&r, DOC("{'inbound':[{'set-variable':{'name':'tier','value':'$(lower(${request.header.X-Tier}))'}},"
		      "{'set-variable':{'name':'n','value':42}},{'set-variable':{'name':'ok','value':true}}],"
		      "'outbound':[{'choose':{'when':[{'condition':'${response.status} == `404` && "
		      "${var.tier} == `gold`','policies':[{'set-status':{'code':'$(int(${var.n}) + 158)'}},"
		      "{'set-body':{'value':'{\\'tier\\': \\'${var.tier}\\', \\'ok\\': ${var.ok}, "
		      "\\'was\\': \\'${response.body}\\', \\'ct\\': \\'${var.tok.header.Content-Type}\\'}'}}]}]}}]}"),
	      "GET", "/a/x", NULL, hs, NULL);
	assert_int_equal(r.rc, POL_CONTINUE);
	/* as send-request stores a header: under its lower-case name */
	assert_int_equal(pol_var_set(&r.c, "tok.header.content-type", "text/x", 6), 0);
	backend(&r, 404, bh, "{\"e\":\"</a>\"}");
	assert_int_equal(r.rc, POL_RESPOND);
	assert_int_equal(r.c.status, 200);
	assert_null(pol_headers_get(&r.c.resp_headers, "Content-Length"));
	{
		json_object *j = parse_strict(r.c.body), *v;

		if (!j)
			fail_msg("not JSON: %s", r.c.body);
		assert_string_equal(json_object_get_string(json_object_object_get(j, "tier")), "gold");
		assert_true(json_object_object_get_ex(j, "ok", &v) && json_object_get_boolean(v));
		assert_string_equal(json_object_get_string(json_object_object_get(j, "was")),
				    "{\"e\":\"</a>\"}");
		assert_string_equal(json_object_get_string(json_object_object_get(j, "ct")), "text/x");
		json_object_put(j);
	}
	stop(&r);
}

/* The outbound choose reads ${response.body}: the plan buffers it. */
static void test_needs(void **state)
{
	struct run r;

	(void)state;
	start(&r, DOC("{'outbound':[{'choose':{'when':[{'condition':'contains(${response.body}, `x`)',"
		      "'policies':[{'set-status':{'code':299}}]}]}}]}"), "GET", "/a/x", NULL, NULL, NULL);
	assert_true(engine_outbound_needs_body(&r.c));
	assert_int_equal(r.reads, 0);
	backend(&r, 200, NULL, "xyz");
	assert_int_equal(r.c.status, 299);
	stop(&r);
	/* a find-and-replace two levels down in an outbound choose: buffered too */
	start(&r, DOC("{'outbound':[{'choose':{'when':[{'condition':'false','policies':[]}],"
		      "'otherwise':[" CH("{'find-and-replace':{'from':'a','to':'b'}}") "]}}]}"),
	      "GET", "/a/x", NULL, NULL, NULL);
	assert_true(engine_outbound_needs_body(&r.c));
	backend(&r, 200, NULL, "banana");
	assert_string_equal(r.c.body, "bbnbnb");
	stop(&r);
	/* a request body read in on-error is kept before forwarding */
	start(&r, DOC("{'inbound':[{'set-header':{'name':'X','value':'1'}}],"
		      "'on-error':[{'choose':{'when':[{'condition':'isEmpty(${request.body})',"
		      "'policies':[{'set-status':{'code':500}}]}]}}]}"),
	      "POST", "/a/x", NULL, NULL, "hello");
	assert_int_equal(r.rc, POL_CONTINUE);
	assert_int_equal(r.reads, 1);
	assert_false(engine_outbound_needs_body(&r.c));
	stop(&r);
	/* none: no read */
	start(&r, DOC("{'inbound':[{'set-header':{'name':'X','value':'1'}}]}"),
	      "POST", "/a/x", NULL, NULL, "hello");
	assert_int_equal(r.reads, 0);
	stop(&r);
}

/* ---- set-body --------------------------------------------------------------------- */

static const char hostile[] = "%22%5C%3C%2Fa%3E%5D%5D%3E%0A%7B%22x%22%3A1%7D%26%27";	/* "\</a>]]>\n{"x":1}&' */
static const char hostile_dec[] = "\"\\</a>]]>\n{\"x\":1}&'";

static void test_set_body_json(void **state)
{
	static const char *const hs[] = { "Content-Type: application/problem+json", NULL };
	struct run r;
	char q[200];
	json_object *j, *v;

	(void)state;
	snprintf(q, sizeof(q), "v=%s", hostile);
	start(&r, DOC("{'inbound':[{'set-body':{'value':'{\\'v\\': \\'${request.query.v}\\', \\'n\\': "
		      "$(length(${request.query.v})), \\'b\\': $(${request.query.v} == ``), "
		      "\\'e\\': \\'$(${request.query.v} + `!`)\\'}'}}]}"),
	      "POST", "/a/x", q, hs, "old");
	assert_int_equal(r.rc, POL_CONTINUE);
	assert_true(r.c.req_body_read);
	j = parse_strict(r.c.req_body);
	if (!j)
		fail_msg("not JSON: %s", r.c.req_body);
	assert_int_equal(json_object_object_length(j), 4);
	assert_string_equal(json_object_get_string(json_object_object_get(j, "v")), hostile_dec);
	assert_true(json_object_object_get_ex(j, "n", &v));
	assert_int_equal(json_object_get_int(v), (int)strlen(hostile_dec));
	assert_true(json_object_object_get_ex(j, "b", &v) && !json_object_get_boolean(v));
	assert_true(json_object_object_get_ex(j, "e", &v));
	assert_int_equal(strlen(json_object_get_string(v)), strlen(hostile_dec) + 1);
	json_object_put(j);
	assert_int_equal(r.c.req_body_len, strlen(r.c.req_body));
	stop(&r);
}

static void test_set_body_xml_raw(void **state)
{
	static const char *const bh[] = { "Content-Type: text/xml; charset=utf-8", NULL };
	static const char *const bt[] = { "Content-Type: text/plain", NULL };
	struct run r;
	char q[200];

	(void)state;
	snprintf(q, sizeof(q), "v=%s", hostile);
	start(&r, DOC("{'outbound':[{'set-body':{'value':'<r a=`${request.query.v}`>${request.query.v}</r>'}}]}"),
	      "GET", "/a/x", q, NULL, NULL);
	backend(&r, 200, bh, NULL);
	assert_int_equal(r.rc, POL_RESPOND);
	assert_string_equal(r.c.body, "<r a='&quot;\\&lt;/a&gt;]]&gt;\n{&quot;x&quot;:1}&amp;&apos;'>"
			    "&quot;\\&lt;/a&gt;]]&gt;\n{&quot;x&quot;:1}&amp;&apos;</r>");
	stop(&r);
	start(&r, DOC("{'outbound':[{'set-body':{'value':'[${request.query.v}]'}}]}"),
	      "GET", "/a/x", q, NULL, NULL);
	backend(&r, 200, bt, NULL);
	assert_int_equal(r.rc, POL_RESPOND);
	assert_int_equal(r.c.body_len, strlen(hostile_dec) + 2);
	assert_memory_equal(r.c.body + 1, hostile_dec, strlen(hostile_dec));
	stop(&r);
}

/* ---- the generic walks see nested policies -------------------------------------- */

#define PREFIXES_MAX 600

/* arg: a buffer of PREFIXES_MAX bytes; appends "PREFIX " */
static void collect_prefix(const struct pol_policy *p, void *arg)
{
	char *buf = arg;
	size_t l = strlen(buf);

	if (p->counter_prefix)
		snprintf(buf + l, PREFIXES_MAX - l, "%s ", p->counter_prefix);
}

static void test_nested_prefixes(void **state)
{
	struct gateway *gw = load(DOC("{'inbound':[{'rate-limit':{'calls':5,'renewal-period':60}},"
		"{'choose':{'when':[{'condition':'true','policies':[{'set-header':{'name':'X','value':'1'}},"
		"{'rate-limit':{'calls':5,'renewal-period':60}}]}],"
		"'otherwise':[{'rate-limit':{'calls':5,'renewal-period':60}}]}}]}"));
	const struct pol_plan *pl = pol_plan_for(&gw->apis[0], NULL, NULL);
	char buf[PREFIXES_MAX] = "";

	(void)state;
	assert_int_equal(pl->s[POL_INBOUND].n, 2);
	for (size_t i = 0; i < pl->s[POL_INBOUND].n; i++)
		pol_walk(pl->s[POL_INBOUND].v[i], collect_prefix, buf);
	assert_string_equal(buf, "rl:api:a:inbound#0 rl:api:a:inbound#1.0.1 rl:api:a:inbound#1.1.0 ");
	gw_free(gw);
}

/* ---- load errors ----------------------------------------------------------- */

/* choose nested 9 deep (8 is the cap) */
#define DEEP9 CH(CH(CH(CH(CH(CH(CH(CH(CH("")))))))))
/* 9 limit-concurrency, 8 of them inside a choose */
#define LCC "{'limit-concurrency':{'key':'k','max-count':1}}"
#define LC9 LCC "," CH(LCC "," LCC "," LCC "," LCC "," LCC "," LCC "," LCC "," LCC)

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
	{ "{'inbound':[{'choose':{'when':[{'condition':'${request.method}','policies':[]}]}}]}",
	  "apis[0].policies.inbound[0][\"choose\"].when[0].condition: a condition must be a boolean" },
	{ "{'inbound':[{'choose':{'when':[{'condition':'1 == `a`','policies':[]}]}}]}",
	  "apis[0].policies.inbound[0][\"choose\"].when[0].condition: column 3: cannot compare "
	  "integer with string" },
	{ "{'inbound':[{'choose':{'when':[{'condition':'true','policies':[{'set-header':"
	  "{'name':'X Y','value':'1'}}]}]}}]}",
	  "apis[0].policies.inbound[0][\"choose\"].when[0].policies[0][\"set-header\"].name: "
	  "'X Y' is not a valid header name" },
	{ "{'inbound':[{'choose':{'when':[{'condition':'true','policies':[{'set-status':"
	  "{'code':200}}]}]}}]}",
	  "apis[0].policies.inbound[0][\"choose\"].when[0].policies[0][\"set-status\"]: "
	  "'set-status' is not allowed in the 'inbound' section" },
	{ "{'inbound':[{'choose':{'when':[{'condition':'true','policies':[]}],'otherwise':[{'base':{}}]}}]}",
	  "apis[0].policies.inbound[0][\"choose\"].otherwise[0]: 'base' is not allowed in a nested "
	  "policy list" },
	{ "{'inbound':[{'choose':{'when':[]}}]}",
	  "apis[0].policies.inbound[0][\"choose\"].when: must have 1 to 64 conditions" },
	{ "{'inbound':[{'choose':{'otherwise':[]}}]}",
	  "apis[0].policies.inbound[0][\"choose\"]: missing required member 'when'" },
	{ "{'inbound':[{'choose':{'when':[{'policies':[]}]}}]}",
	  "apis[0].policies.inbound[0][\"choose\"].when[0]: missing required member 'condition'" },
	{ "{'inbound':[{'choose':{'when':[{'condition':'${response.body} == ``','policies':[]}]}}]}",
	  "apis[0].policies.inbound[0][\"choose\"].when[0].condition: '${response.body}' is only "
	  "available in the outbound and on-error sections" },
	{ "{'inbound':[{'set-variable':{'name':'a.b','value':'1'}}]}",
	  "apis[0].policies.inbound[0][\"set-variable\"].name: 'a.b' is not a variable name "
	  "(1 to 80 of A-Z a-z 0-9 _ -)" },
	{ "{'inbound':[{'set-variable':{'name':'a','value':[1]}}]}",
	  "apis[0].policies.inbound[0][\"set-variable\"].value: must be a string, a number or a "
	  "boolean" },
	{ "{'inbound':[{'set-variable':{'name':'a'}}]}",
	  "apis[0].policies.inbound[0][\"set-variable\"]: missing required member 'value'" },
	{ "{'outbound':[{'set-status':{'code':'$(`a`)'}}]}",
	  "apis[0].policies.outbound[0][\"set-status\"].code: must be an integer expression" },
	{ "{'outbound':[{'set-status':{'code':'$(1 +)'}}]}",
	  "apis[0].policies.outbound[0][\"set-status\"].code: column 6: expected a value, found "
	  "the end" },
	{ "{'outbound':[{'set-status':{'code':'$(1'}}]}",
	  "apis[0].policies.outbound[0][\"set-status\"].code: must be an integer or '$(EXPR)', an "
	  "integer expression" },
	{ "{'outbound':[{'set-status':{'code':700}}]}",
	  "apis[0].policies.outbound[0][\"set-status\"].code: must be an integer from 100 to 599" },
	{ "{'inbound':[{'set-body':{}}]}",
	  "apis[0].policies.inbound[0][\"set-body\"]: missing required member 'value'" },
	{ "{'inbound':[" DEEP9 "]}", "policies nest more than 8 deep" },
	{ "{'inbound':[" LC9 "]}", "more than 8 limit-concurrency or 8 bandwidth quota policies" },
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
		cmocka_unit_test(test_template_expr),
		cmocka_unit_test(test_template_two_decoded),
		cmocka_unit_test(test_template_header_control),
		cmocka_unit_test(test_template_expr_fails),
		cmocka_unit_test(test_load_errors),
		cmocka_unit_test(test_choose_nested),
		cmocka_unit_test(test_choose_stops),
		cmocka_unit_test(test_variables_across_sections),
		cmocka_unit_test(test_needs),
		cmocka_unit_test(test_set_body_json),
		cmocka_unit_test(test_set_body_xml_raw),
		cmocka_unit_test(test_nested_prefixes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
