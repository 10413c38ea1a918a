/*
 * yamljson — a YAML document (configuration.<env>.yaml, specification.yaml)
 * as a json-c value, through libyaml (Debian's libyaml-dev: already the
 * YAML library of the distribution, small, and its document API is all the
 * importer needs; libfyaml's YAML 1.2 extras buy nothing for APIM's exports).
 * libyaml is confined to this file.
 *
 *   json_object *j;
 *   if (yj_parse(text, len, &j, &line, why, sizeof(why)) != 0) ... FILE:line: why
 *   ... json_object_put(j);
 *
 * Plain (unquoted) scalars become integers, booleans (true/false) or null
 * when they read as such, as YAML 1.1 core types; everything else a string.
 * Aliases are followed, but at most YJ_MAX_NODES values are made in all (an
 * alias of an alias is how "billion laughs" grows); mapping keys must be
 * scalars; depth is capped at YJ_MAX_DEPTH.
 */
#ifndef HOSTGATE_YAMLJSON_H
#define HOSTGATE_YAMLJSON_H

#include <json-c/json.h>
#include <stddef.h>

#define YJ_MAX_DEPTH 64
#define YJ_MAX_NODES 1000000u

/* 0 with a new *out, or -1 with *line (1-based) and why. */
int yj_parse(const char *text, size_t len, json_object **out, size_t *line, char *why,
	     size_t whylen);

#endif
