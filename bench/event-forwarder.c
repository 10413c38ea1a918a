/*
 * event-forwarder — bench/bare-forwarder.c's yardstick turned event-driven,
 * to measure what an event-driven hostgate worker could gain before anyone
 * writes one (docs/performance.md, issue 15, tenth session). Each process
 * multiplexes many FastCGI connections and upstream transfers: epoll, its own
 * FastCGI record parser, and libcurl's multi interface, whose connection
 * cache keeps the upstream connections (and their TLS sessions) across
 * requests, as the blocking forwarder's one handle does.
 *
 *   BARE_UPSTREAM=https://127.0.0.1:PORT BARE_MOUNT=/bare BARE_CAFILE=ca.pem \
 *       event-forwarder --listen unix:/path.sock --workers N
 *
 * The same contract as bare-forwarder: strips BARE_MOUNT from REQUEST_URI,
 * GETs BARE_UPSTREAM + the rest, returns the status, Content-Type and body;
 * nothing forwarded, nothing checked, request bodies ignored. A connection
 * whose BEGIN_REQUEST sets FCGI_KEEP_CONN (mod_proxy_fcgi with enablereuse=on)
 * waits for its next request; others are closed after the answer (lighttpd).
 * Do not use it for anything but measuring. Built by bench/tls in its temp dir.
 */
#define _GNU_SOURCE	/* accept4 */
#include <curl/curl.h>

#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include "../fcgi-app/fcgirec.h"
#include "forwarder.h"

#define MAX_URL 8192
#define IN_MAX 65536

enum kind { K_LISTEN, K_CONN, K_CURL };

struct conn {
	enum kind kind;		/* first: epoll's data.ptr points at it */
	int fd;
	unsigned char in[IN_MAX];
	size_t inlen;
	char params[IN_MAX];
	size_t plen;
	int params_done, started, finished, want_out, retried;
	int keep;		/* FCGI_KEEP_CONN: the next request comes on this connection */
	uint16_t id;
	CURL *easy;
	char ctype[256];
	int head_sent;
	char *out;
	size_t outlen, outcap, outoff;
	struct conn *next_free;
};

struct csock {
	enum kind kind;
	curl_socket_t fd;	/* -1: removed, freed after this batch of events */
	struct csock *next_dead;
};

static volatile sig_atomic_t stopping;
static int ep;
static CURLM *multi;
static struct timespec deadline;	/* libcurl's timer; tv_sec 0: none */
static struct conn *free_conns;
static struct csock *dead_csocks;
static enum kind listen_kind = K_LISTEN;	/* what the listener's epoll entry points at */

static void on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

static int out_put(struct conn *c, const void *p, size_t n)
{
	if (c->outlen + n > c->outcap) {
		size_t cap = c->outcap ? c->outcap : 4096;
		char *o;

		while (cap < c->outlen + n)
			cap *= 2;
		o = realloc(c->out, cap);
		if (!o)
			return -1;
		c->out = o;
		c->outcap = cap;
	}
	memcpy(c->out + c->outlen, p, n);
	c->outlen += n;
	return 0;
}

/* FastCGI records of TYPE around N bytes of P (n == 0: the empty record) */
static int out_record(struct conn *c, int type, const char *p, size_t n)
{
	do {
		size_t k = n > FCGIREC_MAX ? FCGIREC_MAX : n;
		unsigned char h[8];

		fcgirec_header(h, type, c->id, k);
		if (out_put(c, h, 8) != 0 || (k && out_put(c, p, k) != 0))
			return -1;
		p += k;
		n -= k;
	} while (n > 0);
	return 0;
}

static void conn_close(struct conn *c)
{
	if (c->easy) {
		curl_multi_remove_handle(multi, c->easy);
		curl_easy_setopt(c->easy, CURLOPT_PRIVATE, NULL);
	}
	close(c->fd);	/* also takes it out of the epoll set */
	c->next_free = free_conns;
	free_conns = c;
}

