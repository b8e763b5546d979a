/*
 * Sessions: a cgroup v2 directory each, registered in the BPF session map,
 * with a recording writer. A session ends when its cgroup has no process left
 * (whether or not the launcher said goodbye).
 */
#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "agent.pb-c.h"
#include "log.h"
#include "util.h"

static char *session_strdup(const char *s)
{
	return strdup(s ? s : "");
}

void agent_session_free(struct agent_session *s)
{
	if (!s)
		return;
	free(s->pending);
	free(s->arena);
	free(s->audit_fixed);
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

/*
 * The writer's on_part, on the pool's thread once a part is on disk: it is
 * counted, and for sync sessions it goes to the uploader.
 */
static int session_on_part(void *ctx, uint32_t index, const uint8_t *part, size_t len, bool final)
{
	const struct agent_session *s = ctx;

	METRIC_ADD(s->agent->metrics.recording_bytes, len);
	if (!s->sync)
		return 0;
	return agent_upload_part(s->up, s->sid, index, part, len, final);
}

static void session_writer_opts(struct agent *a, struct agent_session *s, struct rec_writer_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->part_size = a->cfg->part_size;
	o->compress_level = 1; /* the event loop must keep up with terminal output */
	o->pool = a->pool;
	o->on_part = session_on_part;
	o->cb_ctx = s;
	s->agent = a;
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
			       const Sessrec__Agent__OpenRequest *req, const struct ucred *peer)
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
	/* the caller, as the kernel knows it (SO_PEERCRED); req->pid is the session's first process
	 */
	st.launcher_pid = (uint32_t)peer->pid;
	st.launcher_uid = peer->uid;
	ev.time_ns = s->start_ns;
	ev.body_case = SESSREC__EVENT__BODY_START;
	ev.start = &st;
	err = agent_event_write(a, s, &ev);
out:
	free(entries);
	free(ptrs);
	return err;
}

int agent_session_open(struct agent *a, int client_fd, const void *request,
		       const struct ucred *peer, char *errbuf, size_t errlen,
		       struct agent_session **out)
{
	const Sessrec__Agent__OpenRequest *req = request;
	struct rec_writer_opts wopts;
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
	s->launcher_uid = peer->uid;
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
	err = session_check_pid(req->pid, (uint32_t)peer->pid);
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
	s->sync = a->up && agent_config_sync(a->cfg);
	s->up = s->sync ? a->up : NULL;
	session_writer_opts(a, s, &wopts);
	err = rec_writer_open(&s->w, path, s->sid, &wopts);
	if (err) {
		snprintf(errbuf, errlen, "cannot create recording %s: %s", path, strerror(-err));
		goto fail;
	}
	s->start_ns = util_now_ns();
	s->start_mono = util_mono_ns();
	s->last_flush_ns = s->start_ns;
	s->recorded_since_ns = s->start_ns;
	err = session_start_event(a, s, req, peer);
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
	if (s->sync && agent_upload_sync_open(a->up, s->sid, 0))
		log_warn("session %s: out of memory: its parts reach the collector at its end",
			 s->sid);
	/*
	 * session.start on disk at once, as part 0: a crash a second later leaves a
	 * recording that the completer or a restarted agent can continue (and the
	 * collector sees a sync session right away).
	 */
	err = rec_writer_flush(s->w, false);
	if (err)
		log_warn("session %s: cannot write part 0: %s", s->sid, strerror(-err));
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
	agent_session_free(s);
	return err;
}

