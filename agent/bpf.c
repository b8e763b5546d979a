/*
 * The kernel side seen from user space: mounts, feature probing, the
 * open -> configure -> load -> attach -> pin sequence, ring buffers and the
 * session map.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/magic.h>

#include "agent.h"
#include "log.h"
#include "sessrec.skel.h"
#include "util.h"

#define TRACEFS "/sys/kernel/tracing"

struct agent_bpf {
	struct sessrec *skel;
	struct ring_buffer *rb;
	enum agent_bpf_strategy strategy;
	char pin_dir[PATH_MAX];
	bool pinned;
	int ncpus;
	/* read-only views of each ring's consumer and producer positions */
	void *pos_pages[SESSREC_CLASS_MAX];
	uint64_t ring_size[SESSREC_CLASS_MAX];
	long page_size;
	agent_bpf_event_cb cb;
	void *cb_ctx;
	/*
	 * The drain thread empties the rings into q as soon as they fill, at a
	 * high priority: copying a record is cheap, turning it into a recording
	 * event and an audit line is not, and the rings hold only milliseconds
	 * of a busy session. The event thread takes q over (agent_bpf_consume).
	 * lock serialises ring consumption and guards q.
	 */
	pthread_t drain;
	bool drain_started;
	pthread_mutex_t lock;
	uint8_t *q, *q_spare;
	size_t q_len, q_cap, q_spare_cap;
	int notify_fd;			  /* eventfd: q has records */
	int stop;			  /* atomic: the drain thread ends */
	unsigned int consumed_since_trim; /* event thread only */
};

/* Records waiting for the event thread, at most: beyond, the rings fill and the kernel counts. */
#define BPF_QUEUE_MAX  (256u << 20)
#define BPF_DRAIN_NICE (-10)

struct bpf_qrec {
	uint32_t size;
	uint32_t pad;
	uint8_t data[]; /* 8-byte aligned: records are read in place as structs */
};

/*
 * Which attach path a program belongs to, from its section: tracepoints
 * (syscalls, sched, tp_btf) or kernel-function hooks (fentry, fexit, kprobe).
 * The loader disables the programs of the path it did not choose.
 */
static enum agent_bpf_strategy bpf_prog_strategy(const struct bpf_program *prog)
{
	const char *sec = bpf_program__section_name(prog);

	if (strncmp(sec, "fentry/", 7) == 0 || strncmp(sec, "fexit/", 6) == 0 ||
	    strncmp(sec, "kprobe/", 7) == 0 || strncmp(sec, "kretprobe/", 10) == 0)
		return AGENT_BPF_FENTRY;
	return AGENT_BPF_TRACEPOINT;
}

static int bpf_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	enum log_level l = level == LIBBPF_WARN	  ? LOG_LVL_WARN
			   : level == LIBBPF_INFO ? LOG_LVL_DEBUG
						  : LOG_LVL_DEBUG;
	char *buf = NULL;
	size_t n;

	if (l > log_get_level())
		return 0;
	/* verifier logs are long: never cut them */
	if (vasprintf(&buf, fmt, ap) < 0)
		return 0;
	n = strlen(buf);
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	log_msg(l, "%s", buf);
	free(buf);
	return 0;
}

static bool bpf_fs_is(const char *path, long magic)
{
	struct statfs st;

	return statfs(path, &st) == 0 && (long)st.f_type == magic;
}

