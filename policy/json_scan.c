#include "policy/json_scan.h"

#include <stdlib.h>
#include <string.h>

/* An open object or array. */
struct scan_frame {
	int is_obj;
	size_t index;		/* arrays: the current element */
	size_t key_off, key_len;	/* objects: the current member name, in the arena */
	size_t ent_start;	/* objects: this object's first entry */
	size_t arena_start;	/* arena length when the container opened */
};

/* One member name of an open object. */
struct scan_ent {
	size_t off, len;	/* decoded name in the arena */
	size_t ord;		/* position in its object */
};

struct scan {
	const unsigned char *s;
	size_t len, pos;
	const char *what;	/* the error, when a function returned -1 */
	char *arena;		/* decoded names of every open object */
	size_t arena_len, arena_cap;
	struct scan_ent *ents;
	size_t n_ents, ents_cap;
	struct scan_frame *frames;
	size_t depth;
	unsigned max_depth;
	struct json_scan_step *steps;	/* max_depth + 1, for on_dup */
	void (*on_dup)(void *ctx, const struct json_scan_step *path, size_t n);
	void *ctx;
};

/* A name of the object being closed, for sorting. */
struct scan_name {
	const char *p;
	size_t len, ord;
};

static int scan_fail(struct scan *sc, const char *what)
{
	sc->what = what;
	return -1;
}

static int arena_put(struct scan *sc, const char *p, size_t n)
{
	if (sc->arena_cap - sc->arena_len < n) {
		size_t cap = sc->arena_cap ? sc->arena_cap : 256;
		char *a;

		while (cap - sc->arena_len < n) {
			if (cap > ((size_t)-1) / 2)
				return scan_fail(sc, "out of memory");
			cap *= 2;
		}
		a = realloc(sc->arena, cap);
		if (!a)
			return scan_fail(sc, "out of memory");
		sc->arena = a;
		sc->arena_cap = cap;
	}
	memcpy(sc->arena + sc->arena_len, p, n);
	sc->arena_len += n;
	return 0;
}

static int arena_put_cp(struct scan *sc, unsigned long cp)
{
	char u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | (cp >> 18));
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	return arena_put(sc, u, n);
}

/* Length of the well-formed UTF-8 sequence at s[0..avail) (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF), or 0. */
static size_t utf8_len(const unsigned char *s, size_t avail)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t n;

	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (avail < n || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

static int hex4(const unsigned char *s, unsigned long *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++) {
		unsigned char c = s[i];
		unsigned d;

		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A' + 10);
		else
			return -1;
		*v = *v << 4 | d;
	}
	return 0;
}

/* Scans the string at sc->pos (its opening quote); a member name (is_name)
 * is decoded onto the arena. Leaves sc->pos after the closing quote, or at
 * the offending byte on error. */
