/* The FastCGI front. See front.h. */
#define _GNU_SOURCE	/* accept4 */
#include "fcgi-app/front.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/log.h"
#include "common/prefork.h"
#include "fcgi-app/fcgirec.h"
#include "common/fiber.h"
#include "fcgi-app/handler.h"
#include "policy/gateway.h"

#define FCGIREC_ABORT_REQUEST 2
#define FCGI_KEEP_CONN 1
#define FCGI_CANT_MPX_CONN 1
#define FCGI_UNKNOWN_ROLE 3

/* the read buffer: a record's header and a piece of its content */
#define FRONT_IBUF 16384
/* the stdout buffer (front.h) */
#define FRONT_OBUF 65536
/* log lines waiting for the next write */
#define FRONT_EBUF 8192
/* all of a request's parameters: more than any web server sends (Apache's
 * 100 fields of 8 KiB, lighttpd's 64 KiB of headers) */
#define FRONT_PARAMS_MAX (1024 * 1024)
/* records per sendmsg: each is a header and up to two pieces */
#define FRONT_BATCH 8
/* how long a body that ran out of time is still drained once the answer is
 * out */
#define FRONT_LINGER_MS 250
/* a kept connection between requests, and the acceptor, look at the stop
 * flag this often */
#define FRONT_STOP_CHECK_MS 1000

static volatile sig_atomic_t stopping;
static struct app *the_app;
static struct conn *spare_conns;	/* ended connections' memory, for the next */
static struct fiber_queue full_wait;	/* the acceptor, while the process is full */
static int in_flight;		/* requests between their parameters and their end */

struct conn {
	int fd;
	int id;			/* the request's, 0: none */
	int keep;		/* FCGI_KEEP_CONN */
	int stdin_done;		/* the empty stdin record came */
	int broken;		/* the connection cannot be read on (EOF, error, abort) */
	size_t rec_left, rec_pad;	/* of the stdin record being read */
	size_t ipos, ilen;
	char *params;
	size_t plen, pcap;
	char **envp;
	int serving;		/* handle_request runs: its log lines come here */
	int ended;		/* front_answer_end ran: 1 sent, -1 failed */
	struct conn *next_spare;
	int err_used;		/* stderr records went out */
	size_t elen, olen;
	struct io io;
	char ebuf[FRONT_EBUF];
	char in[FRONT_IBUF];
	char obuf[FRONT_OBUF];
};

void front_stop(void)
{
	stopping = 1;
}

/* ---- reading ----------------------------------------------------------- */

/* Makes at least want bytes (at most FRONT_IBUF) readable in c->in, waiting
 * until deadline (monotonic ms; < 0: as long as it takes, but not past a
 * stop). Returns 1, 0 at the end of the connection or on an error, -1 when
 * the deadline passed (io->timed_out set). */
static int fill(struct conn *c, size_t want, int64_t deadline)
{
	if (c->ilen - c->ipos >= want)
		return 1;
	if (c->ipos) {
		memmove(c->in, c->in + c->ipos, c->ilen - c->ipos);
		c->ilen -= c->ipos;
		c->ipos = 0;
	}
	while (c->ilen < want) {
		ssize_t got;

		if (c->broken)
			return 0;
		got = recv(c->fd, c->in + c->ilen, sizeof(c->in) - c->ilen, MSG_DONTWAIT);
		if (got > 0) {
			c->ilen += (size_t)got;
			continue;
		}
		if (got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
			c->broken = 1;
			return 0;
		}
		if (errno == EINTR)
			continue;
		for (;;) {
			/* no deadline: wait in pieces, looking at the stop flag */
			struct io w = { .timed_out = 0 };

			if (deadline < 0 && stopping)
				return 0;
			if (io_wait_fd(&w, c->fd, POLLIN, deadline >= 0 ? deadline :
				       io_now_ms() + FRONT_STOP_CHECK_MS) == 0)
				break;
			if (!w.timed_out) {
				c->broken = 1;
				return 0;
			}
			if (deadline >= 0) {
				c->io.timed_out = 1;
				return -1;
			}
		}
	}
	return 1;
}

