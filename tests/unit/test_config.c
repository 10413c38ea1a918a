/*
 * test_config — the loader (policy/config.c, policy/json_scan.c): tables of
 * document → expected error ("path: ..." and a part of the message), documents
 * that load with their fields checked, defaults, secrets never shown, the size
 * and depth caps, files, and tests/unit/data/full.json.
 *
 * Documents in the tables are written with ' for " (and ` for a real ') so
 * that they stay readable; dq() converts them before loading.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "policy/gateway.h"

#define HEAD "{'format':1,'generation':1,"
#define BACKEND "'backends':{'w':{'url':'https://api.example/v1'}}"
/* A document with backend "w" and one API "a" whose members end with X. */
#define API(X) HEAD BACKEND ",'apis':[{'id':'a','path':'p','backend':'w'" X "}]}"
#define BK(X) HEAD "'backends':{'w':{" X "}}}"
#define GW(X) HEAD "'gateway':{" X "}}"
#define NV(X) "'named_values':{" X "},"

static char *dq(const char *s)
{
	char *r = strdup(s);

	assert_non_null(r);
	for (char *p = r; *p; p++) {
		if (*p == '\'')
			*p = '"';
		else if (*p == '`')
			*p = '\'';
	}
	return r;
}

static void print_errors(const struct cfg_errors *errs)
{
	for (size_t i = 0; i < errs->n; i++)
		print_message("    error: %s\n", errs->msg[i]);
	if (errs->dropped)
		print_message("    (%zu more)\n", errs->dropped);
}

/* Is there an error "path: ...msg..."? */
static int has_error(const struct cfg_errors *errs, const char *path, const char *msg)
{
	size_t pl = strlen(path);

	for (size_t i = 0; i < errs->n; i++) {
		const char *m = errs->msg[i];

		if (strncmp(m, path, pl) == 0 && strncmp(m + pl, ": ", 2) == 0 &&
		    strstr(m + pl + 2, msg))
			return 1;
	}
	return 0;
}

static int any_error_contains(const struct cfg_errors *errs, const char *s)
{
	for (size_t i = 0; i < errs->n; i++)
		if (strstr(errs->msg[i], s))
			return 1;
	return 0;
}

/* Loads a table document; the gateway or NULL. */
static struct gateway *load(const char *doc, struct cfg_errors *errs)
{
	char *d = dq(doc);
	struct gateway *gw = gw_load_buffer(d, strlen(d), errs);

	free(d);
	return gw;
}

static struct gateway *load_ok(const char *doc)
{
	struct cfg_errors errs = CFG_ERRORS_INIT;
	struct gateway *gw = load(doc, &errs);

	if (!gw) {
		print_message("document: %s\n", doc);
		print_errors(&errs);
	}
	assert_non_null(gw);
	assert_int_equal(errs.n, 0);
	cfg_errors_release(&errs);
	return gw;
}

/* ---- documents that must fail ------------------------------------------ */

struct bad_case {
	const char *doc;
	const char *path;	/* the error's path exactly */
	const char *msg;	/* a part of its message */
};

