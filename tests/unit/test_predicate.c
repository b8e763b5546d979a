/*
 * lib/predicate: every operator and precedence level, every function in its
 * list and string forms, map indexing with present and missing keys, string
 * escapes and raw strings, integers, type errors found while parsing and
 * while evaluating, malformed input with the exact message and column, the
 * depth, length and argument limits, and the reference's examples.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "predicate.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------ environment */

struct test_env {
	const char *name;
	const char *const *roles;
	size_t nroles;
	const char *const *participants;
	size_t nparticipants;
	const char *env_label; /* NULL: the resource has no "env" label */
	const char *const *big;
	size_t nbig;
	unsigned int lookups;
	char last_field[128];
	char last_key[128]; /* "(null)" for a plain field */
};

static const char *const roles_default[] = {"access", "intern"};
static const char *const participants_default[] = {"alice", "carol"};
static const char *const logins[] = {"root", "alice"};
static const char *const team[] = {"dev"};
static const char *const same[] = {"x", "x"};
static const char *const with_null[] = {"a", NULL};

static void test_env_init(struct test_env *te)
{
	memset(te, 0, sizeof(*te));
	te->name = "alice";
	te->roles = roles_default;
	te->nroles = ARRAY_LEN(roles_default);
	te->participants = participants_default;
	te->nparticipants = ARRAY_LEN(participants_default);
	te->env_label = "prod";
}

static int set_str(struct pred_value *out, const char *s)
{
	out->type = PRED_STRING;
	out->s = s;
	return 0;
}

static int set_list(struct pred_value *out, const char *const *l, size_t n)
{
	out->type = PRED_LIST;
	out->list = l;
	out->n = n;
	return 0;
}

static int test_lookup(void *ctx, const char *field, const char *key, struct pred_value *out)
{
	struct test_env *te = ctx;

	te->lookups++;
	snprintf(te->last_field, sizeof(te->last_field), "%s", field);
	snprintf(te->last_key, sizeof(te->last_key), "%s", key ? key : "(null)");
	if (key) {
		if (strcmp(field, "user.spec.traits") == 0) {
			if (strcmp(key, "logins") == 0)
				return set_list(out, logins, ARRAY_LEN(logins));
			if (strcmp(key, "team") == 0)
				return set_list(out, team, ARRAY_LEN(team));
			if (strcmp(key, "same") == 0)
				return set_list(out, same, ARRAY_LEN(same));
			if (strcmp(key, "none") == 0)
				return set_list(out, NULL, 0);
			return -ENOENT;
		}
		if (strcmp(field, "resource.metadata.labels") == 0) {
			if (strcmp(key, "env") == 0)
				return te->env_label ? set_str(out, te->env_label) : -ENOENT;
			if (strcmp(key, "region") == 0)
				return set_str(out, "eu-west-1");
			if (strcmp(key, "empty") == 0)
				return set_str(out, "");
			return -ENOENT;
		}
		if (strcmp(field, "session.tags") == 0)
			return strcmp(key, "k") == 0 ? set_str(out, "v") : -ENOENT;
		return -EINVAL;
	}
	if (strcmp(field, "user.metadata.name") == 0)
		return set_str(out, te->name);
	if (strcmp(field, "user.spec.roles") == 0)
		return set_list(out, te->roles, te->nroles);
	if (strcmp(field, "resource.kind") == 0)
		return set_str(out, "node");
	if (strcmp(field, "resource.metadata.name") == 0)
		return set_str(out, "web-1");
	if (strcmp(field, "session.participants") == 0)
		return set_list(out, te->participants, te->nparticipants);
	if (strcmp(field, "session.cluster_name") == 0)
		return set_str(out, "main");
	if (strcmp(field, "session.kubernetes_groups") == 0)
		return set_list(out, NULL, 0);
	if (strcmp(field, "session.big") == 0)
		return set_list(out, te->big, te->nbig);
	if (strcmp(field, "session.interactive") == 0) {
		out->type = PRED_BOOL;
		out->b = true;
		return 0;
	}
	if (strcmp(field, "session.enhanced_recording") == 0) {
		out->type = PRED_BOOL;
		out->b = false;
		return 0;
	}
	if (strcmp(field, "session.port") == 0) {
		out->type = PRED_INT;
		out->i = 22;
		return 0;
	}
	if (strcmp(field, "session.esc") == 0)
		return set_str(out, "\a\b\f\n\r\t\v\\\"");
	if (strcmp(field, "session.unicode") == 0)
		return set_str(out, "AA\xc3\xa9\xf0\x9f\x98\x80");
	if (strcmp(field, "session.high") == 0)
		return set_str(out, "\xff\x80");
	if (strcmp(field, "session.db_name") == 0)
		return -ENOENT;
	if (strcmp(field, "session.io_error") == 0)
		return -EIO;
	if (strcmp(field, "session.null_string") == 0)
		return set_str(out, NULL);
	if (strcmp(field, "session.null_item") == 0)
		return set_list(out, with_null, ARRAY_LEN(with_null));
	if (strcmp(field, "session.positive") == 0)
		return 1;
	if (strcmp(field, "session.bad_type") == 0) {
		out->type = (enum pred_type)42;
		return 0;
	}
	return -EINVAL;
}

/* ------------------------------------------------------------ helpers */

struct tcase {
	const char *src;
	bool want;
};

/* Parse with the policy fields and evaluate against te; fail with the source on any error. */
static bool eval_in(struct test_env *te, const char *src)
{
	struct pred_env env = {.lookup = test_lookup, .ctx = te};
	struct pred_expr *e = NULL;
	char err[256];
	bool r = false;
	int rc;

	rc = pred_parse(src, pred_policy_fields, &e, err, sizeof(err));
	if (rc)
		fail_msg("parse %s: %d %s", src, rc, err);
	rc = pred_eval(e, &env, &r, err, sizeof(err));
	if (rc)
		fail_msg("eval %s: %d %s", src, rc, err);
	pred_free(e);
	return r;
}

static bool eval1(const char *src)
{
	struct test_env te;

	test_env_init(&te);
	return eval_in(&te, src);
}

static void run_cases(const struct tcase *c, size_t n)
{
	size_t i;
	bool r;

	for (i = 0; i < n; i++) {
		r = eval1(c[i].src);
		if (r != c[i].want)
			fail_msg("%s: got %s, want %s", c[i].src, r ? "true" : "false",
				 c[i].want ? "true" : "false");
	}
}

struct ecase {
	const char *src;
	const char *err; /* the whole message */
};

/* Each must fail to parse (-EINVAL) with exactly this message. */
static void run_parse_errors(const struct ecase *c, size_t n, const char *const *known)
{
	struct pred_expr *e = NULL;
	char err[256];
	size_t i;
	int rc;

	for (i = 0; i < n; i++) {
		rc = pred_parse(c[i].src, known, &e, err, sizeof(err));
		if (rc != -EINVAL)
			fail_msg("%s: parse returned %d, want -EINVAL (%s)", c[i].src, rc, err);
		assert_null(e);
		if (strcmp(err, c[i].err) != 0)
			fail_msg("%s:\n  got  %s\n  want %s", c[i].src, err, c[i].err);
	}
}

