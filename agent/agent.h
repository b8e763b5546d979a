/* sessrec-agent internals: the private header of agent/. */
#ifndef SESSREC_AGENT_H
#define SESSREC_AGENT_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <linux/types.h>
#include <sys/types.h>

#include "config.h"
#include "rec.h"
#include "sessrec.h"

/* epoll tags: what a ready fd is */
enum agent_ep_tag {
	AGENT_EP_LISTEN = 1,
	AGENT_EP_SIGNAL,
	AGENT_EP_TIMER,
	AGENT_EP_BPF,
	AGENT_EP_CGROUP,
	AGENT_EP_CLIENT,
};
#define AGENT_EP(tag, fd) (((uint64_t)(tag) << 32) | (uint32_t)(fd))

/* ------------------------------------------------------------ bpf.c: the kernel side */

enum agent_bpf_strategy {
	AGENT_BPF_TRACEPOINT = 0, /* syscall + sched tracepoints: every kernel we support */
	AGENT_BPF_FENTRY = 1,	  /* kernel function hooks: not written yet */
};

struct agent_bpf;

/* Called for every record drained from any ring buffer. */
typedef void (*agent_bpf_event_cb)(void *ctx, const void *data, size_t size);

struct agent_bpf_opts {
	uint32_t pages[SESSREC_CLASS_MAX]; /* ring buffer sizes in pages */
	uint32_t session_level;		   /* cgroup level of session cgroups */
	const char *pin_dir;		   /* /sys/fs/bpf/sessrec, or NULL not to pin */
	agent_bpf_event_cb cb;
	void *cb_ctx;
};

struct agent_lost {
	uint64_t events[SESSREC_CLASS_MAX];
	uint64_t tty_bytes;
};

/* Mount tracefs, bpffs when missing (and log it). 0 or -errno. */
int agent_bpf_mounts(const char *pin_dir);
/* Which attach path this kernel can run, and why (for the log). */
enum agent_bpf_strategy agent_bpf_probe(const char **why);
/* open -> configure -> load -> attach -> pin. 0 or -errno (logged). */
int agent_bpf_start(struct agent_bpf **out, const struct agent_bpf_opts *opts);
void agent_bpf_stop(struct agent_bpf *b);
const char *agent_bpf_strategy_name(const struct agent_bpf *b);
/* Readable when the ring buffer thread has queued records. */
int agent_bpf_notify_fd(const struct agent_bpf *b);
/* Every record the kernel has written so far (drained now, plus what the ring
 * buffer thread queued), passed to opts->cb; returns their count or -errno. */
int agent_bpf_consume(struct agent_bpf *b);
/* Give the queue's memory back once no record came since the last call (the agent's tick). */
void agent_bpf_trim(struct agent_bpf *b);
int agent_bpf_session_add(struct agent_bpf *b, uint64_t cgid);
int agent_bpf_session_del(struct agent_bpf *b, uint64_t cgid);
/* The loss counters of one session (cumulative). */
int agent_bpf_session_lost(struct agent_bpf *b, uint64_t cgid, struct agent_lost *out);
/* The loss counters of all sessions, summed over CPUs. */
int agent_bpf_lost_total(struct agent_bpf *b, struct agent_lost *out);
/* Bytes waiting in each ring buffer, and their sizes. */
void agent_bpf_ring_fill(struct agent_bpf *b, uint64_t used[SESSREC_CLASS_MAX],
			 uint64_t size[SESSREC_CLASS_MAX]);

/* ------------------------------------------------------------ metrics.c */

/* Why an upload request failed, for sessrec_agent_upload_errors_total{reason}. */
enum agent_upload_err {
	AGENT_UPLOAD_ERR_CONNECT = 0, /* no connection: refused, unreachable, name not found */
	AGENT_UPLOAD_ERR_TLS,	      /* handshake or certificate problem */
	AGENT_UPLOAD_ERR_TIMEOUT,     /* no answer in time */
	AGENT_UPLOAD_ERR_SERVER,      /* 5xx */
	AGENT_UPLOAD_ERR_THROTTLED,   /* 429 */
	AGENT_UPLOAD_ERR_CONFLICT,    /* 409: the collector holds something else */
	AGENT_UPLOAD_ERR_REFUSED,     /* any other 4xx: permanent for that session */
	AGENT_UPLOAD_ERR_LOCAL,	      /* the local recording cannot be read or is damaged */
	AGENT_UPLOAD_ERR_MAX,
};

