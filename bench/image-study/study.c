/* study — helpers both prototypes share (see study.h) */
#include <ctype.h>
#include <string.h>

#include "study.h"

int study_tmpl_match(const char *tmpl, size_t tlen, const char *rest)
{
	const char *t = tmpl, *tend = tmpl + tlen, *p = rest;
	int score = 1;

	while (t < tend) {
		const char *ts, *ps;
		size_t tl, pl;

		if (*t != '/' || *p != '/')
			return 0;
		ts = ++t;
		while (t < tend && *t != '/')
			t++;
		tl = (size_t)(t - ts);
		ps = ++p;
		while (*p && *p != '/')
			p++;
		pl = (size_t)(p - ps);
		if (tl && ts[0] == '{') {
			if (!pl)
				return 0;
			continue;
		}
		if (tl != pl || strncasecmp(ts, ps, tl))
			return 0;
		score++;
	}
	return *p == '\0' || (p[0] == '/' && p[1] == '\0') ? score : 0;
}

uint64_t study_mix(uint64_t h, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
	return h;
}
