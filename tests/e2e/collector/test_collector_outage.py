"""Outages and crashes: the collector down (async and sync agents), the agent SIGKILLed with a
session running or ended, the collector SIGKILLed while parts are being uploaded. Each test
has its own collector and agent."""
import base64
import os
import time

from . import recfmt
from .helpers import cli, events_of, poll, read_file, verify_file

TERMINATED = b"sessrec: session terminated: the collector has been unreachable for "


def prints(evs):
    return b"".join(base64.b64decode(e["data_b64"]) for e in evs if e["event"] == "print")


def sound_prefix(path, dst):
    """The parts of a recording on the node that are whole (a crash may cut the last one short):
    written to dst; returns their SHA-256s."""
    parts = recfmt.split_parts(read_file(path))
    with open(dst, "wb") as f:
        for _, p in parts:
            f.write(p)
    return recfmt.part_hashes(read_file(dst))


def wait_spooled(agent, sid, text, timeout=20):
    """Until the node's recording holds a part with terminal output containing text."""
    path = agent.rec_path(sid)

    def ok():
        if not os.path.exists(path):
            return False
        tmp = path + ".probe"
        sound_prefix(path, tmp)
        try:
            return text in prints(events_of(tmp))
        except AssertionError:
            return False
        finally:
            os.unlink(tmp)

    poll(ok, timeout, interval=0.2, what="%r spooled in %s" % (text, path))


def check_remote(c, sid, token):
    p = cli(c, "verify", sid, token=token)
    assert p.returncode == 0, p.stderr
    return events_of(sid, c, token)


def test_async_outage_recording_arrives_whole(lab, tmp_path):
    c = lab.collector()
    aud = c.token("ce-auditor", "auditor")
    a = lab.agent(c)
    bg = lab.background(a, ["sh", "-c", "echo before-outage; read x; echo during-outage $x; ls / >/dev/null"])
    wait_spooled(a, bg.sid, b"before-outage")
    c.stop()  # the collector goes down while the session runs ...
    r = bg.finish(b"go\n")  # ... and the session ends during the outage
    assert r.rc == 0, r
    # the agent tried, failed, and keeps the recording
    poll(lambda: (a.metric("sessrec_agent_upload_errors_total", 'reason="connect"') or 0) >= 1, 20,
         what="a failed upload attempt")
    assert os.path.exists(a.rec_path(bg.sid))
    assert verify_file(a.rec_path(bg.sid)).returncode == 0  # final, whole, on the node
    local = events_of(a.rec_path(bg.sid))
    c.start()  # back (same address, same data dir)
    s = c.wait_complete(bg.sid, aud, timeout=30, agent=a)
    assert s["closed_by"] == "session" and s["exit_code"] == 0
    poll(lambda: not os.path.exists(a.rec_path(bg.sid)), 10, what="the node's copy deleted after the upload")
    remote = check_remote(c, bg.sid, aud)
    assert remote == local  # the same events, byte for byte in their JSON form
    assert s["events"] == len(remote)
    # the node's audit log has every non-print event of the session: the same count arrived
    node = a.audit(bg.sid)
    assert len(node) == len([e for e in remote if e["event"] != "print"])
    assert {e["uid"] for e in node} == {e["uid"] for e in remote if e["event"] != "print"}
    assert b"during-outage go" in prints(remote)


def test_sync_outage_terminates_session(lab):
    c = lab.collector()
    aud = c.token("ce-auditor", "auditor")
    a = lab.agent(c, mode="sync", grace="2s")
    bg = lab.background(a, ["sh", "-c", "echo sync-started; while :; do echo tick; sleep 0.3; done"])
    # parts stream while the session runs
    poll(lambda: c.session(bg.sid, aud), 20, what="the first part of the sync session at the collector")
    c.kill()
    t0 = time.monotonic()
    r = bg.finish(timeout=60)
    took = time.monotonic() - t0
    assert r.rc == 137, r
    assert TERMINATED in r.out, r.out[-500:]
    line = [l for l in r.out.splitlines() if TERMINATED in l][0]
    assert line.rstrip().endswith(b" s"), line
    assert took >= 2.0, "terminated %.1fs after the collector went away, before the grace period" % took
    assert a.metric("sessrec_agent_sessions_terminated_total") == 1
    assert "terminated" in a.log_text()
    # the recording waits on the node and arrives when the collector is back
    c.start()
    s = c.wait_complete(bg.sid, aud, timeout=30, agent=a)
    evs = check_remote(c, bg.sid, aud)
    end = evs[-1]
    assert end["event"] == "session.end" and end["reason"] == "collector unreachable", end
    assert s["exit_code"] == 137
    assert b"sync-started" in prints(evs)


