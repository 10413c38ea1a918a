/*
 * io — one request's input and output, the same for FastCGI and plain CGI, so
 * that the handler never knows which front it runs behind.
 *
 *   front (main.c) fills a struct io, io_start(io) (default deadlines, the
 *   clock starts), calls handle_request(io, app) (which sets the gateway's
 *   deadlines with io_set_limits once it knows the document), then ends the
 *   request (FCGX_Finish_r, or exit in CGI mode).
 *
 * params are the request's CGI variables ("NAME=value", NULL-terminated; owned
 * by the front, valid for the request). read returns >0 bytes, 0 at the end of
 * the body, -1 on error; write returns 0, or -1 when the client is gone (later
 * writes are then no-ops). A read or write that waited past the request's
 * client deadline (gateway.client_*) returns -1 with timed_out set: the client
 * was too slow, which is its fault, not the backend's. abort marks the response as cut short: the front
 * drops the connection instead of ending the response cleanly, so the web
 * server and the client can tell a truncated answer from a complete one.
 *
 * Deadlines (monotonic milliseconds, io_now_ms): a read must end by
 * io_read_deadline, a write by io_write_deadline. The front enforces them
 * (poll, socket timeouts); the handler only sets the limits.
 */
#ifndef HOSTGATE_IO_H
#define HOSTGATE_IO_H

#include <stddef.h>
#include <stdint.h>

/* The client's limits, in milliseconds and bytes per second (gateway.h). */
struct io_limits {
	int64_t request_ms;	/* the whole request */
	int64_t idle_ms;	/* one read or write without progress */
	int64_t body_ms;	/* the body's grace period... */
	int64_t body_min_rate;	/* ...plus one second per this many bytes */
};

struct io {
	char **params;
	long (*read)(struct io *io, char *buf, size_t n);
	int (*write)(struct io *io, const char *buf, size_t n);
	int (*flush)(struct io *io);
	/* The answer is whole (handle_request, before it logs the request):
	 * what the front still holds goes out with its end of the answer, so
	 * that a client gone by then is logged as gone. 0, or -1 when the
	 * client did not take it. NULL: the front has nothing held back. */
	int (*end)(struct io *io);
	void *ctx;
	int aborted;		/* set by the handler: cut the response short */
	int timed_out;		/* set by the front: a client read/write passed its deadline */
	int write_failed;	/* the front's: a write failed, later ones are no-ops (a read
				 * that timed out still lets the 408 go out) */
	int64_t started_ms;	/* io_start: when the front took the request */
	struct io_limits limits;
	int64_t body_read;	/* body bytes the front has delivered */
};

/* Waits until fd is ready for events (poll(2)'s) or deadline (monotonic ms)
 * passes; on a fiber, the process's other requests run meanwhile (common/fiber.h).
 * Returns 0 when it is ready (or broken: the read or write that follows says
 * so), -1 when the deadline passed (timed_out set) or the wait failed. */
int io_wait_fd(struct io *io, int fd, short events, int64_t deadline);
/* Returns the value of the request variable name, or NULL. */
const char *io_param(const struct io *io, const char *name);
/* The monotonic clock in milliseconds. */
int64_t io_now_ms(void);
/* Starts the request's clock with the built-in default limits. */
void io_start(struct io *io);
/* Replaces the limits (the loaded gateway's); the clock keeps running. */
void io_set_limits(struct io *io, const struct io_limits *limits);
/* When the request as a whole must be over (started + request_ms). */
int64_t io_request_deadline(const struct io *io);
/* When the read that starts at now must have returned: the idle timeout, the
 * body's rate-based deadline and the request's, whichever comes first. */
int64_t io_read_deadline(const struct io *io, int64_t now);
/* The same for a write: the idle timeout or the request's deadline. */
int64_t io_write_deadline(const struct io *io, int64_t now);

#endif
