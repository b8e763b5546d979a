"""
deploy/docker/Dockerfile, checked without a container runtime (no registry here):
the stages and their bases, that every COPY source exists (in the repository or
as an output of the builder's make command), that each image's ENTRYPOINT is a
program copied into it, that the Kubernetes manifests run those programs, and
that the runtime stage installs the Debian packages of every shared library the
programs link (from their ELF NEEDED entries) and the builder the -dev package
of every library in the Makefile's PKGS.
"""
import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess

import pytest

from conftest import BIN, DOCKERFILE, REPO, container, need_programs, one, read


def parse_dockerfile(text):
    """[(stage name, base, [(instruction, args, flags)])] with continuations joined."""
    lines, cur = [], ""
    for raw in text.splitlines():
        s = raw.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if cur and s.startswith("#"):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        lines.append(cur + s)
        cur = ""
    assert not cur, "a continuation runs off the end"
    stages = []
    for ln in lines:
        instr, _, rest = ln.partition(" ")
        instr = instr.upper()
        rest = rest.strip()
        flags = {}
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            k, _, v = flag[2:].partition("=")
            flags[k] = v
            rest = rest.strip()
        if instr == "FROM":
            m = re.match(r"^(\S+)(?:\s+AS\s+(\S+))?$", rest, re.I)
            assert m, ln
            stages.append((m.group(2), m.group(1), []))
        else:
            assert stages, "%s before FROM" % instr
            stages[-1][2].append((instr, rest, flags))
    return stages


STAGES = parse_dockerfile(read(DOCKERFILE))
BY_NAME = {name: (base, instrs) for name, base, instrs in STAGES}


def makefile_bins():
    mk = read(os.path.join(REPO, "Makefile"))
    m = re.search(r"^BINS\s*:=\s*(.*)$", mk, re.M)
    return [b.replace("$(BUILD)", "build") for b in m.group(1).split()]


def makefile_pkgs():
    mk = read(os.path.join(REPO, "Makefile"))
    m = re.search(r"^PKGS\s*:=\s*((?:.*\\\n)*.*)$", mk, re.M)
    return m.group(1).replace("\\\n", " ").split()


def apt_installs(instrs):
    pkgs = []
    for instr, args, _ in instrs:
        if instr != "RUN" or "apt-get install" not in args:
            continue
        for part in args.split("&&"):
            if "apt-get install" in part:
                words = shlex.split(part.split("apt-get install", 1)[1])
                pkgs += [w for w in words if not w.startswith("-")]
    return pkgs


def chain(name):
    """The stage and its ancestors in this file, nearest first."""
    out = []
    while name in BY_NAME:
        out.append(name)
        name = BY_NAME[name][0]
    return out


def test_stages_and_bases():
    names = [s[0] for s in STAGES]
    assert names == ["build", "runtime", "collector", "agent"]
    assert BY_NAME["build"][0] == "debian:12"
    assert BY_NAME["runtime"][0] == "debian:12-slim"
    assert BY_NAME["collector"][0] == "runtime"
    assert BY_NAME["agent"][0] == "runtime"


def test_copy_sources_exist():
    produced = set()
    for instr, args, _ in BY_NAME["build"][1]:
        if instr == "RUN" and re.search(r"\bmake -j", args):
            produced |= {"/src/" + t for t in re.findall(r"\bbuild/bin/[\w-]+", args)}
    workdir = "/"
    for name, base, instrs in STAGES:
        for instr, args, flags in instrs:
            if instr == "WORKDIR":
                workdir = args
            if instr not in ("COPY", "ADD"):
                continue
            assert instr == "COPY", "ADD fetches or unpacks: use COPY"
            parts = json.loads(args) if args.startswith("[") else args.split()
            srcs = parts[:-1]
            if "from" in flags:
                assert flags["from"] == "build", flags
                for s in srcs:
                    assert s in produced, "%s: %s is not built by the build stage's make" % (name, s)
            else:
                for s in srcs:
                    assert os.path.exists(os.path.join(REPO, s)), "%s: COPY %s: no such path" % (name, s)
    assert workdir


