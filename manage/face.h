/*
 * face — the gateway face: /gateways/{g}/configuration, /heartbeat,
 * /metrics exactly as management-protocol.md has them, each behind
 * "Authorization: GatewayKey TOKEN" (a token of that gateway: another
 * gateway's is 403, a wrong or expired one 401).
 *
 * A gateway's document is built once per generation (model.h: only what its
 * APIs need), signed when a key is configured, and kept in the store; every
 * other request for it is a token lookup and one indexed read, and a 304
 * when the agent's ETag is current.
 */
#ifndef HOSTGATE_MANAGE_FACE_H
#define HOSTGATE_MANAGE_FACE_H

#include <stddef.h>
#include <stdint.h>

struct mapp;
struct mreq;
struct mresp;

/* g: the gateway id (already checked to be an id), leaf: "configuration",
 * "heartbeat" or "metrics". Sets the answer. */
void face_handle(struct mapp *app, const struct mreq *req, struct mresp *resp, const char *g,
		 const char *leaf);

/* The gateway's document at the current generation, from the cache or
 * built (signed when a key is configured, and cached) now: 0 with *body
 * (*len bytes), *etag (quoted) and *sig (NULL: unsigned), all new; 1 no
 * such gateway; -1 (logged). */
int face_document(struct mapp *app, const char *g, char **body, size_t *len, char **etag,
		  char **sig, int64_t *generation);

/* Answers with the document (ETag, Hostgate-Signature; 304 on a matching
 * If-None-Match). No authentication here: the caller's. */
void face_send_document(struct mapp *app, const char *g, const struct mreq *req,
			struct mresp *resp);

#endif