static int scan_string(struct scan *sc, int is_name)
{
	const unsigned char *s = sc->s;
	size_t run;

	sc->pos++;
	run = sc->pos;
	for (;;) {
		unsigned char c;

		if (sc->pos >= sc->len)
			return scan_fail(sc, "unterminated string");
		c = s[sc->pos];
		if (c == '"' || c == '\\') {
			if (is_name && arena_put(sc, (const char *)s + run, sc->pos - run) != 0)
				return -1;
			if (c == '"') {
				sc->pos++;
				return 0;
			}
			if (sc->pos + 1 >= sc->len)
				return scan_fail(sc, "unterminated string");
			c = s[sc->pos + 1];
			if (c == 'u') {
				unsigned long cp, lo;

				if (sc->len - sc->pos < 6 || hex4(s + sc->pos + 2, &cp) != 0)
					return scan_fail(sc, "bad \\u escape");
				sc->pos += 6;
				if (cp >= 0xdc00 && cp <= 0xdfff)
					return scan_fail(sc, "\\u escape of an unpaired surrogate");
				if (cp >= 0xd800 && cp <= 0xdbff) {
					if (sc->len - sc->pos < 6 || s[sc->pos] != '\\' ||
					    s[sc->pos + 1] != 'u' || hex4(s + sc->pos + 2, &lo) != 0 ||
					    lo < 0xdc00 || lo > 0xdfff)
						return scan_fail(sc, "\\u escape of an unpaired surrogate");
					sc->pos += 6;
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				}
				if (is_name && cp == 0) {
					sc->pos -= 6;
					return scan_fail(sc, "member name contains \\u0000");
				}
				if (is_name && arena_put_cp(sc, cp) != 0)
					return -1;
			} else {
				static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
				const char *p = memchr(from, c, sizeof(from) - 1);

				if (!p)
					return scan_fail(sc, "bad escape in string");
				if (is_name && arena_put(sc, to + (p - from), 1) != 0)
					return -1;
				sc->pos += 2;
			}
			run = sc->pos;
		} else if (c < 0x20) {
			return scan_fail(sc, "control character in string (write it as an escape)");
		} else if (c < 0x80) {
			sc->pos++;
		} else {
			size_t n = utf8_len(s + sc->pos, sc->len - sc->pos);

			if (n == 0)
				return scan_fail(sc, "invalid UTF-8");
			sc->pos += n;
		}
	}
}

static int is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int scan_number(struct scan *sc)
{
	const unsigned char *s = sc->s;
	size_t p = sc->pos;

	if (p < sc->len && s[p] == '-')
		p++;
	if (p < sc->len && s[p] == '0') {
		p++;
	} else if (p < sc->len && is_digit(s[p])) {
		while (p < sc->len && is_digit(s[p]))
			p++;
	} else {
		sc->pos = p;
		return scan_fail(sc, "bad number");
	}
	if (p < sc->len && s[p] == '.') {
		p++;
		if (p >= sc->len || !is_digit(s[p])) {
			sc->pos = p;
			return scan_fail(sc, "bad number");
		}
		while (p < sc->len && is_digit(s[p]))
			p++;
	}
	if (p < sc->len && (s[p] == 'e' || s[p] == 'E')) {
		p++;
		if (p < sc->len && (s[p] == '+' || s[p] == '-'))
			p++;
		if (p >= sc->len || !is_digit(s[p])) {
			sc->pos = p;
			return scan_fail(sc, "bad number");
		}
		while (p < sc->len && is_digit(s[p]))
			p++;
	}
	sc->pos = p;
	return 0;
}

static int scan_literal(struct scan *sc)
{
	static const char *const lits[] = { "true", "false", "null" };

	for (size_t i = 0; i < sizeof(lits) / sizeof(lits[0]); i++) {
		size_t n = strlen(lits[i]);

		if (sc->len - sc->pos >= n && memcmp(sc->s + sc->pos, lits[i], n) == 0) {
			sc->pos += n;
			return 0;
		}
	}
	return scan_fail(sc, "unexpected character");
}

static int cmp_name(const void *a, const void *b)
{
	const struct scan_name *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->p, y->p, n);

	if (c != 0)
		return c;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return x->ord < y->ord ? -1 : x->ord > y->ord;
}

static int cmp_ord(const void *a, const void *b)
{
	const struct scan_name *x = a, *y = b;

	return x->ord < y->ord ? -1 : x->ord > y->ord;
}

