"""
Recordings in Python, written from docs/recording-format.md and proto/sessrec.proto alone
(standard library only): a writer that makes sound recordings for any session id, and a
splitter that cuts a recording file into its parts.

The collector tests use it to craft uploads (parts of arbitrary sessions, parts that do not
chain, bodies that are too big), and bench/collector_bench.py to generate large recordings
fast. Every recording made here is also read back by the C reader (`sessrec verify`), which
checks this module against the document.
"""
import hashlib
import os
import struct
import uuid
import zlib

HDR = struct.Struct(">8sHHIIIIQQ32s32s4s")
HDR_SIZE = 112
MAGIC = b"SRECPRT1"
FLAG_FINAL = 0x1
assert HDR.size == HDR_SIZE


# ------------------------------------------------------------------ protobuf, by hand


def _varint(n):
    n &= (1 << 64) - 1  # negative int32/int64: two's complement on 64 bits, 10 bytes
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(num, wire):
    return _varint(num << 3 | wire)


def pb_int(num, v):
    """A varint field (uint32/64, int32/64, bool); proto3 leaves zero out."""
    if not v:
        return b""
    return _key(num, 0) + _varint(int(v))


def pb_bytes(num, b):
    if isinstance(b, str):
        b = b.encode()
    if not b:
        return b""
    return _key(num, 2) + _varint(len(b)) + b


def pb_msg(num, body):
    """An embedded message (present even when empty)."""
    return _key(num, 2) + _varint(len(body)) + body


def session_start(sid, user="alice", login="root", kind="local", node="bench-node",
                  server_id=None, command=("bash",), cols=80, rows=24, labels=None, tty="/dev/pts/0"):
    b = pb_bytes(1, sid) + pb_bytes(2, server_id or str(uuid.uuid5(uuid.NAMESPACE_DNS, node)))
    b += pb_bytes(3, node) + pb_bytes(4, login) + pb_bytes(5, user) + pb_bytes(6, kind)
    for c in command:
        b += pb_bytes(7, c)
    b += pb_int(8, cols) + pb_int(9, rows)
    for k, v in (labels or {}).items():
        b += pb_msg(10, pb_bytes(1, k) + pb_bytes(2, v))
    b += pb_bytes(12, tty)
    return pb_msg(10, b)


def session_end(start_ns, stop_ns, exit_code=0, reason="exited", command=("bash",)):
    b = pb_int(1, start_ns) + pb_int(2, stop_ns) + pb_int(4, 1)
    for c in command:
        b += pb_bytes(5, c)
    b += pb_int(6, exit_code) + pb_bytes(7, reason)
    return pb_msg(11, b)


def command(pid, path, argv, ppid=1, return_code=0):
    b = pb_int(1, pid) + pb_int(2, ppid) + pb_bytes(6, os.path.basename(path)[:15]) + pb_bytes(7, path)
    for a in argv:
        b += pb_bytes(8, a)
    b += pb_int(10, return_code)
    return pb_msg(12, b)


def print_(ci, ms, offset, data, pid=1, tty="/dev/pts/0"):
    b = pb_int(1, ci) + pb_int(2, ms) + pb_int(3, offset) + pb_int(4, len(data)) + pb_bytes(5, data)
    b += pb_int(6, pid) + pb_bytes(7, tty)
    return pb_msg(15, b)


def event(ei, time_ns, body, uid=None):
    """A packed sessrec.Event: ei (1), time_ns (2), uid (3), then its body field."""
    return pb_int(1, ei) + pb_int(2, time_ns) + pb_bytes(3, uid or str(uuid.uuid4())) + body


# ------------------------------------------------------------------ parts


def chain_seed(sid):
    return hashlib.sha256(sid.encode()).digest()


def make_part(index, records, prev_hash, first_ei, final=False, level=6, body=None):
    """One part (header + gzip body) holding the packed events `records`.

    body: a gzip body made before for the same records (make_body), to save the compression.
    """
    raw_len = sum(4 + len(r) for r in records)
    if body is None:
        body = make_body(records, level)
    n = len(records)
    hdr = HDR.pack(
        MAGIC, 1, FLAG_FINAL if final else 0, index, n, raw_len if n else 0, len(body),
        first_ei if n else 0, first_ei + n - 1 if n else 0, prev_hash,
        hashlib.sha256(body).digest(), bytes(4),
    )
    return hdr + body


def make_body(records, level=6):
    raw = b"".join(struct.pack(">I", len(r)) + r for r in records)
    z = zlib.compressobj(level, zlib.DEFLATED, 16 + 15)  # gzip wrapper, MTIME 0
    return z.compress(raw) + z.flush()


class Recording:
    """Builds a sound recording of session `sid`, part by part.

    r = Recording(sid); r.start(...); r.add(print_(...)); r.cut(); ...; r.finish()
    r.parts: the parts' bytes, in order.
    """

    def __init__(self, sid, t0_ns=None, level=6):
        self.sid = sid
        self.t0 = t0_ns or 1_795_000_000 * 10**9
        self.level = level
        self.ei = 0
        self.pending = []
        self.pending_first = 0
        self.parts = []
        self.prev = chain_seed(sid)
        self.command = ("bash",)
        self.ci = 0
        self.offset = 0

    def _t(self, ms):
        return self.t0 + ms * 1_000_000

    def add(self, body, ms=0):
        if not self.pending:
            self.pending_first = self.ei
        self.pending.append(event(self.ei, self._t(ms), body))
        self.ei += 1

    def start(self, **kw):
        self.command = tuple(kw.get("command", ("bash",)))
        self.add(session_start(self.sid, **kw))

    def output(self, data, ms=0):
        self.add(print_(self.ci, ms, self.offset, data), ms)
        self.ci += 1
        self.offset += len(data)

    def cut(self, final=False):
        """Close the pending events into a part (an empty one only as the final part)."""
        if not self.pending and not final:
            return None
        p = make_part(len(self.parts), self.pending, self.prev, self.pending_first, final, self.level)
        self.parts.append(p)
        self.prev = hashlib.sha256(p).digest()
        self.pending = []
        return p

    def finish(self, exit_code=0, ms=1000, reason="exited"):
        self.add(session_end(self.t0, self._t(ms), exit_code, reason, self.command), ms)
        self.cut(final=True)
        return self.parts

    def data(self):
        return b"".join(self.parts)


def simple_recording(sid, outputs=(b"hello\n",), parts=1, **start):
    """A finished recording: session.start, the outputs spread over `parts` parts, session.end."""
    r = Recording(sid)
    r.start(**start)
    outputs = list(outputs)
    per = max(1, -(-len(outputs) // parts))
    for i, o in enumerate(outputs):
        r.output(o, ms=10 * (i + 1))
        if (i + 1) % per == 0 and len(r.parts) < parts - 1:
            r.cut()
    r.finish(ms=10 * (len(outputs) + 1))
    return r


# ------------------------------------------------------------------ reading


def split_parts(data):
    """The parts of a recording file (or of its sound prefix): [(header dict, part bytes)]."""
    out = []
    off = 0
    while off + HDR_SIZE <= len(data):
        f = HDR.unpack_from(data, off)
        if f[0] != MAGIC:
            break
        h = dict(zip(("magic", "version", "flags", "index", "events", "raw_size", "body_size",
                      "first_ei", "last_ei", "prev_hash", "body_hash", "reserved"), f))
        end = off + HDR_SIZE + h["body_size"]
        if end > len(data):
            break  # cut short (a crash while writing)
        out.append((h, data[off:end]))
        off = end
    return out


def part_hashes(data):
    return [hashlib.sha256(p).hexdigest() for _, p in split_parts(data)]
