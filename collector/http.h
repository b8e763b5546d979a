/*
 * The HTTP server's internals, shared by http.c (connections, authentication,
 * uploads), api.c (the read API) and metrics.c. Not for the rest of collector/.
 */
#ifndef SESSREC_COLLECTOR_HTTP_H
#define SESSREC_COLLECTOR_HTTP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <microhttpd.h>

#include "collector.h"
#include "util.h"

#define HTTP_JSON_MAX	  (64u << 10) /* JSON request bodies */
#define HTTP_NAME_MAX	  256	      /* node names (certificate CN) and user names */
#define HTTP_ROLE_MAX	  16
#define HTTP_FOLLOW_PING  15	/* seconds of silence before a keep-alive newline */
#define HTTP_FOLLOW_POLL  250	/* milliseconds between looks at the audit log */
#define HTTP_DEV_IDENTITY "dev" /* who everybody is in insecure_dev_mode */

/* ------------------------------------------------------------ metrics.c */

/* What a request was, for the latency histogram's handler label. */
enum http_handler {
	HTTP_H_UPLOAD = 0, /* PUT parts */
	HTTP_H_COMPLETE,   /* POST complete */
	HTTP_H_READ,	   /* the read API */
	HTTP_H_OPS,	   /* /healthz, /metrics */
	HTTP_H_OTHER,	   /* unknown paths and methods */
	HTTP_H_MANAGE,	   /* resources, summaries, jobs */
	HTTP_H_MAX,
};

/* Why a request was refused (4xx), for the refusals counter's reason label. */
enum http_refusal {
	HTTP_R_BAD_REQUEST = 0,	   /* 400 */
	HTTP_R_UNAUTHENTICATED,	   /* 401 */
	HTTP_R_FORBIDDEN,	   /* 403 */
	HTTP_R_NOT_FOUND,	   /* 404 */
	HTTP_R_METHOD_NOT_ALLOWED, /* 405 */
	HTTP_R_CONFLICT,	   /* 409 */
	HTTP_R_TOO_LARGE,	   /* 413 */
	HTTP_R_OTHER,		   /* any other 4xx */
	HTTP_R_MAX,
};

#define HTTP_BUCKETS 14 /* latency buckets before +Inf */

/* Counters, updated with relaxed atomics from every connection thread. */
struct collector_metrics {
	uint64_t requests[HTTP_H_MAX];
	uint64_t latency[HTTP_H_MAX][HTTP_BUCKETS + 1]; /* per bucket, not cumulative */
	uint64_t latency_sum_ns[HTTP_H_MAX];
	uint64_t refusals[HTTP_R_MAX];
	uint64_t errors; /* 5xx */
	uint64_t parts_stored;
	uint64_t parts_duplicate;
	uint64_t upload_bytes;
	uint64_t sessions_completed;
	uint64_t in_flight;
	uint64_t follow_streams;
};

/* Account one finished request. */
void collector_metrics_request(struct collector_metrics *m, enum http_handler h,
			       unsigned int status, uint64_t duration_ns);
void collector_metrics_add(uint64_t *counter, uint64_t v);
/* The Prometheus text exposition (version 0.0.4), malloc'd; NULL when out of memory. */
char *collector_metrics_render(struct collector_metrics *m);

/* ------------------------------------------------------------ http.c */

struct collector_http {
	struct MHD_Daemon *d;
	const struct collector_config *cfg;
	struct store *st;
	const struct store_ops *ops;
	struct summarizer *sum; /* NULL: no summaries (503) */
	struct collector_metrics m;
	char *cert_pem, *key_pem, *ca_pem; /* handed to MHD, kept until stop */
	int stopping;			   /* atomic: follow streams end */
};

/* Who sent a request: a node (client certificate), a person (bearer token), both or none. */
struct http_peer {
	bool node;
	bool person;
	char node_name[HTTP_NAME_MAX]; /* the certificate's CN */
	char user[HTTP_NAME_MAX];      /* the token's user */
	char role[HTTP_ROLE_MAX];      /* the token's role */
	bool all_roles;		       /* insecure_dev_mode: every role at once */
	/* Why a presented credential was refused; "" when none was presented. */
	char cert_problem[128];
	char token_problem[128];
};

