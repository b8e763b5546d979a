/*
 * collector/summarize.c with the local store: jobs from completed sessions
 * (policy matching, at most one automatic job), token budgets per UTC day
 * across a day boundary (a clock that the test sets), a raised budget, jobs
 * surviving a store reopen (running ones pending again), chunked transcripts,
 * provider failures recorded with their code, the session.summarized audit
 * line, requests on demand and the metrics. Providers are fakes.
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
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "../../collector/summarize.h"
#include "log.h"
#include "rec.h"
#include "util.h"

static const struct store_ops *ops = &store_local_ops;
static char root[256];
static unsigned int seq;

/* ------------------------------------------------------------ fakes */

static int64_t fake_now;

struct fake_call {
	unsigned int part, parts;
	size_t len;
	char key[64];
};

static struct {
	struct fake_call calls[64];
	size_t n_calls, n_combines, n_builtin;
	uint64_t tokens_in, tokens_out;
	const char *fail_code; /* set: every call fails with it */
} fake;

static int64_t fake_clock(void *ctx)
{
	(void)ctx;
	return fake_now;
}

static int64_t at(const char *rfc3339)
{
	struct tm tm = {0};

	assert_non_null(strptime(rfc3339, "%Y-%m-%dT%H:%M:%SZ", &tm));
	return (int64_t)timegm(&tm) * 1000000000LL;
}

static void fake_summary(struct summary *s, const char *title, enum summary_risk risk)
{
	memset(s, 0, sizeof(*s));
	s->title = strdup(title);
	s->short_description = strdup("short");
	s->detailed_description = strdup("detailed");
	s->risk_level = risk;
	s->risk_score = risk * 30;
	s->risk_reasons = calloc(1, sizeof(char *));
	s->risk_reasons[0] = strdup("a reason");
	s->n_risk_reasons = 1;
	assert_non_null(s->title);
}

static int fake_summarize(const struct provider_model *m, const char *t, size_t len,
			  unsigned int part, unsigned int parts, struct provider_result *res,
			  struct provider_stats *stats)
{
	struct fake_call *c = &fake.calls[fake.n_calls < 64 ? fake.n_calls : 63];

	(void)t;
	memset(res, 0, sizeof(*res));
	c->part = part;
	c->parts = parts;
	c->len = len;
	snprintf(c->key, sizeof(c->key), "%s", m->api_key ? m->api_key : "");
	fake.n_calls++;
	__atomic_fetch_add(&stats->requests, 1, __ATOMIC_RELAXED);
	res->tokens_in = fake.tokens_in;
	res->tokens_out = fake.tokens_out;
	res->requests = 1;
	if (fake.fail_code) {
		__atomic_fetch_add(&stats->errors, 1, __ATOMIC_RELAXED);
		snprintf(res->error_code, sizeof(res->error_code), "%s", fake.fail_code);
		snprintf(res->error, sizeof(res->error), "HTTP 500 %s", fake.fail_code);
		return -EIO;
	}
	fake_summary(&res->summary, "from the model", SUMMARY_RISK_HIGH);
	return 0;
}

static int fake_combine(const struct provider_model *m, const struct summary *chunks, size_t n,
			struct provider_result *res, struct provider_stats *stats)
{
	(void)m;
	(void)stats;
	memset(res, 0, sizeof(*res));
	assert_true(n > 1);
	assert_string_equal(chunks[n - 1].title, "from the model");
	fake.n_combines++;
	res->tokens_in = 100;
	res->tokens_out = 10;
	fake_summary(&res->summary, "combined", SUMMARY_RISK_CRITICAL);
	return 0;
}

static int fake_builtin(const Sessrec__Event *const *events, size_t n, struct summary *out)
{
	assert_true(n > 2);
	assert_int_equal(events[0]->body_case, SESSREC__EVENT__BODY_START);
	fake.n_builtin++;
	fake_summary(out, "offline", SUMMARY_RISK_LOW);
	return 0;
}

static const struct summarize_hooks hooks = {
    .now = fake_clock,
    .summarize = fake_summarize,
    .combine = fake_combine,
    .builtin = fake_builtin,
};

/* ------------------------------------------------------------ sessions */

struct parts {
	uint8_t *p[16];
	size_t len[16];
	uint32_t n;
};

