#include "sync-agent/fetch.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define POST_ANSWER_MAX (64u * 1024)

struct sink {
	struct fetch_response *r;
	size_t cap;
	size_t max;
};

static void set_error(struct fetch_response *r, const char *url, const char *why)
{
	snprintf(r->error, sizeof(r->error), "cannot fetch '%s': %s", url, why);
}

/* Appends n bytes to the response, growing its buffer up to max. */
static int sink_add(struct sink *s, const char *data, size_t n)
{
	struct fetch_response *r = s->r;

	if (n > s->max - r->len) {
		r->too_large = 1;
		return -1;
	}
	if (r->len + n + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 16384;
		char *p;

		while (cap < r->len + n + 1)
			cap *= 2;
		if (cap > s->max + 1)
			cap = s->max + 1;
		p = realloc(r->body, cap);
		if (!p)
			return -1;
		r->body = p;
		s->cap = cap;
	}
	memcpy(r->body + r->len, data, n);
	r->len += n;
	r->body[r->len] = '\0';
	return 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	size_t n = size * nmemb;

	if (sink_add(arg, data, n) < 0)
		return 0;	/* aborts the transfer with CURLE_WRITE_ERROR */
	return n;
}

/* Copies a header's value (trimmed) into dst when it fits, else leaves "". */
static void copy_value(char *dst, size_t dstlen, const char *v, size_t n)
{
	while (n > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		n--;
	}
	while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ' ||
			 v[n - 1] == '\t'))
		n--;
	if (n >= dstlen) {
		dst[0] = '\0';
		return;
	}
	memcpy(dst, v, n);
	dst[n] = '\0';
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
	struct fetch_response *r = arg;
	size_t n = size * nmemb;
	static const char etag[] = "etag:", sig[] = "hostgate-signature:", ra[] = "retry-after:";

	if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
		/* a new response (after a 100 Continue): forget the previous headers */
		r->etag[0] = '\0';
		r->signature[0] = '\0';
		r->retry_after_s = -1;
	} else if (n > sizeof(ra) - 1 && strncasecmp(data, ra, sizeof(ra) - 1) == 0) {
		char v[16];
		char *end;
		long s;

		copy_value(v, sizeof(v), data + sizeof(ra) - 1, n - (sizeof(ra) - 1));
		errno = 0;
		s = strtol(v, &end, 10);
		r->retry_after_s = v[0] >= '0' && v[0] <= '9' && *end == '\0' && errno == 0 &&
				   s <= 86400 ? s : -1;
	} else if (n > sizeof(etag) - 1 && strncasecmp(data, etag, sizeof(etag) - 1) == 0) {
		copy_value(r->etag, sizeof(r->etag), data + sizeof(etag) - 1,
			   n - (sizeof(etag) - 1));
	} else if (n > sizeof(sig) - 1 && strncasecmp(data, sig, sizeof(sig) - 1) == 0) {
		copy_value(r->signature, sizeof(r->signature), data + sizeof(sig) - 1,
			   n - (sizeof(sig) - 1));
	}
	return n;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct fetch *f = arg;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return f->should_stop && f->should_stop() ? 1 : 0;
}

/* Reads a file:// URL's file. Returns 0 (status 200 or 404) or -1. */
static int read_file_url(const char *url, size_t max, struct fetch_response *r)
{
	const char *path = url + 7;
	struct stat st;
	int fd, rc = -1;
	struct sink s = { r, 0, max };

	if (strncmp(path, "localhost/", 10) == 0)
		path += 9;
	/* O_NONBLOCK: a FIFO there must not hang the agent (regular files
	 * read the same); O_NOFOLLOW: the document is the file, not a link */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR) {
			r->status = 404;
			return 0;
		}
		set_error(r, url, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		set_error(r, url, "not a regular file");
		goto out;
	}
	if ((unsigned long long)st.st_size > max) {
		r->too_large = 1;
		snprintf(r->error, sizeof(r->error), "cannot fetch '%s': larger than %zu bytes",
			 url, max);
		goto out;
	}
	for (;;) {
		char buf[65536];
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			set_error(r, url, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if (sink_add(&s, buf, (size_t)n) < 0) {
			set_error(r, url, r->too_large ? "the file grew past the size cap" :
				  "out of memory");
			goto out;
		}
	}
	if (!r->body) {
		r->body = malloc(1);
		if (!r->body) {
			set_error(r, url, "out of memory");
			goto out;
		}
		r->body[0] = '\0';
	}
	r->status = 200;
	rc = 0;
out:
	close(fd);
	return rc;
}

int fetch_init(struct fetch *f, const struct agent_conf *conf, int (*should_stop)(void))
{
	static const char prefix[] = "Authorization: GatewayKey ";
	size_t n = sizeof(prefix) + conf->token_len;

	f->curl = NULL;
	f->conf = conf;
	f->should_stop = should_stop;
	f->auth_header = malloc(n);
	if (!f->auth_header)
		return -1;
	memcpy(f->auth_header, prefix, sizeof(prefix) - 1);
	memcpy(f->auth_header + sizeof(prefix) - 1, conf->token, conf->token_len);
	f->auth_header[n - 1] = '\0';
	if (conf->scheme == AGENTCONF_FILE)
		return 0;
	f->curl = curl_easy_init();
	if (!f->curl) {
		fetch_release(f);
		return -1;
	}
	return 0;
}

