/*
 * engine — the policies of one API call (engine.h).
 */
#include "policy/engine.h"
#include "policy/path.h"
#include "policy/polmod.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy/cidr.h"
#include "policy/expr.h"
#include "policy/products.h"
#include "common/sha256.h"

#define MSG_MISSING_KEY "Access denied due to missing subscription key. Make sure to include " \
	"subscription key when making requests to an API."
#define MSG_INVALID_KEY "Access denied due to invalid subscription key. Make sure to provide " \
	"a valid key for an active subscription."

/* what one policy did: polmod.h's steps, which modules return */
enum step { STEP_NEXT = POL_STEP_NEXT, STEP_RESPOND = POL_STEP_RESPOND, STEP_ERROR = POL_STEP_ERROR };

/* ---- header lists ------------------------------------------------------------ */

/* A block's payload: below glibc's 1,024-byte "large" requests, so that a
 * block is served from the tcache and its malloc never triggers
 * malloc_consolidate (a small request's headers fit in one or two). An entry
 * longer than this gets a block of its own size. */
#define HBLOCK_BYTES 960

struct pol_hblock {
	struct pol_hblock *next;
	size_t used, cap;
	char data[];
};

/* room for len bytes in h's newest block, or a new block */
static char *S_hblock_take(struct pol_headers *h, size_t len)
{
	struct pol_hblock *b = h->blocks;

	if (!b || b->cap - b->used < len) {
		size_t cap = len > HBLOCK_BYTES ? len : HBLOCK_BYTES;

		b = malloc(sizeof(*b) + cap);
		if (!b)
			return NULL;
		b->used = 0;
		b->cap = cap;
		/* a block made for one big entry goes behind the current one,
		 * whose free room stays usable */
		if (cap > HBLOCK_BYTES && h->blocks) {
			b->next = h->blocks->next;
			h->blocks->next = b;
		} else {
			b->next = h->blocks;
			h->blocks = b;
		}
	}
	b->used += len;
	return b->data + b->used - len;
}

int pol_headers_add(struct pol_headers *h, const char *name, const char *value)
{
	struct pol_header *e;
	size_t nl, vl;
	char *p;

	if (h->n == POL_MAX_HEADERS)
		return -1;
	if (h->n == h->cap) {
		size_t c = h->cap ? h->cap * 2 : 16;

		e = realloc(h->v, c * sizeof(*e));
		if (!e)
			return -1;
		h->v = e;
		h->cap = c;
	}
	nl = strlen(name) + 1;
	vl = strlen(value) + 1;
	p = S_hblock_take(h, nl + vl);
	if (!p)
		return -1;
	e = &h->v[h->n];
	e->name = memcpy(p, name, nl);
	e->value = memcpy(p + nl, value, vl);
	h->n++;
	return 0;
}

const char *pol_headers_get(const struct pol_headers *h, const char *name)
{
	for (size_t i = 0; i < h->n; i++)
		if (strcasecmp(h->v[i].name, name) == 0)
			return h->v[i].value;
	return NULL;
}

size_t pol_headers_del(struct pol_headers *h, const char *name)
{
	size_t j = 0, removed = 0;

	/* the removed entries' bytes stay in the blocks until release: a
	 * request adds a bounded number of headers (POL_MAX_HEADERS per list,
	 * each policy a bounded number of times) */
	for (size_t i = 0; i < h->n; i++) {
		if (strcasecmp(h->v[i].name, name) == 0) {
			removed++;
			continue;
		}
		h->v[j++] = h->v[i];
	}
	h->n = j;
	return removed;
}

void pol_headers_release(struct pol_headers *h)
{
	struct pol_hblock *b = h->blocks, *next;

	for (; b; b = next) {
		next = b->next;
		free(b);
	}
	free(h->v);
	h->v = NULL;
	h->n = 0;
	h->cap = 0;
	h->blocks = NULL;
}

int engine_sha256(const char *key, size_t len, unsigned char out[32])
{
	/* not OpenSSL's: its first digest costs a CGI process ~1 ms of
	 * library start-up (common/sha256.h) */
	sha256(key, len, out);
	return 0;
}

/* ---- small helpers --------------------------------------------------------- */

/* Percent-decodes s[0..n) into a new string ('+' is a space when plus);
 * *out_len (when not NULL) is its length: a value may hold a decoded NUL,
 * which a header must refuse rather than be cut short at. */
