#include "sync-agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int agent_url(const struct agent *a, const char *leaf, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/gateways/%s/%s", a->conf.endpoint,
			 a->conf.gateway_id, leaf);

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int agent_file(const struct agent *a, const char *name, char *buf, size_t len)
{
	const char *path = a->conf.config_path, *slash = strrchr(path, '/');
	int n;

	if (!slash)
		n = snprintf(buf, len, "%s", name);
	else
		n = snprintf(buf, len, "%.*s/%s", slash == path ? 0 : (int)(slash - path), path,
			     name);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

void agent_rfc3339(time_t t, char *buf, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
