// kfunc calls (`__ksym` externs) resolved against the kernel's BTF: one every program type may
// call, one whose local prototype disagrees with the kernel's, one the kernel does not have;
// and a typed kernel variable (a per-CPU int).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;
extern int bpf_rcu_read_lock___wrong(int x) __ksym __attribute__((weak));
extern long bpf_no_such_kfunc(void) __ksym;
extern const int bpf_prog_active __ksym;

SEC("tc")
int rcu(struct __sk_buff *skb)
{
	bpf_rcu_read_lock();
	bpf_rcu_read_unlock();
	return 0;
}

SEC("tc")
int wrong_proto(struct __sk_buff *skb)
{
	return bpf_rcu_read_lock___wrong(1);
}

SEC("tc")
int missing(struct __sk_buff *skb)
{
	return bpf_no_such_kfunc();
}

SEC("kprobe/do_nanosleep")
int prog_active(void *ctx)
{
	const int *active = bpf_this_cpu_ptr(&bpf_prog_active);

	return *active;
}

char LICENSE[] SEC("license") = "GPL";
