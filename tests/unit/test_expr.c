/*
 * test_expr — the expression language (policy/expr.c) and its regular
 * expression engine (policy/regex.c), as tables: source, expected type and
 * value under a fixed resolver; source, expected compile error; pattern,
 * subject, expected match. Sources are copied into buffers of their exact
 * length (no terminator), so ASan catches a read past len.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy/expr.h"
#include "policy/regex.h"
#include "policy/template.h"

static const char body[] =
	"{\"a\":{\"b\":[{\"c\":\"deep\"},{\"c\":7}]},\"s\":\"x\\\"y\",\"n\":-1.5,\"t\":true,"
	"\"z\":null,\"o\":{\"k\":[1,2]},\"e\":\"\"}";

static void resolve(void *ctx, enum tpl_root root, const char *name, size_t name_len, const char **val,
		    size_t *len)
{
	const char *v = NULL;

	(void)ctx;
#define NAMED(s) (name_len == strlen(s) && memcmp(name, (s), name_len) == 0)
	switch (root) {
	case TPL_REQUEST_METHOD: v = "POST"; break;
	case TPL_REQUEST_PATH: v = "/orders/17"; break;
	case TPL_REQUEST_HEADER:
		if (NAMED("X-Trace"))
			v = "abc";
		else if (NAMED("Empty"))
			v = "";
		else if (NAMED("Auth"))
			v = "Bearer eyJhbGciOi";
		break;
	case TPL_REQUEST_QUERY: v = NAMED("q") ? "Hello World" : NULL; break;
	case TPL_PATH_PARAM: v = NAMED("id") ? "17" : NULL; break;
	case TPL_VAR:
		if (NAMED("n"))
			v = "42";
		else if (NAMED("tok.status"))
			v = "200";
		else if (NAMED("big"))
			v = " -123456789012345678 ";
		break;
	case TPL_REQUEST_BODY: v = body; break;
	case TPL_RESPONSE_STATUS: v = "404"; break;
	case TPL_RESPONSE_HEADER: v = NAMED("Content-Type") ? "application/json" : NULL; break;
	default: break;
	}
#undef NAMED
	*val = v;
	*len = v ? strlen(v) : 0;
}

/* Compiles s from an exact-length copy. */
static int compile(const char *s, unsigned flags, struct expr **e, size_t *used, char *why,
		   size_t cap)
{
	size_t n = strlen(s);
	char *copy = malloc(n ? n : 1);
	int r;

	assert_non_null(copy);
	memcpy(copy, s, n);
	r = expr_compile(copy, n, flags, e, used, why, cap);
	free(copy);
	return r;
}

/* Formats v as the table writes it: a string as itself, an integer in
 * decimal, a boolean as true/false. */
static void show(const struct expr_value *v, char *buf, size_t cap)
{
	if (v->type == EXPR_STRING)
		snprintf(buf, cap, "%.*s", (int)v->len, v->len ? v->s : "");
	else if (v->type == EXPR_INT)
		snprintf(buf, cap, "%lld", (long long)v->i);
	else
		snprintf(buf, cap, "%s", v->b ? "true" : "false");
}

struct eval_case {
	const char *src;
	enum expr_type type;
	const char *want;
};

#define S EXPR_STRING
#define I EXPR_INT
#define B EXPR_BOOL

