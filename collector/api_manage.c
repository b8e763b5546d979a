/*
 * The resources and summaries API of docs/api.md: inference resources
 * (create, read, remove), a session's summary, summaries on demand and the
 * job queue. http.c has checked the route, the method and the caller's role;
 * here an access token is narrowed to its own sessions, and what it may not
 * see answers exactly like what does not exist.
 *
 * An inference_secret is shown by its metadata only: its spec never leaves.
 */
#include "http.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "log.h"
#include "summarize.h"

#define MANAGE_JOBS_DEFAULT 100
#define MANAGE_JOBS_MAX	    1000

/* A JSON array kept as text by the index; [] when missing or broken. */
static json_t *manage_array(const char *text)
{
	json_t *j = text ? json_loads(text, 0, NULL) : NULL;

	if (json_is_array(j))
		return j;
	json_decref(j);
	return json_array();
}

/* The only query parameters a request may have; the first other one is named in why. */
struct manage_args {
	const char *const *allowed;
	char problem[160];
};

static enum MHD_Result manage_arg_check(void *cls, enum MHD_ValueKind kind, const char *key,
					const char *value)
{
	struct manage_args *a = cls;

	(void)kind;
	(void)value;
	for (size_t i = 0; a->allowed[i]; i++) {
		if (strcmp(key, a->allowed[i]) == 0)
			return MHD_YES;
	}
	snprintf(a->problem, sizeof(a->problem), "unknown parameter '%.40s'", key);
	return MHD_NO;
}

static bool manage_args_ok(struct MHD_Connection *c, const char *const *allowed, char *why,
			   size_t whylen)
{
	struct manage_args a = {.allowed = allowed};

	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, manage_arg_check, &a);
	if (a.problem[0]) {
		snprintf(why, whylen, "%s", a.problem);
		return false;
	}
	return true;
}

/* "1", "true" / "0", "false" / absent. -1 for anything else. */
static int manage_flag(struct MHD_Connection *c, const char *name)
{
	const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);

	if (!v)
		return 0;
	if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || !*v)
		return 1;
	if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0)
		return 0;
	return -1;
}

/* ------------------------------------------------------------ resources */

/*
 * A stored resource as people see it: the stored document, metadata.created
 * and .updated, no spec for a secret, and for a model today's token usage.
 */
