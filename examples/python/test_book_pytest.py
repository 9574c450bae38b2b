"""The "Linux Observability with BPF" chapter 7 test, as pytest, without root: TCP to 9090 gets
its destination MAC rewritten and goes back out (XDP_TX), other TCP is dropped, the rest passes."""

import pytest

from bpfsim import XdpAction
from bpfsim.testing import assert_packet
from packets import VECTORS, arp, tcp, udp


@pytest.fixture
def prog(bpf_load):
    return bpf_load(VECTORS / "xdp_book_9090.bpf.o")["xdp_tcp_9090"]


def test_tcp_9090_is_rewritten_and_sent_back(prog, bpf_engine):
    pkt = bytes(tcp(9090))
    res = prog.run(pkt, engine=bpf_engine)
    assert res.action == XdpAction.TX
    assert_packet(res.data, bytes.fromhex("020000009090") + pkt[6:])


@pytest.mark.parametrize("port", [22, 80, 443])
def test_other_tcp_is_dropped(prog, port):
    assert prog.run(tcp(port)).action == XdpAction.DROP


@pytest.mark.parametrize("packet", [udp(53), arp()], ids=["udp", "arp"])
def test_everything_else_passes(prog, packet):
    assert prog.run(packet).action == XdpAction.PASS


def test_the_capture_gives_the_kernels_verdicts(prog):
    # The kernel's verdicts for this capture: test-vectors/progs/expected/xdp_book_9090.json.
    run = prog.run_pcap(VECTORS / "pcaps" / "xdp_book_9090.pcap")
    assert run.counts == {XdpAction.DROP: 9, XdpAction.PASS: 16, XdpAction.TX: 2}
