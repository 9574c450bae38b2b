// SPDX-License-Identifier: GPL-2.0
/* 1000 steps of xorshift64 in a bounded loop (kept as a loop: unrolling disabled), seeded with the
 * packet's first 8 bytes xor a constant; returns the final state folded to 32 bits. */
#include "bench.h"

SEC("xdp")
int xdp_loop_xorshift(struct xdp_md *ctx)
{
	__u64 x = packet_seed(ctx) ^ 0x2545f4914f6cdd1dULL;

#pragma clang loop unroll(disable)
	for (__u64 i = 0; i < ITERATIONS; i++)
		x = xorshift64(x);
	return fold32(x);
}

char LICENSE[] SEC("license") = "GPL";
