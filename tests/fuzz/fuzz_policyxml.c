/*
 * fuzz_policyxml — the importer's policy-XML reader on arbitrary bytes: the
 * pre-tokenizer (px_pretokenize), libxml2 on its output, the conversion
 * (px_convert) with one fragment that includes itself, and the expression
 * mapping (px_expr) on the same bytes.
 * Invariants: the pre-tokenizer keeps the number of lines and, when it
 * fails, says why; a conversion that fails says so in errs, one that
 * succeeds gives an object; an expression either translates or says why.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>

#include "import/policyxml.h"
#include "tests/fuzz/check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void S_quiet(void *ctx, const char *msg, ...)
{
	(void)ctx;
	(void)msg;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char frag_self[] =
		"<fragment><include-fragment fragment-id=\"self\" /></fragment>";
	struct px_fragment frags[2];
	const char *in = (const char *)data, *why = NULL;
	char *out = NULL, ewhy[256];
	size_t ol = 0, line = 0, i, a = 0, b = 0;
	struct px_linemap map = PX_LINEMAP_INIT;
	struct px_origins orig = PX_ORIGINS_INIT;
	struct cfg_errors errs = CFG_ERRORS_INIT, notes = CFG_ERRORS_INIT;
	json_object *pol = NULL;
	int rc, bare;

	if (size > 65536)
		return 0;
	xmlSetGenericErrorFunc(NULL, S_quiet);
	rc = px_pretokenize(in, size, &out, &ol, &line, &why, &map);
	if (rc == 0) {
		for (i = 0; i < size; i++)
			a += in[i] == '\n';
		for (i = 0; i < ol; i++)
			b += out[i] == '\n';
		CHECK(a == b);
		CHECK(out[ol] == '\0');
		for (i = 0; i < map.n; i++)
			CHECK(map.start[i] <= map.end[i]);
	} else {
		CHECK(out == NULL && why != NULL && line >= 1);
	}
	free(out);
	px_linemap_release(&map);

	frags[0].id = "self";
	frags[0].file = "policy fragments/self/policy.xml";
	frags[0].xml = frag_self;
	frags[0].len = strlen(frag_self);
	frags[1].id = "input";
	frags[1].file = "policy fragments/input/policy.xml";
	frags[1].xml = in;
	frags[1].len = size;
	rc = px_convert(in, size, "policy.xml", frags, 2, &pol, &orig, &errs, &notes);
	if (rc == 0)
		CHECK(pol != NULL && errs.n + errs.dropped == 0);
	else
		CHECK(errs.n + errs.dropped > 0);
	for (i = 0; i < errs.n; i++)
		CHECK(strncmp(errs.msg[i], "policy", 6) == 0);
	json_object_put(pol);
	px_origins_release(&orig);
	cfg_errors_release(&errs);
	cfg_errors_release(&notes);

	out = NULL;
	ewhy[0] = '\0';
	rc = px_expr(in, size, &out, &bare, ewhy, sizeof(ewhy));
	if (rc == 0)
		CHECK(out != NULL);
	else
		CHECK(out == NULL && ewhy[0] != '\0');
	free(out);
	return 0;
}
