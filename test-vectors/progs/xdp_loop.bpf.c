// SPDX-License-Identifier: GPL-2.0
/* bpf_loop with a callback: sums 0..=limit, where limit comes from the frame length, stopping the
 * loop early from the callback; the verdict depends on the sum's parity. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct loop_ctx {
	__u64 limit;
	__u64 sum;
};

__u64 last_sum = 0;
__u64 last_calls = 0;

static int add_until(__u32 i, struct loop_ctx *c)
{
	c->sum += i;
	return i >= c->limit ? 1 : 0;
}

SEC("xdp")
int xdp_loop(struct xdp_md *ctx)
{
	struct loop_ctx c = {
		.limit = (ctx->data_end - ctx->data) & 31,
		.sum = 0,
	};
	long calls = bpf_loop(64, add_until, &c, 0);

	last_sum = c.sum;
	last_calls = calls;
	return (c.sum & 1) ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
