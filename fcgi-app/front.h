/*
 * front — the FastCGI front: hostgate's own FastCGI 1.0 responder, every
 * connection on a fiber of its own (common/fiber.h), so that one process answers
 * many requests at once and a slow client or backend holds only its own
 * request. Under a process manager (lighttpd's bin-path, mod_fcgid), with
 * --listen, and for the CGI front's resident workers.
 *
 *   front_serve(sock, app, max);   until SIGTERM, SIGINT or SIGUSR1
 *
 * sock is the listening socket; at most max connections at once (the
 * environment's HOSTGATE_CONNECTIONS, FRONT_CONNECTIONS by default): past
 * that, new ones wait in the listen queue, where another process of the same
 * socket may take them. One request at a time per connection
 * (FCGI_MPXS_CONNS 0); FCGI_KEEP_CONN is honoured.
 *
 * Every wait has a deadline: a new connection's first record and its
 * parameters within GW_DEFAULT_CLIENT_IDLE_TIMEOUT_MS, the body and the
 * answer within the request's client deadlines (io.h); only a kept
 * connection waits for its next request as long as the web server likes.
 *
 * Output: the answer is framed here, each write of it a sendmsg that waits
 * (on the loop) only when the socket is full:
 *   - a write that fits in the connection's stdout buffer (FRONT_OBUF) is
 *     copied there, no system call;
 *   - one that does not goes out at once, with what the buffer holds, as
 *     records of up to FCGIREC_MAX bytes in one sendmsg; a flush sends what
 *     the buffer holds (the handler flushes only before it waits:
 *     forward.c, flush_answer);
 *   - the end of the request sends the rest, the empty stdout record and
 *     FCGI_END_REQUEST in one sendmsg.
 * Log lines of the request go to the web server as FCGI_STDERR records with
 * the next write (dropped when FRONT_EBUF is full: logging never waits).
 */
#ifndef HOSTGATE_FRONT_H
#define HOSTGATE_FRONT_H

#include "fcgi-app/request.h"

#define FRONT_CONNECTIONS 64

void front_serve(int sock, struct app *app, int max);
/* Asks front_serve to stop (a signal handler may call it). */
void front_stop(void);

#endif
