// SPDX-License-Identifier: GPL-2.0
/* Per-CPU packet and byte counters, indexed by L3 protocol, in a PERCPU_ARRAY,
 * plus a PERCPU_HASH of per-EtherType packet counts. Lock-free: each CPU
 * updates its own copy with plain stores. Always XDP_PASS. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

enum { STAT_RUNT, STAT_IPV4, STAT_IPV6, STAT_ARP, STAT_VLAN, STAT_OTHER, STAT_MAX };

struct datarec {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct datarec);
	__uint(max_entries, STAT_MAX);
} l3_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, __u16);   /* EtherType, host order */
	__type(value, __u64); /* packets */
	__uint(max_entries, 32);
} ethertype_count SEC(".maps");

SEC("xdp")
int xdp_percpu_stats(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct datarec *rec;
	__u32 key = STAT_RUNT;
	__u16 et = 0;
	__u64 *cnt;

	if ((void *)(eth + 1) <= data_end) {
		et = bpf_ntohs(eth->h_proto);
		switch (et) {
		case ETH_P_IP: key = STAT_IPV4; break;
		case ETH_P_IPV6: key = STAT_IPV6; break;
		case ETH_P_ARP: key = STAT_ARP; break;
		case ETH_P_8021Q:
		case ETH_P_8021AD: key = STAT_VLAN; break;
		default: key = STAT_OTHER;
		}
	}
	rec = bpf_map_lookup_elem(&l3_stats, &key);
	if (!rec)
		return XDP_ABORTED;
	rec->packets++;
	rec->bytes += data_end - data;

	cnt = bpf_map_lookup_elem(&ethertype_count, &et);
	if (cnt) {
		(*cnt)++;
	} else {
		__u64 one = 1;

		bpf_map_update_elem(&ethertype_count, &et, &one, BPF_NOEXIST);
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
