#!/usr/bin/env python3
"""Write the input packets of the program test vectors as pcap files.

    python3 gen_pcaps.py            # (re)writes pcaps/*.pcap and pcaps/parse_headers.pcapng

Packets are built byte by byte with struct (no scapy), with correct IPv4 header
and TCP/UDP/ICMP/ICMPv6 checksums unless a packet is deliberately broken. Output
is deterministic: timestamps are 1700000000 + index seconds, so rerunning gives
identical files.

Each pcap is a classic libpcap file (magic a1b2c3d4, version 2.4, little endian,
snaplen 65535, link type 1 = Ethernet) with incl_len == orig_len.
PCAPS below lists, per pcap, the packet names in file order; record_expected.py
imports this module to label the packets of every expectation file.
"""

import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "pcaps")
TS_BASE = 1700000000

# ---------------------------------------------------------------- addresses

MAC_CLIENT = bytes.fromhex("020000000001")
MAC_SERVER = bytes.fromhex("020000000002")
MAC_BCAST = b"\xff" * 6
MAC_ZERO = b"\x00" * 6  # the loopback device's address: pkt_type HOST in skb test runs
MAC_QUARANTINE = bytes.fromhex("02bad0000001")
MAC_LLDP = bytes.fromhex("0180c200000e")
MAC_MDNS6 = bytes.fromhex("3333000000fb")

ETH_P_IP, ETH_P_ARP, ETH_P_IPV6 = 0x0800, 0x0806, 0x86DD
ETH_P_8021Q, ETH_P_8021AD, ETH_P_LLDP = 0x8100, 0x88A8, 0x88CC
TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def ip4(s):
    return bytes(int(x) for x in s.split("."))


def ip6(s):
    """Minimal IPv6 text parser (handles one '::')."""
    if "::" in s:
        head, tail = s.split("::")
        h = [int(x, 16) for x in head.split(":")] if head else []
        t = [int(x, 16) for x in tail.split(":")] if tail else []
        words = h + [0] * (8 - len(h) - len(t)) + t
    else:
        words = [int(x, 16) for x in s.split(":")]
    return struct.pack("!8H", *words)


C4, S4 = ip4("10.0.0.1"), ip4("10.0.0.2")
C6, S6 = ip6("2001:db8::1"), ip6("2001:db8::2")

# ---------------------------------------------------------------- builders


def csum(data):
    if len(data) % 2:
        data += b"\x00"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def eth(dst, src, ethertype, payload):
    return dst + src + struct.pack("!H", ethertype) + payload


def vlan(tci, ethertype, payload):
    return struct.pack("!HH", tci, ethertype) + payload


def ipv4(src, dst, proto, payload, ttl=64, ident=0x1234, tos=0, df=True, frag=0, mf=False,
         options=b"", tot_len=None, check=None):
    ihl = 5 + len(options) // 4
    flags = (0x4000 if df else 0) | (0x2000 if mf else 0) | frag
    tl = tot_len if tot_len is not None else ihl * 4 + len(payload)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, tos, tl, ident, flags, ttl, proto, 0, src, dst)
    hdr += options
    c = csum(hdr) if check is None else check
    return hdr[:10] + struct.pack("!H", c) + hdr[12:] + payload


def ipv6(src, dst, nexthdr, payload, hlim=64, tclass=0, flow=0, plen=None):
    v = (6 << 28) | (tclass << 20) | flow
    pl = len(payload) if plen is None else plen
    return struct.pack("!IHBB16s16s", v, pl, nexthdr, hlim, src, dst) + payload


def pseudo(src, dst, proto, length):
    if len(src) == 4:
        return src + dst + struct.pack("!BBH", 0, proto, length)
    return src + dst + struct.pack("!IxxxB", length, proto)


def tcp(src, dst, sport, dport, flags, payload=b"", seq=1000, ack=0, window=64240, options=b""):
    doff = 5 + len(options) // 4
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff << 4, flags, window, 0, 0) + options
    c = csum(pseudo(src, dst, 6, len(hdr) + len(payload)) + hdr + payload)
    return hdr[:16] + struct.pack("!H", c) + hdr[18:] + payload


