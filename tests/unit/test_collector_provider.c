/*
 * collector/provider*.c without a network: the summary schema, validation of
 * models' answers against it, the builtin merge of chunk summaries, and the
 * failures that happen before any request.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../collector/provider.h"

#define GOOD                                                                                       \
	"{\"title\":\"Package install\",\"short_description\":\"Installed nginx.\","               \
	"\"detailed_description\":\"Ran apt-get update\\nthen apt-get install nginx.\","           \
	"\"risk_level\":\"medium\",\"risk_score\":30,"                                             \
	"\"risk_reasons\":[\"sudo used\",\"package from a new repository\"],"                      \
	"\"commands_of_interest\":[\"sudo apt-get install nginx\"],\"needs_review\":false}"

/* GOOD with one field's value replaced (raw JSON), or removed when value is NULL. */
static char *with_field(const char *field, const char *value)
{
	json_t *root = json_loads(GOOD, 0, NULL);
	char *out;

	assert_non_null(root);
	if (value) {
		json_t *v = json_loads(value, JSON_DECODE_ANY, NULL);

		assert_non_null(v);
		assert_int_equal(json_object_set_new(root, field, v), 0);
	} else {
		assert_int_equal(json_object_del(root, field), 0);
	}
	out = json_dumps(root, JSON_COMPACT);
	assert_non_null(out);
	json_decref(root);
	return out;
}

/* The answer must be refused with -EBADMSG and a reason containing why. */
static void expect_refused(const char *json, const char *why)
{
	struct summary s;
	char reason[160] = "";
	int ret;

	memset(&s, 0, sizeof(s));
	ret = provider_parse_summary(json, &s, reason, sizeof(reason));
	if (ret != -EBADMSG || !strstr(reason, why))
		fail_msg("answer %s: got %d '%s', want -EBADMSG '%s'", json, ret, reason, why);
	assert_null(s.title);
	assert_int_equal(s.n_risk_reasons, 0);
}

static void expect_field_refused(const char *field, const char *value, const char *why)
{
	char *json = with_field(field, value);

	expect_refused(json, why);
	free(json);
}

static void test_schema(void **state)
{
	json_t *schema = json_loads(provider_summary_schema(), 0, NULL), *props, *req, *v;
	const char *key;
	size_t i;

	(void)state;
	assert_non_null(schema);
	assert_string_equal(json_string_value(json_object_get(schema, "type")), "object");
	assert_true(json_is_false(json_object_get(schema, "additionalProperties")));
	props = json_object_get(schema, "properties");
	req = json_object_get(schema, "required");
	assert_int_equal(json_object_size(props), 8);
	assert_int_equal(json_array_size(req), 8);
	/* strict structured outputs: every property required */
	json_object_foreach(props, key, v)
	{
		bool found = false;

		json_array_foreach(req, i, v) found =
		    found || strcmp(json_string_value(v), key) == 0;
		assert_true(found);
	}
	assert_int_equal(
	    json_array_size(json_object_get(json_object_get(props, "risk_level"), "enum")), 4);
	json_decref(schema);
}

static void test_good_answer(void **state)
{
	struct summary s;
	char why[160] = "";

	(void)state;
	memset(&s, 0, sizeof(s));
	assert_int_equal(provider_parse_summary(GOOD, &s, why, sizeof(why)), 0);
	assert_string_equal(s.title, "Package install");
	assert_string_equal(s.short_description, "Installed nginx.");
	assert_string_equal(s.detailed_description,
			    "Ran apt-get update\nthen apt-get install nginx.");
	assert_int_equal(s.risk_level, SUMMARY_RISK_MEDIUM);
	assert_int_equal(s.risk_score, 30);
	assert_int_equal(s.n_risk_reasons, 2);
	assert_string_equal(s.risk_reasons[1], "package from a new repository");
	assert_int_equal(s.n_commands_of_interest, 1);
	assert_string_equal(s.commands_of_interest[0], "sudo apt-get install nginx");
	assert_false(s.needs_review);
	summary_clear(&s);
}

