"""
`make demo` and `make run` (demo/demo.sh, demo/run.sh) end to end, with the programs of
SESSREC_BUILD (copied first, so that a `make` meanwhile does not change them):

- the demo's output shows the session in `sessrec ls`, its commands (curl, base64, sh),
  the connection to its web server, the credentials file, a replay and a built-in
  summary of risk high or critical that names the download piped to a shell, the
  decode-and-execute and the credentials read;
- afterwards nothing is left: none of its processes (collector, agent, web server,
  session), no pin directory /sys/fs/bpf/sessrec_demo, no session cgroups, no listener on
  its ports, no temporary directory; the same after Ctrl-C in the middle of a session
  and after a program that does not come up (which is said in one line, with its log);
- make run: a collector and an agent that record a session through
  SESSREC_AGENT_SOCKET and SESSREC_URL, stopped by Ctrl-C.

The demo has its own pin directory (one agent per pin directory: the demo's lock is
/run/sessrec-agent-sessrec_demo.lock), so it runs beside the suite's other agents; a
demo someone else runs at the same time is waited for.
"""
import fcntl
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.path.abspath(os.environ.get("SESSREC_BUILD") or os.path.join(ROOT, "build"))
DEMO = os.path.join(ROOT, "demo", "demo.sh")
RUN = os.path.join(ROOT, "demo", "run.sh")
KEEP = os.environ.get("SESSREC_E2E_KEEP") == "1"
NAMES = ("sessrec", "sessrec-agent", "sessrec-collector")
DEMO_PIN = "/sys/fs/bpf/sessrec_demo"
DEMO_CGROUP = "/cgroup2/sessrec_demo"
DEMO_LOCK = "/run/sessrec-agent-sessrec_demo.lock"
RUN_PIN = "/sys/fs/bpf/sessrec_run"
RUN_CGROUP = "/cgroup2/sessrec_run"
RUN_LOCK = "/run/sessrec-agent-sessrec_run.lock"
SID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


# ------------------------------------------------------------------ helpers


@pytest.fixture(scope="module")
def root():
    d = tempfile.mkdtemp(prefix="sessrec-e2e-demo-", dir="/tmp")
    os.chmod(d, 0o755)
    yield d
    if not KEEP:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def build(root):
    """A copy of the programs in ROOT/build/bin (retried while one is being relinked)."""
    b = os.path.join(root, "build")
    os.makedirs(os.path.join(b, "bin"))
    for n in NAMES:
        src, dst = os.path.join(BUILD, "bin", n), os.path.join(b, "bin", n)
        ok = False
        for _ in range(60):
            try:
                shutil.copy2(src, dst)
                ok = subprocess.run([dst, "--version"], capture_output=True, timeout=10).returncode == 0
            except OSError:
                ok = False
            if ok:
                break
            time.sleep(1)  # missing, or being relinked right now
        assert ok, "%s is missing or does not run: run make first (or set SESSREC_BUILD)" % src
    return b


def lock_free(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def wait_lock_free(path, timeout=600):
    """Another demo (someone's `make demo`, another run of this suite) goes first."""
    deadline = time.monotonic() + timeout
    while not lock_free(path):
        assert time.monotonic() < deadline, "%s stayed taken for %ss" % (path, timeout)
        time.sleep(0.5)


def default_sigint():
    # Started from a shell without job control, SIGINT may be ignored here; the demo's
    # Ctrl-C handling needs it as a terminal would deliver it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(script, build, tmp, **env):
    e = dict(os.environ)
    for k in ("SESSREC_URL", "SESSREC_TOKEN", "SESSREC_CA", "SESSREC_AGENT_SOCKET", "DEMO_KEEP",
              "DEMO_SESSION"):
        e.pop(k, None)
    e.update(SESSREC_BUILD=build, TMPDIR=tmp, LC_ALL="C", **env)
    return subprocess.Popen([script], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=e, cwd=ROOT,
                            start_new_session=True, preexec_fn=default_sigint)


def run_demo(build, tmp, timeout=240, **env):
    wait_lock_free(DEMO_LOCK)
    p = start(DEMO, build, tmp, **env)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGTERM)
        out, err = p.communicate(timeout=60)
        raise AssertionError("demo.sh did not finish in %ss:\n%s\n%s" % (timeout, out[-3000:], err[-3000:]))
    return p.returncode, out, err