struct agent_metrics {
	uint64_t events[SESSREC_CLASS_MAX];
	uint64_t lost_events[SESSREC_CLASS_MAX];
	uint64_t lost_tty_bytes;
	uint64_t sessions_open;
	uint64_t sessions_total;
	uint64_t recording_bytes;
	uint64_t audit_bytes;
	uint64_t ring_used[SESSREC_CLASS_MAX];
	uint64_t ring_size[SESSREC_CLASS_MAX];
	uint64_t api_errors;
	/* upload.c, completer.c (all zero without a collector) */
	uint64_t upload_parts;	  /* parts the collector acknowledged */
	uint64_t upload_bytes;	  /* their bytes */
	uint64_t upload_sessions; /* sessions completed at the collector */
	uint64_t upload_errors[AGENT_UPLOAD_ERR_MAX];
	uint64_t upload_pending;       /* sessions waiting for upload or uploading */
	uint64_t upload_pending_parts; /* parts written but not acknowledged yet (known ones) */
	uint64_t upload_memory_bytes;  /* copies of sync parts held for the uploader */
	uint64_t upload_last_ok;       /* UTC seconds of the last acknowledged request, 0: never */
	uint64_t collector_up;	       /* 1: the last request got an answer, 0: it did not */
	uint64_t sessions_terminated;  /* sync sessions killed: collector unreachable */
	uint64_t sessions_adopted;     /* running sessions taken back after a restart */
	uint64_t completer_closed;     /* recordings a crash left open, closed by the completer */
};

/* Counters are updated with __atomic builtins by the main loop, read by the HTTP thread. */
#define METRIC_ADD(field, n) __atomic_add_fetch(&(field), (n), __ATOMIC_RELAXED)
#define METRIC_SET(field, n) __atomic_store_n(&(field), (n), __ATOMIC_RELAXED)

struct agent_metrics_server;
int agent_metrics_start(struct agent_metrics_server **out, const char *listen,
			struct agent_metrics *m);
void agent_metrics_stop(struct agent_metrics_server *s);
/* The Prometheus text exposition (malloc'd). */
char *agent_metrics_render(const struct agent_metrics *m);

/* ------------------------------------------------------------ upload.c: to the collector */

/* session.end reason written by the upload completer, and how complete calls it. */
#define AGENT_REASON_COMPLETER	 "closed by completer"
#define AGENT_REASON_UNREACHABLE "collector unreachable"

struct agent_upload;

struct agent_upload_opts {
	const struct agent_collector_conf *conf; /* copied */
	const char *node;			 /* node_name, sent with complete */
	const char *rec_dir;			 /* <data_dir>/recordings: the spool */
	struct agent_metrics *metrics;
};

/* Start the uploader thread. 0 or -errno (logged). */
int agent_upload_start(struct agent_upload **out, const struct agent_upload_opts *o);
/* Stop it (an upload in flight is abandoned: the spool keeps it). Accepts NULL. */
void agent_upload_stop(struct agent_upload *u);
/*
 * At a clean stop: give the uploader up to timeout_ns to finish what is queued
 * (the sessions just ended), while the collector answers. What is left waits
 * in the spool for the next start.
 */
#define AGENT_UPLOAD_DRAIN_NS (5 * 1000000000LL)
void agent_upload_drain(struct agent_upload *u, int64_t timeout_ns);
/*
 * A recording is final: upload what the collector lacks and complete it, then
 * delete it. For a sync session, the end of its stream. Any thread. 0 or -errno.
 */
int agent_upload_queue(struct agent_upload *u, const char *sid);
/* A sync session starts streaming; parts_on_disk were written before (re-adoption). */
int agent_upload_sync_open(struct agent_upload *u, const char *sid, uint32_t parts_on_disk);
/* A sync session's part is on disk (the rec_writer's on_part, on the pool's thread). */
int agent_upload_part(struct agent_upload *u, const char *sid, uint32_t index, const uint8_t *part,
		      size_t len, bool final);
/* The uploader holds this session (queued, streaming or uploading). */
bool agent_upload_has(struct agent_upload *u, const char *sid);
/* UTC ns since which the collector has not answered (or refused with 5xx/429); 0: it answers. */
int64_t agent_upload_down_since(struct agent_upload *u);

/* The upload, completer and re-adoption metrics, in Prometheus text (metrics.c calls it). */
void agent_upload_metrics(FILE *f, const struct agent_metrics *m);

