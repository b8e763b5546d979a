"""
deploy/kubernetes: well-formed objects, and every port, path, image and name
consistent with what the programs read (their configurations are checked by the
programs themselves, with --check-config).
"""
import os
import re
import shutil
import subprocess

import pytest
import yaml

from conftest import (
    AGENT, COLLECTOR, K8S, all_objects, check_config, configmap_file, container, effective,
    find, listen_host, listen_port, load_docs, manifest_files, mount_for, need_programs, one,
    pod_spec, port_number, read, version, volumes,
)

NAMESPACE = "sessrec"
AGENT_CONFIG = "/etc/sessrec/agent.yaml"
COLLECTOR_CONFIG = "/etc/sessrec/collector.yaml"


@pytest.fixture(scope="module", autouse=True)
def programs():
    need_programs()


def agent_ds():
    return one("DaemonSet", "sessrec-agent")


def collector_sts():
    return one("StatefulSet", "sessrec-collector")


def rendered_agent_yaml(node="node-a"):
    """agent.yaml as the init container writes it (node_name first, the ConfigMap's without one)."""
    body = configmap_file("sessrec-agent-config", "agent.yaml")
    lines = [ln for ln in body.splitlines() if not ln.startswith("node_name:")]
    return 'node_name: "%s"\n' % node + "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def agent_cfg(tmp_path_factory):
    return effective(AGENT, rendered_agent_yaml(), tmp_path_factory.mktemp("agentcfg"), "agent.yaml")


@pytest.fixture(scope="module")
def collector_cfg(tmp_path_factory):
    return effective(COLLECTOR, configmap_file("sessrec-collector-config", "collector.yaml"),
                     tmp_path_factory.mktemp("collcfg"), "collector.yaml")


# ------------------------------------------------------------------ well-formed


def test_every_manifest_is_yaml_with_apiversion_kind_and_name():
    files = manifest_files()
    assert len(files) >= 6
    for path in files:
        docs = load_docs(path)
        assert docs, "%s holds no object" % path
        for d in docs:
            where = "%s: %s" % (os.path.basename(path), d.get("kind"))
            assert isinstance(d, dict), where
            assert isinstance(d.get("apiVersion"), str) and d["apiVersion"], where
            assert isinstance(d.get("kind"), str) and d["kind"], where
            name = d.get("metadata", {}).get("name")
            assert isinstance(name, str) and re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", name), where


def test_no_duplicate_keys_in_manifests():
    """PyYAML keeps the last of two equal keys; the API server refuses them."""

    class Strict(yaml.SafeLoader):
        pass

    def construct(loader, node, deep=False):
        seen = set()
        for k, _ in node.value:
            key = loader.construct_object(k, deep=deep)
            assert key not in seen, "duplicate key %r at line %d" % (key, k.start_mark.line + 1)
            seen.add(key)
        return yaml.SafeLoader.construct_mapping(loader, node, deep)

    Strict.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct)
    for path in manifest_files() + [os.path.join(K8S, "kustomization.yaml")]:
        with open(path, encoding="utf-8") as f:
            list(yaml.load_all(f, Loader=Strict))
    for name, key in (("sessrec-agent-config", "agent.yaml"),
                      ("sessrec-collector-config", "collector.yaml")):
        yaml.load(configmap_file(name, key), Loader=Strict)


def test_expected_objects_exist():
    one("Namespace", NAMESPACE)
    one("ServiceAccount", "sessrec-agent")
    one("ServiceAccount", "sessrec-collector")
    one("ConfigMap", "sessrec-agent-config")
    one("ConfigMap", "sessrec-collector-config")
    one("DaemonSet", "sessrec-agent")
    one("StatefulSet", "sessrec-collector")
    one("Service", "sessrec-collector")


def test_api_versions():
    want = {"Namespace": "v1", "ServiceAccount": "v1", "ConfigMap": "v1", "Service": "v1",
            "Secret": "v1", "ResourceQuota": "v1", "DaemonSet": "apps/v1", "StatefulSet": "apps/v1"}
    for o in all_objects():
        assert o["kind"] in want, "unexpected kind %s" % o["kind"]
        assert o["apiVersion"] == want[o["kind"]], o["kind"]


