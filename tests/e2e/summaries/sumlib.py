"""
Helpers of the summary end-to-end tests (fixtures in conftest.py).

What runs: a real sessrec-collector in insecure_dev_mode (plain HTTP on 127.0.0.1, every request
acts as a node and as `dev` with every role) with its own data dir and port, the fake model
provider of tests/e2e/fake_llm.py in a thread of the test (OpenAI chat completions and Bedrock
Converse with real SigV4 checks, a log of every request), the real `sessrec` CLI and, for one
test, a real sessrec-agent recording a real session. Every other session is a synthetic
recording (tests/e2e/collector/recfmt.py) uploaded with PUT parts + POST complete, which is
what an agent does, only faster.

Reused from tests/e2e/collector: helpers (Collector, Agent, curl, poll, cli plumbing, the binary
snapshot) and recfmt. What differs here: our own ports (27000-27999), our own BPF pin directory
and cgroup root (/sys/fs/bpf/sessrec_sum, sessrec_sum) so that our agent runs beside the agents
of other suites, the collector's environment (the AWS variables that point Bedrock at the
fake), and a World that keeps every API answer and CLI output of a test so that the secret can
be looked for in all of them.

Only the standard library and pytest are used.
"""
import json
import os
import random
import re
import socket
import subprocess
import tempfile
import time

from collector import helpers as H
from collector import recfmt as R

import fake_llm
from fake_llm import FakeLLM

PORT_RANGE = (27000, 27999)
PIN = ("/sys/fs/bpf/sessrec_sum", "sessrec_sum")
NODE = H.NODE
PROMTOOL = "/usr/bin/promtool"
USERS = "{alice: {roles: [dev], traits: {team: [platform]}}, bob: {roles: [intern], traits: {team: [web]}}}"
ALL_KINDS = ("ssh", "k8s", "db", "local")
SECRET = fake_llm.OPENAI_KEY
DONE = ("done", "failed", "budget_exceeded")
SCHEMA_FIELDS_REQUIRED = fake_llm.SCHEMA_FIELDS

poll = H.poll
yq = H.yq
new_sid = H.new_sid


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


class NoPki:
    """The collector runs in insecure_dev_mode: no CA, no node certificates."""

    ca = None

    def node(self, name=None):
        return None

    def path(self, name):
        return None

    def __bool__(self):
        return False


# ------------------------------------------------------------------ collector


class SumCollector(H.Collector):
    """helpers.Collector in insecure_dev_mode, on our ports, with an environment of its own."""

    def __init__(self, workdir, env=None, users=USERS, request_timeout="2s", log_level="info", **extra):
        self.env = env
        self.log_level = log_level
        if users:
            extra["users"] = users
        if request_timeout:
            extra["request_timeout"] = request_timeout
        super().__init__(workdir, NoPki(), dev=True, **extra)
        self.port = pick_port()
        self.write_config()

    def config_text(self):
        return super().config_text().replace("log_level: info\n", "log_level: %s\n" % self.log_level)

    def start(self, timeout=30):
        assert not self.alive(), "collector already running"
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("AWS_") or k.startswith("SESSREC_"):
                env.pop(k)
        env.update(self.env or {})
        retries = 3
        while True:
            log = open(self.log_path, "ab")
            start_len = log.tell()
            self.proc = subprocess.Popen([H.COLLECTOR_BIN, "-c", self.config_path], stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL, env=env)
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
            if "in use" in out and retries > 0:
                retries -= 1
                self.port = pick_port()
                self.write_config()
                continue
            raise AssertionError("collector exited at start:\n%s" % out)

    def audit_files_text(self):
        out = ""
        d = os.path.join(self.data_dir, "log")
        for f in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            with open(os.path.join(d, f), errors="replace") as fh:
                out += fh.read()
        return out


# ------------------------------------------------------------------ agent