/* writes what it can of what is queued: 0, or -1 when the web server is gone */
static int conn_send(struct conn *c)
{
	while (c->outoff < c->outlen) {
		ssize_t w = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };

			if (!c->want_out)
				epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
			c->want_out = 1;
			return 0;
		}
		if (w <= 0)
			return -1;
		c->outoff += (size_t)w;
	}
	c->outoff = c->outlen = 0;
	if (c->want_out && !c->finished) {
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
	}
	c->want_out = 0;
	return 0;
}

/* ready for the connection's next request */
static void request_reset(struct conn *c)
{
	c->params_done = c->started = c->finished = c->head_sent = c->retried = 0;
	c->plen = 0;
	c->ctype[0] = '\0';
}

static void conn_parse(struct conn *c);

/* conn_send; once the answer's end is out (not from a callback), the close,
 * or with FCGI_KEEP_CONN the wait for the next request */
static void conn_flush(struct conn *c)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

	if (conn_send(c) != 0 || (c->finished && c->outlen == 0 && !c->keep)) {
		conn_close(c);
	} else if (c->finished && c->outlen == 0) {
		request_reset(c);
		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
		conn_parse(c);
	}
}

static size_t on_header(char *buf, size_t size, size_t n, void *arg)
{
	struct conn *c = arg;

	header_ctype(buf, size * n, c->ctype, sizeof(c->ctype));
	return size * n;
}

static int send_head(struct conn *c)
{
	char h[512];
	long status = 0;
	int n;

	if (c->head_sent)
		return 0;
	c->head_sent = 1;
	curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
	n = snprintf(h, sizeof(h), "Status: %ld\r\nContent-Type: %s\r\n\r\n", status,
		     c->ctype[0] ? c->ctype : "application/octet-stream");
	return out_record(c, FCGIREC_STDOUT, h, (size_t)n);
}

static size_t on_body(char *buf, size_t size, size_t n, void *arg)
{
	struct conn *c = arg;
	size_t len = size * n;

	if (send_head(c) != 0 || out_record(c, FCGIREC_STDOUT, buf, len) != 0)
		return 0;
	if (c->outlen >= 32768 && conn_send(c) != 0)
		return 0;	/* finished() closes it */
	return len;
}

/* the answer's end: the empty STDOUT record and END_REQUEST (request complete) */
static void conn_end(struct conn *c)
{
	static const char complete[8];

	out_record(c, FCGIREC_STDOUT, NULL, 0);
	out_record(c, FCGIREC_END_REQUEST, complete, sizeof(complete));
	c->finished = 1;
	conn_flush(c);
}

static const char *param(struct conn *c, const char *name)
{
	size_t i = 0, nl = strlen(name);

	while (i < c->plen) {
		size_t len[2];

		for (int k = 0; k < 2; k++) {
			unsigned char *p = (unsigned char *)c->params + i;

			if (i >= c->plen)
				return NULL;
			if (p[0] & 0x80) {
				if (i + 4 > c->plen)
					return NULL;
				len[k] = ((size_t)(p[0] & 0x7f) << 24) | ((size_t)p[1] << 16) |
					 ((size_t)p[2] << 8) | p[3];
				i += 4;
			} else {
				len[k] = p[0];
				i += 1;
			}
		}
		if (len[0] + len[1] > c->plen - i)
			return NULL;
		if (len[0] == nl && memcmp(c->params + i, name, nl) == 0) {
			/* the value, NUL-terminated, in a buffer of its own: as
			 * long as any, so that a long URI is start()'s 414 */
			static char v[IN_MAX];

			if (len[1] >= sizeof(v))
				return NULL;
			memcpy(v, c->params + i + nl, len[1]);
			v[len[1]] = '\0';
			return v;
		}
		i += len[0] + len[1];
	}
	return NULL;
}

