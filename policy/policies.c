/*
 * policies — parsing of the "policies" member of every scope, the generic
 * validation of a module's attributes from its table (polmod.h), and the
 * flattening of scopes into plans (policies.h). Names no policy: the
 * modules are in pol_list.h.
 */
#include "policy/policies.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy/expr.h"
#include "policy/loader.h"
#include "policy/polmod.h"

#define POL_NAME_MAX 256
#define POL_BODY_MAX (1024 * 1024)

static const char *const section_names[POL_N_SECTIONS] = {
	"inbound", "backend", "outbound", "on-error"
};

const char *pol_policy_name(const struct pol_policy *p)
{
	return p->kind == POL_MODULE ? p->mod->name : "base";
}

static const struct pol_module *const modules[] = {
#define POL_MOD(id) &pol_mod_##id,
#include "policy/pol_list.h"
#undef POL_MOD
	NULL
};

const struct pol_module *const *pol_modules(void)
{
	return modules;
}

const char *pol_section_name(enum pol_section_id s)
{
	return (unsigned)s < POL_N_SECTIONS ? section_names[s] : "unknown";
}

/* ---- small checks -------------------------------------------------------- */

static int is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

int pol_is_token(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > POL_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!is_tchar((unsigned char)s[i]))
			return 0;
	return 1;
}

int pol_is_query_name(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > POL_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c == 0x7f || strchr("&=#+%?", c))
			return 0;
	}
	return 1;
}