def test_builder_builds_the_makefiles_programs():
    bins = makefile_bins()
    assert len(bins) == 3
    run = [a for i, a, _ in BY_NAME["build"][1] if i == "RUN" and re.search(r"\bmake -j", a)]
    assert len(run) == 1
    for b in bins:
        assert b in run[0], "the builder does not build %s" % b
    # the make targets exist (dry run: nothing is built)
    r = subprocess.run(["make", "-n", "-C", REPO] + bins, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    # WORKDIR /src and COPY . /src: the outputs land under /src/build/bin
    instrs = BY_NAME["build"][1]
    assert ("WORKDIR", "/src", {}) in instrs
    assert ("COPY", ". /src", {}) in instrs


def entrypoint(stage):
    for name in chain(stage):
        for instr, args, _ in reversed(BY_NAME[name][1]):
            if instr == "ENTRYPOINT":
                return json.loads(args)
    return None


def copied(stage):
    dests = set()
    for name in chain(stage):
        for instr, args, flags in BY_NAME[name][1]:
            if instr == "COPY" and "from" in flags:
                src, dst = args.split()
                dests.add(dst.rstrip("/") + "/" + os.path.basename(src) if dst.endswith("/") else dst)
    return dests


def test_entrypoints_are_built_programs():
    for stage, prog in (("agent", "sessrec-agent"), ("collector", "sessrec-collector")):
        ep = entrypoint(stage)
        assert ep and ep[0] == "/usr/local/bin/" + prog, (stage, ep)
        assert ep[0] in copied(stage), "%s: ENTRYPOINT %s is not copied into the image" % (stage, ep[0])
        assert "/usr/local/bin/sessrec" in copied(stage), "the CLI is in both images"


def test_manifests_run_the_images_entrypoints():
    for w, c, stage in ((one("DaemonSet", "sessrec-agent"), "agent", "agent"),
                        (one("StatefulSet", "sessrec-collector"), None, "collector")):
        cont = container(w, c)
        assert cont["command"] == entrypoint(stage), stage
        assert cont["command"][0] in copied(stage)


def test_users():
    def user(stage):
        for name in chain(stage):
            for instr, args, _ in reversed(BY_NAME[name][1]):
                if instr == "USER":
                    return args
        return "0"

    assert user("collector").split(":")[0] == "10001"
    sts = one("StatefulSet", "sessrec-collector")
    assert sts["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 10001
    assert user("agent").split(":")[0] in ("0", "root")


def test_runtime_packages_exist_in_debian():
    apt = shutil.which("apt-cache")
    if not apt:
        pytest.skip("apt-cache is not installed")
    pkgs = apt_installs(BY_NAME["runtime"][1]) + apt_installs(BY_NAME["agent"][1]) + \
        apt_installs(BY_NAME["build"][1])
    assert pkgs
    r = subprocess.run([apt, "policy"] + pkgs, capture_output=True, text=True)
    if "Candidate" not in r.stdout:
        pytest.skip("no apt package lists here (apt-get update)")
    blocks = re.split(r"^(?=\S+:$)", r.stdout, flags=re.M)
    found = {b.split(":", 1)[0] for b in blocks if "Candidate:" in b and "Candidate: (none)" not in b}
    missing = [p for p in pkgs if p not in found]
    assert not missing, "not in this machine's Debian archive: %s" % missing


def dpkg_owner(path):
    r = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
    if r.returncode != 0:
        real = os.path.realpath(path)
        r = subprocess.run(["dpkg", "-S", real], capture_output=True, text=True)
    assert r.returncode == 0, "no package owns %s" % path
    return r.stdout.split(":", 1)[0].split(",")[0].strip()


def test_runtime_stage_installs_every_linked_library():
    need_programs()
    for tool in ("dpkg", "objdump", "ldd"):
        if not shutil.which(tool):
            pytest.skip("%s is not installed" % tool)
    runtime = set(apt_installs(BY_NAME["runtime"][1]))
    for prog in ("sessrec-agent", "sessrec-collector", "sessrec"):
        out = subprocess.run(["objdump", "-p", os.path.join(BIN, prog)], capture_output=True,
                             text=True, check=True).stdout
        ldd = subprocess.run(["ldd", os.path.join(BIN, prog)], capture_output=True, text=True,
                             check=True).stdout
        cache = dict(re.findall(r"^\s*(\S+) => (/\S+)", ldd, re.M))
        for soname in re.findall(r"^\s*NEEDED\s+(\S+)$", out, re.M):
            if re.match(r"^(libc|libm|libpthread|libdl|librt|ld-linux.*)\.so", soname):
                continue  # libc6: in every Debian image
            if soname.startswith(("libasan", "libubsan")):
                pytest.skip("a sanitizer build")
            assert soname in cache, "%s: %s not found by ldd" % (prog, soname)
            pkg = dpkg_owner(cache[soname])
            pkg = pkg.split(":")[0]
            assert pkg in runtime, "%s needs %s from %s, which the runtime stage does not install" % (
                prog, soname, pkg)


def test_builder_installs_every_dev_package():
    for tool in ("dpkg", "pkg-config"):
        if not shutil.which(tool):
            pytest.skip("%s is not installed" % tool)
    build = set(apt_installs(BY_NAME["build"][1]))
    for pc in makefile_pkgs():
        r = subprocess.run(["pkg-config", "--variable=pcfiledir", pc], capture_output=True, text=True)
        assert r.returncode == 0, "pkg-config does not know %s here" % pc
        pkg = dpkg_owner(os.path.join(r.stdout.strip(), pc + ".pc")).split(":")[0]
        assert pkg in build, "the Makefile's PKGS has %s (%s), the build stage lacks it" % (pc, pkg)
    for tool in ("make", "gcc", "clang", "llvm", "pkg-config", "bpftool", "protobuf-c-compiler"):
        assert tool in build, tool


def test_dockerignore_keeps_the_build_out():
    ignore = read(DOCKERFILE + ".dockerignore").split()
    assert "build" in ignore and ".git" in ignore


def test_builder_run_line_builds_from_a_clean_context(tmp_path):
    """The build stage's make command, run as written on a copy of the build context."""
    ignore = [p for p in read(DOCKERFILE + ".dockerignore").split() if not p.startswith("#")]
    src = tmp_path / "src"

    def skip(d, names):
        rel = os.path.relpath(d, REPO)
        out = set()
        for n in names:
            path = n if rel == "." else os.path.join(rel, n)
            for pat in ignore:
                if pat.startswith("**/") and fnmatch.fnmatch(n, pat[3:]) or fnmatch.fnmatch(path, pat):
                    out.add(n)
        return out

    shutil.copytree(REPO, str(src), ignore=skip, symlinks=True)
    assert not (src / "build").exists() and not (src / ".git").exists()
    run = [a for i, a, _ in BY_NAME["build"][1] if i == "RUN" and re.search(r"\bmake -j", a)][0]
    r = subprocess.run(["/bin/sh", "-c", run], cwd=str(src), capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    for b in makefile_bins():
        assert os.access(str(src / b), os.X_OK), b
