/*
 * test_manage_store — hostgate-manage's store (manage/store.h) on an
 * in-memory SQLite database, the model's references and per-gateway
 * document (manage/model.h), and the small helpers (manage/util.h). What a
 * second store implementation (PostgreSQL) must pass too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "manage/model.h"
#include "manage/store.h"
#include "manage/util.h"
#include "policy/products.h"

static struct store *open_mem(void)
{
	char err[256];
	struct store *st = store_open(":memory:", err, sizeof(err));

	if (!st)
		fail_msg("%s", err);
	return st;
}

static void test_generation_and_objects(void **state)
{
	struct store *st = open_mem();
	int64_t gen = 0, changed = 0;
	char *json = NULL;

	(void)state;
	assert_int_equal(store_generation(st), 0);
	assert_int_equal(store_begin(st), 0);
	assert_int_equal(store_bump_generation(st, &gen), 0);
	assert_int_equal(gen, 1);
	assert_int_equal(store_put(st, "api", "a", "{\"path\":\"a\"}", gen), 0);
	store_rollback(st);
	/* rolled back: nothing happened */
	assert_int_equal(store_generation(st), 0);
	assert_int_equal(store_get(st, "api", "a", &json, NULL), 1);

	assert_int_equal(store_begin(st), 0);
	assert_int_equal(store_bump_generation(st, &gen), 0);
	assert_int_equal(store_put(st, "api", "a", "{\"path\":\"a\"}", gen), 0);
	assert_int_equal(store_commit(st), 0);
	assert_int_equal(store_get(st, "api", "a", &json, &changed), 0);
	assert_string_equal(json, "{\"path\":\"a\"}");
	assert_int_equal(changed, 1);
	free(json);
	/* an id full of SQL is only an id */
	assert_int_equal(store_get(st, "api", "a' OR '1'='1", &json, NULL), 1);
	assert_int_equal(store_delete(st, "api", "nope"), 1);
	assert_int_equal(store_delete(st, "api", "a"), 0);
	store_close(st);
}

static int collect(void *ctx, const char *id, const char *json, int64_t changed)
{
	char *buf = ctx;

	(void)json;
	(void)changed;
	strcat(buf, id);	/* test only: sizes are known */
	strcat(buf, ",");
	return 0;
}

static void test_refs(void **state)
{
	struct store *st = open_mem();
	const char *to[] = { "backend/b", "named_value/n" };
	char buf[256] = "";

	(void)state;
	assert_int_equal(store_set_refs(st, "api/a", to, 2), 0);
	assert_int_equal(store_set_refs(st, "product/p", (const char *[]){ "api/a" }, 1), 0);
	assert_int_equal(store_referrers(st, "backend/b", collect, buf), 0);
	assert_string_equal(buf, "api/a,");
	buf[0] = '\0';
	assert_int_equal(store_references(st, "api/a", collect, buf), 0);
	assert_string_equal(buf, "backend/b,named_value/n,");
	/* replaced, not added to */
	assert_int_equal(store_set_refs(st, "api/a", to, 1), 0);
	buf[0] = '\0';
	assert_int_equal(store_references(st, "api/a", collect, buf), 0);
	assert_string_equal(buf, "backend/b,");
	store_close(st);
}

static int sum_count(void *ctx, const struct store_metric *m)
{
	*(int64_t *)ctx += m->count;
	return 0;
}