/* Reports the names that the innermost object (being closed) holds twice. */
static int check_dups(struct scan *sc)
{
	struct scan_frame *f = &sc->frames[sc->depth - 1];
	size_t m = sc->n_ents - f->ent_start, nd = 0, i;
	struct scan_name *names, *dups;

	if (m < 2 || !sc->on_dup)
		return 0;
	names = calloc(m + m / 2, sizeof(*names));
	if (!names)
		return scan_fail(sc, "out of memory");
	dups = names + m;
	for (i = 0; i < m; i++) {
		const struct scan_ent *e = &sc->ents[f->ent_start + i];

		names[i].p = sc->arena + e->off;
		names[i].len = e->len;
		names[i].ord = e->ord;
	}
	qsort(names, m, sizeof(*names), cmp_name);
	/* Keep the second occurrence of each repeated name, then report those in
	 * document order. */
	for (i = 1; i < m; i++) {
		if (names[i].len != names[i - 1].len ||
		    memcmp(names[i].p, names[i - 1].p, names[i].len) != 0)
			continue;
		if (i >= 2 && names[i - 1].len == names[i - 2].len &&
		    memcmp(names[i - 1].p, names[i - 2].p, names[i].len) == 0)
			continue;
		dups[nd++] = names[i];
	}
	qsort(dups, nd, sizeof(*dups), cmp_ord);
	for (i = 0; i < nd; i++) {
		size_t d;

		for (d = 0; d + 1 < sc->depth; d++) {
			const struct scan_frame *g = &sc->frames[d];

			sc->steps[d].is_index = !g->is_obj;
			sc->steps[d].index = g->index;
			sc->steps[d].name = g->is_obj ? sc->arena + g->key_off : NULL;
			sc->steps[d].name_len = g->is_obj ? g->key_len : 0;
		}
		sc->steps[d].is_index = 0;
		sc->steps[d].index = 0;
		sc->steps[d].name = dups[i].p;
		sc->steps[d].name_len = dups[i].len;
		sc->on_dup(sc->ctx, sc->steps, d + 1);
	}
	free(names);
	return 0;
}

static int push_frame(struct scan *sc, int is_obj)
{
	struct scan_frame *f;

	if (sc->depth >= sc->max_depth)
		return scan_fail(sc, "nested too deeply");
	f = &sc->frames[sc->depth++];
	memset(f, 0, sizeof(*f));
	f->is_obj = is_obj;
	f->ent_start = sc->n_ents;
	f->arena_start = sc->arena_len;
	sc->pos++;
	return 0;
}

static int pop_frame(struct scan *sc)
{
	struct scan_frame *f = &sc->frames[sc->depth - 1];

	if (f->is_obj && check_dups(sc) != 0)
		return -1;
	sc->n_ents = f->ent_start;
	sc->arena_len = f->arena_start;
	sc->depth--;
	sc->pos++;
	return 0;
}

static int add_name(struct scan *sc)
{
	struct scan_frame *f = &sc->frames[sc->depth - 1];
	size_t start = sc->arena_len;
	struct scan_ent *e;

	if (scan_string(sc, 1) != 0)
		return -1;
	if (sc->n_ents == sc->ents_cap) {
		size_t cap = sc->ents_cap ? sc->ents_cap * 2 : 64;
		struct scan_ent *v;

		if (cap > ((size_t)-1) / sizeof(*v))
			return scan_fail(sc, "out of memory");
		v = realloc(sc->ents, cap * sizeof(*v));
		if (!v)
			return scan_fail(sc, "out of memory");
		sc->ents = v;
		sc->ents_cap = cap;
	}
	e = &sc->ents[sc->n_ents];
	e->off = start;
	e->len = sc->arena_len - start;
	e->ord = sc->n_ents - f->ent_start;
	sc->n_ents++;
	f->key_off = e->off;
	f->key_len = e->len;
	return 0;
}

enum scan_state {
	EXPECT_VALUE,
	EXPECT_VALUE_OR_CLOSE,	/* just after '[' */
	EXPECT_NAME,
	EXPECT_NAME_OR_CLOSE,	/* just after '{' */
	EXPECT_COLON,
	EXPECT_COMMA_OR_CLOSE,
	EXPECT_END,
};

