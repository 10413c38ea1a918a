/*
 * config — the loader of policy/gateway.h: a format 1 document (shared/spec/
 * config-v1.md) in, a validated struct gateway out. json-c is confined to this
 * file; policy/json_scan.c checks what json-c lets through (strict grammar,
 * strict UTF-8, member names given twice).
 *
 * Order of work: json_scan, json-c parse, then the sections in dependency
 * order (named_values before every string, backends before apis), collecting
 * every error with its JSON path; route_build() only when all that passed.
 *
 * Error messages: "PATH: what is wrong", lower case, no full stop; values and
 * names in single quotes; a value into which a secret named value was
 * substituted is never shown ("... (value hidden: it uses a secret)").
 */
#include "policy/gateway.h"
#include "policy/path.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy/cidr.h"
#include "policy/image.h"
#include "policy/json_scan.h"
#include "policy/loader.h"
#include "policy/policies.h"
#include "policy/products.h"
#include "policy/route.h"
#include "policy/template.h"

#define LD_NAME_SHOWN 64	/* longer names are cut in paths and messages */
#define LD_VALUE_SHOWN 100	/* longer values are cut in messages */
#define LD_ID_MAX 80
#define LD_TOKEN_MAX 256	/* header names, methods, query names */
#define LD_STRING_MAX (1024 * 1024)	/* one string after substitution */
#define LD_CRED_MAX 64		/* credential headers or query parameters per backend */
#define LD_TIMEOUT_MAX 3600000

#define DEFAULT_BODY_BYTES 10485760
#define DEFAULT_HEALTH_PATH "/status-0123456789abcdef"
#define DEFAULT_TIMEOUT_MS 30000
#define DEFAULT_CONNECT_TIMEOUT_MS 5000
#define DEFAULT_KEY_HEADER "Ocp-Apim-Subscription-Key"
#define DEFAULT_KEY_QUERY "subscription-key"

/* ld_string flags (STR_*) and struct loader: policy/loader.h */

/* ---- paths and messages ------------------------------------------------ */

static int is_plain_name(const char *s, size_t n)
{
	if (n == 0 || n > LD_NAME_SHOWN)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

/* Appends s to buf (NUL-terminated, cut silently at cap). */
static void buf_put(char *buf, size_t cap, size_t *len, const char *s, size_t n)
{
	if (*len + 1 >= cap)
		return;
	if (n > cap - 1 - *len)
		n = cap - 1 - *len;
	memcpy(buf + *len, s, n);
	*len += n;
	buf[*len] = '\0';
}

/* Appends name[0..n) escaped for a message: the quote character and '\' get a
 * backslash, control bytes become \xNN; cut at max bytes (on a UTF-8
 * boundary) with "...". */
static void buf_put_escaped(char *buf, size_t cap, size_t *len, const char *name, size_t n,
			    char quote, size_t max)
{
	size_t i, lim = n;

	if (lim > max) {
		lim = max;
		while (lim > 0 && ((unsigned char)name[lim] & 0xc0) == 0x80)
			lim--;
	}
	for (i = 0; i < lim; i++) {
		unsigned char c = (unsigned char)name[i];
		char e[8];

		if (c == (unsigned char)quote || c == '\\') {
			e[0] = '\\';
			e[1] = (char)c;
			buf_put(buf, cap, len, e, 2);
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(e, sizeof(e), "\\x%02x", c);
			buf_put(buf, cap, len, e, 4);
		} else {
			buf_put(buf, cap, len, (const char *)&name[i], 1);
		}
	}
	if (lim < n)
		buf_put(buf, cap, len, "...", 3);
}

/* Appends one step to a path: a member of a spec-defined object (".name",
 * or just "name" at the top) or a key of a map ("[\"key\"]"); a member name
 * that is not plain is written like a key. */
static void path_put_name(char *buf, size_t cap, size_t *len, const char *name, size_t n,
			  int is_key)
{
	if (!is_key && is_plain_name(name, n)) {
		if (*len > 0)
			buf_put(buf, cap, len, ".", 1);
		buf_put(buf, cap, len, name, n);
		return;
	}
	buf_put(buf, cap, len, "[\"", 2);
	buf_put_escaped(buf, cap, len, name, n, '"', LD_NAME_SHOWN);
	buf_put(buf, cap, len, "\"]", 2);
}

size_t ld_push_member(struct loader *ld, const char *name)
{
	size_t mark = ld->plen;

	path_put_name(ld->path, sizeof(ld->path), &ld->plen, name, strlen(name), 0);
	return mark;
}

size_t ld_push_key(struct loader *ld, const char *key)
{
	size_t mark = ld->plen;

	path_put_name(ld->path, sizeof(ld->path), &ld->plen, key, strlen(key), 1);
	return mark;
}

size_t ld_push_index(struct loader *ld, size_t i)
{
	size_t mark = ld->plen, k = 31;
	char b[32];

	/* once per array element of every document: no printf */
	b[k] = ']';
	do {
		b[--k] = (char)('0' + i % 10);
		i /= 10;
	} while (i);
	b[--k] = '[';
	buf_put(ld->path, sizeof(ld->path), &ld->plen, b + k, 32 - k);
	return mark;
}

void ld_pop(struct loader *ld, size_t mark)
{
	ld->plen = mark;
	ld->path[mark] = '\0';
}

/* Reports an error at the current path. */
__attribute__((format(printf, 2, 3)))
void ld_err(struct loader *ld, const char *fmt, ...)
{
	char msg[900];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cfg_error(ld->errs, ld->path, "%s", msg);
	ld->n_errors++;
}

/* Reports "'VALUE' PREDICATE", or, when the value holds a secret,
 * "the value PREDICATE (value hidden: it uses a secret)". */
__attribute__((format(printf, 4, 5)))
void ld_err_value(struct loader *ld, const char *value, int secret, const char *fmt, ...)
{
	char pred[600], shown[LD_VALUE_SHOWN * 4 + 8];
	size_t n = 0;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(pred, sizeof(pred), fmt, ap);
	va_end(ap);
	shown[0] = '\0';
	if (secret) {
		ld_err(ld, "the value %s (value hidden: it uses a secret)", pred);
		return;
	}
	buf_put_escaped(shown, sizeof(shown), &n, value, strlen(value), '\'', LD_VALUE_SHOWN);
	ld_err(ld, "'%s' %s", shown, pred);
}

/* A name (member or key) quoted for a message, into buf. */
static const char *shown_name(char *buf, size_t cap, const char *name)
{
	size_t n = 0;

	buf[0] = '\0';
	buf_put_escaped(buf, cap, &n, name, strlen(name), '\'', LD_NAME_SHOWN);
	return buf;
}

/* ---- typed access ------------------------------------------------------ */

static const char *type_name(json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_null:
		return "null";
	case json_type_boolean:
		return "a boolean";
	case json_type_double:
		return "a fractional number";
	case json_type_int:
		return "an integer";
	case json_type_object:
		return "an object";
	case json_type_array:
		return "an array";
	case json_type_string:
		return "a string";
	}
	return "something else";
}

/* Checks v's type at the current path. Returns 0 or -1 (reported). */
static int ld_type(struct loader *ld, json_object *v, enum json_type t, const char *want)
{
	if (v && json_object_get_type(v) == t)
		return 0;
	ld_err(ld, "must be %s, not %s", want, type_name(v));
	return -1;
}

int ld_is_object(struct loader *ld, json_object *v)
{
	return ld_type(ld, v, json_type_object, "an object");
}

int ld_is_array(struct loader *ld, json_object *v)
{
	return ld_type(ld, v, json_type_array, "an array");
}

/* Member name of obj, or NULL when absent; when required and absent, reports
 * it at the current (the object's) path. No member may be null: that is
 * reported here, and the member then counts as absent. */
json_object *ld_get(struct loader *ld, json_object *obj, const char *name, int required)
{
	json_object *v = NULL;

	if (json_object_object_get_ex(obj, name, &v)) {
		size_t mark;

		if (v)
			return v;
		mark = ld_push_member(ld, name);
		ld_err(ld, "must not be null (leave the member out instead)");
		ld_pop(ld, mark);
		return NULL;
	}
	if (required)
		ld_err(ld, "missing required member '%s'", name);
	return NULL;
}

/* Is the member there at all (null included)? Reports nothing. */
int ld_present(json_object *obj, const char *name)
{
	return json_object_object_get_ex(obj, name, NULL) ? 1 : 0;
}

/* Reports every member of obj that is neither in known (NULL-terminated) nor
 * starts with "x-". */
void ld_check_members(struct loader *ld, json_object *obj, const char *const known[])
{
	json_object_object_foreach(obj, name, val) {
		size_t i, mark;

		(void)val;
		if (strncmp(name, "x-", 2) == 0)
			continue;
		for (i = 0; known[i]; i++)
			if (strcmp(name, known[i]) == 0)
				break;
		if (known[i])
			continue;
		mark = ld_push_member(ld, name);
		ld_err(ld, "unknown member (names starting with 'x-' are ignored)");
		ld_pop(ld, mark);
	}
}

