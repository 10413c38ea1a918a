/*
 * prefork — the supervisor of a FastCGI listener (`--listen`): a fixed number
 * of worker processes accepting on one socket, each started again when it
 * dies, all stopped when the supervisor gets SIGTERM or SIGINT.
 *
 *   sock = ...listening socket...;
 *   return prefork_run(sock, workers, serve_fastcgi, addr);
 *
 * serve(sock) runs in each worker, which installs its own signal handlers
 * first thing (the supervisor's are inherited until then) and exits when
 * serve returns. A worker killed by a signal is logged and replaced. Both
 * hostgate-fcgi and hostgate-manage run their listeners this way.
 * Returns 0 once every worker has exited after a stop.
 */
#ifndef HOSTGATE_PREFORK_H
#define HOSTGATE_PREFORK_H

#define PREFORK_MAX 256

int prefork_run(int sock, int workers, void (*serve)(int sock), const char *addr);

#endif