static void test_metrics_dedupe_and_rollup(void **state)
{
	struct store *st = open_mem();
	struct store_metric m = { .minute = 600, .gateway = "g", .api = "a", .operation = "",
				  .subscription = "", .status = 200, .count = 3 };
	struct store_metrics_filter f = { .from = 0, .to = 10000 };
	int64_t total = 0;

	(void)state;
	assert_int_equal(store_metrics_window(st, "i1", "1970-01-01T00:10:00Z", 1), 0);
	assert_int_equal(store_metrics_window(st, "i1", "1970-01-01T00:10:00Z", 2), 1);
	assert_int_equal(store_metrics_window(st, "i2", "1970-01-01T00:10:00Z", 2), 0);
	assert_int_equal(store_metrics_add(st, &m), 0);
	m.count = 4;
	assert_int_equal(store_metrics_add(st, &m), 0);	/* the same minute: added up */
	assert_int_equal(store_metrics_query(st, &f, 0, sum_count, &total), 0);
	assert_int_equal(total, 7);
	f.api = "other";
	total = 0;
	assert_int_equal(store_metrics_query(st, &f, STORE_BY_API, sum_count, &total), 0);
	assert_int_equal(total, 0);
	assert_int_equal(store_metrics_expire(st, 1000), 0);
	f.api = NULL;
	assert_int_equal(store_metrics_query(st, &f, STORE_BY_MINUTE, sum_count, &total), 0);
	assert_int_equal(total, 0);
	store_close(st);
}

#define KEY64(c) c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c \
	c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c
#define KEYS1 "\"keys_sha256\":[\"" KEY64("a") "\"]"
#define KEYS2 "\"keys_sha256\":[\"" KEY64("b") "\"]"
#define KEYS3 "\"keys_sha256\":[\"" KEY64("c") "\"]"

static void put(struct store *st, const char *kind, const char *id, const char *json)
{
	json_object *o = json_tokener_parse(json);
	char from[128], **refs = NULL;
	size_t n = 0;

	assert_non_null(o);
	snprintf(from, sizeof(from), "%s/%s", kind, id);
	assert_int_equal(model_refs(kind, o, &refs, &n), 0);
	assert_int_equal(store_put(st, kind, id, json, 1), 0);
	assert_int_equal(store_set_refs(st, from, (const char *const *)refs, n), 0);
	model_refs_free(refs, n);
	json_object_put(o);
}

static void test_gateway_document_holds_only_what_it_needs(void **state)
{
	struct store *st = open_mem();
	json_object *errors = NULL, *doc;
	char err[256], *body = NULL;
	size_t len = 0;

	(void)state;
	put(st, "named_value", "k", "{\"value\":\"v\",\"secret\":true}");
	put(st, "named_value", "unused", "{\"value\":\"u\"}");
	put(st, "backend", "b1", "{\"url\":\"http://127.0.0.1:9/\","
	    "\"credentials\":{\"header\":{\"x-k\":\"{{k}}\"}}}");
	put(st, "backend", "b2", "{\"url\":\"http://127.0.0.1:9/two\"}");
	put(st, "api", "a1", "{\"id\":\"a1\",\"path\":\"a1\",\"backend\":\"b1\"}");
	put(st, "api", "a2", "{\"id\":\"a2\",\"path\":\"a2\",\"backend\":\"b2\"}");
	put(st, "product", "p", "{\"id\":\"p\",\"apis\":[\"a1\",\"a2\"]}");
	put(st, "subscription", "s1", "{\"id\":\"s1\",\"scope\":\"product:p\"," KEYS1 "}");
	put(st, "subscription", "s2", "{\"id\":\"s2\",\"scope\":\"api:a2\"," KEYS2 "}");
	put(st, "subscription", "s3", "{\"id\":\"s3\",\"scope\":\"all\"," KEYS3 "}");
	put(st, "gateway", "g", "{\"apis\":[\"a1\"]}");
	if (model_validate(st, "", "", NULL, &errors, err, sizeof(err)) != 0)
		fail_msg("%s", errors ? json_object_to_json_string(errors) : err);

	assert_int_equal(model_gateway_document(st, "g", 7, &body, &len, err, sizeof(err)), 0);
	doc = json_tokener_parse(body);
	assert_non_null(doc);
	assert_string_equal(json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN),
		"{\"format\":1,\"generation\":7,"
		"\"named_values\":{\"k\":{\"value\":\"v\",\"secret\":true}},"
		"\"backends\":{\"b1\":{\"url\":\"http:\\/\\/127.0.0.1:9\\/\","
		"\"credentials\":{\"header\":{\"x-k\":\"{{k}}\"}}}},"
		"\"apis\":[{\"id\":\"a1\",\"path\":\"a1\",\"backend\":\"b1\"}],"
		"\"products\":[{\"id\":\"p\",\"apis\":[\"a1\"]}],"
		"\"subscriptions\":[{\"id\":\"s1\",\"scope\":\"product:p\"," KEYS1 "},"
		"{\"id\":\"s3\",\"scope\":\"all\"," KEYS3 "}]}");
	json_object_put(doc);
	free(body);
	assert_int_equal(model_gateway_document(st, "nope", 7, &body, &len, err, sizeof(err)), 1);

	/* a write that breaks the database: errors with paths, relative to it */
	assert_int_equal(model_validate(st, "api", "a2",
					"{\"id\":\"a2\",\"path\":\"a2\",\"backend\":\"zz\"}",
					&errors, err, sizeof(err)), 1);
	assert_string_equal(json_object_to_json_string_ext(errors, JSON_C_TO_STRING_PLAIN),
			    "[{\"path\":\"backend\",\"message\":\"'zz' is not a backend\"}]");
	json_object_put(errors);
	/* an error in another array member names it by id, not by index */
	assert_int_equal(model_validate(st, "backend", "b2", NULL, &errors, err, sizeof(err)), 1);
	assert_non_null(strstr(json_object_to_json_string(errors), "apis[\\\"a2\\\"]"));
	json_object_put(errors);
	/* removing what others use: the error names where */
	assert_int_equal(model_validate(st, "named_value", "k", NULL, &errors, err, sizeof(err)), 1);
	assert_non_null(strstr(json_object_to_json_string(errors), "backends[\\\"b1\\\"]"));
	json_object_put(errors);
	store_close(st);
}