void agent_session_queue(struct agent *a, const void *data, size_t size)
{
	const struct sessrec_hdr *h = data;
	struct agent_session *s;
	struct agent_pending *p;
	size_t off;

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
	/* records are read in place as structs: each starts 8-byte aligned */
	off = (s->arena_len + 7) & ~(size_t)7;
	if (off + size > s->arena_cap) {
		size_t cap = s->arena_cap ? s->arena_cap : 16384;
		uint8_t *n;

		while (cap < off + size)
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
	memcpy(s->arena + off, data, size);
	p->off = off;
	p->size = size;
	s->arena_len = off + size;
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
			a->trim = true;
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

/* Write one line to the session's terminal, if it has one (a character device under /dev). */
static void session_tell(const struct agent_session *s, const char *msg)
{
	struct stat st;
	int fd, err;

	/* the path came from the launcher: never write into anything but a terminal */
	if (!s->tty || strncmp(s->tty, "/dev/", 5) != 0 || strstr(s->tty, "/../"))
		return;
	fd = open(s->tty, O_WRONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		log_debug("session %s: cannot open %s: %s", s->sid, s->tty, strerror(errno));
		return;
	}
	if (fstat(fd, &st) == 0 && S_ISCHR(st.st_mode)) {
		err = util_write_all(fd, msg, strlen(msg));
		if (err)
			log_debug("session %s: cannot write to %s: %s", s->sid, s->tty,
				  strerror(-err));
	}
	close(fd);
}

/* SIGKILL every process of the cgroup (kernels before 5.14 have no cgroup.kill). */
static int session_kill_procs(const struct agent_session *s)
{
	char path[PATH_MAX], *buf = NULL, *p, *end;
	int err = 0;

	snprintf(path, sizeof(path), "%s/cgroup.procs", s->cgroup_dir);
	/* a process may fork while we go: a few rounds */
	for (int round = 0; round < 5; round++) {
		bool any = false;

		err = util_read_file(path, 1 << 20, &buf, NULL);
		if (err)
			return err;
		for (p = buf; *p; p = end) {
			unsigned long pid = strtoul(p, &end, 10);

			if (end == p)
				break;
			if (pid > 0 && kill((pid_t)pid, SIGKILL) == 0)
				any = true;
		}
		free(buf);
		buf = NULL;
		if (!any)
			break;
	}
	return err;
}

/* Sync mode: the collector stayed away past the grace period: end the session, saying why. */
static void session_terminate(struct agent *a, struct agent_session *s, uint32_t grace)
{
	char msg[160], path[PATH_MAX];
	int err;

	snprintf(msg, sizeof(msg),
		 "\r\nsessrec: session terminated: the collector has been unreachable for %" PRIu32
		 " s\r\n",
		 grace);
	session_tell(s, msg);
	snprintf(path, sizeof(path), "%s/cgroup.kill", s->cgroup_dir);
	err = util_write_file(path, "1");
	if (err == -ENOENT)
		err = session_kill_procs(s);
	if (err)
		log_error("session %s: cannot kill its processes (%s): %s", s->sid, path,
			  strerror(-err));
	s->killed = true;
	s->end_reason = AGENT_REASON_UNREACHABLE;
	METRIC_ADD(a->metrics.sessions_terminated, 1);
	log_warn("session %s terminated: the collector has been unreachable for more than %" PRIu32
		 " s (sync mode, collector.sync_grace_period)",
		 s->sid, grace);
}

void agent_session_tick(struct agent *a)
{
	int64_t now = util_now_ns();

	/*
	 * After a burst (arenas, parts handed to the writer), the allocator keeps
	 * the freed memory; hand it back so an idle agent stays small.
	 */
	if (a->bpf)
		agent_bpf_trim(a->bpf);
	if (a->trim && (a->pool == NULL || rec_pool_queued(a->pool) == 0)) {
		malloc_trim(0);
		a->trim = false;
	}
	int64_t down = a->up ? agent_upload_down_since(a->up) : 0;
	uint32_t grace = a->cfg->collector.sync_grace_period;

	for (size_t i = 0; i < a->n_sessions; i++) {
		struct agent_session *s = a->sessions[i];

		if (s->sync && down && !s->killed) {
			/* a session opened during an outage gets the whole grace period too */
			int64_t from = down > s->recorded_since_ns ? down : s->recorded_since_ns;

			if (now - from >= (int64_t)grace * 1000000000LL)
				session_terminate(a, s, grace);
		}
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

	if (s->end_reason)
		reason = s->end_reason; /* the agent ended it, whatever the cgroup says */
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
	/* not final (a write failed): the uploader leaves it to the completer */
	if (a->up && agent_upload_queue(a->up, s->sid))
		log_warn("session %s: out of memory: queued for upload by the next completer run",
			 s->sid);
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
	a->trim = true;
	METRIC_SET(a->metrics.sessions_open, a->n_sessions);
	agent_session_free(s);
}

/* ------------------------------------------------------------ after a restart */

bool agent_session_is_sid(const char *name)
{
	return util_is_uuid(name);
}

/* Where terminal output stopped: the next chunk index and stream offset on disk. */
static int session_scan_output(const char *path, struct agent_session *s)
{
	struct rec_reader *r = NULL;
	Sessrec__Event *ev;
	int err;

	err = rec_reader_open(&r, path);
	if (err)
		return err;
	while ((err = rec_reader_next(r, &ev)) == 1) {
		if (ev->body_case == SESSREC__EVENT__BODY_PRINT) {
			s->next_ci = ev->print->ci + 1;
			s->out_offset = ev->print->offset + ev->print->bytes;
		} else if (ev->body_case == SESSREC__EVENT__BODY_LOST &&
			   strcmp(ev->lost->class_, "terminal") == 0) {
			s->out_offset += ev->lost->bytes;
		}
		sessrec__event__free_unpacked(ev, NULL);
	}
	rec_reader_close(r);
	return err;
}

int agent_session_restore(struct agent *a, const char *sid, bool stream, struct agent_session **out,
			  int64_t *last_ns)
{
	struct rec_writer_opts wopts;
	const Sessrec__SessionStart *st;
	Sessrec__Event *start = NULL;
	struct agent_session *s;
	char path[PATH_MAX];
	int64_t last = 0;
	int err;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->events_fd = -1;
	s->client_fd = -1;
	s->exit_code = -1;
	snprintf(s->sid, sizeof(s->sid), "%s", sid);
	s->sync = stream && a->up;
	s->up = s->sync ? a->up : NULL;
	snprintf(path, sizeof(path), "%s/%s.rec", a->rec_dir, sid);
	session_writer_opts(a, s, &wopts);
	err = rec_writer_reopen(&s->w, path, &wopts, &start, &s->next_ei, &last);
	if (err)
		goto fail;
	st = start->start;
	if (strcmp(st->sid, sid) != 0) {
		err = -EBADMSG; /* a recording renamed: never append under another session's name */
		goto fail;
	}
	s->user = session_strdup(st->user);
	s->login = session_strdup(st->login);
	s->kind = session_strdup(st->kind);
	s->tty = session_strdup(st->tty);
	s->remote_addr = session_strdup(st->remote_addr);
	s->command = calloc(st->n_initial_command + 1, sizeof(char *));
	if (!s->user || !s->login || !s->kind || !s->tty || !s->remote_addr || !s->command) {
		err = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < st->n_initial_command; i++) {
		s->command[i] = strdup(st->initial_command[i]);
		if (!s->command[i]) {
			err = -ENOMEM;
			goto fail;
		}
		s->n_command++;
	}
	s->cols = st->cols;
	s->rows = st->rows;
	s->cgid = st->cgroup_id;
	s->launcher_uid = st->launcher_uid;
	s->start_ns = start->time_ns;
	s->last_ns = last;
	s->last_flush_ns = util_now_ns();
	err = session_scan_output(path, s);
	if (err)
		goto fail;
	if (last_ns)
		*last_ns = last;
	sessrec__event__free_unpacked(start, NULL);
	*out = s;
	return 0;
fail:
	if (start)
		sessrec__event__free_unpacked(start, NULL);
	agent_session_free(s);
	return err;
}

/* The in-band marker of the time no agent recorded: class "agent", amounts unknown (0). */
static int session_lost_agent(struct agent *a, struct agent_session *s)
{
	Sessrec__Event ev = SESSREC__EVENT__INIT;
	Sessrec__Lost lost = SESSREC__LOST__INIT;

	lost.class_ = "agent";
	ev.body_case = SESSREC__EVENT__BODY_LOST;
	ev.lost = &lost;
	return agent_event_write(a, s, &ev);
}

static bool session_dir_populated(const char *dir)
{
	char path[PATH_MAX], *buf = NULL;
	bool yes;

	snprintf(path, sizeof(path), "%s/cgroup.events", dir);
	if (util_read_file(path, 4096, &buf, NULL))
		return false;
	yes = strstr(buf, "populated 1") != NULL;
	free(buf);
	return yes;
}

/* Take back one session still running in its cgroup. -ESRCH: nothing runs there. */
static int session_adopt(struct agent *a, const char *sid)
{
	struct agent_session *s = NULL;
	struct epoll_event ev = {0};
	char dir[PATH_MAX], path[PATH_MAX], since[40];
	bool registered = false;
	int64_t last = 0;
	struct stat st;
	int fd, err;

	snprintf(dir, sizeof(dir), "%s/%s", a->cgroup_root, sid);
	if (stat(dir, &st) < 0)
		return -errno;
	snprintf(path, sizeof(path), "%s/cgroup.events", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (!session_dir_populated(dir)) {
		close(fd);
		return -ESRCH;
	}
	err = agent_session_restore(a, sid, agent_config_sync(a->cfg), &s, &last);
	if (err) {
		close(fd);
		if (err == -EALREADY)
			log_warn("session %s: processes still run in %s, but its recording is "
				 "final: they stay unrecorded",
				 sid, dir);
		else if (err == -ENOENT)
			log_info("session %s: processes run in %s, but its recording is not in %s "
				 "(another agent's session?): left alone",
				 sid, dir, a->rec_dir);
		else
			log_error("session %s: processes still run in %s, but its recording "
				  "cannot be continued: %s",
				  sid, dir, strerror(-err));
		return err;
	}
	s->events_fd = fd;
	snprintf(s->cgroup_dir, sizeof(s->cgroup_dir), "%s", dir);
	s->cgid = st.st_ino;
	err = agent_bpf_session_add(a->bpf, s->cgid);
	if (err) {
		log_error("session %s: cannot register it in the kernel: %s", sid, strerror(-err));
		goto fail;
	}
	registered = true;
	/* print delays stay relative to the real start, on the kernel's clock */
	s->start_mono =
	    s->start_ns > a->mono_to_real ? (uint64_t)(s->start_ns - a->mono_to_real) : 0;
	s->recorded_since_ns = util_now_ns();
	err = session_lost_agent(a, s);
	if (err)
		goto fail;
	ev.events = EPOLLPRI;
	ev.data.u64 = AGENT_EP(AGENT_EP_CGROUP, s->events_fd);
	if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, s->events_fd, &ev) < 0) {
		err = -errno;
		goto fail;
	}
	err = session_add(a, s);
	if (err) {
		epoll_ctl(a->epfd, EPOLL_CTL_DEL, s->events_fd, NULL);
		goto fail;
	}
	if (s->sync && agent_upload_sync_open(a->up, sid, rec_writer_parts(s->w)))
		log_warn("session %s: out of memory: its parts reach the collector at its end",
			 sid);
	if (a->audit)
		fflush(a->audit);
	METRIC_ADD(a->metrics.sessions_adopted, 1);
	METRIC_SET(a->metrics.sessions_open, a->n_sessions);
	util_rfc3339(last, since, sizeof(since));
	log_warn("session %s adopted: still running in %s (user %s); events since %s are lost "
		 "(marked in the recording), recording on from event %" PRIu64,
		 sid, dir, s->user, since, s->next_ei);
	return 0;
fail:
	if (registered)
		agent_bpf_session_del(a->bpf, s->cgid);
	/* the recording stays as it was on disk (plus, at most, the marker): the completer closes
	 * it */
	agent_session_free(s);
	return err;
}

void agent_session_adopt_all(struct agent *a)
{
	struct dirent *de;
	DIR *d;

	d = opendir(a->cgroup_root);
	if (!d) {
		log_warn("cannot read %s: %s", a->cgroup_root, strerror(errno));
		return;
	}
	while ((de = readdir(d))) {
		if (!agent_session_is_sid(de->d_name) || agent_session_find_sid(a, de->d_name))
			continue;
		session_adopt(a, de->d_name); /* logs what it did or why not */
	}
	closedir(d);
}

/*
 * Another agent (its own pin_path, the same root_path: tests do that) may be
 * between mkdir and placing its process, or waiting for a Close: only what is
 * ours (a recording in our spool) or long abandoned is removed.
 */
#define SESSION_SWEEP_AGE_S 60

void agent_session_sweep(struct agent *a)
{
	char dir[PATH_MAX], rec[PATH_MAX];
	struct dirent *de;
	struct stat st;
	DIR *d;

	d = opendir(a->cgroup_root);
	if (!d)
		return;
	while ((de = readdir(d))) {
		if (!agent_session_is_sid(de->d_name) || agent_session_find_sid(a, de->d_name))
			continue;
		snprintf(dir, sizeof(dir), "%s/%s", a->cgroup_root, de->d_name);
		snprintf(rec, sizeof(rec), "%s/%s.rec", a->rec_dir, de->d_name);
		if (access(rec, F_OK) != 0 &&
		    (stat(dir, &st) < 0 || time(NULL) - st.st_ctime < SESSION_SWEEP_AGE_S))
			continue;
		if (session_dir_populated(dir))
			continue;
		if (rmdir(dir) < 0)
			log_warn("cannot remove the empty session cgroup %s: %s", dir,
				 strerror(errno));
		else
			log_info("removed the session cgroup %s: nothing runs in it any more", dir);
	}
	closedir(d);
}
