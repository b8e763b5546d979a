/*
 * agent/upload.c: the backoff schedule, status classification, the <sid>.up
 * state file, the complete request, and the uploader thread itself against an
 * in-process HTTP server (libmicrohttpd) whose answers each test scripts.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "../../agent/agent.h"
#include "log.h"
#include "util.h"

#define SID  "0b7e9a52-6f1c-4d3e-9a8b-1c2d3e4f5a6b"
#define NODE "node-7"

static char tmpdir[256];

/* ------------------------------------------------------------ pure helpers */

static void test_backoff(void **state)
{
	static const uint32_t want[] = {1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000};
	const uint32_t mid = UINT32_MAX / 2;

	(void)state;
	for (unsigned int i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		uint32_t lo = want[i] - want[i] / 5, hi = want[i] + want[i] / 5;

		/* the extremes of the jitter are exactly -20% and +20% */
		assert_int_equal(agent_upload_backoff_ms(i + 1, 60000, 0), lo);
		assert_int_equal(agent_upload_backoff_ms(i + 1, 60000, UINT32_MAX), hi);
		assert_in_range(agent_upload_backoff_ms(i + 1, 60000, mid), want[i] - 1,
				want[i] + 1);
		for (uint32_t r = 1; r < 1000; r++) {
			uint32_t ms = agent_upload_backoff_ms(i + 1, 60000, r * 4294967u);

			assert_in_range(ms, lo, hi);
		}
	}
	/* attempt 0 is the first; huge attempts neither overflow nor pass the cap */
	assert_int_equal(agent_upload_backoff_ms(0, 60000, 0), 800);
	assert_int_equal(agent_upload_backoff_ms(1000000, 60000, UINT32_MAX), 72000);
	assert_int_equal(agent_upload_backoff_ms(UINT32_MAX, 60000, 0), 48000);
	/* sync sessions: capped at 5 s */
	assert_in_range(agent_upload_backoff_ms(3, 5000, mid), 3999, 4001);
	assert_in_range(agent_upload_backoff_ms(4, 5000, mid), 4999, 5001);
	assert_int_equal(agent_upload_backoff_ms(40, 5000, UINT32_MAX), 6000);
}

static void test_classify(void **state)
{
	static const long ok[] = {200, 201, 202, 204};
	static const long retry[] = {0, 99, 429, 500, 502, 503, 504, 599};
	static const long refused[] = {301, 302, 400, 401, 403, 404, 405, 413, 422};

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		assert_int_equal(agent_upload_classify(ok[i]), AGENT_UPLOAD_OK);
	for (size_t i = 0; i < sizeof(retry) / sizeof(retry[0]); i++)
		assert_int_equal(agent_upload_classify(retry[i]), AGENT_UPLOAD_RETRY);
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		assert_int_equal(agent_upload_classify(refused[i]), AGENT_UPLOAD_REFUSED);
	assert_int_equal(agent_upload_classify(409), AGENT_UPLOAD_CONFLICT);
}

static void state_ok(const char *text, uint32_t acked, int status, const char *why)
{
	struct agent_upload_state st;

	if (agent_upload_state_parse(text, strlen(text), &st) != 0)
		fail_msg("refused: %s", text);
	assert_int_equal(st.acked, acked);
	assert_int_equal(st.failed_status, status);
	assert_string_equal(st.failed, why);
}

static void state_bad(const char *text, size_t len)
{
	struct agent_upload_state st;

	memset(&st, 0x5a, sizeof(st));
	if (agent_upload_state_parse(text, len, &st) != -EBADMSG)
		fail_msg("accepted: %.*s", (int)len, text);
	/* a damaged file reads as the empty state: parts are sent again, harmlessly */
	assert_int_equal(st.acked, 0);
	assert_int_equal(st.failed_status, 0);
	assert_string_equal(st.failed, "");
}

