/*
 * Transcripts: terminal output rendered through the emulator (progress bars,
 * colours, full-screen programs, scrolling, UTF-8), commands and their
 * collapsing, network destinations, files, lost output, size limits and
 * chunking.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transcript.h"

#define T0 1700000000000000000LL

/* ------------------------------------------------------------ event builders */

struct tx {
	struct transcript *t;
	int64_t now;
	uint64_t ei;
	const char *text;
	size_t len;
};

static void tx_add(struct tx *x, Sessrec__Event *ev)
{
	ev->ei = x->ei++;
	ev->time_ns = x->now;
	x->now += 1000000; /* 1 ms between events */
	assert_int_equal(transcript_add(x->t, ev), 0);
}

static void tx_open(struct tx *x, uint32_t cols, uint32_t rows)
{
	Sessrec__Event ev = SESSREC__EVENT__INIT;
	Sessrec__SessionStart st = SESSREC__SESSION_START__INIT;
	char *cmd[] = {"bash", "-l"};

	memset(x, 0, sizeof(*x));
	x->now = T0;
	assert_int_equal(transcript_new(&x->t, 0, 0), 0);
	st.sid = "0b7e8a9c-1d2e-4f30-8a4b-5c6d7e8f9a0b";
	st.server_hostname = "node-a";
	st.user = "alice";
	st.login = "root";
	st.kind = "ssh";
	st.cols = cols;
	st.rows = rows;
	st.tty = "/dev/pts/3";
	st.initial_command = cmd;
	st.n_initial_command = 2;
	ev.body_case = SESSREC__EVENT__BODY_START;
	ev.start = &st;
	tx_add(x, &ev);
}

static void tx_print_n(struct tx *x, const void *data, size_t n)
{
	Sessrec__Event ev = SESSREC__EVENT__INIT;
	Sessrec__Print p = SESSREC__PRINT__INIT;

	p.data.data = (uint8_t *)data;
	p.data.len = n;
	p.bytes = (uint32_t)n;
	ev.body_case = SESSREC__EVENT__BODY_PRINT;
	ev.print = &p;
	tx_add(x, &ev);
}

static void tx_print(struct tx *x, const char *s)
{
	tx_print_n(x, s, strlen(s));
}

static void tx_exec(struct tx *x, uint32_t pid, const char *path, int rc, size_t argc, char **argv)
{
	Sessrec__Event ev = SESSREC__EVENT__INIT;
	Sessrec__Command c = SESSREC__COMMAND__INIT;
	const char *base = strrchr(path, '/');

	c.pid = pid;
	c.ppid = 100;
	c.program = (char *)(base ? base + 1 : path);
	c.path = (char *)path;
	c.argv = argv;
	c.n_argv = argc;
	c.return_code = rc;
	ev.body_case = SESSREC__EVENT__BODY_COMMAND;
	ev.command = &c;
	tx_add(x, &ev);
}

static void tx_net(struct tx *x, const char *prog, const char *dst, uint32_t port, int rc)
{
	Sessrec__Event ev = SESSREC__EVENT__INIT;
	Sessrec__Network n = SESSREC__NETWORK__INIT;

	n.pid = 4000;
	n.program = (char *)prog;
	n.src_addr = strchr(dst, ':') ? "::1" : "10.0.0.2";
	n.dst_addr = (char *)dst;
	n.dst_port = port;
	n.src_port = 40000;
	n.version = strchr(dst, ':') ? 6 : 4;
	n.protocol = "tcp";
	n.return_code = rc;
	ev.body_case = SESSREC__EVENT__BODY_NETWORK;
	ev.network = &n;
	tx_add(x, &ev);
}

static void tx_disk_pid(struct tx *x, uint32_t pid, const char *prog, const char *path, int flags,
			int rc)
{
	Sessrec__Event ev = SESSREC__EVENT__INIT;
	Sessrec__Disk d = SESSREC__DISK__INIT;

	d.pid = pid;
	d.program = (char *)prog;
	d.path = (char *)path;
	d.flags = flags;
	d.return_code = rc;
	ev.body_case = SESSREC__EVENT__BODY_DISK;
	ev.disk = &d;
	tx_add(x, &ev);
}

static void tx_disk(struct tx *x, const char *prog, const char *path, int flags, int rc)
{
	Sessrec__Event ev = SESSREC__EVENT__INIT;
	Sessrec__Disk d = SESSREC__DISK__INIT;

	d.pid = 4000;
	d.program = (char *)prog;
	d.path = (char *)path;
	d.flags = flags;
	d.return_code = rc;
	ev.body_case = SESSREC__EVENT__BODY_DISK;
	ev.disk = &d;
	tx_add(x, &ev);
}

static void tx_lost(struct tx *x, const char *cls, uint64_t events, uint64_t bytes)
{
	Sessrec__Event ev = SESSREC__EVENT__INIT;
	Sessrec__Lost l = SESSREC__LOST__INIT;

	l.class_ = (char *)cls;
	l.events = events;
	l.bytes = bytes;
	ev.body_case = SESSREC__EVENT__BODY_LOST;
	ev.lost = &l;
	tx_add(x, &ev);
}

static void tx_end(struct tx *x, int code)
{
	Sessrec__Event ev = SESSREC__EVENT__INIT;
	Sessrec__SessionEnd e = SESSREC__SESSION_END__INIT;

	e.session_start_ns = T0;
	e.session_stop_ns = x->now;
	e.exit_code = code;
	e.reason = "exited";
	ev.body_case = SESSREC__EVENT__BODY_END;
	ev.end = &e;
	tx_add(x, &ev);
}

