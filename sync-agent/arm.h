/*
 * arm — the Azure side of `source = azure-apim` (docs/azure-apim.md): an Azure
 * AD token by the client-credentials flow, and reads of the APIM service
 * through Azure Resource Manager, on the agent's one curl handle (fetch.h).
 *
 *   struct arm arm;
 *   arm_init(&arm, &a->fetch, &a->conf);
 *   json_object *items = json_object_new_array();
 *   if (arm_list(&arm, "/gateways/gw1/apis", items) < 0) log(arm.error);
 *   ... arm.reads: ARM requests made so far ...
 *   arm_release(&arm);                       zeroes the token
 *
 * Token: POST {azure_authority}/{azure_tenant}/oauth2/v2.0/token with
 * grant_type=client_credentials, client_id, client_secret and scope
 * {arm_endpoint}/.default, form-encoded in the body. The access token is kept
 * until ARM_TOKEN_MARGIN_S before its expires_in; a 401 from ARM drops it and
 * the read is tried once more with a new one.
 *
 * Reads: {arm_endpoint}{apim_service}{path}?api-version={arm_api_version}
 * (path may hold its own query: '&' then joins). A list follows nextLink
 * until it is empty or absent, only on arm_endpoint's origin, at most
 * ARM_MAX_PAGES pages. 429 and 503 wait Retry-After (capped at
 * ARM_RETRY_CAP_S; absent: ARM_RETRY_DEFAULT_S) and retry, at most
 * ARM_RETRIES times per read. A sync that would pass ARM_MAX_READS fails.
 * Pacing: conf->arm_reads_per_s > 0 spaces the ARM requests (retries
 * included) at least 1000 / arm_reads_per_s ms apart, so a sync never reads
 * faster than that (ARM's own read limit is far above: docs/azure-apim.md).
 *
 * Secrets: the client secret and the token never reach a log line, an error
 * string or argv; their copies are zeroed on release.
 *
 * Errors: -1 with a one-line reason in arm->error (naming the path read, and
 * for the authority its "error" code), 0 otherwise.
 */
#ifndef HOSTGATE_ARM_H
#define HOSTGATE_ARM_H

#include <json-c/json.h>
#include <stdint.h>

#include "sync-agent/agentconf.h"
#include "sync-agent/fetch.h"

#define ARM_TOKEN_MAX 8192
#define ARM_TOKEN_MARGIN_S 300
#define ARM_MAX_PAGES 1000
#define ARM_MAX_READS 5000
#define ARM_RETRIES 3
#define ARM_RETRY_CAP_S 120
#define ARM_RETRY_DEFAULT_S 10
#define ARM_BODY_MAX (16u * 1024 * 1024)

struct arm {
	struct fetch *f;
	const struct agent_conf *conf;
	char auth[ARM_TOKEN_MAX + 32];	/* "Authorization: Bearer ..." (secret), "" when none */
	int64_t token_expires_ms;	/* CLOCK_MONOTONIC */
	int64_t last_read_ms;	/* CLOCK_MONOTONIC of the last ARM request, 0: none */
	unsigned reads;		/* ARM requests made (not the token's) */
	unsigned token_requests;
	char error[1024];
};

void arm_init(struct arm *arm, struct fetch *f, const struct agent_conf *conf);
/* Gets a token unless the one held is still good. Returns 0 or -1. */
int arm_token(struct arm *arm);
/* GETs path under the service: *out is the answer's JSON object (new
 * reference); *status its HTTP status (200, or 404 when absent: *out NULL).
 * Returns 0 or -1. */
int arm_get(struct arm *arm, const char *path, long *status, json_object **out);
/* POSTs an empty body to path (listSecrets, listValue): *out the answer
 * (its strings are secrets: the caller zeroes them). A 404 is an error.
 * Returns 0 or -1. */
int arm_post(struct arm *arm, const char *path, json_object **out);
/* Appends every "value" item of every page of the list at path to items.
 * Returns 0 or -1. */
int arm_list(struct arm *arm, const char *path, json_object *items);
void arm_release(struct arm *arm);

#endif
