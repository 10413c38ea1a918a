#include "sync-agent/agentconf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/paths.h"

#define AGENTCONF_FILE_MAX (64 * 1024)
#define AGENTCONF_VALUE_MAX 4096

enum key_type { KEY_STRING, KEY_BOOL, KEY_INT, KEY_LOG };

#define KEY_BIT_REPORT (1u << 2)
#define KEY_BIT_INTERVAL (1u << 9)

struct key_def {
	const char *name;
	enum key_type type;
	size_t offset;		/* of the char * / int / long member */
	long min, max;		/* KEY_INT */
};

#define KEY(n, t, m, lo, hi) { n, t, offsetof(struct agent_conf, m), lo, hi }
static const struct key_def key_defs[] = {
	KEY("endpoint", KEY_STRING, endpoint, 0, 0),
	KEY("allow_insecure", KEY_BOOL, allow_insecure, 0, 0),
	KEY("report", KEY_BOOL, report, 0, 0),
	KEY("log", KEY_LOG, log_syslog, 0, 0),
	KEY("gateway_id", KEY_STRING, gateway_id, 0, 0),
	KEY("token_file", KEY_STRING, token_file, 0, 0),
	KEY("public_key_file", KEY_STRING, public_key_file, 0, 0),
	KEY("config_path", KEY_STRING, config_path, 0, 0),
	KEY("state_dir", KEY_STRING, state_dir, 0, 0),
	KEY("interval_s", KEY_INT, interval_s, 1, 86400),
	KEY("heartbeat_s", KEY_INT, heartbeat_s, 1, 86400),
	KEY("ca_file", KEY_STRING, ca_file, 0, 0),
	/* source = azure-apim (docs/azure-apim.md) */
	KEY("source", KEY_STRING, source_name, 0, 0),
	KEY("apim_service", KEY_STRING, apim_service, 0, 0),
	KEY("apim_gateway", KEY_STRING, apim_gateway, 0, 0),
	KEY("azure_tenant", KEY_STRING, azure_tenant, 0, 0),
	KEY("azure_client_id", KEY_STRING, azure_client_id, 0, 0),
	KEY("azure_client_secret_file", KEY_STRING, azure_client_secret_file, 0, 0),
	KEY("arm_endpoint", KEY_STRING, arm_endpoint, 0, 0),
	KEY("azure_authority", KEY_STRING, azure_authority, 0, 0),
	KEY("arm_api_version", KEY_STRING, arm_api_version, 0, 0),
	KEY("gateway_file", KEY_STRING, gateway_file, 0, 0),
	KEY("arm_reads_per_s", KEY_INT, arm_reads_per_s, 0, 1000),
};
#define N_KEYS (sizeof(key_defs) / sizeof(key_defs[0]))

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* Parses a decimal integer in [min, max]. Returns 0 or -1. */
static int parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	if (*s == '\0' || *s == '+' || *s == ' ')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Reads the whole of path (at most AGENTCONF_FILE_MAX bytes) into a new
 * NUL-terminated buffer. Returns it, or NULL with errno set. */
static char *read_small_file(const char *path, size_t *len)
{
	char *buf = NULL;
	size_t n = 0;
	int fd;

	struct stat st;

	/* no link followed, no FIFO waited on (a regular file reads the same) */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0)
		goto fail;
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		goto fail;
	}
	buf = malloc(AGENTCONF_FILE_MAX + 1);
	if (!buf)
		goto fail;
	for (;;) {
		ssize_t r = read(fd, buf + n, AGENTCONF_FILE_MAX + 1 - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			goto fail;
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > AGENTCONF_FILE_MAX) {
			errno = EFBIG;
			goto fail;
		}
	}
	close(fd);
	buf[n] = '\0';
	*len = n;
	return buf;
fail:
	{
		int saved = errno;

		free(buf);
		close(fd);
		errno = saved;
	}
	return NULL;
}

