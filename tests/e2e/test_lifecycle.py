"""Session life cycle: start and end metadata, exit codes, odd endings, launcher errors."""
import fcntl
import os
import signal
import socket
import stat
import struct
import subprocess
import termios
import time

from conftest import (
    SESSREC,
    Background,
    check_common,
    commands,
    end_of,
    marker,
    of,
    print_bytes,
    run_args,
    run_session,
    session_cgroup,
    session_env,
    start_of,
    time_ms,
    verify,
)


def test_start_and_end_metadata(agent):
    m = marker()
    opts = ["--user", "alice-" + m, "--login", "root", "--kind", "ssh", "--label", "team=blue", "--label",
            "ticket=T-" + m]
    r = run_session(agent, ["sh", "-c", "exit 0"], opts=opts)
    assert r.rc == 0, r
    evs = agent.wait_recording(r.sid)
    check_common(evs, r.sid)
    st, end = start_of(evs), end_of(evs)
    assert st["user"] == "alice-" + m and st["login"] == "root", st
    assert st["kind"] == "ssh"
    assert st["labels"] == {"team": "blue", "ticket": "T-" + m}, st["labels"]
    assert st["size"] == "80:24", "a pipe has no size: the default 80:24"
    assert st["initial_command"] == ["sh", "-c", "exit 0"]
    assert st["session_recording"] == "node"
    assert st["tty"].startswith("/dev/pts/"), st
    assert st["cgroup_id"] > 0
    assert st["remote_addr"] == ""
    assert st["launcher_uid"] == 0
    assert end["participants"] == ["alice-" + m]
    assert end["interactive"] is True and end["enhanced_recording"] is True
    assert end["session_start"] == st["time"]
    assert end["session_stop"] == end["time"]
    assert end["initial_command"] == st["initial_command"]
    assert end["exit_code"] == 0 and end["reason"] == "exited", end
    au = agent.audit(r.sid)
    ast = [a for a in au if a["event"] == "session.start"]
    assert len(ast) == 1 and ast[0]["labels"] == st["labels"] and ast[0]["kind"] == "ssh"
    assert ast[0]["user"] == "alice-" + m and ast[0]["tty"] == st["tty"]
    assert "launcher_pid" not in ast[0] and "remote_addr" not in ast[0]


def test_default_user_and_login(agent):
    r = run_session(agent, ["true"], env=session_env({"SUDO_USER": "bob"}))
    evs = agent.wait_recording(r.sid)
    st = start_of(evs)
    assert st["login"] == "root" and st["user"] == "bob", "user defaults to $SUDO_USER, login to the real uid"
    assert st["kind"] == "local"
    r = run_session(agent, ["true"])
    st = start_of(agent.wait_recording(r.sid))
    assert st["login"] == "root" and st["user"] == "root"


def test_server_hostname_is_node_name(agent):
    """node_name is "Name of this node in recordings and audit events (server_hostname)"."""
    r = run_session(agent, ["true"])
    evs = agent.wait_recording(r.sid)
    assert {e["server_hostname"] for e in evs} == {agent.cfg["node_name"]}, \
        "server_hostname %r, config node_name %r" % (evs[0]["server_hostname"], agent.cfg["node_name"])
    assert {a["server_hostname"] for a in agent.audit(r.sid)} == {agent.cfg["node_name"]}


def test_launcher_pid_is_the_launcher(agent):
    r = run_session(agent, ["true"])
    evs = agent.wait_recording(r.sid)
    st = start_of(evs)
    first = commands(evs)[0]
    assert first["ppid"] == r.pid
    assert st["launcher_pid"] == r.pid, "launcher_pid %d is the session's first process (%d), not the " \
        "launcher (sessrec run, pid %d)" % (st["launcher_pid"], first["pid"], r.pid)


def test_exit_code_propagation(agent):
    r = run_session(agent, ["sh", "-c", "exit 7"])
    assert r.rc == 7, r
    evs = agent.wait_recording(r.sid)
    check_common(evs, r.sid)
    end = end_of(evs)
    assert end["exit_code"] == 7 and end["reason"] == "exited", end
    aend = agent.wait_audit_end(r.sid)[0]
    assert aend["exit_code"] == 7 and aend["code"] == "T2004I"
    assert not os.path.exists(session_cgroup(r.sid)), "the session's cgroup is removed when it ends"

    r = run_session(agent, ["sh", "-c", "kill -KILL $$"])
    assert r.rc == 128 + 9, r
    end = end_of(agent.wait_recording(r.sid))
    assert end["exit_code"] == 128 + 9, end