static int part_cb(void *ctx, uint32_t index, const uint8_t *part, size_t len, bool final)
{
	struct parts *r = ctx;

	(void) final;
	assert_int_equal(index, r->n);
	assert_true(r->n < 16);
	r->p[r->n] = malloc(len);
	assert_non_null(r->p[r->n]);
	memcpy(r->p[r->n], part, len);
	r->len[r->n++] = len;
	return 0;
}

/* Upload and complete a session of user and kind that ran n commands (the hook runs). */
static void session(struct store *st, unsigned int i, const char *user, const char *kind,
		    unsigned int n, char sid[40])
{
	struct rec_writer_opts o = {.part_size = 1 << 20, .no_fsync = true, .on_part = part_cb};
	Sessrec__Event ev;
	Sessrec__SessionStart s;
	Sessrec__SessionEnd e;
	Sessrec__Command c;
	Sessrec__Print pr;
	struct parts parts = {0};
	struct rec_writer *w;
	char path[400], uid[40], arg[64], out[128], why[256];
	char *ic[] = {"bash"}, *argv[2] = {"cat", arg}, *who[] = {(char *)user};
	uint64_t ei = 0;
	int status = 0;

	snprintf(sid, 40, "00000000-0000-4000-8000-%012x", i);
	o.cb_ctx = &parts;
	snprintf(path, sizeof(path), "%s/rec-%u", root, seq++);
	assert_int_equal(rec_writer_open(&w, path, sid, &o), 0);
#define APPEND(body)                                                                               \
	do {                                                                                       \
		sessrec__event__init(&ev);                                                         \
		ev.ei = ei++;                                                                      \
		ev.time_ns = fake_now + (int64_t)ei * 1000000;                                     \
		util_uuid(uid);                                                                    \
		ev.uid = uid;                                                                      \
		body;                                                                              \
		assert_int_equal(rec_writer_append(w, &ev), 0);                                    \
	} while (0)
	sessrec__session_start__init(&s);
	s.sid = sid;
	s.server_id = "node-id";
	s.server_hostname = "web-1";
	s.login = "root";
	s.user = (char *)user;
	s.kind = (char *)kind;
	s.initial_command = ic;
	s.n_initial_command = 1;
	s.cols = 80;
	s.rows = 24;
	APPEND(ev.body_case = SESSREC__EVENT__BODY_START; ev.start = &s);
	for (unsigned int k = 0; k < n; k++) {
		snprintf(arg, sizeof(arg), "/srv/data/file-number-%u.txt", k);
		snprintf(out, sizeof(out), "$ cat %s\r\ncontents of file %u\r\n", arg, k);
		sessrec__print__init(&pr);
		pr.data.data = (uint8_t *)out;
		pr.data.len = strlen(out);
		pr.bytes = pr.data.len;
		APPEND(ev.body_case = SESSREC__EVENT__BODY_PRINT; ev.print = &pr);
		sessrec__command__init(&c);
		c.program = "cat";
		c.path = "/usr/bin/cat";
		c.argv = argv;
		c.n_argv = 2;
		c.pid = 100 + k;
		APPEND(ev.body_case = SESSREC__EVENT__BODY_COMMAND; ev.command = &c);
	}
	sessrec__session_end__init(&e);
	e.participants = who;
	e.n_participants = 1;
	e.interactive = true;
	e.reason = "exited";
	APPEND(ev.body_case = SESSREC__EVENT__BODY_END; ev.end = &e);
#undef APPEND
	assert_int_equal(rec_writer_close(w), 0);
	assert_int_equal(unlink(path), 0);
	for (uint32_t k = 0; k < parts.n; k++) {
		assert_int_equal(collector_part_upload(st, ops, sid, k, parts.p[k], parts.len[k],
						       &status, why, sizeof(why)),
				 0);
		assert_int_equal(status, 201);
		free(parts.p[k]);
	}
	assert_int_equal(collector_session_complete(st, ops, sid, "web-1", parts.n, NULL, &status,
						    why, sizeof(why)),
			 0);
	if (status != 200)
		fail_msg("complete: %d %s", status, why);
}

/* ------------------------------------------------------------ environment */

struct env {
	char dir[300];
	struct collector_config cfg;
	struct store *st;
	struct summarizer *sum;
};

