/*
 * set-backend-service — sends the call to another configured backend, or to
 * one member of a pool (polmod.h). Only configured URLs: no request value
 * ever chooses where the gateway connects.
 */
#include "policy/polmod.h"

#include <stdlib.h>
#include <string.h>

#include "policy/engine.h"
#include "policy/loader.h"

struct conf {
	const struct gw_backend *backend;
	const char *base_url;	/* borrowed from a backend or pool member; NULL: backend's */
};

static const struct pol_attr attrs[] = {
	/* exactly one of the two (compile) */
	{ "backend-id", POL_A_RAW, 0, 0, 0, 0, NULL, NULL, 0 },
	{ "base-url", POL_A_RAW, 0, 0, 0, 0, NULL, NULL, 0 },
	POL_ATTRS_END
};

/* Is u the URL of a backend or of a pool member? Returns it (borrowed). */
static const char *known_base_url(const struct gateway *gw, const char *u,
				  const struct gw_backend **be)
{
	for (size_t i = 0; i < gw->n_backends; i++) {
		const struct gw_backend *b = &gw->backends[i];

		if (!b->pool && b->url && strcmp(b->url, u) == 0) {
			*be = b;
			return b->url;
		}
		for (size_t j = 0; j < b->n_pool; j++) {
			if (strcmp(b->pool[j].url, u) == 0) {
				*be = b;
				return b->pool[j].url;
			}
		}
	}
	return NULL;
}

static void by_url(struct loader *ld, json_object *v, struct conf *cf)
{
	char *s, *u;
	int secret;

	if (ld_string(ld, v, STR_SUBST, &s, &secret) != 0)
		return;
	if (ld_check_url(ld, s, secret, &u) == 0) {
		cf->base_url = known_base_url(ld->gw, u, &cf->backend);
		if (!cf->base_url)
			ld_err_value(ld, s, secret, "is not the URL of a configured backend "
				     "(or pool member)");
		explicit_bzero(u, strlen(u));
		free(u);
	}
	explicit_bzero(s, strlen(s));
	free(s);
}

static void compile(struct loader *ld, json_object *o, void *conf)
{
	struct conf *cf = conf;
	json_object *v;
	size_t mark;
	char *s;

	if (ld_present(o, "backend-id") == ld_present(o, "base-url")) {
		ld_err(ld, "give exactly one of 'backend-id' and 'base-url'");
		return;
	}
	v = ld_get(ld, o, "backend-id", 0);
	if (v) {
		mark = ld_push_member(ld, "backend-id");
		if (ld_id(ld, v, &s) == 0) {
			cf->backend = gw_backend_find(ld->gw, s);
			if (!cf->backend)
				ld_err(ld, "'%s' is not a backend", s);
			free(s);
		}
		ld_pop(ld, mark);
		return;
	}
	v = ld_get(ld, o, "base-url", 0);
	if (v) {
		mark = ld_push_member(ld, "base-url");
		by_url(ld, v, cf);
		ld_pop(ld, mark);
	}
}

static enum pol_step run(struct pol_call *c, const struct pol_policy *p, enum pol_section_id sec)
{
	const struct conf *cf = p->conf;

	(void)sec;
	c->backend = cf->backend;
	c->backend_url = cf->base_url;
	if (c->backend)
		c->timeout_ms = c->backend->timeout_ms;
	return POL_STEP_NEXT;
}

static const struct gw_backend *named_backend(const void *conf)
{
	return ((const struct conf *)conf)->backend;
}

const struct pol_module pol_mod_set_backend_service = {
	.name = "set-backend-service",
	.sections = POL_SEC_IN | POL_SEC_BK,
	.attrs = attrs,
	.conf_size = sizeof(struct conf),
	.compile = compile,
	.run = run,
	.backend = named_backend,
};
