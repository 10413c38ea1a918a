/*
 * polmod — what a policy module is: one file per policy (policy/pol_*.c)
 * that declares itself as data, the way an nginx module's ngx_command_t table
 * or an APISIX plugin's schema does, and the few engine services its run
 * function may call. The generic code (policies.c, engine.c) never names a
 * module; it reads the descriptor.
 *
 * A module:
 *   struct conf { int64_t code; char *reason; };       private to its file
 *   static const struct pol_attr attrs[] = {
 *       { "code", POL_A_INT, POL_A_REQUIRED, 100, 599, 200, NULL, NULL,
 *         offsetof(struct conf, code) },
 *       { "reason", POL_A_STR, 0, 0, 0, 0, NULL, NULL, offsetof(struct conf, reason) },
 *       POL_ATTRS_END };
 *   const struct pol_module pol_mod_set_status = {
 *       .name = "set-status", .sections = POL_SEC_OUT | POL_SEC_ERR,
 *       .attrs = attrs, .conf_size = sizeof(struct conf),
 *       .compile = compile, .run = run };
 * plus one line POL_MOD(set_status) in policy/pol_list.h, and its row in
 * docs/policies.md (test_policies checks the tables against it).
 *
 * Calling sequence:
 *   loader (policies.c): conf = calloc(1, conf_size); every attribute of the
 *     table is validated and stored at its offset — unknown member, wrong
 *     type, missing required, out of bounds, "${...}" where not allowed are
 *     reported the same for every policy, at the JSON path of the member;
 *     an absent optional attribute gets its default. Then compile(ld, o,
 *     conf), if any, for what a table cannot say (one attribute or another,
 *     a value that must name a backend, derived fields); it reports with
 *     ld_err()/ld_err_value() at the path of the policy's attribute object
 *     (loader.h) and goes on.
 *   engine (engine.c): run(c, policy, section) per request, in plan order;
 *     policy->conf is the conf, policy->counter_prefix the key prefix of its
 *     counters when the module has a counter_tag.
 *   gw_free: release(conf), if any, frees what compile added; the generic
 *     code then frees what the table stored (strings, templates, lists) and
 *     conf itself. Secrets (POL_A_SECRET) are zeroed first.
 *
 * Ownership: conf belongs to the policy, which belongs to its scope, which
 * belongs to the gateway; everything is immutable once loaded, so run gets
 * it const. Errors: run returns a pol_step; POL_STEP_ERROR only through
 * pol_fail()/pol_oom(), which set the error answer.
 */
#ifndef HOSTGATE_POLMOD_H
#define HOSTGATE_POLMOD_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/policies.h"
#include "policy/template.h"

struct loader;
struct pol_call;
struct pol_headers;

/* sections a policy may appear in (bits of pol_module.sections) */
#define POL_SEC_IN (1u << POL_INBOUND)
#define POL_SEC_BK (1u << POL_BACKEND)
#define POL_SEC_OUT (1u << POL_OUTBOUND)
#define POL_SEC_ERR (1u << POL_ON_ERROR)
#define POL_SEC_ALL (POL_SEC_IN | POL_SEC_BK | POL_SEC_OUT | POL_SEC_ERR)

/* Attribute types, with what the generic code stores at the offset. Only the
 * template types accept "${...}" (request values); every string type
 * substitutes {{named values}}. */
enum pol_attr_type {
	POL_A_INT,		/* int64_t in [min, max]; a JSON integer or a string of digits */
	POL_A_BOOL,		/* int 0/1; true/false or "true"/"false" */
	POL_A_STR,		/* char *, NULL when absent without a default */
	POL_A_HEADER_NAME,	/* char *, an HTTP token, no secret named values */
	POL_A_ENUM,		/* int: the index of the value in names */
	POL_A_TPL,		/* struct tpl *: "${...}" allowed */
	POL_A_STR_LIST,		/* struct pol_strings: a string or an array of them */
	POL_A_TPL_LIST,		/* struct pol_tpls: the same, as templates */
	POL_A_COND,		/* struct expr *: a boolean expression (a condition) */
	POL_A_INT_EXPR,		/* struct pol_int_expr: an integer in [min, max] (as
				 * POL_A_INT), or "$(EXPR)" an integer expression whose
				 * value the module range-checks per request */
	POL_A_RAW,		/* nothing stored: compile reads the member itself */
};

struct expr;

/* POL_A_INT_EXPR: e NULL means the constant v */
struct pol_int_expr {
	int64_t v;
	struct expr *e;
};

/* pol_attr.flags */
#define POL_A_REQUIRED 1u	/* absent: "missing required member 'NAME'" */
#define POL_A_SECRET 2u		/* zeroed when freed (POL_A_STR) */
#define POL_A_BRACES 4u		/* POL_A_TPL: also "{param}" (rewrite-uri) */

