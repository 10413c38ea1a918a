#include "sync-agent/arm.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define URL_MAX 4096

static int64_t S_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits s seconds, in steps, giving up when the agent is told to stop.
 * Returns 0, or -1 when stopped. */
static int S_wait(struct arm *arm, long s)
{
	int64_t until = S_now_ms() + (int64_t)s * 1000;

	while (S_now_ms() < until) {
		struct timespec step = { 0, 100 * 1000 * 1000 };

		if (arm->f->should_stop && arm->f->should_stop())
			return -1;
		nanosleep(&step, NULL);
	}
	return 0;
}

static void S_drop_token(struct arm *arm)
{
	explicit_bzero(arm->auth, sizeof(arm->auth));
	arm->token_expires_ms = 0;
}

void arm_init(struct arm *arm, struct fetch *f, const struct agent_conf *conf)
{
	memset(arm, 0, sizeof(*arm));
	arm->f = f;
	arm->conf = conf;
}

/* The authority's answer to a refused token request: its "error" code (a
 * fixed vocabulary, never the secret) for the message. */
static const char *S_aad_error(json_object *j)
{
	json_object *e;

	if (j && json_object_object_get_ex(j, "error", &e) && json_object_is_type(e, json_type_string))
		return json_object_get_string(e);
	return "no error code";
}

int arm_token(struct arm *arm)
{
	const struct agent_conf *c = arm->conf;
	struct fetch_response r = FETCH_RESPONSE_INIT;
	const char *headers[] = { "Content-Type: application/x-www-form-urlencoded",
		"Accept: application/json", NULL };
	char url[URL_MAX], scope[URL_MAX];
	char *id = NULL, *secret = NULL, *sc = NULL, *body = NULL;
	size_t body_len = 0;
	json_object *j = NULL, *tok, *exp;
	int rc = -1;

	if (arm->auth[0] && S_now_ms() < arm->token_expires_ms)
		return 0;
	S_drop_token(arm);
	if (snprintf(url, sizeof(url), "%s/%s/oauth2/v2.0/token", c->azure_authority,
		     c->azure_tenant) >= (int)sizeof(url) ||
	    snprintf(scope, sizeof(scope), "%s/.default", c->arm_endpoint) >= (int)sizeof(scope)) {
		snprintf(arm->error, sizeof(arm->error), "the token URL is too long");
		return -1;
	}
	id = curl_easy_escape(arm->f->curl, c->azure_client_id, 0);
	secret = curl_easy_escape(arm->f->curl, c->client_secret, (int)c->client_secret_len);
	sc = curl_easy_escape(arm->f->curl, scope, 0);
	if (!id || !secret || !sc) {
		snprintf(arm->error, sizeof(arm->error), "out of memory");
		goto out;
	}
	body_len = strlen(id) + strlen(secret) + strlen(sc) + 80;
	body = malloc(body_len);
	if (!body) {
		snprintf(arm->error, sizeof(arm->error), "out of memory");
		goto out;
	}
	body_len = (size_t)snprintf(body, body_len, "grant_type=client_credentials&client_id=%s"
				    "&client_secret=%s&scope=%s", id, secret, sc);
	arm->token_requests++;
	if (fetch_send(arm->f, url, headers, body, body_len, 65536, &r) < 0) {
		snprintf(arm->error, sizeof(arm->error), "Azure AD token: %s", r.error);
		goto out;
	}
	j = json_tokener_parse(r.body);
	if (r.status != 200) {
		snprintf(arm->error, sizeof(arm->error), "Azure AD refused the token for client "
			 "'%s' (HTTP %ld, %s)", c->azure_client_id, r.status, S_aad_error(j));
		goto out;
	}
	if (!j || !json_object_object_get_ex(j, "access_token", &tok) ||
	    !json_object_is_type(tok, json_type_string) || json_object_get_string_len(tok) < 1 ||
	    json_object_get_string_len(tok) > ARM_TOKEN_MAX ||
	    !json_object_object_get_ex(j, "expires_in", &exp)) {
		snprintf(arm->error, sizeof(arm->error), "Azure AD's token answer is not the "
			 "documented shape (access_token, expires_in)");
		goto out;
	}
	for (const char *p = json_object_get_string(tok); *p; p++) {
		if ((unsigned char)*p < 0x21 || (unsigned char)*p >= 0x7f) {
			snprintf(arm->error, sizeof(arm->error), "Azure AD's access_token holds "
				 "a space or control character");
			goto out;
		}
	}
	{
		/* expires_in is a number, or a string of digits (v1 endpoints) */
		int64_t s = json_object_get_int64(exp);

		if (s < 1 || s > 86400 * 7) {
			snprintf(arm->error, sizeof(arm->error), "Azure AD's expires_in is not "
				 "a duration");
			goto out;
		}
		s = s > 2 * ARM_TOKEN_MARGIN_S ? s - ARM_TOKEN_MARGIN_S : s / 2;
		arm->token_expires_ms = S_now_ms() + s * 1000;
	}
	snprintf(arm->auth, sizeof(arm->auth), "Authorization: Bearer %s",
		 json_object_get_string(tok));
	rc = 0;
out:
	if (j) {
		/* the answer holds the token: zero it before it is freed */
		if (json_object_object_get_ex(j, "access_token", &tok) &&
		    json_object_is_type(tok, json_type_string))
			explicit_bzero((char *)(uintptr_t)json_object_get_string(tok),
				       (size_t)json_object_get_string_len(tok));
		json_object_put(j);
	}
	if (r.body)
		explicit_bzero(r.body, r.len);
	fetch_response_release(&r);
	if (secret) {
		explicit_bzero(secret, strlen(secret));
		curl_free(secret);
	}
	if (body) {
		explicit_bzero(body, body_len);
		free(body);
	}
	curl_free(id);
	curl_free(sc);
	return rc;
}

