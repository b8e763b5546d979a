"""Terminal output (print events): byte-exact capture, a 10 MB burst, ordering, attribution."""
import base64
import codecs
import os
import time

from conftest import (
    report,
    PY,
    check_common,
    check_prints,
    commands,
    end_of,
    lost_terminal_bytes,
    marker,
    of,
    print_bytes,
    run_session,
    start_of,
    time_ms,
)

codecs.register_error("sessrec_bytewise", lambda e: ("\ufffd" * (e.end - e.start), e.end))

# escape sequences, UTF-8 (2, 3 and 4 bytes), controls, DEL and bytes that are not UTF-8
PRINTF_FMT = r"\033[1;31mred\033[0m caf\303\251 \342\202\254 \360\237\230\200 \001\002\177 \376\377 \342\202 tab\there\r\n"
PRINTF_BYTES = (
    b"\x1b[1;31mred\x1b[0m caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \x01\x02\x7f \xfe\xff \xe2\x82 tab\there\r\n"
)


def onlcr(b):
    """What the pty master gives for bytes written to the slave with the default OPOST|ONLCR."""
    return b.replace(b"\n", b"\r\n")


def test_output_byte_exact(agent, tmpdir_world):
    every_byte = bytes(range(256)) * 4
    path = os.path.join(tmpdir_world, "bytes-" + marker())
    with open(path, "wb") as f:
        f.write(every_byte)
    r = run_session(agent, ["sh", "-c", "cat %s; printf '%s'" % (path, PRINTF_FMT)])
    assert r.rc == 0, r
    expected = every_byte + PRINTF_BYTES
    evs = agent.wait_recording(r.sid)
    check_common(evs, r.sid)
    check_prints(evs)
    got = print_bytes(evs)
    assert got == expected, "recorded terminal output differs from what the programs wrote (%d vs %d bytes)" % (
        len(got), len(expected))
    assert lost_terminal_bytes(evs) == 0
    # what the launcher relayed is what the pty made of it
    assert r.out == onlcr(expected)
    # data is the same bytes as text, invalid UTF-8 replaced byte by byte
    for e in of(evs, "print"):
        raw = base64.b64decode(e["data_b64"])
        assert e["data"] == raw.decode("utf-8", "sessrec_bytewise"), e
    st = start_of(evs)
    assert {e["tty"] for e in of(evs, "print")} == {st["tty"]}
    cat = commands(evs, path="/usr/bin/cat")[0]
    assert print_bytes(evs, cat["pid"]) == every_byte


