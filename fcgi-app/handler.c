#include "fcgi-app/handler.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/log.h"
#include "common/cacheredis.h"
#include "common/paths.h"
#include "common/redisstore.h"
#include "common/sha256.h"
#include "fcgi-app/forward.h"
#include "policy/engine.h"
#include "policy/cidr.h"
#include "policy/path.h"

#define DEFAULT_HEALTH_PATH "/status-0123456789abcdef"

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t now_ms(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int app_init(struct app *app, char **envp)
{
	struct io env = { .params = envp };
	const char *v;

	memset(app, 0, sizeof(*app));
	v = io_param(&env, "HOSTGATE_CONFIG");
	app->config_path = v && *v ? v : HOSTGATE_CONFIG_DEFAULT;
	v = io_param(&env, "HOSTGATE_STATE_DIR");
	app->state_dir = v && *v ? v : HOSTGATE_STATE_DIR_DEFAULT;
	v = io_param(&env, "HOSTGATE_ACCESS_LOG");
	app->access_log = v && *v ? v : NULL;
	v = io_param(&env, "HOSTGATE_MOUNT");
	app->mount = v && *v ? v : NULL;
	app->access_fd = -1;
	if (getrandom(&app->rid_state, sizeof(app->rid_state), 0) != sizeof(app->rid_state))
		app->rid_state = (uint64_t)now_ms(CLOCK_REALTIME) ^ (uint64_t)getpid() << 32;
	app->rid_state |= 1;
	reload_init(&app->reload, app->config_path);
	app->metrics = metrics_open(app->state_dir, 0);
	app->counters = counter_open(app->state_dir, 0);
	app->cache = cache_open(app->state_dir, 0);
	return forward_init(app);
}

static void redis_drop(struct app *app);
static void redis_reap(struct app *app, int all);

void app_release(struct app *app)
{
	if (app->access_fd >= 0)
		close(app->access_fd);
	metrics_close(app->metrics);
	redis_drop(app);
	redis_reap(app, 1);
	counter_close(app->counters);
	cache_close(app->cache);
	forward_release(app);
	reload_release(&app->reload);
}

/* ---- gateway.counters ------------------------------------------------- */

/* A Redis store that requests of the process still wait in (other fibers)
 * when a reload changed gateway.counters: freed when the last one is out. */
struct redis_retired {
	struct redis_store *rs;
	struct cache_redis *cr;
	struct redis_retired *next;
};

/* Frees the retired stores no request is in (all: every one, at the end). */
static void redis_reap(struct app *app, int all)
{
	struct redis_retired **p = &app->redis_retired;

	while (*p) {
		struct redis_retired *x = *p;

		if (!all && redis_conn_users(redis_store_conn(x->rs)) > 0) {
			p = &x->next;
			continue;
		}
		*p = x->next;
		cache_redis_free(x->cr);
		redis_store_free(x->rs);
		free(x);
	}
}

/* Counters and cache back to this host's files; the Redis store freed, or
 * retired while requests are in it. */
static void redis_drop(struct app *app)
{
	counter_set_remote(app->counters, NULL);
	cache_set_remote(app->cache, NULL);
	if (app->redis && redis_conn_users(redis_store_conn(app->redis)) > 0) {
		struct redis_retired *x = malloc(sizeof(*x));

		if (x) {
			*x = (struct redis_retired){ app->redis, app->cache_redis,
						     app->redis_retired };
			app->redis_retired = x;
		} else {
			log_err("gateway.counters: out of memory: the old Redis store is kept");
		}
	} else {
		cache_redis_free(app->cache_redis);
		redis_store_free(app->redis);
	}
	app->cache_redis = NULL;
	app->redis = NULL;
}

/* Makes the counter store count in the Redis that gw names (or locally when
 * it names none). The store and its connections live as long as the process
 * serves documents with the same gateway.counters: a reload that changes
 * nothing there keeps the connections; one that does retires them (freed
 * when the last request waiting in them is out). */
static void counters_sync(struct app *app, const struct gateway *gw)
{
	const struct gw_counters *gc = &gw->counters;
	unsigned char fp[SHA256_LEN];
	struct redis_target t;
	struct counter_remote r;
	char *buf;
	int n;

	if (!app->counters)
		return;
	if (app->redis_retired)
		redis_reap(app, 0);
	if (gc->store != GW_COUNTERS_REDIS) {
		if (app->redis)
			redis_drop(app);
		return;
	}
	/* the same gateway as the last request: nothing can have changed (a
	 * reload loads the new one before it frees the old, so a new gateway
	 * never has the address of the one in use) */
	if (app->redis && gw == app->redis_gw && gw->generation == app->redis_gen)
		return;
	/* the password is in the fingerprint, so the buffer is wiped */
#define COUNTERS_FMT "%s|%d|%d|%s|%s|%lld|%d|%s"
#define COUNTERS_ARGS gc->host ? gc->host : "", gc->port, gc->db, \
	gc->unix_path ? gc->unix_path : "", gc->password ? gc->password : "", \
	(long long)gc->timeout_ms, (int)gc->on_failure, gc->prefix ? gc->prefix : ""
	n = snprintf(NULL, 0, COUNTERS_FMT, COUNTERS_ARGS);
	buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
	if (!buf) {
		log_err("gateway.counters: out of memory");
		return;
	}
	snprintf(buf, (size_t)n + 1, COUNTERS_FMT, COUNTERS_ARGS);
#undef COUNTERS_FMT
#undef COUNTERS_ARGS
	sha256(buf, (size_t)n, fp);
	explicit_bzero(buf, (size_t)n);
	free(buf);
	app->redis_gw = gw;
	app->redis_gen = gw->generation;
	if (app->redis && memcmp(fp, app->redis_conf, sizeof(fp)) == 0)
		return;
	redis_drop(app);
	t = (struct redis_target){ gc->host, gc->port, gc->unix_path, gc->db, gc->password,
				   (int)gc->timeout_ms };
	app->redis = redis_store_new(&t, gc->prefix);
	if (!app->redis) {
		log_err("gateway.counters: cannot set up the Redis store (out of memory)");
		return;
	}
	memcpy(app->redis_conf, fp, sizeof(fp));
	r = (struct counter_remote){ redis_store_op, app->redis,
		gc->on_failure == GW_ON_FAILURE_ALLOW ? COUNTER_FALLBACK_ALLOW :
		gc->on_failure == GW_ON_FAILURE_DENY ? COUNTER_FALLBACK_DENY :
		COUNTER_FALLBACK_LOCAL };
	counter_set_remote(app->counters, &r);
	/* the cache shares the connection (common/cacheredis.h) */
	app->cache_redis = cache_redis_new(redis_store_conn(app->redis), gc->prefix);
	if (app->cache_redis) {
		struct cache_remote cr;

		cache_redis_remote(app->cache_redis, &cr);
		cache_set_remote(app->cache, &cr);
	}
}

/* Whether Redis answers now (a PING within timeout_ms, or at once "no" while
 * the connection's breaker is open), for the health path and the metrics.
 * Returns 1 up, 0 down, -1 no Redis store. */
static int counters_up(struct app *app, struct redis_conn_state *st)
{
	struct redis_conn *rc;

	if (!app->redis)
		return -1;
	rc = redis_store_conn(app->redis);
	redis_conn_ping(rc);
	redis_conn_state(rc, st);
	return st->up;
}

int64_t app_tick(struct app *app)
{
	int64_t next = reload_tick(&app->reload);
	const struct gateway *gw = app->reload.gw;
	struct redis_conn_state st;

	/* no request in between: nothing holds a gateway this could free */
	if (gw)
		counters_sync(app, gw);
	/* a dead or recovered Redis noticed by the process itself, not by the
	 * first request to count there after a quiet spell */
	(void)counters_up(app, &st);
	return next;
}

static uint64_t counters_errors(struct app *app)
{
	struct counter_stats cs;

	if (!app->counters)
		return 0;
	counter_get_stats(app->counters, &cs);
	return cs.remote_fallbacks;
}

/* ---- request id -------------------------------------------------------- */

static int request_id_valid(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (!isalnum((unsigned char)s[n]) && s[n] != '.' && s[n] != '_' && s[n] != '-')
			return 0;
	return n >= 1 && n <= REQUEST_ID_MAX;
}

static void request_id_make(struct app *app, struct request *req)
{
	const char *client = io_param(req->io, "HTTP_X_REQUEST_ID");
	uint64_t x;

	if (client && request_id_valid(client)) {
		memcpy(req->request_id, client, strlen(client) + 1);
		return;
	}
	/* xorshift64*: unique per process stream, seeded from getrandom() */
	x = app->rid_state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	app->rid_state = x;
	snprintf(req->request_id, sizeof(req->request_id), "%016llx",
		 (unsigned long long)(x * 0x2545F4914F6CDD1DULL));
}

/* ---- where the path below the mount point starts ----------------------- */

/* Consumes the mount's segments from the raw path, comparing decoded. Returns
 * the offset of the rest, or -1 when the raw path does not start with it. */
static long strip_mount(const char *path, size_t len, const char *mount)
{
	size_t p = 0;
	const char *m = mount;
	char seg[1024];

	for (;;) {
		size_t mlen, slen;
		long dlen;

		while (*m == '/')
			m++;
		if (!*m)
			return (long)p;
		mlen = strcspn(m, "/");
		while (p < len && path[p] == '/')
			p++;
		slen = 0;
		while (p + slen < len && path[p + slen] != '/')
			slen++;
		if (slen > sizeof(seg))
			return -1;
		dlen = path_decode(path + p, slen, seg);
		if (dlen < 0 || (size_t)dlen != mlen || strncmp(seg, m, mlen) != 0)
			return -1;
		p += slen;
		m += mlen;
	}
}

/* Sets req->path/query from REQUEST_URI (the only variable that keeps the
 * client's percent-encoding) minus the mount point. Returns 0, -1 when the
 * target is unusable, or -2 when it is not below the mount point at all: a
 * server that matches the mount as a plain string prefix (lighttpd's
 * fastcgi.server "/api" takes "/apix" and "/api;x" too) must not get such a
 * request served as if it were under the mount. */
static int request_target(struct app *app, struct request *req, char *fallback, size_t cap)
{
	const char *uri = io_param(req->io, "REQUEST_URI");
	const char *mount = io_param(req->io, "HOSTGATE_MOUNT");
	const char *q, *path;
	size_t len;
	long off;

	if (!mount || !*mount)
		mount = app->mount;
	if (!mount)
		mount = io_param(req->io, "SCRIPT_NAME");
	if (!mount)
		mount = "";
	if (!uri || !*uri)
		goto from_path_info;
	/* absolute-form target ("http://host/p"): only its path counts */
	if (uri[0] != '/') {
		const char *s = strstr(uri, "://");

		if (!s)
			return -1;
		uri = strchr(s + 3, '/');
		if (!uri)
			uri = "/";
	}
	q = strchr(uri, '?');
	path = uri;
	len = q ? (size_t)(q - uri) : strlen(uri);
	if (q) {
		req->query = q + 1;
		req->query_len = strlen(q + 1);
	}
	off = strip_mount(path, len, mount);
	if (off < 0)
		return -2;
	req->path = path + off;
	req->path_len = len - (size_t)off;
	return 0;
from_path_info:
	/* a server that sends no REQUEST_URI: the decoded PATH_INFO, encoded
	 * again; encoded slashes are lost */
	path = io_param(req->io, "PATH_INFO");
	if (!path)
		path = "";
	off = path_encode(path, strlen(path), "/:@!$&'()*+,;=", fallback, cap);
	if (off < 0)
		return -1;
	req->path = fallback;
	req->path_len = (size_t)off;
	if (!req->query) {
		q = io_param(req->io, "QUERY_STRING");
		if (q && *q) {
			req->query = q;
			req->query_len = strlen(q);
		}
	}
	return 0;
}

/* ---- health ------------------------------------------------------------ */

/* The agent's last sync, or NULL: beside the configuration, where only the
 * agent writes (a copy in the state directory could be forged by the web
 * server's user), read like it (reload.h). */
static json_object *sync_status(struct app *app)
{
	json_object *o = NULL;
	char *buf = NULL;
	size_t len = 0;

	if (reload_read_beside(&app->reload, "sync-status.json", 64 * 1024, &buf, &len) < 0)
		return NULL;
	o = json_tokener_parse(buf);
	free(buf);
	if (o && !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		o = NULL;
	}
	return o;
}

static int sync_is_stale(json_object *st)
{
	json_object *v;
	const char *t;
	struct tm tm;
	int64_t interval = 10, age;

	if (!json_object_object_get_ex(st, "result", &v) ||
	    strcmp(json_object_get_string(v), "ok") != 0)
		return 1;
	if (json_object_object_get_ex(st, "interval_s", &v) && json_object_get_int64(v) > 0)
		interval = json_object_get_int64(v);
	if (!json_object_object_get_ex(st, "time", &v) || !(t = json_object_get_string(v)))
		return 1;
	memset(&tm, 0, sizeof(tm));
	if (sscanf(t, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
		   &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
		return 1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	age = (int64_t)time(NULL) - (int64_t)timegm(&tm);
	return age > 3 * interval;
}

/* The client may see the health path's details: its own address (never a
 * header it can write) is one of gateway.metrics.allow. */
static int health_details_allowed(const struct request *req)
{
	const struct gateway *gw = req->gw;

	return gw && req->client_ip && *req->client_ip &&
	       cidr_list_contains(gw->metrics_allow, gw->n_metrics_allow, req->client_ip);
}

/* Anyone may ask whether the gateway is up, so the public answer holds only
 * the status, the generation and the configuration's age: the agent's last
 * error names the management URL and the gateway id, which help an attacker
 * and nobody else on the public side. */
static void respond_health(struct app *app, struct request *req)
{
	json_object *o = json_object_new_object();
	json_object *st = sync_status(app);
	json_object *last = NULL;
	const char *status = "ok";
	int details = health_details_allowed(req);

	if (!req->gw) {
		status = "no-config";
	} else if (st && sync_is_stale(st)) {
		status = "stale";
	}
	if (st && details) {
		json_object *v;

		last = json_object_new_object();
		json_object_object_add(last, "time", json_object_object_get_ex(st, "time", &v) ? json_object_get(v) : NULL);
		json_object_object_add(last, "result", json_object_object_get_ex(st, "result", &v) ? json_object_get(v) : NULL);
		json_object_object_add(last, "error", json_object_object_get_ex(st, "error", &v) ? json_object_get(v) : NULL);
	}
	json_object_object_add(o, "status", json_object_new_string(status));
	json_object_object_add(o, "generation", req->gw ? json_object_new_int64(req->gw->generation) : NULL);
	json_object_object_add(o, "config_age_s", req->gw ? json_object_new_int64(reload_config_age(&app->reload)) : NULL);
	if (details) {
		const struct reload *r = &app->reload;
		json_object *c = json_object_new_object();

		json_object_object_add(o, "last_sync", last);
		/* what this process serves from, and what it could not load */
		json_object_object_add(c, "from", !req->gw ? NULL : json_object_new_string(
			r->from_image_interim ? "stale image" : r->from_image ? "image" : "document"));
		json_object_object_add(c, "error", r->error[0] ? json_object_new_string(r->error) : NULL);
		json_object_object_add(c, "image", r->image_note[0] ? json_object_new_string(r->image_note) : NULL);
		json_object_object_add(o, "config", c);
	}
	if (req->gw && req->gw->counters.store == GW_COUNTERS_REDIS) {
		struct redis_conn_state rs;
		json_object *c = json_object_new_object();
		int up = counters_up(app, &rs);

		json_object_object_add(c, "store", json_object_new_string("redis"));
		json_object_object_add(c, "state", json_object_new_string(up == 1 ? "ok" : "degraded"));
		json_object_object_add(c, "error", up == 1 ? NULL : json_object_new_string(
			up < 0 ? "not set up" : rs.error));
		json_object_object_add(c, "errors", json_object_new_int64(
			(int64_t)counters_errors(app)));
		if (app->cache) {	/* the cache's calls Redis failed (common/cache.h) */
			struct cache_stats cst;

			cache_get_stats(app->cache, &cst);
			json_object_object_add(c, "cache_fallbacks", json_object_new_int64(
				(int64_t)cst.remote_fallbacks));
		}
		json_object_object_add(o, "counters", c);
	}
	respond_json(req, req->gw ? 200 : 503, o);
	json_object_put(o);
	json_object_put(st);
}

/* ---- the request ------------------------------------------------------- */

static int parse_length(const char *s, int64_t *out)
{
	int64_t v = 0;

	if (!s || !*s) {
		*out = 0;
		return 0;
	}
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (INT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (*s - '0');
	}
	*out = v;
	return 0;
}

static void access_log(struct app *app, struct request *req, int64_t started_ms);

/* ${request.ip}: the peer, or, when the peer is a trusted proxy, the
 * right-most X-Forwarded-For entry that is not one. */
static void request_ip(struct request *req)
{
	const struct gateway *gw = req->gw;
	const char *xff = io_param(req->io, "HTTP_X_FORWARDED_FOR");
	const char *ip = req->client_ip ? req->client_ip : "";
	char cand[64];
	size_t n;

	req->peer_trusted = gw->n_trusted_proxies && *ip &&
			    cidr_list_contains(gw->trusted_proxies, gw->n_trusted_proxies, ip);
	if (req->peer_trusted && xff) {
		/* walk the list from the right, one entry at a time */
		size_t end = strlen(xff);

		while (end > 0) {
			size_t start = end, len;

			while (start > 0 && xff[start - 1] != ',')
				start--;
			len = end - start;
			while (len && (xff[start] == ' ' || xff[start] == '\t'))
				start++, len--;
			while (len && (xff[start + len - 1] == ' ' || xff[start + len - 1] == '\t'))
				len--;
			if (!len || len >= sizeof(cand))
				break;
			memcpy(cand, xff + start, len);
			cand[len] = '\0';
			ip = cand;
			if (!cidr_list_contains(gw->trusted_proxies, gw->n_trusted_proxies, cand))
				break;
			end = start > 0 ? start - 1 : 0;
			while (end > 0 && xff[end] != ',')
				end--;
		}
	}
	n = strlen(ip);
	if (n >= sizeof(req->request_ip))
		n = sizeof(req->request_ip) - 1;
	memmove(req->request_ip, ip, n);
	req->request_ip[n] = '\0';
}

/* Runs the policies around the backend call. */
static void serve_call(struct app *app, struct request *req)
{
	struct pol_call c;

	request_ip(req);
	engine_call_init(&c, req->gw, &req->route, req->request_ip, req->request_id,
			 (int64_t)time(NULL), app->counters);
	c.cache = app->cache;
	forward_ops(app, req, &c);
	if (forward_prepare(req, &c) != 0)
		respond_error(req, 400, "malformed request header");
	else if (engine_inbound(&c) == POL_RESPOND)
		respond_call(req, &c);
	else
		forward(app, req, &c);
	req->subscription = c.subscription ? c.subscription->id : NULL;
	if (!req->error && c.error)
		req->error = c.error;
	c.bytes_out = (uint64_t)req->bytes_out;
	engine_finish(&c);
	engine_call_release(&c);
	forward_done(req);
}

static void respond_metrics(struct app *app, struct request *req)
{
	const struct gateway *gw = req->gw;
	struct metrics_gauges g = { gw->generation, reload_config_age(&app->reload), 0, 0, 0 };
	struct redis_conn_state rs;
	char head[256];
	char *text = NULL;
	size_t len = 0;
	int n;

	if (!req->client_ip ||
	    !cidr_list_contains(gw->metrics_allow, gw->n_metrics_allow, req->client_ip)) {
		respond_error(req, 403, "forbidden");
		return;
	}
	if (gw->counters.store == GW_COUNTERS_REDIS) {
		g.counter_store = 1;
		g.counter_store_up = counters_up(app, &rs) == 1;
		g.counter_store_errors = counters_errors(app);
	}
	if (!app->metrics || metrics_prometheus(app->metrics, &g, &text, &len) != 0) {
		respond_error(req, 503, "metrics are not available");
		return;
	}
	n = snprintf(head, sizeof(head), "Status: 200 OK\r\n"
		     "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
		     "Content-Length: %zu\r\nCache-Control: no-store\r\n"
		     "X-Request-Id: %s\r\n\r\n", len, req->request_id);
	req->status = 200;
	req->headers_sent = 1;
	if (respond_write(req, head, (size_t)n) == 0 && strcmp(req->method, "HEAD") != 0)
		respond_write(req, text, len);
	free(text);
}

static void record_metrics(struct app *app, struct request *req, int64_t started_us)
{
	const struct route_match *m = &req->route;
	struct metrics_sample s = {
		.api = m->api ? m->api->id : NULL,
		.operation = m->op ? m->op->id : NULL,
		.subscription = req->subscription,
		.status = req->status,
		.error = req->io->aborted || req->status == 502 || req->status == 503 ||
			 req->status == 504,
		.bytes_in = (uint64_t)req->bytes_in,
		.bytes_out = (uint64_t)req->bytes_out,
		.duration_us = (uint64_t)(now_us() - started_us),
		.backend_us = req->backend_ms >= 0 && m->api ? req->backend_ms * 1000 : -1,
	};

	metrics_record(app->metrics, &s);
}

/* Returns 1 when the comma-separated list s holds token (case-insensitive). */
static int has_token(const char *s, const char *token)
{
	size_t tlen = strlen(token);

	while (*s) {
		size_t n;

		while (*s == ',' || *s == ' ' || *s == '\t')
			s++;
		n = strcspn(s, ", \t;");
		if (n == tlen && strncasecmp(s, token, n) == 0)
			return 1;
		s += n;
		s += strcspn(s, ",");
	}
	return 0;
}

void handle_request(struct app *app, struct io *io)
{
	struct request req;
	char fallback[8192];
	const char *health;
	const char *te;
	enum route_status rs;
	int64_t started_us = now_us();
	int64_t started = started_us / 1000;
	const struct gateway *held[3] = { NULL, NULL, NULL };

	memset(&req, 0, sizeof(req));
	req.io = io;
	req.backend_ms = -1;
	req.method = io_param(io, "REQUEST_METHOD");
	if (!req.method || !*req.method)
		req.method = "GET";
	req.client_ip = io_param(io, "REMOTE_ADDR");
	req.https = io_param(io, "HTTPS");
	request_id_make(app, &req);
	/* held to the end: other requests of the process run while this one
	 * waits, and a reload among them must not free what it uses */
	req.gw = held[0] = gw_hold(reload_current(&app->reload, started));
	if (!io->started_ms)
		io_start(io);	/* a front that did not: the defaults, from now */
	if (req.gw) {
		const struct io_limits l = {
			req.gw->client_request_timeout_ms, req.gw->client_idle_timeout_ms,
			req.gw->client_body_timeout_ms, req.gw->client_body_min_rate,
		};

		io_set_limits(io, &l);
		counters_sync(app, req.gw);
	}
	req.deadline_ms = io_request_deadline(io);

	switch (request_target(app, &req, fallback, sizeof(fallback))) {
	case 0:
		break;
	case -2:
		respond_error(&req, 404, "no API matches the request");
		goto out;
	default:
		respond_error(&req, 400, "malformed request target");
		goto out;
	}
	health = req.gw ? req.gw->health_path : DEFAULT_HEALTH_PATH;
	if (req.path_len == strlen(health) && memcmp(req.path, health, req.path_len) == 0) {
		respond_health(app, &req);
		goto out;
	}
	if (!req.gw) {
		respond_error(&req, 503, "no configuration is loaded");
		goto out;
	}
	if (req.gw->metrics_path && req.path_len == strlen(req.gw->metrics_path) &&
	    memcmp(req.path, req.gw->metrics_path, req.path_len) == 0) {
		respond_metrics(app, &req);
		goto out;
	}
	rs = route_match(req.gw, req.path, req.path_len, io_param(io, "HTTP_HOST"), req.method,
			 &req.route);
	if (rs == ROUTE_UNAVAILABLE) {
		/* the image failed a checksum: from the document, this once */
		req.gw = held[1] = gw_hold(reload_recover(&app->reload, now_ms(CLOCK_MONOTONIC)));
		rs = route_match(req.gw, req.path, req.path_len, io_param(io, "HTTP_HOST"),
				 req.method, &req.route);
	}
	switch (rs) {
	case ROUTE_OK:
		/* an image's API lives in a gateway of its own, which the
		 * image's cache may drop while this request waits */
		req.gw = held[2] = gw_hold(req.route.gw);
		break;
	case ROUTE_UNAVAILABLE:
		respond_error(&req, 503, "the configuration cannot be read");
		goto out;
	case ROUTE_BAD_PATH:
		respond_error(&req, 400, "malformed request path");
		goto out;
	case ROUTE_NO_API:
		respond_error(&req, 404, "no API matches the request");
		goto out;
	case ROUTE_NO_OPERATION:
		respond_error(&req, 404, "no operation of the API matches the request");
		goto out;
	}
	if (parse_length(io_param(io, "CONTENT_LENGTH"), &req.content_length) != 0) {
		respond_error(&req, 400, "malformed Content-Length");
		goto out;
	}
	/* only a plain CGI front passes a chunked body without a length */
	te = io_param(io, "HTTP_TRANSFER_ENCODING");
	if (req.content_length == 0 && te && has_token(te, "chunked"))
		req.content_length = -1;
	if (req.content_length > req.gw->max_request_body_bytes) {
		respond_error(&req, 413, "request body too large");
		goto out;
	}
	serve_call(app, &req);
out:
	if (!req.headers_sent && io->timed_out) {
		/* a read ran out of time before anything went out (the forwarder
		 * gives up on the body as on a client gone): the client can still be
		 * told why, as long as its connection takes the answer in time */
		io->aborted = 0;
		req.error = NULL;
		respond_error(&req, 408, "the client sent the request too slowly");
	} else if (!req.headers_sent) {
		respond_error(&req, 500, "internal error");
	}
	if (!io->aborted && !io->write_failed && io->end && io->end(io) != 0 && !req.error)
		req.error = "client went away";
	if (app->metrics)
		record_metrics(app, &req, started_us);
	if (app->access_log)
		access_log(app, &req, started);
	for (int i = 2; i >= 0; i--)
		gw_free((struct gateway *)(uintptr_t)held[i]);
}

/* One JSON object a line (config-v1.md, "The health path and metrics"). The
 * query string is left out: it may carry a subscription key. */
static void access_log(struct app *app, struct request *req, int64_t started_ms)
{
	json_object *o = json_object_new_object();
	const struct route_match *m = &req->route;
	char path[8192], when[64];
	struct timespec ts;
	struct tm tm;
	const char *line;
	size_t len, plen = 0;

	if (app->access_fd < 0) {
		app->access_fd = open(app->access_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (app->access_fd < 0) {
			log_err("cannot open '%s': %s", app->access_log, strerror(errno));
			app->access_log = NULL;
			json_object_put(o);
			return;
		}
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
	/* the raw path may hold any byte a server lets through: the line must
	 * stay one line of valid UTF-8 JSON, so controls and 8-bit bytes are
	 * written percent-encoded (a long path is cut) */
	for (size_t i = 0; req->path && i < req->path_len && plen + 4 <= sizeof(path); i++) {
		unsigned char c = (unsigned char)req->path[i];

		if (c < 0x20 || c >= 0x7f) {
			path[plen++] = '%';
			path[plen++] = "0123456789ABCDEF"[c >> 4];
			path[plen++] = "0123456789ABCDEF"[c & 15];
		} else {
			path[plen++] = (char)c;
		}
	}
	path[plen] = '\0';
	json_object_object_add(o, "time", json_object_new_string(when));
	json_object_object_add(o, "request_id", json_object_new_string(req->request_id));
	json_object_object_add(o, "client_ip", req->client_ip ? json_object_new_string(req->client_ip) : NULL);
	json_object_object_add(o, "method", json_object_new_string(req->method));
	json_object_object_add(o, "path", json_object_new_string(path));
	json_object_object_add(o, "api", m->api ? json_object_new_string(m->api->id) : NULL);
	json_object_object_add(o, "operation", m->op ? json_object_new_string(m->op->id) : NULL);
	json_object_object_add(o, "subscription", req->subscription ? json_object_new_string(req->subscription) : NULL);
	json_object_object_add(o, "status", json_object_new_int(req->status));
	json_object_object_add(o, "bytes_in", json_object_new_int64(req->bytes_in));
	json_object_object_add(o, "bytes_out", json_object_new_int64(req->bytes_out));
	json_object_object_add(o, "duration_ms", json_object_new_int64(now_ms(CLOCK_MONOTONIC) - started_ms));
	json_object_object_add(o, "backend_ms", req->backend_ms >= 0 ? json_object_new_int64(req->backend_ms) : NULL);
	json_object_object_add(o, "error", req->error ? json_object_new_string(req->error) : NULL);
	line = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
	{
		char buf[16384];

		if (len + 1 <= sizeof(buf)) {
			memcpy(buf, line, len);
			buf[len++] = '\n';
			/* one write: O_APPEND lines of concurrent processes never mix */
			if (write(app->access_fd, buf, len) < 0)
				log_warn("cannot write '%s': %s", app->access_log, strerror(errno));
		}
	}
	json_object_put(o);
}
