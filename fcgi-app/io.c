/*
 * io — the request variables and the client's deadlines, the same for every
 * front (io.h).
 */
#include "fcgi-app/io.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <time.h>

#include "common/fiber.h"

#include "policy/gateway.h"

const char *io_param(const struct io *io, const char *name)
{
	size_t n = strlen(name);

	/* a request looks up about 15 names among 20-40 variables: the first
	 * byte rules out most of them without a call (a strncmp each made
	 * this 6% of a worker's instructions per small request, issue 15) */
	if (!n)
		return NULL;
	for (char **p = io->params; p && *p; p++)
		if ((*p)[0] == name[0] && strncmp(*p + 1, name + 1, n - 1) == 0 && (*p)[n] == '=')
			return *p + n + 1;
	return NULL;
}

int io_wait_fd(struct io *io, int fd, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		int64_t left = deadline - io_now_ms();
		int rc;

		if (left <= 0) {
			io->timed_out = 1;
			return -1;
		}
		rc = fiber_poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (rc > 0)
			return 0;
		if (rc < 0 && errno != EINTR)
			return -1;
	}
}

int64_t io_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void io_start(struct io *io)
{
	const struct io_limits def = {
		GW_DEFAULT_CLIENT_REQUEST_TIMEOUT_MS, GW_DEFAULT_CLIENT_IDLE_TIMEOUT_MS,
		GW_DEFAULT_CLIENT_BODY_TIMEOUT_MS, GW_DEFAULT_CLIENT_BODY_MIN_RATE,
	};

	io->started_ms = io_now_ms();
	io->limits = def;
	io->body_read = 0;
	io->timed_out = 0;
	io->write_failed = 0;
}

void io_set_limits(struct io *io, const struct io_limits *limits)
{
	io->limits = *limits;
}

int64_t io_request_deadline(const struct io *io)
{
	return io->started_ms + io->limits.request_ms;
}

int64_t io_read_deadline(const struct io *io, int64_t now)
{
	const struct io_limits *l = &io->limits;
	int64_t d = now + l->idle_ms, rate = l->body_min_rate > 0 ? l->body_min_rate : 1;
	/* mod_reqtimeout's MinRate: each min_rate bytes received buy one more
	 * second, so a fast upload of any size goes through while a trickle runs
	 * out of time after the grace period, however steady it is */
	int64_t body = io->started_ms + l->body_ms +
		       (io->body_read > INT64_MAX / 1000 ? INT64_MAX / 2 : io->body_read * 1000 / rate);

	if (body < d)
		d = body;
	if (io_request_deadline(io) < d)
		d = io_request_deadline(io);
	return d;
}

int64_t io_write_deadline(const struct io *io, int64_t now)
{
	int64_t d = now + io->limits.idle_ms;

	return io_request_deadline(io) < d ? io_request_deadline(io) : d;
}
