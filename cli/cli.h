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

#include "sessrec.pb-c.h"

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

#endif
