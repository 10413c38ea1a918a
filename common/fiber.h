/*
 * fiber — many requests in one process. Each request runs on a stack of its
 * own (a fiber) as the same synchronous code as before; wherever it waits on
 * a peer (the web server's connection, a backend's socket, a retry's pause)
 * it calls fiber_poll, which hands the processor to the other requests of the
 * process until its sockets are ready or its time is up. One epoll loop per
 * process (fiber_run) runs them. Switches happen only inside fiber_poll, so
 * state that is not held across a wait needs no protection
 * (docs/performance.md, "An event-driven worker").
 *
 *   fiber_init(max);                  after fork, once
 *   fiber_spawn(fn, arg);             fn(arg) runs on a fiber of its own
 *   fiber_run();                      returns when no fiber is left
 *
 * Outside a fiber (plain CGI, the tools), fiber_poll is poll(2) and
 * fiber_sleep is nanosleep(2): code that waits calls them either way.
 * Nothing may wait while it holds something another request of the process
 * could want (a shared-memory lock, a half-written log line): logging never
 * waits.
 */
#ifndef HOSTGATE_FIBER_H
#define HOSTGATE_FIBER_H

#include <poll.h>
#include <stdint.h>

/* A fiber's stack: deep enough for libcurl and OpenSSL below the handler
 * (the handler's own locals are up to 16 KiB a frame). Its pages are touched
 * only as far as they are used; a guard page below it. */
#define FIBER_STACK (512 * 1024)

/* Sets up this process's loop for at most max fibers at once. 0 or -1. */
int fiber_init(int max);
/* Starts fn(arg) on a fiber of its own; it runs from the loop's next turn.
 * Returns 0, or -1 (max fibers already, or no memory). */
int fiber_spawn(void (*fn)(void *arg), void *arg);
/* Fibers alive now, and at most. */
int fiber_count(void);
int fiber_max(void);
/* Runs the fibers until none is left. */
void fiber_run(void);
/* 1 when the caller runs on a fiber. */
int fiber_on(void);
/* poll(2), giving way to the other fibers while it waits. The same
 * arguments and result; a signal does not end the wait early. An fd may be
 * waited on by one fiber at a time. */
int fiber_poll(struct pollfd *fds, nfds_t n, int timeout_ms);
/* Waits ms milliseconds, giving way to the other fibers. */
void fiber_sleep(int64_t ms);
/* The fd is a listening socket shared by several processes: it stays in the
 * loop's epoll set (EPOLLEXCLUSIVE, so a new connection wakes one process)
 * instead of being added for each wait. fiber_unlisten takes it out (while
 * the process takes no connections). */
void fiber_listen(int fd);
void fiber_unlisten(int fd);
/* Fibers waiting for something another fiber of the process gives back (a
 * connection to a shared server): zero-initialised, FIFO. */
struct fiber;
struct fiber_queue {
	struct fiber *head, *tail;
};
/* Waits on q until fiber_wake or timeout_ms (-1: none): 1 woken, 0 not.
 * Outside a fiber nothing else runs to wake it: 0 at once. */
int fiber_wait(struct fiber_queue *q, int timeout_ms);
/* Wakes the first fiber waiting on q (every: all of them). */
void fiber_wake(struct fiber_queue *q, int every);
/* A pointer of the running fiber's own (NULL outside fibers). */
void *fiber_data(void);
void fiber_set_data(void *data);

#endif
