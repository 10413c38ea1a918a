/*
 * fetch — the agent's only libcurl user: one easy handle, reused for every
 * request (connections and TLS sessions survive curl_easy_reset), talking to the
 * management endpoint. file:// endpoints are read directly, without curl.
 *
 *   struct fetch f;
 *   fetch_init(&f, &conf, should_stop);        builds the Authorization header
 *   struct fetch_response r = FETCH_RESPONSE_INIT;
 *   if (fetch_get(&f, url, etag_or_NULL, max, &r) < 0) log(r.error);
 *   else switch (r.status) ...                  r.body, r.len, r.etag, r.signature
 *   fetch_response_release(&r);
 *   fetch_post_json(&f, url, json, len, &r);    heartbeat, metrics
 *   fetch_release(&f);                           zeroes the token copies
 *
 * Every request carries "Authorization: GatewayKey {token}" (fetch_send, for
 * the Azure source, the caller's headers instead) and
 * "User-Agent: hostgate-sync/VERSION". Protocols are limited to https (and http
 * with allow_insecure); verification is always on; proxies from the
 * environment are ignored; redirects are not followed. Time caps: connect 10 s,
 * whole transfer 60 s, below 1 KiB/s for 20 s aborts. A body past max bytes
 * (after Content-Encoding is undone) aborts the transfer. should_stop (may be
 * NULL) is polled during transfers: when it returns true the transfer is
 * aborted.
 *
 * For file:// URLs status is 200 when the file was read, 404 when it does not
 * exist; etag and signature are empty.
 *
 * Ownership: a response owns its body (free with fetch_response_release). The
 * token is copied into memory that fetch_release zeroes; it never reaches a log
 * line, an error string or argv.
 *
 * Errors: -1 when no HTTP answer arrived (connection, TLS, timeout, too large,
 * stopped), with a message in r->error that names the URL; 0 otherwise, whatever
 * the status. fetch_init returns -1 only when out of memory or curl fails.
 */
#ifndef HOSTGATE_FETCH_H
#define HOSTGATE_FETCH_H

#include <stddef.h>

#include "sync-agent/agentconf.h"

#define FETCH_ETAG_MAX 256
#define FETCH_SIG_MAX 512
#define FETCH_BODY_MAX (64u * 1024 * 1024)

struct fetch {
	void *curl;		/* CURL *, NULL for file:// endpoints */
	char *auth_header;	/* "Authorization: GatewayKey ..." (secret) */
	const struct agent_conf *conf;
	int (*should_stop)(void);
};

struct fetch_response {
	long status;		/* HTTP status, 0 when none */
	char *body;		/* owned, NUL-terminated (not counted in len) */
	size_t len;
	char etag[FETCH_ETAG_MAX];	/* "" when absent or too long */
	char signature[FETCH_SIG_MAX];	/* Hostgate-Signature value, "" when absent */
	int too_large;		/* the body passed max */
	int stopped;		/* should_stop() aborted the transfer */
	char error[512];
	long retry_after_s;	/* Retry-After in seconds; -1 when absent or not seconds */
};
#define FETCH_RESPONSE_INIT { 0, NULL, 0, "", "", 0, 0, "", -1 }

/* Returns 0 or -1. conf must outlive f. */
int fetch_init(struct fetch *f, const struct agent_conf *conf, int (*should_stop)(void));
/* GET url (If-None-Match: etag when etag is not NULL or ""), keeping at most max
 * body bytes. Returns 0 (an answer, see r->status) or -1 (r->error). */
int fetch_get(struct fetch *f, const char *url, const char *etag, size_t max,
	      struct fetch_response *r);
/* POST len bytes of JSON to url; the answer body is kept up to 64 KiB.
 * Returns 0 (an answer, see r->status) or -1 (r->error). Not for file://. */
int fetch_post_json(struct fetch *f, const char *url, const char *json, size_t len,
		    struct fetch_response *r);
/* The Azure source (docs/azure-apim.md): a GET (post NULL) or POST of
 * post_len bytes with the caller's header lines (NULL-terminated; they may
 * hold a secret: the copies curl gets are zeroed) instead of the GatewayKey
 * one, on the same handle and with the same limits. Returns 0 or -1. */
int fetch_send(struct fetch *f, const char *url, const char *const *headers, const char *post,
	       size_t post_len, size_t max, struct fetch_response *r);
/* Frees the body; r can be reused. */
void fetch_response_release(struct fetch_response *r);
/* Zeroes the token copies and frees the handle. */
void fetch_release(struct fetch *f);

#endif
