#include "fcgi-app/forward.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "common/log.h"
#include "common/fiber.h"
#include "policy/cidr.h"
#include "policy/engine.h"
#include "policy/path.h"

#define MAX_URL 16384
#define MAX_RESPONSE_HEADERS (64 * 1024)
#define MAX_HEADER_LINE 16384
#define RETRY_BODY_MAX (1024 * 1024)	/* larger bodies are sent once (config-v1.md) */
/* The client went away in the middle of an HTTPS answer: the rest is read
 * and dropped when at most DRAIN_MAX bytes of it are left and it comes
 * within DRAIN_MS, so that the backend connection (and its TLS session)
 * stays for the next request; otherwise the transfer is aborted and the
 * connection closed, as before (docs/performance.md, "The libcurl side of a
 * worker": a new TLS connection costs ~1 ms of CPU on each side, reading
 * 256 KiB less). */
#define DRAIN_MAX (256 * 1024)
#define DRAIN_MS 1000

/* Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded either way; with
 * their lengths, so that most names are ruled out without a call. */
#define HBH(s) { s, sizeof(s) - 1 }
static const struct {
	const char *name;
	size_t len;
} hop_by_hop[] = {
	HBH("connection"), HBH("keep-alive"), HBH("proxy-connection"), HBH("te"),
	HBH("trailer"), HBH("transfer-encoding"), HBH("upgrade"),
	HBH("proxy-authenticate"), HBH("proxy-authorization"),
};
#undef HBH

/* name[0..len) is the header lit ignoring case (a string constant) */
#define NAME_IS(name, len, lit) \
	((len) == sizeof(lit) - 1 && strncasecmp((name), (lit), sizeof(lit) - 1) == 0)

struct fwd {
	CURL *h;		/* the handle the transfer runs on */
	struct request *req;
	struct pol_call *call;
	uint32_t attempt;	/* 0: the first */
	int held;		/* a retried status: its answer was held back */
	int discard;		/* drop what the backend sends from now on */
	char *replay;		/* a small body kept for retries, or NULL */
	size_t replay_len, replay_pos;
	int64_t body_limit;
	int64_t body_read;
	int body_too_large;
	int client_gone;
	int draining;		/* the client is gone: the rest is read and dropped */
	int64_t drain_t0;
	size_t hdr_len;
	int status;
	char reason[128];
	int headers_too_large;
	int bad_response;
	int bad_length;		/* conflicting or malformed Content-Length: 502 */
	int resp_chunked;	/* the backend's answer came with Transfer-Encoding */
	char conn_tokens[1024];	/* the response's Connection header, lower case */
	int64_t resp_length;	/* the response's Content-Length, -1: unknown */
	int64_t resp_written;
	int client_slow;	/* a client read passed its deadline (io->timed_out) */
	int upload_done;	/* the client's whole body was read */
	int replay_prefix;	/* replay holds only the body's start: the rest is the client's */
	const char *method;	/* this hop's method */
	int send_body;		/* this hop sends the request body */
	const char *hop_url;	/* this hop's URL */
	unsigned hops;		/* redirects followed */
	int redirect;		/* this hop's answer is a redirect we follow */
	int too_many_redirects;
	int replay_borrowed;	/* replay is c->req_body (a policy read it): not ours */
	int buffering;		/* the outbound section reads the body: collect it whole */
	int resp_too_large;	/* ...and it passed POL_MAX_RESP_BODY */
	char *rbuf;		/* the collected body */
	size_t rbuf_len, rbuf_cap;
	/* response headers, collected until the blank line; then buffers a
	 * request overwrites before it reads them: a memset up to hdr resets
	 * everything else */
	char hdr[MAX_RESPONSE_HEADERS];
	char url[MAX_URL];
	char hop[2][MAX_URL];	/* redirect targets: this hop's and the next */
};

static int64_t mono_ms(void);

#define MAX_REDIRECTS 5
/* the sockets a transfer waits on at once (S_sockcb) */
#define MAX_WAIT_SOCKS 8
/* idle backend connections a process keeps (libcurl closes the oldest) */
#define MAX_IDLE_CONNS 32

/* One transfer at a time on a multi handle of its own, run through libcurl's
 * socket interface (S_perform): the sockets it waits on. */
struct runner {
	CURLM *multi;
	struct pollfd socks[MAX_WAIT_SOCKS];
	int n_socks;
};

/* What one request forwards with: its handles, its buffers. A process has as
 * many as it has requests in flight (fcgi-app/front.h), kept for the next
 * ones; the connections are the process's, in one share (conn_share) that
 * every handle uses, so any request reuses the connection another left. The
 * handles are made on first use (a CGI answer without a backend never
 * loads libcurl). */
struct slot {
	struct slot *next;	/* the free list */
	CURL *h;		/* backend calls: never reset (handle_init) */
	CURL *side;		/* side calls (send-request): reset per call */
	struct runner main_run, side_run;	/* a side call may run inside a
						 * callback of the backend call */
	char head[MAX_RESPONSE_HEADERS + 1024];	/* emit_head's */
	struct fwd f;
};

static CURLSH *conn_share;
static struct slot *free_slots;

static int handle_init(CURL *h, struct fwd *f);
static int S_sockcb(CURL *e, curl_socket_t sock, int what, void *userp, void *sockp);
static int flush_answer(struct fwd *f);
static char *default_cainfo;	/* libcurl's own CA bundle, or NULL */

int forward_init(struct app *app)
{
	app->curl = NULL;
	return 0;
}

