/*
 * The read API of docs/api.md: sessions, their events and recordings, and the
 * central audit log. Callers are people (bearer tokens) already authorized by
 * http.c for reading; here an `access` token is narrowed to its own user's
 * sessions, and what it may not see answers exactly like what does not exist.
 */
#include "http.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "audit.h"
#include "log.h"
#include "rec.h"

#define API_LIST_DEFAULT  100
#define API_LIST_MAX	  1000
#define API_LABELS_MAX	  32
#define API_AUDIT_DEFAULT 1000
#define API_AUDIT_MAX	  10000
#define API_AUDIT_BATCH	  1000
#define API_AUDIT_TYPES	  16
#define API_PARTS_MAX	  1000000u
#define API_STREAM_BLOCK  (64u << 10)
#define API_ARG_PROBLEM	  200

static bool api_is_access(const struct http_req *r)
{
	return strcmp(r->peer.role, "auditor") != 0;
}

/* ------------------------------------------------------------ small parsers */

static int api_digits(const char **p, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if ((*p)[i] < '0' || (*p)[i] > '9')
			return -EINVAL;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

int collector_api_parse_time(const char *s, int64_t *ns)
{
	struct tm tm = {0};
	int y, mo, d, h = 0, mi = 0, sec = 0, oh = 0, om = 0, sign = 0;
	int64_t frac = 0, scale = 1000000000;
	time_t t;

	if (api_digits(&s, 4, &y) || *s++ != '-' || api_digits(&s, 2, &mo) || *s++ != '-' ||
	    api_digits(&s, 2, &d))
		return -EINVAL;
	if (*s) {
		if (*s != 'T' && *s != 't')
			return -EINVAL;
		s++;
		if (api_digits(&s, 2, &h) || *s++ != ':' || api_digits(&s, 2, &mi) || *s++ != ':' ||
		    api_digits(&s, 2, &sec))
			return -EINVAL;
		if (*s == '.') {
			s++;
			if (*s < '0' || *s > '9')
				return -EINVAL;
			for (; *s >= '0' && *s <= '9'; s++) {
				if (scale > 1) {
					scale /= 10;
					frac += (*s - '0') * scale;
				}
			}
		}
		if (*s == 'Z' || *s == 'z') {
			s++;
		} else if (*s == '+' || *s == '-') {
			sign = *s++ == '+' ? 1 : -1;
			if (api_digits(&s, 2, &oh) || *s++ != ':' || api_digits(&s, 2, &om) ||
			    oh > 23 || om > 59)
				return -EINVAL;
		} else {
			return -EINVAL;
		}
		if (*s)
			return -EINVAL;
	}
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return -EINVAL;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	if (t == (time_t)-1 || tm.tm_mday != d)
		return -EINVAL; /* also 31 April and friends, which timegm moves on */
	t -= (time_t)sign * (oh * 3600 + om * 60);
	if (t < 0 || t > INT64_MAX / 1000000000 - 1)
		return -EINVAL;
	*ns = (int64_t)t * 1000000000 + frac;
	return 0;
}

static int api_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (!s || !*s)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	if (v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* A JSON string of s; bytes that are not valid UTF-8 become '?'. */
json_t *api_json_str(const char *s)
{
	json_t *j;
	char *copy;

	if (!s)
		s = "";
	j = json_string(s);
	if (j)
		return j;
	copy = strdup(s);
	if (!copy)
		return NULL;
	for (char *p = copy; *p; p++) {
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	}
	j = json_string(copy);
	free(copy);
	return j;
}

/* A JSON document kept by the index as text; fallback when it is missing or broken. */
static json_t *api_embedded(const char *text, bool object)
{
	json_t *j = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;

	if (j && (object ? json_is_object(j) : json_is_array(j)))
		return j;
	json_decref(j);
	return object ? json_object() : json_array();
}

json_t *api_json_time(int64_t ns)
{
	char buf[40];

	if (ns <= 0)
		return json_null();
	util_rfc3339(ns, buf, sizeof(buf));
	return json_string(buf);
}

/* ------------------------------------------------------------ sessions */

static json_t *api_session_json(const struct store_session *ss)
{
	json_t *o = json_object();
	int err = 0;

	if (!o)
		return NULL;
	err |= json_object_set_new(o, "sid", api_json_str(ss->sid));
	err |= json_object_set_new(o, "node", api_json_str(ss->node));
	err |= json_object_set_new(o, "user", api_json_str(ss->user));
	err |= json_object_set_new(o, "login", api_json_str(ss->login));
	err |= json_object_set_new(o, "kind", api_json_str(ss->kind));
	err |= json_object_set_new(o, "labels", api_embedded(ss->labels_json, true));
	err |= json_object_set_new(o, "start", api_json_time(ss->start_ns));
	err |= json_object_set_new(o, "end", api_json_time(ss->end_ns));
	err |= json_object_set_new(o, "duration_ms",
				   ss->start_ns > 0 && ss->end_ns >= ss->start_ns
				       ? json_integer((ss->end_ns - ss->start_ns) / 1000000)
				       : json_null());
	err |= json_object_set_new(o, "exit_code", json_integer(ss->exit_code));
	err |= json_object_set_new(o, "commands", json_integer((json_int_t)ss->commands));
	err |= json_object_set_new(o, "events", json_integer((json_int_t)ss->events));
	err |= json_object_set_new(o, "bytes", json_integer((json_int_t)ss->bytes));
	err |= json_object_set_new(o, "parts", json_integer(ss->parts));
	err |= json_object_set_new(o, "status", api_json_str(ss->status));
	err |= json_object_set_new(o, "initial_command",
				   api_embedded(ss->initial_command_json, false));
	err |= json_object_set_new(o, "cols", json_integer(ss->cols));
	err |= json_object_set_new(o, "rows", json_integer(ss->rows));
	err |= json_object_set_new(o, "closed_by",
				   ss->closed_by ? api_json_str(ss->closed_by) : json_null());
	/* summarized: the risk level of its latest summary */
	if (ss->risk_level[0])
		err |= json_object_set_new(o, "risk_level", api_json_str(ss->risk_level));
	if (err) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* The query of GET /v1/sessions, with the first problem found in it. */
struct api_list_query {
	struct store_filter f;
	const char *labels[API_LABELS_MAX];
	bool seen_limit, seen_from, seen_to;
	char problem[API_ARG_PROBLEM];
};

static enum MHD_Result api_list_arg(void *cls, enum MHD_ValueKind kind, const char *key,
				    const char *value)
{
	struct api_list_query *q = cls;
	const char **str = NULL;
	uint64_t v;
	int64_t t;

	(void)kind;
	if (q->problem[0])
		return MHD_NO;
	if (!value)
		value = "";
	if (strcmp(key, "user") == 0)
		str = &q->f.user;
	else if (strcmp(key, "node") == 0)
		str = &q->f.node;
	else if (strcmp(key, "kind") == 0)
		str = &q->f.kind;
	else if (strcmp(key, "command") == 0)
		str = &q->f.command;
	else if (strcmp(key, "addr") == 0)
		str = &q->f.addr;
	else if (strcmp(key, "cursor") == 0)
		str = &q->f.cursor;
	else if (strcmp(key, "risk") == 0) {
		if (strcmp(value, "low") != 0 && strcmp(value, "medium") != 0 &&
		    strcmp(value, "high") != 0 && strcmp(value, "critical") != 0) {
			snprintf(q->problem, sizeof(q->problem),
				 "risk: low, medium, high or critical, not '%.40s'", value);
			return MHD_NO;
		}
		str = &q->f.risk;
	} else if (strcmp(key, "status") == 0) {
		if (strcmp(value, "complete") != 0 && strcmp(value, "uploading") != 0) {
			snprintf(q->problem, sizeof(q->problem),
				 "status: 'complete' or 'uploading', not '%.40s'", value);
			return MHD_NO;
		}
		str = &q->f.status;
	} else if (strcmp(key, "label") == 0) {
		const char *eq = strchr(value, '=');

		if (!eq || eq == value) {
			snprintf(q->problem, sizeof(q->problem), "label: expected k=v, got '%.40s'",
				 value);
			return MHD_NO;
		}
		if (q->f.n_labels == API_LABELS_MAX) {
			snprintf(q->problem, sizeof(q->problem), "label: at most %d",
				 API_LABELS_MAX);
			return MHD_NO;
		}
		q->labels[q->f.n_labels++] = value;
		return MHD_YES;
	} else if (strcmp(key, "limit") == 0) {
		if (q->seen_limit || api_parse_u64(value, API_LIST_MAX, &v) || v == 0) {
			snprintf(q->problem, sizeof(q->problem), "limit: a number from 1 to %d",
				 API_LIST_MAX);
			return MHD_NO;
		}
		q->seen_limit = true;
		q->f.limit = (uint32_t)v;
		return MHD_YES;
	} else if (strcmp(key, "from") == 0 || strcmp(key, "to") == 0) {
		bool from = key[0] == 'f';

		if ((from ? q->seen_from : q->seen_to) || collector_api_parse_time(value, &t)) {
			snprintf(q->problem, sizeof(q->problem),
				 "%s: an RFC 3339 time (2026-11-22T10:13:19Z), not '%.40s'", key,
				 value);
			return MHD_NO;
		}
		if (from) {
			q->seen_from = true;
			q->f.from_ns = t;
		} else {
			q->seen_to = true;
			q->f.to_ns = t;
		}
		return MHD_YES;
	} else {
		snprintf(q->problem, sizeof(q->problem), "unknown parameter '%.40s'", key);
		return MHD_NO;
	}
	if (*str) {
		snprintf(q->problem, sizeof(q->problem), "%s: given twice", key);
		return MHD_NO;
	}
	*str = value;
	return MHD_YES;
}

static int api_list_cb(void *ctx, const struct store_session *ss)
{
	json_t *o = api_session_json(ss);

	if (!o || json_array_append_new(ctx, o))
		return -ENOMEM;
	return 0;
}

enum MHD_Result collector_api_sessions(struct collector_http *h, struct MHD_Connection *c,
				       struct http_req *r)
{
	struct api_list_query q = {0};
	json_t *arr = NULL, *res;
	char *next = NULL;
	int ret;

	q.f.limit = API_LIST_DEFAULT;
	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, api_list_arg, &q);
	if (q.problem[0])
		return http_error(c, r, MHD_HTTP_BAD_REQUEST, "%s", q.problem);
	q.f.labels = q.labels;
	arr = json_array();
	if (!arr)
		return MHD_NO;
	if (api_is_access(r)) {
		/* Another user's sessions do not exist for an access token. */
		if (q.f.user && strcmp(q.f.user, r->peer.user) != 0)
			goto answer;
		q.f.user = r->peer.user;
	}
	ret = h->ops->session_list(h->st, &q.f, api_list_cb, arr, &next);
	if (ret == -EINVAL) {
		json_decref(arr);
		free(next);
		return http_error(c, r, MHD_HTTP_BAD_REQUEST, "%s",
				  q.f.cursor ? "cursor: not one this server gave"
					     : "the index refused this query");
	}
	if (ret) {
		json_decref(arr);
		free(next);
		return http_error(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "listing sessions: %s",
				  strerror(-ret));
	}
answer:
	res = json_pack("{s:o,s:o}", "sessions", arr, "next_cursor",
			next ? json_string(next) : json_null());
	free(next);
	return http_json(c, r, MHD_HTTP_OK, res);
}

/*
 * The session r->sid as the caller may see it. 0 with *ss filled, or the
 * status to answer (404 for unknown and for invisible alike) with why.
 */
unsigned int api_session_visible(struct collector_http *h, struct http_req *r,
				 struct store_session *ss, bool sees_all, char *why, size_t whylen)
{
	int ret = h->ops->session_get(h->st, r->sid, ss);

	if (ret == 0 && !sees_all && (!ss->user || strcmp(ss->user, r->peer.user) != 0)) {
		store_session_clear(ss);
		ret = -ENOENT;
	}
	if (ret == -ENOENT) {
		snprintf(why, whylen, "session %s not found", r->sid);
		return MHD_HTTP_NOT_FOUND;
	}
	if (ret) {
		snprintf(why, whylen, "reading session %s: %s", r->sid, strerror(-ret));
		return MHD_HTTP_INTERNAL_SERVER_ERROR;
	}
	return 0;
}

enum MHD_Result collector_api_session(struct collector_http *h, struct MHD_Connection *c,
				      struct http_req *r)
{
	struct store_session ss = {0};
	json_t *o = NULL, *hashes = NULL;
	char why[256], hex[65];
	enum MHD_Result res;
	unsigned int st;

	st = api_session_visible(h, r, &ss, !api_is_access(r), why, sizeof(why));
	if (st)
		return http_error(c, r, st, "%s", why);
	o = api_session_json(&ss);
	hashes = json_array();
	if (!o || !hashes) {
		res = MHD_NO;
		goto out;
	}
	for (uint32_t n = 0; n < ss.parts; n++) {
		uint8_t sha[32];
		uint64_t size;
		int ret = h->ops->part_stat(h->st, r->sid, n, sha, &size);

		if (ret == -ENOENT)
			break;
		if (ret) {
			res = http_error(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR,
					 "reading part %u of %s: %s", n, r->sid, strerror(-ret));
			goto out;
		}
		for (size_t i = 0; i < 32; i++)
			snprintf(hex + 2 * i, 3, "%02x", sha[i]);
		if (json_array_append_new(hashes, json_string(hex))) {
			res = MHD_NO;
			goto out;
		}
	}
	if (json_object_set_new(o, "parts_sha256", hashes)) {
		hashes = NULL;
		res = MHD_NO;
		goto out;
	}
	hashes = NULL;
	res = http_json(c, r, MHD_HTTP_OK, o);
	o = NULL;
out:
	json_decref(hashes);
	json_decref(o);
	store_session_clear(&ss);
	return res;
}

/* ------------------------------------------------------------ recording */

/* The parts of a session as stored: their count and total size. */
static int api_parts_size(struct collector_http *h, const char *sid, uint32_t *n, uint64_t *total)
{
	uint8_t sha[32];
	uint64_t size;
	int ret;

	*n = 0;
	*total = 0;
	for (uint32_t i = 0; i < API_PARTS_MAX; i++) {
		ret = h->ops->part_stat(h->st, sid, i, sha, &size);
		if (ret == -ENOENT)
			return 0;
		if (ret)
			return ret;
		*n = i + 1;
		*total += size;
	}
	return 0;
}

struct api_rec_stream {
	struct collector_http *h;
	char sid[UUID_STR_LEN_];
	uint32_t parts, next;
	uint8_t *buf; /* the current part */
	size_t len, off;
};

static ssize_t api_rec_read(void *cls, uint64_t pos, char *out, size_t max)
{
	struct api_rec_stream *s = cls;
	size_t n;
	int ret;

	(void)pos;
	while (s->off == s->len) {
		if (s->next == s->parts)
			return MHD_CONTENT_READER_END_OF_STREAM;
		free(s->buf);
		s->buf = NULL;
		s->len = s->off = 0;
		ret = s->h->ops->part_get(s->h->st, s->sid, s->next, &s->buf, &s->len);
		if (ret) {
			log_warn("recording of %s: reading part %u: %s", s->sid, s->next,
				 strerror(-ret));
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
		s->next++;
	}
	n = s->len - s->off < max ? s->len - s->off : max;
	memcpy(out, s->buf + s->off, n);
	s->off += n;
	return (ssize_t)n;
}

static void api_rec_free(void *cls)
{
	struct api_rec_stream *s = cls;

	free(s->buf);
	free(s);
}

enum MHD_Result collector_api_recording(struct collector_http *h, struct MHD_Connection *c,
					struct http_req *r)
{
	struct store_session ss = {0};
	struct api_rec_stream *s;
	struct MHD_Response *resp;
	char why[256];
	uint64_t total;
	unsigned int st;
	int ret;

	st = api_session_visible(h, r, &ss, !api_is_access(r), why, sizeof(why));
	store_session_clear(&ss);
	if (st)
		return http_error(c, r, st, "%s", why);
	s = calloc(1, sizeof(*s));
	if (!s)
		return MHD_NO;
	s->h = h;
	memcpy(s->sid, r->sid, sizeof(s->sid));
	ret = api_parts_size(h, r->sid, &s->parts, &total);
	if (ret) {
		free(s);
		return http_error(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "reading parts of %s: %s",
				  r->sid, strerror(-ret));
	}
	resp = MHD_create_response_from_callback(total, API_STREAM_BLOCK, api_rec_read, s,
						 api_rec_free);
	if (!resp) {
		api_rec_free(s);
		return MHD_NO;
	}
	if (MHD_add_response_header(resp, "Content-Disposition", "attachment") != MHD_YES) {
		MHD_destroy_response(resp);
		return MHD_NO;
	}
	return http_respond_stream(c, r, resp, "application/octet-stream");
}

/* ------------------------------------------------------------ events of a session */

/* Event types by the names `sessrec events --type` knows, "session." optional. */
static const struct {
	const char *name;
	int body;
} api_event_types[] = {
    {"start", SESSREC__EVENT__BODY_START},     {"end", SESSREC__EVENT__BODY_END},
    {"command", SESSREC__EVENT__BODY_COMMAND}, {"disk", SESSREC__EVENT__BODY_DISK},
    {"network", SESSREC__EVENT__BODY_NETWORK}, {"print", SESSREC__EVENT__BODY_PRINT},
    {"lost", SESSREC__EVENT__BODY_LOST},
};

static uint32_t api_type_bit(int body)
{
	int i = body - SESSREC__EVENT__BODY_START;

	return i >= 0 && i < 32 ? 1u << i : 0;
}

static int api_event_types_parse(const char *list, uint32_t *mask)
{
	const char *p = list;

	*mask = 0;
	for (;;) {
		size_t n = strcspn(p, ",");
		const char *w = p;
		bool found = false;

		if (n > 8 && strncmp(w, "session.", 8) == 0) {
			w += 8;
			n -= 8;
		}
		for (size_t i = 0; i < sizeof(api_event_types) / sizeof(api_event_types[0]); i++) {
			if (strlen(api_event_types[i].name) == n &&
			    strncmp(w, api_event_types[i].name, n) == 0) {
				*mask |= api_type_bit(api_event_types[i].body);
				found = true;
			}
		}
		if (!found)
			return -EINVAL;
		p = w + n;
		if (!*p)
			return 0;
		p++;
	}
}

struct api_events_stream {
	uint8_t *rec; /* every part, back to back */
	size_t rec_len;
	struct rec_reader *reader;
	uint32_t mask;
	/* the session fields of every line, from session.start */
	char *sid, *server_id, *server_hostname, *login, *user;
	int64_t start_ns;
	char *line; /* pending output */
	size_t line_len, line_off;
	bool done, failed;
};

static void api_events_free(void *cls)
{
	struct api_events_stream *s = cls;

	if (!s)
		return;
	rec_reader_close(s->reader);
	free(s->rec);
	free(s->sid);
	free(s->server_id);
	free(s->server_hostname);
	free(s->login);
	free(s->user);
	free(s->line);
	free(s);
}

static int api_events_session(struct api_events_stream *s, const Sessrec__Event *ev)
{
	const Sessrec__SessionStart *st = ev->start;
	char *v[5] = {strdup(st->sid), strdup(st->server_id), strdup(st->server_hostname),
		      strdup(st->login), strdup(st->user)};

	if (!v[0] || !v[1] || !v[2] || !v[3] || !v[4]) {
		for (int i = 0; i < 5; i++)
			free(v[i]);
		return -ENOMEM;
	}
	free(s->sid);
	free(s->server_id);
	free(s->server_hostname);
	free(s->login);
	free(s->user);
	s->sid = v[0];
	s->server_id = v[1];
	s->server_hostname = v[2];
	s->login = v[3];
	s->user = v[4];
	s->start_ns = ev->time_ns;
	return 0;
}

/* The next line to send: an event, or an {"error":...} line when the recording is damaged. */
static int api_events_next_line(struct api_events_stream *s)
{
	Sessrec__Event *ev = NULL;
	char *json = NULL;
	int n, err = 0;

	while (!s->line && !s->done) {
		n = rec_reader_next(s->reader, &ev);
		if (n == 0) {
			s->done = true;
			break;
		}
		if (n < 0) {
			json_t *e = json_pack("{s:s}", "error", rec_reader_error(s->reader));

			s->line = e ? json_dumps(e, JSON_COMPACT) : NULL;
			json_decref(e);
			s->done = s->failed = true;
			if (!s->line)
				return -ENOMEM;
			break;
		}
		if (ev->body_case == SESSREC__EVENT__BODY_START)
			err = api_events_session(s, ev);
		if (!err && (s->mask == 0 || (s->mask & api_type_bit((int)ev->body_case)))) {
			struct audit_ctx ctx = {
			    .sid = s->sid ? s->sid : "",
			    .server_id = s->server_id ? s->server_id : "",
			    .server_hostname = s->server_hostname ? s->server_hostname : "",
			    .login = s->login ? s->login : "",
			    .user = s->user ? s->user : "",
			    .session_start_ns = s->start_ns,
			};

			err = audit_event_json(ev, &ctx, &json);
			if (!err)
				s->line = json;
		}
		sessrec__event__free_unpacked(ev, NULL);
		if (err)
			return err;
	}
	if (s->line) {
		size_t n2 = strlen(s->line);
		char *p = realloc(s->line, n2 + 2);

		if (!p)
			return -ENOMEM;
		p[n2] = '\n';
		p[n2 + 1] = '\0';
		s->line = p;
		s->line_len = n2 + 1;
		s->line_off = 0;
	}
	return 0;
}

static ssize_t api_events_read(void *cls, uint64_t pos, char *out, size_t max)
{
	struct api_events_stream *s = cls;
	size_t done = 0, n;

	(void)pos;
	while (done < max) {
		if (!s->line) {
			if (api_events_next_line(s))
				return MHD_CONTENT_READER_END_WITH_ERROR;
			if (!s->line)
				break;
		}
		n = s->line_len - s->line_off;
		if (n > max - done)
			n = max - done;
		memcpy(out + done, s->line + s->line_off, n);
		done += n;
		s->line_off += n;
		if (s->line_off == s->line_len) {
			free(s->line);
			s->line = NULL;
		}
	}
	if (done)
		return (ssize_t)done;
	/* A damaged recording: what was readable went out, then the error line; cut here. */
	return s->failed ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
}

/* Every stored part of sid, back to back, as rec_reader_open_mem wants them. */
static int api_load_recording(struct collector_http *h, const char *sid, uint8_t **out,
			      size_t *outlen)
{
	uint8_t *all = NULL, *part = NULL, *p;
	size_t len = 0, plen = 0;
	int ret = 0;

	for (uint32_t n = 0; n < API_PARTS_MAX; n++) {
		ret = h->ops->part_get(h->st, sid, n, &part, &plen);
		if (ret == -ENOENT) {
			ret = 0;
			break;
		}
		if (ret)
			goto out;
		p = realloc(all, len + plen + 1);
		if (!p) {
			ret = -ENOMEM;
			goto out;
		}
		all = p;
		memcpy(all + len, part, plen);
		len += plen;
		free(part);
		part = NULL;
	}
	*out = all;
	*outlen = len;
	all = NULL;
out:
	free(part);
	free(all);
	return ret;
}

enum MHD_Result collector_api_events(struct collector_http *h, struct MHD_Connection *c,
				     struct http_req *r)
{
	struct store_session ss = {0};
	struct api_events_stream *s = NULL;
	struct MHD_Response *resp;
	const char *types;
	char why[256];
	unsigned int st;
	uint32_t mask = 0;
	int ret;

	if (MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, NULL, NULL) >
	    (MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "type") ? 1 : 0))
		return http_error(c, r, MHD_HTTP_BAD_REQUEST, "the only parameter is type");
	types = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "type");
	if (types && api_event_types_parse(types, &mask))
		return http_error(c, r, MHD_HTTP_BAD_REQUEST,
				  "type: a comma list of start, end, command, disk, network, "
				  "print, lost; not '%.60s'",
				  types);
	st = api_session_visible(h, r, &ss, !api_is_access(r), why, sizeof(why));
	store_session_clear(&ss);
	if (st)
		return http_error(c, r, st, "%s", why);
	s = calloc(1, sizeof(*s));
	if (!s)
		return MHD_NO;
	s->mask = mask;
	ret = api_load_recording(h, r->sid, &s->rec, &s->rec_len);
	if (!ret && s->rec_len)
		ret = rec_reader_open_mem(&s->reader, s->rec, s->rec_len);
	if (!ret && s->reader)
		ret = rec_reader_expect_sid(s->reader, r->sid);
	if (ret) {
		api_events_free(s);
		return http_error(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR,
				  "reading the recording of %s: %s", r->sid, strerror(-ret));
	}
	if (!s->reader)
		s->done = true; /* no part stored yet: no events */
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, API_STREAM_BLOCK,
						 api_events_read, s, api_events_free);
	if (!resp) {
		api_events_free(s);
		return MHD_NO;
	}
	return http_respond_stream(c, r, resp, "application/x-ndjson");
}

