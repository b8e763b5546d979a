/*
 * sessrec run: run a command as a recorded session on a new pseudo-terminal.
 *
 * The launcher (this process) is not part of the session. It opens a pty,
 * forks the child, which becomes the leader of a new session on the pty slave
 * and then waits on a pipe; the launcher asks the agent to open a session for
 * the child's pid (the agent moves the child into the session's cgroup), and
 * only then lets the child exec the command. So nothing the command does
 * happens outside the cgroup, and a child whose launcher fails never runs.
 * The launcher then relays stdin to the pty master and the master to stdout,
 * and at the end tells the agent the exit status on the same connection.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.pb-c.h"
#include "frame.h"
#include "util.h"

#define RUN_SOCKET_DEFAULT  "/run/sessrec/agent.sock"
#define RUN_OPEN_TIMEOUT_S  30 /* the agent loads nothing per session: 30 s is "stuck" */
#define RUN_CLOSE_TIMEOUT_S 5
/*
 * After the child exits, output is drained until the pty reports that no one
 * holds the slave any more; a background process that keeps it open only
 * gets this long of silence before the launcher stops relaying.
 */
#define RUN_DRAIN_IDLE_MS 250
#define RUN_BUF_SIZE	  65536
#define RUN_COLS_DEFAULT  80
#define RUN_ROWS_DEFAULT  24

struct run_opts {
	const char *socket;
	const char *user;
	const char *login;
	const char *kind;
	struct cli_labels labels;
	bool quiet;
	char **cmd; /* NULL-terminated, inside argv */
	size_t ncmd;
	char *exec_path; /* owned: cmd[0] looked up in PATH, NULL when not found */
	char *whoami;	 /* owned: the name of the real uid */
};

struct run_state {
	int master;
	int sigfd;
	int agent;
	int go; /* write end of the pipe the child waits on */
	pid_t child;
	bool started; /* the child was told to exec */
	bool reaped;
	int wstatus;
	bool tty_in; /* stdin is a terminal */
	bool raw;    /* stdin is in raw mode, saved holds its settings */
	struct termios saved;
	struct winsize ws;
	char tty[128]; /* the slave's path */
	sigset_t oldmask;
	bool mask_set;
	struct sigaction oldpipe;
	bool pipe_set;
	int fatal; /* a second SIGTERM/SIGHUP: stop waiting for the child */
};

/* The relay between stdin, stdout and the pty master. */
struct run_relay {
	bool in_open;	  /* still reading stdin */
	bool master_open; /* the master has not reported EIO/EOF yet */
	bool out_open;	  /* stdout still takes output */
	bool line_open;	  /* the last input byte sent was not a newline */
	int hups;	  /* SIGTERM/SIGHUP received */
	size_t in_off, in_len;
	char in[RUN_BUF_SIZE + 2]; /* + room for the end-of-input sequence */
	char out[RUN_BUF_SIZE];
};

void cli_run_usage(FILE *out)
{
	fprintf(out,
		"Usage: %s run [OPTIONS] -- CMD [ARG...]\n\n"
		"Run CMD as a recorded session on a new pseudo-terminal, relaying this\n"
		"terminal (or stdin and stdout when they are not a terminal) to it, and exit\n"
		"with CMD's status. The session id is printed on stderr as \"session <sid>\".\n\n"
		"Options:\n"
		"      --agent-socket PATH  the agent's socket (default: $SESSREC_AGENT_SOCKET,\n"
		"                           else %s)\n"
		"  -u, --user U             who runs the session (default: $SUDO_USER, else\n"
		"                           the name of your real uid)\n"
		"  -l, --login L            the account it runs as (default: the name of your\n"
		"                           real uid)\n"
		"  -k, --kind K             local, ssh or k8s (default: local)\n"
		"  -L, --label KEY=VALUE    a session label (repeat for more)\n"
		"  -q, --quiet              do not print the session id\n"
		"  -h, --help               show this help\n\n"
		"Exit status: CMD's status, 128+N when a signal N killed it, 127 when CMD was\n"
		"not found, 126 when it could not be executed, 1 when the session could not\n"
		"be opened, 2 on a bad command line.\n",
		CLI_PROG, RUN_SOCKET_DEFAULT);
}

