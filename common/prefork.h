/*
 * prefork — the supervisor of a FastCGI listener (`--listen`): a fixed number
 * of worker processes accepting on one socket, each started again when it
 * dies, all stopped when the supervisor gets SIGTERM or SIGINT.
 *
 *   sock = ...listening socket...;
 *   return prefork_run(sock, workers, serve_fastcgi, addr, 0);
 *
 * serve(sock) runs in each worker, which installs its own signal handlers
 * first thing (the supervisor's are inherited until then) and exits when
 * serve returns. A worker killed by a signal is logged and replaced. Both
 * hostgate-fcgi and hostgate-manage run their listeners this way.
 *
 * idle_s > 0 also stops them all once no request has run for idle_s seconds
 * (the CGI front's resident workers, fcgi-app/resident.h): a worker calls
 * prefork_busy(1) when it has taken a request and prefork_busy(0) when it is
 * done with it (no-ops outside such a supervisor). The socket is shut down
 * first, so that a new connection is refused at once instead of waiting in
 * the queue of a listener about to go.
 * Returns 0 once every worker has exited after a stop.
 */
#ifndef HOSTGATE_PREFORK_H
#define HOSTGATE_PREFORK_H

#define PREFORK_MAX 256

int prefork_run(int sock, int workers, void (*serve)(int sock), const char *addr, int idle_s);
/* In a worker: 1 when it has taken a request, 0 when it is done with it. */
void prefork_busy(int busy);

#endif
