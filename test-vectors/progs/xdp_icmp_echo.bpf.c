// SPDX-License-Identifier: GPL-2.0
/* ICMP / ICMPv6 echo responder: an echo request is turned into an echo reply in
 * place (MACs and IP addresses swapped, type changed, TTL/hop limit reset) and
 * sent back with XDP_TX. Checksums are patched incrementally by hand (RFC 1624),
 * no helper involved. Everything else is passed. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/icmpv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define REPLY_TTL 64

/* <linux/icmp.h> drags in libc's socket headers; the echo header is all we need. */
#define ICMP_ECHOREPLY 0
#define ICMP_ECHO 8
struct icmphdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be16 id;
	__be16 sequence;
};

__u64 replies_v4 = 0;
__u64 replies_v6 = 0;

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), 16-bit words in network order. */
static __always_inline __u16 csum_replace2(__u16 check, __u16 old, __u16 new)
{
	__u32 sum = (__u16)~check + (__u16)~old + new;

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

static __always_inline void swap_mac(struct ethhdr *eth)
{
	unsigned char tmp[ETH_ALEN];

	__builtin_memcpy(tmp, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, tmp, ETH_ALEN);
}

static __always_inline int reply_v4(struct ethhdr *eth, void *data_end)
{
	struct iphdr *ip = (void *)(eth + 1);
	struct icmphdr *icmp;
	__u16 old, new;
	__be32 tmp;

	if ((void *)(ip + 1) > data_end || ip->ihl != 5 || ip->protocol != IPPROTO_ICMP)
		return XDP_PASS;
	icmp = (void *)(ip + 1);
	if ((void *)(icmp + 1) > data_end || icmp->type != ICMP_ECHO)
		return XDP_PASS;

	/* type 8 -> 0, code unchanged: the first 16-bit word changes */
	old = *(__u16 *)icmp;
	icmp->type = ICMP_ECHOREPLY;
	new = *(__u16 *)icmp;
	icmp->checksum = csum_replace2(icmp->checksum, old, new);

	/* ttl is the high byte of the word it shares with protocol */
	old = *(__u16 *)&ip->ttl;
	ip->ttl = REPLY_TTL;
	new = *(__u16 *)&ip->ttl;
	ip->check = csum_replace2(ip->check, old, new);

	tmp = ip->saddr; /* swapping the addresses keeps the header sum */
	ip->saddr = ip->daddr;
	ip->daddr = tmp;
	swap_mac(eth);
	__sync_fetch_and_add(&replies_v4, 1);
	return XDP_TX;
}

static __always_inline int reply_v6(struct ethhdr *eth, void *data_end)
{
	struct ipv6hdr *ip6 = (void *)(eth + 1);
	struct icmp6hdr *icmp6;
	struct in6_addr tmp;
	__u16 old, new;

	if ((void *)(ip6 + 1) > data_end || ip6->nexthdr != IPPROTO_ICMPV6)
		return XDP_PASS;
	icmp6 = (void *)(ip6 + 1);
	if ((void *)(icmp6 + 1) > data_end || icmp6->icmp6_type != ICMPV6_ECHO_REQUEST)
		return XDP_PASS;

	old = *(__u16 *)icmp6;
	icmp6->icmp6_type = ICMPV6_ECHO_REPLY;
	new = *(__u16 *)icmp6;
	icmp6->icmp6_cksum = csum_replace2(icmp6->icmp6_cksum, old, new);

	ip6->hop_limit = REPLY_TTL; /* not covered by any checksum */
	tmp = ip6->saddr;
	ip6->saddr = ip6->daddr;
	ip6->daddr = tmp;
	swap_mac(eth);
	__sync_fetch_and_add(&replies_v6, 1);
	return XDP_TX;
}

SEC("xdp")
int xdp_icmp_echo(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		return reply_v4(eth, data_end);
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return reply_v6(eth, data_end);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
