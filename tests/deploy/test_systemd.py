"""
deploy/systemd: `systemd-analyze verify` accepts both units (it needs neither
systemd as PID 1 nor root, but the ExecStart= programs must exist: the test
verifies copies whose ExecStart= point at build/bin), and the units agree with
the programs' defaults and keep what the agent needs.
"""
import os
import re
import shutil
import subprocess

import pytest

from conftest import AGENT, BIN, COLLECTOR, SYSTEMD, effective, need_programs, read

UNITS = ("sessrec-agent.service", "sessrec-collector.service")


def parse_unit(text):
    """{section: {key: [values]}}; repeated keys accumulate, an empty value resets."""
    out, section = {}, None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        m = re.match(r"^\[(\w+)\]$", line)
        if m:
            section = out.setdefault(m.group(1), {})
            continue
        assert section is not None, line
        key, _, value = line.partition("=")
        key, value = key.strip(), value.strip()
        vals = section.setdefault(key, [])
        if value == "":
            vals.clear()
        vals.append(value)
    return out


def unit(name):
    return parse_unit(read(os.path.join(SYSTEMD, name)))


def svc(name, key):
    vals = unit(name)["Service"].get(key)
    return vals[-1] if vals else None


def caps(name):
    v = unit(name)["Service"].get("CapabilityBoundingSet", [])
    return set(" ".join(v).split())


@pytest.fixture(scope="module", autouse=True)
def programs():
    need_programs()


def test_systemd_analyze_verify(tmp_path):
    sa = shutil.which("systemd-analyze")
    if not sa:
        pytest.skip("systemd-analyze is not installed (Debian: systemd)")
    paths = []
    for name in UNITS:
        text = read(os.path.join(SYSTEMD, name))
        prog = name.replace(".service", "")
        assert "/usr/local/bin/" + prog in text
        text = text.replace("/usr/local/bin/" + prog, os.path.join(BIN, prog))
        p = tmp_path / name
        p.write_text(text)
        paths.append(str(p))
    r = subprocess.run([sa, "verify"] + paths, capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, SYSTEMD_LOG_LEVEL="warning"))
    # verify exits 0 on unknown keys and bad values too: any line about our files fails
    ours = [ln for ln in (r.stdout + r.stderr).splitlines() if str(tmp_path) in ln or
            "sessrec" in ln]
    assert r.returncode == 0 and not ours, r.stdout + r.stderr


def test_exec_start_and_config_paths():
    assert svc("sessrec-agent.service", "ExecStart") == \
        "/usr/local/bin/sessrec-agent -c /etc/sessrec/agent.yaml"
    assert svc("sessrec-collector.service", "ExecStart") == \
        "/usr/local/bin/sessrec-collector -c /etc/sessrec/collector.yaml"
    for name in UNITS:
        assert svc(name, "Type") == "exec"
        assert svc(name, "ExecReload") == "/bin/kill -HUP $MAINPID"
        assert unit(name)["Install"]["WantedBy"] == ["multi-user.target"]


def test_agent_directories_match_its_defaults(tmp_path):
    cfg = effective(AGENT, "", tmp_path)
    assert svc("sessrec-agent.service", "StateDirectory") == os.path.relpath(cfg["data_dir"], "/var/lib")
    assert svc("sessrec-agent.service", "LogsDirectory") == \
        os.path.relpath(os.path.dirname(cfg["audit_log"]), "/var/log")
    assert svc("sessrec-agent.service", "RuntimeDirectory") == \
        os.path.relpath(os.path.dirname(cfg["socket"]), "/run")
    # /run/sessrec must survive a stop: launchers and pam_sessrec.so hold its path
    assert svc("sessrec-agent.service", "RuntimeDirectoryPreserve") == "yes"


def test_agent_keeps_what_it_needs():
    s = unit("sessrec-agent.service")["Service"]
    assert "User" not in s or s["User"] == ["root"]
    need = {"CAP_BPF", "CAP_PERFMON", "CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_DAC_OVERRIDE",
            "CAP_CHOWN", "CAP_KILL", "CAP_SYS_NICE"}
    assert caps("sessrec-agent.service") == need
    # options that hide or freeze /sys, /proc, /dev or the cgroup tree break the agent
    for key in ("ProtectKernelTunables", "ProtectControlGroups", "PrivateDevices", "ProtectProc",
                "PrivateUsers", "PrivateNetwork", "DynamicUser", "ProtectClock", "DevicePolicy",
                "SystemCallFilter"):
        assert key not in s or s[key][-1] in ("no", "false", "default"), key
    assert svc("sessrec-agent.service", "ProtectSystem") in ("no", "true", "yes", "full"), \
        "strict would make the root filesystem read-only (cgroup_path is created there)"
    assert svc("sessrec-agent.service", "NoNewPrivileges") == "yes"
    assert svc("sessrec-agent.service", "MemoryDenyWriteExecute") == "yes"
    assert svc("sessrec-agent.service", "KillMode") in (None, "control-group", "mixed")


def test_collector_is_locked_down(tmp_path):
    s = unit("sessrec-collector.service")["Service"]
    assert caps("sessrec-collector.service") == set(), "an empty CapabilityBoundingSet="
    assert s["User"][-1] not in ("", "root", "0")
    for key, want in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
                      ("PrivateTmp", "yes"), ("PrivateDevices", "yes"), ("MemoryDenyWriteExecute", "yes"),
                      ("ProtectKernelTunables", "yes"), ("ProtectControlGroups", "yes"),
                      ("RestrictNamespaces", "yes"), ("SystemCallArchitectures", "native")):
        assert svc("sessrec-collector.service", key) == want, key
    cfg = effective(COLLECTOR, "", tmp_path)
    # data_dir is the StateDirectory (writable under ProtectSystem=strict)
    assert svc("sessrec-collector.service", "StateDirectory") == os.path.relpath(cfg["data_dir"], "/var/lib")
    # the sysusers file creates the unit's user
    sysusers = read(os.path.join(SYSTEMD, "sessrec.sysusers"))
    m = re.search(r"^u\s+(\S+)\s", sysusers, re.M)
    assert m and m.group(1) == s["User"][-1]
    assert s["Group"][-1] == m.group(1)
