#!/usr/bin/env python3
"""Our engines against the kernel's JIT on every bundled test program (issue 6).

Runs `bpfsim bench OBJ --pcap PCAP --format json` on each object of test-vectors/progs with the
capture of the same name (and, when scripts/fetch-realworld.sh has fetched them, on xdp-tools'
objects with parse_headers.pcap), and prints one markdown table: ns per run of the interpreter,
our JIT and the kernel's JIT, timed interleaved in one process per program, and the JIT's ratio
to the kernel. A kernel that bpf(2) cannot reach leaves its columns empty.

    cargo build --release -p bpfsim
    python3 scripts/bench-progs.py [--bpfsim target/release/bpfsim] [--rounds 7] [NAME...]
"""

import argparse
import glob
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def programs(names):
    progs = os.path.join(ROOT, "test-vectors", "progs")
    default_pcap = os.path.join(progs, "pcaps", "parse_headers.pcap")
    found = []
    for obj in sorted(glob.glob(os.path.join(progs, "*.bpf.o"))):
        name = os.path.basename(obj)[: -len(".bpf.o")]
        pcap = os.path.join(progs, "pcaps", name + ".pcap")
        found.append((name, obj, pcap if os.path.exists(pcap) else default_pcap))
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    realworld = os.path.join(target, "realworld", "usr", "lib", "*", "bpf", "*.o")
    for obj in sorted(glob.glob(realworld)):
        found.append((os.path.basename(obj)[: -len(".o")], obj, default_pcap))
    if names:
        found = [p for p in found if p[0] in names]
    return found


def bench(bpfsim, obj, pcap, rounds):
    cmd = [bpfsim, "bench", obj, "--pcap", pcap, "--format", "json", "--rounds", str(rounds),
           "--engines", "interp,jit,kernel"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        return None, out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"
    return json.loads(out.stdout), None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bpfsim", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "bpfsim"))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("names", nargs="*", help="only these programs (object names without .bpf.o)")
    args = ap.parse_args()
    if not os.path.exists(args.bpfsim):
        sys.exit(f"{args.bpfsim}: not found (cargo build --release -p bpfsim)")
    print("| object | program | interp ns | jit ns | kernel ns | jit / kernel |")
    print("|---|---|---:|---:|---:|---:|")
    for name, obj, pcap in programs(args.names):
        res, err = bench(args.bpfsim, obj, pcap, args.rounds)
        if res is None:
            print(f"| {name} | ({err}) | | | | |")
            continue
        eng = res["engines"]

        def ns(e):
            return f"{eng[e]['ns_per_run']:.1f}" if e in eng else ""

        ratio = f"{eng['jit']['ratio_to_kernel']:.2f}x" if "kernel" in eng else ""
        print(f"| {name} | {res['program']} | {ns('interp')} | {ns('jit')} | {ns('kernel')} "
              f"| {ratio} |", flush=True)


if __name__ == "__main__":
    main()
