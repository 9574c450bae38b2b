// SPDX-License-Identifier: GPL-2.0
/* Connection events through a BPF ring buffer, for IPv4:
 *   TCP SYN (no ACK) -> bpf_ringbuf_reserve + bpf_ringbuf_submit (kind 1)
 *   ICMP             -> bpf_ringbuf_output of a stack copy (kind 2)
 *   UDP              -> reserved, then submitted (kind 3) or, for port 9,
 *                       bpf_ringbuf_discard (the record is skipped by readers)
 * A failed reservation is counted in .bss. Always XDP_PASS. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

enum { EV_TCP_SYN = 1, EV_ICMP = 2, EV_UDP = 3 };

struct event {
	__u32 kind;
	__u32 pkt_len;
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 ttl;
	__u16 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

__u64 reserve_failed = 0;

SEC("xdp")
int xdp_ringbuf_events(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct event *e;

	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5)
		return XDP_PASS;

	if (ip->protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = (void *)(ip + 1);

		if ((void *)(tcp + 1) > data_end || !tcp->syn || tcp->ack)
			return XDP_PASS;
		e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
		if (!e) {
			reserve_failed++;
			return XDP_PASS;
		}
		e->kind = EV_TCP_SYN;
		e->pkt_len = data_end - data;
		e->saddr = ip->saddr;
		e->daddr = ip->daddr;
		e->sport = tcp->source;
		e->dport = tcp->dest;
		e->proto = IPPROTO_TCP;
		e->ttl = ip->ttl;
		e->pad = 0;
		bpf_ringbuf_submit(e, 0);
	} else if (ip->protocol == IPPROTO_ICMP) {
		struct event ev = {
			.kind = EV_ICMP,
			.pkt_len = data_end - data,
			.saddr = ip->saddr,
			.daddr = ip->daddr,
			.proto = IPPROTO_ICMP,
			.ttl = ip->ttl,
		};

		if (bpf_ringbuf_output(&events, &ev, sizeof(ev), 0))
			reserve_failed++;
	} else if (ip->protocol == IPPROTO_UDP) {
		struct udphdr *udp = (void *)(ip + 1);

		if ((void *)(udp + 1) > data_end)
			return XDP_PASS;
		e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
		if (!e) {
			reserve_failed++;
			return XDP_PASS;
		}
		e->kind = EV_UDP;
		e->pkt_len = data_end - data;
		e->saddr = ip->saddr;
		e->daddr = ip->daddr;
		e->sport = udp->source;
		e->dport = udp->dest;
		e->proto = IPPROTO_UDP;
		e->ttl = ip->ttl;
		e->pad = 0;
		if (udp->dest == bpf_htons(9))
			bpf_ringbuf_discard(e, 0);
		else
			bpf_ringbuf_submit(e, 0);
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
