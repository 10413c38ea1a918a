#include "sync-agent/apim.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/atomicfile.h"
#include "common/jsonget.h"
#include "common/log.h"
#include "import/convert.h"
#include "sync-agent/arm.h"
#include "sync-agent/verify.h"

#define APIM_MAX_APIS 2000
#define APIM_MAX_OPS 2000	/* per API */
#define APIM_KEYS_FILE "apim-keys.json"
#define APIM_KEYS_MAX (16u * 1024 * 1024)

/* What one sync read, owned here; a.* point into it. */
struct read {
	struct imp_artifacts a;
	json_object *gw_apis;		/* gateways/{g}/apis items */
	json_object **ops;		/* per API: operations list items */
	json_object **op_lists;		/* per API: [{"id","method","url_template"}] */
	json_object *policies;		/* every policy answer, kept for its text */
	char **names;			/* file names for messages */
	size_t n_names, cap_names;
	json_object *products;		/* products list items */
	json_object *product_apis;	/* per kept product: its apis list items */
	json_object *subs;		/* subscriptions list items */
	json_object *keys;		/* {"subscription": ["primary", "secondary"]}: secret */
	json_object *old_keys;		/* apim-keys.json as loaded (secret), or NULL */
	json_object *new_keys;		/* what this sync writes there (secret) */
	unsigned secrets_skipped;	/* listSecrets saved by an unchanged etag */
	json_object *nvs;		/* named values list items (secret values put in: secret) */
	json_object *backends, *version_sets, *frags;
};

/* Keeps a copy of s for the sync's lifetime, without its query (a name for
 * messages: "apis/A/policies/policy"). Returns it, or NULL. */
static char *S_keep(struct read *rd, const char *s)
{
	if (rd->n_names == rd->cap_names) {
		size_t cap = rd->cap_names ? rd->cap_names * 2 : 64;
		char **nv = realloc(rd->names, cap * sizeof(*nv));

		if (!nv)
			return NULL;
		rd->names = nv;
		rd->cap_names = cap;
	}
	rd->names[rd->n_names] = strndup(s, strcspn(s, "?"));
	return rd->names[rd->n_names] ? rd->names[rd->n_names++] : NULL;
}

static json_object *S_props(json_object *o)
{
	json_object *p;

	if (o && json_object_object_get_ex(o, "properties", &p) &&
	    json_object_is_type(p, json_type_object))
		return p;
	return NULL;
}

/* 1 when s is a name ARM could give: 1-256 of A-Z a-z 0-9 - _ . ; = (never
 * '/', '?', '&', '%': it goes into a path). */
static int S_arm_name(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n < 1 || n > 256)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.' || c == ';' || c == '='))
			return 0;
	}
	return 1;
}

/* Reads the rawxml policy at path into *t (absent: t->text NULL), keeping the
 * answer alive in rd->policies. Returns 0 or -1. */
static int S_policy(struct arm *arm, struct read *rd, const char *path, const char *file,
		    struct imp_text *t)
{
	json_object *j = NULL;
	const char *v;
	long status = 0;

	if (arm_get(arm, path, &status, &j) < 0)
		return -1;
	if (!j)
		return 0;
	json_object_array_add(rd->policies, j);
	v = jget_str(S_props(j), "value");
	if (!v) {
		snprintf(arm->error, sizeof(arm->error), "ARM %s: no properties.value", path);
		return -1;
	}
	t->file = (char *)(uintptr_t)file;
	t->text = (char *)(uintptr_t)v;
	t->len = strlen(v);
	return 0;
}