/* Finds a named value by the name s[0..n); gw->named_values is sorted. */
static const struct gw_kv *nv_find(const struct gateway *gw, const char *s, size_t n)
{
	size_t lo = 0, hi = gw->n_named_values;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *name = gw->named_values[mid].name;
		int c = strncmp(name, s, n);

		if (c == 0 && name[n] != '\0')
			c = 1;
		if (c == 0)
			return &gw->named_values[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int is_id_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

static int is_id(const char *s, size_t n)
{
	if (n < 1 || n > LD_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!is_id_char((unsigned char)s[i]))
			return 0;
	return 1;
}

/* Appends s[0..n) to the growing string *out (len, cap). */
static int sb_put(char **out, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (*cap - *len <= n) {
		size_t c = *cap ? *cap : 64;
		char *p;

		while (c - *len <= n)
			c *= 2;
		p = malloc(c);
		if (!p)
			return -1;
		if (*out) {
			memcpy(p, *out, *len);
			/* the old buffer may hold a secret already */
			explicit_bzero(*out, *cap);
			free(*out);
		}
		*out = p;
		*cap = c;
	}
	memcpy(*out + *len, s, n);
	*len += n;
	(*out)[*len] = '\0';
	return 0;
}

static void free_secret(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* First "cc" (c twice) in s[0..n), or NULL. */
static const char *find_pair(const char *s, size_t n, char c)
{
	for (size_t i = 0; i + 1 < n; i++)
		if (s[i] == c && s[i + 1] == c)
			return s + i;
	return NULL;
}

/* Substitutes {{name}} in s[0..n) into a new string. Returns 0 with *out and
 * *secret set, or -1 (reported at the current path). */
static int ld_subst(struct loader *ld, const char *s, size_t n, char **out, int *secret)
{
	char *r = NULL;
	size_t len = 0, cap = 0, i = 0;
	int rc = -1, bad = 0, oom = 0;

	*out = NULL;
	*secret = 0;
	if (sb_put(&r, &len, &cap, "", 0) != 0) {
		oom = 1;
		goto out;
	}
	while (i < n) {
		const char *open = find_pair(s + i, n - i, '{'), *close, *name;
		const struct gw_kv *nv;
		size_t nlen;

		if (!open) {
			oom = sb_put(&r, &len, &cap, s + i, n - i) != 0;
			break;
		}
		if (sb_put(&r, &len, &cap, s + i, (size_t)(open - (s + i))) != 0) {
			oom = 1;
			goto out;
		}
		name = open + 2;
		close = find_pair(name, n - (size_t)(name - s), '}');
		if (!close) {
			ld_err(ld, "unterminated '{{' (a named value reference is '{{name}}')");
			goto out;
		}
		nlen = (size_t)(close - name);
		i = (size_t)(close + 2 - s);
		if (!is_id(name, nlen)) {
			char shown[LD_NAME_SHOWN * 4 + 8];
			size_t sl = 0;

			shown[0] = '\0';
			buf_put_escaped(shown, sizeof(shown), &sl, name, nlen, '\'', LD_NAME_SHOWN);
			ld_err(ld, "'{{%s}}' is not a named value reference (names are 1 to 80 of "
			       "A-Z a-z 0-9 . _ -)", shown);
			bad = 1;
			continue;
		}
		nv = nv_find(ld->gw, name, nlen);
		if (!nv) {
			ld_err(ld, "unknown named value '%.*s'", (int)nlen, name);
			bad = 1;
			continue;
		}
		if (nv->secret)
			*secret = 1;
		if (sb_put(&r, &len, &cap, nv->value, strlen(nv->value)) != 0) {
			oom = 1;
			goto out;
		}
		ld->expanded += strlen(nv->value);
		if (len > LD_STRING_MAX || ld->expanded > GW_MAX_DOCUMENT_BYTES) {
			ld_err(ld, "too long after substituting named values");
			goto out;
		}
	}
	if (bad || oom)
		goto out;
	*out = r;
	r = NULL;
	rc = 0;
out:
	if (oom)
		ld_err(ld, "out of memory");
	if (r) {
		explicit_bzero(r, cap);
		free(r);
	}
	return rc;
}

/* A string value at the current path: no NUL, {{named values}} substituted
 * (STR_SUBST), no "${" unless STR_REQUEST_VALUES. Returns 0 with a new *out (and *secret, may be NULL),
 * or -1 (reported). */
int ld_string(struct loader *ld, json_object *v, unsigned flags, char **out, int *secret)
{
	const char *s;
	size_t n;
	int sec = 0;

	*out = NULL;
	if (secret)
		*secret = 0;
	if (ld_type(ld, v, json_type_string, "a string") != 0)
		return -1;
	s = json_object_get_string(v);
	n = (size_t)json_object_get_string_len(v);
	if (strlen(s) != n) {
		ld_err(ld, "must not contain a NUL character");
		return -1;
	}
	if (flags & STR_SUBST) {
		if (ld_subst(ld, s, n, out, &sec) != 0)
			return -1;
	} else {
		*out = strdup(s);
		if (!*out) {
			ld_err(ld, "out of memory");
			return -1;
		}
	}
	if ((flags & STR_NO_SECRET) && sec) {
		ld_err(ld, "must not use a secret named value (it would show in messages)");
		free_secret(*out);
		*out = NULL;
		return -1;
	}
	if (!(flags & STR_REQUEST_VALUES) && strstr(*out, "${")) {
		ld_err(ld, "'${' is not allowed here (per-request values are only for policy "
		       "attributes)");
		free_secret(*out);
		*out = NULL;
		return -1;
	}
	if (secret)
		*secret = sec;
	return 0;
}

/* An id at the current path: a string of [A-Za-z0-9._-]{1,80}, never
 * substituted. */
int ld_id(struct loader *ld, json_object *v, char **out)
{
	if (ld_string(ld, v, 0, out, NULL) != 0)
		return -1;
	if (!is_id(*out, strlen(*out))) {
		ld_err_value(ld, *out, 0, "is not a valid id (1 to 80 of A-Z a-z 0-9 . _ -)");
		free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

int ld_int(struct loader *ld, json_object *v, int64_t min, int64_t max, int64_t *out)
{
	int64_t i;

	if (ld_type(ld, v, json_type_int, "an integer") != 0)
		return -1;
	i = json_object_get_int64(v);
	/* json-c keeps values above INT64_MAX as uint64 (and clamps larger ones) */
	if (i == INT64_MAX && json_object_get_uint64(v) > (uint64_t)INT64_MAX) {
		ld_err(ld, "must be at most %lld", (long long)max);
		return -1;
	}
	if (i < min || i > max) {
		if (max == INT64_MAX)
			ld_err(ld, "must be at least %lld, not %lld", (long long)min, (long long)i);
		else
			ld_err(ld, "must be an integer from %lld to %lld, not %lld", (long long)min,
			       (long long)max, (long long)i);
		return -1;
	}
	*out = i;
	return 0;
}

int ld_bool(struct loader *ld, json_object *v, int *out)
{
	if (ld_type(ld, v, json_type_boolean, "a boolean (true or false)") != 0)
		return -1;
	*out = json_object_get_boolean(v) ? 1 : 0;
	return 0;
}

/* Optional integer member: absent leaves *out alone. */
static void ld_member_int(struct loader *ld, json_object *obj, const char *name, int64_t min,
			  int64_t max, int64_t *out)
{
	json_object *v = ld_get(ld, obj, name, 0);
	size_t mark;

	if (!v)
		return;
	mark = ld_push_member(ld, name);
	ld_int(ld, v, min, max, out);
	ld_pop(ld, mark);
}

static void ld_member_bool(struct loader *ld, json_object *obj, const char *name, int *out)
{
	json_object *v = ld_get(ld, obj, name, 0);
	size_t mark;

	if (!v)
		return;
	mark = ld_push_member(ld, name);
	ld_bool(ld, v, out);
	ld_pop(ld, mark);
}

/* ---- value checks ------------------------------------------------------ */

static int is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* An HTTP token (RFC 9110): header names and methods. */
static int is_token(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > LD_TOKEN_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!is_tchar((unsigned char)s[i]))
			return 0;
	return 1;
}

static int has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

/* Is the segment s[0..n) "." or ".." once %2e/%2E are decoded? */
static int is_dot_segment(const char *s, size_t n)
{
	size_t dots = 0, i = 0;

	while (i < n) {
		if (s[i] == '.') {
			i++;
		} else if (n - i >= 3 && s[i] == '%' && s[i + 1] == '2' &&
			   (s[i + 2] == 'e' || s[i + 2] == 'E')) {
			i += 3;
		} else {
			return 0;
		}
		dots++;
	}
	return dots == 1 || dots == 2;
}

static void lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

static void upper(char *s)
{
	for (; *s; s++)
		if (*s >= 'a' && *s <= 'z')
			*s = (char)(*s - 'a' + 'A');
}

/* Checks a host name (letters, digits, '-', '_', dot-separated labels) or an
 * IPv4 address. */
static int is_hostname(const char *s, size_t n)
{
	size_t label = 0;

	if (n < 1 || n > 253)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return 0;
		if (++label > 63)
			return 0;
	}
	return label > 0;
}

/* "[v6]" */
static int is_ipv6_literal(const char *s, size_t n)
{
	char a[INET6_ADDRSTRLEN + 1];
	unsigned char out[16];

	if (n < 3 || s[0] != '[' || s[n - 1] != ']' || n - 2 > INET6_ADDRSTRLEN)
		return 0;
	memcpy(a, s + 1, n - 2);
	a[n - 2] = '\0';
	return inet_pton(AF_INET6, a, out) == 1;
}

/* Bytes allowed in a URL path besides unreserved and '%' (RFC 3986 pchar and
 * '/'). */
static int is_path_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("-._~!$&'()*+,;=:@/", c));
}

/* A backend URL: absolute http(s), a host, optional port and path; no
 * userinfo, query, fragment or dot segments. *out gets the normalised URL
 * (scheme and host lower case, no trailing '/'). Returns 0 or -1 (reported). */
int ld_check_url(struct loader *ld, const char *u, int secret, char **out)
{
	const char *p, *auth, *host_end, *path;
	size_t slen, n;
	char *r;

	*out = NULL;
	if (strncasecmp(u, "http://", 7) == 0) {
		slen = 7;
	} else if (strncasecmp(u, "https://", 8) == 0) {
		slen = 8;
	} else {
		ld_err_value(ld, u, secret, "is not an absolute http:// or https:// URL");
		return -1;
	}
	auth = u + slen;
	n = strcspn(auth, "/?#");
	path = auth + n;
	if (memchr(auth, '@', n)) {
		ld_err_value(ld, u, secret, "must not hold user information (use 'credentials')");
		return -1;
	}
	if (auth[0] == '[') {
		p = memchr(auth, ']', n);
		if (!p || !is_ipv6_literal(auth, (size_t)(p - auth) + 1)) {
			ld_err_value(ld, u, secret, "has a bad IPv6 address");
			return -1;
		}
		host_end = p + 1;
	} else {
		host_end = memchr(auth, ':', n);
		if (!host_end)
			host_end = path;
		if (!is_hostname(auth, (size_t)(host_end - auth))) {
			ld_err_value(ld, u, secret, "has no host or a bad host name");
			return -1;
		}
	}
	if (host_end < path) {
		long port = 0;

		if (*host_end != ':' || host_end + 1 == path || path - host_end > 6) {
			ld_err_value(ld, u, secret, "has a bad port");
			return -1;
		}
		for (p = host_end + 1; p < path; p++) {
			if (*p < '0' || *p > '9') {
				ld_err_value(ld, u, secret, "has a bad port");
				return -1;
			}
			port = port * 10 + (*p - '0');
		}
		if (port < 1 || port > 65535) {
			ld_err_value(ld, u, secret, "has a bad port");
			return -1;
		}
	}
	if (strchr(path, '?')) {
		ld_err_value(ld, u, secret, "must not have a query string");
		return -1;
	}
	if (strchr(path, '#')) {
		ld_err_value(ld, u, secret, "must not have a fragment");
		return -1;
	}
	for (p = path; *p; p++) {
		if (*p == '%') {
			if (path_hexval((unsigned char)p[1]) < 0 || path_hexval((unsigned char)p[2]) < 0) {
				ld_err_value(ld, u, secret, "has a bad percent-escape");
				return -1;
			}
		} else if (!is_path_char((unsigned char)*p)) {
			ld_err_value(ld, u, secret, "has a character that is not allowed in a URL");
			return -1;
		}
	}
	for (p = path; *p;) {
		size_t seg;

		p++;
		seg = strcspn(p, "/");
		if (is_dot_segment(p, seg)) {
			ld_err_value(ld, u, secret, "must not have '.' or '..' segments");
			return -1;
		}
		p += seg;
	}
	r = strdup(u);
	if (!r) {
		ld_err(ld, "out of memory");
		return -1;
	}
	/* lower-case scheme and host, drop trailing slashes */
	for (size_t i = 0; i < (size_t)(path - u); i++)
		if (r[i] >= 'A' && r[i] <= 'Z')
			r[i] = (char)(r[i] - 'A' + 'a');
	n = strlen(r);
	while (n > (size_t)(path - u) && r[n - 1] == '/')
		r[--n] = '\0';
	*out = r;
	return 0;
}

/* A local path like health_path: "/" then pchars without '%', no empty, "."
 * or ".." segment. */
static int check_local_path(struct loader *ld, const char *s, int secret)
{
	const char *p;

	if (s[0] != '/' || s[1] == '\0') {
		ld_err_value(ld, s, secret, "must be a path starting with '/'");
		return -1;
	}
	for (p = s; *p; p++) {
		if (*p == '%' || !is_path_char((unsigned char)*p)) {
			ld_err_value(ld, s, secret, "has a character that is not allowed here");
			return -1;
		}
	}
	for (p = s; *p;) {
		size_t seg;

		p++;
		seg = strcspn(p, "/");
		if (seg == 0 || is_dot_segment(p, seg)) {
			ld_err_value(ld, s, secret, "has an empty, '.' or '..' segment");
			return -1;
		}
		p += seg;
	}
	return 0;
}

/* An absolute file name (tls files). */
static int check_file_name(struct loader *ld, const char *s, int secret)
{
	if (s[0] != '/' || has_ctl(s)) {
		ld_err_value(ld, s, secret, "must be an absolute file name");
		return -1;
	}
	return 0;
}

/* ---- sections ---------------------------------------------------------- */

/* A CIDR list (trusted_proxies, metrics.allow) at the current path. */
static void parse_cidr_list(struct loader *ld, json_object *v, struct gw_cidr **list, size_t *n)
{
	size_t len;

	if (ld_is_array(ld, v) != 0)
		return;
	len = json_object_array_length(v);
	if (len == 0)
		return;
	*list = calloc(len, sizeof(**list));
	if (!*list) {
		ld_err(ld, "out of memory");
		return;
	}
	for (size_t i = 0; i < len; i++) {
		size_t mark = ld_push_index(ld, i);
		char *s;
		int secret;

		if (ld_string(ld, json_object_array_get_idx(v, i), STR_SUBST, &s, &secret) == 0) {
			if (cidr_parse(s, &(*list)[*n]) == 0)
				(*n)++;
			else
				ld_err_value(ld, s, secret, "is not an IP address or CIDR (host bits "
					     "must be zero)");
			free_secret(s);
		}
		ld_pop(ld, mark);
	}
}

static int cmp_kv(const void *a, const void *b)
{
	const struct gw_kv *x = a, *y = b;

	return strcmp(x->name, y->name);
}

static void parse_named_values(struct loader *ld, json_object *root)
{
	static const char *const known[] = { "value", "secret", NULL };
	struct gateway *gw = ld->gw;
	json_object *nvs = ld_get(ld, root, "named_values", 0);
	size_t mark, len;

	if (!nvs)
		return;
	mark = ld_push_member(ld, "named_values");
	if (ld_is_object(ld, nvs) != 0)
		goto out;
	len = (size_t)json_object_object_length(nvs);
	if (len == 0)
		goto out;
	gw->named_values = calloc(len, sizeof(*gw->named_values));
	if (!gw->named_values) {
		ld_err(ld, "out of memory");
		goto out;
	}
	json_object_object_foreach(nvs, name, o) {
		size_t m2 = ld_push_key(ld, name);
		json_object *value;
		char *v = NULL;
		int secret = 0;

		if (!is_id(name, strlen(name)))
			ld_err(ld, "is not a valid name (1 to 80 of A-Z a-z 0-9 . _ -)");
		if (ld_is_object(ld, o) == 0) {
			ld_check_members(ld, o, known);
			ld_member_bool(ld, o, "secret", &secret);
			value = ld_get(ld, o, "value", 1);
			if (value) {
				size_t m3 = ld_push_member(ld, "value");

				/* named values are literal: no {{...}} inside, and
				 * "${" is judged where the value is used */
				if (ld_type(ld, value, json_type_string, "a string") == 0) {
					const char *s = json_object_get_string(value);

					if (strlen(s) != (size_t)json_object_get_string_len(value))
						ld_err(ld, "must not contain a NUL character");
					else if (!(v = strdup(s)))
						ld_err(ld, "out of memory");
				}
				ld_pop(ld, m3);
			}
		}
		if (v) {
			struct gw_kv *kv = &gw->named_values[gw->n_named_values];

			kv->name = strdup(name);
			kv->value = v;
			kv->secret = secret;
			if (kv->name)
				gw->n_named_values++;
			else {
				free_secret(v);
				ld_err(ld, "out of memory");
			}
		}
		ld_pop(ld, m2);
	}
	if (gw->n_named_values)
		qsort(gw->named_values, gw->n_named_values, sizeof(*gw->named_values), cmp_kv);
out:
	ld_pop(ld, mark);
}

static void parse_metrics(struct loader *ld, json_object *m)
{
	static const char *const known[] = { "path", "allow", NULL };
	struct gateway *gw = ld->gw;
	json_object *v;

	if (ld_is_object(ld, m) != 0)
		return;
	ld_check_members(ld, m, known);
	v = ld_get(ld, m, "path", 1);
	if (v) {
		size_t mark = ld_push_member(ld, "path");
		char *s;
		int secret;

		if (ld_string(ld, v, STR_SUBST, &s, &secret) == 0) {
			if (check_local_path(ld, s, secret) == 0)
				gw->metrics_path = s;
			else
				free_secret(s);
		}
		ld_pop(ld, mark);
	}
	v = ld_get(ld, m, "allow", 0);
	if (v) {
		size_t mark = ld_push_member(ld, "allow");

		parse_cidr_list(ld, v, &gw->metrics_allow, &gw->n_metrics_allow);
		ld_pop(ld, mark);
	}
}

/* ---- gateway.counters ---------------------------------------------------- */

/* "redis://HOST[:PORT][/DB]" or "unix:/PATH" into c. HOST is a name, an IPv4
 * address or a bracketed IPv6 address. Returns 0 or -1 (reported). */
static int parse_redis_url(struct loader *ld, const char *s, int secret, struct gw_counters *c)
{
	const char *h, *e, *p;
	size_t hl;
	long v;
	char *end;

	if (strncmp(s, "unix:", 5) == 0) {
		if (s[5] != '/' || strlen(s + 5) >= 108) {
			ld_err_value(ld, s, secret, "must be unix:/ABSOLUTE/PATH (at most 107 bytes)");
			return -1;
		}
		c->unix_path = strdup(s + 5);
		return c->unix_path ? 0 : -1;
	}
	if (strncmp(s, "rediss://", 9) == 0) {
		ld_err(ld, "TLS to Redis (rediss://) is not supported in format 1");
		return -1;
	}
	if (strncmp(s, "redis://", 8) != 0) {
		ld_err_value(ld, s, secret, "must be redis://HOST:PORT/DB or unix:/PATH");
		return -1;
	}
	h = s + 8;
	if (strchr(h, '@')) {
		ld_err(ld, "must not hold credentials: use 'password'");
		return -1;
	}
	if (*h == '[') {
		e = strchr(h, ']');
		if (!e) {
			ld_err_value(ld, s, secret, "has an unclosed '[' in its host");
			return -1;
		}
		h++;
		hl = (size_t)(e - h);
		p = e + 1;
	} else {
		hl = strcspn(h, ":/");
		p = h + hl;
	}
	if (hl == 0 || hl > 253) {
		ld_err_value(ld, s, secret, "needs a host (at most 253 bytes)");
		return -1;
	}
	for (size_t i = 0; i < hl; i++) {
		unsigned char ch = (unsigned char)h[i];

		if (!isalnum(ch) && ch != '.' && ch != '-' && ch != ':' && ch != '_') {
			ld_err_value(ld, s, secret, "has a character that is not allowed in a host");
			return -1;
		}
	}
	c->port = 6379;
	if (*p == ':') {
		errno = 0;
		v = strtol(p + 1, &end, 10);
		if (end == p + 1 || errno || v < 1 || v > 65535 || (*end && *end != '/')) {
			ld_err_value(ld, s, secret, "has a port that is not 1-65535");
			return -1;
		}
		c->port = (int)v;
		p = end;
	}
	if (*p == '/' && p[1]) {
		errno = 0;
		v = strtol(p + 1, &end, 10);
		if (end == p + 1 || errno || v < 0 || v > 65535 || *end) {
			ld_err_value(ld, s, secret, "has a database that is not 0-65535");
			return -1;
		}
		c->db = (int)v;
	} else if (*p && strcmp(p, "/") != 0) {
		ld_err_value(ld, s, secret, "must be redis://HOST:PORT/DB or unix:/PATH");
		return -1;
	}
	c->host = strndup(h, hl);
	return c->host ? 0 : -1;
}

/* One optional string member through named values; 0 with *out (or absent:
 * *out untouched), -1 reported. */
static int member_string(struct loader *ld, json_object *obj, const char *name, char **out,
			 int *secret)
{
	json_object *v = ld_get(ld, obj, name, 0);
	size_t mark;
	int r;

	if (!v)
		return 0;
	mark = ld_push_member(ld, name);
	r = ld_string(ld, v, STR_SUBST, out, secret);
	ld_pop(ld, mark);
	return r;
}

static void parse_counters(struct loader *ld, json_object *o)
{
	static const char *const known[] = { "store", "url", "password", "timeout_ms",
		"on_failure", "prefix", NULL };
	struct gw_counters *c = &ld->gw->counters;
	char *store = NULL, *url = NULL, *fail = NULL, *prefix = NULL;
	int secret = 0;
	size_t mark;

	if (ld_is_object(ld, o) != 0)
		return;
	ld_check_members(ld, o, known);
	if (!ld_get(ld, o, "store", 1))
		return;
	if (member_string(ld, o, "store", &store, &secret) != 0)
		goto out;
	mark = ld_push_member(ld, "store");
	if (strcmp(store, "local") == 0) {
		c->store = GW_COUNTERS_LOCAL;
		if (ld_get(ld, o, "url", 0))
			ld_err(ld, "'local' takes no 'url'");
		ld_pop(ld, mark);
		goto out;
	}
	if (strcmp(store, "redis") != 0) {
		ld_err_value(ld, store, secret, "is not a counter store (local, redis)");
		ld_pop(ld, mark);
		goto out;
	}
	ld_pop(ld, mark);
	c->store = GW_COUNTERS_REDIS;
	c->timeout_ms = GW_COUNTERS_DEFAULT_TIMEOUT_MS;
	if (!ld_get(ld, o, "url", 1))
		goto out;
	if (member_string(ld, o, "url", &url, &secret) == 0 && url) {
		mark = ld_push_member(ld, "url");
		parse_redis_url(ld, url, secret, c);
		ld_pop(ld, mark);
	}
	member_string(ld, o, "password", &c->password, NULL);
	if (c->password && !*c->password) {
		mark = ld_push_member(ld, "password");
		ld_err(ld, "must not be empty (leave it out for no password)");
		ld_pop(ld, mark);
	}
	ld_member_int(ld, o, "timeout_ms", 1, 10000, &c->timeout_ms);
	if (member_string(ld, o, "on_failure", &fail, &secret) == 0 && fail) {
		mark = ld_push_member(ld, "on_failure");
		if (strcmp(fail, "local") == 0)
			c->on_failure = GW_ON_FAILURE_LOCAL;
		else if (strcmp(fail, "allow") == 0)
			c->on_failure = GW_ON_FAILURE_ALLOW;
		else if (strcmp(fail, "deny") == 0)
			c->on_failure = GW_ON_FAILURE_DENY;
		else
			ld_err_value(ld, fail, secret, "must be local, allow or deny");
		ld_pop(ld, mark);
	}
	if (member_string(ld, o, "prefix", &prefix, &secret) == 0 && prefix) {
		mark = ld_push_member(ld, "prefix");
		if (strlen(prefix) > GW_COUNTERS_PREFIX_MAX)
			ld_err(ld, "is longer than %d bytes", GW_COUNTERS_PREFIX_MAX);
		for (const char *q = prefix; *q; q++)
			if ((unsigned char)*q <= ' ' || (unsigned char)*q >= 0x7f) {
				ld_err_value(ld, prefix, secret, "must be printable ASCII without spaces");
				break;
			}
		ld_pop(ld, mark);
		c->prefix = prefix;
		prefix = NULL;
	} else {
		c->prefix = strdup("hostgate:");
	}
out:
	free(store);
	free_secret(url);
	free(fail);
	free(prefix);
}

static void parse_gateway(struct loader *ld, json_object *root)
{
	static const char *const known[] = { "trusted_proxies", "max_request_body_bytes",
		"forwarded_headers", "health_path", "metrics", "client_request_timeout_ms",
		"client_idle_timeout_ms", "client_body_timeout_ms", "client_body_min_rate", "counters",
		NULL };
	struct gateway *gw = ld->gw;
	json_object *g = ld_get(ld, root, "gateway", 0), *v;
	size_t mark, m2;

	if (!g)
		return;
	mark = ld_push_member(ld, "gateway");
	if (ld_is_object(ld, g) != 0)
		goto out;
	ld_check_members(ld, g, known);
	v = ld_get(ld, g, "trusted_proxies", 0);
	if (v) {
		m2 = ld_push_member(ld, "trusted_proxies");
		parse_cidr_list(ld, v, &gw->trusted_proxies, &gw->n_trusted_proxies);
		ld_pop(ld, m2);
	}
	ld_member_int(ld, g, "max_request_body_bytes", 0, INT64_MAX, &gw->max_request_body_bytes);
	ld_member_bool(ld, g, "forwarded_headers", &gw->forwarded_headers);
	/* below 100 ms a busy machine cuts honest clients; above a day a
	 * deadline protects nothing */
	ld_member_int(ld, g, "client_request_timeout_ms", 100, 86400000,
		      &gw->client_request_timeout_ms);
	ld_member_int(ld, g, "client_idle_timeout_ms", 100, 86400000, &gw->client_idle_timeout_ms);
	ld_member_int(ld, g, "client_body_timeout_ms", 100, 86400000, &gw->client_body_timeout_ms);
	ld_member_int(ld, g, "client_body_min_rate", 1, 1000000000, &gw->client_body_min_rate);
	v = ld_get(ld, g, "health_path", 0);
	if (v) {
		char *s;
		int secret;

		m2 = ld_push_member(ld, "health_path");
		if (ld_string(ld, v, STR_SUBST, &s, &secret) == 0) {
			if (check_local_path(ld, s, secret) == 0) {
				free(gw->health_path);
				gw->health_path = s;
			} else {
				free_secret(s);
			}
		}
		ld_pop(ld, m2);
	}
	v = ld_get(ld, g, "metrics", 0);
	if (v) {
		m2 = ld_push_member(ld, "metrics");
		parse_metrics(ld, v);
		if (gw->metrics_path && gw->health_path &&
		    strcmp(gw->metrics_path, gw->health_path) == 0) {
			size_t m3 = ld_push_member(ld, "path");

			ld_err(ld, "must differ from health_path");
			ld_pop(ld, m3);
		}
		ld_pop(ld, m2);
	}
	v = ld_get(ld, g, "counters", 0);
	if (v) {
		m2 = ld_push_member(ld, "counters");
		parse_counters(ld, v);
		ld_pop(ld, m2);
	}
out:
	ld_pop(ld, mark);
}

static void parse_tls(struct loader *ld, json_object *t, struct gw_tls *tls)
{
	static const char *const known[] = { "verify", "ca_file", "client_certificate",
		"client_key", NULL };
	static const char *const files[] = { "ca_file", "client_certificate", "client_key" };
	char **dst[] = { &tls->ca_file, &tls->client_certificate, &tls->client_key };

	if (ld_is_object(ld, t) != 0)
		return;
	ld_check_members(ld, t, known);
	ld_member_bool(ld, t, "verify", &tls->verify);
	for (size_t i = 0; i < 3; i++) {
		json_object *v = ld_get(ld, t, files[i], 0);
		size_t mark;
		char *s;
		int secret;

		if (!v)
			continue;
		mark = ld_push_member(ld, files[i]);
		if (ld_string(ld, v, STR_SUBST, &s, &secret) == 0) {
			if (check_file_name(ld, s, secret) == 0)
				*dst[i] = s;
			else
				free_secret(s);
		}
		ld_pop(ld, mark);
	}
	if (ld_present(t, "client_certificate") != ld_present(t, "client_key"))
		ld_err(ld, "'client_certificate' and 'client_key' must be given together");
}

/* A credential map (header or query) at the current path. */
static void parse_cred_map(struct loader *ld, json_object *m, int is_header, struct gw_kv **out,
			   size_t *n)
{
	size_t len;

	if (ld_is_object(ld, m) != 0)
		return;
	len = (size_t)json_object_object_length(m);
	if (len == 0)
		return;
	if (len > LD_CRED_MAX) {
		ld_err(ld, "at most %d entries", LD_CRED_MAX);
		return;
	}
	*out = calloc(len, sizeof(**out));
	if (!*out) {
		ld_err(ld, "out of memory");
		return;
	}
	json_object_object_foreach(m, name, v) {
		size_t mark = ld_push_key(ld, name);
		char *s = NULL, *nm = NULL, qn[LD_NAME_SHOWN * 4 + 8];
		int secret = 0, ok = 1;

		if (is_header && !is_token(name)) {
			ld_err(ld, "'%s' is not a valid header name",
			       shown_name(qn, sizeof(qn), name));
			ok = 0;
		} else if (!is_header && (name[0] == '\0' || strlen(name) > LD_TOKEN_MAX ||
					  has_ctl(name))) {
			ld_err(ld, "'%s' is not a valid query parameter name",
			       shown_name(qn, sizeof(qn), name));
			ok = 0;
		}
		for (size_t i = 0; ok && is_header && i < *n; i++) {
			if (strcasecmp((*out)[i].name, name) == 0) {
				ld_err(ld, "header '%s' is given twice (header names are "
				       "case-insensitive)", shown_name(qn, sizeof(qn), name));
				ok = 0;
			}
		}
		if (ld_string(ld, v, STR_SUBST, &s, &secret) == 0 && is_header &&
		    tpl_header_check(s, strlen(s)) != 0) {
			ld_err_value(ld, s, secret, "must not contain a control character "
				     "(only tab is allowed)");
			ok = 0;
		}
		if (s && ok) {
			nm = strdup(name);
			if (nm) {
				(*out)[*n].name = nm;
				(*out)[*n].value = s;
				(*out)[*n].secret = secret;
				(*n)++;
				s = NULL;
			} else {
				ld_err(ld, "out of memory");
			}
		}
		free_secret(s);
		ld_pop(ld, mark);
	}
}

static void parse_basic(struct loader *ld, json_object *b, struct gw_backend *be)
{
	static const char *const known[] = { "username", "password", NULL };
	json_object *u, *p;
	char *user = NULL, *pass = NULL;
	size_t mark;
	int secret;

	if (ld_is_object(ld, b) != 0)
		return;
	ld_check_members(ld, b, known);
	u = ld_get(ld, b, "username", 1);
	p = ld_get(ld, b, "password", 1);
	if (u) {
		mark = ld_push_member(ld, "username");
		if (ld_string(ld, u, STR_SUBST, &user, &secret) == 0 &&
		    (strchr(user, ':') || has_ctl(user))) {
			ld_err_value(ld, user, secret, "must not contain ':' or control characters");
			free_secret(user);
			user = NULL;
		}
		ld_pop(ld, mark);
	}
	if (p) {
		mark = ld_push_member(ld, "password");
		if (ld_string(ld, p, STR_SUBST, &pass, &secret) == 0 && has_ctl(pass)) {
			ld_err_value(ld, pass, secret, "must not contain control characters");
			free_secret(pass);
			pass = NULL;
		}
		ld_pop(ld, mark);
	}
	if (user && pass) {
		be->basic_username = user;
		be->basic_password = pass;
	} else {
		free_secret(user);
		free_secret(pass);
	}
}

static void parse_credentials(struct loader *ld, json_object *c, struct gw_backend *be)
{
	static const char *const known[] = { "basic", "header", "query", NULL };
	json_object *v;
	size_t mark;

	if (ld_is_object(ld, c) != 0)
		return;
	ld_check_members(ld, c, known);
	v = ld_get(ld, c, "basic", 0);
	if (v) {
		mark = ld_push_member(ld, "basic");
		parse_basic(ld, v, be);
		ld_pop(ld, mark);
	}
	v = ld_get(ld, c, "header", 0);
	if (v) {
		mark = ld_push_member(ld, "header");
		parse_cred_map(ld, v, 1, &be->cred_headers, &be->n_cred_headers);
		ld_pop(ld, mark);
	}
	v = ld_get(ld, c, "query", 0);
	if (v) {
		mark = ld_push_member(ld, "query");
		parse_cred_map(ld, v, 0, &be->cred_query, &be->n_cred_query);
		ld_pop(ld, mark);
	}
}

static void parse_backend(struct loader *ld, json_object *o, struct gw_backend *be)
{
	static const char *const known[] = { "url", "pool", "circuit_breaker", "timeout_ms",
		"connect_timeout_ms", "tls", "credentials", NULL };
	json_object *url, *v;
	size_t mark;
	int64_t t;

	if (ld_is_object(ld, o) != 0)
		return;
	ld_check_members(ld, o, known);
	url = ld_get(ld, o, "url", 0);
	if (url && ld_present(o, "pool"))
		ld_err(ld, "give either 'url' or 'pool', not both");
	else if (!url && !ld_present(o, "url") && !ld_present(o, "pool"))
		ld_err(ld, "missing required member 'url' (or 'pool')");
	/* with both, the pool is not read: its first member would become
	 * be->url, which the url below then overwrote (a leak) */
	v = url ? NULL : ld_get(ld, o, "pool", 0);
	if (v) {
		mark = ld_push_member(ld, "pool");
		products_parse_pool(ld, v, be);
		ld_pop(ld, mark);
	}
	v = ld_get(ld, o, "circuit_breaker", 0);
	if (v) {
		mark = ld_push_member(ld, "circuit_breaker");
		products_parse_breaker(ld, v, be);
		ld_pop(ld, mark);
	}
	if (url) {
		char *s;
		int secret;

		mark = ld_push_member(ld, "url");
		if (ld_string(ld, url, STR_SUBST, &s, &secret) == 0) {
			ld_check_url(ld, s, secret, &be->url);
			free_secret(s);
		}
		ld_pop(ld, mark);
	}
	t = be->timeout_ms;
	ld_member_int(ld, o, "timeout_ms", 1, LD_TIMEOUT_MAX, &t);
	be->timeout_ms = (long)t;
	t = be->connect_timeout_ms;
	ld_member_int(ld, o, "connect_timeout_ms", 1, LD_TIMEOUT_MAX, &t);
	be->connect_timeout_ms = (long)t;
	v = ld_get(ld, o, "tls", 0);
	if (v) {
		mark = ld_push_member(ld, "tls");
		parse_tls(ld, v, &be->tls);
		ld_pop(ld, mark);
	}
	v = ld_get(ld, o, "credentials", 0);
	if (v) {
		mark = ld_push_member(ld, "credentials");
		parse_credentials(ld, v, be);
		ld_pop(ld, mark);
	}
}

static int cmp_backend(const void *a, const void *b)
{
	const struct gw_backend *x = a, *y = b;

	return strcmp(x->id, y->id);
}

static void parse_backends(struct loader *ld, json_object *root)
{
	struct gateway *gw = ld->gw;
	json_object *bs = ld_get(ld, root, "backends", 0);
	size_t mark, len;

	if (!bs)
		return;
	mark = ld_push_member(ld, "backends");
	if (ld_is_object(ld, bs) != 0)
		goto out;
	len = (size_t)json_object_object_length(bs);
	if (len == 0)
		goto out;
	gw->backends = calloc(len, sizeof(*gw->backends));
	if (!gw->backends) {
		ld_err(ld, "out of memory");
		goto out;
	}
	json_object_object_foreach(bs, id, o) {
		size_t m2 = ld_push_key(ld, id);
		struct gw_backend *be = &gw->backends[gw->n_backends];

		if (!is_id(id, strlen(id)))
			ld_err(ld, "is not a valid id (1 to 80 of A-Z a-z 0-9 . _ -)");
		be->id = strdup(id);
		if (!be->id) {
			ld_err(ld, "out of memory");
			ld_pop(ld, m2);
			continue;
		}
		gw->n_backends++;
		be->timeout_ms = DEFAULT_TIMEOUT_MS;
		be->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
		be->tls.verify = 1;
		parse_backend(ld, o, be);
		ld_pop(ld, m2);
	}
	/* sorted for gw_backend_find; nothing points into the array yet */
	if (gw->n_backends)
		qsort(gw->backends, gw->n_backends, sizeof(*gw->backends), cmp_backend);
out:
	ld_pop(ld, mark);
}

/* An API path: one leading and one trailing '/' dropped; segments non-empty,
 * not "." or "..", without '?', '#', '%', '{', '}', '\', spaces or controls. */
static int check_api_path(struct loader *ld, const char *s, int secret, char **out)
{
	size_t n = strlen(s);
	const char *b = s, *p;

	*out = NULL;
	if (n > 0 && b[0] == '/') {
		b++;
		n--;
	}
	if (n > 0 && b[n - 1] == '/')
		n--;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)b[i];

		if (c <= 0x20 || c == 0x7f || strchr("?#%{}\\", c)) {
			ld_err_value(ld, s, secret, "has a character that is not allowed in an API "
				     "path");
			return -1;
		}
	}
	for (p = b; n > 0 && p <= b + n;) {
		size_t seg = strcspn(p, "/");

		if (p + seg > b + n)
			seg = (size_t)(b + n - p);
		if (seg == 0) {
			ld_err_value(ld, s, secret, "has an empty segment");
			return -1;
		}
		if (is_dot_segment(p, seg)) {
			ld_err_value(ld, s, secret, "has a '.' or '..' segment");
			return -1;
		}
		p += seg + 1;
	}
	*out = strndup(b, n);
	if (!*out) {
		ld_err(ld, "out of memory");
		return -1;
	}
	return 0;
}