static const struct eval_case eval_cases[] = {
	/* literals and values */
	{ "'abc'", S, "abc" },
	{ "''", S, "" },
	{ "'it''s'", S, "it's" },
	{ "''''", S, "'" },
	{ "42", I, "42" },
	{ "-7", I, "-7" },
	{ "999999999999999999", I, "999999999999999999" },
	{ "true", B, "true" },
	{ "false", B, "false" },
	{ "${request.method}", S, "POST" },
	{ "${request.header.X-Trace}", S, "abc" },
	{ "${request.header.Missing}", S, "" },
	{ "${request.query.q}", S, "Hello World" },
	{ "${path.id}", S, "17" },
	{ "${var.n}", S, "42" },
	{ "${var.tok.status}", S, "200" },
	{ "${response.status}", S, "404" },
	{ "${response.header.Content-Type}", S, "application/json" },
	{ "  ${request.method}\t\n", S, "POST" },
	/* == != on each type */
	{ "${request.method} == 'POST'", B, "true" },
	{ "${request.method} == 'post'", B, "false" },
	{ "${request.method} != 'GET'", B, "true" },
	{ "1 == 1", B, "true" },
	{ "1 != 1", B, "false" },
	{ "true == false", B, "false" },
	{ "true != false", B, "true" },
	{ "'' == ${request.header.Missing}", B, "true" },
	{ "'a' == 'ab'", B, "false" },
	/* ordering: integers as numbers, strings bytewise */
	{ "2 < 10", B, "true" },
	{ "'2' < '10'", B, "false" },
	{ "10 <= 10", B, "true" },
	{ "11 <= 10", B, "false" },
	{ "-1 > -2", B, "true" },
	{ "3 >= 4", B, "false" },
	{ "'abc' < 'abd'", B, "true" },
	{ "'ab' < 'abc'", B, "true" },
	{ "'b' > 'abc'", B, "true" },
	{ "int(${response.status}) >= 400", B, "true" },
	{ "int(${response.status}) < 400", B, "false" },
	/* && || ! and short-circuit values */
	{ "true && true", B, "true" },
	{ "true && false", B, "false" },
	{ "false || true", B, "true" },
	{ "false || false", B, "false" },
	{ "!true", B, "false" },
	{ "!!true", B, "true" },
	{ "!(1 == 2)", B, "true" },
	{ "true && true && true && false", B, "false" },
	{ "false || false || false || true", B, "true" },
	/* precedence: && binds tighter than || */
	{ "true || false && false", B, "true" },
	{ "(true || false) && false", B, "false" },
	{ "false && false || true", B, "true" },
	{ "!false && false", B, "false" },
	{ "!(false && false)", B, "true" },
	/* + binds tighter than the comparisons */
	{ "1 + 2 == 3", B, "true" },
	{ "'a' + 'b' == 'ab'", B, "true" },
	{ "1 + 2 + 3 + 4", I, "10" },
	{ "'x' + ${path.id} + 'y'", S, "x17y" },
	{ "-5 + 3", I, "-2" },
	{ "(1 + 2) + 3", I, "6" },
	{ "${request.method} == 'POST' && int(${path.id}) > 10 || false", B, "true" },
	/* functions */
	{ "lower('HeLLo 1')", S, "hello 1" },
	{ "upper('HeLLo 1')", S, "HELLO 1" },
	{ "lower('')", S, "" },
	{ "length('abc')", I, "3" },
	{ "length('')", I, "0" },
	{ "length(${request.query.q})", I, "11" },
	{ "contains('hello', 'll')", B, "true" },
	{ "contains('hello', 'lx')", B, "false" },
	{ "contains('hello', '')", B, "true" },
	{ "contains('', 'a')", B, "false" },
	{ "contains('aaaaaaaaab', 'aaab')", B, "true" },
	{ "contains('abababc', 'ababc')", B, "true" },
	{ "startsWith(${request.header.Auth}, 'Bearer ')", B, "true" },
	{ "startsWith('ab', 'abc')", B, "false" },
	{ "startsWith('ab', '')", B, "true" },
	{ "endsWith('file.json', '.json')", B, "true" },
	{ "endsWith('file.json', '.xml')", B, "false" },
	{ "endsWith('n', 'json')", B, "false" },
	{ "isEmpty('')", B, "true" },
	{ "isEmpty(${request.header.Missing})", B, "true" },
	{ "isEmpty(${request.header.Empty})", B, "true" },
	{ "isEmpty('a')", B, "false" },
	{ "default(${request.header.Missing}, 'dflt')", S, "dflt" },
	{ "default(${request.header.X-Trace}, 'dflt')", S, "abc" },
	{ "substring('abcdef', 2)", S, "cdef" },
	{ "substring('abcdef', 2, 3)", S, "cde" },
	{ "substring('abcdef', 0, 0)", S, "" },
	{ "substring('abcdef', -3, 2)", S, "ab" },
	{ "substring('abcdef', 4, 100)", S, "ef" },
	{ "substring('abcdef', 100)", S, "" },
	{ "substring('abcdef', 1, -1)", S, "" },
	{ "substring(${request.header.Auth}, 7)", S, "eyJhbGciOi" },
	{ "replace('a-b-c', '-', '+')", S, "a+b+c" },
	{ "replace('a-b-c', '-', '')", S, "abc" },
	{ "replace('a-b-c', '', 'x')", S, "a-b-c" },
	{ "replace('aaa', 'aa', 'b')", S, "ba" },
	{ "replace('abc', 'x', 'y')", S, "abc" },
	{ "replace('ab', 'ab', 'abab')", S, "abab" },
	{ "matches('order-17', '^order-[0-9]+$')", B, "true" },
	{ "matches('order-x', '^order-[0-9]+$')", B, "false" },
	{ "matches(${request.path}, '/orders/[0-9]+')", B, "true" },
	{ "matches('', '^$')", B, "true" },
	{ "int('42')", I, "42" },
	{ "int(' 42 ')", I, "42" },
	{ "int('-42')", I, "-42" },
	{ "int('4x2')", I, "0" },
	{ "int('')", I, "0" },
	{ "int('-')", I, "0" },
	{ "int('1234567890123456789')", I, "0" },
	{ "int(${var.big})", I, "-123456789012345678" },
	{ "int(7)", I, "7" },
	{ "int(${var.n}) + 1", I, "43" },
	{ "string(42)", S, "42" },
	{ "string(-3)", S, "-3" },
	{ "string(true)", S, "true" },
	{ "string(1 == 2)", S, "false" },
	{ "string('s')", S, "s" },
	{ "string(length('ab')) + 'x'", S, "2x" },
	{ "json(${request.body}, 'a.b[0].c')", S, "deep" },
	{ "json(${request.body}, 'a.b[1].c')", S, "7" },
	{ "json(${request.body}, 'a.b[2].c')", S, "" },
	{ "json(${request.body}, 's')", S, "x\"y" },
	{ "json(${request.body}, 'n')", S, "-1.5" },
	{ "json(${request.body}, 't')", S, "true" },
	{ "json(${request.body}, 'z')", S, "" },
	{ "json(${request.body}, 'missing')", S, "" },
	{ "json(${request.body}, 'o')", S, "{\"k\":[1,2]}" },
	{ "json(${request.body}, 'o.k')", S, "[1,2]" },
	{ "json(${request.body}, 'o.k[1]')", S, "2" },
	{ "json(${request.body}, 'a.b.c')", S, "" },
	{ "json(${request.body}, 's.x')", S, "" },
	{ "json('[10,20]', '[1]')", S, "20" },
	{ "json('17', '')", S, "17" },
	{ "json('\"str\"', '')", S, "str" },
	{ "json('not json', 'a')", S, "" },
	{ "json('{\"a\":1} trailing', 'a')", S, "" },
	{ "json('{\"a\":1}  ', 'a')", S, "1" },
	{ "json('', 'a')", S, "" },
	{ "base64('')", S, "" },
	{ "base64('f')", S, "Zg==" },
	{ "base64('fo')", S, "Zm8=" },
	{ "base64('foo')", S, "Zm9v" },
	{ "base64('user:pass')", S, "dXNlcjpwYXNz" },
	{ "unbase64('Zm9v')", S, "foo" },
	{ "unbase64('Zg==')", S, "f" },
	{ "unbase64('Zg')", S, "f" },
	{ "unbase64('Zm8')", S, "fo" },
	{ "unbase64('-_-_')", S, "\xfb\xff\xbf" },
	{ "unbase64('Z')", S, "" },
	{ "unbase64('Zm9v!')", S, "" },
	{ "unbase64('Zg=')", S, "" },
	{ "unbase64(base64('round trip'))", S, "round trip" },
	{ "'Basic ' + base64(${request.header.X-Trace} + ':' + ${path.id})", S, "Basic YWJjOjE3" },
	{ "lower(upper(lower('MiXeD')))", S, "mixed" },
	{ "length(replace(${request.query.q}, ' ', '')) == 10", B, "true" },
	{ "contains(lower(${request.query.q}), 'world') && !isEmpty(${var.n})", B, "true" },
};

