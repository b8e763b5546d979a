#!/usr/bin/python3
"""
sessrec-collector benchmark (part of `make bench`). Standard library only; needs no root
(it runs no agent) but the disk it writes to must be the one under test.

(1) Ingest: several concurrent uploaders (Python threads, one keep-alive HTTPS connection
    each, a node client certificate) PUT the parts of large recordings to a real
    sessrec-collector over TLS, each uploader its own session, in order. The figure is MB/s
    of part bytes (what goes over the wire and into the store) from the first request to the
    last answer. Target >= 200 MB/s. The parts look like the agent's: terminal output (text
    lines) cut into print events of 8 KiB, PART_RAW of inflated events per part, gzip level 1
    (sessrec-agent's level). The recordings are written here from docs/recording-format.md
    (tests/e2e/collector/recfmt.py): every session is completed afterwards and one is
    checked with `sessrec verify`, so a mistake in the document shows up as a failed run.
    The baseline is the disk itself: `dd if=/dev/zero bs=1M conv=fsync` into the same
    directory, measured in the same run; "of disk" is ingest / dd. Shown beside it: the CPU
    time the collector and the uploaders spent per GiB, and how busy the whole machine was
    (on a small shared machine the collector's CPU cost is what bounds the figure). The
    collector's default summary policy is removed first (`sessrec rm policy default`), so
    that summaries of one run's sessions do not run during the next.

(2) `ls` latency: an index of 100k sessions is built straight into the collector's SQLite
    index.db (its own schema: the collector creates it at first start; rows are inserted
    while it is stopped, as the store's session_put would, fsync per call being far too slow
    for 100k), then GET /v1/sessions?limit=100 with a user, a label, a command and an
    address filter is timed over a keep-alive connection, median of 20 after 3 warm-ups.
    Target <= 50 ms. The same list through the CLI (`sessrec ls --json`, a new process and a
    new TLS handshake each time) is shown for reference, and the query without a filter as
    the floor.

Prints a table and writes build/bench/collector.json. Exit status: 0 when every measurement
was made (targets met or not), 1 when one failed, 2 on a bad command line, 130 when
interrupted. Everything started here is stopped on every way out.

  /usr/bin/python3 bench/collector_bench.py --build $PWD/build [--quick] [--keep]
"""
import argparse
import hashlib
import http.client
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e", "collector"))
import recfmt  # noqa: E402  the recording writer of the collector tests (docs/recording-format.md)

MIB = 1 << 20
TARGET_INGEST_MBS = 200.0
TARGET_LS_MS = 50.0
PORTS = (25000, 25999)
CHUNK = 8192  # bytes of terminal output per print event (the agent's TTY chunk)
NODE = "bench-node"


class BenchError(Exception):
    """A measurement could not be made (not: a target was missed)."""


class Interrupted(Exception):
    pass


def log(msg):
    print("collector-bench: " + msg, file=sys.stderr, flush=True)


def on_signal(signum, frame):
    raise Interrupted("signal %d" % signum)


