/*
 * policyxml — APIM policy XML → format 1 policies (policyxml.h). libxml2 is
 * confined to this file.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "import/policyxml.h"

/* ---- the pre-tokenizer ---------------------------------------------------- */

struct buf {
	char *p;
	size_t n, cap;
	int oom;
};

static void S_put(struct buf *b, const char *s, size_t n)
{
	char *np;
	size_t cap;

	if (b->oom)
		return;
	if (b->n + n + 1 > b->cap) {
		cap = b->cap ? b->cap : 256;
		while (cap < b->n + n + 1)
			cap *= 2;
		np = realloc(b->p, cap);
		if (!np) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

static void S_puts(struct buf *b, const char *s)
{
	S_put(b, s, strlen(s));
}

/* Where the expression starting at s (at "@(" or "@{") ends: one past its
 * closing bracket, or NULL. C# string, verbatim-string and character literals
 * are skipped, so brackets and quotes inside them do not count. */
static const char *S_expr_end(const char *s, const char *end)
{
	char open = s[1], close = open == '(' ? ')' : '}';
	size_t depth = 0;
	const char *p = s + 1;

	while (p < end) {
		if (*p == '"') {
			int verbatim = p > s && p[-1] == '@';
			for (p++; p < end; p++) {
				if (!verbatim && *p == '\\' && p + 1 < end) {
					p++;
					continue;
				}
				if (*p == '"') {
					if (verbatim && p + 1 < end && p[1] == '"') {
						p++;
						continue;
					}
					break;
				}
			}
			if (p >= end)
				return NULL;
			p++;
			continue;
		}
		if (*p == '\'' && p + 2 < end) {
			/* 'x' or '\x': a C# char (not an XML quote: those end attributes) */
			if (p[1] == '\\' && p + 3 < end && p[3] == '\'') {
				p += 4;
				continue;
			}
			if (p[2] == '\'' && p[1] != '\'') {
				p += 3;
				continue;
			}
		}
		if (*p == open)
			depth++;
		else if (*p == close && --depth == 0)
			return p + 1;
		p++;
	}
	return NULL;
}

/* an XML entity reference at p ("&quot;", "&#34;", ...)? */
static int S_is_entity(const char *p, const char *end)
{
	const char *q = p + 1;

	if (q < end && *q == '#')
		q++;
	while (q < end && q - p < 10 && isalnum((unsigned char)*q))
		q++;
	return q < end && *q == ';' && q > p + 1;
}

static void S_escape_expr(struct buf *b, const char *s, const char *e)
{
	for (; s < e; s++) {
		switch (*s) {
		case '&':
			if (S_is_entity(s, e))
				S_put(b, s, 1);
			else
				S_puts(b, "&amp;");
			break;
		case '<': S_puts(b, "&lt;"); break;
		case '>': S_puts(b, "&gt;"); break;
		case '"': S_puts(b, "&quot;"); break;
		case '\'': S_puts(b, "&apos;"); break;
		default: S_put(b, s, 1);
		}
	}
}

static size_t S_lines(const char *s, const char *e)
{
	size_t n = 0;

	for (; s < e; s++)
		n += *s == '\n';
	return n;
}

static void S_map_add(struct px_linemap *m, size_t end, size_t start)
{
	if (!m)
		return;
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 16;
		size_t *e = realloc(m->end, cap * sizeof(*e));
		if (!e)
			return;
		m->end = e;
		size_t *s = realloc(m->start, cap * sizeof(*s));
		if (!s)
			return;
		m->start = s;
		m->cap = cap;
	}
	m->end[m->n] = end;
	m->start[m->n] = start;
	m->n++;
}

size_t px_linemap_start(const struct px_linemap *map, size_t end)
{
	size_t i;

	for (i = 0; map && i < map->n; i++)
		if (map->end[i] == end)
			return map->start[i];
	return end;
}

void px_linemap_release(struct px_linemap *map)
{
	free(map->end);
	free(map->start);
	map->end = map->start = NULL;
	map->n = map->cap = 0;
}

int px_pretokenize(const char *in, size_t len, char **out, size_t *out_len, size_t *line,
		   const char **why, struct px_linemap *map)
{
	struct buf b = { NULL, 0, 0, 0 };
	const char *p = in, *end = in + len, *e;
	size_t ln = 1;
	int rc = -1;

	*out = NULL;
	*why = NULL;
	while (p < end) {
		if (*p == '<' && end - p >= 4 && !memcmp(p, "<!--", 4)) {
			/* in need not be NUL-terminated: a bounded search */
			for (e = p + 4; e + 3 <= end && memcmp(e, "-->", 3); e++)
				;
			e = e + 3 <= end ? e + 3 : end;
			ln += S_lines(p, e);
			S_put(&b, p, (size_t)(e - p));
			p = e;
			continue;
		}
		if (*p == '<' && end - p >= 9 && !memcmp(p, "<![CDATA[", 9)) {
			for (e = p + 9; e + 3 <= end && memcmp(e, "]]>", 3); e++)
				;
			e = e + 3 <= end ? e + 3 : end;
			ln += S_lines(p, e);
			S_put(&b, p, (size_t)(e - p));
			p = e;
			continue;
		}
		if (*p == '<' && p + 1 < end && (isalpha((unsigned char)p[1]) || p[1] == '_')) {
			/* a start tag: copy it, attribute by attribute */
			size_t tag_line = ln;
			S_put(&b, p, 1);
			p++;
			while (p < end && *p != '>') {
				if (*p == '"' || *p == '\'') {
					char q = *p;
					S_put(&b, p, 1);
					p++;
					if (end - p >= 2 && p[0] == '@' && (p[1] == '(' || p[1] == '{')) {
						e = S_expr_end(p, end);
						if (!e || (size_t)(e - p) > PX_MAX_EXPR_BYTES) {
							*why = e ? "the expression is too long" :
								"the expression never ends (unbalanced brackets or an unclosed string)";
							goto fail;
						}
						ln += S_lines(p, e);
						S_escape_expr(&b, p, e);
						p = e;
					}
					for (e = p; e < end && *e != q; e++)
						;
					ln += S_lines(p, e);
					S_put(&b, p, (size_t)(e - p));
					p = e;
					if (p < end) {
						S_put(&b, p, 1);
						p++;
					}
					continue;
				}
				ln += *p == '\n';
				S_put(&b, p, 1);
				p++;
			}
			if (p < end) {
				S_put(&b, p, 1);
				p++;
			}
			if (ln != tag_line)
				S_map_add(map, ln, tag_line);
			continue;
		}
		if (*p == '@' && p + 1 < end && (p[1] == '(' || p[1] == '{')) {
			e = S_expr_end(p, end);
			if (!e || (size_t)(e - p) > PX_MAX_EXPR_BYTES) {
				*why = e ? "the expression is too long" :
					"the expression never ends (unbalanced brackets or an unclosed string)";
				goto fail;
			}
			ln += S_lines(p, e);
			S_escape_expr(&b, p, e);
			p = e;
			continue;
		}
		ln += *p == '\n';
		S_put(&b, p, 1);
		p++;
	}
	if (!b.p)
		S_put(&b, "", 0);
	if (b.oom) {
		*why = "out of memory";
		goto fail;
	}
	*out = b.p;
	*out_len = b.n;
	b.p = NULL;
	rc = 0;
fail:
	*line = ln;
	free(b.p);
	return rc;
}

/* ---- the converter ---------------------------------------------------------- */

struct cv {
	const char *file;
	struct px_linemap *map;	/* of the file being converted */
	const struct px_fragment *frags;
	size_t n_frags;
	struct px_origins *orig;
	struct cfg_errors *errs;
	struct cfg_errors *notes;
	int depth;
	int failed;
};

static void S_err(struct cv *c, const xmlNode *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void S_err(struct cv *c, const xmlNode *n, const char *fmt, ...)
{
	char where[512], msg[1024];
	va_list ap;

	snprintf(where, sizeof(where), "%s:%zu", c->file,
		 n ? px_linemap_start(c->map, (size_t)xmlGetLineNo(n)) : (size_t)0);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cfg_error(c->errs, where, "%s", msg);
	c->failed = 1;
}

static void S_origin(struct cv *c, const xmlNode *n, json_object *obj, int refused)
{
	struct px_origins *o = c->orig;
	struct px_origin *nv;
	char where[512];

	if (!o)
		return;
	if (o->n == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 32;
		nv = realloc(o->v, cap * sizeof(*nv));
		if (!nv)
			return;
		o->v = nv;
		o->cap = cap;
	}
	snprintf(where, sizeof(where), "%s:%zu", c->file,
		 px_linemap_start(c->map, (size_t)xmlGetLineNo(n)));
	o->v[o->n].obj = obj;
	o->v[o->n].where = strdup(where);
	o->v[o->n].refused = refused;
	if (o->v[o->n].where)
		o->n++;
}

const struct px_origin *px_origins_find(const struct px_origins *orig, const json_object *obj)
{
	size_t i;

	for (i = 0; i < orig->n; i++)
		if (orig->v[i].obj == obj)
			return &orig->v[i];
	return NULL;
}

void px_origins_release(struct px_origins *orig)
{
	size_t i;

	for (i = 0; i < orig->n; i++)
		free(orig->v[i].where);
	free(orig->v);
	orig->v = NULL;
	orig->n = orig->cap = 0;
}

static const char *S_name(const xmlNode *n)
{
	return (const char *)n->name;
}

static int S_is(const xmlNode *n, const char *name)
{
	return n->type == XML_ELEMENT_NODE && !strcmp(S_name(n), name);
}

static char *S_trim_dup(const char *s)
{
	const char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		e--;
	return strndup(s, (size_t)(e - s));
}

/* A value as APIM wrote it → its format 1 string: @(...) translated, {{named}}
 * kept, a literal that format 1 would read as a substitution refused.
 * condition: the whole value is an expression (no $(...) around it).
 * Returns a new json string or NULL (reported). */
static json_object *S_value(struct cv *c, const xmlNode *n, const char *what, const char *raw,
			    int condition)
{
	char *t = S_trim_dup(raw), *x = NULL, *s = NULL;
	char why[256];
	int bare = 0, refused = 0;
	json_object *j = NULL;
	size_t tl;

	if (!t)
		goto out;
	tl = strlen(t);
	if (tl >= 2 && t[0] == '@' && t[1] == '{') {
		S_err(c, n, "%s: a multi-statement expression @{...} is not importable (format 1"
		      " expressions are single expressions, docs/expressions.md)", what);
		refused = 1;
	} else if (tl >= 3 && t[0] == '@' && t[1] == '(' && t[tl - 1] == ')') {
		if (px_expr(t + 2, tl - 3, &x, &bare, why, sizeof(why)) != 0) {
			S_err(c, n, "%s: the expression cannot be carried over, %s", what, why);
			refused = 1;
		} else if (condition || bare) {
			j = json_object_new_string(x);
		} else {
			size_t l = strlen(x) + 4;
			s = malloc(l);
			if (s) {
				snprintf(s, l, "$(%s)", x);
				j = json_object_new_string(s);
			}
		}
	} else if (condition) {
		S_err(c, n, "%s: a condition must be an expression @(...)", what);
		refused = 1;
	} else if (strstr(raw, "${") || strstr(raw, "$(") || strstr(raw, "$$")) {
		S_err(c, n, "%s: the literal text holds '${', '$(' or '$$', which format 1 would read"
		      " as a substitution", what);
		refused = 1;
	} else {
		j = json_object_new_string(raw);
	}
out:
	if (!j && !refused)
		S_err(c, n, "out of memory");
	free(t);
	free(x);
	free(s);
	return j;
}

static char *S_text(const xmlNode *n)
{
	xmlChar *t = xmlNodeGetContent(n);
	char *s;

	if (!t)
		return strdup("");
	s = strdup((const char *)t);
	xmlFree(t);
	return s;
}

/* the element's text as a value (json string), or NULL (reported) */
static json_object *S_text_value(struct cv *c, const xmlNode *n, const char *what, int trim)
{
	char *t = S_text(n), *u;
	json_object *j;

	if (!t) {
		S_err(c, n, "out of memory");
		return NULL;
	}
	if (trim) {
		u = S_trim_dup(t);
		free(t);
		t = u;
		if (!t) {
			S_err(c, n, "out of memory");
			return NULL;
		}
	}
	j = S_value(c, n, what, t, 0);
	free(t);
	return j;
}

/* every attribute of n as a member of obj, skipping the names in skip */
static void S_attrs(struct cv *c, const xmlNode *n, json_object *obj, const char *const *skip)
{
	const xmlAttr *a;
	char what[256];

	for (a = n->properties; a; a = a->next) {
		const char *an = (const char *)a->name;
		const char *const *k;
		xmlChar *v;
		json_object *j;
		int skipped = 0;

		for (k = skip; k && *k; k++)
			skipped |= !strcmp(*k, an);
		if (skipped)
			continue;
		if (a->ns) {
			S_err(c, n, "%s: the namespaced attribute '%s' is not importable", S_name(n), an);
			continue;
		}
		v = xmlNodeListGetString(n->doc, a->children, 1);
		snprintf(what, sizeof(what), "%s %s", S_name(n), an);
		j = S_value(c, n, what, v ? (const char *)v : "", !strcmp(an, "condition"));
		xmlFree(v);
		if (j)
			json_object_object_add(obj, an, j);
	}
}

static int S_has_attrs(const xmlNode *n)
{
	return n->properties != NULL;
}

static void S_policies(struct cv *c, const xmlNode *first, json_object *arr);

static json_object *S_arr_member(json_object *obj, const char *name)
{
	json_object *a;

	if (json_object_object_get_ex(obj, name, &a))
		return a;
	a = json_object_new_array();
	json_object_object_add(obj, name, a);
	return a;
}

static json_object *S_arr_member_obj(json_object *obj, const char *name)
{
	json_object *a;

	if (json_object_object_get_ex(obj, name, &a))
		return a;
	a = json_object_new_object();
	json_object_object_add(obj, name, a);
	return a;
}

static void S_unexpected(struct cv *c, const xmlNode *parent, const xmlNode *k)
{
	S_err(c, k, "%s: the element <%s> is not importable (format 1's %s has no place for it)",
	      S_name(parent), S_name(k), S_name(parent));
}

/* <wrapper><item>text</item>...</wrapper> → array of strings */
static void S_wrapped(struct cv *c, const xmlNode *w, const char *item, json_object *arr)
{
	const xmlNode *k;

	if (S_has_attrs(w))
		S_err(c, w, "%s: attributes here are not importable", S_name(w));
	for (k = w->children; k; k = k->next) {
		if (k->type != XML_ELEMENT_NODE)
			continue;
		if (!S_is(k, item)) {
			S_unexpected(c, w, k);
			continue;
		}
		json_object *v = S_text_value(c, k, item, 1);
		if (v)
			json_object_array_add(arr, v);
	}
}

static void S_jwt_keys(struct cv *c, const xmlNode *w, json_object *arr)
{
	const xmlNode *k;

	for (k = w->children; k; k = k->next) {
		if (k->type != XML_ELEMENT_NODE)
			continue;
		if (!S_is(k, "key")) {
			S_unexpected(c, w, k);
			continue;
		}
		if (S_has_attrs(k)) {
			json_object *o = json_object_new_object();
			S_attrs(c, k, o, NULL);
			json_object_array_add(arr, o);
		} else {
			json_object *v = S_text_value(c, k, "key", 1);
			if (v)
				json_object_array_add(arr, v);
		}
	}
}

/* the children of one policy element, by policy */
static void S_children(struct cv *c, const xmlNode *n, json_object *obj)
{
	const char *p = S_name(n);
	const xmlNode *k;

	if (!strcmp(p, "set-method") || !strcmp(p, "set-body")) {
		for (k = n->children; k; k = k->next)
			if (k->type == XML_ELEMENT_NODE)
				S_unexpected(c, n, k);
		json_object *v = S_text_value(c, n, p, !strcmp(p, "set-method"));
		if (v)
			json_object_object_add(obj, !strcmp(p, "set-method") ? "method" : "value", v);
		return;
	}
	for (k = n->children; k; k = k->next) {
		const char *kn;

		if (k->type == XML_TEXT_NODE || k->type == XML_CDATA_SECTION_NODE) {
			char *t = S_text(k), *u = t ? S_trim_dup(t) : NULL;
			if (u && *u)
				S_err(c, k, "%s: text here is not importable", p);
			free(t);
			free(u);
			continue;
		}
		if (k->type != XML_ELEMENT_NODE)
			continue;
		kn = S_name(k);
		if (((!strcmp(p, "set-header") || !strcmp(p, "set-query-parameter") ||
		      !strcmp(p, "check-header")) && !strcmp(kn, "value")) ||
		    (!strcmp(p, "ip-filter") && !strcmp(kn, "address"))) {
			json_object *v = S_text_value(c, k, kn, 0);
			if (v)
				json_object_array_add(S_arr_member(obj, kn), v);
		} else if (!strcmp(p, "ip-filter") && !strcmp(kn, "address-range")) {
			json_object *o = json_object_new_object();
			S_attrs(c, k, o, NULL);
			json_object_array_add(S_arr_member(obj, kn), o);
		} else if (!strcmp(p, "cache-lookup") &&
			   (!strcmp(kn, "vary-by-header") || !strcmp(kn, "vary-by-query-parameter"))) {
			json_object *v = S_text_value(c, k, kn, 1);
			if (v)
				json_object_array_add(S_arr_member(obj, kn), v);
		} else if (!strcmp(p, "validate-jwt") && !strcmp(kn, "issuer-signing-keys")) {
			S_jwt_keys(c, k, S_arr_member(obj, kn));
		} else if (!strcmp(p, "validate-jwt") &&
			   (!strcmp(kn, "audiences") || !strcmp(kn, "issuers"))) {
			S_wrapped(c, k, !strcmp(kn, "audiences") ? "audience" : "issuer",
				  S_arr_member(obj, kn));
		} else if (!strcmp(p, "validate-jwt") && !strcmp(kn, "required-claims")) {
			const xmlNode *cl;
			json_object *arr = S_arr_member(obj, kn);
			for (cl = k->children; cl; cl = cl->next) {
				if (cl->type != XML_ELEMENT_NODE)
					continue;
				if (!S_is(cl, "claim")) {
					S_unexpected(c, k, cl);
					continue;
				}
				json_object *o = json_object_new_object();
				S_attrs(c, cl, o, NULL);
				S_wrapped(c, cl, "value", S_arr_member(o, "value"));
				json_object_array_add(arr, o);
			}
		} else if (!strcmp(p, "cors") &&
			   (!strcmp(kn, "allowed-origins") || !strcmp(kn, "allowed-methods") ||
			    !strcmp(kn, "allowed-headers") || !strcmp(kn, "expose-headers"))) {
			/* APIM keeps preflight-result-max-age on <allowed-methods> */
			const xmlAttr *a;
			for (a = k->properties; a; a = a->next) {
				if (!strcmp(kn, "allowed-methods") &&
				    !strcmp((const char *)a->name, "preflight-result-max-age")) {
					xmlChar *v = xmlNodeListGetString(k->doc, a->children, 1);
					json_object_object_add(obj, "preflight-result-max-age",
							       json_object_new_string(v ? (const char *)v : ""));
					xmlFree(v);
				} else {
					S_err(c, k, "%s: the attribute '%s' is not importable", kn,
					      (const char *)a->name);
				}
			}
			json_object *arr = S_arr_member(obj, kn);
			const char *item = !strcmp(kn, "allowed-origins") ? "origin" :
				!strcmp(kn, "allowed-methods") ? "method" : "header";
			const xmlNode *it;
			for (it = k->children; it; it = it->next) {
				if (it->type != XML_ELEMENT_NODE)
					continue;
				if (!S_is(it, item)) {
					S_unexpected(c, k, it);
					continue;
				}
				json_object *v = S_text_value(c, it, item, 1);
				if (v)
					json_object_array_add(arr, v);
			}
		} else if (!strcmp(p, "trace") && !strcmp(kn, "message")) {
			json_object *v = S_text_value(c, k, kn, 0);
			if (v)
				json_object_object_add(obj, "message", v);
		} else if (!strcmp(p, "return-response") && !strcmp(kn, "set-status")) {
			const xmlAttr *a;
			for (a = k->properties; a; a = a->next) {
				xmlChar *v = xmlNodeListGetString(k->doc, a->children, 1);
				if (!strcmp((const char *)a->name, "code")) {
					json_object *j = S_value(c, k, "set-status code",
								 v ? (const char *)v : "", 0);
					if (j)
						json_object_object_add(obj, "status-code", j);
				} else if (!strcmp((const char *)a->name, "reason")) {
					/* lighttpd and HTTP/2 write their own reason phrase: APIM's
					 * is not behaviour a client can rely on */
					if (c->notes) {
						char where[512];
						snprintf(where, sizeof(where), "%s:%zu", c->file,
							 px_linemap_start(c->map, (size_t)xmlGetLineNo(k)));
						cfg_error(c->notes, where, "return-response: the reason phrase"
							  " '%s' is not carried over (the web server writes its"
							  " own)", v ? (const char *)v : "");
					}
				} else {
					S_err(c, k, "return-response: <set-status %s> is not importable",
					      (const char *)a->name);
				}
				xmlFree(v);
			}
		} else if (!strcmp(p, "return-response") && !strcmp(kn, "set-header")) {
			xmlChar *name = xmlGetProp(k, (const xmlChar *)"name");
			xmlChar *act = xmlGetProp(k, (const xmlChar *)"exists-action");
			const xmlNode *v, *one = NULL;
			int nv = 0;
			for (v = k->children; v; v = v->next)
				if (v->type == XML_ELEMENT_NODE) {
					if (!S_is(v, "value"))
						S_unexpected(c, k, v);
					one = v;
					nv++;
				}
			if (!name || nv != 1 || (act && strcmp((const char *)act, "override"))) {
				S_err(c, k, "return-response: <set-header> is importable with a name and"
				      " exactly one <value> (exists-action override) only");
			} else {
				json_object *j = S_text_value(c, one, "value", 0);
				if (j)
					json_object_object_add(S_arr_member_obj(obj, "headers"),
							       (const char *)name, j);
			}
			xmlFree(name);
			xmlFree(act);
		} else if (!strcmp(p, "return-response") && !strcmp(kn, "set-body")) {
			json_object *j = S_text_value(c, k, "set-body", 0);
			if (S_has_attrs(k))
				S_err(c, k, "set-body: attributes (template) are not importable");
			if (j)
				json_object_object_add(obj, "body", j);
		} else if (!strcmp(p, "send-request") &&
			   (!strcmp(kn, "set-url") || !strcmp(kn, "set-method") ||
			    !strcmp(kn, "set-body"))) {
			json_object *j = S_text_value(c, k, kn, strcmp(kn, "set-body") != 0);
			if (S_has_attrs(k))
				S_err(c, k, "%s: attributes are not importable", kn);
			if (j)
				json_object_object_add(obj, kn, j);
		} else if (!strcmp(p, "send-request") && !strcmp(kn, "set-header")) {
			json_object *o = json_object_new_object();
			const xmlNode *v;
			S_attrs(c, k, o, NULL);
			for (v = k->children; v; v = v->next) {
				if (v->type != XML_ELEMENT_NODE)
					continue;
				if (!S_is(v, "value")) {
					S_unexpected(c, k, v);
					continue;
				}
				json_object *j = S_text_value(c, v, "value", 0);
				if (j)
					json_object_array_add(S_arr_member(o, "value"), j);
			}
			json_object_array_add(S_arr_member(obj, "set-header"), o);
		} else if (!strcmp(p, "choose") && (!strcmp(kn, "when") || !strcmp(kn, "otherwise"))) {
			json_object *pol = json_object_new_array();
			if (!strcmp(kn, "when")) {
				json_object *o = json_object_new_object();
				S_attrs(c, k, o, NULL);
				if (!json_object_object_get_ex(o, "condition", NULL))
					S_err(c, k, "when: a condition is required");
				json_object_object_add(o, "policies", pol);
				json_object_array_add(S_arr_member(obj, "when"), o);
			} else {
				if (S_has_attrs(k))
					S_err(c, k, "otherwise: attributes are not importable");
				json_object_object_add(obj, "otherwise", pol);
			}
			S_policies(c, k->children, pol);
		} else {
			S_unexpected(c, n, k);
		}
	}
}

/* the policies of format 1 (policy/pol_list.h), by their APIM names */
static const char *const known[] = {
	"authentication-basic", "cache-lookup", "cache-lookup-value", "cache-remove-value",
	"cache-store", "cache-store-value", "check-header", "choose", "cors",
	"find-and-replace", "forward-request", "ip-filter", "limit-concurrency",
	"mock-response", "quota", "quota-by-key", "rate-limit", "rate-limit-by-key",
	"retry", "return-response", "send-request", "set-backend-service", "set-body",
	"rewrite-uri", "set-header", "set-method", "set-query-parameter", "set-status",
	"set-variable", "trace", "validate-jwt", NULL
};

/* APIM policies that wrap others where format 1's form holds none */
static int S_wraps(const char *p)
{
	return !strcmp(p, "retry") || !strcmp(p, "limit-concurrency");
}

static const struct px_fragment *S_fragment(struct cv *c, const char *id)
{
	size_t i;

	for (i = 0; i < c->n_frags; i++)
		if (!strcmp(c->frags[i].id, id))
			return &c->frags[i];
	return NULL;
}

static xmlDoc *S_parse(struct cv *c, const char *xml, size_t len, const char *file,
		       struct px_linemap *map);

static void S_include(struct cv *c, const xmlNode *n, json_object *arr)
{
	xmlChar *id = xmlGetProp(n, (const xmlChar *)"fragment-id");
	const struct px_fragment *f;
	const char *saved = c->file;
	struct px_linemap *saved_map = c->map;
	struct px_linemap map = PX_LINEMAP_INIT;
	xmlDoc *doc = NULL;
	xmlNode *root;

	if (!id || n->properties->next || n->children) {
		S_err(c, n, "include-fragment: exactly the attribute fragment-id is expected");
		goto out;
	}
	f = S_fragment(c, (const char *)id);
	if (!f) {
		S_err(c, n, "include-fragment: no policy fragment '%s' among the artifacts",
		      (const char *)id);
		goto out;
	}
	if (c->depth >= PX_MAX_DEPTH) {
		S_err(c, n, "include-fragment: fragments nest more than %d deep (a cycle?)",
		      PX_MAX_DEPTH);
		goto out;
	}
	doc = S_parse(c, f->xml, f->len, f->file, &map);
	if (!doc)
		goto out;
	root = xmlDocGetRootElement(doc);
	c->file = f->file;
	c->map = &map;
	c->depth++;
	if (!root || !S_is(root, "fragment"))
		S_err(c, root, "a policy fragment's root element must be <fragment>");
	else
		S_policies(c, root->children, arr);
	c->depth--;
	c->file = saved;
	c->map = saved_map;
out:
	px_linemap_release(&map);
	xmlFree(id);
	xmlFreeDoc(doc);
}

static void S_policies(struct cv *c, const xmlNode *first, json_object *arr)
{
	const xmlNode *n;
	const char *const *k;
	size_t nerr;

	if (++c->depth > PX_MAX_DEPTH) {
		S_err(c, first, "policies nest more than %d deep", PX_MAX_DEPTH);
		c->depth--;
		return;
	}
	for (n = first; n; n = n->next) {
		const char *p;
		json_object *obj, *el;

		if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
			char *t = S_text(n), *u = t ? S_trim_dup(t) : NULL;
			if (u && *u)
				S_err(c, n, "text between policies is not importable");
			free(t);
			free(u);
			continue;
		}
		if (n->type != XML_ELEMENT_NODE)
			continue;
		p = S_name(n);
		if (!strcmp(p, "include-fragment")) {
			S_include(c, n, arr);
			continue;
		}
		if (!strcmp(p, "base")) {
			if (S_has_attrs(n) || n->children)
				S_err(c, n, "<base /> takes no attributes or children");
			obj = json_object_new_object();
			el = json_object_new_object();
			json_object_object_add(el, "base", obj);
			json_object_array_add(arr, el);
			continue;
		}
		for (k = known; *k && strcmp(*k, p); k++)
			;
		if (!*k) {
			S_err(c, n, "the policy '%s' is not importable: format 1 has no such policy"
			      " (docs/policies.md)", p);
			continue;
		}
		if (S_wraps(p) && xmlFirstElementChild((xmlNode *)(uintptr_t)n)) {
			S_err(c, n, "%s: APIM's %s wraps policies; format 1's %s holds none and"
			      " applies to the backend call itself, so the meaning would change",
			      p, p, p);
			continue;
		}
		obj = json_object_new_object();
		nerr = c->errs->n + c->errs->dropped;
		S_attrs(c, n, obj, NULL);
		S_children(c, n, obj);
		S_origin(c, n, obj, c->errs->n + c->errs->dropped != nerr);
		el = json_object_new_object();
		json_object_object_add(el, p, obj);
		json_object_array_add(arr, el);
	}
	c->depth--;
}

struct first_error {
	int seen;
	int line;
	char msg[400];
};

static void S_first_error(void *arg, xmlErrorPtr e)
{
	struct first_error *f = arg;

	if (f->seen || !e || e->level < XML_ERR_ERROR)
		return;
	f->seen = 1;
	f->line = e->line;
	snprintf(f->msg, sizeof(f->msg), "%s", e->message ? e->message : "not XML");
}

static xmlDoc *S_parse(struct cv *c, const char *xml, size_t len, const char *file,
		       struct px_linemap *map)
{
	struct first_error first;
	xmlParserCtxt *ctxt = NULL;
	xmlDoc *doc = NULL;
	char *tok = NULL, where[512];
	size_t tl, line;
	const char *why;

	if (len > PX_MAX_XML_BYTES) {
		snprintf(where, sizeof(where), "%s:1", file);
		cfg_error(c->errs, where, "the policy is larger than %u bytes", PX_MAX_XML_BYTES);
		c->failed = 1;
		return NULL;
	}
	if (px_pretokenize(xml, len, &tok, &tl, &line, &why, map) != 0) {
		snprintf(where, sizeof(where), "%s:%zu", file, line);
		cfg_error(c->errs, where, "%s", why);
		c->failed = 1;
		return NULL;
	}
	ctxt = xmlNewParserCtxt();
	if (!ctxt) {
		snprintf(where, sizeof(where), "%s:1", file);
		cfg_error(c->errs, where, "out of memory");
		c->failed = 1;
		goto out;
	}
	/* the first error names the place; libxml2's last is often "premature
	 * end of data" at the end of the file */
	first.seen = 0;
	xmlSetStructuredErrorFunc(&first, S_first_error);
	doc = xmlCtxtReadMemory(ctxt, tok, (int)tl, file, NULL,
				XML_PARSE_NONET | XML_PARSE_NOWARNING | XML_PARSE_BIG_LINES);
	xmlSetStructuredErrorFunc(NULL, NULL);
	if (!doc || first.seen) {
		const xmlError *e = xmlCtxtGetLastError(ctxt);
		char msg[512];
		size_t n;
		int eline = first.seen ? first.line : e ? e->line : 0;

		snprintf(msg, sizeof(msg), "%s", first.seen ? first.msg :
			 e && e->message ? e->message : "not XML");
		n = strlen(msg);
		while (n && isspace((unsigned char)msg[n - 1]))
			msg[--n] = '\0';
		xmlFreeDoc(doc);
		doc = NULL;
		snprintf(where, sizeof(where), "%s:%d", file, eline);
		cfg_error(c->errs, where, "not well-formed XML even with its expressions read"
			  " as APIM reads them: %s", msg);
		c->failed = 1;
		goto out;
	}
	if (doc->intSubset || doc->extSubset) {
		snprintf(where, sizeof(where), "%s:1", file);
		cfg_error(c->errs, where, "a DOCTYPE is not importable (APIM accepts none)");
		c->failed = 1;
		xmlFreeDoc(doc);
		doc = NULL;
	}
out:
	xmlFreeParserCtxt(ctxt);
	free(tok);
	return doc;
}

int px_convert(const char *xml, size_t len, const char *file, const struct px_fragment *frags,
	       size_t n_frags, json_object **out, struct px_origins *orig, struct cfg_errors *errs,
	       struct cfg_errors *notes)
{
	struct px_linemap map = PX_LINEMAP_INIT;
	struct cv c = { file, &map, frags, n_frags, orig, errs, notes, 0, 0 };
	static const char *const sections[] = { "inbound", "backend", "outbound", "on-error" };
	xmlDoc *doc;
	xmlNode *root, *s;
	json_object *res = NULL;
	size_t i;

	*out = NULL;
	doc = S_parse(&c, xml, len, file, &map);
	if (!doc) {
		px_linemap_release(&map);
		return -1;
	}
	root = xmlDocGetRootElement(doc);
	if (!root || !S_is(root, "policies")) {
		S_err(&c, root, "the root element must be <policies>");
		goto out;
	}
	res = json_object_new_object();
	if (!res) {
		S_err(&c, root, "out of memory");
		goto out;
	}
	for (s = root->children; s; s = s->next) {
		if (s->type == XML_TEXT_NODE) {
			char *t = S_text(s), *u = t ? S_trim_dup(t) : NULL;
			if (u && *u)
				S_err(&c, s, "text between sections is not importable");
			free(t);
			free(u);
			continue;
		}
		if (s->type != XML_ELEMENT_NODE)
			continue;
		for (i = 0; i < 4 && strcmp(S_name(s), sections[i]); i++)
			;
		if (i == 4) {
			S_err(&c, s, "<%s> is not a policy section (inbound, backend, outbound,"
			      " on-error)", S_name(s));
			continue;
		}
		if (json_object_object_get_ex(res, sections[i], NULL)) {
			S_err(&c, s, "the section <%s> is given twice", sections[i]);
			continue;
		}
		if (S_has_attrs(s))
			S_err(&c, s, "<%s>: attributes are not importable", sections[i]);
		json_object *arr = json_object_new_array();
		json_object_object_add(res, sections[i], arr);
		S_policies(&c, s->children, arr);
	}
out:
	xmlFreeDoc(doc);
	px_linemap_release(&map);
	/* even when failed: what did convert, so that the loader can check it
	 * and every refusal is listed in one run */
	*out = res;
	return c.failed ? -1 : 0;
}