static const struct bad_case bad_cases[] = {
	/* the top level */
	{ "{'format':2,'generation':1}", "format", "unsupported format 2 (this gateway reads format 1)" },
	{ "{'format':'1','generation':1}", "format", "must be the integer 1, not a string" },
	{ "{'format':1.0,'generation':1}", "format", "must be the integer 1, not a fractional number" },
	{ "{'generation':1}", "$", "missing required member 'format'" },
	{ "{'format':1}", "$", "missing required member 'generation'" },
	{ "{'format':1,'generation':0}", "generation", "must be at least 1, not 0" },
	{ "{'format':1,'generation':-5}", "generation", "must be at least 1, not -5" },
	{ "{'format':1,'generation':'3'}", "generation", "must be an integer, not a string" },
	{ "{'format':1,'generation':true}", "generation", "must be an integer, not a boolean" },
	{ "{'format':1,'generation':null}", "generation", "must not be null (leave the member out instead)" },
	{ "{'format':null,'generation':1}", "format", "must not be null" },
	{ "null", "$", "the document must be a JSON object, not null" },
	{ GW("'health_path':null"), "gateway.health_path", "must not be null" },
	{ GW("'trusted_proxies':[null]"), "gateway.trusted_proxies[0]", "must be a string, not null" },
	{ HEAD NV("'k':null") "'x-a':1}", "named_values[\"k\"]", "must be an object, not null" },
	{ BK("'url':null"), "backends[\"w\"].url", "must not be null" },
	{ BK("'url':'https://a','tls':{'client_certificate':'/c','client_key':null}"), "backends[\"w\"].tls.client_key", "must not be null" },
	{ "{'format':1,'generation':99999999999999999999}", "generation", "must be at most" },
	{ "{'format':1,'generation':9223372036854775808}", "generation", "must be at most" },
	{ HEAD "'gatway':{}}", "gatway", "unknown member" },
	{ HEAD "'a b':1}", "[\"a b\"]", "unknown member" },
	{ HEAD "'X-upper':1}", "X-upper", "unknown member" },
	{ "[]", "$", "the document must be a JSON object, not an array" },
	{ "\"format\"", "$", "the document must be a JSON object, not a string" },
	{ " 12", "$", "the document must be a JSON object, not a number" },
	{ "-1", "$", "the document must be a JSON object, not a number" },
	{ "false", "$", "the document must be a JSON object, not a boolean" },
	/* products, subscriptions, policies, pools: the engine's parsers
	 * (test_policies.c); here only that they are hooked in, with paths */
	{ HEAD "'products':[{'id':'p'}]}", "products[0]", "missing required member 'apis'" },
	{ HEAD "'products':{}}", "products", "must be an array, not an object" },
	{ HEAD "'subscriptions':[{}]}", "subscriptions[0]", "missing required member 'id'" },
	{ HEAD "'subscriptions':null}", "subscriptions", "must not be null" },
	{ HEAD "'policies':{'inbund':[]}}", "policies.inbund", "unknown member" },
	{ HEAD "'policies':[]}", "policies", "must be an object, not an array" },

	/* JSON itself */
	{ "", "$", "not valid JSON at line 1, column 1: unexpected end of the document" },
	{ "   \n ", "$", "unexpected end of the document" },
	{ "{'format':1,", "$", "unexpected end of the document" },
	{ "{'format':1,'generation':1} x", "$", "line 1, column 29: unexpected data after the end" },
	{ "{'format':1,'generation':1}{}", "$", "unexpected data after the end" },
	{ "{'format':1,\n'generation':1,}", "$", "line 2, column 16: expected a member name" },
	{ "{`format`:1,'generation':1}", "$", "expected a member name in double quotes" },
	{ HEAD "'x-a':`single`}", "$", "unexpected character" },
	{ HEAD "'x-a':NaN}", "$", "unexpected character" },
	{ HEAD "'x-a':Infinity}", "$", "unexpected character" },
	{ HEAD "'x-a':-Infinity}", "$", "bad number" },
	{ HEAD "'x-a':1.}", "$", "bad number" },
	{ HEAD "'x-a':01}", "$", "expected ',' or '}'" },
	{ HEAD "'x-a':.5}", "$", "unexpected character" },
	{ HEAD "'x-a':1e}", "$", "bad number" },
	{ HEAD "'x-a':True}", "$", "unexpected character" },
	{ HEAD "'x-a':[1,]}", "$", "unexpected character" },
	{ HEAD "'x-a':[1 2]}", "$", "expected ',' or ']'" },
	{ HEAD "'x-a' 1}", "$", "expected ':'" },
	{ HEAD "/* c */'x-a':1}", "$", "expected a member name" },
	{ HEAD "'x-a':'tab\there'}", "$", "control character in string" },
	{ HEAD "'x-a':'\\x'}", "$", "bad escape in string" },
	{ HEAD "'x-a':'\\u12G4'}", "$", "bad \\u escape" },
	{ HEAD "'x-a':'\\ud800'}", "$", "unpaired surrogate" },
	{ HEAD "'x-a':'\\udc00\\ud800'}", "$", "unpaired surrogate" },
	{ HEAD "'x-a\\u0000b':1}", "$", "member name contains \\u0000" },
	{ HEAD "'x-a':'\xff'}", "$", "invalid UTF-8" },
	{ HEAD "'x-a':'\xc0\xaf'}", "$", "invalid UTF-8" },	/* overlong '/' */
	{ HEAD "'x-a':'\xe0\x80\xaf'}", "$", "invalid UTF-8" },	/* overlong '/' */
	{ HEAD "'x-a':'\xed\xa0\x80'}", "$", "invalid UTF-8" },	/* a surrogate */
	{ HEAD "'x-a':'\xf4\x90\x80\x80'}", "$", "invalid UTF-8" },	/* above U+10FFFF */
	{ HEAD "'x-a':'\xe2\x82'}", "$", "invalid UTF-8" },	/* cut short */
	{ "\xef\xbb\xbf{'format':1,'generation':1}", "$", "unexpected character" },	/* BOM */
	{ HEAD "'x-a':'abc}", "$", "unterminated string" },

	/* duplicate members, anywhere, however they are spelled */
	{ "{'format':1,'generation':1,'format':1}", "format", "given more than once" },
	{ "{'format':1,'generation':1,'gen\\u0065ration':2}", "generation", "given more than once" },
	{ "{'format':1,'generation':1,'\\u0067eneration':2}", "generation", "given more than once" },
	{ HEAD "'x-\\/':1,'x-/':2}", "[\"x-/\"]", "given more than once" },
	{ HEAD "'x-\\ud83d\\ude00':1,'x-\xf0\x9f\x98\x80':2}", "[\"x-\xf0\x9f\x98\x80\"]", "given more than once" },
	{ BK("'url':'https://a','url':'https://b'"), "backends[\"w\"].url", "given more than once" },
	{ HEAD "'backends':{'w':{'url':'https://a'},'\\u0077':{'url':'https://b'}}}", "backends[\"w\"]", "given more than once" },
	{ HEAD NV("'k':{'value':'a'},'k':{'value':'b'}") "'x-a':1}", "named_values[\"k\"]", "given more than once" },
	{ BK("'url':'https://a','credentials':{'header':{'X-K':'a','X-K':'b'}}"), "backends[\"w\"].credentials.header[\"X-K\"]", "given more than once" },
	{ API(",'id':'b'"), "apis[0].id", "given more than once" },
	{ API(",'operations':[{'id':'o','method':'GET','url_template':'/x','method':'PUT'}]"), "apis[0].operations[0].method", "given more than once" },
	{ HEAD "'x-a':[{},{'b':{'c':1,'c':2}}]}", "x-a[1].b.c", "given more than once" },
	{ HEAD "'x-a':{'':1,'':2}}", "x-a[\"\"]", "given more than once" },
	/* inside policies, paths as policies.c writes them */
	{ HEAD "'policies':{'inbound':[],'inbound':[]}}", "policies.inbound", "given more than once" },
	{ HEAD "'policies':{'inbound':[{'base':{},'base':{}}]}}", "policies.inbound[0][\"base\"]", "given more than once" },
	{ API(",'operations':[{'id':'o','method':'GET','url_template':'/x','policies':{'inbound':[{'set-header':{'name':'X','exists-action':'override','value':'a','value':'b'}}]}}]"), "apis[0].operations[0].policies.inbound[0][\"set-header\"].value", "given more than once" },
	{ API(",'policies':{'inbound':[{'return-response':{'status-code':200,'headers':{'A':'1','A':'2'}}}]}"), "apis[0].policies.inbound[0][\"return-response\"].headers[\"A\"]", "given more than once" },

	/* named values and their substitution */
	{ HEAD NV("'bad name':{'value':'v'}") "'x-a':1}", "named_values[\"bad name\"]", "is not a valid name" },
	{ HEAD NV("'k':{'value':1}") "'x-a':1}", "named_values[\"k\"].value", "must be a string, not an integer" },
	{ HEAD NV("'k':{'value':'a\\u0000b'}") "'x-a':1}", "named_values[\"k\"].value", "must not contain a NUL character" },
	{ HEAD NV("'k':{'value':'v','secret':'yes'}") "'x-a':1}", "named_values[\"k\"].secret", "must be a boolean" },
	{ HEAD NV("'k':{'secret':true}") "'x-a':1}", "named_values[\"k\"]", "missing required member 'value'" },
	{ HEAD NV("'k':{'value':'v','valeu':'w'}") "'x-a':1}", "named_values[\"k\"].valeu", "unknown member" },
	{ HEAD NV("'k':'v'") "'x-a':1}", "named_values[\"k\"]", "must be an object, not a string" },
	{ HEAD "'named_values':[]}", "named_values", "must be an object, not an array" },
	{ BK("'url':'https://{{nope}}/v1'"), "backends[\"w\"].url", "unknown named value 'nope'" },
	{ BK("'url':'https://{{host'"), "backends[\"w\"].url", "unterminated '{{'" },
	{ BK("'url':'https://{{a b}}/'"), "backends[\"w\"].url", "'{{a b}}' is not a named value reference" },
	{ BK("'url':'https://{{}}/'"), "backends[\"w\"].url", "is not a named value reference" },
	{ API(",'hostnames':['{{missing}}']"), "apis[0].hostnames[0]", "unknown named value 'missing'" },
	{ HEAD NV("'h':{'value':'h'}") "'gateway':{'health_path':'/{{H}}'}}", "gateway.health_path", "unknown named value 'H'" },
	/* ids are never substituted */
	{ HEAD NV("'n':{'value':'x'}") BACKEND ",'apis':[{'id':'{{n}}','path':'p','backend':'w'}]}", "apis[0].id", "is not a valid id" },

	/* ${...} only in policy attributes */
	{ BK("'url':'https://api.example/${request.path}'"), "backends[\"w\"].url", "'${' is not allowed here" },
	{ HEAD NV("'u':{'value':'https://h/${request.ip}'}") "'backends':{'w':{'url':'{{u}}'}}}", "backends[\"w\"].url", "'${' is not allowed here" },
	{ API(",'path':'${api.id}'"), "apis[0].path", "'${' is not allowed here" },
	{ API(",'hostnames':['${request.header.host}']"), "apis[0].hostnames[0]", "'${' is not allowed here" },
	{ BK("'url':'https://a','credentials':{'header':{'X-K':'${subscription.id}'}}"), "backends[\"w\"].credentials.header[\"X-K\"]", "'${' is not allowed here" },
	{ BK("'url':'https://a','credentials':{'basic':{'username':'u','password':'p$${x}'}}"), "backends[\"w\"].credentials.basic.password", "'${' is not allowed here" },
	{ GW("'health_path':'/${x}'"), "gateway.health_path", "'${' is not allowed here" },
	{ API(",'operations':[{'id':'o','method':'GET','url_template':'/a/${x}'}]"), "apis[0].operations[0].url_template", "'${' is not allowed here" },

	/* gateway */
	{ HEAD "'gateway':[]}", "gateway", "must be an object, not an array" },
	{ GW("'bogus':1"), "gateway.bogus", "unknown member" },
	{ GW("'trusted_proxies':'10.0.0.0/8'"), "gateway.trusted_proxies", "must be an array, not a string" },
	{ GW("'trusted_proxies':['10.0.0.0/8','10.0.0.1/8']"), "gateway.trusted_proxies[1]", "'10.0.0.1/8' is not an IP address or CIDR" },
	{ GW("'trusted_proxies':['nonsense']"), "gateway.trusted_proxies[0]", "'nonsense' is not an IP address or CIDR" },
	{ GW("'trusted_proxies':[8]"), "gateway.trusted_proxies[0]", "must be a string, not an integer" },
	{ GW("'max_request_body_bytes':-1"), "gateway.max_request_body_bytes", "must be at least 0, not -1" },
	{ GW("'max_request_body_bytes':'10'"), "gateway.max_request_body_bytes", "must be an integer, not a string" },
	{ GW("'max_request_body_bytes':1e6"), "gateway.max_request_body_bytes", "must be an integer, not a fractional number" },
	{ GW("'forwarded_headers':'yes'"), "gateway.forwarded_headers", "must be a boolean" },
	{ GW("'forwarded_headers':1"), "gateway.forwarded_headers", "must be a boolean" },
	{ GW("'health_path':'status'"), "gateway.health_path", "'status' must be a path starting with '/'" },
	{ GW("'health_path':'/'"), "gateway.health_path", "must be a path starting with '/'" },
	{ GW("'health_path':'/a/../b'"), "gateway.health_path", "segment" },
	{ GW("'health_path':'/a//b'"), "gateway.health_path", "segment" },
	{ GW("'health_path':'/a?b'"), "gateway.health_path", "not allowed here" },
	{ GW("'health_path':'/a%2fb'"), "gateway.health_path", "not allowed here" },
	{ GW("'health_path':7"), "gateway.health_path", "must be a string, not an integer" },
	{ GW("'metrics':true"), "gateway.metrics", "must be an object, not a boolean" },
	{ GW("'metrics':{'allow':[]}"), "gateway.metrics", "missing required member 'path'" },
	{ GW("'metrics':{'path':'metrics'}"), "gateway.metrics.path", "must be a path starting with '/'" },
	{ GW("'metrics':{'path':'/m','allow':['::1/129']}"), "gateway.metrics.allow[0]", "is not an IP address or CIDR" },
	{ GW("'metrics':{'path':'/m','allow':{}}"), "gateway.metrics.allow", "must be an array" },
	{ GW("'metrics':{'path':'/m','deny':[]}"), "gateway.metrics.deny", "unknown member" },
	{ GW("'health_path':'/h','metrics':{'path':'/h'}"), "gateway.metrics.path", "must differ from health_path" },
	/* gateway.counters */
	{ GW("'counters':{'store':'memcached'}"), "gateway.counters.store", "is not a counter store (local, redis)" },
	{ GW("'counters':{}"), "gateway.counters", "missing required member 'store'" },
	{ GW("'counters':[]"), "gateway.counters", "must be an object" },
	{ GW("'counters':{'store':'redis'}"), "gateway.counters", "missing required member 'url'" },
	{ GW("'counters':{'store':'redis','url':'http://r:6379'}"), "gateway.counters.url", "must be redis://HOST:PORT/DB or unix:/PATH" },
	{ GW("'counters':{'store':'redis','url':'redis://r:0'}"), "gateway.counters.url", "has a port that is not 1-65535" },
	{ GW("'counters':{'store':'redis','url':'redis://r:70000/0'}"), "gateway.counters.url", "has a port that is not 1-65535" },
	{ GW("'counters':{'store':'redis','url':'redis://r:6379/x'}"), "gateway.counters.url", "has a database that is not 0-65535" },
	{ GW("'counters':{'store':'redis','url':'redis://:6379'}"), "gateway.counters.url", "needs a host" },
	{ GW("'counters':{'store':'redis','url':'redis://u:p@r:6379'}"), "gateway.counters.url", "must not hold credentials: use 'password'" },
	{ GW("'counters':{'store':'redis','url':'rediss://r:6379'}"), "gateway.counters.url", "TLS to Redis (rediss://) is not supported" },
	{ GW("'counters':{'store':'redis','url':'unix:relative.sock'}"), "gateway.counters.url", "must be unix:/ABSOLUTE/PATH" },
	{ GW("'counters':{'store':'redis','url':'redis://r','on_failure':'retry'}"), "gateway.counters.on_failure", "'retry' must be local, allow or deny" },
	{ GW("'counters':{'store':'redis','url':'redis://r','timeout_ms':0}"), "gateway.counters.timeout_ms", "must be an integer from 1 to 10000, not 0" },
	{ GW("'counters':{'store':'redis','url':'redis://r','timeout_ms':10001}"), "gateway.counters.timeout_ms", "must be an integer from 1 to 10000" },
	{ GW("'counters':{'store':'redis','url':'redis://r','password':''}"), "gateway.counters.password", "must not be empty" },
	{ GW("'counters':{'store':'redis','url':'redis://r','prefix':'a b'}"), "gateway.counters.prefix", "must be printable ASCII without spaces" },
	{ GW("'counters':{'store':'redis','url':'redis://r','prefix':'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'}"), "gateway.counters.prefix", "is longer than 64 bytes" },
	{ GW("'counters':{'store':'redis','url':'redis://r','db':1}"), "gateway.counters.db", "unknown member" },
	{ GW("'counters':{'store':'local','url':'redis://r'}"), "gateway.counters.store", "'local' takes no 'url'" },
	{ GW("'client_request_timeout_ms':99"), "gateway.client_request_timeout_ms", "must be an integer from 100 to 86400000, not 99" },
	{ GW("'client_request_timeout_ms':'5s'"), "gateway.client_request_timeout_ms", "must be an integer, not a string" },
	{ GW("'client_idle_timeout_ms':0"), "gateway.client_idle_timeout_ms", "must be an integer from 100 to 86400000, not 0" },
	{ GW("'client_idle_timeout_ms':86400001"), "gateway.client_idle_timeout_ms", "must be an integer from 100 to 86400000, not 86400001" },
	{ GW("'client_body_timeout_ms':-1"), "gateway.client_body_timeout_ms", "must be an integer from 100 to 86400000, not -1" },
	{ GW("'client_body_timeout_ms':1.5"), "gateway.client_body_timeout_ms", "must be an integer, not a fractional number" },
	{ GW("'client_body_min_rate':0"), "gateway.client_body_min_rate", "must be an integer from 1 to 1000000000, not 0" },
	{ GW("'client_body_min_rate':null"), "gateway.client_body_min_rate", "must not be null" },

	/* backends */
	{ HEAD "'backends':[]}", "backends", "must be an object, not an array" },
	{ HEAD "'backends':{'w':'https://a'}}", "backends[\"w\"]", "must be an object, not a string" },
	{ HEAD "'backends':{'b/d':{'url':'https://a'}}}", "backends[\"b/d\"]", "is not a valid id" },
	{ HEAD "'backends':{'':{'url':'https://a'}}}", "backends[\"\"]", "is not a valid id" },
	{ BK("'timeout_ms':5"), "backends[\"w\"]", "missing required member 'url' (or 'pool')" },
	{ BK("'url':'https://a','pool':[]"), "backends[\"w\"]", "give either 'url' or 'pool', not both" },
	/* a pool with a member beside a url: leaked its URL before (LSan, SANITIZE=1) */
	{ BK("'url':'https://a','pool':[{'url':'https://b'}]"), "backends[\"w\"]", "give either 'url' or 'pool', not both" },
	{ BK("'pool':[{'url':'ftp://a'}]"), "backends[\"w\"].pool[0].url", "'ftp://a' is not an absolute http:// or https:// URL" },
	{ BK("'url':'https://a','circuit_breaker':{'failures':'5'}"), "backends[\"w\"].circuit_breaker.failures", "must be an integer, not a string" },
	{ BK("'url':'https://a','retries':1"), "backends[\"w\"].retries", "unknown member" },
	{ BK("'url':7"), "backends[\"w\"].url", "must be a string, not an integer" },
	{ BK("'url':'ftp://a/b'"), "backends[\"w\"].url", "'ftp://a/b' is not an absolute http:// or https:// URL" },
	{ BK("'url':'api.example/v1'"), "backends[\"w\"].url", "is not an absolute http:// or https:// URL" },
	{ BK("'url':'//api.example/v1'"), "backends[\"w\"].url", "is not an absolute http:// or https:// URL" },
	{ BK("'url':'https://'"), "backends[\"w\"].url", "has no host" },
	{ BK("'url':'https:///v1'"), "backends[\"w\"].url", "has no host" },
	{ BK("'url':'https://a..b/'"), "backends[\"w\"].url", "bad host name" },
	{ BK("'url':'https://u:p@a/'"), "backends[\"w\"].url", "must not hold user information" },
	{ BK("'url':'https://a/v1?x=1'"), "backends[\"w\"].url", "must not have a query string" },
	{ BK("'url':'https://a?x=1'"), "backends[\"w\"].url", "must not have a query string" },
	{ BK("'url':'https://a/v1#top'"), "backends[\"w\"].url", "must not have a fragment" },
	{ BK("'url':'https://a/v1/../admin'"), "backends[\"w\"].url", "must not have '.' or '..' segments" },
	{ BK("'url':'https://a/./v1'"), "backends[\"w\"].url", "must not have '.' or '..' segments" },
	{ BK("'url':'https://a/v1/%2e%2E'"), "backends[\"w\"].url", "must not have '.' or '..' segments" },
	{ BK("'url':'https://a/v1/..'"), "backends[\"w\"].url", "must not have '.' or '..' segments" },
	{ BK("'url':'https://a:0/'"), "backends[\"w\"].url", "has a bad port" },
	{ BK("'url':'https://a:65536/'"), "backends[\"w\"].url", "has a bad port" },
	{ BK("'url':'https://a:/'"), "backends[\"w\"].url", "has a bad port" },
	{ BK("'url':'https://a:8x/'"), "backends[\"w\"].url", "has a bad port" },
	{ BK("'url':'https://[::1/'"), "backends[\"w\"].url", "bad IPv6 address" },
	{ BK("'url':'https://[zz]/'"), "backends[\"w\"].url", "bad IPv6 address" },
	{ BK("'url':'https://[::1]x/'"), "backends[\"w\"].url", "has a bad port" },
	{ BK("'url':'https://a/v 1'"), "backends[\"w\"].url", "not allowed in a URL" },
	{ BK("'url':'https://a/v\\\\1'"), "backends[\"w\"].url", "not allowed in a URL" },
	{ BK("'url':'https://a/%zz'"), "backends[\"w\"].url", "bad percent-escape" },
	{ BK("'url':'https://a/%4'"), "backends[\"w\"].url", "bad percent-escape" },
	{ BK("'url':'https://a','timeout_ms':0"), "backends[\"w\"].timeout_ms", "must be an integer from 1 to 3600000, not 0" },
	{ BK("'url':'https://a','timeout_ms':3600001"), "backends[\"w\"].timeout_ms", "from 1 to 3600000" },
	{ BK("'url':'https://a','timeout_ms':'5000'"), "backends[\"w\"].timeout_ms", "must be an integer, not a string" },
	{ BK("'url':'https://a','connect_timeout_ms':2.5"), "backends[\"w\"].connect_timeout_ms", "must be an integer, not a fractional number" },
	{ BK("'url':'https://a','connect_timeout_ms':-1"), "backends[\"w\"].connect_timeout_ms", "from 1 to 3600000" },
	{ BK("'url':'https://a','tls':true"), "backends[\"w\"].tls", "must be an object, not a boolean" },
	{ BK("'url':'https://a','tls':{'verify':'true'}"), "backends[\"w\"].tls.verify", "must be a boolean (true or false), not a string" },
	{ BK("'url':'https://a','tls':{'ca_file':'ca.pem'}"), "backends[\"w\"].tls.ca_file", "'ca.pem' must be an absolute file name" },
	{ BK("'url':'https://a','tls':{'ca_file':''}"), "backends[\"w\"].tls.ca_file", "must be an absolute file name" },
	{ BK("'url':'https://a','tls':{'client_certificate':'/c.pem'}"), "backends[\"w\"].tls", "'client_certificate' and 'client_key' must be given together" },
	{ BK("'url':'https://a','tls':{'client_key':'/c.key'}"), "backends[\"w\"].tls", "must be given together" },
	{ BK("'url':'https://a','tls':{'verfy':true}"), "backends[\"w\"].tls.verfy", "unknown member" },
	{ BK("'url':'https://a','credentials':[]"), "backends[\"w\"].credentials", "must be an object, not an array" },
	{ BK("'url':'https://a','credentials':{'bearer':'x'}"), "backends[\"w\"].credentials.bearer", "unknown member" },
	{ BK("'url':'https://a','credentials':{'basic':{'username':'u'}}"), "backends[\"w\"].credentials.basic", "missing required member 'password'" },
	{ BK("'url':'https://a','credentials':{'basic':{'password':'p'}}"), "backends[\"w\"].credentials.basic", "missing required member 'username'" },
	{ BK("'url':'https://a','credentials':{'basic':{'username':'u:v','password':'p'}}"), "backends[\"w\"].credentials.basic.username", "'u:v' must not contain ':'" },
	{ BK("'url':'https://a','credentials':{'basic':{'username':'u','password':'p\\r\\nX: y'}}"), "backends[\"w\"].credentials.basic.password", "must not contain control characters" },
	{ BK("'url':'https://a','credentials':{'header':{'x key':'v'}}"), "backends[\"w\"].credentials.header[\"x key\"]", "'x key' is not a valid header name" },
	{ BK("'url':'https://a','credentials':{'header':{'':'v'}}"), "backends[\"w\"].credentials.header[\"\"]", "is not a valid header name" },
	{ BK("'url':'https://a','credentials':{'header':{'X-K':'a\\r\\nX-Evil: 1'}}"), "backends[\"w\"].credentials.header[\"X-K\"]", "must not contain a control character" },
	{ BK("'url':'https://a','credentials':{'header':{'X-K':'a\\nb'}}"), "backends[\"w\"].credentials.header[\"X-K\"]", "must not contain a control character" },
	{ BK("'url':'https://a','credentials':{'header':{'X-K':'a\\u000bb'}}"), "backends[\"w\"].credentials.header[\"X-K\"]", "must not contain a control character" },
	{ BK("'url':'https://a','credentials':{'header':{'X-K':'a\\u007fb'}}"), "backends[\"w\"].credentials.header[\"X-K\"]", "must not contain a control character" },
	{ BK("'url':'https://a','credentials':{'header':{'X-K':'a\\u0000b'}}"), "backends[\"w\"].credentials.header[\"X-K\"]", "must not contain a NUL character" },
	{ BK("'url':'https://a','credentials':{'header':{'X-K':5}}"), "backends[\"w\"].credentials.header[\"X-K\"]", "must be a string, not an integer" },
	{ BK("'url':'https://a','credentials':{'header':{'X-K':'a','x-k':'b'}}"), "backends[\"w\"].credentials.header[\"x-k\"]", "header 'x-k' is given twice" },
	{ BK("'url':'https://a','credentials':{'header':[]}"), "backends[\"w\"].credentials.header", "must be an object" },
	{ BK("'url':'https://a','credentials':{'query':{'':'v'}}"), "backends[\"w\"].credentials.query[\"\"]", "is not a valid query parameter name" },
	{ BK("'url':'https://a','credentials':{'query':{'k':true}}"), "backends[\"w\"].credentials.query[\"k\"]", "must be a string, not a boolean" },

	/* apis */
	{ HEAD BACKEND ",'apis':{}}", "apis", "must be an array, not an object" },
	{ HEAD BACKEND ",'apis':[7]}", "apis[0]", "must be an object, not an integer" },
	{ HEAD BACKEND ",'apis':[{'path':'p','backend':'w'}]}", "apis[0]", "missing required member 'id'" },
	{ HEAD BACKEND ",'apis':[{'id':'a','backend':'w'}]}", "apis[0]", "missing required member 'path'" },
	{ HEAD BACKEND ",'apis':[{'id':'a','path':'p'}]}", "apis[0]", "missing required member 'backend'" },
	{ API(",'ID':'x'"), "apis[0].ID", "unknown member" },
	{ HEAD BACKEND ",'apis':[{'id':'a b','path':'p','backend':'w'}]}", "apis[0].id", "'a b' is not a valid id" },
	{ HEAD BACKEND ",'apis':[{'id':'','path':'p','backend':'w'}]}", "apis[0].id", "is not a valid id" },
	{ HEAD BACKEND ",'apis':[{'id':'a23456789012345678901234567890123456789012345678901234567890123456789012345678901','path':'p','backend':'w'}]}", "apis[0].id", "is not a valid id" },
	{ HEAD BACKEND ",'apis':[{'id':1,'path':'p','backend':'w'}]}", "apis[0].id", "must be a string, not an integer" },
	{ HEAD BACKEND ",'apis':[{'id':'a','path':'p','backend':'w'},{'id':'b','path':'q','backend':'w'},{'id':'a','path':'r','backend':'w'}]}", "apis[2].id", "duplicate id 'a' (also at index 0)" },
	{ HEAD BACKEND ",'apis':[{'id':'a','path':'p','backend':'nope'}]}", "apis[0].backend", "'nope' is not a backend" },
	{ HEAD BACKEND ",'apis':[{'id':'a','path':'p','backend':'W'}]}", "apis[0].backend", "'W' is not a backend" },
	{ HEAD BACKEND ",'apis':[{'id':'a','path':'p','backend':['w']}]}", "apis[0].backend", "must be a string, not an array" },
	{ API(",'path':7"), "apis[0].path", "must be a string, not an integer" },
	{ API(",'path':'a//b'"), "apis[0].path", "'a//b' has an empty segment" },
	{ API(",'path':'//a'"), "apis[0].path", "has an empty segment" },
	{ API(",'path':'a/../b'"), "apis[0].path", "has a '.' or '..' segment" },
	{ API(",'path':'..'"), "apis[0].path", "has a '.' or '..' segment" },
	{ API(",'path':'a?b'"), "apis[0].path", "not allowed in an API path" },
	{ API(",'path':'a#b'"), "apis[0].path", "not allowed in an API path" },
	{ API(",'path':'a%20b'"), "apis[0].path", "not allowed in an API path" },
	{ API(",'path':'a b'"), "apis[0].path", "not allowed in an API path" },
	{ API(",'path':'{x}'"), "apis[0].path", "not allowed in an API path" },
	{ API(",'path':'a\\\\b'"), "apis[0].path", "not allowed in an API path" },
	{ API(",'path':'a\\tb'"), "apis[0].path", "not allowed in an API path" },
	{ API(",'hostnames':'a.example'"), "apis[0].hostnames", "must be an array, not a string" },
	{ API(",'hostnames':[]"), "apis[0].hostnames", "must not be empty" },
	{ API(",'hostnames':['a.example:8080']"), "apis[0].hostnames[0]", "'a.example:8080' is not a host name" },
	{ API(",'hostnames':['ok.example','https://a.example']"), "apis[0].hostnames[1]", "is not a host name" },
	{ API(",'hostnames':['']"), "apis[0].hostnames[0]", "is not a host name" },
	{ API(",'hostnames':['*.example']"), "apis[0].hostnames[0]", "is not a host name" },
	{ API(",'hostnames':['::1']"), "apis[0].hostnames[0]", "is not a host name" },
	{ API(",'hostnames':[1]"), "apis[0].hostnames[0]", "must be a string, not an integer" },
	{ API(",'subscription_required':'false'"), "apis[0].subscription_required", "must be a boolean (true or false), not a string" },
	{ API(",'subscription_key':'X-Key'"), "apis[0].subscription_key", "must be an object, not a string" },
	{ API(",'subscription_key':{'header':'X Key'}"), "apis[0].subscription_key.header", "'X Key' is not a valid header name" },
	{ API(",'subscription_key':{'query':'a=b'}"), "apis[0].subscription_key.query", "'a=b' is not a valid query parameter name" },
	{ API(",'subscription_key':{'query':''}"), "apis[0].subscription_key.query", "is not a valid query parameter name" },
	{ API(",'subscription_key':{'cookie':'k'}"), "apis[0].subscription_key.cookie", "unknown member" },
	{ API(",'policies':{'inbound':[{'bogus':{}}]}"), "apis[0].policies.inbound[0][\"bogus\"]", "unknown policy" },
	{ API(",'policies':null"), "apis[0].policies", "must not be null" },

	/* operations */
	{ API(",'operations':{}"), "apis[0].operations", "must be an array, not an object" },
	{ API(",'operations':[]"), "apis[0].operations", "must not be empty" },
	{ API(",'operations':['GET /x']"), "apis[0].operations[0]", "must be an object, not a string" },
	{ API(",'operations':[{'method':'GET','url_template':'/x'}]"), "apis[0].operations[0]", "missing required member 'id'" },
	{ API(",'operations':[{'id':'o','url_template':'/x'}]"), "apis[0].operations[0]", "missing required member 'method'" },
	{ API(",'operations':[{'id':'o','method':'GET'}]"), "apis[0].operations[0]", "missing required member 'url_template'" },
	{ API(",'operations':[{'id':'o','method':'GET','url_template':'/x'},{'id':'o2','method':'FETCH?','url_template':'/y'}]"), "apis[0].operations[1].method", "'FETCH?' is not an HTTP method" },
	{ API(",'operations':[{'id':'o','method':'','url_template':'/x'}]"), "apis[0].operations[0].method", "is not an HTTP method" },
	{ API(",'operations':[{'id':'o','method':'G T','url_template':'/x'}]"), "apis[0].operations[0].method", "is not an HTTP method" },
	{ API(",'operations':[{'id':'o','method':['GET'],'url_template':'/x'}]"), "apis[0].operations[0].method", "must be a string, not an array" },
	{ API(",'operations':[{'id':'o','method':'GET','url_template':'x'}]"), "apis[0].operations[0].url_template", "'x' must start with '/'" },
	{ API(",'operations':[{'id':'o','method':'GET','url_template':''}]"), "apis[0].operations[0].url_template", "must start with '/'" },
	{ API(",'operations':[{'id':'o','method':'GET','url_template':'/x'},{'id':'o','method':'PUT','url_template':'/x'}]"), "apis[0].operations[1].id", "duplicate id 'o' (also at index 0)" },
	{ API(",'operations':[{'id':'o p','method':'GET','url_template':'/x'}]"), "apis[0].operations[0].id", "is not a valid id" },
	{ API(",'operations':[{'id':'o','method':'GET','url_template':'/x','verb':'GET'}]"), "apis[0].operations[0].verb", "unknown member" },
	{ API(",'operations':[{'id':'o','method':'GET','url_template':'/x','policies':{'inbound':[{'bogus':{}}]}}]"), "apis[0].operations[0].policies.inbound[0][\"bogus\"]", "unknown policy" },
	/* from route_build, which runs once everything else passed */
	{ API(",'operations':[{'id':'o','method':'GET','url_template':'/a{b}'}]"), "apis[0].operations[0].url_template", "" },
	{ HEAD BACKEND ",'apis':[{'id':'a','path':'p','backend':'w'},{'id':'b','path':'/P/','backend':'w'}]}", "apis[1].path", "same path as apis[0]" },
};

