/*
 * store_sqlite — the store (store.h) in one SQLite database: WAL (readers
 * never wait for the writer), a busy timeout (writers from several processes
 * queue instead of failing), the schema version in user_version and each
 * migration run once, in order, when the database is opened.
 */
#include "manage/store.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define BUSY_TIMEOUT_MS 10000

struct store {
	sqlite3 *db;
};

/* migrations[i] takes the schema from version i to i + 1 */
static const char *const migrations[] = {
	"CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
	"INSERT INTO meta VALUES ('generation', 0);"
	"CREATE TABLE objects (kind TEXT NOT NULL, id TEXT NOT NULL, json TEXT NOT NULL,"
	"  changed INTEGER NOT NULL, PRIMARY KEY (kind, id)) WITHOUT ROWID;"
	"CREATE TABLE refs (src TEXT NOT NULL, dst TEXT NOT NULL, PRIMARY KEY (src, dst))"
	"  WITHOUT ROWID;"
	"CREATE INDEX refs_dst ON refs (dst, src);"
	"CREATE TABLE tokens (hash TEXT PRIMARY KEY, kind TEXT NOT NULL, owner TEXT NOT NULL,"
	"  expires INTEGER NOT NULL);"
	"CREATE INDEX tokens_owner ON tokens (kind, owner);"
	"CREATE TABLE documents (gateway TEXT PRIMARY KEY, generation INTEGER NOT NULL,"
	"  body BLOB NOT NULL, etag TEXT NOT NULL, sig TEXT);"
	"CREATE TABLE heartbeats (gateway TEXT PRIMARY KEY, json TEXT NOT NULL,"
	"  received INTEGER NOT NULL);"
	"CREATE TABLE metric_windows (instance TEXT NOT NULL, start TEXT NOT NULL,"
	"  received INTEGER NOT NULL, PRIMARY KEY (instance, start));"
	"CREATE INDEX metric_windows_received ON metric_windows (received);"
	"CREATE TABLE metrics (minute INTEGER NOT NULL, gateway TEXT NOT NULL, api TEXT NOT NULL,"
	"  operation TEXT NOT NULL, subscription TEXT NOT NULL, status INTEGER NOT NULL,"
	"  count INTEGER NOT NULL, errors INTEGER NOT NULL, bytes_in INTEGER NOT NULL,"
	"  bytes_out INTEGER NOT NULL,"
	"  h0 INTEGER NOT NULL, h1 INTEGER NOT NULL, h2 INTEGER NOT NULL, h3 INTEGER NOT NULL,"
	"  h4 INTEGER NOT NULL, h5 INTEGER NOT NULL, h6 INTEGER NOT NULL, h7 INTEGER NOT NULL,"
	"  h8 INTEGER NOT NULL, h9 INTEGER NOT NULL, h10 INTEGER NOT NULL, h11 INTEGER NOT NULL,"
	"  PRIMARY KEY (minute, gateway, api, operation, subscription, status));",
	/* 2: the dashboard's sessions */
	"CREATE TABLE sessions (hash TEXT PRIMARY KEY, csrf TEXT NOT NULL,"
	"  expires INTEGER NOT NULL);"
	"CREATE INDEX sessions_expires ON sessions (expires);",
};
#define N_MIGRATIONS (sizeof(migrations) / sizeof(migrations[0]))

_Static_assert(N_MIGRATIONS == STORE_SCHEMA_VERSION, "one migration per schema version");

static int fail(struct store *st, const char *what)
{
	log_err("database: %s: %s", what, sqlite3_errmsg(st->db));
	return -1;
}

static sqlite3_stmt *prep(struct store *st, const char *sql)
{
	sqlite3_stmt *s = NULL;

	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
		fail(st, "prepare");
		return NULL;
	}
	return s;
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
	sqlite3_bind_text(s, i, v ? v : "", -1, SQLITE_TRANSIENT);
}

/* Runs a statement that returns no rows; finalizes it. 0 or -1. */
static int run(struct store *st, sqlite3_stmt *s, const char *what)
{
	int rc;

	if (!s)
		return -1;
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return fail(st, what);
	return 0;
}

