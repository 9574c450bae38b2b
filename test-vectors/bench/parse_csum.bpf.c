// SPDX-License-Identifier: GPL-2.0
/* Parse Ethernet, IPv4 and UDP headers, then return the Internet checksum (RFC 1071) of the
 * whole frame: the ones' complement of the ones'-complement sum of its big-endian 16-bit words,
 * an odd last byte padded with zero. The benchmarks run it on 64- and 1500-byte frames.
 * Frames that are not IPv4/UDP return XDP_PASS, truncated headers XDP_ABORTED (0); the 16-bit
 * checksum of the benchmark frames is neither. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* 16-bit words summed at most: frames up to 4096 bytes. The loop is bounded by this constant (so
 * the kernel's verifier can walk it) and ends at the frame's end. */
#define MAX_WORDS 2048

SEC("xdp")
int xdp_parse_csum(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp;
	__u8 *p = data;
	__u64 sum = 0;

	if ((void *)(ip + 1) > data_end)
		return XDP_ABORTED;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || ip->version != 4 || ip->ihl < 5)
		return XDP_PASS;
	udp = (void *)ip + ip->ihl * 4;
	if ((void *)(udp + 1) > data_end)
		return XDP_ABORTED;
	if (ip->protocol != IPPROTO_UDP || bpf_ntohs(udp->len) < sizeof(*udp))
		return XDP_PASS;

#pragma clang loop unroll(disable)
	for (int i = 0; i < MAX_WORDS; i++) {
		if (p + 2 > (__u8 *)data_end)
			break;
		sum += bpf_ntohs(*(__u16 *)p);
		p += 2;
	}
	if (p + 1 <= (__u8 *)data_end)
		sum += (__u64)*p << 8;
	/* Two folds bring any sum below 2^32 to 16 bits with end-around carry. */
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum & 0xffff;
}

char LICENSE[] SEC("license") = "GPL";
