/* common/log: one line per message whatever its arguments hold — control
 * bytes (a newline, an escape sequence a peer sent) come out as \xNN, and a
 * message too long for a line is cut, still ending in one newline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/log.h"

static char got[4096];
static size_t got_len;

static void capture(void *ctx, const char *line, size_t len)
{
	(void)ctx;
	memcpy(got, line, len);
	got[len] = '\0';
	got_len = len;
}

/* The message part of the captured line (after "LEVEL: "). */
static const char *message(void)
{
	const char *m = strstr(got, "warning: ");

	assert_non_null(m);
	return m + strlen("warning: ");
}

static void test_control_bytes_are_escaped(void **state)
{
	(void)state;
	log_warn("redis: %s; retrying", "ERR \x1b[31mevil\r\nforged: line\x7f\t.");
	assert_string_equal(message(),
			    "redis: ERR \\x1b[31mevil\\x0d\\x0aforged: line\\x7f\\x09.; retrying\n");
	assert_ptr_equal(strchr(got, '\n'), got + got_len - 1);
}

static void test_a_long_message_is_one_cut_line(void **state)
{
	char big[3000];

	(void)state;
	memset(big, '\x01', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_warn("%s", big);
	assert_true(got_len <= 2048);
	assert_int_equal(got[got_len - 1], '\n');
	assert_ptr_equal(strchr(got, '\n'), got + got_len - 1);
	/* only whole escapes */
	assert_int_equal((strlen(message()) - 1) % 4, 0);
	assert_non_null(strstr(message(), "\\x01\\x01"));
}

static void test_plain_text_is_unchanged(void **state)
{
	(void)state;
	log_warn("cannot open '%s': %s", "/etc/hostgate/a b.json", "No such file");
	assert_string_equal(message(), "cannot open '/etc/hostgate/a b.json': No such file\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_control_bytes_are_escaped),
		cmocka_unit_test(test_a_long_message_is_one_cut_line),
		cmocka_unit_test(test_plain_text_is_unchanged),
	};

	log_init("test", LOG_TO_STDERR);
	log_set_hook(capture, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
