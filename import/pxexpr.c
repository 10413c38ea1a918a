/*
 * pxexpr — px_expr(): APIM C# policy expressions → hostgate expressions, by
 * the table of docs/expressions.md and nothing else (policyxml.h). A small
 * recursive-descent reader of the C# subset that table covers; each node
 * becomes its hostgate text and a type (string, integer, boolean), so that
 * `"id-" + n` can become `'id-' + string(n)` and `==` between a string and
 * an integer is refused as hostgate's loader would refuse it.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "import/policyxml.h"

enum ty { T_STR, T_INT, T_BOOL };

struct val {
	char *s;		/* hostgate text, owned */
	enum ty ty;
	int bare;		/* exactly one ${...} */
};

struct px {
	const char *p, *end;
	char *why;
	size_t whylen;
	int failed;
	int depth;
};

static void S_fail(struct px *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void S_fail(struct px *x, const char *fmt, ...)
{
	va_list ap;

	if (x->failed)
		return;
	x->failed = 1;
	va_start(ap, fmt);
	vsnprintf(x->why, x->whylen, fmt, ap);
	va_end(ap);
}

static char *S_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *S_fmt(const char *fmt, ...)
{
	va_list ap;
	int n;
	char *s;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	s = malloc((size_t)n + 1);
	if (!s)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

/* how much of the rest to quote in a message: the input is not NUL-terminated */
static int S_left(const struct px *x)
{
	return x->end - x->p > 20 ? 20 : (int)(x->end - x->p);
}

static void S_ws(struct px *x)
{
	while (x->p < x->end && isspace((unsigned char)*x->p))
		x->p++;
}

static int S_peek(struct px *x, const char *tok)
{
	size_t n = strlen(tok);

	S_ws(x);
	return (size_t)(x->end - x->p) >= n && memcmp(x->p, tok, n) == 0;
}

static int S_eat(struct px *x, const char *tok)
{
	if (!S_peek(x, tok))
		return 0;
	x->p += strlen(tok);
	return 1;
}

static int S_expect(struct px *x, const char *tok)
{
	if (S_eat(x, tok))
		return 0;
	S_fail(x, "expected '%s' at '%.*s'", tok, S_left(x), x->p);
	return -1;
}

/* an identifier, copied into buf (cap n): 0 or -1 */
static int S_ident(struct px *x, char *buf, size_t n)
{
	size_t i = 0;

	S_ws(x);
	if (x->p >= x->end || !(isalpha((unsigned char)*x->p) || *x->p == '_'))
		return -1;
	while (x->p < x->end && (isalnum((unsigned char)*x->p) || *x->p == '_')) {
		if (i + 1 < n)
			buf[i++] = *x->p;
		x->p++;
	}
	buf[i] = '\0';
	return 0;
}

/* A C# string literal "..." (simple escapes only), raw bytes into *out. */
static int S_cstring(struct px *x, char **out)
{
	const char *q;
	char *s, *w;

	S_ws(x);
	if (x->p >= x->end || *x->p != '"')
		return -1;
	q = ++x->p;
	s = malloc((size_t)(x->end - q) + 1);
	if (!s) {
		S_fail(x, "out of memory");
		return -1;
	}
	w = s;
	while (x->p < x->end && *x->p != '"') {
		if (*x->p == '\\') {
			x->p++;
			if (x->p >= x->end || (*x->p != '"' && *x->p != '\\' && *x->p != '\'')) {
				S_fail(x, "the escape in a C# string is not importable (only \\\" \\\\ \\')");
				free(s);
				return -1;
			}
		}
		*w++ = *x->p++;
	}
	if (x->p >= x->end) {
		S_fail(x, "a C# string never ends");
		free(s);
		return -1;
	}
	x->p++;
	*w = '\0';
	*out = s;
	return 0;
}

/* 'text' with quotes doubled, as hostgate writes a string */
static char *S_quote(const char *s)
{
	size_t n = 2, i;
	char *o, *w;

	for (i = 0; s[i]; i++)
		n += s[i] == '\'' ? 2 : 1;
	o = malloc(n + 1);
	if (!o)
		return NULL;
	w = o;
	*w++ = '\'';
	for (i = 0; s[i]; i++) {
		if (s[i] == '\'')
			*w++ = '\'';
		*w++ = s[i];
	}
	*w++ = '\'';
	*w = '\0';
	return o;
}

static int S_name_ok(const char *s, int header)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > 80)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (isalnum(c) || c == '-' || c == '_' || (header && c == '.'))
			continue;
		return 0;
	}
	return 1;
}

