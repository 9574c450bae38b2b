// SPDX-License-Identifier: GPL-2.0
/* The loop_xorshift workload with each step in a bpf_loop callback: 1000 calls of a callback
 * that advances the state in the caller's frame (what a callback costs per call). */
#include "bench.h"

struct state {
	__u64 x;
};

static long step(__u32 i, struct state *s)
{
	s->x = xorshift64(s->x);
	return 0;
}

SEC("xdp")
int xdp_loop_callback(struct xdp_md *ctx)
{
	struct state s = { .x = packet_seed(ctx) ^ 0x2545f4914f6cdd1dULL };

	bpf_loop(ITERATIONS, step, &s, 0);
	return fold32(s.x);
}

char LICENSE[] SEC("license") = "GPL";
