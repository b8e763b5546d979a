/*
 * asciicast v2 export: terminal output as JSON strings (UTF-8 kept, each
 * maximal ill-formed subsequence replaced by one U+FFFD, as Python's
 * bytes.decode("utf-8", "replace") does), sequences split across print
 * events carried to the next chunk, times that never go back, lost-output
 * markers, \n as \r\n, and the header. Every line must parse as JSON.
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

#define FFFD "\xef\xbf\xbd"

/* ------------------------------------------------------------ cli_json_utf8 */

static void assert_json_utf8(const char *in, size_t len, bool final, const char *want,
			     size_t want_used)
{
	struct cli_buf b = {0};
	size_t used;

	cli_buf_add(&b, "", 0);
	used = cli_json_utf8(&b, (const uint8_t *)in, len, final);
	assert_int_equal(b.err, 0);
	assert_int_equal(used, want_used);
	assert_string_equal(b.p, want);
	cli_buf_free(&b);
}

#define J(in, final, want, used) assert_json_utf8(in, sizeof(in) - 1, final, want, used)

static void test_json_escapes(void **state)
{
	J("plain text", true, "plain text", 10);
	J("a\"b\\c", true, "a\\\"b\\\\c", 5);
	J("\n\r\t\b\f", true, "\\n\\r\\t\\b\\f", 5);
	J("\x01\x1b[0m\x7f", true, "\\u0001\\u001b[0m\\u007f", 6);
	J("\0x", true, "\\u0000x", 2);
	/* valid UTF-8 of every length passes unchanged; C1 controls too (they are text here) */
	J("\xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e\xc2\x85", true,
	  "\xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e\xc2\x85", 11);
	J("", true, "", 0);
}

static void test_json_invalid(void **state)
{
	/* the same replacements Python makes */
	J("\xff\xfe", true, FFFD FFFD, 2);
	J("\xe2\x82"
	  "A",
	  true, FFFD "A", 3);				     /* a cut sequence: one U+FFFD */
	J("\xc0\xaf", true, FFFD FFFD, 2);		     /* overlong lead: each byte */
	J("\xe0\x80\x80", true, FFFD FFFD FFFD, 3);	     /* overlong 3-byte form */
	J("\xed\xa0\x80", true, FFFD FFFD FFFD, 3);	     /* a surrogate */
	J("\xf4\x90\x80\x80", true, FFFD FFFD FFFD FFFD, 4); /* above U+10FFFF */
	J("\xf0\x9f\x98", true, FFFD, 3);		     /* cut at the end, final */
	J("\x80\xbf", true, FFFD FFFD, 2);		     /* stray continuations */
	J("bad: \xff\xfe \xe2\x82 end \xc3", true, "bad: " FFFD FFFD " " FFFD " end " FFFD, 16);
}

static void test_json_incomplete_tail(void **state)
{
	/* not final: a sequence that the next chunk may finish is left over */
	J("ab\xe2\x82", false, "ab", 2);
	J("ab\xe2", false, "ab", 2);
	J("\xf0\x9f\x98", false, "", 0);
	J("x\xc3", false, "x", 1);
	/* complete ones are consumed */
	J("\xe2\x82\xac", false, "\xe2\x82\xac", 3);
	/* already invalid: nothing to wait for */
	J("\xe2\x28", false, FFFD "(", 2);
	J("\xed\xa0", false, FFFD FFFD, 2);
	J("\xf4\x90", false, FFFD FFFD, 2);
	J("\xff", false, FFFD, 1);
}

/* ------------------------------------------------------------ the cast */

struct capture {
	char *buf;
	size_t len;
	FILE *f;
};

static void capture_open(struct capture *c)
{
	c->buf = NULL;
	c->len = 0;
	c->f = open_memstream(&c->buf, &c->len);
	assert_non_null(c->f);
}

/* Close the stream and split it into lines (the array and buf are the caller's). */
static size_t capture_lines(struct capture *c, char **lines, size_t max)
{
	size_t n = 0;
	char *p, *nl;

	assert_int_equal(fclose(c->f), 0);
	for (p = c->buf; p && *p && n < max; p = nl + 1) {
		nl = strchr(p, '\n');
		assert_non_null(nl); /* every line ends with a newline */
		*nl = '\0';
		lines[n++] = p;
	}
	return n;
}