def test_agent_sigkill_running_session_is_adopted(lab, tmp_path):
    c = lab.collector()
    aud = c.token("ce-auditor", "auditor")
    a = lab.agent(c)
    bg = lab.background(a, ["sh", "-c", "echo before-kill; read x; echo after-restart $x"])
    wait_spooled(a, bg.sid, b"before-kill")
    a.kill()
    hashes = sound_prefix(a.rec_path(bg.sid), str(tmp_path / "spooled"))
    spooled = events_of(str(tmp_path / "spooled"))
    a.start()
    poll(lambda: "session %s adopted" % bg.sid in a.log_text(), 10, what="the session adopted")
    assert a.metric("sessrec_agent_sessions_adopted_total") == 1
    bg.send(b"go\n")
    r = bg.finish()
    assert r.rc == 0, r
    s = c.wait_complete(bg.sid, aud, timeout=30, agent=a)
    assert s["closed_by"] == "session"
    assert s["parts_sha256"][:len(hashes)] == hashes  # every part spooled before the kill, unchanged
    evs = check_remote(c, bg.sid, aud)
    assert evs[:len(spooled)] == spooled
    lost = [e for e in evs if e["event"] == "session.lost"]
    assert [e["class"] for e in lost] == ["agent"], lost
    assert b"after-restart go" in prints(evs[len(spooled):])  # recorded on
    assert evs[-1]["event"] == "session.end"


def test_agent_sigkill_ended_session_closed_by_completer(lab, tmp_path):
    c = lab.collector()
    aud = c.token("ce-auditor", "auditor")
    a = lab.agent(c)
    bg = lab.background(a, ["sh", "-c", "echo before-kill; read x; echo unrecorded $x"])
    wait_spooled(a, bg.sid, b"before-kill")
    a.kill()
    r = bg.finish(b"go\n")  # the session ends while no agent runs
    assert r.rc == 0 and b"unrecorded go" in r.out, r
    hashes = sound_prefix(a.rec_path(bg.sid), str(tmp_path / "spooled"))
    spooled = events_of(str(tmp_path / "spooled"))
    a.start()
    s = c.wait_complete(bg.sid, aud, timeout=30, agent=a)
    assert s["closed_by"] == "completer"
    assert s["parts_sha256"][:len(hashes)] == hashes
    evs = check_remote(c, bg.sid, aud)
    assert evs[:len(spooled)] == spooled  # everything spooled before the kill arrived
    end = evs[-1]
    assert end["event"] == "session.end" and end["reason"] == "closed by completer", end
    assert end["time"] == evs[-2]["time"]  # closed at the time of its last event
    assert a.metric("sessrec_agent_completer_closed_total") == 1
    assert not os.path.exists(os.path.join("/cgroup2", a.root_path, bg.sid))


def test_collector_sigkill_mid_upload(lab, tmp_path):
    c = lab.collector()
    aud = c.token("ce-auditor", "auditor")
    a = lab.agent(c, mode="sync", part_size="256KiB", grace="60s")
    # about 20 MB of output over a few seconds: parts stream to the collector all along
    bg = lab.background(a, ["sh", "-c", "for i in $(seq 1 40); do head -c 300000 /dev/urandom | base64 -w 0;"
                                        " echo; sleep 0.05; done; echo BIG-DONE"])
    sdir = os.path.join(c.data_dir, "sessions", bg.sid)

    def stored():
        try:
            return len([n for n in os.listdir(sdir) if n.endswith(".part")])
        except FileNotFoundError:
            return 0

    poll(lambda: stored() >= 4, 30, interval=0.01, what="4 parts stored")
    errs0 = a.metric("sessrec_agent_upload_errors_total", 'reason="connect"') or 0
    c.kill()  # uploads are in flight
    killed_at = stored()
    # once the agent has seen the collector gone, its acknowledged count no longer moves
    poll(lambda: (a.metric("sessrec_agent_upload_errors_total", 'reason="connect"') or 0) > errs0, 20,
         what="the agent noticing the dead collector")
    acked = a.acked(bg.sid)
    assert acked >= 1, a.up_state(bg.sid)
    hashes = sound_prefix(a.rec_path(bg.sid), str(tmp_path / "node"))[:acked]
    assert len(hashes) == acked
    c.start()
    s = c.session(bg.sid, aud)
    assert s is not None and s["status"] == "uploading", s
    # every part the collector acknowledged before the crash is there, unchanged
    assert s["parts_sha256"][:acked] == hashes, (acked, killed_at, s)
    r = bg.finish(timeout=120)
    assert r.rc == 0 and b"BIG-DONE" in r.out, r.out[-300:]
    s = c.wait_complete(bg.sid, aud, timeout=60, agent=a)
    assert s["parts_sha256"][:acked] == hashes
    assert s["parts"] > killed_at
    p = cli(c, "verify", bg.sid, token=aud)
    assert p.returncode == 0, p.stderr
    # the whole output arrived: replayed, it is what the session's terminal showed
    p = cli(c, "play", "--speed", "0", bg.sid, token=aud, check=True)
    assert b"lost here" not in p.stdout, "terminal output lost: a ring buffer too small for this test"
    assert p.stdout.replace(b"\n", b"\r\n") == r.out
