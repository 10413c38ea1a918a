/*
 * convert — Azure API Management definitions, held in memory as the APIOps
 * extractor writes them (or as the agent reads them from APIM's REST API:
 * the same JSON "properties" objects), turned into one format 1 configuration
 * document (shared/spec/config-v1.md), checked by the policy/ loader before
 * it is handed back. No file access here: apiops.c walks an artifacts folder
 * and fills struct imp_artifacts; hostgate-import's main.c prints.
 *
 * Calling sequence:
 *   struct imp_artifacts a = { ... };        (the caller owns everything in it)
 *   struct imp_options o = { .gateway = NULL, .keys = keys_json, ... };
 *   struct imp_report r = IMP_REPORT_INIT;
 *   struct cfg_errors errs = CFG_ERRORS_INIT;
 *   json_object *doc;
 *   if (imp_convert(&a, &o, &doc, &r, &errs) != 0) ... errs: "FILE:LINE: what, and why"
 *   imp_report_print(&r, stderr) or imp_report_json(&r)
 *   imp_report_release(&r); cfg_errors_release(&errs); json_object_put(doc);
 *
 * The mapping (docs/importing.md has the table): an API's name is its id,
 * its serviceUrl its backend (a named backend with that URL, else one named
 * "api-NAME"), its operations come from its OpenAPI specification with APIM's
 * operation names (imp_op_name), every policy.xml through policyxml.h;
 * named values by displayName; backends with url, credentials, TLS and pools;
 * products with their APIs and policy; subscriptions with the keys
 * options->keys supplies (hashed here), scope /products/P → product:P,
 * /apis/A → api:A, /apis or the service → all.
 *
 * Errors: every construct that cannot be carried over exactly is one message
 * in errs, at "FILE:LINE" (LINE 1 for a JSON artifact: the extractor writes
 * one object per file). Without options->exclude_unconvertible any error
 * means -1 and no document; with it, an API with an error is left out whole
 * (and reported), products and subscriptions left without an API are left
 * out too, and -1 only when what remains still fails.
 */
#ifndef HOSTGATE_CONVERT_H
#define HOSTGATE_CONVERT_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdio.h>

#include "import/policyxml.h"
#include "policy/gateway.h"

#define IMP_MAX_NAME 80

struct imp_text {
	char *file;		/* relative name for messages; NULL: absent */
	char *text;
	size_t len;
};

struct imp_operation {
	char *name;		/* APIM operation name (the extractor's folder name) */
	struct imp_text policy;
};

struct imp_api {
	char *name;		/* APIM API name without ";rev=N" */
	char *file;		/* its apiInformation.json, for messages */
	json_object *info;	/* that file's object ({"properties": {...}}) */
	json_object *spec;	/* OpenAPI 2 or 3 as JSON; NULL: none */
	char *spec_file;	/* the specification's file (also WSDL/GraphQL: refused) */
	char *spec_text;	/* its text, for line numbers in messages; may be NULL */
	int spec_refused;	/* a specification that is not OpenAPI */
	struct imp_text policy;
	struct imp_operation *ops;	/* operation policies */
	size_t n_ops;
	/* the agent (APIM's REST API lists operations itself): an array of
	 * {"id", "method", "url_template"} taken instead of a specification;
	 * NULL: from spec. Borrowed. */
	json_object *operations;
};

/* named values, backends, products, subscriptions, version sets, gateways */
struct imp_item {
	char *name;
	char *file;		/* its *Information.json */
	json_object *info;
	struct imp_text policy;	/* products */
	char **apis;		/* products, gateways: API names */
	size_t n_apis;
};

struct imp_artifacts {
	struct imp_text policy;	/* the root policy.xml */
	struct imp_api *apis;
	size_t n_apis;
	struct imp_item *named_values, *backends, *products, *subscriptions, *version_sets,
		*gateways;
	size_t n_named_values, n_backends, n_products, n_subscriptions, n_version_sets,
		n_gateways;
	struct px_fragment *frags;
	size_t n_frags;
};

struct imp_options {
	const char *gateway;	/* keep only what gateways/NAME assigns; NULL: all */
	json_object *keys;	/* {"subscription": ["key", ...]}; NULL: none */
	int exclude_unconvertible;
	long long generation;	/* the document's generation (>= 1) */
};

struct imp_report {
	json_object *j;		/* {"apis": [...], "secrets": [...], "subscriptions_without_keys": [...],
				 *  "left_out": [...]} */
};
#define IMP_REPORT_INIT { NULL }

/* 0 with a new *doc (validated by the policy/ loader), or -1 with errs. The
 * report is filled either way. */
int imp_convert(const struct imp_artifacts *a, const struct imp_options *o, json_object **doc,
		struct imp_report *r, struct cfg_errors *errs);

/* Operations for one OpenAPI 2/3 document: appends {"id", "method",
 * "url_template"} to ops, named as APIM names them. 0, or -1 with errs
 * (at file:1). */
int imp_openapi_operations(json_object *spec, const char *file, json_object *ops,
			   struct cfg_errors *errs);

/* APIM's operation name for an operationId (or, when NULL, for method and
 * path): lowercase, runs of other than [a-z0-9] to '-', at most
 * IMP_MAX_NAME bytes. A new string, or NULL (out of memory, or nothing left). */
char *imp_op_name(const char *operation_id, const char *method, const char *path);

/* The report as text (one line per item, for a person) to f. */
void imp_report_print(const struct imp_report *r, const struct cfg_errors *errs, FILE *f);
void imp_report_release(struct imp_report *r);

#endif