def udp(src, dst, sport, dport, payload=b"", zero_csum=False):
    hdr = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0)
    if zero_csum:
        return hdr + payload
    c = csum(pseudo(src, dst, 17, len(hdr) + len(payload)) + hdr + payload) or 0xFFFF
    return hdr[:6] + struct.pack("!H", c) + payload


def icmp_echo(type_, ident=0x4242, seq=1, payload=bytes(range(32))):
    hdr = struct.pack("!BBHHH", type_, 0, 0, ident, seq)
    c = csum(hdr + payload)
    return hdr[:2] + struct.pack("!H", c) + hdr[4:] + payload


def icmp6_echo(src, dst, type_, ident=0x4242, seq=1, payload=bytes(range(32))):
    hdr = struct.pack("!BBHHH", type_, 0, 0, ident, seq)
    c = csum(pseudo(src, dst, 58, len(hdr) + len(payload)) + hdr + payload)
    return hdr[:2] + struct.pack("!H", c) + hdr[4:] + payload


def arp_request(sha, spa, tpa):
    return struct.pack("!HHBBH6s4s6s4s", 1, ETH_P_IP, 6, 4, 1, sha, spa, b"\x00" * 6, tpa)


# convenience: complete frames
def v4_tcp(sport, dport, flags=TCP_SYN, src=C4, dst=S4, payload=b"", smac=MAC_CLIENT,
           dmac=MAC_SERVER, **ipkw):
    return eth(dmac, smac, ETH_P_IP, ipv4(src, dst, 6, tcp(src, dst, sport, dport, flags, payload), **ipkw))


def v4_udp(sport, dport, payload=b"", src=C4, dst=S4, smac=MAC_CLIENT, dmac=MAC_SERVER,
           zero_csum=False, **ipkw):
    return eth(dmac, smac, ETH_P_IP,
               ipv4(src, dst, 17, udp(src, dst, sport, dport, payload, zero_csum), **ipkw))


def v6_tcp(sport, dport, flags=TCP_SYN, src=C6, dst=S6, payload=b"", **ip6kw):
    return eth(MAC_SERVER, MAC_CLIENT, ETH_P_IPV6,
               ipv6(src, dst, 6, tcp(src, dst, sport, dport, flags, payload), **ip6kw))


def v6_udp(sport, dport, payload=b"", src=C6, dst=S6, dmac=MAC_SERVER, **ip6kw):
    return eth(dmac, MAC_CLIENT, ETH_P_IPV6, ipv6(src, dst, 17, udp(src, dst, sport, dport, payload), **ip6kw))


DNS_QUERY = bytes.fromhex("abcd01000001000000000000076578616d706c6503636f6d0000010001")
HTTP_GET = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"

# ---------------------------------------------------------------- catalog


