/*
 * ui — the dashboard (ui.h). Pages are made whole on the server: tables of
 * gateways and APIs, and SVG charts of the traffic, refreshed by the browser
 * every REFRESH_S seconds (a meta refresh: no script at all, so the
 * Content-Security-Policy forbids every script). Paths are relative to the
 * mount ("login", "./"), so the dashboard works under any prefix.
 */
#include "manage/ui.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manage/app.h"
#include "manage/crypto.h"

#define COOKIE "hg_session"
#define REFRESH_S 10
#define MAX_CHARTS 200		/* per kind: the busiest first would need sorting */
#define MAX_POINTS 60
#define CHART_W 600
#define CHART_H 90

static const char css[] =
	"body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}"
	"table{border-collapse:collapse;margin-bottom:1.5em}"
	"th,td{border-bottom:1px solid #ddd;padding:.3em .8em;text-align:left;vertical-align:top}"
	"th{background:#f4f4f4}.online{color:#070}.stale{color:#a60}.offline{color:#b00}"
	".never{color:#777}.err{color:#b00}header{display:flex;gap:2em;align-items:center}"
	"figure{display:inline-block;margin:0 1.5em 1.5em 0}figcaption{font-weight:600}"
	"svg{background:#fafafa;border:1px solid #ddd}form.inline{display:inline}";

static void page_start(struct mresp *resp, int status, const char *title, int refresh)
{
	resp->status = status;
	resp->content_type = "text/html; charset=utf-8";
	sbuf_adds(&resp->head, "Content-Security-Policy: default-src 'none'; "
		  "style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; "
		  "base-uri 'none'\r\nX-Frame-Options: DENY\r\nReferrer-Policy: same-origin\r\n");
	sbuf_release(&resp->body);
	sbuf_adds(&resp->body, "<!doctype html><html lang=en><head><meta charset=utf-8>"
		  "<meta name=viewport content=\"width=device-width\">");
	if (refresh)
		sbuf_addf(&resp->body, "<meta http-equiv=refresh content=\"%d\">", REFRESH_S);
	sbuf_adds(&resp->body, "<title>");
	sbuf_add_html(&resp->body, title);
	sbuf_adds(&resp->body, " — hostgate-manage</title><style>");
	sbuf_adds(&resp->body, css);
	sbuf_adds(&resp->body, "</style></head><body>");
}

static void page_end(struct mresp *resp)
{
	sbuf_adds(&resp->body, "</body></html>\n");
}

static void redirect(struct mresp *resp, const char *location)
{
	resp->status = 303;
	resp->content_type = "text/plain; charset=utf-8";
	sbuf_adds(&resp->head, "Location: ");
	sbuf_adds(&resp->head, location);
	sbuf_adds(&resp->head, "\r\n");
	sbuf_release(&resp->body);
	sbuf_adds(&resp->body, "see other\n");
}

/* A form field or cookie value (name=value pairs split by sep), decoded
 * into out. 1 found, 0 not. */
static int field(const char *s, size_t len, char sep, const char *name, char *out, size_t n)
{
	size_t nl = strlen(name), i = 0;

	while (s && i < len) {
		size_t end = i;

		while (end < len && s[end] != sep)
			end++;
		while (i < end && s[i] == ' ')
			i++;
		if (end - i > nl && !strncmp(s + i, name, nl) && s[i + nl] == '=') {
			size_t o = 0;

			for (size_t k = i + nl + 1; k < end && o + 1 < n; k++) {
				if (s[k] == '%' && k + 2 < end) {
					char hx[3] = { s[k + 1], s[k + 2], 0 };

					out[o++] = (char)strtol(hx, NULL, 16);
					k += 2;
				} else {
					out[o++] = s[k] == '+' ? ' ' : s[k];
				}
			}
			out[o] = '\0';
			return 1;
		}
		i = end + 1;
	}
	return 0;
}

/* The session of the request: 0 with csrf (new) when logged in. */
static int session(struct mapp *app, const struct mreq *req, char **csrf)
{
	char id[128], hash[CRYPTO_HEX_LEN];
	int64_t expires = 0;

	*csrf = NULL;
	if (!req->cookie || !field(req->cookie, strlen(req->cookie), ';', COOKIE, id, sizeof(id)) ||
	    !*id)
		return -1;
	crypto_sha256_hex(id, strlen(id), hash);
	if (store_session_find(app->st, hash, csrf, &expires) != 0)
		return -1;
	if (expires < util_now()) {
		free(*csrf);
		*csrf = NULL;
		return -1;
	}
	return 0;
}

