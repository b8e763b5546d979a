/*
 * Matching a completed session against inference policies: policies are tried
 * in alphabetical order of name; the first whose kinds hold the session's kind
 * and whose filter (lib/predicate.h) is true wins.
 *
 * What a filter sees of a session is one JSON tree, built once per session:
 *
 *   user.metadata.name        the session's user
 *   user.spec.roles           users.NAME.roles of collector.yaml
 *   user.spec.traits["k"]     users.NAME.traits.k (a list)
 *   resource.kind             "node", or "pod" for k8s sessions
 *   resource.metadata.name    the node's name, or the label kubernetes.pod
 *   resource.metadata.labels  the session's labels (the agent's node labels included)
 *   session.*                 every field of session.end, and the session's own
 *
 * Lists handed to the evaluator point into arrays made when the tree is built.
 */
#include "collector.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "log.h"
#include "predicate.h"

#define POLICY_FIELD_MAX 256
#define POLICY_LISTS_MAX 1024 /* arrays in one subject (256 traits at most, and a few) */

/* Session fields from labels (docs/summaries.md): session field, label, a list? */
static const struct {
	const char *field, *label;
	bool list;
} policy_label_fields[] = {
    {"kubernetes_pod_name", "kubernetes.pod", false},
    {"kubernetes_pod_namespace", "kubernetes.namespace", false},
    {"kubernetes_node_name", "kubernetes.node", false},
    {"kubernetes_cluster", "kubernetes.cluster", false},
    {"kubernetes_users", "kubernetes.users", true},
    {"kubernetes_groups", "kubernetes.groups", true},
    {"db_name", "db.name", false},
    {"db_service", "db.service", false},
};

/* ------------------------------------------------------------ policy sets */

static int policy_cmp(const void *a, const void *b)
{
	return strcmp(((const struct policy *)a)->name, ((const struct policy *)b)->name);
}

void policy_set_clear(struct policy_set *ps)
{
	if (!ps)
		return;
	for (size_t i = 0; i < ps->n; i++) {
		free(ps->v[i].name);
		free(ps->v[i].model);
		pred_free(ps->v[i].filter);
	}
	free(ps->v);
	memset(ps, 0, sizeof(*ps));
}

int policy_set_build(struct policy_set *ps, const struct resource *res, size_t n)
{
	char err[256];
	size_t i;
	int ret = 0;

	memset(ps, 0, sizeof(*ps));
	if (!n)
		return 0;
	ps->v = calloc(n, sizeof(*ps->v));
	if (!ps->v)
		return -ENOMEM;
	for (i = 0; i < n && !ret; i++) {
		const struct resource *r = &res[i];
		struct policy *p = &ps->v[ps->n];

		if (r->kind != RESOURCE_POLICY)
			continue;
		if (r->policy.filter) {
			err[0] = '\0';
			ret = pred_parse(r->policy.filter, pred_policy_fields, &p->filter, err,
					 sizeof(err));
			if (ret == -ENOMEM)
				break;
			if (ret) {
				log_error(
				    "inference_policy '%s': spec.filter no longer parses (%s): "
				    "the policy is left out",
				    r->name, err);
				ret = 0;
				continue;
			}
		}
		p->name = strdup(r->name);
		p->model = strdup(r->policy.model);
		p->kinds = r->policy.kinds;
		ps->n++;
		if (!p->name || !p->model)
			ret = -ENOMEM;
	}
	if (ret) {
		policy_set_clear(ps);
		return ret;
	}
	qsort(ps->v, ps->n, sizeof(*ps->v), policy_cmp);
	return 0;
}

/* ------------------------------------------------------------ subjects */

struct policy_list {
	const json_t *arr;
	const char **items;
	size_t n;
};

struct policy_subject {
	json_t *root;
	uint32_t kind_bit;
	char sid[40];
	struct policy_list lists[POLICY_LISTS_MAX];
	size_t n_lists;
};

static int policy_set_new(json_t *o, const char *key, json_t *v)
{
	return json_object_set_new(o, key, v) == 0 ? 0 : -ENOMEM;
}

/* key = v unless o has key already. */
static int policy_default(json_t *o, const char *key, json_t *v)
{
	if (json_object_get(o, key)) {
		json_decref(v);
		return 0;
	}
	return policy_set_new(o, key, v);
}

