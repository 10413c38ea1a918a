#include "sync-agent/state.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/atomicfile.h"
#include "common/fileread.h"
#include "common/log.h"
#include "policy/gateway.h"
#include "policy/image.h"
#include "sync-agent/verify.h"

#define STATE_FILE_MAX (64 * 1024)
#define STATE_PATH_MAX 4096

static int state_path(const struct agent *a, const char *name, char *buf, size_t len)
{
	return agent_file(a, name, buf, len);
}

int state_lock(const struct agent *a, char *err, size_t errlen)
{
	char path[STATE_PATH_MAX];
	struct stat st;
	int fd;

	if (state_path(a, "sync.lock", path, sizeof(path)) < 0) {
		snprintf(err, errlen, "'config_path' is too long");
		return -1;
	}
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open '%s': %s", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			snprintf(err, errlen, "another agent holds '%s'", path);
		else
			snprintf(err, errlen, "cannot lock '%s': %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	/* the app refuses a configuration whose directory others may write:
	 * say so where the admin looks first */
	if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "'%s' is not a regular file", path);
		close(fd);
		return -1;
	}
	if (state_path(a, ".", path, sizeof(path)) == 0 && stat(path, &st) == 0 &&
	    (st.st_mode & (S_IWGRP | S_IWOTH)))
		log_warn("'%s' is group- or world-writable (mode %04o): hostgate-fcgi refuses "
			 "a configuration there (make it 0750, the web server's group)", path,
			 (unsigned)(st.st_mode & 07777));
	return fd;
}

void state_clean(const struct agent *a)
{
	static const char *const names[] = { "instance-id", "sync-status.json", "sync-state.json",
					      "apim-keys.json" };
	char path[STATE_PATH_MAX];

	atomicfile_clean(a->conf.config_path);
	/* the image's, and the image a killed install staged (sync.c) */
	if (snprintf(path, sizeof(path), "%s%s", a->conf.config_path, IMAGE_SUFFIX) <
	    (int)sizeof(path))
		atomicfile_clean(path);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (state_path(a, names[i], path, sizeof(path)) == 0)
			atomicfile_clean(path);
	}
}

static int is_hex_id(const char *s, size_t n)
{
	if (n != AGENT_INSTANCE_LEN)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	}
	return 1;
}

int state_instance_id(struct agent *a, char *err, size_t errlen)
{
	char path[STATE_PATH_MAX], line[AGENT_INSTANCE_LEN + 2];
	unsigned char rnd[AGENT_INSTANCE_LEN / 2];
	const char *step = "";
	char *buf = NULL;
	size_t len = 0;

	if (state_path(a, "instance-id", path, sizeof(path)) < 0) {
		snprintf(err, errlen, "'config_path' is too long");
		return -1;
	}
	if (file_read(path, 256, &buf, &len) == 0) {
		size_t n = len;

		if (n > 0 && buf[n - 1] == '\n')
			n--;
		if (is_hex_id(buf, n)) {
			memcpy(a->instance_id, buf, AGENT_INSTANCE_LEN);
			a->instance_id[AGENT_INSTANCE_LEN] = '\0';
			free(buf);
			return 0;
		}
		log_warn("'%s' does not hold 32 hex digits: making a new instance id", path);
		free(buf);
	} else if (errno != ENOENT) {
		snprintf(err, errlen, "cannot read '%s': %s", path, strerror(errno));
		return -1;
	}
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		snprintf(err, errlen, "cannot get random bytes: %s", strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(a->instance_id + 2 * i, 3, "%02x", rnd[i]);
	snprintf(line, sizeof(line), "%s\n", a->instance_id);
	if (atomicfile_replace(path, line, strlen(line), 0644, ATOMICFILE_DIR_GROUP, &step) < 0) {
		snprintf(err, errlen, "cannot write '%s': %s: %s", path, step, strerror(errno));
		return -1;
	}
	return 0;
}

/* Parses "YYYY-MM-DDTHH:MM:SSZ". Returns the time or 0. */
static time_t parse_rfc3339(const char *s)
{
	struct tm tm;
	int y, mo, d, h, mi, sec;
	char z = 0;

	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%c", &y, &mo, &d, &h, &mi, &sec, &z) != 7 ||
	    z != 'Z')
		return 0;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	return timegm(&tm);
}

/* Parses a small JSON file into an object. Returns it (json_object_put) or NULL. */
static struct json_object *read_json(const char *path)
{
	struct json_object *obj = NULL;
	struct json_tokener *tok;
	char *buf = NULL;
	size_t len = 0;

	if (file_read(path, STATE_FILE_MAX, &buf, &len) < 0)
		return NULL;
	tok = json_tokener_new_ex(8);
	if (tok) {
		obj = json_tokener_parse_ex(tok, buf, (int)len);
		if (json_tokener_get_error(tok) != json_tokener_success ||
		    !json_object_is_type(obj, json_type_object)) {
			json_object_put(obj);
			obj = NULL;
		}
		json_tokener_free(tok);
	}
	free(buf);
	return obj;
}

static int hex_to_bytes(const char *hex, unsigned char *out, size_t n)
{
	if (strlen(hex) != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned v = 0;

		for (int j = 0; j < 2; j++) {
			char c = hex[2 * i + (size_t)j];

			v <<= 4;
			if (c >= '0' && c <= '9')
				v |= (unsigned)(c - '0');
			else if (c >= 'a' && c <= 'f')
				v |= (unsigned)(c - 'a' + 10);
			else
				return -1;
		}
		out[i] = (unsigned char)v;
	}
	return 0;
}