/* A POST from a page of another origin is refused whatever it carries. */
static int same_origin(const struct mreq *req)
{
	const char *o = req->origin, *h;

	if (!o || !strcmp(o, "null"))
		return o == NULL;
	h = strstr(o, "://");
	return h && req->host && !strcmp(h + 3, req->host);
}

static void cookie(struct mresp *resp, const struct mreq *req, const char *value, int max_age)
{
	sbuf_addf(&resp->head, "Set-Cookie: " COOKIE "=%s; Path=", value);
	sbuf_adds(&resp->head, req->mount && *req->mount ? req->mount : "");
	sbuf_addf(&resp->head, "/ui; Max-Age=%d; HttpOnly; SameSite=Strict%s\r\n", max_age,
		  req->https ? "; Secure" : "");
}

static void login_page(struct mresp *resp, int status, const char *message)
{
	page_start(resp, status, "Log in", 0);
	sbuf_adds(&resp->body, "<h1>hostgate-manage</h1>");
	if (message) {
		sbuf_adds(&resp->body, "<p class=err role=alert>");
		sbuf_add_html(&resp->body, message);
		sbuf_adds(&resp->body, "</p>");
	}
	sbuf_adds(&resp->body, "<form method=post action=login><label>Admin token "
		  "<input type=password name=token autocomplete=off size=50 required></label> "
		  "<button type=submit>Log in</button></form>"
		  "<p>An admin token is made with <code>hostgate-manage admin-token NAME</code>.</p>");
	page_end(resp);
}

static void do_login(struct mapp *app, const struct mreq *req, struct mresp *resp)
{
	char token[300], sid[CRYPTO_TOKEN_LEN], csrf[CRYPTO_TOKEN_LEN], hash[CRYPTO_HEX_LEN];

	if (!same_origin(req)) {
		login_page(resp, 403, "this form must be sent from this site");
		return;
	}
	if (req->body_too_big || req->body_len > 4096 ||
	    !field(req->body, req->body_len, '&', "token", token, sizeof(token)) ||
	    app_admin_token_ok(app, token) != 0) {
		login_page(resp, 401, "that is not a valid admin token");
		return;
	}
	explicit_bzero(token, sizeof(token));
	if (crypto_token(sid) != 0 || crypto_token(csrf) != 0) {
		login_page(resp, 500, "cannot make a session");
		return;
	}
	crypto_sha256_hex(sid, strlen(sid), hash);
	if (store_session_add(app->st, hash, csrf, util_now() + STORE_SESSION_MAX_S) != 0) {
		login_page(resp, 500, "cannot store the session");
		return;
	}
	redirect(resp, "./");
	cookie(resp, req, sid, STORE_SESSION_MAX_S);
	explicit_bzero(sid, sizeof(sid));
}

static void do_logout(struct mapp *app, const struct mreq *req, struct mresp *resp,
		      const char *csrf)
{
	char got[128], id[128], hash[CRYPTO_HEX_LEN];

	if (!same_origin(req) || req->body_len > 4096 ||
	    !field(req->body, req->body_len, '&', "csrf", got, sizeof(got)) ||
	    !crypto_equal(got, csrf)) {
		app_error(resp, 403, "the form's CSRF token does not match the session");
		return;
	}
	if (field(req->cookie, strlen(req->cookie), ';', COOKIE, id, sizeof(id))) {
		crypto_sha256_hex(id, strlen(id), hash);
		store_session_drop(app->st, hash);
	}
	redirect(resp, "login");
	cookie(resp, req, "", 0);
}

/* ---- the overview ---- */

struct series {
	char name[96];
	int64_t req[MAX_POINTS], err[MAX_POINTS], p95[MAX_POINTS];
	int64_t total, errors;
};

struct chart_set {
	struct series *s;
	size_t n;
	int64_t start, step;
	int points;
	unsigned by;
};

