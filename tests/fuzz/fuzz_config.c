/*
 * fuzz_config — the whole loader (json_scan, json-c, every section, route_build)
 * on arbitrary bytes: it must never crash, leak or read past the buffer, and
 * must either return a gateway or at least one error, never both; and json-c
 * must accept whatever json_scan (the strict pre-check) accepted.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/gateway.h"
#include "tests/fuzz/check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cfg_errors errs = CFG_ERRORS_INIT;
	struct gateway *gw;
	char *copy;

	/* an exact-size copy, so that a read past size is caught */
	copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	if (size)
		memcpy(copy, data, size);
	gw = gw_load_buffer(copy, size, &errs);
	CHECK(!gw || (errs.n == 0 && errs.dropped == 0));
	CHECK(gw || errs.n > 0 || errs.dropped > 0);
	for (size_t i = 0; i < errs.n; i++) {
		CHECK(strlen(errs.msg[i]) > 0);
		/* json_scan accepted what json-c refused: the two disagree */
		CHECK(strncmp(errs.msg[i], "$: cannot parse the document", 28) != 0);
	}
	if (gw && gw->n_backends)
		(void)gw_backend_find(gw, gw->backends[0].id);
	gw_free(gw);
	cfg_errors_release(&errs);
	free(copy);
	return 0;
}
