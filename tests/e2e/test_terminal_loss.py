"""Terminal output that cannot be recorded is counted exactly, and marked where it was lost.

This module's agent has a one-page terminal ring buffer (4 KiB): a chunk of 8 KiB (what
`head` and `cat` write at once) can never fit, so it is always lost, while short writes fit.
"""
import base64
import os

from conftest import (
    PY,
    check_common,
    check_prints,
    lost_terminal_bytes,
    marker,
    of,
    print_bytes,
    run_session,
)

AGENT_CONFIG = {"er": {"terminal_buffer_size": 1}}


def test_total_loss_counted_exactly(agent, tmpdir_world):
    m = marker()
    total = 10_000_000
    path = os.path.join(tmpdir_world, "burst.txt")
    with open(path, "wb") as f:
        f.write(b"".join(b"%09d\n" % (i * 10) for i in range(total // 10)))
    before = agent.metrics()
    r = run_session(agent, ["sh", "-c", "echo before-%s; head -c %d %s; echo after-%s" % (m, total, path, m)],
                    timeout=120)
    assert r.rc == 0, r
    evs = agent.wait_recording(r.sid, timeout=60)
    check_common(evs, r.sid)
    check_prints(evs)
    prints = of(evs, "print")
    recorded = sum(e["bytes"] for e in prints)
    lost = lost_terminal_bytes(evs)
    print("\n10 MB burst through a 4 KiB ring buffer: %d bytes recorded, %d bytes lost" % (recorded, lost))
    first = ("before-%s\n" % m).encode()
    last = ("after-%s\n" % m).encode()
    assert print_bytes(evs) == first + last, "only the two short lines fit: %r" % print_bytes(evs)[:200]
    assert lost == total, "lost %d bytes, the burst was %d" % (lost, total)
    # the marker is where the loss happened: between the two lines
    b, a = prints[0], prints[-1]
    losses = [e for e in of(evs, "session.lost") if e["class"] == "terminal"]
    assert losses and all(b["ei"] < e["ei"] for e in losses if e["bytes"]), losses
    assert any(e["ei"] < a["ei"] for e in losses if e["bytes"]), "no loss marker before the line after the burst"
    assert a["offset"] == len(first) + total, "the offset after the loss counts the lost bytes"
    assert sum(e["events"] for e in losses) >= 1
    for e in losses:
        assert e["code"] == "SR4010W"
    # the audit log says so too
    au = [x for x in agent.audit(r.sid) if x["event"] == "session.lost"]
    assert au and sum(x["bytes"] for x in au if x["class"] == "terminal") == total
    assert all(x["code"] == "SR4010W" for x in au)
    # and the metrics
    after = agent.metrics()
    key = ("sessrec_agent_lost_terminal_bytes_total", ())
    assert after[key] - before[key] == total, (before[key], after[key])
    lk = ("sessrec_agent_lost_events_total", (("class", "terminal"),))
    assert after[lk] > before[lk]


def test_partial_loss_offsets(agent):
    """Short and long writes interleaved: every short one that made it sits at its true offset."""
    n = 200
    code = (
        "import os\n"
        "for i in range(%d):\n"
        "    os.write(1, b'<short %%05d>\\n' %% i)\n"
        "    os.write(1, bytes([65 + i %% 26]) * 8192)\n" % n
    )
    r = run_session(agent, [PY, "-c", code], timeout=60)
    assert r.rc == 0, r
    stream = b"".join(b"<short %05d>\n" % i + bytes([65 + i % 26]) * 8192 for i in range(n))
    evs = agent.wait_recording(r.sid, timeout=30)
    check_common(evs, r.sid)
    check_prints(evs)
    prints = of(evs, "print")
    recorded = sum(e["bytes"] for e in prints)
    lost = lost_terminal_bytes(evs)
    assert recorded + lost == len(stream), (recorded, lost, len(stream))
    assert lost >= n * 8192, "every 8 KiB write must be lost with a 4 KiB buffer"
    for e in prints:
        data = base64.b64decode(e["data_b64"])
        assert data == stream[e["offset"]: e["offset"] + len(data)], \
            "print ci %d is not the stream's bytes at offset %d: %r" % (e["ci"], e["offset"], data[:40])
    assert prints, "none of the short writes was recorded"
