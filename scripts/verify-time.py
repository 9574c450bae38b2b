#!/usr/bin/env python3
"""Verification time of every test-vectors program: bpfsim's verifier against the kernel's own
`verification time N usec` (BPF_LOG_STATS), from `bpfsim verify --compare-kernel --format json`.

Issue 5 asks for at most twice the kernel's time. Each program is verified ROUNDS times on both
sides and the medians compared, because single timings on a shared machine are noisy. Exits 1 if
a program takes more than twice the kernel's time; prints `skipped:` without a kernel.
Usage: scripts/verify-time.py [BPFSIM_BINARY] (default target/release/bpfsim).
"""
import glob
import json
import os
import statistics
import subprocess
import sys

ROUNDS = 5
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "target/release/bpfsim")
objects = sorted(glob.glob(os.path.join(root, "test-vectors/progs/*.bpf.o")))

times = {}  # program -> ([ours], [kernel])
for _ in range(ROUNDS):
    for obj in objects:
        r = subprocess.run(
            # Log level 0 on both sides: the kernel's time then has statistics only, no
            # per-instruction log (which at level 1 multiplies it 10-20x), and ours no log.
            [binary, "verify", obj, "--compare-kernel", "--log-level", "0", "--format", "json"],
            capture_output=True, text=True,
        )
        if r.returncode == 3:
            print("skipped:", r.stderr.strip())
            sys.exit(0)
        for line in r.stdout.splitlines():
            d = json.loads(line)
            k = d.get("kernel") or {}
            if k.get("verification_time_us") is None:
                continue
            ours, theirs = times.setdefault(f"{os.path.basename(obj)}:{d['program']}", ([], []))
            ours.append(d["verification_time_us"])
            theirs.append(k["verification_time_us"])

if not times:
    print("no kernel verification times reported")
    sys.exit(1)
rows = []
for name, (ours, theirs) in sorted(times.items()):
    o, t = statistics.median(ours), statistics.median(theirs)
    rows.append((max(o, 1) / max(t, 1), name, o, t))
print(f"{'program':<44} {'bpfsim us':>10} {'kernel us':>10} {'ratio':>6}")
for ratio, name, o, t in rows:
    print(f"{name:<44} {o:>10.0f} {t:>10.0f} {ratio:>6.2f}")
ratios = sorted(r[0] for r in rows)
worst = max(rows)
within = sum(r <= 2.0 for r in ratios)
print(
    f"verification time vs kernel: {within}/{len(rows)} within 2x, "
    f"median {statistics.median(ratios):.2f}x, worst {worst[0]:.2f}x ({worst[1]})"
)
sys.exit(0 if within == len(rows) else 1)