static char *col_dup(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);

	return t ? strdup((const char *)t) : NULL;
}

/* Runs one migration, from version to version + 1, in its own transaction
 * (unless another process did it meanwhile). 0 or -1 with err set. */
static int migrate_one(struct store *st, int version, char *err, size_t errlen)
{
	char *msg = NULL, pragma[64];
	sqlite3_stmt *s;
	int now = -1, rc = -1;

	if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK)
		goto out;
	s = prep(st, "PRAGMA user_version");
	if (s && sqlite3_step(s) == SQLITE_ROW)
		now = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	if (now > version) {
		rc = sqlite3_exec(st->db, "COMMIT", NULL, NULL, &msg) == SQLITE_OK ? 0 : -1;
		goto out;
	}
	snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", version + 1);
	if (sqlite3_exec(st->db, migrations[version], NULL, NULL, &msg) == SQLITE_OK &&
	    sqlite3_exec(st->db, pragma, NULL, NULL, &msg) == SQLITE_OK &&
	    sqlite3_exec(st->db, "COMMIT", NULL, NULL, &msg) == SQLITE_OK)
		rc = 0;
out:
	if (rc != 0) {
		snprintf(err, errlen, "cannot migrate the schema to version %d: %s", version + 1,
			 msg ? msg : sqlite3_errmsg(st->db));
		if (!sqlite3_get_autocommit(st->db))
			sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	}
	sqlite3_free(msg);
	return rc;
}

static int migrate(struct store *st, char *err, size_t errlen)
{
	sqlite3_stmt *s = prep(st, "PRAGMA user_version");
	int version = -1;

	if (s && sqlite3_step(s) == SQLITE_ROW)
		version = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	if (version < 0 || version > (int)N_MIGRATIONS) {
		snprintf(err, errlen, "schema version %d is not one this program knows (%d)",
			 version, (int)N_MIGRATIONS);
		return -1;
	}
	for (; version < (int)N_MIGRATIONS; version++)
		if (migrate_one(st, version, err, errlen) != 0)
			return -1;
	return 0;
}

struct store *store_open(const char *path, char *err, size_t errlen)
{
	struct store *st = calloc(1, sizeof(*st));
	int ok = 0;

	if (!st) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "cannot open the database '%s': %s", path,
			 st->db ? sqlite3_errmsg(st->db) : "out of memory");
		goto out;
	}
	sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
	if (sqlite3_exec(st->db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
			 "PRAGMA foreign_keys = ON", NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "cannot set up the database '%s': %s", path,
			 sqlite3_errmsg(st->db));
		goto out;
	}
	ok = migrate(st, err, errlen) == 0;
out:
	if (!ok) {
		store_close(st);
		st = NULL;
	}
	return st;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	sqlite3_close(st->db);
	free(st);
}

int store_begin(struct store *st)
{
	if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return fail(st, "begin");
	return 0;
}

int store_commit(struct store *st)
{
	if (sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		fail(st, "commit");
		store_rollback(st);
		return -1;
	}
	return 0;
}