static const char *tx_finish(struct tx *x)
{
	assert_int_equal(transcript_finish(x->t, &x->text, &x->len), 0);
	assert_int_equal(strlen(x->text), x->len);
	return x->text;
}

static void tx_close(struct tx *x)
{
	transcript_free(x->t);
	x->t = NULL;
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0, l = strlen(needle);

	for (const char *p = hay; (p = strstr(p, needle)); p += l)
		n++;
	return n;
}

/* The text contains `line` as a whole line. */
static bool has_line(const char *text, const char *line)
{
	size_t l = strlen(line);

	for (const char *p = text; (p = strstr(p, line)); p++)
		if ((p == text || p[-1] == '\n') && (p[l] == '\n' || !p[l]))
			return true;
	return false;
}

#define assert_has(text, s)                                                                        \
	do {                                                                                       \
		if (!strstr((text), (s)))                                                          \
			fail_msg("missing \"%s\" in:\n%s", (s), (text));                           \
	} while (0)
#define assert_lacks(text, s)                                                                      \
	do {                                                                                       \
		if (strstr((text), (s)))                                                           \
			fail_msg("unexpected \"%s\" in:\n%s", (s), (text));                        \
	} while (0)
#define assert_line(text, s)                                                                       \
	do {                                                                                       \
		if (!has_line((text), (s)))                                                        \
			fail_msg("missing line \"%s\" in:\n%s", (s), (text));                      \
	} while (0)

/* ------------------------------------------------------------ tests */

static void test_header_and_end(void **state)
{
	struct tx x;
	const char *t;

	(void)state;
	tx_open(&x, 100, 30);
	tx_end(&x, 3);
	t = tx_finish(&x);
	assert_has(t, "session 0b7e8a9c-1d2e-4f30-8a4b-5c6d7e8f9a0b (ssh) on node-a\n");
	assert_has(t, "user alice, login root, tty /dev/pts/3\n");
	assert_has(t, "started 2023-11-14T22:13:20.000Z\n");
	assert_has(t, "command: bash -l\n");
	assert_has(t, "terminal 100x30\n");
	assert_has(t, "[end] exit 3 (exited) after 0.0s\n");
	tx_close(&x);
}

static void test_progress_bar_final_state(void **state)
{
	struct tx x;
	char buf[128];
	const char *t;

	(void)state;
	tx_open(&x, 80, 24);
	tx_print(&x, "Downloading package.tar.gz\n");
	for (int i = 0; i <= 100; i += 5) {
		int bars = i / 10;

		snprintf(buf, sizeof(buf), "\r[%.*s%.*s] %3d%% %d kB/s", bars, "##########",
			 10 - bars, "          ", i, 100 + i);
		tx_print(&x, buf);
	}
	tx_print(&x, "\ndone\n");
	tx_end(&x, 0);
	t = tx_finish(&x);
	assert_line(t, "Downloading package.tar.gz");
	assert_line(t, "[##########] 100% 200 kB/s");
	assert_line(t, "done");
	assert_lacks(t, " 50%");
	assert_lacks(t, "\r");
	tx_close(&x);
}

static void test_colours_vanish(void **state)
{
	struct tx x;
	const char *t;

	(void)state;
	tx_open(&x, 80, 24);
	tx_print(&x, "\033[1;31mERROR\033[0m: disk \033[38;5;208malmost\033[m full "
		     "\033[48;2;10;20;30mrgb\033[0m\n\033]0;window title\007plain\n");
	tx_end(&x, 0);
	t = tx_finish(&x);
	assert_line(t, "ERROR: disk almost full rgb");
	assert_line(t, "plain");
	assert_lacks(t, "\033");
	assert_lacks(t, "window title");
	tx_close(&x);
}

/* A full-screen program on the alternate screen: only its final screen is kept. */
static void test_fullscreen_final_screen(void **state)
{
	struct tx x;
	const char *t;
	char *vim[] = {"vim", "notes.txt"};

	(void)state;
	tx_open(&x, 40, 10);
	tx_print(&x, "$ vim notes.txt\n");
	tx_exec(&x, 300, "/usr/bin/vim", 0, 2, vim);
	tx_print(&x, "\033[?1049h\033[H\033[2J");
	/* a first frame, then redraws with cursor addressing */
	tx_print(&x, "\033[1;1Hfirst draft line\033[2;1H~\033[3;1H~\033[10;1H\"notes.txt\" 1L");
	tx_print(&x,
		 "\033[1;1H\033[Kfinal text line\033[2;1Hsecond line\033[10;1H\033[K-- INSERT --");
	tx_print(&x, "\033[5;10Hplaced\033[10;1H\033[K\"notes.txt\" 2L written");
	tx_print(&x, "\033[?1049l");
	tx_print(&x, "$ ");
	tx_end(&x, 0);
	t = tx_finish(&x);
	assert_line(t, "$ vim notes.txt");
	assert_line(t, "final text line");
	assert_line(t, "second line");
	assert_line(t, "         placed");
	assert_line(t, "\"notes.txt\" 2L written");
	assert_lacks(t, "first draft");
	assert_lacks(t, "INSERT");
	assert_lacks(t, "\"notes.txt\" 1L");
	assert_int_equal(count(t, "$ vim notes.txt"), 1);
	tx_close(&x);
}

