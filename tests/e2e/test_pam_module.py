"""pam_sessrec.so on its own: the real libpam (through ctypes, pam_start_confdir with a PAM
configuration directory of the test's own) loads the module, and a fake agent on a Unix socket
checks what it is sent and answers what the test wants: field by field requests, agent errors,
an agent that never answers, malformed replies, bad options.

The PAM side runs in a child python (SIGPIPE at its default action, as in a daemon that does
not ignore it), which prints what PAM returned as JSON. Nothing here touches /etc/pam.d.
See test_pam_ssh.py for the module inside the real sshd.
"""
import json
import os
import socket
import subprocess
import tempfile
import threading
import time
import uuid

import pytest

from conftest import BUILD, PY, _pb_field

PAM_SO = os.path.join(BUILD, "lib", "pam_sessrec.so")
PAM_SESSION_ERR = 14

# Opens and closes a PAM session for service argv[2] from config dir argv[1].
HARNESS = r'''
import ctypes, json, os, signal, sys, time
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
confdir, service, user, items, penv = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), json.loads(sys.argv[5])
pam = ctypes.CDLL("libpam.so.0")
class Msg(ctypes.Structure):
    _fields_ = [("msg_style", ctypes.c_int), ("msg", ctypes.c_char_p)]
class Resp(ctypes.Structure):
    _fields_ = [("resp", ctypes.c_char_p), ("resp_retcode", ctypes.c_int)]
CONV = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.POINTER(Msg)),
                        ctypes.POINTER(ctypes.POINTER(Resp)), ctypes.c_void_p)
said = []
def conv(n, msgs, resp, data):
    for i in range(n):
        said.append([msgs[i].contents.msg_style, msgs[i].contents.msg.decode()])
    resp[0] = None
    return 0
class Conv(ctypes.Structure):
    _fields_ = [("conv", CONV), ("appdata_ptr", ctypes.c_void_p)]
c = Conv(CONV(conv), None)
h = ctypes.c_void_p()
pam.pam_getenv.restype = ctypes.c_char_p
assert pam.pam_start_confdir(service.encode(), user.encode(), ctypes.byref(c), confdir.encode(), ctypes.byref(h)) == 0
for k, v in items.items():
    assert pam.pam_set_item(h, int(k), v.encode()) == 0
for v in penv:  # what modules before ours (pam_env) put in the PAM environment
    assert pam.pam_putenv(h, v.encode()) == 0
t = time.monotonic()
out = {"open": pam.pam_open_session(h, 0)}
out["open_s"] = time.monotonic() - t
sid = pam.pam_getenv(h, b"SESSREC_SID")
out["env_sid"] = sid.decode() if sid else None
out["close"] = pam.pam_close_session(h, 0)
out["said"] = said
out["pid"] = os.getpid()
pam.pam_end(h, 0)
print(json.dumps(out))
'''

PAM_TTY, PAM_RHOST, PAM_RUSER = 3, 4, 8


# ------------------------------------------------------------------ protobuf, by hand


def _varint(data, pos):
    shift = val = 0
    while True:
        c = data[pos]
        pos += 1
        val |= (c & 0x7F) << shift
        if not c & 0x80:
            return val, pos
        shift += 7


def _fields(data):
    """[(number, value)] of one message; length-delimited values as bytes."""
    out, pos = [], 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, pos = _varint(data, pos)
        elif wt == 2:
            n, pos = _varint(data, pos)
            v, pos = data[pos: pos + n], pos + n
        else:
            raise AssertionError("wire type %d" % wt)
        out.append((num, v))
    return out


def _int32(v):
    return v - (1 << 64) if v >= 1 << 63 else v


def decode_request(body):
    """sessrec.agent.Request -> {"open": {...}} or {"close": {...}}."""
    (num, msg), = _fields(body)
    f = _fields(msg)
    if num == 2:
        d = {"sid": "", "exit_code": 0}
        for n, v in f:
            if n == 1:
                d["sid"] = v.decode()
            elif n == 2:
                d["exit_code"] = _int32(v)
        return {"close": d}
    assert num == 1, num
    d = {"user": "", "login": "", "kind": "", "command": [], "labels": {}, "pid": 0, "tty": "", "remote_addr": "",
         "cols": 0, "rows": 0}
    names = {1: "user", 2: "login", 3: "kind", 9: "tty", 10: "remote_addr", 5: "cols", 6: "rows", 8: "pid"}
    for n, v in f:
        if n == 4:
            d["command"].append(v.decode())
        elif n == 7:
            kv = dict(_fields(v))
            d["labels"][kv.get(1, b"").decode()] = kv.get(2, b"").decode()
        else:
            d[names[n]] = v.decode() if isinstance(v, bytes) else v
    return {"open": d}


