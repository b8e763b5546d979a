/*
 * collector/resource.c: inference resources from YAML, every class of
 * validation error with its message (document, line, field, problem), a
 * secret's value never in a message, references checked against the text and
 * the store, replacing, refused removals, and the defaults of a fresh store.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../collector/collector.h"
#include "log.h"

static const struct store_ops *ops = &store_local_ops;
static char root[256];
static unsigned int seq;

struct env {
	char dir[300];
	struct collector_config cfg;
	struct store *st;
};

static void env_open(struct env *e)
{
	memset(e, 0, sizeof(*e));
	snprintf(e->dir, sizeof(e->dir), "%s/d%u", root, seq++);
	e->cfg.data_dir = e->dir;
	assert_int_equal(ops->open(&e->st, &e->cfg), 0);
}

static void env_close(struct env *e)
{
	ops->close(e->st);
	e->st = NULL;
}

static const char full[] = "# every kind\n"
			   "kind: inference_secret\n"
			   "version: v1\n"
			   "metadata: {name: openai-key, description: the team's key}\n"
			   "spec: {value: sk-VALUE-1234}\n"
			   "---\n"
			   "kind: inference_model\n"
			   "version: v1\n"
			   "metadata:\n"
			   "  name: gpt\n"
			   "  labels: {team: sec}\n"
			   "spec:\n"
			   "  openai:\n"
			   "    openai_model_id: gpt-4o\n"
			   "    api_key_secret_ref: openai-key\n"
			   "    base_url: https://llm.example.com/v1\n"
			   "    temperature: 0.2\n"
			   "  max_tokens_per_day: 1000000\n"
			   "  timeout_seconds: 30\n"
			   "  max_retries: 0\n"
			   "---\n"
			   "kind: inference_model\n"
			   "version: v1\n"
			   "metadata: {name: claude}\n"
			   "spec:\n"
			   "  bedrock: {region: us-east-1, bedrock_model_id: anthropic.claude-3}\n"
			   "  max_session_length_bytes: 50000\n"
			   "---\n"
			   "---\n" /* an empty document is skipped (and counted) */
			   "kind: inference_model\n"
			   "version: v1\n"
			   "metadata: {name: offline}\n"
			   "spec: {builtin: {}}\n"
			   "---\n"
			   "kind: inference_policy\n"
			   "version: v1\n"
			   "metadata: {name: prod}\n"
			   "spec:\n"
			   "  kinds: [ssh, k8s]\n"
			   "  model: gpt\n"
			   "  filter: 'equals(resource.metadata.labels[\"env\"], \"prod\")'\n";

static void expect_full(struct resource *v, size_t n)
{
	assert_int_equal(n, 5);
	assert_int_equal(v[0].kind, RESOURCE_SECRET);
	assert_string_equal(v[0].name, "openai-key");
	assert_string_equal(v[0].secret, "sk-VALUE-1234");
	assert_int_equal(v[1].kind, RESOURCE_MODEL);
	assert_string_equal(v[1].model.provider, "openai");
	assert_string_equal(v[1].model.model_id, "gpt-4o");
	assert_string_equal(v[1].model.secret_ref, "openai-key");
	assert_string_equal(v[1].model.base_url, "https://llm.example.com/v1");
	assert_true(v[1].model.temperature > 0.19 && v[1].model.temperature < 0.21);
	assert_int_equal(v[1].model.max_session_length_bytes, RESOURCE_LENGTH_DEFAULT);
	assert_int_equal(v[1].model.max_tokens_per_day, 1000000);
	assert_int_equal(v[1].model.timeout_s, 30);
	assert_true(v[1].model.have_max_retries);
	assert_int_equal(v[1].model.max_retries, 0);
	assert_string_equal(v[2].model.provider, "bedrock");
	assert_string_equal(v[2].model.region, "us-east-1");
	assert_string_equal(v[2].model.model_id, "anthropic.claude-3");
	assert_int_equal(v[2].model.max_session_length_bytes, 50000);
	assert_int_equal(v[2].model.max_tokens_per_day, 0);
	assert_string_equal(v[3].model.provider, "builtin");
	assert_int_equal(v[4].kind, RESOURCE_POLICY);
	assert_int_equal(v[4].policy.kinds,
			 resource_session_kind_bit("ssh") | resource_session_kind_bit("k8s"));
	assert_string_equal(v[4].policy.model, "gpt");
	assert_string_equal(v[4].policy.filter,
			    "equals(resource.metadata.labels[\"env\"], \"prod\")");
}

