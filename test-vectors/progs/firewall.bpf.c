// SPDX-License-Identifier: GPL-2.0
/* A stateless XDP firewall: IPv4 sources matching an LPM trie of blocked
 * prefixes are dropped, and TCP/UDP destination ports listed in a hash map
 * (keyed by protocol and port) are dropped for IPv4 and IPv6. One VLAN tag is
 * looked through. Each rule's value is its hit counter; verdicts are counted
 * in an ARRAY. */
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

struct port_key {
	__u8 proto;   /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad;
	__be16 port;  /* network order */
};

struct lpm_v4_key {
	__u32 prefixlen;
	__be32 addr;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct port_key);
	__type(value, __u64); /* hits */
	__uint(max_entries, 256);
} blocked_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct lpm_v4_key);
	__type(value, __u64); /* hits */
	__uint(max_entries, 256);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} blocked_v4 SEC(".maps");

enum { VERDICT_PASS, VERDICT_DROP_PREFIX, VERDICT_DROP_PORT, VERDICT_MAX };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, VERDICT_MAX);
} verdicts SEC(".maps");

static __always_inline int verdict(__u32 v)
{
	__u64 *cnt = bpf_map_lookup_elem(&verdicts, &v);

	if (cnt)
		__sync_fetch_and_add(cnt, 1);
	return v == VERDICT_PASS ? XDP_PASS : XDP_DROP;
}

static __always_inline int check_port(void *l4, void *data_end, __u8 proto)
{
	struct port_key key = { .proto = proto };
	__u64 *hits;

	if (proto == IPPROTO_TCP) {
		struct tcphdr *tcp = l4;

		if ((void *)(tcp + 1) > data_end)
			return VERDICT_PASS;
		key.port = tcp->dest;
	} else if (proto == IPPROTO_UDP) {
		struct udphdr *udp = l4;

		if ((void *)(udp + 1) > data_end)
			return VERDICT_PASS;
		key.port = udp->dest;
	} else {
		return VERDICT_PASS;
	}
	hits = bpf_map_lookup_elem(&blocked_ports, &key);
	if (!hits)
		return VERDICT_PASS;
	__sync_fetch_and_add(hits, 1);
	return VERDICT_DROP_PORT;
}

SEC("xdp")
int xdp_firewall(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	void *l3 = eth + 1;
	__be16 proto;

	if ((void *)(eth + 1) > data_end)
		return verdict(VERDICT_PASS);
	proto = eth->h_proto;
	if (proto == bpf_htons(ETH_P_8021Q)) {
		struct vlan_hdr *vh = l3;

		if ((void *)(vh + 1) > data_end)
			return verdict(VERDICT_PASS);
		proto = vh->h_vlan_encapsulated_proto;
		l3 = vh + 1;
	}

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;
		struct lpm_v4_key key = { .prefixlen = 32 };
		__u64 *hits;

		if ((void *)(ip + 1) > data_end)
			return verdict(VERDICT_PASS);
		key.addr = ip->saddr;
		hits = bpf_map_lookup_elem(&blocked_v4, &key);
		if (hits) {
			__sync_fetch_and_add(hits, 1);
			return verdict(VERDICT_DROP_PREFIX);
		}
		if (ip->ihl < 5)
			return verdict(VERDICT_PASS);
		return verdict(check_port((void *)ip + ip->ihl * 4, data_end, ip->protocol));
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;

		if ((void *)(ip6 + 1) > data_end)
			return verdict(VERDICT_PASS);
		return verdict(check_port(ip6 + 1, data_end, ip6->nexthdr));
	}
	return verdict(VERDICT_PASS);
}

char LICENSE[] SEC("license") = "GPL";
