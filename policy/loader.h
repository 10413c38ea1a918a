/*
 * loader — private to policy/: the configuration loader's state and helpers
 * (config.c), used by the parts of the loader that live in their own files
 * (policies.c and the policy modules: pipelines and policies; products.c:
 * products, subscriptions, backend pools and circuit breakers). Not for the
 * app. This header declares only config.c's helpers: each part's entry
 * points are in its own header (policies.h, products.h), so config.c
 * includes those and no part includes config.c's internals.
 *
 * Calling sequence (config.c, gw_load_buffer):
 *   backends:  products_parse_pool(), products_parse_breaker() per backend
 *   apis:      pol_parse_scope() for each operation's and API's "policies"
 *   top level: products_parse(), products_parse_subscriptions(),
 *              pol_parse_scope() for the global "policies"
 *   then, when nothing failed: pol_compile() (plans), products_build_keytab(),
 *   route_build()
 *   gw_free(): pol_free_gateway(), then products_free()
 *
 * Paths: every helper reports at ld->path, the JSON path being parsed
 * ("apis[0].policies.inbound[2][\"rate-limit\"].calls": members after a dot,
 * array indexes and data keys in brackets); ld_push_* append one step and
 * return a mark for ld_pop().
 *
 * Errors: parse functions report every problem with ld_err() and go on (all
 * errors of a document are collected); ld->n_errors counts them.
 */
#ifndef HOSTGATE_LOADER_H
#define HOSTGATE_LOADER_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/gateway.h"

#define LD_PATH_MAX 1024

/* ld_string flags */
#define STR_SUBST 1		/* substitute {{named values}} */
#define STR_NO_SECRET 2		/* refuse secret named values: route_build shows these */
#define STR_REQUEST_VALUES 4	/* allow "${...}" (policy attributes only) */

struct loader {
	struct cfg_errors *errs;
	size_t n_errors;	/* ours: errs may drop messages */
	struct gateway *gw;
	size_t expanded;	/* bytes produced by substitutions so far */
	char path[LD_PATH_MAX];
	size_t plen;
	/* policies (policies.c): the section being parsed, the nesting of
	 * choose, and TPL_READS() of the values of the policy being parsed
	 * (its needs) */
	int section;
	int depth;
	unsigned long reads;
};

/* path steps: return the mark to pop back to */
size_t ld_push_member(struct loader *ld, const char *name);
size_t ld_push_key(struct loader *ld, const char *key);
size_t ld_push_index(struct loader *ld, size_t i);
void ld_pop(struct loader *ld, size_t mark);

/* Reports an error at the current path. */
void ld_err(struct loader *ld, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Reports "'VALUE' PREDICATE", hiding a value that holds a secret. */
void ld_err_value(struct loader *ld, const char *value, int secret, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Type checks at the current path: 0 or -1 (reported). */
int ld_is_object(struct loader *ld, json_object *v);
int ld_is_array(struct loader *ld, json_object *v);
/* Member name of obj or NULL (absent, or null: reported); required and absent:
 * reported. */
json_object *ld_get(struct loader *ld, json_object *obj, const char *name, int required);
/* Is the member there at all? Reports nothing. */
int ld_present(json_object *obj, const char *name);
/* Reports members not in known (NULL-terminated) and not starting with "x-". */
void ld_check_members(struct loader *ld, json_object *obj, const char *const known[]);
/* A string (flags STR_*): 0 with a new *out (and *secret, may be NULL) or -1. */
int ld_string(struct loader *ld, json_object *v, unsigned flags, char **out, int *secret);
/* An id [A-Za-z0-9._-]{1,80}: 0 with a new *out, or -1. */
int ld_id(struct loader *ld, json_object *v, char **out);
/* A JSON integer in [min, max]: 0 or -1. */
int ld_int(struct loader *ld, json_object *v, int64_t min, int64_t max, int64_t *out);
/* A JSON boolean: 0 or -1. */
int ld_bool(struct loader *ld, json_object *v, int *out);
/* A backend URL (absolute http/https, no query): 0 with a new normalised *out,
 * or -1 (reported). */
int ld_check_url(struct loader *ld, const char *u, int secret, char **out);

/* Reports "[i].id: duplicate id" for every id that an earlier one repeats
 * (NULL ids are skipped), at the current path; sorts, so n log n. */
void ld_check_unique_ids(struct loader *ld, const char *const *ids, size_t n);
/* gw_load_buffer(), also handing over the parsed document (the image
 * compiler reads the APIs' JSON from it) when keep_tree is not NULL and the
 * load succeeded: the caller json_object_put()s it. */
struct gateway *ld_load(const char *buf, size_t len, struct cfg_errors *errs,
			json_object **keep_tree);

#endif
