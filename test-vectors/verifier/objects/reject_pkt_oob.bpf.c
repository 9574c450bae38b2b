// SPDX-License-Identifier: GPL-2.0
/* The kernel rejects this: the bounds check proves 14 bytes, the read is at byte 20
 * ("R2 offset is outside of the packet" or similar, as the kernel words it). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_read_past_check(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	volatile unsigned char *p = data;

	if (data + ETH_HLEN > data_end)
		return XDP_DROP;
	return p[20] == 6 ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
