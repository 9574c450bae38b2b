"""Kernel-compat mode: the same object and packets in the simulator and in the live kernel.

Tests that need bpf(2) carry the bpf_kernel marker and skip with the reason where it cannot be
used; test_unprivileged.py checks that path for real (uid 65534, no capabilities)."""

import json

import pytest

import bpfsim
import bpfsim.kernel
from _util import VECTORS, eth_ipv4_tcp, pcap_packets

SCENARIOS = sorted((VECTORS / "expected").glob("*.json"))


def _env():
    # Per-CPU maps hold one value per possible CPU in the kernel: the simulator needs as many.
    return bpfsim.Env(ncpus=bpfsim.kernel.possible_cpus())


def test_available_matches_the_reason():
    reason = bpfsim.kernel.unavailable_reason()
    assert bpfsim.kernel.available() == (reason is None)
    if reason is not None:
        assert reason.strip() and "\n" not in reason
        with pytest.raises(bpfsim.KernelUnavailable, match="."):
            bpfsim.kernel.require()
    assert issubclass(bpfsim.KernelUnavailable, bpfsim.Error)
    assert issubclass(bpfsim.KernelDifference, bpfsim.Error)
    assert issubclass(bpfsim.KernelDifference, AssertionError)


@pytest.mark.bpf_kernel
@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_vector_scenario_agrees_with_the_kernel(path):
    sc = json.loads(path.read_text())
    obj = bpfsim.load(VECTORS / sc["object"], env=_env())
    for u in sc["setup"]:
        m, key = obj.maps[u["map"]], bytes.fromhex(u["key"])
        if "value_prog" in u:
            m[key] = obj[u["value_prog"]]
        elif "value_xsk" in u:
            m[key] = u["value_xsk"]["queue"]
        else:
            m[key] = bytes.fromhex(u["value"])
    for nd in sc["nondeterministic"]:
        obj.kernel_ignore_map_bytes(nd["map"], *nd["value_bytes"])
    prog = obj.program(sc["program"], sc["prog_type"])
    ctx = bpfsim.SkBuff(**sc["ctx_in"]) if sc["ctx_in"] else None
    compared = refused = 0
    for pkt in pcap_packets(VECTORS / sc["pcap"]):
        try:
            res = prog.run(pkt, ctx=ctx, compare_kernel=True)
        except bpfsim.PacketError as e:
            # Refused by both (one side only would be a KernelDifference).
            assert e.kernel is None and e.kernel_error, e
            refused += 1
            continue
        assert res.differences == []
        assert res.kernel.retval == res.retval and res.kernel.data == res.data
        compared += 1
    assert compared + refused == sc["packet_count"]
    assert obj.kernel_map_differences() == []
    # Runs the kernel refuses as a whole (xdp/cpumap programs) are refused by both.
    assert compared > 0 or sc["section"] == "xdp/cpumap"


@pytest.mark.bpf_kernel
def test_map_writes_from_python_reach_the_kernel():
    obj = bpfsim.load(VECTORS / "firewall.bpf.o", env=_env())
    ports = obj.maps["blocked_ports"]
    ssh = {"proto": 6, "port": 22 << 8}  # the port in network order
    ports[ssh] = 0  # before the object is in the kernel: copied there when it loads
    prog = obj["xdp_firewall"]
    res = prog.run(eth_ipv4_tcp(22), compare_kernel=True)
    assert res.action == res.kernel.action == bpfsim.XdpAction.DROP
    assert ports.kernel_get(ssh) == ports[ssh] == 1  # the hit counted on both sides
    http = {"proto": 6, "port": 80 << 8}
    ports[http] = 5  # after: written on both sides at once
    assert ports.kernel_get(http) == 5
    res = prog.run(eth_ipv4_tcp(80), compare_kernel=True, engine="jit")  # any engine here
    assert res.kernel.action == bpfsim.XdpAction.DROP and res.differences == []
    del ports[ssh]
    assert ports.kernel_get(ssh) is None
    res = prog.run(eth_ipv4_tcp(22), compare_kernel=True)
    assert res.action == res.kernel.action == bpfsim.XdpAction.PASS
    ports.clear()
    assert ports.kernel_get(http, "gone") == "gone"
    assert obj.kernel_map_differences() == []


