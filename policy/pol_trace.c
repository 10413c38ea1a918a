/*
 * trace — one line in the gateway's error log, from any section (APIM's
 * trace policy, which writes to the tracing output; polmod.h). The message
 * is a template, so it may carry what the client sent: it is written with
 * control bytes escaped, on one line, after the request id, the API and the
 * source, so that a client can neither forge a line nor hide its own.
 */
#include "policy/polmod.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "policy/engine.h"

#define TRACE_MAX 1024	/* bytes of the message written */

struct conf {
	char *source;
	int severity;		/* index in severities */
	struct tpl *message;
};

static const char *const severities[] = { "verbose", "information", "error", NULL };

static const struct pol_attr attrs[] = {
	{ "source", POL_A_HEADER_NAME, POL_A_REQUIRED, 0, 0, 0, NULL, NULL,
	  offsetof(struct conf, source) },
	{ "severity", POL_A_ENUM, 0, 0, 0, 0, NULL, severities, offsetof(struct conf, severity) },
	{ "message", POL_A_TPL, POL_A_REQUIRED, 0, 0, 0, NULL, NULL,
	  offsetof(struct conf, message) },
	POL_ATTRS_END
};

static enum pol_step run(struct pol_call *c, const struct pol_policy *p, enum pol_section_id sec)
{
	/* the app logs at info and above: a verbose trace must still show */
	static const enum log_level levels[] = { LOG_LEVEL_INFO, LOG_LEVEL_INFO, LOG_LEVEL_ERR };
	const struct conf *cf = p->conf;
	char *msg = NULL, shown[TRACE_MAX * 4 + 4];
	size_t n = 0;
	enum tpl_status st = pol_expand(c, cf->message, TPL_ENC_RAW, &msg);

	if (st != TPL_OK)
		return pol_fail_tpl(c, st);
	for (const unsigned char *s = (const unsigned char *)msg; *s && n < TRACE_MAX * 4; s++) {
		if (*s < 0x20 || *s == 0x7f || *s == '\\') {
			shown[n++] = '\\';
			shown[n++] = 'x';
			shown[n++] = "0123456789abcdef"[*s >> 4];
			shown[n++] = "0123456789abcdef"[*s & 15];
		} else {
			shown[n++] = (char)*s;
		}
	}
	shown[n] = '\0';
	log_msg(levels[cf->severity], "trace: request %s api '%s' %s: %s: %s",
		c->request_id ? c->request_id : "-",
		c->route && c->route->api ? c->route->api->id : "-", pol_section_name(sec),
		cf->source, shown);
	free(msg);
	return POL_STEP_NEXT;
}

const struct pol_module pol_mod_trace = {
	.name = "trace",
	.sections = POL_SEC_ALL,
	.attrs = attrs,
	.conf_size = sizeof(struct conf),
	.run = run,
};