static void test_eval(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(eval_cases) / sizeof(eval_cases[0]); i++) {
		const struct eval_case *c = &eval_cases[i];
		struct expr *e = NULL;
		struct expr_arena a = EXPR_ARENA_INIT(4096);
		struct expr_value v;
		char why[200] = "", got[256];
		size_t used = 0;

		if (compile(c->src, 0, &e, &used, why, sizeof(why)) != 0)
			fail_msg("'%s': %s", c->src, why);
		assert_int_equal(used, strlen(c->src));
		if (expr_type(e) != c->type)
			fail_msg("'%s': type %d, want %d", c->src, expr_type(e), c->type);
		assert_int_equal(expr_eval(e, resolve, NULL, &a, &v), EXPR_OK);
		assert_int_equal(v.type, c->type);
		show(&v, got, sizeof(got));
		if (strcmp(got, c->want) != 0)
			fail_msg("'%s': got '%s', want '%s'", c->src, got, c->want);
		expr_arena_release(&a);
		expr_free(e);
	}
}

struct error_case {
	const char *src;
	const char *want;	/* the whole message */
};

static const struct error_case error_cases[] = {
	{ "", "column 1: empty expression" },
	{ "   ", "column 4: empty expression" },
	{ "'abc", "column 1: unterminated string (a quote inside is written '')" },
	{ "\"abc\"", "column 1: strings are single-quoted" },
	{ "1 == 'a'", "column 3: cannot compare integer with string" },
	{ "${request.method} == 200", "column 19: cannot compare string with integer" },
	{ "true == 'true'", "column 6: cannot compare boolean with string" },
	{ "true < false", "column 6: booleans compare only with '==' and '!='" },
	{ "1 < 2 < 3", "column 7: comparisons do not chain (use '&&' or parentheses)" },
	{ "1 == 1 == 1", "column 8: comparisons do not chain (use '&&' or parentheses)" },
	{ "'a' && true", "column 5: '&&' needs booleans, not a string on its left" },
	{ "true && 1", "column 6: '&&' needs booleans, not a integer on its right" },
	{ "true || 'x'", "column 6: '||' needs booleans, not a string on its right" },
	{ "!'x'", "column 1: '!' needs a boolean, not a string" },
	{ "!1", "column 1: '!' needs a boolean, not an integer" },
	{ "'a' + 1", "column 5: '+' adds two integers or joins two strings, not string and integer "
		     "(string(n) makes a string)" },
	{ "true + true", "column 6: '+' adds two integers or joins two strings, not boolean and "
			 "boolean (string(n) makes a string)" },
	{ "lowr('a')", "column 1: unknown function 'lowr'" },
	{ "lower", "column 1: unknown name 'lower' (values are written '${...}', functions name(...))" },
	{ "request.method", "column 1: unknown name 'request' (values are written '${...}', "
			    "functions name(...))" },
	{ "lower()", "column 1: too few arguments to 'lower'" },
	{ "lower('a', 'b')", "column 12: too many arguments to 'lower'" },
	{ "substring('a')", "column 1: too few arguments to 'substring'" },
	{ "lower(1)", "column 7: argument 1 of 'lower' must be a string" },
	{ "substring('a', '1')", "column 16: argument 2 of 'substring' must be an integer" },
	{ "int(true)", "column 5: argument 1 of 'int' must be a string or an integer" },
	{ "length(length('a'))", "column 8: argument 1 of 'length' must be a string" },
	{ "matches('a', ${request.method})",
	  "column 14: the second argument of 'matches' must be a quoted literal" },
	{ "matches('a', '(a')", "column 14: bad pattern: column 3: missing ')'" },
	{ "matches('a', '(a)\\1')", "column 14: bad pattern: column 4: back-references are not supported" },
	{ "json('{}', 'a[x]')", "column 12: json() path: '[' needs digits and ']'" },
	{ "json('{}', 'a..b')", "column 12: json() path has an empty name" },
	{ "json('{}', ${var.n})", "column 12: the second argument of 'json' must be a quoted literal" },
	{ "(1 == 1", "column 8: expected ')', found the end" },
	{ "1 == 1)", "column 7: expected an operator or the end, found ')'" },
	{ "1 2", "column 3: expected an operator or the end, found '2'" },
	{ "1 = 1", "column 3: '=' alone is not an operator (write '==')" },
	{ "true & false", "column 6: '&' alone is not an operator (write '&&')" },
	{ "1 +", "column 4: expected a value, found the end" },
	{ "== 1", "column 1: expected a value, found '=='" },
	{ "lower('a' 'b')", "column 11: expected ',' or ')', found ''b''" },
	{ "$x", "column 1: '$' must start a '${...}' value" },
	{ "${request.method", "column 1: unterminated '${'" },
	{ "${var.}", "column 1: '${var.}': a variable name is 1 to 80 of A-Z a-z 0-9 _ -" },
	{ "${var.a b}", "column 1: '${var.a b}': a variable name is 1 to 80 of A-Z a-z 0-9 _ -" },
	{ "${var.a$}", "column 1: '${var.a$}': a variable name is 1 to 80 of A-Z a-z 0-9 _ -" },
	{ "${nope}", NULL },
	{ "${request.header.}", "column 1: '${request.header.}' needs a name of 1 to 256 characters "
				"after 'request.header.'" },
	{ "${response.header.}", "column 1: '${response.header.}' needs a name of 1 to 256 "
				 "characters after 'response.header.'" },
	{ "${request.body.x}", NULL },	/* template's message, checked by prefix below */
	{ "1234567890123456789", "column 1: integer literal over 18 digits" },
	{ "12abc", "column 3: a letter right after a number" },
	{ "1 ; 2", "column 3: unexpected ';'" },
};

