"""100 sessions at once: all succeed, and each recording holds only its own processes."""
import re
import time

from conftest import Background, report, check_common, check_prints, commands, of, poll, print_bytes, start_of

N = 100


def test_100_concurrent_sessions(agent):
    with open("/etc/hostname", "rb") as f:
        host = f.read()
    before = agent.metrics()
    t0 = time.monotonic()
    # every session waits on its stdin until all of them are open
    sessions = []
    results = []
    try:
        for _ in range(N):
            sessions.append(Background(agent, ["sh", "-c", "echo $$; read x; cat /etc/hostname"]))
        opened = time.monotonic() - t0
        open_now = agent.metrics()[("sessrec_agent_sessions_open", ())]
        assert open_now == before[("sessrec_agent_sessions_open", ())] + N, "sessions open at once: %d" % open_now
        for s in sessions:
            s.proc.stdin.write(b"go\n")
            s.proc.stdin.flush()
        for s in sessions:
            r = s.finish(timeout=max(1, 60 - (time.monotonic() - t0)))
            results.append((r.rc, r.out, "session " + s.sid))
    finally:
        for s in sessions:
            s.kill()
    ran = time.monotonic() - t0
    bad = [r for r in results if r[0] != 0]
    assert not bad, "%d of %d sessions failed, e.g. %r" % (len(bad), N, bad[:3])
    sids = [e.split()[1] for _, _, e in results]
    assert len(set(sids)) == N
    cgroups = set()
    for (rc, out, err), sid in zip(results, sids):
        m = re.search(rb"(?m)^(\d+)\r?$", out)
        assert m, "no pid in the output of %s: %r" % (sid, out)
        pid = int(m.group(1))
        evs = agent.wait_recording(sid, timeout=max(5, 60 - (time.monotonic() - t0)))
        check_common(evs, sid)
        check_prints(evs)
        sh = commands(evs)[0]
        assert sh["pid"] == pid and sh["argv"][0] == "sh", (sid, sh, pid)
        cats = commands(evs, path="/usr/bin/cat")
        assert len(cats) == 1 and cats[0]["ppid"] == pid, (sid, cats)
        pids = {e["pid"] for e in evs if "pid" in e}
        assert pids == {pid, cats[0]["pid"]}, "session %s holds events of other processes: %s" % (sid, pids)
        assert print_bytes(evs) == b"%d\n" % pid + host, (sid, print_bytes(evs))
        assert len(of(evs, "session.command")) == 2
        cgroups.add(start_of(evs)["cgroup_id"])
    took = time.monotonic() - t0
    report("%d concurrent sessions: all open after %.1fs, all done after %.1fs, all recordings checked after %.1fs"
          % (N, opened, ran, took))
    assert len(cgroups) == N
    assert took < 60, "100 sessions took %.1fs" % took
    after = poll(lambda: (lambda m: m if m[("sessrec_agent_sessions_open", ())] == 0 else None)(agent.metrics()), 10,
                 what="all sessions closed")
    assert after[("sessrec_agent_sessions_total", ())] - before[("sessrec_agent_sessions_total", ())] == N
    for c in ("command", "disk", "network", "terminal"):
        k = ("sessrec_agent_lost_events_total", (("class", c),))
        assert after[k] == before[k], "events lost under 100 sessions: %s" % c