void store_rollback(struct store *st)
{
	if (!sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
}

int64_t store_generation(struct store *st)
{
	sqlite3_stmt *s = prep(st, "SELECT value FROM meta WHERE key = 'generation'");
	int64_t g = -1;

	if (s && sqlite3_step(s) == SQLITE_ROW)
		g = sqlite3_column_int64(s, 0);
	else if (s)
		fail(st, "generation");
	sqlite3_finalize(s);
	return g;
}

int store_bump_generation(struct store *st, int64_t *gen)
{
	if (run(st, prep(st, "UPDATE meta SET value = value + 1 WHERE key = 'generation'"),
		"generation") != 0)
		return -1;
	*gen = store_generation(st);
	return *gen < 0 ? -1 : 0;
}

/* ---- objects ---- */

int store_get(struct store *st, const char *kind, const char *id, char **json, int64_t *changed)
{
	sqlite3_stmt *s = prep(st, "SELECT json, changed FROM objects WHERE kind = ? AND id = ?");
	int rc;

	if (!s)
		return -1;
	bind_text(s, 1, kind);
	bind_text(s, 2, id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*json = col_dup(s, 0);
		if (changed)
			*changed = sqlite3_column_int64(s, 1);
		rc = *json ? 0 : -1;
	} else {
		rc = rc == SQLITE_DONE ? 1 : fail(st, "get");
	}
	sqlite3_finalize(s);
	return rc;
}

int store_put(struct store *st, const char *kind, const char *id, const char *json,
	      int64_t changed)
{
	sqlite3_stmt *s = prep(st, "INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?)");

	if (!s)
		return -1;
	bind_text(s, 1, kind);
	bind_text(s, 2, id);
	bind_text(s, 3, json);
	sqlite3_bind_int64(s, 4, changed);
	return run(st, s, "put");
}

int store_delete(struct store *st, const char *kind, const char *id)
{
	sqlite3_stmt *s = prep(st, "DELETE FROM objects WHERE kind = ? AND id = ?");
	char from[256];

	if (!s)
		return -1;
	bind_text(s, 1, kind);
	bind_text(s, 2, id);
	if (run(st, s, "delete") != 0)
		return -1;
	if (sqlite3_changes(st->db) == 0)
		return 1;
	snprintf(from, sizeof(from), "%s/%s", kind, id);
	return store_set_refs(st, from, NULL, 0);
}

/* Walks the rows of s (finalizing it): columns id, json, changed. */
static int walk(struct store *st, sqlite3_stmt *s,
		int (*fn)(void *ctx, const char *id, const char *json, int64_t changed), void *ctx)
{
	int rc;

	if (!s)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		int r = fn(ctx, (const char *)sqlite3_column_text(s, 0),
			   (const char *)sqlite3_column_text(s, 1), sqlite3_column_int64(s, 2));

		if (r != 0) {
			sqlite3_finalize(s);
			return r;
		}
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : fail(st, "walk");
}

int store_each(struct store *st, const char *kind,
	       int (*fn)(void *ctx, const char *id, const char *json, int64_t changed), void *ctx)
{
	sqlite3_stmt *s = prep(st, "SELECT id, json, changed FROM objects WHERE kind = ? "
			       "ORDER BY id");

	if (s)
		bind_text(s, 1, kind);
	return walk(st, s, fn, ctx);
}

int store_set_refs(struct store *st, const char *from, const char *const *to, size_t n)
{
	sqlite3_stmt *s = prep(st, "DELETE FROM refs WHERE src = ?");

	if (!s)
		return -1;
	bind_text(s, 1, from);
	if (run(st, s, "refs") != 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		s = prep(st, "INSERT OR IGNORE INTO refs VALUES (?, ?)");
		if (!s)
			return -1;
		bind_text(s, 1, from);
		bind_text(s, 2, to[i]);
		if (run(st, s, "refs") != 0)
			return -1;
	}
	return 0;
}

int store_referrers(struct store *st, const char *to,
		    int (*fn)(void *ctx, const char *from, const char *json, int64_t changed),
		    void *ctx)
{
	sqlite3_stmt *s = prep(st, "SELECT src, NULL, 0 FROM refs WHERE dst = ? ORDER BY src");

	if (s)
		bind_text(s, 1, to);
	return walk(st, s, fn, ctx);
}

int store_references(struct store *st, const char *from,
		     int (*fn)(void *ctx, const char *to, const char *json, int64_t changed),
		     void *ctx)
{
	sqlite3_stmt *s = prep(st, "SELECT dst, NULL, 0 FROM refs WHERE src = ? ORDER BY dst");

	if (s)
		bind_text(s, 1, from);
	return walk(st, s, fn, ctx);
}

/* ---- tokens ---- */

int store_token_add(struct store *st, const char *kind, const char *owner, const char *sha256_hex,
		    int64_t expires)
{
	sqlite3_stmt *s = prep(st, "INSERT INTO tokens VALUES (?, ?, ?, ?)");

	if (!s)
		return -1;
	bind_text(s, 1, sha256_hex);
	bind_text(s, 2, kind);
	bind_text(s, 3, owner);
	sqlite3_bind_int64(s, 4, expires);
	return run(st, s, "token");
}

int store_token_find(struct store *st, const char *kind, const char *sha256_hex, char **owner,
		     int64_t *expires)
{
	sqlite3_stmt *s = prep(st, "SELECT owner, expires FROM tokens WHERE hash = ? AND kind = ?");
	int rc;

	if (!s)
		return -1;
	bind_text(s, 1, sha256_hex);
	bind_text(s, 2, kind);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*owner = col_dup(s, 0);
		*expires = sqlite3_column_int64(s, 1);
		rc = *owner ? 0 : -1;
	} else {
		rc = rc == SQLITE_DONE ? 1 : fail(st, "token");
	}
	sqlite3_finalize(s);
	return rc;
}

