"""
Fixtures of the collector end-to-end tests (the helpers they use are in helpers.py, the
recording writer in recfmt.py). See helpers.py for what runs and how to run it.

This directory is a package (__init__.py), so that this conftest and the modules here do not
shadow tests/e2e/conftest.py, which the agent suite's modules import as `conftest`.
"""
import os
import shutil
import tempfile

import pytest

from .helpers import AGENT_BIN, COLLECTOR_BIN, CURL, KEEP, SESSREC, Lab, Pki

# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session", autouse=True)
def _ce_preconditions():
    assert os.geteuid() == 0, "the collector end-to-end tests must run as root (agents load BPF)"
    for b in (SESSREC, AGENT_BIN, COLLECTOR_BIN):
        assert os.access(b, os.X_OK), "%s is missing: run make first (or set SESSREC_BUILD)" % b
    for tool in (CURL, "/usr/bin/promtool", "/usr/bin/asciinema", "/usr/bin/script"):
        assert os.access(tool, os.X_OK), "%s is missing: make deps" % tool
    yield


@pytest.fixture(scope="session")
def ce_root():
    d = tempfile.mkdtemp(prefix="sessrec-ce-", dir="/tmp")
    os.chmod(d, 0o755)
    yield d
    if not KEEP:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def pki(ce_root):
    return Pki(os.path.join(ce_root, "pki"))


def _lab(ce_root, pki):
    lab = Lab(ce_root, pki)
    try:
        yield lab
    finally:
        errors = lab.close()
    assert not errors, "\n".join(errors)


@pytest.fixture
def lab(ce_root, pki):
    """Collectors, agents and sessions of one test, all stopped afterwards."""
    yield from _lab(ce_root, pki)


@pytest.fixture(scope="module")
def mlab(ce_root, pki):
    """The same for a whole module."""
    yield from _lab(ce_root, pki)
