"""
The systemd units' restrictions, exercised without systemd (no systemd as PID 1
here, and none on most CI machines): the collector and the agent are started
under what the units say, applied by hand, and a recording of an unprivileged
user's session goes from the agent to the collector over mutual TLS.

Applied from the unit files:
  User=              the collector runs as nobody/nogroup (the unit's user
                     "sessrec" need not exist here)
  CapabilityBoundingSet=  PR_CAPBSET_DROP of every capability not listed
  NoNewPrivileges=   PR_SET_NO_NEW_PRIVS
  MemoryDenyWriteExecute=  PR_SET_MDWE (kernel 6.3+; systemd uses seccomp for it)
  UMask=             umask
  SystemCallFilter=  (collector) the unit's allow and deny lists, expanded with
                     `systemd-analyze syscall-filter`, loaded with libseccomp,
                     other syscalls failing with SystemCallErrorNumber=
Not applied: the filesystem sandbox (ProtectSystem=, ProtectHome=, PrivateTmp=,
PrivateDevices=, ...), RestrictAddressFamilies=, RestrictNamespaces= and the
other namespace- or cgroup-based options, which need systemd.

Needs root, BTF, a cgroup2 mount and the agent's BPF programs (like tests/e2e);
skips otherwise. The agent uses its own pin directory, so it runs beside others.
"""
import ctypes
import ctypes.util
import grp
import json
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request

import pytest

from conftest import AGENT, CLI, COLLECTOR, SYSTEMD, need_programs, read
from test_systemd import parse_unit

PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_MDWE = 65
PR_MDWE_REFUSE_EXEC_GAIN = 1
PIN_NAME = "sessrec-deploytest"

CAP_NAMES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]


def cgroup2_mount():
    for line in read("/proc/self/mountinfo").splitlines():
        left, _, right = line.partition(" - ")
        if right.startswith("cgroup2 "):
            return left.split()[4]
    return None


@pytest.fixture(scope="module", autouse=True)
def preconditions():
    need_programs()
    if os.geteuid() != 0:
        pytest.skip("needs root (the agent loads BPF programs)")
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        pytest.skip("the kernel has no BTF")
    if not cgroup2_mount():
        pytest.skip("no cgroup2 mount")
    if not ctypes.util.find_library("seccomp"):
        pytest.skip("libseccomp is not installed")
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed (Debian: systemd)")


def service(name):
    return parse_unit(read(os.path.join(SYSTEMD, name)))["Service"]


def last(s, key, default=None):
    return s[key][-1] if s.get(key) else default


def syscall_group(name, seen=None):
    """The syscalls of a systemd group (@name), nested groups expanded."""
    seen = set() if seen is None else seen
    if name in seen:
        return set()
    seen.add(name)
    out = subprocess.run(["systemd-analyze", "syscall-filter", name], capture_output=True, text=True,
                         check=True).stdout
    calls = set()
    for line in out.splitlines()[1:]:
        w = line.strip()
        if not w or w.startswith("#"):
            continue
        calls |= syscall_group(w, seen) if w.startswith("@") else {w}
    return calls


def unit_syscalls(s):
    """The allow list that SystemCallFilter= lines make (an allow list first, then ~ removals)."""
    allowed = None
    for line in s.get("SystemCallFilter", []):
        deny = line.startswith("~")
        names = set()
        for w in line.lstrip("~").split():
            names |= syscall_group(w) if w.startswith("@") else {w}
        if allowed is None:
            assert not deny, "the first SystemCallFilter= must be an allow list"
            allowed = names
        elif deny:
            allowed -= names
        else:
            allowed |= names
    return allowed


