/*
 * collector/policy.c: policies tried in alphabetical order of name, the first
 * whose kinds hold the session's and whose filter is true wins, no match,
 * filters that fail count as false; and every field a filter can read of a
 * session (user, roles and traits from the config, node or pod, session.end
 * and the session's own fields, map keys that are missing).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../../collector/collector.h"
#include "log.h"
#include "predicate.h"

/* The policies of a YAML text, as the summarizer builds them. */
static void set_of(struct policy_set *ps, const char *yaml)
{
	struct resource *v = NULL;
	char err[512];
	size_t n = 0;

	if (resource_parse(yaml, strlen(yaml), &v, &n, err, sizeof(err)))
		fail_msg("%s", err);
	assert_int_equal(policy_set_build(ps, v, n), 0);
	resource_array_free(v, n);
}

#define POL(name, kinds, model, filter)                                                            \
	"---\nkind: inference_policy\nversion: v1\nmetadata: {name: " name                         \
	"}\nspec:\n  kinds: " kinds "\n  model: " model "\n" filter

static char *dup(const char *s)
{
	char *p = strdup(s);

	assert_non_null(p);
	return p;
}

/* A completed session row (strings owned; store_session_clear frees them). */
static void row_of(struct store_session *ss, const char *user, const char *kind, const char *node,
		   const char *labels)
{
	memset(ss, 0, sizeof(*ss));
	snprintf(ss->sid, sizeof(ss->sid), "11111111-2222-4333-8444-555555555555");
	ss->user = dup(user);
	ss->kind = dup(kind);
	ss->node = dup(node);
	ss->login = dup("root");
	ss->labels_json = dup(labels);
	ss->initial_command_json = dup("[\"bash\",\"-l\"]");
	ss->status = dup("complete");
	ss->exit_code = 3;
}

static const char end_line[] =
    "{\"event\":\"session.end\",\"code\":\"T2004I\",\"time\":\"2026-11-22T10:00:00.000Z\","
    "\"ei\":9,\"uid\":\"u\",\"sid\":\"11111111-2222-4333-8444-555555555555\",\"server_id\":"
    "\"node-id\",\"server_hostname\":\"web-1\",\"login\":\"root\",\"user\":\"alice\","
    "\"enhanced_recording\":true,\"interactive\":true,\"participants\":[\"alice\",\"bob\"],"
    "\"session_start\":\"2026-11-22T09:00:00.000Z\",\"session_stop\":\"2026-11-22T10:00:00.000Z\","
    "\"initial_command\":[\"bash\"],\"exit_code\":0,\"reason\":\"exited\"}";

static struct collector_config *cfg_with_users(void)
{
	static char *roles_a[] = {"dev", "oncall"}, *roles_b[] = {"intern"};
	static char *team[] = {"platform"}, *logins[] = {"root", "alice"};
	static struct collector_trait traits_a[] = {{"team", team, 1}, {"logins", logins, 2}};
	static struct collector_user users[] = {
	    {"alice", roles_a, 2, traits_a, 2},
	    {"bob", roles_b, 1, NULL, 0},
	};
	static struct collector_config cfg = {.users = users, .n_users = 2};

	return &cfg;
}

static const char *match_name(const struct policy_set *ps, const struct store_session *row,
			      const char *end)
{
	struct policy_subject *s = NULL;
	const struct policy *p;

	assert_int_equal(policy_subject_new(&s, cfg_with_users(), row, end), 0);
	p = policy_match(ps, s);
	policy_subject_free(s);
	return p ? p->name : NULL;
}

#define assert_match(ps, row, end, want)                                                           \
	do {                                                                                       \
		const char *got_ = match_name(ps, row, end);                                       \
		const char *want_ = (want);                                                        \
		if ((got_ == NULL) != (want_ == NULL) || (got_ && strcmp(got_, want_) != 0))       \
			fail_msg("matched %s, want %s", got_ ? got_ : "(none)",                    \
				 want_ ? want_ : "(none)");                                        \
	} while (0)

