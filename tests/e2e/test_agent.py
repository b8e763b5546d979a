"""The agent process: stop with open sessions, restart, crashes, a second agent, SIGHUP reloads."""
import json
import os
import re
import signal
import subprocess
import time

from conftest import (
    AGENT_BIN,
    PIN_DIR,
    Background,
    check_common,
    end_of,
    kill_session_cgroup,
    marker,
    node_lock,
    poll,
    run_session,
    start_of,
    verify,
)


def test_sigterm_finalizes_open_session(agent_factory):
    a = agent_factory()
    a.start()
    b = Background(a, ["sleep", "30"])
    try:
        time.sleep(0.3)
        t = time.monotonic()
        a.proc.send_signal(signal.SIGTERM)
        try:
            rc = a.proc.wait(15)
        except subprocess.TimeoutExpired:
            rc = "still running 15 s after SIGTERM"
        took = time.monotonic() - t
        a.kill()
        # the recording was finalized
        v = verify(a.rec_path(b.sid))
        assert v.returncode == 0, "recording of the open session not finalized on SIGTERM: %s\nagent log:\n%s" % (
            v.stderr.strip(), a.log_tail())
        evs = a.wait_recording(b.sid, timeout=1)
        check_common(evs, b.sid)
        end = end_of(evs)
        assert end["reason"] == "agent stopped", end
        assert end["exit_code"] == -1, end
        au = [x for x in a.audit(b.sid) if x["event"] == "session.end"]
        assert len(au) == 1 and au[0]["reason"] == "agent stopped", au
        assert rc == 0, "the agent must exit 0 after SIGTERM, got %s (a negative value is the signal that killed " \
                        "it)\nagent log:\n%s" % (rc, a.log_tail())
        assert took < 10
    finally:
        b.kill()
        kill_session_cgroup(b.sid)


def test_pins_removed_after_stop(agent_factory):
    a = agent_factory()
    a.start()
    pins = [n for n in os.listdir(PIN_DIR) if n.startswith("sessrec_")]
    assert "sessrec_sessions" in pins
    ids = set()
    for n in pins:
        p = subprocess.run(["bpftool", "-j", "prog", "show", "pinned", os.path.join(PIN_DIR, n)],
                           capture_output=True, text=True)
        if p.returncode == 0:
            ids.add(json.loads(p.stdout)["id"])
    assert ids, "no program pinned"
    a.stop()
    # hold the node lock: no other agent (another test run on this machine) may pin meanwhile
    with node_lock():
        left = [n for n in os.listdir(PIN_DIR)] if os.path.isdir(PIN_DIR) else []
        assert not [n for n in left if n.startswith("sessrec_")], "pins left after the agent stopped: %s" % left
    progs = json.loads(subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True,
                                      check=True).stdout)
    still = [p["name"] for p in progs if p["id"] in ids]
    assert not still, "the agent's programs are still loaded after it stopped: %s" % still


def test_restart_on_same_data_dir(agent_factory):
    a = agent_factory()
    a.start()
    r1 = run_session(a, ["echo", "first"])
    assert r1.rc == 0
    e1 = a.wait_recording(r1.sid)
    a.stop()
    a.start()
    r2 = run_session(a, ["echo", "second"])
    assert r2.rc == 0, r2
    e2 = a.wait_recording(r2.sid)
    a.stop()
    assert verify(a.rec_path(r1.sid)).returncode == 0, "the first recording broke"
    assert start_of(e1)["server_id"] == start_of(e2)["server_id"], "the node id must survive a restart"
    sids = {x["sid"] for x in a.audit()}
    assert {r1.sid, r2.sid} <= sids, "the audit log lost lines across the restart"
    assert len(e1) > 2 and len(e2) > 2


def test_stale_socket_after_crash(agent_factory):
    a = agent_factory()
    a.start()
    a.kill()  # SIGKILL: no cleanup at all
    assert os.path.exists(a.socket), "precondition: a SIGKILLed agent leaves its socket behind"
    a.start()
    r = run_session(a, ["echo", "after-crash"])
    assert r.rc == 0 and b"after-crash" in r.out, r
    evs = a.wait_recording(r.sid)
    check_common(evs, r.sid)


def test_second_agent_refused(agent_factory):
    a = agent_factory()
    a.start()
    for b in (agent_factory(), agent_factory(socket=a.socket)):
        p = subprocess.run([AGENT_BIN, "-c", b.config_path], capture_output=True, text=True, timeout=30)
        assert p.returncode != 0, p
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1, "one line saying why: %r" % p.stderr
        assert "already running" in lines[0] or "another" in lines[0], lines
    assert a.alive()
    r = run_session(a, ["echo", "still-here"])
    assert r.rc == 0 and b"still-here" in r.out, r
    a.wait_recording(r.sid)


def _reloaded(a, since, timeout=5):
    """Wait until the agent logged the outcome of a reload after log offset `since`."""
    def done():
        if not a.alive():
            raise AssertionError("the agent died on SIGHUP (exit status %s):\n%s" % (a.proc.returncode, a.log_tail()))
        return re.search(r"reload", a.log_text()[since:], re.I)

    return poll(done, timeout, what="the agent to log the reload")


def test_sighup_reload(agent_factory):
    m = marker()
    a = agent_factory(labels={"site": "old-" + m})
    a.start()
    r = run_session(a, ["true"])
    assert start_of(a.wait_recording(r.sid))["labels"] == {"site": "old-" + m}

    # a bad configuration: refused as a whole, the agent goes on with the old one
    good = a.config_text()
    a.write_config(good.replace("labels:", "bogus_key: 1\nlabels:").replace("old-", "bad-"))
    n = len(a.log_text())
    a.signal(signal.SIGHUP)
    _reloaded(a, n)
    time.sleep(0.2)
    assert a.alive(), "a bad configuration on SIGHUP killed the agent:\n%s" % a.log_tail()
    r = run_session(a, ["true"])
    assert r.rc == 0, r
    assert start_of(a.wait_recording(r.sid))["labels"] == {"site": "old-" + m}, "a refused reload changed labels"

    # a good one applies to the next session
    a.cfg["labels"] = {"site": "new-" + m, "extra": "1"}
    a.write_config()
    n = len(a.log_text())
    a.signal(signal.SIGHUP)
    _reloaded(a, n)
    r = run_session(a, ["true"])
    st = start_of(a.wait_recording(r.sid))
    assert st["labels"] == {"site": "new-" + m, "extra": "1"}, st["labels"]
    au = [x for x in a.audit(r.sid) if x["event"] == "session.start"]
    assert au[0]["labels"] == st["labels"]
    # a session label wins over the node's on the same key
    r = run_session(a, ["true"], opts=["--label", "site=mine"])
    assert start_of(a.wait_recording(r.sid))["labels"] == {"site": "mine", "extra": "1"}
    assert a.alive()


def test_sighup_reopens_audit_log(agent_factory):
    a = agent_factory()
    a.start()
    r1 = run_session(a, ["true"])
    a.wait_recording(r1.sid)
    a.wait_audit_end(r1.sid)
    os.rename(a.audit_log, a.audit_log + ".1")
    n = len(a.log_text())
    a.signal(signal.SIGHUP)
    _reloaded(a, n)
    r2 = run_session(a, ["true"])
    a.wait_recording(r2.sid)
    a.wait_audit_end(r2.sid)
    assert {x["sid"] for x in a.audit()} == {r2.sid}, "after SIGHUP the audit log is written at its path again"
    with open(a.audit_log + ".1") as f:
        old = [json.loads(l) for l in f]
    assert {x["sid"] for x in old} == {r1.sid}
