/*
 * Inference resources (docs/summaries.md): inference_model, inference_secret
 * and inference_policy as YAML documents, validated into struct resource and
 * stored as canonical JSON (which this same parser reads back: JSON is YAML).
 *
 * Every problem is one line naming the document (its place, kind and name),
 * the line, the field and what is wrong with it. Values of an
 * inference_secret are never quoted in a message, whatever the mistake.
 *
 * Creations and deletions are serialised by one lock, so that "the model a
 * policy names exists" and "no policy uses the model being removed" stay true
 * between the check and the write.
 */
#include "collector.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <yaml.h>

#include "log.h"
#include "predicate.h"
#include "util.h"

#define RESOURCE_VALUE_MAX   (16u << 10) /* bytes of a string value (a secret, a filter) */
#define RESOURCE_QUOTE_MAX   48		 /* bytes of a value quoted in a message */
#define RESOURCE_NODES_MAX   4096	 /* YAML nodes in one document */
#define RESOURCE_DEFAULTS_ON "inference_defaults"

static pthread_mutex_t resource_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const resource_kind_names[RESOURCE_KINDS] = {
    "inference_model", "inference_secret", "inference_policy"};
static const char *const resource_kind_short[RESOURCE_KINDS] = {"model", "secret", "policy"};
static const char *const resource_session_kinds[] = {"ssh", "k8s", "db", "local"};

const char *resource_kind_name(enum resource_kind k)
{
	return (unsigned int)k < RESOURCE_KINDS ? resource_kind_names[k] : "?";
}

int resource_kind_parse(const char *s, enum resource_kind *out)
{
	for (int k = 0; s && k < RESOURCE_KINDS; k++) {
		if (strcmp(s, resource_kind_names[k]) == 0 ||
		    strcmp(s, resource_kind_short[k]) == 0) {
			*out = (enum resource_kind)k;
			return 0;
		}
	}
	return -EINVAL;
}

uint32_t resource_session_kind_bit(const char *kind)
{
	for (size_t i = 0;
	     kind && i < sizeof(resource_session_kinds) / sizeof(*resource_session_kinds); i++) {
		if (strcmp(kind, resource_session_kinds[i]) == 0)
			return 1u << i;
	}
	return 0;
}

bool resource_name_valid(const char *name)
{
	size_t n;

	if (!name || !((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z') ||
		       (name[0] >= '0' && name[0] <= '9')))
		return false;
	n = strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-");
	return name[n] == '\0' && n <= RESOURCE_NAME_MAX;
}

void resource_clear(struct resource *r)
{
	if (!r)
		return;
	free(r->name);
	free(r->model.provider);
	free(r->model.model_id);
	free(r->model.base_url);
	free(r->model.secret_ref);
	free(r->model.region);
	free(r->policy.model);
	free(r->policy.filter);
	if (r->secret) {
		explicit_bzero(r->secret, strlen(r->secret));
		free(r->secret);
	}
	if (r->json) {
		explicit_bzero(r->json, strlen(r->json));
		free(r->json);
	}
	memset(r, 0, sizeof(*r));
}

void resource_array_free(struct resource *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		resource_clear(&v[i]);
	free(v);
}

/* ------------------------------------------------------------ messages */

/* One document being validated. */
struct res_ctx {
	yaml_document_t *doc;
	unsigned int index;
	int kind; /* enum resource_kind, or -1 while unknown */
	const char *name;
	char *err;
	size_t errlen;
};

static size_t res_line(const yaml_node_t *n)
{
	return n ? (size_t)n->start_mark.line + 1 : 0;
}

static int res_fail(const struct res_ctx *x, const yaml_node_t *n, const char *field,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int res_fail(const struct res_ctx *x, const yaml_node_t *n, const char *field,
		    const char *fmt, ...)
{
	char who[RESOURCE_NAME_MAX + 64], msg[400];
	size_t len;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (x->kind >= 0 && x->name)
		snprintf(who, sizeof(who), " (%s \"%s\")", resource_kind_names[x->kind], x->name);
	else if (x->kind >= 0)
		snprintf(who, sizeof(who), " (%s)", resource_kind_names[x->kind]);
	else if (x->name)
		snprintf(who, sizeof(who), " (\"%s\")", x->name);
	else
		who[0] = '\0';
	if (n)
		snprintf(x->err, x->errlen, "document %u%s, line %zu: %s%s%s", x->index, who,
			 res_line(n), field ? field : "", field ? ": " : "", msg);
	else
		snprintf(x->err, x->errlen, "document %u%s: %s%s%s", x->index, who,
			 field ? field : "", field ? ": " : "", msg);
	len = strlen(x->err);
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)x->err[i] < 0x20 || x->err[i] == 0x7f)
			x->err[i] = '?';
	}
	return -EINVAL;
}

/* A value for a message: quoted and cut, or nothing at all inside a secret. */
static const char *res_quote(const struct res_ctx *x, const yaml_node_t *n, char *buf, size_t len)
{
	const char *s;

	if (!n || n->type != YAML_SCALAR_NODE)
		return n && n->type == YAML_MAPPING_NODE ? "a mapping" : "a list";
	if (x->kind == RESOURCE_SECRET)
		return "a string (not shown: it may be the secret)";
	s = (const char *)n->data.scalar.value;
	if (n->data.scalar.length > RESOURCE_QUOTE_MAX)
		snprintf(buf, len, "\"%.*s...\"", RESOURCE_QUOTE_MAX, s);
	else
		snprintf(buf, len, "\"%s\"", s);
	return buf;
}