static int valid_gateway_id(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 80 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

/* Reads "source" into conf->source. Returns 0 or -1. */
static int S_source(struct agent_conf *conf, char *err, size_t errlen)
{
	if (!conf->source_name || strcmp(conf->source_name, "hostgate") == 0) {
		conf->source = AGENTCONF_SRC_HOSTGATE;
	} else if (strcmp(conf->source_name, "azure-apim") == 0) {
		conf->source = AGENTCONF_SRC_AZURE_APIM;
	} else {
		set_err(err, errlen, "'%s': 'source' must be hostgate or azure-apim, not '%s'",
			conf->path, conf->source_name);
		return -1;
	}
	if (conf->source == AGENTCONF_SRC_HOSTGATE) {
		const char *apim_only[] = { conf->apim_service, conf->apim_gateway,
			conf->azure_tenant, conf->azure_client_id, conf->azure_client_secret_file,
			conf->arm_endpoint, conf->azure_authority, conf->arm_api_version,
			conf->gateway_file };

		for (size_t i = 0; i < sizeof(apim_only) / sizeof(apim_only[0]); i++) {
			if (apim_only[i]) {
				set_err(err, errlen, "'%s': Azure keys (apim_*, azure_*, arm_*, "
					"gateway_file) need 'source = azure-apim'", conf->path);
				return -1;
			}
		}
	}
	return 0;
}

/* 1 when s is 1 to max of A-Z a-z 0-9 and the characters in extra. */
static int S_is_name(const char *s, size_t max, const char *extra)
{
	size_t n = strlen(s);

	if (n < 1 || n > max)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || (c != '\0' && strchr(extra, c))))
			return 0;
	}
	return 1;
}

/* Checks an Azure base URL (arm_endpoint, azure_authority), drops trailing
 * slashes, or sets *slot to dflt. Returns 0 or -1. */
static int S_azure_url(struct agent_conf *conf, char **slot, const char *key, const char *dflt,
		       char *err, size_t errlen)
{
	size_t n;

	if (!*slot) {
		*slot = strdup(dflt);
		if (!*slot) {
			set_err(err, errlen, "out of memory");
			return -1;
		}
		return 0;
	}
	n = strlen(*slot);
	while (n > 0 && (*slot)[n - 1] == '/')
		(*slot)[--n] = '\0';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)(*slot)[i];

		if (c <= ' ' || c >= 0x7f || c == '?' || c == '#') {
			set_err(err, errlen, "'%s': '%s' must not contain spaces, control "
				"characters, '?' or '#'", conf->path, key);
			return -1;
		}
	}
	if (strncmp(*slot, "https://", 8) == 0 && n > 8)
		return 0;
	if (strncmp(*slot, "http://", 7) == 0 && n > 7 && conf->allow_insecure)
		return 0;
	set_err(err, errlen, "'%s': '%s' must start with https:// (http:// only with "
		"'allow_insecure = true', for tests)", conf->path, key);
	return -1;
}

/* 1 when id is /subscriptions/S/resourceGroups/G/providers/Microsoft.ApiManagement/service/N
 * (the case of the fixed segments as ARM accepts it: any). */