def catalog():
    P = {}
    # --- common core
    P["arp_request"] = eth(MAC_BCAST, MAC_CLIENT, ETH_P_ARP, arp_request(MAC_CLIENT, C4, S4))
    P["ipv4_tcp_syn_80"] = v4_tcp(40000, 80)
    P["ipv4_tcp_http_get"] = v4_tcp(40000, 80, TCP_PSH | TCP_ACK, payload=HTTP_GET)
    P["ipv4_tcp_synack_from_80"] = v4_tcp(80, 40000, TCP_SYN | TCP_ACK, src=S4, dst=C4,
                                           smac=MAC_SERVER, dmac=MAC_CLIENT)
    P["ipv4_tcp_syn_22"] = v4_tcp(40001, 22)
    P["ipv4_tcp_syn_9090"] = v4_tcp(40002, 9090)
    P["ipv4_tcp_ack_443"] = v4_tcp(40003, 443, TCP_ACK)
    P["ipv4_udp_53_dns"] = v4_udp(5353, 53, DNS_QUERY)
    P["ipv4_icmp_echo_request"] = eth(MAC_SERVER, MAC_CLIENT, ETH_P_IP, ipv4(C4, S4, 1, icmp_echo(8)))
    P["ipv4_icmp_echo_reply"] = eth(MAC_CLIENT, MAC_SERVER, ETH_P_IP, ipv4(S4, C4, 1, icmp_echo(0)))
    P["ipv6_tcp_syn_80"] = v6_tcp(40000, 80)
    P["ipv6_tcp_syn_9090"] = v6_tcp(40002, 9090)
    P["ipv6_udp_53_dns"] = v6_udp(5353, 53, DNS_QUERY)
    P["ipv6_icmpv6_echo_request"] = eth(MAC_SERVER, MAC_CLIENT, ETH_P_IPV6,
                                        ipv6(C6, S6, 58, icmp6_echo(C6, S6, 128)))
    P["vlan100_ipv4_tcp_syn_80"] = eth(MAC_SERVER, MAC_CLIENT, ETH_P_8021Q,
                                       vlan(100, ETH_P_IP, ipv4(C4, S4, 6, tcp(C4, S4, 40000, 80, TCP_SYN))))
    P["vlan200_ipv6_udp_53"] = eth(MAC_SERVER, MAC_CLIENT, ETH_P_8021Q,
                                   vlan((3 << 13) | 200, ETH_P_IPV6,
                                        ipv6(C6, S6, 17, udp(C6, S6, 5353, 53, DNS_QUERY))))
    P["qinq_ipv4_tcp_syn_22"] = eth(MAC_SERVER, MAC_CLIENT, ETH_P_8021AD,
                                    vlan(10, ETH_P_8021Q,
                                         vlan(20, ETH_P_IP, ipv4(C4, S4, 6, tcp(C4, S4, 40001, 22, TCP_SYN)))))
    # IPv4 with a Router Alert option (IHL 6)
    P["ipv4_options_tcp_syn_80"] = eth(MAC_SERVER, MAC_CLIENT, ETH_P_IP,
                                       ipv4(C4, S4, 6, tcp(C4, S4, 40000, 80, TCP_SYN),
                                            options=bytes.fromhex("94040000")))
    P["lldp"] = eth(MAC_LLDP, MAC_CLIENT, ETH_P_LLDP,
                    bytes.fromhex("0207040200000000010206050174657374310602007800000000"))
    # --- short / truncated frames (all >= 14 bytes)
    P["eth_only_ipv4"] = eth(MAC_SERVER, MAC_CLIENT, ETH_P_IP, b"")
    P["ipv4_truncated_header"] = v4_tcp(40000, 80)[:14 + 10]
    P["ipv4_tcp_truncated"] = v4_tcp(40000, 80)[:14 + 20 + 8]
    P["ipv6_truncated_header"] = v6_tcp(40000, 80)[:14 + 20]
    P["vlan_truncated"] = eth(MAC_SERVER, MAC_CLIENT, ETH_P_8021Q, b"\x00\x64")
    # shorter than an Ethernet header: BPF_PROG_TEST_RUN refuses it with EINVAL
    P["runt_10_bytes"] = MAC_SERVER + MAC_CLIENT[:4]
    # --- more variety
    P["ipv4_udp_dhcp_broadcast"] = v4_udp(68, 67, bytes(240), src=ip4("0.0.0.0"),
                                          dst=ip4("255.255.255.255"), dmac=MAC_BCAST, df=False)
    P["ipv6_udp_mdns_multicast"] = v6_udp(5353, 5353, DNS_QUERY, dst=ip6("ff02::fb"), dmac=MAC_MDNS6,
                                          hlim=255)
    # a non-first fragment: offset 185*8, no UDP header in it
    P["ipv4_udp_fragment_2nd"] = eth(MAC_SERVER, MAC_CLIENT, ETH_P_IP,
                                     ipv4(C4, S4, 17, bytes(range(64)), df=False, frag=185))
    P["ipv4_gre"] = eth(MAC_SERVER, MAC_CLIENT, ETH_P_IP,
                        ipv4(C4, S4, 47, struct.pack("!HH", 0, ETH_P_IP) + ipv4(C4, S4, 1, icmp_echo(8))))
    # IPv6 hop-by-hop extension header (8 bytes: PadN) then UDP
    hbh = struct.pack("!BB", 17, 0) + bytes.fromhex("010400000000")
    P["ipv6_hopbyhop_udp"] = eth(MAC_SERVER, MAC_CLIENT, ETH_P_IPV6,
                                 ipv6(C6, S6, 0, hbh + udp(C6, S6, 5000, 5001, b"hop-by-hop")))
    P["ipv4_udp_large_1442"] = v4_udp(5000, 5001, bytes((i * 7) & 0xFF for i in range(1400)))
    P["ipv4_tcp_to_lo_mac"] = v4_tcp(40000, 80, dmac=MAC_ZERO)
    # --- program-specific
    P["ipv4_tcp_syn_23"] = v4_tcp(40004, 23)
    P["ipv6_udp_hoplimit_1"] = v6_udp(5000, 33434, b"traceroute", hlim=1)
    P["ipv4_tcp_syn_6000"] = v4_tcp(40005, 6000)
    P["ipv4_udp_6999"] = v4_udp(5000, 6999)
    P["ipv4_udp_7000"] = v4_udp(5000, 7000)
    P["ipv4_tcp_port_0"] = v4_tcp(40006, 0)
    P["ipv6_udp_6500"] = v6_udp(5000, 6500)
    P["ipv4_udp_8125_statsd"] = v4_udp(5000, 8125, b"requests:1|c")
    P["ipv4_udp_8126"] = v4_udp(5000, 8126, b"requests:1|c")
    P["ipv4_udp_8125_quarantined_mac"] = v4_udp(5000, 8125, b"requests:1|c", smac=MAC_QUARANTINE)
    P["arp_from_quarantined_mac"] = eth(MAC_BCAST, MAC_QUARANTINE, ETH_P_ARP,
                                        arp_request(MAC_QUARANTINE, ip4("10.0.0.99"), S4))
    P["ipv4_udp_9_discard"] = v4_udp(5000, 9, b"discard me")
    P["ipv4_udp_5060_sip"] = v4_udp(5060, 5060, b"INVITE sip:bob@example.com SIP/2.0\r\n")
    P["ipv4_udp_4000_dscp_ef"] = v4_udp(4000, 4000, b"rtp", tos=46 << 2)
    P["ipv6_tcp_1234_dscp_ef"] = v6_tcp(40000, 1234, tclass=46 << 2)
    P["ipv4_tcp_syn_8080"] = v4_tcp(40007, 8080)
    P["ipv4_udp_7777"] = v4_udp(5000, 7777, b"to xsk")
    P["ipv4_udp_7778"] = v4_udp(5000, 7778, b"to xsk or drop")
    P["ipv4_udp_7779"] = v4_udp(5000, 7779, b"not for xsk")
    P["ipv4_tcp_syn_to_10_0_0_3"] = v4_tcp(40000, 80, dst=ip4("10.0.0.3"))
    P["ipv4_udp_to_10_0_0_4"] = v4_udp(5000, 5001, b"port 4", dst=ip4("10.0.0.4"))
    P["ipv4_udp_to_10_0_0_11"] = v4_udp(5000, 5001, b"port 3", dst=ip4("10.0.0.11"))
    P["ipv6_udp_5353"] = v6_udp(5353, 5353, DNS_QUERY)
    P["ipv4_udp_5353"] = v4_udp(5353, 5353, DNS_QUERY)
    # firewall
    P["fw_ipv4_from_198_51_100_23_tcp_443"] = v4_tcp(40000, 443, src=ip4("198.51.100.23"))
    P["fw_ipv4_from_203_0_113_200_udp_123"] = v4_udp(123, 123, bytes(48), src=ip4("203.0.113.200"))
    P["fw_ipv4_from_203_0_113_100_udp_123"] = v4_udp(123, 123, bytes(48), src=ip4("203.0.113.100"))
    P["fw_ipv4_from_203_0_113_7_icmp"] = eth(MAC_SERVER, MAC_CLIENT, ETH_P_IP,
                                             ipv4(ip4("203.0.113.7"), S4, 1, icmp_echo(8)))
    P["fw_vlan100_ipv4_tcp_syn_22"] = eth(MAC_SERVER, MAC_CLIENT, ETH_P_8021Q,
                                          vlan(100, ETH_P_IP, ipv4(C4, S4, 6, tcp(C4, S4, 40001, 22, TCP_SYN))))
    P["fw_vlan100_from_198_51_100_1"] = eth(MAC_SERVER, MAC_CLIENT, ETH_P_8021Q,
                                            vlan(100, ETH_P_IP,
                                                 ipv4(ip4("198.51.100.1"), S4, 17,
                                                      udp(ip4("198.51.100.1"), S4, 1, 2, b"x"))))
    P["ipv4_udp_22"] = v4_udp(5000, 22, b"udp, not tcp")
    # rate limiter: sources 10.0.0.1 and 10.0.0.5
    for i in range(6):
        P["rl_10_0_0_1_udp_%d" % i] = v4_udp(5000, 6000 + i, b"burst %d" % i, ident=0x100 + i)
    for i in range(4):
        P["rl_10_0_0_5_udp_%d" % i] = v4_udp(5000, 6000 + i, b"other %d" % i, src=ip4("10.0.0.5"),
                                             ident=0x200 + i)
    # NAT: public 10.0.0.10:8080 <-> backend 192.168.0.10:80
    PUB, BE = ip4("10.0.0.10"), ip4("192.168.0.10")
    P["nat_tcp_syn_to_public_8080"] = v4_tcp(40000, 8080, dst=PUB, payload=b"")
    P["nat_tcp_http_to_public_8080"] = v4_tcp(40000, 8080, TCP_PSH | TCP_ACK, dst=PUB, payload=HTTP_GET)
    P["nat_udp_to_public_8080"] = v4_udp(5000, 8080, b"hello backend", dst=PUB)
    P["nat_udp_nocsum_to_public_8080"] = v4_udp(5000, 8080, b"no checksum", dst=PUB, zero_csum=True)
    P["nat_tcp_synack_from_backend_80"] = v4_tcp(80, 40000, TCP_SYN | TCP_ACK, src=BE, dst=C4,
                                                 smac=MAC_SERVER, dmac=MAC_CLIENT)
    P["nat_udp_from_backend_80"] = v4_udp(80, 5000, b"hello client", src=BE, dst=C4,
                                          smac=MAC_SERVER, dmac=MAC_CLIENT)
    P["nat_tcp_to_public_8081"] = v4_tcp(40000, 8081, dst=PUB)
    P["nat_icmp_to_public"] = eth(MAC_SERVER, MAC_CLIENT, ETH_P_IP, ipv4(C4, PUB, 1, icmp_echo(8)))
    P["nat_tcp_from_backend_443"] = v4_tcp(443, 40000, TCP_ACK, src=BE, dst=C4)
    P["nat_udp_fragment_to_public"] = eth(MAC_SERVER, MAC_CLIENT, ETH_P_IP,
                                          ipv4(C4, PUB, 17, bytes(32), df=False, frag=100))
    P["nat_udp_to_public_8080_truncated"] = v4_udp(5000, 8080, b"", dst=PUB)[:14 + 20 + 4]
    # IPIP tunnel
    T1, T2 = ip4("192.0.2.1"), ip4("192.0.2.2")
    inner = ipv4(C4, ip4("10.1.2.3"), 6, tcp(C4, ip4("10.1.2.3"), 40000, 80, TCP_SYN))
    P["ipip_from_192_0_2_2"] = eth(MAC_SERVER, MAC_CLIENT, ETH_P_IP, ipv4(T2, T1, 4, inner, ident=7))
    P["ipip_from_198_51_100_1"] = eth(MAC_SERVER, MAC_CLIENT, ETH_P_IP,
                                      ipv4(ip4("198.51.100.1"), T1, 4, inner, ident=8))
    P["ipip_with_outer_options"] = eth(MAC_SERVER, MAC_CLIENT, ETH_P_IP,
                                       ipv4(T2, T1, 4, inner, ident=9, options=bytes.fromhex("94040000")))
    P["ipip_to_other_endpoint"] = eth(MAC_SERVER, MAC_CLIENT, ETH_P_IP,
                                      ipv4(T2, ip4("192.0.2.99"), 4, inner, ident=10))
    P["ipip_inner_not_ipv4"] = eth(MAC_SERVER, MAC_CLIENT, ETH_P_IP,
                                   ipv4(T2, T1, 4, ipv6(C6, S6, 59, b"")[:20], ident=11))
    P["ipip_inner_truncated"] = eth(MAC_SERVER, MAC_CLIENT, ETH_P_IP, ipv4(T2, T1, 4, inner[:12], ident=12))
    P["ipv4_tcp_syn_to_10_1_2_3"] = v4_tcp(40000, 80, dst=ip4("10.1.2.3"))
    P["ipv4_udp_to_10_1_255_255"] = v4_udp(5000, 5001, b"to the tunnel", dst=ip4("10.1.255.255"))
    P["ipv4_tcp_syn_to_10_2_0_1"] = v4_tcp(40000, 80, dst=ip4("10.2.0.1"))
    # ICMP responder extras
    P["ipv4_options_icmp_echo_request"] = eth(MAC_SERVER, MAC_CLIENT, ETH_P_IP,
                                              ipv4(C4, S4, 1, icmp_echo(8), options=bytes.fromhex("94040000")))
    P["vlan100_ipv4_icmp_echo_request"] = eth(MAC_SERVER, MAC_CLIENT, ETH_P_8021Q,
                                              vlan(100, ETH_P_IP, ipv4(C4, S4, 1, icmp_echo(8))))
    P["ipv4_icmp_echo_request_ttl_1"] = eth(MAC_SERVER, MAC_CLIENT, ETH_P_IP,
                                            ipv4(C4, S4, 1, icmp_echo(8, seq=2), ttl=1))
    P["ipv6_icmpv6_echo_reply"] = eth(MAC_CLIENT, MAC_SERVER, ETH_P_IPV6,
                                      ipv6(S6, C6, 58, icmp6_echo(S6, C6, 129)))
    P["ipv4_icmp_truncated"] = eth(MAC_SERVER, MAC_CLIENT, ETH_P_IP, ipv4(C4, S4, 1, icmp_echo(8)))[:14 + 20 + 4]
    # ringbuf
    P["ipv4_tcp_fin_80"] = v4_tcp(40000, 80, TCP_FIN | TCP_ACK)
    # socket filter
    P["ipv4_udp_80"] = v4_udp(5000, 80, b"udp to 80")
    P["ipv6_tcp_synack_from_80"] = eth(MAC_CLIENT, MAC_SERVER, ETH_P_IPV6,
                                       ipv6(S6, C6, 6, tcp(S6, C6, 80, 40000, TCP_SYN | TCP_ACK)))
    P["ipv4_tcp_fragment_2nd_80"] = eth(MAC_SERVER, MAC_CLIENT, ETH_P_IP,
                                        ipv4(C4, S4, 6, struct.pack("!HH", 40000, 80) + bytes(28),
                                             df=False, frag=10))
    return P