static void test_good_variants(void **state)
{
	struct summary s;
	char why[160] = "", *json;

	(void)state;
	/* in a Markdown fence, as models sometimes answer */
	memset(&s, 0, sizeof(s));
	assert_int_equal(provider_parse_summary("```json\n" GOOD "\n```\n", &s, why, sizeof(why)),
			 0);
	assert_string_equal(s.title, "Package install");
	summary_clear(&s);

	/* 75.0 is an integer too; empty lists; every level */
	json = with_field("risk_score", "75.0");
	assert_int_equal(provider_parse_summary(json, &s, why, sizeof(why)), 0);
	assert_int_equal(s.risk_score, 75);
	summary_clear(&s);
	free(json);
	json = with_field("risk_reasons", "[]");
	assert_int_equal(provider_parse_summary(json, &s, why, sizeof(why)), 0);
	assert_int_equal(s.n_risk_reasons, 0);
	assert_null(s.risk_reasons);
	summary_clear(&s);
	free(json);
	json = with_field("risk_level", "\"critical\"");
	assert_int_equal(provider_parse_summary(json, &s, why, sizeof(why)), 0);
	assert_int_equal(s.risk_level, SUMMARY_RISK_CRITICAL);
	summary_clear(&s);
	free(json);
	json = with_field("risk_score", "100");
	assert_int_equal(provider_parse_summary(json, &s, why, sizeof(why)), 0);
	summary_clear(&s);
	free(json);
	json = with_field("risk_score", "0");
	assert_int_equal(provider_parse_summary(json, &s, why, sizeof(why)), 0);
	summary_clear(&s);
	free(json);
}

static void test_missing_field(void **state)
{
	static const char *const fields[] = {
	    "title",	  "short_description", "detailed_description", "risk_level",
	    "risk_score", "risk_reasons",      "commands_of_interest", "needs_review",
	};
	char why[64];

	(void)state;
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		snprintf(why, sizeof(why), "missing field '%s'", fields[i]);
		expect_field_refused(fields[i], NULL, why);
	}
	expect_refused("{}", "missing field 'title'");
}

static void test_wrong_types(void **state)
{
	(void)state;
	expect_field_refused("title", "42", "'title' must be a string");
	expect_field_refused("title", "null", "'title' must be a string");
	expect_field_refused("title", "\"  \"", "'title' is empty");
	expect_field_refused("short_description", "[\"a\"]", "'short_description' must be");
	expect_field_refused("detailed_description", "true", "'detailed_description' must be");
	expect_field_refused("risk_level", "2", "'risk_level' must be one of");
	expect_field_refused("risk_level", "\"HIGH!\"", "'risk_level' must be one of");
	expect_field_refused("risk_score", "\"50\"", "'risk_score' must be an integer");
	expect_field_refused("risk_score", "50.5", "'risk_score' must be an integer");
	expect_field_refused("risk_reasons", "\"sudo used\"", "'risk_reasons' must be a list");
	expect_field_refused("risk_reasons", "[\"ok\", 3]", "'risk_reasons[1]' must be a string");
	expect_field_refused("commands_of_interest", "{}", "'commands_of_interest' must be a list");
	expect_field_refused("needs_review", "\"yes\"", "'needs_review' must be true or false");
	expect_field_refused("needs_review", "1", "'needs_review' must be true or false");
	expect_refused("[" GOOD "]", "not a JSON object");
	expect_refused("\"a summary\"", "not a JSON object");
	expect_refused("Sure! {title: x}", "not JSON");
	expect_refused("{\"title\": \"cut", "not JSON");
	expect_refused("", "not JSON");
	/* a duplicate key makes the answer ambiguous */
	expect_refused("{\"title\":\"a\",\"title\":\"b\"}", "not JSON");
}

static void test_risk_out_of_range(void **state)
{
	(void)state;
	expect_field_refused("risk_score", "101", "'risk_score' 101 is outside 0..100");
	expect_field_refused("risk_score", "-1", "'risk_score' -1 is outside 0..100");
	expect_field_refused("risk_score", "250.0", "'risk_score' must be an integer 0..100");
	expect_field_refused("risk_level", "\"severe\"", "'risk_level' must be one of");
	expect_field_refused("risk_level", "\"\"", "'risk_level' must be one of");
}

static void test_extra_nesting(void **state)
{
	(void)state;
	/* the whole answer wrapped in another object */
	expect_refused("{\"summary\":" GOOD "}", "unknown field 'summary'");
	/* an extra field next to the right ones */
	expect_field_refused("confidence", "0.9", "unknown field 'confidence'");
	/* nested values where strings belong */
	expect_field_refused("title", "{\"text\":\"Package install\"}", "'title' must be a string");
	expect_field_refused("risk_reasons", "[[\"sudo used\"]]", "'risk_reasons[0]' must be");
	expect_field_refused("commands_of_interest", "[{\"cmd\":\"ls\"}]",
			     "'commands_of_interest[0]' must be");
	expect_field_refused("risk_level", "{\"level\":\"low\"}", "'risk_level' must be one of");
}

