// SPDX-License-Identifier: GPL-2.0
/* Per-source token-bucket rate limiter for IPv4: each source address owns a
 * bucket in a hash map (capacity `burst` tokens, refilled at `rate_per_sec`
 * tokens per second of bpf_ktime_get_ns() time). A packet that finds a token
 * passes, else it is dropped. Non-IPv4 frames are not limited. With the
 * defaults (burst 3, 1 token/s) a back-to-back train from one source passes
 * three packets and drops the rest. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define NSEC_PER_SEC 1000000000ULL

const volatile __u64 rate_per_sec = 1;
const volatile __u64 burst = 3;

struct bucket {
	__u64 tokens;
	__u64 last_refill_ns; /* time the last whole token was credited */
	__u64 passed;
	__u64 dropped;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __be32); /* IPv4 source */
	__type(value, struct bucket);
	__uint(max_entries, 1024);
} buckets SEC(".maps");

SEC("xdp")
int xdp_rate_limit(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct bucket *b, fresh = {};
	__u64 now, add;
	__be32 src;

	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	src = ip->saddr;
	now = bpf_ktime_get_ns();

	b = bpf_map_lookup_elem(&buckets, &src);
	if (!b) {
		fresh.tokens = burst - 1; /* this packet takes one */
		fresh.last_refill_ns = now;
		fresh.passed = 1;
		bpf_map_update_elem(&buckets, &src, &fresh, BPF_NOEXIST);
		return XDP_PASS;
	}

	add = (now - b->last_refill_ns) * rate_per_sec / NSEC_PER_SEC;
	if (add) {
		b->tokens += add;
		if (b->tokens > burst)
			b->tokens = burst;
		b->last_refill_ns += add * NSEC_PER_SEC / rate_per_sec;
	}
	if (b->tokens) {
		b->tokens--;
		b->passed++;
		return XDP_PASS;
	}
	b->dropped++;
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
