/*
 * Summaries of completed sessions (docs/summaries.md).
 *
 * At completion the session is matched against the policies (in memory,
 * microseconds) and, when one matches, a job goes into the store's jobs
 * table: nothing else happens on the upload's path. Worker threads claim due
 * jobs, read the recording, build a transcript (or collect the events for the
 * built-in summarizer), call the model's provider (in chunks when the
 * transcript is longer than max_session_length_bytes, then once more to
 * combine), store the summary and end the job in one transaction, and append
 * a session.summarized line to the central audit log.
 *
 * Jobs live in the store, so pending work survives a restart; a job that was
 * running when the collector stopped is pending again at the next start.
 * Token budgets count tokens in and out per model and UTC day in the store:
 * once spent, jobs of that model wait as budget_exceeded until the next day
 * or until a resource changes (a raised budget), when they are tried again.
 */
#include "summarize.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "log.h"
#include "rec.h"
#include "transcript.h"
#include "util.h"

#define SUMMARIZE_POLL_MS   1000       /* workers look for due jobs at least this often */
#define SUMMARIZE_RETRY_S   30	       /* first delay after a store error, doubled */
#define SUMMARIZE_CODES_MAX 32	       /* error codes counted per model */
#define SUMMARIZE_UPLOAD_EI 2147483647 /* after every event of the session */
#define SUMMARIZE_ERROR_MAX 256
#define SUMMARIZE_PARTS_MAX 1000000u

/* Counters of one model, never moved once made (providers update them mid-call). */
struct summarize_stats {
	char name[RESOURCE_NAME_MAX + 1];
	uint64_t summarizations, errors, tokens_in, tokens_out;
	struct provider_stats ps;
	struct {
		char code[64];
		uint64_t n;
	} codes[SUMMARIZE_CODES_MAX];
	size_t n_codes;
};

struct summarizer {
	const struct collector_config *cfg;
	struct store *st;
	const struct store_ops *ops;
	struct summarize_hooks hooks;

	pthread_mutex_t lock; /* everything below */
	pthread_cond_t wake;  /* a job was added, or stop */
	pthread_cond_t ended; /* a worker ended */
	struct policy_set policies;
	struct summarize_stats **stats;
	size_t n_stats, cap_stats;
	pthread_t *threads;
	unsigned int n_threads, alive;
	bool stopping;
	bool curl;    /* curl_global_init done (providers need it before any thread) */
	char day[16]; /* the UTC day budgets were last released for */
};

/* ------------------------------------------------------------ small helpers */

static int64_t summarize_real_now(void *ctx)
{
	(void)ctx;
	return util_now_ns();
}

static int64_t summarize_now(const struct summarizer *s)
{
	return s->hooks.now(s->hooks.ctx);
}

void summarize_day(int64_t ns, char out[16])
{
	time_t t = (time_t)(ns / 1000000000);
	struct tm tm;

	if (!gmtime_r(&t, &tm) || strftime(out, 16, "%Y-%m-%d", &tm) == 0)
		snprintf(out, 16, "1970-01-01");
}

/* The stats of model, made on first use. Under s->lock. NULL when out of memory. */
static struct summarize_stats *summarize_stats_of(struct summarizer *s, const char *model)
{
	struct summarize_stats *st, **v;

	for (size_t i = 0; i < s->n_stats; i++) {
		if (strcmp(s->stats[i]->name, model) == 0)
			return s->stats[i];
	}
	if (s->n_stats == s->cap_stats) {
		size_t cap = s->cap_stats ? s->cap_stats * 2 : 8;

		v = realloc(s->stats, cap * sizeof(*v));
		if (!v)
			return NULL;
		s->stats = v;
		s->cap_stats = cap;
	}
	st = calloc(1, sizeof(*st));
	if (!st)
		return NULL;
	snprintf(st->name, sizeof(st->name), "%s", model);
	s->stats[s->n_stats++] = st;
	return st;
}

static void summarize_count_code(struct summarizer *s, struct summarize_stats *st, const char *code)
{
	size_t i;

	if (!code || !*code)
		code = "unknown";
	pthread_mutex_lock(&s->lock);
	for (i = 0; i < st->n_codes; i++) {
		if (strcmp(st->codes[i].code, code) == 0)
			break;
	}
	if (i == st->n_codes && i < SUMMARIZE_CODES_MAX) {
		/* the last slot takes every further code */
		snprintf(st->codes[i].code, sizeof(st->codes[i].code), "%s",
			 i + 1 == SUMMARIZE_CODES_MAX ? "other" : code);
		st->n_codes++;
	}
	if (i == SUMMARIZE_CODES_MAX)
		i = SUMMARIZE_CODES_MAX - 1;
	st->codes[i].n++;
	pthread_mutex_unlock(&s->lock);
}

static void summarize_add(uint64_t *c, uint64_t v)
{
	__atomic_fetch_add(c, v, __ATOMIC_RELAXED);
}

static void summarize_wake(struct summarizer *s)
{
	pthread_mutex_lock(&s->lock);
	pthread_cond_broadcast(&s->wake);
	pthread_mutex_unlock(&s->lock);
}

/* ------------------------------------------------------------ policies */

struct summarize_load {
	struct resource *v;
	size_t n, cap;
};

static int summarize_load_cb(void *ctx, const struct store_resource *sr)
{
	struct summarize_load *l = ctx;
	struct resource *v;
	int ret;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;

		v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	ret = resource_from_store(sr, &l->v[l->n]);
	if (ret == -EBADMSG)
		return 0; /* logged; left out */
	if (ret)
		return ret;
	l->n++;
	return 0;
}