struct pol_attr {
	const char *name;
	enum pol_attr_type type;
	unsigned flags;
	int64_t min, max;	/* POL_A_INT bounds */
	int64_t def;		/* default of POL_A_INT, POL_A_BOOL, POL_A_ENUM */
	const char *def_str;	/* default of POL_A_STR, POL_A_HEADER_NAME; NULL: none */
	const char *const *names;	/* POL_A_ENUM: the values, NULL-terminated */
	size_t off;		/* offsetof the field in the module's conf */
};

#define POL_ATTRS_END { NULL, POL_A_RAW, 0, 0, 0, 0, NULL, NULL, 0 }
#define POL_MAX_ATTRS 32	/* attributes of one policy */

/* what one policy did */
enum pol_step { POL_STEP_NEXT, POL_STEP_RESPOND, POL_STEP_ERROR };

struct pol_module {
	const char *name;	/* as written in a document: "set-status" */
	unsigned sections;	/* POL_SEC_* */
	const struct pol_attr *attrs;	/* ends with POL_ATTRS_END */
	size_t conf_size;
	/* Checks and derives what the table cannot (may be NULL). */
	void (*compile)(struct loader *ld, json_object *o, void *conf);
	/* One request's step: p->conf is the module's conf, p->counter_prefix
	 * its counters' key prefix (counter_tag). */
	enum pol_step (*run)(struct pol_call *c, const struct pol_policy *p, enum pol_section_id sec);
	/* Frees what compile allocated (may be NULL). */
	void (*release)(void *conf);
	/* Counters: the tag of this policy's key prefix ("rl" makes
	 * "rl:api:ID:inbound#2"), NULL: it counts nothing. */
	const char *counter_tag;
	/* What one request holds until it ends (may be NULL): adds to *seats
	 * (limit-concurrency) and *bandwidth (bandwidth quotas), which a plan
	 * caps at POL_MAX_SEATS and POL_MAX_BANDWIDTH. */
	void (*claims)(const void *conf, size_t *seats, size_t *bandwidth);
	/* The backend this policy names, other than its API's (may be NULL):
	 * the image (image.h) copies it into the block of every API whose
	 * pipeline holds the policy. */
	const struct gw_backend *(*backend)(const void *conf);
	/* What this policy needs the app to buffer in section sec (POL_NEED_*,
	 * policies.h), beyond what its templates and expressions read (may be
	 * NULL): find-and-replace, cache-store. */
	unsigned (*needs)(const void *conf, enum pol_section_id sec);
	/* The policy lists nested in this policy (choose: each when's, then
	 * otherwise), *n of them (may be NULL: none). The generic code walks
	 * them for everything a top-level policy gets: counter prefixes, seat
	 * and bandwidth caps, needs, the image's backends, freeing. */
	const struct pol_list *(*lists)(const void *conf, size_t *n);
};

/* Every module, from policy/pol_list.h. */
#define POL_MOD(id) extern const struct pol_module pol_mod_##id;
#include "policy/pol_list.h"
#undef POL_MOD

/* The modules, NULL-terminated, in pol_list.h order. */
const struct pol_module *const *pol_modules(void);
/* Where a module policy's attribute name is stored (its type per the table),
 * or NULL (not a module, or no such attribute). For tests and tools. */
const void *pol_attr_value(const struct pol_policy *p, const char *name);

/* ---- engine services for run (engine.c) ---------------------------------- */

/* Sets the gateway's JSON error answer status/message; why goes to the log.
 * Returns POL_STEP_ERROR. */
enum pol_step pol_fail(struct pol_call *c, int status, const char *message, const char *why);
/* pol_fail() with 500 "Internal server error." for an allocation failure. */
enum pol_step pol_oom(struct pol_call *c);
/* pol_fail() with the answer for a template that did not expand (st). */
enum pol_step pol_fail_tpl(struct pol_call *c, enum tpl_status st);
/* Expands t with c's request values, encoded as enc: TPL_OK with a new *out,
 * or the failure (then *out is NULL). */
enum tpl_status pol_expand(struct pol_call *c, const struct tpl *t, enum tpl_enc enc, char **out);

/* Evaluates the condition e (POL_A_COND). Returns 1 (true), 0 (false), or -1
 * with the error answer set (500 "Expression failed.", the reason logged). */
int pol_cond(struct pol_call *c, const struct expr *e);
/* The value of x (POL_A_INT_EXPR): 0 with *out, or -1 with the error answer
 * set. The caller checks the range. */
