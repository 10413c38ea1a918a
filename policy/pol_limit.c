/*
 * rate-limit, rate-limit-by-key, quota, quota-by-key — call counts (and, for
 * quotas, bandwidth) per subscription, client address or counter key, in the
 * shared counter store (polmod.h, common/counter.h). The four differ only in
 * their tables (a key or not; bandwidth or not) and their answer (429 or
 * 403), so they share this file. Where they count (this host's shared memory,
 * or Redis under gateway.counters) is the counter store's business; a Redis
 * that cannot answer under on_failure "deny" is COUNTER_UNAVAILABLE here: 503.
 */
#include "policy/polmod.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/engine.h"
#include "policy/loader.h"

struct conf {
	int64_t calls;		/* 0: no call limit (quota with bandwidth only) */
	int64_t bandwidth;	/* KiB, quota only; 0: none */
	int64_t period;
	struct tpl *key;	/* -by-key only */
	char *retry_after_header;
	char *remaining_header, *total_header;	/* NULL: not sent */
	int quota;
};

#define CALLS(req, min) { "calls", POL_A_INT, req, min, UINT32_MAX - 2, 0, NULL, NULL, \
	offsetof(struct conf, calls) }
#define BANDWIDTH { "bandwidth", POL_A_INT, 0, 0, UINT32_MAX - 2, 0, NULL, NULL, \
	offsetof(struct conf, bandwidth) }
#define PERIOD { "renewal-period", POL_A_INT, POL_A_REQUIRED, 1, 100LL * 365 * 86400, 0, NULL, \
	NULL, offsetof(struct conf, period) }
#define KEY { "counter-key", POL_A_TPL, POL_A_REQUIRED, 0, 0, 0, NULL, NULL, \
	offsetof(struct conf, key) }
#define HEADERS \
	{ "retry-after-header-name", POL_A_HEADER_NAME, 0, 0, 0, 0, "Retry-After", NULL, \
	  offsetof(struct conf, retry_after_header) }, \
	{ "remaining-calls-header-name", POL_A_HEADER_NAME, 0, 0, 0, 0, NULL, NULL, \
	  offsetof(struct conf, remaining_header) }, \
	{ "total-calls-header-name", POL_A_HEADER_NAME, 0, 0, 0, 0, NULL, NULL, \
	  offsetof(struct conf, total_header) }

static const struct pol_attr rate_attrs[] = {
	CALLS(POL_A_REQUIRED, 1), PERIOD, HEADERS, POL_ATTRS_END
};
static const struct pol_attr rate_key_attrs[] = {
	CALLS(POL_A_REQUIRED, 1), PERIOD, KEY, HEADERS, POL_ATTRS_END
};
static const struct pol_attr quota_attrs[] = {
	CALLS(0, 0), BANDWIDTH, PERIOD, HEADERS, POL_ATTRS_END
};
static const struct pol_attr quota_key_attrs[] = {
	CALLS(0, 0), BANDWIDTH, PERIOD, KEY, HEADERS, POL_ATTRS_END
};

static void compile_quota(struct loader *ld, json_object *o, void *conf)
{
	struct conf *cf = conf;

	cf->quota = 1;
	if (cf->calls == 0 && cf->bandwidth == 0 && !ld_present(o, "calls") &&
	    !ld_present(o, "bandwidth"))
		ld_err(ld, "needs 'calls' or 'bandwidth' (or both)");
}

/* a bandwidth quota holds a key until the answer's size is known */
static void claims(const void *conf, size_t *seats, size_t *bandwidth)
{
	const struct conf *cf = conf;

	(void)seats;
	if (cf->quota && cf->bandwidth)
		(*bandwidth)++;
}

/* "<prefix>:<what>:<value>" into a new string, or NULL (too long, no memory). */
static char *counter_key(const char *prefix, const char *what, const char *value)
{
	size_t n = strlen(prefix) + strlen(what) + strlen(value) + 3;
	char *k;

	if (n > COUNTER_KEY_MAX)
		return NULL;
	k = malloc(n);
	if (k)
		snprintf(k, n, "%s:%s:%s", prefix, what, value);
	return k;
}

/* The per-call value of a limit: the counter-key, else the subscription,
 * else the client address. */
static enum tpl_status limit_value(struct pol_call *c, const struct tpl *key, const char **what,
				   char **value)
{
	if (key) {
		*what = "k";
		return pol_expand(c, key, TPL_ENC_RAW, value);
	}
	if (c->subscription) {
		*what = "s";
		*value = strdup(c->subscription->id);
	} else {
		*what = "ip";
		*value = strdup(c->client_ip ? c->client_ip : "");
	}
	return *value ? TPL_OK : TPL_NOMEM;
}