/* ------------------------------------------------------------ matching */

static void test_order_and_first_match(void **state)
{
	struct policy_set ps;
	struct store_session row;

	(void)state;
	/* written out of order: tried by name, so "a-prod" before "b-all" before "c-ssh" */
	set_of(&ps,
	       POL("c-ssh", "[ssh]", "m3", "") POL("b-all", "[ssh, k8s, db, local]", "m2",
						   "  filter: 'user.metadata.name == \"alice\"'\n")
		   POL("a-prod", "[ssh]", "m1",
		       "  filter: 'equals(resource.metadata.labels[\"env\"], \"prod\")'\n"));
	assert_int_equal(ps.n, 3);
	assert_string_equal(ps.v[0].name, "a-prod");
	assert_string_equal(ps.v[1].name, "b-all");
	assert_string_equal(ps.v[2].name, "c-ssh");
	assert_null(ps.v[2].filter);
	assert_string_equal(ps.v[0].model, "m1");

	/* all three would match: the first by name wins */
	row_of(&row, "alice", "ssh", "web-1", "{\"env\":\"prod\"}");
	assert_match(&ps, &row, end_line, "a-prod");
	store_session_clear(&row);
	/* the first's filter is false: the second */
	row_of(&row, "alice", "ssh", "web-1", "{\"env\":\"dev\"}");
	assert_match(&ps, &row, end_line, "b-all");
	store_session_clear(&row);
	/* the first two false: the one without a filter */
	row_of(&row, "bob", "ssh", "web-1", "{}");
	assert_match(&ps, &row, end_line, "c-ssh");
	store_session_clear(&row);
	policy_set_clear(&ps);
	policy_set_clear(&ps); /* twice is harmless */
}

static void test_kinds_and_no_match(void **state)
{
	struct policy_set ps;
	struct store_session row;

	(void)state;
	set_of(&ps, POL("k8s-only", "[k8s]", "m", "") POL("db-local", "[db, local]", "m", ""));
	row_of(&row, "alice", "ssh", "web-1", "{}");
	assert_match(&ps, &row, NULL, NULL); /* no policy for ssh: no match */
	store_session_clear(&row);
	row_of(&row, "alice", "k8s", "web-1", "{}");
	assert_match(&ps, &row, NULL, "k8s-only");
	store_session_clear(&row);
	row_of(&row, "alice", "local", "web-1", "{}");
	assert_match(&ps, &row, NULL, "db-local");
	store_session_clear(&row);
	row_of(&row, "alice", "", "web-1", "{}");
	assert_match(&ps, &row, NULL, NULL); /* a kind no policy can name */
	store_session_clear(&row);
	policy_set_clear(&ps);

	/* no policies at all */
	memset(&ps, 0, sizeof(ps));
	row_of(&row, "alice", "ssh", "web-1", "{}");
	assert_match(&ps, &row, NULL, NULL);
	store_session_clear(&row);
}

