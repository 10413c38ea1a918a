/*
 * hostgate-manage — the management plane (shared/spec/admin-api.md). One
 * binary, the same three ways to run as hostgate-fcgi:
 *   under a FastCGI process manager (lighttpd bin-path, Apache mod_fcgid):
 *     fd 0 is the listening socket;
 *   --listen ADDR [--workers N]: a FastCGI server of its own (supervisor and
 *     N workers sharing the socket, for lighttpd socket / mod_proxy_fcgi);
 *   plain CGI: one request from the environment, then exit.
 * And the commands, on the database HOSTGATE_MANAGE_DB names:
 *   admin-token NAME   prints a new admin token (only its hash is kept)
 *   import FILE|-      loads a configuration document's objects
 *   publish DIR        writes every gateway's document as static files
 *
 * Each worker opens the database after the fork (an SQLite connection must
 * not cross one). Requests are small and whole: the body is read up to
 * MANAGE_MAX_BODY, the answer built in memory, then written.
 *
 * The FastCGI and --listen code is a reduced copy of fcgi-app/main.c's (no
 * streaming, no per-read deadlines: the management plane answers operators
 * and agents, not the public); sharing it through common/ is left for when
 * fcgi-app/ is not being changed by others.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "common/atomicfile.h"
#include "common/fileread.h"
#include "common/log.h"
#include "common/prefork.h"
#include "manage/app.h"
#include "manage/crypto.h"
#include "manage/face.h"
#include "manage/model.h"
#include "policy/gateway.h"

extern char **environ;

#define MAX_WORKERS PREFORK_MAX

static volatile sig_atomic_t stopping;

static void usage(void)
{
	fprintf(stderr,
		"usage: hostgate-manage                      (under a FastCGI process manager, or as CGI)\n"
		"       hostgate-manage --listen ADDR [--workers N]\n"
		"       hostgate-manage admin-token NAME\n"
		"       hostgate-manage import FILE|-\n"
		"       hostgate-manage publish DIR\n"
		"       hostgate-manage --version\n"
		"the database: HOSTGATE_MANAGE_DB (default " MANAGE_DEFAULT_DB ")\n");
	exit(2);
}

/* ---- one request, whatever the front ---- */

struct front {
	const char *(*param)(void *ctx, const char *name);
	void *ctx;
	long (*read)(void *ctx, char *buf, size_t n);
	int (*write)(void *ctx, const char *buf, size_t n);
};

/* The path below the mount: HOSTGATE_MANAGE_MOUNT when set (environment or
 * parameter), else SCRIPT_NAME when the server split the path (PATH_INFO
 * set), else the whole path. Into out. */
static void request_path(struct front *f, char *out, size_t n, const char **query,
			 char *mount_out, size_t mn)
{
	const char *uri = f->param(f->ctx, "REQUEST_URI"), *mount = f->param(f->ctx, "HOSTGATE_MANAGE_MOUNT");
	const char *pi = f->param(f->ctx, "PATH_INFO");
	size_t ml, ul;

	if (!mount)
		mount = getenv("HOSTGATE_MANAGE_MOUNT");
	if (!mount && pi && *pi)
		mount = f->param(f->ctx, "SCRIPT_NAME");
	if (!uri)
		uri = "/";
	*query = strchr(uri, '?');
	ul = *query ? (size_t)(*query - uri) : strlen(uri);
	*query = *query ? *query + 1 : "";
	ml = mount ? strlen(mount) : 0;
	while (ml && mount[ml - 1] == '/')
		ml--;
	mount_out[0] = '\0';
	if (ml && ul >= ml && !strncmp(uri, mount, ml) && (ul == ml || uri[ml] == '/')) {
		snprintf(mount_out, mn, "%.*s", (int)ml, uri);
		uri += ml;
		ul -= ml;
	}
	snprintf(out, n, "%.*s", (int)ul, uri);
}

