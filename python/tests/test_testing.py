"""bpfsim.testing.assert_packet and the pytest plugin's fixtures."""

import pytest

import bpfsim
from bpfsim.testing import assert_packet, packet_diff

from _util import eth_ipv4_tcp


def test_assert_packet_names_fields():
    a, b = eth_ipv4_tcp(80), eth_ipv4_tcp(81)
    assert_packet(a, bytes(a))
    with pytest.raises(AssertionError) as e:
        assert_packet(a, b)
    assert "dport" in str(e.value) and "80" in str(e.value) and "81" in str(e.value)
    ttl = bytearray(a)
    ttl[22] = 63
    assert any("ttl" in line for line in packet_diff(bytes(ttl), a))


def test_assert_packet_without_scapy(monkeypatch):
    import bpfsim.testing as t

    def no_scapy(p):
        raise ImportError("no scapy")

    monkeypatch.setattr(t, "_scapy_fields", no_scapy)
    lines = t.packet_diff(eth_ipv4_tcp(80), eth_ipv4_tcp(80, dst="10.0.0.9"))
    assert lines == ["IP.dst: '10.0.0.2' != '10.0.0.9' (expected)"]


def test_fixtures(bpf_load, fake_clock, bpf_env, bpf_engine, vectors):
    assert bpf_engine in ("interp", "jit")
    assert bpf_env.clock == fake_clock and bpf_env.seed == 42
    obj = bpf_load(vectors / "xdp_pass.bpf.o")
    assert obj.env == bpf_env
    assert obj["xdp_pass_count"].run(eth_ipv4_tcp(80), engine=bpf_engine).action == bpfsim.XdpAction.PASS
    again = bpf_load(vectors / "xdp_pass.bpf.o")
    assert again.bss["rx_packets"] == 0, "fresh maps per load"


def test_plugin_option(pytester):
    pytester.makepyfile(
        """
        def test_engine(bpf_engine):
            assert bpf_engine in ("interp", "jit")
        """
    )
    result = pytester.runpytest("--bpf-engine", "both", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*engine=interp*", "*engine=jit*"])
    result = pytester.runpytest("--bpf-engine", "turbo")
    assert result.ret != 0
