#!/usr/bin/env python3
"""Markdown tables of the last `cargo bench -p bpfsim-benches` run, as docs/benchmarks.md shows them.

    python3 benches/report.py [CRITERION_DIR]

CRITERION_DIR defaults to $CARGO_TARGET_DIR/criterion, else target/criterion. Figures are
criterion's median per-iteration time of each function's latest run ("new"); ratios are taken
between functions of the same run only, which is all a shared machine allows. Standard library only.
"""

import json
import os
import sys
from pathlib import Path

WORKLOADS = ["empty", "loop_xorshift", "alu_chains", "parse_csum_64", "parse_csum_1500", "map_heavy", "loop_callback", "loop_short", "foreach_array"]
OBJECTS = ["empty", "loop_xorshift", "alu_chains", "parse_csum", "map_heavy", "loop_callback", "loop_short", "foreach_array", "synthetic_1000_insns", "synthetic_1000_skips"]


def load(root: Path) -> dict:
    """full_id -> median ns of the latest run of every benchmark under root."""
    out = {}
    for bench in root.glob("*/*/new/benchmark.json"):
        est = bench.with_name("estimates.json")
        if est.exists():
            full_id = json.loads(bench.read_text())["full_id"]
            out[full_id] = json.loads(est.read_text())["median"]["point_estimate"]
    return out


def ns(v):
    if v is None:
        return "-"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def human(v):
    if v is None:
        return "-"
    if v >= 1e6:
        return f"{v / 1e6:.2f} ms"
    if v >= 1e3:
        return f"{v / 1e3:.1f} µs"
    return f"{v:.0f} ns"


def ratio(a, b):
    return f"{a / b:.2f}x" if a is not None and b else "-"


def main() -> int:
    if len(sys.argv) > 1:
        root = Path(sys.argv[1])
    else:
        root = Path(os.environ.get("CARGO_TARGET_DIR", "target")) / "criterion"
    d = load(root)
    if not d:
        print(f"no criterion results under {root}", file=sys.stderr)
        return 1

    print("execute: ns per run (the C programs of test-vectors/bench)\n")
    print("| workload | bpfsim interp | bpfsim JIT | kernel JIT | rbpf interp | rbpf JIT "
          "| interp speed-up over rbpf interp | our JIT / kernel JIT "
          "| same, each less its empty run |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    empty_jit = d.get("execute/empty/jit")
    empty_kernel = d.get("execute/empty/kernel")
    for w in WORKLOADS:
        g = {e: d.get(f"execute/{w}/{e}") for e in ["interp", "jit", "kernel", "rbpf_interp", "rbpf_jit"]}
        net = "-"
        if w != "empty" and None not in (g["jit"], g["kernel"], empty_jit, empty_kernel):
            net = ratio(g["jit"] - empty_jit, g["kernel"] - empty_kernel)
        print(f"| {w} | {ns(g['interp'])} | {ns(g['jit'])} | {ns(g['kernel'])} | {ns(g['rbpf_interp'])} "
              f"| {ns(g['rbpf_jit'])} | {ratio(g['rbpf_interp'], g['interp'])} "
              f"| {ratio(g['jit'], g['kernel'])} | {net} |")

    print("\nexecute, one whole test run per iteration (set-up and result included)\n")
    print("| workload | bpfsim interp | bpfsim JIT | same, repeat (set-up once) interp | JIT |")
    print("|---|---:|---:|---:|---:|")
    for w in ["empty", "map_heavy"]:
        g = {e: d.get(f"execute/{w}/{e}") for e in ["interp_once", "jit_once", "interp", "jit"]}
        print(f"| {w} | {ns(g['interp_once'])} | {ns(g['jit_once'])} | {ns(g['interp'])} | {ns(g['jit'])} |")

    print("\nasm: ns per run, engines alone (hand-written assembly, memory in r1)\n")
    print("| workload | bpfsim interp | bpfsim JIT | rbpf interp | rbpf JIT "
          "| interp speed-up over rbpf interp | our JIT / rbpf JIT |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for w in WORKLOADS[:5]:
        g = {e: d.get(f"asm/{w}/{e}") for e in ["bpfsim_interp", "bpfsim_jit", "rbpf_interp", "rbpf_jit"]}
        print(f"| {w} | {ns(g['bpfsim_interp'])} | {ns(g['bpfsim_jit'])} | {ns(g['rbpf_interp'])} "
              f"| {ns(g['rbpf_jit'])} | {ratio(g['rbpf_interp'], g['bpfsim_interp'])} "
              f"| {ratio(g['bpfsim_jit'], g['rbpf_jit'])} |")

    print("\nload, verify, jit_compile: time per object\n")
    print("| object | ELF parse + link | simulator load | kernel load (its verifier + JIT) "
          "| bpfsim verify | kernel verify (raw load) | bpfsim verify / kernel "
          "| bpfsim JIT compile | baseline tier compile | interpreter translation | rbpf JIT compile |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for o in OBJECTS:
        load_cols = [f"load/{o}/elf", f"load/{o}/sim", f"load/{o}/kernel", f"verify/{o}/bpfsim",
                     f"verify/{o}/kernel"]
        compile_cols = [f"jit_compile/{o}/bpfsim_jit", f"jit_compile/{o}/bpfsim_baseline",
                        f"jit_compile/{o}/bpfsim_interp_translate", f"jit_compile/{o}/rbpf_jit"]
        v = ratio(d.get(f"verify/{o}/bpfsim"), d.get(f"verify/{o}/kernel"))
        print(f"| {o} | " + " | ".join(human(d.get(c)) for c in load_cols) + f" | {v} | "
              + " | ".join(human(d.get(c)) for c in compile_cols) + " |")
    print("\njit_compile: the 1,000-instruction programs and a real one of several hundred\n")
    print("| program | bpfsim JIT (Cranelift) | with the verifier's hints | baseline tier "
          "| interpreter translation |")
    print("|---|---:|---:|---:|---:|")
    progs = sorted({k.split("/")[1] for k in d if k.startswith("jit_compile/")
                    and k.split("/")[1].startswith(("synthetic_", "parse_headers_"))})
    for p in progs:
        cols = [f"jit_compile/{p}/bpfsim_jit", f"jit_compile/{p}/bpfsim_jit_hints",
                f"jit_compile/{p}/bpfsim_baseline", f"jit_compile/{p}/bpfsim_interp_translate"]
        print(f"| {p} | " + " | ".join(human(d.get(c)) for c in cols) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