@pytest.mark.bpf_kernel
def test_prog_array_slots_name_the_same_program_in_the_kernel():
    obj = bpfsim.load(VECTORS / "tail_calls.bpf.o", env=_env())
    ping = bytes.fromhex("020000000002020000000001" "0800"
                         "45000054000040004001f7a90a0000010a000002"
                         "0800f7ff00010001")
    prog = obj["xdp_dispatch"]
    res = prog.run(ping, compare_kernel=True)  # empty slots: falls through, passes
    assert res.kernel.action == bpfsim.XdpAction.PASS
    obj.maps["jmp_table"][0] = obj["handle_ipv4"]
    obj.maps["jmp_table"][3] = obj["handle_icmp"]
    res = prog.run(ping, compare_kernel=True)
    assert res.tail_calls == ["handle_ipv4", "handle_icmp"]
    assert res.action == res.kernel.action == bpfsim.XdpAction.TX


@pytest.mark.bpf_kernel
def test_rodata_set_from_python_is_what_the_kernel_runs():
    obj = bpfsim.load(VECTORS / "rodata_config.bpf.o", env=_env())
    obj.rodata["config_version"] = 7
    cfg = obj.rodata["cfg"]
    cfg.default_action = int(bpfsim.XdpAction.DROP)
    obj.rodata["cfg"] = cfg
    arp = bytes.fromhex("ffffffffffff020000000001" "0806") + bytes(28)
    res = obj["xdp_config"].run(arp, compare_kernel=True)
    # Both run the configuration set here, not the object's (XDP_PASS, version 3).
    assert res.action == res.kernel.action == bpfsim.XdpAction.DROP
    assert obj.data["applied_version"] == 7 and res.differences == []
    with pytest.raises(bpfsim.Error, match="frozen"):
        obj.rodata["config_version"] = 8


@pytest.mark.bpf_kernel
def test_a_fake_clock_the_kernel_does_not_share_is_a_difference():
    # One token per second, burst 3: with the simulator's clock a second further at every
    # read, the bucket never empties here, while the kernel's few microseconds refill nothing.
    obj = bpfsim.load(VECTORS / "rate_limit.bpf.o",
                      env=bpfsim.Env(clock=bpfsim.FakeClock(start_ns=0, step_ns=10**9)))
    obj.kernel_ignore_map_bytes("buckets", 8, 16)  # last refill time: kernel time
    prog = obj["xdp_rate_limit"]
    assert prog.run(eth_ipv4_tcp(80), compare_kernel=True).differences == []
    # The second packet: same verdict, but the tokens left (value bytes 0..8) differ.
    with pytest.raises(bpfsim.KernelDifference) as exc:
        prog.run(eth_ipv4_tcp(80), compare_kernel=True)
    e = exc.value
    assert isinstance(e, AssertionError) and isinstance(e, bpfsim.Error)
    assert [d[:35] for d in e.differences] == ["afterwards, map buckets[0a000001]: "]
    assert e.result.action == e.result.kernel.action == bpfsim.XdpAction.PASS
    # Carried on regardless, the kernel's bucket is empty by the fourth.
    for _ in range(2):
        res = prog.run(eth_ipv4_tcp(80), compare_kernel=True, raise_on_difference=False)
    assert res.action == bpfsim.XdpAction.PASS and res.kernel.action == bpfsim.XdpAction.DROP
    assert "retval XDP_PASS here, XDP_DROP in the kernel" in res.differences
    with pytest.raises(AssertionError, match="XDP_PASS here, XDP_DROP in the kernel"):
        prog.run(eth_ipv4_tcp(80), compare_kernel=True)


