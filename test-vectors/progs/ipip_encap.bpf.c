// SPDX-License-Identifier: GPL-2.0
/* IPv4-in-IPv4 encapsulation with bpf_xdp_adjust_head(): IPv4 frames to
 * 10.1.0.0/16 get an outer IPv4 header (protocol 4) from the tunnel endpoints
 * in .rodata, whose checksum is computed with bpf_csum_diff(), and are sent
 * back out with XDP_TX. Other frames are passed. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

const volatile __u32 tunnel_src = 0xc0000201; /* 192.0.2.1, host order */
const volatile __u32 tunnel_dst = 0xc0000202; /* 192.0.2.2 */
const volatile __u32 inner_net = 0x0a010000;  /* 10.1.0.0/16 */
const volatile __u32 inner_mask = 0xffff0000;

__u64 encapsulated = 0;

static __always_inline __u16 csum_fold(__s64 csum)
{
	__u32 sum = (__u32)csum;

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

SEC("xdp")
int xdp_ipip_encap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *inner = (void *)(eth + 1);
	struct iphdr *outer;
	struct ethhdr eth_copy;
	__u16 inner_len;
	__s64 csum;

	if ((void *)(inner + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	if ((bpf_ntohl(inner->daddr) & inner_mask) != inner_net)
		return XDP_PASS;
	inner_len = bpf_ntohs(inner->tot_len);
	__builtin_memcpy(&eth_copy, eth, sizeof(eth_copy));

	if (bpf_xdp_adjust_head(ctx, -(int)sizeof(struct iphdr)))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	outer = (void *)(eth + 1);
	if ((void *)(outer + 1) > data_end)
		return XDP_DROP;

	/* new MACs: back to where it came from */
	__builtin_memcpy(eth->h_dest, eth_copy.h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth_copy.h_dest, ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IP);

	outer->version = 4;
	outer->ihl = 5;
	outer->tos = 0;
	outer->tot_len = bpf_htons(inner_len + sizeof(struct iphdr));
	outer->id = 0;
	outer->frag_off = bpf_htons(0x4000); /* DF */
	outer->ttl = 64;
	outer->protocol = IPPROTO_IPIP;
	outer->check = 0;
	outer->saddr = bpf_htonl(tunnel_src);
	outer->daddr = bpf_htonl(tunnel_dst);
	csum = bpf_csum_diff(0, 0, (__be32 *)outer, sizeof(*outer), 0);
	outer->check = csum_fold(csum);
	encapsulated++;
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
