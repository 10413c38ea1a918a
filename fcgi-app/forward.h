/*
 * forward — sends a routed request to its backend with libcurl and streams the
 * answer back: request body read as the backend takes it (never buffered
 * whole), response headers sent as soon as they are complete, body chunks
 * written as they arrive.
 *
 *   forward_init() once per process; forward(app, req) per request.
 *
 * Upstream request: backend URL + the raw path below the API's path + the raw
 * query, less any client parameter that could be read as a credential query
 * parameter (its once-decoded name is one ignoring case, or starts with one
 * followed by a non-alphanumeric byte), + the credential query parameters,
 * once each; the client's headers minus hop-by-hop ones (RFC 9110 §7.6.1 and
 * those named in Connection) and names that are not tokens; Host is the
 * backend's; X-Forwarded-For/-Proto/-Host per gateway.forwarded_headers and
 * trusted_proxies; backend credentials replace the client's. A body goes with
 * its Content-Length, or chunked when its length is unknown, never a chunked
 * header without a body; a body needed again (retry, redirect) is kept in
 * memory up to 1 MiB, also when its length is unknown.
 *
 * follow-redirects: only to the first URL's origin (scheme, host, port),
 * at most 5 hops (then 502), RFC 9110 method rules; any other 3xx is the
 * answer. The client always gets exactly one response.
 *
 * Bodies the policies read (docs/configuration.md, "Bodies the policies
 * read"): once a policy read the client's body (forward_ops' read_body),
 * c->req_body goes upstream with its Content-Length instead of the stream,
 * as often as retries and redirects need it. When the outbound section reads
 * the backend's body (engine_outbound_needs_body), the backend call goes
 * without Accept-Encoding, the answer is collected whole (POL_MAX_RESP_BODY,
 * past it a 502, never a partial answer), the outbound section runs on it
 * and it goes out with its length recomputed. Otherwise bodies stream.
 *
 * Response: the backend's headers minus hop-by-hop ones and those a web
 * server would act on (Status, X-Sendfile*, X-LIGHTTPD-*, X-Accel-*,
 * Variable-*, Location outside 201/3xx); Content-Length dropped when the
 * backend sent chunked, 502 when its lengths conflict or are malformed.
 *
 * Failures before the answer started become 502 (connect, TLS, bad answer),
 * 504 (timeout), 413 (body over the limit) or 408 (a client read timed out,
 * io->timed_out); after it started, an abort. A client gone in the middle of
 * an HTTPS answer with at most 256 KiB of it left: the rest is read and
 * dropped (at most 1 s), so that the backend connection stays.
 *
 * libcurl: each request in flight has a slot (forward.c): a handle for
 * backend calls, never reset (every option that can differ is set on every
 * request), and one for side calls, reset per call, each run on a multi handle
 * of its own through libcurl's socket interface (libcurl is told which socket
 * is ready, so it does not poll it again), its waits fiber_poll's (the
 * process's other requests run meanwhile: common/fiber.h). Every handle uses the
 * process's one CURLSH, which keeps the connections, TLS sessions and DNS
 * answers for any request. No OpenSSL read-ahead (it stalls libcurl 7.88:
 * docs/performance.md, "A worker's small HTTPS request"). libcurl's timeout and retry
 * waits never run past req->deadline_ms. c->backend_failed (the circuit
 * breaker) is set only for what the backend did: connect errors, backend
 * timeouts, bad answers, 5xx — never for a client's fault.
 */
#ifndef HOSTGATE_FORWARD_H
#define HOSTGATE_FORWARD_H

#include "fcgi-app/request.h"

struct pol_call;

/* Returns 0. libcurl (embedded: the Makefile) is set up on the first
 * request that goes to a backend or makes a side call, or by forward_load:
 * answers decided without a backend never call curl_global_init. */
int forward_init(struct app *app);
/* Sets up libcurl now (a FastCGI worker, before its first request).
 * Returns 0, or -1 when libcurl cannot be set up. */
int forward_load(struct app *app);
void forward_release(struct app *app);
/* Fills c's upstream request from the client's (c initialised by
 * engine_call_init): method, raw path below the API, raw query, the client's
 * headers without hop-by-hop ones, X-Forwarded-*. Returns 0, or -1 (a header
 * holds CR/LF, or no memory: answer 400). */
int forward_prepare(struct request *req, struct pol_call *c);
/* Sends c (after engine_inbound said POL_CONTINUE) to c->backend_url, runs
 * the outbound or on-error section, retries as c->retry says. Always answers
 * the client. */
void forward(struct app *app, struct request *req, struct pol_call *c);
/* Gives c the app's services (engine.h struct pol_app_ops) for req: read_body
 * (the client's whole body, up to gateway.max_request_body_bytes, within the
 * client deadlines) and side_call (send-request, on a second handle of the
 * process). After engine_call_init. */
void forward_ops(struct app *app, struct request *req, struct pol_call *c);
/* Gives back what the request forwarded with (its handles and buffers, kept
 * for the next request of the process). At the end of every request that
 * called forward_ops. */
void forward_done(struct request *req);
/* Sends the answer a policy made: c->status, reason, resp_headers, body. */
void respond_call(struct request *req, struct pol_call *c);

#endif