static void test_sanitized(void **state)
{
	struct summary s;
	char why[160], *json, big[600];
	json_t *list;

	(void)state;
	memset(&s, 0, sizeof(s));
	/* terminal escapes and line breaks in one-line fields; C1 controls; bidi overrides */
	json = with_field("title", "\"\\u001b[2J\\u001b]0;pwned\\u0007Install\\r\\nnow\"");
	assert_int_equal(provider_parse_summary(json, &s, why, sizeof(why)), 0);
	assert_null(strchr(s.title, 0x1b));
	assert_null(strchr(s.title, '\n'));
	assert_null(strchr(s.title, '\a'));
	assert_non_null(strstr(s.title, "Install"));
	summary_clear(&s);
	free(json);
	json = with_field("short_description", "\"a\\u009bb\\u202ec\"");
	assert_int_equal(provider_parse_summary(json, &s, why, sizeof(why)), 0);
	assert_string_equal(s.short_description, "a bc");
	summary_clear(&s);
	free(json);

	/* long text is cut, long lists are cut, empty items dropped */
	memset(big, 'x', sizeof(big));
	big[0] = '"';
	big[sizeof(big) - 2] = '"';
	big[sizeof(big) - 1] = '\0';
	json = with_field("title", big);
	assert_int_equal(provider_parse_summary(json, &s, why, sizeof(why)), 0);
	assert_int_equal(strlen(s.title), 200);
	summary_clear(&s);
	free(json);
	list = json_array();
	for (int i = 0; i < 100; i++)
		json_array_append_new(list, json_string(i == 0 ? "" : big + 1));
	{
		char *lj = json_dumps(list, JSON_COMPACT);

		json = with_field("commands_of_interest", lj);
		free(lj);
	}
	json_decref(list);
	assert_int_equal(provider_parse_summary(json, &s, why, sizeof(why)), 0);
	assert_int_equal(s.n_commands_of_interest, 32); /* the empty one dropped, 32 kept */
	assert_int_equal(strlen(s.commands_of_interest[0]), 500);
	summary_clear(&s);
	free(json);
}

/* A chunk summary built in place (strings owned by the test). */
static struct summary chunk(const char *title, const char *shortd, const char *detail,
			    enum summary_risk level, uint32_t score, char **reasons, size_t nr,
			    char **cmds, size_t nc, bool review)
{
	struct summary s = {
	    .title = (char *)title,
	    .short_description = (char *)shortd,
	    .detailed_description = (char *)detail,
	    .risk_level = level,
	    .risk_score = score,
	    .risk_reasons = reasons,
	    .n_risk_reasons = nr,
	    .commands_of_interest = cmds,
	    .n_commands_of_interest = nc,
	    .needs_review = review,
	};
	return s;
}

static void test_combine_builtin(void **state)
{
	static char *r1[] = {"sudo used"}, *r2[] = {"reads /etc/shadow", "sudo used"};
	static char *c1[] = {"sudo -i"}, *c2[] = {"cat /etc/shadow", "sudo -i"};
	struct provider_model m = {.name = "offline", .kind = "builtin"};
	struct provider_result res, again;
	struct summary chunks[3];

	(void)state;
	chunks[0] = chunk("Setup", "Set up a host.", "Installed packages.", SUMMARY_RISK_MEDIUM, 30,
			  r1, 1, c1, 1, false);
	chunks[1] = chunk("Credential access", "Read the shadow file.", "Ran cat /etc/shadow.",
			  SUMMARY_RISK_HIGH, 70, r2, 2, c2, 2, true);
	chunks[2] =
	    chunk("Cleanup", "Removed files.", "", SUMMARY_RISK_LOW, 5, NULL, 0, NULL, 0, false);
	assert_int_equal(provider_combine(&m, chunks, 3, &res, NULL), 0);
	assert_int_equal(res.requests, 0);
	assert_int_equal(res.summary.risk_level, SUMMARY_RISK_HIGH);
	assert_int_equal(res.summary.risk_score, 70);
	assert_true(res.summary.needs_review);
	assert_string_equal(res.summary.title, "Credential access");
	assert_string_equal(res.summary.short_description,
			    "Set up a host. Read the shadow file. Removed files.");
	assert_string_equal(
	    res.summary.detailed_description,
	    "Part 1 of 3: Installed packages.\n\nPart 2 of 3: Ran cat /etc/shadow.");
	assert_int_equal(res.summary.n_risk_reasons, 2);
	assert_string_equal(res.summary.risk_reasons[0], "sudo used");
	assert_string_equal(res.summary.risk_reasons[1], "reads /etc/shadow");
	assert_int_equal(res.summary.n_commands_of_interest, 2);
	assert_string_equal(res.summary.commands_of_interest[0], "sudo -i");
	assert_string_equal(res.summary.commands_of_interest[1], "cat /etc/shadow");

	/* deterministic */
	assert_int_equal(provider_combine(&m, chunks, 3, &again, NULL), 0);
	assert_string_equal(again.summary.title, res.summary.title);
	assert_string_equal(again.summary.detailed_description, res.summary.detailed_description);
	summary_clear(&again.summary);
	summary_clear(&res.summary);

	/* equal risks: the first chunk's title */
	chunks[1].risk_level = SUMMARY_RISK_MEDIUM;
	chunks[1].risk_score = 30;
	assert_int_equal(provider_combine(&m, chunks, 3, &res, NULL), 0);
	assert_string_equal(res.summary.title, "Setup");
	summary_clear(&res.summary);

	/* one chunk: a copy */
	assert_int_equal(provider_combine(&m, &chunks[1], 1, &res, NULL), 0);
	assert_string_equal(res.summary.title, "Credential access");
	assert_string_equal(res.summary.detailed_description, "Ran cat /etc/shadow.");
	assert_int_equal(res.summary.n_commands_of_interest, 2);
	summary_clear(&res.summary);

	assert_int_equal(provider_combine(&m, chunks, 0, &res, NULL), -EINVAL);
	assert_int_equal(provider_combine(&m, NULL, 2, &res, NULL), -EINVAL);
}

