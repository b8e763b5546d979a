/*
 * The CLI's command-line helpers: labels, kinds, numbers, exit statuses, the
 * replay clock, the end-of-input sequence and the PATH lookup of `run`.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../cli/cli.h"

/* ------------------------------------------------------------ labels */

static void test_labels_ok(void **state)
{
	struct cli_labels l = {0};
	const char *why = NULL;

	assert_int_equal(cli_labels_add(&l, "team=infra", &why), 0);
	assert_int_equal(cli_labels_add(&l, "ticket=", &why), 0);
	assert_int_equal(cli_labels_add(&l, "k8s.io/app:x_y-z=a=b c", &why), 0);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.v[0].key, "team");
	assert_string_equal(l.v[0].value, "infra");
	assert_string_equal(l.v[1].key, "ticket");
	assert_string_equal(l.v[1].value, "");
	/* Only the first '=' splits; the value keeps the rest, spaces included. */
	assert_string_equal(l.v[2].key, "k8s.io/app:x_y-z");
	assert_string_equal(l.v[2].value, "a=b c");
	cli_labels_free(&l);
	assert_null(l.v);
	assert_int_equal(l.n, 0);
	cli_labels_free(&l);
	cli_labels_free(NULL);
}

static void test_labels_bad(void **state)
{
	static const struct {
		const char *arg;
		int err;
		const char *why;
	} cases[] = {
	    {"novalue", -EINVAL, "expected KEY=VALUE"},
	    {"", -EINVAL, "expected KEY=VALUE"},
	    {"=v", -EINVAL, "the key is empty"},
	    {"a b=c", -EINVAL, "a key may only hold letters, digits and . _ - / :"},
	    {"é=c", -EINVAL, "a key may only hold letters, digits and . _ - / :"},
	    {"a=line\nbreak", -EINVAL, "the value holds a control character"},
	    {"a=\033[31m", -EINVAL, "the value holds a control character"},
	    {"a=\x7f", -EINVAL, "the value holds a control character"},
	};
	struct cli_labels l = {0};
	char key[CLI_LABEL_KEY_MAX + 8], val[CLI_LABEL_VALUE_MAX + 8];
	const char *why;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		why = NULL;
		assert_int_equal(cli_labels_add(&l, cases[i].arg, &why), cases[i].err);
		assert_non_null(why);
		assert_string_equal(why, cases[i].why);
	}
	assert_int_equal(l.n, 0);

	/* The limits: exactly at them is fine, one more byte is not. */
	memset(key, 'k', CLI_LABEL_KEY_MAX);
	snprintf(key + CLI_LABEL_KEY_MAX, 8, "=v");
	assert_int_equal(cli_labels_add(&l, key, &why), 0);
	memset(key, 'q', CLI_LABEL_KEY_MAX + 1);
	snprintf(key + CLI_LABEL_KEY_MAX + 1, 8, "=v");
	assert_int_equal(cli_labels_add(&l, key, &why), -EINVAL);
	assert_string_equal(why, "the key is longer than 128 bytes");
	snprintf(val, sizeof(val), "v=");
	memset(val + 2, 'x', CLI_LABEL_VALUE_MAX);
	val[2 + CLI_LABEL_VALUE_MAX] = '\0';
	assert_int_equal(cli_labels_add(&l, val, &why), 0);
	val[0] = 'w';
	val[2 + CLI_LABEL_VALUE_MAX] = 'x';
	val[3 + CLI_LABEL_VALUE_MAX] = '\0';
	assert_int_equal(cli_labels_add(&l, val, &why), -EINVAL);
	assert_string_equal(why, "the value is longer than 512 bytes");
	assert_int_equal(l.n, 2);
	cli_labels_free(&l);
}

static void test_labels_duplicate_and_count(void **state)
{
	struct cli_labels l = {0};
	const char *why;
	char arg[32];

	assert_int_equal(cli_labels_add(&l, "a=1", &why), 0);
	assert_int_equal(cli_labels_add(&l, "a=2", &why), -EEXIST);
	assert_string_equal(why, "this key was given already");
	/* A key that is a prefix of another is another key. */
	assert_int_equal(cli_labels_add(&l, "ab=1", &why), 0);
	assert_string_equal(l.v[0].value, "1");
	cli_labels_free(&l);

	for (int i = 0; i < CLI_LABELS_MAX; i++) {
		snprintf(arg, sizeof(arg), "k%d=v", i);
		assert_int_equal(cli_labels_add(&l, arg, &why), 0);
	}
	assert_int_equal(cli_labels_add(&l, "one=more", &why), -E2BIG);
	assert_string_equal(why, "more than 64 labels");
	assert_int_equal(l.n, CLI_LABELS_MAX);
	cli_labels_free(&l);
}