int agent_bpf_mounts(const char *pin_dir)
{
	int err;

	if (!bpf_fs_is(TRACEFS, TRACEFS_MAGIC)) {
		err = util_mkdir_p(TRACEFS, 0700);
		if (err == 0 && mount("tracefs", TRACEFS, "tracefs", 0, NULL) < 0)
			err = -errno;
		if (err) {
			log_error("cannot mount tracefs at %s: %s", TRACEFS, strerror(-err));
			return err;
		}
		log_info("mounted tracefs at %s", TRACEFS);
	}
	if (pin_dir && !bpf_fs_is("/sys/fs/bpf", BPF_FS_MAGIC)) {
		err = util_mkdir_p("/sys/fs/bpf", 0700);
		if (err == 0 && mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700") < 0)
			err = -errno;
		if (err) {
			log_error("cannot mount bpffs at /sys/fs/bpf: %s", strerror(-err));
			return err;
		}
		log_info("mounted bpffs at /sys/fs/bpf");
	}
	return 0;
}

enum agent_bpf_strategy agent_bpf_probe(const char **why)
{
	/*
	 * Kernel-function hooks need BTF-enabled trampolines (fentry) or
	 * kprobes; tracepoints work everywhere we run. Until the fentry
	 * programs exist, the probe only reports what the kernel could do.
	 */
	if (access(TRACEFS "/kprobe_events", F_OK) == 0)
		*why = "kernel has kprobes; using syscall tracepoints (the only path built so far)";
	else
		*why = "kernel has no kprobes or fentry: using syscall tracepoints";
	return AGENT_BPF_TRACEPOINT;
}

static int bpf_pin_clean(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[PATH_MAX];

	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= (int)sizeof(path))
			continue;
		if (unlink(path) < 0)
			log_warn("cannot remove stale pin %s: %s", path, strerror(errno));
	}
	closedir(d);
	return 0;
}

static int bpf_pin_all(struct agent_bpf *b)
{
	struct bpf_program *prog;
	struct bpf_map *map;
	char path[PATH_MAX];
	int err;

	err = util_mkdir_p(b->pin_dir, 0700);
	if (err)
		return err;
	bpf_pin_clean(b->pin_dir);
	bpf_object__for_each_program(prog, b->skel->obj)
	{
		if (!bpf_program__autoload(prog))
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", b->pin_dir, bpf_program__name(prog)) >=
		    (int)sizeof(path))
			return -ENAMETOOLONG;
		err = bpf_program__pin(prog, path);
		if (err) {
			log_error("failed to pin program %s: %s", path, strerror(-err));
			return err;
		}
	}
	bpf_object__for_each_map(map, b->skel->obj)
	{
		const char *name = bpf_map__name(map);

		if (strchr(name, '.'))
			continue; /* libbpf's internal .rodata: nothing for an operator */
		if (snprintf(path, sizeof(path), "%s/%s", b->pin_dir, name) >= (int)sizeof(path))
			return -ENAMETOOLONG;
		err = bpf_map__pin(map, path);
		if (err) {
			log_error("failed to pin map %s: %s", path, strerror(-err));
			return err;
		}
	}
	b->pinned = true;
	return 0;
}

/* libbpf's callback, under b->lock: the record is appended to q. */
static int bpf_ring_cb(void *ctx, void *data, size_t size)
{
	struct agent_bpf *b = ctx;
	size_t need = sizeof(struct bpf_qrec) + ((size + 7) & ~(size_t)7);
	struct bpf_qrec *r;

	if (b->q_len + need > b->q_cap) {
		size_t cap = b->q_cap ? b->q_cap : (1u << 20);
		void *n;

		while (cap < b->q_len + need)
			cap *= 2;
		/* mapped, not malloc'd: a burst's memory goes back to the system when freed */
		n = b->q ? mremap(b->q, b->q_cap, cap, MREMAP_MAYMOVE)
			 : mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
				0);
		if (n == MAP_FAILED)
			return -ENOMEM; /* stops this drain; the record stays in the ring */
		b->q = n;
		b->q_cap = cap;
	}
	r = (struct bpf_qrec *)(b->q + b->q_len);
	r->size = (uint32_t)size;
	r->pad = 0;
	memcpy(r->data, data, size);
	b->q_len += need;
	return 0;
}