static void test_filters(void **state)
{
	static const struct {
		const char *filter;
		bool want;
	} cases[] = {
	    {"contains(user.spec.roles, \"oncall\")", true},
	    {"contains(user.spec.roles, \"intern\")", false},
	    {"contains(user.spec.traits[\"team\"], \"platform\")", true},
	    {"contains(user.spec.traits[\"nope\"], \"x\")", false}, /* missing key: empty list */
	    {"equals(resource.metadata.labels[\"nope\"], \"\")", true},
	    {"resource.kind == \"node\" && resource.metadata.name == \"web-1\"", true},
	    {"is_subset(user.metadata.name, \"alice\", \"carol\")", true},
	    {"contains(session.participants, \"bob\")", true},
	    {"session.interactive", true},
	    {"session.reason == \"exited\"", true},
	    {"session.kind == \"ssh\" && session.login == \"root\"", true},
	    {"session.cluster_name == \"\" && session.kubernetes_pod_name == \"\"", true},
	    {"equals(session.labels[\"env\"], \"prod\")", true},
	    {"contains_any(session.initial_command, set(\"bash\", \"sh\"))", true},
	    {"has_prefix(session.server_hostname, \"web\")", true},
	    {"session.db_service == \"\" && session.not_a_field == \"\"", true},
	};
	char yaml[1024];
	struct policy_set ps;
	struct store_session row;

	(void)state;
	row_of(&row, "alice", "ssh", "web-1", "{\"env\":\"prod\"}");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *f = json_string(cases[i].filter);
		char *q = json_dumps(f, JSON_ENCODE_ANY);

		snprintf(
		    yaml, sizeof(yaml),
		    "kind: inference_policy\nversion: v1\nmetadata: {name: p}\nspec:\n  kinds: "
		    "[ssh]\n  model: m\n  filter: %s\n",
		    q);
		free(q);
		json_decref(f);
		set_of(&ps, yaml);
		if ((match_name(&ps, &row, end_line) != NULL) != cases[i].want)
			fail_msg("filter %s: want %s", cases[i].filter,
				 cases[i].want ? "true" : "false");
		policy_set_clear(&ps);
	}
	store_session_clear(&row);
}

/* A filter that fails to evaluate is false for the session; the next policy is tried. */
static void test_failing_filter(void **state)
{
	struct policy_set ps;
	struct store_session row;

	(void)state;
	set_of(&ps, POL("a", "[ssh]", "m1", "  filter: 'session.participants == \"alice\"'\n")
			POL("b", "[ssh]", "m2", ""));
	row_of(&row, "alice", "ssh", "web-1", "{}");
	assert_match(&ps, &row, end_line, "b");
	store_session_clear(&row);
	policy_set_clear(&ps);
}

/* ------------------------------------------------------------ the fields */