static json_t *manage_resource_json(struct collector_http *h, const struct store_resource *sr)
{
	json_t *o = json_loads(sr->json, 0, NULL), *md;
	char day[16];
	uint64_t in = 0, out = 0;

	if (!json_is_object(o)) {
		json_decref(o);
		o = json_pack("{s:s,s:s,s:{s:s}}", "kind", sr->kind, "version", "v1", "metadata",
			      "name", sr->name);
		if (!o)
			return NULL;
	}
	if (strcmp(sr->kind, "inference_secret") == 0) {
		json_t *v = json_object_get(json_object_get(o, "spec"), "value");

		/* out of jansson's copy too, before it is freed */
		if (json_is_string(v))
			explicit_bzero((char *)json_string_value(v), json_string_length(v));
		json_object_del(o, "spec");
	}
	md = json_object_get(o, "metadata");
	if (json_is_object(md) &&
	    (json_object_set_new(md, "created", api_json_time(sr->created_ns)) ||
	     json_object_set_new(md, "updated", api_json_time(sr->updated_ns)))) {
		json_decref(o);
		return NULL;
	}
	if (strcmp(sr->kind, "inference_model") == 0) {
		summarize_day(util_now_ns(), day);
		if (h->ops->usage_get(h->st, sr->name, day, &in, &out) == 0 &&
		    json_object_set_new(o, "status",
					json_pack("{s:s,s:I,s:I}", "usage_day", day, "tokens_in",
						  (json_int_t)in, "tokens_out", (json_int_t)out))) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

struct manage_list {
	struct collector_http *h;
	json_t *arr;
};

static int manage_list_cb(void *ctx, const struct store_resource *sr)
{
	struct manage_list *l = ctx;
	json_t *o = manage_resource_json(l->h, sr);

	if (!o || json_array_append_new(l->arr, o))
		return -ENOMEM;
	return 0;
}

enum MHD_Result collector_api_resources_get(struct collector_http *h, struct MHD_Connection *c,
					    struct http_req *r)
{
	static const char *const none[] = {NULL};
	struct store_resource sr = {0};
	struct manage_list l = {.h = h};
	char why[200];
	json_t *o;
	int ret;

	if (!manage_args_ok(c, none, why, sizeof(why)))
		return http_error(c, r, MHD_HTTP_BAD_REQUEST, "%s", why);
	if (r->name[0]) {
		ret = h->ops->resource_get(h->st, r->kind, r->name, &sr);
		if (ret == -ENOENT)
			return http_error(c, r, MHD_HTTP_NOT_FOUND, "no %s \"%s\"", r->kind,
					  r->name);
		if (ret)
			return http_error(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "reading %s: %s",
					  r->kind, strerror(-ret));
		o = manage_resource_json(h, &sr);
		store_resource_clear(&sr);
		return o ? http_json(c, r, MHD_HTTP_OK, o) : MHD_NO;
	}
	l.arr = json_array();
	if (!l.arr)
		return MHD_NO;
	ret = h->ops->resource_list(h->st, r->kind[0] ? r->kind : NULL, manage_list_cb, &l);
	if (ret) {
		json_decref(l.arr);
		return http_error(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "listing resources: %s",
				  strerror(-ret));
	}
	return http_json(c, r, MHD_HTTP_OK, json_pack("{s:o}", "resources", l.arr));
}

enum MHD_Result collector_api_resources_create(struct collector_http *h, struct MHD_Connection *c,
					       struct http_req *r)
{
	static const char *const allowed[] = {"force", NULL};
	struct resource *v = NULL;
	json_t *arr = NULL;
	enum MHD_Result res;
	char why[600];
	size_t n = 0;
	int force, status = 0, ret;

	if (!manage_args_ok(c, allowed, why, sizeof(why)))
		return http_error(c, r, MHD_HTTP_BAD_REQUEST, "%s", why);
	force = manage_flag(c, "force");
	if (force < 0)
		return http_error(c, r, MHD_HTTP_BAD_REQUEST, "force: 1 or 0");
	ret = resource_create(h->st, h->ops, r->buf ? (const char *)r->buf : "", r->len, force == 1,
			      &v, &n, &status, why, sizeof(why));
	/* the body may hold a secret's value: not kept a moment longer than needed */
	if (r->buf)
		explicit_bzero(r->buf, r->len);
	if (ret)
		return http_error(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s",
				  why[0] ? why : strerror(-ret));
	if (status != MHD_HTTP_CREATED)
		return http_error(c, r, (unsigned int)status, "%s", why);
	if (summarize_reload(h->sum))
		log_warn("resources stored, but reloading the policies failed: they apply at the "
			 "next start");
	arr = json_array();
	for (size_t i = 0; arr && i < n; i++) {
		if (json_array_append_new(arr, json_pack("{s:s,s:s,s:s}", "kind",
							 resource_kind_name(v[i].kind), "name",
							 v[i].name, "action",
							 v[i].replaced ? "replaced" : "created"))) {
			json_decref(arr);
			arr = NULL;
		}
	}
	resource_array_free(v, n);
	if (!arr)
		return MHD_NO;
	res = http_json(c, r, MHD_HTTP_CREATED, json_pack("{s:o}", "resources", arr));
	return res;
}

enum MHD_Result collector_api_resource_delete(struct collector_http *h, struct MHD_Connection *c,
					      struct http_req *r)
{
	static const char *const none[] = {NULL};
	enum resource_kind k;
	char why[400];
	int status = 0, ret;

	if (!manage_args_ok(c, none, why, sizeof(why)))
		return http_error(c, r, MHD_HTTP_BAD_REQUEST, "%s", why);
	if (resource_kind_parse(r->kind, &k))
		return http_error(c, r, MHD_HTTP_NOT_FOUND, "no resource kind '%s'", r->kind);
	ret = resource_delete(h->st, h->ops, k, r->name, &status, why, sizeof(why));
	if (ret)
		return http_error(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", why);
	if (status != MHD_HTTP_OK)
		return http_error(c, r, (unsigned int)status, "%s", why);
	if (summarize_reload(h->sum))
		log_warn("resource removed, but reloading the policies failed");
	return http_json(c, r, MHD_HTTP_OK,
			 json_pack("{s:{s:s,s:s}}", "deleted", "kind", r->kind, "name", r->name));
}

/* ------------------------------------------------------------ summaries */

static json_t *manage_summary_json(const struct store_summary *m)
{
	json_t *o = json_object();
	int bad = 0;

	if (!o)
		return NULL;
	bad |= json_object_set_new(o, "sid", json_string(m->sid));
	bad |= json_object_set_new(o, "success", json_boolean(m->success));
	bad |= json_object_set_new(o, "title", api_json_str(m->title));
	bad |= json_object_set_new(o, "short_description", api_json_str(m->short_description));
	bad |=
	    json_object_set_new(o, "detailed_description", api_json_str(m->detailed_description));
	bad |= json_object_set_new(o, "risk_level", json_string(m->risk_level));
	bad |= json_object_set_new(o, "risk_score", json_integer(m->risk_score));
	bad |= json_object_set_new(o, "risk_reasons", manage_array(m->risk_reasons_json));
	bad |= json_object_set_new(o, "commands_of_interest",
				   manage_array(m->commands_of_interest_json));
	bad |= json_object_set_new(o, "needs_review", json_boolean(m->needs_review));
	bad |= json_object_set_new(o, "model_name", api_json_str(m->model_name));
	bad |= json_object_set_new(o, "provider", api_json_str(m->provider));
	bad |= json_object_set_new(o, "model_id", api_json_str(m->model_id));
	bad |= json_object_set_new(o, "tokens_in", json_integer((json_int_t)m->tokens_in));
	bad |= json_object_set_new(o, "tokens_out", json_integer((json_int_t)m->tokens_out));
	bad |= json_object_set_new(o, "chunks", json_integer(m->chunks));
	bad |= json_object_set_new(o, "transcript_bytes",
				   json_integer((json_int_t)m->transcript_bytes));
	bad |= json_object_set_new(o, "raw_bytes", json_integer((json_int_t)m->raw_bytes));
	bad |= json_object_set_new(o, "started", api_json_time(m->started_ns));
	bad |= json_object_set_new(o, "finished", api_json_time(m->finished_ns));
	bad |= json_object_set_new(o, "origin", json_string(m->origin));
	bad |= json_object_set_new(o, "job_id", json_integer(m->job_id));
	bad |= json_object_set_new(o, "error_code", api_json_str(m->error_code));
	bad |= json_object_set_new(o, "error", api_json_str(m->error));
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *manage_job_json(const struct store_job *j)
{
	return json_pack(
	    "{s:I,s:s,s:o,s:o,s:s,s:s,s:i,s:o,s:o,s:o,s:o,s:o}", "id", (json_int_t)j->id, "sid",
	    j->sid, "model", api_json_str(j->model), "policy", api_json_str(j->policy), "origin",
	    j->origin, "status", j->status, "attempts", (int)j->attempts, "next_at",
	    j->next_at_ns > 0 && strcmp(j->status, "pending") == 0 ? api_json_time(j->next_at_ns)
								   : json_null(),
	    "created", api_json_time(j->created_ns), "updated", api_json_time(j->updated_ns),
	    "error", api_json_str(j->error), "requested_by", api_json_str(j->requested_by));
}

static int manage_first_job(void *ctx, const struct store_job *j)
{
	struct store_job *out = ctx;

	if (out->id)
		return 0;
	*out = *j;
	out->model = strdup(j->model);
	out->error = strdup(j->error);
	out->policy = NULL;
	out->requested_by = NULL;
	return out->model && out->error ? 0 : -ENOMEM;
}

static int manage_summaries_cb(void *ctx, const struct store_summary *m)
{
	json_t *o = manage_summary_json(m);

	if (!o || json_array_append_new(ctx, o))
		return -ENOMEM;
	return 0;
}

enum MHD_Result collector_api_summary(struct collector_http *h, struct MHD_Connection *c,
				      struct http_req *r)
{
	static const char *const allowed[] = {"all", NULL};
	struct store_session ss = {0};
	struct store_summary m = {0};
	struct store_job j = {0};
	enum MHD_Result res;
	unsigned int st;
	char why[512];
	json_t *arr;
	int all, ret;

	if (!manage_args_ok(c, allowed, why, sizeof(why)))
		return http_error(c, r, MHD_HTTP_BAD_REQUEST, "%s", why);
	all = manage_flag(c, "all");
	if (all < 0)
		return http_error(c, r, MHD_HTTP_BAD_REQUEST, "all: 1 or 0");
	st = api_session_visible(h, r, &ss, http_peer_has(&r->peer, "auditor"), why, sizeof(why));
	store_session_clear(&ss);
	if (st)
		return http_error(c, r, st, "%s", why);
	if (all) {
		arr = json_array();
		if (!arr)
			return MHD_NO;
		ret = h->ops->summary_list(h->st, r->sid, manage_summaries_cb, arr);
		if (ret) {
			json_decref(arr);
			return http_error(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR,
					  "reading summaries: %s", strerror(-ret));
		}
		return http_json(c, r, MHD_HTTP_OK, json_pack("{s:o}", "summaries", arr));
	}
	ret = h->ops->summary_get(h->st, r->sid, &m);
	if (ret == -ENOENT) {
		/* say what is under way, if anything */
		ret = h->ops->job_list(h->st, r->sid, NULL, 1, manage_first_job, &j);
		if (ret == 0 && j.id)
			res = http_error(c, r, MHD_HTTP_NOT_FOUND,
					 "session %s has no summary yet: job %" PRId64
					 " (model %s) is %s%s%s",
					 r->sid, j.id, j.model, j.status,
					 j.error && *j.error ? ": " : "", j.error ? j.error : "");
		else if (ret == 0)
			res =
			    http_error(c, r, MHD_HTTP_NOT_FOUND,
				       "session %s has no summary: no inference policy selected it "
				       "(sessrec summarize asks for one)",
				       r->sid);
		else
			res = http_error(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "reading jobs: %s",
					 strerror(-ret));
		free(j.model);
		free(j.error);
		return res;
	}
	if (ret)
		return http_error(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "reading the summary: %s",
				  strerror(-ret));
	res = http_json(c, r, MHD_HTTP_OK, manage_summary_json(&m));
	store_summary_clear(&m);
	return res;
}

enum MHD_Result collector_api_summarize(struct collector_http *h, struct MHD_Connection *c,
					struct http_req *r)
{
	static const char *const none[] = {NULL};
	struct store_job job = {0};
	json_t *body = NULL, *jm;
	json_error_t je;
	const char *model = NULL, *key;
	enum MHD_Result res;
	char why[512];
	int status = 0, ret;

	if (!manage_args_ok(c, none, why, sizeof(why)))
		return http_error(c, r, MHD_HTTP_BAD_REQUEST, "%s", why);
	if (r->len) {
		body = json_loadb((const char *)r->buf, r->len, JSON_REJECT_DUPLICATES, &je);
		if (!json_is_object(body)) {
			res = http_error(c, r, MHD_HTTP_BAD_REQUEST, "body: %s",
					 body ? "not a JSON object" : je.text);
			json_decref(body);
			return res;
		}
		json_object_foreach(body, key, jm)
		{
			if (strcmp(key, "model") != 0) {
				res =
				    http_error(c, r, MHD_HTTP_BAD_REQUEST,
					       "body: unknown field '%.40s' (only \"model\")", key);
				json_decref(body);
				return res;
			}
		}
		jm = json_object_get(body, "model");
		if (jm && !json_is_null(jm) && !json_is_string(jm)) {
			json_decref(body);
			return http_error(c, r, MHD_HTTP_BAD_REQUEST,
					  "body: \"model\" must be a model's name");
		}
		model = json_string_value(jm);
	}
	ret =
	    summarize_request(h->sum, r->sid, model, r->peer.user, &job, &status, why, sizeof(why));
	json_decref(body);
	if (ret)
		return http_error(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", why);
	if (status != MHD_HTTP_ACCEPTED)
		return http_error(c, r, (unsigned int)status, "%s", why);
	res = http_json(c, r, MHD_HTTP_ACCEPTED, json_pack("{s:o}", "job", manage_job_json(&job)));
	store_job_clear(&job);
	return res;
}

/* ------------------------------------------------------------ jobs */

static int manage_jobs_cb(void *ctx, const struct store_job *j)
{
	json_t *o = manage_job_json(j);

	if (!o || json_array_append_new(ctx, o))
		return -ENOMEM;
	return 0;
}

enum MHD_Result collector_api_jobs(struct collector_http *h, struct MHD_Connection *c,
				   struct http_req *r)
{
	static const char *const allowed[] = {"sid", "status", "limit", NULL};
	static const char *const statuses[] = {"pending", "running",	     "done",
					       "failed",  "budget_exceeded", NULL};
	const char *sid, *status, *limit_s;
	unsigned long limit = MANAGE_JOBS_DEFAULT;
	char why[200], *end;
	json_t *arr;
	size_t i;
	int ret;

	if (!manage_args_ok(c, allowed, why, sizeof(why)))
		return http_error(c, r, MHD_HTTP_BAD_REQUEST, "%s", why);
	sid = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "sid");
	status = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "status");
	limit_s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit");
	if (sid && !util_is_uuid(sid))
		return http_error(c, r, MHD_HTTP_BAD_REQUEST, "sid: not a UUID: '%.40s'", sid);
	for (i = 0; status && statuses[i] && strcmp(status, statuses[i]) != 0; i++)
		;
	if (status && !statuses[i])
		return http_error(c, r, MHD_HTTP_BAD_REQUEST,
				  "status: pending, running, done, failed or budget_exceeded");
	if (limit_s) {
		errno = 0;
		limit = strtoul(limit_s, &end, 10);
		if (errno || !*limit_s || *end || limit < 1 || limit > MANAGE_JOBS_MAX ||
		    limit_s[0] == '-' || limit_s[0] == '+')
			return http_error(c, r, MHD_HTTP_BAD_REQUEST,
					  "limit: a number from 1 to %d", MANAGE_JOBS_MAX);
	}
	arr = json_array();
	if (!arr)
		return MHD_NO;
	ret = h->ops->job_list(h->st, sid, status, (uint32_t)limit, manage_jobs_cb, arr);
	if (ret) {
		json_decref(arr);
		return http_error(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "listing jobs: %s",
				  strerror(-ret));
	}
	return http_json(c, r, MHD_HTTP_OK, json_pack("{s:o}", "jobs", arr));
}
