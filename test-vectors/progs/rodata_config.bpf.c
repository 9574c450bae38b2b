// SPDX-License-Identifier: GPL-2.0
/* Configuration in .rodata (const volatile, frozen at load, which lets the
 * verifier prune dead branches), counters in .data (initialised) and .bss
 * (zero). With the defaults: UDP to port 8125 is dropped, frames from the
 * quarantined MAC are dropped, IPv6 is passed only because allow_ipv6 is set,
 * everything else gets default_action (XDP_PASS). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct config {
	__u16 match_port;
	__u8 match_action;
	__u8 default_action;
	__u8 quarantine_mac[ETH_ALEN];
	__u8 allow_ipv6;
	__u8 verbose;
};

const volatile struct config cfg = {
	.match_port = 8125,
	.match_action = XDP_DROP,
	.default_action = XDP_PASS,
	.quarantine_mac = { 0x02, 0xba, 0xd0, 0x00, 0x00, 0x01 },
	.allow_ipv6 = 1,
	.verbose = 0,
};
const volatile __u32 config_version = 3;

/* .data: starts from non-zero values */
__u64 packets_seen = 1000;
__u32 applied_version = 0xffffffff;
/* .bss */
__u64 matched = 0;
__u64 quarantined = 0;
__u64 ipv6_seen = 0;

SEC("xdp")
int xdp_config(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	struct udphdr *udp;
	int i;

	packets_seen++;
	applied_version = config_version;
	if ((void *)(eth + 1) > data_end)
		return cfg.default_action;

	for (i = 0; i < ETH_ALEN; i++)
		if (eth->h_source[i] != cfg.quarantine_mac[i])
			break;
	if (i == ETH_ALEN) {
		quarantined++;
		return XDP_DROP;
	}

	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		ipv6_seen++;
		return cfg.allow_ipv6 ? XDP_PASS : XDP_DROP;
	}
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return cfg.default_action;
	ip = (void *)(eth + 1);
	udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > data_end || ip->ihl != 5 || ip->protocol != IPPROTO_UDP)
		return cfg.default_action;
	if (udp->dest == bpf_htons(cfg.match_port)) {
		matched++;
		if (cfg.verbose)
			bpf_printk("matched port %d", cfg.match_port);
		return cfg.match_action;
	}
	return cfg.default_action;
}

char LICENSE[] SEC("license") = "GPL";
