/*
 * cidr — addresses and CIDRs of the configuration, parsed with inet_pton.
 *
 * Choices (stricter than inet_aton, as nginx and relayd are):
 *  - the whole string must be the address: no spaces, no leading or trailing
 *    garbage, no IPv6 zone ("fe80::1%eth0"), IPv4 only as four decimal octets
 *    without leading zeros (inet_pton refuses "010.0.0.1" and "10.1");
 *  - the prefix is 1 to 3 decimal digits, without a sign or a leading zero
 *    ("/08" is refused, "/0" accepted), at most 32 or 128; "1.2.3.4/" is refused;
 *  - host bits below the prefix must be zero ("10.0.0.1/8" is refused);
 *  - an IPv4-mapped IPv6 address (::ffff:a.b.c.d) is IPv4, as an address and as
 *    a CIDR with a prefix of 96 or more ("::ffff:10.0.0.0/104" is 10.0.0.0/8);
 *  - an IPv6 CIDR never contains an IPv4 address, nor the reverse, so "::/0"
 *    is every IPv6 client and no IPv4 one (nginx's rule: mapped addresses are
 *    matched as IPv4).
 */
#include "policy/cidr.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

#define CIDR_MAX_TEXT 64	/* longest IPv6 text is 45 bytes */

static const unsigned char v4mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/* Parses exactly n bytes of s as an address. */
static int parse_addr_n(const char *s, size_t n, int *family, unsigned char addr[16])
{
	char buf[CIDR_MAX_TEXT];
	unsigned char a[16];

	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (memchr(buf, '\0', n))
		return -1;
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, buf, a) == 1) {
		*family = AF_INET;
		memcpy(addr, a, 4);
		return 0;
	}
	if (inet_pton(AF_INET6, buf, a) == 1) {
		if (memcmp(a, v4mapped_prefix, sizeof(v4mapped_prefix)) == 0) {
			*family = AF_INET;
			memcpy(addr, a + 12, 4);
			return 0;
		}
		*family = AF_INET6;
		memcpy(addr, a, 16);
		return 0;
	}
	return -1;
}

int cidr_parse_addr(const char *s, int *family, unsigned char addr[16])
{
	if (!s)
		return -1;
	return parse_addr_n(s, strnlen(s, CIDR_MAX_TEXT), family, addr);
}

/* "0".."128" without sign or leading zero; -1 otherwise. */
static int parse_prefix(const char *s)
{
	size_t n = strlen(s);
	int v = 0;

	if (n == 0 || n > 3 || (s[0] == '0' && n > 1))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* Returns 1 when a and b agree in their first 'prefix' bits. */
static int prefix_equal(const unsigned char *a, const unsigned char *b, int prefix)
{
	int bytes = prefix / 8, bits = prefix % 8;
	unsigned char mask;

	if (memcmp(a, b, (size_t)bytes) != 0)
		return 0;
	if (bits == 0)
		return 1;
	mask = (unsigned char)(0xff << (8 - bits));
	return (a[bytes] & mask) == (b[bytes] & mask);
}

int cidr_parse(const char *s, struct gw_cidr *c)
{
	unsigned char addr[16], a6[16];
	const char *slash;
	int family, prefix, max;
	size_t n;

	if (!s)
		return -1;
	n = strnlen(s, CIDR_MAX_TEXT);
	if (n >= CIDR_MAX_TEXT)
		return -1;
	slash = memchr(s, '/', n);
	if (parse_addr_n(s, slash ? (size_t)(slash - s) : n, &family, addr) != 0)
		return -1;
	max = family == AF_INET ? 32 : 128;
	prefix = max;
	if (slash) {
		/* a mapped address was turned into IPv4: its prefix counts the
		 * 96 bits of ::ffff:0:0/96, and one under 96 stays IPv6 */
		int mapped = family == AF_INET && memchr(s, ':', (size_t)(slash - s)) != NULL;

		prefix = parse_prefix(slash + 1);
		if (prefix < 0)
			return -1;
		if (mapped && prefix < 96) {
			family = AF_INET6;
			memcpy(a6, v4mapped_prefix, 12);
			memcpy(a6 + 12, addr, 4);
			memcpy(addr, a6, 16);
			max = 128;
		} else if (mapped) {
			prefix -= 96;
		}
		if (prefix > max)
			return -1;
	}
	/* host bits must be zero: the address equals itself masked */
	memset(a6, 0, sizeof(a6));
	memcpy(a6, addr, (size_t)prefix / 8);
	if (prefix % 8)
		a6[prefix / 8] = (unsigned char)(addr[prefix / 8] & (0xff << (8 - prefix % 8)));
	if (memcmp(a6, addr, (size_t)max / 8) != 0)
		return -1;
	memset(c, 0, sizeof(*c));
	c->family = family;
	memcpy(c->addr, addr, 16);
	c->prefix = prefix;
	return 0;
}

int cidr_contains(const struct gw_cidr *c, int family, const unsigned char addr[16])
{
	if (c->family != family || (family != AF_INET && family != AF_INET6))
		return 0;
	if (c->prefix < 0 || c->prefix > (family == AF_INET ? 32 : 128))
		return 0;
	return prefix_equal(c->addr, addr, c->prefix);
}

int cidr_list_contains(const struct gw_cidr *list, size_t n, const char *s)
{
	unsigned char addr[16];
	int family;

	if (cidr_parse_addr(s, &family, addr) != 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (cidr_contains(&list[i], family, addr))
			return 1;
	return 0;
}
