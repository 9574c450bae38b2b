/* SPDX-License-Identifier: GPL-2.0 */
/* Shared by the benchmark programs: the seed read from the packet and xorshift64. */
#ifndef BENCH_H
#define BENCH_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* Iterations of the compute loops (the "1000 x xorshift64"). */
#define ITERATIONS 1000

/* One step of Marsaglia's 64-bit xorshift (13/7/17). */
static __always_inline __u64 xorshift64(__u64 x)
{
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return x;
}

/* The first 8 bytes of the packet (little-endian), or 0 when it is shorter. The seed comes from
 * the input so that clang cannot compute the loops at compile time. */
static __always_inline __u64 packet_seed(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	if (data + 8 > data_end)
		return 0;
	return *(__u64 *)data;
}

/* The 64-bit state folded into the 32-bit return value BPF_PROG_TEST_RUN reports. */
static __always_inline __u32 fold32(__u64 x)
{
	return (__u32)(x ^ (x >> 32));
}

#endif
