/*
 * Raw BPF records -> recording events. Every event of a session goes through
 * agent_event_write, which gives it the next ei, a unique id and its UTC
 * time, appends it to the recording and, unless it is terminal output, to the
 * node audit log.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "audit.h"
#include "log.h"
#include "util.h"

#define EVENTS_ARGV_MAX 1024 /* argv entries kept from one exec */

static void events_audit(struct agent *a, struct agent_session *s, const Sessrec__Event *ev)
{
	struct audit_ctx ctx = {
	    .sid = s->sid,
	    .server_id = a->server_id,
	    .server_hostname = a->hostname,
	    .login = s->login,
	    .user = s->user,
	    .session_start_ns = s->start_ns,
	};
	size_t len;
	int err;

	if (!a->audit || ev->body_case == SESSREC__EVENT__BODY_PRINT)
		return; /* terminal data never goes to the audit log */
	if (!s->audit_fixed && audit_ctx_fixed(&ctx, &s->audit_fixed, &s->audit_fixed_len) != 0)
		s->audit_fixed = NULL; /* rendered field by field */
	ctx.fixed = s->audit_fixed;
	ctx.fixed_len = s->audit_fixed_len;
	err = audit_format_buf(ev, &ctx, &a->line, &a->line_cap, &len);
	if (err) {
		log_warn("session %s: cannot format audit event %lu: %s", s->sid,
			 (unsigned long)ev->ei, strerror(-err));
		return;
	}
	a->line[len] = '\n'; /* the buffer always has room for the NUL */
	if (fwrite(a->line, 1, len + 1, a->audit) != len + 1)
		log_warn("audit log: write failed: %s", strerror(errno));
	else
		METRIC_ADD(a->metrics.audit_bytes, len + 1);
}

int agent_event_write(struct agent *a, struct agent_session *s, Sessrec__Event *ev)
{
	char uid[UUID_STR_LEN_];
	int err;

	util_uuid(uid);
	ev->ei = s->next_ei++;
	ev->uid = uid;
	if (ev->time_ns == 0)
		ev->time_ns = util_now_ns();
	if (ev->time_ns < s->last_ns)
		ev->time_ns = s->last_ns; /* time never goes backwards inside a recording */
	s->last_ns = ev->time_ns;
	err = rec_writer_append(s->w, ev);
	if (err) {
		/* the writer refused it: its ei stays free for the next event */
		s->next_ei--;
		log_error("session %s: event %lu not recorded: %s", s->sid, (unsigned long)ev->ei,
			  strerror(-err));
		ev->uid = NULL;
		return err;
	}
	events_audit(a, s, ev);
	ev->uid = NULL;
	return err;
}

int agent_event_lost(struct agent *a, struct agent_session *s, const char *cls, uint64_t events,
		     uint64_t bytes)
{
	Sessrec__Event ev = SESSREC__EVENT__INIT;
	Sessrec__Lost lost = SESSREC__LOST__INIT;

	lost.class_ = (char *)cls;
	lost.events = events;
	lost.bytes = bytes;
	ev.body_case = SESSREC__EVENT__BODY_LOST;
	ev.lost = &lost;
	log_warn("session %s: %lu %s events (%lu bytes) lost: ring buffer full", s->sid,
		 (unsigned long)events, cls, (unsigned long)bytes);
	return agent_event_write(a, s, &ev);
}

static int64_t events_time(struct agent *a, const struct sessrec_hdr *h)
{
	return (int64_t)h->ts_ns + a->mono_to_real;
}

static char *events_comm(char *buf, const struct sessrec_hdr *h)
{
	memcpy(buf, h->comm, SESSREC_COMM_LEN);
	buf[SESSREC_COMM_LEN] = '\0';
	return buf;
}

/* NUL-separated argv into an array of pointers into data (not copied). */
static size_t events_split_argv(char *data, size_t len, char **argv, size_t max)
{
	size_t n = 0, i = 0;

	while (i < len && n < max) {
		argv[n++] = data + i;
		while (i < len && data[i])
			i++;
		i++;
	}
	return n;
}

