// SPDX-License-Identifier: GPL-2.0
/* bpf_for_each_map_elem over a 256-entry array: a callback per element adds its key and value
 * to a sum in the caller's frame (what a for_each callback's call costs); returns the sum. */
#include "bench.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u64);
} vals SEC(".maps");

struct acc {
	__u64 sum;
};

static long add(void *map, __u32 *key, __u64 *val, struct acc *a)
{
	a->sum += *val + *key;
	return 0;
}

SEC("xdp")
int xdp_foreach_array(struct xdp_md *ctx)
{
	struct acc a = { .sum = packet_seed(ctx) & 0xff };

	bpf_for_each_map_elem(&vals, add, &a, 0);
	return (__u32)a.sum;
}

char LICENSE[] SEC("license") = "GPL";
