/*
 * regex — a small POSIX ERE matcher that never backtracks, for the
 * expression language's matches() (config-v1.md, Expressions).
 *
 *   struct regex *re;
 *   char why[128];
 *   if (regex_compile(pat, strlen(pat), &re, why, sizeof(why)) != 0) report why;
 *   ... per request ...
 *   switch (regex_search(re, s, n, max_steps, &steps)) ...
 *           1 match, 0 no match, -1 no memory, -2 over max_steps
 *   regex_free(re);
 *
 * Syntax: literals, '.', bracket expressions with ranges, negation and the
 * classes [:alpha:] [:digit:] [:alnum:] [:space:] [:upper:] [:lower:]
 * [:xdigit:] [:punct:], '^' and '$' (start and end of the subject; no
 * multi-line mode), '*' '+' '?' '{m}' '{m,}' '{m,n}' (m, n <= 255), '|', and
 * groups. '\' before a punctuation byte makes it literal. Back-references,
 * '\' before a letter or digit, '(?', collating elements and a repeat of a
 * repeat ("a**", "a+?": undefined in POSIX, lazy elsewhere) are refused at
 * compile time rather than silently meaning something else.
 *
 * Matching is a Thompson NFA simulation (a Pike VM without captures): the
 * search is unanchored and takes O(n * program size) steps, whatever the
 * pattern. Bounded repeats are expanded into the program, whose size is capped
 * (REGEX_MAX_PROG), so the work per subject byte is capped too.
 *
 * Ownership: a regex is immutable once compiled and may be shared by threads;
 * the search allocates its own scratch. Errors: regex_compile 0/-1 with why
 * ("column N: ..."), regex_search 1/0/-1/-2.
 */
#ifndef HOSTGATE_REGEX_H
#define HOSTGATE_REGEX_H

#include <stddef.h>

#define REGEX_MAX_PROG 2048	/* instructions once repeats are expanded */
#define REGEX_MAX_REPEAT 255	/* the m and n of {m,n} (POSIX RE_DUP_MAX) */
#define REGEX_MAX_DEPTH 32	/* group nesting */

struct regex;

/* Compiles p[0..n). Returns 0 with a new *out, or -1 with why. */
int regex_compile(const char *p, size_t n, struct regex **out, char *why, size_t why_cap);
/* Searches s[0..n) for a match anywhere, giving up after max_steps
 * instructions (0: no limit; a long subject times a large program is linear
 * but can still be slow). Returns 1 (match), 0 (none), -1 (no memory), -2
 * (over max_steps). *steps (may be NULL) gets the instructions executed,
 * which is at most (n + 1) * 2 * regex_size(re). */
int regex_search(const struct regex *re, const char *s, size_t n, unsigned long max_steps,
		 unsigned long *steps);
/* Returns the number of instructions in the compiled program. */
size_t regex_size(const struct regex *re);
/* Frees re; NULL is fine. */
void regex_free(struct regex *re);

#endif
