/*
 * test_cidr — cidr_parse, cidr_parse_addr, cidr_contains and
 * cidr_list_contains, as tables.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "policy/cidr.h"

struct parse_case {
	const char *s;
	int ok;
	int family;
	int prefix;
	unsigned char addr[16];
};

#define V4(a, b, c, d) { a, b, c, d }

static const struct parse_case parse_cases[] = {
	{ "10.0.0.0/8", 1, AF_INET, 8, V4(10, 0, 0, 0) },
	{ "192.0.2.7", 1, AF_INET, 32, V4(192, 0, 2, 7) },
	{ "192.0.2.7/32", 1, AF_INET, 32, V4(192, 0, 2, 7) },
	{ "0.0.0.0/0", 1, AF_INET, 0, V4(0, 0, 0, 0) },
	{ "192.168.0.0/23", 1, AF_INET, 23, V4(192, 168, 0, 0) },
	{ "255.255.255.255", 1, AF_INET, 32, V4(255, 255, 255, 255) },
	{ "2001:db8::/32", 1, AF_INET6, 32, { 0x20, 0x01, 0x0d, 0xb8 } },
	{ "2001:DB8::/32", 1, AF_INET6, 32, { 0x20, 0x01, 0x0d, 0xb8 } },
	{ "::/0", 1, AF_INET6, 0, { 0 } },
	{ "::1", 1, AF_INET6, 128, { [15] = 1 } },
	{ "::1/128", 1, AF_INET6, 128, { [15] = 1 } },
	{ "fe80::/10", 1, AF_INET6, 10, { 0xfe, 0x80 } },
	/* IPv4-mapped IPv6 is IPv4 */
	{ "::ffff:192.0.2.7", 1, AF_INET, 32, V4(192, 0, 2, 7) },
	{ "::FFFF:c000:0207", 1, AF_INET, 32, V4(192, 0, 2, 7) },
	{ "::ffff:10.0.0.0/104", 1, AF_INET, 8, V4(10, 0, 0, 0) },
	{ "::ffff:0.0.0.0/96", 1, AF_INET, 0, V4(0, 0, 0, 0) },
	{ "::ffff:0:0/80", 0, 0, 0, { 0 } },	/* host bits (the ffff) set */
	{ "::/80", 1, AF_INET6, 80, { 0 } },
	/* host bits must be zero */
	{ "10.0.0.1/8", 0, 0, 0, { 0 } },
	{ "192.168.1.0/23", 0, 0, 0, { 0 } },
	{ "2001:db8::1/32", 0, 0, 0, { 0 } },
	{ "::ffff:10.0.0.1/104", 0, 0, 0, { 0 } },
	/* prefixes */
	{ "1.2.3.4/", 0, 0, 0, { 0 } },
	{ "1.2.3.4/33", 0, 0, 0, { 0 } },
	{ "1.2.3.0/08", 0, 0, 0, { 0 } },
	{ "0.0.0.0/00", 0, 0, 0, { 0 } },
	{ "1.2.3.0/-1", 0, 0, 0, { 0 } },
	{ "1.2.3.0/+24", 0, 0, 0, { 0 } },
	{ "1.2.3.0/24 ", 0, 0, 0, { 0 } },
	{ "1.2.3.0/24x", 0, 0, 0, { 0 } },
	{ "1.2.3.0/24/24", 0, 0, 0, { 0 } },
	{ "1.2.3.0/1000", 0, 0, 0, { 0 } },
	{ "2001:db8::/129", 0, 0, 0, { 0 } },
	{ "::ffff:10.0.0.0/129", 0, 0, 0, { 0 } },
	{ "/8", 0, 0, 0, { 0 } },
	/* addresses */
	{ "", 0, 0, 0, { 0 } },
	{ " 1.2.3.4", 0, 0, 0, { 0 } },
	{ "1.2.3.4 ", 0, 0, 0, { 0 } },
	{ "010.0.0.0/8", 0, 0, 0, { 0 } },
	{ "10.1", 0, 0, 0, { 0 } },
	{ "1.2.3", 0, 0, 0, { 0 } },
	{ "1.2.3.256", 0, 0, 0, { 0 } },
	{ "0x0a.0.0.0/8", 0, 0, 0, { 0 } },
	{ "a.b.c.d", 0, 0, 0, { 0 } },
	{ "fe80::1%eth0", 0, 0, 0, { 0 } },
	{ "[::1]", 0, 0, 0, { 0 } },
	{ "1:2:3:4:5:6:7:8:9", 0, 0, 0, { 0 } },
	{ "1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb:cccc/128", 0, 0, 0, { 0 } },
};

static void test_parse(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		const struct parse_case *c = &parse_cases[i];
		struct gw_cidr got;
		int rc;

		memset(&got, 0xa5, sizeof(got));
		rc = cidr_parse(c->s, &got);
		if (rc != (c->ok ? 0 : -1))
			fail_msg("cidr_parse case %zu '%s': got %d", i, c->s, rc);
		if (!c->ok)
			continue;
		if (got.family != c->family || got.prefix != c->prefix ||
		    memcmp(got.addr, c->addr, 16) != 0)
			fail_msg("cidr_parse case %zu '%s': family %d prefix %d", i, c->s,
				 got.family, got.prefix);
	}
	assert_int_equal(cidr_parse(NULL, &(struct gw_cidr){ 0 }), -1);
}

