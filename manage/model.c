#include "manage/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manage/util.h"
#include "policy/gateway.h"

#define DOC_MAX GW_MAX_DOCUMENT_BYTES

/* ---- a sorted set of strings ---- */

struct strset {
	char **v;
	size_t n, cap;
	int failed;
};

static long set_find(const struct strset *s, const char *x, size_t *at)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(s->v[mid], x);

		if (c == 0)
			return (long)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*at = lo;
	return -1;
}

/* Adds x (copied). 1 added, 0 already there, -1 out of memory. */
static int set_add(struct strset *s, const char *x)
{
	size_t at = 0;
	char *c;

	if (set_find(s, x, &at) >= 0)
		return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		char **v = realloc(s->v, cap * sizeof(*v));

		if (!v)
			goto oom;
		s->v = v;
		s->cap = cap;
	}
	c = strdup(x);
	if (!c)
		goto oom;
	memmove(s->v + at + 1, s->v + at, (s->n - at) * sizeof(*s->v));
	s->v[at] = c;
	s->n++;
	return 1;
oom:
	s->failed = 1;
	return -1;
}

static int set_has(const struct strset *s, const char *x)
{
	size_t at;

	return set_find(s, x, &at) >= 0;
}

static void set_release(struct strset *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* ---- references ---- */

struct refs {
	struct strset set;
};

static void ref_add(struct refs *r, const char *kind, const char *id, size_t idlen)
{
	char buf[128];

	if (idlen == 0 || idlen > 80)
		return;
	snprintf(buf, sizeof(buf), "%s/%.*s", kind, (int)idlen, id);
	if (r->set.n < MODEL_MAX_REFS)
		set_add(&r->set, buf);
}

/* Every {{name}} in s. */
static void scan_string(struct refs *r, const char *s)
{
	const char *p = s;

	while ((p = strstr(p, "{{")) != NULL) {
		const char *e = strstr(p + 2, "}}");

		if (!e)
			return;
		ref_add(r, "named_value", p + 2, (size_t)(e - p - 2));
		p = e + 2;
	}
}

static void scan(struct refs *r, json_object *v, int depth)
{
	if (!v || depth > GW_MAX_JSON_DEPTH)
		return;
	switch (json_object_get_type(v)) {
	case json_type_string:
		scan_string(r, json_object_get_string(v));
		break;
	case json_type_array:
		for (size_t i = 0; i < json_object_array_length(v); i++)
			scan(r, json_object_array_get_idx(v, i), depth + 1);
		break;
	case json_type_object: {
		json_object_object_foreach(v, key, val) {
			if (!strcmp(key, "backend-id") && json_object_is_type(val, json_type_string)) {
				const char *b = json_object_get_string(val);

				ref_add(r, "backend", b, strlen(b));
			}
			scan(r, val, depth + 1);
		}
		break;
	}
	default:
		break;
	}
}

static void ref_ids(struct refs *r, json_object *arr, const char *kind)
{
	if (!json_object_is_type(arr, json_type_array))
		return;
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *e = json_object_array_get_idx(arr, i);

		if (json_object_is_type(e, json_type_string))
			ref_add(r, kind, json_object_get_string(e),
				strlen(json_object_get_string(e)));
	}
}

int model_refs(const char *kind, json_object *obj, char ***out, size_t *n)
{
	struct refs r = { { NULL, 0, 0, 0 } };
	json_object *v;

	if (!strcmp(kind, "gateway")) {
		if (json_object_object_get_ex(obj, "apis", &v))
			ref_ids(&r, v, "api");
		if (json_object_object_get_ex(obj, "gateway", &v))
			scan(&r, v, 0);
	} else if (!strcmp(kind, "subscription")) {
		if (json_object_object_get_ex(obj, "scope", &v) &&
		    json_object_is_type(v, json_type_string)) {
			const char *s = json_object_get_string(v);

			if (!strcmp(s, "all"))
				ref_add(&r, "scope", "all", 3);
			else if (!strncmp(s, "api:", 4))
				ref_add(&r, "api", s + 4, strlen(s + 4));
			else if (!strncmp(s, "product:", 8))
				ref_add(&r, "product", s + 8, strlen(s + 8));
		}
	} else {
		if (!strcmp(kind, "api") && json_object_object_get_ex(obj, "backend", &v) &&
		    json_object_is_type(v, json_type_string))
			ref_add(&r, "backend", json_object_get_string(v),
				strlen(json_object_get_string(v)));
		if (!strcmp(kind, "product") && json_object_object_get_ex(obj, "apis", &v))
			ref_ids(&r, v, "api");
		if (strcmp(kind, "named_value") != 0)
			scan(&r, obj, 0);
	}
	if (r.set.failed) {
		set_release(&r.set);
		return -1;
	}
	*out = r.set.v;
	*n = r.set.n;
	return 0;
}

