"""Maps as mappings, typed from BTF; globals; the environment."""

import ctypes

import pytest

import bpfsim
from bpfsim import XdpAction

from _util import eth_ipv4_tcp


def test_hash_with_struct_keys_and_int_values(vectors):
    obj = bpfsim.load(vectors / "firewall.bpf.o")
    ports = obj.maps["blocked_ports"]
    assert ports.value_type is int
    assert issubclass(ports.key_type, ctypes.Structure)
    key = ports.key_type(proto=6, port=int.from_bytes((22).to_bytes(2, "big"), "little"))
    ports[key] = 0
    ports[{"proto": 17, "port": int.from_bytes((53).to_bytes(2, "big"), "little")}] = 5
    ports[bytes([6, 0, 0, 23])] = 0
    assert len(ports) == 3 and key in ports
    assert ports[key] == 0
    assert obj["xdp_firewall"].run(eth_ipv4_tcp(22)).action == XdpAction.DROP
    assert ports[key] == 1, "the program counted the hit"
    keys = list(ports)
    assert keys[0] == key and keys[0] == {"proto": 6}
    del ports[key]
    with pytest.raises(KeyError):
        ports[key]
    with pytest.raises(KeyError):
        del ports[key]
    ports.clear()
    assert len(ports) == 0
    with pytest.raises(bpfsim.MapError, match="3 bytes"):
        ports[b"abc"] = 1
    with pytest.raises(bpfsim.MapError, match="does not fit"):
        obj.maps["verdicts"][0] = 1 << 64
    with pytest.raises(KeyError, match="has no map"):
        obj.maps["nope"]


def test_arrays_lpm_and_flags(vectors):
    obj = bpfsim.load(vectors / "firewall.bpf.o")
    verdicts = obj.maps["verdicts"]
    assert len(verdicts) == verdicts.max_entries and verdicts[0] == 0
    lpm = obj.maps["blocked_v4"]
    lpm[{"prefixlen": 24, "addr": int.from_bytes(bytes([10, 0, 0, 0]), "little")}] = 0
    assert obj["xdp_firewall"].run(eth_ipv4_tcp(80)).action == XdpAction.DROP
    with pytest.raises(bpfsim.MapError, match="EEXIST"):
        lpm.set({"prefixlen": 24, "addr": int.from_bytes(bytes([10, 0, 0, 0]), "little")}, 1,
                flags=bpfsim.NOEXIST)


def test_percpu_values_and_sum(vectors):
    obj = bpfsim.load(vectors / "percpu_stats.bpf.o", env=bpfsim.Env(ncpus=4, cpu=2))
    prog = obj["xdp_percpu_stats"]
    for _ in range(3):
        prog.run(eth_ipv4_tcp(80))
    counts = obj.maps["ethertype_count"]
    key = next(iter(counts))
    assert counts[key] == [0, 0, 3, 0]
    assert counts.sum(key) == 3
    obj.env = bpfsim.Env(ncpus=4, cpu=1)
    prog.run(eth_ipv4_tcp(80))
    assert counts[key] == [0, 1, 3, 0]
    counts[key] = [1, 2, 3, 4]
    assert counts.sum(key) == 10
    with pytest.raises(bpfsim.Error, match="ncpus"):
        obj.env = bpfsim.Env(ncpus=2)
    with pytest.raises(bpfsim.Error, match="not per-CPU"):
        bpfsim.load(vectors / "firewall.bpf.o").maps["verdicts"].sum(0)


def test_rodata_like_a_skeleton_until_the_first_run(vectors):
    obj = bpfsim.load(vectors / "rodata_config.bpf.o")
    assert obj.rodata["cfg"].match_port == 8125
    assert obj.data["packets_seen"] == 1000
    cfg = obj.rodata["cfg"]
    cfg.default_action = XdpAction.DROP
    obj.rodata["cfg"] = cfg
    arp = bytes.fromhex("ffffffffffff0200000000010806") + bytes(28)
    assert obj["xdp_config"].run(arp).action == XdpAction.DROP
    with pytest.raises(bpfsim.Error, match="frozen"):
        obj.rodata["config_version"] = 4
    assert obj.data["packets_seen"] == 1001
    obj.data["packets_seen"] = 5  # .data stays writable
    assert obj.data["packets_seen"] == 5
    with pytest.raises(KeyError, match="no variable"):
        obj.rodata["nope"]


def test_fake_clock_drives_a_rate_limiter(vectors):
    env = bpfsim.Env(clock=bpfsim.FakeClock(start_ns=10**9, step_ns=0))
    obj = bpfsim.load(vectors / "rate_limit.bpf.o", env=env)
    prog = obj["xdp_rate_limit"]
    verdicts = [prog.run(eth_ipv4_tcp(80)).action for _ in range(5)]
    assert verdicts == [XdpAction.PASS] * 3 + [XdpAction.DROP] * 2
    obj.env = bpfsim.Env(clock=bpfsim.FakeClock(start_ns=3 * 10**9, step_ns=0))
    assert prog.run(eth_ipv4_tcp(80)).action == XdpAction.PASS, "two seconds later: two tokens"
    b = obj.maps["buckets"][bytes([10, 0, 0, 1])]
    assert (b.passed, b.dropped) == (4, 2)
