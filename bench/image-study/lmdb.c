/*
 * lmdb — the same data in LMDB (liblmdb, Debian's liblmdb-dev): one
 * environment file per generation (MDB_NOSUBDIR), opened by readers with
 * MDB_RDONLY | MDB_NOLOCK | MDB_NORDAHEAD. NOLOCK because the app must not
 * need a lock file it can write (a reader table the web server's user can
 * write is one any script can corrupt); that is safe only when nobody writes
 * the file while it is read, so the writer makes a new file per generation
 * and renames it into place, as the image does.
 *
 * Two named databases:
 *   routes  key: lower-cased API path; value: u32 API index, u32 op count,
 *           then per operation: u8 method length, method, u8 template
 *           length, template (strings inline: LMDB has no shared area)
 *   plans   key: u32 big-endian (API index * STUDY_OPS + operation), so keys
 *           arrive sorted and MDB_APPEND applies; value: u16-length-prefixed
 *           backend URL, API id, operation id, then u16 step count and per
 *           step u16-length-prefixed name and value
 * A lookup is one read transaction (renewed per request, as a worker would),
 * two mdb_get calls, and reads the values in place (LMDB hands out pointers
 * into its map).
 *
 * Built with -DLMDB_INLINE ("lmdb-inline"): no plans database; each
 * operation's plan follows its template in the route value (u16 length,
 * plan), so a lookup is one mdb_get — LMDB's best case for this data.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "study.h"

#ifdef LMDB_INLINE
const char *const store_name = "lmdb-inline";
#else
const char *const store_name = "lmdb";
#endif

struct store {
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi routes, plans;
};

#define CHECK(call) do { int rc_ = (call); if (rc_) { \
	fprintf(stderr, "lmdb: %s: %s\n", #call, mdb_strerror(rc_)); goto fail; } } while (0)

/* committed every BATCH puts: one transaction of 100k APIs would hold every
 * dirty page in memory; a per-generation file needs no single transaction,
 * the rename is what makes it appear whole */
#define BATCH 20000

static size_t put_str16(unsigned char *p, const char *s)
{
	uint16_t n = (uint16_t)strlen(s);

	memcpy(p, &n, 2);
	memcpy(p + 2, s, n);
	return 2 + (size_t)n;
}

/* the plan of operation j of API i; returns its length */
static size_t plan_value(unsigned char *v, uint32_t i, uint32_t j)
{
	char s[64];
	uint16_t steps = i % 10 == 0;
	size_t len = 0;

	len += put_str16(v + len, STUDY_BACKEND);
	snprintf(s, sizeof(s), "api%u", i);
	len += put_str16(v + len, s);
	snprintf(s, sizeof(s), "op%u", j);
	len += put_str16(v + len, s);
	memcpy(v + len, &steps, 2);
	len += 2;
	if (steps) {
		len += put_str16(v + len, "X-Api");
		snprintf(s, sizeof(s), "api-%u", i);
		len += put_str16(v + len, s);
	}
	return len;
}

int store_build(const char *path, uint32_t n)
{
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi routes, plans;
	char tmp[4096], lock[4200], s[64];
	unsigned char v[2048];
	size_t in_txn = 0;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	unlink(tmp);
	snprintf(lock, sizeof(lock), "%s-lock", tmp);
	CHECK(mdb_env_create(&env));
	CHECK(mdb_env_set_maxdbs(env, 2));
	CHECK(mdb_env_set_mapsize(env, (size_t)8 << 30));
	CHECK(mdb_env_open(env, tmp, MDB_NOSUBDIR, 0644));
	CHECK(mdb_txn_begin(env, NULL, 0, &txn));
	CHECK(mdb_dbi_open(txn, "routes", MDB_CREATE, &routes));
	CHECK(mdb_dbi_open(txn, "plans", MDB_CREATE, &plans));
	/* routes first, then plans: each in key order, so MDB_APPEND */
	for (uint32_t i = 0; i < n; i++) {
		MDB_val key, val;
		size_t len = 8;
		uint32_t ops = STUDY_OPS;

		snprintf(s, sizeof(s), "svc%05u", i);
		memcpy(v, &i, 4);
		memcpy(v + 4, &ops, 4);
		for (int j = 0; j < STUDY_OPS; j++) {
			size_t ml = strlen(study_op_method[j]), tl = strlen(study_op_tmpl[j]);

			v[len++] = (unsigned char)ml;
			memcpy(v + len, study_op_method[j], ml);
			len += ml;
			v[len++] = (unsigned char)tl;
			memcpy(v + len, study_op_tmpl[j], tl);
			len += tl;
#ifdef LMDB_INLINE
			uint16_t pl = (uint16_t)plan_value(v + len + 2, i, (uint32_t)j);

			memcpy(v + len, &pl, 2);
			len += 2 + pl;
#endif
		}
		key.mv_data = s;
		key.mv_size = strlen(s);
		val.mv_data = v;
		val.mv_size = len;
		CHECK(mdb_put(txn, routes, &key, &val, MDB_APPEND));
		if (++in_txn == BATCH) {
			CHECK(mdb_txn_commit(txn));
			txn = NULL;
			CHECK(mdb_txn_begin(env, NULL, 0, &txn));
			in_txn = 0;
		}
	}
#ifdef LMDB_INLINE
	n = 0;	/* the plans are in the routes */
#endif
	for (uint32_t i = 0; i < n; i++) {
		for (uint32_t j = 0; j < STUDY_OPS; j++) {
			MDB_val key, val;
			uint32_t k = htonl(i * STUDY_OPS + j);
			size_t len = plan_value(v, i, j);

			key.mv_data = &k;
			key.mv_size = 4;
			val.mv_data = v;
			val.mv_size = len;
			CHECK(mdb_put(txn, plans, &key, &val, MDB_APPEND));
			if (++in_txn == BATCH) {
				CHECK(mdb_txn_commit(txn));
				txn = NULL;
				CHECK(mdb_txn_begin(env, NULL, 0, &txn));
				in_txn = 0;
			}
		}
	}
	CHECK(mdb_txn_commit(txn));	/* synced: LMDB's default */
	txn = NULL;
	mdb_env_close(env);
	env = NULL;
	unlink(lock);
	if (rename(tmp, path) != 0) {
		perror(path);
		return -1;
	}
	return 0;
fail:
	if (txn)
		mdb_txn_abort(txn);
	if (env)
		mdb_env_close(env);
	return -1;
}

