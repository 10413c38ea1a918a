/*
 * route-time — how long route_match() takes, for bench/scale's "route
 * matching" columns: on a gateway compiled from the document in memory
 * (gw_load_file(), the path without an image), or with --image on the gateway
 * image_open() returns for DOC.image (what every process does when the image
 * is there). Paths are those bench/gen-doc's APIs serve ("/svc%05d/items/ID",
 * API chosen by a fixed pseudo-random sequence, so every size sees the same
 * kind of spread) and one that no API serves ("/nope").
 *
 *   route-time [--image] DOC N_APIS [LOOKUPS [HOSTS]]
 *
 * HOSTS=1: the document has gen-doc --hostnames, so each lookup sends the
 * first hostname of its API ("h%d-0.example") as Host.
 *
 * Prints one line of key=value (medians of 5 rounds of LOOKUPS each):
 *   load_ms   gw_load_file(), or open + fstat + image_open()
 *   hit_ns    a match of a random API's path. Through the image this is a
 *             process's steady state: the APIs looked up are HOT_APIS of
 *             them, each compiled once before timing (route table probe,
 *             the API's own trie; not the compile)
 *   miss_ns   "/nope"
 * and with --image also:
 *   find_ns   the image's route table alone (image_find_api) on a random API
 *             of all N: the part of a match that could grow with N
 *   first_us  route_match of an API this process has not compiled yet (its
 *             block is compiled: what a CGI request pays once per hit),
 *             median over up to 400 distinct APIs in a fresh image
 *   spread_ns route_match over random APIs of all N, as a worker whose
 *             traffic spreads over more APIs than its cache holds (LOOKUPS/50
 *             of them: nearly every one compiles a block)
 * Built by bench/scale against build/libpolicy.a; benchmark code, not product.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "policy/gateway.h"
#include "policy/image.h"
#include "policy/route.h"

#define ROUNDS 5
/* the same number of distinct APIs at every size (the smallest document has
 * 10), so that only the document's size differs: more would measure the
 * CPU caches' hold on more compiled APIs, not the route table */
#define HOT_APIS 8
#define FIRST_APIS 400

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
	qsort(v, n, sizeof(double), cmp_double);
	return v[n / 2];
}

/* xorshift: the same sequence in every run and for both prototypes */
static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static struct gateway *open_image(const char *doc_path, double *ms)
{
	char path[4096], why[512];
	enum image_status status;
	struct gateway *gw;
	struct stat st, dst;
	double t0;
	int fd;

	if (snprintf(path, sizeof(path), "%s%s", doc_path, IMAGE_SUFFIX) >= (int)sizeof(path))
		return NULL;
	if (stat(doc_path, &dst) != 0) {
		perror(doc_path);
		return NULL;
	}
	t0 = now_ns();
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		perror(path);
		return NULL;
	}
	gw = image_open(fd, &st, &dst, &status, why, sizeof(why));
	close(fd);
	*ms = (now_ns() - t0) / 1e6;
	if (!gw)
		fprintf(stderr, "route-time: cannot open '%s': %s\n", path, why);
	return gw;
}

/* Times route_match of paths[idx[i]] for i < n. Returns ns per lookup;
 * *ok counts the matches. */
static double time_matches(const struct gateway *gw, char (*paths)[64], char (*hosts)[32],
			   int with_hosts, const unsigned long *idx, unsigned long n,
			   unsigned long *ok)
{
	struct route_match m;
	double t0 = now_ns();

	for (unsigned long i = 0; i < n; i++) {
		const char *p = paths[idx[i]];

		if (route_match(gw, p, strlen(p), with_hosts ? hosts[idx[i]] : NULL, "GET",
				&m) == ROUTE_OK)
			(*ok)++;
	}
	return (now_ns() - t0) / (double)n;
}

static double time_misses(const struct gateway *gw, unsigned long n, unsigned long *ok)
{
	struct route_match m;
	double t0 = now_ns();

	for (unsigned long i = 0; i < n; i++)
		if (route_match(gw, "/nope", 5, NULL, "GET", &m) == ROUTE_NO_API)
			(*ok)++;
	return (now_ns() - t0) / (double)n;
}

/* The key route.c builds for "/svcNNNNN/items/ID": decoded segments joined
 * by NUL, with the length of each prefix. */
struct key {
	char s[48];
	size_t ends[4];
};

static void make_key(struct key *k, unsigned long api, unsigned long id)
{
	int len = snprintf(k->s, sizeof(k->s), "svc%05lu%citems%c%lu", api, '\0', '\0', id);

	k->ends[0] = 0;
	k->ends[1] = strlen(k->s);
	k->ends[2] = k->ends[1] + 1 + 5;
	k->ends[3] = (size_t)len;
}

/* image_find_api alone: the route table */
static double time_find(struct gw_image *img, const struct key *keys, unsigned long n,
			char (*hosts)[32], int with_hosts, unsigned long *ok)
{
	double t0 = now_ns();
	size_t used;

	for (unsigned long i = 0; i < n; i++)
		if (image_find_api(img, keys[i].s, keys[i].ends, 3, with_hosts ? hosts[i] : NULL,
				   &used) >= 0)
			(*ok)++;
	return (now_ns() - t0) / (double)n;
}