/* ------------------------------------------------------------ options */

static int run_whoami(char **out)
{
	struct passwd pw, *res = NULL;
	size_t size = 4096;
	char *buf = NULL, *tmp;
	int err;

	for (;;) {
		tmp = realloc(buf, size);
		if (!tmp) {
			err = -ENOMEM;
			goto out;
		}
		buf = tmp;
		err = getpwuid_r(getuid(), &pw, buf, size, &res);
		if (err != ERANGE || size >= (1u << 20))
			break;
		size *= 2;
	}
	/* No passwd entry (a container, say) is no reason to refuse: use the number. */
	if (err || !res)
		err = asprintf(out, "%u", (unsigned int)getuid()) < 0 ? -ENOMEM : 0;
	else
		err = (*out = strdup(res->pw_name)) ? 0 : -ENOMEM;
out:
	free(buf);
	return err;
}

static int run_parse(int argc, char **argv, struct run_opts *o)
{
	static const struct option opts[] = {
	    {"agent-socket", required_argument, NULL, 'S'},
	    {"user", required_argument, NULL, 'u'},
	    {"login", required_argument, NULL, 'l'},
	    {"kind", required_argument, NULL, 'k'},
	    {"label", required_argument, NULL, 'L'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *why, *env;
	int c, err;

	optind = 0;
	opterr = 0;
	/* '+': the first word that is not an option is CMD; its own options are its own. */
	while ((c = getopt_long(argc, argv, "+:u:l:k:L:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'S':
			o->socket = optarg;
			break;
		case 'u':
			o->user = optarg;
			break;
		case 'l':
			o->login = optarg;
			break;
		case 'k':
			if (cli_parse_kind(optarg)) {
				cli_err("run: --kind '%s': must be local, ssh or k8s", optarg);
				return CLI_EXIT_USAGE;
			}
			o->kind = optarg;
			break;
		case 'L':
			err = cli_labels_add(&o->labels, optarg, &why);
			if (err == -ENOMEM) {
				cli_err("run: %s", strerror(ENOMEM));
				return CLI_EXIT_FAIL;
			}
			if (err) {
				cli_err("run: --label '%s': %s", optarg, why);
				return CLI_EXIT_USAGE;
			}
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'h':
			cli_run_usage(stdout);
			return -1;
		default:
			return cli_opt_error("run", c, argv);
		}
	}
	if (optind >= argc) {
		cli_err("run: expected a command: %s run [OPTIONS] -- CMD [ARG...]", CLI_PROG);
		return CLI_EXIT_USAGE;
	}
	if (!*argv[optind]) {
		cli_err("run: the command is an empty string");
		return CLI_EXIT_USAGE;
	}
	o->cmd = argv + optind;
	o->ncmd = (size_t)(argc - optind);
	err = cli_path_lookup(o->cmd[0], getenv("PATH"), &o->exec_path);
	if (err == -ENOMEM) {
		cli_err("run: %s", strerror(ENOMEM));
		return CLI_EXIT_FAIL;
	}

	env = getenv("SESSREC_AGENT_SOCKET");
	if (!o->socket)
		o->socket = env && *env ? env : RUN_SOCKET_DEFAULT;
	if (!o->kind)
		o->kind = "local";
	if (!o->login || !o->user) {
		if (run_whoami(&o->whoami)) {
			cli_err("run: %s", strerror(ENOMEM));
			return CLI_EXIT_FAIL;
		}
	}
	if (!o->login)
		o->login = o->whoami;
	if (!o->user) {
		env = getenv("SUDO_USER");
		o->user = env && *env ? env : o->whoami;
	}
	return 0;
}

/* ------------------------------------------------------------ agent */

static int run_set_timeout(int fd, int seconds)
{
	struct timeval tv = {.tv_sec = seconds};

	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	return 0;
}

static int run_connect(const char *path, int *out)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t len = strlen(path);
	int fd = -1, err;

	if (len >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, len + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	do
		err = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	while (err == -EINTR);
	if (!err)
		err = run_set_timeout(fd, RUN_OPEN_TIMEOUT_S);
	if (err) {
		close(fd);
		return err;
	}
	*out = fd;
	return 0;
}

/* Read one Reply. 0, or -errno (-EAGAIN: timed out, -ECONNRESET: closed, -EBADMSG). */
static int run_recv_reply(int fd, Sessrec__Agent__Reply **out)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int err;

	err = frame_recv(fd, FRAME_MAX, &buf, &len);
	if (err)
		goto out;
	*out = sessrec__agent__reply__unpack(NULL, len, buf);
	err = *out ? 0 : -EBADMSG;
out:
	free(buf);
	return err;
}

static const char *run_agent_strerror(int err)
{
	switch (err) {
	case -EAGAIN:
		return "no reply in time";
	case -ECONNRESET:
	case -EIO:
		return "closed the connection";
	case -EBADMSG:
		return "malformed reply";
	case -EMSGSIZE:
		return "message over 64 KiB (command line or labels too long)";
	default:
		return strerror(-err);
	}
}

/*
 * Ask the agent to open the session for the child; on success the child is in
 * the session cgroup and *sid is the session id. Errors are reported here.
 */
static int run_open(const struct run_opts *o, const struct run_state *st, char **sid)
{
	Sessrec__Agent__OpenRequest open = SESSREC__AGENT__OPEN_REQUEST__INIT;
	Sessrec__Agent__Request req = SESSREC__AGENT__REQUEST__INIT;
	Sessrec__Agent__OpenRequest__LabelsEntry *entries = NULL, **labels = NULL;
	Sessrec__Agent__Reply *reply = NULL;
	int err = -ENOMEM;

	if (o->labels.n) {
		entries = calloc(o->labels.n, sizeof(*entries));
		labels = calloc(o->labels.n, sizeof(*labels));
		if (!entries || !labels) {
			cli_err("run: %s", strerror(ENOMEM));
			goto out;
		}
	}
	for (size_t i = 0; i < o->labels.n; i++) {
		sessrec__agent__open_request__labels_entry__init(&entries[i]);
		entries[i].key = o->labels.v[i].key;
		entries[i].value = o->labels.v[i].value;
		labels[i] = &entries[i];
	}
	open.user = (char *)o->user;
	open.login = (char *)o->login;
	open.kind = (char *)o->kind;
	open.n_command = o->ncmd;
	open.command = o->cmd;
	open.cols = st->ws.ws_col;
	open.rows = st->ws.ws_row;
	open.n_labels = o->labels.n;
	open.labels = labels;
	open.pid = (uint32_t)st->child;
	open.tty = (char *)st->tty;
	req.req_case = SESSREC__AGENT__REQUEST__REQ_OPEN;
	req.open = &open;

	err = frame_send(st->agent, &req.base);
	if (!err)
		err = run_recv_reply(st->agent, &reply);
	if (err) {
		cli_err("agent: %s", run_agent_strerror(err));
		goto out;
	}
	if (reply->error) {
		cli_err("agent: %s", *reply->message ? reply->message : strerror(reply->error));
		err = -(reply->error > 0 ? reply->error : EPROTO);
		goto out;
	}
	if (!*reply->sid) {
		cli_err("agent: the reply carries no session id");
		err = -EPROTO;
		goto out;
	}
	*sid = strdup(reply->sid);
	err = *sid ? 0 : -ENOMEM;
	if (err)
		cli_err("run: %s", strerror(ENOMEM));
out:
	if (reply)
		sessrec__agent__reply__free_unpacked(reply, NULL);
	free(labels);
	free(entries);
	return err;
}

/*
 * Tell the agent how the session ended. Errors are ignored: the agent closes
 * the session by itself once its last process is gone. Waiting for its answer
 * (or for it to hang up) means that when `sessrec run` returns, the agent has
 * taken the close into account.
 */
static void run_close(int agent, const char *sid, int exit_code)
{
	Sessrec__Agent__CloseRequest close_req = SESSREC__AGENT__CLOSE_REQUEST__INIT;
	Sessrec__Agent__Request req = SESSREC__AGENT__REQUEST__INIT;
	Sessrec__Agent__Reply *reply = NULL;

	close_req.sid = (char *)sid;
	close_req.exit_code = exit_code;
	req.req_case = SESSREC__AGENT__REQUEST__REQ_CLOSE;
	req.close = &close_req;
	if (run_set_timeout(agent, RUN_CLOSE_TIMEOUT_S) || frame_send(agent, &req.base))
		return;
	/* Our end of the conversation is over: an agent that does not reply sees EOF. */
	if (shutdown(agent, SHUT_WR) < 0)
		return;
	if (run_recv_reply(agent, &reply) == 0)
		sessrec__agent__reply__free_unpacked(reply, NULL);
}

/* ------------------------------------------------------------ terminal */

static int run_open_pty(struct run_state *st, int *slave)
{
	int fd, flags;

	st->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (st->master < 0)
		return -errno;
	if (grantpt(st->master) < 0 || unlockpt(st->master) < 0)
		return -errno;
	if (ptsname_r(st->master, st->tty, sizeof(st->tty)) != 0)
		return -errno;
	fd = open(st->tty, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	*slave = fd;

	st->tty_in = isatty(STDIN_FILENO) == 1;
	if (st->tty_in) {
		if (tcgetattr(STDIN_FILENO, &st->saved) < 0 ||
		    tcsetattr(fd, TCSANOW, &st->saved) < 0)
			return -errno;
		if (ioctl(STDIN_FILENO, TIOCGWINSZ, &st->ws) < 0)
			st->ws.ws_col = 0;
	}
	if (!st->ws.ws_col || !st->ws.ws_row) {
		st->ws.ws_col = RUN_COLS_DEFAULT;
		st->ws.ws_row = RUN_ROWS_DEFAULT;
	}
	if (ioctl(fd, TIOCSWINSZ, &st->ws) < 0)
		return -errno;
	/* The relay never blocks on the master: see run_relay(). */
	flags = fcntl(st->master, F_GETFL);
	if (flags < 0 || fcntl(st->master, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

static int run_raw(struct run_state *st)
{
	struct termios t = st->saved;

	if (!st->tty_in)
		return 0;
	cfmakeraw(&t);
	if (tcsetattr(STDIN_FILENO, TCSANOW, &t) < 0)
		return -errno;
	st->raw = true;
	return 0;
}

static void run_restore_tty(struct run_state *st)
{
	if (!st->raw)
		return;
	/* Nothing to do about a failure: the terminal is what it is. */
	if (tcsetattr(STDIN_FILENO, TCSADRAIN, &st->saved) < 0)
		cli_err("run: cannot restore the terminal: %m");
	st->raw = false;
}

/* ------------------------------------------------------------ child */

static void run_close_from(int lowfd)
{
	long max;

	if (close_range((unsigned int)lowfd, ~0u, 0) == 0)
		return;
	/* Kernels before 5.9. */
	max = sysconf(_SC_OPEN_MAX);
	if (max < 0 || max > 65536)
		max = 65536;
	for (int fd = lowfd; fd < max; fd++)
		close(fd);
}

static void __attribute__((noreturn))
run_child(const struct run_opts *o, struct run_state *st, int slave, int go_rd)
{
	char c;
	ssize_t n;
	int err;

	sigprocmask(SIG_SETMASK, &st->oldmask, NULL);
	sigaction(SIGPIPE, &st->oldpipe, NULL);
	close(st->go);
	if (setsid() < 0 || ioctl(slave, TIOCSCTTY, 0) < 0) {
		dprintf(STDERR_FILENO, "%s: cannot set up the terminal: %m\n", CLI_PROG);
		_exit(CLI_EXIT_FAIL);
	}
	if (dup2(slave, STDIN_FILENO) < 0 || dup2(slave, STDOUT_FILENO) < 0 ||
	    dup2(slave, STDERR_FILENO) < 0)
		_exit(CLI_EXIT_FAIL);
	/* Exec only once the agent has us in the session's cgroup; EOF means never. */
	do
		n = read(go_rd, &c, 1);
	while (n < 0 && errno == EINTR);
	if (n != 1)
		_exit(CLI_EXIT_FAIL);
	run_close_from(STDERR_FILENO + 1);
	/* Not found in PATH: execvp fails the same way, and the failures are recorded. */
	execvp(o->exec_path ? o->exec_path : o->cmd[0], o->cmd);
	err = errno;
	/* On the pty, so that the recording shows why nothing ran. */
	dprintf(STDERR_FILENO, "%s: %s: %s\n", CLI_PROG, o->cmd[0], strerror(err));
	_exit(err == EACCES || err == EPERM || err == EISDIR || err == ENOEXEC ? 126 : 127);
}

/* ------------------------------------------------------------ relay */

static int run_signals(struct run_state *st)
{
	struct sigaction ign = {.sa_handler = SIG_IGN};
	sigset_t set;

	/* A closed stdout must be an EPIPE the relay handles, not the end of the launcher. */
	if (sigaction(SIGPIPE, &ign, &st->oldpipe) < 0)
		return -errno;
	st->pipe_set = true;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGWINCH);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGQUIT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, &st->oldmask) < 0)
		return -errno;
	st->mask_set = true;
	st->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	return st->sigfd < 0 ? -errno : 0;
}

/* Closing the master hangs up the pty: the kernel sends SIGHUP to the session. */
static void run_hangup(struct run_state *st, struct run_relay *rl)
{
	if (st->master >= 0)
		close(st->master);
	st->master = -1;
	rl->master_open = false;
	rl->in_open = false;
	rl->in_len = 0;
}

static void run_forward(const struct run_state *st, int sig)
{
	pid_t fg = -1;

	/* The pty's foreground job gets it, as if typed; the child's group too, for TERM. */
	if (st->master >= 0 && ioctl(st->master, TIOCGPGRP, &fg) == 0 && fg > 0)
		kill(-fg, sig);
	if (sig == SIGTERM || fg <= 0)
		kill(-st->child, sig);
}

static void run_on_signal(struct run_state *st, struct run_relay *rl)
{
	struct signalfd_siginfo si;
	struct winsize ws;
	ssize_t n;

	while ((n = read(st->sigfd, &si, sizeof(si))) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			if (!st->reaped && waitpid(st->child, &st->wstatus, WNOHANG) == st->child)
				st->reaped = true;
			break;
		case SIGWINCH:
			if (st->tty_in && st->master >= 0 &&
			    ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0)
				ioctl(st->master, TIOCSWINSZ, &ws); /* best effort */
			break;
		case SIGINT:
		case SIGQUIT:
			run_forward(st, (int)si.ssi_signo);
			break;
		case SIGTERM:
		case SIGHUP:
			/* Once: end the session. Twice: stop waiting for it. */
			if (++rl->hups > 1) {
				st->fatal = (int)si.ssi_signo;
			} else if (si.ssi_signo == SIGHUP) {
				run_hangup(st, rl);
			} else {
				run_forward(st, SIGTERM);
			}
			break;
		default:
			break;
		}
	}
}

/* Write to stdout, which may be a non-blocking file description shared with others. */
static int run_write_out(const char *buf, size_t len)
{
	struct pollfd pfd = {.fd = STDOUT_FILENO, .events = POLLOUT};

	while (len > 0) {
		ssize_t n = write(STDOUT_FILENO, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -errno;
			if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
				return -errno;
			continue;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static void run_read_master(struct run_state *st, struct run_relay *rl)
{
	ssize_t n = read(st->master, rl->out, sizeof(rl->out));
	int err;

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		/* EIO: no one holds the slave any more, and its output has been read. */
		rl->master_open = false;
		return;
	}
	if (!rl->out_open)
		return;
	err = run_write_out(rl->out, (size_t)n);
	if (err) {
		if (err != -EPIPE)
			cli_err("stdout: %s", strerror(-err));
		/* Like a terminal that went away: the session gets a hangup. */
		rl->out_open = false;
		run_hangup(st, rl);
	}
}

static void run_read_stdin(struct run_state *st, struct run_relay *rl)
{
	struct termios t;
	ssize_t n = read(STDIN_FILENO, rl->in, RUN_BUF_SIZE);

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n > 0) {
		rl->in_off = 0;
		rl->in_len = (size_t)n;
		rl->line_open = rl->in[n - 1] != '\n';
		return;
	}
	rl->in_open = false;
	if (st->tty_in)
		return; /* a hung-up terminal: the program will notice by itself */
	/* A pipe ended: make the program see the end of its input, as ^D would. */
	if (tcgetattr(st->master, &t) < 0)
		return;
	rl->in_off = 0;
	rl->in_len = cli_eof_seq(&t, rl->line_open, rl->in);
	rl->line_open = false;
}

static void run_write_master(struct run_state *st, struct run_relay *rl)
{
	ssize_t n = write(st->master, rl->in + rl->in_off, rl->in_len - rl->in_off);

	if (n < 0) {
		if (errno != EINTR && errno != EAGAIN)
			rl->in_len = 0; /* the pty is gone: drop what is left */
		return;
	}
	rl->in_off += (size_t)n;
	if (rl->in_off == rl->in_len)
		rl->in_off = rl->in_len = 0;
}

/* Relay until the child is reaped and its output drained, or a second SIGTERM. */
static int run_relay(struct run_state *st)
{
	struct run_relay *rl;
	struct pollfd pfd[3];
	int n, err = 0;

	rl = calloc(1, sizeof(*rl));
	if (!rl)
		return -ENOMEM;
	rl->in_open = true;
	rl->master_open = true;
	rl->out_open = true;
	while (!st->fatal && !(st->reaped && !rl->master_open)) {
		if (st->reaped) {
			/* No one will read what is typed now. */
			rl->in_open = false;
			rl->in_len = 0;
		}
		pfd[0] = (struct pollfd){.fd = st->sigfd, .events = POLLIN};
		pfd[1] = (struct pollfd){.fd = -1};
		pfd[2] = (struct pollfd){.fd = -1};
		if (rl->master_open) {
			pfd[1].fd = st->master;
			pfd[1].events = POLLIN | (rl->in_len ? POLLOUT : 0);
		}
		if (rl->in_open && !rl->in_len && rl->master_open) {
			pfd[2].fd = STDIN_FILENO;
			pfd[2].events = POLLIN;
		}
		n = poll(pfd, 3, st->reaped ? RUN_DRAIN_IDLE_MS : -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			break;
		}
		if (n == 0)
			break; /* drained; a background process holds the slave */
		if (pfd[0].revents)
			run_on_signal(st, rl);
		if (st->master >= 0 && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)))
			run_read_master(st, rl);
		if (st->master >= 0 && (pfd[1].revents & POLLOUT))
			run_write_master(st, rl);
		if (pfd[2].revents)
			run_read_stdin(st, rl);
	}
	free(rl);
	return err;
}

/* ------------------------------------------------------------ do_run */

static void run_state_init(struct run_state *st)
{
	memset(st, 0, sizeof(*st));
	st->master = -1;
	st->sigfd = -1;
	st->agent = -1;
	st->go = -1;
	st->child = -1;
}

/* Kill a child that must never run its command, and reap it. */
static void run_abort_child(struct run_state *st)
{
	if (st->child <= 0 || st->reaped || st->started)
		return;
	kill(st->child, SIGKILL);
	while (waitpid(st->child, &st->wstatus, 0) < 0 && errno == EINTR)
		;
	st->reaped = true;
}

static void run_state_free(struct run_state *st)
{
	run_restore_tty(st);
	if (st->go >= 0)
		close(st->go);
	if (st->master >= 0)
		close(st->master);
	if (st->sigfd >= 0)
		close(st->sigfd);
	if (st->agent >= 0)
		close(st->agent);
	if (st->mask_set)
		sigprocmask(SIG_SETMASK, &st->oldmask, NULL);
	if (st->pipe_set)
		sigaction(SIGPIPE, &st->oldpipe, NULL);
}

int do_run(int argc, char **argv)
{
	struct run_opts o = {0};
	struct run_state st;
	char *sid = NULL;
	int slave = -1, go[2] = {-1, -1};
	int err, status = CLI_EXIT_FAIL;
	char one = 1;

	run_state_init(&st);
	err = run_parse(argc, argv, &o);
	if (err) {
		status = err < 0 ? CLI_EXIT_OK : err;
		goto out;
	}
	err = run_connect(o.socket, &st.agent);
	if (err) {
		cli_err("cannot reach the agent at %s: %s%s", o.socket, strerror(-err),
			err == -ENOENT || err == -ECONNREFUSED ? " (is sessrec-agent running?)"
							       : "");
		goto out;
	}
	err = run_open_pty(&st, &slave);
	if (err) {
		cli_err("run: cannot allocate a pseudo-terminal: %s", strerror(-err));
		goto out;
	}
	err = run_signals(&st);
	if (err) {
		cli_err("run: signals: %s", strerror(-err));
		goto out;
	}
	if (pipe2(go, O_CLOEXEC) < 0) {
		cli_err("run: pipe: %m");
		goto out;
	}
	st.go = go[1];
	fflush(NULL); /* nothing buffered may be written twice */
	st.child = fork();
	if (st.child < 0) {
		cli_err("run: fork: %m");
		goto out;
	}
	if (st.child == 0)
		run_child(&o, &st, slave, go[0]);
	close(slave);
	slave = -1;
	close(go[0]);
	go[0] = -1;

	if (run_open(&o, &st, &sid))
		goto out;
	if (!o.quiet)
		fprintf(stderr, "session %s\n", sid);
	err = run_raw(&st);
	if (err) {
		cli_err("run: cannot put the terminal in raw mode: %s", strerror(-err));
		goto out;
	}
	/* EPIPE: the child died already; the relay reaps it and reports its status. */
	err = util_write_all(st.go, &one, 1);
	if (err && err != -EPIPE) {
		cli_err("run: cannot start the command: %s", strerror(-err));
		goto out;
	}
	close(st.go);
	st.go = -1;
	st.started = true;

	err = run_relay(&st);
	run_restore_tty(&st);
	if (err)
		cli_err("run: relay: %s", strerror(-err));
	if (st.fatal) {
		/* Given up on the session: it goes on without us, the agent ends it. */
		status = 128 + st.fatal;
		goto out;
	}
	if (!st.reaped) {
		/* The relay failed: let the command go on, wait for it. */
		while (waitpid(st.child, &st.wstatus, 0) < 0 && errno == EINTR)
			;
		st.reaped = true;
	}
	status = cli_exit_status(st.wstatus);
	run_close(st.agent, sid, status);
out:
	run_abort_child(&st);
	run_state_free(&st);
	if (slave >= 0)
		close(slave);
	if (go[0] >= 0)
		close(go[0]);
	cli_labels_free(&o.labels);
	free(o.whoami);
	free(o.exec_path);
	free(sid);
	return status;
}
