/*
 * rewrite-uri — the path and query the backend is called with, from a
 * template of "{param}" and "${...}" values (polmod.h).
 */
#include "policy/polmod.h"

#include <stdlib.h>
#include <string.h>

#include "policy/engine.h"
#include "policy/loader.h"
#include "policy/path.h"

struct conf {
	struct tpl *tmpl;
	int copy_unmatched;
};

static const struct pol_attr attrs[] = {
	{ "template", POL_A_TPL, POL_A_REQUIRED | POL_A_BRACES, 0, 0, 0, NULL, NULL,
	  offsetof(struct conf, tmpl) },
	{ "copy-unmatched-params", POL_A_BOOL, 0, 0, 0, 1, NULL, NULL,
	  offsetof(struct conf, copy_unmatched) },
	POL_ATTRS_END
};

/* Does the path of t (up to its first literal '?') hold a dot segment of its
 * own? Each value stands in as "x": the request-time check (run) catches the
 * values; this catches a template that would refuse every request, when it
 * is loaded. Returns 0 when clean, -1 otherwise (and on an allocation
 * failure, which the loader reports as the same error). */
static int literal_check(const struct tpl *t)
{
	struct tpl_buf b = TPL_BUF_INIT(1 << 20);
	enum tpl_status st = TPL_OK;
	int rc = -1;

	for (size_t i = 0; st == TPL_OK && i < t->n; i++) {
		const struct tpl_part *part = &t->v[i];
		const char *q;

		if (part->root != TPL_LITERAL) {
			st = tpl_buf_put(&b, "x", 1, TPL_ENC_RAW);
			continue;
		}
		q = memchr(part->text, '?', part->len);
		st = tpl_buf_put(&b, part->text, q ? (size_t)(q - part->text) : part->len,
				 TPL_ENC_RAW);
		if (q)
			break;
	}
	if (st == TPL_OK && b.p)
		rc = path_check(b.p, b.len);
	tpl_buf_release(&b);
	return rc;
}

static void compile(struct loader *ld, json_object *o, void *conf)
{
	struct conf *cf = conf;
	size_t mark;

	(void)o;
	if (!cf->tmpl)
		return;
	mark = ld_push_member(ld, "template");
	if (cf->tmpl->n == 0 || cf->tmpl->v[0].root != TPL_LITERAL || cf->tmpl->v[0].text[0] != '/')
		ld_err(ld, "must start with '/'");
	else if (literal_check(cf->tmpl) != 0)
		ld_err(ld, "has a '.' or '..' path segment, a malformed escape or an encoded "
		       "NUL, CR or LF");
	ld_pop(ld, mark);
}

/* newq plus the client's parameters (query) that newq does not set: a new
 * string, or NULL with *st set. */
static char *copy_unmatched(const char *newq, const char *query, enum tpl_status *st)
{
	struct tpl_buf out = TPL_BUF_INIT(POL_MAX_VALUE_BYTES);
	const char *s = query;

	*st = tpl_buf_put(&out, newq, strlen(newq), TPL_ENC_RAW);
	while (*st == TPL_OK && *s) {
		size_t seg = strcspn(s, "&");
		const char *eq = memchr(s, '=', seg);
		char *dn = pol_query_decode(s, eq ? (size_t)(eq - s) : seg);

		if (!dn) {
			*st = TPL_NOMEM;
			break;
		}
		if (seg > 0 && !pol_query_has(newq, dn)) {
			if (out.len > 0)
				*st = tpl_buf_put(&out, "&", 1, TPL_ENC_RAW);
			if (*st == TPL_OK)
				*st = tpl_buf_put(&out, s, seg, TPL_ENC_RAW);
		}
		free(dn);
		s += seg;
		if (*s == '&')
			s++;
	}
	if (*st != TPL_OK) {
		tpl_buf_release(&out);
		return NULL;
	}
	if (!out.p && !(out.p = strdup("")))
		*st = TPL_NOMEM;
	return out.p;
}

static enum pol_step run(struct pol_call *c, const struct pol_policy *p, enum pol_section_id sec)
{
	const struct conf *cf = p->conf;
	enum tpl_status st;
	char *path, *q, *newq, *newp;

	(void)sec;
	st = pol_expand(c, cf->tmpl, TPL_ENC_URL, &path);
	if (st != TPL_OK)
		return pol_fail_tpl(c, st);
	/* the template's own '?' (a literal) splits path and query */
	q = strchr(path, '?');
	if (q)
		*q++ = '\0';
	/* Encoding each value keeps it from adding a '/', but a value of "..", or
	 * "." next to a literal '.', still makes a whole dot segment, and encoding
	 * its dots is no help: RFC 3986 makes %2E equal to '.', so a backend
	 * resolves "/a/%2E%2E/b" to "/b" (and libcurl sends the path as is). So the
	 * finished path is held to the same rule as a client's path (path_check),
	 * here, the one place a template becomes the upstream path. */
	if (path_check(path, strlen(path)) != 0) {
		free(path);
		return pol_fail(c, 400, "A value put into the URL makes a '.' or '..' path segment.",
				"rewrite-uri made a dot segment");
	}
	newp = strdup(path);
	newq = strdup(q ? q : "");
	free(path);
	if (!newp || !newq) {
		free(newp);
		free(newq);
		return pol_oom(c);
	}
	if (cf->copy_unmatched && c->query && *c->query) {
		char *all = copy_unmatched(newq, c->query, &st);

		free(newq);
		newq = all;
		if (!newq) {
			free(newp);
			return pol_fail_tpl(c, st);
		}
	}
	free(c->path);
	c->path = newp;
	free(c->query);
	c->query = newq;
	return POL_STEP_NEXT;
}

const struct pol_module pol_mod_rewrite_uri = {
	.name = "rewrite-uri",
	.sections = POL_SEC_IN,
	.attrs = attrs,
	.conf_size = sizeof(struct conf),
	.compile = compile,
	.run = run,
};