def reply_frame(error=0, message="", sid=""):
    body = b""
    if error:
        body += _pb_field(1, error)
    if message:
        body += _pb_field(2, message)
    if sid:
        body += _pb_field(3, sid)
    return len(body).to_bytes(4, "big") + body


# ------------------------------------------------------------------ fake agent


class FakeAgent:
    """Accepts connections; for each request calls answer(request) -> bytes to send (None: say nothing)."""

    def __init__(self, path, answer):
        self.path = path
        self.answer = answer
        self.requests = []
        self.connections = 0
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        self.stop_ev = threading.Event()
        self.held = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.sock.settimeout(0.1)
        while not self.stop_ev.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            c.settimeout(10)
            try:
                hdr = self._read(c, 4)
                body = self._read(c, int.from_bytes(hdr, "big"))
                req = decode_request(body)
                self.requests.append(req)
                out = self.answer(req)
                if out is None:
                    self.held.append(c)  # never answered: the module must give up by itself
                    continue
                c.sendall(out)
            except (OSError, AssertionError) as e:
                self.requests.append({"error": repr(e)})
            c.close()

    @staticmethod
    def _read(c, n):
        data = b""
        while len(data) < n:
            chunk = c.recv(n - len(data))
            if not chunk:
                raise OSError("short read")
            data += chunk
        return data

    def close(self):
        self.stop_ev.set()
        self.thread.join(5)
        self.sock.close()
        for c in self.held:
            c.close()


def ok_answer(sid):
    def answer(req):
        if "open" in req:
            return reply_frame(sid=sid, message="")
        return reply_frame(sid=sid)
    return answer


# ------------------------------------------------------------------ fixtures


@pytest.fixture
def pamdir():
    assert os.access(PAM_SO, os.R_OK), "%s is missing: run make first" % PAM_SO
    d = tempfile.mkdtemp(prefix="sessrec-pam-unit-", dir="/tmp")
    # a copy: a concurrent `make` may rewrite the original
    so = os.path.join(d, "pam_sessrec.so")
    with open(PAM_SO, "rb") as src, open(so, "wb") as dst:
        dst.write(src.read())
    yield d
    for root, dirs, files in os.walk(d, topdown=False):
        for n in files:
            os.unlink(os.path.join(root, n))
        for n in dirs:
            os.rmdir(os.path.join(root, n))
    os.rmdir(d)


def run_pam(pamdir, options, user="alice", items=None, env=None, pam_env=(), timeout=60):
    service = "srtest"
    conf = os.path.join(pamdir, "pam.d")
    os.makedirs(conf, exist_ok=True)
    with open(os.path.join(conf, service), "w") as f:
        f.write("session required %s %s\n" % (os.path.join(pamdir, "pam_sessrec.so"), " ".join(options)))
    e = {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}
    e.update(env or {})
    p = subprocess.run([PY, "-c", HARNESS, conf, service, user, json.dumps(items or {}), json.dumps(list(pam_env))], capture_output=True,
                       text=True, timeout=timeout, env=e)
    assert p.returncode == 0, "the PAM application died (%d): %s" % (p.returncode, p.stderr)
    return json.loads(p.stdout)


def agent_at(pamdir, answer):
    return FakeAgent(os.path.join(pamdir, "agent-%s.sock" % uuid.uuid4().hex[:6]), answer)


# ------------------------------------------------------------------ tests


def test_request_fields_and_close(pamdir):
    sid = str(uuid.uuid4())
    a = agent_at(pamdir, ok_answer(sid))
    mfd, sfd = os.openpty()
    try:
        tty = os.ttyname(sfd)
        out = run_pam(pamdir, ["socket=" + a.path, "label=team=ops", "[label=site:a/b=x y]"],
                      items={PAM_RHOST: "10.1.2.3", PAM_TTY: tty[len("/dev/"):]})
    finally:
        os.close(mfd)
        os.close(sfd)
        a.close()
    assert out["open"] == 0 and out["close"] == 0, out
    assert out["env_sid"] == sid
    assert len(a.requests) == 2, a.requests
    op = a.requests[0]["open"]
    assert op == {"user": "alice", "login": "alice", "kind": "ssh", "command": [], "pid": out["pid"],
                  "labels": {"team": "ops", "site:a/b": "x y"}, "tty": tty, "remote_addr": "10.1.2.3",
                  "cols": 0, "rows": 0}, op
    # a new connection for Close; exit status unknown to PAM
    assert a.requests[1] == {"close": {"sid": sid, "exit_code": -1}}
    assert a.connections == 2
    assert out["said"] == []


