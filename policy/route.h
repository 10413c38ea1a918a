/*
 * route — the route table: which API and which operation a request path belongs
 * to, at a cost that does not grow with the number of APIs (a trie on decoded,
 * case-folded path segments) or operations (a trie on template segments).
 *
 *   route_build(gw, &errs)           once, by the loader, after apis are parsed
 *   route_match(gw, path, len, host, method, &m)   per request, no allocation
 *   route_free(gw)                   by gw_free()
 *
 * Paths are raw: as the client sent them (percent-encoding intact), below the
 * mount point, without the query string ("/weather/forecast/oslo"). Matching
 * (config-v1.md, APIs and operations):
 *  - every segment is percent-decoded, then split again on '/' and '\'; a piece
 *    that is "." or "..", a bad %XX escape or a decoded NUL makes ROUTE_BAD_PATH
 *    (path_check), as does a non-empty path that does not start with '/';
 *  - API paths match whole segments, case-insensitively; the longest wins; an
 *    API with hostnames only matches when host (port stripped, case-folded) is
 *    one of them, else the next-longest is tried; at one path an API whose
 *    hostnames name the host beats one without hostnames;
 *  - operations: method (exact beats "*"), then template segments compared
 *    decoded, literals case-insensitively; literal beats {param} beats {*rest};
 *    empty segments (a trailing or doubled '/') are ignored for matching.
 *    The path decides first, the method among templates that end at the same
 *    place; when none of those has the method, the next-best path is tried
 *    (POST /items/new and GET /items/{id}: GET /items/new is the second).
 *    {*rest} also matches nothing (GET /files for "/files/{*path}").
 *
 * Results borrow from the path and the gateway; nothing to free.
 */
#ifndef HOSTGATE_ROUTE_H
#define HOSTGATE_ROUTE_H

#include <stddef.h>

#include "policy/gateway.h"

#define ROUTE_MAX_PARAMS 16
#define ROUTE_MAX_SEGMENTS 128	/* more segments: ROUTE_BAD_PATH */
#define ROUTE_MAX_HOST 255		/* a longer Host matches no hostname */

enum route_status {
	ROUTE_OK,
	ROUTE_BAD_PATH,		/* dot segment, bad escape, NUL, too many segments: 400 */
	ROUTE_NO_API,		/* 404 */
	ROUTE_NO_OPERATION,	/* the API has operations and none matched: 404 */
	ROUTE_UNAVAILABLE,	/* the gateway's image is damaged (image_damaged()): reload */
};

struct route_param {
	const char *name;	/* template's parameter name (for {*rest}: "rest") */
	const char *raw;	/* slice of the request path, still percent-encoded */
	size_t raw_len;		/* for {*rest}: the whole remainder, '/' included */
};

struct route_match {
	/* the gateway that holds api: the one matched against, or for a gateway
	 * opened from an image, the one compiled from the API's block; the
	 * engine runs the call against it */
	const struct gateway *gw;
	const struct gw_api *api;
	const struct gw_operation *op;	/* NULL when the API has no operations */
	const char *rest;	/* raw path below the API's path: "" or "/..." */
	size_t rest_len;
	size_t n_params;
	struct route_param params[ROUTE_MAX_PARAMS];
};

/* Compiles gw->apis into gw->routes and each api->ops. Returns 0, or -1 with
 * errors (bad template "apis[i].operations[j].url_template: ...", two APIs
 * that would serve the same path and host "apis[i].path: ...", two operations
 * with the same method and template shape). */
int route_build(struct gateway *gw, struct cfg_errors *errs);

/* Matches one request. host may be NULL (no Host header); method is the
 * request's method as sent. Returns the status; m is filled on ROUTE_OK and
 * ROUTE_NO_OPERATION (m->api set). A gateway that owns an image (image.h)
 * looks the API up there, compiling it on first use (the one allocation). */
enum route_status route_match(const struct gateway *gw, const char *path, size_t len,
			      const char *host, const char *method, struct route_match *m);

/* The route table's key of an API path (as gw_api.path holds it): its
 * decoded, case-folded segments joined by NUL bytes, into a new *key of *len
 * bytes. Returns 0, or -1 (a path route_build() refuses, or out of memory). */
int route_api_key(const char *path, char **key, size_t *len);
/* Normalises a Host value or a configured hostname into dst (room for
 * ROUTE_MAX_HOST + 1): port and IPv6 brackets stripped, one trailing dot
 * dropped, lower case. Returns the length, or -1 when nothing usable is left. */
long route_host_norm(const char *h, size_t len, char *dst);

/* Frees gw->routes and every api->ops; safe on a partly built gateway. */
void route_free(struct gateway *gw);

#endif
