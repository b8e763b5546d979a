# Shared by the bench/sessions/*.sh scripts (sourced, not run).
#
# Each script is one realistic terminal session, run inside `sessrec run` by
# make.sh. There is no network and no person at the keyboard: what a person
# would type is shown as a prompt line before each command (as a terminal
# echoes it), and downloads are simulated. Everything happens in a scratch
# directory that is removed at the end.
set -u
export TERM=xterm-256color LC_ALL=C.UTF-8 LANG=C.UTF-8
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOSTNAME=${HOSTNAME:-web-1}

W=$(mktemp -d /tmp/sessrec-bench.XXXXXX) || exit 1
trap 'exec 9<&-; rm -rf "$W"' EXIT
cd "$W" || exit 1

# A pause without running anything: a read with a timeout on a FIFO nobody writes.
mkfifo "$W/.pause" && exec 9<>"$W/.pause"
pause() { read -r -t "$1" -u 9 || :; }

# What the interactive shell would show for a typed command: a coloured prompt and the line.
prompt() {
	local dir=${PWD/#$W/\~}
	printf '\033[01;32m%s@%s\033[00m:\033[01;34m%s\033[00m$ %s\n' "${USER:-root}" "$HOSTNAME" \
		"$dir" "$*"
}

# Show the prompt and run the command.
run() {
	prompt "$*"
	"$@"
}
