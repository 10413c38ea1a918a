/*
 * template — "${...}" parsing and expansion (template.h).
 */
#include "policy/template.h"
#include "policy/expr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct root_name {
	const char *name;
	enum tpl_root root;
	int has_name;		/* "root.NAME" */
};

static const struct root_name roots[] = {
	{ "request.method", TPL_REQUEST_METHOD, 0 },
	{ "request.path", TPL_REQUEST_PATH, 0 },
	{ "request.ip", TPL_REQUEST_IP, 0 },
	{ "request.header", TPL_REQUEST_HEADER, 1 },
	{ "request.query", TPL_REQUEST_QUERY, 1 },
	{ "path", TPL_PATH_PARAM, 1 },
	{ "subscription.id", TPL_SUBSCRIPTION_ID, 0 },
	{ "product.id", TPL_PRODUCT_ID, 0 },
	{ "api.id", TPL_API_ID, 0 },
	{ "operation.id", TPL_OPERATION_ID, 0 },
	{ "jwt.claim", TPL_JWT_CLAIM, 1 },
	{ "context.request_id", TPL_REQUEST_ID, 0 },
	{ "var", TPL_VAR, 1 },
	{ "request.body", TPL_REQUEST_BODY, 0 },
	{ "response.status", TPL_RESPONSE_STATUS, 0 },
	{ "response.header", TPL_RESPONSE_HEADER, 1 },
	{ "response.body", TPL_RESPONSE_BODY, 0 },
};

static int add_part(struct tpl *t, size_t *cap, enum tpl_root root, const char *s, size_t n)
{
	struct tpl_part *p;

	if (root == TPL_LITERAL && n == 0)
		return 0;
	/* adjacent literals are merged */
	if (root == TPL_LITERAL && t->n > 0 && t->v[t->n - 1].root == TPL_LITERAL) {
		struct tpl_part *last = &t->v[t->n - 1];
		char *x = realloc(last->text, last->len + n + 1);

		if (!x)
			return -1;
		memcpy(x + last->len, s, n);
		last->len += n;
		x[last->len] = '\0';
		last->text = x;
		return 0;
	}
	if (t->n == TPL_MAX_PARTS)
		return -2;
	if (t->n == *cap) {
		size_t c = *cap ? *cap * 2 : 4;

		p = realloc(t->v, c * sizeof(*p));
		if (!p)
			return -1;
		t->v = p;
		*cap = c;
	}
	p = &t->v[t->n];
	p->root = root;
	p->len = n;
	p->text = NULL;
	p->e = NULL;
	if (s) {
		p->text = malloc(n + 1);
		if (!p->text)
			return -1;
		memcpy(p->text, s, n);
		p->text[n] = '\0';
	}
	t->n++;
	if (root != TPL_LITERAL) {
		t->dynamic = 1;
		t->reads |= TPL_READS(root);
	}
	return 0;
}

static int is_param_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '.';
}

/* A variable reference "NAME" or "NAME.REST": NAME is 1 to EXPR_VAR_MAX of
 * A-Z a-z 0-9 _ - (set-variable's rule), the rest (tok.header.X) is the
 * resolver's to read. */
static int var_name_ok(const char *s, size_t n)
{
	size_t i = 0;

	while (i < n && s[i] != '.') {
		unsigned char c = (unsigned char)s[i];

		if (!is_param_char(c) || c == '.')
			return 0;
		i++;
	}
	if (i == 0 || i > EXPR_VAR_MAX)
		return 0;
	return i == n || s[n - 1] != '.';
}