int forward_load(struct app *app)
{
	CURL *probe;
	char *ca = NULL;

	if (app->curl)
		return 0;
	if (conn_share)
		return -1;	/* a half-made earlier attempt: not retried */
	/* OpenSSL would free all its tables at exit, which the exit does
	 * anyway: 3% of a one-shot HTTPS CGI process (docs/performance.md,
	 * ninth session). Only the first init call decides this. */
	OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -1;
	conn_share = curl_share_init();
	if (!conn_share ||
	    curl_share_setopt(conn_share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) != CURLSHE_OK ||
	    curl_share_setopt(conn_share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK ||
	    curl_share_setopt(conn_share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK)
		return -1;
	/* libcurl's default CA bundle, to go back to after a backend's ca_file
	 * (the string is the handle's: copied before the handle goes) */
	probe = curl_easy_init();
	if (!probe)
		return -1;
	if (curl_easy_getinfo(probe, CURLINFO_CAINFO, &ca) == CURLE_OK && ca &&
	    !(default_cainfo = strdup(ca))) {
		curl_easy_cleanup(probe);
		return -1;
	}
	curl_easy_cleanup(probe);
	app->curl = conn_share;
	return 0;
}

static void runner_free(struct runner *r)
{
	if (r->multi)
		curl_multi_cleanup(r->multi);
	r->multi = NULL;
}

void forward_release(struct app *app)
{
	if (!app->curl)
		return;	/* never loaded: no curl_global_init to undo */
	while (free_slots) {
		struct slot *s = free_slots;

		free_slots = s->next;
		if (s->h)
			curl_easy_cleanup(s->h);
		if (s->side)
			curl_easy_cleanup(s->side);
		runner_free(&s->main_run);
		runner_free(&s->side_run);
		free(s);
	}
	curl_share_cleanup(conn_share);	/* the connections */
	conn_share = NULL;
	app->curl = NULL;
	free(default_cainfo);
	default_cainfo = NULL;
	curl_global_cleanup();
}

/* The request's slot, taken from the free list (or made) on first use.
 * NULL: no memory. */
static struct slot *slot_of(struct request *req)
{
	struct slot *s = req->fwd;

	if (s)
		return s;
	if (free_slots) {
		s = free_slots;
		free_slots = s->next;
	} else {
		s = malloc(sizeof(*s));
		if (!s)
			return NULL;
		s->h = s->side = NULL;
		s->main_run.multi = s->side_run.multi = NULL;
	}
	s->next = NULL;
	req->fwd = s;
	return s;
}

void forward_done(struct request *req)
{
	struct slot *s = req->fwd;

	if (!s)
		return;
	req->fwd = NULL;
	s->next = free_slots;
	free_slots = s;
}

static int runner_init(struct runner *r)
{
	if (r->multi)
		return 0;
	r->n_socks = 0;
	r->multi = curl_multi_init();
	if (!r->multi)
		return -1;
	curl_multi_setopt(r->multi, CURLMOPT_MAXCONNECTS, (long)MAX_IDLE_CONNS);
	curl_multi_setopt(r->multi, CURLMOPT_SOCKETFUNCTION, S_sockcb);
	curl_multi_setopt(r->multi, CURLMOPT_SOCKETDATA, r);
	return 0;
}

/* The slot's libcurl handles, made on first use (after forward_load).
 * 0, or -1. */
static int slot_curl(struct slot *s)
{
	if (!s->h) {
		s->h = curl_easy_init();
		if (!s->h || handle_init(s->h, &s->f) != 0) {
			if (s->h)
				curl_easy_cleanup(s->h);
			s->h = NULL;
			return -1;
		}
	}
	if (!s->side && !(s->side = curl_easy_init()))
		return -1;
	return runner_init(&s->main_run) == 0 && runner_init(&s->side_run) == 0 ? 0 : -1;
}

/* ---- helpers ----------------------------------------------------------- */

static int is_hop_by_hop(const char *name, size_t len, const char *conn_tokens)
{
	for (size_t i = 0; i < sizeof(hop_by_hop) / sizeof(hop_by_hop[0]); i++)
		if (hop_by_hop[i].len == len && strncasecmp(hop_by_hop[i].name, name, len) == 0)
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

/* A header name as RFC 9110 §5.1 has it (a token): anything else may be
 * read differently by the web server ("Status :", "Location\t"). */
static int is_token(const char *s, size_t n)
{
	if (!n)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (isalnum(c))
			continue;
		switch (c) {
		case '!': case '#': case '$': case '%': case '&': case '\'': case '*':
		case '+': case '-': case '.': case '^': case '_': case '`': case '|': case '~':
			continue;
		default:
			return 0;
		}
	}
	return 1;
}

static int has_ctl(const char *s)
{
	/* libc's strcspn looks at 16 bytes a step */
	return s[strcspn(s, "\r\n")] != '\0';
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

/* Appends "name: value"; an empty value as "name;" when keep_empty ("name: "
 * alone makes libcurl drop the header), else as "name: ". Returns 0, or -1
 * (too long, or no memory). */
static int list_add_header(struct curl_slist **list, const char *name, const char *value,
			   int keep_empty)
{
	char line[MAX_HEADER_LINE];
	size_t nl = strlen(name), vl = strlen(value);

	if (nl + vl + 3 > sizeof(line))
		return -1;
	memcpy(line, name, nl);
	if (vl || !keep_empty) {
		line[nl] = ':';
		line[nl + 1] = ' ';
		memcpy(line + nl + 2, value, vl + 1);
	} else {
		line[nl] = ';';
		line[nl + 1] = '\0';
	}
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

static int hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (unsigned char)tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Returns 1 when some backend could read the client's raw query parameter
 * p[0..n) ("name=value" or "name") as one of the backend's credential
 * parameters. The rule, one for every credential: the name, percent-decoded
 * once ('+' as a space, a malformed escape kept as it is), is the
 * credential's name ignoring ASCII case, or starts with it followed by a byte
 * that is not a letter or digit. Backends read names case-insensitively,
 * stop at NUL, take "code;x" or "code[]" or "code.x" for "code": all of
 * these go, so that only the configured value can reach the backend. */
static int cred_query_param(const struct gw_backend *be, const char *p, size_t n)
{
	unsigned char name[1024];
	size_t nlen = 0;

	if (!be->n_cred_query)
		return 0;
	for (size_t i = 0; i < n && p[i] != '=' && nlen < sizeof(name); i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '%' && i + 2 < n && hex_value((unsigned char)p[i + 1]) >= 0 &&
		    hex_value((unsigned char)p[i + 2]) >= 0) {
			c = (unsigned char)(hex_value((unsigned char)p[i + 1]) * 16 +
					    hex_value((unsigned char)p[i + 2]));
			i += 2;
		} else if (c == '+') {
			c = ' ';
		}
		name[nlen++] = c;
	}
	for (size_t k = 0; k < be->n_cred_query; k++) {
		const char *cn = be->cred_query[k].name;
		size_t cl = strlen(cn), i;

		if (nlen < cl)
			continue;
		for (i = 0; i < cl; i++)
			if (tolower(name[i]) != tolower((unsigned char)cn[i]))
				break;
		if (i == cl && (nlen == cl || !isalnum(name[cl])))
			return 1;
	}
	return 0;
}

/* Appends query q[0..n) without the parameters cred_query_param names, then
 * the backend's credential parameters, once each, with their configured
 * values. Parameters are split on '&' and on ';' (which some frameworks take
 * as a separator too); kept ones keep their separator. Returns 0 or -1. */
static int append_query(char *url, size_t *len, const struct gw_backend *be,
			const char *q, size_t n)
{
	int has_query = 0;
	char sep = '&';

	for (size_t i = 0; i < n;) {
		size_t m = 0;

		while (i + m < n && q[i + m] != '&' && q[i + m] != ';')
			m++;
		if (m && !cred_query_param(be, q + i, m)) {
			if (url_append(url, len, has_query ? &sep : "?", 1) != 0 ||
			    url_append_raw(url, len, q + i, m) != 0)
				return -1;
			has_query = 1;
		}
		i += m;
		if (i < n) {
			sep = q[i];
			i++;
		}
	}
	for (size_t i = 0; i < be->n_cred_query; i++) {
		const struct gw_kv *kv = &be->cred_query[i];
		char enc[4096];
		long e;

		if (url_append(url, len, has_query ? "&" : "?", 1) != 0)
			return -1;
		has_query = 1;
		e = path_encode(kv->name, strlen(kv->name), "", enc, sizeof(enc));
		if (e < 0 || url_append(url, len, enc, (size_t)e) != 0 ||
		    url_append(url, len, "=", 1) != 0)
			return -1;
		e = path_encode(kv->value, strlen(kv->value), "", enc, sizeof(enc));
		if (e < 0 || url_append(url, len, enc, (size_t)e) != 0)
			return -1;
	}
	return 0;
}

static int build_url(const struct pol_call *c, char *url)
{
	size_t len = 0;

	url[0] = '\0';
	if (url_append(url, &len, c->backend_url, strlen(c->backend_url)) != 0 ||
	    url_append_raw(url, &len, c->path, strlen(c->path)) != 0)
		return -1;
	return append_query(url, &len, c->backend, c->query ? c->query : "",
			    c->query ? strlen(c->query) : 0);
}

/* ---- the upstream request, before the policies ------------------------- */

int forward_prepare(struct request *req, struct pol_call *c)
{
	const struct gateway *gw = req->gw;
	const char *conn = io_param(req->io, "HTTP_CONNECTION");
	const char *xff = NULL, *xfp = NULL, *xfh = NULL;
	const char *host = io_param(req->io, "HTTP_HOST");
	const char *ctype = io_param(req->io, "CONTENT_TYPE");
	int trusted = req->peer_trusted;
	char conn_lc[1024] = "";

	c->method = strdup(req->method);
	c->path = strndup(req->route.rest, req->route.rest_len);
	c->query = req->query ? strndup(req->query, req->query_len) : strdup("");
	if (!c->method || !c->path || !c->query)
		return -1;
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
		if (nlen < 0 || !is_token(name, (size_t)nlen))
			continue;
		if (is_hop_by_hop(name, (size_t)nlen, conn_lc))
			continue;
		/* set below, or never forwarded: Proxy is the httpoxy header,
		 * Content-* come from CONTENT_TYPE/CONTENT_LENGTH */
		if (NAME_IS(name, nlen, "Host") || NAME_IS(name, nlen, "Proxy") ||
		    NAME_IS(name, nlen, "Content-Length") || NAME_IS(name, nlen, "Content-Type") ||
		    NAME_IS(name, nlen, "Expect"))
			continue;
		if (NAME_IS(name, nlen, "X-Forwarded-For")) {
			xff = value;
			if (gw->forwarded_headers)
				continue;
		} else if (NAME_IS(name, nlen, "X-Forwarded-Proto")) {
			xfp = value;
			if (gw->forwarded_headers)
				continue;
		} else if (NAME_IS(name, nlen, "X-Forwarded-Host")) {
			xfh = value;
			if (gw->forwarded_headers)
				continue;
		}
		if (has_ctl(value) || pol_headers_add(&c->req_headers, name, value) != 0)
			return -1;
	}
	if (ctype && *ctype &&
	    (has_ctl(ctype) || pol_headers_add(&c->req_headers, "Content-Type", ctype) != 0))
		return -1;
	if (gw->forwarded_headers) {
		const char *ip = req->client_ip ? req->client_ip : "unknown";
		const char *proto = req->https && !strcasecmp(req->https, "on") ? "https" : "http";
		char v[MAX_HEADER_LINE];

		if (trusted && xff && *xff) {
			if (has_ctl(xff) || snprintf(v, sizeof(v), "%s, %s", xff, ip) >= (int)sizeof(v))
				return -1;
			ip = v;
		}
		if (pol_headers_add(&c->req_headers, "X-Forwarded-For", ip) != 0)
			return -1;
		if (trusted && xfp && *xfp)
			proto = xfp;
		if (has_ctl(proto) || pol_headers_add(&c->req_headers, "X-Forwarded-Proto", proto) != 0)
			return -1;
		if (trusted && xfh && *xfh)
			host = xfh;
		if (host && *host &&
		    (has_ctl(host) || pol_headers_add(&c->req_headers, "X-Forwarded-Host", host) != 0))
			return -1;
	}
	return 0;
}

/* The curl header list for c's request: the policies' result, then the
 * backend's credentials. Returns 0, or -1 (a value holds CR/LF, or no memory). */
static int build_headers(const struct pol_call *c, int send_body, int64_t body_len, struct curl_slist **list)
{
	const struct gw_backend *be = c->backend;
	int have_accept = 0, have_ctype = 0;

	for (size_t i = 0; i < c->req_headers.n; i++) {
		const char *name = c->req_headers.v[i].name;
		const char *value = c->req_headers.v[i].value;

		if (be->basic_username && !strcasecmp(name, "Authorization"))
			continue;
		if (header_configured(be, name))
			continue;
		if (has_ctl(name) || has_ctl(value))
			return -1;
		if (!strcasecmp(name, "Accept"))
			have_accept = 1;
		else if (!strcasecmp(name, "Content-Type") && !send_body)
			continue;	/* a redirect made it a GET without the body */
		else if (!strcasecmp(name, "Content-Type"))
			have_ctype = 1;
		if (list_add_header(list, name, value, 1))
			return -1;
	}
	/* blank what libcurl would invent: Accept always; Content-Type and
	 * Expect only ever with a body (an upload: a PUT to libcurl), so a
	 * request without one goes without the two lines, which libcurl would
	 * otherwise search through for every header it considers */
	if (!have_accept && list_add(list, "Accept:"))
		return -1;
	if (send_body && ((!have_ctype && list_add(list, "Content-Type:")) ||
			  list_add(list, "Expect:")))
		return -1;
	/* chunked only when a body of unknown length really goes out: never on
	 * HEAD, nor on a GET a 303 made */
	if (send_body && body_len < 0 && list_add(list, "Transfer-Encoding: chunked"))
		return -1;
	for (size_t i = 0; i < be->n_cred_headers; i++)
		if (list_add_header(list, be->cred_headers[i].name, be->cred_headers[i].value, 0))
			return -1;
	return 0;
}

/* ---- answers ------------------------------------------------------------ */

/* Sends status, reason and headers (Content-Length set from body_len when
 * body_len >= 0), then X-Request-Id and the blank line, in one write: a CGI
 * front would otherwise make a system call per piece. Returns 0 or -1. */
static int emit_head(struct request *req, int status, const char *reason,
		     const struct pol_headers *h, long long body_len)
{
	struct slot *sl = slot_of(req);
	char *head = sl ? sl->head : NULL;
	const size_t cap = sizeof(sl->head);
	size_t len = 0;
	int n;

	if (!head) {
		req->error = "out of memory";
		req->io->aborted = 1;
		return -1;
	}
	req->status = status;
	req->headers_sent = 1;
	if (!reason || !*reason || has_ctl(reason) || strlen(reason) > 200)
		reason = http_reason(status);
	/* by hand: snprintf was a tenth of this function's cost per answer */
	if (status >= 100 && status <= 999) {
		size_t rl = strlen(reason);

		memcpy(head, "Status: ", 8);
		head[8] = (char)('0' + status / 100);
		head[9] = (char)('0' + status / 10 % 10);
		head[10] = (char)('0' + status % 10);
		head[11] = ' ';
		memcpy(head + 12, reason, rl);
		memcpy(head + 12 + rl, "\r\n", 2);
		len = 14 + rl;
	} else {
		n = snprintf(head, cap, "Status: %d %s\r\n", status, reason);
		len = (size_t)n;
	}
	for (size_t i = 0; i < h->n; i++) {
		const char *name = h->v[i].name, *value = h->v[i].value;
		size_t nl = strlen(name), vl = strlen(value);

		if (body_len >= 0 && !strcasecmp(name, "Content-Length"))
			continue;
		if (has_ctl(name) || has_ctl(value))
			continue;
		if (len + nl + vl + 4 > cap - 256) {
			/* a huge head (a policy's values): write it out in pieces */
			if (respond_write(req, head, len) != 0 ||
			    respond_write(req, name, nl) != 0 || respond_write(req, ": ", 2) != 0 ||
			    respond_write(req, value, vl) != 0 || respond_write(req, "\r\n", 2) != 0)
				return -1;
			len = 0;
			continue;
		}
		memcpy(head + len, name, nl);
		len += nl;
		head[len++] = ':';
		head[len++] = ' ';
		memcpy(head + len, value, vl);
		len += vl;
		head[len++] = '\r';
		head[len++] = '\n';
	}
	if (body_len >= 0)
		len += (size_t)snprintf(head + len, cap - len,
					"Content-Length: %lld\r\n", body_len);
	{
		size_t il = strlen(req->request_id);

		/* the loop above keeps 256 bytes free; an id is 16 hex digits */
		if (il > 200)
			il = 200;
		memcpy(head + len, "X-Request-Id: ", 14);
		memcpy(head + len + 14, req->request_id, il);
		memcpy(head + len + 14 + il, "\r\n\r\n", 4);
		len += 18 + il;
	}
	return respond_write(req, head, len);
}

void respond_call(struct request *req, struct pol_call *c)
{
	if (!c->error && c->status >= 400)
		c->error = "refused by a policy";
	if (!req->error)
		req->error = c->error;
	if (req->headers_sent) {
		req->io->aborted = 1;
		return;
	}
	if (emit_head(req, c->status, c->reason, &c->resp_headers, (long long)c->body_len) != 0)
		return;
	if (c->body_len && strcmp(req->method, "HEAD") != 0)
		respond_write(req, c->body, c->body_len);
}

/* ---- libcurl callbacks ------------------------------------------------- */

static size_t on_read(char *buf, size_t size, size_t nitems, void *arg)
{
	struct fwd *f = arg;
	size_t want = size * nitems;
	long n;

	if (f->replay && f->replay_pos < f->replay_len) {
		/* a kept body (retries, redirects), or the kept start of one */
		size_t left = f->replay_len - f->replay_pos;

		n = (long)(left < want ? left : want);
		memcpy(buf, f->replay + f->replay_pos, (size_t)n);
		f->replay_pos += (size_t)n;
		return (size_t)n;
	}
	if (f->replay && !f->replay_prefix)
		return 0;
	if (f->upload_done)
		return 0;
	if (flush_answer(f) != 0)
		return CURL_READFUNC_ABORT;
	n = f->req->io->read(f->req->io, buf, want);
	if (n < 0) {
		if (f->req->io->timed_out)
			f->client_slow = 1;
		else
			f->client_gone = 1;
		return CURL_READFUNC_ABORT;
	}
	f->body_read += n;
	/* libcurl stops asking once a known length is sent: no 0 comes then */
	if (n == 0 || (f->req->content_length > 0 && f->body_read >= f->req->content_length))
		f->upload_done = 1;
	f->req->bytes_in += n;
	if (f->body_read > f->body_limit) {
		f->body_too_large = 1;
		return CURL_READFUNC_ABORT;
	}
	return (size_t)n;
}

/* The retry policy asks for another attempt after this status. */
static int retry_status(const struct pol_retry *r, int status)
{
	if (status >= 500 && (r->conditions & POL_RETRY_5XX))
		return 1;
	if (status >= 400 && status < 500 && (r->conditions & POL_RETRY_4XX))
		return 1;
	for (size_t i = 0; i < r->n_statuses; i++)
		if (r->statuses[i] == status)
			return 1;
	return 0;
}

/* Returns 1 when the response header name[0..nlen) must not reach the web
 * server: it would act on it instead of passing it on. Status is read as our
 * own status. Apache (ap_scan_script_header_err_core, used by mod_cgi,
 * mod_fcgid and mod_proxy_fcgi) and lighttpd (http_response_parse_headers)
 * turn a local Location with status 200 into an internal redirect, and
 * lighttpd serves a local file for X-Sendfile, X-Sendfile2 and
 * X-LIGHTTPD-send-file(-tempfile) when a deployment allows it, as mod_xsendfile
 * does for Apache; X-Accel-* are nginx's (a deployment may put one in front);
 * Variable-* are FastCGI authorizer results. A Location stays only where it
 * means something to the client: 201 and 3xx. */
static int server_header(const char *name, size_t nlen, int status)
{
	if (NAME_IS(name, nlen, "status") || NAME_IS(name, nlen, "x-sendfile") ||
	    NAME_IS(name, nlen, "x-sendfile2") || NAME_IS(name, nlen, "x-lighttpd-send-file") ||
	    NAME_IS(name, nlen, "x-lighttpd-send-tempfile") ||
	    NAME_IS(name, nlen, "x-lighttpd-kbytes-per-second") || NAME_IS(name, nlen, "x-request-id"))
		return 1;
	if ((nlen >= 8 && !strncasecmp(name, "x-accel-", 8)) ||
	    (nlen >= 9 && !strncasecmp(name, "variable-", 9)))
		return 1;
	if (NAME_IS(name, nlen, "location"))
		return !(status == 201 || (status >= 300 && status < 400));
	return 0;
}

/* Checks the backend's Content-Length headers (f->hdr) before anything goes
 * out: two that differ, or one that is not a plain decimal number, make the
 * answer's framing unknowable. Returns 0, or -1 (a bad answer: 502). */
static int check_lengths(const struct fwd *f)
{
	long long seen = -1;

	for (size_t p = 0; p < f->hdr_len;) {
		const char *h = f->hdr + p, *v;
		size_t len = strlen(h);
		char *end;
		long long n;

		p += len + 1;
		if (len < 15 || strncasecmp(h, "Content-Length:", 15) != 0)
			continue;
		for (v = h + 15; *v == ' ' || *v == '\t'; v++)
			;
		if (!isdigit((unsigned char)*v))
			return -1;
		n = strtoll(v, &end, 10);
		while (*end == ' ' || *end == '\t')
			end++;
		if (*end || n < 0 || n == LLONG_MAX || (seen >= 0 && n != seen))
			return -1;
		seen = n;
	}
	return 0;
}

/* The backend's status and headers (f->hdr) into c, less those that must
 * not go on. Returns 0, or -1 (too many: f->headers_too_large). */
static int take_headers(struct fwd *f)
{
	struct pol_call *c = f->call;
	int have_cl = 0;

	c->status = f->status;
	free(c->reason);
	c->reason = f->reason[0] ? strdup(f->reason) : NULL;
	pol_headers_release(&c->resp_headers);
	for (size_t p = 0; p < f->hdr_len;) {
		char *h = f->hdr + p;
		size_t len = strlen(h);
		size_t nlen = strcspn(h, ":");
		const char *v;

		p += len + 1;
		if (nlen == len || is_hop_by_hop(h, nlen, f->conn_tokens))
			continue;
		if (!is_token(h, nlen) || server_header(h, nlen, f->status))
			continue;
		if (nlen == 14 && !strncasecmp(h, "Content-Length", 14)) {
			/* libcurl de-chunked the body: a length beside it is not its
			 * length; equal duplicates (check_lengths) go out once */
			if (f->resp_chunked || have_cl)
				continue;
			have_cl = 1;
		}
		h[nlen] = '\0';
		for (v = h + nlen + 1; *v == ' ' || *v == '\t'; v++)
			;
		if (pol_headers_add(&c->resp_headers, h, v) != 0) {
			h[nlen] = ':';
			f->headers_too_large = 1;
			return -1;
		}
		h[nlen] = ':';
	}
	return 0;
}

/* The backend's header block is complete: run the outbound section and send
 * the answer's head (or the policy's own answer). */
static int send_headers(struct fwd *f)
{
	struct request *req = f->req;
	struct pol_call *c = f->call;
	const char *cl;

	if (take_headers(f) != 0)
		return -1;
	if (engine_outbound(c) == POL_RESPOND) {
		/* the policy answers instead: the backend's body is dropped */
		f->discard = 1;
		respond_call(req, c);
		return 0;
	}
	cl = pol_headers_get(&c->resp_headers, "Content-Length");
	f->resp_length = -1;
	if (cl) {
		char *end;
		long long v = strtoll(cl, &end, 10);

		while (*end == ' ' || *end == '\t')
			end++;
		f->resp_length = v >= 0 && end > cl && !*end ? v : -1;
		/* an outbound policy's length we cannot hold the body to is none */
		if (f->resp_length < 0)
			pol_headers_del(&c->resp_headers, "Content-Length");
	}
	if (emit_head(req, c->status, c->reason, &c->resp_headers, -1) != 0)
		return -1;
	/* it goes out with the body's first pieces, or before the transfer
	 * waits for them (flush_answer) */
	return 0;
}

/* The backend's whole answer is in f->rbuf (f->buffering): the outbound
 * section reads and changes it as c->body, and the answer goes out with its
 * length as the section left it. Returns 0, or -1 (headers too large, or the
 * client gone). */
static int send_buffered(struct fwd *f)
{
	struct request *req = f->req;
	struct pol_call *c = f->call;
	int no_body;

	if (take_headers(f) != 0)
		return -1;
	/* the backend's framing is not the answer's: the length is recomputed */
	pol_headers_del(&c->resp_headers, "Content-Length");
	free(c->body);
	c->body = f->rbuf;
	c->body_len = f->rbuf_len;
	f->rbuf = NULL;
	f->rbuf_len = f->rbuf_cap = 0;
	c->resp_body_buffered = 1;
	if (engine_outbound(c) == POL_RESPOND) {
		respond_call(req, c);
		return 0;
	}
	no_body = c->status == 204 || c->status == 304;
	if (emit_head(req, c->status, c->reason, &c->resp_headers,
		      no_body ? -1 : (long long)c->body_len) != 0)
		return -1;
	if (!no_body && c->body_len && respond_write(req, c->body, c->body_len) != 0)
		return -1;
	return 0;
}

/* The value of the backend's header name in f->hdr, or NULL. */
static const char *raw_header(const struct fwd *f, const char *name)
{
	size_t n = strlen(name);

	for (size_t p = 0; p < f->hdr_len;) {
		const char *h = f->hdr + p;
		size_t len = strlen(h);

		p += len + 1;
		if (len > n && h[n] == ':' && !strncasecmp(h, name, n)) {
			for (h += n + 1; *h == ' ' || *h == '\t'; h++)
				;
			return h;
		}
	}
	return NULL;
}

/* Resolves location against this hop's URL (libcurl's URL API) into out when
 * it stays on the origin of the first URL: same scheme, host and effective
 * port. The path is taken as the backend wrote it; the query loses any
 * credential look-alike and gets the backend's query credentials, once.
 * Returns 1 (same origin, out set), 0 (another origin, or not a URL we
 * follow), -1 (no memory, or too long). */
static int redirect_target(struct fwd *f, const char *location, char *out)
{
	static const CURLUPart origin[] = { CURLUPART_SCHEME, CURLUPART_HOST, CURLUPART_PORT };
	CURLU *first = curl_url(), *next = curl_url();
	char *a = NULL, *b = NULL, *path = NULL, *query = NULL;
	size_t len = 0;
	int ret = -1;

	if (!first || !next)
		goto out;
	ret = 0;
	if (curl_url_set(first, CURLUPART_URL, f->url, CURLU_PATH_AS_IS) != CURLUE_OK ||
	    curl_url_set(next, CURLUPART_URL, f->hop_url, CURLU_PATH_AS_IS) != CURLUE_OK ||
	    curl_url_set(next, CURLUPART_URL, location,
			 CURLU_PATH_AS_IS | CURLU_DISALLOW_USER) != CURLUE_OK)
		goto out;
	for (size_t i = 0; i < sizeof(origin) / sizeof(origin[0]); i++) {
		int same;

		if (curl_url_get(first, origin[i], &a, CURLU_DEFAULT_PORT) != CURLUE_OK ||
		    curl_url_get(next, origin[i], &b, CURLU_DEFAULT_PORT) != CURLUE_OK)
			goto out;
		same = strcasecmp(a, b) == 0;
		curl_free(b);
		b = NULL;
		if (!same)
			goto out;
		if (i == 0 && strcasecmp(a, "http") != 0 && strcasecmp(a, "https") != 0)
			goto out;
		curl_free(a);
		a = NULL;
	}
	ret = -1;
	if (curl_url_get(next, CURLUPART_PATH, &path, 0) != CURLUE_OK)
		goto out;
	if (curl_url_get(next, CURLUPART_QUERY, &query, 0) != CURLUE_OK)
		query = NULL;
	/* scheme://host:port of the first URL, so that nothing of the backend's
	 * spelling of the authority gets in */
	if (curl_url_set(first, CURLUPART_PATH, "/", 0) != CURLUE_OK ||
	    curl_url_set(first, CURLUPART_QUERY, NULL, 0) != CURLUE_OK ||
	    curl_url_set(first, CURLUPART_FRAGMENT, NULL, 0) != CURLUE_OK ||
	    curl_url_get(first, CURLUPART_URL, &a, 0) != CURLUE_OK)
		goto out;
	out[0] = '\0';
	if (url_append(out, &len, a, strlen(a) - 1) != 0 ||
	    url_append_raw(out, &len, path, strlen(path)) != 0 ||
	    append_query(out, &len, f->call->backend, query ? query : "",
			 query ? strlen(query) : 0) != 0)
		goto out;
	ret = 1;
out:
	curl_free(a);
	curl_free(b);
	curl_free(path);
	curl_free(query);
	curl_url_cleanup(first);
	curl_url_cleanup(next);
	return ret;
}

/* A final answer came while follow-redirects is on. Returns 1 (a
 * same-origin redirect we follow: f->hop_url's successor is set, with
 * f->method and f->send_body for it, RFC 9110 §15.4), 0 (pass this answer
 * on), -1 (too many redirects: f->too_many_redirects). */
static int redirect_decide(struct fwd *f)
{
	const char *loc;
	char *next = f->hop_url == f->hop[0] ? f->hop[1] : f->hop[0];
	int s = f->status, to_get, r;

	if (s != 301 && s != 302 && s != 303 && s != 307 && s != 308)
		return 0;
	loc = raw_header(f, "Location");
	if (!loc || !*loc)
		return 0;
	/* 303 makes any method but HEAD a GET, 301/302 a POST (as browsers and
	 * libcurl do); 307/308 keep the method and the body */
	to_get = (s == 303 && strcmp(f->method, "HEAD") != 0) ||
		 ((s == 301 || s == 302) && !strcmp(f->method, "POST"));
	/* a body we did not keep cannot go out again: the client gets the 3xx */
	if (!to_get && f->send_body && (!f->replay || f->replay_prefix))
		return 0;
	r = redirect_target(f, loc, next);
	if (r <= 0) {
		if (r < 0)
			log_warn("request '%s': backend '%s': redirect target too long",
				 f->req->request_id, f->call->backend->id);
		return 0;
	}
	if (f->hops >= MAX_REDIRECTS) {
		f->too_many_redirects = 1;
		return -1;
	}
	f->hops++;
	f->hop_url = next;
	if (to_get) {
		f->method = "GET";
		f->send_body = 0;
	}
	return 1;
}

/* len bytes of a backend's header line into dst, every control byte but a
 * tab as a space. Eight bytes at a time while none of them is below 0x20 or
 * 0x7f (a byte at a time made this half of on_header's instructions). */
static void S_copy_header_bytes(char *restrict dst, const char *restrict src, size_t len)
{
	const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
	size_t i = 0;

	while (i < len) {
		unsigned char ch;

		if (len - i >= 8) {
			uint64_t w;

			memcpy(&w, src + i, 8);
			/* a high bit where a byte is < 0x20 (w - 0x20..), 0x7f
			 * ((w ^ 0x7f..) - 0x01..) or >= 0x80 (w): never missed,
			 * sometimes seen where there is none (borrows) — then
			 * this word goes byte by byte */
			if (!(((w - ones * 0x20) | ((w ^ ones * 0x7f) - ones) | w) & highs)) {
				memcpy(dst + i, &w, 8);
				i += 8;
				continue;
			}
		}
		ch = (unsigned char)src[i];
		dst[i++] = ((ch < 0x20 && ch != '\t') || ch == 0x7f) ? ' ' : (char)ch;
	}
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
		f->resp_chunked = 0;
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
		if (f->status < 200 || f->req->headers_sent || f->discard || f->buffering)
			return size * nitems;
		if (f->call->follow_redirects) {
			int r = redirect_decide(f);

			if (r < 0)
				return 0;
			if (r > 0) {
				/* followed: this answer never reaches the client */
				f->redirect = 1;
				f->discard = 1;
				return size * nitems;
			}
		}
		if (f->attempt < f->call->retry.count && retry_status(&f->call->retry, f->status)) {
			/* held back: another attempt follows */
			f->held = 1;
			f->discard = 1;
			return size * nitems;
		}
		if (!f->resp_chunked && check_lengths(f) != 0) {
			f->bad_length = 1;
			return 0;
		}
		if (engine_outbound_needs_body(f->call) && strcmp(f->method, "HEAD") != 0) {
			/* the head goes out with the body, once the policies saw it */
			f->buffering = 1;
			return size * nitems;
		}
		if (send_headers(f) != 0) {
			if (!f->headers_too_large)
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
	/* no control byte of the backend's (but a tab) becomes a header byte
	 * of ours: the web server may split or stop on any of them */
	S_copy_header_bytes(f->hdr + f->hdr_len, buf, len);
	f->hdr_len += len;
	f->hdr[f->hdr_len++] = '\0';
	if (len >= 18 && strncasecmp(buf, "Transfer-Encoding:", 18) == 0)
		f->resp_chunked = 1;
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

/* Appends a piece of the backend's body to f->rbuf, up to POL_MAX_RESP_BODY.
 * Returns len, or 0 (stop: too large, or no memory) as on_write. */
static size_t collect(struct fwd *f, const char *buf, size_t len)
{
	if (len > POL_MAX_RESP_BODY - f->rbuf_len) {
		f->resp_too_large = 1;
		return 0;
	}
	if (f->rbuf_len + len + 1 > f->rbuf_cap) {
		size_t cap = f->rbuf_cap ? f->rbuf_cap : 65536;
		char *n;

		while (cap < f->rbuf_len + len + 1)
			cap *= 2;
		if (cap > POL_MAX_RESP_BODY + 1)
			cap = POL_MAX_RESP_BODY + 1;
		n = realloc(f->rbuf, cap);
		if (!n) {
			f->resp_too_large = 1;
			return 0;
		}
		f->rbuf = n;
		f->rbuf_cap = cap;
	}
	memcpy(f->rbuf + f->rbuf_len, buf, len);
	f->rbuf_len += len;
	f->rbuf[f->rbuf_len] = '\0';
	return len;
}

/* A write to the client failed while the backend's body streams: returns
 * what on_write returns — the piece's length when the rest is drained
 * (f->draining), 0 (abort) otherwise. */
static size_t client_lost(struct fwd *f, size_t len)
{
	curl_off_t cl = -1, got = 0;

	f->client_gone = 1;
	if (strncmp(f->hop_url, "https:", 6) != 0 ||
	    curl_easy_getinfo(f->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) != CURLE_OK ||
	    curl_easy_getinfo(f->h, CURLINFO_SIZE_DOWNLOAD_T, &got) != CURLE_OK ||
	    cl < 0 || cl - got > DRAIN_MAX)
		return 0;
	f->discard = 1;
	f->draining = 1;
	f->drain_t0 = mono_ms();
	return len;
}

/* libcurl's progress callback: ends a drain that takes too long. */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	const struct fwd *f = arg;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return f->draining && mono_ms() - f->drain_t0 > DRAIN_MS;
}

static size_t on_write(char *buf, size_t size, size_t nitems, void *arg)
{
	struct fwd *f = arg;
	size_t len = size * nitems;

	if (f->discard)
		return len;
	if (f->buffering)
		return collect(f, buf, len);
	if (!f->req->headers_sent && send_headers(f) != 0) {
		f->client_gone = 1;
		return 0;
	}
	if (f->discard)
		return len;
	if (f->resp_length >= 0 && (int64_t)len > f->resp_length - f->resp_written) {
		/* more than the Content-Length we passed on (a policy may have set
		 * it): the client would read the rest as the next answer */
		len = (size_t)(f->resp_length - f->resp_written);
		if (!len)
			return size * nitems;
	}
	if (respond_write(f->req, buf, len) != 0)
		return client_lost(f, size * nitems);
	f->resp_written += (int64_t)len;
	/* streamed before the transfer waits again (flush_answer); the last
	 * pieces go out with the end record */
	return size * nitems;
}

/* What the answer put out since the last flush (the front holds it; a flush
 * of nothing writes nothing) goes to the client now: the transfer is about
 * to wait — for the backend (S_perform, before poll) or for the client's
 * body (on_read) — and the client must not wait with it. The pieces libcurl
 * delivered in between (a head and a small chunked body, or several 16 KiB
 * TLS records) leave together, in as few writes as the front's buffer allows
 * (docs/performance.md, "Fewer writes per answer"). Returns 0, or -1 when the
 * client is gone and the transfer must stop (client_lost: not when it drains
 * the rest). */
static int flush_answer(struct fwd *f)
{
	if (f->discard)
		return 0;
	if (f->req->io->flush(f->req->io) == 0)
		return 0;
	return client_lost(f, 1) ? 0 : -1;
}

/* ---- forward ----------------------------------------------------------- */

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Every TLS option a backend may set, set on every call (to the backend's
 * value or back to libcurl's default): the main handle is never reset, so
 * what one backend asked for must not stay for the next. */
static void setup_tls(CURL *c, const struct gw_backend *be)
{
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, be->tls.verify ? 1L : 0L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, be->tls.verify ? 2L : 0L);
	curl_easy_setopt(c, CURLOPT_CAINFO, be->tls.ca_file ? be->tls.ca_file : default_cainfo);
	curl_easy_setopt(c, CURLOPT_SSLCERT, be->tls.client_certificate);
	curl_easy_setopt(c, CURLOPT_SSLKEY, be->tls.client_key);
}

/* The request body's length for this hop: known (content_length, or a kept
 * whole body), or -1 (sent chunked). */
static int64_t body_length(const struct fwd *f)
{
	if (f->replay_borrowed || (f->replay && !f->replay_prefix))
		return (int64_t)f->replay_len;
	return f->req->content_length > 0 ? f->req->content_length : -1;
}

/* libcurl tells which sockets its transfer waits on, and for what. */
static int S_sockcb(CURL *e, curl_socket_t sock, int what, void *userp, void *sockp)
{
	struct runner *r = userp;
	int i;

	(void)e;
	(void)sockp;
	for (i = 0; i < r->n_socks && r->socks[i].fd != sock; i++)
		;
	if (what == CURL_POLL_REMOVE) {
		if (i < r->n_socks)
			r->socks[i] = r->socks[--r->n_socks];
		return 0;
	}
	if (i == r->n_socks) {
		if (r->n_socks == MAX_WAIT_SOCKS)
			return -1;
		r->n_socks++;
	}
	r->socks[i].fd = sock;
	r->socks[i].events = (short)((what & CURL_POLL_IN ? POLLIN : 0) |
				     (what & CURL_POLL_OUT ? POLLOUT : 0));
	r->socks[i].revents = 0;
	return 0;
}

/* curl_easy_perform(h), on r's multi handle through libcurl's socket interface
 * (issue 15, docs/performance.md "A worker's small HTTPS request"): told
 * which socket is ready (CURL_CSELECT_*), libcurl does not poll it again
 * before reading (7.88's Curl_readwrite polls with a 0 timeout when it is
 * not told), and there is no poll before the transfer has a socket
 * (curl_easy_perform's first wait). Otherwise as curl_easy_perform: waits of
 * at most 1 s (libcurl's timers from curl_multi_timeout), the result from
 * curl_multi_info_read, the handle removed after (its connection stays in
 * the process's share). The waits are fiber_poll's: on a fiber, the other
 * requests of the process run meanwhile. f: the backend call, whose answer
 * is flushed before each wait; NULL for a side call.
 *
 * No OpenSSL read-ahead here: libcurl 7.88 reads a TLS connection again
 * only while SSL_pending() says so, which does not count records read ahead;
 * handing them to libcurl before each wait cannot tell a record that gave no
 * callback (a backend that writes a chunk's size line as a record of its
 * own) from a partial one, and a 20-chunk answer then took 25 s
 * (test_tls_sizes.py, tiny records). */
static CURLcode S_perform(struct runner *r, CURL *h, struct fwd *f)
{
	CURLcode rc = CURLE_OK;
	CURLMcode mc;
	int running = 0;

	r->n_socks = 0;
	mc = curl_multi_add_handle(r->multi, h);
	if (mc != CURLM_OK)
		return mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT;
	mc = curl_multi_socket_action(r->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	while (mc == CURLM_OK && running) {
		long wait_ms = -1;
		int n;

		if (curl_multi_timeout(r->multi, &wait_ms) != CURLM_OK || wait_ms < 0 ||
		    wait_ms > 1000)
			wait_ms = 1000;
		if (wait_ms && f && flush_answer(f) != 0) {
			rc = CURLE_WRITE_ERROR;	/* as on_write's 0 */
			break;
		}
		n = wait_ms ? fiber_poll(r->socks, (nfds_t)r->n_socks, (int)wait_ms) : 0;
		if (n < 0 && errno != EINTR) {
			mc = CURLM_INTERNAL_ERROR;
			break;
		}
		if (n <= 0) {
			mc = curl_multi_socket_action(r->multi, CURL_SOCKET_TIMEOUT, 0, &running);
			continue;
		}
		/* a copy: the calls below may change the set */
		{
			struct pollfd ready[MAX_WAIT_SOCKS];
			int k = r->n_socks;

			memcpy(ready, r->socks, sizeof(ready[0]) * (size_t)k);
			for (int i = 0; i < k && mc == CURLM_OK; i++) {
				int ev = 0;

				if (!ready[i].revents)
					continue;
				if (ready[i].revents & (POLLIN | POLLHUP))
					ev |= CURL_CSELECT_IN;
				if (ready[i].revents & POLLOUT)
					ev |= CURL_CSELECT_OUT;
				if (ready[i].revents & (POLLERR | POLLNVAL))
					ev |= CURL_CSELECT_ERR;
				mc = curl_multi_socket_action(r->multi, ready[i].fd, ev, &running);
			}
		}
	}
	if (rc != CURLE_OK) {
		/* stopped by flush_answer: the transfer is not done */
	} else if (mc == CURLM_OK) {
		int left;
		CURLMsg *m = curl_multi_info_read(r->multi, &left);

		if (m && m->msg == CURLMSG_DONE)
			rc = m->data.result;
	} else {
		rc = mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_BAD_FUNCTION_ARGUMENT;
	}
	(void)curl_multi_remove_handle(r->multi, h);
	r->n_socks = 0;
	return rc;
}

/* The options that are the same for every request of the process, set once
 * on the main handle (forward_load). Returns 0, or -1 (no memory).
 *
 * The handle is never curl_easy_reset(): a reset and ~18 options again cost
 * about 6,000 instructions and a dozen allocations per request
 * (docs/performance.md, "The libcurl side of a worker"). So setup_request
 * sets every option that can differ between two requests on every request,
 * to its value or back to libcurl's default, and nothing else is ever set
 * on this handle: URL, timeouts, buffer size, header list, TLS options
 * (setup_tls), credentials, method, body. tests/integration/
 * test_curl_reuse.py checks that none carries over to the next request. */
static int handle_init(CURL *h, struct fwd *f)
{
	curl_easy_setopt(h, CURLOPT_SHARE, conn_share);
	curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_PROXY, "");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, f);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
	curl_easy_setopt(h, CURLOPT_READDATA, f);
	/* only to end a drain that takes too long (client_lost) */
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, f);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	/* never CURLOPT_FOLLOWLOCATION: libcurl would follow to any host with
	 * our headers; redirect_decide follows same-origin ones itself */
	return 0;
}

static void setup_request(CURL *h, struct fwd *f, struct curl_slist *headers, long timeout_ms)
{
	struct pol_call *c = f->call;
	const struct gw_backend *be = c->backend;
	int head = !strcmp(f->method, "HEAD");

	curl_easy_setopt(h, CURLOPT_URL, f->hop_url);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
			 be->connect_timeout_ms < timeout_ms ? be->connect_timeout_ms : timeout_ms);
	/* 64 KiB reads for plain HTTP; over TLS a read returns at most one
	 * 16 KiB record: libcurl's default (16 KiB), which libcurl 7.88
	 * allocates per transfer (docs/performance.md, issue 15). The upload
	 * buffer is libcurl's default, 64 KiB. Backend URLs have a lower-case
	 * scheme. */
	curl_easy_setopt(h, CURLOPT_BUFFERSIZE,
			 strncmp(f->hop_url, "https:", 6) != 0 ? 65536L : (long)CURL_MAX_WRITE_SIZE);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	setup_tls(h, be);
	/* Basic is libcurl's default HTTPAUTH: no user name, no credentials */
	curl_easy_setopt(h, CURLOPT_USERNAME, be->basic_username);
	curl_easy_setopt(h, CURLOPT_PASSWORD,
			 be->basic_username && be->basic_password ? be->basic_password :
			 be->basic_username ? "" : NULL);
	/* in this order: UPLOAD sets libcurl's method to PUT or GET, NOBODY
	 * then to HEAD (or back from it), CUSTOMREQUEST names the verb */
	curl_easy_setopt(h, CURLOPT_UPLOAD, !head && f->send_body ? 1L : 0L);
	curl_easy_setopt(h, CURLOPT_NOBODY, head ? 1L : 0L);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, head ? NULL : f->method);
	curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE,
			 (curl_off_t)(!head && f->send_body ? body_length(f) : -1));
}

