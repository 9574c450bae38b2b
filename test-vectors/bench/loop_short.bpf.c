// SPDX-License-Identifier: GPL-2.0
/* loop_callback's step in a short bpf_loop: 8 calls, where the loop's fixed cost (the helper,
 * or the direct call the JIT makes in its place) weighs as much as the calls. */
#include "bench.h"

#define SHORT 8

struct state {
	__u64 x;
};

static long step(__u32 i, struct state *s)
{
	s->x = xorshift64(s->x);
	return 0;
}

SEC("xdp")
int xdp_loop_short(struct xdp_md *ctx)
{
	struct state s = { .x = packet_seed(ctx) ^ 0x2545f4914f6cdd1dULL };

	bpf_loop(SHORT, step, &s, 0);
	return fold32(s.x);
}

char LICENSE[] SEC("license") = "GPL";