static void env_open(struct env *e, const char *resources)
{
	struct resource *v = NULL;
	char why[512];
	size_t n = 0;
	int status = 0;

	memset(e, 0, sizeof(*e));
	memset(&fake, 0, sizeof(fake));
	fake.tokens_in = 600;
	snprintf(e->dir, sizeof(e->dir), "%s/d%u", root, seq++);
	e->cfg.data_dir = e->dir;
	e->cfg.summary_workers = 0;
	assert_int_equal(ops->open(&e->st, &e->cfg), 0);
	if (resources) {
		assert_int_equal(resource_create(e->st, ops, resources, strlen(resources), false,
						 &v, &n, &status, why, sizeof(why)),
				 0);
		if (status != 201)
			fail_msg("%s", why);
		resource_array_free(v, n);
	}
	assert_int_equal(summarize_start(&e->sum, &e->cfg, e->st, ops, &hooks, 0), 0);
}

static void env_close(struct env *e)
{
	assert_int_equal(summarize_stop(e->sum, 5), 0);
	ops->close(e->st);
	memset(e, 0, sizeof(*e));
}

static void set_resources(struct env *e, const char *yaml)
{
	struct resource *v = NULL;
	char why[512];
	size_t n = 0;
	int status = 0;

	assert_int_equal(resource_create(e->st, ops, yaml, strlen(yaml), true, &v, &n, &status, why,
					 sizeof(why)),
			 0);
	if (status != 201)
		fail_msg("%s", why);
	resource_array_free(v, n);
	assert_int_equal(summarize_reload(e->sum), 0);
}

static char job_status_buf[32];

static int job_of_cb(void *ctx, const struct store_job *j)
{
	(void)ctx;
	if (!job_status_buf[0])
		snprintf(job_status_buf, sizeof(job_status_buf), "%s", j->status);
	return 0;
}

/* The status of sid's newest job ("" when none). */
static const char *job_status(struct env *e, const char *sid)
{
	job_status_buf[0] = '\0';
	assert_int_equal(ops->job_list(e->st, sid, NULL, 10, job_of_cb, NULL), 0);
	return job_status_buf;
}

static int count_cb(void *ctx, const struct store_job *j)
{
	(void)j;
	(*(size_t *)ctx)++;
	return 0;
}

static size_t jobs_of(struct env *e, const char *sid)
{
	size_t n = 0;

	assert_int_equal(ops->job_list(e->st, sid, NULL, 100, count_cb, &n), 0);
	return n;
}

static uint64_t used(struct env *e, const char *model, const char *day)
{
	uint64_t in = 0, out = 0;

	assert_int_equal(ops->usage_get(e->st, model, day, &in, &out), 0);
	return in + out;
}

#define MODEL(name, extra)                                                                         \
	"---\nkind: inference_model\nversion: v1\nmetadata: {name: " name "}\nspec:\n  openai: "   \
	"{openai_model_id: gpt-4o, api_key_secret_ref: key}\n" extra
#define SECRET                                                                                     \
	"---\nkind: inference_secret\nversion: v1\nmetadata: {name: key}\nspec: {value: sk-1}\n"
#define POLICY(name, kinds, model, filter)                                                         \
	"---\nkind: inference_policy\nversion: v1\nmetadata: {name: " name                         \
	"}\nspec: {kinds: " kinds ", model: " model filter "}\n"

/* ------------------------------------------------------------ matching at completion */