/* ------------------------------------------------------------ the central audit log */

struct api_audit_query {
	char *types[API_AUDIT_TYPES]; /* event names, "session." added when left out */
	size_t n_types;
	char sid[UUID_STR_LEN_];
	char user[HTTP_NAME_MAX]; /* access tokens: only this user's events */
	char since[40];		  /* RFC 3339 as the log writes it: compared as text */
	uint64_t after;
	uint32_t limit;
	bool follow;
	char problem[API_ARG_PROBLEM];
	bool seen_after, seen_limit, seen_since, seen_follow, seen_sid, seen_type;
};

struct api_audit_stream {
	struct collector_http *h;
	struct api_audit_query q;
	uint64_t cursor;
	char *out; /* lines waiting to be sent */
	size_t out_len, out_off, out_cap;
	uint32_t matched, scanned; /* by the last batch */
	uint64_t last_send_ns;
	int fd; /* the connection's socket, to notice a client that went away */
};

static void api_audit_query_clear(struct api_audit_query *q)
{
	for (size_t i = 0; i < q->n_types; i++)
		free(q->types[i]);
	q->n_types = 0;
}

static int api_audit_types(struct api_audit_query *q, const char *list)
{
	const char *p = list;

	for (;;) {
		size_t n = strcspn(p, ",");
		bool prefixed = n > 8 && strncmp(p, "session.", 8) == 0;
		char *t;

		if (n == 0 || n > 64 || q->n_types == API_AUDIT_TYPES)
			return -EINVAL;
		if (asprintf(&t, "%s%.*s", prefixed ? "" : "session.", (int)n, p) < 0)
			return -ENOMEM;
		q->types[q->n_types++] = t;
		p += n;
		if (!*p)
			return 0;
		p++;
	}
}

