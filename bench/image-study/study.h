/*
 * study — what both prototypes store and how they are driven, so that the image
 * of our own (img.c) and LMDB (lmdb.c) are measured on the same data and the
 * same lookups. Benchmark code for issue 9's representation study, not product
 * code: no error recovery beyond a message and exit.
 *
 * The data is bench/gen-doc's default shape, made in memory (JSON parsing would
 * cost both the same and is measured by bench/scale): N APIs, API i at path
 * "svc%05d" with ops_per_api operations (method + URL template), one plan per
 * operation: backend URL, API id, operation id and, on every tenth API, one
 * set-header step (name, value).
 *
 * A prototype provides (study_store.c convention, linked with driver.c):
 *   store_build(path, n)          writes the representation of n APIs to path
 *   store_open(path)              maps it read-only; NULL on a damaged or
 *                                 foreign file (message on stderr)
 *   store_lookup(s, path, method) routes one request and reads its plan: a
 *                                 digest of what it read (0 for no route), so
 *                                 the driver can check both give the same
 *   store_close(s)
 */
#ifndef STUDY_H
#define STUDY_H

#include <stddef.h>
#include <stdint.h>

#define STUDY_OPS 5
#define STUDY_BACKEND "http://127.0.0.1:9/"

struct store;

int store_build(const char *path, uint32_t n);
struct store *store_open(const char *path);
uint64_t store_lookup(struct store *s, const char *path, const char *method);
void store_close(struct store *s);
extern const char *const store_name;

/* the operations of every API, as gen-doc makes them */
static const char *const study_op_method[STUDY_OPS] = { "GET", "GET", "POST", "PUT", "DELETE" };
static const char *const study_op_tmpl[STUDY_OPS] = { "/items", "/items/{id}", "/items",
						      "/items/{id}", "/items/{id}" };

/* Matches a template against the path below the API ("/items/7"): literal
 * segments case-insensitively, {x} any non-empty segment. Returns the number of
 * literal segments matched + 1, 0 when it does not match. */
int study_tmpl_match(const char *tmpl, size_t tlen, const char *rest);
/* Mixes one string into a digest. */
uint64_t study_mix(uint64_t h, const char *s, size_t len);

#endif
