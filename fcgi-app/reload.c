#include "fcgi-app/reload.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/fileread.h"
#include "common/log.h"
#include "common/fiber.h"
#include "fcgi-app/io.h"
#include "policy/image.h"

#define RELOAD_CHECK_MS 1000
/* a document this big is worth an image: without one every CGI request
 * compiles all of it (docs/scale.md) */
#define RELOAD_HINT_APIS 100
/* how long a request waits for a document compiled in the background before
 * it is served by the configuration it had */
#define RELOAD_WAIT_MS 100
/* how often a fiber waiting for a load looks whether it is done */
#define RELOAD_POLL_MS 2

/* The directory of path, stat(2)ed into st (zeroed when it cannot be). */
static void stat_dir_of(const char *path, struct stat *st)
{
	char dir[RELOAD_PATH_MAX];
	const char *slash = strrchr(path, '/');
	int n;

	if (!slash)
		n = snprintf(dir, sizeof(dir), ".");
	else
		n = snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
	if (n < 0 || (size_t)n >= sizeof(dir) || stat(dir, st) != 0)
		memset(st, 0, sizeof(*st));
}

static int same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
	       a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
	       a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

void reload_init(struct reload *r, const char *path)
{
	memset(r, 0, sizeof(*r));
	r->path = path;
	if (snprintf(r->prev, sizeof(r->prev), "%s.prev", path) >= (int)sizeof(r->prev))
		r->prev[0] = '\0';
	if (snprintf(r->image, sizeof(r->image), "%s%s", path, IMAGE_SUFFIX) >= (int)sizeof(r->image))
		r->image[0] = '\0';
	r->last_check_ms = -1;	/* never checked */
}

/* Reads path under the trust rule (reload.h). Returns the file's contents
 * (the caller zeroes and frees them) with *st its identity, or NULL with the
 * reason in errs (when not NULL). The "own user" warning is logged once, when
 * warned_own is not NULL. */
static char *read_trusted(int *warned_own, const char *path, size_t max, size_t *len,
			  struct stat *st, struct cfg_errors *errs)
{
	char *buf = NULL, why[RELOAD_PATH_MAX + 128];

	if (file_read_stat(path, max, &buf, len, st) < 0) {
		if (errs)
			cfg_error(errs, "$", "cannot read '%s': %s", path,
				  errno == ELOOP ? "a symbolic link (refused: the link's "
				  "owner could point it anywhere)" : strerror(errno));
		return NULL;
	}
	switch (file_trust(path, st, why, sizeof(why))) {
	case FILE_UNSAFE:
		if (errs)
			cfg_error(errs, "$", "refusing '%s': %s: another user could replace it",
				  path, why);
		explicit_bzero(buf, *len);
		free(buf);
		errno = EPERM;
		return NULL;
	case FILE_OWN:
		if (warned_own && !*warned_own) {
			log_warn("'%s' is not protected from the web server's user: %s; "
				 "keep the configuration in a directory only the agent writes "
				 "(docs/deploying.md)", path, why);
			*warned_own = 1;
		}
		break;
	case FILE_TRUSTED:
		break;
	}
	return buf;
}

static struct gateway *load(struct reload *r, const char *path, struct stat *st,
			    struct cfg_errors *errs)
{
	size_t len = 0;
	char *buf = read_trusted(&r->warned_own, path, GW_MAX_DOCUMENT_BYTES, &len, st, errs);
	struct gateway *gw;

	if (!buf)
		return NULL;
	gw = gw_load_buffer(buf, len, errs);
	explicit_bzero(buf, len);	/* it may hold secrets */
	free(buf);
	return gw;
}

static void log_errors(const char *path, const struct cfg_errors *errs)
{
	for (size_t i = 0; i < errs->n; i++)
		log_err("'%s': %s", path, errs->msg[i]);
	if (errs->dropped)
		log_err("'%s': %zu more errors", path, errs->dropped);
}

