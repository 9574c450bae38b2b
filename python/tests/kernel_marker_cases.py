"""Cases for the bpf_kernel marker and fixture, run by test_kernel.py and test_unprivileged.py
in a pytest of their own (the file name keeps pytest from collecting it with the suite)."""

import pytest

import bpfsim
from _util import VECTORS, eth_ipv4_tcp


@pytest.mark.bpf_kernel
def test_marked_compares_with_the_kernel():
    res = bpfsim.load(VECTORS / "xdp_pass.bpf.o")["xdp_pass_count"].run(
        eth_ipv4_tcp(80), compare_kernel=True)
    assert res.kernel.action == bpfsim.XdpAction.PASS


def test_fixture_gives_the_kernel_module(bpf_kernel):
    assert bpf_kernel.available() and bpf_kernel.possible_cpus() >= 1


def test_unmarked_runs_anyway():
    assert bpfsim.load(VECTORS / "xdp_pass.bpf.o")["xdp_pass_count"].run(
        eth_ipv4_tcp(80)).action == bpfsim.XdpAction.PASS
