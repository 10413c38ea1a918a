/*
 * hostgate-import — an Azure API Management user's definitions as a format 1
 * document (shared/spec/commands-and-files.md, hostgate-import;
 * docs/importing.md). The conversion is convert.c's; this file reads the
 * command line, prints the report and writes the document only when the
 * whole of it converted and loads.
 *
 * Exit: 0 imported, 1 refused (every reason on standard error as
 * FILE:LINE: what, and why; nothing written), 2 usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/atomicfile.h"
#include "common/fileread.h"
#include "import/apiops.h"
#include "import/convert.h"

static void S_usage(void)
{
	fputs("usage: hostgate-import apiops DIR [--overrides configuration.ENV.yaml]"
	      " [--gateway NAME] [--keys FILE]\n"
	      "                       [--exclude-unconvertible] [--format text|json] [-o FILE]\n"
	      "       hostgate-import openapi SPEC.yaml|SPEC.json --api-id ID --path PATH"
	      " [--backend URL]\n"
	      "                       [--format text|json] [-o FILE]\n", stderr);
}

static int S_write(const char *out, json_object *doc)
{
	const char *s = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PRETTY |
						       JSON_C_TO_STRING_SPACED |
						       JSON_C_TO_STRING_NOSLASHESCAPE);
	const char *step = NULL;

	if (!out) {
		if (fputs(s, stdout) == EOF || fputc('\n', stdout) == EOF || fflush(stdout) != 0) {
			fprintf(stderr, "hostgate-import: cannot write the document: %s\n",
				strerror(errno));
			return -1;
		}
		return 0;
	}
	/* the document may hold secret named values: not world-readable */
	if (atomicfile_replace(out, s, strlen(s), 0640, 0, &step) != 0) {
		fprintf(stderr, "hostgate-import: cannot write '%s': %s: %s\n", out,
			step ? step : "write", strerror(errno));
		return -1;
	}
	return 0;
}

static void S_report(int json, const struct imp_report *r, const struct cfg_errors *errs)
{
	json_object *j, *e;
	size_t i;

	if (!json) {
		imp_report_print(r, errs, stderr);
		return;
	}
	j = r->j ? json_object_get(r->j) : json_object_new_object();
	e = json_object_new_array();
	for (i = 0; errs && i < errs->n; i++)
		json_object_array_add(e, json_object_new_string(errs->msg[i]));
	json_object_object_add(j, "errors", e);
	fprintf(stderr, "%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN |
								 JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(j);
}

static int S_openapi(const char *spec_path, const char *id, const char *path, const char *backend,
		     json_object **doc, struct cfg_errors *errs)
{
	json_object *spec = NULL, *d, *ops, *api, *bs, *b, *servers;
	const char *url = backend;
	struct gateway *gw;
	const char *s;
	int rc = -1;

	*doc = NULL;
	if (apiops_read_spec(spec_path, spec_path, &spec, errs) != 0)
		return -1;
	ops = json_object_new_array();
	if (imp_openapi_operations(spec, spec_path, ops, errs) != 0) {
		json_object_put(ops);
		goto out;
	}
	if (!url && json_object_object_get_ex(spec, "servers", &servers) &&
	    json_object_is_type(servers, json_type_array) && json_object_array_length(servers) > 0) {
		json_object *u;
		if (json_object_object_get_ex(json_object_array_get_idx(servers, 0), "url", &u))
			url = json_object_get_string(u);
	}
	if (!url || (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))) {
		char where[600];
		snprintf(where, sizeof(where), "%s:1", spec_path);
		cfg_error(errs, where, "no absolute servers[0].url: give the backend with --backend URL");
		json_object_put(ops);
		goto out;
	}
	d = json_object_new_object();
	json_object_object_add(d, "format", json_object_new_int(1));
	json_object_object_add(d, "generation", json_object_new_int64((long long)time(NULL)));
	bs = json_object_new_object();
	b = json_object_new_object();
	json_object_object_add(b, "url", json_object_new_string(url));
	json_object_object_add(bs, id, b);
	json_object_object_add(d, "backends", bs);
	api = json_object_new_object();
	json_object_object_add(api, "id", json_object_new_string(id));
	json_object_object_add(api, "path", json_object_new_string(path));
	json_object_object_add(api, "backend", json_object_new_string(id));
	json_object_object_add(api, "operations", ops);
	json_object_object_add(d, "apis", json_object_new_array());
	json_object_array_add(json_object_object_get(d, "apis"), api);
	s = json_object_to_json_string_ext(d, JSON_C_TO_STRING_PLAIN);
	gw = gw_load_buffer(s, strlen(s), errs);
	if (!gw) {
		json_object_put(d);
		goto out;
	}
	gw_free(gw);
	*doc = d;
	rc = 0;
out:
	json_object_put(spec);
	return rc;
}

