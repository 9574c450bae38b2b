// SPDX-License-Identifier: GPL-2.0
/* Global functions with pointer arguments: the kernel verifies each once, on its own, with the
 * pointer as possibly-NULL memory of the pointed-to type's size, and checks each call's
 * argument against that size. xdp_global_mem_ok is accepted; xdp_global_mem_unchecked is
 * rejected inside the function (no NULL check); xdp_global_mem_short is rejected at the call
 * (the caller's buffer is smaller than the type). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct pair {
	__u32 a;
	__u32 b;
};

struct big {
	__u64 v[8];
};

__attribute__((noinline)) int sum_checked(struct pair *p)
{
	if (!p)
		return 0;
	return p->a + p->b;
}

__attribute__((noinline)) int sum_unchecked(struct pair *p)
{
	return p->a + p->b;
}

__attribute__((noinline)) int first_of_big(struct big *b)
{
	if (!b)
		return 0;
	return b->v[0];
}

SEC("xdp")
int xdp_global_mem_ok(struct xdp_md *ctx)
{
	struct pair p = { ctx->ingress_ifindex, 2 };

	return sum_checked(&p) > 5 ? XDP_DROP : XDP_PASS;
}

SEC("xdp")
int xdp_global_mem_unchecked(struct xdp_md *ctx)
{
	struct pair p = { ctx->ingress_ifindex, 2 };

	return sum_unchecked(&p) > 5 ? XDP_DROP : XDP_PASS;
}

SEC("xdp")
int xdp_global_mem_short(struct xdp_md *ctx)
{
	__u64 small = ctx->ingress_ifindex;

	return first_of_big((struct big *)&small) > 5 ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