def test_everything_in_the_namespace():
    for o in all_objects():
        if o["kind"] == "Namespace":
            continue
        assert o["metadata"].get("namespace") == NAMESPACE, "%s %s" % (o["kind"], o["metadata"]["name"])


def test_namespace_allows_the_privileged_agent():
    labels = one("Namespace", NAMESPACE)["metadata"].get("labels", {})
    assert labels.get("pod-security.kubernetes.io/enforce") == "privileged"


def test_no_private_keys_in_the_manifests():
    for path in manifest_files():
        assert "PRIVATE KEY" not in read(path), path
    assert not find_kind_or_none("Secret"), "Secrets come from issue-node-certs.sh, not from git"


def find_kind_or_none(kind):
    return [o for o in all_objects() if o["kind"] == kind]


def test_kustomization_lists_every_manifest():
    k = yaml.safe_load(read(os.path.join(K8S, "kustomization.yaml")))
    assert k["kind"] == "Kustomization"
    assert sorted(k["resources"]) == sorted(os.path.basename(p) for p in manifest_files())


def test_kustomize_renders():
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl is not installed")
    r = subprocess.run([kubectl, "kustomize", K8S], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(r.stdout) if d]
    assert len(kinds) == len(all_objects())


# ------------------------------------------------------------------ field names


# The fields these manifests may use, per object type: a misspelt field is
# dropped or refused by the API server, and no server is at hand here.
FIELDS = {
    "metadata": {"name", "namespace", "labels", "annotations"},
    "daemonset.spec": {"selector", "updateStrategy", "template", "minReadySeconds",
                       "revisionHistoryLimit"},
    "statefulset.spec": {"serviceName", "replicas", "selector", "template", "volumeClaimTemplates",
                         "updateStrategy", "podManagementPolicy", "persistentVolumeClaimRetentionPolicy"},
    "template": {"metadata", "spec"},
    "pod": {"serviceAccountName", "automountServiceAccountToken", "enableServiceLinks", "hostPID",
            "hostNetwork", "hostIPC", "dnsPolicy", "priorityClassName", "tolerations",
            "terminationGracePeriodSeconds", "initContainers", "containers", "volumes",
            "securityContext", "nodeSelector", "affinity"},
    "container": {"name", "image", "imagePullPolicy", "command", "args", "env", "securityContext",
                  "ports", "startupProbe", "livenessProbe", "readinessProbe", "resources",
                  "volumeMounts", "lifecycle", "workingDir"},
    "env": {"name", "value", "valueFrom"},
    "port": {"name", "containerPort", "protocol"},
    "probe": {"httpGet", "exec", "tcpSocket", "initialDelaySeconds", "periodSeconds",
              "timeoutSeconds", "failureThreshold", "successThreshold"},
    "httpGet": {"path", "port", "scheme", "host", "httpHeaders"},
    "resources": {"requests", "limits"},
    "volumeMount": {"name", "mountPath", "readOnly", "mountPropagation", "subPath"},
    "volume": {"name", "emptyDir", "configMap", "secret", "hostPath", "persistentVolumeClaim"},
    "hostPath": {"path", "type"},
    "emptyDir": {"medium", "sizeLimit"},
    "configMap": {"name", "defaultMode", "items"},
    "secret": {"secretName", "defaultMode", "items"},
    "containerSecurityContext": {"privileged", "runAsUser", "runAsGroup", "runAsNonRoot",
                                 "allowPrivilegeEscalation", "readOnlyRootFilesystem",
                                 "capabilities", "seccompProfile"},
    "podSecurityContext": {"runAsUser", "runAsGroup", "runAsNonRoot", "fsGroup",
                           "fsGroupChangePolicy", "seccompProfile"},
    "service.spec": {"type", "selector", "ports", "clusterIP"},
    "servicePort": {"name", "port", "targetPort", "protocol"},
    "pvc": {"metadata", "spec"},
    "pvc.spec": {"accessModes", "resources", "storageClassName"},
}

HOSTPATH_TYPES = {"", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket",
                  "CharDevice", "BlockDevice"}


def fields(obj, kind, where):
    extra = set(obj) - FIELDS[kind]
    assert not extra, "%s: unknown field(s) %s" % (where, sorted(extra))


