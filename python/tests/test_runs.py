"""Runs: verdicts, packets, contexts, redirects, traces, events, tail calls, errors."""

import struct

import pytest

import bpfsim
from bpfsim import SkBuff, TcAction, XdpAction, XdpMd

from _util import eth_ipv4_tcp


def test_book_scenario_verdicts_and_rewrite(vectors):
    prog = bpfsim.load(vectors / "xdp_book_9090.bpf.o")["xdp_tcp_9090"]
    res = prog.run(eth_ipv4_tcp(9090))
    assert res.action is XdpAction.TX
    assert res.retval == 3
    assert res.data[:6] == bytes.fromhex("020000009090")
    assert res.data[6:] == eth_ipv4_tcp(9090)[6:]
    assert prog.run(eth_ipv4_tcp(22)).action == XdpAction.DROP
    arp = bytes.fromhex("ffffffffffff0200000000010806") + bytes(28)
    assert prog.run(arp).action == XdpAction.PASS
    assert res.insns > 5 and res.duration_ns > 0
    assert res.redirect is None and res.trace == [] and res.tail_calls == []


def test_no_context_is_the_default_one_on_every_call_path(vectors):
    """Without ctx, every way run() calls the extension (defaults left out, or repeat and
    engine by position) gives the default context: ingress ifindex 1, queue 0."""
    obj = bpfsim.load(vectors / "parse_headers.bpf.o")
    prog = obj["xdp_parse"]
    for kw in ({}, {"engine": "jit"}, {"engine": "auto"}, {"repeat": 3}):
        res = prog.run(eth_ipv4_tcp(80), **kw)
        flow = obj.bss["last_flow"]
        assert (flow.ingress_ifindex, flow.rx_queue_index) == (1, 0), kw
        assert res.ctx.ingress_ifindex == 1 and res.ctx.rx_queue_index == 0, kw


def test_packets_from_bytearray_memoryview_and_scapy(vectors):
    prog = bpfsim.load(vectors / "xdp_book_9090.bpf.o")["xdp_tcp_9090"]
    raw = eth_ipv4_tcp(9090)
    for p in (bytearray(raw), memoryview(raw)):
        assert prog.run(p).action == XdpAction.TX
    scapy = pytest.importorskip("scapy.all")
    pkt = scapy.Ether(dst="02:00:00:00:00:02") / scapy.IP(dst="10.0.0.2") / scapy.TCP(dport=9090)
    assert prog.run(pkt).action == XdpAction.TX
    with pytest.raises(bpfsim.PacketError, match="int"):
        prog.run(12345)


def test_refused_packets_and_contexts(vectors):
    prog = bpfsim.load(vectors / "xdp_pass.bpf.o")["xdp_pass_count"]
    with pytest.raises(bpfsim.PacketError, match="shorter than an Ethernet header"):
        prog.run(b"\x00" * 10)
    with pytest.raises(bpfsim.PacketError, match="metadata"):
        prog.run(eth_ipv4_tcp(80), ctx=XdpMd(meta=b"abc"))
    with pytest.raises(bpfsim.PacketError, match="SkBuff"):
        prog.run(eth_ipv4_tcp(80), ctx=SkBuff())


def test_xdp_context_in_and_out(vectors):
    obj = bpfsim.load(vectors / "parse_headers.bpf.o")
    prog = obj["xdp_parse"]
    res = prog.run(eth_ipv4_tcp(80), ctx=XdpMd(ingress_ifindex=7, rx_queue_index=3))
    flow = obj.bss["last_flow"]
    assert (flow.ingress_ifindex, flow.rx_queue_index) == (7, 3)
    assert res.ctx.ingress_ifindex == 7 and res.ctx.data_end == len(eth_ipv4_tcp(80))
    # Metadata before the packet: data_out starts at data_meta.
    res = prog.run(eth_ipv4_tcp(80), ctx=XdpMd(meta=b"META"))
    assert res.data[:4] == b"META" and res.ctx.data == 4


def test_tc_context_and_actions(vectors):
    obj = bpfsim.load(vectors / "tc_classifier.bpf.o")
    prog = obj["tc_classify"]
    res = prog.run(eth_ipv4_tcp(22), ctx=SkBuff(mark=0, priority=0))
    assert isinstance(res.action, TcAction)
    assert res.ctx is not None and res.ctx.wire_len == len(eth_ipv4_tcp(22))


def test_tail_call_chain_and_prog_array_values(vectors):
    obj = bpfsim.load(vectors / "tail_calls.bpf.o")
    jmp = obj.maps["jmp_table"]
    jmp[0] = obj["handle_ipv4"]
    jmp[3] = obj["handle_icmp"]
    icmp = bytes.fromhex("020000000002020000000001" "0800" "4500001c00000000400100000a0000010a000002"
                         "0800f7ff00000000")
    res = obj["xdp_dispatch"].run(icmp)
    assert res.tail_calls == ["handle_ipv4", "handle_icmp"]
    assert res.action == XdpAction.TX


def test_trace_and_ringbuf_records(vectors):
    obj = bpfsim.load(vectors / "trace_printk.bpf.o")
    res = obj["xdp_trace"].run(eth_ipv4_tcp(80))
    assert res.trace and all(isinstance(line, str) for line in res.trace)
    rb = bpfsim.load(vectors / "ringbuf_events.bpf.o")
    res = rb["xdp_ringbuf_events"].run(eth_ipv4_tcp(80))
    events = rb.maps["events"]
    assert [e[2] for e in res.events] == events.records()
    assert events.drain() and events.records() == []


