/*
 * The offline summarizer: a summary and a risk assessment from the recorded
 * facts of a session (its events), with no model and no network.
 *
 * What it looks for (each finding gives a reason and the command behind it):
 *   reverse shell       nc/ncat -e/-c/--exec/--sh-exec, socat with exec:/system:,
 *                       bash -i >& /dev/tcp/..., python/perl/ruby/php/node one-liners
 *                       with a socket and pty/dup2/subprocess/exec, mkfifo + nc/telnet,
 *                       netcat or telnet piped into a shell, a shell started by (or
 *                       replacing) a process that made a network connection
 *   download executed   curl/wget writing to stdout in the same pipeline as a shell or
 *                       interpreter that reads its program from stdin (one of the 3
 *                       previous children of the same parent, started within 1 s, the
 *                       source with the lower pid: a shell forks left to right);
 *                       sh -c "$(curl ...)" (the parent's next child after such a curl,
 *                       within 30 s, given a script of several lines or 40+ bytes); the
 *                       same as text (sh -c arguments, the initial command, typed
 *                       lines); a file written by curl/wget and then executed
 *   decode and execute  base64/base32/basenc -d, openssl base64 -d, xxd -r piped into a
 *                       shell; python/perl/... -c code that decodes and execs; a file
 *                       written by a decoder (echo ... | base64 -d > f) then executed
 *   credentials         opens of private SSH keys, cloud/cluster/registry credentials,
 *                       .netrc, .git-credentials, ... by a program that is not their
 *                       own client (ssh reading ~/.ssh/id_* is normal, cat is not);
 *                       /etc/sudoers read; refused attempts count less
 *   password hashes     /etc/shadow, /etc/gshadow opened by other than the
 *                       authentication tools (sudo, su, passwd, sshd, ...)
 *   privilege changes   sudo/su/doas/pkexec/runuser; chmod setting setuid/setgid and
 *                       setcap; user and group management (useradd, usermod -aG sudo,
 *                       passwd, chpasswd, visudo, ...); writes to sudoers, passwd,
 *                       shadow, group, PAM by other than those tools
 *   history clearing    history -c, unset HISTFILE, HISTFILE=/dev/null, HISTSIZE=0,
 *                       set +o history, > ~/.bash_history (builtins: found in the
 *                       terminal text and in sh -c arguments); rm/shred/truncate of a
 *                       history file, ln -sf /dev/null ~/.bash_history, a history file
 *                       written by other than a shell
 *   unusual ports       outbound connections (not loopback) to a port outside
 *                       summary_usual_ports (listed there); a port scan (20+ ports on one host or
 * 20+ hosts on one port) also                programs run from /tmp, /var/tmp, /dev/shm; writes to
 * cron, systemd units, shell rc files, authorized_keys, ld.so.preload
 *
 * Scoring, deterministic: every finding has a category; a category scores its
 * heaviest finding's weight plus an increment for each further distinct finding
 * (capped); the risk score is the sum over categories, at most 100.
 *
 *   category                        weight  each further  cap of further
 *   reverse shell                       60        +5           +10  (a shell's own connect 45)
 *   download executed                   50        +5           +10
 *   decode and execute                  50        +5           +10
 *   password hashes read                50        +5           +10  (refused 25)
 *   credentials read                    40        +5           +10  (sudoers 30, refused 25)
 *   history clearing                    40        +5           +10
 *   privileged files written            40        +5           +10  (refused 25)
 *   setuid/setgid, capabilities         35        +5           +10
 *   port scan                           30        +0            +0
 *   account changes                     25        +5           +10  (admin group 35)
 *   persistence                         25        +5           +10
 *   unusual outbound port               15        +5           +15
 *   program run from a temp dir         15        +5           +10
 *   sudo, su, doas, ran as root         10        +0            +0  (root in a user's session)
 *
 * Level: 0-19 low, 20-49 medium, 50-79 high, 80-100 critical; needs_review
 * from medium up. One reverse shell, download or decode-and-execute alone is
 * high; any two strong findings together are critical.
 */
#include "transcript.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

#define SUMMARY_PIDS	     16384		  /* processes remembered, by pid (direct-mapped) */
#define SUMMARY_RECENT	     256		  /* recent commands looked at for pipelines */
#define SUMMARY_PIPE_NS	     (1LL * 1000000000LL) /* members of one pipeline start this close */
#define SUMMARY_PIPE_MEMBERS 3 /* ... and are among the last children of their parent */
#define SUMMARY_SUBST_NS     (30LL * 1000000000LL) /* sh -c "$(curl ...)" after its curl */
#define SUMMARY_FIFO_NS	     (60LL * 1000000000LL) /* mkfifo, then nc */
#define SUMMARY_FILES_MAX    4096		   /* files written, remembered */
#define SUMMARY_DESTS_MAX    4096		   /* distinct destinations */
#define SUMMARY_IDX	     8192 /* slots of the files' and destinations' indexes */
#define SUMMARY_PROGS_MAX    512  /* distinct programs counted */
#define SUMMARY_FINDINGS_MAX 256
#define SUMMARY_REASONS_MAX  24
#define SUMMARY_COI_MAX	     20
#define SUMMARY_LINE_MAX     1024	   /* terminal text line scanned */
#define SUMMARY_SCRIPT_LINES 512	   /* lines of an sh -c script looked at */
#define SUMMARY_TEXT_MAX     (64ULL << 20) /* terminal bytes scanned at most */
#define SUMMARY_CMD_MAX	     400	   /* a command line in a reason */
#define SUMMARY_SCAN_PORTS   20

/*
 * Outbound ports that raise nothing: ssh 22, dns 53, http 80, https 443, ntp
 * 123, and common services: ftp 20/21, smtp 25/465/587, dhcp 67/68, kerberos
 * 88, pop3 110/995, imap 143/993, ldap 389/636, dns-over-tls 853, rsync 873,
 * mssql 1433, oracle 1521, nfs 2049, etcd 2379/2380, squid 3128, mysql 3306,
 * postgres 5432, mdns 5353, amqp 5671/5672, redis 6379, kubernetes 6443,
 * http-alt 8080/8443, kafka 9092, elasticsearch 9200, git 9418, memcached
 * 11211, mongodb 27017.
 */
static const uint32_t summary_usual_ports[] = {
    20,	  21,	22,   25,   53,	  67,	68,   80,   88,	  110,	123,  143,   389,   443,
    465,  587,	636,  853,  873,  993,	995,  1433, 1521, 2049, 2379, 2380,  3128,  3306,
    5353, 5432, 5671, 5672, 6379, 6443, 8080, 8443, 9092, 9200, 9418, 11211, 27017,
};

enum summary_cat {
	SUMMARY_CAT_REVERSE = 0,
	SUMMARY_CAT_DOWNLOAD,
	SUMMARY_CAT_DECODE,
	SUMMARY_CAT_SHADOW,
	SUMMARY_CAT_CREDENTIALS,
	SUMMARY_CAT_HISTORY,
	SUMMARY_CAT_PRIV_FILES,
	SUMMARY_CAT_SETUID,
	SUMMARY_CAT_SCAN,
	SUMMARY_CAT_ACCOUNTS,
	SUMMARY_CAT_PERSISTENCE,
	SUMMARY_CAT_PORT,
	SUMMARY_CAT_TMP_EXEC,
	SUMMARY_CAT_SUDO,
	SUMMARY_CAT_N,
};

static const struct {
	const char *title; /* for a title: "Reverse shell" */
	uint32_t weight, step, step_max;
} summary_cats[SUMMARY_CAT_N] = {
    [SUMMARY_CAT_REVERSE] = {"Reverse shell", 60, 5, 10},
    [SUMMARY_CAT_DOWNLOAD] = {"Downloaded code executed", 50, 5, 10},
    [SUMMARY_CAT_DECODE] = {"Decoded payload executed", 50, 5, 10},
    [SUMMARY_CAT_SHADOW] = {"Password hashes read", 50, 5, 10},
    [SUMMARY_CAT_CREDENTIALS] = {"Credentials read", 40, 5, 10},
    [SUMMARY_CAT_HISTORY] = {"Shell history cleared", 40, 5, 10},
    [SUMMARY_CAT_PRIV_FILES] = {"Privileged files changed", 40, 5, 10},
    [SUMMARY_CAT_SETUID] = {"Setuid or capabilities granted", 35, 5, 10},
    [SUMMARY_CAT_SCAN] = {"Port scan", 30, 0, 0},
    [SUMMARY_CAT_ACCOUNTS] = {"Accounts changed", 25, 5, 10},
    [SUMMARY_CAT_PERSISTENCE] = {"Persistence set up", 25, 5, 10},
    [SUMMARY_CAT_PORT] = {"Connections on unusual ports", 15, 5, 15},
    [SUMMARY_CAT_TMP_EXEC] = {"Programs run from temporary directories", 15, 5, 10},
    [SUMMARY_CAT_SUDO] = {"Privileged commands", 10, 0, 0},
};

/* What a program is, for the detectors (bits). */
enum {
	SUMMARY_K_SHELL = 1u << 0,     /* sh, bash, ... */
	SUMMARY_K_INTERP = 1u << 1,    /* python, perl, ruby, php, node */
	SUMMARY_K_STDIN = 1u << 2,     /* a shell or interpreter reading its program from stdin */
	SUMMARY_K_DL = 1u << 3,	       /* curl, wget */
	SUMMARY_K_DL_STDOUT = 1u << 4, /* ... writing what it fetched to stdout */
	SUMMARY_K_DECODE = 1u << 5,    /* base64 -d, xxd -r, ... */
	SUMMARY_K_NETCAT = 1u << 6,    /* nc, ncat, socat, telnet */
	SUMMARY_K_WRAPPER = 1u << 7,   /* sudo, env, nohup, ...: runs another program */
	SUMMARY_K_SUBST = 1u << 8,     /* a shell given a script with -c */
	SUMMARY_K_MKFIFO = 1u << 9,
	SUMMARY_K_NET = 1u << 10,    /* made a network connection (set later) */
	SUMMARY_K_FILTER = 1u << 11, /* passes data along in a pipeline: tee, cat, zcat, ... */
};

struct summary_proc {
	uint32_t pid, ppid, eff_ppid;
	uint32_t kind;
	int64_t ns;
	size_t ev; /* its command event */
	bool used;
};

