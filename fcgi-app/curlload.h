/*
 * curlload — libcurl loaded on first use, not at start-up.
 *
 * Loading Debian's libcurl (33 libraries: GnuTLS through librtmp and
 * libldap, Kerberos, libssh2) costs a CGI process about 7 ms of CPU, most of
 * a request. Most answers decided without a backend (404, 401, 429,
 * return-response, the health path) never need it, so hostgate-fcgi is not
 * linked with libcurl: this module defines the libcurl functions the
 * forwarder calls, and the first call dlopen()s CURLLOAD_SONAME (libcurl.so.4,
 * the ABI libcurl has kept since 2006; the Makefile may name another) and
 * resolves the real ones. The forwarder includes <curl/curl.h> as before.
 *
 *   curlload_open() before the first libcurl call of a request path;
 *   later calls cost one branch.
 *
 * Error contract: curlload_open() returns 0, or -1 when the library or one of
 * its symbols is missing (logged once; every later call returns -1 at once).
 * A wrapper called while the library is unavailable fails as libcurl would
 * when out of memory (NULL, CURLE_FAILED_INIT, CURLUE_OUT_OF_MEMORY) and
 * cleanups do nothing, so the callers' existing error paths answer 502.
 */
#ifndef HOSTGATE_CURLLOAD_H
#define HOSTGATE_CURLLOAD_H

/* Returns 0 when libcurl is loaded (now or before), -1 when it cannot be. */
int curlload_open(void);
/* Returns 1 when libcurl is loaded, 0 otherwise (never loads it). */
int curlload_loaded(void);

#endif
