/*
 * fcgirec — FastCGI record headers, for the two places that write records
 * themselves: the FastCGI front's answers (main.c) and the CGI relay to
 * resident workers (resident.c). libfcgi does not install fastcgi.h; these
 * are the FastCGI 1.0 specification's numbers.
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

#endif
