"""Helpers of the Python tests (a module name of its own: examples/python has a conftest too)."""

import pathlib
import struct

ROOT = pathlib.Path(__file__).resolve().parents[2]
VECTORS = ROOT / "test-vectors" / "progs"


def eth_ipv4_tcp(dport, src="10.0.0.1", dst="10.0.0.2", sport=40000, flags=0x02):
    """A minimal Ethernet + IPv4 + TCP frame (checksums left 0: the programs here do not check)."""
    ip = lambda s: bytes(int(x) for x in s.split("."))  # noqa: E731
    eth = bytes.fromhex("020000000002" "020000000001" "0800")
    iph = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0, ip(src), ip(dst))
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 0x50, flags, 65535, 0, 0)
    return eth + iph + tcp
