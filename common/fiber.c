/* Fibers over one epoll loop. See fiber.h. */
#include "common/fiber.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "common/log.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define FIBER_ASAN 1
#endif

enum { F_RUNNABLE, F_WAITING, F_DONE };

struct fiber {
	ucontext_t uc;
	char *stack;		/* the mapping: the guard page, then the stack */
	void (*fn)(void *arg);
	void *arg;
	void *data;
	int state;
	int queued;		/* on the run queue */
	struct pollfd *fds;	/* what it waits on */
	nfds_t nfds;
	int nready;
	uint64_t wait_id;	/* which wait an fd's event belongs to */
	int64_t deadline;	/* monotonic ms, -1: none */
	struct fiber *next;	/* run queue */
	struct fiber_queue *q;	/* fiber_wait: the queue it is on */
	struct fiber *qnext;
	void *fake_stack;	/* ASan's, across a switch */
};

/* What the loop knows of an fd: in the epoll set, and who waits on it. */
struct fdreg {
	struct fiber *f;
	uint64_t wait_id;
	unsigned char added;	/* in the epoll set (it may have been closed since) */
	unsigned char listen;	/* fiber_listen */
};

static int ep = -1;
static int max_fibers, n_fibers;
static struct fiber **all;	/* the live fibers */
static struct fiber *current;
static struct fiber *run_head, *run_tail;
static ucontext_t loop_uc;
static struct fdreg *regs;
static size_t n_regs;
static char **spare_stacks;	/* stacks of finished fibers, for the next */
static int n_spare;
static uint64_t wait_ids;
static size_t page;
#ifdef FIBER_ASAN
static const void *loop_bottom;
static size_t loop_size;
#endif

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int fiber_init(int max)
{
	page = (size_t)sysconf(_SC_PAGESIZE);
	ep = epoll_create1(EPOLL_CLOEXEC);
	all = calloc((size_t)max, sizeof(*all));
	spare_stacks = calloc((size_t)max, sizeof(*spare_stacks));
	if (ep < 0 || !all || !spare_stacks)
		return -1;
	max_fibers = max;
	return 0;
}

int fiber_count(void)
{
	return n_fibers;
}

int fiber_max(void)
{
	return max_fibers;
}

int fiber_on(void)
{
	return current != NULL;
}

void *fiber_data(void)
{
	return current ? current->data : NULL;
}

void fiber_set_data(void *data)
{
	if (current)
		current->data = data;
}

static void make_runnable(struct fiber *f)
{
	if (f->queued)
		return;
	f->queued = 1;
	f->next = NULL;
	if (run_tail)
		run_tail->next = f;
	else
		run_head = f;
	run_tail = f;
}

static void fiber_main(void)
{
	struct fiber *f = current;

#ifdef FIBER_ASAN
	__sanitizer_finish_switch_fiber(NULL, &loop_bottom, &loop_size);
#endif
	f->fn(f->arg);
	f->state = F_DONE;
#ifdef FIBER_ASAN
	__sanitizer_start_switch_fiber(NULL, loop_bottom, loop_size);
#endif
	setcontext(&loop_uc);
}