/* Skips (dst NULL) or copies n bytes of content. Returns as fill. */
static int take(struct conn *c, char *dst, size_t n, int64_t deadline)
{
	while (n) {
		size_t k;
		int rc = fill(c, 1, deadline);

		if (rc <= 0)
			return rc;
		k = c->ilen - c->ipos < n ? c->ilen - c->ipos : n;
		if (dst) {
			memcpy(dst, c->in + c->ipos, k);
			dst += k;
		}
		c->ipos += k;
		n -= k;
	}
	return 1;
}

struct rec {
	int type, id;
	size_t len, pad;
};

static int next_record(struct conn *c, struct rec *r, int64_t deadline)
{
	const unsigned char *h;
	int rc = fill(c, 8, deadline);

	if (rc <= 0)
		return rc;
	h = (const unsigned char *)c->in + c->ipos;
	if (h[0] != 1) {
		c->broken = 1;	/* not FastCGI 1 */
		return 0;
	}
	r->type = h[1];
	r->id = h[2] << 8 | h[3];
	r->len = (size_t)h[4] << 8 | h[5];
	r->pad = h[6];
	c->ipos += 8;
	return 1;
}

/* ---- writing ----------------------------------------------------------- */

/* Sends all of iov[0..n), waiting (within io's write deadline, counted from
 * the last progress) while the socket is full. 0, or -1 (write_failed set;
 * timed_out when the web server's side was too slow). */
static int sendv(struct conn *c, struct io *io, struct iovec *iov, int n)
{
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)n };

	while (m.msg_iovlen) {
		ssize_t w = sendmsg(c->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int rc = io_wait_fd(&c->io, c->fd, POLLOUT, io_write_deadline(io, io_now_ms()));

			if (c->io.timed_out)
				io->timed_out = 1;
			if (rc != 0)
				goto fail;
			continue;
		}
		if (w < 0)
			goto fail;
		while (m.msg_iovlen && (size_t)w >= m.msg_iov->iov_len) {
			w -= (ssize_t)m.msg_iov->iov_len;
			m.msg_iov++;
			m.msg_iovlen--;
		}
		if (m.msg_iovlen) {
			m.msg_iov->iov_base = (char *)m.msg_iov->iov_base + w;
			m.msg_iov->iov_len -= (size_t)w;
		}
	}
	return 0;
fail:
	io->write_failed = 1;
	c->io.write_failed = 1;
	return -1;
}

/* Sends the log lines held, what the stdout buffer holds and buf[0..n) as
 * records, then (end) the empty stdout record and FCGI_END_REQUEST. */
static int send_stdout(struct conn *c, struct io *io, const char *buf, size_t n, int end)
{
	unsigned char hdr[FRONT_BATCH + 1][8], tail[32];
	const char *held = c->obuf;
	size_t nheld = c->olen;

	do {
		struct iovec iov[FRONT_BATCH * 3 + 3];
		int k = 0, recs = 0;

		if (c->elen) {
			fcgirec_header(hdr[FRONT_BATCH], FCGIREC_STDERR, c->id, c->elen);
			iov[k++] = (struct iovec){ hdr[FRONT_BATCH], 8 };
			iov[k++] = (struct iovec){ c->ebuf, c->elen };
			c->err_used = 1;
		}
		while (recs < FRONT_BATCH && (nheld || n)) {
			size_t a = nheld < FCGIREC_MAX ? nheld : FCGIREC_MAX;
			size_t b = n < FCGIREC_MAX - a ? n : FCGIREC_MAX - a;

			fcgirec_header(hdr[recs], FCGIREC_STDOUT, c->id, a + b);
			iov[k++] = (struct iovec){ hdr[recs], 8 };
			if (a)
				iov[k++] = (struct iovec){ (void *)(uintptr_t)held, a };
			if (b)
				iov[k++] = (struct iovec){ (void *)(uintptr_t)buf, b };
			held += a;
			nheld -= a;
			buf += b;
			n -= b;
			recs++;
		}
		if (end && !nheld && !n) {
			size_t t = 0;

			if (c->err_used) {
				fcgirec_header(tail, FCGIREC_STDERR, c->id, 0);
				t = 8;
			}
			fcgirec_header(tail + t, FCGIREC_STDOUT, c->id, 0);
			fcgirec_header(tail + t + 8, FCGIREC_END_REQUEST, c->id, 8);
			/* appStatus 0, FCGI_REQUEST_COMPLETE */
			memset(tail + t + 16, 0, 8);
			iov[k++] = (struct iovec){ tail, t + 24 };
		}
		if (k && sendv(c, io, iov, k) != 0)
			return -1;
		c->elen = 0;
	} while (nheld || n);
	c->olen = 0;
	return 0;
}