/* Reads the body into memory so that it can be sent again (retries,
 * redirects): all of it when its length is known, or, when it is not (plain
 * CGI: read to the end), up to RETRY_BODY_MAX; a longer one keeps only its
 * start (replay_prefix) and the rest streams from the client, once. Returns
 * 0, or -1 (client gone or too slow: f->client_slow, or a short body). */
static int keep_body(struct fwd *f)
{
	struct request *req = f->req;
	size_t cap = req->content_length > 0 ? (size_t)req->content_length : RETRY_BODY_MAX;

	f->replay = malloc(cap ? cap : 1);
	if (!f->replay)
		return -1;
	while (f->replay_len < cap) {
		long n = req->io->read(req->io, f->replay + f->replay_len, cap - f->replay_len);

		if (n < 0 && req->io->timed_out)
			f->client_slow = 1;
		if (n < 0 || (n == 0 && req->content_length > 0))
			return -1;
		if (n == 0) {
			f->upload_done = 1;
			break;
		}
		f->replay_len += (size_t)n;
		f->body_read += n;
		req->bytes_in += n;
		if (f->body_read > f->body_limit) {
			f->body_too_large = 1;
			return -1;
		}
	}
	if (req->content_length > 0)
		f->upload_done = 1;
	else if (!f->upload_done)
		f->replay_prefix = 1;
	return 0;
}