/* The same on the primary screen (top-like redraw with clear): the last frame stays. */
static void test_fullscreen_primary_redraw(void **state)
{
	struct tx x;
	const char *t;
	char buf[128];

	(void)state;
	tx_open(&x, 40, 8);
	for (int frame = 1; frame <= 20; frame++) {
		snprintf(buf, sizeof(buf),
			 "\033[H\033[1;1Hload %d.%02d\033[K\033[3;1Hprocs %d\033[K", frame, frame,
			 frame * 3);
		tx_print(&x, buf);
	}
	tx_end(&x, 0);
	t = tx_finish(&x);
	assert_line(t, "load 20.20");
	assert_line(t, "procs 60");
	assert_lacks(t, "load 19.19");
	tx_close(&x);
}

/* Output erased by a clear is written before it goes. */
static void test_clear_keeps_what_was_shown(void **state)
{
	struct tx x;
	const char *t;

	(void)state;
	tx_open(&x, 80, 24);
	tx_print(&x, "secret output before the clear\n$ ");
	tx_print(&x, "\033[H\033[2Jafter\n");
	tx_end(&x, 0);
	t = tx_finish(&x);
	assert_line(t, "secret output before the clear");
	assert_line(t, "after");
	tx_close(&x);
}

/* Lines scrolled off the top, lines on screen and flush points: each line exactly once. */
static void test_scrolling_each_line_once(void **state)
{
	struct tx x;
	const char *t;
	char buf[64];
	char *ls[] = {"ls"};

	(void)state;
	tx_open(&x, 80, 5);
	for (int i = 0; i < 30; i++) {
		/* words, not digits only: the lines must not fold into "similar" runs */
		snprintf(buf, sizeof(buf), "%s line %c\n", i % 2 ? "odd" : "even", 'a' + i % 26);
		tx_print(&x, buf);
		if (i % 7 == 3)
			tx_exec(&x, 500 + (uint32_t)i, "/usr/bin/ls", 0, 1, ls);
	}
	tx_end(&x, 0);
	t = tx_finish(&x);
	for (int i = 0; i < 26; i++) {
		snprintf(buf, sizeof(buf), "%s line %c", i % 2 ? "odd" : "even", 'a' + i);
		assert_line(t, buf);
		/* lines 26..29 wrap around to a..d with the same parity */
		assert_int_equal(count(t, buf), i < 4 ? 2 : 1);
	}
	tx_close(&x);
}

/* The cursor's row (a prompt being typed) waits until it is settled. */
static void test_prompt_waits_until_settled(void **state)
{
	struct tx x;
	const char *t;
	char *ls[] = {"ls", "-l"};

	(void)state;
	tx_open(&x, 80, 24);
	tx_print(&x, "alice@node-a:~$ ");
	tx_net(&x, "curl", "203.0.113.5", 443, 0); /* a flush point */
	tx_print(&x, "ls -l\n");
	tx_exec(&x, 600, "/usr/bin/ls", 0, 2, ls);
	tx_print(&x, "total 0\n");
	tx_end(&x, 0);
	t = tx_finish(&x);
	assert_line(t, "alice@node-a:~$ ls -l");
	assert_false(has_line(t, "alice@node-a:~$"));
	assert_true(strstr(t, "alice@node-a:~$ ls -l") < strstr(t, "exec /usr/bin/ls"));
	tx_close(&x);
}

static void test_repeated_exec_collapse(void **state)
{
	struct tx x;
	const char *t;
	char *ls[] = {"ls"}, *cat[] = {"cat", "x"};

	(void)state;
	tx_open(&x, 80, 24);
	for (uint32_t i = 0; i < 500; i++) {
		tx_exec(&x, 1000 + i, "/usr/bin/ls", 0, 1, ls);
		tx_disk(&x, "ls", "/usr/lib/x86_64-linux-gnu/libc.so.6", O_RDONLY, 3);
		tx_print(&x, "a.txt  b.txt\n");
	}
	tx_exec(&x, 2000, "/usr/bin/cat", 0, 2, cat);
	tx_print(&x, "x content\n");
	for (uint32_t i = 0; i < 3; i++)
		tx_exec(&x, 3000 + i, "/usr/bin/true", 0, 0, NULL);
	tx_end(&x, 0);
	t = tx_finish(&x);
	assert_int_equal(count(t, "exec /usr/bin/ls"), 1);
	assert_has(t, "[1000] exec /usr/bin/ls | rc=0\na.txt  b.txt\n  … ×500");
	assert_int_equal(count(t, "a.txt  b.txt"), 1);
	assert_has(t, "[2000] exec /usr/bin/cat x | rc=0\n");
	assert_line(t, "x content");
	assert_has(t, "[3000] exec /usr/bin/true | rc=0\n  … ×3");
	assert_lacks(t, "libc.so");
	tx_close(&x);
}

static void test_lost_marker(void **state)
{
	struct tx x;
	const char *t;

	(void)state;
	tx_open(&x, 80, 24);
	tx_print(&x, "before\n");
	tx_lost(&x, "terminal", 1, 4096);
	tx_print(&x, "after\n");
	tx_lost(&x, "disk", 12, 0);
	tx_end(&x, 0);
	t = tx_finish(&x);
	assert_has(t, "before\n[4096 bytes of output lost]\nafter\n[12 file events lost]\n");
	tx_close(&x);
}

