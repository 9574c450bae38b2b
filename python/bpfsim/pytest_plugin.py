"""pytest plugin (entry point ``pytest11``): fixtures to load objects with fresh maps per test,
a fake clock, a seeded environment, and ``--bpf-engine`` to run tests under each engine; the
``bpf_kernel`` marker and fixture for tests that compare with the live kernel, skipped with the
reason where bpf(2) cannot be used (not root, EPERM, ENOSYS, not Linux).

The native module is imported only when a fixture is used, so installing bpfsim never slows
down or breaks an unrelated pytest session.
"""

from __future__ import annotations

import pytest

ENGINES = ("interp", "jit")


def pytest_addoption(parser):
    group = parser.getgroup("bpfsim")
    group.addoption("--bpf-engine", action="append", default=None,
                    choices=ENGINES + ("auto", "baseline", "both", "all"),
                    help="engine(s) that tests using the bpf_engine fixture run under "
                         "(repeatable; 'both' or 'all' for interp and jit; default interp)")


def pytest_configure(config):
    config.addinivalue_line("markers", "bpf_engine: parametrised over --bpf-engine values")
    config.addinivalue_line(
        "markers",
        "bpf_kernel: needs the live kernel through bpf(2) (compare_kernel=True); skipped with "
        "the reason where it cannot be used")


def _skip_without_kernel():
    import bpfsim.kernel

    reason = bpfsim.kernel.unavailable_reason()
    if reason is not None:
        pytest.skip(f"kernel unavailable: {reason}")
    return bpfsim.kernel


def _needs_kernel(item) -> bool:
    return (item.get_closest_marker("bpf_kernel") is not None
            or "bpf_kernel" in getattr(item, "fixturenames", ()))


def pytest_collection_modifyitems(config, items):
    # Marked at collection, so that the skip is reported at the test, not in this plugin; the
    # kernel is probed only if some test needs it.
    needing = [item for item in items if _needs_kernel(item)]
    if not needing:
        return
    import bpfsim.kernel

    reason = bpfsim.kernel.unavailable_reason()
    if reason is not None:
        for item in needing:
            item.add_marker(pytest.mark.skip(reason=f"kernel unavailable: {reason}"))


def pytest_runtest_setup(item):
    if item.get_closest_marker("bpf_kernel") is not None:
        _skip_without_kernel()


@pytest.fixture
def bpf_kernel():
    """The :mod:`bpfsim.kernel` module, for tests that compare with the live kernel; the test
    is skipped with the reason where bpf(2) cannot be used."""
    return _skip_without_kernel()


def pytest_generate_tests(metafunc):
    if "bpf_engine" in metafunc.fixturenames:
        chosen = metafunc.config.getoption("--bpf-engine") or ["interp"]
        if "all" in chosen or "both" in chosen:
            engines = list(ENGINES)
        else:
            engines = list(dict.fromkeys(chosen))
        metafunc.parametrize("bpf_engine", engines, ids=[f"engine={e}" for e in engines])


@pytest.fixture
def fake_clock():
    """A clock at 1 s that advances 1 µs per read; pass it in ``bpfsim.Env(clock=...)``."""
    import bpfsim

    return bpfsim.FakeClock(start_ns=1_000_000_000, step_ns=1_000)


@pytest.fixture
def bpf_env(fake_clock):
    """A deterministic environment: the fake clock, random seed 42, CPU 0 of 2."""
    import bpfsim

    return bpfsim.Env(clock=fake_clock, seed=42, cpu=0, ncpus=2)


@pytest.fixture
def bpf_load(bpf_env):
    """``bpf_load(path, env=None)``: load an object with fresh maps for this test (the
    deterministic ``bpf_env`` unless another is given)."""
    import bpfsim

    def load(path, env=None):
        return bpfsim.load(path, env=env or bpf_env)

    return load
