/*
 * model — the stored objects seen as configuration documents (config-v1.md):
 * what each object refers to, the whole database validated as one document
 * by policy/ (the same library the gateway loads with), and one gateway's
 * document holding only what its APIs need.
 *
 * Objects are stored as the JSON text their member has in the document
 * (store.h kinds). A gateway object is {"apis": [ids] | "*", "gateway": {…}}.
 *
 * References ("kind/id"): an API names its backend ("backend"), the backends
 * of its set-backend-service policies ("backend-id") and named values
 * ("{{name}}" in any string); a product names its APIs; a subscription its
 * scope ("api/X", "product/X", or "scope/all"); a gateway its APIs. The
 * store keeps them (store_set_refs), so a gateway's document is built from
 * what its APIs reach, never by reading the rest of the database.
 *
 * Errors: -1 with err set (database or memory); validation failures are 1
 * with *errors a new JSON array of {"path", "message"}, paths relative to
 * the object written ("operations[1].method", "$" for the object itself);
 * an error in another object that the write breaks keeps its document path
 * with the object's id ("apis[\"echo\"].backend").
 */
#ifndef HOSTGATE_MANAGE_MODEL_H
#define HOSTGATE_MANAGE_MODEL_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "manage/store.h"

#define MODEL_MAX_REFS 4096

/* The references obj (of kind) makes: 0 with *out (new strings, free with
 * model_refs_free), or -1. */
int model_refs(const char *kind, json_object *obj, char ***out, size_t *n);
void model_refs_free(char **refs, size_t n);

/* Validates the database as one document with (kind, id) replaced by
 * candidate (its JSON text as sent, or NULL: removed). 0 valid, 1 invalid
 * (*errors), -1 (err). */
int model_validate(struct store *st, const char *kind, const char *id, const char *candidate,
		   json_object **errors, char *err, size_t errlen);

/* The document gateway receives at generation: 0 with *body (new, *len
 * bytes), 1 no such gateway, -1 (err: also when the document fails to
 * validate, which a validated database never makes). */
int model_gateway_document(struct store *st, const char *gateway, int64_t generation,
			   char **body, size_t *len, char *err, size_t errlen);

#endif
