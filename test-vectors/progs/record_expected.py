#!/usr/bin/env python3
"""Record the kernel's results for every program test vector (ground truth).

    sudo python3 record_expected.py              # every scenario -> expected/<scenario>.json
    sudo python3 record_expected.py firewall ... # only the named scenarios
    sudo python3 record_expected.py --check      # load every object, report verifier errors, write nothing

Needs root, bpf(2), bpftool, a bpffs (mounted on /sys/fs/bpf if missing) and, for
bpf_printk output, tracefs (mounted on /sys/kernel/tracing if missing).

For each scenario (SCENARIOS below):
  1. `bpftool prog loadall OBJ /sys/fs/bpf/bpfsim-tv/<scenario>/progs pinmaps .../maps`
     loads every program of the object (types from the section names, maps created
     by libbpf, .rodata frozen with the values from the ELF);
  2. the maps named in `setup` are filled through bpf(2) (prog fds for PROG_ARRAY
     slots, an AF_XDP socket bound to lo queue 0 for an XSKMAP slot);
  3. every packet of the scenario's pcap goes through BPF_PROG_TEST_RUN once
     (repeat 1) with this process pinned to CPU 0, in file order, maps kept
     between packets; the retval, output packet, output context, bpf_printk lines
     and ring-buffer records are recorded per packet;
  4. the maps are dumped, the pins removed, and expected/<scenario>.json written.
The JSON schema is described in README.md.
"""

import ctypes
import ctypes.util
import errno
import json
import mmap
import os
import platform
import shutil
import socket
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import gen_pcaps  # noqa: E402

PIN_ROOT = "/sys/fs/bpf/bpfsim-tv"
TRACEFS = "/sys/kernel/tracing"
RUN_CPU = 0
SCHEMA = 1

# ---------------------------------------------------------------- scenarios
#
# name: unique scenario name = expected/<name>.json
# object/program: the object (stem) and the function run by BPF_PROG_TEST_RUN
# pcap: stem of pcaps/<stem>.pcap (default: the object stem)
# setup: map entries written before the first packet; each is
#   {"map", "key": hex, "value": hex} | {"map", "key", "value_prog": function} |
#   {"map", "key", "value_xsk": {"ifindex": 1, "queue": 0}}
# ctx_in: optional dict of context fields given to every run (skb: mark,
#   priority, cb, ifindex, ingress_ifindex...; xdp: ingress_ifindex,
#   rx_queue_index)
# nondeterministic: [{"map", "value_bytes": [start, end]}] bytes of map values
#   replaced by "??" in maps_after
# notes: free text, copied


def u32(v):
    return struct.pack("<I", v).hex()


def u64(v):
    return struct.pack("<Q", v).hex()


def port_key(proto, port):  # firewall struct port_key {u8 proto; u8 pad; __be16 port}
    return struct.pack("<BBH", proto, 0, socket.htons(port)).hex()


def lpm4(prefixlen, addr):  # struct lpm_v4_key {u32 prefixlen; __be32 addr}
    return (struct.pack("<I", prefixlen) + gen_pcaps.ip4(addr)).hex()