static int scan_run(struct scan *sc)
{
	enum scan_state st = EXPECT_VALUE;

	for (;;) {
		unsigned char c;
		int value_done = 0;

		while (sc->pos < sc->len && (sc->s[sc->pos] == ' ' || sc->s[sc->pos] == '\t' ||
					     sc->s[sc->pos] == '\n' || sc->s[sc->pos] == '\r'))
			sc->pos++;
		if (sc->pos == sc->len) {
			if (st == EXPECT_END)
				return 0;
			return scan_fail(sc, "unexpected end of the document");
		}
		c = sc->s[sc->pos];
		if ((st == EXPECT_NAME_OR_CLOSE && c == '}') ||
		    (st == EXPECT_VALUE_OR_CLOSE && c == ']')) {
			if (pop_frame(sc) != 0)
				return -1;
			value_done = 1;
		} else if (st == EXPECT_END) {
			return scan_fail(sc, "unexpected data after the end of the document");
		} else if (st == EXPECT_NAME || st == EXPECT_NAME_OR_CLOSE) {
			if (c != '"')
				return scan_fail(sc, "expected a member name in double quotes");
			if (add_name(sc) != 0)
				return -1;
			st = EXPECT_COLON;
		} else if (st == EXPECT_COLON) {
			if (c != ':')
				return scan_fail(sc, "expected ':'");
			sc->pos++;
			st = EXPECT_VALUE;
		} else if (st == EXPECT_COMMA_OR_CLOSE) {
			struct scan_frame *f = &sc->frames[sc->depth - 1];

			if (c == ',') {
				sc->pos++;
				if (f->is_obj) {
					st = EXPECT_NAME;
				} else {
					f->index++;
					st = EXPECT_VALUE;
				}
			} else if ((f->is_obj && c == '}') || (!f->is_obj && c == ']')) {
				if (pop_frame(sc) != 0)
					return -1;
				value_done = 1;
			} else {
				return scan_fail(sc, f->is_obj ? "expected ',' or '}'" :
						 "expected ',' or ']'");
			}
		} else if (c == '{' || c == '[') {
			if (push_frame(sc, c == '{') != 0)
				return -1;
			st = c == '{' ? EXPECT_NAME_OR_CLOSE : EXPECT_VALUE_OR_CLOSE;
		} else {
			int rc;

			if (c == '"')
				rc = scan_string(sc, 0);
			else if (c == '-' || is_digit(c))
				rc = scan_number(sc);
			else
				rc = scan_literal(sc);
			if (rc != 0)
				return -1;
			value_done = 1;
		}
		if (value_done)
			st = sc->depth ? EXPECT_COMMA_OR_CLOSE : EXPECT_END;
	}
}

int json_scan(const char *buf, size_t len, unsigned max_depth,
	      void (*on_dup)(void *ctx, const struct json_scan_step *path, size_t n),
	      void *ctx, struct json_scan_error *err)
{
	struct scan sc;
	int rc = -1;

	memset(&sc, 0, sizeof(sc));
	sc.s = (const unsigned char *)buf;
	sc.len = len;
	sc.max_depth = max_depth;
	sc.on_dup = on_dup;
	sc.ctx = ctx;
	sc.frames = calloc((size_t)max_depth + 1, sizeof(*sc.frames));
	sc.steps = calloc((size_t)max_depth + 1, sizeof(*sc.steps));
	/* Allocated up front so that names point into memory even when all are "". */
	sc.arena_cap = 256;
	sc.arena = malloc(sc.arena_cap);
	if (!sc.frames || !sc.steps || !sc.arena) {
		sc.what = "out of memory";
		goto out;
	}
	rc = scan_run(&sc);
out:
	if (rc != 0) {
		size_t p = sc.pos < len ? sc.pos : len;

		err->offset = p;
		err->line = 1;
		err->column = 1;
		for (size_t i = 0; i < p; i++) {
			if (buf[i] == '\n') {
				err->line++;
				err->column = 1;
			} else {
				err->column++;
			}
		}
		err->what = sc.what ? sc.what : "invalid JSON";
	}
	free(sc.frames);
	free(sc.steps);
	free(sc.arena);
	free(sc.ents);
	return rc;
}