def poll(cond, timeout, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise BenchError("timed out after %.0fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def pick_port():
    ports = list(range(PORTS[0], PORTS[1] + 1))
    random.shuffle(ports)
    for p in ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                continue
            return p
    raise BenchError("no free port in %d-%d" % PORTS)


def proc_cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_times():
    """(all jiffies, idle + iowait jiffies) of the machine."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v[:8]), v[3] + v[4]


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


# ------------------------------------------------------------------ the collector


class NoDelayHTTPS(http.client.HTTPSConnection):
    """Keep-alive HTTPS with TCP_NODELAY, as curl (and so the agent) does."""

    def connect(self):
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Collector:
    def __init__(self, build, root, name, pki):
        self.bin = os.path.join(build, "bin", "sessrec-collector")
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir)
        self.pki = pki
        self.data_dir = os.path.join(self.dir, "data")
        self.cfg = os.path.join(self.dir, "collector.yaml")
        self.log = os.path.join(self.dir, "collector.log")
        self.port = pick_port()
        self.proc = None
        self._write()

    def _write(self):
        with open(self.cfg, "w") as f:
            f.write("listen: \"127.0.0.1:%d\"\ndata_dir: %s\nlog_level: warn\n"
                    "tls:\n  cert_file: %s\n  key_file: %s\n  client_ca_file: %s\n" % (
                        self.port, json.dumps(self.data_dir), json.dumps(os.path.join(self.pki, "server.crt")),
                        json.dumps(os.path.join(self.pki, "server.key")), json.dumps(os.path.join(self.pki, "ca.crt"))))

    def ctx(self, node=False):
        c = ssl.create_default_context(cafile=os.path.join(self.pki, "ca.crt"))
        if node:
            c.load_cert_chain(os.path.join(self.pki, NODE + ".crt"), os.path.join(self.pki, NODE + ".key"))
        return c

    def conn(self, node=False):
        return NoDelayHTTPS("127.0.0.1", self.port, context=self.ctx(node), timeout=120)

    def healthy(self):
        try:
            c = self.conn()
            c.request("GET", "/healthz")
            ok = c.getresponse().status == 200
            c.close()
            return ok
        except OSError:
            return False

    def start(self):
        for _ in range(3):
            with open(self.log, "ab") as lf:
                self.proc = subprocess.Popen([self.bin, "-c", self.cfg], stdout=lf, stderr=lf, stdin=subprocess.DEVNULL)
            try:
                poll(lambda: self.proc.poll() is not None or self.healthy(), 30, what="the collector to start")
            except BenchError:
                self.stop()
                raise
            if self.proc.poll() is None:
                return
            self.proc = None
            with open(self.log, errors="replace") as f:
                text = f.read()
            if "in use" not in text:
                raise BenchError("the collector did not start:\n" + text[-2000:])
            self.port = pick_port()  # someone took our port
            self._write()
        raise BenchError("no port for the collector")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def token(self, user, role):
        p = subprocess.run([self.bin, "-c", self.cfg, "token", "create", user, "--role", role],
                           capture_output=True, text=True, timeout=60)
        if p.returncode:
            raise BenchError("token create: " + p.stderr.strip())
        return p.stdout.strip()


# ------------------------------------------------------------------ (1) ingest

WORDS = ("GET POST PUT 200 201 404 500 api/v1/users api/v1/orders auth cache db worker queue payment "
         "INFO WARN ERROR DEBUG request served in ms user_id order_id session retry connection pool "
         "-rw-r--r-- drwxr-xr-x root www-data /var/log/app /srv/data /etc/nginx").split()


def terminal_text(size, seed):
    """Text like a session's terminal output (log lines, listings): gzip -1 makes it ~4x smaller."""
    rnd = random.Random(seed)
    lines = []
    n = 0
    while n < size:
        line = "2026-11-22T%02d:%02d:%02d.%03dZ %s %s %s id=%08x %s %d\r\n" % (
            rnd.randrange(24), rnd.randrange(60), rnd.randrange(60), rnd.randrange(1000),
            rnd.choice(WORDS), rnd.choice(WORDS), rnd.choice(WORDS), rnd.getrandbits(32), rnd.choice(WORDS),
            rnd.randrange(100000))
        lines.append(line)
        n += len(line)
    return "".join(lines).encode()[:size]


class Workload:
    """Recordings for the uploaders: part bodies compressed once, headers chained per session.

    Every session has the same events after its session.start (print events of CHUNK bytes),
    so parts 1..N-1 have the same bodies in every session; part 0 (the session.start) and the
    headers (chained through the session id) are each session's own."""

    def __init__(self, part_raw, parts):
        self.part_raw = part_raw
        self.n = parts
        per_part = part_raw // (CHUNK + 40)  # an event is CHUNK bytes of data plus ~40 of fields
        text = terminal_text(CHUNK * 64, 1)
        self.t0 = 1_795_000_000 * 10**9
        # events 1.. of the session: print events; ei and times as a session would have them
        # parts 1..n-1 (the last one final): (body, events, first_ei, raw size, body SHA-256)
        self.bodies = []
        ei, off, ci = 1 + per_part, 0, 0
        self.p0_records = []
        for _ in range(per_part):
            chunk = text[(ci % 64) * CHUNK:(ci % 64 + 1) * CHUNK]
            self.p0_records.append(recfmt.event(ci + 1, self.t0 + ci * 1_000_000,
                                                recfmt.print_(ci, ci, off, chunk)))
            ci, off = ci + 1, off + len(chunk)
        for i in range(1, parts):
            recs = []
            first = ei
            for _ in range(per_part):
                chunk = text[(ci % 64) * CHUNK:(ci % 64 + 1) * CHUNK]
                recs.append(recfmt.event(ei, self.t0 + ci * 1_000_000, recfmt.print_(ci, ci, off, chunk)))
                ei, ci, off = ei + 1, ci + 1, off + len(chunk)
            if i == parts - 1:
                recs.append(recfmt.event(ei, self.t0 + ci * 1_000_000,
                                         recfmt.session_end(self.t0, self.t0 + ci * 1_000_000, 0, "exited")))
                ei += 1
            body = recfmt.make_body(recs, 1)
            self.bodies.append((body, len(recs), first, sum(4 + len(r) for r in recs), hashlib.sha256(body).digest()))
        self.raw_per_session = off

    def session(self, sid):
        """The parts of one session: (header, body) pairs (bodies shared, never copied)."""
        recs = [recfmt.event(0, self.t0, recfmt.session_start(sid, user="bench", node=NODE, command=("bash",)))]
        recs += self.p0_records
        p0 = recfmt.make_part(0, recs, recfmt.chain_seed(sid), 0, final=self.n == 1, level=1)
        parts = [(p0[:recfmt.HDR_SIZE], p0[recfmt.HDR_SIZE:])]
        prev = hashlib.sha256(p0).digest()
        for i, (body, count, first, raw, body_hash) in enumerate(self.bodies, 1):
            hdr = recfmt.HDR.pack(recfmt.MAGIC, 1, recfmt.FLAG_FINAL if i == self.n - 1 else 0, i, count, raw,
                                  len(body), first, first + count - 1, prev, body_hash, bytes(4))
            parts.append((hdr, body))
            h = hashlib.sha256(hdr)
            h.update(body)
            prev = h.digest()
        return parts


def upload_run(col, wl, uploaders, sessions_each):
    """One measurement: uploaders threads, each PUTting the parts of its sessions in order."""
    jobs = [[(str(uuid.uuid4()), None) for _ in range(sessions_each)] for _ in range(uploaders)]
    for j in jobs:
        for k, (sid, _) in enumerate(j):
            j[k] = (sid, wl.session(sid))
    conns = [col.conn(node=True) for _ in range(uploaders)]
    for c in conns:  # handshakes before the clock starts
        c.connect()
    lat = []
    errors = []
    done = [0] * uploaders
    go = threading.Barrier(uploaders + 1)

    def work(i):
        c = conns[i]
        go.wait()
        try:
            for sid, parts in jobs[i]:
                for n, (hdr, body) in enumerate(parts):
                    t = time.perf_counter()
                    c.putrequest("PUT", "/v1/sessions/%s/parts/%d" % (sid, n), skip_accept_encoding=True)
                    c.putheader("Content-Type", "application/octet-stream")
                    c.putheader("Content-Length", str(len(hdr) + len(body)))
                    c.endheaders(hdr)
                    c.send(body)
                    r = c.getresponse()
                    answer = r.read()
                    lat.append(time.perf_counter() - t)
                    if r.status != 201:
                        raise BenchError("PUT part %d of %s: %d %s" % (n, sid, r.status, answer[:200]))
                    done[i] += len(hdr) + len(body)
        except Exception as e:  # noqa: BLE001  reported by the driver
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(uploaders)]
    for t in threads:
        t.start()
    cpu0 = proc_cpu(col.proc.pid)
    me0 = os.times()
    sys0 = cpu_times()
    go.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    cpu = proc_cpu(col.proc.pid) - cpu0
    me1 = os.times()
    sys1 = cpu_times()
    client_cpu = (me1.user - me0.user) + (me1.system - me0.system)
    busy = 1 - (sys1[1] - sys0[1]) / (sys1[0] - sys0[0]) if sys1[0] > sys0[0] else 0
    for c in conns:
        c.close()
    if errors:
        raise BenchError("upload failed: %s" % errors[0])
    total = sum(done)
    return {
        "uploaders": uploaders, "bytes": total, "seconds": elapsed, "mbs": total / MIB / elapsed,
        "parts": len(lat), "put_ms_p50": 1000 * statistics.median(lat), "put_ms_p99": 1000 * pct(lat, 0.99),
        "collector_cpu_s": cpu, "client_cpu_s": client_cpu, "machine_busy": busy,
        "sids": [sid for j in jobs for sid, _ in j],
        "raw_mbs": uploaders * sessions_each * wl.raw_per_session / MIB / elapsed,
    }


def complete_all(col, sids, parts):
    c = col.conn(node=True)
    t = time.perf_counter()
    for sid in sids:
        c.request("POST", "/v1/sessions/%s/complete" % sid, body=json.dumps({"parts": parts, "node": NODE,
                                                                             "end": {"exit_code": 0}}),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        body = r.read()
        if r.status != 200:
            raise BenchError("complete %s: %d %s" % (sid, r.status, body[:300]))
    c.close()
    return time.perf_counter() - t


def summaries_off(build, col):
    """Remove the default summary policy, so that summaries of the uploaded sessions do not run
    beside the next measurement. False when it could not be removed (then they do)."""
    tok = col.token("bench-editor", "editor")
    env = dict(os.environ, SESSREC_URL="https://127.0.0.1:%d" % col.port, SESSREC_TOKEN=tok,
               SESSREC_CA=os.path.join(col.pki, "ca.crt"), HOME="/nonexistent")
    p = subprocess.run([os.path.join(build, "bin", "sessrec"), "rm", "policy", "default"], capture_output=True,
                       text=True, env=env, timeout=60)
    if p.returncode:
        log("automatic summaries stay on (sessrec rm policy default: %s)" % p.stderr.strip())
        return False
    return True


def dd_baseline(d, mib):
    f = os.path.join(d, "dd.bin")
    t = time.perf_counter()
    p = subprocess.run(["dd", "if=/dev/zero", "of=" + f, "bs=1M", "count=%d" % mib, "conv=fsync"],
                       capture_output=True, text=True)
    el = time.perf_counter() - t
    os.unlink(f)
    if p.returncode:
        raise BenchError("dd: " + p.stderr.strip())
    return mib / el


# ------------------------------------------------------------------ (2) ls latency

SESSION_COLS = ("sid", "node", "user", "login", "kind", "labels", "initial_command", "start_ns", "end_ns",
                "exit_code", "cols", "rows", "events", "commands", "bytes", "parts", "status", "closed_by")
PROGRAMS = ("ls", "cat", "grep", "vim", "less", "tail", "ps", "top", "df", "du", "find", "git", "make", "curl",
            "ssh", "scp", "tar", "systemctl", "journalctl", "docker", "kubectl", "python3", "psql", "mysql",
            "awk", "sed", "sort", "uniq", "head", "htop", "ip", "ss", "dig", "ping", "netstat", "chmod", "chown")
ARGS = ("-la", "-h", "/var/log/syslog", "status nginx", "logs -f api", "get pods -A", "describe node web-1",
        "-rn ERROR /var/log/app", "pull", "commit -m fix", "-xzf backup.tgz", "restart app", "--since 1h",
        "/etc/nginx/nginx.conf", "SELECT 1", "-c 3 10.0.0.1", "show", "ps -a", "exec -it db sh")


def populate(db_path, n, seed=7):
    """n sessions straight into index.db: sessions, labels, command index, network events."""
    rnd = random.Random(seed)
    db = sqlite3.connect(db_path)
    cols = {r[1] for r in db.execute("PRAGMA table_info(sessions)")}
    missing = set(SESSION_COLS) - cols
    if missing:
        raise BenchError("index.db's sessions table has no %s: the schema changed" % sorted(missing))
    for t in ("labels", "command_docs", "command_text", "events"):
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (t,)).fetchone():
            raise BenchError("index.db has no table %s: the schema changed" % t)
    db.execute("PRAGMA synchronous=OFF")
    now = 1_795_000_000 * 10**9
    month = 30 * 86400 * 10**9
    sess, labels, docs, events = [], [], [], []
    for i in range(n):
        sid = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
        user = "user-%d" % rnd.randrange(500)
        node = "node-%d" % rnd.randrange(200)
        env = rnd.choice(("prod", "staging", "dev"))
        team = "team-%d" % rnd.randrange(100)
        lab = {"env": env, "team": team}
        start = now - rnd.randrange(month)
        ncmd = rnd.randrange(3, 15)
        lines = []
        for _ in range(ncmd):
            prog = rnd.choice(PROGRAMS)
            args = rnd.choice(ARGS)
            lines += ["/usr/bin/" + prog, prog + " " + args]
        if i % 1000 == 0:
            lines += ["/usr/bin/terraform", "terraform destroy -auto-approve"]  # rare: 0.1%
        sess.append((sid, node, user, user, rnd.choice(("ssh", "ssh", "k8s", "local")), json.dumps(lab),
                     json.dumps(["bash", "-l"]), start, start + rnd.randrange(10**12), 0, 80, 24,
                     rnd.randrange(50, 5000), ncmd, rnd.randrange(10**4, 10**7), 1, "complete", "session"))
        labels += [(sid, "env", env), (sid, "team", team)]
        docs.append((sid, "\n".join(lines) + "\n"))
        addr = "10.%d.%d.%d" % (rnd.randrange(4), rnd.randrange(256), rnd.randrange(256))
        events.append((sid, 1, start + 10**6, "session.network", "curl", None, None, addr, 443, 0))
    with db:
        db.executemany("INSERT INTO sessions(%s) VALUES (%s)" % (
            ", ".join('"%s"' % c for c in SESSION_COLS), ", ".join("?" * len(SESSION_COLS))), sess)
        db.executemany("INSERT INTO labels(sid, key, value) VALUES (?, ?, ?)", labels)
        db.executemany("INSERT INTO command_docs(sid, text) VALUES (?, ?)", docs)
        db.execute("INSERT INTO command_text(rowid, text) SELECT doc, text FROM command_docs")
        db.executemany("INSERT INTO events(sid, ei, time_ns, type, program, path, argv, addr, port, return_code)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", events)
    db.execute("ANALYZE")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return sess


def time_query(col, token, path, reps, warm=3):
    c = col.conn()
    hdr = {"Authorization": "Bearer " + token}
    times, count = [], None
    for i in range(warm + reps):
        t = time.perf_counter()
        c.request("GET", path, headers=hdr)
        r = c.getresponse()
        body = r.read()
        el = time.perf_counter() - t
        if r.status != 200:
            raise BenchError("GET %s: %d %s" % (path, r.status, body[:300]))
        if i >= warm:
            times.append(el)
        count = json.loads(body)["sessions"]
    c.close()
    return times, count


def time_cli(build, col, token, args, reps):
    env = dict(os.environ, SESSREC_URL="https://127.0.0.1:%d" % col.port, SESSREC_TOKEN=token,
               SESSREC_CA=os.path.join(col.pki, "ca.crt"), HOME="/nonexistent")
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        p = subprocess.run([os.path.join(build, "bin", "sessrec"), "ls", "--json", *args], capture_output=True,
                           env=env, timeout=60)
        times.append(time.perf_counter() - t)
        if p.returncode:
            raise BenchError("sessrec ls: " + p.stderr.decode(errors="replace").strip())
    return times


# ------------------------------------------------------------------ driver


def main():
    ap = argparse.ArgumentParser(description="sessrec-collector benchmark: ingest MB/s and ls latency")
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"), help="build directory (default ../build)")
    ap.add_argument("--quick", action="store_true", help="smaller runs (for iterating)")
    ap.add_argument("--reps", type=int, default=3, help="ingest repetitions per configuration (median; default 3)")
    ap.add_argument("--uploaders", default="4,8", help="concurrent uploaders to measure (default 4,8)")
    ap.add_argument("--index-sessions", type=int, default=100000, help="sessions in the ls index (default 100000)")
    ap.add_argument("--tmpdir", default="/var/tmp", help="where the scratch directory goes (the disk under test)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--out", help="results JSON (default BUILD/bench/collector.json)")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    for b in ("sessrec-collector", "sessrec"):
        if not os.access(os.path.join(build, "bin", b), os.X_OK):
            print("collector-bench: %s/bin/%s is missing: run make first" % (build, b), file=sys.stderr)
            return 2
    try:
        uploaders = [int(x) for x in a.uploaders.split(",")]
    except ValueError:
        print("collector-bench: --uploaders: a comma list of numbers", file=sys.stderr)
        return 2
    out_path = a.out or os.path.join(build, "bench", "collector.json")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    root = tempfile.mkdtemp(prefix="sessrec-collector-bench-", dir=a.tmpdir)
    cols = []
    ok = False
    res = {"host": os.uname().nodename, "cpus": os.cpu_count(), "loadavg": os.getloadavg(), "quick": a.quick}
    try:
        pki = os.path.join(root, "pki")
        cb = os.path.join(build, "bin", "sessrec-collector")
        for args in (["ca", "init", "--dir", pki, "--host", "localhost,127.0.0.1"], ["ca", "issue-node", NODE, "--dir", pki]):
            p = subprocess.run([cb, *args], capture_output=True, text=True)
            if p.returncode:
                raise BenchError("%s: %s" % (" ".join(args), p.stderr.strip()))

        # ---- (1) ingest
        dd_mib = 256 if a.quick else 1024
        log("disk baseline: dd %d MiB, conv=fsync, into %s" % (dd_mib, root))
        res["dd_mbs"] = dd_baseline(root, dd_mib)
        # per uploader one session of this many parts: about 48 (quick) or 128 MiB of terminal output
        profiles = [("agent default parts", MIB, 48 if a.quick else 128)]
        if not a.quick:
            profiles.append(("8 MiB parts", 8 * MIB, 16))
        col = Collector(build, root, "ingest", pki)
        cols.append(col)
        col.start()
        res["summaries_off"] = summaries_off(build, col)
        res["ingest"] = []
        for name, part_raw, parts in profiles:
            log("generating recordings: %s (%d parts of %d KiB inflated)" % (name, parts, part_raw >> 10))
            wl = Workload(part_raw, parts)
            for u in uploaders:
                runs = []
                for rep in range(a.reps):
                    r = upload_run(col, wl, u, 1)
                    r["complete_s"] = complete_all(col, r["sids"], parts)
                    log("%s, %d uploaders, run %d: %.0f MB/s (%d MiB in %.2f s)" % (
                        name, u, rep + 1, r["mbs"], r["bytes"] // MIB, r["seconds"]))
                    runs.append(r)
                med = sorted(runs, key=lambda x: x["mbs"])[len(runs) // 2]
                res["ingest"].append({
                    "profile": name, "part_raw": part_raw, "uploaders": u,
                    "part_bytes_avg": med["bytes"] / med["parts"], "mbs_median": med["mbs"],
                    "mbs_runs": [x["mbs"] for x in runs], "raw_mbs_median": med["raw_mbs"],
                    "put_ms_p50": med["put_ms_p50"], "put_ms_p99": med["put_ms_p99"],
                    "collector_cpu_s_per_gib": med["collector_cpu_s"] / (med["bytes"] / (1 << 30)),
                    "client_cpu_s_per_gib": med["client_cpu_s"] / (med["bytes"] / (1 << 30)),
                    "machine_busy": med["machine_busy"],
                    "complete_s_per_session": med["complete_s"] / u,
                })
            # the recordings are sound: the C reader checks one through the API
            tok = col.token("bench-auditor", "auditor")
            env = dict(os.environ, SESSREC_URL="https://127.0.0.1:%d" % col.port, SESSREC_TOKEN=tok,
                       SESSREC_CA=os.path.join(pki, "ca.crt"), HOME="/nonexistent")
            p = subprocess.run([os.path.join(build, "bin", "sessrec"), "verify", runs[-1]["sids"][0]],
                               capture_output=True, text=True, env=env, timeout=300)
            if p.returncode:
                raise BenchError("sessrec verify of an uploaded recording: " + p.stderr.strip())
        col.stop()
        shutil.rmtree(col.data_dir, ignore_errors=True)

        # ---- (2) ls latency
        n = 20000 if a.quick else a.index_sessions
        col = Collector(build, root, "index", pki)
        cols.append(col)
        col.start()  # creates the schema
        tok = col.token("bench-auditor", "auditor")
        col.stop()
        log("populating index.db with %d sessions" % n)
        t = time.perf_counter()
        sess = populate(os.path.join(col.data_dir, "index.db"), n)
        res["populate_s"] = time.perf_counter() - t
        col.start()
        user = sess[n // 2][2]
        queries = [
            ("user", "/v1/sessions?user=%s&limit=100" % user, lambda s: s["user"] == user),
            ("label (1%)", "/v1/sessions?label=team%3Dteam-7&limit=100", lambda s: s["labels"]["team"] == "team-7"),
            ("label (33%)", "/v1/sessions?label=env%3Dprod&limit=100", lambda s: s["labels"]["env"] == "prod"),
            ("command (common)", "/v1/sessions?command=kubectl&limit=100", None),
            ("command (0.1%)", "/v1/sessions?command=terraform%20destroy&limit=100", None),
            ("addr", "/v1/sessions?addr=10.1.2.3&limit=100", None),
            ("user+label", "/v1/sessions?user=%s&label=env%%3Dprod&limit=100" % user,
             lambda s: s["user"] == user and s["labels"]["env"] == "prod"),
            ("no filter", "/v1/sessions?limit=100", None),
        ]
        res["ls"] = []
        for name, path, check in queries:
            times, rows = time_query(col, tok, path, 20)
            if check and not all(check(s) for s in rows):
                raise BenchError("%s: the answer holds sessions that do not match" % name)
            if name != "addr" and not rows:
                raise BenchError("%s: no sessions found" % name)
            starts = [s["start"] for s in rows]
            if starts != sorted(starts, reverse=True):
                raise BenchError("%s: not newest first" % name)
            res["ls"].append({"filter": name, "path": path, "rows": len(rows),
                              "ms_median": 1000 * statistics.median(times), "ms_p90": 1000 * pct(times, 0.9)})
            log("ls %s: %.1f ms (%d rows)" % (name, res["ls"][-1]["ms_median"], len(rows)))
        cli_times = time_cli(build, col, tok, ["--user", user, "--limit", "100"], 10)
        res["ls_cli_ms_median"] = 1000 * statistics.median(cli_times)
        res["index_sessions"] = n
        col.stop()
        ok = True
    except Interrupted:
        log("interrupted")
        return 130
    except BenchError as e:
        log("measurement failed: %s" % e)
        res["error"] = str(e)
    finally:
        for c in cols:
            c.stop()
        if not a.keep and (ok or not cols):
            shutil.rmtree(root, ignore_errors=True)
        elif not ok or a.keep:
            log("scratch directory kept: %s" % root)
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    for r in res.get("ingest", []):
        r.pop("sids", None)
    with open(out_path, "w") as f:
        json.dump(res, f, indent=2)
    report(res)
    log("results in %s" % out_path)
    return 0 if ok else 1


def report(res):
    print()
    print("sessrec-collector: ingest over TLS (MB/s = MiB/s of part bytes; target >= %.0f)" % TARGET_INGEST_MBS)
    print("  %-22s %9s %10s %9s %9s %9s %10s %9s %8s" % ("parts", "uploaders", "part KiB", "MB/s", "of disk",
                                                         "raw MB/s", "PUT p50ms", "p99 ms", "target"))
    dd = res.get("dd_mbs")
    for r in res.get("ingest", []):
        print("  %-22s %9d %10.0f %9.0f %8.0f%% %9.0f %10.1f %9.1f %8s" % (
            r["profile"], r["uploaders"], r["part_bytes_avg"] / 1024, r["mbs_median"],
            100 * r["mbs_median"] / dd if dd else 0, r["raw_mbs_median"], r["put_ms_p50"], r["put_ms_p99"],
            "ok" if r["mbs_median"] >= TARGET_INGEST_MBS else "MISSED"))
    if dd:
        print("  disk baseline: dd bs=1M conv=fsync %.0f MB/s" % dd)
    for r in res.get("ingest", []):
        print("  %s, %d uploaders: CPU per GiB: collector %.1f s, uploaders %.1f s; machine %.0f%% busy;"
              " complete %.2f s/session; runs %s" % (
                  r["profile"], r["uploaders"], r["collector_cpu_s_per_gib"], r["client_cpu_s_per_gib"],
                  100 * r["machine_busy"], r["complete_s_per_session"], " ".join("%.0f" % x for x in r["mbs_runs"])))
    if res.get("summaries_off") is not None:
        print("  (automatic summaries %s during the runs)" % ("off" if res["summaries_off"] else "ON"))
    if res.get("ls"):
        print()
        print("sessrec-collector: GET /v1/sessions?...&limit=100 over %d sessions (keep-alive HTTPS; target <= %.0f ms)"
              % (res["index_sessions"], TARGET_LS_MS))
        print("  %-18s %6s %10s %8s %8s" % ("filter", "rows", "median ms", "p90 ms", "target"))
        for r in res["ls"]:
            print("  %-18s %6d %10.1f %8.1f %8s" % (r["filter"], r["rows"], r["ms_median"], r["ms_p90"],
                                                 "ok" if r["ms_median"] <= TARGET_LS_MS else "MISSED"))
        print("  `sessrec ls --user U --limit 100` (new process + TLS handshake): %.1f ms median" %
              res["ls_cli_ms_median"])
        print("  index built in %.1f s (straight into index.db)" % res["populate_s"])
    if res.get("error"):
        print("\nFAILED: %s" % res["error"])


if __name__ == "__main__":
    sys.exit(main())
