"""
The agent under valgrind (memcheck): a session with commands, file opens, a
connect and terminal output, then SIGTERM. No memory error, no leak, the
session recorded. tests/valgrind.supp holds the one known checker false
positive (valgrind's model of bpf(BPF_MAP_CREATE)).
"""
import os
import socket

import vgcheck
from conftest import Agent, load_events, of, print_bytes, run_session, verify, yaml_str

PIN_PATH = "/sys/fs/bpf/sessrec_vg"
ROOT_PATH = "sessrec_vg"


def test_agent_is_valgrind_clean(workroot):
    workdir = os.path.join(workroot, "valgrind")
    vlog = os.path.join(workdir, "valgrind.log")
    os.makedirs(workdir, exist_ok=True)
    prefix = vgcheck.prefix(vlog)
    er = {"pin_path": yaml_str(PIN_PATH), "root_path": yaml_str(ROOT_PATH)}
    agent = Agent(workdir, prefix=prefix, er=er)
    agent.start(timeout=180)
    try:
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(4)
        port = lsock.getsockname()[1]
        script = ("cat /etc/hostname >/dev/null; ls / >/dev/null; "
                  "head -c 300000 /dev/zero | tr '\\0' x; "
                  "exec 3<>/dev/tcp/127.0.0.1/%d" % port)
        r = run_session(agent, ["bash", "-c", script], timeout=180)
        lsock.close()
        assert r.rc == 0, r
    finally:
        rc = agent.stop(timeout=180)
    vgcheck.check(vlog, rc, "agent", agent.log_tail())
    rec = os.path.join(agent.rec_dir, r.sid + ".rec")
    v = verify(rec)
    assert v.returncode == 0, v.stderr
    evs = load_events(rec)
    cmds = [e["path"] for e in of(evs, "session.command")]
    assert any(c.endswith("/ls") for c in cmds), cmds
    assert any(e["path"] == "/etc/hostname" for e in of(evs, "session.disk"))
    assert any(e["dst_port"] == port for e in of(evs, "session.network"))
    assert print_bytes(evs).count(b"x") == 300000