/* Every line is JSON; event lines are [time, "o", text]. */
static void assert_event(const char *line, const char *want_time, const char *want_text)
{
	json_error_t jerr;
	json_t *a = json_loads(line, 0, &jerr);
	char prefix[64];

	assert_non_null(a);
	assert_true(json_is_array(a));
	assert_int_equal(json_array_size(a), 3);
	assert_true(json_is_real(json_array_get(a, 0)));
	assert_string_equal(json_string_value(json_array_get(a, 1)), "o");
	assert_string_equal(json_string_value(json_array_get(a, 2)), want_text);
	snprintf(prefix, sizeof(prefix), "[%s, \"o\", \"", want_time);
	assert_memory_equal(line, prefix, strlen(prefix));
	json_decref(a);
}

static void start_event(Sessrec__SessionStart *st, char **argv, size_t argc)
{
	sessrec__session_start__init(st);
	st->sid = "5a2c3e4f-1b2d-4c6e-8f90-a1b2c3d4e5f6";
	st->server_hostname = "web-1";
	st->user = "alice";
	st->login = "root";
	st->kind = "ssh";
	st->cols = 100;
	st->rows = 30;
	st->initial_command = argv;
	st->n_initial_command = argc;
}

static void test_cast_header(void **state)
{
	char *argv[] = {"bash", "-c", "echo \"hi\"\x1b"};
	Sessrec__SessionStart st;
	struct cli_cast cast;
	struct capture cap;
	char *lines[4];
	json_t *h;

	start_event(&st, argv, 3);
	capture_open(&cap);
	assert_int_equal(cli_cast_begin(&cast, cap.f, &st, 1795342399123000000LL, NULL), 0);
	assert_int_equal(cli_cast_end(&cast), 0);
	assert_int_equal(capture_lines(&cap, lines, 4), 1);
	h = json_loads(lines[0], 0, NULL);
	assert_non_null(h);
	assert_int_equal(json_integer_value(json_object_get(h, "version")), 2);
	assert_int_equal(json_integer_value(json_object_get(h, "width")), 100);
	assert_int_equal(json_integer_value(json_object_get(h, "height")), 30);
	assert_int_equal(json_integer_value(json_object_get(h, "timestamp")), 1795342399);
	/* the command as shell words, control characters escaped */
	assert_string_equal(json_string_value(json_object_get(h, "command")),
			    "bash -c $'echo \"hi\"\\x1b'");
	assert_string_equal(json_string_value(json_object_get(h, "title")),
			    "alice as root on web-1, session 5a2c3e4f-1b2d-4c6e-8f90-a1b2c3d4e5f6");
	assert_string_equal(json_string_value(json_object_get(json_object_get(h, "env"), "TERM")),
			    CLI_CAST_TERM);
	json_decref(h);
	free(cap.buf);

	/* no size recorded: 80x24; no command: no "command" key; invalid UTF-8 in names */
	start_event(&st, NULL, 0);
	st.cols = 0;
	st.rows = 0;
	st.user = "b\xffob";
	st.login = "b\xffob";
	capture_open(&cap);
	assert_int_equal(cli_cast_begin(&cast, cap.f, &st, 0, "screen"), 0);
	assert_int_equal(cli_cast_end(&cast), 0);
	assert_int_equal(capture_lines(&cap, lines, 4), 1);
	h = json_loads(lines[0], 0, NULL);
	assert_non_null(h);
	assert_int_equal(json_integer_value(json_object_get(h, "width")), 80);
	assert_int_equal(json_integer_value(json_object_get(h, "height")), 24);
	assert_null(json_object_get(h, "command"));
	assert_string_equal(json_string_value(json_object_get(h, "title")),
			    "b" FFFD "ob on web-1, session 5a2c3e4f-1b2d-4c6e-8f90-a1b2c3d4e5f6");
	assert_string_equal(json_string_value(json_object_get(json_object_get(h, "env"), "TERM")),
			    "screen");
	json_decref(h);
	free(cap.buf);
}

#define OUT(ms, s)                                                                                 \
	assert_int_equal(cli_cast_output(&cast, ms, (const uint8_t *)s, sizeof(s) - 1), 0)

static void test_cast_utf8_split(void **state)
{
	Sessrec__SessionStart st;
	struct cli_cast cast;
	struct capture cap;
	char *lines[16];

	start_event(&st, NULL, 0);
	capture_open(&cap);
	assert_int_equal(cli_cast_begin(&cast, cap.f, &st, 0, NULL), 0);
	OUT(1500, "caf\xc3");	    /* é split after its first byte */
	OUT(1600, "\xa9!");	    /* finished by the next chunk: whole, at the later time */
	OUT(2000, "\xe2");	    /* a chunk that is only the start of a sequence */
	OUT(2100, "\x82");	    /* still unfinished: no line */
	OUT(2200, "\xac and \xf0"); /* € whole; a new start carried again */
	OUT(2300, "\x9d\x84\x9e");  /* 𝄞 */
	OUT(2400, "\xc3"
		  "x");	   /* cut by a plain byte inside one chunk */
	OUT(2500, "\xc3"); /* cut by the next chunk's plain byte */
	OUT(2600, "y");
	assert_int_equal(cli_cast_end(&cast), 0);
	assert_int_equal(capture_lines(&cap, lines, 16), 7);
	assert_event(lines[1], "1.500", "caf");
	assert_event(lines[2], "1.600", "\xc3\xa9!");
	assert_event(lines[3], "2.200", "\xe2\x82\xac and ");
	assert_event(lines[4], "2.300", "\xf0\x9d\x84\x9e");
	assert_event(lines[5], "2.400", FFFD "x");
	assert_event(lines[6], "2.600", FFFD "y");
	free(cap.buf);
}

