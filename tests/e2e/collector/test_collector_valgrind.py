"""The collector under valgrind (memcheck) with mTLS: an agent uploads a session, a
person lists it and reads its events and recording, then SIGTERM. No memory error,
no leak."""
import os

import vgcheck

from .helpers import cli, curl, events_of


def test_collector_is_valgrind_clean(lab):
    vlog = os.path.join(lab.mkdir("valgrind"), "valgrind.log")
    prefix = vgcheck.prefix(vlog)
    c = lab.collector(start=False, prefix=prefix)
    c.start(timeout=180)
    a = lab.agent(c)
    aud = c.token("vg-auditor", "auditor")
    r = lab.run(a, ["sh", "-c", "echo valgrind-marker; ls / >/dev/null"])
    assert r.rc == 0 and r.sid, r
    s = c.wait_complete(r.sid, aud, agent=a, timeout=180)
    assert s["status"] == "complete", s
    evs = events_of(r.sid, c, aud)
    assert any(e["event"] == "session.command" for e in evs), evs
    rec = curl("%s/v1/sessions/%s/recording" % (c.url, r.sid), ca=c.pki.ca, token=aud)
    assert rec.status == 200, rec
    out = cli(c, "ls", token=aud, check=True)
    assert r.sid[:8].encode() in out.stdout, out  # the table shows short ids
    a.stop()
    rc = c.stop(timeout=180)
    vgcheck.check(vlog, rc, "collector", c.log_tail())