static long front_read(struct io *io, char *buf, size_t n)
{
	struct conn *c = io->ctx;

	if (n == 0)
		return 0;
	for (;;) {
		struct rec r;
		int rc;

		if (c->stdin_done)
			return 0;
		if (c->rec_left) {
			size_t k;

			if (c->ipos == c->ilen) {
				int64_t now = io_now_ms(), deadline = io_read_deadline(io, now);

				if (deadline <= now) {
					io->timed_out = 1;
					return -1;
				}
				rc = fill(c, 1, deadline);
				if (rc < 0)
					io->timed_out = 1;
				if (rc <= 0)
					return -1;
			}
			k = c->ilen - c->ipos;
			if (k > c->rec_left)
				k = c->rec_left;
			if (k > n)
				k = n;
			memcpy(buf, c->in + c->ipos, k);
			c->ipos += k;
			c->rec_left -= k;
			io->body_read += (int64_t)k;
			return (long)k;
		}
		if (c->rec_pad) {
			rc = take(c, NULL, c->rec_pad, io_read_deadline(io, io_now_ms()));
			if (rc < 0)
				io->timed_out = 1;
			if (rc <= 0)
				return -1;
			c->rec_pad = 0;
		}
		{
			int64_t now = io_now_ms(), deadline = io_read_deadline(io, now);

			if (deadline <= now && c->ilen - c->ipos < 8) {
				io->timed_out = 1;
				return -1;
			}
			rc = next_record(c, &r, deadline);
		}
		if (rc < 0)
			io->timed_out = 1;
		if (rc <= 0)
			return -1;
		if (r.type == FCGIREC_STDIN && r.id == c->id) {
			if (r.len == 0) {
				c->stdin_done = 1;
				if (take(c, NULL, r.pad, io_read_deadline(io, io_now_ms())) <= 0)
					return -1;
				return 0;
			}
			c->rec_left = r.len;
			c->rec_pad = r.pad;
			continue;
		}
		if (r.type == FCGIREC_ABORT_REQUEST && r.id == c->id) {
			c->broken = 1;
			return -1;
		}
		/* anything else (another request's, a management record) is
		 * skipped while a request runs */
		rc = take(c, NULL, r.len + r.pad, io_read_deadline(io, io_now_ms()));
		if (rc < 0)
			io->timed_out = 1;
		if (rc <= 0)
			return -1;
	}
}

static int front_write(struct io *io, const char *buf, size_t n)
{
	struct conn *c = io->ctx;

	if (io->write_failed || c->io.write_failed)
		return -1;
	if (n <= FRONT_OBUF - c->olen) {
		if (n)
			memcpy(c->obuf + c->olen, buf, n);
		c->olen += n;
		return 0;
	}
	return send_stdout(c, io, buf, n, 0);
}

static int front_flush(struct io *io)
{
	struct conn *c = io->ctx;

	if (io->write_failed || c->io.write_failed)
		return -1;
	if (!c->olen && !c->elen)
		return 0;
	return send_stdout(c, io, NULL, 0, 0);
}

/* The answer gets one idle period of its own, even when the read that ran
 * out of time used up the request's: a 408 must still go out. */
static struct io answer_io(const struct io *io)
{
	struct io answer = *io;

	answer.timed_out = 0;
	answer.write_failed = 0;
	answer.started_ms = io_now_ms();
	answer.limits.request_ms = answer.limits.idle_ms;
	return answer;
}

/* io->end: the answer's end, once, before the request is logged; later log
 * lines go to the process's stderr. */
