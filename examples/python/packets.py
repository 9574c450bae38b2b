"""Where the bundled objects are, and packets for the examples: scapy when installed, bytes
built by hand otherwise (the programs see the same frames either way)."""

import pathlib
import struct

VECTORS = pathlib.Path(__file__).resolve().parents[2] / "test-vectors" / "progs"
CLIENT_MAC, SERVER_MAC = "02:00:00:00:00:01", "02:00:00:00:00:02"


def tcp(dport, src="10.0.0.1", dst="10.0.0.2", ipv6=False):
    try:
        from scapy.all import IP, IPv6, TCP, Ether
    except ImportError:
        return _tcp_bytes(dport, src, dst)
    l3 = IPv6(src="2001:db8::1", dst="2001:db8::2") if ipv6 else IP(src=src, dst=dst)
    return Ether(src=CLIENT_MAC, dst=SERVER_MAC) / l3 / TCP(sport=40000, dport=dport, flags="S")


def udp(dport, src="10.0.0.1", dst="10.0.0.2"):
    try:
        from scapy.all import IP, UDP, Ether
    except ImportError:
        return _udp_bytes(dport, src, dst)
    return Ether(src=CLIENT_MAC, dst=SERVER_MAC) / IP(src=src, dst=dst) / UDP(sport=40000, dport=dport)


def arp():
    return bytes.fromhex("ffffffffffff0200000000010806") + bytes.fromhex(
        "0001080006040001" "020000000001" "0a000001" "000000000000" "0a000002")


def _ip(s):
    return bytes(int(x) for x in s.split("."))


def _eth():
    return bytes.fromhex(SERVER_MAC.replace(":", "") + CLIENT_MAC.replace(":", "") + "0800")


def _tcp_bytes(dport, src, dst):
    iph = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0, _ip(src), _ip(dst))
    return _eth() + iph + struct.pack("!HHIIBBHHH", 40000, dport, 1, 0, 0x50, 0x02, 65535, 0, 0)


def _udp_bytes(dport, src, dst):
    iph = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 0, 0, 64, 17, 0, _ip(src), _ip(dst))
    return _eth() + iph + struct.pack("!HHHH", 40000, dport, 8, 0)