int fiber_spawn(void (*fn)(void *arg), void *arg)
{
	struct fiber *f;

	if (n_fibers >= max_fibers || !(f = calloc(1, sizeof(*f))))
		return -1;
	if (n_spare) {
		f->stack = spare_stacks[--n_spare];
	} else {
		f->stack = mmap(NULL, FIBER_STACK + page, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
		if (f->stack == MAP_FAILED || mprotect(f->stack, page, PROT_NONE) != 0) {
			if (f->stack != MAP_FAILED)
				munmap(f->stack, FIBER_STACK + page);
			free(f);
			return -1;
		}
	}
	if (getcontext(&f->uc) != 0) {
		spare_stacks[n_spare++] = f->stack;
		free(f);
		return -1;
	}
	f->uc.uc_stack.ss_sp = f->stack + page;
	f->uc.uc_stack.ss_size = FIBER_STACK;
	f->uc.uc_link = NULL;
	makecontext(&f->uc, fiber_main, 0);
	f->fn = fn;
	f->arg = arg;
	f->deadline = -1;
	all[n_fibers++] = f;
	make_runnable(f);
	return 0;
}

/* swapcontext(from, to), as getcontext and setcontext: AddressSanitizer
 * intercepts swapcontext only to warn that it may see false positives, which
 * the annotations around every switch here rule out. */
static void switch_context(ucontext_t *from, const ucontext_t *to)
{
	volatile int resumed = 0;

	getcontext(from);
	if (!resumed) {
		resumed = 1;
		setcontext(to);
	}
}

/* From the loop to f, until it waits or ends. */
static void switch_to(struct fiber *f)
{
	void *fake = NULL;

	current = f;
#ifdef FIBER_ASAN
	__sanitizer_start_switch_fiber(&fake, f->stack + page, FIBER_STACK);
#endif
	switch_context(&loop_uc, &f->uc);
#ifdef FIBER_ASAN
	__sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
	(void)fake;
	current = NULL;
}

/* From the running fiber back to the loop; returns when it runs again. */
static void yield(void)
{
	struct fiber *f = current;

#ifdef FIBER_ASAN
	__sanitizer_start_switch_fiber(&f->fake_stack, loop_bottom, loop_size);
#endif
	switch_context(&f->uc, &loop_uc);
#ifdef FIBER_ASAN
	__sanitizer_finish_switch_fiber(f->fake_stack, &loop_bottom, &loop_size);
#endif
}

static void reap(struct fiber *f)
{
	for (int i = 0; i < n_fibers; i++)
		if (all[i] == f) {
			all[i] = all[--n_fibers];
			break;
		}
	if (n_spare < max_fibers)
		spare_stacks[n_spare++] = f->stack;
	else
		munmap(f->stack, FIBER_STACK + page);
	free(f);
}

static struct fdreg *reg_of(int fd)
{
	if ((size_t)fd >= n_regs) {
		size_t n = (size_t)fd + 64;
		struct fdreg *r = realloc(regs, n * sizeof(*r));

		if (!r)
			return NULL;
		memset(r + n_regs, 0, (n - n_regs) * sizeof(*r));
		regs = r;
		n_regs = n;
	}
	return &regs[fd];
}

/* Puts fd in the epoll set for events, once (EPOLLONESHOT: a wait arms it;
 * an event no wait is left to take disarms it). */
static int arm(int fd, short events)
{
	struct fdreg *r = reg_of(fd);
	struct epoll_event ev = { .events = (uint32_t)events | EPOLLONESHOT, .data.fd = fd };

	if (!r)
		return -1;
	if (r->listen)
		return 0;
	if (r->added && epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) == 0)
		return 0;
	/* new, or closed and its number taken again since (the kernel then
	 * dropped it from the set) */
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0 ||
	    (errno == EEXIST && epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) == 0)) {
		r->added = 1;
		return 0;
	}
	return -1;
}

void fiber_listen(int fd)
{
	struct fdreg *r = reg_of(fd);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLEXCLUSIVE, .data.fd = fd };

	if (!r || r->listen)
		return;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0)
		r->listen = 1;
}

void fiber_unlisten(int fd)
{
	struct fdreg *r = reg_of(fd);

	if (!r || !r->listen)
		return;
	(void)epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
	r->listen = 0;
	r->f = NULL;
}

/* The running fiber f waits until something makes it runnable (an fd's
 * event, a wake) or the deadline (monotonic ms, -1: none) passes. */
static void park(struct fiber *f, int64_t deadline)
{
	f->deadline = deadline;
	f->state = F_WAITING;
	yield();
	f->state = F_RUNNABLE;
	f->deadline = -1;
}

int fiber_poll(struct pollfd *fds, nfds_t n, int timeout_ms)
{
	struct fiber *f = current;
	int64_t deadline;

	if (!f || timeout_ms == 0) {
		return poll(fds, n, timeout_ms);
	}
	deadline = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
	f->wait_id = ++wait_ids;
	for (nfds_t i = 0; i < n; i++) {
		struct fdreg *r;

		fds[i].revents = 0;
		if (fds[i].fd < 0)
			continue;
		if (arm(fds[i].fd, fds[i].events) != 0) {
			/* not a socket epoll takes: say so, as poll would */
			fds[i].revents = POLLNVAL;
			continue;
		}
		r = &regs[fds[i].fd];
		r->f = f;
		r->wait_id = f->wait_id;
	}
	f->fds = fds;
	f->nfds = n;
	f->nready = 0;
	for (nfds_t i = 0; i < n; i++)
		if (fds[i].revents)
			f->nready++;
	if (f->nready)
		return f->nready;
	park(f, deadline);
	for (nfds_t i = 0; i < n; i++)
		if (fds[i].fd >= 0 && (size_t)fds[i].fd < n_regs && regs[fds[i].fd].f == f)
			regs[fds[i].fd].f = NULL;
	f->fds = NULL;
	f->nfds = 0;
	return f->nready;
}

