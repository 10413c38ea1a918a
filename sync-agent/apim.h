/*
 * apim — `source = azure-apim` (docs/azure-apim.md): the agent follows an
 * Azure API Management service through ARM (arm.h).
 *
 *   enum sync_result r = apim_attempt(a);    sync_run calls it
 *
 * One sync (called by sync_run for this source): a token, every read of the
 * service (a failure anywhere fails the whole sync: a half-read service is
 * never converted), the conversion with the importer's library (an API that
 * cannot be carried over is left out whole), then sync_install_buffer. The
 * document is numbered with the installed generation first: when its bytes
 * are the installed ones nothing changed; otherwise it gets the next
 * generation and is installed. APIs left out make the result SYNC_FAILED
 * after the install, a->last_error naming them (--once exits 1; the status
 * file says so).
 *
 * Reads (docs/azure-apim.md, "Reads"): the gateway's APIs (each item is the
 * API's contract), their operations and policies, the global policy,
 * products and their APIs (the policy only of those reaching a served API),
 * subscriptions (listSecrets only for those reaching something served and
 * new or whose list item's "etag" differs from the one stored with their keys
 * in apim-keys.json beside config_path, 0600, written after every sync whose
 * reads all succeeded; no etag, or a file missing or malformed: read again),
 * policy fragments, named values (listValue only for a secret or Key Vault
 * one a policy uses), backends, version sets. Keys and secret values are
 * zeroed before they are freed.
 */
#ifndef HOSTGATE_APIM_H
#define HOSTGATE_APIM_H

#include "sync-agent/agent.h"
#include "sync-agent/sync.h"

enum sync_result apim_attempt(struct agent *a);

#endif