static int S_is_service_id(const char *id)
{
	static const char *const fixed[] = { "subscriptions", "resourceGroups", "providers",
		"service" };
	char buf[AGENTCONF_VALUE_MAX + 1];
	char *seg[8], *p, *save = NULL;
	size_t n = 0;

	if (strlen(id) > AGENTCONF_VALUE_MAX || id[0] != '/')
		return 0;
	memcpy(buf, id, strlen(id) + 1);
	for (p = strtok_r(buf, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
		if (n == 8)
			return 0;
		seg[n++] = p;
	}
	if (n != 8 || strcasecmp(seg[0], fixed[0]) != 0 || strcasecmp(seg[2], fixed[1]) != 0 ||
	    strcasecmp(seg[4], fixed[2]) != 0 ||
	    strcasecmp(seg[5], "Microsoft.ApiManagement") != 0 ||
	    strcasecmp(seg[6], fixed[3]) != 0)
		return 0;
	return S_is_name(seg[1], 64, "-") && S_is_name(seg[3], 90, "-_.()") &&
	       S_is_name(seg[7], 50, "-");
}

/* The file locations app and agent share, when the file does not set them. */
static int S_finish_paths(struct agent_conf *conf, char *err, size_t errlen)
{
	if (!conf->config_path)
		conf->config_path = strdup(HOSTGATE_CONFIG_DEFAULT);
	if (!conf->state_dir)
		conf->state_dir = strdup(HOSTGATE_STATE_DIR_DEFAULT);
	if (!conf->config_path || !conf->state_dir) {
		set_err(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

/* finish() for source = azure-apim. Returns 0 or -1. */
static int S_finish_apim(struct agent_conf *conf, unsigned seen, char *err, size_t errlen)
{
	const char *missing = NULL, *refused = NULL;

	if (conf->endpoint)
		refused = "endpoint";
	else if (conf->token_file)
		refused = "token_file";
	else if (conf->public_key_file)
		refused = "public_key_file";
	else if (seen & KEY_BIT_REPORT)
		refused = "report";
	if (refused) {
		set_err(err, errlen, "'%s': '%s' does not apply with 'source = azure-apim' "
			"(docs/azure-apim.md)", conf->path, refused);
		return -1;
	}
	if (!conf->apim_service)
		missing = "apim_service";
	else if (!conf->apim_gateway)
		missing = "apim_gateway";
	else if (!conf->azure_tenant)
		missing = "azure_tenant";
	else if (!conf->azure_client_id)
		missing = "azure_client_id";
	else if (!conf->azure_client_secret_file)
		missing = "azure_client_secret_file";
	if (missing) {
		set_err(err, errlen, "'%s': '%s' is required with 'source = azure-apim'",
			conf->path, missing);
		return -1;
	}
	if (!S_is_service_id(conf->apim_service)) {
		set_err(err, errlen, "'%s': 'apim_service' must be /subscriptions/ID/"
			"resourceGroups/GROUP/providers/Microsoft.ApiManagement/service/NAME",
			conf->path);
		return -1;
	}
	if (!S_is_name(conf->apim_gateway, 80, "-_.")) {
		set_err(err, errlen, "'%s': 'apim_gateway' must be 1 to 80 of A-Z a-z 0-9 . _ -",
			conf->path);
		return -1;
	}
	if (!S_is_name(conf->azure_tenant, 128, "-.") ||
	    !S_is_name(conf->azure_client_id, 128, "-")) {
		set_err(err, errlen, "'%s': 'azure_tenant' and 'azure_client_id' must be a GUID "
			"(or, for the tenant, its domain name)", conf->path);
		return -1;
	}
	if (conf->arm_api_version && !S_is_name(conf->arm_api_version, 32, "-")) {
		set_err(err, errlen, "'%s': 'arm_api_version' must look like 2022-08-01",
			conf->path);
		return -1;
	}
	if (!conf->arm_api_version)
		conf->arm_api_version = strdup("2022-08-01");
	if (!conf->arm_api_version) {
		set_err(err, errlen, "out of memory");
		return -1;
	}
	if (S_azure_url(conf, &conf->arm_endpoint, "arm_endpoint",
			"https://management.azure.com", err, errlen) < 0 ||
	    S_azure_url(conf, &conf->azure_authority, "azure_authority",
			"https://login.microsoftonline.com", err, errlen) < 0)
		return -1;
	if (!conf->gateway_id)
		conf->gateway_id = strdup(conf->apim_gateway);
	if (!(seen & KEY_BIT_INTERVAL))
		conf->interval_s = 300;
	conf->report = 0;
	if (!conf->gateway_id || !valid_gateway_id(conf->gateway_id)) {
		set_err(err, errlen, "'%s': 'gateway_id' must be 1 to 80 of A-Z a-z 0-9 . _ -",
			conf->path);
		return -1;
	}
	return S_finish_paths(conf, err, errlen);
}

/* Checks the parsed values together and fills in the derived ones. */
static int finish(struct agent_conf *conf, unsigned seen, char *err, size_t errlen)
{
	const char *missing = NULL;
	int report_set = (seen & KEY_BIT_REPORT) != 0;
	size_t n;

	if (S_source(conf, err, errlen) < 0)
		return -1;
	if (conf->source == AGENTCONF_SRC_AZURE_APIM)
		return S_finish_apim(conf, seen, err, errlen);
	if (!conf->endpoint)
		missing = "endpoint";
	else if (!conf->gateway_id)
		missing = "gateway_id";
	else if (!conf->token_file)
		missing = "token_file";
	if (missing) {
		set_err(err, errlen, "'%s': '%s' is required", conf->path, missing);
		return -1;
	}
	n = strlen(conf->endpoint);
	while (n > 0 && conf->endpoint[n - 1] == '/')
		conf->endpoint[--n] = '\0';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)conf->endpoint[i];

		if (c <= ' ' || c >= 0x7f || c == '?' || c == '#') {
			set_err(err, errlen, "'%s': 'endpoint' must not contain spaces, control "
				"characters, '?' or '#'", conf->path);
			return -1;
		}
	}
	if (strncmp(conf->endpoint, "https://", 8) == 0 && n > 8) {
		conf->scheme = AGENTCONF_HTTPS;
	} else if (strncmp(conf->endpoint, "http://", 7) == 0 && n > 7) {
		conf->scheme = AGENTCONF_HTTP;
		if (!conf->allow_insecure) {
			set_err(err, errlen, "'%s': the endpoint '%s' is plain http: use https, "
				"or set 'allow_insecure = true' (tests and loopback only)",
				conf->path, conf->endpoint);
			return -1;
		}
	} else if (strncmp(conf->endpoint, "file://", 7) == 0) {
		const char *root = conf->endpoint + 7;

		conf->scheme = AGENTCONF_FILE;
		if (strncmp(root, "localhost/", 10) == 0)
			root += 9;
		if (root[0] != '/') {
			set_err(err, errlen, "'%s': the endpoint '%s' must be file:///absolute/path",
				conf->path, conf->endpoint);
			return -1;
		}
		conf->file_root = strdup(root);
		if (!conf->file_root) {
			set_err(err, errlen, "out of memory");
			return -1;
		}
	} else {
		set_err(err, errlen, "'%s': the endpoint '%s' must start with https://, "
			"http:// or file://", conf->path, conf->endpoint);
		return -1;
	}
	if (!report_set)
		conf->report = conf->scheme != AGENTCONF_FILE;
	if (conf->report && conf->scheme == AGENTCONF_FILE) {
		set_err(err, errlen, "'%s': 'report = true' needs an http or https endpoint",
			conf->path);
		return -1;
	}
	if (!valid_gateway_id(conf->gateway_id)) {
		set_err(err, errlen, "'%s': 'gateway_id' must be 1 to 80 of A-Z a-z 0-9 . _ -",
			conf->path);
		return -1;
	}
	return S_finish_paths(conf, err, errlen);
}

/* Applies one "key = value" line. Returns 0 or -1. */
static int apply_line(struct agent_conf *conf, unsigned *seen, int lineno, const char *key,
		      const char *value, char *err, size_t errlen)
{
	const struct key_def *def = NULL;
	size_t i;

	for (i = 0; i < N_KEYS; i++) {
		if (strcmp(key_defs[i].name, key) == 0) {
			def = &key_defs[i];
			break;
		}
	}
	if (!def) {
		set_err(err, errlen, "'%s': line %d: unknown key '%s'", conf->path, lineno, key);
		return -1;
	}
	if (*seen & (1u << i)) {
		set_err(err, errlen, "'%s': line %d: '%s' is given twice", conf->path, lineno, key);
		return -1;
	}
	*seen |= 1u << i;
	if (*value == '\0') {
		set_err(err, errlen, "'%s': line %d: '%s' needs a value", conf->path, lineno, key);
		return -1;
	}
	switch (def->type) {
	case KEY_STRING: {
		char **slot = (char **)(void *)((char *)conf + def->offset);

		*slot = strdup(value);
		if (!*slot) {
			set_err(err, errlen, "out of memory");
			return -1;
		}
		return 0;
	}
	case KEY_BOOL: {
		int *slot = (int *)(void *)((char *)conf + def->offset);

		if (strcmp(value, "true") == 0) {
			*slot = 1;
		} else if (strcmp(value, "false") == 0) {
			*slot = 0;
		} else {
			set_err(err, errlen, "'%s': line %d: '%s' must be true or false, not '%s'",
				conf->path, lineno, key, value);
			return -1;
		}
		return 0;
	}
	case KEY_INT: {
		long *slot = (long *)(void *)((char *)conf + def->offset);

		if (parse_long(value, def->min, def->max, slot) < 0) {
			set_err(err, errlen, "'%s': line %d: '%s' must be an integer from %ld "
				"to %ld, not '%s'", conf->path, lineno, key, def->min, def->max,
				value);
			return -1;
		}
		return 0;
	}
	case KEY_LOG:
		if (strcmp(value, "syslog") == 0) {
			conf->log_syslog = 1;
		} else if (strcmp(value, "stderr") == 0) {
			conf->log_syslog = 0;
		} else {
			set_err(err, errlen, "'%s': line %d: 'log' must be stderr or syslog, "
				"not '%s'", conf->path, lineno, value);
			return -1;
		}
		return 0;
	}
	return -1;
}

int agentconf_load(struct agent_conf *conf, const char *path, char *err, size_t errlen)
{
	char *buf = NULL, *line;
	size_t len = 0;
	unsigned seen = 0;
	int lineno = 0, rc = -1;

	memset(conf, 0, sizeof(*conf));
	conf->interval_s = 10;
	conf->heartbeat_s = 60;
	conf->arm_reads_per_s = 10;
	conf->path = strdup(path);
	if (!conf->path) {
		set_err(err, errlen, "out of memory");
		goto out;
	}
	buf = read_small_file(path, &len);
	if (!buf) {
		set_err(err, errlen, "cannot read '%s': %s", path,
			errno == EFBIG ? "larger than 64 KiB" : strerror(errno));
		goto out;
	}
	if (memchr(buf, '\0', len)) {
		set_err(err, errlen, "'%s': holds a NUL byte", path);
		goto out;
	}
	line = buf;
	while (line < buf + len) {
		char *nl = strchr(line, '\n');
		char *end = nl ? nl : buf + len;
		char *eq, *k, *kend, *v, *vend;

		*end = '\0';
		lineno++;
		if ((size_t)(end - line) > AGENTCONF_VALUE_MAX) {
			set_err(err, errlen, "'%s': line %d: longer than %d characters", path,
				lineno, AGENTCONF_VALUE_MAX);
			goto out;
		}
		k = line;
		line = end + 1;
		while (is_space(*k))
			k++;
		if (*k == '\0' || *k == '#')
			continue;
		eq = strchr(k, '=');
		if (!eq) {
			set_err(err, errlen, "'%s': line %d: expected 'key = value'", path, lineno);
			goto out;
		}
		kend = eq;
		while (kend > k && is_space(kend[-1]))
			kend--;
		*kend = '\0';
		v = eq + 1;
		while (is_space(*v))
			v++;
		vend = end;
		while (vend > v && is_space(vend[-1]))
			vend--;
		*vend = '\0';
		if (*k == '\0') {
			set_err(err, errlen, "'%s': line %d: expected 'key = value'", path, lineno);
			goto out;
		}
		if (apply_line(conf, &seen, lineno, k, v, err, errlen) < 0)
			goto out;
	}
	if (finish(conf, seen, err, errlen) < 0)
		goto out;
	rc = 0;
out:
	free(buf);
	return rc;
}

/* Reads a secret of at most AGENTCONF_TOKEN_MAX bytes from path (the value of
 * key) into buf (AGENTCONF_TOKEN_MAX + 1 bytes): a regular file its group and
 * others cannot read, no link followed, one trailing newline dropped, no space
 * or control character. Returns 0, or -1 with buf zeroed. */
static int S_read_secret(const char *path, const char *key, const char *what, char *buf,
			 size_t *len, char *err, size_t errlen)
{
	struct stat st;
	size_t n = 0;
	int fd, rc = -1;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		set_err(err, errlen, "cannot open '%s' '%s': %s", key, path,
			strerror(errno));
		return -1;
	}
	/* fstat on the opened descriptor: no window between the check and the read */
	if (fstat(fd, &st) < 0) {
		set_err(err, errlen, "cannot stat '%s': %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		set_err(err, errlen, "'%s' is not a regular file", path);
		goto out;
	}
	if (st.st_mode & (S_IRGRP | S_IROTH)) {
		set_err(err, errlen, "'%s' is readable by its group or others (mode %04o): "
			"chmod 0600 it", path, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	for (;;) {
		ssize_t r = read(fd, buf + n, AGENTCONF_TOKEN_MAX - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			set_err(err, errlen, "cannot read '%s': %s", path,
				strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == AGENTCONF_TOKEN_MAX) {
			char extra;

			if (read(fd, &extra, 1) > 0) {
				set_err(err, errlen, "'%s': the %s is longer than %d bytes",
					path, what, AGENTCONF_TOKEN_MAX);
				goto out;
			}
			break;
		}
	}
	if (n > 0 && buf[n - 1] == '\n')
		n--;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	if (n == 0) {
		set_err(err, errlen, "'%s' holds no %s", path, what);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)buf[i];

		if (c < 0x21 || c == 0x7f) {
			set_err(err, errlen, "'%s': the %s holds a space or control character",
				path, what);
			goto out;
		}
	}
	*len = n;
	rc = 0;
out:
	if (rc < 0) {
		explicit_bzero(buf, (size_t)(AGENTCONF_TOKEN_MAX + 1));
		*len = 0;
	}
	close(fd);
	return rc;
}

int agentconf_read_token(struct agent_conf *conf, char *err, size_t errlen)
{
	return S_read_secret(conf->token_file, "token_file", "token", conf->token, &conf->token_len, err,
			     errlen);
}

int agentconf_read_client_secret(struct agent_conf *conf, char *err, size_t errlen)
{
	return S_read_secret(conf->azure_client_secret_file, "azure_client_secret_file",
			     "client secret", conf->client_secret, &conf->client_secret_len, err, errlen);
}

void agentconf_release(struct agent_conf *conf)
{
	explicit_bzero(conf->token, sizeof(conf->token));
	conf->token_len = 0;
	free(conf->path);
	free(conf->endpoint);
	free(conf->file_root);
	free(conf->gateway_id);
	free(conf->token_file);
	free(conf->public_key_file);
	free(conf->config_path);
	free(conf->state_dir);
	free(conf->ca_file);
	explicit_bzero(conf->client_secret, sizeof(conf->client_secret));
	free(conf->source_name);
	free(conf->apim_service);
	free(conf->apim_gateway);
	free(conf->azure_tenant);
	free(conf->azure_client_id);
	free(conf->azure_client_secret_file);
	free(conf->arm_endpoint);
	free(conf->azure_authority);
	free(conf->arm_api_version);
	free(conf->gateway_file);
	memset(conf, 0, sizeof(*conf));
}
