/*
 * pam_sessrec: a PAM session module that records the session through
 * sessrec-agent. pam_open_session asks the agent to open a recorded session
 * and to put the calling process into the session's cgroup; everything it
 * forks afterwards inherits the cgroup, and so is recorded.
 * pam_close_session tells the agent (best effort: the agent ends the session
 * by itself once the cgroup is empty).
 *
 * Which process calls pam_open_session, with OpenSSH (UsePAM yes; privilege
 * separation is always on since 7.5). Per connection, sshd runs a privileged
 * monitor ("sshd: user [priv]", root). After authentication, still in the
 * monitor, sshd.c calls do_pam_setcred() and do_pam_session() -- the latter
 * is pam_open_session() -- and only then privsep_postauth() forks the
 * unprivileged child ("sshd: user@pts/0", running as the user), which handles
 * the connection and forks the shell or command for each channel
 * (session.c: do_exec_pty/do_exec_no_pty -> do_child -> exec). So the caller
 * of pam_open_session is the ancestor of every process of the login:
 *
 *   sshd: user [priv]        <- pam_open_session(), placed here (getpid())
 *    `- sshd: user@pts/0     <- forked after it: inherits the cgroup
 *        `- -bash            <- the user's shell, and all it runs
 *
 * This is also how pam_systemd puts logins into their session scope. The
 * monitor calls pam_close_session from its cleanup (sshpam_cleanup) when the
 * connection ends, in the same process and PAM handle, so the sid is kept
 * with pam_set_data(). No command is known yet when the session opens (the
 * client asks for a shell or a command on a channel later); exec events
 * record it. PAM_TTY is "ssh" (sshd's PAM_TTY_KLUDGE) at that point: only a
 * value that names a terminal device is passed on.
 *
 * When pam_open_session fails, sshd does not drop the connection; it
 * restricts it (no forwarding of any kind) and do_child() refuses to run
 * anything ("PAM session not opened, exiting", status 254). So fail_closed,
 * which fails the session when the agent cannot record it, keeps every
 * command from running.
 *
 * A PAM module runs inside someone else's process: it writes nothing to
 * stdout or stderr (pam_syslog only), never raises SIGPIPE (MSG_NOSIGNAL),
 * leaks no descriptor to the shell (SOCK_CLOEXEC, closed before returning),
 * and bounds every wait on the agent (timeout=).
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#define PAM_SM_SESSION
#include <security/pam_ext.h>
#include <security/pam_modules.h>

#include "agent.pb-c.h"
#include "frame.h"

#define PAMSR_EXPORT __attribute__((visibility("default")))

#define PAMSR_SOCKET_DEFAULT  "/run/sessrec/agent.sock"
#define PAMSR_KIND_DEFAULT    "ssh"
#define PAMSR_TIMEOUT_DEFAULT 10 /* seconds: a login must not hang on a stuck agent */
#define PAMSR_TIMEOUT_MAX     300
#define PAMSR_DATA_SID	      "sessrec_sid"
#define PAMSR_ENV_SID	      "SESSREC_SID"
/* The same limits as `sessrec run --label` (cli/cli.h). */
#define PAMSR_LABELS_MAX    64
#define PAMSR_LABEL_KEY_MAX 128
#define PAMSR_LABEL_VAL_MAX 512

struct pamsr_opts {
	const char *socket;
	const char *kind;
	bool fail_closed;
	int timeout_s;
	size_t n_labels;
	char *labels[PAMSR_LABELS_MAX]; /* "key\0value", owned */
};

/* ------------------------------------------------------------ options */

static void pamsr_opts_free(struct pamsr_opts *o)
{
	if (!o)
		return;
	for (size_t i = 0; i < o->n_labels; i++)
		free(o->labels[i]);
	o->n_labels = 0;
}

static bool pamsr_label_key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-' || c == '/' || c == ':';
}

