/*
 * fuzz_cidr — cidr_parse and cidr_parse_addr on arbitrary strings.
 * Invariants: a parsed CIDR has a family, a prefix in range and zero host
 * bits, contains its own network address, and prints (inet_ntop + "/prefix")
 * to a string that parses back to the same CIDR; a parsed address is in
 * the CIDR of the same text, and in a one-element list of it.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "policy/cidr.h"
#include "tests/fuzz/check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char s[256], text[INET6_ADDRSTRLEN + 8], addr_text[INET6_ADDRSTRLEN];
	struct gw_cidr c, back;
	unsigned char addr[16];
	int family, max;

	if (size >= sizeof(s))
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	memset(&c, 0, sizeof(c));

	if (cidr_parse(s, &c) == 0) {
		CHECK(c.family == AF_INET || c.family == AF_INET6);
		max = c.family == AF_INET ? 32 : 128;
		CHECK(c.prefix >= 0 && c.prefix <= max);
		for (int bit = c.prefix; bit < max; bit++)
			CHECK(!(c.addr[bit / 8] & (0x80 >> (bit % 8))));
		if (c.family == AF_INET)
			for (int i = 4; i < 16; i++)
				CHECK(c.addr[i] == 0);
		CHECK(cidr_contains(&c, c.family, c.addr) == 1);
		CHECK(inet_ntop(c.family, c.addr, addr_text, sizeof(addr_text)) != NULL);
		snprintf(text, sizeof(text), "%s/%d", addr_text, c.prefix);
		CHECK(cidr_parse(text, &back) == 0);
		CHECK(back.family == c.family && back.prefix == c.prefix &&
		      memcmp(back.addr, c.addr, 16) == 0);
		/* no '/' given: a host route */
		if (!strchr(s, '/'))
			CHECK(c.prefix == max);
	}
	if (cidr_parse_addr(s, &family, addr) == 0) {
		CHECK(family == AF_INET || family == AF_INET6);
		CHECK(cidr_parse(s, &c) == 0);
		CHECK(c.family == family && memcmp(c.addr, addr, 16) == 0);
		CHECK(cidr_contains(&c, family, addr) == 1);
		CHECK(cidr_list_contains(&c, 1, s) == 1);
	} else {
		CHECK(cidr_list_contains(&c, 1, s) == 0);
	}
	return 0;
}