def test_burst_10mb(agent, tmpdir_world):
    total = 10_000_000
    path = os.path.join(tmpdir_world, "burst.txt")
    # text lines that say where they are: "%09d\n" of their own offset
    content = b"".join(b"%09d\n" % (i * 10) for i in range(total // 10))
    assert len(content) == total
    with open(path, "wb") as f:
        f.write(content)
    t = time.monotonic()
    r = run_session(agent, ["head", "-c", str(total), path], timeout=120)
    took = time.monotonic() - t
    assert r.rc == 0, r
    assert len(r.out) == total + total // 10, "the launcher relayed %d bytes" % len(r.out)
    evs = agent.wait_recording(r.sid, timeout=60)
    check_common(evs, r.sid)
    check_prints(evs)  # offsets count the lost bytes where they were lost
    prints = of(evs, "print")
    recorded = sum(e["bytes"] for e in prints)
    lost = lost_terminal_bytes(evs)
    lost_events = sum(e["events"] for e in of(evs, "session.lost") if e["class"] == "terminal")
    report("10 MB burst: %d bytes recorded in %d print events, %d bytes lost (%d events); "
          "recorded + lost = %d; session took %.2fs" % (recorded, len(prints), lost, lost_events, recorded + lost, took))
    assert recorded + lost == total, "recorded %d + lost %d != %d" % (recorded, lost, total)
    for e in prints:
        data = base64.b64decode(e["data_b64"])
        assert data == content[e["offset"]: e["offset"] + len(data)], \
            "print ci %d does not hold the bytes at its offset %d" % (e["ci"], e["offset"])
    au = [a for a in agent.audit(r.sid) if a["event"] == "session.lost"]
    assert sum(a["bytes"] for a in au if a["class"] == "terminal") == lost


def test_ordering(agent):
    m = marker()
    script = "echo one-%s; cat /etc/hostname; sleep 0.3; echo two-%s; ls /nonexistent-%s; echo three" % (m, m, m)
    r = run_session(agent, ["sh", "-c", script])
    assert r.rc == 0, r
    evs = agent.wait_recording(r.sid)
    check_common(evs, r.sid)
    check_prints(evs)
    st, end = start_of(evs), end_of(evs)
    assert evs[0] is st and evs[-1] is end
    assert evs[1]["event"] == "session.command", "the first event after the start is the session's exec"
    out = print_bytes(evs)
    with open("/etc/hostname", "rb") as f:
        host = f.read()
    assert out.startswith(("one-%s\n" % m).encode() + host + ("two-%s\n" % m).encode()), out
    assert out.endswith(b"three\n"), out
    prints = of(evs, "print")
    t0 = time_ms(st["time"])
    for e in prints:
        # ms is the delay since the session started; time is the same instant
        assert abs((time_ms(e["time"]) - t0) - e["ms"]) <= 50, (e["ms"], e["time"], st["time"])
    one = [e for e in prints if e["data"].startswith("one-")][0]
    two = [e for e in prints if e["data"].startswith("two-")][0]
    assert two["ms"] - one["ms"] >= 250, "sleep 0.3 between the two lines: ms %d -> %d" % (one["ms"], two["ms"])
    # each process's output comes after its exec (no subshells here: every writer exec'd)
    execs = [c for c in of(evs, "session.command") if c["return_code"] == 0]
    for p in prints:
        assert any(c["pid"] == p["pid"] and c["ei"] < p["ei"] for c in execs), "print before its exec: %s" % p
    # the kinds of events interleave: a print of "two-" comes after cat's exec
    cat = commands(evs, path="/usr/bin/cat")[0]
    assert two["ei"] > cat["ei"]


def test_print_pid_attribution(agent):
    r = run_session(agent, ["sh", "-c", "echo parent-$$; sh -c 'echo child-$$'; true"])
    assert r.rc == 0, r
    evs = agent.wait_recording(r.sid)
    prints = of(evs, "print")
    parent = [e for e in prints if e["data"].startswith("parent-")]
    child = [e for e in prints if e["data"].startswith("child-")]
    assert len(parent) == 1 and len(child) == 1, prints
    assert parent[0]["pid"] == int(parent[0]["data"].split("-")[1]), parent
    assert child[0]["pid"] == int(child[0]["data"].split("-")[1]), child
    assert parent[0]["pid"] != child[0]["pid"]


def test_writev_output_recorded(agent):
    """Programs that write the terminal with writev(2) (musl stdio, many runtimes) are recorded too."""
    m = marker()
    code = "import os; os.writev(1, [b'wv-', b'%s', b'-end\\n'])" % m
    r = run_session(agent, [PY, "-c", code])
    assert r.rc == 0, r
    assert ("wv-%s-end" % m).encode() in r.out
    evs = agent.wait_recording(r.sid)
    check_prints(evs)
    assert ("wv-%s-end\n" % m).encode() in print_bytes(evs), \
        "output written with writev() is missing from the recording: %r" % print_bytes(evs)


def test_dev_tty_output_recorded(agent):
    """Writes through /dev/tty (prompts of ssh, sudo, gpg ...) reach the same pty slave: recorded too."""
    m = marker()
    r = run_session(agent, ["sh", "-c", "printf 'via-tty-%s\\n' > /dev/tty" % m])
    assert r.rc == 0, r
    assert ("via-tty-%s" % m).encode() in r.out
    evs = agent.wait_recording(r.sid)
    check_prints(evs)
    assert ("via-tty-%s\n" % m).encode() in print_bytes(evs), \
        "output written to /dev/tty is missing from the recording: %r" % print_bytes(evs)


def test_input_relayed(agent):
    """Input goes to the program through the pty; only what programs write is recorded (not the echo)."""
    r = run_session(agent, ["sh", "-c", "read a; read b; echo \"got:$a:$b\""], input=b"one\ntwo\n")
    assert r.rc == 0, r
    assert b"got:one:two\r\n" in r.out, r.out
    assert b"one\r\n" in r.out.split(b"got:")[0], "the terminal echoes the input: %r" % r.out
    evs = agent.wait_recording(r.sid)
    assert print_bytes(evs) == b"got:one:two\n", print_bytes(evs)