/* ------------------------------------------------------------ kinds, numbers */

static void test_kind(void **state)
{
	assert_int_equal(cli_parse_kind("local"), 0);
	assert_int_equal(cli_parse_kind("ssh"), 0);
	assert_int_equal(cli_parse_kind("k8s"), 0);
	assert_int_equal(cli_parse_kind(""), -EINVAL);
	assert_int_equal(cli_parse_kind("Local"), -EINVAL);
	assert_int_equal(cli_parse_kind("db"), -EINVAL);
	assert_int_equal(cli_parse_kind("ssh "), -EINVAL);
}

static void test_parse_double(void **state)
{
	double v = -1;

	assert_int_equal(cli_parse_double("1", 0, 1000, &v), 0);
	assert_true(v == 1.0);
	assert_int_equal(cli_parse_double("0", 0, 1000, &v), 0);
	assert_true(v == 0.0);
	assert_int_equal(cli_parse_double("2.5", 0, 1000, &v), 0);
	assert_true(v == 2.5);
	assert_int_equal(cli_parse_double(".5", 0, 1000, &v), 0);
	assert_true(v == 0.5);
	assert_int_equal(cli_parse_double("1e2", 0, 1000, &v), 0);
	assert_true(v == 100.0);
	assert_int_equal(cli_parse_double("1000", 0, 1000, &v), 0);

	v = 42;
	assert_int_equal(cli_parse_double("1000.5", 0, 1000, &v), -ERANGE);
	assert_int_equal(cli_parse_double("-1", 0, 1000, &v), -ERANGE);
	assert_int_equal(cli_parse_double("1e999", 0, 1000, &v), -EINVAL); /* inf */
	assert_int_equal(cli_parse_double("", 0, 1000, &v), -EINVAL);
	assert_int_equal(cli_parse_double(" 1", 0, 1000, &v), -EINVAL);
	assert_int_equal(cli_parse_double("1 ", 0, 1000, &v), -EINVAL);
	assert_int_equal(cli_parse_double("1x", 0, 1000, &v), -EINVAL);
	assert_int_equal(cli_parse_double("abc", 0, 1000, &v), -EINVAL);
	assert_int_equal(cli_parse_double("inf", 0, 1000, &v), -EINVAL);
	assert_int_equal(cli_parse_double("nan", 0, 1000, &v), -EINVAL);
	assert_int_equal(cli_parse_double("0x10", 0, 1000, &v), -EINVAL);
	assert_int_equal(cli_parse_double("1..2", 0, 1000, &v), -EINVAL);
	assert_int_equal(cli_parse_double("-", 0, 1000, &v), -EINVAL);
	/* Nothing is written on failure. */
	assert_true(v == 42);
}

/* ------------------------------------------------------------ exit status */

static int wait_for(pid_t pid)
{
	int st;

	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return st;
}

static void test_exit_status(void **state)
{
	pid_t pid;

	pid = fork();
	if (pid == 0)
		_exit(3);
	assert_int_equal(cli_exit_status(wait_for(pid)), 3);
	pid = fork();
	if (pid == 0)
		_exit(0);
	assert_int_equal(cli_exit_status(wait_for(pid)), 0);
	pid = fork();
	if (pid == 0)
		_exit(255);
	assert_int_equal(cli_exit_status(wait_for(pid)), 255);
	pid = fork();
	if (pid == 0) {
		raise(SIGKILL);
		_exit(0);
	}
	assert_int_equal(cli_exit_status(wait_for(pid)), 128 + SIGKILL);
	pid = fork();
	if (pid == 0) {
		raise(SIGTERM);
		_exit(0);
	}
	assert_int_equal(cli_exit_status(wait_for(pid)), 128 + SIGTERM);
}

/* ------------------------------------------------------------ replay clock */

static void test_play_gap(void **state)
{
	assert_int_equal(cli_play_gap_ns(0, 1500, 1.0, 0), 1500000000ull);
	assert_int_equal(cli_play_gap_ns(1000, 2500, 1.0, 0), 1500000000ull);
	assert_int_equal(cli_play_gap_ns(0, 1500, 2.0, 0), 750000000ull);
	assert_int_equal(cli_play_gap_ns(0, 1500, 0.5, 0), 3000000000ull);
	/* The cap applies to the recorded gap, before the speed. */
	assert_int_equal(cli_play_gap_ns(0, 60000, 1.0, 2.0), 2000000000ull);
	assert_int_equal(cli_play_gap_ns(0, 60000, 2.0, 2.0), 1000000000ull);
	assert_int_equal(cli_play_gap_ns(0, 1000, 1.0, 2.0), 1000000000ull);
	/* No delays at speed 0, nor when time does not move forward. */
	assert_int_equal(cli_play_gap_ns(0, 60000, 0, 0), 0);
	assert_int_equal(cli_play_gap_ns(500, 500, 1.0, 0), 0);
	assert_int_equal(cli_play_gap_ns(900, 500, 1.0, 0), 0);
	/* Absurd gaps stay defined: at most a year. */
	assert_int_equal(cli_play_gap_ns(0, UINT64_MAX, 0.001, 0), 365ull * 86400 * 1000000000ull);
}

