/* FastCGI records. See fcgirec.h. */
#include "fcgi-app/fcgirec.h"

#include <stdlib.h>
#include <string.h>

int fcgirec_take(struct fcgirec_reader *rd, const char *p, size_t n,
		 int (*content)(void *ctx, int type, const char *p, size_t n), void *ctx)
{
	if (rd->ended && n)
		return -1;	/* nothing may follow the end */
	while (n) {
		size_t k;

		if (rd->hlen < 8) {
			k = 8 - rd->hlen < n ? 8 - rd->hlen : n;
			memcpy(rd->h + rd->hlen, p, k);
			rd->hlen += k;
			p += k;
			n -= k;
			if (rd->hlen < 8)
				return 0;
			if (rd->h[0] != 1)
				return -1;
			rd->acked = 1;
			rd->left = (size_t)rd->h[4] << 8 | rd->h[5];
			rd->pad = rd->h[6];
			if (rd->h[1] != FCGIREC_GET_VALUES_RESULT && rd->h[1] != FCGIREC_UNKNOWN_TYPE &&
			    (rd->h[2] << 8 | rd->h[3]) != 1)
				return -1;
		}
		k = rd->left < n ? rd->left : n;
		if (k && (rd->h[1] == FCGIREC_STDOUT || rd->h[1] == FCGIREC_STDERR) &&
		    content(ctx, rd->h[1], p, k) != 0)
			return -1;
		rd->left -= k;
		p += k;
		n -= k;
		k = rd->pad < n ? rd->pad : n;
		rd->pad -= k;
		p += k;
		n -= k;
		if (rd->left == 0 && rd->pad == 0) {
			if (rd->h[1] == FCGIREC_END_REQUEST)
				rd->ended = 1;
			rd->hlen = 0;
			if (rd->ended && n)
				return -1;	/* nothing may follow the end */
		}
	}
	return 0;
}

int fcgirec_params(const char *params, size_t plen, char ***envp)
{
	const unsigned char *p, *end = (const unsigned char *)params + plen;
	size_t n = 0, i = 0;
	char **v = NULL, *s = NULL;

	*envp = NULL;
	for (int pass = 0; pass < 2; pass++) {
		p = (const unsigned char *)params;
		while (p < end) {
			size_t len[2];

			for (int k = 0; k < 2; k++) {
				if (p >= end)
					goto bad;
				if (*p & 0x80) {
					if (end - p < 4)
						goto bad;
					len[k] = ((size_t)(p[0] & 0x7f) << 24) | (size_t)p[1] << 16 |
						 (size_t)p[2] << 8 | p[3];
					p += 4;
				} else {
					len[k] = *p++;
				}
			}
			if (len[0] > (size_t)(end - p) || len[1] > (size_t)(end - p) - len[0])
				goto bad;
			if (pass) {
				v[i++] = s;
				memcpy(s, p, len[0]);
				s += len[0];
				*s++ = '=';
				memcpy(s, p + len[0], len[1]);
				s += len[1];
				*s++ = '\0';
			} else {
				n++;
			}
			p += len[0] + len[1];
		}
		if (!pass) {
			/* the pointers, then the strings: each pair's two lengths
			 * take at least the two bytes its '=' and NUL need */
			v = malloc((n + 1) * sizeof(char *) + plen + 1);
			if (!v)
				return -1;
			s = (char *)(v + n + 1);
		}
	}
	v[i] = NULL;
	*envp = v;
	return 0;
bad:
	free(v);
	return -1;
}
