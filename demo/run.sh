#!/bin/bash
# make run: a collector and an agent for trying sessrec by hand, until Ctrl-C.
#
# The collector runs in insecure_dev_mode on 127.0.0.1 (plain HTTP, no tokens: every
# request acts as every role) with embedded storage; the agent uploads to it and has a
# BPF pin directory, cgroup root and socket of its own, so that an agent already
# running on this machine is not disturbed. State (recordings, index, logs) stays in
# the state directory from one run to the next. Prints how to record and read sessions,
# then follows both logs; Ctrl-C (or SIGTERM) stops both.
#
# Run as root after `make` (or through `make run`). Environment:
#   SESSREC_BUILD     build directory with bin/ (default: build/ next to this folder)
#   RUN_DIR           state directory (default /var/lib/sessrec-run)
#   RUN_PORT          the collector's port on 127.0.0.1 (default 18443, else a free one)
#   RUN_METRICS_PORT  the agent's metrics port (default 19464, else a free one)
set -u
umask 022
NAME=sessrec_run PROG=run # used by lib.sh
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

DIR=${RUN_DIR:-/var/lib/sessrec-run}
TAIL_PID='' SLEEP_PID=''

# shellcheck disable=SC2317 # run by the trap
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	trap '' INT TERM
	stop "log follower" "$TAIL_PID" 2
	stop sleep "$SLEEP_PID" 2
	# The agent finishes the open sessions' recordings; their programs go on, unrecorded.
	stop sessrec-agent "$AGENT_PID" 15
	stop sessrec-collector "$COLLECTOR_PID" 15
	agent_owned_lock && remove_agent_leftovers
	[ -n "$AGENT_PID" ] && say "stopped; state kept in $DIR (remove it to start afresh)"
	exit "$rc"
}
trap cleanup EXIT
trap 'printf "\n"; exit 0' INT
trap 'exit 0' TERM

preflight curl python3 flock
[ -d "$DIR" ] || { mkdir -p "$(dirname "$DIR")" && mkdir -m 700 "$DIR"; } || fail "cannot create $DIR"

# The ports asked for (or the defaults) when they are free, else free ones.
read -r COLLECTOR_PORT <<<"$(ports 0 "${RUN_PORT:-18443}")"
read -r METRICS_PORT <<<"$(ports 0 "${RUN_METRICS_PORT:-19464}")"
if [ -z "$COLLECTOR_PORT" ] || [ -z "$METRICS_PORT" ]; then
	fail "cannot find free ports on 127.0.0.1"
fi

for try in 1 2 3 4; do
	start_collector "$DIR/collector" "$COLLECTOR_PORT" && break
	[ $try = 4 ] && fail "sessrec-collector: no free port after 4 tries" "$DIR/collector/collector.log"
	COLLECTOR_PORT=$(ports 1)
done
URL=http://127.0.0.1:$COLLECTOR_PORT

for try in 1 2 3 4; do
	start_agent "$DIR/agent" "$METRICS_PORT" "$URL" && break
	[ $try = 4 ] && fail "sessrec-agent: no free port after 4 tries" "$DIR/agent/agent.log"
	METRICS_PORT=$(ports 1)
done

cat <<EOF

${B}sessrec is running${N}
  collector  $URL  (insecure_dev_mode: plain HTTP, no tokens), pid $COLLECTOR_PID
  agent      socket $DIR/agent/agent.sock, metrics http://127.0.0.1:$METRICS_PORT/metrics, pid $AGENT_PID
  state      $DIR (kept from one run to the next)

${B}In another terminal, as root:${N}
  export PATH=$BIN:\$PATH
  export SESSREC_URL=$URL SESSREC_AGENT_SOCKET=$DIR/agent/agent.sock

  sessrec run -- bash            # a recorded shell: work, then exit
  sessrec ls -w                  # the sessions on the collector, with their risk
  sessrec events SID             # commands, files, connections (--type command, ...)
  sessrec play SID               # the terminal, replayed
  sessrec summary SID            # the built-in summary and risk assessment
  sessrec audit tail -f          # the collector's audit log

${B}Ctrl-C stops both.${N} Their logs follow:
EOF
tail -n 0 -F "$DIR/collector/collector.log" "$DIR/agent/agent.log" 2>/dev/null &
TAIL_PID=$!

# Until Ctrl-C, or until one of them stops on its own.
while alive "$AGENT_PID" && alive "$COLLECTOR_PID"; do
	sleep 0.5 &
	SLEEP_PID=$!
	wait "$SLEEP_PID" 2>/dev/null
done
alive "$AGENT_PID" || fail "sessrec-agent stopped" "$DIR/agent/agent.log"
fail "sessrec-collector stopped" "$DIR/collector/collector.log"
