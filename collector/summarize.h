/*
 * The summarizer: policy matching at completion, the job queue in the store,
 * worker threads that read recordings, build transcripts and call providers,
 * token budgets, summary records, the session.summarized audit line and the
 * per-model metrics. Private to collector/ (http.c, api_manage.c, main.c).
 */
#ifndef SESSREC_COLLECTOR_SUMMARIZE_H
#define SESSREC_COLLECTOR_SUMMARIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "collector.h"
#include "provider.h"

#define SUMMARIZE_EVENT		  "session.summarized"
#define SUMMARIZE_CODE_OK	  "SR5000I" /* a summary was made */
#define SUMMARIZE_CODE_FAILED	  "SR5000E" /* summarizing failed: error_code says why */
#define SUMMARIZE_EVENTS_MAX	  500000    /* events handed to the built-in summarizer */
#define SUMMARIZE_ATTEMPTS_MAX	  5	    /* tries of a job that meets a store error */
#define SUMMARIZE_DEFAULT_TIMEOUT 60
#define SUMMARIZE_DEFAULT_RETRIES 4

/*
 * What the summarizer calls out to; NULL members take the real ones
 * (util_now_ns, provider_summarize, provider_combine, summary_builtin).
 * Tests put a clock and fake providers here.
 */
struct summarize_hooks {
	int64_t (*now)(void *ctx);
	int (*summarize)(const struct provider_model *m, const char *transcript, size_t len,
			 unsigned int part, unsigned int parts, struct provider_result *res,
			 struct provider_stats *stats);
	int (*combine)(const struct provider_model *m, const struct summary *chunks, size_t n,
		       struct provider_result *res, struct provider_stats *stats);
	int (*builtin)(const Sessrec__Event *const *events, size_t n, struct summary *out);
	void *ctx;
};

struct summarizer;

/*
 * Install the default resources on a fresh store, load the policies, make
 * jobs left running by a previous collector pending again, register the
 * completion hook and start workers threads (0: none; tests call
 * summarize_run_once). cfg, st and ops must outlive it. 0 or -errno.
 */
int summarize_start(struct summarizer **out, const struct collector_config *cfg, struct store *st,
		    const struct store_ops *ops, const struct summarize_hooks *hooks,
		    unsigned int workers);
/*
 * Stop taking jobs and wait at most timeout_s for jobs in progress. 0 when
 * every worker ended (and s is freed); -EBUSY when one is still waiting on a
 * provider: s is left alone (the process is about to exit; the job is
 * pending again at the next start). Accepts NULL.
 */
int summarize_stop(struct summarizer *s, unsigned int timeout_s);

/* Resources changed: reload policies and models, re-check budget-exceeded jobs. */
int summarize_reload(struct summarizer *s);

/* The completion hook (collector_set_complete_hook): match and maybe enqueue. */
void summarize_session_complete(void *ctx, const struct store_session *row, const char *end_line);

/*
 * POST /v1/sessions/{sid}/summarize: a manual job with model (NULL: the
 * model of the policy the session meets). *status 202 (*job filled), 404
 * unknown session or model, 409 not complete, 400 no policy and no model;
 * why says so. -errno on store failures.
 */
int summarize_request(struct summarizer *s, const char *sid, const char *model, const char *who,
		      struct store_job *job, int *status, char *why, size_t whylen);

/* Claim and run one due job now. 0 when one ran, -ENOENT when none was due. */
int summarize_run_once(struct summarizer *s);

/* The UTC day of ns, "2026-11-22" (token budgets count per UTC day). */
void summarize_day(int64_t ns, char out[16]);

/* Prometheus text of the per-model families, appended to f. */
void summarize_metrics_write(struct summarizer *s, FILE *f);

#endif
