"""Assertions for packet tests: differences said per header field, not as two hex blobs."""

from __future__ import annotations

import struct
from typing import Any, List, Tuple


def _bytes(p: Any) -> bytes:
    if isinstance(p, (bytes, bytearray, memoryview)):
        return bytes(p)
    return bytes(p)


def _scapy_fields(p: bytes) -> List[Tuple[str, Any]]:
    from scapy.layers.l2 import Ether  # noqa: WPS433 (optional dependency)

    out: List[Tuple[str, Any]] = []
    layer = Ether(p)
    while layer is not None and layer.__class__.__name__ not in ("NoPayload",):
        name = layer.__class__.__name__
        if name in ("Raw", "Padding"):
            out.append((f"{name}.load", bytes(layer.load)))
            break
        for f in layer.fields_desc:
            out.append((f"{name}.{f.name}", layer.getfieldval(f.name)))
        layer = layer.payload if layer.payload else None
    return out


def _basic_fields(p: bytes) -> List[Tuple[str, Any]]:
    """Ethernet, 802.1Q, IPv4/IPv6 and TCP/UDP fields by hand, when scapy is not installed."""
    out: List[Tuple[str, Any]] = []
    if len(p) < 14:
        return [("raw", p)]
    out += [("Ether.dst", p[0:6].hex(":")), ("Ether.src", p[6:12].hex(":"))]
    off, etype = 12, struct.unpack_from("!H", p, 12)[0]
    while etype in (0x8100, 0x88A8) and len(p) >= off + 6:
        out.append(("Dot1Q.vlan", struct.unpack_from("!H", p, off + 2)[0] & 0xFFF))
        off += 4
        etype = struct.unpack_from("!H", p, off)[0]
    out.append(("Ether.type", hex(etype)))
    off += 2
    proto = None
    if etype == 0x0800 and len(p) >= off + 20:
        ihl = (p[off] & 0xF) * 4
        out += [("IP.tos", p[off + 1]), ("IP.len", struct.unpack_from("!H", p, off + 2)[0]),
                ("IP.ttl", p[off + 8]), ("IP.proto", p[off + 9]),
                ("IP.chksum", hex(struct.unpack_from("!H", p, off + 10)[0])),
                ("IP.src", ".".join(map(str, p[off + 12:off + 16]))),
                ("IP.dst", ".".join(map(str, p[off + 16:off + 20])))]
        proto, off = p[off + 9], off + ihl
    elif etype == 0x86DD and len(p) >= off + 40:
        out += [("IPv6.nh", p[off + 6]), ("IPv6.hlim", p[off + 7]),
                ("IPv6.src", p[off + 8:off + 24].hex()), ("IPv6.dst", p[off + 24:off + 40].hex())]
        proto, off = p[off + 6], off + 40
    if proto in (6, 17) and len(p) >= off + 8:
        name = "TCP" if proto == 6 else "UDP"
        out += [(f"{name}.sport", struct.unpack_from("!H", p, off)[0]),
                (f"{name}.dport", struct.unpack_from("!H", p, off + 2)[0])]
        ck = off + (16 if proto == 6 else 6)
        if len(p) >= ck + 2:
            out.append((f"{name}.chksum", hex(struct.unpack_from("!H", p, ck)[0])))
    out.append(("len", len(p)))
    return out


def packet_diff(actual: Any, expected: Any) -> List[str]:
    """The fields that differ, one line each: ``IP.ttl: 63 != 64 (expected)``."""
    a, e = _bytes(actual), _bytes(expected)
    if a == e:
        return []
    try:
        fa, fe = _scapy_fields(a), _scapy_fields(e)
    except ImportError:
        fa, fe = _basic_fields(a), _basic_fields(e)
    lines = []
    de = dict(fe)
    da = dict(fa)
    for name, va in fa:
        if name not in de:
            lines.append(f"{name}: {va!r} (not in expected)")
        elif de[name] != va:
            lines.append(f"{name}: {va!r} != {de[name]!r} (expected)")
    for name, ve in fe:
        if name not in da:
            lines.append(f"{name}: missing (expected {ve!r})")
    if not lines:
        first = next((i for i, (x, y) in enumerate(zip(a, e)) if x != y), min(len(a), len(e)))
        lines.append(f"bytes differ from offset {first}: {a[first:first + 16].hex()} != "
                     f"{e[first:first + 16].hex()} (expected); lengths {len(a)} and {len(e)}")
    return lines


def assert_packet(actual: Any, expected: Any, msg: str = "") -> None:
    """Assert two packets (bytes, or anything with ``__bytes__`` such as a scapy packet) are
    equal; on failure, list the header fields that differ (decoded by scapy when installed)."""
    diff = packet_diff(actual, expected)
    if diff:
        head = f"{msg}: " if msg else ""
        raise AssertionError(head + "packets differ:\n  " + "\n  ".join(diff))


__all__ = ["assert_packet", "packet_diff"]
