#!/usr/bin/env python3
"""Our engines against the kernel's JIT on every bundled test program (issue 6).

Runs `bpfsim bench OBJ --pcap PCAP --format json` on each object of test-vectors/progs with the
capture of the same name (and, when scripts/fetch-realworld.sh has fetched them, on xdp-tools'
objects with parse_headers.pcap), and prints one markdown table: ns per run of the interpreter,
our JIT and the kernel's JIT, timed interleaved in one process per program, and the JIT's ratio
to the kernel. A kernel that bpf(2) cannot reach leaves its columns empty.

The maps get what the program's test vector (test-vectors/progs/expected/NAME.json) writes before
its packets (`bench --map`: the firewall's rules, the tail-call table, the devmap's ports), so
that lookups find what the tests put there; `--empty-maps` times every program on empty maps, as
passes before the tenth session did. Slots holding AF_XDP sockets are left empty.

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


def map_writes(name):
    """`--map` arguments for the setup of NAME's test vector (none without one)."""
    path = os.path.join(ROOT, "test-vectors", "progs", "expected", name + ".json")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        setup = json.load(f).get("setup") or []
    args = []
    for w in setup:
        if "value" in w:
            args += ["--map", f"{w['map']}:{w['key']}={w['value']}"]
        elif "value_prog" in w:
            args += ["--map", f"{w['map']}:{w['key']}=@{w['value_prog']}"]
    return args


def bench(bpfsim, obj, pcap, rounds, maps):
    cmd = [bpfsim, "bench", obj, "--pcap", pcap, "--format", "json", "--rounds", str(rounds),
           "--engines", "interp,jit,kernel"] + maps
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        return None, out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"
    return json.loads(out.stdout), None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bpfsim", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "bpfsim"))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--empty-maps", action="store_true",
                    help="no map writes from the test vectors' setups")
    ap.add_argument("names", nargs="*", help="only these programs (object names without .bpf.o)")
    args = ap.parse_args()
    if not os.path.exists(args.bpfsim):
        sys.exit(f"{args.bpfsim}: not found (cargo build --release -p bpfsim)")
    print("| object | program | maps set | interp ns | jit ns | kernel ns | jit / kernel |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, obj, pcap in programs(args.names):
        maps = [] if args.empty_maps else map_writes(name)
        res, err = bench(args.bpfsim, obj, pcap, args.rounds, maps)
        if res is None:
            print(f"| {name} | ({err}) | | | | | |")
            continue
        eng = res["engines"]

        def ns(e):
            return f"{eng[e]['ns_per_run']:.1f}" if e in eng else ""

        ratio = f"{eng['jit']['ratio_to_kernel']:.2f}x" if "kernel" in eng else ""
        print(f"| {name} | {res['program']} | {len(maps) // 2} | {ns('interp')} | {ns('jit')} "
              f"| {ns('kernel')} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
