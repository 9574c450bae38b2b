// No SEC() at all and no license: the functions land in .text, and the user names one and its type.
#include <linux/bpf.h>

int only_text(struct xdp_md *ctx)
{
	return XDP_TX;
}
