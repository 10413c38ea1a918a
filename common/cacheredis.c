/*
 * cacheredis — see cacheredis.h. Three commands, each its own redisconn
 * operation; no scripts: a GET, a SET PX and a DEL are each atomic on the
 * server, and two gateways filling one key both store, the last staying (as
 * two processes of one host do in the file).
 */
#include "common/cacheredis.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/sha256.h"

#define MAGIC "HGC1"
#define HEAD 12			/* magic + 8 bytes of stored-at */
#define WARN_EVERY_S 60

struct cache_redis {
	struct redis_conn *conn;
	int64_t warned_at;
	char prefix[CACHE_REDIS_PREFIX_MAX + 1];
};

struct cache_redis *cache_redis_new(struct redis_conn *rc, const char *prefix)
{
	struct cache_redis *cr;

	if (!prefix)
		prefix = "";
	if (!rc || strlen(prefix) > CACHE_REDIS_PREFIX_MAX)
		return NULL;
	cr = calloc(1, sizeof(*cr));
	if (!cr)
		return NULL;
	cr->conn = rc;
	cr->warned_at = INT64_MIN;
	memcpy(cr->prefix, prefix, strlen(prefix) + 1);
	return cr;
}

void cache_redis_free(struct cache_redis *cr)
{
	free(cr);
}

void cache_redis_key(const struct cache_redis *cr, const void *key, size_t key_len,
		     char out[CACHE_REDIS_KEY_MAX])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char d[SHA256_LEN];
	size_t pl = strlen(cr->prefix), i;
	char *p = out;

	sha256(key, key_len, d);
	memcpy(p, cr->prefix, pl);
	p += pl;
	memcpy(p, "cache:", 6);
	p += 6;
	for (i = 0; i < sizeof(d); i++) {
		*p++ = digits[d[i] >> 4];
		*p++ = digits[d[i] & 15];
	}
	*p = '\0';
}

static void warn(struct cache_redis *cr, const char *what, const redisReply *r)
{
	int64_t now = (int64_t)time(NULL);

	if (cr->warned_at != INT64_MIN && now - cr->warned_at < WARN_EVERY_S)
		return;
	cr->warned_at = now;
	log_warn("cache: Redis %s: %.100s", what,
		 r && r->type == REDIS_REPLY_ERROR && r->str ? r->str : "unexpected reply");
}

static int op_lookup(void *ctx, const void *key, size_t key_len, int64_t now, char **value,
		     size_t *len, int64_t *age)
{
	struct cache_redis *cr = ctx;
	char rkey[CACHE_REDIS_KEY_MAX];
	const char *argv[2];
	size_t lens[2];
	struct redis_op op;
	redisReply *r;
	int64_t at = 0;
	char *out;
	int rc = 0, i;

	cache_redis_key(cr, key, key_len, rkey);
	if (redis_conn_begin(cr->conn, &op) < 0)
		return -1;
	argv[0] = "GET";
	lens[0] = 3;
	argv[1] = rkey;
	lens[1] = strlen(rkey);
	r = redis_conn_call(&op, 2, argv, lens);
	redis_conn_end(&op);
	if (!r)
		return -1;
	if (r->type == REDIS_REPLY_NIL)
		goto out;
	if (r->type != REDIS_REPLY_STRING) {
		warn(cr, "GET", r);
		goto out;
	}
	if (r->len < HEAD || r->len - HEAD > CACHE_VALUE_MAX || memcmp(r->str, MAGIC, 4) != 0)
		goto out;	/* not ours, or too large: a miss */
	out = malloc(r->len - HEAD + 1);
	if (!out) {
		rc = -1;
		goto out;
	}
	memcpy(out, r->str + HEAD, r->len - HEAD);
	out[r->len - HEAD] = '\0';
	for (i = 0; i < 8; i++)
		at = (int64_t)(((uint64_t)at << 8) | (unsigned char)r->str[4 + i]);
	*value = out;
	*len = r->len - HEAD;
	if (age)
		*age = now > at ? now - at : 0;
	rc = 1;
out:
	freeReplyObject(r);
	return rc;
}

static int op_store(void *ctx, const void *key, size_t key_len, const void *value, size_t len,
		    uint32_t ttl_s, int64_t now)
{
	struct cache_redis *cr = ctx;
	char rkey[CACHE_REDIS_KEY_MAX], ms[24];
	const char *argv[5];
	size_t lens[5];
	struct redis_op op;
	redisReply *r;
	char *v;
	int rc = -1, i;

	v = malloc(len + HEAD);
	if (!v)
		return -1;
	memcpy(v, MAGIC, 4);
	for (i = 0; i < 8; i++)
		v[4 + i] = (char)(((uint64_t)now >> (56 - 8 * i)) & 0xff);
	if (len)
		memcpy(v + HEAD, value, len);
	cache_redis_key(cr, key, key_len, rkey);
	snprintf(ms, sizeof(ms), "%llu", (unsigned long long)ttl_s * 1000u);
	if (redis_conn_begin(cr->conn, &op) < 0)
		goto out;
	argv[0] = "SET";
	argv[1] = rkey;
	argv[2] = v;
	argv[3] = "PX";
	argv[4] = ms;
	lens[0] = 3;
	lens[1] = strlen(rkey);
	lens[2] = len + HEAD;
	lens[3] = 2;
	lens[4] = strlen(ms);
	r = redis_conn_call(&op, 5, argv, lens);
	redis_conn_end(&op);
	if (!r)
		goto out;
	if (r->type == REDIS_REPLY_STATUS)
		rc = 0;
	else
		warn(cr, "SET", r);
	freeReplyObject(r);
out:
	free(v);
	return rc;
}

static int op_remove(void *ctx, const void *key, size_t key_len)
{
	struct cache_redis *cr = ctx;
	char rkey[CACHE_REDIS_KEY_MAX];
	const char *argv[2];
	size_t lens[2];
	struct redis_op op;
	redisReply *r;
	int rc = 0;

	cache_redis_key(cr, key, key_len, rkey);
	if (redis_conn_begin(cr->conn, &op) < 0)
		return -1;
	argv[0] = "DEL";
	lens[0] = 3;
	argv[1] = rkey;
	lens[1] = strlen(rkey);
	r = redis_conn_call(&op, 2, argv, lens);
	redis_conn_end(&op);
	if (!r)
		return -1;
	if (r->type == REDIS_REPLY_INTEGER)
		rc = r->integer > 0;
	else
		warn(cr, "DEL", r);
	freeReplyObject(r);
	return rc;
}

void cache_redis_remote(struct cache_redis *cr, struct cache_remote *out)
{
	*out = (struct cache_remote){ op_lookup, op_store, op_remove, cr };
}
