/*
 * The launchers' Unix socket: `sessrec run` and pam_sessrec open and close
 * sessions here. Only root, or members of socket_group, are served; the peer
 * is identified by the kernel (SO_PEERCRED), never by what it says.
 */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent.h"
#include "agent.pb-c.h"
#include "frame.h"
#include "log.h"
#include "util.h"

int agent_api_listen(struct agent *a)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	const char *path = a->cfg->socket;
	struct epoll_event ev = {0};
	char dir[PATH_MAX], *slash;
	int fd = -1, probe, err;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		log_error("socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		err = util_mkdir_p(dir, 0755);
		if (err) {
			log_error("cannot create %s: %s", dir, strerror(-err));
			return err;
		}
	}
	/* A live agent answers on the socket; a stale file from a crash does not. */
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe >= 0 && connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
		close(probe);
		log_error("another sessrec-agent is already running on %s", path);
		return -EADDRINUSE;
	}
	if (probe >= 0)
		close(probe);
	if (unlink(path) == 0)
		log_info("removed stale socket %s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(fd, 128) < 0) {
		err = -errno;
		log_error("cannot listen on %s: %s", path, strerror(errno));
		goto fail;
	}
	if (chmod(path, a->socket_gid != (gid_t)-1 ? 0660 : 0600) < 0 ||
	    (a->socket_gid != (gid_t)-1 && chown(path, 0, a->socket_gid) < 0)) {
		err = -errno;
		log_error("cannot set the permissions of %s: %s", path, strerror(errno));
		goto fail;
	}
	ev.events = EPOLLIN;
	ev.data.u64 = AGENT_EP(AGENT_EP_LISTEN, fd);
	if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		err = -errno;
		goto fail;
	}
	a->listen_fd = fd;
	return 0;
fail:
	close(fd);
	unlink(path);
	return err;
}

static bool api_allowed(struct agent *a, const struct ucred *cr)
{
	char path[64], *buf = NULL, *line;
	bool ok = false;

	if (cr->uid == 0)
		return true;
	if (a->socket_gid == (gid_t)-1)
		return false;
	if (cr->gid == a->socket_gid)
		return true;
	/* supplementary groups of the peer */
	snprintf(path, sizeof(path), "/proc/%d/status", cr->pid);
	if (util_read_file(path, 65536, &buf, NULL))
		return false;
	line = strstr(buf, "\nGroups:");
	if (line) {
		char *p = line + 8, *end;

		for (;;) {
			unsigned long g = strtoul(p, &end, 10);

			if (end == p)
				break;
			if ((gid_t)g == a->socket_gid)
				ok = true;
			p = end;
		}
	}
	free(buf);
	return ok;
}

static void api_reply(int fd, int error, const char *msg, const char *sid, const char *cgroup)
{
	Sessrec__Agent__Reply r = SESSREC__AGENT__REPLY__INIT;

	r.error = error;
	r.message = (char *)(msg ? msg : "");
	r.sid = (char *)(sid ? sid : "");
	r.cgroup = (char *)(cgroup ? cgroup : "");
	if (frame_send(fd, &r.base))
		log_debug("api: cannot send a reply: %s", strerror(errno));
}

/*
 * A launcher's connection. Frames are assembled as bytes arrive (the socket
 * is non-blocking), so a client that stalls mid-message holds up nobody. A
 * peer that may not open sessions is answered with the refusal when its
 * first request is complete, then dropped: closing at once would race with
 * its request, and it might never read why.
 */
struct api_conn {
	int fd;
	bool refused;
	uint8_t hdr[4];
	size_t hdr_got;
	uint8_t *body;
	size_t body_len, body_got;
	struct api_conn *next;
};

#define API_CONNS_MAX 1024

static struct api_conn *api_conn_find(struct agent *a, int fd)
{
	for (struct api_conn *c = a->conns; c; c = c->next)
		if (c->fd == fd)
			return c;
	return NULL;
}

static void api_conn_drop(struct agent *a, int fd)
{
	struct api_conn **pp = &a->conns;

	while (*pp) {
		struct api_conn *c = *pp;

		if (c->fd == fd) {
			*pp = c->next;
			free(c->body);
			free(c);
			a->n_conns--;
			return;
		}
		pp = &c->next;
	}
}

void agent_api_close_all(struct agent *a)
{
	while (a->conns) {
		int fd = a->conns->fd;

		api_conn_drop(a, fd);
		close(fd);
	}
}

void agent_api_accept(struct agent *a)
{
	for (;;) {
		struct epoll_event ev = {0};
		struct api_conn *c;
		struct ucred cr;
		socklen_t len = sizeof(cr);
		int fd = accept4(a->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR)
				log_warn("api: accept: %s", strerror(errno));
			return;
		}
		if (a->n_conns >= API_CONNS_MAX ||
		    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) {
			if (a->n_conns >= API_CONNS_MAX)
				log_warn("api: %d connections open: refusing more", API_CONNS_MAX);
			close(fd);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		if (!api_allowed(a, &cr)) {
			log_warn("api: refused a connection from uid %u (pid %d): not root%s",
				 cr.uid, cr.pid,
				 a->socket_gid != (gid_t)-1 ? " nor in socket_group" : "");
			METRIC_ADD(a->metrics.api_errors, 1);
			c->refused = true;
		}
		ev.events = EPOLLIN | EPOLLRDHUP;
		ev.data.u64 = AGENT_EP(AGENT_EP_CLIENT, fd);
		if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			free(c);
			close(fd);
			continue;
		}
		c->next = a->conns;
		a->conns = c;
		a->n_conns++;
	}
}