int store_token_drop_owner(struct store *st, const char *kind, const char *owner)
{
	sqlite3_stmt *s = prep(st, "DELETE FROM tokens WHERE kind = ? AND owner = ?");

	if (!s)
		return -1;
	bind_text(s, 1, kind);
	bind_text(s, 2, owner);
	return run(st, s, "token");
}

/* ---- documents ---- */

int store_doc_get(struct store *st, const char *gateway, int64_t generation, char **body,
		  size_t *len, char **etag, char **sig)
{
	sqlite3_stmt *s = prep(st, "SELECT body, etag, sig FROM documents WHERE gateway = ? "
			       "AND generation = ?");
	int rc;

	if (!s)
		return -1;
	bind_text(s, 1, gateway);
	sqlite3_bind_int64(s, 2, generation);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		int n = sqlite3_column_bytes(s, 0);
		const void *b = sqlite3_column_blob(s, 0);

		*body = malloc((size_t)n + 1);
		*etag = col_dup(s, 1);
		*sig = col_dup(s, 2);
		rc = 0;
		if (!*body || !*etag) {
			free(*body);
			free(*etag);
			free(*sig);
			rc = -1;
		} else {
			if (n)
				memcpy(*body, b, (size_t)n);
			(*body)[n] = '\0';
			*len = (size_t)n;
		}
	} else {
		rc = rc == SQLITE_DONE ? 1 : fail(st, "document");
	}
	sqlite3_finalize(s);
	return rc;
}

int store_doc_put(struct store *st, const char *gateway, int64_t generation, const char *body,
		  size_t len, const char *etag, const char *sig)
{
	sqlite3_stmt *s = prep(st, "INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?, ?)");

	if (!s)
		return -1;
	bind_text(s, 1, gateway);
	sqlite3_bind_int64(s, 2, generation);
	sqlite3_bind_blob(s, 3, body, (int)len, SQLITE_TRANSIENT);
	bind_text(s, 4, etag);
	if (sig)
		bind_text(s, 5, sig);
	else
		sqlite3_bind_null(s, 5);
	return run(st, s, "document");
}

int store_gateway_forget(struct store *st, const char *gateway)
{
	sqlite3_stmt *s = prep(st, "DELETE FROM documents WHERE gateway = ?");

	if (!s)
		return -1;
	bind_text(s, 1, gateway);
	if (run(st, s, "gateway") != 0)
		return -1;
	s = prep(st, "DELETE FROM heartbeats WHERE gateway = ?");
	if (!s)
		return -1;
	bind_text(s, 1, gateway);
	return run(st, s, "gateway");
}

/* ---- heartbeats ---- */

int store_heartbeat_put(struct store *st, const char *gateway, const char *json,
			int64_t received)
{
	sqlite3_stmt *s = prep(st, "INSERT OR REPLACE INTO heartbeats VALUES (?, ?, ?)");

	if (!s)
		return -1;
	bind_text(s, 1, gateway);
	bind_text(s, 2, json);
	sqlite3_bind_int64(s, 3, received);
	return run(st, s, "heartbeat");
}

