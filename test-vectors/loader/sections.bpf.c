// One trivial program per libbpf section name, plus free (cilium/iproute2-style) names.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define PROG(sec, name) \
	SEC(sec) int name(void *ctx) { return 0; }

PROG("xdp", p_xdp)
PROG("xdp.frags", p_xdp_frags)
PROG("xdp/devmap", p_xdp_devmap)
PROG("xdp/cpumap", p_xdp_cpumap)
PROG("xdp.frags/devmap", p_xdp_frags_devmap)
PROG("tc", p_tc)
PROG("tc/ingress", p_tc_ingress)
PROG("tc/egress", p_tc_egress)
PROG("tcx/ingress", p_tcx_ingress)
PROG("tcx/egress", p_tcx_egress)
PROG("classifier", p_classifier)
PROG("action", p_action)
PROG("socket", p_socket)
PROG("cgroup_skb/ingress", p_cgroup_skb_ingress)
PROG("cgroup_skb/egress", p_cgroup_skb_egress)
PROG("kprobe/do_unlinkat", p_kprobe)
PROG("kretprobe/do_unlinkat", p_kretprobe)
PROG("uprobe/bin:func", p_uprobe)
PROG("tracepoint/syscalls/sys_enter_openat", p_tracepoint)
PROG("tp/sched/sched_switch", p_tp)
PROG("raw_tracepoint/sys_enter", p_raw_tracepoint)
PROG("raw_tp/sys_exit", p_raw_tp)
PROG("perf_event", p_perf_event)
PROG("lwt_in", p_lwt_in)
PROG("lwt_out", p_lwt_out)
PROG("lwt_xmit", p_lwt_xmit)
PROG("lwt_seg6local", p_lwt_seg6local)
PROG("flow_dissector", p_flow_dissector)
PROG("sk_lookup", p_sk_lookup)
PROG("sk_skb/stream_parser", p_sk_skb_parser)
PROG("sk_skb/stream_verdict", p_sk_skb_verdict)
PROG("sk_msg", p_sk_msg)
PROG("sockops", p_sockops)
PROG("from-netdev", p_cilium)
PROG("2/7", p_iproute2)
PROG("xdp_legacy_name", p_xdp_legacy)

char LICENSE[] SEC("license") = "GPL";
