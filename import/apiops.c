/*
 * apiops — an APIOps artifacts folder → struct imp_artifacts (apiops.h).
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/fileread.h"
#include "import/apiops.h"
#include "import/yamljson.h"

struct rd {
	const char *dir;
	struct cfg_errors *errs;
	int failed;
};

static void S_err(struct rd *r, const char *shown, size_t line, const char *what)
{
	char where[1200];

	snprintf(where, sizeof(where), "%s:%zu", shown, line);
	cfg_error(r->errs, where, "%s", what);
	r->failed = 1;
}

static char *S_join(const char *a, const char *b)
{
	size_t n = strlen(a) + strlen(b) + 2;
	char *s = malloc(n);

	if (s)
		snprintf(s, n, "%s%s%s", a, *a ? "/" : "", b);
	return s;
}

/* a file under dir (rel): 0 with text, 1 absent, -1 (reported) */
static int S_read(struct rd *r, const char *rel, char **text, size_t *len)
{
	char *p = S_join(r->dir, rel);
	char msg[300];
	int rc;

	*text = NULL;
	if (!p)
		return -1;
	rc = file_read(p, APIOPS_MAX_FILE_BYTES, text, len);
	if (rc != 0 && errno == ENOENT) {
		free(p);
		return 1;
	}
	if (rc != 0) {
		snprintf(msg, sizeof(msg), "cannot read: %s", strerror(errno));
		S_err(r, rel, 1, msg);
		free(p);
		return -1;
	}
	free(p);
	return 0;
}

static int S_is_dir(struct rd *r, const char *rel)
{
	char *p = S_join(r->dir, rel);
	struct stat st;
	int d;

	d = p && lstat(p, &st) == 0 && S_ISDIR(st.st_mode);
	free(p);
	return d;
}

static int S_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* the subdirectory names of rel, sorted; 0 (possibly none), -1 */
static int S_list(struct rd *r, const char *rel, char ***names, size_t *n)
{
	char *p = S_join(r->dir, rel);
	DIR *d = p ? opendir(p) : NULL;
	struct dirent *e;
	char **v = NULL;
	size_t cap = 0;

	*names = NULL;
	*n = 0;
	if (!d) {
		free(p);
		return 0;
	}
	while ((e = readdir(d))) {
		char *sub;
		if (e->d_name[0] == '.')
			continue;
		sub = S_join(rel, e->d_name);
		if (!sub || !S_is_dir(r, sub)) {
			free(sub);
			continue;
		}
		free(sub);
		if (*n >= APIOPS_MAX_ENTRIES) {
			S_err(r, rel, 1, "too many entries");
			break;
		}
		if (*n == cap) {
			char **nv;
			cap = cap ? cap * 2 : 16;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv)
				break;
			v = nv;
		}
		v[*n] = strdup(e->d_name);
		if (v[*n])
			(*n)++;
	}
	closedir(d);
	free(p);
	if (*n)
		qsort(v, *n, sizeof(*v), S_cmp);
	*names = v;
	return 0;
}