def test_command_not_found(agent):
    m = marker()
    name = "no-such-command-" + m
    r = run_session(agent, [name, "arg1"])
    assert r.rc == 127, r
    assert r.sid, r
    text = (r.out + r.err).decode(errors="replace")
    lines = [l for l in text.splitlines() if name in l]
    assert len(lines) == 1, "one line of error about the missing command: %r" % text
    assert "not found" in lines[0].lower() or "no such file" in lines[0].lower(), lines
    evs = agent.wait_recording(r.sid)
    check_common(evs, r.sid)
    cmds = commands(evs)
    assert cmds, "the failed exec must be recorded"
    for c in cmds:
        assert c["argv"] == [name, "arg1"], c
        assert c["return_code"] == -2, c
        assert c["path"].endswith("/" + name) or c["path"] == name, c
    end = end_of(evs)
    assert end["exit_code"] == 127
    assert name.encode() in print_bytes(evs), "the error shown on the terminal is in the recording"


def test_not_executable(agent, tmpdir_world):
    path = os.path.join(tmpdir_world, "not-exec-" + marker())
    with open(path, "w") as f:
        f.write("#!/bin/sh\n")
    os.chmod(path, 0o644)
    r = run_session(agent, [path])
    assert r.rc == 126, r
    evs = agent.wait_recording(r.sid)
    c = commands(evs)
    assert len(c) == 1 and c[0]["return_code"] == -13 and c[0]["path"] == path, c
    assert end_of(evs)["exit_code"] == 126


def test_session_that_exits_at_once(agent):
    r = run_session(agent, ["true"], opts=["--quiet"])
    assert r.rc == 0 and r.err == b"" and r.out == b"", r
    # --quiet: find the session by its command
    r2 = run_session(agent, ["true"])
    assert r2.rc == 0 and r2.out == b"" and r2.err.decode().strip() == "session " + r2.sid, r2
    evs = agent.wait_recording(r2.sid)
    check_common(evs, r2.sid)
    c = commands(evs)
    assert len(c) == 1 and c[0]["path"] == "/usr/bin/true" and c[0]["return_code"] == 0, c
    assert end_of(evs)["exit_code"] == 0
    assert not of(evs, "print")


def test_launcher_killed_session_goes_on(agent):
    m = marker()
    b = Background(agent, ["sh", "-c", "trap '' HUP; sleep 2; echo after-%s" % m])
    t0 = time.monotonic()
    time.sleep(0.3)
    b.proc.kill()  # SIGKILL the launcher: the pty master goes away, the session's process does not
    b.proc.wait()
    time.sleep(0.5)
    assert verify(agent.rec_path(b.sid)).returncode != 0, "the session ended with its launcher"
    assert os.path.exists(session_cgroup(b.sid))
    evs = agent.wait_recording(b.sid, timeout=15)
    waited = time.monotonic() - t0
    check_common(evs, b.sid)
    st, end = start_of(evs), end_of(evs)
    assert end["reason"] == "exited", end
    assert end["exit_code"] == -1, "nobody told the agent the exit code: -1 (unknown)"
    assert time_ms(end["time"]) - time_ms(st["time"]) >= 1900, "the session ended before sleep 2 did"
    assert waited < 10
    assert commands(evs, path="/usr/bin/sleep"), commands(evs)
    assert not os.path.exists(session_cgroup(b.sid))


def test_background_process_keeps_session_open(agent):
    # ignore SIGHUP: when the session leader exits, the kernel hangs up its terminal's foreground group
    r = run_session(agent, ["sh", "-c", "trap '' HUP; sleep 2 & echo started"])
    assert r.rc == 0, r
    assert r.elapsed < 1.9, "the launcher waits for the command, not for its background jobs (%.2fs)" % r.elapsed
    assert verify(agent.rec_path(r.sid)).returncode != 0, "the session ended while sleep still ran"
    evs = agent.wait_recording(r.sid, timeout=15)
    check_common(evs, r.sid)
    st, end = start_of(evs), end_of(evs)
    assert time_ms(end["time"]) - time_ms(st["time"]) >= 1900, "the session ended before its background job"
    assert end["exit_code"] == 0 and end["reason"] == "exited", end
    sl = commands(evs, path="/usr/bin/sleep")
    assert len(sl) == 1 and sl[0]["argv"] == ["sleep", "2"], sl


