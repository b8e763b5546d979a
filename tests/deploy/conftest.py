"""
Shared helpers for the deployment tests (tests/deploy): the Kubernetes
manifests, the container build file, the systemd units, the certificate script
and the configuration reference, checked against each other and against the real
programs.

Run after `make`:  /usr/bin/python3 -m pytest -q tests/deploy   (or `make deploy-check`)

Debian's python3-pytest and python3-yaml. Optional tools, each test skips
without its tool: systemd-analyze (systemd), openssl, shellcheck, kubectl,
apt-cache/dpkg/ldconfig/objdump. test_hardening.py runs the programs under the
units' restrictions and needs root, BPF and cgroup v2.

Environment: SESSREC_BUILD, the build directory (default: build/ of this checkout).
"""
import os
import re
import shutil
import subprocess

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.path.abspath(os.environ.get("SESSREC_BUILD") or os.path.join(REPO, "build"))
BIN = os.path.join(BUILD, "bin")
DEPLOY = os.path.join(REPO, "deploy")
K8S = os.path.join(DEPLOY, "kubernetes")
SYSTEMD = os.path.join(DEPLOY, "systemd")
DOCKERFILE = os.path.join(DEPLOY, "docker", "Dockerfile")
ISSUE_SCRIPT = os.path.join(K8S, "issue-node-certs.sh")
AGENT = os.path.join(BIN, "sessrec-agent")
COLLECTOR = os.path.join(BIN, "sessrec-collector")
CLI = os.path.join(BIN, "sessrec")


def need_programs():
    missing = [p for p in (AGENT, COLLECTOR, CLI) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail("build the programs first (make): missing %s" % ", ".join(missing))


def need_tool(name):
    path = shutil.which(name)
    if not path:
        pytest.skip("%s is not installed" % name)
    return path


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def version():
    return read(os.path.join(REPO, "VERSION")).strip()


# ------------------------------------------------------------------ manifests


def manifest_files():
    """Every Kubernetes manifest (not the kustomization)."""
    return sorted(
        os.path.join(K8S, n)
        for n in os.listdir(K8S)
        if n.endswith((".yaml", ".yml")) and n != "kustomization.yaml"
    )


def load_docs(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def all_objects():
    out = []
    for path in manifest_files():
        for doc in load_docs(path):
            out.append(doc)
    return out


def find(kind, name=None):
    hits = [o for o in all_objects() if o.get("kind") == kind and
            (name is None or o.get("metadata", {}).get("name") == name)]
    assert hits, "no %s%s in deploy/kubernetes" % (kind, " " + name if name else "")
    return hits


def one(kind, name=None):
    hits = find(kind, name)
    assert len(hits) == 1, "expected one %s %s, found %d" % (kind, name or "", len(hits))
    return hits[0]


def pod_spec(workload):
    return workload["spec"]["template"]["spec"]


def container(workload, name=None, init=False):
    cs = pod_spec(workload).get("initContainers" if init else "containers") or []
    if name is None:
        assert len(cs) == 1, "expected one container in %s" % workload["metadata"]["name"]
        return cs[0]
    for c in cs:
        if c["name"] == name:
            return c
    raise AssertionError("no container %s in %s" % (name, workload["metadata"]["name"]))


def volumes(workload):
    vols = {v["name"]: v for v in pod_spec(workload).get("volumes") or []}
    for t in workload["spec"].get("volumeClaimTemplates") or []:
        vols[t["metadata"]["name"]] = {"name": t["metadata"]["name"], "persistentVolumeClaim": t}
    return vols


def mount_for(workload, c, path):
    """The volume mount of container c that holds path (the deepest one), and the volume."""
    best = None
    for m in c.get("volumeMounts") or []:
        mp = m["mountPath"].rstrip("/") or "/"
        if path == mp or path.startswith(mp + "/"):
            if best is None or len(mp) > len(best["mountPath"].rstrip("/")):
                best = m
    if best is None:
        return None, None
    return best, volumes(workload)[best["name"]]


def port_number(c, port):
    """A probe's or Service's port (a number or a container port's name) as a number."""
    if isinstance(port, int):
        return port
    for p in c.get("ports") or []:
        if p.get("name") == port:
            return p["containerPort"]
    raise AssertionError("container %s has no port named %r" % (c["name"], port))


def configmap_file(name, key):
    cm = one("ConfigMap", name)
    assert key in cm.get("data", {}), "ConfigMap %s has no key %s" % (name, key)
    return cm["data"][key]


# ------------------------------------------------------------------ programs


def check_config(program, text, tmp_path, name="config.yaml"):
    """Run PROGRAM --check-config on text; return (returncode, effective config or None, stderr)."""
    path = os.path.join(str(tmp_path), name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    r = subprocess.run([program, "--check-config", "-c", path], capture_output=True, text=True,
                       timeout=30)
    eff = yaml.safe_load(r.stdout) if r.returncode == 0 else None
    return r.returncode, eff, r.stderr


def effective(program, text, tmp_path, name="config.yaml"):
    rc, eff, err = check_config(program, text, tmp_path, name)
    assert rc == 0, "%s --check-config refused %s: %s" % (os.path.basename(program), name, err)
    return eff


def flatten(d, prefix=""):
    """{'a': {'b': 1}} -> {'a.b': 1}; empty maps stay as values."""
    out = {}
    for k, v in d.items():
        key = prefix + str(k)
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def listen_port(s):
    m = re.match(r"^(?:\[[^\]]+\]|[^:]+):(\d+)$", s)
    assert m, "not host:port: %r" % s
    return int(m.group(1))


def listen_host(s):
    return s.rsplit(":", 1)[0].strip("[]")


# ------------------------------------------------------------------ certificates


@pytest.fixture(scope="session")
def issued(tmp_path_factory):
    """issue-node-certs.sh --dry-run for two nodes: (CA dir, {secret name: {key: bytes}})."""
    import base64

    need_programs()
    d = tmp_path_factory.mktemp("issue")
    ca = os.path.join(str(d), "ca")
    r = subprocess.run(
        ["sh", ISSUE_SCRIPT, "--dir", ca, "--collector", COLLECTOR, "--host",
         "collector.example.com", "--dry-run", "node-a", "node-b.example.com"],
        capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    secrets = {}
    for doc in yaml.safe_load_all(r.stdout):
        assert doc["kind"] == "Secret" and doc["apiVersion"] == "v1"
        secrets[doc["metadata"]["name"]] = {k: base64.b64decode(v) for k, v in doc["data"].items()}
        secrets[doc["metadata"]["name"]]["__namespace__"] = doc["metadata"]["namespace"]
    return ca, secrets
