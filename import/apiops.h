/*
 * apiops — reads an APIOps extractor artifacts folder (every layout the
 * extractor has written, docs/importing.md) into struct imp_artifacts
 * (convert.h), applying a configuration.<env>.yaml of overrides.
 *
 *   struct imp_artifacts a;
 *   if (apiops_load(dir, overrides_or_NULL, &a, &errs) != 0) ... errs ...
 *   imp_convert(&a, ...);
 *   apiops_free(&a);
 *
 * Names in messages are relative to dir ("apis/echo-api/policy.xml").
 * Errors: -1 with one message per unreadable or malformed artifact; a does
 * not need apiops_free then. Every file is read with a cap
 * (APIOPS_MAX_FILE_BYTES), never through a symbolic link.
 */
#ifndef HOSTGATE_APIOPS_H
#define HOSTGATE_APIOPS_H

#include "import/convert.h"

#define APIOPS_MAX_FILE_BYTES (16u * 1024 * 1024)
#define APIOPS_MAX_ENTRIES 100000

int apiops_load(const char *dir, const char *overrides, struct imp_artifacts *a,
		struct cfg_errors *errs);
/* Reads one OpenAPI file (JSON or YAML by content). 0 with *spec, or -1 (errs). */
int apiops_read_spec(const char *path, const char *shown, json_object **spec,
		     struct cfg_errors *errs);
void apiops_free(struct imp_artifacts *a);

#endif
