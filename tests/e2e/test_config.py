"""sessrec-agent's command line and configuration errors (no agent needs to run)."""
import os
import re
import subprocess

import pytest

from conftest import AGENT_BIN, SESSREC

BAD = [
    # (name, text, line of the error, a word the message must contain)
    ("wrong type", "node_name: x\npart_size: banana\n", 2, "part_size"),
    ("unknown key", "node_name: x\n\nbogus_key: 1\n", 3, "bogus_key"),
    ("unknown nested key", "enhanced_recording:\n  enabled: true\n  bufer_size: 8\n", 3, "bufer_size"),
    ("labels not a map", "log_level: info\nlabels: [a, b]\n", 2, "labels"),
    ("not a power of two", "enhanced_recording:\n  command_buffer_size: 3\n", 2, "command_buffer_size"),
    ("duplicate key", "log_level: info\nlog_level: debug\n", 2, "log_level"),
    ("bad log level", "node_name: x\nlog_level: loud\n", 2, "log_level"),
    ("relative root_path", "enhanced_recording:\n  root_path: /abs\n", 2, "root_path"),
    ("yaml syntax", "node_name: x\nlabels: {a: 1\nsocket: /tmp/s\n", None, None),
]


@pytest.mark.parametrize("name,text,line,word", BAD, ids=[b[0] for b in BAD])
def test_check_config_errors(tmp_path, name, text, line, word):
    path = str(tmp_path / "agent.yaml")
    with open(path, "w") as f:
        f.write(text)
    for args in (["--check-config", "-c", path], ["-c", path]):
        p = subprocess.run([AGENT_BIN, *args], capture_output=True, text=True, timeout=20)
        assert p.returncode != 0, (args, p)
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1, "one line of error: %r" % p.stderr
        m = re.search(re.escape(path) + r":(\d+):", lines[0])
        assert m, "the error says FILE:LINE: %r" % lines[0]
        if line is not None:
            assert int(m.group(1)) == line, "error on line %s, expected %d: %r" % (m.group(1), line, lines[0])
        if word is not None:
            assert word in lines[0], lines[0]


def test_check_config_ok(tmp_path):
    path = str(tmp_path / "agent.yaml")
    with open(path, "w") as f:
        f.write("node_name: n1\nlabels:\n  env: test\nenhanced_recording:\n  disk_buffer_size: 64\n")
    p = subprocess.run([AGENT_BIN, "--check-config", "-c", path], capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, p
    assert "OK" in p.stderr
    assert "disk_buffer_size: 64" in p.stdout and "env" in p.stdout, p.stdout


def test_help_and_version():
    for b in (AGENT_BIN, SESSREC):
        p = subprocess.run([b, "--help"], capture_output=True, text=True, timeout=20)
        assert p.returncode == 0 and "Usage" in p.stdout, p
        p = subprocess.run([b, "--version"], capture_output=True, text=True, timeout=20)
        assert p.returncode == 0 and re.search(r"\d+\.\d+", p.stdout), p
    for sub in ("run", "events", "play", "verify"):
        p = subprocess.run([SESSREC, sub, "--help"], capture_output=True, text=True, timeout=20)
        assert p.returncode == 0 and "Usage" in p.stdout, (sub, p)
    p = subprocess.run([AGENT_BIN, "--bogus"], capture_output=True, text=True, timeout=20)
    assert p.returncode == 2, p
    p = subprocess.run([SESSREC, "bogus-command"], capture_output=True, text=True, timeout=20)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p


def test_agent_refuses_non_root(tmp_path):
    os.chmod(str(tmp_path), 0o755)
    path = str(tmp_path / "agent.yaml")
    with open(path, "w") as f:
        f.write("node_name: x\n")
    os.chmod(path, 0o644)
    p = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", AGENT_BIN, "-c", path],
                       capture_output=True, text=True, timeout=20, cwd="/")
    assert p.returncode != 0, p
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "root" in lines[0], p.stderr
