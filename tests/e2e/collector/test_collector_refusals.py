"""Refusals: every request that must not get in is refused with the right status, and nothing
of it is written (no part file, no index row, nothing in the list). The uploads are real
recordings (recfmt.py), so that only the property under test makes the difference; the
same requests with the right credentials succeed (test_positive_control)."""
import hashlib
import json
import os
import subprocess

import pytest

from . import recfmt
from .helpers import COLLECTOR_BIN, NODE, NODE2, Pki, assert_not_stored, cli, curl, new_sid

MAX_PART = 256 * 1024


class Env:
    pass


@pytest.fixture(scope="module")
def env(mlab, ce_root):
    e = Env()
    e.c = mlab.collector(max_part_size="256KiB")
    e.aud = e.c.token("ce-auditor", "auditor")
    e.alice = e.c.token("alice", "access")
    e.bob = e.c.token("bob", "access")
    e.editor = e.c.token("eddie", "editor")
    e.rec_alice = recfmt.simple_recording(new_sid(), [b"alice was here\n", b"more\n"], parts=2, user="alice",
                                          node=NODE)
    e.rec_bob = recfmt.simple_recording(new_sid(), [b"bob was here\n"], user="bob", node=NODE)
    e.c.upload(e.rec_alice)
    e.c.upload(e.rec_bob)
    # a CA the collector does not trust, with a node certificate of the same name
    e.foreign = Pki(os.path.join(ce_root, "foreign-pki"))
    return e


def fresh(user="alice", parts=1):
    return recfmt.simple_recording(new_sid(), [b"x\n", b"y\n"], parts=parts, user=user, node=NODE)


def test_positive_control(env):
    c = env.c
    for rec in (env.rec_alice, env.rec_bob):
        s = c.session(rec.sid, env.aud)
        assert s["status"] == "complete" and s["parts"] == len(rec.parts), s
        assert s["parts_sha256"] == [hashlib.sha256(p).hexdigest() for p in rec.parts]
        p = cli(c, "verify", rec.sid, token=env.aud)
        assert p.returncode == 0, p.stderr
    # idempotent: the same part again is a no-op, a second completion too
    r = c.put_part(env.rec_alice.sid, 0, env.rec_alice.parts[0])
    assert r.status in (200, 409), r  # the session is complete: no more parts (or: already stored)
    r = c.complete(env.rec_alice.sid, len(env.rec_alice.parts))
    assert r.status == 200, r
    rec = fresh()
    assert c.put_part(rec.sid, 0, rec.parts[0]).status == 201
    r = c.put_part(rec.sid, 0, rec.parts[0])
    assert r.status == 200 and r.json()["stored"] is False, r
    assert c.complete(rec.sid, 1).status == 200


def test_upload_without_client_certificate(env):
    c = env.c
    rec = fresh()
    url = "%s/v1/sessions/%s/parts/0" % (c.url, rec.sid)
    r = curl(url, method="PUT", data=rec.parts[0], ca=c.pki.ca)
    assert r.status == 401, r
    assert "certificate" in r.json()["error"]
    # a token is no certificate
    r = curl(url, method="PUT", data=rec.parts[0], ca=c.pki.ca, token=env.aud)
    assert r.status in (401, 403), r
    # a certificate from a CA the collector does not trust
    r = curl(url, method="PUT", data=rec.parts[0], ca=c.pki.ca, cert=env.foreign.node(NODE))
    assert r.status in (401, 403) or (r.status == 0 and r.rc != 0), r
    r = curl("%s/v1/sessions/%s/complete" % (c.url, rec.sid), method="POST", data='{"parts":1,"node":"ce-node"}',
             ca=c.pki.ca)
    assert r.status == 401, r
    assert_not_stored(c, rec.sid, env.aud)


