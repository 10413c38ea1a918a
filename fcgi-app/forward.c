#include "fcgi-app/forward.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "common/log.h"
#include "policy/cidr.h"
#include "policy/path.h"

#define MAX_URL 16384
#define MAX_RESPONSE_HEADERS (64 * 1024)
#define MAX_HEADER_LINE 16384

/* Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded either way. */
static const char *const hop_by_hop[] = {
	"connection", "keep-alive", "proxy-connection", "te", "trailer",
	"transfer-encoding", "upgrade", "proxy-authenticate", "proxy-authorization",
	NULL
};

struct fwd {
	struct request *req;
	int64_t body_limit;
	int64_t body_read;
	int body_too_large;
	int client_gone;
	/* response headers, collected until the blank line */
	char hdr[MAX_RESPONSE_HEADERS];
	size_t hdr_len;
	int status;
	char reason[128];
	int headers_too_large;
	int bad_response;
	char conn_tokens[1024];	/* the response's Connection header, lower case */
	int64_t resp_length;	/* the response's Content-Length, -1: unknown */
	int64_t resp_written;
};

static struct fwd fwd_state;
static char url_buf[MAX_URL];

int forward_init(struct app *app)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -1;
	app->curl = curl_easy_init();
	return app->curl ? 0 : -1;
}

void forward_release(struct app *app)
{
	if (app->curl)
		curl_easy_cleanup(app->curl);
	app->curl = NULL;
	curl_global_cleanup();
}

/* ---- helpers ----------------------------------------------------------- */

static int is_hop_by_hop(const char *name, size_t len, const char *conn_tokens)
{
	for (const char *const *h = hop_by_hop; *h; h++)
		if (strlen(*h) == len && strncasecmp(*h, name, len) == 0)
			return 1;
	/* a header named in Connection is hop-by-hop too */
	for (const char *p = conn_tokens; p && *p;) {
		size_t n;

		while (*p == ',' || *p == ' ' || *p == '\t')
			p++;
		n = strcspn(p, ", \t");
		if (n == len && n && strncasecmp(p, name, len) == 0)
			return 1;
		p += n;
	}
	return 0;
}

static int has_ctl(const char *s)
{
	for (; *s; s++)
		if (*s == '\r' || *s == '\n')
			return 1;
	return 0;
}

/* "HTTP_X_FOO_BAR" -> "X-Foo-Bar"; returns the length or -1. */
static long header_name(const char *var, size_t len, char *out, size_t cap)
{
	if (len + 1 > cap || len == 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		char c = var[i];

		if (c == '_')
			out[i] = '-';
		else if (i == 0 || var[i - 1] == '_')
			out[i] = (char)toupper((unsigned char)c);
		else
			out[i] = (char)tolower((unsigned char)c);
	}
	out[len] = '\0';
	return (long)len;
}

static int header_configured(const struct gw_backend *be, const char *name)
{
	for (size_t i = 0; i < be->n_cred_headers; i++)
		if (strcasecmp(be->cred_headers[i].name, name) == 0)
			return 1;
	return 0;
}

static int list_add(struct curl_slist **list, const char *line)
{
	struct curl_slist *l = curl_slist_append(*list, line);

	if (!l)
		return -1;
	*list = l;
	return 0;
}

static int list_addf(struct curl_slist **list, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int list_addf(struct curl_slist **list, const char *fmt, ...)
{
	char line[MAX_HEADER_LINE];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line))
		return -1;
	return list_add(list, line);
}

/* ---- the upstream URL -------------------------------------------------- */

static int url_append(char *url, size_t *len, const char *s, size_t n)
{
	if (*len + n + 1 > MAX_URL)
		return -1;
	memcpy(url + *len, s, n);
	*len += n;
	url[*len] = '\0';
	return 0;
}

/* Copies a raw path or query, percent-encoding any byte that a URL cannot hold
 * as it is (a server may pass raw spaces or 8-bit bytes); '%' stays, so the
 * client's encoding is kept exactly. */
