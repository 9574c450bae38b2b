// `.kconfig` externs: the kernel version and the syscall-wrapper flag that BPF_KSYSCALL reads
// are provided; a CONFIG_ value is not, and only the program reading it is refused.
#include "vmlinux.h"
#include <linux/version.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

extern unsigned int LINUX_KERNEL_VERSION __kconfig;
extern _Bool CONFIG_BPF_SYSCALL __kconfig __weak;

// The branch the running kernel's version does not take is dead code for both verifiers.
SEC("kprobe/do_nanosleep")
int version(struct pt_regs *ctx)
{
	if (LINUX_KERNEL_VERSION >= KERNEL_VERSION(5, 0, 0))
		return 1;
	return bpf_get_prandom_u32();
}

SEC("ksyscall/nanosleep")
int BPF_KSYSCALL(ksys_nanosleep, void *req, void *rem)
{
	return req != 0;
}

SEC("kprobe/do_nanosleep")
int config_value(struct pt_regs *ctx)
{
	return CONFIG_BPF_SYSCALL;
}

char LICENSE[] SEC("license") = "GPL";
