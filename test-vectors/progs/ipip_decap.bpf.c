// SPDX-License-Identifier: GPL-2.0
/* IPv4-in-IPv4 decapsulation with bpf_xdp_adjust_head(): an IPv4 frame with
 * protocol 4 addressed to our tunnel endpoint (.rodata) loses its outer header
 * (options included) and is passed to the stack; per-remote-endpoint counters
 * live in a hash map. A tunnel packet whose inner header is not IPv4 is dropped. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

const volatile __be32 local_endpoint = 0x010200c0; /* 192.0.2.1 as stored in memory */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __be32);  /* outer source address */
	__type(value, __u64); /* decapsulated packets */
	__uint(max_entries, 16);
} decap_by_remote SEC(".maps");

SEC("xdp")
int xdp_ipip_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *outer = (void *)(eth + 1);
	struct iphdr *inner;
	struct ethhdr eth_copy;
	__u64 one = 1, *cnt;
	__be32 remote;
	int olen;

	if ((void *)(outer + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	if (outer->protocol != IPPROTO_IPIP || outer->daddr != local_endpoint)
		return XDP_PASS;
	olen = outer->ihl * 4;
	if (olen < 20 || olen > 60)
		return XDP_DROP;
	inner = (void *)outer + olen;
	if ((void *)(inner + 1) > data_end)
		return XDP_DROP;
	if (inner->version != 4)
		return XDP_DROP;

	remote = outer->saddr;
	__builtin_memcpy(&eth_copy, eth, sizeof(eth_copy));
	if (bpf_xdp_adjust_head(ctx, olen))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	__builtin_memcpy(eth, &eth_copy, sizeof(eth_copy));

	cnt = bpf_map_lookup_elem(&decap_by_remote, &remote);
	if (cnt)
		__sync_fetch_and_add(cnt, 1);
	else
		bpf_map_update_elem(&decap_by_remote, &remote, &one, BPF_ANY);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