void model_refs_free(char **refs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(refs[i]);
	free(refs);
}

/* ---- the whole database as one document ---- */

/* The document's member for each kind, and whether it is an array (else an
 * object keyed by id). */
static const struct {
	const char *kind, *member;
	int array;
} members[] = {
	{ "named_value", "named_values", 0 },
	{ "backend", "backends", 0 },
	{ "api", "apis", 1 },
	{ "product", "products", 1 },
	{ "subscription", "subscriptions", 1 },
};
#define N_MEMBERS (sizeof(members) / sizeof(members[0]))

struct build {
	struct sbuf *b;
	const char *skip;	/* the id replaced by the candidate, in this kind */
	const char *candidate;	/* its text, or NULL */
	int array, first;
	struct strset *order;	/* array members: ids in document order */
	char **index_ids;
	size_t n_index;
	long cand_index;
};

static int add_member(struct build *bd, const char *id, const char *json)
{
	if (!bd->first)
		sbuf_add(bd->b, ",", 1);
	bd->first = 0;
	if (!bd->array) {
		sbuf_add_json(bd->b, id);
		sbuf_add(bd->b, ":", 1);
	} else {
		char **v = realloc(bd->index_ids, (bd->n_index + 1) * sizeof(*v));

		if (!v)
			return -1;
		bd->index_ids = v;
		v[bd->n_index] = strdup(id);
		if (!v[bd->n_index])
			return -1;
		bd->n_index++;
	}
	sbuf_adds(bd->b, json);
	return bd->b->failed ? -1 : 0;
}

static int each_member(void *ctx, const char *id, const char *json, int64_t changed)
{
	struct build *bd = ctx;

	(void)changed;
	if (bd->skip && !strcmp(id, bd->skip)) {
		if (!bd->candidate)
			return 0;
		bd->cand_index = (long)bd->n_index;
		bd->skip = NULL;
		return add_member(bd, id, bd->candidate);
	}
	if (bd->skip && bd->candidate && strcmp(id, bd->skip) > 0) {
		/* the candidate is new: it goes in id order */
		bd->cand_index = (long)bd->n_index;
		if (add_member(bd, bd->skip, bd->candidate) != 0)
			return -1;
		bd->skip = NULL;
	}
	return add_member(bd, id, json);
}

static void free_index(struct build *bd)
{
	for (size_t i = 0; i < bd->n_index; i++)
		free(bd->index_ids[i]);
	free(bd->index_ids);
	bd->index_ids = NULL;
	bd->n_index = 0;
}

/* Turns one loader message "PATH: MESSAGE" into {"path", "message"}. */
static json_object *map_error(const char *msg, const char *kind, const char *id,
			      const char *member, int array, long cand_index,
			      char **const ids[], const size_t n_ids[])
{
	const char *sep = strstr(msg, ": ");
	char path[1024], prefix[256], rest[1024];
	json_object *o = json_object_new_object();
	size_t plen;

	if (!o)
		return NULL;
	if (!sep) {
		json_object_object_add(o, "path", json_object_new_string("$"));
		json_object_object_add(o, "message", json_object_new_string(msg));
		return o;
	}
	snprintf(path, sizeof(path), "%.*s", (int)(sep - msg), msg);
	if (!strcmp(kind, "gateway")) {
		snprintf(rest, sizeof(rest), "%s", path);
	} else if (!strcmp(kind, "policies")) {
		if (!strncmp(path, "policies", 8) && (path[8] == '\0' || path[8] == '.' ||
						      path[8] == '['))
			snprintf(rest, sizeof(rest), "%s", path[8] ? path + 8 + (path[8] == '.') :
				 "$");
		else
			snprintf(rest, sizeof(rest), "%s", path);
	} else {
		if (array && cand_index >= 0)
			snprintf(prefix, sizeof(prefix), "%s[%ld]", member, cand_index);
		else
			snprintf(prefix, sizeof(prefix), "%s[\"%s\"]", member, id);
		plen = strlen(prefix);
		if (!strncmp(path, prefix, plen) && (path[plen] == '\0' || path[plen] == '.' ||
						     path[plen] == '['))
			snprintf(rest, sizeof(rest), "%s", path[plen] ?
				 path + plen + (path[plen] == '.') : "$");
		else
			snprintf(rest, sizeof(rest), "%s", path);
	}
	/* another array member's index means nothing to the caller: its id */
	for (size_t k = 0; k < sizeof(members) / sizeof(members[0]); k++) {
		size_t ml = strlen(members[k].member);
		char *end;
		long idx;

		if (!members[k].array || strncmp(rest, members[k].member, ml) || rest[ml] != '[')
			continue;
		idx = strtol(rest + ml + 1, &end, 10);
		if (*end != ']' || idx < 0 || (size_t)idx >= n_ids[k])
			break;
		snprintf(prefix, sizeof(prefix), "%s[\"%s\"]%s", members[k].member, ids[k][idx],
			 end + 1);
		snprintf(rest, sizeof(rest), "%s", prefix);
		break;
	}
	json_object_object_add(o, "path", json_object_new_string(rest));
	json_object_object_add(o, "message", json_object_new_string(sep + 2));
	return o;
}

