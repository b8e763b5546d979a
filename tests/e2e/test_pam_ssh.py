"""pam_sessrec.so with Debian's real OpenSSH server and the real ssh client.

The module runs its own sessrec-agent (pins /sys/fs/bpf/sessrec_pam, cgroups under
sessrec_pam, its own socket, data dir, audit log and a metrics port in 26000-26999), so it
runs beside other people's agents. It starts /usr/sbin/sshd -D -e on a loopback port with its
own host key, UsePAM yes, and a test user created for the module (useradd) who logs in with a
key.

sshd's PAM service name is its program name (OpenSSH's SSHD_PAM_SERVICE defaults to
__progname; Debian keeps that): sshd is started through a symlink named sshd-srpam-<hex>, so
it reads /etc/pam.d/sshd-srpam-<hex>, a file of this module's own, rewritten per test and
removed at the end (OpenSSH 9.9 and later: PAMServiceName says the same). /etc/pam.d/sshd
is never touched. The module file under test is a copy of build/lib/pam_sessrec.so taken at
the start (a concurrent `make` may rewrite the original).

Only processes started here are stopped, by their pid.
"""
import contextlib
import grp
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import pytest

from conftest import (
    BUILD,
    PY,
    RAW_CLIENT,
    UUID_RE,
    Agent,
    _pb_field,
    check_common,
    commands,
    end_of,
    marker,
    of,
    parse_reply,
    poll,
    print_bytes,
    start_of,
    verify,
    yaml_str,
)

PAM_SO = os.path.join(BUILD, "lib", "pam_sessrec.so")
SSHD = "/usr/sbin/sshd"
PIN_PATH = "/sys/fs/bpf/sessrec_pam"
ROOT_PATH = "sessrec_pam"
CGROUP_PATH = "/cgroup2"
METRICS_PORTS = (26000, 26999)
SSH_PORTS = (22200, 22299)
LABEL = ("env", "e2e-pam")
# What the module tells the user when fail_closed refuses (pam_error: sshd shows it).
REFUSED_MSG = "This session cannot be recorded"
# do_child() exits with this when the PAM session did not open.
SSHD_NO_SESSION = 254

def _free_port(lo, hi, exclude=()):
    ports = [p for p in range(lo, hi + 1) if p not in exclude]
    random.shuffle(ports)
    for p in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                continue
            return p
    raise AssertionError("no free port in %d-%d" % (lo, hi))


def _run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kw)
    assert p.returncode == 0, "%s: %s %s" % (cmd, p.stdout, p.stderr)
    return p


# ------------------------------------------------------------------ agent


def _start_agent(workdir):
    """Our own agent: its own pins and cgroup root, debug log (Close on another connection shows)."""
    er = {"pin_path": yaml_str(PIN_PATH), "root_path": yaml_str(ROOT_PATH)}
    tried = set()
    for attempt in range(5):
        port = _free_port(*METRICS_PORTS, exclude=tried)
        tried.add(port)
        a = Agent(workdir, metrics_port=port, er=er, log_level="debug", socket_group="nogroup")
        try:
            return a.start()
        except AssertionError as e:
            if "Address already in use" not in str(e) or attempt == 4:
                raise
    raise AssertionError("unreachable")


def _kill_left_sessions():
    """What a failed test left in our cgroup root (every session there is this module's)."""
    root = os.path.join(CGROUP_PATH, ROOT_PATH)
    with contextlib.suppress(FileNotFoundError):
        for sid in filter(UUID_RE.match, os.listdir(root)):
            with contextlib.suppress(OSError), open(os.path.join(root, sid, "cgroup.kill"), "w") as f:
                f.write("1")


@pytest.fixture(scope="module")
def pam_agent(workroot):
    a = _start_agent(tempfile.mkdtemp(prefix="pam-agent-", dir=workroot))
    try:
        yield a
    finally:
        alive = a.alive()
        a.stop()
        _kill_left_sessions()
    assert alive, "the agent died during the module:\n%s" % a.log_tail()
    bad = [(p, r.stderr.strip()) for p in a.recordings() for r in [verify(p)] if r.returncode != 0]
    assert not bad, "recordings that do not verify after the agent stopped: %s" % bad