static int chart_row(void *ctx, const struct store_metric *m)
{
	struct chart_set *cs = ctx;
	const char *name = cs->by == STORE_BY_API ? m->api : m->gateway;
	struct series *s = NULL;
	int64_t i;

	if (!name || !*name)
		name = "(no API)";
	for (size_t k = 0; k < cs->n && !s; k++)
		if (!strcmp(cs->s[k].name, name))
			s = &cs->s[k];
	if (!s) {
		if (cs->n == MAX_CHARTS)
			return 0;
		s = &cs->s[cs->n++];
		memset(s, 0, sizeof(*s));
		snprintf(s->name, sizeof(s->name), "%s", name);
	}
	i = (m->minute - cs->start) / cs->step;
	if (i < 0 || i >= cs->points)
		return 0;
	s->req[i] += m->count;
	s->err[i] += m->errors;
	if (app_percentile(m->hist, 0.95) > s->p95[i])
		s->p95[i] = app_percentile(m->hist, 0.95);
	s->total += m->count;
	s->errors += m->errors;
	return 0;
}

static void svg_chart(struct sbuf *b, const struct series *s, const struct chart_set *cs)
{
	int64_t max = 1, maxp = 1;
	double bw = (double)CHART_W / cs->points;
	char t[32];

	for (int i = 0; i < cs->points; i++) {
		if (s->req[i] > max)
			max = s->req[i];
		if (s->p95[i] > maxp)
			maxp = s->p95[i];
	}
	sbuf_addf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=%d height=%d "
		  "viewBox=\"0 0 %d %d\" role=img>", CHART_W, 2 * CHART_H + 30, CHART_W,
		  2 * CHART_H + 30);
	/* requests (blue) with errors (red) over them */
	sbuf_addf(b, "<text x=4 y=12 font-size=11>requests (max %lld/%s), errors</text>",
		  (long long)max, cs->step == 60 ? "min" : "h");
	for (int i = 0; i < cs->points; i++) {
		double h = (double)s->req[i] * (CHART_H - 16) / (double)max;
		double he = (double)s->err[i] * (CHART_H - 16) / (double)max;

		if (!s->req[i])
			continue;
		util_format_time(cs->start + i * cs->step, t, sizeof(t));
		sbuf_addf(b, "<rect class=req x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
			  "fill=\"#4a7fd0\"><title>", i * bw, CHART_H - h, bw > 2 ? bw - 1 : bw, h);
		sbuf_add_html(b, t);
		sbuf_addf(b, ": %lld requests, %lld errors, p95 %lld ms</title></rect>",
			  (long long)s->req[i], (long long)s->err[i], (long long)s->p95[i]);
		if (he > 0)
			sbuf_addf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
				  "fill=\"#d04a4a\"/>", i * bw, CHART_H - he, bw > 2 ? bw - 1 : bw,
				  he);
	}
	/* p95 latency */
	sbuf_addf(b, "<text x=4 y=%d font-size=11>p95 latency (max %lld ms)</text>",
		  CHART_H + 14, (long long)maxp);
	sbuf_adds(b, "<polyline fill=none stroke=\"#2a8a2a\" stroke-width=1.5 points=\"");
	for (int i = 0; i < cs->points; i++)
		sbuf_addf(b, "%.1f,%.1f ", i * bw + bw / 2,
			  2.0 * CHART_H + 10 - (double)s->p95[i] * (CHART_H - 16) / (double)maxp);
	sbuf_adds(b, "\"/>");
	sbuf_addf(b, "<text x=4 y=%d font-size=10 fill=\"#666\">%s</text>"
		  "<text x=%d y=%d font-size=10 fill=\"#666\" text-anchor=end>now</text></svg>",
		  2 * CHART_H + 26, cs->step == 60 ? "60 min ago" : "24 h ago", CHART_W - 4,
		  2 * CHART_H + 26);
}