/* APIM's retry intervals: fixed, linear with delta, or exponential up to
 * max-interval; first-fast-retry makes the first retry immediate. */
static int64_t retry_wait_ms(const struct pol_retry *r, uint32_t attempt)
{
	int64_t s;

	if (attempt == 1 && r->first_fast_retry)
		return 0;
	if (r->max_interval && r->delta) {
		s = (int64_t)r->interval + (((int64_t)1 << (attempt < 20 ? attempt : 20)) - 1) * r->delta;
		if (s > r->max_interval)
			s = r->max_interval;
	} else {
		s = (int64_t)r->interval + (int64_t)(attempt - 1) * r->delta;
	}
	return s * 1000;
}

static int connect_error(CURLcode rc)
{
	return rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
	       rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_SEND_ERROR ||
	       rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING;
}

/* The time libcurl may take for this hop: what the backend's timeout leaves
 * of this attempt, never past the request's deadline. Sets *by_deadline when
 * the deadline is the nearer bound. */
static long hop_timeout_ms(const struct fwd *f, int64_t attempt_t0, int *by_deadline)
{
	int64_t now = mono_ms();
	int64_t left = (int64_t)f->call->timeout_ms - (now - attempt_t0);

	*by_deadline = 0;
	if (f->req->deadline_ms > 0 && f->req->deadline_ms - now < left) {
		left = f->req->deadline_ms - now;
		*by_deadline = 1;
	}
	/* 0 would mean no timeout to libcurl */
	return left < 1 ? 1L : (long)left;
}