static enum MHD_Result api_audit_arg(void *cls, enum MHD_ValueKind kind, const char *key,
				     const char *value)
{
	struct api_audit_query *q = cls;
	uint64_t v;
	int64_t t;

	(void)kind;
	if (q->problem[0])
		return MHD_NO;
	if (!value)
		value = "";
	if (strcmp(key, "type") == 0) {
		if (q->seen_type || api_audit_types(q, value))
			snprintf(q->problem, sizeof(q->problem),
				 "type: a comma list of at most %d event names", API_AUDIT_TYPES);
		q->seen_type = true;
	} else if (strcmp(key, "sid") == 0) {
		if (q->seen_sid || !util_is_uuid(value))
			snprintf(q->problem, sizeof(q->problem), "sid: not a UUID: '%.40s'", value);
		else
			snprintf(q->sid, sizeof(q->sid), "%s", value);
		q->seen_sid = true;
	} else if (strcmp(key, "since") == 0) {
		if (q->seen_since || collector_api_parse_time(value, &t))
			snprintf(q->problem, sizeof(q->problem),
				 "since: an RFC 3339 time (2026-11-22T10:13:19Z), not '%.40s'",
				 value);
		else
			util_rfc3339(t, q->since, sizeof(q->since));
		q->seen_since = true;
	} else if (strcmp(key, "after") == 0) {
		if (q->seen_after || api_parse_u64(value, UINT64_MAX, &v))
			snprintf(q->problem, sizeof(q->problem),
				 "after: a line's cursor (a number), not '%.40s'", value);
		else
			q->after = v;
		q->seen_after = true;
	} else if (strcmp(key, "limit") == 0) {
		if (q->seen_limit || api_parse_u64(value, API_AUDIT_MAX, &v) || v == 0)
			snprintf(q->problem, sizeof(q->problem), "limit: a number from 1 to %d",
				 API_AUDIT_MAX);
		else
			q->limit = (uint32_t)v;
		q->seen_limit = true;
	} else if (strcmp(key, "follow") == 0) {
		if (q->seen_follow || (strcmp(value, "1") && strcmp(value, "0") &&
				       strcmp(value, "true") && strcmp(value, "false")))
			snprintf(q->problem, sizeof(q->problem), "follow: 1 or 0, not '%.40s'",
				 value);
		else
			q->follow = value[0] == '1' || value[0] == 't';
		q->seen_follow = true;
	} else {
		snprintf(q->problem, sizeof(q->problem), "unknown parameter '%.40s'", key);
	}
	return q->problem[0] ? MHD_NO : MHD_YES;
}