/* A hostname for hostnames[]: lower case, no port, a trailing dot dropped. */
static int check_hostname(struct loader *ld, const char *s, int secret, char **out)
{
	size_t n = strlen(s);

	*out = NULL;
	if (n > 1 && s[n - 1] == '.')
		n--;
	if (!is_hostname(s, n) && !is_ipv6_literal(s, n)) {
		ld_err_value(ld, s, secret, "is not a host name (write it without scheme or "
			     "port; IPv6 in brackets)");
		return -1;
	}
	*out = strndup(s, n);
	if (!*out) {
		ld_err(ld, "out of memory");
		return -1;
	}
	lower(*out);
	return 0;
}

/* policies (global, API or operation scope), products, subscriptions: their
 * parsers live in policy/policies.c and policy/products.c (loader.h). */
static void parse_policies(struct loader *ld, json_object *obj, struct pol_scope **out)
{
	json_object *p = ld_get(ld, obj, "policies", 0);
	size_t mark;

	if (!p)
		return;
	mark = ld_push_member(ld, "policies");
	pol_parse_scope(ld, p, out);
	ld_pop(ld, mark);
}

static void parse_products(struct loader *ld, json_object *root)
{
	json_object *p = ld_get(ld, root, "products", 0);
	size_t mark;

	if (!p)
		return;
	mark = ld_push_member(ld, "products");
	products_parse(ld, p);
	ld_pop(ld, mark);
}