/* Exposed for unit tests. */
/* Delay before retry number attempt (1, 2, ...): 1 s doubling up to cap_ms, +-20% from rnd. */
uint32_t agent_upload_backoff_ms(unsigned int attempt, uint32_t cap_ms, uint32_t rnd);

enum agent_upload_verdict {
	AGENT_UPLOAD_OK,       /* 2xx: acknowledged */
	AGENT_UPLOAD_RETRY,    /* no answer, 5xx, 429: try again later */
	AGENT_UPLOAD_CONFLICT, /* 409: start over from what the collector has */
	AGENT_UPLOAD_REFUSED,  /* other statuses: permanent for this session */
};
enum agent_upload_verdict agent_upload_classify(long status);

/* <sid>.up beside <sid>.rec: how far the upload got, and why it stopped for good. */
struct agent_upload_state {
	uint32_t acked;	   /* parts 0..acked-1 are acknowledged */
	int failed_status; /* 0, or the HTTP status (or -errno) that refused the session */
	char failed[256];  /* one line: why */
};
int agent_upload_state_parse(const char *buf, size_t len, struct agent_upload_state *st);
/* Text form of st (ends with a newline). 0, or -ENOSPC when len is too small. */
int agent_upload_state_format(const struct agent_upload_state *st, char *buf, size_t len);
/* A missing file is the empty state; a damaged one too (parts are re-sent: harmless). */
int agent_upload_state_load(const char *path, struct agent_upload_state *st);
int agent_upload_state_save(const char *path, const struct agent_upload_state *st);
/*
 * Read the final recording at path once (every check of rec_reader) and build
 * the complete request: {"parts":N,"node":...,"closed_by":...,"end":{...}}.
 * -EAGAIN when it is not final, -EBADMSG when damaged (reason in why).
 */
int agent_upload_complete_body(const char *path, const char *sid, const char *node, char **body,
			       uint32_t *parts, char *why, size_t whylen);

/* ------------------------------------------------------------ session.c */

struct api_conn;

struct agent_session {
	struct agent *agent;
	char sid[40];
	uint64_t cgid;
	char cgroup_dir[PATH_MAX];
	int events_fd;	    /* cgroup.events, for "populated 0" */
	int client_fd;	    /* the launcher's connection, -1 once gone */
	uid_t launcher_uid; /* who opened it (SO_PEERCRED): may also Close it */
	struct rec_writer *w;
	char *audit_fixed; /* the session's part of every audit line (audit_ctx_fixed) */
	size_t audit_fixed_len;
	uint64_t next_ei;
	uint64_t next_ci;
	uint64_t out_offset;
	int64_t start_ns;    /* UTC */
	uint64_t start_mono; /* CLOCK_MONOTONIC, as the BPF timestamps */
	int64_t last_ns;
	int64_t last_flush_ns;
	int exit_code;
	bool sync;		   /* parts stream to the collector while it runs */
	bool killed;		   /* the agent terminated it (cgroup.kill) */
	const char *end_reason;	   /* why the agent ended it; NULL: its processes did */
	int64_t recorded_since_ns; /* opened or adopted by this agent (UTC) */
	struct agent_upload *up;   /* sync sessions: where parts go */
	bool closing;		   /* the launcher sent Close */
	int64_t empty_since_ns;	   /* when the cgroup was first seen empty, 0 while populated */
	struct agent_lost lost_seen;
	/* metadata */
	char *user, *login, *kind, *tty, *remote_addr;
	char **command;
	size_t n_command;
	uint32_t cols, rows;
	/* raw events of the current drain cycle, ordered by time before use */
	struct agent_pending *pending;
	size_t n_pending, cap_pending;
	uint8_t *arena; /* the raw records of the cycle, back to back */
	size_t arena_len, arena_cap;
};

struct agent_pending {
	uint64_t ts;
	uint64_t seq;
	size_t off; /* in the session's arena */
	size_t size;
};