static void api_open(struct agent *a, int fd, const Sessrec__Agent__OpenRequest *req)
{
	struct agent_session *s;
	struct ucred cr;
	socklen_t len = sizeof(cr);
	char err[512] = "";
	int rc;

	if (agent_session_find_fd(a, fd, false)) {
		api_reply(fd, EBUSY, "this connection already has a session", NULL, NULL);
		return;
	}
	if (a->stopping) {
		api_reply(fd, ESHUTDOWN, "the agent is stopping", NULL, NULL);
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) {
		api_reply(fd, errno, "cannot identify the caller", NULL, NULL);
		return;
	}
	rc = agent_session_open(a, fd, req, &cr, err, sizeof(err), &s);
	if (rc) {
		log_warn("api: session refused for pid %d: %s", cr.pid, err);
		METRIC_ADD(a->metrics.api_errors, 1);
		api_reply(fd, -rc, err, NULL, NULL);
		return;
	}
	api_reply(fd, 0, "", s->sid, s->cgroup_dir);
}

/*
 * A Close comes on the connection that opened the session (sessrec run), or
 * on a new one from root or from the uid that opened it: pam_sessrec opens in
 * pam_open_session and closes in pam_close_session, with no connection kept
 * in between (PAM calls may even come from different processes). Anyone else
 * is told the same as for an unknown sid, so that sids of others are not
 * confirmed. Close only records the exit status and lets the session end as
 * soon as its cgroup is empty; it never ends a session that still runs.
 */
static void api_close(struct agent *a, int fd, const Sessrec__Agent__CloseRequest *req)
{
	struct agent_session *s = agent_session_find_sid(a, req->sid ? req->sid : "");
	struct ucred cr = {.pid = 0};
	socklen_t len = sizeof(cr);
	bool ok = s && s->client_fd == fd;

	if (s && !ok && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0)
		ok = cr.uid == 0 || cr.uid == s->launcher_uid;
	if (!ok) {
		api_reply(fd, ENOENT, "no such session of yours", NULL, NULL);
		return;
	}
	if (s->client_fd != fd)
		log_debug("session %s: Close from pid %d (uid %u) on another connection", s->sid,
			  cr.pid, cr.uid);
	s->exit_code = req->exit_code;
	s->closing = true;
	api_reply(fd, 0, "", s->sid, NULL);
}

/* Read what is there: 1 when a whole frame is in, 0 when more is needed, -errno when gone. */
static int api_conn_read(struct api_conn *c)
{
	for (;;) {
		ssize_t n;

		if (c->hdr_got < sizeof(c->hdr)) {
			n = read(c->fd, c->hdr + c->hdr_got, sizeof(c->hdr) - c->hdr_got);
		} else {
			if (!c->body) {
				c->body_len = (size_t)c->hdr[0] << 24 | (size_t)c->hdr[1] << 16 |
					      (size_t)c->hdr[2] << 8 | c->hdr[3];
				if (c->body_len > FRAME_MAX)
					return -EMSGSIZE;
				c->body = malloc(c->body_len ? c->body_len : 1);
				if (!c->body)
					return -ENOMEM;
			}
			if (c->body_got == c->body_len)
				return 1;
			n = read(c->fd, c->body + c->body_got, c->body_len - c->body_got);
		}
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -errno;
		if (n == 0)
			return -ECONNRESET;
		if (c->hdr_got < sizeof(c->hdr))
			c->hdr_got += (size_t)n;
		else
			c->body_got += (size_t)n;
	}
}

bool agent_api_client(struct agent *a, int fd)
{
	Sessrec__Agent__Request *req = NULL;
	struct api_conn *c = api_conn_find(a, fd);
	struct agent_session *s;
	int err;

	if (!c)
		goto gone;
	err = api_conn_read(c);
	if (err == 0)
		return true;
	if (err < 0) {
		if (err != -ECONNRESET)
			log_debug("api: connection dropped: %s", strerror(-err));
		if (c->refused || err == -EMSGSIZE)
			api_reply(fd, c->refused ? EPERM : EMSGSIZE,
				  c->refused ? "not allowed: only root (or members of the agent's "
					       "socket_group) may open recorded sessions"
					     : "request too large",
				  NULL, NULL);
		goto gone;
	}
	if (c->refused) {
		api_reply(
		    fd, EPERM,
		    "not allowed: only root (or members of the agent's socket_group) may open "
		    "recorded sessions",
		    NULL, NULL);
		goto gone;
	}
	req = sessrec__agent__request__unpack(NULL, c->body_len, c->body);
	free(c->body);
	c->body = NULL;
	c->hdr_got = c->body_got = c->body_len = 0;
	if (!req) {
		api_reply(fd, EBADMSG, "malformed request", NULL, NULL);
		goto gone;
	}
	switch (req->req_case) {
	case SESSREC__AGENT__REQUEST__REQ_OPEN:
		api_open(a, fd, req->open);
		break;
	case SESSREC__AGENT__REQUEST__REQ_CLOSE:
		api_close(a, fd, req->close);
		break;
	default:
		api_reply(fd, EBADMSG, "unknown request", NULL, NULL);
		break;
	}
	sessrec__agent__request__free_unpacked(req, NULL);
	return true;
gone:
	/* the session, if any, goes on until its last process exits */
	s = agent_session_find_fd(a, fd, false);
	if (s)
		s->client_fd = -1;
	epoll_ctl(a->epfd, EPOLL_CTL_DEL, fd, NULL);
	api_conn_drop(a, fd);
	close(fd);
	return false;
}