/* Each must parse and fail to evaluate with exactly this message. */
static void run_eval_errors(const struct ecase *c, size_t n, int want_rc)
{
	struct test_env te;
	struct pred_env env = {.lookup = test_lookup, .ctx = &te};
	struct pred_expr *e = NULL;
	char err[256];
	bool r = false;
	size_t i;
	int rc;

	for (i = 0; i < n; i++) {
		test_env_init(&te);
		rc = pred_parse(c[i].src, NULL, &e, err, sizeof(err));
		if (rc)
			fail_msg("parse %s: %d %s", c[i].src, rc, err);
		rc = pred_eval(e, &env, &r, err, sizeof(err));
		pred_free(e);
		if (rc != want_rc)
			fail_msg("%s: eval returned %d, want %d (%s)", c[i].src, rc, want_rc, err);
		if (strcmp(err, c[i].err) != 0)
			fail_msg("%s:\n  got  %s\n  want %s", c[i].src, err, c[i].err);
	}
}

/* ------------------------------------------------------------ the reference's examples */

static void test_reference_examples(void **state)
{
	static const char *const roles_plain[] = {"access"};
	static const char *const bob[] = {"bob"};
	static const char *const carol[] = {"carol"};
	struct test_env te;
	const char *labels = "equals(resource.metadata.labels[\"env\"], \"prod\")";
	const char *intern = "contains(user.spec.roles, \"intern\")";
	const char *subset = "is_subset(user.metadata.name, \"alice\", \"bob\")";
	const char *either = "contains(session.participants, \"alice\") || "
			     "contains(session.participants, \"bob\")";

	test_env_init(&te);
	assert_true(eval_in(&te, labels));
	te.env_label = "staging";
	assert_false(eval_in(&te, labels));
	te.env_label = NULL;
	assert_false(eval_in(&te, labels));

	test_env_init(&te);
	assert_true(eval_in(&te, intern));
	te.roles = roles_plain;
	te.nroles = ARRAY_LEN(roles_plain);
	assert_false(eval_in(&te, intern));
	te.nroles = 0;
	assert_false(eval_in(&te, intern));

	test_env_init(&te);
	assert_true(eval_in(&te, subset));
	te.name = "bob";
	assert_true(eval_in(&te, subset));
	te.name = "carol";
	assert_false(eval_in(&te, subset));
	te.name = "alice2";
	assert_false(eval_in(&te, subset));

	test_env_init(&te);
	assert_true(eval_in(&te, either)); /* alice, carol */
	te.participants = bob;
	te.nparticipants = 1;
	assert_true(eval_in(&te, either));
	te.participants = carol;
	assert_false(eval_in(&te, either));
	te.nparticipants = 0;
	assert_false(eval_in(&te, either));
}

/* ------------------------------------------------------------ operators and precedence */

static void test_operators(void **state)
{
	static const struct tcase c[] = {
	    {"true", true},
	    {"false", false},
	    {"!true", false},
	    {"!false", true},
	    {"!!true", true},
	    {"true && true", true},
	    {"true && false", false},
	    {"false && true", false},
	    {"false && false", false},
	    {"true || false", true},
	    {"false || true", true},
	    {"false || false", false},
	    {"false || false || true", true},
	    {"true && true && false", false},
	    {"\"a\" == \"a\"", true},
	    {"\"a\" == \"b\"", false},
	    {"\"a\" != \"b\"", true},
	    {"\"a\" != \"a\"", false},
	    {"\"\" == \"\"", true},
	    {"1 == 1", true},
	    {"1 == 2", false},
	    {"1 != 2", true},
	    {"true == true", true},
	    {"true == false", false},
	    {"true != false", true},
	    {"set(\"a\", \"b\") == set(\"a\", \"b\")", true},
	    {"set(\"a\", \"b\") == set(\"b\", \"a\")", false}, /* same items in order */
	    {"set(\"a\") != set(\"a\", \"b\")", true},
	    {"set() == set()", true},
	    {"(true)", true},
	    {"((false))", false},
	    {"!(true && false)", true},
	    {"user.metadata.name == \"alice\"", true},
	    {"user.metadata.name != \"alice\"", false},
	    {"\"alice\" == user.metadata.name", true},
	    {"user.spec.roles == set(\"access\", \"intern\")", true},
	    {"session.interactive", true},
	    {"!session.enhanced_recording", true},
	    {"session.interactive == true", true},
	    {"session.interactive && !session.enhanced_recording", true},
	    {"session.port == 22", true},
	    {"session.port != 22", false},
	    {"user . metadata . name == \"alice\"", true},
	    {"\ttrue\n&&\r\n true ", true},
	};

	run_cases(c, ARRAY_LEN(c));
}

static void test_precedence(void **state)
{
	static const struct tcase c[] = {
	    /* && binds tighter than || */
	    {"true || true && false", true},
	    {"false && true || true", true},
	    {"true || false && false", true},
	    /* == binds tighter than && and || */
	    {"false == false && false", false},
	    {"true || true == false", true},
	    {"true == false || true", true},
	    /* ! binds tighter than && and || */
	    {"!false && false", false},
	    {"!true || true", true},
	    /* comparisons chain to the left: ("a" == "a") == true */
	    {"\"a\" == \"a\" == true", true},
	    {"1 == 1 != false", true},
	    /* parentheses override */
	    {"(true || true) && false", false},
	    {"true && (false || true)", true},
	    {"!(false || true)", false},
	    {"!(\"a\" == \"b\")", true},
	    {"!(user.metadata.name == \"alice\")", false},
	    {"user.metadata.name == \"alice\" && contains(user.spec.roles, \"intern\") || false",
	     true},
	    {"false || user.metadata.name == \"bob\" || session.port == 22", true},
	};
	static const struct ecase parse_err[] = {
	    /* like Go, !x == y is (!x) == y: here ! meets a string */
	    {"!\"a\" == \"b\"", "column 1: ! needs a boolean, not a string"},
	    {"true == \"a\" == \"a\"", "column 6: == cannot compare a boolean with a string"},
	    /* (!name) is a boolean whatever name holds, so this fails before evaluation */
	    {"!user.metadata.name == \"alice\"",
	     "column 21: == cannot compare a boolean with a string"},
	};
	/* ! takes session.port alone; !(session.port == true) would fail at the == */
	static const struct ecase eval_err[] = {
	    {"!session.port == true", "column 1: ! needs a boolean, not an integer"},
	};

	run_cases(c, ARRAY_LEN(c));
	run_parse_errors(parse_err, ARRAY_LEN(parse_err), NULL);
	run_eval_errors(eval_err, ARRAY_LEN(eval_err), -EINVAL);
}

/* ------------------------------------------------------------ functions */

static void test_contains(void **state)
{
	static const struct tcase c[] = {
	    {"contains(user.spec.roles, \"intern\")", true},
	    {"contains(user.spec.roles, \"admin\")", false},
	    {"contains(set(\"a\", \"b\"), \"b\")", true},
	    {"contains(session.kubernetes_groups, \"\")", false},
	    /* a string is a one-item list: equality, not a substring search */
	    {"contains(user.metadata.name, \"alice\")", true},
	    {"contains(user.metadata.name, \"ali\")", false},
	    {"contains(\"abc\", \"abc\")", true},
	    {"contains(\"abc\", \"b\")", false},
	    {"contains(user.spec.roles, resource.metadata.labels[\"env\"])", false},
	    {"contains(user.spec.traits[\"logins\"], user.metadata.name)", true},
	};

	run_cases(c, ARRAY_LEN(c));
}