class Restrictions:
    """What a unit's [Service] applies to its process, prepared in the parent, applied in the child."""

    def __init__(self, unit, user=None):
        s = service(unit)
        self.libc = ctypes.CDLL(None, use_errno=True)
        keep = set(" ".join(s.get("CapabilityBoundingSet", [])).split())
        last_cap = int(read("/proc/sys/kernel/cap_last_cap"))
        self.drop = [i for i in range(last_cap + 1) if i >= len(CAP_NAMES) or CAP_NAMES[i] not in keep]
        self.nnp = last(s, "NoNewPrivileges") == "yes"
        self.mdwe = last(s, "MemoryDenyWriteExecute") == "yes"
        self.umask = int(last(s, "UMask", "0022"), 8)
        self.user = user
        self.seccomp_ctx = None
        calls = unit_syscalls(s)
        if calls is not None:
            self.sc = ctypes.CDLL(ctypes.util.find_library("seccomp"), use_errno=True)
            self.sc.seccomp_init.restype = ctypes.c_void_p
            self.sc.seccomp_init.argtypes = [ctypes.c_uint32]
            self.sc.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                                 ctypes.c_uint]
            self.sc.seccomp_load.argtypes = [ctypes.c_void_p]
            errno_name = last(s, "SystemCallErrorNumber", "EPERM")
            import errno as errno_mod

            err = getattr(errno_mod, errno_name)
            ctx = self.sc.seccomp_init(0x00050000 | (err & 0xffff))  # SCMP_ACT_ERRNO(err)
            assert ctx
            n = 0
            for name in sorted(calls):
                nr = self.sc.seccomp_syscall_resolve_name(name.encode())
                if nr < 0:
                    continue  # not a syscall of this architecture
                assert self.sc.seccomp_rule_add(ctx, 0x7FFF0000, nr, 0) == 0, name  # SCMP_ACT_ALLOW
                n += 1
            assert n > 100
            self.seccomp_ctx = ctx
            self.allowed = calls

    def __call__(self):
        """preexec_fn: runs in the child between fork and exec."""
        for cap in self.drop:
            self.libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
        if self.user:
            pw = pwd.getpwnam(self.user[0])
            os.setgroups([])
            os.setgid(grp.getgrnam(self.user[1]).gr_gid)
            os.setuid(pw.pw_uid)
        os.umask(self.umask)
        if self.nnp and self.libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            os._exit(121)
        if self.mdwe and self.libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
            os._exit(122)
        if self.seccomp_ctx and self.sc.seccomp_load(self.seccomp_ctx) != 0:
            os._exit(123)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def poll(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def mdwe_supported():
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(66, 0, 0, 0, 0) >= 0  # PR_GET_MDWE


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="sessrec-deploy-hard-", dir="/tmp")
    os.chmod(d, 0o755)  # nobody (collector, session) must reach it
    yield d
    if os.environ.get("SESSREC_DEPLOY_KEEP") != "1":
        shutil.rmtree(d, ignore_errors=True)


def test_restrictions_are_what_the_units_say():
    a = Restrictions("sessrec-agent.service")
    c = Restrictions("sessrec-collector.service", ("nobody", "nogroup"))
    assert a.nnp and a.mdwe and c.nnp and c.mdwe
    assert CAP_NAMES.index("CAP_BPF") not in a.drop and CAP_NAMES.index("CAP_NET_ADMIN") in a.drop
    assert len(c.drop) == int(read("/proc/sys/kernel/cap_last_cap")) + 1
    assert a.seccomp_ctx is None
    for call in ("bpf", "setuid", "mount", "chown"):
        assert call not in c.allowed, call
    for call in ("accept4", "epoll_wait", "openat", "fsync", "getrandom", "clone3", "sendfile"):
        assert call in c.allowed, call


