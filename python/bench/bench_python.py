#!/usr/bin/env python3
"""Speed of the Python API, side by side in one run (these machines are noisy: compare the
figures of one run, not across runs).

    python python/bench/bench_python.py [--packets 100000]

1. the cost of one ``prog.run()`` from Python for a simple XDP program (xdp_pass: count and
   pass), and for the book's program;
2. ``run_pcap`` over a capture of N packets (the bundled captures' frames repeated): packets per
   second, and how much of the time is spent inside the program runs (``run_seconds``) versus
   capture reading and Python.
"""

import argparse
import pathlib
import struct
import sys
import tempfile
import time

import bpfsim
from bpfsim.testing import packet_diff  # noqa: F401 (import cost is part of a real session)

VECTORS = pathlib.Path(__file__).resolve().parents[2] / "test-vectors" / "progs"


def frames():
    out = []
    for p in sorted((VECTORS / "pcaps").glob("*.pcap")):
        data = p.read_bytes()
        off = 24
        while off + 16 <= len(data):
            incl = struct.unpack_from("<I", data, off + 8)[0]
            out.append(data[off + 16:off + 16 + incl])
            off += 16 + incl
    return [f for f in out if len(f) >= 14]


def write_pcap(path, packets):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, p in enumerate(packets):
            f.write(struct.pack("<IIII", 1_700_000_000 + i // 1_000_000, i % 1_000_000, len(p), len(p)))
            f.write(p)


def per_call(prog, pkt, n, engine="interp"):
    prog.run(pkt, engine=engine)
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            prog.run(pkt, engine=engine)
        best = min(best, (time.perf_counter() - t) / n)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=100_000)
    ap.add_argument("--calls", type=int, default=20_000)
    args = ap.parse_args()
    fs = frames()
    pkt = next(f for f in fs if len(f) >= 54)

    simple = bpfsim.load(VECTORS / "xdp_pass.bpf.o")["xdp_pass_count"]
    book = bpfsim.load(VECTORS / "xdp_book_9090.bpf.o")["xdp_tcp_9090"]
    t_simple = per_call(simple, pkt, args.calls)
    t_book = per_call(book, pkt, args.calls)
    r = simple.run(pkt)
    # One run's own time is noisy (a cold cache, an interrupt): the median of many.
    runs = sorted(simple.run(pkt).duration_ns for _ in range(1001))
    print(f"prog.run() from Python, best of 5 x {args.calls} calls:")
    print(f"  xdp_pass_count ({r.insns} insns): {t_simple * 1e6:.2f} us per call "
          f"(of which the test run itself, median of 1001: {runs[500] / 1000:.2f} us)")
    print(f"  xdp_tcp_9090 (book):   {t_book * 1e6:.2f} us per call")
    print(f"  xdp_tcp_9090 (book), engine=jit: {per_call(book, pkt, args.calls, 'jit') * 1e6:.2f} us per call")

    with tempfile.TemporaryDirectory() as d:
        cap = pathlib.Path(d) / "big.pcap"
        packets = [fs[i % len(fs)] for i in range(args.packets)]
        write_pcap(cap, packets)
        fresh = {"xdp_pass_count": lambda: bpfsim.load(VECTORS / "xdp_pass.bpf.o")["xdp_pass_count"],
                 "xdp_tcp_9090": lambda: bpfsim.load(VECTORS / "xdp_book_9090.bpf.o")["xdp_tcp_9090"]}
        for name, prog, engine in (("xdp_pass_count", simple, "interp"), ("xdp_tcp_9090", book, "interp"),
                                   ("xdp_pass_count", simple, "jit"), ("xdp_tcp_9090", book, "jit"),
                                   ("xdp_pass_count", simple, "baseline"), ("xdp_tcp_9090", book, "baseline"),
                                   ("xdp_pass_count", None, "auto"), ("xdp_tcp_9090", None, "auto")):
            best = None
            for _ in range(3):
                # `auto` from a cold start each time: interpreted, then the baseline tier's code,
                # then Cranelift's, compiled in the background.
                run = (prog or fresh[name]()).run_pcap(cap, engine=engine)
                if best is None or run.seconds < best.seconds:
                    best = run
            read = min(bpfsim._native.read_capture(str(cap))[2] for _ in range(3))
            print(f"run_pcap {name} [{engine}] over {best.packets} packets: {best.seconds:.3f} s, "
                  f"{best.pps / 1e6:.2f} Mpps")
            # `run_seconds` times the runs a batch of packets at a time (with their verdicts'
            # counting), and the replay reads the capture into reused buffers, faster than
            # `read_capture` does: the two estimates may overlap.
            print(f"  capture reading alone {read:.3f} s ({read / best.seconds:.0%}); the runs "
                  f"{best.run_seconds:.3f} s ({best.run_seconds / best.seconds:.0%}); Python: one call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
