// SPDX-License-Identifier: GPL-2.0
/* bpf_for_each_map_elem over a hash (order-independent sums) and an array (stopping early). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);   /* frame length */
	__type(value, __u64); /* frames of that length */
} by_len SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} slots SEC(".maps");

struct sums {
	__u64 keys;
	__u64 frames;
	__u64 visited;
};

__u64 hash_calls = 0, array_calls = 0, total_keys = 0, total_frames = 0;

static long sum_hash(void *map, __u32 *key, __u64 *val, struct sums *s)
{
	s->keys += *key;
	s->frames += *val;
	return 0;
}

static long touch_array(void *map, __u32 *key, __u64 *val, struct sums *s)
{
	*val += 1;
	s->visited++;
	return *key == 2 ? 1 : 0;
}

SEC("xdp")
int xdp_foreach(struct xdp_md *ctx)
{
	__u32 len = ctx->data_end - ctx->data;
	__u64 one = 1, *n = bpf_map_lookup_elem(&by_len, &len);
	struct sums s = {};

	if (n)
		*n += 1;
	else
		bpf_map_update_elem(&by_len, &len, &one, BPF_NOEXIST);
	hash_calls = bpf_for_each_map_elem(&by_len, sum_hash, &s, 0);
	array_calls = bpf_for_each_map_elem(&slots, touch_array, &s, 0);
	total_keys = s.keys;
	total_frames = s.frames;
	return s.frames & 1 ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