int pol_eval_int(struct pol_call *c, const struct pol_int_expr *x, int64_t *out);
/* Runs the nested list l in section sec as a section runs: in order, stopping
 * at a policy that answers or fails (its step is returned). */
enum pol_step pol_run_list(struct pol_call *c, const struct pol_list *l,
			   enum pol_section_id sec);
/* Expands a body template t (encoding enc: TPL_ENC_RAW, _JSON, _XML) within
 * POL_MAX_RESP_BODY bytes: TPL_OK with a new *out and *len, or the failure. */
enum tpl_status pol_expand_body(struct pol_call *c, const struct tpl *t, enum tpl_enc enc,
				char **out, size_t *len);
/* The body encoding for a message whose Content-Type is ct (NULL: none):
 * TPL_ENC_JSON for application/json and +json, TPL_ENC_XML for
 * application/xml, text/xml and +xml, else TPL_ENC_RAW. */
enum tpl_enc pol_body_enc(const char *ct);
/* Marks c's response body as replaced by an outbound policy (set-body): the
 * app then sends c->body, not the backend's. */
void pol_replace_body(struct pol_call *c, char *body, size_t len);

/* Reads the client's body into c->req_body once (the app's read_body).
 * Returns POL_STEP_NEXT, or POL_STEP_ERROR with the answer set (413, 408,
 * 400, 500). The engine calls it before a policy whose needs hold
 * POL_NEED_REQ_BODY runs. */
enum pol_step pol_request_body(struct pol_call *c);

/* Is there a parameter decoded name in the raw query q? */
int pol_query_has(const char *q, const char *name);
/* Removes every parameter decoded name from the raw query q, in place.
 * Returns how many went. */
size_t pol_query_del(char *q, const char *name);
/* Replaces c's answer with status, the headers h (moved into c, *h left
 * empty) and body (owned by c from now; NULL: empty). */
void pol_respond(struct pol_call *c, int status, struct pol_headers *h, char *body);
struct counter_seat;
/* Keeps seat until the call ends (engine_finish releases it). */
void pol_hold_seat(struct pol_call *c, const struct counter_seat *seat);
/* Keeps key (owned from now on) to charge the answer's size to, over period
 * seconds, when the call ends. Returns 0, or -1 when the call holds its
 * plan's cap already (then key stays the caller's). */
int pol_hold_bandwidth(struct pol_call *c, char *key, uint32_t period);
/* The headers added to whatever answer goes out for c (cors, limit counts). */
struct pol_headers *pol_extra_headers(struct pol_call *c);
/* The decoded value of the first parameter decoded name of the raw query q,
 * in a new string; NULL when absent (or out of memory). */
char *pol_query_value(const char *q, const char *name);
/* The %-decoded (and '+' as space) copy of s[0..n), a NUL inside turned to
 * 0xff so it compares with no name; NULL when out of memory. */
char *pol_query_decode(const char *s, size_t n);

/* ---- loader services for compile (policies.c) ---------------------------- */

/* Is s a query parameter name we can put in a URL unencoded-ambiguity free
 * (1..256 bytes, no control, space, & = # + % ?)? */
int pol_is_query_name(const char *s);
/* The generic table code, for a module's own nested objects (validate-jwt's
 * required-claims): validates o against attrs into conf (reported at the
 * current path), and frees what it stored. */
void pol_attrs_parse(struct loader *ld, json_object *o, const struct pol_attr *attrs, void *conf);
void pol_attrs_release(const struct pol_attr *attrs, void *conf);
/* Is s an HTTP token (a header name, a method), 1..256 bytes? */
int pol_is_token(const char *s);
/* The string value v (current path at it) as a template: {{named values}}
 * substituted, "${...}" allowed, at most 1 MiB; tflags as tpl_parse's.
 * Returns 0 with a new *out, or -1 (reported). */
int pol_value_tpl(struct loader *ld, json_object *v, unsigned tflags, struct tpl **out);
#define POL_MAX_DEPTH 8	/* nesting of choose */
/* The policies of the JSON array v (current path at it) for the section
 * being parsed, each element validated as a section's ("base" refused),
 * into *out (owned by the caller's conf; freed by the generic code through
 * the module's lists hook). Returns 0 or -1 (reported). */
int pol_parse_list(struct loader *ld, json_object *v, struct pol_list *out);
/* Records that the value being parsed reads the roots reads (TPL_READS()):
 * what the policy needs buffered follows from it. '${response.body}' outside
 * outbound and on-error is reported here. Returns 0 or -1 (reported). */
int pol_note_reads(struct loader *ld, unsigned long reads);
/* A decimal integer of at most 18 digits, '-' allowed: 0 or -1. */
int pol_parse_decimal(const char *s, int64_t *out);

#endif