int model_validate(struct store *st, const char *kind, const char *id, const char *candidate,
		   json_object **errors, char *err, size_t errlen)
{
	struct sbuf b = SBUF_INIT(DOC_MAX);
	struct cfg_errors errs = CFG_ERRORS_INIT;
	struct gateway *gw;
	char *pol = NULL;
	char **ids[N_MEMBERS] = { NULL };
	size_t n_ids[N_MEMBERS] = { 0 };
	long cand_index = -1;
	const char *cand_member = "";
	int cand_array = 0, rc = -1;

	*errors = NULL;
	sbuf_adds(&b, "{\"format\":1,\"generation\":1");
	for (size_t k = 0; k < sizeof(members) / sizeof(members[0]); k++) {
		int mine = !strcmp(kind, members[k].kind);
		struct build bd = {
			.b = &b, .skip = mine ? id : NULL, .candidate = mine ? candidate : NULL,
			.array = members[k].array, .first = 1, .cand_index = -1,
		};

		sbuf_addf(&b, ",\"%s\":%s", members[k].member, members[k].array ? "[" : "{");
		if (store_each(st, members[k].kind, each_member, &bd) != 0) {
			free_index(&bd);
			snprintf(err, errlen, "cannot read the database");
			goto out;
		}
		if (bd.skip && bd.candidate) {	/* new, and last in id order */
			bd.cand_index = (long)bd.n_index;
			if (add_member(&bd, bd.skip, bd.candidate) != 0) {
				free_index(&bd);
				snprintf(err, errlen, "out of memory");
				goto out;
			}
		}
		sbuf_adds(&b, members[k].array ? "]" : "}");
		ids[k] = bd.index_ids;
		n_ids[k] = bd.n_index;
		if (mine) {
			cand_index = bd.cand_index;
			cand_member = members[k].member;
			cand_array = members[k].array;
		}
	}
	if (!strcmp(kind, "policies")) {
		if (candidate) {
			sbuf_adds(&b, ",\"policies\":");
			sbuf_adds(&b, candidate);
		}
	} else {
		int g = store_get(st, "policies", "global", &pol, NULL);

		if (g < 0) {
			snprintf(err, errlen, "cannot read the database");
			goto out;
		}
		if (g == 0) {
			sbuf_adds(&b, ",\"policies\":");
			sbuf_adds(&b, pol);
		}
	}
	if (!strcmp(kind, "gateway") && candidate) {
		sbuf_adds(&b, ",\"gateway\":");
		sbuf_adds(&b, candidate);
	}
	sbuf_adds(&b, "}");
	if (b.failed) {
		snprintf(err, errlen, "the database would exceed %u bytes as one document",
			 (unsigned)DOC_MAX);
		goto out;
	}
	gw = gw_load_buffer(b.s, b.len, &errs);
	if (gw) {
		gw_free(gw);
		rc = 0;
		goto out;
	}
	*errors = json_object_new_array();
	for (size_t i = 0; i < errs.n && *errors; i++) {
		json_object *e = map_error(errs.msg[i], kind, id, cand_member, cand_array,
					   cand_index, (char **const *)ids, n_ids);

		if (e)
			json_object_array_add(*errors, e);
	}
	if (errs.dropped && *errors) {
		json_object *e = json_object_new_object();
		char m[64];

		snprintf(m, sizeof(m), "%zu more errors not shown", errs.dropped);
		json_object_object_add(e, "path", json_object_new_string("$"));
		json_object_object_add(e, "message", json_object_new_string(m));
		json_object_array_add(*errors, e);
	}
	rc = *errors ? 1 : -1;
	if (rc < 0)
		snprintf(err, errlen, "out of memory");
out:
	for (size_t k = 0; k < N_MEMBERS; k++) {
		for (size_t i = 0; i < n_ids[k]; i++)
			free(ids[k][i]);
		free(ids[k]);
	}
	free(pol);
	cfg_errors_release(&errs);
	sbuf_release(&b);
	return rc;
}

