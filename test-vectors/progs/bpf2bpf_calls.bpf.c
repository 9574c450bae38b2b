// SPDX-License-Identifier: GPL-2.0
/* BPF-to-BPF calls: the entry program hands packet parsing to static
 * non-inlined subprograms in .text (three levels deep, pointers to the caller's
 * stack passed down), and asks a global function (verified on its own, BTF
 * linkage global) for the port policy: destination ports 6000-6999 are
 * dropped, port 0 aborts, everything else passes. A flow hash computed by a
 * subprogram is kept in .bss. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct flow_info {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
};

__u32 last_hash = 0;
__u32 calls = 0;

static __noinline __u32 mix32(__u32 h, __u32 v)
{
	h ^= v;
	h *= 0x01000193; /* FNV-1a prime */
	return h;
}

static __noinline __u32 flow_hash(struct flow_info *fi)
{
	__u32 h = 0x811c9dc5;

	h = mix32(h, fi->saddr);
	h = mix32(h, fi->daddr);
	h = mix32(h, ((__u32)fi->sport << 16) | fi->dport);
	h = mix32(h, fi->proto);
	calls++;
	return h;
}

static __noinline int parse_ports(void *l4, void *data_end, struct flow_info *fi)
{
	if (fi->proto == IPPROTO_TCP) {
		struct tcphdr *tcp = l4;

		if ((void *)(tcp + 1) > data_end)
			return -1;
		fi->sport = bpf_ntohs(tcp->source);
		fi->dport = bpf_ntohs(tcp->dest);
	} else if (fi->proto == IPPROTO_UDP) {
		struct udphdr *udp = l4;

		if ((void *)(udp + 1) > data_end)
			return -1;
		fi->sport = bpf_ntohs(udp->source);
		fi->dport = bpf_ntohs(udp->dest);
	}
	return 0;
}

static __noinline int parse_ip(void *data, void *data_end, struct flow_info *fi)
{
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return -1;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end || ip->ihl != 5)
			return -1;
		fi->saddr = bpf_ntohl(ip->saddr);
		fi->daddr = bpf_ntohl(ip->daddr);
		fi->proto = ip->protocol;
		return parse_ports(ip + 1, data_end, fi);
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end)
			return -1;
		fi->saddr = bpf_ntohl(ip6->saddr.in6_u.u6_addr32[3]);
		fi->daddr = bpf_ntohl(ip6->daddr.in6_u.u6_addr32[3]);
		fi->proto = ip6->nexthdr;
		return parse_ports(ip6 + 1, data_end, fi);
	}
	return -1;
}

/* Global function: verified once, independently of its callers. */
__noinline int port_policy(__u32 proto, __u32 dport)
{
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return XDP_PASS;
	if (dport == 0)
		return XDP_ABORTED;
	if (dport >= 6000 && dport <= 6999)
		return XDP_DROP;
	return XDP_PASS;
}

SEC("xdp")
int xdp_calls(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct flow_info fi = {};

	if (parse_ip(data, data_end, &fi))
		return XDP_PASS;
	last_hash = flow_hash(&fi);
	return port_policy(fi.proto, fi.dport);
}

char LICENSE[] SEC("license") = "GPL";
