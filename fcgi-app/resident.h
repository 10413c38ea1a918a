/*
 * resident — CGI with resident workers. Where a host runs hostgate only as a
 * CGI program, HOSTGATE_CGI_WORKERS=N in its environment lets each CGI
 * process hand its request to N hostgate workers that stay up between
 * requests: the first CGI process that finds none starts them (and serves its
 * own request itself), and they stop after HOSTGATE_CGI_IDLE_S seconds
 * (default 300) without a request. A request then costs this relay plus a
 * worker's share, instead of starting libcurl and OpenSSL in every process,
 * and backend connections and TLS sessions are reused (docs/deploying.md,
 * "CGI with resident workers").
 *
 *   in the CGI process, before anything else (main.c, serve_cgi):
 *     rc = resident_relay(nph);
 *     rc >= 0: the workers answered, rc is the exit status;
 *     rc < 0: serve the request here (none set up, none reachable, or the
 *             one reached went before it took the request; nothing has been
 *             read from stdin or written to stdout)
 *   hostgate-fcgi --cgi-workers, the supervisor a CGI process starts:
 *     return resident_serve(serve_fastcgi);
 *
 * The relay speaks FastCGI to the workers over a Unix socket,
 * $HOSTGATE_STATE_DIR/cgi-workers/KEY.sock (with KEY.lock, held by the
 * supervisor for its life, and KEY.log, its own log lines). The directory is
 * made 0700; the relay uses it only when it is a directory owned by the
 * process's user that nobody else can write, and talks only to a process of
 * that user (SO_PEERCRED) — a co-tenant cannot stand in for the workers. KEY
 * is a hash of the binary (device, inode, size, mtime) and of the environment
 * the workers get (every HOSTGATE_* variable and the few others listed in
 * resident.c), so another configuration or a new binary never reaches
 * workers started for the old one.
 *
 * The relay waits only while the worker lives: the worker holds the document's
 * client deadlines and enforces them through the relay (which reads the body
 * only as fast as the worker takes it, and the answer only as fast as the
 * client does). Once the worker is gone, what is left is delivered with
 * RESIDENT_TAIL_MS per wait.
 */
#ifndef HOSTGATE_RESIDENT_H
#define HOSTGATE_RESIDENT_H

#define RESIDENT_TAIL_MS 10000

/* nph: the CGI program runs in NPH mode (nph.h): the answer is framed here. */
int resident_relay(int nph);
/* Runs the supervisor and its workers until they stop (prefork.h); returns
 * the exit status. Exits 0 at once when another supervisor holds the lock. */
int resident_serve(void (*serve)(int sock));

#endif
