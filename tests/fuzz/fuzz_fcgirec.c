/*
 * fuzz_fcgirec — what a CGI relay reads from a resident worker
 * (fcgi-app/resident.c): the FastCGI record reader (fcgirec_take) on
 * arbitrary bytes, and the STDOUT it yields through the NPH framing
 * (fcgi-app/nph.c), as the relay does under an nph- name.
 * The first byte seeds how the rest is cut into pieces; the rest is the
 * worker's bytes. Invariants: the reader gives the same result, byte for
 * byte, whether the bytes come whole or in those pieces, and nothing after
 * its END_REQUEST; the NPH framing gives the same head and, once its chunks
 * are decoded, the same body (each write is a chunk of its own), its chunks
 * well formed, the last one only at the end of a whole answer; an answer
 * framed by NPH starts with a status line.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fcgi-app/fcgirec.h"
#include "fcgi-app/nph.h"
#include "tests/fuzz/check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct sink {
	char *p;
	size_t len, cap;
};

static int sink_add(struct sink *s, const char *p, size_t n)
{
	if (s->len + n > s->cap) {
		size_t cap = s->cap ? s->cap : 256;
		char *q;

		while (cap < s->len + n)
			cap *= 2;
		q = realloc(s->p, cap);
		CHECK(q != NULL);
		s->p = q;
		s->cap = cap;
	}
	if (n)
		memcpy(s->p + s->len, p, n);
	s->len += n;
	return 0;
}

struct out {
	struct sink stdout_, stderr_;
};

static int on_content(void *ctx, int type, const char *p, size_t n)
{
	struct out *o = ctx;

	CHECK(n > 0);
	CHECK(type == FCGIREC_STDOUT || type == FCGIREC_STDERR);
	return sink_add(type == FCGIREC_STDOUT ? &o->stdout_ : &o->stderr_, p, n);
}

/* A small generator, so that the cuts depend on the first byte only. */
static size_t next_cut(uint32_t *x, size_t left)
{
	*x = *x * 1103515245u + 12345u;
	return left ? 1 + (*x >> 16) % (left < 40 ? left : 40) : 0;
}

struct read_result {
	int rc, acked, ended;
	size_t used;		/* bytes fed before the failure, or all */
	struct out o;
};

static void read_records(const char *p, size_t n, uint32_t seed, int whole, struct read_result *r)
{
	struct fcgirec_reader rd;
	size_t at = 0;

	memset(&rd, 0, sizeof(rd));
	memset(r, 0, sizeof(*r));
	while (at < n) {
		size_t k = whole ? n : next_cut(&seed, n - at);

		r->rc = fcgirec_take(&rd, p + at, k, on_content, &r->o);
		at += k;
		if (r->rc != 0)
			break;
	}
	r->used = at;
	r->acked = rd.acked;
	r->ended = rd.ended;
}

static struct nph nph_state;

static int nph_out(void *ctx, const char *p, size_t n)
{
	return sink_add(ctx, p, n);
}

/* The STDOUT through the NPH framing: the output, and the first failure. */
static int frame(const struct sink *in, uint32_t seed, int whole, int ended, struct sink *out,
		 int *chunked)
{
	size_t at = 0;
	int rc = 0;

	nph_init(&nph_state, seed & 1 ? "HTTP/1.0" : "HTTP/1.1", seed & 2 ? "HEAD" : "GET",
		 nph_out, out);
	while (at < in->len && rc == 0) {
		size_t k = whole ? in->len : next_cut(&seed, in->len - at);

		rc = nph_write(&nph_state, in->p + at, k);
		at += k;
	}
	if (rc == 0 && ended)
		rc = nph_finish(&nph_state, 0);
	if (out->len)
		CHECK(out->len >= 9 && memcmp(out->p, "HTTP/1.", 7) == 0);
	*chunked = nph_state.chunked;
	return rc;
}

/* The head's length (to its blank line), or all of it when it has none. */
static size_t head_len(const struct sink *s)
{
	for (size_t i = 0; i + 4 <= s->len; i++)
		if (memcmp(s->p + i, "\r\n\r\n", 4) == 0)
			return i + 4;
	return s->len;
}

/* Masks the value of the head's last Date line: the framer adds one with the
 * time, which may turn to the next second between two runs. */