static void parse_subscriptions(struct loader *ld, json_object *root)
{
	json_object *p = ld_get(ld, root, "subscriptions", 0);
	size_t mark;

	if (!p)
		return;
	mark = ld_push_member(ld, "subscriptions");
	products_parse_subscriptions(ld, p);
	ld_pop(ld, mark);
}

struct id_ref {
	const char *id;
	size_t index;
};

static int cmp_id_ref(const void *a, const void *b)
{
	const struct id_ref *x = a, *y = b;
	int c = strcmp(x->id, y->id);

	if (c != 0)
		return c;
	return x->index < y->index ? -1 : x->index > y->index;
}

/* Reports "[j].id: duplicate id" for every repeated id; the current path is
 * the array's. ids[i] may be NULL (invalid, already reported). */
void ld_check_unique_ids(struct loader *ld, const char *const *ids, size_t n)
{
	struct id_ref *refs;
	size_t m = 0;

	if (n < 2)
		return;
	refs = calloc(n, sizeof(*refs));
	if (!refs) {
		ld_err(ld, "out of memory");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (ids[i]) {
			refs[m].id = ids[i];
			refs[m].index = i;
			m++;
		}
	}
	if (m)
		qsort(refs, m, sizeof(*refs), cmp_id_ref);
	for (size_t i = 1, first = 0; i < m; i++) {
		size_t mark, m2;

		if (strcmp(refs[i].id, refs[first].id) != 0) {
			first = i;
			continue;
		}
		mark = ld_push_index(ld, refs[i].index);
		m2 = ld_push_member(ld, "id");
		ld_err(ld, "duplicate id '%s' (also at index %zu)", refs[i].id, refs[first].index);
		ld_pop(ld, m2);
		ld_pop(ld, mark);
	}
	free(refs);
}