static void test_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
		const struct error_case *c = &error_cases[i];
		struct expr *e = (struct expr *)1;
		char why[400] = "";

		if (compile(c->src, 0, &e, NULL, why, sizeof(why)) == 0)
			fail_msg("'%s' compiled", c->src);
		assert_null(e);
		if (c->want == NULL)
			assert_true(strncmp(why, "column 1: '${", 13) == 0 &&
				    strstr(why, "' is not a known value (request.method, ") != NULL);
		else if (strcmp(why, c->want) != 0)
			fail_msg("'%s': got \"%s\", want \"%s\"", c->src, why, c->want);
	}
}

/* The extra roots are numbered past template's, and reach the resolver with
 * the name as written. */
static int seen_root;
static char seen_name[64];

static void record(void *ctx, enum tpl_root root, const char *name, size_t name_len, const char **val,
		   size_t *len)
{
	(void)ctx;
	seen_root = root;
	snprintf(seen_name, sizeof(seen_name), "%.*s", (int)name_len, name ? name : "");
	*val = NULL;
	*len = 0;
}

static void test_roots(void **state)
{
	static const struct { const char *src; int root; const char *name; } cases[] = {
		{ "${request.method}", TPL_REQUEST_METHOD, "" },
		{ "${request.header.X-A}", TPL_REQUEST_HEADER, "X-A" },
		{ "${jwt.claim.sub}", TPL_JWT_CLAIM, "sub" },
		{ "${context.request_id}", TPL_REQUEST_ID, "" },
		{ "${var.a-b_9}", TPL_VAR, "a-b_9" },
		{ "${var.tok.header.Content-Type}", TPL_VAR, "tok.header.Content-Type" },
		{ "${request.body}", TPL_REQUEST_BODY, "" },
		{ "${response.status}", TPL_RESPONSE_STATUS, "" },
		{ "${response.header.ETag}", TPL_RESPONSE_HEADER, "ETag" },
		{ "${response.body}", TPL_RESPONSE_BODY, "" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct expr *e = NULL;
		struct expr_arena a = EXPR_ARENA_INIT(0);
		struct expr_value v;
		char why[200];

		if (compile(cases[i].src, 0, &e, NULL, why, sizeof(why)) != 0)
			fail_msg("'%s': %s", cases[i].src, why);
		seen_root = -1;
		assert_int_equal(expr_eval(e, record, NULL, &a, &v), EXPR_OK);
		assert_int_equal(seen_root, cases[i].root);
		assert_string_equal(seen_name, cases[i].name);
		/* a missing value is '' */
		assert_int_equal(v.type, EXPR_STRING);
		assert_int_equal(v.len, 0);
		expr_free(e);
	}
}

static void test_stop_paren(void **state)
{
	struct expr *e = NULL;
	char why[200];
	size_t used = 0;
	const char *s = "lower(${path.id} + 'X')) and the rest";

	(void)state;
	assert_int_equal(compile(s, EXPR_STOP_PAREN, &e, &used, why, sizeof(why)), 0);
	assert_int_equal(used, 23);
	assert_int_equal(s[used], ')');
	expr_free(e);
	/* without the flag the same ')' is an error */
	assert_int_equal(compile(s, 0, &e, &used, why, sizeof(why)), -1);
	/* an empty "$()" */
	assert_int_equal(compile(") x", EXPR_STOP_PAREN, &e, &used, why, sizeof(why)), -1);
	assert_string_equal(why, "column 1: empty expression");
	/* ends at the end too */
	assert_int_equal(compile("1 + (2)", EXPR_STOP_PAREN, &e, &used, why, sizeof(why)), 0);
	assert_int_equal(used, 7);
	expr_free(e);
}

static void test_bounds(void **state)
{
	char src[EXPR_MAX_SOURCE + 2], why[200];
	struct expr *e = NULL;
	struct expr_value v;
	int d;

	(void)state;
	/* depth: 32 levels of parentheses compile, 33 do not */
	for (int want = 32; want <= 33; want++) {
		size_t o = 0;

		for (d = 0; d < want; d++)
			src[o++] = '(';
		src[o++] = '1';
		for (d = 0; d < want; d++)
			src[o++] = ')';
		src[o] = '\0';
		if (want == 32) {
			assert_int_equal(compile(src, 0, &e, NULL, why, sizeof(why)), 0);
			expr_free(e);
		} else {
			assert_int_equal(compile(src, 0, &e, NULL, why, sizeof(why)), -1);
			assert_string_equal(why, "column 33: nested too deep (over 32 levels)");
		}
	}
	/* '!' and calls count too */
	memset(src, '!', 40);
	memcpy(src + 40, "true", 5);
	assert_int_equal(compile(src, 0, &e, NULL, why, sizeof(why)), -1);
	assert_string_equal(why, "column 33: nested too deep (over 32 levels)");
	{
		size_t o = 0;

		for (d = 0; d < 33; d++)
			o += (size_t)snprintf(src + o, sizeof(src) - o, "lower(");
		o += (size_t)snprintf(src + o, sizeof(src) - o, "'a'");
		for (d = 0; d < 33; d++)
			src[o++] = ')';
		src[o] = '\0';
		assert_int_equal(compile(src, 0, &e, NULL, why, sizeof(why)), -1);
		assert_string_equal(why, "column 193: nested too deep (over 32 levels)");
	}
	/* a long chain is not deep: 1000 additions compile and evaluate */
	{
		size_t o = 0;
		struct expr_arena a = EXPR_ARENA_INIT(1024);

		o += (size_t)snprintf(src + o, sizeof(src) - o, "1");
		for (d = 0; d < 999; d++)
			o += (size_t)snprintf(src + o, sizeof(src) - o, "+1");
		assert_int_equal(compile(src, 0, &e, NULL, why, sizeof(why)), 0);
		assert_int_equal(expr_eval(e, resolve, NULL, &a, &v), EXPR_OK);
		assert_int_equal(v.i, 1000);
		expr_free(e);
		expr_arena_release(&a);
	}
	/* size: EXPR_MAX_SOURCE bytes compile (spaces around a value), one more does not */
	memset(src, ' ', EXPR_MAX_SOURCE + 1);
	src[0] = '1';
	src[EXPR_MAX_SOURCE] = '\0';
	assert_int_equal(compile(src, 0, &e, NULL, why, sizeof(why)), 0);
	expr_free(e);
	src[EXPR_MAX_SOURCE] = ' ';
	src[EXPR_MAX_SOURCE + 1] = '\0';
	assert_int_equal(compile(src, 0, &e, NULL, why, sizeof(why)), -1);
	assert_string_equal(why, "expression over 4096 bytes");
}

/* Evaluates s with a budget of max bytes; returns the status. */
static enum expr_status eval_budget(const char *s, size_t max, char *got, size_t cap)
{
	struct expr *e = NULL;
	struct expr_arena a = EXPR_ARENA_INIT(max);
	struct expr_value v;
	char why[200];
	enum expr_status st;

	if (compile(s, 0, &e, NULL, why, sizeof(why)) != 0)
		fail_msg("'%s': %s", s, why);
	st = expr_eval(e, resolve, NULL, &a, &v);
	if (st == EXPR_OK && got != NULL)
		show(&v, got, cap);
	assert_true(a.used <= max);
	expr_arena_release(&a);
	expr_free(e);
	return st;
}

static void test_budget(void **state)
{
	char got[256];

	(void)state;
	/* borrowed values and literals cost nothing */
	assert_int_equal(eval_budget("${request.body}", 0, NULL, 0), EXPR_OK);
	assert_int_equal(eval_budget("substring(${request.body}, 1, 3)", 0, got, sizeof(got)), EXPR_OK);
	assert_string_equal(got, "\"a\"");
	/* made strings do, exactly their length */
	assert_int_equal(eval_budget("'abc' + 'def'", 6, got, sizeof(got)), EXPR_OK);
	assert_string_equal(got, "abcdef");
	assert_int_equal(eval_budget("'abc' + 'def'", 5, NULL, 0), EXPR_TOO_LONG);
	assert_int_equal(eval_budget("upper('abc')", 2, NULL, 0), EXPR_TOO_LONG);
	assert_int_equal(eval_budget("base64('abc')", 3, NULL, 0), EXPR_TOO_LONG);
	assert_int_equal(eval_budget("base64('abc')", 4, NULL, 0), EXPR_OK);
	/* a nest that multiplies by ten each level is charged every level:
	 * 100 + 1000 + 10000 bytes */
	assert_int_equal(eval_budget("replace(replace(replace('aaaaaaaaaa', 'a', 'aaaaaaaaaa'), "
				     "'a', 'aaaaaaaaaa'), 'a', 'aaaaaaaaaa')", 11099, NULL, 0),
			 EXPR_TOO_LONG);
	assert_int_equal(eval_budget("length(replace(replace(replace('aaaaaaaaaa', 'a', "
				     "'aaaaaaaaaa'), 'a', 'aaaaaaaaaa'), 'a', 'aaaaaaaaaa'))", 11100,
				     got, sizeof(got)), EXPR_OK);
	assert_string_equal(got, "10000");
	assert_int_equal(eval_budget("replace('aaaa', 'a', 'bbbb')", 15, NULL, 0), EXPR_TOO_LONG);
	assert_int_equal(eval_budget("replace('aaaa', 'a', 'bbbb')", 16, got, sizeof(got)), EXPR_OK);
	assert_string_equal(got, "bbbbbbbbbbbbbbbb");
	/* json() charges its input */
	assert_int_equal(eval_budget("json(${request.body}, 'a.b[0].c')", sizeof(body) - 2, NULL, 0),
			 EXPR_TOO_LONG);
	assert_int_equal(eval_budget("json(${request.body}, 'a.b[0].c')", 200, got, sizeof(got)),
			 EXPR_OK);
	assert_string_equal(got, "deep");
	/* integer overflow is an evaluation error, not a wrap */
	assert_int_equal(eval_budget("999999999999999999 + 999999999999999999 + 999999999999999999 + "
				     "999999999999999999 + 999999999999999999 + 999999999999999999 + "
				     "999999999999999999 + 999999999999999999 + 999999999999999999 + "
				     "999999999999999999", 0, NULL, 0), EXPR_OVERFLOW);
	assert_string_equal(expr_status_str(EXPR_TOO_LONG), "expression value over its byte budget");
	/* matches() is charged its steps: a long subject and a large program
	 * stop at the work limit, and an anchored pattern stops early */
	{
		struct expr *e = NULL;
		struct expr_arena a = EXPR_ARENA_INIT(0);
		struct expr_value v;
		char why[200];

		assert_int_equal(compile("matches(${request.body}, '(a|b|c|d)*x{1,200}y') || "
					 "matches(${request.body}, '(a|b|c|d)*x{1,200}y')", 0, &e,
					 NULL, why, sizeof(why)), 0);
		a.max_work = 1000;
		assert_int_equal(expr_eval(e, resolve, NULL, &a, &v), EXPR_TOO_SLOW);
		expr_arena_release(&a);
		assert_int_equal(a.work, 0);
		a.max_work = EXPR_MAX_WORK;
		assert_int_equal(expr_eval(e, resolve, NULL, &a, &v), EXPR_OK);
		assert_false(v.b);
		assert_true(a.work > 1000);
		expr_arena_release(&a);
		expr_free(e);
		assert_string_equal(expr_status_str(EXPR_TOO_SLOW),
				    "expression evaluation over its work limit");
	}
	{
		struct regex *re = NULL;
		char why[200], s[10000];
		unsigned long steps = 0;

		memset(s, 'a', sizeof(s));
		assert_int_equal(regex_compile("^b", 2, &re, why, sizeof(why)), 0);
		assert_int_equal(regex_search(re, s, sizeof(s), 0, &steps), 0);
		assert_true(steps < 10);
		assert_int_equal(regex_search(re, s, sizeof(s), 5, &steps), 0);
		regex_free(re);
		assert_int_equal(regex_compile("b", 1, &re, why, sizeof(why)), 0);
		assert_int_equal(regex_search(re, s, sizeof(s), 100, &steps), -2);
		assert_true(steps > 100 && steps < 100 + 2 * 2 + 2);
		regex_free(re);
	}
	/* json nested deeper than its limit is '' */
	{
		char src[200];
		size_t o = 0;

		o += (size_t)snprintf(src + o, sizeof(src) - o, "json('");
		for (int d = 0; d < 40; d++)
			src[o++] = '[';
		for (int d = 0; d < 40; d++)
			src[o++] = ']';
		snprintf(src + o, sizeof(src) - o, "', '')");
		assert_int_equal(eval_budget(src, 1000, got, sizeof(got)), EXPR_OK);
		assert_string_equal(got, "");
	}
}

/* --- regex --------------------------------------------------------------- */

struct re_case {
	const char *pat;
	const char *subject;
	int want;
};

static const struct re_case re_cases[] = {
	{ "abc", "abc", 1 },
	{ "abc", "xxabcxx", 1 },
	{ "abc", "abx", 0 },
	{ "", "", 1 },
	{ "", "anything", 1 },
	{ "^abc", "abcd", 1 },
	{ "^abc", "xabc", 0 },
	{ "abc$", "xabc", 1 },
	{ "abc$", "abcx", 0 },
	{ "^$", "", 1 },
	{ "^$", "a", 0 },
	{ "a.c", "abc", 1 },
	{ "a.c", "ac", 0 },
	{ "a.c", "a\nc", 1 },
	{ "[abc]", "xxbxx", 1 },
	{ "[abc]", "xyz", 0 },
	{ "^[a-z]+$", "hello", 1 },
	{ "^[a-z]+$", "Hello", 0 },
	{ "[^0-9]", "123", 0 },
	{ "[^0-9]", "12a3", 1 },
	{ "^[]a]+$", "]a]", 1 },
	{ "^[^]a]+$", "bcd", 1 },
	{ "^[^]a]+$", "b]d", 0 },
	{ "^[a-]+$", "a-a", 1 },
	{ "^[[:digit:]]+$", "0123", 1 },
	{ "^[[:alpha:][:digit:]_]+$", "ab_12", 1 },
	{ "^[[:upper:]]", "abc", 0 },
	{ "^[[:space:]]*x", " \t x", 1 },
	{ "^[[:xdigit:]]+$", "DEADbeef09", 1 },
	{ "^[[:punct:]]+$", "!?.", 1 },
	{ "^a*$", "", 1 },
	{ "^a*$", "aaaa", 1 },
	{ "^a*$", "aaba", 0 },
	{ "^a+$", "", 0 },
	{ "^a+$", "aaa", 1 },
	{ "^ab?c$", "ac", 1 },
	{ "^ab?c$", "abc", 1 },
	{ "^ab?c$", "abbc", 0 },
	{ "^a{3}$", "aaa", 1 },
	{ "^a{3}$", "aa", 0 },
	{ "^a{3}$", "aaaa", 0 },
	{ "^a{2,}$", "a", 0 },
	{ "^a{2,}$", "aaaaa", 1 },
	{ "^a{1,3}$", "", 0 },
	{ "^a{1,3}$", "aaa", 1 },
	{ "^a{1,3}$", "aaaa", 0 },
	{ "^a{0,2}b$", "b", 1 },
	{ "^(ab){2}$", "abab", 1 },
	{ "^(ab){2}$", "ababab", 0 },
	{ "^(a{1,2}b){2,3}$", "abaab", 1 },
	{ "^(a{1,2}b){2,3}$", "abaabab", 1 },
	{ "^(a{1,2}b){2,3}$", "ab", 0 },
	{ "^(a{1,2}b){2,3}$", "aaabab", 0 },
	{ "cat|dog", "hotdog", 1 },
	{ "cat|dog", "cow", 0 },
	{ "^(cat|dog)s?$", "cats", 1 },
	{ "^(cat|dog)s?$", "dogsx", 0 },
	{ "^(|a)b$", "b", 1 },
	{ "^(|a)b$", "ab", 1 },
	{ "a\\.b", "a.b", 1 },
	{ "a\\.b", "axb", 0 },
	{ "\\$", "cost $5", 1 },
	{ "\\(x\\)", "f(x)", 1 },
	{ "^/orders/[0-9]+(/items)?$", "/orders/17/items", 1 },
	{ "^/orders/[0-9]+(/items)?$", "/orders/17/other", 0 },
	{ "^application/(.*\\+)?json", "application/problem+json", 1 },
	{ "^Bearer [A-Za-z0-9._-]+$", "Bearer ab.c-d_e", 1 },
	{ "(a*)*b", "aaaaab", 1 },
	{ "(a*)*b", "aaaaa", 0 },
	{ "(a|aa)*c", "aaaac", 1 },
	{ "(a|aa)*c", "aaaa", 0 },
	{ "((a*)*)*$", "aaa", 1 },
	{ "x*", "", 1 },
	{ "a^b", "a^b", 0 },
};

static void test_regex(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(re_cases) / sizeof(re_cases[0]); i++) {
		const struct re_case *c = &re_cases[i];
		struct regex *re = NULL;
		char why[200];
		size_t n = strlen(c->subject);
		char *s = malloc(n ? n : 1);
		int r;

		assert_non_null(s);
		memcpy(s, c->subject, n);
		if (regex_compile(c->pat, strlen(c->pat), &re, why, sizeof(why)) != 0)
			fail_msg("'%s': %s", c->pat, why);
		r = regex_search(re, s, n, 0, NULL);
		if (r != c->want)
			fail_msg("'%s' on '%s': %d, want %d", c->pat, c->subject, r, c->want);
		free(s);
		regex_free(re);
	}
}

