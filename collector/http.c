/*
 * The collector's HTTP(S) server (docs/api.md): libmicrohttpd with a thread per
 * connection (follow streams block in their content callback), GnuTLS for TLS.
 *
 * Every request goes through the same gate on its first call, before any byte
 * of its body is read: route, method, who is asking (client certificate,
 * bearer token), whether they may, the session id and part number, and the
 * announced body size. Only then does an upload's body get buffered (capped),
 * and only a complete, well-formed request reaches the store.
 */
#include "http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <jansson.h>

#include "log.h"
#include "rec.h"
#include "summarize.h"

#define HTTP_PEM_MAX	   (1u << 20)
#define HTTP_TOKEN_MAX	   512
#define HTTP_CONN_MEMORY   (128u << 10) /* per-connection buffer: fewer, larger body reads */
#define HTTP_TLS_PRIORITY  "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
#define HTTP_DRAIN_POLL_MS 20

enum http_route {
	HTTP_ROUTE_NONE = 0,
	HTTP_ROUTE_HEALTHZ,
	HTTP_ROUTE_METRICS,
	HTTP_ROUTE_SESSIONS,
	HTTP_ROUTE_SESSION,
	HTTP_ROUTE_EVENTS,
	HTTP_ROUTE_RECORDING,
	HTTP_ROUTE_PART,
	HTTP_ROUTE_COMPLETE,
	HTTP_ROUTE_AUDIT,
	HTTP_ROUTE_RESOURCES,	  /* /v1/resources */
	HTTP_ROUTE_RESOURCE_KIND, /* /v1/resources/{kind} */
	HTTP_ROUTE_RESOURCE,	  /* /v1/resources/{kind}/{name} */
	HTTP_ROUTE_SUMMARY,	  /* /v1/sessions/{sid}/summary */
	HTTP_ROUTE_SUMMARIZE,	  /* /v1/sessions/{sid}/summarize */
	HTTP_ROUTE_JOBS,	  /* /v1/jobs */
};

/* The segments of a path under /v1/sessions/, before validation. */
struct http_path {
	const char *sid; /* not NUL-terminated: sid_len */
	size_t sid_len;
	const char *n;		 /* part number, up to the end of the path */
	const char *kind, *name; /* resources: not NUL-terminated: kind_len, up to the end */
	size_t kind_len;
};

static uint64_t http_mono_ns(void)
{
	return util_mono_ns();
}

static void http_sleep_ms(unsigned int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ------------------------------------------------------------ responses */

enum MHD_Result http_respond(struct MHD_Connection *c, struct http_req *r, unsigned int status,
			     const char *content_type, char *body, size_t len)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	if ((content_type && MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
						     content_type) != MHD_YES) ||
	    MHD_add_response_header(resp, "Cache-Control", "no-store") != MHD_YES ||
	    (status == MHD_HTTP_UNAUTHORIZED &&
	     MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
				     "Bearer realm=\"sessrec\"") != MHD_YES)) {
		MHD_destroy_response(resp);
		return MHD_NO;
	}
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	if (ret == MHD_YES)
		r->status = status;
	return ret;
}

/* resp is always taken (destroyed), as with http_respond's body. */
enum MHD_Result http_respond_stream(struct MHD_Connection *c, struct http_req *r,
				    struct MHD_Response *resp, const char *content_type)
{
	enum MHD_Result ret;

	if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) != MHD_YES ||
	    MHD_add_response_header(resp, "Cache-Control", "no-store") != MHD_YES) {
		MHD_destroy_response(resp);
		return MHD_NO;
	}
	ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	if (ret == MHD_YES)
		r->status = MHD_HTTP_OK;
	return ret;
}

enum MHD_Result http_json(struct MHD_Connection *c, struct http_req *r, unsigned int status,
			  json_t *v)
{
	char *s, *body;
	size_t n;

	if (!v)
		return MHD_NO;
	/* 15 digits: a temperature of 0.2 reads 0.2, not 0.20000000000000001 */
	s = json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(15));
	json_decref(v);
	if (!s)
		return MHD_NO;
	n = strlen(s);
	body = realloc(s, n + 2);
	if (!body) {
		free(s);
		return MHD_NO;
	}
	body[n] = '\n';
	body[n + 1] = '\0';
	return http_respond(c, r, status, "application/json", body, n + 1);
}

enum MHD_Result http_error(struct MHD_Connection *c, struct http_req *r, unsigned int status,
			   const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Messages echo request input: keep them one line of valid JSON. */
	for (char *p = msg; *p; p++) {
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	}
	if (status >= 500)
		log_warn("%u: %s", status, msg);
	else
		log_debug("refused (%u): %s", status, msg);
	return http_json(c, r, status, json_pack("{s:s}", "error", msg));
}

/* ------------------------------------------------------------ routing */