void forward(struct app *app, struct request *req, struct pol_call *c)
{
	CURL *h = NULL;
	struct curl_slist *headers = NULL;
	struct slot *sl = slot_of(req);
	struct fwd *f;
	CURLcode rc = CURLE_OK;
	int64_t t0;
	int by_deadline = 0, body = 0, client_fault;

	if (!sl) {
		(void)engine_on_error(c, 500, "out of memory");
		respond_call(req, c);
		return;
	}
	f = &sl->f;
	/* the buffers are the slot's, reused, not zeroed */
	memset(f, 0, offsetof(struct fwd, hdr));
	f->req = req;
	f->call = c;
	f->body_limit = req->gw->max_request_body_bytes;
	if (forward_load(app) != 0 || slot_curl(sl) != 0) {
		(void)engine_on_error(c, 502, "libcurl unavailable");
		goto answer;
	}
	h = f->h = sl->h;
	if (build_url(c, f->url) != 0) {
		(void)engine_on_error(c, 414, "request target too long");
		goto answer;
	}
	/* a body the policies search is searched as sent: no compression */
	if (engine_outbound_needs_body(c))
		pol_headers_del(&c->req_headers, "Accept-Encoding");
	/* HEAD never carries a body upstream (libcurl sends none): neither may
	 * its head announce one */
	body = (req->content_length != 0 || c->req_body_len) && strcmp(c->method, "HEAD") != 0;
	if (c->req_body_read) {
		/* a policy read the body: what the policies left goes, with its
		 * length, as often as retries and redirects need it */
		f->replay = c->req_body;
		f->replay_len = c->req_body_len;
		f->replay_borrowed = 1;
		f->upload_done = 1;
	} else if (body && (c->retry.count || c->follow_redirects) &&
	    req->content_length <= RETRY_BODY_MAX) {
		if (keep_body(f) != 0) {
			if (f->body_too_large) {
				respond_error(req, 413, "request body too large");
			} else if (f->client_slow) {
				req->error = "client too slow";
				respond_error(req, 408, "client too slow");
			} else {
				req->error = "client went away";
				req->io->aborted = 1;
			}
			goto out;
		}
		if (f->replay_prefix)
			c->retry.count = 0;
	} else if (body && req->content_length > RETRY_BODY_MAX) {
		c->retry.count = 0;
	}

	t0 = mono_ms();
	for (f->attempt = 0;; f->attempt++) {
		int64_t attempt_t0 = mono_ms();

		f->method = c->method;
		f->send_body = body;
		f->hop_url = f->url;
		f->hops = 0;
		for (;;) {
			f->replay_pos = 0;
			f->held = f->discard = f->redirect = 0;
			f->buffering = f->resp_too_large = 0;
			f->rbuf_len = 0;
			curl_slist_free_all(headers);
			headers = NULL;
			if (build_headers(c, f->send_body, body_length(f), &headers) != 0) {
				(void)engine_on_error(c, 400, "malformed request header");
				goto answer;
			}
			setup_request(h, f, headers, hop_timeout_ms(f, attempt_t0, &by_deadline));
			rc = S_perform(&sl->main_run, h, f);
			if (!f->redirect || req->headers_sent || f->client_gone ||
			    f->client_slow || f->body_too_large || f->resp_too_large)
				break;
		}
		if (req->headers_sent || f->client_gone || f->client_slow || f->body_too_large ||
		    f->resp_too_large)
			break;
		if (f->attempt >= c->retry.count)
			break;
		if (!f->held &&
		    !(connect_error(rc) && (c->retry.conditions & POL_RETRY_CONNECT_ERROR)) &&
		    !(rc == CURLE_OPERATION_TIMEDOUT && (c->retry.conditions & POL_RETRY_TIMEOUT)))
			break;
		{
			int64_t ms = retry_wait_ms(&c->retry, f->attempt + 1);

			/* no wait, nor attempt, past the request's deadline */
			if (req->deadline_ms > 0 && mono_ms() + ms >= req->deadline_ms)
				break;
			fiber_sleep(ms);
		}
	}
	/* side calls made before (send-request) count too */
	req->backend_ms = (req->backend_ms > 0 ? req->backend_ms : 0) + mono_ms() - t0;
	if (rc == CURLE_OK && f->status >= 200 && !req->headers_sent && !f->held) {
		/* a HEAD, an empty answer, or one collected whole: the head has not
		 * gone out yet */
		if ((f->buffering ? send_buffered(f) : send_headers(f)) != 0 &&
		    !f->headers_too_large)
			f->client_gone = 1;
	}
	/* the circuit breaker counts what the backend did, never what a client
	 * did: a body over the limit, a client gone or too slow while we read
	 * its body (libcurl's timeout while the upload is unfinished included),
	 * nor the request's deadline running out first */
	client_fault = f->client_gone || f->client_slow || f->body_too_large || f->resp_too_large ||
		       (rc == CURLE_OPERATION_TIMEDOUT &&
			(by_deadline || (f->send_body && !f->upload_done &&
					 !(f->replay && !f->replay_prefix))));
	c->backend_failed = f->status >= 500 || f->bad_length || f->too_many_redirects ||
			    (rc != CURLE_OK && !client_fault);
	engine_backend_done(c);
	if (req->headers_sent) {
		if (f->client_gone) {
			/* drained (rc 0) or aborted: the client saw nothing more */
			req->error = "client went away";
			req->io->aborted = 1;
		} else if (rc != CURLE_OK && !f->discard) {
			/* the answer broke off: the client must see it cut short */
			log_warn("request '%s': backend '%s': answer cut short: %s",
				 req->request_id, c->backend->id, curl_easy_strerror(rc));
			req->error = "backend answer cut short";
			req->io->aborted = 1;
		} else if (rc == CURLE_OK && !f->discard && f->resp_length >= 0 &&
			   f->resp_written < f->resp_length && strcmp(req->method, "HEAD") != 0 &&
			   req->status != 204 && req->status != 304) {
			/* fewer bytes than the Content-Length we passed on */
			req->error = "backend answer cut short";
			req->io->aborted = 1;
		}
		goto out;
	}
	if (f->client_gone) {
		req->error = "client went away";
		req->io->aborted = 1;
		goto out;
	}
	if (f->body_too_large) {
		respond_error(req, 413, "request body too large");
		goto out;
	}
	if (f->client_slow) {
		req->error = "client too slow";
		respond_error(req, 408, "client too slow");
		goto out;
	}
	if (f->resp_too_large) {
		log_warn("request '%s': backend '%s': answer over %u bytes, the outbound "
			 "policies' limit", req->request_id, c->backend->id, POL_MAX_RESP_BODY);
		(void)engine_on_error(c, 502, "backend answer too large for the policies");
	} else if (rc == CURLE_OPERATION_TIMEDOUT) {
		(void)engine_on_error(c, 504, "backend timed out");
	} else if (f->headers_too_large) {
		(void)engine_on_error(c, 502, "backend response headers too large");
	} else if (f->bad_length) {
		log_warn("request '%s': backend '%s': conflicting or malformed Content-Length",
			 req->request_id, c->backend->id);
		(void)engine_on_error(c, 502, "backend sent a bad answer");
	} else if (f->too_many_redirects) {
		log_warn("request '%s': backend '%s': more than %d redirects",
			 req->request_id, c->backend->id, MAX_REDIRECTS);
		(void)engine_on_error(c, 502, "backend redirected too many times");
	} else {
		if (rc != CURLE_OK)
			log_warn("request '%s': backend '%s': %s", req->request_id, c->backend->id,
				 curl_easy_strerror(rc));
		(void)engine_on_error(c, 502, rc == CURLE_OK ? "backend sent no answer" :
				      "backend unreachable or bad answer");
	}
answer:
	respond_call(req, c);
out:
	if (h)
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(headers);
	if (!f->replay_borrowed)
		free(f->replay);
	f->replay = NULL;
	free(f->rbuf);
	f->rbuf = NULL;
}