/* ------------------------------------------------------------ YAML nodes */

static bool res_null(const yaml_node_t *n)
{
	const char *s;

	if (!n || n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	s = (const char *)n->data.scalar.value;
	return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
	       !strcmp(s, "NULL");
}

static yaml_node_t *res_node(const struct res_ctx *x, int id)
{
	return yaml_document_get_node(x->doc, id);
}

/*
 * Every node of the document reached once: a node reached twice is an alias,
 * which could make a small text a huge tree (and a mapping may even hold
 * itself). Also caps the node count.
 */
static int res_no_aliases(const struct res_ctx *x, const yaml_node_t *root)
{
	size_t count = (size_t)(x->doc->nodes.top - x->doc->nodes.start);
	int *stack = NULL;
	bool *seen = NULL;
	size_t top = 0;
	int err = 0;

	if (count > RESOURCE_NODES_MAX)
		return res_fail(x, root, NULL, "more than %d YAML nodes", RESOURCE_NODES_MAX);
	seen = calloc(count + 1, sizeof(*seen));
	stack = calloc(count + 1, sizeof(*stack));
	if (!seen || !stack) {
		err = -ENOMEM;
		goto out;
	}
	stack[top++] = 1; /* the root */
	while (top && !err) {
		int id = stack[--top];
		yaml_node_t *n = res_node(x, id);

		if (!n)
			continue;
		if (seen[id]) {
			err = res_fail(x, n, NULL, "YAML aliases are not supported");
			break;
		}
		seen[id] = true;
		if (n->type == YAML_SEQUENCE_NODE) {
			for (yaml_node_item_t *it = n->data.sequence.items.start;
			     it < n->data.sequence.items.top && top < count; it++)
				stack[top++] = *it;
		} else if (n->type == YAML_MAPPING_NODE) {
			for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
			     p < n->data.mapping.pairs.top && top + 1 < count; p++) {
				stack[top++] = p->key;
				stack[top++] = p->value;
			}
		}
	}
out:
	free(seen);
	free(stack);
	return err;
}

/*
 * A mapping's keys must be strings from allowed, each once. Allowed keys
 * are listed in the message about an unknown one.
 */
static int res_keys(const struct res_ctx *x, const yaml_node_t *m, const char *path,
		    const char *const *allowed)
{
	char list[256] = "", field[160];
	size_t o = 0;

	for (size_t i = 0; allowed[i]; i++)
		o += (size_t)snprintf(list + o, o < sizeof(list) ? sizeof(list) - o : 0, "%s%s",
				      i ? ", " : "", allowed[i]);
	for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = res_node(x, p->key);
		const char *key;
		size_t i;

		if (!k || k->type != YAML_SCALAR_NODE || res_null(k))
			return res_fail(x, k, path, "keys must be strings");
		key = (const char *)k->data.scalar.value;
		snprintf(field, sizeof(field), "%s%s%.64s", path, *path ? "." : "", key);
		for (i = 0; allowed[i]; i++) {
			if (strcmp(key, allowed[i]) == 0)
				break;
		}
		/* a key is never a secret's value: it can be shown */
		if (!allowed[i])
			return res_fail(x, k, field, "unknown field (known: %s)", list);
		for (yaml_node_pair_t *p2 = m->data.mapping.pairs.start; p2 < p; p2++) {
			yaml_node_t *k2 = res_node(x, p2->key);

			if (k2 && k2->type == YAML_SCALAR_NODE &&
			    strcmp((const char *)k2->data.scalar.value, key) == 0)
				return res_fail(x, k, field, "given twice (first at line %zu)",
						res_line(k2));
		}
	}
	return 0;
}

/* The value of key in mapping m, NULL when absent (or null: "key:" with nothing). */
static yaml_node_t *res_get(const struct res_ctx *x, const yaml_node_t *m, const char *key)
{
	if (!m || m->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = res_node(x, p->key);

		if (k && k->type == YAML_SCALAR_NODE &&
		    strcmp((const char *)k->data.scalar.value, key) == 0) {
			yaml_node_t *v = res_node(x, p->value);

			return res_null(v) ? NULL : v;
		}
	}
	return NULL;
}

/* The key node of key in m (for lines of absent values). */
static yaml_node_t *res_key_node(const struct res_ctx *x, const yaml_node_t *m, const char *key)
{
	if (!m || m->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = res_node(x, p->key);

		if (k && k->type == YAML_SCALAR_NODE &&
		    strcmp((const char *)k->data.scalar.value, key) == 0)
			return k;
	}
	return NULL;
}

static int res_mapping(const struct res_ctx *x, const yaml_node_t *n, const yaml_node_t *parent,
		       const char *field, bool required)
{
	char q[RESOURCE_QUOTE_MAX + 8];

	if (!n)
		return required ? res_fail(x, parent, field, "required (a mapping)") : 0;
	if (n->type != YAML_MAPPING_NODE)
		return res_fail(x, n, field, "expected a mapping, got %s",
				res_quote(x, n, q, sizeof(q)));
	return 0;
}

