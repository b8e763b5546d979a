/*
 * Sessions: a cgroup v2 directory each, registered in the BPF session map,
 * with a recording writer. A session ends when its cgroup has no process left
 * (whether or not the launcher said goodbye).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "agent.pb-c.h"
#include "log.h"
#include "util.h"

static char *session_strdup(const char *s)
{
	return strdup(s ? s : "");
}

static void session_free(struct agent_session *s)
{
	if (!s)
		return;
	free(s->pending);
	free(s->arena);
	for (size_t i = 0; i < s->n_command; i++)
		free(s->command[i]);
	free(s->command);
	free(s->user);
	free(s->login);
	free(s->kind);
	free(s->tty);
	free(s->remote_addr);
	if (s->events_fd >= 0)
		close(s->events_fd);
	rec_writer_abandon(s->w);
	free(s);
}

static int session_add(struct agent *a, struct agent_session *s)
{
	if (a->n_sessions == a->cap_sessions) {
		size_t cap = a->cap_sessions ? a->cap_sessions * 2 : 16;
		struct agent_session **n = realloc(a->sessions, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		a->sessions = n;
		a->cap_sessions = cap;
	}
	a->sessions[a->n_sessions++] = s;
	return 0;
}

static void session_remove(struct agent *a, struct agent_session *s)
{
	for (size_t i = 0; i < a->n_sessions; i++) {
		if (a->sessions[i] == s) {
			a->sessions[i] = a->sessions[--a->n_sessions];
			return;
		}
	}
}

struct agent_session *agent_session_find_cgid(struct agent *a, uint64_t cgid)
{
	for (size_t i = 0; i < a->n_sessions; i++)
		if (a->sessions[i]->cgid == cgid)
			return a->sessions[i];
	return NULL;
}

struct agent_session *agent_session_find_sid(struct agent *a, const char *sid)
{
	for (size_t i = 0; i < a->n_sessions; i++)
		if (strcmp(a->sessions[i]->sid, sid) == 0)
			return a->sessions[i];
	return NULL;
}

struct agent_session *agent_session_find_fd(struct agent *a, int fd, bool events_fd)
{
	for (size_t i = 0; i < a->n_sessions; i++) {
		struct agent_session *s = a->sessions[i];

		if ((events_fd ? s->events_fd : s->client_fd) == fd)
			return s;
	}
	return NULL;
}

bool agent_session_populated(struct agent_session *s)
{
	char buf[256];
	ssize_t n;

	n = pread(s->events_fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return strstr(buf, "populated 1") != NULL;
}

/* The launcher may only place itself or its own child in a session. */
static int session_check_pid(uint32_t pid, uint32_t peer_pid)
{
	char path[64], *buf = NULL, *p;
	unsigned int ppid = 0;
	int err;

	if (pid == peer_pid)
		return 0;
	snprintf(path, sizeof(path), "/proc/%u/stat", pid);
	err = util_read_file(path, 4096, &buf, NULL);
	if (err)
		return err;
	/* comm may hold spaces and parentheses: parse after the last ')' */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %*c %u", &ppid) != 1)
		err = -EINVAL;
	else if (ppid != peer_pid)
		err = -EPERM;
	free(buf);
	return err;
}

