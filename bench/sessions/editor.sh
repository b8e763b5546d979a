#!/bin/bash
# An editing session: vim (full-screen, alternate screen, syntax colours)
# driven by a script of keystrokes (vim -s) as a person would type them:
# editing an nginx site config, then moving around a longer Python file,
# deleting, pasting, searching and undoing; git shows the diff in colour and
# top runs for a few refreshes. Without vim, a small program that redraws the
# screen with cursor addressing stands in for it.
. "$(dirname "$0")/lib.sh"

mkdir -p app/conf && cd app || exit 1
cat > conf/site.conf <<'CONF'
server {
    listen 80;
    server_name example.com www.example.com;
    root /var/www/example;

    location / {
        try_files $uri $uri/ =404;
    }
}
CONF
{
	printf '#!/usr/bin/env python3\n"""Inventory service."""\nimport json\nimport sys\n\n'
	for i in $(seq 1 60); do
		printf 'def handler_%d(request):\n    """Handle request kind %d."""\n    data = json.loads(request.body)\n    if not data.get("id"):\n        return {"status": 400, "error": "missing id"}\n    return {"status": 200, "item": data["id"], "kind": %d}\n\n\n' "$i" "$i" "$i"
	done
	printf 'if __name__ == "__main__":\n    sys.exit(main())\n'
} > service.py
git init -q . && git add . && git -c user.name=alice -c user.email=alice@example.com commit -qm initial

# keystrokes: what a person types in vim (\033 is Esc, \r is Enter)
printf '/listen\rwcw8443 ssl\033:%%s/example\\.com/app.internal/g\r' > keys1
printf 'Gko    location /api/ {\r    proxy_pass http://127.0.0.1:8080;\r}\033' >> keys1
printf ':w\r:q\r' >> keys1
printf 'gg' > keys2
# vim redraws once the keys read ahead run out; a person types slower: :redraw after each
for i in $(seq 1 40); do printf '\006:redraw\r' >> keys2; done    # Ctrl-F, page by page
printf 'gg/handler_17\rjjddjjp' >> keys2
for i in $(seq 1 15); do printf '\004:redraw\r' >> keys2; done    # Ctrl-D, half pages
printf '/handler_42\rcwworker_42\033:w\r' >> keys2
printf 'uu\022:w\r:q\r' >> keys2                         # undo twice, redo (Ctrl-R)

prompt "vim conf/site.conf"
if command -v vim > /dev/null; then
	vim --clean -i NONE -n -s keys1 conf/site.conf
	prompt "vim service.py"
	vim --clean -i NONE -n -s keys2 service.py
else
	# a stand-in: the alternate screen, a full draw, then redraws of a few rows
	printf '\033[?1049h\033[H\033[2J'
	for frame in $(seq 1 30); do
		printf '\033[H'
		head -n 23 service.py | while IFS= read -r l; do printf '%s\033[K\r\n' "$l"; done
		printf '\033[24;1H\033[7m-- frame %d --\033[0m\033[K' "$frame"
	done
	printf '\033[?1049l'
fi
run git --no-pager diff --stat
run git -c color.ui=always --no-pager diff conf/site.conf
prompt "top -d 0.3 -n 4"
top -d 0.3 -n 4
run cat conf/site.conf
exit 0