static void test_commands_and_destinations_kept(void **state)
{
	struct tx x;
	const char *t;
	char *curl[] = {"curl", "-fsSL", "https://get.example.com/install.sh"};
	char *sh[] = {"sh"};
	char *ssh[] = {"ssh", "deploy@10.1.2.3", "uptime; echo 'done it'"};

	(void)state;
	tx_open(&x, 80, 24);
	tx_exec(&x, 700, "/usr/bin/curl", 0, 3, curl);
	tx_exec(&x, 701, "/usr/bin/sh", 0, 1, sh);
	tx_net(&x, "curl", "203.0.113.5", 443, -EINPROGRESS);
	tx_net(&x, "curl", "203.0.113.5", 443, 0);
	tx_net(&x, "curl", "203.0.113.5", 443, 0);
	tx_net(&x, "curl", "203.0.113.5", 443, 0);
	tx_net(&x, "nc", "2001:db8::7", 4444, -ECONNREFUSED);
	tx_exec(&x, 702, "/usr/bin/ssh", 0, 3, ssh);
	tx_net(&x, "ssh", "10.1.2.3", 22, 0);
	tx_end(&x, 0);
	t = tx_finish(&x);
	assert_has(t, "[700] exec /usr/bin/curl -fsSL https://get.example.com/install.sh | rc=0\n");
	assert_has(t, "[701] exec /usr/bin/sh | rc=0\n");
	assert_has(t, "[net] curl → 203.0.113.5:443 tcp (in progress)\n");
	assert_has(t, "[net] curl → 203.0.113.5:443 tcp (ok) ×3\n");
	assert_has(t, "[net] nc → [2001:db8::7]:4444 tcp (refused)\n");
	assert_has(
	    t, "[702] exec /usr/bin/ssh deploy@10.1.2.3 'uptime; echo '\\''done it'\\''' | rc=0");
	assert_has(t, "[net] ssh → 10.1.2.3:22 tcp (ok)\n");
	tx_close(&x);
}

static void test_failed_exec_and_path_search(void **state)
{
	struct tx x;
	const char *t;
	char *py[] = {"python3", "-c", "print(1)"};
	char *nope[] = {"frobnicate"};
	char *evil[] = {"/tmp/evil"};

	(void)state;
	tx_open(&x, 80, 24);
	/* env's PATH search: misses, then the hit */
	tx_exec(&x, 800, "/usr/local/sbin/python3", -ENOENT, 3, py);
	tx_exec(&x, 800, "/usr/local/bin/python3", -ENOENT, 3, py);
	tx_exec(&x, 800, "/usr/bin/python3", 0, 3, py);
	/* a search that never finds anything */
	tx_exec(&x, 801, "/usr/local/bin/frobnicate", -ENOENT, 1, nope);
	tx_exec(&x, 801, "/usr/bin/frobnicate", -ENOENT, 1, nope);
	/* a single refused exec */
	tx_exec(&x, 802, "/tmp/evil", -EACCES, 1, evil);
	tx_end(&x, 0);
	t = tx_finish(&x);
	assert_has(t, "[800] exec /usr/bin/python3 -c 'print(1)' (not found first in: "
		      "/usr/local/sbin /usr/local/bin) | rc=0\n");
	assert_has(t,
		   "[801] exec /usr/local/bin/frobnicate (not found in: /usr/local/bin /usr/bin) "
		   "| rc=-2 ENOENT\n");
	assert_has(t, "[802] exec /tmp/evil | rc=-13 EACCES\n");
	tx_close(&x);
}

static void test_scripts_and_repeated_arguments(void **state)
{
	struct tx x;
	const char *t;
	char *script[] = {"/usr/bin/env", "bash", "/home/alice/deploy.sh", "--prod"};
	char longarg[300];
	char *a1[] = {"sudo", "sh", "-c", longarg}, *a2[] = {"sh", "-c", longarg};

	(void)state;
	memset(longarg, 'x', sizeof(longarg) - 1);
	longarg[sizeof(longarg) - 1] = '\0';
	memcpy(longarg, "echo ", 5);
	tx_open(&x, 80, 24);
	tx_exec(&x, 900, "/home/alice/deploy.sh", 0, 4, script);
	tx_exec(&x, 901, "/usr/bin/sudo", 0, 4, a1);
	tx_exec(&x, 902, "/usr/bin/sh", 0, 3, a2);
	tx_end(&x, 0);
	t = tx_finish(&x);
	assert_has(t, "[900] exec /home/alice/deploy.sh (script, run by /usr/bin/env bash) --prod");
	assert_has(t, "[901] exec /usr/bin/sudo sh -c 'echo xxx");
	assert_has(t, "[902] exec /usr/bin/sh -c <the 299-byte argument of [901] above> | rc=0");
	tx_close(&x);
}