static char *decode_n(const char *s, size_t n, int plus, size_t *out_len)
{
	char *r = malloc(n + 1);
	size_t j = 0;

	if (!r)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n &&
		    path_hexval((unsigned char)s[i + 1]) >= 0 && path_hexval((unsigned char)s[i + 2]) >= 0) {
			r[j++] = (char)(path_hexval((unsigned char)s[i + 1]) << 4 |
					path_hexval((unsigned char)s[i + 2]));
			i += 2;
		} else if (plus && s[i] == '+') {
			r[j++] = ' ';
		} else {
			r[j++] = s[i];
		}
	}
	r[j] = '\0';
	if (out_len)
		*out_len = j;
	return r;
}

/* As decode_n, for names and keys compared as C strings: a decoded NUL
 * becomes 0xff, a byte no name or key holds, so "KEY%00junk" is never taken
 * for "KEY". */
static char *decode(const char *s, size_t n, int plus)
{
	size_t len;
	char *r = decode_n(s, n, plus, &len);

	for (size_t i = 0; r && i < len; i++)
		if (r[i] == '\0')
			r[i] = (char)0xff;
	return r;
}

/* Finds the first query parameter name (compared decoded) in q; sets the raw
 * value slice. Returns 1 when found. */
static int query_find(const char *q, const char *name, const char **val, size_t *len)
{
	const char *p = q;

	while (p && *p) {
		size_t seg = strcspn(p, "&");
		const char *eq = memchr(p, '=', seg);
		size_t nlen = eq ? (size_t)(eq - p) : seg;
		char *dn = decode(p, nlen, 1);
		int match = dn && strcmp(dn, name) == 0;

		free(dn);
		if (match) {
			*val = eq ? eq + 1 : p + seg;
			*len = eq ? seg - nlen - 1 : 0;
			return 1;
		}
		p += seg;
		if (*p == '&')
			p++;
	}
	return 0;
}

/* Removes every parameter called name from *q (in place). Returns how many. */
static size_t query_del(char *q, const char *name)
{
	char *w = q, *p = q;
	size_t removed = 0;

	while (*p) {
		size_t seg = strcspn(p, "&");
		char *eq = memchr(p, '=', seg);
		size_t nlen = eq ? (size_t)(eq - p) : seg;
		char *dn = decode(p, nlen, 1);
		int match = dn && strcmp(dn, name) == 0;

		free(dn);
		if (match) {
			removed++;
		} else {
			if (w != q)
				*w++ = '&';
			memmove(w, p, seg);
			w += seg;
		}
		p += seg;
		if (*p == '&')
			p++;
	}
	*w = '\0';
	return removed;
}

/* JSON string escaping into b. */
static enum tpl_status json_put(struct tpl_buf *b, const char *s)
{
	enum tpl_status st = TPL_OK;

	for (; *s && st == TPL_OK; s++) {
		unsigned char ch = (unsigned char)*s;
		char e[8];

		if (ch == '"' || ch == '\\') {
			e[0] = '\\';
			e[1] = (char)ch;
			st = tpl_buf_put(b, e, 2, TPL_ENC_RAW);
		} else if (ch < 0x20) {
			snprintf(e, sizeof(e), "\\u%04x", ch);
			st = tpl_buf_put(b, e, 6, TPL_ENC_RAW);
		} else {
			st = tpl_buf_put(b, (const char *)&ch, 1, TPL_ENC_RAW);
		}
	}
	return st;
}

/* ---- values for templates ------------------------------------------------------ */

/* Keeps v (owned from now) until scratch_reset: an expression holds every
 * value it read until it ends. Returns v, or NULL (v freed) without memory. */
static char *scratch_keep(struct pol_call *c, char *v)
{
	if (!v)
		return NULL;
	if (c->priv.n_scratch == c->priv.cap_scratch) {
		size_t n = c->priv.cap_scratch ? c->priv.cap_scratch * 2 : 8;
		char **x = realloc(c->priv.scratch, n * sizeof(*x));

		if (!x) {
			free(v);
			return NULL;
		}
		c->priv.scratch = x;
		c->priv.cap_scratch = n;
	}
	c->priv.scratch[c->priv.n_scratch++] = v;
	return v;
}