SCENARIOS = [
    dict(name="xdp_pass", object="xdp_pass", program="xdp_pass_count",
         notes="Every frame passes; .bss counts frames and bytes."),
    dict(name="xdp_foreach", object="xdp_foreach", program="xdp_foreach",
         notes="bpf_for_each_map_elem: sums over a hash of frame lengths (order-independent) and "
               "an array walk that stops at index 2; odd frame totals pass."),
    dict(name="xdp_loop", object="xdp_loop", program="xdp_loop",
         notes="bpf_loop sums 0..=(len & 31), the callback stopping the loop; odd sums drop."),
    dict(name="xdp_drop", object="xdp_drop", program="xdp_drop_non_ip",
         notes="Only untagged IPv4/IPv6 pass. The 10-byte runt is refused by BPF_PROG_TEST_RUN "
               "(EINVAL, shorter than ETH_HLEN) and never reaches the program."),
    dict(name="xdp_book_9090", object="xdp_book_9090", program="xdp_tcp_9090",
         notes="TCP to 9090 (IPv4 and IPv6): dst MAC := 02:00:00:00:90:90, XDP_TX. Other TCP "
               "(including truncated TCP headers): XDP_DROP. Everything else, VLAN-tagged frames "
               "included: XDP_PASS."),
    dict(name="xdp_icmp_echo", object="xdp_icmp_echo", program="xdp_icmp_echo",
         notes="ICMP/ICMPv6 echo requests become replies (XDP_TX) with checksums patched "
               "incrementally; output checksums are valid."),
    dict(name="xdp_redirect_devmap", object="xdp_redirect_devmap", program="xdp_redirect_devmap",
         setup=[{"map": "tx_ports", "key": u32(1), "value": u32(1)},
                {"map": "tx_ports", "key": u32(3), "value": u32(1)}],
         notes="Devmap slots 1 and 3 hold ifindex 1 (lo). IPv4 to an address whose low 3 bits "
               "select a filled slot returns XDP_REDIRECT (4); an empty slot returns the "
               "fallback XDP_PASS from the flags. The test run reports only the action, not the "
               "target; the output packet has its MACs swapped either way."),
    dict(name="xdp_redirect_cpumap", object="xdp_redirect_cpumap", program="xdp_cpumap_steer",
         setup=[{"map": "cpu_map", "key": u32(1), "value": u32(192) + u32(0)}],
         notes="CPU 1 has a cpumap queue (qsize 192, no program), CPU 0's slot is empty: frames "
               "hashed to CPU 1 give XDP_REDIRECT, to CPU 0 the fallback XDP_PASS. last_cpu in "
               ".data keeps the CPU chosen for the last IP frame."),
    dict(name="xdp_redirect_cpumap.xdp_cpumap_discard", object="xdp_redirect_cpumap",
         program="xdp_cpumap_discard", pcap="xdp_redirect_cpumap",
         notes="A SEC(\"xdp/cpumap\") program (expected_attach_type BPF_XDP_CPUMAP) loads but "
               "BPF_PROG_TEST_RUN refuses it."),
    dict(name="xdp_redirect_xsk", object="xdp_redirect_xsk", program="xdp_sock_steer",
         setup=[{"map": "xsks_map", "key": u32(0), "value_xsk": {"ifindex": 1, "queue": 0}}],
         notes="xsks_map[0] holds an AF_XDP socket bound to lo queue 0 (copy mode). Test runs "
               "see rx_queue_index 0 (loopback's queue 0 by default), so UDP to 7777 and 7778 "
               "give XDP_REDIRECT; UDP to 7779 and the rest XDP_PASS."),
    dict(name="xdp_redirect_xsk.empty", object="xdp_redirect_xsk", program="xdp_sock_steer",
         notes="No socket in xsks_map: UDP to 7777 passes after the failed lookup, UDP to 7778 "
               "gets the redirect_map fallback XDP_DROP."),
    dict(name="xdp_redirect_ifindex", object="xdp_redirect_ifindex", program="xdp_redirect_dns",
         notes="bpf_redirect(1, 0) for DNS returns XDP_REDIRECT; the test run does not transmit."),
    dict(name="parse_headers", object="parse_headers", program="xdp_parse",
         notes="class_stats counts per class (enum pkt_class); last_flow in .bss describes the "
               "last frame, including ctx->ingress_ifindex and rx_queue_index (1 and 0: test runs "
               "without an ingress device run on loopback's queue 0). The same packets are in "
               "pcaps/parse_headers.pcapng."),
    dict(name="vlan_tag.xdp_vlan_pop", object="vlan_tag", program="xdp_vlan_pop", pcap="vlan_tag",
         notes="Outer 802.1Q/802.1ad tag removed with bpf_xdp_adjust_head(+4)."),
    dict(name="vlan_tag.xdp_vlan_push", object="vlan_tag", program="xdp_vlan_push", pcap="vlan_tag",
         notes="Untagged frames get an 802.1Q tag (PCP 5, VID 100) with bpf_xdp_adjust_head(-4)."),
    dict(name="ipip_encap", object="ipip_encap", program="xdp_ipip_encap",
         notes="IPv4 to 10.1.0.0/16 gets an outer IPv4 header 192.0.2.1 -> 192.0.2.2 (checksum "
               "via bpf_csum_diff) and XDP_TX."),
    dict(name="ipip_decap", object="ipip_decap", program="xdp_ipip_decap",
         notes="IPIP to 192.0.2.1 loses its outer header (bpf_xdp_adjust_head(+ihl*4))."),
    dict(name="firewall", object="firewall", program="xdp_firewall",
         setup=[{"map": "blocked_ports", "key": port_key(6, 22), "value": u64(0)},
                {"map": "blocked_ports", "key": port_key(6, 23), "value": u64(0)},
                {"map": "blocked_ports", "key": port_key(17, 53), "value": u64(0)},
                {"map": "blocked_v4", "key": lpm4(24, "198.51.100.0"), "value": u64(0)},
                {"map": "blocked_v4", "key": lpm4(25, "203.0.113.128"), "value": u64(0)},
                {"map": "blocked_v4", "key": lpm4(32, "203.0.113.7"), "value": u64(0)},
                {"map": "blocked_v4", "key": lpm4(28, "198.51.100.0"), "value": u64(100)},
                ],
         notes="Blocked ports: TCP 22, TCP 23, UDP 53 (IPv4 and IPv6, one 802.1Q tag looked "
               "through). Blocked IPv4 sources (LPM trie): 198.51.100.0/24, 198.51.100.0/28 "
               "(value preset to 100), 203.0.113.128/25, 203.0.113.7/32; 198.51.100.1 matches "
               "the /28 (longest prefix), 198.51.100.23 the /24. The source check comes first. "
               "Each rule's value counts its hits; verdicts[0..2] = pass, drop by prefix, "
               "drop by port."),
    dict(name="percpu_stats", object="percpu_stats", program="xdp_percpu_stats",
         notes="All runs on CPU 0 (the recorder pins itself), so CPU 1's per-CPU values stay 0."),
    dict(name="tail_calls", object="tail_calls", program="xdp_dispatch",
         setup=[{"map": "jmp_table", "key": u32(0), "value_prog": "handle_ipv4"},
                {"map": "jmp_table", "key": u32(1), "value_prog": "handle_ipv6"},
                {"map": "jmp_table", "key": u32(2), "value_prog": "handle_arp"},
                {"map": "jmp_table", "key": u32(3), "value_prog": "handle_icmp"}],
         notes="All four slots filled. ran[] counts: 0 entry, 1 ipv4, 2 ipv6, 3 arp, 4 icmp, "
               "5 fall-through in the entry program. ICMP goes entry -> ipv4 -> icmp (XDP_TX)."),
    dict(name="tail_calls.partial", object="tail_calls", program="xdp_dispatch", pcap="tail_calls",
         setup=[{"map": "jmp_table", "key": u32(0), "value_prog": "handle_ipv4"}],
         notes="Only slot 0 (IPv4) filled: IPv6 and ARP fall through in the entry program "
               "(XDP_PASS), ICMP falls through in handle_ipv4 (XDP_PASS instead of XDP_TX)."),
    dict(name="bpf2bpf_calls", object="bpf2bpf_calls", program="xdp_calls",
         notes="Ports 6000-6999 dropped, port 0 aborted (global function port_policy)."),
    dict(name="rodata_config", object="rodata_config", program="xdp_config",
         notes="Defaults from .rodata: UDP 8125 dropped, source MAC 02:ba:d0:00:00:01 dropped. "
               ".data packets_seen starts at 1000."),
    dict(name="nat_tc", object="nat_tc", program="tc_nat",
         notes="DNAT 10.0.0.10:8080 -> 192.168.0.10:80 and SNAT back, checksums fixed by the "
               "csum helpers; a zero UDP checksum stays zero (BPF_F_MARK_MANGLED_0)."),
    dict(name="nat_xdp", object="nat_xdp", program="xdp_nat",
         notes="Same translation as nat_tc in XDP (manual RFC 1624 + bpf_csum_diff); translated "
               "frames are XDP_TX with MACs swapped. Output checksums are valid."),
    dict(name="rate_limit", object="rate_limit", program="xdp_rate_limit",
         nondeterministic=[{"map": "buckets", "value_bytes": [8, 16]}], max_seconds=0.9,
         notes="Token buckets (burst 3, 1 token/s) keyed by IPv4 source. Retvals are deterministic "
               "as long as the whole packet train runs within one second of the first packet "
               "(it does: a few ms); last_refill_ns (value bytes 8..16) holds bpf_ktime_get_ns() "
               "and is recorded as ??. A simulator should expect 3 passes then drops per source."),
    dict(name="tc_classifier", object="tc_classifier", program="tc_classify",
         notes="ctx_out shows mark and priority; tc_classid is not reported by test runs, so "
               "class_hits (keyed by the tc_classid read back) makes it observable."),
    dict(name="socket_filter.sock_http_only", object="socket_filter", program="sock_http_only",
         pcap="socket_filter",
         notes="Socket filter: skb->data at the network header, return = bytes kept (skb->len, "
               "the L3 length). The output packet comes back with its 14-byte Ethernet header "
               "zeroed. The runt is refused with EINVAL."),
    dict(name="socket_filter.sock_http_ldabs", object="socket_filter", program="sock_http_ldabs",
         pcap="socket_filter",
         notes="LD_ABS/LD_IND relative to the network header; keep = -1 (retval 4294967295). "
               "An LD_ABS beyond the packet ends the program with 0."),
    dict(name="ringbuf_events", object="ringbuf_events", program="xdp_ringbuf_events",
         notes="Ring buffer records are read (and consumed) after each packet; discarded records "
               "are not listed. struct event is 24 bytes."),
    dict(name="trace_printk", object="trace_printk", program="xdp_trace",
         notes="trace lists the bpf_printk messages per packet as the kernel formats them (the "
               "text after 'bpf_trace_printk: ' in the trace buffer)."),
    dict(name="tc_ctx_fields", object="tc_ctx_fields", program="tc_ctx_fields",
         notes="seen[i] holds what the program read from __sk_buff for packet i (refused runts "
               "take no slot, nor do frames the kernel refuses: EtherType IPv4 with fewer than 20 "
               "bytes after the Ethernet header, IPv6 with fewer than 40, get EINVAL). protocol "
               "and pkt_type come from eth_type_trans on loopback, whose dev_addr and broadcast "
               "address are both 00:00:00:00:00:00: pkt_type is 0 (HOST) for that destination, "
               "2 (MULTICAST) for every group address including ff:ff:ff:ff:ff:ff (never 1, "
               "BROADCAST), 3 (OTHERHOST) otherwise. ifindex and ingress_ifindex read 1 (lo), "
               "vlan_present 0 (the tag stays in the data). ctx_out reports mark, priority and "
               "cb as written."),
    dict(name="tc_ctx_fields.ctx_in", object="tc_ctx_fields", program="tc_ctx_fields",
         pcap="tc_ctx_fields",
         ctx_in={"mark": 0x55, "priority": 3, "cb": [1, 2, 3, 4, 5], "ifindex": 1,
                 "ingress_ifindex": 1, "tstamp": 1000},
         notes="Same program with a context given to every run (mark, priority, cb, ifindex, "
               "ingress_ifindex, tstamp)."),
    dict(name="xdp_meta_tail", object="xdp_meta_tail", program="xdp_meta_tail",
         notes="data_out starts at data_meta: 8 bytes of metadata ('META', original length) come "
               "first. Frames over 128 bytes are cut to 128; IPv4 ICMP frames grow by 4 zero "
               "bytes. ctx_out (xdp_md) data/data_end are offsets from data_meta."),
]

