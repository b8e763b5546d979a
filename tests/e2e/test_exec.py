"""Commands (session.command, T4000I): successful and failed execs, argv capture and truncation."""
import os
import shutil

from conftest import (
    check_common,
    commands,
    marker,
    of,
    print_bytes,
    run_session,
    start_of,
)

AUDIT_COMMON = ["event", "code", "time", "ei", "uid", "sid", "server_id", "server_hostname", "login", "user"]


def test_exec_success(agent):
    m = marker()
    script = "/usr/bin/printf '%%s\\n' %s-alpha 'two words'; true" % m
    r = run_session(agent, ["sh", "-c", script])
    assert r.rc == 0, r
    assert r.sid, r
    evs = agent.wait_recording(r.sid)
    check_common(evs, r.sid)
    st = start_of(evs)
    cmds = commands(evs)
    assert cmds, "no session.command at all"

    # the session's own command: exec'd by the launcher's child
    sh = cmds[0]
    assert sh["path"] == shutil.which("sh"), sh
    assert sh["argv"] == ["sh", "-c", script], sh
    assert sh["argv_truncated"] is False, sh
    assert sh["program"] == "sh", sh
    assert sh["ppid"] == r.pid, "the first process's parent is the launcher (pid %d): %s" % (r.pid, sh)
    assert sh["return_code"] == 0, sh
    assert sh["user_id"] == 0 and sh["group_id"] == 0, sh
    assert sh["cgroup_id"] == st["cgroup_id"] and sh["cgroup_id"] > 0, sh

    pf = commands(evs, path="/usr/bin/printf")
    assert len(pf) == 1, "expected one exec of /usr/bin/printf: %s" % cmds
    pf = pf[0]
    assert pf["argv"] == ["/usr/bin/printf", "%s\\n", m + "-alpha", "two words"], pf
    assert pf["argv_truncated"] is False
    assert pf["program"] == "printf", pf
    assert pf["ppid"] == sh["pid"] and pf["pid"] != sh["pid"], pf
    assert pf["return_code"] == 0, pf
    assert pf["user_id"] == 0 and pf["group_id"] == 0, pf
    assert pf["cgroup_id"] == st["cgroup_id"]
    assert pf["ei"] > sh["ei"]
    # what printf wrote, attributed to printf's pid
    assert print_bytes(evs, pf["pid"]) == ("%s-alpha\ntwo words\n" % m).encode()


def test_exec_failures(agent, tmpdir_world):
    m = marker()
    missing = "/nonexistent-%s/prog" % m
    noexec = os.path.join(tmpdir_world, "noexec-" + m)
    with open(noexec, "w") as f:
        f.write("#!/bin/sh\necho should-not-run\n")
    os.chmod(noexec, 0o644)
    script = "%s a 'b c'; %s x; true" % (missing, noexec)
    r = run_session(agent, ["sh", "-c", script])
    assert r.rc == 0, r
    evs = agent.wait_recording(r.sid)
    check_common(evs, r.sid)
    sh = commands(evs)[0]
    assert sh["argv"][0] == "sh"

    enoent = commands(evs, path=missing)
    assert len(enoent) == 1, "failed exec of %s not recorded: %s" % (missing, commands(evs))
    e = enoent[0]
    assert e["return_code"] == -2, "ENOENT must be -2: %s" % e
    assert e["argv"] == [missing, "a", "b c"], e
    assert e["argv_truncated"] is False
    assert e["program"] == "sh", "a failed exec keeps the caller's comm: %s" % e
    assert e["ppid"] == sh["pid"] and e["pid"] != sh["pid"], e
    assert e["user_id"] == 0 and e["group_id"] == 0

    eacces = commands(evs, path=noexec)
    assert len(eacces) == 1, "failed exec of %s not recorded: %s" % (noexec, commands(evs))
    e = eacces[0]
    assert e["return_code"] == -13, "EACCES must be -13: %s" % e
    assert e["argv"] == [noexec, "x"], e
    assert e["ppid"] == sh["pid"]
    assert b"should-not-run" not in print_bytes(evs)


def test_exec_argv_special_characters(agent):
    args = ["a b", 'q"uote', "back\\slash", "new\nline", "tab\there", "caf\u00e9 \u20ac", "", "-"]
    r = run_session(agent, ["/bin/true", *args])
    assert r.rc == 0, r
    evs = agent.wait_recording(r.sid)
    c = commands(evs)[0]
    assert c["path"] == "/bin/true", c
    assert c["argv"] == ["/bin/true", *args], c
    assert c["argv_truncated"] is False
    au = [a for a in agent.audit(r.sid) if a["event"] == "session.command"]
    assert au and au[0]["argv"] == args, au


def test_exec_64_args_complete(agent):
    """64 arguments and more, well under 8 KiB: all present, not truncated."""
    args = ["arg%02d" % i for i in range(70)]
    r = run_session(agent, ["/bin/true", *args])
    assert r.rc == 0, r
    evs = agent.wait_recording(r.sid)
    c = commands(evs)[0]
    assert c["argv"] == ["/bin/true", *args], c
    assert c["argv_truncated"] is False, c


