#!/bin/bash
# A package installation as apt and pip show it: package lists fetched with a
# progress line redrawn in place (\r), dpkg's "Progress: [ 40%]" bar kept on
# the bottom row in a scroll region, colours, then Python packages with
# rich-style download bars. The mirror is contacted once (a TEST-NET address:
# it fails fast) so that the recording holds a real network event; the
# downloads themselves are simulated.
. "$(dirname "$0")/lib.sh"

pkgs=(libssl3 libcurl4 libnghttp2-14 librtmp1 libssh2-1 libpsl5 publicsuffix ca-certificates
	curl libjansson4 libyaml-0-2 python3-yaml libpython3.11-minimal libpython3.11-stdlib
	python3.11 python3-pip python3-setuptools python3-wheel libexpat1 zlib1g liblz4-1 libzstd1
	nginx-common nginx libgd3 libxpm4 libwebp7 libtiff6 libjpeg62-turbo fontconfig-config
	fonts-dejavu-core libfontconfig1 libfreetype6 libpng16-16 libx11-6 libx11-data libxau6
	libxcb1 libxdmcp6 libbsd0 libmd0 libdeflate0 libjbig0 liblerc4 libsharpyuv0)

# a row of n copies of a character, without running anything
rep() { printf -v REP '%*s' "$1" ''; REP=${REP// /$2}; }

prompt "sudo apt-get update"
curl -sS --connect-timeout 1 -o /dev/null http://192.0.2.10/debian/dists/bookworm/InRelease 2>&1 |
	sed 's/^/W: /'
for i in 1 2 3 4; do
	for p in 0 9 18 27 36 45 54 63 72 81 90 99; do
		printf '\r%d%% [%d InRelease %d kB/%d kB %d%%]\033[K' $((i * 20 + p / 5)) "$i" \
			$((p * 15 / 10)) 151 "$p"
		pause 0.005
	done
	printf '\rGet:%d http://deb.debian.org/debian bookworm%s InRelease [151 kB]\033[K\n' "$i" \
		"$([ $i = 1 ] && echo "" || echo "-updates")"
done
for ((i = 5; i <= 9; i++)); do
	for ((p = 0; p <= 100; p += 4)); do
		printf '\r%d%% [%d Packages %d kB/8,792 kB %d%%]\033[K' $((60 + i * 4)) "$i" $((p * 88)) "$p"
	done
	printf '\rGet:%d http://deb.debian.org/debian bookworm/main amd64 Packages [8,792 kB]\033[K\n' "$i"
done
printf 'Fetched 9,561 kB in 3s (3,187 kB/s)\n'
for p in 0 3 12 45 78 99 100; do printf '\rReading package lists... %d%%' $p; done
printf '\rReading package lists... Done\033[K\n'

prompt "sudo apt-get install -y nginx python3-pip"
for p in 0 25 50 75 100; do printf '\rReading package lists... %d%%' $p; done
printf '\rReading package lists... Done\033[K\n'
for p in 0 50 100; do printf '\rBuilding dependency tree... %d%%' $p; done
printf '\rBuilding dependency tree... Done\033[K\n'
printf 'Reading state information... Done\n'
printf 'The following additional packages will be installed:\n'
printf '  %s\n' "${pkgs[*]:0:12}" "${pkgs[*]:12:12}" "${pkgs[*]:24:12}" "${pkgs[*]:36}"
printf 'Suggested packages:\n  fcgiwrap nginx-doc ssl-cert python3-venv\n'
printf 'The following NEW packages will be installed:\n'
printf '  %s\n' "${pkgs[*]:0:12}" "${pkgs[*]:12:12}" "${pkgs[*]:24:12}" "${pkgs[*]:36}"
printf '0 upgraded, %d newly installed, 0 to remove and 3 not upgraded.\n' "${#pkgs[@]}"
printf 'Need to get 24.6 MB of archives.\nAfter this operation, 98.3 MB of additional disk space will be used.\n'
n=1
for p in "${pkgs[@]}"; do
	size=$(((n * 7919) % 2900 + 40))
	for pct in 0 20 40 60 80 100; do
		printf '\r%d%% [%d %s %d kB/%d kB %d%%]\033[K' $((n * 100 / ${#pkgs[@]})) "$n" "$p" \
			$((size * pct / 100)) "$size" "$pct"
	done
	printf '\rGet:%d http://deb.debian.org/debian bookworm/main amd64 %s amd64 1.%d.%d-1 [%d kB]\033[K\n' \
		"$n" "$p" $((n % 9)) $((n % 4)) "$size"
	n=$((n + 1))
done
printf 'Fetched 24.6 MB in 4s (6,141 kB/s)\n'
# dpkg: the progress bar lives on the bottom row, outside the scroll region
rows=24
printf '\0337\033[0;%dr\0338\033[1A' $((rows - 1))
bar() {
	local pct=$1 w=60 fill done
	fill=$((pct * w / 100))
	rep "$fill" '#'
	done=$REP
	rep $((w - fill)) '.'
	printf '\0337\033[%d;0f\033[42m\033[30mProgress: [%3d%%]\033[49m\033[39m [%s%s] \0338' "$rows" \
		"$pct" "$done" "$REP"
}
total=$((${#pkgs[@]} * 2))
step=0
printf 'Selecting previously unselected package %s.\n' "${pkgs[0]}"
for pct in 0 5 10 15 20 25 30 35 40 45 50 55 60 65 70 75 80 85 90 95 100; do
	printf '\r(Reading database ... %d%%' "$pct"
done
printf '\r(Reading database ... 28411 files and directories currently installed.)\n'
for p in "${pkgs[@]}"; do
	printf 'Preparing to unpack .../%s_1.0-1_amd64.deb ...\n' "$p"
	printf 'Unpacking %s (1.0-1) ...\n' "$p"
	step=$((step + 1))
	bar $((step * 100 / total))
	pause 0.002
done
for p in "${pkgs[@]}"; do
	printf 'Setting up %s (1.0-1) ...\n' "$p"
	step=$((step + 1))
	bar $((step * 100 / total))
done
printf 'Processing triggers for man-db (2.11.2-2) ...\nProcessing triggers for libc-bin (2.36-9+deb12u4) ...\n'
printf '\0337\033[0;%dr\0338\033[1A\033[J' "$rows"

prompt "pip install --user requests rich pyyaml"
for spec in "requests 2.31.0 62.6 kB" "charset_normalizer 3.3.2 142.1 kB" "idna 3.6 61.6 kB" \
	"urllib3 2.1.0 104.6 kB" "certifi 2023.11.17 162.5 kB" "rich 13.7.0 240.6 kB" \
	"markdown_it_py 3.0.0 87.5 kB" "pygments 2.17.2 1.2 MB" "mdurl 0.1.2 10.0 kB" \
	"PyYAML 6.0.1 757.7 kB"; do
	set -- $spec
	printf 'Collecting %s\n' "$1"
	printf '  Downloading %s-%s-py3-none-any.whl (%s %s)\n' "$1" "$2" "$3" "$4"
	for ((i = 0; i <= 40; i += 2)); do
		rep "$i" '━'
		done_bar=$REP
		rep $((40 - i)) '━'
		todo_bar=$REP
		printf '\r\033[2K     \033[38;5;197m%s\033[0m\033[38;5;237m%s\033[0m \033[32m%d/%s %s\033[0m \033[31m%d.%d MB/s\033[0m eta \033[36m0:00:0%d\033[0m' \
			"$done_bar" "$todo_bar" $((i * 25 / 10)) "$3" "$4" $((i % 5 + 1)) $((i % 10)) $(((40 - i) / 8))
	done
	rep 40 '━'
	printf '\r\033[2K     \033[38;2;114;156;31m%s\033[0m \033[32m%s/%s %s\033[0m \033[31m3.1 MB/s\033[0m eta \033[36m0:00:00\033[0m\n' \
		"$REP" "$3" "$3" "$4"
done
printf 'Installing collected packages: mdurl, urllib3, PyYAML, pygments, idna, charset_normalizer, certifi, requests, markdown_it_py, rich\n'
for s in '|' '/' '-' '\' '|' '/' '-' '\'; do printf '\r%s' "$s"; pause 0.01; done
printf '\r\033[K\033[32mSuccessfully installed PyYAML-6.0.1 certifi-2023.11.17 charset_normalizer-3.3.2 idna-3.6 markdown_it_py-3.0.0 mdurl-0.1.2 pygments-2.17.2 requests-2.31.0 rich-13.7.0 urllib3-2.1.0\033[0m\n'
run systemctl --no-pager status nginx 2>&1 | head -5
exit 0