static void test_completion_jobs(void **state)
{
	struct env e;
	char a[40], b[40], c[40];

	(void)state;
	fake_now = at("2026-11-22T10:00:00Z");
	env_open(&e, SECRET MODEL("gpt", "") MODEL("other", "") POLICY(
			 "a-alice", "[ssh]", "gpt", ", filter: 'user.metadata.name == \"alice\"'")
			 POLICY("b-ssh", "[ssh]", "other", ""));
	/* a fresh store with resources of its own gets no defaults */
	assert_int_equal(
	    ops->resource_get(e.st, "inference_policy", "default", &(struct store_resource){0}),
	    -ENOENT);
	session(e.st, 1, "alice", "ssh", 3, a);
	session(e.st, 2, "bob", "ssh", 3, b);
	session(e.st, 3, "alice", "local", 3, c); /* no policy for local */
	assert_string_equal(job_status(&e, a), "pending");
	assert_string_equal(job_status(&e, b), "pending");
	assert_string_equal(job_status(&e, c), "");

	/* the first by name decides the model */
	assert_int_equal(summarize_run_once(e.sum), 0);
	assert_int_equal(summarize_run_once(e.sum), 0);
	assert_int_equal(summarize_run_once(e.sum), -ENOENT);
	assert_int_equal(fake.n_calls, 2);
	assert_string_equal(fake.calls[0].key, "sk-1"); /* the secret, resolved */
	{
		struct store_summary m = {0};

		assert_int_equal(ops->summary_get(e.st, a, &m), 0);
		assert_string_equal(m.model_name, "gpt");
		assert_true(m.success);
		assert_string_equal(m.risk_level, "high");
		assert_string_equal(m.origin, "auto");
		store_summary_clear(&m);
		assert_int_equal(ops->summary_get(e.st, b, &m), 0);
		assert_string_equal(m.model_name, "other");
		store_summary_clear(&m);
		assert_int_equal(ops->summary_get(e.st, c, &m), -ENOENT);
	}
	/* at most one automatic summary: a second completion of the same session adds none */
	summarize_session_complete(
	    e.sum,
	    &(struct store_session){.sid = "00000000-0000-4000-8000-000000000001",
				    .user = "alice",
				    .kind = "ssh",
				    .status = "complete"},
	    NULL);
	assert_int_equal(jobs_of(&e, a), 1);
	env_close(&e);
}

/* ------------------------------------------------------------ budgets */

static void test_budget_day_boundary(void **state)
{
	struct env e;
	char a[40], b[40], c[40];
	struct store_summary m = {0};

	(void)state;
	fake_now = at("2026-11-22T23:59:00Z");
	env_open(&e, SECRET MODEL("gpt", "  max_tokens_per_day: 1000\n")
			 POLICY("all", "[ssh, k8s, db, local]", "gpt", ""));
	session(e.st, 1, "alice", "ssh", 2, a);
	session(e.st, 2, "alice", "ssh", 2, b);
	session(e.st, 3, "alice", "ssh", 2, c);

	/* 600 of 1000, then 1200 of 1000 (a request under way is finished), then spent */
	assert_int_equal(summarize_run_once(e.sum), 0);
	assert_int_equal(used(&e, "gpt", "2026-11-22"), 600);
	assert_int_equal(summarize_run_once(e.sum), 0);
	assert_int_equal(used(&e, "gpt", "2026-11-22"), 1200);
	assert_int_equal(summarize_run_once(e.sum), 0);
	assert_int_equal(fake.n_calls, 2);
	assert_string_equal(job_status(&e, c), "budget_exceeded");
	assert_int_equal(ops->summary_get(e.st, c, &m), -ENOENT);
	/* it waits: nothing is due the same day */
	fake_now = at("2026-11-22T23:59:59Z");
	assert_int_equal(summarize_run_once(e.sum), -ENOENT);
	assert_string_equal(job_status(&e, c), "budget_exceeded");

	/* a new UTC day: the budget starts over and the waiting job runs */
	fake_now = at("2026-11-23T00:00:01Z");
	assert_int_equal(summarize_run_once(e.sum), 0);
	assert_string_equal(job_status(&e, c), "done");
	assert_int_equal(fake.n_calls, 3);
	assert_int_equal(used(&e, "gpt", "2026-11-22"), 1200);
	assert_int_equal(used(&e, "gpt", "2026-11-23"), 600);
	assert_int_equal(ops->summary_get(e.st, c, &m), 0);
	assert_true(m.success);
	assert_int_equal(m.tokens_in, 600);
	store_summary_clear(&m);
	env_close(&e);
}