def test_recording_goes_from_a_hardened_agent_to_a_hardened_collector(workdir):
    if not mdwe_supported():
        pytest.skip("the kernel has no PR_SET_MDWE (6.3+)")
    nobody = pwd.getpwnam("nobody")
    nogroup = grp.getgrnam("nogroup")
    tls = os.path.join(workdir, "tls")
    subprocess.run([COLLECTOR, "ca", "init", "--dir", tls, "--host", "localhost,127.0.0.1"],
                   check=True, capture_output=True)
    subprocess.run([COLLECTOR, "ca", "issue-node", "deploytest-node", "--dir", tls],
                   check=True, capture_output=True)
    # as installed for the unit: the server key readable by the collector's group only
    os.chown(os.path.join(tls, "server.key"), 0, nogroup.gr_gid)
    os.chmod(os.path.join(tls, "server.key"), 0o640)
    state = os.path.join(workdir, "state")
    os.mkdir(state, 0o755)
    os.chown(state, nobody.pw_uid, nogroup.gr_gid)
    port = free_port()
    ccfg = os.path.join(workdir, "collector.yaml")
    with open(ccfg, "w") as f:
        f.write('listen: "127.0.0.1:%d"\ndata_dir: "%s/collector"\ntls:\n'
                '  cert_file: "%s/server.crt"\n  key_file: "%s/server.key"\n'
                '  client_ca_file: "%s/ca.crt"\n' % (port, state, tls, tls, tls))
    os.chmod(ccfg, 0o644)
    clog = open(os.path.join(workdir, "collector.log"), "w")
    collector = subprocess.Popen([COLLECTOR, "-c", ccfg], stdout=clog, stderr=subprocess.STDOUT,
                                 preexec_fn=Restrictions("sessrec-collector.service",
                                                         ("nobody", "nogroup")))
    agent = alog = None
    alog_path = os.path.join(workdir, "agent.log")
    try:
        ctx = ssl.create_default_context(cafile=os.path.join(tls, "ca.crt"))

        def healthy():
            assert collector.poll() is None, read(clog.name)
            try:
                with urllib.request.urlopen("https://localhost:%d/healthz" % port, context=ctx,
                                            timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        poll(healthy, 30, "the collector's /healthz")
        st = os.stat(os.path.join(state, "collector"))
        assert st.st_uid == nobody.pw_uid and st.st_mode & 0o777 == 0o700

        # the agent, with the unit's capabilities only
        mport = free_port()
        acfg = os.path.join(workdir, "agent.yaml")
        with open(acfg, "w") as f:
            f.write(
                'node_name: deploytest-node\ndata_dir: "{d}/spool"\naudit_log: "{d}/log/audit.log"\n'
                'socket: "{d}/agent.sock"\nsocket_group: nogroup\nmetrics_listen: "127.0.0.1:{m}"\n'
                'part_interval: 1s\nenhanced_recording:\n  cgroup_path: "{cg}"\n'
                '  root_path: "{pin}"\n  pin_path: "/sys/fs/bpf/{pin}"\n'
                'collector:\n  url: "https://localhost:{p}"\n  ca_file: "{t}/ca.crt"\n'
                '  cert_file: "{t}/deploytest-node.crt"\n  key_file: "{t}/deploytest-node.key"\n'.format(
                    d=workdir, m=mport, cg=cgroup2_mount(), pin=PIN_NAME, p=port, t=tls))
        alog = open(alog_path, "w")
        agent = subprocess.Popen([AGENT, "-c", acfg], stdout=alog, stderr=subprocess.STDOUT,
                                 preexec_fn=Restrictions("sessrec-agent.service"))

        def agent_up():
            assert agent.poll() is None, read(alog_path)
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % mport, timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        poll(agent_up, 60, "the agent's /healthz")
        status = read("/proc/%d/status" % agent.pid)
        assert re.search(r"^NoNewPrivs:\s+1$", status, re.M)
        # the ring buffer thread ahead of recorded processes, the writer behind them
        nices = {}
        for tid in os.listdir("/proc/%d/task" % agent.pid):
            st = read("/proc/%d/task/%s/stat" % (agent.pid, tid))
            nices[read("/proc/%d/task/%s/comm" % (agent.pid, tid)).strip()] = \
                int(st[st.rindex(")") + 2:].split()[16])
        assert nices.get("sessrec-drain") == -10, nices
        assert nices.get("sessrec-writer") == 10, nices
        capeff = int(re.search(r"^CapEff:\s+(\w+)$", status, re.M).group(1), 16)
        assert capeff & (1 << CAP_NAMES.index("CAP_NET_ADMIN")) == 0
        assert capeff & (1 << CAP_NAMES.index("CAP_BPF"))

        # a session of an unprivileged user: a relative failed open (made absolute through
        # /proc/PID/cwd: CAP_SYS_PTRACE), a connect, terminal output
        sess = os.path.join(workdir, "session.py")
        with open(sess, "w") as f:
            f.write("import os, socket, time\nos.chdir('/tmp')\n"
                    "try:\n    open('sessrec-deploytest-missing')\nexcept OSError:\n    pass\n"
                    "s = socket.socket(); s.settimeout(0.5); s.connect_ex(('127.0.0.1', %d))\n"
                    "time.sleep(0.5)\nprint('hello from a hardened session')\n" % port)
        os.chmod(sess, 0o644)
        cli = os.path.join(workdir, "sessrec")
        shutil.copy(CLI, cli)
        os.chmod(cli, 0o755)

        def as_nobody():
            os.setgroups([])
            os.setgid(nogroup.gr_gid)
            os.setuid(nobody.pw_uid)

        r = subprocess.run([cli, "run", "--agent-socket", os.path.join(workdir, "agent.sock"), "--",
                            "/usr/bin/python3", sess], capture_output=True, text=True, timeout=60,
                           preexec_fn=as_nobody, cwd="/tmp")
        assert r.returncode == 0, r.stderr + read(alog_path)
        assert "hello from a hardened session" in r.stdout
        sid = re.search(r"^session (\S+)$", r.stderr, re.M).group(1)

        events = os.path.join(state, "collector", "log", "events.log")

        def uploaded():
            assert collector.poll() is None, read(clog.name)
            if not os.path.exists(events):
                return None
            for line in read(events).splitlines():
                ev = json.loads(line)
                if ev.get("event") == "session.upload" and ev.get("sid") == sid:
                    return ev
            return None

        poll(uploaded, 60, "session.upload of %s at the collector" % sid)
        audit = [json.loads(ln) for ln in read(os.path.join(workdir, "log", "audit.log")).splitlines()]
        disk = [e for e in audit if e.get("sid") == sid and e["event"] == "session.disk"
                and e["path"].endswith("sessrec-deploytest-missing")]
        assert disk and disk[0]["path"] == "/tmp/sessrec-deploytest-missing", disk
        assert disk[0]["login"] == "nobody"
        net = [e for e in audit if e.get("sid") == sid and e["event"] == "session.network"]
        assert any(e.get("dst_port") == port for e in net), net
        central = [json.loads(ln) for ln in read(events).splitlines()]
        assert any(e.get("sid") == sid and e.get("event") == "session.command" for e in central)

        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=30) == 0, read(alog_path)
        agent = None
        collector.send_signal(signal.SIGTERM)
        assert collector.wait(timeout=90) == 0, read(clog.name)
        for path in (alog_path, clog.name):
            text = read(path)
            assert "Operation not permitted" not in text and " error: " not in text, text
    finally:
        for p in (agent, collector):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        clog.close()
        if alog is not None:
            alog.close()
        # what a stopped agent leaves: its empty pin directory and session cgroup root
        for d in ("/sys/fs/bpf/" + PIN_NAME, os.path.join(cgroup2_mount(), PIN_NAME)):
            try:
                os.rmdir(d)
            except OSError:
                pass
        if agent is None or agent.poll() is not None:
            try:
                os.unlink("/run/sessrec-agent-%s.lock" % PIN_NAME)
            except OSError:
                pass
