"""Running a daemon under valgrind (memcheck) in the end-to-end tests, and reading its report."""
import os
import shutil

SUPP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "valgrind.supp")


def prefix(log_path):
    """The argv prefix: errors (and definite or indirect leaks) make the program exit 99."""
    valgrind = shutil.which("valgrind")
    assert valgrind, "valgrind is not installed (make deps installs it)"
    return [valgrind, "--quiet", "--leak-check=full", "--show-leak-kinds=definite,indirect",
            "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99",
            "--suppressions=" + os.path.abspath(SUPP), "--log-file=" + log_path]


def check(log_path, rc, what, log_tail=""):
    """The program exited 0 under valgrind and its report names no error and no leak."""
    assert os.path.exists(log_path), "valgrind did not run"
    with open(log_path, errors="replace") as f:
        report = f.read()
    assert rc == 0, "%s exit %s under valgrind:\n%s\n%s" % (what, rc, report[-4000:], log_tail)
    for word in ("Invalid", "uninitialised", "definitely lost", "indirectly lost"):
        assert word not in report, report[-4000:]