static void test_files(void **state)
{
	struct tx x;
	const char *t;
	char *vim[] = {"vim", "app.conf"};
	char buf[64];

	(void)state;
	tx_open(&x, 80, 24);
	tx_exec(&x, 1200, "/usr/bin/vim", 0, 2, vim);
	tx_disk(&x, "vim", "/etc/ld.so.cache", O_RDONLY | O_CLOEXEC, 3);
	tx_disk(&x, "vim", "/usr/lib/x86_64-linux-gnu/libc.so.6", O_RDONLY | O_CLOEXEC, 3);
	tx_disk(&x, "vim", "/usr/share/locale/de/LC_MESSAGES/vim.mo", O_RDONLY, -ENOENT);
	tx_disk(&x, "vim", "/home/alice/.vimrc", O_RDONLY, -ENOENT);
	for (int i = 0; i < 12; i++) {
		snprintf(buf, sizeof(buf), "/home/alice/src/file%d.c", i);
		tx_disk(&x, "vim", buf, O_RDONLY, 3);
	}
	tx_disk(&x, "vim", "/home/alice/app.conf", O_RDONLY, 3);
	tx_disk(&x, "vim", "/home/alice/app.conf", O_WRONLY | O_CREAT | O_TRUNC, 3);
	tx_disk(&x, "vim", "/home/alice/app.conf", O_WRONLY | O_CREAT | O_TRUNC, 3);
	tx_disk(&x, "vim", "/dev/null", O_WRONLY, 3);
	tx_disk(&x, "cat", "/etc/shadow", O_RDONLY, 3);
	tx_disk(&x, "cat", "/root/.ssh/id_ed25519", O_RDONLY, -EACCES);
	tx_disk(&x, "cat", "/root/.ssh/id_ed25519.pub", O_RDONLY, 3);
	tx_disk(&x, "tee", "/etc/sudoers.d/alice", O_WRONLY | O_CREAT | O_APPEND, 3);
	tx_disk(&x, "bash", "/home/alice/.bash_history", O_WRONLY | O_TRUNC, 3);
	tx_end(&x, 0);
	t = tx_finish(&x);
	assert_lacks(t, "ld.so.cache");
	assert_lacks(t, "libc.so");
	assert_lacks(t, "vim.mo");
	assert_lacks(t, ".vimrc");
	assert_lacks(t, "/dev/null");
	assert_has(t, "[read] 12 files in /home/alice/src/ (vim)\n");
	assert_has(t, "[read] /home/alice/app.conf (vim)\n");
	assert_has(t, "[write] /home/alice/app.conf (vim)\n");
	assert_int_equal(count(t, "[write] /home/alice/app.conf"), 1);
	assert_has(t, "[read] /etc/shadow (cat)\n");
	assert_has(t, "[read] /root/.ssh/id_ed25519 (cat) EACCES\n");
	assert_has(t, "[read] /root/.ssh/id_ed25519.pub (cat)\n");
	assert_has(t, "[write] /etc/sudoers.d/alice (tee)\n");
	assert_has(t, "[write] /home/alice/.bash_history (bash)\n");
	tx_close(&x);
}

/* A file named on the command line is not listed again as read by that command. */
static void test_named_files(void **state)
{
	struct tx x;
	const char *t;
	char *cat[] = {"cat", "notes.txt", "./todo.md"};

	(void)state;
	tx_open(&x, 80, 24);
	tx_exec(&x, 1500, "/usr/bin/cat", 0, 3, cat);
	tx_disk_pid(&x, 1500, "cat", "/home/alice/notes.txt", O_RDONLY, 3);
	tx_disk_pid(&x, 1500, "cat", "/home/alice/todo.md", O_RDONLY, 3);
	tx_disk_pid(&x, 1500, "cat", "/etc/motd", O_RDONLY, 3);
	tx_disk_pid(&x, 1501, "other", "/home/alice/notes.txt", O_RDONLY, 3);
	tx_disk_pid(&x, 1500, "cat", "/home/alice/.ssh/id_rsa", O_RDONLY, 3);
	tx_end(&x, 0);
	t = tx_finish(&x);
	assert_lacks(t, "[read] /home/alice/notes.txt (cat)");
	assert_lacks(t, "todo.md (cat)");
	assert_has(t, "[read] /etc/motd (cat)\n");
	assert_has(t, "[read] /home/alice/notes.txt (other)\n");
	assert_has(t, "[read] /home/alice/.ssh/id_rsa (cat)\n");
	tx_close(&x);
}

/* A pause of a minute or more is marked with the time since the start. */
static void test_time_marks(void **state)
{
	struct tx x;
	const char *t;
	char *a[] = {"make"}, *b[] = {"make", "install"};

	(void)state;
	tx_open(&x, 80, 24);
	tx_exec(&x, 1600, "/usr/bin/make", 0, 1, a);
	x.now += 5 * 60 * 1000000000LL;
	tx_exec(&x, 1601, "/usr/bin/make", 0, 2, b);
	tx_end(&x, 0);
	t = tx_finish(&x);
	assert_has(t,
		   "[1600] exec /usr/bin/make | rc=0\n[+5m00s]\n[1601] exec /usr/bin/make install");
	assert_has(t, "[end] exit 0 (exited) after 5m00s\n");
	tx_close(&x);
}