# ---------------------------------------------------------------- bpf(2)

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
NR_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}[platform.machine()]

BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM, BPF_MAP_GET_NEXT_KEY = 1, 2, 4
BPF_OBJ_GET, BPF_PROG_TEST_RUN, BPF_OBJ_GET_INFO_BY_FD = 7, 10, 15

MAP_TYPES = {1: "hash", 2: "array", 3: "prog_array", 4: "perf_event_array", 5: "percpu_hash",
             6: "percpu_array", 7: "stack_trace", 8: "cgroup_array", 9: "lru_hash",
             10: "lru_percpu_hash", 11: "lpm_trie", 12: "array_of_maps", 13: "hash_of_maps",
             14: "devmap", 15: "sockmap", 16: "cpumap", 17: "xskmap", 18: "sockhash",
             22: "queue", 23: "stack", 27: "ringbuf", 25: "devmap_hash"}
PROG_TYPES = {1: "socket_filter", 3: "sched_cls", 4: "sched_act", 6: "xdp", 8: "cgroup_skb"}
PERCPU = {"percpu_hash", "percpu_array", "lru_percpu_hash"}
ARRAYLIKE = {"array", "percpu_array", "devmap", "cpumap"}
NOT_DUMPED = {"prog_array": "syscall lookups return program ids, which vary; see setup",
              "ringbuf": "no keys; records are listed per packet",
              "xskmap": "syscall lookups are not supported (EOPNOTSUPP)",
              "perf_event_array": "not dumped"}