def test_redirects_are_visible(vectors):
    obj = bpfsim.load(vectors / "xdp_redirect_ifindex.bpf.o")
    udp = bytes.fromhex("020000000002020000000001" "0800" "4500001c00000000401100000a0000010a000002"
                        "9c40003500080000")
    res = obj["xdp_redirect_dns"].run(udp)
    assert res.action == XdpAction.REDIRECT
    assert res.redirect.kind == "ifindex" and res.redirect.ifindex > 0
    dev = bpfsim.load(vectors / "xdp_redirect_devmap.bpf.o")
    dev.maps["tx_ports"][1] = 1
    res = dev["xdp_redirect_devmap"].run(eth_ipv4_tcp(80, dst="10.0.0.1"))
    assert res.action == XdpAction.REDIRECT
    assert (res.redirect.map, res.redirect.key) == ("tx_ports", 1)


def test_repeat(vectors):
    obj = bpfsim.load(vectors / "xdp_pass.bpf.o")
    obj["xdp_pass_count"].run(eth_ipv4_tcp(80), repeat=5)
    assert obj.bss["rx_packets"] == 5


def test_mocked_helpers_and_traps(vectors):
    obj = bpfsim.load(vectors / "rate_limit.bpf.o")
    prog = obj["xdp_rate_limit"]
    seen = []

    def ktime(call):
        seen.append(call.args)
        return 5_000_000_000

    obj.mock_helper("bpf_ktime_get_ns", ktime)
    prog.run(eth_ipv4_tcp(80))
    assert len(seen) == 1
    assert obj.maps["buckets"][bytes([10, 0, 0, 1])].last_refill_ns == 5_000_000_000

    def boom(call):
        raise ValueError("from the mock")

    obj.mock_helper("ktime_get_ns", boom)
    with pytest.raises(ValueError, match="from the mock"):
        prog.run(eth_ipv4_tcp(80))
    obj.restore_helper("bpf_ktime_get_ns")
    prog.run(eth_ipv4_tcp(80))

    # A lookup mocked to return a wild pointer: the program's dereference faults.
    obj.mock_helper("bpf_map_lookup_elem", lambda call: 0xDEAD0000)
    with pytest.raises(bpfsim.Trap) as e:
        prog.run(eth_ipv4_tcp(80, src="10.9.9.9"))
    assert e.value.code == "memoryread" and e.value.pc > 0
    assert e.value.result.action == XdpAction.ABORTED

    # Memory access from a mock, while the call lasts.
    kept = []

    def lookup(call):
        kept.append(call)
        key = call.read(call.args[1], 4)
        assert key == bytes([10, 0, 0, 1])
        return 0

    obj.mock_helper(1, lookup)
    prog.run(eth_ipv4_tcp(80))
    with pytest.raises(bpfsim.Error, match="returned"):
        kept[0].read(kept[0].args[1], 4)
    with pytest.raises(bpfsim.Error, match="no helper"):
        obj.mock_helper("bpf_no_such_helper", lookup)


def test_engines(vectors):
    obj = bpfsim.load(vectors / "xdp_book_9090.bpf.o")
    prog = obj["xdp_tcp_9090"]
    for engine in ("interp", "jit", "auto", "baseline"):
        res = prog.run(eth_ipv4_tcp(9090), engine=engine)
        assert res.action == XdpAction.TX and res.data[:6] == bytes.fromhex("020000009090")
    a = prog.run(eth_ipv4_tcp(22), engine="interp")
    b = prog.run(eth_ipv4_tcp(22), engine="jit")
    c = prog.run(eth_ipv4_tcp(22), engine="baseline")
    assert (a.action, a.data, a.insns) == (b.action, b.data, b.insns) == (c.action, c.data, c.insns)
    run = prog.run_pcap(vectors / "pcaps" / "xdp_book_9090.pcap", engine="jit")
    assert run.counts == {XdpAction.DROP: 9, XdpAction.PASS: 16, XdpAction.TX: 2}
    with pytest.raises(bpfsim.Error, match="not available"):
        prog.run(eth_ipv4_tcp(80), engine="turbo")
    # A program with a bpf_loop callback runs under the JIT (the interpreter runs the callback
    # body) exactly as under the interpreter, on separate objects so that maps start alike.
    runs = {}
    for engine in ("interp", "jit", "auto", "baseline"):
        loop = bpfsim.load(vectors / "xdp_loop.bpf.o")["xdp_loop"]
        r = loop.run(eth_ipv4_tcp(80), engine=engine)
        runs[engine] = (r.action, r.data, r.insns)
    assert runs["jit"] == runs["interp"] == runs["auto"] == runs["baseline"]


def test_gil_is_released_for_concurrent_runs(vectors):
    import threading

    objs = [bpfsim.load(vectors / "xdp_pass.bpf.o") for _ in range(4)]

    def work(o):
        p = o["xdp_pass_count"]
        for _ in range(2000):
            p.run(eth_ipv4_tcp(80))

    threads = [threading.Thread(target=work, args=(o,)) for o in objs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [o.bss["rx_packets"] for o in objs] == [2000] * 4
