// Features the loader refuses, each confined to one program: a CO-RE relocation against a kernel
// type and a kfunc call. The plain XDP program next to them must still load.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct task_struct {
	int pid;
} __attribute__((preserve_access_index));

extern int bpf_fake_kfunc(int x) __ksym;

SEC("kprobe/do_nanosleep")
int core_reader(struct task_struct *task)
{
	int pid = 0;

	bpf_probe_read_kernel(&pid, sizeof(pid), &task->pid);
	return pid;
}

SEC("tc")
int kfunc_caller(struct __sk_buff *skb)
{
	return bpf_fake_kfunc(skb->len);
}

SEC("xdp")
int plain(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