int summarize_reload(struct summarizer *s)
{
	struct summarize_load l = {0};
	struct policy_set ps = {0}, old;
	uint64_t n = 0;
	int ret;

	if (!s)
		return 0;
	ret = s->ops->resource_list(s->st, NULL, summarize_load_cb, &l);
	if (!ret)
		ret = policy_set_build(&ps, l.v, l.n);
	if (ret) {
		log_error("inference resources: cannot load them: %s", strerror(-ret));
		goto out;
	}
	pthread_mutex_lock(&s->lock);
	old = s->policies;
	s->policies = ps;
	for (size_t i = 0; i < l.n; i++) {
		if (l.v[i].kind == RESOURCE_MODEL)
			(void)summarize_stats_of(s, l.v[i].name); /* metrics show it from now */
	}
	pthread_mutex_unlock(&s->lock);
	policy_set_clear(&old);
	/* a raised budget, a new secret, a new model: let waiting jobs try again */
	ret = s->ops->job_requeue(s->st, "budget_exceeded", NULL, summarize_now(s), &n);
	if (ret)
		log_error("summary jobs: requeueing budget_exceeded jobs: %s", strerror(-ret));
	else if (n)
		log_info("summary jobs: %" PRIu64 " budget_exceeded job(s) pending again", n);
	summarize_wake(s);
out:
	resource_array_free(l.v, l.n);
	return ret;
}

/* The policy a session meets: its name and model copied out. 0, -ENOENT (none) or -errno. */
static int summarize_match(struct summarizer *s, const struct store_session *row,
			   const char *end_line, char *policy, char *model)
{
	struct policy_subject *subj = NULL;
	const struct policy *p;
	int ret;

	ret = policy_subject_new(&subj, s->cfg, row, end_line);
	if (ret)
		return ret;
	pthread_mutex_lock(&s->lock);
	p = policy_match(&s->policies, subj);
	if (p) {
		snprintf(policy, RESOURCE_NAME_MAX + 1, "%s", p->name);
		snprintf(model, RESOURCE_NAME_MAX + 1, "%s", p->model);
	}
	pthread_mutex_unlock(&s->lock);
	policy_subject_free(subj);
	return p ? 0 : -ENOENT;
}

void summarize_session_complete(void *ctx, const struct store_session *row, const char *end_line)
{
	struct summarizer *s = ctx;
	struct store_job j = {0};
	char policy[RESOURCE_NAME_MAX + 1], model[RESOURCE_NAME_MAX + 1];
	int64_t id = 0;
	int ret;

	ret = summarize_match(s, row, end_line, policy, model);
	if (ret == -ENOENT) {
		log_debug("session %s: no inference policy selects it", row->sid);
		return;
	}
	if (ret) {
		log_error("session %s: matching inference policies: %s", row->sid, strerror(-ret));
		return;
	}
	snprintf(j.sid, sizeof(j.sid), "%s", row->sid);
	snprintf(j.origin, sizeof(j.origin), "auto");
	j.model = model;
	j.policy = policy;
	j.next_at_ns = 0;
	ret = s->ops->job_add(s->st, &j, &id);
	if (ret == -EEXIST) {
		log_debug("session %s: summarized automatically already", row->sid);
		return;
	}
	if (ret) {
		log_error("session %s: queueing its summary (policy '%s', model '%s'): %s",
			  row->sid, policy, model, strerror(-ret));
		return;
	}
	log_info("session %s: inference_policy '%s' selects it: job %" PRId64 " with model '%s'",
		 row->sid, policy, id, model);
	summarize_wake(s);
}

/* ------------------------------------------------------------ manual requests */

struct summarize_dup {
	const char *model;
	struct store_job *job;
	bool found;
};

static int summarize_dup_cb(void *ctx, const struct store_job *j)
{
	struct summarize_dup *d = ctx;

	if (d->found || strcmp(j->origin, "manual") != 0 || strcmp(j->model, d->model) != 0 ||
	    (strcmp(j->status, "pending") != 0 && strcmp(j->status, "running") != 0))
		return 0;
	d->found = true;
	*d->job = *j;
	/* the strings go with it */
	d->job->model = strdup(j->model);
	d->job->policy = strdup(j->policy);
	d->job->error = strdup(j->error);
	d->job->requested_by = strdup(j->requested_by);
	if (!d->job->model || !d->job->policy || !d->job->error || !d->job->requested_by)
		return -ENOMEM;
	return 0;
}

__attribute__((format(printf, 5, 6))) static int summarize_say(int *status, int code, char *why,
							       size_t whylen, const char *fmt, ...)
{
	va_list ap;

	*status = code;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return 0;
}

int summarize_request(struct summarizer *s, const char *sid, const char *model, const char *who,
		      struct store_job *job, int *status, char *why, size_t whylen)
{
	char policy[RESOURCE_NAME_MAX + 1] = "", chosen[RESOURCE_NAME_MAX + 1];
	struct store_session row = {0};
	struct store_resource sr = {0};
	struct summarize_dup d = {.job = job};
	struct store_job j = {0};
	char *end_line = NULL;
	int64_t id = 0;
	int ret;

	memset(job, 0, sizeof(*job));
	*status = 500;
	why[0] = '\0';
	ret = s->ops->session_get(s->st, sid, &row);
	if (ret == -ENOENT) {
		ret = summarize_say(status, 404, why, whylen, "session %s not found", sid);
		goto out;
	}
	if (ret)
		goto out;
	if (!row.status || strcmp(row.status, "complete") != 0) {
		ret = summarize_say(status, 409, why, whylen,
				    "session %s is not complete yet: it is summarized once it is",
				    sid);
		goto out;
	}
	if (model) {
		if (!resource_name_valid(model)) {
			ret = summarize_say(status, 400, why, whylen,
					    "model: not a resource name: '%.64s'", model);
			goto out;
		}
		ret = s->ops->resource_get(s->st, "inference_model", model, &sr);
		store_resource_clear(&sr);
		if (ret == -ENOENT) {
			ret = summarize_say(status, 404, why, whylen, "no inference_model \"%s\"",
					    model);
			goto out;
		}
		if (ret)
			goto out;
		snprintf(chosen, sizeof(chosen), "%s", model);
	} else {
		ret = s->ops->audit_find(s->st, sid, "session.end", &end_line);
		if (ret && ret != -ENOENT)
			goto out;
		ret = summarize_match(s, &row, end_line, policy, chosen);
		if (ret == -ENOENT) {
			ret = summarize_say(status, 400, why, whylen,
					    "no inference policy selects session %s: name a model "
					    "(\"model\": NAME)",
					    sid);
			goto out;
		}
		if (ret)
			goto out;
	}
	/* asking twice while it is queued or under way gets the same job */
	d.model = chosen;
	ret = s->ops->job_list(s->st, sid, NULL, 100, summarize_dup_cb, &d);
	if (ret)
		goto out;
	if (d.found) {
		ret = summarize_say(status, 202, why, whylen, "job %" PRId64 " is %s already",
				    job->id, job->status);
		goto out;
	}
	snprintf(j.sid, sizeof(j.sid), "%s", sid);
	snprintf(j.origin, sizeof(j.origin), "manual");
	j.model = chosen;
	j.policy = policy;
	j.requested_by = (char *)(who ? who : "");
	ret = s->ops->job_add(s->st, &j, &id);
	if (!ret)
		ret = s->ops->job_get(s->st, id, job);
	if (ret)
		goto out;
	log_info("session %s: summary with model '%s' requested by %s: job %" PRId64, sid, chosen,
		 who ? who : "?", id);
	summarize_wake(s);
	*status = 202;
out:
	if (ret < 0) {
		store_job_clear(job);
		snprintf(why, whylen, "queueing the summary: %s", strerror(-ret));
	}
	free(end_line);
	store_session_clear(&row);
	return ret < 0 ? ret : 0;
}