static void test_state_parse(void **state)
{
	static const char nul[] = "acked 3\n\0acked 4\n";
	char long_reason[400], text[512];

	(void)state;
	state_ok("", 0, 0, "");
	state_ok("acked 0\n", 0, 0, "");
	state_ok("acked 17", 17, 0, "");
	state_ok("# comment\n\nacked 4294967295\n", UINT32_MAX, 0, "");
	state_ok("acked 3\r\nfailed 400 HTTP 400: bad header\r\n", 3, 400, "HTTP 400: bad header");
	state_ok("failed -74 part 2: body hash mismatch\nacked 2\n", 2, -74,
		 "part 2: body hash mismatch");
	state_ok("failed 403\n", 0, 403, "");
	state_ok("acked 1\nacked 5\n", 5, 0, ""); /* the last one counts */
	state_ok("acked 2\nfrom_the_future yes\n", 2, 0, "");

	state_bad("acked\n", 6);
	state_bad("acked \n", 7);
	state_bad("acked -1\n", 9);
	state_bad("acked 4294967296\n", 17);
	state_bad("acked 99999999999999999999999\n", 30);
	state_bad("acked 12x\n", 10);
	state_bad("acked 0x10\n", 11);
	state_bad("failed 0 nothing\n", 17);
	state_bad("failed\n", 7);
	state_bad("failed \n", 8);
	state_bad("failed - x\n", 11);
	state_bad("failed x\n", 9);
	state_bad("failed 123456 too big\n", 22);
	state_bad(nul, sizeof(nul) - 1);

	/* a reason longer than the field is cut, not refused */
	memset(long_reason, 'r', sizeof(long_reason) - 1);
	long_reason[sizeof(long_reason) - 1] = '\0';
	snprintf(text, sizeof(text), "failed 500 %s\n", long_reason);
	{
		struct agent_upload_state st;

		assert_int_equal(agent_upload_state_parse(text, strlen(text), &st), 0);
		assert_int_equal(strlen(st.failed), sizeof(st.failed) - 1);
	}
}

static void test_state_format(void **state)
{
	struct agent_upload_state st = {.acked = 42}, back;
	char buf[512], path[512];

	(void)state;
	assert_int_equal(agent_upload_state_format(&st, buf, sizeof(buf)), 0);
	assert_non_null(strstr(buf, "\nacked 42\n"));
	assert_null(strstr(buf, "failed"));
	assert_int_equal(agent_upload_state_parse(buf, strlen(buf), &back), 0);
	assert_int_equal(back.acked, 42);

	/* the reason stays one line whatever the collector sent */
	st.failed_status = 409;
	snprintf(st.failed, sizeof(st.failed), "HTTP 409: two\nlines\tand a\rCR");
	assert_int_equal(agent_upload_state_format(&st, buf, sizeof(buf)), 0);
	assert_int_equal(agent_upload_state_parse(buf, strlen(buf), &back), 0);
	assert_int_equal(back.acked, 42);
	assert_int_equal(back.failed_status, 409);
	assert_string_equal(back.failed, "HTTP 409: two lines and a CR");
	assert_int_equal(agent_upload_state_format(&st, buf, 20), -ENOSPC);

	/* through a file: missing is the empty state; save replaces atomically */
	snprintf(path, sizeof(path), "%s/state.up", tmpdir);
	memset(&back, 0x5a, sizeof(back));
	assert_int_equal(agent_upload_state_load(path, &back), 0);
	assert_int_equal(back.acked, 0);
	assert_int_equal(back.failed_status, 0);
	assert_int_equal(agent_upload_state_save(path, &st), 0);
	assert_int_equal(agent_upload_state_load(path, &back), 0);
	assert_int_equal(back.failed_status, 409);
	st.acked = 7;
	st.failed_status = 0;
	assert_int_equal(agent_upload_state_save(path, &st), 0);
	assert_int_equal(agent_upload_state_load(path, &back), 0);
	assert_int_equal(back.acked, 7);
	assert_int_equal(back.failed_status, 0);
	snprintf(buf, sizeof(buf), "%s.tmp", path);
	assert_int_equal(access(buf, F_OK), -1);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(agent_upload_state_save("/nonexistent/dir/x.up", &st), -ENOENT);
}

