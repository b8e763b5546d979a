/*
 * Private to collector/provider*.c: one table per model provider (how to
 * build its request, read its answer and its errors) and the request that
 * provider.c's retry loop sends.
 */
#ifndef SESSREC_PROVIDER_IMPL_H
#define SESSREC_PROVIDER_IMPL_H

#include <curl/curl.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "provider.h"

/* The tool (Bedrock) and json_schema (OpenAI) name the model answers with. */
#define PROVIDER_SCHEMA_NAME "session_summary"
/* Bedrock's inferenceConfig.maxTokens: a summary is well under 2,000 tokens. */
#define PROVIDER_MAX_TOKENS 4096

/* A request ready to send, and sent again as is on a retry. */
struct provider_req {
	char *url;
	char *target; /* request target to send instead of the URL's, or NULL */
	struct curl_slist *headers;
	char *body;
	size_t body_len;
	char *bearer;	       /* OpenAI key: Authorization: Bearer (zeroed on free) */
	char *sigv4;	       /* CURLOPT_AWS_SIGV4 parameter, or NULL */
	char *sigv4_user;      /* AWS access key id */
	char *sigv4_secret;    /* AWS secret access key (zeroed on free) */
	const char *redact[4]; /* values no message may contain (borrowed) */
};

/* What went wrong, for struct provider_result. */
struct provider_fail {
	char code[64];
	char msg[192];
};

struct provider_backend {
	const char *kind;
	/* Build the request for one system prompt and one user message. */
	int (*prepare)(const struct provider_model *m, const char *system, const char *user,
		       struct provider_req *req, struct provider_fail *f);
	/*
	 * From a 2xx body: the answer (a new reference: an object, or a string still to
	 * parse) and the tokens spent. -EBADMSG with f set when there is none.
	 */
	int (*answer)(json_t *root, json_t **answer, uint64_t *tokens_in, uint64_t *tokens_out,
		      struct provider_fail *f);
	/* From an error response (root NULL when the body is not JSON): code and message. */
	void (*error)(json_t *root, const char *error_type_header, struct provider_fail *f);
};

extern const struct provider_backend provider_openai_backend;
extern const struct provider_backend provider_bedrock_backend;

/* Append a header line built from fmt; 0 or -ENOMEM. */
int provider_req_header(struct provider_req *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Set f's code and message (the message formatted, cut to fit). */
void provider_fail_set(struct provider_fail *f, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A string member of obj, or NULL. */
const char *provider_json_str(const json_t *obj, const char *key);
/* An integer member >= 0 of obj, or 0. */
uint64_t provider_json_count(const json_t *obj, const char *key);
/* s with every byte except A-Za-z0-9-._~ percent-encoded (malloc'd), or NULL. */
char *provider_pct_encode(const char *s);

#endif
