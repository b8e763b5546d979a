/* Prometheus text metrics on metrics_listen, served by libmicrohttpd's own thread. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "agent.h"
#include "log.h"

struct agent_metrics_server {
	struct MHD_Daemon *d;
	struct agent_metrics *m;
};

static const char *const metrics_class[SESSREC_CLASS_MAX] = {"command", "disk", "network",
							     "terminal"};

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

char *agent_metrics_render(const struct agent_metrics *cm)
{
	struct agent_metrics *m = (struct agent_metrics *)cm;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	fprintf(f, "# HELP sessrec_agent_events_total Events received from the kernel, by class.\n"
		   "# TYPE sessrec_agent_events_total counter\n");
	for (int c = 0; c < SESSREC_CLASS_MAX; c++)
		fprintf(f, "sessrec_agent_events_total{class=\"%s\"} %lu\n", metrics_class[c],
			(unsigned long)LOAD(m->events[c]));
	fprintf(f, "# HELP sessrec_agent_lost_events_total Events lost because a ring buffer was "
		   "full, by class.\n"
		   "# TYPE sessrec_agent_lost_events_total counter\n");
	for (int c = 0; c < SESSREC_CLASS_MAX; c++)
		fprintf(f, "sessrec_agent_lost_events_total{class=\"%s\"} %lu\n", metrics_class[c],
			(unsigned long)LOAD(m->lost_events[c]));
	fprintf(f,
		"# HELP sessrec_agent_lost_terminal_bytes_total Terminal output bytes that could "
		"not be copied.\n"
		"# TYPE sessrec_agent_lost_terminal_bytes_total counter\n"
		"sessrec_agent_lost_terminal_bytes_total %lu\n",
		(unsigned long)LOAD(m->lost_tty_bytes));
	fprintf(f, "# HELP sessrec_agent_ringbuf_used_bytes Bytes waiting in each ring buffer.\n"
		   "# TYPE sessrec_agent_ringbuf_used_bytes gauge\n");
	for (int c = 0; c < SESSREC_CLASS_MAX; c++)
		fprintf(f, "sessrec_agent_ringbuf_used_bytes{class=\"%s\"} %lu\n", metrics_class[c],
			(unsigned long)LOAD(m->ring_used[c]));
	fprintf(f, "# HELP sessrec_agent_ringbuf_size_bytes Size of each ring buffer.\n"
		   "# TYPE sessrec_agent_ringbuf_size_bytes gauge\n");
	for (int c = 0; c < SESSREC_CLASS_MAX; c++)
		fprintf(f, "sessrec_agent_ringbuf_size_bytes{class=\"%s\"} %lu\n", metrics_class[c],
			(unsigned long)LOAD(m->ring_size[c]));
	fprintf(f,
		"# HELP sessrec_agent_sessions_open Recorded sessions open now.\n"
		"# TYPE sessrec_agent_sessions_open gauge\n"
		"sessrec_agent_sessions_open %lu\n"
		"# HELP sessrec_agent_sessions_total Recorded sessions opened since start.\n"
		"# TYPE sessrec_agent_sessions_total counter\n"
		"sessrec_agent_sessions_total %lu\n"
		"# HELP sessrec_agent_recording_bytes_total Bytes written to recordings.\n"
		"# TYPE sessrec_agent_recording_bytes_total counter\n"
		"sessrec_agent_recording_bytes_total %lu\n"
		"# HELP sessrec_agent_audit_bytes_total Bytes written to the audit log.\n"
		"# TYPE sessrec_agent_audit_bytes_total counter\n"
		"sessrec_agent_audit_bytes_total %lu\n"
		"# HELP sessrec_agent_api_errors_total Refused or failed launcher requests.\n"
		"# TYPE sessrec_agent_api_errors_total counter\n"
		"sessrec_agent_api_errors_total %lu\n",
		(unsigned long)LOAD(m->sessions_open), (unsigned long)LOAD(m->sessions_total),
		(unsigned long)LOAD(m->recording_bytes), (unsigned long)LOAD(m->audit_bytes),
		(unsigned long)LOAD(m->api_errors));
	agent_upload_metrics(f, m);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static enum MHD_Result metrics_handler(void *cls, struct MHD_Connection *conn, const char *url,
				       const char *method, const char *version,
				       const char *upload_data, size_t *upload_data_size,
				       void **req_cls)
{
	struct agent_metrics_server *s = cls;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	unsigned int status = MHD_HTTP_OK;
	char *body;

	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return MHD_NO;
	if (strcmp(url, "/metrics") == 0) {
		body = agent_metrics_render(s->m);
	} else if (strcmp(url, "/healthz") == 0) {
		body = strdup("ok\n");
	} else {
		body = strdup("not found: try /metrics or /healthz\n");
		status = MHD_HTTP_NOT_FOUND;
	}
	if (!body)
		return MHD_NO;
	resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

int agent_metrics_start(struct agent_metrics_server **out, const char *listen,
			struct agent_metrics *m)
{
	struct sockaddr_storage ss = {0};
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	struct agent_metrics_server *s;
	char host[256];
	const char *colon;
	unsigned long port;
	char *end;
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;

	colon = strrchr(listen, ':');
	if (!colon || (size_t)(colon - listen) >= sizeof(host)) {
		log_error("metrics_listen: expected host:port, got '%s'", listen);
		return -EINVAL;
	}
	memcpy(host, listen, (size_t)(colon - listen));
	host[colon - listen] = '\0';
	port = strtoul(colon + 1, &end, 10);
	if (*end || port == 0 || port > 65535) {
		log_error("metrics_listen: bad port in '%s'", listen);
		return -EINVAL;
	}
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	if (strcmp(host, "localhost") == 0)
		snprintf(host, sizeof(host), "127.0.0.1");
	if (inet_pton(AF_INET, host[0] ? host : "0.0.0.0", &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		flags |= MHD_USE_IPv6;
	} else {
		log_error("metrics_listen: '%s' is not an IP address", host);
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->m = m;
	s->d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, metrics_handler, s,
				MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				MHD_OPTION_CONNECTION_LIMIT, 16U, MHD_OPTION_CONNECTION_TIMEOUT,
				10U, MHD_OPTION_END);
	if (!s->d) {
		free(s);
		log_error("cannot serve metrics on %s (address in use?)", listen);
		return -EADDRINUSE;
	}
	log_info("metrics on http://%s/metrics", listen);
	*out = s;
	return 0;
}

void agent_metrics_stop(struct agent_metrics_server *s)
{
	if (!s)
		return;
	MHD_stop_daemon(s->d);
	free(s);
}
