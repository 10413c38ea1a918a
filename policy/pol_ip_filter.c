/*
 * ip-filter — allows or forbids client addresses: CIDRs and ranges, v4 and
 * v6 (polmod.h).
 */
#include "policy/polmod.h"

#include <stdlib.h>
#include <string.h>

#include "policy/cidr.h"
#include "policy/engine.h"
#include "policy/loader.h"

struct range {
	int family;
	unsigned char from[16], to[16];
};

struct conf {
	int allow;	/* "allow" (else "forbid") */
	struct pol_strings addresses;	/* as written */
	struct gw_cidr *cidrs;
	size_t n_cidrs;
	struct range *ranges;
	size_t n_ranges;
};

static const char *const actions[] = { "forbid", "allow", NULL };

static const struct pol_attr attrs[] = {
	{ "action", POL_A_ENUM, POL_A_REQUIRED, 0, 0, 0, NULL, actions, offsetof(struct conf, allow) },
	{ "address", POL_A_STR_LIST, 0, 0, 0, 0, NULL, NULL, offsetof(struct conf, addresses) },
	/* {from, to} or a list of them (compile) */
	{ "address-range", POL_A_RAW, 0, 0, 0, 0, NULL, NULL, 0 },
	POL_ATTRS_END
};

/* An address without prefix for address-range. */
static int range_addr(struct loader *ld, json_object *o, const char *name, int *family,
		      unsigned char *addr)
{
	json_object *v = ld_get(ld, o, name, 1);
	size_t mark;
	char *s;
	int secret, rc = -1;

	if (!v)
		return -1;
	mark = ld_push_member(ld, name);
	if (ld_string(ld, v, STR_SUBST, &s, &secret) == 0) {
		if (cidr_parse_addr(s, family, addr) == 0)
			rc = 0;
		else
			ld_err_value(ld, s, secret, "is not an IP address");
		free(s);
	}
	ld_pop(ld, mark);
	return rc;
}

static void one_range(struct loader *ld, json_object *r, struct conf *cf)
{
	static const char *const rknown[] = { "from", "to", NULL };
	struct range *pr = &cf->ranges[cf->n_ranges];
	int f1 = 0, f2 = 0;

	if (ld_is_object(ld, r) != 0)
		return;
	ld_check_members(ld, r, rknown);
	if (range_addr(ld, r, "from", &f1, pr->from) != 0 ||
	    range_addr(ld, r, "to", &f2, pr->to) != 0)
		return;
	if (f1 != f2) {
		ld_err(ld, "'from' and 'to' are of different address families");
	} else if (memcmp(pr->from, pr->to, 16) > 0) {
		ld_err(ld, "'from' is above 'to'");
	} else {
		pr->family = f1;
		cf->n_ranges++;
	}
}

static void ranges(struct loader *ld, json_object *v, struct conf *cf)
{
	size_t n;

	if (json_object_is_type(v, json_type_object)) {
		/* one range may be written as an object, as APIM's single element */
		json_object *a = json_object_new_array();

		if (!a) {
			ld_err(ld, "out of memory");
			return;
		}
		json_object_array_add(a, json_object_get(v));
		v = a;
	} else if (ld_is_array(ld, v) != 0) {
		return;
	} else {
		json_object_get(v);
	}
	n = json_object_array_length(v);
	if (n > POL_MAX_VALUES) {
		ld_err(ld, "has more than %d ranges", POL_MAX_VALUES);
		n = 0;
	}
	if (n > 0 && !(cf->ranges = calloc(n, sizeof(struct range))))
		ld_err(ld, "out of memory");
	for (size_t i = 0; cf->ranges && i < n; i++) {
		size_t m2 = ld_push_index(ld, i);

		one_range(ld, json_object_array_get_idx(v, i), cf);
		ld_pop(ld, m2);
	}
	json_object_put(v);
}

static void compile(struct loader *ld, json_object *o, void *conf)
{
	struct conf *cf = conf;
	json_object *v;
	size_t mark;

	if (!ld_present(o, "address") && !ld_present(o, "address-range"))
		ld_err(ld, "needs 'address' or 'address-range'");
	v = ld_get(ld, o, "address", 0);
	/* an element that was not a string is reported: the indexes below would
	 * not be the document's */
	if (cf->addresses.n > 0 && v &&
	    cf->addresses.n == (json_object_is_type(v, json_type_array) ?
				json_object_array_length(v) : 1)) {
		cf->cidrs = calloc(cf->addresses.n, sizeof(struct gw_cidr));
		if (!cf->cidrs)
			ld_err(ld, "out of memory");
		mark = ld_push_member(ld, "address");
		for (size_t i = 0; cf->cidrs && i < cf->addresses.n; i++) {
			if (cidr_parse(cf->addresses.v[i], &cf->cidrs[cf->n_cidrs]) == 0) {
				cf->n_cidrs++;
			} else {
				size_t m2 = ld_push_index(ld, i);

				ld_err_value(ld, cf->addresses.v[i], 0, "is not an IP address or CIDR "
					     "(host bits must be zero)");
				ld_pop(ld, m2);
			}
		}
		ld_pop(ld, mark);
	}
	v = ld_get(ld, o, "address-range", 0);
	if (v) {
		mark = ld_push_member(ld, "address-range");
		ranges(ld, v, cf);
		ld_pop(ld, mark);
	}
}

static enum pol_step run(struct pol_call *c, const struct pol_policy *p, enum pol_section_id sec)
{
	const struct conf *cf = p->conf;
	unsigned char addr[16];
	int family, in = 0;

	(void)sec;
	if (!c->client_ip || cidr_parse_addr(c->client_ip, &family, addr) != 0)
		return pol_fail(c, 403, "Forbidden.", "ip-filter: unparsable client address");
	for (size_t i = 0; !in && i < cf->n_cidrs; i++)
		in = cidr_contains(&cf->cidrs[i], family, addr);
	for (size_t i = 0; !in && i < cf->n_ranges; i++) {
		const struct range *r = &cf->ranges[i];

		in = r->family == family && memcmp(addr, r->from, 16) >= 0 &&
		     memcmp(addr, r->to, 16) <= 0;
	}
	if (in == cf->allow)
		return POL_STEP_NEXT;
	return pol_fail(c, 403, "Forbidden.", "ip-filter");
}

static void release(void *conf)
{
	struct conf *cf = conf;

	free(cf->cidrs);
	free(cf->ranges);
}

const struct pol_module pol_mod_ip_filter = {
	.name = "ip-filter",
	.sections = POL_SEC_IN,
	.attrs = attrs,
	.conf_size = sizeof(struct conf),
	.compile = compile,
	.run = run,
	.release = release,
};