/* ------------------------------------------------------------ running a job */

/* What one job gathers along the way. */
struct summarize_run {
	struct summarizer *s;
	struct store_job *job;
	struct store_session row;
	struct resource model;
	char *secret;
	struct provider_model pm;
	struct summarize_stats *stats;
	char day[16];

	/* from the recording */
	char *server_id, *hostname;
	struct transcript *t;
	const Sessrec__Event **events;
	size_t n_events, cap_events;
	bool truncated;

	/* the outcome */
	struct summary sum;
	bool have_sum;
	uint64_t tokens_in, tokens_out;
	uint32_t chunks;
	uint64_t transcript_bytes, raw_bytes;
	int64_t started_ns;
	char error_code[64];
	char error[SUMMARIZE_ERROR_MAX];
};

static void summarize_run_clear(struct summarize_run *r)
{
	store_session_clear(&r->row);
	resource_clear(&r->model);
	if (r->secret) {
		explicit_bzero(r->secret, strlen(r->secret));
		free(r->secret);
	}
	free(r->server_id);
	free(r->hostname);
	transcript_free(r->t);
	for (size_t i = 0; i < r->n_events; i++)
		sessrec__event__free_unpacked((Sessrec__Event *)r->events[i], NULL);
	free(r->events);
	if (r->have_sum)
		summary_clear(&r->sum);
}

__attribute__((format(printf, 3, 4))) static void
summarize_fail(struct summarize_run *r, const char *code, const char *fmt, ...)
{
	va_list ap;

	snprintf(r->error_code, sizeof(r->error_code), "%s", code);
	va_start(ap, fmt);
	vsnprintf(r->error, sizeof(r->error), fmt, ap);
	va_end(ap);
}

/* The model and its secret, as the provider wants them. 0, -ENOENT (recorded as failed) or -errno.
 */
static int summarize_resolve(struct summarize_run *r)
{
	struct summarizer *s = r->s;
	struct store_resource sr = {0};
	struct resource sec = {0};
	const struct resource_model *m;
	int ret;

	ret = s->ops->resource_get(s->st, "inference_model", r->job->model, &sr);
	if (ret == -ENOENT) {
		summarize_fail(r, "model_not_found",
			       "inference_model '%s' does not exist (any more)", r->job->model);
		return -ENOENT;
	}
	if (!ret)
		ret = resource_from_store(&sr, &r->model);
	store_resource_clear(&sr);
	if (ret)
		return ret;
	m = &r->model.model;
	if (m->secret_ref && *m->secret_ref) {
		ret = s->ops->resource_get(s->st, "inference_secret", m->secret_ref, &sr);
		if (ret == -ENOENT) {
			summarize_fail(
			    r, "secret_not_found",
			    "inference_secret '%s' (the api_key_secret_ref of model '%s') "
			    "does not exist (any more)",
			    m->secret_ref, r->job->model);
			return -ENOENT;
		}
		if (!ret)
			ret = resource_from_store(&sr, &sec);
		store_resource_clear(&sr);
		if (ret)
			return ret;
		r->secret = sec.secret;
		sec.secret = NULL;
		resource_clear(&sec);
	}
	r->pm.name = r->model.name;
	r->pm.kind = m->provider;
	r->pm.model_id = m->model_id;
	r->pm.base_url = m->base_url && *m->base_url ? m->base_url : NULL;
	r->pm.api_key = r->secret;
	r->pm.region = m->region;
	r->pm.temperature = m->temperature;
	r->pm.timeout_s = m->timeout_s ? m->timeout_s : SUMMARIZE_DEFAULT_TIMEOUT;
	r->pm.max_retries = m->have_max_retries ? m->max_retries : SUMMARIZE_DEFAULT_RETRIES;
	return 0;
}

static int summarize_dup(char **dst, const char *s)
{
	free(*dst);
	*dst = strdup(s ? s : "");
	return *dst ? 0 : -ENOMEM;
}

/* One event of the recording: into the transcript, or kept for the built-in summarizer. */
static int summarize_event(struct summarize_run *r, Sessrec__Event *ev, bool builtin)
{
	int ret = 0;

	if (ev->body_case == SESSREC__EVENT__BODY_START && ev->start) {
		ret = summarize_dup(&r->server_id, ev->start->server_id);
		if (!ret)
			ret = summarize_dup(&r->hostname, ev->start->server_hostname);
		if (ret)
			goto free_it;
	}
	if (!builtin) {
		ret = transcript_add(r->t, ev);
		goto free_it;
	}
	if (r->n_events == SUMMARIZE_EVENTS_MAX) {
		r->truncated = true;
		goto free_it;
	}
	if (r->n_events == r->cap_events) {
		size_t cap = r->cap_events ? r->cap_events * 2 : 1024;
		const Sessrec__Event **v = realloc(r->events, cap * sizeof(*v));

		if (!v) {
			ret = -ENOMEM;
			goto free_it;
		}
		r->events = v;
		r->cap_events = cap;
	}
	r->events[r->n_events++] = ev;
	return 0;
free_it:
	sessrec__event__free_unpacked(ev, NULL);
	return ret;
}