static void undate(struct sink *s)
{
	size_t h = head_len(s);

	for (size_t i = h; i-- > 0;)
		if (i + 8 <= h && memcmp(s->p + i, "\r\nDate: ", 8) == 0) {
			for (size_t j = i + 8; j + 1 < h && s->p[j] != '\r'; j++)
				s->p[j] = 'x';
			return;
		}
}

/* Decodes the chunks of s after its head into body; returns whether the last
 * chunk came. Every chunk must be whole, and nothing may follow the last. */
static int dechunk(const struct sink *s, struct sink *body)
{
	size_t at = head_len(s);

	while (at < s->len) {
		size_t size = 0, digits = 0;

		while (at < s->len && s->p[at] != '\r') {
			char c = s->p[at++];

			CHECK((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'));
			CHECK(++digits <= 8);
			size = size * 16 + (size_t)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
		}
		CHECK(digits > 0 && at + 2 <= s->len && s->p[at + 1] == '\n');
		at += 2;
		CHECK(at + size + 2 <= s->len && s->p[at + size] == '\r' && s->p[at + size + 1] == '\n');
		if (size == 0) {
			CHECK(at + 2 == s->len);
			return 1;
		}
		sink_add(body, s->p + at, size);
		at += size + 2;
	}
	return 0;
}

static void free_result(struct read_result *r)
{
	free(r->o.stdout_.p);
	free(r->o.stderr_.p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct read_result a, b;
	struct sink fa = { 0 }, fb = { 0 };
	uint32_t seed;
	const char *p;
	size_t n;
	int ra, rb, ca, cb;

	if (size < 1)
		return 0;
	seed = data[0];
	p = (const char *)data + 1;
	n = size - 1;

	read_records(p, n, seed, 1, &a);
	read_records(p, n, seed, 0, &b);
	CHECK(a.rc == b.rc && a.acked == b.acked && a.ended == b.ended);
	CHECK(a.o.stdout_.len == b.o.stdout_.len && a.o.stderr_.len == b.o.stderr_.len);
	CHECK(!a.o.stdout_.len || memcmp(a.o.stdout_.p, b.o.stdout_.p, a.o.stdout_.len) == 0);
	CHECK(!a.o.stderr_.len || memcmp(a.o.stderr_.p, b.o.stderr_.p, a.o.stderr_.len) == 0);
	/* a record's content never comes from bytes the reader did not take */
	CHECK(a.o.stdout_.len + a.o.stderr_.len <= b.used);
	/* an END_REQUEST came whole: a header at least (a byte after it is
	 * refused in whichever piece it comes: the comparison above) */
	if (a.ended)
		CHECK(n >= 8);

	ra = frame(&a.o.stdout_, seed, 1, a.ended, &fa, &ca);
	rb = frame(&a.o.stdout_, seed, 0, a.ended, &fb, &cb);
	CHECK(ra == rb && ca == cb && head_len(&fa) == head_len(&fb));
	undate(&fa);
	undate(&fb);
	CHECK(!head_len(&fa) || memcmp(fa.p, fb.p, head_len(&fa)) == 0);
	/* the framer's own last line ends the head: no blank line came before */
	if (fa.len) {
		static const char conn[] = "Connection: close\r\n\r\n",
				  te[] = "Transfer-Encoding: chunked\r\n\r\n";
		size_t h = head_len(&fa), want = ca ? sizeof(te) - 1 : sizeof(conn) - 1;

		CHECK(h >= want && memcmp(fa.p + h - want, ca ? te : conn, want) == 0);
	}
	if (ca) {
		struct sink ba = { 0 }, bb = { 0 };
		int la = dechunk(&fa, &ba), lb = dechunk(&fb, &bb);

		/* the last chunk ends a whole answer, and only that */
		CHECK(la == lb && la == (ra == 0 && a.ended));
		CHECK(ba.len == bb.len && (!ba.len || memcmp(ba.p, bb.p, ba.len) == 0));
		free(ba.p);
		free(bb.p);
	} else {
		CHECK(fa.len == fb.len && (!fa.len || memcmp(fa.p, fb.p, fa.len) == 0));
	}

	free(fa.p);
	free(fb.p);
	free_result(&a);
	free_result(&b);
	return 0;
}
