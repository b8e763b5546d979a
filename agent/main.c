/* sessrec-agent: records the sessions of one node. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/utsname.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <linux/magic.h>

#include "agent.h"
#include "log.h"
#include "util.h"

#define AGENT_DEFAULT_CONFIG "/etc/sessrec/agent.yaml"
#define AGENT_PIN_DIR	     "/sys/fs/bpf/sessrec"
#define AGENT_TICK_MS	     200
/*
 * BPF pins and the cgroup root are node-wide: one agent per pin directory,
 * whatever its socket. The default pin directory keeps the plain lock name.
 */
#define AGENT_LOCK_DIR "/run"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: sessrec-agent [-c FILE] [--check-config] [--log-level LEVEL]\n"
		"\n"
		"Records the interactive sessions of this node: loads the BPF programs, gives\n"
		"each session a cgroup, writes recordings under data_dir and the node audit log.\n"
		"\n"
		"  -c, --config FILE     configuration (default %s; missing = defaults)\n"
		"      --check-config    check the configuration, print it, and exit\n"
		"      --log-level LEVEL error, warn, info or debug (overrides the config)\n"
		"  -h, --help            this help\n"
		"  -V, --version         print the version\n"
		"\n"
		"Signals: SIGTERM/SIGINT finish every open recording and stop; SIGHUP reloads\n"
		"the configuration (all or nothing) and reopens the audit log.\n",
		AGENT_DEFAULT_CONFIG);
}

static int agent_preflight(void)
{
	struct utsname u;
	unsigned int major = 0, minor = 0;

	if (geteuid() != 0) {
		log_error("must run as root: it loads BPF programs and manages cgroups");
		return -EPERM;
	}
	if (access("/sys/kernel/btf/vmlinux", R_OK) != 0) {
		log_error("this kernel has no BTF (/sys/kernel/btf/vmlinux is missing): a kernel "
			  "built with CONFIG_DEBUG_INFO_BTF=y is required");
		return -ENOTSUP;
	}
	if (uname(&u) == 0 && sscanf(u.release, "%u.%u", &major, &minor) == 2 &&
	    (major < 5 || (major == 5 && minor < 12))) {
		log_error("kernel %s is too old: 5.12 or later is required (BPF ring buffers, "
			  "task storage in tracing programs)",
			  u.release);
		return -ENOTSUP;
	}
	return 0;
}

/* Mount cgroup2 at cgroup_path when it is not there yet. */
static int agent_mount_cgroup(const char *path)
{
	struct statfs st;
	int err;

	if (statfs(path, &st) == 0 && (long)st.f_type == CGROUP2_SUPER_MAGIC)
		return 0;
	err = util_mkdir_p(path, 0755);
	if (err == 0 && mount("cgroup2", path, "cgroup2", 0, NULL) < 0)
		err = -errno;
	if (err) {
		log_error("cannot mount cgroup2 at %s: %s", path, strerror(-err));
		return err;
	}
	log_info("mounted cgroup2 at %s", path);
	return 0;
}

static unsigned int components(const char *p)
{
	unsigned int n = 0;
	bool in = false;

	for (; *p; p++) {
		if (*p == '/') {
			in = false;
		} else if (!in) {
			in = true;
			n++;
		}
	}
	return n;
}

/*
 * The level of the session cgroups in the hierarchy: the depth of the
 * mount's root inside the hierarchy (from mountinfo), plus root_path, plus one.
 */
static int agent_session_level(const char *cgroup_path, const char *root_path, uint32_t *level)
{
	char *buf = NULL, *line, *save = NULL, real[PATH_MAX];
	int err = -ENOENT;

	if (!realpath(cgroup_path, real))
		return -errno;
	err = util_read_file("/proc/self/mountinfo", 1 << 20, &buf, NULL);
	if (err)
		return err;
	err = -ENOENT;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char root[PATH_MAX], mnt[PATH_MAX], *dash = strstr(line, " - ");

		if (!dash || strncmp(dash, " - cgroup2 ", 11) != 0)
			continue;
		if (sscanf(line, "%*s %*s %*s %4095s %4095s", root, mnt) != 2)
			continue;
		if (strcmp(mnt, real) != 0)
			continue;
		*level = components(root) + components(root_path) + 1;
		err = 0;
	}
	free(buf);
	return err;
}

