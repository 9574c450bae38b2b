// SPDX-License-Identifier: GPL-2.0
/* XDP_DROP for everything that is not plain (untagged) IPv4 or IPv6, including
 * frames too short to hold an Ethernet header, ARP, LLDP and VLAN-tagged frames.
 * Drops are counted per EtherType in a hash map. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u16);   /* EtherType, host order; 0 = runt */
	__type(value, __u64); /* dropped frames */
	__uint(max_entries, 64);
} drops_by_proto SEC(".maps");

static __always_inline void count_drop(__u16 proto)
{
	__u64 one = 1, *cnt;

	cnt = bpf_map_lookup_elem(&drops_by_proto, &proto);
	if (cnt)
		__sync_fetch_and_add(cnt, 1);
	else
		bpf_map_update_elem(&drops_by_proto, &proto, &one, BPF_NOEXIST);
}

SEC("xdp")
int xdp_drop_non_ip(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u16 proto;

	if ((void *)(eth + 1) > data_end) {
		count_drop(0);
		return XDP_DROP;
	}
	proto = bpf_ntohs(eth->h_proto);
	if (proto == ETH_P_IP || proto == ETH_P_IPV6)
		return XDP_PASS;
	count_drop(proto);
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
