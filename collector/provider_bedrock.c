/*
 * Amazon Bedrock's Converse API.
 *
 * POST https://bedrock-runtime.{region}.amazonaws.com/model/{model id}/converse
 * (AWS_ENDPOINT_URL_BEDROCK_RUNTIME, else AWS_ENDPOINT_URL, replaces the
 * scheme and host for tests and VPC endpoints), signed with SigV4 by libcurl
 * (CURLOPT_AWS_SIGV4 "aws:amz:{region}:bedrock", the key id and secret as
 * user and password, x-amz-security-token when AWS_SESSION_TOKEN is set):
 *   {"messages": [{"role": "user", "content": [{"text": TRANSCRIPT}]}],
 *    "system": [{"text": PROMPT}],
 *    "inferenceConfig": {"temperature": T, "maxTokens": N},
 *    "toolConfig": {"tools": [{"toolSpec": {"name": "session_summary",
 *        "description": ..., "inputSchema": {"json": SCHEMA}}}],
 *      "toolChoice": {"tool": {"name": "session_summary"}}}}
 * Forcing the one tool is how Converse gives structured output: the summary is
 * output.message.content[].toolUse.input, an object. A model that answers with
 * text instead (no tool support) is read as JSON text. Tokens: usage.inputTokens
 * and usage.outputTokens. Errors: the x-amzn-ErrorType header
 * ("ThrottlingException:http://...") and {"message": ...}.
 *
 * The path: model ids hold ':' ("anthropic.claude-3-5-haiku-20241022-v1:0")
 * and ARNs '/' too, sent percent-encoded. SigV4 for every service but S3
 * signs the path encoded once more (%3A becomes %253A). libcurl does that
 * itself since 8.9.0; older ones sign the path as sent, which AWS refuses, so
 * for them the URL carries the doubly encoded path (what curl signs) and
 * CURLOPT_REQUEST_TARGET the one sent.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider_impl.h"

#define BEDROCK_SIGV4_ENCODES_PATH 0x080900 /* first libcurl that encodes the path itself */

/* The endpoint: scheme://host[:port][/path] without a trailing slash (malloc'd). */
static int bedrock_endpoint(const char *region, char **out, struct provider_fail *f)
{
	const char *e = getenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME");
	size_t len;

	if (!e || !e[0])
		e = getenv("AWS_ENDPOINT_URL");
	if (!e || !e[0]) {
		if (asprintf(out, "https://bedrock-runtime.%s.amazonaws.com", region) < 0) {
			*out = NULL;
			provider_fail_set(f, "internal", "out of memory");
			return -ENOMEM;
		}
		return 0;
	}
	if (strncmp(e, "http://", 7) != 0 && strncmp(e, "https://", 8) != 0) {
		provider_fail_set(f, "config",
				  "AWS_ENDPOINT_URL_BEDROCK_RUNTIME must start with http(s)://");
		return -EINVAL;
	}
	len = strlen(e);
	while (len > 0 && e[len - 1] == '/')
		len--;
	*out = strndup(e, len);
	if (!*out) {
		provider_fail_set(f, "internal", "out of memory");
		return -ENOMEM;
	}
	return 0;
}

/* The region goes into a host name and the SigV4 parameter: letters, digits, '-'. */
static bool bedrock_region_ok(const char *r)
{
	if (!r[0] || strlen(r) > 32)
		return false;
	for (; *r; r++) {
		if (!((*r >= 'a' && *r <= 'z') || (*r >= '0' && *r <= '9') || *r == '-'))
			return false;
	}
	return true;
}

static json_t *bedrock_body(const struct provider_model *m, const char *system, const char *user)
{
	json_error_t jerr;
	json_t *schema = json_loads(provider_summary_schema(), 0, &jerr), *body = NULL;

	if (!schema)
		return NULL;
	body = json_pack("{s:[{s:s, s:[{s:s}]}], s:[{s:s}], s:{s:f, s:i}, "
			 "s:{s:[{s:{s:s, s:s, s:{s:O}}}], s:{s:{s:s}}}}",
			 "messages", "role", "user", "content", "text", user, "system", "text",
			 system, "inferenceConfig", "temperature", m->temperature, "maxTokens",
			 PROVIDER_MAX_TOKENS, "toolConfig", "tools", "toolSpec", "name",
			 PROVIDER_SCHEMA_NAME, "description",
			 "Record the summary and risk assessment of the session.", "inputSchema",
			 "json", schema, "toolChoice", "tool", "name", PROVIDER_SCHEMA_NAME);
	json_decref(schema);
	return body;
}

static int bedrock_prepare(const struct provider_model *m, const char *system, const char *user,
			   struct provider_req *req, struct provider_fail *f)
{
	const char *key_id = getenv("AWS_ACCESS_KEY_ID"), *secret = getenv("AWS_SECRET_ACCESS_KEY");
	const char *token = getenv("AWS_SESSION_TOKEN"), *region = m->region;
	char *endpoint = NULL, *enc = NULL, *enc2 = NULL;
	const char *path;
	json_t *body = NULL;
	int ret = -EINVAL;

