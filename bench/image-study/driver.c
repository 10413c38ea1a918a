/*
 * driver — the measurements of the representation study, the same code for
 * both prototypes (linked with img.c or lmdb.c, see study.h and run):
 *
 *   DRIVER build FILE N        build_ms= peak_rss_kib= file_kib=
 *   DRIVER first FILE N        open_first_us=  (open + map + one lookup, this
 *                              process fresh: what a CGI request pays)
 *   DRIVER warm FILE N         lookup_ns= digest=  (median of 5 rounds of
 *                              200,000 random lookups after 1000 unmeasured)
 *   DRIVER priv FILE N         private_kib= image_rss_kib=  after 1000 random
 *                              lookups: Private_Clean + Private_Dirty of every
 *                              mapping but the store's files (mapped pages of
 *                              a file only this process maps count as private
 *                              in smaps; in production every worker shares
 *                              them), and the store's own resident pages
 *   DRIVER scan FILE N         ok= failed= digest=  one lookup of every API
 *                              ("/svcI/items"), failures counted, not fatal:
 *                              run on a damaged file to see what is noticed
 *   DRIVER swap FILE_A FILE_B N  swap_us=  median of 200 swaps: open the other
 *                              file, one lookup in it, close the old one
 *
 * Lookups: "/svc%05u/items" or "/svc%05u/items/ID" with GET, the API drawn
 * by xorshift from a fixed seed, so both prototypes see the same sequence.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "study.h"

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void make_path(char *buf, size_t size, uint64_t r, uint32_t n)
{
	uint32_t api = (uint32_t)(r % n);

	if ((r >> 40) & 1)
		snprintf(buf, size, "/svc%05u/items/%u", api, (unsigned)((r >> 20) % 100000));
	else
		snprintf(buf, size, "/svc%05u/items", api);
}

static uint64_t lookup_checked(struct store *s, const char *path)
{
	uint64_t d = store_lookup(s, path, "GET");

	if (!d) {
		fprintf(stderr, "%s: no route for GET %s\n", store_name, path);
		exit(1);
	}
	return d;
}

/* the store's files: "FILE" itself (image), or "FILE" as LMDB's data file */
static int is_store_line(const char *line, const char *file)
{
	const char *p = strchr(line, '/');

	return p && !strncmp(p, file, strlen(file)) && (p[strlen(file)] == '\n' ||
							 p[strlen(file)] == '\0');
}

static void private_memory(const char *file, long *priv_kib, long *store_kib)
{
	char line[4096], abs[4096];
	FILE *f = fopen("/proc/self/smaps", "r");
	int in_store = 0;

	if (!realpath(file, abs) || !f) {
		perror("smaps");
		exit(1);
	}
	*priv_kib = *store_kib = 0;
	while (fgets(line, sizeof(line), f)) {
		size_t tok = strcspn(line, " ");
		long kib;

		/* a mapping's first line: "start-end perms offset dev inode [path]";
		 * its fields follow as "Name: value kB" */
		if (tok && line[tok - 1] != ':' && memchr(line, '-', tok)) {
			in_store = is_store_line(line, abs);
			continue;
		}
		if (sscanf(line, "Rss: %ld kB", &kib) == 1 && in_store)
			*store_kib += kib;
		if ((sscanf(line, "Private_Clean: %ld kB", &kib) == 1 ||
		     sscanf(line, "Private_Dirty: %ld kB", &kib) == 1) && !in_store)
			*priv_kib += kib;
	}
	fclose(f);
}