static void add_count_headers(struct pol_call *c, const struct conf *cf, uint32_t left,
			      uint32_t total)
{
	char num[32];

	if (cf->remaining_header) {
		snprintf(num, sizeof(num), "%u", left);
		pol_headers_add(pol_extra_headers(c), cf->remaining_header, num);
	}
	if (cf->total_header) {
		snprintf(num, sizeof(num), "%u", total);
		pol_headers_add(pol_extra_headers(c), cf->total_header, num);
	}
}

static enum pol_step refuse(struct pol_call *c, const struct conf *cf, int quota, uint32_t retry)
{
	char msg[160], num[32];

	if (quota)
		snprintf(msg, sizeof(msg), "Out of call volume quota. Quota will be replenished "
			 "in %02u:%02u:%02u.", retry / 3600, retry / 60 % 60, retry % 60);
	else
		snprintf(msg, sizeof(msg), "Rate limit is exceeded. Try again in %u seconds.", retry);
	pol_fail(c, quota ? 403 : 429, msg, quota ? "quota exceeded" : "rate limit exceeded");
	snprintf(num, sizeof(num), "%u", retry);
	pol_headers_add(&c->resp_headers, cf->retry_after_header, num);
	add_count_headers(c, cf, 0, (uint32_t)cf->calls);
	return POL_STEP_ERROR;
}

/* The shared counter store could not answer and gateway.counters says deny. */
static enum pol_step unavailable(struct pol_call *c)
{
	return pol_fail(c, 503, "Service unavailable.", "counter store unavailable");
}

static enum pol_step run(struct pol_call *c, const struct pol_policy *p, enum pol_section_id sec)
{
	const struct conf *cf = p->conf;
	const char *what;
	char *value = NULL, *k = NULL;
	enum tpl_status st;
	enum pol_step r = POL_STEP_NEXT;
	uint32_t retry = 0, left = 0;

	(void)sec;
	if (!c->counters)
		return pol_fail(c, 500, "Internal server error.", "no counter store for limits");
	st = limit_value(c, cf->key, &what, &value);
	if (st != TPL_OK)
		return pol_fail_tpl(c, st);
	if (cf->calls) {
		k = counter_key(p->counter_prefix, what, value);
		if (!k) {
			r = pol_fail(c, 400, "A computed value is too long.", "counter key too long");
			goto out;
		}
		switch (counter_take(c->counters, k, (uint32_t)cf->calls, (uint32_t)cf->period,
				     c->now, &retry, &left)) {
		case COUNTER_DENY:
			r = refuse(c, cf, cf->quota, retry);
			goto out;
		case COUNTER_UNAVAILABLE:
			r = unavailable(c);
			goto out;
		default:
			break;
		}
		add_count_headers(c, cf, left, (uint32_t)cf->calls);
		free(k);
		k = NULL;
	}
	if (cf->quota && cf->bandwidth) {
		char bw[8] = "b";

		memcpy(bw + 1, what, strlen(what) + 1);
		k = counter_key(p->counter_prefix, bw, value);
		if (!k) {
			r = pol_fail(c, 400, "A computed value is too long.", "counter key too long");
			goto out;
		}
		switch (counter_peek(c->counters, k, (uint32_t)cf->bandwidth, c->now, &retry,
				     &left)) {
		case COUNTER_DENY:
			r = refuse(c, cf, 1, retry);
			goto out;
		case COUNTER_UNAVAILABLE:
			r = unavailable(c);
			goto out;
		default:
			break;
		}
		if (pol_hold_bandwidth(c, k, (uint32_t)cf->period) == 0)
			k = NULL;
	}
out:
	free(k);
	free(value);
	return r;
}

const struct pol_module pol_mod_rate_limit = {
	.name = "rate-limit",
	.sections = POL_SEC_IN,
	.attrs = rate_attrs,
	.conf_size = sizeof(struct conf),
	.run = run,
	.counter_tag = "rl",
};

const struct pol_module pol_mod_rate_limit_by_key = {
	.name = "rate-limit-by-key",
	.sections = POL_SEC_IN,
	.attrs = rate_key_attrs,
	.conf_size = sizeof(struct conf),
	.run = run,
	.counter_tag = "rk",
};

const struct pol_module pol_mod_quota = {
	.name = "quota",
	.sections = POL_SEC_IN,
	.attrs = quota_attrs,
	.conf_size = sizeof(struct conf),
	.compile = compile_quota,
	.run = run,
	.counter_tag = "q",
	.claims = claims,
};

const struct pol_module pol_mod_quota_by_key = {
	.name = "quota-by-key",
	.sections = POL_SEC_IN,
	.attrs = quota_key_attrs,
	.conf_size = sizeof(struct conf),
	.compile = compile_quota,
	.run = run,
	.counter_tag = "qk",
	.claims = claims,
};