class BpfError(OSError):
    pass


def sys_bpf(cmd, attr):
    buf = ctypes.create_string_buffer(bytes(attr), 160)
    r = libc.syscall(NR_BPF, cmd, buf, ctypes.c_uint(160))
    if r < 0:
        e = ctypes.get_errno()
        raise BpfError(e, os.strerror(e))
    return r, buf.raw


def addr(b):
    return ctypes.addressof(b) if b is not None else 0


def obj_get(path):
    p = ctypes.create_string_buffer(path.encode())
    fd, _ = sys_bpf(BPF_OBJ_GET, struct.pack("<QIIi", addr(p), 0, 0, 0))
    return fd


def obj_info(fd, size):
    info = ctypes.create_string_buffer(size)
    sys_bpf(BPF_OBJ_GET_INFO_BY_FD, struct.pack("<IIQ", fd, size, addr(info)))
    return info.raw


class Map:
    def __init__(self, fd, ncpus):
        info = obj_info(fd, 96)
        self.fd = fd
        mtype, self.id, self.key_size, self.value_size, self.max_entries, self.flags = \
            struct.unpack_from("<6I", info, 0)
        self.kernel_name = info[24:40].split(b"\0")[0].decode()
        self.type = MAP_TYPES.get(mtype, str(mtype))
        self.ncpus = ncpus
        # libbpf names global-data maps "<obj prefix>.<section>": keep the ELF section name
        self.name = self.kernel_name[self.kernel_name.index("."):] if "." in self.kernel_name else None

    def _vsize(self):
        if self.type in PERCPU:
            return ((self.value_size + 7) & ~7) * self.ncpus
        return self.value_size

    def update(self, key, value, flags=0):
        k = ctypes.create_string_buffer(key, self.key_size)
        v = ctypes.create_string_buffer(value, max(len(value), self._vsize()))
        sys_bpf(BPF_MAP_UPDATE_ELEM, struct.pack("<IIQQQ", self.fd, 0, addr(k), addr(v), flags))

    def lookup(self, key):
        k = ctypes.create_string_buffer(key, self.key_size)
        v = ctypes.create_string_buffer(self._vsize())
        sys_bpf(BPF_MAP_LOOKUP_ELEM, struct.pack("<IIQQQ", self.fd, 0, addr(k), addr(v), 0))
        return v.raw

    def keys(self):
        out = []
        cur = None
        while True:
            k = ctypes.create_string_buffer(cur, self.key_size) if cur is not None else None
            nk = ctypes.create_string_buffer(self.key_size)
            try:
                sys_bpf(BPF_MAP_GET_NEXT_KEY, struct.pack("<IIQQ", self.fd, 0, addr(k), addr(nk)))
            except BpfError as e:
                if e.errno == errno.ENOENT:
                    return out
                raise
            cur = nk.raw
            out.append(cur)
            if len(out) > 100000:
                raise RuntimeError("map iteration does not end")


