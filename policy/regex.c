/*
 * regex — see regex.h. The pattern is parsed into a small tree, then the tree
 * is compiled into NFA instructions (bounded repeats copied out), then the
 * search runs every thread in lock step over the subject.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/regex.h"

#define MAX_NODES 4096

enum node_kind { N_EMPTY, N_SET, N_CAT, N_ALT, N_REP, N_BOL, N_EOL };

struct node {
	enum node_kind kind;
	int a, b;		/* children */
	int min, max;		/* N_REP; max -1 is unbounded */
	uint8_t set[32];	/* N_SET */
};

enum op { OP_SET, OP_SPLIT, OP_JMP, OP_BOL, OP_EOL, OP_MATCH };

struct inst {
	enum op op;
	int x, y;
	uint8_t set[32];
};

struct regex {
	struct inst *prog;
	size_t n;
};

struct parser {
	const char *p;
	size_t n, i;
	struct node *nodes;
	int nn;
	int depth;
	char *why;
	size_t why_cap;
};

static int fail(struct parser *ps, const char *msg)
{
	snprintf(ps->why, ps->why_cap, "column %zu: %s", ps->i + 1, msg);
	return -1;
}

static int new_node(struct parser *ps, enum node_kind k)
{
	if (ps->nn >= MAX_NODES)
		return fail(ps, "pattern too complex");
	memset(&ps->nodes[ps->nn], 0, sizeof(ps->nodes[0]));
	ps->nodes[ps->nn].kind = k;
	return ps->nn++;
}

static void set_add(uint8_t *set, unsigned c)
{
	set[c >> 3] |= (uint8_t)(1u << (c & 7));
}

static int set_has(const uint8_t *set, unsigned c)
{
	return (set[c >> 3] >> (c & 7)) & 1;
}

static int parse_alt(struct parser *ps);

struct cclass {
	const char *name;
	int (*has)(int c);
};