/* ------------------------------------------------------------ end of input */

static void test_eof_seq(void **state)
{
	struct termios t = {0};
	char out[2];

	t.c_lflag = ICANON | ECHO;
	t.c_cc[VEOF] = 0x04;
	assert_int_equal(cli_eof_seq(&t, false, out), 1);
	assert_int_equal(out[0], 0x04);
	/* A partial line: the first VEOF only hands it over, the second is EOF. */
	assert_int_equal(cli_eof_seq(&t, true, out), 2);
	assert_int_equal(out[0], 0x04);
	assert_int_equal(out[1], 0x04);
	t.c_cc[VEOF] = 0x1a;
	assert_int_equal(cli_eof_seq(&t, false, out), 1);
	assert_int_equal(out[0], 0x1a);
	/* Raw mode (readline): one ^D on its own. */
	t.c_lflag = 0;
	assert_int_equal(cli_eof_seq(&t, true, out), 1);
	t.c_cc[VEOF] = _POSIX_VDISABLE;
	assert_int_equal(cli_eof_seq(&t, false, out), 1);
	assert_int_equal(out[0], 0x04);
}

/* ------------------------------------------------------------ PATH lookup */

static void make_file(const char *path, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "#!/bin/sh\n", 10), 10);
	assert_int_equal(close(fd), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static void test_path_lookup(void **state)
{
	char tmpl[] = "/tmp/test_cli_args.XXXXXX";
	char *dir = mkdtemp(tmpl), path[512], p[256], want[256], cwd[512];
	char *out = NULL;

	assert_non_null(dir);
	snprintf(p, sizeof(p), "%s/a", dir);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/b", dir);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/c", dir);
	assert_int_equal(mkdir(p, 0755), 0);
	/* a/tool is a directory, b/tool has no x bit (not even root execs it), c/tool fits. */
	snprintf(p, sizeof(p), "%s/a/tool", dir);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/b/tool", dir);
	make_file(p, 0644);
	snprintf(p, sizeof(p), "%s/c/tool", dir);
	make_file(p, 0755);
	snprintf(path, sizeof(path), "%s/none:%s/a:%s/b:%s/c", dir, dir, dir, dir);

	assert_int_equal(cli_path_lookup("tool", path, &out), 0);
	snprintf(want, sizeof(want), "%s/c/tool", dir);
	assert_string_equal(out, want);
	free(out);
	out = NULL;
	assert_int_equal(cli_path_lookup("missing", path, &out), -ENOENT);
	assert_null(out);
	assert_int_equal(cli_path_lookup("", path, &out), -ENOENT);

	/* With a '/', no search: execvp would not search either. */
	assert_int_equal(cli_path_lookup("./tool", path, &out), 0);
	assert_string_equal(out, "./tool");
	free(out);
	assert_int_equal(cli_path_lookup("/no/such/file", path, &out), 0);
	assert_string_equal(out, "/no/such/file");
	free(out);

	/* An empty entry is the current directory. */
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(p, sizeof(p), "%s/c", dir);
	assert_int_equal(chdir(p), 0);
	assert_int_equal(cli_path_lookup("tool", "/nonexistent:", &out), 0);
	assert_string_equal(out, "./tool");
	free(out);
	assert_int_equal(cli_path_lookup("tool", ":/nonexistent", &out), 0);
	assert_string_equal(out, "./tool");
	free(out);
	assert_int_equal(chdir(cwd), 0);

	/* No PATH: the default search path. */
	assert_int_equal(cli_path_lookup("sh", NULL, &out), 0);
	assert_string_equal(out, "/bin/sh");
	free(out);

	snprintf(p, sizeof(p), "%s/c/tool", dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/b/tool", dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/a/tool", dir);
	rmdir(p);
	for (const char *d = "abc"; *d; d++) {
		snprintf(p, sizeof(p), "%s/%c", dir, *d);
		rmdir(p);
	}
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_labels_ok),
	    cmocka_unit_test(test_labels_bad),
	    cmocka_unit_test(test_labels_duplicate_and_count),
	    cmocka_unit_test(test_kind),
	    cmocka_unit_test(test_parse_double),
	    cmocka_unit_test(test_exit_status),
	    cmocka_unit_test(test_play_gap),
	    cmocka_unit_test(test_eof_seq),
	    cmocka_unit_test(test_path_lookup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