static int http_route(const char *url, struct http_path *p)
{
	static const char sessions[] = "/v1/sessions/";
	const size_t plen = sizeof(sessions) - 1;
	const char *rest, *slash;
	size_t n;

	memset(p, 0, sizeof(*p));
	if (strcmp(url, "/healthz") == 0)
		return HTTP_ROUTE_HEALTHZ;
	if (strcmp(url, "/metrics") == 0)
		return HTTP_ROUTE_METRICS;
	if (strcmp(url, "/v1/sessions") == 0)
		return HTTP_ROUTE_SESSIONS;
	if (strcmp(url, "/v1/audit/events") == 0)
		return HTTP_ROUTE_AUDIT;
	if (strcmp(url, "/v1/jobs") == 0)
		return HTTP_ROUTE_JOBS;
	if (strcmp(url, "/v1/resources") == 0)
		return HTTP_ROUTE_RESOURCES;
	if (strncmp(url, "/v1/resources/", 14) == 0) {
		/* the segments are checked (kind, name) once the caller is known */
		p->kind = url + 14;
		slash = strchr(p->kind, '/');
		if (!slash) {
			p->kind_len = strlen(p->kind);
			return HTTP_ROUTE_RESOURCE_KIND;
		}
		p->kind_len = (size_t)(slash - p->kind);
		p->name = slash + 1;
		return HTTP_ROUTE_RESOURCE;
	}
	if (strncmp(url, sessions, plen) != 0)
		return HTTP_ROUTE_NONE;
	/*
	 * Everything below /v1/sessions/ is a session route whatever its id looks
	 * like, so that "../x" or "a/b" is refused as a bad id (400), not as an
	 * unknown path: the suffix decides the route, the rest is the id.
	 */
	rest = url + plen;
	n = strlen(rest);
	p->sid = rest;
#define HTTP_SUFFIX(sfx)                                                                           \
	(n > sizeof(sfx) - 1 && strcmp(rest + n - (sizeof(sfx) - 1), sfx) == 0 &&                  \
	 (p->sid_len = n - (sizeof(sfx) - 1), 1))
	if (HTTP_SUFFIX("/events"))
		return HTTP_ROUTE_EVENTS;
	if (HTTP_SUFFIX("/recording"))
		return HTTP_ROUTE_RECORDING;
	if (HTTP_SUFFIX("/complete"))
		return HTTP_ROUTE_COMPLETE;
	if (HTTP_SUFFIX("/summary"))
		return HTTP_ROUTE_SUMMARY;
	if (HTTP_SUFFIX("/summarize"))
		return HTTP_ROUTE_SUMMARIZE;
#undef HTTP_SUFFIX
	slash = strrchr(rest, '/');
	if (slash && slash - rest >= 6 && strncmp(slash - 6, "/parts", 6) == 0) {
		p->sid_len = (size_t)(slash - 6 - rest);
		p->n = slash + 1;
		return HTTP_ROUTE_PART;
	}
	p->sid_len = n;
	return HTTP_ROUTE_SESSION;
}

static enum http_handler http_route_handler(int route)
{
	switch (route) {
	case HTTP_ROUTE_PART:
		return HTTP_H_UPLOAD;
	case HTTP_ROUTE_COMPLETE:
		return HTTP_H_COMPLETE;
	case HTTP_ROUTE_HEALTHZ:
	case HTTP_ROUTE_METRICS:
		return HTTP_H_OPS;
	case HTTP_ROUTE_NONE:
		return HTTP_H_OTHER;
	case HTTP_ROUTE_RESOURCES:
	case HTTP_ROUTE_RESOURCE_KIND:
	case HTTP_ROUTE_RESOURCE:
	case HTTP_ROUTE_SUMMARY:
	case HTTP_ROUTE_SUMMARIZE:
	case HTTP_ROUTE_JOBS:
		return HTTP_H_MANAGE;
	default:
		return HTTP_H_READ;
	}
}

/* The methods a route answers, as the Allow header would list them. */
static const char *http_route_methods(int route)
{
	switch (route) {
	case HTTP_ROUTE_PART:
		return "PUT";
	case HTTP_ROUTE_COMPLETE:
	case HTTP_ROUTE_SUMMARIZE:
		return "POST";
	case HTTP_ROUTE_RESOURCES:
		return "GET, POST";
	case HTTP_ROUTE_RESOURCE:
		return "GET, DELETE";
	default:
		return "GET";
	}
}

static bool http_method_allowed(const char *allowed, const char *method)
{
	size_t n = strlen(method);
	const char *p = allowed;

	if (strcmp(method, "HEAD") == 0) {
		method = "GET";
		n = 3;
	}
	while ((p = strstr(p, method)) != NULL) {
		if ((p == allowed || p[-1] == ' ') && (p[n] == '\0' || p[n] == ','))
			return true;
		p += n;
	}
	return false;
}

/* A part number: canonical decimal (no sign, no leading zero), at most UINT32_MAX. */
static int http_parse_part(const char *s, uint32_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (!s || !s[0] || (s[0] == '0' && s[1]))
		return -EINVAL;
	for (i = 0; s[i]; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > UINT32_MAX)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/* ------------------------------------------------------------ who is asking */

static bool http_name_ok(const char *s)
{
	if (!s[0])
		return false;
	for (; *s; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	}
	return true;
}

/*
 * What a TLS connection proved (its socket context): the client certificate
 * chain that verified on an earlier request, and the node it names. A later
 * request presenting the same chain (compared byte for byte, so that a
 * renegotiation cannot bring in another) is that node without the signature
 * checks again, until the earliest expiry of that chain or of a trusted CA:
 * with the trust list fixed for the daemon's life, time is all that could
 * change the verdict. Failures are not remembered: they are checked anew.
 */
struct http_conn {
	bool verified;
	bool uncached;	/* the verdict could not be bounded in time: verify every request */
	uint8_t *chain; /* the certificates as presented: a 4-byte length, then the DER */
	size_t chain_len;
	time_t verified_at, valid_until;
	char node_name[HTTP_NAME_MAX];
};

static void http_conn_forget(struct http_conn *k)
{
	free(k->chain);
	k->chain = NULL;
	k->chain_len = 0;
	k->verified = false;
}

static void http_notify_conn(void *cls, struct MHD_Connection *c, void **socket_context,
			     enum MHD_ConnectionNotificationCode toe)
{
	struct http_conn *k = *socket_context;

	(void)cls;
	(void)c;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		/* none (out of memory): every request verifies its certificate */
		*socket_context = calloc(1, sizeof(struct http_conn));
		return;
	}
	if (toe == MHD_CONNECTION_NOTIFY_CLOSED && k) {
		http_conn_forget(k);
		free(k);
		*socket_context = NULL;
	}
}

static struct http_conn *http_conn_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci;

	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

/* true when certs are, byte for byte, the chain k verified, and the verdict still holds. */
static bool http_conn_known(const struct http_conn *k, const gnutls_datum_t *certs, unsigned int n,
			    time_t now)
{
	size_t off = 0;
	uint32_t len;
	unsigned int i;

	if (!k->verified || now < k->verified_at || now >= k->valid_until)
		return false;
	for (i = 0; i < n; i++) {
		if (k->chain_len - off < sizeof(len))
			return false;
		memcpy(&len, k->chain + off, sizeof(len));
		off += sizeof(len);
		if (len != certs[i].size || k->chain_len - off < len ||
		    memcmp(k->chain + off, certs[i].data, len) != 0)
			return false;
		off += len;
	}
	return off == k->chain_len;
}