static int url_append_raw(char *url, size_t *len, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c >= 0x7f || c == '"' || c == '<' || c == '>' ||
		    c == '\\' || c == '^' || c == '`' || c == '{' || c == '|' || c == '}' ||
		    c == '#') {
			char e[3] = { '%', hex[c >> 4], hex[c & 15] };

			if (url_append(url, len, e, 3) != 0)
				return -1;
		} else if (url_append(url, len, s + i, 1) != 0) {
			return -1;
		}
	}
	return 0;
}

static int build_url(const struct request *req, const struct gw_backend *be, char *url)
{
	size_t len = 0;
	int has_query = 0;

	url[0] = '\0';
	if (url_append(url, &len, be->url, strlen(be->url)) != 0 ||
	    url_append_raw(url, &len, req->route.rest, req->route.rest_len) != 0)
		return -1;
	if (req->query && req->query_len) {
		if (url_append(url, &len, "?", 1) != 0 ||
		    url_append_raw(url, &len, req->query, req->query_len) != 0)
			return -1;
		has_query = 1;
	}
	for (size_t i = 0; i < be->n_cred_query; i++) {
		const struct gw_kv *kv = &be->cred_query[i];
		char enc[4096];
		long n;

		if (url_append(url, &len, has_query ? "&" : "?", 1) != 0)
			return -1;
		has_query = 1;
		n = path_encode(kv->name, strlen(kv->name), "", enc, sizeof(enc));
		if (n < 0 || url_append(url, &len, enc, (size_t)n) != 0 ||
		    url_append(url, &len, "=", 1) != 0)
			return -1;
		n = path_encode(kv->value, strlen(kv->value), "", enc, sizeof(enc));
		if (n < 0 || url_append(url, &len, enc, (size_t)n) != 0)
			return -1;
	}
	return 0;
}

/* ---- upstream request headers ------------------------------------------ */

/* Builds the header list. Returns 0, or -1 (400: a value holds CR/LF). */
static int build_headers(const struct request *req, const struct gw_backend *be,
			 struct curl_slist **list)
{
	const struct gateway *gw = req->gw;
	const char *conn = io_param(req->io, "HTTP_CONNECTION");
	const char *xff = NULL, *xfp = NULL, *xfh = NULL;
	const char *host = io_param(req->io, "HTTP_HOST");
	const char *ctype = io_param(req->io, "CONTENT_TYPE");
	int have_accept = 0;
	int trusted = gw->n_trusted_proxies && req->client_ip &&
		      cidr_list_contains(gw->trusted_proxies, gw->n_trusted_proxies, req->client_ip);
	char conn_lc[1024] = "";

