"""The firewall example again, checked against the live kernel rather than against recorded
verdicts: the same rules from Python, the same capture, run by the simulator and by the kernel
(BPF_PROG_TEST_RUN) side by side. Needs root; elsewhere the bpf_kernel marker skips it and says
why."""

import pytest

from bpfsim import XdpAction
from packets import VECTORS, tcp

pytestmark = pytest.mark.bpf_kernel


def be16(port):
    return int.from_bytes(port.to_bytes(2, "big"), "little")


@pytest.fixture
def firewall(bpf_load):
    obj = bpf_load(VECTORS / "firewall.bpf.o")
    for proto, port in [(6, 22), (6, 23), (17, 53)]:
        obj.maps["blocked_ports"][{"proto": proto, "port": be16(port)}] = 0
    return obj


def test_the_capture_agrees_with_the_kernel(firewall):
    # Raises bpfsim.KernelDifference (an AssertionError) naming each packet that differs.
    run = firewall["xdp_firewall"].run_pcap(VECTORS / "pcaps" / "firewall.pcap",
                                            compare_kernel=True)
    assert run.agreed == run.packets
    assert XdpAction.DROP in run.counts


def test_one_packet_and_the_maps_after_it(firewall):
    res = firewall["xdp_firewall"].run(tcp(22), compare_kernel=True)
    assert res.action == res.kernel.action == XdpAction.DROP
    # The rule's hit counter went up in the kernel's map as in ours.
    ports, ssh = firewall.maps["blocked_ports"], {"proto": 6, "port": be16(22)}
    assert ports.kernel_get(ssh) == ports[ssh] == 1
