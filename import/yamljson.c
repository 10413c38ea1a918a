/*
 * yamljson — YAML → json-c (yamljson.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "import/yamljson.h"

static json_object *S_scalar(const yaml_node_t *n)
{
	const char *s = (const char *)n->data.scalar.value;
	size_t len = n->data.scalar.length;
	char *e;
	long long v;

	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return json_object_new_string_len(s, (int)len);
	if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
		return json_object_new_boolean(1);
	if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
		return json_object_new_boolean(0);
	if (!strcmp(s, "null") || !strcmp(s, "~") || len == 0)
		return NULL;
	if ((s[0] == '-' || (s[0] >= '0' && s[0] <= '9')) && len < 19) {
		errno = 0;
		v = strtoll(s, &e, 10);
		if (!*e && !errno && e != s)
			return json_object_new_int64(v);
	}
	return json_object_new_string_len(s, (int)len);
}

static int S_node(yaml_document_t *d, yaml_node_t *n, int depth, size_t *budget, json_object **out, size_t *line,
		  char *why, size_t whylen)
{
	json_object *o = NULL;

	*out = NULL;
	*line = n->start_mark.line + 1;
	if (depth > YJ_MAX_DEPTH) {
		snprintf(why, whylen, "nested more than %d deep", YJ_MAX_DEPTH);
		return -1;
	}
	/* aliases share nodes: a small file could expand without bound */
	if (*budget == 0) {
		snprintf(why, whylen, "more than %u values (aliases expanded)", YJ_MAX_NODES);
		return -1;
	}
	(*budget)--;
	switch (n->type) {
	case YAML_SCALAR_NODE:
		*out = S_scalar(n);
		return 0;
	case YAML_SEQUENCE_NODE: {
		yaml_node_item_t *it;
		o = json_object_new_array();
		for (it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
			json_object *v;
			yaml_node_t *k = yaml_document_get_node(d, *it);
			if (!k || S_node(d, k, depth + 1, budget, &v, line, why, whylen) != 0)
				goto bad;
			json_object_array_add(o, v);
		}
		*out = o;
		return 0;
	}
	case YAML_MAPPING_NODE: {
		yaml_node_pair_t *p;
		o = json_object_new_object();
		for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
			yaml_node_t *k = yaml_document_get_node(d, p->key);
			yaml_node_t *v = yaml_document_get_node(d, p->value);
			json_object *jv;
			if (!k || !v || k->type != YAML_SCALAR_NODE) {
				*line = n->start_mark.line + 1;
				snprintf(why, whylen, "a mapping key that is not a scalar");
				goto bad;
			}
			if (S_node(d, v, depth + 1, budget, &jv, line, why, whylen) != 0)
				goto bad;
			json_object_object_add(o, (const char *)k->data.scalar.value, jv);
		}
		*out = o;
		return 0;
	}
	default:
		snprintf(why, whylen, "an empty node");
		return -1;
	}
bad:
	json_object_put(o);
	return -1;
}

int yj_parse(const char *text, size_t len, json_object **out, size_t *line, char *why,
	     size_t whylen)
{
	yaml_parser_t p;
	yaml_document_t d;
	yaml_node_t *root;
	int rc = -1, have_doc = 0;
	size_t budget;

	*out = NULL;
	*line = 1;
	if (!yaml_parser_initialize(&p)) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
	if (!yaml_parser_load(&p, &d)) {
		*line = p.problem_mark.line + 1;
		snprintf(why, whylen, "not YAML: %s", p.problem ? p.problem : "parse error");
		goto out;
	}
	have_doc = 1;
	root = yaml_document_get_root_node(&d);
	if (!root) {
		snprintf(why, whylen, "an empty document");
		goto out;
	}
	budget = YJ_MAX_NODES;
	if (S_node(&d, root, 0, &budget, out, line, why, whylen) == 0)
		rc = 0;
out:
	if (have_doc)
		yaml_document_delete(&d);
	yaml_parser_delete(&p);
	return rc;
}
