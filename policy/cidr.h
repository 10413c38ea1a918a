/*
 * cidr — IPv4/IPv6 addresses, CIDRs and ranges as the configuration writes
 * them ("10.0.0.0/8", "2001:db8::/32", "192.0.2.7"), and membership tests.
 */
#ifndef HOSTGATE_CIDR_H
#define HOSTGATE_CIDR_H

#include <stddef.h>

#include "policy/gateway.h"

/* Parses "ADDR" or "ADDR/PREFIX" into c (host bits must be zero: "10.0.0.1/8"
 * is an error, as nginx and relayd would have it). Returns 0 or -1. */
int cidr_parse(const char *s, struct gw_cidr *c);

/* Parses an address (no prefix) into family and addr (16 bytes, IPv4 in the
 * first 4). An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is returned as IPv4.
 * Returns 0 or -1. */
int cidr_parse_addr(const char *s, int *family, unsigned char addr[16]);

/* Returns 1 when the address is inside c, else 0. */
int cidr_contains(const struct gw_cidr *c, int family, const unsigned char addr[16]);

/* Returns 1 when the address string s is inside any of list[0..n), else 0 (an
 * unparsable s is in none). */
int cidr_list_contains(const struct gw_cidr *list, size_t n, const char *s);

#endif
