/* common/atomicfile: replace, .prev, mode and group, rollback, clean-up. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/atomicfile.h"

#define TMPDIR_FILE "config.json"
#include "tests/unit/tmpdir.h"

/* Reads a whole small file into buf; returns its length or -1. */
static ssize_t slurp(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

/* Counts directory entries whose name starts with prefix. */
static int count_prefixed(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			n++;
	}
	closedir(d);
	return n;
}

static void test_replace_creates_with_mode(void **state)
{
	struct fixture *f = *state;
	const char *step = NULL;
	char buf[64];
	struct stat st;
	mode_t old = umask(077);

	assert_int_equal(atomicfile_replace(f->path, "one", 3, 0640, 0, &step), 0);
	umask(old);
	assert_int_equal(slurp(f->path, buf, sizeof(buf)), 3);
	assert_string_equal(buf, "one");
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);	/* fchmod: the umask does not matter */
	assert_int_equal(count_prefixed(f->dir, "config.json.tmp."), 0);
}

/* prepare shows the target's final identity before it exists, and the
 * rename keeps it: the agent records it in the image before the rename */
static void test_prepare_gives_final_identity(void **state)
{
	struct fixture *f = *state;
	struct atomicfile af = ATOMICFILE_INIT;
	struct stat before, after;
	mode_t old = umask(077);

	assert_int_equal(atomicfile_begin(&af, f->path, 0640, ATOMICFILE_KEEP_PREV), 0);
	umask(old);
	assert_int_equal(atomicfile_write(&af, "one", 3), 0);
	assert_int_equal(atomicfile_prepare(&af), 0);
	assert_int_equal(fstat(af.fd, &before), 0);
	assert_int_equal(before.st_mode & 07777, 0640);
	assert_int_equal(access(f->path, F_OK), -1);	/* not visible yet */
	assert_int_equal(atomicfile_commit(&af), 0);
	atomicfile_release(&af);
	assert_int_equal(stat(f->path, &after), 0);
	assert_true(after.st_ino == before.st_ino && after.st_dev == before.st_dev);
	assert_int_equal(after.st_size, 3);
	assert_true(after.st_mtim.tv_sec == before.st_mtim.tv_sec &&
		    after.st_mtim.tv_nsec == before.st_mtim.tv_nsec);
	assert_int_equal(after.st_mode & 07777, 0640);
	assert_int_equal(count_prefixed(f->dir, "config.json.tmp."), 0);
}

static void test_keep_prev(void **state)
{
	struct fixture *f = *state;
	char prev[160], buf[64];

	snprintf(prev, sizeof(prev), "%s.prev", f->path);
	assert_int_equal(atomicfile_replace(f->path, "one", 3, 0640, ATOMICFILE_KEEP_PREV, NULL), 0);
	assert_int_equal(access(prev, F_OK), -1);	/* nothing was installed before */
	assert_int_equal(atomicfile_replace(f->path, "two", 3, 0640, ATOMICFILE_KEEP_PREV, NULL), 0);
	assert_int_equal(slurp(prev, buf, sizeof(buf)), 3);
	assert_string_equal(buf, "one");
	assert_int_equal(atomicfile_replace(f->path, "three", 5, 0640, ATOMICFILE_KEEP_PREV, NULL), 0);
	assert_int_equal(slurp(prev, buf, sizeof(buf)), 3);
	assert_string_equal(buf, "two");
	assert_int_equal(slurp(f->path, buf, sizeof(buf)), 5);
	assert_string_equal(buf, "three");
	assert_int_equal(count_prefixed(f->dir, "config.json.tmp."), 0);
}

static void test_without_keep_prev_no_prev(void **state)
{
	struct fixture *f = *state;
	char prev[160];

	snprintf(prev, sizeof(prev), "%s.prev", f->path);
	assert_int_equal(atomicfile_replace(f->path, "one", 3, 0600, 0, NULL), 0);
	assert_int_equal(atomicfile_replace(f->path, "two", 3, 0600, 0, NULL), 0);
	assert_int_equal(access(prev, F_OK), -1);
}