/* ---- the engine's services (pol_app_ops) ------------------------------- */

#define SIDE_MAX_HEADERS 100		/* a side answer's headers... */
#define SIDE_MAX_HEADER_BYTES 65536	/* ...and their bytes */

/* Reads the client's whole body (its Content-Length, or to the end when the
 * length is unknown) within the client deadlines the front enforces. */
static int read_body(void *ctx, char **body, size_t *len)
{
	struct request *req = ctx;
	int64_t limit = req->gw->max_request_body_bytes;
	size_t cap, n = 0;
	char *b;

	*body = NULL;
	*len = 0;
	if (req->content_length > limit)
		return 413;
	cap = req->content_length > 0 ? (size_t)req->content_length + 1 : 65536;
	b = malloc(cap);
	if (!b)
		return 500;
	for (;;) {
		long got;

		if (req->content_length >= 0 && n == (size_t)req->content_length)
			break;
		if (n + 1 == cap) {
			/* unknown length: grow, never past the limit (plus one
			 * byte, to tell a body of exactly the limit from a longer one) */
			size_t ncap = cap * 2;
			char *nb;

			if (ncap > (size_t)limit + 2)
				ncap = (size_t)limit + 2;
			if (ncap <= cap) {
				free(b);
				return 413;
			}
			nb = realloc(b, ncap);
			if (!nb) {
				free(b);
				return 500;
			}
			b = nb;
			cap = ncap;
		}
		got = req->io->read(req->io, b + n, cap - 1 - n);
		if (got < 0 || (got == 0 && req->content_length > 0)) {
			free(b);
			if (got < 0 && req->io->timed_out) {
				req->error = "client too slow";
				return 408;
			}
			req->error = "client went away";
			return 400;
		}
		if (got == 0)
			break;
		n += (size_t)got;
		req->bytes_in += got;
		if ((int64_t)n > limit) {
			free(b);
			return 413;
		}
	}
	b[n] = '\0';
	*body = b;
	*len = n;
	return 0;
}