# ---------------------------------------------------------------- pcaps

CORE = [
    "arp_request", "ipv4_tcp_syn_80", "ipv4_tcp_http_get", "ipv4_tcp_synack_from_80", "ipv4_tcp_syn_22",
    "ipv4_tcp_syn_9090", "ipv4_tcp_ack_443", "ipv4_udp_53_dns", "ipv4_icmp_echo_request",
    "ipv4_icmp_echo_reply", "ipv6_tcp_syn_80", "ipv6_tcp_syn_9090", "ipv6_udp_53_dns",
    "ipv6_icmpv6_echo_request", "vlan100_ipv4_tcp_syn_80", "vlan200_ipv6_udp_53", "qinq_ipv4_tcp_syn_22",
    "ipv4_options_tcp_syn_80", "lldp", "eth_only_ipv4", "ipv4_truncated_header", "ipv4_tcp_truncated",
    "ipv6_truncated_header", "vlan_truncated",
]
MORE = ["ipv4_udp_dhcp_broadcast", "ipv6_udp_mdns_multicast", "ipv4_udp_fragment_2nd", "ipv4_gre",
        "ipv6_hopbyhop_udp", "ipv4_udp_large_1442"]

PCAPS = {
    "xdp_pass": CORE + ["ipv4_udp_large_1442"],
    "xdp_loop": CORE + MORE,
    "xdp_foreach": CORE + MORE,
    "xdp_drop": CORE + ["runt_10_bytes", "ipv4_udp_dhcp_broadcast"],
    "xdp_book_9090": CORE + ["ipv4_tcp_syn_8080", "ipv6_udp_5353", "ipv4_gre"],
    "xdp_icmp_echo": CORE + ["ipv4_options_icmp_echo_request", "vlan100_ipv4_icmp_echo_request",
                             "ipv4_icmp_echo_request_ttl_1", "ipv6_icmpv6_echo_reply", "ipv4_icmp_truncated"],
    "xdp_redirect_devmap": CORE + ["ipv4_tcp_syn_to_10_0_0_3", "ipv4_udp_to_10_0_0_4", "ipv4_udp_to_10_0_0_11"],
    "xdp_redirect_cpumap": CORE + ["ipv4_udp_9_discard", "ipv4_tcp_syn_to_10_0_0_3", "ipv4_udp_to_10_0_0_4"],
    "xdp_redirect_xsk": CORE + ["ipv4_udp_7777", "ipv4_udp_7778", "ipv4_udp_7779", "ipv4_options_tcp_syn_80"],
    "xdp_redirect_ifindex": CORE + ["ipv4_udp_5353", "ipv6_udp_5353"],
    "parse_headers": CORE + MORE + ["runt_10_bytes", "ipv4_icmp_truncated"],
    "vlan_tag": CORE + ["ipv4_udp_large_1442"],
    "ipip_encap": CORE + ["ipv4_tcp_syn_to_10_1_2_3", "ipv4_udp_to_10_1_255_255", "ipv4_tcp_syn_to_10_2_0_1",
                          "ipv4_udp_large_1442"],
    "ipip_decap": CORE + ["ipip_from_192_0_2_2", "ipip_from_198_51_100_1", "ipip_with_outer_options",
                          "ipip_to_other_endpoint", "ipip_inner_not_ipv4", "ipip_inner_truncated",
                          "ipip_from_192_0_2_2"],
    "firewall": CORE + ["fw_ipv4_from_198_51_100_23_tcp_443", "fw_ipv4_from_203_0_113_200_udp_123",
                        "fw_ipv4_from_203_0_113_100_udp_123", "fw_ipv4_from_203_0_113_7_icmp",
                        "fw_vlan100_ipv4_tcp_syn_22", "fw_vlan100_from_198_51_100_1", "ipv4_udp_22",
                        "ipv4_tcp_syn_23", "ipv4_udp_fragment_2nd"],
    "percpu_stats": CORE + MORE,
    "hash_lookups": CORE + MORE + ["ipv4_tcp_syn_23", "ipv4_udp_22", "ipv4_tcp_syn_8080"],
    "tail_calls": CORE + ["ipv4_tcp_syn_23", "ipv6_udp_hoplimit_1"],
    "bpf2bpf_calls": CORE + ["ipv4_tcp_syn_6000", "ipv4_udp_6999", "ipv4_udp_7000", "ipv4_tcp_port_0",
                             "ipv6_udp_6500", "ipv4_gre"],
    "rodata_config": CORE + ["ipv4_udp_8125_statsd", "ipv4_udp_8126", "ipv4_udp_8125_quarantined_mac",
                             "arp_from_quarantined_mac"],
    "nat_tc": CORE + ["nat_tcp_syn_to_public_8080", "nat_tcp_http_to_public_8080", "nat_udp_to_public_8080",
                      "nat_udp_nocsum_to_public_8080", "nat_tcp_synack_from_backend_80",
                      "nat_udp_from_backend_80", "nat_tcp_to_public_8081", "nat_icmp_to_public",
                      "nat_tcp_from_backend_443", "nat_udp_fragment_to_public",
                      "nat_udp_to_public_8080_truncated"],
    "rate_limit": ["rl_10_0_0_1_udp_0", "rl_10_0_0_1_udp_1", "rl_10_0_0_5_udp_0", "rl_10_0_0_1_udp_2",
                   "rl_10_0_0_1_udp_3", "ipv6_udp_53_dns", "rl_10_0_0_5_udp_1", "rl_10_0_0_1_udp_4",
                   "arp_request", "rl_10_0_0_5_udp_2", "rl_10_0_0_5_udp_3", "rl_10_0_0_1_udp_5",
                   "eth_only_ipv4", "ipv4_truncated_header"],
    "tc_classifier": CORE + ["ipv4_udp_5060_sip", "ipv4_udp_4000_dscp_ef", "ipv6_tcp_1234_dscp_ef",
                             "ipv4_udp_9_discard", "ipv4_tcp_syn_8080"],
    "socket_filter": CORE + ["runt_10_bytes", "ipv4_udp_80", "ipv6_tcp_synack_from_80",
                             "ipv4_tcp_fragment_2nd_80", "ipv4_udp_large_1442"],
    "ringbuf_events": CORE + ["ipv4_tcp_fin_80", "ipv4_udp_9_discard", "ipv4_udp_fragment_2nd"],
    "trace_printk": CORE + ["ipv6_hopbyhop_udp", "ipv4_gre"],
    "tc_ctx_fields": CORE + ["runt_10_bytes", "ipv4_tcp_to_lo_mac", "ipv4_udp_dhcp_broadcast",
                             "ipv6_udp_mdns_multicast", "ipv4_udp_large_1442"],
    "xdp_meta_tail": CORE + ["ipv4_udp_large_1442", "ipv4_options_icmp_echo_request"],
}
# nat_xdp runs the same packets as nat_tc
PCAPS["nat_xdp"] = PCAPS["nat_tc"]
# the pcapng twin of one pcap, for later pcapng support (same packets, same order)
PCAPNG = {"parse_headers": "parse_headers.pcapng"}