static const struct error_case re_errors[] = {
	{ "(a", "column 3: missing ')'" },
	{ "a)", "column 2: unmatched ')'" },
	{ "*a", "column 1: nothing to repeat" },
	{ "a|*", "column 3: nothing to repeat" },
	{ "(a)\\1", "column 4: back-references are not supported" },
	{ "\\d", "column 1: unsupported escape (only punctuation may follow '\\')" },
	{ "a\\", "column 2: trailing '\\'" },
	{ "(?i)a", "column 1: '(?' is not supported" },
	{ "[abc", "column 5: unterminated '['" },
	{ "[z-a]", "column 3: range out of order" },
	{ "[[:word:]]", "column 2: unknown character class" },
	{ "[[=a=]]", "column 2: collating elements and equivalence classes are not supported" },
	{ "a{256}", "column 5: repeat count over 255" },
	{ "a{3,2}", "column 6: repeat bounds out of order" },
	{ "a{x}", "column 3: expected a number after '{'" },
	{ "a{2", "column 4: expected '}'" },
	{ "(((((((((((((((((((((((((((((((((a)))))))))))))))))))))))))))))))))",
	  "column 33: groups nested too deep" },
	{ "(a{100}){100}", "pattern too large once repeats are expanded (over 2048 instructions)" },
	{ "((a{0,255}){0,255})", "pattern too large once repeats are expanded (over 2048 instructions)" },
	{ "a**", "column 3: a repeat cannot repeat a repeat (put it in a group)" },
	{ "a+?", "column 3: a repeat cannot repeat a repeat (put it in a group)" },
	{ "a{2}{3}", "column 7: a repeat cannot repeat a repeat (put it in a group)" },
	/* an empty body emits nothing, so only the work cap stops this */
	{ "((((()){255}){255}){255}){255}", "pattern too complex once repeats are expanded" },
};

