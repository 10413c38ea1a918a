/*
 * tmpdir — the fixture of the unit tests that need files: a fresh directory
 * under /tmp (mode 0750) and the path of one file in it, removed afterwards
 * with everything a test made in it.
 *
 *   #define TMPDIR_FILE "config.json"      the file's name, before the include
 *   #include "tests/unit/tmpdir.h"
 *   cmocka_unit_test_setup_teardown(test_x, setup, teardown), and in test_x:
 *   struct fixture *f = *state;           f->dir, f->path
 */
#ifndef HOSTGATE_TEST_TMPDIR_H
#define HOSTGATE_TEST_TMPDIR_H

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct fixture {
	char dir[64];
	char path[128];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/hostgate-test.XXXXXX");
	if (!mkdtemp(f->dir) || chmod(f->dir, 0750) != 0) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/%s", f->dir, TMPDIR_FILE);
	*state = f;
	return 0;
}

/* Removes name (below the directory parent) and, for a directory,
 * everything in it; links are removed, never followed. */
static int remove_tree(int parent, const char *name)
{
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d;
	struct dirent *e;
	int rc = 0;

	if (fd < 0)
		return unlinkat(parent, name, 0);
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -1;
	}
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
		    remove_tree(dirfd(d), e->d_name) != 0)
			rc = -1;
	closedir(d);
	return unlinkat(parent, name, AT_REMOVEDIR) == 0 ? rc : -1;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int rc = remove_tree(AT_FDCWD, f->dir);

	free(f);
	return rc;
}

#endif
