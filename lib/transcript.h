/*
 * Session transcripts for a model, and the offline built-in summarizer.
 *
 * A transcript is the session in time order as a person would retell it:
 * commands with arguments and exit codes, network destinations, files
 * touched, and the terminal output as it looked on screen, rendered through a
 * terminal emulator (libvterm) so that cursor motion, redraws, progress bars
 * and colour codes cost nothing.
 */
#ifndef SESSREC_TRANSCRIPT_H
#define SESSREC_TRANSCRIPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sessrec.pb-c.h"

struct transcript;

/*
 * Start a transcript for a terminal of cols x rows (0, 0: the size the
 * session.start event gives, else 80x24; at most 500x200 is emulated).
 */
int transcript_new(struct transcript **out, uint32_t cols, uint32_t rows);
/* Feed the recording's events in order (any type; unknown ones are ignored). */
int transcript_add(struct transcript *t, const Sessrec__Event *ev);
/* Finish: the text (NUL-terminated, owned by t) and its length. */
int transcript_finish(struct transcript *t, const char **text, size_t *len);
/*
 * Bound the terminal emulation one transcript may do (units: bytes fed plus
 * screen cells moved or read; default about 8.6e9, some 20 s of CPU). Past it
 * the output is counted, not rendered; commands and the rest stay.
 */
void transcript_set_budget(struct transcript *t, uint64_t work);
/* Raw terminal bytes seen (for the "N times smaller" figure). */
uint64_t transcript_raw_bytes(const struct transcript *t);
void transcript_free(struct transcript *t);

/*
 * Split a transcript into chunks of at most max bytes, at line boundaries.
 * *offsets (malloc'd, n_chunks + 1 entries): chunk i is
 * text[offsets[i] .. offsets[i + 1]) and offsets[n_chunks] == len. A line
 * longer than max is cut, at a UTF-8 character boundary where there is one.
 * Empty text gives no chunk. 0, -EINVAL (max 0) or -ENOMEM.
 */
int transcript_chunks(const char *text, size_t len, size_t max, size_t **offsets, size_t *n_chunks);

/*
 * What a file path is to someone reviewing the session; the transcript and the
 * built-in summarizer agree on it. `write`: the path was opened for writing
 * (or created or truncated), which makes more paths matter and none noise
 * except terminals and /dev/null.
 */
enum transcript_file_kind {
	TRANSCRIPT_FILE_PLAIN = 0,
	TRANSCRIPT_FILE_NOISE,	     /* libraries, locales, caches, /proc, /sys, terminals */
	TRANSCRIPT_FILE_CREDENTIAL,  /* private keys, tokens, cloud and cluster credentials */
	TRANSCRIPT_FILE_SHADOW,	     /* password hashes: /etc/shadow, /etc/gshadow */
	TRANSCRIPT_FILE_SUDOERS,     /* /etc/sudoers, /etc/sudoers.d/, /etc/doas.conf */
	TRANSCRIPT_FILE_ACCOUNTS,    /* writes: /etc/passwd, /etc/group, PAM */
	TRANSCRIPT_FILE_HISTORY,     /* writes: shell and REPL history files */
	TRANSCRIPT_FILE_PERSISTENCE, /* writes: cron, systemd units, rc files, authorized_keys */
};
enum transcript_file_kind transcript_file_kind(const char *path, bool write);
/* The open flags of a Disk event ask for writing (O_WRONLY, O_RDWR, O_CREAT, O_TRUNC). */
bool transcript_open_writes(int32_t flags);

/*
 * A command line as a shell would read it back: arguments joined by spaces,
 * quoted where needed, control characters escaped, each argument cut at
 * arg_max bytes and the whole at max bytes (0: no limit), cuts marked with
 * "…". *out is malloc'd. 0 or -ENOMEM.
 */
int transcript_argv_string(char *const *argv, size_t argc, size_t arg_max, size_t max, char **out);

/* A structured summary, from a model or from the built-in summarizer. */
enum summary_risk {
	SUMMARY_RISK_LOW = 0,
	SUMMARY_RISK_MEDIUM = 1,
	SUMMARY_RISK_HIGH = 2,
	SUMMARY_RISK_CRITICAL = 3,
};

struct summary {
	char *title;
	char *short_description;
	char *detailed_description;
	enum summary_risk risk_level;
	uint32_t risk_score; /* 0..100 */
	char **risk_reasons;
	size_t n_risk_reasons;
	char **commands_of_interest;
	size_t n_commands_of_interest;
	bool needs_review;
};

void summary_clear(struct summary *s);
const char *summary_risk_name(enum summary_risk r); /* "low", ... */
int summary_risk_parse(const char *s, enum summary_risk *out);

/*
 * The offline summarizer: fills a summary from the recorded facts of a
 * session (its events), without any network. Detects, at least: downloads
 * piped to a shell, decode-and-execute, reading credentials or shadow files,
 * privilege changes, history clearing, reverse-shell patterns, outbound
 * connections on unusual ports. What is detected and how it is scored:
 * lib/summary_builtin.c. *out is overwritten (what it held is not freed);
 * free it with summary_clear(). Deterministic: the same events give the same
 * summary. 0, -EINVAL or -ENOMEM (then *out is cleared).
 */
int summary_builtin(const Sessrec__Event *const *events, size_t n, struct summary *out);

#endif
