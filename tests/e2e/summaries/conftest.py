"""
Fixtures of the summary end-to-end tests (helpers in sumlib.py, which says what runs).

Run as root after `make`:  cd tests/e2e && /usr/bin/python3 -m pytest -q summaries
(or cd tests/e2e/summaries && /usr/bin/python3 -m pytest -q .)

SESSREC_BUILD and SESSREC_E2E_KEEP=1 work as for the collector tests; the temporary directories
are /tmp/sessrec-sum-*.
"""
import os
import shutil
import tempfile

import pytest

from collector.helpers import AGENT_BIN, COLLECTOR_BIN, CURL, KEEP, SESSREC

from .sumlib import PROMTOOL, World


@pytest.fixture(scope="session", autouse=True)
def _sum_preconditions():
    assert os.geteuid() == 0, "the summary end-to-end tests must run as root (the agent loads BPF)"
    for b in (SESSREC, AGENT_BIN, COLLECTOR_BIN):
        assert os.access(b, os.X_OK), "%s is missing: run make first (or set SESSREC_BUILD)" % b
    for tool in (CURL, PROMTOOL):
        assert os.access(tool, os.X_OK), "%s is missing: make deps" % tool
    yield


@pytest.fixture(scope="session")
def sum_root():
    d = tempfile.mkdtemp(prefix="sessrec-sum-", dir="/tmp")
    os.chmod(d, 0o755)
    yield d
    if not KEEP:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def world(sum_root, request):
    """A fake provider and the collectors (and agents) of one test, all stopped afterwards.

    After the test, the secret values must not be in any API answer or CLI output the test
    fetched, nor in the collectors' logs and central audit logs."""
    d = tempfile.mkdtemp(prefix=request.node.name[:40].replace("[", "-").replace("]", "") + "-", dir=sum_root)
    os.chmod(d, 0o755)
    w = World(d)
    try:
        yield w
    finally:
        errors = w.close()
    assert not errors, "\n".join(errors)
    w.check_secrets()