/* "key=value" -> a "key\0value" copy in o->labels. 0, or -errno with a reason. */
static int pamsr_label_add(struct pamsr_opts *o, const char *kv, const char **why)
{
	const char *eq = strchr(kv, '=');
	size_t klen = eq ? (size_t)(eq - kv) : 0;
	char *copy;
	int err = -EINVAL;

	if (!eq) {
		*why = "expected label=KEY=VALUE";
		goto out;
	}
	if (klen == 0 || klen > PAMSR_LABEL_KEY_MAX) {
		*why = "the key must have 1 to 128 bytes";
		goto out;
	}
	for (size_t i = 0; i < klen; i++) {
		if (!pamsr_label_key_char(kv[i])) {
			*why = "a key may only hold letters, digits and . _ - / :";
			goto out;
		}
	}
	if (strlen(eq + 1) > PAMSR_LABEL_VAL_MAX) {
		*why = "the value is longer than 512 bytes";
		goto out;
	}
	for (const char *p = eq + 1; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			*why = "the value holds a control character";
			goto out;
		}
	}
	for (size_t i = 0; i < o->n_labels; i++) {
		if (strlen(o->labels[i]) == klen && memcmp(o->labels[i], kv, klen) == 0) {
			*why = "the key is given twice";
			err = -EEXIST;
			goto out;
		}
	}
	if (o->n_labels == PAMSR_LABELS_MAX) {
		*why = "more than 64 labels";
		err = -E2BIG;
		goto out;
	}
	copy = strdup(kv);
	if (!copy) {
		*why = "out of memory";
		err = -ENOMEM;
		goto out;
	}
	copy[klen] = '\0';
	o->labels[o->n_labels++] = copy;
	err = 0;
out:
	return err;
}

static int pamsr_parse_timeout(const char *s, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 1 || v > PAMSR_TIMEOUT_MAX)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

/*
 * An option this module does not know, or a malformed one, is an error, not
 * something to skip: a misspelled fail_closed must not quietly let unrecorded
 * sessions in. The caller refuses the session.
 */
static int pamsr_parse(pam_handle_t *pamh, int argc, const char **argv, struct pamsr_opts *o)
{
	struct sockaddr_un sun;
	const char *why = NULL;
	int err = 0;

	memset(o, 0, sizeof(*o));
	o->socket = PAMSR_SOCKET_DEFAULT;
	o->kind = PAMSR_KIND_DEFAULT;
	o->timeout_s = PAMSR_TIMEOUT_DEFAULT;
	for (int i = 0; i < argc && !err; i++) {
		const char *a = argv[i];

		if (strncmp(a, "socket=", 7) == 0) {
			o->socket = a + 7;
			if (o->socket[0] != '/' || strlen(o->socket) >= sizeof(sun.sun_path)) {
				why = "must be an absolute path of less than 108 bytes";
				err = -EINVAL;
			}
		} else if (strcmp(a, "fail_closed") == 0) {
			o->fail_closed = true;
		} else if (strncmp(a, "kind=", 5) == 0) {
			o->kind = a + 5;
			if (!*o->kind) {
				why = "the kind is empty";
				err = -EINVAL;
			}
		} else if (strncmp(a, "label=", 6) == 0) {
			err = pamsr_label_add(o, a + 6, &why);
		} else if (strncmp(a, "timeout=", 8) == 0) {
			err = pamsr_parse_timeout(a + 8, &o->timeout_s);
			if (err)
				why = "expected a number of seconds from 1 to 300";
		} else {
			why = "unknown option";
			err = -EINVAL;
		}
		if (err)
			pam_syslog(pamh, LOG_ERR, "option '%s': %s", a, why);
	}
	if (err)
		pamsr_opts_free(o);
	return err;
}

/* ------------------------------------------------------------ agent */

static int pamsr_connect(const struct pamsr_opts *o, int *out)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = o->timeout_s};
	int fd, err = 0;

	memcpy(sa.sun_path, o->socket, strlen(o->socket) + 1); /* length checked in parse */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* SO_SNDTIMEO also bounds connect() on a Unix socket whose backlog is full. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		err = -errno;
	while (!err && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno != EINTR)
			err = -errno;
	}
	if (err) {
		close(fd);
		return err;
	}
	*out = fd;
	return 0;
}

/*
 * frame_send() writes with write(2), which raises SIGPIPE when the agent has
 * gone; the host process (sshd) may not ignore it. Same framing, send(2) with
 * MSG_NOSIGNAL.
 */
static int pamsr_send(int fd, const ProtobufCMessage *msg)
{
	size_t len = protobuf_c_message_get_packed_size(msg), off = 0;
	uint32_t be = htonl((uint32_t)len);
	uint8_t *buf;
	int err = 0;

	if (len > FRAME_MAX)
		return -EMSGSIZE;
	buf = malloc(len + 4);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, &be, 4);
	protobuf_c_message_pack(msg, buf + 4);
	while (off < len + 4) {
		ssize_t n = send(fd, buf + off, len + 4 - off, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			break;
		}
		off += (size_t)n;
	}
	free(buf);
	return err;
}

/* One request, one Reply. 0 or -errno (-EAGAIN: no reply in time). */
static int pamsr_call(const struct pamsr_opts *o, const Sessrec__Agent__Request *req,
		      Sessrec__Agent__Reply **reply)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int fd = -1, err;

	err = pamsr_connect(o, &fd);
	if (err)
		goto out;
	err = pamsr_send(fd, &req->base);
	if (err)
		goto out;
	err = frame_recv(fd, FRAME_MAX, &buf, &len);
	if (err)
		goto out;
	*reply = sessrec__agent__reply__unpack(NULL, len, buf);
	if (!*reply)
		err = -EBADMSG;
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return err;
}

