// SPDX-License-Identifier: GPL-2.0
/* Protocol dispatch through a PROG_ARRAY: the entry program reads the EtherType
 * and tail-calls the handler in slot 0 (IPv4), 1 (IPv6) or 2 (ARP). When the
 * slot is empty the tail call falls through and the entry program passes the
 * frame. The IPv4 handler tail-calls once more, into slot 3 (ICMP), for ICMP.
 * Every program that runs bumps its own counter in an ARRAY. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

enum { SLOT_IPV4, SLOT_IPV6, SLOT_ARP, SLOT_ICMP, SLOT_MAX };
enum { RAN_ENTRY, RAN_IPV4, RAN_IPV6, RAN_ARP, RAN_ICMP, RAN_FALLTHROUGH, RAN_MAX };

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
	__uint(max_entries, SLOT_MAX);
} jmp_table SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, RAN_MAX);
} ran SEC(".maps");

static __always_inline void mark_ran(__u32 who)
{
	__u64 *cnt = bpf_map_lookup_elem(&ran, &who);

	if (cnt)
		__sync_fetch_and_add(cnt, 1);
}

SEC("xdp")
int xdp_dispatch(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	mark_ran(RAN_ENTRY);
	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	switch (bpf_ntohs(eth->h_proto)) {
	case ETH_P_IP:
		bpf_tail_call(ctx, &jmp_table, SLOT_IPV4);
		break;
	case ETH_P_IPV6:
		bpf_tail_call(ctx, &jmp_table, SLOT_IPV6);
		break;
	case ETH_P_ARP:
		bpf_tail_call(ctx, &jmp_table, SLOT_ARP);
		break;
	}
	mark_ran(RAN_FALLTHROUGH);
	return XDP_PASS;
}

SEC("xdp")
int handle_ipv4(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct iphdr *ip = data + sizeof(struct ethhdr);

	mark_ran(RAN_IPV4);
	if ((void *)(ip + 1) > data_end)
		return XDP_DROP;
	if (ip->protocol == IPPROTO_ICMP)
		bpf_tail_call(ctx, &jmp_table, SLOT_ICMP);
	if (ip->protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = (void *)(ip + 1);

		if (ip->ihl == 5 && (void *)(tcp + 1) <= data_end && tcp->dest == bpf_htons(23))
			return XDP_DROP; /* no telnet */
	}
	return XDP_PASS;
}

SEC("xdp")
int handle_ipv6(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);

	mark_ran(RAN_IPV6);
	if ((void *)(ip6 + 1) > data_end)
		return XDP_DROP;
	if (ip6->hop_limit <= 1)
		return XDP_DROP;
	return XDP_PASS;
}

SEC("xdp")
int handle_arp(struct xdp_md *ctx)
{
	mark_ran(RAN_ARP);
	return XDP_PASS;
}

SEC("xdp")
int handle_icmp(struct xdp_md *ctx)
{
	mark_ran(RAN_ICMP);
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