struct side {
	struct pol_side_response *rs;
	size_t hdr_bytes;
	int too_large;		/* body or headers past their caps */
	char conn[1024];	/* the answer's Connection tokens */
};

static size_t side_header(char *buf, size_t size, size_t nitems, void *arg)
{
	struct side *s = arg;
	size_t len = size * nitems, nlen;
	char name[256], value[MAX_HEADER_LINE];
	const char *v;
	size_t vlen;

	while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
		/* a new answer (after a 1xx): its headers only */
		pol_headers_release(&s->rs->headers);
		s->hdr_bytes = 0;
		s->conn[0] = '\0';
		return size * nitems;
	}
	if (len == 0 || buf[0] == ' ' || buf[0] == '\t')
		return size * nitems;	/* the end, or an obsolete fold (dropped) */
	nlen = strcspn(buf, ":");
	if (nlen >= len || nlen >= sizeof(name) || !is_token(buf, nlen))
		return size * nitems;
	s->hdr_bytes += len;
	if (s->hdr_bytes > SIDE_MAX_HEADER_BYTES || s->rs->headers.n >= SIDE_MAX_HEADERS) {
		s->too_large = 1;
		return 0;
	}
	for (v = buf + nlen + 1; v < buf + len && (*v == ' ' || *v == '\t'); v++)
		;
	vlen = (size_t)(buf + len - v);
	if (vlen >= sizeof(value))
		vlen = sizeof(value) - 1;
	for (size_t i = 0; i < vlen; i++) {
		unsigned char ch = (unsigned char)v[i];

		value[i] = ((ch < 0x20 && ch != '\t') || ch == 0x7f) ? ' ' : (char)ch;
	}
	value[vlen] = '\0';
	if (nlen == 10 && !strncasecmp(buf, "Connection", 10)) {
		size_t have = strlen(s->conn);

		if (have + vlen + 2 < sizeof(s->conn)) {
			s->conn[have] = ',';
			memcpy(s->conn + have + 1, value, vlen + 1);
		}
	}
	if (is_hop_by_hop(buf, nlen, NULL))
		return size * nitems;
	memcpy(name, buf, nlen);
	name[nlen] = '\0';
	if (pol_headers_add(&s->rs->headers, name, value) != 0) {
		s->too_large = 1;
		return 0;
	}
	return size * nitems;
}