static void parse_operation(struct loader *ld, json_object *o, struct gw_operation *op)
{
	static const char *const known[] = { "id", "method", "url_template", "policies", NULL };
	json_object *v;
	size_t mark;

	if (ld_is_object(ld, o) != 0)
		return;
	ld_check_members(ld, o, known);
	v = ld_get(ld, o, "id", 1);
	if (v) {
		mark = ld_push_member(ld, "id");
		ld_id(ld, v, &op->id);
		ld_pop(ld, mark);
	}
	v = ld_get(ld, o, "method", 1);
	if (v) {
		char *s;
		int secret;

		mark = ld_push_member(ld, "method");
		if (ld_string(ld, v, STR_SUBST | STR_NO_SECRET, &s, &secret) == 0) {
			if (strcmp(s, "*") == 0 || (is_token(s) && strlen(s) <= 32)) {
				upper(s);
				op->method = s;
			} else {
				ld_err_value(ld, s, secret, "is not an HTTP method (or '*')");
				free_secret(s);
			}
		}
		ld_pop(ld, mark);
	}
	v = ld_get(ld, o, "url_template", 1);
	if (v) {
		char *s;
		int secret;

		mark = ld_push_member(ld, "url_template");
		if (ld_string(ld, v, STR_SUBST | STR_NO_SECRET, &s, &secret) == 0) {
			if (s[0] == '/') {
				op->url_template = s;
			} else {
				ld_err_value(ld, s, secret, "must start with '/'");
				free_secret(s);
			}
		}
		ld_pop(ld, mark);
	}
	parse_policies(ld, o, &op->policies);
}

