"""File opens (session.disk, T4001I): absolute paths, flags, return codes."""
import os

from conftest import PY, check_common, commands, marker, of, run_session

O_ACCMODE = 3


def disk(evs, path=None, endswith=None):
    return [
        e
        for e in of(evs, "session.disk")
        if (path is None or e["path"] == path) and (endswith is None or e["path"].endswith(endswith))
    ]


def only(lst, what):
    assert len(lst) == 1, "expected exactly one %s, got %d: %s" % (what, len(lst), lst)
    return lst[0]


def test_open_relative_path_is_absolute(agent, tmpdir_world):
    m = marker()
    sub = os.path.join(tmpdir_world, "dir-" + m)
    os.mkdir(sub)
    name = "data-" + m
    with open(os.path.join(sub, name), "w") as f:
        f.write("content-%s\n" % m)
    r = run_session(agent, ["sh", "-c", "cd %s && cat %s && cd /etc && cat hostname" % (sub, name)])
    assert r.rc == 0, r
    assert ("content-%s" % m).encode() in r.out
    evs = agent.wait_recording(r.sid)
    check_common(evs, r.sid)
    cats = commands(evs, path="/usr/bin/cat")
    assert len(cats) == 2, commands(evs)

    e = only(disk(evs, endswith=name), "open of " + name)
    assert e["path"] == os.path.join(sub, name), "a relative open must be recorded with its absolute path: %s" % e
    assert e["flags"] & O_ACCMODE == os.O_RDONLY, e
    assert e["return_code"] >= 0, e
    assert e["program"] == "cat" and e["pid"] == cats[0]["pid"], e
    assert e["user_id"] == 0
    assert e["cgroup_id"] == cats[0]["cgroup_id"]

    h = [x for x in disk(evs, path="/etc/hostname") if x["pid"] == cats[1]["pid"]]
    assert len(h) == 1, "cd /etc && cat hostname must give /etc/hostname: %s" % [
        x["path"] for x in disk(evs) if x["pid"] == cats[1]["pid"]]
    assert h[0]["return_code"] >= 0 and h[0]["program"] == "cat"


def test_open_write_flags(agent, tmpdir_world):
    m = marker()
    f1 = os.path.join(tmpdir_world, "trunc-" + m)
    f2 = os.path.join(tmpdir_world, "append-" + m)
    r = run_session(agent, ["sh", "-c", "echo x > %s; echo y >> %s" % (f1, f2)])
    assert r.rc == 0, r
    assert open(f1).read() == "x\n" and open(f2).read() == "y\n"
    evs = agent.wait_recording(r.sid)
    sh = commands(evs)[0]

    e = only(disk(evs, path=f1), "open of " + f1)
    assert e["flags"] & O_ACCMODE == os.O_WRONLY, "flags %o" % e["flags"]
    assert e["flags"] & os.O_CREAT, "O_CREAT missing: flags %o" % e["flags"]
    assert e["flags"] & os.O_TRUNC, "O_TRUNC missing: flags %o" % e["flags"]
    assert not e["flags"] & os.O_APPEND
    assert e["return_code"] >= 0 and e["program"] == "sh" and e["pid"] == sh["pid"], e

    e = only(disk(evs, path=f2), "open of " + f2)
    assert e["flags"] & O_ACCMODE == os.O_WRONLY, "flags %o" % e["flags"]
    assert e["flags"] & os.O_CREAT and e["flags"] & os.O_APPEND, "flags %o" % e["flags"]
    assert not e["flags"] & os.O_TRUNC
    assert e["return_code"] >= 0


def test_open_failures(agent, tmpdir_world):
    m = marker()
    missing_abs = "/nonexistent-%s/file" % m
    missing_rel = "missing-" + m
    creat_fail = "/nonexistent-%s/new" % m
    script = "cat %s; cd %s && cat %s; echo x > %s; echo y > /tmp; true" % (
        missing_abs, tmpdir_world, missing_rel, creat_fail)
    r = run_session(agent, ["sh", "-c", script])
    assert r.rc == 0, r
    evs = agent.wait_recording(r.sid)
    check_common(evs, r.sid)

    e = only(disk(evs, path=missing_abs), "open of " + missing_abs)
    assert e["return_code"] == -2, "ENOENT must be -2: %s" % e
    assert e["flags"] & O_ACCMODE == os.O_RDONLY
    assert e["program"] == "cat"

    e = only(disk(evs, endswith=missing_rel), "open of " + missing_rel)
    assert e["return_code"] == -2, e
    assert e["path"] in (missing_rel, os.path.join(tmpdir_world, missing_rel)), e

    e = only(disk(evs, path=creat_fail), "open of " + creat_fail)
    assert e["return_code"] == -2, e
    assert e["flags"] & os.O_CREAT and e["flags"] & O_ACCMODE == os.O_WRONLY, e
    assert e["program"] == "sh"

    e = [x for x in disk(evs, path="/tmp") if x["flags"] & O_ACCMODE == os.O_WRONLY]
    e = only(e, "write open of /tmp")
    assert e["return_code"] == -21, "EISDIR must be -21: %s" % e


def test_openat_with_dirfd(agent):
    """openat() relative to a directory fd: the path is resolved against that directory."""
    code = (
        "import os\n"
        "d = os.open('/etc', os.O_RDONLY | os.O_DIRECTORY)\n"
        "fd = os.open('hostname', os.O_RDONLY, dir_fd=d)\n"
        "print('opened', fd)\n"
    )
    r = run_session(agent, [PY, "-c", code])
    assert r.rc == 0 and b"opened" in r.out, r
    evs = agent.wait_recording(r.sid)
    py = commands(evs)[0]
    e = [x for x in disk(evs, path="/etc/hostname") if x["pid"] == py["pid"]]
    assert len(e) == 1, "openat(dirfd of /etc, 'hostname') must be recorded as /etc/hostname: %s" % [
        x["path"] for x in disk(evs) if "hostname" in x["path"]]
    assert e[0]["return_code"] >= 0 and e[0]["program"] == "python3"
    etc = [x for x in disk(evs, path="/etc") if x["pid"] == py["pid"]]
    assert len(etc) == 1 and etc[0]["flags"] & os.O_DIRECTORY, etc


def test_non_utf8_path(agent, tmpdir_world):
    """Raw bytes in names: replaced byte by byte with U+FFFD in JSON, the audit line stays valid JSON."""
    m = marker()
    name = b"bad-\xff\xfe-" + m.encode()
    path = os.path.join(tmpdir_world.encode(), name)
    with open(path, "wb") as f:
        f.write(b"x\n")
    r = run_session(agent, ["cat", path])
    assert r.rc == 0 and r.out == b"x\r\n", r
    evs = agent.wait_recording(r.sid)
    shown = tmpdir_world + "/bad-\ufffd\ufffd-" + m
    c = commands(evs)[0]
    assert c["argv"] == ["cat", shown], c
    e = only(disk(evs, path=shown), "open of the non-UTF-8 name")
    assert e["return_code"] >= 0
    au = [a for a in agent.audit(r.sid) if a["uid"] == e["uid"]]
    assert len(au) == 1 and au[0]["path"] == shown, au
