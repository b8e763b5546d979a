"""Who may open a session: root, and members of socket_group; the agent checks the peer itself.

Non-root callers are `nobody` (setpriv). The agent's socket is in a directory every user can
traverse; `users` (gid 100) is the socket_group.
"""
import grp
import os
import pwd
import shutil
import stat
import subprocess

import pytest

from conftest import (
    SESSREC,
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
def client(agent, workroot):
    """A copy of sessrec that nobody can run, whatever the build directory's permissions."""
    path = os.path.join(workroot, "sessrec-client")
    if not os.path.exists(path):
        shutil.copy(SESSREC, path)
        os.chmod(path, 0o755)
    return path


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
    try:
        p = run_as(client, agent, ["touch", flag], groups=[])
    finally:
        os.chmod(agent.socket, mode)
    err = _refused(agent, p, flag, before, audit_before)
    assert "allowed" in err or "permission" in err.lower(), err
    assert agent.metrics()[("sessrec_agent_api_errors_total", ())] == m0 + 1


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
