/* The supervisor of a FastCGI listener. See prefork.h. */
#include "common/prefork.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"

static volatile sig_atomic_t stopping;

static void on_stop(int sig)
{
	(void)sig;
	stopping = 1;
}

static pid_t spawn(int sock, void (*serve)(int sock))
{
	pid_t pid = fork();

	if (pid == 0) {
		serve(sock);
		/* exit, not _exit: a sanitizer build checks for leaks at exit, and
		 * the supervisor leaves nothing to flush or run twice (it has set
		 * up no libcurl, stdio buffer or atexit handler before the fork) */
		exit(0);
	}
	if (pid < 0)
		log_err("cannot start a worker: %s", strerror(errno));
	return pid;
}

int prefork_run(int sock, int workers, void (*serve)(int sock), const char *addr)
{
	pid_t pids[PREFORK_MAX];
	struct sigaction sa;

	if (workers < 1 || workers > PREFORK_MAX)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;	/* no SA_RESTART: wait() must return */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	for (int i = 0; i < workers; i++)
		pids[i] = spawn(sock, serve);
	log_info("listening on '%s' with %d workers", addr, workers);
	while (!stopping) {
		int status;
		pid_t pid = wait(&status);

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
			pids[i] = stopping ? -1 : spawn(sock, serve);
		}
	}
	for (int i = 0; i < workers; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGTERM);
	while (wait(NULL) > 0 || errno == EINTR)
		;
	return 0;
}
