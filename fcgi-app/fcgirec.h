/*
 * fcgirec — FastCGI records, for the two places that handle them themselves:
 * the FastCGI front's answers (main.c) and the CGI relay to resident workers
 * (resident.c), which writes a request's records and reads the answer's.
 * libfcgi does not install fastcgi.h; these are the FastCGI 1.0
 * specification's numbers.
 */
#ifndef HOSTGATE_FCGIREC_H
#define HOSTGATE_FCGIREC_H

#include <stddef.h>

#define FCGIREC_BEGIN_REQUEST 1
#define FCGIREC_END_REQUEST 3
#define FCGIREC_PARAMS 4
#define FCGIREC_STDIN 5
#define FCGIREC_STDOUT 6
#define FCGIREC_STDERR 7
#define FCGIREC_GET_VALUES 9
#define FCGIREC_GET_VALUES_RESULT 10
#define FCGIREC_UNKNOWN_TYPE 11
#define FCGIREC_RESPONDER 1
/* The largest record content: contentLength is 16 bits. */
#define FCGIREC_MAX 65535

/* Fills h with the header of a record of type for request id, len content
 * bytes and no padding (it is optional). */
static inline void fcgirec_header(unsigned char h[8], int type, int id, size_t len)
{
	h[0] = 1;		/* FCGI_VERSION_1 */
	h[1] = (unsigned char)type;
	h[2] = (unsigned char)((id >> 8) & 0xff);
	h[3] = (unsigned char)(id & 0xff);
	h[4] = (unsigned char)((len >> 8) & 0xff);
	h[5] = (unsigned char)(len & 0xff);
	h[6] = 0;
	h[7] = 0;
}

/* The reader of a responder's answer to request 1, fed as the bytes arrive,
 * in pieces of any size (tests/fuzz/fuzz_fcgirec.c checks that the pieces do
 * not change what it reads). Zeroed to start. */
struct fcgirec_reader {
	unsigned char h[8];	/* the record header being read */
	size_t hlen, left, pad;
	int acked;		/* a whole record header came: a worker has the request */
	int ended;		/* FCGI_END_REQUEST came, whole */
};

/* Takes n bytes. content(ctx, type, p, k) gets the content of STDOUT and
 * STDERR records as it comes. Returns 0, or -1 when the bytes break FastCGI
 * (another version; a record of a request but 1 other than GET_VALUES_RESULT
 * and UNKNOWN_TYPE; a byte after the END_REQUEST) or content returns
 * non-zero; the reader is then not to be fed again. */
int fcgirec_take(struct fcgirec_reader *rd, const char *p, size_t n,
		 int (*content)(void *ctx, int type, const char *p, size_t n), void *ctx);

/* A request's parameters (the content of its PARAMS records, plen bytes) as
 * "NAME=value" strings: *envp is one allocation, the NULL-terminated array
 * then the strings (free(*envp) frees all). A name or value may hold any
 * byte, NUL included (the string then ends there). 0, or -1 (a pair's
 * lengths pass the end, or no memory). */
int fcgirec_params(const char *params, size_t plen, char ***envp);

#endif
