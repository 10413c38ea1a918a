/*
 * expr — see expr.h. A recursive-descent parser builds a tree of typed nodes
 * (type-checked as they are built, so every error has its column); the
 * evaluator walks the tree. Chains of '+', '&&' and '||' are one node with
 * many children, so a long chain does not make a deep tree.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "policy/expr.h"
#include "policy/regex.h"
#include "policy/template.h"

#define JSON_MAX_DEPTH 32	/* nesting json() will parse */

enum nop { N_STR, N_INT, N_BOOL, N_VALUE, N_NOT, N_ADD, N_AND, N_OR, N_CMP, N_CALL };

enum fn {
	F_LOWER, F_UPPER, F_LENGTH, F_CONTAINS, F_STARTS, F_ENDS, F_ISEMPTY, F_DEFAULT,
	F_SUBSTRING, F_REPLACE, F_MATCHES, F_INT, F_STRING, F_JSON, F_BASE64, F_UNBASE64,
};

enum tok {
	T_EOF, T_STR, T_INT, T_VALUE, T_IDENT, T_LP, T_RP, T_COMMA, T_NOT, T_AND, T_OR,
	T_PLUS, T_EQ, T_NE, T_LT, T_LE, T_GT, T_GE,
};

struct jseg {
	char *name;		/* NULL for an index */
	size_t len;
	size_t index;
};

struct enode {
	enum nop op;
	enum expr_type type;
	int kid;		/* first child, -1 for none */
	int next;		/* next sibling, -1 for none */
	int nkids;
	enum tok cmp;		/* N_CMP */
	enum fn fn;		/* N_CALL */
	int64_t i;		/* N_INT, N_BOOL */
	char *s;		/* N_STR text, N_VALUE name */
	size_t len;
	int root;		/* N_VALUE */
	struct regex *re;	/* matches() */
	struct jseg *path;	/* json() */
	size_t npath;
};

struct expr {
	struct enode *v;
	size_t n, cap;
	int top;
	unsigned long reads;	/* TPL_READS() of its values */
};

struct parser {
	const char *src;
	size_t len, pos;
	unsigned flags;
	int depth;
	struct expr *e;
	/* the current token */
	enum tok t;
	size_t tstart, tend;
	int64_t tint;
	char *why;
	size_t why_cap;
};

/* --- the tree ------------------------------------------------------------ */

static int new_node(struct parser *p, enum nop op, enum expr_type type)
{
	struct expr *e = p->e;

	if (e->n == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 16;
		struct enode *v = realloc(e->v, cap * sizeof(*v));

		if (v == NULL) {
			snprintf(p->why, p->why_cap, "out of memory");
			return -1;
		}
		e->v = v;
		e->cap = cap;
	}
	memset(&e->v[e->n], 0, sizeof(e->v[0]));
	e->v[e->n].op = op;
	e->v[e->n].type = type;
	e->v[e->n].kid = -1;
	e->v[e->n].next = -1;
	return (int)e->n++;
}

/* Appends node k to the children of node x. */
static void add_kid(struct expr *e, int x, int k)
{
	if (e->v[x].kid < 0) {
		e->v[x].kid = k;
	} else {
		int c = e->v[x].kid;

		while (e->v[c].next >= 0)
			c = e->v[c].next;
		e->v[c].next = k;
	}
	e->v[x].nkids++;
}

void expr_free(struct expr *e)
{
	if (e == NULL)
		return;
	for (size_t i = 0; i < e->n; i++) {
		free(e->v[i].s);
		regex_free(e->v[i].re);
		for (size_t j = 0; j < e->v[i].npath; j++)
			free(e->v[i].path[j].name);
		free(e->v[i].path);
	}
	free(e->v);
	free(e);
}

unsigned long expr_reads(const struct expr *e)
{
	return e->reads;
}

enum expr_type expr_type(const struct expr *e)
{
	return e->v[e->top].type;
}

/* --- the lexer ----------------------------------------------------------- */

static const char *type_name(enum expr_type t)
{
	return t == EXPR_STRING ? "string" : t == EXPR_INT ? "integer" : "boolean";
}