static void charts(struct mapp *app, struct sbuf *b, unsigned by, int day, const char *what)
{
	struct chart_set cs = { 0 };
	struct store_metrics_filter f = { 0 };
	int64_t now = util_now();

	cs.by = by;
	cs.step = day ? 3600 : 60;
	cs.points = day ? 24 : 60;
	cs.start = (now / cs.step + 1) * cs.step - cs.points * cs.step;
	cs.s = calloc(MAX_CHARTS, sizeof(*cs.s));
	f.from = cs.start;
	f.to = now + 60;
	sbuf_addf(b, "<h2>Traffic per %s, last %s</h2>", what, day ? "day" : "hour");
	if (!cs.s || store_metrics_query(app->st, &f, by | (day ? STORE_BY_HOUR : STORE_BY_MINUTE),
					 chart_row, &cs) != 0) {
		sbuf_adds(b, "<p class=err>the metrics cannot be read</p>");
		free(cs.s);
		return;
	}
	if (!cs.n)
		sbuf_adds(b, "<p>No traffic reported.</p>");
	for (size_t i = 0; i < cs.n; i++) {
		sbuf_addf(b, "<figure class=chart data-%s=\"", by == STORE_BY_API ? "api" : "gateway");
		sbuf_add_html(b, cs.s[i].name);
		sbuf_addf(b, "\" data-requests=%lld data-errors=%lld><figcaption>",
			  (long long)cs.s[i].total, (long long)cs.s[i].errors);
		sbuf_add_html(b, cs.s[i].name);
		sbuf_addf(b, " — %lld requests, %lld errors</figcaption>", (long long)cs.s[i].total,
			  (long long)cs.s[i].errors);
		svg_chart(b, &cs.s[i], &cs);
		sbuf_adds(b, "</figure>");
	}
	free(cs.s);
}

struct gw_walk {
	struct mapp *app;
	struct sbuf *b;
	int64_t generation;
	json_object *serving;	/* api id -> array of gateway ids; "*" for all */
};

static const char *hb_str(json_object *hb, const char *name)
{
	json_object *v;

	if (!hb || !json_object_object_get_ex(hb, name, &v) || !v)
		return "";
	return json_object_get_string(v);
}

static int gateway_row(void *ctx, const char *id, const char *json, int64_t changed)
{
	struct gw_walk *w = ctx;
	json_object *state = app_gateway_state(w->app, id, w->generation), *hb = NULL, *st = NULL;
	json_object *obj = json_tokener_parse(json), *apis = NULL;
	const char *status;

	(void)changed;
	if (state) {
		json_object_object_get_ex(state, "last_heartbeat", &hb);
		json_object_object_get_ex(state, "status", &st);
	}
	status = st ? json_object_get_string(st) : "never";
	sbuf_adds(w->b, "<tr data-gateway=\"");
	sbuf_add_html(w->b, id);
	sbuf_adds(w->b, "\" data-status=\"");
	sbuf_add_html(w->b, status);
	sbuf_adds(w->b, "\"><td>");
	sbuf_add_html(w->b, id);
	sbuf_adds(w->b, "<td class=\"status ");
	sbuf_add_html(w->b, status);
	sbuf_adds(w->b, "\">");
	sbuf_add_html(w->b, status);
	sbuf_adds(w->b, "<td>");
	sbuf_add_html(w->b, hb ? hb_str(hb, "config_generation") : "—");
	sbuf_addf(w->b, " / %lld<td>", (long long)w->generation);
	sbuf_add_html(w->b, hb_str(hb, "received"));
	sbuf_adds(w->b, "<td class=err>");
	sbuf_add_html(w->b, hb_str(hb, "last_error"));
	sbuf_adds(w->b, "<td>");
	sbuf_add_html(w->b, hb_str(hb, "version"));
	sbuf_adds(w->b, "<td>");
	sbuf_add_html(w->b, hb_str(hb, "hostname"));
	sbuf_adds(w->b, "<td>");
	if (obj && json_object_object_get_ex(obj, "apis", &apis)) {
		if (json_object_is_type(apis, json_type_string)) {
			sbuf_adds(w->b, "all");
			json_object_object_add(w->serving, "*", NULL);
		}
		for (size_t i = 0; json_object_is_type(apis, json_type_array) &&
		     i < json_object_array_length(apis); i++) {
			const char *a = json_object_get_string(json_object_array_get_idx(apis, i));
			json_object *list;

			if (i)
				sbuf_adds(w->b, ", ");
			sbuf_add_html(w->b, a);
			if (!json_object_object_get_ex(w->serving, a, &list)) {
				list = json_object_new_array();
				json_object_object_add(w->serving, a, list);
			}
			json_object_array_add(list, json_object_new_string(id));
		}
	}
	sbuf_adds(w->b, "</tr>");
	json_object_put(obj);
	json_object_put(state);
	return 0;
}