/* ------------------------------------------------------------ recordings */

/*
 * A recording of sid with n events (start, commands, end) in parts of one event
 * each after the first, final unless told; reason for the end event.
 */
static void make_rec(const char *path, const char *sid, uint64_t n, bool final, const char *reason,
		     rec_part_cb cb, void *cb_ctx)
{
	struct rec_writer_opts o = {.no_fsync = true, .on_part = cb, .cb_ctx = cb_ctx};
	Sessrec__SessionStart st = SESSREC__SESSION_START__INIT;
	Sessrec__SessionEnd end = SESSREC__SESSION_END__INIT;
	Sessrec__Command cmd = SESSREC__COMMAND__INIT;
	char *argv[] = {"bash", "-l"}, *who[] = {"alice"};
	struct rec_writer *w;

	assert_int_equal(rec_writer_open(&w, path, sid, &o), 0);
	for (uint64_t ei = 0; ei < n; ei++) {
		Sessrec__Event ev = SESSREC__EVENT__INIT;

		ev.ei = ei;
		ev.time_ns = 1700000000000000000LL + (int64_t)ei * 1000000;
		if (ei == 0) {
			st.sid = (char *)sid;
			st.server_id = "11111111-2222-4333-8444-555555555555";
			st.server_hostname = "host-a";
			st.user = "alice";
			st.login = "root";
			st.kind = "ssh";
			st.initial_command = argv;
			st.n_initial_command = 2;
			ev.body_case = SESSREC__EVENT__BODY_START;
			ev.start = &st;
		} else if (ei == n - 1 && reason) {
			end.session_start_ns = 1700000000000000000LL;
			end.session_stop_ns = ev.time_ns;
			end.participants = who;
			end.n_participants = 1;
			end.interactive = true;
			end.initial_command = argv;
			end.n_initial_command = 2;
			end.exit_code = 3;
			end.reason = (char *)reason;
			ev.body_case = SESSREC__EVENT__BODY_END;
			ev.end = &end;
		} else {
			cmd.pid = (uint32_t)ei;
			cmd.program = "ls";
			cmd.path = "/usr/bin/ls";
			ev.body_case = SESSREC__EVENT__BODY_COMMAND;
			ev.command = &cmd;
		}
		assert_int_equal(rec_writer_append(w, &ev), 0);
		assert_int_equal(rec_writer_flush(w, false), 0);
	}
	if (final)
		assert_int_equal(rec_writer_close(w), 0);
	else
		rec_writer_abandon(w);
}