/* ------------------------------------------------------------ parsing */

static void test_parse(void **state)
{
	struct resource *v = NULL, back;
	struct store_resource sr = {0};
	char err[512];
	size_t n = 0;

	(void)state;
	assert_int_equal(resource_parse(full, strlen(full), &v, &n, err, sizeof(err)), 0);
	expect_full(v, n);
	assert_int_equal(v[0].doc, 1);
	assert_int_equal(v[3].doc, 5); /* after the empty fourth */
	assert_int_equal(v[1].line, 7);

	/* the stored JSON reads back to the same resource */
	for (size_t i = 0; i < n; i++) {
		snprintf(sr.kind, sizeof(sr.kind), "%s", resource_kind_name(v[i].kind));
		sr.name = v[i].name;
		sr.json = v[i].json;
		assert_int_equal(resource_from_store(&sr, &back), 0);
		assert_int_equal(back.kind, v[i].kind);
		assert_string_equal(back.name, v[i].name);
		assert_string_equal(back.json, v[i].json);
		resource_clear(&back);
	}
	assert_non_null(strstr(v[1].json, "\"temperature\":0.2"));
	/* another resource's document under this name does not read back */
	sr.name = "other";
	assert_int_equal(resource_from_store(&sr, &back), -EBADMSG);
	resource_array_free(v, n);

	/* kinds by both names; session kinds; names */
	enum resource_kind k;

	assert_int_equal(resource_kind_parse("policy", &k), 0);
	assert_int_equal(k, RESOURCE_POLICY);
	assert_int_equal(resource_kind_parse("inference_secret", &k), 0);
	assert_int_equal(k, RESOURCE_SECRET);
	assert_int_equal(resource_kind_parse("models", &k), -EINVAL);
	assert_int_equal(resource_session_kind_bit("db"), 4);
	assert_int_equal(resource_session_kind_bit("sql"), 0);
	assert_true(resource_name_valid("a.b_c-1"));
	assert_false(resource_name_valid("-a"));
	assert_false(resource_name_valid("a/b"));
	assert_false(resource_name_valid(""));
}

#define DOC(kind, name, spec)                                                                      \
	"kind: " kind "\nversion: v1\nmetadata: {name: " name "}\nspec: " spec "\n"
#define POL(spec) DOC("inference_policy", "p", spec)

