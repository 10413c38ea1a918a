/*
 * template — the "${...}" per-request values of policy attributes
 * (config-v1.md, Substitutions): parsed once at load into literal and value
 * parts, expanded per request by the engine with a resolver it supplies.
 *
 *   struct tpl *t;
 *   char why[128];
 *   if (tpl_parse(s, strlen(s), 0, &t, why, sizeof(why)) != 0) report why;
 *   ... per request ...
 *   struct tpl_buf b = TPL_BUF_INIT(65536);
 *   switch (tpl_expand(t, resolve, ctx, TPL_ENC_HEADER, &b)) ...
 *   tpl_buf_release(&b);
 *   tpl_free(t);
 *
 * Syntax: "${ROOT}" or "${ROOT.NAME}"; "$(EXPR)" an expression (expr.h,
 * docs/expressions.md) whose value goes in as text (an integer as its
 * digits, a boolean as true/false); "$$" is a literal '$'; a '$' followed by
 * anything else is literal. Roots (this file's table is the one list, the
 * expression language uses it too): request.method, request.path,
 * request.ip, request.header.NAME, request.query.NAME, path.PARAM,
 * subscription.id, product.id, api.id, operation.id, jwt.claim.NAME,
 * context.request_id, var.NAME[.REST], request.body, response.status,
 * response.header.NAME, response.body. An unknown root, an empty NAME, an
 * unterminated "${" or "$(" or a bad expression is a parse error. With
 * TPL_PARSE_BRACES (rewrite-uri templates) "{PARAM}" is also path.PARAM (the
 * operation's URL-template parameter). t->reads has bit (1 << root) for
 * every root the template reads, expressions included (the loader derives
 * what a policy needs buffered from it).
 *
 * Expansion: literal parts are copied as written; values (already decoded by
 * the resolver) are copied according to the encoding: TPL_ENC_RAW as they are,
 * TPL_ENC_HEADER refusing every control byte but HTAB (0x00-0x08, 0x0a-0x1f,
 * 0x7f; TPL_BAD_VALUE: the request is a 400), in literal parts too,
 * TPL_ENC_URL percent-encoding every byte but A-Z a-z 0-9 - . _ ~ (so a value
 * never adds a path segment or a query parameter; whether it makes a dot
 * segment is the caller's check on the finished path, path_check),
 * TPL_ENC_JSON escaping as JSON string content (quote, backslash, control
 * bytes), TPL_ENC_XML escaping & < > " ' as entities. A missing value is "".
 * An expression is evaluated with an arena whose budget is the buffer's max;
 * its failure is TPL_EXPR_FAILED with b->why the reason (static).
 *
 * Ownership: a tpl owns its parts; the resolver's results are borrowed for the
 * call. Errors: tpl_parse 0/-1 with why; tpl_expand a status.
 */
#ifndef HOSTGATE_TEMPLATE_H
#define HOSTGATE_TEMPLATE_H

#include <stddef.h>

#define TPL_MAX_PARTS 256	/* per template; more is a parse error */
#define TPL_NAME_MAX 256	/* header, query, claim and parameter names */

enum tpl_root {
	TPL_LITERAL = 0,
	TPL_REQUEST_METHOD,
	TPL_REQUEST_PATH,
	TPL_REQUEST_IP,
	TPL_REQUEST_HEADER,	/* name */
	TPL_REQUEST_QUERY,	/* name */
	TPL_PATH_PARAM,		/* name */
	TPL_SUBSCRIPTION_ID,
	TPL_PRODUCT_ID,
	TPL_API_ID,
	TPL_OPERATION_ID,
	TPL_JWT_CLAIM,		/* name */
	TPL_REQUEST_ID,
	TPL_VAR,		/* name: "NAME" or "NAME.REST" (var.tok.status) */
	TPL_REQUEST_BODY,
	TPL_RESPONSE_STATUS,
	TPL_RESPONSE_HEADER,	/* name */
	TPL_RESPONSE_BODY,
	TPL_EXPR,		/* "$(EXPR)": the part's expr */
	TPL_N_ROOTS
};

#define TPL_READS(root) (1ul << (root))

struct expr;

struct tpl_part {
	enum tpl_root root;
	char *text;		/* literal text, or the NAME (NULL for roots without one) */
	size_t len;
	struct expr *e;		/* TPL_EXPR */
};

struct tpl {
	struct tpl_part *v;
	size_t n;
	int dynamic;		/* has at least one value part */
	unsigned long reads;	/* TPL_READS() of every root read */
};

#define TPL_PARSE_BRACES 1

enum tpl_enc { TPL_ENC_RAW, TPL_ENC_HEADER, TPL_ENC_URL, TPL_ENC_JSON, TPL_ENC_XML };

enum tpl_status {
	TPL_OK = 0,
	TPL_BAD_VALUE,		/* a control byte (not HTAB) in a value for a header */
	TPL_TOO_LONG,		/* the result would pass the buffer's max */
	TPL_NOMEM,
	TPL_EXPR_FAILED,	/* an expression did not evaluate: b->why */
};

/* A growing output buffer with a hard cap; p is NUL-terminated once used. */
struct tpl_buf {
	char *p;
	size_t len, cap, max;
	const char *why;	/* TPL_EXPR_FAILED: the expression's status, static */
};
#define TPL_BUF_INIT(max) { NULL, 0, 0, (max), NULL }

/* Resolves one value: sets *val and *len (borrowed; NULL means missing) for root
 * and name[0..name_len). */
typedef void tpl_resolve_fn(void *ctx, enum tpl_root root, const char *name, size_t name_len,
			    const char **val, size_t *len);

/* Classifies the inside of one "${...}" e[0..n): its root and NAME (borrowed
 * from e; NULL for roots without one). Returns 0, or -1 with why. The
 * expression language's "${...}" goes through it too. */
int tpl_parse_value(const char *e, size_t n, enum tpl_root *root, const char **name,
		    size_t *name_len, char *why, size_t why_cap);
/* Parses s[0..len). Returns 0 with a new *out, or -1 with why (a lower-case
 * reason naming the bad part). */
int tpl_parse(const char *s, size_t len, unsigned flags, struct tpl **out, char *why,
	      size_t why_cap);
/* Frees t; NULL is fine. */
void tpl_free(struct tpl *t);
/* Appends the expansion of t to b. Returns TPL_OK or why it failed (b then
 * holds a partial result; release it). */
enum tpl_status tpl_expand(const struct tpl *t, tpl_resolve_fn *resolve, void *ctx,
			   enum tpl_enc enc, struct tpl_buf *b);
/* Appends s[0..n) to b, encoded by enc. Returns as tpl_expand. */
enum tpl_status tpl_buf_put(struct tpl_buf *b, const char *s, size_t n, enum tpl_enc enc);
/* Returns 0 when s[0..n) may go into a header field value: no control byte
 * but HTAB (no 0x00-0x08, 0x0a-0x1f, 0x7f); -1 otherwise. */
int tpl_header_check(const char *s, size_t n);
/* Frees the memory of b, which can be reused. */
void tpl_buf_release(struct tpl_buf *b);
/* Returns the text of t when it has no value parts (a constant), else NULL. */
const char *tpl_constant(const struct tpl *t);

#endif
