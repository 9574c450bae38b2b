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


def pcap_packets(path):
    """The frames of a classic little- or big-endian pcap file, in order (the test vectors'
    format; no dependency on scapy)."""
    raw = pathlib.Path(path).read_bytes()
    magic = raw[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        order = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        order = ">"
    else:
        raise ValueError(f"{path}: not a classic pcap file")
    out, at = [], 24
    while at + 16 <= len(raw):
        _, _, incl, _ = struct.unpack(order + "IIII", raw[at:at + 16])
        out.append(raw[at + 16:at + 16 + incl])
        at += 16 + incl
    return out
