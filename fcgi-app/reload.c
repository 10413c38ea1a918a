#include "fcgi-app/reload.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/atomicfile.h"
#include "common/fileread.h"
#include "common/log.h"

#define RELOAD_CHECK_MS 1000

static int same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
	       a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
	       a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

void reload_init(struct reload *r, const char *path, const char *state_dir)
{
	memset(r, 0, sizeof(*r));
	r->path = path;
	if (snprintf(r->last_good, sizeof(r->last_good), "%s/config.last-good.json",
		     state_dir) >= (int)sizeof(r->last_good))
		r->last_good[0] = '\0';
	r->last_check_ms = -1;	/* never checked */
}

/* Keeps buf as the last good document unless the copy there is already it
 * (same size, written after the configuration file). */
static void save_last_good(struct reload *r, const struct stat *st, const char *buf, size_t len)
{
	struct stat lg;
	const char *step = "";

	if (!r->last_good[0])
		return;
	if (stat(r->last_good, &lg) == 0 && lg.st_size == (off_t)len &&
	    (lg.st_mtim.tv_sec > st->st_mtim.tv_sec ||
	     (lg.st_mtim.tv_sec == st->st_mtim.tv_sec && lg.st_mtim.tv_nsec >= st->st_mtim.tv_nsec)))
		return;
	if (atomicfile_replace(r->last_good, buf, len, 0640, ATOMICFILE_DIR_GROUP, &step) != 0)
		log_warn("cannot keep the last good configuration in '%s': %s: %s", r->last_good,
			 step, strerror(errno));
}

static struct gateway *load(const char *path, struct cfg_errors *errs, int keep,
			    struct reload *r, const struct stat *st)
{
	size_t len = 0;
	char *buf = NULL;
	struct gateway *gw;

	if (file_read(path, GW_MAX_DOCUMENT_BYTES, &buf, &len) < 0) {
		cfg_error(errs, "$", "cannot read '%s': %s", path, strerror(errno));
		return NULL;
	}
	gw = gw_load_buffer(buf, len, errs);
	if (gw && keep)
		save_last_good(r, st, buf, len);
	explicit_bzero(buf, len);	/* it may hold secrets */
	free(buf);
	return gw;
}

static void reload_try(struct reload *r, const struct stat *st)
{
	struct cfg_errors errs = CFG_ERRORS_INIT;
	struct gateway *gw = load(r->path, &errs, 1, r, st);
	struct stat lg;

	if (!gw) {
		log_err("cannot load '%s'%s", r->path,
			r->gw ? ": keeping the configuration loaded before" : "");
		for (size_t i = 0; i < errs.n; i++)
			log_err("'%s': %s", r->path, errs.msg[i]);
		if (errs.dropped)
			log_err("'%s': %zu more errors", r->path, errs.dropped);
		r->failed = *st;
		cfg_errors_release(&errs);
		/* the last good document any process loaded: newer than ours when
		 * this process missed a change, and better than a 503 when it has
		 * loaded nothing yet */
		if (!r->last_good[0] || stat(r->last_good, &lg) != 0 ||
		    (r->gw && same_file(&lg, &r->loaded)))
			return;
		gw = load(r->last_good, &errs, 0, r, &lg);
		if (!gw)
			goto out;
		if (r->gw && gw->generation < r->gw->generation) {
			gw_free(gw);	/* ours is newer: keep it */
			goto out;
		}
		log_warn("serving the last good configuration, generation %lld, from '%s'",
			 (long long)gw->generation, r->last_good);
		gw_free(r->gw);
		r->gw = gw;
		r->loaded = lg;
		goto out;
	}
	if (r->gw)
		log_info("loaded '%s' generation %lld (was %lld)", r->path,
			 (long long)gw->generation, (long long)r->gw->generation);
	gw_free(r->gw);
	r->gw = gw;
	r->loaded = *st;
out:
	cfg_errors_release(&errs);
}

const struct gateway *reload_current(struct reload *r, int64_t now_ms)
{
	struct stat st;

	if (r->last_check_ms >= 0 && now_ms - r->last_check_ms < RELOAD_CHECK_MS)
		return r->gw;
	r->last_check_ms = now_ms;
	if (stat(r->path, &st) != 0) {
		/* the file went away: keep serving what we have */
		if (!r->gw && errno != ENOENT)
			log_err("cannot stat '%s': %s", r->path, strerror(errno));
		return r->gw;
	}
	if (r->gw && same_file(&st, &r->loaded))
		return r->gw;
	if (same_file(&st, &r->failed))
		return r->gw;
	reload_try(r, &st);
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

void reload_release(struct reload *r)
{
	gw_free(r->gw);
	r->gw = NULL;
}
