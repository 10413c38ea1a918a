/*
 * io — one request's input and output, the same for FastCGI and plain CGI, so
 * that the handler never knows which front it runs behind.
 *
 *   front (main.c) fills a struct io, calls handle_request(io, app), then ends
 *   the request (FCGX_Finish_r, or exit in CGI mode).
 *
 * params are the request's CGI variables ("NAME=value", NULL-terminated; owned
 * by the front, valid for the request). read returns >0 bytes, 0 at the end of
 * the body, -1 on error; write returns 0, or -1 when the client is gone (later
 * writes are then no-ops). A read or write that waited past the request's
 * client deadline (gateway.client_*) returns -1 with timed_out set: the client
 * was too slow, which is its fault, not the backend's. abort marks the response as cut short: the front
 * drops the connection instead of ending the response cleanly, so the web
 * server and the client can tell a truncated answer from a complete one.
 */
#ifndef HOSTGATE_IO_H
#define HOSTGATE_IO_H

#include <stddef.h>

struct io {
	char **params;
	long (*read)(struct io *io, char *buf, size_t n);
	int (*write)(struct io *io, const char *buf, size_t n);
	int (*flush)(struct io *io);
	void *ctx;
	int aborted;		/* set by the handler: cut the response short */
	int timed_out;		/* set by the front: a client read/write passed its deadline */
};

/* Returns the value of the request variable name, or NULL. */
const char *io_param(const struct io *io, const char *name);

#endif
