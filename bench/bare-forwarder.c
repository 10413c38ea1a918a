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

#include <sys/stat.h>

#include "forwarder.h"

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

	header_ctype(buf, size * n, x->ctype, sizeof(x->ctype));
	return size * n;
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

static size_t on_body(char *buf, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	size_t len = size * n;

	if (send_head(x, curl_handle) != 0 || FCGX_PutStr(buf, (int)len, x->req->out) != (int)len)
		return 0;
	return len;
}

static void serve_one(FCGX_Request *req)
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

static void worker(int sock)
{
	FCGX_Request req;

	curl_handle = curl_easy_init();
	if (!curl_handle || FCGX_InitRequest(&req, sock, FCGI_FAIL_ACCEPT_ON_INTR) != 0)
		_exit(1);
	while (!stopping && FCGX_Accept_r(&req) >= 0) {
		serve_one(&req);
		FCGX_Finish_r(&req);
	}
	curl_easy_cleanup(curl_handle);
	_exit(0);
}

int main(int argc, char **argv)
{
	const char *listen_addr;
	long workers = 4;
	int sock;

	if (forwarder_args(argc, argv, "bare-forwarder", &listen_addr, &workers) != 0)
		return 1;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || FCGX_Init() != 0)
		return 1;
	unlink(listen_addr + 5);
	sock = FCGX_OpenSocket(listen_addr + 5, 128);
	if (sock < 0 || chmod(listen_addr + 5, 0666) != 0) {
		fprintf(stderr, "bare-forwarder: cannot listen on '%s': %s\n", listen_addr,
			strerror(errno));
		return 1;
	}
	return supervise(workers, worker, sock, on_term, &stopping);
}
