#!/bin/bash
# Kernel matrix: boot Debian's kernels under QEMU (software emulation) and run sessrec's
# real agent and CLI on each with a real recorded session, then check the recording.
#
#   tests/kmatrix/run.sh [KERNEL...]   KERNEL: 6.1, 6.12, or a linux-image-* package name
#                                      (default: 6.1 6.12)
#   tests/kmatrix/run.sh --self-test   only prove that the checker rejects bad results
#
# Prints one "PASS <kernel> ..." or "FAIL <kernel> ..." line per kernel and exits 1 when
# any failed. Environment: SESSREC_BUILD (programs in $SESSREC_BUILD/bin, default
# <repo>/build), KMATRIX_CACHE (default $SESSREC_BUILD/kmatrix), KMATRIX_AGENT_WAIT
# (seconds the agent may take to load its programs in the guest, default 40),
# KMATRIX_TIMEOUT (seconds per boot, default KMATRIX_AGENT_WAIT + 50), KMATRIX_MEM (guest
# memory, default 512M), KMATRIX_VERBOSE=1 (echo the guest console).
set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${SESSREC_BUILD:-$ROOT/build}
CACHE=${KMATRIX_CACHE:-$BUILD/kmatrix}
AGENT_WAIT=${KMATRIX_AGENT_WAIT:-40}
TIMEOUT=${KMATRIX_TIMEOUT:-$((AGENT_WAIT + 50))}
MEM=${KMATRIX_MEM:-512M}
PY=/usr/bin/python3
KPY=$HERE/kmatrix.py

say() { printf 'kmatrix: %s\n' "$*" >&2; }
die() { say "$*"; exit 2; }

# ------------------------------------------------------------------ host packages
# What the script itself needs: qemu, a static busybox for the guest, and the
# decompressors for the kernel payload (Python covers gzip/xz/bzip2 itself).
need_pkgs() {
	local missing=() p
	for p in qemu-system-x86 busybox-static zstd lz4 xz-utils; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q ' installed$' ||
			missing+=("$p")
	done
	[ ${#missing[@]} = 0 ] && return 0
	[ "$(id -u)" = 0 ] || die "missing packages (run as root to install): ${missing[*]}"
	say "installing ${missing[*]}"
	local log=$CACHE/apt.log
	if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
		cat "$log" >&2
		die "apt-get install failed for: ${missing[*]}"
	fi
}

# ------------------------------------------------------------------ kernels
# 6.1 -> the package linux-image-amd64 points at (bookworm's own kernel), 6.12 -> the one
# linux-image-6.12-amd64 points at (bookworm-backports/security).
meta_for() {
	case "$1" in
	6.1) echo linux-image-amd64 ;;
	6.12) echo linux-image-6.12-amd64 ;;
	linux-image-*) echo "$1" ;;
	*) return 1 ;;
	esac
}

# The real image package behind a meta package (itself when it is one already).
resolve_pkg() {
	local meta=$1 dep
	dep=$(apt-cache depends "$meta" 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1)
	if [ -n "$dep" ]; then
		echo "$dep"
	elif apt-cache show "$meta" >/dev/null 2>&1; then
		echo "$meta"
	else
		return 1
	fi
}

# At most once per run (fetch_kernel runs in a subshell, hence a file as the flag).
apt_updated() { [ -e "$CACHE/.apt-updated.$$" ]; }
apt_update_once() {
	apt_updated && return 0
	: >"$CACHE/.apt-updated.$$"
	[ "$(id -u)" = 0 ] || return 1
	say "apt-get update"
	apt-get update -qq >"$CACHE/apt.log" 2>&1
}