/* Long lines wrapped by the terminal come back whole; padded and drawn rows do not join. */
static void test_long_lines_joined(void **state)
{
	struct tx x;
	const char *t;
	char line[128], buf[512];

	(void)state;
	for (int i = 0; i < 100; i++)
		line[i] = (char)('a' + i % 26);
	line[100] = '\0';
	tx_open(&x, 40, 5);
	/* scrolls off the top, joined from the pushed rows */
	snprintf(buf, sizeof(buf), "%s\none\ntwo\nthree\nfour\nfive\n", line);
	tx_print(&x, buf);
	/* a word ends at the edge, the next starts the next row */
	tx_print(&x, "did you mean this one or maybe the other one\n");
	/* rows padded with spaces to the edge, as ss and ps print them */
	tx_print(&x, "State  Recv-Q  Local                   \nLISTEN 0       127.0.0.1:22\n");
	tx_end(&x, 0);
	t = tx_finish(&x);
	assert_line(t, line);
	assert_line(t, "did you mean this one or maybe the other one");
	assert_line(t, "State  Recv-Q  Local");
	assert_line(t, "LISTEN 0       127.0.0.1:22");
	tx_close(&x);

	/* a screen drawn with cursor addressing keeps its rows apart */
	tx_open(&x, 20, 5);
	tx_print(&x, "\033[1;1HPID USER  COMMAND ab\033[2;1H1   root  process_a+");
	tx_end(&x, 0);
	t = tx_finish(&x);
	assert_line(t, "PID USER  COMMAND ab");
	assert_line(t, "1   root  process_a+");
	tx_close(&x);
}

static void test_utf8(void **state)
{
	struct tx x;
	const char *t;
	char *echo[] = {"echo", "héllo — ✓"};

	(void)state;
	tx_open(&x, 40, 10);
	tx_print(&x, "héllo wörld — 日本語 ✓ e\xcc\x81\n");
	/* a character split across two writes */
	tx_print(&x, "caf\xc3");
	tx_print(&x, "\xa9 ok\n");
	tx_exec(&x, 1300, "/usr/bin/echo", 0, 2, echo);
	tx_end(&x, 0);
	t = tx_finish(&x);
	assert_line(t, "héllo wörld — 日本語 ✓ e\xcc\x81");
	assert_line(t, "café ok");
	assert_has(t, "exec /usr/bin/echo 'héllo — ✓' | rc=0");
	tx_close(&x);
}

static void test_similar_and_identical_runs(void **state)
{
	struct tx x;
	const char *t;
	char buf[64];

	(void)state;
	tx_open(&x, 80, 24);
	for (int i = 1; i <= 300; i++) {
		snprintf(buf, sizeof(buf), "  CC      src/obj_%d.o\n", i);
		tx_print(&x, buf);
	}
	for (int i = 0; i < 50; i++)
		tx_print(&x, "retrying...\n");
	tx_print(&x, "finished\n");
	tx_end(&x, 0);
	t = tx_finish(&x);
	assert_has(t, "  CC      src/obj_1.o\n[… 298 similar lines …]\n  CC      src/obj_300.o\n");
	assert_has(t, "retrying...  [×50]\n");
	assert_line(t, "finished");
	tx_close(&x);
}

/* A long stretch of output keeps its head, its tail and the notable lines between. */
static void test_long_output_head_tail_notable(void **state)
{
	struct tx x;
	const char *t;
	char buf[96];
	char *make[] = {"make"};

	(void)state;
	tx_open(&x, 120, 40);
	tx_exec(&x, 1400, "/usr/bin/make", 0, 1, make);
	for (int i = 0; i < 5000; i++) {
		/* distinct shapes, so that no run folds: letters, not digits */
		snprintf(buf, sizeof(buf), "compiling module %c%c%c\n", 'a' + i % 26,
			 'a' + (i / 26) % 26, 'a' + (i / 676) % 26);
		tx_print(&x, buf);
		if (i == 2500)
			tx_print(&x, "src/x.c:12:3: error: 'foo' undeclared\n");
	}
	tx_end(&x, 0);
	t = tx_finish(&x);
	assert_line(t, "compiling module aaa");			 /* head */
	assert_line(t, "src/x.c:12:3: error: 'foo' undeclared"); /* notable */
	assert_line(t, "compiling module hkh");			 /* the very last (4999) */
	assert_has(t, " lines omitted …]\n");
	assert_true(x.len < 12000);
	assert_true(transcript_raw_bytes(x.t) > 100000);
	tx_close(&x);
}

/* Huge output stays bounded; commands past the limit are still there when new. */
static void test_bounded(void **state)
{
	struct tx x;
	const char *t;
	char *buf = malloc(256 << 10);
	char *cat[] = {"cat", "big"}, path[64];

	(void)state;
	assert_non_null(buf);
	tx_open(&x, 80, 24);
	for (int round = 0; round < 16; round++) {
		size_t n = 0;

		snprintf(path, sizeof(path), "/usr/bin/tool%d", round);
		tx_exec(&x, 5000 + (uint32_t)round, path, 0, 2, cat);
		while (n < (256 << 10) - 200)
			n += (size_t)snprintf(buf + n, 200, "r%d %zx %zx zz\n", round, n * 7919,
					      n * 104729);
		tx_print_n(&x, buf, n);
	}
	tx_end(&x, 0);
	t = tx_finish(&x);
	assert_true(x.len < (2u << 20));
	for (int round = 0; round < 16; round++) {
		snprintf(path, sizeof(path), "exec /usr/bin/tool%d ", round);
		assert_has(t, path);
	}
	free(buf);
	tx_close(&x);
}