static json_t *policy_strv(char *const *v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < n; i++) {
		if (json_array_append_new(a, json_string(v[i]))) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

/* "a, b,c" as ["a","b","c"] (empty items dropped). */
static json_t *policy_split(const char *s)
{
	json_t *a = json_array();
	const char *p = s;

	while (a && p && *p) {
		size_t n = strcspn(p, ",");
		size_t b = 0, e = n;

		while (b < e && p[b] == ' ')
			b++;
		while (e > b && p[e - 1] == ' ')
			e--;
		if (e > b && json_array_append_new(a, json_stringn(p + b, e - b))) {
			json_decref(a);
			return NULL;
		}
		p += n;
		if (*p)
			p++;
	}
	return a;
}

static json_t *policy_user(const struct collector_config *cfg, const char *name)
{
	const struct collector_user *u = collector_config_user(cfg, name);
	json_t *traits = json_object(), *o;

	for (size_t i = 0; u && traits && i < u->n_traits; i++) {
		if (policy_set_new(traits, u->traits[i].key,
				   policy_strv(u->traits[i].values, u->traits[i].n_values))) {
			json_decref(traits);
			return NULL;
		}
	}
	o = json_pack("{s:{s:s},s:{s:o,s:o}}", "metadata", "name", name, "spec", "roles",
		      u ? policy_strv(u->roles, u->n_roles) : json_array(), "traits", traits);
	return o;
}

/* Arrays of strings as C arrays, made once: the evaluator's lists point into them. */
static int policy_index_lists(struct policy_subject *s, const json_t *v)
{
	const char *key;
	json_t *m;
	size_t i;
	int ret = 0;

	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, key, m)
		{
			ret = policy_index_lists(s, m);
			if (ret)
				return ret;
		}
		return 0;
	}
	if (!json_is_array(v))
		return 0;
	if (s->n_lists == POLICY_LISTS_MAX)
		return 0; /* looked up later as "no such field" */
	struct policy_list *l = &s->lists[s->n_lists];

	l->arr = v;
	l->n = json_array_size(v);
	l->items = calloc(l->n ? l->n : 1, sizeof(*l->items));
	if (!l->items)
		return -ENOMEM;
	s->n_lists++;
	json_array_foreach(v, i, m)
	{
		/* lists hold strings; anything else (a number in an odd label) reads as "" */
		l->items[i] = json_is_string(m) ? json_string_value(m) : "";
	}
	return ret;
}

void policy_subject_free(struct policy_subject *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_lists; i++)
		free(s->lists[i].items);
	json_decref(s->root);
	free(s);
}