@pytest.mark.parametrize("who", ["aud", "alice", "editor"])
def test_person_token_on_upload_api(env, who):
    c = env.c
    rec = fresh()
    url = "%s/v1/sessions/%s/parts/0" % (c.url, rec.sid)
    r = curl(url, method="PUT", data=rec.parts[0], ca=c.pki.ca, token=getattr(env, who))
    assert r.status == 403, r
    assert "token" in r.json()["error"]
    r = curl("%s/v1/sessions/%s/complete" % (c.url, rec.sid), method="POST", data='{"parts":1,"node":"ce-node"}',
             ca=c.pki.ca, token=getattr(env, who))
    assert r.status == 403, r
    assert_not_stored(c, rec.sid, env.aud)


def test_access_token_reading_another_users_session(env):
    c = env.c
    bob = env.rec_bob.sid
    before = c.session(bob, env.aud)
    for path in ("", "/events", "/recording"):
        r = c.get("/v1/sessions/%s%s" % (bob, path), token=env.alice)
        assert r.status == 404, (path, r)
        other = new_sid()
        unknown = c.get("/v1/sessions/%s%s" % (other, path), token=env.alice)
        assert unknown.status == 404 and unknown.body.replace(other.encode(), bob.encode()) == r.body, \
            "existence leaks: %r vs %r" % (r, unknown)
    # her own she reads
    assert c.get("/v1/sessions/" + env.rec_alice.sid, token=env.alice).status == 200
    # the list shows her sessions only, whatever the filter says
    r = c.get("/v1/sessions?limit=1000", token=env.alice)
    assert r.status == 200 and {s["user"] for s in r.json()["sessions"]} == {"alice"}, r
    r = c.get("/v1/sessions?user=bob", token=env.alice)
    assert r.status in (200, 403) and (r.status == 403 or r.json()["sessions"] == []), r
    # the CLI says so too, and the audit log hides bob's events from her
    p = cli(c, "show", bob, token=env.alice)
    assert p.returncode == 1 and b"\n" == p.stderr[-1:] and p.stderr.count(b"\n") == 1, p.stderr
    r = c.get("/v1/audit/events", token=env.alice)
    assert r.status == 200 and r.lines() and {e["user"] for e in r.lines()} == {"alice"}, r
    r = c.get("/v1/audit/events?sid=" + bob, token=env.alice)
    assert r.status in (200, 404) and (r.status == 404 or r.lines() == []), r
    assert c.session(bob, env.aud) == before  # nothing changed


def test_no_token_on_read_api(env):
    c = env.c
    for path in ("/v1/sessions", "/v1/sessions/" + env.rec_bob.sid, "/v1/sessions/%s/events" % env.rec_bob.sid,
                 "/v1/sessions/%s/recording" % env.rec_bob.sid, "/v1/audit/events"):
        r = c.get(path)
        assert r.status == 401, (path, r)
        r = c.get(path, token="srt_" + "0" * 64)  # well-formed, never issued
        assert r.status == 401, (path, r)
        r = c.get(path, token="not a token at all")
        assert r.status == 401, (path, r)
        # a node certificate is no reader
        r = curl(c.url + path, ca=c.pki.ca, cert=c.pki.node())
        assert r.status in (401, 403), (path, r)
    r = curl(c.url + "/v1/sessions", "-D", "-", ca=c.pki.ca)
    assert b"www-authenticate: bearer" in r.body.lower(), r


def test_plain_http_on_tls_listener(env):
    c = env.c
    rec = fresh()
    plain = "http://127.0.0.1:%d" % c.port
    r = curl("%s/v1/sessions/%s/parts/0" % (plain, rec.sid), method="PUT", data=rec.parts[0], timeout=10)
    assert not 200 <= r.status < 300, r
    assert r.rc != 0 or r.status >= 400, r
    r = curl(plain + "/v1/sessions", token=env.aud, timeout=10)
    assert not 200 <= r.status < 300, r
    assert c.alive() and c.healthy()
    assert_not_stored(c, rec.sid, env.aud)


