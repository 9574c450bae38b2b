// SPDX-License-Identifier: GPL-2.0
/* Socket references: a bpf_sk_lookup_tcp result must be NULL-checked before use and released
 * on every path; the kernel accepts tc_sk_lookup and rejects tc_sk_leak ("Unreleased reference
 * id=N alloc_insn=M", "BPF_EXIT instruction in main prog would lead to reference leak"). */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int tc_sk_lookup(struct __sk_buff *skb)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	int ret = TC_ACT_OK;

	t.ipv4.daddr = skb->mark;
	t.ipv4.dport = (__u16)skb->priority;
	sk = bpf_sk_lookup_tcp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return TC_ACT_OK;
	if (sk->state == 10 /* TCP_LISTEN */ && sk->dst_port == 0)
		ret = TC_ACT_SHOT;
	bpf_sk_release(sk);
	return ret;
}

SEC("tc")
int tc_sk_leak(struct __sk_buff *skb)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;

	t.ipv4.daddr = skb->mark;
	sk = bpf_sk_lookup_tcp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return TC_ACT_OK;
	if (sk->family == 2)
		return TC_ACT_SHOT; /* the reference is never released */
	bpf_sk_release(sk);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
