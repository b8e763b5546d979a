/*
 * The upload completer: what a crash left in the spool is finished and sent.
 *
 * At start (after running sessions were taken back) and every few minutes the
 * recordings directory is scanned. A recording whose session is not open here
 * and that is not final was left by an agent that stopped without ending it:
 * it is reopened (a torn last part cut off), closed with a session.end at the
 * time of its last event and the reason "closed by completer", and its final
 * part written. Every final recording that the uploader does not hold yet is
 * queued (when a collector is configured), unless its upload was refused for
 * good before (<sid>.up says so; an operator deletes that file to retry).
 *
 * It runs on the event loop's thread: the scan reads part headers only, and
 * reopening reads a whole recording, which only happens for what a crash left.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "log.h"
#include "util.h"

/* Recordings the completer could not close (damaged) are said once per agent run. */
static bool completer_skipped(const struct agent *a, const char *sid)
{
	for (size_t i = 0; i < a->n_completer_skip; i++)
		if (strcmp(a->completer_skip[i], sid) == 0)
			return true;
	return false;
}

static void completer_skip_add(struct agent *a, const char *sid)
{
	if (a->n_completer_skip == a->cap_completer_skip) {
		size_t cap = a->cap_completer_skip ? a->cap_completer_skip * 2 : 16;
		char(*n)[40] = realloc(a->completer_skip, cap * sizeof(*n));

		if (!n)
			return; /* said again next time: harmless */
		a->completer_skip = n;
		a->cap_completer_skip = cap;
	}
	snprintf(a->completer_skip[a->n_completer_skip++], 40, "%s", sid);
}

/* Close an unfinished recording: session.end at the time of its last event. */
static int completer_close(struct agent *a, const char *sid)
{
	Sessrec__Event ev = SESSREC__EVENT__INIT;
	Sessrec__SessionEnd end = SESSREC__SESSION_END__INIT;
	struct agent_session *s = NULL;
	char *participants[1], when[40];
	int64_t last = 0;
	int err;

	err = agent_session_restore(a, sid, false, &s, &last);
	if (err)
		return err;
	participants[0] = s->user;
	end.session_start_ns = s->start_ns;
	end.session_stop_ns = last;
	end.n_participants = 1;
	end.participants = participants;
	end.interactive = true;
	end.n_initial_command = s->n_command;
	end.initial_command = s->command;
	end.exit_code = -1; /* nobody saw it exit */
	end.reason = AGENT_REASON_COMPLETER;
	ev.time_ns = last;
	ev.body_case = SESSREC__EVENT__BODY_END;
	ev.end = &end;
	err = agent_event_write(a, s, &ev);
	if (!err) {
		err = rec_writer_close(s->w);
		s->w = NULL;
	}
	if (a->audit)
		fflush(a->audit);
	if (!err) {
		util_rfc3339(last, when, sizeof(when));
		log_info("session %s: recording closed by the completer (its agent stopped before "
			 "the session ended; last event at %s, %" PRIu64 " events)",
			 sid, when, s->next_ei);
		METRIC_ADD(a->metrics.completer_closed, 1);
	}
	agent_session_free(s);
	return err;
}

static bool completer_has_suffix(const char *name, const char *suffix, char *sid, size_t len)
{
	size_t n = strlen(name), k = strlen(suffix);

	if (n <= k || strcmp(name + n - k, suffix) != 0 || n - k >= len)
		return false;
	memcpy(sid, name, n - k);
	sid[n - k] = '\0';
	return agent_session_is_sid(sid);
}

/* A state file (or its temporary) whose recording is gone: the upload finished. */
static void completer_orphan(struct agent *a, const char *name, const char *sid)
{
	char rec[PATH_MAX], path[PATH_MAX];

	snprintf(rec, sizeof(rec), "%s/%s.rec", a->rec_dir, sid);
	if (access(rec, F_OK) == 0 || errno != ENOENT)
		return;
	snprintf(path, sizeof(path), "%s/%s", a->rec_dir, name);
	if (unlink(path) == 0)
		log_debug("removed %s: its recording was uploaded", path);
}

void agent_completer_run(struct agent *a)
{
	unsigned int closed = 0, queued = 0, refused = 0;
	char sid[40], path[PATH_MAX];
	struct dirent *de;
	DIR *d;

	d = opendir(a->rec_dir);
	if (!d) {
		log_warn("completer: cannot read %s: %s", a->rec_dir, strerror(errno));
		return;
	}
	while ((de = readdir(d))) {
		struct agent_upload_state st;
		struct rec_scan_info si;
		int err;

		if (completer_has_suffix(de->d_name, ".up", sid, sizeof(sid)) ||
		    completer_has_suffix(de->d_name, ".up.tmp", sid, sizeof(sid))) {
			completer_orphan(a, de->d_name, sid);
			continue;
		}
		if (!completer_has_suffix(de->d_name, ".rec", sid, sizeof(sid)))
			continue;
		if (agent_session_find_sid(a, sid) || (a->up && agent_upload_has(a->up, sid)) ||
		    completer_skipped(a, sid))
			continue;
		snprintf(path, sizeof(path), "%s/%s", a->rec_dir, de->d_name);
		err = rec_scan(path, &si);
		if (err) {
			if (err != -ENOENT)
				log_warn("completer: cannot read %s: %s", path, strerror(-err));
			continue;
		}
		if (!si.final) {
			err = completer_close(a, sid);
			if (err == -ENODATA) {
				log_warn("completer: %s holds no complete part (the agent stopped "
					 "before the session's first part was on disk): nothing to "
					 "recover, left as it is",
					 path);
				completer_skip_add(a, sid);
				continue;
			}
			if (err) {
				log_error("completer: cannot close %s: %s; left as it is (sessrec "
					  "verify %s says more)",
					  path, strerror(-err), path);
				completer_skip_add(a, sid);
				continue;
			}
			closed++;
		}
		if (!a->up)
			continue;
		snprintf(path, sizeof(path), "%s/%s.up", a->rec_dir, sid);
		if (agent_upload_state_load(path, &st) == 0 && st.failed_status) {
			refused++;
			continue;
		}
		if (agent_upload_queue(a->up, sid) == 0)
			queued++;
	}
	closedir(d);
	if (closed || queued)
		log_info("completer: %u recording(s) closed, %u queued for upload", closed, queued);
	/* said once at start, then quietly: an operator has seen it */
	if (refused)
		log_msg(a->completer_runs ? LOG_LVL_DEBUG : LOG_LVL_WARN,
			"completer: %u recording(s) kept in %s after the collector refused them "
			"(the reason is in their .up files; delete one to try again)",
			refused, a->rec_dir);
	a->completer_runs++;
}
