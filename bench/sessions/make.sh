#!/bin/bash
# Record every bench/sessions/*.sh as a session of a running agent and print
# the recordings' paths, one per line.
#
#   bench/sessions/make.sh SOCKET DATA_DIR [OUT_DIR]
#
# SOCKET: the agent's socket; DATA_DIR: its data_dir (recordings are written to
# DATA_DIR/recordings/SID.rec). With OUT_DIR, each finished recording is also
# copied there as NAME.rec (build/bench/transcript reads build/bench/recordings
# by default) and that copy's path is printed. The sessrec CLI is taken from
# $SESSREC_BUILD/bin (default: build/ next to this script's repository).
# SESSIONS="install editor" limits the run to some scripts.
set -eu
if [ $# -lt 2 ]; then
	echo "usage: $0 SOCKET DATA_DIR [OUT_DIR]" >&2
	exit 2
fi
sock=$1 data=$2 out=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
build=${SESSREC_BUILD:-$here/../../build}
sessrec=$build/bin/sessrec
[ -x "$sessrec" ] || { echo "make.sh: $sessrec not found (run make)" >&2; exit 1; }
[ -n "$out" ] && mkdir -p "$out"
names=${SESSIONS:-$(cd "$here" && ls ./*.sh | sed -e 's|^\./||' -e 's|\.sh$||' | grep -vx -e make -e lib)}

for name in $names; do
	err=$(mktemp)
	rc=0
	# stdin from /dev/null: nobody types; the scripts show what a person would have typed
	"$sessrec" run --agent-socket "$sock" -- bash "$here/$name.sh" < /dev/null > /dev/null 2> "$err" || rc=$?
	sid=$(sed -n 's/^session \([0-9a-f-]\{36\}\).*/\1/p' "$err" | head -1)
	if [ -z "$sid" ]; then
		echo "make.sh: $name: no session id (exit $rc): $(head -3 "$err")" >&2
		rm -f "$err"
		exit 1
	fi
	rm -f "$err"
	rec=$data/recordings/$sid.rec
	# the agent finishes the recording shortly after the session ends
	ok=
	for _ in $(seq 1 150); do
		if [ -f "$rec" ] && "$sessrec" verify "$rec" > /dev/null 2>&1; then
			ok=1
			break
		fi
		sleep 0.2
	done
	if [ -z "$ok" ]; then
		echo "make.sh: $name: $rec not finished after 30 s" >&2
		exit 1
	fi
	if [ -n "$out" ]; then
		cp "$rec" "$out/$name.rec"
		rec=$out/$name.rec
	fi
	echo "$rec"
done