static bool api_audit_match(const struct api_audit_query *q, const char *line)
{
	const char *event, *sid, *user, *tm;
	json_t *o;
	bool ok = true;

	if (!q->n_types && !q->sid[0] && !q->user[0] && !q->since[0])
		return true;
	o = json_loads(line, 0, NULL);
	if (!o)
		return false;
	event = json_string_value(json_object_get(o, "event"));
	sid = json_string_value(json_object_get(o, "sid"));
	user = json_string_value(json_object_get(o, "user"));
	tm = json_string_value(json_object_get(o, "time"));
	if (q->n_types) {
		ok = false;
		for (size_t i = 0; event && i < q->n_types; i++)
			ok = ok || strcmp(event, q->types[i]) == 0;
	}
	if (ok && q->sid[0])
		ok = sid && strcmp(sid, q->sid) == 0;
	if (ok && q->user[0])
		ok = user && strcmp(user, q->user) == 0;
	if (ok && q->since[0])
		ok = tm && strcmp(tm, q->since) >= 0;
	json_decref(o);
	return ok;
}

static int api_audit_append(struct api_audit_stream *s, const char *data, size_t n)
{
	if (s->out_len + n > s->out_cap) {
		size_t cap = s->out_cap ? s->out_cap : 4096;
		char *p;

		while (cap < s->out_len + n)
			cap *= 2;
		p = realloc(s->out, cap);
		if (!p)
			return -ENOMEM;
		s->out = p;
		s->out_cap = cap;
	}
	memcpy(s->out + s->out_len, data, n);
	s->out_len += n;
	return 0;
}

