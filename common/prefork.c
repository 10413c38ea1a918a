/* The supervisor of a FastCGI listener. See prefork.h. */
#include "common/prefork.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

static volatile sig_atomic_t stopping;

/* With idle_s: one slot per worker in memory the supervisor and its workers
 * share; a worker writes only its own. */
struct slot {
	int busy;
	int64_t last_s;		/* when it last took or finished a request */
};
static struct slot *slots;
static int my_slot = -1;

static void on_stop(int sig)
{
	(void)sig;
	stopping = 1;
}

static void on_alarm(int sig)
{
	(void)sig;
}

static int64_t now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

void prefork_busy(int busy)
{
	if (!slots || my_slot < 0)
		return;
	__atomic_store_n(&slots[my_slot].last_s, now_s(), __ATOMIC_RELAXED);
	__atomic_store_n(&slots[my_slot].busy, busy, __ATOMIC_RELEASE);
}

static pid_t spawn(int sock, void (*serve)(int sock), int slot)
{
	sigset_t stop, old;
	pid_t pid;

	/* A stop signal must never reach a new worker while it still has the
	 * supervisor's handler, which would swallow it: the worker would then
	 * serve on, and the supervisor wait for it for good. (It happens: a
	 * worker stopped by the same kill as its supervisor is reported to
	 * the supervisor, and replaced, before the supervisor's own signal.)
	 * The child gets the default action first, then the signal. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigprocmask(SIG_BLOCK, &stop, &old);
	pid = fork();
	if (pid == 0) {
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGALRM, SIG_DFL);
		sigprocmask(SIG_SETMASK, &old, NULL);
		my_slot = slot;
		serve(sock);
		/* exit, not _exit: a sanitizer build checks for leaks at exit, and
		 * the supervisor leaves nothing to flush or run twice (it has set
		 * up no libcurl, stdio buffer or atexit handler before the fork) */
		exit(0);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (pid < 0)
		log_err("cannot start a worker: %s", strerror(errno));
	return pid;
}

/* Seconds since the last request anywhere, or -1 while one runs. */
static int64_t idle_for(int workers, int64_t now)
{
	int64_t last = 0;

	for (int i = 0; i < workers; i++) {
		if (__atomic_load_n(&slots[i].busy, __ATOMIC_ACQUIRE))
			return -1;
		int64_t t = __atomic_load_n(&slots[i].last_s, __ATOMIC_RELAXED);

		if (t > last)
			last = t;
	}
	return now - last;
}

int prefork_run(int sock, int workers, void (*serve)(int sock), const char *addr, int idle_s)
{
	pid_t pids[PREFORK_MAX];
	struct sigaction sa;

	if (workers < 1 || workers > PREFORK_MAX)
		return -1;
	if (idle_s > 0) {
		slots = mmap(NULL, sizeof(*slots) * (size_t)workers, PROT_READ | PROT_WRITE,
			     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (slots == MAP_FAILED)
			return -1;
		for (int i = 0; i < workers; i++)
			slots[i] = (struct slot){ .busy = 0, .last_s = now_s() };
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;	/* no SA_RESTART: wait() must return */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	for (int i = 0; i < workers; i++)
		pids[i] = spawn(sock, serve, i);
	log_info("listening on '%s' with %d workers", addr, workers);
	while (!stopping) {
		int status;
		pid_t pid;

		if (idle_s > 0) {
			int64_t idle = idle_for(workers, now_s());

			if (idle >= idle_s) {
				log_info("no request for %d s: stopping", idle_s);
				/* a connect from now on is refused (and its CGI
				 * process serves the request itself), instead of
				 * queueing for workers about to go */
				shutdown(sock, SHUT_RDWR);
				break;
			}
			alarm(idle < 0 ? 1 : (unsigned)(idle_s - idle));
		}
		pid = wait(&status);
		if (pid < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < workers; i++) {
			if (pids[i] != pid)
				continue;
			if (WIFSIGNALED(status))
				log_err("worker %ld died of signal %d: starting another",
					(long)pid, WTERMSIG(status));
			if (slots)
				slots[i] = (struct slot){ .busy = 0, .last_s = now_s() };
			pids[i] = stopping ? -1 : spawn(sock, serve, i);
		}
	}
	alarm(0);
	for (int i = 0; i < workers; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGTERM);
	while (wait(NULL) > 0 || errno == EINTR)
		;
	return 0;
}