static int front_answer_end(struct io *io)
{
	struct conn *c = io->ctx;

	if (!c->ended) {
		struct io answer = answer_io(io);

		c->ended = send_stdout(c, &answer, NULL, 0, 1) == 0 ? 1 : -1;
	}
	return c->ended > 0 ? 0 : -1;
}

/* The request's log lines go to the web server on its connection, with the
 * next write; what does not fit is dropped. */
static void log_to_request(void *ctx, const char *line, size_t len)
{
	struct conn *c = fiber_data();

	(void)ctx;
	if (c && c->serving && !c->ended && !c->io.write_failed) {
		if (len <= sizeof(c->ebuf) - c->elen) {
			memcpy(c->ebuf + c->elen, line, len);
			c->elen += len;
		}
		return;
	}
	if (write(STDERR_FILENO, line, len) < 0)
		return;
}

/* ---- one connection ---------------------------------------------------- */

/* Sends a record of the front's own (outside a request's answer), within
 * the default idle deadline. 0, or -1. */
static int send_control(struct conn *c, struct iovec *iov, int n)
{
	struct io io = { .ctx = c };

	io.limits.idle_ms = io.limits.request_ms = GW_DEFAULT_CLIENT_IDLE_TIMEOUT_MS;
	io.started_ms = io_now_ms();
	return sendv(c, &io, iov, n);
}

/* Answers a management record (request id 0). 0, or -1. */
static int management(struct conn *c, const struct rec *r, int64_t deadline)
{
	char in[1024], out[256];
	unsigned char h[8];
	size_t n = 0, p = 0;
	char num[16];

	snprintf(num, sizeof(num), "%d", fiber_max() - 2);
	if (r->type != FCGIREC_GET_VALUES || r->len > sizeof(in)) {
		if (take(c, NULL, r->len + r->pad, deadline) <= 0)
			return -1;
		out[0] = (char)r->type;
		memset(out + 1, 0, 7);
		n = 8;
		fcgirec_header(h, FCGIREC_UNKNOWN_TYPE, 0, n);
	} else {
		if (take(c, in, r->len, deadline) <= 0 || take(c, NULL, r->pad, deadline) <= 0)
			return -1;
		/* the names asked for, each answered when it is one we know */
		while (p + 2 <= r->len) {
			size_t nl = (unsigned char)in[p], vl = (unsigned char)in[p + 1];
			const char *name = in + p + 2, *val = NULL;

			if (nl > 127 || vl > 127 || p + 2 + nl + vl > r->len)
				break;
			if (nl == 14 && !memcmp(name, "FCGI_MAX_CONNS", 14))
				val = num;
			else if (nl == 13 && !memcmp(name, "FCGI_MAX_REQS", 13))
				val = num;
			else if (nl == 15 && !memcmp(name, "FCGI_MPXS_CONNS", 15))
				val = "0";
			if (val && n + 2 + nl + strlen(val) <= sizeof(out)) {
				out[n++] = (char)nl;
				out[n++] = (char)strlen(val);
				memcpy(out + n, name, nl);
				n += nl;
				memcpy(out + n, val, strlen(val));
				n += strlen(val);
			}
			p += 2 + nl + vl;
		}
		fcgirec_header(h, FCGIREC_GET_VALUES_RESULT, 0, n);
	}
	{
		struct iovec iov[2] = { { h, 8 }, { out, n } };

		return send_control(c, iov, n ? 2 : 1);
	}
}

/* Refuses request id (a second one on this connection, or another role). */
static int end_request(struct conn *c, int id, int status)
{
	unsigned char rec[16];
	struct iovec iov = { rec, sizeof(rec) };

	fcgirec_header(rec, FCGIREC_END_REQUEST, id, 8);
	memset(rec + 8, 0, 8);
	rec[12] = (unsigned char)status;
	return send_control(c, &iov, 1);
}

/* Reads up to the end of a request's parameters. 1: a request to answer;
 * 0: the connection is over. */