/* The earliest expiry of the certificates the session trusts (client_ca_file). */
static int http_trust_expiry(gnutls_session_t s, time_t *until)
{
	gnutls_certificate_credentials_t cred = NULL;
	gnutls_x509_trust_list_iter_t it = NULL;
	gnutls_x509_trust_list_t tl = NULL;
	gnutls_x509_crt_t ca;
	time_t t;
	int rc;

	if (gnutls_credentials_get(s, GNUTLS_CRD_CERTIFICATE, (void **)&cred) < 0 || !cred)
		return -ENOENT;
	gnutls_certificate_get_trust_list(cred, &tl);
	if (!tl)
		return -ENOENT;
	while ((rc = gnutls_x509_trust_list_iter_get_ca(tl, &it, &ca)) >= 0) {
		t = gnutls_x509_crt_get_expiration_time(ca);
		gnutls_x509_crt_deinit(ca);
		if (t == (time_t)-1) {
			rc = GNUTLS_E_INVALID_REQUEST;
			break;
		}
		if (t < *until)
			*until = t;
	}
	gnutls_x509_trust_list_iter_deinit(it);
	return rc == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE ? 0 : -EINVAL;
}

/* Remember a chain that verified now, naming node; k stays unverified when it cannot. */
static void http_conn_remember(struct http_conn *k, gnutls_session_t s, const gnutls_datum_t *certs,
			       unsigned int n, const char *node, time_t now)
{
	gnutls_x509_crt_t crt = NULL;
	time_t until = now + 86400; /* at least daily, whatever the certificates say */
	size_t len = 0, off = 0;
	unsigned int i;
	time_t t;

	http_conn_forget(k);
	for (i = 0; i < n; i++) {
		if (certs[i].size > UINT32_MAX - sizeof(uint32_t) ||
		    len > SIZE_MAX - sizeof(uint32_t) - certs[i].size)
			return;
		len += sizeof(uint32_t) + certs[i].size;
		if (gnutls_x509_crt_init(&crt) < 0)
			return;
		t = gnutls_x509_crt_import(crt, &certs[i], GNUTLS_X509_FMT_DER) < 0
			? (time_t)-1
			: gnutls_x509_crt_get_expiration_time(crt);
		gnutls_x509_crt_deinit(crt);
		if (t == (time_t)-1)
			goto uncached;
		if (t < until)
			until = t;
	}
	if (http_trust_expiry(s, &until) || until <= now)
		goto uncached;
	k->chain = malloc(len ? len : 1);
	if (!k->chain)
		return;
	for (i = 0; i < n; i++) {
		uint32_t sz = certs[i].size;

		memcpy(k->chain + off, &sz, sizeof(sz));
		off += sizeof(sz);
		memcpy(k->chain + off, certs[i].data, sz);
		off += sz;
	}
	k->chain_len = len;
	k->verified_at = now;
	k->valid_until = until;
	snprintf(k->node_name, sizeof(k->node_name), "%s", node);
	k->verified = true;
	return;
uncached:
	k->uncached = true;
}

/* A client certificate that verifies against client_ca_file, for client authentication. */
static void http_peer_cert(struct MHD_Connection *c, struct http_peer *p)
{
	gnutls_typed_vdata_st purpose = {
	    .type = GNUTLS_DT_KEY_PURPOSE_OID,
	    .data = (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT,
	};
	const union MHD_ConnectionInfo *ci;
	const gnutls_datum_t *certs;
	gnutls_x509_crt_t crt = NULL;
	struct http_conn *conn;
	gnutls_session_t s;
	unsigned int n = 0, status = 0;
	size_t len = sizeof(p->node_name) - 1;
	time_t now;
	int rc;

	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (!ci || !ci->tls_session)
		return;
	s = ci->tls_session;
	certs = gnutls_certificate_get_peers(s, &n);
	if (!certs || n == 0)
		return;
	conn = http_conn_of(c);
	now = time(NULL);
	if (conn && http_conn_known(conn, certs, n, now)) {
		snprintf(p->node_name, sizeof(p->node_name), "%s", conn->node_name);
		p->node = true;
		return;
	}
	rc = gnutls_certificate_verify_peers(s, &purpose, 1, &status);
	if (rc < 0) {
		snprintf(p->cert_problem, sizeof(p->cert_problem), "%s", gnutls_strerror(rc));
		return;
	}
	if (status) {
		gnutls_datum_t out = {NULL, 0};

		if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out,
								 0) == 0) {
			size_t k;

			snprintf(p->cert_problem, sizeof(p->cert_problem), "%s", out.data);
			gnutls_free(out.data);
			k = strlen(p->cert_problem);
			while (k && p->cert_problem[k - 1] == ' ')
				p->cert_problem[--k] = '\0';
		} else {
			snprintf(p->cert_problem, sizeof(p->cert_problem),
				 "not signed by the cluster CA");
		}
		return;
	}
	rc = gnutls_x509_crt_init(&crt);
	if (rc >= 0)
		rc = gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER);
	if (rc >= 0)
		rc = gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0,
						   p->node_name, &len);
	if (crt)
		gnutls_x509_crt_deinit(crt);
	if (rc < 0 || !http_name_ok(p->node_name)) {
		p->node_name[0] = '\0';
		snprintf(p->cert_problem, sizeof(p->cert_problem),
			 "the certificate has no usable common name");
		return;
	}
	p->node = true;
	if (conn && !conn->uncached)
		http_conn_remember(conn, s, certs, n, p->node_name, now);
}

