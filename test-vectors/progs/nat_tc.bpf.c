// SPDX-License-Identifier: GPL-2.0
/* Static NAT in TC: traffic to the public service 10.0.0.10:8080 (TCP or UDP)
 * is DNATed to the backend 192.168.0.10:80, and replies from the backend are
 * SNATed back. Packet bytes are read with bpf_skb_load_bytes and written with
 * bpf_skb_store_bytes; checksums are fixed with bpf_l3_csum_replace and
 * bpf_l4_csum_replace (pseudo-header flag for the address, mangled-0 flag for
 * UDP so a zero UDP checksum stays zero). Always TC_ACT_OK. */
#include <stddef.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define PUBLIC_IP   bpf_htonl(0x0a00000a) /* 10.0.0.10 */
#define PUBLIC_PORT bpf_htons(8080)
#define BACKEND_IP  bpf_htonl(0xc0a8000a) /* 192.168.0.10 */
#define BACKEND_PORT bpf_htons(80)

#define IP_OFF        ETH_HLEN
#define IP_CSUM_OFF   (IP_OFF + offsetof(struct iphdr, check))
#define IP_SRC_OFF    (IP_OFF + offsetof(struct iphdr, saddr))
#define IP_DST_OFF    (IP_OFF + offsetof(struct iphdr, daddr))
#define L4_OFF        (IP_OFF + sizeof(struct iphdr))
#define L4_SPORT_OFF  L4_OFF
#define L4_DPORT_OFF  (L4_OFF + 2)
#define TCP_CSUM_OFF  (L4_OFF + offsetof(struct tcphdr, check))
#define UDP_CSUM_OFF  (L4_OFF + offsetof(struct udphdr, check))

__u64 dnat_count = 0;
__u64 snat_count = 0;

static __always_inline int rewrite(struct __sk_buff *skb, __u32 addr_off, __be32 old_ip,
				   __be32 new_ip, __u32 port_off, __be16 old_port,
				   __be16 new_port, __u32 csum_off, __u64 l4flags)
{
	if (bpf_l4_csum_replace(skb, csum_off, old_ip, new_ip,
				l4flags | BPF_F_PSEUDO_HDR | sizeof(new_ip)))
		return -1;
	if (bpf_l3_csum_replace(skb, IP_CSUM_OFF, old_ip, new_ip, sizeof(new_ip)))
		return -1;
	if (bpf_skb_store_bytes(skb, addr_off, &new_ip, sizeof(new_ip), 0))
		return -1;
	if (bpf_l4_csum_replace(skb, csum_off, old_port, new_port, l4flags | sizeof(new_port)))
		return -1;
	if (bpf_skb_store_bytes(skb, port_off, &new_port, sizeof(new_port), 0))
		return -1;
	return 0;
}

SEC("tc")
int tc_nat(struct __sk_buff *skb)
{
	struct iphdr ip;
	__be16 ports[2];
	__u32 csum_off;
	__u64 l4flags;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	if (bpf_skb_load_bytes(skb, IP_OFF, &ip, sizeof(ip)))
		return TC_ACT_OK;
	if (ip.ihl != 5 || (ip.frag_off & bpf_htons(0x1fff)))
		return TC_ACT_OK;
	if (ip.protocol == IPPROTO_TCP) {
		csum_off = TCP_CSUM_OFF;
		l4flags = 0;
	} else if (ip.protocol == IPPROTO_UDP) {
		csum_off = UDP_CSUM_OFF;
		l4flags = BPF_F_MARK_MANGLED_0;
	} else {
		return TC_ACT_OK;
	}
	if (bpf_skb_load_bytes(skb, L4_OFF, ports, sizeof(ports)))
		return TC_ACT_OK;

	if (ip.daddr == PUBLIC_IP && ports[1] == PUBLIC_PORT) {
		if (rewrite(skb, IP_DST_OFF, ip.daddr, BACKEND_IP, L4_DPORT_OFF, ports[1],
			    BACKEND_PORT, csum_off, l4flags))
			return TC_ACT_SHOT;
		dnat_count++;
	} else if (ip.saddr == BACKEND_IP && ports[0] == BACKEND_PORT) {
		if (rewrite(skb, IP_SRC_OFF, ip.saddr, PUBLIC_IP, L4_SPORT_OFF, ports[0],
			    PUBLIC_PORT, csum_off, l4flags))
			return TC_ACT_SHOT;
		snat_count++;
	}
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