static void test_equals(void **state)
{
	static const struct tcase c[] = {
	    {"equals(\"a\", \"a\")", true},
	    {"equals(\"a\", \"b\")", false},
	    {"equals(user.metadata.name, \"alice\")", true},
	    {"equals(user.spec.roles, set(\"access\", \"intern\"))", true},
	    {"equals(user.spec.roles, set(\"intern\", \"access\"))", false},
	    {"equals(user.spec.roles, set(\"access\"))", false},
	    /* a string and a list: the string is a one-item list */
	    {"equals(user.spec.traits[\"team\"], \"dev\")", true},
	    {"equals(\"dev\", user.spec.traits[\"team\"])", true},
	    {"equals(user.spec.traits[\"logins\"], \"root\")", false},
	    {"equals(set(), \"\")", false},
	    {"equals(1, 1)", true},
	    {"equals(1, 2)", false},
	    {"equals(true, true)", true},
	    {"equals(true, false)", false},
	    {"equals(session.port, 22)", true},
	    {"equals(session.interactive, true)", true},
	};

	run_cases(c, ARRAY_LEN(c));
}

static void test_contains_all_any(void **state)
{
	static const struct tcase c[] = {
	    {"contains_all(user.spec.roles, set(\"intern\", \"access\"))", true},
	    {"contains_all(user.spec.roles, set(\"intern\", \"admin\"))", false},
	    {"contains_all(user.spec.roles, set())", true},
	    {"contains_all(set(), set(\"a\"))", false},
	    {"contains_all(user.spec.roles, \"intern\")", true},
	    {"contains_all(user.spec.roles, \"admin\")", false},
	    {"contains_all(\"a\", \"a\")", true},
	    {"contains_all(\"a\", set(\"a\", \"b\"))", false},
	    {"contains_all(user.metadata.name, set(\"alice\", \"alice\"))", true},
	    {"contains_any(user.spec.roles, set(\"admin\", \"intern\"))", true},
	    {"contains_any(user.spec.roles, set(\"admin\", \"root\"))", false},
	    {"contains_any(user.spec.roles, set())", false},
	    {"contains_any(user.spec.roles, \"access\")", true},
	    {"contains_any(user.spec.roles, \"acc\")", false},
	    {"contains_any(user.metadata.name, set(\"bob\", \"alice\"))", true},
	    {"contains_any(user.metadata.name, set(\"bob\", \"carol\"))", false},
	    {"contains_any(\"x\", \"x\")", true},
	    {"contains_any(\"x\", \"y\")", false},
	    {"contains_any(session.participants, user.spec.traits[\"logins\"])", true},
	};

	run_cases(c, ARRAY_LEN(c));
}

static void test_set(void **state)
{
	static const struct tcase c[] = {
	    {"set(\"a\", \"a\", \"b\") == set(\"a\", \"b\")", true},
	    {"set(\"b\", \"a\", \"b\", \"a\") == set(\"b\", \"a\")", true},
	    {"set(\"a\") == set(\"a\", \"a\")", true},
	    {"set(user.spec.roles, \"x\") == set(\"access\", \"intern\", \"x\")", true},
	    {"set(\"intern\", user.spec.roles) == set(\"intern\", \"access\")", true},
	    {"set(user.spec.traits[\"same\"]) == set(\"x\")", true},
	    {"set(resource.metadata.labels[\"nope\"]) == set()", true},
	    {"set(resource.metadata.labels[\"empty\"]) == set(\"\")", true},
	    {"set(set(set(\"a\"), \"b\"), set()) == set(\"a\", \"b\")", true},
	    {"set(\"a\", \"b\",) == set(\"a\", \"b\")", true}, /* Go allows the trailing comma */
	    {"contains(set(), \"a\")", false},
	};

	run_cases(c, ARRAY_LEN(c));
}

static void test_all_end_with_all_equal(void **state)
{
	static const struct tcase c[] = {
	    {"all_end_with(resource.metadata.name, \"-1\")", true},
	    {"all_end_with(\"web-1\", \"-2\")", false},
	    {"all_end_with(\"a\", \"longer-a\")", false},
	    {"all_end_with(\"abc\", \"\")", true},
	    {"all_end_with(\"\", \"\")", true},
	    {"all_end_with(set(\"a.corp\", \"b.corp\"), \".corp\")", true},
	    {"all_end_with(set(\"a.corp\", \"b.com\"), \".corp\")", false},
	    {"all_end_with(session.kubernetes_groups, \".corp\")", true}, /* every item of none */
	    {"all_end_with(user.spec.traits[\"logins\"], \"t\")", false},
	    {"all_equal(user.metadata.name, \"alice\")", true},
	    {"all_equal(\"alice\", \"bob\")", false},
	    {"all_equal(user.spec.traits[\"team\"], \"dev\")", true},
	    {"all_equal(user.spec.traits[\"same\"], \"x\")", true},
	    {"all_equal(user.spec.roles, \"access\")", false},
	    {"all_equal(session.kubernetes_groups, \"x\")", true},
	};

	run_cases(c, ARRAY_LEN(c));
}

static void test_is_subset(void **state)
{
	static const struct tcase c[] = {
	    {"is_subset(user.metadata.name, \"alice\", \"bob\")", true},
	    {"is_subset(\"carol\", \"alice\", \"bob\")", false},
	    {"is_subset(\"ali\", \"alice\")", false},
	    {"is_subset(user.spec.roles, \"access\", \"intern\", \"x\")", true},
	    {"is_subset(user.spec.roles, \"intern\", \"access\")", true},
	    {"is_subset(user.spec.roles, \"access\")", false},
	    {"is_subset(user.spec.roles, set(\"access\", \"intern\"))", true},
	    {"is_subset(user.spec.roles, set(\"access\"), \"intern\")", true},
	    {"is_subset(user.spec.roles, set(\"access\"), \"x\")", false},
	    {"is_subset(user.metadata.name, user.spec.traits[\"logins\"])", true},
	    {"is_subset(session.kubernetes_groups, \"a\")", true}, /* the empty list */
	    {"is_subset(user.spec.traits[\"same\"], \"x\")", true},
	};

	run_cases(c, ARRAY_LEN(c));
}

static void test_has_prefix(void **state)
{
	static const struct tcase c[] = {
	    {"has_prefix(resource.metadata.name, \"web-\")", true},
	    {"has_prefix(resource.metadata.name, \"web-1\")", true},
	    {"has_prefix(\"web-1\", \"db-\")", false},
	    {"has_prefix(\"a\", \"\")", true},
	    {"has_prefix(\"a\", \"abc\")", false},
	    {"has_prefix(resource.metadata.labels[\"region\"], \"eu-\")", true},
	};
	/* a list has no prefix: ambiguous between any and every item, so an error */
	static const struct ecase parse_err[] = {
	    {"has_prefix(set(\"a\"), \"a\")",
	     "column 12: argument 1 of has_prefix must be a string, not a list"},
	    {"has_prefix(\"a\", set(\"a\"))",
	     "column 17: argument 2 of has_prefix must be a string, not a list"},
	};
	static const struct ecase eval_err[] = {
	    {"has_prefix(user.spec.roles, \"a\")",
	     "column 12: argument 1 of has_prefix must be a string, not a list"},
	};

	run_cases(c, ARRAY_LEN(c));
	run_parse_errors(parse_err, ARRAY_LEN(parse_err), NULL);
	run_eval_errors(eval_err, ARRAY_LEN(eval_err), -EINVAL);
}