static void test_bad_documents(void **state)
{
	size_t failures = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		struct cfg_errors errs = CFG_ERRORS_INIT;
		struct gateway *gw = load(c->doc, &errs);

		if (gw || !has_error(&errs, c->path, c->msg)) {
			print_message("case %zu: %s\n  want \"%s: ...%s...\"%s\n", i, c->doc, c->path,
				      c->msg, gw ? " but it loaded" : "");
			print_errors(&errs);
			failures++;
		}
		gw_free(gw);
		cfg_errors_release(&errs);
	}
	assert_int_equal(failures, 0);
}

/* ---- documents that must load ------------------------------------------ */

static void test_defaults(void **state)
{
	struct gateway *gw;
	const struct gw_backend *be;
	const struct gw_api *api;

	(void)state;
	gw = load_ok("{'format':1,'generation':3}");
	assert_int_equal(gw->generation, 3);
	assert_int_equal(gw->n_trusted_proxies, 0);
	assert_int_equal(gw->max_request_body_bytes, 10485760);
	assert_int_equal(gw->forwarded_headers, 1);
	assert_string_equal(gw->health_path, "/status-0123456789abcdef");
	assert_null(gw->metrics_path);
	assert_int_equal(gw->n_metrics_allow, 0);
	assert_int_equal(gw->client_request_timeout_ms, 120000);
	assert_int_equal(gw->client_idle_timeout_ms, 10000);
	assert_int_equal(gw->client_body_timeout_ms, 1000);
	assert_int_equal(gw->client_body_min_rate, 500);
	assert_int_equal(gw->n_named_values, 0);
	assert_int_equal(gw->n_backends, 0);
	assert_int_equal(gw->n_apis, 0);
	gw_free(gw);

	/* empty collections are fine */
	gw = load_ok(HEAD "'gateway':{},'named_values':{},'backends':{},'apis':[],'products':[],"
		     "'subscriptions':[],'policies':{}}");
	gw_free(gw);

	gw = load_ok(API(""));
	be = gw_backend_find(gw, "w");
	assert_non_null(be);
	assert_string_equal(be->url, "https://api.example/v1");
	assert_int_equal(be->timeout_ms, 30000);
	assert_int_equal(be->connect_timeout_ms, 5000);
	assert_int_equal(be->tls.verify, 1);
	assert_null(be->tls.ca_file);
	assert_null(be->tls.client_certificate);
	assert_null(be->tls.client_key);
	assert_null(be->basic_username);
	assert_null(be->basic_password);
	assert_int_equal(be->n_cred_headers, 0);
	assert_int_equal(be->n_cred_query, 0);
	assert_int_equal(gw->n_apis, 1);
	api = &gw->apis[0];
	assert_string_equal(api->id, "a");
	assert_string_equal(api->path, "p");
	assert_int_equal(api->n_hostnames, 0);
	assert_ptr_equal(api->backend, be);
	assert_int_equal(api->subscription_required, 1);
	assert_string_equal(api->subscription_key_header, "Ocp-Apim-Subscription-Key");
	assert_string_equal(api->subscription_key_query, "subscription-key");
	assert_null(api->operations);
	assert_int_equal(api->n_operations, 0);
	assert_null(gw_backend_find(gw, "W"));
	assert_null(gw_backend_find(gw, "nope"));
	assert_null(gw_backend_find(NULL, "w"));
	gw_free(gw);
	gw_free(NULL);
}

