#include "sync-agent/sync.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/atomicfile.h"
#include "common/log.h"
#include "policy/gateway.h"
#include "policy/image.h"
#include "sync-agent/apim.h"
#include "sync-agent/state.h"
#include "sync-agent/verify.h"

#define ERRORS_LOGGED 20	/* validation errors logged one per line */
#define SYNC_PATH_MAX 4096
/* where the image of the document being installed waits for the generation
 * checks: a name state_clean() removes ("{image}.tmp.*"), as it does the
 * compile's own temporaries "{stage}.tmp.XXXXXX" */
#define STAGE_SUFFIX ".tmp.new"

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

/* snprintf for messages, where a long path may cut the end off */
static void say(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void say(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
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

/* The generation checks. Returns 0 when gen may be installed, or -1 (failed). */
static int check_generation(struct agent *a, int64_t gen)
{
	if (!a->installed || a->allow_rollback)
		return 0;
	if (gen < a->generation) {
		fail(a, "refusing generation %" PRId64 ": lower than the installed "
		     "generation %" PRId64 " (a rollback; use '--allow-rollback' to "
		     "install it on purpose)", gen, a->generation);
		return -1;
	}
	if (gen == a->generation) {
		fail(a, "refusing the offered document: it has the installed generation "
		     "%" PRId64 " but different content (treated as a rollback)", gen);
		return -1;
	}
	return 0;
}

/* Opens the staged image as the app will (the document's identity doc must
 * match) and reads its generation. Returns 0, or -1 with why. */
static int staged_generation(const char *stage, const struct stat *doc, int64_t *gen,
			     char *why, size_t len)
{
	enum image_status status;
	struct gateway *gw;
	struct stat st;
	char reason[512];
	int fd = open(stage, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0) {
		say(why, len, "cannot open '%s': %s", stage, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	gw = image_open(fd, &st, doc, &status, reason, sizeof(reason));
	close(fd);
	if (!gw) {
		say(why, len, "cannot read back '%s': %s", stage, reason);
		return -1;
	}
	*gen = gw->generation;
	gw_free(gw);
	return 0;
}

/*
 * Installs the document with its image. The document's temporary is written
 * and prepared first (mode 0640, the directory's group, fsynced), so that its
 * fstat is the installed document's identity; the image is compiled from the
 * bytes under that identity to "{image}.tmp.new". The compile validates the
 * document exactly as gw_load_buffer does, so it is the validation: a 100k-API
 * document is loaded once, not twice. Only then are the generation rules
 * checked (they need the generation, which the image records), and only when
 * they pass is the image renamed into place and then the document (with
 * .prev). Nothing is visible before the checks pass; between the two renames
 * a reader sees the new image with the old document, which it finds stale and
 * compiles in memory for that moment: correct.
 *
 * When the image cannot be compiled or written (disk full, out of memory,
 * the name taken), the document is validated with gw_load_buffer instead and
 * installed without a new image: the app serves it, compiling it in memory
 * (slower). That is still a failure (logged, in sync-status.json, exit 1)
 * since an operator must act; the next sync that finds the document current
 * writes the image (ensure_image).
 */
static enum sync_result install(struct agent *a, const struct fetch_response *doc,
				const unsigned char sha[32])
{
	struct atomicfile af = ATOMICFILE_INIT;
	struct cfg_errors errs = CFG_ERRORS_INIT;
	char image[SYNC_PATH_MAX], stage[SYNC_PATH_MAX], image_err[AGENT_ERROR_MAX];
	enum sync_result rc = SYNC_FAILED;
	struct stat st;
	int64_t gen = 0;
	int staged = 0;

	image_err[0] = '\0';
	if (snprintf(image, sizeof(image), "%s%s", a->conf.config_path, IMAGE_SUFFIX) >=
	    (int)sizeof(image) ||
	    snprintf(stage, sizeof(stage), "%s%s", image, STAGE_SUFFIX) >= (int)sizeof(stage))
		return fail(a, "'config_path' is too long");
	if (atomicfile_begin(&af, a->conf.config_path, 0640,
			     ATOMICFILE_DIR_GROUP | ATOMICFILE_KEEP_PREV) < 0 ||
	    atomicfile_write(&af, doc->body, doc->len) < 0 || atomicfile_prepare(&af) < 0) {
		fail(a, "cannot install '%s': %s: %s", a->conf.config_path, af.step,
		     strerror(errno));
		goto out;
	}
	if (fstat(af.fd, &st) < 0) {
		fail(a, "cannot install '%s': stat: %s", a->conf.config_path, strerror(errno));
		goto out;
	}
	if (image_compile_buffer(doc->body, doc->len, &st, stage, &errs, NULL) == 0) {
		if (staged_generation(stage, &st, &gen, image_err, sizeof(image_err)) == 0)
			staged = 1;
	} else {
		say(image_err, sizeof(image_err), "%s",
		    errs.n ? errs.msg[0] : "cannot compile it");
	}
	if (!staged) {
		struct gateway *gw;

		/* most often an invalid document; else the image alone failed:
		 * tell the two apart the one sure way, at the cost of a second
		 * load for a document that is refused anyway */
		unlink(stage);
		cfg_errors_release(&errs);
		gw = gw_load_buffer(doc->body, doc->len, &errs);
		if (!gw) {
			refuse_invalid(a, &errs);
			goto out;
		}
		gen = gw->generation;
		gw_free(gw);
	}
	if (check_generation(a, gen) < 0)
		goto out;
	if (staged && rename(stage, image) < 0) {
		say(image_err, sizeof(image_err), "cannot rename '%s' to '%s': %s", stage,
		    image, strerror(errno));
		staged = 0;
	}
	if (atomicfile_commit(&af) < 0) {
		/* a new image may stand beside the old document now: stale, so
		 * the app compiles the old document in memory until the next
		 * install */
		fail(a, "cannot install '%s': %s: %s", a->conf.config_path, af.step,
		     strerror(errno));
		goto out;
	}
	a->installed = 1;
	a->generation = gen;
	memcpy(a->sha256, sha, sizeof(a->sha256));
	snprintf(a->etag, sizeof(a->etag), "%s", doc->etag);
	state_save(a);
	if (!staged) {
		fail(a, "installed generation %" PRId64 " in '%s' without its image: %s; "
		     "every process compiles the document in memory (slower) until the image "
		     "is written", gen, a->conf.config_path, image_err);
		goto out;
	}
	log_info("installed generation %" PRId64 " in '%s' with its image", gen,
		 a->conf.config_path);
	rc = SYNC_INSTALLED;
out:
	if (staged && rc != SYNC_INSTALLED)
		unlink(stage);
	atomicfile_release(&af);
	cfg_errors_release(&errs);
	return rc;
}

/* The installed document is current: make sure its image is too (written now
 * when an earlier install could not, or by another build, or damaged). The
 * check is what the app does: one open and the header's checksums. Returns
 * SYNC_UNCHANGED, or SYNC_FAILED (a->last_error set). */
static enum sync_result ensure_image(struct agent *a)
{
	struct cfg_errors errs = CFG_ERRORS_INIT;
	char image[SYNC_PATH_MAX], why[512];
	enum image_status status = IMAGE_OK;
	enum sync_result rc = SYNC_UNCHANGED;
	struct gateway *gw = NULL;
	struct stat doc, st;
	int fd;

	if (snprintf(image, sizeof(image), "%s%s", a->conf.config_path, IMAGE_SUFFIX) >=
	    (int)sizeof(image))
		return fail(a, "'config_path' is too long");
	if (stat(a->conf.config_path, &doc) < 0)
		return rc;	/* the document itself is state_load's business */
	fd = open(image, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		gw = image_open(fd, &st, &doc, &status, why, sizeof(why));
	if (fd >= 0)
		close(fd);
	if (gw) {
		gw_free(gw);
		return rc;
	}
	if (image_compile_file(a->conf.config_path, &errs, NULL) < 0) {
		rc = fail(a, "the installed '%s' has no usable image and compiling one failed: "
			  "%s; every process compiles the document in memory (slower)",
			  a->conf.config_path, errs.n ? errs.msg[0] : "unknown error");
		goto out;
	}
	log_info("wrote the image of the installed '%s' (%s)", a->conf.config_path,
		 fd < 0 ? "there was none" : status == IMAGE_STALE ? "it was stale" :
		 status == IMAGE_FOREIGN ? "it was of another build" : "it was damaged");
out:
	cfg_errors_release(&errs);
	return rc;
}

static enum sync_result attempt(struct agent *a)
{
	struct fetch_response doc = FETCH_RESPONSE_INIT;
	char url[AGENT_URL_MAX], sigline[FETCH_SIG_MAX], err[512];
	unsigned char sha[32];
	enum sync_result rc = SYNC_FAILED;
	const char *etag = a->installed && a->etag[0] ? a->etag : NULL;

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
	rc = install(a, &doc, sha);
out:
	fetch_response_release(&doc);
	return rc;
}

enum sync_result sync_install_buffer(struct agent *a, const char *buf, size_t len)
{
	struct fetch_response doc = FETCH_RESPONSE_INIT;
	unsigned char sha[32];

	if (verify_sha256(buf, len, sha) < 0)
		return fail(a, "cannot hash the converted document");
	if (a->installed && memcmp(sha, a->sha256, sizeof(sha)) == 0)
		return SYNC_UNCHANGED;
	doc.body = (char *)(uintptr_t)buf;	/* only read by install() */
	doc.len = len;
	return install(a, &doc, sha);
}

enum sync_result sync_run(struct agent *a)
{
	enum sync_result rc = a->conf.source == AGENTCONF_SRC_AZURE_APIM ? apim_attempt(a) :
			      attempt(a);
	time_t now;

	/* after the download is freed: a big document is read again */
	if (rc == SYNC_UNCHANGED && a->installed)
		rc = ensure_image(a);
	now = time(NULL);
	if (rc == SYNC_STOPPED)
		return rc;
	if (rc != SYNC_FAILED) {
		a->last_error[0] = '\0';
		a->last_success = now;
	}
	state_write_status(a, now, rc != SYNC_FAILED);
	return rc;
}
