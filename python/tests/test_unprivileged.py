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


KERNEL_PROBE = """
import bpfsim, bpfsim.kernel
print(bpfsim.kernel.available())
print(bpfsim.kernel.unavailable_reason())
prog = bpfsim.load("test-vectors/progs/xdp_pass.bpf.o")["xdp_pass_count"]
try:
    prog.run(bytes(64), compare_kernel=True)
    print("ran")
except bpfsim.KernelUnavailable as e:
    print(f"{type(e).__name__} {isinstance(e, bpfsim.Error)}: {e}")
print(prog.run(bytes(64)).action.name)
kprog = bpfsim.load("test-vectors/progs/xdp_pass.bpf.o", backend="kernel")["xdp_pass_count"]
try:
    kprog.run(bytes(64))
    print("ran")
except bpfsim.KernelUnavailable as e:
    print(f"backend: {e}")
"""


def test_kernel_unavailable_without_privilege():
    r = _run(["-c", KERNEL_PROBE])
    assert r.returncode == 0, r.stdout + r.stderr
    available, reason, raised, sim, backend = r.stdout.splitlines()
    assert available == "False"
    print(f"unavailable as expected: {reason}")
    assert "EPERM" in reason or "EACCES" in reason, reason
    assert raised == f"KernelUnavailable True: {reason}"
    assert sim == "PASS"  # the simulator itself needs no privilege
    assert backend == f"backend: {reason}"
    r = _run(["-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
              "python/tests/kernel_marker_cases.py"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 passed, 2 skipped" in r.stdout, r.stdout
    assert r.stdout.count(f"kernel unavailable: {reason}") == 2, r.stdout
