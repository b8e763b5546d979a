"""Upload and read: sessions recorded by an agent with an mTLS collector arrive whole, and
every reader (curl on the API, sessrec ls/show/events/verify/play/export/audit, Debian's
asciinema) finds and shows them."""
import base64
import calendar
import json
import os
import queue
import socket
import subprocess
import threading
import time

import pytest

from .helpers import NODE, SESSREC, cli, curl, events_of, session_env, verify_file


def ms_of(t):
    """RFC 3339 UTC with ms -> ms since the epoch."""
    return calendar.timegm(time.strptime(t[:19], "%Y-%m-%dT%H:%M:%S")) * 1000 + int(t[20:23])


def rfc(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


class Stack:
    pass


@pytest.fixture(scope="module")
def st(mlab):
    s = Stack()
    s.c = mlab.collector()
    s.a = mlab.agent(s.c, labels={"env": "ce", "rack": "r1"})
    s.aud = s.c.token("ce-auditor", "auditor")
    s.alice = s.c.token("alice", "access")
    s.lab = mlab
    # a listener outside the sessions, for the address filter
    s.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.listener.bind(("127.0.0.1", 0))
    s.listener.listen(16)
    port = s.listener.getsockname()[1]
    s.r1 = mlab.run(s.a, ["bash", "-c", "echo MARK-ONE; /bin/echo ce-cmd-marker-7f3 >/dev/null; "
                                        "exec 3<>/dev/tcp/127.0.0.1/%d; exec 3>&-; exit 3" % port],
                    opts=["--user", "alice", "--label", "team=red"])
    assert s.r1.rc == 3 and s.r1.sid, s.r1
    s.r2 = mlab.run(s.a, ["sh", "-c", "echo MARK-TWO; printf 'second line\\n'"],
                    opts=["--user", "bob", "--kind", "ssh", "--login", "bob", "--label", "team=blue"])
    assert s.r2.rc == 0 and s.r2.sid, s.r2
    s.s1 = s.c.wait_complete(s.r1.sid, s.aud, agent=s.a)
    s.s2 = s.c.wait_complete(s.r2.sid, s.aud, agent=s.a)
    yield s
    s.listener.close()


def test_session_object_via_curl(st):
    r = curl("%s/v1/sessions/%s" % (st.c.url, st.r1.sid), ca=st.c.pki.ca, token=st.aud)
    assert r.status == 200, r
    s = r.json()
    assert s["sid"] == st.r1.sid
    assert s["status"] == "complete"
    assert s["closed_by"] == "session"
    assert (s["user"], s["login"], s["node"], s["kind"]) == ("alice", "root", NODE, "local")
    assert s["labels"] == {"team": "red", "env": "ce", "rack": "r1"}
    assert s["exit_code"] == 3
    assert s["initial_command"][0] == "bash"
    # the node's audit log is the reference for what was run
    node_cmds = [e for e in st.a.audit(st.r1.sid) if e["event"] == "session.command"]
    assert len(node_cmds) >= 2  # bash and /bin/echo
    assert s["commands"] == len(node_cmds), (s, node_cmds)
    evs = events_of(st.r1.sid, st.c, st.aud)
    assert s["events"] == len(evs)
    assert s["parts"] == len(s["parts_sha256"]) >= 1
    assert s["start"] <= s["end"] and abs(s["duration_ms"] - (ms_of(s["end"]) - ms_of(s["start"]))) <= 1
    s2 = st.s2
    assert (s2["user"], s2["login"], s2["kind"], s2["exit_code"]) == ("bob", "bob", "ssh", 0)
    assert s2["labels"] == {"team": "blue", "env": "ce", "rack": "r1"}
    # the agent deleted its copy once the collector acknowledged the completion
    assert not os.path.exists(st.a.rec_path(st.r1.sid))


def ls(st, *args, token=None):
    p = cli(st.c, "ls", "--json", *args, token=token or st.aud, check=True)
    return [json.loads(l)["sid"] for l in p.stdout.splitlines() if l.strip()]


def test_ls_table_and_json(st):
    p = cli(st.c, "ls", token=st.aud, check=True)
    out = p.stdout.decode()
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["SID", "START", "DURATION"], out
    row1 = [l for l in lines if l.startswith(st.r1.sid[:8])]
    assert len(row1) == 1 and " alice " in row1[0] and NODE in row1[0], out
    assert any(l.startswith(st.r2.sid[:8]) for l in lines), out
    p = cli(st.c, "ls", "--json", token=st.aud, check=True)
    objs = [json.loads(l) for l in p.stdout.splitlines()]
    by = {o["sid"]: o for o in objs}
    assert by[st.r1.sid]["user"] == "alice" and by[st.r2.sid]["user"] == "bob"
    # newest first
    assert [o["sid"] for o in objs].index(st.r2.sid) < [o["sid"] for o in objs].index(st.r1.sid)
    # the wide table has the whole ids, the status and the labels
    out = cli(st.c, "ls", "--wide", token=st.aud, check=True).stdout.decode()
    assert st.r1.sid in out and "complete" in out and "team=red" in out, out


def test_ls_filters(st):
    one, two = st.r1.sid, st.r2.sid
    assert ls(st, "--user", "alice") == [one]
    assert ls(st, "--user", "bob") == [two]
    assert ls(st, "--user", "nobody-at-all") == []
    assert set(ls(st, "--node", NODE)) == {one, two}
    assert ls(st, "--node", "other-node") == []
    assert ls(st, "--kind", "ssh") == [two]
    assert ls(st, "--kind", "local") == [one]
    assert ls(st, "--label", "team=red") == [one]
    assert ls(st, "--label", "team=blue") == [two]
    assert set(ls(st, "--label", "rack=r1")) == {one, two}
    assert ls(st, "--label", "team=red", "--label", "rack=r1") == [one]
    assert ls(st, "--label", "team=red", "--label", "rack=r2") == []
    assert ls(st, "--command", "ce-cmd-marker-7f3") == [one]
    assert ls(st, "--command", "MARK-TWO") == [two]  # in the argv of `sh -c`
    assert ls(st, "--command", "no-such-command-xyz") == []
    assert ls(st, "--addr", "127.0.0.1") == [one]
    assert ls(st, "--addr", "10.9.8.7") == []
    assert ls(st, "--status", "complete", "--user", "alice") == [one]
    # time range: the sessions ran one after the other
    t1, t2 = ms_of(st.s1["start"]), ms_of(st.s2["start"])
    assert t1 < t2
    assert ls(st, "--from", rfc(t1 - 60000), "--to", rfc(t2 + 1)) == [two, one]
    assert ls(st, "--from", rfc(t2)) == [two]
    assert ls(st, "--to", rfc(t1 + 1)) == [one]
    assert ls(st, "--from", rfc(t2 + 60000)) == []
    # the same filters straight on the API
    r = st.c.get("/v1/sessions?label=team%3Dred&user=alice&kind=local", token=st.aud)
    assert r.status == 200 and [s["sid"] for s in r.json()["sessions"]] == [one], r
    r = st.c.get("/v1/sessions?limit=1", token=st.aud)
    page = r.json()
    assert r.status == 200 and [s["sid"] for s in page["sessions"]] == [two] and page["next_cursor"], r
    r = st.c.get("/v1/sessions?limit=1&cursor=" + page["next_cursor"], token=st.aud)
    assert [s["sid"] for s in r.json()["sessions"]] == [one], r


def test_show(st):
    p = cli(st.c, "show", st.r1.sid, token=st.aud, check=True)
    out = p.stdout.decode()
    fields = dict(l.split(":", 1) for l in out.splitlines() if ":" in l)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    assert fields["sid"] == st.r1.sid
    assert fields["status"] == "complete"
    assert fields["user"] == "alice" and fields["node"] == NODE
    assert fields["exit_code"] == "3"
    assert fields["commands"] == str(st.s1["commands"])
    p = cli(st.c, "show", "--json", st.r1.sid, token=st.aud, check=True)
    assert json.loads(p.stdout)["parts_sha256"] == st.s1["parts_sha256"]


def test_events_same_as_downloaded_recording(st, tmp_path):
    f = tmp_path / "rec"
    r = curl("%s/v1/sessions/%s/recording" % (st.c.url, st.r1.sid), output=str(f), ca=st.c.pki.ca, token=st.aud)
    assert r.status == 200, r
    assert verify_file(str(f)).returncode == 0
    remote = cli(st.c, "events", st.r1.sid, "--json", token=st.aud, check=True).stdout
    local = subprocess.run([SESSREC, "events", str(f), "--json"], capture_output=True, env=session_env())
    assert local.returncode == 0, local.stderr
    assert remote == local.stdout
    evs = [json.loads(l) for l in remote.splitlines()]
    assert evs[0]["event"] == "session.start" and evs[-1]["event"] == "session.end"
    assert [e["ei"] for e in evs] == list(range(len(evs)))
    out = b"".join(base64.b64decode(e["data_b64"]) for e in evs if e["event"] == "print")
    assert b"MARK-ONE" in out
    # every event the node logged is in the recording, the same
    rec = {e["uid"]: e for e in evs}
    for e in st.a.audit(st.r1.sid):
        assert e["uid"] in rec, e
        assert rec[e["uid"]]["event"] == e["event"] and rec[e["uid"]]["ei"] == e["ei"]
    # the API's events route gives the same, and filters by type
    r = st.c.get("/v1/sessions/%s/events" % st.r1.sid, token=st.aud)
    assert r.status == 200 and r.lines() == evs, r
    r = st.c.get("/v1/sessions/%s/events?type=network" % st.r1.sid, token=st.aud)
    nets = r.lines()
    assert nets and all(e["event"] == "session.network" for e in nets), r
    assert any(e["dst_addr"] == "127.0.0.1" and e["dst_port"] == st.listener.getsockname()[1] for e in nets), nets


def test_verify(st):
    p = cli(st.c, "verify", st.r1.sid, token=st.aud)
    assert p.returncode == 0, p.stderr
    assert b"OK" in p.stdout, p.stdout


def test_play(st):
    p = cli(st.c, "play", "--speed", "0", st.r2.sid, token=st.aud, check=True)
    assert b"MARK-TWO" in p.stdout and b"second line" in p.stdout, p.stdout
    assert p.stdout.replace(b"\r\n", b"\n") == st.r2.out.replace(b"\r\n", b"\n")


def test_export_asciicast_read_by_asciinema(st, tmp_path):
    cast = tmp_path / "f.cast"
    cli(st.c, "export", st.r2.sid, "--format", "asciicast", "-o", str(cast), token=st.aud, check=True)
    lines = cast.read_text().splitlines()
    hdr = json.loads(lines[0])
    assert hdr["version"] == 2 and hdr["width"] == 80 and hdr["height"] == 24 and hdr["timestamp"] > 0
    for l in lines[1:]:
        t, kind, data = json.loads(l)
        assert kind == "o" and t >= 0
    # asciinema cat needs a terminal: script gives it one
    p = subprocess.run(["script", "-qec", "asciinema cat %s" % cast, "/dev/null"], capture_output=True, timeout=60,
                       env=session_env({"HOME": str(tmp_path), "LC_ALL": "C.UTF-8"}), stdin=subprocess.DEVNULL)
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert b"MARK-TWO" in p.stdout and b"second line" in p.stdout, p.stdout


def test_audit_tail_json(st):
    p = cli(st.c, "audit", "tail", "--json", token=st.aud, check=True)
    evs = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    mine = [e for e in evs if e.get("sid") == st.r1.sid]
    node = st.a.audit(st.r1.sid)
    assert node and {e["uid"] for e in node} <= {e["uid"] for e in mine}
    for e in mine:
        assert isinstance(e["cursor"], int)
    up = [e for e in mine if e["event"] == "session.upload"]
    assert len(up) == 1 and up[0]["code"] == "T2005I", up
    assert st.r1.sid in up[0]["url"]
    # the central audit log on disk holds the same lines (without the cursor)
    with open(os.path.join(st.c.data_dir, "log", "events.log")) as f:
        disk = [json.loads(l) for l in f if l.strip()]
    assert {e["uid"] for e in mine} <= {e["uid"] for e in disk}
    # the text form and the filters
    p = cli(st.c, "audit", "tail", "--sid", st.r1.sid, "--type", "session.upload", token=st.aud, check=True)
    lines = p.stdout.decode().splitlines()
    assert len(lines) == 1 and "session.upload" in lines[0], lines


def test_audit_tail_follow(st):
    env = session_env({"HOME": "/nonexistent", "SESSREC_URL": st.c.url, "SESSREC_TOKEN": st.aud,
                       "SESSREC_CA": st.c.pki.ca})
    p = subprocess.Popen([SESSREC, "audit", "tail", "-f", "--json"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
    st.lab.procs.append(p)
    q = queue.Queue()

    def reader():
        for line in p.stdout:
            q.put(line)
        q.put(None)

    threading.Thread(target=reader, daemon=True).start()
    try:
        r = st.lab.run(st.a, ["sh", "-c", "echo FOLLOW-ME"], opts=["--user", "carol"])
        assert r.rc == 0 and r.sid, r
        seen = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                line = q.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            assert line is not None, "audit tail -f ended: %r" % p.stderr.read()
            if not line.strip():
                continue
            e = json.loads(line)
            if e.get("sid") == r.sid:
                seen.append(e["event"])
                if e["event"] == "session.upload":
                    break
        assert "session.start" in seen and "session.end" in seen and "session.upload" in seen, seen
        assert seen[0] == "session.start"
    finally:
        p.terminate()
        p.wait(10)
