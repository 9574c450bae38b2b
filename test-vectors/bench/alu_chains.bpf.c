// SPDX-License-Identifier: GPL-2.0
/* Four independent xorshift64 chains for 1000 iterations of one bounded loop (unrolling
 * disabled): ALU work with instruction-level parallelism. Each chain is seeded with the packet's
 * first 8 bytes xor its own constant; returns the xor of the four states folded to 32 bits. */
#include "bench.h"

SEC("xdp")
int xdp_alu_chains(struct xdp_md *ctx)
{
	__u64 seed = packet_seed(ctx);
	__u64 a = seed ^ 0x2545f4914f6cdd1dULL;
	__u64 b = seed ^ 0x9e3779b97f4a7c15ULL;
	__u64 c = seed ^ 0xbf58476d1ce4e5b9ULL;
	__u64 d = seed ^ 0x94d049bb133111ebULL;

#pragma clang loop unroll(disable)
	for (__u64 i = 0; i < ITERATIONS; i++) {
		a = xorshift64(a);
		b = xorshift64(b);
		c = xorshift64(c);
		d = xorshift64(d);
	}
	return fold32(a ^ b ^ c ^ d);
}

char LICENSE[] SEC("license") = "GPL";