/* The state of one request, from its headers until MHD says it completed. */
struct http_req {
	uint64_t start_ns;
	enum http_handler handler;
	int route;
	unsigned int status; /* what was queued; 0 while none */
	bool follow;	     /* a follow stream: not in the latency histogram */
	char sid[UUID_STR_LEN_];
	uint32_t n;
	char kind[32];		  /* resources: the kind in the path ("" for none) */
	char name[HTTP_NAME_MAX]; /* resources: the name in the path */
	bool post, del;		  /* the method, where a route has several */
	struct http_peer peer;
	/* the body of an upload, capped at limit */
	uint8_t *buf;
	size_t len, cap, limit;
	bool too_large;
};

/*
 * Queue a response and account it. body is malloc'd and always taken (freed
 * on failure too). Returns what the access handler returns.
 */
enum MHD_Result http_respond(struct MHD_Connection *c, struct http_req *r, unsigned int status,
			     const char *content_type, char *body, size_t len);
/* {"error":"..."} with status. */
enum MHD_Result http_error(struct MHD_Connection *c, struct http_req *r, unsigned int status,
			   const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* A jansson value as the JSON body (the reference is taken; NULL answers nothing). */
enum MHD_Result http_json(struct MHD_Connection *c, struct http_req *r, unsigned int status,
			  json_t *v);
/* Queue a 200 with resp (a stream or a buffer), which is always taken. */
enum MHD_Result http_respond_stream(struct MHD_Connection *c, struct http_req *r,
				    struct MHD_Response *resp, const char *content_type);

/* ------------------------------------------------------------ api.c: the read API */

/* Shared with api_manage.c: a JSON string of s (bytes that are not UTF-8 become
 * '?'); a time as RFC 3339 (null when not set); the session r->sid as the caller
 * may see it: 0 with *ss filled, or the status to answer (404 for unknown and for
 * another user's session alike, unless sees_all) with why. */
json_t *api_json_str(const char *s);
json_t *api_json_time(int64_t ns);
unsigned int api_session_visible(struct collector_http *h, struct http_req *r,
				 struct store_session *ss, bool sees_all, char *why, size_t whylen);

/* GET /v1/sessions */
enum MHD_Result collector_api_sessions(struct collector_http *h, struct MHD_Connection *c,
				       struct http_req *r);
/* GET /v1/sessions/{sid} */
enum MHD_Result collector_api_session(struct collector_http *h, struct MHD_Connection *c,
				      struct http_req *r);
/* GET /v1/sessions/{sid}/events */
enum MHD_Result collector_api_events(struct collector_http *h, struct MHD_Connection *c,
				     struct http_req *r);
/* GET /v1/sessions/{sid}/recording */
enum MHD_Result collector_api_recording(struct collector_http *h, struct MHD_Connection *c,
					struct http_req *r);
/* GET /v1/audit/events */
enum MHD_Result collector_api_audit(struct collector_http *h, struct MHD_Connection *c,
				    struct http_req *r);

/* RFC 3339 ("2026-11-22T10:13:19.123Z", offsets, or a bare date) to ns. 0 or -EINVAL. */
int collector_api_parse_time(const char *s, int64_t *ns);
/* true when the person holds role (insecure_dev_mode: every role). */
bool http_peer_has(const struct http_peer *p, const char *role);

/* ------------------------------------------------------------ api_manage.c: resources, summaries
 */

/* POST /v1/resources (YAML body in r->buf; ?force=1 replaces) */
enum MHD_Result collector_api_resources_create(struct collector_http *h, struct MHD_Connection *c,
					       struct http_req *r);
/* GET /v1/resources[/{kind}[/{name}]] */
enum MHD_Result collector_api_resources_get(struct collector_http *h, struct MHD_Connection *c,
					    struct http_req *r);
/* DELETE /v1/resources/{kind}/{name} */
enum MHD_Result collector_api_resource_delete(struct collector_http *h, struct MHD_Connection *c,
					      struct http_req *r);
/* GET /v1/sessions/{sid}/summary */
enum MHD_Result collector_api_summary(struct collector_http *h, struct MHD_Connection *c,
				      struct http_req *r);
/* POST /v1/sessions/{sid}/summarize (JSON body in r->buf, may be empty) */
enum MHD_Result collector_api_summarize(struct collector_http *h, struct MHD_Connection *c,
					struct http_req *r);
/* GET /v1/jobs */
enum MHD_Result collector_api_jobs(struct collector_http *h, struct MHD_Connection *c,
				   struct http_req *r);

#endif