/* The operations of API i, and each one's policy. Returns 0 or -1. */
static int S_api(struct arm *arm, struct read *rd, size_t i)
{
	struct imp_api *api = &rd->a.apis[i];
	char path[AGENT_URL_MAX];
	const char *file;
	size_t n;

	snprintf(path, sizeof(path), "/apis/%s/operations", api->name);
	rd->ops[i] = json_object_new_array();
	rd->op_lists[i] = json_object_new_array();
	if (!rd->ops[i] || !rd->op_lists[i]) {
		snprintf(arm->error, sizeof(arm->error), "out of memory");
		return -1;
	}
	if (arm_list(arm, path, rd->ops[i]) < 0)
		return -1;
	n = json_object_array_length(rd->ops[i]);
	if (n > APIM_MAX_OPS) {
		snprintf(arm->error, sizeof(arm->error), "API '%s' has more than %d operations",
			 api->name, APIM_MAX_OPS);
		return -1;
	}
	api->ops = calloc(n + 1, sizeof(*api->ops));
	if (!api->ops) {
		snprintf(arm->error, sizeof(arm->error), "out of memory");
		return -1;
	}
	for (size_t k = 0; k < n; k++) {
		json_object *op = json_object_array_get_idx(rd->ops[i], k), *p = S_props(op);
		json_object *o = json_object_new_object();
		const char *name = jget_str(op, "name");

		if (!o || !S_arm_name(name) || !jget_str(p, "method") || !jget_str(p, "urlTemplate")) {
			json_object_put(o);
			snprintf(arm->error, sizeof(arm->error), "ARM /apis/%s/operations: an "
				 "operation without a usable name, method or urlTemplate", api->name);
			return -1;
		}
		json_object_object_add(o, "id", json_object_new_string(name));
		json_object_object_add(o, "method", json_object_new_string(jget_str(p, "method")));
		json_object_object_add(o, "url_template",
				       json_object_new_string(jget_str(p, "urlTemplate")));
		json_object_array_add(rd->op_lists[i], o);
		api->ops[k].name = (char *)(uintptr_t)name;
		snprintf(path, sizeof(path), "/apis/%s/operations/%s/policies/policy?format=rawxml",
			 api->name, name);
		file = S_keep(rd, path + 1);
		if (!file)
			snprintf(arm->error, sizeof(arm->error), "out of memory");
		if (!file || S_policy(arm, rd, path, file, &api->ops[k].policy) < 0)
			return -1;
		api->n_ops++;
	}
	api->operations = rd->op_lists[i];
	snprintf(path, sizeof(path), "/apis/%s/policies/policy?format=rawxml", api->name);
	file = S_keep(rd, path + 1);
	if (!file) {
		snprintf(arm->error, sizeof(arm->error), "out of memory");
		return -1;
	}
	return S_policy(arm, rd, path, file, &api->policy);
}

/* 1 when API name is among those read. */
static int S_served(const struct read *rd, const char *name)
{
	for (size_t i = 0; i < rd->a.n_apis; i++)
		if (strcmp(rd->a.apis[i].name, name) == 0)
			return 1;
	return 0;
}

/* The products that reach a served API, with those APIs and their policy.
 * Returns 0 or -1. */
static int S_products(struct arm *arm, struct read *rd)
{
	char path[AGENT_URL_MAX];
	size_t n;

	rd->products = json_object_new_array();
	rd->product_apis = json_object_new_array();
	if (!rd->products || !rd->product_apis)
		goto oom;
	if (arm_list(arm, "/products", rd->products) < 0)
		return -1;
	n = json_object_array_length(rd->products);
	rd->a.products = calloc(n + 1, sizeof(*rd->a.products));
	if (!rd->a.products)
		goto oom;
	for (size_t i = 0; i < n; i++) {
		json_object *it = json_object_array_get_idx(rd->products, i), *apis;
		struct imp_item *p = &rd->a.products[rd->a.n_products];
		const char *name = jget_str(it, "name");
		size_t m;

		if (!S_arm_name(name) || !S_props(it)) {
			snprintf(arm->error, sizeof(arm->error), "ARM /products: a product without "
				 "a usable name or properties");
			return -1;
		}
		apis = json_object_new_array();
		if (!apis || json_object_array_add(rd->product_apis, apis) < 0) {
			json_object_put(apis);
			goto oom;
		}
		snprintf(path, sizeof(path), "/products/%s/apis", name);
		if (arm_list(arm, path, apis) < 0)
			return -1;
		m = json_object_array_length(apis);
		p->apis = calloc(m + 1, sizeof(*p->apis));
		if (!p->apis)
			goto oom;
		for (size_t k = 0; k < m; k++) {
			const char *an = jget_str(json_object_array_get_idx(apis, k), "name");

			if (an && S_served(rd, an))
				p->apis[p->n_apis++] = (char *)(uintptr_t)an;
		}
		if (p->n_apis == 0) {
			/* reaches nothing this gateway serves: not read further */
			free(p->apis);
			p->apis = NULL;
			continue;
		}
		p->name = (char *)(uintptr_t)name;
		p->info = it;
		snprintf(path, sizeof(path), "products/%s", name);
		p->file = S_keep(rd, path);
		snprintf(path, sizeof(path), "/products/%s/policies/policy?format=rawxml", name);
		if (!p->file || !S_keep(rd, path + 1))
			goto oom;
		rd->a.n_products++;
		if (S_policy(arm, rd, path, rd->names[rd->n_names - 1], &p->policy) < 0)
			return -1;
	}
	return 0;
oom:
	snprintf(arm->error, sizeof(arm->error), "out of memory");
	return -1;
}