int store_heartbeat_get(struct store *st, const char *gateway, char **json, int64_t *received)
{
	sqlite3_stmt *s = prep(st, "SELECT json, received FROM heartbeats WHERE gateway = ?");
	int rc;

	if (!s)
		return -1;
	bind_text(s, 1, gateway);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*json = col_dup(s, 0);
		*received = sqlite3_column_int64(s, 1);
		rc = *json ? 0 : -1;
	} else {
		rc = rc == SQLITE_DONE ? 1 : fail(st, "heartbeat");
	}
	sqlite3_finalize(s);
	return rc;
}

/* ---- metrics ---- */

int store_metrics_window(struct store *st, const char *instance, const char *from,
			 int64_t received)
{
	sqlite3_stmt *s = prep(st, "INSERT OR IGNORE INTO metric_windows VALUES (?, ?, ?)");

	if (!s)
		return -1;
	bind_text(s, 1, instance);
	bind_text(s, 2, from);
	sqlite3_bind_int64(s, 3, received);
	if (run(st, s, "metrics") != 0)
		return -1;
	return sqlite3_changes(st->db) == 0 ? 1 : 0;
}

int store_metrics_add(struct store *st, const struct store_metric *m)
{
	sqlite3_stmt *s = prep(st,
		"INSERT INTO metrics VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,"
		" ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)"
		" ON CONFLICT (minute, gateway, api, operation, subscription, status) DO UPDATE SET"
		" count = count + ?7, errors = errors + ?8, bytes_in = bytes_in + ?9,"
		" bytes_out = bytes_out + ?10, h0 = h0 + ?11, h1 = h1 + ?12, h2 = h2 + ?13,"
		" h3 = h3 + ?14, h4 = h4 + ?15, h5 = h5 + ?16, h6 = h6 + ?17, h7 = h7 + ?18,"
		" h8 = h8 + ?19, h9 = h9 + ?20, h10 = h10 + ?21, h11 = h11 + ?22");

	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, m->minute);
	bind_text(s, 2, m->gateway);
	bind_text(s, 3, m->api);
	bind_text(s, 4, m->operation);
	bind_text(s, 5, m->subscription);
	sqlite3_bind_int(s, 6, m->status);
	sqlite3_bind_int64(s, 7, m->count);
	sqlite3_bind_int64(s, 8, m->errors);
	sqlite3_bind_int64(s, 9, m->bytes_in);
	sqlite3_bind_int64(s, 10, m->bytes_out);
	for (int i = 0; i < STORE_HIST_BUCKETS; i++)
		sqlite3_bind_int64(s, 11 + i, m->hist[i]);
	return run(st, s, "metrics");
}

int store_metrics_expire(struct store *st, int64_t before)
{
	sqlite3_stmt *s = prep(st, "DELETE FROM metrics WHERE minute < ?");

	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, before);
	if (run(st, s, "metrics") != 0)
		return -1;
	s = prep(st, "DELETE FROM metric_windows WHERE received < ?");
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, before);
	return run(st, s, "metrics");
}

/* The grouping columns, in the order of the STORE_BY_ bits; the SQL is built
 * only from these constants, never from input. */
static const char *const group_cols[] = {
	"gateway", "api", "operation", "subscription", "status", "minute",
	"(minute / 3600) * 3600",
};