static void scratch_reset(struct pol_call *c)
{
	for (size_t i = 0; i < c->priv.n_scratch; i++)
		free(c->priv.scratch[i]);
	c->priv.n_scratch = 0;
}

/* ${var.NAME[.REST]}: a header of a send-request answer is stored under its
 * lower-case name (NAME.header.content-type), so the REST after ".header."
 * is looked up lower-cased. */
static const char *var_lookup(const struct pol_call *c, const char *name, size_t n, size_t *len)
{
	const char *dot = memchr(name, '.', n);
	char buf[TPL_NAME_MAX + 1];

	if (dot && (size_t)(name + n - dot) > 8 && memcmp(dot, ".header.", 8) == 0 &&
	    n <= TPL_NAME_MAX) {
		size_t h = (size_t)(dot - name) + 8;

		memcpy(buf, name, n);
		for (size_t i = h; i < n; i++)
			if (buf[i] >= 'A' && buf[i] <= 'Z')
				buf[i] = (char)(buf[i] - 'A' + 'a');
		return pol_var_get(c, buf, n, len);
	}
	return pol_var_get(c, name, n, len);
}

static void resolve(void *ctx, enum tpl_root root, const char *name, size_t name_len,
		    const char **val, size_t *len)
{
	struct pol_call *c = ctx;
	const struct route_match *m = c->route;
	const char *raw = NULL;
	size_t raw_len = 0;
	int plus = 0;

	*val = NULL;
	*len = 0;
	switch (root) {
	case TPL_LITERAL:
		return;
	case TPL_REQUEST_METHOD:
		*val = c->method;
		break;
	case TPL_REQUEST_PATH:
		*val = c->path;
		break;
	case TPL_REQUEST_IP:
		*val = c->client_ip;
		break;
	case TPL_REQUEST_HEADER:
		*val = pol_headers_get(&c->req_headers, name);
		break;
	case TPL_REQUEST_QUERY:
		if (!c->query || !query_find(c->query, name, &raw, &raw_len))
			return;
		plus = 1;
		break;
	case TPL_PATH_PARAM:
		for (size_t i = 0; m && i < m->n_params; i++) {
			if (strlen(m->params[i].name) == name_len &&
			    memcmp(m->params[i].name, name, name_len) == 0) {
				raw = m->params[i].raw;
				raw_len = m->params[i].raw_len;
			}
		}
		if (!raw)
			return;
		break;
	case TPL_SUBSCRIPTION_ID:
		*val = c->subscription ? c->subscription->id : NULL;
		break;
	case TPL_PRODUCT_ID:
		*val = c->product ? c->product->id : NULL;
		break;
	case TPL_API_ID:
		*val = m && m->api ? m->api->id : NULL;
		break;
	case TPL_OPERATION_ID:
		*val = m && m->op ? m->op->id : NULL;
		break;
	case TPL_JWT_CLAIM:
		*val = jwt_claim_text(&c->jwt, name, len);
		if (!*val)
			*len = 0;
		return;
	case TPL_REQUEST_ID:
		*val = c->request_id;
		break;
	case TPL_VAR:
		*val = var_lookup(c, name, name_len, len);
		return;
	case TPL_REQUEST_BODY:
		*val = c->req_body ? c->req_body : "";
		*len = c->req_body ? c->req_body_len : 0;
		return;
	case TPL_RESPONSE_STATUS:
		snprintf(c->priv.status_text, sizeof(c->priv.status_text), "%d", c->status);
		*val = c->priv.status_text;
		break;
	case TPL_RESPONSE_HEADER:
		*val = pol_headers_get(&c->resp_headers, name);
		break;
	case TPL_RESPONSE_BODY:
		*val = c->body ? c->body : "";
		*len = c->body ? c->body_len : 0;
		return;
	case TPL_EXPR:
	case TPL_N_ROOTS:
		return;
	}
	if (raw) {
		*val = scratch_keep(c, decode_n(raw, raw_len, plus, len));
		if (!*val)
			*len = 0;
		return;
	}
	if (*val)
		*len = strlen(*val);
}

