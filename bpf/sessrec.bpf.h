/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* BPF side only: maps and helpers shared by the sessrec programs. */
#ifndef SESSREC_BPF_BPF_H
#define SESSREC_BPF_BPF_H

#define SESSREC_AT_FDCWD	      -100
#define SESSREC_O_WRONLY	      01
#define SESSREC_O_CREAT		      0100
#define SESSREC_O_TRUNC		      01000
#define SESSREC_AF_INET		      2
#define SESSREC_AF_INET6	      10
#define SESSREC_S_IFMT		      00170000
#define SESSREC_S_IFSOCK	      0140000
#define SESSREC_S_IFCHR		      0020000
#define SESSREC_PTY_SLAVE_MAJOR_FIRST 136 /* UNIX98_PTY_SLAVE_MAJOR */
#define SESSREC_PTY_SLAVE_MAJOR_LAST  143 /* ... + UNIX98_PTY_MAJOR_COUNT - 1 */
#define SESSREC_TTYAUX_MAJOR	      5	  /* /dev/tty is 5:0 */
#define SESSREC_SCRATCH_SIZE	      32768
#define SESSREC_PATH_DEPTH	      48 /* path components resolved, at most */

/* Syscall arguments kept from sys_enter until sys_exit of the same thread. */
struct sessrec_stash {
	__u64 a0, a1, a2, a3;
	__s64 nr; /* the syscall they belong to; -1: none */
};

struct sessrec_lost_counters {
	__u64 events[SESSREC_CLASS_MAX];
	__u64 tty_bytes;
};

struct sessrec_scratch {
	__u8 buf[SESSREC_SCRATCH_SIZE];
};

/* bpf_loop state: a terminal write being copied chunk by chunk. */
struct tty_copy {
	__u64 buf;    /* a plain write(): the buffer; writev(): the iovec array */
	__u64 iovcnt; /* 0 for write() */
	__u64 iov;    /* writev(): the current iovec */
	__u64 iov_off;
	__u64 total; /* bytes the syscall wrote */
	__u64 off;   /* bytes handled so far */
	__u64 cgid;
};

/* bpf_loop state: a path being resolved from a dentry up to the root. */
struct path_walk {
	__u64 d;   /* struct dentry * */
	__u64 vm;  /* struct vfsmount * */
	__u64 mnt; /* struct mount * */
	__u64 root_d;
	__u64 root_vm;
	__u64 vm_root; /* the current mount's root dentry (vm->mnt_root) */
	__u32 pos;     /* components are written backwards, ending at SESSREC_PATH_MAX */
	__s32 failed;  /* 1: the path could not be resolved */
	__s32 done;
	__u32 pad;
};

enum sessrec_loop_kind {
	SESSREC_LOOP_TTY = 0,
	SESSREC_LOOP_PATH = 1,
};

union sessrec_loop {
	struct tty_copy tty;
	struct path_walk walk;
};

/* Level of the session cgroups in the cgroup v2 hierarchy (set before load). */
const volatile __u32 session_level = 2;

/* ------------------------------------------------------------ maps */

/* Monitored sessions: session cgroup id -> per-session loss counters. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct sessrec_session);
} sessrec_sessions SEC(".maps");

/* One ring buffer per event class; sizes are set by the agent before load. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 * 4096);
} sessrec_cmd_rb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 128 * 4096);
} sessrec_disk_rb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 * 4096);
} sessrec_net_rb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1024 * 4096);
} sessrec_tty_rb SEC(".maps");

/* Events that did not fit in their ring buffer, per class (all sessions). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sessrec_lost_counters);
} sessrec_lost SEC(".maps");

/*
 * Arguments between sys_enter and sys_exit, in the thread's own task storage:
 * no hash to search or lock, nothing to delete (an entry is marked unused),
 * and the kernel frees it with the thread, so a thread that never returns
 * leaks nothing.
 */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sessrec_stash);
} sessrec_stash SEC(".maps");

/*
 * bpf_loop callbacks keep their state here, not on the stack: newer
 * verifiers check a callback until its states converge, and state in map
 * memory is not tracked (it converges at once), while a precise counter on
 * the stack makes every iteration a new state.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, union sessrec_loop);
} sessrec_loop SEC(".maps");

/* Per-CPU space to build an event before copying it into a ring buffer:
 * records are variable-sized, so only the bytes used are copied. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct sessrec_scratch);
} sessrec_scratch SEC(".maps");

/* ------------------------------------------------------------ session filter */