def test_oversized_body(env, tmp_path):
    c = env.c
    rec = fresh()
    big = rec.parts[0] + b"\0" * (MAX_PART + 1 - len(rec.parts[0]))
    r = c.put_part(rec.sid, 0, big)
    assert r.status == 413, r
    # without a Content-Length (chunked) the cap holds as well
    f = tmp_path / "big"
    f.write_bytes(big)
    r = curl("%s/v1/sessions/%s/parts/0" % (c.url, rec.sid), method="PUT", data_file=str(f), ca=c.pki.ca,
             cert=c.pki.node(), headers=("Transfer-Encoding: chunked",))
    assert r.status == 413, r
    # far above it, the collector stops reading at some point: 413 or a closed connection
    f.write_bytes(big * 4)
    r = curl("%s/v1/sessions/%s/parts/0" % (c.url, rec.sid), method="PUT", data_file=str(f), ca=c.pki.ca,
             cert=c.pki.node(), headers=("Transfer-Encoding: chunked",))
    assert r.status == 413 or (r.rc != 0 and not 200 <= r.status < 300), r
    assert_not_stored(c, rec.sid, env.aud)
    # a completion body above 64 KiB
    rec = fresh()
    assert c.put_part(rec.sid, 0, rec.parts[0]).status == 201
    body = json.dumps({"parts": 1, "node": NODE, "end": {"exit_code": 0, "pad": "x" * (65 * 1024)}})
    r = curl("%s/v1/sessions/%s/complete" % (c.url, rec.sid), method="POST", data=body, ca=c.pki.ca,
             cert=c.pki.node())
    assert r.status == 413, r
    assert c.session(rec.sid, env.aud)["status"] == "uploading"


BAD_IDS = [
    "not-a-uuid",
    "../../etc",
    "..%2F..%2Fetc",
    "%2e%2e%2f%2e%2e%2fetc",
    "..%252F..%252Fetc",
    "0b7e5d2c-1111-4222-8333-44445555666",  # one digit short
    "0b7e5d2c-1111-4222-8333-4444555566667",  # one too many
    "0b7e5d2c-1111-4222-8333-44445555666g",
    "0b7e5d2c-1111-4222-8333-444455556666/../../../etc",
    "0b7e5d2c11114222833344445555666600",
    "%20",
]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_bad_session_id(env, bad):
    c = env.c
    rec = fresh()
    before = c.all_files()
    kw = dict(ca=c.pki.ca)
    tries = [
        ("PUT", "/v1/sessions/%s/parts/0" % bad, dict(data=rec.parts[0], cert=c.pki.node())),
        ("POST", "/v1/sessions/%s/complete" % bad, dict(data='{"parts":1,"node":"ce-node"}', cert=c.pki.node())),
        ("GET", "/v1/sessions/%s" % bad, dict(token=env.aud)),
        ("GET", "/v1/sessions/%s/events" % bad, dict(token=env.aud)),
        ("GET", "/v1/sessions/%s/recording" % bad, dict(token=env.aud)),
    ]
    for method, path, extra in tries:
        r = curl(c.url + path, "--path-as-is", method=method, **kw, **extra)
        assert r.status == 400, (method, path, r)
        assert "error" in r.json(), r
    assert c.all_files() == before
    for p in ("etc", "../etc", "../../etc", "sessions/etc"):
        assert not os.path.exists(os.path.join(c.data_dir, p)), p
    r = c.get("/v1/sessions?limit=1000", token=env.aud)
    assert all(len(s["sid"]) == 36 for s in r.json()["sessions"])


def test_encoded_nul_in_session_path(env):
    """A path is not cut short at an encoded NUL: "<sid>%00..." is no UUID (400), and the route
    is not decided by what precedes the NUL (…%00/recording must not answer as the session)."""
    c = env.c
    sid = env.rec_bob.sid
    rec = fresh()
    tries = [
        ("GET", "/v1/sessions/%s%%00/recording" % sid, dict(token=env.aud)),
        ("GET", "/v1/sessions/%s%%00/events" % sid, dict(token=env.aud)),
        ("GET", "/v1/sessions/%s%%00junk" % sid, dict(token=env.aud)),
        ("PUT", "/v1/sessions/%s%%00/parts/0" % rec.sid, dict(data=rec.parts[0], cert=c.pki.node())),
    ]
    answers = []
    for method, path, extra in tries:
        r = curl(c.url + path, method=method, ca=c.pki.ca, **extra)
        answers.append((method, path, r.status, r.body[:80]))
    assert all(a[2] == 400 for a in answers), answers
    assert_not_stored(c, rec.sid, env.aud)


