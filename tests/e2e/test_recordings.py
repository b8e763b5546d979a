"""Recording files: an independent reader of docs/recording-format.md, tamper detection, replay.

This module's agent cuts parts at 4 KiB or every second, so that recordings have several parts.
"""
import base64
import hashlib
import os
import shutil
import struct
import subprocess
import time
import zlib

import pytest

from conftest import (
    SESSREC,
    Background,
    check_common,
    load_events,
    marker,
    of,
    poll,
    print_bytes,
    run_session,
    session_env,
    verify,
)

AGENT_CONFIG = {"part_size": 4096, "part_interval": 1}
HDR = struct.Struct(">8sHHIIIIQQ32s32s4s")
assert HDR.size == 112


def varint(b, pos):
    shift = val = 0
    while True:
        c = b[pos]
        pos += 1
        val |= (c & 0x7F) << shift
        if not c & 0x80:
            return val, pos
        shift += 7


def event_ei(rec):
    """Field 1 (ei, varint) of a packed sessrec.Event; 0 when absent (proto3 default)."""
    pos = 0
    while pos < len(rec):
        key, pos = varint(rec, pos)
        field, wt = key >> 3, key & 7
        if wt == 0:
            val, pos = varint(rec, pos)
            if field == 1:
                return val
        elif wt == 2:
            n, pos = varint(rec, pos)
            pos += n
        elif wt == 1:
            pos += 8
        elif wt == 5:
            pos += 4
        else:
            raise AssertionError("bad wire type %d" % wt)
    return 0


def read_parts(data, sid):
    """Parse and check a recording as the format document says; return [(offset, size, header)]."""
    parts = []
    prev, off, n, final, next_ei = hashlib.sha256(sid.encode()).digest(), 0, 0, False, 0
    assert data, "empty recording"
    while off < len(data):
        assert not final, "data after the final part"
        hdr = data[off: off + 112]
        assert len(hdr) == 112, "truncated header"
        magic, version, flags, index, events, raw_size, body_size, first_ei, last_ei, prev_hash, body_hash, res = \
            HDR.unpack(hdr)
        assert magic == b"SRECPRT1" and version == 1 and flags & ~1 == 0 and res == bytes(4)
        assert prev_hash == prev, "part %d: chain" % n
        assert index == n
        body = data[off + 112: off + 112 + body_size]
        assert len(body) == body_size
        assert hashlib.sha256(body).digest() == body_hash
        z = zlib.decompressobj(16 + 15)
        raw = z.decompress(body, raw_size + 1)
        assert z.eof and not z.unused_data and len(raw) == raw_size
        pos = count = 0
        eis = []
        while pos < raw_size:
            (length,) = struct.unpack_from(">I", raw, pos)
            assert length <= 1 << 20 and pos + 4 + length <= raw_size
            eis.append(event_ei(raw[pos + 4: pos + 4 + length]))
            pos, count = pos + 4 + length, count + 1
        assert count == events
        if events:
            assert eis == list(range(next_ei, next_ei + events)), "part %d: ei not consecutive" % n
            assert (first_ei, last_ei) == (eis[0], eis[-1])
            next_ei += events
        else:
            assert first_ei == last_ei == raw_size == 0 and flags & 1
        parts.append((off, 112 + body_size, (flags, index, events)))
        prev = hashlib.sha256(data[off: off + 112 + body_size]).digest()
        off, n, final = off + 112 + body_size, n + 1, bool(flags & 1)
    assert final, "not final"
    return parts


@pytest.fixture(scope="module")
def multipart(agent, workroot):
    """A finished recording with several parts and varied events."""
    m = marker()
    r = run_session(agent, ["sh", "-c", "for i in $(seq 1 300); do echo line-$i-%s; done; cat /etc/hostname" % m])
    assert r.rc == 0, r
    evs = agent.wait_recording(r.sid)
    path = agent.rec_path(r.sid)
    with open(path, "rb") as f:
        data = f.read()
    parts = read_parts(data, r.sid)
    assert len(parts) >= 3, "part_size 4 KiB should give several parts, got %d" % len(parts)
    return {"sid": r.sid, "path": path, "data": data, "parts": parts, "events": evs}