static void serve_one(struct mapp *app, struct front *f)
{
	struct mreq req = { 0 };
	struct mresp resp = MRESP_INIT;
	const char *cl = f->param(f->ctx, "CONTENT_LENGTH"), *https = f->param(f->ctx, "HTTPS");
	char path[2048], mount[512], head[1024], *body = NULL;
	size_t want = 0, got = 0;
	int hn;

	if (cl && *cl) {
		char *end;
		unsigned long long v = strtoull(cl, &end, 10);

		want = *end ? 0 : v > MANAGE_MAX_BODY ? MANAGE_MAX_BODY + 1 : (size_t)v;
	}
	body = malloc(want + 1);
	if (!body) {
		want = 0;
		body = malloc(1);
		if (!body)
			return;
	}
	while (got < want) {
		long r = f->read(f->ctx, body + got, want - got);

		if (r <= 0)
			break;
		got += (size_t)r;
	}
	body[got] = '\0';
	if (want > MANAGE_MAX_BODY) {
		char sink[65536];

		req.body_too_big = 1;
		while (f->read(f->ctx, sink, sizeof(sink)) > 0)
			;
	}
	request_path(f, path, sizeof(path), &req.query, mount, sizeof(mount));
	req.mount = mount;
	req.method = f->param(f->ctx, "REQUEST_METHOD");
	if (!req.method)
		req.method = "GET";
	req.path = path;
	req.authorization = f->param(f->ctx, "HTTP_AUTHORIZATION");
	req.if_match = f->param(f->ctx, "HTTP_IF_MATCH");
	req.if_none_match = f->param(f->ctx, "HTTP_IF_NONE_MATCH");
	req.cookie = f->param(f->ctx, "HTTP_COOKIE");
	req.content_type = f->param(f->ctx, "CONTENT_TYPE");
	req.origin = f->param(f->ctx, "HTTP_ORIGIN");
	req.host = f->param(f->ctx, "HTTP_HOST");
	req.https = https && (!strcasecmp(https, "on") || !strcmp(https, "1"));
	req.body = body;
	req.body_len = got;
	app_handle(app, &req, &resp);
	if (resp.body.failed || resp.head.failed) {
		mresp_release(&resp);
		app_error(&resp, 500, "the answer is too large");
	}
	hn = snprintf(head, sizeof(head), "Status: %d %s\r\nContent-Type: %s\r\n"
		      "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n",
		      resp.status, app_reason(resp.status),
		      resp.content_type ? resp.content_type : "application/json");
	if (resp.status != 204 && resp.status != 304)
		hn += snprintf(head + hn, sizeof(head) - (size_t)hn, "Content-Length: %zu\r\n",
			       resp.body.len);
	if (f->write(f->ctx, head, (size_t)hn) == 0 &&
	    (!resp.head.len || f->write(f->ctx, resp.head.s, resp.head.len) == 0) &&
	    f->write(f->ctx, "\r\n", 2) == 0 && resp.body.len && resp.status != 204 &&
	    resp.status != 304 && strcmp(req.method, "HEAD") != 0)
		f->write(f->ctx, resp.body.s, resp.body.len);
	mresp_release(&resp);
	free(body);
}

/* ---- FastCGI ---- */

static const char *fcgx_param(void *ctx, const char *name)
{
	FCGX_Request *r = ctx;

	return FCGX_GetParam(name, r->envp);
}

static long fcgx_read(void *ctx, char *buf, size_t n)
{
	FCGX_Request *r = ctx;

	return FCGX_GetStr(buf, n > 65536 ? 65536 : (int)n, r->in);
}

static int fcgx_write(void *ctx, const char *buf, size_t n)
{
	FCGX_Request *r = ctx;

	while (n) {
		int k = n > 65536 ? 65536 : (int)n;

		if (FCGX_PutStr(buf, k, r->out) != k)
			return -1;
		buf += k;
		n -= (size_t)k;
	}
	return 0;
}

static void on_stop(int sig)
{
	(void)sig;
	stopping = 1;
	FCGX_ShutdownPending();
}

static void open_app(struct mapp *app)
{
	char err[512];

	if (app_open(app, err, sizeof(err)) != 0)
		fatal("%s", err);
}

/* CGI: a database that cannot be opened still gets an answer the client
 * can read (the reason goes to the server's error log). */
static int open_app_cgi(struct mapp *app)
{
	static const char answer[] =
		"Status: 503 Service Unavailable\r\nContent-Type: application/json\r\n"
		"Cache-Control: no-store\r\n\r\n"
		"{\"statusCode\":503,\"message\":\"the management database is not available\"}\n";
	char err[512];

	if (app_open(app, err, sizeof(err)) == 0)
		return 0;
	log_err("%s", err);
	if (write(STDOUT_FILENO, answer, sizeof(answer) - 1) < 0)
		return -1;
	return -1;
}

