/*
 * reload — the current configuration of this process, re-read when its file
 * changes (checked at most once a second, on the request path, by stat(2)).
 *
 *   reload_init(&r, path);
 *   per request: gw = reload_current(&r, now_ms);   NULL: no configuration yet
 *
 * A file that fails to load is logged once (with every error's JSON path) and
 * the last good gateway stays; it is tried again when the file changes again.
 * The last good document is also kept, byte for byte, in
 * "{state_dir}/config.last-good.json": a process that never loaded a good one
 * (a CGI request, a process started after a bad file landed) serves that
 * instead of answering 503.
 * The returned gateway stays valid until the next reload_current() call (one
 * request at a time per process), which may free it.
 */
#ifndef HOSTGATE_RELOAD_H
#define HOSTGATE_RELOAD_H

#include <stdint.h>
#include <sys/stat.h>

#include "policy/gateway.h"

struct reload {
	const char *path;
	char last_good[4096];	/* "{state_dir}/config.last-good.json", "" when too long */
	struct gateway *gw;
	struct stat loaded;	/* identity of the file gw came from */
	struct stat failed;	/* identity of the last file that failed */
	int64_t last_check_ms;
};

void reload_init(struct reload *r, const char *path, const char *state_dir);
/* Returns the gateway to use for a request starting at now_ms (monotonic). */
const struct gateway *reload_current(struct reload *r, int64_t now_ms);
/* Seconds since the loaded file was written (its mtime), or -1. */
int64_t reload_config_age(const struct reload *r);
void reload_release(struct reload *r);

#endif