class SumAgent(H.Agent):
    """helpers.Agent with our pin directory, cgroup root and metrics port."""

    def __init__(self, workdir, collector, **kw):
        super().__init__(workdir, collector=collector, pki=NoPki(), **kw)
        self.pin_path, self.root_path = PIN
        self.metrics_port = pick_port()
        self.write_config()

    def run(self, cmd, input=b"", env=None, timeout=60):
        """Run cmd as a recorded session to its end: helpers.Result(rc, out, err, sid)."""
        p = subprocess.Popen([H.SESSREC, "run", "--agent-socket", self.socket, "--", *cmd],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=H.session_env(env))
        try:
            out, err = p.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            raise AssertionError("sessrec run %r timed out: %r %r" % (cmd, out[-300:], err[-300:]))
        return H.Result(p.returncode, out, err, H.parse_sid(err))

    def kill_session(self, sid):
        try:
            with open(os.path.join(H.CGROUP_PATH, self.root_path, sid, "cgroup.kill"), "w") as f:
                f.write("1")
        except OSError:
            pass


# ------------------------------------------------------------------ resources (YAML)


def secret_doc(name, value):
    return "kind: inference_secret\nversion: v1\nmetadata:\n  name: %s\nspec:\n  value: %s\n" % (name, yq(value))


def openai_model_doc(name, model_id, base_url, secret="llm-key", temperature=None, **spec):
    lines = ["kind: inference_model", "version: v1", "metadata:", "  name: %s" % name, "spec:", "  openai:",
             "    openai_model_id: %s" % yq(model_id), "    base_url: %s" % yq(base_url)]
    if secret:
        lines.append("    api_key_secret_ref: %s" % secret)
    if temperature is not None:
        lines.append("    temperature: %s" % temperature)
    lines += ["  %s: %s" % kv for kv in spec.items()]
    return "\n".join(lines) + "\n"


def bedrock_model_doc(name, model_id, region="us-east-1", temperature=None, **spec):
    lines = ["kind: inference_model", "version: v1", "metadata:", "  name: %s" % name, "spec:", "  bedrock:",
             "    region: %s" % region, "    bedrock_model_id: %s" % yq(model_id)]
    if temperature is not None:
        lines.append("    temperature: %s" % temperature)
    lines += ["  %s: %s" % kv for kv in spec.items()]
    return "\n".join(lines) + "\n"


def policy_doc(name, model, kinds=ALL_KINDS, filter=None):
    lines = ["kind: inference_policy", "version: v1", "metadata:", "  name: %s" % name, "spec:",
             "  kinds: [%s]" % ", ".join(kinds), "  model: %s" % model]
    if filter is not None:
        lines.append("  filter: %s" % yq(filter))
    return "\n".join(lines) + "\n"


def docs(*d):
    return "---\n".join(d)


# ------------------------------------------------------------------ synthetic sessions


def session_rec(user="alice", kind="local", labels=None, commands=None, login="root", ms0=5):
    """A finished synthetic recording: each command an exec with its echo on the terminal.

    commands: a list of argv lists (default: three harmless ones naming the session)."""
    sid = new_sid()
    r = R.Recording(sid)
    r.start(user=user, login=login, kind=kind, node=NODE, labels=labels or {})
    if commands is None:
        commands = [["uname", "-a"], ["ls", "-l", "/srv/marker-" + sid[:8]], ["id"]]
    ms = ms0
    for i, argv in enumerate(commands):
        path = argv[0] if argv[0].startswith("/") else "/usr/bin/" + argv[0]
        r.output(("$ %s\r\n" % " ".join(argv)).encode(), ms=ms)
        r.add(R.command(1000 + i, path, argv, return_code=0), ms=ms + 1)
        r.output(("output of command %d\r\n" % i).encode(), ms=ms + 2)
        ms += 3
        if i % 40 == 39:
            r.cut()
    r.finish(ms=ms + 10)
    r.commands = commands
    return r


# ------------------------------------------------------------------ metrics


LABEL_RE = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def samples(text):
    """[(name, {labels}, value)] of a Prometheus text exposition."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, v = line.rsplit(" ", 1)
        if "{" in key:
            name, rest = key.split("{", 1)
            labels = dict(LABEL_RE.findall(rest))
        else:
            name, labels = key, {}
        out.append((name, labels, float(v)))
    return out


def metric(text, name, **labels):
    """The value of the one sample of `name` with exactly these labels (None when absent)."""
    for n, l, v in samples(text):
        if n == name and l == labels:
            return v
    return None


def promtool_check(text):
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")


# ------------------------------------------------------------------ the fake's side


def transcript_of(rec):
    """The transcript between the BEGIN/END TRANSCRIPT marker lines of a fake's request record."""
    m = re.search(r"----- BEGIN TRANSCRIPT (\w+) -----\n(.*)\n----- END TRANSCRIPT \1 -----", rec["user_text"], re.S)
    return m.group(2) if m else None


