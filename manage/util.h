/*
 * util — small helpers of hostgate-manage: a growable string with a hard cap
 * (every size that input drives is capped), ids, and RFC 3339 times.
 *
 *   struct sbuf b = SBUF_INIT(1 << 20);
 *   sbuf_add(&b, "x", 1); sbuf_addf(&b, "%d", n); sbuf_add_json(&b, s);
 *   if (b.failed) ... (out of memory, or past the cap: the content is cut)
 *   free(b.s);
 */
#ifndef HOSTGATE_MANAGE_UTIL_H
#define HOSTGATE_MANAGE_UTIL_H

#include <stddef.h>
#include <stdint.h>

struct sbuf {
	char *s;		/* NUL-terminated once anything was added; owned */
	size_t len, cap, max;
	int failed;
};
#define SBUF_INIT(max) { NULL, 0, 0, (max), 0 }

void sbuf_add(struct sbuf *b, const char *p, size_t n);
void sbuf_adds(struct sbuf *b, const char *s);
void sbuf_addf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s as a JSON string literal, quotes included. */
void sbuf_add_json(struct sbuf *b, const char *s);
/* s escaped for HTML text and attribute values. */
void sbuf_add_html(struct sbuf *b, const char *s);
void sbuf_release(struct sbuf *b);

/* The id rule of config-v1.md: [A-Za-z0-9._-]{1,80}. */
int util_is_id(const char *s);
/* unix seconds as "YYYY-MM-DDTHH:MM:SSZ" into out (at least 21 bytes). */
void util_format_time(int64_t t, char *out, size_t n);
int64_t util_now(void);

#endif
