/*
 * fuzz_expr — expr_compile on arbitrary bytes (with and without
 * EXPR_STOP_PAREN), then expr_eval with a fixed resolver whose values are
 * hostile (JSON, base64-looking, control bytes, long). The same bytes are
 * also compiled as a regular expression and searched over a fixed subject.
 * Invariants: a failed compile leaves no expression and says why ("column N:
 * ..." or the size limit); a compiled expression evaluates to its compiled
 * type, never passes its arena's budget, and a stop at ')' points at a ')';
 * a regex search never takes more than (n + 1) * 2 * program size steps.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/expr.h"
#include "policy/regex.h"
#include "policy/template.h"
#include "tests/fuzz/check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char json_doc[] = "{\"a\":{\"b\":[{\"c\":\"deep\"},1,true,null]},\"s\":\"x\\u0000y\"}";
static const char hostile[] = "a/b?c=d&e#f%\r\n x\v\x7f'' ${x} Zm9v==";
static char big[3000];

static void resolver(void *ctx, enum tpl_root root, const char *name, size_t name_len, const char **val,
		     size_t *len)
{
	(void)ctx;
	(void)name;
	switch (root) {
	case TPL_REQUEST_BODY:
	case TPL_RESPONSE_BODY:
		*val = json_doc;
		*len = sizeof(json_doc) - 1;
		return;
	case TPL_RESPONSE_STATUS:
		*val = "503";
		*len = 3;
		return;
	case TPL_REQUEST_IP:
		*val = NULL;
		*len = 0;
		return;
	default:
		break;
	}
	if (name_len % 3 == 1) {
		memset(big, 'a', sizeof(big));
		*val = big;
		*len = sizeof(big);
		return;
	}
	*val = hostile;
	*len = sizeof(hostile) - 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[400];
	const char *src = (const char *)data;

	if (size > EXPR_MAX_SOURCE + 16)
		return 0;
	for (unsigned flags = 0; flags <= EXPR_STOP_PAREN; flags++) {
		struct expr *e = (struct expr *)1;
		size_t used = (size_t)-1;

		why[0] = '\0';
		if (expr_compile(src, size, flags, &e, &used, why, sizeof(why)) != 0) {
			CHECK(e == NULL);
			CHECK(strncmp(why, "column ", 7) == 0 ||
			      strcmp(why, "expression over 4096 bytes") == 0);
			continue;
		}
		CHECK(e != NULL);
		CHECK(used <= size);
		if (used < size)
			CHECK(flags == EXPR_STOP_PAREN && src[used] == ')');
		for (size_t max = 0; max <= 65536; max = max ? max * 16 : 16) {
			struct expr_arena a = EXPR_ARENA_INIT(max);

			/* small enough that a fuzz run is not all regex */
			a.max_work = 2000000;
			struct expr_value v;
			enum expr_status st = expr_eval(e, resolver, NULL, &a, &v);

			CHECK(a.used <= max);
			if (st == EXPR_OK) {
				CHECK(v.type == expr_type(e));
				/* touch both ends, so ASan sees a dangling or short string */
				if (v.type == EXPR_STRING && v.len > 0)
					CHECK(v.s != NULL && (v.s[0] | 1) != 0 && (v.s[v.len - 1] | 1) != 0);
				if (v.type == EXPR_BOOL)
					CHECK(v.b == 0 || v.b == 1);
			} else {
				CHECK(st == EXPR_TOO_LONG || st == EXPR_OVERFLOW ||
				      st == EXPR_TOO_SLOW);
			}
			expr_arena_release(&a);
		}
		expr_free(e);
	}
	{
		struct regex *re = (struct regex *)1;
		static char subject[512];
		unsigned long steps = 0;
		int r;

		for (size_t i = 0; i < sizeof(subject); i++)
			subject[i] = "aab.-x(b)\n"[i % 10];
		if (regex_compile(src, size, &re, why, sizeof(why)) != 0) {
			CHECK(re == NULL);
			CHECK(why[0] != '\0');
			return 0;
		}
		CHECK(regex_size(re) <= REGEX_MAX_PROG);
		r = regex_search(re, subject, sizeof(subject), 0, &steps);
		CHECK(r == 0 || r == 1);
		CHECK(steps <= (sizeof(subject) + 1) * 2 * regex_size(re));
		regex_free(re);
	}
	return 0;
}
