"""
End-to-end test fixtures for sessrec: a real sessrec-agent, real sessions run
through `sessrec run`, and helpers to read what they produced.

Run as root:  cd tests/e2e && /usr/bin/python3 -m pytest -q -x .

Environment:
  SESSREC_BUILD          build directory (default: ../../build from this file)
  SESSREC_E2E_LOCK_WAIT  seconds to wait for another agent on this node to go
                         away before giving up (default 300). Only one
                         sessrec-agent can run per BPF pin directory
                         (/run/sessrec-agent.lock for the default one).
  SESSREC_E2E_PIN_PATH   a BPF pin directory of the suite's own (e.g.
                         /sys/fs/bpf/sessrec-e2e): no waiting for other agents
                         on a shared machine. Default: /sys/fs/bpf/sessrec.
  SESSREC_E2E_KEEP=1     keep the temporary directories (agent logs, recordings).

Only the standard library and pytest are used.
"""
import base64
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.abspath(os.environ.get("SESSREC_BUILD") or os.path.join(HERE, "..", "..", "build"))
BIN = os.path.join(BUILD, "bin")


def _snapshot_binaries():
    """Copy the programs under test once, at the start of the run.

    A run then tests one build from start to end, even when `make` rewrites build/bin
    meanwhile (a binary being linked cannot be executed), and the copies sit in a
    directory every user can reach (the permission tests run the client as nobody).
    """
    names = ("sessrec", "sessrec-agent")
    if not all(os.access(os.path.join(BIN, n), os.X_OK) for n in names):
        return {n: os.path.join(BIN, n) for n in names}  # _preconditions reports it
    d = tempfile.mkdtemp(prefix="sessrec-e2e-bin-", dir="/tmp")
    os.chmod(d, 0o755)
    if os.environ.get("SESSREC_E2E_KEEP") != "1":
        import atexit

        atexit.register(shutil.rmtree, d, True)
    out = {}
    for n in names:
        for attempt in range(20):
            dst = os.path.join(d, n)
            shutil.copy2(os.path.join(BIN, n), dst)
            os.chmod(dst, 0o755)
            try:
                ok = subprocess.run([dst, "--version"], capture_output=True, timeout=10).returncode == 0
            except OSError:
                ok = False
            if ok:
                break
            time.sleep(1)  # being rebuilt right now: try again
        out[n] = dst
    return out


_BINS = _snapshot_binaries()
SESSREC = _BINS["sessrec"]
AGENT_BIN = _BINS["sessrec-agent"]
DEFAULT_PIN_DIR = "/sys/fs/bpf/sessrec"
# Optional: run the suite's agents with their own BPF pin directory (enhanced_recording.pin_path),
# so that it does not wait for other agents on a shared machine. Default: the default directory.
PIN_DIR = os.environ.get("SESSREC_E2E_PIN_PATH") or DEFAULT_PIN_DIR
AGENT_LOCK = "/run/sessrec-agent.lock" if PIN_DIR == DEFAULT_PIN_DIR else \
    "/run/sessrec-agent-%s.lock" % os.path.basename(PIN_DIR.rstrip("/"))
CGROUP_PATH = "/cgroup2"
CGROUP_ROOT = "sessrec"
LOCK_WAIT_S = float(os.environ.get("SESSREC_E2E_LOCK_WAIT", "300"))
SID_RE = re.compile(r"^session ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$", re.M)
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
# The python the tests run under (Debian's); sessions use it for UDP and writev.
PY = "/usr/bin/python3"


