"""bpfsim: unit-test eBPF programs (XDP, TC, socket filters) in Python, without root.

Load the very object clang produced, fill its maps, run packets (bytes, scapy packets, pcap or
pcapng files), and look at verdicts, output packets, redirect targets, bpf_printk lines, ring
buffer records and maps afterwards; with a fake clock, seeded randomness and mockable helpers::

    import bpfsim
    obj = bpfsim.load("xdp_fw.bpf.o")
    obj.maps["blocked_ports"][22] = 0
    res = obj["xdp_fw"].run(packet_bytes)
    assert res.action == bpfsim.XdpAction.DROP

``prog.run(packet, compare_kernel=True)`` runs the packet in the live kernel too (root) and
raises :class:`KernelDifference` where the two differ; :mod:`bpfsim.kernel` says whether the
kernel can be used here.
"""

from ._ctx import Redirect, SkBuff, TcAction, XdpAction, XdpMd, XdpMdOut
from ._env import Env, FakeClock
from ._maps import ANY, EXIST, NOEXIST, Globals, Map
from ._object import Object, PcapComparison, PcapRun, Program, Result, Verdict, load
from .errors import (Error, KernelDifference, KernelUnavailable, LoadError, MapError,
                     PacketError, Trap, VerifierError)

from . import _native, kernel

__version__ = _native.__version__

__all__ = [
    "load", "Object", "Program", "Result", "PcapRun", "PcapComparison", "Verdict", "Map",
    "Globals",
    "XdpMd", "SkBuff", "XdpMdOut", "Redirect", "XdpAction", "TcAction",
    "Env", "FakeClock", "ANY", "NOEXIST", "EXIST",
    "Error", "LoadError", "MapError", "PacketError", "Trap", "VerifierError",
    "KernelUnavailable", "KernelDifference", "kernel",
]
