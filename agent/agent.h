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
int agent_bpf_epoll_fd(const struct agent_bpf *b);
/* Drain every ring buffer; returns records consumed or -errno. */
int agent_bpf_consume(struct agent_bpf *b);
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

/* ------------------------------------------------------------ session.c */

struct agent_session {
	char sid[40];
	uint64_t cgid;
	char cgroup_dir[PATH_MAX];
	int events_fd; /* cgroup.events, for "populated 0" */
	int client_fd; /* the launcher's connection, -1 once gone */
	struct rec_writer *w;
	uint64_t next_ei;
	uint64_t next_ci;
	uint64_t out_offset;
	int64_t start_ns;    /* UTC */
	uint64_t start_mono; /* CLOCK_MONOTONIC, as the BPF timestamps */
	int64_t last_ns;
	int64_t last_flush_ns;
	int exit_code;
	bool closing;		/* the launcher sent Close */
	int64_t empty_since_ns; /* when the cgroup was first seen empty, 0 while populated */
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
	char *line; /* the audit line being formatted, reused */
	size_t line_cap;
	struct agent_session **sessions;
	size_t n_sessions, cap_sessions;
	uint64_t seq;
	gid_t socket_gid; /* socket_group, or (gid_t)-1 */
	bool stopping;
	bool reload;
};

int agent_session_open(struct agent *a, int client_fd, const void *req, uint32_t peer_pid,
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

#endif
