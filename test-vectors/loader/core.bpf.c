// CO-RE relocations of every kind against kernel types declared locally (as vmlinux.h would),
// resolved by the loader against the kernel's BTF, and tracing programs whose attach targets
// are found there. The kernel's layouts differ from these declarations on purpose: `pid` is not
// at offset 0 of task_struct, and the flavored `task_struct___old` has a field the kernel lacks.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

struct task_struct {
	int pid;
	int tgid;
} __attribute__((preserve_access_index));

struct task_struct___old {
	long no_such_field;
} __attribute__((preserve_access_index));

struct sk_buff {
	unsigned int len;
} __attribute__((preserve_access_index));

enum bpf_map_type___local {
	BPF_MAP_TYPE_HASH___local = 1,
	BPF_MAP_TYPE_NOPE___local = 12345,
};

struct not_in_any_kernel {
	int x;
} __attribute__((preserve_access_index));

SEC("kprobe/do_nanosleep")
int read_pid(struct pt_regs *ctx)
{
	struct task_struct *t = (void *)bpf_get_current_task();

	return BPF_CORE_READ(t, pid) & 1;
}

// Every kind whose value lands in a register, summed so none is optimised away.
SEC("kprobe/do_nanosleep")
int kinds(struct pt_regs *ctx)
{
	struct task_struct *t = (void *)bpf_get_current_task();
	long n = 0;

	n += bpf_core_field_exists(t->tgid);
	n += bpf_core_field_size(t->tgid);
	n += bpf_core_field_offset(t->tgid);
	n += bpf_core_field_exists(((struct task_struct___old *)t)->no_such_field);
	n += bpf_core_type_exists(struct task_struct);
	n += bpf_core_type_exists(struct not_in_any_kernel);
	n += bpf_core_type_size(struct sk_buff);
	n += bpf_core_type_id_kernel(struct task_struct) != 0;
	n += bpf_core_enum_value_exists(enum bpf_map_type___local, BPF_MAP_TYPE_HASH___local);
	n += bpf_core_enum_value_exists(enum bpf_map_type___local, BPF_MAP_TYPE_NOPE___local);
	n += bpf_core_enum_value(enum bpf_map_type___local, BPF_MAP_TYPE_HASH___local);
	return n;
}

// A field the kernel does not have, read only when it exists: the poisoned load is dead code.
SEC("kprobe/do_nanosleep")
int guarded(struct pt_regs *ctx)
{
	struct task_struct___old *t = (void *)bpf_get_current_task();

	if (bpf_core_field_exists(t->no_such_field))
		return BPF_CORE_READ(t, no_such_field);
	return 0;
}

// The same read unguarded: the kernel's verifier refuses the poisoned call.
SEC("kprobe/do_nanosleep")
int unguarded(struct pt_regs *ctx)
{
	struct task_struct___old *t = (void *)bpf_get_current_task();

	return BPF_CORE_READ(t, no_such_field);
}

SEC("fentry/do_nanosleep")
int BPF_PROG(fentry_sleep, void *timer, int mode)
{
	return mode == 0;
}

SEC("fexit/do_nanosleep")
int BPF_PROG(fexit_sleep, void *timer, int mode, int ret)
{
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(tp_switch, int preempt)
{
	return 0;
}

SEC("lsm/file_open")
int BPF_PROG(lsm_open, void *file)
{
	return 0;
}

SEC("fentry/no_such_function_in_the_kernel")
int fentry_missing(void *ctx)
{
	return 0;
}

// A CO-RE read in a static function of .text, linked into the program that calls it.
static __attribute__((noinline)) int task_tgid(struct task_struct *t)
{
	return BPF_CORE_READ(t, tgid);
}

SEC("kprobe/do_nanosleep")
int via_subprog(struct pt_regs *ctx)
{
	return task_tgid((void *)bpf_get_current_task()) & 1;
}

char LICENSE[] SEC("license") = "GPL";