static void *bpf_drain_main(void *arg)
{
	struct agent_bpf *b = arg;
	int epfd = ring_buffer__epoll_fd(b->rb);

	if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), BPF_DRAIN_NICE) < 0)
		log_warn("cannot raise the ring buffer thread's priority (nice %d): %s; events may "
			 "be lost under load (give the agent CAP_SYS_NICE)",
			 BPF_DRAIN_NICE, strerror(errno));
	pthread_setname_np(pthread_self(), "sessrec-drain");
	while (!__atomic_load_n(&b->stop, __ATOMIC_ACQUIRE)) {
		struct epoll_event ev[SESSREC_CLASS_MAX];
		uint64_t one = 1;
		size_t before, after;
		int n = epoll_wait(epfd, ev, SESSREC_CLASS_MAX, 100);

		if (n < 0 && errno != EINTR)
			break;
		pthread_mutex_lock(&b->lock);
		before = b->q_len;
		if (b->q_len < BPF_QUEUE_MAX)
			ring_buffer__consume(b->rb);
		after = b->q_len;
		pthread_mutex_unlock(&b->lock);
		if (after > before && write(b->notify_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			break;
		if (after >= BPF_QUEUE_MAX)
			usleep(1000); /* the event thread is far behind: let it catch up */
	}
	return NULL;
}

static struct bpf_map *bpf_ring_map(struct agent_bpf *b, int cls)
{
	switch (cls) {
	case SESSREC_CLASS_COMMAND:
		return b->skel->maps.sessrec_cmd_rb;
	case SESSREC_CLASS_DISK:
		return b->skel->maps.sessrec_disk_rb;
	case SESSREC_CLASS_NETWORK:
		return b->skel->maps.sessrec_net_rb;
	default:
		return b->skel->maps.sessrec_tty_rb;
	}
}

int agent_bpf_start(struct agent_bpf **out, const struct agent_bpf_opts *opts)
{
	struct agent_bpf *b;
	struct bpf_program *prog;
	const char *why;
	int err, cls;

	libbpf_set_print(bpf_libbpf_print);
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->page_size = sysconf(_SC_PAGESIZE);
	b->cb = opts->cb;
	b->cb_ctx = opts->cb_ctx;
	b->notify_fd = -1;
	pthread_mutex_init(&b->lock, NULL);
	b->ncpus = libbpf_num_possible_cpus();
	if (b->ncpus <= 0) {
		err = b->ncpus ? b->ncpus : -EINVAL;
		goto fail;
	}
	if (opts->pin_dir)
		snprintf(b->pin_dir, sizeof(b->pin_dir), "%s", opts->pin_dir);
	b->strategy = agent_bpf_probe(&why);
	log_info("bpf: %s", why);

	/* open */
	b->skel = sessrec__open();
	if (!b->skel) {
		err = -errno;
		log_error("failed to open the BPF object: %s", strerror(-err));
		goto fail;
	}
	/* configure: rodata, map sizes, which programs load */
	b->skel->rodata->session_level = opts->session_level;
	for (cls = 0; cls < SESSREC_CLASS_MAX; cls++) {
		b->ring_size[cls] = (uint64_t)opts->pages[cls] * (uint64_t)b->page_size;
		err = bpf_map__set_max_entries(bpf_ring_map(b, cls), (uint32_t)b->ring_size[cls]);
		if (err) {
			log_error("failed to size ring buffer %s: %s",
				  bpf_map__name(bpf_ring_map(b, cls)), strerror(-err));
			goto fail;
		}
	}
	bpf_object__for_each_program(prog, b->skel->obj)
	    bpf_program__set_autoload(prog, bpf_prog_strategy(prog) == b->strategy);
	/* load */
	err = sessrec__load(b->skel);
	if (err) {
		log_error("failed to load the BPF programs: %s (run with log_level: debug for the "
			  "verifier log)",
			  strerror(-err));
		goto fail;
	}
	/* attach */
	err = sessrec__attach(b->skel);
	if (err) {
		log_error("failed to attach the BPF programs: %s (is tracefs mounted at %s?)",
			  strerror(-err), TRACEFS);
		goto fail;
	}
	b->rb = ring_buffer__new(bpf_map__fd(b->skel->maps.sessrec_cmd_rb), bpf_ring_cb, b, NULL);
	if (!b->rb) {
		err = -errno;
		log_error("failed to set up ring buffers: %s", strerror(-err));
		goto fail;
	}
	for (cls = 1; cls < SESSREC_CLASS_MAX; cls++) {
		err = ring_buffer__add(b->rb, bpf_map__fd(bpf_ring_map(b, cls)), bpf_ring_cb, b);
		if (err) {
			log_error("failed to add ring buffer: %s", strerror(-err));
			goto fail;
		}
	}
	for (cls = 0; cls < SESSREC_CLASS_MAX; cls++) {
		/* consumer page and producer page, read-only */
		void *p = mmap(NULL, (size_t)b->page_size * 2, PROT_READ, MAP_SHARED,
			       bpf_map__fd(bpf_ring_map(b, cls)), 0);

		b->pos_pages[cls] = p == MAP_FAILED ? NULL : p;
	}
	/* pin for bpftool */
	if (b->pin_dir[0]) {
		err = bpf_pin_all(b);
		if (err)
			goto fail;
	}
	b->notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (b->notify_fd < 0) {
		err = -errno;
		log_error("eventfd: %s", strerror(-err));
		goto fail;
	}
	err = -pthread_create(&b->drain, NULL, bpf_drain_main, b);
	if (err) {
		log_error("cannot start the ring buffer thread: %s", strerror(-err));
		goto fail;
	}
	b->drain_started = true;
	*out = b;
	return 0;
fail:
	agent_bpf_stop(b);
	return err;
}

void agent_bpf_stop(struct agent_bpf *b)
{
	if (!b)
		return;
	if (b->drain_started) {
		__atomic_store_n(&b->stop, 1, __ATOMIC_RELEASE);
		pthread_join(b->drain, NULL);
	}
	if (b->notify_fd >= 0)
		close(b->notify_fd);
	if (b->q)
		munmap(b->q, b->q_cap);
	if (b->q_spare)
		munmap(b->q_spare, b->q_spare_cap);
	pthread_mutex_destroy(&b->lock);
	if (b->pinned)
		bpf_pin_clean(b->pin_dir);
	for (int cls = 0; cls < SESSREC_CLASS_MAX; cls++)
		if (b->pos_pages[cls])
			munmap(b->pos_pages[cls], (size_t)b->page_size * 2);
	ring_buffer__free(b->rb);
	sessrec__destroy(b->skel);
	free(b);
}

const char *agent_bpf_strategy_name(const struct agent_bpf *b)
{
	return b->strategy == AGENT_BPF_FENTRY ? "fentry" : "tracepoint";
}

int agent_bpf_notify_fd(const struct agent_bpf *b)
{
	return b->notify_fd;
}

int agent_bpf_consume(struct agent_bpf *b)
{
	uint8_t *q;
	size_t len, cap, off;
	uint64_t junk;
	int n = 0, err;

	if (read(b->notify_fd, &junk, sizeof(junk)) < 0 && errno != EAGAIN)
		log_debug("ring buffer notification: %s", strerror(errno));
	/* whatever the kernel has written until now, then the queue is ours */
	pthread_mutex_lock(&b->lock);
	err = ring_buffer__consume(b->rb);
	q = b->q;
	len = b->q_len;
	cap = b->q_cap;
	b->q = b->q_spare;
	b->q_cap = b->q_spare_cap;
	b->q_len = 0;
	b->q_spare = NULL;
	b->q_spare_cap = 0;
	pthread_mutex_unlock(&b->lock);
	for (off = 0; off < len; n++) {
		const struct bpf_qrec *r = (const struct bpf_qrec *)(q + off);

		b->cb(b->cb_ctx, r->data, r->size);
		off += sizeof(*r) + ((r->size + 7) & ~(size_t)7);
	}
	/* keep the buffer for the next swap unless a burst made it big */
	pthread_mutex_lock(&b->lock);
	if (!b->q_spare && cap <= (4u << 20)) {
		b->q_spare = q;
		b->q_spare_cap = cap;
		q = NULL;
	}
	pthread_mutex_unlock(&b->lock);
	if (q)
		munmap(q, cap);
	b->consumed_since_trim += (unsigned int)n;
	return err < 0 ? err : n;
}

void agent_bpf_trim(struct agent_bpf *b)
{
	/* only once records stopped coming: a busy queue would fault its pages in again */
	if (b->consumed_since_trim) {
		b->consumed_since_trim = 0;
		return;
	}
	pthread_mutex_lock(&b->lock);
	if (b->q_spare) {
		munmap(b->q_spare, b->q_spare_cap);
		b->q_spare = NULL;
		b->q_spare_cap = 0;
	}
	if (b->q && b->q_len == 0) {
		munmap(b->q, b->q_cap);
		b->q = NULL;
		b->q_cap = 0;
	}
	pthread_mutex_unlock(&b->lock);
}

int agent_bpf_session_add(struct agent_bpf *b, uint64_t cgid)
{
	struct sessrec_session zero;

	memset(&zero, 0, sizeof(zero));
	if (bpf_map__update_elem(b->skel->maps.sessrec_sessions, &cgid, sizeof(cgid), &zero,
				 sizeof(zero), BPF_NOEXIST))
		return -errno;
	return 0;
}

int agent_bpf_session_del(struct agent_bpf *b, uint64_t cgid)
{
	if (bpf_map__delete_elem(b->skel->maps.sessrec_sessions, &cgid, sizeof(cgid), 0))
		return -errno;
	return 0;
}

int agent_bpf_session_lost(struct agent_bpf *b, uint64_t cgid, struct agent_lost *out)
{
	struct sessrec_session v;

	if (bpf_map__lookup_elem(b->skel->maps.sessrec_sessions, &cgid, sizeof(cgid), &v, sizeof(v),
				 0))
		return -errno;
	memcpy(out->events, v.lost_events, sizeof(out->events));
	out->tty_bytes = v.lost_tty_bytes;
	return 0;
}

struct bpf_lost_counters {
	uint64_t events[SESSREC_CLASS_MAX];
	uint64_t tty_bytes;
};

int agent_bpf_lost_total(struct agent_bpf *b, struct agent_lost *out)
{
	struct bpf_lost_counters *v;
	uint32_t zero = 0;
	int err = 0;

	memset(out, 0, sizeof(*out));
	v = calloc((size_t)b->ncpus, sizeof(*v));
	if (!v)
		return -ENOMEM;
	if (bpf_map__lookup_elem(b->skel->maps.sessrec_lost, &zero, sizeof(zero), v,
				 sizeof(*v) * (size_t)b->ncpus, 0)) {
		err = -errno;
		goto out;
	}
	for (int cpu = 0; cpu < b->ncpus; cpu++) {
		for (int c = 0; c < SESSREC_CLASS_MAX; c++)
			out->events[c] += v[cpu].events[c];
		out->tty_bytes += v[cpu].tty_bytes;
	}
out:
	free(v);
	return err;
}

void agent_bpf_ring_fill(struct agent_bpf *b, uint64_t used[SESSREC_CLASS_MAX],
			 uint64_t size[SESSREC_CLASS_MAX])
{
	for (int cls = 0; cls < SESSREC_CLASS_MAX; cls++) {
		const char *p = b->pos_pages[cls];
		uint64_t cons = 0, prod = 0;

		size[cls] = b->ring_size[cls];
		if (p) {
			cons = __atomic_load_n((const uint64_t *)p, __ATOMIC_ACQUIRE);
			prod =
			    __atomic_load_n((const uint64_t *)(p + b->page_size), __ATOMIC_ACQUIRE);
		}
		used[cls] = prod >= cons ? prod - cons : 0;
	}
}