/* 1 when a subscription's scope reaches something served: the service or
 * all APIs, a served API, a kept product. */
static int S_scope_served(const struct read *rd, const char *scope)
{
	const char *p = strstr(scope, "/products/"), *a = strstr(scope, "/apis/");

	if (p) {
		for (size_t i = 0; i < rd->a.n_products; i++)
			if (strcmp(rd->a.products[i].name, p + 10) == 0)
				return 1;
		return 0;
	}
	if (a)
		return S_served(rd, a + 6);
	return 1;	/* all APIs, the service: the converter checks the form */
}

/* 1 when keys is what S_subscriptions stores: an array of at most two
 * non-empty strings. */
static int S_key_list(json_object *keys)
{
	size_t n;

	if (!json_object_is_type(keys, json_type_array))
		return 0;
	n = json_object_array_length(keys);
	if (n > 2)
		return 0;
	for (size_t i = 0; i < n; i++) {
		json_object *k = json_object_array_get_idx(keys, i);

		if (!json_object_is_type(k, json_type_string) || !json_object_get_string_len(k))
			return 0;
	}
	return 1;
}

/* The subscriptions that reach something served, with their keys
 * (listSecrets). Returns 0 or -1. */
static int S_subscriptions(struct arm *arm, struct read *rd)
{
	char path[AGENT_URL_MAX];
	size_t n;

	rd->subs = json_object_new_array();
	rd->keys = json_object_new_object();
	rd->new_keys = json_object_new_object();
	if (!rd->subs || !rd->keys || !rd->new_keys)
		goto oom;
	if (arm_list(arm, "/subscriptions", rd->subs) < 0)
		return -1;
	n = json_object_array_length(rd->subs);
	rd->a.subscriptions = calloc(n + 1, sizeof(*rd->a.subscriptions));
	if (!rd->a.subscriptions)
		goto oom;
	for (size_t i = 0; i < n; i++) {
		json_object *it = json_object_array_get_idx(rd->subs, i), *sec = NULL, *keys, *was;
		struct imp_item *s = &rd->a.subscriptions[rd->a.n_subscriptions];
		const char *name = jget_str(it, "name"), *scope = jget_str(S_props(it), "scope");
		const char *state = jget_str(S_props(it), "state"), *k1, *k2, *etag;

		if (!S_arm_name(name) || !scope) {
			snprintf(arm->error, sizeof(arm->error), "ARM /subscriptions: a "
				 "subscription without a usable name or scope");
			return -1;
		}
		if (!S_scope_served(rd, scope) ||
		    (state && strcmp(state, "active") && strcmp(state, "suspended")))
			continue;
		etag = jget_str(it, "etag");
		if (etag && *etag && rd->old_keys &&
		    json_object_object_get_ex(rd->old_keys, name, &was) &&
		    jget_str(was, "etag") && strcmp(jget_str(was, "etag"), etag) == 0 &&
		    json_object_object_get_ex(was, "keys", &keys) && S_key_list(keys)) {
			/* unchanged since the keys were read: a regenerated key
			 * changes the subscription's etag (docs/azure-apim.md) */
			json_object_object_add(rd->keys, name, json_object_get(keys));
			rd->secrets_skipped++;
			goto keep;
		}
		snprintf(path, sizeof(path), "/subscriptions/%s/listSecrets", name);
		if (arm_post(arm, path, &sec) < 0)
			return -1;
		k1 = jget_str(sec, "primaryKey");
		k2 = jget_str(sec, "secondaryKey");
		keys = json_object_new_array();
		if (!keys) {
			json_object_put(sec);
			goto oom;
		}
		if (k1 && *k1)
			json_object_array_add(keys, json_object_new_string(k1));
		if (k2 && *k2)
			json_object_array_add(keys, json_object_new_string(k2));
		for (const char *k[2] = { k1, k2 }, **q = k; q < k + 2; q++)
			if (*q)
				explicit_bzero((char *)(uintptr_t)*q, strlen(*q));
		json_object_put(sec);
		json_object_object_add(rd->keys, name, keys);
keep:
		if (etag && *etag) {
			json_object *e = json_object_new_object();

			if (!e)
				goto oom;
			json_object_object_add(e, "etag", json_object_new_string(etag));
			json_object_object_add(e, "keys", json_object_get(keys));
			json_object_object_add(rd->new_keys, name, e);
		}
		s->name = (char *)(uintptr_t)name;
		s->info = it;
		snprintf(path, sizeof(path), "subscriptions/%s", name);
		s->file = S_keep(rd, path);
		if (!s->file)
			goto oom;
		rd->a.n_subscriptions++;
	}
	return 0;
oom:
	snprintf(arm->error, sizeof(arm->error), "out of memory");
	return -1;
}

