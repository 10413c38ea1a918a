#include "common/shmfile.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

#define SHMFILE_ATTEMPTS 16

int shmfile_path(char *buf, size_t len, const char *dir, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);

	if (n < 0 || (size_t)n >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

#define SIP_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIP_ROUND(v0, v1, v2, v3) do { \
	v0 += v1; v1 = SIP_ROTL(v1, 13); v1 ^= v0; v0 = SIP_ROTL(v0, 32); \
	v2 += v3; v3 = SIP_ROTL(v3, 16); v3 ^= v2; \
	v0 += v3; v3 = SIP_ROTL(v3, 21); v3 ^= v0; \
	v2 += v1; v1 = SIP_ROTL(v1, 17); v1 ^= v2; v2 = SIP_ROTL(v2, 32); \
} while (0)

static uint64_t siphash24(uint64_t k0, uint64_t k1, const unsigned char *in, size_t len)
{
	uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
	uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
	uint64_t m, b = (uint64_t)len << 56;
	size_t i, j, end = len - len % 8;

	for (i = 0; i < end; i += 8) {
		m = 0;
		for (j = 0; j < 8; j++)
			m |= (uint64_t)in[i + j] << (8 * j);
		v3 ^= m;
		SIP_ROUND(v0, v1, v2, v3);
		SIP_ROUND(v0, v1, v2, v3);
		v0 ^= m;
	}
	for (j = 0; j < len % 8; j++)
		b |= (uint64_t)in[end + j] << (8 * j);
	v3 ^= b;
	SIP_ROUND(v0, v1, v2, v3);
	SIP_ROUND(v0, v1, v2, v3);
	v0 ^= b;
	v2 ^= 0xff;
	SIP_ROUND(v0, v1, v2, v3);
	SIP_ROUND(v0, v1, v2, v3);
	SIP_ROUND(v0, v1, v2, v3);
	SIP_ROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

void shmfile_hash128(const uint64_t seed[2], uint64_t tweak, const void *data, size_t len,
		     uint64_t out[2])
{
	const uint64_t t = tweak * 0x9e3779b97f4a7c15ULL;

	out[0] = siphash24(seed[0] ^ t, seed[1], data, len);
	out[1] = siphash24(seed[1] ^ 0x5bd1e9955bd1e995ULL, seed[0] ^ t, data, len);
	if (out[0] == 0)
		out[0] = 1;
	if (out[1] == 0)
		out[1] = 1;
}

void shmfile_seed(uint64_t seed[2])
{
	struct timespec ts;

	if (getrandom(seed, 2 * sizeof(seed[0]), GRND_NONBLOCK) == (ssize_t)(2 * sizeof(seed[0])))
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	seed[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)ts.tv_sec;
	seed[1] = (uint64_t)getpid() * 0xc2b2ae3d27d4eb4fULL ^ (uint64_t)ts.tv_nsec;
}

int shmfile_pid_dead(int pid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd;

	if (pid <= 0)
		return 1;
	if (kill((pid_t)pid, 0) < 0 && errno == ESRCH)
		return 1;
	/* a killed child stays a zombie until its parent reaps it; it will never
	 * release what it held, so it counts as dead */
	if (snprintf(path, sizeof(path), "/proc/%d/stat", pid) >= (int)sizeof(path))
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return 0;
	return p[2] == 'Z' || p[2] == 'X';
}

/* Maps fd (size bytes) and checks that it is a whole file of the wanted kind.
 * Returns 0 (mapped), 1 (mismatch: replace it) or -1 (error, logged). */
static int shmfile_map_existing(struct shmfile *f, int fd, const char *path,
				const struct shmfile_want *want, shmfile_check_fn *check,
				void *arg)
{
	const struct shmfile_hdr *h;
	struct stat st;
	void *base;

	if (fstat(fd, &st) < 0) {
		log_err("cannot open '%s': %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		log_err("cannot open '%s': not a regular file", path);
		return -1;
	}
	if ((size_t)st.st_size < sizeof(struct shmfile_hdr) ||
	    (uintmax_t)st.st_size > SHMFILE_MAX_SIZE)
		return 1;
	base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		log_err("cannot map '%s': %s", path, strerror(errno));
		return -1;
	}
	h = base;
	if (memcmp(h->magic, want->magic, sizeof(h->magic)) != 0 ||
	    h->version != want->version || h->hdr_size != sizeof(*h) ||
	    h->size != (uint64_t)st.st_size ||
	    (check && check(base, (size_t)st.st_size, arg) < 0)) {
		munmap(base, (size_t)st.st_size);
		return 1;
	}
	f->base = base;
	f->size = (size_t)st.st_size;
	return 0;
}

/* Builds a complete new file under a temporary name. Returns 0 with the name
 * in tmp, or -1 (logged). */
static int shmfile_build(const char *path, char *tmp, size_t tmplen,
			 const struct shmfile_want *want, shmfile_init_fn *init, void *arg)
{
	struct shmfile_hdr *h;
	void *base = MAP_FAILED;
	int fd = -1, rc = -1, e;

	if (snprintf(tmp, tmplen, "%s.new.%ld", path, (long)getpid()) >= (int)tmplen) {
		log_err("cannot create '%s': name too long", path);
		return -1;
	}
	/* a leftover of a dead process with our pid */
	unlink(tmp);
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, SHMFILE_MODE);
	if (fd < 0) {
		log_err("cannot create '%s': %s", tmp, strerror(errno));
		return -1;
	}
	if (fchmod(fd, SHMFILE_MODE) < 0) {
		log_err("cannot chmod '%s': %s", tmp, strerror(errno));
		goto out;
	}
	e = posix_fallocate(fd, 0, (off_t)want->size);
	if (e != 0) {
		log_err("cannot size '%s': %s", tmp, strerror(e));
		goto out;
	}
	base = mmap(NULL, want->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		log_err("cannot map '%s': %s", tmp, strerror(errno));
		goto out;
	}
	h = base;
	memcpy(h->magic, want->magic, sizeof(h->magic));
	h->version = want->version;
	h->hdr_size = sizeof(*h);
	h->size = want->size;
	if (init && init(base, want->size, arg) < 0)
		goto out;
	rc = 0;
out:
	if (base != MAP_FAILED)
		munmap(base, want->size);
	close(fd);
	if (rc < 0)
		unlink(tmp);
	return rc;
}

