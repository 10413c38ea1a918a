/*
 * sync — one configuration sync: fetch the document, check its signature (when
 * a public key is configured), validate and compile it into its image with the
 * very loader the app uses (image_compile_buffer, which validates as
 * gw_load_buffer does), refuse a rollback, install the image and then the
 * document atomically, and record the outcome in sync-status.json.
 *
 *   enum sync_result r = sync_run(a);
 *
 * Order of checks: HTTP status (304: unchanged; 401/403: the token); signature
 * (header, else {endpoint}/gateways/{id}/configuration.sig); the same bytes as
 * installed: unchanged (then the image is checked, and written again when it
 * is missing, stale, foreign or damaged); validation and compile; generation
 * (lower, or equal with other bytes: refused unless a->allow_rollback);
 * install: "{config_path}.image", then the document (the old one kept as
 * "{config_path}.prev"), both mode 0640 and the directory's group. A SIGKILL
 * at any moment leaves the old document and image, or the new ones, or the
 * new image beside the old document (stale: the app compiles the document in
 * memory), never a torn file.
 *
 * On failure the installed document stays, a->last_error says why (also
 * logged at error level), and the status file says so. The exception is an
 * image that cannot be written: the document is installed without it (the
 * app compiles it in memory, slower), and that is reported as a failure so an
 * operator sees it. Success clears a->last_error and sets a->last_success.
 */
#ifndef HOSTGATE_SYNC_H
#define HOSTGATE_SYNC_H

#include "sync-agent/agent.h"

enum sync_result {
	SYNC_INSTALLED,		/* a new document is in place */
	SYNC_UNCHANGED,		/* the installed document is current */
	SYNC_FAILED,		/* the installed document stays (or was installed
				 * without its image); see a->last_error */
	SYNC_STOPPED		/* interrupted by SIGTERM/SIGINT; nothing changed */
};

enum sync_result sync_run(struct agent *a);

/* For a document the agent made itself (source = azure-apim, apim.h): the
 * same checks and install as a fetched one (validation, generation, image,
 * atomic install, state), from len bytes at buf. SYNC_UNCHANGED when they are
 * the installed bytes. */
enum sync_result sync_install_buffer(struct agent *a, const char *buf, size_t len);

#endif
