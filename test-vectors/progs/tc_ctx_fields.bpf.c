// SPDX-License-Identifier: GPL-2.0
/* Records what a TC program sees in struct __sk_buff for each packet (the
 * fields the kernel derives: len, protocol, pkt_type, ifindex...) into an
 * ARRAY slot per packet, then writes mark, priority and cb[0]/cb[4], which a
 * test run reports back in its output context. TC_ACT_OK, or TC_ACT_UNSPEC (-1)
 * for non-IP frames. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct skb_view {
	__u32 len;
	__u32 pkt_type;
	__u32 mark;
	__u32 queue_mapping;
	__u32 protocol;       /* as stored: network order in the low 16 bits */
	__u32 vlan_present;
	__u32 vlan_tci;
	__u32 vlan_proto;
	__u32 priority;
	__u32 ingress_ifindex;
	__u32 ifindex;
	__u32 tc_index;
	__u32 cb0;
	__u32 cb1;
	__u32 hash;
	__u32 data_len;       /* data_end - data */
	__u32 wire_len;
	__u32 gso_segs;
	__u32 gso_size;
	__u32 tc_classid;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct skb_view);
	__uint(max_entries, 64);
} seen SEC(".maps");

__u32 packet_no = 0;

SEC("tc")
int tc_ctx_fields(struct __sk_buff *skb)
{
	__u32 slot = packet_no++ & 63;
	struct skb_view *v = bpf_map_lookup_elem(&seen, &slot);

	if (v) {
		v->len = skb->len;
		v->pkt_type = skb->pkt_type;
		v->mark = skb->mark;
		v->queue_mapping = skb->queue_mapping;
		v->protocol = skb->protocol;
		v->vlan_present = skb->vlan_present;
		v->vlan_tci = skb->vlan_tci;
		v->vlan_proto = skb->vlan_proto;
		v->priority = skb->priority;
		v->ingress_ifindex = skb->ingress_ifindex;
		v->ifindex = skb->ifindex;
		v->tc_index = skb->tc_index;
		v->cb0 = skb->cb[0];
		v->cb1 = skb->cb[1];
		v->hash = skb->hash;
		v->data_len = skb->data_end - skb->data;
		v->wire_len = skb->wire_len;
		v->gso_segs = skb->gso_segs;
		v->gso_size = skb->gso_size;
		v->tc_classid = skb->tc_classid;
	}

	skb->mark = skb->len | 0xa0000;
	skb->priority = 7;
	skb->cb[0] = 0xc0ffee;
	skb->cb[4] = slot;
	if (skb->protocol != bpf_htons(ETH_P_IP) && skb->protocol != bpf_htons(ETH_P_IPV6))
		return TC_ACT_UNSPEC;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