/* One audit line: the log's own JSON with its cursor as the first field. */
static int api_audit_line(void *ctx, uint64_t cursor, const char *line)
{
	struct api_audit_stream *s = ctx;
	char head[40];
	int ret, n;

	s->scanned++;
	s->cursor = cursor;
	if (line[0] != '{' || !api_audit_match(&s->q, line))
		return 0;
	line++;
	while (*line == ' ')
		line++;
	n = snprintf(head, sizeof(head), "{\"cursor\":%lu%s", (unsigned long)cursor,
		     *line == '}' ? "" : ",");
	ret = api_audit_append(s, head, (size_t)n);
	if (!ret)
		ret = api_audit_append(s, line, strlen(line));
	if (!ret)
		ret = api_audit_append(s, "\n", 1);
	if (!ret)
		s->matched++;
	return ret;
}

/* Read up to want lines after the cursor. 0 or -errno; s->scanned says how many there were. */
static int api_audit_batch(struct api_audit_stream *s, uint32_t want)
{
	uint64_t next = s->cursor;
	int ret;

	s->matched = s->scanned = 0;
	ret = s->h->ops->audit_read(s->h->st, s->cursor, want, api_audit_line, s, &next);
	if (ret)
		return ret;
	s->cursor = next;
	return 0;
}