/* Expands t into a new string (*out). Returns TPL_OK or the failure. */
static enum tpl_status expand(struct pol_call *c, const struct tpl *t, enum tpl_enc enc,
			      char **out)
{
	struct tpl_buf b = TPL_BUF_INIT(POL_MAX_VALUE_BYTES);
	enum tpl_status st = tpl_expand(t, resolve, c, enc, &b);

	scratch_reset(c);
	*out = NULL;
	if (st == TPL_EXPR_FAILED)
		c->priv.expr_why = b.why;
	if (st != TPL_OK) {
		tpl_buf_release(&b);
		return st;
	}
	*out = b.p;
	return TPL_OK;
}

/* ---- responses -------------------------------------------------------------- */

static void clear_response(struct pol_call *c)
{
	pol_headers_release(&c->resp_headers);
	free(c->reason);
	c->reason = NULL;
	free(c->body);
	c->body = NULL;
	c->body_len = 0;
}

/* Makes the gateway's JSON error answer. */
static void set_error(struct pol_call *c, int status, const char *message)
{
	struct tpl_buf b = TPL_BUF_INIT(POL_MAX_VALUE_BYTES);
	char num[32];

	clear_response(c);
	c->status = status;
	snprintf(num, sizeof(num), "%d", status);
	if (tpl_buf_put(&b, "{\"statusCode\": ", 15, TPL_ENC_RAW) != TPL_OK ||
	    tpl_buf_put(&b, num, strlen(num), TPL_ENC_RAW) != TPL_OK ||
	    tpl_buf_put(&b, ", \"message\": \"", 14, TPL_ENC_RAW) != TPL_OK ||
	    json_put(&b, message) != TPL_OK ||
	    tpl_buf_put(&b, "\", \"requestId\": \"", 17, TPL_ENC_RAW) != TPL_OK ||
	    json_put(&b, c->request_id ? c->request_id : "") != TPL_OK ||
	    tpl_buf_put(&b, "\"}", 2, TPL_ENC_RAW) != TPL_OK) {
		tpl_buf_release(&b);
		return;
	}
	c->body = b.p;
	c->body_len = b.len;
	pol_headers_add(&c->resp_headers, "Content-Type", "application/json");
}

static enum step fail(struct pol_call *c, int status, const char *message, const char *why)
{
	set_error(c, status, message);
	c->error = why;
	return STEP_ERROR;
}

static enum step fail_tpl(struct pol_call *c, enum tpl_status st)
{
	if (st == TPL_BAD_VALUE)
		return fail(c, 400, "A value put into a header holds a control character.",
			    "bad value for a header");
	if (st == TPL_TOO_LONG)
		return fail(c, 400, "A computed value is too long.", "computed value too long");
	if (st == TPL_EXPR_FAILED)
		return fail(c, 500, "Expression failed.", c->priv.expr_why ? c->priv.expr_why :
			    "expression failed");
	return fail(c, 500, "Internal server error.", "out of memory");
}

static enum step oom(struct pol_call *c)
{
	return fail(c, 500, "Internal server error.", "out of memory");
}

enum pol_step pol_fail(struct pol_call *c, int status, const char *message, const char *why)
{
	return (enum pol_step)fail(c, status, message, why);
}

enum pol_step pol_oom(struct pol_call *c)
{
	return (enum pol_step)oom(c);
}

enum pol_step pol_fail_tpl(struct pol_call *c, enum tpl_status st)
{
	return (enum pol_step)fail_tpl(c, st);
}

int pol_query_has(const char *q, const char *name)
{
	const char *raw;
	size_t len;

	return query_find(q, name, &raw, &len);
}

void pol_respond(struct pol_call *c, int status, struct pol_headers *h, char *body)
{
	clear_response(c);
	c->status = status;
	c->resp_headers = *h;
	memset(h, 0, sizeof(*h));
	c->body = body;
	c->body_len = body ? strlen(body) : 0;
}

void pol_hold_seat(struct pol_call *c, const struct counter_seat *seat)
{
	/* plan_build caps the seats of a plan: never more than the slots */
	if (c->priv.n_seats < POL_MAX_SEATS)
		c->priv.seats[c->priv.n_seats++] = *seat;
}

int pol_hold_bandwidth(struct pol_call *c, char *key, uint32_t period)
{
	if (c->priv.n_bw >= POL_MAX_BANDWIDTH)
		return -1;
	c->priv.bw_period[c->priv.n_bw] = period;
	c->priv.bw_keys[c->priv.n_bw++] = key;
	return 0;
}

