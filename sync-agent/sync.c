#include "sync-agent/sync.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/atomicfile.h"
#include "common/log.h"
#include "policy/gateway.h"
#include "sync-agent/state.h"
#include "sync-agent/verify.h"

#define ERRORS_LOGGED 20	/* validation errors logged one per line */

static enum sync_result fail(struct agent *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static enum sync_result fail(struct agent *a, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(a->last_error, sizeof(a->last_error), fmt, ap);
	va_end(ap);
	log_err("%s", a->last_error);
	return SYNC_FAILED;
}

/* Finds the signature line: the header's, else the .sig file's. Returns 0 with
 * line filled, or -1 (a->last_error set, or *stopped). */
static int get_signature(struct agent *a, const struct fetch_response *doc, char *line,
			 size_t len, int *stopped)
{
	struct fetch_response sig = FETCH_RESPONSE_INIT;
	char url[AGENT_URL_MAX];
	int rc = -1;

	if (doc->signature[0]) {
		snprintf(line, len, "%s", doc->signature);
		return 0;
	}
	if (agent_url(a, "configuration.sig", url, sizeof(url)) < 0) {
		fail(a, "the endpoint URL is too long");
		return -1;
	}
	if (fetch_get(&a->fetch, url, NULL, FETCH_SIG_MAX - 1, &sig) < 0) {
		if (sig.stopped)
			*stopped = 1;
		else
			fail(a, "the document is not signed (no 'Hostgate-Signature' header) "
			     "and %s", sig.error);
		goto out;
	}
	if (sig.status == 401 || sig.status == 403) {
		fail(a, "the management endpoint refused the gateway token (HTTP %ld): "
		     "check 'token_file'", sig.status);
		goto out;
	}
	if (sig.status != 200) {
		fail(a, "the document is not signed: no 'Hostgate-Signature' header and "
		     "'%s' answered HTTP %ld", url, sig.status);
		goto out;
	}
	if (memchr(sig.body, '\0', sig.len)) {
		fail(a, "'%s' is not an 'ed25519=...' line", url);
		goto out;
	}
	snprintf(line, len, "%s", sig.body);
	rc = 0;
out:
	fetch_response_release(&sig);
	return rc;
}

/* Logs every validation error (capped) and fails with the first. */
static enum sync_result refuse_invalid(struct agent *a, const struct cfg_errors *errs)
{
	size_t total = errs->n + errs->dropped;

	for (size_t i = 0; i < errs->n && i < ERRORS_LOGGED; i++)
		log_err("the offered document does not validate: %s", errs->msg[i]);
	if (total > ERRORS_LOGGED)
		log_err("... and %zu more validation errors", total - ERRORS_LOGGED);
	if (total > 1)
		return fail(a, "the offered document does not validate: %s (and %zu more)",
			    errs->n ? errs->msg[0] : "$: unknown error", total - 1);
	return fail(a, "the offered document does not validate: %s",
		    errs->n ? errs->msg[0] : "$: unknown error");
}

static enum sync_result install(struct agent *a, const struct fetch_response *doc,
				int64_t generation, const unsigned char sha[32])
{
	const char *step = "";

	if (atomicfile_replace(a->conf.config_path, doc->body, doc->len, 0640,
			       ATOMICFILE_DIR_GROUP | ATOMICFILE_KEEP_PREV, &step) < 0)
		return fail(a, "cannot install '%s': %s: %s", a->conf.config_path, step,
			    strerror(errno));
	a->installed = 1;
	a->generation = generation;
	memcpy(a->sha256, sha, sizeof(a->sha256));
	snprintf(a->etag, sizeof(a->etag), "%s", doc->etag);
	state_save(a);
	log_info("installed generation %" PRId64 " in '%s'", generation, a->conf.config_path);
	return SYNC_INSTALLED;
}

static enum sync_result attempt(struct agent *a)
{
	struct fetch_response doc = FETCH_RESPONSE_INIT;
	struct cfg_errors errs = CFG_ERRORS_INIT;
	struct gateway *gw = NULL;
	char url[AGENT_URL_MAX], sigline[FETCH_SIG_MAX], err[512];
	unsigned char sha[32];
	enum sync_result rc = SYNC_FAILED;
	const char *etag = a->installed && a->etag[0] ? a->etag : NULL;
	int64_t gen;

	if (agent_url(a, "configuration", url, sizeof(url)) < 0)
		return fail(a, "the endpoint URL is too long");
	if (fetch_get(&a->fetch, url, etag, GW_MAX_DOCUMENT_BYTES, &doc) < 0) {
		if (doc.stopped)
			rc = SYNC_STOPPED;
		else
			fail(a, "%s", doc.error);
		goto out;
	}
	if (doc.status == 304) {
		if (etag) {
			rc = SYNC_UNCHANGED;
			goto out;
		}
		fail(a, "'%s' answered 304 Not Modified to a request without If-None-Match",
		     url);
		goto out;
	}
	if (doc.status == 401 || doc.status == 403) {
		fail(a, "the management endpoint refused the gateway token (HTTP %ld): "
		     "check 'token_file'", doc.status);
		goto out;
	}
	if (doc.status != 200) {
		fail(a, "'%s' answered HTTP %ld", url, doc.status);
		goto out;
	}
	if (a->key) {
		int stopped = 0;

		if (get_signature(a, &doc, sigline, sizeof(sigline), &stopped) < 0) {
			if (stopped)
				rc = SYNC_STOPPED;
			goto out;
		}
		if (verify_signature(a->key, sigline, doc.body, doc.len, err, sizeof(err)) < 0) {
			fail(a, "refusing the offered document: %s", err);
			goto out;
		}
	}
	if (verify_sha256(doc.body, doc.len, sha) < 0) {
		fail(a, "cannot hash the offered document");
		goto out;
	}
	if (a->installed && memcmp(sha, a->sha256, sizeof(sha)) == 0) {
		/* the same bytes: remember a new ETag so the next request can be a 304 */
		if (strcmp(doc.etag, a->etag) != 0) {
			snprintf(a->etag, sizeof(a->etag), "%s", doc.etag);
			state_save(a);
		}
		rc = SYNC_UNCHANGED;
		goto out;
	}
	gw = gw_load_buffer(doc.body, doc.len, &errs);
	if (!gw) {
		refuse_invalid(a, &errs);
		goto out;
	}
	gen = gw->generation;
	gw_free(gw);
	gw = NULL;
	if (a->installed && !a->allow_rollback) {
		if (gen < a->generation) {
			fail(a, "refusing generation %" PRId64 ": lower than the installed "
			     "generation %" PRId64 " (a rollback; use '--allow-rollback' to "
			     "install it on purpose)", gen, a->generation);
			goto out;
		}
		if (gen == a->generation) {
			fail(a, "refusing the offered document: it has the installed generation "
			     "%" PRId64 " but different content (treated as a rollback)", gen);
			goto out;
		}
	}
	rc = install(a, &doc, gen, sha);
out:
	cfg_errors_release(&errs);
	fetch_response_release(&doc);
	return rc;
}

enum sync_result sync_run(struct agent *a)
{
	enum sync_result rc = attempt(a);
	time_t now = time(NULL);

	if (rc == SYNC_STOPPED)
		return rc;
	if (rc != SYNC_FAILED) {
		a->last_error[0] = '\0';
		a->last_success = now;
	}
	state_write_status(a, now, rc != SYNC_FAILED);
	return rc;
}