def test_ruser_kind_command_and_no_tty(pamdir):
    sid = str(uuid.uuid4())
    a = agent_at(pamdir, ok_answer(sid))
    try:
        # sshd's PAM_TTY before a pty exists is "ssh": not a device, not passed on
        out = run_pam(pamdir, ["socket=" + a.path, "kind=local"], user="root",
                      items={PAM_RUSER: "bob", PAM_TTY: "ssh"}, env={"SSH_ORIGINAL_COMMAND": "uptime -p"})
    finally:
        a.close()
    assert out["open"] == 0, out
    op = a.requests[0]["open"]
    assert (op["user"], op["login"], op["kind"], op["tty"], op["remote_addr"]) == ("bob", "root", "local", "", "")
    assert op["command"] == ["uptime -p"]


def test_command_not_from_pam_env(pamdir):
    """The PAM environment is the user's to write (pam_env user_readenv): not a source of facts."""
    sid = str(uuid.uuid4())
    a = agent_at(pamdir, ok_answer(sid))
    try:
        out = run_pam(pamdir, ["socket=" + a.path], pam_env=["SSH_ORIGINAL_COMMAND=true", "SESSREC_SID=forged"])
    finally:
        a.close()
    assert out["open"] == 0 and out["env_sid"] == sid, out
    assert a.requests[0]["open"]["command"] == []
    assert a.requests[1] == {"close": {"sid": sid, "exit_code": -1}}


@pytest.mark.parametrize("fail_closed", [False, True])
def test_agent_refuses(pamdir, fail_closed):
    a = agent_at(pamdir, lambda req: reply_frame(error=1, message="not allowed"))
    try:
        out = run_pam(pamdir, ["socket=" + a.path] + (["fail_closed"] if fail_closed else []),
                      pam_env=["SESSREC_SID=forged"])
    finally:
        a.close()
    assert out["open"] == (PAM_SESSION_ERR if fail_closed else 0), out
    assert out["env_sid"] is None, "a SESSREC_SID without a recording: %s" % out
    # (after a failed open, libpam may report close_session with the open's frozen result)
    assert fail_closed or out["close"] == 0, out
    assert len(a.requests) == 1, "a session that did not open is not closed: %s" % a.requests
    if fail_closed:
        assert [m for s, m in out["said"] if "cannot be recorded" in m], out["said"]
    else:
        assert out["said"] == []


@pytest.mark.parametrize("fail_closed", [False, True])
def test_agent_never_answers(pamdir, fail_closed):
    a = agent_at(pamdir, lambda req: None)
    try:
        out = run_pam(pamdir, ["socket=" + a.path, "timeout=1"] + (["fail_closed"] if fail_closed else []))
    finally:
        a.close()
    assert out["open"] == (PAM_SESSION_ERR if fail_closed else 0), out
    assert 0.9 <= out["open_s"] < 5, "gave up after %.2fs, timeout=1" % out["open_s"]


@pytest.mark.parametrize("reply", [b"\x00\x00\x00\x03\xff\xff\xff", b"\x00\x01\x00\x01", b"", reply_frame()])
def test_bad_replies(pamdir, reply):
    """Garbage, a length over 64 KiB, a hang-up, a reply without a sid: not recorded, and no crash."""
    a = agent_at(pamdir, lambda req: reply)
    try:
        out = run_pam(pamdir, ["socket=" + a.path])
        closed = run_pam(pamdir, ["socket=" + a.path, "fail_closed"])
    finally:
        a.close()
    assert out["open"] == 0 and out["env_sid"] is None, out
    assert closed["open"] == PAM_SESSION_ERR, closed


def test_no_agent(pamdir):
    path = os.path.join(pamdir, "nobody-here.sock")
    t = time.monotonic()
    assert run_pam(pamdir, ["socket=" + path])["open"] == 0
    assert run_pam(pamdir, ["socket=" + path, "fail_closed"])["open"] == PAM_SESSION_ERR
    assert time.monotonic() - t < 20


@pytest.mark.parametrize("option", ["fail_close", "socket=relative.sock", "socket=/" + "x" * 120, "kind=",
                                    "label=novalue", "label==v", "label=bad key=v", "[label=k=a\tb]",
                                    "timeout=0", "timeout=301", "timeout=5s", "label=k=1 label=k=2"])
def test_bad_options_refuse(pamdir, option):
    """A malformed or unknown option refuses the session, without asking the agent."""
    a = agent_at(pamdir, ok_answer(str(uuid.uuid4())))
    try:
        out = run_pam(pamdir, ["socket=" + a.path, *option.split(" ")])
    finally:
        a.close()
    assert out["open"] == PAM_SESSION_ERR, out
    assert a.connections == 0