/* ------------------------------------------------------------ fields and maps */

static void test_map_index(void **state)
{
	static const struct tcase c[] = {
	    {"resource.metadata.labels[\"env\"] == \"prod\"", true},
	    {"resource.metadata.labels[`env`] == \"prod\"", true},
	    {"resource.metadata.labels [ \"env\" ] == \"prod\"", true},
	    {"resource.metadata.labels[\"empty\"] == \"\"", true},
	    {"user.spec.traits[\"logins\"] == set(\"root\", \"alice\")", true},
	    {"contains(user.spec.traits[\"logins\"], \"root\")", true},
	    {"user.spec.traits[\"none\"] == set()", true},
	    {"session.tags[\"k\"] == \"v\"", true},
	    /* a missing key reads as "" ... */
	    {"resource.metadata.labels[\"missing\"] == \"\"", true},
	    {"resource.metadata.labels[\"missing\"] == \"prod\"", false},
	    {"resource.metadata.labels[\"missing\"] != \"prod\"", true},
	    {"equals(resource.metadata.labels[\"missing\"], \"prod\")", false},
	    {"equals(resource.metadata.labels[\"missing\"], \"\")", true},
	    {"has_prefix(resource.metadata.labels[\"missing\"], \"\")", true},
	    {"has_prefix(resource.metadata.labels[\"missing\"], \"p\")", false},
	    {"contains(user.spec.roles, resource.metadata.labels[\"missing\"])", false},
	    /* ... where a string or a list will do, "": no vacuous truth */
	    {"all_end_with(resource.metadata.labels[\"missing\"], \".corp\")", false},
	    {"all_equal(resource.metadata.labels[\"missing\"], \"x\")", false},
	    {"all_equal(resource.metadata.labels[\"missing\"], \"\")", true},
	    {"is_subset(resource.metadata.labels[\"missing\"], \"a\", \"b\")", false},
	    {"is_subset(resource.metadata.labels[\"missing\"], \"\")", true},
	    /* ... and as an empty list where a list is expected */
	    {"user.spec.traits[\"missing\"] == set()", true},
	    {"set() == user.spec.traits[\"missing\"]", true},
	    {"equals(user.spec.traits[\"missing\"], set())", true},
	    {"contains(user.spec.traits[\"missing\"], \"\")", false},
	    {"contains_any(user.spec.traits[\"missing\"], set(\"a\"))", false},
	    {"contains_all(user.spec.roles, user.spec.traits[\"missing\"])", true},
	    {"contains_all(user.spec.traits[\"missing\"], \"a\")", false},
	    {"is_subset(user.spec.roles, user.spec.traits[\"missing\"])", false},
	    {"resource.metadata.labels[\"a\"] == resource.metadata.labels[\"b\"]", true},
	    /* a plain field that is not there (-ENOENT) reads the same way */
	    {"session.db_name == \"\"", true},
	    {"contains(session.db_name, \"x\")", false},
	};
	static const struct ecase eval_err[] = {
	    {"resource.metadata.labels[\"missing\"] == 1",
	     "column 37: == cannot compare a missing map key with an integer"},
	    {"!resource.metadata.labels[\"missing\"]",
	     "column 1: ! needs a boolean, not a missing map key"},
	    {"resource.metadata.labels[\"missing\"]",
	     "column 1: the expression is a missing map key, not a boolean"},
	};
	struct test_env te;

	run_cases(c, ARRAY_LEN(c));
	run_eval_errors(eval_err, ARRAY_LEN(eval_err), -EINVAL);

	/* what the lookup is asked */
	test_env_init(&te);
	assert_true(eval_in(&te, "resource.metadata.labels[\"env\"] == \"prod\""));
	assert_string_equal(te.last_field, "resource.metadata.labels");
	assert_string_equal(te.last_key, "env");
	assert_true(eval_in(&te, "user . metadata\n.name == \"alice\""));
	assert_string_equal(te.last_field, "user.metadata.name");
	assert_string_equal(te.last_key, "(null)");
	assert_true(eval_in(&te, "user.spec.traits[\"a\\u00e9\"] == set()"));
	assert_string_equal(te.last_field, "user.spec.traits");
	assert_string_equal(te.last_key, "a\xc3\xa9");
}

static void test_known_fields(void **state)
{
	static const char *const known[] = {"user.metadata.name",
					    "resource.metadata.labels[]",
					    "session.*",
					    "both",
					    "both[]",
					    NULL};
	static const char *const ok[] = {
	    "user.metadata.name == \"a\"",   "resource.metadata.labels[\"env\"] == \"a\"",
	    "session.participants == set()", "session.a.b.c == \"\"",
	    "session.tags[\"k\"] == \"\"",   "both == \"\" && both[\"k\"] == \"\"",
	};
	static const struct ecase errs[] = {
	    {"user.metadata.nmae == \"a\"", "column 1: unknown field user.metadata.nmae"},
	    {"true && user.spec.roles == set()", "column 9: unknown field user.spec.roles"},
	    {"session == \"a\"", "column 1: unknown field session"},
	    {"sessions.x == \"a\"", "column 1: unknown field sessions.x"},
	    {"user.metadata == \"a\"", "column 1: unknown field user.metadata"},
	    {"user.metadata.name[\"x\"] == \"a\"",
	     "column 1: user.metadata.name is not a map and cannot be indexed"},
	    {"resource.metadata.labels == set()",
	     "column 1: resource.metadata.labels is a map: give a key, as in "
	     "resource.metadata.labels[\"key\"]"},
	    {"contains(resource.metadata.labels, \"a\")",
	     "column 10: resource.metadata.labels is a map: give a key, as in "
	     "resource.metadata.labels[\"key\"]"},
	};
	struct pred_expr *e = NULL;
	char err[256];
	size_t i;

	for (i = 0; i < ARRAY_LEN(ok); i++) {
		if (pred_parse(ok[i], known, &e, err, sizeof(err)))
			fail_msg("%s: %s", ok[i], err);
		pred_free(e);
	}
	run_parse_errors(errs, ARRAY_LEN(errs), known);

	/* the reference's fields all parse with pred_policy_fields */
	assert_int_equal(pred_parse("user.metadata.name == \"\" && user.spec.roles == set() && "
				    "user.spec.traits[\"k\"] == set() && resource.kind == \"\" && "
				    "resource.metadata.name == \"\" && "
				    "resource.metadata.labels[\"k\"] == \"\" && "
				    "session.participants == set() && session.cluster_name == \"\" "
				    "&& session.kubernetes_pod_namespace == \"\"",
				    pred_policy_fields, &e, err, sizeof(err)),
			 0);
	pred_free(e);
	/* no list: any field, indexed or not */
	assert_int_equal(
	    pred_parse("a == \"\" && a[\"k\"] == \"\" && x.y.z", NULL, &e, err, sizeof(err)), 0);
	pred_free(e);
	/* an empty list allows none */
	{
		static const char *const none[] = {NULL};

		assert_int_equal(pred_parse("a", none, &e, err, sizeof(err)), -EINVAL);
		assert_string_equal(err, "column 1: unknown field a");
	}
}