static int session_start_event(struct agent *a, struct agent_session *s,
			       const Sessrec__Agent__OpenRequest *req)
{
	Sessrec__Event ev = SESSREC__EVENT__INIT;
	Sessrec__SessionStart st = SESSREC__SESSION_START__INIT;
	Sessrec__SessionStart__LabelsEntry *entries = NULL, **ptrs = NULL;
	size_t n = 0, max = req->n_labels + a->cfg->n_labels;
	int err;

	if (max) {
		entries = calloc(max, sizeof(*entries));
		ptrs = calloc(max, sizeof(*ptrs));
		if (!entries || !ptrs) {
			err = -ENOMEM;
			goto out;
		}
	}
	for (size_t i = 0; i < req->n_labels; i++) {
		sessrec__session_start__labels_entry__init(&entries[n]);
		entries[n].key = req->labels[i]->key;
		entries[n].value = req->labels[i]->value;
		ptrs[n] = &entries[n];
		n++;
	}
	for (size_t i = 0; i < a->cfg->n_labels; i++) {
		bool dup = false;

		for (size_t j = 0; j < req->n_labels; j++)
			dup |= strcmp(req->labels[j]->key, a->cfg->labels[i].key) == 0;
		if (dup)
			continue;
		sessrec__session_start__labels_entry__init(&entries[n]);
		entries[n].key = a->cfg->labels[i].key;
		entries[n].value = a->cfg->labels[i].value;
		ptrs[n] = &entries[n];
		n++;
	}
	st.sid = s->sid;
	st.server_id = a->server_id;
	st.server_hostname = a->hostname;
	st.login = s->login;
	st.user = s->user;
	st.kind = s->kind;
	st.n_initial_command = s->n_command;
	st.initial_command = s->command;
	st.cols = s->cols;
	st.rows = s->rows;
	st.n_labels = n;
	st.labels = ptrs;
	st.cgroup_id = s->cgid;
	st.tty = s->tty;
	st.remote_addr = s->remote_addr;
	st.launcher_pid = req->pid;
	ev.time_ns = s->start_ns;
	ev.body_case = SESSREC__EVENT__BODY_START;
	ev.start = &st;
	err = agent_event_write(a, s, &ev);
out:
	free(entries);
	free(ptrs);
	return err;
}

int agent_session_open(struct agent *a, int client_fd, const void *request, uint32_t peer_pid,
		       char *errbuf, size_t errlen, struct agent_session **out)
{
	const Sessrec__Agent__OpenRequest *req = request;
	struct rec_writer_opts wopts = {0};
	struct agent_session *s;
	struct epoll_event ev = {0};
	char path[PATH_MAX], pid[16];
	struct stat st;
	bool registered = false, made_dir = false;
	int err;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->events_fd = -1;
	s->client_fd = client_fd;
	s->exit_code = -1;
	util_uuid(s->sid);
	s->user = session_strdup(req->user);
	s->login = session_strdup(req->login);
	s->kind = session_strdup(req->kind && req->kind[0] ? req->kind : "local");
	s->tty = session_strdup(req->tty);
	s->remote_addr = session_strdup(req->remote_addr);
	s->cols = req->cols ? req->cols : 80;
	s->rows = req->rows ? req->rows : 24;
	if (!s->user || !s->login || !s->kind || !s->tty || !s->remote_addr) {
		err = -ENOMEM;
		goto fail;
	}
	if (strcmp(s->kind, "local") && strcmp(s->kind, "ssh") && strcmp(s->kind, "k8s")) {
		snprintf(errbuf, errlen, "unknown session kind '%s' (local, ssh or k8s)", s->kind);
		err = -EINVAL;
		goto fail;
	}
	if (req->n_command > 4096) {
		snprintf(errbuf, errlen, "command has too many arguments");
		err = -E2BIG;
		goto fail;
	}
	s->command = calloc(req->n_command + 1, sizeof(char *));
	if (!s->command) {
		err = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < req->n_command; i++) {
		s->command[i] = strdup(req->command[i]);
		if (!s->command[i]) {
			err = -ENOMEM;
			goto fail;
		}
		s->n_command++;
	}
	err = session_check_pid(req->pid, peer_pid);
	if (err) {
		snprintf(errbuf, errlen, "process %u is not the caller or its child", req->pid);
		goto fail;
	}

	/* the cgroup, then the kernel filter, then the process: no event is missed */
	snprintf(s->cgroup_dir, sizeof(s->cgroup_dir), "%s/%s", a->cgroup_root, s->sid);
	if (mkdir(s->cgroup_dir, 0755) < 0) {
		err = -errno;
		snprintf(errbuf, errlen, "cannot create cgroup %s: %s", s->cgroup_dir,
			 strerror(errno));
		goto fail;
	}
	made_dir = true;
	if (stat(s->cgroup_dir, &st) < 0) {
		err = -errno;
		goto fail;
	}
	s->cgid = st.st_ino;
	err = agent_bpf_session_add(a->bpf, s->cgid);
	if (err) {
		snprintf(errbuf, errlen, "cannot register the session in the kernel: %s",
			 strerror(-err));
		goto fail;
	}
	registered = true;

	snprintf(path, sizeof(path), "%s/%s.rec", a->rec_dir, s->sid);
	wopts.part_size = a->cfg->part_size;
	wopts.compress_level = 1; /* the event loop must keep up with terminal output */
	wopts.pool = a->pool;
	err = rec_writer_open(&s->w, path, s->sid, &wopts);
	if (err) {
		snprintf(errbuf, errlen, "cannot create recording %s: %s", path, strerror(-err));
		goto fail;
	}
	s->start_ns = util_now_ns();
	s->start_mono = util_mono_ns();
	s->last_flush_ns = s->start_ns;
	err = session_start_event(a, s, req);
	if (err) {
		snprintf(errbuf, errlen, "cannot write the recording: %s", strerror(-err));
		goto fail;
	}

	snprintf(path, sizeof(path), "%s/cgroup.procs", s->cgroup_dir);
	snprintf(pid, sizeof(pid), "%u", req->pid);
	err = util_write_file(path, pid);
	if (err) {
		snprintf(errbuf, errlen, "cannot move process %u into %s: %s", req->pid, path,
			 strerror(-err));
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/cgroup.events", s->cgroup_dir);
	s->events_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (s->events_fd < 0) {
		err = -errno;
		snprintf(errbuf, errlen, "cannot open %s: %s", path, strerror(errno));
		goto fail;
	}
	ev.events = EPOLLPRI;
	ev.data.u64 = AGENT_EP(AGENT_EP_CGROUP, s->events_fd);
	if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, s->events_fd, &ev) < 0) {
		err = -errno;
		goto fail;
	}
	err = session_add(a, s);
	if (err)
		goto fail;
	fflush(a->audit);
	METRIC_ADD(a->metrics.sessions_total, 1);
	METRIC_SET(a->metrics.sessions_open, a->n_sessions);
	log_info("session %s opened: user %s, login %s, kind %s, pid %u, cgroup id %lu", s->sid,
		 s->user, s->login, s->kind, req->pid, (unsigned long)s->cgid);
	*out = s;
	return 0;