static int c_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int c_digit(int c) { return c >= '0' && c <= '9'; }
static int c_alnum(int c) { return c_alpha(c) || c_digit(c); }
static int c_space(int c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
static int c_upper(int c) { return c >= 'A' && c <= 'Z'; }
static int c_lower(int c) { return c >= 'a' && c <= 'z'; }
static int c_xdigit(int c) { return c_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
static int c_punct(int c) { return c > 0x20 && c < 0x7f && !c_alnum(c); }

static const struct cclass classes[] = {
	{ "alpha", c_alpha }, { "digit", c_digit }, { "alnum", c_alnum }, { "space", c_space },
	{ "upper", c_upper }, { "lower", c_lower }, { "xdigit", c_xdigit }, { "punct", c_punct },
};

/* after '[' */
static int parse_bracket(struct parser *ps, uint8_t *set)
{
	int neg = 0, first = 1;

	if (ps->i < ps->n && ps->p[ps->i] == '^') {
		neg = 1;
		ps->i++;
	}
	for (;;) {
		unsigned lo, hi;

		if (ps->i >= ps->n)
			return fail(ps, "unterminated '['");
		lo = (unsigned char)ps->p[ps->i];
		if (lo == ']' && !first) {
			ps->i++;
			break;
		}
		first = 0;
		if (lo == '[' && ps->i + 1 < ps->n &&
		    (ps->p[ps->i + 1] == '.' || ps->p[ps->i + 1] == '=')) {
			return fail(ps, "collating elements and equivalence classes are not supported");
		}
		if (lo == '[' && ps->i + 1 < ps->n && ps->p[ps->i + 1] == ':') {
			size_t j = ps->i + 2, k;
			size_t c;

			while (j + 1 < ps->n && !(ps->p[j] == ':' && ps->p[j + 1] == ']'))
				j++;
			if (j + 1 >= ps->n)
				return fail(ps, "unterminated '[:'");
			for (k = 0; k < sizeof(classes) / sizeof(classes[0]); k++) {
				if (strlen(classes[k].name) == j - ps->i - 2 &&
				    memcmp(classes[k].name, ps->p + ps->i + 2, j - ps->i - 2) == 0)
					break;
			}
			if (k == sizeof(classes) / sizeof(classes[0]))
				return fail(ps, "unknown character class");
			for (c = 0; c < 256; c++) {
				if (classes[k].has((int)c))
					set_add(set, (unsigned)c);
			}
			ps->i = j + 2;
			continue;
		}
		ps->i++;
		hi = lo;
		if (ps->i + 1 < ps->n && ps->p[ps->i] == '-' && ps->p[ps->i + 1] != ']') {
			hi = (unsigned char)ps->p[ps->i + 1];
			if (hi < lo)
				return fail(ps, "range out of order");
			ps->i += 2;
		}
		for (unsigned c = lo; c <= hi; c++)
			set_add(set, c);
	}
	if (neg) {
		for (int k = 0; k < 32; k++)
			set[k] = (uint8_t)~set[k];
	}
	return 0;
}

static int parse_atom(struct parser *ps)
{
	unsigned char c = (unsigned char)ps->p[ps->i];
	int x;

	switch (c) {
	case '(':
		if (ps->i + 1 < ps->n && ps->p[ps->i + 1] == '?')
			return fail(ps, "'(?' is not supported");
		if (++ps->depth > REGEX_MAX_DEPTH)
			return fail(ps, "groups nested too deep");
		ps->i++;
		x = parse_alt(ps);
		if (x < 0)
			return -1;
		if (ps->i >= ps->n || ps->p[ps->i] != ')')
			return fail(ps, "missing ')'");
		ps->i++;
		ps->depth--;
		return x;
	case ')':
		return fail(ps, "unmatched ')'");
	case '*': case '+': case '?': case '{':
		return fail(ps, "nothing to repeat");
	case '^':
		ps->i++;
		return new_node(ps, N_BOL);
	case '$':
		ps->i++;
		return new_node(ps, N_EOL);
	case '.':
		x = new_node(ps, N_SET);
		if (x < 0)
			return -1;
		memset(ps->nodes[x].set, 0xff, 32);
		ps->i++;
		return x;
	case '[':
		x = new_node(ps, N_SET);
		if (x < 0)
			return -1;
		ps->i++;
		if (parse_bracket(ps, ps->nodes[x].set) != 0)
			return -1;
		return x;
	case '\\':
		if (ps->i + 1 >= ps->n)
			return fail(ps, "trailing '\\'");
		c = (unsigned char)ps->p[ps->i + 1];
		if (c >= '0' && c <= '9')
			return fail(ps, "back-references are not supported");
		if (c_alnum(c))
			return fail(ps, "unsupported escape (only punctuation may follow '\\')");
		ps->i++;
		break;
	default:
		break;
	}
	x = new_node(ps, N_SET);
	if (x < 0)
		return -1;
	set_add(ps->nodes[x].set, c);
	ps->i++;
	return x;
}

static int parse_num(struct parser *ps, int *v)
{
	int r = 0, any = 0;

	while (ps->i < ps->n && c_digit((unsigned char)ps->p[ps->i])) {
		r = r * 10 + (ps->p[ps->i] - '0');
		if (r > REGEX_MAX_REPEAT)
			return fail(ps, "repeat count over 255");
		ps->i++;
		any = 1;
	}
	*v = r;
	return any ? 0 : 1;
}

static int parse_repeat(struct parser *ps)
{
	int x = parse_atom(ps), quantified = 0;

	if (x < 0)
		return -1;
	while (ps->i < ps->n) {
		char c = ps->p[ps->i];
		int min, max, r;

		if (c == '*') {
			min = 0;
			max = -1;
			ps->i++;
		} else if (c == '+') {
			min = 1;
			max = -1;
			ps->i++;
		} else if (c == '?') {
			min = 0;
			max = 1;
			ps->i++;
		} else if (c == '{') {
			ps->i++;
			r = parse_num(ps, &min);
			if (r < 0)
				return -1;
			if (r > 0)
				return fail(ps, "expected a number after '{'");
			max = min;
			if (ps->i < ps->n && ps->p[ps->i] == ',') {
				ps->i++;
				r = parse_num(ps, &max);
				if (r < 0)
					return -1;
				if (r > 0)
					max = -1;
				else if (max < min)
					return fail(ps, "repeat bounds out of order");
			}
			if (ps->i >= ps->n || ps->p[ps->i] != '}')
				return fail(ps, "expected '}'");
			ps->i++;
		} else {
			break;
		}
		if (quantified) {
			ps->i--;
			return fail(ps, "a repeat cannot repeat a repeat (put it in a group)");
		}
		r = new_node(ps, N_REP);
		if (r < 0)
			return -1;
		ps->nodes[r].a = x;
		ps->nodes[r].min = min;
		ps->nodes[r].max = max;
		x = r;
		quantified = 1;
	}
	return x;
}

/* Appends y to the right-leaning chain of kind whose root is *x and whose
 * last node is *tail (-1: *x is a single operand so far). Returns 0 or -1. */
static int lean_right(struct parser *ps, enum node_kind kind, int *x, int *tail, int y)
{
	int c = new_node(ps, kind);

	if (c < 0)
		return -1;
	if (*tail < 0) {
		ps->nodes[c].a = *x;
		*x = c;
	} else {
		ps->nodes[c].a = ps->nodes[*tail].b;
		ps->nodes[*tail].b = c;
	}
	ps->nodes[c].b = y;
	*tail = c;
	return 0;
}

/* Concatenations and alternations are built leaning right, a(b(cd)), so
 * that compile_node walks their spine in a loop and recurses only into
 * groups, which REGEX_MAX_DEPTH bounds. */
static int parse_cat(struct parser *ps)
{
	int x = -2, tail = -1;

	while (ps->i < ps->n && ps->p[ps->i] != '|' && ps->p[ps->i] != ')') {
		int y = parse_repeat(ps);

		if (y < 0)
			return -1;
		if (x == -2) {
			x = y;
			continue;
		}
		if (lean_right(ps, N_CAT, &x, &tail, y) < 0)
			return -1;
	}
	if (x == -2)
		x = new_node(ps, N_EMPTY);
	return x;
}

static int parse_alt(struct parser *ps)
{
	int x = parse_cat(ps), tail = -1;

	while (x >= 0 && ps->i < ps->n && ps->p[ps->i] == '|') {
		int y;

		ps->i++;
		y = parse_cat(ps);
		if (y < 0)
			return -1;
		if (lean_right(ps, N_ALT, &x, &tail, y) < 0)
			return -1;
	}
	return x;
}

struct emitter {
	const struct node *nodes;
	struct inst *prog;
	size_t n;
	unsigned long work;	/* compile_node calls, capped: an empty body
				 * repeated in a repeat emits nothing, so the
				 * program size alone would not bound the time */
};

#define MAX_COMPILE_WORK 200000UL

static int emit(struct emitter *em, enum op op)
{
	if (em->n >= REGEX_MAX_PROG)
		return -1;
	memset(&em->prog[em->n], 0, sizeof(em->prog[0]));
	em->prog[em->n].op = op;
	return (int)em->n++;
}

/* Returns 0, or -1 when the program would pass REGEX_MAX_PROG. The tree is
 * at most REGEX_MAX_DEPTH groups deep, and each level adds a bounded number
 * of frames, so the recursion is bounded. */
static int compile_node(struct emitter *em, int x)
{
	const struct node *nd = &em->nodes[x];
	size_t first;
	int i, s, j;

	if (++em->work > MAX_COMPILE_WORK)
		return -1;
	switch (nd->kind) {
	case N_EMPTY:
		return 0;
	case N_SET:
		i = emit(em, OP_SET);
		if (i < 0)
			return -1;
		memcpy(em->prog[i].set, nd->set, 32);
		return 0;
	case N_BOL:
		return emit(em, OP_BOL) < 0 ? -1 : 0;
	case N_EOL:
		return emit(em, OP_EOL) < 0 ? -1 : 0;
	case N_CAT:
		while (nd->kind == N_CAT) {
			if (compile_node(em, nd->a) != 0)
				return -1;
			nd = &em->nodes[nd->b];
		}
		return compile_node(em, (int)(nd - em->nodes));
	case N_ALT:
		/* split to each alternative in turn; every alternative but the
		 * last jumps to the end, patched once the end is known */
		first = em->n;
		while (nd->kind == N_ALT) {
			s = emit(em, OP_SPLIT);
			if (s < 0)
				return -1;
			em->prog[s].x = s + 1;
			if (compile_node(em, nd->a) != 0)
				return -1;
			j = emit(em, OP_JMP);
			if (j < 0)
				return -1;
			em->prog[j].x = -1;
			em->prog[s].y = (int)em->n;
			nd = &em->nodes[nd->b];
		}
		if (compile_node(em, (int)(nd - em->nodes)) != 0)
			return -1;
		for (size_t k = first; k < em->n; k++) {
			if (em->prog[k].op == OP_JMP && em->prog[k].x == -1)
				em->prog[k].x = (int)em->n;
		}
		return 0;
	case N_REP:
		for (i = 0; i < nd->min; i++) {
			if (compile_node(em, nd->a) != 0)
				return -1;
		}
		if (nd->max < 0) {
			s = emit(em, OP_SPLIT);
			if (s < 0)
				return -1;
			em->prog[s].x = s + 1;
			if (compile_node(em, nd->a) != 0)
				return -1;
			j = emit(em, OP_JMP);
			if (j < 0)
				return -1;
			em->prog[j].x = s;
			em->prog[s].y = (int)em->n;
			return 0;
		}
		first = em->n;
		for (i = nd->min; i < nd->max; i++) {
			s = emit(em, OP_SPLIT);
			if (s < 0)
				return -1;
			em->prog[s].x = s + 1;
			if (compile_node(em, nd->a) != 0)
				return -1;
			/* x{0,3} is (x(x(x)?)?)? written flat: each split skips
			 * to the end of the whole repeat */
			em->prog[s].y = -1;
		}
		/* from first only: an enclosing repeat's pending splits lie
		 * before it and must skip to their own end */
		for (size_t k = first; k < em->n; k++) {
			if (em->prog[k].op == OP_SPLIT && em->prog[k].y == -1)
				em->prog[k].y = (int)em->n;
		}
		return 0;
	}
	return -1;
}

int regex_compile(const char *p, size_t n, struct regex **out, char *why, size_t why_cap)
{
	struct parser ps = { p, n, 0, NULL, 0, 0, why, why_cap };
	struct emitter em = { NULL, NULL, 0, 0 };
	struct regex *re = NULL;
	int root, rc = -1;

	*out = NULL;
	ps.nodes = malloc(sizeof(*ps.nodes) * MAX_NODES);
	em.prog = malloc(sizeof(*em.prog) * REGEX_MAX_PROG);
	re = calloc(1, sizeof(*re));
	if (ps.nodes == NULL || em.prog == NULL || re == NULL) {
		snprintf(why, why_cap, "out of memory");
		goto out;
	}
	root = parse_alt(&ps);
	if (root < 0)
		goto out;
	if (ps.i < n) {
		fail(&ps, "unmatched ')'");
		goto out;
	}
	em.nodes = ps.nodes;
	if (compile_node(&em, root) != 0 || emit(&em, OP_MATCH) < 0) {
		if (em.work > MAX_COMPILE_WORK)
			snprintf(why, why_cap, "pattern too complex once repeats are expanded");
		else
			snprintf(why, why_cap, "pattern too large once repeats are expanded "
				 "(over %d instructions)", REGEX_MAX_PROG);
		goto out;
	}
	re->prog = realloc(em.prog, sizeof(*em.prog) * em.n);
	if (re->prog == NULL) {
		snprintf(why, why_cap, "out of memory");
		goto out;
	}
	em.prog = NULL;
	re->n = em.n;
	*out = re;
	re = NULL;
	rc = 0;
out:
	free(ps.nodes);
	free(em.prog);
	free(re);
	return rc;
}

struct vm {
	const struct regex *re;
	unsigned *mark;		/* generation that last added each pc */
	int *stack;
	unsigned long steps;
	int matched;
};

/* Adds pc and everything reachable from it without consuming a byte, at
 * position pos, to list (SET instructions only). */
static void add_thread(struct vm *vm, int *list, size_t *ln, int pc, unsigned gen, size_t pos,
		       size_t n)
{
	size_t sp = 0;

	vm->stack[sp++] = pc;
	while (sp > 0) {
		const struct inst *in;

		pc = vm->stack[--sp];
		if (vm->mark[pc] == gen)
			continue;
		vm->mark[pc] = gen;
		vm->steps++;
		in = &vm->re->prog[pc];
		switch (in->op) {
		case OP_SET:
			list[(*ln)++] = pc;
			break;
		case OP_JMP:
			vm->stack[sp++] = in->x;
			break;
		case OP_SPLIT:
			vm->stack[sp++] = in->y;
			vm->stack[sp++] = in->x;
			break;
		case OP_BOL:
			if (pos == 0)
				vm->stack[sp++] = pc + 1;
			break;
		case OP_EOL:
			if (pos == n)
				vm->stack[sp++] = pc + 1;
			break;
		case OP_MATCH:
			vm->matched = 1;
			break;
		}
	}
}

int regex_search(const struct regex *re, const char *s, size_t n, unsigned long max_steps,
		 unsigned long *steps)
{
	struct vm vm = { re, NULL, NULL, 0, 0 };
	int *cur = NULL, *next = NULL;
	size_t ncur = 0, nnext;
	unsigned gen = 1;
	int rc = -1;
	/* a pattern starting with '^' starts no thread past position 0, so
	 * once its threads die the search is over */
	int anchored = re->prog[0].op == OP_BOL;

	/* each pc is pushed at most twice per closure (once per incoming edge
	 * of a split or jump, plus the start), so 2n + 1 bounds the stack */
	vm.mark = calloc(re->n, sizeof(*vm.mark));
	vm.stack = malloc(sizeof(*vm.stack) * (2 * re->n + 1));
	cur = malloc(sizeof(*cur) * re->n);
	next = malloc(sizeof(*next) * re->n);
	if (vm.mark == NULL || vm.stack == NULL || cur == NULL || next == NULL)
		goto out;
	add_thread(&vm, cur, &ncur, 0, gen, 0, n);
	for (size_t pos = 0; pos < n && !vm.matched; pos++) {
		unsigned char c = (unsigned char)s[pos];
		int *t;

		if (anchored && ncur == 0)
			break;
		if (max_steps > 0 && vm.steps > max_steps) {
			rc = -2;
			goto out;
		}
		gen++;
		nnext = 0;
		for (size_t k = 0; k < ncur; k++) {
			const struct inst *in = &re->prog[cur[k]];

			vm.steps++;
			if (set_has(in->set, c))
				add_thread(&vm, next, &nnext, cur[k] + 1, gen, pos + 1, n);
		}
		/* unanchored: a new thread starts at every position */
		if (!anchored)
			add_thread(&vm, next, &nnext, 0, gen, pos + 1, n);
		t = cur;
		cur = next;
		next = t;
		ncur = nnext;
	}
	rc = vm.matched;
out:
	if (steps != NULL)
		*steps = vm.steps;
	free(vm.mark);
	free(vm.stack);
	free(cur);
	free(next);
	return rc;
}

size_t regex_size(const struct regex *re)
{
	return re->n;
}

void regex_free(struct regex *re)
{
	if (re == NULL)
		return;
	free(re->prog);
	free(re);
}