static void test_errors(void **state)
{
	static const struct {
		const char *yaml, *msg;
	} bad[] = {
	    /* unknown kind: named by index only, the line of the value */
	    {"kind: inference_modle\nversion: v1\nmetadata: {name: x}\nspec: {}\n",
	     "document 1, line 1: kind: unknown kind \"inference_modle\" (inference_model, "
	     "inference_secret or inference_policy)"},
	    {"version: v1\nmetadata: {name: x}\n", "document 1, line 1: kind: required"},
	    /* unknown fields, at every level, in a later document */
	    {DOC("inference_model", "a", "{builtin: {}}") "---\n" DOC(
		 "inference_model", "x", "\n  openai: {openai_model_id: m, temprature: 1}"),
	     "document 2 (inference_model \"x\"), line 10: spec.openai.temprature: unknown field "
	     "(known: openai_model_id, api_key_secret_ref, base_url, temperature)"},
	    {DOC("inference_model", "x", "{builtin: {}, max_tokens: 5}"),
	     "document 1 (inference_model \"x\"), line 4: spec.max_tokens: unknown field"},
	    {"kind: inference_model\nversion: v1\nmetadata: {name: x, nmae: y}\nspec: {builtin: "
	     "{}}\n",
	     "document 1 (inference_model \"x\"), line 3: metadata.nmae: unknown field"},
	    {"kind: inference_model\nversion: v1\nmetadata: {name: x}\nspec: {builtin: {}}\nspce: "
	     "1\n",
	     "document 1 (inference_model \"x\"), line 5: spce: unknown field"},
	    {DOC("inference_model", "x", "{builtin: {a: 1}}"), "spec.builtin.a: unknown field"},
	    /* kinds outside ssh/k8s/db/local */
	    {POL("{kinds: [ssh, sql], model: m}"),
	     "document 1 (inference_policy \"p\"), line 4: spec.kinds[1]: \"sql\" is not a session "
	     "kind (ssh, k8s, db, local)"},
	    {POL("{kinds: [], model: m}"), "spec.kinds: name at least one session kind"},
	    {POL("{kinds: ssh, model: m}"), "spec.kinds: expected a list of session kinds"},
	    {POL("{kinds: [ssh, ssh], model: m}"), "spec.kinds[1]: \"ssh\" is listed twice"},
	    {POL("{model: m}"), "spec.kinds: required"},
	    /* filters: parse errors with their column, unknown functions and fields */
	    {POL("{kinds: [ssh], model: m, filter: 'equals(user.metadata.name, \"a\"'}"),
	     "document 1 (inference_policy \"p\"), line 4: spec.filter: column 31: expected ')'"},
	    {POL("{kinds: [ssh], model: m, filter: 'frob(user.metadata.name)'}"),
	     "spec.filter: column 1: unknown function frob"},
	    {POL("{kinds: [ssh], model: m, filter: 'user.metadata.nmae == \"x\"'}"),
	     "spec.filter: column 1: unknown field user.metadata.nmae"},
	    {POL("{kinds: [ssh], model: m, filter: 'contains(user.spec.traits, \"x\")'}"),
	     "spec.filter: column 10: user.spec.traits is a map"},
	    {POL("{kinds: [ssh], model: m, filter: [a]}"),
	     "spec.filter: expected a string, got a list"},
	    /* required and typed fields */
	    {POL("{kinds: [ssh]}"), "spec.model: required"},
	    {POL("{kinds: [ssh], model: 'a b'}"), "spec.model: \"a b\" is not a resource name"},
	    {DOC("inference_model", "x", "{openai: {temperature: 1}}"),
	     "spec.openai.openai_model_id: required"},
	    {DOC("inference_model", "x", "{openai: {openai_model_id: m, temperature: 3}}"),
	     "spec.openai.temperature: must be from 0 to 2, not \"3\""},
	    {DOC("inference_model", "x", "{openai: {openai_model_id: m, temperature: hot}}"),
	     "spec.openai.temperature: expected a number, got \"hot\""},
	    {DOC("inference_model", "x", "{openai: {openai_model_id: m, base_url: ftp://x}}"),
	     "spec.openai.base_url: must start with https:// or http://"},
	    {DOC("inference_model", "x", "{openai: {openai_model_id: m}, max_tokens_per_day: -1}"),
	     "spec.max_tokens_per_day: expected a whole number, got \"-1\""},
	    {DOC("inference_model", "x", "{builtin: {}, max_session_length_bytes: 100}"),
	     "spec.max_session_length_bytes: must be from 1024 to 1073741824, not \"100\""},
	    {DOC("inference_model", "x", "{bedrock: {region: US_EAST, bedrock_model_id: m}}"),
	     "spec.bedrock.region: \"US_EAST\" is not an AWS region"},
	    {DOC("inference_model", "x",
		 "{builtin: {}, bedrock: {region: r, bedrock_model_id: m}}"),
	     "spec: give one of openai, bedrock and builtin, not both bedrock and builtin"},
	    {DOC("inference_model", "x", "{max_tokens_per_day: 5}"),
	     "spec: one of openai, bedrock or builtin is required"},
	    {DOC("inference_model", "x", "{openai: }"), "spec.openai: expected a mapping"},
	    {"kind: inference_model\nversion: v2\nmetadata: {name: x}\nspec: {builtin: {}}\n",
	     "document 1 (inference_model \"x\"), line 2: version: only v1 is known, not \"v2\""},
	    {"kind: inference_model\nmetadata: {name: x}\nspec: {builtin: {}}\n",
	     "version: required"},
	    {"kind: inference_secret\nversion: v1\nmetadata: {}\nspec: {value: x}\n",
	     "document 1 (inference_secret), line 3: metadata.name: required"},
	    {"kind: inference_model\nversion: v1\nmetadata: {name: \"a/b\"}\nspec: {builtin: {}}\n",
	     "metadata.name: \"a/b\" is not a resource name"},
	    {"kind: inference_policy\nversion: v1\nmetadata: {name: p}\n", "spec: required"},
	    /* the text as a whole */
	    {DOC("inference_model", "x", "{builtin: {}}") "---\n" DOC("inference_model", "x",
								      "{builtin: {}}"),
	     "document 2 (inference_model \"x\"), line 8: metadata.name: also in document 1"},
	    {"a: &x [1]\nb: *x\n", "document 1, line 1: YAML aliases are not supported"},
	    {"kind: inference_model\nversion: v1\nmetadata: {name: x\nspec: {}\n",
	     "document 1, line 4: invalid YAML"},
	    {"- a\n- b\n", "document 1, line 1: expected a mapping with kind, version, metadata"},
	    {"", "no resource in the YAML"},
	    {"---\n---\n", "no resource in the YAML"},
	    {"kind: inference_model\0\n", "NUL character"},
	};
	char err[512];
	struct resource *v;
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t len = strlen(bad[i].yaml);

		if (strstr(bad[i].msg, "NUL"))
			len += 2; /* the text goes on after the NUL */
		v = (struct resource *)err;
		n = 99;
		err[0] = '\0';
		if (resource_parse(bad[i].yaml, len, &v, &n, err, sizeof(err)) != -EINVAL ||
		    !strstr(err, bad[i].msg))
			fail_msg("case %zu:\n got: %s\nwant: %s\n--- yaml:\n%s", i, err, bad[i].msg,
				 bad[i].yaml);
		assert_null(v);
		assert_int_equal(n, 0);
		assert_null(strchr(err, '\n'));
	}
}

