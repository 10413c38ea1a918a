#include "sync-agent/apim.h"

#include <json-c/json.h>
#include <stdio.h>

#include "common/log.h"
#include "sync-agent/arm.h"

int apim_once(struct agent *a)
{
	struct arm arm;
	json_object *apis = json_object_new_array();
	char path[AGENT_URL_MAX];
	int code = 1;

	arm_init(&arm, &a->fetch, &a->conf);
	if (!apis) {
		log_err("out of memory");
		goto out;
	}
	if (snprintf(path, sizeof(path), "/gateways/%s/apis", a->conf.apim_gateway) >=
	    (int)sizeof(path)) {
		log_err("the gateway's name is too long");
		goto out;
	}
	if (arm_list(&arm, path, apis) < 0) {
		log_err("%s", arm.error);
		goto out;
	}
	log_err("APIM gateway '%s': %zu APIs assigned (%u ARM reads, %u token requests); "
		"'source = azure-apim': this build reads Azure API Management but does not "
		"convert and install yet (docs/apim-sync.md, \"Status\")", a->conf.apim_gateway,
		json_object_array_length(apis), arm.reads, arm.token_requests);
	code = 2;
out:
	json_object_put(apis);
	arm_release(&arm);
	return code;
}
