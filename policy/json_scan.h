/*
 * json_scan — a strict RFC 8259 check of a JSON text that also finds member
 * names given twice in one object. It exists because json-c 0.16, even with
 * JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8, accepts single-quoted
 * strings, NaN, Infinity, "1.", raw control characters in strings, overlong
 * UTF-8 and UTF-8-encoded surrogates, and silently keeps the last of two equal
 * member names. The loader runs this first and json-c only on what passes.
 *
 *   struct json_scan_error e;
 *   if (json_scan(buf, len, GW_MAX_JSON_DEPTH, on_dup, ctx, &e) != 0)
 *           report "line e.line, column e.column: e.what"
 *
 * Names are compared after decoding escapes ("a" equals "\u0061"), exactly as
 * json-c will store them. A name holding \u0000 and a \u escape of an unpaired
 * surrogate are refused (json-c would truncate or replace them, which could
 * make two names equal behind our back); unpaired surrogates in values too.
 *
 * Ownership: nothing is kept; buf is only read. The path handed to on_dup (and
 * the names it points to) lives only during the call.
 */
#ifndef HOSTGATE_JSON_SCAN_H
#define HOSTGATE_JSON_SCAN_H

#include <stddef.h>

/* One step of a path from the top-level value: a member name (decoded, not
 * NUL-terminated) or an array index. */
struct json_scan_step {
	int is_index;
	size_t index;
	const char *name;
	size_t name_len;
};

struct json_scan_error {
	size_t offset;		/* byte offset of the problem */
	size_t line, column;	/* 1-based; column counts bytes */
	const char *what;	/* static text, lower case: "unexpected character" */
};

/* Checks buf[0..len): exactly one JSON value, then only whitespace; at most
 * max_depth nested objects/arrays. Calls on_dup(ctx, path, n) once per name
 * that occurs more than once in an object (path[n-1] is that name, path[0..n-1)
 * leads to the object), in document order of the objects' ends. Returns 0 when
 * the text is valid JSON (duplicates or not), -1 with err filled otherwise (also
 * when out of memory: what is "out of memory"). */
int json_scan(const char *buf, size_t len, unsigned max_depth,
	      void (*on_dup)(void *ctx, const struct json_scan_step *path, size_t n),
	      void *ctx, struct json_scan_error *err);

#endif
