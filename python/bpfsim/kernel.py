"""Kernel-compat mode: is the live kernel there to compare with?

bpfsim can run the very object it simulates in the kernel too (``BPF_PROG_TEST_RUN`` through raw
bpf(2)) and compare: ``prog.run(packet, compare_kernel=True)``. That needs bpf(2) with
``CAP_BPF`` and ``CAP_NET_ADMIN`` (root, usually); these functions say whether this process has
it, and why not::

    import bpfsim.kernel
    if not bpfsim.kernel.available():
        print("skipped:", bpfsim.kernel.unavailable_reason())

The answer is probed once per process (a one-instruction XDP program is loaded and test-run).
"""

from __future__ import annotations

from typing import Optional

from . import _native
from .errors import KernelUnavailable


def unavailable_reason() -> Optional[str]:
    """Why bpf(2) cannot be used by this process, in one line (not root / EPERM with the
    ``kernel.unprivileged_bpf_disabled`` setting, ENOSYS, not Linux ...); None when it can."""
    return _native.kernel_unavailable_reason()


def available() -> bool:
    """Whether programs can be loaded and test-run in the live kernel from this process."""
    return unavailable_reason() is None


def require() -> None:
    """Raise :class:`bpfsim.KernelUnavailable` with the reason unless the kernel is available."""
    reason = unavailable_reason()
    if reason is not None:
        raise KernelUnavailable(reason)


def possible_cpus() -> int:
    """How many values a per-CPU map holds in the kernel: load objects with per-CPU maps with
    ``Env(ncpus=bpfsim.kernel.possible_cpus())`` to compare them."""
    return _native.kernel_possible_cpus()


__all__ = ["available", "unavailable_reason", "require", "possible_cpus", "KernelUnavailable"]
