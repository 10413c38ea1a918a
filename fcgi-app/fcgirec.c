/* FastCGI records. See fcgirec.h. */
#include "fcgi-app/fcgirec.h"

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