def expected_usage(rec):
    """The (prompt, completion) tokens the fake reported for an OpenAI request it answered ok
    (its formula, fake_llm.py)."""
    req = rec["json"]
    prompt = sum(len(m.get("content") or "") if isinstance(m.get("content"), str) else 0
                 for m in req["messages"]) // 4 + 4 * len(req["messages"])
    content = json.dumps(fake_llm.default_answer(rec["user_text"]))
    return prompt, max(1, len(content) // 4)


# ------------------------------------------------------------------ one test's world


class World:
    """A fake provider, the collectors of one test, and every output the test saw.

    Every API answer (w.api) and CLI output (w.cli) is kept; check_secrets() looks for the
    secret values in all of them, in the collectors' logs and their central audit logs."""

    def __init__(self, root):
        self.root = root
        self.llm = FakeLLM(port=0, log_path=os.path.join(root, "llm.jsonl")).start()
        self.collectors = []
        self.agents = []
        self.outputs = []  # (what, text)
        self.secrets = [SECRET]
        self.n_files = 0

    # -- processes
    def mkdir(self, prefix):
        d = tempfile.mkdtemp(prefix=prefix + "-", dir=self.root)
        os.chmod(d, 0o755)
        return d

    def collector(self, start=True, bedrock_env=False, env=None, **kw):
        e = dict(env or {})
        if bedrock_env:
            e.update(self.llm.env())
        c = SumCollector(self.mkdir("collector"), env=e, **kw)
        self.collectors.append(c)
        if start:
            c.start()
        return c

    def agent(self, c, start=True, **kw):
        a = SumAgent(self.mkdir("agent"), c, **kw)
        self.agents.append(a)
        if start:
            a.start()
        return a

    def close(self):
        errors = []
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
        self.llm.stop()
        return errors

    # -- the API and the CLI, remembered
    def api(self, c, path, method=None, data=None, headers=(), timeout=30):
        r = H.curl(c.url + path, method=method, data=data, headers=headers, timeout=timeout)
        self.outputs.append(("%s %s" % (method or "GET", path), r.body.decode(errors="replace") + r.err))
        return r

    def api_json(self, c, path, **kw):
        r = self.api(c, path, **kw)
        assert r.status == 200, r
        return r.json()

    def cli(self, c, *args, check=False, input=None, timeout=60):
        env = H.session_env({"HOME": "/nonexistent", "SESSREC_URL": c.url})
        p = subprocess.run([H.SESSREC, *args], capture_output=True, env=env, timeout=timeout, input=input)
        out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
        self.outputs.append(("sessrec " + " ".join(args), out + err))
        if check:
            assert p.returncode == 0, "sessrec %s: rc %d: %s%s" % (" ".join(args), p.returncode, out, err)
        p.out, p.err = out, err
        return p

    def create(self, c, text, force=False, check=True):
        self.n_files += 1
        path = os.path.join(self.root, "resources-%d.yaml" % self.n_files)
        with open(path, "w") as f:
            f.write(text)
        args = ["create", "-f", path] + (["--force"] if force else [])
        return self.cli(c, *args, check=check)

    def rm(self, c, kind, name):
        return self.cli(c, "rm", kind, name, check=True)

    def setup_openai(self, c, models, policies, remove_default=True, secret=SECRET):
        """A secret `llm-key`, models {name: model_id or (model_id, {spec})}, policies
        [(name, model, kinds, filter)], all pointing at the fake; the default policy removed."""
        d = [secret_doc("llm-key", secret)]
        for name, m in models.items():
            mid, spec = (m, {}) if isinstance(m, str) else m
            d.append(openai_model_doc(name, mid, self.llm.openai_base_url, **spec))
        for p in policies:
            name, model = p[0], p[1]
            kinds = p[2] if len(p) > 2 and p[2] else ALL_KINDS
            flt = p[3] if len(p) > 3 else None
            d.append(policy_doc(name, model, kinds, flt))
        self.create(c, docs(*d))
        if remove_default:
            self.rm(c, "policy", "default")

    # -- sessions
    def upload(self, c, rec, fast=2.0):
        """Upload a synthetic recording (PUT parts, POST complete) and check it was quick."""
        t = time.monotonic()
        for i, p in enumerate(rec.parts):
            r = H.curl("%s/v1/sessions/%s/parts/%d" % (c.url, rec.sid, i), method="PUT", data=p)
            assert r.status == 201, "part %d of %s: %r" % (i, rec.sid, r)
        body = json.dumps({"parts": len(rec.parts), "node": NODE, "end": {"exit_code": 0}})
        r = H.curl("%s/v1/sessions/%s/complete" % (c.url, rec.sid), method="POST", data=body,
                   headers=("Content-Type: application/json",))
        took = time.monotonic() - t
        self.outputs.append(("POST complete " + rec.sid, r.body.decode(errors="replace") + r.err))
        assert r.status == 200, "complete %s: %r" % (rec.sid, r)
        if fast:
            assert took < fast, "uploading %s took %.2fs" % (rec.sid, took)
        return took

    def jobs(self, c, sid=None, status=None):
        q = []
        if sid:
            q.append("sid=" + sid)
        if status:
            q.append("status=" + status)
        return self.api_json(c, "/v1/jobs" + ("?" + "&".join(q) if q else ""))["jobs"]

    def wait_jobs(self, c, sid, n=1, statuses=DONE, timeout=30):
        """Wait until the session has n jobs, all in one of statuses; the jobs, oldest first."""
        last = {}

        def ok():
            js = last["jobs"] = self.jobs(c, sid)
            return len(js) >= n and all(j["status"] in statuses for j in js)

        try:
            poll(ok, timeout, interval=0.1, what="%d job(s) of %s in %s" % (n, sid, statuses))
        except AssertionError as e:
            raise AssertionError("%s; jobs %r\ncollector log:\n%s" % (e, last.get("jobs"), c.log_tail()))
        return list(reversed(last["jobs"]))

    def wait_job(self, c, sid, statuses=DONE, timeout=30):
        js = self.wait_jobs(c, sid, 1, statuses, timeout)
        assert len(js) == 1, js
        return js[0]

    def summary(self, c, sid, all=False):
        args = ["summary", "--json"] + (["--all"] if all else []) + [sid]
        p = self.cli(c, *args, check=True)
        if not all:
            return json.loads(p.out)
        # --all: the API's {"summaries": [...]}, or one summary a line
        try:
            d = json.loads(p.out)
        except ValueError:
            return [json.loads(l) for l in p.out.splitlines() if l.strip()]
        return d["summaries"] if "summaries" in d else [d]

    def audit(self, c, type=None, sid=None):
        q = ["limit=10000"]
        if type:
            q.append("type=" + type)
        if sid:
            q.append("sid=" + sid)
        r = self.api(c, "/v1/audit/events?" + "&".join(q))
        assert r.status == 200, r
        return r.lines()

    def metrics(self, c):
        r = self.api(c, "/metrics")
        assert r.status == 200, r
        return r.body.decode()

    def requests(self, api=None, sid=None):
        """The fake's request records (only those whose prompt names session sid)."""
        rs = self.llm.requests(api)
        if sid:
            rs = [r for r in rs if sid in (r.get("user_text") or r.get("body") or "")]
        return rs

    def quiet(self, seconds, what="the fake provider", n=None):
        """Check that the fake gets no (more) request for `seconds`."""
        n = len(self.llm.requests()) if n is None else n
        time.sleep(seconds)
        got = self.llm.requests()
        assert len(got) == n, "%s got %d request(s), expected %d: %r" % (
            what, len(got), n, [(r["path"], r["model"]) for r in got[n:]])

    # -- the secret
    def check_secrets(self, extra=()):
        """No secret value in any output, log line or audit line of the test."""
        secrets = [s for s in list(self.secrets) + list(extra) if s]
        where = []
        for what, text in self.outputs:
            for s in secrets:
                if s in text:
                    where.append("output of %s" % what)
        for c in self.collectors:
            for s in secrets:
                if s in c.log_text():
                    where.append("collector log %s" % c.log_path)
                if s in c.audit_files_text():
                    where.append("central audit log under %s/log" % c.data_dir)
        for a in self.agents:
            for s in secrets:
                if s in a.log_text():
                    where.append("agent log %s" % a.log_path)
        assert not where, "a secret value appears in: %s" % sorted(set(where))