/* The session.* fields: session.end's, then the session's own where session.end has none. */
static json_t *policy_session(const struct store_session *row, const char *end_line, json_t *labels)
{
	json_t *o = NULL, *ic;
	const char *v;
	int ret = 0;

	if (end_line) {
		o = json_loads(end_line, 0, NULL);
		if (o && !json_is_object(o)) {
			json_decref(o);
			o = NULL;
		}
		if (!o)
			log_warn("session %s: session.end line is not a JSON object: filters see "
				 "the session's own fields only",
				 row->sid);
	}
	if (!o)
		o = json_object();
	if (!o)
		return NULL;
	ic = row->initial_command_json ? json_loads(row->initial_command_json, 0, NULL) : NULL;
	if (ic && !json_is_array(ic)) {
		json_decref(ic);
		ic = NULL;
	}
	ret |= policy_default(o, "sid", json_string(row->sid));
	ret |= policy_default(o, "kind", json_string(row->kind ? row->kind : ""));
	ret |= policy_default(o, "user", json_string(row->user ? row->user : ""));
	ret |= policy_default(o, "login", json_string(row->login ? row->login : ""));
	ret |= policy_default(o, "server_hostname", json_string(row->node ? row->node : ""));
	ret |= policy_default(o, "node", json_string(row->node ? row->node : ""));
	ret |= policy_default(o, "participants", json_pack("[s]", row->user ? row->user : ""));
	ret |= policy_default(o, "initial_command", ic ? ic : json_array());
	ret |= policy_default(o, "exit_code", json_integer(row->exit_code));
	ret |= policy_default(o, "cluster_name", json_string(""));
	ret |= policy_default(o, "labels", json_incref(labels));
	for (size_t i = 0; i < sizeof(policy_label_fields) / sizeof(policy_label_fields[0]); i++) {
		v = json_string_value(json_object_get(labels, policy_label_fields[i].label));
		ret |= policy_default(o, policy_label_fields[i].field,
				      policy_label_fields[i].list ? policy_split(v ? v : "")
								  : json_string(v ? v : ""));
	}
	if (ret) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int policy_subject_new(struct policy_subject **out, const struct collector_config *cfg,
		       const struct store_session *row, const char *end_line)
{
	struct policy_subject *s = NULL;
	json_t *labels = NULL, *user = NULL, *session = NULL, *res = NULL;
	const char *pod, *name;
	bool k8s;
	int ret = -ENOMEM;

	*out = NULL;
	if (!row)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	snprintf(s->sid, sizeof(s->sid), "%s", row->sid);
	s->kind_bit = resource_session_kind_bit(row->kind);
	labels = row->labels_json ? json_loads(row->labels_json, 0, NULL) : NULL;
	if (labels && !json_is_object(labels)) {
		json_decref(labels);
		labels = NULL;
	}
	if (!labels)
		labels = json_object();
	if (!labels)
		goto out;
	k8s = row->kind && strcmp(row->kind, "k8s") == 0;
	pod = json_string_value(json_object_get(labels, "kubernetes.pod"));
	name = k8s && pod && *pod ? pod : row->node ? row->node : "";
	user = policy_user(cfg, row->user ? row->user : "");
	session = policy_session(row, end_line, labels);
	res = json_pack("{s:s,s:{s:s,s:O}}", "kind", k8s ? "pod" : "node", "metadata", "name", name,
			"labels", labels);
	if (!user || !session || !res)
		goto out;
	s->root = json_pack("{s:o,s:o,s:o}", "user", user, "resource", res, "session", session);
	user = session = res = NULL;
	if (!s->root)
		goto out;
	ret = policy_index_lists(s, s->root);
out:
	json_decref(labels);
	json_decref(user);
	json_decref(session);
	json_decref(res);
	if (ret) {
		policy_subject_free(s);
		return ret;
	}
	*out = s;
	return 0;
}

static int policy_value(const struct policy_subject *s, const json_t *v, struct pred_value *out)
{
	memset(out, 0, sizeof(*out));
	if (json_is_string(v)) {
		out->type = PRED_STRING;
		out->s = json_string_value(v);
	} else if (json_is_array(v)) {
		size_t i;

		for (i = 0; i < s->n_lists && s->lists[i].arr != v; i++)
			;
		if (i == s->n_lists)
			return -EINVAL;
		out->type = PRED_LIST;
		out->list = s->lists[i].items;
		out->n = s->lists[i].n;
	} else if (json_is_boolean(v)) {
		out->type = PRED_BOOL;
		out->b = json_is_true(v);
	} else if (json_is_integer(v)) {
		out->type = PRED_INT;
		out->i = json_integer_value(v);
	} else if (json_is_real(v)) {
		out->type = PRED_INT;
		out->i = (int64_t)json_real_value(v);
	} else if (json_is_null(v)) {
		out->type = PRED_STRING;
		out->s = "";
	} else {
		return -EINVAL; /* a map without a key */
	}
	return 0;
}

int policy_subject_lookup(void *subject, const char *field, const char *key, struct pred_value *out)
{
	const struct policy_subject *s = subject;
	const json_t *v = s->root;
	char path[POLICY_FIELD_MAX];
	char *seg, *save = NULL;

	if (!field || strlen(field) >= sizeof(path))
		return -EINVAL;
	snprintf(path, sizeof(path), "%s", field);
	for (seg = strtok_r(path, ".", &save); seg && v; seg = strtok_r(NULL, ".", &save))
		v = json_is_object(v) ? json_object_get(v, seg) : NULL;
	/* a session.* field this session lacks reads like a missing map key */
	if (!v)
		return strncmp(field, "session.", 8) == 0 ? -ENOENT : -EINVAL;
	if (key) {
		if (!json_is_object(v))
			return -EINVAL;
		v = json_object_get(v, key);
		if (!v)
			return -ENOENT;
	} else if (json_is_object(v)) {
		return -EINVAL;
	}
	return policy_value(s, v, out);
}

const struct policy *policy_match(const struct policy_set *ps, struct policy_subject *subj)
{
	const struct pred_env env = {.lookup = policy_subject_lookup, .ctx = subj};
	char err[256];
	bool yes;
	int ret;

	for (size_t i = 0; ps && subj && i < ps->n; i++) {
		const struct policy *p = &ps->v[i];

		if (!(p->kinds & subj->kind_bit))
			continue;
		if (!p->filter)
			return p;
		err[0] = '\0';
		yes = false;
		ret = pred_eval(p->filter, &env, &yes, err, sizeof(err));
		if (ret) {
			log_warn("session %s: inference_policy '%s': the filter fails (%s): taken "
				 "as false",
				 subj->sid, p->name, err[0] ? err : strerror(-ret));
			continue;
		}
		if (yes)
			return p;
	}
	return NULL;
}
