#!/usr/bin/env bash
# Every test of the project, as CI runs it. Needs a Rust toolchain (rustup, with clippy and
# rustfmt) and Python >= 3.9 with venv and pip (the Python package's build backend, maturin,
# and pytest/scapy come from PyPI); kernel-backed tests skip with a one-line reason where bpf(2)
# is unavailable.
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n== %s\n' "$*"; }

step "format"
cargo fmt --all -- --check
step "clippy"
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy -p bpfsim --no-default-features --all-targets -- -D warnings  # without the kernel backend
step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
step "build (release)"
cargo build --release
step "the README's first command, as written there (the main job)"
main_job=$(grep -m1 '# main job$' README.md | sed 's/#.*//')
out=$(eval "$main_job")
echo "$out"
grep -Eq 'XDP_TX +2$' <<<"$out" || { echo "the main job did not print its verdict table"; exit 1; }
step "verification time against the kernel's, every test-vectors program (at most 2x)"
scripts/verify-time.py
step "real-world XDP objects (xdp-tools, as Debian ships it; best effort)"
scripts/fetch-realworld.sh target/realworld || echo "not fetched: tests/realworld.rs will skip"
step "unit, integration and property tests"
cargo test --workspace
step "JIT against the interpreter: 10,000 random programs, 2,000 with proven stack accesses, 3,000 with callbacks, 2,000 packet parsers over 77 lengths (optimised build)"
cargo test --release -p bpfsim-jit --test differential --test stack_differential --test callback_props --test bounds_props
step "benchmarks in test mode (each bench runs once)"
cargo test -p bpfsim-benches --benches
step "conformance suite"
./target/release/bpfsim conformance test-vectors/conformance/tests
step "conformance suite in the live kernel against both engines (exit 3: bpf(2) unavailable)"
rc=0
./target/release/bpfsim conformance --kernel test-vectors/conformance/tests || rc=$?
[ "$rc" -eq 0 ] || [ "$rc" -eq 3 ] || exit "$rc"
step "kernel-dependent tests as uid 65534 without capabilities: they skip, never fail"
scripts/unprivileged-tests.sh
step "Python package: pip install into a fresh virtualenv, then its tests and examples"
rm -rf target/pyenv
python3 -m venv target/pyenv
target/pyenv/bin/pip install -q --disable-pip-version-check ./ pytest scapy
target/pyenv/bin/python -m pytest -q -p no:cacheprovider python/tests examples/python
echo
echo "all tests passed"
