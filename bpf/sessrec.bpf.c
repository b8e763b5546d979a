// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sessrec kernel side: exec, open, connect and terminal output of processes
 * inside recorded sessions.
 *
 * Every program first asks whether the current task belongs to a monitored
 * session (one helper call and one hash lookup); everything else returns at
 * once. A session is a cgroup v2 directory at a fixed level of the hierarchy;
 * looking up the task's ancestor at that level keeps descendants of the
 * session cgroup (made by the session itself) inside the session.
 *
 * Attach path: syscall and sched tracepoints, which every supported kernel
 * has. Syscall arguments are stashed at sys_enter and the event is emitted at
 * sys_exit with the result, so failed calls are recorded too. Both ends check
 * the session before anything else: the stash is only touched for sessions.
 * A stash that cannot be made (the kernel is out of memory) is a lost event,
 * counted like a full ring buffer.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>

#include "sessrec.h"
#include "sessrec.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The syscall number of a syscalls/ tracepoint: an int in the record, although
 * vmlinux.h's trace_event_raw_sys_enter/exit declare it long. */
#define SYSCALL_NR(ctx) ((__s32)(ctx)->id)

/*
 * The calling thread's stash for syscall nr, when it is in a session; NULL
 * otherwise. A stash that cannot be made is a lost event of class cls.
 */
static __always_inline struct sessrec_stash *session_stash(__s64 nr, __u32 cls)
{
	struct sessrec_stash *st;
	__u64 cgid;

	if (!session_lookup(&cgid))
		return NULL;
	st = stash_new(nr);
	if (!st)
		lost_event(cls, cgid);
	return st;
}

/* ------------------------------------------------------------ exec */

