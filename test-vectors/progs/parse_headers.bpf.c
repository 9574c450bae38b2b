// SPDX-License-Identifier: GPL-2.0
/* A full header walk: Ethernet, up to two VLAN tags (802.1Q / 802.1ad), ARP,
 * IPv4 (with options), IPv6 (with up to four extension headers), TCP, UDP,
 * ICMP and ICMPv6. Every frame is classified into an ARRAY of counters; the
 * last parsed flow and the ingress queue/ifindex seen in the context land in
 * .bss. Truncated headers are XDP_ABORTED, IPv4 fragments after the first are
 * XDP_DROP, everything else XDP_PASS. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct vlan_hdr {
	__be16 h_vlan_TCI;
	__be16 h_vlan_encapsulated_proto;
};

enum pkt_class {
	CLASS_OTHER_L2 = 0,
	CLASS_ARP,
	CLASS_IPV4_TCP,
	CLASS_IPV4_UDP,
	CLASS_IPV4_ICMP,
	CLASS_IPV4_OTHER,
	CLASS_IPV6_TCP,
	CLASS_IPV6_UDP,
	CLASS_IPV6_ICMP,
	CLASS_IPV6_OTHER,
	CLASS_TRUNCATED,
	CLASS_FRAGMENT,
	CLASS_MAX,
};

struct class_stats {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct class_stats);
	__uint(max_entries, CLASS_MAX);
} class_stats SEC(".maps");

struct flow {
	__u16 vlan_outer;  /* VLAN id, 0 = none */
	__u16 vlan_inner;
	__u16 l3proto;     /* host order EtherType */
	__u8 l4proto;
	__u8 vlan_depth;
	__be16 sport;
	__be16 dport;
	__u32 ip4_saddr;   /* network order, IPv4 only */
	__u32 ip4_daddr;
	__u32 ingress_ifindex;
	__u32 rx_queue_index;
	__u32 l4_offset;   /* from the start of the frame */
};

struct flow last_flow = {};

struct cursor {
	void *pos;
	void *end;
};

static __always_inline int parse_l4(struct cursor *c, __u8 proto, struct flow *f)
{
	f->l4proto = proto;
	if (proto == IPPROTO_TCP) {
		struct tcphdr *tcp = c->pos;

		if ((void *)(tcp + 1) > c->end || tcp->doff < 5)
			return -1;
		f->sport = tcp->source;
		f->dport = tcp->dest;
	} else if (proto == IPPROTO_UDP) {
		struct udphdr *udp = c->pos;

		if ((void *)(udp + 1) > c->end)
			return -1;
		f->sport = udp->source;
		f->dport = udp->dest;
	} else if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6) {
		__u8 *type = c->pos;

		if ((void *)(type + 4) > c->end)
			return -1;
		f->sport = type[0]; /* type and code, host order */
		f->dport = type[1];
	}
	return 0;
}

SEC("xdp")
int xdp_parse(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct cursor c = { .pos = data, .end = data_end };
	struct flow f = {};
	struct ethhdr *eth = data;
	struct class_stats *st;
	__u32 class = CLASS_OTHER_L2;
	int action = XDP_PASS;
	__u16 proto;
	int i;

	f.ingress_ifindex = ctx->ingress_ifindex;
	f.rx_queue_index = ctx->rx_queue_index;

	if ((void *)(eth + 1) > data_end)
		goto truncated;
	c.pos = eth + 1;
	proto = eth->h_proto;

#pragma unroll
	for (i = 0; i < 2; i++) {
		struct vlan_hdr *vh = c.pos;

		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		if ((void *)(vh + 1) > data_end)
			goto truncated;
		if (i == 0)
			f.vlan_outer = bpf_ntohs(vh->h_vlan_TCI) & 0x0fff;
		else
			f.vlan_inner = bpf_ntohs(vh->h_vlan_TCI) & 0x0fff;
		f.vlan_depth++;
		proto = vh->h_vlan_encapsulated_proto;
		c.pos = vh + 1;
	}
	f.l3proto = bpf_ntohs(proto);

	if (proto == bpf_htons(ETH_P_ARP)) {
		class = CLASS_ARP;
	} else if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = c.pos;
		int hdrsize;

		if ((void *)(ip + 1) > data_end)
			goto truncated;
		hdrsize = ip->ihl * 4;
		if (hdrsize < (int)sizeof(*ip))
			goto truncated;
		if (c.pos + hdrsize > data_end)
			goto truncated;
		c.pos += hdrsize;
		f.ip4_saddr = ip->saddr;
		f.ip4_daddr = ip->daddr;
		if (ip->frag_off & bpf_htons(0x1fff)) {
			f.l4proto = ip->protocol;
			class = CLASS_FRAGMENT;
			action = XDP_DROP;
			goto out;
		}
		if (parse_l4(&c, ip->protocol, &f))
			goto truncated;
		switch (ip->protocol) {
		case IPPROTO_TCP: class = CLASS_IPV4_TCP; break;
		case IPPROTO_UDP: class = CLASS_IPV4_UDP; break;
		case IPPROTO_ICMP: class = CLASS_IPV4_ICMP; break;
		default: class = CLASS_IPV4_OTHER;
		}
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = c.pos;
		__u8 nexthdr;

		if ((void *)(ip6 + 1) > data_end)
			goto truncated;
		c.pos = ip6 + 1;
		nexthdr = ip6->nexthdr;
#pragma unroll
		for (i = 0; i < 4; i++) {
			struct ipv6_opt_hdr *oh = c.pos;

			if (nexthdr != IPPROTO_HOPOPTS && nexthdr != IPPROTO_ROUTING &&
			    nexthdr != IPPROTO_DSTOPTS && nexthdr != IPPROTO_FRAGMENT)
				break;
			if ((void *)(oh + 1) > data_end)
				goto truncated;
			nexthdr = oh->nexthdr;
			if (nexthdr == IPPROTO_FRAGMENT)
				c.pos += 8;
			else
				c.pos += (oh->hdrlen + 1) * 8;
		}
		if (parse_l4(&c, nexthdr, &f))
			goto truncated;
		switch (nexthdr) {
		case IPPROTO_TCP: class = CLASS_IPV6_TCP; break;
		case IPPROTO_UDP: class = CLASS_IPV6_UDP; break;
		case IPPROTO_ICMPV6: class = CLASS_IPV6_ICMP; break;
		default: class = CLASS_IPV6_OTHER;
		}
	}
	goto out;

truncated:
	class = CLASS_TRUNCATED;
	action = XDP_ABORTED;
out:
	f.l4_offset = c.pos - data;
	st = bpf_map_lookup_elem(&class_stats, &class);
	if (st) {
		__sync_fetch_and_add(&st->packets, 1);
		__sync_fetch_and_add(&st->bytes, (__u64)(data_end - data));
	}
	last_flow = f;
	return action;
}

char LICENSE[] SEC("license") = "GPL";