	if (conn) {
		size_t n = strlen(conn);

		if (n >= sizeof(conn_lc))
			n = sizeof(conn_lc) - 1;
		memcpy(conn_lc, conn, n);
		conn_lc[n] = '\0';
	}
	for (char **p = req->io->params; *p; p++) {
		const char *eq, *var = *p, *value;
		char name[256];
		long nlen;

		if (strncmp(var, "HTTP_", 5) != 0)
			continue;
		eq = strchr(var, '=');
		if (!eq)
			continue;
		value = eq + 1;
		nlen = header_name(var + 5, (size_t)(eq - var - 5), name, sizeof(name));
		if (nlen < 0)
			continue;
		if (is_hop_by_hop(name, (size_t)nlen, conn_lc))
			continue;
		/* set below, or never forwarded: Proxy is the httpoxy header,
		 * Content-* come from CONTENT_TYPE/CONTENT_LENGTH */
		if (!strcasecmp(name, "Host") || !strcasecmp(name, "Proxy") ||
		    !strcasecmp(name, "Content-Length") || !strcasecmp(name, "Content-Type") ||
		    !strcasecmp(name, "Expect"))
			continue;
		if (!strcasecmp(name, "X-Forwarded-For")) {
			xff = value;
			if (gw->forwarded_headers)
				continue;
		} else if (!strcasecmp(name, "X-Forwarded-Proto")) {
			xfp = value;
			if (gw->forwarded_headers)
				continue;
		} else if (!strcasecmp(name, "X-Forwarded-Host")) {
			xfh = value;
			if (gw->forwarded_headers)
				continue;
		}
		if (be->basic_username && !strcasecmp(name, "Authorization"))
			continue;
		if (header_configured(be, name))
			continue;
		if (has_ctl(value))
			return -1;
		if (!strcasecmp(name, "Accept"))
			have_accept = 1;
		/* "Name:" alone would make libcurl drop the header: keep empty values */
		if (*value ? list_addf(list, "%s: %s", name, value) : list_addf(list, "%s;", name))
			return -1;
	}
	if (ctype && *ctype) {
		if (has_ctl(ctype) || list_addf(list, "Content-Type: %s", ctype))
			return -1;
	} else if (list_add(list, "Content-Type:")) {
		return -1;
	}
	if (!have_accept && list_add(list, "Accept:"))
		return -1;
	if (list_add(list, "Expect:"))
		return -1;
	if (req->content_length < 0 && list_add(list, "Transfer-Encoding: chunked"))
		return -1;
	if (gw->forwarded_headers) {
		const char *ip = req->client_ip ? req->client_ip : "unknown";
		const char *proto = req->https && !strcasecmp(req->https, "on") ? "https" : "http";

		if (trusted && xff && *xff) {
			if (has_ctl(xff) || list_addf(list, "X-Forwarded-For: %s, %s", xff, ip))
				return -1;
		} else if (list_addf(list, "X-Forwarded-For: %s", ip)) {
			return -1;
		}
		if (trusted && xfp && *xfp)
			proto = xfp;
		if (has_ctl(proto) || list_addf(list, "X-Forwarded-Proto: %s", proto))
			return -1;
		if (trusted && xfh && *xfh)
			host = xfh;
		if (host && *host && (has_ctl(host) || list_addf(list, "X-Forwarded-Host: %s", host)))
			return -1;
	}
	for (size_t i = 0; i < be->n_cred_headers; i++)
		if (list_addf(list, "%s: %s", be->cred_headers[i].name, be->cred_headers[i].value))
			return -1;
	return 0;
}

/* ---- libcurl callbacks ------------------------------------------------- */

static size_t on_read(char *buf, size_t size, size_t nitems, void *arg)
{
	struct fwd *f = arg;
	size_t want = size * nitems;
	long n;

	n = f->req->io->read(f->req->io, buf, want);
	if (n < 0) {
		f->client_gone = 1;
		return CURL_READFUNC_ABORT;
	}
	f->body_read += n;
	f->req->bytes_in += n;
	if (f->body_read > f->body_limit) {
		f->body_too_large = 1;
		return CURL_READFUNC_ABORT;
	}
	return (size_t)n;
}

