#include "fcgi-app/nph.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

int nph_wanted(const char *script_filename)
{
	const char *base;

	if (!script_filename)
		return 0;
	base = strrchr(script_filename, '/');
	base = base ? base + 1 : script_filename;
	return strncmp(base, "nph-", 4) == 0;
}

void nph_init(struct nph *n, const char *server_protocol, const char *method,
	      int (*raw_write)(void *ctx, const char *buf, size_t n), void *ctx)
{
	n->raw_write = raw_write;
	n->ctx = ctx;
	n->http10 = server_protocol && strcmp(server_protocol, "HTTP/1.0") == 0;
	n->head_method = method && strcmp(method, "HEAD") == 0;
	n->head_done = n->chunked = n->failed = 0;
	n->body = 1;
	n->head_len = 0;
}

/* The head's blank line in h[0..len), searched from from: its "\r\n\r\n", or NULL. */
static const char *blank_line(const char *h, size_t len, size_t from)
{
	for (size_t i = from; i + 4 <= len; i++)
		if (h[i] == '\r' && h[i + 1] == '\n' && h[i + 2] == '\r' && h[i + 3] == '\n')
			return h + i;
	return NULL;
}

static int header_is(const char *line, size_t len, const char *name)
{
	size_t nl = strlen(name);

	return len > nl && line[nl] == ':' && strncasecmp(line, name, nl) == 0;
}

/* Sends the held CGI head h[0..len) (without its blank line) as an HTTP head. */
static int send_head(struct nph *n, const char *h, size_t len)
{
	static char out[NPH_HEAD_MAX + 512];
	size_t o = 0;
	int status = 0, have_length = 0, have_date = 0;
	const char *reason = "";
	size_t rlen = 0;

	/* lines end with CRLF, and a CR or LF nowhere else: a lone one would
	 * split the head differently here and at the client; nor may the first
	 * line be empty, which ends a CGI head before it starts (found by
	 * fuzz_fcgirec: it became a blank line inside the HTTP head) */
	if (len && h[0] == '\r')
		return -1;
	for (size_t i = 0; i < len; i++)
		if ((h[i] == '\r' && (i + 1 == len || h[i + 1] != '\n')) ||
		    (h[i] == '\n' && (i == 0 || h[i - 1] != '\r')))
			return -1;
	/* the status first: it opens the message */
	for (size_t p = 0; p < len;) {
		const char *line = h + p, *eol = memchr(line, '\r', len - p);
		size_t l = eol ? (size_t)(eol - line) : len - p;

		if (header_is(line, l, "Status")) {
			const char *v = line + 7, *e = line + l;

			while (v < e && *v == ' ')
				v++;
			if (e - v < 3 || v[0] < '1' || v[0] > '5' || v[1] < '0' || v[1] > '9' ||
			    v[2] < '0' || v[2] > '9')
				return -1;
			status = (v[0] - '0') * 100 + (v[1] - '0') * 10 + (v[2] - '0');
			for (reason = v + 3; reason < e && *reason == ' '; reason++)
				;
			rlen = (size_t)(e - reason);
		} else if (header_is(line, l, "Content-Length")) {
			have_length = 1;
		} else if (header_is(line, l, "Date")) {
			have_date = 1;
		}
		p += l + 2;
	}
	if (!status)
		return -1;
	n->body = !n->head_method && status >= 200 && status != 204 && status != 304;
	n->chunked = n->body && !have_length && !n->http10;
	o = (size_t)snprintf(out, sizeof(out), "HTTP/1.%d %d %.*s\r\n", n->http10 ? 0 : 1,
			     status, (int)rlen, reason);
	for (size_t p = 0; p < len;) {
		const char *line = h + p, *eol = memchr(line, '\r', len - p);
		size_t l = eol ? (size_t)(eol - line) : len - p;

		p += l + 2;
		/* ours to set: the status is in the first line, the framing below */
		if (header_is(line, l, "Status") || header_is(line, l, "Connection") ||
		    header_is(line, l, "Transfer-Encoding"))
			continue;
		memcpy(out + o, line, l);
		o += l;
		out[o++] = '\r';
		out[o++] = '\n';
	}
	if (!have_date) {
		time_t now = time(NULL);
		struct tm tm;

		gmtime_r(&now, &tm);
		o += strftime(out + o, sizeof(out) - o, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
	}
	o += (size_t)snprintf(out + o, sizeof(out) - o, "Connection: close\r\n%s\r\n",
			      n->chunked ? "Transfer-Encoding: chunked\r\n" : "");
	return n->raw_write(n->ctx, out, o);
}

static int send_body(struct nph *n, const char *buf, size_t len)
{
	char size[24];
	int sl;

	if (!len || !n->body)
		return 0;
	if (!n->chunked)
		return n->raw_write(n->ctx, buf, len);
	sl = snprintf(size, sizeof(size), "%zx\r\n", len);
	if (n->raw_write(n->ctx, size, (size_t)sl) != 0 || n->raw_write(n->ctx, buf, len) != 0)
		return -1;
	return n->raw_write(n->ctx, "\r\n", 2);
}

int nph_write(struct nph *n, const char *buf, size_t len)
{
	const char *end;
	size_t keep, head_len, from;

	if (n->failed)
		return -1;
	if (n->head_done)
		return send_body(n, buf, len);
	from = n->head_len > 3 ? n->head_len - 3 : 0;
	keep = len;
	if (keep > sizeof(n->head) - n->head_len)
		keep = sizeof(n->head) - n->head_len;
	memcpy(n->head + n->head_len, buf, keep);
	n->head_len += keep;
	end = blank_line(n->head, n->head_len, from);
	if (!end) {
		if (keep < len) {
			n->failed = 1;	/* a head over NPH_HEAD_MAX */
			return -1;
		}
		return 0;
	}
	head_len = (size_t)(end - n->head);
	n->head_done = 1;
	if (send_head(n, n->head, head_len + 2) != 0) {
		n->failed = 1;
		return -1;
	}
	/* what came after the blank line is the body's start; the rest of buf
	 * that did not fit the head buffer follows it */
	if (send_body(n, end + 4, n->head_len - head_len - 4) != 0 ||
	    send_body(n, buf + keep, len - keep) != 0) {
		n->failed = 1;
		return -1;
	}
	return 0;
}

int nph_finish(struct nph *n, int aborted)
{
	if (n->failed || !n->head_done)
		return -1;
	if (n->chunked && !aborted)
		return n->raw_write(n->ctx, "0\r\n\r\n", 5);
	return 0;
}