def test_exec_argv_truncated(agent):
    m = marker()
    real = ["/bin/true"] + ["%03d-%s-" % (i, m) + "x" * (195 - len(m)) for i in range(100)]
    assert all(len(a) == 200 for a in real[1:])
    r = run_session(agent, real)
    assert r.rc == 0, r
    evs = agent.wait_recording(r.sid)
    check_common(evs, r.sid)
    c = commands(evs, path="/bin/true")
    assert len(c) == 1, commands(evs)
    c = c[0]
    argv = c["argv"]
    assert c["argv_truncated"] is True, "20 KB of argv must be flagged as truncated"
    assert c["return_code"] == 0 and c["program"] == "true"
    assert len(argv) <= len(real)
    # what is present is a prefix of the real argv (the last one may be cut short)
    assert argv[:-1] == real[: len(argv) - 1], "captured argv is not a prefix of the real one"
    assert real[len(argv) - 1].startswith(argv[-1]), (argv[-1], real[len(argv) - 1])
    assert len(argv) >= 64, "at least 64 arguments must be captured, got %d" % len(argv)
    size = sum(len(a.encode()) + 1 for a in argv)
    assert size >= 8192, "at least 8 KiB of argv must be captured, got %d bytes" % size

    au = [a for a in agent.audit(r.sid) if a["event"] == "session.command" and a["uid"] == c["uid"]]
    assert len(au) == 1, au
    assert au[0]["argv"] == argv[1:], "the audit argv is the recorded argv without argv[0]"
    assert au[0]["argv_truncated"] is True


def test_command_audit_line(agent):
    m = marker()
    r = run_session(agent, ["sh", "-c", "/bin/echo one %s two; true" % m])
    assert r.rc == 0, r
    evs = agent.wait_recording(r.sid)
    agent.wait_audit_end(r.sid)
    rec = commands(evs, path="/bin/echo")
    assert len(rec) == 1, commands(evs)
    rec = rec[0]
    au = [a for a in agent.audit(r.sid) if a["event"] == "session.command" and a["uid"] == rec["uid"]]
    assert len(au) == 1, "the command is not in the audit log exactly once"
    a = au[0]
    assert list(a)[: len(AUDIT_COMMON)] == AUDIT_COMMON, "common fields first, in order: %s" % list(a)
    assert a["code"] == "T4000I"
    assert a["argv"] == ["one", m, "two"], "audit argv is without argv[0]: %s" % a["argv"]
    assert "argv_truncated" not in a, "argv_truncated is only written when true"
    for k in ("event", "time", "ei", "sid", "server_id", "server_hostname", "login", "user", "pid", "ppid",
              "cgroup_id", "program", "path", "return_code", "user_id", "group_id"):
        assert a[k] == rec[k], (k, a[k], rec[k])


def test_audit_matches_recording(agent):
    """Every non-print event of a recording is in the audit log once, with the same fields; no print is."""
    m = marker()
    # the output "leak-<m>" appears in no argv or path: only as terminal output
    r = run_session(agent, ["sh", "-c", "printf '%%s%%s\\n' leak- %s; cat /etc/hostname; ls /nonexistent-%s; true" % (m, m)])
    evs = agent.wait_recording(r.sid)
    agent.wait_audit_end(r.sid)
    audit = agent.audit(r.sid)
    assert not [a for a in audit if a["event"] == "print" or "data" in a], "terminal data in the audit log"
    assert b"leak-" + m.encode() in print_bytes(evs)
    assert b"leak-" + m.encode() not in agent.audit_raw(), "terminal output leaked into the audit log"
    rec = {e["uid"]: e for e in evs if e["event"] != "print"}
    by_uid = {}
    for a in audit:
        assert a["uid"] not in by_uid, "event %s twice in the audit log" % a["uid"]
        by_uid[a["uid"]] = a
    assert set(by_uid) == set(rec), "audit and recording differ: only audit %s, only recording %s" % (
        set(by_uid) - set(rec), set(rec) - set(by_uid))
    json_only = {
        "session.start": {"remote_addr", "tty", "launcher_pid", "launcher_uid"},
        "session.command": {"argv_truncated"},
        "session.disk": {"user_id"},
        "session.network": {"user_id"},
    }
    for uid, a in by_uid.items():
        e = rec[uid]
        assert list(a)[: len(AUDIT_COMMON)] == AUDIT_COMMON, list(a)
        for k, v in a.items():
            if k == "argv":
                assert v == e["argv"][1:]
            else:
                assert v == e[k], (e["event"], k, v, e[k])
        missing = set(e) - set(a) - json_only.get(e["event"], set())
        assert not missing, "%s: fields missing from the audit line: %s" % (e["event"], missing)
    # ei order in the audit log is the recording's order
    assert [a["ei"] for a in audit] == sorted(a["ei"] for a in audit)
    assert len(of(evs, "session.command")) >= 3


def test_exec_records_uid_change(agent):
    """A process that drops privileges inside the session is recorded with its new ids."""
    r = run_session(agent, ["sh", "-c", "setpriv --reuid=nobody --regid=nogroup --clear-groups /usr/bin/id -u; true"])
    assert r.rc == 0 and r.out.split() == [b"65534"], r
    evs = agent.wait_recording(r.sid)
    sp = commands(evs, path="/usr/bin/setpriv")
    idc = commands(evs, path="/usr/bin/id")
    assert len(sp) == 1 and len(idc) == 1, commands(evs)
    assert sp[0]["user_id"] == 0 and sp[0]["group_id"] == 0, sp
    assert idc[0]["user_id"] == 65534 and idc[0]["group_id"] == 65534, idc
    assert idc[0]["ppid"] == sp[0]["ppid"] and idc[0]["pid"] == sp[0]["pid"], "setpriv execs id in place"
