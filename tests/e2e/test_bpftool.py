"""What an operator sees with bpftool: programs and maps named sessrec_*, pinned, with BTF.

This module's agent has non-default ring buffer sizes, to check that the config is applied.
(After the agent stops the pins are gone: see test_agent.py::test_pins_removed_after_stop.)
"""
import json
import os
import subprocess

from conftest import PIN_DIR, Background, poll, session_cgroup, start_of

PAGES = {"command": 16, "disk": 64, "network": 4, "terminal": 256}
AGENT_CONFIG = {"er": {"%s_buffer_size" % k: v for k, v in PAGES.items()}}
RINGS = {"command": "sessrec_cmd_rb", "disk": "sessrec_disk_rb", "network": "sessrec_net_rb", "terminal": "sessrec_tty_rb"}
# the kernel keeps object names to 15 characters (BPF_OBJ_NAME_LEN - 1)
SESSIONS_MAP = "sessrec_sessions"
KNAME = SESSIONS_MAP[:15]


def bpftool(*args):
    p = subprocess.run(["bpftool", "-j", *args], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, "bpftool %s: %s" % (" ".join(args), p.stderr)
    return json.loads(p.stdout) if p.stdout.strip() else None


def test_programs_listed(agent):
    listed = {p["id"]: p for p in bpftool("prog", "show") if p.get("name", "").startswith("sessrec_")}
    assert listed, "no sessrec_* program in bpftool prog show"
    # our agent's programs are the ones pinned in its directory (other agents may pin elsewhere)
    pinned = {}
    for n in os.listdir(PIN_DIR):
        info = subprocess.run(["bpftool", "-j", "prog", "show", "pinned", os.path.join(PIN_DIR, n)],
                              capture_output=True, text=True)
        if info.returncode == 0:
            pinned[n] = json.loads(info.stdout)
    assert pinned, "no program pinned in %s" % PIN_DIR
    for n, info in pinned.items():
        assert n.startswith("sessrec_") and info["name"] == n, "pin %s holds program %s" % (n, info.get("name"))
        assert info["id"] in listed, "pinned program %s is not in bpftool prog show" % n
        assert info.get("btf_id"), "program %s has no BTF" % n
        assert info["type"] in ("tracepoint", "raw_tracepoint", "tracing", "kprobe"), info
    for what in ("exec", "open", "connect", "write"):
        assert any(what in n for n in pinned), "no program for %s: %s" % (what, sorted(pinned))


def test_maps_listed(agent):
    maps = [m for m in bpftool("map", "show") if m.get("name", "").startswith("sessrec")]
    by_name = {}
    for m in maps:
        by_name.setdefault(m["name"], []).append(m)
    for cls, name in RINGS.items():
        assert name in by_name, "bpftool map show lacks %s: %s" % (name, sorted(by_name))
        pin = bpftool("map", "show", "pinned", os.path.join(PIN_DIR, name))
        assert pin["name"] == name and pin["type"] == "ringbuf", pin
        assert pin["max_entries"] == PAGES[cls] * os.sysconf("SC_PAGE_SIZE"), \
            "%s is %d bytes, config says %d pages" % (name, pin["max_entries"], PAGES[cls])
        assert pin["id"] in {m["id"] for m in by_name[name]}
    assert SESSIONS_MAP in by_name or KNAME in by_name, "no sessions map in bpftool map show: %s" % sorted(by_name)
    pin = bpftool("map", "show", "pinned", os.path.join(PIN_DIR, SESSIONS_MAP))
    assert pin["name"] in (SESSIONS_MAP, KNAME) and pin["type"] == "hash", pin
    assert pin.get("btf_id"), "the sessions map has no BTF"
    assert pin["bytes_key"] == 8, "keyed by the 64-bit cgroup id"


def test_pins(agent):
    names = set(os.listdir(PIN_DIR))
    assert {SESSIONS_MAP, *RINGS.values()} <= names, sorted(names)
    assert all(n.startswith("sessrec_") for n in names), sorted(names)


def entries():
    """The sessions map as bpftool shows it with BTF: {"key": ..., "value": {field: ...}} per entry."""
    dump = bpftool("map", "dump", "pinned", os.path.join(PIN_DIR, SESSIONS_MAP)) or []
    out = []
    for e in dump:
        assert "formatted" in e, "bpftool shows no BTF-formatted entry: %s" % e
        out.append(e["formatted"])
    return out


def test_sessions_map_entry_while_open(agent):
    b = Background(agent, ["sh", "-c", "read x"])
    try:
        cgid = os.stat(session_cgroup(b.sid)).st_ino
        dump = entries()
        mine = [e for e in dump if e.get("key") == cgid]
        assert len(mine) == 1, "no entry for the session's cgroup %d: %s" % (cgid, dump)
        v = mine[0]["value"]
        assert isinstance(v, dict), "the value is not shown with its BTF field names: %s" % mine[0]
        assert "lost_events" in v, v
        assert v["lost_events"] == [0, 0, 0, 0], v
        plain = subprocess.run(["bpftool", "map", "dump", "pinned", os.path.join(PIN_DIR, SESSIONS_MAP)],
                               capture_output=True, text=True, timeout=30).stdout
        assert '"lost_events"' in plain and str(cgid) in plain, plain
        b.finish(b"\n")
    finally:
        b.kill()
    evs = agent.wait_recording(b.sid)
    assert start_of(evs)["cgroup_id"] == cgid
    poll(lambda: not [e for e in entries() if e.get("key") == cgid], 5, what="the map entry to go")
