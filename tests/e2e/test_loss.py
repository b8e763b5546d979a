"""Events that cannot be recorded are counted exactly, and marked where they were lost.

This module's agent has one-page (4 KiB) ring buffers for terminal output, commands and
file opens: a terminal write of 8 KiB (dd with bs=8192 writes exactly that) or an exec with
16 KiB of arguments can never fit, so they are always lost, while small events fit.
"""
import base64
import os

from conftest import (
    report,
    PY,
    check_common,
    commands,
    check_prints,
    lost_terminal_bytes,
    marker,
    of,
    poll,
    print_bytes,
    run_session,
)

AGENT_CONFIG = {"er": {"terminal_buffer_size": 1, "command_buffer_size": 1, "disk_buffer_size": 1}}


def test_total_loss_counted_exactly(agent, tmpdir_world):
    m = marker()
    total = 10_000_000
    path = os.path.join(tmpdir_world, "burst.txt")
    with open(path, "wb") as f:
        f.write(b"".join(b"%09d\n" % (i * 10) for i in range(total // 10)))
    before = agent.metrics()
    r = run_session(agent, ["sh", "-c", "echo before-%s; dd if=%s bs=8192 status=none; echo after-%s" % (m, path, m)],
                    timeout=120)
    assert r.rc == 0, r
    evs = agent.wait_recording(r.sid, timeout=60)
    check_common(evs, r.sid)
    check_prints(evs)
    prints = of(evs, "print")
    recorded = sum(e["bytes"] for e in prints)
    lost = lost_terminal_bytes(evs)
    report("10 MB burst through a 4 KiB ring buffer: %d bytes recorded, %d bytes lost" % (recorded, lost))
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
    key = ("sessrec_agent_lost_terminal_bytes_total", ())
    try:
        after = poll(lambda: (lambda x: x if x[key] - before[key] >= total else None)(agent.metrics()), 5,
                     what="the lost-bytes metric to count the burst")
    except AssertionError:
        after = agent.metrics()
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


def test_command_loss_counted_exactly(agent):
    m = marker()
    argv = ["/bin/true"] + ["%03d-%s-" % (i, m) + "y" * 150 for i in range(100)]
    before = agent.metrics()
    r = run_session(agent, argv)
    assert r.rc == 0, r
    evs = agent.wait_recording(r.sid)
    check_common(evs, r.sid)
    assert not commands(evs), "an exec with 16 KiB of argv cannot fit in a 4 KiB ring buffer"
    lost = [e for e in of(evs, "session.lost") if e["class"] == "command"]
    assert sum(e["events"] for e in lost) == 1, "exactly one command was lost: %s" % lost
    assert all(e["bytes"] == 0 for e in lost)
    au = [x for x in agent.audit(r.sid) if x["event"] == "session.lost" and x["class"] == "command"]
    assert sum(x["events"] for x in au) == 1, au
    k = ("sessrec_agent_lost_events_total", (("class", "command"),))
    poll(lambda: agent.metrics()[k] - before[k] >= 1, 5, what="the lost command to be counted")
    assert agent.metrics()[k] - before[k] == 1


def test_disk_loss_never_silent(agent):
    """A burst of opens overflows a 4 KiB ring: what is not recorded is counted."""
    m = marker()
    n = 50000
    missing = "/nonexistent-%s" % m
    code = (
        "import os\n"
        "for i in range(%d):\n"
        "    try:\n"
        "        os.open(%r, os.O_RDONLY)\n"
        "    except FileNotFoundError:\n"
        "        pass\n" % (n, missing)
    )
    before = agent.metrics()
    r = run_session(agent, [PY, "-c", code], timeout=60)
    assert r.rc == 0, r
    evs = agent.wait_recording(r.sid, timeout=30)
    check_common(evs, r.sid)
    recorded = [e for e in of(evs, "session.disk") if e["path"] == missing]
    lost = sum(e["events"] for e in of(evs, "session.lost") if e["class"] == "disk")
    report("%d opens through a 4 KiB ring buffer: %d recorded, %d disk events lost" % (n, len(recorded), lost))
    assert all(e["return_code"] == -2 for e in recorded)
    assert len(recorded) <= n
    assert len(recorded) + lost >= n, "%d recorded + %d lost < %d opens: events went missing silently" % (
        len(recorded), lost, n)
    assert lost > 0, "precondition: %d opens did not overflow a 4 KiB ring buffer, nothing was tested" % n
    au = sum(x["events"] for x in agent.audit(r.sid) if x["event"] == "session.lost" and x["class"] == "disk")
    assert au == lost
    k = ("sessrec_agent_lost_events_total", (("class", "disk"),))
    poll(lambda: agent.metrics()[k] - before[k] >= lost, 5, what="the lost opens to be counted")
    assert agent.metrics()[k] - before[k] == lost