/* Authorization: Bearer TOKEN, looked up by its SHA-256. 0, or -errno of the store. */
static int http_peer_token(struct collector_http *h, struct MHD_Connection *c, struct http_peer *p)
{
	const char *auth, *tok;
	uint8_t hash[32];
	size_t len;
	int ret;

	auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	if (!auth)
		return 0;
	if (strncasecmp(auth, "Bearer ", 7) != 0) {
		snprintf(p->token_problem, sizeof(p->token_problem),
			 "Authorization: only Bearer tokens are accepted");
		return 0;
	}
	tok = auth + 7;
	tok += strspn(tok, " \t");
	len = strlen(tok);
	while (len && (tok[len - 1] == ' ' || tok[len - 1] == '\t'))
		len--;
	if (len == 0 || len > HTTP_TOKEN_MAX) {
		snprintf(p->token_problem, sizeof(p->token_problem), "malformed bearer token");
		return 0;
	}
	ret = collector_token_hash(tok, len, hash);
	if (ret)
		return ret;
	ret = h->ops->token_find(h->st, hash, p->user, sizeof(p->user), p->role, sizeof(p->role));
	if (ret == -ENOENT) {
		snprintf(p->token_problem, sizeof(p->token_problem), "unknown or revoked token");
		return 0;
	}
	if (ret)
		return ret;
	p->person = true;
	return 0;
}

static int http_identify(struct collector_http *h, struct MHD_Connection *c, struct http_peer *p)
{
	memset(p, 0, sizeof(*p));
	if (h->cfg->insecure_dev_mode) {
		p->node = p->person = true;
		snprintf(p->node_name, sizeof(p->node_name), HTTP_DEV_IDENTITY);
		snprintf(p->user, sizeof(p->user), HTTP_DEV_IDENTITY);
		snprintf(p->role, sizeof(p->role), "auditor");
		p->all_roles = true;
		return 0;
	}
	http_peer_cert(c, p);
	return http_peer_token(h, c, p);
}

bool http_peer_has(const struct http_peer *p, const char *role)
{
	return p->person && (p->all_roles || strcmp(p->role, role) == 0);
}

/* Who may use the resources and summary endpoints: 0, or the status and why not. */
static unsigned int http_authorize_manage(int route, bool write, const struct http_peer *p,
					  char *why, size_t whylen)
{
	bool editor = http_peer_has(p, "editor"), auditor = http_peer_has(p, "auditor");

	switch (route) {
	case HTTP_ROUTE_RESOURCES:
	case HTTP_ROUTE_RESOURCE_KIND:
	case HTTP_ROUTE_RESOURCE:
		if (editor || (auditor && !write))
			return 0;
		snprintf(why, whylen, "role '%s' may not %s inference resources (%s)", p->role,
			 write ? "change" : "read", write ? "editor only" : "editor or auditor");
		return MHD_HTTP_FORBIDDEN;
	case HTTP_ROUTE_SUMMARY:
		/* access tokens: their own sessions' (checked with the session) */
		if (auditor || http_peer_has(p, "access"))
			return 0;
		snprintf(why, whylen, "role '%s' may not read summaries (auditor or access)",
			 p->role);
		return MHD_HTTP_FORBIDDEN;
	default: /* summarize, jobs */
		if (auditor || editor)
			return 0;
		snprintf(why, whylen, "role '%s' may not %s (auditor or editor)", p->role,
			 route == HTTP_ROUTE_JOBS ? "list summary jobs" : "ask for summaries");
		return MHD_HTTP_FORBIDDEN;
	}
}

/* 0 when the peer may use the route; else the status to refuse with and why. */
static unsigned int http_authorize(int route, bool write, const struct http_peer *p, char *why,
				   size_t whylen)
{
	if (route >= HTTP_ROUTE_RESOURCES && p->person)
		return http_authorize_manage(route, write, p, why, whylen);
	if (route == HTTP_ROUTE_PART || route == HTTP_ROUTE_COMPLETE) {
		if (p->node)
			return 0;
		if (p->person) {
			snprintf(why, whylen,
				 "only nodes upload (with a client certificate), not a person's "
				 "token");
			return MHD_HTTP_FORBIDDEN;
		}
		if (p->cert_problem[0]) {
			snprintf(why, whylen, "client certificate refused: %s", p->cert_problem);
			return MHD_HTTP_UNAUTHORIZED;
		}
		snprintf(why, whylen, "no client certificate: only nodes may upload");
		return MHD_HTTP_UNAUTHORIZED;
	}
	if (p->person) {
		if (strcmp(p->role, "access") == 0 || strcmp(p->role, "auditor") == 0)
			return 0;
		snprintf(why, whylen, "role '%s' may not read sessions or the audit log", p->role);
		return MHD_HTTP_FORBIDDEN;
	}
	if (p->token_problem[0]) {
		snprintf(why, whylen, "%s", p->token_problem);
		return MHD_HTTP_UNAUTHORIZED;
	}
	if (p->node) {
		snprintf(why, whylen, "nodes may not use the read API");
		return MHD_HTTP_FORBIDDEN;
	}
	snprintf(why, whylen, "no credentials: send Authorization: Bearer TOKEN");
	return MHD_HTTP_UNAUTHORIZED;
}

/* ------------------------------------------------------------ operations endpoints */

static enum MHD_Result http_healthz(struct collector_http *h, struct MHD_Connection *c,
				    struct http_req *r)
{
	static const char nil_sid[] = "00000000-0000-0000-0000-000000000000";
	struct store_session ss = {0};
	const char *text;
	char *body;
	int ret;

	/* A lookup that finds nothing proves the index answers. */
	ret = h->ops->session_get(h->st, nil_sid, &ss);
	store_session_clear(&ss);
	if (ret && ret != -ENOENT)
		return http_error(c, r, MHD_HTTP_SERVICE_UNAVAILABLE, "store unavailable: %s",
				  strerror(-ret));
	text = h->cfg->insecure_dev_mode
		   ? "ok (insecure_dev_mode: no TLS, no authentication; for development only)\n"
		   : "ok\n";
	body = strdup(text);
	if (!body)
		return MHD_NO;
	return http_respond(c, r, MHD_HTTP_OK, "text/plain; charset=utf-8", body, strlen(body));
}

static enum MHD_Result http_metrics(struct collector_http *h, struct MHD_Connection *c,
				    struct http_req *r)
{
	char *body = collector_metrics_render(&h->m), *all = NULL;
	size_t len = 0;
	FILE *f;

	if (!body)
		return MHD_NO;
	if (h->sum) {
		f = open_memstream(&all, &len);
		if (!f) {
			free(body);
			return MHD_NO;
		}
		fputs(body, f);
		summarize_metrics_write(h->sum, f);
		free(body);
		body = NULL;
		if (fclose(f) != 0) {
			free(all);
			return MHD_NO;
		}
		body = all;
	}
	return http_respond(c, r, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body,
			    strlen(body));
}