/* Waits until the next ARM request keeps to conf->arm_reads_per_s. Returns 0,
 * or -1 when the agent is told to stop. */
static int S_pace(struct arm *arm)
{
	long rate = arm->conf->arm_reads_per_s;

	if (rate > 0 && arm->last_read_ms) {
		int64_t until = arm->last_read_ms + 1000 / rate;

		while (S_now_ms() < until) {
			int64_t left = until - S_now_ms();
			struct timespec step = { 0, (long)(left > 100 ? 100 : left) * 1000 * 1000 };

			if (arm->f->should_stop && arm->f->should_stop())
				return -1;
			nanosleep(&step, NULL);
		}
	}
	arm->last_read_ms = S_now_ms();
	return 0;
}

/* One ARM request at url (absolute): the token, 401 once, 429/503 with
 * Retry-After. On 0, r holds the final answer. Returns 0 or -1. */
static int S_request(struct arm *arm, const char *url, const char *what, int post,
		     struct fetch_response *r)
{
	const char *headers[3] = { NULL, "Accept: application/json", NULL };
	int retries = 0, renewed = 0;

	for (;;) {
		if (arm->reads >= ARM_MAX_READS) {
			snprintf(arm->error, sizeof(arm->error), "this sync would pass %d ARM "
				 "reads (docs/azure-apim.md, \"Reads\")", ARM_MAX_READS);
			return -1;
		}
		if (arm_token(arm) < 0)
			return -1;
		headers[0] = arm->auth;
		if (S_pace(arm) < 0) {
			snprintf(arm->error, sizeof(arm->error), "ARM %s: stopped", what);
			return -1;
		}
		arm->reads++;
		if (fetch_send(arm->f, url, headers, post ? "" : NULL, 0, ARM_BODY_MAX, r) < 0) {
			snprintf(arm->error, sizeof(arm->error), "ARM %s: %s", what, r->error);
			return -1;
		}
		if (r->status == 401 && !renewed) {
			/* ExpiredAuthenticationToken: one new token, one more try */
			renewed = 1;
			S_drop_token(arm);
			continue;
		}
		if ((r->status == 429 || r->status == 503) && retries < ARM_RETRIES) {
			long s = r->retry_after_s < 0 ? ARM_RETRY_DEFAULT_S : r->retry_after_s;

			retries++;
			if (s > ARM_RETRY_CAP_S)
				s = ARM_RETRY_CAP_S;
			if (S_wait(arm, s) < 0) {
				snprintf(arm->error, sizeof(arm->error), "ARM %s: interrupted by a "
					 "signal", what);
				return -1;
			}
			continue;
		}
		return 0;
	}
}

/* The URL of path under the service. Returns 0 or -1. */
static int S_url(struct arm *arm, const char *path, char *url, size_t len)
{
	const struct agent_conf *c = arm->conf;

	if (snprintf(url, len, "%s%s%s%capi-version=%s", c->arm_endpoint, c->apim_service, path,
		     strchr(path, '?') ? '&' : '?', c->arm_api_version) >= (int)len) {
		snprintf(arm->error, sizeof(arm->error), "the ARM URL for '%s' is too long", path);
		return -1;
	}
	return 0;
}