static void test_budget_raised(void **state)
{
	struct env e;
	char a[40], b[40];

	(void)state;
	fake_now = at("2026-11-22T12:00:00Z");
	env_open(&e, SECRET MODEL("gpt", "  max_tokens_per_day: 500\n")
			 POLICY("all", "[ssh]", "gpt", ""));
	session(e.st, 1, "alice", "ssh", 2, a);
	session(e.st, 2, "alice", "ssh", 2, b);
	assert_int_equal(summarize_run_once(e.sum), 0);
	assert_int_equal(summarize_run_once(e.sum), 0);
	assert_string_equal(job_status(&e, b), "budget_exceeded");
	assert_int_equal(summarize_run_once(e.sum), -ENOENT);
	/* the same day, a larger budget: tried again at once */
	set_resources(&e, MODEL("gpt", "  max_tokens_per_day: 5000\n"));
	assert_int_equal(summarize_run_once(e.sum), 0);
	assert_string_equal(job_status(&e, b), "done");
	/* a budget still too small: waiting again */
	set_resources(&e, MODEL("gpt", "  max_tokens_per_day: 1000\n"));
	{
		char c[40];

		session(e.st, 3, "alice", "ssh", 2, c);
		assert_int_equal(summarize_run_once(e.sum), 0);
		assert_string_equal(job_status(&e, c), "budget_exceeded");
	}
	env_close(&e);
}

/* ------------------------------------------------------------ persistence */

static void test_jobs_survive_reopen(void **state)
{
	struct store_job j = {0}, got = {0};
	struct env e;
	int64_t id1 = 0, id2 = 0, id3 = 0;

	(void)state;
	fake_now = at("2026-11-22T12:00:00Z");
	env_open(&e, SECRET MODEL("gpt", ""));
	snprintf(j.sid, sizeof(j.sid), "00000000-0000-4000-8000-0000000000a1");
	snprintf(j.origin, sizeof(j.origin), "auto");
	j.model = "gpt";
	j.policy = "p";
	assert_int_equal(ops->job_add(e.st, &j, &id1), 0);
	assert_int_equal(ops->job_add(e.st, &j, NULL), -EEXIST); /* one automatic per session */
	snprintf(j.sid, sizeof(j.sid), "00000000-0000-4000-8000-0000000000a2");
	snprintf(j.origin, sizeof(j.origin), "manual");
	j.requested_by = "carol";
	assert_int_equal(ops->job_add(e.st, &j, &id2), 0);
	assert_int_equal(ops->job_add(e.st, &j, &id3), 0); /* manual ones: as many as asked */
	/* one claimed (running), one waiting for its time */
	assert_int_equal(ops->job_claim(e.st, fake_now, &got), 0);
	assert_int_equal(got.id, id1);
	assert_string_equal(got.status, "running");
	assert_int_equal(got.attempts, 1);
	store_job_clear(&got);
	assert_int_equal(ops->job_update(e.st, id3, "pending", fake_now + 60000000000LL, "later"),
			 0);
	/* the collector stops (without ending the running job) and starts again */
	assert_int_equal(summarize_stop(e.sum, 1), 0);
	ops->close(e.st);
	assert_int_equal(ops->open(&e.st, &e.cfg), 0);
	assert_int_equal(ops->job_get(e.st, id1, &got), 0);
	assert_string_equal(got.status, "running");
	store_job_clear(&got);
	assert_int_equal(ops->job_get(e.st, id2, &got), 0);
	assert_string_equal(got.status, "pending");
	assert_string_equal(got.origin, "manual");
	assert_string_equal(got.requested_by, "carol");
	store_job_clear(&got);
	assert_int_equal(summarize_start(&e.sum, &e.cfg, e.st, ops, &hooks, 0), 0);
	/* the interrupted job is pending again, its attempts kept */
	assert_int_equal(ops->job_get(e.st, id1, &got), 0);
	assert_string_equal(got.status, "pending");
	assert_int_equal(got.attempts, 1);
	store_job_clear(&got);
	/* still one automatic job for that session */
	snprintf(j.sid, sizeof(j.sid), "00000000-0000-4000-8000-0000000000a1");
	snprintf(j.origin, sizeof(j.origin), "auto");
	assert_int_equal(ops->job_add(e.st, &j, NULL), -EEXIST);
	/* due order: id1 then id2; id3 only after its time */
	assert_int_equal(ops->job_claim(e.st, fake_now, &got), 0);
	assert_int_equal(got.id, id1);
	store_job_clear(&got);
	assert_int_equal(ops->job_claim(e.st, fake_now, &got), 0);
	assert_int_equal(got.id, id2);
	store_job_clear(&got);
	assert_int_equal(ops->job_claim(e.st, fake_now, &got), -ENOENT);
	assert_int_equal(ops->job_claim(e.st, fake_now + 61000000000LL, &got), 0);
	assert_int_equal(got.id, id3);
	assert_int_equal(got.attempts, 1);
	store_job_clear(&got);
	env_close(&e);
}