static void test_complete_body(void **state)
{
	char path[512], why[256], *body = NULL;
	uint32_t parts = 0;
	json_t *j, *end;

	(void)state;
	snprintf(path, sizeof(path), "%s/%s.rec", tmpdir, SID);
	make_rec(path, SID, 5, true, "exited", NULL, NULL);
	assert_int_equal(
	    agent_upload_complete_body(path, SID, NODE, &body, &parts, why, sizeof(why)), 0);
	assert_int_equal(parts, 6); /* five with one event each, and the empty final one */
	j = json_loads(body, 0, NULL);
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(j, "parts")), 6);
	assert_string_equal(json_string_value(json_object_get(j, "node")), NODE);
	assert_string_equal(json_string_value(json_object_get(j, "closed_by")), "session");
	end = json_object_get(j, "end");
	assert_string_equal(json_string_value(json_object_get(end, "event")), "session.end");
	assert_string_equal(json_string_value(json_object_get(end, "code")), "T2004I");
	assert_string_equal(json_string_value(json_object_get(end, "sid")), SID);
	assert_string_equal(json_string_value(json_object_get(end, "user")), "alice");
	assert_string_equal(json_string_value(json_object_get(end, "reason")), "exited");
	assert_string_equal(json_string_value(json_object_get(end, "closed_by")), "session");
	assert_int_equal(json_integer_value(json_object_get(end, "exit_code")), 3);
	assert_int_equal(json_integer_value(json_object_get(end, "ei")), 4);
	json_decref(j);
	free(body);
	assert_int_equal(unlink(path), 0);

	/* closed by the completer: said at the top and in end */
	make_rec(path, SID, 3, true, AGENT_REASON_COMPLETER, NULL, NULL);
	assert_int_equal(agent_upload_complete_body(path, SID, NODE, &body, NULL, why, sizeof(why)),
			 0);
	j = json_loads(body, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(j, "closed_by")), "completer");
	end = json_object_get(j, "end");
	assert_string_equal(json_string_value(json_object_get(end, "closed_by")), "completer");
	assert_string_equal(json_string_value(json_object_get(end, "reason")),
			    AGENT_REASON_COMPLETER);
	json_decref(j);
	free(body);
	assert_int_equal(unlink(path), 0);

	/* not final: not yet */
	make_rec(path, SID, 3, false, NULL, NULL, NULL);
	assert_int_equal(agent_upload_complete_body(path, SID, NODE, &body, NULL, why, sizeof(why)),
			 -EAGAIN);
	assert_null(body);
	assert_non_null(strstr(why, "not final"));
	assert_int_equal(unlink(path), 0);

	/* another session's recording under this name, or damage: refused with the reason */
	make_rec(path, "7f3e2d1c-0b9a-4876-9543-21fedcba9876", 3, true, "exited", NULL, NULL);
	assert_int_equal(agent_upload_complete_body(path, SID, NODE, &body, NULL, why, sizeof(why)),
			 -EBADMSG);
	assert_non_null(strstr(why, "chain seed mismatch"));
	assert_int_equal(unlink(path), 0);
	assert_int_equal(agent_upload_complete_body(path, SID, NODE, &body, NULL, why, sizeof(why)),
			 -ENOENT);
}

/* ------------------------------------------------------------ a scripted collector */

#define SRV_MAX_REQ 256

struct srv_req {
	char method[8];
	char url[160];
	size_t len;
	long status;
};

struct srv {
	struct MHD_Daemon *d;
	uint16_t port;
	pthread_mutex_t lock;
	struct srv_req req[SRV_MAX_REQ];
	size_t n;
	/* the script: answer fail_status to the next fail_count PUT/POSTs (then 2xx) */
	long fail_status;
	int fail_count;
	/* answer 409 once to a PUT of this part (-1: never) */
	int conflict_part;
	bool complete_seen;
	char complete[2048];
	uint32_t stored; /* parts stored in order */
};

struct srv_conn {
	char *buf;
	size_t len;
};