/* 1 when some policy read so far (or a fragment) names {{dn}}. */
static int S_used(const struct read *rd, const char *dn)
{
	char pat[300];
	size_t i, k;

	if (snprintf(pat, sizeof(pat), "{{%s}}", dn) >= (int)sizeof(pat))
		return 1;
	if (rd->a.policy.text && strstr(rd->a.policy.text, pat))
		return 1;
	for (i = 0; i < rd->a.n_apis; i++) {
		if (rd->a.apis[i].policy.text && strstr(rd->a.apis[i].policy.text, pat))
			return 1;
		for (k = 0; k < rd->a.apis[i].n_ops; k++)
			if (rd->a.apis[i].ops[k].policy.text &&
			    strstr(rd->a.apis[i].ops[k].policy.text, pat))
				return 1;
	}
	for (i = 0; i < rd->a.n_products; i++)
		if (rd->a.products[i].policy.text && strstr(rd->a.products[i].policy.text, pat))
			return 1;
	for (i = 0; i < rd->a.n_frags; i++)
		if (strstr(rd->a.frags[i].xml, pat))
			return 1;
	return 0;
}

/* Fills items[] from a list read at path: name, file "kind/NAME", info.
 * Returns 0 or -1. */
static int S_items(struct arm *arm, struct read *rd, const char *path, const char *kind,
		   json_object **list, struct imp_item **items, size_t *n)
{
	char file[AGENT_URL_MAX];
	size_t m;

	*list = json_object_new_array();
	if (!*list)
		goto oom;
	if (arm_list(arm, path, *list) < 0)
		return -1;
	m = json_object_array_length(*list);
	*items = calloc(m + 1, sizeof(**items));
	if (!*items)
		goto oom;
	for (size_t i = 0; i < m; i++) {
		json_object *it = json_object_array_get_idx(*list, i);
		const char *name = jget_str(it, "name");

		if (!S_arm_name(name) || !S_props(it)) {
			snprintf(arm->error, sizeof(arm->error), "ARM %s: an item without a usable "
				 "name or properties", path);
			return -1;
		}
		snprintf(file, sizeof(file), "%s/%s", kind, name);
		(*items)[i].name = (char *)(uintptr_t)name;
		(*items)[i].info = it;
		(*items)[i].file = S_keep(rd, file);
		if (!(*items)[i].file)
			goto oom;
		(*n)++;
	}
	return 0;
oom:
	snprintf(arm->error, sizeof(arm->error), "out of memory");
	return -1;
}