/* Every stored part, read in order. 0, -EBADMSG (recorded as failed) or -errno. */
static int summarize_read(struct summarize_run *r, bool builtin)
{
	struct summarizer *s = r->s;
	struct rec_reader *rd = NULL;
	Sessrec__Event *ev = NULL;
	uint8_t *all = NULL, *part = NULL, *p;
	size_t len = 0, plen = 0;
	uint32_t n;
	int ret = 0;

	for (n = 0; n < SUMMARIZE_PARTS_MAX; n++) {
		ret = s->ops->part_get(s->st, r->job->sid, n, &part, &plen);
		if (ret == -ENOENT) {
			ret = 0;
			break;
		}
		if (ret)
			goto out;
		p = realloc(all, len + plen);
		if (!p) {
			ret = -ENOMEM;
			goto out;
		}
		all = p;
		memcpy(all + len, part, plen);
		len += plen;
		free(part);
		part = NULL;
	}
	if (!len) {
		summarize_fail(r, "recording_missing", "no part of the recording is stored");
		ret = -EBADMSG;
		goto out;
	}
	ret = rec_reader_open_mem(&rd, all, len);
	if (!ret)
		ret = rec_reader_expect_sid(rd, r->job->sid);
	if (ret && ret != -ENOMEM) {
		summarize_fail(r, "recording_unreadable", "the recording does not read: %s",
			       rd ? rec_reader_error(rd) : strerror(-ret));
		ret = -EBADMSG;
	}
	if (ret)
		goto out;
	while ((ret = rec_reader_next(rd, &ev)) == 1) {
		ret = summarize_event(r, ev, builtin);
		ev = NULL;
		if (ret)
			goto out;
	}
	if (ret < 0 && ret != -ENOMEM) {
		summarize_fail(r, "recording_unreadable", "the recording does not read: %s",
			       rec_reader_error(rd));
		ret = -EBADMSG;
	}
out:
	rec_reader_close(rd);
	free(part);
	free(all);
	return ret;
}

/* Tokens spent today by the model, and whether its budget is spent. */
static int summarize_budget(struct summarize_run *r, bool *spent)
{
	struct summarizer *s = r->s;
	uint64_t in = 0, out = 0, limit = r->model.model.max_tokens_per_day;
	int ret;

	*spent = false;
	if (!limit)
		return 0;
	summarize_day(summarize_now(s), r->day);
	ret = s->ops->usage_get(s->st, r->model.name, r->day, &in, &out);
	if (ret)
		return ret;
	if (in + out >= limit) {
		*spent = true;
		snprintf(r->error, sizeof(r->error),
			 "inference_model '%s': max_tokens_per_day %" PRIu64
			 " spent for %s (%" PRIu64
			 " used); tried again the next UTC day or when the budget is raised",
			 r->model.name, limit, r->day, in + out);
	}
	return 0;
}

/* Account one provider call: tokens into the day's usage and the metrics. */
static int summarize_spent(struct summarize_run *r, const struct provider_result *res)
{
	struct summarizer *s = r->s;

	r->tokens_in += res->tokens_in;
	r->tokens_out += res->tokens_out;
	summarize_add(&r->stats->tokens_in, res->tokens_in);
	summarize_add(&r->stats->tokens_out, res->tokens_out);
	if (!res->tokens_in && !res->tokens_out)
		return 0;
	summarize_day(summarize_now(s), r->day);
	return s->ops->usage_add(s->st, r->model.name, r->day, res->tokens_in, res->tokens_out);
}

/* A failed provider call: its code and one line, never the key. */
static void summarize_provider_failed(struct summarize_run *r, const struct provider_result *res,
				      int ret, const char *what)
{
	summarize_count_code(r->s, r->stats, res->error_code);
	summarize_fail(r, res->error_code[0] ? res->error_code : "provider_error", "%s: %s", what,
		       res->error[0] ? res->error : strerror(-ret));
}

/*
 * Through a model: the transcript whole, or in chunks then combined. 0 with
 * r->sum; 1 when the budget ran out (r->error says so); -EPROTO when the
 * provider failed (recorded); -errno otherwise.
 */
static int summarize_model(struct summarize_run *r)
{
	struct summarizer *s = r->s;
	struct provider_result res;
	struct summary *parts = NULL;
	const char *text = NULL;
	size_t len = 0, *offs = NULL, n = 0, i, got = 0;
	bool spent;
	int ret;

	ret = transcript_finish(r->t, &text, &len);
	if (ret)
		return ret;
	r->transcript_bytes = len;
	r->raw_bytes = transcript_raw_bytes(r->t);
	if (len > r->model.model.max_session_length_bytes) {
		/* never skipped for its size: summarized in parts, then the parts combined */
		ret = transcript_chunks(text, len, r->model.model.max_session_length_bytes, &offs,
					&n);
		if (ret)
			return ret;
	}
	if (n <= 1) {
		n = 1;
		free(offs);
		offs = NULL;
	}
	r->chunks = (uint32_t)n;
	parts = calloc(n, sizeof(*parts));
	if (!parts) {
		ret = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		size_t a = offs ? offs[i] : 0;
		size_t b = offs && i + 1 < n ? offs[i + 1] : len;

		ret = summarize_budget(r, &spent);
		if (ret)
			goto out;
		if (spent) {
			ret = 1;
			goto out;
		}
		if (a > b || b > len) {
			ret = -EINVAL;
			goto out;
		}
		memset(&res, 0, sizeof(res));
		ret = s->hooks.summarize(&r->pm, text + a, b - a, (unsigned int)i + 1,
					 (unsigned int)n, &res, &r->stats->ps);
		if (summarize_spent(r, &res))
			log_error("session %s: recording token usage of model '%s' failed",
				  r->job->sid, r->model.name);
		if (ret) {
			summary_clear(&res.summary);
			if (n > 1)
				summarize_provider_failed(r, &res, ret, "summarizing a part");
			else
				summarize_provider_failed(r, &res, ret, "summarizing");
			ret = -EPROTO;
			goto out;
		}
		parts[got++] = res.summary;
	}
	if (n == 1) {
		r->sum = parts[0];
		r->have_sum = true;
		got = 0;
		goto out;
	}
	ret = summarize_budget(r, &spent);
	if (ret)
		goto out;
	if (spent) {
		ret = 1;
		goto out;
	}
	memset(&res, 0, sizeof(res));
	ret = s->hooks.combine(&r->pm, parts, n, &res, &r->stats->ps);
	if (summarize_spent(r, &res))
		log_error("session %s: recording token usage of model '%s' failed", r->job->sid,
			  r->model.name);
	if (ret) {
		summary_clear(&res.summary);
		summarize_provider_failed(r, &res, ret, "combining the parts' summaries");
		ret = -EPROTO;
		goto out;
	}
	r->sum = res.summary;
	r->have_sum = true;
out:
	for (i = 0; i < got; i++)
		summary_clear(&parts[i]);
	free(parts);
	free(offs);
	return ret;
}

