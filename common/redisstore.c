/*
 * redisstore — see redisstore.h. One Lua script for the three window calls.
 */
#include "common/redisstore.h"

#include <hiredis/hiredis.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/sha256.h"

/* KEYS[1] the window; ARGV: op ("t" take, "a" add, "p" peek), n, limit,
 * period in ms. Returns {allowed 0|1, remaining, ms until the window ends}.
 * The key's value is the count; its expiry is the window's end (Redis drops
 * an ended window before any command sees it, so INCRBY on it starts the
 * next). The usual call is one INCRBY; a new window adds its PEXPIRE, a
 * refusal takes its units back before anyone can see them (the script is
 * atomic) and reads the PTTL. A key without expiry (written by hand) is
 * started afresh. */
static const char SCRIPT[] =
	"local k, op, n, limit, period = KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])\n"
	"if op == 'p' then\n"
	"  local c = tonumber(redis.call('GET', k) or '0') or 0\n"
	"  if c < limit then return {1, limit - c, 0} end\n"
	"  local ttl = redis.call('PTTL', k)\n"
	"  if ttl < 0 then return {1, limit, 0} end\n"
	"  return {0, 0, ttl}\n"
	"end\n"
	"if op == 't' and (limit == 0 or n > limit) then return {0, 0, period} end\n"
	"local c = redis.call('INCRBY', k, n)\n"
	"if c == n then\n"
	"  redis.call('PEXPIRE', k, period)\n"
	"  return {1, limit - n, 0}\n"
	"end\n"
	"if op == 'a' or c <= limit then return {1, limit - c, 0} end\n"
	"local ttl = redis.call('PTTL', k)\n"
	"if ttl < 0 then\n"
	"  redis.call('SET', k, n, 'PX', period)\n"
	"  return {1, limit - n, 0}\n"
	"end\n"
	"redis.call('DECRBY', k, n)\n"
	"return {0, 0, ttl}\n";

struct redis_store {
	struct redis_conn *conn;
	char prefix[REDIS_STORE_PREFIX_MAX + 1];
	char sha[2 * SHA_DIGEST_LENGTH + 1];
};

static void hex(const unsigned char *d, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 15];
	}
	out[2 * n] = '\0';
}

struct redis_store *redis_store_new(const struct redis_target *t, const char *prefix)
{
	struct redis_store *rs;
	unsigned char d[SHA_DIGEST_LENGTH];

	if (!prefix)
		prefix = "";
	if (strlen(prefix) > REDIS_STORE_PREFIX_MAX)
		return NULL;
	rs = calloc(1, sizeof(*rs));
	if (!rs)
		return NULL;
	rs->conn = redis_conn_new(t);
	if (!rs->conn) {
		free(rs);
		return NULL;
	}
	memcpy(rs->prefix, prefix, strlen(prefix) + 1);
	SHA1((const unsigned char *)SCRIPT, strlen(SCRIPT), d);
	hex(d, sizeof(d), rs->sha);
	return rs;
}

void redis_store_free(struct redis_store *rs)
{
	if (!rs)
		return;
	redis_conn_free(rs->conn);
	free(rs);
}

struct redis_conn *redis_store_conn(struct redis_store *rs)
{
	return rs->conn;
}

int redis_store_key(const struct redis_store *rs, const char *key, char *out, size_t cap)
{
	size_t pl = strlen(rs->prefix), kl = strlen(key);
	unsigned char d[SHA256_LEN];

	if (pl + kl <= REDIS_STORE_KEY_HASH_OVER) {
		if (pl + kl + 1 > cap)
			return -1;
		memcpy(out, rs->prefix, pl);
		memcpy(out + pl, key, kl + 1);
		return 0;
	}
	if (pl + 2 + 2 * sizeof(d) + 1 > cap)
		return -1;
	sha256(key, kl, d);
	memcpy(out, rs->prefix, pl);
	memcpy(out + pl, "h:", 2);
	hex(d, sizeof(d), out + pl + 2);
	return 0;
}

