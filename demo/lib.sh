# shellcheck shell=bash
# Shared by demo/demo.sh and demo/run.sh (sourced, bash): find the programs, start
# them, wait for them, stop them by PID.
#
# The caller sets NAME (the pin directory and cgroup root name, e.g. sessrec_demo; the
# variables below are derived from it) and PROG (its name in messages).

: "${NAME:?}" "${PROG:?}"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD=${SESSREC_BUILD:-$HERE/../build}
BIN=$(cd "$BUILD/bin" 2>/dev/null && pwd) || BIN=$BUILD/bin
AGENT_BIN=$BIN/sessrec-agent
COLLECTOR_BIN=$BIN/sessrec-collector
SESSREC=$BIN/sessrec
PIN_DIR=/sys/fs/bpf/$NAME
AGENT_LOCK=/run/sessrec-agent-$NAME.lock # the agent's lock for this pin directory
CGROUP_ROOT=/cgroup2/$NAME               # enhanced_recording.cgroup_path (default) / root_path
WAIT_S=${WAIT_S:-60}                     # for a program to come up

COLLECTOR_PID='' AGENT_PID=''

if [ -t 1 ]; then B=$'\e[1m' N=$'\e[0m'; else B='' N=''; fi
say() { printf '%s\n' "$*"; }
heading() { printf '\n%s== %s%s\n' "$B" "$*" "$N"; }

# fail MESSAGE [LOG]: one line saying what went wrong (then the end of LOG), exit 1.
fail() {
	printf '%s: %s\n' "$PROG" "$1" >&2
	if [ -n "${2:-}" ] && [ -s "$2" ]; then
		printf '  last lines of %s:\n' "$2" >&2
		tail -n 15 "$2" | sed 's/^/    /' >&2
	fi
	exit 1
}

# Root, the programs, the tools; and no other agent on our pin directory.
preflight() {
	local b t
	[ "$(id -u)" = 0 ] || fail "run as root: the agent loads BPF programs (sudo make $PROG)"
	for b in "$AGENT_BIN" "$COLLECTOR_BIN" "$SESSREC"; do
		[ -x "$b" ] || fail "$b is missing: run make first (or set SESSREC_BUILD)"
	done
	for t in "$@"; do
		command -v "$t" >/dev/null || fail "$t is missing: run make deps"
	done
	if [ -e "$AGENT_LOCK" ] && ! flock -n "$AGENT_LOCK" true 2>/dev/null; then
		fail "an agent of another 'make $PROG' runs already (pid $(head -n 1 "$AGENT_LOCK" 2>/dev/null), $AGENT_LOCK)"
	fi
}

# Is this pid running (not a zombie waiting for us)?
alive() {
	local st
	[ -n "$1" ] && [ -r "/proc/$1/stat" ] || return 1
	read -r _ _ st _ <"/proc/$1/stat" 2>/dev/null || return 1
	[ "$st" != Z ] && [ "$st" != X ]
}

# stop NAME PID SECONDS: SIGTERM, wait, SIGKILL when it is still there.
stop() {
	local name=$1 pid=$2 i
	[ -n "$pid" ] || return 0
	if alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null
		for ((i = 0; i < $3 * 10; i++)); do
			alive "$pid" || break
			sleep 0.1
		done
		if alive "$pid"; then
			printf '%s: %s (pid %s) did not stop in %ss: killed\n' "$PROG" "$name" "$pid" "$3" >&2
			kill -KILL "$pid" 2>/dev/null
		fi
	fi
	wait "$pid" 2>/dev/null
	return 0
}

# Did our agent take the lock of our pin directory (it writes its pid there)? Then the
# pins and session cgroups under NAME are ours to clean up.
agent_owned_lock() {
	[ -n "$AGENT_PID" ] && [ "$(head -n 1 "$AGENT_LOCK" 2>/dev/null)" = "$AGENT_PID" ]
}