def test_launcher_errors(agent, tmpdir_world):
    # no agent there
    p = subprocess.run([SESSREC, "run", "--agent-socket", os.path.join(tmpdir_world, "nope.sock"), "--", "true"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1, p
    assert len(p.stderr.strip().splitlines()) == 1 and "agent" in p.stderr, p.stderr
    # bad command lines
    for args in (["--kind", "bogus", "--", "true"], ["--label", "no-equals", "--", "true"], []):
        p = subprocess.run([SESSREC, "run", "--agent-socket", agent.socket, *args], capture_output=True, text=True,
                           timeout=30)
        assert p.returncode == 2, (args, p)
        assert len(p.stderr.strip().splitlines()) == 1, (args, p.stderr)
    # SIGTERM to the launcher ends the session's command and is reported like a shell does
    b = Background(agent, ["sleep", "30"])
    time.sleep(0.3)
    b.proc.send_signal(signal.SIGTERM)
    r = b.finish(timeout=15)
    assert r.rc == 128 + signal.SIGTERM, r
    end = end_of(agent.wait_recording(b.sid))
    assert end["exit_code"] == 128 + signal.SIGTERM


def test_socket_permissions_default(agent, tmpdir_world):
    """Without socket_group the socket is root's only; nobody cannot open a session."""
    st = os.stat(agent.socket)
    assert stat.S_ISSOCK(st.st_mode) and st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    flag = os.path.join(tmpdir_world, "ran-" + marker())
    os.chmod(tmpdir_world, 0o777)
    before = set(agent.recordings())
    p = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--",
                        *run_args(agent, ["touch", flag])], capture_output=True, text=True, timeout=30,
                       cwd="/", env=session_env(), stdin=subprocess.DEVNULL)
    assert p.returncode == 1, p
    assert len(p.stderr.strip().splitlines()) == 1 and "session " not in p.stderr, p.stderr
    assert not os.path.exists(flag), "the command ran"
    assert set(agent.recordings()) == before


def test_window_size_from_terminal(agent):
    """With a terminal on stdin, the session's pty gets its size."""
    master, slave = os.openpty()
    try:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 37, 123, 0, 0))
        p = subprocess.Popen(run_args(agent, ["sh", "-c", "stty size"]), stdin=slave, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=session_env())
        out, err = p.communicate(timeout=30)
        attrs = termios.tcgetattr(slave)
    finally:
        os.close(slave)
        os.close(master)
    assert p.returncode == 0, (out, err)
    assert out.split() == [b"37", b"123"], out
    sid = err.decode().split()[1]
    evs = agent.wait_recording(sid)
    assert start_of(evs)["size"] == "123:37"
    assert print_bytes(evs) == b"37 123\n"
    assert attrs[3] & termios.ICANON and attrs[3] & termios.ECHO, "the launcher restored the terminal's mode"


def _raw_client(agent, data, finish=True):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(agent.socket)
    if data:
        s.sendall(data)
    if finish:
        s.shutdown(socket.SHUT_WR)
        try:
            while s.recv(4096):
                pass
        except OSError:
            pass
        s.close()
    return s


def test_agent_survives_bad_clients(agent):
    """Garbage, truncated frames, huge lengths and silent clients on the socket hurt no one."""
    pid = agent.proc.pid
    _raw_client(agent, b"")
    _raw_client(agent, struct.pack(">I", 5) + b"\xff\xff\xff\xff\xff")
    _raw_client(agent, struct.pack(">I", 0xFFFFFFF0) + b"x" * 100)
    _raw_client(agent, struct.pack(">I", 3) + b"\x0a\x01")  # a frame cut short, then EOF
    r = run_session(agent, ["echo", "still-fine"], timeout=30)
    assert r.rc == 0 and b"still-fine" in r.out, r
    assert agent.alive() and agent.proc.pid == pid, "the agent died:\n%s" % agent.log_tail()
    evs = agent.wait_recording(r.sid)
    check_common(evs, r.sid)


def test_stalled_clients_do_not_block_the_agent(agent):
    """A client that sends half a message and waits must not hold up other sessions (or the ring buffers)."""
    stalled = [_raw_client(agent, b"\x00\x00", finish=False) for _ in range(3)]
    try:
        time.sleep(0.1)
        r = run_session(agent, ["echo", "not-blocked"], timeout=60)
    finally:
        for s in stalled:
            s.close()
    assert r.rc == 0 and b"not-blocked" in r.out, r
    assert r.elapsed < 2.0, "a session took %.1fs to run while 3 clients stalled mid-message: the agent " \
                            "blocks on each of them" % r.elapsed
    agent.wait_recording(r.sid)
