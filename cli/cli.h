/*
 * sessrec, the command-line tool: the private header of cli/.
 *
 * One file per subcommand family (bpftool style): cli/<cmd>.c exports
 * do_<cmd>() and cli_<cmd>_usage(), and cli/main.c lists them in its command
 * table. Adding a command is: write cli/<cmd>.c, declare its two functions
 * below, add one line to the table in cli/main.c.
 *
 * do_<cmd>(argc, argv) gets argv[0] == "<cmd>" and returns the process exit
 * status, not an errno: CLI_EXIT_* (for `run`, the child's status). Everything
 * else in cli/ returns 0 or a negative errno like the rest of the project.
 */
#ifndef SESSREC_CLI_H
#define SESSREC_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <termios.h>

#include <jansson.h>

#include "audit.h"
#include "sessrec.pb-c.h"
#include "util.h"

#define CLI_PROG "sessrec"

#define CLI_EXIT_OK    0
#define CLI_EXIT_FAIL  1 /* the command ran and failed: one line on stderr says why */
#define CLI_EXIT_USAGE 2 /* bad command line */

/* ------------------------------------------------------------ commands */

int do_run(int argc, char **argv);
void cli_run_usage(FILE *out);
int do_events(int argc, char **argv);
void cli_events_usage(FILE *out);
int do_play(int argc, char **argv);
void cli_play_usage(FILE *out);
int do_verify(int argc, char **argv);
void cli_verify_usage(FILE *out);
int do_ls(int argc, char **argv);
void cli_ls_usage(FILE *out);
int do_show(int argc, char **argv);
void cli_show_usage(FILE *out);
int do_export(int argc, char **argv);
void cli_export_usage(FILE *out);
int do_audit(int argc, char **argv);
void cli_audit_usage(FILE *out);
int do_create(int argc, char **argv);
void cli_create_usage(FILE *out);
int do_get(int argc, char **argv);
void cli_get_usage(FILE *out);
int do_rm(int argc, char **argv);
void cli_rm_usage(FILE *out);
int do_summary(int argc, char **argv);
void cli_summary_usage(FILE *out);
int do_summarize(int argc, char **argv);
void cli_summarize_usage(FILE *out);

/* ------------------------------------------------------------ errors (args.c) */

/* One line on stderr: "sessrec: <fmt>\n". */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * Report what getopt_long() returned as an error (c is '?' or ':', the option
 * string starts with ':') for subcommand cmd. Returns CLI_EXIT_USAGE.
 */
int cli_opt_error(const char *cmd, int c, char *const argv[]);

/* ------------------------------------------------------------ parsing (args.c) */

#define CLI_LABELS_MAX	    64
#define CLI_LABEL_KEY_MAX   128
#define CLI_LABEL_VALUE_MAX 512

struct cli_label {
	char *key;
	char *value;
};

/* Session labels from --label KEY=VALUE, in the order given. Zero-initialise. */
struct cli_labels {
	struct cli_label *v;
	size_t n;
};

/*
 * Parse "KEY=VALUE" and append it. KEY: 1..CLI_LABEL_KEY_MAX bytes of letters,
 * digits and ". _ - / :"; VALUE: up to CLI_LABEL_VALUE_MAX bytes without
 * control characters (may be empty); a key only once; at most CLI_LABELS_MAX.
 * Returns 0, -EINVAL / -EEXIST / -E2BIG with a reason in *why, or -ENOMEM.
 */
int cli_labels_add(struct cli_labels *l, const char *arg, const char **why);
/* Free the labels (not l itself) and zero them. Accepts NULL. */
void cli_labels_free(struct cli_labels *l);

/* Session kinds `run` accepts: local, ssh, k8s. 0 or -EINVAL. */
int cli_parse_kind(const char *s);

/*
 * A whole-string decimal number in [lo, hi] (no NaN, no infinity, no
 * trailing characters). 0, or -EINVAL (not a number), -ERANGE (outside).
 */
int cli_parse_double(const char *s, double lo, double hi, double *out);

/*
 * Find the executable that execvp() would run for name: name itself when it
 * holds a '/', else the first regular, executable file name in the ':'
 * separated dirs of path (NULL: "/bin:/usr/bin"; an empty entry is "."). Done
 * before the exec so that the recording shows one exec, not one failed exec
 * per PATH entry. 0 with a malloc'd *out, -ENOENT when nothing fits, -ENOMEM.
 */