static struct val S_mk(char *s, enum ty ty, int bare)
{
	struct val v = { s, ty, bare };
	return v;
}

static struct val S_none(void)
{
	return S_mk(NULL, T_STR, 0);
}

static struct val S_expr(struct px *x);

/* ("a") or ("a", "d") : the name and the default (NULL when ""), 0 or -1 */
static int S_args_name_default(struct px *x, char **name, char **dflt)
{
	*name = *dflt = NULL;
	if (S_expect(x, "(") || S_cstring(x, name))
		goto bad;
	if (S_eat(x, ",")) {
		if (S_cstring(x, dflt))
			goto bad;
		if (!**dflt) {
			free(*dflt);
			*dflt = NULL;
		}
	}
	if (S_expect(x, ")"))
		goto bad;
	return 0;
bad:
	S_fail(x, "expected (\"name\") or (\"name\", \"default\") with string literals");
	free(*name);
	free(*dflt);
	*name = *dflt = NULL;
	return -1;
}

/* ${root.name} or default(${root.name}, 'd') */
static struct val S_value_with_default(struct px *x, const char *root, char *name, char *dflt,
				       int header)
{
	char *s = NULL, *q = NULL;
	struct val v = S_none();

	if (!S_name_ok(name, header)) {
		S_fail(x, "the name '%s' is not importable (1-80 of A-Z a-z 0-9 - _%s)", name,
		       header ? " ." : "");
		goto out;
	}
	if (!dflt) {
		s = S_fmt("${%s.%s}", root, name);
		v = S_mk(s, T_STR, 1);
		goto out;
	}
	q = S_quote(dflt);
	if (q)
		s = S_fmt("default(${%s.%s}, %s)", root, name, q);
	v = S_mk(s, T_STR, 0);
out:
	if (!v.s && !x->failed)
		S_fail(x, "out of memory");
	free(name);
	free(dflt);
	free(q);
	return v;
}

/* context.… — the accessors of the table */
static struct val S_context(struct px *x)
{
	char a[64], b[64], c[64];
	char *name = NULL, *dflt = NULL;

