// SPDX-License-Identifier: GPL-2.0
/* bpf_printk with the kernel's formatting: %d %u %x %llx %s %c, %pI4 and %pI6,
 * field widths; up to three arguments go through bpf_trace_printk, more through
 * bpf_trace_vprintk. The %s arguments are string literals, which clang puts in
 * .rodata.str1.1. Always XDP_PASS. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

static __noinline const char *proto_name(__u8 proto)
{
	switch (proto) {
	case IPPROTO_TCP: return "tcp";
	case IPPROTO_UDP: return "udp";
	case IPPROTO_ICMP: return "icmp";
	case IPPROTO_ICMPV6: return "icmpv6";
	default: return "other";
	}
}

SEC("xdp")
int xdp_trace(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 len = data_end - data;

	if ((void *)(eth + 1) > data_end) {
		bpf_printk("runt len=%u", len);
		return XDP_PASS;
	}
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end) {
			bpf_printk("short ipv4 len=%d", (int)len);
			return XDP_PASS;
		}
		bpf_printk("ipv4 %pI4 -> %pI4 %s", &ip->saddr, &ip->daddr, proto_name(ip->protocol));
		bpf_printk("ttl=%u id=0x%x tot_len=%5d", ip->ttl, bpf_ntohs(ip->id),
			   bpf_ntohs(ip->tot_len));
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end)
			return XDP_PASS;
		bpf_printk("ipv6 %pI6 -> %pI6", &ip6->saddr, &ip6->daddr);
		bpf_printk("next=%s hlim=%d plen=%u class=%c", proto_name(ip6->nexthdr),
			   ip6->hop_limit, bpf_ntohs(ip6->payload_len), ip6->priority ? 'p' : '-');
	} else {
		__u64 macs = ((__u64)eth->h_source[0] << 40) | ((__u64)eth->h_source[1] << 32) |
			     ((__u64)eth->h_source[2] << 24) | ((__u64)eth->h_source[3] << 16) |
			     ((__u64)eth->h_source[4] << 8) | eth->h_source[5];

		bpf_printk("non-ip proto=0x%04x src=%llx neg=%d", bpf_ntohs(eth->h_proto), macs,
			   -(int)len);
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