static void serve_fastcgi(int sock)
{
	struct mapp app;
	FCGX_Request req;
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	open_app(&app);
	if (FCGX_Init() != 0 || FCGX_InitRequest(&req, sock, FCGI_FAIL_ACCEPT_ON_INTR) != 0)
		fatal("cannot initialise libfcgi");
	while (!stopping && FCGX_Accept_r(&req) >= 0) {
		struct front f = { fcgx_param, &req, fcgx_read, fcgx_write };

		serve_one(&app, &f);
		FCGX_Finish_r(&req);
	}
	app_close(&app);
}

/* ---- CGI ---- */

static const char *cgi_param(void *ctx, const char *name)
{
	(void)ctx;
	return getenv(name);
}

static long cgi_read(void *ctx, char *buf, size_t n)
{
	(void)ctx;
	for (;;) {
		ssize_t r = read(STDIN_FILENO, buf, n);

		if (r < 0 && errno == EINTR)
			continue;
		return (long)r;
	}
}

static int cgi_write(void *ctx, const char *buf, size_t n)
{
	(void)ctx;
	while (n) {
		ssize_t w = write(STDOUT_FILENO, buf, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		buf += w;
		n -= (size_t)w;
	}
	return 0;
}

static int serve_cgi(void)
{
	struct mapp app;
	struct front f = { cgi_param, NULL, cgi_read, cgi_write };

	if (open_app_cgi(&app) != 0)
		return 1;
	serve_one(&app, &f);
	app_close(&app);
	return 0;
}

/* ---- --listen ---- */

static int serve_listen(const char *addr, int workers)
{
	struct mapp app;
	int sock;

	/* migrate once, before the workers race to */
	open_app(&app);
	app_close(&app);
	if (strncmp(addr, "unix:", 5) == 0) {
		struct stat st;

		if (lstat(addr + 5, &st) == 0 && S_ISSOCK(st.st_mode))
			unlink(addr + 5);
		sock = FCGX_OpenSocket(addr + 5, 128);
	} else {
		if (!strchr(addr, ':'))
			fatal("bad --listen address '%s': use HOST:PORT or unix:/path", addr);
		sock = FCGX_OpenSocket(addr, 128);
	}
	if (sock < 0)
		fatal("cannot listen on '%s': %s", addr, strerror(errno));
	return prefork_run(sock, workers, serve_fastcgi, addr, 0);
}

/* ---- commands ---- */

static int cmd_admin_token(const char *name)
{
	char token[CRYPTO_TOKEN_LEN], hash[CRYPTO_HEX_LEN];
	struct mapp app;

	if (!util_is_id(name)) {
		fprintf(stderr, "hostgate-manage: the token's name must be an id "
			"([A-Za-z0-9._-]{1,80})\n");
		return 2;
	}
	open_app(&app);
	if (crypto_token(token) != 0) {
		app_close(&app);
		fatal("cannot make a token");
	}
	crypto_sha256_hex(token, strlen(token), hash);
	if (store_token_add(app.st, "admin", name, hash, 0) != 0) {
		app_close(&app);
		fatal("cannot store the token");
	}
	app_close(&app);
	printf("%s\n", token);
	explicit_bzero(token, sizeof(token));
	return 0;
}

/* Stores one imported object with its references. 0 or -1. */
static int import_one(struct store *st, const char *kind, const char *id, json_object *obj,
		      int64_t gen)
{
	char from[128], **refs = NULL;
	size_t n = 0;
	int rc;

	snprintf(from, sizeof(from), "%s/%s", kind, id);
	if (model_refs(kind, obj, &refs, &n) != 0)
		return -1;
	rc = store_put(st, kind, id, json_object_to_json_string_ext(
			       obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
		       gen) == 0 && store_set_refs(st, from, (const char *const *)refs, n) == 0 ?
		0 : -1;
	model_refs_free(refs, n);
	return rc;
}

static int import_array(struct store *st, json_object *doc, const char *member, const char *kind,
			int64_t gen)
{
	json_object *arr;

	if (!json_object_object_get_ex(doc, member, &arr))
		return 0;
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *o = json_object_array_get_idx(arr, i), *id;

		json_object_object_get_ex(o, "id", &id);
		if (import_one(st, kind, json_object_get_string(id), o, gen) != 0)
			return -1;
	}
	return 0;
}

static int import_map(struct store *st, json_object *doc, const char *member, const char *kind,
		      int64_t gen)
{
	json_object *map;

	if (!json_object_object_get_ex(doc, member, &map))
		return 0;
	json_object_object_foreach(map, key, val)
		if (import_one(st, kind, key, val, gen) != 0)
			return -1;
	return 0;
}

static int cmd_import(const char *file)
{
	struct cfg_errors errs = CFG_ERRORS_INIT;
	struct sbuf in = SBUF_INIT(GW_MAX_DOCUMENT_BYTES);
	json_object *doc = NULL, *errors = NULL, *pol;
	struct gateway *gw;
	struct mapp app;
	char err[512];
	size_t len = 0;
	char *buf = NULL;
	int64_t gen;
	int rc = 1, r;

	if (!strcmp(file, "-")) {
		char chunk[65536];
		ssize_t n;

		while ((n = read(STDIN_FILENO, chunk, sizeof(chunk))) > 0)
			sbuf_add(&in, chunk, (size_t)n);
		if (in.failed || n < 0) {
			fprintf(stderr, "-: cannot read the document (at most %u bytes)\n",
				GW_MAX_DOCUMENT_BYTES);
			sbuf_release(&in);
			return 1;
		}
		buf = in.s ? in.s : strdup("");
		len = in.len;
	} else if (file_read(file, GW_MAX_DOCUMENT_BYTES, &buf, &len) != 0) {
		fprintf(stderr, "%s: cannot read: %s\n", file, strerror(errno));
		return 1;
	}
	gw = gw_load_buffer(buf, len, &errs);
	if (!gw) {
		for (size_t i = 0; i < errs.n; i++)
			fprintf(stderr, "%s: %s\n", file, errs.msg[i]);
		goto out;
	}
	gw_free(gw);
	doc = json_tokener_parse(buf);
	if (!doc)
		goto out;
	open_app(&app);
	if (store_begin(app.st) != 0 || store_bump_generation(app.st, &gen) != 0) {
		fprintf(stderr, "%s: the database is busy\n", file);
		goto close;
	}
	if (import_map(app.st, doc, "named_values", "named_value", gen) != 0 ||
	    import_map(app.st, doc, "backends", "backend", gen) != 0 ||
	    import_array(app.st, doc, "apis", "api", gen) != 0 ||
	    import_array(app.st, doc, "products", "product", gen) != 0 ||
	    import_array(app.st, doc, "subscriptions", "subscription", gen) != 0 ||
	    (json_object_object_get_ex(doc, "policies", &pol) &&
	     import_one(app.st, "policies", "global", pol, gen) != 0)) {
		fprintf(stderr, "%s: the database cannot be written\n", file);
		goto close;
	}
	/* the file is valid alone; with what the database already holds too? */
	r = model_validate(app.st, "", "", NULL, &errors, err, sizeof(err));
	if (r != 0) {
		if (r < 0)
			fprintf(stderr, "%s: %s\n", file, err);
		for (size_t i = 0; errors && i < json_object_array_length(errors); i++) {
			json_object *e = json_object_array_get_idx(errors, i), *p, *m;

			json_object_object_get_ex(e, "path", &p);
			json_object_object_get_ex(e, "message", &m);
			fprintf(stderr, "%s: with the database: %s: %s\n", file,
				json_object_get_string(p), json_object_get_string(m));
		}
		goto close;
	}
	if (store_commit(app.st) != 0) {
		fprintf(stderr, "%s: the database cannot be written\n", file);
		goto close;
	}
	printf("%s: imported as generation %lld\n", file, (long long)gen);
	rc = 0;
close:
	store_rollback(app.st);
	app_close(&app);
out:
	json_object_put(errors);
	json_object_put(doc);
	cfg_errors_release(&errs);
	free(buf);
	return rc;
}

struct publish {
	struct mapp *app;
	const char *dir;
	gid_t gid;		/* DIR/gateways' group, for each gateway's folder */
	int failed;
	char **ids;
	size_t n;
};

static int publish_one(void *ctx, const char *id, const char *json, int64_t changed)
{
	struct publish *p = ctx;
	char path[4096], *body = NULL, *etag = NULL, *sig = NULL, **ids;
	const char *step = NULL;
	size_t len;
	int64_t gen;

	(void)json;
	(void)changed;
	ids = realloc(p->ids, (p->n + 1) * sizeof(*ids));
	if (!ids || !(ids[p->n] = strdup(id))) {
		p->ids = ids ? ids : p->ids;
		p->failed = 1;
		return 0;
	}
	p->ids = ids;
	p->n++;
	if (face_document(p->app, id, &body, &len, &etag, &sig, &gen) != 0) {
		fprintf(stderr, "hostgate-manage: cannot make the document of gateway '%s'\n", id);
		p->failed = 1;
		return 0;
	}
	/* the documents hold secret named values in clear: 0640, with the
	 * group of DIR/gateways (make it the web server's) */
	snprintf(path, sizeof(path), "%s/gateways/%s", p->dir, id);
	if ((mkdir(path, 0750) != 0 && errno != EEXIST) ||
	    (p->gid != (gid_t)-1 && chown(path, (uid_t)-1, p->gid) != 0) ||
	    snprintf(path, sizeof(path), "%s/gateways/%s/configuration", p->dir, id) < 0 ||
	    atomicfile_replace(path, body, len, 0640, ATOMICFILE_DIR_GROUP, &step) != 0 ||
	    (sig && (snprintf(path, sizeof(path), "%s/gateways/%s/configuration.sig", p->dir, id) < 0 ||
		     atomicfile_replace(path, sig, strlen(sig), 0640, ATOMICFILE_DIR_GROUP,
					&step) != 0))) {
		fprintf(stderr, "hostgate-manage: cannot write '%s': %s\n", path, strerror(errno));
		p->failed = 1;
	}
	free(body);
	free(etag);
	free(sig);
	return 0;
}

static int cmd_publish(const char *dir)
{
	struct mapp app;
	struct publish p = { &app, dir, (gid_t)-1, 0, NULL, 0 };
	struct stat st;
	char path[4096];
	struct dirent *de;
	DIR *d;

	open_app(&app);
	if (!app.key)
		fprintf(stderr, "hostgate-manage: warning: no HOSTGATE_MANAGE_SIGNING_KEY: the "
			"documents are not signed\n");
	snprintf(path, sizeof(path), "%s/gateways", dir);
	if ((mkdir(dir, 0755) != 0 && errno != EEXIST) || (mkdir(path, 0755) != 0 && errno != EEXIST)) {
		fprintf(stderr, "hostgate-manage: cannot create '%s': %s\n", path, strerror(errno));
		app_close(&app);
		return 1;
	}
	if (stat(path, &st) == 0)
		p.gid = st.st_gid;
	if (store_each(app.st, "gateway", publish_one, &p) != 0)
		p.failed = 1;
	/* the folders of gateways that no longer exist */
	d = opendir(path);
	while (d && (de = readdir(d)) != NULL) {
		int keep = de->d_name[0] == '.';
		char f[4096 + 512];

		for (size_t i = 0; i < p.n && !keep; i++)
			keep = !strcmp(p.ids[i], de->d_name);
		if (keep)
			continue;
		snprintf(f, sizeof(f), "%s/%s/configuration", path, de->d_name);
		unlink(f);
		snprintf(f, sizeof(f), "%s/%s/configuration.sig", path, de->d_name);
		unlink(f);
		snprintf(f, sizeof(f), "%s/%s", path, de->d_name);
		if (rmdir(f) != 0)
			fprintf(stderr, "hostgate-manage: cannot remove '%s': %s\n", f,
				strerror(errno));
	}
	if (d)
		closedir(d);
	for (size_t i = 0; i < p.n; i++)
		free(p.ids[i]);
	free(p.ids);
	app_close(&app);
	return p.failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	const char *listen_addr = NULL;
	int workers = 4;

	log_init("hostgate-manage", LOG_TO_STDERR);
	signal(SIGPIPE, SIG_IGN);
	if (argc == 3 && !strcmp(argv[1], "admin-token"))
		return cmd_admin_token(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "import"))
		return cmd_import(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "publish"))
		return cmd_publish(argv[2]);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--version")) {
			printf("hostgate-manage %s\n", HOSTGATE_VERSION);
			return 0;
		} else if (!strcmp(a, "--listen") && i + 1 < argc) {
			listen_addr = argv[++i];
		} else if (!strcmp(a, "--workers") && i + 1 < argc) {
			char *end;
			long n = strtol(argv[++i], &end, 10);

			if (*end || n < 1 || n > MAX_WORKERS)
				fatal("bad --workers '%s': 1 to %d", argv[i], MAX_WORKERS);
			workers = (int)n;
		} else {
			usage();
		}
	}
	if (listen_addr)
		return serve_listen(listen_addr, workers);
	if (FCGX_IsCGI())
		return serve_cgi();
	serve_fastcgi(0);
	return 0;
}