	if (!region || !region[0])
		region = getenv("AWS_DEFAULT_REGION");
	if (!region || !region[0])
		region = getenv("AWS_REGION");
	if (!m->model_id || !m->model_id[0]) {
		provider_fail_set(f, "config", "no bedrock_model_id");
		goto out;
	}
	if (!region || !region[0]) {
		provider_fail_set(f, "config",
				  "no region: set the model's region or "
				  "AWS_DEFAULT_REGION");
		goto out;
	}
	if (!bedrock_region_ok(region)) {
		provider_fail_set(f, "config", "bad region name");
		goto out;
	}
	if (!key_id || !key_id[0] || !secret || !secret[0]) {
		provider_fail_set(
		    f, "no_credentials",
		    "AWS credentials missing: set AWS_ACCESS_KEY_ID and "
		    "AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones)");
		ret = -ENOKEY;
		goto out;
	}
	ret = bedrock_endpoint(region, &endpoint, f);
	if (ret)
		goto out;
	ret = -ENOMEM;
	enc = provider_pct_encode(m->model_id);
	if (!enc)
		goto nomem;
	if (curl_version_info(CURLVERSION_NOW)->version_num >= BEDROCK_SIGV4_ENCODES_PATH) {
		if (asprintf(&req->url, "%s/model/%s/converse", endpoint, enc) < 0)
			goto nomem_url;
	} else {
		enc2 = provider_pct_encode(enc);
		if (!enc2)
			goto nomem;
		if (asprintf(&req->url, "%s/model/%s/converse", endpoint, enc2) < 0)
			goto nomem_url;
		path = strchr(strstr(endpoint, "://") + 3, '/'); /* the endpoint's own path */
		if (asprintf(&req->target, "%s/model/%s/converse", path ? path : "", enc) < 0) {
			req->target = NULL;
			goto nomem;
		}
	}
	body = bedrock_body(m, system, user);
	if (body)
		req->body = json_dumps(body, JSON_COMPACT);
	if (!req->body)
		goto nomem;
	req->body_len = strlen(req->body);
	/*
	 * No "Expect:" to turn off 100-continue here: libcurl before 8.x signs that
	 * empty header without sending it, and AWS then refuses the signature.
	 */
	if (provider_req_header(req, "Content-Type: application/json") ||
	    provider_req_header(req, "Accept: application/json") ||
	    (token && token[0] && provider_req_header(req, "x-amz-security-token: %s", token)))
		goto nomem;
	if (asprintf(&req->sigv4, "aws:amz:%s:bedrock", region) < 0) {
		req->sigv4 = NULL;
		goto nomem;
	}
	req->sigv4_user = strdup(key_id);
	req->sigv4_secret = strdup(secret);
	if (!req->sigv4_user || !req->sigv4_secret)
		goto nomem;
	req->redact[0] = req->sigv4_secret;
	req->redact[1] = token && token[0] ? token : NULL;
	ret = 0;
	goto out;
nomem_url:
	req->url = NULL;
nomem:
	provider_fail_set(f, "internal", "out of memory");
out:
	json_decref(body);
	free(endpoint);
	free(enc);
	free(enc2);
	return ret;
}

/* The summary from a toolUse block, else from the first text block. */
static int bedrock_answer(json_t *root, json_t **answer, uint64_t *tokens_in, uint64_t *tokens_out,
			  struct provider_fail *f)
{
	json_t *usage = json_object_get(root, "usage"), *block, *text = NULL;
	json_t *content =
	    json_object_get(json_object_get(json_object_get(root, "output"), "message"), "content");
	const char *stop = provider_json_str(root, "stopReason");
	size_t i;

	*tokens_in = provider_json_count(usage, "inputTokens");
	*tokens_out = provider_json_count(usage, "outputTokens");
	if (stop && strcmp(stop, "max_tokens") == 0) {
		provider_fail_set(f, "bad_json", "the answer was cut at the token limit");
		return -EBADMSG;
	}
	json_array_foreach(content, i, block)
	{
		json_t *use = json_object_get(block, "toolUse");
		json_t *input = json_object_get(use, "input");
		const char *name = provider_json_str(use, "name");

		if (input && name && strcmp(name, PROVIDER_SCHEMA_NAME) == 0) {
			*answer = json_incref(input);
			return 0;
		}
		if (!text && json_is_string(json_object_get(block, "text")))
			text = json_object_get(block, "text");
	}
	if (text) {
		*answer = json_incref(text);
		return 0;
	}
	provider_fail_set(f, "bad_json", "no toolUse or text in output.message.content");
	return -EBADMSG;
}

static void bedrock_error(json_t *root, const char *error_type_header, struct provider_fail *f)
{
	const char *msg = provider_json_str(root, "message");
	const char *type = provider_json_str(root, "__type");
	char code[64] = "";

	if (!msg)
		msg = provider_json_str(root, "Message");
	if (error_type_header && error_type_header[0]) {
		/* "ThrottlingException:http://internal.amazon.com/coral/..." */
		snprintf(code, sizeof(code), "%.*s", (int)strcspn(error_type_header, ":"),
			 error_type_header);
	} else if (type) {
		/* "com.amazon.coral.service#UnrecognizedClientException" */
		const char *hash = strrchr(type, '#');

		snprintf(code, sizeof(code), "%s", hash ? hash + 1 : type);
	}
	provider_fail_set(f, code, "%s", msg ? msg : "");
}

const struct provider_backend provider_bedrock_backend = {
    .kind = "bedrock",
    .prepare = bedrock_prepare,
    .answer = bedrock_answer,
    .error = bedrock_error,
};