static int agent_lock(const char *pin_path)
{
	const char *name = strrchr(pin_path, '/') + 1;
	char buf[32], lock[PATH_MAX], *other = NULL;
	int fd;

	if (strcmp(name, "sessrec") == 0)
		snprintf(lock, sizeof(lock), AGENT_LOCK_DIR "/sessrec-agent.lock");
	else
		snprintf(lock, sizeof(lock), AGENT_LOCK_DIR "/sessrec-agent-%s.lock", name);
	fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		log_error("cannot open %s: %s", lock, strerror(errno));
		return -errno;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int err = -errno;

		if (util_read_file(lock, 31, &other, NULL) == 0)
			other[strcspn(other, "\n")] = '\0';
		log_error("another sessrec-agent is already running on this node (pid %s, %s)",
			  other && other[0] ? other : "unknown", lock);
		free(other);
		close(fd);
		return err;
	}
	snprintf(buf, sizeof(buf), "%d\n", getpid());
	if (ftruncate(fd, 0) < 0 || util_write_all(fd, buf, strlen(buf)))
		log_warn("cannot write %s", lock);
	return fd; /* held until exit */
}

static int agent_server_id(struct agent *a)
{
	char path[PATH_MAX], *buf = NULL;
	int err;

	snprintf(path, sizeof(path), "%s/node_id", a->cfg->data_dir);
	if (util_read_file(path, 64, &buf, NULL) == 0) {
		buf[strcspn(buf, "\r\n")] = '\0';
		if (util_is_uuid(buf)) {
			snprintf(a->server_id, sizeof(a->server_id), "%s", buf);
			free(buf);
			return 0;
		}
		free(buf);
	}
	util_uuid(a->server_id);
	{
		char line[48];
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		if (fd < 0)
			return -errno;
		snprintf(line, sizeof(line), "%s\n", a->server_id);
		err = util_write_all(fd, line, strlen(line));
		if (!err && fsync(fd) < 0)
			err = -errno;
		close(fd);
	}
	return err;
}

static int agent_open_audit(struct agent *a)
{
	char dir[PATH_MAX], *slash;
	FILE *f;
	int err;

	snprintf(dir, sizeof(dir), "%s", a->cfg->audit_log);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		err = util_mkdir_p(dir, 0750);
		if (err) {
			log_error("cannot create %s: %s", dir, strerror(-err));
			return err;
		}
	}
	f = fopen(a->cfg->audit_log, "ae");
	if (!f) {
		err = -errno;
		log_error("cannot open the audit log %s: %s", a->cfg->audit_log, strerror(errno));
		return err;
	}
	setvbuf(f, NULL, _IOFBF, 1 << 20);
	if (a->audit)
		fclose(a->audit);
	a->audit = f;
	a->audit_wb = a->audit_dropped = 0;
	return 0;
}

/*
 * Keep the audit log from filling the page cache: it is written once, and
 * shippers read it from the end. Each tick starts the writeback of what was
 * appended since the last one and drops what is more than
 * AGENT_AUDIT_CACHED bytes behind the end and already on its way to disk, so
 * that a busy node reuses the same few megabytes of cache instead of taking
 * fresh memory for every line.
 */
#define AGENT_AUDIT_CACHED (8 << 20)

static void agent_audit_writeback(struct agent *a)
{
	struct stat st;
	off_t keep;
	int fd;

	if (!a->audit || fflush(a->audit) != 0)
		return;
	fd = fileno(a->audit);
	if (fstat(fd, &st) < 0)
		return;
	if (st.st_size < a->audit_wb)
		a->audit_wb = a->audit_dropped = 0; /* truncated (copytruncate rotation) */
	keep = a->audit_wb - AGENT_AUDIT_CACHED;
	if (keep > a->audit_dropped) {
		posix_fadvise(fd, a->audit_dropped, keep - a->audit_dropped, POSIX_FADV_DONTNEED);
		a->audit_dropped = keep;
	}
	if (st.st_size > a->audit_wb) {
		sync_file_range(fd, a->audit_wb, st.st_size - a->audit_wb, SYNC_FILE_RANGE_WRITE);
		a->audit_wb = st.st_size;
	}
}

