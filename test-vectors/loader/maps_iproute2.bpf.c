// Legacy map definitions in iproute2's 36-byte struct bpf_elf_map layout, with a map-in-map whose
// inner template is named by id, in a tc classifier with a free section name (as iproute2 and
// cilium objects use).
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

struct bpf_elf_map {
	__u32 type;
	__u32 size_key;
	__u32 size_value;
	__u32 max_elem;
	__u32 flags;
	__u32 id;
	__u32 pinning;
	__u32 inner_id;
	__u32 inner_idx;
};

#define PIN_GLOBAL_NS 2

struct bpf_elf_map SEC("maps") acl = {
	.type = BPF_MAP_TYPE_HASH,
	.size_key = sizeof(__u32),
	.size_value = sizeof(__u32),
	.max_elem = 256,
	.pinning = PIN_GLOBAL_NS,
};

struct bpf_elf_map SEC("maps") inner_tmpl = {
	.type = BPF_MAP_TYPE_ARRAY,
	.size_key = sizeof(__u32),
	.size_value = sizeof(__u64),
	.max_elem = 1,
	.id = 42,
};

struct bpf_elf_map SEC("maps") outer = {
	.type = BPF_MAP_TYPE_ARRAY_OF_MAPS,
	.size_key = sizeof(__u32),
	.max_elem = 4,
	.inner_id = 42,
};

SEC("from-netdev")
int classify(struct __sk_buff *skb)
{
	__u32 key = skb->mark;
	__u32 *verdict = bpf_map_lookup_elem(&acl, &key);

	if (bpf_map_lookup_elem(&outer, &key))
		return TC_ACT_SHOT;
	return verdict ? *verdict : TC_ACT_OK;
}

char __license[] SEC("license") = "GPL";