/* ------------------------------------------------------------ uploads */

/* The status of an ingest call: its own, or 500 when it failed without one. */
static unsigned int http_ingest_status(int ret, int status, char *why, size_t whylen)
{
	if (status >= 400 && status <= 599)
		return (unsigned int)status;
	if (ret < 0) {
		if (!why[0])
			snprintf(why, whylen, "storage error: %s", strerror(-ret));
		return MHD_HTTP_INTERNAL_SERVER_ERROR;
	}
	if (status < 200 || status > 299) {
		snprintf(why, whylen, "internal error: ingest answered %d", status);
		return MHD_HTTP_INTERNAL_SERVER_ERROR;
	}
	return (unsigned int)status;
}

static void http_hex(const uint8_t *b, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 0xf];
	}
	out[2 * n] = '\0';
}

static enum MHD_Result http_part_finish(struct collector_http *h, struct MHD_Connection *c,
					struct http_req *r)
{
	uint8_t sha[32];
	char hex[65], why[512] = "";
	unsigned int st;
	int status = 0, ret;

	if (r->len < REC_HDR_SIZE)
		return http_error(c, r, MHD_HTTP_BAD_REQUEST,
				  "part %u: %zu bytes is shorter than a part header (%d)", r->n,
				  r->len, REC_HDR_SIZE);
	ret = collector_part_upload(h->st, h->ops, r->sid, r->n, r->buf, r->len, &status, why,
				    sizeof(why));
	st = http_ingest_status(ret, status, why, sizeof(why));
	if (st >= 300)
		return http_error(c, r, st, "%s", why[0] ? why : "part refused");
	/*
	 * A 2xx means part n is stored with this part's SHA-256 (ingest compared
	 * it): the index has it, and the part need not be hashed a third time.
	 */
	if (h->ops->part_stat(h->st, r->sid, r->n, sha, NULL) != 0 &&
	    gnutls_hash_fast(GNUTLS_DIG_SHA256, r->buf, r->len, sha) < 0)
		return http_error(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot hash the part");
	http_hex(sha, sizeof(sha), hex);
	if (st == MHD_HTTP_CREATED) {
		collector_metrics_add(&h->m.parts_stored, 1);
		collector_metrics_add(&h->m.upload_bytes, r->len);
	} else {
		collector_metrics_add(&h->m.parts_duplicate, 1);
	}
	log_debug("part %u of %s from %s: %zu bytes, %s", r->n, r->sid, r->peer.node_name, r->len,
		  st == MHD_HTTP_CREATED ? "stored" : "already stored");
	free(r->buf);
	r->buf = NULL;
	return http_json(c, r, st,
			 json_pack("{s:s,s:I,s:s,s:b}", "sid", r->sid, "part", (json_int_t)r->n,
				   "sha256", hex, "stored", st == MHD_HTTP_CREATED));
}

static enum MHD_Result http_complete_finish(struct collector_http *h, struct MHD_Connection *c,
					    struct http_req *r)
{
	struct store_session before = {0}, after = {0};
	json_t *root = NULL, *jparts, *jnode, *jend;
	const char *node;
	char why[512] = "", *end_json = NULL;
	json_error_t je;
	json_int_t parts;
	bool was_complete;
	enum MHD_Result res;
	unsigned int st;
	int status = 0, ret;

	root = json_loadb(r->buf ? (const char *)r->buf : "", r->len, JSON_REJECT_DUPLICATES, &je);
	if (!root || !json_is_object(root)) {
		res = http_error(c, r, MHD_HTTP_BAD_REQUEST, "body: %s",
				 root ? "not a JSON object" : je.text);
		goto out;
	}
	jparts = json_object_get(root, "parts");
	jnode = json_object_get(root, "node");
	jend = json_object_get(root, "end");
	if (!json_is_integer(jparts) || json_integer_value(jparts) < 1 ||
	    json_integer_value(jparts) > (json_int_t)UINT32_MAX) {
		res = http_error(c, r, MHD_HTTP_BAD_REQUEST,
				 "body: \"parts\" must be the number of parts written (1 or more)");
		goto out;
	}
	parts = json_integer_value(jparts);
	if (jnode && (!json_is_string(jnode) || !http_name_ok(json_string_value(jnode)) ||
		      json_string_length(jnode) >= HTTP_NAME_MAX)) {
		res = http_error(c, r, MHD_HTTP_BAD_REQUEST, "body: \"node\" must be a node name");
		goto out;
	}
	if (jend && !json_is_object(jend)) {
		res = http_error(c, r, MHD_HTTP_BAD_REQUEST, "body: \"end\" must be an object");
		goto out;
	}
	/* A node speaks for itself only: the certificate says who it is. */
	node = r->peer.node_name;
	if (h->cfg->insecure_dev_mode) {
		if (jnode)
			node = json_string_value(jnode);
	} else if (jnode && strcmp(json_string_value(jnode), node) != 0) {
		res = http_error(c, r, MHD_HTTP_FORBIDDEN,
				 "node '%.64s' in the body is not the client certificate's '%.64s'",
				 json_string_value(jnode), node);
		goto out;
	}
	end_json = jend ? json_dumps(jend, JSON_COMPACT) : strdup("{}");
	if (!end_json) {
		res = MHD_NO;
		goto out;
	}
	was_complete = h->ops->session_get(h->st, r->sid, &before) == 0 && before.status &&
		       strcmp(before.status, "complete") == 0;
	ret = collector_session_complete(h->st, h->ops, r->sid, node, (uint32_t)parts, end_json,
					 &status, why, sizeof(why));
	st = http_ingest_status(ret, status, why, sizeof(why));
	if (st >= 300) {
		res = http_error(c, r, st, "%s", why[0] ? why : "completion refused");
		goto out;
	}
	ret = h->ops->session_get(h->st, r->sid, &after);
	if (ret)
		log_warn("session %s completed but not readable from the index: %s", r->sid,
			 strerror(-ret));
	if (!was_complete) {
		collector_metrics_add(&h->m.sessions_completed, 1);
		log_info("session %s from %s complete: %u parts, %lu events, %lu bytes", r->sid,
			 node, (unsigned int)parts, (unsigned long)after.events,
			 (unsigned long)after.bytes);
	}
	res = http_json(c, r, st,
			json_pack("{s:s,s:I,s:I}", "sid", r->sid, "events",
				  (json_int_t)after.events, "bytes", (json_int_t)after.bytes));
out:
	store_session_clear(&before);
	store_session_clear(&after);
	free(end_json);
	json_decref(root);
	return res;
}

/* Buffer a piece of body; refuse (once) as soon as it would pass the cap. */
static enum MHD_Result http_body(struct collector_http *h, struct MHD_Connection *c,
				 struct http_req *r, const char *data, size_t n)
{
	size_t cap;
	uint8_t *p;