# Download and extract one kernel; prints the directory holding vmlinux (or vmlinuz).
# Cached per package and version: a new kernel upload means a new directory.
fetch_kernel() {
	local want=$1 retry=${2:-1} meta pkg ver dir deb z
	meta=$(meta_for "$want") || { say "$want: unknown kernel (6.1, 6.12 or linux-image-*)"; return 1; }
	if ! pkg=$(resolve_pkg "$meta"); then
		apt_update_once
		pkg=$(resolve_pkg "$meta") || { say "$want: apt-cache knows no package $meta"; return 1; }
	fi
	ver=$(apt-cache policy "$pkg" 2>/dev/null | sed -n 's/^ *Candidate: //p')
	[ -n "$ver" ] && [ "$ver" != "(none)" ] || { say "$want: $pkg has no candidate version"; return 1; }
	dir=$CACHE/kernels/${pkg}_${ver//[:~]/_}
	if [ -s "$dir/vmlinux" ] || [ -s "$dir/vmlinuz" ]; then
		echo "$pkg $ver" >"$dir/package"
		echo "$dir"
		return 0
	fi
	mkdir -p "$dir/dl"
	echo "$pkg $ver" >"$dir/package"
	deb=$(ls "$dir"/dl/*.deb 2>/dev/null | head -n 1)
	if [ -z "$deb" ]; then
		say "$want: downloading $pkg $ver"
		rm -rf "$dir/dl/tmp" && mkdir -p "$dir/dl/tmp"
		# As root, apt warns that its _apt user cannot write here: harmless, hence -qq.
		if ! (cd "$dir/dl/tmp" && apt-get download -qq "$pkg=$ver") >"$dir/dl/apt.log" 2>&1; then
			# Stale package lists name a version the archive no longer has: update
			# them once and start over with what they name now.
			if [ "$retry" = 1 ] && ! apt_updated && apt_update_once; then
				rm -rf "$dir"
				fetch_kernel "$want" 0
				return
			fi
			cat "$dir/dl/apt.log" >&2
			say "$want: cannot download $pkg $ver"
			return 1
		fi
		mv "$dir"/dl/tmp/*.deb "$dir/dl/" 2>/dev/null
		rm -rf "$dir/dl/tmp"
		deb=$(ls "$dir"/dl/*.deb 2>/dev/null | head -n 1)
		[ -n "$deb" ] || { say "$want: apt-get download left no .deb"; return 1; }
	fi
	say "$want: extracting the kernel from $(basename "$deb")"
	rm -rf "$dir/x" && mkdir -p "$dir/x"
	if ! dpkg-deb --fsys-tarfile "$deb" |
		tar -x -C "$dir/x" --wildcards './boot/vmlinuz-*' './boot/config-*'; then
		rm -f "$deb" # damaged: the next run downloads it again
		say "$want: cannot unpack $deb"
		return 1
	fi
	cp "$dir"/x/boot/config-* "$dir/config"
	z=$(ls "$dir"/x/boot/vmlinuz-* | head -n 1)
	# Booting the uncompressed ELF (PVH entry) skips the decompressor, which is slow
	# under emulation; the bzImage stays as the fallback.
	if "$PY" "$KPY" extract-vmlinux "$z" "$dir/vmlinux.tmp" 2>"$dir/extract.log"; then
		mv "$dir/vmlinux.tmp" "$dir/vmlinux"
	else
		cat "$dir/extract.log" >&2
		say "$want: no bootable vmlinux, booting the compressed image instead"
		cp "$z" "$dir/vmlinuz"
	fi
	rm -rf "$dir/x"
	echo "$dir"
}

# ------------------------------------------------------------------ initramfs
build_initramfs() {
	local out=$1 r=$CACHE/rootfs bin lib a
	rm -rf "$r"
	mkdir -p "$r"/{bin,sbin,etc,proc,sys,dev,run,tmp,root,lib64,lib/x86_64-linux-gnu}
	bin=$(command -v busybox) || die "busybox not found"
	ldd "$bin" >/dev/null 2>&1 && die "$bin is dynamically linked: install busybox-static"
	cp "$bin" "$r/bin/busybox"
	for a in $("$r/bin/busybox" --list); do
		[ -e "$r/bin/$a" ] || ln -s busybox "$r/bin/$a"
	done
	for a in sessrec-agent sessrec; do
		cp "$BUILD/bin/$a" "$r/bin/$a"
	done
	# Every shared library the programs load, and the dynamic loader, at the paths ldd
	# names (the loader looks in /lib/x86_64-linux-gnu itself; init sets
	# LD_LIBRARY_PATH for the /usr/lib ones).
	if ldd "$BUILD/bin/sessrec-agent" "$BUILD/bin/sessrec" | grep 'not found' >&2; then
		die "the programs need libraries this machine lacks"
	fi
	for lib in $(ldd "$BUILD/bin/sessrec-agent" "$BUILD/bin/sessrec" |
		sed -n -e 's/.*=> \(\/[^ ]*\) (.*/\1/p' -e 's/^[[:space:]]*\(\/[^ ]*\) (.*/\1/p' | sort -u); do
		mkdir -p "$r$(dirname "$lib")"
		cp -L "$lib" "$r$lib"
	done
	[ -e "$r/lib64/ld-linux-x86-64.so.2" ] || die "ldd named no dynamic loader"
	cp "$HERE/init.sh" "$r/init"
	chmod 755 "$r/init"
	echo kmatrix >"$r/etc/hostname"
	printf 'root:x:0:0:root:/root:/bin/sh\n' >"$r/etc/passwd"
	printf 'root:x:0:\ntty:x:5:\n' >"$r/etc/group"
	cat >"$r/etc/agent.yaml" <<'EOF'
node_name: kmatrix
data_dir: /tmp/data
audit_log: /tmp/audit.log
socket: /run/sessrec/agent.sock
metrics_listen: ""
log_level: info
enhanced_recording:
  command_buffer_size: 8
  disk_buffer_size: 16
  network_buffer_size: 8
  terminal_buffer_size: 64
  cgroup_path: /cgroup2
EOF
	"$PY" "$KPY" initramfs "$out" "$r" || die "cannot write $out"
}

# ------------------------------------------------------------------ one kernel
run_kernel() {
	local want=$1 dir kimg log t0 t1 label
	if ! dir=$(fetch_kernel "$want"); then
		echo "FAIL $want (kernel not available)"
		return 1
	fi
	kimg=$dir/vmlinux
	[ -s "$kimg" ] || kimg=$dir/vmlinuz
	label="$(cat "$dir/package" 2>/dev/null)"
	[ -s "$dir/vmlinux" ] || label="$label, compressed image"
	log=$CACHE/logs/$want.console.log
	mkdir -p "$CACHE/logs"
	t0=$(date +%s%N)
	# </dev/null: qemu must not take the caller's terminal; timeout bounds a hung guest.
	timeout -k 5 "$TIMEOUT" qemu-system-x86_64 -accel tcg -cpu max -smp 1 -m "$MEM" \
		-nographic -nodefaults -no-user-config -serial stdio -no-reboot \
		-kernel "$kimg" -initrd "$CACHE/initramfs.cpio" \
		-append "console=ttyS0 panic=-1 quiet kmatrix.agent_wait=$AGENT_WAIT" </dev/null >"$log" 2>&1
	local qrc=$?
	t1=$(date +%s%N)
	if [ "${KMATRIX_VERBOSE:-0}" = 1 ]; then
		sed 's/\r$//' "$log" >&2
	fi
	[ $qrc = 124 ] || [ $qrc = 137 ] && say "$want: qemu killed after ${TIMEOUT}s"
	local ms=$(((t1 - t0) / 1000000))
	"$PY" "$KPY" check "$log" "$want" "$label, $((ms / 1000)).$((ms % 1000 / 100)) s"
	local crc=$?
	[ $crc = 0 ] || say "$want: console log: $log"
	return $crc
}

# ------------------------------------------------------------------ main
main() {
	local kernels=() k fail=0
	for k in "$@"; do
		case "$k" in
		--self-test)
			exec "$PY" "$KPY" self-test
			;;
		-h | --help)
			sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "$0"
			exit 0
			;;
		-*) die "unknown option $k (see --help)" ;;
		*)
			meta_for "$k" >/dev/null || die "unknown kernel '$k' (6.1, 6.12 or a linux-image-* package)"
			kernels+=("$k")
			;;
		esac
	done
	[ ${#kernels[@]} = 0 ] && kernels=(6.1 6.12)
	[ -x "$PY" ] || die "$PY is required"
	for k in sessrec-agent sessrec; do
		[ -x "$BUILD/bin/$k" ] || die "$BUILD/bin/$k is missing: run make first"
	done
	mkdir -p "$CACHE"
	# One run at a time per cache: the rootfs, initramfs and logs are shared.
	exec 9>"$CACHE/.lock"
	flock 9
	# A checker that cannot fail proves nothing: test it first.
	"$PY" "$KPY" self-test >"$CACHE/self-test.log" 2>&1 || {
		cat "$CACHE/self-test.log" >&2
		echo "FAIL checker self-test"
		exit 1
	}
	trap 'rm -f "$CACHE/.apt-updated.$$"' EXIT
	need_pkgs
	build_initramfs "$CACHE/initramfs.cpio"
	for k in "${kernels[@]}"; do
		run_kernel "$k" || fail=1
	done
	exit $fail
}

main "$@"