/* The session of the current task, or NULL: the one check every program makes first. */
static __always_inline struct sessrec_session *session_lookup(__u64 *cgid)
{
	__u64 id = bpf_get_current_ancestor_cgroup_id(session_level);
	struct sessrec_session *s = bpf_map_lookup_elem(&sessrec_sessions, &id);

	if (s && cgid)
		*cgid = id;
	return s;
}

/* ------------------------------------------------------------ stash and scratch */

/* The calling thread's stash, created on first use (NULL when out of memory). */
static __always_inline struct sessrec_stash *stash_new(__s64 nr)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task_btf();
	struct sessrec_stash *st;

	st = bpf_task_storage_get(&sessrec_stash, task, NULL, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (st)
		st->nr = nr;
	return st;
}

/* The arguments syscall nr stashed at its sys_enter, or NULL. */
static __always_inline struct sessrec_stash *stash_get(__s64 nr)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task_btf();
	struct sessrec_stash *st = bpf_task_storage_get(&sessrec_stash, task, NULL, 0);

	return st && st->nr == nr ? st : NULL;
}

static __always_inline void stash_del(struct sessrec_stash *st)
{
	st->nr = -1;
}

static __always_inline void *scratch_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&sessrec_scratch, &zero);
}

static __always_inline void *loop_state(__u32 kind)
{
	return bpf_map_lookup_elem(&sessrec_loop, &kind);
}

static __always_inline char *pathbuf_get(void)
{
	__u32 one = 1;

	return bpf_map_lookup_elem(&sessrec_scratch, &one);
}

/* ------------------------------------------------------------ emit */

static __always_inline void fill_hdr(struct sessrec_hdr *h, __u32 type, __u64 cgid)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task_btf();
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 ugid = bpf_get_current_uid_gid();

	h->type = type;
	h->pid = pid_tgid >> 32;
	h->tid = (__u32)pid_tgid;
	h->ppid = task->real_parent->tgid; /* BTF pointers: plain loads, no helper calls */
	h->uid = (__u32)ugid;
	h->gid = ugid >> 32;
	h->ts_ns = bpf_ktime_get_ns();
	h->cgroup_id = cgid;
	h->task_cgroup = bpf_get_current_cgroup_id();
	bpf_get_current_comm(h->comm, sizeof(h->comm));
}

static __always_inline void count_lost(__u32 cls, __u64 bytes)
{
	struct sessrec_lost_counters *c;
	__u32 zero = 0;

	c = bpf_map_lookup_elem(&sessrec_lost, &zero);
	if (!c)
		return;
	if (cls < SESSREC_CLASS_MAX)
		c->events[cls]++;
	c->tty_bytes += bytes;
}

/*
 * When to wake the agent. By default the kernel wakes the reader for every
 * record written while it is caught up, and a wake-up is an interrupt sent
 * from inside the syscall plus a reschedule of the agent on another CPU (on a
 * VM, exits to the hypervisor): from one to ten microseconds on every open,
 * connect or exec of a session. Instead a record wakes the agent when the
 * unread data of its ring crosses a multiple of 1/SESSREC_WAKE_PARTS of the
 * ring (so a burst never waits for the agent's timer), or when the ring's
 * last wake-up is more than SESSREC_WAKE_NS old (so a lone command reaches the
 * audit log within that time). The agent drains every ring on each wake-up
 * and on its 200 ms timer: no record waits longer than that, and none is lost
 * for want of a wake-up (a crossing missed by two CPUs racing is caught at the
 * next one, or by the timer).
 */
#define SESSREC_WAKE_PARTS 16
#define SESSREC_WAKE_NS	   (10 * 1000 * 1000ULL)

/* Per class: bpf_ktime_get_ns() of the last wake-up a record asked for. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SESSREC_CLASS_MAX);
	__type(key, __u32);
	__type(value, __u64);
} sessrec_wake SEC(".maps");

static __always_inline __u64 wake_flags(void *rb, __u64 size, __u32 cls, __u64 now)
{
	__u64 avail, part, *last;

	part = bpf_ringbuf_query(rb, BPF_RB_RING_SIZE) / SESSREC_WAKE_PARTS;
	avail = bpf_ringbuf_query(rb, BPF_RB_AVAIL_DATA);
	/* + 8: the record header the ring buffer adds */
	if (!part || avail / part != (avail + size + 8) / part)
		return BPF_RB_FORCE_WAKEUP;
	last = bpf_map_lookup_elem(&sessrec_wake, &cls);
	if (!last)
		return BPF_RB_FORCE_WAKEUP;
	if (now - *last < SESSREC_WAKE_NS)
		return BPF_RB_NO_WAKEUP;
	*last = now;
	return BPF_RB_FORCE_WAKEUP;
}