struct pol_headers *pol_extra_headers(struct pol_call *c)
{
	return &c->priv.extra;
}

char *pol_query_value(const char *q, const char *name)
{
	const char *raw;
	size_t len;

	return query_find(q, name, &raw, &len) ? decode(raw, len, 1) : NULL;
}

char *pol_query_decode(const char *s, size_t n)
{
	return decode(s, n, 1);
}

size_t pol_query_del(char *q, const char *name)
{
	return query_del(q, name);
}

enum tpl_status pol_expand(struct pol_call *c, const struct tpl *t, enum tpl_enc enc, char **out)
{
	return expand(c, t, enc, out);
}

/* The budget of one evaluation: a value's, or a body's once bodies are read
 * (an expression over ${request.body} may make a string as large). */
static size_t eval_budget(const struct pol_call *c)
{
	return c->req_body_read || c->resp_body_buffered ? POL_MAX_RESP_BODY : POL_MAX_VALUE_BYTES;
}

/* Evaluates e into *v with arena a (released by the caller). Returns 0, or
 * -1 with the error answer set. */
static int eval_expr(struct pol_call *c, const struct expr *e, struct expr_arena *a,
		     struct expr_value *v)
{
	enum expr_status st = expr_eval(e, resolve, c, a, v);

	if (st == EXPR_OK)
		return 0;
	if (st == EXPR_NOMEM)
		oom(c);
	else
		fail(c, 500, "Expression failed.", expr_status_str(st));
	return -1;
}

int pol_cond(struct pol_call *c, const struct expr *e)
{
	struct expr_arena a = EXPR_ARENA_INIT(eval_budget(c));
	struct expr_value v;
	int r = eval_expr(c, e, &a, &v);

	if (r == 0)
		r = v.type == EXPR_BOOL && v.b;
	expr_arena_release(&a);
	scratch_reset(c);
	return r;
}

int pol_eval_int(struct pol_call *c, const struct pol_int_expr *x, int64_t *out)
{
	struct expr_arena a;
	struct expr_value v;
	int r;

	if (!x->e) {
		*out = x->v;
		return 0;
	}
	a = (struct expr_arena)EXPR_ARENA_INIT(eval_budget(c));
	r = eval_expr(c, x->e, &a, &v);
	if (r == 0)
		*out = v.i;
	expr_arena_release(&a);
	scratch_reset(c);
	return r;
}

enum tpl_status pol_expand_body(struct pol_call *c, const struct tpl *t, enum tpl_enc enc,
				char **out, size_t *len)
{
	struct tpl_buf b = TPL_BUF_INIT(POL_MAX_RESP_BODY);
	enum tpl_status st = tpl_expand(t, resolve, c, enc, &b);

	scratch_reset(c);
	*out = NULL;
	*len = 0;
	if (st == TPL_EXPR_FAILED)
		c->priv.expr_why = b.why;
	if (st != TPL_OK) {
		tpl_buf_release(&b);
		return st;
	}
	if (!b.p)
		b.p = strdup("");	/* an empty template: an empty body, not none */
	if (!b.p)
		return TPL_NOMEM;
	*out = b.p;
	*len = b.len;
	return TPL_OK;
}

/* Does the media type ct[0..n) end in suffix (case-insensitive)? */
static int type_is(const char *ct, size_t n, const char *what)
{
	size_t w = strlen(what);

	return n >= w && strncasecmp(ct + n - w, what, w) == 0;
}

enum tpl_enc pol_body_enc(const char *ct)
{
	size_t n;

	if (!ct)
		return TPL_ENC_RAW;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	n = strcspn(ct, ";");
	while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
		n--;
	if ((n == 16 && strncasecmp(ct, "application/json", 16) == 0) || type_is(ct, n, "+json"))
		return TPL_ENC_JSON;
	if ((n == 15 && strncasecmp(ct, "application/xml", 15) == 0) ||
	    (n == 8 && strncasecmp(ct, "text/xml", 8) == 0) || type_is(ct, n, "+xml"))
		return TPL_ENC_XML;
	return TPL_ENC_RAW;
}

void pol_replace_body(struct pol_call *c, char *body, size_t len)
{
	free(c->body);
	c->body = body;
	c->body_len = len;
	/* the backend's length and coding described its body, not this one */
	pol_headers_del(&c->resp_headers, "Content-Length");
	pol_headers_del(&c->resp_headers, "Content-Encoding");
	c->priv.body_replaced = 1;
}

