"""Connections (session.network, T4002I): TCP and UDP, IPv4 and IPv6, success and refusal.

The listeners run in the test process, outside any session.
"""
import socket

import pytest

from conftest import PY, check_common, commands, marker, of, run_session

FAMILY = {4: (socket.AF_INET, "127.0.0.1"), 6: (socket.AF_INET6, "::1")}


def net(evs, dst_port=None):
    return [e for e in of(evs, "session.network") if dst_port is None or e["dst_port"] == dst_port]


def only(lst, what):
    assert len(lst) == 1, "expected exactly one %s, got %d: %s" % (what, len(lst), lst)
    return lst[0]


def check_audit(agent, sid, e):
    au = [a for a in agent.audit(sid) if a["uid"] == e["uid"]]
    assert len(au) == 1, "network event not in the audit log"
    a = au[0]
    assert a["code"] == "T4002I"
    for k in ("pid", "cgroup_id", "program", "src_addr", "dst_addr", "dst_port", "version", "operation",
              "action", "src_port", "protocol", "return_code"):
        assert a[k] == e[k], (k, a[k], e[k])


@pytest.mark.parametrize("version", [4, 6])
def test_tcp_connect(agent, version):
    fam, addr = FAMILY[version]
    m = marker()
    with socket.socket(fam, socket.SOCK_STREAM) as lst:
        lst.bind((addr, 0))
        lst.listen(4)
        lst.settimeout(10)
        port = lst.getsockname()[1]
        host = addr
        r = run_session(agent, ["bash", "-c", "exec 3<>/dev/tcp/%s/%d; echo %s >&3; exec 3>&-" % (host, port, m)])
        assert r.rc == 0, r
        conn, peer = lst.accept()
        with conn:
            conn.settimeout(5)
            assert conn.recv(100).strip() == m.encode()
    evs = agent.wait_recording(r.sid)
    check_common(evs, r.sid)
    bash = commands(evs)[0]
    e = only(net(evs, port), "connect to port %d" % port)
    assert e["version"] == version, e
    assert e["protocol"] == "tcp", e
    assert e["dst_addr"] == addr, e
    assert e["dst_port"] == port
    assert e["return_code"] == 0, e
    assert e["operation"] == 0 and e["action"] == 0, e
    assert e["pid"] == bash["pid"] and e["program"] == "bash", e
    assert e["user_id"] == 0
    assert e["cgroup_id"] == bash["cgroup_id"]
    # the source the listener saw
    assert e["src_port"] == peer[1], "src_port %s, the listener saw %s" % (e["src_port"], peer[1])
    assert e["src_addr"] == peer[0], "src_addr %r, the listener saw %r" % (e["src_addr"], peer[0])
    check_audit(agent, r.sid, e)


@pytest.mark.parametrize("version", [4, 6])
def test_udp_connect(agent, version):
    fam, addr = FAMILY[version]
    m = marker()
    with socket.socket(fam, socket.SOCK_DGRAM) as srv:
        srv.bind((addr, 0))
        srv.settimeout(10)
        port = srv.getsockname()[1]
        code = (
            "import socket\n"
            "s = socket.socket(%d, socket.SOCK_DGRAM)\n"
            "s.connect((%r, %d))\n"
            "s.send(b%r)\n" % (fam, addr, port, m)
        )
        r = run_session(agent, [PY, "-c", code])
        assert r.rc == 0, r
        data, peer = srv.recvfrom(100)
        assert data == m.encode()
    evs = agent.wait_recording(r.sid)
    check_common(evs, r.sid)
    py = commands(evs)[0]
    e = only(net(evs, port), "connect to port %d" % port)
    assert e["version"] == version, e
    assert e["protocol"] == "udp", e
    assert e["dst_addr"] == addr and e["dst_port"] == port, e
    assert e["return_code"] == 0, e
    assert e["operation"] == 0 and e["action"] == 0
    assert e["pid"] == py["pid"] and e["program"] == "python3", e
    assert e["src_port"] == peer[1], "src_port %s, the server saw %s" % (e["src_port"], peer[1])
    assert e["src_addr"] == peer[0], "src_addr %r, the server saw %r" % (e["src_addr"], peer[0])
    check_audit(agent, r.sid, e)


@pytest.mark.parametrize("version", [4, 6])
def test_tcp_connect_refused(agent, version):
    fam, addr = FAMILY[version]
    # bound but not listening: connections to it are refused, and no one else gets the port
    with socket.socket(fam, socket.SOCK_STREAM) as closed:
        closed.bind((addr, 0))
        port = closed.getsockname()[1]
        r = run_session(agent, ["bash", "-c", "exec 3<>/dev/tcp/%s/%d; echo rc=$?" % (addr, port)])
    assert r.rc != 0 or b"refused" in r.out.lower(), r
    evs = agent.wait_recording(r.sid)
    check_common(evs, r.sid)
    e = only(net(evs, port), "connect to port %d" % port)
    assert e["return_code"] == -111, "ECONNREFUSED must be -111: %s" % e
    assert e["version"] == version and e["protocol"] == "tcp", e
    assert e["dst_addr"] == addr and e["dst_port"] == port, e
    assert e["program"] == "bash" and e["pid"] == commands(evs)[0]["pid"], e
    assert e["operation"] == 0 and e["action"] == 0
    check_audit(agent, r.sid, e)


def test_unix_connect_is_not_network(agent, tmpdir_world):
    path = tmpdir_world + "/unix-" + marker()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as u:
        u.bind(path)
        u.listen(1)
        code = "import socket; s = socket.socket(socket.AF_UNIX); s.connect(%r); print('ok')" % path
        r = run_session(agent, [PY, "-c", code])
    assert r.rc == 0 and b"ok" in r.out, r
    evs = agent.wait_recording(r.sid)
    assert not net(evs), "an AF_UNIX connect is not a network event: %s" % net(evs)