static int begin(struct conn *c, int first)
{
	int64_t deadline = first ? io_now_ms() + GW_DEFAULT_CLIENT_IDLE_TIMEOUT_MS : -1;

	for (;;) {
		struct rec r;
		unsigned char b[8];

		if (next_record(c, &r, deadline) <= 0)
			return 0;
		if (r.id == 0) {
			if (management(c, &r, io_now_ms() + GW_DEFAULT_CLIENT_IDLE_TIMEOUT_MS) != 0)
				return 0;
			continue;
		}
		/* the web server has started talking: the rest comes in time */
		if (deadline < 0)
			deadline = io_now_ms() + GW_DEFAULT_CLIENT_IDLE_TIMEOUT_MS;
		if (r.type == FCGIREC_BEGIN_REQUEST) {
			if (r.len != 8 || take(c, (char *)b, 8, deadline) <= 0 ||
			    take(c, NULL, r.pad, deadline) <= 0)
				return 0;
			if (c->id && r.id != c->id) {
				if (end_request(c, r.id, FCGI_CANT_MPX_CONN) != 0)
					return 0;
				continue;
			}
			if ((b[0] << 8 | b[1]) != FCGIREC_RESPONDER) {
				if (end_request(c, r.id, FCGI_UNKNOWN_ROLE) != 0)
					return 0;
				continue;
			}
			c->id = r.id;
			c->keep = b[2] & FCGI_KEEP_CONN;
			c->plen = 0;
			continue;
		}
		if (r.type == FCGIREC_PARAMS && r.id == c->id) {
			if (r.len == 0) {
				if (take(c, NULL, r.pad, deadline) <= 0)
					return 0;
				return fcgirec_params(c->params, c->plen, &c->envp) == 0;
			}
			if (c->plen + r.len > FRONT_PARAMS_MAX) {
				log_warn("a request's FastCGI parameters pass %d bytes: connection "
					 "dropped", FRONT_PARAMS_MAX);
				return 0;
			}
			if (c->plen + r.len > c->pcap) {
				size_t cap = c->pcap ? c->pcap : 4096;
				char *p;

				while (cap < c->plen + r.len)
					cap *= 2;
				if (!(p = realloc(c->params, cap)))
					return 0;
				c->params = p;
				c->pcap = cap;
			}
			if (take(c, c->params + c->plen, r.len, deadline) <= 0 ||
			    take(c, NULL, r.pad, deadline) <= 0)
				return 0;
			c->plen += r.len;
			continue;
		}
		if (r.type == FCGIREC_ABORT_REQUEST && r.id == c->id) {
			/* before it started: nothing to answer but its end */
			if (take(c, NULL, r.len + r.pad, deadline) <= 0 ||
			    end_request(c, r.id, 0) != 0)
				return 0;
			c->id = 0;
			continue;
		}
		if (!c->id || r.id == c->id)
			return 0;	/* out of order: not FastCGI as we speak it */
		if (take(c, NULL, r.len + r.pad, deadline) <= 0)
			return 0;	/* another request's record: skipped */
	}
}

/* Ends the request: the answer first, then whatever of the body nobody read
 * (Apache's mod_proxy_fcgi passes the answer on only once it has sent the
 * whole body, so an upload refused with 413 must still be taken; a body that
 * ran out of time gets FRONT_LINGER_MS). Returns 1 when the connection
 * can take the next request. */
static int finish(struct conn *c)
{
	struct io *io = &c->io;
	struct io answer = answer_io(io), *drain;
	char buf[4096];
	long n = 0;

	if (io->aborted || io->write_failed) {
		/* no FCGI_END_REQUEST: the web server sees the answer cut short,
		 * after what it had put out */
		if (!io->write_failed)
			(void)front_flush(io);
		return 0;
	}
	if (front_answer_end(io) != 0)
		return 0;
	answer.started_ms = io_now_ms();
	answer.body_read = 0;
	answer.limits.request_ms = FRONT_LINGER_MS;
	answer.limits.body_ms = FRONT_LINGER_MS;
	drain = io_read_deadline(io, answer.started_ms) > answer.started_ms + FRONT_LINGER_MS ?
		io : &answer;
	while (!c->stdin_done && (n = front_read(drain, buf, sizeof(buf))) > 0)
		;
	return n >= 0 && c->stdin_done && c->keep;
}

static void busy(int delta)
{
	in_flight += delta;
	if (in_flight == delta)
		prefork_busy(1);	/* the first at once */
	else if (in_flight == 0)
		prefork_busy(0);
}

