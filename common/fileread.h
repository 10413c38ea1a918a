/*
 * fileread — a whole regular file into memory, with a cap set by the caller
 * (both binaries read documents, state files and outbox entries this way).
 *
 *   char *buf; size_t len;
 *   if (file_read(path, GW_MAX_DOCUMENT_BYTES, &buf, &len) < 0) ... errno ...
 *   ... free(buf);
 *
 * Ownership: *buf is a new NUL-terminated buffer the caller frees (zeroing it
 * first when it may hold secrets).
 * Errors: 0, or -1 with errno (EFBIG when larger than max, EINVAL when not a
 * regular file); nothing to free then.
 */
#ifndef HOSTGATE_FILEREAD_H
#define HOSTGATE_FILEREAD_H

#include <stddef.h>

/* Reads at most max bytes of path. Returns 0, or -1 with errno. */
int file_read(const char *path, size_t max, char **buf, size_t *len);

#endif
