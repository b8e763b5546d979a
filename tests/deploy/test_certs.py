"""
The per-node certificate design: issue-node-certs.sh puts every node's pair into
the Secret sessrec-node-certs; the DaemonSet's init container copies this node's
pair and writes agent.yaml with node_name = the node name = the certificate's CN.
The init container's script is run here for real, on the script's output.
"""
import os
import shutil
import signal
import subprocess
import time

import pytest
import yaml

from conftest import (
    AGENT, COLLECTOR, ISSUE_SCRIPT, configmap_file, container, effective, mount_for,
    need_programs, one, read,
)


@pytest.fixture(scope="module", autouse=True)
def programs():
    need_programs()


def subject_cn(pem, tmp_path):
    openssl = shutil.which("openssl")
    if not openssl:
        pytest.skip("openssl is not installed")
    p = tmp_path / "c.pem"
    p.write_bytes(pem)
    out = subprocess.run([openssl, "x509", "-in", str(p), "-noout", "-subject", "-nameopt", "RFC2253"],
                         capture_output=True, text=True, check=True).stdout.strip()
    cn = [part[3:] for part in out.split("=", 1)[1].split(",") if part.startswith("CN=")]
    return cn[0]


def test_script_passes_shellcheck():
    sc = shutil.which("shellcheck")
    if not sc:
        pytest.skip("shellcheck is not installed")
    r = subprocess.run([sc, "-s", "sh", ISSUE_SCRIPT], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_script_help_and_refusals(tmp_path):
    r = subprocess.run(["sh", ISSUE_SCRIPT, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "sessrec-node-certs" in r.stdout
    for bad in ("bad name", "-x", "ca", "server", "a/b"):
        r = subprocess.run(["sh", ISSUE_SCRIPT, "--dir", str(tmp_path / "ca"), "--collector", COLLECTOR,
                            "--dry-run", "--", bad], capture_output=True, text=True)
        assert r.returncode != 0, bad
        assert not (tmp_path / "ca").exists(), "nothing is written for a bad node name"


def test_secrets_hold_what_the_pods_mount(issued, tmp_path):
    ca, secrets = issued
    assert set(secrets) == {"sessrec-collector-tls", "sessrec-node-certs"}
    for s in secrets.values():
        assert s["__namespace__"] == one("Namespace")["metadata"]["name"]
    tls = secrets["sessrec-collector-tls"]
    assert set(tls) - {"__namespace__"} == {"server.crt", "server.key", "ca.crt"}, \
        "the CA's key never goes into the cluster"
    nodes = secrets["sessrec-node-certs"]
    assert set(nodes) - {"__namespace__"} == {
        "ca.crt", "node-a.crt", "node-a.key", "node-b.example.com.crt", "node-b.example.com.key"}
    assert nodes["ca.crt"] == tls["ca.crt"]
    for k, v in list(tls.items()) + list(nodes.items()):
        if k.endswith(".key"):
            assert b"PRIVATE KEY" in v
    assert not any(b"ca.key" in k.encode() for k in nodes)
    # one certificate per node, its CN the node name
    assert subject_cn(nodes["node-a.crt"], tmp_path) == "node-a"
    assert subject_cn(nodes["node-b.example.com.crt"], tmp_path) == "node-b.example.com"
    # names used by the manifests
    ds = one("DaemonSet", "sessrec-agent")
    sts = one("StatefulSet", "sessrec-collector")
    secret_names = {v["secret"]["secretName"] for w in (ds, sts)
                    for v in w["spec"]["template"]["spec"]["volumes"] if "secret" in v}
    assert secret_names == set(secrets)


def test_rerun_keeps_existing_certificates_and_adds_new_nodes(issued, tmp_path):
    ca, _ = issued
    before = read(os.path.join(ca, "node-a.crt"))
    r = subprocess.run(["sh", ISSUE_SCRIPT, "--dir", ca, "--collector", COLLECTOR, "--dry-run",
                        "node-a", "node-c"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert read(os.path.join(ca, "node-a.crt")) == before
    assert "1 new node certificate" in r.stderr
    docs = list(yaml.safe_load_all(r.stdout))
    keys = set(docs[1]["data"])
    assert keys == {"ca.crt", "node-a.crt", "node-a.key", "node-c.crt", "node-c.key"}, \
        "the Secret holds the nodes named now"


def init_script():
    init = container(one("DaemonSet", "sessrec-agent"), "node-config", init=True)
    assert init["command"][:2] == ["/bin/sh", "-c"]
    return init, init["command"][2]


def run_init(tmp_path, certs_dir, node, timeout=30):
    """The init container's script with its directories moved under tmp_path."""
    init, script = init_script()
    env_spec = {e["name"]: e.get("value") for e in init["env"]}
    tpl = tmp_path / "template"
    out = tmp_path / "out"
    tpl.mkdir(exist_ok=True)
    out.mkdir(exist_ok=True)
    (tpl / os.path.basename(env_spec["TEMPLATE"])).write_text(
        configmap_file("sessrec-agent-config", "agent.yaml"))
    assert script.count("/usr/local/bin/sessrec-agent") == 1
    script = script.replace("/usr/local/bin/sessrec-agent", AGENT)
    env = dict(os.environ, NODE_NAME=node, CERTS=str(certs_dir), OUT=str(out),
               TEMPLATE=str(tpl / os.path.basename(env_spec["TEMPLATE"])))
    return subprocess.Popen(["/bin/sh", "-c", script], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True), out


def secret_dir(tmp_path, issued):
    """The Secret sessrec-node-certs as the kubelet mounts it: one file per key."""
    _, secrets = issued
    d = tmp_path / "certs"
    d.mkdir()
    for k, v in secrets["sessrec-node-certs"].items():
        if not k.startswith("__"):
            (d / k).write_bytes(v)
    return d


def test_init_container_installs_this_nodes_certificate(tmp_path, issued):
    certs = secret_dir(tmp_path, issued)
    p, out = run_init(tmp_path, certs, "node-b.example.com")
    stdout, stderr = p.communicate(timeout=30)
    assert p.returncode == 0, stderr
    ds = one("DaemonSet", "sessrec-agent")
    agent = container(ds, "agent")
    mount = mount_for(ds, agent, "/etc/sessrec/agent.yaml")[0]["mountPath"]
    cfg = effective(AGENT, (out / "agent.yaml").read_text(), tmp_path, "rendered.yaml")
    assert cfg["node_name"] == "node-b.example.com"
    col = cfg["collector"]
    local = {k: out / os.path.relpath(col[k], mount) for k in ("ca_file", "cert_file", "key_file")}
    assert local["cert_file"].read_bytes() == (certs / "node-b.example.com.crt").read_bytes()
    assert local["key_file"].read_bytes() == (certs / "node-b.example.com.key").read_bytes()
    assert local["ca_file"].read_bytes() == (certs / "ca.crt").read_bytes()
    assert oct(local["key_file"].stat().st_mode & 0o777) == oct(0o600)
    # only this node's pair is copied
    assert sorted(os.listdir(out / "tls")) == ["ca.crt", "node.crt", "node.key"]
    # the certificate names the node the agent says it is
    assert subject_cn(local["cert_file"].read_bytes(), tmp_path) == cfg["node_name"]


def test_init_container_replaces_a_node_name_in_the_configmap(tmp_path, issued):
    certs = secret_dir(tmp_path, issued)
    p, out = run_init(tmp_path, certs, "node-a")
    p.communicate(timeout=30)
    assert p.returncode == 0
    # a ConfigMap that sets node_name anyway: the node's own name wins, no duplicate key
    tpl = tmp_path / "template" / "agent.yaml"
    tpl.write_text("node_name: wrong\n" + tpl.read_text())
    init, script = init_script()
    script = script.replace("/usr/local/bin/sessrec-agent", AGENT)
    env = dict(os.environ, NODE_NAME="node-a", CERTS=str(certs), OUT=str(out), TEMPLATE=str(tpl))
    r = subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert yaml.safe_load((out / "agent.yaml").read_text())["node_name"] == "node-a"


def test_init_container_waits_for_a_missing_certificate(tmp_path, issued):
    certs = secret_dir(tmp_path, issued)
    p, out = run_init(tmp_path, certs, "node-new")
    try:
        time.sleep(1.5)
        assert p.poll() is None, "it must wait, not fail (the Secret is updated in place)"
        assert not (out / "agent.yaml").exists()
        # the operator issues the certificate: the kubelet updates the Secret volume
        (certs / "node-new.crt").write_bytes((certs / "node-a.crt").read_bytes())
        (certs / "node-new.key").write_bytes((certs / "node-a.key").read_bytes())
        p.wait(timeout=15)
        assert p.returncode == 0
        err = p.stderr.read()
        assert "no certificate for node node-new" in err and "issue-node-certs.sh" in err
        assert (out / "agent.yaml").exists()
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait()


def test_init_container_script_passes_shellcheck():
    sc = shutil.which("shellcheck")
    if not sc:
        pytest.skip("shellcheck is not installed")
    _, script = init_script()
    r = subprocess.run([sc, "-s", "sh", "-"], input=script, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