struct summary_file {
	char *path;
	uint32_t writer; /* pid */
	char prog[20];
	bool executed;
};

struct summary_dest {
	char *addr;
	uint32_t port;
	char proto[8];
	char prog[20];
	uint64_t ok, failed;
};

struct summary_prog {
	char name[32];
	uint64_t n;
};

struct summary_finding {
	enum summary_cat cat;
	uint32_t weight;
	uint64_t key;
	char *reason;
	char *cmd; /* the command line or typed text behind it, may be NULL */
};

struct summary_ctx {
	const Sessrec__Event *const *ev;
	size_t n;
	const Sessrec__SessionStart *start;
	const Sessrec__SessionEnd *end;
	int64_t first_ns, last_ns;
	struct summary_proc *procs; /* SUMMARY_PIDS */
	struct summary_proc recent[SUMMARY_RECENT];
	size_t recent_n, recent_next;
	struct summary_file *files;
	size_t n_files;
	uint32_t *files_idx; /* SUMMARY_IDX slots: position in files + 1, 0 free */
	struct summary_dest *dests;
	size_t n_dests;
	uint32_t *dests_idx;
	struct summary_prog *progs;
	size_t n_progs;
	struct summary_finding *found;
	size_t n_found;
	uint64_t execs, exec_failed, exec_missing, conns, opens_written, print_bytes, lost_bytes,
	    lost_events;
	uint32_t first_uid;
	bool have_uid, root_seen, sudo_seen;
	int64_t last_fifo_ns;
	/* terminal text, line by line */
	char line[SUMMARY_LINE_MAX];
	size_t line_len;
	int esc;
	uint64_t text_scanned;
	int err;
};

/* ------------------------------------------------------------ helpers */

