/*
 * The human forms of recording events (`sessrec events`): one exact line per
 * event type, open flags, type filters, and the quoting that keeps strings
 * from a recording from driving the terminal.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "../../cli/cli.h"

/* 2026-11-22T10:13:19.123Z */
#define T0 1795342399123000000LL
#define TS "2026-11-22T10:13:19.123Z"

static void assert_line(const Sessrec__Event *ev, const char *want)
{
	char *line = NULL;

	assert_int_equal(cli_event_line(ev, &line), 0);
	assert_non_null(line);
	assert_string_equal(line, want);
	free(line);
}

/* ------------------------------------------------------------ types */

static void test_types(void **state)
{
	uint32_t m = 0xdead;

	assert_string_equal(cli_event_type_name(SESSREC__EVENT__BODY_START), "start");
	assert_string_equal(cli_event_type_name(SESSREC__EVENT__BODY_LOST), "lost");
	assert_string_equal(cli_event_type_name(SESSREC__EVENT__BODY__NOT_SET), "?");
	assert_string_equal(cli_event_type_name(99), "?");

	assert_int_equal(cli_event_types_parse("command", &m), 0);
	assert_true(cli_event_type_match(m, SESSREC__EVENT__BODY_COMMAND));
	assert_false(cli_event_type_match(m, SESSREC__EVENT__BODY_DISK));
	assert_false(cli_event_type_match(m, SESSREC__EVENT__BODY__NOT_SET));

	assert_int_equal(cli_event_types_parse("disk,session.network,print", &m), 0);
	assert_true(cli_event_type_match(m, SESSREC__EVENT__BODY_DISK));
	assert_true(cli_event_type_match(m, SESSREC__EVENT__BODY_NETWORK));
	assert_true(cli_event_type_match(m, SESSREC__EVENT__BODY_PRINT));
	assert_false(cli_event_type_match(m, SESSREC__EVENT__BODY_START));

	/* No filter matches everything. */
	assert_true(cli_event_type_match(0, SESSREC__EVENT__BODY_END));

	m = 0xdead;
	assert_int_equal(cli_event_types_parse("", &m), -EINVAL);
	assert_int_equal(cli_event_types_parse("bogus", &m), -EINVAL);
	assert_int_equal(cli_event_types_parse("command,", &m), -EINVAL);
	assert_int_equal(cli_event_types_parse(",command", &m), -EINVAL);
	assert_int_equal(cli_event_types_parse("Command", &m), -EINVAL);
	assert_int_equal(cli_event_types_parse("session.", &m), -EINVAL);
	assert_int_equal(cli_event_types_parse("commandx", &m), -EINVAL);
	assert_int_equal(m, 0xdead);
}

/* ------------------------------------------------------------ open flags */