static void api_audit_free(void *cls)
{
	struct api_audit_stream *s = cls;

	if (!s)
		return;
	if (s->q.follow)
		__atomic_fetch_sub(&s->h->m.follow_streams, 1, __ATOMIC_RELAXED);
	api_audit_query_clear(&s->q);
	free(s->out);
	free(s);
}

/* Wait HTTP_FOLLOW_POLL ms, signals or not. */
static void api_sleep_poll(void)
{
	struct timespec ts = {0, HTTP_FOLLOW_POLL * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/*
 * Whether the client hung up. A write into a dead TLS connection only fails on
 * the second try, so without this an idle follow stream would hold its thread
 * for two keep-alive periods.
 */
static bool api_peer_gone(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLRDHUP};

	if (fd < 0 || poll(&p, 1, 0) <= 0)
		return false;
	return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

/* follow=1: stream what matches as it is appended, with a newline every so often. */
static ssize_t api_audit_follow(void *cls, uint64_t pos, char *out, size_t max)
{
	struct api_audit_stream *s = cls;
	size_t n;
	int ret;

	(void)pos;
	for (;;) {
		if (s->out_off < s->out_len) {
			n = s->out_len - s->out_off < max ? s->out_len - s->out_off : max;
			memcpy(out, s->out + s->out_off, n);
			s->out_off += n;
			s->last_send_ns = util_mono_ns();
			return (ssize_t)n;
		}
		s->out_len = s->out_off = 0;
		if (__atomic_load_n(&s->h->stopping, __ATOMIC_RELAXED))
			return MHD_CONTENT_READER_END_OF_STREAM;
		ret = api_audit_batch(s, API_AUDIT_BATCH);
		if (ret) {
			log_warn("audit follow stream: reading the audit log: %s", strerror(-ret));
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
		if (s->out_len || s->scanned)
			continue;
		if (api_peer_gone(s->fd))
			return MHD_CONTENT_READER_END_WITH_ERROR;
		if (util_mono_ns() - s->last_send_ns >= HTTP_FOLLOW_PING * 1000000000ull) {
			if (api_audit_append(s, "\n", 1))
				return MHD_CONTENT_READER_END_WITH_ERROR;
			continue;
		}
		api_sleep_poll();
	}
}

enum MHD_Result collector_api_audit(struct collector_http *h, struct MHD_Connection *c,
				    struct http_req *r)
{
	struct api_audit_stream *s;
	struct MHD_Response *resp;
	char next[32];
	char *body;
	size_t len;
	int ret;

	s = calloc(1, sizeof(*s));
	if (!s)
		return MHD_NO;
	s->h = h;
	s->q.limit = API_AUDIT_DEFAULT;
	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, api_audit_arg, &s->q);
	if (s->q.problem[0]) {
		enum MHD_Result res = http_error(c, r, MHD_HTTP_BAD_REQUEST, "%s", s->q.problem);

		api_audit_free(s);
		return res;
	}
	if (api_is_access(r))
		snprintf(s->q.user, sizeof(s->q.user), "%s", r->peer.user);
	s->cursor = s->q.after;

	if (s->q.follow) {
		const union MHD_ConnectionInfo *ci =
		    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);

		s->fd = ci ? ci->connect_fd : -1;
		r->follow = true;
		collector_metrics_add(&h->m.follow_streams, 1);
		s->last_send_ns = util_mono_ns();
		resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, API_STREAM_BLOCK,
							 api_audit_follow, s, api_audit_free);
		if (!resp) {
			api_audit_free(s);
			return MHD_NO;
		}
		return http_respond_stream(c, r, resp, "application/x-ndjson");
	}

	/* A page: matching lines up to limit, and where to go on from. */
	for (uint32_t got = 0; got < s->q.limit;) {
		uint32_t want = s->q.limit - got;

		if (want > API_AUDIT_BATCH)
			want = API_AUDIT_BATCH;
		ret = api_audit_batch(s, want);
		if (ret) {
			api_audit_free(s);
			return http_error(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR,
					  "reading the audit log: %s", strerror(-ret));
		}
		got += s->matched;
		if (s->scanned < want)
			break; /* the end of the log */
	}
	snprintf(next, sizeof(next), "%lu", (unsigned long)s->cursor);
	len = s->out_len;
	body = s->out ? s->out : strdup("");
	s->out = NULL;
	api_audit_free(s);
	if (!body)
		return MHD_NO;
	resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	if (MHD_add_response_header(resp, "X-Sessrec-Next-Cursor", next) != MHD_YES) {
		MHD_destroy_response(resp);
		return MHD_NO;
	}
	return http_respond_stream(c, r, resp, "application/x-ndjson");
}
