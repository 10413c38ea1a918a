/*
 * sync — one configuration sync: fetch the document, check its signature (when
 * a public key is configured), validate it with the very loader the app uses
 * (gw_load_buffer), refuse a rollback, install it atomically, and record the
 * outcome in sync-status.json.
 *
 *   enum sync_result r = sync_run(a);
 *
 * Order of checks: HTTP status (304: unchanged; 401/403: the token); signature
 * (header, else {endpoint}/gateways/{id}/configuration.sig); the same bytes as
 * installed: unchanged; validation; generation (lower, or equal with other
 * bytes: refused unless a->allow_rollback); install (the old document kept as
 * "{config_path}.prev", mode 0640, the directory's group).
 *
 * On failure the installed document stays, a->last_error says why (also
 * logged at error level), and the status file says so. Success clears
 * a->last_error and sets a->last_success.
 */
#ifndef HOSTGATE_SYNC_H
#define HOSTGATE_SYNC_H

#include "sync-agent/agent.h"

enum sync_result {
	SYNC_INSTALLED,		/* a new document is in place */
	SYNC_UNCHANGED,		/* the installed document is current */
	SYNC_FAILED,		/* the installed document stays; see a->last_error */
	SYNC_STOPPED		/* interrupted by SIGTERM/SIGINT; nothing changed */
};

enum sync_result sync_run(struct agent *a);

#endif