def pcap_bytes(packets):
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i, p in enumerate(packets):
        out.append(struct.pack("<IIII", TS_BASE + i, 0, len(p), len(p)))
        out.append(p)
    return b"".join(out)


def pcapng_bytes(packets):
    def block(btype, body):
        body += b"\x00" * (-len(body) % 4)
        n = 12 + len(body)
        return struct.pack("<II", btype, n) + body + struct.pack("<I", n)

    def option(code, value):
        return struct.pack("<HH", code, len(value)) + value + b"\x00" * (-len(value) % 4)

    shb = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
                + option(4, b"bpfsim gen_pcaps.py") + option(0, b""))
    # if_tsresol 6 (microseconds, the default, stated explicitly)
    idb = block(0x00000001, struct.pack("<HHI", 1, 0, 0) + option(2, b"eth0") + option(9, b"\x06")
                + option(0, b""))
    out = [shb, idb]
    for i, p in enumerate(packets):
        ts = (TS_BASE + i) * 1000000
        body = struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(p), len(p)) + p
        out.append(block(0x00000006, body))
    return b"".join(out)


def packets_for(stem):
    cat = catalog()
    return [(name, cat[name]) for name in PCAPS[stem]]


def main():
    os.makedirs(OUT, exist_ok=True)
    cat = catalog()
    for stem, names in sorted(PCAPS.items()):
        pkts = [cat[n] for n in names]
        with open(os.path.join(OUT, stem + ".pcap"), "wb") as f:
            f.write(pcap_bytes(pkts))
    for stem, fname in PCAPNG.items():
        with open(os.path.join(OUT, fname), "wb") as f:
            f.write(pcapng_bytes([cat[n] for n in PCAPS[stem]]))
    used = {n for names in PCAPS.values() for n in names}
    unused = sorted(set(cat) - used)
    if unused:
        print("warning: catalog packets used by no pcap:", ", ".join(unused), file=sys.stderr)
    print("wrote %d pcap files and %d pcapng file(s) to %s" % (len(PCAPS), len(PCAPNG), OUT))


if __name__ == "__main__":
    main()