static int agent_resolve_group(struct agent *a, const struct agent_config *c, gid_t *gid)
{
	struct group *g;

	(void)a;
	*gid = (gid_t)-1;
	if (!c->socket_group || !c->socket_group[0])
		return 0;
	g = getgrnam(c->socket_group);
	if (!g) {
		log_error("socket_group: no such group '%s'", c->socket_group);
		return -ENOENT;
	}
	*gid = g->gr_gid;
	return 0;
}

static void agent_on_record(void *ctx, const void *data, size_t size)
{
	agent_session_queue(ctx, data, size);
}

static bool agent_str_same(const char *x, const char *y)
{
	return (!x && !y) || (x && y && strcmp(x, y) == 0);
}

static bool agent_collector_same(const struct agent_collector_conf *x,
				 const struct agent_collector_conf *y)
{
	return agent_str_same(x->url, y->url) && agent_str_same(x->ca_file, y->ca_file) &&
	       agent_str_same(x->cert_file, y->cert_file) &&
	       agent_str_same(x->key_file, y->key_file) && agent_str_same(x->mode, y->mode) &&
	       x->sync_grace_period == y->sync_grace_period;
}

static void agent_reload(struct agent *a)
{
	struct agent_config *n = NULL, *old = a->cfg;
	char err[512] = "";
	enum log_level lvl;
	gid_t gid;

	if (agent_config_load(a->cfg_path, &n, err, sizeof(err))) {
		log_error("reload refused, configuration unchanged: %s", err);
		return;
	}
	if (agent_resolve_group(a, n, &gid)) {
		agent_config_free(n);
		log_error("reload refused, configuration unchanged");
		return;
	}
	if (strcmp(n->socket, old->socket) || strcmp(n->data_dir, old->data_dir) ||
	    strcmp(n->metrics_listen, old->metrics_listen) ||
	    strcmp(n->er.cgroup_path, old->er.cgroup_path) ||
	    strcmp(n->er.root_path, old->er.root_path) ||
	    strcmp(n->er.pin_path, old->er.pin_path) ||
	    n->er.command_buffer_size != old->er.command_buffer_size ||
	    n->er.disk_buffer_size != old->er.disk_buffer_size ||
	    n->er.network_buffer_size != old->er.network_buffer_size ||
	    n->er.terminal_buffer_size != old->er.terminal_buffer_size ||
	    !agent_collector_same(&n->collector, &old->collector))
		log_warn("reload: socket, data_dir, metrics_listen, enhanced_recording and "
			 "collector changes take effect at the next start");
	a->cfg = n;
	if (agent_open_audit(a)) {
		a->cfg = old;
		agent_config_free(n);
		log_error("reload refused, configuration unchanged");
		return;
	}
	/* keep what only a restart can change */
	{
		char *keep[] = {n->socket,	   n->data_dir,	    n->metrics_listen,
				n->er.cgroup_path, n->er.root_path, n->er.pin_path};

		n->socket = old->socket;
		n->data_dir = old->data_dir;
		n->metrics_listen = old->metrics_listen;
		n->er.cgroup_path = old->er.cgroup_path;
		n->er.root_path = old->er.root_path;
		n->er.pin_path = old->er.pin_path;
		old->socket = keep[0];
		old->data_dir = keep[1];
		old->metrics_listen = keep[2];
		old->er.cgroup_path = keep[3];
		old->er.root_path = keep[4];
		old->er.pin_path = keep[5];
		n->er.command_buffer_size = old->er.command_buffer_size;
		n->er.disk_buffer_size = old->er.disk_buffer_size;
		n->er.network_buffer_size = old->er.network_buffer_size;
		n->er.terminal_buffer_size = old->er.terminal_buffer_size;
		/* the uploader runs with what it started with */
		struct agent_collector_conf coll = n->collector;

		n->collector = old->collector;
		old->collector = coll;
	}
	agent_config_free(old);
	a->socket_gid = gid;
	if (log_parse_level(n->log_level, &lvl) == 0)
		log_set_level(lvl);
	log_info("configuration reloaded from %s", a->cfg_path ? a->cfg_path : "(defaults)");
}