static void test_x_members_ignored(void **state)
{
	struct gateway *gw;

	(void)state;
	gw = load_ok("{'format':1,'generation':1,'x-a':{'anything':[1,{'deep':null}]},"
		     "'gateway':{'x-b':1},'named_values':{'k':{'value':'v','x-c':1}},"
		     "'backends':{'x-d':{'url':'https://x','x-e':{},'tls':{'x-f':1},"
		     "'credentials':{'x-g':1,'basic':{'username':'u','password':'p','x-h':1}}}},"
		     "'apis':[{'id':'a','path':'p','backend':'x-d','x-i':1,'subscription_key':{'x-j':1},"
		     "'operations':[{'id':'o','method':'GET','url_template':'/','x-k':true}]}]}");
	/* in maps, x- keys are data */
	assert_non_null(gw_backend_find(gw, "x-d"));
	assert_int_equal(gw->n_named_values, 1);
	gw_free(gw);
}

static void test_values_stored(void **state)
{
	struct gateway *gw;
	const struct gw_backend *be;
	const struct gw_api *api;

	(void)state;
	gw = load_ok(HEAD "'backends':{"
		     "'u':{'url':'HTTPS://API.Example:8443/v1//'},"
		     "'v6':{'url':'http://[::1]:8080/'},"
		     "'bare':{'url':'https://h'},"
		     "'enc':{'url':'http://h/a%20b/%2Fc'}},"
		     "'apis':[{'id':'a','path':'/Weather/v1/','hostnames':['API.Example.COM.','[::1]',"
		     "'10.0.0.1'],'backend':'u','subscription_required':false,"
		     "'subscription_key':{'header':'X-Key'},"
		     "'operations':[{'id':'o1','method':'get','url_template':'/f/{city}'},"
		     "{'id':'o2','method':'*','url_template':'/{*rest}'},"
		     "{'id':'o3','method':'PROPFIND','url_template':'/dav'}]},"
		     "{'id':'root','path':'','backend':'bare'},"
		     "{'id':'slash','path':'/x/','backend':'bare'}]}");
	be = gw_backend_find(gw, "u");
	assert_string_equal(be->url, "https://api.example:8443/v1");
	assert_string_equal(gw_backend_find(gw, "v6")->url, "http://[::1]:8080");
	assert_string_equal(gw_backend_find(gw, "bare")->url, "https://h");
	assert_string_equal(gw_backend_find(gw, "enc")->url, "http://h/a%20b/%2Fc");
	assert_int_equal(gw->n_apis, 3);
	api = &gw->apis[0];
	assert_string_equal(api->path, "Weather/v1");
	assert_int_equal(api->n_hostnames, 3);
	assert_string_equal(api->hostnames[0], "api.example.com");
	assert_string_equal(api->hostnames[1], "[::1]");
	assert_string_equal(api->hostnames[2], "10.0.0.1");
	assert_ptr_equal(api->backend, be);
	assert_int_equal(api->subscription_required, 0);
	assert_string_equal(api->subscription_key_header, "X-Key");
	assert_string_equal(api->subscription_key_query, "subscription-key");
	assert_int_equal(api->n_operations, 3);
	assert_string_equal(api->operations[0].id, "o1");
	assert_string_equal(api->operations[0].method, "GET");
	assert_string_equal(api->operations[0].url_template, "/f/{city}");
	assert_string_equal(api->operations[1].method, "*");
	assert_string_equal(api->operations[2].method, "PROPFIND");
	assert_string_equal(gw->apis[1].path, "");
	assert_ptr_equal(gw->apis[1].backend, gw_backend_find(gw, "bare"));
	assert_string_equal(gw->apis[2].path, "x");
	gw_free(gw);
}