	if (r->status || r->too_large) {
		/* Refused already: drop the rest, but not forever. */
		r->len += n;
		if (r->len <= 2 * (size_t)r->limit)
			return MHD_YES;
		if (!r->status)
			r->status =
			    MHD_HTTP_CONTENT_TOO_LARGE; /* counted so; the close is the answer */
		return MHD_NO;
	}
	if (n > r->limit - r->len) {
		free(r->buf);
		r->buf = NULL;
		r->len = r->len + n;
		r->too_large = true;
		return MHD_YES; /* answered once the request is read (MHD cannot mid-body) */
	}
	if (r->len + n > r->cap) {
		cap = r->cap ? r->cap : 64u << 10;
		while (cap < r->len + n)
			cap *= 2;
		if (cap > r->limit)
			cap = r->limit;
		p = realloc(r->buf, cap);
		if (!p)
			return MHD_NO;
		r->buf = p;
		r->cap = cap;
	}
	memcpy(r->buf + r->len, data, n);
	r->len += n;
	(void)h;
	return MHD_YES;
}

/* ------------------------------------------------------------ the access handler */

/* The first call of a request: everything that can be decided from its headers. */
static enum MHD_Result http_begin(struct collector_http *h, struct MHD_Connection *c,
				  struct http_req *r, const char *url, const char *method)
{
	struct http_path path;
	const char *want, *cl;
	char why[256] = "";
	unsigned int st;
	int ret;

	r->route = http_route(url, &path);
	r->handler = http_route_handler(r->route);
	if (r->route == HTTP_ROUTE_NONE)
		return http_error(c, r, MHD_HTTP_NOT_FOUND, "no such endpoint: %.100s", url);
	want = http_route_methods(r->route);
	if (!http_method_allowed(want, method)) {
		enum MHD_Result res = http_error(c, r, MHD_HTTP_METHOD_NOT_ALLOWED,
						 "%.16s %.100s: use %s", method, url, want);

		return res;
	}
	r->post = strcmp(method, "POST") == 0;
	r->del = strcmp(method, "DELETE") == 0;
	if (r->route == HTTP_ROUTE_HEALTHZ)
		return http_healthz(h, c, r);
	if (r->route == HTTP_ROUTE_METRICS)
		return http_metrics(h, c, r);

	ret = http_identify(h, c, &r->peer);
	if (ret)
		return http_error(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "token lookup failed: %s",
				  strerror(-ret));
	st = http_authorize(r->route, r->post || r->del, &r->peer, why, sizeof(why));
	if (st)
		return http_error(c, r, st, "%s", why);
	if (r->route >= HTTP_ROUTE_RESOURCES && !h->sum)
		return http_error(c, r, MHD_HTTP_SERVICE_UNAVAILABLE,
				  "summaries are not running on this collector");
	if (path.kind) {
		enum resource_kind k;

		if (path.kind_len >= sizeof(r->kind))
			return http_error(c, r, MHD_HTTP_NOT_FOUND, "no resource kind '%.40s...'",
					  path.kind);
		memcpy(r->kind, path.kind, path.kind_len);
		r->kind[path.kind_len] = '\0';
		if (resource_kind_parse(r->kind, &k))
			return http_error(c, r, MHD_HTTP_NOT_FOUND,
					  "no resource kind '%s' (inference_model, "
					  "inference_secret, inference_policy)",
					  r->kind);
		snprintf(r->kind, sizeof(r->kind), "%s", resource_kind_name(k));
	}
	if (path.name) {
		if (!resource_name_valid(path.name))
			return http_error(c, r, MHD_HTTP_BAD_REQUEST,
					  "not a resource name: '%.64s'", path.name);
		snprintf(r->name, sizeof(r->name), "%s", path.name);
	}

	if (path.sid) {
		if (path.sid_len >= sizeof(r->sid)) {
			return http_error(c, r, MHD_HTTP_BAD_REQUEST,
					  "session id is not a UUID: '%.40s...'", path.sid);
		}
		memcpy(r->sid, path.sid, path.sid_len);
		r->sid[path.sid_len] = '\0';
		if (!util_is_uuid(r->sid))
			return http_error(c, r, MHD_HTTP_BAD_REQUEST,
					  "session id is not a UUID: '%s'", r->sid);
	}
	if (r->route == HTTP_ROUTE_PART && http_parse_part(path.n, &r->n))
		return http_error(c, r, MHD_HTTP_BAD_REQUEST,
				  "part number is not a decimal from 0 to 4294967295: '%.20s'",
				  path.n);

	if (r->route == HTTP_ROUTE_PART || r->route == HTTP_ROUTE_COMPLETE || r->post) {
		r->limit = r->route == HTTP_ROUTE_PART	      ? h->cfg->max_part_size
			   : r->route == HTTP_ROUTE_RESOURCES ? RESOURCE_YAML_MAX
							      : HTTP_JSON_MAX;
		cl =
		    MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl) {
			char *end;
			unsigned long long v;

			errno = 0;
			v = strtoull(cl, &end, 10);
			if (errno || end == cl || *end)
				return http_error(c, r, MHD_HTTP_BAD_REQUEST, "bad Content-Length");
			if (v > r->limit)
				return http_error(c, r, MHD_HTTP_CONTENT_TOO_LARGE,
						  "body of %llu bytes is over the limit of %zu", v,
						  r->limit);
			/* One allocation for the whole body when its size is announced. */
			if (v) {
				r->buf = malloc((size_t)v);
				if (!r->buf)
					return http_error(c, r, MHD_HTTP_SERVICE_UNAVAILABLE,
							  "out of memory for a %llu byte body", v);
				r->cap = (size_t)v;
			}
		}
		return MHD_YES; /* read the body */
	}

