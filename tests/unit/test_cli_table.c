/*
 * What people read: aligned tables (`sessrec ls`), "key: value" lines
 * (`sessrec show`), the one-line form of audit events (`sessrec audit tail`),
 * and remote events printed like local ones (JSON back into events). Strings
 * from the server never reach the terminal with control characters.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../../cli/cli.h"

static char *table_text(const struct cli_table *t)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	assert_int_equal(cli_table_print(t, f), 0);
	assert_int_equal(fclose(f), 0);
	return buf;
}

static void test_table(void **state)
{
	const char *hdr[] = {"A", "BB", "C"};
	const char *r1[] = {"x", "y", "last column is not padded"};
	const char *r2[] = {"héllo", "日本", "z"}; /* widths in characters, not bytes */
	const char *r3[] = {"a\x1b[31mb", "bad\xff", NULL};
	struct cli_table t;
	char *s;

	assert_int_equal(cli_table_init(&t, 3, hdr), 0);
	assert_int_equal(cli_table_add(&t, r1), 0);
	assert_int_equal(cli_table_add(&t, r2), 0);
	assert_int_equal(cli_table_add(&t, r3), 0);
	s = table_text(&t);
	assert_string_equal(s, "A        BB    C\n"
			       "x        y     last column is not padded\n"
			       "héllo    日本    z\n"
			       "a?[31mb  bad?  \n");
	free(s);
	cli_table_free(&t);
	cli_table_free(&t); /* twice is harmless */
	cli_table_free(NULL);
}

static json_t *session(const char *extra)
{
	char *text = NULL;
	json_t *o;

	assert_true(asprintf(&text,
			     "{\"sid\":\"5a2c3e4f-1b2d-4c6e-8f90-a1b2c3d4e5f6\",\"node\":\"web-1\","
			     "\"user\":\"alice\",\"login\":\"root\",\"kind\":\"ssh\","
			     "\"labels\":{\"env\":\"prod\",\"team\":\"infra\"},"
			     "\"start\":\"2026-11-22T10:13:19.123Z\",\"end\":\"2026-11-22T10:"
			     "15:24.123Z\",\"duration_ms\":125000,\"exit_code\":0,\"commands\":12,"
			     "\"events\":340,\"bytes\":5678,\"parts\":1,\"status\":\"complete\","
			     "\"initial_command\":[\"bash\",\"-c\",\"echo 'hi there'\"],"
			     "\"cols\":80,\"rows\":24,\"closed_by\":\"session\"%s}",
			     extra) > 0);
	o = json_loads(text, 0, NULL);
	assert_non_null(o);
	free(text);
	return o;
}

static void test_ls_rows(void **state)
{
	json_t *a = session("");
	json_t *b = json_loads("{\"sid\":\"0000aaaa-0000-4000-8000-000000000000\",\"user\":"
			       "\"bob\\u001b]0;x\\u0007\",\"start\":\"2026-11-22T10:13:19Z\","
			       "\"exit_code\":-1,\"duration_ms\":null,\"status\":\"uploading\"}",
			       0, NULL);
	struct cli_table t;
	char *s;

	assert_non_null(b);
	assert_int_equal(cli_ls_table_init(&t, false), 0);
	assert_int_equal(cli_ls_table_add(&t, a, false), 0);
	assert_int_equal(cli_ls_table_add(&t, b, false), 0);
	s = table_text(&t);
	assert_string_equal(
	    s,
	    "SID       START                DURATION  USER       LOGIN  NODE   KIND  EXIT  "
	    "COMMAND\n"
	    "5a2c3e4f  2026-11-22 10:13:19  2m05s     alice      root   web-1  ssh   0     bash -c "
	    "'echo '\\''hi there'\\'''\n"
	    "0000aaaa  2026-11-22 10:13:19  -         bob?]0;x?  -      -      -     -     -\n");
	free(s);
	cli_table_free(&t);

	assert_int_equal(cli_ls_table_init(&t, true), 0);
	assert_int_equal(cli_ls_table_add(&t, a, true), 0);
	s = table_text(&t);
	assert_string_equal(s,
			    "SID                                   START                DURATION  "
			    "USER   LOGIN  NODE   KIND  EXIT  STATUS    RISK  LABELS               "
			    "COMMAND\n"
			    "5a2c3e4f-1b2d-4c6e-8f90-a1b2c3d4e5f6  2026-11-22 10:13:19  2m05s     "
			    "alice  root   web-1  ssh   0     complete  -     env=prod,team=infra  "
			    "bash -c 'echo '\\''hi there'\\'''\n");
	free(s);
	cli_table_free(&t);
	json_decref(a);
	json_decref(b);
}