/* A string value (NUL-free, at most max bytes); absent: NULL, or an error when required. */
static int res_string(const struct res_ctx *x, const yaml_node_t *n, const yaml_node_t *parent,
		      const char *field, bool required, size_t max, char **out)
{
	char q[RESOURCE_QUOTE_MAX + 8];

	*out = NULL;
	if (!n)
		return required ? res_fail(x, parent, field, "required") : 0;
	if (n->type != YAML_SCALAR_NODE)
		return res_fail(x, n, field, "expected a string, got %s",
				res_quote(x, n, q, sizeof(q)));
	if (n->data.scalar.length == 0)
		return required ? res_fail(x, n, field, "must not be empty") : 0;
	if (strlen((const char *)n->data.scalar.value) != n->data.scalar.length)
		return res_fail(x, n, field, "holds a NUL character");
	if (n->data.scalar.length > max)
		return res_fail(x, n, field, "longer than %zu bytes", max);
	*out = strdup((const char *)n->data.scalar.value);
	return *out ? 0 : -ENOMEM;
}

/* A number in [lo, hi]. */
static int res_number(const struct res_ctx *x, const yaml_node_t *n, const char *field, double lo,
		      double hi, double *out)
{
	char q[RESOURCE_QUOTE_MAX + 8], *end;
	const char *s;
	double v;

	if (n->type != YAML_SCALAR_NODE)
		return res_fail(x, n, field, "expected a number, got %s",
				res_quote(x, n, q, sizeof(q)));
	s = (const char *)n->data.scalar.value;
	errno = 0;
	v = strtod(s, &end);
	if (!*s || *end || errno || !isfinite(v) || strspn(s, "0123456789.-+eE") != strlen(s))
		return res_fail(x, n, field, "expected a number, got %s",
				res_quote(x, n, q, sizeof(q)));
	if (v < lo || v > hi)
		return res_fail(x, n, field, "must be from %g to %g, not %s", lo, hi,
				res_quote(x, n, q, sizeof(q)));
	*out = v;
	return 0;
}

/* A whole number in [lo, hi] (digits only). */
static int res_uint(const struct res_ctx *x, const yaml_node_t *n, const char *field, uint64_t lo,
		    uint64_t hi, uint64_t *out)
{
	char q[RESOURCE_QUOTE_MAX + 8];
	const char *s;
	uint64_t v = 0;

	if (n->type != YAML_SCALAR_NODE)
		return res_fail(x, n, field, "expected a whole number, got %s",
				res_quote(x, n, q, sizeof(q)));
	s = (const char *)n->data.scalar.value;
	if (!*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 18)
		return res_fail(x, n, field, "expected a whole number, got %s",
				res_quote(x, n, q, sizeof(q)));
	for (; *s; s++)
		v = v * 10 + (uint64_t)(*s - '0');
	if (v < lo || v > hi)
		return res_fail(x, n, field, "must be from %llu to %llu, not %s",
				(unsigned long long)lo, (unsigned long long)hi,
				res_quote(x, n, q, sizeof(q)));
	*out = v;
	return 0;
}

static int res_jset(json_t *o, const char *key, json_t *v)
{
	return json_object_set_new(o, key, v) == 0 ? 0 : -ENOMEM;
}

/* ------------------------------------------------------------ kinds */

static int res_model_provider(const struct res_ctx *x, const yaml_node_t *spec, struct resource *r,
			      json_t *js, const char *which)
{
	static const char *const openai_keys[] = {"openai_model_id", "api_key_secret_ref",
						  "base_url", "temperature", NULL};
	static const char *const bedrock_keys[] = {"region", "bedrock_model_id", "temperature",
						   NULL};
	static const char *const none[] = {NULL};
	bool openai = strcmp(which, "openai") == 0, bedrock = strcmp(which, "bedrock") == 0;
	yaml_node_t *p = res_get(x, spec, which), *pk = res_key_node(x, spec, which), *v;
	char field[64], q[RESOURCE_QUOTE_MAX + 8];
	json_t *jp = json_object();
	int err;

	if (!jp)
		return -ENOMEM;
	err = res_jset(js, which, jp);
	if (err)
		return err;
	r->model.provider = strdup(which);
	if (!r->model.provider)
		return -ENOMEM;
	snprintf(field, sizeof(field), "spec.%s", which);
	if (!p)
		return openai || bedrock ? res_fail(x, pk, field, "expected a mapping") : 0;
	err = res_mapping(x, p, spec, field, true);
	if (!err)
		err = res_keys(x, p, field, openai ? openai_keys : bedrock ? bedrock_keys : none);
	if (err || (!openai && !bedrock))
		return err;

	snprintf(field, sizeof(field), "spec.%s.%s", which,
		 openai ? "openai_model_id" : "bedrock_model_id");
	err = res_string(x, res_get(x, p, openai ? "openai_model_id" : "bedrock_model_id"), p,
			 field, true, 256, &r->model.model_id);
	if (!err)
		err = res_jset(jp, openai ? "openai_model_id" : "bedrock_model_id",
			       json_string(r->model.model_id));
	if (!err && openai) {
		v = res_get(x, p, "api_key_secret_ref");
		err = res_string(x, v, p, "spec.openai.api_key_secret_ref", false,
				 RESOURCE_NAME_MAX, &r->model.secret_ref);
		if (!err && r->model.secret_ref && !resource_name_valid(r->model.secret_ref))
			err = res_fail(x, v, "spec.openai.api_key_secret_ref",
				       "%s is not a resource name", res_quote(x, v, q, sizeof(q)));
		if (!err && r->model.secret_ref) {
			r->ref_line = res_line(v);
			err = res_jset(jp, "api_key_secret_ref", json_string(r->model.secret_ref));
		}
		v = res_get(x, p, "base_url");
		if (!err)
			err = res_string(x, v, p, "spec.openai.base_url", false, 2048,
					 &r->model.base_url);
		if (!err && r->model.base_url && strncmp(r->model.base_url, "https://", 8) != 0 &&
		    strncmp(r->model.base_url, "http://", 7) != 0)
			err = res_fail(x, v, "spec.openai.base_url",
				       "must start with https:// or http://, not %s",
				       res_quote(x, v, q, sizeof(q)));
		if (!err && r->model.base_url)
			err = res_jset(jp, "base_url", json_string(r->model.base_url));
	}
	if (!err && bedrock) {
		v = res_get(x, p, "region");
		err = res_string(x, v, p, "spec.bedrock.region", true, 64, &r->model.region);
		if (!err && strspn(r->model.region, "abcdefghijklmnopqrstuvwxyz0123456789-") !=
				strlen(r->model.region))
			err = res_fail(x, v, "spec.bedrock.region",
				       "%s is not an AWS region (like us-east-1)",
				       res_quote(x, v, q, sizeof(q)));
		if (!err)
			err = res_jset(jp, "region", json_string(r->model.region));
	}
	v = res_get(x, p, "temperature");
	if (!err && v) {
		/* the providers' own ranges: OpenAI takes 0..2, Bedrock's Converse 0..1 */
		snprintf(field, sizeof(field), "spec.%s.temperature", which);
		err = res_number(x, v, field, 0, strcmp(which, "bedrock") == 0 ? 1 : 2,
				 &r->model.temperature);
		if (!err)
			err = res_jset(jp, "temperature", json_real(r->model.temperature));
	}
	return err;
}

