/*
 * pol_cache — what the five cache policies share (pol_cache_lookup.c,
 * pol_cache_store.c, pol_cache_lookup_value.c, pol_cache_store_value.c,
 * pol_cache_remove_value.c). Not a policy module: it is not in pol_list.h.
 *
 * caching-type: every cache policy but cache-store has POL_CACHE_TYPE_ATTR()
 * in its attribute table (POL_A_ENUM over pol_cache_type_names, default
 * POL_CACHE_PREFER_EXTERNAL); its compile hook calls pol_cache_check_type()
 * (or is pol_cache_compile()), and its run passes pol_cache_where() of the
 * value to the cache_*_at() calls (common/cache.h).
 * "internal" is this host's file only; the others use Redis when
 * gateway.counters names one, this file when it does not or when Redis fails.
 *
 * Value keys: cache-lookup-value, cache-store-value and cache-remove-value
 * store under pol_cache_value_key(): "v" then the expanded key template, so
 * they never meet cache-lookup's response keys (which begin "r"). Changing
 * that prefix orphans every stored entry.
 *
 * Response keys: cache-lookup, on a miss, leaves POL_CACHE_KEY_VAR set to one
 * byte saying where it looked (POL_CACHE_WHERE_LOCAL or _SHARED) then its
 * key; cache-store reads it in outbound.
 */
#ifndef HOSTGATE_POL_CACHE_H
#define HOSTGATE_POL_CACHE_H

#include <stddef.h>

#include "common/cache.h"
#include "policy/polmod.h"

#define POL_CACHE_KEY_VAR "cache-lookup:key"
#define POL_CACHE_WHERE_LOCAL 'L'
#define POL_CACHE_WHERE_SHARED 'S'

/* caching-type's values, in pol_cache_type_names' order. */
enum pol_cache_type { POL_CACHE_PREFER_EXTERNAL, POL_CACHE_INTERNAL, POL_CACHE_EXTERNAL };

/* "prefer-external", "internal", "external", NULL: the POL_A_ENUM names. */
extern const char *const pol_cache_type_names[];

/* The attribute table's entry: optional "caching-type" into the int member m of
 * the conf struct type t, POL_CACHE_PREFER_EXTERNAL when absent. */
#define POL_CACHE_TYPE_ATTR(t, m)                                                             \
	{ "caching-type", POL_A_ENUM, 0, 0, 0, POL_CACHE_PREFER_EXTERNAL, NULL,               \
	  pol_cache_type_names, offsetof(t, m) }

/* Where a caching-type's entries live: CACHE_LOCAL for internal, else CACHE_SHARED. */
enum cache_where pol_cache_where(int caching_type);

/* For a compile hook: an ld_err at the policy's "caching-type" when it is
 * "external" and gateway.counters names no Redis server. Returns nothing. */
void pol_cache_check_type(struct loader *ld, int caching_type);
/* A whole compile hook (polmod.h) for a policy with nothing else to check: its
 * conf struct must begin with the int caching-type member. */
void pol_cache_compile(struct loader *ld, json_object *o, void *conf);

/* Expands the template t (raw) and makes the value key "v" + expansion in a
 * new NUL-terminated *key (the caller frees it) of *key_len bytes (without the
 * NUL). Returns POL_STEP_NEXT on success; otherwise the call's error answer
 * (pol_fail_tpl or pol_oom, already set) and *key is NULL. */
enum pol_step pol_cache_value_key(struct pol_call *c, const struct tpl *t, char **key,
				  size_t *key_len);

#endif
