/*
 * test_import_expr — the importer's expression mapping (px_expr, by the table
 * of docs/expressions.md) and the policy-XML pre-tokenizer (px_pretokenize):
 * tables of APIM C# → hostgate, the refusals with their reasons, and that
 * every translation compiles with hostgate's own expression compiler.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "import/convert.h"
#include "import/policyxml.h"

struct map_case {
	const char *apim, *hostgate;
	int is_value;
};

static const struct map_case maps[] = {
	{ "context.Request.IpAddress", "${request.ip}", 1 },
	{ "context.Request.Method", "${request.method}", 1 },
	{ "context.Request.Url.Path", "${request.path}", 1 },
	{ "context.Request.Headers.GetValueOrDefault(\"X-Id\",\"\")", "${request.header.X-Id}", 1 },
	{ "context.Request.Headers.GetValueOrDefault(\"X-Id\", \"none\")",
	  "default(${request.header.X-Id}, 'none')", 0 },
	{ "context.Request.Url.Query.GetValueOrDefault(\"q\",\"\")", "${request.query.q}", 1 },
	{ "context.Request.MatchedParameters[\"id\"]", "${path.id}", 1 },
	{ "context.Subscription.Id", "${subscription.id}", 1 },
	{ "context.Product.Id", "${product.id}", 1 },
	{ "context.Api.Id", "${api.id}", 1 },
	{ "context.Operation.Id", "${operation.id}", 1 },
	{ "context.RequestId", "${context.request_id}", 1 },
	{ "context.Request.Method == \"POST\"", "${request.method} == 'POST'", 0 },
	{ "context.Response.StatusCode == 200", "int(${response.status}) == 200", 0 },
	{ "context.Variables.GetValueOrDefault<string>(\"x\")", "${var.x}", 1 },
	{ "context.Variables.GetValueOrDefault<string>(\"x\", \"d\")", "default(${var.x}, 'd')", 0 },
	{ "context.Variables.GetValueOrDefault<int>(\"n\") > 3", "int(${var.n}) > 3", 0 },
	{ "context.Variables.ContainsKey(\"x\")", "!isEmpty(${var.x})", 0 },
	{ "context.Request.Headers.GetValueOrDefault(\"A\",\"\").ToLower().Contains(\"it's\")",
	  "contains(lower(${request.header.A}), 'it''s')", 0 },
	{ "!string.IsNullOrEmpty(context.Request.Url.Query.GetValueOrDefault(\"q\",\"\"))",
	  "!isEmpty(${request.query.q})", 0 },
	{ "\"id-\" + context.Request.Url.Path.Length", "'id-' + string(length(${request.path}))", 0 },
	{ "context.Request.Method == \"GET\" || context.Request.Method == \"HEAD\" && true",
	  "${request.method} == 'GET' || ${request.method} == 'HEAD' && true", 0 },
	{ "Regex.IsMatch(context.Request.Url.Path, \"^/a[0-9]+$\")",
	  "matches(${request.path}, '^/a[0-9]+$')", 0 },
	{ "context.Request.Headers.GetValueOrDefault(\"X\",\"\") ?? \"d\"",
	  "default(${request.header.X}, 'd')", 0 },
	{ "context.Request.Body.As<string>(preserveContent: true)", "${request.body}", 1 },
	{ "((IResponse)context.Variables[\"tok\"]).StatusCode == 200",
	  "int(${var.tok.status}) == 200", 0 },
	{ "int.Parse(context.Request.Headers.GetValueOrDefault(\"N\",\"\")) + 1",
	  "int(${request.header.N}) + 1", 0 },
};

struct refuse_case {
	const char *apim, *why;
};

static const struct refuse_case refusals[] = {
	{ "DateTime.UtcNow.ToString()", "'DateTime' is not in the table" },
	{ "context.User.Email", "this use of 'context' is not in the table" },
	{ "context.Request.Method == \"a\" ? \"x\" : \"y\"", "the conditional" },
	{ "context.Request.Method.Split(',')", "the method 'Split'" },
	{ "context.Request.Method == 1", "between a string and a number" },
	{ "Regex.IsMatch(context.Request.Url.Path, \"\\\\d+\")", "POSIX ERE" },
	{ "context.Request.Headers.GetValueOrDefault(\"a b\",\"\")", "is not importable" },
	{ "context.Request.Method +", "ends early" },
	{ "\"a\\nb\"", "escape" },
};

static void test_map(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
		char *out = NULL, why[256] = "";
		int bare = -1;
		int rc = px_expr(maps[i].apim, strlen(maps[i].apim), &out, &bare, why, sizeof(why));
		if (rc != 0 || strcmp(out, maps[i].hostgate) || bare != maps[i].is_value)
			fail_msg("%s: got rc %d '%s' (%d), why '%s'; want '%s' (%d)", maps[i].apim, rc,
				 out ? out : "", bare, why, maps[i].hostgate, maps[i].is_value);
		free(out);
	}
}

static void test_refusals(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
		char *out = NULL, why[256] = "";
		int bare;
		int rc = px_expr(refusals[i].apim, strlen(refusals[i].apim), &out, &bare, why,
				 sizeof(why));
		if (rc != -1 || out || !strstr(why, refusals[i].why))
			fail_msg("%s: rc %d out '%s' why '%s', want refusal '%s'", refusals[i].apim, rc,
				 out ? out : "", why, refusals[i].why);
	}
}

/* every translation is a document the loader takes (the expressions compile) */
static void test_translations_load(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
		char *out = NULL, why[256], v[1024];
		int bare;
		struct cfg_errors errs = CFG_ERRORS_INIT;
		struct gateway *gw;
		json_object *root, *sv, *el, *inb, *pol, *api, *apis, *b, *bs;
		const char *txt;

		assert_int_equal(px_expr(maps[i].apim, strlen(maps[i].apim), &out, &bare, why,
					 sizeof(why)), 0);
		/* as a set-variable value, which takes any type */
		snprintf(v, sizeof(v), "$(%s)", out);
		free(out);
		sv = json_object_new_object();
		json_object_object_add(sv, "name", json_object_new_string("v"));
		json_object_object_add(sv, "value", json_object_new_string(v));
		el = json_object_new_object();
		json_object_object_add(el, "set-variable", sv);
		inb = json_object_new_array();
		json_object_array_add(inb, el);
		pol = json_object_new_object();
		json_object_object_add(pol, "inbound", inb);
		api = json_object_new_object();
		json_object_object_add(api, "id", json_object_new_string("a"));
		json_object_object_add(api, "path", json_object_new_string("a"));
		json_object_object_add(api, "backend", json_object_new_string("b"));
		json_object_object_add(api, "policies", pol);
		apis = json_object_new_array();
		json_object_array_add(apis, api);
		b = json_object_new_object();
		json_object_object_add(b, "url", json_object_new_string("http://127.0.0.1:9"));
		bs = json_object_new_object();
		json_object_object_add(bs, "b", b);
		root = json_object_new_object();
		json_object_object_add(root, "format", json_object_new_int(1));
		json_object_object_add(root, "generation", json_object_new_int(1));
		json_object_object_add(root, "backends", bs);
		json_object_object_add(root, "apis", apis);
		txt = json_object_to_json_string(root);
		gw = gw_load_buffer(txt, strlen(txt), &errs);
		if (!gw)
			fail_msg("%s -> %s: %s", maps[i].apim, v, errs.n ? errs.msg[0] : "?");
		json_object_put(root);
		gw_free(gw);
		cfg_errors_release(&errs);
	}
}

