// SPDX-License-Identifier: GPL-2.0
/* bpf_spin_lock in a map value found through the map's BTF: the kernel accepts the program that
 * unlocks on every path and rejects the one that returns with the lock held ("BPF_EXIT
 * instruction in main prog cannot be used inside bpf_spin_lock-ed region"). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct counter {
	__u64 packets;
	struct bpf_spin_lock lock;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct counter);
	__uint(max_entries, 16);
} counters SEC(".maps");

SEC("xdp")
int xdp_count_locked(struct xdp_md *ctx)
{
	__u32 key = ctx->ingress_ifindex;
	struct counter *c = bpf_map_lookup_elem(&counters, &key);

	if (!c)
		return XDP_PASS;
	bpf_spin_lock(&c->lock);
	c->packets += 1;
	c->bytes += ctx->data_end - ctx->data;
	bpf_spin_unlock(&c->lock);
	return XDP_PASS;
}

SEC("xdp")
int xdp_count_unlock_missing(struct xdp_md *ctx)
{
	__u32 key = ctx->ingress_ifindex;
	struct counter *c = bpf_map_lookup_elem(&counters, &key);

	if (!c)
		return XDP_PASS;
	bpf_spin_lock(&c->lock);
	c->packets += 1;
	if (c->packets > 1000)
		return XDP_DROP; /* still holding the lock */
	bpf_spin_unlock(&c->lock);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
