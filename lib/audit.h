/*
 * Audit events as JSON lines in Teleport's schema (DESIGN.md "Audit events"),
 * and the full JSON form of recording events for `sessrec events --json`.
 */
#ifndef SESSREC_AUDIT_H
#define SESSREC_AUDIT_H

#include <stddef.h>

#include "sessrec.pb-c.h"

/* The session a recording event belongs to: fills the common fields. */
struct audit_ctx {
	const char *sid;
	const char *server_id;
	const char *server_hostname;
	const char *login;
	const char *user;
	int64_t session_start_ns; /* for session.end */
	/* optional: the five fields above as audit_ctx_fixed renders them, reused
	 * for every event of the session but its start */
	const char *fixed;
	size_t fixed_len;
};

/* sid, server_id, server_hostname, login and user of ctx as JSON members
 * ("sid":"...",...), malloc'd into *out, for ctx->fixed. Returns 0 or -errno. */
int audit_ctx_fixed(const struct audit_ctx *ctx, char **out, size_t *len);

/* Our own event names and codes, beyond Teleport's (listed in docs/audit-events.md). */
#define AUDIT_EV_LOST	"session.lost"
#define AUDIT_CODE_LOST "SR4010W"

/*
 * One audit line (no trailing newline), malloc'd into *out. Returns 0,
 * -ENOENT for events that never go to the audit log (print), or -errno.
 */
int audit_format(const Sessrec__Event *ev, const struct audit_ctx *ctx, char **out);

/*
 * audit_format into a caller's buffer, reused from line to line (grown with
 * realloc as needed; the caller frees it). *len is the line's length.
 */
int audit_format_buf(const Sessrec__Event *ev, const struct audit_ctx *ctx, char **buf, size_t *cap,
		     size_t *len);

/*
 * Every field of a recording event as one JSON object (no newline), for
 * `sessrec events --json`: print events carry their bytes in "data" as a JSON
 * string (invalid UTF-8 replaced byte-wise by U+FFFD) and "data_b64" with the
 * exact bytes. Returns 0 or -errno.
 */
int audit_event_json(const Sessrec__Event *ev, const struct audit_ctx *ctx, char **out);

/* The audit event name and code of an event ("session.command", "T4000I"); NULL for print. */
const char *audit_event_name(const Sessrec__Event *ev);
const char *audit_event_code(const Sessrec__Event *ev);

#endif
