/*
 * fileread — a whole regular file into memory, with a cap set by the caller
 * (both binaries read documents, state files and outbox entries this way), and
 * the trust rule for files another user could have put there.
 *
 *   char *buf; size_t len; struct stat st;
 *   if (file_read(path, GW_MAX_DOCUMENT_BYTES, &buf, &len) < 0) ... errno ...
 *   if (file_read_stat(path, max, &buf, &len, &st) < 0) ... errno ...
 *   if (file_trust(path, &st, why, sizeof(why)) == FILE_UNSAFE) ... refuse ...
 *   ... free(buf);
 *
 * The open never follows a symbolic link (ELOOP), never blocks (a FIFO or a
 * device opens at once and is then refused with EINVAL: not a regular file),
 * and never leaks into a child (O_CLOEXEC): a hostile co-tenant who swaps a
 * file for a link to /dev/zero or a FIFO gets an error, not a hung or
 * exhausted worker.
 *
 * Ownership: *buf is a new NUL-terminated buffer the caller frees (zeroing it
 * first when it may hold secrets).
 * Errors: 0, or -1 with errno (EFBIG when larger than max, EINVAL when not a
 * regular file, ELOOP when a symbolic link); nothing to free then.
 */
#ifndef HOSTGATE_FILEREAD_H
#define HOSTGATE_FILEREAD_H

#include <stddef.h>
#include <sys/stat.h>

/* Reads at most max bytes of path. Returns 0, or -1 with errno. */
int file_read(const char *path, size_t max, char **buf, size_t *len);
/* file_read, also giving the fstat(2) of what was read (its identity, owner
 * and mode: no race with a later stat by path). Returns 0, or -1 with errno. */
int file_read_stat(const char *path, size_t max, char **buf, size_t *len, struct stat *st);

/*
 * Whether a file that decides what a process does (the configuration, the
 * agent's status) can be trusted, given st (from file_read_stat) and the
 * directory that holds path (stat(2)ed here):
 *   FILE_UNSAFE   not a regular file, or the file or its directory is group-
 *                 or world-writable, or the directory cannot be examined:
 *                 refuse it (why says which)
 *   FILE_OWN      the file or its directory belongs to this process's own
 *                 non-root user: anything running as this user (a PHP script
 *                 on the same web server) can replace it; use it, but warn
 *                 (why says which) — on single-user hosting it is the only
 *                 layout there is
 *   FILE_TRUSTED  written only by another user (the agent's, root)
 */
enum file_trust { FILE_TRUSTED, FILE_OWN, FILE_UNSAFE };

enum file_trust file_trust(const char *path, const struct stat *st, char *why, size_t whylen);

#endif