static void conn_main(void *arg)
{
	struct conn *c = arg;
	int first = 1;

	fiber_set_data(c);
	for (;;) {
		int again;

		if (!begin(c, first))
			break;
		first = 0;
		busy(1);
		memset(&c->io, 0, sizeof(c->io));
		c->io.params = c->envp;
		c->io.read = front_read;
		c->io.write = front_write;
		c->io.flush = front_flush;
		c->io.end = front_answer_end;
		c->io.ctx = c;
		io_start(&c->io);
		c->serving = 1;
		handle_request(the_app, &c->io);
		again = finish(c);
		c->serving = 0;
		busy(-1);
		free(c->envp);
		c->envp = NULL;
		c->id = 0;
		c->stdin_done = 0;
		c->rec_left = c->rec_pad = 0;
		c->ended = 0;
		c->err_used = 0;
		c->olen = c->elen = 0;
		if (!again || stopping)
			break;
	}
	if (!c->stdin_done && c->id)
		shutdown(c->fd, SHUT_RDWR);	/* a body left unread: not a reset */
	close(c->fd);
	free(c->envp);
	free(c->params);
	c->next_spare = spare_conns;
	spare_conns = c;
	fiber_wake(&full_wait, 0);	/* an acceptor of a full process */
}

/* ---- the listener ------------------------------------------------------ */

static void acceptor(void *arg)
{
	int sock = *(int *)arg;

	while (!stopping) {
		struct pollfd p = { .fd = sock, .events = POLLIN };

		if (fiber_count() >= fiber_max()) {
			/* full: the connections wait in the listen queue, where
			 * another process may take them, until one of ours ends
			 * (its fiber is gone when this one runs again) */
			fiber_unlisten(sock);
			while (!stopping && fiber_count() >= fiber_max())
				(void)fiber_wait(&full_wait, FRONT_STOP_CHECK_MS);
			continue;
		}
		fiber_listen(sock);
		if (fiber_poll(&p, 1, FRONT_STOP_CHECK_MS) <= 0)
			continue;
		while (fiber_count() < fiber_max()) {
			int fd = accept4(sock, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
			struct conn *c;

			if (fd < 0) {
				if (errno == EMFILE || errno == ENFILE || errno == ENOMEM ||
				    errno == ENOBUFS) {
					log_err("cannot accept a connection: %s", strerror(errno));
					fiber_sleep(100);
				}
				break;
			}
			c = spare_conns;
			if (c)
				spare_conns = c->next_spare;
			else
				c = malloc(sizeof(*c));
			if (c) {
				memset(c, 0, offsetof(struct conn, ebuf));
				c->fd = fd;
			}
			if (!c || fiber_spawn(conn_main, c) != 0) {
				log_err("cannot take a connection: out of memory");
				free(c);
				close(fd);
				break;
			}
		}
	}
	fiber_unlisten(sock);
}

/* The process's own clock: app_tick (handler.h) when it is due, so that a
 * new image is mapped (or a finished load taken) between requests, not when
 * the next one is already waiting, and by an idle process too. */
static void ticker(void *arg)
{
	(void)arg;
	while (!stopping) {
		int64_t ms = app_tick(the_app);

		fiber_sleep(ms > FRONT_STOP_CHECK_MS ? FRONT_STOP_CHECK_MS : ms);
	}
}

void front_serve(int sock, struct app *app, int max)
{
	int fl = fcntl(sock, F_GETFL);

	the_app = app;
	/* several processes wait on one socket: the ones a connection did not
	 * go to must not block in accept */
	if (fl >= 0)
		(void)fcntl(sock, F_SETFL, fl | O_NONBLOCK);
	if (fiber_init(max + 2) != 0 || fiber_spawn(acceptor, &sock) != 0 ||
	    fiber_spawn(ticker, NULL) != 0)
		fatal("cannot set up the FastCGI front: %s", strerror(errno));
	log_set_hook(log_to_request, NULL);
	fiber_run();
	log_set_hook(NULL, NULL);
	while (spare_conns) {
		struct conn *c = spare_conns;

		spare_conns = c->next_spare;
		free(c);
	}
}