static void test_show(void **state)
{
	json_t *o = session(",\"parts_sha256\":[\"ab\",\"cd\"],\"future\\u001b\":{\"x\":1},"
			    "\"note\":\"a\\nb\",\"gone\":null");
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	assert_int_equal(cli_show_write(o, f), 0);
	assert_int_equal(fclose(f), 0);
	assert_string_equal(buf, "sid:             5a2c3e4f-1b2d-4c6e-8f90-a1b2c3d4e5f6\n"
				 "status:          complete\n"
				 "node:            web-1\n"
				 "user:            alice\n"
				 "login:           root\n"
				 "kind:            ssh\n"
				 "start:           2026-11-22T10:13:19.123Z\n"
				 "end:             2026-11-22T10:15:24.123Z\n"
				 "duration_ms:     125000 (2m05s)\n"
				 "exit_code:       0\n"
				 "initial_command: bash -c 'echo '\\''hi there'\\'''\n"
				 "cols:            80\n"
				 "rows:            24\n"
				 "labels:          env=prod,team=infra\n"
				 "commands:        12\n"
				 "events:          340\n"
				 "bytes:           5678\n"
				 "parts:           1\n"
				 "closed_by:       session\n"
				 "parts_sha256:    ab cd\n"
				 "future?:         {\"x\":1}\n"
				 "note:            a?b\n"
				 "gone:            -\n");
	free(buf);
	json_decref(o);
}

static void assert_audit_line(const char *json, const char *want)
{
	json_t *o = json_loads(json, 0, NULL);
	char *line = NULL;

	assert_non_null(o);
	assert_int_equal(cli_audit_line(o, &line), 0);
	assert_string_equal(line, want);
	free(line);
	json_decref(o);
}

#define COMMON                                                                                     \
	"\"time\":\"2026-11-22T10:13:19.123Z\",\"sid\":\"5a2c3e4f-1b2d-4c6e-8f90-a1b2c3d4e5f6\","  \
	"\"user\":\"alice\",\"login\":\"root\",\"server_hostname\":\"web-1\","
#define PFX "2026-11-22T10:13:19.123Z  "

static void test_audit_lines(void **state)
{
	assert_audit_line("{\"event\":\"session.start\"," COMMON "\"size\":\"80:24\","
			  "\"initial_command\":[\"bash\",\"-l\"],\"kind\":\"ssh\"}",
			  PFX "session.start       alice     [5a2c3e4f] login=root kind=ssh "
			      "node=web-1 size=80:24: bash -l");
	assert_audit_line("{\"event\":\"session.end\"," COMMON
			  "\"session_start\":\"2026-11-22T10:13:19.123Z\","
			  "\"session_stop\":\"2026-11-22T10:14:20.456Z\",\"exit_code\":2,"
			  "\"reason\":\"exited\"}",
			  PFX "session.end         alice     [5a2c3e4f] exit=2 duration=1m01s "
			      "reason=exited");
	/* the audit log's argv leaves argv[0] out: path names the program */
	assert_audit_line("{\"event\":\"session.command\"," COMMON "\"pid\":3130,"
			  "\"program\":\"curl\",\"path\":\"/usr/bin/curl\","
			  "\"argv\":[\"-s\",\"https://example.com/ x\"],\"return_code\":0}",
			  PFX "session.command     alice     [5a2c3e4f] curl[3130] rc=0 "
			      "/usr/bin/curl -s 'https://example.com/ x'");
	assert_audit_line("{\"event\":\"session.disk\"," COMMON "\"pid\":7,\"program\":\"cat\","
			  "\"path\":\"/etc/shadow\",\"flags\":0,\"return_code\":-13}",
			  PFX "session.disk        alice     [5a2c3e4f] cat[7] rc=-EACCES "
			      "/etc/shadow O_RDONLY");
	assert_audit_line("{\"event\":\"session.network\"," COMMON "\"pid\":9,"
			  "\"program\":\"ssh\",\"src_addr\":\"::1\",\"src_port\":40000,"
			  "\"dst_addr\":\"2001:db8::1\",\"dst_port\":22,\"protocol\":\"tcp\","
			  "\"return_code\":0}",
			  PFX "session.network     alice     [5a2c3e4f] ssh[9] rc=0 tcp ::1:40000 "
			      "-> [2001:db8::1]:22");
	assert_audit_line("{\"event\":\"session.upload\"," COMMON "\"url\":\"/v1/x\"}",
			  PFX "session.upload      alice     [5a2c3e4f] url=/v1/x");
	assert_audit_line("{\"event\":\"session.summarized\"," COMMON
			  "\"model_name\":\"builtin\",\"risk_level\":\"high\","
			  "\"short_description\":\"read \\u001b[2Jsecrets\",\"success\":true}",
			  PFX "session.summarized  alice     [5a2c3e4f] risk=high model=builtin: "
			      "$'read \\x1b[2Jsecrets'");
	assert_audit_line("{\"event\":\"session.lost\"," COMMON "\"class\":\"terminal\","
			  "\"events\":3,\"bytes\":4096}",
			  PFX "session.lost        alice     [5a2c3e4f] terminal: 3 events, "
			      "4096 bytes lost");
	/* unknown events and missing fields still make a line */
	assert_audit_line("{\"event\":\"node.joined\",\"code\":\"X1\"}",
			  "?                         node.joined         ?         code=X1");
	assert_audit_line("{}", "?                         ?                   ?         code=?");
}

/* ------------------------------------------------------------ remote events */

