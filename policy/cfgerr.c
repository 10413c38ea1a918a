#include "policy/gateway.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cfg_error(struct cfg_errors *errs, const char *path, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	int n;

	if (errs->n >= CFG_ERRORS_MAX) {
		errs->dropped++;
		return;
	}
	n = snprintf(msg, sizeof(msg), "%s: ", path && *path ? path : "$");
	if (n < 0 || (size_t)n >= sizeof(msg))
		n = 0;
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	if (errs->n == errs->cap) {
		size_t cap = errs->cap ? errs->cap * 2 : 8;
		char **v = realloc(errs->msg, cap * sizeof(*v));

		if (!v) {
			errs->dropped++;
			return;
		}
		errs->msg = v;
		errs->cap = cap;
	}
	errs->msg[errs->n] = strdup(msg);
	if (errs->msg[errs->n])
		errs->n++;
	else
		errs->dropped++;
}

void cfg_errors_release(struct cfg_errors *errs)
{
	for (size_t i = 0; i < errs->n; i++)
		free(errs->msg[i]);
	free(errs->msg);
	errs->msg = NULL;
	errs->n = errs->cap = errs->dropped = 0;
}