/* ------------------------------------------------------------ literals */

static void test_strings(void **state)
{
	static const struct tcase c[] = {
	    {"\"\\a\\b\\f\\n\\r\\t\\v\\\\\\\"\" == session.esc", true},
	    {"\"\\x41\\101\\u00e9\\U0001F600\" == session.unicode", true},
	    {"\"\\x41\\101\\u00E9\\U0001f600\" == session.unicode", true},
	    {"\"A\\x41\xc3\xa9\xf0\x9f\x98\x80\" == session.unicode", true},
	    {"\"\\xff\\x80\" == session.high", true},
	    {"\"\\377\\200\" == session.high", true},
	    {"\"\\u00e9\" == \"\xc3\xa9\"", true},
	    {"\"\\u00e9\" == \"e\"", false},
	    {"\"\\uFFFF\" == \"\xef\xbf\xbf\"", true},
	    {"\"\\U0010FFFF\" == \"\xf4\x8f\xbf\xbf\"", true},
	    {"\"\\u07ff\" == \"\xdf\xbf\"", true},
	    {"\"a\\tb\" == \"a\tb\"", true},
	    {"\"a\\tb\" == \"a\\\\tb\"", false},
	    /* raw strings: no escapes, newlines kept, carriage returns dropped */
	    {"`a\\nb` == \"a\\\\nb\"", true},
	    {"`a\nb` == \"a\\nb\"", true},
	    {"`a\r\nb` == \"a\\nb\"", true},
	    {"`say \"hi\"` == \"say \\\"hi\\\"\"", true},
	    {"`` == \"\"", true},
	    {"`\\x41` == \"A\"", false},
	    {"\"`\" == \"\\x60\"", true},
	};
	static const struct ecase errs[] = {
	    {"\"abc", "column 1: unterminated string"},
	    {"true == \"abc", "column 9: unterminated string"},
	    {"\"abc\\", "column 5: unterminated string"},
	    {"\"a\nb\" == \"\"", "line 1, column 1: unterminated string"},
	    {"`abc", "column 1: unterminated raw string"},
	    {"\"\\q\" == \"\"", "column 2: unknown escape sequence \\q"},
	    {"\"\\'\" == \"\"", "column 2: unknown escape sequence \\'"},
	    {"\"\\x4\" == \"\"", "column 2: \\x needs 2 hex digits"},
	    {"\"\\xg0\" == \"\"", "column 2: \\x needs 2 hex digits"},
	    {"\"\\u12\" == \"\"", "column 2: \\u needs 4 hex digits"},
	    {"\"\\U0001F60\" == \"\"", "column 2: \\U needs 8 hex digits"},
	    {"\"\\18\" == \"\"", "column 2: an octal escape needs 3 octal digits"},
	    {"\"\\400\" == \"\"", "column 2: octal escape value 256 is greater than 255"},
	    {"\"\\ud800\" == \"\"", "column 2: escape sequence is an invalid Unicode code point"},
	    {"\"\\U00110000\" == \"\"",
	     "column 2: escape sequence is an invalid Unicode code point"},
	    {"\"\\x00\" == \"\"", "column 2: a string cannot hold a NUL character"},
	    {"\"\\000\" == \"\"", "column 2: a string cannot hold a NUL character"},
	    {"\"\\u0000\" == \"\"", "column 2: a string cannot hold a NUL character"},
	    {"\"ab\\q\" == \"\"", "column 4: unknown escape sequence \\q"},
	    {"'a' == \"a\"",
	     "column 1: strings are in double quotes or backticks, not single quotes"},
	};

	run_cases(c, ARRAY_LEN(c));
	run_parse_errors(errs, ARRAY_LEN(errs), NULL);
}

static void test_integers(void **state)
{
	static const struct tcase c[] = {
	    {"0 == 0", true},
	    {"1 == 1", true},
	    {"42 == 42", true},
	    {"42 == 43", false},
	    {"0x10 == 16", true},
	    {"0XfF == 255", true},
	    {"0o17 == 15", true},
	    {"0O17 == 15", true},
	    {"017 == 15", true},
	    {"00 == 0", true},
	    {"0b101 == 5", true},
	    {"0B11 == 3", true},
	    {"1_000_000 == 1000000", true},
	    {"0x_ff == 255", true},
	    {"0_17 == 15", true},
	    {"9223372036854775807 == 0x7fffffffffffffff", true},
	    {"session.port == 22", true},
	    {"session.port == 0x16", true},
	    {"session.port != 22", false},
	    {"session.port == 023", false},
	    {"equals(session.port, 0b10110)", true},
	};
	static const struct ecase errs[] = {
	    {"9223372036854775808 == 1", "column 1: integer 9223372036854775808 is out of range"},
	    {"0x8000000000000000 == 1", "column 1: integer 0x8000000000000000 is out of range"},
	    {"08 == 8", "column 1: invalid integer 08"},
	    {"1__0 == 10", "column 1: invalid integer 1__0"},
	    {"1_ == 1", "column 1: invalid integer 1_"},
	    {"0x == 0", "column 1: invalid integer 0x"},
	    {"0b == 0", "column 1: invalid integer 0b"},
	    {"0_ == 0", "column 1: invalid integer 0_"},
	    {"0b2 == 0", "column 1: invalid integer 0b2"},
	    {"true && 12ab == 12", "column 9: invalid integer 12ab"},
	    {"1.5 == 1", "column 2: unexpected '.' after the expression; missing && or ||?"},
	    {"-1 == 1", "column 1: unexpected character '-'"},
	};

	run_cases(c, ARRAY_LEN(c));
	run_parse_errors(errs, ARRAY_LEN(errs), NULL);
}

/* ------------------------------------------------------------ type errors */