/* Reads url's answer as a JSON object into *out (or NULL on 404). */
static int S_get_url(struct arm *arm, const char *url, const char *what, int post,
		     long *status, json_object **out)
{
	struct fetch_response r = FETCH_RESPONSE_INIT;
	int rc = -1;

	*out = NULL;
	if (S_request(arm, url, what, post, &r) < 0)
		goto out;
	*status = r.status;
	if (r.status == 404) {
		rc = 0;
		goto out;
	}
	if (r.status != 200) {
		snprintf(arm->error, sizeof(arm->error), "ARM %s: HTTP %ld", what, r.status);
		goto out;
	}
	*out = json_tokener_parse(r.body);
	if (!*out || !json_object_is_type(*out, json_type_object)) {
		json_object_put(*out);
		*out = NULL;
		snprintf(arm->error, sizeof(arm->error), "ARM %s: the answer is not a JSON object",
			 what);
		goto out;
	}
	rc = 0;
out:
	if (post && r.body)
		explicit_bzero(r.body, r.len);	/* listSecrets, listValue */
	fetch_response_release(&r);
	return rc;
}

int arm_get(struct arm *arm, const char *path, long *status, json_object **out)
{
	char url[URL_MAX];

	*out = NULL;
	if (S_url(arm, path, url, sizeof(url)) < 0)
		return -1;
	return S_get_url(arm, url, path, 0, status, out);
}

int arm_post(struct arm *arm, const char *path, json_object **out)
{
	char url[URL_MAX];
	long status = 0;

	*out = NULL;
	if (S_url(arm, path, url, sizeof(url)) < 0 ||
	    S_get_url(arm, url, path, 1, &status, out) < 0)
		return -1;
	if (!*out) {
		snprintf(arm->error, sizeof(arm->error), "ARM %s: HTTP 404", path);
		return -1;
	}
	return 0;
}

/* 1 when next is on arm_endpoint's origin (scheme, host and port). */
static int S_same_origin(const struct arm *arm, const char *next)
{
	size_t n = strlen(arm->conf->arm_endpoint);

	return strncmp(next, arm->conf->arm_endpoint, n) == 0 && next[n] == '/';
}

int arm_list(struct arm *arm, const char *path, json_object *items)
{
	char url[URL_MAX];
	json_object *page = NULL, *v, *next;
	long status = 0;
	int rc = -1;

	if (S_url(arm, path, url, sizeof(url)) < 0)
		return -1;
	for (int n = 0;; n++) {
		if (n == ARM_MAX_PAGES) {
			snprintf(arm->error, sizeof(arm->error), "ARM %s: more than %d pages",
				 path, ARM_MAX_PAGES);
			goto out;
		}
		if (S_get_url(arm, url, path, 0, &status, &page) < 0)
			goto out;
		if (!page) {
			snprintf(arm->error, sizeof(arm->error), "ARM %s: HTTP 404", path);
			goto out;
		}
		if (!json_object_object_get_ex(page, "value", &v) ||
		    !json_object_is_type(v, json_type_array)) {
			snprintf(arm->error, sizeof(arm->error), "ARM %s: the answer has no "
				 "\"value\" array", path);
			goto out;
		}
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			json_object *it = json_object_array_get_idx(v, i);

			if (json_object_array_add(items, json_object_get(it)) < 0) {
				json_object_put(it);
				snprintf(arm->error, sizeof(arm->error), "out of memory");
				goto out;
			}
		}
		if (!json_object_object_get_ex(page, "nextLink", &next) ||
		    json_object_is_type(next, json_type_null) ||
		    json_object_get_string_len(next) == 0)
			break;
		if (!json_object_is_type(next, json_type_string) ||
		    !S_same_origin(arm, json_object_get_string(next)) ||
		    strlen(json_object_get_string(next)) >= sizeof(url)) {
			snprintf(arm->error, sizeof(arm->error), "ARM %s: a nextLink that is not "
				 "on '%s'", path, arm->conf->arm_endpoint);
			goto out;
		}
		memcpy(url, json_object_get_string(next), strlen(json_object_get_string(next)) + 1);
		json_object_put(page);
		page = NULL;
	}
	rc = 0;
out:
	json_object_put(page);
	return rc;
}

void arm_release(struct arm *arm)
{
	S_drop_token(arm);
}
