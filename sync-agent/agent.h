/*
 * agent — what one hostgate-sync process carries between syncs, shared by its
 * parts: main.c (command line, lock, loop), sync.c (one configuration sync),
 * state.c (the agent's own files), heartbeat.c, ship.c (metrics).
 *
 * Files: the agent writes only the directory that holds config_path (the
 * configuration directory: its own user, the web server's group, 0750), where
 * the web server's user cannot forge what the agent or the app later trust
 * (docs/deploying.md). From state_dir (the app's, written by the web server's
 * user) it only reads the metrics the app records.
 *
 *   agent_url(a, "configuration", url, sizeof(url));
 *           -> "{endpoint}/gateways/{gateway_id}/configuration"
 *
 * Ownership: the agent owns its conf, fetch handle and key; main.c sets them up
 * and tears them down. Nothing here is a secret except conf.token and the copy
 * inside fetch (both zeroed on release).
 */
#ifndef HOSTGATE_AGENT_H
#define HOSTGATE_AGENT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "sync-agent/agentconf.h"
#include "sync-agent/fetch.h"

#define AGENT_ERROR_MAX 1024
#define AGENT_URL_MAX 4096
#define AGENT_INSTANCE_LEN 32	/* hex digits */

struct evp_pkey_st;

struct agent {
	struct agent_conf conf;
	struct fetch fetch;
	struct evp_pkey_st *key;	/* NULL: no signature check */
	int allow_rollback;
	char instance_id[AGENT_INSTANCE_LEN + 1];
	struct timespec started;	/* CLOCK_MONOTONIC, for uptime_s */

	/* the installed document (what config_path holds) */
	int installed;			/* 0: nothing valid installed */
	int64_t generation;
	unsigned char sha256[32];
	char etag[FETCH_ETAG_MAX];	/* "" when none */

	/* the outcome of syncs so far */
	time_t last_success;		/* 0: never */
	char last_error[AGENT_ERROR_MAX];	/* "" after a success */
};

/* Writes "{endpoint}/gateways/{gateway_id}/{leaf}" into buf. Returns 0 or -1
 * (too long). */
int agent_url(const struct agent *a, const char *leaf, char *buf, size_t len);
/* Writes "{the directory of config_path}/{name}" into buf: where the agent
 * keeps its own files. Returns 0 or -1 (too long). */
int agent_file(const struct agent *a, const char *name, char *buf, size_t len);
/* Formats t as RFC 3339 UTC ("2025-01-31T12:00:00Z"); buf of at least 32. */
void agent_rfc3339(time_t t, char *buf, size_t len);

#endif