/* ---- one gateway's document ---- */

struct gwdoc {
	struct store *st;
	struct strset apis, backends, products, subs, nvs;
	int failed;
};

/* Adds the ids of "kind/id" strings with the given kind to set. */
static int collect_kind(void *ctx, const char *ref, const char *json, int64_t changed,
			const char *kind, struct strset *set)
{
	size_t kl = strlen(kind);

	(void)ctx;
	(void)json;
	(void)changed;
	if (!strncmp(ref, kind, kl) && ref[kl] == '/')
		set_add(set, ref + kl + 1);
	return 0;
}

static int ref_to_sets(void *ctx, const char *ref, const char *json, int64_t changed)
{
	struct gwdoc *g = ctx;

	collect_kind(ctx, ref, json, changed, "backend", &g->backends);
	collect_kind(ctx, ref, json, changed, "named_value", &g->nvs);
	return 0;
}

static int referrer_product(void *ctx, const char *ref, const char *json, int64_t changed)
{
	struct gwdoc *g = ctx;

	return collect_kind(ctx, ref, json, changed, "product", &g->products);
}

static int referrer_sub(void *ctx, const char *ref, const char *json, int64_t changed)
{
	struct gwdoc *g = ctx;

	return collect_kind(ctx, ref, json, changed, "subscription", &g->subs);
}

static int all_apis(void *ctx, const char *id, const char *json, int64_t changed)
{
	struct gwdoc *g = ctx;

	(void)json;
	(void)changed;
	set_add(&g->apis, id);
	return 0;
}

/* Appends the stored objects of kind named in set, as an object keyed by id
 * or an array. Absent ones are skipped (a reference to nothing: the
 * database is validated on every write, so only during a race). */
static int emit(struct gwdoc *g, struct sbuf *b, const char *member, const char *kind,
		const struct strset *set, int array)
{
	sbuf_addf(b, ",\"%s\":%s", member, array ? "[" : "{");
	for (size_t i = 0, first = 1; i < set->n; i++) {
		char *json = NULL;
		int r = store_get(g->st, kind, set->v[i], &json, NULL);

		if (r < 0)
			return -1;
		if (r == 1)
			continue;
		if (!first)
			sbuf_add(b, ",", 1);
		first = 0;
		if (!array) {
			sbuf_add_json(b, set->v[i]);
			sbuf_add(b, ":", 1);
		}
		if (!strcmp(kind, "product")) {
			/* a product keeps only the APIs this gateway serves */
			json_object *p = json_tokener_parse(json), *apis, *keep;

			if (!p || !json_object_object_get_ex(p, "apis", &apis) ||
			    !json_object_is_type(apis, json_type_array)) {
				sbuf_adds(b, json);
			} else {
				keep = json_object_new_array();
				for (size_t k = 0; k < json_object_array_length(apis); k++) {
					json_object *a = json_object_array_get_idx(apis, k);

					if (set_has(&g->apis, json_object_get_string(a)))
						json_object_array_add(keep, json_object_get(a));
				}
				json_object_object_add(p, "apis", keep);
				sbuf_adds(b, json_object_to_json_string_ext(
						  p, JSON_C_TO_STRING_PLAIN |
						  JSON_C_TO_STRING_NOSLASHESCAPE));
			}
			json_object_put(p);
		} else {
			sbuf_adds(b, json);
		}
		free(json);
	}
	sbuf_adds(b, array ? "]" : "}");
	return 0;
}

