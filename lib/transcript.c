/*
 * Session transcripts for a model.
 *
 * Events become lines in time order. Terminal output goes through a libvterm
 * screen of the session's size, so that what reaches the text is what a person
 * saw: the last state of a progress bar redrawn with \r, the final screen of a
 * full-screen program, no colour codes. Screen text leaves the emulator at
 * "flush points" (before each command and network event, at the end) and
 * right before the screen would lose it (clear, leaving the alternate screen,
 * reset); lines scrolled off the top are caught by sb_pushline. Each screen
 * row remembers the hash of what was last written for it, so a row is written
 * again only when it changed; the hashes move with the rows when the screen
 * scrolls (moverect).
 *
 * Long lines the terminal wrapped are joined again where the rows come in
 * order (scrolling text, a screen nobody addressed the cursor on).
 *
 * Events are lines of their own: "[pid] exec PATH ARGS | rc=N" for every exec
 * (with the interpreter of a script, the argv[0] of busybox applets and login
 * shells; a long argument a wrapper passes on is referred to, not repeated;
 * the failed attempts of a PATH search (env, execvp) fold into the exec that
 * found the program), "[net] PROG → ADDR:PORT PROTO (ok|refused|...)",
 * "[read]"/"[write] PATH (PROG)", "[N bytes of output lost]", a time mark
 * "[+5m02s]" after a pause of a minute, and "[end] ..." with the exit status.
 *
 * The text is then made smaller without losing what a reviewer needs:
 *   - runs of lines that differ only in their digits keep the first and last
 *     line and a count; runs of identical lines become one line and "[×N]";
 *   - the output between two events (a "stretch") keeps its first and last
 *     TRANSCRIPT_HEAD/TAIL lines and up to TRANSCRIPT_NOTABLE lines between
 *     that mention errors, failures, denials and the like;
 *   - a command that runs again and again with the same output (a loop) is
 *     written once with "… ×N";
 *   - file opens: library, locale and other noise reads, directory listings,
 *     failed lookups and reads of the files named on the command line are
 *     dropped; other reads and writes are listed, or counted per directory
 *     and program past TRANSCRIPT_GROUP_LIST files (a repository's .git/ and
 *     package trees count as one directory); every sensitive path
 *     (transcript_file_kind: credentials, shadow, sudoers, and writes to
 *     accounts, history and persistence files) is written out one by one.
 * Every command path, network destination and sensitive path stays in the
 * text, even past TRANSCRIPT_TEXT_MAX, where only what is new is added.
 */
#include "transcript.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <vterm.h>

#include "util.h"

#define TRANSCRIPT_COLS_DEFAULT 80
#define TRANSCRIPT_ROWS_DEFAULT 24
#define TRANSCRIPT_COLS_MAX	500
#define TRANSCRIPT_ROWS_MAX	200
/*
 * Emulation costs per byte and per cell libvterm moves (a scroll moves the
 * whole screen): past this much work (about 20 s of CPU), output is counted
 * instead of rendered, so that no recording can keep a summarizer busy for long.
 */
#define TRANSCRIPT_WORK_MAX	(8ULL << 30)
#define TRANSCRIPT_HEAD		40 /* output lines kept at the start of a stretch */
#define TRANSCRIPT_TAIL		40 /* ... at its end */
#define TRANSCRIPT_NOTABLE	40 /* ... and notable ones from between */
#define TRANSCRIPT_GROUPS	64 /* file groups listed per stretch (sensitive paths: all) */
#define TRANSCRIPT_GROUP_LIST	3  /* a group of this many paths or fewer lists them */
#define TRANSCRIPT_ARG_MAX	512
#define TRANSCRIPT_CMD_MAX	4096
#define TRANSCRIPT_OUTPUT_MAX	(8u << 20)  /* terminal text kept, all told */
#define TRANSCRIPT_TEXT_MAX	(32u << 20) /* past this, only new paths and destinations */
#define TRANSCRIPT_SEEN_MAX	(1u << 20)  /* entries of the "already written" set */
#define TRANSCRIPT_UNIT_CMP_MAX (64u << 10) /* largest command + output compared for repeats */
#define TRANSCRIPT_LONG_ARG	128	    /* arguments this long are not repeated ... */
#define TRANSCRIPT_RECENT	16	    /* ... from this many recent ones */
#define TRANSCRIPT_MISSES_MAX	2048	    /* bytes of paths a PATH search tried */
#define TRANSCRIPT_WRAP_MAX	(64u << 10) /* a long line is joined up to this size */
#define TRANSCRIPT_GAP_NS	(60LL * 1000000000LL) /* a pause worth a time mark */
#define TRANSCRIPT_FNV_BASIS	0xcbf29ce484222325ULL
#define TRANSCRIPT_FNV_PRIME	0x100000001b3ULL
#define TRANSCRIPT_BLANK	TRANSCRIPT_FNV_BASIS /* the hash of an empty row */
#define TRANSCRIPT_NONE		((size_t)-1)

struct transcript_str {
	char *p;
	size_t len, cap;
};

/* What was last written for one screen row. */
struct transcript_row {
	uint64_t hash; /* of its text, TRANSCRIPT_BLANK when blank or never written */
	bool dirty;    /* changed on screen since it was last looked at */
};

/* A set of 64-bit hashes (open addressing; 0 is a free slot). */
struct transcript_set {
	uint64_t *v;
	size_t n, cap;
};

/* A long argument written on a recent command line. */
struct transcript_recent {
	uint64_t hash;
	size_t len;
	uint32_t pid;
};

/* Files opened in one stretch: by one program, in one directory (or one sensitive path). */
struct transcript_group {
	uint64_t key;
	char op; /* 'r' read, 'w' write */
	bool sensitive;
	int rc; /* 0, or the errno of a failed open */
	char *prog;
	char *where; /* directory (with a trailing '/'), or the sensitive path */
	char *paths[TRANSCRIPT_GROUP_LIST];
	uint64_t n;
};

struct transcript {
	uint32_t cols, rows;
	bool size_fixed; /* given to transcript_new: the session.start's size is not used */
	VTerm *vt;
	VTermScreen *vs;
	struct transcript_row *meta, *meta_main, *meta_alt;
	bool alt;
	int push_idx; /* row of the next sb_pushline since the last moverect */
	VTermScreenCell *cells;
	char *line; /* one row of text */
	size_t line_cap;
	bool line_full;		    /* it reached the last column */
	struct transcript_str wrap; /* rows of a long line, joined */
	bool wrap_on;
	int wrap_row; /* the row that would continue it in a flush pass */
	bool last_cr;
	uint8_t u8[4]; /* the UTF-8 character being decoded (maybe cut between writes) */
	size_t u8_len, u8_need;
	uint32_t u8_cp, u8_min;
	uint8_t *clean; /* print data as it goes to libvterm */
	size_t clean_cap;
	/* escape sequences that make the screen lose text */
	int esc;
	bool scan_alt;	     /* the alternate screen is on, as far as the bytes fed so far go */
	bool printed;	     /* text was printed since the last pass over the screen */
	bool cursor_pending; /* that pass left the cursor's row unwritten */
	/* emulation work (bytes fed, cells moved and read), bounded by TRANSCRIPT_WORK_MAX */
	uint64_t work, budget, unrendered, unrendered_seg;
	bool addressed; /* the cursor was positioned since the last pass over the screen */
	char csi[24];
	size_t csi_len;

	/* the text */
	char *text;
	size_t len, cap;
	int err;
	bool finished;
	uint64_t raw_bytes;
	int64_t start_ns, last_ns;

	/* lines differing only in digits: first, last, how many */
	struct transcript_str run_first, run_last;
	uint64_t run_key, run_n;
	bool run_same;

	/* the stretch of output between two events */
	struct transcript_str head; /* head lines, then notable lines and markers */
	struct transcript_str tail[TRANSCRIPT_TAIL];
	size_t tail_start, tail_n;
	uint64_t seg_lines, seg_omitted, seg_notable;
	uint64_t out_bytes;

	/* files opened in this stretch */
	struct transcript_group *groups;
	size_t n_groups, cap_groups;
	uint64_t groups_more;	     /* file events past TRANSCRIPT_GROUPS plain groups */
	struct transcript_set files; /* (group, path) pairs counted */

	/* a command repeated with the same output */
	size_t unit_start, prev_start, prev_end;
	uint64_t unit_n;
	uint32_t unit_pid;
	/* long arguments on recent command lines */
	struct transcript_recent recent[TRANSCRIPT_RECENT];
	size_t recent_next;
	/* the arguments of the last command, NUL-separated */
	struct transcript_str args;
	uint32_t args_pid;
	/* a PATH search in progress: failed execs of one name, argv and process */
	bool miss;
	uint32_t miss_pid;
	int miss_rc;
	uint64_t miss_key, miss_n;
	int64_t miss_ns;
	struct transcript_str miss_line;  /* the first attempt */
	struct transcript_str miss_first; /* its path */
	struct transcript_str miss_paths; /* the directories tried, space-separated */
	uint64_t miss_seen[4];		  /* directory lists written lately */
	size_t miss_seen_next;
	/* an event line repeated: written once with " ×N" */
	size_t ev_off, ev_base;
	uint64_t ev_n;

	/* past TRANSCRIPT_TEXT_MAX */
	struct transcript_set seen;
	uint64_t over_cmds, over_net, over_lines, over_files;
};

/* ------------------------------------------------------------ small helpers */

static uint64_t transcript_hash(const void *p, size_t n, uint64_t h)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= TRANSCRIPT_FNV_PRIME;
	}
	return h;
}

/* The hash of a line with each run of digits read as one '#': its "shape". */
static uint64_t transcript_shape(const char *s, size_t n)
{
	uint64_t h = TRANSCRIPT_FNV_BASIS;
	bool digit = false;

	for (size_t i = 0; i < n; i++) {
		uint8_t c = (uint8_t)s[i];

		if (c >= '0' && c <= '9') {
			if (digit)
				continue;
			digit = true;
			c = '#';
		} else {
			digit = false;
		}
		h ^= c;
		h *= TRANSCRIPT_FNV_PRIME;
	}
	return h;
}

