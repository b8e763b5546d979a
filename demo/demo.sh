#!/bin/bash
# make demo: the whole of sessrec on one machine, with nothing left behind.
#
# Starts a collector (embedded storage, insecure_dev_mode on 127.0.0.1) and an agent
# with temporary state and a BPF pin directory of their own (an agent already running
# on this machine is not disturbed), and a small web server on 127.0.0.1; runs the
# scripted session demo/session.sh through `sessrec run`; waits until the collector has
# the session and its built-in summary; prints what sessrec knows about it; stops
# everything it started (also on a failure or Ctrl-C) and removes its temporary
# directory.
#
# Run as root after `make` (or through `make demo`). Environment:
#   SESSREC_BUILD  build directory with bin/ (default: build/ next to this folder)
#   DEMO_KEEP=1    keep the temporary directory (configs, logs, collector data)
#   DEMO_SESSION   another script to run as the session (default demo/session.sh)
#   TMPDIR         where the temporary directory goes (default /tmp)
set -u
umask 022
NAME=sessrec_demo PROG=demo # used by lib.sh
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

KEEP=${DEMO_KEEP:-0}
SESSION=${DEMO_SESSION:-$HERE/session.sh}
# Files that every program opens: left out of the list of the session's files.
BORING_FILES=' (/usr)?/lib(32|64|x32)?/| /etc/ld\.so\.| /usr/share/(locale|zoneinfo|terminfo)/| /(proc|sys|dev)/| /etc/(nsswitch\.conf|passwd|group|localtime|host\.conf|gai\.conf|resolv\.conf|hosts|ssl/)|/\.?curlrc '
T='' WEB_PID='' RUN_PID='' DONE=0