static void test_gateway_section(void **state)
{
	struct gateway *gw;

	(void)state;
	gw = load_ok(HEAD "'gateway':{'trusted_proxies':['10.0.0.0/8','192.0.2.7','2001:db8::/32'],"
		     "'max_request_body_bytes':0,'forwarded_headers':false,'health_path':'/hc',"
		     "'metrics':{'path':'/metrics','allow':['127.0.0.1/32','::1']}}}");
	assert_int_equal(gw->n_trusted_proxies, 3);
	assert_int_equal(gw->trusted_proxies[0].family, AF_INET);
	assert_int_equal(gw->trusted_proxies[0].prefix, 8);
	assert_int_equal(gw->trusted_proxies[0].addr[0], 10);
	assert_int_equal(gw->trusted_proxies[1].prefix, 32);
	assert_int_equal(gw->trusted_proxies[2].family, AF_INET6);
	assert_int_equal(gw->trusted_proxies[2].prefix, 32);
	assert_int_equal(gw->max_request_body_bytes, 0);
	assert_int_equal(gw->forwarded_headers, 0);
	assert_string_equal(gw->health_path, "/hc");
	assert_string_equal(gw->metrics_path, "/metrics");
	assert_int_equal(gw->n_metrics_allow, 2);
	assert_int_equal(gw->metrics_allow[1].family, AF_INET6);
	assert_int_equal(gw->metrics_allow[1].prefix, 128);
	gw_free(gw);

	gw = load_ok(HEAD "'gateway':{'max_request_body_bytes':9223372036854775807}}");
	assert_true(gw->max_request_body_bytes == INT64_MAX);
	gw_free(gw);

	gw = load_ok(HEAD "'gateway':{'client_request_timeout_ms':100,'client_idle_timeout_ms':86400000,"
		     "'client_body_timeout_ms':1500,'client_body_min_rate':1}}");
	assert_int_equal(gw->client_request_timeout_ms, 100);
	assert_int_equal(gw->client_idle_timeout_ms, 86400000);
	assert_int_equal(gw->client_body_timeout_ms, 1500);
	assert_int_equal(gw->client_body_min_rate, 1);
	gw_free(gw);
}