enum pol_step pol_request_body(struct pol_call *c)
{
	int st;

	if (c->req_body_read)
		return POL_STEP_NEXT;
	if (!c->ops || !c->ops->read_body)
		return pol_fail(c, 500, "Internal server error.", "request body not available");
	st = c->ops->read_body(c->ops_ctx, &c->req_body, &c->req_body_len);
	if (st == 413)
		return pol_fail(c, 413, "Request body too large.", "request body too large");
	if (st == 408)
		return pol_fail(c, 408, "Request timeout.", "client body timeout");
	if (st != 0)
		return pol_fail(c, st >= 400 && st < 600 ? st : 400, "Bad request body.",
				"request body unreadable");
	c->req_body_read = 1;
	return POL_STEP_NEXT;
}

int engine_outbound_needs_body(const struct pol_call *c)
{
	return c->priv.plan && (c->priv.plan->needs[POL_OUTBOUND] & POL_NEED_RESP_BODY);
}

int pol_var_set(struct pol_call *c, const char *name, const char *value, size_t len)
{
	struct pol_var *v = NULL;
	char *copy;
	size_t old = 0;

	for (size_t i = 0; i < c->priv.n_vars; i++)
		if (strcmp(c->priv.vars[i].name, name) == 0)
			v = &c->priv.vars[i];
	if (v)
		old = v->len;
	if (!v && c->priv.n_vars == POL_MAX_VARS)
		return -1;
	if (c->priv.var_bytes - old + len > POL_MAX_VAR_BYTES)
		return -1;
	copy = malloc(len + 1);
	if (!copy)
		return -1;
	if (len)
		memcpy(copy, value, len);
	copy[len] = '\0';
	if (!v) {
		v = &c->priv.vars[c->priv.n_vars];
		v->name = strdup(name);
		if (!v->name) {
			free(copy);
			return -1;
		}
		c->priv.n_vars++;
	} else {
		free(v->value);
	}
	v->value = copy;
	v->len = len;
	c->priv.var_bytes = c->priv.var_bytes - old + len;
	return 0;
}

const char *pol_var_get(const struct pol_call *c, const char *name, size_t name_len,
			size_t *len)
{
	for (size_t i = 0; i < c->priv.n_vars; i++) {
		const struct pol_var *v = &c->priv.vars[i];

		if (strlen(v->name) == name_len && memcmp(v->name, name, name_len) == 0) {
			*len = v->len;
			return v->value;
		}
	}
	*len = 0;
	return NULL;
}

void pol_side_response_release(struct pol_side_response *rs)
{
	pol_headers_release(&rs->headers);
	free(rs->body);
	memset(rs, 0, sizeof(*rs));
}

/* Adds the pending headers (cors, limit counts) to the response. */
static void add_extra(struct pol_call *c)
{
	for (size_t i = 0; i < c->priv.extra.n; i++)
		pol_headers_add(&c->resp_headers, c->priv.extra.v[i].name,
				c->priv.extra.v[i].value);
}

/* ---- the policies --------------------------------------------------------- */

static enum step run_one(struct pol_call *c, const struct pol_policy *p, enum pol_section_id sec)
{
	switch (p->kind) {
	case POL_MODULE:
		if ((p->needs & POL_NEED_REQ_BODY) && pol_request_body(c) != POL_STEP_NEXT)
			return STEP_ERROR;
		return (enum step)p->mod->run(c, p, sec);
	case POL_BASE:
		return STEP_NEXT;
	}
	return STEP_NEXT;
}

static enum step run_section(struct pol_call *c, enum pol_section_id sec)
{
	const struct pol_section *s;

	if (!c->priv.plan)
		return STEP_NEXT;
	s = &c->priv.plan->s[sec];
	for (size_t i = 0; i < s->n; i++) {
		enum step r = run_one(c, s->v[i], sec);

		if (r != STEP_NEXT)
			return r;
	}
	return STEP_NEXT;
}

enum pol_step pol_run_list(struct pol_call *c, const struct pol_list *l, enum pol_section_id sec)
{
	for (size_t i = 0; i < l->n; i++) {
		enum step r = run_one(c, l->v[i], sec);

		if (r != STEP_NEXT)
			return (enum pol_step)r;
	}
	return POL_STEP_NEXT;
}