void fiber_sleep(int64_t ms)
{
	if (ms <= 0)
		return;
	if (!current) {
		struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
		return;
	}
	while (ms > 0) {
		int64_t t0 = mono_ms();

		(void)fiber_poll(NULL, 0, ms > INT_MAX ? INT_MAX : (int)ms);
		ms -= mono_ms() - t0;
	}
}

int fiber_wait(struct fiber_queue *q, int timeout_ms)
{
	struct fiber *f = current;

	if (!f || timeout_ms == 0)
		return 0;
	f->q = q;
	f->qnext = NULL;
	if (q->tail)
		q->tail->qnext = f;
	else
		q->head = f;
	q->tail = f;
	f->fds = NULL;
	f->nfds = 0;
	f->nready = 0;
	park(f, timeout_ms < 0 ? -1 : mono_ms() + timeout_ms);
	if (f->q) {
		/* its time ran out first: off the queue */
		struct fiber **p = &q->head, *prev = NULL;

		while (*p && *p != f) {
			prev = *p;
			p = &(*p)->qnext;
		}
		if (*p)
			*p = f->qnext;
		if (q->tail == f)
			q->tail = prev;
		f->q = NULL;
	}
	return f->nready > 0;
}

void fiber_wake(struct fiber_queue *q, int every)
{
	while (q->head) {
		struct fiber *f = q->head;

		q->head = f->qnext;
		if (!q->head)
			q->tail = NULL;
		f->q = NULL;
		if (f->queued)
			continue;	/* its time ran out: it runs next and says so */
		f->nready = 1;
		make_runnable(f);
		if (!every)
			break;
	}
}

/* An event for fd: the fiber waiting on it, if this wait is still its. */
static void deliver(int fd, uint32_t events)
{
	struct fdreg *r = (size_t)fd < n_regs ? &regs[fd] : NULL;
	struct fiber *f = r ? r->f : NULL;

	if (!f || f->state != F_WAITING || r->wait_id != f->wait_id)
		return;
	for (nfds_t i = 0; i < f->nfds; i++)
		if (f->fds[i].fd == fd) {
			short rev = (short)(events & (EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP |
						      EPOLLPRI));

			if (!f->fds[i].revents && rev)
				f->nready++;
			f->fds[i].revents |= rev;
		}
	if (f->nready > 0)
		make_runnable(f);
}

void fiber_run(void)
{
	struct epoll_event evs[64];

	while (n_fibers) {
		int64_t now, next = -1;
		int n, timeout;

		while (run_head) {
			struct fiber *f = run_head;

			run_head = f->next;
			if (!run_head)
				run_tail = NULL;
			f->queued = 0;
			switch_to(f);
			if (f->state == F_DONE)
				reap(f);
		}
		if (!n_fibers)
			break;
		now = mono_ms();
		for (int i = 0; i < n_fibers; i++) {
			struct fiber *f = all[i];

			if (f->state != F_WAITING || f->deadline < 0)
				continue;
			if (f->deadline <= now) {
				make_runnable(f);
				continue;
			}
			if (next < 0 || f->deadline < next)
				next = f->deadline;
		}
		if (run_head)
			timeout = 0;
		else if (next < 0)
			timeout = -1;
		else
			timeout = next - now > INT_MAX ? INT_MAX : (int)(next - now);
		n = epoll_wait(ep, evs, (int)(sizeof(evs) / sizeof(evs[0])), timeout);
		if (n < 0 && errno != EINTR)
			fatal("epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n; i++)
			deliver(evs[i].data.fd, evs[i].events);
	}
}