static void test_cast_timing(void **state)
{
	Sessrec__SessionStart st;
	struct cli_cast cast;
	struct capture cap;
	char *lines[16];

	start_event(&st, NULL, 0);
	capture_open(&cap);
	assert_int_equal(cli_cast_begin(&cast, cap.f, &st, 0, NULL), 0);
	OUT(0, "a");
	OUT(7, "b");
	OUT(61234, "c");
	OUT(61000, "d"); /* earlier than the last line: held at the last time */
	OUT(3600001, "e");
	assert_int_equal(cli_cast_output(&cast, 3700000, NULL, 0), 0); /* empty: no line */
	assert_int_equal(cli_cast_end(&cast), 0);
	assert_int_equal(capture_lines(&cap, lines, 16), 6);
	assert_event(lines[1], "0.000", "a");
	assert_event(lines[2], "0.007", "b");
	assert_event(lines[3], "61.234", "c");
	assert_event(lines[4], "61.234", "d");
	assert_event(lines[5], "3600.001", "e");
	free(cap.buf);
}

static void test_cast_lost(void **state)
{
	Sessrec__SessionStart st;
	struct cli_cast cast;
	struct capture cap;
	char *lines[16];

	start_event(&st, NULL, 0);
	capture_open(&cap);
	assert_int_equal(cli_cast_begin(&cast, cap.f, &st, 0, NULL), 0);
	OUT(1000, "before");
	assert_int_equal(cli_cast_lost(&cast, 4937851, 603), 0);
	OUT(1200, "x\xf0\x9f"); /* cut short by lost output: the half sequence is U+FFFD */
	assert_int_equal(cli_cast_lost(&cast, 0, 134), 0);
	OUT(1300, "\x98\x80"
		  "after");    /* the rest of that sequence: stray bytes now */
	OUT(1400, "\xe2\x82"); /* unfinished at the end */
	assert_int_equal(cli_cast_end(&cast), 0);
	assert_int_equal(capture_lines(&cap, lines, 16), 8);
	assert_event(lines[1], "1.000", "before");
	assert_event(lines[2], "1.000", "\r\n[sessrec: 4937851 bytes lost]\r\n");
	assert_event(lines[3], "1.200", "x");
	assert_event(lines[4], "1.200", FFFD);
	assert_event(lines[5], "1.200", "\r\n[sessrec: 134 chunks of output lost]\r\n");
	assert_event(lines[6], "1.300", FFFD FFFD "after");
	assert_event(lines[7], "1.400", FFFD);
	free(cap.buf);
}

static void test_cast_crlf(void **state)
{
	Sessrec__SessionStart st;
	struct cli_cast cast;
	struct capture cap;
	char *lines[16];

	start_event(&st, NULL, 0);
	capture_open(&cap);
	assert_int_equal(cli_cast_begin(&cast, cap.f, &st, 0, NULL), 0);
	OUT(1, "a\nb\r\nc\n");
	OUT(2, "x\r");
	OUT(3, "\ny\n\n"); /* the \r came at the end of the previous chunk */
	cast.onlcr = false;
	OUT(4, "raw\n");
	assert_int_equal(cli_cast_end(&cast), 0);
	assert_int_equal(capture_lines(&cap, lines, 16), 5);
	assert_event(lines[1], "0.001", "a\r\nb\r\nc\r\n");
	assert_event(lines[2], "0.002", "x\r");
	assert_event(lines[3], "0.003", "\ny\r\n\r\n");
	assert_event(lines[4], "0.004", "raw\n");
	free(cap.buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_json_escapes),
	    cmocka_unit_test(test_json_invalid),
	    cmocka_unit_test(test_json_incomplete_tail),
	    cmocka_unit_test(test_cast_header),
	    cmocka_unit_test(test_cast_utf8_split),
	    cmocka_unit_test(test_cast_timing),
	    cmocka_unit_test(test_cast_lost),
	    cmocka_unit_test(test_cast_crlf),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
