/*
 * Summarization providers: OpenAI-compatible chat completions, Amazon
 * Bedrock's Converse API, and the offline built-in summarizer.
 */
#ifndef SESSREC_PROVIDER_H
#define SESSREC_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "transcript.h"

/* An inference_model resource, resolved (the secret's value filled in). */
struct provider_model {
	const char *name;     /* the resource's name */
	const char *kind;     /* "openai", "bedrock" or "builtin" */
	const char *model_id; /* openai_model_id or bedrock_model_id */
	const char *base_url; /* openai: default https://api.openai.com/v1 */
	const char *api_key;  /* openai: the secret's value (never logged) */
	const char *region;   /* bedrock */
	double temperature;
	uint32_t timeout_s;   /* per request; default 60 */
	uint32_t max_retries; /* 429/5xx/timeouts; default 4 */
			      /* bedrock: the standard AWS variables are read from the environment
			       * (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN); an
			       * endpoint override (tests, VPC endpoints) in AWS_ENDPOINT_URL_BEDROCK_RUNTIME. */
};

/* What one call produced. */
struct provider_result {
	struct summary summary;
	uint64_t tokens_in, tokens_out;
	uint32_t requests;   /* HTTP requests made, retries included */
	int http_status;     /* of the last request, 0 when none */
	char error_code[64]; /* provider error code or "timeout", "bad_json", "off_schema" */
	char error[256];     /* one line, never containing the key */
};

/* Counters the provider updates (the collector exposes them as metrics). */
struct provider_stats {
	uint64_t requests, errors, in_flight;
};

/*
 * Summarize one transcript (or one chunk of it; `part`/`parts` say which, so
 * the prompt can tell the model). Returns 0 with res->summary filled, or
 * -errno with res->error/res->error_code set. Retries 429, 5xx and timeouts
 * with capped exponential backoff; other 4xx, unparsable or off-schema answers
 * fail at once.
 */
int provider_summarize(const struct provider_model *m, const char *transcript, size_t len,
		       unsigned int part, unsigned int parts, struct provider_result *res,
		       struct provider_stats *stats);

/*
 * Combine the summaries of several chunks into one (a further request for
 * model providers; a merge for builtin).
 */
int provider_combine(const struct provider_model *m, const struct summary *chunks, size_t n,
		     struct provider_result *res, struct provider_stats *stats);

/* The JSON schema the model must answer with (also used to validate answers). */
const char *provider_summary_schema(void);
/* Parse a model's JSON answer into a summary; -EBADMSG with a reason when off-schema. */
int provider_parse_summary(const char *json, struct summary *out, char *why, size_t whylen);

#endif