def check_container(c, where):
    fields(c, "container", where)
    for e in c.get("env") or []:
        fields(e, "env", where + " env")
    for p in c.get("ports") or []:
        fields(p, "port", where + " port")
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        if probe in c:
            fields(c[probe], "probe", where + " " + probe)
            if "httpGet" in c[probe]:
                fields(c[probe]["httpGet"], "httpGet", where + " " + probe)
    if "resources" in c:
        fields(c["resources"], "resources", where + " resources")
    for m in c.get("volumeMounts") or []:
        fields(m, "volumeMount", where + " volumeMount")
        assert m.get("mountPropagation", "None") in ("None", "HostToContainer", "Bidirectional")
    if "securityContext" in c:
        fields(c["securityContext"], "containerSecurityContext", where + " securityContext")


def check_pod(spec, where):
    fields(spec, "pod", where)
    if "securityContext" in spec:
        fields(spec["securityContext"], "podSecurityContext", where + " securityContext")
    for c in (spec.get("initContainers") or []) + spec["containers"]:
        check_container(c, "%s container %s" % (where, c["name"]))
    for v in spec.get("volumes") or []:
        fields(v, "volume", "%s volume %s" % (where, v["name"]))
        for k in ("hostPath", "emptyDir", "configMap", "secret"):
            if k in v:
                fields(v[k], k, "%s volume %s" % (where, v["name"]))
        if "hostPath" in v:
            assert v["hostPath"].get("type", "") in HOSTPATH_TYPES
            assert v["hostPath"]["path"].startswith("/")


def test_field_names():
    for o in all_objects():
        where = "%s %s" % (o["kind"], o["metadata"]["name"])
        fields(o["metadata"], "metadata", where)
        if o["kind"] in ("DaemonSet", "StatefulSet"):
            fields(o["spec"], o["kind"].lower() + ".spec", where)
            fields(o["spec"]["template"], "template", where)
            fields(o["spec"]["template"]["metadata"], "metadata", where)
            check_pod(pod_spec(o), where)
            for t in o["spec"].get("volumeClaimTemplates") or []:
                fields(t, "pvc", where)
                fields(t["spec"], "pvc.spec", where)
        if o["kind"] == "Service":
            fields(o["spec"], "service.spec", where)
            for p in o["spec"]["ports"]:
                fields(p, "servicePort", where)


# ------------------------------------------------------------------ workloads


def test_selectors_match_the_pod_labels():
    for w in (agent_ds(), collector_sts()):
        sel = w["spec"]["selector"]["matchLabels"]
        labels = w["spec"]["template"]["metadata"]["labels"]
        assert sel and all(labels.get(k) == v for k, v in sel.items()), w["metadata"]["name"]
    pod_labels = collector_sts()["spec"]["template"]["metadata"]["labels"]
    for svc in find("Service"):
        sel = svc["spec"]["selector"]
        assert all(pod_labels.get(k) == v for k, v in sel.items()), svc["metadata"]["name"]


def test_statefulset_has_a_headless_governing_service():
    sts = collector_sts()
    svc = one("Service", sts["spec"]["serviceName"])
    assert svc["spec"].get("clusterIP") == "None"
    assert sts["spec"].get("replicas", 1) == 1, "the embedded store belongs to one collector"


def test_pods_use_their_service_accounts_without_api_tokens():
    for w, sa in ((agent_ds(), "sessrec-agent"), (collector_sts(), "sessrec-collector")):
        spec = pod_spec(w)
        assert spec["serviceAccountName"] == sa
        assert spec.get("automountServiceAccountToken") is False
        assert one("ServiceAccount", sa).get("automountServiceAccountToken") is False


def test_rbac_is_minimal():
    """Neither program uses the Kubernetes API: no Role, ClusterRole or binding at all."""
    for o in all_objects():
        assert o["kind"] not in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"), o["kind"]


def test_volume_mounts_name_defined_volumes():
    for w in (agent_ds(), collector_sts()):
        vols = volumes(w)
        spec = pod_spec(w)
        for c in (spec.get("initContainers") or []) + spec["containers"]:
            paths = [m["mountPath"] for m in c.get("volumeMounts") or []]
            assert len(paths) == len(set(paths)), "%s: a path mounted twice" % c["name"]
            for m in c.get("volumeMounts") or []:
                assert m["name"] in vols, "%s mounts undefined volume %s" % (c["name"], m["name"])