static int res_model(const struct res_ctx *x, const yaml_node_t *spec, struct resource *r,
		     json_t *js)
{
	static const char *const keys[] = {"openai",
					   "bedrock",
					   "builtin",
					   "max_session_length_bytes",
					   "max_tokens_per_day",
					   "timeout_seconds",
					   "max_retries",
					   NULL};
	static const char *const providers[] = {"openai", "bedrock", "builtin"};
	const char *which = NULL;
	yaml_node_t *v;
	uint64_t u;
	int err;

	err = res_keys(x, spec, "spec", keys);
	if (err)
		return err;
	for (size_t i = 0; i < 3; i++) {
		if (!res_key_node(x, spec, providers[i]))
			continue;
		if (which)
			return res_fail(x, res_key_node(x, spec, providers[i]), "spec",
					"give one of openai, bedrock and builtin, not both %s and "
					"%s",
					which, providers[i]);
		which = providers[i];
	}
	if (!which)
		return res_fail(x, spec, "spec", "one of openai, bedrock or builtin is required");
	err = res_model_provider(x, spec, r, js, which);
	if (err)
		return err;

	r->model.max_session_length_bytes = RESOURCE_LENGTH_DEFAULT;
	v = res_get(x, spec, "max_session_length_bytes");
	if (v) {
		err = res_uint(x, v, "spec.max_session_length_bytes", 1024, 1u << 30,
			       &r->model.max_session_length_bytes);
		if (!err)
			err = res_jset(js, "max_session_length_bytes",
				       json_integer((json_int_t)r->model.max_session_length_bytes));
	}
	v = res_get(x, spec, "max_tokens_per_day");
	if (!err && v) {
		err = res_uint(x, v, "spec.max_tokens_per_day", 0, 1000000000000000ull,
			       &r->model.max_tokens_per_day);
		if (!err)
			err = res_jset(js, "max_tokens_per_day",
				       json_integer((json_int_t)r->model.max_tokens_per_day));
	}
	v = res_get(x, spec, "timeout_seconds");
	if (!err && v) {
		err = res_uint(x, v, "spec.timeout_seconds", 1, 3600, &u);
		r->model.timeout_s = (uint32_t)u;
		if (!err)
			err = res_jset(js, "timeout_seconds", json_integer((json_int_t)u));
	}
	v = res_get(x, spec, "max_retries");
	if (!err && v) {
		err = res_uint(x, v, "spec.max_retries", 0, 20, &u);
		r->model.max_retries = (uint32_t)u;
		r->model.have_max_retries = true;
		if (!err)
			err = res_jset(js, "max_retries", json_integer((json_int_t)u));
	}
	if (!err && (!r->model.model_id)) {
		r->model.model_id = strdup("");
		if (!r->model.model_id)
			err = -ENOMEM;
	}
	return err;
}

static int res_secret(const struct res_ctx *x, const yaml_node_t *spec, struct resource *r,
		      json_t *js)
{
	static const char *const keys[] = {"value", NULL};
	int err;

	err = res_keys(x, spec, "spec", keys);
	if (!err)
		err = res_string(x, res_get(x, spec, "value"), spec, "spec.value", true,
				 RESOURCE_VALUE_MAX, &r->secret);
	if (!err)
		err = res_jset(js, "value", json_string(r->secret));
	if (err == -ENOMEM)
		return err;
	if (!err && !json_object_get(js, "value"))
		err = res_fail(x, spec, "spec.value", "must be UTF-8 text");
	return err;
}