static int fail_at(struct parser *p, size_t at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Writes "column N: <message>" into why; returns -1 for the caller to return. */
static int fail_at(struct parser *p, size_t at, const char *fmt, ...)
{
	va_list ap;
	int l = snprintf(p->why, p->why_cap, "column %zu: ", at + 1);

	if (l > 0 && (size_t)l < p->why_cap) {
		va_start(ap, fmt);
		vsnprintf(p->why + l, p->why_cap - (size_t)l, fmt, ap);
		va_end(ap);
	}
	return -1;
}
#define FAIL(p, at, msg) fail_at((p), (at), "%s", (msg))

static int is_ident(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

static int is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* Reads the next token into p->t. Returns 0 or -1 with why. */
static int lex(struct parser *p)
{
	const char *s = p->src;
	size_t n = p->len, i = p->pos;
	unsigned char c;

	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
		i++;
	p->tstart = i;
	if (i >= n) {
		p->t = T_EOF;
		p->tend = p->pos = i;
		return 0;
	}
	c = (unsigned char)s[i];
	if (c == '\'') {
		i++;
		for (;;) {
			if (i >= n)
				return FAIL(p, p->tstart, "unterminated string (a quote inside is written '')");
			if (s[i] == '\'') {
				if (i + 1 < n && s[i + 1] == '\'') {
					i += 2;
					continue;
				}
				i++;
				break;
			}
			i++;
		}
		p->t = T_STR;
	} else if (is_digit(c) || (c == '-' && i + 1 < n && is_digit((unsigned char)s[i + 1]))) {
		int neg = c == '-';
		int64_t v = 0;
		int digits = 0;

		if (neg)
			i++;
		while (i < n && is_digit((unsigned char)s[i])) {
			if (++digits > 18)
				return FAIL(p, p->tstart, "integer literal over 18 digits");
			v = v * 10 + (s[i] - '0');
			i++;
		}
		if (i < n && is_ident((unsigned char)s[i]))
			return FAIL(p, i, "a letter right after a number");
		p->tint = neg ? -v : v;
		p->t = T_INT;
	} else if (c == '$') {
		if (i + 1 >= n || s[i + 1] != '{')
			return FAIL(p, i, "'$' must start a '${...}' value");
		i += 2;
		while (i < n && s[i] != '}')
			i++;
		if (i >= n)
			return FAIL(p, p->tstart, "unterminated '${'");
		i++;
		p->t = T_VALUE;
	} else if (is_ident(c)) {
		while (i < n && is_ident((unsigned char)s[i]))
			i++;
		p->t = T_IDENT;
	} else {
		static const struct { const char *s; enum tok t; } ops[] = {
			{ "==", T_EQ }, { "!=", T_NE }, { "<=", T_LE }, { ">=", T_GE },
			{ "&&", T_AND }, { "||", T_OR }, { "<", T_LT }, { ">", T_GT },
			{ "!", T_NOT }, { "+", T_PLUS }, { "(", T_LP }, { ")", T_RP }, { ",", T_COMMA },
		};
		size_t k;

		for (k = 0; k < sizeof(ops) / sizeof(ops[0]); k++) {
			size_t l = strlen(ops[k].s);

			if (n - i >= l && memcmp(s + i, ops[k].s, l) == 0)
				break;
		}
		if (k == sizeof(ops) / sizeof(ops[0])) {
			char q[2] = { (char)c, '\0' };

			if (c == '=' || c == '&' || c == '|')
				return fail_at(p, i, "'%s' alone is not an operator (write '%s%s')", q, q, q);
			if (c == '"')
				return FAIL(p, i, "strings are single-quoted");
			if (c < 0x20 || c >= 0x7f)
				return FAIL(p, i, "unexpected byte");
			return fail_at(p, i, "unexpected '%s'", q);
		}
		i += strlen(ops[k].s);
		p->t = ops[k].t;
	}
	p->tend = p->pos = i;
	return 0;
}

static const char *tok_text(struct parser *p, char *buf, size_t cap)
{
	size_t l = p->tend - p->tstart;

	if (p->t == T_EOF)
		return "the end";
	snprintf(buf, cap, "'%.*s'", (int)(l > 40 ? 40 : l), p->src + p->tstart);
	return buf;
}

static int unexpected(struct parser *p, const char *wanted)
{
	char buf[64];

	return fail_at(p, p->tstart, "expected %s, found %s", wanted, tok_text(p, buf, sizeof(buf)));
}

/* --- "${...}" values ----------------------------------------------------- */

/* The value token src[start..end) is "${...}": template's roots. */
static int parse_value(struct parser *p, size_t start, size_t end)
{
	enum tpl_root root;
	const char *name = NULL;
	size_t name_len = 0;
	char why[300];
	int x;

	if (tpl_parse_value(p->src + start + 2, end - start - 3, &root, &name, &name_len, why,
			    sizeof(why)) != 0)
		return fail_at(p, start, "%s", why);
	x = new_node(p, N_VALUE, EXPR_STRING);
	if (x < 0)
		return -1;
	p->e->v[x].root = (int)root;
	p->e->reads |= TPL_READS(root);
	if (name != NULL) {
		p->e->v[x].s = malloc(name_len + 1);
		if (p->e->v[x].s == NULL)
			return FAIL(p, start, "out of memory");
		memcpy(p->e->v[x].s, name, name_len);
		p->e->v[x].s[name_len] = '\0';
		p->e->v[x].len = name_len;
	}
	return x;
}

/* --- functions ----------------------------------------------------------- */

#define A_STR 0
#define A_INT 1
#define A_ANY 2		/* string, integer or boolean */
#define A_SORI 3	/* string or integer */
#define A_LIT 4		/* a string literal, compiled at load */

static const struct fninfo {
	const char *name;
	enum fn fn;
	int min, max;
	enum expr_type ret;
	int arg[3];
} fns[] = {
	{ "lower", F_LOWER, 1, 1, EXPR_STRING, { A_STR } },
	{ "upper", F_UPPER, 1, 1, EXPR_STRING, { A_STR } },
	{ "length", F_LENGTH, 1, 1, EXPR_INT, { A_STR } },
	{ "contains", F_CONTAINS, 2, 2, EXPR_BOOL, { A_STR, A_STR } },
	{ "startsWith", F_STARTS, 2, 2, EXPR_BOOL, { A_STR, A_STR } },
	{ "endsWith", F_ENDS, 2, 2, EXPR_BOOL, { A_STR, A_STR } },
	{ "isEmpty", F_ISEMPTY, 1, 1, EXPR_BOOL, { A_STR } },
	{ "default", F_DEFAULT, 2, 2, EXPR_STRING, { A_STR, A_STR } },
	{ "substring", F_SUBSTRING, 2, 3, EXPR_STRING, { A_STR, A_INT, A_INT } },
	{ "replace", F_REPLACE, 3, 3, EXPR_STRING, { A_STR, A_STR, A_STR } },
	{ "matches", F_MATCHES, 2, 2, EXPR_BOOL, { A_STR, A_LIT } },
	{ "int", F_INT, 1, 1, EXPR_INT, { A_SORI } },
	{ "string", F_STRING, 1, 1, EXPR_STRING, { A_ANY } },
	{ "json", F_JSON, 2, 2, EXPR_STRING, { A_STR, A_LIT } },
	{ "base64", F_BASE64, 1, 1, EXPR_STRING, { A_STR } },
	{ "unbase64", F_UNBASE64, 1, 1, EXPR_STRING, { A_STR } },
};

/* Compiles a json() path "a.b[0].c" (or "" for the whole document). */
static int compile_path(struct parser *p, struct enode *nd, size_t at)
{
	const char *s = nd->s;
	size_t n = nd->len, i = 0, cap = 0;

	while (i < n) {
		struct jseg seg = { NULL, 0, 0 };

		if (s[i] == '[') {
			size_t v = 0, d = 0;

			i++;
			while (i < n && is_digit((unsigned char)s[i])) {
				if (++d > 9)
					return FAIL(p, at, "json() path index over 9 digits");
				v = v * 10 + (size_t)(s[i] - '0');
				i++;
			}
			if (d == 0 || i >= n || s[i] != ']')
				return FAIL(p, at, "json() path: '[' needs digits and ']'");
			i++;
			seg.index = v;
		} else {
			size_t b;

			if (nd->npath > 0) {
				if (s[i] != '.')
					return FAIL(p, at, "json() path: expected '.' or '[' after a part");
				i++;
			}
			b = i;
			while (i < n && s[i] != '.' && s[i] != '[' && s[i] != ']')
				i++;
			if (i == b)
				return FAIL(p, at, "json() path has an empty name");
			seg.len = i - b;
			seg.name = malloc(seg.len + 1);
			if (seg.name == NULL)
				return FAIL(p, at, "out of memory");
			memcpy(seg.name, s + b, seg.len);
			seg.name[seg.len] = '\0';
		}
		if (nd->npath == cap) {
			size_t nc = cap ? cap * 2 : 4;
			struct jseg *v = realloc(nd->path, nc * sizeof(*v));

			if (v == NULL) {
				free(seg.name);
				return FAIL(p, at, "out of memory");
			}
			nd->path = v;
			cap = nc;
		}
		nd->path[nd->npath++] = seg;
	}
	return 0;
}

static int parse_or(struct parser *p);

/* After the identifier (the token is '('). */
static int parse_call(struct parser *p, size_t at, const char *name, size_t nl)
{
	const struct fninfo *f = NULL;
	int x, argc = 0;
	char nb[40];

	snprintf(nb, sizeof(nb), "%.*s", (int)(nl > 30 ? 30 : nl), name);
	for (size_t k = 0; k < sizeof(fns) / sizeof(fns[0]); k++) {
		if (strlen(fns[k].name) == nl && memcmp(fns[k].name, name, nl) == 0)
			f = &fns[k];
	}
	if (f == NULL)
		return fail_at(p, at, "unknown function '%s'", nb);
	x = new_node(p, N_CALL, f->ret);
	if (x < 0)
		return -1;
	p->e->v[x].fn = f->fn;
	if (lex(p) != 0)
		return -1;
	if (p->t != T_RP) {
		for (;;) {
			size_t aat = p->tstart;
			int a, want;
			enum expr_type t;

			if (argc == f->max)
				return fail_at(p, aat, "too many arguments to '%s'", nb);
			want = f->arg[argc];
			a = parse_or(p);
			if (a < 0)
				return -1;
			t = p->e->v[a].type;
			if (want == A_LIT) {
				struct enode *an = &p->e->v[a];
				char why[200];

				if (an->op != N_STR)
					return fail_at(p, aat, "the second argument of '%s' must be a "
						       "quoted literal", nb);
				if (f->fn == F_MATCHES &&
				    regex_compile(an->s, an->len, &an->re, why, sizeof(why)) != 0)
					return fail_at(p, aat, "bad pattern: %s", why);
				if (f->fn == F_JSON && compile_path(p, an, aat) != 0)
					return -1;
			} else if ((want == A_STR && t != EXPR_STRING) ||
				   (want == A_INT && t != EXPR_INT) ||
				   (want == A_SORI && t == EXPR_BOOL)) {
				char m[80];

				snprintf(m, sizeof(m), "argument %d of '%s'", argc + 1, nb);
				return fail_at(p, aat, "%s must be %s", m,
					       want == A_STR ? "a string" : want == A_INT ?
					       "an integer" : "a string or an integer");
			}
			add_kid(p->e, x, a);
			argc++;
			if (p->t == T_COMMA) {
				if (lex(p) != 0)
					return -1;
				continue;
			}
			if (p->t == T_RP)
				break;
			return unexpected(p, "',' or ')'");
		}
	}
	if (argc < f->min)
		return fail_at(p, at, "too few arguments to '%s'", nb);
	return lex(p) != 0 ? -1 : x;
}

/* --- the grammar ----------------------------------------------------------- */

static int enter(struct parser *p, size_t at)
{
	if (++p->depth > EXPR_MAX_DEPTH)
		return fail_at(p, at, "nested too deep (over %d levels)", EXPR_MAX_DEPTH);
	return 0;
}

static int parse_unary(struct parser *p);

static int parse_primary(struct parser *p)
{
	size_t at = p->tstart;
	int x;

	switch (p->t) {
	case T_STR: {
		size_t o = 0;

		x = new_node(p, N_STR, EXPR_STRING);
		if (x < 0)
			return -1;
		p->e->v[x].s = malloc(p->tend - p->tstart);
		if (p->e->v[x].s == NULL)
			return FAIL(p, at, "out of memory");
		for (size_t i = p->tstart + 1; i < p->tend - 1; i++) {
			p->e->v[x].s[o++] = p->src[i];
			if (p->src[i] == '\'')
				i++;
		}
		p->e->v[x].s[o] = '\0';
		p->e->v[x].len = o;
		break;
	}
	case T_INT:
		x = new_node(p, N_INT, EXPR_INT);
		if (x < 0)
			return -1;
		p->e->v[x].i = p->tint;
		break;
	case T_VALUE:
		x = parse_value(p, p->tstart, p->tend);
		if (x < 0)
			return -1;
		break;
	case T_IDENT: {
		const char *name = p->src + p->tstart;
		size_t nl = p->tend - p->tstart;

		if ((nl == 4 && memcmp(name, "true", 4) == 0) ||
		    (nl == 5 && memcmp(name, "false", 5) == 0)) {
			x = new_node(p, N_BOOL, EXPR_BOOL);
			if (x < 0)
				return -1;
			p->e->v[x].i = nl == 4;
			break;
		}
		/* look before lexing on, so "request.method" gets this
		 * message and not one about its '.' */
		{
			size_t j = p->tend;

			while (j < p->len && (p->src[j] == ' ' || p->src[j] == '\t' ||
					      p->src[j] == '\r' || p->src[j] == '\n'))
				j++;
			if (j >= p->len || p->src[j] != '(')
				return fail_at(p, at, "unknown name '%.*s' (values are written '${...}', "
				       "functions name(...))", (int)(nl > 30 ? 30 : nl), name);
		}
		if (lex(p) != 0)
			return -1;
		if (enter(p, at) != 0)
			return -1;
		x = parse_call(p, at, name, nl);
		p->depth--;
		return x;
	}
	case T_LP:
		if (enter(p, at) != 0 || lex(p) != 0)
			return -1;
		x = parse_or(p);
		if (x < 0)
			return -1;
		if (p->t != T_RP)
			return unexpected(p, "')'");
		p->depth--;
		break;
	default:
		return unexpected(p, "a value");
	}
	return lex(p) != 0 ? -1 : x;
}

static int parse_unary(struct parser *p)
{
	size_t at = p->tstart;
	int x, k;

	if (p->t != T_NOT)
		return parse_primary(p);
	if (enter(p, at) != 0 || lex(p) != 0)
		return -1;
	k = parse_unary(p);
	if (k < 0)
		return -1;
	p->depth--;
	if (p->e->v[k].type != EXPR_BOOL)
		return fail_at(p, at, "'!' needs a boolean, not %s %s",
			       p->e->v[k].type == EXPR_INT ? "an" : "a", type_name(p->e->v[k].type));
	x = new_node(p, N_NOT, EXPR_BOOL);
	if (x < 0)
		return -1;
	add_kid(p->e, x, k);
	return x;
}

static int parse_add(struct parser *p)
{
	int x = parse_unary(p), chain = -1;

	while (x >= 0 && p->t == T_PLUS) {
		size_t at = p->tstart;
		enum expr_type lt = p->e->v[x].type;
		int y;

		if (lex(p) != 0)
			return -1;
		y = parse_unary(p);
		if (y < 0)
			return -1;
		if (lt == EXPR_BOOL || p->e->v[y].type != lt)
			return fail_at(p, at, "'+' adds two integers or joins two strings, not "
				       "%s and %s (string(n) makes a string)", type_name(lt),
				       type_name(p->e->v[y].type));
		if (chain < 0) {
			chain = new_node(p, N_ADD, lt);
			if (chain < 0)
				return -1;
			add_kid(p->e, chain, x);
			x = chain;
		}
		add_kid(p->e, chain, y);
	}
	return x;
}

static int is_cmp(enum tok t)
{
	return t == T_EQ || t == T_NE || t == T_LT || t == T_LE || t == T_GT || t == T_GE;
}

static int parse_cmp(struct parser *p)
{
	int x = parse_add(p), y, c;
	size_t at;
	enum tok op;
	enum expr_type lt, rt;

	if (x < 0 || !is_cmp(p->t))
		return x;
	at = p->tstart;
	op = p->t;
	if (lex(p) != 0)
		return -1;
	y = parse_add(p);
	if (y < 0)
		return -1;
	if (is_cmp(p->t))
		return FAIL(p, p->tstart, "comparisons do not chain (use '&&' or parentheses)");
	lt = p->e->v[x].type;
	rt = p->e->v[y].type;
	if (lt != rt)
		return fail_at(p, at, "cannot compare %s with %s", type_name(lt), type_name(rt));
	if (lt == EXPR_BOOL && op != T_EQ && op != T_NE)
		return FAIL(p, at, "booleans compare only with '==' and '!='");
	c = new_node(p, N_CMP, EXPR_BOOL);
	if (c < 0)
		return -1;
	p->e->v[c].cmp = op;
	add_kid(p->e, c, x);
	add_kid(p->e, c, y);
	return c;
}

static int parse_logic(struct parser *p, enum tok optok, enum nop op, int (*sub)(struct parser *))
{
	int x = sub(p), chain = -1;
	const char *opname = optok == T_AND ? "'&&'" : "'||'";

	while (x >= 0 && p->t == optok) {
		size_t at = p->tstart;
		int y;

		if (p->e->v[x].type != EXPR_BOOL)
			return fail_at(p, at, "%s needs booleans, not a %s on its left", opname,
				       type_name(p->e->v[x].type));
		if (lex(p) != 0)
			return -1;
		y = sub(p);
		if (y < 0)
			return -1;
		if (p->e->v[y].type != EXPR_BOOL)
			return fail_at(p, at, "%s needs booleans, not a %s on its right", opname,
				       type_name(p->e->v[y].type));
		if (chain < 0) {
			chain = new_node(p, op, EXPR_BOOL);
			if (chain < 0)
				return -1;
			add_kid(p->e, chain, x);
			x = chain;
		}
		add_kid(p->e, chain, y);
	}
	return x;
}

static int parse_and(struct parser *p)
{
	return parse_logic(p, T_AND, N_AND, parse_cmp);
}

static int parse_or(struct parser *p)
{
	return parse_logic(p, T_OR, N_OR, parse_and);
}

int expr_compile(const char *src, size_t len, unsigned flags, struct expr **out, size_t *used,
		 char *why, size_t why_cap)
{
	struct parser p;
	struct expr *e;
	int top, rc = -1;

	*out = NULL;
	memset(&p, 0, sizeof(p));
	p.src = src;
	p.len = len;
	p.flags = flags;
	p.why = why;
	p.why_cap = why_cap;
	if (len > EXPR_MAX_SOURCE) {
		snprintf(why, why_cap, "expression over %d bytes", EXPR_MAX_SOURCE);
		return -1;
	}
	e = calloc(1, sizeof(*e));
	if (e == NULL) {
		snprintf(why, why_cap, "out of memory");
		return -1;
	}
	p.e = e;
	if (lex(&p) != 0)
		goto out;
	if (p.t == T_EOF || (p.t == T_RP && (flags & EXPR_STOP_PAREN))) {
		FAIL(&p, p.tstart, "empty expression");
		goto out;
	}
	top = parse_or(&p);
	if (top < 0)
		goto out;
	if (!(p.t == T_EOF || (p.t == T_RP && (flags & EXPR_STOP_PAREN)))) {
		unexpected(&p, "an operator or the end");
		goto out;
	}
	e->top = top;
	if (used != NULL)
		*used = p.t == T_EOF ? len : p.tstart;
	*out = e;
	e = NULL;
	rc = 0;
out:
	expr_free(e);
	return rc;
}

/* --- evaluation ---------------------------------------------------------- */

struct chunk {
	struct chunk *next;
	char data[];
};

struct ev {
	const struct expr *e;
	expr_resolve_fn *resolve;
	void *ctx;
	struct expr_arena *a;
};

static enum expr_status arena_alloc(struct expr_arena *a, size_t n, char **out)
{
	struct chunk *c;

	if (n > a->max - a->used)
		return EXPR_TOO_LONG;
	c = malloc(sizeof(*c) + n + 1);
	if (c == NULL)
		return EXPR_NOMEM;
	a->used += n;
	c->next = a->chunks;
	a->chunks = c;
	*out = c->data;
	return EXPR_OK;
}

void expr_arena_release(struct expr_arena *a)
{
	struct chunk *c = a->chunks;

	while (c != NULL) {
		struct chunk *n = c->next;

		free(c);
		c = n;
	}
	a->chunks = NULL;
	a->used = 0;
	a->work = 0;
}

const char *expr_status_str(enum expr_status st)
{
	switch (st) {
	case EXPR_OK:
		return "ok";
	case EXPR_TOO_LONG:
		return "expression value over its byte budget";
	case EXPR_OVERFLOW:
		return "integer overflow";
	case EXPR_TOO_SLOW:
		return "expression evaluation over its work limit";
	case EXPR_NOMEM:
		return "out of memory";
	}
	return "unknown";
}

static void set_str(struct expr_value *v, const char *s, size_t n)
{
	v->type = EXPR_STRING;
	v->s = s;
	v->len = n;
}

static void set_bool(struct expr_value *v, int b)
{
	v->type = EXPR_BOOL;
	v->b = b != 0;
}

static void set_int(struct expr_value *v, int64_t i)
{
	v->type = EXPR_INT;
	v->i = i;
}

/* Returns the first offset of nd in h at or after from, or (size_t)-1; linear
 * (Knuth-Morris-Pratt), so a long subject and a long needle stay cheap. -2 is
 * no memory. */
static size_t find(const char *h, size_t hn, const char *nd, size_t nn, size_t from)
{
	size_t *fail = NULL, k = 0, r = (size_t)-1;

	if (nn == 0)
		return from <= hn ? from : (size_t)-1;
	if (nn > hn || from > hn - nn)
		return (size_t)-1;
	fail = malloc(nn * sizeof(*fail));
	if (fail == NULL)
		return (size_t)-2;
	fail[0] = 0;
	for (size_t i = 1; i < nn; i++) {
		while (k > 0 && nd[i] != nd[k])
			k = fail[k - 1];
		if (nd[i] == nd[k])
			k++;
		fail[i] = k;
	}
	k = 0;
	for (size_t i = from; i < hn; i++) {
		while (k > 0 && h[i] != nd[k])
			k = fail[k - 1];
		if (h[i] == nd[k])
			k++;
		if (k == nn) {
			r = i + 1 - nn;
			break;
		}
	}
	free(fail);
	return r;
}

static int64_t to_int(const char *s, size_t n)
{
	size_t i = 0, e = n;
	int neg = 0;
	int64_t v = 0;

	while (i < e && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
		i++;
	while (e > i && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r' || s[e - 1] == '\n'))
		e--;
	if (i < e && s[i] == '-') {
		neg = 1;
		i++;
	}
	if (e == i || e - i > 18)
		return 0;
	for (; i < e; i++) {
		if (!is_digit((unsigned char)s[i]))
			return 0;
		v = v * 10 + (s[i] - '0');
	}
	return neg ? -v : v;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static enum expr_status do_base64(struct ev *ev, const char *s, size_t n, struct expr_value *out)
{
	size_t on = (n + 2) / 3 * 4, o = 0;
	char *d;
	enum expr_status st;

	if (n > SIZE_MAX / 2)
		return EXPR_TOO_LONG;
	st = arena_alloc(ev->a, on, &d);
	if (st != EXPR_OK)
		return st;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)(unsigned char)s[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t)(unsigned char)s[i + 1] << 8;
		if (i + 2 < n)
			v |= (unsigned char)s[i + 2];
		d[o++] = b64[(v >> 18) & 63];
		d[o++] = b64[(v >> 12) & 63];
		d[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
		d[o++] = i + 2 < n ? b64[v & 63] : '=';
	}
	set_str(out, d, o);
	return EXPR_OK;
}

static int b64_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

/* Standard or URL-safe alphabet, padding optional; anything else is ''. */
static enum expr_status do_unbase64(struct ev *ev, const char *s, size_t n, struct expr_value *out)
{
	size_t o = 0, bits = 0;
	uint32_t acc = 0;
	char *d;
	enum expr_status st;

	while (n > 0 && s[n - 1] == '=' && o < 2) {
		n--;
		o++;
	}
	if (n % 4 == 1 || (o > 0 && (n + o) % 4 != 0)) {
		set_str(out, "", 0);
		return EXPR_OK;
	}
	st = arena_alloc(ev->a, n / 4 * 3 + 2, &d);
	if (st != EXPR_OK)
		return st;
	o = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b64_val((unsigned char)s[i]);

		if (v < 0) {
			set_str(out, "", 0);
			return EXPR_OK;
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			d[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	set_str(out, d, o);
	return EXPR_OK;
}

static enum expr_status copy_out(struct ev *ev, const char *s, size_t n, struct expr_value *out)
{
	char *d;
	enum expr_status st = arena_alloc(ev->a, n, &d);

	if (st != EXPR_OK)
		return st;
	if (n > 0)
		memcpy(d, s, n);
	set_str(out, d, n);
	return EXPR_OK;
}

static enum expr_status do_json(struct ev *ev, const char *s, size_t n, const struct enode *pn,
				struct expr_value *out)
{
	struct json_tokener *tok = NULL;
	struct json_object *root = NULL, *cur;
	enum expr_status st;
	char *buf;
	size_t end;

	set_str(out, "", 0);
	/* json-c's memory is some multiple of the text: charge the text */
	st = arena_alloc(ev->a, n, &buf);
	if (st != EXPR_OK)
		return st;
	if (n > INT_MAX - 1)
		return EXPR_TOO_LONG;
	if (n > 0)
		memcpy(buf, s, n);
	buf[n] = '\0';
	tok = json_tokener_new_ex(JSON_MAX_DEPTH);
	if (tok == NULL)
		return EXPR_NOMEM;
	/* n + 1 hands over the NUL too, which ends a number at the very end */
	root = json_tokener_parse_ex(tok, buf, (int)n + 1);
	if (root == NULL)
		goto out;
	end = json_tokener_get_parse_end(tok);
	for (; end < n; end++) {
		if (buf[end] != ' ' && buf[end] != '\t' && buf[end] != '\r' && buf[end] != '\n')
			goto out;
	}
	cur = root;
	for (size_t i = 0; i < pn->npath && cur != NULL; i++) {
		const struct jseg *g = &pn->path[i];

		if (g->name != NULL) {
			if (!json_object_is_type(cur, json_type_object) ||
			    !json_object_object_get_ex(cur, g->name, &cur))
				cur = NULL;
		} else {
			if (!json_object_is_type(cur, json_type_array) ||
			    g->index >= json_object_array_length(cur))
				cur = NULL;
			else
				cur = json_object_array_get_idx(cur, g->index);
		}
	}
	if (cur == NULL || json_object_is_type(cur, json_type_null))
		goto out;
	if (json_object_is_type(cur, json_type_string)) {
		st = copy_out(ev, json_object_get_string(cur), (size_t)json_object_get_string_len(cur),
			      out);
	} else {
		size_t l;
		const char *t = json_object_to_json_string_length(cur, JSON_C_TO_STRING_PLAIN, &l);

		st = t == NULL ? EXPR_NOMEM : copy_out(ev, t, l, out);
	}
out:
	json_object_put(root);
	json_tokener_free(tok);
	return st;
}

static enum expr_status eval(struct ev *ev, int x, struct expr_value *out);

static enum expr_status eval_call(struct ev *ev, const struct enode *nd, struct expr_value *out)
{
	struct expr_value a[3];
	const struct enode *kids[3];
	int k = nd->kid, n = 0;
	enum expr_status st;
	char *d;

	memset(a, 0, sizeof(a));
	for (; k >= 0 && n < 3; k = ev->e->v[k].next, n++) {
		kids[n] = &ev->e->v[k];
		/* a literal pattern or path is used compiled, not evaluated */
		if ((nd->fn == F_MATCHES || nd->fn == F_JSON) && n == 1)
			continue;
		st = eval(ev, k, &a[n]);
		if (st != EXPR_OK)
			return st;
	}
	switch (nd->fn) {
	case F_LOWER:
	case F_UPPER:
		st = arena_alloc(ev->a, a[0].len, &d);
		if (st != EXPR_OK)
			return st;
		for (size_t i = 0; i < a[0].len; i++) {
			char c = a[0].s[i];

			if (nd->fn == F_LOWER && c >= 'A' && c <= 'Z')
				c = (char)(c - 'A' + 'a');
			else if (nd->fn == F_UPPER && c >= 'a' && c <= 'z')
				c = (char)(c - 'a' + 'A');
			d[i] = c;
		}
		set_str(out, d, a[0].len);
		return EXPR_OK;
	case F_LENGTH:
		set_int(out, (int64_t)a[0].len);
		return EXPR_OK;
	case F_CONTAINS: {
		size_t r = find(a[0].s, a[0].len, a[1].s, a[1].len, 0);

		if (r == (size_t)-2)
			return EXPR_NOMEM;
		set_bool(out, r != (size_t)-1);
		return EXPR_OK;
	}
	case F_STARTS:
		set_bool(out, a[1].len <= a[0].len &&
			 (a[1].len == 0 || memcmp(a[0].s, a[1].s, a[1].len) == 0));
		return EXPR_OK;
	case F_ENDS:
		set_bool(out, a[1].len <= a[0].len &&
			 (a[1].len == 0 || memcmp(a[0].s + a[0].len - a[1].len, a[1].s, a[1].len) == 0));
		return EXPR_OK;
	case F_ISEMPTY:
		set_bool(out, a[0].len == 0);
		return EXPR_OK;
	case F_DEFAULT:
		*out = a[0].len == 0 ? a[1] : a[0];
		return EXPR_OK;
	case F_SUBSTRING: {
		int64_t from = a[1].i, len = n == 3 ? a[2].i : INT64_MAX;
		size_t f, l;

		f = from < 0 ? 0 : (uint64_t)from > a[0].len ? a[0].len : (size_t)from;
		l = len < 0 ? 0 : (uint64_t)len > a[0].len - f ? a[0].len - f : (size_t)len;
		set_str(out, l ? a[0].s + f : "", l);
		return EXPR_OK;
	}
	case F_REPLACE: {
		size_t cnt = 0, pos = 0, r, total, o = 0;

		if (a[1].len == 0) {
			*out = a[0];
			return EXPR_OK;
		}
		for (;;) {
			r = find(a[0].s, a[0].len, a[1].s, a[1].len, pos);
			if (r == (size_t)-2)
				return EXPR_NOMEM;
			if (r == (size_t)-1)
				break;
			cnt++;
			pos = r + a[1].len;
		}
		if (cnt == 0) {
			*out = a[0];
			return EXPR_OK;
		}
		/* the budget caps the result, so check before multiplying out */
		if (a[2].len > 0 && cnt > (ev->a->max - ev->a->used) / a[2].len)
			return EXPR_TOO_LONG;
		total = a[0].len - cnt * a[1].len + cnt * a[2].len;
		st = arena_alloc(ev->a, total, &d);
		if (st != EXPR_OK)
			return st;
		pos = 0;
		for (;;) {
			r = find(a[0].s, a[0].len, a[1].s, a[1].len, pos);
			if (r == (size_t)-2)
				return EXPR_NOMEM;
			if (r == (size_t)-1)
				break;
			memcpy(d + o, a[0].s + pos, r - pos);
			o += r - pos;
			if (a[2].len > 0)
				memcpy(d + o, a[2].s, a[2].len);
			o += a[2].len;
			pos = r + a[1].len;
		}
		if (a[0].len > pos)
			memcpy(d + o, a[0].s + pos, a[0].len - pos);
		o += a[0].len - pos;
		set_str(out, d, o);
		return EXPR_OK;
	}
	case F_MATCHES: {
		unsigned long steps = 0, left = ev->a->max_work > ev->a->work ?
					  ev->a->max_work - ev->a->work : 0;
		int r;

		if (left == 0)
			return EXPR_TOO_SLOW;
		r = regex_search(kids[1]->re, a[0].s ? a[0].s : "", a[0].len, left, &steps);
		ev->a->work += steps;
		if (r == -2)
			return EXPR_TOO_SLOW;
		if (r < 0)
			return EXPR_NOMEM;
		set_bool(out, r);
		return EXPR_OK;
	}
	case F_INT:
		set_int(out, a[0].type == EXPR_INT ? a[0].i : to_int(a[0].s, a[0].len));
		return EXPR_OK;
	case F_STRING: {
		char tmp[24];
		int l;

		if (a[0].type == EXPR_STRING) {
			*out = a[0];
			return EXPR_OK;
		}
		if (a[0].type == EXPR_BOOL) {
			set_str(out, a[0].b ? "true" : "false", a[0].b ? 4 : 5);
			return EXPR_OK;
		}
		l = snprintf(tmp, sizeof(tmp), "%lld", (long long)a[0].i);
		return copy_out(ev, tmp, (size_t)l, out);
	}
	case F_JSON:
		return do_json(ev, a[0].s, a[0].len, kids[1], out);
	case F_BASE64:
		return do_base64(ev, a[0].s, a[0].len, out);
	case F_UNBASE64:
		return do_unbase64(ev, a[0].s, a[0].len, out);
	}
	return EXPR_NOMEM;
}

static int cmp_str(const struct expr_value *a, const struct expr_value *b)
{
	size_t m = a->len < b->len ? a->len : b->len;
	int r = m ? memcmp(a->s, b->s, m) : 0;

	if (r != 0)
		return r;
	return a->len < b->len ? -1 : a->len > b->len;
}

static enum expr_status eval(struct ev *ev, int x, struct expr_value *out)
{
	const struct enode *nd = &ev->e->v[x];
	enum expr_status st;
	struct expr_value a, b;
	int k;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	switch (nd->op) {
	case N_STR:
		set_str(out, nd->s, nd->len);
		return EXPR_OK;
	case N_INT:
		set_int(out, nd->i);
		return EXPR_OK;
	case N_BOOL:
		set_bool(out, (int)nd->i);
		return EXPR_OK;
	case N_VALUE: {
		const char *v = NULL;
		size_t l = 0;

		ev->resolve(ev->ctx, (enum tpl_root)nd->root, nd->s, nd->len, &v, &l);
		set_str(out, v ? v : "", v ? l : 0);
		return EXPR_OK;
	}
	case N_NOT:
		st = eval(ev, nd->kid, &a);
		if (st != EXPR_OK)
			return st;
		set_bool(out, !a.b);
		return EXPR_OK;
	case N_AND:
	case N_OR:
		for (k = nd->kid; k >= 0; k = ev->e->v[k].next) {
			st = eval(ev, k, &a);
			if (st != EXPR_OK)
				return st;
			if (a.b == (nd->op == N_OR))
				break;
		}
		set_bool(out, a.b);
		return EXPR_OK;
	case N_CMP: {
		int c;

		st = eval(ev, nd->kid, &a);
		if (st == EXPR_OK)
			st = eval(ev, ev->e->v[nd->kid].next, &b);
		if (st != EXPR_OK)
			return st;
		if (a.type == EXPR_STRING)
			c = cmp_str(&a, &b);
		else if (a.type == EXPR_INT)
			c = a.i < b.i ? -1 : a.i > b.i;
		else
			c = a.b - b.b;
		switch (nd->cmp) {
		case T_EQ: set_bool(out, c == 0); break;
		case T_NE: set_bool(out, c != 0); break;
		case T_LT: set_bool(out, c < 0); break;
		case T_LE: set_bool(out, c <= 0); break;
		case T_GT: set_bool(out, c > 0); break;
		default: set_bool(out, c >= 0); break;
		}
		return EXPR_OK;
	}
	case N_ADD:
		if (nd->type == EXPR_INT) {
			int64_t sum = 0;

			for (k = nd->kid; k >= 0; k = ev->e->v[k].next) {
				st = eval(ev, k, &a);
				if (st != EXPR_OK)
					return st;
				if (__builtin_add_overflow(sum, a.i, &sum))
					return EXPR_OVERFLOW;
			}
			set_int(out, sum);
			return EXPR_OK;
		} else {
			struct expr_value *parts = malloc(sizeof(*parts) * (size_t)nd->nkids);
			size_t total = 0, o = 0;
			int i = 0;
			char *d;

			if (parts == NULL)
				return EXPR_NOMEM;
			st = EXPR_OK;
			for (k = nd->kid; k >= 0 && st == EXPR_OK; k = ev->e->v[k].next, i++) {
				st = eval(ev, k, &parts[i]);
				if (st == EXPR_OK && parts[i].len > ev->a->max - total)
					st = EXPR_TOO_LONG;
				if (st == EXPR_OK)
					total += parts[i].len;
			}
			if (st == EXPR_OK)
				st = arena_alloc(ev->a, total, &d);
			if (st == EXPR_OK) {
				for (i = 0; i < nd->nkids; i++) {
					if (parts[i].len > 0)
						memcpy(d + o, parts[i].s, parts[i].len);
					o += parts[i].len;
				}
				set_str(out, d, o);
			}
			free(parts);
			return st;
		}
	case N_CALL:
		return eval_call(ev, nd, out);
	}
	return EXPR_NOMEM;
}

enum expr_status expr_eval(const struct expr *e, expr_resolve_fn *resolve, void *ctx,
			   struct expr_arena *a, struct expr_value *out)
{
	struct ev ev = { e, resolve, ctx, a };
	struct expr_value v;
	enum expr_status st;

	memset(&v, 0, sizeof(v));
	st = eval(&ev, e->top, &v);
	if (st == EXPR_OK)
		*out = v;
	return st;
}
