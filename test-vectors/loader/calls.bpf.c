// BPF-to-BPF calls: .text subprograms (static and global, one calling another without a
// relocation) called from two programs in one section, a callback passed to bpf_loop, a static
// function placed in the program section itself (a call clang resolves without a relocation),
// and a global .text function that nothing calls (loadable by name with a type given by the user).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

static __attribute__((noinline)) int add_one(int x)
{
	return x + 1;
}

__attribute__((noinline)) int twice_plus_one(int x)
{
	return add_one(x) + x;
}

static __attribute__((noinline)) int square(int x)
{
	return x * x;
}

static int loop_body(__u32 index, void *ctx)
{
	int *sum = ctx;

	*sum += index;
	return 0;
}

static __attribute__((noinline)) __attribute__((section("xdp"))) int in_section(int x)
{
	return x ^ 1;
}

SEC("xdp")
int first(struct xdp_md *ctx)
{
	return in_section(twice_plus_one(ctx->ingress_ifindex)) & 3;
}

SEC("xdp")
int second(struct xdp_md *ctx)
{
	int sum = 0;

	bpf_loop(4, loop_body, &sum, 0);
	return (square(sum) + add_one(ctx->rx_queue_index)) & 3;
}

__attribute__((noinline)) int standalone(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
