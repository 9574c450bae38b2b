"""A token-bucket rate limiter (test-vectors/progs/rate_limit.bpf.c: 3 tokens per source, one
more per second of bpf_ktime_get_ns time) tested with a fake clock: time only moves when the
test says so."""

import bpfsim
from bpfsim import XdpAction
from packets import VECTORS, tcp

SECOND = 1_000_000_000


def test_burst_then_drops_then_refill(bpf_load):
    frozen = bpfsim.Env(clock=bpfsim.FakeClock(start_ns=100 * SECOND, step_ns=0))
    obj = bpf_load(VECTORS / "rate_limit.bpf.o", env=frozen)
    prog = obj["xdp_rate_limit"]
    pkt = bytes(tcp(80, src="192.0.2.7"))

    assert [prog.run(pkt).action for _ in range(5)] == [XdpAction.PASS] * 3 + [XdpAction.DROP] * 2

    # Two and a half seconds later: two whole tokens.
    obj.env = bpfsim.Env(clock=bpfsim.FakeClock(start_ns=102 * SECOND + SECOND // 2, step_ns=0))
    assert [prog.run(pkt).action for _ in range(3)] == [XdpAction.PASS] * 2 + [XdpAction.DROP]

    bucket = obj.maps["buckets"][bytes([192, 0, 2, 7])]
    assert (bucket.passed, bucket.dropped, bucket.tokens) == (5, 3, 0)
    # Another source has its own bucket.
    assert prog.run(tcp(80, src="192.0.2.8")).action == XdpAction.PASS


def test_a_clock_that_advances_by_itself(bpf_load):
    # Every read of the clock moves it by 0.4 s: a packet train spread over time.
    env = bpfsim.Env(clock=bpfsim.FakeClock(start_ns=SECOND, step_ns=4 * SECOND // 10))
    prog = bpf_load(VECTORS / "rate_limit.bpf.o", env=env)["xdp_rate_limit"]
    verdicts = [prog.run(tcp(80)).action for _ in range(20)]
    assert XdpAction.DROP not in verdicts[:3]
    # The burst of 3, then one token per second: one per 2.5 packets, 7 more over the 17 left.
    assert verdicts.count(XdpAction.PASS) == 10
