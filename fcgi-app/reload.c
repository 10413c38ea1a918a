#include "fcgi-app/reload.h"

#include <errno.h>
#include <string.h>
#include <time.h>

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

void reload_init(struct reload *r, const char *path)
{
	memset(r, 0, sizeof(*r));
	r->path = path;
	r->last_check_ms = -1;	/* never checked */
}

static void reload_try(struct reload *r, const struct stat *st)
{
	struct cfg_errors errs = CFG_ERRORS_INIT;
	struct gateway *gw = gw_load_file(r->path, &errs);

	if (!gw) {
		log_err("cannot load '%s'%s", r->path,
			r->gw ? ": keeping the configuration loaded before" : "");
		for (size_t i = 0; i < errs.n; i++)
			log_err("'%s': %s", r->path, errs.msg[i]);
		if (errs.dropped)
			log_err("'%s': %zu more errors", r->path, errs.dropped);
		r->failed = *st;
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
