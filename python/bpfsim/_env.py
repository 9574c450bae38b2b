"""The simulated world: clock, randomness, CPUs."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FakeClock:
    """A clock that starts at ``start_ns`` and advances by ``step_ns`` at every read
    (``bpf_ktime_get_ns`` and friends). ``step_ns=0`` stops time."""

    start_ns: int = 1_000_000_000_000
    step_ns: int = 1_000


@dataclass(frozen=True)
class Env:
    """Everything injectable about the world outside the program.

    ``ncpus`` is fixed when the object loads (per-CPU maps hold that many values); ``cpu``,
    ``clock`` and ``seed`` can change between runs through ``obj.env = Env(...)``.
    """

    clock: FakeClock = field(default_factory=FakeClock)
    seed: int = 0
    cpu: int = 0
    ncpus: int = 1