int tpl_parse_value(const char *e, size_t n, enum tpl_root *root, const char **name,
		    size_t *name_len, char *why, size_t why_cap)
{
	for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
		size_t rl = strlen(roots[i].name);

		if (n < rl || memcmp(e, roots[i].name, rl) != 0)
			continue;
		if (!roots[i].has_name) {
			if (n != rl)
				continue;
			*root = roots[i].root;
			*name = NULL;
			*name_len = 0;
			return 0;
		}
		if (n == rl || e[rl] != '.')
			continue;
		*name = e + rl + 1;
		*name_len = n - rl - 1;
		if (roots[i].root == TPL_VAR && !var_name_ok(*name, *name_len)) {
			snprintf(why, why_cap, "'${%.*s}': a variable name is 1 to %d of A-Z a-z 0-9 _ -",
				 (int)(n > 80 ? 80 : n), e, EXPR_VAR_MAX);
			return -1;
		}
		if (*name_len == 0 || *name_len > TPL_NAME_MAX) {
			snprintf(why, why_cap, "'${%.*s}' needs a name of 1 to %d characters after "
				 "'%s.'", (int)(n > 80 ? 80 : n), e, TPL_NAME_MAX, roots[i].name);
			return -1;
		}
		for (size_t j = 0; j < *name_len; j++) {
			unsigned char c = (unsigned char)(*name)[j];

			if (c <= 0x20 || c == 0x7f || c == '$' || c == '{') {
				snprintf(why, why_cap, "'${%.*s}' has a character that is not allowed "
					 "in a name", (int)(n > 80 ? 80 : n), e);
				return -1;
			}
		}
		*root = roots[i].root;
		return 0;
	}
	snprintf(why, why_cap, "'${%.*s}' is not a known value (request.method, request.path, "
		 "request.ip, request.header.NAME, request.query.NAME, path.PARAM, subscription.id, "
		 "product.id, api.id, operation.id, jwt.claim.NAME, context.request_id, var.NAME, "
		 "request.body, response.status, response.header.NAME, response.body)",
		 (int)(n > 80 ? 80 : n), e);
	return -1;
}

/* "$(" at s[i]: compiles the expression up to its closing ')' into a part. */
static int parse_dollar_paren(struct tpl *t, size_t *cap, const char *s, size_t len, size_t *i,
			      char *why, size_t why_cap)
{
	struct expr *e = NULL;
	size_t used = 0, start = *i + 2;
	char ew[200];
	int r;

	if (expr_compile(s + start, len - start, EXPR_STOP_PAREN, &e, &used, ew, sizeof(ew)) != 0) {
		snprintf(why, why_cap, "in the '$(' at column %zu: %s", *i + 1, ew);
		return -1;
	}
	if (start + used >= len || s[start + used] != ')') {
		expr_free(e);
		snprintf(why, why_cap, "unterminated '$(' at column %zu (write '$$' for a literal "
			 "'$')", *i + 1);
		return -1;
	}
	r = add_part(t, cap, TPL_EXPR, NULL, 0);
	if (r != 0) {
		expr_free(e);
		snprintf(why, why_cap, r == -2 ? "more than %d parts" : "out of memory",
			 TPL_MAX_PARTS);
		return -1;
	}
	t->v[t->n - 1].e = e;
	t->reads |= expr_reads(e);
	*i = start + used + 1;
	return 0;
}

int tpl_parse(const char *s, size_t len, unsigned flags, struct tpl **out, char *why,
	      size_t why_cap)
{
	struct tpl *t = calloc(1, sizeof(*t));
	size_t cap = 0, i = 0, lit = 0;
	int rc = -1, r;

	*out = NULL;
	if (why_cap)
		why[0] = '\0';
	if (!t) {
		snprintf(why, why_cap, "out of memory");
		return -1;
	}
	/* APIM reads a value that starts with @( or @{ as C#: copied here it
	 * would go out as literal text, silently wrong; refuse it instead */
	if (len >= 2 && s[0] == '@' && (s[1] == '(' || s[1] == '{')) {
		snprintf(why, why_cap, "an APIM C# expression ('%c%c...') is not supported: "
			 "write $(EXPR) (docs/expressions.md)", s[0], s[1]);
		goto out;
	}
	while (i < len) {
		enum tpl_root root;
		const char *name, *end;
		size_t name_len, start;

		if (s[i] == '$' && i + 1 < len && s[i + 1] == '$') {
			if (add_part(t, &cap, TPL_LITERAL, s + lit, i - lit + 1) != 0)
				goto nomem;
			i += 2;
			lit = i;
			continue;
		}
		if (s[i] == '$' && i + 1 < len && s[i + 1] == '(') {
			r = add_part(t, &cap, TPL_LITERAL, s + lit, i - lit);
			if (r == -2)
				goto toomany;
			if (r != 0)
				goto nomem;
			if (parse_dollar_paren(t, &cap, s, len, &i, why, why_cap) != 0)
				goto out;
			lit = i;
			continue;
		}
		if (s[i] == '$' && i + 1 < len && s[i + 1] == '{') {
			start = i + 2;
		} else if ((flags & TPL_PARSE_BRACES) && s[i] == '{') {
			start = i + 1;
		} else {
			i++;
			continue;
		}
		end = memchr(s + start, '}', len - start);
		if (!end) {
			snprintf(why, why_cap, "unterminated '%s' (write '$$' for a literal '$')",
				 s[i] == '$' ? "${" : "{");
			goto out;
		}
		if (s[i] == '$') {
			if (tpl_parse_value(s + start, (size_t)(end - (s + start)), &root, &name,
				       &name_len, why, why_cap) != 0)
				goto out;
		} else {
			root = TPL_PATH_PARAM;
			name = s + start;
			name_len = (size_t)(end - name);
			for (size_t j = 0; j < name_len; j++)
				if (!is_param_char((unsigned char)name[j]))
					name_len = 0;
			if (name_len == 0 || name_len > TPL_NAME_MAX) {
				snprintf(why, why_cap, "'{%.*s}' is not a parameter name",
					 (int)((size_t)(end - (s + start)) > 80 ? 80 :
					       (size_t)(end - (s + start))), s + start);
				goto out;
			}
		}
		r = add_part(t, &cap, TPL_LITERAL, s + lit, i - lit);
		if (r == 0)
			r = add_part(t, &cap, root, name, name_len);
		if (r == -2)
			goto toomany;
		if (r != 0)
			goto nomem;
		i = (size_t)(end - s) + 1;
		lit = i;
	}
	r = add_part(t, &cap, TPL_LITERAL, s + lit, len - lit);
	if (r == -2)
		goto toomany;
	if (r != 0)
		goto nomem;
	*out = t;
	t = NULL;
	rc = 0;
	goto out;
toomany:
	snprintf(why, why_cap, "more than %d parts", TPL_MAX_PARTS);
	goto out;
nomem:
	snprintf(why, why_cap, "out of memory");
out:
	tpl_free(t);
	return rc;
}