	if (!S_eat(x, ".") || S_ident(x, a, sizeof(a)))
		goto unknown;
	if (!strcmp(a, "RequestId"))
		return S_mk(strdup("${context.request_id}"), T_STR, 1);
	if (!strcmp(a, "Subscription") || !strcmp(a, "Product") || !strcmp(a, "Api") ||
	    !strcmp(a, "Operation")) {
		if (!S_eat(x, ".") || S_ident(x, b, sizeof(b)) || strcmp(b, "Id"))
			goto unknown;
		if (!strcmp(a, "Subscription"))
			return S_mk(strdup("${subscription.id}"), T_STR, 1);
		if (!strcmp(a, "Product"))
			return S_mk(strdup("${product.id}"), T_STR, 1);
		if (!strcmp(a, "Api"))
			return S_mk(strdup("${api.id}"), T_STR, 1);
		return S_mk(strdup("${operation.id}"), T_STR, 1);
	}
	if (!strcmp(a, "Variables")) {
		if (!S_eat(x, ".") || S_ident(x, b, sizeof(b)))
			goto unknown;
		if (!strcmp(b, "ContainsKey")) {
			if (S_args_name_default(x, &name, &dflt))
				return S_none();
			if (dflt)
				goto unknown;
			struct val v = S_value_with_default(x, "var", name, NULL, 0);
			char *s = v.s ? S_fmt("!isEmpty(%s)", v.s) : NULL;
			free(v.s);
			return S_mk(s, T_BOOL, 0);
		}
		if (strcmp(b, "GetValueOrDefault"))
			goto unknown;
		if (!S_eat(x, "<") || S_ident(x, c, sizeof(c)) || !S_eat(x, ">"))
			goto unknown;
		if (S_args_name_default(x, &name, &dflt))
			return S_none();
		if (!strcmp(c, "string"))
			return S_value_with_default(x, "var", name, dflt, 0);
		if (!strcmp(c, "int") && !dflt) {
			struct val v = S_value_with_default(x, "var", name, NULL, 0);
			char *s = v.s ? S_fmt("int(%s)", v.s) : NULL;
			free(v.s);
			return S_mk(s, T_INT, 0);
		}
		free(name);
		free(dflt);
		goto unknown;
	}
	if (!strcmp(a, "Request") || !strcmp(a, "Response")) {
		int req = !strcmp(a, "Request");
		if (!S_eat(x, ".") || S_ident(x, b, sizeof(b)))
			goto unknown;
		if (req && !strcmp(b, "Method"))
			return S_mk(strdup("${request.method}"), T_STR, 1);
		if (req && !strcmp(b, "IpAddress"))
			return S_mk(strdup("${request.ip}"), T_STR, 1);
		if (!req && !strcmp(b, "StatusCode"))
			return S_mk(strdup("int(${response.status})"), T_INT, 0);
		if (!strcmp(b, "Headers")) {
			if (!S_eat(x, ".") || S_ident(x, c, sizeof(c)) ||
			    strcmp(c, "GetValueOrDefault"))
				goto unknown;
			if (S_args_name_default(x, &name, &dflt))
				return S_none();
			return S_value_with_default(x, req ? "request.header" : "response.header",
						    name, dflt, 1);
		}
		if (req && !strcmp(b, "MatchedParameters")) {
			if (S_eat(x, "[")) {
				if (S_cstring(x, &name) || S_expect(x, "]")) {
					free(name);
					goto unknown;
				}
				return S_value_with_default(x, "path", name, NULL, 0);
			}
			if (!S_eat(x, ".") || S_ident(x, c, sizeof(c)) ||
			    strcmp(c, "GetValueOrDefault"))
				goto unknown;
			if (S_args_name_default(x, &name, &dflt))
				return S_none();
			return S_value_with_default(x, "path", name, dflt, 0);
		}
		if (req && !strcmp(b, "Url")) {
			if (!S_eat(x, ".") || S_ident(x, c, sizeof(c)))
				goto unknown;
			if (!strcmp(c, "Path"))
				return S_mk(strdup("${request.path}"), T_STR, 1);
			if (strcmp(c, "Query") || !S_eat(x, ".") || S_ident(x, c, sizeof(c)) ||
			    strcmp(c, "GetValueOrDefault"))
				goto unknown;
			if (S_args_name_default(x, &name, &dflt))
				return S_none();
			return S_value_with_default(x, "request.query", name, dflt, 0);
		}
		if (!strcmp(b, "Body")) {
			if (S_eat(x, ".As<string>(preserveContent:true)") ||
			    S_eat(x, ".As<string>(preserveContent: true)"))
				return S_mk(strdup(req ? "${request.body}" : "${response.body}"),
					    T_STR, 1);
			goto unknown;
		}
	}
unknown:
	S_fail(x, "this use of 'context' is not in the table of importable expressions"
	       " (docs/expressions.md)");
	return S_none();
}

/* .Method(...) on a value: the string methods of the table */
static struct val S_method(struct px *x, struct val v)
{
	char m[64];
	char *arg = NULL, *arg2 = NULL, *q = NULL, *q2 = NULL, *s = NULL;
	enum ty ty = T_STR;

