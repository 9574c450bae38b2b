// SPDX-License-Identifier: GPL-2.0
/* Per packet, one hash lookup and one per-CPU counter update: parse Ethernet, IPv4 and UDP/TCP,
 * look the 5-tuple up in a flow table (HASH) whose value says the verdict and a traffic class,
 * and count packets and bytes per class in a PERCPU_ARRAY. Unknown flows are class 0 and pass. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define MAX_CLASSES 16

struct flow_key {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
};

struct flow_rule {
	__u32 action; /* an XDP verdict */
	__u32 class;  /* index into class_stats */
};

struct datarec {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct flow_key);
	__type(value, struct flow_rule);
	__uint(max_entries, 4096);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct datarec);
	__uint(max_entries, MAX_CLASSES);
} class_stats SEC(".maps");

SEC("xdp")
int xdp_map_heavy(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct flow_key key = {};
	struct flow_rule *rule;
	struct datarec *rec;
	struct udphdr *l4;
	__u32 action = XDP_PASS, class = 0;

	if ((void *)(ip + 1) > data_end)
		return XDP_ABORTED;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl < 5)
		return XDP_PASS;
	/* UDP and TCP both start with the two ports. */
	l4 = (void *)ip + ip->ihl * 4;
	if ((void *)(l4 + 1) > data_end)
		return XDP_ABORTED;
	key.saddr = ip->saddr;
	key.daddr = ip->daddr;
	key.proto = ip->protocol;
	if (ip->protocol == IPPROTO_UDP || ip->protocol == IPPROTO_TCP) {
		key.sport = l4->source;
		key.dport = l4->dest;
	}
	rule = bpf_map_lookup_elem(&flows, &key);
	if (rule) {
		action = rule->action;
		class = rule->class;
	}
	rec = bpf_map_lookup_elem(&class_stats, &class);
	if (!rec)
		return XDP_ABORTED;
	rec->packets++;
	rec->bytes += data_end - data;
	return action;
}

char LICENSE[] SEC("license") = "GPL";
