/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Event records shared by the BPF programs and user space. Fixed-width types
 * only: this header is included both by *.bpf.c (with vmlinux.h) and by the
 * agent (with linux/types.h).
 *
 * Every record starts with struct sessrec_hdr; records are variable-sized
 * (the trailing string/data area is only as long as it needs to be), so a
 * reader must use the ring buffer record length, never sizeof().
 */
#ifndef SESSREC_BPF_H
#define SESSREC_BPF_H

#define SESSREC_COMM_LEN 16
#define SESSREC_PATH_MAX 4096

/* exec: argv is copied as NUL-separated strings into a bounded area. */
#define SESSREC_ARGS_MAX  128	/* argv entries read one by one when exec failed */
#define SESSREC_ARGS_SIZE 16384 /* at most this many bytes of argv (a power of two) */
#define SESSREC_ARG_MAX	  4096	/* one argument read from user memory, when exec failed */

/* terminal output: one write() is split into chunks of at most this size. */
#define SESSREC_TTY_CHUNK 8192
/* and at most this many chunks are copied from one write(); the rest is lost (counted). */
#define SESSREC_TTY_CHUNKS_MAX 64

enum sessrec_class {
	SESSREC_CLASS_COMMAND = 0,
	SESSREC_CLASS_DISK = 1,
	SESSREC_CLASS_NETWORK = 2,
	SESSREC_CLASS_TERMINAL = 3,
	SESSREC_CLASS_MAX = 4,
};

enum sessrec_type {
	SESSREC_EV_EXEC = 1,
	SESSREC_EV_OPEN = 2,
	SESSREC_EV_CONNECT = 3,
	SESSREC_EV_TTY = 4,
};

struct sessrec_hdr {
	__u32 type; /* enum sessrec_type */
	__u32 pid;  /* tgid */
	__u32 tid;
	__u32 ppid; /* real parent's tgid */
	__u32 uid;
	__u32 gid;
	__u64 ts_ns;	   /* CLOCK_MONOTONIC (bpf_ktime_get_ns) */
	__u64 cgroup_id;   /* the session cgroup (ancestor at the session level) */
	__u64 task_cgroup; /* the task's own cgroup, may be a descendant */
	char comm[SESSREC_COMM_LEN];
};

#define SESSREC_EXEC_F_ARGS_TRUNC (1u << 0) /* argv did not fit */
#define SESSREC_EXEC_F_PATH_TRUNC (1u << 1)

struct sessrec_exec {
	struct sessrec_hdr hdr;
	__s32 retval;
	__u32 flags;
	__u32 argc;	/* entries present in args[] */
	__u16 args_len; /* bytes of argv at data[0]: argv0 \0 argv1 \0 ... */
	__u16 path_len; /* bytes of the path after argv, with its NUL */
	__u8 data[];	/* argv0 \0 argv1 \0 ... path \0 */
};

struct sessrec_open {
	struct sessrec_hdr hdr;
	__s32 retval;
	__s32 flags; /* open(2) flags */
	__u32 mode;
	__s32 dfd;	/* the dirfd given to openat, or -100 (AT_FDCWD) */
	__u16 path_len; /* bytes of path at data[0], with its NUL */
	__u16 abs;	/* 1 when the kernel resolved path to an absolute one */
	__u32 pad;
	__u8 data[];
};

struct sessrec_connect {
	struct sessrec_hdr hdr;
	__s32 retval;
	__u16 family;	/* AF_INET or AF_INET6 */
	__u16 protocol; /* IPPROTO_TCP or IPPROTO_UDP (0 when unknown) */
	__u16 sport;	/* host byte order */
	__u16 dport;	/* host byte order */
	__u32 pad;
	__u8 saddr[16]; /* IPv4 in the first 4 bytes */
	__u8 daddr[16];
};

struct sessrec_tty {
	struct sessrec_hdr hdr;
	__u32 tty_major;
	__u32 tty_minor;  /* /dev/pts/N with N = (major - 136) * 256 + minor */
	__u32 offset;	  /* offset of this chunk inside the write() */
	__u32 len;	  /* bytes in data[] */
	__u64 lost_total; /* terminal bytes of this session lost so far, at this chunk */
	__u8 data[];
};

/*
 * Value of the session map, keyed by the session cgroup id. The BPF side only
 * adds to the counters; the agent reads them to mark lost events in the
 * affected recording exactly.
 */
struct sessrec_session {
	__u64 lost_events[SESSREC_CLASS_MAX];
	__u64 lost_tty_bytes;
};

#endif /* SESSREC_BPF_H */
