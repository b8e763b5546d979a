"""
Helpers of the collector end-to-end tests (the fixtures are in conftest.py): a real
sessrec-collector over TLS with the cluster CA of `sessrec-collector ca init`, real
sessrec-agents uploading to it with node certificates, real sessions through `sessrec run`,
and the real clients (curl, the sessrec CLI, asciinema, promtool) reading it back.

Run as root after `make`:  cd tests/e2e/collector && /usr/bin/python3 -m pytest -q .

Environment:
  SESSREC_BUILD          build directory (default: ../../../build from this file)
  SESSREC_E2E_KEEP=1     keep the temporary directories (configs, logs, data dirs) under
                         /tmp/sessrec-ce-*

The agents here use BPF pin directories and cgroup roots of their own
(/sys/fs/bpf/sessrec_ce, sessrec_ce2; /cgroup2/sessrec_ce...), so they run beside the agents
of other suites. Ports come from 25000-25999. Every process a test starts is stopped by the
fixture that made it, on failure too; nothing is ever killed by name.

Only the standard library and pytest are used.
"""
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))

BUILD = os.path.abspath(os.environ.get("SESSREC_BUILD") or os.path.join(HERE, "..", "..", "..", "build"))
BIN = os.path.join(BUILD, "bin")
KEEP = os.environ.get("SESSREC_E2E_KEEP") == "1"
NAMES = ("sessrec", "sessrec-agent", "sessrec-collector")

# Our own BPF pin directories and session cgroup roots: one agent per pin directory.
PINS = (("/sys/fs/bpf/sessrec_ce", "sessrec_ce"), ("/sys/fs/bpf/sessrec_ce2", "sessrec_ce2"))
CGROUP_PATH = "/cgroup2"
PORT_RANGE = (25000, 25999)
NODE = "ce-node"
NODE2 = "ce-node2"

