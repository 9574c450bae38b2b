// SPDX-License-Identifier: GPL-2.0
/* XDP_PASS for every frame, counting frames and bytes in .bss globals. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__u64 rx_packets = 0; /* .bss */
__u64 rx_bytes = 0;   /* .bss */

SEC("xdp")
int xdp_pass_count(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	__sync_fetch_and_add(&rx_packets, 1);
	__sync_fetch_and_add(&rx_bytes, (__u64)(data_end - data));
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