def test_images_are_tagged_with_the_version():
    v = version()
    for w, image_name in ((agent_ds(), "sessrec-agent"), (collector_sts(), "sessrec-collector")):
        spec = pod_spec(w)
        for c in (spec.get("initContainers") or []) + spec["containers"]:
            image = c["image"]
            last = image.rsplit("/", 1)[-1]
            assert ":" in last, "%s: image %s has no tag" % (c["name"], image)
            name, tag = last.split(":", 1)
            assert tag != "latest" and tag == v, "%s: tag %s, VERSION is %s" % (c["name"], tag, v)
            assert name == image_name, c["name"]
            assert c.get("imagePullPolicy") in ("IfNotPresent", "Always")


def test_requests_and_limits_everywhere():
    for w in (agent_ds(), collector_sts()):
        spec = pod_spec(w)
        for c in (spec.get("initContainers") or []) + spec["containers"]:
            r = c.get("resources") or {}
            for kind in ("requests", "limits"):
                for res in ("cpu", "memory"):
                    assert res in (r.get(kind) or {}), "%s: no %s.%s" % (c["name"], kind, res)


# ------------------------------------------------------------------ the agent


def test_agent_daemonset_is_privileged_with_host_pid():
    spec = pod_spec(agent_ds())
    c = container(agent_ds(), "agent")
    assert spec.get("hostPID") is True
    assert c["securityContext"].get("privileged") is True
    assert c["securityContext"].get("runAsUser", 0) == 0
    assert not spec.get("hostNetwork"), "the probes assume the pod's own network namespace"
    assert any(t.get("operator") == "Exists" and "key" not in t for t in spec.get("tolerations", []))
    pc = spec.get("priorityClassName")
    if pc in ("system-node-critical", "system-cluster-critical"):
        scopes = [e for q in find_kind_or_none("ResourceQuota")
                  for e in q["spec"].get("scopeSelector", {}).get("matchExpressions", [])]
        assert any(e["scopeName"] == "PriorityClass" and e["operator"] == "In" and pc in e["values"]
                   for e in scopes), "no quota admits %s pods (limitedResources clusters)" % pc


def test_agent_reads_its_config_where_it_is_mounted():
    c = container(agent_ds(), "agent")
    cmd = c["command"] + c.get("args", [])
    assert cmd[0] == "/usr/local/bin/sessrec-agent"
    assert cmd[1:] == ["-c", AGENT_CONFIG]
    m, vol = mount_for(agent_ds(), c, AGENT_CONFIG)
    assert m is not None and "emptyDir" in vol, "agent.yaml comes from the init container's volume"


def init_env(init):
    return {e["name"]: e.get("value") for e in init.get("env") or []}