static void test_subject_fields(void **state)
{
	struct policy_subject *s = NULL;
	struct store_session row;
	struct pred_value v;

	(void)state;
	/* a k8s session: the pod is the resource; kubernetes_* from labels */
	row_of(&row, "alice", "k8s", "node-7",
	       "{\"kubernetes.pod\":\"api-5d8\",\"kubernetes.namespace\":\"prod\","
	       "\"kubernetes.users\":\"alice, system:admin\",\"env\":\"prod\"}");
	assert_int_equal(policy_subject_new(&s, cfg_with_users(), &row, end_line), 0);

	assert_int_equal(policy_subject_lookup(s, "user.metadata.name", NULL, &v), 0);
	assert_int_equal(v.type, PRED_STRING);
	assert_string_equal(v.s, "alice");
	assert_int_equal(policy_subject_lookup(s, "user.spec.roles", NULL, &v), 0);
	assert_int_equal(v.type, PRED_LIST);
	assert_int_equal(v.n, 2);
	assert_string_equal(v.list[1], "oncall");
	assert_int_equal(policy_subject_lookup(s, "user.spec.traits", "logins", &v), 0);
	assert_int_equal(v.type, PRED_LIST);
	assert_int_equal(v.n, 2);
	assert_int_equal(policy_subject_lookup(s, "user.spec.traits", "nope", &v), -ENOENT);
	assert_int_equal(policy_subject_lookup(s, "user.spec.traits", NULL, &v), -EINVAL);

	assert_int_equal(policy_subject_lookup(s, "resource.kind", NULL, &v), 0);
	assert_string_equal(v.s, "pod");
	assert_int_equal(policy_subject_lookup(s, "resource.metadata.name", NULL, &v), 0);
	assert_string_equal(v.s, "api-5d8");
	assert_int_equal(policy_subject_lookup(s, "resource.metadata.labels", "env", &v), 0);
	assert_string_equal(v.s, "prod");
	assert_int_equal(policy_subject_lookup(s, "resource.metadata.labels", "x", &v), -ENOENT);

	/* session.end's fields, typed */
	assert_int_equal(policy_subject_lookup(s, "session.participants", NULL, &v), 0);
	assert_int_equal(v.type, PRED_LIST);
	assert_int_equal(v.n, 2);
	assert_string_equal(v.list[0], "alice");
	assert_int_equal(policy_subject_lookup(s, "session.interactive", NULL, &v), 0);
	assert_int_equal(v.type, PRED_BOOL);
	assert_true(v.b);
	assert_int_equal(policy_subject_lookup(s, "session.exit_code", NULL, &v), 0);
	assert_int_equal(v.type, PRED_INT);
	assert_int_equal(v.i, 0); /* session.end's, not the row's 3 */
	assert_int_equal(policy_subject_lookup(s, "session.server_id", NULL, &v), 0);
	assert_string_equal(v.s, "node-id");
	/* the session's own and the ones from labels */
	assert_int_equal(policy_subject_lookup(s, "session.kind", NULL, &v), 0);
	assert_string_equal(v.s, "k8s");
	assert_int_equal(policy_subject_lookup(s, "session.kubernetes_pod_name", NULL, &v), 0);
	assert_string_equal(v.s, "api-5d8");
	assert_int_equal(policy_subject_lookup(s, "session.kubernetes_pod_namespace", NULL, &v), 0);
	assert_string_equal(v.s, "prod");
	assert_int_equal(policy_subject_lookup(s, "session.kubernetes_users", NULL, &v), 0);
	assert_int_equal(v.type, PRED_LIST);
	assert_int_equal(v.n, 2);
	assert_string_equal(v.list[1], "system:admin");
	assert_int_equal(policy_subject_lookup(s, "session.kubernetes_groups", NULL, &v), 0);
	assert_int_equal(v.n, 0);
	assert_int_equal(policy_subject_lookup(s, "session.db_name", NULL, &v), 0);
	assert_string_equal(v.s, "");
	assert_int_equal(policy_subject_lookup(s, "session.cluster_name", NULL, &v), 0);
	assert_string_equal(v.s, "");
	assert_int_equal(policy_subject_lookup(s, "session.labels", "env", &v), 0);
	assert_string_equal(v.s, "prod");
	/* what is not there: a session field reads as missing, anything else is unknown */
	assert_int_equal(policy_subject_lookup(s, "session.nope", NULL, &v), -ENOENT);
	assert_int_equal(policy_subject_lookup(s, "nope", NULL, &v), -EINVAL);
	assert_int_equal(policy_subject_lookup(s, "session.participants", "k", &v), -EINVAL);
	policy_subject_free(s);
	store_session_clear(&row);

	/* a node session of a user not in the config, without session.end */
	row_of(&row, "mallory", "ssh", "web-2", "not json");
	assert_int_equal(policy_subject_new(&s, cfg_with_users(), &row, NULL), 0);
	assert_int_equal(policy_subject_lookup(s, "resource.kind", NULL, &v), 0);
	assert_string_equal(v.s, "node");
	assert_int_equal(policy_subject_lookup(s, "resource.metadata.name", NULL, &v), 0);
	assert_string_equal(v.s, "web-2");
	assert_int_equal(policy_subject_lookup(s, "user.spec.roles", NULL, &v), 0);
	assert_int_equal(v.n, 0);
	assert_int_equal(policy_subject_lookup(s, "session.participants", NULL, &v), 0);
	assert_int_equal(v.n, 1);
	assert_string_equal(v.list[0], "mallory");
	assert_int_equal(policy_subject_lookup(s, "session.exit_code", NULL, &v), 0);
	assert_int_equal(v.i, 3);
	assert_int_equal(policy_subject_lookup(s, "session.initial_command", NULL, &v), 0);
	assert_int_equal(v.n, 2);
	policy_subject_free(s);
	policy_subject_free(NULL);
	store_session_clear(&row);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_order_and_first_match),
	    cmocka_unit_test(test_kinds_and_no_match),
	    cmocka_unit_test(test_filters),
	    cmocka_unit_test(test_failing_filter),
	    cmocka_unit_test(test_subject_fields),
	};

	log_init("test", LOG_LVL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