int store_metrics_query(struct store *st, const struct store_metrics_filter *f, unsigned group_by,
			int (*fn)(void *ctx, const struct store_metric *row), void *ctx)
{
	char sql[2048], groups[256] = "";
	const char *filters[4] = { f->gateway, f->api, f->operation, f->subscription };
	size_t glen = 0;
	sqlite3_stmt *s;
	int rc, n;

	for (unsigned i = 0; i < 7; i++) {
		if (!(group_by & (1u << i)))
			continue;
		if (i == 6 && (group_by & STORE_BY_MINUTE))
			continue;	/* minute is finer */
		n = snprintf(groups + glen, sizeof(groups) - glen, "%s%s", glen ? ", " : "",
			     group_cols[i]);
		glen += (size_t)n;
	}
	n = snprintf(sql, sizeof(sql),
		     "SELECT %s, %s, %s, %s, %s, %s,"
		     " sum(count), sum(errors), sum(bytes_in), sum(bytes_out),"
		     " sum(h0), sum(h1), sum(h2), sum(h3), sum(h4), sum(h5), sum(h6), sum(h7),"
		     " sum(h8), sum(h9), sum(h10), sum(h11) FROM metrics"
		     " WHERE minute >= ?5 AND minute < ?6"
		     " AND (?1 IS NULL OR gateway = ?1) AND (?2 IS NULL OR api = ?2)"
		     " AND (?3 IS NULL OR operation = ?3) AND (?4 IS NULL OR subscription = ?4)"
		     " %s%s %s%s",
		     group_by & STORE_BY_GATEWAY ? "gateway" : "NULL",
		     group_by & STORE_BY_API ? "api" : "NULL",
		     group_by & STORE_BY_OPERATION ? "operation" : "NULL",
		     group_by & STORE_BY_SUBSCRIPTION ? "subscription" : "NULL",
		     group_by & STORE_BY_STATUS ? "status" : "0",
		     group_by & STORE_BY_MINUTE ? "minute" :
		     group_by & STORE_BY_HOUR ? "(minute / 3600) * 3600" : "0",
		     glen ? "GROUP BY " : "", groups, glen ? "ORDER BY " : "", groups);
	if (n < 0 || (size_t)n >= sizeof(sql))
		return -1;
	s = prep(st, sql);
	if (!s)
		return -1;
	for (int i = 0; i < 4; i++)
		if (filters[i])
			bind_text(s, i + 1, filters[i]);
	sqlite3_bind_int64(s, 5, f->from);
	sqlite3_bind_int64(s, 6, f->to);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_metric m = {
			.gateway = (const char *)sqlite3_column_text(s, 0),
			.api = (const char *)sqlite3_column_text(s, 1),
			.operation = (const char *)sqlite3_column_text(s, 2),
			.subscription = (const char *)sqlite3_column_text(s, 3),
			.status = sqlite3_column_int(s, 4),
			.minute = sqlite3_column_int64(s, 5),
			.count = sqlite3_column_int64(s, 6),
			.errors = sqlite3_column_int64(s, 7),
			.bytes_in = sqlite3_column_int64(s, 8),
			.bytes_out = sqlite3_column_int64(s, 9),
		};
		int r;

		for (int i = 0; i < STORE_HIST_BUCKETS; i++)
			m.hist[i] = sqlite3_column_int64(s, 10 + i);
		r = fn(ctx, &m);
		if (r != 0) {
			sqlite3_finalize(s);
			return r;
		}
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : fail(st, "metrics query");
}

/* ---- sessions ---- */

int store_session_add(struct store *st, const char *sha256_hex, const char *csrf, int64_t expires)
{
	sqlite3_stmt *s = prep(st, "DELETE FROM sessions WHERE expires < ?");

	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, expires - STORE_SESSION_MAX_S);
	if (run(st, s, "session") != 0)
		return -1;
	s = prep(st, "INSERT INTO sessions VALUES (?, ?, ?)");
	if (!s)
		return -1;
	bind_text(s, 1, sha256_hex);
	bind_text(s, 2, csrf);
	sqlite3_bind_int64(s, 3, expires);
	return run(st, s, "session");
}

int store_session_find(struct store *st, const char *sha256_hex, char **csrf, int64_t *expires)
{
	sqlite3_stmt *s = prep(st, "SELECT csrf, expires FROM sessions WHERE hash = ?");
	int rc;

	if (!s)
		return -1;
	bind_text(s, 1, sha256_hex);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*csrf = col_dup(s, 0);
		*expires = sqlite3_column_int64(s, 1);
		rc = *csrf ? 0 : -1;
	} else {
		rc = rc == SQLITE_DONE ? 1 : fail(st, "session");
	}
	sqlite3_finalize(s);
	return rc;
}

int store_session_drop(struct store *st, const char *sha256_hex)
{
	sqlite3_stmt *s = prep(st, "DELETE FROM sessions WHERE hash = ?");

	if (!s)
		return -1;
	bind_text(s, 1, sha256_hex);
	return run(st, s, "session");
}
