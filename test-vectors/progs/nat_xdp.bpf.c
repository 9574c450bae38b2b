// SPDX-License-Identifier: GPL-2.0
/* The same static NAT as nat_tc, in XDP with direct packet access: the IPv4
 * header checksum is patched by hand (RFC 1624, 32-bit word), the TCP/UDP
 * checksum with bpf_csum_diff() over the changed address and port words. A zero
 * UDP checksum is left alone; a UDP result of 0 is sent as 0xffff. Translated
 * frames are bounced with XDP_TX (MACs swapped); the rest is passed. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define PUBLIC_IP   bpf_htonl(0x0a00000a) /* 10.0.0.10 */
#define PUBLIC_PORT bpf_htons(8080)
#define BACKEND_IP  bpf_htonl(0xc0a8000a) /* 192.168.0.10 */
#define BACKEND_PORT bpf_htons(80)

struct ports {
	__be16 source;
	__be16 dest;
};

__u64 translated = 0;

static __always_inline __u16 csum_fold32(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* RFC 1624 for a 32-bit field: HC' = ~(~HC + ~m + m') */
static __always_inline __u16 csum_replace4(__u16 check, __be32 from, __be32 to)
{
	__u64 sum = (__u16)~check;

	sum += (__u16)~(from & 0xffff) + (__u16)~(from >> 16);
	sum += (to & 0xffff) + (to >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

SEC("xdp")
int xdp_nat(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct ports *p = (void *)(ip + 1);
	__be32 old_words[2], new_words[2];
	unsigned char mac[ETH_ALEN];
	__u16 *check;
	__s64 diff;
	__u16 c;

	if ((void *)(p + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5 ||
	    (ip->frag_off & bpf_htons(0x1fff)))
		return XDP_PASS;
	if (ip->protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = (void *)p;

		if ((void *)(tcp + 1) > data_end)
			return XDP_PASS;
		check = (__u16 *)&tcp->check;
	} else if (ip->protocol == IPPROTO_UDP) {
		struct udphdr *udp = (void *)p;

		if ((void *)(udp + 1) > data_end)
			return XDP_PASS;
		check = (__u16 *)&udp->check;
	} else {
		return XDP_PASS;
	}

	old_words[1] = *(__be32 *)p;
	if (ip->daddr == PUBLIC_IP && p->dest == PUBLIC_PORT) {
		old_words[0] = ip->daddr;
		ip->check = csum_replace4(ip->check, ip->daddr, BACKEND_IP);
		ip->daddr = BACKEND_IP;
		p->dest = BACKEND_PORT;
		new_words[0] = ip->daddr;
	} else if (ip->saddr == BACKEND_IP && p->source == BACKEND_PORT) {
		old_words[0] = ip->saddr;
		ip->check = csum_replace4(ip->check, ip->saddr, PUBLIC_IP);
		ip->saddr = PUBLIC_IP;
		p->source = PUBLIC_PORT;
		new_words[0] = ip->saddr;
	} else {
		return XDP_PASS;
	}
	new_words[1] = *(__be32 *)p;

	if (!(ip->protocol == IPPROTO_UDP && *check == 0)) {
		diff = bpf_csum_diff(old_words, sizeof(old_words), new_words, sizeof(new_words),
				     (__u16)~*check);
		c = ~csum_fold32((__u32)diff);
		if (ip->protocol == IPPROTO_UDP && c == 0)
			c = 0xffff;
		*check = c;
	}

	__builtin_memcpy(mac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, mac, ETH_ALEN);
	translated++;
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