int main(int argc, char **argv)
{
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	char path[64];
	uint32_t n;

	if (argc < 4) {
		fprintf(stderr, "usage: driver build|first|warm|priv|scan FILE N | swap A B N\n");
		return 2;
	}
	n = (uint32_t)strtoul(argv[argc - 1], NULL, 10);
	if (!n)
		return 2;
	if (!strcmp(argv[1], "build")) {
		struct stat st;
		char line[256];
		long hwm = -1;
		FILE *f;
		double t0 = now_us();

		if (store_build(argv[2], n) != 0)
			return 1;
		double ms = (now_us() - t0) / 1e3;
		/* VmHWM, not getrusage: Linux keeps ru_maxrss across execve, so that
		 * would report the parent's (Python's) peak when it is higher */
		f = fopen("/proc/self/status", "r");
		while (f && fgets(line, sizeof(line), f))
			sscanf(line, "VmHWM: %ld kB", &hwm);
		if (f)
			fclose(f);
		if (stat(argv[2], &st) != 0)
			return 1;
		printf("build_ms=%.1f peak_rss_kib=%ld file_kib=%lld\n", ms, hwm,
		       (long long)st.st_size / 1024);
		return 0;
	}
	if (!strcmp(argv[1], "first")) {
		double t0 = now_us();
		struct store *s = store_open(argv[2]);

		if (!s)
			return 1;
		make_path(path, sizeof(path), next_rand(&seed), n);
		lookup_checked(s, path);
		printf("open_first_us=%.1f\n", now_us() - t0);
		store_close(s);
		return 0;
	}
	if (!strcmp(argv[1], "warm") || !strcmp(argv[1], "priv")) {
		struct store *s = store_open(argv[2]);
		uint64_t digest = 0;
		enum { LOOKUPS = 200000 };
		static char paths[LOOKUPS][32];
		double round_ns[5];

		if (!s)
			return 1;
		for (int i = 0; i < 1000; i++) {
			make_path(path, sizeof(path), next_rand(&seed), n);
			digest ^= lookup_checked(s, path);
		}
		if (!strcmp(argv[1], "priv")) {
			long priv, img;

			private_memory(argv[2], &priv, &img);
			printf("private_kib=%ld image_rss_kib=%ld\n", priv, img);
			store_close(s);
			return 0;
		}
		for (int i = 0; i < LOOKUPS; i++)
			make_path(paths[i], sizeof(paths[i]), next_rand(&seed), n);
		for (int r = 0; r < 5; r++) {
			double t0 = now_us();

			for (int i = 0; i < LOOKUPS; i++)
				digest ^= lookup_checked(s, paths[i]) + (uint64_t)i;
			round_ns[r] = (now_us() - t0) * 1e3 / LOOKUPS;
		}
		qsort(round_ns, 5, sizeof(double), cmp_double);
		printf("lookup_ns=%.1f digest=%016llx\n", round_ns[2], (unsigned long long)digest);
		store_close(s);
		return 0;
	}
	if (!strcmp(argv[1], "scan")) {
		struct store *s = store_open(argv[2]);
		uint64_t digest = 0;
		unsigned long ok = 0, failed = 0;

		if (!s) {
			printf("ok=0 failed=all digest=0\n");
			return 0;
		}
		for (uint32_t i = 0; i < n; i++) {
			uint64_t d;

			snprintf(path, sizeof(path), "/svc%05u/items", i);
			d = store_lookup(s, path, "GET");
			if (d)
				ok++;
			else
				failed++;
			digest = digest * 31 + d;
		}
		printf("ok=%lu failed=%lu digest=%016llx\n", ok, failed, (unsigned long long)digest);
		store_close(s);
		return 0;
	}
	if (!strcmp(argv[1], "swap") && argc == 5) {
		struct store *cur = store_open(argv[2]);
		double t[200];

		if (!cur)
			return 1;
		for (int i = 0; i < 200; i++) {
			const char *next = argv[2 + (i + 1) % 2];
			double t0 = now_us();
			struct store *s = store_open(next);

			if (!s)
				return 1;
			make_path(path, sizeof(path), next_rand(&seed), n);
			lookup_checked(s, path);
			store_close(cur);
			cur = s;
			t[i] = now_us() - t0;
		}
		qsort(t, 200, sizeof(double), cmp_double);
		printf("swap_us=%.1f\n", t[100]);
		store_close(cur);
		return 0;
	}
	fprintf(stderr, "driver: unknown mode '%s'\n", argv[1]);
	return 2;
}
