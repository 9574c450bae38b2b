#!/usr/bin/env bash
# Runs the test binaries of the crates that talk to the kernel as uid 65534 with every
# capability dropped: each kernel-dependent test must skip with a one-line reason, and every
# other test must still pass. Needs root (to drop privileges) and setpriv.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null; then
    echo "skipped: needs root and setpriv to drop privileges"
    exit 0
fi
bins=$(cargo test -p bpfsim -p bpfsim-kernel --tests --no-run --message-format=json 2>/dev/null |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and "test" in m["target"]["kind"]:
        print(m["executable"])
')
total=0
skips=0
for b in $bins; do
    # --test-threads=1 keeps each skip line next to its test name.
    out=$(cd /tmp && setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all \
        "$b" --test-threads=1 --nocapture 2>&1) || {
        echo "$out" | tail -40
        echo "FAILED as uid 65534: $b"
        exit 1
    }
    n=$(grep -c 'skipped: ' <<<"$out" || true)
    total=$((total + 1))
    skips=$((skips + n))
    printf '  %-28s %3d skipped\n' "$(basename "${b%-*}")" "$n"
done
echo "unprivileged: $total test binaries pass, $skips kernel-dependent tests skipped with a reason"