static int transcript_str_set(struct transcript_str *s, const char *p, size_t n)
{
	if (n + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 128;
		char *q;

		while (cap < n + 1)
			cap *= 2;
		q = realloc(s->p, cap);
		if (!q)
			return -ENOMEM;
		s->p = q;
		s->cap = cap;
	}
	memcpy(s->p, p, n);
	s->p[n] = '\0';
	s->len = n;
	return 0;
}

static int transcript_str_add(struct transcript_str *s, const char *p, size_t n)
{
	if (s->len + n + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 256;
		char *q;

		while (cap < s->len + n + 1)
			cap *= 2;
		q = realloc(s->p, cap);
		if (!q)
			return -ENOMEM;
		s->p = q;
		s->cap = cap;
	}
	memcpy(s->p + s->len, p, n);
	s->len += n;
	s->p[s->len] = '\0';
	return 0;
}

static size_t transcript_utf8_put(char *out, uint32_t c)
{
	if (c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		c = 0xfffd;
	if (c < 0x80) {
		out[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		out[0] = (char)(0xc0 | (c >> 6));
		out[1] = (char)(0x80 | (c & 0x3f));
		return 2;
	}
	if (c < 0x10000) {
		out[0] = (char)(0xe0 | (c >> 12));
		out[1] = (char)(0x80 | ((c >> 6) & 0x3f));
		out[2] = (char)(0x80 | (c & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (c >> 18));
	out[1] = (char)(0x80 | ((c >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((c >> 6) & 0x3f));
	out[3] = (char)(0x80 | (c & 0x3f));
	return 4;
}

static const char *transcript_base(const char *path)
{
	const char *s = strrchr(path, '/');

	return s && s[1] ? s + 1 : path;
}

static bool transcript_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool transcript_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* "1h02m03s", "4m05s", "6.2s" */
static void transcript_duration(int64_t ns, char *out, size_t len)
{
	int64_t s = ns / 1000000000LL;

	if (ns < 0)
		ns = 0, s = 0;
	if (s >= 3600)
		snprintf(out, len, "%" PRId64 "h%02" PRId64 "m%02" PRId64 "s", s / 3600,
			 (s / 60) % 60, s % 60);
	else if (s >= 60)
		snprintf(out, len, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
	else
		snprintf(out, len, "%" PRId64 ".%" PRId64 "s", s,
			 (int64_t)((ns / 100000000LL) % 10));
}

static const char *transcript_errname(int rc, char *buf, size_t len)
{
	const char *name = rc < 0 ? strerrorname_np(-rc) : NULL;

	if (name)
		return name;
	snprintf(buf, len, "error %d", rc);
	return buf;
}

/* ------------------------------------------------------------ file kinds */

static const char *const transcript_history_names[] = {
    ".bash_history", ".zsh_history",	".sh_history",	      ".history",
    ".ash_history",  ".ksh_history",	".python_history",    ".mysql_history",
    ".psql_history", ".sqlite_history", ".node_repl_history", NULL,
};

static bool transcript_in_list(const char *s, const char *const *list)
{
	for (size_t i = 0; list[i]; i++)
		if (strcmp(s, list[i]) == 0)
			return true;
	return false;
}

static bool transcript_any_prefix(const char *s, const char *const *list)
{
	for (size_t i = 0; list[i]; i++)
		if (transcript_prefix(s, list[i]))
			return true;
	return false;
}

static bool transcript_any_suffix(const char *s, const char *const *list)
{
	for (size_t i = 0; list[i]; i++)
		if (transcript_suffix(s, list[i]))
			return true;
	return false;
}

static bool transcript_is_credential(const char *path)
{
	static const char *const suffixes[] = {
	    "/.aws/credentials",
	    "/.netrc",
	    "/.git-credentials",
	    "/.kube/config",
	    "/.docker/config.json",
	    "/.pgpass",
	    "/.my.cnf",
	    "/.pypirc",
	    "/.vault-token",
	    "/.config/gcloud/credentials.db",
	    "/.config/gcloud/access_tokens.db",
	    "/application_default_credentials.json",
	    "/.azure/accessTokens.json",
	    "/.azure/msal_token_cache.json",
	    "/.gnupg/secring.gpg",
	    ".keytab",
	    NULL,
	};
	static const char *const prefixes[] = {
	    "/etc/kubernetes/admin.conf", "/etc/kubernetes/pki/", "/run/secrets/",
	    "/var/run/secrets/",	  "/etc/ssl/private/",	  NULL,
	};
	const char *base = transcript_base(path), *ssh;

	if (transcript_any_suffix(path, suffixes) || transcript_any_prefix(path, prefixes) ||
	    strstr(path, "/.gnupg/private-keys-v1.d/"))
		return true;
	/* private SSH keys: ~/.ssh/id_*, any other key-looking file in ~/.ssh, host keys */
	ssh = strstr(path, "/.ssh/");
	if (ssh && ssh[6] && !strchr(ssh + 6, '/') && !transcript_suffix(base, ".pub") &&
	    !transcript_prefix(base, "known_hosts") && strcmp(base, "config") != 0 &&
	    !transcript_prefix(base, "authorized_keys") && !transcript_prefix(base, "agent"))
		return true;
	if (transcript_prefix(path, "/etc/ssh/ssh_host_") && transcript_suffix(path, "_key"))
		return true;
	return false;
}

static bool transcript_is_noise(const char *path)
{
	static const char *const prefixes[] = {
	    "/lib/",
	    "/lib32/",
	    "/lib64/",
	    "/libx32/",
	    "/usr/lib/",
	    "/usr/lib32/",
	    "/usr/lib64/",
	    "/usr/libx32/",
	    "/usr/libexec/",
	    "/usr/include/",
	    "/usr/local/include/",
	    "/usr/local/lib/",
	    "/usr/share/locale/",
	    "/usr/share/i18n/",
	    "/usr/share/zoneinfo/",
	    "/usr/share/terminfo/",
	    "/usr/share/X11/",
	    "/usr/share/misc/",
	    "/usr/share/file/",
	    "/usr/share/mime/",
	    "/usr/share/bash-completion/",
	    "/usr/share/vim/",
	    "/usr/share/ca-certificates/",
	    "/usr/share/git-core/",
	    "/usr/share/perl",
	    "/usr/share/python",
	    "/etc/ld.so.",
	    "/etc/gitconfig",
	    "/etc/ssl/",
	    "/etc/ca-certificates",
	    "/etc/locale.",
	    "/etc/profile",
	    "/etc/bash_completion",
	    "/etc/vim/",
	    "/etc/terminfo/",
	    "/etc/alternatives/",
	    "/proc/",
	    "/sys/",
	    "/dev/",
	    "/run/",
	    NULL,
	};
	static const char *const exact[] = {
	    "/etc/localtime",
	    "/etc/nsswitch.conf",
	    "/etc/host.conf",
	    "/etc/hosts",
	    "/etc/resolv.conf",
	    "/etc/gai.conf",
	    "/etc/passwd",
	    "/etc/group",
	    "/etc/inputrc",
	    "/etc/bash.bashrc",
	    "/etc/environment",
	    "/etc/os-release",
	    "/etc/lsb-release",
	    "/etc/debian_version",
	    "/etc/login.defs",
	    "/etc/mime.types",
	    ".",
	    NULL,
	};
	static const char *const bases[] = {
	    ".bashrc",	".bash_profile", ".profile",	  ".bash_logout",
	    ".inputrc", ".terminfo",	 ".bash_aliases", NULL,
	};

	return transcript_any_prefix(path, prefixes) || transcript_in_list(path, exact) ||
	       transcript_in_list(transcript_base(path), bases);
}

/* Files that run later on their own when written. */
static bool transcript_is_persistence(const char *path)
{
	static const char *const prefixes[] = {
	    "/etc/cron",	   "/var/spool/cron/",
	    "/etc/systemd/",	   "/lib/systemd/system/",
	    "/usr/lib/systemd/",   "/etc/init.d/",
	    "/etc/rc.local",	   "/etc/ld.so.preload",
	    "/etc/profile",	   "/etc/bash.bashrc",
	    "/etc/environment",	   "/etc/update-motd.d/",
	    "/etc/xdg/autostart/", "/etc/modules-load.d/",
	    "/etc/udev/rules.d/",  "/etc/anacrontab",
	    "/var/spool/at",	   NULL,
	};
	static const char *const contains[] = {
	    "/.ssh/authorized_keys",
	    "/.config/systemd/user/",
	    "/.config/autostart/",
	    NULL,
	};
	static const char *const bases[] = {
	    ".bashrc", ".bash_profile", ".profile", ".bash_login",   ".bash_logout",
	    ".zshrc",  ".zprofile",	".zshenv",  ".bash_aliases", NULL,
	};

	if (transcript_any_prefix(path, prefixes) ||
	    transcript_in_list(transcript_base(path), bases))
		return true;
	for (size_t i = 0; contains[i]; i++)
		if (strstr(path, contains[i]))
			return true;
	return false;
}

enum transcript_file_kind transcript_file_kind(const char *path, bool write)
{
	static const char *const shadow[] = {
	    "/etc/shadow",   "/etc/gshadow",	      "/etc/shadow-",
	    "/etc/gshadow-", "/etc/security/opasswd", NULL,
	};
	static const char *const accounts[] = {
	    "/etc/passwd", "/etc/group",  "/etc/passwd-",    "/etc/group-",
	    "/etc/subuid", "/etc/subgid", "/etc/login.defs", NULL,
	};
	static const char *const quiet_writes[] = {
	    "/dev/null",      "/dev/tty",  "/dev/pts/",	   "/dev/ptmx",	  "/dev/std", "/dev/fd/",
	    "/proc/self/fd/", "/dev/zero", "/dev/urandom", "/dev/random", NULL,
	};

	if (!path || !path[0])
		return TRANSCRIPT_FILE_NOISE;
	if (transcript_in_list(path, shadow))
		return TRANSCRIPT_FILE_SHADOW;
	if (strcmp(path, "/etc/sudoers") == 0 || transcript_prefix(path, "/etc/sudoers.d/") ||
	    strcmp(path, "/etc/doas.conf") == 0)
		return TRANSCRIPT_FILE_SUDOERS;
	if (transcript_is_credential(path))
		return TRANSCRIPT_FILE_CREDENTIAL;
	if (!write)
		return transcript_is_noise(path) ? TRANSCRIPT_FILE_NOISE : TRANSCRIPT_FILE_PLAIN;
	if (transcript_any_prefix(path, quiet_writes))
		return TRANSCRIPT_FILE_NOISE;
	if (transcript_in_list(path, accounts) || transcript_prefix(path, "/etc/pam.d/") ||
	    transcript_prefix(path, "/etc/security/"))
		return TRANSCRIPT_FILE_ACCOUNTS;
	if (transcript_in_list(transcript_base(path), transcript_history_names))
		return TRANSCRIPT_FILE_HISTORY;
	if (transcript_is_persistence(path))
		return TRANSCRIPT_FILE_PERSISTENCE;
	return TRANSCRIPT_FILE_PLAIN;
}

bool transcript_open_writes(int32_t flags)
{
	return (flags & O_ACCMODE) != O_RDONLY || (flags & (O_CREAT | O_TRUNC));
}

/* ------------------------------------------------------------ command lines */

/* Characters after which an argument needs quoting to read back as one word. */
static bool transcript_needs_quote(const char *s, size_t n)
{
	if (!n)
		return true;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x80 && !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
				  (c >= '0' && c <= '9') || strchr("-_./=:,+@%^", c)))
			return true;
	}
	return false;
}

static int transcript_quote(struct transcript_str *o, const char *s, size_t max)
{
	size_t n = strlen(s), cut = n > max ? max : n;
	int err = 0;

	/* never cut a UTF-8 character in two */
	while (cut < n && cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80)
		cut--;
	if (!transcript_needs_quote(s, cut)) {
		err = transcript_str_add(o, s, cut);
	} else {
		bool ctl = false;

		for (size_t i = 0; i < cut; i++)
			if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
				ctl = true;
		err = transcript_str_add(o, ctl ? "$'" : "'", ctl ? 2 : 1);
		for (size_t i = 0; !err && i < cut; i++) {
			unsigned char c = (unsigned char)s[i];
			char esc[8];

			if (c == '\'')
				err = ctl ? transcript_str_add(o, "\\'", 2)
					  : transcript_str_add(o, "'\\''", 4);
			else if (ctl && c == '\\')
				err = transcript_str_add(o, "\\\\", 2);
			else if (c == '\n')
				err = transcript_str_add(o, "\\n", 2);
			else if (c == '\t')
				err = transcript_str_add(o, "\\t", 2);
			else if (c < 0x20 || c == 0x7f) {
				snprintf(esc, sizeof(esc), "\\x%02x", c);
				err = transcript_str_add(o, esc, 4);
			} else
				err = transcript_str_add(o, (const char *)&s[i], 1);
		}
		if (!err)
			err = transcript_str_add(o, "'", 1);
	}
	if (!err && cut < n) {
		char more[48];

		snprintf(more, sizeof(more), "…(+%zu bytes)", n - cut);
		err = transcript_str_add(o, more, strlen(more));
	}
	return err;
}

int transcript_argv_string(char *const *argv, size_t argc, size_t arg_max, size_t max, char **out)
{
	struct transcript_str o = {0};
	int err = 0;

	*out = NULL;
	if (!arg_max)
		arg_max = SIZE_MAX;
	err = transcript_str_add(&o, "", 0);
	for (size_t i = 0; !err && i < argc; i++) {
		if (max && o.len >= max) {
			char more[48];

			snprintf(more, sizeof(more), " …(+%zu arguments)", argc - i);
			err = transcript_str_add(&o, more, strlen(more));
			break;
		}
		if (i)
			err = transcript_str_add(&o, " ", 1);
		if (!err)
			err = transcript_quote(&o, argv[i] ? argv[i] : "", arg_max);
	}
	if (err)
		free(o.p);
	else
		*out = o.p;
	return err;
}

/* ------------------------------------------------------------ text output */

static void transcript_put(struct transcript *t, const char *s, size_t n)
{
	if (t->err)
		return;
	if (t->len + n + 1 > t->cap) {
		size_t cap = t->cap ? t->cap : 16384;
		char *p;

		while (cap < t->len + n + 1)
			cap *= 2;
		p = realloc(t->text, cap);
		if (!p) {
			t->err = -ENOMEM;
			return;
		}
		t->text = p;
		t->cap = cap;
	}
	memcpy(t->text + t->len, s, n);
	t->len += n;
	t->text[t->len] = '\0';
}

static void transcript_printf(struct transcript *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void transcript_printf(struct transcript *t, const char *fmt, ...)
{
	char buf[512], *p = buf;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0) {
		t->err = t->err ? t->err : -EINVAL;
		return;
	}
	if ((size_t)n >= sizeof(buf)) {
		p = malloc((size_t)n + 1);
		if (!p) {
			t->err = -ENOMEM;
			return;
		}
		va_start(ap, fmt);
		n = vsnprintf(p, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	if (n >= 0)
		transcript_put(t, p, (size_t)n);
	if (p != buf)
		free(p);
}

/* Add a hash to a set; true when it was not there (or the set is full: then all is new). */
static bool transcript_set_add(struct transcript *t, struct transcript_set *set, uint64_t h)
{
	size_t i;

	if (!h)
		h = 1; /* 0 marks a free slot */
	if (set->n * 2 >= set->cap) {
		size_t cap = set->cap ? set->cap * 2 : 256;
		uint64_t *v;

		if (set->n >= TRANSCRIPT_SEEN_MAX)
			return true;
		v = calloc(cap, sizeof(*v));
		if (!v) {
			t->err = -ENOMEM;
			return true;
		}
		for (i = 0; i < set->cap; i++) {
			size_t j;

			if (!set->v[i])
				continue;
			for (j = set->v[i] & (cap - 1); v[j]; j = (j + 1) & (cap - 1))
				;
			v[j] = set->v[i];
		}
		free(set->v);
		set->v = v;
		set->cap = cap;
	}
	for (i = h & (set->cap - 1); set->v[i]; i = (i + 1) & (set->cap - 1))
		if (set->v[i] == h)
			return false;
	set->v[i] = h;
	set->n++;
	return true;
}

static void transcript_set_clear(struct transcript_set *set)
{
	if (!set->n)
		return;
	if (set->cap > 4096) {
		free(set->v);
		set->v = NULL;
		set->cap = 0;
	} else {
		memset(set->v, 0, set->cap * sizeof(*set->v));
	}
	set->n = 0;
}

/* Remember a command path, destination, sensitive path as written; true when new. */
static bool transcript_seen_add(struct transcript *t, uint64_t h)
{
	return transcript_set_add(t, &t->seen, h);
}

static bool transcript_over(const struct transcript *t)
{
	return t->len > TRANSCRIPT_TEXT_MAX;
}

/* ------------------------------------------------------------ output lines */

/*
 * A line worth keeping from the middle of a long output: a word that starts
 * like one of these (case aside). One pass; words only at a word start, so
 * that base64 or hex noise rarely matches.
 */
static bool transcript_notable(const char *s)
{
	static const char *const words[] = {
	    "abort",	 "cannot",     "denied",       "error",	       "exception", "fail",
	    "fatal",	 "forbidden",  "invalid",      "killed",       "not found", "panic",
	    "password",	 "permission", "refused",      "segmentation", "sudo",	    "timed out",
	    "traceback", "unable",     "unauthorized", "warn",	       NULL,
	};
	bool start = true;

	for (const char *p = s; *p; p++) {
		char c = *p | 0x20; /* ASCII lower case */
		bool alnum = (c >= 'a' && c <= 'z') || (*p >= '0' && *p <= '9');

		if (start && c >= 'a' && c <= 'z') {
			for (size_t i = 0; words[i]; i++)
				if (words[i][0] == c &&
				    strncasecmp(p, words[i], strlen(words[i])) == 0)
					return true;
		}
		start = !alnum;
	}
	return false;
}

static void transcript_head_add(struct transcript *t, const char *s, size_t n)
{
	if (t->err)
		return;
	if (transcript_str_add(&t->head, s, n) || transcript_str_add(&t->head, "\n", 1))
		t->err = -ENOMEM;
}

static void transcript_omitted_mark(struct transcript *t, struct transcript_str *to)
{
	char buf[64];
	int n;

	if (!t->seg_omitted)
		return;
	if (!to && transcript_over(t)) {
		t->seg_omitted = 0; /* counted in over_lines, told once at the end */
		return;
	}
	n = snprintf(buf, sizeof(buf), "[… %" PRIu64 " line%s omitted …]\n", t->seg_omitted,
		     t->seg_omitted == 1 ? "" : "s");
	if (to) {
		if (transcript_str_add(to, buf, (size_t)n))
			t->err = -ENOMEM;
	} else {
		transcript_put(t, buf, (size_t)n);
	}
	t->seg_omitted = 0;
}

/* A line of output (after run collapsing) into the stretch: head, tail, notable ones. */
static void transcript_stretch_line(struct transcript *t, const char *s, size_t n)
{
	struct transcript_str *slot;

	if (t->out_bytes > TRANSCRIPT_OUTPUT_MAX || transcript_over(t)) {
		t->seg_omitted++;
		t->over_lines++;
		return;
	}
	t->out_bytes += n + 1;
	if (t->seg_lines++ < TRANSCRIPT_HEAD) {
		transcript_head_add(t, s, n);
		return;
	}
	if (t->tail_n == TRANSCRIPT_TAIL) {
		/* the oldest tail line leaves: kept when notable, else counted */
		struct transcript_str *old = &t->tail[t->tail_start];

		if (!transcript_prefix(old->p, "[… ") && t->seg_notable < TRANSCRIPT_NOTABLE &&
		    transcript_notable(old->p)) {
			transcript_omitted_mark(t, &t->head);
			transcript_head_add(t, old->p, old->len);
			t->seg_notable++;
		} else {
			t->seg_omitted++;
		}
		t->tail_start = (t->tail_start + 1) % TRANSCRIPT_TAIL;
		t->tail_n--;
	}
	slot = &t->tail[(t->tail_start + t->tail_n) % TRANSCRIPT_TAIL];
	if (transcript_str_set(slot, s, n))
		t->err = -ENOMEM;
	t->tail_n++;
}

static void transcript_run_flush(struct transcript *t)
{
	char buf[64];
	int n;

	if (!t->run_n)
		return;
	if (t->run_n == 1) {
		transcript_stretch_line(t, t->run_first.p, t->run_first.len);
	} else if (t->run_same) {
		/* identical lines: one, with the count */
		struct transcript_str *s = &t->run_last;

		n = snprintf(buf, sizeof(buf), "  [×%" PRIu64 "]", t->run_n);
		if (transcript_str_set(s, t->run_first.p, t->run_first.len) ||
		    transcript_str_add(s, buf, (size_t)n))
			t->err = -ENOMEM;
		else
			transcript_stretch_line(t, s->p, s->len);
	} else {
		transcript_stretch_line(t, t->run_first.p, t->run_first.len);
		if (t->run_n > 2) {
			n = snprintf(buf, sizeof(buf), "[… %" PRIu64 " similar line%s …]",
				     t->run_n - 2, t->run_n == 3 ? "" : "s");
			transcript_stretch_line(t, buf, (size_t)n);
		}
		transcript_stretch_line(t, t->run_last.p, t->run_last.len);
	}
	t->run_n = 0;
}

/* One line of terminal text as it stood on screen (not blank, trailing spaces gone). */
static void transcript_output_line(struct transcript *t, const char *s, size_t n)
{
	uint64_t key;

	while (n && s[n - 1] == ' ')
		n--;
	if (!n)
		return;
	key = transcript_shape(s, n);

	if (t->run_n && key == t->run_key) {
		if (t->run_same && (n != t->run_first.len || memcmp(s, t->run_first.p, n) != 0))
			t->run_same = false;
		if (transcript_str_set(&t->run_last, s, n))
			t->err = -ENOMEM;
		t->run_n++;
		return;
	}
	transcript_run_flush(t);
	if (transcript_str_set(&t->run_first, s, n)) {
		t->err = -ENOMEM;
		return;
	}
	t->run_key = key;
	t->run_n = 1;
	t->run_same = true;
}

/* ------------------------------------------------------------ files */

static void transcript_groups_clear(struct transcript *t)
{
	for (size_t i = 0; i < t->n_groups; i++) {
		struct transcript_group *g = &t->groups[i];

		free(g->prog);
		free(g->where);
		for (size_t j = 0; j < TRANSCRIPT_GROUP_LIST; j++)
			free(g->paths[j]);
	}
	t->n_groups = 0;
	t->groups_more = 0;
	transcript_set_clear(&t->files);
}

static void transcript_groups_write(struct transcript *t)
{
	char ebuf[32];

	for (size_t i = 0; i < t->n_groups; i++) {
		const struct transcript_group *g = &t->groups[i];
		const char *op = g->op == 'w' ? "write" : "read";
		char rc[48] = "";

		if (g->rc)
			snprintf(rc, sizeof(rc), " %s",
				 transcript_errname(-g->rc, ebuf, sizeof(ebuf)));
		if (g->sensitive) {
			if (g->n > 1)
				transcript_printf(t, "[%s] %s (%s)%s ×%" PRIu64 "\n", op, g->where,
						  g->prog, rc, g->n);
			else
				transcript_printf(t, "[%s] %s (%s)%s\n", op, g->where, g->prog, rc);
		} else if (g->n <= TRANSCRIPT_GROUP_LIST) {
			for (size_t j = 0; j < g->n; j++)
				transcript_printf(t, "[%s] %s (%s)%s\n", op, g->paths[j], g->prog,
						  rc);
		} else {
			transcript_printf(t, "[%s] %" PRIu64 " files in %s (%s)%s\n", op, g->n,
					  g->where, g->prog, rc);
		}
	}
	if (t->groups_more)
		transcript_printf(t, "[… %" PRIu64 " more file opens in other directories]\n",
				  t->groups_more);
	transcript_groups_clear(t);
}

static struct transcript_group *transcript_group_get(struct transcript *t, uint64_t key)
{
	for (size_t i = 0; i < t->n_groups; i++)
		if (t->groups[i].key == key)
			return &t->groups[i];
	return NULL;
}

/* path is one of the arguments of the command last run by pid (maybe relative to its cwd). */
static bool transcript_named(const struct transcript *t, uint32_t pid, const char *path)
{
	size_t n = strlen(path);

	if (pid != t->args_pid || !t->args.len)
		return false;
	for (const char *a = t->args.p; a < t->args.p + t->args.len; a += strlen(a) + 1) {
		const char *r = a;
		size_t m;

		while (r[0] == '.' && r[1] == '/')
			r += 2;
		m = strlen(r);
		if (m && (strcmp(path, r) == 0 ||
			  (n > m && path[n - m - 1] == '/' && strcmp(path + n - m, r) == 0)))
			return true;
	}
	return false;
}

static void transcript_file(struct transcript *t, const Sessrec__Disk *d)
{
	const char *path = d->path ? d->path : "", *prog = d->program ? d->program : "";
	bool write = transcript_open_writes(d->flags);
	enum transcript_file_kind kind = transcript_file_kind(path, write);
	bool sensitive = kind != TRANSCRIPT_FILE_PLAIN && kind != TRANSCRIPT_FILE_NOISE;
	struct transcript_group *g;
	const char *slash;
	char op = write ? 'w' : 'r';
	int rc = d->return_code < 0 ? -d->return_code : 0;
	uint64_t key;
	size_t dlen;

	if (kind == TRANSCRIPT_FILE_NOISE)
		return;
	if (!sensitive && !write && !rc && transcript_named(t, d->pid, path))
		return; /* cat notes.txt reading notes.txt says nothing new */
	if (!sensitive) {
		/* a listed directory shows in the command line; a failed read is a lookup
		 * (PATH, config search); a failed create of a lock or temporary file is retried */
		if ((d->flags & O_DIRECTORY) || (rc && !write) || rc == ENOENT || rc == EEXIST)
			return;
	}
	slash = strrchr(path, '/');
	dlen = sensitive || !slash ? strlen(path) : (size_t)(slash - path) + 1;
	if (!sensitive) {
		/* a program's own tree (a repository, packages, caches) counts as one directory */
		static const char *const bulk[] = {
		    "/.git/",	       "/node_modules/",    "/__pycache__/",
		    "/site-packages/", "/dist-packages/",   "/.cache/",
		    "/.npm/",	       "/.cargo/registry/", NULL,
		};

		for (size_t i = 0; bulk[i]; i++) {
			const char *b = strstr(path, bulk[i]);

			if (b && (size_t)(b - path) + strlen(bulk[i]) < dlen) {
				dlen = (size_t)(b - path) + strlen(bulk[i]);
				break;
			}
		}
	}
	key = transcript_hash(&op, 1, TRANSCRIPT_FNV_BASIS);
	key = transcript_hash(&rc, sizeof(rc), key);
	key = transcript_hash(prog, strlen(prog) + 1, key);
	key = transcript_hash(path, dlen, key);
	if (sensitive && transcript_over(t)) {
		if (!transcript_seen_add(t, transcript_hash(path, strlen(path), 0x5e))) {
			t->over_files++;
			return;
		}
	} else if (sensitive) {
		(void)transcript_seen_add(t, transcript_hash(path, strlen(path), 0x5e));
	}
	g = transcript_group_get(t, key);
	if (!g) {
		if (!sensitive && (t->n_groups >= TRANSCRIPT_GROUPS || transcript_over(t))) {
			t->groups_more++;
			return;
		}
		if (t->n_groups == t->cap_groups) {
			size_t cap = t->cap_groups ? t->cap_groups * 2 : 16;
			struct transcript_group *ng = realloc(t->groups, cap * sizeof(*ng));

			if (!ng) {
				t->err = -ENOMEM;
				return;
			}
			t->groups = ng;
			t->cap_groups = cap;
		}
		g = &t->groups[t->n_groups];
		memset(g, 0, sizeof(*g));
		g->key = key;
		g->op = op;
		g->rc = rc;
		g->sensitive = sensitive;
		g->prog = strdup(prog);
		g->where = strndup(path, dlen);
		t->n_groups++;
		if (!g->prog || !g->where) {
			t->err = -ENOMEM;
			return;
		}
	}
	/* each file once per group; a sensitive path counts every open */
	if (!sensitive &&
	    !transcript_set_add(t, &t->files, transcript_hash(path, strlen(path), key)))
		return;
	if (!sensitive && g->n < TRANSCRIPT_GROUP_LIST) {
		g->paths[g->n] = strdup(path);
		if (!g->paths[g->n]) {
			t->err = -ENOMEM;
			return;
		}
	}
	g->n++;
}

/* ------------------------------------------------------------ the screen */

/* A row held for the rest of its line, into the output. */
static void transcript_wrap_flush(struct transcript *t)
{
	if (!t->wrap_on)
		return;
	t->wrap_on = false;
	transcript_output_line(t, t->wrap.p, t->wrap.len);
}

/*
 * A row of text leaves the screen. A long line fills rows to the last column
 * and goes on in the next; such rows are joined again, as long as they come
 * in order: lines scrolling off the top (push), the rows that follow the last
 * of them at the top of the screen, and rows written in one pass over a screen
 * that nothing addressed the cursor on since the last pass. A screen drawn
 * with cursor addressing (top) fills whole rows on purpose: never joined.
 */
static void transcript_row_out(struct transcript *t, const char *s, size_t n, bool full, int row)
{
	bool chain = t->wrap_on && (row < 0 || row == t->wrap_row);

	if (t->wrap_on && !chain)
		transcript_wrap_flush(t);
	if (chain) {
		if (transcript_str_add(&t->wrap, s, n)) {
			t->err = -ENOMEM;
			return;
		}
	} else if (full && !t->alt && (row < 0 || !t->addressed)) {
		if (transcript_str_set(&t->wrap, s, n)) {
			t->err = -ENOMEM;
			return;
		}
		t->wrap_on = true;
	} else {
		if (n)
			transcript_output_line(t, s, n);
		return;
	}
	/* the next part comes from the next push, or from the next row of this pass */
	t->wrap_row = row < 0 ? 0 : row + 1;
	if (!full || t->wrap.len > TRANSCRIPT_WRAP_MAX)
		transcript_wrap_flush(t);
}

static void transcript_rows_dirty(struct transcript *t, int from, int to)
{
	if (from < 0)
		from = 0;
	if (to > (int)t->rows)
		to = (int)t->rows;
	for (int r = from; r < to; r++)
		t->meta[r].dirty = true;
}

static size_t transcript_cells_text(struct transcript *t, const VTermScreenCell *cells, int cols)
{
	size_t n = 0;

	/* text up to the last column: the line may go on in the next row (a soft wrap) */
	/*
	 * Text up to the last column: the line may go on in the next row. A
	 * space there counts when a word ends right before it ("did you" "mean");
	 * rows padded with spaces to the edge (ss, ps) do not.
	 */
	t->line_full = cols > 1 && cells[cols - 1].chars[0] &&
		       (cells[cols - 1].chars[0] != ' ' ||
			(cells[cols - 2].chars[0] && cells[cols - 2].chars[0] != ' '));
	for (int c = 0; c < cols; c++) {
		const VTermScreenCell *cell = &cells[c];

		if (cell->chars[0] == (uint32_t)-1)
			continue; /* the right half of a wide character */
		if (!cell->chars[0]) {
			t->line[n++] = ' ';
			continue;
		}
		for (int i = 0; i < VTERM_MAX_CHARS_PER_CELL && cell->chars[i]; i++)
			n += transcript_utf8_put(t->line + n, cell->chars[i]);
	}
	/* trailing blanks go, unless the line may go on in the next row ("did you" "mean") */
	while (n && t->line[n - 1] == ' ' && !t->line_full)
		n--;
	t->line[n] = '\0';
	return n;
}

static int transcript_cb_damage(VTermRect r, void *user)
{
	transcript_rows_dirty(user, r.start_row, r.end_row);
	return 1;
}

static int transcript_cb_moverect(VTermRect dest, VTermRect src, void *user)
{
	struct transcript *t = user;
	int rows = (int)t->rows;

	t->push_idx = 0;
	/* libvterm moves every cell of the rectangle */
	t->work +=
	    (uint64_t)(dest.end_row - dest.start_row > 0 ? dest.end_row - dest.start_row : 0) *
	    (uint64_t)(dest.end_col - dest.start_col > 0 ? dest.end_col - dest.start_col : 0);
	if (dest.start_col == 0 && dest.end_col == (int)t->cols &&
	    dest.start_row != src.start_row && dest.start_row >= 0 && src.start_row >= 0 &&
	    dest.end_row <= rows && src.end_row <= rows &&
	    dest.end_row - dest.start_row == src.end_row - src.start_row) {
		/* whole rows moved: what was written for them moves along */
		memmove(&t->meta[dest.start_row], &t->meta[src.start_row],
			(size_t)(dest.end_row - dest.start_row) * sizeof(*t->meta));
		for (int r = src.start_row; r < src.end_row; r++)
			if (r < dest.start_row || r >= dest.end_row)
				t->meta[r].hash = TRANSCRIPT_BLANK;
	}
	transcript_rows_dirty(t, dest.start_row < src.start_row ? dest.start_row : src.start_row,
			      dest.end_row > src.end_row ? dest.end_row : src.end_row);
	return 0;
}

static int transcript_cb_pushline(int cols, const VTermScreenCell *cells, void *user)
{
	struct transcript *t = user;
	size_t n;
	int idx = t->push_idx++;

	if (cols > (int)t->cols)
		cols = (int)t->cols;
	n = transcript_cells_text(t, cells, cols);
	/* already written as it is now: nothing new scrolls away */
	if (idx < (int)t->rows &&
	    t->meta[idx].hash == transcript_hash(t->line, n, TRANSCRIPT_FNV_BASIS)) {
		transcript_wrap_flush(t);
		return 1;
	}
	transcript_row_out(t, t->line, n, t->line_full, -1);
	return 1;
}

static int transcript_cb_prop(VTermProp prop, VTermValue *val, void *user)
{
	struct transcript *t = user;

	if (prop != VTERM_PROP_ALTSCREEN || (bool)val->boolean == t->alt)
		return 1;
	t->alt = val->boolean;
	t->meta = t->alt ? t->meta_alt : t->meta_main;
	for (uint32_t r = 0; r < t->rows; r++) {
		if (t->alt)
			t->meta[r].hash = TRANSCRIPT_BLANK;
		t->meta[r].dirty = true;
	}
	return 1;
}

static const VTermScreenCallbacks transcript_screen_cbs = {
    .damage = transcript_cb_damage,
    .moverect = transcript_cb_moverect,
    .settermprop = transcript_cb_prop,
    .sb_pushline = transcript_cb_pushline,
};

static int transcript_vterm(struct transcript *t, uint32_t cols, uint32_t rows)
{
	if (t->vt)
		return 0;
	if (!t->size_fixed && cols && rows) {
		t->cols = cols;
		t->rows = rows;
	}
	if (t->cols > TRANSCRIPT_COLS_MAX)
		t->cols = TRANSCRIPT_COLS_MAX;
	if (t->rows > TRANSCRIPT_ROWS_MAX)
		t->rows = TRANSCRIPT_ROWS_MAX;
	t->meta_main = calloc(t->rows, sizeof(*t->meta_main));
	t->meta_alt = calloc(t->rows, sizeof(*t->meta_alt));
	t->cells = calloc(t->cols, sizeof(*t->cells));
	t->line_cap = (size_t)t->cols * VTERM_MAX_CHARS_PER_CELL * 4 + 1;
	t->line = malloc(t->line_cap);
	if (!t->meta_main || !t->meta_alt || !t->cells || !t->line)
		return -ENOMEM;
	for (uint32_t r = 0; r < t->rows; r++)
		t->meta_main[r].hash = t->meta_alt[r].hash = TRANSCRIPT_BLANK;
	t->meta = t->meta_main;
	t->vt = vterm_new((int)t->rows, (int)t->cols);
	if (!t->vt)
		return -ENOMEM;
	vterm_set_utf8(t->vt, 1);
	t->vs = vterm_obtain_screen(t->vt);
	vterm_screen_set_callbacks(t->vs, &transcript_screen_cbs, t);
	vterm_screen_set_damage_merge(t->vs, VTERM_DAMAGE_ROW);
	vterm_screen_enable_altscreen(t->vs, 1);
	vterm_screen_reset(t->vs, 1);
	return 0;
}

/*
 * Write the rows that changed since they were last written. The cursor's row
 * is still being written to (a prompt, a progress bar), so it waits unless
 * `all` (the end, or the screen is about to lose it).
 */
static void transcript_screen_flush(struct transcript *t, bool all)
{
	VTermState *st;
	VTermPos pos, cur;
	bool cursor_pending = false;

	if (!t->vt)
		return;
	vterm_screen_flush_damage(t->vs);
	st = vterm_obtain_state(t->vt);
	vterm_state_get_cursorpos(st, &cur);
	for (pos.row = 0; pos.row < (int)t->rows; pos.row++) {
		struct transcript_row *m = &t->meta[pos.row];
		uint64_t h;
		size_t n;

		if (!m->dirty)
			continue;
		if (!all && !t->alt && pos.row == cur.row) {
			cursor_pending = true;
			continue;
		}
		m->dirty = false;
		t->work += t->cols;
		for (pos.col = 0; pos.col < (int)t->cols; pos.col++)
			if (!vterm_screen_get_cell(t->vs, pos, &t->cells[pos.col]))
				memset(&t->cells[pos.col], 0, sizeof(t->cells[pos.col]));
		n = transcript_cells_text(t, t->cells, (int)t->cols);
		h = transcript_hash(t->line, n, TRANSCRIPT_FNV_BASIS);
		if (h == m->hash)
			continue;
		m->hash = h;
		transcript_row_out(t, t->line, n, t->line_full, pos.row);
	}
	transcript_wrap_flush(t);
	t->addressed = false;
	t->printed = false;
	t->cursor_pending = cursor_pending;
}

/*
 * A control sequence ended: true when the screen is about to lose what it
 * shows (a clear of the primary screen, a switch between screens).
 */
static bool transcript_csi_loses_text(struct transcript *t, char final)
{
	const char *p = t->csi;

	t->csi[t->csi_len] = '\0';
	if (strchr("HfdA", final))
		t->addressed = true;
	if (final == 'J')
		return !t->scan_alt && (strcmp(p, "2") == 0 || strcmp(p, "3") == 0);
	if ((final == 'h' || final == 'l') && p[0] == '?') {
		for (p++; *p;) {
			char *end;
			long v = strtol(p, &end, 10);

			if (end == p)
				break;
			if (v == 47 || v == 1047 || v == 1049) {
				bool to_alt = final == 'h', loses = to_alt != t->scan_alt;

				t->scan_alt = to_alt;
				return loses;
			}
			p = *end == ';' ? end + 1 : end;
		}
	}
	return false;
}

enum { TRANSCRIPT_ESC_NONE = 0, TRANSCRIPT_ESC_ESC, TRANSCRIPT_ESC_CSI };

/* Bytes into libvterm, which always takes all of them (it buffers what it cannot act on yet). */
static void transcript_vt_write(struct transcript *t, const char *p, size_t n)
{
	size_t used = n ? vterm_input_write(t->vt, p, n) : 0;

	if (used != n)
		t->err = t->err ? t->err : -EIO;
}

/*
 * Terminal bytes into the emulator. Before a sequence that clears the
 * screen, switches screens or resets the terminal takes effect (its final
 * byte), whatever the screen shows that is not written yet is written. Line
 * feeds get the carriage return that the terminal's onlcr added (the
 * recording has the output before it), except on the alternate screen, where
 * full-screen programs run with output processing off.
 */
static void transcript_feed(struct transcript *t, const uint8_t *p, size_t len)
{
	size_t from = 0;

	t->work += len;

	for (size_t i = 0; i < len; i++) {
		uint8_t c = p[i];
		bool loses = false;

		switch (t->esc) {
		case TRANSCRIPT_ESC_NONE:
			if (c == 0x1b)
				t->esc = TRANSCRIPT_ESC_ESC;
			else if (c >= 0x20 || c == '\t')
				t->printed = true;
			else if (c == '\n' && !t->last_cr && !t->scan_alt) {
				transcript_vt_write(t, (const char *)p + from, i - from);
				transcript_vt_write(t, "\r", 1);
				from = i;
			}
			break;
		case TRANSCRIPT_ESC_ESC:
			if (c == '[') {
				t->esc = TRANSCRIPT_ESC_CSI;
				t->csi_len = 0;
			} else if (c == '8') {
				t->addressed = true; /* DECRC: back to a saved position */
				t->esc = TRANSCRIPT_ESC_NONE;
			} else if (c == 'c') {
				loses = true;
				t->scan_alt = false;
				t->esc = TRANSCRIPT_ESC_NONE;
			} else if (c != 0x1b) {
				t->esc = TRANSCRIPT_ESC_NONE;
			}
			break;
		default:
			if (c >= 0x40 && c <= 0x7e) {
				loses = transcript_csi_loses_text(t, (char)c);
				t->esc = TRANSCRIPT_ESC_NONE;
			} else if (c == 0x1b) {
				t->esc = TRANSCRIPT_ESC_ESC;
			} else if (c == 0x18 || c == 0x1a) {
				t->esc = TRANSCRIPT_ESC_NONE;
			} else if (c >= 0x20 && c < 0x40 && t->csi_len < sizeof(t->csi) - 1) {
				t->csi[t->csi_len++] = (char)c;
			}
			break;
		}
		t->last_cr = c == '\r';
		if (loses) {
			transcript_vt_write(t, (const char *)p + from, i - from);
			from = i;
			/* nothing new on screen since the last look: nothing to lose */
			if (t->printed || t->cursor_pending)
				transcript_screen_flush(t, true);
		}
	}
	transcript_vt_write(t, (const char *)p + from, len - from);
}

/* U+FFFD, for what is not UTF-8. */
static size_t transcript_u8_bad(uint8_t *out)
{
	out[0] = 0xef;
	out[1] = 0xbf;
	out[2] = 0xbd;
	return 3;
}

/*
 * Print data into the emulator, as UTF-8 that libvterm cannot trip over.
 * libvterm 0.1.4 keeps a half-decoded character across escape sequences and
 * writes, and a C1 control decoded from UTF-8 (U+0080..U+009F, width -1)
 * later crashes it ("\xc2\x94\033[K"). So every character is checked here
 * and only whole, valid ones go on (shortest form, no surrogates, up to
 * U+10FFFF); a character cut between two writes waits for its end; broken
 * sequences become U+FFFD, C1 controls (invisible anyway) are dropped.
 */
static void transcript_print(struct transcript *t, const uint8_t *p, size_t len)
{
	uint8_t *out;
	size_t o = 0;

	if (t->work > t->budget) {
		/* enough emulation for one transcript: the rest is counted, not rendered */
		t->unrendered += len;
		t->unrendered_seg += len;
		return;
	}
	if (len > SIZE_MAX / 3 - 8) {
		t->err = -EOVERFLOW;
		return;
	}
	if (len * 3 + 8 > t->clean_cap) {
		size_t cap = len * 3 + 8;
		uint8_t *c = realloc(t->clean, cap);

		if (!c) {
			t->err = -ENOMEM;
			return;
		}
		t->clean = c;
		t->clean_cap = cap;
	}
	out = t->clean;
	for (size_t i = 0; i < len; i++) {
		uint8_t b = p[i];

		if (t->u8_need) {
			if ((b & 0xc0) == 0x80) {
				t->u8[t->u8_len++] = b;
				t->u8_cp = (t->u8_cp << 6) | (b & 0x3f);
				if (--t->u8_need)
					continue;
				if (t->u8_cp < t->u8_min || t->u8_cp > 0x10ffff ||
				    (t->u8_cp >= 0xd800 && t->u8_cp <= 0xdfff))
					o += transcript_u8_bad(out + o);
				else if (t->u8_cp >= 0xa0)
					for (size_t j = 0; j < t->u8_len; j++)
						out[o++] = t->u8[j];
				continue;
			}
			/* cut short: what came so far is not a character */
			t->u8_need = 0;
			o += transcript_u8_bad(out + o);
		}
		if (b < 0x80) {
			out[o++] = b;
			continue;
		}
		t->u8_len = 1;
		t->u8[0] = b;
		if (b >= 0xc2 && b <= 0xdf) {
			t->u8_need = 1;
			t->u8_cp = b & 0x1f;
			t->u8_min = 0x80;
		} else if (b >= 0xe0 && b <= 0xef) {
			t->u8_need = 2;
			t->u8_cp = b & 0x0f;
			t->u8_min = 0x800;
		} else if (b >= 0xf0 && b <= 0xf4) {
			t->u8_need = 3;
			t->u8_cp = b & 0x07;
			t->u8_min = 0x10000;
		} else {
			o += transcript_u8_bad(out + o);
		}
	}
	transcript_feed(t, out, o);
}

/* ------------------------------------------------------------ stretches and units */

/* The end of a stretch of output: files it touched, then its text. */
static void transcript_stretch_end(struct transcript *t)
{
	transcript_run_flush(t);
	transcript_groups_write(t);
	if (t->head.len)
		transcript_put(t, t->head.p, t->head.len);
	t->head.len = 0;
	transcript_omitted_mark(t, NULL);
	for (size_t i = 0; i < t->tail_n; i++) {
		const struct transcript_str *s = &t->tail[(t->tail_start + i) % TRANSCRIPT_TAIL];

		transcript_put(t, s->p, s->len);
		transcript_put(t, "\n", 1);
	}
	t->tail_start = t->tail_n = 0;
	t->seg_lines = t->seg_notable = 0;
}

/* Everything up to now into the text, before an event line (all: at the end). */
static void transcript_flush_point(struct transcript *t, bool all)
{
	if (all && t->u8_need && t->vt) {
		uint8_t bad[3];

		t->u8_need = 0;
		transcript_feed(t, bad, transcript_u8_bad(bad));
	}
	transcript_screen_flush(t, all);
	if (t->unrendered_seg) {
		char buf[96];
		int n = snprintf(buf, sizeof(buf),
				 "[… %" PRIu64 " bytes of output not rendered: the transcript's "
				 "emulation budget is spent …]",
				 t->unrendered_seg);

		transcript_run_flush(t);
		transcript_stretch_line(t, buf, (size_t)n);
		t->unrendered_seg = 0;
	}
	transcript_stretch_end(t);
}

/* The text from offset off with the "[pid]" in front of a command line skipped. */
static size_t transcript_unit_skip(const struct transcript *t, size_t off, size_t end)
{
	const char *p = t->text + off, *q;

	if (off >= end || *p != '[')
		return off;
	q = memchr(p, ']', end - off);
	return q ? (size_t)(q - t->text) : off;
}

/*
 * A command and what followed it up to the next command is a unit. A unit
 * equal to the one before (pids aside) is dropped and counted: a loop that
 * runs `ls` 500 times leaves one command, its output and "… ×500".
 */
static void transcript_unit_end(struct transcript *t)
{
	size_t a, b, alen, blen;

	if (t->unit_start == TRANSCRIPT_NONE || t->err)
		return;
	if (t->prev_start != TRANSCRIPT_NONE) {
		a = transcript_unit_skip(t, t->prev_start, t->prev_end);
		b = transcript_unit_skip(t, t->unit_start, t->len);
		alen = t->prev_end - a;
		blen = t->len - b;
		if (alen == blen && alen <= TRANSCRIPT_UNIT_CMP_MAX &&
		    memcmp(t->text + a, t->text + b, alen) == 0) {
			t->unit_n++;
			t->len = t->prev_end;
			/* the dropped command line can no longer be referred to */
			for (size_t i = 0; i < TRANSCRIPT_RECENT; i++)
				if (t->recent[i].pid == t->unit_pid)
					t->recent[i].hash = 0;
			transcript_printf(t, "  … ×%" PRIu64 " (the same command and output)\n",
					  t->unit_n);
			t->unit_start = TRANSCRIPT_NONE;
			return;
		}
	}
	t->prev_start = t->unit_start;
	t->prev_end = t->len;
	t->unit_n = 1;
	t->unit_start = TRANSCRIPT_NONE;
}

/* A time mark when the session paused for a while before this event. */
static void transcript_time_mark(struct transcript *t, int64_t ns)
{
	char d[32];

	if (ns <= 0)
		return;
	if (t->last_ns && t->start_ns && ns - t->last_ns >= TRANSCRIPT_GAP_NS) {
		transcript_duration(ns - t->start_ns, d, sizeof(d));
		transcript_printf(t, "[+%s]\n", d);
	}
	t->last_ns = ns;
}

/*
 * An event line (network, lost marker); the same line again right after is
 * counted on it (" ×N") instead of written again.
 */
static void transcript_event_line(struct transcript *t, const char *line, size_t n)
{
	if (t->ev_off != TRANSCRIPT_NONE && t->len > t->ev_off && t->ev_base == n &&
	    memcmp(t->text + t->ev_off, line, n) == 0 &&
	    (t->text[t->ev_off + n] == '\n' || t->text[t->ev_off + n] == ' ') &&
	    memchr(t->text + t->ev_off, '\n', t->len - t->ev_off) == t->text + t->len - 1) {
		t->ev_n++;
		t->len = t->ev_off + n;
		transcript_printf(t, " ×%" PRIu64 "\n", t->ev_n);
		return;
	}
	t->ev_off = t->len;
	t->ev_base = n;
	t->ev_n = 1;
	transcript_put(t, line, n);
	transcript_put(t, "\n", 1);
}

/* ------------------------------------------------------------ events */

static void transcript_start(struct transcript *t, const Sessrec__Event *ev)
{
	const Sessrec__SessionStart *s = ev->start;
	char when[40], *cmd = NULL;

	t->start_ns = ev->time_ns;
	t->last_ns = ev->time_ns;
	if (!t->vt)
		t->err = t->err ? t->err : transcript_vterm(t, s->cols, s->rows);
	util_rfc3339(ev->time_ns, when, sizeof(when));
	transcript_printf(t, "session %s (%s) on %s\n", s->sid && s->sid[0] ? s->sid : "?",
			  s->kind && s->kind[0] ? s->kind : "local",
			  s->server_hostname && s->server_hostname[0] ? s->server_hostname : "?");
	transcript_printf(t, "user %s, login %s", s->user && s->user[0] ? s->user : "?",
			  s->login && s->login[0] ? s->login : "?");
	if (s->tty && s->tty[0])
		transcript_printf(t, ", tty %s", s->tty);
	if (s->remote_addr && s->remote_addr[0])
		transcript_printf(t, ", from %s", s->remote_addr);
	transcript_printf(t, "\nstarted %s\n", when);
	if (s->n_initial_command) {
		if (transcript_argv_string(s->initial_command, s->n_initial_command,
					   TRANSCRIPT_ARG_MAX, TRANSCRIPT_CMD_MAX, &cmd))
			t->err = -ENOMEM;
		else
			transcript_printf(t, "command: %s\n", cmd);
		free(cmd);
	}
	transcript_printf(t, "terminal %ux%u\n", t->cols, t->rows);
	if (s->n_labels) {
		transcript_put(t, "labels:", 7);
		for (size_t i = 0; i < s->n_labels && i < 32; i++)
			transcript_printf(t, " %s=%s", s->labels[i]->key ? s->labels[i]->key : "",
					  s->labels[i]->value ? s->labels[i]->value : "");
		transcript_put(t, "\n", 1);
	}
	transcript_put(t, "---\n", 4);
}

/* A failed exec that a PATH search (execvp, env) follows with the next directory. */
static bool transcript_exec_miss(int rc)
{
	return rc == -ENOENT || rc == -ENOTDIR || rc == -EACCES;
}

/* The same program name, argv and process: attempts of one PATH search. */
static uint64_t transcript_exec_key(const Sessrec__Command *c, const char *path)
{
	const char *base = transcript_base(path);
	uint64_t h = transcript_hash(&c->pid, sizeof(c->pid), TRANSCRIPT_FNV_BASIS);

	h = transcript_hash(base, strlen(base) + 1, h);
	for (size_t i = 0; i < c->n_argv; i++)
		h = transcript_hash(c->argv[i] ? c->argv[i] : "",
				    c->argv[i] ? strlen(c->argv[i]) + 1 : 1, h);
	return h;
}

static const char *transcript_exec_path(const Sessrec__Command *c)
{
	return c->path && c->path[0] ? c->path : (c->program && c->program[0] ? c->program : "?");
}

/*
 * "[pid] exec PATH ARGS" (no result). A long argument already written on a
 * recent command line (a wrapper passing its arguments on: sudo, env, pyenv
 * shims) is referred to instead of repeated; `remember`: this line will be
 * written, so later lines may refer to it.
 */
static int transcript_exec_format(struct transcript *t, const Sessrec__Command *c, bool remember,
				  struct transcript_str *o)
{
	const char *path = transcript_exec_path(c);
	size_t first = 1, k;
	char head[48];
	int err;

	snprintf(head, sizeof(head), "[%u] exec ", c->pid);
	err = transcript_str_set(o, head, strlen(head));
	if (!err)
		err = transcript_str_add(o, path, strlen(path));
	/* a script: the kernel ran its interpreter with the script's path as an argument */
	for (k = 1; k < c->n_argv && k <= 3; k++)
		if (c->argv[k] && strcmp(c->argv[k], path) == 0)
			break;
	if (!err && k < c->n_argv && k <= 3) {
		err = transcript_str_add(o, " (script, run by ", 17);
		for (size_t i = 0; !err && i < k; i++) {
			if (i)
				err = transcript_str_add(o, " ", 1);
			if (!err)
				err = transcript_quote(o, c->argv[i] ? c->argv[i] : "", 256);
		}
		if (!err)
			err = transcript_str_add(o, ")", 1);
		first = k + 1;
	} else if (!err && c->n_argv && c->argv[0] && strcmp(c->argv[0], path) != 0 &&
		   strcmp(c->argv[0], transcript_base(path)) != 0) {
		/* busybox applets, login shells ("-bash"), exec -a */
		err = transcript_str_add(o, " (argv0 ", 8);
		if (!err)
			err = transcript_quote(o, c->argv[0], 256);
		if (!err)
			err = transcript_str_add(o, ")", 1);
	}
	for (size_t i = first; !err && i < c->n_argv; i++) {
		const char *a = c->argv[i] ? c->argv[i] : "";
		size_t alen = strlen(a), j;

		if (o->len >= TRANSCRIPT_CMD_MAX) {
			char more[48];

			snprintf(more, sizeof(more), " …(+%zu arguments)", c->n_argv - i);
			err = transcript_str_add(o, more, strlen(more));
			break;
		}
		err = transcript_str_add(o, " ", 1);
		if (err || alen < TRANSCRIPT_LONG_ARG) {
			if (!err)
				err = transcript_quote(o, a, TRANSCRIPT_ARG_MAX);
			continue;
		}
		uint64_t h = transcript_hash(a, alen, TRANSCRIPT_FNV_BASIS);

		for (j = 0; j < TRANSCRIPT_RECENT; j++)
			if (t->recent[j].hash == h && t->recent[j].len == alen)
				break;
		if (j < TRANSCRIPT_RECENT) {
			char ref[96];

			snprintf(ref, sizeof(ref), "<the %zu-byte argument of [%u] above>", alen,
				 t->recent[j].pid);
			err = transcript_str_add(o, ref, strlen(ref));
			continue;
		}
		if (remember) {
			t->recent[t->recent_next].hash = h;
			t->recent[t->recent_next].len = alen;
			t->recent[t->recent_next].pid = c->pid;
			t->recent_next = (t->recent_next + 1) % TRANSCRIPT_RECENT;
		}
		err = transcript_quote(o, a, TRANSCRIPT_ARG_MAX);
	}
	if (!err && c->argv_truncated)
		err = transcript_str_add(o, " …(arguments cut by the recorder)", 34);
	return err;
}

/* A command line into the text: it starts a unit (see transcript_unit_end). */
static void transcript_exec_write(struct transcript *t, int64_t ns, uint32_t pid, const char *path,
				  const struct transcript_str *line, int rc)
{
	bool fresh = transcript_seen_add(t, transcript_hash(path, strlen(path), 0xc0));
	char ebuf[32];

	transcript_flush_point(t, false);
	transcript_unit_end(t);
	if (transcript_over(t) && !fresh) {
		t->over_cmds++;
		return;
	}
	transcript_time_mark(t, ns);
	t->ev_off = TRANSCRIPT_NONE;
	t->unit_start = t->len;
	t->unit_pid = pid;
	transcript_put(t, line->p, line->len);
	if (rc)
		transcript_printf(t, " | rc=%d %s\n", rc,
				  transcript_errname(rc, ebuf, sizeof(ebuf)));
	else
		transcript_put(t, " | rc=0\n", 8);
}

/* The directory of a path a PATH search tried, into the list. */
static void transcript_miss_add(struct transcript *t, const char *path)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : strlen(path);

	(void)transcript_seen_add(t, transcript_hash(path, strlen(path), 0xc0));
	if (t->miss_paths.len >= TRANSCRIPT_MISSES_MAX)
		return;
	if ((t->miss_paths.len && transcript_str_add(&t->miss_paths, " ", 1)) ||
	    transcript_str_add(&t->miss_paths, n ? path : "/", n ? n : 1))
		t->err = -ENOMEM;
}

/*
 * " (not found first in: DIRS)", or a reference to the same list written
 * before: every wrapper of a shim chain searches the same PATH.
 */
static int transcript_miss_dirs(struct transcript *t, struct transcript_str *line)
{
	uint64_t h = transcript_hash(t->miss_paths.p, t->miss_paths.len, TRANSCRIPT_FNV_BASIS);
	char buf[96];
	size_t i;

	for (i = 0; i < 4; i++)
		if (t->miss_seen[i] == h)
			break;
	if (i < 4) {
		snprintf(buf, sizeof(buf),
			 " (not found first in the %" PRIu64 " directories above)", t->miss_n);
		return transcript_str_add(line, buf, strlen(buf));
	}
	t->miss_seen[t->miss_seen_next] = h;
	t->miss_seen_next = (t->miss_seen_next + 1) % 4;
	if (transcript_str_add(line, " (not found first in: ", 22) ||
	    transcript_str_add(line, t->miss_paths.p, t->miss_paths.len) ||
	    transcript_str_add(line, ")", 1))
		return -ENOMEM;
	return 0;
}

/* A PATH search that never found its program: the first attempt and where else it looked. */
static void transcript_miss_flush(struct transcript *t)
{
	if (!t->miss)
		return;
	t->miss = false;
	if (t->miss_n > 1 &&
	    (transcript_str_add(&t->miss_line, " (not found in: ", 16) ||
	     transcript_str_add(&t->miss_line, t->miss_paths.p, t->miss_paths.len) ||
	     transcript_str_add(&t->miss_line, ")", 1))) {
		t->err = -ENOMEM;
		return;
	}
	transcript_exec_write(t, t->miss_ns, t->miss_pid, t->miss_first.p, &t->miss_line,
			      t->miss_rc);
}

/* The arguments of the command just run, to recognise the files it names. */
static void transcript_args_keep(struct transcript *t, const Sessrec__Command *c)
{
	t->args.len = 0;
	t->args_pid = c->pid;
	for (size_t i = 1; i < c->n_argv && c->argv[i]; i++) {
		size_t n = strlen(c->argv[i]);

		if (t->args.len + n + 1 > TRANSCRIPT_CMD_MAX)
			break;
		if (transcript_str_add(&t->args, c->argv[i], n + 1)) {
			t->err = -ENOMEM;
			return;
		}
	}
}

static void transcript_command(struct transcript *t, const Sessrec__Event *ev)
{
	const Sessrec__Command *c = ev->command;
	const char *path = transcript_exec_path(c);
	uint64_t key = transcript_exec_key(c, path);
	struct transcript_str line = {0};
	int rc = c->return_code;

	if (t->miss && key == t->miss_key) {
		if (transcript_exec_miss(rc)) {
			transcript_miss_add(t, path);
			t->miss_n++;
			return;
		}
		/* found, after the misses */
		t->miss = false;
		if (transcript_exec_format(t, c, true, &line) || transcript_miss_dirs(t, &line))
			t->err = -ENOMEM;
		else
			transcript_exec_write(t, t->miss_ns, c->pid, path, &line, rc);
		free(line.p);
		transcript_args_keep(t, c);
		return;
	}
	transcript_miss_flush(t);
	if (transcript_exec_miss(rc) && c->n_argv) {
		/* maybe the first attempt of a PATH search: wait for the next */
		t->miss_paths.len = 0;
		if (transcript_exec_format(t, c, false, &t->miss_line) ||
		    transcript_str_set(&t->miss_first, path, strlen(path))) {
			t->err = -ENOMEM;
			return;
		}
		transcript_miss_add(t, path);
		t->miss = true;
		t->miss_key = key;
		t->miss_pid = c->pid;
		t->miss_rc = rc;
		t->miss_ns = ev->time_ns;
		t->miss_n = 1;
		return;
	}
	if (transcript_exec_format(t, c, true, &line))
		t->err = -ENOMEM;
	else
		transcript_exec_write(t, ev->time_ns, c->pid, path, &line, rc);
	free(line.p);
	transcript_args_keep(t, c);
}

static void transcript_network(struct transcript *t, const Sessrec__Event *ev)
{
	const Sessrec__Network *n = ev->network;
	const char *dst = n->dst_addr && n->dst_addr[0] ? n->dst_addr : "?";
	bool v6 = n->version == 6 || strchr(dst, ':');
	char line[512], ebuf[32], dest[96];
	const char *res;
	uint64_t h;
	int len;

	snprintf(dest, sizeof(dest), v6 ? "[%s]:%u" : "%s:%u", dst, n->dst_port);
	h = transcript_hash(dest, strlen(dest), 0x4e);
	transcript_miss_flush(t);
	transcript_flush_point(t, false);
	if (!transcript_seen_add(t, h) && transcript_over(t)) {
		t->over_net++;
		return;
	}
	transcript_time_mark(t, ev->time_ns);
	switch (n->return_code) {
	case 0:
		res = "ok";
		break;
	case -ECONNREFUSED:
		res = "refused";
		break;
	case -EINPROGRESS:
		res = "in progress";
		break;
	case -ETIMEDOUT:
		res = "timed out";
		break;
	case -ENETUNREACH:
	case -EHOSTUNREACH:
		res = "unreachable";
		break;
	default:
		res = transcript_errname(n->return_code, ebuf, sizeof(ebuf));
		break;
	}
	len = snprintf(line, sizeof(line), "[net] %s → %s %s (%s)",
		       n->program && n->program[0] ? n->program : "?", dest,
		       n->protocol && n->protocol[0] ? n->protocol : "ip", res);
	if (len > 0)
		transcript_event_line(t, line,
				      (size_t)len < sizeof(line) ? (size_t)len : sizeof(line) - 1);
}

static void transcript_lost(struct transcript *t, const Sessrec__Event *ev)
{
	const Sessrec__Lost *l = ev->lost;
	const char *cls = l->class_ && l->class_[0] ? l->class_ : "event";
	char line[160];
	int len;

	transcript_miss_flush(t);
	transcript_flush_point(t, false);
	if (strcmp(cls, "terminal") == 0 && l->bytes)
		len = snprintf(line, sizeof(line), "[%" PRIu64 " bytes of output lost]", l->bytes);
	else
		len = snprintf(line, sizeof(line), "[%" PRIu64 " %s event%s lost]", l->events,
			       strcmp(cls, "disk") == 0 ? "file" : cls, l->events == 1 ? "" : "s");
	if (len > 0)
		transcript_event_line(t, line, (size_t)len);
}

static void transcript_end(struct transcript *t, const Sessrec__Event *ev)
{
	const Sessrec__SessionEnd *e = ev->end;
	char d[32];
	int64_t from = e->session_start_ns ? e->session_start_ns : t->start_ns;
	int64_t to = e->session_stop_ns ? e->session_stop_ns : ev->time_ns;

	transcript_miss_flush(t);
	transcript_flush_point(t, true);
	transcript_unit_end(t);
	t->ev_off = TRANSCRIPT_NONE;
	transcript_duration(from && to ? to - from : 0, d, sizeof(d));
	if (e->exit_code >= 0)
		transcript_printf(t, "[end] exit %d", e->exit_code);
	else
		transcript_put(t, "[end] exit unknown", 18);
	transcript_printf(t, " (%s) after %s\n", e->reason && e->reason[0] ? e->reason : "ended",
			  d);
}

int transcript_new(struct transcript **out, uint32_t cols, uint32_t rows)
{
	struct transcript *t;

	*out = NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->size_fixed = cols && rows;
	t->cols = cols && rows ? cols : TRANSCRIPT_COLS_DEFAULT;
	t->rows = cols && rows ? rows : TRANSCRIPT_ROWS_DEFAULT;
	t->unit_start = t->prev_start = t->ev_off = TRANSCRIPT_NONE;
	t->budget = TRANSCRIPT_WORK_MAX;
	*out = t;
	return 0;
}

int transcript_add(struct transcript *t, const Sessrec__Event *ev)
{
	if (!t || !ev || t->finished)
		return -EINVAL;
	if (t->err)
		return t->err;
	switch (ev->body_case) {
	case SESSREC__EVENT__BODY_START:
		if (ev->start)
			transcript_start(t, ev);
		break;
	case SESSREC__EVENT__BODY_COMMAND:
		if (ev->command)
			transcript_command(t, ev);
		break;
	case SESSREC__EVENT__BODY_NETWORK:
		if (ev->network)
			transcript_network(t, ev);
		break;
	case SESSREC__EVENT__BODY_DISK:
		if (ev->disk)
			transcript_file(t, ev->disk);
		break;
	case SESSREC__EVENT__BODY_PRINT:
		if (!ev->print || !ev->print->data.len)
			break;
		if (!t->vt)
			t->err = transcript_vterm(t, 0, 0);
		if (t->err)
			break;
		t->raw_bytes += ev->print->data.len;
		transcript_print(t, ev->print->data.data, ev->print->data.len);
		break;
	case SESSREC__EVENT__BODY_LOST:
		if (ev->lost)
			transcript_lost(t, ev);
		break;
	case SESSREC__EVENT__BODY_END:
		if (ev->end)
			transcript_end(t, ev);
		break;
	default:
		break;
	}
	return t->err;
}

int transcript_finish(struct transcript *t, const char **text, size_t *len)
{
	if (!t || !text || !len)
		return -EINVAL;
	if (!t->finished && !t->err) {
		transcript_miss_flush(t);
		transcript_flush_point(t, true);
		transcript_unit_end(t);
		if (t->unrendered)
			transcript_printf(t,
					  "[%" PRIu64
					  " bytes of terminal output were not rendered: "
					  "the transcript's emulation budget was spent]\n",
					  t->unrendered);
		if (t->over_cmds || t->over_net || t->over_lines || t->over_files)
			transcript_printf(
			    t,
			    "[past the %u MiB transcript limit, left out: %" PRIu64
			    " commands, %" PRIu64 " connections, %" PRIu64 " file opens, %" PRIu64
			    " output lines; every command path and destination is listed]\n",
			    TRANSCRIPT_TEXT_MAX >> 20, t->over_cmds, t->over_net, t->over_files,
			    t->over_lines);
		transcript_put(t, "", 0);
		t->finished = true;
	}
	if (t->err)
		return t->err;
	*text = t->text ? t->text : "";
	*len = t->len;
	return 0;
}

void transcript_set_budget(struct transcript *t, uint64_t work)
{
	if (t)
		t->budget = work;
}

uint64_t transcript_raw_bytes(const struct transcript *t)
{
	return t ? t->raw_bytes : 0;
}

void transcript_free(struct transcript *t)
{
	if (!t)
		return;
	if (t->vt)
		vterm_free(t->vt);
	free(t->meta_main);
	free(t->meta_alt);
	free(t->cells);
	free(t->line);
	free(t->clean);
	free(t->text);
	free(t->wrap.p);
	free(t->run_first.p);
	free(t->run_last.p);
	free(t->head.p);
	free(t->args.p);
	free(t->miss_line.p);
	free(t->miss_first.p);
	free(t->miss_paths.p);
	for (size_t i = 0; i < TRANSCRIPT_TAIL; i++)
		free(t->tail[i].p);
	transcript_groups_clear(t);
	free(t->groups);
	free(t->seen.v);
	free(t->files.v);
	free(t);
}

/* ------------------------------------------------------------ chunks */

int transcript_chunks(const char *text, size_t len, size_t max, size_t **offsets, size_t *n_chunks)
{
	size_t *o = NULL, n = 0, cap = 0, pos = 0;
	int err = 0;

	*offsets = NULL;
	*n_chunks = 0;
	if (!max || (!text && len))
		return -EINVAL;
	while (1) {
		size_t end;

		if (n + 1 >= cap) {
			size_t ncap = cap ? cap * 2 : 16;
			size_t *no = realloc(o, ncap * sizeof(*o));

			if (!no) {
				err = -ENOMEM;
				goto out;
			}
			o = no;
			cap = ncap;
		}
		o[n] = pos;
		if (pos >= len)
			break;
		if (len - pos <= max) {
			end = len;
		} else {
			/* the last line end that fits; else cut the line, not a character */
			const char *nl = memrchr(text + pos, '\n', max);

			if (nl) {
				end = (size_t)(nl - text) + 1;
			} else {
				end = pos + max;
				while (end > pos + 1 && ((unsigned char)text[end] & 0xc0) == 0x80)
					end--;
			}
		}
		pos = end;
		n++;
	}
	*offsets = o;
	*n_chunks = n;
	o = NULL;
out:
	free(o);
	return err;
}