static void test_many_documents(void **state)
{
	struct resource *v = NULL;
	char err[512], *text;
	size_t n = 0, len = 0;
	FILE *f;

	(void)state;
	f = open_memstream(&text, &len);
	assert_non_null(f);
	for (int i = 0; i <= RESOURCE_DOCS_MAX; i++)
		fprintf(f,
			"---\nkind: inference_model\nversion: v1\nmetadata: {name: m%d}\nspec: "
			"{builtin: {}}\n",
			i);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(resource_parse(text, len, &v, &n, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "document 65"));
	assert_non_null(strstr(err, "more than 64 resources"));
	free(text);
}

/* A secret's value is in no message, whatever is wrong with it or around it. */
static void test_secret_never_shown(void **state)
{
	static const char *const bad[] = {
	    DOC("inference_secret", "s", "{value: [sk-TOPSECRET]}"),
	    DOC("inference_secret", "s", "sk-TOPSECRET"),
	    DOC("inference_secret", "s", "{value: sk-TOPSECRET, other: sk-TOPSECRET}"),
	    DOC("inference_secret", "s", "{valeu: sk-TOPSECRET}"),
	    DOC("inference_secret", "s", "{value: \"sk-TOPSECRET\\0x\"}"),
	    DOC("inference_secret", "s", "{value: \"sk-TOPSECRET\n"),
	    "kind: inference_secret\nversion: v1\nmetadata: {name: s}\nspec: {value: "
	    "sk-TOPSECRET}\n"
	    "kind: x\n",
	};
	char err[512];
	struct resource *v;
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(resource_parse(bad[i], strlen(bad[i]), &v, &n, err, sizeof(err)),
				 -EINVAL);
		assert_true(err[0]);
		if (strstr(err, "TOPSECRET"))
			fail_msg("case %zu shows the secret: %s", i, err);
	}
}

/* ------------------------------------------------------------ create, delete */