static size_t side_write(char *buf, size_t size, size_t nitems, void *arg)
{
	struct side *s = arg;
	struct pol_side_response *rs = s->rs;
	size_t len = size * nitems;
	char *n;

	if (len > POL_MAX_SIDE_BODY - rs->body_len) {
		s->too_large = 1;
		return 0;
	}
	n = realloc(rs->body, rs->body_len + len + 1);
	if (!n) {
		s->too_large = 1;
		return 0;
	}
	rs->body = n;
	memcpy(rs->body + rs->body_len, buf, len);
	rs->body_len += len;
	rs->body[rs->body_len] = '\0';
	return len;
}

/* Is target an origin-form path (and query) that stays below a backend's
 * URL: empty or "/" first, no authority ("//"), no dot segment however encoded, no
 * fragment, no byte a URL cannot hold? Returns 0 or -1. */
static int side_target_check(const char *target)
{
	size_t plen = strcspn(target, "?");

	/* "" or "?query": the backend's URL itself */
	if (plen && (target[0] != '/' || target[1] == '/' || target[1] == '\\'))
		return -1;
	for (const char *p = target; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '#')
			return -1;
	return path_check(target, plen);
}

/* The request headers of a side call: the policy's, less hop-by-hop ones and
 * what the backend's credentials set, then those. Returns 0 or -1. */
static int side_headers(const struct pol_side_request *rq, struct curl_slist **list)
{
	const struct gw_backend *be = rq->backend;
	int have_accept = 0, have_ctype = 0;

	for (size_t i = 0; rq->headers && i < rq->headers->n; i++) {
		const char *name = rq->headers->v[i].name;
		const char *value = rq->headers->v[i].value;

		if (!is_token(name, strlen(name)) || is_hop_by_hop(name, strlen(name), NULL) ||
		    !strcasecmp(name, "Host") || !strcasecmp(name, "Content-Length") ||
		    !strcasecmp(name, "Expect") || header_configured(be, name) ||
		    (be->basic_username && !strcasecmp(name, "Authorization")))
			continue;
		if (has_ctl(value))
			return -1;
		if (!strcasecmp(name, "Accept"))
			have_accept = 1;
		if (!strcasecmp(name, "Content-Type"))
			have_ctype = 1;
		if (list_add_header(list, name, value, 1))
			return -1;
	}
	if ((!have_ctype && list_add(list, "Content-Type:")) ||
	    (!have_accept && list_add(list, "Accept:")) || list_add(list, "Expect:"))
		return -1;
	for (size_t i = 0; i < be->n_cred_headers; i++)
		if (list_add_header(list, be->cred_headers[i].name, be->cred_headers[i].value, 0))
			return -1;
	return 0;
}

/* A side call (send-request) on the process's second handle, so that the
 * backend call's connection stays; its time is the request's and counts as
 * backend time in the access log. */
static int side_call(void *ctx, const struct pol_side_request *rq, struct pol_side_response *rs)
{
	struct request *req = ctx;
	struct slot *sl = slot_of(req);
	const struct gw_backend *be = rq->backend;
	CURL *h = sl && forward_load(req->app) == 0 && slot_curl(sl) == 0 ? sl->side : NULL;
	struct curl_slist *list = NULL;
	struct side s;
	char *url = NULL;
	size_t ulen = 0, plen;
	int64_t t0 = mono_ms();
	long timeout = rq->timeout_ms;
	long code = 0;
	CURLcode rc;
	int ret = -1;

	memset(rs, 0, sizeof(*rs));
	memset(&s, 0, sizeof(s));
	s.rs = rs;
	if (!h || !be || !be->url || !rq->target || !rq->method) {
		rs->error = "side calls unavailable";
		goto out;
	}
	if (side_target_check(rq->target) != 0) {
		rs->error = "target is not a path below the backend";
		goto out;
	}
	if (req->deadline_ms > 0 && req->deadline_ms - t0 < timeout)
		timeout = (long)(req->deadline_ms - t0);
	if (timeout < 1) {
		rs->error = "the request's deadline passed";
		rs->timed_out = 1;
		goto out;
	}
	url = malloc(MAX_URL);
	plen = strcspn(rq->target, "?");
	if (!url)
		goto nomem;
	url[0] = '\0';
	if (url_append(url, &ulen, be->url, strlen(be->url)) != 0 ||
	    url_append_raw(url, &ulen, rq->target, plen) != 0 ||
	    append_query(url, &ulen, be, rq->target[plen] ? rq->target + plen + 1 : "",
			 rq->target[plen] ? strlen(rq->target + plen + 1) : 0) != 0) {
		rs->error = "target too long";
		goto out;
	}
	if (side_headers(rq, &list) != 0) {
		rs->error = "malformed header";
		goto out;
	}
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_SHARE, conn_share);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_PROXY, "");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
			 be->connect_timeout_ms < timeout ? be->connect_timeout_ms : timeout);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, side_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &s);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, side_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
	/* no redirects: a side call goes where the configuration says */
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	setup_tls(h, be);
	if (be->basic_username) {
		curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(h, CURLOPT_USERNAME, be->basic_username);
		curl_easy_setopt(h, CURLOPT_PASSWORD, be->basic_password ? be->basic_password : "");
	}
	if (!strcmp(rq->method, "HEAD")) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else {
		if (rq->body || !strcmp(rq->method, "POST") || !strcmp(rq->method, "PUT") ||
		    !strcmp(rq->method, "PATCH")) {
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
			curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body ? rq->body : "");
		}
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);
	}
	rc = S_perform(&sl->side_run, h, NULL);
	if (rc == CURLE_OK && curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK &&
	    code >= 100 && code <= 599) {
		rs->status = (int)code;
		for (const char *p = s.conn; *p;) {
			size_t n;
			char name[256];

			while (*p == ',' || *p == ' ' || *p == '\t')
				p++;
			n = strcspn(p, ", \t");
			if (n && n < sizeof(name)) {
				memcpy(name, p, n);
				name[n] = '\0';
				pol_headers_del(&rs->headers, name);
			}
			p += n;
		}
		ret = 0;
		goto out;
	}
	pol_headers_release(&rs->headers);
	free(rs->body);
	rs->body = NULL;
	rs->body_len = 0;
	rs->status = 0;
	if (s.too_large) {
		rs->error = "answer too large";
	} else if (rc == CURLE_OPERATION_TIMEDOUT) {
		rs->error = "timed out";
		rs->timed_out = 1;
	} else {
		rs->error = rc == CURLE_OK ? "bad answer" : "unreachable or bad answer";
		log_warn("request '%s': side call to backend '%s': %s", req->request_id, be->id,
			 curl_easy_strerror(rc));
	}
	goto out;
nomem:
	rs->error = "out of memory";
out:
	if (h)
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(list);
	free(url);
	req->backend_ms = (req->backend_ms > 0 ? req->backend_ms : 0) + mono_ms() - t0;
	return ret;
}

static const struct pol_app_ops app_ops = { read_body, side_call };

void forward_ops(struct app *app, struct request *req, struct pol_call *c)
{
	req->app = app;
	c->ops = &app_ops;
	c->ops_ctx = req;
}