struct addr_case {
	const char *s;
	int family;		/* 0: -1 */
	unsigned char addr[16];
};

static const struct addr_case addr_cases[] = {
	{ "192.0.2.7", AF_INET, V4(192, 0, 2, 7) },
	{ "::ffff:192.0.2.7", AF_INET, V4(192, 0, 2, 7) },
	{ "2001:db8::5", AF_INET6, { 0x20, 0x01, 0x0d, 0xb8, [15] = 5 } },
	{ "::", AF_INET6, { 0 } },
	{ "10.0.0.0/8", 0, { 0 } },
	{ "", 0, { 0 } },
	{ "localhost", 0, { 0 } },
	{ "192.0.2.7:80", 0, { 0 } },
};

static void test_parse_addr(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(addr_cases) / sizeof(addr_cases[0]); i++) {
		const struct addr_case *c = &addr_cases[i];
		unsigned char addr[16];
		int family = -7, rc;

		memset(addr, 0xa5, sizeof(addr));
		rc = cidr_parse_addr(c->s, &family, addr);
		if (rc != (c->family ? 0 : -1))
			fail_msg("cidr_parse_addr case %zu '%s': got %d", i, c->s, rc);
		if (c->family && (family != c->family || memcmp(addr, c->addr, 16) != 0))
			fail_msg("cidr_parse_addr case %zu '%s': wrong address", i, c->s);
	}
}

struct contains_case {
	const char *cidr;
	const char *addr;
	int want;
};

static const struct contains_case contains_cases[] = {
	{ "10.0.0.0/8", "10.1.2.3", 1 },
	{ "10.0.0.0/8", "10.255.255.255", 1 },
	{ "10.0.0.0/8", "11.0.0.0", 0 },
	{ "10.0.0.0/8", "9.255.255.255", 0 },
	{ "10.0.0.0/8", "::ffff:10.9.9.9", 1 },
	{ "192.168.0.0/23", "192.168.1.255", 1 },
	{ "192.168.0.0/23", "192.168.2.0", 0 },
	{ "192.0.2.7", "192.0.2.7", 1 },
	{ "192.0.2.7", "192.0.2.6", 0 },
	{ "0.0.0.0/0", "203.0.113.9", 1 },
	{ "0.0.0.0/0", "::1", 0 },
	{ "::/0", "::1", 1 },
	{ "::/0", "1.2.3.4", 0 },		/* families never mix */
	{ "::/0", "::ffff:1.2.3.4", 0 },	/* a mapped address is IPv4 */
	{ "::ffff:10.0.0.0/104", "10.3.4.5", 1 },
	{ "2001:db8::/32", "2001:db8:ffff::1", 1 },
	{ "2001:db8::/32", "2001:db9::", 0 },
	{ "fe80::/10", "febf::1", 1 },
	{ "fe80::/10", "fec0::1", 0 },
	{ "::1", "::1", 1 },
	{ "::1", "::2", 0 },
};

static void test_contains(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(contains_cases) / sizeof(contains_cases[0]); i++) {
		const struct contains_case *c = &contains_cases[i];
		struct gw_cidr cidr;
		unsigned char addr[16];
		int family;

		assert_int_equal(cidr_parse(c->cidr, &cidr), 0);
		assert_int_equal(cidr_parse_addr(c->addr, &family, addr), 0);
		if (cidr_contains(&cidr, family, addr) != c->want)
			fail_msg("cidr_contains case %zu: '%s' in '%s' want %d", i, c->addr,
				 c->cidr, c->want);
		if (cidr_list_contains(&cidr, 1, c->addr) != c->want)
			fail_msg("cidr_list_contains case %zu: '%s' in '%s' want %d", i, c->addr,
				 c->cidr, c->want);
	}
}

static void test_list(void **state)
{
	static const char *const list_text[] = { "10.0.0.0/8", "2001:db8::/32", "192.0.2.7" };
	struct gw_cidr list[3];

	(void)state;
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(cidr_parse(list_text[i], &list[i]), 0);
	assert_int_equal(cidr_list_contains(list, 3, "10.1.2.3"), 1);
	assert_int_equal(cidr_list_contains(list, 3, "2001:db8::77"), 1);
	assert_int_equal(cidr_list_contains(list, 3, "192.0.2.7"), 1);
	assert_int_equal(cidr_list_contains(list, 3, "::ffff:192.0.2.7"), 1);
	assert_int_equal(cidr_list_contains(list, 3, "192.0.2.8"), 0);
	assert_int_equal(cidr_list_contains(list, 3, "172.16.0.1"), 0);
	/* unparsable or absent addresses are in nothing */
	assert_int_equal(cidr_list_contains(list, 3, "10.1.2.3 "), 0);
	assert_int_equal(cidr_list_contains(list, 3, "unix:"), 0);
	assert_int_equal(cidr_list_contains(list, 3, ""), 0);
	assert_int_equal(cidr_list_contains(list, 3, NULL), 0);
	assert_int_equal(cidr_list_contains(list, 0, "10.1.2.3"), 0);
	assert_int_equal(cidr_list_contains(NULL, 0, "10.1.2.3"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_parse_addr),
		cmocka_unit_test(test_contains),
		cmocka_unit_test(test_list),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
