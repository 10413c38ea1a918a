/*
 * policies — APIM-style policies as the loader builds them (config-v1.md,
 * Policies): one struct pol_policy per element of a section, the four
 * sections of a scope (struct pol_scope), and the flattened pipeline of one
 * (operation or API) x product (struct pol_plan) that the engine runs.
 *
 *   loader:  pol_parse_scope() per "policies" member   (config.c, products.c)
 *            pol_compile() once everything parsed: plans and counter keys
 *   engine:  plan = pol_plan_for(api, op, product)      O(1) + O(log products of the API)
 *            for each p in plan->s[POL_INBOUND] ...
 *   gw_free: pol_free_gateway()
 *
 * Scopes nest global -> product -> API -> operation. In each section a
 * {"base": {}} element is where the enclosing scope's section runs; a section
 * present without it does not run the enclosing one; an absent section is
 * [{"base": {}}]. Plans hold borrowed pointers to the policies, which the
 * scopes own; everything is immutable once loaded.
 *
 * Each policy is a module (polmod.h): one file policy/pol_NAME.c that
 * declares its name, the sections it may appear in (APIM's rule, narrowed to
 * what this engine does with it), its attribute table and its run step;
 * policies.c validates and builds every element from the table, and the
 * engine runs plan entries through their descriptor.
 *
 * JSON paths in errors: "apis[0].policies.inbound[2][\"rate-limit\"].calls"
 * (the policy name in brackets, as a map key, because it is data-like and
 * holds '-').
 */
#ifndef HOSTGATE_POLICIES_H
#define HOSTGATE_POLICIES_H

#include <stddef.h>
#include <stdint.h>

#include "policy/gateway.h"
#include "policy/template.h"

#define POL_MAX_PER_SECTION 128	/* elements of one section, as written */
#define POL_MAX_PLAN 512	/* policies of one flattened section (allocated as counted) */
#define POL_MAX_SEATS 8		/* limit-concurrency policies per plan */
#define POL_MAX_BANDWIDTH 8	/* bandwidth quotas per plan */
#define POL_MAX_VALUES 64	/* values of one list attribute */

enum pol_section_id { POL_INBOUND, POL_BACKEND, POL_OUTBOUND, POL_ON_ERROR, POL_N_SECTIONS };

/* Every policy is a module (polmod.h, policy/pol_list.h) but "base", which
 * marks where the enclosing scope's section runs. */
enum pol_kind {
	POL_BASE,
	POL_MODULE,	/* p->mod, p->conf */
};

enum pol_exists { POL_EXISTS_OVERRIDE, POL_EXISTS_SKIP, POL_EXISTS_APPEND, POL_EXISTS_DELETE };

/* retry conditions */
#define POL_RETRY_CONNECT_ERROR 1u
#define POL_RETRY_TIMEOUT 2u
#define POL_RETRY_4XX 4u
#define POL_RETRY_5XX 8u

struct pol_strings {
	char **v;
	size_t n;
};

struct pol_tpls {
	struct tpl **v;
	size_t n;
};

/* What a policy or a plan's section needs read whole (pol_policy.needs,
 * pol_plan.needs, pol_module.needs) */
#define POL_NEED_REQ_BODY 1u	/* the client's body: read before the policy runs */
#define POL_NEED_RESP_BODY 2u	/* the backend's body: buffered before outbound runs */

struct pol_module;

struct pol_policy {
	enum pol_kind kind;
	/* POL_MODULE: the module's descriptor and its private conf (polmod.h) */
	const struct pol_module *mod;
	void *conf;
	/* counter key prefix ("rl:api:weather:inbound#1"), set by pol_compile()
	 * for a module with a counter_tag (rate limits, quotas, limit-concurrency) */
	char *counter_prefix;
	/* POL_NEED_*: what its templates and expressions read (set by the
	 * loader) */
	unsigned needs;
};

/* A policy list nested in a policy (choose's branches): owned by it. */
struct pol_list {
	struct pol_policy **v;
	size_t n;
};

/* One scope's sections as written (base elements included). */
struct pol_scope {
	int present[POL_N_SECTIONS];
	struct pol_policy **s[POL_N_SECTIONS];
	size_t n[POL_N_SECTIONS];
};

struct pol_section {
	const struct pol_policy **v;
	size_t n;
};

struct pol_plan {
	struct pol_section s[POL_N_SECTIONS];
	unsigned needs[POL_N_SECTIONS];	/* POL_NEED_* of the section's policies */
};

struct loader;
struct json_object;

/* "policies" value v of a scope (the current path ends in ".policies"): the
 * four sections. *out is set (owned by the gateway part that holds it) even
 * when errors were reported, so that gw_free frees it. */
void pol_parse_scope(struct loader *ld, struct json_object *v, struct pol_scope **out);
/* Flattens every scope into plans and gives counters their keys. Returns 0
 * or -1 (reported). */
int pol_compile(struct loader *ld);
/* Frees the scopes and plans pol_parse_scope and pol_compile added to gw;
 * safe on a partly built gateway. Before products_free(). */
void pol_free_gateway(struct gateway *gw);

/* Calls fn on p and then on every policy nested in it (choose), depth first,
 * in document order. */
void pol_walk(const struct pol_policy *p, void (*fn)(const struct pol_policy *q, void *arg),
	      void *arg);
/* Returns the name of p as written ("set-status"), module or not. */
const char *pol_policy_name(const struct pol_policy *p);
/* Returns the name of a section ("on-error"). */
const char *pol_section_name(enum pol_section_id s);

/* The plan for a request matched to api and op (NULL when the API has no
 * operations) under product (NULL: none, or one that does not include the
 * API: then the no-product plan). Never NULL on a loaded gateway. */
const struct pol_plan *pol_plan_for(const struct gw_api *api, const struct gw_operation *op,
				    const struct gw_product *product);

#endif