def prog_info(fd):
    info = obj_info(fd, 232)
    ptype = struct.unpack_from("<I", info, 0)[0]
    name = info[64:80].split(b"\0")[0].decode()
    return PROG_TYPES.get(ptype, str(ptype)), name


def test_run(prog_fd, data, ctx_in=None, ctx_out_size=0, out_size=16384):
    din = ctypes.create_string_buffer(data, len(data))
    dout = ctypes.create_string_buffer(out_size)
    cin = ctypes.create_string_buffer(ctx_in, len(ctx_in)) if ctx_in else None
    cout = ctypes.create_string_buffer(ctx_out_size) if ctx_out_size else None
    attr = struct.pack("<IIIIQQIIIIQQIII", prog_fd, 0, len(data), out_size, addr(din), addr(dout),
                       1, 0, len(ctx_in) if ctx_in else 0, ctx_out_size, addr(cin), addr(cout), 0, 0, 0)
    _, raw = sys_bpf(BPF_PROG_TEST_RUN, attr)
    retval = struct.unpack_from("<I", raw, 4)[0]
    size_out = struct.unpack_from("<I", raw, 12)[0]
    ctx_size_out = struct.unpack_from("<I", raw, 44)[0]
    return retval, dout.raw[:size_out], (cout.raw[:ctx_size_out] if cout is not None else b"")


# ---------------------------------------------------------------- contexts

SKB_SIZE = 192
XDP_MD_SIZE = 24
SKB_FIELDS = {"mark": 8, "priority": 32, "ingress_ifindex": 36, "ifindex": 40, "tstamp": 152,
              "wire_len": 160, "gso_segs": 164, "gso_size": 176, "hwtstamp": 184}


def skb_ctx(fields):
    b = bytearray(SKB_SIZE)
    for k, v in (fields or {}).items():
        if k == "cb":
            struct.pack_into("<5I", b, 48, *v)
        elif k in ("tstamp", "hwtstamp"):
            struct.pack_into("<Q", b, SKB_FIELDS[k], v)
        else:
            struct.pack_into("<I", b, SKB_FIELDS[k], v)
    return bytes(b)


def decode_skb_out(b):
    if len(b) < SKB_SIZE:
        return {}
    d = {k: struct.unpack_from("<Q" if k in ("tstamp", "hwtstamp") else "<I", b, off)[0]
         for k, off in SKB_FIELDS.items()}
    d["cb"] = list(struct.unpack_from("<5I", b, 48))
    return d


def xdp_ctx(data_len, fields):
    f = fields or {}
    return struct.pack("<6I", 0, data_len, 0, f.get("ingress_ifindex", 0), f.get("rx_queue_index", 0), 0)


def decode_xdp_out(b):
    if len(b) < XDP_MD_SIZE:
        return {}
    names = ["data", "data_end", "data_meta", "ingress_ifindex", "rx_queue_index", "egress_ifindex"]
    return dict(zip(names, struct.unpack_from("<6I", b, 0)))


# ---------------------------------------------------------------- ring buffer