static const char *pamsr_strerror(int err)
{
	switch (err) {
	case -EAGAIN:
		return "no reply in time";
	case -ECONNRESET:
	case -EIO:
		return "the agent closed the connection";
	case -EBADMSG:
		return "malformed reply";
	default:
		return strerror(-err);
	}
}

/* ------------------------------------------------------------ session */

static const char *pamsr_item(pam_handle_t *pamh, int type)
{
	const void *v = NULL;

	if (pam_get_item(pamh, type, &v) != PAM_SUCCESS || !v)
		return NULL;
	return *(const char *)v ? v : NULL;
}

/*
 * PAM_TTY as a device path, or "" when it names none: sshd sets "ssh" until
 * a pty exists, login(1) sets "tty1" or "/dev/tty1".
 */
static void pamsr_tty(pam_handle_t *pamh, char *out, size_t len)
{
	const char *tty = pamsr_item(pamh, PAM_TTY);
	struct stat st;

	out[0] = '\0';
	if (!tty)
		return;
	if (strncmp(tty, "/dev/", 5) == 0)
		snprintf(out, len, "%s", tty);
	else
		snprintf(out, len, "/dev/%s", tty);
	if (stat(out, &st) < 0 || !S_ISCHR(st.st_mode))
		out[0] = '\0';
}

/*
 * Ask the agent to open a session for this process. *sid on success; on
 * failure -errno and a reason in why.
 */
static int pamsr_open(pam_handle_t *pamh, const struct pamsr_opts *o, char **sid, char *why,
		      size_t whylen)
{
	Sessrec__Agent__OpenRequest open = SESSREC__AGENT__OPEN_REQUEST__INIT;
	Sessrec__Agent__Request req = SESSREC__AGENT__REQUEST__INIT;
	Sessrec__Agent__OpenRequest__LabelsEntry entries[PAMSR_LABELS_MAX];
	Sessrec__Agent__OpenRequest__LabelsEntry *labels[PAMSR_LABELS_MAX];
	Sessrec__Agent__Reply *reply = NULL;
	const char *user, *ruser, *rhost, *cmd;
	char tty[PATH_MAX], *command[1];
	int err;

	user = pamsr_item(pamh, PAM_USER);
	if (!user) {
		snprintf(why, whylen, "no PAM_USER");
		err = -EINVAL;
		goto out;
	}
	/* su and sudo set PAM_RUSER to who asks; sshd does not, and the account is who. */
	ruser = pamsr_item(pamh, PAM_RUSER);
	rhost = pamsr_item(pamh, PAM_RHOST);
	pamsr_tty(pamh, tty, sizeof(tty));
	/*
	 * Known when the application has it in its environment as the session
	 * opens (sshd does not: the client asks for a command later). Not from
	 * the PAM environment, which users may write (pam_env user_readenv):
	 * they would choose what the audit log says they ran.
	 */
	cmd = getenv("SSH_ORIGINAL_COMMAND");
	for (size_t i = 0; i < o->n_labels; i++) {
		sessrec__agent__open_request__labels_entry__init(&entries[i]);
		entries[i].key = o->labels[i];
		entries[i].value = o->labels[i] + strlen(o->labels[i]) + 1;
		labels[i] = &entries[i];
	}
	open.user = (char *)(ruser ? ruser : user);
	open.login = (char *)user;
	open.kind = (char *)o->kind;
	if (cmd && *cmd) {
		command[0] = (char *)cmd;
		open.command = command;
		open.n_command = 1;
	}
	open.n_labels = o->n_labels;
	open.labels = labels;
	/* The monitor itself, the ancestor of the login's processes: see the top of this file. */
	open.pid = (uint32_t)getpid();
	open.tty = tty;
	open.remote_addr = (char *)(rhost ? rhost : "");
	req.req_case = SESSREC__AGENT__REQUEST__REQ_OPEN;
	req.open = &open;

	err = pamsr_call(o, &req, &reply);
	if (err) {
		snprintf(why, whylen, "agent at %s: %s", o->socket, pamsr_strerror(err));
		goto out;
	}
	if (reply->error) {
		snprintf(why, whylen, "the agent refused: %s",
			 *reply->message ? reply->message : strerror(reply->error));
		err = reply->error > 0 ? -reply->error : -EPROTO;
		goto out;
	}
	if (!*reply->sid || strlen(reply->sid) > 64) {
		snprintf(why, whylen, "the agent's reply carries no valid session id");
		err = -EPROTO;
		goto out;
	}
	*sid = strdup(reply->sid);
	if (!*sid) {
		snprintf(why, whylen, "out of memory");
		err = -ENOMEM;
	}
out:
	if (reply)
		sessrec__agent__reply__free_unpacked(reply, NULL);
	return err;
}

