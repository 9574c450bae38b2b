// SPDX-License-Identifier: GPL-2.0
/* Socket filters keeping only TCP traffic to or from port 80. A socket filter
 * sees the packet from the network header on, and returns how many bytes to
 * keep (0 drops). Two programs in one section:
 *   sock_http_only  - IPv4 and IPv6, bytes read with bpf_skb_load_bytes,
 *                     keeps skb->len bytes;
 *   sock_http_ldabs - IPv4 only, classic LD_ABS/LD_IND packet loads, keeps
 *                     everything by returning -1 (0xffffffff). */
#include <stddef.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* LLVM intrinsics for LD_ABS / LD_IND (offset constant -> LD_ABS, else LD_IND) */
unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
unsigned long long load_half(void *skb, unsigned long long off) asm("llvm.bpf.load.half");
unsigned long long load_word(void *skb, unsigned long long off) asm("llvm.bpf.load.word");

#define HTTP_PORT 80

__u64 kept = 0;

SEC("socket")
int sock_http_only(struct __sk_buff *skb)
{
	__u8 l4proto;
	__u32 l4off;
	__be16 ports[2];

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)))
			return 0;
		if (ip.frag_off & bpf_htons(0x1fff))
			return 0;
		l4proto = ip.protocol;
		l4off = ip.ihl * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		if (bpf_skb_load_bytes(skb, offsetof(struct ipv6hdr, nexthdr), &l4proto, 1))
			return 0;
		l4off = sizeof(struct ipv6hdr);
	} else {
		return 0;
	}
	if (l4proto != IPPROTO_TCP)
		return 0;
	if (bpf_skb_load_bytes(skb, l4off, ports, sizeof(ports)))
		return 0;
	if (ports[0] != bpf_htons(HTTP_PORT) && ports[1] != bpf_htons(HTTP_PORT))
		return 0;
	kept++;
	return skb->len;
}

SEC("socket")
int sock_http_ldabs(struct __sk_buff *skb)
{
	__u64 ihl, sport, dport;

	if (load_byte(skb, 0) >> 4 != 4)
		return 0;
	if (load_byte(skb, offsetof(struct iphdr, protocol)) != IPPROTO_TCP)
		return 0;
	if (load_half(skb, offsetof(struct iphdr, frag_off)) & 0x1fff)
		return 0;
	ihl = (load_byte(skb, 0) & 0xf) << 2;
	sport = load_half(skb, ihl);
	dport = load_half(skb, ihl + 2);
	if (sport != HTTP_PORT && dport != HTTP_PORT)
		return 0;
	return -1;
}

char LICENSE[] SEC("license") = "GPL";
