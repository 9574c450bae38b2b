// Tracing arguments dereferenced directly: the kernel types a pointer to a struct as
// PTR_TO_BTF_ID and checks every load against the struct's BTF (btf_struct_access). Accepted
// and refused variants side by side, each compared with the live kernel (tp_btf: fentry and
// LSM programs cannot be loaded on every kernel). Built on a bpftool vmlinux.h.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, u32);
	__type(value, u64);
} seen SEC(".maps");

static __always_inline void record(u32 key, u64 v)
{
	bpf_map_update_elem(&seen, &key, &v, 0);
}

// Scalar members of the argument, of several widths, one inside a nested struct and one in
// an array.
SEC("tp_btf/sched_wakeup")
int BPF_PROG(scalar_members, struct task_struct *p)
{
	record(p->pid, p->se.vruntime + p->comm[3] + p->prio);
	return 0;
}

// A pointer member: task->real_parent is RCU-protected (rcu_ptr_task_struct), task->mm an
// ordinary pointer (ptr_mm_struct); both may be dereferenced.
SEC("tp_btf/sched_switch")
int BPF_PROG(pointer_members, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct mm_struct *mm = next->mm;

	record(prev->real_parent->tgid, mm ? mm->total_vm : 0);
	return 0;
}

// A trusted argument is never NULL: the check is dead code to the kernel.
SEC("tp_btf/sched_wakeup")
int BPF_PROG(null_check, struct task_struct *p)
{
	if (!p)
		return 1;
	return p->pid & 1;
}

// bprm->file is trusted (linux_binprm__safe_trusted), and so is file->f_inode.
SEC("tp_btf/sched_process_exec")
int BPF_PROG(trusted_chain, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	record(old_pid, bprm->file->f_inode->i_ino);
	return 0;
}

// skb->sk is RCU-protected and may be NULL (sk_buff__safe_rcu_or_null): checked first.
SEC("tp_btf/kfree_skb")
int BPF_PROG(maybe_null_checked, struct sk_buff *skb)
{
	struct sock *sk = skb->sk;

	if (!sk)
		return 0;
	return sk->__sk_common.skc_family;
}

// The same without the check.
SEC("tp_btf/kfree_skb")
int BPF_PROG(maybe_null_unchecked, struct sk_buff *skb)
{
	return skb->sk->__sk_common.skc_family;
}

// Stores through PTR_TO_BTF_ID are refused.
SEC("tp_btf/sched_wakeup")
int BPF_PROG(write_member, struct task_struct *p)
{
	p->prio = 0;
	return 0;
}

// A read past the end of the struct.
SEC("tp_btf/sched_wakeup")
int BPF_PROG(beyond_struct, struct task_struct *p)
{
	return *(u32 *)((char *)p + sizeof(*p) + 8);
}

// Half of a pointer member.
SEC("tp_btf/sched_wakeup")
int BPF_PROG(half_pointer, struct task_struct *p)
{
	return *(u32 *)((char *)&p->real_parent + 4);
}

// A negative offset.
SEC("tp_btf/sched_wakeup")
int BPF_PROG(negative_offset, struct task_struct *p)
{
	return *(u32 *)((char *)p - 8);
}

// A variable offset.
SEC("tp_btf/sched_wakeup")
int BPF_PROG(variable_offset, struct task_struct *p)
{
	u32 i = bpf_get_prandom_u32() & 7;

	return ((char *)p)[i];
}

// A pointer to something other than a struct (void *stack): read-only untrusted memory of
// size 0.
SEC("tp_btf/sched_wakeup")
int BPF_PROG(void_pointer_member, struct task_struct *p)
{
	return *(char *)p->stack;
}

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} rb SEC(".maps");

// Helpers given the pointer: an address to read from (ARG_ANYTHING), and memory to copy out
// (ARG_PTR_TO_MEM takes a trusted PTR_TO_BTF_ID, the bytes read walked as a load of that
// size: task->comm is a char array, the scalar member it may be read whole).
SEC("tp_btf/sched_wakeup")
int BPF_PROG(helper_args, struct task_struct *p)
{
	char comm[16];

	bpf_probe_read_kernel(comm, sizeof(comm), &p->comm);
	bpf_ringbuf_output(&rb, &p->comm, 16, 0);
	return comm[0];
}

// 16 bytes from the start of task_struct span two members of its first one (thread_info).
SEC("tp_btf/sched_wakeup")
int BPF_PROG(helper_mem_beyond_member, struct task_struct *p)
{
	bpf_ringbuf_output(&rb, p, 16, 0);
	return 0;
}

// An iterator's object argument may be NULL (the iteration's end): checked first.
SEC("iter/task")
int BPF_PROG(iter_task_checked, struct bpf_iter_meta *meta, struct task_struct *task)
{
	if (!task)
		return 0;
	return task->pid & 1;
}

// The same without the check.
SEC("iter/task")
int BPF_PROG(iter_task_unchecked, struct bpf_iter_meta *meta, struct task_struct *task)
{
	return task->pid & 1;
}

// Another iterator: the file of a task.
SEC("iter/task_file")
int BPF_PROG(iter_task_file, struct bpf_iter_meta *meta, struct task_struct *task, u32 fd,
	     struct file *file)
{
	if (!task || !file)
		return 0;
	return (task->pid + fd + file->f_flags) & 1;
}

char LICENSE[] SEC("license") = "GPL";