/* Policy fragments (rawxml: the list carries each value). Returns 0 or -1. */
static int S_fragments(struct arm *arm, struct read *rd)
{
	size_t m;

	rd->frags = json_object_new_array();
	if (!rd->frags)
		goto oom;
	if (arm_list(arm, "/policyFragments?format=rawxml", rd->frags) < 0)
		return -1;
	m = json_object_array_length(rd->frags);
	rd->a.frags = calloc(m + 1, sizeof(*rd->a.frags));
	if (!rd->a.frags)
		goto oom;
	for (size_t i = 0; i < m; i++) {
		json_object *it = json_object_array_get_idx(rd->frags, i);
		const char *name = jget_str(it, "name"), *v = jget_str(S_props(it), "value");
		char file[AGENT_URL_MAX];

		if (!S_arm_name(name) || !v) {
			snprintf(arm->error, sizeof(arm->error), "ARM /policyFragments: a fragment "
				 "without a usable name or value");
			return -1;
		}
		snprintf(file, sizeof(file), "policyFragments/%s", name);
		rd->a.frags[i].id = name;
		rd->a.frags[i].xml = v;
		rd->a.frags[i].len = strlen(v);
		rd->a.frags[i].file = S_keep(rd, file);
		if (!rd->a.frags[i].file)
			goto oom;
		rd->a.n_frags++;
	}
	return 0;
oom:
	snprintf(arm->error, sizeof(arm->error), "out of memory");
	return -1;
}

/* Named values: the secret and Key Vault ones a policy uses get their value
 * by listValue (APIM's cached copy for Key Vault); those without a value and
 * unused are not handed over. Returns 0 or -1. */
static int S_named_values(struct arm *arm, struct read *rd)
{
	struct imp_item *all = NULL;
	size_t n = 0, kept = 0;
	int rc = -1;

	if (S_items(arm, rd, "/namedValues", "namedValues", &rd->nvs, &all, &n) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		json_object *p = S_props(all[i].info), *kv, *ans = NULL;
		const char *dn = jget_str(p, "displayName");
		char path[AGENT_URL_MAX];

		if (!dn || !S_used(rd, dn))
			continue;
		if (!jget_str(p, "value") && (json_object_object_get_ex(p, "secret", &kv) ||
					   json_object_object_get_ex(p, "keyVault", &kv))) {
			snprintf(path, sizeof(path), "/namedValues/%s/listValue", all[i].name);
			if (arm_post(arm, path, &ans) < 0)
				goto out;
			if (!jget_str(ans, "value")) {
				json_object_put(ans);
				snprintf(arm->error, sizeof(arm->error), "ARM listValue of named "
					 "value %.200s: no value", all[i].name);
				goto out;
			}
			/* into the item's properties: zeroed with rd->nvs */
			json_object_object_add(p, "value",
					       json_object_new_string(jget_str(ans, "value")));
			explicit_bzero((char *)(uintptr_t)jget_str(ans, "value"),
				       strlen(jget_str(ans, "value")));
			json_object_put(ans);
		}
		all[kept++] = all[i];
	}
	rd->a.named_values = all;
	rd->a.n_named_values = kept;
	all = NULL;
	rc = 0;
out:
	free(all);
	return rc;
}

/* Zeroes the keys' text before they are freed. */
static void S_forget_keys(json_object *keys)
{
	if (!keys)
		return;
	json_object_object_foreach(keys, name, arr) {
		(void)name;
		for (size_t i = 0; i < json_object_array_length(arr); i++) {
			json_object *k = json_object_array_get_idx(arr, i);

			explicit_bzero((char *)(uintptr_t)json_object_get_string(k),
				       (size_t)json_object_get_string_len(k));
		}
	}
	json_object_put(keys);
}

