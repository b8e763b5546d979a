#!/usr/bin/python3
"""Host-side helpers of the kernel matrix (tests/kmatrix/run.sh).

  kmatrix.py extract-vmlinux VMLINUZ OUT   uncompressed ELF vmlinux out of a bzImage
  kmatrix.py initramfs OUT ROOTDIR         newc cpio of ROOTDIR (+ /dev/console), no root needed
  kmatrix.py check LOG [LABEL [DETAIL]]    judge one guest's serial console log
  kmatrix.py self-test                     prove that `check` passes a good log and fails bad ones

Only the Python standard library; zstd and lz4 payloads go through the CLI tools.
"""

import base64
import bz2
import json
import lzma
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))

# --------------------------------------------------------------------------- vmlinux


def _is_elf(b):
    return len(b) > 64 and b[:4] == b"\x7fELF"


def _decompress(fmt, data):
    """Decompress one stream that may be followed by garbage; None when it fails."""
    try:
        if fmt == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)
        if fmt == "xz":
            return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data)
        if fmt == "lzma":
            return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(data)
        if fmt == "bzip2":
            return bz2.BZ2Decompressor().decompress(data)
        if fmt in ("zstd", "lz4"):
            tool = {"zstd": ["zstd", "-dcq"], "lz4": ["lz4", "-dcq"]}[fmt]
            if not shutil.which(tool[0]):
                return None
            # Like the kernel's scripts/extract-vmlinux: trailing bytes make the tool
            # complain after it has written the whole kernel, so ignore its status.
            p = subprocess.run(tool, input=data, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, check=False)
            return p.stdout
    except (zlib.error, lzma.LZMAError, OSError, EOFError, ValueError):
        return None
    return None


MAGICS = [
    ("gzip", b"\x1f\x8b\x08"),
    ("xz", b"\xfd7zXZ\x00"),
    ("zstd", b"\x28\xb5\x2f\xfd"),
    ("lz4", b"\x02\x21\x4c\x18"),
    ("bzip2", b"BZh"),
    ("lzma", b"\x5d\x00\x00"),
]


def extract_vmlinux(src, out):
    img = open(src, "rb").read()
    if _is_elf(img):
        data = img
    else:
        data = None
        cands = []
        # bzImage boot protocol >= 2.08: payload_offset/length at 0x248/0x24c, relative
        # to the protected-mode code, which starts after (setup_sects + 1) sectors.
        if len(img) > 0x250 and img[0x202:0x206] == b"HdrS":
            setup_sects = img[0x1f1] or 4
            off, length = struct.unpack_from("<II", img, 0x248)
            base = (setup_sects + 1) * 512 + off
            if length and base + length <= len(img):
                cands.append(img[base:base + length])
        for payload in cands:
            for fmt, magic in MAGICS:
                if payload.startswith(magic):
                    d = _decompress(fmt, payload)
                    if d and _is_elf(d):
                        data = d
                        break
            if data:
                break
        if data is None:  # scan, like scripts/extract-vmlinux
            for fmt, magic in MAGICS:
                pos = img.find(magic)
                tries = 0
                while pos >= 0 and tries < 64:
                    d = _decompress(fmt, img[pos:])
                    if d and _is_elf(d):
                        data = d
                        break
                    pos = img.find(magic, pos + 1)
                    tries += 1
                if data:
                    break
    if data is None:
        sys.exit("kmatrix: %s: no compressed ELF kernel found" % src)
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, out)
    # qemu can only direct-boot an ELF vmlinux that carries the PVH entry note.
    if not has_pvh_note(data):
        os.unlink(out)
        sys.exit("kmatrix: %s: the kernel has no PVH entry note (CONFIG_PVH)" % src)


def has_pvh_note(elf):
    """True when a PT_NOTE segment holds the Xen note XEN_ELFNOTE_PHYS32_ENTRY (18)."""
    if elf[4] != 2 or elf[5] != 1:  # ELFCLASS64, little endian
        return False
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", elf,
                                                                 phoff + i * phentsize)
        if p_type != 4:  # PT_NOTE
            continue
        pos, end = p_offset, p_offset + p_filesz
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, pos)
            name = elf[pos + 12:pos + 12 + namesz].rstrip(b"\x00")
            if name == b"Xen" and ntype == 18:
                return True
            pos += 12 + ((namesz + 3) & ~3) + ((descsz + 3) & ~3)
    return False


# --------------------------------------------------------------------------- initramfs