static enum MHD_Result srv_answer(struct MHD_Connection *c, unsigned int status, const char *body)
{
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret = MHD_queue_response(c, status, r);

	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result srv_handler(void *cls, struct MHD_Connection *c, const char *url,
				   const char *method, const char *version, const char *data,
				   size_t *data_size, void **con_cls)
{
	struct srv *s = cls;
	struct srv_conn *k = *con_cls;
	struct srv_req *q;
	unsigned int status = 200;
	unsigned int part;
	const char *body = "{}";

	(void)version;
	if (!k) {
		k = calloc(1, sizeof(*k));
		*con_cls = k;
		return MHD_YES;
	}
	if (*data_size) {
		k->buf = realloc(k->buf, k->len + *data_size + 1);
		memcpy(k->buf + k->len, data, *data_size);
		k->len += *data_size;
		k->buf[k->len] = '\0';
		*data_size = 0;
		return MHD_YES;
	}
	pthread_mutex_lock(&s->lock);
	if (strcmp(method, "GET") == 0) {
		status = 200;
		body = "ok\n";
	} else if (s->fail_count > 0) {
		s->fail_count--;
		status = (unsigned int)s->fail_status;
		body = "{\"error\":\"scripted failure\"}";
	} else if (sscanf(url, "/v1/sessions/" SID "/parts/%u", &part) == 1) {
		if ((int)part == s->conflict_part) {
			s->conflict_part = -1;
			status = 409;
			body = "{\"error\":\"part is missing\"}";
		} else if (part < s->stored) {
			status = 200;
		} else if (part == s->stored) {
			status = 201;
			s->stored++;
		} else {
			status = 409;
			body = "{\"error\":\"previous part missing\"}";
		}
	} else if (strcmp(url, "/v1/sessions/" SID "/complete") == 0) {
		s->complete_seen = true;
		snprintf(s->complete, sizeof(s->complete), "%s", k->buf ? k->buf : "");
	} else {
		status = 404;
	}
	if (s->n < SRV_MAX_REQ) {
		q = &s->req[s->n++];
		snprintf(q->method, sizeof(q->method), "%s", method);
		snprintf(q->url, sizeof(q->url), "%s", url);
		q->len = k->len;
		q->status = status;
	}
	pthread_mutex_unlock(&s->lock);
	return srv_answer(c, status, body);
}

static void srv_done(void *cls, struct MHD_Connection *c, void **con_cls,
		     enum MHD_RequestTerminationCode toe)
{
	struct srv_conn *k = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (k) {
		free(k->buf);
		free(k);
		*con_cls = NULL;
	}
}

static void srv_start(struct srv *s)
{
	const union MHD_DaemonInfo *info;

	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->conflict_part = -1;
	s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, srv_handler, s,
				MHD_OPTION_NOTIFY_COMPLETED, srv_done, s, MHD_OPTION_END);
	assert_non_null(s->d);
	info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	assert_non_null(info);
	s->port = info->port;
}

static void srv_stop(struct srv *s)
{
	MHD_stop_daemon(s->d);
	pthread_mutex_destroy(&s->lock);
}

/* The requests so far, as "METHOD url status" lines for messages. */
static void srv_dump(struct srv *s, char *out, size_t len)
{
	size_t o = 0;

	out[0] = '\0';
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->n && o < len; i++)
		o += (size_t)snprintf(out + o, len - o, "%s %s %ld\n", s->req[i].method,
				      s->req[i].url, s->req[i].status);
	pthread_mutex_unlock(&s->lock);
}

struct up_fixture {
	struct srv srv;
	struct agent_metrics m;
	struct agent_upload *u;
	struct agent_collector_conf conf;
	char url[64];
	char rec[512], up[512];
};

static void fx_start(struct up_fixture *f, bool server)
{
	struct agent_upload_opts o = {0};

	memset(f, 0, sizeof(*f));
	if (server)
		srv_start(&f->srv);
	/* no server: a port nobody listens on (the server's, once stopped) */
	snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%u/", server ? f->srv.port : 1);
	f->conf.url = f->url;
	f->conf.mode = "async";
	f->conf.sync_grace_period = 30;
	o.conf = &f->conf;
	o.node = NODE;
	o.rec_dir = tmpdir;
	o.metrics = &f->m;
	snprintf(f->rec, sizeof(f->rec), "%s/%s.rec", tmpdir, SID);
	snprintf(f->up, sizeof(f->up), "%s/%s.up", tmpdir, SID);
	assert_int_equal(agent_upload_start(&f->u, &o), 0);
}

static void fx_stop(struct up_fixture *f, bool server)
{
	agent_upload_stop(f->u);
	if (server)
		srv_stop(&f->srv);
	unlink(f->rec);
	unlink(f->up);
}