static void agent_update_metrics(struct agent *a)
{
	struct agent_lost lost;

	agent_bpf_ring_fill(a->bpf, a->metrics.ring_used, a->metrics.ring_size);
	if (agent_bpf_lost_total(a->bpf, &lost) == 0) {
		for (int c = 0; c < SESSREC_CLASS_MAX; c++)
			METRIC_SET(a->metrics.lost_events[c], lost.events[c]);
		METRIC_SET(a->metrics.lost_tty_bytes, lost.tty_bytes);
	}
}

/* How long an emptied session waits for its launcher's Close (which carries the exit code). */
#define AGENT_CLOSE_GRACE_NS (2 * 1000000000LL)

static void agent_finish_ended(struct agent *a, bool all, const char *reason)
{
	int64_t now = util_now_ns();
	size_t i = 0;

	while (i < a->n_sessions) {
		struct agent_session *s = a->sessions[i];
		bool done = all;

		if (!done && !agent_session_populated(s)) {
			if (!s->empty_since_ns)
				s->empty_since_ns = now;
			done = s->closing || s->client_fd < 0 ||
			       now - s->empty_since_ns >= AGENT_CLOSE_GRACE_NS;
		}
		if (done) {
			agent_session_finish(a, s, reason); /* removes s from the array */
			continue;
		}
		i++;
	}
}

static int agent_setup_fds(struct agent *a)
{
	struct itimerspec its = {
	    .it_interval = {.tv_nsec = AGENT_TICK_MS * 1000000L},
	    .it_value = {.tv_nsec = AGENT_TICK_MS * 1000000L},
	};
	struct epoll_event ev = {0};
	sigset_t mask;

	a->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (a->epfd < 0)
		return -errno;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return -errno;
	signal(SIGPIPE, SIG_IGN);
	a->sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	a->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (a->sig_fd < 0 || a->timer_fd < 0 || timerfd_settime(a->timer_fd, 0, &its, NULL) < 0)
		return -errno;
	ev.events = EPOLLIN;
	ev.data.u64 = AGENT_EP(AGENT_EP_SIGNAL, a->sig_fd);
	if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, a->sig_fd, &ev) < 0)
		return -errno;
	ev.data.u64 = AGENT_EP(AGENT_EP_TIMER, a->timer_fd);
	if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, a->timer_fd, &ev) < 0)
		return -errno;
	return 0;
}