/* Random terminal bytes (biased towards escape sequences), random sizes, commands between. */
static void test_random_bytes(void **state)
{
	static const char *const bits[] = {
	    "\033[",  "\033[?1049h",  "\033[?1049l", "\033[2J", "\033[H",
	    "\033[K", "\r",	      "\n",	     "\b",	"\033]0;t\007",
	    "\033c",  "\033[1;31m",   "\xe2\x82",    "\xac",	";",
	    "9",      "\033[10;200H", "\033[5;1r",   "\033M",	"\033[?47h",
	    "\t",     "\033[3J",      "\0338",
	};
	struct tx x;
	char buf[4096], *argv[] = {"x", "y"};
	uint32_t seed = 12345;

	(void)state;
	for (int round = 0; round < 3; round++) {
		tx_open(&x,
			round == 0   ? 80
			: round == 1 ? 7
				     : 160,
			round == 0   ? 24
			: round == 1 ? 3
				     : 50);
		for (int i = 0; i < 200; i++) {
			size_t n = 0, want;

			seed = seed * 1103515245 + 12345;
			want = (seed >> 16) % sizeof(buf);
			while (n + 16 < want) {
				seed = seed * 1103515245 + 12345;
				if ((seed >> 16) % 3 == 0) {
					const char *b =
					    bits[(seed >> 8) % (sizeof(bits) / sizeof(bits[0]))];

					memcpy(buf + n, b, strlen(b));
					n += strlen(b);
				} else {
					buf[n++] = (char)(seed >> 20);
				}
			}
			tx_print_n(&x, buf, n);
			if (i % 37 == 0)
				tx_exec(&x, 7000 + (uint32_t)i % 5, "/usr/bin/x", 0, 2, argv);
			if (i % 101 == 0)
				tx_net(&x, "x", "192.0.2.1", 9, 0);
		}
		tx_end(&x, 0);
		tx_finish(&x);
		assert_has(x.text, "exec /usr/bin/x y");
		assert_has(x.text, "[net] x → 192.0.2.1:9 tcp (ok)");
		tx_close(&x);
	}
}

/* Output that costs the emulator much (clears of a big screen) stops being rendered. */
static void test_budget(void **state)
{
	struct tx x;
	const char *t;
	char *argv[] = {"watch"};

	(void)state;
	tx_open(&x, 500, 200);
	transcript_set_budget(x.t, 20000000);
	tx_print(&x, "first screen\n");
	for (int i = 0; i < 2000; i++)
		tx_print(&x, "x\033[2J\033[Hframe\n");
	tx_exec(&x, 8000, "/usr/bin/watch", 0, 1, argv);
	tx_print(&x, "more\n");
	tx_end(&x, 0);
	t = tx_finish(&x);
	assert_line(t, "first screen");
	assert_has(t,
		   " bytes of output not rendered: the transcript's emulation budget is spent …]");
	assert_has(t, "[8000] exec /usr/bin/watch | rc=0");
	assert_has(t, " bytes of terminal output were not rendered");
	tx_close(&x);
}

static void test_argv_string(void **state)
{
	char *out = NULL;
	char *argv[] = {"grep", "-r", "it's here", "a$b", "tab\there", "", "ünïcode", "x=1,y"};
	char longa[300];
	char *la[] = {longa};

	(void)state;
	assert_int_equal(transcript_argv_string(argv, 8, 0, 0, &out), 0);
	assert_string_equal(out, "grep -r 'it'\\''s here' 'a$b' $'tab\\there' '' ünïcode x=1,y");
	free(out);
	memset(longa, 'a', sizeof(longa) - 1);
	longa[sizeof(longa) - 1] = '\0';
	assert_int_equal(transcript_argv_string(la, 1, 10, 0, &out), 0);
	assert_string_equal(out, "aaaaaaaaaa…(+289 bytes)");
	free(out);
}

static void test_file_kinds(void **state)
{
	(void)state;
	assert_int_equal(transcript_file_kind("/etc/shadow", false), TRANSCRIPT_FILE_SHADOW);
	assert_int_equal(transcript_file_kind("/etc/gshadow", true), TRANSCRIPT_FILE_SHADOW);
	assert_int_equal(transcript_file_kind("/etc/sudoers.d/90-x", false),
			 TRANSCRIPT_FILE_SUDOERS);
	assert_int_equal(transcript_file_kind("/home/a/.ssh/id_rsa", false),
			 TRANSCRIPT_FILE_CREDENTIAL);
	assert_int_equal(transcript_file_kind("/home/a/.ssh/id_rsa.pub", false),
			 TRANSCRIPT_FILE_PLAIN);
	assert_int_equal(transcript_file_kind("/home/a/.ssh/known_hosts", false),
			 TRANSCRIPT_FILE_PLAIN);
	assert_int_equal(transcript_file_kind("/root/.aws/credentials", false),
			 TRANSCRIPT_FILE_CREDENTIAL);
	assert_int_equal(transcript_file_kind("/home/a/.kube/config", false),
			 TRANSCRIPT_FILE_CREDENTIAL);
	assert_int_equal(transcript_file_kind("/home/a/.netrc", false), TRANSCRIPT_FILE_CREDENTIAL);
	assert_int_equal(transcript_file_kind("/home/a/.git-credentials", false),
			 TRANSCRIPT_FILE_CREDENTIAL);
	assert_int_equal(transcript_file_kind("/usr/lib/x86_64-linux-gnu/libc.so.6", false),
			 TRANSCRIPT_FILE_NOISE);
	assert_int_equal(transcript_file_kind("/etc/passwd", false), TRANSCRIPT_FILE_NOISE);
	assert_int_equal(transcript_file_kind("/etc/passwd", true), TRANSCRIPT_FILE_ACCOUNTS);
	assert_int_equal(transcript_file_kind("/root/.bash_history", true),
			 TRANSCRIPT_FILE_HISTORY);
	assert_int_equal(transcript_file_kind("/root/.bash_history", false), TRANSCRIPT_FILE_PLAIN);
	assert_int_equal(transcript_file_kind("/etc/cron.d/job", true),
			 TRANSCRIPT_FILE_PERSISTENCE);
	assert_int_equal(transcript_file_kind("/root/.ssh/authorized_keys", true),
			 TRANSCRIPT_FILE_PERSISTENCE);
	assert_int_equal(transcript_file_kind("/dev/null", true), TRANSCRIPT_FILE_NOISE);
	assert_int_equal(transcript_file_kind("/home/a/notes.txt", true), TRANSCRIPT_FILE_PLAIN);
	assert_true(transcript_open_writes(O_WRONLY));
	assert_true(transcript_open_writes(O_RDONLY | O_CREAT));
	assert_false(transcript_open_writes(O_RDONLY | O_CLOEXEC));
}