/* One chunk through a model kind: nothing to combine, so no request. */
static void test_combine_one_no_request(void **state)
{
	struct provider_model m = {.name = "gpt",
				   .kind = "openai",
				   .model_id = "gpt-4o-mini",
				   .base_url = "http://127.0.0.1:9"};
	struct provider_stats st = {0, 0, 0};
	struct provider_result res;
	struct summary c = chunk("T", "S", "D", SUMMARY_RISK_LOW, 1, NULL, 0, NULL, 0, false);

	(void)state;
	assert_int_equal(provider_combine(&m, &c, 1, &res, &st), 0);
	assert_int_equal(res.requests, 0);
	assert_int_equal(st.requests, 0);
	assert_string_equal(res.summary.title, "T");
	summary_clear(&res.summary);
}

static void test_local_failures(void **state)
{
	struct provider_model m = {.name = "offline", .kind = "builtin", .max_retries = 4};
	struct provider_stats st = {0, 0, 0};
	struct provider_result res;
	struct summary c[2];

	(void)state;
	/* builtin is summary_builtin's job, not a request */
	assert_int_equal(provider_summarize(&m, "ls\n", 3, 1, 1, &res, &st), -ENOTSUP);
	assert_string_equal(res.error_code, "unsupported");
	assert_non_null(strstr(res.error, "offline"));
	m.kind = "anthropic";
	c[0] = chunk("a", "b", "c", SUMMARY_RISK_LOW, 0, NULL, 0, NULL, 0, false);
	c[1] = c[0];
	assert_int_equal(provider_combine(&m, c, 2, &res, &st), -ENOTSUP);

	/* a model without an id */
	m.kind = "openai";
	assert_int_equal(provider_summarize(&m, "ls\n", 3, 1, 1, &res, &st), -EINVAL);
	assert_string_equal(res.error_code, "config");
	assert_int_equal(res.requests, 0);

	/* Bedrock without credentials: a clear error, no request */
	m.kind = "bedrock";
	m.model_id = "anthropic.claude-3-5-haiku-20241022-v1:0";
	m.region = "us-east-1";
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	assert_int_equal(provider_summarize(&m, "ls\n", 3, 1, 1, &res, &st), -ENOKEY);
	assert_string_equal(res.error_code, "no_credentials");
	assert_non_null(strstr(res.error, "AWS_ACCESS_KEY_ID"));
	assert_int_equal(res.requests, 0);

	/* a region that could not be a host name or a SigV4 scope */
	setenv("AWS_ACCESS_KEY_ID", "AKIAUNITTEST", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "unit-test-secret-value", 1);
	m.region = "us-east-1:evil";
	assert_int_equal(provider_summarize(&m, "ls\n", 3, 1, 1, &res, &st), -EINVAL);
	assert_string_equal(res.error_code, "config");
	assert_null(strstr(res.error, "unit-test-secret-value"));
	assert_int_equal(st.requests, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_schema),	    cmocka_unit_test(test_good_answer),
	    cmocka_unit_test(test_good_variants),   cmocka_unit_test(test_missing_field),
	    cmocka_unit_test(test_wrong_types),	    cmocka_unit_test(test_risk_out_of_range),
	    cmocka_unit_test(test_extra_nesting),   cmocka_unit_test(test_sanitized),
	    cmocka_unit_test(test_combine_builtin), cmocka_unit_test(test_combine_one_no_request),
	    cmocka_unit_test(test_local_failures),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