int cli_path_lookup(const char *name, const char *path, char **out);

/* Shell convention: the exit code, or 128+N for a child killed by signal N. */
int cli_exit_status(int wstatus);

/*
 * The delay before a print event at cur_ms that follows one at prev_ms:
 * the gap, capped to max_idle seconds when max_idle > 0, then divided by
 * speed. speed == 0 means no delays. Nanoseconds; 0 when time went back.
 */
uint64_t cli_play_gap_ns(uint64_t prev_ms, uint64_t cur_ms, double speed, double max_idle);

/*
 * The bytes that make a program reading a pty slave with termios t see the
 * end of its input: VEOF once, or twice when ICANON is set and a partial line
 * (line_open) is pending, since the first VEOF only delivers that line.
 * Writes 1 or 2 bytes to out and returns how many.
 */
size_t cli_eof_seq(const struct termios *t, bool line_open, char out[2]);

/* ------------------------------------------------------------ events (format.c) */

/* "start", "end", "command", "disk", "network", "print", "lost"; "?" otherwise. */
const char *cli_event_type_name(int body_case);
/*
 * A comma-separated list of event types ("command,disk"; the audit names
 * "session.command" are accepted too) into a mask for cli_event_type_match.
 * 0 or -EINVAL.
 */
int cli_event_types_parse(const char *list, uint32_t *mask);
/* true when mask is 0 (no filter) or holds body_case. */
bool cli_event_type_match(uint32_t mask, int body_case);
/* Open flags symbolically: "O_WRONLY|O_CREAT|O_TRUNC|0x40000000". 0 or -ENOSPC. */
int cli_open_flags_str(int32_t flags, char *buf, size_t len);
/*
 * The human form of an event, one line without newline, malloc'd into *out:
 * "    12  2026-11-22T10:13:19.123Z  command  ls[4242] rc=0 ls -l /tmp".
 * Strings from the recording are quoted and escaped so that they cannot
 * drive the terminal. 0 or -ENOMEM.
 */
int cli_event_line(const Sessrec__Event *ev, char **out);

/* ------------------------------------------------------------ quoting (format.c) */

/*
 * s as a shell word: bare when it needs no quoting, in '...' when it is
 * printable, else in $'...' with escapes, so that control characters from a
 * recording or a server never reach the terminal raw.
 */
void cli_fput_word(FILE *f, const char *s);
/*
 * Length of the valid UTF-8 sequence at NUL-terminated p (1..4 bytes), or 0
 * for a stray byte, an overlong or surrogate form, or a C1 control
 * (U+0080..U+009F), which some terminals obey like an escape sequence.
 */
size_t cli_utf8_len(const unsigned char *p);
/* Words separated by spaces, each as cli_fput_word writes it. */
void cli_fput_argv(FILE *f, char *const *argv, size_t n);
/* "rc=0", "rc=3", "rc=-ENOENT". */
void cli_fput_rc(FILE *f, int32_t rc);
/* cli_fput_argv into a malloc'd string. 0 or -ENOMEM. */
int cli_argv_string(char *const *argv, size_t n, char **out);

/* ------------------------------------------------------------ buffers (buf.c) */

/*
 * A growing byte string, always NUL-terminated once anything was added. The
 * first allocation failure sticks in err and later adds do nothing, so a
 * sequence of adds is checked once at the end. Zero-initialise.
 */
struct cli_buf {
	char *p;
	size_t len, cap;
	int err;
};