static void test_open_flags(void **state)
{
	char buf[256];

	assert_int_equal(cli_open_flags_str(O_RDONLY, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "O_RDONLY");
	assert_int_equal(cli_open_flags_str(O_WRONLY | O_CREAT | O_TRUNC, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "O_WRONLY|O_CREAT|O_TRUNC");
	assert_int_equal(cli_open_flags_str(O_RDWR | O_APPEND | O_CLOEXEC, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "O_RDWR|O_APPEND|O_CLOEXEC");
	/* O_SYNC includes the O_DSYNC bit: named once. */
	assert_int_equal(cli_open_flags_str(O_WRONLY | O_SYNC, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "O_WRONLY|O_SYNC");
	assert_int_equal(cli_open_flags_str(O_WRONLY | O_DSYNC, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "O_WRONLY|O_DSYNC");
	assert_int_equal(cli_open_flags_str(O_RDONLY | O_DIRECTORY | O_NOFOLLOW, buf, sizeof(buf)),
			 0);
	assert_string_equal(buf, "O_RDONLY|O_DIRECTORY|O_NOFOLLOW");
	/* O_TMPFILE holds O_DIRECTORY. */
	assert_int_equal(cli_open_flags_str(O_RDWR | O_TMPFILE, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "O_RDWR|O_TMPFILE");
	/* Bits without a name stay visible. */
	assert_int_equal(cli_open_flags_str(O_RDONLY | 0x40000000, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "O_RDONLY|0x40000000");
	assert_int_equal(cli_open_flags_str(O_ACCMODE, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "O_ACCMODE");

	assert_int_equal(cli_open_flags_str(O_WRONLY | O_CREAT, buf, 8), -ENOSPC);
	assert_int_equal(cli_open_flags_str(O_RDONLY, buf, 8), -ENOSPC);
	assert_int_equal(cli_open_flags_str(O_RDONLY, buf, 9), 0);
	assert_int_equal(cli_open_flags_str(O_RDONLY | 0x40000000, buf, 12), -ENOSPC);
}

/* ------------------------------------------------------------ lines */

static void test_line_start_end(void **state)
{
	Sessrec__Event ev = SESSREC__EVENT__INIT;
	Sessrec__SessionStart st = SESSREC__SESSION_START__INIT;
	Sessrec__SessionEnd end = SESSREC__SESSION_END__INIT;
	char *cmd[] = {"bash", "-c", "ls /tmp"};

	ev.ei = 0;
	ev.time_ns = T0;
	ev.body_case = SESSREC__EVENT__BODY_START;
	ev.start = &st;
	st.sid = "0b7e9a52-6f1c-4d3e-9a8b-1c2d3e4f5a6b";
	st.user = "alice";
	st.login = "root";
	st.kind = "local";
	st.cols = 80;
	st.rows = 24;
	st.initial_command = cmd;
	st.n_initial_command = 3;
	assert_line(&ev,
		    "     0  " TS "  start    sid=0b7e9a52-6f1c-4d3e-9a8b-1c2d3e4f5a6b user=alice "
		    "login=root kind=local size=80x24: bash -c 'ls /tmp'");

	ev.ei = 1234567;
	ev.body_case = SESSREC__EVENT__BODY_END;
	ev.end = &end;
	end.exit_code = 3;
	end.session_start_ns = T0;
	end.session_stop_ns = T0 + 12345678901LL;
	end.reason = "exited";
	assert_line(&ev, "1234567  " TS "  end      exit=3 duration=12.345s reason=exited");
	end.exit_code = -1;
	end.session_start_ns = 0;
	end.reason = "agent shutdown";
	assert_line(&ev, "1234567  " TS "  end      exit=? reason='agent shutdown'");
}

static void test_line_command(void **state)
{
	Sessrec__Event ev = SESSREC__EVENT__INIT;
	Sessrec__Command c = SESSREC__COMMAND__INIT;
	char *argv[] = {"grep", "-r", "it's", "", "a\tb"};

	ev.ei = 7;
	ev.time_ns = T0;
	ev.body_case = SESSREC__EVENT__BODY_COMMAND;
	ev.command = &c;
	c.pid = 4242;
	c.program = "grep";
	c.path = "/usr/bin/grep";
	c.argv = argv;
	c.n_argv = 2;
	assert_line(&ev, "     7  " TS "  command  grep[4242] rc=0 grep -r");
	c.n_argv = 5;
	assert_line(&ev, "     7  " TS "  command  grep[4242] rc=0 grep -r 'it'\\''s' '' $'a\\tb'");

	/* A failed exec: the kernel's errno by name; no argv: the path. */
	c.return_code = -2;
	c.n_argv = 0;
	c.program = "";
	assert_line(&ev, "     7  " TS "  command  ?[4242] rc=-ENOENT /usr/bin/grep");
	c.return_code = -4095;
	c.argv_truncated = true;
	c.n_argv = 1;
	assert_line(&ev, "     7  " TS "  command  ?[4242] rc=-4095 grep [truncated]");
}

static void test_line_disk_network(void **state)
{
	Sessrec__Event ev = SESSREC__EVENT__INIT;
	Sessrec__Disk d = SESSREC__DISK__INIT;
	Sessrec__Network n = SESSREC__NETWORK__INIT;

	ev.ei = 3;
	ev.time_ns = T0;
	ev.body_case = SESSREC__EVENT__BODY_DISK;
	ev.disk = &d;
	d.pid = 10;
	d.program = "cat";
	d.path = "/etc/shadow";
	d.flags = O_RDONLY | O_CLOEXEC;
	d.return_code = -13;
	assert_line(&ev,
		    "     3  " TS "  disk     cat[10] rc=-EACCES /etc/shadow O_RDONLY|O_CLOEXEC");
	d.path = "/tmp/my file";
	d.flags = O_WRONLY | O_CREAT | O_TRUNC;
	d.return_code = 3;
	assert_line(&ev, "     3  " TS
			 "  disk     cat[10] rc=3 '/tmp/my file' O_WRONLY|O_CREAT|O_TRUNC");

	ev.body_case = SESSREC__EVENT__BODY_NETWORK;
	ev.network = &n;
	n.pid = 11;
	n.program = "curl";
	n.protocol = "tcp";
	n.version = 4;
	n.src_addr = "10.0.0.5";
	n.src_port = 40000;
	n.dst_addr = "1.1.1.1";
	n.dst_port = 443;
	n.return_code = -115;
	assert_line(&ev, "     3  " TS "  network  curl[11] rc=-EINPROGRESS tcp 10.0.0.5:40000 -> "
			 "1.1.1.1:443");
	n.protocol = "udp";
	n.version = 6;
	n.src_addr = "";
	n.src_port = 0;
	n.dst_addr = "2001:db8::1";
	n.dst_port = 53;
	n.return_code = 0;
	assert_line(&ev, "     3  " TS "  network  curl[11] rc=0 udp ?:0 -> [2001:db8::1]:53");
}

static void test_line_print_lost(void **state)
{
	Sessrec__Event ev = SESSREC__EVENT__INIT;
	Sessrec__Print p = SESSREC__PRINT__INIT;
	Sessrec__Lost l = SESSREC__LOST__INIT;
	uint8_t data[] = "hello\r\n";

	ev.ei = 9;
	ev.time_ns = T0;
	ev.body_case = SESSREC__EVENT__BODY_PRINT;
	ev.print = &p;
	p.bytes = 7;
	p.data.data = data;
	p.data.len = 7;
	assert_line(&ev, "     9  " TS "  print    7 bytes");

	ev.body_case = SESSREC__EVENT__BODY_LOST;
	ev.lost = &l;
	l.class_ = "terminal";
	l.events = 3;
	l.bytes = 1200;
	assert_line(&ev, "     9  " TS "  lost     terminal: 3 events, 1200 bytes lost");
	l.class_ = "disk";
	l.events = 17;
	l.bytes = 0;
	assert_line(&ev, "     9  " TS "  lost     disk: 17 events lost");

	ev.body_case = SESSREC__EVENT__BODY__NOT_SET;
	assert_line(&ev, "     9  " TS "  ?        (unknown event)");
}

/* Nothing from a recording reaches the terminal as a control character. */
static void test_quoting(void **state)
{
	static const struct {
		const char *in;
		const char *out;
	} cases[] = {
	    {"plain-word_1.2/x:y,z@%+=", "plain-word_1.2/x:y,z@%+="},
	    {"café", "café"},
	    {"two words", "'two words'"},
	    {"$HOME", "'$HOME'"},
	    {"", "''"},
	    {"\033]0;pwned\007", "$'\\x1b]0;pwned\\x07'"},
	    {"line\nbreak\r", "$'line\\nbreak\\r'"},
	    {"back\\slash 'q'\x7f", "$'back\\\\slash \\'q\\'\\x7f'"},
	    /* Invalid UTF-8, an overlong '/', and U+009B (CSI) in UTF-8. */
	    {"bad\xff", "$'bad\\xff'"},
	    {"\xc0\xaf", "$'\\xc0\\xaf'"},
	    {"x\xc2\x9b"
	     "31m",
	     "$'x\\xc2\\x9b31m'"},
	    {"ok \xe2\x82\xac\x01", "$'ok \xe2\x82\xac\\x01'"},
	};
	Sessrec__Event ev = SESSREC__EVENT__INIT;
	Sessrec__Disk d = SESSREC__DISK__INIT;
	char want[256];

	ev.time_ns = T0;
	ev.body_case = SESSREC__EVENT__BODY_DISK;
	ev.disk = &d;
	d.program = "p";
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		d.path = (char *)cases[i].in;
		snprintf(want, sizeof(want), "     0  " TS "  disk     p[0] rc=0 %s O_RDONLY",
			 cases[i].out);
		assert_line(&ev, want);
	}
	/* The program name (comm) is quoted the same way. */
	d.program = "\033[2J";
	d.path = "/x";
	assert_line(&ev, "     0  " TS "  disk     $'\\x1b[2J'[0] rc=0 /x O_RDONLY");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_types),
	    cmocka_unit_test(test_open_flags),
	    cmocka_unit_test(test_line_start_end),
	    cmocka_unit_test(test_line_command),
	    cmocka_unit_test(test_line_disk_network),
	    cmocka_unit_test(test_line_print_lost),
	    cmocka_unit_test(test_quoting),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