struct agent {
	struct agent_config *cfg;
	const char *cfg_path;
	struct agent_bpf *bpf;
	struct rec_pool *pool; /* writes parts off the event loop */
	struct agent_metrics metrics;
	struct agent_metrics_server *metrics_srv;
	int epfd, listen_fd, sig_fd, timer_fd;
	char cgroup_root[PATH_MAX]; /* <cgroup_path>/<root_path> */
	char rec_dir[PATH_MAX];
	char server_id[40];
	char hostname[256];
	int64_t mono_to_real; /* add to a CLOCK_MONOTONIC time to get UTC */
	FILE *audit;
	off_t audit_wb;	     /* audit log bytes whose writeback was started */
	off_t audit_dropped; /* audit log bytes dropped from the page cache */
	char *line;	     /* the audit line being formatted, reused */
	size_t line_cap;
	struct agent_session **sessions;
	size_t n_sessions, cap_sessions;
	uint64_t seq;
	struct agent_upload *up;   /* NULL: no collector, recordings stay local */
	int64_t next_completer_ns; /* CLOCK_MONOTONIC: the next spool scan */
	unsigned int completer_runs;
	char (*completer_skip)[40]; /* recordings it could not close: said once */
	size_t n_completer_skip, cap_completer_skip;
	gid_t socket_gid;	/* socket_group, or (gid_t)-1 */
	struct api_conn *conns; /* launcher connections (api.c) */
	size_t n_conns;
	bool stopping;
	bool reload;
	bool trim; /* memory of a burst was freed: give it back at the next tick */
};

struct ucred;
int agent_session_open(struct agent *a, int client_fd, const void *req, const struct ucred *peer,
		       char *err, size_t errlen, struct agent_session **out);
struct agent_session *agent_session_find_cgid(struct agent *a, uint64_t cgid);
struct agent_session *agent_session_find_sid(struct agent *a, const char *sid);
struct agent_session *agent_session_find_fd(struct agent *a, int fd, bool events_fd);
/* Queue a raw BPF record for its session (ordered and written at the end of the cycle). */
void agent_session_queue(struct agent *a, const void *data, size_t size);
/* Order and write what was queued in this cycle, and finish sessions that are done. */
void agent_session_flush_cycle(struct agent *a);
/* Check loss counters, flush idle parts. */
void agent_session_tick(struct agent *a);
/* The cgroup emptied (or the agent stops): write session.end and finalize. */
void agent_session_finish(struct agent *a, struct agent_session *s, const char *reason);
bool agent_session_populated(struct agent_session *s);
/*
 * A session rebuilt from its unfinished recording <rec_dir>/<sid>.rec: the
 * writer reopened (a torn last part cut off), metadata from its session.start,
 * ei and terminal counters from what is on disk. No cgroup, no kernel side,
 * not in a->sessions. *last_ns: the time of its last event. Errors as
 * rec_writer_reopen (-EALREADY: final; -ENODATA: no complete part).
 */
int agent_session_restore(struct agent *a, const char *sid, bool stream, struct agent_session **out,
			  int64_t *last_ns);
/* Free a session that agent_session_restore made (its writer abandoned). Accepts NULL. */
void agent_session_free(struct agent_session *s);
/*
 * At start: take back every session whose cgroup under cgroup_root still has
 * processes and whose recording is unfinished, and record on (a session.lost
 * of class "agent" marks the gap).
 */
void agent_session_adopt_all(struct agent *a);
/*
 * Remove the session cgroups that nothing runs in any more and no session
 * owns: those with a recording in our spool, and any empty for a minute.
 */
void agent_session_sweep(struct agent *a);
/* A session directory name: a canonical UUID. */
bool agent_session_is_sid(const char *name);

/* ------------------------------------------------------------ completer.c */

/*
 * The upload completer, at start and every AGENT_COMPLETER_INTERVAL: finish
 * the recordings a crash left open (their sessions not open here) with a
 * session.end at the time of their last event ("closed by completer"), and
 * queue every final recording the collector does not have yet.
 */
#define AGENT_COMPLETER_INTERVAL_NS (300 * 1000000000LL)
void agent_completer_run(struct agent *a);

/* ------------------------------------------------------------ events.c */

struct agent_event_ctx {
	struct agent *a;
	struct agent_session *s;
};

/* Turn one raw record into a recording event and write it (recording + audit log). */
int agent_event_raw(struct agent *a, struct agent_session *s, const void *data, size_t size);
/* Write an assembled event: assigns ei, uid and time; recording then audit log. */
int agent_event_write(struct agent *a, struct agent_session *s, Sessrec__Event *ev);
/* Emit an in-band lost-events marker. */
int agent_event_lost(struct agent *a, struct agent_session *s, const char *cls, uint64_t events,
		     uint64_t bytes);

/* ------------------------------------------------------------ api.c: launcher socket */

int agent_api_listen(struct agent *a);
void agent_api_accept(struct agent *a);
/* A launcher connection is readable; false when it was closed. */
bool agent_api_client(struct agent *a, int fd);
/* Drop every launcher connection (at exit). */
void agent_api_close_all(struct agent *a);

#endif
