// SPDX-License-Identifier: GPL-2.0
/* Hash map lookups of each kind, hits and misses, in maps the program fills
 * itself: a count per IPv4 source (HASH, 4-byte key), a count per flow (LRU
 * HASH of 4 entries, the 13-byte 5-tuple: a fifth flow evicts one), bytes per
 * protocol (PERCPU_HASH), a count per 20-byte key (a key longer than the short
 * keys' 16 bytes), a count per source in a per-CPU LRU HASH of 2 entries (a
 * third source evicts one) and a map nothing fills (every lookup a miss on an
 * empty map). The verdict counts the hits of the first two: XDP_DROP (1) when
 * the source and the flow are both new, XDP_PASS (2) for one hit, XDP_TX (3)
 * for two. Non-IPv4 frames look up the empty map only and pass. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct flow {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
} __attribute__((packed));

struct wide {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u32 proto;
	__u32 len;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __be32);
	__type(value, __u64);
	__uint(max_entries, 64);
} by_src SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct flow);
	__type(value, __u64);
	__uint(max_entries, 4);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 16);
} per_proto SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct wide);
	__type(value, __u64);
	__uint(max_entries, 64);
} by_wide SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 16);
} never SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__type(key, __be32);
	__type(value, __u64);
	__uint(max_entries, 2);
} recent_src SEC(".maps");

static __always_inline int count(void *map, void *key)
{
	__u64 one = 1, *v = bpf_map_lookup_elem(map, key);

	if (v) {
		__sync_fetch_and_add(v, 1);
		return 1;
	}
	bpf_map_update_elem(map, key, &one, BPF_NOEXIST);
	return 0;
}

SEC("xdp")
int xdp_hash_lookups(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct flow f = {};
	struct wide w = {};
	__u32 proto, len = data_end - data;
	__be32 src;
	__u64 *bytes;
	int hits;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP)) {
		__u32 type = eth->h_proto;

		if (bpf_map_lookup_elem(&never, &type))
			return XDP_ABORTED;
		return XDP_PASS;
	}
	src = ip->saddr;
	if (bpf_map_lookup_elem(&never, &src))
		return XDP_ABORTED;

	f.saddr = ip->saddr;
	f.daddr = ip->daddr;
	f.proto = ip->protocol;
	if ((ip->protocol == IPPROTO_TCP || ip->protocol == IPPROTO_UDP) && ip->ihl == 5 &&
	    (void *)(ip + 1) + 4 <= data_end) {
		__be16 *ports = (void *)(ip + 1);

		f.sport = ports[0];
		f.dport = ports[1];
	}
	hits = count(&by_src, &src) + count(&flows, &f);

	proto = ip->protocol;
	bytes = bpf_map_lookup_elem(&per_proto, &proto);
	if (bytes) {
		*bytes += len;
	} else {
		__u64 first = len;

		bpf_map_update_elem(&per_proto, &proto, &first, BPF_NOEXIST);
	}

	w.saddr = f.saddr;
	w.daddr = f.daddr;
	w.sport = f.sport;
	w.dport = f.dport;
	w.proto = proto;
	w.len = len;
	count(&by_wide, &w);
	count(&recent_src, &src);

	return XDP_DROP + hits;
}

char LICENSE[] SEC("license") = "GPL";