static void parse_operations(struct loader *ld, json_object *ops, struct gw_api *api)
{
	const char **ids;
	size_t len;

	if (ld_is_array(ld, ops) != 0)
		return;
	len = json_object_array_length(ops);
	if (len == 0) {
		ld_err(ld, "must not be empty (leave it out to forward every request)");
		return;
	}
	api->operations = calloc(len, sizeof(*api->operations));
	ids = calloc(len, sizeof(*ids));
	if (!api->operations || !ids) {
		ld_err(ld, "out of memory");
		free(ids);
		return;
	}
	api->n_operations = len;
	for (size_t i = 0; i < len; i++) {
		size_t mark = ld_push_index(ld, i);

		parse_operation(ld, json_object_array_get_idx(ops, i), &api->operations[i]);
		ids[i] = api->operations[i].id;
		ld_pop(ld, mark);
	}
	ld_check_unique_ids(ld, ids, len);
	free(ids);
}

static void parse_subscription_key(struct loader *ld, json_object *k, struct gw_api *api)
{
	static const char *const known[] = { "header", "query", NULL };
	json_object *v;
	size_t mark;
	char *s;
	int secret;

	if (ld_is_object(ld, k) != 0)
		return;
	ld_check_members(ld, k, known);
	v = ld_get(ld, k, "header", 0);
	if (v) {
		mark = ld_push_member(ld, "header");
		if (ld_string(ld, v, STR_SUBST, &s, &secret) == 0) {
			if (is_token(s)) {
				free(api->subscription_key_header);
				api->subscription_key_header = s;
			} else {
				ld_err_value(ld, s, secret, "is not a valid header name");
				free_secret(s);
			}
		}
		ld_pop(ld, mark);
	}
	v = ld_get(ld, k, "query", 0);
	if (v) {
		mark = ld_push_member(ld, "query");
		if (ld_string(ld, v, STR_SUBST, &s, &secret) == 0) {
			if (s[0] && strlen(s) <= LD_TOKEN_MAX && !has_ctl(s) &&
			    !strpbrk(s, " &=#+%")) {
				free(api->subscription_key_query);
				api->subscription_key_query = s;
			} else {
				ld_err_value(ld, s, secret, "is not a valid query parameter name");
				free_secret(s);
			}
		}
		ld_pop(ld, mark);
	}
}