SID_RE = re.compile(r"session ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
PY = "/usr/bin/python3"
CURL = "/usr/bin/curl"


def _snapshot_binaries():
    """Copy the programs once: a run tests one build even when `make` rewrites build/bin."""
    if not all(os.access(os.path.join(BIN, n), os.X_OK) for n in NAMES):
        return {n: os.path.join(BIN, n) for n in NAMES}  # the preconditions fixture says so
    d = tempfile.mkdtemp(prefix="sessrec-ce-bin-", dir="/tmp")
    os.chmod(d, 0o755)
    if not KEEP:
        import atexit

        atexit.register(shutil.rmtree, d, True)
    out = {}
    for n in NAMES:
        dst = os.path.join(d, n)
        for _ in range(20):
            shutil.copy2(os.path.join(BIN, n), dst)
            os.chmod(dst, 0o755)
            try:
                ok = subprocess.run([dst, "--version"], capture_output=True, timeout=10).returncode == 0
            except OSError:
                ok = False
            if ok:
                break
            time.sleep(1)  # being relinked right now: copy again
        out[n] = dst
    return out


_BINS = _snapshot_binaries()
SESSREC = _BINS["sessrec"]
AGENT_BIN = _BINS["sessrec-agent"]
COLLECTOR_BIN = _BINS["sessrec-collector"]


# ------------------------------------------------------------------ small helpers


def poll(cond, timeout, interval=0.1, what="condition"):
    """Call cond() until it returns something truthy; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def pick_port():
    """A free TCP port on 127.0.0.1 in our range (someone may still take it: callers retry)."""
    ports = list(range(PORT_RANGE[0], PORT_RANGE[1] + 1))
    random.shuffle(ports)
    for p in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                continue
            return p
    raise AssertionError("no free port in %d-%d" % PORT_RANGE)


def yq(s):
    return json.dumps(s)  # a JSON string is a YAML double-quoted scalar


def tail(path, n=40):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except FileNotFoundError:
        return "(no %s)" % path


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


class Http:
    """What curl answered: status (0 when no HTTP answer), body, curl's exit code and stderr."""

    def __init__(self, status, body, rc, err):
        self.status, self.body, self.rc, self.err = status, body, rc, err

    def json(self):
        return json.loads(self.body)

    def lines(self):
        return [json.loads(l) for l in self.body.splitlines() if l.strip()]

    def __repr__(self):
        return "Http(status=%r, rc=%r, body=%r, err=%r)" % (self.status, self.rc, self.body[:400], self.err[:300])


def curl(url, *opts, method=None, token=None, data=None, data_file=None, ca=None, cert=None, timeout=30,
         headers=(), output="-"):
    """curl drives the API: returns Http(status, body, rc, stderr). cert: (crt, key); output: a file
    for the body (the body is then empty)."""
    args = [CURL, "-sS", "--max-time", str(timeout), "-o", output, "-w", "\n%{http_code}"]
    if ca:
        args += ["--cacert", ca]
    if cert:
        args += ["--cert", cert[0], "--key", cert[1]]
    if token:
        args += ["-H", "Authorization: Bearer " + token]
    for h in headers:
        args += ["-H", h]
    if method:
        args += ["-X", method]
    inp = None
    if data is not None:
        args += ["--data-binary", "@-", "-H", "Content-Type: application/octet-stream"]
        inp = data if isinstance(data, bytes) else data.encode()
    elif data_file is not None:
        args += ["--data-binary", "@" + data_file, "-H", "Content-Type: application/octet-stream"]
    args += list(opts) + [url]
    p = subprocess.run(args, input=inp, capture_output=True, timeout=timeout + 10)
    out = p.stdout
    i = out.rfind(b"\n")
    try:
        status = int(out[i + 1:])
    except ValueError:
        status = 0
    return Http(status, out[:i] if i >= 0 else b"", p.returncode, p.stderr.decode(errors="replace"))


# ------------------------------------------------------------------ PKI


class Pki:
    """`sessrec-collector ca init` + `ca issue-node` for our nodes."""

    def __init__(self, d, hosts="localhost,127.0.0.1", nodes=(NODE, NODE2)):
        self.dir = d
        p = subprocess.run([COLLECTOR_BIN, "ca", "init", "--dir", d, "--host", hosts],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, "ca init: %s" % p.stderr
        for n in nodes:
            p = subprocess.run([COLLECTOR_BIN, "ca", "issue-node", n, "--dir", d],
                               capture_output=True, text=True, timeout=60)
            assert p.returncode == 0, "ca issue-node %s: %s" % (n, p.stderr)
        self.ca = os.path.join(d, "ca.crt")

    def path(self, name):
        return os.path.join(self.dir, name)

    def node(self, name=NODE):
        return (self.path(name + ".crt"), self.path(name + ".key"))


# ------------------------------------------------------------------ collector


class Collector:
    """One sessrec-collector with its own config, data dir and port."""

    def __init__(self, workdir, pki, dev=False, listen_host="127.0.0.1", prefix=(), **extra):
        self.dir = workdir
        self.prefix = list(prefix)  # e.g. valgrind and its options
        os.makedirs(workdir, exist_ok=True)
        self.pki = pki
        self.dev = dev
        self.host = listen_host
        self.port = pick_port()
        self.data_dir = os.path.join(workdir, "data")
        self.config_path = os.path.join(workdir, "collector.yaml")
        self.log_path = os.path.join(workdir, "collector.log")
        self.extra = extra
        self.proc = None
        self.write_config()

    @property
    def url(self):
        return "%s://127.0.0.1:%d" % ("http" if self.dev else "https", self.port)

    def config_text(self):
        lines = [
            "listen: %s" % yq("%s:%d" % (self.host, self.port)),
            "data_dir: %s" % yq(self.data_dir),
            "log_level: info",
        ]
        if self.dev:
            lines.append("insecure_dev_mode: true")
        else:
            lines += [
                "tls:",
                "  cert_file: %s" % yq(self.pki.path("server.crt")),
                "  key_file: %s" % yq(self.pki.path("server.key")),
                "  client_ca_file: %s" % yq(self.pki.ca),
            ]
        for k, v in self.extra.items():
            lines.append("%s: %s" % (k, v))
        return "\n".join(lines) + "\n"

    def write_config(self):
        with open(self.config_path, "w") as f:
            f.write(self.config_text())

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_tail(self, n=40):
        return tail(self.log_path, n)

    def healthy(self):
        r = curl(self.url + "/healthz", ca=self.pki.ca, timeout=5)
        return r.status == 200

    def start(self, timeout=30):
        assert not self.alive(), "collector already running"
        retries = 3
        while True:
            log = open(self.log_path, "ab")
            start_len = log.tell()
            self.proc = subprocess.Popen(self.prefix + [COLLECTOR_BIN, "-c", self.config_path], stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL)
            log.close()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                if self.healthy():
                    return self
                time.sleep(0.05)
            if self.proc.poll() is None:
                self.kill()
                raise AssertionError("collector not healthy in %ss:\n%s" % (timeout, self.log_tail()))
            with open(self.log_path, "rb") as f:
                f.seek(start_len)
                out = f.read().decode(errors="replace")
            self.proc = None
            if "in use" in out and retries > 0:  # someone took the port we picked
                retries -= 1
                self.port = pick_port()
                self.write_config()
                continue
            raise AssertionError("collector exited at start:\n%s" % out)

    def stop(self, timeout=30):
        """SIGTERM and wait (SIGKILL and fail when it does not stop)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError("collector did not stop within %ss of SIGTERM:\n%s" % (timeout, self.log_tail()))
        rc, self.proc = self.proc.returncode, None
        return rc

    def kill(self):
        """SIGKILL (a crash) and reap."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc = None

    def cli(self, *args, timeout=60):
        """sessrec-collector -c CONFIG ARGS (token create/list/revoke)."""
        return subprocess.run([COLLECTOR_BIN, "-c", self.config_path, *args], capture_output=True, text=True,
                              timeout=timeout)

    def token(self, user, role):
        p = self.cli("token", "create", user, "--role", role)
        assert p.returncode == 0, "token create: %s" % p.stderr
        tok = p.stdout.strip()
        assert tok.startswith("srt_"), tok
        return tok

    # -------------------------------------------------- the API through curl

    def get(self, path, token=None, **kw):
        return curl(self.url + path, token=token, ca=self.pki.ca, **kw)

    def put_part(self, sid, n, data, cert=None, node=NODE, **kw):
        return curl("%s/v1/sessions/%s/parts/%s" % (self.url, sid, n), method="PUT", data=data, ca=self.pki.ca,
                    cert=cert if cert is not None else self.pki.node(node), **kw)

    def complete(self, sid, parts, node=NODE, end=None, cert=None, **kw):
        body = json.dumps({"parts": parts, "node": node, "end": end or {"exit_code": 0}})
        return curl("%s/v1/sessions/%s/complete" % (self.url, sid), method="POST", data=body, ca=self.pki.ca,
                    cert=cert if cert is not None else self.pki.node(node),
                    headers=("Content-Type: application/json",), **kw)

    def upload(self, rec, node=NODE, end=None):
        """Upload a recfmt.Recording (or list of parts) with the node's certificate, and complete it."""
        parts = rec.parts if hasattr(rec, "parts") else rec
        sid = rec.sid
        for i, p in enumerate(parts):
            r = self.put_part(sid, i, p, node=node)
            assert r.status == 201, "part %d: %r" % (i, r)
        r = self.complete(sid, len(parts), node=node, end=end)
        assert r.status == 200, r
        return r.json()

    def session(self, sid, token):
        """The session object (GET /v1/sessions/{sid}), or None on 404."""
        r = self.get("/v1/sessions/" + sid, token=token)
        if r.status == 404:
            return None
        assert r.status == 200, r
        return r.json()

    def wait_complete(self, sid, token, timeout=30, agent=None):
        last = {}

        def ok():
            last["s"] = s = self.session(sid, token)
            return s if s and s["status"] == "complete" else None

        try:
            return poll(ok, timeout, interval=0.2, what="session %s complete at the collector" % sid)
        except AssertionError as e:
            raise AssertionError("%s; last answer %r\ncollector log:\n%s\nagent log:\n%s" % (
                e, last.get("s"), self.log_tail(), agent.log_tail() if agent else "-"))

    def session_files(self, sid):
        d = os.path.join(self.data_dir, "sessions", sid)
        try:
            return sorted(os.listdir(d))
        except FileNotFoundError:
            return []

    def all_files(self):
        """Every file under the data dir except the index and the audit log (which may move)."""
        out = set()
        for root, dirs, files in os.walk(self.data_dir):
            for f in files:
                p = os.path.relpath(os.path.join(root, f), self.data_dir)
                if p.startswith("index.db") or p.startswith("log" + os.sep):
                    continue
                out.add(p)
        return out

    def metrics_text(self):
        r = self.get("/metrics")
        assert r.status == 200, r
        return r.body.decode()


# ------------------------------------------------------------------ agent


class Agent:
    """One sessrec-agent uploading to a collector, with our own pins, cgroups, socket and port."""

    def __init__(self, workdir, collector=None, pki=None, node=NODE, mode="async", grace=None, pins=0,
                 labels=None, part_size=None, part_interval="1s", url=None, **er):
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        os.chmod(workdir, 0o755)
        self.collector = collector
        self.pki = pki or (collector.pki if collector else None)
        self.node = node
        self.mode = mode
        self.grace = grace
        self.pin_path, self.root_path = PINS[pins]
        self.labels = labels if labels is not None else {"env": "ce"}
        self.part_size = part_size
        self.part_interval = part_interval
        self.url = url
        self.er = er
        self.data_dir = os.path.join(workdir, "data")
        self.audit_log = os.path.join(workdir, "audit.log")
        self.socket = os.path.join(workdir, "agent.sock")
        self.metrics_port = pick_port()
        self.config_path = os.path.join(workdir, "agent.yaml")
        self.log_path = os.path.join(workdir, "agent.log")
        self.proc = None
        self.write_config()

    @property
    def rec_dir(self):
        return os.path.join(self.data_dir, "recordings")

    def rec_path(self, sid):
        return os.path.join(self.rec_dir, sid + ".rec")

    def up_path(self, sid):
        return os.path.join(self.rec_dir, sid + ".up")

    @property
    def metrics_url(self):
        return "http://127.0.0.1:%d" % self.metrics_port

    def config_text(self):
        lines = [
            "node_name: %s" % yq(self.node),
            "data_dir: %s" % yq(self.data_dir),
            "audit_log: %s" % yq(self.audit_log),
            "socket: %s" % yq(self.socket),
            "metrics_listen: %s" % yq("127.0.0.1:%d" % self.metrics_port),
            "log_level: info",
            "part_interval: %s" % self.part_interval,
        ]
        if self.part_size:
            lines.append("part_size: %s" % self.part_size)
        if self.labels:
            lines.append("labels:")
            lines += ["  %s: %s" % (k, yq(v)) for k, v in self.labels.items()]
        lines += ["enhanced_recording:", "  pin_path: %s" % yq(self.pin_path), "  root_path: %s" % yq(self.root_path)]
        lines += ["  %s: %s" % kv for kv in self.er.items()]
        url = self.url or (self.collector.url if self.collector else None)
        if url:
            lines += ["collector:", "  url: %s" % yq(url), "  mode: %s" % self.mode]
            if url.startswith("https:"):
                crt, key = self.pki.node(self.node)
                lines += ["  ca_file: %s" % yq(self.pki.ca), "  cert_file: %s" % yq(crt), "  key_file: %s" % yq(key)]
            if self.grace:
                lines.append("  sync_grace_period: %s" % self.grace)
        return "\n".join(lines) + "\n"

    def write_config(self):
        with open(self.config_path, "w") as f:
            f.write(self.config_text())

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_tail(self, n=40):
        return tail(self.log_path, n)

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
        return curl(self.metrics_url + "/healthz", timeout=3).status == 200

    def start(self, timeout=30, lock_wait=120):
        assert not self.alive(), "agent already running"
        lock_deadline = time.monotonic() + lock_wait
        retries = 3
        while True:
            log = open(self.log_path, "ab")
            start_len = log.tell()
            self.proc = subprocess.Popen([AGENT_BIN, "-c", self.config_path], stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL)
            log.close()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                if self._ready():
                    return self
                time.sleep(0.05)
            if self.proc.poll() is None:
                self.kill()
                raise AssertionError("agent not ready in %ss:\n%s" % (timeout, self.log_tail()))
            with open(self.log_path, "rb") as f:
                f.seek(start_len)
                out = f.read().decode(errors="replace")
            self.proc = None
            if "already running" in out and time.monotonic() < lock_deadline:
                time.sleep(0.5)  # an agent of ours still stopping (same pin directory)
                continue
            if "in use" in out and retries > 0:
                retries -= 1
                self.metrics_port = pick_port()
                self.write_config()
                continue
            raise AssertionError("agent exited at start:\n%s" % out)

    def stop(self, timeout=30):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError("agent did not stop within %ss of SIGTERM:\n%s" % (timeout, self.log_tail()))
        rc, self.proc = self.proc.returncode, None
        return rc

    def kill(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc = None

    def audit(self, sid=None):
        try:
            data = read_file(self.audit_log)
        except FileNotFoundError:
            return []
        lines = data.split(b"\n")
        lines.pop()  # the part after the last newline: empty, or being written
        evs = [json.loads(l) for l in lines if l.strip()]
        return [e for e in evs if sid is None or e.get("sid") == sid]

    def metrics_text(self):
        r = curl(self.metrics_url + "/metrics", timeout=5)
        assert r.status == 200, r
        return r.body.decode()

    def metric(self, name, labels=""):
        """The value of one sample, e.g. metric('sessrec_agent_upload_parts_total')."""
        want = name + ("{%s}" % labels if labels else "")
        for line in self.metrics_text().splitlines():
            if line.startswith(want + " "):
                return float(line.split()[-1])
        return None

    def up_state(self, sid):
        try:
            with open(self.up_path(sid)) as f:
                return f.read()
        except FileNotFoundError:
            return None

    def acked(self, sid):
        """Parts the collector acknowledged according to <sid>.up ("acked N"), 0 when none."""
        m = re.search(r"acked (\d+)", self.up_state(sid) or "")
        return int(m.group(1)) if m else 0


# ------------------------------------------------------------------ sessions


def session_env(extra=None):
    env = dict(os.environ)
    for k in ("SUDO_USER", "SESSREC_AGENT_SOCKET", "SESSREC_URL", "SESSREC_TOKEN", "SESSREC_CA"):
        env.pop(k, None)
    env["LC_ALL"] = "C"
    if extra:
        env.update(extra)
    return env


class Result:
    def __init__(self, rc, out, err, sid):
        self.rc, self.out, self.err, self.sid = rc, out, err, sid

    def __repr__(self):
        return "Result(rc=%r, sid=%r, out=%r, err=%r)" % (self.rc, self.sid, self.out[-300:], self.err[-300:])


def parse_sid(err):
    m = SID_RE.search(err.decode(errors="replace") if isinstance(err, bytes) else err)
    return m.group(1) if m else None


class Background:
    """A `sessrec run` launcher in the background: stdin is a pipe; stdout and stderr are drained
    all along (a session must never block on a full pipe) and returned by finish()."""

    def __init__(self, lab, agent, cmd, opts=()):
        self.lab = lab
        self.proc = subprocess.Popen([SESSREC, "run", "--agent-socket", agent.socket, *opts, "--", *cmd],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=session_env())
        lab.procs.append(self.proc)
        self.out = bytearray()
        self.err = bytearray()
        self.readers = [threading.Thread(target=self._drain, args=(self.proc.stdout, self.out), daemon=True),
                        threading.Thread(target=self._drain, args=(self.proc.stderr, self.err), daemon=True)]
        for t in self.readers:
            t.start()
        # the first stderr line is "session <sid>"
        try:
            poll(lambda: b"\n" in self.err or self.proc.poll() is not None, 20, interval=0.02,
                 what="the session line of sessrec run")
        except AssertionError:
            pass
        self.sid = parse_sid(bytes(self.err))
        if not self.sid:
            self.proc.kill()
            raise AssertionError("no session line from sessrec run: %r\nagent log:\n%s" % (
                bytes(self.err), agent.log_tail()))
        lab.sids.append((agent.root_path, self.sid))

    @staticmethod
    def _drain(f, buf):
        while True:
            b = f.read1(65536)
            if not b:
                break
            buf += b

    def send(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def finish(self, input=b"", timeout=60):
        """Write input, close stdin, wait for the launcher: Result(rc, stdout, stderr, sid)."""
        try:
            if input:
                self.proc.stdin.write(input)
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("background session did not finish: %r %r" % (bytes(self.out[-300:]),
                                                                                bytes(self.err[-300:])))
        for t in self.readers:
            t.join(10)
        return Result(self.proc.returncode, bytes(self.out), bytes(self.err), self.sid)


class Lab:
    """What a test (or a module) started: collectors, agents, launchers, session cgroups.

    close() stops all of it, in an order that lets the agents finish (agents first)."""

    def __init__(self, root, pki):
        self.root = root
        self.pki = pki
        self.collectors = []
        self.agents = []
        self.procs = []
        self.sids = []

    def mkdir(self, prefix):
        d = tempfile.mkdtemp(prefix=prefix + "-", dir=self.root)
        os.chmod(d, 0o755)
        return d

    def collector(self, start=True, pki=None, **kw):
        c = Collector(self.mkdir("collector"), pki or self.pki, **kw)
        self.collectors.append(c)
        if start:
            c.start()
        return c

    def agent(self, collector=None, start=True, **kw):
        a = Agent(self.mkdir("agent"), collector=collector, pki=kw.pop("pki", self.pki), **kw)
        self.agents.append(a)
        if start:
            a.start()
        return a

    def run(self, agent, cmd, input=b"", opts=(), timeout=60):
        """Run cmd as a recorded session to its end: Result(rc, out, err, sid)."""
        p = subprocess.Popen([SESSREC, "run", "--agent-socket", agent.socket, *opts, "--", *cmd],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=session_env())
        self.procs.append(p)
        try:
            out, err = p.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            raise AssertionError("sessrec run %r timed out: %r %r" % (cmd, out[-300:], err[-300:]))
        sid = parse_sid(err)
        if sid:
            self.sids.append((agent.root_path, sid))
        return Result(p.returncode, out, err, sid)

    def background(self, agent, cmd, opts=()):
        return Background(self, agent, cmd, opts)

    def close(self):
        errors = []
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            with contextlib.suppress(Exception):
                p.wait(timeout=10)
        for root, sid in self.sids:  # whatever our sessions left running
            with contextlib.suppress(OSError):
                with open(os.path.join(CGROUP_PATH, root, sid, "cgroup.kill"), "w") as f:
                    f.write("1")
        for a in self.agents:
            try:
                a.stop(timeout=20)
            except AssertionError as e:
                errors.append(str(e))
            a.kill()
        for c in self.collectors:
            try:
                c.stop(timeout=20)
            except AssertionError as e:
                errors.append(str(e))
            c.kill()
        return errors


# ------------------------------------------------------------------ the sessrec CLI


def cli(collector, *args, token=None, timeout=60, input=None, check=False, url=None, ca=None):
    """sessrec ARGS against a collector (SESSREC_URL/TOKEN/CA in the environment)."""
    env = session_env({"HOME": "/nonexistent", "SESSREC_URL": url or collector.url})
    if token:
        env["SESSREC_TOKEN"] = token
    if ca or collector.pki:
        env["SESSREC_CA"] = ca or collector.pki.ca
    p = subprocess.run([SESSREC, *args], capture_output=True, env=env, timeout=timeout, input=input)
    if check:
        assert p.returncode == 0, "sessrec %s: rc %d: %s" % (" ".join(args), p.returncode, p.stderr.decode(errors="replace"))
    return p


def events_of(path_or_sid, collector=None, token=None):
    """sessrec events --json of a file or (with collector) a session: the events, parsed."""
    if collector:
        p = cli(collector, "events", "--json", path_or_sid, token=token, check=True)
    else:
        p = subprocess.run([SESSREC, "events", "--json", path_or_sid], capture_output=True, env=session_env())
        assert p.returncode == 0, p.stderr
    return [json.loads(l) for l in p.stdout.splitlines() if l.strip()]


def verify_file(path):
    return subprocess.run([SESSREC, "verify", path], capture_output=True, text=True, env=session_env())


def assert_not_stored(c, sid, token):
    """Nothing of session sid anywhere: no part files, no index row, not in the list."""
    assert c.session_files(sid) == [], "files written for %s: %s" % (sid, c.session_files(sid))
    assert not os.path.exists(os.path.join(c.data_dir, "sessions", sid))
    r = c.get("/v1/sessions/" + sid, token=token)
    assert r.status == 404, r
    r = c.get("/v1/sessions?limit=1000", token=token)
    assert r.status == 200, r
    assert sid not in [s["sid"] for s in r.json()["sessions"]]


def new_sid():
    import uuid

    return str(uuid.uuid4())


