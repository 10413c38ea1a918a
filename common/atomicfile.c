#include "common/atomicfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define ATOMICFILE_PATH_MAX 4096

/* "{path}{suffix}" in a new allocation, NULL when too long or out of memory. */
static char *path_with(const char *path, const char *suffix)
{
	size_t n = strlen(path), m = strlen(suffix);
	char *s;

	if (n + m >= ATOMICFILE_PATH_MAX) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	s = malloc(n + m + 1);
	if (!s)
		return NULL;
	memcpy(s, path, n);
	memcpy(s + n, suffix, m + 1);
	return s;
}

/* Opens the directory that holds path. Returns the descriptor or -1. */
static int open_dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	char dir[ATOMICFILE_PATH_MAX];
	size_t n;

	if (!slash)
		return open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	n = (size_t)(slash - path);
	if (n == 0)
		n = 1;		/* "/file": the root */
	if (n >= sizeof(dir)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(dir, path, n);
	dir[n] = '\0';
	return open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

int atomicfile_begin(struct atomicfile *af, const char *path, mode_t mode, unsigned flags)
{
	int saved;

	af->fd = -1;
	af->dir_fd = -1;
	af->tmp_path = NULL;
	af->mode = mode;
	af->flags = flags;
	af->prepared = 0;
	af->step = "create";
	af->path = strdup(path);
	if (!af->path)
		goto fail;
	af->tmp_path = path_with(path, ".tmp.XXXXXX");
	if (!af->tmp_path)
		goto fail;
	af->dir_fd = open_dir_of(path);
	if (af->dir_fd < 0)
		goto fail;
	af->fd = mkstemp(af->tmp_path);
	if (af->fd < 0)
		goto fail;
	/* mkostemp is a GNU extension; nothing here execs in between */
	if (fcntl(af->fd, F_SETFD, FD_CLOEXEC) < 0) {
		saved = errno;
		atomicfile_release(af);
		af->step = "create";
		errno = saved;
		return -1;
	}
	return 0;
fail:
	saved = errno;
	free(af->tmp_path);
	af->tmp_path = NULL;	/* mkostemp failed: nothing to remove */
	atomicfile_release(af);
	af->step = "create";
	errno = saved;
	return -1;
}

int atomicfile_write(struct atomicfile *af, const void *buf, size_t len)
{
	const char *p = buf;

	af->step = "write";
	af->prepared = 0;
	if (af->fd < 0) {
		errno = EBADF;
		return -1;
	}
	while (len > 0) {
		ssize_t n = write(af->fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Links the current target to "{path}.prev" through a temporary name, so that
 * ".prev" is replaced in one rename. No target yet is fine. Returns 0 or -1. */
static int keep_prev(struct atomicfile *af)
{
	char suffix[40];
	char *link_path = NULL, *prev_path = NULL;
	unsigned char rnd[8];
	int rc = -1;

	prev_path = path_with(af->path, ".prev");
	if (!prev_path)
		goto out;
	for (int tries = 0; tries < 16; tries++) {
		if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
			goto out;
		snprintf(suffix, sizeof(suffix), ".tmp.p%02x%02x%02x%02x%02x%02x%02x%02x",
			 rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
		free(link_path);
		link_path = path_with(af->path, suffix);
		if (!link_path)
			goto out;
		af->step = "link";
		if (link(af->path, link_path) == 0)
			break;
		if (errno == ENOENT) {
			rc = 0;	/* nothing installed yet: no .prev */
			goto out;
		}
		if (errno != EEXIST)
			goto out;
		free(link_path);
		link_path = NULL;
	}
	if (!link_path) {
		errno = EEXIST;
		goto out;
	}
	af->step = "rename";
	if (rename(link_path, prev_path) < 0) {
		int saved = errno;

		unlink(link_path);
		errno = saved;
		goto out;
	}
	rc = 0;
out:
	free(link_path);
	free(prev_path);
	return rc;
}

int atomicfile_prepare(struct atomicfile *af)
{
	struct stat dst;

	if (af->fd < 0 || !af->tmp_path) {
		af->step = "commit";
		errno = EBADF;
		return -1;
	}
	af->step = "chmod";
	if (fchmod(af->fd, af->mode) < 0)
		return -1;
	if (af->flags & ATOMICFILE_DIR_GROUP) {
		struct stat fst;

		af->step = "chown";
		if (fstat(af->dir_fd, &dst) < 0 || fstat(af->fd, &fst) < 0)
			return -1;
		if (fst.st_gid != dst.st_gid && fchown(af->fd, (uid_t)-1, dst.st_gid) < 0)
			return -1;
	}
	af->step = "fsync";
	if (fsync(af->fd) < 0)
		return -1;
	af->prepared = 1;
	af->step = "";
	return 0;
}

int atomicfile_commit(struct atomicfile *af)
{
	if (!af->prepared && atomicfile_prepare(af) < 0)
		return -1;
	if (af->fd < 0 || !af->tmp_path) {
		af->step = "commit";
		errno = EBADF;
		return -1;
	}
	af->step = "close";
	if (close(af->fd) < 0) {
		af->fd = -1;
		return -1;
	}
	af->fd = -1;
	if ((af->flags & ATOMICFILE_KEEP_PREV) && keep_prev(af) < 0)
		return -1;
	af->step = "rename";
	if (rename(af->tmp_path, af->path) < 0)
		return -1;
	free(af->tmp_path);
	af->tmp_path = NULL;
	af->step = "fsync directory";
	if (fsync(af->dir_fd) < 0)
		return -1;
	af->step = "";
	return 0;
}

void atomicfile_release(struct atomicfile *af)
{
	int saved = errno;

	if (af->fd >= 0)
		close(af->fd);
	if (af->tmp_path)
		unlink(af->tmp_path);
	if (af->dir_fd >= 0)
		close(af->dir_fd);
	free(af->tmp_path);
	free(af->path);
	af->fd = -1;
	af->dir_fd = -1;
	af->tmp_path = NULL;
	af->path = NULL;
	errno = saved;
}

int atomicfile_replace(const char *path, const void *buf, size_t len, mode_t mode,
		       unsigned flags, const char **step)
{
	struct atomicfile af = ATOMICFILE_INIT;
	int rc = -1;

	if (atomicfile_begin(&af, path, mode, flags) < 0)
		goto out;
	if (atomicfile_write(&af, buf, len) < 0)
		goto out;
	if (atomicfile_commit(&af) < 0)
		goto out;
	rc = 0;
out:
	if (step)
		*step = af.step;
	atomicfile_release(&af);
	return rc;
}

int atomicfile_clean(const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	char prefix[512];
	struct dirent *de;
	DIR *dir;
	int dfd, n = 0;
	size_t plen;

	if (snprintf(prefix, sizeof(prefix), "%s.tmp.", base) >= (int)sizeof(prefix)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	plen = strlen(prefix);
	dfd = open_dir_of(path);
	if (dfd < 0)
		return -1;
	dir = fdopendir(dfd);
	if (!dir) {
		close(dfd);
		return -1;
	}
	while ((de = readdir(dir)) != NULL) {
		if (strncmp(de->d_name, prefix, plen) != 0)
			continue;
		if (unlinkat(dirfd(dir), de->d_name, 0) == 0)
			n++;
	}
	closedir(dir);
	return n;
}
