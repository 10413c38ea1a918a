/*
 * path — percent-decoding and the safety checks of request paths and values.
 * Pure functions over borrowed slices; no allocation.
 */
#ifndef HOSTGATE_PATH_H
#define HOSTGATE_PATH_H

#include <stddef.h>

/* The value of the hex digit c (either case), or -1. */
int path_hexval(int c);

/* Decodes %XX escapes of src[0..len) into dst (room for len bytes; the result
 * is never longer). '+' is left alone (paths). Returns the decoded length, or
 * -1 on a malformed escape ("%", "%4", "%zz"). */
long path_decode(const char *src, size_t len, char *dst);

/* Returns 0 when no segment of the raw path, decoded and split again on '/'
 * and '\', is "." or ".." (nor starts with ".;" or "..;", which Tomcat and
 * Jetty resolve as dot segments), and no escape is malformed and no byte
 * decodes to NUL, CR or LF; -1 otherwise. */
int path_check(const char *path, size_t len);

/* Appends src[0..len) to dst percent-encoding every byte outside RFC 3986's
 * unreserved set (and outside 'keep', a string of extra bytes to keep as they
 * are, e.g. "/" or ""). dst has room for cap bytes; returns the number of bytes
 * written, or -1 when it would not fit (nothing is NUL-terminated). */
long path_encode(const char *src, size_t len, const char *keep, char *dst, size_t cap);

#endif