/* ------------------------------------------------------------ chunks, failures, audit */

struct audit_find {
	char line[4096];
	size_t n;
};

static int audit_cb(void *ctx, uint64_t cursor, const char *line)
{
	struct audit_find *f = ctx;

	(void)cursor;
	if (strstr(line, "\"session.summarized\"")) {
		snprintf(f->line, sizeof(f->line), "%s", line);
		f->n++;
	}
	return 0;
}

static void test_chunks(void **state)
{
	struct store_summary m = {0};
	struct env e;
	char a[40];

	(void)state;
	fake_now = at("2026-11-22T12:00:00Z");
	env_open(&e, SECRET MODEL("gpt", "  max_session_length_bytes: 1024\n")
			 POLICY("all", "[ssh]", "gpt", ""));
	session(e.st, 1, "alice", "ssh", 60, a);
	assert_int_equal(summarize_run_once(e.sum), 0);
	/* never skipped for its size: in parts, each at most the limit, then combined */
	assert_true(fake.n_calls > 1);
	assert_int_equal(fake.n_combines, 1);
	for (size_t i = 0; i < fake.n_calls; i++) {
		assert_int_equal(fake.calls[i].part, i + 1);
		assert_int_equal(fake.calls[i].parts, fake.n_calls);
		assert_true(fake.calls[i].len <= 1024 && fake.calls[i].len > 0);
	}
	assert_int_equal(ops->summary_get(e.st, a, &m), 0);
	assert_true(m.success);
	assert_int_equal(m.chunks, fake.n_calls);
	assert_string_equal(m.title, "combined");
	assert_string_equal(m.risk_level, "critical");
	assert_int_equal(m.tokens_in, 600 * fake.n_calls + 100);
	assert_int_equal(m.tokens_out, 10);
	assert_true(m.transcript_bytes > 1024);
	store_summary_clear(&m);
	env_close(&e);
}

static void test_failure_recorded(void **state)
{
	struct store_summary m = {0};
	struct audit_find f = {0};
	struct env e;
	char a[40], *metrics = NULL;
	size_t len = 0;
	uint64_t next = 0;
	FILE *mf;
	json_t *o;

	(void)state;
	fake_now = at("2026-11-22T12:00:00Z");
	env_open(&e, SECRET MODEL("gpt", "") POLICY("all", "[ssh]", "gpt", ""));
	fake.fail_code = "server_error";
	session(e.st, 1, "alice", "ssh", 2, a);
	assert_int_equal(summarize_run_once(e.sum), 0);
	assert_string_equal(job_status(&e, a), "failed");
	assert_int_equal(ops->summary_get(e.st, a, &m), 0);
	assert_false(m.success);
	assert_string_equal(m.error_code, "server_error");
	assert_non_null(strstr(m.error, "HTTP 500 server_error"));
	assert_string_equal(m.risk_level, "");
	store_summary_clear(&m);
	/* the tokens of a failed request still count */
	assert_int_equal(used(&e, "gpt", "2026-11-22"), 600);

	/* the central audit log says so */
	assert_int_equal(ops->audit_read(e.st, 0, 10000, audit_cb, &f, &next), 0);
	assert_int_equal(f.n, 1);
	o = json_loads(f.line, 0, NULL);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "code")), SUMMARIZE_CODE_FAILED);
	assert_string_equal(json_string_value(json_object_get(o, "sid")), a);
	assert_string_equal(json_string_value(json_object_get(o, "user")), "alice");
	assert_string_equal(json_string_value(json_object_get(o, "model_name")), "gpt");
	assert_true(json_is_false(json_object_get(o, "success")));
	assert_string_equal(json_string_value(json_object_get(o, "error_code")), "server_error");
	json_decref(o);
	assert_null(strstr(f.line, "sk-1"));

	/* then it works: a summarized line with the risk */
	fake.fail_code = NULL;
	{
		struct store_job job = {0};
		char why[256];
		int status = 0;

		assert_int_equal(
		    summarize_request(e.sum, a, "gpt", "carol", &job, &status, why, sizeof(why)),
		    0);
		assert_int_equal(status, 202);
		store_job_clear(&job);
	}
	assert_int_equal(summarize_run_once(e.sum), 0);
	memset(&f, 0, sizeof(f));
	assert_int_equal(ops->audit_read(e.st, 0, 10000, audit_cb, &f, &next), 0);
	assert_int_equal(f.n, 2);
	o = json_loads(f.line, 0, NULL);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "event")), "session.summarized");
	assert_string_equal(json_string_value(json_object_get(o, "code")), SUMMARIZE_CODE_OK);
	assert_string_equal(json_string_value(json_object_get(o, "risk_level")), "high");
	assert_string_equal(json_string_value(json_object_get(o, "short_description")), "short");
	assert_string_equal(json_string_value(json_object_get(o, "title")), "from the model");
	assert_string_equal(json_string_value(json_object_get(o, "origin")), "manual");
	assert_true(json_is_true(json_object_get(o, "success")));
	assert_int_equal(json_integer_value(json_object_get(o, "risk_score")), 60);
	json_decref(o);

	/* metrics by model, and by error code */
	mf = open_memstream(&metrics, &len);
	assert_non_null(mf);
	summarize_metrics_write(e.sum, mf);
	assert_int_equal(fclose(mf), 0);
	assert_non_null(strstr(metrics, "sessrec_collector_summarizations_total{"
					"inference_model_name=\"gpt\"} 2\n"));
	assert_non_null(strstr(metrics, "sessrec_collector_summarization_errors_total{"
					"inference_model_name=\"gpt\"} 1\n"));
	assert_non_null(strstr(metrics,
			       "sessrec_collector_provider_api_errors_total{"
			       "inference_model_name=\"gpt\",api_error_code=\"server_error\"} "
			       "1\n"));
	assert_non_null(strstr(metrics, "sessrec_collector_inference_tokens_in_total{"
					"inference_model_name=\"gpt\"} 1200\n"));
	assert_non_null(strstr(metrics, "sessrec_collector_provider_requests_total{"
					"inference_model_name=\"gpt\"} 2\n"));
	free(metrics);
	env_close(&e);
}