static void free_secret(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static void strings_free(struct pol_strings *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static void tpls_free(struct pol_tpls *l)
{
	for (size_t i = 0; i < l->n; i++)
		tpl_free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* ---- attributes ---------------------------------------------------------- *
 * Each returns 0 (set), 1 (absent and optional) or -1 (reported). The current
 * path is the policy's attribute object; the member is pushed for messages. */

static json_object *attr_get(struct loader *ld, json_object *o, const char *name, int required,
			     size_t *mark)
{
	json_object *v = ld_get(ld, o, name, required);

	if (v)
		*mark = ld_push_member(ld, name);
	return v;
}

int pol_parse_decimal(const char *s, int64_t *out)
{
	int64_t v = 0;
	int neg = 0;

	if (*s == '-') {
		neg = 1;
		s++;
	}
	if (!*s || strlen(s) > 18)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
	}
	*out = neg ? -v : v;
	return 0;
}

/* An integer: a JSON integer or a string of digits ("10", as in APIM's XML). */
static int attr_int(struct loader *ld, json_object *o, const char *name, int required,
		    int64_t min, int64_t max, int64_t *out)
{
	size_t mark = 0;
	json_object *v = attr_get(ld, o, name, required, &mark);
	int rc = -1;

	if (!v)
		return required ? -1 : 1;
	if (json_object_is_type(v, json_type_string)) {
		int64_t i;

		if (pol_parse_decimal(json_object_get_string(v), &i) != 0) {
			ld_err(ld, "must be an integer (a number or a string of digits)");
		} else if (i < min || i > max) {
			ld_err(ld, "must be an integer from %lld to %lld, not %lld", (long long)min,
			       (long long)max, (long long)i);
		} else {
			*out = i;
			rc = 0;
		}
	} else {
		rc = ld_int(ld, v, min, max, out);
	}
	ld_pop(ld, mark);
	return rc;
}

/* A boolean: JSON true/false or the strings "true"/"false". */
static int attr_bool(struct loader *ld, json_object *o, const char *name, int required, int *out)
{
	size_t mark = 0;
	json_object *v = attr_get(ld, o, name, required, &mark);
	int rc = -1;

	if (!v)
		return required ? -1 : 1;
	if (json_object_is_type(v, json_type_string)) {
		const char *s = json_object_get_string(v);

		if (strcasecmp(s, "true") == 0) {
			*out = 1;
			rc = 0;
		} else if (strcasecmp(s, "false") == 0) {
			*out = 0;
			rc = 0;
		} else {
			ld_err(ld, "must be a boolean (true or false)");
		}
	} else {
		rc = ld_bool(ld, v, out);
	}
	ld_pop(ld, mark);
	return rc;
}

/* A string, {{named values}} substituted, no "${". */
static int attr_str(struct loader *ld, json_object *o, const char *name, int required,
		    char **out, int *secret)
{
	size_t mark = 0;
	json_object *v = attr_get(ld, o, name, required, &mark);
	int rc;

	if (!v)
		return required ? -1 : 1;
	rc = ld_string(ld, v, STR_SUBST, out, secret);
	ld_pop(ld, mark);
	return rc;
}

/* A string that names a header: a token. */
static int attr_header_name(struct loader *ld, json_object *o, const char *name, int required,
			    char **out)
{
	size_t mark = 0;
	json_object *v = attr_get(ld, o, name, required, &mark);
	int secret, rc;

	if (!v)
		return required ? -1 : 1;
	rc = ld_string(ld, v, STR_SUBST | STR_NO_SECRET, out, &secret);
	if (rc == 0 && !pol_is_token(*out)) {
		ld_err_value(ld, *out, secret, "is not a valid header name");
		free(*out);
		*out = NULL;
		rc = -1;
	}
	ld_pop(ld, mark);
	return rc;
}

/* Parses one string value v (current path at it) as a template. */
int pol_value_tpl(struct loader *ld, json_object *v, unsigned tflags, struct tpl **out)
{
	char *s, why[300];
	int secret, rc = -1;

	*out = NULL;
	if (ld_string(ld, v, STR_SUBST | STR_REQUEST_VALUES, &s, &secret) != 0)
		return -1;
	if (strlen(s) > POL_BODY_MAX)
		ld_err(ld, "too long (at most %d bytes)", POL_BODY_MAX);
	else if (tpl_parse(s, strlen(s), tflags, out, why, sizeof(why)) != 0)
		ld_err(ld, "%s", why);
	else
		rc = pol_note_reads(ld, (*out)->reads);
	if (rc != 0) {
		tpl_free(*out);
		*out = NULL;
	}
	free_secret(s);
	return rc;
}

int pol_note_reads(struct loader *ld, unsigned long reads)
{
	if ((reads & TPL_READS(TPL_RESPONSE_BODY)) && ld->section != POL_OUTBOUND &&
	    ld->section != POL_ON_ERROR) {
		ld_err(ld, "'${response.body}' is only available in the outbound and on-error "
		       "sections");
		return -1;
	}
	ld->reads |= reads;
	return 0;
}

static int attr_tpl(struct loader *ld, json_object *o, const char *name, int required,
		    unsigned tflags, struct tpl **out)
{
	size_t mark = 0;
	json_object *v = attr_get(ld, o, name, required, &mark);
	int rc;

	if (!v)
		return required ? -1 : 1;
	rc = pol_value_tpl(ld, v, tflags, out);
	ld_pop(ld, mark);
	return rc;
}

/* A string or an array of strings, as templates (as_tpl) or plain strings. */
static int attr_list(struct loader *ld, json_object *o, const char *name, int required,
		     int as_tpl, struct pol_tpls *tl, struct pol_strings *sl)
{
	size_t mark = 0, n;
	json_object *v = attr_get(ld, o, name, required, &mark);
	int rc = -1, single;

	if (!v)
		return required ? -1 : 1;
	single = json_object_is_type(v, json_type_string);
	if (!single && ld_is_array(ld, v) != 0)
		goto out;
	n = single ? 1 : json_object_array_length(v);
	if (n > POL_MAX_VALUES) {
		ld_err(ld, "has more than %d values", POL_MAX_VALUES);
		goto out;
	}
	if (n == 0) {
		rc = 0;
		goto out;
	}
	if (as_tpl)
		tl->v = calloc(n, sizeof(*tl->v));
	else
		sl->v = calloc(n, sizeof(*sl->v));
	if (as_tpl ? !tl->v : !sl->v) {
		ld_err(ld, "out of memory");
		goto out;
	}
	rc = 0;
	for (size_t i = 0; i < n; i++) {
		json_object *e = single ? v : json_object_array_get_idx(v, i);
		size_t m2 = single ? ld->plen : ld_push_index(ld, i);

		if (as_tpl) {
			if (pol_value_tpl(ld, e, 0, &tl->v[tl->n]) == 0)
				tl->n++;
			else
				rc = -1;
		} else {
			if (ld_string(ld, e, STR_SUBST, &sl->v[sl->n], NULL) == 0)
				sl->n++;
			else
				rc = -1;
		}
		ld_pop(ld, m2);
	}
out:
	ld_pop(ld, mark);
	return rc;
}

static int attr_enum(struct loader *ld, json_object *o, const char *name, int required,
		     const char *const names[], int *out)
{
	size_t mark = 0;
	json_object *v = attr_get(ld, o, name, required, &mark);
	char *s;
	int rc = -1;

	if (!v)
		return required ? -1 : 1;
	if (ld_string(ld, v, STR_SUBST | STR_NO_SECRET, &s, NULL) == 0) {
		for (int i = 0; names[i]; i++) {
			if (strcmp(s, names[i]) == 0) {
				*out = i;
				rc = 0;
			}
		}
		if (rc != 0) {
			char list[200];
			size_t l = 0;

			list[0] = '\0';
			for (int i = 0; names[i]; i++)
				l += (size_t)snprintf(list + l, sizeof(list) - l, "%s'%s'",
						      i ? ", " : "", names[i]);
			ld_err_value(ld, s, 0, "is not one of %s", list);
		}
		free(s);
	}
	ld_pop(ld, mark);
	return rc;
}

/* A string (current path at it) as an expression of type want: "$(EXPR)"
 * when dollar, else the whole string. Reports "column N: ..." (of the
 * string) and a wrong type. */
static int value_expr(struct loader *ld, json_object *v, int dollar, enum expr_type want,
		      struct expr **out)
{
	char *s = NULL, why[300];
	const char *src;
	size_t len, used = 0, off = dollar ? 2 : 0;
	int secret, rc = -1;

	*out = NULL;
	if (ld_string(ld, v, STR_SUBST | STR_REQUEST_VALUES, &s, &secret) != 0)
		return -1;
	len = strlen(s);
	src = s + off;
	if (dollar) {
		if (len < 3 || s[len - 1] != ')')
			goto bad_form;
		len -= 3;
	}
	if (expr_compile(src, len, 0, out, &used, why, sizeof(why)) != 0) {
		/* columns of the member's string, not of the expression alone */
		size_t col;

		if (off && sscanf(why, "column %zu:", &col) == 1) {
			const char *rest = strchr(why, ':');

			ld_err(ld, "column %zu%s", col + off, rest ? rest : "");
		} else {
			ld_err(ld, "%s", why);
		}
		goto out;
	}
	if (expr_type(*out) != want) {
		ld_err(ld, want == EXPR_BOOL ? "a condition must be a boolean" :
		       "must be an integer expression");
		goto fail;
	}
	if (pol_note_reads(ld, expr_reads(*out)) != 0)
		goto fail;
	rc = 0;
	goto out;
bad_form:
	ld_err(ld, "must be an integer or '$(EXPR)', an integer expression");
	goto out;
fail:
	expr_free(*out);
	*out = NULL;
out:
	free_secret(s);
	return rc;
}

static int attr_cond(struct loader *ld, json_object *o, const char *name, int required,
		     struct expr **out)
{
	size_t mark = 0;
	json_object *v = attr_get(ld, o, name, required, &mark);
	int rc;

	if (!v)
		return required ? -1 : 1;
	rc = value_expr(ld, v, 0, EXPR_BOOL, out);
	ld_pop(ld, mark);
	return rc;
}

/* An integer as attr_int, or "$(EXPR)". */
static int attr_int_expr(struct loader *ld, json_object *o, const struct pol_attr *a,
			 struct pol_int_expr *out)
{
	size_t mark = 0;
	json_object *v;
	int rc;

	out->v = a->def;
	out->e = NULL;
	v = ld_get(ld, o, a->name, 0);
	if (v && json_object_is_type(v, json_type_string) &&
	    strncmp(json_object_get_string(v), "$(", 2) == 0) {
		mark = ld_push_member(ld, a->name);
		rc = value_expr(ld, v, 1, EXPR_INT, &out->e);
		ld_pop(ld, mark);
		return rc;
	}
	return attr_int(ld, o, a->name, (a->flags & POL_A_REQUIRED) != 0, a->min, a->max, &out->v);
}

/* ---- attributes from a module's table (polmod.h) ------------------------- */

static void *field(void *conf, const struct pol_attr *a)
{
	return (char *)conf + a->off;
}

/* Validates o against attrs and stores every value into conf; every problem
 * is reported at its member's path. */
void pol_attrs_parse(struct loader *ld, json_object *o, const struct pol_attr *attrs,
		     void *conf)
{
	const char *known[POL_MAX_ATTRS + 1];
	size_t n = 0;

	for (const struct pol_attr *a = attrs; a->name && n < POL_MAX_ATTRS; a++)
		known[n++] = a->name;
	known[n] = NULL;
	ld_check_members(ld, o, known);
	for (const struct pol_attr *a = attrs; a->name; a++) {
		int req = (a->flags & POL_A_REQUIRED) != 0, secret, rc;
		char **str = field(conf, a);

		switch (a->type) {
		case POL_A_INT:
			*(int64_t *)field(conf, a) = a->def;
			attr_int(ld, o, a->name, req, a->min, a->max, field(conf, a));
			break;
		case POL_A_BOOL:
			*(int *)field(conf, a) = (int)a->def;
			attr_bool(ld, o, a->name, req, field(conf, a));
			break;
		case POL_A_ENUM:
			*(int *)field(conf, a) = (int)a->def;
			attr_enum(ld, o, a->name, req, a->names, field(conf, a));
			break;
		case POL_A_STR:
		case POL_A_HEADER_NAME:
			rc = a->type == POL_A_STR ? attr_str(ld, o, a->name, req, str, &secret) :
				attr_header_name(ld, o, a->name, req, str);
			if (rc == 1 && a->def_str && !(*str = strdup(a->def_str)))
				ld_err(ld, "out of memory");
			break;
		case POL_A_TPL:
			attr_tpl(ld, o, a->name, req, a->flags & POL_A_BRACES ? TPL_PARSE_BRACES : 0,
				 field(conf, a));
			break;
		case POL_A_STR_LIST:
			attr_list(ld, o, a->name, req, 0, NULL, field(conf, a));
			break;
		case POL_A_TPL_LIST:
			attr_list(ld, o, a->name, req, 1, field(conf, a), NULL);
			break;
		case POL_A_COND:
			attr_cond(ld, o, a->name, req, field(conf, a));
			break;
		case POL_A_INT_EXPR:
			attr_int_expr(ld, o, a, field(conf, a));
			break;
		case POL_A_RAW:
			/* compile reads it; only "missing" is generic */
			if (req && !ld_present(o, a->name))
				(void)ld_get(ld, o, a->name, 1);
			break;
		}
	}
}

/* Frees what attrs_parse stored into conf. */
void pol_attrs_release(const struct pol_attr *attrs, void *conf)
{
	for (const struct pol_attr *a = attrs; a->name; a++) {
		char **str = field(conf, a);

		switch (a->type) {
		case POL_A_STR:
		case POL_A_HEADER_NAME:
			if (a->flags & POL_A_SECRET)
				free_secret(*str);
			else
				free(*str);
			*str = NULL;
			break;
		case POL_A_TPL:
			tpl_free(*(struct tpl **)field(conf, a));
			*(struct tpl **)field(conf, a) = NULL;
			break;
		case POL_A_STR_LIST:
			strings_free(field(conf, a));
			break;
		case POL_A_TPL_LIST:
			tpls_free(field(conf, a));
			break;
		case POL_A_COND:
			expr_free(*(struct expr **)field(conf, a));
			*(struct expr **)field(conf, a) = NULL;
			break;
		case POL_A_INT_EXPR:
			expr_free(((struct pol_int_expr *)field(conf, a))->e);
			((struct pol_int_expr *)field(conf, a))->e = NULL;
			break;
		default:
			break;
		}
	}
}

const void *pol_attr_value(const struct pol_policy *p, const char *name)
{
	if (p->kind != POL_MODULE || !p->conf)
		return NULL;
	for (const struct pol_attr *a = p->mod->attrs; a->name; a++)
		if (a->type != POL_A_RAW && strcmp(a->name, name) == 0)
			return (const char *)p->conf + a->off;
	return NULL;
}

static const struct pol_module *module_find(const char *name)
{
	for (size_t i = 0; modules[i]; i++)
		if (strcmp(modules[i]->name, name) == 0)
			return modules[i];
	return NULL;
}

/* A module's element (current path at its name): its conf from the table,
 * then its own compile. */
static void module_parse(struct loader *ld, json_object *o, struct pol_policy *p)
{
	p->conf = calloc(1, p->mod->conf_size ? p->mod->conf_size : 1);
	if (!p->conf) {
		ld_err(ld, "out of memory");
		return;
	}
	pol_attrs_parse(ld, o, p->mod->attrs, p->conf);
	if (p->mod->compile)
		p->mod->compile(ld, o, p->conf);
}

void pol_walk(const struct pol_policy *p, void (*fn)(const struct pol_policy *q, void *arg),
	      void *arg)
{
	const struct pol_list *l;
	size_t n = 0;

	fn(p, arg);
	if (p->kind != POL_MODULE || !p->conf || !p->mod->lists)
		return;
	l = p->mod->lists(p->conf, &n);
	for (size_t i = 0; l && i < n; i++)
		for (size_t j = 0; j < l[i].n; j++)
			pol_walk(l[i].v[j], fn, arg);
}

struct needs_walk {
	enum pol_section_id sec;
	unsigned needs;
};

static void add_needs(const struct pol_policy *p, void *arg)
{
	struct needs_walk *w = arg;

	w->needs |= p->needs;
	if (p->kind == POL_MODULE && p->mod->needs)
		w->needs |= p->mod->needs(p->conf, w->sec);
}

/* What p (and every policy nested in it) needs buffered in section sec: what
 * their values read, and what the modules say. */
static unsigned policy_needs(const struct pol_policy *p, enum pol_section_id sec)
{
	struct needs_walk w = { sec, 0 };

	pol_walk(p, add_needs, &w);
	return w.needs;
}

/* ---- the policies -------------------------------------------------------- */

static void policy_free(struct pol_policy *p)
{
	if (!p)
		return;
	free(p->counter_prefix);
	if (p->kind == POL_MODULE && p->conf && p->mod->lists) {
		size_t n = 0;
		const struct pol_list *l = p->mod->lists(p->conf, &n);

		for (size_t i = 0; l && i < n; i++)
			for (size_t j = 0; j < l[i].n; j++)
				policy_free(l[i].v[j]);
	}
	if (p->kind == POL_MODULE && p->conf) {
		if (p->mod->release)
			p->mod->release(p->conf);
		pol_attrs_release(p->mod->attrs, p->conf);
		free(p->conf);
	}
	free(p);
}

/* One element of a section (current path at "[i]"). Returns the policy or
 * NULL (reported). */
static struct pol_policy *parse_element(struct loader *ld, json_object *e,
					enum pol_section_id sec)
{
	struct pol_policy *p = NULL;
	const struct pol_module *mod = NULL;
	const char *name = NULL;
	json_object *attrs = NULL;
	size_t mark;
	int base;

	if (ld_is_object(ld, e) != 0)
		return NULL;
	if (json_object_object_length(e) != 1) {
		ld_err(ld, "a policy element must have exactly one member, the policy's name");
		return NULL;
	}
	json_object_object_foreach(e, k, v) {
		name = k;
		attrs = v;
	}
	/* "base" is the one element that is not a module: where the enclosing
	 * scope's section runs (flatten) */
	mod = module_find(name);
	base = strcmp(name, "base") == 0;
	mark = ld_push_key(ld, name);
	if (!mod && !base) {
		ld_err(ld, "unknown policy");
		goto out;
	}
	if (mod && !(mod->sections & (1u << sec))) {
		ld_err(ld, "'%s' is not allowed in the '%s' section", name, section_names[sec]);
		goto out;
	}
	if (!attrs || ld_is_object(ld, attrs) != 0) {
		if (!attrs)
			ld_err(ld, "must be an object, not null");
		goto out;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		ld_err(ld, "out of memory");
		goto out;
	}
	p->kind = base ? POL_BASE : POL_MODULE;
	p->mod = mod;
	if (base) {
		static const char *const none[] = { NULL };

		ld_check_members(ld, attrs, none);
	} else {
		unsigned long saved = ld->reads;

		ld->reads = 0;
		module_parse(ld, attrs, p);
		if (ld->reads & TPL_READS(TPL_REQUEST_BODY))
			p->needs |= POL_NEED_REQ_BODY;
		if ((ld->reads & TPL_READS(TPL_RESPONSE_BODY)) && sec == POL_OUTBOUND)
			p->needs |= POL_NEED_RESP_BODY;
		ld->reads = saved;
	}
out:
	ld_pop(ld, mark);
	return p;
}

int pol_parse_list(struct loader *ld, json_object *v, struct pol_list *out)
{
	size_t n;
	int rc = 0;

	out->v = NULL;
	out->n = 0;
	if (ld_is_array(ld, v) != 0)
		return -1;
	if (ld->depth >= POL_MAX_DEPTH) {
		ld_err(ld, "policies nest more than %d deep", POL_MAX_DEPTH);
		return -1;
	}
	n = json_object_array_length(v);
	if (n > POL_MAX_PER_SECTION) {
		ld_err(ld, "has more than %d policies", POL_MAX_PER_SECTION);
		return -1;
	}
	out->v = calloc(n ? n : 1, sizeof(*out->v));
	if (!out->v) {
		ld_err(ld, "out of memory");
		return -1;
	}
	ld->depth++;
	for (size_t i = 0; i < n; i++) {
		size_t m2 = ld_push_index(ld, i);
		struct pol_policy *p = parse_element(ld, json_object_array_get_idx(v, i),
						     (enum pol_section_id)ld->section);

		if (p)
			out->v[out->n++] = p;
		else
			rc = -1;
		if (p && p->kind == POL_BASE) {
			ld_err(ld, "'base' is not allowed in a nested policy list");
			rc = -1;
		}
		ld_pop(ld, m2);
	}
	ld->depth--;
	return rc;
}

static void scope_free(struct pol_scope *sc)
{
	if (!sc)
		return;
	for (int s = 0; s < POL_N_SECTIONS; s++) {
		for (size_t i = 0; i < sc->n[s]; i++)
			policy_free(sc->s[s][i]);
		free(sc->s[s]);
	}
	free(sc);
}

void pol_parse_scope(struct loader *ld, json_object *v, struct pol_scope **out)
{
	static const char *const known[] = { "inbound", "backend", "outbound", "on-error", NULL };
	struct pol_scope *sc;

	if (ld_is_object(ld, v) != 0)
		return;
	ld_check_members(ld, v, known);
	sc = calloc(1, sizeof(*sc));
	if (!sc) {
		ld_err(ld, "out of memory");
		return;
	}
	*out = sc;
	for (int s = 0; s < POL_N_SECTIONS; s++) {
		json_object *a = ld_get(ld, v, section_names[s], 0);
		size_t mark, n, bases = 0;

		if (!a)
			continue;
		mark = ld_push_member(ld, section_names[s]);
		ld->section = s;
		if (ld_is_array(ld, a) != 0) {
			ld_pop(ld, mark);
			continue;
		}
		sc->present[s] = 1;
		n = json_object_array_length(a);
		if (n > POL_MAX_PER_SECTION) {
			ld_err(ld, "has more than %d policies", POL_MAX_PER_SECTION);
			ld_pop(ld, mark);
			continue;
		}
		sc->s[s] = calloc(n ? n : 1, sizeof(*sc->s[s]));
		if (!sc->s[s]) {
			ld_err(ld, "out of memory");
			ld_pop(ld, mark);
			continue;
		}
		for (size_t i = 0; i < n; i++) {
			size_t m2 = ld_push_index(ld, i);
			struct pol_policy *p = parse_element(ld, json_object_array_get_idx(a, i),
							     (enum pol_section_id)s);

			if (p) {
				sc->s[s][sc->n[s]++] = p;
				if (p->kind == POL_BASE && ++bases > 1)
					ld_err(ld, "'base' is given more than once in this section");
			}
			ld_pop(ld, m2);
		}
		ld_pop(ld, mark);
	}
}

/* ---- compilation ---------------------------------------------------------- */

/* Appends scope chain[level]'s section s, its base replaced by the enclosing
 * scopes' (recursively); with out->v NULL it only counts, so that a plan can
 * be allocated to its exact size. Returns 0 or -1 (too long). */
static int flatten(struct pol_scope *const *chain, int level, int s, struct pol_section *out)
{
	const struct pol_scope *sc;

	while (level >= 0 && (!chain[level] || !chain[level]->present[s]))
		level--;
	if (level < 0)
		return 0;
	sc = chain[level];
	for (size_t i = 0; i < sc->n[s]; i++) {
		if (sc->s[s][i]->kind == POL_BASE) {
			if (flatten(chain, level - 1, s, out) != 0)
				return -1;
			continue;
		}
		if (out->n == POL_MAX_PLAN)
			return -1;
		if (out->v)
			out->v[out->n] = sc->s[s][i];
		out->n++;
	}
	return 0;
}

static void plan_free(struct pol_plan *pl)
{
	if (!pl)
		return;
	for (int s = 0; s < POL_N_SECTIONS; s++)
		free(pl->s[s].v);
	free(pl);
}

/* arg: size_t[2], seats and bandwidth */
static void add_claims(const struct pol_policy *p, void *arg)
{
	size_t *c = arg;

	if (p->kind == POL_MODULE && p->mod->claims)
		p->mod->claims(p->conf, &c[0], &c[1]);
}

static struct pol_plan *plan_build(struct loader *ld, struct pol_scope *const chain[4])
{
	struct pol_plan *pl = calloc(1, sizeof(*pl));
	size_t seats = 0, bw = 0, claims[2] = { 0, 0 };

	if (!pl) {
		ld_err(ld, "out of memory");
		return NULL;
	}
	/* exactly what each section holds: a plan per operation and product adds
	 * up over 10k APIs (POL_MAX_PLAN slots a section cost ~874 MiB there) */
	for (int s = 0; s < POL_N_SECTIONS; s++) {
		struct pol_section count = { NULL, 0 };
		const struct pol_policy **v;

		if (flatten(chain, 3, s, &count) != 0) {
			ld_err(ld, "the '%s' pipeline has more than %d policies once scopes are "
			       "combined", section_names[s], POL_MAX_PLAN);
			goto fail;
		}
		if (count.n == 0)
			continue;
		v = calloc(count.n, sizeof(*v));
		if (!v) {
			ld_err(ld, "out of memory");
			goto fail;
		}
		pl->s[s].v = v;
		(void)flatten(chain, 3, s, &pl->s[s]);
	}
	for (int s = 0; s < POL_N_SECTIONS; s++)
		for (size_t i = 0; i < pl->s[s].n; i++)
			pl->needs[s] |= policy_needs(pl->s[s].v[i], (enum pol_section_id)s);
	for (size_t i = 0; i < pl->s[POL_INBOUND].n; i++)
		pol_walk(pl->s[POL_INBOUND].v[i], add_claims, claims);
	seats = claims[0];
	bw = claims[1];
	if (seats > POL_MAX_SEATS || bw > POL_MAX_BANDWIDTH) {
		ld_err(ld, "more than %d limit-concurrency or %d bandwidth quota policies apply to "
		       "one request", POL_MAX_SEATS, POL_MAX_BANDWIDTH);
		goto fail;
	}
	return pl;
fail:
	plan_free(pl);
	return NULL;
}

/* plans[0] without product, plans[1 + k] under api->products[k]. */
static struct pol_plan **plans_build(struct loader *ld, const struct gw_api *api,
				     struct pol_scope *op_scope)
{
	struct pol_plan **plans = calloc(api->n_products + 1, sizeof(*plans));
	struct pol_scope *chain[4];

	if (!plans) {
		ld_err(ld, "out of memory");
		return NULL;
	}
	chain[0] = ld->gw->policies;
	chain[2] = api->policies;
	chain[3] = op_scope;
	for (size_t k = 0; k <= api->n_products; k++) {
		chain[1] = k ? api->products[k - 1]->policies : NULL;
		plans[k] = plan_build(ld, chain);
		if (!plans[k])
			break;
	}
	return plans;
}

static void plans_free(struct pol_plan **plans, size_t n)
{
	if (!plans)
		return;
	for (size_t k = 0; k < n; k++)
		plan_free(plans[k]);
	free(plans);
}

/* Gives p, and every policy nested in it, its counter prefix: pos is its
 * place ("inbound#2"); a nested one adds its list and index ("inbound#2.0.1":
 * choose's first branch, second policy), so each counts on its own. */
static void prefix_one(struct loader *ld, struct pol_policy *p, const char *scope,
		       const char *pos)
{
	char buf[512];

	if (p->kind != POL_MODULE)
		return;
	if (p->mod->counter_tag) {
		snprintf(buf, sizeof(buf), "%s:%s:%s", p->mod->counter_tag, scope, pos);
		p->counter_prefix = strdup(buf);
		if (!p->counter_prefix)
			ld_err(ld, "out of memory");
	}
	if (p->conf && p->mod->lists) {
		size_t n = 0;
		const struct pol_list *l = p->mod->lists(p->conf, &n);

		for (size_t i = 0; l && i < n; i++)
			for (size_t j = 0; j < l[i].n; j++) {
				snprintf(buf, sizeof(buf), "%s.%zu.%zu", pos, i, j);
				prefix_one(ld, l[i].v[j], scope, buf);
			}
	}
}

/* Gives every counting policy of sc its counter prefix. */
static void set_prefixes(struct loader *ld, struct pol_scope *sc, const char *scope)
{
	if (!sc)
		return;
	for (int s = 0; s < POL_N_SECTIONS; s++) {
		for (size_t i = 0; i < sc->n[s]; i++) {
			char pos[64];

			snprintf(pos, sizeof(pos), "%s#%zu", section_names[s], i);
			prefix_one(ld, sc->s[s][i], scope, pos);
		}
	}
}

int pol_compile(struct loader *ld)
{
	struct gateway *gw = ld->gw;
	size_t before = ld->n_errors, mark;
	char scope[300];

	/* the products of each API, in product order */
	for (size_t i = 0; i < gw->n_products; i++) {
		const struct gw_product *pr = &gw->products[i];

		for (size_t j = 0; j < pr->n_apis; j++) {
			struct gw_api *api = (struct gw_api *)(uintptr_t)pr->apis[j];
			const struct gw_product **np;

			np = realloc(api->products, (api->n_products + 1) * sizeof(*np));
			if (!np) {
				ld_err(ld, "out of memory");
				return -1;
			}
			api->products = np;
			api->products[api->n_products++] = pr;
		}
	}
	set_prefixes(ld, gw->policies, "global");
	for (size_t i = 0; i < gw->n_products; i++) {
		snprintf(scope, sizeof(scope), "product:%s", gw->products[i].id);
		set_prefixes(ld, gw->products[i].policies, scope);
	}
	for (size_t i = 0; i < gw->n_apis; i++) {
		struct gw_api *api = &gw->apis[i];

		mark = ld_push_member(ld, "apis");
		ld_push_index(ld, i);
		snprintf(scope, sizeof(scope), "api:%s", api->id);
		set_prefixes(ld, api->policies, scope);
		if (api->n_operations == 0)
			api->plans = plans_build(ld, api, NULL);
		for (size_t j = 0; j < api->n_operations; j++) {
			struct gw_operation *op = &api->operations[j];
			size_t m2 = ld_push_member(ld, "operations");

			ld_push_index(ld, j);
			snprintf(scope, sizeof(scope), "op:%s:%s", api->id, op->id);
			set_prefixes(ld, op->policies, scope);
			op->plans = plans_build(ld, api, op->policies);
			ld_pop(ld, m2);
		}
		ld_pop(ld, mark);
	}
	return ld->n_errors == before ? 0 : -1;
}

void pol_free_gateway(struct gateway *gw)
{
	if (!gw)
		return;
	for (size_t i = 0; i < gw->n_apis; i++) {
		struct gw_api *api = &gw->apis[i];

		plans_free(api->plans, api->n_products + 1);
		api->plans = NULL;
		for (size_t j = 0; j < api->n_operations; j++) {
			plans_free(api->operations[j].plans, api->n_products + 1);
			api->operations[j].plans = NULL;
			scope_free(api->operations[j].policies);
			api->operations[j].policies = NULL;
		}
		free(api->products);
		api->products = NULL;
		scope_free(api->policies);
		api->policies = NULL;
	}
	for (size_t i = 0; i < gw->n_products; i++)
		scope_free(gw->products[i].policies);
	scope_free(gw->policies);
	gw->policies = NULL;
}

const struct pol_plan *pol_plan_for(const struct gw_api *api, const struct gw_operation *op,
				    const struct gw_product *product)
{
	struct pol_plan *const *plans = op ? op->plans : api->plans;
	size_t lo = 0, hi = api->n_products;

	if (!plans)
		return NULL;
	while (product && lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (api->products[mid] == product)
			return plans[mid + 1];
		if (api->products[mid]->index < product->index)
			lo = mid + 1;
		else
			hi = mid;
	}
	return plans[0];
}