/* The error answer is set: runs on-error (once). */
static int run_on_error(struct pol_call *c)
{
	if (!c->priv.in_error) {
		c->priv.in_error = 1;
		/* a failure inside on-error keeps the answer it made */
		(void)run_section(c, POL_ON_ERROR);
	}
	add_extra(c);
	return POL_RESPOND;
}

int engine_on_error(struct pol_call *c, int status, const char *message)
{
	set_error(c, status, message);
	/* the access log's reason: without it a backend that timed out was
	 * logged as "refused by a policy" (respond_call's default) */
	if (!c->error)
		c->error = message;
	return run_on_error(c);
}

/* ---- subscription ------------------------------------------------------------ */

static enum step check_subscription(struct pol_call *c)
{
	const struct gw_api *api = c->route->api;
	const char *hv = api->subscription_key_header ?
		pol_headers_get(&c->req_headers, api->subscription_key_header) : NULL;
	char *key = NULL;
	const char *raw;
	size_t len;
	unsigned char d[32];
	const struct gw_subscription *sub = NULL;

	if (hv) {
		key = strdup(hv);
		if (!key)
			return oom(c);
	} else if (api->subscription_key_query && c->query &&
		   query_find(c->query, api->subscription_key_query, &raw, &len)) {
		key = decode(raw, len, 1);
		if (!key)
			return oom(c);
	}
	/* never forwarded, whatever the outcome */
	if (api->subscription_key_header)
		pol_headers_del(&c->req_headers, api->subscription_key_header);
	if (api->subscription_key_query && c->query)
		query_del(c->query, api->subscription_key_query);
	if (!key) {
		if (!api->subscription_required)
			return STEP_NEXT;
		return fail(c, 401, MSG_MISSING_KEY, "subscription key missing");
	}
	if (engine_sha256(key, strlen(key), d) == 0)
		sub = products_find_key(c->gw, d, &c->sub_own);
	explicit_bzero(key, strlen(key));
	free(key);
	explicit_bzero(d, sizeof(d));
	if (!sub || !sub->active || (sub->expires && c->now >= sub->expires) ||
	    !products_sub_covers(sub, api))
		return fail(c, 401, MSG_INVALID_KEY, "subscription key invalid");
	c->subscription = sub;
	c->product = sub->scope == GW_SCOPE_PRODUCT ? sub->product : NULL;
	return STEP_NEXT;
}

/* ---- backend choice ---------------------------------------------------------- */

