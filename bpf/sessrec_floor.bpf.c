// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The benchmark's floor: the hooks of sessrec.bpf.c with nothing behind them.
 *
 * Each program sits on the same tracepoint as its counterpart in the main
 * object and makes only the session check every sessrec program makes first
 * (the task's ancestor cgroup at the session level, looked up in a hash map of
 * the same shape), then returns. Loaded by bench/floor with the map left
 * empty, it measures what hooking a syscall costs a process outside any
 * session on a tracepoint-only kernel: the least the agent can cost there.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "sessrec.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Level of the session cgroups in the cgroup v2 hierarchy (set before load). */
const volatile __u32 session_level = 2;

/* Same key, value and size as the agent's sessrec_sessions. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct sessrec_session);
} sessrec_floor_sessions SEC(".maps");

static __always_inline int floor_check(void)
{
	__u64 id = bpf_get_current_ancestor_cgroup_id(session_level);

	/* The result is unused on purpose; the lookup is what is being measured. */
	bpf_map_lookup_elem(&sessrec_floor_sessions, &id);
	return 0;
}

#define FLOOR_PROG(sec, name)                                                                      \
	SEC(sec)                                                                                   \
	int name(void *ctx)                                                                        \
	{                                                                                          \
		return floor_check();                                                              \
	}

FLOOR_PROG("tracepoint/syscalls/sys_enter_execve", sessrec_floor_execve_enter)
FLOOR_PROG("tracepoint/syscalls/sys_exit_execve", sessrec_floor_execve_exit)
FLOOR_PROG("tracepoint/syscalls/sys_enter_execveat", sessrec_floor_execveat_enter)
FLOOR_PROG("tracepoint/syscalls/sys_exit_execveat", sessrec_floor_execveat_exit)
FLOOR_PROG("tracepoint/sched/sched_process_exec", sessrec_floor_exec_done)
FLOOR_PROG("tracepoint/syscalls/sys_enter_open", sessrec_floor_open_enter)
FLOOR_PROG("tracepoint/syscalls/sys_exit_open", sessrec_floor_open_exit)
FLOOR_PROG("tracepoint/syscalls/sys_enter_openat", sessrec_floor_openat_enter)
FLOOR_PROG("tracepoint/syscalls/sys_exit_openat", sessrec_floor_openat_exit)
FLOOR_PROG("tracepoint/syscalls/sys_enter_openat2", sessrec_floor_openat2_enter)
FLOOR_PROG("tracepoint/syscalls/sys_exit_openat2", sessrec_floor_openat2_exit)
FLOOR_PROG("tracepoint/syscalls/sys_enter_creat", sessrec_floor_creat_enter)
FLOOR_PROG("tracepoint/syscalls/sys_exit_creat", sessrec_floor_creat_exit)
FLOOR_PROG("tracepoint/syscalls/sys_enter_connect", sessrec_floor_connect_enter)
FLOOR_PROG("tracepoint/syscalls/sys_exit_connect", sessrec_floor_connect_exit)
FLOOR_PROG("tracepoint/syscalls/sys_enter_write", sessrec_floor_write_enter)
FLOOR_PROG("tracepoint/syscalls/sys_exit_write", sessrec_floor_write_exit)
FLOOR_PROG("tracepoint/syscalls/sys_enter_writev", sessrec_floor_writev_enter)
FLOOR_PROG("tracepoint/syscalls/sys_exit_writev", sessrec_floor_writev_exit)
