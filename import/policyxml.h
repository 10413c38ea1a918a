/*
 * policyxml — Azure API Management policy XML, as APIM and the APIOps
 * extractor write it, turned into format 1 "policies" JSON
 * (shared/spec/config-v1.md, "Policies"), and APIM's C# policy expressions
 * turned into hostgate expressions by the table of docs/expressions.md
 * ("APIM C# forms → hostgate expressions"). No file access: the caller hands
 * in the text and the file name used in messages, so the same code serves
 * hostgate-import (files) and the agent's live APIM source (REST answers).
 *
 * Calling sequence:
 *   struct px_origins orig = PX_ORIGINS_INIT;
 *   json_object *pol;
 *   if (px_convert(xml, len, "apis/echo/policy.xml", frags, n_frags,
 *                  &pol, &orig, &errs) != 0) { print errs (FILE:LINE: ...) }
 *   ... put pol into a document; after the document is loaded, an error at a
 *       JSON path inside pol is turned back into FILE:LINE by
 *       px_origins_find(&orig, element) ...
 *   px_origins_release(&orig);
 *
 * Why a pre-tokenizer: real policy files are often not well-formed XML, for
 * APIM reads `@(...)` and `@{...}` before XML does: `condition="@(x == "a")"`
 * holds raw quotes, `<` and `&&`. px_pretokenize() finds each expression
 * (matching brackets, skipping C# string and character literals) and writes
 * its bytes as XML character references, so libxml2 then parses the file
 * with every line number unchanged.
 *
 * Refusals (never a silent drop): an expression outside the table, a
 * multi-statement `@{...}`, a policy format 1 lacks, a child element the
 * policy's JSON form has no place for, a literal "${", "$(" or "$$" (they
 * would mean something else in format 1). Each is one message
 * "FILE:LINE: what, and why" appended to errs (cfg_error with FILE:LINE as
 * its path). Attributes are carried by their APIM names; an attribute format
 * 1 lacks is refused by the loader at the element's JSON path, which the
 * caller maps back with px_origins_find().
 *
 * Ownership: px_convert's *out is the caller's (json_object_put); orig holds
 * borrowed json_object pointers into it and owned "FILE:LINE" strings.
 */
#ifndef HOSTGATE_POLICYXML_H
#define HOSTGATE_POLICYXML_H

#include <json-c/json.h>
#include <stddef.h>

#include "policy/gateway.h"

#define PX_MAX_XML_BYTES (4u * 1024 * 1024)
#define PX_MAX_EXPR_BYTES 65536
#define PX_MAX_DEPTH 24

struct px_fragment {
	const char *id;		/* the fragment's name, as include-fragment's fragment-id */
	const char *file;	/* for messages */
	const char *xml;	/* <fragment>...</fragment> */
	size_t len;
};

struct px_origin {
	json_object *obj;	/* a policy element's attribute object (borrowed) */
	char *where;		/* "FILE:LINE", owned */
	int refused;		/* something in it was already refused */
};
struct px_origins {
	struct px_origin *v;
	size_t n, cap;
};
#define PX_ORIGINS_INIT { NULL, 0, 0 }

/* Start tags that span lines: libxml2 numbers an element by the line where
 * its start tag ends; messages name the line where it begins. */
struct px_linemap {
	size_t *end, *start;
	size_t n, cap;
};
#define PX_LINEMAP_INIT { NULL, NULL, 0, 0 }

/* Rewrites every @(...) / @{...} of in (len bytes) as XML character
 * references. 0 with a new NUL-terminated *out (the caller frees) and map
 * (may be NULL) filled, or -1 with *line (1-based) and *why set: an
 * expression that never ends, or too long. */
int px_pretokenize(const char *in, size_t len, char **out, size_t *out_len, size_t *line,
		   const char **why, struct px_linemap *map);
/* The line where the start tag ending on line end begins. */
size_t px_linemap_start(const struct px_linemap *map, size_t end);
void px_linemap_release(struct px_linemap *map);

/* Translates one C# expression (the text inside @( ... )), len bytes. 0 with a
 * new *out (a hostgate expression; the caller frees) and *is_value set when it
 * is one bare ${...} value, or -1 with why (size whylen) saying what is not
 * in the table. */
int px_expr(const char *cs, size_t len, char **out, int *is_value, char *why, size_t whylen);

/* Converts a <policies> document (len bytes, at most PX_MAX_XML_BYTES) into
 * {"inbound": [...], "backend": [...], "outbound": [...], "on-error": [...]}
 * (only the sections present). include-fragment is inlined from frags.
 * 0 with a new *out, or -1 with every problem appended to errs and *out what
 * did convert (NULL when the file is not XML): never to be used as the
 * result, only for checking the rest of it. notes (may be NULL) gets one
 * "FILE:LINE" message for each thing carried over that a person should know
 * of without it being a difference in behaviour (a reason phrase: the web
 * server writes its own). */
int px_convert(const char *xml, size_t len, const char *file, const struct px_fragment *frags,
	       size_t n_frags, json_object **out, struct px_origins *orig, struct cfg_errors *errs,
	       struct cfg_errors *notes);

/* The origin of the policy element whose attribute object is obj, or NULL. */
const struct px_origin *px_origins_find(const struct px_origins *orig, const json_object *obj);
/* Frees the recorded strings; orig can be reused. */
void px_origins_release(struct px_origins *orig);

#endif
