/*
 * authentication-basic — the backend call carries these credentials as
 * "Authorization: Basic ..." (polmod.h).
 */
#include "policy/polmod.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "policy/engine.h"
#include "policy/loader.h"

struct conf {
	char *username, *password;	/* zeroed when freed */
};

static const struct pol_attr attrs[] = {
	{ "username", POL_A_STR, POL_A_REQUIRED | POL_A_SECRET, 0, 0, 0, NULL, NULL,
	  offsetof(struct conf, username) },
	{ "password", POL_A_STR, POL_A_REQUIRED | POL_A_SECRET, 0, 0, 0, NULL, NULL,
	  offsetof(struct conf, password) },
	POL_ATTRS_END
};

/* RFC 7617: the user-id ends at the first ':' */
static void compile(struct loader *ld, json_object *o, void *conf)
{
	struct conf *cf = conf;

	(void)o;
	if (cf->username && strchr(cf->username, ':')) {
		size_t mark = ld_push_member(ld, "username");

		ld_err(ld, "must not contain ':'");
		ld_pop(ld, mark);
	}
}

static enum pol_step run(struct pol_call *c, const struct pol_policy *p, enum pol_section_id sec)
{
	const struct conf *cf = p->conf;
	size_t ul = strlen(cf->username), pl = strlen(cf->password);
	size_t n = ul + 1 + pl, enc = 4 * ((n + 2) / 3) + 1;
	unsigned char *raw = malloc(n + 1);
	char *hdr = malloc(enc + 6);
	enum pol_step r = POL_STEP_NEXT;

	(void)sec;
	if (!raw || !hdr) {
		r = pol_oom(c);
		goto out;
	}
	memcpy(raw, cf->username, ul);
	raw[ul] = ':';
	memcpy(raw + ul + 1, cf->password, pl);
	memcpy(hdr, "Basic ", 6);
	EVP_EncodeBlock((unsigned char *)hdr + 6, raw, (int)n);
	pol_headers_del(&c->req_headers, "Authorization");
	if (pol_headers_add(&c->req_headers, "Authorization", hdr) != 0)
		r = pol_oom(c);
out:
	/* the credentials must not outlive the call in freed memory */
	if (raw) {
		explicit_bzero(raw, n);
		free(raw);
	}
	if (hdr) {
		explicit_bzero(hdr, strlen(hdr));
		free(hdr);
	}
	return r;
}

const struct pol_module pol_mod_authentication_basic = {
	.name = "authentication-basic",
	.sections = POL_SEC_IN,
	.attrs = attrs,
	.conf_size = sizeof(struct conf),
	.compile = compile,
	.run = run,
};