def _cpio_entry(out, ino, name, mode, data=b"", rdev=(0, 0), mtime=0):
    name_b = name.encode() + b"\x00"
    hdr = "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X" % (
        ino, mode, 0, 0, 1, mtime, len(data), 0, 0, rdev[0], rdev[1], len(name_b), 0)
    out.write(hdr.encode())
    out.write(name_b)
    out.write(b"\x00" * ((4 - (110 + len(name_b)) % 4) % 4))
    out.write(data)
    out.write(b"\x00" * ((4 - len(data) % 4) % 4))


def make_initramfs(out_path, root):
    """A newc archive of root plus /dev/console (so /init has a console from its first
    instruction), written without root privileges, in a stable order."""
    tmp = out_path + ".tmp"
    ino = 1
    with open(tmp, "wb") as out:
        have_dev = False
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, root)
            for name in sorted(dirnames) + sorted(filenames):
                full = os.path.join(dirpath, name)
                rel = os.path.normpath(os.path.join(rel_dir, name))
                st = os.lstat(full)
                if stat.S_ISLNK(st.st_mode):
                    _cpio_entry(out, ino, rel, stat.S_IFLNK | 0o777,
                                os.readlink(full).encode())
                elif stat.S_ISDIR(st.st_mode):
                    _cpio_entry(out, ino, rel, stat.S_IFDIR | 0o755)
                    if rel == "dev":
                        have_dev = True
                elif stat.S_ISREG(st.st_mode):
                    with open(full, "rb") as f:
                        _cpio_entry(out, ino, rel, stat.S_IFREG | (st.st_mode & 0o777),
                                    f.read())
                ino += 1
        if not have_dev:
            _cpio_entry(out, ino, "dev", stat.S_IFDIR | 0o755)
            ino += 1
        _cpio_entry(out, ino, "dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))
        _cpio_entry(out, ino + 1, "TRAILER!!!", 0)
    os.replace(tmp, out_path)


# --------------------------------------------------------------------------- check

SCRIPT_ARGV = ["-c", "cat /etc/hostname; /bin/nonexistent; echo kmatrix-out; exit 3"]


def _section(lines, name):
    """The lines between KMATRIX-<name>-BEGIN and KMATRIX-<name>-END; None if absent."""
    begin, end = "KMATRIX-%s-BEGIN" % name, "KMATRIX-%s-END" % name
    out, inside = [], False
    for ln in lines:
        if ln == begin:
            inside, out = True, []
            continue
        if inside and ln == end:
            return out
        if inside:
            out.append(ln)
    return None


def _value(lines, key):
    """N from the last line 'KMATRIX-<key> rc=N'; None if absent."""
    val = None
    for ln in lines:
        m = re.fullmatch(r"KMATRIX-%s rc=(-?\d+)" % re.escape(key), ln)
        if m:
            val = int(m.group(1))
    return val


def _print_data(ev):
    if isinstance(ev.get("data_b64"), str):
        try:
            return base64.b64decode(ev["data_b64"]).decode("utf-8", "replace")
        except ValueError:
            pass
    return ev.get("data") if isinstance(ev.get("data"), str) else ""


def check_console(text):
    """Returns (ok, problems, info). info: kernel, bpf log lines, agent problems."""
    lines = [ln.rstrip("\r") for ln in text.replace("\r\n", "\n").split("\n")]
    problems = []
    info = {"kernel": None, "bpf": [], "agent_errors": [], "events": 0}

    for ln in lines:
        # search, not match: the firmware's last line has no newline before it
        m = re.search(r"KMATRIX-BEGIN kernel=(\S+)$", ln)
        if m:
            info["kernel"] = m.group(1)
    if info["kernel"] is None:
        problems.append("the guest never started /init (no KMATRIX-BEGIN on the console)")
        return False, problems, info

    agent_log = _section(lines, "AGENT-LOG")
    if agent_log is None:
        problems.append("no agent log on the console")
        agent_log = []
    verifier = None
    for ln in agent_log:
        if re.search(r" sessrec-agent \w+: bpf: ", ln) or "programs, sessions under" in ln:
            info["bpf"].append(ln)
        # libbpf prints a rejected program's verifier log between these two lines; its
        # first line and last lines say what the verifier refused.
        if ln.endswith("-- BEGIN PROG LOAD LOG --"):
            verifier = []
            info["agent_errors"].append(ln)
            continue
        if verifier is not None:
            if ln.startswith("-- END PROG LOAD LOG --"):
                tail = verifier[-4:] if len(verifier) > 5 else verifier[1:]
                info["agent_errors"].extend(["  | " + verifier[0]] if verifier else [])
                if len(verifier) > 5:
                    info["agent_errors"].append("  | ... (%d lines)" % (len(verifier) - 5))
                info["agent_errors"].extend("  | " + v for v in tail)
                info["agent_errors"].append(ln)
                verifier = None
            else:
                verifier.append(ln)
            continue
        if re.search(r" sessrec-agent (error|warn): ", ln):
            info["agent_errors"].append(ln)

    started = _value(lines, "AGENT-STARTED")
    agent_rc = _value(lines, "AGENT-EXIT")
    if started != 0:
        if started is None:
            problems.append("no KMATRIX-AGENT-STARTED line")
        elif started == 2:
            m = re.search(r"KMATRIX-AGENT-STARTUP from=([\d.]+) to=([\d.]+)", "\n".join(lines))
            problems.append(
                "the agent was still starting (loading its BPF programs?) after %s s; the "
                "verifier at its 1M-instruction limit takes about a minute under emulation: "
                "KMATRIX_AGENT_WAIT=150 lets it finish and shows its log" %
                ("%.0f" % (float(m.group(2)) - float(m.group(1))) if m else "the wait"))
        else:
            problems.append("the agent exited (status %s) before its socket appeared" %
                            agent_rc)
        # Everything after this depends on the agent: its log says why.
        return False, problems, info
    run_rc = _value(lines, "RUN")
    if run_rc != 3:
        problems.append("sessrec run exited %s, want 3 (the command's status)" % run_rc)
    if _value(lines, "SESSION-ENDED") != 0:
        problems.append("the agent did not finish the session within 10 s of its end "
                        "(no \"session SID ended\" in its log)")
    if agent_rc is not None and agent_rc > 128:
        problems.append("the agent was killed by signal %d on SIGTERM instead of stopping "
                        "cleanly (exit status %d, want 0)" % (agent_rc - 128, agent_rc))
    elif agent_rc != 0:
        problems.append("the agent exited %s after SIGTERM, want 0" % agent_rc)
    verify_rc = _value(lines, "VERIFY")
    if verify_rc != 0:
        problems.append("sessrec verify exited %s, want 0" % verify_rc)
    events_rc = _value(lines, "EVENTS")
    if events_rc != 0:
        problems.append("sessrec events exited %s, want 0" % events_rc)
    if _value(lines, "RESULT") is None:
        problems.append("the guest did not finish (no KMATRIX-RESULT: hang, panic or timeout)")

    raw = _section(lines, "EVENTS")
    events = []
    if raw is None:
        problems.append("no recorded events on the console")
        raw = []
    for ln in raw:
        if not ln.strip():
            continue
        try:
            ev = json.loads(ln)
        except ValueError:
            problems.append("unparsable event line: %.120r" % ln)
            continue
        if isinstance(ev, dict):
            events.append(ev)
    info["events"] = len(events)

    def find(pred):
        return [e for e in events if pred(e)]

    if not find(lambda e: e.get("event") == "session.start"):
        problems.append("no session.start event")
    # `events --json` prints every field, argv[0] included; the audit form leaves it out.
    if not find(lambda e: e.get("event") == "session.command" and e.get("path") == "/bin/sh"
                and e.get("argv") in (SCRIPT_ARGV, ["/bin/sh"] + SCRIPT_ARGV)
                and e.get("return_code") == 0):
        problems.append("no successful session.command for /bin/sh with argv %r" % SCRIPT_ARGV)
    if not find(lambda e: e.get("event") == "session.command"
                and e.get("path") == "/bin/nonexistent" and e.get("return_code") == -2):
        problems.append("no failed session.command for /bin/nonexistent with return_code -2")
    if not find(lambda e: e.get("event") == "session.disk" and e.get("path") == "/etc/hostname"
                and isinstance(e.get("return_code"), int) and e["return_code"] >= 0):
        problems.append("no session.disk for /etc/hostname with return_code >= 0")
    if not find(lambda e: e.get("event") == "print" and "kmatrix-out" in _print_data(e)):
        problems.append('no print event whose data contains "kmatrix-out"')
    if not find(lambda e: e.get("event") == "session.end" and e.get("exit_code") == 3):
        problems.append("no session.end with exit_code 3")
    return not problems, problems, info


def cmd_check(path, label, extra):
    with open(path, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    ok, problems, info = check_console(text)
    print("%s %s: kernel %s%s, %d events" % ("PASS" if ok else "FAIL", label,
                                            info["kernel"] or "?",
                                            " (%s)" % extra if extra else "", info["events"]))
    for ln in info["bpf"]:
        print("    agent: %s" % ln)
    for p in problems:
        print("    problem: %s" % p)
    if not ok:
        for ln in info["agent_errors"][:60]:
            print("    agent: %s" % ln)
        if len(info["agent_errors"]) > 60:
            print("    agent: ... %d more lines in %s" % (len(info["agent_errors"]) - 60, path))
    return 0 if ok else 1


# --------------------------------------------------------------------------- self-test


def cmd_self_test():
    good_path = os.path.join(HERE, "testdata", "good-console.log")
    with open(good_path, "rb") as f:
        good = f.read().decode("utf-8", "replace")

    def sub(pattern, repl, count=0):
        out = re.sub(pattern, repl, good, count=count)
        assert out != good, "self-test mutation %r does not apply" % pattern
        return out

    def drop_events(pred):
        out = []
        for ln in good.split("\n"):
            try:
                ev = json.loads(ln.rstrip("\r"))
            except ValueError:
                ev = None
            if isinstance(ev, dict) and pred(ev):
                continue
            out.append(ln)
        assert len(out) != len(good.split("\n")), "self-test drop does not apply"
        return "\n".join(out)

    # (name, console log, a problem the checker must report for it)
    cases = [
        ("no failed exec", drop_events(lambda e: e.get("return_code") == -2),
         "no failed session.command"),
        ("wrong exit code", sub(r'"exit_code": ?3\b', '"exit_code":0'), "no session.end"),
        ("no disk event", drop_events(lambda e: e.get("event") == "session.disk"),
         "no session.disk"),
        ("no print", drop_events(lambda e: e.get("event") == "print"), "no print event"),
        ("sh argv wrong", sub(r'kmatrix-out; exit 3"\]', 'kmatrix-out"]'),
         "no successful session.command for /bin/sh"),
        ("failed /bin/sh", sub(r'("path":"/bin/sh".*"return_code":)0', r"\g<1>-13"),
         "no successful session.command for /bin/sh"),
        ("run status", sub(r"KMATRIX-RUN rc=3", "KMATRIX-RUN rc=1"), "sessrec run exited 1"),
        ("session open", sub(r"KMATRIX-SESSION-ENDED rc=0", "KMATRIX-SESSION-ENDED rc=1"),
         "did not finish the session"),
        ("verify failed", sub(r"KMATRIX-VERIFY rc=0", "KMATRIX-VERIFY rc=1"),
         "sessrec verify exited 1"),
        ("agent killed", sub(r"KMATRIX-AGENT-EXIT rc=0", "KMATRIX-AGENT-EXIT rc=143"),
         "killed by signal 15"),
        ("agent down", sub(r"KMATRIX-AGENT-STARTED rc=0", "KMATRIX-AGENT-STARTED rc=1"),
         "before its socket appeared"),
        ("agent slow", sub(r"KMATRIX-AGENT-STARTED rc=0", "KMATRIX-AGENT-STARTED rc=2"),
         "still starting"),
        ("hang", good[:good.index("KMATRIX-EVENTS-END")], "did not finish"),
        ("no boot", "SeaBIOS\nKernel panic - not syncing\n", "never started /init"),
        ("garbled event", sub(r'\{"event": ?"session.end"', '{"event":"session.end\x1b[0m',
                              count=1), "unparsable event line"),
    ]
    fails = 0
    ok, problems, _ = check_console(good)
    if not ok:
        print("self-test: FAIL: the good log is rejected: %s" % "; ".join(problems))
        fails += 1
    for name, text, want in cases:
        ok, problems, _ = check_console(text)
        if ok:
            print("self-test: FAIL: '%s' is accepted" % name)
            fails += 1
        elif not any(want in p for p in problems):
            print("self-test: FAIL: '%s' is rejected for the wrong reason: %s" %
                  (name, "; ".join(problems)))
            fails += 1
    print("self-test: %s (%s, %d bad logs)" % ("FAIL" if fails else "PASS",
                                                "good log accepted" if not fails else
                                                "%d wrong" % fails, len(cases)))
    return 1 if fails else 0


def main(argv):
    if len(argv) >= 3 and argv[0] == "extract-vmlinux":
        extract_vmlinux(argv[1], argv[2])
        return 0
    if len(argv) == 3 and argv[0] == "initramfs":
        make_initramfs(argv[1], argv[2])
        return 0
    if len(argv) in (2, 3, 4) and argv[0] == "check":
        return cmd_check(argv[1], argv[2] if len(argv) > 2 else argv[1],
                         argv[3] if len(argv) > 3 else "")
    if argv == ["self-test"]:
        return cmd_self_test()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