fail:
	if (registered)
		agent_bpf_session_del(a->bpf, s->cgid);
	if (s->w) {
		/* a recording that never started is not kept */
		snprintf(path, sizeof(path), "%s/%s.rec", a->rec_dir, s->sid);
		rec_writer_abandon(s->w);
		s->w = NULL;
		unlink(path);
	}
	if (made_dir)
		rmdir(s->cgroup_dir);
	if (!errbuf[0])
		snprintf(errbuf, errlen, "cannot open the session: %s", strerror(-err));
	session_free(s);
	return err;
}

void agent_session_queue(struct agent *a, const void *data, size_t size)
{
	const struct sessrec_hdr *h = data;
	struct agent_session *s;
	struct agent_pending *p;

	if (size < sizeof(*h))
		return;
	s = agent_session_find_cgid(a, h->cgroup_id);
	if (!s)
		return; /* a session that just ended: its cgroup is gone */
	if (s->n_pending == s->cap_pending) {
		size_t cap = s->cap_pending ? s->cap_pending * 2 : 64;
		struct agent_pending *n = realloc(s->pending, cap * sizeof(*n));

		if (!n) {
			log_error("session %s: out of memory, event dropped", s->sid);
			return;
		}
		s->pending = n;
		s->cap_pending = cap;
	}
	if (s->arena_len + size > s->arena_cap) {
		size_t cap = s->arena_cap ? s->arena_cap : 16384;
		uint8_t *n;

		while (cap < s->arena_len + size)
			cap *= 2;
		n = realloc(s->arena, cap);
		if (!n) {
			log_error("session %s: out of memory, event dropped", s->sid);
			return;
		}
		s->arena = n;
		s->arena_cap = cap;
	}
	p = &s->pending[s->n_pending];
	memcpy(s->arena + s->arena_len, data, size);
	p->off = s->arena_len;
	p->size = size;
	s->arena_len += size;
	p->ts = h->ts_ns;
	p->seq = a->seq++;
	s->n_pending++;
}