static void assert_roundtrip(const Sessrec__Event *ev)
{
	struct audit_ctx ctx = {.sid = "5a2c3e4f-1b2d-4c6e-8f90-a1b2c3d4e5f6",
				.server_id = "n",
				.server_hostname = "web-1",
				.login = "root",
				.user = "alice"};
	struct cli_jsonev je;
	char *json = NULL, *direct = NULL, *back = NULL;
	json_t *o;

	assert_int_equal(audit_event_json(ev, &ctx, &json), 0);
	o = json_loads(json, 0, NULL);
	assert_non_null(o);
	assert_int_equal(cli_jsonev_parse(&je, o), 0);
	assert_int_equal(cli_event_line(ev, &direct), 0);
	assert_int_equal(cli_event_line(&je.ev, &back), 0);
	assert_string_equal(back, direct);
	cli_jsonev_free(&je);
	json_decref(o);
	free(json);
	free(direct);
	free(back);
}

static void test_jsonev(void **state)
{
	char *cmd[] = {"bash", "-c", "ls 'a b'"};
	char *argv[] = {"ls", "-l", "\x1b[31m"};
	Sessrec__SessionStart st = SESSREC__SESSION_START__INIT;
	Sessrec__SessionEnd en = SESSREC__SESSION_END__INIT;
	Sessrec__Command c = SESSREC__COMMAND__INIT;
	Sessrec__Disk d = SESSREC__DISK__INIT;
	Sessrec__Network n = SESSREC__NETWORK__INIT;
	Sessrec__Print p = SESSREC__PRINT__INIT;
	Sessrec__Lost l = SESSREC__LOST__INIT;
	Sessrec__Event ev = SESSREC__EVENT__INIT;
	struct cli_jsonev je;
	json_t *o;

	ev.time_ns = 1795342399123000000LL;
	ev.uid = "u";
	st.sid = "5a2c3e4f-1b2d-4c6e-8f90-a1b2c3d4e5f6";
	st.user = "alice";
	st.login = "root";
	st.kind = "ssh";
	st.cols = 132;
	st.rows = 43;
	st.initial_command = cmd;
	st.n_initial_command = 3;
	ev.body_case = SESSREC__EVENT__BODY_START;
	ev.start = &st;
	assert_roundtrip(&ev);

	en.session_start_ns = ev.time_ns - 61333000000LL;
	en.session_stop_ns = ev.time_ns;
	en.exit_code = 130;
	en.reason = "exited";
	ev.ei = 9;
	ev.body_case = SESSREC__EVENT__BODY_END;
	ev.end = &en;
	assert_roundtrip(&ev);
	en.exit_code = -1;
	assert_roundtrip(&ev);

	c.pid = 42;
	c.program = "ls";
	c.path = "/bin/ls";
	c.argv = argv;
	c.n_argv = 3;
	c.argv_truncated = true;
	c.return_code = -2;
	ev.body_case = SESSREC__EVENT__BODY_COMMAND;
	ev.command = &c;
	assert_roundtrip(&ev);

	d.pid = 7;
	d.program = "cat";
	d.path = "/etc/passwd";
	d.flags = 0x80241;
	d.return_code = 3;
	ev.body_case = SESSREC__EVENT__BODY_DISK;
	ev.disk = &d;
	assert_roundtrip(&ev);

	n.pid = 8;
	n.program = "curl";
	n.src_addr = "10.0.0.1";
	n.src_port = 5555;
	n.dst_addr = "fe80::1";
	n.dst_port = 443;
	n.protocol = "tcp";
	n.version = 6;
	ev.body_case = SESSREC__EVENT__BODY_NETWORK;
	ev.network = &n;
	assert_roundtrip(&ev);

	p.ms = 12;
	p.bytes = 5;
	p.data.data = (uint8_t *)"a\xff\nb\x1b";
	p.data.len = 5;
	p.tty = "/dev/pts/1";
	ev.body_case = SESSREC__EVENT__BODY_PRINT;
	ev.print = &p;
	assert_roundtrip(&ev);

	l.class_ = "terminal";
	l.events = 3;
	l.bytes = 99;
	ev.body_case = SESSREC__EVENT__BODY_LOST;
	ev.lost = &l;
	assert_roundtrip(&ev);

	/* events this CLI does not know are left to the caller */
	o = json_loads("{\"event\":\"session.future\",\"ei\":3}", 0, NULL);
	assert_int_equal(cli_jsonev_parse(&je, o), -ENOENT);
	json_decref(o);
	/* missing fields read as zero and "" */
	o = json_loads("{\"event\":\"session.command\"}", 0, NULL);
	assert_int_equal(cli_jsonev_parse(&je, o), 0);
	assert_string_equal(je.ev.command->program, "");
	assert_int_equal(je.ev.command->n_argv, 0);
	cli_jsonev_free(&je);
	json_decref(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table),  cmocka_unit_test(test_ls_rows),
	    cmocka_unit_test(test_show),   cmocka_unit_test(test_audit_lines),
	    cmocka_unit_test(test_jsonev),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