	if (S_ident(x, m, sizeof(m)))
		goto bad;
	if (v.ty != T_STR && strcmp(m, "ToString"))
		goto bad;
	if (!strcmp(m, "Length")) {
		s = S_fmt("length(%s)", v.s);
		ty = T_INT;
		goto out;
	}
	if (S_expect(x, "("))
		goto bad;
	if (!strcmp(m, "ToLower") || !strcmp(m, "ToLowerInvariant") || !strcmp(m, "ToUpper") ||
	    !strcmp(m, "ToUpperInvariant") || !strcmp(m, "ToString")) {
		if (S_expect(x, ")"))
			goto bad;
		if (!strcmp(m, "ToString"))
			s = v.ty == T_STR ? strdup(v.s) : S_fmt("string(%s)", v.s);
		else
			s = S_fmt("%s(%s)", m[2] == 'L' ? "lower" : "upper", v.s);
		goto out;
	}
	if (!strcmp(m, "Contains") || !strcmp(m, "StartsWith") || !strcmp(m, "EndsWith")) {
		if (S_cstring(x, &arg) || S_expect(x, ")"))
			goto bad;
		q = S_quote(arg);
		s = q ? S_fmt("%s(%s, %s)", !strcmp(m, "Contains") ? "contains" :
			      !strcmp(m, "StartsWith") ? "startsWith" : "endsWith", v.s, q) : NULL;
		ty = T_BOOL;
		goto out;
	}
	if (!strcmp(m, "Replace")) {
		if (S_cstring(x, &arg) || S_expect(x, ",") || S_cstring(x, &arg2) ||
		    S_expect(x, ")"))
			goto bad;
		q = S_quote(arg);
		q2 = S_quote(arg2);
		s = q && q2 ? S_fmt("replace(%s, %s, %s)", v.s, q, q2) : NULL;
		goto out;
	}
	if (!strcmp(m, "Substring")) {
		struct val a = S_expr(x), b = S_none();
		if (x->failed || a.ty != T_INT) {
			free(a.s);
			goto bad;
		}
		if (S_eat(x, ",")) {
			b = S_expr(x);
			if (x->failed || b.ty != T_INT) {
				free(a.s);
				free(b.s);
				goto bad;
			}
		}
		if (S_expect(x, ")")) {
			free(a.s);
			free(b.s);
			goto bad;
		}
		s = b.s ? S_fmt("substring(%s, %s, %s)", v.s, a.s, b.s) :
			S_fmt("substring(%s, %s)", v.s, a.s);
		free(a.s);
		free(b.s);
		goto out;
	}
bad:
	S_fail(x, "the method '%s' is not in the table of importable expressions"
	       " (docs/expressions.md)", m);
out:
	free(v.s);
	free(arg);
	free(arg2);
	free(q);
	free(q2);
	if (!s && !x->failed)
		S_fail(x, "out of memory");
	return S_mk(s, ty, 0);
}

static struct val S_primary(struct px *x)
{
	char id[64];
	char *lit = NULL, *q;
	struct val v;

