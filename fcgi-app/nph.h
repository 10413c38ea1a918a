/*
 * nph — the plain CGI front's answer as a whole HTTP message, for Apache's
 * NPH ("non-parsed headers") mode: a CGI program whose file name starts with
 * "nph-" writes the status line, the headers and the body's framing itself,
 * and Apache passes its output to the client untouched. It is the only way a
 * plain CGI program can let the client tell an answer cut short from a
 * complete one: a parsed-header CGI answer always ends cleanly when the
 * program's output ends, whatever happened to the backend.
 *
 *   nph_init(&n, server_protocol, method, raw_write, ctx);
 *   nph_write(&n, buf, len) for every byte of CGI output the handler makes
 *   ("Status: 200 OK\r\n", header lines, a blank line, the body);
 *   nph_finish(&n, aborted) once, at the end.
 *
 * The head is held until its blank line, then sent as "HTTP/1.1 200 OK" with
 * the handler's headers, Date, Connection: close, and, for a body of unknown
 * length to an HTTP/1.1 client, Transfer-Encoding: chunked. nph_finish writes
 * the last chunk only when the answer was not aborted: a client then sees a
 * cut-short answer as one (a body shorter than its Content-Length, or chunks
 * without their end). An HTTP/1.0 client gets a body delimited by the close,
 * which cannot show a cut.
 * raw_write(ctx, buf, len) returns 0, or -1 when the client is gone; nph_write
 * and nph_finish return the same (-1 also for a head over NPH_HEAD_MAX, one
 * without a Status line, or one with a CR or LF outside its line ends).
 * No allocation: one request per process.
 */
#ifndef HOSTGATE_NPH_H
#define HOSTGATE_NPH_H

#include <stddef.h>

#define NPH_HEAD_MAX (256 * 1024)

struct nph {
	int (*raw_write)(void *ctx, const char *buf, size_t n);
	void *ctx;
	int http10;		/* the client spoke HTTP/1.0: no chunks */
	int head_method;	/* HEAD: the answer has no body */
	int head_done;
	int body;		/* the answer has a body (not HEAD, 1xx, 204, 304) */
	int chunked;		/* the body goes out in chunks */
	int failed;
	size_t head_len;
	char head[NPH_HEAD_MAX];
};

/* Returns 1 when the CGI program runs in NPH mode: script_filename (Apache's
 * SCRIPT_FILENAME) names a file whose name starts with "nph-". */
int nph_wanted(const char *script_filename);
void nph_init(struct nph *n, const char *server_protocol, const char *method,
	      int (*raw_write)(void *ctx, const char *buf, size_t n), void *ctx);
int nph_write(struct nph *n, const char *buf, size_t len);
int nph_finish(struct nph *n, int aborted);

#endif
