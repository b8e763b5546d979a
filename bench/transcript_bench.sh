#!/bin/bash
# `make bench`, transcripts: record the scripted sessions of bench/sessions
# with an agent of its own (its own BPF pin directory, so it runs beside any
# other agent), then measure transcript size against raw terminal output.
#
#   bench/transcript_bench.sh BUILD_DIR
set -eu
build=${1:?usage: $0 BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d /tmp/sessrec-txbench.XXXXXX)
pid=
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid"
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
cat > "$tmp/agent.yaml" <<CFG
data_dir: $tmp/data
audit_log: $tmp/audit.log
socket: $tmp/agent.sock
metrics_listen: ""
enhanced_recording:
  pin_path: /sys/fs/bpf/sessrec_txbench
  root_path: sessrec_txbench
CFG
"$build/bin/sessrec-agent" -c "$tmp/agent.yaml" > "$tmp/agent.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
	[ -S "$tmp/agent.sock" ] && break
	kill -0 "$pid" 2>/dev/null || { tail -5 "$tmp/agent.log" >&2; exit 1; }
	sleep 0.1
done
[ -S "$tmp/agent.sock" ] || { echo "transcript bench: the agent did not start" >&2; exit 1; }
mkdir -p "$build/bench/recordings"
SESSREC_BUILD=$build "$here/sessions/make.sh" "$tmp/agent.sock" "$tmp/data" \
	"$build/bench/recordings" > /dev/null
kill -TERM "$pid"
wait "$pid" 2>/dev/null || true
pid=
"$build/bench/transcript" "$build/bench/recordings"