static void test_counters_section(void **state)
{
	struct gateway *gw;

	(void)state;
	gw = load_ok(HEAD "'gateway':{}}");
	assert_int_equal(gw->counters.store, GW_COUNTERS_LOCAL);
	gw_free(gw);

	gw = load_ok(HEAD "'gateway':{'counters':{'store':'redis','url':'redis://10.0.0.5'}}}");
	assert_int_equal(gw->counters.store, GW_COUNTERS_REDIS);
	assert_string_equal(gw->counters.host, "10.0.0.5");
	assert_int_equal(gw->counters.port, 6379);
	assert_int_equal(gw->counters.db, 0);
	assert_null(gw->counters.unix_path);
	assert_null(gw->counters.password);
	assert_int_equal(gw->counters.timeout_ms, GW_COUNTERS_DEFAULT_TIMEOUT_MS);
	assert_int_equal(gw->counters.on_failure, GW_ON_FAILURE_LOCAL);
	assert_string_equal(gw->counters.prefix, "hostgate:");
	gw_free(gw);

	gw = load_ok(HEAD "'named_values':{'rp':{'value':'pw1','secret':true}},"
		     "'gateway':{'counters':{'store':'redis','url':'redis://[::1]:6380/3',"
		     "'password':'{{rp}}','timeout_ms':250,'on_failure':'deny','prefix':'eu1:'}}}");
	assert_string_equal(gw->counters.host, "::1");
	assert_int_equal(gw->counters.port, 6380);
	assert_int_equal(gw->counters.db, 3);
	assert_string_equal(gw->counters.password, "pw1");
	assert_int_equal(gw->counters.timeout_ms, 250);
	assert_int_equal(gw->counters.on_failure, GW_ON_FAILURE_DENY);
	assert_string_equal(gw->counters.prefix, "eu1:");
	gw_free(gw);

	gw = load_ok(HEAD "'gateway':{'counters':{'store':'redis','url':'unix:/run/redis/r.sock',"
		     "'on_failure':'allow'}}}");
	assert_null(gw->counters.host);
	assert_string_equal(gw->counters.unix_path, "/run/redis/r.sock");
	assert_int_equal(gw->counters.on_failure, GW_ON_FAILURE_ALLOW);
	gw_free(gw);
}

static void test_named_values(void **state)
{
	struct gateway *gw;
	const struct gw_backend *be;

	(void)state;
	gw = load_ok(HEAD NV("'host':{'value':'api.example'},'key':{'value':'K3Y','secret':true},"
			     "'user':{'value':'gw','secret':false},'pass':{'value':'pw','secret':true},"
			     "'lit':{'value':'{{host}}'},'a':{'value':'A'},'b.c-d_e':{'value':'B'}")
		     "'backends':{'w':{'url':'https://{{host}}/{{a}}{{b.c-d_e}}/x',"
		     "'credentials':{'basic':{'username':'{{user}}','password':'p-{{pass}}'},"
		     "'header':{'X-Key':'{{key}}','X-Lit':'{{lit}}','X-Plain':'v{'},"
		     "'query':{'k':'{{key}}','h':'{{host}}'}}}}}");
	be = gw_backend_find(gw, "w");
	assert_string_equal(be->url, "https://api.example/AB/x");
	assert_string_equal(be->basic_username, "gw");
	assert_string_equal(be->basic_password, "p-pw");
	assert_int_equal(be->n_cred_headers, 3);
	assert_string_equal(be->cred_headers[0].name, "X-Key");
	assert_string_equal(be->cred_headers[0].value, "K3Y");
	assert_int_equal(be->cred_headers[0].secret, 1);
	/* a named value's own text is not substituted again */
	assert_string_equal(be->cred_headers[1].value, "{{host}}");
	assert_int_equal(be->cred_headers[1].secret, 0);
	assert_string_equal(be->cred_headers[2].value, "v{");
	assert_int_equal(be->cred_headers[2].secret, 0);
	assert_int_equal(be->n_cred_query, 2);
	assert_string_equal(be->cred_query[0].name, "k");
	assert_int_equal(be->cred_query[0].secret, 1);
	assert_string_equal(be->cred_query[1].value, "api.example");
	assert_int_equal(be->cred_query[1].secret, 0);
	/* kept for redaction */
	assert_int_equal(gw->n_named_values, 7);
	for (size_t i = 0; i < gw->n_named_values; i++)
		if (strcmp(gw->named_values[i].name, "key") == 0)
			assert_int_equal(gw->named_values[i].secret, 1);
	gw_free(gw);
}

