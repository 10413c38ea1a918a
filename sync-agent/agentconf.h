/*
 * agentconf — agent.conf, the sync agent's own configuration, and the token.
 *
 *   struct agent_conf conf;
 *   char err[512];
 *   if (agentconf_load(&conf, "/etc/hostgate/agent.conf", err, sizeof(err)) < 0)
 *           fatal("%s", err);
 *   if (agentconf_read_token(&conf, err, sizeof(err)) < 0)
 *           fatal("%s", err);
 *   ... conf.token ...
 *   agentconf_release(&conf);              zeroes the token
 *
 * Format: "key = value" lines; blank lines and lines whose first non-blank
 * character is '#' are ignored (a '#' inside a value is part of it: URLs may
 * hold one). Whitespace around key and value is dropped. An unknown key, a key
 * given twice, a bad boolean (only true/false) or an integer out of range is an
 * error naming the file and line. Keys and defaults: shared/spec/commands-and-files.md.
 *
 * Ownership: conf owns its strings; the token lives in conf->token, the
 * Azure client secret in conf->client_secret (fixed buffers, zeroed by
 * agentconf_release and never logged).
 *
 * source = azure-apim: endpoint, token_file, public_key_file and report do not
 * apply and are refused when given; apim_service, apim_gateway, azure_tenant,
 * azure_client_id and azure_client_secret_file are required; gateway_id
 * defaults to apim_gateway and interval_s to 300; arm_reads_per_s (0-1000,
 * default 10, 0: unpaced) paces the ARM reads; arm_endpoint and
 * azure_authority must be https:// (http:// only with allow_insecure).
 *
 * Errors: 0, or -1 with a one-line message in err ("'FILE': line N: ...");
 * the caller exits 2.
 */
#ifndef HOSTGATE_AGENTCONF_H
#define HOSTGATE_AGENTCONF_H

#include <stddef.h>

#define AGENTCONF_TOKEN_MAX 1024

enum agentconf_scheme { AGENTCONF_HTTPS, AGENTCONF_HTTP, AGENTCONF_FILE };
/* where configuration comes from: a hostgate management endpoint, or an Azure
 * API Management service read through ARM (docs/azure-apim.md) */
enum agentconf_source { AGENTCONF_SRC_HOSTGATE, AGENTCONF_SRC_AZURE_APIM };

struct agent_conf {
	char *path;		/* the agent.conf read */
	char *endpoint;		/* without a trailing '/' */
	enum agentconf_scheme scheme;
	char *file_root;	/* file:// endpoints: the directory, else NULL */
	int allow_insecure;
	int report;		/* heartbeats and metrics */
	int log_syslog;
	char *gateway_id;
	char *token_file;
	char *public_key_file;	/* NULL: documents are not signature-checked */
	char *config_path;
	char *state_dir;
	long interval_s;
	long heartbeat_s;
	char *ca_file;		/* NULL: the system bundle */
	char token[AGENTCONF_TOKEN_MAX + 1];	/* secret: never log */
	size_t token_len;
	/* source = azure-apim (NULL/unused with the hostgate source) */
	enum agentconf_source source;
	char *source_name;	/* as written, for the parser */
	char *apim_service;	/* /subscriptions/S/resourceGroups/G/providers/Microsoft.ApiManagement/service/N */
	char *apim_gateway;
	char *azure_tenant;
	char *azure_client_id;
	char *azure_client_secret_file;
	char *arm_endpoint;	/* without a trailing '/'; default https://management.azure.com */
	char *azure_authority;	/* without a trailing '/'; default https://login.microsoftonline.com */
	char *arm_api_version;	/* default 2022-08-01 */
	char *gateway_file;	/* NULL: none */
	long arm_reads_per_s;	/* ARM reads a second at most (0: unpaced); default 10 */
	char client_secret[AGENTCONF_TOKEN_MAX + 1];	/* secret: never log */
	size_t client_secret_len;
};

/* Parses path into conf (conf need not be initialised). Returns 0 or -1. */
int agentconf_load(struct agent_conf *conf, const char *path, char *err, size_t errlen);
/* Reads conf->token_file into conf->token; refuses a file that its group or
 * others can read, one that is not a regular file, an empty token, or one with
 * control characters. A trailing newline is dropped. Returns 0 or -1. */
int agentconf_read_token(struct agent_conf *conf, char *err, size_t errlen);
/* source = azure-apim: reads conf->azure_client_secret_file into
 * conf->client_secret with the same checks as the token. Returns 0 or -1. */
int agentconf_read_client_secret(struct agent_conf *conf, char *err, size_t errlen);
/* Zeroes the token and the client secret and frees everything. */
void agentconf_release(struct agent_conf *conf);

#endif