int cli_buf_add(struct cli_buf *b, const void *data, size_t n);
int cli_buf_adds(struct cli_buf *b, const char *s);
int cli_buf_addf(struct cli_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Empty the buffer, keeping its memory (and its error). */
void cli_buf_reset(struct cli_buf *b);
/* Free and zero. Accepts NULL. */
void cli_buf_free(struct cli_buf *b);
/*
 * Append "?key=value" (or "&key=value" when b already holds a '?'), both
 * percent-encoded except for RFC 3986's unreserved characters.
 */
int cli_query_add(struct cli_buf *b, const char *key, const char *value);

/*
 * Split a byte stream into lines: cb gets each line without its '\n' (and
 * without a '\r' before it), NUL-terminated and writable. A line longer than
 * max bytes is -E2BIG; a callback error stops everything and is returned.
 */
typedef int (*cli_line_cb)(void *ctx, char *line, size_t len);
struct cli_lines {
	struct cli_buf buf;
	size_t max;
	cli_line_cb cb;
	void *ctx;
};
int cli_lines_feed(struct cli_lines *l, const char *data, size_t len);
/* The last line when it had no newline. */
int cli_lines_end(struct cli_lines *l);
void cli_lines_free(struct cli_lines *l);

/*
 * The bytes in..in+len as the inside of a JSON string: valid UTF-8 copied,
 * each maximal ill-formed subsequence replaced by one U+FFFD (as Python's and
 * WHATWG's decoders do), '"', '\\' and control characters escaped. When
 * !final, an incomplete but so far valid sequence at the end is left out so
 * that the caller can prepend it to the next chunk. Returns how many bytes
 * were consumed (len when final); errors stick in b->err.
 */
size_t cli_json_utf8(struct cli_buf *b, const uint8_t *in, size_t len, bool final);

/* ------------------------------------------------------------ times (args.c) */

/*
 * A point in time: RFC 3339 ("2026-11-22T10:13:19Z", fractions and offsets
 * allowed, also a bare date "2026-11-22" for its midnight UTC), "now", or a
 * duration before now_ns: digits with a unit s, m, h, d or w, possibly
 * several ("1h30m"). 0 with *out_ns, or -EINVAL.
 */
int cli_parse_time(const char *s, int64_t now_ns, int64_t *out_ns);
/* RFC 3339 only (what the API sends). 0 or -EINVAL. */
int cli_parse_rfc3339(const char *s, int64_t *out_ns);
/* "0.4s", "12.3s", "4m05s", "2h03m", "3d04h"; "-" for a negative time. */
void cli_fmt_duration(int64_t ms, char *buf, size_t len);

/* ------------------------------------------------------------ collector (client.c) */

/* Where the collector is and how to prove who we are; NULL: not given here. */
struct cli_remote {
	const char *url;
	const char *token;
	const char *ca;
};

/* Long options every command that talks to the collector accepts. */
#define CLI_OPT_URL   0x100
#define CLI_OPT_TOKEN 0x101
#define CLI_OPT_CA    0x102
/* clang-format off */
#define CLI_REMOTE_OPTIONS \
	{"url", required_argument, NULL, CLI_OPT_URL}, \
	{"token", required_argument, NULL, CLI_OPT_TOKEN}, \
	{"ca", required_argument, NULL, CLI_OPT_CA}
/* clang-format on */
#define CLI_REMOTE_HELP                                                                            \
	"Collector (flags, else SESSREC_URL, SESSREC_TOKEN, SESSREC_CA, else url, token\n"         \
	"and ca in ~/.config/sessrec/config.yaml):\n"                                              \
	"      --url URL    the collector, https://host:port\n"                                    \
	"      --token T    a bearer token (sessrec-collector token create)\n"                     \
	"      --ca FILE    the CA certificate that signed the collector's (default: the\n"        \
	"                   system's CA store)\n"

/* Store c's value in r when c is one of CLI_REMOTE_OPTIONS; false otherwise. */
bool cli_remote_opt(struct cli_remote *r, int c, const char *arg);
/* The flags given before the command ("sessrec --url U ls"), under the command's own. */
void cli_remote_set_global(const struct cli_remote *r);
/* SESSREC_URL, SESSREC_TOKEN, SESSREC_CA (empty counts as unset). */
void cli_remote_env(struct cli_remote *env);
/* $XDG_CONFIG_HOME/sessrec/config.yaml, else ~/.config/sessrec/config.yaml. */
int cli_config_path(char **out);

/* The settings in effect, each from the first place that has it. */
struct cli_conn {
	char *url;	      /* without a trailing '/' */
	char *token;	      /* NULL: none */
	char *ca;	      /* NULL: the system's store */
	const char *url_from; /* "--url", "SESSREC_URL", "the config file" (messages) */
	const char *token_from;
	const char *ca_from;
	char *config_path; /* set when the file was read */
};

/*
 * flags, then env, then the YAML file at config_path (keys url, token, ca;
 * read only when something is still missing; a missing file is no error; a
 * relative ca in the file is relative to the file's folder). 0, or -EINVAL
 * with one line in err: a bad file, no URL anywhere, a URL that is not
 * http(s)://, a token with spaces or control characters.
 */
int cli_conn_resolve(struct cli_conn *out, const struct cli_remote *flags,
		     const struct cli_remote *env, const char *config_path, char *err,
		     size_t errlen);
void cli_conn_free(struct cli_conn *c);

/*
 * HTTP to the collector. Every function below prints its own one-line error
 * (cannot reach the collector, the server's {"error"} with the HTTP status,
 * an answer over its size cap) and returns a negative errno:
 *   -ECONNREFUSED  no answer (connection, DNS, TLS)   -ECONNRESET  broke mid-answer
 *   -EREMOTEIO     an HTTP error status               -EBADMSG     not the JSON expected
 *   -EFBIG         over the size cap                  -ETIMEDOUT   a stream went silent
 * Errors that a line callback returns are passed on without a message.
 */
struct cli_client;

#define CLI_JSON_MAX	  (32u << 20)  /* a JSON answer */
#define CLI_LINE_MAX	  (16u << 20)  /* one line of a JSON-lines answer */
#define CLI_RECORDING_MAX (4ull << 30) /* a recording, written to a temporary file */
#define CLI_ERRBODY_MAX	  (64u << 10)  /* the body of an error answer */
#define CLI_FOLLOW_IDLE_S 45	       /* the collector sends a newline every 15 s */

/* Resolve flags (over cli_remote_set_global's, the environment and the file) and connect lazily. */
int cli_client_open(struct cli_client **out, const struct cli_remote *flags);
void cli_client_close(struct cli_client *c);
/* The collector's base URL. */
const char *cli_client_url(const struct cli_client *c);
/* Print network errors (default) or only keep them for cli_client_error. */
void cli_client_quiet(struct cli_client *c, bool quiet);
/* The last error's one line (without "sessrec: "); "" when none. */
const char *cli_client_error(const struct cli_client *c);

/* GET path (with its query) and parse the JSON answer. */
int cli_client_get_json(struct cli_client *c, const char *path, json_t **out);
/* GET a JSON-lines answer, line by line as it arrives; follow: an endless stream. */
int cli_client_get_lines(struct cli_client *c, const char *path, bool follow, cli_line_cb cb,
			 void *ctx);
/* GET into fd, at most cap bytes. */
int cli_client_get_file(struct cli_client *c, const char *path, int fd, uint64_t cap);
/*
 * method (POST, DELETE) path with body (len bytes of content_type; NULL:
 * application/json) and parse the JSON answer.
 */
int cli_client_send(struct cli_client *c, const char *method, const char *path,
		    const char *content_type, const char *body, size_t len, json_t **out);

/* ------------------------------------------------------------ recordings (source.c) */

/* What an argument names: an existing path, a session id (UUID), or neither. */
enum cli_target {
	CLI_TARGET_NONE = 0,
	CLI_TARGET_FILE,
	CLI_TARGET_SID,
};
enum cli_target cli_target_of(const char *arg);

/* A recording to read: a local file, or a session's recording downloaded from the collector. */
struct cli_recsrc {
	char *path;		 /* what rec_reader_open / rec_verify read */
	char *name;		 /* what messages call it: the path, or the session id */
	char sid[UUID_STR_LEN_]; /* downloaded: the session asked for; else "" */
	int fd;			 /* downloaded: the unlinked temporary file; else -1 */
};

/*
 * arg as a recording: an existing path is read in place; a session id is
 * downloaded (GET /v1/sessions/{sid}/recording) into an unlinked temporary
 * file, opening *client on first use with flags. Errors are printed
 * ("cmd: ..."). 0, -ENOENT (neither a file nor a session id), or -errno.
 */
int cli_recsrc_open(struct cli_recsrc *s, const char *cmd, const char *arg,
		    struct cli_client **client, const struct cli_remote *flags);
void cli_recsrc_close(struct cli_recsrc *s);

/* ------------------------------------------------------------ sessions (events.c) */

/* The session fields the JSON forms of events carry, taken from session.start. */
struct cli_evsess {
	char *sid;
	char *server_id;
	char *server_hostname;
	char *login;
	char *user;
	int64_t start_ns;
};
/* Take ev's session fields when it is a session.start. 0 or -ENOMEM. */
int cli_evsess_update(struct cli_evsess *s, const Sessrec__Event *ev);
void cli_evsess_ctx(const struct cli_evsess *s, struct audit_ctx *ctx);
void cli_evsess_free(struct cli_evsess *s);

/* ------------------------------------------------------------ JSON events (jsonev.c) */

/*
 * An event in the `sessrec events --json` form (what GET .../events answers)
 * as a Sessrec__Event for cli_event_line. Strings point into o, which must
 * outlive it. 0, -ENOENT for an event name that is not a recording event
 * (the caller prints it its own way), or -ENOMEM.
 */
struct cli_jsonev {
	Sessrec__Event ev;
	Sessrec__SessionStart start;
	Sessrec__SessionEnd end;
	Sessrec__Command command;
	Sessrec__Disk disk;
	Sessrec__Network network;
	Sessrec__Print print;
	Sessrec__Lost lost;
	char **strv; /* argv or initial_command */
};
int cli_jsonev_parse(struct cli_jsonev *je, const json_t *o);
void cli_jsonev_free(struct cli_jsonev *je);

/* ------------------------------------------------------------ asciicast (cast.c) */

/* Default TERM in the header: recordings do not carry the session's. */
#define CLI_CAST_TERM "xterm-256color"

/*
 * An asciicast v2 writer: a header line, then [seconds, "o", data] lines.
 * Output chunks are converted to UTF-8 across chunk boundaries (a sequence
 * split between two print events comes out whole, with the later time).
 */
struct cli_cast {
	FILE *out;
	uint64_t last_ms; /* time of the last line: lines never go back */
	uint8_t carry[4]; /* an incomplete UTF-8 sequence from the previous chunk */
	size_t ncarry;
	uint64_t carry_ms;   /* when the carried bytes came */
	bool onlcr;	     /* write "\n" as "\r\n" (the default; see cli_cast_begin) */
	bool last_cr;	     /* the last byte written was '\r' */
	struct cli_buf in;   /* carry + the chunk */
	struct cli_buf line; /* the line being built */
};

/*
 * Start: write the header from the session.start event (st), its time
 * start_ns. The recorder sees output as programs write it, before the
 * terminal's line discipline turns "\n" into "\r\n" (onlcr, on by default);
 * players do not do that, so the writer does it (set c->onlcr = false after
 * this call to keep the bytes as recorded).
 */
int cli_cast_begin(struct cli_cast *c, FILE *out, const Sessrec__SessionStart *st, int64_t start_ns,
		   const char *term);
/* Output at ms since the start. */
int cli_cast_output(struct cli_cast *c, uint64_t ms, const uint8_t *data, size_t len);
/* Terminal output that the recorder lost: a visible marker line. */
int cli_cast_lost(struct cli_cast *c, uint64_t bytes, uint64_t chunks);
/* Write out what is carried (as U+FFFD) and free. 0 or -errno. */
int cli_cast_end(struct cli_cast *c);
/* Free without writing. Accepts NULL. */
void cli_cast_free(struct cli_cast *c);

/* ------------------------------------------------------------ tables (table.c) */

/*
 * Columns aligned on the widest cell (in characters, not bytes), two spaces
 * apart, the last column not padded. Cells are copied with control
 * characters and invalid UTF-8 replaced by '?'. Zero-initialise.
 */
struct cli_table {
	size_t ncols, nrows; /* rows include the header */
	char **cells;
};
int cli_table_init(struct cli_table *t, size_t ncols, const char *const *headers);
int cli_table_add(struct cli_table *t, const char *const *cells);
int cli_table_print(const struct cli_table *t, FILE *f);
void cli_table_free(struct cli_table *t);

/* The `sessrec ls` table: its header, and one row per session object of the API. */
int cli_ls_table_init(struct cli_table *t, bool wide);
int cli_ls_table_add(struct cli_table *t, const json_t *sess, bool wide);
/* `sessrec show`: "key: value" lines for a session object. 0 or -errno. */
int cli_show_write(const json_t *sess, FILE *f);
/* `sessrec summary`: the readable block of a summary object of the API. 0 or -errno. */
int cli_summary_write(const json_t *sum, FILE *f);
/* `sessrec get`: a table of resources (all of one kind or mixed). 0 or -errno. */
int cli_resources_table(const json_t *list, FILE *f);
/* `sessrec get KIND NAME`: one resource as YAML that `sessrec create -f` reads back. */
int cli_resource_yaml(const json_t *res, FILE *f);
/* o as one compact JSON line on stdout (json_dumps flags beyond JSON_COMPACT). 0 or -errno. */
int cli_json_line(const json_t *o, size_t flags);

/* ------------------------------------------------------------ audit (auditlog.c) */

/*
 * The readable one-line form of a central audit log event:
 * "TIME  EVENT  USER  [SID8] SUMMARY", strings quoted as cli_fput_word does.
 * 0 or -ENOMEM.
 */
int cli_audit_line(const json_t *o, char **out);

#endif