int model_gateway_document(struct store *st, const char *gateway, int64_t generation,
			   char **body, size_t *len, char *err, size_t errlen)
{
	struct gwdoc g = { .st = st };
	struct sbuf b = SBUF_INIT(DOC_MAX);
	struct cfg_errors errs = CFG_ERRORS_INIT;
	json_object *gobj = NULL, *apis = NULL, *gwm = NULL;
	char *json = NULL, ref[128];
	struct gateway *gw;
	int rc = -1, r;

	/* what every failure below says unless it says more */
	snprintf(err, errlen, "cannot read the database");
	r = store_get(st, "gateway", gateway, &json, NULL);
	if (r != 0)
		return r;
	gobj = json_tokener_parse(json);
	if (!gobj) {
		snprintf(err, errlen, "gateway '%s' is stored as bad JSON", gateway);
		goto out;
	}
	json_object_object_get_ex(gobj, "gateway", &gwm);
	if (json_object_object_get_ex(gobj, "apis", &apis) &&
	    json_object_is_type(apis, json_type_string)) {
		if (store_each(st, "api", all_apis, &g) != 0)
			goto out;
	} else if (json_object_is_type(apis, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(apis); i++)
			set_add(&g.apis, json_object_get_string(json_object_array_get_idx(apis, i)));
	}
	/* what the APIs reach, then what that reaches */
	for (size_t i = 0; i < g.apis.n; i++) {
		snprintf(ref, sizeof(ref), "api/%s", g.apis.v[i]);
		if (store_references(st, ref, ref_to_sets, &g) != 0 ||
		    store_referrers(st, ref, referrer_product, &g) != 0 ||
		    store_referrers(st, ref, referrer_sub, &g) != 0)
			goto out;
	}
	for (size_t i = 0; i < g.products.n; i++) {
		snprintf(ref, sizeof(ref), "product/%s", g.products.v[i]);
		if (store_references(st, ref, ref_to_sets, &g) != 0 ||
		    store_referrers(st, ref, referrer_sub, &g) != 0)
			goto out;
	}
	if (g.apis.n && store_referrers(st, "scope/all", referrer_sub, &g) != 0)
		goto out;
	if (store_references(st, "policies/global", ref_to_sets, &g) != 0)
		goto out;
	snprintf(ref, sizeof(ref), "gateway/%s", gateway);
	if (store_references(st, ref, ref_to_sets, &g) != 0)
		goto out;
	for (size_t i = 0; i < g.backends.n; i++) {
		snprintf(ref, sizeof(ref), "backend/%s", g.backends.v[i]);
		if (store_references(st, ref, ref_to_sets, &g) != 0)
			goto out;
	}
	if (g.apis.failed || g.backends.failed || g.products.failed || g.subs.failed ||
	    g.nvs.failed) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}

	sbuf_addf(&b, "{\"format\":1,\"generation\":%lld", (long long)generation);
	if (gwm) {
		sbuf_adds(&b, ",\"gateway\":");
		sbuf_adds(&b, json_object_to_json_string_ext(gwm, JSON_C_TO_STRING_PLAIN |
							     JSON_C_TO_STRING_NOSLASHESCAPE));
	}
	if (emit(&g, &b, "named_values", "named_value", &g.nvs, 0) != 0 ||
	    emit(&g, &b, "backends", "backend", &g.backends, 0) != 0 ||
	    emit(&g, &b, "apis", "api", &g.apis, 1) != 0 ||
	    emit(&g, &b, "products", "product", &g.products, 1) != 0 ||
	    emit(&g, &b, "subscriptions", "subscription", &g.subs, 1) != 0)
		goto out;
	free(json);
	json = NULL;
	r = store_get(st, "policies", "global", &json, NULL);
	if (r < 0)
		goto out;
	if (r == 0) {
		sbuf_adds(&b, ",\"policies\":");
		sbuf_adds(&b, json);
	}
	sbuf_adds(&b, "}\n");
	if (b.failed) {
		snprintf(err, errlen, "the document of gateway '%s' would exceed %u bytes", gateway,
			 (unsigned)DOC_MAX);
		goto out;
	}
	gw = gw_load_buffer(b.s, b.len, &errs);
	if (!gw) {
		snprintf(err, errlen, "the document of gateway '%s' does not validate: %s", gateway,
			 errs.n ? errs.msg[0] : "?");
		goto out;
	}
	gw_free(gw);
	*body = b.s;
	*len = b.len;
	b.s = NULL;
	rc = 0;
out:
	cfg_errors_release(&errs);
	sbuf_release(&b);
	json_object_put(gobj);
	free(json);
	set_release(&g.apis);
	set_release(&g.backends);
	set_release(&g.products);
	set_release(&g.subs);
	set_release(&g.nvs);
	return rc;
}