/* A JSON string of s; bytes that are not valid UTF-8 (a command's argv) become '?'. */
static json_t *summarize_jstr(const char *s)
{
	json_t *j;
	char *copy;

	if (!s)
		s = "";
	j = json_string(s);
	if (j)
		return j;
	copy = strdup(s);
	if (!copy)
		return NULL;
	for (char *p = copy; *p; p++) {
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	}
	j = json_string(copy);
	free(copy);
	return j;
}

static json_t *summarize_strv(char *const *v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < n; i++) {
		if (json_array_append_new(a, summarize_jstr(v[i]))) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static char *summarize_strv_text(char *const *v, size_t n)
{
	json_t *a = summarize_strv(v, n);
	char *t = a ? json_dumps(a, JSON_COMPACT) : NULL;

	json_decref(a);
	return t;
}

/* The session.summarized line of the central audit log (docs/audit-events.md). */
static int summarize_audit(struct summarize_run *r, const struct store_summary *m)
{
	char uid[UUID_STR_LEN_], t0[40], t1[40];
	const char *host = r->hostname && *r->hostname ? r->hostname : r->row.node;
	json_t *o = json_object(), *reasons = NULL;
	char *line = NULL;
	const char *lines[1];
	int ret = -ENOMEM, bad = 0;

	if (!o)
		return -ENOMEM;
	util_uuid(uid);
	util_rfc3339(m->started_ns, t0, sizeof(t0));
	util_rfc3339(m->finished_ns, t1, sizeof(t1));
	if (m->risk_reasons_json)
		reasons = json_loads(m->risk_reasons_json, 0, NULL);
	/* Teleport's common fields first, then ours */
	bad |= json_object_set_new(o, "event", json_string(SUMMARIZE_EVENT));
	bad |= json_object_set_new(
	    o, "code", json_string(m->success ? SUMMARIZE_CODE_OK : SUMMARIZE_CODE_FAILED));
	bad |= json_object_set_new(o, "time", json_string(t1));
	bad |= json_object_set_new(o, "ei", json_integer(SUMMARIZE_UPLOAD_EI));
	bad |= json_object_set_new(o, "uid", json_string(uid));
	bad |= json_object_set_new(o, "sid", json_string(m->sid));
	bad |= json_object_set_new(o, "server_id", summarize_jstr(r->server_id));
	bad |= json_object_set_new(o, "server_hostname", summarize_jstr(host));
	bad |= json_object_set_new(o, "login", summarize_jstr(r->row.login));
	bad |= json_object_set_new(o, "user", summarize_jstr(r->row.user));
	bad |= json_object_set_new(o, "model_name", summarize_jstr(m->model_name));
	bad |= json_object_set_new(o, "risk_level", json_string(m->risk_level));
	bad |= json_object_set_new(o, "short_description", summarize_jstr(m->short_description));
	bad |= json_object_set_new(o, "success", json_boolean(m->success));
	bad |= json_object_set_new(o, "inference_started", json_string(t0));
	bad |= json_object_set_new(o, "inference_finished", json_string(t1));
	bad |= json_object_set_new(o, "risk_score", json_integer(m->risk_score));
	bad |= json_object_set_new(o, "title", summarize_jstr(m->title));
	bad |= json_object_set_new(o, "needs_review", json_boolean(m->needs_review));
	bad |= json_object_set_new(o, "risk_reasons",
				   json_is_array(reasons) ? json_incref(reasons) : json_array());
	bad |= json_object_set_new(o, "provider", summarize_jstr(m->provider));
	bad |= json_object_set_new(o, "model_id", summarize_jstr(m->model_id));
	bad |= json_object_set_new(o, "tokens_in", json_integer((json_int_t)m->tokens_in));
	bad |= json_object_set_new(o, "tokens_out", json_integer((json_int_t)m->tokens_out));
	bad |= json_object_set_new(o, "chunks", json_integer(m->chunks));
	bad |= json_object_set_new(o, "origin", json_string(m->origin));
	bad |= json_object_set_new(o, "policy", summarize_jstr(r->job->policy));
	bad |= json_object_set_new(o, "error_code", summarize_jstr(m->error_code));
	bad |= json_object_set_new(o, "error", summarize_jstr(m->error));
	if (bad)
		goto out;
	line = json_dumps(o, JSON_COMPACT);
	if (!line)
		goto out;
	lines[0] = line;
	ret = r->s->ops->audit_append(r->s->st, lines, 1);
out:
	json_decref(reasons);
	json_decref(o);
	free(line);
	return ret;
}

/* Store the outcome (a summary or a failure), end the job, audit, count. */
static int summarize_record(struct summarize_run *r, bool success)
{
	struct summarizer *s = r->s;
	struct store_summary m = {0};
	int64_t id = 0;
	int ret;

	snprintf(m.sid, sizeof(m.sid), "%s", r->job->sid);
	snprintf(m.origin, sizeof(m.origin), "%s", r->job->origin);
	m.job_id = r->job->id;
	m.model_name = r->job->model;
	m.provider = r->model.model.provider ? r->model.model.provider : "";
	m.model_id = r->model.model.model_id ? r->model.model.model_id : "";
	m.tokens_in = r->tokens_in;
	m.tokens_out = r->tokens_out;
	m.chunks = r->chunks;
	m.transcript_bytes = r->transcript_bytes;
	m.raw_bytes = r->raw_bytes;
	m.started_ns = r->started_ns;
	m.finished_ns = summarize_now(s);
	m.success = success;
	if (success) {
		m.title = r->sum.title;
		m.short_description = r->sum.short_description;
		m.detailed_description = r->sum.detailed_description;
		snprintf(m.risk_level, sizeof(m.risk_level), "%s",
			 summary_risk_name(r->sum.risk_level));
		m.risk_score = r->sum.risk_score > 100 ? 100 : r->sum.risk_score;
		m.needs_review = r->sum.needs_review || r->truncated;
		m.risk_reasons_json =
		    summarize_strv_text(r->sum.risk_reasons, r->sum.n_risk_reasons);
		m.commands_of_interest_json =
		    summarize_strv_text(r->sum.commands_of_interest, r->sum.n_commands_of_interest);
		if (!m.risk_reasons_json || !m.commands_of_interest_json) {
			ret = -ENOMEM;
			goto out;
		}
	} else {
		m.error_code = r->error_code;
		m.error = r->error;
	}
	ret = s->ops->summary_put(s->st, &m, &id);
	if (ret) {
		log_error("session %s: storing its summary: %s", m.sid, strerror(-ret));
		goto out;
	}
	summarize_add(&r->stats->summarizations, 1);
	if (!success)
		summarize_add(&r->stats->errors, 1);
	ret = summarize_audit(r, &m);
	if (ret)
		log_error("session %s: the session.summarized audit line: %s", m.sid,
			  strerror(-ret));
	if (success)
		log_info("session %s summarized by model '%s' (job %" PRId64 "): risk %s %u, "
			 "%" PRIu64 "+%" PRIu64 " tokens, %u part(s)",
			 m.sid, m.model_name, m.job_id, m.risk_level, m.risk_score, m.tokens_in,
			 m.tokens_out, m.chunks);
	else
		log_warn("session %s: summarizing with model '%s' failed (job %" PRId64 "): %s: %s",
			 m.sid, m.model_name, m.job_id, m.error_code, m.error);
	ret = 0; /* the summary is stored: an audit hiccup does not redo the job */
out:
	free(m.risk_reasons_json);
	free(m.commands_of_interest_json);
	return ret;
}

/* A store or machine error: the job is tried again later, a few times. */
static void summarize_retry_later(struct summarize_run *r, int err)
{
	struct summarizer *s = r->s;
	char msg[SUMMARIZE_ERROR_MAX];
	int64_t delay;
	int ret;

	if (r->job->attempts >= SUMMARIZE_ATTEMPTS_MAX) {
		summarize_fail(r, "internal", "gave up after %u attempts: %s", r->job->attempts,
			       strerror(-err));
		if (summarize_record(r, false) == 0)
			return;
		ret = s->ops->job_update(s->st, r->job->id, "failed", 0, r->error);
		if (ret)
			log_error("job %" PRId64 ": %s", r->job->id, strerror(-ret));
		return;
	}
	delay = (int64_t)SUMMARIZE_RETRY_S << (r->job->attempts ? r->job->attempts - 1 : 0);
	snprintf(msg, sizeof(msg), "attempt %u: %s; tried again in %" PRId64 " s", r->job->attempts,
		 strerror(-err), delay);
	log_warn("session %s: summary job %" PRId64 ": %s", r->job->sid, r->job->id, msg);
	ret = s->ops->job_update(s->st, r->job->id, "pending",
				 summarize_now(s) + delay * 1000000000LL, msg);
	if (ret)
		log_error("job %" PRId64 ": %s", r->job->id, strerror(-ret));
}

static int summarize_job(struct summarizer *s, struct store_job *job)
{
	struct summarize_run r = {.s = s, .job = job};
	bool builtin, spent = false;
	int ret;

	r.started_ns = summarize_now(s);
	pthread_mutex_lock(&s->lock);
	r.stats = summarize_stats_of(s, job->model);
	pthread_mutex_unlock(&s->lock);
	if (!r.stats) {
		ret = -ENOMEM;
		goto retry;
	}
	ret = s->ops->session_get(s->st, job->sid, &r.row);
	if (ret == -ENOENT) {
		summarize_fail(&r, "session_not_found", "session %s is not in the index", job->sid);
		ret = summarize_record(&r, false);
		goto done;
	}
	if (ret)
		goto retry;
	ret = summarize_resolve(&r);
	if (ret == -ENOENT) {
		ret = summarize_record(&r, false);
		goto done;
	}
	if (ret)
		goto retry;
	builtin = strcmp(r.model.model.provider, "builtin") == 0;
	if (!builtin) {
		ret = summarize_budget(&r, &spent);
		if (ret)
			goto retry;
		if (spent)
			goto budget;
		ret = transcript_new(&r.t, r.row.cols ? r.row.cols : 80,
				     r.row.rows ? r.row.rows : 24);
		if (ret)
			goto retry;
	}
	ret = summarize_read(&r, builtin);
	if (ret == -EBADMSG) {
		ret = summarize_record(&r, false);
		goto done;
	}
	if (ret)
		goto retry;
	if (builtin) {
		memset(&r.sum, 0, sizeof(r.sum));
		r.chunks = 1;
		ret = s->hooks.builtin(r.events, r.n_events, &r.sum);
		r.have_sum = ret == 0;
		if (ret) {
			summarize_fail(&r, "builtin_failed", "the built-in summarizer: %s",
				       strerror(-ret));
			ret = summarize_record(&r, false);
			goto done;
		}
		ret = summarize_record(&r, true);
		goto done;
	}
	ret = summarize_model(&r);
	if (ret == 1)
		goto budget;
	if (ret == -EPROTO) {
		ret = summarize_record(&r, false);
		goto done;
	}
	if (ret)
		goto retry;
	ret = summarize_record(&r, true);
	goto done;
budget:
	log_warn("session %s: summary job %" PRId64 " waits: %s", job->sid, job->id, r.error);
	ret = s->ops->job_update(s->st, job->id, "budget_exceeded", 0, r.error);
	goto done;
retry:
	summarize_retry_later(&r, ret);
	ret = 0;
done:
	if (ret)
		summarize_retry_later(&r, ret);
	summarize_run_clear(&r);
	return 0;
}

/* A new UTC day: budgets start over, waiting jobs are pending again. */
static void summarize_new_day(struct summarizer *s)
{
	char day[16];
	uint64_t n = 0;
	bool changed;
	int ret;

	summarize_day(summarize_now(s), day);
	pthread_mutex_lock(&s->lock);
	changed = strcmp(day, s->day) != 0;
	if (changed)
		snprintf(s->day, sizeof(s->day), "%s", day);
	pthread_mutex_unlock(&s->lock);
	if (!changed)
		return;
	ret = s->ops->job_requeue(s->st, "budget_exceeded", NULL, summarize_now(s), &n);
	if (ret)
		log_error("summary jobs: a new day (%s): %s", day, strerror(-ret));
	else if (n)
		log_info("summary jobs: a new day (%s): %" PRIu64 " budget_exceeded job(s) pending "
			 "again",
			 day, n);
}

int summarize_run_once(struct summarizer *s)
{
	struct store_job job = {0};
	int ret;

	summarize_new_day(s);
	ret = s->ops->job_claim(s->st, summarize_now(s), &job);
	if (ret)
		return ret;
	log_debug("session %s: summary job %" PRId64 " (model '%s', %s, attempt %u)", job.sid,
		  job.id, job.model, job.origin, job.attempts);
	ret = summarize_job(s, &job);
	store_job_clear(&job);
	return ret;
}

static void *summarize_worker(void *arg)
{
	struct summarizer *s = arg;
	struct timespec ts;
	int ret;

	pthread_mutex_lock(&s->lock);
	while (!s->stopping) {
		pthread_mutex_unlock(&s->lock);
		ret = summarize_run_once(s);
		if (ret && ret != -ENOENT)
			log_error("summary jobs: %s", strerror(-ret));
		pthread_mutex_lock(&s->lock);
		if (ret == 0 || s->stopping)
			continue; /* there may be more */
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += SUMMARIZE_POLL_MS / 1000;
		(void)pthread_cond_timedwait(&s->wake, &s->lock, &ts);
	}
	s->alive--;
	pthread_cond_broadcast(&s->ended);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* ------------------------------------------------------------ start, stop */

static void summarize_free(struct summarizer *s)
{
	if (!s)
		return;
	if (s->curl)
		curl_global_cleanup();
	policy_set_clear(&s->policies);
	for (size_t i = 0; i < s->n_stats; i++)
		free(s->stats[i]);
	free(s->stats);
	free(s->threads);
	pthread_cond_destroy(&s->wake);
	pthread_cond_destroy(&s->ended);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

int summarize_start(struct summarizer **out, const struct collector_config *cfg, struct store *st,
		    const struct store_ops *ops, const struct summarize_hooks *hooks,
		    unsigned int workers)
{
	struct summarizer *s;
	bool installed = false;
	uint64_t n = 0;
	int ret;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->cfg = cfg;
	s->st = st;
	s->ops = ops;
	if (hooks)
		s->hooks = *hooks;
	if (!s->hooks.now)
		s->hooks.now = summarize_real_now;
	if (!s->hooks.summarize)
		s->hooks.summarize = provider_summarize;
	if (!s->hooks.combine)
		s->hooks.combine = provider_combine;
	if (!s->hooks.builtin)
		s->hooks.builtin = summary_builtin;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->wake, NULL);
	pthread_cond_init(&s->ended, NULL);
	/* before the first worker: libcurl's global set-up is not for threads */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error("cannot initialise libcurl");
		ret = -ENOMEM;
		goto fail;
	}
	s->curl = true;

	ret = resource_install_defaults(st, ops, &installed);
	if (ret) {
		log_error("the default inference resources: %s", strerror(-ret));
		goto fail;
	}
	if (installed)
		log_info("a fresh install: inference_policy 'default' summarizes every session "
			 "with inference_model 'builtin' (offline); replace or remove it with "
			 "sessrec create/rm");
	ret = summarize_reload(s);
	if (ret)
		goto fail;
	ret = ops->job_requeue(st, "running", NULL, summarize_now(s), &n);
	if (ret) {
		log_error("summary jobs: %s", strerror(-ret));
		goto fail;
	}
	if (n)
		log_info("summary jobs: %" PRIu64 " job(s) interrupted by the last stop are "
			 "pending again",
			 n);
	summarize_day(summarize_now(s), s->day);
	if (workers) {
		s->threads = calloc(workers, sizeof(*s->threads));
		if (!s->threads) {
			ret = -ENOMEM;
			goto fail;
		}
	}
	pthread_mutex_lock(&s->lock);
	for (unsigned int i = 0; i < workers; i++) {
		ret = pthread_create(&s->threads[i], NULL, summarize_worker, s);
		if (ret) {
			ret = -ret;
			break;
		}
		s->n_threads++;
		s->alive++;
	}
	pthread_mutex_unlock(&s->lock);
	if (ret) {
		log_error("summary workers: %s", strerror(-ret));
		(void)summarize_stop(s, 60); /* frees s once the started ones ended */
		return ret;
	}
	collector_set_complete_hook(summarize_session_complete, s);
	*out = s;
	return 0;
fail:
	summarize_free(s);
	return ret;
}

int summarize_stop(struct summarizer *s, unsigned int timeout_s)
{
	struct timespec deadline;
	int ret = 0;

	if (!s)
		return 0;
	collector_set_complete_hook(NULL, NULL);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += timeout_s;
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_cond_broadcast(&s->wake);
	while (s->alive && ret == 0)
		ret = pthread_cond_timedwait(&s->ended, &s->lock, &deadline);
	if (s->alive) {
		log_warn("summary workers: %u still waiting on a provider after %u s; their "
			 "jobs run again at the next start",
			 s->alive, timeout_s);
		pthread_mutex_unlock(&s->lock);
		return -EBUSY;
	}
	pthread_mutex_unlock(&s->lock);
	for (unsigned int i = 0; i < s->n_threads; i++)
		pthread_join(s->threads[i], NULL);
	summarize_free(s);
	return 0;
}

/* ------------------------------------------------------------ metrics */

struct summarize_counts {
	struct summarizer *s;
	struct {
		char model[RESOURCE_NAME_MAX + 1];
		uint64_t pending, running, budget;
	} * v;
	size_t n, cap;
};

static int summarize_counts_cb(void *ctx, const char *model, const char *status, uint64_t n)
{
	struct summarize_counts *c = ctx;
	size_t i;

	if (!model || !status)
		return 0;
	for (i = 0; i < c->n && strcmp(c->v[i].model, model) != 0; i++)
		;
	if (i == c->n) {
		if (c->n == c->cap) {
			size_t cap = c->cap ? c->cap * 2 : 8;
			void *v = realloc(c->v, cap * sizeof(*c->v));

			if (!v)
				return -ENOMEM;
			c->v = v;
			c->cap = cap;
		}
		memset(&c->v[i], 0, sizeof(c->v[i]));
		snprintf(c->v[i].model, sizeof(c->v[i].model), "%s", model);
		c->n++;
	}
	if (strcmp(status, "pending") == 0)
		c->v[i].pending = n;
	else if (strcmp(status, "running") == 0)
		c->v[i].running = n;
	else if (strcmp(status, "budget_exceeded") == 0)
		c->v[i].budget = n;
	return 0;
}

/* A label value as the exposition format wants it: \ " and newline escaped. */
static void summarize_label(FILE *f, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fputc('\\', f);
		if (*v == '\n')
			fputs("\\n", f);
		else if ((unsigned char)*v >= 0x20)
			fputc(*v, f);
	}
}