static int res_policy(const struct res_ctx *x, const yaml_node_t *spec, struct resource *r,
		      json_t *js)
{
	static const char *const keys[] = {"kinds", "model", "filter", NULL};
	char q[RESOURCE_QUOTE_MAX + 8], field[32], perr[256];
	yaml_node_t *kinds, *v;
	json_t *jk = json_array();
	struct pred_expr *e = NULL;
	size_t i = 0;
	int err;

	if (!jk)
		return -ENOMEM;
	err = res_jset(js, "kinds", jk);
	if (!err)
		err = res_keys(x, spec, "spec", keys);
	if (err)
		return err;
	kinds = res_get(x, spec, "kinds");
	if (!kinds)
		return res_fail(x, spec, "spec.kinds",
				"required: a list of session kinds (" RESOURCE_SESSION_KIND_NAMES
				")");
	if (kinds->type != YAML_SEQUENCE_NODE)
		return res_fail(x, kinds, "spec.kinds",
				"expected a list of session kinds (" RESOURCE_SESSION_KIND_NAMES
				"), got %s",
				res_quote(x, kinds, q, sizeof(q)));
	for (yaml_node_item_t *it = kinds->data.sequence.items.start;
	     it < kinds->data.sequence.items.top; it++, i++) {
		yaml_node_t *k = res_node(x, *it);
		uint32_t bit;

		snprintf(field, sizeof(field), "spec.kinds[%zu]", i);
		bit = k && k->type == YAML_SCALAR_NODE
			  ? resource_session_kind_bit((const char *)k->data.scalar.value)
			  : 0;
		if (!bit)
			return res_fail(x, k, field,
					"%s is not a session kind (" RESOURCE_SESSION_KIND_NAMES
					")",
					res_quote(x, k, q, sizeof(q)));
		if (r->policy.kinds & bit)
			return res_fail(x, k, field, "%s is listed twice",
					res_quote(x, k, q, sizeof(q)));
		r->policy.kinds |= bit;
		err = json_array_append_new(jk, json_string((const char *)k->data.scalar.value));
		if (err)
			return -ENOMEM;
	}
	if (!r->policy.kinds)
		return res_fail(x, kinds, "spec.kinds",
				"name at least one session kind (" RESOURCE_SESSION_KIND_NAMES ")");
	v = res_get(x, spec, "model");
	err = res_string(x, v, spec, "spec.model", true, RESOURCE_NAME_MAX, &r->policy.model);
	if (!err && !resource_name_valid(r->policy.model))
		err = res_fail(x, v, "spec.model", "%s is not a resource name",
			       res_quote(x, v, q, sizeof(q)));
	if (err)
		return err;
	r->ref_line = res_line(v);
	err = res_jset(js, "model", json_string(r->policy.model));
	v = res_get(x, spec, "filter");
	if (!err)
		err = res_string(x, v, spec, "spec.filter", false, PRED_MAX_LEN, &r->policy.filter);
	if (err || !r->policy.filter)
		return err;
	perr[0] = '\0';
	err = pred_parse(r->policy.filter, pred_policy_fields, &e, perr, sizeof(perr));
	pred_free(e);
	if (err == -ENOMEM)
		return err;
	if (err)
		return res_fail(x, v, "spec.filter", "%s", perr[0] ? perr : "does not parse");
	return res_jset(js, "filter", json_string(r->policy.filter));
}

/* metadata: name (required), description, labels; created/updated are read-only and ignored. */
static int res_metadata(struct res_ctx *x, const yaml_node_t *root, struct resource *r, json_t *jm)
{
	static const char *const keys[] = {"name",    "description", "labels",
					   "created", "updated",     NULL};
	char q[RESOURCE_QUOTE_MAX + 8], *desc = NULL, field[96];
	yaml_node_t *md = res_get(x, root, "metadata"), *name, *labels, *v;
	json_t *jl;
	int err;

	err = res_mapping(x, md, root, "metadata", true);
	if (err)
		return err;
	name = res_get(x, md, "name");
	err = res_string(x, name, md, "metadata.name", true, RESOURCE_NAME_MAX, &r->name);
	if (err)
		return err;
	if (!resource_name_valid(r->name))
		return res_fail(x, name, "metadata.name",
				"%s is not a resource name (letters, digits, '.', '_', '-'; at "
				"most %d; starting with a letter or a digit)",
				res_quote(x, name, q, sizeof(q)), RESOURCE_NAME_MAX);
	x->name = r->name;
	err = res_keys(x, md, "metadata", keys);
	if (!err)
		err = res_jset(jm, "name", json_string(r->name));
	v = res_get(x, md, "description");
	if (!err)
		err = res_string(x, v, md, "metadata.description", false, 4096, &desc);
	if (!err && desc) {
		err = res_jset(jm, "description", json_string(desc));
		if (!err && !json_object_get(jm, "description"))
			err = res_fail(x, v, "metadata.description", "must be UTF-8 text");
	}
	free(desc);
	labels = res_get(x, md, "labels");
	if (err || !labels)
		return err;
	if (labels->type != YAML_MAPPING_NODE)
		return res_fail(x, labels, "metadata.labels", "expected a mapping of strings");
	jl = json_object();
	err = res_jset(jm, "labels", jl);
	for (yaml_node_pair_t *p = labels->data.mapping.pairs.start;
	     !err && p < labels->data.mapping.pairs.top; p++) {
		yaml_node_t *k = res_node(x, p->key);
		char *val = NULL;

		if (!k || k->type != YAML_SCALAR_NODE || !k->data.scalar.length)
			return res_fail(x, k, "metadata.labels", "keys must be strings");
		snprintf(field, sizeof(field), "metadata.labels.%.64s",
			 (const char *)k->data.scalar.value);
		err = res_string(x, res_node(x, p->value), k, field, false, 1024, &val);
		if (!err)
			err = res_jset(jl, (const char *)k->data.scalar.value,
				       json_string(val ? val : ""));
		free(val);
	}
	return err;
}