int main(int argc, char **argv)
{
	struct cfg_errors errs = CFG_ERRORS_INIT;
	struct gateway *gw;
	double t0, load_ms = 0, hit[ROUNDS], miss[ROUNDS], find[ROUNDS], spread[ROUNDS];
	double first[FIRST_APIS];
	unsigned long n_apis, lookups = 200000, *api, *hot, *all, ok = 0, want = 0, n_first = 0;
	unsigned long n_spread;
	struct key *keys;
	char (*paths)[64], (*hosts)[32];
	int image = argc > 1 && !strcmp(argv[1], "--image");
	int with_hosts;
	uint64_t s = 0x9e3779b97f4a7c15ull;

	if (image) {
		argc--;
		argv++;
	}
	if (argc < 3) {
		fprintf(stderr, "usage: route-time [--image] DOC N_APIS [LOOKUPS [HOSTS]]\n");
		return 2;
	}
	with_hosts = argc > 4 && !strcmp(argv[4], "1");
	n_apis = strtoul(argv[2], NULL, 10);
	if (argc > 3)
		lookups = strtoul(argv[3], NULL, 10);
	if (n_apis == 0 || lookups == 0)
		return 2;
	/* the paths are made before timing, so only matching is measured */
	paths = malloc(lookups * sizeof(*paths));
	hosts = malloc(lookups * sizeof(*hosts));
	api = malloc(lookups * sizeof(*api));
	hot = malloc(lookups * sizeof(*hot));
	all = malloc(lookups * sizeof(*all));
	keys = malloc(lookups * sizeof(*keys));
	if (!paths || !hosts || !api || !hot || !all || !keys)
		return 1;
	for (unsigned long i = 0; i < lookups; i++) {
		api[i] = (unsigned long)(next_rand(&s) % n_apis);
		snprintf(paths[i], sizeof(paths[i]), "/svc%05lu/items/%lu", api[i], i);
		snprintf(hosts[i], sizeof(hosts[i]), "h%lu-0.example", api[i]);
		make_key(&keys[i], api[i], i);
		all[i] = i;
		/* lookups of HOT_APIS distinct paths (the first ones), in
		 * random order */
		hot[i] = (unsigned long)(next_rand(&s) % (lookups < HOT_APIS ? lookups : HOT_APIS));
	}
	if (image) {
		gw = open_image(argv[1], &load_ms);
		if (!gw)
			return 1;
		/* first use of distinct APIs (the first FIRST_APIS lookups'
		 * APIs, each once): every one compiles its block */
		for (unsigned long i = 0; i < lookups && n_first < FIRST_APIS; i++) {
			unsigned long seen = 0, one = i, c = 0;

			for (unsigned long j = 0; j < i && !seen; j++)
				seen = api[j] == api[i];
			if (seen)
				continue;
			t0 = now_ns();
			time_matches(gw, paths, hosts, with_hosts, &one, 1, &c);
			first[n_first++] = (now_ns() - t0) / 1e3;
			if (c != 1) {
				fprintf(stderr, "route-time: '%s' did not match\n", paths[i]);
				return 1;
			}
		}
		gw_free(gw);
		gw = open_image(argv[1], &load_ms);
		if (!gw)
			return 1;
	} else {
		t0 = now_ns();
		gw = gw_load_file(argv[1], &errs);
		load_ms = (now_ns() - t0) / 1e6;
		if (!gw) {
			fprintf(stderr, "route-time: cannot load '%s': %s\n", argv[1],
				errs.n ? errs.msg[0] : "?");
			return 1;
		}
	}
	/* warm: the hot APIs compiled (image) and the caches as in a worker */
	time_matches(gw, paths, hosts, with_hosts, hot, lookups, &ok);
	ok = 0;
	/* a spread lookup compiles a block nearly every time: fewer of them */
	n_spread = lookups / 50 ? lookups / 50 : 1;
	for (int round = 0; round < ROUNDS; round++) {
		hit[round] = time_matches(gw, paths, hosts, with_hosts, image ? hot : all, lookups,
					  &ok);
		miss[round] = time_misses(gw, lookups, &ok);
		want += 2 * lookups;
		if (image) {
			find[round] = time_find(gw->image, keys, lookups, hosts, with_hosts, &ok);
			spread[round] = time_matches(gw, paths, hosts, with_hosts, all, n_spread,
						     &ok);
			want += lookups + n_spread;
		}
	}
	if (ok != want) {
		fprintf(stderr, "route-time: %lu of %lu lookups gave the expected answer\n", ok,
			want);
		return 1;
	}
	printf("load_ms=%.3f hit_ns=%.1f miss_ns=%.1f", load_ms, median(hit, ROUNDS),
	       median(miss, ROUNDS));
	if (image)
		printf(" find_ns=%.1f first_us=%.1f spread_ns=%.1f", median(find, ROUNDS),
		       median(first, n_first), median(spread, ROUNDS));
	printf("\n");
	free(paths);
	free(hosts);
	free(api);
	free(hot);
	free(all);
	free(keys);
	gw_free(gw);
	cfg_errors_release(&errs);
	return 0;
}
