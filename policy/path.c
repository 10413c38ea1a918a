/*
 * path — percent-decoding, the dot-segment check and percent-encoding.
 *
 * path_check is the open-proxy defence: a path is refused when any piece of it,
 * once decoded and split on '/' and '\', is "." or "..". A piece whose part
 * before a ';' is "." or ".." ("..;x") is refused too, because Tomcat and Jetty
 * strip path parameters before resolving dot segments ("/a/..;/b" is "/b" to
 * them); no legitimate path needs such a piece.
 */
#include "policy/path.h"

#include <string.h>

int path_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes the byte at src[*i] (an escape or a plain byte) into *out and moves
 * *i past it. Returns 0, or -1 on a malformed escape. */
static int decode_one(const char *src, size_t len, size_t *i, unsigned char *out)
{
	int hi, lo;

	if (src[*i] != '%') {
		*out = (unsigned char)src[*i];
		(*i)++;
		return 0;
	}
	if (len - *i < 3)
		return -1;
	hi = path_hexval((unsigned char)src[*i + 1]);
	lo = path_hexval((unsigned char)src[*i + 2]);
	if (hi < 0 || lo < 0)
		return -1;
	*out = (unsigned char)(hi << 4 | lo);
	*i += 3;
	return 0;
}

long path_decode(const char *src, size_t len, char *dst)
{
	size_t i = 0, n = 0;
	unsigned char c;

	while (i < len) {
		if (decode_one(src, len, &i, &c) != 0)
			return -1;
		dst[n++] = (char)c;
	}
	return (long)n;
}

/* A piece (its part before any ';') of n bytes, all of them dots. */
static int is_dot_piece(size_t n, int all_dots)
{
	return all_dots && (n == 1 || n == 2);
}

int path_check(const char *path, size_t len)
{
	size_t i = 0, n = 0;
	int all_dots = 1, in_params = 0;
	unsigned char c;

	while (i < len) {
		if (decode_one(path, len, &i, &c) != 0)
			return -1;
		if (c == '\0' || c == '\r' || c == '\n')
			return -1;
		if (c == '/' || c == '\\') {
			if (is_dot_piece(n, all_dots))
				return -1;
			n = 0;
			all_dots = 1;
			in_params = 0;
			continue;
		}
		if (in_params)
			continue;
		if (c == ';') {
			in_params = 1;
			continue;
		}
		if (c != '.')
			all_dots = 0;
		n++;
	}
	return is_dot_piece(n, all_dots) ? -1 : 0;
}

static int is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

long path_encode(const char *src, size_t len, const char *keep, char *dst, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;

	if (!keep)
		keep = "";
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)src[i];

		/* strchr finds the terminator for c == 0: a NUL is never kept */
		if (is_unreserved(c) || (c != '\0' && strchr(keep, c))) {
			if (cap - n < 1)
				return -1;
			dst[n++] = (char)c;
			continue;
		}
		if (cap - n < 3)
			return -1;
		dst[n++] = '%';
		dst[n++] = hex[c >> 4];
		dst[n++] = hex[c & 15];
	}
	return (long)n;
}
