/* common/fileread: capped reads that follow no link and never block, and the
 * trust rule for files another user could have put in place. */
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
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fileread.h"

#define TMPDIR_FILE "config.json"
#include "tests/unit/tmpdir.h"

static void put(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void test_reads_a_regular_file(void **state)
{
	struct fixture *f = *state;
	struct stat st;
	char *buf = NULL;
	size_t len = 0;

	put(f->path, "{\"a\":1}", 0640);
	assert_int_equal(file_read_stat(f->path, 100, &buf, &len, &st), 0);
	assert_int_equal(len, 7);
	assert_string_equal(buf, "{\"a\":1}");
	assert_true(S_ISREG(st.st_mode));
	free(buf);
	assert_int_equal(file_read(f->path, 6, &buf, &len), -1);
	assert_int_equal(errno, EFBIG);
}

static void test_symlink_is_refused(void **state)
{
	struct fixture *f = *state;
	char link[160];
	char *buf = NULL;
	size_t len = 0;

	put(f->path, "{}", 0640);
	snprintf(link, sizeof(link), "%s/link.json", f->dir);
	assert_int_equal(symlink(f->path, link), 0);
	assert_int_equal(file_read(link, 100, &buf, &len), -1);
	assert_int_equal(errno, ELOOP);
	snprintf(link, sizeof(link), "%s/zero.json", f->dir);
	assert_int_equal(symlink("/dev/zero", link), 0);
	assert_int_equal(file_read(link, 100, &buf, &len), -1);
	assert_int_equal(errno, ELOOP);
	/* and the device itself: not a regular file, never read */
	assert_int_equal(file_read("/dev/zero", 100, &buf, &len), -1);
	assert_int_equal(errno, EINVAL);
}

static void test_fifo_does_not_block(void **state)
{
	struct fixture *f = *state;
	char *buf = NULL;
	size_t len = 0;

	/* nobody writes it: a blocking open would wait for ever, so SIGALRM
	 * ends a broken build's run */
	assert_int_equal(mkfifo(f->path, 0640), 0);
	alarm(10);
	assert_int_equal(file_read(f->path, 100, &buf, &len), -1);
	alarm(0);
	assert_int_equal(errno, EINVAL);
}

static enum file_trust trust_of(const char *path, char *why, size_t n)
{
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	return file_trust(path, &st, why, n);
}

static void test_trust_modes(void **state)
{
	struct fixture *f = *state;
	char why[4096 + 128];

	put(f->path, "{}", 0640);
	if (geteuid() == 0)	/* root's own files are never "own user" */
		assert_int_equal(trust_of(f->path, why, sizeof(why)), FILE_TRUSTED);
	assert_int_equal(chmod(f->path, 0660), 0);
	assert_int_equal(trust_of(f->path, why, sizeof(why)), FILE_UNSAFE);
	assert_non_null(strstr(why, "group- or world-writable (mode 0660)"));
	assert_int_equal(chmod(f->path, 0642), 0);
	assert_int_equal(trust_of(f->path, why, sizeof(why)), FILE_UNSAFE);
	assert_int_equal(chmod(f->path, 0640), 0);
	assert_int_equal(chmod(f->dir, 0770), 0);
	assert_int_equal(trust_of(f->path, why, sizeof(why)), FILE_UNSAFE);
	assert_non_null(strstr(why, "its directory"));
	assert_non_null(strstr(why, "(mode 0770)"));
	assert_int_equal(chmod(f->dir, 01777), 0);	/* sticky does not help: rename */
	assert_int_equal(trust_of(f->path, why, sizeof(why)), FILE_UNSAFE);
	assert_int_equal(chmod(f->dir, 0750), 0);
	assert_int_equal(unlink(f->path), 0);
	assert_int_equal(mkfifo(f->path, 0640), 0);
	assert_int_equal(trust_of(f->path, why, sizeof(why)), FILE_UNSAFE);
	assert_string_equal(why, "not a regular file");
}

static void test_trust_own_user(void **state)
{
	struct fixture *f = *state;
	char why[4096 + 128];
	pid_t pid;
	int status;

	if (geteuid() != 0)
		skip();
	put(f->path, "{}", 0640);
	assert_int_equal(chmod(f->dir, 0755), 0);
	/* as a non-root user that owns the file: usable, with a warning */
	assert_int_equal(chown(f->path, 65534, 65534), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (setgid(65534) != 0 || setuid(65534) != 0)
			_exit(2);
		_exit(trust_of(f->path, why, sizeof(why)) == FILE_OWN &&
		      strstr(why, "own user") ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* root-owned file in a root-owned directory: trusted by that user too */
	assert_int_equal(chown(f->path, 0, 0), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (setgid(65534) != 0 || setuid(65534) != 0)
			_exit(2);
		_exit(trust_of(f->path, why, sizeof(why)) == FILE_TRUSTED ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_reads_a_regular_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlink_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fifo_does_not_block, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trust_modes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trust_own_user, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
