// SPDX-License-Identifier: GPL-2.0
/* L2 forwarding through a DEVMAP: IPv4 frames are sent to the port whose index
 * is the low 3 bits of the destination address, after swapping the MACs.
 * bpf_redirect_map() falls back to XDP_PASS (its flags' low bits) when the slot
 * is empty. Non-IPv4 traffic is passed. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__type(key, __u32);
	__type(value, __u32); /* ifindex */
	__uint(max_entries, 8);
} tx_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 8);
} port_hits SEC(".maps");

SEC("xdp")
int xdp_redirect_devmap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	unsigned char tmp[ETH_ALEN];
	__u64 *hits;
	__u32 port;

	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;

	port = bpf_ntohl(ip->daddr) & 7;
	hits = bpf_map_lookup_elem(&port_hits, &port);
	if (hits)
		__sync_fetch_and_add(hits, 1);

	__builtin_memcpy(tmp, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, tmp, ETH_ALEN);
	return bpf_redirect_map(&tx_ports, port, XDP_PASS);
}

char LICENSE[] SEC("license") = "GPL";