def test_part_that_does_not_chain(env):
    c = env.c
    rec = fresh(parts=3)
    other = recfmt.simple_recording(rec.sid, [b"other\n", b"content\n"], parts=3, user="alice", node=NODE)
    stranger = fresh(parts=3)
    assert len(rec.parts) == 3 and len(other.parts) == 3
    assert c.put_part(rec.sid, 0, rec.parts[0]).status == 201
    refusals = [
        (1, other.parts[1], 409),  # chains to another part 0
        (0, stranger.parts[0], 409),  # another session's part 0: does not chain to this sid
        (2, rec.parts[2], 409),  # part 1 is missing
        (0, other.parts[0], 409),  # a different part under a stored number
        (1, rec.parts[0], 400),  # its header says part 0
    ]
    damaged = bytearray(rec.parts[1])
    damaged[-5] ^= 0xFF
    refusals.append((1, bytes(damaged), 400))  # body hash mismatch
    for n, data, status in refusals:
        r = c.put_part(rec.sid, n, data)
        assert r.status == status, (n, r)
        assert r.json()["error"], r
    assert c.session_files(rec.sid) == ["0.part"]
    s = c.session(rec.sid, env.aud)
    assert s["parts"] == 1 and s["parts_sha256"] == [hashlib.sha256(rec.parts[0]).hexdigest()], s
    r = c.complete(rec.sid, 3)
    assert r.status == 409, r  # parts missing
    # the genuine parts still go in, and make a sound recording
    assert c.put_part(rec.sid, 1, rec.parts[1]).status == 201
    assert c.put_part(rec.sid, 2, rec.parts[2]).status == 201
    assert c.complete(rec.sid, 3).status == 200
    assert cli(c, "verify", rec.sid, token=env.aud).returncode == 0
    r = c.put_part(rec.sid, 3, other.parts[2])
    assert r.status in (400, 409), r  # complete: no more parts
    assert c.session(rec.sid, env.aud)["parts"] == 3


def test_completion_naming_another_node(env):
    c = env.c
    rec = fresh()
    assert c.put_part(rec.sid, 0, rec.parts[0]).status == 201
    r = c.complete(rec.sid, 1, node=NODE, cert=c.pki.node(NODE2))
    assert r.status == 403, r
    assert c.session(rec.sid, env.aud)["status"] == "uploading"


@pytest.mark.parametrize("host", ["0.0.0.0", "[::]"])
def test_dev_mode_refuses_non_loopback(lab, host):
    c = lab.collector(start=False, dev=True, listen_host=host)
    p = subprocess.run([COLLECTOR_BIN, "-c", c.config_path], capture_output=True, text=True, timeout=20)
    assert p.returncode != 0, p
    assert "loopback" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not os.path.exists(os.path.join(c.data_dir, "index.db"))


def test_dev_mode_on_loopback(lab):
    c = lab.collector(dev=True)
    assert c.url.startswith("http://")
    log = c.log_text()
    assert "insecure" in log.lower() or "dev" in log.lower(), log
    r = curl(c.url + "/healthz")
    assert r.status == 200 and b"dev" in r.body.lower(), r
    # every request acts as a node and as an auditor
    rec = fresh()
    r = curl("%s/v1/sessions/%s/parts/0" % (c.url, rec.sid), method="PUT", data=rec.parts[0])
    assert r.status == 201, r
    r = curl(c.url + "/v1/sessions/" + rec.sid)
    assert r.status == 200 and r.json()["sid"] == rec.sid, r
    # still ids are checked
    r = curl(c.url + "/v1/sessions/../../etc/parts/0", "--path-as-is", method="PUT", data=rec.parts[0])
    assert r.status == 400, r