/* Zeroes and frees a header list that holds the token. */
static void free_headers(struct curl_slist *list)
{
	for (struct curl_slist *h = list; h; h = h->next)
		explicit_bzero(h->data, strlen(h->data));
	curl_slist_free_all(list);
}

/* Appends line to *list. Returns 0 or -1. */
static int add_header(struct curl_slist **list, const char *line)
{
	struct curl_slist *l = curl_slist_append(*list, line);

	if (!l)
		return -1;
	*list = l;
	return 0;
}

/* Runs one request on the reused handle. Returns 0 or -1 (r->error). */
static int perform(struct fetch *f, const char *url, struct curl_slist *headers,
		   const char *post, size_t post_len, size_t max, struct fetch_response *r)
{
	CURL *c = f->curl;
	char errbuf[CURL_ERROR_SIZE];
	struct sink s = { r, 0, max };
	CURLcode rc;
	const char *protocols = f->conf->scheme == AGENTCONF_HTTP ? "http,https" : "https";

	errbuf[0] = '\0';
	/* live connections, DNS cache and TLS sessions survive the reset */
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, protocols);
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, protocols);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 20L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (f->conf->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, f->conf->ca_file);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "hostgate-sync/" HOSTGATE_VERSION);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, f);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	if (post) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)post_len);
	} else {
		/* every encoding curl can undo; the size cap applies to the decoded body */
		curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
	}
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK) {
		if (rc == CURLE_ABORTED_BY_CALLBACK) {
			r->stopped = 1;
			set_error(r, url, "interrupted by a signal");
		} else if (r->too_large || rc == CURLE_FILESIZE_EXCEEDED) {
			r->too_large = 1;
			snprintf(r->error, sizeof(r->error),
				 "cannot fetch '%s': the body is larger than %zu bytes", url, max);
		} else {
			set_error(r, url, errbuf[0] ? errbuf : curl_easy_strerror(rc));
		}
		free(r->body);
		r->body = NULL;
		r->len = 0;
		r->status = 0;
		return -1;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	if (!r->body) {
		r->body = malloc(1);
		if (!r->body) {
			set_error(r, url, "out of memory");
			return -1;
		}
		r->body[0] = '\0';
	}
	return 0;
}

int fetch_get(struct fetch *f, const char *url, const char *etag, size_t max,
	      struct fetch_response *r)
{
	struct curl_slist *headers = NULL;
	char inm[FETCH_ETAG_MAX + 32];
	int rc = -1;

	fetch_response_release(r);
	if (strncmp(url, "file://", 7) == 0)
		return read_file_url(url, max, r);
	if (!f->curl) {
		set_error(r, url, "no http client");
		return -1;
	}
	if (add_header(&headers, f->auth_header) < 0)
		goto oom;
	if (etag && *etag) {
		snprintf(inm, sizeof(inm), "If-None-Match: %s", etag);
		if (add_header(&headers, inm) < 0)
			goto oom;
	}
	rc = perform(f, url, headers, NULL, 0, max, r);
	goto out;
oom:
	set_error(r, url, "out of memory");
out:
	free_headers(headers);
	return rc;
}

int fetch_post_json(struct fetch *f, const char *url, const char *json, size_t len,
		    struct fetch_response *r)
{
	struct curl_slist *headers = NULL;
	int rc = -1;

	fetch_response_release(r);
	if (!f->curl) {
		set_error(r, url, "no http client");
		return -1;
	}
	if (add_header(&headers, f->auth_header) < 0 ||
	    add_header(&headers, "Content-Type: application/json") < 0 ||
	    add_header(&headers, "Accept: application/json") < 0 ||
	    add_header(&headers, "Expect:") < 0) {
		set_error(r, url, "out of memory");
		goto out;
	}
	rc = perform(f, url, headers, json, len, POST_ANSWER_MAX, r);
out:
	free_headers(headers);
	return rc;
}

int fetch_send(struct fetch *f, const char *url, const char *const *headers, const char *post,
	       size_t post_len, size_t max, struct fetch_response *r)
{
	struct curl_slist *list = NULL;
	int rc = -1;

	fetch_response_release(r);
	if (!f->curl) {
		set_error(r, url, "no http client");
		return -1;
	}
	for (size_t i = 0; headers && headers[i]; i++) {
		if (add_header(&list, headers[i]) < 0)
			goto oom;
	}
	if (post && add_header(&list, "Expect:") < 0)
		goto oom;
	rc = perform(f, url, list, post, post_len, max, r);
	goto out;
oom:
	set_error(r, url, "out of memory");
out:
	free_headers(list);
	return rc;
}

void fetch_response_release(struct fetch_response *r)
{
	free(r->body);
	r->body = NULL;
	r->len = 0;
	r->status = 0;
	r->etag[0] = '\0';
	r->signature[0] = '\0';
	r->too_large = 0;
	r->stopped = 0;
	r->error[0] = '\0';
	r->retry_after_s = -1;
}

void fetch_release(struct fetch *f)
{
	if (f->auth_header) {
		explicit_bzero(f->auth_header, strlen(f->auth_header));
		free(f->auth_header);
		f->auth_header = NULL;
	}
	if (f->curl)
		curl_easy_cleanup(f->curl);
	f->curl = NULL;
}