int main(int argc, char **argv)
{
	const char *mode, *src, *overrides = NULL, *gateway = NULL, *keys_file = NULL,
		*out = NULL, *api_id = NULL, *path = NULL, *backend = NULL;
	int exclude = 0, json = 0, i, rc = 1;
	struct cfg_errors errs = CFG_ERRORS_INIT;
	struct imp_report r = IMP_REPORT_INIT;
	json_object *doc = NULL, *keys = NULL;

	if (argc < 3) {
		S_usage();
		return 2;
	}
	mode = argv[1];
	src = argv[2];
	for (i = 3; i < argc; i++) {
		const char *a = argv[i];
		const char **dst = NULL;
		if (!strcmp(a, "--exclude-unconvertible")) {
			exclude = 1;
			continue;
		}
		if (!strcmp(a, "--overrides"))
			dst = &overrides;
		else if (!strcmp(a, "--gateway"))
			dst = &gateway;
		else if (!strcmp(a, "--keys"))
			dst = &keys_file;
		else if (!strcmp(a, "-o"))
			dst = &out;
		else if (!strcmp(a, "--api-id"))
			dst = &api_id;
		else if (!strcmp(a, "--path"))
			dst = &path;
		else if (!strcmp(a, "--backend"))
			dst = &backend;
		else if (!strcmp(a, "--format")) {
			if (i + 1 >= argc || (strcmp(argv[i + 1], "json") && strcmp(argv[i + 1], "text"))) {
				S_usage();
				return 2;
			}
			json = !strcmp(argv[++i], "json");
			continue;
		}
		if (!dst || i + 1 >= argc) {
			fprintf(stderr, "hostgate-import: unknown or incomplete option '%s'\n", a);
			S_usage();
			return 2;
		}
		*dst = argv[++i];
	}
	if (!strcmp(mode, "openapi")) {
		if (!api_id || !path || overrides || gateway || keys_file || exclude) {
			S_usage();
			return 2;
		}
		if (S_openapi(src, api_id, path, backend, &doc, &errs) == 0 && S_write(out, doc) == 0)
			rc = 0;
		S_report(json, &r, &errs);
		goto out;
	}
	if (strcmp(mode, "apiops") || api_id || path || backend) {
		S_usage();
		return 2;
	}
	if (keys_file) {
		char *text;
		size_t len;
		if (file_read(keys_file, 1024 * 1024, &text, &len) != 0) {
			fprintf(stderr, "hostgate-import: cannot read '%s': %s\n", keys_file,
				strerror(errno));
			goto out;
		}
		keys = json_tokener_parse(text);
		explicit_bzero(text, len);
		free(text);
		if (!keys || !json_object_is_type(keys, json_type_object)) {
			fprintf(stderr, "%s:1: expected {\"subscription\": [\"key\", ...]}\n", keys_file);
			goto out;
		}
	}
	{
		struct imp_artifacts a;
		struct imp_options o = { gateway, keys, exclude, (long long)time(NULL) };
		if (apiops_load(src, overrides, &a, &errs) != 0) {
			S_report(json, &r, &errs);
			goto out;
		}
		if (imp_convert(&a, &o, &doc, &r, &errs) == 0 && S_write(out, doc) == 0)
			rc = 0;
		S_report(json, &r, &errs);
		apiops_free(&a);
	}
out:
	json_object_put(doc);
	json_object_put(keys);
	imp_report_release(&r);
	cfg_errors_release(&errs);
	return rc;
}