static void test_util(void **state)
{
	struct sbuf b = SBUF_INIT(8);
	int64_t t = 0;
	char out[32];

	(void)state;
	assert_int_equal(products_parse_time("2026-12-02T13:00:00Z", &t), 0);
	assert_int_equal(t, 1796216400);
	assert_int_equal(products_parse_time("2026-12-02T14:00:00.250+01:00", &t), 0);
	assert_int_equal(t, 1796216400);
	assert_int_equal(products_parse_time("2026-12-02 13:00:00Z", &t), -1);
	assert_int_equal(products_parse_time("2026-13-02T13:00:00Z", &t), -1);
	assert_int_equal(products_parse_time("2026-12-02T13:00:00", &t), -1);
	util_format_time(1796216400, out, sizeof(out));
	assert_string_equal(out, "2026-12-02T13:00:00Z");
	assert_true(util_is_id("a-b_c.9"));
	assert_false(util_is_id(""));
	assert_false(util_is_id("a'b"));
	assert_false(util_is_id("a/b"));
	/* the cap holds: past it, the buffer fails and stays cut */
	sbuf_adds(&b, "12345678");
	assert_false(b.failed);
	sbuf_adds(&b, "9");
	assert_true(b.failed);
	assert_int_equal(b.len, 8);
	sbuf_release(&b);
	sbuf_add_html(&b, "<a href=\"x\">&'");
	assert_true(b.failed);	/* the cap again: 8 bytes */
	sbuf_release(&b);
	b.max = 100;
	sbuf_add_html(&b, "<a href=\"x\">&'");
	assert_string_equal(b.s, "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
	sbuf_release(&b);
	b.max = 100;
	sbuf_add_json(&b, "q\"\\\n\x01");
	assert_string_equal(b.s, "\"q\\\"\\\\\\u000a\\u0001\"");
	sbuf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_generation_and_objects),
		cmocka_unit_test(test_refs),
		cmocka_unit_test(test_metrics_dedupe_and_rollup),
		cmocka_unit_test(test_gateway_document_holds_only_what_it_needs),
		cmocka_unit_test(test_util),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
