"""The central audit log: rotated by size (audit_rotate_size, audit_keep), while the API keeps
every line readable in order with cursors that go on across rotations."""
import glob
import json
import os

from . import recfmt
from .helpers import NODE, cli, new_sid, poll


def busy_recording(i, commands=120):
    """A session with many commands: each becomes an audit line of a few hundred bytes."""
    r = recfmt.Recording(new_sid())
    r.start(user="rot-%d" % i, node=NODE, command=("bash",))
    for k in range(commands):
        r.add(recfmt.command(1000 + k, "/usr/bin/printf", ["printf", "line %d of session %d %s" % (k, i, "x" * 80)]),
              ms=k)
        if k % 50 == 49:
            r.cut()
    r.finish(ms=commands + 1)
    return r


def test_audit_log_rotates_and_stays_readable(lab):
    c = lab.collector(audit_rotate_size="64KiB", audit_keep=2)
    aud = c.token("ce-auditor", "auditor")
    recs = [busy_recording(i) for i in range(6)]
    for r in recs:
        c.upload(r)
    logdir = os.path.join(c.data_dir, "log")
    files = sorted(os.listdir(logdir))
    assert "events.log" in files and "events.log.1" in files and "events.log.2" in files, files
    assert "events.log.3" not in files, files  # audit_keep: 2
    for f in glob.glob(os.path.join(logdir, "events.log*")):
        size = os.path.getsize(f)
        assert size <= 64 * 1024 + 16 * 1024, (f, size)  # rotated at the size (plus one batch)
        with open(f) as fh:
            for line in fh:
                json.loads(line)  # whole JSON lines only, also at the cut
    # the collector summarizes each session in the background (the default policy): wait for
    # those lines, so that the log stands still while it is read three times below
    def settled():
        r = c.get("/v1/audit/events?limit=10000&type=session.summarized", token=aud)
        return r.status == 200 and {e["sid"] for e in r.lines()} >= {rec.sid for rec in recs}

    poll(settled, 60, interval=0.2, what="the sessions' session.summarized lines")
    # the API still has every line, in order, cursors growing across the rotations
    r = c.get("/v1/audit/events?limit=10000", token=aud)
    assert r.status == 200, r
    evs = r.lines()
    cursors = [e["cursor"] for e in evs]
    assert cursors == sorted(cursors) and len(set(cursors)) == len(cursors)
    for rec in recs:
        mine = [e for e in evs if e.get("sid") == rec.sid]
        assert [e["event"] for e in mine].count("session.command") == 120
        assert mine[0]["event"] == "session.start"
        assert [e["event"] for e in mine].count("session.upload") == 1
    # paging with after= gives the same lines
    got, after = [], 0
    while True:
        r = c.get("/v1/audit/events?limit=200&after=%d" % after, token=aud)
        page = r.lines()
        if not page:
            break
        got += page
        after = page[-1]["cursor"]
    assert [e["cursor"] for e in got] == cursors
    # and the CLI reads it so
    p = cli(c, "audit", "tail", "--json", "--limit", "10000", token=aud, check=True)
    assert [json.loads(l)["cursor"] for l in p.stdout.splitlines()] == cursors