/* Zeroes the named values' values before they are freed. */
static void S_forget_values(json_object *nvs)
{
	for (size_t i = 0; nvs && i < json_object_array_length(nvs); i++) {
		const char *v = jget_str(S_props(json_object_array_get_idx(nvs, i)), "value");

		if (v)
			explicit_bzero((char *)(uintptr_t)v, strlen(v));
	}
	json_object_put(nvs);
}

/* Logs what the converter said, one line each. */
static void S_log_report(const struct imp_report *r, const struct cfg_errors *errs)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return;
	imp_report_print(r, errs, f);
	fclose(f);
	for (char *line = buf, *nl; line && *line; line = nl ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		/* what went over is news only to a person looking (--once is silent
		 * on success); what did not is an error */
		if ((strncmp(line, "api ", 4) == 0 && strstr(line, ": imported")) ||
		    strncmp(line, "secret named value ", 19) == 0)
			log_info("%s", line);
		else
			log_err("%s", line);
	}
	free(buf);
}

/* Fails the sync: the installed configuration stays. */
static enum sync_result S_fail(struct agent *a, const char *why)
{
	snprintf(a->last_error, sizeof(a->last_error), "%s", why);
	log_err("%s", why);
	return SYNC_FAILED;
}

/* The names of the APIs the report did not import, comma-separated, into
 * buf ("" when none). */
static void S_left_out(const struct imp_report *r, char *buf, size_t len)
{
	json_object *arr;
	size_t used = 0;

	buf[0] = '\0';
	if (!r->j || !json_object_object_get_ex(r->j, "apis", &arr))
		return;
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *e = json_object_array_get_idx(arr, i);
		const char *st = jget_str(e, "status"), *name = jget_str(e, "name");
		int n;

		if (!name || (st && strcmp(st, "imported") == 0))
			continue;
		n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", name);
		if (n < 0 || (size_t)n >= len - used)
			return;
		used += (size_t)n;
	}
}

/* The document's bytes with generation gen. Returns a string the document
 * owns, or NULL. */
static const char *S_bytes(json_object *doc, int64_t gen, size_t *len)
{
	const char *s;

	json_object_object_add(doc, "generation", json_object_new_int64(gen));
	s = json_object_to_json_string_length(doc, JSON_C_TO_STRING_PRETTY |
					      JSON_C_TO_STRING_NOSLASHESCAPE, len);
	return s;
}

/* Zeroes and drops {name: {"etag", "keys": [...]}} (apim-keys.json's form). */
static void S_forget_cache(json_object *c)
{
	if (!c)
		return;
	json_object_object_foreach(c, name, e) {
		json_object *keys;

		(void)name;
		if (!json_object_object_get_ex(e, "keys", &keys) ||
		    !json_object_is_type(keys, json_type_array))
			continue;
		for (size_t i = 0; i < json_object_array_length(keys); i++) {
			json_object *k = json_object_array_get_idx(keys, i);

			if (json_object_is_type(k, json_type_string))
				explicit_bzero((char *)(uintptr_t)json_object_get_string(k),
					       (size_t)json_object_get_string_len(k));
		}
	}
	json_object_put(c);
}

/* apim-keys.json beside config_path (the agent's own directory, mode 0600):
 * the keys listSecrets gave each subscription and its etag then. Returns the
 * object, or NULL when absent, too big or not of that form (then every key
 * is read again: never an error). */
static json_object *S_keys_load(const struct agent *a)
{
	char path[AGENT_URL_MAX];
	json_object *o = NULL;
	struct stat st;
	char *buf = NULL;
	ssize_t got = 0;
	int fd = -1;

	if (agent_file(a, APIM_KEYS_FILE, path, sizeof(path)) < 0)
		goto out;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    (uint64_t)st.st_size > APIM_KEYS_MAX)
		goto out;
	buf = calloc(1, (size_t)st.st_size + 1);
	if (!buf)
		goto out;
	while (got < st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)(st.st_size - got));

		if (n <= 0)
			goto out;
		got += n;
	}
	o = json_tokener_parse(buf);
	if (o && !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		o = NULL;
	}
