#!/bin/sh
# Issue sessrec's certificates for a Kubernetes cluster and store them as
# Secrets (docs/install.md, "Kubernetes"):
#
#   sessrec-collector-tls  server.crt server.key ca.crt          the collector
#   sessrec-node-certs     ca.crt NODE.crt NODE.key (per node)   the agents
#
# The CA lives in a directory on the operator's machine (--dir): the first run
# creates it with `sessrec-collector ca init`, every run issues a certificate
# (`sessrec-collector ca issue-node NODE`, common name = the node name) for each
# node that has none yet and rewrites both Secrets. Run it again whenever nodes
# join: a new node's agent waits in its init container until its certificate
# is in the Secret. ca.key never leaves --dir: keep that directory safe and
# offline; whoever holds ca.key can speak for any node.
set -euf

prog=$(basename "$0")
dir=./sessrec-ca
ns=sessrec
hosts=
collector=
dry_run=0
kubectl=${KUBECTL:-kubectl}

usage() {
	cat <<EOF
Usage: $prog [--dir DIR] [--namespace NS] [--host H[,H...]]... [--collector PATH]
          [--dry-run] [NODE...]

Issue the collector's server certificate (first run) and a client
certificate for every NODE (default: every node of \`kubectl get nodes\`) that
has none in DIR yet, then create or update the Secrets sessrec-collector-tls
and sessrec-node-certs in namespace NS with \`kubectl apply --server-side\`.

  -d, --dir DIR         the CA directory (default ./sessrec-ca); holds ca.key
  -n, --namespace NS    namespace of the manifests (default sessrec)
  -H, --host H[,H...]   more DNS names or addresses for the server certificate,
                        e.g. the name people use to reach the collector (only
                        when the CA is created: the first run)
  -c, --collector PATH  the sessrec-collector program (default: sessrec-collector
                        in PATH, else build/bin/sessrec-collector of this checkout)
      --dry-run         print the Secrets as YAML on stdout instead of applying
                        them (they contain private keys)
  -h, --help            this help

Environment: KUBECTL (default kubectl).
EOF
}

die() {
	echo "$prog: $*" >&2
	exit 1
}

while [ $# -gt 0 ]; do
	case "$1" in
	-d | --dir) [ $# -ge 2 ] || die "$1 needs a value"; dir=$2; shift 2 ;;
	--dir=*) dir=${1#*=}; shift ;;
	-n | --namespace) [ $# -ge 2 ] || die "$1 needs a value"; ns=$2; shift 2 ;;
	--namespace=*) ns=${1#*=}; shift ;;
	-H | --host) [ $# -ge 2 ] || die "$1 needs a value"; hosts="$hosts,$2"; shift 2 ;;
	--host=*) hosts="$hosts,${1#*=}"; shift ;;
	-c | --collector) [ $# -ge 2 ] || die "$1 needs a value"; collector=$2; shift 2 ;;
	--collector=*) collector=${1#*=}; shift ;;
	--dry-run) dry_run=1; shift ;;
	-h | --help) usage; exit 0 ;;
	--) shift; break ;;
	-*) echo "$prog: unknown option '$1'" >&2; usage >&2; exit 2 ;;
	*) break ;;
	esac
done

if [ -z "$collector" ]; then
	if command -v sessrec-collector >/dev/null 2>&1; then
		collector=$(command -v sessrec-collector)
	else
		collector=$(cd "$(dirname "$0")/../.." && pwd)/build/bin/sessrec-collector
	fi
fi
[ -x "$collector" ] || die "no sessrec-collector program at '$collector' (build it with make, or pass --collector PATH)"

check_node() {
	# A Secret key and a Kubernetes node name: [-._a-zA-Z0-9], not starting with . or -.
	case "$1" in
	"" | .* | -* | *[!-._a-zA-Z0-9]*) die "'$1' is not a usable node name" ;;
	ca | server) die "a node named '$1' collides with the CA's own files in $dir" ;;
	esac
}

# Nodes: the arguments, or every node of the cluster.
if [ $# -gt 0 ]; then
	for node in "$@"; do
		check_node "$node"
	done
	nodes=$*
else
	command -v "$kubectl" >/dev/null 2>&1 || die "$kubectl not found: name the nodes as arguments"
	nodes=$("$kubectl" get nodes -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}') ||
		die "cannot list the nodes with $kubectl"
	[ -n "$nodes" ] || die "the cluster has no nodes"
fi
for node in $nodes; do
	check_node "$node"
done

umask 077

# The CA and the collector's server certificate, once.
if [ ! -e "$dir/ca.crt" ]; then
	svc=sessrec-collector
	names="$svc,$svc.$ns,$svc.$ns.svc,$svc.$ns.svc.cluster.local,localhost,127.0.0.1$hosts"
	"$collector" ca init --dir "$dir" --host "$names" ||
		die "ca init failed"
elif [ -n "$hosts" ]; then
	echo "$prog: $dir/ca.crt exists: --host is used only when the CA is created" >&2
fi
for f in ca.crt ca.key server.crt server.key; do
	[ -s "$dir/$f" ] || die "$dir/$f is missing"
done

# One certificate per node; existing ones are kept (delete NODE.crt and
# NODE.key from DIR to renew one).
issued=0
for node in $nodes; do
	if [ -e "$dir/$node.crt" ] && [ -e "$dir/$node.key" ]; then
		continue
	fi
	"$collector" ca issue-node "$node" --dir "$dir" || die "ca issue-node $node failed"
	issued=$((issued + 1))
done

b64() {
	base64 -w0 <"$1" || die "cannot read $1"
}

# A Secret as YAML: NAME, then pairs of KEY FILE.
secret() {
	name=$1
	shift
	printf 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: %s\n' "$name" "$ns"
	printf '  labels:\n    app.kubernetes.io/part-of: sessrec\ntype: Opaque\ndata:\n'
	while [ $# -ge 2 ]; do
		printf '  %s: %s\n' "$1" "$(b64 "$2")"
		shift 2
	done
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

secret sessrec-collector-tls \
	server.crt "$dir/server.crt" server.key "$dir/server.key" ca.crt "$dir/ca.crt" \
	>"$tmp/collector-tls.yaml"

set -- ca.crt "$dir/ca.crt"
count=0
for node in $nodes; do
	set -- "$@" "$node.crt" "$dir/$node.crt" "$node.key" "$dir/$node.key"
	count=$((count + 1))
done
secret sessrec-node-certs "$@" >"$tmp/node-certs.yaml"

# A Secret holds at most 1 MiB: about 800 nodes.
size=$(wc -c <"$tmp/node-certs.yaml")
if [ "$size" -gt 1000000 ]; then
	die "sessrec-node-certs would be $size bytes, over the 1 MiB a Secret may hold: split the nodes into pools (docs/install.md)"
fi

if [ "$dry_run" = 1 ]; then
	cat "$tmp/collector-tls.yaml"
	echo "---"
	cat "$tmp/node-certs.yaml"
else
	command -v "$kubectl" >/dev/null 2>&1 || die "$kubectl not found (or use --dry-run)"
	# Server-side apply: no last-applied annotation carrying the keys a second time.
	for f in "$tmp/collector-tls.yaml" "$tmp/node-certs.yaml"; do
		"$kubectl" apply --server-side --force-conflicts --field-manager=sessrec-issue-node-certs \
			-f "$f" || die "kubectl apply failed"
	done
fi
echo "$prog: $issued new node certificate(s); sessrec-node-certs holds $count node(s); CA in $dir" >&2
