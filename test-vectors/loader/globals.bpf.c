// Global data: .data, .rodata, .bss, a custom .data.* section, and bpf_printk format strings
// (.rodata.str1.1).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

volatile __u32 hits = 0x11223344;            /* .data */
volatile const __u32 port = 8080;            /* .rodata */
volatile const __u8 magic[4] = { 0xde, 0xad, 0xbe, 0xef };
volatile __u64 drops;                        /* .bss */
volatile __u64 last_len;
__u32 custom SEC(".data.custom") = 7;       /* .data.custom */

SEC("xdp")
int globals(struct xdp_md *ctx)
{
	__u64 len = ctx->data_end - ctx->data;

	hits++;
	last_len = len;
	custom += 1;
	if (len < port + magic[2]) {
		drops++;
		bpf_printk("short packet %llu", len);
		return XDP_DROP;
	}
	bpf_printk("pass %u", hits);
	/* A literal passed by pointer lands in the mergeable .rodata.str1.1. */
	bpf_trace_printk("len %llu\n", sizeof("len %llu\n"), len);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
