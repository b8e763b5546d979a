#!/bin/bash
# A shell with many short commands, as an administrator looks around a
# server and fixes a small thing: listings, processes, disk and memory, logs,
# a git repository, files created, copied and removed, a service health check
# over the network, and a loop that runs the same command many times.
. "$(dirname "$0")/lib.sh"

mkdir -p srv/logs srv/conf srv/data
for i in $(seq 1 12); do
	for j in $(seq 1 40); do
		printf '2026-11-22T10:%02d:%02dZ %s request id=%d path=/api/v1/items/%d status=%d ms=%d\n' \
			$((j % 60)) $((i * 3 % 60)) "$([ $((j % 9)) = 0 ] && echo WARN || echo INFO)" \
			$((i * 1000 + j)) $((j * 7)) $([ $((j % 13)) = 0 ] && echo 500 || echo 200) $((j * 3 % 250))
	done > srv/logs/app-$i.log
done
printf 'port: 8080\nworkers: 4\nlog_level: info\n' > srv/conf/app.yaml

run uname -a
run id
run uptime
run pwd
run ls
run ls -la srv
run ls -la /etc | head -25
run df -h
run free -m
run ps -eo pid,user,stat,etime,comm --sort=-%cpu | head -15
run cat /etc/os-release
run grep -c ERROR srv/logs/app-1.log
prompt 'grep -h WARN srv/logs/app-*.log | tail -5'
grep -h WARN srv/logs/app-*.log | tail -5
prompt 'wc -l srv/logs/*.log'
wc -l srv/logs/*.log
run head -3 srv/logs/app-2.log
run tail -3 srv/logs/app-12.log
run awk '{print $4}' srv/logs/app-3.log | sort | uniq -c | sort -rn | head -5
run cat srv/conf/app.yaml
run sed -i 's/log_level: info/log_level: debug/' srv/conf/app.yaml
run diff <(printf 'port: 8080\nworkers: 4\nlog_level: info\n') srv/conf/app.yaml
run cp srv/conf/app.yaml srv/conf/app.yaml.bak
run mv srv/conf/app.yaml.bak srv/data/
run find srv -name '*.yaml'
prompt 'du -sh srv/*'
du -sh srv/*
run tar czf logs.tgz srv/logs
run ls -l logs.tgz
run sha256sum logs.tgz
run mkdir -p repo
cd repo || exit 1
run git init -q
printf '# tools\n' > README.md
run git add README.md
run git -c user.name=alice -c user.email=alice@example.com commit -qm 'add readme'
run git log --oneline
run git status --short
cd .. || exit 1
run ss -tln
run ip -brief addr
run curl -sS --connect-timeout 1 http://127.0.0.1:8080/healthz
run curl -sS --connect-timeout 1 http://198.51.100.20:9200/_cluster/health
prompt 'for i in $(seq 1 100); do ls srv/data > /dev/null; done'
for i in $(seq 1 100); do ls srv/data > /dev/null; done
prompt 'for f in srv/logs/*.log; do gzip -k "$f"; done'
for f in srv/logs/*.log; do gzip -k "$f"; done
run ls srv/logs
prompt 'rm -f srv/logs/*.gz logs.tgz'
rm -f srv/logs/*.gz logs.tgz
run date -u
run printenv HOME SHELL TERM LANG
run echo done
exit 0
