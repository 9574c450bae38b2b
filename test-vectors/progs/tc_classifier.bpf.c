// SPDX-License-Identifier: GPL-2.0
/* A TC classifier (direct action): IP traffic is sorted into HTB-style classes
 * by skb->protocol, DSCP and port; the program sets skb->mark, skb->priority and
 * skb->tc_classid (major 1), reads tc_classid back and counts packets per
 * class id in a hash map. UDP to port 9 is shot (TC_ACT_SHOT); non-IP traffic
 * is left untouched (TC_ACT_OK, no mark).
 *   1:10 ssh (TCP 22)            mark 0x10 priority 6
 *   1:20 voice (DSCP EF or UDP 5060) mark 0x20 priority 5
 *   1:30 web (TCP 80/443)        mark 0x30 priority 4
 *   1:40 everything else IP      mark 0x40 priority 0 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define DSCP_EF 46

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);   /* tc_classid */
	__type(value, __u64); /* packets */
	__uint(max_entries, 16);
} class_hits SEC(".maps");

SEC("tc")
int tc_classify(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u8 dscp, l4proto;
	__u16 dport = 0;
	__u32 minor, mark, prio, classid;
	void *l4;
	__u64 one = 1, *cnt;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data + ETH_HLEN;

		if ((void *)(ip + 1) > data_end)
			return TC_ACT_OK;
		dscp = ip->tos >> 2;
		l4proto = ip->protocol;
		l4 = (void *)ip + ip->ihl * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + ETH_HLEN;

		if ((void *)(ip6 + 1) > data_end)
			return TC_ACT_OK;
		dscp = ((ip6->priority << 4) | (ip6->flow_lbl[0] >> 4)) >> 2;
		l4proto = ip6->nexthdr;
		l4 = ip6 + 1;
	} else {
		return TC_ACT_OK;
	}

	if (l4proto == IPPROTO_TCP) {
		struct tcphdr *tcp = l4;

		if ((void *)(tcp + 1) <= data_end)
			dport = bpf_ntohs(tcp->dest);
	} else if (l4proto == IPPROTO_UDP) {
		struct udphdr *udp = l4;

		if ((void *)(udp + 1) <= data_end)
			dport = bpf_ntohs(udp->dest);
		if (dport == 9)
			return TC_ACT_SHOT;
	}

	if (l4proto == IPPROTO_TCP && dport == 22) {
		minor = 0x10; mark = 0x10; prio = 6;
	} else if (dscp == DSCP_EF || (l4proto == IPPROTO_UDP && dport == 5060)) {
		minor = 0x20; mark = 0x20; prio = 5;
	} else if (l4proto == IPPROTO_TCP && (dport == 80 || dport == 443)) {
		minor = 0x30; mark = 0x30; prio = 4;
	} else {
		minor = 0x40; mark = 0x40; prio = 0;
	}

	skb->mark = mark;
	skb->priority = prio;
	skb->tc_classid = TC_H_MAKE(1 << 16, minor);

	classid = skb->tc_classid;
	cnt = bpf_map_lookup_elem(&class_hits, &classid);
	if (cnt)
		__sync_fetch_and_add(cnt, 1);
	else
		bpf_map_update_elem(&class_hits, &classid, &one, BPF_NOEXIST);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
