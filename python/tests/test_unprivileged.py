"""The examples need no privilege: run them again as an ordinary user with every capability
dropped (setpriv), both the pytest and the unittest forms. Where the interpreter is not
reachable by another user (a Python under /root), they run as root with no capabilities."""

import os
import shutil
import subprocess
import sys

import pytest

from _util import ROOT

DROP = ["--inh-caps=-all", "--bounding-set=-all"]
NOBODY = ["--reuid=65534", "--regid=65534", "--clear-groups"]


def _setpriv_prefix():
    if os.geteuid() != 0:
        return []  # already unprivileged
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    for who in (NOBODY, []):
        cmd = ["setpriv", *who, *DROP, sys.executable, "-c", "import bpfsim"]
        if subprocess.run(cmd, capture_output=True, cwd="/").returncode == 0:
            return ["setpriv", *who, *DROP]
    pytest.fail("cannot run Python with dropped privileges at all")


def _run(args):
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run(_setpriv_prefix() + [sys.executable, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_no_capabilities_inside():
    r = _run(["-c", "print([l for l in open('/proc/self/status') if l.startswith('CapEff')][0])"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[1] == "0000000000000000", r.stdout


def test_examples_pass_without_privilege():
    r = _run(["-m", "pytest", "-q", "-p", "no:cacheprovider", "examples/python"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert " passed" in r.stdout and "failed" not in r.stdout
    r = _run(["-m", "unittest", "examples/python/test_book_unittest.py"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "OK" in r.stderr
