"""Only processes of a session are recorded, each in its own session."""
import json
import os
import socket
import subprocess

from conftest import (
    Background,
    check_common,
    commands,
    load_events,
    marker,
    of,
    print_bytes,
    start_of,
)


def everything_recorded(agent):
    """The text of every event of every recording of the agent, and its audit log."""
    texts = []
    for p in agent.recordings():
        texts.extend(json.dumps(e) for e in load_events(p, check=False))
    return "\n".join(texts), agent.audit_raw().decode(errors="replace")


def test_outside_process_not_recorded(agent, tmpdir_world):
    m = marker()
    inside = "inside-" + m
    b = Background(agent, ["sh", "-c", "read x; echo got-$x"])
    try:
        # the session is open and waiting: now the test itself (outside any session) acts
        outside_file = os.path.join(tmpdir_world, "outside-file-" + m)
        with open(outside_file, "w") as f:
            f.write("x")
        with open(outside_file) as f:
            f.read()
        subprocess.run(["/bin/echo", "outside-exec-" + m], check=True, capture_output=True)
        subprocess.run(["sh", "-c", "cat %s > /dev/null" % outside_file], check=True)
        with socket.socket() as lst:
            lst.bind(("127.0.0.1", 0))
            lst.listen(1)
            port = lst.getsockname()[1]
            with socket.create_connection(("127.0.0.1", port)):
                pass
        r = b.finish((inside + "\n").encode())
    finally:
        b.kill()
    assert r.rc == 0, r
    evs = agent.wait_recording(b.sid)
    check_common(evs, b.sid)
    # the session itself was recorded, and its output is only what it wrote (not the tty's echo)
    assert print_bytes(evs) == ("got-%s\n" % inside).encode(), print_bytes(evs)
    rec, audit = everything_recorded(agent)
    assert "got-" + inside in rec
    for needle in ("outside-file-" + m, "outside-exec-" + m):
        assert needle not in rec, "%s from outside the session is in a recording" % needle
        assert needle not in audit, "%s from outside the session is in the audit log" % needle
    for p in agent.recordings():
        for e in load_events(p, check=False):
            assert not (e["event"] == "session.network" and e["dst_port"] == port), e
    # the launcher relays the terminal but is not part of the session
    assert not [e for e in evs if e.get("pid") == b.pid], "the launcher's own activity was recorded"


def test_two_concurrent_sessions_apart(agent, tmpdir_world):
    m = marker()
    files = {}
    for k in ("a", "b"):
        files[k] = os.path.join(tmpdir_world, "file-%s-%s" % (k, m))
        with open(files[k], "w") as f:
            f.write("content-%s-%s\n" % (k, m))
    script = "read x; cat %s; read x; echo done-%s"
    sa = Background(agent, ["sh", "-c", script % (files["a"], "a")])
    sb = Background(agent, ["sh", "-c", script % (files["b"], "b")])
    try:
        # both sessions are open at once and act in turns
        for s in (sa, sb, sa, sb):
            s.proc.stdin.write(b"go\n")
            s.proc.stdin.flush()
        ra, rb = sa.finish(), sb.finish()
    finally:
        sa.kill()
        sb.kill()
    assert ra.rc == 0 and rb.rc == 0, (ra, rb)
    assert sa.sid != sb.sid
    ea, eb = agent.wait_recording(sa.sid), agent.wait_recording(sb.sid)
    check_common(ea, sa.sid)
    check_common(eb, sb.sid)
    for evs, own, other, k in ((ea, files["a"], files["b"], "a"), (eb, files["b"], files["a"], "b")):
        paths = [e["path"] for e in of(evs, "session.disk")]
        assert own in paths, "session %s lacks its own file" % k
        assert other not in paths, "session %s has the other session's file" % k
        out = print_bytes(evs)
        assert out == ("content-%s-%s\ndone-%s\n" % (k, m, k)).encode(), out
        cats = commands(evs, path="/usr/bin/cat")
        assert len(cats) == 1 and cats[0]["argv"] == ["cat", own], cats
    pids_a = {e["pid"] for e in ea if "pid" in e and e["event"] != "session.start"}
    pids_b = {e["pid"] for e in eb if "pid" in e and e["event"] != "session.start"}
    assert pids_a and pids_b and not pids_a & pids_b, (pids_a, pids_b)
    assert start_of(ea)["cgroup_id"] != start_of(eb)["cgroup_id"]
    assert {e["cgroup_id"] for e in ea if "cgroup_id" in e} == {start_of(ea)["cgroup_id"]}
    assert {e["cgroup_id"] for e in eb if "cgroup_id" in e} == {start_of(eb)["cgroup_id"]}
    assert {e["sid"] for e in agent.audit() if e["uid"] in {x["uid"] for x in ea}} == {sa.sid}
