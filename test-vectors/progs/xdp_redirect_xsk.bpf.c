// SPDX-License-Identifier: GPL-2.0
/* AF_XDP steering through an XSKMAP keyed by rx queue: UDP to port 7777 goes to
 * the socket of the receiving queue if one is registered (looked up first, as
 * xdpsock does), else it is passed; UDP to port 7778 is redirected without a
 * lookup and falls back to XDP_DROP when no socket is there. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 4);
} xsks_map SEC(".maps");

__u32 last_queue = 0xffffffff;

SEC("xdp")
int xdp_sock_steer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	__u32 queue = ctx->rx_queue_index;

	if ((void *)(udp + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5 || ip->protocol != IPPROTO_UDP)
		return XDP_PASS;

	last_queue = queue;
	if (udp->dest == bpf_htons(7777)) {
		if (bpf_map_lookup_elem(&xsks_map, &queue))
			return bpf_redirect_map(&xsks_map, queue, 0);
		return XDP_PASS;
	}
	if (udp->dest == bpf_htons(7778))
		return bpf_redirect_map(&xsks_map, queue, XDP_DROP);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