static int session_pending_cmp(const void *x, const void *y)
{
	const struct agent_pending *a = x, *b = y;

	if (a->ts != b->ts)
		return a->ts < b->ts ? -1 : 1;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

void agent_session_flush_cycle(struct agent *a)
{
	for (size_t i = 0; i < a->n_sessions; i++) {
		struct agent_session *s = a->sessions[i];

		if (!s->n_pending)
			continue;
		/* the ring buffers are drained one after the other: order by time */
		qsort(s->pending, s->n_pending, sizeof(*s->pending), session_pending_cmp);
		for (size_t j = 0; j < s->n_pending; j++) {
			int err =
			    agent_event_raw(a, s, s->arena + s->pending[j].off, s->pending[j].size);

			if (err && err != -EBADMSG)
				log_warn("session %s: event not recorded: %s", s->sid,
					 strerror(-err));
		}
		s->n_pending = 0;
		s->arena_len = 0;
		if (s->arena_cap > (1u << 20)) {
			/* a burst is over: do not keep its memory for the session's lifetime */
			free(s->arena);
			s->arena = NULL;
			s->arena_cap = 0;
		}
	}
	if (a->audit)
		fflush(a->audit);
}

static const char *const session_class_names[SESSREC_CLASS_MAX] = {"command", "disk", "network",
								   "terminal"};

static void session_check_lost(struct agent *a, struct agent_session *s)
{
	struct agent_lost now;

	if (agent_bpf_session_lost(a->bpf, s->cgid, &now))
		return;
	for (int c = 0; c < SESSREC_CLASS_MAX; c++) {
		uint64_t bytes = 0;

		if (now.events[c] <= s->lost_seen.events[c])
			continue;
		if (c == SESSREC_CLASS_TERMINAL) {
			bytes = now.tty_bytes > s->lost_seen.tty_bytes
				    ? now.tty_bytes - s->lost_seen.tty_bytes
				    : 0;
			s->lost_seen.tty_bytes += bytes;
			s->out_offset += bytes;
		}
		agent_event_lost(a, s, session_class_names[c],
				 now.events[c] - s->lost_seen.events[c], bytes);
		s->lost_seen.events[c] = now.events[c];
	}
}

void agent_session_tick(struct agent *a)
{
	int64_t now = util_now_ns();

	for (size_t i = 0; i < a->n_sessions; i++) {
		struct agent_session *s = a->sessions[i];

		session_check_lost(a, s);
		if (rec_writer_pending(s->w) &&
		    now - s->last_flush_ns >= (int64_t)a->cfg->part_interval * 1000000000LL) {
			int err = rec_writer_flush(s->w, false);

			if (err)
				log_error("session %s: cannot write a part: %s", s->sid,
					  strerror(-err));
			s->last_flush_ns = now;
		}
	}
}

void agent_session_finish(struct agent *a, struct agent_session *s, const char *reason)
{
	Sessrec__Event ev = SESSREC__EVENT__INIT;
	Sessrec__SessionEnd end = SESSREC__SESSION_END__INIT;
	char *participants[1] = {s->user};
	int err;

	session_check_lost(a, s);
	end.session_start_ns = s->start_ns;
	end.session_stop_ns = util_now_ns();
	end.n_participants = 1;
	end.participants = participants;
	end.interactive = true;
	end.n_initial_command = s->n_command;
	end.initial_command = s->command;
	end.exit_code = s->exit_code;
	end.reason = (char *)reason;
	ev.time_ns = end.session_stop_ns;
	ev.body_case = SESSREC__EVENT__BODY_END;
	ev.end = &end;
	agent_event_write(a, s, &ev);
	err = rec_writer_close(s->w);
	s->w = NULL;
	if (err)
		log_error("session %s: cannot finalize the recording: %s", s->sid, strerror(-err));
	if (a->audit)
		fflush(a->audit);
	agent_bpf_session_del(a->bpf, s->cgid);
	epoll_ctl(a->epfd, EPOLL_CTL_DEL, s->events_fd, NULL);
	if (!agent_session_populated(s) && rmdir(s->cgroup_dir) < 0)
		log_warn("session %s: cannot remove %s: %s", s->sid, s->cgroup_dir,
			 strerror(errno));
	log_info("session %s ended (%s), exit code %d, %lu events", s->sid, reason, s->exit_code,
		 (unsigned long)s->next_ei);
	session_remove(a, s);
	METRIC_SET(a->metrics.sessions_open, a->n_sessions);
	session_free(s);
}