/* Long flat patterns (a concatenation, an alternation) compile without deep
 * recursion and match as expected. */
static void test_regex_long(void **state)
{
	char pat[4200];
	struct regex *re = NULL;
	char why[200];
	size_t o = 0;

	(void)state;
	memset(pat, 'a', 2000);
	assert_int_equal(regex_compile(pat, 2000, &re, why, sizeof(why)), 0);
	assert_int_equal(regex_search(re, pat, 2000, 0, NULL), 1);
	assert_int_equal(regex_search(re, pat, 1999, 0, NULL), 0);
	regex_free(re);
	for (int i = 0; i < 250; i++)
		o += (size_t)snprintf(pat + o, sizeof(pat) - o, "%sw%d", i ? "|" : "", i);
	assert_int_equal(regex_compile(pat, o, &re, why, sizeof(why)), 0);
	assert_int_equal(regex_search(re, "xx w249 xx", 10, 0, NULL), 1);
	assert_int_equal(regex_search(re, "xx w0 xx", 8, 0, NULL), 1);
	assert_int_equal(regex_search(re, "xx w250", 7, 0, NULL), 1);	/* w25 */
	assert_int_equal(regex_search(re, "xx wx", 5, 0, NULL), 0);
	regex_free(re);
	/* alternation inside repeats and groups, patched to the right ends */
	assert_int_equal(regex_compile("^((a|b)(c|d)|e){2}$", 19, &re, why, sizeof(why)), 0);
	assert_int_equal(regex_search(re, "acbd", 4, 0, NULL), 1);
	assert_int_equal(regex_search(re, "ace", 3, 0, NULL), 1);
	assert_int_equal(regex_search(re, "ee", 2, 0, NULL), 1);
	assert_int_equal(regex_search(re, "eac", 3, 0, NULL), 1);
	assert_int_equal(regex_search(re, "eab", 3, 0, NULL), 0);
	assert_int_equal(regex_search(re, "e", 1, 0, NULL), 0);
	regex_free(re);
}