/* A secret must not appear in any message, wherever it makes the string bad. */
static void test_secret_never_shown(void **state)
{
	static const struct bad_case cases[] = {
		{ HEAD NV("'s':{'value':'ftp://s3cr3t-VALUE','secret':true}")
		  "'backends':{'w':{'url':'{{s}}'}}}", "backends[\"w\"].url",
		  "the value is not an absolute http:// or https:// URL (value hidden: it uses a secret)" },
		{ HEAD NV("'s':{'value':'s3cr3t-VALUE?x','secret':true}")
		  "'backends':{'w':{'url':'https://h/{{s}}'}}}", "backends[\"w\"].url",
		  "must not have a query string (value hidden: it uses a secret)" },
		{ HEAD NV("'s':{'value':'s3cr3t-VALUE\\r\\n','secret':true}")
		  "'backends':{'w':{'url':'https://h','credentials':{'header':{'X-K':'{{s}}'}}}}}",
		  "backends[\"w\"].credentials.header[\"X-K\"]", "(value hidden: it uses a secret)" },
		{ HEAD NV("'s':{'value':'s3cr3t-VALUE:','secret':true}")
		  "'backends':{'w':{'url':'https://h','credentials':{'basic':{'username':'{{s}}','password':'p'}}}}}",
		  "backends[\"w\"].credentials.basic.username", "(value hidden: it uses a secret)" },
		{ HEAD NV("'s':{'value':'s3cr3t-VALUE','secret':true}")
		  "'gateway':{'trusted_proxies':['{{s}}']}}", "gateway.trusted_proxies[0]",
		  "the value is not an IP address or CIDR" },
		{ HEAD NV("'s':{'value':'s3cr3t-VALUE','secret':true}")
		  "'gateway':{'health_path':'{{s}}'}}", "gateway.health_path", "(value hidden" },
		{ HEAD NV("'s':{'value':'s3cr3t-VALUE','secret':true}")
		  "'backends':{'w':{'url':'https://h','tls':{'ca_file':'{{s}}'}}}}",
		  "backends[\"w\"].tls.ca_file", "(value hidden" },
		/* where route_build would print it, a secret is refused outright */
		{ HEAD NV("'s':{'value':'s3cr3t-VALUE','secret':true}") BACKEND
		  ",'apis':[{'id':'a','path':'{{s}}','backend':'w'}]}", "apis[0].path",
		  "must not use a secret named value" },
		{ HEAD NV("'s':{'value':'s3cr3t-VALUE','secret':true}") BACKEND
		  ",'apis':[{'id':'a','path':'p','backend':'w','operations':[{'id':'o','method':'GET',"
		  "'url_template':'/{{s}}'}]}]}", "apis[0].operations[0].url_template",
		  "must not use a secret named value" },
		{ HEAD NV("'s':{'value':'s3cr3t-VALUE','secret':true}") BACKEND
		  ",'apis':[{'id':'a','path':'p','backend':'w','hostnames':['{{s}}.example']}]}",
		  "apis[0].hostnames[0]", "must not use a secret named value" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cfg_errors errs = CFG_ERRORS_INIT;
		struct gateway *gw = load(cases[i].doc, &errs);

		if (gw || !has_error(&errs, cases[i].path, cases[i].msg) ||
		    any_error_contains(&errs, "s3cr3t")) {
			print_message("secret case %zu: %s\n", i, cases[i].doc);
			print_errors(&errs);
			fail();
		}
		gw_free(gw);
		cfg_errors_release(&errs);
	}
}

/* The same mistakes with a value that is not secret do show it. */
static void test_non_secret_shown(void **state)
{
	struct cfg_errors errs = CFG_ERRORS_INIT;

	(void)state;
	assert_null(load(HEAD NV("'s':{'value':'ftp://plain-VALUE'}") "'backends':{'w':{'url':'{{s}}'}}}",
			 &errs));
	assert_true(has_error(&errs, "backends[\"w\"].url", "'ftp://plain-VALUE' is not an absolute"));
	cfg_errors_release(&errs);
}

/* A name given three times is one error; equal names in different objects,
 * or in an object and its parent, are not errors. */
static void test_duplicates_counted_once(void **state)
{
	struct cfg_errors errs = CFG_ERRORS_INIT;
	struct gateway *gw;

	(void)state;
	assert_null(load(HEAD "'x-a':{'k':1,'j':1,'k':2,'j':2,'k':3,'i':0}}", &errs));
	if (errs.n != 2)
		print_errors(&errs);
	assert_int_equal(errs.n, 2);
	/* in document order of the second occurrence */
	assert_string_equal(errs.msg[0], "x-a.k: given more than once in the same object");
	assert_string_equal(errs.msg[1], "x-a.j: given more than once in the same object");
	cfg_errors_release(&errs);

	gw = load_ok(HEAD "'x-a':{'k':{'k':{'k':1}}},'x-b':{'k':1},'x-c':[{'k':1},{'k':1}]}");
	gw_free(gw);
}

/* Every error of a document, in one pass. */
static void test_collects_all_errors(void **state)
{
	struct cfg_errors errs = CFG_ERRORS_INIT;
	struct gateway *gw;

	(void)state;
	gw = load("{'format':1,'generation':0,'gateway':{'forwarded_headers':1},"
		  "'backends':{'w':{'url':'ftp://x','timeout_ms':0}},"
		  "'apis':[{'id':'a','path':'p','backend':'nope'},"
		  "{'id':'b','path':'q','backend':'w','operations':[{'id':'o','method':'G T',"
		  "'url_template':'x'}]}],'bogus':1}", &errs);
	assert_null(gw);
	if (errs.n != 8)
		print_errors(&errs);
	assert_int_equal(errs.n, 8);
	assert_true(has_error(&errs, "generation", "at least 1"));
	assert_true(has_error(&errs, "bogus", "unknown member"));
	assert_true(has_error(&errs, "gateway.forwarded_headers", "boolean"));
	assert_true(has_error(&errs, "backends[\"w\"].url", "not an absolute"));
	assert_true(has_error(&errs, "backends[\"w\"].timeout_ms", "from 1 to"));
	assert_true(has_error(&errs, "apis[0].backend", "'nope' is not a backend"));
	assert_true(has_error(&errs, "apis[1].operations[0].method", "not an HTTP method"));
	assert_true(has_error(&errs, "apis[1].operations[0].url_template", "start with '/'"));
	cfg_errors_release(&errs);

	/* more than CFG_ERRORS_MAX: kept up to the cap, the rest counted */
	{
		char doc[8192];
		size_t n = 0;

		n += (size_t)snprintf(doc + n, sizeof(doc) - n, "{'format':1,'generation':1");
		for (int i = 0; i < 150; i++)
			n += (size_t)snprintf(doc + n, sizeof(doc) - n, ",'u%d':1", i);
		snprintf(doc + n, sizeof(doc) - n, "}");
		assert_null(load(doc, &errs));
		assert_int_equal(errs.n, CFG_ERRORS_MAX);
		assert_int_equal(errs.dropped, 50);
		cfg_errors_release(&errs);
	}
}

/* Nesting: 64 levels load, 65 do not. */
static void test_depth_limit(void **state)
{
	char doc[512];
	struct cfg_errors errs = CFG_ERRORS_INIT;
	struct gateway *gw;

	(void)state;
	for (int depth = 63; depth <= 66; depth++) {
		size_t n = (size_t)snprintf(doc, sizeof(doc), "{\"format\":1,\"generation\":1,\"x-a\":");

		/* the root object is level 1 */
		for (int i = 1; i < depth; i++)
			doc[n++] = '[';
		for (int i = 1; i < depth; i++)
			doc[n++] = ']';
		doc[n++] = '}';
		gw = gw_load_buffer(doc, n, &errs);
		if (depth <= GW_MAX_JSON_DEPTH) {
			if (!gw)
				print_errors(&errs);
			assert_non_null(gw);
		} else {
			assert_null(gw);
			assert_true(has_error(&errs, "$", "nested deeper than 64 levels"));
		}
		gw_free(gw);
		cfg_errors_release(&errs);
	}
}

/* The length given is the document: no terminator needed, a NUL inside is not
 * the end, bytes past len are never read. */
static void test_buffer_bounds(void **state)
{
	static const char doc[] = "{\"format\":1,\"generation\":1}";
	struct cfg_errors errs = CFG_ERRORS_INIT;
	struct gateway *gw;
	char *exact, *withnul;

	(void)state;
	exact = malloc(sizeof(doc) - 1);
	assert_non_null(exact);
	memcpy(exact, doc, sizeof(doc) - 1);
	gw = gw_load_buffer(exact, sizeof(doc) - 1, &errs);
	assert_non_null(gw);
	gw_free(gw);
	/* cut short */
	assert_null(gw_load_buffer(exact, sizeof(doc) - 2, &errs));
	assert_true(has_error(&errs, "$", "unexpected end of the document"));
	cfg_errors_release(&errs);
	free(exact);

	withnul = malloc(sizeof(doc) + 2);
	assert_non_null(withnul);
	memcpy(withnul, doc, sizeof(doc) - 1);
	memcpy(withnul + sizeof(doc) - 1, "\0 x", 3);
	assert_null(gw_load_buffer(withnul, sizeof(doc) + 2, &errs));
	assert_true(has_error(&errs, "$", "unexpected data after the end of the document"));
	cfg_errors_release(&errs);
	free(withnul);

	assert_null(gw_load_buffer(NULL, 0, &errs));
	assert_true(has_error(&errs, "$", "unexpected end of the document"));
	cfg_errors_release(&errs);
}

/* GW_MAX_DOCUMENT_BYTES loads; one byte more is refused before parsing. */
static void test_size_cap(void **state)
{
	static const char doc[] = "{\"format\":1,\"generation\":1}";
	size_t max = GW_MAX_DOCUMENT_BYTES;
	struct cfg_errors errs = CFG_ERRORS_INIT;
	struct gateway *gw;
	char *buf = malloc(max + 1);

	(void)state;
	assert_non_null(buf);
	memset(buf, ' ', max + 1);
	memcpy(buf, doc, sizeof(doc) - 1);
	gw = gw_load_buffer(buf, max, &errs);
	assert_non_null(gw);
	gw_free(gw);
	assert_null(gw_load_buffer(buf, max + 1, &errs));
	assert_int_equal(errs.n, 1);
	assert_true(has_error(&errs, "$", "the document is larger than 67108864 bytes"));
	cfg_errors_release(&errs);
	free(buf);
}

static char *temp_file(const char *content, size_t len)
{
	char *path = strdup("/tmp/test_config.XXXXXX");
	int fd;

	assert_non_null(path);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, len), (ssize_t)len);
	close(fd);
	return path;
}

