"""Real clients: Prometheus' promtool accepts the collector's and the agent's /metrics (and the
figures move as they should); tokens are created, listed (never shown again), revoked."""
import json
import os
import re
import subprocess

import pytest

from . import recfmt
from .helpers import NODE, curl, new_sid

PROMTOOL = "/usr/bin/promtool"


def promtool_check(text):
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")


def samples(text):
    """{name{labels}: value} of a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


@pytest.fixture(scope="module")
def stack(mlab):
    c = mlab.collector()
    a = mlab.agent(c)
    aud = c.token("ce-auditor", "auditor")
    r = mlab.run(a, ["sh", "-c", "echo metrics-session; ls / >/dev/null"])
    assert r.rc == 0, r
    c.wait_complete(r.sid, aud, agent=a)
    return c, a, aud


def test_promtool_accepts_collector_metrics(stack):
    c, a, aud = stack
    before = samples(c.metrics_text())
    rec = recfmt.simple_recording(new_sid(), [b"one\n", b"two\n", b"three\n"], parts=3, node=NODE)
    c.upload(rec)
    assert c.put_part(new_sid(), 0, rec.parts[0]).status == 409  # another session's part 0
    assert c.put_part(new_sid(), 0, rec.parts[0], cert=()).status == 401  # no client certificate
    assert c.get("/v1/sessions/" + new_sid(), token=aud).status == 404
    assert c.get("/v1/sessions/nope", token=aud).status == 400
    text = c.metrics_text()
    rc, out = promtool_check(text)
    assert rc == 0, out
    assert out.strip() == "", out  # no lint complaints either
    after = samples(text)

    def delta(k):
        return after.get(k, 0) - before.get(k, 0)

    assert delta("sessrec_collector_parts_stored_total") == 3
    assert delta("sessrec_collector_upload_bytes_total") == sum(len(p) for p in rec.parts)
    assert delta("sessrec_collector_sessions_stored_total") == 1
    assert delta('sessrec_collector_refusals_total{reason="conflict"}') == 1
    assert delta('sessrec_collector_refusals_total{reason="unauthenticated"}') == 1
    assert delta('sessrec_collector_refusals_total{reason="not_found"}') == 1
    assert delta('sessrec_collector_refusals_total{reason="bad_request"}') == 1
    assert delta('sessrec_collector_request_duration_seconds_count{handler="upload"}') >= 5
    assert any(k.startswith("sessrec_collector_request_duration_seconds_bucket{") for k in after)
    r = curl(c.url + "/metrics", "-D", "-", ca=c.pki.ca)
    assert b"text/plain; version=0.0.4" in r.body, r


def test_promtool_accepts_agent_metrics(stack):
    c, a, aud = stack
    text = a.metrics_text()
    rc, out = promtool_check(text)
    assert rc == 0, out
    assert out.strip() == "", out
    m = samples(text)
    assert m["sessrec_agent_upload_sessions_total"] >= 1
    assert m["sessrec_agent_upload_parts_total"] >= 1
    assert m["sessrec_agent_collector_up"] == 1
    assert m["sessrec_agent_upload_queue_sessions"] == 0


def test_tokens_create_list_revoke(stack):
    c, a, aud = stack
    p = c.cli("token", "create", "dave", "--role", "access")
    assert p.returncode == 0, p.stderr
    tok = p.stdout.strip()
    assert p.stdout == tok + "\n" and re.fullmatch(r"srt_[0-9a-f]{64}", tok), p.stdout
    m = re.search(r"token ([0-9a-f-]{36}) for dave", p.stderr)
    assert m, p.stderr
    tid = m.group(1)
    assert tok not in p.stderr
    assert c.get("/v1/sessions", token=tok).status == 200

    # listed, never shown again (nor any recognisable piece of it)
    def listed():
        t = c.cli("token", "list")
        j = c.cli("token", "list", "--json")
        assert t.returncode == 0 and j.returncode == 0, (t.stderr, j.stderr)
        for out in (t.stdout + t.stderr, j.stdout + j.stderr):
            assert tok not in out and tok[4:20] not in out and tok[-16:] not in out, out
        return t.stdout, [json.loads(l) for l in j.stdout.splitlines()]

    table, rows = listed()
    assert table.splitlines()[0].split() == ["ID", "USER", "ROLE", "CREATED", "REVOKED"], table
    mine = [r for r in rows if r["id"] == tid]
    assert len(mine) == 1 and mine[0]["user"] == "dave" and mine[0]["role"] == "access", rows
    assert mine[0]["revoked"] is False
    assert any(l.startswith(tid) and l.split()[-1] == "no" for l in table.splitlines()), table
    assert {"ce-auditor"} <= {r["user"] for r in rows}

    # stored hashed: the token is nowhere in the collector's files
    for root, _, files in os.walk(c.data_dir):
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                assert tok.encode() not in fh.read(), "token in clear in %s" % f

    p = c.cli("token", "revoke", tid)
    assert p.returncode == 0, p.stderr
    r = c.get("/v1/sessions", token=tok)
    assert r.status == 401, r
    table, rows = listed()
    assert [r["revoked"] for r in rows if r["id"] == tid] == [True]
    assert any(l.startswith(tid) and l.split()[-1] == "yes" for l in table.splitlines()), table
    # the other tokens still work
    assert c.get("/v1/sessions", token=aud).status == 200

    # a unique prefix of an id revokes too; unknown ids are refused in one line
    tok2 = c.token("erin", "auditor")
    tid2 = [r["id"] for r in listed()[1] if r["user"] == "erin"][0]
    p = c.cli("token", "revoke", tid2[:8])
    assert p.returncode == 0, p.stderr
    assert c.get("/v1/sessions", token=tok2).status == 401
    p = c.cli("token", "revoke", "00000000-0000-4000-8000-000000000000")
    assert p.returncode != 0 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    p = c.cli("token", "create", "frank", "--role", "root")
    assert p.returncode == 2 and p.stdout == "", p


def test_tokens_work_through_the_cli(stack):
    """The sessrec CLI with --token/--ca flags (not the environment) against the same API."""
    from .helpers import SESSREC, session_env

    c, a, aud = stack
    base = [SESSREC, "--url", c.url, "--token", aud, "--ca", c.pki.ca]
    p = subprocess.run(base + ["ls", "--json"], capture_output=True, env=session_env({"HOME": "/nonexistent"}))
    assert p.returncode == 0 and p.stdout.strip(), p.stderr
    p = subprocess.run([SESSREC, "--url", c.url, "--token", "srt_" + "1" * 64, "--ca", c.pki.ca, "ls"],
                       capture_output=True, env=session_env({"HOME": "/nonexistent"}))
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1, p.stderr
