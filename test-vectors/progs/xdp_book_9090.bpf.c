// SPDX-License-Identifier: GPL-2.0
/* The book scenario: TCP to port 9090 gets its destination MAC rewritten and is
 * bounced back out with XDP_TX; any other TCP is dropped; everything else
 * (UDP, ICMP, ARP, short frames...) is passed to the stack. IPv4 and IPv6. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define SERVICE_PORT 9090

static const unsigned char backend_mac[ETH_ALEN] = { 0x02, 0x00, 0x00, 0x00, 0x90, 0x90 };

SEC("xdp")
int xdp_tcp_9090(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct tcphdr *tcp;
	__u8 l4proto;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;

	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end)
			return XDP_PASS;
		if (ip->ihl < 5)
			return XDP_PASS;
		l4proto = ip->protocol;
		tcp = (void *)ip + ip->ihl * 4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end)
			return XDP_PASS;
		l4proto = ip6->nexthdr;
		tcp = (void *)(ip6 + 1);
	} else {
		return XDP_PASS;
	}

	if (l4proto != IPPROTO_TCP)
		return XDP_PASS;
	if ((void *)(tcp + 1) > data_end)
		return XDP_DROP; /* TCP, but truncated: still "other TCP" */
	if (tcp->dest != bpf_htons(SERVICE_PORT))
		return XDP_DROP;

	__builtin_memcpy(eth->h_dest, backend_mac, ETH_ALEN);
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
