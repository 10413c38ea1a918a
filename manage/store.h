/*
 * store — everything hostgate-manage keeps, behind one small interface so
 * that a second implementation (PostgreSQL through libpq, for a highly
 * available management plane: docs/managing.md) replaces one file. The
 * default, store_sqlite.c, is one SQLite database in WAL mode with a busy
 * timeout, its schema versioned and migrated when it is opened.
 *
 *   struct store *st = store_open(path, err, sizeof(err));
 *   store_begin(st);                       one write transaction
 *   store_put(st, "api", "echo", json, gen); store_set_refs(...);
 *   store_commit(st);  or  store_rollback(st);
 *   store_close(st);
 *
 * What it holds:
 *   objects     (kind, id) -> JSON text as the configuration document has it,
 *               and the generation that last changed it (the ETag). Kinds:
 *               "backend", "api", "product", "named_value", "subscription",
 *               "gateway", "policies" (id "global").
 *   refs        which object names which ("api/echo" -> "backend/b1"): the
 *               409 on delete, and a gateway's document built from what its
 *               APIs reach without reading the rest of the database.
 *   generation  one global counter, raised by every accepted change.
 *   tokens      admin and gateway tokens as SHA-256 hex, with an owner and an
 *               expiry (0: none).
 *   documents   each gateway's document for one generation, signed (a cache:
 *               1,000 agents polling cost one indexed read each).
 *   heartbeats  the last heartbeat body of each gateway and when it came.
 *   metrics     windows seen (instance, from) and per-minute aggregates.
 *   sessions    the dashboard's logins: SHA-256 of the cookie, the CSRF
 *               token of its forms, the expiry.
 *
 * Ownership: strings handed out (*json, *owner…) are malloc'd, the caller
 * frees them; strings passed in are copied. Callbacks get borrowed strings
 * valid during the call; a callback returning non-zero stops the walk and
 * the walk returns that value.
 *
 * Errors: -1 (logged with the database's message); lookups return 1 when
 * the row is absent. Reads outside store_begin() see one consistent
 * snapshot per call.
 */
#ifndef HOSTGATE_MANAGE_STORE_H
#define HOSTGATE_MANAGE_STORE_H

#include <stddef.h>
#include <stdint.h>

#define STORE_SCHEMA_VERSION 2
#define STORE_HIST_BUCKETS 12	/* management-protocol.md: 11 bounds + 1 */
#define STORE_HIST_BOUNDS_MS { 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000 }

struct store;

/* Opens (creating and migrating) the database. NULL with err set. */
struct store *store_open(const char *path, char *err, size_t errlen);
void store_close(struct store *st);

/* One write transaction at a time (SQLite: BEGIN IMMEDIATE). 0 or -1. */
int store_begin(struct store *st);
int store_commit(struct store *st);
void store_rollback(struct store *st);

/* The current generation (0 before the first write), or -1. */
int64_t store_generation(struct store *st);
/* Inside a transaction: raises it by one. 0 with *gen the new value, or -1. */
int store_bump_generation(struct store *st, int64_t *gen);

/* ---- objects ---- */
/* 0 found (*json new, *changed may be NULL), 1 absent, -1 error. */
int store_get(struct store *st, const char *kind, const char *id, char **json, int64_t *changed);
/* Inserts or replaces. 0 or -1. */
int store_put(struct store *st, const char *kind, const char *id, const char *json,
	      int64_t changed);
/* Deletes the object and the references it makes. 0, 1 absent, -1. */
int store_delete(struct store *st, const char *kind, const char *id);
/* Every object of kind in id order. */
int store_each(struct store *st, const char *kind,
	       int (*fn)(void *ctx, const char *id, const char *json, int64_t changed), void *ctx);

/* ---- references: "kind/id" strings ---- */
/* Replaces what from names with to[0..n). 0 or -1. */
int store_set_refs(struct store *st, const char *from, const char *const *to, size_t n);
/* Each "kind/id" naming to (fn's id argument; json is NULL). */
int store_referrers(struct store *st, const char *to,
		    int (*fn)(void *ctx, const char *from, const char *json, int64_t changed),
		    void *ctx);
/* Each "kind/id" that from names. */
int store_references(struct store *st, const char *from,
		     int (*fn)(void *ctx, const char *to, const char *json, int64_t changed),
		     void *ctx);

/* ---- tokens: kind "admin" or "gateway" ---- */
int store_token_add(struct store *st, const char *kind, const char *owner, const char *sha256_hex,
		    int64_t expires);
/* 0 found (*owner new, *expires), 1 absent, -1. */
int store_token_find(struct store *st, const char *kind, const char *sha256_hex, char **owner,
		     int64_t *expires);
/* Removes a gateway's tokens (the gateway was deleted). */
int store_token_drop_owner(struct store *st, const char *kind, const char *owner);

/* ---- documents (cache) ---- */
/* 0 found (all new), 1 absent, -1. sig may come back NULL (unsigned). */
int store_doc_get(struct store *st, const char *gateway, int64_t generation, char **body,
		  size_t *len, char **etag, char **sig);
/* Replaces the gateway's cached document. */
int store_doc_put(struct store *st, const char *gateway, int64_t generation, const char *body,
		  size_t len, const char *etag, const char *sig);

/* Forgets what a deleted gateway left: its cached document and heartbeat. */
int store_gateway_forget(struct store *st, const char *gateway);

/* ---- heartbeats ---- */
int store_heartbeat_put(struct store *st, const char *gateway, const char *json,
			int64_t received);
/* 0 found, 1 never, -1. */
int store_heartbeat_get(struct store *st, const char *gateway, char **json, int64_t *received);

/* ---- metrics ---- */
struct store_metric {
	int64_t minute;		/* unix seconds, a multiple of 60 */
	const char *gateway, *api, *operation, *subscription;	/* "" for none */
	int status;
	int64_t count, errors, bytes_in, bytes_out;
	int64_t hist[STORE_HIST_BUCKETS];
};
/* Records the window (instance, from): 0 new, 1 seen before, -1. */
int store_metrics_window(struct store *st, const char *instance, const char *from,
			 int64_t received);
/* Adds one series into its minute's aggregate. */
int store_metrics_add(struct store *st, const struct store_metric *m);
/* Drops aggregates and windows older than before (unix seconds). */
int store_metrics_expire(struct store *st, int64_t before);

/* group_by bits */
#define STORE_BY_GATEWAY 1u
#define STORE_BY_API 2u
#define STORE_BY_OPERATION 4u
#define STORE_BY_SUBSCRIPTION 8u
#define STORE_BY_STATUS 16u
#define STORE_BY_MINUTE 32u
#define STORE_BY_HOUR 64u
struct store_metrics_filter {
	const char *gateway, *api, *operation, *subscription;	/* NULL: any */
	int64_t from, to;	/* unix seconds, minute >= from and < to */
};
/* One row per group (fields not grouped on are NULL/0; minute holds the
 * minute or hour when grouped on them), in group order. */
int store_metrics_query(struct store *st, const struct store_metrics_filter *f, unsigned group_by,
			int (*fn)(void *ctx, const struct store_metric *row), void *ctx);

/* ---- dashboard sessions ---- */
#define STORE_SESSION_MAX_S (12 * 3600)
/* Adds one (and drops those long expired). 0 or -1. */
int store_session_add(struct store *st, const char *sha256_hex, const char *csrf, int64_t expires);
/* 0 found (*csrf new), 1 absent, -1. */
int store_session_find(struct store *st, const char *sha256_hex, char **csrf, int64_t *expires);
int store_session_drop(struct store *st, const char *sha256_hex);

#endif
