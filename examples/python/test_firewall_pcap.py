"""A firewall (test-vectors/progs/firewall.bpf.c: blocked ports in a hash, blocked IPv4 prefixes
in an LPM trie) tested against a capture: rules from Python, verdicts per packet compared with
what the Linux kernel gave for the same capture and rules (recorded in expected/firewall.json)."""

import json

from bpfsim import XdpAction
from packets import VECTORS


def be16(port):
    return int.from_bytes(port.to_bytes(2, "big"), "little")


def addr(dotted):
    return int.from_bytes(bytes(int(x) for x in dotted.split(".")), "little")


def test_firewall_against_a_capture(bpf_load, tmp_path):
    obj = bpf_load(VECTORS / "firewall.bpf.o")
    ports, prefixes = obj.maps["blocked_ports"], obj.maps["blocked_v4"]
    for proto, port in [(6, 22), (6, 23), (17, 53)]:
        ports[{"proto": proto, "port": be16(port)}] = 0
    for plen, net, hits in [(24, "198.51.100.0", 0), (25, "203.0.113.128", 0),
                            (32, "203.0.113.7", 0), (28, "198.51.100.0", 100)]:
        prefixes[{"prefixlen": plen, "addr": addr(net)}] = hits

    run = obj["xdp_firewall"].run_pcap(VECTORS / "pcaps" / "firewall.pcap",
                                       out=tmp_path / "dropped.pcapng", only=("drop",))

    kernel = json.loads((VECTORS / "expected" / "firewall.json").read_text())
    assert run.retvals == [p["retval"] for p in kernel["packets"]]
    assert run.written == run.counts[XdpAction.DROP]
    # Longest prefix wins: 198.51.100.1 hit the /28 (preset to 100), not the /24.
    assert prefixes[{"prefixlen": 28, "addr": addr("198.51.100.0")}] > 100
    assert ports[{"proto": 6, "port": be16(22)}] > 0