static void test_files(void **state)
{
	struct cfg_errors errs = CFG_ERRORS_INIT;
	struct gateway *gw;
	char *path, *d = dq(API(""));
	int fd;

	(void)state;
	path = temp_file(d, strlen(d));
	free(d);
	gw = gw_load_file(path, &errs);
	assert_non_null(gw);
	assert_int_equal(gw->n_apis, 1);
	gw_free(gw);
	unlink(path);
	free(path);

	assert_null(gw_load_file("/nonexistent/hostgate.json", &errs));
	assert_int_equal(errs.n, 1);
	assert_string_equal(errs.msg[0], "$: cannot read '/nonexistent/hostgate.json': no such file "
			    "or directory");
	cfg_errors_release(&errs);

	assert_null(gw_load_file("/tmp", &errs));
	assert_int_equal(errs.n, 1);
	assert_true(has_error(&errs, "$", "cannot read '/tmp': is a directory"));
	cfg_errors_release(&errs);

	/* unreadable: only meaningful when not root */
	if (geteuid() != 0) {
		path = temp_file("{}", 2);
		assert_int_equal(chmod(path, 0), 0);
		assert_null(gw_load_file(path, &errs));
		assert_true(has_error(&errs, "$", "permission denied"));
		cfg_errors_release(&errs);
		unlink(path);
		free(path);
	}

	/* larger than the cap (sparse: reads as NULs) */
	path = temp_file("", 0);
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)GW_MAX_DOCUMENT_BYTES + 1), 0);
	close(fd);
	assert_null(gw_load_file(path, &errs));
	assert_int_equal(errs.n, 1);
	assert_true(has_error(&errs, "$", "larger than 67108864 bytes"));
	cfg_errors_release(&errs);
	unlink(path);
	free(path);

	/* a file with an error in it reports the JSON path */
	d = dq(BK("'url':'ftp://x'"));
	path = temp_file(d, strlen(d));
	free(d);
	assert_null(gw_load_file(path, &errs));
	assert_true(has_error(&errs, "backends[\"w\"].url", "not an absolute"));
	cfg_errors_release(&errs);
	unlink(path);
	free(path);
}

/* tests/unit/data/full.json: every key the loader supports. */
static void test_full_example(void **state)
{
	struct cfg_errors errs = CFG_ERRORS_INIT;
	const struct gw_backend *be;
	const struct gw_api *api;
	struct gateway *gw;

	(void)state;
	gw = gw_load_file("tests/unit/data/full.json", &errs);
	if (!gw)
		print_errors(&errs);
	assert_non_null(gw);
	assert_int_equal(gw->generation, 42);
	assert_int_equal(gw->n_trusted_proxies, 3);
	assert_int_equal(gw->max_request_body_bytes, 1048576);
	assert_int_equal(gw->forwarded_headers, 0);
	assert_string_equal(gw->health_path, "/healthz-0123");
	assert_string_equal(gw->metrics_path, "/metrics");
	assert_int_equal(gw->n_metrics_allow, 2);
	assert_int_equal(gw->n_named_values, 6);
	assert_int_equal(gw->n_backends, 2);
	be = gw_backend_find(gw, "weather");
	assert_non_null(be);
	assert_string_equal(be->url, "https://api.weather.example:8443/v1");
	assert_int_equal(be->timeout_ms, 20000);
	assert_int_equal(be->connect_timeout_ms, 2500);
	assert_int_equal(be->tls.verify, 1);
	assert_string_equal(be->tls.ca_file, "/etc/ssl/certs/weather-ca.pem");
	assert_string_equal(be->tls.client_certificate, "/etc/hostgate/client.pem");
	assert_string_equal(be->tls.client_key, "/etc/hostgate/client.key");
	assert_string_equal(be->basic_username, "gateway");
	assert_string_equal(be->basic_password, "pa55word");
	assert_int_equal(be->n_cred_headers, 2);
	assert_string_equal(be->cred_headers[0].name, "x-api-key");
	assert_string_equal(be->cred_headers[0].value, "k3y-of-the-weather-api");
	assert_int_equal(be->cred_headers[0].secret, 1);
	assert_string_equal(be->cred_headers[1].name, "X-Region");
	assert_int_equal(be->cred_headers[1].secret, 0);
	assert_int_equal(be->n_cred_query, 1);
	assert_string_equal(be->cred_query[0].value, "appid-42");
	assert_int_equal(be->cred_query[0].secret, 0);
	be = gw_backend_find(gw, "plain");
	assert_string_equal(be->url, "http://[::1]:18081");
	assert_int_equal(be->tls.verify, 0);
	assert_int_equal(gw->n_apis, 2);
	api = &gw->apis[0];
	assert_string_equal(api->id, "weather");
	assert_string_equal(api->path, "weather/v1");
	assert_int_equal(api->n_hostnames, 2);
	assert_string_equal(api->hostnames[0], "api.example.com");
	assert_string_equal(api->hostnames[1], "[2001:db8::1]");
	assert_ptr_equal(api->backend, gw_backend_find(gw, "weather"));
	assert_int_equal(api->subscription_required, 0);
	assert_string_equal(api->subscription_key_header, "X-Key");
	assert_string_equal(api->subscription_key_query, "key");
	assert_int_equal(api->n_operations, 2);
	assert_string_equal(api->operations[0].method, "GET");
	assert_string_equal(api->operations[1].url_template, "/files/{*rest}");
	assert_string_equal(gw->apis[1].path, "");
	assert_non_null(gw->routes);
	gw_free(gw);
	cfg_errors_release(&errs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_documents),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_x_members_ignored),
		cmocka_unit_test(test_values_stored),
		cmocka_unit_test(test_gateway_section),
		cmocka_unit_test(test_counters_section),
		cmocka_unit_test(test_named_values),
		cmocka_unit_test(test_secret_never_shown),
		cmocka_unit_test(test_non_secret_shown),
		cmocka_unit_test(test_duplicates_counted_once),
		cmocka_unit_test(test_collects_all_errors),
		cmocka_unit_test(test_depth_limit),
		cmocka_unit_test(test_buffer_bounds),
		cmocka_unit_test(test_size_cap),
		cmocka_unit_test(test_files),
		cmocka_unit_test(test_full_example),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