out:
	if (buf) {
		explicit_bzero(buf, (size_t)got);
		free(buf);
	}
	if (fd >= 0)
		close(fd);
	return o;
}

/* Writes c to apim-keys.json (0600, atomically); a failure is logged and
 * costs only listSecrets reads next time. */
static void S_keys_save(const struct agent *a, json_object *c)
{
	char path[AGENT_URL_MAX];
	const char *text, *step = "";
	size_t len = 0;

	if (agent_file(a, APIM_KEYS_FILE, path, sizeof(path)) < 0)
		return;
	text = json_object_to_json_string_length(c, JSON_C_TO_STRING_PLAIN, &len);
	if (!text)
		return;
	if (atomicfile_replace(path, text, len, 0600, ATOMICFILE_DIR_GROUP, &step) < 0)
		log_warn("cannot write '%s' (%s): every key is read again next sync", path, step);
	explicit_bzero((char *)(uintptr_t)text, len);
}

enum sync_result apim_attempt(struct agent *a)
{
	struct arm arm;
	struct read rd;
	struct imp_options o = { NULL, NULL, 1, a->installed ? a->generation : 1 };
	struct imp_report r = IMP_REPORT_INIT;
	struct cfg_errors errs = CFG_ERRORS_INIT;
	json_object *doc = NULL;
	char path[AGENT_URL_MAX], left[AGENT_ERROR_MAX / 2], why[AGENT_ERROR_MAX];
	unsigned char sha[32];
	const char *bytes;
	size_t n_apis = 0, len = 0;
	enum sync_result rc = SYNC_FAILED;