# ------------------------------------------------------------------ sshd


class Sshd:
    """sshd -D on 127.0.0.1 with a PAM service of its own and a test user with a key."""

    def __init__(self, workdir):
        self.dir = workdir
        self.tag = uuid.uuid4().hex[:8]
        self.service = "sshd-srpam-" + self.tag
        self.pam_file = os.path.join("/etc/pam.d", self.service)
        self.user = "srpam" + self.tag
        self.uid = None
        self.home = os.path.join(workdir, "home")
        self.key = os.path.join(workdir, "user_key")
        self.module = os.path.join(workdir, "pam_sessrec.so")
        self.config = os.path.join(workdir, "sshd_config")
        self.log_path = os.path.join(workdir, "sshd.log")
        self.flags = os.path.join(workdir, "flags")
        self.port = None
        self.proc = None
        self.user_made = False
        self.service_option = False

    # -------------------------------------------------- setup

    def setup(self):
        shutil.copy2(PAM_SO, self.module)
        os.chmod(self.module, 0o644)
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "host", "-f", os.path.join(self.dir, "host_key")])
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "user", "-f", self.key])
        _run(["useradd", "--create-home", "--home-dir", self.home, "--shell", "/bin/bash", self.user])
        self.user_made = True
        self.uid = pwd.getpwnam(self.user).pw_uid
        keys = os.path.join(self.dir, "authorized_keys")
        os.makedirs(keys, mode=0o755)
        shutil.copy(self.key + ".pub", os.path.join(keys, self.user))
        os.chmod(os.path.join(keys, self.user), 0o644)
        # The privilege separation directory (Debian's unit creates it; nothing here does).
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        # OpenSSH 9.9 and later run the session in sshd-session and name the service with
        # PAMServiceName; before, the program name is the service name.
        probe = os.path.join(self.dir, "probe_config")
        with open(probe, "w") as f:
            f.write("HostKey %s\nPAMServiceName %s\n" % (os.path.join(self.dir, "host_key"), self.service))
        self.service_option = subprocess.run([SSHD, "-t", "-f", probe], capture_output=True,
                                             timeout=30).returncode == 0
        os.makedirs(self.flags)
        os.chmod(self.flags, 0o1777)
        os.symlink(SSHD, os.path.join(self.dir, self.service))
        self.write_pam(socket_path="/nonexistent")  # replaced by every test

    def sshd_config(self):
        return "\n".join([
            "Port %d" % self.port,
            "ListenAddress 127.0.0.1",
            "HostKey %s" % os.path.join(self.dir, "host_key"),
            "PidFile %s" % os.path.join(self.dir, "sshd.pid"),
            "UsePAM yes",
            *(["PAMServiceName %s" % self.service] if self.service_option else []),
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "AuthorizedKeysFile %s/authorized_keys/%%u" % self.dir,
            "AllowUsers %s" % self.user,
            "PermitRootLogin no",
            # the user's home sits under /tmp; ownership checks are not what is tested here
            "StrictModes no",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "X11Forwarding no",
            "LogLevel DEBUG1",
            "",
        ])

    def start(self):
        for attempt in range(5):
            self.port = _free_port(*SSH_PORTS)
            with open(self.config, "w") as f:
                f.write(self.sshd_config())
            log = open(self.log_path, "ab")
            start = log.tell()
            # the symlink's name is the PAM service; sshd re-executes itself by this path
            self.proc = subprocess.Popen([os.path.join(self.dir, self.service), "-D", "-e", "-f", self.config],
                                         stdout=log, stderr=log, stdin=subprocess.DEVNULL)
            log.close()
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and self.proc.poll() is None:
                if self._banner():
                    return
                time.sleep(0.05)
            if self.proc.poll() is None:
                self.stop()
                raise AssertionError("sshd did not answer:\n%s" % self.log_tail())
            with open(self.log_path, "rb") as f:
                f.seek(start)
                out = f.read().decode(errors="replace")
            self.proc = None
            if "Address already in use" not in out:
                raise AssertionError("sshd exited at start:\n%s" % out)
        raise AssertionError("no port for sshd")

    def _banner(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                return s.recv(64).startswith(b"SSH-2.0-")
        except OSError:
            return False

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def user_pids(self):
        out = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                with contextlib.suppress(OSError):
                    if os.stat("/proc/" + d).st_uid == self.uid:
                        out.append(int(d))
        return out

    def teardown(self):
        self.stop()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.pam_file)
        if self.user_made:
            # what a failed test may have left running as the test user (all started here)
            for pid in self.user_pids():
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            subprocess.run(["userdel", self.user], capture_output=True, timeout=30)
            with contextlib.suppress(KeyError):
                grp.getgrnam(self.user)  # userdel removes the user's group; in case it did not
                subprocess.run(["groupdel", self.user], capture_output=True, timeout=30)

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])

    # -------------------------------------------------- per test

    def flag(self):
        """A path the test user may create: proof that a command ran."""
        return os.path.join(self.flags, "ran-" + marker())

    def write_pam(self, socket_path, options=()):
        """The service's PAM stack: Debian's common stacks, then pam_sessrec (after pam_systemd)."""
        args = ["socket=%s" % socket_path, "label=%s=%s" % LABEL, *options]
        text = "\n".join([
            "# written by sessrec tests/e2e/test_pam_ssh.py; removed when the test ends",
            "auth     required pam_deny.so",
            "@include common-account",
            "@include common-session",
            "session  required %s %s" % (self.module, " ".join(args)),
            "password required pam_deny.so",
            "",
        ])
        tmp = self.pam_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, self.pam_file)  # a connection reads either the old stack or the new one

    def ssh_args(self, *args):
        return ["ssh", "-F", "/dev/null", "-p", str(self.port), "-i", self.key, "-o", "IdentitiesOnly=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
                "-o", "LogLevel=ERROR", *args]

    @property
    def ssh_env(self):
        return {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LC_ALL": "C", "HOME": self.dir}

    def ssh(self, *remote, tty=False, input=b"", timeout=60):
        cmd = self.ssh_args(*(["-tt"] if tty else []), "%s@127.0.0.1" % self.user, *remote)
        return subprocess.run(cmd, input=input, capture_output=True, timeout=timeout, env=self.ssh_env)

    def spawn(self, *opts):
        """ssh in the background (forwarding); the caller ends it."""
        return subprocess.Popen(self.ssh_args(*opts, "%s@127.0.0.1" % self.user), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.ssh_env)


@pytest.fixture(scope="module")
def sshd(workroot):
    assert os.access(PAM_SO, os.R_OK), "%s is missing: run make first" % PAM_SO
    assert os.access(SSHD, os.X_OK), "%s is missing: install openssh-server (make deps)" % SSHD
    d = tempfile.mkdtemp(prefix="pam-sshd-", dir=workroot)
    os.chmod(d, 0o755)
    s = Sshd(d)
    try:
        s.setup()
        s.start()
        yield s
    finally:
        s.teardown()


def _world_file(sshd, content):
    path = os.path.join(sshd.dir, "data-" + marker() + ".txt")
    with open(path, "w") as f:
        f.write(content)
    os.chmod(path, 0o644)
    return path


def _new_recording(agent, before, timeout=20):
    """The one recording made since `before`, once it is final; returns (sid, events)."""
    new = poll(lambda: set(agent.recordings()) - before, timeout, what="a new recording")
    assert len(new) == 1, "one login, %d recordings: %s" % (len(new), new)
    sid = os.path.basename(new.pop())[:-4]
    return sid, agent.wait_recording(sid)


def _check_start(sshd, evs):
    st = start_of(evs)
    assert st["kind"] == "ssh", st
    assert st["user"] == sshd.user and st["login"] == sshd.user, st
    assert st["remote_addr"] == "127.0.0.1", st
    assert st["labels"].get(LABEL[0]) == LABEL[1], st
    # PAM_TTY is sshd's "ssh" when the session opens: not a device, not passed on
    assert "tty" not in st or st["tty"] == "", st
    # the launcher is sshd's privileged monitor for this connection, which is root
    assert st["launcher_uid"] == 0, st
    return st


def _check_close(agent, sid):
    """pam_close_session's Close, on a connection of its own, was accepted."""
    poll(lambda: "session %s: Close from pid" % sid in agent.log_text(), 10,
         what="the agent to log the Close of %s" % sid)


# ------------------------------------------------------------------ recorded logins


def test_interactive_tty_session(pam_agent, sshd):
    """ssh -tt: a shell on a pty, commands typed in, terminal output recorded."""
    sshd.write_pam(pam_agent.socket)
    m = marker()
    secret = _world_file(sshd, "secret-%s\n" % m)
    before = set(pam_agent.recordings())
    typed = ("/bin/echo hello-%s\ncat %s\necho sid=$SESSREC_SID\nexit\n" % (m, secret)).encode()
    p = sshd.ssh(tty=True, input=typed)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, (p, sshd.log_tail())
    assert "hello-" + m in out and "secret-" + m in out, out
    sid, evs = _new_recording(pam_agent, before)
    assert "sid=" + sid in out, "SESSREC_SID is not the session's id in the shell: %r" % out
    check_common(evs, sid)
    _check_start(sshd, evs)

    # the login shell itself is inside: sshd's child exec'd it after the session opened
    shells = [c for c in commands(evs) if c["argv"] and c["argv"][0] == "-bash"]
    assert shells and shells[0]["return_code"] == 0, commands(evs)
    assert shells[0]["user_id"] == sshd.uid, shells[0]
    echo = commands(evs, argv0="/bin/echo")
    assert echo and echo[0]["argv"] == ["/bin/echo", "hello-" + m] and echo[0]["user_id"] == sshd.uid, echo
    cat = commands(evs, argv0="cat")
    assert cat and cat[0]["argv"] == ["cat", secret], cat
    assert any(e["path"] == secret for e in of(evs, "session.disk")), "cat's open of %s" % secret

    term = print_bytes(evs)
    for want in (b"hello-" + m.encode(), b"secret-" + m.encode(), b"sid=" + sid.encode()):
        assert want in term, "%r not in the recorded terminal output %r" % (want, term[-500:])
    for e in of(evs, "print"):
        assert e["tty"].startswith("/dev/pts/"), e
    assert end_of(evs)["exit_code"] == -1  # PAM does not see the shell's status
    _check_close(pam_agent, sid)


def test_command_without_tty(pam_agent, sshd):
    """ssh user@host CMD: no pty, so no terminal output; the commands are recorded."""
    sshd.write_pam(pam_agent.socket)
    m = marker()
    secret = _world_file(sshd, "secret-%s\n" % m)
    before = set(pam_agent.recordings())
    remote = "/bin/echo out-%s; cat %s; echo sid=$SESSREC_SID" % (m, secret)
    p = sshd.ssh(remote)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, (p, sshd.log_tail())
    assert out.split() == ["out-" + m, "secret-" + m, "sid=" + out.split()[-1][4:]], out
    sid, evs = _new_recording(pam_agent, before)
    assert out.split()[-1] == "sid=" + sid, out
    check_common(evs, sid)
    st = _check_start(sshd, evs)
    # sshd opens the PAM session right after authentication, before the client asks for a
    # command: the command is not known then, the exec events carry it
    assert st["initial_command"] == [], st
    sh = [c for c in commands(evs) if c["argv"][:2] == ["bash", "-c"]]
    assert sh and sh[0]["argv"] == ["bash", "-c", remote] and sh[0]["user_id"] == sshd.uid, commands(evs)
    assert commands(evs, argv0="/bin/echo")[0]["argv"] == ["/bin/echo", "out-" + m]
    assert commands(evs, argv0="cat")[0]["argv"] == ["cat", secret]
    assert any(e["path"] == secret for e in of(evs, "session.disk"))
    # the output went to a pipe to sshd, not to a terminal
    assert of(evs, "print") == [], of(evs, "print")[:3]
    _check_close(pam_agent, sid)


# ------------------------------------------------------------------ agent unreachable


def _stale_socket(sshd):
    """A socket file nobody listens on: an agent that crashed (ECONNREFUSED)."""
    path = os.path.join(sshd.dir, "stale-%s.sock" % uuid.uuid4().hex[:6])
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()
    return path


def _down(sshd, pam_agent, how):
    """(socket, extra options) for an agent that cannot record the session."""
    if how == "no-socket":  # stopped: the agent removes its socket
        return os.path.join(sshd.dir, "gone.sock"), ()
    if how == "stale-socket":
        return _stale_socket(sshd), ()
    assert how == "refused"  # up, but says no (an unknown kind)
    return pam_agent.socket, ("kind=bogus",)


@pytest.mark.parametrize("how", ["no-socket", "stale-socket", "refused"])
def test_fail_closed_refuses_login(pam_agent, sshd, how):
    sock, opts = _down(sshd, pam_agent, how)
    sshd.write_pam(sock, ("fail_closed", *opts))
    flag = sshd.flag()
    before = set(pam_agent.recordings())
    log_start = len(sshd.log_text())
    p = sshd.ssh("touch %s; echo ran" % flag)
    assert p.returncode == SSHD_NO_SESSION, (p, sshd.log_tail())
    assert b"ran" not in p.stdout.splitlines(), p
    # sshd prints what the module told it (pam_error) before it exits
    assert REFUSED_MSG.encode() in p.stdout + p.stderr, p
    assert not os.path.exists(flag), "the command ran"
    p = sshd.ssh(tty=True, input=b"touch %s\nexit\n" % flag.encode())
    assert p.returncode == SSHD_NO_SESSION, (p, sshd.log_tail())
    assert not os.path.exists(flag), "the shell ran"
    assert "pam_open_session()" in sshd.log_text()[log_start:], sshd.log_tail()
    assert set(pam_agent.recordings()) == before


def test_fail_closed_no_forwarding(pam_agent, sshd):
    """A connection whose session failed cannot forward ports either (sshd restricts it)."""
    sshd.write_pam(os.path.join(sshd.dir, "gone.sock"), ("fail_closed",))
    target = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    target.bind(("127.0.0.1", 0))
    target.listen(4)
    target.settimeout(0.5)
    lport = _free_port(23000, 23999)
    spec = "%d:127.0.0.1:%d" % (lport, target.getsockname()[1])
    log_start = len(sshd.log_text())
    p = sshd.spawn("-N", "-L", spec)
    try:
        conn = poll(lambda: _try_connect(lport), 20, what="ssh to listen on %d" % lport)
        conn.settimeout(5)
        assert conn.recv(16) == b"", "the forwarded connection stayed open"
        conn.close()
        with pytest.raises(socket.timeout):
            target.accept()
    finally:
        p.terminate()
        p.communicate(timeout=20)
        target.close()
    assert "refused local port forward" in sshd.log_text()[log_start:], sshd.log_tail()


def _try_connect(port):
    try:
        return socket.create_connection(("127.0.0.1", port), timeout=2)
    except OSError:
        return None


@pytest.mark.parametrize("how", ["no-socket", "stale-socket", "refused"])
def test_fail_open_lets_the_user_in(pam_agent, sshd, how):
    sock, opts = _down(sshd, pam_agent, how)
    sshd.write_pam(sock, opts)
    flag = sshd.flag()
    before = set(pam_agent.recordings())
    p = sshd.ssh("touch %s; echo ran; echo sid=$SESSREC_SID" % flag)
    assert p.returncode == 0, (p, sshd.log_tail())
    assert p.stdout.split() == [b"ran", b"sid="], p.stdout
    assert os.path.exists(flag)
    assert REFUSED_MSG.encode() not in p.stdout + p.stderr
    assert set(pam_agent.recordings()) == before


def test_agent_stopped(pam_agent, sshd):
    """The real thing: an agent that ran and stopped, fail_closed then the default."""
    pam_agent.stop()
    try:
        assert not os.path.exists(pam_agent.socket)
        flag = sshd.flag()
        sshd.write_pam(pam_agent.socket, ("fail_closed",))
        p = sshd.ssh("touch %s" % flag)
        assert p.returncode == SSHD_NO_SESSION and not os.path.exists(flag), (p, sshd.log_tail())
        sshd.write_pam(pam_agent.socket)
        p = sshd.ssh("touch %s" % flag)
        assert p.returncode == 0 and os.path.exists(flag), (p, sshd.log_tail())
    finally:
        pam_agent.start()


def test_unknown_option_refuses(pam_agent, sshd):
    """A misspelled option (fail_close) is not skipped: the session is refused, agent or not."""
    sshd.write_pam(pam_agent.socket, ("fail_close",))
    flag = sshd.flag()
    before = set(pam_agent.recordings())
    p = sshd.ssh("touch %s" % flag)
    assert p.returncode == SSHD_NO_SESSION and not os.path.exists(flag), (p, sshd.log_tail())
    assert set(pam_agent.recordings()) == before


# ------------------------------------------------------------------ Close on another connection

# Opens a session for itself (a launcher may place itself), prints the reply, hangs up, and
# stays in the session until its stdin closes.
HOLDER = r'''
import os, socket, sys
def v(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])
def f(num, val):
    if isinstance(val, int):
        return v(num << 3) + v(val)
    if isinstance(val, str):
        val = val.encode()
    return v(num << 3 | 2) + v(len(val)) + val
req = f(1, "holder") + f(2, "holder") + f(3, "local") + f(4, "holder") + f(8, os.getpid())
msg = f(1, req)
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall(len(msg).to_bytes(4, "big") + msg)
data = b""
while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "big"):
    c = s.recv(65536)
    if not c:
        break
    data += c
s.close()
print("reply", data.hex(), flush=True)
sys.stdin.read()
'''

AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]