cleanup() {
	local rc=$? owned=0
	trap - EXIT INT TERM
	trap '' INT TERM # a second Ctrl-C does not cut the cleanup short
	# A session still running (Ctrl-C) goes first: the agent would leave it running.
	agent_owned_lock && owned=1
	[ $owned = 1 ] && kill_sessions
	stop "sessrec run" "$RUN_PID" 5
	stop "web server" "$WEB_PID" 5
	stop sessrec-agent "$AGENT_PID" 15
	stop sessrec-collector "$COLLECTOR_PID" 15
	[ $owned = 1 ] && remove_agent_leftovers
	if [ -n "$T" ] && [ -d "$T" ]; then
		if [ "$KEEP" = 1 ]; then
			printf '%s: kept %s (configs, logs, collector data)\n' "$PROG" "$T" >&2
		else
			rm -rf "$T"
		fi
	fi
	if [ $DONE = 1 ]; then
		heading "Done"
		say "The collector, the agent and the web server are stopped, the temporary files gone."
		say "To record sessions of your own: make run"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'printf "\n%s: interrupted: stopping what it started\n" "$PROG" >&2; exit 130' INT
trap 'printf "%s: terminated: stopping what it started\n" "$PROG" >&2; exit 143' TERM

preflight curl python3 base64 flock
[ -r "$SESSION" ] || fail "$SESSION: no such session script"

T=$(mktemp -d "${TMPDIR:-/tmp}/sessrec-demo.XXXXXX") || fail "cannot create a temporary directory"
chmod 755 "$T"
mkdir -p "$T/www" "$T/home/.aws"
cp "$HERE/setup.sh" "$T/www/setup.sh"
cat >"$T/home/.aws/credentials" <<'EOF'
[default]
aws_access_key_id = AKIAIOSFODNN7EXAMPLE
aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
EOF
chmod 600 "$T/home/.aws/credentials"

# Loopback ports: collector, agent metrics, web server; and one where nothing listens
# (the session tries to send the credentials there): 4444 when it is free.
read -r COLLECTOR_PORT METRICS_PORT WEB_PORT CLOSED_PORT <<<"$(ports 3 4444)"
[ -n "$CLOSED_PORT" ] || fail "cannot find free ports on 127.0.0.1"

# Each program gets another port when someone took its port meanwhile.
for try in 1 2 3 4; do
	start_collector "$T/collector" "$COLLECTOR_PORT" && break
	[ $try = 4 ] && fail "sessrec-collector: no free port after 4 tries" "$T/collector/collector.log"
	COLLECTOR_PORT=$(ports 1)
done
export SESSREC_URL=http://127.0.0.1:$COLLECTOR_PORT
unset SESSREC_TOKEN SESSREC_CA SESSREC_AGENT_SOCKET

for try in 1 2 3 4; do
	start_agent "$T/agent" "$METRICS_PORT" "$SESSREC_URL" && break
	[ $try = 4 ] && fail "sessrec-agent: no free port after 4 tries" "$T/agent/agent.log"
	METRICS_PORT=$(ports 1)
done

start_web() {
	python3 -m http.server "$WEB_PORT" --bind 127.0.0.1 --directory "$T/www" \
		</dev/null >>"$T/web.log" 2>&1 &
	WEB_PID=$!
	wait_up "web server" "$WEB_PID" "$T/web.log" healthy "http://127.0.0.1:$WEB_PORT/setup.sh"
}
for try in 1 2 3 4; do
	start_web && break
	[ $try = 4 ] && fail "web server: no free port after 4 tries" "$T/web.log"
	WEB_PORT=$(ports 1)
done

heading "sessrec demo"
say "collector   $SESSREC_URL  (insecure_dev_mode: no TLS, no tokens), pid $COLLECTOR_PID"
say "agent       socket $T/agent/agent.sock, metrics http://127.0.0.1:$METRICS_PORT/metrics, pid $AGENT_PID"
say "web server  http://127.0.0.1:$WEB_PORT/setup.sh  (what the session downloads), pid $WEB_PID"

# ------------------------------------------------------------------ the session
heading "A recorded session: sessrec run -- bash $(basename "$SESSION")"
if [ -z "${DEMO_SESSION:-}" ]; then
	say "ls, id, uname -a, cat /etc/os-release, curl ... | sh, cat ~/.aws/credentials, an"
	say "attempt to upload them, echo ... | base64 -d | sh (the replay below shows it all)"
fi
# Not on the terminal: keys typed meanwhile stay with the demo. In the background, so
# that Ctrl-C interrupts the `wait` at once (and the cleanup kills the session).
HOME=$T/home LC_ALL=C TERM=${TERM:-xterm} DEMO_WEB=http://127.0.0.1:$WEB_PORT DEMO_CLOSED_PORT=$CLOSED_PORT \
	"$SESSREC" run --agent-socket "$T/agent/agent.sock" -- bash "$SESSION" \
	</dev/null >"$T/session.out" 2>"$T/session.err" &
RUN_PID=$!
wait "$RUN_PID"
rc=$?
SID=$(sed -n 's/^session \([0-9a-f-]\{36\}\)$/\1/p' "$T/session.err" | head -n 1)
[ -n "$SID" ] || fail "sessrec run did not open a session (exit $rc): $(head -n 1 "$T/session.err")" "$T/agent/agent.log"
say "session $SID ended (exit $rc); waiting for its upload and summary ..."

for ((i = 0; i < WAIT_S * 5; i++)); do
	"$SESSREC" summary "$SID" >"$T/summary.txt" 2>"$T/summary.err" && break
	alive "$AGENT_PID" || fail "sessrec-agent died" "$T/agent/agent.log"
	alive "$COLLECTOR_PID" || fail "sessrec-collector died" "$T/collector/collector.log"
	sleep 0.2
done
[ -s "$T/summary.txt" ] || fail "no summary of session $SID after ${WAIT_S}s: $(head -n 1 "$T/summary.err")" \
	"$T/collector/collector.log"

# ------------------------------------------------------------------ what sessrec knows
heading "sessrec ls"
"$SESSREC" ls

heading "Its commands: sessrec events $SID --type command"
"$SESSREC" events "$SID" --type command

heading "Its connections: sessrec events $SID --type network"
"$SESSREC" events "$SID" --type network

# Every program opens its shared libraries, locales and the like: hundreds of lines
# that say nothing about the session. The rest is what it read and wrote.
heading "Its files: sessrec events $SID --type disk  (without libraries, locales, ...)"
"$SESSREC" events "$SID" --type disk | grep -Ev "$BORING_FILES"

heading "Replay: sessrec play $SID --speed 0 | head -40"
"$SESSREC" play "$SID" --speed 0 | head -n 40

heading "Built-in summary and risk assessment: sessrec summary $SID"
cat "$T/summary.txt"
DONE=1