/* One document: its root is a mapping (checked by the caller). */
static int res_document(struct res_ctx *x, const yaml_node_t *root, struct resource *r)
{
	/* status: what GET adds (today's token usage), read-only and ignored */
	static const char *const keys[] = {"kind", "version", "metadata", "spec", "status", NULL};
	char q[RESOURCE_QUOTE_MAX + 8], *kind = NULL, *version = NULL;
	enum resource_kind k;
	yaml_node_t *kn, *vn, *spec;
	json_t *j = NULL, *jm, *js;
	int err;

	/* the kind and the name first: every later message names them */
	kn = res_get(x, root, "kind");
	err = res_string(x, kn, root, "kind", true, 64, &kind);
	if (err)
		goto out;
	if (resource_kind_parse(kind, &k) || strcmp(kind, resource_kind_names[k]) != 0) {
		err = res_fail(x, kn, "kind",
			       "unknown kind %s (inference_model, inference_secret or "
			       "inference_policy)",
			       res_quote(x, kn, q, sizeof(q)));
		goto out;
	}
	x->kind = (int)k;
	r->kind = k;
	j = json_object();
	jm = json_object();
	js = json_object();
	if (!j || res_jset(j, "kind", json_string(resource_kind_names[k])) ||
	    res_jset(j, "version", json_string("v1")) || res_jset(j, "metadata", jm) ||
	    res_jset(j, "spec", js)) {
		json_decref(j);
		j = NULL;
		err = -ENOMEM;
		goto out;
	}
	err = res_metadata(x, root, r, jm);
	if (!err)
		err = res_keys(x, root, "", keys);
	if (err)
		goto out;
	vn = res_get(x, root, "version");
	err = res_string(x, vn, root, "version", true, 16, &version);
	if (!err && strcmp(version, "v1") != 0)
		err = res_fail(x, vn, "version", "only v1 is known, not %s",
			       res_quote(x, vn, q, sizeof(q)));
	if (err)
		goto out;
	spec = res_get(x, root, "spec");
	err = res_mapping(x, spec, root, "spec", r->kind != RESOURCE_MODEL);
	if (err)
		goto out;
	if (!spec) {
		err = res_fail(x, root, "spec",
			       "required (a mapping naming openai, bedrock or "
			       "builtin)");
		goto out;
	}
	switch (r->kind) {
	case RESOURCE_MODEL:
		err = res_model(x, spec, r, js);
		break;
	case RESOURCE_SECRET:
		err = res_secret(x, spec, r, js);
		break;
	default:
		err = res_policy(x, spec, r, js);
		break;
	}
	if (err)
		goto out;
	r->json = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(10));
	if (!r->json)
		err = -ENOMEM;
out:
	if (j && r->kind == RESOURCE_SECRET) {
		/* wipe the value out of jansson's copy before it is freed */
		json_t *v = json_object_get(json_object_get(j, "spec"), "value");

		if (json_is_string(v))
			explicit_bzero((char *)json_string_value(v), json_string_length(v));
	}
	json_decref(j);
	free(kind);
	free(version);
	return err;
}

/* libyaml's complaint, without quoting the text (it may be a secret's). */
static int res_yaml_error(const yaml_parser_t *p, const char *text, unsigned int index, char *err,
			  size_t errlen)
{
	size_t line = (size_t)p->problem_mark.line + 1;

	if (p->error == YAML_MEMORY_ERROR)
		return -ENOMEM;
	if (p->error == YAML_READER_ERROR) {
		/* the reader reports a byte offset, not a mark */
		line = 1;
		for (size_t i = 0; i < p->problem_offset && text[i]; i++)
			line += text[i] == '\n';
	}
	snprintf(err, errlen, "document %u, line %zu: invalid YAML: %s%s%s", index, line,
		 p->problem ? p->problem : "syntax error", p->context ? " " : "",
		 p->context ? p->context : "");
	return -EINVAL;
}