def _close_frame(sid, exit_code):
    msg = _pb_field(2, _pb_field(1, sid) + _pb_field(2, exit_code))
    return len(msg).to_bytes(4, "big") + msg


def _send_close(agent, sid, exit_code, prefix=()):
    p = subprocess.run([*prefix, PY, "-c", RAW_CLIENT, agent.socket, _close_frame(sid, exit_code).hex()],
                       capture_output=True, text=True, timeout=30, cwd="/")
    line = [l for l in p.stdout.splitlines() if l.startswith("reply ")]
    assert p.returncode == 0 and line, p
    return parse_reply(line[0][6:])


class _Holder:
    def __init__(self, agent, prefix=()):
        self.proc = subprocess.Popen([*prefix, PY, "-c", HOLDER, agent.socket], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, cwd="/")
        line = self.proc.stdout.readline()
        assert line.startswith("reply "), line
        self.reply = parse_reply(line.split()[1])
        assert self.reply and self.reply["error"] == 0, self.reply
        self.sid = self.reply["sid"]

    def finish(self):
        self.proc.stdin.close()
        assert self.proc.wait(20) == 0


@pytest.mark.parametrize("opener", ["root", "nobody"])
def test_close_from_another_connection(pam_agent, opener):
    """Close on a new connection: accepted from root or the uid that opened; others are told ENOENT."""
    h = _Holder(pam_agent, AS_NOBODY if opener == "nobody" else ())
    try:
        if opener == "root":
            r = _send_close(pam_agent, h.sid, 7, AS_NOBODY)
            assert r["error"] == 2 and r["message"] == "no such session of yours", r
            r = _send_close(pam_agent, h.sid, 7)
        else:
            r = _send_close(pam_agent, h.sid, 7, AS_NOBODY)
        assert r["error"] == 0 and r["sid"] == h.sid, r
        # Close never ends a session that still runs
        time.sleep(0.5)
        assert os.path.isdir(os.path.join(CGROUP_PATH, ROOT_PATH, h.sid))
    finally:
        h.finish()
    evs = pam_agent.wait_recording(h.sid)
    check_common(evs, h.sid)
    assert end_of(evs)["exit_code"] == 7
    r = _send_close(pam_agent, str(uuid.uuid4()), 1)
    assert r["error"] == 2, r
