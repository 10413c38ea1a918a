#define CURL_DISABLE_TYPECHECK 1
#include "fcgi-app/curlload.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stddef.h>

#include <curl/curl.h>

#include "common/log.h"

#ifndef CURLLOAD_SONAME
#define CURLLOAD_SONAME "libcurl.so.4"
#endif

/* The real functions, resolved by name; one table so that a missing symbol
 * is found at open time, never in the middle of a request. */
static struct {
	CURLcode (*global_init)(long);
	void (*global_cleanup)(void);
	CURL *(*easy_init)(void);
	void (*easy_cleanup)(CURL *);
	void (*easy_reset)(CURL *);
	CURLcode (*easy_perform)(CURL *);
	CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
	const char *(*easy_strerror)(CURLcode);
	void (*free)(void *);
	struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
	void (*slist_free_all)(struct curl_slist *);
	CURLU *(*url)(void);
	void (*url_cleanup)(CURLU *);
	CURLUcode (*url_get)(CURLU *, CURLUPart, char **, unsigned int);
	CURLUcode (*url_set)(CURLU *, CURLUPart, const char *, unsigned int);
} fn;

static const struct {
	const char *name;
	size_t off;
} symbols[] = {
	{ "curl_global_init", offsetof(__typeof__(fn), global_init) },
	{ "curl_global_cleanup", offsetof(__typeof__(fn), global_cleanup) },
	{ "curl_easy_init", offsetof(__typeof__(fn), easy_init) },
	{ "curl_easy_cleanup", offsetof(__typeof__(fn), easy_cleanup) },
	{ "curl_easy_reset", offsetof(__typeof__(fn), easy_reset) },
	{ "curl_easy_perform", offsetof(__typeof__(fn), easy_perform) },
	{ "curl_easy_setopt", offsetof(__typeof__(fn), easy_setopt) },
	{ "curl_easy_getinfo", offsetof(__typeof__(fn), easy_getinfo) },
	{ "curl_easy_strerror", offsetof(__typeof__(fn), easy_strerror) },
	{ "curl_free", offsetof(__typeof__(fn), free) },
	{ "curl_slist_append", offsetof(__typeof__(fn), slist_append) },
	{ "curl_slist_free_all", offsetof(__typeof__(fn), slist_free_all) },
	{ "curl_url", offsetof(__typeof__(fn), url) },
	{ "curl_url_cleanup", offsetof(__typeof__(fn), url_cleanup) },
	{ "curl_url_get", offsetof(__typeof__(fn), url_get) },
	{ "curl_url_set", offsetof(__typeof__(fn), url_set) },
};

static int state;	/* 0: not tried, 1: loaded, -1: unavailable */

int curlload_open(void)
{
	void *lib;
	size_t i;

	if (state)
		return state > 0 ? 0 : -1;
	state = -1;
	/* RTLD_LOCAL: libcurl's dependencies stay out of the global scope */
	lib = dlopen(CURLLOAD_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		log_err("cannot load libcurl: %s", dlerror());
		return -1;
	}
	for (i = 0; i < sizeof(symbols) / sizeof(symbols[0]); i++) {
		void *p = dlsym(lib, symbols[i].name);

		if (!p) {
			log_err("cannot load libcurl: '%s' missing in '%s'",
				symbols[i].name, CURLLOAD_SONAME);
			return -1;	/* the library stays mapped: harmless */
		}
		/* POSIX guarantees object and function pointers convert */
		*(void **)((char *)&fn + symbols[i].off) = p;
	}
	state = 1;
	return 0;
}

int curlload_loaded(void)
{
	return state > 0;
}

/* ---- the functions the forwarder calls --------------------------------- */

CURLcode curl_global_init(long flags)
{
	return curlload_open() == 0 ? fn.global_init(flags) : CURLE_FAILED_INIT;
}

void curl_global_cleanup(void)
{
	if (state > 0)
		fn.global_cleanup();
}

CURL *curl_easy_init(void)
{
	return curlload_open() == 0 ? fn.easy_init() : NULL;
}

void curl_easy_cleanup(CURL *h)
{
	if (state > 0)
		fn.easy_cleanup(h);
}

void curl_easy_reset(CURL *h)
{
	if (state > 0)
		fn.easy_reset(h);
}

CURLcode curl_easy_perform(CURL *h)
{
	return state > 0 ? fn.easy_perform(h) : CURLE_FAILED_INIT;
}

/* The option's number says its argument's type (curl.h CURLOPTTYPE_*): it
 * is taken with that type and handed on unchanged. */
CURLcode (curl_easy_setopt)(CURL *h, CURLoption option, ...)
{
	va_list ap;
	CURLcode rc;

	if (state <= 0)
		return CURLE_FAILED_INIT;
	va_start(ap, option);
	if (option < CURLOPTTYPE_OBJECTPOINT) {
		rc = fn.easy_setopt(h, option, va_arg(ap, long));
	} else if (option >= CURLOPTTYPE_OFF_T && option < CURLOPTTYPE_BLOB) {
		rc = fn.easy_setopt(h, option, va_arg(ap, curl_off_t));
	} else if (option >= CURLOPTTYPE_FUNCTIONPOINT && option < CURLOPTTYPE_OFF_T) {
		void (*f)(void) = va_arg(ap, void (*)(void));

		rc = fn.easy_setopt(h, option, f);
	} else {
		rc = fn.easy_setopt(h, option, va_arg(ap, void *));
	}
	va_end(ap);
	return rc;
}

/* Every CURLINFO_* takes a pointer to where the answer goes. */
CURLcode (curl_easy_getinfo)(CURL *h, CURLINFO info, ...)
{
	va_list ap;
	CURLcode rc;

	if (state <= 0)
		return CURLE_FAILED_INIT;
	va_start(ap, info);
	rc = fn.easy_getinfo(h, info, va_arg(ap, void *));
	va_end(ap);
	return rc;
}

const char *curl_easy_strerror(CURLcode rc)
{
	return state > 0 ? fn.easy_strerror(rc) : "libcurl unavailable";
}

void curl_free(void *p)
{
	if (state > 0)
		fn.free(p);
}

struct curl_slist *curl_slist_append(struct curl_slist *list, const char *s)
{
	return curlload_open() == 0 ? fn.slist_append(list, s) : NULL;
}

void curl_slist_free_all(struct curl_slist *list)
{
	if (state > 0)
		fn.slist_free_all(list);
}

CURLU *curl_url(void)
{
	return curlload_open() == 0 ? fn.url() : NULL;
}

void curl_url_cleanup(CURLU *u)
{
	if (state > 0)
		fn.url_cleanup(u);
}

CURLUcode curl_url_get(CURLU *u, CURLUPart what, char **part, unsigned int flags)
{
	return state > 0 ? fn.url_get(u, what, part, flags) : CURLUE_OUT_OF_MEMORY;
}

CURLUcode curl_url_set(CURLU *u, CURLUPart what, const char *part, unsigned int flags)
{
	return state > 0 ? fn.url_set(u, what, part, flags) : CURLUE_OUT_OF_MEMORY;
}