static uint64_t mix(const char *s, int64_t now)
{
	uint64_t h = 1469598103934665603ull ^ (uint64_t)now;

	for (; s && *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	h ^= h >> 33;
	return h;
}

static int breaker_open(struct pol_call *c, const struct gw_backend *be, const char *url)
{
	return be->cb_failures && c->counters && counter_breaker_open(c->counters, url, c->now,
								       NULL);
}

static enum step choose_backend(struct pol_call *c)
{
	const struct gw_backend *be = c->backend;
	uint32_t best = UINT32_MAX, total = 0;
	uint64_t r;

	if (!be)
		return fail(c, 500, "Internal server error.", "no backend");
	if (c->backend_url) {
		if (breaker_open(c, be, c->backend_url))
			return fail(c, 503, "Service unavailable.", "circuit open");
		return STEP_NEXT;
	}
	if (!be->n_pool) {
		if (breaker_open(c, be, be->url))
			return fail(c, 503, "Service unavailable.", "circuit open");
		c->backend_url = be->url;
		return STEP_NEXT;
	}
	for (size_t i = 0; i < be->n_pool; i++)
		if (be->pool[i].priority < best && !breaker_open(c, be, be->pool[i].url))
			best = be->pool[i].priority;
	if (best == UINT32_MAX)
		return fail(c, 503, "Service unavailable.", "every pool member's circuit is open");
	for (size_t i = 0; i < be->n_pool; i++)
		if (be->pool[i].priority == best && !breaker_open(c, be, be->pool[i].url))
			total += be->pool[i].weight;
	r = mix(c->request_id, c->now) % total;
	for (size_t i = 0; i < be->n_pool; i++) {
		if (be->pool[i].priority != best || breaker_open(c, be, be->pool[i].url))
			continue;
		if (r < be->pool[i].weight) {
			c->backend_url = be->pool[i].url;
			break;
		}
		r -= be->pool[i].weight;
	}
	return STEP_NEXT;
}

/* ---- the call ------------------------------------------------------------------- */

void engine_call_init(struct pol_call *c, const struct gateway *gw,
		      const struct route_match *route, const char *client_ip,
		      const char *request_id, int64_t now, struct counter_store *counters)
{
	memset(c, 0, sizeof(*c));
	c->gw = gw;
	c->route = route;
	c->client_ip = client_ip;
	c->request_id = request_id;
	c->now = now;
	c->counters = counters;
	c->status = 200;
	c->backend = route && route->api ? route->api->backend : NULL;
	c->timeout_ms = c->backend ? c->backend->timeout_ms : 30000;
}

int engine_inbound(struct pol_call *c)
{
	enum step r;

	if (!c->method || !c->path || (!c->query && !(c->query = strdup("")))) {
		oom(c);
		return run_on_error(c);
	}
	c->priv.plan = pol_plan_for(c->route->api, c->route->op, NULL);
	r = check_subscription(c);
	if (r == STEP_NEXT) {
		c->priv.plan = pol_plan_for(c->route->api, c->route->op, c->product);
		/* a value read after forwarding (outbound, on-error) needs the body
		 * kept before the app streams it upstream */
		if (c->priv.plan && ((c->priv.plan->needs[POL_OUTBOUND] |
				      c->priv.plan->needs[POL_ON_ERROR]) & POL_NEED_REQ_BODY))
			r = (enum step)pol_request_body(c);
	}
	if (r == STEP_NEXT)
		r = run_section(c, POL_INBOUND);
	if (r == STEP_NEXT)
		r = run_section(c, POL_BACKEND);
	if (r == STEP_NEXT)
		r = choose_backend(c);
	if (r == STEP_ERROR)
		return run_on_error(c);
	if (r == STEP_RESPOND) {
		add_extra(c);
		return POL_RESPOND;
	}
	return POL_CONTINUE;
}

int engine_outbound(struct pol_call *c)
{
	enum step r = run_section(c, POL_OUTBOUND);

	if (r == STEP_ERROR)
		return run_on_error(c);
	add_extra(c);
	/* set-body replaced the backend's body: c->body is the answer's */
	return r == STEP_RESPOND || c->priv.body_replaced ? POL_RESPOND : POL_CONTINUE;
}

void engine_backend_done(struct pol_call *c)
{
	if (c->priv.breaker_done)
		return;
	c->priv.breaker_done = 1;
	if (c->counters && c->backend_failed && c->backend && c->backend->cb_failures &&
	    c->backend_url)
		counter_breaker_failure(c->counters, c->backend_url, c->backend->cb_failures,
					c->backend->cb_interval_s, c->backend->cb_trip_s, c->now);
}

void engine_finish(struct pol_call *c)
{
	if (c->priv.finished)
		return;
	c->priv.finished = 1;
	for (size_t i = 0; i < c->priv.n_seats; i++)
		counter_release(c->counters, &c->priv.seats[i], c->now);
	c->priv.n_seats = 0;
	engine_backend_done(c);
	for (size_t i = 0; i < c->priv.n_bw; i++) {
		uint64_t kib = (c->bytes_out + 1023) / 1024;

		if (kib > 0)
			counter_add(c->counters, c->priv.bw_keys[i],
				    kib > UINT32_MAX - 1 ? UINT32_MAX - 1 : (uint32_t)kib,
				    c->priv.bw_period[i], c->now);
	}
}

void engine_call_release(struct pol_call *c)
{
	free(c->method);
	free(c->path);
	free(c->query);
	pol_headers_release(&c->req_headers);
	jwt_result_release(&c->jwt);
	clear_response(c);
	for (size_t i = 0; i < c->priv.n_bw; i++)
		free(c->priv.bw_keys[i]);
	pol_headers_release(&c->priv.extra);
	scratch_reset(c);
	free(c->priv.scratch);
	free(c->req_body);
	for (size_t i = 0; i < c->priv.n_vars; i++) {
		free(c->priv.vars[i].name);
		free(c->priv.vars[i].value);
	}
	memset(c, 0, sizeof(*c));
}