static void test_type_errors_parse(void **state)
{
	static const struct ecase errs[] = {
	    {"\"a\" && true", "column 1: && needs booleans, not a string"},
	    {"true || 1", "column 9: || needs booleans, not an integer"},
	    {"true && true && set()", "column 17: && needs booleans, not a list"},
	    {"!\"a\"", "column 1: ! needs a boolean, not a string"},
	    {"!1", "column 1: ! needs a boolean, not an integer"},
	    {"\"a\" == 1", "column 5: == cannot compare a string with an integer"},
	    {"set(\"a\") != \"a\"", "column 10: != cannot compare a list with a string"},
	    {"true == 1", "column 6: == cannot compare a boolean with an integer"},
	    {"\"a\"", "column 1: the expression is a string, not a boolean"},
	    {"  set()", "column 3: the expression is a list, not a boolean"},
	    {"1", "column 1: the expression is an integer, not a boolean"},
	    {"contains(\"a\", set(\"b\"))",
	     "column 15: argument 2 of contains must be a string, not a list"},
	    {"contains(1, \"a\")",
	     "column 10: argument 1 of contains must be a string or a list, not an integer"},
	    {"contains(true, \"a\")",
	     "column 10: argument 1 of contains must be a string or a list, not a boolean"},
	    {"contains_all(set(), 1)",
	     "column 21: argument 2 of contains_all must be a string or a list, not an integer"},
	    {"contains_any(1, set())",
	     "column 14: argument 1 of contains_any must be a string or a list, not an integer"},
	    {"equals(\"a\", 1)", "column 1: equals cannot compare a string with an integer"},
	    {"equals(true, set())", "column 1: equals cannot compare a boolean with a list"},
	    {"all_end_with(\"a\", set(\"a\"))",
	     "column 19: argument 2 of all_end_with must be a string, not a list"},
	    {"all_equal(1, \"a\")",
	     "column 11: argument 1 of all_equal must be a string or a list, not an integer"},
	    {"is_subset(\"a\", \"b\", 3)",
	     "column 21: argument 3 of is_subset must be a string or a list, not an integer"},
	    {"contains(set(true), \"a\")",
	     "column 14: argument 1 of set must be a string or a list, not a boolean"},
	    {"contains(\"a\", \"a\" == \"a\")",
	     "column 15: argument 2 of contains must be a string, not a boolean"},
	};

	run_parse_errors(errs, ARRAY_LEN(errs), NULL);
}

static void test_type_errors_eval(void **state)
{
	static const struct ecase errs[] = {
	    {"user.metadata.name && true", "column 1: && needs booleans, not a string"},
	    {"false || session.port", "column 10: || needs booleans, not an integer"},
	    {"user.metadata.name", "column 1: the expression is a string, not a boolean"},
	    {"user.spec.roles", "column 1: the expression is a list, not a boolean"},
	    {"user.metadata.name == 1", "column 20: == cannot compare a string with an integer"},
	    {"user.spec.roles == \"access\"", "column 17: == cannot compare a list with a string"},
	    {"session.port != \"22\"", "column 14: != cannot compare an integer with a string"},
	    {"session.interactive == session.port",
	     "column 21: == cannot compare a boolean with an integer"},
	    {"!session.port", "column 1: ! needs a boolean, not an integer"},
	    {"contains(session.port, \"a\")",
	     "column 10: argument 1 of contains must be a string or a list, not an integer"},
	    {"contains(user.spec.roles, user.spec.roles)",
	     "column 27: argument 2 of contains must be a string, not a list"},
	    {"equals(session.port, \"22\")",
	     "column 1: equals cannot compare an integer with a string"},
	    {"all_equal(user.spec.roles, user.spec.roles)",
	     "column 28: argument 2 of all_equal must be a string, not a list"},
	    {"is_subset(session.interactive, \"a\")",
	     "column 11: argument 1 of is_subset must be a string or a list, not a boolean"},
	    {"contains(set(session.port), \"a\")",
	     "column 14: argument 1 of set must be a string or a list, not an integer"},
	    /* columns count characters, not bytes */
	    {"\"\xc3\xa9\xc3\xa9\" == session.port",
	     "column 6: == cannot compare a string with an integer"},
	    /* and an expression over several lines gets its line */
	    {"true &&\n  user.metadata.name", "line 2, column 3: && needs booleans, not a string"},
	};
	struct test_env te;

	run_eval_errors(errs, ARRAY_LEN(errs), -EINVAL);

	/* && and || stop early, as in Go: the rest is not looked up */
	test_env_init(&te);
	assert_false(eval_in(&te, "false && user.metadata.name == \"alice\""));
	assert_int_equal(te.lookups, 0);
	assert_true(eval_in(&te, "true || contains(user.spec.roles, \"x\")"));
	assert_int_equal(te.lookups, 0);
	assert_true(eval_in(&te, "false || true || user.metadata.name == \"x\""));
	assert_int_equal(te.lookups, 0);
}

/* ------------------------------------------------------------ malformed input */

static void test_malformed(void **state)
{
	static const struct ecase errs[] = {
	    {"", "column 1: the expression is empty"},
	    {"  \t\n ", "column 1: the expression is empty"},
	    {"(true", "column 6: expected ')' to close the '(' at column 1, found the end of the "
		      "expression"},
	    {"((true)", "column 8: expected ')' to close the '(' at column 1, found the end of the "
			"expression"},
	    {"(true false)", "column 7: expected ')' to close the '(' at column 1, found 'false'"},
	    {"true)", "column 5: unexpected ')' without a matching '('"},
	    {"(true))", "column 7: unexpected ')' without a matching '('"},
	    {"()", "column 2: expected a value, found ')'"},
	    {"true false", "column 6: unexpected 'false' after the expression; missing && or ||?"},
	    {"contains(user.spec.roles, \"a\") \"b\"",
	     "column 32: unexpected a string after the expression; missing && or ||?"},
	    {"true 1", "column 6: unexpected an integer after the expression; missing && or ||?"},
	    {"true &&", "column 8: expected a value, found the end of the expression"},
	    {"&& true", "column 1: expected a value, found '&&'"},
	    {"true && || false", "column 9: expected a value, found '||'"},
	    {"true == ", "column 9: expected a value, found the end of the expression"},
	    {"!", "column 2: expected a value, found the end of the expression"},
	    {"true & false", "column 6: unexpected '&'; and is &&"},
	    {"true | false", "column 6: unexpected '|'; or is ||"},
	    {"a = \"b\"", "column 3: unexpected '='; comparison is =="},
	    {"true # comment", "column 6: unexpected character '#'"},
	    {"\xc3\xa9 == \"a\"", "column 1: unexpected byte 0xc3"},
	    {"true\x01", "column 5: unexpected byte 0x01"},
	    {"foo(\"a\")", "column 1: unknown function foo"},
	    {"true && bar()", "column 9: unknown function bar"},
	    {"Contains(user.spec.roles, \"a\")", "column 1: unknown function Contains"},
	    {"true(1)", "column 1: unknown function true"},
	    {"contains(user.spec.roles)", "column 1: contains takes 2 arguments, got 1"},
	    {"contains(user.spec.roles, \"a\", \"b\")",
	     "column 1: contains takes 2 arguments, got 3"},
	    {"has_prefix()", "column 1: has_prefix takes 2 arguments, got 0"},
	    {"equals(\"a\")", "column 1: equals takes 2 arguments, got 1"},
	    {"is_subset(\"a\")", "column 1: is_subset takes at least 2 arguments, got 1"},
	    {"contains(user.spec.roles, \"a\"",
	     "column 30: expected ')' after the arguments of contains"},
	    {"contains(user.spec.roles \"a\")",
	     "column 26: expected ')' after the arguments of contains"},
	    {"contains(,\"a\")", "column 10: expected a value, found ','"},
	    {"contains(user.spec.roles,, \"a\")", "column 26: expected a value, found ','"},
	    {"user.", "column 6: expected a field name after '.', found the end of the expression"},
	    {"user.1 == 1", "column 6: expected a field name after '.', found an integer"},
	    {".user == \"\"", "column 1: expected a value, found '.'"},
	    {"user.metadata.name() == \"\"", "column 1: user.metadata.name is not a function"},
	    {"resource.metadata.labels[1] == \"a\"",
	     "column 26: a map key must be a string literal"},
	    {"resource.metadata.labels[] == \"a\"",
	     "column 26: a map key must be a string literal"},
	    {"resource.metadata.labels[\"a\" == \"b\"",
	     "column 30: expected ']' after the map key"},
	    {"resource.metadata.labels[\"a\"][\"b\"] == \"\"",
	     "column 30: resource.metadata.labels[\"a\"] is not a map and cannot be indexed"},
	    {"resource.metadata.labels[\"a\"].x == \"\"",
	     "column 30: unexpected '.' after the expression; missing && or ||?"},
	    {"\"a\"[\"b\"] == \"\"",
	     "column 4: unexpected '[' after the expression; missing && or ||?"},
	    {"true.x", "column 5: unexpected '.' after the expression; missing && or ||?"},
	    {"true &&\n\t(false", "line 2, column 8: expected ')' to close the '(' at line 2, "
				  "column 2, found the end of the expression"},
	    {"true &&\n\t(false ||", "line 2, column 11: expected a value, found the end of the "
				     "expression"},
	};

	run_parse_errors(errs, ARRAY_LEN(errs), NULL);
}

