/* Prometheus metrics of the collector, rendered on GET /metrics. */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

static const char *const metrics_handler_names[HTTP_H_MAX] = {"upload", "complete", "read",
							      "ops",	"other",    "manage"};
static const char *const metrics_refusal_names[HTTP_R_MAX] = {
    "bad_request",	  "unauthenticated", "forbidden", "not_found",
    "method_not_allowed", "conflict",	     "too_large", "other"};
/* Upper bounds of the latency buckets, in seconds and in nanoseconds. */
static const char *const metrics_bucket_le[HTTP_BUCKETS] = {
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
    "0.25",  "0.5",    "1",	"2.5",	"5",	 "10",	 "30"};
static const uint64_t metrics_bucket_ns[HTTP_BUCKETS] = {
    1000000ull,	   2500000ull,	  5000000ull,	  10000000ull,	 25000000ull,
    50000000ull,   100000000ull,  250000000ull,	  500000000ull,	 1000000000ull,
    2500000000ull, 5000000000ull, 10000000000ull, 30000000000ull};

void collector_metrics_add(uint64_t *counter, uint64_t v)
{
	__atomic_fetch_add(counter, v, __ATOMIC_RELAXED);
}

static enum http_refusal metrics_refusal(unsigned int status)
{
	switch (status) {
	case 400:
		return HTTP_R_BAD_REQUEST;
	case 401:
		return HTTP_R_UNAUTHENTICATED;
	case 403:
		return HTTP_R_FORBIDDEN;
	case 404:
		return HTTP_R_NOT_FOUND;
	case 405:
		return HTTP_R_METHOD_NOT_ALLOWED;
	case 409:
		return HTTP_R_CONFLICT;
	case 413:
		return HTTP_R_TOO_LARGE;
	default:
		return HTTP_R_OTHER;
	}
}

void collector_metrics_request(struct collector_metrics *m, enum http_handler h,
			       unsigned int status, uint64_t duration_ns)
{
	size_t b = 0;

	if ((unsigned int)h >= HTTP_H_MAX)
		h = HTTP_H_OTHER;
	while (b < HTTP_BUCKETS && duration_ns > metrics_bucket_ns[b])
		b++;
	collector_metrics_add(&m->requests[h], 1);
	collector_metrics_add(&m->latency[h][b], 1);
	collector_metrics_add(&m->latency_sum_ns[h], duration_ns);
	if (status >= 400 && status < 500)
		collector_metrics_add(&m->refusals[metrics_refusal(status)], 1);
	else if (status >= 500)
		collector_metrics_add(&m->errors, 1);
}

static void metrics_counter(FILE *f, const char *name, const char *help, uint64_t v)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s counter\n%s %lu\n", name, help, name, name,
		(unsigned long)v);
}

char *collector_metrics_render(struct collector_metrics *m)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	fprintf(f, "# HELP sessrec_collector_requests_total HTTP requests answered, by handler.\n"
		   "# TYPE sessrec_collector_requests_total counter\n");
	for (int h = 0; h < HTTP_H_MAX; h++)
		fprintf(f, "sessrec_collector_requests_total{handler=\"%s\"} %lu\n",
			metrics_handler_names[h], (unsigned long)LOAD(m->requests[h]));

	fprintf(f, "# HELP sessrec_collector_request_duration_seconds Time from a request's "
		   "headers to its last byte (follow streams excluded), by handler.\n"
		   "# TYPE sessrec_collector_request_duration_seconds histogram\n");
	for (int h = 0; h < HTTP_H_MAX; h++) {
		uint64_t cum = 0;

		for (int b = 0; b <= HTTP_BUCKETS; b++) {
			cum += LOAD(m->latency[h][b]);
			fprintf(f,
				"sessrec_collector_request_duration_seconds_bucket{handler=\"%s\","
				"le=\"%s\"} %lu\n",
				metrics_handler_names[h],
				b < HTTP_BUCKETS ? metrics_bucket_le[b] : "+Inf",
				(unsigned long)cum);
		}
		fprintf(f,
			"sessrec_collector_request_duration_seconds_sum{handler=\"%s\"} %.9f\n"
			"sessrec_collector_request_duration_seconds_count{handler=\"%s\"} %lu\n",
			metrics_handler_names[h], (double)LOAD(m->latency_sum_ns[h]) / 1e9,
			metrics_handler_names[h], (unsigned long)cum);
	}

	fprintf(f, "# HELP sessrec_collector_refusals_total Requests refused (4xx), by reason.\n"
		   "# TYPE sessrec_collector_refusals_total counter\n");
	for (int r = 0; r < HTTP_R_MAX; r++)
		fprintf(f, "sessrec_collector_refusals_total{reason=\"%s\"} %lu\n",
			metrics_refusal_names[r], (unsigned long)LOAD(m->refusals[r]));
	metrics_counter(f, "sessrec_collector_errors_total",
			"Requests that failed on the server side (5xx).", LOAD(m->errors));
	metrics_counter(f, "sessrec_collector_uploads_total",
			"Part uploads acknowledged, stored now or already stored.",
			LOAD(m->parts_stored) + LOAD(m->parts_duplicate));
	metrics_counter(f, "sessrec_collector_parts_stored_total",
			"Parts stored durably (new ones only).", LOAD(m->parts_stored));
	metrics_counter(f, "sessrec_collector_parts_duplicate_total",
			"Part uploads that were already stored (idempotent retries).",
			LOAD(m->parts_duplicate));
	metrics_counter(f, "sessrec_collector_upload_bytes_total", "Bytes of parts stored.",
			LOAD(m->upload_bytes));
	metrics_counter(f, "sessrec_collector_sessions_stored_total",
			"Sessions completed and indexed since the collector started.",
			LOAD(m->sessions_completed));
	fprintf(f,
		"# HELP sessrec_collector_requests_in_flight Requests being answered now.\n"
		"# TYPE sessrec_collector_requests_in_flight gauge\n"
		"sessrec_collector_requests_in_flight %lu\n"
		"# HELP sessrec_collector_follow_streams Audit log follow streams open now.\n"
		"# TYPE sessrec_collector_follow_streams gauge\n"
		"sessrec_collector_follow_streams %lu\n",
		(unsigned long)LOAD(m->in_flight), (unsigned long)LOAD(m->follow_streams));
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}
