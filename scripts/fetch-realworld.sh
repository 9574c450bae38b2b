#!/usr/bin/env bash
# Fetch real-world XDP objects built by others: xdp-tools' programs as Debian ships them
# (xdp-filter's nine filters, the libxdp dispatcher, the AF_XDP default program, xdpdump, the
# xdp-tools test programs). Unpacked, not installed: no root needed. Prints the folder on success.
# The objects are not ours and are never committed; tests/realworld.rs uses them when present.
set -euo pipefail
dest="${1:-target/realworld}"
if compgen -G "$dest/usr/lib/*/bpf/xdpfilt_*.o" >/dev/null; then
    echo "$dest"
    exit 0
fi
command -v apt-get >/dev/null || { echo "no apt-get: not a Debian-like system" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && timeout 120 apt-get download xdp-tools libxdp1 xdp-tests >/dev/null 2>&1) ||
    { echo "apt-get download xdp-tools libxdp1 xdp-tests failed (no package mirror?)" >&2; exit 1; }
mkdir -p "$dest"
for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$dest"; done
echo "$dest"
