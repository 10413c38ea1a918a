/*
 * shmfile — a fixed-size file in the state directory mapped MAP_SHARED into
 * every process that opens it: the common create-and-map code of the counter
 * store (counter.h) and the metrics store (metrics.h).
 *
 *   struct shmfile f;
 *   if (shmfile_open(&f, "/var/lib/hostgate/counters", &want, init, check, arg) < 0)
 *           ...    (logged)
 *   struct shmfile_hdr *h = f.base;    ... the store's own layout follows
 *   shmfile_close(&f);
 *
 * Every file starts with struct shmfile_hdr: an 8-byte magic naming the store,
 * a layout version and the file's size. A file is only ever seen whole: a new one
 * is built under a temporary name ("{path}.new.{pid}"), sized with
 * posix_fallocate (so that touching the mapping never meets a full disk),
 * initialised by init(), and then link(2)ed to path, which fails if another
 * process won the race (its file is then used). Files are created mode 0660
 * (fchmod, whatever the umask): the web server's user and the agent share them
 * through the directory's group.
 *
 * A file whose header does not match (another magic, another version, a size
 * that is not the one the header names, or check() refusing it) is REPLACED by
 * a fresh one, with a warning: it is an older layout or not ours. Replacing is
 * serialised with flock(2) on the old file (released by the kernel if the
 * process dies), and a process only keeps a mapping of the file that path names
 * when it looked. Processes that mapped the old file before the replacement keep
 * using it until they restart (they run the old binary anyway).
 *
 * Ownership: f owns the mapping until shmfile_close(). Nothing else is kept
 * open. Errors: -1, logged ("cannot open '...': ..."), f->base stays NULL.
 */
#ifndef HOSTGATE_SHMFILE_H
#define HOSTGATE_SHMFILE_H

#include <stddef.h>
#include <stdint.h>

#define SHMFILE_MAX_SIZE ((size_t)1 << 30)
#define SHMFILE_MODE 0660

struct shmfile_hdr {
	char magic[8];		/* e.g. "HGCOUNT\0" */
	uint32_t version;
	uint32_t hdr_size;	/* sizeof(struct shmfile_hdr) */
	uint64_t size;		/* the whole file, in bytes */
};

struct shmfile {
	void *base;		/* the mapping, starting with struct shmfile_hdr */
	size_t size;
	int created;		/* this call built the file */
};

/* What a new file looks like: magic, version, and its size in bytes (at least
 * sizeof(struct shmfile_hdr), at most SHMFILE_MAX_SIZE). */
struct shmfile_want {
	char magic[8];
	uint32_t version;
	size_t size;
};

/* Fills a freshly zeroed mapping of size bytes whose shmfile_hdr is already
 * written. Returns 0 or -1 (logged). */
typedef int shmfile_init_fn(void *base, size_t size, void *arg);
/* Says whether an existing file (magic, version and size already checked)
 * is consistent: 0 yes, -1 no (it will be replaced). May be NULL. */
typedef int shmfile_check_fn(const void *base, size_t size, void *arg);

/* Opens path, creating or replacing it as described above. Returns 0 or -1. */
int shmfile_open(struct shmfile *f, const char *path, const struct shmfile_want *want,
		 shmfile_init_fn *init, shmfile_check_fn *check, void *arg);
/* Unmaps. f can be closed twice. */
void shmfile_close(struct shmfile *f);

/* Joins dir and name into buf ("dir/name"). Returns 0 or -1 (too long). */
int shmfile_path(char *buf, size_t len, const char *dir, const char *name);

/* SipHash-2-4 of len bytes under the 128-bit seed, twice with derived keys:
 * a 128-bit identity in out[0], out[1]. tweak separates namespaces (kinds of
 * counters). Both words are never 0. */
void shmfile_hash128(const uint64_t seed[2], uint64_t tweak, const void *data, size_t len,
		     uint64_t out[2]);
/* Fills seed with random bytes (getrandom; time and pid if that fails). */
void shmfile_seed(uint64_t seed[2]);

/* Whether the process pid is gone: no such process, or a zombie that nobody has
 * reaped yet (it can never again release anything). A process of another user
 * counts as alive. Used to take back what a killed process held. */
int shmfile_pid_dead(int pid);

#endif