def marker():
    """A unique token for file names and commands."""
    return "e2e" + uuid.uuid4().hex[:16]


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def poll(cond, timeout, interval=0.05, what="condition"):
    """Call cond() until it returns something truthy; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = cond()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def time_ms(t):
    """RFC 3339 UTC with ms -> integer ms since the epoch."""
    assert TIME_RE.match(t), "bad time format: %r" % t
    import calendar

    secs = calendar.timegm(time.strptime(t[:19], "%Y-%m-%dT%H:%M:%S"))
    return secs * 1000 + int(t[20:23])


# ------------------------------------------------------------------ agent


def yaml_str(s):
    return json.dumps(s)  # a JSON string is a valid YAML double-quoted scalar


class Agent:
    """One sessrec-agent process with its own data dir, audit log, socket and metrics port."""

    def __init__(self, workdir, **cfg):
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        os.chmod(workdir, 0o755)  # the socket must be reachable by non-root users in tests
        self.data_dir = cfg.pop("data_dir", os.path.join(workdir, "data"))
        self.audit_log = cfg.pop("audit_log", os.path.join(workdir, "audit.log"))
        self.socket = cfg.pop("socket", os.path.join(workdir, "agent.sock"))
        self.prefix = list(cfg.pop("prefix", ()))  # e.g. valgrind and its options
        self.cfg_port_given = "metrics_port" in cfg
        self.metrics_port = cfg.pop("metrics_port", None) or free_port()
        self.config_path = os.path.join(workdir, "agent.yaml")
        self.log_path = os.path.join(workdir, "agent.log")
        self.cfg = {
            "node_name": "e2e-node",
            "log_level": "info",
            "labels": {},
            "socket_group": None,
            "part_size": None,
            "part_interval": None,
            "er": {},
        }
        self.cfg.update(cfg)
        self.proc = None
        self.returncode = None
        self.write_config()

    @property
    def rec_dir(self):
        return os.path.join(self.data_dir, "recordings")

    @property
    def metrics_url(self):
        return "http://127.0.0.1:%d" % self.metrics_port

    def config_text(self):
        c = self.cfg
        lines = [
            "node_name: %s" % yaml_str(c["node_name"]),
            "data_dir: %s" % yaml_str(self.data_dir),
            "audit_log: %s" % yaml_str(self.audit_log),
            "socket: %s" % yaml_str(self.socket),
            "metrics_listen: %s" % yaml_str("127.0.0.1:%d" % self.metrics_port),
            "log_level: %s" % yaml_str(c["log_level"]),
        ]
        if c["socket_group"] is not None:
            lines.append("socket_group: %s" % yaml_str(c["socket_group"]))
        if c["part_size"] is not None:
            lines.append("part_size: %s" % c["part_size"])
        if c["part_interval"] is not None:
            lines.append("part_interval: %s" % c["part_interval"])
        if c["labels"]:
            lines.append("labels:")
            for k, v in c["labels"].items():
                lines.append("  %s: %s" % (k, yaml_str(v)))
        else:
            lines.append("labels: {}")
        er = dict(c["er"])
        if PIN_DIR != DEFAULT_PIN_DIR:
            er.setdefault("pin_path", yaml_str(PIN_DIR))
        if er:
            lines.append("enhanced_recording:")
            for k, v in er.items():
                lines.append("  %s: %s" % (k, v))
        return "\n".join(lines) + "\n"

    def write_config(self, text=None):
        with open(self.config_path, "w") as f:
            f.write(text if text is not None else self.config_text())

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def _ready(self):
        if not os.path.exists(self.socket):
            return False
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(self.socket)
        except OSError:
            return False
        finally:
            s.close()
        try:
            with urllib.request.urlopen(self.metrics_url + "/healthz", timeout=2) as r:
                return r.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def start(self, timeout=30, lock_wait=LOCK_WAIT_S):
        """Start the agent and wait until its socket and /healthz answer.

        Another agent on this node (someone else's) holds the node lock: wait
        for it to go away, up to lock_wait seconds.
        """
        assert not self.alive(), "agent already running"
        lock_deadline = time.monotonic() + lock_wait
        port_retries = 3
        while True:
            log = open(self.log_path, "ab")
            start_len = log.tell()
            self.proc = subprocess.Popen(
                self.prefix + [AGENT_BIN, "-c", self.config_path],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
            log.close()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if self._ready():
                    return self
                time.sleep(0.05)
            if self.proc.poll() is None:
                self.kill()
                raise AssertionError("agent did not become ready in %ss:\n%s" % (timeout, self.log_tail()))
            with open(self.log_path, "rb") as f:
                f.seek(start_len)
                out = f.read().decode(errors="replace")
            self.returncode = self.proc.returncode
            self.proc = None
            if "already running" in out and time.monotonic() < lock_deadline:
                time.sleep(0.5)  # someone else's agent: wait our turn
                continue
            if "Address already in use" in out and port_retries > 0 and not self.cfg_port_given:
                port_retries -= 1  # someone took the free port we picked: pick another
                self.metrics_port = free_port()
                self.write_config()
                continue
            raise AssertionError("agent exited with %s at start:\n%s" % (self.returncode, out))

    def signal(self, sig):
        assert self.alive(), "agent not running"
        self.proc.send_signal(sig)

    def stop(self, timeout=20):
        """SIGTERM and wait; SIGKILL (and fail) when it does not stop in time."""
        if self.proc is None:
            return self.returncode
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError("agent did not stop within %ss of SIGTERM:\n%s" % (timeout, self.log_tail()))
        self.returncode = self.proc.returncode
        self.proc = None
        return self.returncode

    def kill(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.returncode = self.proc.returncode
        self.proc = None

    # -------------------------------------------------- outputs

    def rec_path(self, sid):
        return os.path.join(self.rec_dir, sid + ".rec")

    def recordings(self):
        try:
            return sorted(os.path.join(self.rec_dir, n) for n in os.listdir(self.rec_dir) if n.endswith(".rec"))
        except FileNotFoundError:
            return []

    def audit(self, sid=None):
        """The audit log's events (optionally one session's), parsed; every line must be JSON."""
        try:
            with open(self.audit_log, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        out = []
        lines = data.split(b"\n")
        lines.pop()  # empty after the last newline, or a line being written right now
        for i, line in enumerate(lines):
            try:
                ev = json.loads(line)
            except ValueError:
                raise AssertionError("audit log line %d is not JSON: %r" % (i + 1, line[:200]))
            if sid is None or ev.get("sid") == sid:
                out.append(ev)
        return out

    def audit_raw(self):
        try:
            with open(self.audit_log, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return b""

    def metrics(self):
        return get_metrics(self.metrics_url)

    def wait_recording(self, sid, timeout=20):
        """Poll until the session's recording verifies (it is final); return its events."""
        path = self.rec_path(sid)
        last = {}

        def ok():
            if not os.path.exists(path):
                last["why"] = "no file %s" % path
                return False
            p = subprocess.run([SESSREC, "verify", path], capture_output=True, text=True)
            last["why"] = p.stderr.strip() or p.stdout.strip()
            return p.returncode == 0

        try:
            poll(ok, timeout, interval=0.1, what="recording %s to be final" % sid)
        except AssertionError as e:
            raise AssertionError("%s: last verify said: %s\nagent log:\n%s" % (e, last.get("why"), self.log_tail()))
        return load_events(path)

    def wait_audit_end(self, sid, timeout=10):
        return poll(
            lambda: [e for e in self.audit(sid) if e["event"] == "session.end"],
            timeout,
            what="session.end of %s in the audit log" % sid,
        )


