/*
 * floor: attach the bare hooks of bpf/sessrec_floor.bpf.c (the session check
 * and nothing else) and hold them until SIGTERM or SIGINT.
 *
 * The benchmark driver runs workloads with this attached to measure the cost
 * every process pays merely because sessrec's tracepoints are hooked: the
 * floor under the agent's overhead for processes outside sessions.
 *
 * Prints "ready" on stdout once every program is attached.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <bpf/libbpf.h>
#include <linux/magic.h>

#include "sessrec_floor.skel.h"

#define FLOOR_TRACEFS "/sys/kernel/tracing"

static int floor_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

/* The syscall tracepoints live in tracefs; a minimal system may not have it mounted. */
static int floor_mount_tracefs(void)
{
	struct statfs st;

	if (statfs(FLOOR_TRACEFS, &st) == 0 && (long)st.f_type == TRACEFS_MAGIC)
		return 0;
	if (mkdir(FLOOR_TRACEFS, 0700) < 0 && errno != EEXIST)
		return -errno;
	if (mount("tracefs", FLOOR_TRACEFS, "tracefs", 0, NULL) < 0)
		return -errno;
	fprintf(stderr, "floor: mounted tracefs at %s\n", FLOOR_TRACEFS);
	return 0;
}

static int floor_parse_level(const char *s, uint32_t *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v == 0 || v > 64)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

static void floor_usage(FILE *out)
{
	fprintf(out, "Usage: floor [--level N]\n\n"
		     "Attach sessrec's hooks with only the session check behind them and\n"
		     "wait for SIGTERM or SIGINT. --level is the cgroup v2 level of session\n"
		     "cgroups (default 2, as for /cgroup2/sessrec/<sid>).\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"level", required_argument, NULL, 'l'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct sessrec_floor *skel = NULL;
	uint32_t level = 2;
	sigset_t set;
	int c, sig, err = 0;

	while ((c = getopt_long(argc, argv, "l:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'l':
			if (floor_parse_level(optarg, &level)) {
				fprintf(stderr, "floor: bad --level '%s'\n", optarg);
				return 2;
			}
			break;
		case 'h':
			floor_usage(stdout);
			return 0;
		default:
			floor_usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		floor_usage(stderr);
		return 2;
	}

	/* Block the signals first: one that arrives during the load is not lost. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) {
		fprintf(stderr, "floor: failed to block signals: %s\n", strerror(errno));
		return 1;
	}
	libbpf_set_print(floor_libbpf_print);
	err = floor_mount_tracefs();
	if (err) {
		fprintf(stderr, "floor: failed to mount tracefs at %s: %s\n", FLOOR_TRACEFS,
			strerror(-err));
		goto out;
	}
	skel = sessrec_floor__open();
	if (!skel) {
		err = -errno;
		fprintf(stderr, "floor: failed to open the BPF object: %s\n", strerror(-err));
		goto out;
	}
	skel->rodata->session_level = level;
	err = sessrec_floor__load(skel);
	if (err) {
		fprintf(stderr, "floor: failed to load the BPF programs: %s\n", strerror(-err));
		goto out;
	}
	err = sessrec_floor__attach(skel);
	if (err) {
		fprintf(stderr, "floor: failed to attach the BPF programs: %s\n", strerror(-err));
		goto out;
	}
	if (printf("ready\n") < 0 || fflush(stdout) == EOF) {
		err = -EIO;
		fprintf(stderr, "floor: failed to report readiness on stdout\n");
		goto out;
	}
	if (sigwait(&set, &sig) != 0) {
		err = -EINTR;
		fprintf(stderr, "floor: failed to wait for a signal\n");
		goto out;
	}
out:
	sessrec_floor__destroy(skel);
	return err ? 1 : 0;
}