def pids_of(out):
    """The collector's, agent's and web server's pids from the demo's first lines."""
    return {int(m.group(2)) for m in re.finditer(r"^ *(collector|agent|web server) .*pid (\d+)$", out, re.M)}


def ports_of(out):
    return {int(p) for p in re.findall(r"http://127\.0\.0\.1:(\d+)", out)}


def listening(port):
    with socket.socket() as s:
        s.settimeout(2)
        try:
            s.connect(("127.0.0.1", port))
            return True
        except OSError:
            return False


def procs_mentioning(text):
    """Processes whose command line contains text."""
    found = []
    for d in glob.glob("/proc/[0-9]*"):
        try:
            with open(d + "/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd and int(d[6:]) != os.getpid():
            found.append("%s: %s" % (d[6:], cmd))
    return found


def session_pids(cgroup):
    """The processes in the session cgroups under cgroup."""
    pids = []
    for f in glob.glob(os.path.join(cgroup, "*", "cgroup.procs")):
        with open(f) as fh:
            pids += [int(x) for x in fh.read().split()]
    return pids


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def assert_nothing_left(out, tmp, pin=DEMO_PIN, cgroup=DEMO_CGROUP, lock=DEMO_LOCK, extra_pids=()):
    pids = pids_of(out) | set(extra_pids)
    assert pids, "no pids in the output:\n" + out
    left = [p for p in pids if alive(p)]
    assert not left, "still running after the demo: %s" % left
    procs = procs_mentioning(tmp)
    assert not procs, "processes of the demo still running:\n" + "\n".join(procs)
    assert not os.path.exists(pin), "%s is still there: %s" % (pin, os.listdir(pin))
    assert not os.path.exists(cgroup), "%s is still there" % cgroup
    for port in ports_of(out):
        assert not listening(port), "something still listens on 127.0.0.1:%d" % port
    assert lock_free(lock), "%s is still taken" % lock


def section(out, title):
    """The lines under the heading that starts with '== title', up to the next heading."""
    m = re.search(r"^== %s.*?\n(.*?)(?=^== |\Z)" % re.escape(title), out, re.M | re.S)
    assert m, "no section %r in:\n%s" % (title, out)
    return m.group(1)


# ------------------------------------------------------------------ make demo


@pytest.fixture(scope="module")
def demo(root, build):
    tmp = tempfile.mkdtemp(prefix="demo-", dir=root)
    rc, out, err = run_demo(build, tmp)
    return {"rc": rc, "out": out, "err": err, "tmp": tmp}


def test_demo_succeeds(demo):
    assert demo["rc"] == 0, "demo.sh failed (%d):\n%s\n%s" % (demo["rc"], demo["out"], demo["err"])
    assert demo["err"] == "", demo["err"]
    out = demo["out"]
    for title in ("sessrec demo", "A recorded session", "sessrec ls", "Its commands", "Its connections",
                  "Its files", "Replay", "Built-in summary", "Done"):
        section(out, title)
    assert len(out.splitlines()) < 160, "the demo's output is too long to read: %d lines" % len(out.splitlines())


def test_demo_shows_the_session(demo):
    out = demo["out"]
    m = re.search(r"^session (%s) ended \(exit 0\)" % SID_RE, out, re.M)
    assert m, out
    sid = m.group(1)
    ls = section(out, "sessrec ls")
    assert re.search(r"^%s\s.*\blocal\s+0\s+bash \S*session\.sh$" % sid[:8], ls, re.M), ls
    for what in ("command", "network"):
        assert re.search(r"^== Its \w+: sessrec events %s --type %s$" % (sid, what), out, re.M), out

    cmds = section(out, "Its commands")
    web = int(re.search(r"^web server\s+http://127\.0\.0\.1:(\d+)/setup\.sh", out, re.M).group(1))
    for pat in (r"command\s+uname\[\d+\] rc=0 uname -a$",
                r"command\s+id\[\d+\] rc=0 id$",
                r"command\s+cat\[\d+\] rc=0 cat /etc/os-release$",
                r"command\s+curl\[\d+\] rc=0 curl -fsSL http://127\.0\.0\.1:%d/setup\.sh$" % web,
                r"command\s+sh\[\d+\] rc=0 sh$",
                r"command\s+base64\[\d+\] rc=0 base64 -d$",
                r"command\s+cat\[\d+\] rc=0 cat \S+/home/\.aws/credentials$"):
        assert re.search(pat, cmds, re.M), "no %r in the commands:\n%s" % (pat, cmds)

    net = section(out, "Its connections")
    assert re.search(r"network\s+curl\[\d+\] rc=\S+ tcp 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:%d$" % web, net, re.M), net

    files = section(out, "Its files")
    assert re.search(r"disk\s+cat\[\d+\] rc=3 \S+/home/\.aws/credentials O_RDONLY$", files, re.M), files
    assert re.search(r"disk\s+sh\[\d+\] rc=3 \S+/home/\.bashrc O_WRONLY\|O_CREAT\|O_APPEND$", files, re.M), files
    assert not re.search(r" /usr/lib/| /lib/|ld\.so\.cache| /proc/", files), "libraries in the files:\n" + files
    assert len(files.splitlines()) < 20, files

    play = section(out, "Replay")
    assert re.search(r"~[#$] curl -fsSL http://127\.0\.0\.1:%d/setup\.sh \| sh$" % web, play, re.M), play
    assert "[setup] done" in play, play
    assert "aws_access_key_id = AKIAIOSFODNN7EXAMPLE" in play, play
    assert re.search(r"^payload: running as \S+ on \S+$", play, re.M), play


def test_demo_summary(demo):
    s = section(demo["out"], "Built-in summary")
    sid = re.search(r"^session (%s) ended" % SID_RE, demo["out"], re.M).group(1)
    assert re.search(r"^Session:\s+%s$" % sid, s, re.M), s
    m = re.search(r"^Risk:\s+(LOW|MEDIUM|HIGH|CRITICAL) \((\d+)/100\)", s, re.M)
    assert m and m.group(1) in ("HIGH", "CRITICAL"), s
    reasons = s.split("Risk reasons:", 1)[1].split("Commands of interest:", 1)[0]
    reasons = [r[4:] for r in reasons.splitlines() if r.startswith("  - ")]
    # e.g. "download piped to a shell: curl -fsSL http://127.0.0.1:PORT/setup.sh | sh"
    assert [r for r in reasons if re.search(r"download.*shell.*curl -fsSL \S+/setup\.sh", r, re.I)], reasons
    # "decoded data piped to a shell: base64 -d | sh"
    assert [r for r in reasons if re.search(r"decode.*base64 -d", r, re.I)], reasons
    # "credential file /tmp/.../home/.aws/credentials read by cat"
    assert [r for r in reasons if re.search(r"credential.*/home/\.aws/credentials.*\bcat\b", r, re.I)], reasons
    assert re.search(r"^Model:\s+builtin ", s, re.M), s


def test_demo_leaves_nothing(demo):
    assert_nothing_left(demo["out"], demo["tmp"])
    assert os.listdir(demo["tmp"]) == [], "the demo left files: %s" % os.listdir(demo["tmp"])


def test_demo_interrupted(root, build):
    """Ctrl-C while the session runs: the session, the programs and the files go."""
    tmp = tempfile.mkdtemp(prefix="demo-int-", dir=root)
    script = os.path.join(tmp, "slow-session.sh")
    with open(script, "w") as f:
        f.write('echo started > "$HOME/started"\nexec sleep 120\n')
    wait_lock_free(DEMO_LOCK)
    p = start(DEMO, build, tmp, DEMO_SESSION=script)
    try:
        deadline = time.monotonic() + 120
        while not glob.glob(os.path.join(tmp, "sessrec-demo.*", "home", "started")):
            assert p.poll() is None, "demo.sh ended early: %s %s" % p.communicate()
            assert time.monotonic() < deadline, "the session did not start"
            time.sleep(0.1)
        sleepers = session_pids(DEMO_CGROUP)
        assert sleepers
        t = time.monotonic()
        os.killpg(p.pid, signal.SIGINT)  # as a terminal does: the whole process group
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
    assert p.returncode == 130, (p.returncode, out, err)
    assert time.monotonic() - t < 30
    assert "demo: interrupted: stopping what it started" in err, err
    assert "Built-in summary" not in out
    assert_nothing_left(out, tmp, extra_pids=sleepers)
    assert not procs_mentioning(script)
    assert os.listdir(tmp) == ["slow-session.sh"], os.listdir(tmp)


def test_demo_failure_is_one_line(root, build):
    """A program that does not come up: one line saying which, the end of its log, and the
    others are stopped."""
    tmp = tempfile.mkdtemp(prefix="demo-fail-", dir=root)
    fake = os.path.join(tmp, "build")
    os.makedirs(os.path.join(fake, "bin"))
    for n in ("sessrec", "sessrec-agent"):
        os.symlink(os.path.join(build, "bin", n), os.path.join(fake, "bin", n))
    with open(os.path.join(fake, "bin", "sessrec-collector"), "w") as f:
        f.write('#!/bin/sh\necho "sessrec-collector error: /nowhere: cannot open the index" >&2\nexit 1\n')
    os.chmod(os.path.join(fake, "bin", "sessrec-collector"), 0o755)
    rc, out, err = run_demo(fake, tmp)
    assert rc == 1, (rc, out, err)
    lines = err.splitlines()
    assert lines[0] == "demo: sessrec-collector exited at start", err
    assert re.match(r"  last lines of \S+/collector/collector\.log:$", lines[1]), err
    assert lines[2] == "    sessrec-collector error: /nowhere: cannot open the index", err
    assert os.listdir(tmp) == ["build"], os.listdir(tmp)
    assert lock_free(DEMO_LOCK)


def test_make_targets():
    """make demo and make run install and build first, then run the scripts."""
    for target, script in (("demo", "demo/demo.sh"), ("run", "demo/run.sh")):
        p = subprocess.run(["make", "-n", "-p", target], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        rule = re.search(r"^%s: (.*)$" % target, p.stdout, re.M)
        assert rule and {"deps", "all"} <= set(rule.group(1).split()), rule and rule.group(0)
        assert re.search(r"^SESSREC_BUILD=\S+ %s$" % re.escape(script), p.stdout, re.M), p.stdout[-2000:]


# ------------------------------------------------------------------ make run


def test_run(root, build):
    """make run: record a session with the printed settings, read it back, stop with Ctrl-C."""
    tmp = tempfile.mkdtemp(prefix="run-", dir=root)
    state = os.path.join(tmp, "state")
    wait_lock_free(RUN_LOCK)
    p = start(RUN, build, tmp, RUN_DIR=state, RUN_PORT="0", RUN_METRICS_PORT="0")
    out = ""
    try:
        while "Ctrl-C stops both" not in out:
            line = p.stdout.readline()
            assert line, "run.sh ended early:\n%s%s" % (out, p.stderr.read())
            out += line
        url = re.search(r"^  export SESSREC_URL=(http://127\.0\.0\.1:\d+) SESSREC_AGENT_SOCKET=(\S+)$", out, re.M)
        assert url, out
        assert re.search(r"^  export PATH=%s:\$PATH$" % re.escape(os.path.join(build, "bin")), out, re.M), out
        env = dict(os.environ, SESSREC_URL=url.group(1), SESSREC_AGENT_SOCKET=url.group(2), LC_ALL="C")
        env.pop("SESSREC_TOKEN", None)
        sessrec = os.path.join(build, "bin", "sessrec")
        r = subprocess.run([sessrec, "run", "--", "sh", "-c", "echo made-by-run; cat /etc/shadow >/dev/null"],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=60)
        assert r.returncode == 0 and "made-by-run" in r.stdout, r
        sid = re.search(r"^session (%s)$" % SID_RE, r.stderr, re.M).group(1)
        deadline = time.monotonic() + 60
        while True:
            s = subprocess.run([sessrec, "summary", "--json", sid], capture_output=True, text=True, env=env,
                               timeout=30)
            if s.returncode == 0:
                break
            assert time.monotonic() < deadline, s.stderr
            time.sleep(0.2)
        assert json.loads(s.stdout)["risk_level"] in ("high", "critical"), s.stdout
        ls = subprocess.run([sessrec, "ls", "-j"], capture_output=True, text=True, env=env, timeout=30)
        assert [json.loads(x)["sid"] for x in ls.stdout.splitlines()] == [sid], ls
        os.killpg(p.pid, signal.SIGINT)
        rest, err = p.communicate(timeout=60)
        out += rest
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
    assert p.returncode == 0, (p.returncode, out, err)
    assert "stopped; state kept in %s" % state in out, out
    assert_nothing_left(out, tmp, pin=RUN_PIN, cgroup=RUN_CGROUP, lock=RUN_LOCK)
    assert os.path.isdir(os.path.join(state, "collector", "data")), "the state went away"