static void S_free_names(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static json_object *S_json_text(struct rd *r, const char *rel, const char *text, size_t len)
{
	struct json_tokener *t = json_tokener_new_ex(64);
	json_object *j;
	char msg[300];
	size_t line = 1, i;

	if (!t)
		return NULL;
	j = json_tokener_parse_ex(t, text, (int)len);
	/* trailing whitespace is fine */
	for (i = (size_t)t->char_offset; j && i < len && strchr(" \t\r\n", text[i]); i++)
		;
	if (!j || json_tokener_get_error(t) != json_tokener_success || (j && i < len)) {
		size_t off = (size_t)t->char_offset;
		int trailing = j != NULL;
		for (i = 0; i < off && i < len; i++)
			line += text[i] == '\n';
		snprintf(msg, sizeof(msg), "not JSON: %s",
			 trailing ? "text after the value" :
			 json_tokener_error_desc(json_tokener_get_error(t)));
		S_err(r, rel, line, msg);
		json_object_put(j);
		j = NULL;
	}
	json_tokener_free(t);
	return j;
}

/* a JSON file: 0 with *j, 1 absent, -1 */
static int S_json(struct rd *r, const char *rel, json_object **j)
{
	char *text;
	size_t len;
	int rc = S_read(r, rel, &text, &len);

	*j = NULL;
	if (rc != 0)
		return rc;
	*j = S_json_text(r, rel, text, len);
	free(text);
	return *j ? 0 : -1;
}

static void S_text(struct rd *r, const char *rel, struct imp_text *t)
{
	memset(t, 0, sizeof(*t));
	if (S_read(r, rel, &t->text, &t->len) == 0)
		t->file = strdup(rel);
}

static void S_text_free(struct imp_text *t)
{
	free(t->file);
	free(t->text);
}

static char *S_path3(const char *a, const char *b, const char *c)
{
	char *ab = S_join(a, b), *abc = ab ? S_join(ab, c) : NULL;

	free(ab);
	return abc;
}

/* folder kind/NAME/INFO.json for every NAME */
static int S_items(struct rd *r, const char *kind, const char *info, struct imp_item **out,
		   size_t *n_out)
{
	char **names;
	size_t n, i;
	struct imp_item *v;

	*out = NULL;
	*n_out = 0;
	S_list(r, kind, &names, &n);
	if (!n)
		return 0;
	v = calloc(n, sizeof(*v));
	if (!v) {
		S_free_names(names, n);
		return -1;
	}
	for (i = 0; i < n; i++) {
		struct imp_item *it = &v[*n_out];
		char *f = S_path3(kind, names[i], info);
		if (!f)
			continue;
		if (S_json(r, f, &it->info) != 0) {
			if (!it->info && !r->failed)
				S_err(r, f, 1, "missing (the extractor writes one per folder)");
			free(f);
			continue;
		}
		it->name = strdup(names[i]);
		it->file = f;
		(*n_out)++;
	}
	S_free_names(names, n);
	*out = v;
	return 0;
}

static void S_add_name(char ***v, size_t *n, const char *s)
{
	char **nv = realloc(*v, (*n + 1) * sizeof(**v));

	if (!nv)
		return;
	*v = nv;
	nv[*n] = strdup(s);
	if (nv[*n])
		(*n)++;
}

/* the APIs a product or gateway names: KIND/NAME/apis.json (older: an array of
 * names or of {"name": ...}) and KIND/NAME/apis/API/ folders (newer) */
static void S_item_apis(struct rd *r, const char *kind, struct imp_item *it)
{
	char *f = S_path3(kind, it->name, "apis.json"), *d = S_path3(kind, it->name, "apis");
	json_object *j = NULL;
	char **names;
	size_t n, i;

	if (f && S_json(r, f, &j) == 0) {
		if (!json_object_is_type(j, json_type_array))
			S_err(r, f, 1, "expected an array of API names");
		for (i = 0; json_object_is_type(j, json_type_array) &&
			    i < json_object_array_length(j); i++) {
			json_object *e = json_object_array_get_idx(j, i), *nm;
			if (json_object_is_type(e, json_type_string))
				S_add_name(&it->apis, &it->n_apis, json_object_get_string(e));
			else if (json_object_object_get_ex(e, "name", &nm))
				S_add_name(&it->apis, &it->n_apis, json_object_get_string(nm));
		}
	}
	json_object_put(j);
	if (d) {
		S_list(r, d, &names, &n);
		for (i = 0; i < n; i++)
			S_add_name(&it->apis, &it->n_apis, names[i]);
		S_free_names(names, n);
	}
	free(f);
	free(d);
}

int apiops_read_spec(const char *path, const char *shown, json_object **spec,
		     struct cfg_errors *errs)
{
	struct rd r = { "", errs, 0 };
	char *text;
	size_t len, line, i;
	char why[300], msg[400];
	int rc;

	*spec = NULL;
	rc = S_read(&r, path, &text, &len);
	if (rc == 1)
		S_err(&r, shown, 1, "no such file");
	if (rc != 0)
		return -1;
	for (i = 0; i < len && strchr(" \t\r\n", text[i]); i++)
		;
	if (i < len && text[i] == '{') {
		r.dir = "";
		*spec = S_json_text(&r, shown, text, len);
	} else if (yj_parse(text, len, spec, &line, why, sizeof(why)) != 0) {
		snprintf(msg, sizeof(msg), "%s", why);
		S_err(&r, shown, line, msg);
	}
	free(text);
	return *spec ? 0 : -1;
}

static int S_api_current(json_object *info)
{
	json_object *p, *v;

	if (!json_object_object_get_ex(info, "properties", &p))
		p = info;
	if (json_object_object_get_ex(p, "isCurrent", &v))
		return json_object_get_boolean(v);
	return -1;
}

static void S_api(struct rd *r, const char *folder, struct imp_api *api)
{
	static const char *const specs[] = { "specification.yaml", "specification.yml",
		"specification.json", "specification.wsdl", "specification.graphql",
		"specification.xml", "specification.wadl", NULL };
	const char *const *s;
	char *base = S_join("apis", folder), *f, *semi, **ops;
	size_t n, i;
	int not_current;

	memset(api, 0, sizeof(*api));
	api->name = strdup(folder);
	semi = api->name ? strchr(api->name, ';') : NULL;
	if (semi)
		*semi = '\0';
	api->file = S_join(base, "apiInformation.json");
	if (S_json(r, api->file, &api->info) == 1)
		S_err(r, api->file, 1, "missing (the extractor writes one per API)");
	/* a revision that is not the current one is not read (S_apis drops it) */
	not_current = api->info && S_api_current(api->info) == 0;
	for (s = specs; !not_current && *s; s++) {
		f = S_join(base, *s);
		char *p = S_join(r->dir, f);
		struct stat st;
		if (p && lstat(p, &st) == 0) {
			api->spec_file = f;
			if (strstr(*s, ".yaml") || strstr(*s, ".yml") || strstr(*s, ".json")) {
				size_t sl;
				if (apiops_read_spec(p, f, &api->spec, r->errs) != 0)
					r->failed = 1;
				else if (S_read(r, f, &api->spec_text, &sl) != 0)
					api->spec_text = NULL;
			} else {
				api->spec_refused = 1;
			}
			free(p);
			break;
		}
		free(p);
		free(f);
	}
	f = S_join(base, "policy.xml");
	S_text(r, f, &api->policy);
	free(f);
	f = S_join(base, "operations");
	S_list(r, f, &ops, &n);
	api->ops = calloc(n + 1, sizeof(*api->ops));
	for (i = 0; api->ops && i < n; i++) {
		char *pf = S_path3(f, ops[i], "policy.xml");
		api->ops[api->n_ops].name = strdup(ops[i]);
		if (pf)
			S_text(r, pf, &api->ops[api->n_ops].policy);
		free(pf);
		if (api->ops[api->n_ops].policy.file)
			api->n_ops++;
		else
			free(api->ops[api->n_ops].name);
	}
	S_free_names(ops, n);
	free(f);
	free(base);
}

static void S_api_free(struct imp_api *api)
{
	size_t i;

	free(api->name);
	free(api->file);
	json_object_put(api->info);
	json_object_put(api->spec);
	free(api->spec_file);
	free(api->spec_text);
	S_text_free(&api->policy);
	for (i = 0; i < api->n_ops; i++) {
		free(api->ops[i].name);
		S_text_free(&api->ops[i].policy);
	}
	free(api->ops);
}

/* apis/: one API per name; of its revisions (NAME;rev=N) the current one */
static void S_apis(struct rd *r, struct imp_artifacts *a)
{
	char **names;
	size_t n, i, k;

	S_list(r, "apis", &names, &n);
	a->apis = calloc(n + 1, sizeof(*a->apis));
	for (i = 0; a->apis && i < n; i++) {
		struct imp_api api;
		int cur;
		S_api(r, names[i], &api);
		if (!api.name || !api.info) {
			S_api_free(&api);
			continue;
		}
		cur = S_api_current(api.info);
		if (cur == 0) {
			/* a revision that is not the current one: APIM does not serve it
			 * (only through ;rev=N URLs, which format 1 has no place for) */
			S_api_free(&api);
			continue;
		}
		for (k = 0; k < a->n_apis && strcmp(a->apis[k].name, api.name); k++)
			;
		if (k < a->n_apis) {
			/* a revision of one seen: the current one wins; without isCurrent,
			 * the folder without ";rev=" */
			int old = S_api_current(a->apis[k].info);
			int take = cur == 1 || (cur == -1 && old != 1 && !strchr(names[i], ';'));
			if (take) {
				S_api_free(&a->apis[k]);
				a->apis[k] = api;
			} else {
				S_api_free(&api);
			}
			continue;
		}
		a->apis[a->n_apis++] = api;
	}
	S_free_names(names, n);
}

/* properties of every {name, properties} of list merged over items */
static void S_merge(json_object *dst, json_object *src)
{
	json_object_object_foreach(src, k, v) {
		json_object *d;
		if (json_object_is_type(v, json_type_object) &&
		    json_object_object_get_ex(dst, k, &d) && json_object_is_type(d, json_type_object))
			S_merge(d, v);
		else
			json_object_object_add(dst, k, json_object_get(v));
	}
}

static void S_override(struct rd *r, json_object *ov, const char *key, const char *file,
		       struct imp_item *items, size_t n, struct imp_api *apis, size_t n_apis)
{
	json_object *list;
	size_t i, k;

	if (!json_object_object_get_ex(ov, key, &list) || !list)
		return;
	if (!json_object_is_type(list, json_type_array)) {
		S_err(r, file, 1, "overrides: expected a list");
		return;
	}
	for (i = 0; i < json_object_array_length(list); i++) {
		json_object *e = json_object_array_get_idx(list, i), *p, *dst = NULL, *ip;
		const char *name;
		json_object *nm;
		if (!json_object_object_get_ex(e, "name", &nm) ||
		    !json_object_object_get_ex(e, "properties", &p))
			continue;
		name = json_object_get_string(nm);
		for (k = 0; k < n; k++)
			if (!strcmp(items[k].name, name))
				dst = items[k].info;
		for (k = 0; k < n_apis; k++)
			if (!strcmp(apis[k].name, name))
				dst = apis[k].info;
		if (!dst)
			continue;	/* as the publisher: an override for what is not here is unused */
		if (!json_object_is_type(p, json_type_object) ||
		    !json_object_is_type(dst, json_type_object)) {
			S_err(r, file, 1, "overrides: properties must be a mapping");
			continue;
		}
		if (!json_object_object_get_ex(dst, "properties", &ip)) {
			ip = json_object_new_object();
			json_object_object_add(dst, "properties", ip);
		}
		if (!json_object_is_type(ip, json_type_object)) {
			S_err(r, file, 1, "overrides: the artifact's properties are not an object");
			continue;
		}
		S_merge(ip, p);
	}
}

static void S_overrides(struct rd *r, const char *path, struct imp_artifacts *a)
{
	struct rd o = { "", r->errs, 0 };
	char *text;
	size_t len, line;
	char why[300];
	json_object *ov = NULL;

	if (S_read(&o, path, &text, &len) != 0) {
		if (!o.failed)
			S_err(&o, path, 1, "no such file");
		r->failed = 1;
		return;
	}
	if (yj_parse(text, len, &ov, &line, why, sizeof(why)) != 0) {
		S_err(&o, path, line, why);
		r->failed = 1;
		free(text);
		return;
	}
	free(text);
	S_override(&o, ov, "namedValues", path, a->named_values, a->n_named_values, NULL, 0);
	S_override(&o, ov, "backends", path, a->backends, a->n_backends, NULL, 0);
	S_override(&o, ov, "apis", path, NULL, 0, a->apis, a->n_apis);
	S_override(&o, ov, "products", path, a->products, a->n_products, NULL, 0);
	S_override(&o, ov, "subscriptions", path, a->subscriptions, a->n_subscriptions, NULL, 0);
	json_object_put(ov);
	r->failed |= o.failed;
}

int apiops_load(const char *dir, const char *overrides, struct imp_artifacts *a,
		struct cfg_errors *errs)
{
	struct rd r = { dir, errs, 0 };
	struct imp_item *fr;
	size_t n_fr, i;
	struct stat st;

	memset(a, 0, sizeof(*a));
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		S_err(&r, dir, 1, "not a directory");
		return -1;
	}
	S_text(&r, "policy.xml", &a->policy);
	S_items(&r, "named values", "namedValueInformation.json", &a->named_values,
		&a->n_named_values);
	S_items(&r, "backends", "backendInformation.json", &a->backends, &a->n_backends);
	S_items(&r, "products", "productInformation.json", &a->products, &a->n_products);
	S_items(&r, "subscriptions", "subscriptionInformation.json", &a->subscriptions,
		&a->n_subscriptions);
	S_items(&r, "version sets", "versionSetInformation.json", &a->version_sets,
		&a->n_version_sets);
	S_items(&r, "gateways", "gatewayInformation.json", &a->gateways, &a->n_gateways);
	for (i = 0; i < a->n_products; i++) {
		char *f = S_path3("products", a->products[i].name, "policy.xml");
		if (f)
			S_text(&r, f, &a->products[i].policy);
		free(f);
		S_item_apis(&r, "products", &a->products[i]);
	}
	for (i = 0; i < a->n_gateways; i++)
		S_item_apis(&r, "gateways", &a->gateways[i]);
	S_items(&r, "policy fragments", "policyFragmentInformation.json", &fr, &n_fr);
	a->frags = calloc(n_fr + 1, sizeof(*a->frags));
	for (i = 0; a->frags && i < n_fr; i++) {
		struct imp_text t;
		char *f = S_path3("policy fragments", fr[i].name, "policy.xml");
		if (f)
			S_text(&r, f, &t);
		if (!f || !t.file) {
			S_err(&r, fr[i].file, 1, "the fragment has no policy.xml");
		} else {
			a->frags[a->n_frags].id = strdup(fr[i].name);
			a->frags[a->n_frags].file = t.file;
			a->frags[a->n_frags].xml = t.text;
			a->frags[a->n_frags].len = t.len;
			a->n_frags++;
		}
		free(f);
		free(fr[i].name);
		free(fr[i].file);
		json_object_put(fr[i].info);
	}
	free(fr);
	S_apis(&r, a);
	if (overrides)
		S_overrides(&r, overrides, a);
	if (r.failed) {
		apiops_free(a);
		return -1;
	}
	return 0;
}

static void S_items_free(struct imp_item *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].file);
		json_object_put(v[i].info);
		S_text_free(&v[i].policy);
		S_free_names(v[i].apis, v[i].n_apis);
	}
	free(v);
}

void apiops_free(struct imp_artifacts *a)
{
	size_t i;

	S_text_free(&a->policy);
	for (i = 0; i < a->n_apis; i++)
		S_api_free(&a->apis[i]);
	free(a->apis);
	S_items_free(a->named_values, a->n_named_values);
	S_items_free(a->backends, a->n_backends);
	S_items_free(a->products, a->n_products);
	S_items_free(a->subscriptions, a->n_subscriptions);
	S_items_free(a->version_sets, a->n_version_sets);
	S_items_free(a->gateways, a->n_gateways);
	for (i = 0; i < a->n_frags; i++) {
		free((char *)(uintptr_t)a->frags[i].id);
		free((char *)(uintptr_t)a->frags[i].file);
		free((char *)(uintptr_t)a->frags[i].xml);
	}
	free(a->frags);
	memset(a, 0, sizeof(*a));
}
