/*
 * fuzz_template — tpl_parse on arbitrary bytes (both flag sets), then
 * tpl_expand with a resolver that returns hostile values.
 * Invariants: a parsed template has at most TPL_MAX_PARTS parts, no two
 * adjacent literals, names within TPL_NAME_MAX; a constant template expands to
 * its constant; URL expansion of values only ever emits unreserved bytes or
 * %XX for them (checked by expanding a template that is only values); header
 * expansion never lets a control byte (HTAB aside) through, from a value or
 * a literal.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/template.h"
#include "tests/fuzz/check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char hostile[] = "a/b?c=d&e#f%\r\n x\v\x7f";

static void resolver(void *ctx, enum tpl_root root, const char *name, size_t name_len,
		     const char **val, size_t *len)
{
	(void)ctx;
	(void)name;
	(void)name_len;
	*val = root == TPL_REQUEST_IP ? NULL : hostile;
	*len = *val ? sizeof(hostile) - 1 : 0;
}

static int url_safe(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~' || c == '%';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[400];

	if (size > 4096)
		return 0;
	for (unsigned flags = 0; flags <= TPL_PARSE_BRACES; flags++) {
		struct tpl *t = NULL;
		struct tpl_buf b = TPL_BUF_INIT(1 << 20), v = TPL_BUF_INIT(1 << 20);
		int has_values = 0;
		enum tpl_status st;

		if (tpl_parse((const char *)data, size, flags, &t, why, sizeof(why)) != 0) {
			CHECK(t == NULL);
			CHECK(why[0] != '\0');
			continue;
		}
		CHECK(t->n <= TPL_MAX_PARTS);
		for (size_t i = 0; i < t->n; i++) {
			if (i > 0)
				CHECK(!(t->v[i].root == TPL_LITERAL && t->v[i - 1].root == TPL_LITERAL));
			if (t->v[i].root != TPL_LITERAL) {
				has_values = 1;
				CHECK(t->v[i].len <= TPL_NAME_MAX);
			}
		}
		CHECK(has_values == t->dynamic);
		/* an expression may fail at evaluation ($(int(...) + ...) overflows) */
		st = tpl_expand(t, resolver, NULL, TPL_ENC_URL, &b);
		CHECK(st == TPL_OK || (st == TPL_EXPR_FAILED && (t->reads & TPL_READS(TPL_EXPR))));
		if (st != TPL_OK)
			goto next;
		if (!t->dynamic)
			CHECK(strcmp(b.p, tpl_constant(t)) == 0);
		/* values alone: URL-encoded output is unreserved bytes and escapes */
		for (size_t i = 0; i < t->n; i++) {
			struct tpl only = { &t->v[i], 1, t->v[i].root != TPL_LITERAL, 0 };

			if (!only.dynamic || t->v[i].root == TPL_EXPR)
				continue;
			CHECK(tpl_expand(&only, resolver, NULL, TPL_ENC_URL, &v) == TPL_OK);
		}
		for (size_t i = 0; i < v.len; i++)
			CHECK(url_safe((unsigned char)v.p[i]));
		tpl_buf_release(&v);
		tpl_buf_release(&b);
		/* header encoding refuses the hostile value's CR LF, and a literal's
		 * control bytes (all of them but HTAB) */
		{
			int only_ip = 1, lit_ctl = 0, has_expr = (t->reads & TPL_READS(TPL_EXPR)) != 0;

			st = tpl_expand(t, resolver, NULL, TPL_ENC_HEADER, &b);

			for (size_t i = 0; i < t->n; i++) {
				if (t->v[i].root != TPL_LITERAL && t->v[i].root != TPL_REQUEST_IP)
					only_ip = 0;
				if (t->v[i].root == TPL_LITERAL &&
				    tpl_header_check(t->v[i].text, t->v[i].len) != 0)
					lit_ctl = 1;
			}
			/* an expression's text is any bytes: only the rule below holds */
			CHECK(has_expr || st == (only_ip && !lit_ctl ? TPL_OK : TPL_BAD_VALUE));
			for (size_t i = 0; st == TPL_OK && i < b.len; i++)
				CHECK(((unsigned char)b.p[i] >= 0x20 || b.p[i] == '\t') &&
				      (unsigned char)b.p[i] != 0x7f);
		}
next:
		tpl_buf_release(&v);
		tpl_buf_release(&b);
		tpl_free(t);
	}
	return 0;
}
