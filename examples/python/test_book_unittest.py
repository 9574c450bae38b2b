"""The "Linux Observability with BPF" chapter 7 test, as unittest, without root.

The XDP program (test-vectors/progs/xdp_book_9090.bpf.c) rewrites the destination MAC of TCP
packets to port 9090 and sends them back out (XDP_TX), drops every other TCP packet and passes
the rest. The book ran it in the kernel through a libbpf function that no longer exists; here
it runs in bpfsim. Run with: python -m unittest examples/python/test_book_unittest.py
"""

import pathlib
import sys
import unittest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import bpfsim  # noqa: E402
from bpfsim import XdpAction  # noqa: E402
from packets import VECTORS, arp, tcp, udp  # noqa: E402


class Book9090Test(unittest.TestCase):
    def setUp(self):
        self.prog = bpfsim.load(VECTORS / "xdp_book_9090.bpf.o")["xdp_tcp_9090"]

    def test_tcp_9090_is_rewritten_and_sent_back(self):
        pkt = bytes(tcp(9090))
        res = self.prog.run(pkt)
        self.assertEqual(res.action, XdpAction.TX)
        self.assertEqual(res.data[:6], bytes.fromhex("020000009090"))
        self.assertEqual(res.data[6:], pkt[6:])

    def test_tcp_9090_over_ipv6_too(self):
        self.assertEqual(self.prog.run(tcp(9090, ipv6=True)).action, XdpAction.TX)

    def test_other_tcp_is_dropped(self):
        for port in (22, 80, 443):
            self.assertEqual(self.prog.run(tcp(port)).action, XdpAction.DROP, port)

    def test_everything_else_passes(self):
        self.assertEqual(self.prog.run(udp(53)).action, XdpAction.PASS)
        self.assertEqual(self.prog.run(arp()).action, XdpAction.PASS)


if __name__ == "__main__":
    unittest.main()