static uint64_t summary_hash(const char *s, uint64_t h)
{
	for (; s && *s; s++) {
		h ^= (uint8_t)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static const char *summary_base(const char *p)
{
	const char *s;

	if (!p)
		return "";
	s = strrchr(p, '/');
	p = s ? s + 1 : p;
	return *p == '-' ? p + 1 : p; /* "-bash": a login shell */
}

static bool summary_in(const char *s, const char *const *list)
{
	for (size_t i = 0; list[i]; i++)
		if (strcmp(s, list[i]) == 0)
			return true;
	return false;
}

static bool summary_prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

/* A command line for a reason: quoted, cut. */
static char *summary_cmdline(struct summary_ctx *x, const Sessrec__Command *c)
{
	char *out = NULL;
	const char *path = c->path && c->path[0] ? c->path : c->program;

	if (c->n_argv) {
		if (transcript_argv_string(c->argv, c->n_argv, 160, SUMMARY_CMD_MAX, &out))
			x->err = -ENOMEM;
	} else {
		out = strdup(path ? path : "?");
		if (!out)
			x->err = -ENOMEM;
	}
	return out;
}

static char *summary_fmt(struct summary_ctx *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static char *summary_fmt(struct summary_ctx *x, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0) {
		x->err = -ENOMEM;
		return NULL;
	}
	return s;
}

/*
 * Record a finding; the same key again (one thing seen two ways) is kept
 * once, with the heavier weight. Takes ownership of reason and cmd.
 */
static void summary_find(struct summary_ctx *x, enum summary_cat cat, uint32_t weight,
			 const char *key, char *reason, char *cmd)
{
	uint64_t h = summary_hash(key, 0xcbf29ce484222325ULL ^ (uint64_t)cat);
	struct summary_finding *f;

	if (!reason) {
		free(cmd);
		return;
	}
	for (size_t i = 0; i < x->n_found; i++) {
		f = &x->found[i];
		if (f->cat == cat && f->key == h) {
			if (weight > f->weight)
				f->weight = weight;
			free(reason);
			free(cmd);
			return;
		}
	}
	if (x->n_found == SUMMARY_FINDINGS_MAX) {
		free(reason);
		free(cmd);
		return;
	}
	f = &x->found[x->n_found++];
	f->cat = cat;
	f->weight = weight;
	f->key = h;
	f->reason = reason;
	f->cmd = cmd;
}

/* The finding for a command event: reason "<what>: <command line>". */
static void summary_find_cmd(struct summary_ctx *x, enum summary_cat cat, uint32_t weight,
			     const char *what, const Sessrec__Command *c, const char *key)
{
	char *cmd = summary_cmdline(x, c);
	char k[64];

	if (!cmd)
		return;
	if (!key) {
		snprintf(k, sizeof(k), "pid:%u", c->pid);
		key = k;
	}
	summary_find(x, cat, weight, key, summary_fmt(x, "%s: %s", what, cmd), cmd);
}

static struct summary_proc *summary_proc(struct summary_ctx *x, uint32_t pid)
{
	struct summary_proc *p = &x->procs[pid % SUMMARY_PIDS];

	return p->used && p->pid == pid ? p : NULL;
}

static const Sessrec__Command *summary_cmd_of(struct summary_ctx *x, const struct summary_proc *p)
{
	return p ? x->ev[p->ev]->command : NULL;
}

/* ------------------------------------------------------------ what a command is */

static const char *const summary_shells[] = {
    "sh", "bash", "dash", "zsh", "ksh", "ash", "mksh", "fish", "tcsh", "csh", "busybox", NULL,
};
static const char *const summary_wrappers[] = {
    "sudo",   "doas",	 "env",	 "nohup", "timeout", "nice",	"ionice",   "stdbuf",
    "setsid", "command", "exec", "time",  "chroot",  "runuser", "unbuffer", NULL,
};

static const char *const summary_filters[] = {
    "tee",   "cat",  "gunzip", "zcat",	  "gzip", "xz", "unxz", "xzcat", "bzip2",    "bunzip2",
    "bzcat", "zstd", "unzstd", "zstdcat", "sed",  "tr", "dd",	"pv",	 "dos2unix", NULL,
};

static bool summary_is_interp(const char *b)
{
	static const char *const names[] = {"perl", "ruby", "php", "node", "nodejs", "lua", NULL};

	if (summary_prefix(b, "python") || summary_prefix(b, "perl5") || summary_prefix(b, "php"))
		return true;
	return summary_in(b, names);
}

/* The index in argv of the program a wrapper (sudo, env, timeout, ...) runs. */
static size_t summary_eff(const Sessrec__Command *c)
{
	size_t i = 0;

	while (i < c->n_argv && c->argv[i] &&
	       summary_in(summary_base(c->argv[i]), summary_wrappers)) {
		const char *w = summary_base(c->argv[i]);
		bool takes_value =
		    strcmp(w, "sudo") == 0 || strcmp(w, "doas") == 0 || strcmp(w, "runuser") == 0;

		i++;
		while (i < c->n_argv && c->argv[i]) {
			const char *a = c->argv[i];

			if (strcmp(a, "--") == 0) {
				i++;
				break;
			}
			if (strcmp(w, "env") == 0 && strchr(a, '=') && a[0] != '-') {
				i++;
				continue;
			}
			if (a[0] != '-') {
				/* timeout DURATION, nice/ionice values, chroot NEWROOT */
				if ((strcmp(w, "timeout") == 0 || strcmp(w, "chroot") == 0) &&
				    i + 1 < c->n_argv && strchr("0123456789/", a[0]))
					i++;
				break;
			}
			if (takes_value && strlen(a) == 2 && strchr("ugCDhprtU", a[1]))
				i++;
			else if ((strcmp(w, "nice") == 0 || strcmp(w, "ionice") == 0) &&
				 strlen(a) == 2 && strchr("ncp", a[1]))
				i++;
			i++;
		}
	}
	return i;
}

/* A shell or interpreter started with no program of its own: it reads stdin. */
static bool summary_reads_stdin(const Sessrec__Command *c, size_t from, bool shell, bool *subst)
{
	*subst = false;
	for (size_t i = from + 1; i < c->n_argv && c->argv[i]; i++) {
		const char *a = c->argv[i];

		if (strcmp(a, "-") == 0 || strcmp(a, "-s") == 0 || strcmp(a, "/dev/stdin") == 0)
			return true;
		if (shell &&
		    (strcmp(a, "-c") == 0 || (a[0] == '-' && a[1] != '-' && strchr(a, 'c')))) {
			*subst = true;
			return false;
		}
		if (!shell &&
		    (strcmp(a, "-c") == 0 || strcmp(a, "-e") == 0 || strcmp(a, "-E") == 0 ||
		     strcmp(a, "-m") == 0 || strcmp(a, "-r") == 0 || strcmp(a, "-p") == 0))
			return false;
		if (strcmp(a, "-o") == 0 || strcmp(a, "+o") == 0 || strcmp(a, "-O") == 0 ||
		    strcmp(a, "-W") == 0 || strcmp(a, "-X") == 0 || strcmp(a, "-I") == 0) {
			i++;
			continue;
		}
		if (a[0] == '-' || a[0] == '+')
			continue;
		return false; /* a script */
	}
	return true;
}

/* curl/wget: what it fetches goes to stdout (not to a file). */
static bool summary_dl_stdout(const Sessrec__Command *c, size_t from, bool wget)
{
	bool out = !wget;

	for (size_t i = from + 1; i < c->n_argv && c->argv[i]; i++) {
		const char *a = c->argv[i], *next = i + 1 < c->n_argv ? c->argv[i + 1] : NULL;

		if (wget) {
			if (summary_prefix(a, "--output-document="))
				out = strcmp(a + 18, "-") == 0;
			else if (a[0] == '-' && a[1] != '-' && strchr(a, 'O'))
				out = strcmp(strchr(a, 'O') + 1, "-") == 0 ||
				      (!strchr(a, 'O')[1] && next && strcmp(next, "-") == 0);
			continue;
		}
		if (strcmp(a, "--output") == 0 || strcmp(a, "--remote-name") == 0 ||
		    strcmp(a, "--remote-name-all") == 0)
			out = next && strcmp(next, "-") == 0 && a[8] == '\0';
		else if (a[0] == '-' && a[1] != '-' && (strchr(a, 'o') || strchr(a, 'O')))
			out = strchr(a, 'o') &&
			      ((!strchr(a, 'o')[1] && next && strcmp(next, "-") == 0) ||
			       strcmp(strchr(a, 'o') + 1, "-") == 0);
	}
	return out;
}

static bool summary_decodes(const Sessrec__Command *c, size_t from, const char *b)
{
	bool dec = false, b64 = false;

	for (size_t i = from + 1; i < c->n_argv && c->argv[i]; i++) {
		const char *a = c->argv[i];

		if (strcmp(a, "-d") == 0 || strcmp(a, "--decode") == 0 || strcmp(a, "-D") == 0 ||
		    (strcmp(b, "xxd") == 0 &&
		     (strcmp(a, "-r") == 0 || strcmp(a, "-rp") == 0 || strcmp(a, "-r -p") == 0)) ||
		    (a[0] == '-' && a[1] != '-' && strchr(a, 'd') && strlen(a) <= 4))
			dec = true;
		if (strcmp(a, "base64") == 0 || strcmp(a, "-base64") == 0 || strcmp(a, "-a") == 0 ||
		    strcmp(a, "enc") == 0)
			b64 = true;
	}
	if (strcmp(b, "openssl") == 0)
		return dec && b64;
	if (strcmp(b, "uudecode") == 0)
		return true;
	return dec && (strcmp(b, "base64") == 0 || strcmp(b, "base32") == 0 ||
		       strcmp(b, "basenc") == 0 || strcmp(b, "xxd") == 0);
}

static uint32_t summary_kind(const Sessrec__Command *c, size_t *eff)
{
	const char *b;
	uint32_t k = 0;
	bool subst;
	size_t i = summary_eff(c);

	*eff = i;
	if (i > 0)
		k |= SUMMARY_K_WRAPPER;
	if (i >= c->n_argv || !c->argv[i]) {
		/* a wrapper with nothing after it, or no argv at all */
		if (!c->n_argv)
			*eff = 0;
		return k;
	}
	b = summary_base(c->argv[i]);
	if (strcmp(b, "busybox") == 0 && i + 1 < c->n_argv && c->argv[i + 1] &&
	    summary_in(summary_base(c->argv[i + 1]), summary_shells)) {
		i++;
		*eff = i;
		b = summary_base(c->argv[i]);
	}
	if (summary_in(b, summary_shells)) {
		k |= SUMMARY_K_SHELL;
		if (summary_reads_stdin(c, i, true, &subst))
			k |= SUMMARY_K_STDIN;
		if (subst)
			k |= SUMMARY_K_SUBST;
	} else if (summary_is_interp(b)) {
		k |= SUMMARY_K_INTERP;
		if (summary_reads_stdin(c, i, false, &subst))
			k |= SUMMARY_K_STDIN;
	} else if (strcmp(b, "curl") == 0 || strcmp(b, "wget") == 0) {
		k |= SUMMARY_K_DL;
		if (summary_dl_stdout(c, i, strcmp(b, "wget") == 0))
			k |= SUMMARY_K_DL_STDOUT;
	} else if (summary_decodes(c, i, b)) {
		k |= SUMMARY_K_DECODE;
	} else if (strcmp(b, "nc") == 0 || strcmp(b, "ncat") == 0 || strcmp(b, "netcat") == 0 ||
		   summary_prefix(b, "nc.") || strcmp(b, "socat") == 0 ||
		   strcmp(b, "telnet") == 0) {
		k |= SUMMARY_K_NETCAT;
	} else if (summary_in(b, summary_filters)) {
		k |= SUMMARY_K_FILTER;
	} else if (strcmp(b, "mkfifo") == 0 ||
		   (strcmp(b, "mknod") == 0 && c->n_argv > i + 2 && c->argv[i + 2] &&
		    strcmp(c->argv[i + 2], "p") == 0)) {
		k |= SUMMARY_K_MKFIFO;
	}
	return k;
}

/* ------------------------------------------------------------ text patterns */

/* The word `w` in s: not preceded or followed by a letter, digit, '_' or '-'. */
static const char *summary_word(const char *s, const char *w)
{
	size_t n = strlen(w);

	for (const char *p = s; (p = strstr(p, w)); p++) {
		char before = p > s ? p[-1] : ' ', after = p[n];

		if (!(before == '_' || before == '-' || (before >= 'a' && before <= 'z') ||
		      (before >= 'A' && before <= 'Z') || (before >= '0' && before <= '9')) &&
		    !(after == '_' || after == '-' || (after >= 'a' && after <= 'z') ||
		      (after >= 'A' && after <= 'Z') || (after >= '0' && after <= '9')))
			return p;
	}
	return NULL;
}

/* After a '|': a shell or interpreter (past sudo/env and their options)? */
static bool summary_pipe_to_shell(const char *p)
{
	static const char *const targets[] = {"sh",   "bash",	"dash",	   "zsh",     "ksh",
					      "ash",  "python", "python2", "python3", "perl",
					      "ruby", "php",	"node",	   NULL};
	char word[32];

	while (1) {
		size_t n = 0;

		while (*p == ' ' || *p == '\t' || *p == '\\')
			p++;
		while (p[n] && !strchr(" \t\r\n|;&)'\"<>", p[n]) && n < sizeof(word) - 1)
			n++;
		if (!n)
			return false;
		memcpy(word, p, n);
		word[n] = '\0';
		p += n;
		if (strcmp(word, "sudo") == 0 || strcmp(word, "env") == 0 || word[0] == '-' ||
		    strchr(word, '='))
			continue;
		return summary_in(summary_base(word), targets);
	}
}

/* curl|wget ... | sh, sh <(curl ...), sh -c "$(curl ...)", source <(curl ...) */
static bool summary_text_download_exec(const char *s)
{
	static const char *const tools[] = {"curl", "wget", NULL};

	for (size_t i = 0; tools[i]; i++) {
		for (const char *p = s; (p = summary_word(p, tools[i])); p++) {
			const char *bar = strchr(p, '|');

			while (bar && bar[1] == '|')
				bar = strchr(bar + 2, '|');
			if (bar && summary_pipe_to_shell(bar + 1))
				return true;
			if (p >= s + 2 && (p[-1] == '(' || p[-1] == '`') &&
			    (p[-2] == '<' || p[-2] == '$' || p[-1] == '`') &&
			    (summary_word(s, "sh") || summary_word(s, "bash") ||
			     summary_word(s, "zsh") || summary_word(s, "source") ||
			     summary_word(s, "eval") || strstr(s, ". <(")))
				return true;
		}
	}
	return false;
}

/* base64 -d ... | sh, eval "$(echo ... | base64 -d)" */
static bool summary_text_decode_exec(const char *s)
{
	const char *p = summary_word(s, "base64");

	if (!p || !(strstr(p, " -d") || strstr(p, "--decode") || strstr(p, " -D")))
		return false;
	for (const char *bar = strchr(p, '|'); bar; bar = strchr(bar + 1, '|'))
		if (bar[1] != '|' && summary_pipe_to_shell(bar + 1))
			return true;
	return summary_word(s, "eval") != NULL;
}

/* Code for an interpreter that decodes and executes, or opens a socket and a shell. */
static bool summary_code_decode_exec(const char *s)
{
	return (strstr(s, "base64") || strstr(s, "b64decode") || strstr(s, "decode_base64") ||
		strstr(s, "unpack(\"m") || strstr(s, "fromhex") || strstr(s, "zlib.decompress")) &&
	       (strstr(s, "exec") || strstr(s, "eval") || strstr(s, "system") ||
		strstr(s, "popen") || strstr(s, "subprocess"));
}

static bool summary_code_reverse(const char *s)
{
	return (strstr(s, "socket") || strstr(s, "Socket") || strstr(s, "TCPSocket") ||
		strstr(s, "fsockopen") || strstr(s, "net.connect") || strstr(s, "IO::Socket")) &&
	       (strstr(s, "pty") || strstr(s, "dup2") || strstr(s, "subprocess") ||
		strstr(s, "/bin/sh") || strstr(s, "/bin/bash") || strstr(s, "exec") ||
		strstr(s, "spawn") || strstr(s, "popen") || strstr(s, "child_process"));
}

/* bash -i >& /dev/tcp/host/port 0>&1 and the like. */
static bool summary_text_reverse(const char *s)
{
	const char *tcp = strstr(s, "/dev/tcp/");

	if (!tcp)
		tcp = strstr(s, "/dev/udp/");
	if (tcp && (strstr(s, ">&") || strstr(s, "<&") || strstr(s, "0>&1") ||
		    summary_word(s, "-i") || strstr(s, "<>")))
		return true;
	if ((summary_word(s, "nc") || summary_word(s, "ncat") || summary_word(s, "netcat")) &&
	    (summary_word(s, "-e") || summary_word(s, "-c") || strstr(s, "--exec") ||
	     strstr(s, "--sh-exec")))
		return true;
	if (summary_word(s, "socat") && (strcasestr(s, "exec:") || strcasestr(s, "system:")))
		return true;
	return summary_word(s, "mkfifo") &&
	       (summary_word(s, "nc") || summary_word(s, "ncat") || summary_word(s, "telnet"));
}

/* history -c, unset HISTFILE, HISTSIZE=0, > ~/.bash_history, ... */
static const char *summary_text_history(const char *s)
{
	static const char *const pats[] = {
	    "history -c",
	    "history -cw",
	    "history -w /dev/null",
	    "unset HISTFILE",
	    "HISTFILE=/dev/null",
	    "HISTSIZE=0",
	    "HISTFILESIZE=0",
	    "set +o history",
	    "export HISTFILE=",
	    "HISTCONTROL=ignorespace",
	    NULL,
	};
	const char *h;

	for (size_t i = 0; pats[i]; i++)
		if ((h = strstr(s, pats[i])) &&
		    (strcmp(pats[i], "export HISTFILE=") != 0 || h[16] == '\0' || h[16] == ' ' ||
		     h[16] == ';' || strncmp(h + 16, "/dev/null", 9) == 0))
			return pats[i];
	/* a redirect that empties a history file */
	for (const char *p = s; (p = strchr(p, '>')); p++) {
		const char *q = p + 1;
		size_t n;

		while (*q == '|' || *q == ' ')
			q++;
		n = strcspn(q, " ;&|");
		if (n >= 8 && (strncmp(q + n - 8, "_history", 8) == 0 ||
			       (n >= 9 && strncmp(q + n - 9, "/.history", 9) == 0)))
			return "> history file";
	}
	return NULL;
}

/* Every text detector over one line of text; takes cmd (the command behind it, or NULL). */
static void summary_text_line(struct summary_ctx *x, const char *s, const char *where,
			      char *cmd_owned)
{
	const char *h;
	char *cmd = cmd_owned;
	char key[64];

	snprintf(key, sizeof(key), "text:%016" PRIx64, summary_hash(s, 0));
	if (!cmd) {
		cmd = strndup(s, SUMMARY_CMD_MAX);
		if (!cmd) {
			x->err = -ENOMEM;
			return;
		}
	}
	if (summary_text_download_exec(s))
		summary_find(x, SUMMARY_CAT_DOWNLOAD, 50, key,
			     summary_fmt(x, "download run by a shell (%s): %s", where, cmd),
			     strdup(cmd));
	if (summary_text_decode_exec(s))
		summary_find(x, SUMMARY_CAT_DECODE, 50, key,
			     summary_fmt(x, "decoded data run by a shell (%s): %s", where, cmd),
			     strdup(cmd));
	if (summary_text_reverse(s))
		summary_find(x, SUMMARY_CAT_REVERSE, 60, key,
			     summary_fmt(x, "reverse shell (%s): %s", where, cmd), strdup(cmd));
	if ((h = summary_text_history(s)))
		summary_find(x, SUMMARY_CAT_HISTORY, 40, key,
			     summary_fmt(x, "shell history disabled or cleared, \"%s\" (%s): %s", h,
					 where, cmd),
			     strdup(cmd));
	free(cmd);
}

/*
 * Text that may hold commands: an sh -c argument, the initial command, a typed
 * line. A script of several lines is looked at line by line (each reason
 * quotes its line); control characters become spaces.
 */
static void summary_text(struct summary_ctx *x, const char *s, const char *where, char *cmd_owned)
{
	char line[SUMMARY_LINE_MAX];
	size_t lines = 0;

	if (!strpbrk(s, "\n\r")) {
		summary_text_line(x, s, where, cmd_owned);
		return;
	}
	free(cmd_owned);
	while (*s && lines++ < SUMMARY_SCRIPT_LINES && !x->err) {
		size_t n = strcspn(s, "\n\r"), k = n < sizeof(line) - 1 ? n : sizeof(line) - 1;

		for (size_t i = 0; i < k; i++)
			line[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i];
		line[k] = '\0';
		if (k > 3)
			summary_text_line(x, line, where, NULL);
		s += n;
		while (*s == '\n' || *s == '\r')
			s++;
	}
}

/* Terminal output, line by line with escape sequences taken out. */
static void summary_print(struct summary_ctx *x, const uint8_t *p, size_t n)
{
	if (x->text_scanned >= SUMMARY_TEXT_MAX)
		return;
	x->text_scanned += n;
	for (size_t i = 0; i < n && !x->err; i++) {
		uint8_t c = p[i];

		switch (x->esc) {
		case 1: /* after ESC */
			x->esc = c == '[' ? 2 : c == ']' ? 3 : 0;
			continue;
		case 2: /* CSI */
			if (c >= 0x40 && c <= 0x7e)
				x->esc = 0;
			continue;
		case 3: /* OSC, up to BEL or ESC \ */
			if (c == 0x07)
				x->esc = 0;
			else if (c == 0x1b)
				x->esc = 1;
			continue;
		default:
			break;
		}
		if (c == 0x1b) {
			x->esc = 1;
		} else if (c == '\n' || c == '\r') {
			if (x->line_len) {
				x->line[x->line_len] = '\0';
				if (strpbrk(x->line, "h>Hc/bmsn"))
					summary_text(x, x->line, "typed", NULL);
			}
			x->line_len = 0;
		} else if (c == 0x08 || c == 0x7f) {
			if (x->line_len)
				x->line_len--;
		} else if (c >= 0x20 && x->line_len < sizeof(x->line) - 1) {
			x->line[x->line_len++] = (char)c;
		}
	}
}

/* ------------------------------------------------------------ events */

static const char *const summary_auth_tools[] = {
    "sudo",	   "su",	   "passwd",   "login",		 "sshd",
    "unix_chkpwd", "chage",	   "useradd",  "usermod",	 "userdel",
    "groupadd",	   "groupmod",	   "groupdel", "gpasswd",	 "chpasswd",
    "newusers",	   "pwck",	   "grpck",    "vipw",		 "vigr",
    "pwconv",	   "grpconv",	   "doas",     "pkexec",	 "runuser",
    "chsh",	   "chfn",	   "visudo",   "sudoedit",	 "adduser",
    "deluser",	   "addgroup",	   "delgroup", "cron",		 "crond",
    "polkitd",	   "shadowconfig", "nscd",     "sssd",		 "dpkg",
    "apt",	   "apt-get",	   "systemd",  "systemd-logind", "polkit-agent-he",
    NULL,
};

/* Is prog the own client of the credential at path (ssh reading ~/.ssh/id_rsa)? */
static bool summary_cred_owner(const char *path, const char *prog)
{
	static const struct {
		const char *where;
		const char *progs[12];
	} owners[] = {
	    {"/.ssh/",
	     {"ssh", "ssh-add", "ssh-agent", "ssh-keygen", "scp", "sftp", "sshd", "autossh",
	      "ssh-copy-id", "git", NULL}},
	    {"/etc/ssh/", {"sshd", "ssh-keygen", "ssh-keysign", NULL}},
	    {"/.aws/", {"aws", "aws_completer", "terraform", NULL}},
	    {"/.kube/", {"kubectl", "helm", "k9s", "kubeadm", "minikube", "kind", NULL}},
	    {"/kubernetes/", {"kubectl", "kubelet", "kubeadm", "kube-apiserver", NULL}},
	    {"/.netrc", {"curl", "wget", "ftp", "lftp", "git-remote-http", "rsync", NULL}},
	    {"/.git-credentials", {"git", "git-credential-", "git-remote-http", NULL}},
	    {"/.docker/", {"docker", "docker-credential", "podman", "buildah", NULL}},
	    {"/.pgpass", {"psql", "pg_dump", "pg_restore", "pg_dumpall", NULL}},
	    {"/.my.cnf", {"mysql", "mysqldump", "mariadb", "mysqladmin", NULL}},
	    {"/.pypirc", {"twine", NULL}},
	    {"/.vault-token", {"vault", NULL}},
	    {"/gcloud/", {"gcloud", "gsutil", "bq", NULL}},
	    {"/.azure/", {"az", NULL}},
	    {"/.gnupg/", {"gpg", "gpg2", "gpg-agent", NULL}},
	};

	for (size_t i = 0; i < sizeof(owners) / sizeof(owners[0]); i++) {
		if (!strstr(path, owners[i].where))
			continue;
		for (size_t j = 0; owners[i].progs[j]; j++)
			if (summary_prefix(prog, owners[i].progs[j]))
				return true;
		return false;
	}
	return false;
}

static bool summary_is_history(const char *path)
{
	static const char *const shells[] = {
	    ".bash_history", ".zsh_history", ".sh_history", ".history",
	    ".ash_history",  ".ksh_history", NULL};

	return summary_in(summary_base(path), shells);
}

/* The slot of path in the files' index: where it is, or where it would go. */
static size_t summary_file_slot(const struct summary_ctx *x, const char *path)
{
	size_t s = summary_hash(path, 0xcbf29ce484222325ULL) & (SUMMARY_IDX - 1);

	while (x->files_idx[s] && strcmp(x->files[x->files_idx[s] - 1].path, path) != 0)
		s = (s + 1) & (SUMMARY_IDX - 1);
	return s;
}

static struct summary_file *summary_file_get(struct summary_ctx *x, const char *path)
{
	size_t s = summary_file_slot(x, path);

	return x->files_idx[s] ? &x->files[x->files_idx[s] - 1] : NULL;
}

/* An executed path (maybe relative: ./x) is a file written in the session. */
static struct summary_file *summary_file_exec(struct summary_ctx *x, const char *path)
{
	const char *rel = path;
	size_t n;

	if (!path || !path[0])
		return NULL;
	if (path[0] == '/')
		return summary_file_get(x, path);
	while (rel[0] == '.' && rel[1] == '/')
		rel += 2;
	n = strlen(rel);
	for (size_t i = x->n_files; i-- > 0;) {
		size_t m = strlen(x->files[i].path);

		if (m > n && x->files[i].path[m - n - 1] == '/' &&
		    strcmp(x->files[i].path + m - n, rel) == 0)
			return &x->files[i];
	}
	return NULL;
}

/* A file written earlier in the session is executed (directly or as a script). */
static void summary_exec_written(struct summary_ctx *x, const Sessrec__Command *c, const char *path)
{
	struct summary_file *f = summary_file_exec(x, path);
	const struct summary_proc *w;
	char key[64];

	if (!f || f->executed)
		return;
	w = summary_proc(x, f->writer);
	if (!w)
		return;
	snprintf(key, sizeof(key), "file:%016" PRIx64, summary_hash(f->path, 0));
	if (w->kind & SUMMARY_K_DL) {
		f->executed = true;
		summary_find_cmd(x, SUMMARY_CAT_DOWNLOAD, 50,
				 "a downloaded file was executed (written by curl/wget)", c, key);
	} else if (w->kind & SUMMARY_K_DECODE) {
		f->executed = true;
		summary_find_cmd(x, SUMMARY_CAT_DECODE, 50,
				 "a decoded file was executed (written by a base64/xxd decoder)", c,
				 key);
	}
}

/* Members of one pipeline: started by the same parent, close in time. */
static void summary_pipeline(struct summary_ctx *x, const struct summary_proc *p,
			     const Sessrec__Command *c)
{
	size_t sibling = 0;
	bool through = true; /* the siblings passed so far only pass data along */

	/* newest first: the parent's previous children, nearest first */
	for (size_t k = 0; k < x->recent_n && sibling < SUMMARY_PIPE_MEMBERS; k++) {
		const struct summary_proc *q =
		    &x->recent[(x->recent_next + SUMMARY_RECENT - 1 - k) % SUMMARY_RECENT];
		const struct summary_proc *dl = NULL, *sh = NULL, *dec = NULL, *nc = NULL;
		const Sessrec__Command *qc;
		int64_t dt = p->ns > q->ns ? p->ns - q->ns : q->ns - p->ns;
		char key[64];

		if (q->pid == p->pid || q->eff_ppid != p->eff_ppid)
			continue;
		sibling++;
		if (sibling > 1 && !through)
			break;
		if (p->kind & SUMMARY_K_STDIN)
			sh = p;
		else if (q->kind & SUMMARY_K_STDIN)
			sh = q;
		if (sh) {
			const struct summary_proc *other = sh == p ? q : p;

			/*
			 * The shell forks a pipeline left to right: what feeds the
			 * shell has the lower pid (the next command's source after
			 * an earlier "| sh" has a higher one).
			 */
			bool feeds = sh->pid > other->pid && sh->pid - other->pid <= 64;

			if ((other->kind & SUMMARY_K_DL_STDOUT) && feeds)
				dl = other;
			if ((other->kind & SUMMARY_K_DECODE) && feeds)
				dec = other;
			if (other->kind & SUMMARY_K_NETCAT)
				nc = other;
		}
		qc = summary_cmd_of(x, q);
		through = through && (q->kind & SUMMARY_K_FILTER);
		if (!qc)
			continue;
		/*
		 * The parent's previous child, in either order (pipeline members exec
		 * in any order); further back only as the start of a longer pipeline
		 * whose middle only passes data on: curl ... | tee log | sh
		 */
		if (dt <= SUMMARY_PIPE_NS && (dl || dec || nc) &&
		    (sibling == 1 || (sh == p && q != sh))) {
			const struct summary_proc *src = dl ? dl : dec ? dec : nc;
			const Sessrec__Command *sc = src == p ? c : qc, *shc = sh == p ? c : qc;
			char *a = summary_cmdline(x, sc), *b = summary_cmdline(x, shc);

			snprintf(key, sizeof(key), "pipe:%u", src->pid);
			if (a && b) {
				enum summary_cat cat = dl    ? SUMMARY_CAT_DOWNLOAD
						       : dec ? SUMMARY_CAT_DECODE
							     : SUMMARY_CAT_REVERSE;
				const char *what = dl	 ? "download piped to a shell"
						   : dec ? "decoded data piped to a shell"
							 : "network connection piped to a shell";

				summary_find(x, cat, cat == SUMMARY_CAT_REVERSE ? 60 : 50, key,
					     summary_fmt(x, "%s: %s | %s", what, a, b),
					     summary_fmt(x, "%s | %s", a, b));
			}
			free(a);
			free(b);
		}
		/* sh -c "$(curl ...)": the shell is given what curl printed */
		if ((p->kind & SUMMARY_K_SUBST) && (q->kind & SUMMARY_K_DL_STDOUT) &&
		    sibling == 1 && p->ns >= q->ns && p->ns - q->ns <= SUMMARY_SUBST_NS) {
			size_t e = 0;
			const char *script = NULL;

			for (size_t j = 0; j + 1 < c->n_argv; j++)
				if (c->argv[j] && c->argv[j][0] == '-' && strchr(c->argv[j], 'c') &&
				    c->argv[j][1] != '-') {
					e = j + 1;
					break;
				}
			script = e && e < c->n_argv ? c->argv[e] : NULL;
			/* a script of several lines or that does not name curl itself */
			if (script && !summary_word(script, "curl") &&
			    !summary_word(script, "wget") &&
			    (strchr(script, '\n') || strlen(script) > 40)) {
				char *a = summary_cmdline(x, qc);

				snprintf(key, sizeof(key), "subst:%u", q->pid);
				if (a)
					summary_find(x, SUMMARY_CAT_DOWNLOAD, 50, key,
						     summary_fmt(x,
								 "downloaded script run with %s -c "
								 "(after %s)",
								 summary_base(c->argv[0]), a),
						     strdup(a));
				free(a);
			}
		}
	}
}

static void summary_chmod(struct summary_ctx *x, const Sessrec__Command *c, size_t eff)
{
	for (size_t i = eff + 1; i < c->n_argv && c->argv[i]; i++) {
		const char *m = c->argv[i];
		bool setid = false;

		if (m[0] == '-' && m[1] && !strchr("0123456789", m[1]))
			continue; /* an option (-R), not a mode like -s */
		if (strchr("0123456789", m[0])) {
			char *end;
			unsigned long v = strtoul(m, &end, 8);

			setid = !*end && (v & 06000);
		} else {
			const char *op = strpbrk(m, "+=");

			setid = op && strpbrk(op, "s") && !strchr(m, '-');
		}
		if (setid)
			summary_find_cmd(x, SUMMARY_CAT_SETUID, 35, "setuid/setgid bit set", c,
					 NULL);
		break;
	}
}

/* Programs run from a temporary directory. */
static void summary_tmp_exec(struct summary_ctx *x, const Sessrec__Command *c)
{
	if (c->path && (summary_prefix(c->path, "/tmp/") || summary_prefix(c->path, "/var/tmp/") ||
			summary_prefix(c->path, "/dev/shm/")))
		summary_find_cmd(x, SUMMARY_CAT_TMP_EXEC, 15,
				 "a program ran from a temporary directory", c, c->path);
}

static void summary_command(struct summary_ctx *x, size_t idx, const Sessrec__Event *ev)
{
	static const char *const erasers[] = {"rm", "shred", "truncate", "unlink", "srm", "wipe",
					      "cp", "mv",    "ln",	 "dd",	   NULL};
	static const char *const accounts[] = {
	    "useradd",	"adduser",  "userdel",	"deluser", "usermod", "groupadd", "addgroup",
	    "groupmod", "groupdel", "delgroup", "gpasswd", "passwd",  "chpasswd", "chage",
	    "newusers", "vipw",	    "vigr",	"visudo",  "chsh",    NULL,
	};
	static const char *const sudos[] = {"sudo",    "su",	   "doas", "pkexec",
					    "runuser", "sudoedit", NULL};
	const Sessrec__Command *c = ev->command;
	struct summary_proc *p, *parent;
	const char *b;
	size_t eff;

	x->execs++;
	if (c->return_code) {
		x->exec_failed++;
		if (c->return_code == -ENOENT)
			x->exec_missing++;
		/* no #! line: the calling shell runs the file as a script all the same */
		if (c->return_code == -ENOEXEC) {
			summary_exec_written(x, c, c->path);
			summary_tmp_exec(x, c);
		}
		return;
	}
	if (!x->have_uid) {
		x->first_uid = c->uid;
		x->have_uid = true;
	}
	p = &x->procs[c->pid % SUMMARY_PIDS];
	memset(p, 0, sizeof(*p));
	p->used = true;
	p->pid = c->pid;
	p->ppid = c->ppid;
	p->ns = ev->time_ns;
	p->ev = idx;
	p->kind = summary_kind(c, &eff);
	/* the parent past wrappers: curl | sudo bash has bash under sudo */
	parent = summary_proc(x, c->ppid);
	p->eff_ppid = parent && (parent->kind & SUMMARY_K_WRAPPER) ? parent->eff_ppid : c->ppid;
	b = eff < c->n_argv && c->argv[eff] ? summary_base(c->argv[eff])
					    : summary_base(c->path ? c->path : c->program);

	/* counts per program */
	{
		const char *name = summary_base(c->path && c->path[0] ? c->path : c->program);
		size_t i;

		for (i = 0; i < x->n_progs; i++)
			if (strcmp(x->progs[i].name, name) == 0)
				break;
		if (i == x->n_progs && x->n_progs < SUMMARY_PROGS_MAX) {
			snprintf(x->progs[i].name, sizeof(x->progs[i].name), "%s", name);
			x->n_progs++;
		}
		if (i < x->n_progs)
			x->progs[i].n++;
	}

	/* a shell started in place of (or by) a process that made a network connection */
	if (p->kind & SUMMARY_K_SHELL) {
		const struct summary_proc *self = NULL;

		for (size_t i = 0; i < x->recent_n; i++)
			if (x->recent[i].pid == c->pid && (x->recent[i].kind & SUMMARY_K_NET))
				self = &x->recent[i];
		if (self || (parent && (parent->kind & SUMMARY_K_NET) &&
			     !(parent->kind & (SUMMARY_K_SHELL | SUMMARY_K_WRAPPER))))
			summary_find_cmd(x, SUMMARY_CAT_REVERSE, 60,
					 "a shell was started by a process with a network "
					 "connection",
					 c, NULL);
	}
	summary_pipeline(x, p, c);

	/* reverse shells and decode-and-execute in arguments */
	if (p->kind & SUMMARY_K_NETCAT) {
		bool exec = false;

		for (size_t i = eff + 1; i < c->n_argv && c->argv[i]; i++) {
			const char *a = c->argv[i];

			if (strcmp(a, "-e") == 0 || strcmp(a, "-c") == 0 ||
			    summary_prefix(a, "--exec") || summary_prefix(a, "--sh-exec") ||
			    summary_prefix(a, "--lua-exec") || strcasestr(a, "exec:") ||
			    strcasestr(a, "system:") ||
			    (a[0] == '-' && a[1] != '-' && strchr(a, 'e') && strlen(a) <= 6))
				exec = true;
		}
		if (exec)
			summary_find_cmd(x, SUMMARY_CAT_REVERSE, 60, "reverse shell", c, NULL);
		if (x->last_fifo_ns && ev->time_ns - x->last_fifo_ns <= SUMMARY_FIFO_NS)
			summary_find_cmd(x, SUMMARY_CAT_REVERSE, 60,
					 "reverse shell (a named pipe, then netcat)", c, NULL);
	}
	if (p->kind & SUMMARY_K_MKFIFO)
		x->last_fifo_ns = ev->time_ns;
	if (p->kind & (SUMMARY_K_INTERP | SUMMARY_K_SHELL)) {
		for (size_t i = eff + 1; i < c->n_argv && c->argv[i]; i++) {
			const char *a = c->argv[i];

			if (p->kind & SUMMARY_K_SHELL) {
				if (strlen(a) > 3 && !(a[0] == '-' && !strchr(a, ' ')))
					summary_text(x, a, "sh -c", summary_cmdline(x, c));
				continue;
			}
			if (summary_code_decode_exec(a))
				summary_find_cmd(x, SUMMARY_CAT_DECODE, 50,
						 "interpreter code that decodes and executes", c,
						 NULL);
			if (summary_code_reverse(a))
				summary_find_cmd(x, SUMMARY_CAT_REVERSE, 60,
						 "interpreter code with a socket and a shell", c,
						 NULL);
		}
		/* a script written in the session: sh /tmp/x.sh, python3 ./payload.py */
		for (size_t i = eff + 1; i < c->n_argv && c->argv[i]; i++) {
			if (c->argv[i][0] == '-')
				continue;
			summary_exec_written(x, c, c->argv[i]);
			break;
		}
	}
	summary_exec_written(x, c, c->path);

	/* privilege changes */
	if (summary_in(b, sudos) || (c->n_argv && summary_in(summary_base(c->argv[0]), sudos))) {
		x->sudo_seen = true;
		summary_find_cmd(x, SUMMARY_CAT_SUDO, 10, "privileged command", c, NULL);
	} else if (x->first_uid != 0 && c->uid == 0 && !x->root_seen && !x->sudo_seen) {
		x->root_seen = true;
		summary_find_cmd(x, SUMMARY_CAT_SUDO, 10, "a command ran as root", c, "uid0");
	}
	if (strcmp(b, "chmod") == 0 || strcmp(b, "install") == 0)
		summary_chmod(x, c, eff);
	if (strcmp(b, "setcap") == 0)
		summary_find_cmd(x, SUMMARY_CAT_SETUID, 35, "file capabilities granted", c, NULL);
	if (summary_in(b, accounts)) {
		bool admin = false;

		for (size_t i = eff + 1; i < c->n_argv && c->argv[i]; i++)
			if (summary_word(c->argv[i], "sudo") || summary_word(c->argv[i], "wheel") ||
			    summary_word(c->argv[i], "root") || summary_word(c->argv[i], "adm") ||
			    summary_word(c->argv[i], "docker"))
				admin = (strcmp(b, "usermod") == 0 || strcmp(b, "useradd") == 0 ||
					 strcmp(b, "gpasswd") == 0 || strcmp(b, "adduser") == 0);
		summary_find_cmd(
		    x, SUMMARY_CAT_ACCOUNTS, admin ? 35 : 25,
		    admin ? "user added to an administrators' group" : "account change", c, NULL);
	}
	if (strcmp(b, "crontab") == 0 &&
	    !(c->n_argv > eff + 1 && c->argv[eff + 1] && strcmp(c->argv[eff + 1], "-l") == 0))
		summary_find_cmd(x, SUMMARY_CAT_PERSISTENCE, 25, "crontab changed", c, NULL);

	/* history files removed, emptied or linked away */
	if (summary_in(b, erasers)) {
		for (size_t i = eff + 1; i < c->n_argv && c->argv[i]; i++)
			if (summary_is_history(c->argv[i])) {
				summary_find_cmd(x, SUMMARY_CAT_HISTORY, 40,
						 "shell history file removed or emptied", c, NULL);
				break;
			}
	}

	summary_tmp_exec(x, c);

	x->recent[x->recent_next] = *p;
	x->recent_next = (x->recent_next + 1) % SUMMARY_RECENT;
	if (x->recent_n < SUMMARY_RECENT)
		x->recent_n++;
}

/* The command line of the process that opened a file, for commands of interest. */
static char *summary_pid_cmd(struct summary_ctx *x, uint32_t pid)
{
	const struct summary_proc *p = summary_proc(x, pid);

	return p ? summary_cmdline(x, summary_cmd_of(x, p)) : NULL;
}

static void summary_disk(struct summary_ctx *x, const Sessrec__Disk *d)
{
	const char *path = d->path ? d->path : "", *prog = d->program ? d->program : "";
	bool write = transcript_open_writes(d->flags), ok = d->return_code >= 0;
	enum transcript_file_kind kind = transcript_file_kind(path, write);
	char key[64], ebuf[16] = "";

	snprintf(key, sizeof(key), "%c:%016" PRIx64, write ? 'w' : 'r', summary_hash(path, 0));
	if (!ok)
		snprintf(ebuf, sizeof(ebuf), " (refused)");
	if (write && ok && kind != TRANSCRIPT_FILE_NOISE) {
		struct summary_file *f = summary_file_get(x, path);

		x->opens_written++;
		if (!f && x->n_files < SUMMARY_FILES_MAX) {
			f = &x->files[x->n_files];
			f->path = strdup(path);
			if (!f->path) {
				x->err = -ENOMEM;
				return;
			}
			x->files_idx[summary_file_slot(x, path)] = (uint32_t)++x->n_files;
		}
		if (f) {
			f->writer = d->pid;
			snprintf(f->prog, sizeof(f->prog), "%s", prog);
			f->executed = false;
		}
	}
	switch (kind) {
	case TRANSCRIPT_FILE_SHADOW:
		if (write && !summary_in(prog, summary_auth_tools))
			summary_find(x, SUMMARY_CAT_PRIV_FILES, ok ? 40 : 25, key,
				     summary_fmt(x, "password file %s opened for writing by %s%s",
						 path, prog, ebuf),
				     summary_pid_cmd(x, d->pid));
		else if (!summary_in(prog, summary_auth_tools))
			summary_find(
			    x, SUMMARY_CAT_SHADOW, ok ? 50 : 25, key,
			    summary_fmt(x, "password hashes %s read by %s%s", path, prog, ebuf),
			    summary_pid_cmd(x, d->pid));
		break;
	case TRANSCRIPT_FILE_SUDOERS:
		if (write && !summary_in(prog, summary_auth_tools))
			summary_find(x, SUMMARY_CAT_PRIV_FILES, ok ? 40 : 25, key,
				     summary_fmt(x, "sudoers %s written by %s%s", path, prog, ebuf),
				     summary_pid_cmd(x, d->pid));
		else if (!write && !summary_in(prog, summary_auth_tools))
			summary_find(x, SUMMARY_CAT_CREDENTIALS, ok ? 30 : 25, key,
				     summary_fmt(x, "sudoers %s read by %s%s", path, prog, ebuf),
				     summary_pid_cmd(x, d->pid));
		break;
	case TRANSCRIPT_FILE_CREDENTIAL:
		if (!summary_cred_owner(path, prog))
			summary_find(x, SUMMARY_CAT_CREDENTIALS, ok ? 40 : 25, key,
				     summary_fmt(x, "credential file %s %s by %s%s", path,
						 write ? "written" : "read", prog, ebuf),
				     summary_pid_cmd(x, d->pid));
		break;
	case TRANSCRIPT_FILE_ACCOUNTS:
		if (ok && !summary_in(prog, summary_auth_tools))
			summary_find(x, SUMMARY_CAT_PRIV_FILES, 40, key,
				     summary_fmt(x, "account file %s written by %s", path, prog),
				     summary_pid_cmd(x, d->pid));
		break;
	case TRANSCRIPT_FILE_HISTORY:
		if (ok && summary_is_history(path) && !summary_in(prog, summary_shells))
			summary_find(
			    x, SUMMARY_CAT_HISTORY, 40, key,
			    summary_fmt(x, "shell history file %s written by %s", path, prog),
			    summary_pid_cmd(x, d->pid));
		break;
	case TRANSCRIPT_FILE_PERSISTENCE:
		if (ok && strcmp(prog, "dpkg") != 0 && strcmp(prog, "apt") != 0 &&
		    strcmp(prog, "rpm") != 0 && strcmp(prog, "dnf") != 0 &&
		    strcmp(prog, "yum") != 0)
			summary_find(
			    x, SUMMARY_CAT_PERSISTENCE, 25, key,
			    summary_fmt(x, "%s written by %s (runs later on its own)", path, prog),
			    summary_pid_cmd(x, d->pid));
		break;
	default:
		break;
	}
}

static bool summary_loopback(const char *a)
{
	return summary_prefix(a, "127.") || strcmp(a, "::1") == 0 ||
	       summary_prefix(a, "::ffff:127.") || strcmp(a, "0.0.0.0") == 0 ||
	       strcmp(a, "::") == 0;
}

static void summary_network(struct summary_ctx *x, const Sessrec__Network *n)
{
	const char *addr = n->dst_addr ? n->dst_addr : "", *prog = n->program ? n->program : "";
	const char *proto = n->protocol && n->protocol[0] ? n->protocol : "tcp";
	bool ok = n->return_code == 0 || n->return_code == -EINPROGRESS;
	struct summary_dest *d = NULL;
	struct summary_proc *p = summary_proc(x, n->pid);
	char key[96], dest[80];
	size_t i, slot;

	x->conns++;
	if (p)
		p->kind |= SUMMARY_K_NET;
	for (i = 0; i < x->recent_n; i++)
		if (x->recent[i].pid == n->pid)
			x->recent[i].kind |= SUMMARY_K_NET;
	snprintf(dest, sizeof(dest), strchr(addr, ':') ? "[%s]:%u" : "%s:%u", addr, n->dst_port);
	slot = (summary_hash(addr, 0xcbf29ce484222325ULL ^ n->dst_port) ^ summary_hash(proto, 0)) &
	       (SUMMARY_IDX - 1);
	for (; x->dests_idx[slot]; slot = (slot + 1) & (SUMMARY_IDX - 1)) {
		struct summary_dest *c = &x->dests[x->dests_idx[slot] - 1];

		if (c->port == n->dst_port && strcmp(c->addr, addr) == 0 &&
		    strcmp(c->proto, proto) == 0)
			break;
	}
	if (x->dests_idx[slot]) {
		d = &x->dests[x->dests_idx[slot] - 1];
	} else if (x->n_dests < SUMMARY_DESTS_MAX) {
		d = &x->dests[x->n_dests];
		d->addr = strdup(addr);
		if (!d->addr) {
			x->err = -ENOMEM;
			return;
		}
		d->port = n->dst_port;
		snprintf(d->proto, sizeof(d->proto), "%s", proto);
		snprintf(d->prog, sizeof(d->prog), "%s", prog);
		x->dests_idx[slot] = (uint32_t)++x->n_dests;
	}
	if (d) {
		if (ok)
			d->ok++;
		else
			d->failed++;
	}
	if (summary_loopback(addr))
		return;
	/* a shell connecting out: bash's /dev/tcp */
	if (summary_in(prog, summary_shells)) {
		snprintf(key, sizeof(key), "shellnet:%s", dest);
		summary_find(
		    x, SUMMARY_CAT_REVERSE, 45, key,
		    summary_fmt(x, "a shell (%s) opened a network connection to %s (/dev/tcp)",
				prog, dest),
		    NULL);
	}
	for (i = 0; i < sizeof(summary_usual_ports) / sizeof(summary_usual_ports[0]); i++)
		if (summary_usual_ports[i] == n->dst_port)
			return;
	if (strcmp(proto, "udp") == 0 && (n->dst_port == 443 || n->dst_port == 5353))
		return;
	snprintf(key, sizeof(key), "port:%s/%s", dest, proto);
	summary_find(x, SUMMARY_CAT_PORT, 15, key,
		     summary_fmt(x, "outbound connection on an unusual port: %s → %s %s (%s)", prog,
				 dest, proto, ok ? "connected" : "failed"),
		     NULL);
}

/* 20+ ports of one host, or one port on 20+ hosts. */
static void summary_scans(struct summary_ctx *x)
{
	for (size_t i = 0; i < x->n_dests; i++) {
		size_t ports = 0, hosts = 0;

		for (size_t j = 0; j < x->n_dests; j++) {
			if (strcmp(x->dests[j].addr, x->dests[i].addr) == 0)
				ports++;
			if (x->dests[j].port == x->dests[i].port)
				hosts++;
		}
		if (ports >= SUMMARY_SCAN_PORTS && !summary_loopback(x->dests[i].addr)) {
			summary_find(x, SUMMARY_CAT_SCAN, 30, "scan",
				     summary_fmt(x, "port scan: %zu ports of %s (%s)", ports,
						 x->dests[i].addr, x->dests[i].prog),
				     NULL);
			return;
		}
		if (hosts >= SUMMARY_SCAN_PORTS) {
			summary_find(x, SUMMARY_CAT_SCAN, 30, "scan",
				     summary_fmt(x, "port scan: port %u of %zu hosts (%s)",
						 x->dests[i].port, hosts, x->dests[i].prog),
				     NULL);
			return;
		}
	}
}

/* ------------------------------------------------------------ the summary */

static int summary_cmp_found(const void *a, const void *b)
{
	const struct summary_finding *fa = a, *fb = b;

	if (fa->weight != fb->weight)
		return fa->weight > fb->weight ? -1 : 1;
	if (fa->cat != fb->cat)
		return fa->cat < fb->cat ? -1 : 1;
	return 0; /* qsort is not stable: ties are broken below by position */
}

static int summary_cmp_prog(const void *a, const void *b)
{
	const struct summary_prog *pa = a, *pb = b;

	if (pa->n != pb->n)
		return pa->n > pb->n ? -1 : 1;
	return strcmp(pa->name, pb->name);
}

static int summary_push(char ***v, size_t *n, size_t max, char *s)
{
	char **nv;

	if (!s)
		return -ENOMEM;
	for (size_t i = 0; i < *n; i++)
		if (strcmp((*v)[i], s) == 0) {
			free(s);
			return 0;
		}
	if (*n >= max) {
		free(s);
		return 0;
	}
	nv = realloc(*v, (*n + 1) * sizeof(*nv));
	if (!nv) {
		free(s);
		return -ENOMEM;
	}
	*v = nv;
	(*v)[(*n)++] = s;
	return 0;
}

/* Score per category, then the sum (see the table at the top). */
static uint32_t summary_score(const struct summary_ctx *x, uint32_t cat_score[SUMMARY_CAT_N])
{
	uint32_t total = 0, extra[SUMMARY_CAT_N] = {0};

	memset(cat_score, 0, SUMMARY_CAT_N * sizeof(*cat_score));
	for (size_t i = 0; i < x->n_found; i++) {
		const struct summary_finding *f = &x->found[i];

		if (!cat_score[f->cat]) {
			cat_score[f->cat] = f->weight;
			continue;
		}
		if (f->weight > cat_score[f->cat]) {
			/* the heavier one is the base, the lighter counts as a further finding */
			cat_score[f->cat] = f->weight;
		}
		extra[f->cat] += summary_cats[f->cat].step;
	}
	for (int c = 0; c < SUMMARY_CAT_N; c++) {
		if (!cat_score[c])
			continue;
		cat_score[c] +=
		    extra[c] > summary_cats[c].step_max ? summary_cats[c].step_max : extra[c];
		total += cat_score[c];
	}
	return total > 100 ? 100 : total;
}

static void summary_dur(int64_t ns, char *out, size_t len)
{
	int64_t s = ns > 0 ? ns / 1000000000LL : 0;

	if (s >= 3600)
		snprintf(out, len, "%" PRId64 "h%02" PRId64 "m", s / 3600, (s / 60) % 60);
	else if (s >= 60)
		snprintf(out, len, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
	else
		snprintf(out, len, "%" PRId64 "s", s);
}

/* Programs a reader would not count as "what the session did". */
static bool summary_trivial(const char *p)
{
	static const char *const names[] = {
	    "ls",	"cd",	  "pwd",      "echo",
	    "cat",	"clear",  "true",     "false",
	    "test",	"[",	  "dirname",  "basename",
	    "readlink", "id",	  "whoami",   "date",
	    "sleep",	"tty",	  "stty",     "tput",
	    "uname",	"env",	  "printenv", "mktemp",
	    "mkfifo",	"head",	  "tail",     "wc",
	    "sort",	"uniq",	  "tr",	      "cut",
	    "sed",	"grep",	  "awk",      "mawk",
	    "gawk",	"seq",	  "lesspipe", "dircolors",
	    "locale",	"groups", "hostname", "rm",
	    "less",	"more",	  "which",    "bash",
	    "sh",	"dash",	  "zsh",      "command-not-fou",
	    NULL,
	};

	return summary_in(p, names);
}

static int summary_build(struct summary_ctx *x, struct summary *out)
{
	const Sessrec__SessionStart *st = x->start;
	const char *user = st && st->user && st->user[0] ? st->user : "someone";
	const char *login = st && st->login && st->login[0] ? st->login : user;
	const char *host = st && st->server_hostname && st->server_hostname[0] ? st->server_hostname
									       : "an unknown node";
	const char *kind = st && st->kind && st->kind[0] ? st->kind : "local";
	uint32_t cat_score[SUMMARY_CAT_N], score;
	size_t *order = NULL, n_order = 0;
	char dur[32], when[40] = "?", *progs_s = NULL, *s = NULL;
	struct summary_finding *top = NULL;
	FILE *f = NULL;
	size_t flen = 0;
	int err = 0;

	summary_scans(x);
	if (x->err)
		return x->err;
	score = summary_score(x, cat_score);
	out->risk_score = score;
	out->risk_level = score >= 80	? SUMMARY_RISK_CRITICAL
			  : score >= 50 ? SUMMARY_RISK_HIGH
			  : score >= 20 ? SUMMARY_RISK_MEDIUM
					: SUMMARY_RISK_LOW;
	out->needs_review = out->risk_level >= SUMMARY_RISK_MEDIUM;

	/* findings, heaviest first, in order of appearance among equals */
	order = calloc(x->n_found + 1, sizeof(*order));
	if (!order)
		return -ENOMEM;
	for (size_t i = 0; i < x->n_found; i++)
		order[n_order++] = i;
	for (size_t i = 1; i < n_order; i++) {
		size_t v = order[i], j = i;

		while (j > 0 && (summary_cmp_found(&x->found[order[j - 1]], &x->found[v]) > 0 ||
				 (summary_cmp_found(&x->found[order[j - 1]], &x->found[v]) == 0 &&
				  order[j - 1] > v))) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = v;
	}
	if (n_order)
		top = &x->found[order[0]];
	for (size_t i = 0; i < n_order && !err; i++) {
		const struct summary_finding *fd = &x->found[order[i]];

		err = summary_push(&out->risk_reasons, &out->n_risk_reasons, SUMMARY_REASONS_MAX,
				   strdup(fd->reason));
		if (!err && fd->cmd)
			err = summary_push(&out->commands_of_interest, &out->n_commands_of_interest,
					   SUMMARY_COI_MAX, strdup(fd->cmd));
	}
	if (err)
		goto out;

	/* what ran: programs by count */
	qsort(x->progs, x->n_progs, sizeof(*x->progs), summary_cmp_prog);
	f = open_memstream(&progs_s, &flen);
	if (!f) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t i = 0, shown = 0; i < x->n_progs && shown < 8; i++) {
		if (summary_trivial(x->progs[i].name) && x->n_progs > 3)
			continue;
		fprintf(f, "%s%s", shown ? ", " : "", x->progs[i].name);
		if (x->progs[i].n > 1)
			fprintf(f, " (×%" PRIu64 ")", x->progs[i].n);
		shown++;
	}
	if (fclose(f)) {
		f = NULL;
		err = -ENOMEM;
		goto out;
	}
	f = NULL;
	/* benign sessions: the commands that did something besides looking */
	if (!out->n_commands_of_interest) {
		for (size_t i = 0; i < x->n && !err && out->n_commands_of_interest < 8; i++) {
			const Sessrec__Command *c = x->ev[i]->command;
			char *line;

			const struct summary_proc *parent;

			if (x->ev[i]->body_case != SESSREC__EVENT__BODY_COMMAND || !c ||
			    c->return_code || summary_trivial(summary_base(c->path)))
				continue;
			/* what the shell ran, not what those programs ran in turn (cc1 under gcc)
			 */
			parent = summary_proc(x, c->ppid);
			if (parent && !(parent->kind & SUMMARY_K_SHELL))
				continue;
			line = summary_cmdline(x, c);
			if (!line) {
				err = x->err ? x->err : -ENOMEM;
				break;
			}
			err = summary_push(&out->commands_of_interest, &out->n_commands_of_interest,
					   8, line);
		}
		if (err)
			goto out;
	}

	summary_dur(x->last_ns - x->first_ns, dur, sizeof(dur));
	if (x->first_ns)
		util_rfc3339(x->first_ns, when, sizeof(when));
	if (top)
		out->title =
		    summary_fmt(x, "%s by %s on %s", summary_cats[top->cat].title, user, host);
	else if (progs_s && progs_s[0])
		out->title = summary_fmt(x, "%s on %s: %s", user, host, progs_s);
	else
		out->title = summary_fmt(x, "%s session of %s on %s", kind, user, host);

	/* short: who, where, how much, and the verdict */
	f = open_memstream(&s, &flen);
	if (!f) {
		err = -ENOMEM;
		goto out;
	}
	fprintf(f, "%s", user);
	if (strcmp(user, login) != 0)
		fprintf(f, " (as %s)", login);
	fprintf(f, " ran %" PRIu64 " command%s on %s (%s session, %s)", x->execs - x->exec_failed,
		x->execs - x->exec_failed == 1 ? "" : "s", host, kind, dur);
	if (progs_s && progs_s[0])
		fprintf(f, ", mainly %s", progs_s);
	if (x->n_dests)
		fprintf(f, "; connected to %zu destination%s", x->n_dests,
			x->n_dests == 1 ? "" : "s");
	if (x->n_files)
		fprintf(f, "; wrote %zu file%s", x->n_files, x->n_files == 1 ? "" : "s");
	if (!n_order) {
		fprintf(f, ". Nothing risky was seen.");
	} else {
		fprintf(f, ". Risk %s (%u/100): ", summary_risk_name(out->risk_level), score);
		for (size_t i = 0, shown = 0; i < n_order && shown < 3; i++) {
			const struct summary_finding *fd = &x->found[order[i]];
			bool dup = false;

			for (size_t j = 0; j < i; j++)
				dup |= x->found[order[j]].cat == fd->cat;
			if (dup)
				continue;
			fprintf(f, "%s%s", shown ? "; " : "", summary_cats[fd->cat].title);
			shown++;
		}
		fprintf(f, ".");
	}
	if (fclose(f)) {
		f = NULL;
		err = -ENOMEM;
		goto out;
	}
	f = NULL;
	out->short_description = s;
	s = NULL;

	/* detailed: the facts, then the findings */
	f = open_memstream(&s, &flen);
	if (!f) {
		err = -ENOMEM;
		goto out;
	}
	fprintf(f, "Session %s: %s (login %s) on %s, %s session",
		st && st->sid && st->sid[0] ? st->sid : "?", user, login, host, kind);
	if (st && st->remote_addr && st->remote_addr[0])
		fprintf(f, " from %s", st->remote_addr);
	fprintf(f, ", started %s, lasted %s", when, dur);
	if (x->end) {
		if (x->end->exit_code >= 0)
			fprintf(f, ", exit status %d", x->end->exit_code);
		if (x->end->reason && x->end->reason[0])
			fprintf(f, " (%s)", x->end->reason);
	}
	fprintf(f, ".\n");
	if (st && st->n_initial_command) {
		char *cmd = NULL;

		if (transcript_argv_string(st->initial_command, st->n_initial_command, 160,
					   SUMMARY_CMD_MAX, &cmd) == 0) {
			fprintf(f, "Initial command: %s\n", cmd);
			free(cmd);
		}
	}
	fprintf(f, "Commands: %" PRIu64 " run", x->execs - x->exec_failed);
	if (x->exec_failed)
		fprintf(f,
			", %" PRIu64 " exec attempts failed (%" PRIu64 " not found: PATH lookups)",
			x->exec_failed, x->exec_missing);
	if (x->n_progs) {
		fprintf(f, "; by program:");
		for (size_t i = 0; i < x->n_progs && i < 20; i++)
			fprintf(f, "%s %s ×%" PRIu64, i ? "," : "", x->progs[i].name,
				x->progs[i].n);
		if (x->n_progs > 20)
			fprintf(f, ", and %zu more", x->n_progs - 20);
	}
	fprintf(f, ".\n");
	if (x->n_dests) {
		fprintf(f, "Network: %" PRIu64 " connection%s to", x->conns,
			x->conns == 1 ? "" : "s");
		for (size_t i = 0; i < x->n_dests && i < 12; i++) {
			const struct summary_dest *d = &x->dests[i];

			fprintf(f, "%s %s%s%s:%u/%s (%s%s)", i ? "," : "",
				strchr(d->addr, ':') ? "[" : "", d->addr,
				strchr(d->addr, ':') ? "]" : "", d->port, d->proto, d->prog,
				d->ok ? "" : ", failed");
		}
		if (x->n_dests > 12)
			fprintf(f, ", and %zu more destinations", x->n_dests - 12);
		fprintf(f, ".\n");
	}
	if (x->n_files) {
		fprintf(f, "Files written: %zu", x->n_files);
		for (size_t i = 0; i < x->n_files && i < 10; i++)
			fprintf(f, "%s %s (%s)", i ? "," : ":", x->files[i].path, x->files[i].prog);
		if (x->n_files > 10)
			fprintf(f, ", and %zu more", x->n_files - 10);
		fprintf(f, ".\n");
	}
	fprintf(f, "Terminal output: %" PRIu64 " bytes", x->print_bytes);
	if (x->lost_bytes || x->lost_events)
		fprintf(f,
			"; the recorder lost %" PRIu64 " bytes of output and %" PRIu64
			" events, so this account may be incomplete",
			x->lost_bytes, x->lost_events);
	fprintf(f, ".\n");
	if (!n_order) {
		fprintf(f, "Risk: low (0/100); nothing risky was found.\n");
	} else {
		fprintf(f, "Risk: %s (%u/100) from:", summary_risk_name(out->risk_level), score);
		for (int c = 0; c < SUMMARY_CAT_N; c++)
			if (cat_score[c])
				fprintf(f, " %s +%u;", summary_cats[c].title, cat_score[c]);
		fprintf(f, "\n");
		for (size_t i = 0; i < n_order; i++)
			fprintf(f, "- %s\n", x->found[order[i]].reason);
	}
	if (fclose(f)) {
		f = NULL;
		err = -ENOMEM;
		goto out;
	}
	f = NULL;
	out->detailed_description = s;
	s = NULL;
	if (!out->title)
		err = -ENOMEM;
out:
	if (f)
		fclose(f);
	free(s);
	free(progs_s);
	free(order);
	return err ? err : x->err;
}

int summary_builtin(const Sessrec__Event *const *events, size_t n, struct summary *out)
{
	struct summary_ctx x;
	int err = 0;

	if (!out || (n && !events))
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	memset(&x, 0, sizeof(x));
	x.ev = events;
	x.n = n;
	x.procs = calloc(SUMMARY_PIDS, sizeof(*x.procs));
	x.files = calloc(SUMMARY_FILES_MAX, sizeof(*x.files));
	x.dests = calloc(SUMMARY_DESTS_MAX, sizeof(*x.dests));
	x.progs = calloc(SUMMARY_PROGS_MAX, sizeof(*x.progs));
	x.found = calloc(SUMMARY_FINDINGS_MAX, sizeof(*x.found));
	x.files_idx = calloc(SUMMARY_IDX, sizeof(*x.files_idx));
	x.dests_idx = calloc(SUMMARY_IDX, sizeof(*x.dests_idx));
	if (!x.procs || !x.files || !x.dests || !x.progs || !x.found || !x.files_idx ||
	    !x.dests_idx) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n && !x.err; i++) {
		const Sessrec__Event *ev = events[i];

		if (!ev)
			continue;
		if (ev->time_ns) {
			if (!x.first_ns || ev->time_ns < x.first_ns)
				x.first_ns = ev->time_ns;
			if (ev->time_ns > x.last_ns)
				x.last_ns = ev->time_ns;
		}
		switch (ev->body_case) {
		case SESSREC__EVENT__BODY_START:
			if (!ev->start || x.start)
				break;
			x.start = ev->start;
			for (size_t j = 0; j < ev->start->n_initial_command; j++) {
				const char *a = ev->start->initial_command[j];

				if (a && strlen(a) > 3)
					summary_text(&x, a, "initial command", NULL);
			}
			break;
		case SESSREC__EVENT__BODY_END:
			if (ev->end)
				x.end = ev->end;
			if (ev->end && ev->end->session_stop_ns > x.last_ns)
				x.last_ns = ev->end->session_stop_ns;
			break;
		case SESSREC__EVENT__BODY_COMMAND:
			if (ev->command)
				summary_command(&x, i, ev);
			break;
		case SESSREC__EVENT__BODY_DISK:
			if (ev->disk)
				summary_disk(&x, ev->disk);
			break;
		case SESSREC__EVENT__BODY_NETWORK:
			if (ev->network)
				summary_network(&x, ev->network);
			break;
		case SESSREC__EVENT__BODY_PRINT:
			if (ev->print && ev->print->data.len) {
				x.print_bytes += ev->print->data.len;
				summary_print(&x, ev->print->data.data, ev->print->data.len);
			}
			break;
		case SESSREC__EVENT__BODY_LOST:
			if (ev->lost) {
				x.lost_bytes += ev->lost->bytes;
				x.lost_events += ev->lost->events;
			}
			break;
		default:
			break;
		}
	}
	if (!x.err && x.line_len) {
		x.line[x.line_len] = '\0';
		summary_text(&x, x.line, "typed", NULL);
	}
	err = x.err ? x.err : summary_build(&x, out);
out:
	for (size_t i = 0; x.files && i < x.n_files; i++)
		free(x.files[i].path);
	for (size_t i = 0; x.dests && i < x.n_dests; i++)
		free(x.dests[i].addr);
	for (size_t i = 0; x.found && i < x.n_found; i++) {
		free(x.found[i].reason);
		free(x.found[i].cmd);
	}
	free(x.procs);
	free(x.files_idx);
	free(x.dests_idx);
	free(x.files);
	free(x.dests);
	free(x.progs);
	free(x.found);
	if (err)
		summary_clear(out);
	return err;
}

void summary_clear(struct summary *s)
{
	if (!s)
		return;
	free(s->title);
	free(s->short_description);
	free(s->detailed_description);
	for (size_t i = 0; i < s->n_risk_reasons; i++)
		free(s->risk_reasons[i]);
	free(s->risk_reasons);
	for (size_t i = 0; i < s->n_commands_of_interest; i++)
		free(s->commands_of_interest[i]);
	free(s->commands_of_interest);
	memset(s, 0, sizeof(*s));
}

static const char *const summary_risk_names[] = {
    [SUMMARY_RISK_LOW] = "low",
    [SUMMARY_RISK_MEDIUM] = "medium",
    [SUMMARY_RISK_HIGH] = "high",
    [SUMMARY_RISK_CRITICAL] = "critical",
};

const char *summary_risk_name(enum summary_risk r)
{
	if ((unsigned int)r >= sizeof(summary_risk_names) / sizeof(summary_risk_names[0]))
		return "unknown";
	return summary_risk_names[r];
}

int summary_risk_parse(const char *s, enum summary_risk *out)
{
	if (!s || !out)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(summary_risk_names) / sizeof(summary_risk_names[0]); i++)
		if (strcasecmp(s, summary_risk_names[i]) == 0) {
			*out = (enum summary_risk)i;
			return 0;
		}
	return -EINVAL;
}