static int api_row(void *ctx, const char *id, const char *json, int64_t changed)
{
	struct gw_walk *w = ctx;
	json_object *obj = json_tokener_parse(json), *list;
	int first = 1;

	(void)changed;
	sbuf_adds(w->b, "<tr data-api=\"");
	sbuf_add_html(w->b, id);
	sbuf_adds(w->b, "\"><td>");
	sbuf_add_html(w->b, id);
	sbuf_adds(w->b, "<td>/");
	sbuf_add_html(w->b, obj ? hb_str(obj, "path") : "");
	sbuf_adds(w->b, "<td>");
	sbuf_add_html(w->b, obj ? hb_str(obj, "backend") : "");
	sbuf_adds(w->b, "<td>");
	if (json_object_object_get_ex(w->serving, id, &list)) {
		for (size_t i = 0; i < json_object_array_length(list); i++, first = 0) {
			if (!first)
				sbuf_adds(w->b, ", ");
			sbuf_add_html(w->b, json_object_get_string(json_object_array_get_idx(list, i)));
		}
	}
	if (json_object_object_get_ex(w->serving, "*", NULL))
		sbuf_adds(w->b, first ? "every gateway assigned all" :
			  ", and every gateway assigned all");
	sbuf_adds(w->b, "</tr>");
	json_object_put(obj);
	return 0;
}

static void overview(struct mapp *app, const struct mreq *req, struct mresp *resp,
		     const char *csrf)
{
	char range[16] = "";
	struct gw_walk w = { app, &resp->body, store_generation(app->st), json_object_new_object() };
	int day;

	field(req->query, strlen(req->query), '&', "range", range, sizeof(range));
	day = !strcmp(range, "day");
	page_start(resp, 200, "Dashboard", 1);
	sbuf_addf(&resp->body, "<header><h1>hostgate-manage</h1><span>generation "
		  "<b id=generation>%lld</b></span><span>traffic: <a href=\"?range=hour\">last "
		  "hour</a> · <a href=\"?range=day\">last day</a></span>"
		  "<form class=inline method=post action=logout><input type=hidden name=csrf "
		  "value=\"", (long long)w.generation);
	sbuf_add_html(&resp->body, csrf);
	sbuf_adds(&resp->body, "\"><button type=submit>Log out</button></form></header>");
	sbuf_adds(&resp->body, "<h2>Gateways</h2><table id=gateways><tr><th>Gateway<th>Status"
		  "<th>Generation served / current<th>Last heartbeat<th>Last error<th>Version"
		  "<th>Hostname<th>APIs</tr>");
	if (store_each(app->st, "gateway", gateway_row, &w) != 0)
		sbuf_adds(&resp->body, "<tr><td colspan=8 class=err>cannot read the gateways</tr>");
	sbuf_adds(&resp->body, "</table><h2>APIs</h2><table id=apis><tr><th>API<th>Path"
		  "<th>Backend<th>Served by</tr>");
	if (store_each(app->st, "api", api_row, &w) != 0)
		sbuf_adds(&resp->body, "<tr><td colspan=4 class=err>cannot read the APIs</tr>");
	sbuf_adds(&resp->body, "</table>");
	charts(app, &resp->body, STORE_BY_API, day, "API");
	charts(app, &resp->body, STORE_BY_GATEWAY, day, "gateway");
	page_end(resp);
	json_object_put(w.serving);
}

void ui_handle(struct mapp *app, const struct mreq *req, struct mresp *resp, char **seg,
	       size_t n)
{
	const char *m = req->method, *page = n ? seg[0] : "";
	size_t plen = strlen(req->path);
	char *csrf = NULL;

	if (n == 0 && (plen == 0 || req->path[plen - 1] != '/')) {
		/* /ui without its slash: relative links need it */
		redirect(resp, "ui/");
		return;
	}
	if (n > 1) {
		app_error(resp, 404, "no such page");
		return;
	}
	if (!strcmp(page, "login")) {
		if (!strcmp(m, "POST"))
			do_login(app, req, resp);
		else
			login_page(resp, 200, NULL);
		return;
	}
	if (session(app, req, &csrf) != 0) {
		if (!strcmp(m, "GET") || !strcmp(m, "HEAD"))
			redirect(resp, n ? "login" : "login");
		else
			app_error(resp, 403, "log in first");
		return;
	}
	if (!strcmp(page, "logout") && !strcmp(m, "POST"))
		do_logout(app, req, resp, csrf);
	else if (!*page && (!strcmp(m, "GET") || !strcmp(m, "HEAD")))
		overview(app, req, resp, csrf);
	else
		app_error(resp, 404, "no such page");
	free(csrf);
}
