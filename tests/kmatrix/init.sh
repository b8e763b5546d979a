#!/bin/sh
# /init of the kernel-matrix guest (busybox sh). Runs sessrec's real agent and CLI on
# the booted kernel, prints everything the host judges between KMATRIX-* markers on the
# serial console, and powers off. The host (kmatrix.py check) decides PASS or FAIL.
export PATH=/bin:/sbin
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu
export HOME=/root TERM=dumb

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
mkdir -p /dev/pts /run /tmp
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
# Keep kernel messages off the console so that they cannot cut into the event lines.
echo 1 >/proc/sys/kernel/printk
hostname kmatrix

rc=0
fail() { echo "KMATRIX-FAIL $*"; rc=1; }
# Print a file whole when it is short, else its head and tail.
show() {
	n=$(wc -l <"$1")
	if [ "$n" -le 400 ]; then
		cat "$1"
	else
		head -n 150 "$1"
		echo "... ($((n - 400)) lines left out)"
		tail -n 250 "$1"
	fi
}

echo
echo "KMATRIX-BEGIN kernel=$(uname -r)"

# How long the agent may take to come up (loading BPF under emulation is slow):
# kmatrix.agent_wait=SECONDS on the kernel command line, default 40.
wait_s=$(sed -n 's/.*kmatrix\.agent_wait=\([0-9][0-9]*\).*/\1/p' /proc/cmdline)
wait_s=${wait_s:-40}

sessrec-agent -c /etc/agent.yaml >/tmp/agent.log 2>&1 &
agent=$!
up=1
t0=$(cut -d' ' -f1 /proc/uptime)
deadline=$((${t0%.*} + wait_s))
while [ "$(cut -d. -f1 /proc/uptime)" -lt $deadline ]; do
	if [ -S /run/sessrec/agent.sock ]; then
		up=0
		break
	fi
	kill -0 $agent 2>/dev/null || break
	sleep 0.1
done
# 0 up, 1 exited, 2 still starting when the wait ran out
[ -S /run/sessrec/agent.sock ] && up=0
[ $up = 1 ] && kill -0 $agent 2>/dev/null && up=2
echo "KMATRIX-AGENT-STARTED rc=$up"
echo "KMATRIX-AGENT-STARTUP from=$t0 to=$(cut -d' ' -f1 /proc/uptime) (uptime seconds)"

if [ $up = 0 ]; then
	# The recorded session: a successful exec (/bin/sh), a failed one (ENOENT), an
	# open (/etc/hostname), terminal output and an exit status.
	echo | timeout 20 sessrec run --agent-socket /run/sessrec/agent.sock -- \
		/bin/sh -c 'cat /etc/hostname; /bin/nonexistent; echo kmatrix-out; exit 3' \
		>/tmp/run.out 2>/tmp/run.err
	echo "KMATRIX-RUN rc=$?"
	echo "KMATRIX-RUN-OUTPUT-BEGIN"
	cat /tmp/run.out /tmp/run.err
	echo "KMATRIX-RUN-OUTPUT-END"
	# The agent finishes a session once its cgroup is empty and the launcher has
	# closed it: wait for that (up to 10 s) before testing the shutdown path, so that
	# the two are judged apart.
	sid=$(sed -n 's/^session //p' /tmp/run.err | head -n 1)
	ended=1
	i=0
	while [ -n "$sid" ] && [ $i -lt 100 ]; do
		if grep -q "session $sid ended" /tmp/agent.log; then
			ended=0
			break
		fi
		sleep 0.1
		i=$((i + 1))
	done
	echo "KMATRIX-SESSION-ENDED rc=$ended"
else
	fail "agent did not come up"
fi

kill -TERM $agent 2>/dev/null
# SIGTERM finishes every open recording; give it 15 s, then kill it.
( sleep 15; kill -KILL $agent 2>/dev/null ) &
watchdog=$!
wait $agent
echo "KMATRIX-AGENT-EXIT rc=$?"
kill $watchdog 2>/dev/null

echo "KMATRIX-AGENT-LOG-BEGIN"
show /tmp/agent.log
echo "KMATRIX-AGENT-LOG-END"

rec=$(ls /tmp/data/recordings/*.rec 2>/dev/null | head -n 1)
if [ -n "$rec" ]; then
	sessrec verify "$rec"
	echo "KMATRIX-VERIFY rc=$?"
	sessrec events --json "$rec" >/tmp/events.json 2>/tmp/events.err
	echo "KMATRIX-EVENTS rc=$?"
	cat /tmp/events.err
	echo "KMATRIX-EVENTS-BEGIN"
	cat /tmp/events.json
	echo "KMATRIX-EVENTS-END"
else
	fail "no recording under /tmp/data/recordings"
	ls -la /tmp/data /tmp/data/recordings 2>&1
fi

if [ $rc != 0 ] || grep -qE ' (error|warn): ' /tmp/agent.log; then
	echo "KMATRIX-DMESG-BEGIN"
	dmesg | grep -iE 'bpf|btf|warn|error|bug|fault|denied|cgroup' | tail -n 40
	echo "KMATRIX-DMESG-END"
fi
echo "KMATRIX-RESULT rc=$rc"
sync
poweroff -f
