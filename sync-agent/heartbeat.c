#include "sync-agent/heartbeat.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

char *heartbeat_body(const struct agent *a)
{
	struct json_object *obj = json_object_new_object();
	char host[256], t[32];
	struct timespec now;
	const char *text;
	char *out = NULL;

	if (!obj)
		return NULL;
	if (gethostname(host, sizeof(host)) < 0)
		host[0] = '\0';
	host[sizeof(host) - 1] = '\0';
	clock_gettime(CLOCK_MONOTONIC, &now);
	json_object_object_add(obj, "instance", json_object_new_string(a->instance_id));
	json_object_object_add(obj, "hostname", json_object_new_string(host));
	json_object_object_add(obj, "version", json_object_new_string(HOSTGATE_VERSION));
	json_object_object_add(obj, "config_generation",
			       a->installed ? json_object_new_int64(a->generation) : NULL);
	json_object_object_add(obj, "config_etag", a->installed && a->etag[0] ?
			       json_object_new_string(a->etag) : NULL);
	if (a->last_success) {
		agent_rfc3339(a->last_success, t, sizeof(t));
		json_object_object_add(obj, "last_sync", json_object_new_string(t));
	} else {
		json_object_object_add(obj, "last_sync", NULL);
	}
	json_object_object_add(obj, "last_error", a->last_error[0] ?
			       json_object_new_string(a->last_error) : NULL);
	json_object_object_add(obj, "uptime_s",
			       json_object_new_int64((int64_t)(now.tv_sec - a->started.tv_sec)));
	text = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
					      JSON_C_TO_STRING_NOSLASHESCAPE);
	if (text)
		out = strdup(text);
	json_object_put(obj);
	return out;
}

int heartbeat_send(struct agent *a)
{
	struct fetch_response r = FETCH_RESPONSE_INIT;
	char url[AGENT_URL_MAX];
	char *body;
	int rc = -1;

	if (agent_url(a, "heartbeat", url, sizeof(url)) < 0)
		return -1;
	body = heartbeat_body(a);
	if (!body) {
		log_warn("cannot build the heartbeat: out of memory");
		return -1;
	}
	if (fetch_post_json(&a->fetch, url, body, strlen(body), &r) < 0) {
		if (!r.stopped)
			log_warn("heartbeat failed: %s", r.error);
		goto out;
	}
	if (r.status != 200 && r.status != 204) {
		log_warn("heartbeat to '%s' answered HTTP %ld", url, r.status);
		goto out;
	}
	rc = 0;
out:
	fetch_response_release(&r);
	free(body);
	return rc;
}