static int is_noscript(const redisReply *r)
{
	return r->type == REDIS_REPLY_ERROR && r->str && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

/* EVALSHA, loading the script on NOSCRIPT. NULL: failed (reported). */
static redisReply *run_script(struct redis_store *rs, struct redis_op *op, int argc,
			      const char **argv)
{
	redisReply *r = redis_conn_call(op, argc, argv, NULL);

	if (r && is_noscript(r)) {
		const char *load[] = { "SCRIPT", "LOAD", SCRIPT };
		redisReply *l;

		freeReplyObject(r);
		l = redis_conn_call(op, 3, load, NULL);
		if (!l)
			return NULL;
		if (l->type != REDIS_REPLY_STRING || strcmp(l->str, rs->sha) != 0) {
			freeReplyObject(l);
			redis_conn_fail(rs->conn, "SCRIPT LOAD: unexpected reply");
			return NULL;
		}
		freeReplyObject(l);
		r = redis_conn_call(op, argc, argv, NULL);
	}
	if (r && r->type == REDIS_REPLY_ERROR) {
		char why[REDIS_CONN_ERROR_MAX];

		snprintf(why, sizeof(why), "EVALSHA: %.90s", r->str ? r->str : "error");
		freeReplyObject(r);
		redis_conn_fail(rs->conn, why);
		return NULL;
	}
	if (r && (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
		  r->element[0]->type != REDIS_REPLY_INTEGER ||
		  r->element[1]->type != REDIS_REPLY_INTEGER ||
		  r->element[2]->type != REDIS_REPLY_INTEGER)) {
		freeReplyObject(r);
		redis_conn_fail(rs->conn, "EVALSHA: unexpected reply");
		return NULL;
	}
	return r;
}

enum counter_result redis_store_op(void *ctx, enum counter_op op, const char *key, uint32_t n,
				   uint32_t limit, uint32_t period_s, uint32_t *retry_after,
				   uint32_t *remaining)
{
	struct redis_store *rs = ctx;
	char rkey[REDIS_STORE_PREFIX_MAX + COUNTER_KEY_MAX + 8];
	char sn[16], sl[16], sp[24];
	const char *argv[8];
	struct redis_op ro;
	redisReply *r;
	long long rem, ms;
	enum counter_result res;

	*retry_after = 0;
	*remaining = limit;
	if (redis_store_key(rs, key, rkey, sizeof(rkey)) != 0)
		return COUNTER_ERROR;
	snprintf(sn, sizeof(sn), "%u", n);
	snprintf(sl, sizeof(sl), "%u", limit);
	snprintf(sp, sizeof(sp), "%llu", (unsigned long long)period_s * 1000);
	argv[0] = "EVALSHA";
	argv[1] = rs->sha;
	argv[2] = "1";
	argv[3] = rkey;
	argv[4] = op == COUNTER_OP_TAKE ? "t" : op == COUNTER_OP_ADD ? "a" : "p";
	argv[5] = sn;
	argv[6] = sl;
	argv[7] = sp;
	if (redis_conn_begin(rs->conn, &ro) != 0)
		return COUNTER_UNAVAILABLE;
	r = run_script(rs, &ro, 8, argv);
	redis_conn_end(&ro);
	if (!r)
		return COUNTER_UNAVAILABLE;
	res = r->element[0]->integer ? COUNTER_ALLOW : COUNTER_DENY;
	rem = r->element[1]->integer;
	ms = r->element[2]->integer;
	freeReplyObject(r);
	if (op == COUNTER_OP_ADD) {
		*remaining = 0;
	} else if (res == COUNTER_ALLOW) {
		*remaining = rem < 0 ? 0 : rem > (long long)limit ? limit : (uint32_t)rem;
	} else {
		*remaining = 0;
		ms = (ms + 999) / 1000;
		*retry_after = ms < 1 ? 1 : ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
	}
	return res;
}