static int create(struct env *e, const char *yaml, bool replace, char *why, size_t whylen)
{
	struct resource *v = NULL;
	size_t n = 0;
	int status = 0;

	assert_int_equal(
	    resource_create(e->st, ops, yaml, strlen(yaml), replace, &v, &n, &status, why, whylen),
	    0);
	if (status == 201)
		assert_non_null(v);
	else
		assert_null(v);
	resource_array_free(v, n);
	return status;
}

static int count_cb(void *ctx, const struct store_resource *r)
{
	(void)r;
	(*(size_t *)ctx)++;
	return 0;
}

static size_t count(struct env *e, const char *kind)
{
	size_t n = 0;

	assert_int_equal(ops->resource_list(e->st, kind, count_cb, &n), 0);
	return n;
}

static void test_create_references(void **state)
{
	static const char policy[] = POL("{kinds: [ssh], model: gpt}");
	static const char model[] = DOC("inference_model", "gpt",
					"{openai: {openai_model_id: m, api_key_secret_ref: key}}");
	static const char secret[] = DOC("inference_secret", "key", "{value: v}");
	struct store_resource sr = {0};
	struct env e;
	char why[512];

	(void)state;
	env_open(&e);
	/* a policy naming a model that exists nowhere */
	assert_int_equal(create(&e, policy, false, why, sizeof(why)), 400);
	assert_string_equal(why, "document 1 (inference_policy \"p\"), line 4: spec.model: no "
				 "inference_model \"gpt\" in this text or on the collector");
	/* a model naming a missing secret */
	assert_int_equal(create(&e, model, false, why, sizeof(why)), 400);
	assert_string_equal(why, "document 1 (inference_model \"gpt\"), line 4: "
				 "spec.openai.api_key_secret_ref: no inference_secret \"key\" in "
				 "this text or on the collector");
	assert_int_equal(count(&e, NULL), 0);
	/* in one text, in any order: all stored */
	assert_int_equal(
	    create(
		&e,
		POL("{kinds: [ssh], model: gpt}") "---\n" DOC(
		    "inference_model", "gpt",
		    "{openai: {openai_model_id: m, api_key_secret_ref: key}}") "---\n" DOC("inferen"
											   "ce_"
											   "secret",
											   "key",
											   "{value:"
											   " v}"),
		false, why, sizeof(why)),
	    201);
	assert_int_equal(count(&e, NULL), 3);
	/* then from the store */
	assert_int_equal(create(&e, DOC("inference_policy", "q", "{kinds: [db], model: gpt}"),
				false, why, sizeof(why)),
			 201);
	/* exists: 409, nothing changes; force replaces */
	assert_int_equal(create(&e, secret, false, why, sizeof(why)), 409);
	assert_string_equal(why, "document 1 (inference_secret \"key\"): it exists already "
				 "(--force replaces it)");
	assert_int_equal(
	    create(&e, DOC("inference_secret", "key", "{value: w}"), true, why, sizeof(why)), 201);
	assert_int_equal(ops->resource_get(e.st, "inference_secret", "key", &sr), 0);
	assert_non_null(strstr(sr.json, "\"value\":\"w\""));
	store_resource_clear(&sr);
	/* all or nothing: a bad last document stores none of the first */
	assert_int_equal(create(&e,
				DOC("inference_model", "m2",
				    "{builtin: {}}") "---\n" POL("{kinds: [ssh], model: nosuch}"),
				true, why, sizeof(why)),
			 400);
	assert_int_equal(ops->resource_get(e.st, "inference_model", "m2", &sr), -ENOENT);
	env_close(&e);
}