static void agent_loop(struct agent *a)
{
	struct epoll_event evs[64];

	while (!a->stopping) {
		bool tick = false, cgroup_changed = false;
		int n = epoll_wait(a->epfd, evs, 64, -1);

		if (n < 0 && errno != EINTR) {
			log_error("epoll_wait: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++) {
			enum agent_ep_tag tag = (enum agent_ep_tag)(evs[i].data.u64 >> 32);
			int fd = (int)(uint32_t)evs[i].data.u64;
			struct signalfd_siginfo si;
			uint64_t expirations;

			switch (tag) {
			case AGENT_EP_LISTEN:
				agent_api_accept(a);
				break;
			case AGENT_EP_SIGNAL:
				while (read(fd, &si, sizeof(si)) == sizeof(si)) {
					if (si.ssi_signo == SIGHUP)
						a->reload = true;
					else
						a->stopping = true;
				}
				break;
			case AGENT_EP_TIMER:
				if (read(fd, &expirations, sizeof(expirations)) > 0)
					tick = true;
				break;
			case AGENT_EP_CGROUP:
				cgroup_changed = true;
				break;
			case AGENT_EP_CLIENT:
				/* drain first: a Close should see every event before it */
				agent_bpf_consume(a->bpf);
				agent_session_flush_cycle(a);
				agent_api_client(a, fd);
				cgroup_changed = true;
				break;
			case AGENT_EP_BPF:
				break;
			}
		}
		agent_bpf_consume(a->bpf);
		agent_session_flush_cycle(a);
		if (tick) {
			a->mono_to_real = util_now_ns() - (int64_t)util_mono_ns();
			agent_session_tick(a);
			agent_update_metrics(a);
			agent_audit_writeback(a);
			if ((int64_t)util_mono_ns() >= a->next_completer_ns) {
				agent_completer_run(a);
				agent_session_sweep(a);
				a->next_completer_ns =
				    (int64_t)util_mono_ns() + AGENT_COMPLETER_INTERVAL_NS;
			}
		}
		if (cgroup_changed || tick)
			agent_finish_ended(a, false, "exited");
		if (a->reload) {
			a->reload = false;
			agent_reload(a);
		}
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},	 {"check-config", no_argument, NULL, 'k'},
	    {"log-level", required_argument, NULL, 'l'}, {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},	 {NULL, 0, NULL, 0},
	};
	struct agent a = {.epfd = -1, .listen_fd = -1, .sig_fd = -1, .timer_fd = -1};
	struct agent_bpf_opts bo = {0};
	const char *log_level = NULL;
	bool check = false;
	char err[512] = "";
	enum log_level lvl;
	int c, rc = 1;

	log_init("sessrec-agent", LOG_LVL_INFO);
	while ((c = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			a.cfg_path = optarg;
			break;
		case 'k':
			check = true;
			break;
		case 'l':
			log_level = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("sessrec-agent %s\n", SESSREC_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sessrec-agent: unexpected argument '%s' (see --help)\n",
			argv[optind]);
		return 2;
	}
	if (!a.cfg_path && access(AGENT_DEFAULT_CONFIG, F_OK) == 0)
		a.cfg_path = AGENT_DEFAULT_CONFIG;
	if (agent_config_load(a.cfg_path, &a.cfg, err, sizeof(err))) {
		fprintf(stderr, "sessrec-agent: %s\n", err);
		return 1;
	}
	if (check) {
		agent_config_dump(a.cfg, stdout);
		fprintf(stderr, "sessrec-agent: %s: OK\n", a.cfg_path ? a.cfg_path : "(defaults)");
		agent_config_free(a.cfg);
		return 0;
	}
	if (log_parse_level(log_level ? log_level : a.cfg->log_level, &lvl)) {
		fprintf(stderr, "sessrec-agent: unknown log level '%s'\n", log_level);
		goto out;
	}
	log_set_level(lvl);
	/*
	 * Before any thread starts (uploader, part writer, metrics): threads
	 * inherit the mask, and one that left SIGTERM unblocked would take it
	 * with the default action instead of the event loop's signalfd.
	 */
	{
		sigset_t mask;

		sigemptyset(&mask);
		sigaddset(&mask, SIGTERM);
		sigaddset(&mask, SIGINT);
		sigaddset(&mask, SIGHUP);
		if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
			log_error("cannot block signals: %s", strerror(errno));
			goto out;
		}
	}
	if (agent_preflight() || agent_lock(a.cfg->er.pin_path) < 0)
		goto out;
	if (!a.cfg->er.enabled) {
		log_error("enhanced_recording.enabled is false: nothing to do");
		goto out;
	}
	if (agent_resolve_group(&a, a.cfg, &a.socket_gid))
		goto out;
	/* server_hostname in recordings and audit events: node_name (default: the host name) */
	snprintf(a.hostname, sizeof(a.hostname), "%s", a.cfg->node_name);
	snprintf(a.rec_dir, sizeof(a.rec_dir), "%s/recordings", a.cfg->data_dir);
	if (util_mkdir_p(a.rec_dir, 0750)) {
		log_error("cannot create %s: %s", a.rec_dir, strerror(errno));
		goto out;
	}
	if (agent_server_id(&a)) {
		log_error("cannot write %s/node_id", a.cfg->data_dir);
		goto out;
	}
	if (agent_open_audit(&a))
		goto out;
	if (agent_config_has_collector(a.cfg)) {
		struct agent_upload_opts uo = {
		    .conf = &a.cfg->collector,
		    .node = a.cfg->node_name,
		    .rec_dir = a.rec_dir,
		    .metrics = &a.metrics,
		};

		if (agent_upload_start(&a.up, &uo))
			goto out;
	} else {
		log_info("no collector configured: recordings stay in %s", a.rec_dir);
	}
	if (rec_pool_start(&a.pool, 0)) {
		log_error("cannot start the recording writer thread");
		goto out;
	}
	if (agent_setup_fds(&a)) {
		log_error("cannot set up the event loop: %s", strerror(errno));
		goto out;
	}
	if (agent_bpf_mounts(a.cfg->er.pin_path) || agent_mount_cgroup(a.cfg->er.cgroup_path))
		goto out;
	snprintf(a.cgroup_root, sizeof(a.cgroup_root), "%s/%s", a.cfg->er.cgroup_path,
		 a.cfg->er.root_path);
	if (util_mkdir_p(a.cgroup_root, 0755)) {
		log_error("cannot create the session cgroup root %s: %s", a.cgroup_root,
			  strerror(errno));
		goto out;
	}
	if (agent_session_level(a.cfg->er.cgroup_path, a.cfg->er.root_path, &bo.session_level)) {
		log_error("cannot find the cgroup2 mount of %s in /proc/self/mountinfo",
			  a.cfg->er.cgroup_path);
		goto out;
	}
	a.mono_to_real = util_now_ns() - (int64_t)util_mono_ns();
	bo.pages[SESSREC_CLASS_COMMAND] = a.cfg->er.command_buffer_size;
	bo.pages[SESSREC_CLASS_DISK] = a.cfg->er.disk_buffer_size;
	bo.pages[SESSREC_CLASS_NETWORK] = a.cfg->er.network_buffer_size;
	bo.pages[SESSREC_CLASS_TERMINAL] = a.cfg->er.terminal_buffer_size;
	bo.pin_dir = a.cfg->er.pin_path;
	bo.cb = agent_on_record;
	bo.cb_ctx = &a;
	if (agent_bpf_start(&a.bpf, &bo))
		goto out;
	{
		struct epoll_event ev = {.events = EPOLLIN};

		ev.data.u64 = AGENT_EP(AGENT_EP_BPF, agent_bpf_notify_fd(a.bpf));
		if (epoll_ctl(a.epfd, EPOLL_CTL_ADD, agent_bpf_notify_fd(a.bpf), &ev) < 0)
			goto out;
	}
	if (agent_api_listen(&a))
		goto out;
	if (a.cfg->metrics_listen[0] &&
	    agent_metrics_start(&a.metrics_srv, a.cfg->metrics_listen, &a.metrics))
		goto out;
	/*
	 * What the previous agent left: running sessions first, then the spool.
	 * Nothing can fail after this point, and no launcher is served before the
	 * loop runs, so a new session never meets a half-adopted one.
	 */
	agent_session_adopt_all(&a);
	agent_completer_run(&a);
	agent_session_sweep(&a);
	a.next_completer_ns = (int64_t)util_mono_ns() + AGENT_COMPLETER_INTERVAL_NS;
	log_info("sessrec-agent %s started: node %s (%s), %s programs, sessions under %s "
		 "(level %u), socket %s",
		 SESSREC_VERSION, a.hostname, a.server_id, agent_bpf_strategy_name(a.bpf),
		 a.cgroup_root, bo.session_level, a.cfg->socket);
	agent_loop(&a);
	log_info("stopping: finishing %zu open session(s)", a.n_sessions);
	agent_bpf_consume(a.bpf);
	agent_session_flush_cycle(&a);
	agent_finish_ended(&a, true, "agent stopped");
	if (a.up)
		agent_upload_drain(a.up, AGENT_UPLOAD_DRAIN_NS);
	rc = 0;
out:
	agent_metrics_stop(a.metrics_srv);
	if (a.listen_fd >= 0) {
		close(a.listen_fd);
		unlink(a.cfg->socket);
	}
	agent_api_close_all(&a);
	agent_bpf_stop(a.bpf);
	/* the pool's last parts may still go to the uploader (on_part): it stops after */
	rec_pool_stop(a.pool);
	agent_upload_stop(a.up);
	free(a.completer_skip);
	if (a.audit)
		fclose(a.audit);
	free(a.sessions);
	free(a.line);
	if (a.epfd >= 0)
		close(a.epfd);
	if (a.sig_fd >= 0)
		close(a.sig_fd);
	if (a.timer_fd >= 0)
		close(a.timer_fd);
	agent_config_free(a.cfg);
	return rc;
}