@pytest.mark.bpf_kernel
def test_a_mocked_helper_is_named_and_may_be_told_not_to_raise():
    obj = bpfsim.load(VECTORS / "rate_limit.bpf.o", env=_env())
    obj.kernel_ignore_map_bytes("buckets", 0, 32)
    now = [0]

    def ktime(call):
        now[0] += 10**9
        return now[0]

    obj.mock_helper("bpf_ktime_get_ns", ktime)
    prog = obj["xdp_rate_limit"]
    results = [prog.run(eth_ipv4_tcp(80), compare_kernel=True, raise_on_difference=False)
               for _ in range(5)]
    assert all("helper bpf_ktime_get_ns is mocked here" in r.not_comparable for r in results)
    assert [r.action for r in results] == [bpfsim.XdpAction.PASS] * 5
    assert [r.kernel.action for r in results][3:] == [bpfsim.XdpAction.DROP] * 2
    assert results[0].differences == [] and results[4].differences != []
    obj.restore_helper("bpf_ktime_get_ns")
    res = prog.run(eth_ipv4_tcp(80), compare_kernel=True, raise_on_difference=False)
    assert not any("mocked" in n for n in res.not_comparable)


@pytest.mark.bpf_kernel
def test_per_cpu_maps_need_the_kernels_cpu_count():
    n = bpfsim.kernel.possible_cpus()
    obj = bpfsim.load(VECTORS / "percpu_stats.bpf.o", env=bpfsim.Env(ncpus=n + 1))
    with pytest.raises(bpfsim.Error, match="possible_cpus"):
        obj["xdp_percpu_stats"].run(eth_ipv4_tcp(80), compare_kernel=True)
    assert not obj.kernel_attached
    obj = bpfsim.load(VECTORS / "percpu_stats.bpf.o", env=bpfsim.Env(ncpus=n, cpu=n - 1))
    res = obj["xdp_percpu_stats"].run(eth_ipv4_tcp(80), compare_kernel=True)
    assert res.differences == []
    # The kernel ran on the simulator's CPU: the same per-CPU slot counted the packet.
    for name, m in obj.maps.items():
        if m.percpu:
            for k in m:
                assert m.kernel_get(k) == m[k]


@pytest.mark.bpf_kernel
def test_an_object_the_kernel_refuses_is_a_difference_with_its_reason():
    # The simulator runs unverified programs; the kernel's verifier rejects this one.
    obj = bpfsim.load(VECTORS.parent / "verifier/objects/reject_pkt_oob.bpf.o")
    prog = obj["xdp_read_past_check"]
    with pytest.raises(bpfsim.KernelDifference) as exc:
        prog.run(eth_ipv4_tcp(80), compare_kernel=True)
    e = exc.value
    assert "refused to load the object" in e.kernel_error
    assert "outside of the packet" in e.kernel_error  # the verifier's own words
    assert e.result.kernel is None and e.result.action == bpfsim.XdpAction.PASS
    res = prog.run(eth_ipv4_tcp(80), compare_kernel=True, raise_on_difference=False)
    assert res.differences == [f"the kernel refused it ({res.kernel_error}), we ran it"]


def test_marker_and_fixture_skip_with_the_reason(pytester, monkeypatch):
    monkeypatch.setattr(bpfsim.kernel, "unavailable_reason",
                        lambda: "bpf(2) denied (EPERM) as uid 0, for this test")
    pytester.syspathinsert(str(VECTORS.parents[1] / "python" / "tests"))
    pytester.makepyfile(cases=(VECTORS.parents[1] / "python/tests/kernel_marker_cases.py")
                        .read_text())
    r = pytester.runpytest_inprocess("-rs", "--strict-markers", "cases.py")
    r.assert_outcomes(passed=1, skipped=2)
    out = r.stdout.str()
    assert out.count("kernel unavailable: bpf(2) denied (EPERM) as uid 0, for this test") == 2


@pytest.mark.bpf_kernel
def test_marker_and_fixture_run_with_the_kernel(pytester):
    pytester.syspathinsert(str(VECTORS.parents[1] / "python" / "tests"))
    pytester.makepyfile(cases=(VECTORS.parents[1] / "python/tests/kernel_marker_cases.py")
                        .read_text())
    pytester.runpytest_inprocess("--strict-markers", "cases.py").assert_outcomes(passed=3)


