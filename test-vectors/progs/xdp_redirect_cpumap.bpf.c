// SPDX-License-Identifier: GPL-2.0
/* Receive-side steering through a CPUMAP: IPv4/IPv6 frames go to the CPU picked
 * by a hash of the addresses (modulo the cpu count in .rodata); an empty slot
 * falls back to XDP_PASS. Non-IP frames are passed. A second program, attached
 * on the remote CPU (SEC("xdp/cpumap")), drops UDP discard (port 9) traffic. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

const volatile __u32 nr_cpus = 2;

struct {
	__uint(type, BPF_MAP_TYPE_CPUMAP);
	__type(key, __u32);
	__type(value, struct bpf_cpumap_val);
	__uint(max_entries, 4);
} cpu_map SEC(".maps");

__u32 last_cpu = 0xffffffff;

SEC("xdp")
int xdp_cpumap_steer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 hash, cpu;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end)
			return XDP_PASS;
		hash = ip->saddr ^ ip->daddr;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end)
			return XDP_PASS;
		hash = ip6->saddr.in6_u.u6_addr32[3] ^ ip6->daddr.in6_u.u6_addr32[3];
	} else {
		return XDP_PASS;
	}
	hash = bpf_ntohl(hash);
	hash ^= hash >> 16;
	hash ^= hash >> 8;
	cpu = nr_cpus ? (hash & 0xff) % nr_cpus : 0;
	last_cpu = cpu;
	return bpf_redirect_map(&cpu_map, cpu, XDP_PASS);
}

SEC("xdp/cpumap")
int xdp_cpumap_discard(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);

	if ((void *)(udp + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP) && ip->ihl == 5 &&
	    ip->protocol == IPPROTO_UDP && udp->dest == bpf_htons(9))
		return XDP_DROP;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
