"""Prometheus metrics and /healthz."""
import os
import re
import socket
import urllib.error
import urllib.request

from conftest import Background, poll, run_session

CLASSES = ("command", "disk", "network", "terminal")
KIND = {"session.command": "command", "session.disk": "disk", "session.network": "network", "print": "terminal"}


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def test_healthz(agent):
    status, _, body = get(agent.metrics_url + "/healthz")
    assert status == 200 and body.strip() == "ok", (status, body)
    status, _, _ = get(agent.metrics_url + "/no-such-page")
    assert status == 404


def test_metrics_exposition(agent):
    status, headers, text = get(agent.metrics_url + "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain"), headers["Content-Type"]
    families = {}
    for line in text.splitlines():
        m = re.match(r"^# (HELP|TYPE) (\w+) (.+)$", line)
        if m:
            families.setdefault(m.group(2), {})[m.group(1)] = m.group(3)
            continue
        m = re.match(r'^(\w+)(\{(\w+="[^"]*")(,\w+="[^"]*")*\})? -?[0-9.e+]+$', line)
        assert m, "not a Prometheus sample line: %r" % line
        assert m.group(1) in families, "sample before its HELP/TYPE: %r" % line
    for name, f in families.items():
        assert "HELP" in f and f.get("TYPE") in ("counter", "gauge"), (name, f)
        if f["TYPE"] == "counter":
            assert name.endswith("_total"), name
    # gauges are refreshed on the agent's tick: give it one
    size_key = ("sessrec_agent_ringbuf_size_bytes", (("class", "disk"),))
    mx = poll(lambda: (lambda x: x if x.get(size_key) else None)(agent.metrics()), 5, what="ring buffer sizes")
    for c in CLASSES:
        assert ("sessrec_agent_events_total", (("class", c),)) in mx
        assert ("sessrec_agent_lost_events_total", (("class", c),)) in mx
        assert ("sessrec_agent_ringbuf_size_bytes", (("class", c),)) in mx
        assert ("sessrec_agent_ringbuf_used_bytes", (("class", c),)) in mx
    pages = {"command": 8, "disk": 128, "network": 8}  # DESIGN.md defaults
    for c, n in pages.items():
        assert mx[("sessrec_agent_ringbuf_size_bytes", (("class", c),))] == n * os.sysconf("SC_PAGE_SIZE")
    for k in ("sessrec_agent_sessions_open", "sessrec_agent_sessions_total", "sessrec_agent_recording_bytes_total",
              "sessrec_agent_audit_bytes_total", "sessrec_agent_lost_terminal_bytes_total"):
        assert (k, ()) in mx, k


def test_counters_follow_a_session(agent):
    before = agent.metrics()
    audit_size = os.path.getsize(agent.audit_log) if os.path.exists(agent.audit_log) else 0
    with socket.socket() as lst:
        lst.bind(("127.0.0.1", 0))
        lst.listen(1)
        port = lst.getsockname()[1]
        r = run_session(agent, ["bash", "-c", "cat /etc/hostname; exec 3<>/dev/tcp/127.0.0.1/%d; echo done" % port])
    assert r.rc == 0, r
    evs = agent.wait_recording(r.sid)
    agent.wait_audit_end(r.sid)
    counts = {c: 0 for c in CLASSES}
    for e in evs:
        if e["event"] in KIND:
            counts[KIND[e["event"]]] += 1
    assert all(counts.values()), counts
    rec_size = os.path.getsize(agent.rec_path(r.sid))
    audit_growth = os.path.getsize(agent.audit_log) - audit_size

    def settled():
        mx = agent.metrics()
        return mx if mx[("sessrec_agent_sessions_open", ())] == 0 and \
            mx[("sessrec_agent_audit_bytes_total", ())] - before[("sessrec_agent_audit_bytes_total", ())] >= audit_growth \
            else None

    after = poll(settled, 5, what="metrics to settle")
    for c in CLASSES:
        k = ("sessrec_agent_events_total", (("class", c),))
        assert after[k] - before[k] == counts[c], "%s: counter went up by %d, the recording has %d" % (
            c, after[k] - before[k], counts[c])
        k = ("sessrec_agent_lost_events_total", (("class", c),))
        assert after[k] == before[k]
    d = lambda k: after[(k, ())] - before[(k, ())]  # noqa: E731
    assert d("sessrec_agent_sessions_total") == 1
    assert after[("sessrec_agent_sessions_open", ())] == 0
    assert d("sessrec_agent_recording_bytes_total") == rec_size, \
        "recording_bytes_total went up by %d, the session's recording is %d bytes" % (
            d("sessrec_agent_recording_bytes_total"), rec_size)
    assert d("sessrec_agent_audit_bytes_total") == audit_growth


def test_sessions_open_gauge(agent):
    key = ("sessrec_agent_sessions_open", ())
    base = agent.metrics()[key]
    b1 = Background(agent, ["sh", "-c", "read x"])
    b2 = Background(agent, ["sh", "-c", "read x"])
    try:
        assert agent.metrics()[key] == base + 2
        b1.finish(b"\n")
        poll(lambda: agent.metrics()[key] == base + 1, 5, what="sessions_open to drop by one")
        b2.finish(b"\n")
        poll(lambda: agent.metrics()[key] == base, 5, what="sessions_open to drop to %d" % base)
    finally:
        b1.kill()
        b2.kill()