static void test_release_without_commit_leaves_target(void **state)
{
	struct fixture *f = *state;
	struct atomicfile af = ATOMICFILE_INIT;
	char buf[64];

	assert_int_equal(atomicfile_replace(f->path, "old", 3, 0640, 0, NULL), 0);
	assert_int_equal(atomicfile_begin(&af, f->path, 0640, ATOMICFILE_KEEP_PREV), 0);
	assert_int_equal(atomicfile_write(&af, "half-writ", 9), 0);
	assert_int_equal(count_prefixed(f->dir, "config.json.tmp."), 1);
	atomicfile_release(&af);
	assert_int_equal(count_prefixed(f->dir, "config.json.tmp."), 0);
	assert_int_equal(slurp(f->path, buf, sizeof(buf)), 3);
	assert_string_equal(buf, "old");
	/* the struct can be used again */
	assert_int_equal(atomicfile_begin(&af, f->path, 0640, 0), 0);
	assert_int_equal(atomicfile_write(&af, "new", 3), 0);
	assert_int_equal(atomicfile_commit(&af), 0);
	atomicfile_release(&af);
	assert_int_equal(slurp(f->path, buf, sizeof(buf)), 3);
	assert_string_equal(buf, "new");
}

static void test_begin_fails_in_missing_directory(void **state)
{
	struct fixture *f = *state;
	struct atomicfile af = ATOMICFILE_INIT;
	char path[200];
	const char *step = NULL;

	snprintf(path, sizeof(path), "%s/no/such/file", f->dir);
	assert_int_equal(atomicfile_begin(&af, path, 0640, 0), -1);
	assert_int_equal(errno, ENOENT);
	assert_string_equal(af.step, "create");
	atomicfile_release(&af);
	assert_int_equal(atomicfile_replace(path, "x", 1, 0640, 0, &step), -1);
	assert_string_equal(step, "create");
}

static void test_rename_failure_keeps_target(void **state)
{
	struct fixture *f = *state;
	char target[160];
	const char *step = NULL;

	/* a directory in the target's place: rename(2) fails, nothing is lost */
	snprintf(target, sizeof(target), "%s/sub", f->dir);
	assert_int_equal(mkdir(target, 0700), 0);
	assert_int_equal(atomicfile_replace(target, "x", 1, 0640, 0, &step), -1);
	assert_string_equal(step, "rename");
	assert_int_equal(count_prefixed(f->dir, "sub.tmp."), 0);
}

static void test_dir_group(void **state)
{
	struct fixture *f = *state;
	struct stat st;
	gid_t other = getegid() == 0 ? 4242 : getegid();

	/* only root can hand the directory to another group */
	if (geteuid() == 0)
		assert_int_equal(chown(f->dir, (uid_t)-1, other), 0);
	assert_int_equal(atomicfile_replace(f->path, "g", 1, 0640, ATOMICFILE_DIR_GROUP, NULL), 0);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_gid, other);
}

static void test_large_write(void **state)
{
	struct fixture *f = *state;
	size_t n = 3u * 1024 * 1024 + 17;
	char *big = malloc(n);
	struct stat st;

	assert_non_null(big);
	memset(big, 'z', n);
	assert_int_equal(atomicfile_replace(f->path, big, n, 0640, 0, NULL), 0);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal((size_t)st.st_size, n);
	free(big);
}

static void test_clean_removes_only_temporaries(void **state)
{
	struct fixture *f = *state;
	char p[200];
	int fd;
	static const char *const names[] = { "config.json.tmp.AAAAAA", "config.json.tmp.pdeadbeef",
					     "config.json.prev", "config.json.tmpx", "other.tmp.A" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", f->dir, names[i]);
		fd = open(p, O_WRONLY | O_CREAT, 0600);
		assert_true(fd >= 0);
		close(fd);
	}
	assert_int_equal(atomicfile_clean(f->path), 2);
	assert_int_equal(count_prefixed(f->dir, "config.json.tmp."), 0);
	snprintf(p, sizeof(p), "%s/config.json.prev", f->dir);
	assert_int_equal(access(p, F_OK), 0);
	snprintf(p, sizeof(p), "%s/config.json.tmpx", f->dir);
	assert_int_equal(access(p, F_OK), 0);
	snprintf(p, sizeof(p), "%s/other.tmp.A", f->dir);
	assert_int_equal(access(p, F_OK), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_replace_creates_with_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prepare_gives_final_identity, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_keep_prev, setup, teardown),
		cmocka_unit_test_setup_teardown(test_without_keep_prev_no_prev, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_without_commit_leaves_target, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_begin_fails_in_missing_directory, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rename_failure_keeps_target, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dir_group, setup, teardown),
		cmocka_unit_test_setup_teardown(test_large_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clean_removes_only_temporaries, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