void tpl_free(struct tpl *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++) {
		free(t->v[i].text);
		expr_free(t->v[i].e);
	}
	free(t->v);
	free(t);
}

const char *tpl_constant(const struct tpl *t)
{
	if (!t || t->dynamic)
		return NULL;
	if (t->n == 0)
		return "";
	return t->v[0].text;
}

static int grow(struct tpl_buf *b, size_t more)
{
	size_t c;
	char *p;

	if (more > b->max || b->len > b->max - more)
		return TPL_TOO_LONG;
	if (b->cap > b->len + more)
		return TPL_OK;
	c = b->cap ? b->cap : 64;
	while (c <= b->len + more)
		c *= 2;
	p = realloc(b->p, c);
	if (!p)
		return TPL_NOMEM;
	b->p = p;
	b->cap = c;
	return TPL_OK;
}

static int is_unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

int tpl_header_check(const char *s, size_t n)
{
	/* Not only CR, LF and NUL: a web server or backend that splits or ends a
	 * line at VT, FF or any other control byte (or drops DEL) sees other
	 * headers than the ones checked here, and some refuse the whole message.
	 * HTAB stays: RFC 9110 (5.5) allows it inside a field value. */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return -1;
	}
	return 0;
}

/* JSON string content or XML text: every byte that could end or change the
 * structure around the value is escaped, the rest copied. */
static enum tpl_status put_escaped(struct tpl_buf *b, const char *s, size_t n, enum tpl_enc enc)
{
	static const char hex[] = "0123456789abcdef";
	char esc[8];
	size_t run = 0;
	int r;

	for (size_t i = 0; i <= n; i++) {
		unsigned char c = i < n ? (unsigned char)s[i] : 0;
		const char *rep = NULL;
		size_t rl = 0;

		if (i < n && enc == TPL_ENC_JSON) {
			if (c == '"')
				rep = "\\\"";
			else if (c == '\\')
				rep = "\\\\";
			else if (c == '\n')
				rep = "\\n";
			else if (c == '\r')
				rep = "\\r";
			else if (c == '\t')
				rep = "\\t";
			else if (c < 0x20 || c == 0x7f) {
				esc[0] = '\\';
				esc[1] = 'u';
				esc[2] = '0';
				esc[3] = '0';
				esc[4] = hex[c >> 4];
				esc[5] = hex[c & 15];
				esc[6] = '\0';
				rep = esc;
			}
		} else if (i < n) {
			if (c == '&')
				rep = "&amp;";
			else if (c == '<')
				rep = "&lt;";
			else if (c == '>')
				rep = "&gt;";
			else if (c == '"')
				rep = "&quot;";
			else if (c == '\'')
				rep = "&apos;";
		}
		if (i < n && !rep) {
			run++;
			continue;
		}
		if (run) {
			r = grow(b, run);
			if (r != TPL_OK)
				return (enum tpl_status)r;
			memcpy(b->p + b->len, s + i - run, run);
			b->len += run;
			run = 0;
		}
		if (rep) {
			rl = strlen(rep);
			r = grow(b, rl);
			if (r != TPL_OK)
				return (enum tpl_status)r;
			memcpy(b->p + b->len, rep, rl);
			b->len += rl;
		}
	}
	r = grow(b, 0);
	if (r != TPL_OK)
		return (enum tpl_status)r;
	b->p[b->len] = '\0';
	return TPL_OK;
}