static void pamsr_free_data(pam_handle_t *pamh, void *data, int error_status)
{
	free(data);
}

PAMSR_EXPORT int pam_sm_open_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	struct pamsr_opts o;
	char why[512] = "", env[sizeof(PAMSR_ENV_SID) + 72];
	char *sid = NULL;
	int err, rc = PAM_SESSION_ERR;

	if (pamsr_parse(pamh, argc, argv, &o))
		return PAM_SESSION_ERR;
	err = pamsr_open(pamh, &o, &sid, why, sizeof(why));
	if (err) {
		/* no SESSREC_SID (from pam_env, say) may claim a recording that does not exist */
		if (pam_getenv(pamh, PAMSR_ENV_SID) &&
		    pam_putenv(pamh, PAMSR_ENV_SID) != PAM_SUCCESS)
			pam_syslog(pamh, LOG_WARNING, "cannot unset %s", PAMSR_ENV_SID);
		if (!o.fail_closed) {
			pam_syslog(pamh, LOG_WARNING, "session NOT recorded: %s", why);
			rc = PAM_SUCCESS;
			goto out;
		}
		pam_syslog(pamh, LOG_ERR, "session refused (fail_closed): %s", why);
		/* sshd shows it to the user before it exits with 254 */
		if (!(flags & PAM_SILENT))
			pam_error(pamh, "This session cannot be recorded: login refused.");
		goto out;
	}
	/* For the user's shell; a failure there costs nothing but the variable. */
	snprintf(env, sizeof(env), "%s=%s", PAMSR_ENV_SID, sid);
	if (pam_putenv(pamh, env) != PAM_SUCCESS)
		pam_syslog(pamh, LOG_WARNING, "session %s: cannot set %s", sid, PAMSR_ENV_SID);
	pam_syslog(pamh, LOG_INFO, "session %s recorded (pid %d)", sid, (int)getpid());
	if (pam_set_data(pamh, PAMSR_DATA_SID, sid, pamsr_free_data) == PAM_SUCCESS)
		sid = NULL; /* PAM owns it now */
	else
		pam_syslog(pamh, LOG_WARNING,
			   "session %s: cannot keep its id: it ends when its last process exits",
			   sid);
	rc = PAM_SUCCESS;
out:
	free(sid);
	pamsr_opts_free(&o);
	return rc;
}

/*
 * Best effort: the session ends when its cgroup is empty anyway, which is
 * after this process (still in it) exits. The sid comes from pam_set_data
 * only, never from the PAM environment, which users can write to
 * (pam_env user_readenv).
 */
PAMSR_EXPORT int pam_sm_close_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	Sessrec__Agent__CloseRequest close_req = SESSREC__AGENT__CLOSE_REQUEST__INIT;
	Sessrec__Agent__Request req = SESSREC__AGENT__REQUEST__INIT;
	Sessrec__Agent__Reply *reply = NULL;
	struct pamsr_opts o;
	const void *data = NULL;
	int err;

	if (pam_get_data(pamh, PAMSR_DATA_SID, &data) != PAM_SUCCESS || !data)
		return PAM_SUCCESS; /* not opened by this handle, or not recorded */
	if (pamsr_parse(pamh, argc, argv, &o))
		return PAM_SUCCESS;
	close_req.sid = (char *)data;
	close_req.exit_code = -1; /* unknown here: the shell's parent is another process */
	req.req_case = SESSREC__AGENT__REQUEST__REQ_CLOSE;
	req.close = &close_req;
	err = pamsr_call(&o, &req, &reply);
	if (err)
		pam_syslog(pamh, LOG_WARNING, "session %s: close: agent at %s: %s", (char *)data,
			   o.socket, pamsr_strerror(err));
	else if (reply->error)
		pam_syslog(pamh, LOG_WARNING, "session %s: close refused by the agent: %s",
			   (char *)data, *reply->message ? reply->message : strerror(reply->error));
	if (reply)
		sessrec__agent__reply__free_unpacked(reply, NULL);
	pamsr_opts_free(&o);
	/* Closed once: a second close_session on this handle sends nothing. */
	if (pam_set_data(pamh, PAMSR_DATA_SID, NULL, NULL) != PAM_SUCCESS)
		pam_syslog(pamh, LOG_DEBUG, "cannot forget the session id");
	return PAM_SUCCESS;
}