/* Messages stay one line, whatever a quoted name holds. */
static void test_message_one_line(void **state)
{
	struct pred_expr *e = NULL;
	char err[256];

	assert_int_equal(pred_parse("a[\"x\\ny\"][\"z\"]", NULL, &e, err, sizeof(err)), -EINVAL);
	assert_null(strchr(err, '\n'));
	assert_string_equal(err, "column 10: a[\"x?y\"] is not a map and cannot be indexed");
}

/* ------------------------------------------------------------ limits */

/* pre, n times unit, post: a malloc'd string. */
static char *repeat(const char *pre, const char *unit, size_t n, const char *post)
{
	size_t lp = strlen(pre), lu = strlen(unit), lq = strlen(post), i;
	char *s = malloc(lp + lu * n + lq + 1), *o;

	assert_non_null(s);
	memcpy(s, pre, lp);
	o = s + lp;
	for (i = 0; i < n; i++, o += lu)
		memcpy(o, unit, lu);
	memcpy(o, post, lq + 1);
	return s;
}

static int parse_only(const char *src, char *err, size_t errlen)
{
	struct pred_expr *e = NULL;
	int rc = pred_parse(src, NULL, &e, err, errlen);

	if (rc == 0)
		assert_non_null(e);
	else
		assert_null(e);
	pred_free(e);
	return rc;
}