/* Sends the collected response headers to the client, once. */
static int send_headers(struct fwd *f)
{
	struct request *req = f->req;
	char line[256];
	int n;

	n = snprintf(line, sizeof(line), "Status: %d %s\r\n", f->status,
		     f->reason[0] ? f->reason : "Unknown");
	req->status = f->status;
	req->headers_sent = 1;
	if (respond_write(req, line, (size_t)n) != 0)
		return -1;
	for (size_t p = 0; p < f->hdr_len;) {
		const char *h = f->hdr + p;
		size_t len = strlen(h);
		size_t nlen = strcspn(h, ":");

		p += len + 1;
		if (is_hop_by_hop(h, nlen, f->conn_tokens))
			continue;
		/* Status would be read as ours; the request id is ours */
		if ((nlen == 6 && !strncasecmp(h, "Status", 6)) ||
		    (nlen == 12 && !strncasecmp(h, "X-Request-Id", 12)))
			continue;
		if (respond_write(req, h, len) != 0 || respond_write(req, "\r\n", 2) != 0)
			return -1;
	}
	n = snprintf(line, sizeof(line), "X-Request-Id: %s\r\n\r\n", req->request_id);
	if (respond_write(req, line, (size_t)n) != 0)
		return -1;
	/* a body of known length follows at once: the headers go out with it
	 * (one write fewer for small answers); otherwise they go out now */
	if (f->resp_length < 0 && req->io->flush(req->io) != 0)
		return -1;
	return 0;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *arg)
{
	struct fwd *f = arg;
	size_t len = size * nitems;

	while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
		/* a status line: a new (possibly interim) response starts */
		const char *sp = memchr(buf, ' ', len);
		size_t rlen;

		f->hdr_len = 0;
		f->conn_tokens[0] = '\0';
		f->resp_length = -1;
		f->status = 0;
		f->reason[0] = '\0';
		if (!sp || (size_t)(buf + len - sp) < 4 || !isdigit((unsigned char)sp[1]) ||
		    !isdigit((unsigned char)sp[2]) || !isdigit((unsigned char)sp[3])) {
			f->bad_response = 1;
			return 0;
		}
		f->status = (sp[1] - '0') * 100 + (sp[2] - '0') * 10 + (sp[3] - '0');
		if (f->status < 100 || f->status > 599) {
			f->bad_response = 1;
			return 0;
		}
		sp += 4;
		while (sp < buf + len && *sp == ' ')
			sp++;
		rlen = (size_t)(buf + len - sp);
		if (rlen >= sizeof(f->reason))
			rlen = sizeof(f->reason) - 1;
		for (size_t i = 0; i < rlen; i++)
			f->reason[i] = (sp[i] >= 0x20 && sp[i] < 0x7f) ? sp[i] : ' ';
		f->reason[rlen] = '\0';
		return size * nitems;
	}
	if (len == 0) {
		/* end of a header block; interim 1xx answers are not passed on */
		if (f->status >= 200 && !f->req->headers_sent && send_headers(f) != 0) {
			f->client_gone = 1;
			return 0;
		}
		return size * nitems;
	}
	if (buf[0] == ' ' || buf[0] == '\t') {
		/* obsolete line folding: join to the previous header */
		if (f->hdr_len == 0)
			return size * nitems;
		f->hdr_len--;	/* overwrite its NUL */
		if (f->hdr_len + len + 2 > sizeof(f->hdr)) {
			f->headers_too_large = 1;
			return 0;
		}
		f->hdr[f->hdr_len++] = ' ';
		while (len && (*buf == ' ' || *buf == '\t'))
			buf++, len--;
	} else if (f->hdr_len + len + 1 > sizeof(f->hdr)) {
		f->headers_too_large = 1;
		return 0;
	}
	for (size_t i = 0; i < len; i++)
		f->hdr[f->hdr_len++] = (buf[i] == '\0' || buf[i] == '\r' || buf[i] == '\n') ? ' ' : buf[i];
	f->hdr[f->hdr_len++] = '\0';
	if (len > 15 && strncasecmp(buf, "Content-Length:", 15) == 0) {
		char *end;
		long long v = strtoll(buf + 15, &end, 10);

		f->resp_length = v >= 0 && end > buf + 15 ? v : -1;
	}
	if (len > 11 && strncasecmp(buf, "Connection:", 11) == 0) {
		size_t have = strlen(f->conn_tokens), n = len - 11;

		if (have + n + 2 < sizeof(f->conn_tokens)) {
			f->conn_tokens[have] = ',';
			memcpy(f->conn_tokens + have + 1, buf + 11, n);
			f->conn_tokens[have + 1 + n] = '\0';
		}
	}
	return size * nitems;
}