@pytest.mark.bpf_kernel
def test_a_capture_compared_packet_by_packet():
    sc = json.loads((VECTORS / "expected" / "xdp_drop.json").read_text())
    obj = bpfsim.load(VECTORS / "xdp_drop.bpf.o", env=_env())
    c = obj["xdp_drop_non_ip"].run_pcap(VECTORS / "pcaps" / "xdp_drop.pcap",
                                        compare_kernel=True, keep_results=True)
    assert isinstance(c, bpfsim.PcapComparison)
    assert c.packets == sc["packet_count"] and c.agreed == c.packets and c.differences == {}
    # The runt is refused by both (shorter than an Ethernet header), the rest run in both.
    assert [i for i, _ in c.refused] == [i for i, p in enumerate(sc["packets"]) if p.get("error")]
    assert c.retvals == c.kernel_retvals
    assert c.retvals == [p.get("retval") for p in sc["packets"]]
    assert len(c.results) == c.packets - len(c.refused)
    with pytest.raises(bpfsim.Error, match="out="):
        obj["xdp_drop_non_ip"].run_pcap(VECTORS / "pcaps" / "xdp_drop.pcap", out="x.pcapng",
                                        compare_kernel=True)


@pytest.mark.bpf_kernel
def test_a_capture_that_differs_names_the_packets():
    obj = bpfsim.load(VECTORS / "rate_limit.bpf.o",
                      env=bpfsim.Env(clock=bpfsim.FakeClock(start_ns=0, step_ns=10**9)))
    obj.kernel_ignore_map_bytes("buckets", 0, 32)  # only the verdicts, this time
    prog = obj["xdp_rate_limit"]
    with pytest.raises(bpfsim.KernelDifference) as exc:
        prog.run_pcap(VECTORS / "pcaps" / "rate_limit.pcap", compare_kernel=True)
    c = exc.value.run
    assert c.differences and c.agreed == c.packets - len(c.differences)
    first = min(c.differences)
    assert c.differences[first] == ["retval XDP_PASS here, XDP_DROP in the kernel"]
    assert c.retvals[first] == 2 and c.kernel_retvals[first] == 1
    assert f"packet {first}: retval XDP_PASS here" in str(exc.value)


@pytest.mark.bpf_kernel
def test_the_kernel_backend_runs_programs_in_the_kernel():
    # The fake clock is the simulator's: under the kernel backend the buckets refill by kernel
    # time, so the fourth packet within a second is dropped although the clock says otherwise.
    obj = bpfsim.load(VECTORS / "rate_limit.bpf.o", backend="kernel",
                      env=bpfsim.Env(clock=bpfsim.FakeClock(start_ns=0, step_ns=10**9)))
    assert obj.backend == "kernel"
    prog = obj["xdp_rate_limit"]
    actions = [prog.run(eth_ipv4_tcp(80)).action for _ in range(4)]
    assert actions == [bpfsim.XdpAction.PASS] * 3 + [bpfsim.XdpAction.DROP]
    res = prog.run(eth_ipv4_tcp(80))
    assert res.insns == 0 and res.redirect is None  # what the kernel does not report
    # Maps are the kernel's: the bucket's refill time is kernel time, not the fake clock's.
    buckets = obj.maps["buckets"]
    (key,) = list(buckets)
    assert bytes(buckets[key])[8:16] != bytes(8)
    assert bytes(buckets[key]) == bytes(buckets.kernel_get(key))
    with pytest.raises(bpfsim.Error, match="kernel's own helpers"):
        obj.mock_helper("bpf_ktime_get_ns", lambda call: 0)
    with pytest.raises(bpfsim.Error, match="backend='sim'"):
        prog.run(eth_ipv4_tcp(80), compare_kernel=True)
    with pytest.raises(bpfsim.Error, match="engine='jit'"):
        prog.run(eth_ipv4_tcp(80), engine="jit")


