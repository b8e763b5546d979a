/*
 * OpenAI chat completions (and the servers that speak it: Azure OpenAI's
 * compatible endpoint, vLLM, Ollama, LiteLLM, ...).
 *
 * POST {base_url}/chat/completions, Authorization: Bearer <key> (none when the
 * model has no key, for local servers), asking for structured output:
 *   {"model": M, "temperature": T,
 *    "messages": [{"role": "system", "content": PROMPT},
 *                 {"role": "user", "content": TRANSCRIPT}],
 *    "response_format": {"type": "json_schema", "json_schema": {
 *        "name": "session_summary", "strict": true, "schema": SCHEMA}}}
 * The answer is choices[0].message.content, a JSON text; the tokens are
 * usage.prompt_tokens and usage.completion_tokens. Errors come as
 * {"error": {"message", "type", "param", "code"}}.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider_impl.h"

#define OPENAI_DEFAULT_BASE_URL "https://api.openai.com/v1"

static int openai_prepare(const struct provider_model *m, const char *system, const char *user,
			  struct provider_req *req, struct provider_fail *f)
{
	const char *base = m->base_url && m->base_url[0] ? m->base_url : OPENAI_DEFAULT_BASE_URL;
	size_t blen = strlen(base);
	json_t *schema = NULL, *body = NULL;
	json_error_t jerr;
	int ret = -EINVAL;

	if (!m->model_id || !m->model_id[0]) {
		provider_fail_set(f, "config", "no openai_model_id");
		goto out;
	}
	if (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0) {
		provider_fail_set(f, "config", "base_url must start with http:// or https://");
		goto out;
	}
	while (blen > 0 && base[blen - 1] == '/')
		blen--;
	ret = -ENOMEM;
	if (asprintf(&req->url, "%.*s/chat/completions", (int)blen, base) < 0) {
		req->url = NULL;
		provider_fail_set(f, "internal", "out of memory");
		goto out;
	}
	schema = json_loads(provider_summary_schema(), 0, &jerr);
	if (schema)
		body =
		    json_pack("{s:s, s:f, s:[{s:s, s:s}, {s:s, s:s}], s:{s:s, s:{s:s, s:b, s:O}}}",
			      "model", m->model_id, "temperature", m->temperature, "messages",
			      "role", "system", "content", system, "role", "user", "content", user,
			      "response_format", "type", "json_schema", "json_schema", "name",
			      PROVIDER_SCHEMA_NAME, "strict", 1, "schema", schema);
	if (body)
		req->body = json_dumps(body, JSON_COMPACT);
	if (!req->body) {
		provider_fail_set(f, "internal", "cannot build the request");
		goto out;
	}
	req->body_len = strlen(req->body);
	if (provider_req_header(req, "Content-Type: application/json") ||
	    provider_req_header(req, "Accept: application/json") ||
	    provider_req_header(req, "Expect:")) {
		provider_fail_set(f, "internal", "out of memory");
		goto out;
	}
	if (m->api_key && m->api_key[0]) {
		req->bearer = strdup(m->api_key);
		if (!req->bearer) {
			provider_fail_set(f, "internal", "out of memory");
			goto out;
		}
		req->redact[0] = req->bearer;
	}
	ret = 0;
out:
	json_decref(schema);
	json_decref(body);
	return ret;
}

static int openai_answer(json_t *root, json_t **answer, uint64_t *tokens_in, uint64_t *tokens_out,
			 struct provider_fail *f)
{
	json_t *usage = json_object_get(root, "usage");
	json_t *choice = json_array_get(json_object_get(root, "choices"), 0);
	json_t *msg = json_object_get(choice, "message");
	const char *content = provider_json_str(msg, "content");
	const char *finish = provider_json_str(choice, "finish_reason");

	*tokens_in = provider_json_count(usage, "prompt_tokens");
	*tokens_out = provider_json_count(usage, "completion_tokens");
	if (provider_json_str(msg, "refusal")) {
		provider_fail_set(f, "refusal", "the model refused: %s",
				  provider_json_str(msg, "refusal"));
		return -EBADMSG;
	}
	if (!content) {
		provider_fail_set(f, "bad_json", "no choices[0].message.content in the response");
		return -EBADMSG;
	}
	if (finish && strcmp(finish, "length") == 0) {
		provider_fail_set(f, "bad_json", "the answer was cut at the token limit");
		return -EBADMSG;
	}
	*answer = json_stringn(content, json_string_length(json_object_get(msg, "content")));
	if (!*answer) {
		provider_fail_set(f, "internal", "out of memory");
		return -ENOMEM;
	}
	return 0;
}

static void openai_error(json_t *root, const char *error_type_header, struct provider_fail *f)
{
	json_t *err = json_object_get(root, "error"), *code = json_object_get(err, "code");
	const char *msg = provider_json_str(err, "message");
	char num[32] = "";

	(void)error_type_header;
	if (!msg) /* compatible servers: {"error": "text"} or {"message": "text"} */
		msg = json_is_string(err) ? json_string_value(err)
					  : provider_json_str(root, "message");
	if (json_is_integer(code))
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(code));
	if (json_is_string(code) && json_string_value(code)[0])
		provider_fail_set(f, json_string_value(code), "%s", msg ? msg : "");
	else if (provider_json_str(err, "type") && provider_json_str(err, "type")[0])
		provider_fail_set(f, provider_json_str(err, "type"), "%s", msg ? msg : "");
	else
		provider_fail_set(f, num, "%s", msg ? msg : "");
}

const struct provider_backend provider_openai_backend = {
    .kind = "openai",
    .prepare = openai_prepare,
    .answer = openai_answer,
    .error = openai_error,
};
