/*
 * atomicfile — replace a file so that a reader, and a crash or SIGKILL at any
 * instant, sees either the whole old content or the whole new one, never a mix
 * and never no file at all. git's lockfile.h pattern: write a temporary file in
 * the target's directory, fsync it, rename it over the target, fsync the
 * directory. There is no lock here: writers that can race hold their own (the
 * agent holds sync.lock beside the configuration).
 *
 *   struct atomicfile af = ATOMICFILE_INIT;
 *   if (atomicfile_begin(&af, "/var/lib/hostgate/config/config.json", 0640,
 *                        ATOMICFILE_DIR_GROUP | ATOMICFILE_KEEP_PREV) < 0)
 *           log_err("cannot install '%s': %s: %s", path, af.step, strerror(errno));
 *   atomicfile_write(&af, buf, len);           any number of times
 *   atomicfile_prepare(&af);                   optional: mode, group, fsync now
 *   atomicfile_commit(&af);                    the target now holds buf
 *   atomicfile_release(&af);                   always; removes an uncommitted temporary
 *
 * or in one call: atomicfile_replace(path, buf, len, mode, flags, &step).
 *
 * atomicfile_prepare() is for a caller that needs the new file's final
 * identity before it is visible: after it, fstat(af.fd) shows the mode, group,
 * inode, size and mtime the target will have (a rename changes none of them),
 * which the agent records in the configuration's image before it renames the
 * document (sync-agent/sync.c).
 *
 * The temporary is "{path}.tmp.XXXXXX" (mode 0600 until committed). With
 * ATOMICFILE_KEEP_PREV the old target is first hard-linked to "{path}.prev"
 * (through a temporary link, so ".prev" too is always whole); the target is
 * never absent in between. With ATOMICFILE_DIR_GROUP the new file gets the
 * directory's group (so a 0640 file is readable by the web server's group when
 * the directory belongs to it). The mode is set with fchmod, so the umask does
 * not matter.
 *
 * Ownership: af owns its temporary path and descriptor until
 * atomicfile_release(). path is copied.
 *
 * Errors: every function returns 0 or -1 with errno set and af->step naming the
 * step that failed ("create", "write", "chmod", "chown", "fsync", "close", "link",
 * "rename", "fsync directory"). After a failure the target is untouched (a
 * failed directory fsync after the rename is the exception: the new content is
 * in place but may not survive a power cut).
 */
#ifndef HOSTGATE_ATOMICFILE_H
#define HOSTGATE_ATOMICFILE_H

#include <stddef.h>
#include <sys/types.h>

#define ATOMICFILE_DIR_GROUP 0x1u	/* chown the new file to the directory's group */
#define ATOMICFILE_KEEP_PREV 0x2u	/* keep the old target as "{path}.prev" */

struct atomicfile {
	int fd;			/* the temporary, -1 when none */
	int dir_fd;		/* the target's directory */
	char *path;		/* the target */
	char *tmp_path;		/* the temporary, NULL once committed or removed */
	mode_t mode;
	unsigned flags;
	const char *step;	/* the step that failed, for messages */
	int prepared;		/* mode, group set and fsynced since the last write */
};
#define ATOMICFILE_INIT { -1, -1, NULL, NULL, 0, 0, "", 0 }

/* Creates the temporary next to path. Returns 0, or -1 (nothing left behind). */
int atomicfile_begin(struct atomicfile *af, const char *path, mode_t mode, unsigned flags);
/* Appends len bytes to the temporary (retries short writes). Returns 0 or -1. */
int atomicfile_write(struct atomicfile *af, const void *buf, size_t len);
/* Sets the temporary's mode and group and fsyncs it; the descriptor stays open
 * (fstat it for the target's identity). Returns 0 or -1. */
int atomicfile_prepare(struct atomicfile *af);
/* Prepares (unless done since the last write), keeps .prev if asked, renames
 * the temporary over the target, fsyncs the directory. Returns 0, or -1 (call
 * atomicfile_release). */
int atomicfile_commit(struct atomicfile *af);
/* Closes and removes an uncommitted temporary, frees af; af can be begun again. */
void atomicfile_release(struct atomicfile *af);

/* begin + write + commit + release. On -1, *step (when not NULL) names the step. */
int atomicfile_replace(const char *path, const void *buf, size_t len, mode_t mode,
		       unsigned flags, const char **step);

/* Removes temporaries ("{path}.tmp.*") that a killed writer left behind. Only
 * for a caller that holds the lock all writers of path take. Returns the number
 * removed, or -1 when the directory cannot be read. */
int atomicfile_clean(const char *path);

#endif