/* The generation of the installed bytes, by parsing them. Returns 0 or -1. */
static int installed_generation(const struct agent *a, const char *buf, size_t len,
				int64_t *gen)
{
	struct cfg_errors errs = CFG_ERRORS_INIT;
	struct gateway *gw;

	gw = gw_load_buffer(buf, len, &errs);
	if (!gw) {
		log_warn("the installed '%s' does not load (%s): any valid document may "
			 "replace it", a->conf.config_path, errs.n ? errs.msg[0] : "no detail");
		cfg_errors_release(&errs);
		return -1;
	}
	*gen = gw->generation;
	gw_free(gw);
	cfg_errors_release(&errs);
	return 0;
}

void state_load(struct agent *a)
{
	char path[STATE_PATH_MAX];
	struct json_object *st, *v;
	char *buf = NULL;
	size_t len = 0;
	unsigned char saved_sha[32];
	int have_saved = 0;
	int64_t saved_gen = 0;
	const char *saved_etag = "";

	a->installed = 0;
	a->etag[0] = '\0';
	a->last_success = 0;
	if (state_path(a, "sync-status.json", path, sizeof(path)) == 0) {
		st = read_json(path);
		if (st && json_object_object_get_ex(st, "last_success", &v) &&
		    json_object_is_type(v, json_type_string))
			a->last_success = parse_rfc3339(json_object_get_string(v));
		json_object_put(st);
	}
	if (file_read(a->conf.config_path, GW_MAX_DOCUMENT_BYTES, &buf, &len) < 0) {
		if (errno != ENOENT)
			log_warn("cannot read the installed '%s': %s", a->conf.config_path,
				 strerror(errno));
		return;
	}
	if (verify_sha256(buf, len, a->sha256) < 0)
		goto out;
	st = NULL;
	if (state_path(a, "sync-state.json", path, sizeof(path)) == 0)
		st = read_json(path);
	if (st && json_object_object_get_ex(st, "sha256", &v) &&
	    json_object_is_type(v, json_type_string) &&
	    hex_to_bytes(json_object_get_string(v), saved_sha, sizeof(saved_sha)) == 0 &&
	    json_object_object_get_ex(st, "generation", &v) &&
	    json_object_is_type(v, json_type_int)) {
		saved_gen = json_object_get_int64(v);
		have_saved = memcmp(saved_sha, a->sha256, sizeof(saved_sha)) == 0;
		if (json_object_object_get_ex(st, "etag", &v) &&
		    json_object_is_type(v, json_type_string))
			saved_etag = json_object_get_string(v);
	}
	if (have_saved) {
		a->generation = saved_gen;
		snprintf(a->etag, sizeof(a->etag), "%s", saved_etag);
		a->installed = 1;
	} else if (installed_generation(a, buf, len, &a->generation) == 0) {
		a->installed = 1;	/* changed by hand: its ETag is unknown */
	}
	json_object_put(st);
out:
	free(buf);
}

/* Writes obj to name (beside config_path) atomically. Returns 0 or -1 (logged). */
static int write_json(const struct agent *a, const char *name, struct json_object *obj,
		      mode_t mode)
{
	char path[STATE_PATH_MAX];
	const char *text, *step = "";
	size_t len = 0;
	char *line;
	int rc = -1;

	if (state_path(a, name, path, sizeof(path)) < 0)
		return -1;
	text = json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN |
						 JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	if (!text)
		return -1;
	line = malloc(len + 2);
	if (!line)
		return -1;
	memcpy(line, text, len);
	line[len] = '\n';
	if (atomicfile_replace(path, line, len + 1, mode, ATOMICFILE_DIR_GROUP, &step) < 0)
		log_warn("cannot write '%s': %s: %s", path, step, strerror(errno));
	else
		rc = 0;
	free(line);
	return rc;
}

int state_save(const struct agent *a)
{
	struct json_object *obj = json_object_new_object();
	char hex[65];
	int rc;

	if (!obj)
		return -1;
	for (size_t i = 0; i < sizeof(a->sha256); i++)
		snprintf(hex + 2 * i, 3, "%02x", a->sha256[i]);
	json_object_object_add(obj, "etag", a->etag[0] ? json_object_new_string(a->etag) : NULL);
	json_object_object_add(obj, "sha256", a->installed ? json_object_new_string(hex) : NULL);
	json_object_object_add(obj, "generation",
			       a->installed ? json_object_new_int64(a->generation) : NULL);
	rc = write_json(a, "sync-state.json", obj, 0600);
	json_object_put(obj);
	return rc;
}

int state_write_status(const struct agent *a, time_t now, int ok)
{
	struct json_object *obj = json_object_new_object();
	char t[32], ls[32];
	int rc;

	if (!obj)
		return -1;
	agent_rfc3339(now, t, sizeof(t));
	json_object_object_add(obj, "time", json_object_new_string(t));
	json_object_object_add(obj, "result", json_object_new_string(ok ? "ok" : "error"));
	json_object_object_add(obj, "error", ok || !a->last_error[0] ? NULL :
			       json_object_new_string(a->last_error));
	json_object_object_add(obj, "generation",
			       a->installed ? json_object_new_int64(a->generation) : NULL);
	json_object_object_add(obj, "etag", a->installed && a->etag[0] ?
			       json_object_new_string(a->etag) : NULL);
	json_object_object_add(obj, "interval_s", json_object_new_int64(a->conf.interval_s));
	if (a->last_success) {
		agent_rfc3339(a->last_success, ls, sizeof(ls));
		json_object_object_add(obj, "last_success", json_object_new_string(ls));
	} else {
		json_object_object_add(obj, "last_success", NULL);
	}
	/* the app's health path reads it as the web server's group */
	rc = write_json(a, "sync-status.json", obj, 0640);
	json_object_put(obj);
	return rc;
}