	switch (r->route) {
	case HTTP_ROUTE_SESSIONS:
		return collector_api_sessions(h, c, r);
	case HTTP_ROUTE_SESSION:
		return collector_api_session(h, c, r);
	case HTTP_ROUTE_EVENTS:
		return collector_api_events(h, c, r);
	case HTTP_ROUTE_RECORDING:
		return collector_api_recording(h, c, r);
	case HTTP_ROUTE_AUDIT:
		return collector_api_audit(h, c, r);
	case HTTP_ROUTE_RESOURCES:
	case HTTP_ROUTE_RESOURCE_KIND:
		return collector_api_resources_get(h, c, r);
	case HTTP_ROUTE_RESOURCE:
		return r->del ? collector_api_resource_delete(h, c, r)
			      : collector_api_resources_get(h, c, r);
	case HTTP_ROUTE_SUMMARY:
		return collector_api_summary(h, c, r);
	case HTTP_ROUTE_JOBS:
		return collector_api_jobs(h, c, r);
	default:
		return http_error(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "unrouted request");
	}
}

static enum MHD_Result http_handler(void *cls, struct MHD_Connection *c, const char *url,
				    const char *method, const char *version,
				    const char *upload_data, size_t *upload_data_size,
				    void **req_cls)
{
	struct collector_http *h = cls;
	struct http_req *r = *req_cls;

	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return MHD_NO;
		r->start_ns = http_mono_ns();
		*req_cls = r;
		collector_metrics_add(&h->m.in_flight, 1);
		return http_begin(h, c, r, url, method);
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;

		*upload_data_size = 0;
		return http_body(h, c, r, upload_data, n);
	}
	if (r->status)
		return MHD_YES; /* answered at the start; MHD finishes the request */
	if (r->too_large)
		return http_error(c, r, MHD_HTTP_CONTENT_TOO_LARGE,
				  "body is over the limit of %zu bytes", r->limit);
	if (r->route == HTTP_ROUTE_PART)
		return http_part_finish(h, c, r);
	if (r->route == HTTP_ROUTE_COMPLETE)
		return http_complete_finish(h, c, r);
	if (r->route == HTTP_ROUTE_RESOURCES)
		return collector_api_resources_create(h, c, r);
	if (r->route == HTTP_ROUTE_SUMMARIZE)
		return collector_api_summarize(h, c, r);
	return http_error(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "request without a response");
}

static void http_completed(void *cls, struct MHD_Connection *c, void **req_cls,
			   enum MHD_RequestTerminationCode toe)
{
	struct collector_http *h = cls;
	struct http_req *r = *req_cls;
	uint64_t dur;

	(void)c;
	if (!r)
		return;
	dur = http_mono_ns() - r->start_ns;
	if (!r->follow)
		collector_metrics_request(&h->m, r->handler, r->status, dur);
	if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
		log_debug("request ended early (%d) after %.1f ms", (int)toe, (double)dur / 1e6);
	__atomic_fetch_sub(&h->m.in_flight, 1, __ATOMIC_RELAXED);
	free(r->buf);
	free(r);
	*req_cls = NULL;
}

static void http_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	/* TLS handshakes that fail (plain HTTP, port scans) are routine: debug. */
	log_debug("libmicrohttpd: %s", msg);
}

/* ------------------------------------------------------------ start and stop */

static int http_read_pem(const char *key, const char *path, char **out)
{
	size_t len = 0;
	int ret;

	ret = util_read_file(path, HTTP_PEM_MAX, out, &len);
	if (ret) {
		log_error("tls.%s: cannot read %s: %s", key, path, strerror(-ret));
		return ret;
	}
	if (len == HTTP_PEM_MAX) {
		log_error("tls.%s: %s is larger than %u bytes", key, path, HTTP_PEM_MAX);
		return -EFBIG;
	}
	return 0;
}

/* Load the TLS files once with GnuTLS to say precisely what is wrong with them. */
static int http_tls_check(struct collector_http *h)
{
	gnutls_certificate_credentials_t cred = NULL;
	gnutls_datum_t cert, key, ca;
	const struct collector_config *cfg = h->cfg;
	int ret = 0, rc;

	if (http_read_pem("cert_file", cfg->tls.cert_file, &h->cert_pem) ||
	    http_read_pem("key_file", cfg->tls.key_file, &h->key_pem) ||
	    http_read_pem("client_ca_file", cfg->tls.client_ca_file, &h->ca_pem))
		return -EINVAL;
	cert.data = (unsigned char *)h->cert_pem;
	cert.size = (unsigned int)strlen(h->cert_pem);
	key.data = (unsigned char *)h->key_pem;
	key.size = (unsigned int)strlen(h->key_pem);
	ca.data = (unsigned char *)h->ca_pem;
	ca.size = (unsigned int)strlen(h->ca_pem);
	rc = gnutls_certificate_allocate_credentials(&cred);
	if (rc < 0) {
		log_error("TLS credentials: %s", gnutls_strerror(rc));
		return -ENOMEM;
	}
	rc = gnutls_certificate_set_x509_key_mem(cred, &cert, &key, GNUTLS_X509_FMT_PEM);
	if (rc < 0) {
		log_error("tls: %s and %s: %s", cfg->tls.cert_file, cfg->tls.key_file,
			  gnutls_strerror(rc));
		ret = -EINVAL;
		goto out;
	}
	rc = gnutls_certificate_set_x509_trust_mem(cred, &ca, GNUTLS_X509_FMT_PEM);
	if (rc <= 0) {
		log_error("tls.client_ca_file: %s: %s", cfg->tls.client_ca_file,
			  rc < 0 ? gnutls_strerror(rc) : "no certificate in it");
		ret = -EINVAL;
		goto out;
	}
out:
	gnutls_certificate_free_credentials(cred);
	return ret;
}