static void start(struct conn *c)
{
	const char *uri = param(c, "REQUEST_URI");
	size_t mlen = strlen(mount);
	char url[MAX_URL];
	int n;

	c->started = 1;
	if (!uri)
		uri = "/";
	if (strncmp(uri, mount, mlen) == 0)
		uri += mlen;
	n = snprintf(url, sizeof(url), "%s%s", upstream, uri);
	if (!c->easy)
		c->easy = curl_easy_init();
	if (n < 0 || (size_t)n >= sizeof(url) || !c->easy) {
		static const char e[] = "Status: 414\r\nContent-Type: text/plain\r\n\r\n";

		out_record(c, FCGIREC_STDOUT, e, sizeof(e) - 1);
		conn_end(c);
		return;
	}
	curl_easy_reset(c->easy);
	curl_easy_setopt(c->easy, CURLOPT_URL, url);
	curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->easy, CURLOPT_PROXY, "");
	if (cafile)
		curl_easy_setopt(c->easy, CURLOPT_CAINFO, cafile);
	curl_easy_setopt(c->easy, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c->easy, CURLOPT_HEADERDATA, c);
	curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(c->easy, CURLOPT_PRIVATE, c);
	curl_multi_add_handle(multi, c->easy);
}

/* the records that have arrived; starts the transfer once the params end */
static void conn_read(struct conn *c)
{
	for (;;) {
		ssize_t r = read(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			break;
		if (r <= 0) {
			conn_close(c);	/* the web server went away, or sent too much */
			return;
		}
		c->inlen += (size_t)r;
	}
	conn_parse(c);
}

static void conn_parse(struct conn *c)
{
	size_t i = 0;

	while (c->inlen - i >= 8 && !c->started) {
		unsigned char *h = c->in + i;
		size_t clen = ((size_t)h[4] << 8) | h[5], total = 8 + clen + h[6];

		if (c->inlen - i < total)
			break;
		c->id = (uint16_t)((h[2] << 8) | h[3]);
		if (h[1] == FCGIREC_BEGIN_REQUEST && clen >= 3) {	/* role, flags */
			request_reset(c);
			c->keep = h[10] & 1;	/* FCGI_KEEP_CONN */
		} else if (h[1] == FCGIREC_PARAMS && clen == 0) {
			c->params_done = 1;
		} else if (h[1] == FCGIREC_PARAMS) {
			if (c->plen + clen > sizeof(c->params)) {
				conn_close(c);
				return;
			}
			memcpy(c->params + c->plen, h + 8, clen);
			c->plen += clen;
		}
		i += total;
		if (c->params_done)
			break;
	}
	memmove(c->in, c->in + i, c->inlen - i);
	c->inlen -= i;
	if (c->params_done && !c->started)
		start(c);
}

static void finished(void)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(multi, &left))) {
		struct conn *c = NULL;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&c);
		curl_multi_remove_handle(multi, m->easy_handle);
		if (!c)
			continue;
		/* a kept connection the upstream closed while it idled: once more,
		 * on a new one (more of the kept ones may be dead alike) */
		if ((m->data.result == CURLE_SEND_ERROR || m->data.result == CURLE_RECV_ERROR ||
		     m->data.result == CURLE_GOT_NOTHING) && !c->head_sent && !c->retried) {
			c->retried = 1;
			curl_easy_setopt(c->easy, CURLOPT_FRESH_CONNECT, 1L);
			curl_multi_add_handle(multi, c->easy);
			continue;
		}
		if (m->data.result != CURLE_OK && !c->head_sent) {
			char e[256];
			int n = snprintf(e, sizeof(e), "Status: 502\r\nContent-Type: text/plain\r\n\r\n%s\n",
					 curl_easy_strerror(m->data.result));

			out_record(c, FCGIREC_STDOUT, e, (size_t)n);
		}
		send_head(c);
		conn_end(c);
	}
}

static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *sockp)
{
	struct csock *cs = sockp;
	struct epoll_event ev = { 0 };

	(void)e;
	(void)userp;
	if (what == CURL_POLL_REMOVE) {
		epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL);
		if (cs) {	/* a later event of this batch may still name it */
			cs->fd = -1;
			cs->next_dead = dead_csocks;
			dead_csocks = cs;
		}
		curl_multi_assign(multi, s, NULL);
		return 0;
	}
	ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
	if (!cs) {
		cs = malloc(sizeof(*cs));
		if (!cs)
			return -1;
		cs->kind = K_CURL;
		cs->fd = s;
		curl_multi_assign(multi, s, cs);
		ev.data.ptr = cs;
		return epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
	}
	ev.data.ptr = cs;
	return epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev);
}