/* An event of session cgid that cannot be recorded: counted, never silent. */
static __always_inline void lost_event(__u32 cls, __u64 cgid)
{
	struct sessrec_session *s;

	count_lost(cls, 0);
	s = bpf_map_lookup_elem(&sessrec_sessions, &cgid);
	if (s && cls < SESSREC_CLASS_MAX)
		__sync_fetch_and_add(&s->lost_events[cls], 1);
}

/* Copy size bytes of e into rb; a full ring buffer is counted. */
static __always_inline void emit(void *rb, void *e, __u64 size, __u32 cls, __u64 cgid)
{
	if (size > SESSREC_SCRATCH_SIZE)
		size = SESSREC_SCRATCH_SIZE;
	/* the record's own time (every record starts with its header) is "now" enough */
	if (bpf_ringbuf_output(rb, e, size,
			       wake_flags(rb, size, cls, ((struct sessrec_hdr *)e)->ts_ns)))
		lost_event(cls, cgid);
}

/* ------------------------------------------------------------ files */

static __always_inline struct file *fd_file(__u64 fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task_btf();
	struct fdtable *fdt = task->files->fdt;
	struct file **fds, *f = NULL;

	if (!fdt || fd >= fdt->max_fds)
		return NULL;
	fds = fdt->fd;
	/* a variable index: this one needs the helper */
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]))
		return NULL;
	return f;
}

/* Is fd a pty slave (/dev/pts/N)? */
static __always_inline bool fd_pty_slave(__u64 fd, __u32 *major, __u32 *minor)
{
	struct file *f = fd_file(fd);
	struct inode *inode;
	__u32 rdev;

	if (!f)
		return false;
	inode = BPF_CORE_READ(f, f_inode);
	if ((BPF_CORE_READ(inode, i_mode) & SESSREC_S_IFMT) != SESSREC_S_IFCHR)
		return false;
	rdev = BPF_CORE_READ(inode, i_rdev);
	*major = rdev >> 20;
	*minor = rdev & ((1u << 20) - 1);
	if (*major == SESSREC_TTYAUX_MAJOR && *minor == 0) {
		/* /dev/tty: the controlling terminal, whatever it is (prompts of ssh, sudo) */
		struct task_struct *task = (struct task_struct *)bpf_get_current_task_btf();
		struct tty_struct *tty = task->signal->tty;

		if (!tty)
			return false;
		*major = tty->driver->major;
		*minor = tty->driver->minor_start + tty->index;
	}
	return *major >= SESSREC_PTY_SLAVE_MAJOR_FIRST && *major <= SESSREC_PTY_SLAVE_MAJOR_LAST;
}

/*
 * d->d_parent and d->d_name with one read: they are neighbours in struct
 * dentry (offsets from the running kernel's BTF, so the span is a constant
 * for the verifier). Returns 0, or -1 when the read faults.
 */
#define SESSREC_DHEAD_MAX 64

static __always_inline int dentry_head(struct dentry *d, struct dentry **parent, struct qstr *name)
{
	__u8 buf[SESSREC_DHEAD_MAX];
	__u32 po = bpf_core_field_offset(struct dentry, d_parent);
	__u32 no = bpf_core_field_offset(struct dentry, d_name);
	__u32 span = no + sizeof(struct qstr) - po;

	if (no < po || span > sizeof(buf)) {
		/* a layout we did not expect: two reads */
		*parent = BPF_CORE_READ(d, d_parent);
		return bpf_core_read(name, sizeof(*name), &d->d_name) ? -1 : 0;
	}
	if (bpf_probe_read_kernel(buf, span, (void *)d + po))
		return -1;
	__builtin_memcpy(parent, buf, sizeof(*parent));
	__builtin_memcpy(name, buf + (no - po), sizeof(*name));
	return 0;
}

