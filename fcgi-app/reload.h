/*
 * reload — the current configuration of this process, re-read when its file
 * changes (checked at most once a second, on the request path, by lstat(2)).
 *
 *   reload_init(&r, path);
 *   per request: gw = reload_current(&r, now_ms);   NULL: no configuration yet
 *
 * A file that fails to load is logged once (with every error's JSON path) and
 * the last good gateway stays; it is tried again when the file or its
 * directory's mode or owner changes (so fixing a refused mode takes effect).
 *
 * Trust (docs/deploying.md, "File permissions"): the configuration directory
 * is written only by the agent or an admin; the app never writes there and
 * reads nothing from its own state directory that decides what it serves. A
 * file is opened without following symbolic links and without blocking
 * (common/fileread.h), and refused when it is not a regular file or it or
 * its directory is group- or world-writable. One that this process's own
 * non-root user could replace is loaded, with a warning once per process.
 *
 * Fallback: when the file fails to load, "{path}.prev" — the document the
 * agent replaced, kept in the same trusted directory (commands-and-files.md)
 * — is loaded under the same rules and used if this process has no gateway
 * (a CGI request, a worker started after a bad file landed) or only an older
 * generation than it. A process never moves to an older generation this way.
 *
 * The image (policy/image.h): "{path}.image", written beside the document by
 * `hostgate-fcgi --compile` or the agent. When it was compiled from the
 * document as it is now (its recorded identity: device, inode, size, mtime),
 * is intact and is trusted — the stricter rule: FILE_TRUSTED only, an image
 * the process's own user could have written is never used — the process maps
 * it instead of compiling the document: O(1), whatever the document's size.
 * Otherwise the document is compiled in memory as before, with a warning once
 * per document when the image exists but is stale, damaged, foreign or not
 * trusted, or when the document is big enough for it to matter (a CGI
 * request pays the compile every time). When the document does not load and
 * this process has nothing, a stale but intact image (compiled from a
 * document that loaded) is served before "{path}.prev". An image stands for
 * its document: a document the trust rule refuses (group-writable...) is not
 * served through its image either, even when the image itself is trusted.
 *
 * The returned gateway stays valid until the next reload_current(),
 * reload_recover() or reload_tick() call, which may free it: a request that
 * waits (other requests of the process run meanwhile, common/fiber.h) holds it
 * with gw_hold() first.
 */
#ifndef HOSTGATE_RELOAD_H
#define HOSTGATE_RELOAD_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "policy/gateway.h"

#define RELOAD_PATH_MAX 4096

struct reload {
	const char *path;
	char prev[RELOAD_PATH_MAX];	/* "{path}.prev", "" when too long */
	char image[RELOAD_PATH_MAX];	/* "{path}.image", "" when too long */
	struct gateway *gw;
	struct stat loaded;	/* identity of the document gw came from */
	int from_image;		/* gw was opened from the image */
	int from_image_interim;	/* ...a stale one, until the document loads */
	struct stat image_st;	/* then: the image's identity */
	struct stat image_bad;	/* the last image refused (logged once) */
	struct stat image_bad_doc;	/* and the document it was judged against */
	struct stat failed;	/* identity of the last file that failed */
	struct stat failed_dir;	/* its directory then: a chmod there retries it */
	int warned_own;		/* the "own user can replace it" warning was logged */
	int64_t last_check_ms;
	/* A long-lived process (a FastCGI worker) that already serves a
	 * configuration loads a changed document in a thread of its own; the
	 * request that started it waits up to RELOAD_WAIT_MS (a small document
	 * is done by then), later ones are served by the old configuration
	 * until the worker swaps, between requests. */
	/* for the health path's details: the last load's first error ("" when
	 * the document loaded) and why the image is not used ("" when it is) */
	char error[512];
	char image_note[512];
	int background;
	struct reload_job *job;	/* the load under way, NULL: none */
	pthread_t thread;
};

void reload_init(struct reload *r, const char *path);
/* Returns the gateway to use for a request starting at now_ms (monotonic).
 * A FastCGI worker also calls it between requests, so that the next request
 * finds a changed configuration already in place. */
const struct gateway *reload_current(struct reload *r, int64_t now_ms);
/* For a process that serves many requests at once (fcgi-app/front.h), on a
 * fiber of its own: does the check a request would (reload_current) as
 * soon as one is due, so that an idle process moves to a new document too,
 * and waits for a load in a thread to finish and takes it. Returns how many
 * ms until the next check is due. */
int64_t reload_tick(struct reload *r);
/* The gateway's image turned out damaged (route_match said
 * ROUTE_UNAVAILABLE): logs why, never uses that image again, and loads the
 * document now. Returns the gateway to use (possibly the same, when nothing
 * else loads). */
const struct gateway *reload_recover(struct reload *r, int64_t now_ms);
/* Seconds since the loaded file was written (its mtime), or -1. */
int64_t reload_config_age(const struct reload *r);
/* Reads "{the configuration's directory}/name", at most max bytes, under the
 * configuration's trust rule: for what the agent writes there for the app
 * (sync-status.json). Returns 0 with *buf (NUL-terminated, the caller frees),
 * or -1 with errno (EPERM: refused by the trust rule). */
int reload_read_beside(const struct reload *r, const char *name, size_t max, char **buf,
		       size_t *len);
void reload_release(struct reload *r);

#endif
