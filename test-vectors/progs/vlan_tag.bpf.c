// SPDX-License-Identifier: GPL-2.0
/* 802.1Q tag push and pop with bpf_xdp_adjust_head(), two programs in one
 * section. xdp_vlan_pop strips the outer 802.1Q/802.1ad tag (moving the MAC
 * addresses 4 bytes up) and remembers the VLAN id in .bss; xdp_vlan_push tags
 * untagged frames with the VLAN id and priority from .rodata. Both pass the
 * frame on; frames they cannot handle are passed unchanged. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct vlan_hdr {
	__be16 h_vlan_TCI;
	__be16 h_vlan_encapsulated_proto;
};

const volatile __u16 push_vlan_id = 100;
const volatile __u8 push_pcp = 5;

__u16 last_popped_tci = 0;
__u32 pushed = 0;
__u32 popped = 0;

SEC("xdp")
int xdp_vlan_pop(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct vlan_hdr *vh = (void *)(eth + 1);
	struct ethhdr copy;

	if ((void *)(vh + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_8021Q) && eth->h_proto != bpf_htons(ETH_P_8021AD))
		return XDP_PASS;

	__builtin_memcpy(&copy, eth, sizeof(copy) - 2);
	copy.h_proto = vh->h_vlan_encapsulated_proto;
	last_popped_tci = bpf_ntohs(vh->h_vlan_TCI);

	if (bpf_xdp_adjust_head(ctx, (int)sizeof(*vh)))
		return XDP_ABORTED;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return XDP_ABORTED;
	__builtin_memcpy(eth, &copy, sizeof(copy));
	popped++;
	return XDP_PASS;
}

SEC("xdp")
int xdp_vlan_push(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct vlan_hdr *vh;
	struct ethhdr copy;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_8021Q) || eth->h_proto == bpf_htons(ETH_P_8021AD))
		return XDP_PASS; /* already tagged */
	__builtin_memcpy(&copy, eth, sizeof(copy));

	if (bpf_xdp_adjust_head(ctx, -(int)sizeof(*vh)))
		return XDP_ABORTED;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	vh = (void *)(eth + 1);
	if ((void *)(vh + 1) > data_end)
		return XDP_ABORTED;
	__builtin_memcpy(eth, &copy, sizeof(copy) - 2);
	eth->h_proto = bpf_htons(ETH_P_8021Q);
	vh->h_vlan_TCI = bpf_htons(((__u16)push_pcp << 13) | (push_vlan_id & 0x0fff));
	vh->h_vlan_encapsulated_proto = copy.h_proto;
	pushed++;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