static void summarize_family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void summarize_sample(FILE *f, const char *name, const char *model, uint64_t v)
{
	fprintf(f, "%s{inference_model_name=\"", name);
	summarize_label(f, model);
	fprintf(f, "\"} %" PRIu64 "\n", v);
}

#define SUMMARIZE_LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

void summarize_metrics_write(struct summarizer *s, FILE *f)
{
	static const struct {
		const char *name, *type, *help;
	} fam[] = {
	    {"sessrec_collector_summarizations_total", "counter",
	     "Summaries finished (stored), successful or not, by model."},
	    {"sessrec_collector_summarization_errors_total", "counter",
	     "Summaries that failed (stored with an error code), by model."},
	    {"sessrec_collector_inference_jobs_pending", "gauge",
	     "Summary jobs waiting, by model."},
	    {"sessrec_collector_inference_jobs_running", "gauge",
	     "Summary jobs being worked on, by model."},
	    {"sessrec_collector_inference_jobs_budget_exceeded", "gauge",
	     "Summary jobs waiting for the model's daily token budget, by model."},
	    {"sessrec_collector_provider_requests_total", "counter",
	     "Requests to the model's provider (retries included), by model."},
	    {"sessrec_collector_provider_errors_total", "counter",
	     "Provider requests that failed (retries included), by model."},
	    {"sessrec_collector_provider_requests_in_flight", "gauge",
	     "Provider requests under way now, by model."},
	    {"sessrec_collector_inference_tokens_in_total", "counter",
	     "Tokens sent to the model (prompt), by model."},
	    {"sessrec_collector_inference_tokens_out_total", "counter",
	     "Tokens the model answered with (completion), by model."},
	};
	struct summarize_counts c = {.s = s};
	size_t i, k, nfam = sizeof(fam) / sizeof(fam[0]);

	if (!s)
		return;
	if (s->ops->job_counts(s->st, summarize_counts_cb, &c))
		c.n = 0; /* the gauges read 0 rather than nothing */
	pthread_mutex_lock(&s->lock);
	for (i = 0; i < c.n; i++)
		(void)summarize_stats_of(s, c.v[i].model);
	for (k = 0; k < nfam; k++) {
		summarize_family(f, fam[k].name, fam[k].type, fam[k].help);
		for (i = 0; i < s->n_stats; i++) {
			const struct summarize_stats *st = s->stats[i];
			uint64_t v = 0;
			size_t j;

			for (j = 0; j < c.n && strcmp(c.v[j].model, st->name) != 0; j++)
				;
			switch (k) {
			case 0:
				v = SUMMARIZE_LOAD(st->summarizations);
				break;
			case 1:
				v = SUMMARIZE_LOAD(st->errors);
				break;
			case 2:
				v = j < c.n ? c.v[j].pending : 0;
				break;
			case 3:
				v = j < c.n ? c.v[j].running : 0;
				break;
			case 4:
				v = j < c.n ? c.v[j].budget : 0;
				break;
			case 5:
				v = SUMMARIZE_LOAD(st->ps.requests);
				break;
			case 6:
				v = SUMMARIZE_LOAD(st->ps.errors);
				break;
			case 7:
				v = SUMMARIZE_LOAD(st->ps.in_flight);
				break;
			case 8:
				v = SUMMARIZE_LOAD(st->tokens_in);
				break;
			default:
				v = SUMMARIZE_LOAD(st->tokens_out);
				break;
			}
			summarize_sample(f, fam[k].name, st->name, v);
		}
	}
	summarize_family(f, "sessrec_collector_provider_api_errors_total", "counter",
			 "Provider calls that failed for good, by model and the provider's error "
			 "code.");
	for (i = 0; i < s->n_stats; i++) {
		const struct summarize_stats *st = s->stats[i];

		for (size_t j = 0; j < st->n_codes; j++) {
			fputs("sessrec_collector_provider_api_errors_total{inference_model_name=\"",
			      f);
			summarize_label(f, st->name);
			fputs("\",api_error_code=\"", f);
			summarize_label(f, st->codes[j].code);
			fprintf(f, "\"} %" PRIu64 "\n", st->codes[j].n);
		}
	}
	pthread_mutex_unlock(&s->lock);
	free(c.v);
}
