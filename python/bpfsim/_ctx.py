"""Contexts and verdicts: what a run is given besides the packet, and what its return value means."""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import Optional, Tuple


class XdpAction(enum.IntEnum):
    """XDP program return values (``enum xdp_action``)."""

    ABORTED = 0
    DROP = 1
    PASS = 2
    TX = 3
    REDIRECT = 4


class TcAction(enum.IntEnum):
    """TC program return values (``TC_ACT_*``)."""

    UNSPEC = -1
    OK = 0
    RECLASSIFY = 1
    SHOT = 2
    PIPE = 3
    STOLEN = 4
    QUEUED = 5
    REPEAT = 6
    REDIRECT = 7


@dataclass(frozen=True)
class XdpMd:
    """``struct xdp_md`` fields a test may set, as ``BPF_PROG_TEST_RUN`` accepts them.

    ``meta`` is metadata placed before the packet (``data_meta``..``data``), at most 216 bytes,
    a multiple of 4. Without a context the kernel runs XDP on the loopback device (ifindex 1),
    queue 0.
    """

    ingress_ifindex: int = 1
    rx_queue_index: int = 0
    meta: bytes = b""

    def _native(self) -> Tuple[int, int, int]:
        return (self.ingress_ifindex, self.rx_queue_index, len(self.meta))


@dataclass(frozen=True)
class SkBuff:
    """``struct __sk_buff`` fields a test may set (those ``BPF_PROG_TEST_RUN`` accepts).

    ``wire_len`` 0 means the packet's length as the program sees it.
    """

    mark: int = 0
    priority: int = 0
    ingress_ifindex: int = 0
    ifindex: int = 1
    cb: Tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)
    tstamp: int = 0
    wire_len: int = 0
    gso_segs: int = 0
    gso_size: int = 0
    hwtstamp: int = 0

    def _native(self):
        cb = tuple(self.cb) + (0,) * (5 - len(self.cb))
        return (self.mark, self.priority, self.ingress_ifindex, self.ifindex, cb[:5],
                self.tstamp, self.wire_len, self.gso_segs, self.gso_size, self.hwtstamp)

    @classmethod
    def _from_bytes(cls, b: bytes) -> Optional["SkBuff"]:
        if len(b) < 192:
            return None
        u32 = lambda off: struct.unpack_from("<I", b, off)[0]  # noqa: E731
        u64 = lambda off: struct.unpack_from("<Q", b, off)[0]  # noqa: E731
        return cls(mark=u32(8), priority=u32(32), ingress_ifindex=u32(36), ifindex=u32(40),
                   cb=struct.unpack_from("<5I", b, 48), tstamp=u64(152), wire_len=u32(160),
                   gso_segs=u32(164), gso_size=u32(176), hwtstamp=u64(184))


@dataclass(frozen=True)
class XdpMdOut:
    """The ``struct xdp_md`` a run hands back: data and data_end relative to data_meta."""

    data: int
    data_end: int
    data_meta: int
    ingress_ifindex: int
    rx_queue_index: int
    egress_ifindex: int

    @classmethod
    def _from_bytes(cls, b: bytes) -> Optional["XdpMdOut"]:
        if len(b) < 24:
            return None
        return cls(*struct.unpack_from("<6I", b, 0))


@dataclass(frozen=True)
class Redirect:
    """Where ``bpf_redirect``/``bpf_redirect_map`` sent the packet (the kernel's test run does
    not say; the simulator does)."""

    ifindex: Optional[int] = None
    map: Optional[str] = None
    key: Optional[int] = None
    flags: int = 0
    kind: str = field(default="ifindex")

    def __str__(self) -> str:
        if self.kind == "map":
            return f"{self.map}[{self.key}]"
        return f"ifindex {self.ifindex}"