/* Wait (at most secs) until the uploader holds nothing. */
static void fx_wait_idle(struct up_fixture *f, int secs)
{
	char dump[8192];

	for (int i = 0; i < secs * 20; i++) {
		if (!agent_upload_has(f->u, SID))
			return;
		usleep(50000);
	}
	srv_dump(&f->srv, dump, sizeof(dump));
	fail_msg("the uploader still holds the session after %d s; requests:\n%s", secs, dump);
}

static void expect_req(struct srv *s, size_t i, const char *method, const char *url_tail,
		       long status)
{
	char url[160], dump[8192];

	snprintf(url, sizeof(url), "/v1/sessions/%s%s", SID, url_tail);
	if (i >= s->n || strcmp(s->req[i].method, method) || strcmp(s->req[i].url, url) ||
	    s->req[i].status != status) {
		srv_dump(s, dump, sizeof(dump));
		fail_msg("request %zu: want %s %s %ld; requests:\n%s", i, method, url, status,
			 dump);
	}
}

static void test_upload_async(void **state)
{
	struct up_fixture f;
	json_t *j;

	(void)state;
	fx_start(&f, true);
	make_rec(f.rec, SID, 3, true, "exited", NULL, NULL);
	assert_int_equal(agent_upload_queue(f.u, SID), 0);
	assert_true(agent_upload_has(f.u, SID));
	fx_wait_idle(&f, 10);
	/* parts in order, then complete; the spool is empty after */
	assert_int_equal(f.srv.n, 5);
	expect_req(&f.srv, 0, "PUT", "/parts/0", 201);
	expect_req(&f.srv, 1, "PUT", "/parts/1", 201);
	expect_req(&f.srv, 2, "PUT", "/parts/2", 201);
	expect_req(&f.srv, 3, "PUT", "/parts/3", 201);
	expect_req(&f.srv, 4, "POST", "/complete", 200);
	assert_true(f.srv.complete_seen);
	j = json_loads(f.srv.complete, 0, NULL);
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(j, "parts")), 4);
	assert_string_equal(json_string_value(json_object_get(j, "node")), NODE);
	json_decref(j);
	assert_int_equal(access(f.rec, F_OK), -1);
	assert_int_equal(access(f.up, F_OK), -1);
	assert_int_equal(f.m.upload_parts, 4);
	assert_int_equal(f.m.upload_sessions, 1);
	assert_true(f.m.upload_bytes > 4 * REC_HDR_SIZE);
	assert_true(f.m.upload_last_ok > 0);
	assert_int_equal(f.m.collector_up, 1);
	assert_int_equal(agent_upload_down_since(f.u), 0);
	fx_stop(&f, true);
}

/* <sid>.up says how far a previous agent got: resume there. */
static void test_upload_resume(void **state)
{
	struct agent_upload_state st = {.acked = 2};
	struct up_fixture f;

	(void)state;
	fx_start(&f, true);
	f.srv.stored = 2; /* what the collector holds */
	make_rec(f.rec, SID, 3, true, "exited", NULL, NULL);
	assert_int_equal(agent_upload_state_save(f.up, &st), 0);
	assert_int_equal(agent_upload_queue(f.u, SID), 0);
	fx_wait_idle(&f, 10);
	assert_int_equal(f.srv.n, 3);
	expect_req(&f.srv, 0, "PUT", "/parts/2", 201);
	expect_req(&f.srv, 1, "PUT", "/parts/3", 201);
	expect_req(&f.srv, 2, "POST", "/complete", 200);
	assert_int_equal(access(f.rec, F_OK), -1);
	fx_stop(&f, true);
}