def get_metrics(base):
    """Parse Prometheus text exposition into {(name, labels_tuple): value}."""
    with urllib.request.urlopen(base + "/metrics", timeout=5) as r:
        assert r.status == 200
        text = r.read().decode()
    out = {}
    line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)$')
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = line_re.match(line)
        assert m, "bad metrics line: %r" % line
        labels = ()
        if m.group(3):
            labels = tuple(sorted(tuple(kv.split("=", 1)) for kv in re.findall(r'[a-zA-Z_]\w*="[^"]*"', m.group(3))))
            labels = tuple((k, v.strip('"')) for k, v in labels)
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def lock_is_free():
    """True when no sessrec-agent holds the node lock (we take and release it)."""
    fd = os.open(AGENT_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    return True


@contextlib.contextmanager
def node_lock(timeout=LOCK_WAIT_S):
    """Hold the node-wide agent lock ourselves, so that no agent can start meanwhile."""
    fd = os.open(AGENT_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("the node's agent lock stayed taken for %ss" % timeout)
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)


# ------------------------------------------------------------------ recordings


def load_events(path, check=True):
    p = subprocess.run([SESSREC, "events", "--json", path], capture_output=True)
    if check:
        assert p.returncode == 0, "sessrec events %s: %s" % (path, p.stderr.decode(errors="replace"))
    evs = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    return evs


def verify(path):
    return subprocess.run([SESSREC, "verify", path], capture_output=True, text=True)


def of(evs, kind):
    return [e for e in evs if e["event"] == kind]


def start_of(evs):
    s = of(evs, "session.start")
    assert len(s) == 1, "expected one session.start, got %d" % len(s)
    return s[0]


def end_of(evs):
    s = of(evs, "session.end")
    assert len(s) == 1, "expected one session.end, got %d" % len(s)
    return s[0]


def print_bytes(evs, pid=None):
    return b"".join(
        base64.b64decode(e["data_b64"]) for e in of(evs, "print") if pid is None or e["pid"] == pid
    )


def lost_terminal_bytes(evs):
    return sum(e["bytes"] for e in of(evs, "session.lost") if e["class"] == "terminal")


def commands(evs, path=None, argv0=None):
    return [
        e
        for e in of(evs, "session.command")
        if (path is None or e["path"] == path) and (argv0 is None or (e["argv"] and e["argv"][0] == argv0))
    ]


def check_common(evs, sid):
    """Invariants of every recording: ei from 0 by one, start first, end last, common fields."""
    assert evs, "empty recording"
    assert evs[0]["event"] == "session.start", evs[0]
    assert evs[-1]["event"] == "session.end", evs[-1]
    assert [e["ei"] for e in evs] == list(range(len(evs))), "ei must start at 0 and grow by exactly one"
    st = evs[0]
    uids = set()
    for e in evs:
        assert e["sid"] == sid
        assert UUID_RE.match(e["uid"]), e
        assert e["uid"] not in uids, "duplicate event uid %s" % e["uid"]
        uids.add(e["uid"])
        assert TIME_RE.match(e["time"]), e
        for k in ("server_id", "server_hostname", "login", "user"):
            assert e[k] == st[k], (k, e)
        if e["event"] == "print":
            assert "code" not in e
        if "cgroup_id" in e:
            assert e["cgroup_id"] == st["cgroup_id"], e
    t0, t1 = time_ms(evs[0]["time"]), time_ms(evs[-1]["time"])
    for e in evs:
        assert t0 <= time_ms(e["time"]) <= t1, "event time outside the session: %s" % e
    codes = {
        "session.start": "T2000I",
        "session.end": "T2004I",
        "session.command": "T4000I",
        "session.disk": "T4001I",
        "session.network": "T4002I",
        "session.lost": "SR4010W",
    }
    for e in evs:
        if e["event"] in codes:
            assert e["code"] == codes[e["event"]], e
        else:
            assert e["event"] == "print", "unknown event %s" % e["event"]
    for e in of(evs, "session.network"):
        assert e["version"] in (4, 6) and e["protocol"] in ("tcp", "udp"), e


def check_prints(evs):
    """ci from 0 by one, offset = previous offset + bytes (+ lost bytes between), ms non-decreasing."""
    ci, off, ms = 0, 0, 0
    for e in evs:
        if e["event"] == "session.lost" and e["class"] == "terminal":
            off += e["bytes"]
        if e["event"] != "print":
            continue
        data = base64.b64decode(e["data_b64"])
        assert e["ci"] == ci, "ci %d, expected %d" % (e["ci"], ci)
        assert e["offset"] == off, "ci %d: offset %d, expected %d" % (ci, e["offset"], off)
        assert e["bytes"] == len(data) > 0, e
        assert e["ms"] >= ms, "ms went backwards at ci %d: %d < %d" % (ci, e["ms"], ms)
        assert e["tty"].startswith("/dev/pts/"), e
        ci, off, ms = ci + 1, off + len(data), e["ms"]


# ------------------------------------------------------------------ sessions


class Result:
    def __init__(self, rc, out, err, sid, pid, elapsed):
        self.rc, self.out, self.err, self.sid, self.pid, self.elapsed = rc, out, err, sid, pid, elapsed

    def __iter__(self):  # rc, out, sid = run_session(...)
        return iter((self.rc, self.out, self.sid))

    def __repr__(self):
        return "Result(rc=%r, sid=%r, out=%r, err=%r)" % (self.rc, self.sid, self.out[:300], self.err[:300])


def parse_sid(err):
    m = SID_RE.search(err.decode(errors="replace") if isinstance(err, bytes) else err)
    return m.group(1) if m else None


def run_args(agent, cmd, opts=()):
    sock = agent if isinstance(agent, str) else agent.socket
    return [SESSREC, "run", "--agent-socket", sock, *opts, "--", *cmd]


def session_env(extra=None):
    env = dict(os.environ)
    env.pop("SUDO_USER", None)
    env.pop("SESSREC_AGENT_SOCKET", None)
    env["LC_ALL"] = "C"
    if extra:
        env.update(extra)
    return env


def run_session(agent, cmd, input=b"", opts=(), timeout=60, prefix=(), env=None, cwd=None):
    """Run cmd as a recorded session; returns Result(rc, out, err, sid, pid, elapsed)."""
    t = time.monotonic()
    p = subprocess.Popen(
        [*prefix, *run_args(agent, cmd, opts)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env or session_env(),
        cwd=cwd,
    )
    try:
        out, err = p.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise AssertionError("sessrec run %r timed out after %ss: %r %r" % (cmd, timeout, out[-500:], err[-500:]))
    return Result(p.returncode, out, err, parse_sid(err), p.pid, time.monotonic() - t)


class Background:
    """A session whose launcher runs in the background; stdin is a pipe."""

    def __init__(self, agent, cmd, opts=(), env=None):
        self.proc = subprocess.Popen(
            run_args(agent, cmd, opts),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env or session_env(),
        )
        self.pid = self.proc.pid
        line = b""
        deadline = time.monotonic() + 20
        # the first stderr line is "session <sid>"
        while not line.endswith(b"\n") and time.monotonic() < deadline:
            c = self.proc.stderr.read(1)
            if not c:
                break
            line += c
        self.sid = parse_sid(line)
        if not self.sid:
            self.proc.kill()
            raise AssertionError("no session line from sessrec run: %r" % line)

    def finish(self, input=b"", timeout=30):
        try:
            out, err = self.proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError("background session did not finish: %r %r" % (out[-300:], err[-300:]))
        return Result(self.proc.returncode, out, err, self.sid, self.pid, 0)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


def session_cgroup(sid):
    return os.path.join(CGROUP_PATH, CGROUP_ROOT, sid)


def kill_session_cgroup(sid):
    """Kill whatever is left in a session cgroup (cleanup after tests that stop the agent)."""
    p = os.path.join(session_cgroup(sid), "cgroup.kill")
    with contextlib.suppress(OSError):
        with open(p, "w") as f:
            f.write("1")


# ------------------------------------------------------------------ fixtures


def pytest_configure(config):
    config.addinivalue_line("markers", "agent_config(**cfg): configuration of the module's agent")


@pytest.fixture(scope="session", autouse=True)
def _preconditions():
    assert os.geteuid() == 0, "the end-to-end tests must run as root"
    for b in (SESSREC, AGENT_BIN):
        assert os.access(b, os.X_OK), "%s is missing: run make first (or set SESSREC_BUILD)" % b
        p = subprocess.run([b, "--version"], capture_output=True, text=True, timeout=10)
        assert p.returncode == 0, "%s --version: %s" % (b, p.stderr)
    yield


@pytest.fixture(scope="session")
def workroot():
    d = tempfile.mkdtemp(prefix="sessrec-e2e-", dir="/tmp")
    os.chmod(d, 0o755)
    yield d
    if os.environ.get("SESSREC_E2E_KEEP") != "1":
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def tmpdir_world(workroot):
    """A per-test directory under /tmp that every user can read and traverse."""
    d = tempfile.mkdtemp(prefix="t-", dir=workroot)
    os.chmod(d, 0o755)
    return d


class _SharedAgent:
    """One agent with the default test configuration, shared by every module that has no
    AGENT_CONFIG of its own: starting agents is cheap, but only one may run per node, and
    other people's agents on a shared machine make every start a possible wait."""

    def __init__(self, root):
        self.root = root
        self.agent = None
        self.made = []

    def get(self):
        if self.agent is None:
            a = Agent(tempfile.mkdtemp(prefix="shared-", dir=self.root))
            self.made.append(a)
            a.start()
            self.agent = a
        return self.agent

    def suspend(self):
        """Stop it (a module or test needs an agent of its own)."""
        if self.agent is not None:
            a, self.agent = self.agent, None
            a.stop()


def _verify_all(agents):
    bad = []
    for a in agents:
        for p in a.recordings():
            r = verify(p)
            if r.returncode != 0:
                bad.append((p, r.stderr.strip()))
    assert not bad, "recordings that do not verify after their agent stopped: %s" % bad


@pytest.fixture(scope="session")
def _shared(workroot):
    sh = _SharedAgent(workroot)
    yield sh
    sh.suspend()
    _verify_all(sh.made)


@pytest.fixture(scope="module")
def agent(request, _shared, workroot):
    """A running agent for the module.

    Modules without AGENT_CONFIG share one agent (default test configuration); a module
    with AGENT_CONFIG = {...} (keys of Agent()) gets its own, stopped at the module's end.
    Either way the agent must stay alive for the whole module, and every recording it made
    must verify once it stopped.
    """
    cfg = getattr(request.module, "AGENT_CONFIG", None)
    if cfg is None:
        a = _shared.get()
        pid = a.proc.pid
        yield a
        assert a.alive() and a.proc.pid == pid, "the agent died during the module:\n%s" % a.log_tail()
        return
    _shared.suspend()
    name = request.module.__name__.rsplit(".", 1)[-1]
    a = Agent(tempfile.mkdtemp(prefix=name + "-", dir=workroot), **dict(cfg))
    a.start()
    try:
        yield a
    finally:
        alive = a.alive()
        a.stop()
    assert alive, "the agent died during the module:\n%s" % a.log_tail()
    _verify_all([a])


def pytest_collection_modifyitems(session, config, items):
    """Run the modules that share the default agent first, then those with agents of their own."""
    order = {}

    def key(it):
        mod = getattr(it, "module", None)
        return mod.__name__ if mod is not None else it.nodeid.split("::")[0]

    for i, it in enumerate(items):
        mod = getattr(it, "module", None)
        own = hasattr(mod, "AGENT_CONFIG") or "agent_factory" in getattr(it, "fixturenames", ())
        grp, first = order.get(key(it), (0, i))
        order[key(it)] = (max(grp, 1 if own else 0), first)
    items.sort(key=lambda it: order[key(it)])


@pytest.fixture
def agent_factory(workroot, _shared):
    """Make agents (not started) for tests that need their own; all are stopped afterwards."""
    _shared.suspend()
    made = []

    def make(**cfg):
        a = Agent(tempfile.mkdtemp(prefix="agent-", dir=workroot), **cfg)
        made.append(a)
        return a

    yield make
    for a in made:
        with contextlib.suppress(Exception):
            a.stop()
        a.kill()


# ------------------------------------------------------------------ raw launcher protocol

def _pb_varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def _pb_field(num, value):
    if isinstance(value, int):
        return _pb_varint(num << 3) + _pb_varint(value)
    if isinstance(value, str):
        value = value.encode()
    return _pb_varint(num << 3 | 2) + _pb_varint(len(value)) + value


def open_request_frame(pid, command=("true",), user="raw", login="raw"):
    """A framed sessrec.agent.Request{open: OpenRequest{...}} (proto/agent.proto), built by hand."""
    req = _pb_field(1, user) + _pb_field(2, login) + _pb_field(3, "local")
    for c in command:
        req += _pb_field(4, c)
    req += _pb_field(8, pid)
    msg = _pb_field(1, req)
    return len(msg).to_bytes(4, "big") + msg


RAW_CLIENT = r'''
import socket, struct, sys
path, frame = sys.argv[1], bytes.fromhex(sys.argv[2])
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(path)
try:
    s.sendall(frame)
except OSError as e:
    print("send-error", e.errno)
data = b""
while True:
    try:
        c = s.recv(65536)
    except OSError as e:
        print("recv-error", e.errno)
        break
    if not c:
        break
    data += c
    if len(data) >= 4 and len(data) >= 4 + struct.unpack(">I", data[:4])[0]:
        break
print("reply", data.hex())
'''


def parse_reply(hexdata):
    """Decode a framed sessrec.agent.Reply: {error, message, sid, cgroup}."""
    data = bytes.fromhex(hexdata)
    out = {"error": 0, "message": "", "sid": "", "cgroup": ""}
    if len(data) < 4:
        return None
    body = data[4: 4 + int.from_bytes(data[:4], "big")]
    pos = 0
    names = {1: "error", 2: "message", 3: "sid", 4: "cgroup"}

    def varint(p):
        shift = val = 0
        while True:
            c = body[p]
            p += 1
            val |= (c & 0x7F) << shift
            if not c & 0x80:
                return val, p
            shift += 7

    while pos < len(body):
        key, pos = varint(pos)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, pos = varint(pos)
            out[names.get(num, num)] = v
        elif wt == 2:
            n, pos = varint(pos)
            out[names.get(num, num)] = body[pos: pos + n].decode(errors="replace")
            pos += n
        else:
            raise AssertionError("unexpected wire type in a Reply")
    return out


# ------------------------------------------------------------------ figures shown after the run

_FIGURES = []


def report(line):
    """A line for the summary at the end of the run (burst sizes, losses, timings)."""
    _FIGURES.append(line)
    print(line)


def pytest_terminal_summary(terminalreporter):
    if _FIGURES:
        terminalreporter.section("sessrec e2e figures")
        for line in _FIGURES:
            terminalreporter.write_line(line)