enum tpl_status tpl_buf_put(struct tpl_buf *b, const char *s, size_t n, enum tpl_enc enc)
{
	static const char hex[] = "0123456789ABCDEF";
	int r;

	if (enc == TPL_ENC_HEADER && tpl_header_check(s, n) != 0)
		return TPL_BAD_VALUE;
	if (enc == TPL_ENC_JSON || enc == TPL_ENC_XML)
		return put_escaped(b, s, n, enc);
	if (enc != TPL_ENC_URL) {
		r = grow(b, n);
		if (r != TPL_OK)
			return (enum tpl_status)r;
		if (n)
			memcpy(b->p + b->len, s, n);
		b->len += n;
		b->p[b->len] = '\0';
		return TPL_OK;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		r = grow(b, 3);
		if (r != TPL_OK)
			return (enum tpl_status)r;
		if (is_unreserved(c)) {
			b->p[b->len++] = (char)c;
		} else {
			b->p[b->len++] = '%';
			b->p[b->len++] = hex[c >> 4];
			b->p[b->len++] = hex[c & 15];
		}
		b->p[b->len] = '\0';
	}
	if (n == 0 && grow(b, 0) == TPL_OK)
		b->p[b->len] = '\0';
	return TPL_OK;
}

/* Evaluates e and appends its text; the arena's budget is what b may still
 * take, so no expression makes more than the value could hold. */
static enum tpl_status put_expr(const struct expr *e, tpl_resolve_fn *resolve, void *ctx,
				enum tpl_enc enc, struct tpl_buf *b)
{
	struct expr_arena a = EXPR_ARENA_INIT(b->max - b->len);
	struct expr_value v;
	enum expr_status es = expr_eval(e, resolve, ctx, &a, &v);
	enum tpl_status st;
	char num[24];

	if (es != EXPR_OK) {
		expr_arena_release(&a);
		b->why = expr_status_str(es);
		return es == EXPR_NOMEM ? TPL_NOMEM : TPL_EXPR_FAILED;
	}
	if (v.type == EXPR_INT) {
		int l = snprintf(num, sizeof(num), "%lld", (long long)v.i);

		st = tpl_buf_put(b, num, (size_t)l, enc);
	} else if (v.type == EXPR_BOOL) {
		st = tpl_buf_put(b, v.b ? "true" : "false", v.b ? 4 : 5, enc);
	} else {
		st = tpl_buf_put(b, v.s ? v.s : "", v.len, enc);
	}
	expr_arena_release(&a);
	return st;
}

enum tpl_status tpl_expand(const struct tpl *t, tpl_resolve_fn *resolve, void *ctx,
			   enum tpl_enc enc, struct tpl_buf *b)
{
	enum tpl_status st = tpl_buf_put(b, "", 0, TPL_ENC_RAW);

	for (size_t i = 0; st == TPL_OK && i < t->n; i++) {
		const struct tpl_part *p = &t->v[i];
		const char *val = NULL;
		size_t len = 0;

		if (p->root == TPL_LITERAL) {
			/* a literal for a header is held to the same rule: the loader
			 * refuses one with a control byte, this keeps any other caller
			 * from emitting it */
			st = tpl_buf_put(b, p->text, p->len,
					 enc == TPL_ENC_HEADER ? TPL_ENC_HEADER : TPL_ENC_RAW);
			continue;
		}
		if (p->root == TPL_EXPR) {
			st = put_expr(p->e, resolve, ctx, enc, b);
			continue;
		}
		resolve(ctx, p->root, p->text, p->len, &val, &len);
		if (val)
			st = tpl_buf_put(b, val, len, enc);
	}
	return st;
}

void tpl_buf_release(struct tpl_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = 0;
	b->cap = 0;
}