# Kill what still runs in our session cgroups.
kill_sessions() {
	local cg pid
	for cg in "$CGROUP_ROOT"/*/; do
		[ -f "$cg/cgroup.procs" ] || continue
		echo 1 >"$cg/cgroup.kill" 2>/dev/null ||
			while read -r pid; do kill -KILL "$pid" 2>/dev/null; done <"$cg/cgroup.procs"
	done
}

# After our agent stopped: what a killed agent left pinned, the pin directory, and the
# empty session cgroups and their root.
remove_agent_leftovers() {
	local i cg
	rm -f "$PIN_DIR"/* 2>/dev/null
	rmdir "$PIN_DIR" 2>/dev/null
	for ((i = 0; i < 20; i++)); do
		for cg in "$CGROUP_ROOT"/*/; do [ -d "$cg" ] && rmdir "$cg" 2>/dev/null; done
		rmdir "$CGROUP_ROOT" 2>/dev/null && break
		[ -d "$CGROUP_ROOT" ] || break
		sleep 0.1 # a killed session's processes are still going
	done
}

# ports N [PREFERRED]: N free loopback ports, all different, and with PREFERRED one more
# (PREFERRED when nothing listens there, else any).
ports() {
	python3 - "$@" <<'EOF'
import socket, sys
held, out = [], []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    held.append(s)
    out.append(s.getsockname()[1])
if len(sys.argv) > 2:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is no obstacle
    try:
        s.bind(("127.0.0.1", int(sys.argv[2])))
    except OSError:
        s.bind(("127.0.0.1", 0))
    held.append(s)
    out.append(s.getsockname()[1])
print(" ".join(map(str, out)))
EOF
}

healthy() { curl -fsS -m 2 -o /dev/null "$1"; }

# wait_up NAME PID LOG CHECK...: until CHECK succeeds. Fails when PID exits or after
# WAIT_S; returns 2 when it exited because its port was taken (pick another, retry).
wait_up() {
	local name=$1 pid=$2 log=$3 i
	shift 3
	for ((i = 0; i < WAIT_S * 10; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		if ! alive "$pid"; then
			wait "$pid" 2>/dev/null
			grep -qi 'in use' "$log" 2>/dev/null && return 2
			fail "$name exited at start" "$log"
		fi
		sleep 0.1
	done
	fail "$name did not come up in ${WAIT_S}s" "$log"
}

# start_collector DIR PORT: a collector on 127.0.0.1:PORT in insecure_dev_mode, data
# in DIR/data, log DIR/collector.log. Sets COLLECTOR_PID; returns 2 when PORT was taken.
start_collector() {
	mkdir -p "$1"
	cat >"$1/collector.yaml" <<EOF
listen: "127.0.0.1:$2"
data_dir: "$1/data"
store: local
insecure_dev_mode: true
request_timeout: 10s
EOF
	"$COLLECTOR_BIN" -c "$1/collector.yaml" </dev/null >>"$1/collector.log" 2>&1 &
	COLLECTOR_PID=$!
	wait_up sessrec-collector "$COLLECTOR_PID" "$1/collector.log" healthy "http://127.0.0.1:$2/healthz"
}

# start_agent DIR METRICS_PORT COLLECTOR_URL: an agent with state in DIR (data,
# audit.log, agent.sock, agent.log), pinned under PIN_DIR, sessions under CGROUP_ROOT.
# Sets AGENT_PID; returns 2 when METRICS_PORT was taken.
start_agent() {
	mkdir -p "$1"
	chmod 755 "$1"
	cat >"$1/agent.yaml" <<EOF
data_dir: "$1/data"
audit_log: "$1/audit.log"
socket: "$1/agent.sock"
metrics_listen: "127.0.0.1:$2"
part_interval: 1s
enhanced_recording:
  pin_path: "$PIN_DIR"
  root_path: "$NAME"
collector:
  url: "$3"
EOF
	"$AGENT_BIN" -c "$1/agent.yaml" </dev/null >>"$1/agent.log" 2>&1 &
	AGENT_PID=$!
	wait_up sessrec-agent "$AGENT_PID" "$1/agent.log" agent_ready "$1/agent.sock" "$2"
}
agent_ready() { [ -S "$1" ] && healthy "http://127.0.0.1:$2/healthz"; }