/* A relative path of a failed open, made absolute with the process's cwd when it is still there. */
static void events_abs_path(const struct sessrec_open *e, const char *path, char *out, size_t len)
{
	char link[64], cwd[PATH_MAX];
	ssize_t n;

	snprintf(out, len, "%s", path);
	if (path[0] == '/' || e->dfd != -100)
		return;
	snprintf(link, sizeof(link), "/proc/%u/cwd", e->hdr.pid);
	n = readlink(link, cwd, sizeof(cwd) - 1);
	if (n <= 0)
		return;
	cwd[n] = '\0';
	snprintf(out, len, "%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, path);
}

static int events_exec(struct agent *a, struct agent_session *s, const struct sessrec_exec *e,
		       size_t size)
{
	Sessrec__Event ev = SESSREC__EVENT__INIT;
	Sessrec__Command c = SESSREC__COMMAND__INIT;
	char comm[SESSREC_COMM_LEN + 1], *argv[EVENTS_ARGV_MAX], *args = NULL, *path;
	size_t args_len = e->args_len, path_len = e->path_len;
	int err;

	if (sizeof(*e) + args_len + path_len > size)
		return -EBADMSG;
	/* one copy, NUL-terminated, so strings can be used in place */
	args = malloc(args_len + path_len + 2);
	if (!args)
		return -ENOMEM;
	memcpy(args, e->data, args_len);
	args[args_len] = '\0';
	path = args + args_len + 1;
	memcpy(path, e->data + args_len, path_len);
	path[path_len] = '\0';

	c.pid = e->hdr.pid;
	c.ppid = e->hdr.ppid;
	c.uid = e->hdr.uid;
	c.gid = e->hdr.gid;
	c.cgroup_id = e->hdr.cgroup_id;
	c.program = events_comm(comm, &e->hdr);
	c.path = path;
	c.n_argv = events_split_argv(args, args_len, argv, EVENTS_ARGV_MAX);
	c.argv = argv;
	c.argv_truncated = (e->flags & SESSREC_EXEC_F_ARGS_TRUNC) || c.n_argv == EVENTS_ARGV_MAX;
	c.return_code = e->retval;
	ev.time_ns = events_time(a, &e->hdr);
	ev.body_case = SESSREC__EVENT__BODY_COMMAND;
	ev.command = &c;
	err = agent_event_write(a, s, &ev);
	free(args);
	return err;
}

static int events_open(struct agent *a, struct agent_session *s, const struct sessrec_open *e,
		       size_t size)
{
	Sessrec__Event ev = SESSREC__EVENT__INIT;
	Sessrec__Disk d = SESSREC__DISK__INIT;
	char comm[SESSREC_COMM_LEN + 1], raw[SESSREC_PATH_MAX + 1],
	    path[PATH_MAX + SESSREC_PATH_MAX];
	size_t n = e->path_len;

	if (sizeof(*e) + n > size || n > SESSREC_PATH_MAX)
		return -EBADMSG;
	memcpy(raw, e->data, n);
	raw[n] = '\0';
	if (e->abs)
		snprintf(path, sizeof(path), "%s", raw);
	else
		events_abs_path(e, raw, path, sizeof(path));
	d.pid = e->hdr.pid;
	d.uid = e->hdr.uid;
	d.cgroup_id = e->hdr.cgroup_id;
	d.program = events_comm(comm, &e->hdr);
	d.path = path;
	d.flags = e->flags;
	d.return_code = e->retval;
	ev.time_ns = events_time(a, &e->hdr);
	ev.body_case = SESSREC__EVENT__BODY_DISK;
	ev.disk = &d;
	return agent_event_write(a, s, &ev);
}

static int events_connect(struct agent *a, struct agent_session *s, const struct sessrec_connect *e,
			  size_t size)
{
	Sessrec__Event ev = SESSREC__EVENT__INIT;
	Sessrec__Network n = SESSREC__NETWORK__INIT;
	char comm[SESSREC_COMM_LEN + 1], src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
	int af;

	if (size < sizeof(*e))
		return -EBADMSG;
	af = e->family == 10 ? AF_INET6 : AF_INET;
	if (!inet_ntop(af, e->saddr, src, sizeof(src)) ||
	    !inet_ntop(af, e->daddr, dst, sizeof(dst)))
		return -EBADMSG;
	n.pid = e->hdr.pid;
	n.uid = e->hdr.uid;
	n.cgroup_id = e->hdr.cgroup_id;
	n.program = events_comm(comm, &e->hdr);
	n.src_addr = src;
	n.dst_addr = dst;
	n.src_port = e->sport;
	n.dst_port = e->dport;
	n.version = af == AF_INET6 ? 6 : 4;
	n.protocol = e->protocol == 6 ? "tcp" : e->protocol == 17 ? "udp" : "";
	n.return_code = e->retval;
	ev.time_ns = events_time(a, &e->hdr);
	ev.body_case = SESSREC__EVENT__BODY_NETWORK;
	ev.network = &n;
	return agent_event_write(a, s, &ev);
}

static int events_tty(struct agent *a, struct agent_session *s, const struct sessrec_tty *e,
		      size_t size)
{
	Sessrec__Event ev = SESSREC__EVENT__INIT;
	Sessrec__Print p = SESSREC__PRINT__INIT;
	char tty[32];
	int err;

	if (sizeof(*e) + e->len > size)
		return -EBADMSG;
	if (e->lost_total > s->lost_seen.tty_bytes) {
		/* bytes went missing before this chunk: mark the gap where it is */
		uint64_t gap = e->lost_total - s->lost_seen.tty_bytes;

		s->lost_seen.tty_bytes = e->lost_total;
		s->out_offset += gap;
		err = agent_event_lost(a, s, "terminal", 0, gap);
		if (err)
			return err;
	}
	snprintf(tty, sizeof(tty), "/dev/pts/%u", (e->tty_major - 136) * 256 + e->tty_minor);
	p.ci = s->next_ci++;
	p.ms = e->hdr.ts_ns > s->start_mono ? (e->hdr.ts_ns - s->start_mono) / 1000000 : 0;
	p.offset = s->out_offset;
	p.bytes = e->len;
	p.data.data = (uint8_t *)e->data;
	p.data.len = e->len;
	p.pid = e->hdr.pid;
	p.tty = tty;
	s->out_offset += e->len;
	ev.time_ns = events_time(a, &e->hdr);
	ev.body_case = SESSREC__EVENT__BODY_PRINT;
	ev.print = &p;
	return agent_event_write(a, s, &ev);
}

int agent_event_raw(struct agent *a, struct agent_session *s, const void *data, size_t size)
{
	const struct sessrec_hdr *h = data;
	int cls;

	if (size < sizeof(*h))
		return -EBADMSG;
	switch (h->type) {
	case SESSREC_EV_EXEC:
		cls = SESSREC_CLASS_COMMAND;
		METRIC_ADD(a->metrics.events[cls], 1);
		return events_exec(a, s, data, size);
	case SESSREC_EV_OPEN:
		cls = SESSREC_CLASS_DISK;
		METRIC_ADD(a->metrics.events[cls], 1);
		return events_open(a, s, data, size);
	case SESSREC_EV_CONNECT:
		cls = SESSREC_CLASS_NETWORK;
		METRIC_ADD(a->metrics.events[cls], 1);
		return events_connect(a, s, data, size);
	case SESSREC_EV_TTY:
		cls = SESSREC_CLASS_TERMINAL;
		METRIC_ADD(a->metrics.events[cls], 1);
		return events_tty(a, s, data, size);
	default:
		return -EBADMSG;
	}
}