	if (++x->depth > 64) {
		S_fail(x, "the expression nests too deeply");
		return S_none();
	}
	S_ws(x);
	if (x->p >= x->end) {
		S_fail(x, "the expression ends early");
		return S_none();
	}
	if (*x->p == '"') {
		if (S_cstring(x, &lit))
			return S_none();
		q = S_quote(lit);
		free(lit);
		return S_mk(q, T_STR, 0);
	}
	if (isdigit((unsigned char)*x->p)) {
		const char *b = x->p;
		while (x->p < x->end && isdigit((unsigned char)*x->p))
			x->p++;
		if (x->p - b > 18) {
			S_fail(x, "the number is too long");
			return S_none();
		}
		return S_mk(strndup(b, (size_t)(x->p - b)), T_INT, 0);
	}
	if (S_eat(x, "((IResponse)context.Variables[")) {
		/* a send-request answer's status */
		char *q2;
		if (S_cstring(x, &lit) || S_expect(x, "])") || S_expect(x, ".StatusCode")) {
			free(lit);
			S_fail(x, "only ((IResponse)context.Variables[\"name\"]).StatusCode is importable");
			return S_none();
		}
		if (!S_name_ok(lit, 0)) {
			S_fail(x, "the variable name '%s' is not importable", lit);
			free(lit);
			return S_none();
		}
		q2 = S_fmt("int(${var.%s.status})", lit);
		free(lit);
		return S_mk(q2, T_INT, 0);
	}
	if (S_eat(x, "(")) {
		v = S_expr(x);
		if (x->failed || S_expect(x, ")")) {
			free(v.s);
			return S_none();
		}
		q = S_fmt("(%s)", v.s);
		free(v.s);
		return S_mk(q, v.ty, 0);
	}
	if (S_ident(x, id, sizeof(id))) {
		S_fail(x, "'%c' is not importable here", *x->p);
		return S_none();
	}
	if (!strcmp(id, "true") || !strcmp(id, "false"))
		return S_mk(strdup(id), T_BOOL, 0);
	if (!strcmp(id, "context"))
		return S_context(x);
	if (!strcmp(id, "string") && S_eat(x, ".IsNullOrEmpty")) {
		if (S_expect(x, "("))
			return S_none();
		v = S_expr(x);
		if (x->failed || v.ty != T_STR || S_expect(x, ")")) {
			free(v.s);
			S_fail(x, "string.IsNullOrEmpty takes one string");
			return S_none();
		}
		q = S_fmt("isEmpty(%s)", v.s);
		free(v.s);
		return S_mk(q, T_BOOL, 0);
	}
	if ((!strcmp(id, "int") && S_eat(x, ".Parse")) ||
	    (!strcmp(id, "Convert") && S_eat(x, ".ToInt32"))) {
		if (S_expect(x, "("))
			return S_none();
		v = S_expr(x);
		if (x->failed || S_expect(x, ")")) {
			free(v.s);
			return S_none();
		}
		q = S_fmt("int(%s)", v.s);
		free(v.s);
		return S_mk(q, T_INT, 0);
	}
	if (!strcmp(id, "Convert") && S_eat(x, ".ToString")) {
		if (S_expect(x, "("))
			return S_none();
		v = S_expr(x);
		if (x->failed || S_expect(x, ")")) {
			free(v.s);
			return S_none();
		}
		q = v.ty == T_STR ? strdup(v.s) : S_fmt("string(%s)", v.s);
		free(v.s);
		return S_mk(q, T_STR, 0);
	}
	if (!strcmp(id, "Regex") && S_eat(x, ".IsMatch")) {
		if (S_expect(x, "("))
			return S_none();
		v = S_expr(x);
		if (x->failed || v.ty != T_STR || S_expect(x, ",") || S_cstring(x, &lit) ||
		    S_expect(x, ")")) {
			free(v.s);
			free(lit);
			S_fail(x, "Regex.IsMatch takes a string and a literal pattern");
			return S_none();
		}
		if (strchr(lit, '\\')) {
			free(v.s);
			free(lit);
			S_fail(x, "the pattern has a '\\' class or escape: hostgate's patterns are POSIX"
			       " ERE (write [0-9], not \\d)");
			return S_none();
		}
		q = S_quote(lit);
		free(lit);
		lit = q ? S_fmt("matches(%s, %s)", v.s, q) : NULL;
		free(q);
		free(v.s);
		return S_mk(lit, T_BOOL, 0);
	}
	S_fail(x, "'%s' is not in the table of importable expressions (docs/expressions.md)", id);
	return S_none();
}

static struct val S_postfix(struct px *x)
{
	struct val v = S_primary(x);

	while (!x->failed && S_peek(x, ".") ) {
		x->p++;
		v = S_method(x, v);
	}
	return v;
}

static struct val S_unary(struct px *x)
{
	struct val v;
	char *s;

	if (S_peek(x, "!") && !S_peek(x, "!=")) {
		x->p++;
		v = S_unary(x);
		if (x->failed)
			return v;
		if (v.ty != T_BOOL) {
			free(v.s);
			S_fail(x, "'!' of something that is not a boolean");
			return S_none();
		}
		s = S_fmt("!%s", v.s);
		free(v.s);
		return S_mk(s, T_BOOL, 0);
	}
	return S_postfix(x);
}

static struct val S_add(struct px *x)
{
	struct val a = S_unary(x), b;
	char *s, *l, *r;