/* 409: the collector lost what it acknowledged (or never had it): start over from 0. */
static void test_upload_conflict(void **state)
{
	struct agent_upload_state st = {.acked = 3};
	struct up_fixture f;

	(void)state;
	fx_start(&f, true);
	make_rec(f.rec, SID, 3, true, "exited", NULL, NULL);
	assert_int_equal(agent_upload_state_save(f.up, &st), 0);
	assert_int_equal(agent_upload_queue(f.u, SID), 0);
	fx_wait_idle(&f, 10);
	expect_req(&f.srv, 0, "PUT", "/parts/3", 409);
	expect_req(&f.srv, 1, "PUT", "/parts/0", 201);
	expect_req(&f.srv, 2, "PUT", "/parts/1", 201);
	expect_req(&f.srv, 3, "PUT", "/parts/2", 201);
	expect_req(&f.srv, 4, "PUT", "/parts/3", 201);
	expect_req(&f.srv, 5, "POST", "/complete", 200);
	assert_int_equal(f.m.upload_errors[AGENT_UPLOAD_ERR_CONFLICT], 1);
	fx_stop(&f, true);
}

/* 5xx and 429 are retried (with backoff) until they pass; nothing is lost. */
static void test_upload_retry(void **state)
{
	struct up_fixture f;

	(void)state;
	fx_start(&f, true);
	f.srv.fail_status = 503;
	f.srv.fail_count = 2;
	make_rec(f.rec, SID, 2, true, "exited", NULL, NULL);
	assert_int_equal(agent_upload_queue(f.u, SID), 0);
	fx_wait_idle(&f, 15);
	expect_req(&f.srv, 0, "PUT", "/parts/0", 503);
	/* a probe (GET /healthz) may come in between: find the rest in order */
	{
		size_t i = 1, puts = 0;

		for (; i < f.srv.n; i++) {
			if (strcmp(f.srv.req[i].method, "GET") == 0)
				continue;
			if (puts == 0)
				expect_req(&f.srv, i, "PUT", "/parts/0", 503);
			else if (puts == 1)
				expect_req(&f.srv, i, "PUT", "/parts/0", 201);
			puts++;
		}
		assert_int_equal(puts, 5); /* 503, 201 for part 0, parts 1 and 2, complete */
	}
	assert_int_equal(f.m.upload_errors[AGENT_UPLOAD_ERR_SERVER], 2);
	assert_int_equal(f.m.upload_sessions, 1);
	assert_int_equal(access(f.rec, F_OK), -1);
	fx_stop(&f, true);
}

/* Any other 4xx is final for the session: said in <sid>.up, the recording kept. */
static void test_upload_refused(void **state)
{
	struct agent_upload_state st;
	struct up_fixture f;
	size_t n;

	(void)state;
	fx_start(&f, true);
	f.srv.fail_status = 400;
	f.srv.fail_count = 1;
	make_rec(f.rec, SID, 2, true, "exited", NULL, NULL);
	assert_int_equal(agent_upload_queue(f.u, SID), 0);
	fx_wait_idle(&f, 10);
	assert_int_equal(f.srv.n, 1);
	expect_req(&f.srv, 0, "PUT", "/parts/0", 400);
	assert_int_equal(access(f.rec, F_OK), 0);
	assert_int_equal(agent_upload_state_load(f.up, &st), 0);
	assert_int_equal(st.failed_status, 400);
	assert_string_equal(st.failed, "HTTP 400: scripted failure");
	assert_int_equal(f.m.upload_errors[AGENT_UPLOAD_ERR_REFUSED], 1);

	/* queued again (the completer would not, but say it did): skipped quietly */
	n = f.srv.n;
	assert_int_equal(agent_upload_queue(f.u, SID), 0);
	fx_wait_idle(&f, 10);
	assert_int_equal(f.srv.n, n);
	fx_stop(&f, true);
}

struct sync_ctx {
	struct agent_upload *u;
};

static int sync_on_part(void *ctx, uint32_t index, const uint8_t *part, size_t len, bool final)
{
	struct sync_ctx *c = ctx;

	return agent_upload_part(c->u, SID, index, part, len, final);
}