def test_verify_and_independent_reader(agent, multipart):
    v = verify(multipart["path"])
    assert v.returncode == 0, v.stderr
    n_parts, n_events = len(multipart["parts"]), len(multipart["events"])
    expect = "%s: OK: %d parts, %d events, session %s" % (multipart["path"], n_parts, n_events, multipart["sid"])
    assert v.stdout.strip() == expect, (v.stdout, expect)
    check_common(multipart["events"], multipart["sid"])
    assert sum(p[2][2] for p in multipart["parts"]) == n_events
    st = os.stat(multipart["path"])
    assert st.st_mode & 0o777 == 0o640 and st.st_uid == 0, "recordings are 0640 root: %o" % st.st_mode
    # the plain listing has one line per event
    p = subprocess.run([SESSREC, "events", multipart["path"]], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and len(p.stdout.splitlines()) == n_events, p.stderr
    # every recording this agent made so far passes both readers
    for path in agent.recordings():
        assert verify(path).returncode == 0, path
        sid = os.path.basename(path)[:-4]
        with open(path, "rb") as f:
            read_parts(f.read(), sid)


def _check_refused(path, what):
    v = verify(path)
    assert v.returncode == 1, "%s: verify accepted it: %s" % (what, v.stdout)
    lines = v.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sessrec: %s: " % path), "%s: %r" % (what, v.stderr)
    assert len(lines[0]) > len("sessrec: %s: " % path) + 3, "%s: no reason given" % what
    return lines[0]


def _write(tmp_path, name, data):
    p = str(tmp_path / name)
    with open(p, "wb") as f:
        f.write(data)
    return p


def test_flipped_bytes_detected(multipart, tmp_path):
    data, parts = multipart["data"], multipart["parts"]
    positions = {}
    for i, (off, size, _) in enumerate(parts):
        positions["part %d magic" % i] = off + 2
        positions["part %d flags" % i] = off + 11
        positions["part %d index" % i] = off + 15
        positions["part %d events" % i] = off + 19
        positions["part %d first_ei" % i] = off + 35
        positions["part %d prev_hash" % i] = off + 50
        positions["part %d body_hash" % i] = off + 90
        positions["part %d reserved" % i] = off + 110
        if size > 112:
            positions["part %d body start" % i] = off + 112
            positions["part %d body middle" % i] = off + 112 + (size - 112) // 2
            positions["part %d body end" % i] = off + size - 1
    reasons = set()
    for what, pos in positions.items():
        for mask in (0x01, 0x80):
            bad = bytearray(data)
            bad[pos] ^= mask
            reasons.add(_check_refused(_write(tmp_path, "flip.rec", bytes(bad)), "%s ^0x%02x" % (what, mask)))
    p = _write(tmp_path, "flip.rec", bytes(bytearray(data[:-1]) + bytes([data[-1] ^ 1])))
    e = subprocess.run([SESSREC, "events", p], capture_output=True, text=True)
    assert e.returncode == 1 and len(e.stderr.strip().splitlines()) == 1, e


def test_truncated_detected(multipart, tmp_path):
    data, parts = multipart["data"], multipart["parts"]
    cuts = {"empty": 0, "mid header": 50, "header only": 112, "last byte": len(data) - 1}
    off1, size1, _ = parts[1]
    cuts["mid part 1 body"] = off1 + 112 + (size1 - 112) // 2
    for i, (off, _, _) in enumerate(parts[1:], 1):
        cuts["before part %d" % i] = off  # whole parts, the final one missing
    for what, n in cuts.items():
        _check_refused(_write(tmp_path, "cut.rec", data[:n]), what)


def test_reordered_removed_added_parts_detected(multipart, tmp_path):
    data, parts = multipart["data"], multipart["parts"]
    chunks = [data[o: o + s] for o, s, _ in parts]
    variants = {
        "parts 1 and 2 swapped": [chunks[0], chunks[2], chunks[1], *chunks[3:]],
        "part 1 removed": [chunks[0], *chunks[2:]],
        "part 1 twice": [chunks[0], chunks[1], *chunks[1:]],
        "garbage after the final part": [*chunks, b"\0" * 16],
        "a second final part": [*chunks, chunks[-1]],
        "only part 0": [chunks[0]],
    }
    for what, ch in variants.items():
        _check_refused(_write(tmp_path, "reorder.rec", b"".join(ch)), what)
    # a recording renamed to another session's id: its chain seed no longer matches
    other = str(tmp_path / ("%s.rec" % "00000000-0000-4000-8000-000000000000"))
    shutil.copy(multipart["path"], other)
    v = verify(other)
    if v.returncode == 0:
        assert multipart["sid"] in v.stdout, "verify reports the session id of the content: %s" % v.stdout


def test_play_outputs_recorded_bytes(agent):
    fmt = r"\033[32mgreen\033[0m caf\303\251\tT\r\nline2\n\001\377"
    r = run_session(agent, ["sh", "-c", "printf '%s'; sleep 0.6; echo after" % fmt])
    assert r.rc == 0, r
    evs = agent.wait_recording(r.sid)
    expected = print_bytes(evs)
    assert expected.endswith(b"after\n") and b"\x1b[32mgreen" in expected
    path = agent.rec_path(r.sid)
    t = time.monotonic()
    p = subprocess.run([SESSREC, "play", "--speed", "0", path], capture_output=True, timeout=30)
    fast = time.monotonic() - t
    assert p.returncode == 0, p
    assert p.stdout == expected, "play --speed 0 is not the recorded bytes"
    assert fast < 0.5
    p = subprocess.run([SESSREC, "play", path], capture_output=True, timeout=30,
                       env=session_env({"SESSREC_PLAY_NOWAIT": "1"}))
    assert p.returncode == 0 and p.stdout == expected
    t = time.monotonic()
    p = subprocess.run([SESSREC, "play", path], capture_output=True, timeout=30, env=session_env())
    real = time.monotonic() - t
    assert p.returncode == 0 and p.stdout == expected
    assert real >= 0.45, "play at speed 1 keeps the recorded timing (sleep 0.6): took %.2fs" % real
    # a damaged recording does not play
    bad = bytearray(open(path, "rb").read())
    bad[len(bad) // 2] ^= 0xFF
    bp = path + ".bad"
    with open(bp, "wb") as f:
        f.write(bad)
    try:
        p = subprocess.run([SESSREC, "play", "--speed", "0", bp], capture_output=True, text=True, timeout=30)
        assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1, p
    finally:
        os.unlink(bp)


def test_print_data_b64_roundtrip(multipart):
    for e in of(multipart["events"], "print"):
        raw = base64.b64decode(e["data_b64"], validate=True)
        assert len(raw) == e["bytes"]
        assert base64.b64encode(raw).decode() == e["data_b64"]


def test_open_session_written_as_it_goes(agent):
    """Parts reach the disk while the session is open (part_interval 1 s): sound, but not final."""
    m = marker()
    b = Background(agent, ["sh", "-c", "echo early-%s; read x; echo late" % m])
    try:
        path = agent.rec_path(b.sid)

        def has_part():
            try:
                with open(path, "rb") as f:
                    return len(f.read()) > 112
            except FileNotFoundError:
                return False

        poll(has_part, 5, what="a first part on disk")
        v = verify(path)
        assert v.returncode == 1 and "final" in v.stderr, "an open session's recording is sound but not final: %r" \
            % v.stderr
        with open(path, "rb") as f:
            data = f.read()
        # every part written so far is sound
        off, n = 0, 0
        while off < len(data):
            (body_size,) = struct.unpack_from(">I", data, off + 24)
            off, n = off + 112 + body_size, n + 1
        assert off == len(data), "a part on disk is incomplete"
        evs = load_events(path, check=False)
        assert evs and evs[0]["event"] == "session.start" and evs[0]["sid"] == b.sid
        poll(lambda: ("early-%s\n" % m).encode() in print_bytes(load_events(path, check=False)), 5,
             what="the early output on disk")
        r = b.finish(b"go\n")
    finally:
        b.kill()
    assert r.rc == 0
    evs = agent.wait_recording(b.sid)
    assert print_bytes(evs) == ("early-%s\nlate\n" % m).encode()
