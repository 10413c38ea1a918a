/*
 * bare-forwarder — the least a FastCGI-to-HTTP forwarder can do, as the
 * benchmark's yardstick for hostgate: what libfcgi + libcurl cost on their
 * own, measured in the same run on the same machine, so that the report can
 * say what hostgate's routing, header handling and checks add on top.
 *
 *   BARE_UPSTREAM=http://127.0.0.1:PORT BARE_MOUNT=/bare \
 *       bare-forwarder --listen unix:/path.sock --workers N
 *
 * BARE_CAFILE names a PEM file of CAs to trust for an https:// upstream
 * (bench/tls: the test CA); verification stays on.
 *
 * A supervisor opens the socket and forks N workers; each accepts one request
 * at a time, strips BARE_MOUNT from REQUEST_URI, GETs BARE_UPSTREAM + the rest
 * with one reused CURL handle (curl_easy_reset between requests, as
 * WEBSERVERS.md recommends), and streams back the status, Content-Type and
 * body. No request headers are forwarded, no response headers but
 * Content-Type are returned, nothing is checked: do not use it for anything
 * but measuring. Built by bench/run in its temp dir. Exit 0 on SIGTERM,
 * 1 on a start-up failure.
 */
#include <fcgiapp.h>
#include <curl/curl.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_WORKERS 64
#define MAX_URL 8192

struct xfer {
	FCGX_Request *req;
	long status;
	char ctype[256];
	int headers_sent;
};

static volatile sig_atomic_t stopping;

static void on_term(int sig)
{
	(void)sig;
	stopping = 1;
	FCGX_ShutdownPending();
}

static size_t on_header(char *buf, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	size_t len = size * n;

	if (len > 13 && strncasecmp(buf, "Content-Type:", 13) == 0) {
		size_t v = 13, e = len;

		while (v < e && buf[v] == ' ')
			v++;
		while (e > v && (buf[e - 1] == '\r' || buf[e - 1] == '\n'))
			e--;
		if (e - v < sizeof(x->ctype)) {
			memcpy(x->ctype, buf + v, e - v);
			x->ctype[e - v] = '\0';
		}
	}
	return len;
}

static int send_head(struct xfer *x, CURL *c)
{
	if (x->headers_sent)
		return 0;
	x->headers_sent = 1;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &x->status);
	return FCGX_FPrintF(x->req->out, "Status: %ld\r\nContent-Type: %s\r\n\r\n", x->status,
			    x->ctype[0] ? x->ctype : "application/octet-stream") < 0 ? -1 : 0;
}

static CURL *curl_handle;
static const char *cafile;

static size_t on_body(char *buf, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	size_t len = size * n;

	if (send_head(x, curl_handle) != 0 || FCGX_PutStr(buf, (int)len, x->req->out) != (int)len)
		return 0;
	return len;
}

static void serve_one(FCGX_Request *req, const char *upstream, const char *mount)
{
	const char *uri = FCGX_GetParam("REQUEST_URI", req->envp);
	size_t mlen = strlen(mount);
	char url[MAX_URL];
	struct xfer x;
	int n;

	memset(&x, 0, sizeof(x));
	x.req = req;
	if (!uri)
		uri = "/";
	if (strncmp(uri, mount, mlen) == 0)
		uri += mlen;
	n = snprintf(url, sizeof(url), "%s%s", upstream, uri);
	if (n < 0 || (size_t)n >= sizeof(url)) {
		FCGX_FPrintF(req->out, "Status: 414\r\nContent-Type: text/plain\r\n\r\nuri too long\n");
		return;
	}
	curl_easy_reset(curl_handle);
	curl_easy_setopt(curl_handle, CURLOPT_URL, url);
	curl_easy_setopt(curl_handle, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl_handle, CURLOPT_PROXY, "");
	if (cafile)
		curl_easy_setopt(curl_handle, CURLOPT_CAINFO, cafile);
	curl_easy_setopt(curl_handle, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(curl_handle, CURLOPT_HEADERDATA, &x);
	curl_easy_setopt(curl_handle, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(curl_handle, CURLOPT_WRITEDATA, &x);
	if (curl_easy_perform(curl_handle) != CURLE_OK && !x.headers_sent) {
		FCGX_FPrintF(req->out, "Status: 502\r\nContent-Type: text/plain\r\n\r\nbad gateway\n");
		return;
	}
	send_head(&x, curl_handle);
}

static void worker(int sock, const char *upstream, const char *mount)
{
	FCGX_Request req;

	curl_handle = curl_easy_init();
	if (!curl_handle || FCGX_InitRequest(&req, sock, FCGI_FAIL_ACCEPT_ON_INTR) != 0)
		_exit(1);
	while (!stopping && FCGX_Accept_r(&req) >= 0) {
		serve_one(&req, upstream, mount);
		FCGX_Finish_r(&req);
	}
	curl_easy_cleanup(curl_handle);
	_exit(0);
}

int main(int argc, char **argv)
{
	const char *upstream = getenv("BARE_UPSTREAM");
	const char *mount = getenv("BARE_MOUNT");
	const char *listen_addr = NULL;
	pid_t pids[MAX_WORKERS];
	struct sigaction sa;
	long workers = 4;
	int sock;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--listen") == 0) {
			listen_addr = argv[i + 1];
		} else if (strcmp(argv[i], "--workers") == 0) {
			char *end;

			workers = strtol(argv[i + 1], &end, 10);
			if (*end || workers < 1 || workers > MAX_WORKERS) {
				fprintf(stderr, "bare-forwarder: bad --workers '%s'\n", argv[i + 1]);
				return 1;
			}
		}
	}
	if (!listen_addr || strncmp(listen_addr, "unix:", 5) != 0 || !upstream) {
		fprintf(stderr, "usage: BARE_UPSTREAM=URL [BARE_MOUNT=/p] bare-forwarder "
			"--listen unix:PATH [--workers N]\n");
		return 1;
	}
	if (!mount)
		mount = "";
	cafile = getenv("BARE_CAFILE");
	signal(SIGPIPE, SIG_IGN);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || FCGX_Init() != 0)
		return 1;
	unlink(listen_addr + 5);
	sock = FCGX_OpenSocket(listen_addr + 5, 128);
	if (sock < 0 || chmod(listen_addr + 5, 0666) != 0) {
		fprintf(stderr, "bare-forwarder: cannot listen on '%s': %s\n", listen_addr,
			strerror(errno));
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	for (long i = 0; i < workers; i++) {
		pids[i] = fork();
		if (pids[i] == 0)
			worker(sock, upstream, mount);
	}
	while (!stopping) {
		if (wait(NULL) < 0 && errno != EINTR)
			break;
	}
	for (long i = 0; i < workers; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGTERM);
	while (wait(NULL) > 0 || errno == EINTR)
		;
	return 0;
}