	while (!x->failed && S_peek(x, "+")) {
		x->p++;
		b = S_unary(x);
		if (x->failed) {
			free(b.s);
			break;
		}
		if (a.ty == T_BOOL || b.ty == T_BOOL) {
			S_fail(x, "'+' of a boolean is not importable");
			free(b.s);
			break;
		}
		/* C# makes string + number a concatenation: say so */
		l = a.ty == T_INT && b.ty == T_STR ? S_fmt("string(%s)", a.s) : strdup(a.s);
		r = b.ty == T_INT && a.ty == T_STR ? S_fmt("string(%s)", b.s) : strdup(b.s);
		s = l && r ? S_fmt("%s + %s", l, r) : NULL;
		a.ty = a.ty == T_INT && b.ty == T_INT ? T_INT : T_STR;
		free(l);
		free(r);
		free(a.s);
		free(b.s);
		a.s = s;
		a.bare = 0;
	}
	return a;
}

static struct val S_cmp(struct px *x)
{
	static const char *const ops[] = { "==", "!=", "<=", ">=", "<", ">" };
	struct val a = S_add(x), b;
	size_t i;
	char *s;

	if (x->failed)
		return a;
	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (S_peek(x, ops[i]) && !(i >= 4 && S_peek(x, "<<")))
			break;
	if (i == sizeof(ops) / sizeof(ops[0]))
		return a;
	x->p += strlen(ops[i]);
	b = S_add(x);
	if (x->failed) {
		free(a.s);
		return b;
	}
	if (a.ty != b.ty || (i >= 2 && a.ty != T_INT)) {
		S_fail(x, "'%s' between a %s and a %s is not importable", ops[i],
		       a.ty == T_STR ? "string" : a.ty == T_INT ? "number" : "boolean",
		       b.ty == T_STR ? "string" : b.ty == T_INT ? "number" : "boolean");
		free(a.s);
		free(b.s);
		return S_none();
	}
	s = S_fmt("%s %s %s", a.s, ops[i], b.s);
	free(a.s);
	free(b.s);
	return S_mk(s, T_BOOL, 0);
}

static struct val S_logic(struct px *x, int level)
{
	const char *op = level ? "||" : "&&";
	struct val a = level ? S_logic(x, 0) : S_cmp(x), b;
	char *s;

	while (!x->failed && S_peek(x, op)) {
		x->p += 2;
		b = level ? S_logic(x, 0) : S_cmp(x);
		if (x->failed) {
			free(b.s);
			break;
		}
		if (a.ty != T_BOOL || b.ty != T_BOOL) {
			S_fail(x, "'%s' of something that is not a boolean", op);
			free(b.s);
			break;
		}
		s = S_fmt("%s %s %s", a.s, op, b.s);
		free(a.s);
		free(b.s);
		a = S_mk(s, T_BOOL, 0);
	}
	return a;
}

static struct val S_expr(struct px *x)
{
	struct val a = S_logic(x, 1), b;
	char *s;

	if (x->failed)
		return a;
	if (S_peek(x, "??")) {
		x->p += 2;
		b = S_expr(x);
		if (x->failed || a.ty != T_STR || b.ty != T_STR) {
			S_fail(x, "'?" "?' between strings only");
			free(a.s);
			free(b.s);
			return S_none();
		}
		s = S_fmt("default(%s, %s)", a.s, b.s);
		free(a.s);
		free(b.s);
		return S_mk(s, T_STR, 0);
	}
	if (S_peek(x, "?")) {
		S_fail(x, "the conditional 'c ? a : b' is not importable (a choose policy does that)");
		free(a.s);
		return S_none();
	}
	return a;
}

int px_expr(const char *cs, size_t len, char **out, int *is_value, char *why, size_t whylen)
{
	struct px x = { cs, cs + len, why, whylen, 0, 0 };
	struct val v;

	*out = NULL;
	*is_value = 0;
	if (len > PX_MAX_EXPR_BYTES) {
		snprintf(why, whylen, "the expression is longer than %u bytes", PX_MAX_EXPR_BYTES);
		return -1;
	}
	v = S_expr(&x);
	S_ws(&x);
	if (!x.failed && x.p < x.end)
		S_fail(&x, "'%.*s' is not importable here", S_left(&x), x.p);
	if (!x.failed && !v.s)
		S_fail(&x, "out of memory");
	if (x.failed) {
		free(v.s);
		return -1;
	}
	*out = v.s;
	*is_value = v.bare;
	return 0;
}