static int on_timer(CURLM *m, long ms, void *userp)
{
	(void)m;
	(void)userp;
	if (ms < 0) {
		deadline.tv_sec = 0;
		return 0;
	}
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += ms / 1000;
	deadline.tv_nsec += (ms % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	return 0;
}

/* ms until libcurl's timer is due: -1 none, 0 due */
static int until_deadline(void)
{
	struct timespec now;
	long long ms;

	if (deadline.tv_sec == 0)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (deadline.tv_sec - now.tv_sec) * 1000LL + (deadline.tv_nsec - now.tv_nsec) / 1000000;
	return ms <= 0 ? 0 : ms > 1000 ? 1000 : (int)ms;
}

static void worker(int sock)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLEXCLUSIVE,
				  .data.ptr = &listen_kind }, evs[64];
	int running;

	ep = epoll_create1(EPOLL_CLOEXEC);
	multi = curl_multi_init();
	if (ep < 0 || !multi || epoll_ctl(ep, EPOLL_CTL_ADD, sock, &ev) != 0)
		_exit(1);
	curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_timer);
	/* the default, 4 per handle added, closes connections as transfers end */
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, 256L);
	while (!stopping) {
		int n = epoll_wait(ep, evs, 64, until_deadline());

		for (int i = 0; i < n; i++) {
			enum kind k = *(enum kind *)evs[i].data.ptr;

			if (k == K_LISTEN) {
				int fd;

				while ((fd = accept4(sock, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					struct conn *c = free_conns;
					struct epoll_event cev = { .events = EPOLLIN };

					if (c) {
						free_conns = c->next_free;
					} else if (!(c = calloc(1, sizeof(*c)))) {
						close(fd);
						continue;
					}
					c->kind = K_CONN;
					c->fd = fd;
					c->inlen = c->outlen = c->outoff = 0;
					c->want_out = c->keep = 0;
					request_reset(c);
					cev.data.ptr = c;
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
				}
			} else if (k == K_CONN) {
				struct conn *c = evs[i].data.ptr;

				if (evs[i].events & EPOLLOUT)
					conn_flush(c);
				else if (!c->started)
					conn_read(c);
				else if (evs[i].events & (EPOLLHUP | EPOLLERR))
					conn_close(c);
				else {	/* request body or a close while the answer runs */
					char b[4096];
					ssize_t r = read(c->fd, b, sizeof(b));

					if (r == 0) {	/* half-closed: the answer still goes out */
						struct epoll_event none = { .events = 0, .data.ptr = c };

						epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &none);
					} else if (r < 0 && errno != EAGAIN && errno != EINTR) {
						conn_close(c);
					}
				}
			} else {
				struct csock *cs = evs[i].data.ptr;
				int f = (evs[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
					(evs[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
					(evs[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);

				if (cs->fd >= 0)
					curl_multi_socket_action(multi, cs->fd, f, &running);
			}
		}
		if (until_deadline() == 0) {
			deadline.tv_sec = 0;
			curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
		}
		finished();
		while (dead_csocks) {
			struct csock *d = dead_csocks;

			dead_csocks = d->next_dead;
			free(d);
		}
	}
	_exit(0);
}

int main(int argc, char **argv)
{
	const char *listen_addr;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	long workers = 2;
	int sock;

	if (forwarder_args(argc, argv, "event-forwarder", &listen_addr, &workers) != 0)
		return 1;
	if (strlen(listen_addr + 5) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "event-forwarder: socket path too long\n");
		return 1;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return 1;
	strcpy(sun.sun_path, listen_addr + 5);
	unlink(sun.sun_path);
	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (sock < 0 || bind(sock, (struct sockaddr *)&sun, sizeof(sun)) != 0 ||
	    listen(sock, 1024) != 0 || chmod(sun.sun_path, 0666) != 0) {
		fprintf(stderr, "event-forwarder: cannot listen on '%s': %s\n", listen_addr,
			strerror(errno));
		return 1;
	}
	return supervise(workers, worker, sock, on_term, &stopping);
}
