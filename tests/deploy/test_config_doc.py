"""
docs/configuration.md against deploy/agent.yaml, deploy/collector.yaml and the
programs: every key is there, each documented default is the program's default
(written into a file and read back with --check-config), and each example is
accepted by the program it belongs to.
"""
import os
import re

import pytest
import yaml

from conftest import AGENT, COLLECTOR, DEPLOY, REPO, check_config, effective, flatten, need_programs, read

DOC = os.path.join(REPO, "docs", "configuration.md")
PROGRAMS = {"agent.yaml": AGENT, "collector.yaml": COLLECTOR}


@pytest.fixture(scope="module", autouse=True)
def programs():
    need_programs()


def sections():
    """[(file, key, default text or None, [yaml examples])] from the doc's ### `key` sections."""
    out, file_, cur = [], None, None
    in_block, block = False, []
    for line in read(DOC).splitlines():
        if in_block:
            if line.startswith("```"):
                in_block = False
                if cur is not None:
                    cur[3].append("\n".join(block) + "\n")
            else:
                block.append(line)
            continue
        if line.startswith("```yaml"):
            in_block, block = True, []
            continue
        m = re.match(r"^## (agent\.yaml|collector\.yaml)$", line)
        if m:
            file_, cur = m.group(1), None
            continue
        if line.startswith("## "):
            file_, cur = None, None
            continue
        m = re.match(r"^### `([a-z_.]+)`$", line)
        if m and file_:
            cur = [file_, m.group(1), None, []]
            out.append(cur)
            continue
        m = re.match(r"^Default: (.*)$", line)
        if m and cur is not None and cur[2] is None:
            d = re.match(r"^`([^`]*)`", m.group(1))
            cur[2] = d.group(1) if d else ""
    return out


def uncommented_keys(path):
    """Keys of deploy/*.yaml: every '#key:' (commented-out setting) and every real key."""
    keys = set()
    for line in read(path).splitlines():
        m = re.match(r"^\s*#?([A-Za-z_][A-Za-z0-9_]*):(\s|$)", line)
        if m:
            keys.add(m.group(1))
    return keys


def nested(dotted, value_text):
    parts = dotted.split(".")
    lines = []
    for i, p in enumerate(parts[:-1]):
        lines.append("  " * i + p + ":")
    lines.append("  " * (len(parts) - 1) + "%s: %s" % (parts[-1], value_text))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_every_program_key_is_documented(name, tmp_path):
    """The program's own list of keys (its --check-config output) against the doc's sections."""
    eff = effective(PROGRAMS[name], "", tmp_path)
    documented = {k for f, k, _, _ in sections() if f == name}
    keys = set(flatten(eff))
    assert keys - documented == set(), "undocumented %s keys" % name
    assert documented - keys == set(), "documented keys %s does not have" % name


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_every_key_of_the_example_file_is_in_the_doc(name):
    """Every key in deploy/*.yaml (commented out or not) appears in docs/configuration.md."""
    doc = read(DOC)
    for key in sorted(uncommented_keys(os.path.join(DEPLOY, name))):
        assert re.search(r"(`|\b)%s(`|:|\b)" % re.escape(key), doc), \
            "%s: key '%s' is not in docs/configuration.md" % (name, key)


def test_example_files_hold_every_key_and_are_accepted(tmp_path):
    for name, prog in PROGRAMS.items():
        path = os.path.join(DEPLOY, name)
        rc, eff, err = check_config(prog, read(path), tmp_path, name)
        assert rc == 0, err
        documented = {k.split(".")[-1] for f, k, _, _ in sections() if f == name}
        missing = documented - uncommented_keys(path) - {"node_name"}
        assert not missing, "deploy/%s lacks %s" % (name, sorted(missing))
        assert "node_name" in read(path) or name != "agent.yaml"


@pytest.mark.parametrize("file_,key,default", [
    (f, k, d) for f, k, d, _ in sections()], ids=lambda v: str(v))
def test_documented_default_is_the_programs(file_, key, default, tmp_path):
    assert default is not None, "%s: no 'Default:' line" % key
    if default == "":
        assert key == "node_name", "%s: the default must be written as `value`" % key
        return
    prog = PROGRAMS[file_]
    defaults = flatten(effective(prog, "", tmp_path, "empty.yaml"))
    text = nested(key, default)
    if key == "collector.url":
        text = "collector:\n  url: %s\n" % default
    got = flatten(effective(prog, text, tmp_path, "default.yaml"))
    assert got == defaults, "%s: `%s` is not the default (%r instead of %r)" % (
        key, default, got.get(key), defaults.get(key))


@pytest.mark.parametrize("file_,key,examples", [
    (f, k, e) for f, k, _, e in sections()], ids=lambda v: v if isinstance(v, str) else "")
def test_examples_are_accepted_and_set_their_key(file_, key, examples, tmp_path):
    assert examples, "%s: no yaml example" % key
    prog = PROGRAMS[file_]
    for ex in examples:
        rc, eff, err = check_config(prog, ex, tmp_path, "example.yaml")
        assert rc == 0, "%s: example refused: %s\n%s" % (key, err, ex)
        keys = flatten(yaml.safe_load(ex))
        assert any(k == key or k.startswith(key + ".") for k in keys), \
            "%s: the example does not set it:\n%s" % (key, ex)


@pytest.mark.parametrize("doc", ["install.md", "configuration.md", "operations.md"])
def test_doc_links_and_deploy_paths_exist(doc):
    """Relative links (and their #anchors) and every deploy/... path named in the text exist."""
    path = os.path.join(REPO, "docs", doc)
    text = read(path)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+:", target):
            continue
        file_, _, anchor = target.partition("#")
        dest = os.path.normpath(os.path.join(os.path.dirname(path), file_)) if file_ else path
        assert os.path.exists(dest), "%s: broken link %s" % (doc, target)
        if anchor and dest.endswith(".md"):
            slugs = set()
            for h in re.findall(r"^#+ (.*)$", read(dest), re.M):
                slug = re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
                slugs.add(slug)
            assert anchor in slugs, "%s: no heading for #%s in %s" % (doc, anchor, file_ or doc)
    for p in set(re.findall(r"(?<![\w/])deploy/[\w./-]+\w", text)):
        assert os.path.exists(os.path.join(REPO, p)), "%s names %s, which does not exist" % (doc, p)