static void test_delete(void **state)
{
	struct env e;
	char why[512];
	int status = 0;

	(void)state;
	env_open(&e);
	assert_int_equal(
	    create(
		&e,
		POL("{kinds: [ssh], model: gpt}") "---\n" DOC(
		    "inference_model", "gpt",
		    "{openai: {openai_model_id: m, api_key_secret_ref: key}}") "---\n" DOC("inferen"
											   "ce_"
											   "secret",
											   "key",
											   "{value:"
											   " v}"),
		false, why, sizeof(why)),
	    201);
	assert_int_equal(
	    resource_delete(e.st, ops, RESOURCE_SECRET, "key", &status, why, sizeof(why)), 0);
	assert_int_equal(status, 409);
	assert_string_equal(why, "inference_secret \"key\" is used by inference_model \"gpt\": "
				 "change or remove that first");
	assert_int_equal(
	    resource_delete(e.st, ops, RESOURCE_MODEL, "gpt", &status, why, sizeof(why)), 0);
	assert_int_equal(status, 409);
	assert_string_equal(why, "inference_model \"gpt\" is used by inference_policy \"p\": "
				 "change or remove that first");
	assert_int_equal(
	    resource_delete(e.st, ops, RESOURCE_POLICY, "nosuch", &status, why, sizeof(why)), 0);
	assert_int_equal(status, 404);
	assert_string_equal(why, "no inference_policy \"nosuch\"");
	/* in order: policy, model, secret */
	assert_int_equal(
	    resource_delete(e.st, ops, RESOURCE_POLICY, "p", &status, why, sizeof(why)), 0);
	assert_int_equal(status, 200);
	assert_int_equal(
	    resource_delete(e.st, ops, RESOURCE_MODEL, "gpt", &status, why, sizeof(why)), 0);
	assert_int_equal(status, 200);
	assert_int_equal(
	    resource_delete(e.st, ops, RESOURCE_SECRET, "key", &status, why, sizeof(why)), 0);
	assert_int_equal(status, 200);
	assert_int_equal(count(&e, NULL), 0);
	env_close(&e);
}

static void test_defaults(void **state)
{
	struct store_resource sr = {0};
	struct env e;
	char why[512];
	bool installed = false;
	int status = 0;

	(void)state;
	/* a fresh store: builtin and default, once */
	env_open(&e);
	assert_int_equal(resource_install_defaults(e.st, ops, &installed), 0);
	assert_true(installed);
	assert_int_equal(ops->resource_get(e.st, "inference_policy", "default", &sr), 0);
	assert_non_null(strstr(sr.json, "\"kinds\":[\"ssh\",\"k8s\",\"db\",\"local\"]"));
	assert_non_null(strstr(sr.json, "\"model\":\"builtin\""));
	store_resource_clear(&sr);
	assert_int_equal(ops->resource_get(e.st, "inference_model", "builtin", &sr), 0);
	assert_non_null(strstr(sr.json, "\"builtin\":{}"));
	store_resource_clear(&sr);
	/* removed by an operator: not back at the next start */
	assert_int_equal(
	    resource_delete(e.st, ops, RESOURCE_POLICY, "default", &status, why, sizeof(why)), 0);
	assert_int_equal(
	    resource_delete(e.st, ops, RESOURCE_MODEL, "builtin", &status, why, sizeof(why)), 0);
	ops->close(e.st);
	assert_int_equal(ops->open(&e.st, &e.cfg), 0);
	assert_int_equal(resource_install_defaults(e.st, ops, &installed), 0);
	assert_false(installed);
	assert_int_equal(count(&e, NULL), 0);
	env_close(&e);

	/* a store that has resources already (an upgrade) gets none, and the flag */
	env_open(&e);
	assert_int_equal(
	    create(&e, DOC("inference_model", "mine", "{builtin: {}}"), false, why, sizeof(why)),
	    201);
	assert_int_equal(resource_install_defaults(e.st, ops, &installed), 0);
	assert_false(installed);
	assert_int_equal(count(&e, NULL), 1);
	assert_int_equal(
	    resource_delete(e.st, ops, RESOURCE_MODEL, "mine", &status, why, sizeof(why)), 0);
	assert_int_equal(resource_install_defaults(e.st, ops, &installed), 0);
	assert_false(installed);
	env_close(&e);
}

/* ------------------------------------------------------------ setup */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int group_setup(void **state)
{
	(void)state;
	log_init("test", LOG_LVL_ERROR);
	snprintf(root, sizeof(root), "/tmp/sessrec-test-resource-XXXXXX");
	return mkdtemp(root) ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	return nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_many_documents),
	    cmocka_unit_test(test_secret_never_shown),
	    cmocka_unit_test(test_create_references),
	    cmocka_unit_test(test_delete),
	    cmocka_unit_test(test_defaults),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
