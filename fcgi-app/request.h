/*
 * request — what one request is while the app answers it (struct request),
 * the process-wide state it runs in (struct app), and the gateway's own
 * answers: the JSON errors and the raw writes the handler and the forwarder
 * both send (respond.c). Its own module so that the handler calls the
 * forwarder and the forwarder never calls back into the handler.
 */
#ifndef HOSTGATE_REQUEST_H
#define HOSTGATE_REQUEST_H

#include <stdint.h>

#include <json-c/json.h>

#include "common/cache.h"
#include "common/counter.h"
#include "common/metrics.h"
#include "fcgi-app/io.h"
#include "fcgi-app/reload.h"
#include "policy/route.h"

#define REQUEST_ID_MAX 128

struct app {
	const char *config_path;	/* HOSTGATE_CONFIG */
	const char *state_dir;		/* HOSTGATE_STATE_DIR */
	const char *access_log;		/* HOSTGATE_ACCESS_LOG, NULL: off */
	int access_fd;			/* opened on first use, -1 before */
	const char *mount;		/* HOSTGATE_MOUNT from the process environment */
	struct reload reload;
	struct metrics_store *metrics;	/* NULL: the state directory is unusable */
	struct counter_store *counters;	/* NULL: limits answer 500 (engine.h) */
	struct redis_store *redis;	/* gateway.counters store redis; NULL: local */
	struct cache_redis *cache_redis;	/* the cache's store over redis's connection */
	struct redis_retired *redis_retired;	/* replaced while requests waited in them */
	unsigned char redis_conf[32];	/* SHA-256 of the gw_counters redis was made from */
	const void *redis_gw;		/* the gateway last compared with, and its generation */
	int64_t redis_gen;
	struct cache_store *cache;	/* NULL: cache policies miss (common/cache.h) */
	void *curl;			/* libcurl is set up (forward_load): its CURLSH */
	uint64_t rid_state;		/* request-id generator */
};

/* One request, as the handler and the forwarder see it. Strings borrow from
 * the request variables. */
struct request {
	struct io *io;
	struct app *app;
	void *fwd;			/* the forwarder's slot (forward.c), NULL: none yet */
	const struct gateway *gw;
	const char *method;
	const char *path;		/* raw, below the mount point, no query */
	size_t path_len;
	const char *query;		/* raw query without '?', NULL: none */
	size_t query_len;
	const char *client_ip;		/* the peer (REMOTE_ADDR) */
	int peer_trusted;		/* the peer is one of gateway.trusted_proxies */
	char request_ip[64];		/* ${request.ip}: the client behind trusted proxies */
	const char *subscription;	/* the subscription's id, for logs and metrics */
	const char *https;		/* "on" when the client came over TLS */
	char request_id[REQUEST_ID_MAX + 1];
	struct route_match route;
	int64_t content_length;		/* -1: unknown (chunked, CGI), 0: no body */
	int status;			/* status sent to the client, 0 before */
	int headers_sent;
	int64_t bytes_in, bytes_out;
	int64_t backend_ms;
	int64_t deadline_ms;		/* monotonic ms by which the request must be over, 0: none */
	const char *error;		/* why the gateway answered itself, for the log */
};

/* Sends the gateway's own JSON error (status, message) unless headers went out
 * already, in which case the response is aborted. */
void respond_error(struct request *req, int status, const char *message);
/* The standard reason phrase of status ("Unknown" for others). */
const char *http_reason(int status);
/* Writes to the client, counting bytes; returns 0 or -1 (client gone). */
int respond_write(struct request *req, const char *buf, size_t n);

/* Sends a complete response with a JSON body the gateway made itself. */
void respond_json(struct request *req, int status, json_object *body);

#endif