/* ------------------------------------------------------------ on demand, builtin */

static void test_requests(void **state)
{
	struct store_job job = {0}, again = {0};
	struct store_summary m = {0};
	struct env e;
	char a[40], why[256];
	int status = 0;

	(void)state;
	fake_now = at("2026-11-22T12:00:00Z");
	/* a fresh store: the default policy sends everything to builtin */
	env_open(&e, NULL);
	session(e.st, 1, "alice", "local", 3, a);
	assert_string_equal(job_status(&e, a), "pending");
	assert_int_equal(summarize_run_once(e.sum), 0);
	assert_int_equal(fake.n_builtin, 1);
	assert_int_equal(fake.n_calls, 0);
	assert_int_equal(ops->summary_get(e.st, a, &m), 0);
	assert_string_equal(m.provider, "builtin");
	assert_string_equal(m.title, "offline");
	assert_int_equal(m.tokens_in, 0);
	store_summary_clear(&m);

	/* without a model: the policy's; twice while queued: the same job */
	assert_int_equal(
	    summarize_request(e.sum, a, NULL, "carol", &job, &status, why, sizeof(why)), 0);
	assert_int_equal(status, 202);
	assert_string_equal(job.model, "builtin");
	assert_string_equal(job.origin, "manual");
	assert_string_equal(job.requested_by, "carol");
	assert_int_equal(
	    summarize_request(e.sum, a, NULL, "dave", &again, &status, why, sizeof(why)), 0);
	assert_int_equal(status, 202);
	assert_int_equal(again.id, job.id);
	store_job_clear(&job);
	store_job_clear(&again);
	assert_int_equal(summarize_run_once(e.sum), 0);
	assert_int_equal(fake.n_builtin, 2);

	/* refusals */
	assert_int_equal(
	    summarize_request(e.sum, a, "nosuch", "c", &job, &status, why, sizeof(why)), 0);
	assert_int_equal(status, 404);
	assert_string_equal(why, "no inference_model \"nosuch\"");
	assert_int_equal(summarize_request(e.sum, "00000000-0000-4000-8000-00000000ffff", NULL, "c",
					   &job, &status, why, sizeof(why)),
			 0);
	assert_int_equal(status, 404);
	set_resources(&e, "kind: inference_policy\nversion: v1\nmetadata: {name: default}\n"
			  "spec: {kinds: [k8s], model: builtin}\n");
	assert_int_equal(summarize_request(e.sum, a, NULL, "c", &job, &status, why, sizeof(why)),
			 0);
	assert_int_equal(status, 400);
	assert_non_null(strstr(why, "no inference policy selects session"));
	/* a model that was removed: a failed summary, not a stuck job */
	set_resources(&e, SECRET MODEL("gone", ""));
	assert_int_equal(summarize_request(e.sum, a, "gone", "c", &job, &status, why, sizeof(why)),
			 0);
	assert_int_equal(status, 202);
	store_job_clear(&job);
	assert_int_equal(ops->resource_delete(e.st, "inference_model", "gone"), 0);
	assert_int_equal(summarize_run_once(e.sum), 0);
	assert_int_equal(ops->summary_get(e.st, a, &m), 0);
	assert_false(m.success);
	assert_string_equal(m.error_code, "model_not_found");
	store_summary_clear(&m);
	env_close(&e);
}