struct store *store_open(const char *path)
{
	struct store *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	CHECK(mdb_env_create(&s->env));
	CHECK(mdb_env_set_maxdbs(s->env, 2));
	CHECK(mdb_env_open(s->env, path, MDB_RDONLY | MDB_NOLOCK | MDB_NOSUBDIR | MDB_NORDAHEAD,
			   0));
	CHECK(mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->txn));
	CHECK(mdb_dbi_open(s->txn, "routes", 0, &s->routes));
	CHECK(mdb_dbi_open(s->txn, "plans", 0, &s->plans));
	/* handles opened in a transaction live on only when it commits */
	CHECK(mdb_txn_commit(s->txn));
	s->txn = NULL;
	CHECK(mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->txn));
	mdb_txn_reset(s->txn);
	return s;
fail:
	fprintf(stderr, "lmdb: '%s' is not a usable store\n", path);
	if (s->txn)
		mdb_txn_abort(s->txn);
	if (s->env)
		mdb_env_close(s->env);
	free(s);
	return NULL;
}

static uint16_t get16(const unsigned char *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return v;
}

uint64_t store_lookup(struct store *s, const char *path, const char *method)
{
	const char *seg, *rest;
	char lower[256];
	size_t seglen, ml = strlen(method);
	MDB_val key, val;
	uint32_t api, ops, best = 0, k;
	int best_score = 0;
	const unsigned char *p, *best_plan = NULL;
	uint64_t d = 0xcbf29ce484222325ull;

	if (*path != '/')
		return 0;
	seg = path + 1;
	rest = strchr(seg, '/');
	if (!rest)
		rest = seg + strlen(seg);
	seglen = (size_t)(rest - seg);
	if (seglen == 0 || seglen > sizeof(lower))
		return 0;
	for (size_t i = 0; i < seglen; i++)
		lower[i] = (char)tolower((unsigned char)seg[i]);
	if (mdb_txn_renew(s->txn))
		return 0;
	key.mv_data = lower;
	key.mv_size = seglen;
	if (mdb_get(s->txn, s->routes, &key, &val))
		goto none;
	p = val.mv_data;
	memcpy(&api, p, 4);
	memcpy(&ops, p + 4, 4);
	p += 8;
	for (uint32_t j = 0; j < ops; j++) {
		size_t l = *p++;
		int score = 0;

		if (l == ml && !memcmp(p, method, l))
			score = 1;
		p += l;
		l = *p++;
		if (score)
			score = study_tmpl_match((const char *)p, l, rest);
		p += l;
		if (score > best_score) {
			best_score = score;
			best = j;
			best_plan = p + 2;
		}
#ifdef LMDB_INLINE
		p += 2 + get16(p);
#endif
	}
	if (!best_score)
		goto none;
#ifdef LMDB_INLINE
	(void)k;
	(void)best;
	p = best_plan;
#else
	(void)best_plan;
	k = htonl(api * STUDY_OPS + best);
	key.mv_data = &k;
	key.mv_size = 4;
	if (mdb_get(s->txn, s->plans, &key, &val))
		goto none;
	p = val.mv_data;
#endif
	for (int i = 0; i < 3; i++) {
		uint16_t l = get16(p);

		d = study_mix(d, (const char *)p + 2, l);
		p += 2 + l;
	}
	uint16_t steps = get16(p);
	p += 2;
	for (uint16_t i = 0; i < 2 * steps; i++) {
		uint16_t l = get16(p);

		d = study_mix(d, (const char *)p + 2, l);
		p += 2 + l;
	}
	mdb_txn_reset(s->txn);
	return d | 1;
none:
	mdb_txn_reset(s->txn);
	return 0;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	mdb_txn_abort(s->txn);
	mdb_env_close(s->env);
	free(s);
}
