// Programs in the style of libbpf-tools (execsnoop, tcpconnect, runqlat), built against a
// vmlinux.h that `bpftool btf dump file /sys/kernel/btf/vmlinux format c` generates (see the
// Makefile; not committed): every kernel type is CO-RE relocatable, with the nested anonymous
// unions, bitfields and arrays of the real structures.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

struct event {
	u32 pid;
	u32 ppid;
	u32 daddr;
	u16 dport;
	u8 pkt_type;
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, u32);
	__type(value, u64);
} start SEC(".maps");

// execsnoop: the parent's tgid through task->real_parent.
SEC("tracepoint/syscalls/sys_enter_execve")
int exec_enter(struct trace_event_raw_sys_enter *ctx)
{
	struct task_struct *task = (void *)bpf_get_current_task();
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e)
		return 0;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	bpf_get_current_comm(&e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

// tcpconnect: address and port in sock_common's anonymous unions.
SEC("kprobe/tcp_v4_connect")
int BPF_KPROBE(connect_v4, struct sock *sk)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e)
		return 0;
	e->daddr = BPF_CORE_READ(sk, __sk_common.skc_daddr);
	e->dport = BPF_CORE_READ(sk, __sk_common.skc_dport);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

// A bitfield of sk_buff, read with the CO-RE byte offset, size and shifts.
SEC("kprobe/netif_receive_skb")
int BPF_KPROBE(rx, struct sk_buff *skb)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e)
		return 0;
	e->pkt_type = BPF_CORE_READ_BITFIELD_PROBED(skb, pkt_type);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

// runqlat: tp_btf arguments read through BPF_CORE_READ, and a field that exists only on some
// kernels checked first.
SEC("tp_btf/sched_wakeup")
int BPF_PROG(wakeup, struct task_struct *p)
{
	u32 pid = BPF_CORE_READ(p, pid);
	u64 ts = bpf_ktime_get_ns();

	if (bpf_core_field_exists(p->__state))
		ts += BPF_CORE_READ(p, __state) & 1;
	bpf_map_update_elem(&start, &pid, &ts, 0);
	return 0;
}

// The same argument dereferenced directly, as PTR_TO_BTF_ID allows in the kernel.
SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(wakeup_new_direct, struct task_struct *p)
{
	u32 pid = p->pid;
	u64 ts = bpf_ktime_get_ns();

	bpf_map_update_elem(&start, &pid, &ts, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
