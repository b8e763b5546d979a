"""Who may open a session: root, and members of socket_group; the agent checks the peer itself.

Non-root callers are `nobody` (setpriv). The agent's socket is in a directory every user can
traverse; `users` (gid 100) is the socket_group.
"""
import grp
import os
import pwd
import stat
import subprocess

import pytest

from conftest import (
    PY,
    RAW_CLIENT,
    SESSREC,
    open_request_frame,
    parse_reply,
    check_common,
    commands,
    end_of,
    marker,
    parse_sid,
    session_env,
    start_of,
)

AGENT_CONFIG = {"socket_group": "users"}
NOBODY = pwd.getpwnam("nobody").pw_uid
NOGROUP = grp.getgrnam("nogroup").gr_gid
USERS = grp.getgrnam("users").gr_gid


@pytest.fixture(scope="module")
def client(agent):
    """sessrec, where nobody can run it (conftest copies the programs to a directory under /tmp)."""
    p = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", SESSREC, "--version"],
                       capture_output=True, text=True, cwd="/")
    assert p.returncode == 0, "nobody cannot run %s: %s" % (SESSREC, p.stderr)
    return SESSREC


def run_as(client, agent, cmd, groups, primary="nogroup", timeout=30):
    setpriv = ["setpriv", "--reuid=nobody", "--regid=%s" % primary]
    setpriv += ["--groups=%s" % ",".join(str(g) for g in groups)] if groups else ["--clear-groups"]
    p = subprocess.run([*setpriv, "--", client, "run", "--agent-socket", agent.socket, "--", *cmd],
                       capture_output=True, timeout=timeout, cwd="/", env=session_env(), stdin=subprocess.DEVNULL)
    return p


def test_socket_mode(agent):
    st = os.stat(agent.socket)
    assert stat.S_ISSOCK(st.st_mode)
    assert st.st_uid == 0 and st.st_gid == USERS, (st.st_uid, st.st_gid)
    assert stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)


def _refused(agent, p, flag, before, audit_before):
    assert p.returncode == 1, p
    err = p.stderr.decode().strip()
    assert len(err.splitlines()) == 1, "one line: %r" % err
    assert parse_sid(err) is None
    assert not os.path.exists(flag), "the command ran"
    assert set(agent.recordings()) == before, "a refused session left a recording"
    assert agent.audit_raw() == audit_before, "a refused session wrote to the audit log"
    return err


def test_non_member_refused(agent, client, tmpdir_world):
    os.chmod(tmpdir_world, 0o777)
    flag = os.path.join(tmpdir_world, "ran-" + marker())
    before, audit_before = set(agent.recordings()), agent.audit_raw()
    p = run_as(client, agent, ["touch", flag], groups=[])
    _refused(agent, p, flag, before, audit_before)


def test_agent_checks_peer_credentials(agent, client, tmpdir_world):
    """Even with a socket everyone can connect to, the agent refuses a caller that is not allowed."""
    os.chmod(tmpdir_world, 0o777)
    flag = os.path.join(tmpdir_world, "ran-" + marker())
    before, audit_before = set(agent.recordings()), agent.audit_raw()
    m0 = agent.metrics()[("sessrec_agent_api_errors_total", ())]
    mode = stat.S_IMODE(os.stat(agent.socket).st_mode)
    os.chmod(agent.socket, 0o666)
    tries = 10
    reasons = {}
    try:
        # several times: the caller must always be told why, not only when the timing is lucky
        for _ in range(tries):
            p = run_as(client, agent, ["touch", flag], groups=[])
            err = _refused(agent, p, flag, before, audit_before)
            reasons[err] = reasons.get(err, 0) + 1
    finally:
        os.chmod(agent.socket, mode)
    told = sum(n for e, n in reasons.items() if "allowed" in e or "permission" in e.lower())
    assert told == tries, "the refused caller was told why only %d times of %d: %s" % (told, tries, reasons)
    assert agent.metrics()[("sessrec_agent_api_errors_total", ())] == m0 + tries


@pytest.mark.parametrize("how", ["supplementary", "primary"])
def test_member_allowed(agent, client, how):
    m = marker()
    if how == "supplementary":
        p = run_as(client, agent, ["sh", "-c", "echo hello-%s; id -u; id -g" % m], groups=[USERS])
        gid = NOGROUP
    else:
        p = run_as(client, agent, ["sh", "-c", "echo hello-%s; id -u; id -g" % m], groups=[], primary="users")
        gid = USERS
    assert p.returncode == 0, p
    sid = parse_sid(p.stderr.decode())
    assert sid, p
    assert p.stdout.decode().split() == ["hello-" + m, str(NOBODY), str(gid)], p.stdout
    evs = agent.wait_recording(sid)
    check_common(evs, sid)
    st = start_of(evs)
    assert st["login"] == "nobody" and st["user"] == "nobody", st
    sh = commands(evs)[0]
    assert sh["user_id"] == NOBODY and sh["group_id"] == gid, sh
    for c in commands(evs):
        assert c["user_id"] == NOBODY, c
    assert end_of(evs)["exit_code"] == 0


def test_launcher_uid_recorded(agent, client):
    p = run_as(client, agent, ["true"], groups=[USERS])
    assert p.returncode == 0, p
    sid = parse_sid(p.stderr.decode())
    st = start_of(agent.wait_recording(sid))
    assert st["launcher_uid"] == NOBODY, "launcher_uid %s, the launcher ran as uid %d" % (st["launcher_uid"], NOBODY)


@pytest.mark.parametrize("caller", ["root", "member"])
def test_cannot_place_a_foreign_process(agent, caller):
    """The launcher may put only itself or its own child into a session, not any process it names."""
    victim = subprocess.Popen(["sleep", "30"])
    try:
        with open("/proc/%d/cgroup" % victim.pid) as f:
            cg_before = f.read()
        before, audit_before = set(agent.recordings()), agent.audit_raw()
        frame = open_request_frame(victim.pid, command=["sleep", "30"])
        prefix = [] if caller == "root" else ["setpriv", "--reuid=nobody", "--regid=nogroup",
                                              "--groups=%d" % USERS, "--"]
        p = subprocess.run([*prefix, PY, "-c", RAW_CLIENT, agent.socket, frame.hex()], capture_output=True,
                           text=True, timeout=30, cwd="/")
        assert p.returncode == 0, p
        line = [l for l in p.stdout.splitlines() if l.startswith("reply ")]
        assert line, p.stdout
        reply = parse_reply(line[0].split(" ", 1)[1])
        assert reply is not None, "no reply: %s" % p.stdout
        assert reply["error"] != 0 and not reply["sid"], "the agent accepted pid %d from %s: %s" % (
            victim.pid, caller, reply)
        with open("/proc/%d/cgroup" % victim.pid) as f:
            assert f.read() == cg_before, "the foreign process was moved into a session cgroup"
        assert set(agent.recordings()) == before and agent.audit_raw() == audit_before
    finally:
        victim.kill()
        victim.wait()