static int same_image(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Serves the image when it stands for doc (NULL: any document, for a process
 * that has nothing else). Returns 0 when r->gw is now (or still) the image's,
 * -1 when the image is absent or refused (logged once per image and
 * document), with *present set when there was one. */
static int try_image(struct reload *r, const struct stat *doc, int *present)
{
	char why[RELOAD_PATH_MAX + 160], stale_why[sizeof(why)] = "";
	enum image_status status;
	struct gateway *gw;
	struct stat lst, st;
	int fd;

	*present = 0;
	if (!r->image[0] || lstat(r->image, &lst) != 0)
		return -1;
	*present = 1;
	/* an image stands for its document: one the document's own load
	 * would refuse (group-writable...) does not get in this way */
	if (doc && file_trust(r->path, doc, why, sizeof(why)) == FILE_UNSAFE)
		return -1;
	if (r->from_image && same_image(&lst, &r->image_st) &&
	    (!doc || same_image(doc, &r->loaded)) && !image_damaged(r->gw->image, NULL))
		return 0;
	if (same_image(&lst, &r->image_bad) && doc && same_image(doc, &r->image_bad_doc))
		return -1;
	r->image_bad = lst;
	if (doc)
		r->image_bad_doc = *doc;
	else
		memset(&r->image_bad_doc, 0, sizeof(r->image_bad_doc));
	fd = open(r->image, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		snprintf(r->image_note, sizeof(r->image_note), "cannot open it: %s", strerror(errno));
		log_warn("cannot open '%s': %s; compiling the configuration in memory", r->image,
			 strerror(errno));
		goto refused;
	}
	/* an image the web server's own user could have written or swapped
	 * decides nothing (docs/security.md): unlike the document, not even
	 * with a warning, since the document is there to fall back on */
	if (file_trust(r->image, &st, why, sizeof(why)) != FILE_TRUSTED) {
		snprintf(r->image_note, sizeof(r->image_note), "not trusted: %.400s", why);
		log_warn("not using '%s': %s; compiling the configuration in memory", r->image, why);
		goto refused;
	}
	gw = image_open(fd, &st, doc, &status, why, sizeof(why));
	if (!gw && status == IMAGE_STALE)
		snprintf(stale_why, sizeof(stale_why), "%s", why);
	if (!gw && status == IMAGE_STALE && doc && r->gw && !r->from_image_interim &&
	    (gw = image_open(fd, &st, NULL, &status, why, sizeof(why))) != NULL) {
		/* the document changed and has no image yet: until it loads
		 * (in a thread, reload_try), a newer last good configuration
		 * than ours is the image of the document before it */
		if (gw->generation <= r->gw->generation) {
			gw_free(gw);
			gw = NULL;
			status = IMAGE_STALE;
		} else {
			/* still stale for the document that is loading: say so
			 * on the health path, as the other processes do (this
			 * image is not looked at again until one of them changes) */
			snprintf(r->image_note, sizeof(r->image_note), "stale: %.400s", stale_why);
			close(fd);
			log_info("mapped '%s' generation %lld (was %lld) until '%s' loads",
				 r->image, (long long)gw->generation, (long long)r->gw->generation,
				 r->path);
			gw_free(r->gw);
			r->gw = gw;
			r->from_image = 1;
			r->from_image_interim = 1;
			r->image_st = st;
			r->loaded = st;	/* not the document's: it still gets loaded */
			return -1;
		}
	}
	if (!gw) {
		snprintf(r->image_note, sizeof(r->image_note), "%s: %.400s",
			 status == IMAGE_STALE ? "stale" : status == IMAGE_DAMAGED ? "damaged" :
			 "foreign", status == IMAGE_STALE ? stale_why : why);
		if (status == IMAGE_STALE && doc)
			log_warn("'%s' is older than its document: run 'hostgate-fcgi --compile %s' "
				 "(compiling the configuration in memory meanwhile)", r->image, r->path);
		else if (status != IMAGE_STALE)
			log_err("not using '%s': %s %s; compiling the configuration in memory",
				r->image, status == IMAGE_DAMAGED ? "damaged:" : "foreign:", why);
		goto refused;
	}
	close(fd);
	fd = -1;
	if (!doc) {
		struct stat now;

		/* standing in for a document that did not load: never the
		 * image of that very document (refused for its mode, say) */
		if (lstat(r->path, &now) == 0 && image_compiled_from(gw->image, &now)) {
			gw_free(gw);
			return -1;
		}
		if (r->gw && gw->generation <= r->gw->generation) {
			gw_free(gw);	/* a stale image no newer than what we serve */
			return -1;
		}
	}
	if (r->gw)
		log_info("mapped '%s' generation %lld (was %lld)", r->image,
			 (long long)gw->generation, (long long)r->gw->generation);
	else if (!doc)
		log_warn("serving '%s', generation %lld, compiled from an earlier document, until "
			 "'%s' loads", r->image, (long long)gw->generation, r->path);
	gw_free(r->gw);
	r->gw = gw;
	r->from_image = 1;
	r->from_image_interim = 0;
	r->image_st = st;
	r->loaded = doc ? *doc : st;	/* the image's age stands in for the document's */
	memset(&r->image_bad, 0, sizeof(r->image_bad));
	r->image_note[0] = '\0';
	if (doc)
		r->error[0] = '\0';	/* else it stands in for a document that failed */
	return 0;
refused:
	if (fd >= 0)
		close(fd);
	return -1;
}

/* The configuration failed to load: the agent's previous document, when this
 * process has nothing newer. */
static void fall_back(struct reload *r)
{
	struct cfg_errors errs = CFG_ERRORS_INIT;
	struct gateway *gw;
	struct stat st;
	int present;

	/* the newer of the two last good ones: a stale image, then .prev when
	 * it holds a newer generation (loaded below only if so) */
	if (!r->gw)
		try_image(r, NULL, &present);
	if (!r->prev[0] || lstat(r->prev, &st) != 0 ||
	    (r->gw && same_file(&st, &r->loaded)))
		return;
	gw = load(r, r->prev, &st, &errs);
	if (!gw) {
		/* with a gateway of our own, nothing is lost: no more noise */
		if (!r->gw) {
			log_err("cannot load the previous configuration '%s' either", r->prev);
			log_errors(r->prev, &errs);
		}
		goto out;
	}
	if (r->gw && gw->generation <= r->gw->generation) {
		gw_free(gw);	/* ours is as new: never go back */
		goto out;
	}
	log_warn("serving the previous configuration '%s', generation %lld, until '%s' loads",
		 r->prev, (long long)gw->generation, r->path);
	gw_free(r->gw);
	r->gw = gw;
	r->loaded = st;
	r->from_image = 0;
	r->from_image_interim = 0;
out:
	cfg_errors_release(&errs);
}

/* What one load of the document gave: the gateway or the errors. */
struct reload_job {
	const char *path;
	struct stat lst;	/* what was looked at by path */
	int image_present;
	struct stat st;		/* what was read */
	struct gateway *gw;
	struct cfg_errors errs;
	int warned_own;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done;		/* set last by the thread, under mu */
};

static void job_run(struct reload_job *j)
{
	size_t len = 0;
	char *buf = read_trusted(&j->warned_own, j->path, GW_MAX_DOCUMENT_BYTES, &len, &j->st,
				 &j->errs);

	if (buf) {
		j->gw = gw_load_buffer(buf, len, &j->errs);
		explicit_bzero(buf, len);	/* it may hold secrets */
		free(buf);
	}
}

static void *job_thread(void *arg)
{
	struct reload_job *j = arg;

	job_run(j);
	pthread_mutex_lock(&j->mu);
	j->done = 1;
	pthread_cond_signal(&j->cv);
	pthread_mutex_unlock(&j->mu);
	return NULL;
}

/* Waits up to ms (< 0: for good) for the thread; returns whether it is done. */
static int job_wait(struct reload_job *j, long ms)
{
	struct timespec until;
	int done;

	clock_gettime(CLOCK_REALTIME, &until);
	if (ms > 0) {
		until.tv_sec += ms / 1000;
		until.tv_nsec += (ms % 1000) * 1000000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
	}
	pthread_mutex_lock(&j->mu);
	while (!j->done && ms != 0)
		if (ms > 0 ? pthread_cond_timedwait(&j->cv, &j->mu, &until) != 0 :
		    pthread_cond_wait(&j->cv, &j->mu) != 0)
			break;
	done = j->done;
	pthread_mutex_unlock(&j->mu);
	return done;
}

/* Makes what a load gave the configuration (or logs why not). */
static void job_apply(struct reload *r, struct reload_job *j)
{
	struct gateway *gw = j->gw;
	struct stat now;

	/* a load that finished after the document changed again (or after
	 * the image of a newer one was mapped) is history: the next check
	 * takes the document that is there now */
	if (r->gw && (lstat(r->path, &now) != 0 || !same_image(&now, &j->lst) ||
		      (r->from_image && !image_damaged(r->gw->image, NULL) &&
		       same_image(&j->lst, &r->loaded))))
		return;
	if (!gw) {
		snprintf(r->error, sizeof(r->error), "%s", j->errs.n ? j->errs.msg[0] :
			 "cannot load the document");
		log_err("cannot load '%s'%s", r->path,
			r->gw ? ": keeping the configuration loaded before" : "");
		log_errors(r->path, &j->errs);
		/* what was looked at by path: a file that could not even be
		 * opened has no other identity */
		r->failed = j->lst;
		stat_dir_of(r->path, &r->failed_dir);
		fall_back(r);
		return;
	}
	if (r->gw)
		log_info("loaded '%s' generation %lld (was %lld)", r->path,
			 (long long)gw->generation, (long long)r->gw->generation);
	if (!j->image_present && gw->n_apis >= RELOAD_HINT_APIS)
		log_warn("'%s' holds %zu APIs and has no image: every process compiles all of "
			 "it; run 'hostgate-fcgi --compile %s' (docs/scale.md)", r->path,
			 gw->n_apis, r->path);
	r->error[0] = '\0';
	gw_free(r->gw);
	r->gw = gw;
	r->loaded = j->st;
	r->from_image = 0;
	r->from_image_interim = 0;
	j->gw = NULL;
}

static void job_free(struct reload_job *j)
{
	if (!j)
		return;
	gw_free(j->gw);
	cfg_errors_release(&j->errs);
	pthread_mutex_destroy(&j->mu);
	pthread_cond_destroy(&j->cv);
	free(j);
}

/* A finished background load, applied, after waiting up to ms for it (< 0:
 * as long as it takes); 1 while one is still running. */
static int job_collect(struct reload *r, long ms)
{
	struct reload_job *j = r->job;

	if (!j)
		return 0;
	if (!job_wait(j, ms))
		return 1;
	pthread_join(r->thread, NULL);
	r->job = NULL;
	if (j->warned_own && !r->warned_own) {
		log_warn("'%s' is not protected from the web server's user; keep the "
			 "configuration in a directory only the agent writes (docs/deploying.md)",
			 r->path);
		r->warned_own = 1;
	}
	job_apply(r, j);
	job_free(j);
	return 0;
}

/* job_collect(r, ms) on a fiber (ms < 0: as long as the load takes): the
 * other requests of the process run while this one waits. One of them may
 * collect the job (or start the next) meanwhile: j is looked at only while
 * it is still r's. */
static void job_await(struct reload *r, struct reload_job *j, long ms)
{
	int64_t t0 = io_now_ms();

	while (r->job == j && !job_wait(j, 0) && (ms < 0 || io_now_ms() - t0 < ms))
		fiber_sleep(RELOAD_POLL_MS);
	if (r->job == j)
		job_collect(r, 0);
}

/* Loads the document: at once when this process has nothing to serve, else
 * (r->background) in a thread, while the old configuration keeps serving. */
static void reload_try(struct reload *r, const struct stat *lst, int image_present)
{
	struct reload_job *j = calloc(1, sizeof(*j));

	if (!j) {
		log_err("cannot load '%s': out of memory", r->path);
		return;
	}
	j->path = r->path;
	j->lst = *lst;
	j->image_present = image_present;
	j->warned_own = r->warned_own;
	pthread_mutex_init(&j->mu, NULL);
	pthread_cond_init(&j->cv, NULL);
	if (r->background && r->gw) {
		r->job = j;
		if (pthread_create(&r->thread, NULL, job_thread, j) == 0) {
			/* a small document is there at once, as without a thread;
			 * a big one never holds the request longer than this */
			if (fiber_on())
				job_await(r, j, RELOAD_WAIT_MS);
			else
				job_collect(r, RELOAD_WAIT_MS);
			return;
		}
		r->job = NULL;	/* no thread: do it here */
	}
	job_run(j);
	if (j->warned_own)
		r->warned_own = 1;
	job_apply(r, j);
	job_free(j);
}

const struct gateway *reload_current(struct reload *r, int64_t now_ms)
{
	char why[RELOAD_PATH_MAX + 128];
	struct stat st;
	int present = 0;

	if (job_collect(r, 0))
		return r->gw;	/* a load is under way: the old configuration serves */
	if (r->last_check_ms >= 0 && now_ms - r->last_check_ms < RELOAD_CHECK_MS &&
	    !(r->from_image && image_damaged(r->gw->image, NULL)))
		return r->gw;
	r->last_check_ms = now_ms;
	if (lstat(r->path, &st) != 0) {
		/* the file went away: keep serving what we have */
		if (!r->gw && errno != ENOENT)
			log_err("cannot stat '%s': %s", r->path, strerror(errno));
		if (!r->gw)
			fall_back(r);
		return r->gw;
	}
	/* the image stands for the document: a document the trust rule refuses
	 * (group- or world-writable, not a regular file) is not served through
	 * its image either; it is refused, and logged, below */
	if (file_trust(r->path, &st, why, sizeof(why)) != FILE_UNSAFE &&
	    try_image(r, &st, &present) == 0)
		return r->gw;
	/* the document did not change (only its image, to one not usable):
	 * what serves it stays, unless that is a damaged image */
	if (r->gw && (r->from_image ? same_image(&st, &r->loaded) &&
		      !image_damaged(r->gw->image, NULL) : same_file(&st, &r->loaded)))
		return r->gw;
	if (same_file(&st, &r->failed)) {
		struct stat dst;

		stat_dir_of(r->path, &dst);
		/* not its ctime: every file the agent writes there changes that */
		if (dst.st_mode == r->failed_dir.st_mode && dst.st_uid == r->failed_dir.st_uid &&
		    dst.st_gid == r->failed_dir.st_gid)
			return r->gw;
	}
	reload_try(r, &st, present);
	return r->gw;
}

int64_t reload_tick(struct reload *r)
{
	int64_t left;

	reload_current(r, io_now_ms());
	/* the load in a thread, taken as soon as it is done: this is not a
	 * request, it may wait as long as the load takes */
	if (r->job && fiber_on())
		job_await(r, r->job, -1);
	left = r->last_check_ms + RELOAD_CHECK_MS - io_now_ms();
	return left < RELOAD_POLL_MS ? RELOAD_POLL_MS : left;
}

const struct gateway *reload_recover(struct reload *r, int64_t now_ms)
{
	const char *why = NULL;
	int bg;

	if (r->from_image && image_damaged(r->gw->image, &why)) {
		snprintf(r->image_note, sizeof(r->image_note), "damaged: %s", why ? why : "?");
		log_err("not using '%s' any more: damaged: %s; compiling the configuration in "
			"memory", r->image, why ? why : "?");
		r->image_bad = r->image_st;
		r->image_bad_doc = r->loaded;
	}
	/* this request needs the document now, not a thread's later */
	job_collect(r, -1);
	r->last_check_ms = -1;
	bg = r->background;
	r->background = 0;
	reload_current(r, now_ms);
	r->background = bg;
	return r->gw;
}

int64_t reload_config_age(const struct reload *r)
{
	struct timespec ts;
	int64_t age;

	if (!r->gw)
		return -1;
	clock_gettime(CLOCK_REALTIME, &ts);
	age = (int64_t)ts.tv_sec - (int64_t)r->loaded.st_mtim.tv_sec;
	return age < 0 ? 0 : age;
}

int reload_read_beside(const struct reload *r, const char *name, size_t max, char **buf,
		       size_t *len)
{
	char path[RELOAD_PATH_MAX];
	const char *slash = strrchr(r->path, '/');
	struct stat st;
	int n;

	if (slash)
		n = snprintf(path, sizeof(path), "%.*s/%s", (int)(slash - r->path), r->path, name);
	else
		n = snprintf(path, sizeof(path), "%s", name);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	/* no errors and no warning: the configuration's own load reports them */
	*buf = read_trusted(NULL, path, max, len, &st, NULL);
	return *buf ? 0 : -1;
}

void reload_release(struct reload *r)
{
	if (r->job) {
		job_wait(r->job, -1);
		pthread_join(r->thread, NULL);
		job_free(r->job);
		r->job = NULL;
	}
	gw_free(r->gw);
	r->gw = NULL;
}