static void check_chunks(const char *text, size_t len, size_t max)
{
	size_t *off = NULL, n = 0;

	assert_int_equal(transcript_chunks(text, len, max, &off, &n), 0);
	assert_non_null(off);
	assert_int_equal(off[0], 0);
	assert_int_equal(off[n], len);
	for (size_t i = 0; i < n; i++) {
		size_t a = off[i], b = off[i + 1];

		assert_true(b > a);
		assert_true(b - a <= max);
		/* at a line end, unless a line alone is longer than max */
		if (text[b - 1] != '\n') {
			const char *nl = memchr(text + a, '\n', b - a);

			assert_true(b == len || !nl);
		}
		/* never inside a UTF-8 character */
		if (b < len)
			assert_true(((unsigned char)text[b] & 0xc0) != 0x80);
	}
	free(off);
}

static void test_chunks(void **state)
{
	const char *text = "line one\nline two\nline three is longer\nlast\n";
	char big[5000];
	size_t *off = NULL, n = 0, pos = 0;

	(void)state;
	assert_int_equal(transcript_chunks(text, strlen(text), 25, &off, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(off[1], 18); /* "line one\nline two\n" */
	assert_int_equal(off[2], 39); /* "line three is longer\n" */
	free(off);
	check_chunks(text, strlen(text), 20);
	check_chunks(text, strlen(text), 1000);
	check_chunks(text, strlen(text), 5); /* every line cut */
	/* a long line of multi-byte characters */
	while (pos + 3 < sizeof(big)) {
		memcpy(big + pos, pos % 301 == 0 ? "\n" : "€", pos % 301 == 0 ? 1 : 3);
		pos += pos % 301 == 0 ? 1 : 3;
	}
	check_chunks(big, pos, 100);
	check_chunks(big, pos, 7);
	assert_int_equal(transcript_chunks("", 0, 10, &off, &n), 0);
	assert_int_equal(n, 0);
	free(off);
	assert_int_equal(transcript_chunks(text, strlen(text), 0, &off, &n), -EINVAL);
}

static void test_misuse(void **state)
{
	struct transcript *t = NULL;
	Sessrec__Event ev = SESSREC__EVENT__INIT;
	const char *text;
	size_t len;

	(void)state;
	transcript_free(NULL);
	assert_int_equal(transcript_new(&t, 0, 0), 0);
	/* events without a start, of no type, or empty */
	assert_int_equal(transcript_add(t, &ev), 0);
	assert_int_equal(transcript_add(t, NULL), -EINVAL);
	assert_int_equal(transcript_finish(t, &text, &len), 0);
	assert_int_equal(len, 0);
	assert_string_equal(text, "");
	assert_int_equal(transcript_add(t, &ev), -EINVAL); /* finished */
	assert_int_equal(transcript_finish(t, &text, &len), 0);
	transcript_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_header_and_end),
	    cmocka_unit_test(test_progress_bar_final_state),
	    cmocka_unit_test(test_colours_vanish),
	    cmocka_unit_test(test_fullscreen_final_screen),
	    cmocka_unit_test(test_fullscreen_primary_redraw),
	    cmocka_unit_test(test_clear_keeps_what_was_shown),
	    cmocka_unit_test(test_scrolling_each_line_once),
	    cmocka_unit_test(test_prompt_waits_until_settled),
	    cmocka_unit_test(test_repeated_exec_collapse),
	    cmocka_unit_test(test_lost_marker),
	    cmocka_unit_test(test_commands_and_destinations_kept),
	    cmocka_unit_test(test_failed_exec_and_path_search),
	    cmocka_unit_test(test_scripts_and_repeated_arguments),
	    cmocka_unit_test(test_files),
	    cmocka_unit_test(test_named_files),
	    cmocka_unit_test(test_time_marks),
	    cmocka_unit_test(test_long_lines_joined),
	    cmocka_unit_test(test_utf8),
	    cmocka_unit_test(test_similar_and_identical_runs),
	    cmocka_unit_test(test_long_output_head_tail_notable),
	    cmocka_unit_test(test_bounded),
	    cmocka_unit_test(test_random_bytes),
	    cmocka_unit_test(test_budget),
	    cmocka_unit_test(test_argv_string),
	    cmocka_unit_test(test_file_kinds),
	    cmocka_unit_test(test_chunks),
	    cmocka_unit_test(test_misuse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