/* The risk filter of the session list: the latest successful summary's level. */
struct listed {
	size_t n;
	char sid[4][40];
};

static int list_cb(void *ctx, const struct store_session *ss)
{
	struct listed *l = ctx;

	if (l->n < 4)
		snprintf(l->sid[l->n], 40, "%s", ss->sid);
	l->n++;
	return 0;
}

static void test_risk_filter(void **state)
{
	struct store_session ss = {0};
	struct store_filter f = {0};
	struct listed l = {0};
	struct env e;
	char a[40], b[40];

	(void)state;
	fake_now = at("2026-11-22T12:00:00Z");
	env_open(&e, SECRET MODEL("gpt", "") POLICY("all", "[ssh]", "gpt", ""));
	session(e.st, 1, "alice", "ssh", 2, a);
	session(e.st, 2, "bob", "ssh", 2, b);
	assert_int_equal(summarize_run_once(e.sum), 0);
	fake.fail_code = "x"; /* b: failed, so no risk level */
	assert_int_equal(summarize_run_once(e.sum), 0);
	assert_int_equal(ops->session_get(e.st, a, &ss), 0);
	assert_string_equal(ss.risk_level, "high");
	store_session_clear(&ss);
	assert_int_equal(ops->session_get(e.st, b, &ss), 0);
	assert_string_equal(ss.risk_level, "");
	store_session_clear(&ss);
	f.risk = "high";
	assert_int_equal(ops->session_list(e.st, &f, list_cb, &l, NULL), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.sid[0], a);
	/* a later summary rates it anew: the latest counts */
	fake.fail_code = NULL;
	{
		struct store_job job = {0};
		char why[256];
		int status = 0;

		assert_int_equal(
		    summarize_request(e.sum, a, "builtin", "c", &job, &status, why, sizeof(why)),
		    0);
		assert_int_equal(status, 404); /* resources of their own: no builtin model */
		set_resources(&e, "kind: inference_model\nversion: v1\nmetadata: {name: builtin}\n"
				  "spec: {builtin: {}}\n");
		assert_int_equal(
		    summarize_request(e.sum, a, "builtin", "c", &job, &status, why, sizeof(why)),
		    0);
		assert_int_equal(status, 202);
		store_job_clear(&job);
	}
	assert_int_equal(summarize_run_once(e.sum), 0);
	memset(&l, 0, sizeof(l));
	assert_int_equal(ops->session_list(e.st, &f, list_cb, &l, NULL), 0);
	assert_int_equal(l.n, 0);
	f.risk = "low";
	assert_int_equal(ops->session_list(e.st, &f, list_cb, &l, NULL), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.sid[0], a);
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
	snprintf(root, sizeof(root), "/tmp/sessrec-test-jobs-XXXXXX");
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
	    cmocka_unit_test(test_completion_jobs), cmocka_unit_test(test_budget_day_boundary),
	    cmocka_unit_test(test_budget_raised),   cmocka_unit_test(test_jobs_survive_reopen),
	    cmocka_unit_test(test_chunks),	    cmocka_unit_test(test_failure_recorded),
	    cmocka_unit_test(test_requests),	    cmocka_unit_test(test_risk_filter),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