/* The socket address of listen: an IP address, localhost, or a name resolved once. */
static int http_sockaddr(const char *listen, bool dev, struct sockaddr_storage *ss, bool *v6)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
	char host[256];
	uint16_t port;
	int rc;

	memset(ss, 0, sizeof(*ss));
	if (collector_listen_split(listen, host, sizeof(host), &port)) {
		log_error("listen: expected host:port, got '%s'", listen);
		return -EINVAL;
	}
	if (dev && !collector_host_is_loopback(host)) {
		log_error("insecure_dev_mode refuses to listen on '%s': only 127.0.0.0/8, [::1] "
			  "and localhost",
			  listen);
		return -EPERM;
	}
	if (strcmp(host, "localhost") == 0)
		snprintf(host, sizeof(host), "127.0.0.1");
	*v6 = false;
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		*v6 = true;
		return 0;
	}
	rc = getaddrinfo(host, NULL, &hints, &ai);
	if (rc || !ai) {
		log_error("listen: cannot resolve '%s': %s", host, gai_strerror(rc));
		return -EINVAL;
	}
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*v6 = ai->ai_family == AF_INET6;
	if (*v6)
		sin6->sin6_port = htons(port);
	else
		sin->sin_port = htons(port);
	freeaddrinfo(ai);
	return 0;
}

static void http_free(struct collector_http *h)
{
	if (!h)
		return;
	free(h->cert_pem);
	if (h->key_pem) {
		gnutls_memset(h->key_pem, 0, strlen(h->key_pem));
		free(h->key_pem);
	}
	free(h->ca_pem);
	free(h);
}

/*
 * Percent-decoding of the URL and query arguments. A decoded NUL would cut
 * the C string libmicrohttpd hands us ("<sid>%00junk" reading as "<sid>"), so
 * it becomes DEL instead, which no id, number or name accepts.
 */
static size_t http_unescape(void *cls, struct MHD_Connection *c, char *s)
{
	char *r = s, *w = s;

	(void)cls;
	(void)c;
	while (*r) {
		unsigned int v;

		if (r[0] == '%' && isxdigit((unsigned char)r[1]) && isxdigit((unsigned char)r[2]) &&
		    sscanf(r + 1, "%2x", &v) == 1) {
			*w++ = v ? (char)v : '\x7f';
			r += 3;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
	return (size_t)(w - s);
}

int collector_http_start(struct collector_http **out, const struct collector_config *cfg,
			 struct store *st, const struct store_ops *ops, struct summarizer *sum)
{
	struct collector_http *h;
	struct sockaddr_storage ss;
	struct MHD_OptionItem opt[16];
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
			     MHD_USE_ITC | MHD_USE_ERROR_LOG;
	bool v6 = false;
	size_t i = 0;
	int ret;

	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->cfg = cfg;
	h->st = st;
	h->ops = ops;
	h->sum = sum;
	ret = http_sockaddr(cfg->listen, cfg->insecure_dev_mode, &ss, &v6);
	if (ret)
		goto fail;
	if (v6)
		flags |= MHD_USE_IPv6;
	/* First, so that MHD's own complaints about the rest go to our log too. */
	opt[i++] = (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)http_mhd_log, h};
	opt[i++] =
	    (struct MHD_OptionItem){MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)http_unescape, NULL};
	opt[i++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &ss};
	opt[i++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections, NULL};
	opt[i++] =
	    (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, cfg->request_timeout, NULL};
	opt[i++] =
	    (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT, HTTP_CONN_MEMORY, NULL};
	opt[i++] =
	    (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)http_completed, h};
	if (!cfg->insecure_dev_mode) {
		ret = http_tls_check(h);
		if (ret)
			goto fail;
		flags |= MHD_USE_TLS;
		opt[i++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, h->cert_pem};
		opt[i++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, h->key_pem};
		/* A trust store makes MHD request (not require) a client certificate. */
		opt[i++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, h->ca_pem};
		opt[i++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0,
						   (void *)HTTP_TLS_PRIORITY};
		/* a per-connection context: its client certificate is verified once */
		opt[i++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION,
						   (intptr_t)http_notify_conn, NULL};
	}
	opt[i++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};

	h->d = MHD_start_daemon(flags, 0, NULL, NULL, http_handler, h, MHD_OPTION_ARRAY, opt,
				MHD_OPTION_END);
	if (!h->d) {
		log_error("cannot listen on %s (address in use, or not an address of this host?)",
			  cfg->listen);
		ret = -EADDRINUSE;
		goto fail;
	}
	if (cfg->insecure_dev_mode) {
		log_warn("WARNING: insecure_dev_mode: plain HTTP on %s, NO TLS and NO "
			 "AUTHENTICATION",
			 cfg->listen);
		log_warn("WARNING: every request acts as a node and as '%s' with every role "
			 "(access, auditor and editor: it may change inference resources): for "
			 "development and tests only",
			 HTTP_DEV_IDENTITY);
	} else {
		log_info("listening on https://%s (client certificates: %s)", cfg->listen,
			 cfg->tls.client_ca_file);
	}
	*out = h;
	return 0;
fail:
	http_free(h);
	return ret;
}

void collector_http_stop(struct collector_http *h, unsigned int timeout_s)
{
	uint64_t deadline;
	MHD_socket fd;
	uint64_t left;

	if (!h)
		return;
	__atomic_store_n(&h->stopping, 1, __ATOMIC_RELAXED);
	fd = MHD_quiesce_daemon(h->d);
	if (fd != MHD_INVALID_SOCKET)
		close(fd);
	deadline = http_mono_ns() + (uint64_t)timeout_s * 1000000000ull;
	while ((left = __atomic_load_n(&h->m.in_flight, __ATOMIC_RELAXED)) > 0 &&
	       http_mono_ns() < deadline)
		http_sleep_ms(HTTP_DRAIN_POLL_MS);
	if (left)
		log_warn("closing %lu request(s) still running after %u s", (unsigned long)left,
			 timeout_s);
	MHD_stop_daemon(h->d);
	http_free(h);
}