static void parse_api(struct loader *ld, json_object *o, struct gw_api *api)
{
	static const char *const known[] = { "id", "path", "hostnames", "backend",
		"subscription_required", "subscription_key", "operations", "policies", NULL };
	json_object *v;
	size_t mark;
	char *s;
	int secret;

	api->subscription_required = 1;
	api->subscription_key_header = strdup(DEFAULT_KEY_HEADER);
	api->subscription_key_query = strdup(DEFAULT_KEY_QUERY);
	if (!api->subscription_key_header || !api->subscription_key_query)
		ld_err(ld, "out of memory");
	if (ld_is_object(ld, o) != 0)
		return;
	ld_check_members(ld, o, known);
	v = ld_get(ld, o, "id", 1);
	if (v) {
		mark = ld_push_member(ld, "id");
		ld_id(ld, v, &api->id);
		ld_pop(ld, mark);
	}
	v = ld_get(ld, o, "path", 1);
	if (v) {
		mark = ld_push_member(ld, "path");
		if (ld_string(ld, v, STR_SUBST | STR_NO_SECRET, &s, &secret) == 0) {
			check_api_path(ld, s, secret, &api->path);
			free_secret(s);
		}
		ld_pop(ld, mark);
	}
	v = ld_get(ld, o, "hostnames", 0);
	if (v) {
		mark = ld_push_member(ld, "hostnames");
		if (ld_is_array(ld, v) == 0) {
			size_t len = json_object_array_length(v);

			if (len == 0)
				ld_err(ld, "must not be empty (leave it out to accept any host)");
			else if (!(api->hostnames = calloc(len, sizeof(*api->hostnames))))
				ld_err(ld, "out of memory");
			for (size_t i = 0; api->hostnames && i < len; i++) {
				size_t m2 = ld_push_index(ld, i);
				char *h;

				if (ld_string(ld, json_object_array_get_idx(v, i), STR_SUBST | STR_NO_SECRET, &s,
					      &secret) == 0) {
					if (check_hostname(ld, s, secret, &h) == 0)
						api->hostnames[api->n_hostnames++] = h;
					free_secret(s);
				}
				ld_pop(ld, m2);
			}
		}
		ld_pop(ld, mark);
	}
	v = ld_get(ld, o, "backend", 1);
	if (v) {
		mark = ld_push_member(ld, "backend");
		if (ld_id(ld, v, &s) == 0) {
			api->backend = gw_backend_find(ld->gw, s);
			if (!api->backend)
				ld_err(ld, "'%s' is not a backend", s);
			free_secret(s);
		}
		ld_pop(ld, mark);
	}
	ld_member_bool(ld, o, "subscription_required", &api->subscription_required);
	v = ld_get(ld, o, "subscription_key", 0);
	if (v) {
		mark = ld_push_member(ld, "subscription_key");
		parse_subscription_key(ld, v, api);
		ld_pop(ld, mark);
	}
	v = ld_get(ld, o, "operations", 0);
	if (v) {
		mark = ld_push_member(ld, "operations");
		parse_operations(ld, v, api);
		ld_pop(ld, mark);
	}
	parse_policies(ld, o, &api->policies);
}