static __always_inline int exec_enter(__s64 nr, const char *filename, const char *const *argv)
{
	struct sessrec_stash *st = session_stash(nr, SESSREC_CLASS_COMMAND);

	if (!st)
		return 0;
	st->a0 = (__u64)filename;
	st->a1 = (__u64)argv;
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_execve")
int sessrec_execve_enter(struct trace_event_raw_sys_enter *ctx)
{
	return exec_enter(SYSCALL_NR(ctx), (const char *)ctx->args[0],
			  (const char *const *)ctx->args[1]);
}

SEC("tracepoint/syscalls/sys_enter_execveat")
int sessrec_execveat_enter(struct trace_event_raw_sys_enter *ctx)
{
	return exec_enter(SYSCALL_NR(ctx), (const char *)ctx->args[1],
			  (const char *const *)ctx->args[2]);
}

/* A successful exec: the new image's argv is one block in the new mm. */
SEC("tracepoint/sched/sched_process_exec")
int sessrec_exec_done(struct trace_event_raw_sched_process_exec *ctx)
{
	struct sessrec_exec *e;
	struct task_struct *task;
	unsigned long arg_start, arg_end;
	__u64 cgid, args_len, path_off;
	unsigned int fname_off;
	long n;

	if (!session_lookup(&cgid))
		return 0;
	e = scratch_get();
	if (!e)
		return 0;
	fill_hdr(&e->hdr, SESSREC_EV_EXEC, cgid);
	e->retval = 0;
	e->flags = 0;
	e->argc = 0;

	task = (struct task_struct *)bpf_get_current_task_btf();
	arg_start = task->mm->arg_start;
	arg_end = task->mm->arg_end;
	args_len = arg_end > arg_start ? arg_end - arg_start : 0;
	if (args_len > SESSREC_ARGS_SIZE) {
		args_len = SESSREC_ARGS_SIZE;
		e->flags |= SESSREC_EXEC_F_ARGS_TRUNC;
	}
	if (args_len &&
	    bpf_probe_read_user(e->data, args_len & (SESSREC_ARGS_SIZE * 2 - 1), (void *)arg_start))
		args_len = 0;
	/* argv strings are NUL-terminated; a cut one gets its NUL here. */
	if (args_len && (e->flags & SESSREC_EXEC_F_ARGS_TRUNC))
		e->data[(args_len - 1) & (SESSREC_ARGS_SIZE - 1)] = 0;
	e->args_len = args_len;

	fname_off = ctx->__data_loc_filename & 0xFFFF;
	path_off = args_len & (SESSREC_ARGS_SIZE * 2 - 1);
	n = bpf_probe_read_kernel_str(&e->data[path_off], SESSREC_PATH_MAX,
				      (void *)ctx + fname_off);
	e->path_len = n > 0 ? n : 0;

	emit(&sessrec_cmd_rb, e, sizeof(*e) + args_len + e->path_len, SESSREC_CLASS_COMMAND, cgid);
	return 0;
}

/* A failed exec: the caller's memory is still there; read argv one by one. */
static __always_inline int exec_exit(__s64 nr, long ret)
{
	struct sessrec_stash *st;
	const char *const *argv;
	struct sessrec_exec *e;
	__u64 cgid, off = 0, i;
	long n;

	if (!session_lookup(&cgid))
		return 0;
	st = stash_get(nr);
	if (!st)
		return 0;
	if (ret == 0)
		goto out;
	e = scratch_get();
	if (!e)
		goto out;
	fill_hdr(&e->hdr, SESSREC_EV_EXEC, cgid);
	e->retval = ret;
	e->flags = 0;
	argv = (const char *const *)st->a1;
	/*
	 * The running offset lives in the stash (map memory), so that each
	 * iteration starts from a value the verifier knows nothing about and one
	 * check bounds it; a register would carry bounds that older verifiers
	 * turn into impossible ranges on branches that cannot be taken.
	 */
	st->a2 = 0;
	for (i = 0; i < SESSREC_ARGS_MAX; i++) {
		const char *arg = NULL;

		if (!argv || bpf_probe_read_user(&arg, sizeof(arg), &argv[i]) || !arg)
			break;
		off = *(volatile __u64 *)&st->a2;
		if (off >= SESSREC_ARGS_SIZE - 1) {
			e->flags |= SESSREC_EXEC_F_ARGS_TRUNC;
			break;
		}
		n = bpf_probe_read_user_str(&e->data[off], SESSREC_ARG_MAX, arg);
		if (n <= 0)
			break;
		*(volatile __u64 *)&st->a2 = off + n;
	}
	off = *(volatile __u64 *)&st->a2;
	if (i == SESSREC_ARGS_MAX)
		e->flags |= SESSREC_EXEC_F_ARGS_TRUNC;
	if (off > SESSREC_ARGS_SIZE) {
		off = SESSREC_ARGS_SIZE;
		e->data[SESSREC_ARGS_SIZE - 1] = 0;
		e->flags |= SESSREC_EXEC_F_ARGS_TRUNC;
	}
	e->argc = i;
	e->args_len = off;
	/*
	 * clang knows off <= SESSREC_ARGS_SIZE here and drops any mask or check;
	 * older verifiers then lose the bound. Hide the value and check again.
	 */
	asm volatile("" : "+r"(off));
	if (off > SESSREC_ARGS_SIZE)
		off = SESSREC_ARGS_SIZE;
	n = bpf_probe_read_user_str(&e->data[off], SESSREC_PATH_MAX, (const char *)st->a0);
	e->path_len = n > 0 ? n : 0;
	emit(&sessrec_cmd_rb, e, sizeof(*e) + off + e->path_len, SESSREC_CLASS_COMMAND, cgid);
out:
	stash_del(st);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_execve")
int sessrec_execve_exit(struct trace_event_raw_sys_exit *ctx)
{
	return exec_exit(SYSCALL_NR(ctx), ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_execveat")
int sessrec_execveat_exit(struct trace_event_raw_sys_exit *ctx)
{
	return exec_exit(SYSCALL_NR(ctx), ctx->ret);
}

/* ------------------------------------------------------------ open */

static __always_inline int open_enter(__s64 nr, int dfd, const char *filename, __u64 flags,
				      __u64 mode)
{
	struct sessrec_stash *st = session_stash(nr, SESSREC_CLASS_DISK);

	if (!st)
		return 0;
	st->a0 = (__u64)filename;
	st->a1 = flags;
	st->a2 = mode;
	st->a3 = (__u64)(__s64)dfd;
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_openat")
int sessrec_openat_enter(struct trace_event_raw_sys_enter *ctx)
{
	return open_enter(SYSCALL_NR(ctx), ctx->args[0], (const char *)ctx->args[1], ctx->args[2],
			  ctx->args[3]);
}

SEC("tracepoint/syscalls/sys_enter_open")
int sessrec_open_enter(struct trace_event_raw_sys_enter *ctx)
{
	return open_enter(SYSCALL_NR(ctx), SESSREC_AT_FDCWD, (const char *)ctx->args[0],
			  ctx->args[1], ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_enter_creat")
int sessrec_creat_enter(struct trace_event_raw_sys_enter *ctx)
{
	return open_enter(SYSCALL_NR(ctx), SESSREC_AT_FDCWD, (const char *)ctx->args[0],
			  SESSREC_O_CREAT | SESSREC_O_WRONLY | SESSREC_O_TRUNC, ctx->args[1]);
}

SEC("tracepoint/syscalls/sys_enter_openat2")
int sessrec_openat2_enter(struct trace_event_raw_sys_enter *ctx)
{
	struct open_how how = {};

	bpf_probe_read_user(&how, sizeof(how), (void *)ctx->args[2]);
	return open_enter(SYSCALL_NR(ctx), ctx->args[0], (const char *)ctx->args[1], how.flags,
			  how.mode);
}

static __always_inline int open_exit(__s64 nr, long ret)
{
	struct sessrec_stash *st;
	struct sessrec_open *e;
	__u64 cgid;
	long n;

	if (!session_lookup(&cgid))
		return 0;
	st = stash_get(nr);
	if (!st)
		return 0;
	e = scratch_get();
	if (!e)
		goto out;
	fill_hdr(&e->hdr, SESSREC_EV_OPEN, cgid);
	e->retval = ret;
	e->flags = st->a1;
	e->mode = st->a2;
	e->dfd = (__s32)st->a3;
	e->abs = 0;
	e->pad = 0;
	n = 0;
	if (ret >= 0)
		n = fd_path(ret, e->data);
	if (n > 0) {
		e->abs = 1;
	} else {
		n = bpf_probe_read_user_str(e->data, SESSREC_PATH_MAX, (const char *)st->a0);
		if (n < 0)
			n = 0;
	}
	e->path_len = n;
	emit(&sessrec_disk_rb, e, sizeof(*e) + (n & (SESSREC_PATH_MAX * 2 - 1)), SESSREC_CLASS_DISK,
	     cgid);
out:
	stash_del(st);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_openat")
int sessrec_openat_exit(struct trace_event_raw_sys_exit *ctx)
{
	return open_exit(SYSCALL_NR(ctx), ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_open")
int sessrec_open_exit(struct trace_event_raw_sys_exit *ctx)
{
	return open_exit(SYSCALL_NR(ctx), ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_creat")
int sessrec_creat_exit(struct trace_event_raw_sys_exit *ctx)
{
	return open_exit(SYSCALL_NR(ctx), ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_openat2")
int sessrec_openat2_exit(struct trace_event_raw_sys_exit *ctx)
{
	return open_exit(SYSCALL_NR(ctx), ctx->ret);
}

/* ------------------------------------------------------------ connect */

SEC("tracepoint/syscalls/sys_enter_connect")
int sessrec_connect_enter(struct trace_event_raw_sys_enter *ctx)
{
	struct sessrec_stash *st = session_stash(SYSCALL_NR(ctx), SESSREC_CLASS_NETWORK);

	if (!st)
		return 0;
	st->a0 = ctx->args[0]; /* fd */
	st->a1 = ctx->args[1]; /* struct sockaddr __user * */
	st->a2 = ctx->args[2]; /* addrlen */
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_connect")
int sessrec_connect_exit(struct trace_event_raw_sys_exit *ctx)
{
	struct sessrec_stash *st;
	struct sessrec_connect *e;
	struct sockaddr_in6 sa6 = {};
	__u16 family = 0;
	__u64 cgid;

	if (!session_lookup(&cgid))
		return 0;
	st = stash_get(SYSCALL_NR(ctx));
	if (!st)
		return 0;
	if (bpf_probe_read_user(&family, sizeof(family), (void *)st->a1))
		goto out;
	if (family != SESSREC_AF_INET && family != SESSREC_AF_INET6)
		goto out;
	e = scratch_get();
	if (!e)
		goto out;
	fill_hdr(&e->hdr, SESSREC_EV_CONNECT, cgid);
	e->retval = ctx->ret;
	e->family = family;
	e->pad = 0;
	__builtin_memset(e->saddr, 0, sizeof(e->saddr));
	__builtin_memset(e->daddr, 0, sizeof(e->daddr));
	if (family == SESSREC_AF_INET) {
		struct sockaddr_in sa = {};

		bpf_probe_read_user(&sa, sizeof(sa), (void *)st->a1);
		__builtin_memcpy(e->daddr, &sa.sin_addr, 4);
		e->dport = bpf_ntohs(sa.sin_port);
	} else {
		bpf_probe_read_user(&sa6, sizeof(sa6), (void *)st->a1);
		__builtin_memcpy(e->daddr, &sa6.sin6_addr, 16);
		e->dport = bpf_ntohs(sa6.sin6_port);
	}
	sock_source(st->a0, family, e);
	emit(&sessrec_net_rb, e, sizeof(*e), SESSREC_CLASS_NETWORK, cgid);
out:
	stash_del(st);
	return 0;
}

/* ------------------------------------------------------------ terminal output */

static __always_inline int tty_enter(__s64 nr, __u64 fd, __u64 buf, __u64 iovcnt)
{
	struct sessrec_stash *st;
	__u32 major, minor;
	__u64 cgid;

	if (!session_lookup(&cgid))
		return 0;
	if (!fd_pty_slave(fd, &major, &minor))
		return 0;
	st = stash_new(nr);
	if (!st) {
		lost_event(SESSREC_CLASS_TERMINAL, cgid);
		return 0;
	}
	st->a0 = buf; /* the buffer, or the iovec array */
	st->a1 = major;
	st->a2 = minor;
	st->a3 = iovcnt; /* 0: a plain write() */
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_write")
int sessrec_write_enter(struct trace_event_raw_sys_enter *ctx)
{
	return tty_enter(SYSCALL_NR(ctx), ctx->args[0], ctx->args[1], 0);
}

SEC("tracepoint/syscalls/sys_enter_writev")
int sessrec_writev_enter(struct trace_event_raw_sys_enter *ctx)
{
	if (ctx->args[2] == 0)
		return 0;
	return tty_enter(SYSCALL_NR(ctx), ctx->args[0], ctx->args[1], ctx->args[2]);
}

/* Copy one chunk of a write() or writev() into the ring buffer; 1 when there is no more. */
static __always_inline long tty_chunk(void)
{
	struct tty_copy *c = loop_state(SESSREC_LOOP_TTY);
	struct sessrec_session *s;
	struct sessrec_tty *e;
	__u64 len, src, cgid;

	if (!c || c->off >= c->total)
		return 1;
	cgid = c->cgid;
	len = c->total - c->off;
	if (c->iovcnt) {
		struct iovec iov = {};

		/* skip empty iovecs one step at a time (each step is one loop iteration) */
		if (c->iov >= c->iovcnt ||
		    bpf_probe_read_user(&iov, sizeof(iov), (void *)(c->buf + c->iov * sizeof(iov))))
			return 1;
		if (c->iov_off >= iov.iov_len) {
			c->iov++;
			c->iov_off = 0;
			return 0;
		}
		if (len > iov.iov_len - c->iov_off)
			len = iov.iov_len - c->iov_off;
		src = (__u64)iov.iov_base + c->iov_off;
	} else {
		src = c->buf + c->off;
	}
	if (len > SESSREC_TTY_CHUNK)
		len = SESSREC_TTY_CHUNK;
	e = scratch_get();
	s = bpf_map_lookup_elem(&sessrec_sessions, &cgid);
	if (!e || !s)
		return 1;
	e->offset = c->off;
	e->len = len;
	e->lost_total = s->lost_tty_bytes;
	if (bpf_probe_read_user(e->data, len, (void *)src) ||
	    bpf_ringbuf_output(&sessrec_tty_rb, e, sizeof(*e) + len,
			       wake_flags(&sessrec_tty_rb, sizeof(*e) + len, SESSREC_CLASS_TERMINAL,
					  e->hdr.ts_ns))) {
		__sync_fetch_and_add(&s->lost_tty_bytes, len);
		__sync_fetch_and_add(&s->lost_events[SESSREC_CLASS_TERMINAL], 1);
		count_lost(SESSREC_CLASS_TERMINAL, len);
	}
	c->off += len;
	c->iov_off += len;
	return 0;
}

static long tty_chunk_cb(__u32 i, void *ctx)
{
	return tty_chunk();
}

static __always_inline int tty_exit(__s64 nr, long ret)
{
	struct sessrec_session *s;
	struct sessrec_stash *st;
	struct sessrec_tty *e;
	struct tty_copy *c;
	__u64 cgid, left;

	if (!session_lookup(&cgid))
		return 0;
	st = stash_get(nr);
	if (!st)
		return 0;
	if (ret <= 0)
		goto out;
	e = scratch_get();
	c = loop_state(SESSREC_LOOP_TTY);
	if (!e || !c)
		goto out;
	fill_hdr(&e->hdr, SESSREC_EV_TTY, cgid);
	e->tty_major = st->a1;
	e->tty_minor = st->a2;
	c->buf = st->a0;
	c->iovcnt = st->a3;
	c->iov = 0;
	c->iov_off = 0;
	c->total = ret;
	c->off = 0;
	c->cgid = cgid;
	/* bpf_loop (5.17+); older kernels copy one chunk per call and count the rest */
	if (bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_loop))
		bpf_loop(SESSREC_TTY_CHUNKS_MAX * 2, tty_chunk_cb, NULL, 0);
	else
		tty_chunk();
	left = c->total > c->off ? c->total - c->off : 0;
	if (left) {
		/* More than we copy from one call: the rest is counted, not copied. */
		s = bpf_map_lookup_elem(&sessrec_sessions, &cgid);
		if (s) {
			__sync_fetch_and_add(&s->lost_tty_bytes, left);
			__sync_fetch_and_add(&s->lost_events[SESSREC_CLASS_TERMINAL], 1);
		}
		count_lost(SESSREC_CLASS_TERMINAL, left);
	}
out:
	stash_del(st);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_write")
int sessrec_write_exit(struct trace_event_raw_sys_exit *ctx)
{
	return tty_exit(SYSCALL_NR(ctx), ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_writev")
int sessrec_writev_exit(struct trace_event_raw_sys_exit *ctx)
{
	return tty_exit(SYSCALL_NR(ctx), ctx->ret);
}