class RingbufReader:
    BUSY, DISCARD = 1 << 31, 1 << 30

    def __init__(self, fd, size):
        self.page = mmap.PAGESIZE
        self.size = size
        self.cons = mmap.mmap(fd, self.page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        self.prod = mmap.mmap(fd, self.page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=self.page)

    def drain(self):
        records = []
        cons = struct.unpack_from("<Q", self.cons, 0)[0]
        prod = struct.unpack_from("<Q", self.prod, 0)[0]
        while cons < prod:
            off = self.page + (cons & (self.size - 1))
            hdr = struct.unpack_from("<I", self.prod, off)[0]
            if hdr & self.BUSY:
                break
            length = hdr & ~(self.BUSY | self.DISCARD)
            if not hdr & self.DISCARD:
                records.append(bytes(self.prod[off + 8:off + 8 + length]))
            cons += (length + 8 + 7) & ~7
        struct.pack_into("<Q", self.cons, 0, cons)
        return records

    def close(self):
        self.cons.close()
        self.prod.close()


# ---------------------------------------------------------------- AF_XDP socket

AF_XDP, SOL_XDP = 44, 283
XDP_RX_RING, XDP_UMEM_REG, XDP_UMEM_FILL_RING, XDP_UMEM_COMPLETION_RING = 2, 4, 5, 6
XDP_COPY = 1 << 1


def make_xsk(ifindex, queue):
    """An AF_XDP socket with a 16-frame UMEM, bound in copy mode: enough for an XSKMAP slot."""
    s = socket.socket(AF_XDP, socket.SOCK_RAW, 0)
    frames, chunk = 16, 4096
    umem = mmap.mmap(-1, frames * chunk, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    ubuf = (ctypes.c_char * (frames * chunk)).from_buffer(umem)
    reg = struct.pack("<QQIIII", ctypes.addressof(ubuf), frames * chunk, chunk, 0, 0, 0)
    fd = s.fileno()

    def setsockopt(opt, value):
        b = ctypes.create_string_buffer(value, len(value))
        if libc.setsockopt(fd, SOL_XDP, opt, b, len(value)) < 0:
            e = ctypes.get_errno()
            raise OSError(e, "setsockopt(SOL_XDP, %d): %s" % (opt, os.strerror(e)))

    setsockopt(XDP_UMEM_REG, reg)
    for opt in (XDP_UMEM_FILL_RING, XDP_UMEM_COMPLETION_RING, XDP_RX_RING):
        setsockopt(opt, struct.pack("<I", 16))
    sa = struct.pack("<HHIII", AF_XDP, XDP_COPY, ifindex, queue, 0)
    sab = ctypes.create_string_buffer(sa, len(sa))
    if libc.bind(fd, sab, len(sa)) < 0:
        e = ctypes.get_errno()
        raise OSError(e, "bind(AF_XDP): " + os.strerror(e))
    return s, umem, ubuf


# ---------------------------------------------------------------- helpers


def ensure_mounts():
    if not os.path.ismount("/sys/fs/bpf"):
        subprocess.run(["mount", "-t", "bpf", "bpf", "/sys/fs/bpf"], check=True)
    if not os.path.exists(os.path.join(TRACEFS, "trace")):
        subprocess.run(["mount", "-t", "tracefs", "nodev", TRACEFS], check=True)


def possible_cpus():
    n = 0
    for part in open("/sys/devices/system/cpu/possible").read().strip().split(","):
        lo, _, hi = part.partition("-")
        n += int(hi or lo) - int(lo) + 1
    return n


def clear_trace():
    with open(os.path.join(TRACEFS, "trace"), "w") as f:
        f.write("")


def read_trace():
    out = []
    with open(os.path.join(TRACEFS, "trace")) as f:
        for line in f:
            if line.startswith("#"):
                continue
            i = line.find("bpf_trace_printk: ")
            if i >= 0:
                out.append(line[i + len("bpf_trace_printk: "):].rstrip("\n"))
    return out


def section_of(obj, func):
    """The ELF section holding a function symbol (via llvm-readelf, for the record)."""
    try:
        syms = subprocess.run(["llvm-readelf", "-sW", obj], capture_output=True, text=True, check=True).stdout
        secs = subprocess.run(["llvm-readelf", "-SW", obj], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    ndx = None
    for line in syms.splitlines():
        f = line.split()
        if len(f) >= 8 and f[3] == "FUNC" and f[7] == func:
            ndx = f[6]
    for line in secs.splitlines():
        line = line.replace("[ ", "[")
        f = line.split()
        if ndx and f and f[0] == "[%s]" % ndx:
            return f[1]
    return None


def bpftool_loadall(obj, pdir, mdir):
    r = subprocess.run(["bpftool", "prog", "loadall", obj, pdir, "pinmaps", mdir],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("bpftool prog loadall %s failed:\n%s%s" % (obj, r.stdout, r.stderr[-4000:]))


XDP_ACTIONS = ["XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT"]
TC_ACTIONS = {0xFFFFFFFF: "TC_ACT_UNSPEC", 0: "TC_ACT_OK", 1: "TC_ACT_RECLASSIFY", 2: "TC_ACT_SHOT",
              3: "TC_ACT_PIPE", 4: "TC_ACT_STOLEN", 5: "TC_ACT_QUEUED", 6: "TC_ACT_REPEAT",
              7: "TC_ACT_REDIRECT"}


def action_name(prog_type, retval):
    if prog_type == "xdp":
        return XDP_ACTIONS[retval] if retval < len(XDP_ACTIONS) else None
    if prog_type in ("sched_cls", "sched_act"):
        return TC_ACTIONS.get(retval)
    return None


def errname(e):
    return errno.errorcode.get(e, str(e))


# ---------------------------------------------------------------- one scenario


def run_scenario(sc, ncpus):
    stem = sc["object"]
    obj = os.path.join(HERE, stem + ".bpf.o")
    pcap_stem = sc.get("pcap", stem)
    packets = gen_pcaps.packets_for(pcap_stem)
    check_pcap(pcap_stem, packets)

    base = os.path.join(PIN_ROOT, sc["name"].replace(".", "_"))
    pdir, mdir = base + "/progs", base + "/maps"
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(base)
    fds, keep = [], []
    try:
        bpftool_loadall(obj, pdir, mdir)
        progs = {}
        for fn in os.listdir(pdir):
            fd = obj_get(os.path.join(pdir, fn))
            fds.append(fd)
            progs[fn] = fd
        maps = {}
        for fn in os.listdir(mdir):
            fd = obj_get(os.path.join(mdir, fn))
            fds.append(fd)
            m = Map(fd, ncpus)
            m.name = m.name or fn
            maps[m.name] = m
        prog_fd = progs[sc["program"]]
        prog_type, _ = prog_info(prog_fd)

        for ent in sc.get("setup", []):
            m = maps[ent["map"]]
            key = bytes.fromhex(ent["key"])
            if "value_prog" in ent:
                value = struct.pack("<i", progs[ent["value_prog"]])
            elif "value_xsk" in ent:
                x = make_xsk(ent["value_xsk"]["ifindex"], ent["value_xsk"]["queue"])
                keep.append(x)
                value = struct.pack("<i", x[0].fileno())
            else:
                value = bytes.fromhex(ent["value"])
            m.update(key, value)

        rings = {n: RingbufReader(m.fd, m.max_entries) for n, m in maps.items() if m.type == "ringbuf"}
        trace = True
        results = []
        ctx_fields = sc.get("ctx_in")
        t0 = time.monotonic()
        for i, (pname, data) in enumerate(packets):
            if prog_type == "xdp":
                ctx_in, ctx_out_size = xdp_ctx(len(data), ctx_fields), XDP_MD_SIZE
            else:
                ctx_in, ctx_out_size = (skb_ctx(ctx_fields) if ctx_fields else None), SKB_SIZE
            if trace:
                clear_trace()
            rec = {"pcap_index": i, "name": pname}
            try:
                retval, out, ctx_out = test_run(prog_fd, data, ctx_in, ctx_out_size)
                rec["retval"] = retval
                if action_name(prog_type, retval):
                    rec["action"] = action_name(prog_type, retval)
                rec["data_out"] = out.hex()
                if ctx_out:
                    rec["ctx_out"] = ctx_out.hex()
                    rec["ctx_out_fields"] = decode_xdp_out(ctx_out) if prog_type == "xdp" else \
                        decode_skb_out(ctx_out)
            except BpfError as e:
                rec["errno"] = e.errno
                rec["error"] = errname(e.errno)
            if trace:
                lines = read_trace()
                if lines:
                    rec["trace"] = lines
            for n, r in rings.items():
                recs = r.drain()
                if recs:
                    rec.setdefault("ringbuf", {})[n] = [x.hex() for x in recs]
            results.append(rec)
        elapsed = time.monotonic() - t0
        if elapsed > sc.get("max_seconds", 1e9):
            raise RuntimeError("%s: the packet train took %.3f s, more than the %.3f s its "
                               "expectations assume" % (sc["name"], elapsed, sc["max_seconds"]))

        maps_after = {}
        for n in sorted(maps):
            m = maps[n]
            entry = {"type": m.type, "key_size": m.key_size, "value_size": m.value_size,
                     "max_entries": m.max_entries}
            if m.type in NOT_DUMPED:
                entry["not_dumped"] = NOT_DUMPED[m.type]
                maps_after[n] = entry
                continue
            entries = []
            for k in m.keys():
                try:
                    v = m.lookup(k)
                except BpfError as e:
                    if e.errno == errno.ENOENT:
                        continue
                    raise
                if m.type in PERCPU:
                    stride = (m.value_size + 7) & ~7
                    vals = [v[c * stride:c * stride + m.value_size] for c in range(ncpus)]
                    if m.type in ARRAYLIKE and not any(any(x) for x in vals):
                        continue
                    entries.append({"key": k.hex(), "values": [mask(sc, n, x) for x in vals]})
                else:
                    if m.type in ARRAYLIKE and not any(v) and not n.startswith("."):
                        continue
                    entries.append({"key": k.hex(), "value": mask(sc, n, v)})
            if m.type in ARRAYLIKE:
                entry["entries_listed"] = "non-zero only" if not n.startswith(".") else "all"
            else:
                entry["entries_listed"] = "all"
                entries.sort(key=lambda e: e["key"])
            entry["entries"] = entries
            maps_after[n] = entry
        for r in rings.values():
            r.close()
    finally:
        for fd in fds:
            os.close(fd)
        for x in keep:
            x[0].close()
        shutil.rmtree(base, ignore_errors=True)

    doc = {
        "schema": SCHEMA,
        "scenario": sc["name"],
        "object": stem + ".bpf.o",
        "source": stem + ".bpf.c",
        "program": sc["program"],
        "section": section_of(obj, sc["program"]),
        "prog_type": prog_type,
        "pcap": "pcaps/%s.pcap" % pcap_stem,
        "packet_count": len(packets),
        "run": {"repeat": 1, "cpu": RUN_CPU, "nr_cpus": ncpus, "maps_persist_across_packets": True},
        "ctx_in": ctx_fields,
        "setup": sc.get("setup", []),
        "packets": results,
        "maps_after": maps_after,
        "nondeterministic": sc.get("nondeterministic", []),
        "notes": sc.get("notes", ""),
        "recorded_with": {"kernel": platform.release(), "tool": "record_expected.py"},
    }
    return doc


def mask(sc, mapname, value):
    h = value.hex()
    for nd in sc.get("nondeterministic", []):
        if nd["map"] == mapname:
            a, b = nd["value_bytes"]
            h = h[:2 * a] + "??" * (b - a) + h[2 * b:]
    return h


def check_pcap(stem, packets):
    """The committed pcap must hold exactly the generator's packets."""
    path = os.path.join(HERE, "pcaps", stem + ".pcap")
    with open(path, "rb") as f:
        want = gen_pcaps.pcap_bytes([p for _, p in packets])
        if f.read() != want:
            raise RuntimeError("%s is stale: rerun gen_pcaps.py" % path)


def check_all():
    ensure_mounts()
    bad = 0
    for src in sorted(os.listdir(HERE)):
        if not src.endswith(".bpf.o"):
            continue
        base = os.path.join(PIN_ROOT, "check_" + src[:-6])
        shutil.rmtree(base, ignore_errors=True)
        os.makedirs(base)
        try:
            bpftool_loadall(os.path.join(HERE, src), base + "/progs", base + "/maps")
            print("ok      %-28s %s" % (src, " ".join(sorted(os.listdir(base + "/progs")))))
        except RuntimeError as e:
            bad += 1
            print("FAILED  %s\n%s" % (src, e))
        finally:
            shutil.rmtree(base, ignore_errors=True)
    return bad


def main(argv):
    if os.geteuid() != 0:
        sys.exit("record_expected.py needs root (bpf(2), bpffs, tracefs)")
    os.sched_setaffinity(0, {RUN_CPU})
    if "--check" in argv:
        bad = check_all()
        try:
            os.rmdir(PIN_ROOT)
        except OSError:
            pass
        sys.exit(1 if bad else 0)
    ensure_mounts()
    ncpus = possible_cpus()
    names = [a for a in argv if not a.startswith("-")]
    todo = [s for s in SCENARIOS if not names or s["name"] in names or s["object"] in names]
    if names and not todo:
        sys.exit("no scenario named " + ", ".join(names))
    os.makedirs(os.path.join(HERE, "expected"), exist_ok=True)
    for sc in todo:
        doc = run_scenario(sc, ncpus)
        path = os.path.join(HERE, "expected", sc["name"] + ".json")
        with open(path, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        verdicts = {}
        for p in doc["packets"]:
            k = p.get("retval", p.get("error"))
            verdicts[k] = verdicts.get(k, 0) + 1
        print("%-40s %-14s %3d packets  %s" % (sc["name"], doc["prog_type"], len(doc["packets"]),
                                                " ".join("%s:%d" % kv for kv in sorted(verdicts.items(),
                                                                                      key=str))))
    try:
        os.rmdir(PIN_ROOT)
    except OSError:
        pass


if __name__ == "__main__":
    main(sys.argv[1:])