int resource_parse(const char *text, size_t len, struct resource **out, size_t *n, char *err,
		   size_t errlen)
{
	struct resource *v = NULL;
	yaml_parser_t yp;
	yaml_document_t doc;
	bool have_parser = false;
	unsigned int index = 0;
	size_t count = 0, i;
	int ret = 0;

	*out = NULL;
	*n = 0;
	err[0] = '\0';
	if (!text || len > RESOURCE_YAML_MAX) {
		snprintf(err, errlen, "more than %u bytes of YAML", RESOURCE_YAML_MAX);
		return -EINVAL;
	}
	if (memchr(text, '\0', len)) {
		snprintf(err, errlen, "the YAML holds a NUL character");
		return -EINVAL;
	}
	v = calloc(RESOURCE_DOCS_MAX, sizeof(*v));
	if (!v || !yaml_parser_initialize(&yp)) {
		free(v);
		return -ENOMEM;
	}
	have_parser = true;
	yaml_parser_set_input_string(&yp, (const unsigned char *)text, len);
	for (;;) {
		struct res_ctx x = {.doc = &doc, .kind = -1, .err = err, .errlen = errlen};
		yaml_node_t *root;

		index++;
		if (!yaml_parser_load(&yp, &doc)) {
			ret = res_yaml_error(&yp, text, index, err, errlen);
			break;
		}
		x.index = index;
		root = yaml_document_get_root_node(&doc);
		if (!root) {
			yaml_document_delete(&doc);
			break; /* the end of the stream */
		}
		if (res_null(root)) {
			yaml_document_delete(&doc); /* an empty document ("---" twice) */
			continue;
		}
		ret = res_no_aliases(&x, root);
		if (!ret && root->type != YAML_MAPPING_NODE)
			ret = res_fail(&x, root, NULL,
				       "expected a mapping with kind, version, metadata and spec");
		if (!ret && count == RESOURCE_DOCS_MAX)
			ret = res_fail(&x, root, NULL, "more than %d resources in one go",
				       RESOURCE_DOCS_MAX);
		if (!ret) {
			v[count].doc = index;
			v[count].line = res_line(root);
			ret = res_document(&x, root, &v[count]);
			count++;
		}
		if (!ret) {
			/* the same resource twice in one text is a mistake either way */
			for (i = 0; i + 1 < count; i++) {
				if (v[i].kind == v[count - 1].kind &&
				    strcmp(v[i].name, v[count - 1].name) == 0) {
					ret = res_fail(
					    &x, res_get(&x, res_get(&x, root, "metadata"), "name"),
					    "metadata.name", "also in document %u", v[i].doc);
					break;
				}
			}
		}
		yaml_document_delete(&doc);
		if (ret)
			break;
	}
	if (!ret && count == 0) {
		snprintf(err, errlen, "no resource in the YAML (empty?)");
		ret = -EINVAL;
	}
	if (ret == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	if (have_parser)
		yaml_parser_delete(&yp);
	if (ret) {
		resource_array_free(v, count);
		return ret;
	}
	*out = v;
	*n = count;
	return 0;
}

int resource_from_store(const struct store_resource *r, struct resource *out)
{
	struct resource *v = NULL;
	size_t n = 0;
	char err[512];
	int ret;

	memset(out, 0, sizeof(*out));
	if (!r || !r->json)
		return -EINVAL;
	ret = resource_parse(r->json, strlen(r->json), &v, &n, err, sizeof(err));
	if (ret == 0 && (n != 1 || strcmp(resource_kind_name(v[0].kind), r->kind) != 0 ||
			 strcmp(v[0].name, r->name) != 0))
		ret = -EBADMSG;
	if (ret && ret != -ENOMEM) {
		log_error("stored %s '%s' does not read back: %s", r->kind, r->name ? r->name : "",
			  ret == -EBADMSG ? "another resource's document" : err);
		ret = -EBADMSG;
	}
	if (!ret) {
		*out = v[0];
		memset(&v[0], 0, sizeof(v[0]));
	}
	resource_array_free(v, n);
	return ret;
}

/* ------------------------------------------------------------ create, delete */

/* Whether kind/name is among v (other than skip) or stored. 1, 0 or -errno. */
static int resource_exists(struct store *st, const struct store_ops *ops, const struct resource *v,
			   size_t n, enum resource_kind kind, const char *name)
{
	struct store_resource sr = {0};
	int ret;

	for (size_t i = 0; i < n; i++) {
		if (v[i].kind == kind && strcmp(v[i].name, name) == 0)
			return 1;
	}
	ret = ops->resource_get(st, resource_kind_name(kind), name, &sr);
	store_resource_clear(&sr);
	if (ret == -ENOENT)
		return 0;
	return ret < 0 ? ret : 1;
}

static int resource_say(int *status, int code, char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int resource_say(int *status, int code, char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	*status = code;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return 0;
}

int resource_create(struct store *st, const struct store_ops *ops, const char *text, size_t len,
		    bool replace, struct resource **out, size_t *n, int *status, char *why,
		    size_t whylen)
{
	struct store_resource *sr = NULL;
	struct resource *v = NULL;
	size_t count = 0, conflict = 0, i;
	int ret;

	*out = NULL;
	*n = 0;
	*status = 500;
	why[0] = '\0';
	ret = resource_parse(text, len, &v, &count, why, whylen);
	if (ret == -EINVAL) {
		*status = 400; /* why holds the parser's line */
		return 0;
	}
	if (ret)
		return ret;
	pthread_mutex_lock(&resource_lock);
	for (i = 0; i < count; i++) {
		const struct resource *r = &v[i];
		/* a policy names a model, a model (maybe) a secret */
		enum resource_kind want =
		    r->kind == RESOURCE_POLICY ? RESOURCE_MODEL : RESOURCE_SECRET;
		const char *ref = r->kind == RESOURCE_POLICY  ? r->policy.model
				  : r->kind == RESOURCE_MODEL ? r->model.secret_ref
							      : NULL;

		if (!ref)
			continue;
		ret = resource_exists(st, ops, v, count, want, ref);
		if (ret < 0)
			goto out;
		if (ret == 0) {
			ret = resource_say(
			    status, 400, why, whylen,
			    "document %u (%s \"%s\"), line %zu: %s: no %s \"%s\" in this text or "
			    "on "
			    "the collector",
			    r->doc, resource_kind_name(r->kind), r->name, r->ref_line,
			    r->kind == RESOURCE_POLICY ? "spec.model"
						       : "spec.openai.api_key_secret_ref",
			    resource_kind_name(want), ref);
			goto out;
		}
	}
	for (i = 0; i < count && replace; i++) {
		ret = resource_exists(st, ops, NULL, 0, v[i].kind, v[i].name);
		if (ret < 0)
			goto out;
		v[i].replaced = ret == 1;
	}
	ret = -ENOMEM;
	sr = calloc(count, sizeof(*sr));
	if (!sr)
		goto out;
	for (i = 0; i < count; i++) {
		snprintf(sr[i].kind, sizeof(sr[i].kind), "%s", resource_kind_name(v[i].kind));
		sr[i].name = v[i].name;
		sr[i].json = v[i].json;
	}
	ret = ops->resource_put(st, sr, count, replace, &conflict);
	if (ret == -EEXIST && conflict < count) {
		ret = resource_say(status, 409, why, whylen,
				   "document %u (%s \"%s\"): it exists already (--force replaces "
				   "it)",
				   v[conflict].doc, resource_kind_name(v[conflict].kind),
				   v[conflict].name);
		goto out;
	}
	if (ret) {
		snprintf(why, whylen, "storing the resources: %s", strerror(-ret));
		goto out;
	}
	for (i = 0; i < count; i++)
		log_info("%s %s '%s'", v[i].replaced ? "replaced" : "created",
			 resource_kind_name(v[i].kind), v[i].name);
	*status = 201;
	*out = v;
	*n = count;
	v = NULL;
	count = 0;
out:
	pthread_mutex_unlock(&resource_lock);
	free(sr);
	resource_array_free(v, count);
	return ret < 0 ? ret : 0;
}

/* The first stored resource of kind whose reference is name (a user of it). */
struct resource_user_find {
	enum resource_kind kind;
	const char *name;
	char user[RESOURCE_NAME_MAX + 1];
};

static int resource_user_cb(void *ctx, const struct store_resource *sr)
{
	struct resource_user_find *f = ctx;
	struct resource r;
	const char *ref;
	int ret;

	ret = resource_from_store(sr, &r);
	if (ret == -EBADMSG)
		return 0; /* logged; it cannot use anything */
	if (ret)
		return ret;
	ref = r.kind == RESOURCE_POLICY ? r.policy.model : r.model.secret_ref;
	if (ref && strcmp(ref, f->name) == 0 && !f->user[0])
		snprintf(f->user, sizeof(f->user), "%s", r.name);
	resource_clear(&r);
	return 0;
}

int resource_delete(struct store *st, const struct store_ops *ops, enum resource_kind kind,
		    const char *name, int *status, char *why, size_t whylen)
{
	struct resource_user_find f = {.name = name};
	int ret = 0;

	*status = 500;
	why[0] = '\0';
	if ((unsigned int)kind >= RESOURCE_KINDS || !resource_name_valid(name))
		return resource_say(status, 400, why, whylen, "not a resource name");
	pthread_mutex_lock(&resource_lock);
	if (kind != RESOURCE_POLICY) {
		f.kind = kind == RESOURCE_MODEL ? RESOURCE_POLICY : RESOURCE_MODEL;
		ret = ops->resource_list(st, resource_kind_name(f.kind), resource_user_cb, &f);
		if (ret)
			goto out;
		if (f.user[0]) {
			resource_say(status, 409, why, whylen,
				     "%s \"%s\" is used by %s \"%s\": change or remove that first",
				     resource_kind_name(kind), name, resource_kind_name(f.kind),
				     f.user);
			goto out;
		}
	}
	ret = ops->resource_delete(st, resource_kind_name(kind), name);
	if (ret == -ENOENT) {
		ret = resource_say(status, 404, why, whylen, "no %s \"%s\"",
				   resource_kind_name(kind), name);
		goto out;
	}
	if (ret)
		goto out;
	log_info("removed %s '%s'", resource_kind_name(kind), name);
	*status = 200;
out:
	if (ret < 0)
		snprintf(why, whylen, "removing %s \"%s\": %s", resource_kind_name(kind), name,
			 strerror(-ret));
	pthread_mutex_unlock(&resource_lock);
	return ret < 0 ? ret : 0;
}

static int resource_count_cb(void *ctx, const struct store_resource *r)
{
	(void)r;
	(*(size_t *)ctx)++;
	return 0;
}

int resource_install_defaults(struct store *st, const struct store_ops *ops, bool *installed)
{
	static const char defaults[] =
	    "kind: inference_model\n"
	    "version: v1\n"
	    "metadata:\n"
	    "  name: builtin\n"
	    "  description: the offline summarizer (no network, no tokens)\n"
	    "spec:\n"
	    "  builtin: {}\n"
	    "---\n"
	    "kind: inference_policy\n"
	    "version: v1\n"
	    "metadata:\n"
	    "  name: default\n"
	    "  description: every session through the offline summarizer; replace or remove it\n"
	    "spec:\n"
	    "  kinds: [ssh, k8s, db, local]\n"
	    "  model: builtin\n";
	struct resource *v = NULL;
	char *flag = NULL, now[40], why[512];
	size_t count = 0, n = 0;
	int status = 0, ret;

	*installed = false;
	ret = ops->meta_get(st, RESOURCE_DEFAULTS_ON, &flag);
	free(flag);
	if (ret != -ENOENT)
		return ret; /* done once already (0), or the store failed */
	ret = ops->resource_list(st, NULL, resource_count_cb, &count);
	if (ret)
		return ret;
	if (count == 0) {
		ret = resource_create(st, ops, defaults, sizeof(defaults) - 1, false, &v, &n,
				      &status, why, sizeof(why));
		resource_array_free(v, n);
		if (!ret && status != 201) {
			log_error("the default inference resources: %s", why);
			ret = -EIO;
		}
		if (ret)
			return ret;
		*installed = true;
	}
	util_rfc3339(util_now_ns(), now, sizeof(now));
	return ops->meta_set(st, RESOURCE_DEFAULTS_ON, now);
}
