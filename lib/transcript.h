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

/* Start a transcript for a terminal of cols x rows. */
int transcript_new(struct transcript **out, uint32_t cols, uint32_t rows);
/* Feed the recording's events in order (any type; unknown ones are ignored). */
int transcript_add(struct transcript *t, const Sessrec__Event *ev);
/* Finish: the text (NUL-terminated, owned by t) and its length. */
int transcript_finish(struct transcript *t, const char **text, size_t *len);
/* Raw terminal bytes seen (for the "N times smaller" figure). */
uint64_t transcript_raw_bytes(const struct transcript *t);
void transcript_free(struct transcript *t);

/* Split a transcript into chunks of at most max bytes, at line boundaries. */
int transcript_chunks(const char *text, size_t len, size_t max, size_t **offsets,
		      size_t *n_chunks);

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
	uint32_t risk_score;	 /* 0..100 */
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
 * connections on unusual ports.
 */
int summary_builtin(const Sessrec__Event *const *events, size_t n, struct summary *out);

#endif