@pytest.mark.bpf_kernel
def test_the_kernel_backend_takes_maps_and_rodata_from_python():
    obj = bpfsim.load(VECTORS / "rodata_config.bpf.o", backend="kernel")
    cfg = obj.rodata["cfg"]
    cfg.default_action = int(bpfsim.XdpAction.DROP)
    obj.rodata["cfg"] = cfg
    obj.data["packets_seen"] = 5  # before the load into the kernel
    arp = bytes.fromhex("ffffffffffff020000000001" "0806") + bytes(28)
    assert obj["xdp_config"].run(arp).action == bpfsim.XdpAction.DROP
    assert obj.data["packets_seen"] == 6  # read back from the kernel
    obj.data["packets_seen"] = 100  # after: straight into the kernel
    obj["xdp_config"].run(arp)
    assert obj.data["packets_seen"] == 101

    fw = bpfsim.load(VECTORS / "firewall.bpf.o", backend="kernel")
    ports, ssh = fw.maps["blocked_ports"], {"proto": 6, "port": 22 << 8}
    ports[ssh] = 0
    assert fw["xdp_firewall"].run(eth_ipv4_tcp(22)).action == bpfsim.XdpAction.DROP
    assert ports[ssh] == 1 and len(ports) == 1
    del ports[ssh]
    assert fw["xdp_firewall"].run(eth_ipv4_tcp(22)).action == bpfsim.XdpAction.PASS
    assert len(ports) == 0


@pytest.mark.bpf_kernel
def test_the_kernel_backend_replays_captures_and_says_why_it_cannot_load():
    sc = json.loads((VECTORS / "expected" / "xdp_drop.json").read_text())
    obj = bpfsim.load(VECTORS / "xdp_drop.bpf.o", backend="kernel")
    run = obj["xdp_drop_non_ip"].run_pcap(VECTORS / "pcaps" / "xdp_drop.pcap")
    assert run.retvals == [p["retval"] for p in sc["packets"] if "retval" in p]
    assert [i for i, _ in run.refused] == [i for i, p in enumerate(sc["packets"]) if "error" in p]
    assert "EINVAL" in run.refused[0][1]  # the kernel's refusal of the runt
    bad = bpfsim.load(VECTORS.parent / "verifier/objects/reject_pkt_oob.bpf.o", backend="kernel")
    with pytest.raises(bpfsim.LoadError, match="outside of the packet"):
        bad["xdp_read_past_check"].run(eth_ipv4_tcp(80))


@pytest.mark.bpf_kernel
def test_ignoring_map_bytes_does_not_load_the_object_early():
    obj = bpfsim.load(VECTORS / "rodata_config.bpf.o", env=_env())
    obj.kernel_ignore_map_bytes(".data", 0, 8)  # packets_seen
    assert not obj.kernel_attached
    obj.rodata["config_version"] = 9  # still settable: nothing is in the kernel yet
    obj.data["packets_seen"] = 1  # copied into the kernel when the object goes there
    res = obj["xdp_config"].run(bytes(64), compare_kernel=True)
    assert obj.kernel_attached and res.differences == []
    assert obj.data["applied_version"] == 9
    with pytest.raises(bpfsim.Error, match="no map"):
        obj.kernel_ignore_map_bytes("nonexistent", 0, 1)
    with pytest.raises(bpfsim.Error, match="empty byte range"):
        obj.kernel_ignore_map_bytes(".data", 4, 4)


@pytest.mark.bpf_kernel
def test_a_cpu_the_kernel_lacks_is_refused_before_loading():
    n = bpfsim.kernel.possible_cpus()
    obj = bpfsim.load(VECTORS / "xdp_pass.bpf.o", env=bpfsim.Env(ncpus=n + 1, cpu=n))
    with pytest.raises(bpfsim.Error, match=f"CPU {n}, which the kernel does not have"):
        obj["xdp_pass_count"].run(bytes(64), compare_kernel=True)
    assert not obj.kernel_attached