static void test_depth(void **state)
{
	char err[256], *s, *t;

	/* parentheses */
	s = repeat("", "(", PRED_MAX_DEPTH, "true");
	t = repeat(s, ")", PRED_MAX_DEPTH, "");
	assert_true(eval1(t));
	free(s);
	free(t);
	s = repeat("", "(", PRED_MAX_DEPTH + 1, "true");
	t = repeat(s, ")", PRED_MAX_DEPTH + 1, "");
	assert_int_equal(parse_only(t, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "column 33: nested deeper than 32 levels");
	free(s);
	free(t);

	/* ! */
	s = repeat("", "!", PRED_MAX_DEPTH, "true");
	assert_true(eval1(s));
	free(s);
	s = repeat("", "!", PRED_MAX_DEPTH + 1, "true");
	assert_int_equal(parse_only(s, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "column 33: nested deeper than 32 levels");
	free(s);
	/* far deeper is refused the same way, without a deep recursion */
	s = repeat("", "!", PRED_MAX_LEN - 4, "true");
	assert_int_equal(parse_only(s, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "column 33: nested deeper than 32 levels");
	free(s);
	s = repeat("", "(", PRED_MAX_LEN, "");
	assert_int_equal(parse_only(s, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "column 33: nested deeper than 32 levels");
	free(s);

	/* calls: contains and 31 sets are 32 levels */
	s = repeat("contains(", "set(", PRED_MAX_DEPTH - 1, "\"a\"");
	t = repeat(s, ")", PRED_MAX_DEPTH - 1, ", \"a\")");
	assert_true(eval1(t));
	free(s);
	free(t);
	s = repeat("contains(", "set(", PRED_MAX_DEPTH, "\"a\"");
	t = repeat(s, ")", PRED_MAX_DEPTH, ", \"a\")");
	assert_int_equal(parse_only(t, err, sizeof(err)), -EINVAL);
	/* the 33rd call starts after "contains(" and 31 "set(" */
	assert_string_equal(err, "column 134: nested deeper than 32 levels");
	free(s);
	free(t);

	/* comparisons nest the one before */
	s = repeat("true", " == true", PRED_MAX_DEPTH, "");
	assert_true(eval1(s));
	free(s);
	s = repeat("true", " == true", PRED_MAX_DEPTH + 1, "");
	assert_int_equal(parse_only(s, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "column 262: nested deeper than 32 levels");
	free(s);

	/* the levels add up: 31 parentheses and a ! are 32 */
	s = repeat("", "(", PRED_MAX_DEPTH - 1, "!false");
	t = repeat(s, ")", PRED_MAX_DEPTH - 1, "");
	assert_true(eval1(t));
	free(s);
	free(t);
	s = repeat("", "(", PRED_MAX_DEPTH - 1, "!!false");
	t = repeat(s, ")", PRED_MAX_DEPTH - 1, "");
	assert_int_equal(parse_only(t, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "column 33: nested deeper than 32 levels");
	free(s);
	free(t);

	/* long && and || chains are not nesting */
	s = repeat("true", " && true", 400, "");
	assert_true(eval1(s));
	free(s);
	s = repeat("false", " || false", 400, " || true");
	assert_true(eval1(s));
	free(s);
	s = repeat("(", "contains(user.spec.roles, \"x\") || ", 100, "true) && true");
	assert_true(eval1(s));
	free(s);
	/* separate groups side by side do not add up */
	s = repeat("", "(", PRED_MAX_DEPTH, "true");
	t = repeat(s, ")", PRED_MAX_DEPTH, "");
	free(s);
	s = malloc(strlen(t) * 2 + 8);
	assert_non_null(s);
	snprintf(s, strlen(t) * 2 + 8, "%s && %s", t, t);
	assert_true(eval1(s));
	free(s);
	free(t);
}

static void test_length(void **state)
{
	struct pred_expr *e = NULL;
	char err[256], *s;
	int rc;

	/* exactly PRED_MAX_LEN bytes */
	s = repeat("true", " ", PRED_MAX_LEN - 4, "");
	assert_int_equal(strlen(s), PRED_MAX_LEN);
	assert_true(eval1(s));
	free(s);
	s = repeat("true", " ", PRED_MAX_LEN - 3, "");
	rc = pred_parse(s, NULL, &e, err, sizeof(err));
	assert_int_equal(rc, -E2BIG);
	assert_null(e);
	assert_string_equal(err, "the expression is longer than 4096 bytes");
	free(s);
	/* a long string literal within the limit */
	s = repeat("\"", "x", PRED_MAX_LEN - 20, "\" != \"\"");
	assert_true(eval1(s));
	free(s);
}

static void test_arguments(void **state)
{
	char err[256], *s;

	s = repeat("contains(set(\"a\"", ", \"a\"", PRED_MAX_ARGS - 1, "), \"a\")");
	assert_true(eval1(s));
	free(s);
	s = repeat("contains(set(\"a\"", ", \"a\"", PRED_MAX_ARGS, "), \"a\")");
	assert_int_equal(parse_only(s, err, sizeof(err)), -EINVAL);
	/* the 65th argument: after "contains(set(" (13), "a" (3) and 63 times , "a" (5) */
	assert_string_equal(err, "column 334: set takes at most 64 arguments");
	free(s);
	s = repeat("is_subset(\"a\"", ", \"a\"", PRED_MAX_ARGS - 1, ")");
	assert_true(eval1(s));
	free(s);
	s = repeat("is_subset(\"a\"", ", \"a\"", PRED_MAX_ARGS, ")");
	assert_int_equal(parse_only(s, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "column 331: is_subset takes at most 64 arguments");
	free(s);
}

/* ------------------------------------------------------------ the API */

static void test_api(void **state)
{
	struct test_env te;
	struct pred_env env = {.lookup = test_lookup, .ctx = &te};
	struct pred_expr *e = NULL;
	char err[256], small[12];
	bool r = false;

	pred_free(NULL);
	test_env_init(&te);

	assert_int_equal(pred_parse(NULL, NULL, &e, err, sizeof(err)), -EINVAL);
	assert_int_equal(pred_parse("true", NULL, NULL, err, sizeof(err)), -EINVAL);
	assert_int_equal(pred_eval(NULL, &env, &r, err, sizeof(err)), -EINVAL);

	/* no error buffer, or a tiny one */
	assert_int_equal(pred_parse("(", NULL, &e, NULL, 0), -EINVAL);
	assert_int_equal(pred_parse("(", NULL, &e, err, 0), -EINVAL);
	assert_int_equal(pred_parse("contains(", NULL, &e, small, sizeof(small)), -EINVAL);
	assert_string_equal(small, "column 10: ");
	assert_int_equal(pred_parse(" \"abc", NULL, &e, small, 4), -EINVAL);
	assert_string_equal(small, "col");

	/* a clean result clears the message */
	snprintf(err, sizeof(err), "stale");
	assert_int_equal(pred_parse("true", NULL, &e, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_int_equal(pred_eval(e, NULL, NULL, err, sizeof(err)), -EINVAL);
	snprintf(err, sizeof(err), "stale");
	/* constants need no environment */
	assert_int_equal(pred_eval(e, NULL, &r, err, sizeof(err)), 0);
	assert_true(r);
	assert_string_equal(err, "");
	assert_int_equal(pred_eval(e, &env, &r, NULL, 0), 0);
	pred_free(e);

	/* fields do */
	assert_int_equal(pred_parse("user.metadata.name == \"\"", NULL, &e, err, sizeof(err)), 0);
	assert_int_equal(pred_eval(e, NULL, &r, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "column 1: no environment to look up user.metadata.name in");
	pred_free(e);
}

static void test_lookup_errors(void **state)
{
	static const struct ecase einval[] = {
	    {"nope == \"\"", "column 1: unknown field nope"},
	    {"true && no.such[\"k\"] == \"\"", "column 9: unknown field no.such[\"k\"]"},
	    {"session.null_string == \"\"",
	     "column 1: the value of session.null_string is malformed"},
	    {"contains(session.null_item, \"a\")",
	     "column 10: the value of session.null_item is malformed"},
	    {"session.bad_type == \"\"", "column 1: the value of session.bad_type is malformed"},
	    {"session.positive == \"\"", "column 1: the value of session.positive is malformed"},
	};
	static const struct ecase eio[] = {
	    {"true && session.io_error == \"\"",
	     "column 9: looking up session.io_error: Input/output error"},
	};

	run_eval_errors(einval, ARRAY_LEN(einval), -EINVAL);
	run_eval_errors(eio, ARRAY_LEN(eio), -EIO);
}

/* Big lists through set(): the arena, de-duplication and the same result every time. */
static void test_big_lists(void **state)
{
	enum { N = 20000 };
	struct test_env te;
	const char **big = calloc(N, sizeof(*big));
	char *store = malloc(N * 16);
	size_t i;
	int round;

	assert_non_null(big);
	assert_non_null(store);
	for (i = 0; i < N; i++) {
		snprintf(store + i * 16, 16, "item%zu", i);
		big[i] = store + i * 16;
	}
	test_env_init(&te);
	te.big = big;
	te.nbig = N;
	for (round = 0; round < 3; round++) {
		assert_true(eval_in(&te, "set(session.big, session.big) == session.big"));
		assert_true(eval_in(&te, "contains(set(session.big, \"x\"), \"item19999\")"));
		assert_true(
		    eval_in(&te, "contains_all(session.big, set(\"item0\", \"item19999\"))"));
		assert_false(eval_in(&te, "contains_any(session.big, set(\"x\", \"y\"))"));
		assert_true(eval_in(&te, "is_subset(set(\"item7\"), session.big)"));
		assert_true(eval_in(&te, "all_end_with(set(session.big, \"x9\"), \"\")"));
	}
	free(big);
	free(store);
}

/* What one evaluation may build is capped, and the cap leaves nothing behind. */
static void test_arena_limit(void **state)
{
	enum { N = 3u << 20 }; /* three copies of 3 Mi pointers pass 64 MiB */
	struct test_env te;
	struct pred_env env = {.lookup = test_lookup, .ctx = &te};
	struct pred_expr *e = NULL;
	const char **huge = malloc(N * sizeof(*huge));
	char err[256];
	bool r = false;
	size_t i;

	assert_non_null(huge);
	for (i = 0; i < N; i++)
		huge[i] = "x";
	test_env_init(&te);
	te.big = huge;
	te.nbig = N;
	assert_true(eval_in(&te, "set(session.big, session.big) == set(\"x\")"));
	assert_int_equal(pred_parse("true && set(session.big, session.big, session.big) == set()",
				    NULL, &e, err, sizeof(err)),
			 0);
	assert_int_equal(pred_eval(e, &env, &r, err, sizeof(err)), -E2BIG);
	assert_string_equal(err, "column 9: the lists built are larger than 64 MiB");
	pred_free(e);
	free(huge);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reference_examples),
	    cmocka_unit_test(test_operators),
	    cmocka_unit_test(test_precedence),
	    cmocka_unit_test(test_contains),
	    cmocka_unit_test(test_equals),
	    cmocka_unit_test(test_contains_all_any),
	    cmocka_unit_test(test_set),
	    cmocka_unit_test(test_all_end_with_all_equal),
	    cmocka_unit_test(test_is_subset),
	    cmocka_unit_test(test_has_prefix),
	    cmocka_unit_test(test_map_index),
	    cmocka_unit_test(test_known_fields),
	    cmocka_unit_test(test_strings),
	    cmocka_unit_test(test_integers),
	    cmocka_unit_test(test_type_errors_parse),
	    cmocka_unit_test(test_type_errors_eval),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_message_one_line),
	    cmocka_unit_test(test_depth),
	    cmocka_unit_test(test_length),
	    cmocka_unit_test(test_arguments),
	    cmocka_unit_test(test_api),
	    cmocka_unit_test(test_lookup_errors),
	    cmocka_unit_test(test_big_lists),
	    cmocka_unit_test(test_arena_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