	memset(&rd, 0, sizeof(rd));
	arm_init(&arm, &a->fetch, &a->conf);
	rd.old_keys = S_keys_load(a);
	rd.gw_apis = json_object_new_array();
	rd.policies = json_object_new_array();
	if (!rd.gw_apis || !rd.policies) {
		S_fail(a, "out of memory");
		goto out;
	}
	snprintf(path, sizeof(path), "/gateways/%s/apis", a->conf.apim_gateway);
	if (arm_list(&arm, path, rd.gw_apis) < 0)
		goto fail;
	n_apis = json_object_array_length(rd.gw_apis);
	if (n_apis > APIM_MAX_APIS) {
		snprintf(arm.error, sizeof(arm.error), "the gateway has more than %d APIs",
			 APIM_MAX_APIS);
		goto fail;
	}
	rd.a.apis = calloc(n_apis + 1, sizeof(*rd.a.apis));
	rd.ops = calloc(n_apis + 1, sizeof(*rd.ops));
	rd.op_lists = calloc(n_apis + 1, sizeof(*rd.op_lists));
	if (!rd.a.apis || !rd.ops || !rd.op_lists) {
		S_fail(a, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n_apis; i++) {
		json_object *it = json_object_array_get_idx(rd.gw_apis, i);
		const char *name = jget_str(it, "name");

		if (!S_arm_name(name) || !S_props(it)) {
			snprintf(arm.error, sizeof(arm.error), "ARM gateways/%s/apis: an API "
				 "without a usable name or properties", a->conf.apim_gateway);
			goto fail;
		}
		/* the gateway's list carries each API's whole contract: no read of its own */
		rd.a.apis[i].name = (char *)(uintptr_t)name;
		rd.a.apis[i].info = it;
		snprintf(path, sizeof(path), "apis/%s", name);
		rd.a.apis[i].file = S_keep(&rd, path);
		if (!rd.a.apis[i].file) {
			S_fail(a, "out of memory");
			goto out;
		}
		rd.a.n_apis++;
		if (S_api(&arm, &rd, i) < 0)
			goto fail;
	}
	if (S_policy(&arm, &rd, "/policies/policy?format=rawxml", "policy", &rd.a.policy) < 0 ||
	    S_products(&arm, &rd) < 0 || S_subscriptions(&arm, &rd) < 0 ||
	    S_fragments(&arm, &rd) < 0 || S_named_values(&arm, &rd) < 0 ||
	    S_items(&arm, &rd, "/backends", "backends", &rd.backends, &rd.a.backends,
		    &rd.a.n_backends) < 0 ||
	    S_items(&arm, &rd, "/apiVersionSets", "apiVersionSets", &rd.version_sets,
		    &rd.a.version_sets, &rd.a.n_version_sets) < 0)
		goto fail;
	o.keys = rd.keys;
	/* every read succeeded: the keys of this sync, for the next one */
	S_keys_save(a, rd.new_keys);
	/* converted whole or not at all: only after every read succeeded */
	if (imp_convert(&rd.a, &o, &doc, &r, &errs) < 0) {
		S_log_report(&r, &errs);
		snprintf(why, sizeof(why), "APIM gateway '%s': nothing of it can be carried over "
			 "(%s)", a->conf.apim_gateway, errs.n ? errs.msg[0] : "no detail");
		S_fail(a, why);
		goto out;
	}
	S_log_report(&r, &errs);
	log_info("APIM gateway '%s': %zu APIs assigned (%u ARM reads, %u token requests, "
		 "%u listSecrets saved by unchanged etags)", a->conf.apim_gateway, n_apis,
		 arm.reads, arm.token_requests, rd.secrets_skipped);
	bytes = S_bytes(doc, o.generation, &len);
	if (!bytes || verify_sha256(bytes, len, sha) < 0) {
		S_fail(a, "out of memory");
		goto out;
	}
	if (a->installed && memcmp(sha, a->sha256, sizeof(sha)) == 0) {
		rc = SYNC_UNCHANGED;
	} else {
		/* changed: the next generation */
		bytes = S_bytes(doc, a->installed ? a->generation + 1 : 1, &len);
		if (!bytes) {
			S_fail(a, "out of memory");
			goto out;
		}
		rc = sync_install_buffer(a, bytes, len);
	}
	S_left_out(&r, left, sizeof(left));
	if (rc != SYNC_FAILED && left[0]) {
		snprintf(why, sizeof(why), "APIM gateway '%s': installed without %s (cannot be "
			 "carried over exactly; they answer 404)", a->conf.apim_gateway, left);
		rc = S_fail(a, why);
	}
	goto out;
fail:
	S_fail(a, arm.error);
out:
	json_object_put(doc);
	imp_report_release(&r);
	cfg_errors_release(&errs);
	for (size_t i = 0; rd.a.apis && i < rd.a.n_apis; i++)
		free(rd.a.apis[i].ops);
	for (size_t i = 0; rd.ops && i < n_apis; i++) {
		json_object_put(rd.ops[i]);
		json_object_put(rd.op_lists[i]);
	}
	for (size_t i = 0; i < rd.n_names; i++)
		free(rd.names[i]);
	free(rd.names);
	free(rd.a.apis);
	free(rd.ops);
	free(rd.op_lists);
	for (size_t i = 0; rd.a.products && i < rd.a.n_products; i++)
		free(rd.a.products[i].apis);
	free(rd.a.products);
	free(rd.a.subscriptions);
	json_object_put(rd.products);
	json_object_put(rd.product_apis);
	json_object_put(rd.subs);
	S_forget_cache(rd.new_keys);
	S_forget_cache(rd.old_keys);
	S_forget_keys(rd.keys);
	S_forget_values(rd.nvs);
	free(rd.a.named_values);
	free(rd.a.backends);
	free(rd.a.version_sets);
	free(rd.a.frags);
	json_object_put(rd.backends);
	json_object_put(rd.version_sets);
	json_object_put(rd.frags);
	json_object_put(rd.policies);
	json_object_put(rd.gw_apis);
	arm_release(&arm);
	return rc;
}