/* One step up the tree: a name, or a mount crossing. Returns 1 to stop. */
static long path_walk_step(__u32 i, void *ctx)
{
	struct path_walk *w = loop_state(SESSREC_LOOP_PATH);
	struct dentry *d, *parent;
	struct mount *mnt, *mnt_parent;
	struct qstr name;
	char *buf = pathbuf_get();
	__u32 len, pos;

	if (!w)
		return 1;
	if (!buf) {
		w->failed = 1;
		return 1;
	}
	d = (struct dentry *)w->d;
	mnt = (struct mount *)w->mnt;
	if (w->d == w->root_d && w->vm == w->root_vm) {
		w->done = 1;
		return 1;
	}
	if (dentry_head(d, &parent, &name)) {
		w->failed = 1;
		return 1;
	}
	if (w->d == w->vm_root || d == parent) {
		mnt_parent = BPF_CORE_READ(mnt, mnt_parent);
		if (mnt_parent == mnt) {
			w->done = 1; /* the top of the mount tree */
			return 1;
		}
		w->d = (__u64)BPF_CORE_READ(mnt, mnt_mountpoint);
		w->mnt = (__u64)mnt_parent;
		w->vm = (__u64)__builtin_preserve_access_index(&mnt_parent->mnt);
		w->vm_root = (__u64)BPF_CORE_READ(mnt_parent, mnt.mnt_root);
		return 0;
	}
	len = name.len;
	pos = w->pos;
	if (len > 255 || len + 1 > pos || pos > SESSREC_PATH_MAX) {
		w->failed = 1;
		return 1;
	}
	pos -= len;
	if (bpf_probe_read_kernel(&buf[pos & (SESSREC_PATH_MAX - 1)], len & 255, name.name)) {
		w->failed = 1;
		return 1;
	}
	pos -= 1;
	buf[pos & (SESSREC_PATH_MAX - 1)] = '/';
	w->pos = pos;
	w->d = (__u64)parent;
	return 0;
}

/*
 * The absolute path of an open file, as seen from the task's root (so a
 * containerised process gets its own view), written to out with its NUL.
 * Components are gathered backwards in a per-CPU buffer by a bpf_loop
 * callback, which the verifier checks once (an unrolled walk is too complex).
 * Kernels before 5.17 have no bpf_loop: there the caller keeps the path the
 * process gave. Returns the length with the NUL, or 0 when not resolved.
 */
static __always_inline long fd_path(__u64 fd, __u8 *out)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task_btf();
	struct path_walk *w = loop_state(SESSREC_LOOP_PATH);
	struct file *f = fd_file(fd);
	char *buf = pathbuf_get();
	struct vfsmount *vm;
	__u32 len, pos;

	if (!bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_loop))
		return 0;
	if (!f || !buf || !w)
		return 0;
	vm = BPF_CORE_READ(f, f_path.mnt);
	w->d = (__u64)BPF_CORE_READ(f, f_path.dentry);
	w->vm = (__u64)vm;
	w->vm_root = (__u64)BPF_CORE_READ(vm, mnt_root);
	w->root_d = (__u64)task->fs->root.dentry;
	w->root_vm = (__u64)task->fs->root.mnt;
	w->mnt = (__u64)container_of(vm, struct mount, mnt);
	w->pos = SESSREC_PATH_MAX;
	w->failed = 0;
	w->done = 0;
	bpf_loop(SESSREC_PATH_DEPTH, path_walk_step, NULL, 0);
	if (w->failed || !w->done)
		return 0;
	pos = w->pos;
	if (pos == SESSREC_PATH_MAX) {
		pos -= 1;
		buf[pos & (SESSREC_PATH_MAX - 1)] = '/';
	}
	if (pos == 0 || pos > SESSREC_PATH_MAX)
		return 0;
	len = SESSREC_PATH_MAX - pos;
	if (bpf_probe_read_kernel(out, len & (SESSREC_PATH_MAX - 1),
				  &buf[pos & (SESSREC_PATH_MAX - 1)]))
		return 0;
	out[len & (SESSREC_PATH_MAX - 1)] = 0;
	return len + 1;
}

/* Protocol and local address of a connected socket fd. */
static __always_inline void sock_source(__u64 fd, __u16 family, struct sessrec_connect *e)
{
	struct file *f = fd_file(fd);
	struct socket *sock;
	struct sock *sk;

	e->protocol = 0;
	e->sport = 0;
	if (!f)
		return;
	if ((BPF_CORE_READ(f, f_inode, i_mode) & SESSREC_S_IFMT) != SESSREC_S_IFSOCK)
		return;
	sock = BPF_CORE_READ(f, private_data);
	sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return;
	e->protocol = BPF_CORE_READ(sk, sk_protocol);
	e->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	/* explicit sizes: BPF_CORE_READ_INTO into an array copies one element */
	if (family == SESSREC_AF_INET)
		bpf_core_read(e->saddr, 4, &sk->__sk_common.skc_rcv_saddr);
	else
		bpf_core_read(e->saddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
}

#endif