/* Sync: parts go as the writer hands them over; complete once the session ended. */
static void test_upload_sync(void **state)
{
	struct up_fixture f;
	struct sync_ctx c;

	(void)state;
	fx_start(&f, true);
	c.u = f.u;
	assert_int_equal(agent_upload_sync_open(f.u, SID, 0), 0);
	make_rec(f.rec, SID, 4, true, "exited", sync_on_part, &c);
	/* every part is up before the end is known */
	for (int i = 0; i < 200 && f.srv.stored < 5; i++)
		usleep(20000);
	assert_int_equal(f.srv.stored, 5);
	assert_true(agent_upload_has(f.u, SID));
	assert_false(f.srv.complete_seen);
	assert_int_equal(agent_upload_queue(f.u, SID), 0);
	fx_wait_idle(&f, 10);
	assert_true(f.srv.complete_seen);
	assert_int_equal(access(f.rec, F_OK), -1);
	assert_int_equal(f.m.upload_memory_bytes, 0);
	fx_stop(&f, true);
}

/* Nobody answers: the collector is down since the first failed request. */
static void test_upload_down(void **state)
{
	struct up_fixture f;
	int64_t before = util_now_ns();

	(void)state;
	fx_start(&f, false);
	assert_int_equal(agent_upload_down_since(f.u), 0);
	make_rec(f.rec, SID, 2, true, "exited", NULL, NULL);
	assert_int_equal(agent_upload_queue(f.u, SID), 0);
	for (int i = 0; i < 100 && !agent_upload_down_since(f.u); i++)
		usleep(20000);
	assert_in_range(agent_upload_down_since(f.u), before, util_now_ns());
	assert_int_equal(f.m.collector_up, 0);
	assert_true(f.m.upload_errors[AGENT_UPLOAD_ERR_CONNECT] >= 1);
	/* still held, still on disk */
	assert_true(agent_upload_has(f.u, SID));
	assert_int_equal(access(f.rec, F_OK), 0);
	fx_stop(&f, false);
}

/* ------------------------------------------------------------ metrics text */

static void test_metrics_text(void **state)
{
	struct agent_metrics m = {0};
	char *text;

	(void)state;
	m.upload_errors[AGENT_UPLOAD_ERR_TIMEOUT] = 3;
	m.upload_last_ok = 1795344192;
	m.upload_pending = 2;
	text = agent_metrics_render(&m);
	assert_non_null(text);
	assert_non_null(
	    strstr(text, "\nsessrec_agent_upload_errors_total{reason=\"timeout\"} 3\n"));
	assert_non_null(strstr(text, "\nsessrec_agent_upload_last_success_timestamp_seconds "
				     "1795344192\n"));
	assert_non_null(strstr(text, "\nsessrec_agent_upload_queue_sessions 2\n"));
	assert_non_null(strstr(text, "# TYPE sessrec_agent_upload_parts_total counter\n"));
	assert_non_null(strstr(text, "# TYPE sessrec_agent_collector_up gauge\n"));
	free(text);
}

/* ------------------------------------------------------------ fixture */

static int group_setup(void **state)
{
	const char *base = getenv("TMPDIR");

	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "%s/test_upload.XXXXXX", base && *base ? base : "/tmp");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	char path[512];
	struct dirent *de;
	DIR *d = opendir(tmpdir);

	(void)state;
	if (!d)
		return -1;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmpdir, de->d_name);
		unlink(path);
	}
	closedir(d);
	return rmdir(tmpdir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_backoff),	  cmocka_unit_test(test_classify),
	    cmocka_unit_test(test_state_parse),	  cmocka_unit_test(test_state_format),
	    cmocka_unit_test(test_complete_body), cmocka_unit_test(test_upload_async),
	    cmocka_unit_test(test_upload_resume), cmocka_unit_test(test_upload_conflict),
	    cmocka_unit_test(test_upload_retry),  cmocka_unit_test(test_upload_refused),
	    cmocka_unit_test(test_upload_sync),	  cmocka_unit_test(test_upload_down),
	    cmocka_unit_test(test_metrics_text),
	};

	log_init("test_agent_upload", LOG_LVL_ERROR);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