static void test_regex_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(re_errors) / sizeof(re_errors[0]); i++) {
		const struct error_case *c = &re_errors[i];
		struct regex *re = (struct regex *)1;
		char why[200] = "";

		if (regex_compile(c->src, strlen(c->src), &re, why, sizeof(why)) == 0)
			fail_msg("'%s' compiled", c->src);
		assert_null(re);
		if (strcmp(why, c->want) != 0)
			fail_msg("'%s': got \"%s\", want \"%s\"", c->src, why, c->want);
	}
}

/* Pathological patterns on long subjects: the work is bounded by
 * (n + 1) * 2 * program size steps, whatever the pattern; a backtracking
 * engine takes exponential time on these. */
static void test_regex_linear(void **state)
{
	static const char *pats[] = { "(a*)*b", "(a|aa)*c", "(a+a+)+b", "^(a|a?)+$x", "(.*)*x",
				      "(a{0,20}){0,20}b" };
	size_t n = 20000;
	char *s = malloc(n);

	(void)state;
	assert_non_null(s);
	memset(s, 'a', n);
	for (size_t i = 0; i < sizeof(pats) / sizeof(pats[0]); i++) {
		struct regex *re = NULL;
		char why[200];
		unsigned long steps = 0;

		if (regex_compile(pats[i], strlen(pats[i]), &re, why, sizeof(why)) != 0)
			fail_msg("'%s': %s", pats[i], why);
		assert_int_equal(regex_search(re, s, n, 0, &steps), 0);
		if (steps > (n + 1) * 2 * regex_size(re))
			fail_msg("'%s': %lu steps over the bound %zu", pats[i], steps,
				 (n + 1) * 2 * regex_size(re));
		/* and small in absolute terms for these small programs */
		assert_true(steps < 50UL * 1000 * 1000);
		regex_free(re);
	}
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_eval),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_roots),
		cmocka_unit_test(test_stop_paren),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_budget),
		cmocka_unit_test(test_regex),
		cmocka_unit_test(test_regex_errors),
		cmocka_unit_test(test_regex_linear),
		cmocka_unit_test(test_regex_long),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