def test_agent_init_container_renders_the_configmap():
    ds = agent_ds()
    init = container(ds, "node-config", init=True)
    agent = container(ds, "agent")
    env = init_env(init)
    node = [e for e in init["env"] if e["name"] == "NODE_NAME"][0]
    assert node["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    # OUT is the volume the agent reads agent.yaml from
    m_out, v_out = mount_for(ds, init, env["OUT"] + "/agent.yaml")
    m_agent, v_agent = mount_for(ds, agent, AGENT_CONFIG)
    assert m_out["name"] == m_agent["name"]
    assert m_out["mountPath"] == m_agent["mountPath"] == env["OUT"]
    assert not m_out.get("readOnly") and m_agent.get("readOnly")
    # TEMPLATE is the ConfigMap's agent.yaml
    m_t, v_t = mount_for(ds, init, env["TEMPLATE"])
    assert v_t["configMap"]["name"] == "sessrec-agent-config"
    configmap_file("sessrec-agent-config", os.path.basename(env["TEMPLATE"]))
    # CERTS is the Secret of node certificates; the agent itself does not mount it
    m_c, v_c = mount_for(ds, init, env["CERTS"] + "/x.crt")
    assert v_c["secret"]["secretName"] == "sessrec-node-certs"
    assert all(volumes(ds)[m["name"]].get("secret") is None for m in agent["volumeMounts"]), \
        "only this node's key reaches the agent container"
    # the same image, checking the rendered file with the same program
    assert init["image"] == agent["image"]
    assert "/usr/local/bin/sessrec-agent --check-config" in init["command"][-1]


def test_agent_configmap_is_accepted_by_the_agent(agent_cfg, tmp_path):
    # as rendered for a node, and as it is (the init container adds node_name)
    rc, _, err = check_config(AGENT, configmap_file("sessrec-agent-config", "agent.yaml"), tmp_path)
    assert rc == 0, err
    assert agent_cfg["node_name"] == "node-a"
    assert "node_name" not in yaml.safe_load(configmap_file("sessrec-agent-config", "agent.yaml"))


def test_agent_host_mounts(agent_cfg):
    """Every place the agent uses on the node is a hostPath at the same path as on the host."""
    ds = agent_ds()
    c = container(ds, "agent")
    er = agent_cfg["enhanced_recording"]
    same_path = {
        "bpffs (pin_path)": er["pin_path"],
        "tracefs": "/sys/kernel/tracing",
        "the launcher socket": os.path.dirname(agent_cfg["socket"]),
        "the spool (data_dir)": agent_cfg["data_dir"],
        "the audit log": os.path.dirname(agent_cfg["audit_log"]),
        "the lock": "/run/sessrec-agent.lock",
    }
    for what, path in same_path.items():
        m, vol = mount_for(ds, c, path)
        assert m is not None and "hostPath" in vol, "%s (%s) is not on a hostPath mount" % (what, path)
        rel = os.path.relpath(path, m["mountPath"])
        host = os.path.normpath(os.path.join(vol["hostPath"]["path"], rel))
        assert host == path, "%s: %s in the pod is %s on the host" % (what, path, host)
    assert mount_for(ds, c, "/sys/fs/bpf")[0]["mountPath"] == "/sys/fs/bpf"
    assert mount_for(ds, c, "/sys/fs/bpf")[0].get("mountPropagation") == "Bidirectional"
    assert mount_for(ds, c, "/run/sessrec-agent.lock")[1]["hostPath"]["type"] == "FileOrCreate"
    # the host's cgroup2 hierarchy at cgroup_path
    m, vol = mount_for(ds, c, er["cgroup_path"])
    assert m is not None and m["mountPath"] == er["cgroup_path"]
    assert vol["hostPath"]["path"] in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified")
    assert agent_cfg["socket"] == "/run/sessrec/agent.sock", "launchers on the node use the default"


def test_agent_metrics_port_is_the_probe_port(agent_cfg):
    c = container(agent_ds(), "agent")
    listen = agent_cfg["metrics_listen"]
    port = listen_port(listen)
    assert listen_host(listen) in ("0.0.0.0", "::"), \
        "metrics_listen %s: the kubelet probes the pod IP" % listen
    assert port_number(c, "metrics") == port
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        get = c[probe]["httpGet"]
        assert get["path"] == "/healthz", probe
        assert port_number(c, get["port"]) == port, probe
        assert get.get("scheme", "HTTP") == "HTTP", probe
    ann = agent_ds()["spec"]["template"]["metadata"].get("annotations", {})
    assert ann.get("prometheus.io/port") == str(port)


def test_agent_collector_url_is_the_service(agent_cfg):
    url = agent_cfg["collector"]["url"]
    m = re.match(r"^https://([^/:]+):(\d+)$", url)
    assert m, url
    host, port = m.group(1), int(m.group(2))
    svc = one("Service", "sessrec-collector")
    assert host == "sessrec-collector.%s.svc" % NAMESPACE
    assert port in [p["port"] for p in svc["spec"]["ports"]]


def test_agent_tls_files_come_from_the_init_container(agent_cfg):
    """ca_file, cert_file and key_file are in the volume the init container fills."""
    ds = agent_ds()
    agent = container(ds, "agent")
    init = container(ds, "node-config", init=True)
    script = init["command"][-1]
    out = init_env(init)["OUT"]
    for key in ("ca_file", "cert_file", "key_file"):
        path = agent_cfg["collector"][key]
        m, vol = mount_for(ds, agent, path)
        assert m is not None and "emptyDir" in vol, key
        rel = "$OUT/" + os.path.relpath(path, out)
        assert rel in script, "the init container does not write %s (%s)" % (key, rel)


# ------------------------------------------------------------------ the collector


def test_collector_reads_its_config_where_it_is_mounted():
    sts = collector_sts()
    c = container(sts)
    cmd = c["command"] + c.get("args", [])
    assert cmd[0] == "/usr/local/bin/sessrec-collector"
    assert cmd[1:] == ["-c", COLLECTOR_CONFIG]
    m, vol = mount_for(sts, c, COLLECTOR_CONFIG)
    assert vol["configMap"]["name"] == "sessrec-collector-config"
    assert os.path.relpath(COLLECTOR_CONFIG, m["mountPath"]) == "collector.yaml"


def test_collector_tls_paths_are_secret_keys(collector_cfg, issued):
    sts = collector_sts()
    c = container(sts)
    _, secrets = issued
    for key, path in collector_cfg["tls"].items():
        m, vol = mount_for(sts, c, path)
        assert m is not None and "secret" in vol, "tls.%s %s is not on a Secret" % (key, path)
        name = vol["secret"]["secretName"]
        assert name == "sessrec-collector-tls"
        assert os.path.relpath(path, m["mountPath"]) in secrets[name], \
            "issue-node-certs.sh does not put %s into %s" % (os.path.basename(path), name)
        assert vol["secret"].get("defaultMode", 0o644) & 0o007 == 0, "keys are not world-readable"


def test_collector_data_dir_is_on_the_volume(collector_cfg):
    sts = collector_sts()
    c = container(sts)
    m, vol = mount_for(sts, c, collector_cfg["data_dir"])
    assert m is not None and "persistentVolumeClaim" in vol, "data_dir is not on the PVC"
    assert m["mountPath"] != collector_cfg["data_dir"], \
        "data_dir must be below the mount: the collector creates it 0700 as its own"
    sc = pod_spec(sts)["securityContext"]
    assert sc.get("fsGroup") == sc.get("runAsGroup"), "the volume must be writable by the collector"


def test_collector_ports_service_and_probes_agree(collector_cfg):
    sts = collector_sts()
    c = container(sts)
    listen = collector_cfg["listen"]
    port = listen_port(listen)
    assert listen_host(listen) in ("0.0.0.0", "::"), "listen %s: agents come through the Service" % listen
    assert port_number(c, "https") == port
    for svc in find("Service"):
        for p in svc["spec"]["ports"]:
            assert port_number(c, p["targetPort"]) == port, svc["metadata"]["name"]
    scheme = "HTTP" if collector_cfg["insecure_dev_mode"] else "HTTPS"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        get = c[probe]["httpGet"]
        assert get["path"] == "/healthz"
        assert port_number(c, get["port"]) == port
        assert get.get("scheme", "HTTP") == scheme, "%s: /healthz is on the TLS listener" % probe


def test_collector_runs_unprivileged():
    sts = collector_sts()
    spec = pod_spec(sts)
    c = container(sts)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    sc = c["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert not sc.get("privileged")
    # SQLite's temporary files need a writable place
    env = {e["name"]: e.get("value") for e in c.get("env") or []}
    m, vol = mount_for(sts, c, env["TMPDIR"])
    assert m is not None and "emptyDir" in vol


def test_collector_configmap_is_accepted_by_the_collector(collector_cfg):
    assert collector_cfg["insecure_dev_mode"] is False
    assert collector_cfg["store"] == "local"


def test_server_certificate_names_the_service(issued, tmp_path):
    """The collector's certificate from issue-node-certs.sh is valid for the URL the agents use."""
    openssl = shutil.which("openssl")
    if not openssl:
        pytest.skip("openssl is not installed")
    _, secrets = issued
    crt = tmp_path / "server.crt"
    crt.write_bytes(secrets["sessrec-collector-tls"]["server.crt"])
    text = subprocess.run([openssl, "x509", "-in", str(crt), "-noout", "-ext", "subjectAltName"],
                          capture_output=True, text=True, check=True).stdout
    for name in ("sessrec-collector.%s.svc" % NAMESPACE, "sessrec-collector", "localhost",
                 "collector.example.com"):
        assert "DNS:%s" % name in text, text