static void test_pretokenize(void **state)
{
	static const char in[] =
		"<policies>\n"
		"<inbound>\n"
		"<choose><when condition=\"@(context.Request.Headers.GetValueOrDefault(\"a\",\"\") == \"<&>\" && true)\">\n"
		"<set-body>@{ var s = \")\"; return s; }</set-body></when></choose>\n"
		"<set-header name=\"x\"><value>@(\"it's\")</value></set-header>\n"
		"<!-- @( not an expression in a comment -->\n"
		"<x a=\"@(&quot;q&quot; == &quot;q&quot;)\" b='@(\"a\")'\n c=\"1\"/>\n"
		"</inbound>\n"
		"</policies>\n";
	char *out = NULL;
	size_t ol, line;
	const char *why;
	struct px_linemap map = PX_LINEMAP_INIT;

	(void)state;
	assert_int_equal(px_pretokenize(in, strlen(in), &out, &ol, &line, &why, &map), 0);
	assert_non_null(strstr(out, "condition=\"@(context.Request.Headers.GetValueOrDefault(&quot;a&quot;,&quot;&quot;) == &quot;&lt;&amp;&gt;&quot; &amp;&amp; true)\""));
	assert_non_null(strstr(out, "<set-body>@{ var s = &quot;)&quot;; return s; }</set-body>"));
	assert_non_null(strstr(out, "<value>@(&quot;it&apos;s&quot;)</value>"));
	assert_non_null(strstr(out, "<!-- @( not an expression in a comment -->"));
	/* entities already there are kept, not escaped twice */
	assert_non_null(strstr(out, "a=\"@(&quot;q&quot; == &quot;q&quot;)\""));
	assert_non_null(strstr(out, "b='@(&quot;a&quot;)'"));
	/* same number of lines; the tag over lines 7-8 maps back to 7 */
	{
		size_t a = 0, b = 0, i;
		for (i = 0; in[i]; i++)
			a += in[i] == '\n';
		for (i = 0; i < ol; i++)
			b += out[i] == '\n';
		assert_int_equal(a, b);
	}
	assert_int_equal(px_linemap_start(&map, 8), 7);
	assert_int_equal(px_linemap_start(&map, 5), 5);
	free(out);
	px_linemap_release(&map);

	/* an expression that never ends: refused at the line it starts on... and counted to */
	static const char bad[] = "<policies>\n<inbound>\n<set-header name=\"x\"><value>@(context.Request.Method == \"a)</value>\n</inbound></policies>\n";
	assert_int_equal(px_pretokenize(bad, strlen(bad), &out, &ol, &line, &why, NULL), -1);
	assert_null(out);
	assert_non_null(strstr(why, "never ends"));
}

static void test_op_names(void **state)
{
	char *n;

	(void)state;
	n = imp_op_name("CreateItem", "post", "/items");
	assert_string_equal(n, "createitem");
	free(n);
	n = imp_op_name("Delete Order!", "delete", "/x");
	assert_string_equal(n, "delete-order");
	free(n);
	n = imp_op_name(NULL, "get", "/orders/{orderId}/lines");
	assert_string_equal(n, "get-orders-orderid-lines");
	free(n);
	n = imp_op_name("a_very_long_operation_id_that_goes_on_and_on_and_on_past_the_eighty_byte_limit_of_names", "get", "/");
	assert_int_equal(strlen(n), 80);
	free(n);
	assert_null(imp_op_name("!!!", "get", "/"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_map),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_translations_load),
		cmocka_unit_test(test_pretokenize),
		cmocka_unit_test(test_op_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
