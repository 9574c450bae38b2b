// SPDX-License-Identifier: GPL-2.0
/* Metadata and tail adjustments: every frame gets 8 bytes of metadata in front
 * of it (bpf_xdp_adjust_meta: a magic word and the original length) which a
 * test run returns ahead of the packet; frames longer than 128 bytes are cut to
 * 128 (bpf_xdp_adjust_tail with a negative delta); IPv4 ICMP frames grow by 4
 * zero bytes (positive delta). Always XDP_PASS, or XDP_ABORTED if a helper
 * fails. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define META_MAGIC 0x4154454d /* "META" in memory on little endian */
#define MAX_LEN 128

struct meta {
	__u32 magic;
	__u32 orig_len;
};

__u32 truncated = 0;
__u32 grown = 0;

SEC("xdp")
int xdp_meta_tail(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 len = data_end - data;
	struct meta *m;
	struct ethhdr *eth;
	struct iphdr *ip;
	int is_icmp = 0;

	eth = data;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) <= data_end && eth->h_proto == bpf_htons(ETH_P_IP) &&
	    ip->protocol == IPPROTO_ICMP)
		is_icmp = 1;

	if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(*m)))
		return XDP_ABORTED;
	data = (void *)(long)ctx->data;
	m = (void *)(long)ctx->data_meta;
	if ((void *)(m + 1) > data)
		return XDP_ABORTED;
	m->magic = META_MAGIC;
	m->orig_len = len;

	if (len > MAX_LEN) {
		if (bpf_xdp_adjust_tail(ctx, MAX_LEN - (int)len))
			return XDP_ABORTED;
		truncated++;
	} else if (is_icmp) {
		if (bpf_xdp_adjust_tail(ctx, 4))
			return XDP_ABORTED;
		grown++;
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