static size_t on_write(char *buf, size_t size, size_t nitems, void *arg)
{
	struct fwd *f = arg;
	size_t len = size * nitems;

	if (!f->req->headers_sent && send_headers(f) != 0) {
		f->client_gone = 1;
		return 0;
	}
	if (respond_write(f->req, buf, len) != 0) {
		f->client_gone = 1;
		return 0;
	}
	f->resp_written += (int64_t)len;
	/* stream what arrived; the last piece of a known length is flushed by
	 * the end of the request, together with the end record */
	if ((f->resp_length < 0 || f->resp_written < f->resp_length) &&
	    f->req->io->flush(f->req->io) != 0) {
		f->client_gone = 1;
		return 0;
	}
	return len;
}

/* ---- forward ----------------------------------------------------------- */

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void setup_tls(CURL *c, const struct gw_backend *be)
{
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, be->tls.verify ? 1L : 0L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, be->tls.verify ? 2L : 0L);
	if (be->tls.ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, be->tls.ca_file);
	if (be->tls.client_certificate)
		curl_easy_setopt(c, CURLOPT_SSLCERT, be->tls.client_certificate);
	if (be->tls.client_key)
		curl_easy_setopt(c, CURLOPT_SSLKEY, be->tls.client_key);
}

void forward(struct app *app, struct request *req)
{
	CURL *c = app->curl;
	const struct gw_backend *be = req->route.api->backend;
	struct curl_slist *headers = NULL;
	struct fwd *f;
	char *url;
	CURLcode rc;
	int64_t t0;

	/* one request at a time per process: the buffers are reused, not zeroed */
	f = &fwd_state;
	url = url_buf;
	f->req = req;
	f->body_read = 0;
	f->body_too_large = f->client_gone = 0;
	f->hdr_len = 0;
	f->status = 0;
	f->reason[0] = '\0';
	f->headers_too_large = f->bad_response = 0;
	f->conn_tokens[0] = '\0';
	f->resp_length = -1;
	f->resp_written = 0;
	f->body_limit = req->gw->max_request_body_bytes;
	if (build_url(req, be, url) != 0) {
		respond_error(req, 414, "request target too long");
		goto out;
	}
	if (build_headers(req, be, &headers) != 0) {
		respond_error(req, 400, "malformed request header");
		goto out;
	}

	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, be->timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, be->connect_timeout_ms);
	curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 65536L);
	curl_easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, 65536L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, f);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
	setup_tls(c, be);
	if (be->basic_username) {
		curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(c, CURLOPT_USERNAME, be->basic_username);
		curl_easy_setopt(c, CURLOPT_PASSWORD, be->basic_password ? be->basic_password : "");
	}
	if (!strcmp(req->method, "HEAD")) {
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	} else {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
		if (req->content_length != 0) {
			curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
			curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
			curl_easy_setopt(c, CURLOPT_READDATA, f);
			curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE,
					 (curl_off_t)(req->content_length > 0 ? req->content_length : -1));
		}
	}

	t0 = mono_ms();
	rc = curl_easy_perform(c);
	req->backend_ms = mono_ms() - t0;
	if (rc == CURLE_OK && f->status >= 200 && !req->headers_sent)
		send_headers(f);	/* a HEAD or empty answer */
	if (rc == CURLE_OK && req->headers_sent)
		goto out;
	if (f->client_gone) {
		req->error = "client went away";
		req->io->aborted = 1;
	} else if (f->body_too_large) {
		respond_error(req, 413, "request body too large");
	} else if (rc == CURLE_OPERATION_TIMEDOUT) {
		respond_error(req, 504, "backend timed out");
	} else if (f->headers_too_large) {
		respond_error(req, 502, "backend response headers too large");
	} else {
		if (rc != CURLE_OK)
			log_warn("request '%s': backend '%s': %s", req->request_id, be->id,
				 curl_easy_strerror(rc));
		respond_error(req, 502, rc == CURLE_OK ? "backend sent no answer" :
			      "backend unreachable or bad answer");
	}
out:
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(headers);
}