static void parse_apis(struct loader *ld, json_object *root)
{
	struct gateway *gw = ld->gw;
	json_object *as = ld_get(ld, root, "apis", 0);
	const char **ids = NULL;
	size_t mark, len;

	if (!as)
		return;
	mark = ld_push_member(ld, "apis");
	if (ld_is_array(ld, as) != 0)
		goto out;
	len = json_object_array_length(as);
	if (len == 0)
		goto out;
	gw->apis = calloc(len, sizeof(*gw->apis));
	ids = calloc(len, sizeof(*ids));
	if (!gw->apis || !ids) {
		ld_err(ld, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < len; i++) {
		size_t m2 = ld_push_index(ld, i);

		gw->n_apis = i + 1;
		parse_api(ld, json_object_array_get_idx(as, i), &gw->apis[i]);
		ids[i] = gw->apis[i].id;
		ld_pop(ld, m2);
	}
	ld_check_unique_ids(ld, ids, len);
out:
	free(ids);
	ld_pop(ld, mark);
}

/* Returns 0 to go on with the sections, -1 when format or the root make that
 * pointless. */
static int parse_top(struct loader *ld, json_object *root)
{
	static const char *const known[] = { "format", "generation", "gateway", "named_values",
		"backends", "apis", "products", "subscriptions", "policies", NULL };
	json_object *v;
	size_t mark;

	if (!json_object_is_type(root, json_type_object)) {
		ld_err(ld, "the document must be a JSON object, not %s", type_name(root));
		return -1;
	}
	v = ld_get(ld, root, "format", 1);
	if (v) {
		mark = ld_push_member(ld, "format");
		if (json_object_is_type(v, json_type_int) && json_object_get_int64(v) != 1) {
			/* another format's members mean other things: stop here */
			ld_err(ld, "unsupported format %lld (this gateway reads format 1)",
			       (long long)json_object_get_int64(v));
			ld_pop(ld, mark);
			return -1;
		}
		ld_type(ld, v, json_type_int, "the integer 1");
		ld_pop(ld, mark);
	}
	ld_check_members(ld, root, known);
	v = ld_get(ld, root, "generation", 1);
	if (v) {
		mark = ld_push_member(ld, "generation");
		ld_int(ld, v, 1, INT64_MAX, &ld->gw->generation);
		ld_pop(ld, mark);
	}
	return 0;
}

/* ---- duplicate names found by json_scan -------------------------------- */

static int step_is(const struct json_scan_step *s, const char *name)
{
	return !s->is_index && s->name_len == strlen(name) && memcmp(s->name, name, s->name_len) == 0;
}

/* Is the object reached by path[0..i) one whose keys are data? Must agree with
 * the parse_* functions' ld_push_key calls. */
static int step_in_map(const struct json_scan_step *path, size_t i)
{
	if (i == 1)
		return step_is(&path[0], "named_values") || step_is(&path[0], "backends");
	if (i == 4 && step_is(&path[0], "backends") && step_is(&path[2], "credentials") &&
	    (step_is(&path[3], "header") || step_is(&path[3], "query")))
		return 1;
	/* a policy element, "...policies.SECTION[k]" (policies.c writes the
	 * policy's name as a key: inbound[0]["set-header"]) */
	if (i >= 3 && path[i - 1].is_index && !path[i - 2].is_index &&
	    step_is(&path[i - 3], "policies"))
		return 1;
	/* return-response / mock-response "headers" */
	if (i >= 5 && step_is(&path[i - 1], "headers") && path[i - 3].is_index &&
	    (step_is(&path[i - 2], "return-response") || step_is(&path[i - 2], "mock-response")) &&
	    step_is(&path[i - 5], "policies"))
		return 1;
	return 0;
}

static void on_duplicate(void *ctx, const struct json_scan_step *path, size_t n)
{
	struct loader *ld = ctx;
	size_t mark = ld->plen;

	for (size_t i = 0; i < n; i++) {
		if (path[i].is_index) {
			ld_push_index(ld, path[i].index);
			continue;
		}
		path_put_name(ld->path, sizeof(ld->path), &ld->plen, path[i].name,
			      path[i].name_len, step_in_map(path, i));
	}
	ld_err(ld, "given more than once in the same object");
	ld_pop(ld, mark);
}

/* ---- the interface ----------------------------------------------------- */

/* Zeroes the named values' strings inside the json-c tree before it is freed. */
static void wipe_named_values(json_object *root)
{
	json_object *nvs;

	if (!json_object_is_type(root, json_type_object) ||
	    !json_object_object_get_ex(root, "named_values", &nvs) ||
	    !json_object_is_type(nvs, json_type_object))
		return;
	json_object_object_foreach(nvs, name, o) {
		json_object *v;

		(void)name;
		if (json_object_is_type(o, json_type_object) &&
		    json_object_object_get_ex(o, "value", &v) &&
		    json_object_is_type(v, json_type_string)) {
			/* json-c hands out const; we own the tree and free it next */
			char *p = (char *)(uintptr_t)json_object_get_string(v);

			explicit_bzero(p, (size_t)json_object_get_string_len(v));
		}
	}
}

struct gateway *gw_load_buffer(const char *buf, size_t len, struct cfg_errors *errs)
{
	return ld_load(buf, len, errs, NULL);
}

struct gateway *ld_load(const char *buf, size_t len, struct cfg_errors *errs,
			json_object **keep_tree)
{
	struct loader ld;
	struct json_scan_error se;
	struct json_tokener *tok = NULL;
	json_object *root = NULL;
	struct gateway *gw = NULL;
	size_t first;
	int ok = 0;

	memset(&ld, 0, sizeof(ld));
	ld.errs = errs;
	if (len > GW_MAX_DOCUMENT_BYTES) {
		ld_err(&ld, "the document is larger than %u bytes", GW_MAX_DOCUMENT_BYTES);
		goto out;
	}
	if (json_scan(buf, len, GW_MAX_JSON_DEPTH, on_duplicate, &ld, &se) != 0) {
		if (strcmp(se.what, "nested too deeply") == 0)
			ld_err(&ld, "not valid JSON at line %zu, column %zu: nested deeper than %d "
			       "levels", se.line, se.column, GW_MAX_JSON_DEPTH);
		else
			ld_err(&ld, "not valid JSON at line %zu, column %zu: %s", se.line,
			       se.column, se.what);
		goto out;
	}
	/* json-c waits for more input after a top-level scalar: judge the type here
	 * (json_scan has checked the grammar, so the first byte tells) */
	first = 0;
	while (first < len && strchr(" \t\r\n", buf[first]))
		first++;
	if (first < len && buf[first] != '{') {
		ld_err(&ld, "the document must be a JSON object, not %s",
		       buf[first] == '[' ? "an array" : buf[first] == '"' ? "a string" :
		       buf[first] == 'n' ? "null" : buf[first] == 't' || buf[first] == 'f' ?
		       "a boolean" : "a number");
		goto out;
	}
	tok = json_tokener_new_ex(GW_MAX_JSON_DEPTH);
	if (!tok) {
		ld_err(&ld, "out of memory");
		goto out;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	root = json_tokener_parse_ex(tok, buf, (int)len);
	if (!root && json_tokener_get_error(tok) != json_tokener_success) {
		/* json_scan accepted it, so this is json-c's limit or memory */
		ld_err(&ld, "cannot parse the document: %s",
		       json_tokener_error_desc(json_tokener_get_error(tok)));
		goto out;
	}
	gw = calloc(1, sizeof(*gw));
	if (!gw || !(gw->health_path = strdup(DEFAULT_HEALTH_PATH))) {
		ld_err(&ld, "out of memory");
		goto out;
	}
	gw->max_request_body_bytes = DEFAULT_BODY_BYTES;
	gw->forwarded_headers = 1;
	gw->client_request_timeout_ms = GW_DEFAULT_CLIENT_REQUEST_TIMEOUT_MS;
	gw->client_idle_timeout_ms = GW_DEFAULT_CLIENT_IDLE_TIMEOUT_MS;
	gw->client_body_timeout_ms = GW_DEFAULT_CLIENT_BODY_TIMEOUT_MS;
	gw->client_body_min_rate = GW_DEFAULT_CLIENT_BODY_MIN_RATE;
	ld.gw = gw;
	if (parse_top(&ld, root) != 0)
		goto out;
	parse_named_values(&ld, root);
	parse_gateway(&ld, root);
	parse_backends(&ld, root);
	parse_apis(&ld, root);
	parse_products(&ld, root);
	parse_subscriptions(&ld, root);
	parse_policies(&ld, root, &gw->policies);
	if (ld.n_errors == 0 && pol_compile(&ld) == 0)
		products_build_keytab(&ld);
	if (ld.n_errors == 0 && route_build(gw, errs) != 0) {
		if (errs->n == 0 && errs->dropped == 0)
			ld_err(&ld, "cannot build the route table");
		goto out;
	}
	ok = ld.n_errors == 0;
	if (ok && keep_tree) {
		*keep_tree = root;
		root = NULL;
	}
out:
	if (root) {
		wipe_named_values(root);
		json_object_put(root);
	}
	if (tok)
		json_tokener_free(tok);
	if (!ok) {
		gw_free(gw);
		gw = NULL;
	}
	return gw;
}

/* Reads the whole file into *buf (len bytes, cap allocated). Returns 0, -1
 * with errno set, or 1 when it is larger than GW_MAX_DOCUMENT_BYTES. */
static int read_document(int fd, char **buf, size_t *len, size_t *cap)
{
	struct stat st;
	int flags;

	if (fstat(fd, &st) != 0)
		return -1;
	if (S_ISDIR(st.st_mode)) {
		errno = EISDIR;
		return -1;
	}
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
		return -1;
	/* st_size is only a hint: pipes and /proc report 0, files grow */
	*cap = st.st_size > 0 && (uint64_t)st.st_size <= GW_MAX_DOCUMENT_BYTES ?
		(size_t)st.st_size + 1 : 65536;
	*buf = malloc(*cap);
	if (!*buf)
		return -1;
	for (;;) {
		ssize_t r;

		if (*len == *cap) {
			size_t ncap = *cap * 2;
			char *nb;

			if (*cap > GW_MAX_DOCUMENT_BYTES)
				return 1;
			if (ncap > (size_t)GW_MAX_DOCUMENT_BYTES + 1)
				ncap = (size_t)GW_MAX_DOCUMENT_BYTES + 1;
			nb = malloc(ncap);
			if (!nb)
				return -1;
			memcpy(nb, *buf, *len);
			explicit_bzero(*buf, *cap);
			free(*buf);
			*buf = nb;
			*cap = ncap;
		}
		r = read(fd, *buf + *len, *cap - *len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			return *len > GW_MAX_DOCUMENT_BYTES ? 1 : 0;
		*len += (size_t)r;
	}
}

struct gateway *gw_load_file(const char *path, struct cfg_errors *errs)
{
	struct gateway *gw = NULL;
	char *buf = NULL, why[128];
	size_t len = 0, cap = 0;
	int fd, rc = -1;

	/* O_NONBLOCK: a FIFO nobody writes must not hang the open (the reads
	 * block again, read_document, so a pipe with a writer still works) */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd >= 0)
		rc = read_document(fd, &buf, &len, &cap);
	if (rc < 0) {
		snprintf(why, sizeof(why), "%s", strerror(errno));
		if (why[0] >= 'A' && why[0] <= 'Z')
			why[0] = (char)(why[0] - 'A' + 'a');
		cfg_error(errs, NULL, "cannot read '%s': %s", path, why);
		goto out;
	}
	if (rc > 0) {
		cfg_error(errs, NULL, "cannot read '%s': larger than %u bytes", path,
			  GW_MAX_DOCUMENT_BYTES);
		goto out;
	}
	gw = gw_load_buffer(buf, len, errs);
out:
	if (fd >= 0)
		close(fd);
	if (buf) {
		explicit_bzero(buf, cap);
		free(buf);
	}
	return gw;
}

static void free_kvs(struct gw_kv *kv, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(kv[i].name);
		free_secret(kv[i].value);
	}
	free(kv);
}

const struct gateway *gw_hold(const struct gateway *gw)
{
	if (gw)
		((struct gateway *)(uintptr_t)gw)->holds++;
	return gw;
}

void gw_free(struct gateway *gw)
{
	if (!gw)
		return;
	if (gw->holds) {
		gw->holds--;
		return;
	}
	if (gw->owns_image)
		image_release(gw->image);
	pol_free_gateway(gw);
	products_free(gw);
	route_free(gw);
	free(gw->trusted_proxies);
	free_secret(gw->health_path);
	free_secret(gw->metrics_path);
	free(gw->metrics_allow);
	free_secret(gw->counters.host);
	free_secret(gw->counters.unix_path);
	free_secret(gw->counters.password);
	free_secret(gw->counters.prefix);
	free_kvs(gw->named_values, gw->n_named_values);
	for (size_t i = 0; i < gw->n_backends; i++) {
		struct gw_backend *be = &gw->backends[i];

		free_secret(be->id);
		free_secret(be->url);
		free_secret(be->tls.ca_file);
		free_secret(be->tls.client_certificate);
		free_secret(be->tls.client_key);
		free_secret(be->basic_username);
		free_secret(be->basic_password);
		free_kvs(be->cred_headers, be->n_cred_headers);
		free_kvs(be->cred_query, be->n_cred_query);
	}
	free(gw->backends);
	for (size_t i = 0; i < gw->n_apis; i++) {
		struct gw_api *api = &gw->apis[i];

		free_secret(api->id);
		free_secret(api->path);
		for (size_t j = 0; j < api->n_hostnames; j++)
			free_secret(api->hostnames[j]);
		free(api->hostnames);
		free_secret(api->subscription_key_header);
		free_secret(api->subscription_key_query);
		for (size_t j = 0; j < api->n_operations; j++) {
			free_secret(api->operations[j].id);
			free_secret(api->operations[j].method);
			free_secret(api->operations[j].url_template);
		}
		free(api->operations);
	}
	free(gw->apis);
	free(gw);
}

const struct gw_backend *gw_backend_find(const struct gateway *gw, const char *id)
{
	size_t lo = 0, hi;

	if (!gw || !id)
		return NULL;
	hi = gw->n_backends;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(gw->backends[mid].id, id);

		if (c == 0)
			return &gw->backends[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}
