/*
 * expr — the expression language of policy conditions and computed values
 * (config-v1.md, "Expressions, variables, and the policies that use them";
 * the grammar and every function are in docs/expressions.md). An expression
 * is compiled once at load into a typed tree, then evaluated per request with
 * a resolver for its "${...}" values, within a byte budget.
 *
 *   struct expr *e;
 *   size_t used;
 *   char why[160];
 *   if (expr_compile(s, strlen(s), 0, &e, &used, why, sizeof(why)) != 0)
 *           report "<json path>: <why>";
 *   if (expr_type(e) != EXPR_BOOL) report "a condition must be a boolean";
 *   ... per request ...
 *   struct expr_arena a = EXPR_ARENA_INIT(65536);
 *   struct expr_value v;
 *   switch (expr_eval(e, resolve, ctx, &a, &v)) ... use v while a lives
 *   expr_arena_release(&a);
 *   expr_free(e);
 *
 * Types: string, integer (int64), boolean; every operator and function is
 * checked at compile time, so evaluation never meets a type error. Bounds:
 * source at most EXPR_MAX_SOURCE bytes, nesting at most EXPR_MAX_DEPTH (the
 * evaluator recurses only as deep as the tree), every regular expression at
 * most REGEX_MAX_PROG instructions; no loops. At evaluation every string an
 * operator or function makes is charged to the arena's budget (max bytes in
 * all); passing it is EXPR_TOO_LONG, never more memory. matches() is linear
 * (regex.h) and its steps are charged to the arena's max_work (EXPR_TOO_SLOW);
 * json() parses at most the remaining budget.
 *
 * "${...}" values: template.h's roots, its one table (request.method,
 * request.header.NAME, var.NAME[.REST], request.body, response.status,
 * response.header.NAME, response.body...), handed to the same resolver a
 * template uses (tpl_resolve_fn); expr_reads() says which roots an
 * expression reads.
 *
 * Ownership: an expr is immutable once compiled and may be shared; the
 * resolver's results are borrowed for the call; a value's string is borrowed
 * from the resolver or lives in the arena until expr_arena_release.
 * Errors: expr_compile 0/-1 with why ("column N: ..."; the caller adds the
 * JSON path); expr_eval a status.
 */
#ifndef HOSTGATE_EXPR_H
#define HOSTGATE_EXPR_H

#include <stddef.h>
#include <stdint.h>

#include "policy/template.h"

#define EXPR_MAX_SOURCE 4096	/* bytes of one expression */
#define EXPR_MAX_DEPTH 32	/* nesting of parentheses, calls and '!' */
#define EXPR_VAR_MAX 80		/* a variable name's length */

enum expr_type { EXPR_STRING, EXPR_INT, EXPR_BOOL };

/* Resolves one "${...}" value (template.h): sets *val and *len (borrowed
 * until the evaluation ends; NULL means missing, which is ""). */
typedef tpl_resolve_fn expr_resolve_fn;

struct expr_value {
	enum expr_type type;
	int64_t i;		/* EXPR_INT */
	int b;			/* EXPR_BOOL: 0 or 1 */
	const char *s;		/* EXPR_STRING: not NUL-terminated; may be NULL when len is 0 */
	size_t len;
};

/* The memory of one evaluation; max is the byte budget for every string it
 * makes, max_work the regex steps all its matches() may take (linear in the
 * subject, but a 10 MiB body times a 2048-instruction program is still
 * seconds). Initialise with EXPR_ARENA_INIT. */
struct expr_arena {
	void *chunks;
	size_t used, max;
	unsigned long work, max_work;
};
#define EXPR_MAX_WORK 100000000UL	/* regex steps: a few tenths of a second */
#define EXPR_ARENA_INIT(max) { NULL, 0, (max), 0, EXPR_MAX_WORK }

enum expr_status {
	EXPR_OK = 0,
	EXPR_TOO_LONG,		/* the budget would be passed */
	EXPR_OVERFLOW,		/* integer addition overflowed */
	EXPR_TOO_SLOW,		/* matches() passed the arena's max_work */
	EXPR_NOMEM,
};

struct expr;

/* With EXPR_STOP_PAREN the compile stops, without error, at a ')' that
 * closes nothing (the end of "$(EXPR)" in a value); *used says where. */
#define EXPR_STOP_PAREN 1

/* Compiles src[0..len). Returns 0 with a new *out and *used (may be NULL) the
 * bytes consumed (len, or the offset of the stopping ')'), or -1 with why. */
int expr_compile(const char *src, size_t len, unsigned flags, struct expr **out, size_t *used,
		 char *why, size_t why_cap);
/* Returns TPL_READS() of every root e reads. */
unsigned long expr_reads(const struct expr *e);
/* Returns the type of e's value. */
enum expr_type expr_type(const struct expr *e);
/* Evaluates e into *out. Returns EXPR_OK or why not (*out is then unset). */
enum expr_status expr_eval(const struct expr *e, expr_resolve_fn *resolve, void *ctx,
			   struct expr_arena *a, struct expr_value *out);
/* Frees the arena's memory; it can be reused. */
void expr_arena_release(struct expr_arena *a);
/* Frees e; NULL is fine. */
void expr_free(struct expr *e);
/* Returns a constant lower-case name for a status ("string too long"). */
const char *expr_status_str(enum expr_status st);

#endif