/* Whether path still names the file open on fd. */
static int shmfile_same(int fd, const char *path)
{
	struct stat a, b;

	if (fstat(fd, &a) < 0 || stat(path, &b) < 0)
		return 0;
	return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

int shmfile_open(struct shmfile *f, const char *path, const struct shmfile_want *want,
		 shmfile_init_fn *init, shmfile_check_fn *check, void *arg)
{
	char tmp[4096 + 32];
	int attempt, fd, r;

	if (want->size < sizeof(struct shmfile_hdr) || want->size > SHMFILE_MAX_SIZE) {
		log_err("cannot create '%s': bad size %zu", path, want->size);
		return -1;
	}
	f->created = 0;
	for (attempt = 0; attempt < SHMFILE_ATTEMPTS; attempt++) {
		fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0 && errno != ENOENT) {
			log_err("cannot open '%s': %s", path, strerror(errno));
			return -1;
		}
		if (fd < 0) {
			if (shmfile_build(path, tmp, sizeof(tmp), want, init, arg) < 0)
				return -1;
			r = link(tmp, path);
			if (r < 0 && errno != EEXIST) {
				log_err("cannot create '%s': %s", path, strerror(errno));
				unlink(tmp);
				return -1;
			}
			unlink(tmp);
			f->created = r == 0;
			continue;	/* map what path names now */
		}
		r = shmfile_map_existing(f, fd, path, want, check, arg);
		if (r == 0) {
			close(fd);
			return 0;
		}
		if (r < 0) {
			close(fd);
			return -1;
		}
		/* a mismatch: one process replaces it, the others then map the new one */
		if (flock(fd, LOCK_EX) < 0) {
			log_err("cannot lock '%s': %s", path, strerror(errno));
			close(fd);
			return -1;
		}
		if (shmfile_same(fd, path)) {
			log_warn("replacing '%s': not a store of this version", path);
			if (shmfile_build(path, tmp, sizeof(tmp), want, init, arg) < 0) {
				close(fd);
				return -1;
			}
			if (rename(tmp, path) < 0) {
				log_err("cannot replace '%s': %s", path, strerror(errno));
				unlink(tmp);
				close(fd);
				return -1;
			}
			f->created = 1;
		}
		close(fd);	/* drops the lock */
	}
	log_err("cannot open '%s': it keeps changing", path);
	return -1;
}

void shmfile_close(struct shmfile *f)
{
	if (f->base)
		munmap(f->base, f->size);
	f->base = NULL;
	f->size = 0;
}
