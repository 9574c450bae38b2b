"""Pcap replays: counts, per-packet results, pcapng output with verdict comments."""

import pytest

import bpfsim
from bpfsim import XdpAction


def test_replay_counts_and_retvals(vectors):
    prog = bpfsim.load(vectors / "xdp_book_9090.bpf.o")["xdp_tcp_9090"]
    run = prog.run_pcap(vectors / "pcaps" / "xdp_book_9090.pcap")
    # The kernel's verdicts for this capture (expected/xdp_book_9090.json).
    assert run.counts == {XdpAction.DROP: 9, XdpAction.PASS: 16, XdpAction.TX: 2}
    assert run.packets == 27 and len(run.retvals) == 27 and run.refused == []
    assert run.actions.count(XdpAction.TX) == 2
    assert run.pps > 0 and run.results == []
    kept = prog.run_pcap(vectors / "pcaps" / "xdp_book_9090.pcap", keep_results=True)
    assert [r.action for r in kept.results] == run.actions


def test_refused_packets_are_listed(vectors):
    prog = bpfsim.load(vectors / "xdp_pass.bpf.o")["xdp_pass_count"]
    run = prog.run_pcap(vectors / "pcaps" / "parse_headers.pcap")
    assert run.packets == 32
    assert [i for i, _ in run.refused] == [30]
    assert "shorter than an Ethernet header" in run.refused[0][1]
    # pcapng input gives the same.
    ng = prog.run_pcap(vectors / "pcaps" / "parse_headers.pcapng")
    assert ng.counts == run.counts


def test_pcapng_output_with_comments(tmp_path, vectors):
    prog = bpfsim.load(vectors / "xdp_book_9090.bpf.o")["xdp_tcp_9090"]
    out = tmp_path / "tx.pcapng"
    run = prog.run_pcap(vectors / "pcaps" / "xdp_book_9090.pcap", out=out, only=("tx",))
    assert run.written == 2
    raw = out.read_bytes()
    assert raw[:4] == bytes.fromhex("0a0d0d0a") and raw.count(b"XDP_TX") == 2
    scapy = pytest.importorskip("scapy.all")
    pkts = scapy.rdpcap(str(out))
    assert len(pkts) == 2
    assert all(bytes(p)[:6] == bytes.fromhex("020000009090") for p in pkts)
    assert all(getattr(p, "comment", b"XDP_TX") in (b"XDP_TX", "XDP_TX") for p in pkts)
    everything = prog.run_pcap(vectors / "pcaps" / "xdp_book_9090.pcap", out=tmp_path / "all.pcapng")
    assert everything.written == 27


def test_bad_captures_are_errors(tmp_path, vectors):
    prog = bpfsim.load(vectors / "xdp_pass.bpf.o")["xdp_pass_count"]
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture at all")
    with pytest.raises(bpfsim.PacketError, match="bad.pcap"):
        prog.run_pcap(bad)
    with pytest.raises(bpfsim.PacketError, match="missing.pcap"):
        prog.run_pcap(tmp_path / "missing.pcap")


def _records(path):
    """The (header, record bytes) of a little-endian microsecond pcap file."""
    import struct
    data = path.read_bytes()
    off, out = 24, []
    while off + 16 <= len(data):
        incl = struct.unpack_from("<I", data, off + 8)[0]
        out.append(data[off:off + 16 + incl])
        off += 16 + incl
    return data[:24], out


@pytest.mark.parametrize("engine", ["interp", "jit", "baseline"])
def test_long_replays_read_in_batches(tmp_path, vectors, engine):
    # 8 x 27 = 216 packets: whole read-ahead batches of 64 and a partial one; each packet's
    # verdict lands in order, the runs' time is counted with or without kept results, and a
    # file cut inside a record after them all still raises.
    prog = bpfsim.load(vectors / "xdp_book_9090.bpf.o")["xdp_tcp_9090"]
    one = prog.run_pcap(vectors / "pcaps" / "xdp_book_9090.pcap", engine=engine)
    header, recs = _records(vectors / "pcaps" / "xdp_book_9090.pcap")
    big = tmp_path / "big.pcap"
    big.write_bytes(header + b"".join(recs * 8))
    run = prog.run_pcap(big, engine=engine)
    assert run.packets == 216 and run.retvals == one.retvals * 8
    assert {a: n // 8 for a, n in run.counts.items()} == one.counts
    assert 0 < run.run_seconds <= run.seconds
    kept = prog.run_pcap(big, engine=engine, keep_results=True)
    assert [r.action for r in kept.results] == run.actions
    assert all(r.duration_ns > 0 for r in kept.results)
    assert 0 < kept.run_seconds <= kept.seconds
    # A run after the replay times itself again.
    assert prog.run(recs[0][16:], engine=engine).duration_ns > 0
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(header + b"".join(recs * 8) + recs[0][:30])
    with pytest.raises(bpfsim.PacketError, match="truncated"):
        prog.run_pcap(cut, engine=engine)
