#include "common/fileread.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FILEREAD_PATH_MAX 4096

int file_read_stat(const char *path, size_t max, char **bufp, size_t *lenp, struct stat *stp)
{
	struct stat st;
	char *buf = NULL;
	size_t n = 0, cap;
	int fd, saved, flags;

	/* O_NONBLOCK: opening a FIFO for reading would wait for a writer */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0)
		goto fail;
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		goto fail;
	}
	if ((unsigned long long)st.st_size > max) {
		errno = EFBIG;
		goto fail;
	}
	/* a regular file: blocking reads again, so a short read means nothing */
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
		goto fail;
	cap = (size_t)st.st_size + 1;
	buf = malloc(cap);
	if (!buf)
		goto fail;
	for (;;) {
		ssize_t r;

		if (n + 1 == cap) {
			char *p;

			/* the file grew since fstat */
			if (cap > max) {
				char extra;

				r = read(fd, &extra, 1);
				if (r == 0)
					break;
				errno = r < 0 ? errno : EFBIG;
				goto fail;
			}
			cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
			p = realloc(buf, cap);
			if (!p)
				goto fail;
			buf = p;
		}
		r = read(fd, buf + n, cap - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			goto fail;
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	*bufp = buf;
	*lenp = n;
	if (stp)
		*stp = st;
	return 0;
fail:
	saved = errno;
	free(buf);
	close(fd);
	errno = saved;
	return -1;
}

int file_read(const char *path, size_t max, char **bufp, size_t *lenp)
{
	return file_read_stat(path, max, bufp, lenp, NULL);
}

/* The directory that holds path, into dir. Returns 0 or -1 (too long). */
static int dir_of(const char *path, char *dir, size_t len)
{
	const char *slash = strrchr(path, '/');
	size_t n;

	if (!slash) {
		snprintf(dir, len, ".");
		return 0;
	}
	n = slash == path ? 1 : (size_t)(slash - path);
	if (n >= len)
		return -1;
	memcpy(dir, path, n);
	dir[n] = '\0';
	return 0;
}

enum file_trust file_trust(const char *path, const struct stat *st, char *why, size_t whylen)
{
	char dir[FILEREAD_PATH_MAX];
	struct stat dst;
	uid_t me = geteuid();

	if (!S_ISREG(st->st_mode)) {
		snprintf(why, whylen, "not a regular file");
		return FILE_UNSAFE;
	}
	if (st->st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(why, whylen, "group- or world-writable (mode %04o)",
			 (unsigned)(st->st_mode & 07777));
		return FILE_UNSAFE;
	}
	if (dir_of(path, dir, sizeof(dir)) < 0) {
		snprintf(why, whylen, "its directory name is too long");
		return FILE_UNSAFE;
	}
	if (stat(dir, &dst) < 0) {
		snprintf(why, whylen, "cannot examine its directory '%s': %s", dir,
			 strerror(errno));
		return FILE_UNSAFE;
	}
	/* whoever may write the directory may rename another file over this one */
	if (!S_ISDIR(dst.st_mode) || (dst.st_mode & (S_IWGRP | S_IWOTH))) {
		snprintf(why, whylen, "its directory '%s' is group- or world-writable (mode %04o)",
			 dir, (unsigned)(dst.st_mode & 07777));
		return FILE_UNSAFE;
	}
	if (me != 0 && st->st_uid == me) {
		snprintf(why, whylen, "it belongs to this process's own user (uid %ld), which "
			 "can replace it", (long)me);
		return FILE_OWN;
	}
	if (me != 0 && dst.st_uid == me) {
		snprintf(why, whylen, "its directory '%s' belongs to this process's own user "
			 "(uid %ld), which can replace it", dir, (long)me);
		return FILE_OWN;
	}
	why[0] = '\0';
	return FILE_TRUSTED;
}
