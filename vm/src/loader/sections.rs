//! libbpf's `SEC()` conventions: which program type and expected attach type a section name
//! implies. The table and its matching rules follow `section_defs[]` and `sec_def_matches()` in
//! libbpf 1.x, so an object gets the same type here as when libbpf loads it.

use crate::spec::ProgType;

/// `BPF_F_SLEEPABLE`: program flag libbpf sets for `.s` sections.
pub const BPF_F_SLEEPABLE: u32 = 1 << 4;
/// `BPF_F_XDP_HAS_FRAGS`: program flag libbpf sets for `xdp.frags` sections.
pub const BPF_F_XDP_HAS_FRAGS: u32 = 1 << 5;

macro_rules! attach_types {
    ($($v:ident = $n:literal, $k:literal, $lower:literal;)*) => {
        /// `enum bpf_attach_type`, with the kernel's numbers and libbpf's lower-case names.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        #[repr(u32)]
        pub enum AttachType { $(#[doc(alias = $k)] $v = $n),* }

        impl AttachType {
            pub const ALL: &'static [AttachType] = &[$(AttachType::$v),*];
            /// The kernel's number for this attach type.
            pub const fn id(self) -> u32 { self as u32 }
            pub fn from_id(id: u32) -> Option<AttachType> {
                Self::ALL.iter().copied().find(|t| t.id() == id)
            }
            /// libbpf's name (`libbpf_bpf_attach_type_str`): `xdp_devmap`, `tcx_ingress`, ...
            pub fn name(self) -> &'static str { match self { $(AttachType::$v => $lower),* } }
            pub fn from_name(name: &str) -> Option<AttachType> {
                Self::ALL.iter().copied().find(|t| t.name().eq_ignore_ascii_case(name))
            }
        }

        impl std::fmt::Display for AttachType {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

attach_types! {
    CgroupInetIngress = 0, "BPF_CGROUP_INET_INGRESS", "cgroup_inet_ingress";
    CgroupInetEgress = 1, "BPF_CGROUP_INET_EGRESS", "cgroup_inet_egress";
    CgroupInetSockCreate = 2, "BPF_CGROUP_INET_SOCK_CREATE", "cgroup_inet_sock_create";
    CgroupSockOps = 3, "BPF_CGROUP_SOCK_OPS", "cgroup_sock_ops";
    SkSkbStreamParser = 4, "BPF_SK_SKB_STREAM_PARSER", "sk_skb_stream_parser";
    SkSkbStreamVerdict = 5, "BPF_SK_SKB_STREAM_VERDICT", "sk_skb_stream_verdict";
    CgroupDevice = 6, "BPF_CGROUP_DEVICE", "cgroup_device";
    SkMsgVerdict = 7, "BPF_SK_MSG_VERDICT", "sk_msg_verdict";
    CgroupInet4Bind = 8, "BPF_CGROUP_INET4_BIND", "cgroup_inet4_bind";
    CgroupInet6Bind = 9, "BPF_CGROUP_INET6_BIND", "cgroup_inet6_bind";
    CgroupInet4Connect = 10, "BPF_CGROUP_INET4_CONNECT", "cgroup_inet4_connect";
    CgroupInet6Connect = 11, "BPF_CGROUP_INET6_CONNECT", "cgroup_inet6_connect";
    CgroupInet4PostBind = 12, "BPF_CGROUP_INET4_POST_BIND", "cgroup_inet4_post_bind";
    CgroupInet6PostBind = 13, "BPF_CGROUP_INET6_POST_BIND", "cgroup_inet6_post_bind";
    CgroupUdp4Sendmsg = 14, "BPF_CGROUP_UDP4_SENDMSG", "cgroup_udp4_sendmsg";
    CgroupUdp6Sendmsg = 15, "BPF_CGROUP_UDP6_SENDMSG", "cgroup_udp6_sendmsg";
    LircMode2 = 16, "BPF_LIRC_MODE2", "lirc_mode2";
    FlowDissector = 17, "BPF_FLOW_DISSECTOR", "flow_dissector";
    CgroupSysctl = 18, "BPF_CGROUP_SYSCTL", "cgroup_sysctl";
    CgroupUdp4Recvmsg = 19, "BPF_CGROUP_UDP4_RECVMSG", "cgroup_udp4_recvmsg";
    CgroupUdp6Recvmsg = 20, "BPF_CGROUP_UDP6_RECVMSG", "cgroup_udp6_recvmsg";
    CgroupGetsockopt = 21, "BPF_CGROUP_GETSOCKOPT", "cgroup_getsockopt";
    CgroupSetsockopt = 22, "BPF_CGROUP_SETSOCKOPT", "cgroup_setsockopt";
    TraceRawTp = 23, "BPF_TRACE_RAW_TP", "trace_raw_tp";
    TraceFentry = 24, "BPF_TRACE_FENTRY", "trace_fentry";
    TraceFexit = 25, "BPF_TRACE_FEXIT", "trace_fexit";
    ModifyReturn = 26, "BPF_MODIFY_RETURN", "modify_return";
    LsmMac = 27, "BPF_LSM_MAC", "lsm_mac";
    TraceIter = 28, "BPF_TRACE_ITER", "trace_iter";
    CgroupInet4Getpeername = 29, "BPF_CGROUP_INET4_GETPEERNAME", "cgroup_inet4_getpeername";
    CgroupInet6Getpeername = 30, "BPF_CGROUP_INET6_GETPEERNAME", "cgroup_inet6_getpeername";
    CgroupInet4Getsockname = 31, "BPF_CGROUP_INET4_GETSOCKNAME", "cgroup_inet4_getsockname";
    CgroupInet6Getsockname = 32, "BPF_CGROUP_INET6_GETSOCKNAME", "cgroup_inet6_getsockname";
    XdpDevmap = 33, "BPF_XDP_DEVMAP", "xdp_devmap";
    CgroupInetSockRelease = 34, "BPF_CGROUP_INET_SOCK_RELEASE", "cgroup_inet_sock_release";
    XdpCpumap = 35, "BPF_XDP_CPUMAP", "xdp_cpumap";
    SkLookup = 36, "BPF_SK_LOOKUP", "sk_lookup";
    Xdp = 37, "BPF_XDP", "xdp";
    SkSkbVerdict = 38, "BPF_SK_SKB_VERDICT", "sk_skb_verdict";
    SkReuseportSelect = 39, "BPF_SK_REUSEPORT_SELECT", "sk_reuseport_select";
    SkReuseportSelectOrMigrate = 40, "BPF_SK_REUSEPORT_SELECT_OR_MIGRATE", "sk_reuseport_select_or_migrate";
    PerfEvent = 41, "BPF_PERF_EVENT", "perf_event";
    TraceKprobeMulti = 42, "BPF_TRACE_KPROBE_MULTI", "trace_kprobe_multi";
    LsmCgroup = 43, "BPF_LSM_CGROUP", "lsm_cgroup";
    StructOps = 44, "BPF_STRUCT_OPS", "struct_ops";
    Netfilter = 45, "BPF_NETFILTER", "netfilter";
    TcxIngress = 46, "BPF_TCX_INGRESS", "tcx_ingress";
    TcxEgress = 47, "BPF_TCX_EGRESS", "tcx_egress";
    TraceUprobeMulti = 48, "BPF_TRACE_UPROBE_MULTI", "trace_uprobe_multi";
    CgroupUnixConnect = 49, "BPF_CGROUP_UNIX_CONNECT", "cgroup_unix_connect";
    CgroupUnixSendmsg = 50, "BPF_CGROUP_UNIX_SENDMSG", "cgroup_unix_sendmsg";
    CgroupUnixRecvmsg = 51, "BPF_CGROUP_UNIX_RECVMSG", "cgroup_unix_recvmsg";
    CgroupUnixGetpeername = 52, "BPF_CGROUP_UNIX_GETPEERNAME", "cgroup_unix_getpeername";
    CgroupUnixGetsockname = 53, "BPF_CGROUP_UNIX_GETSOCKNAME", "cgroup_unix_getsockname";
    NetkitPrimary = 54, "BPF_NETKIT_PRIMARY", "netkit_primary";
    NetkitPeer = 55, "BPF_NETKIT_PEER", "netkit_peer";
}

/// What a section name says about the programs in it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SectionDef {
    pub prog_type: ProgType,
    /// The `expected_attach_type` libbpf loads the program with, if the section implies one.
    pub attach_type: Option<AttachType>,
    /// `BPF_F_SLEEPABLE` / `BPF_F_XDP_HAS_FRAGS`, as libbpf passes them in `prog_flags`.
    pub flags: u32,
}

use AttachType as A;
use ProgType as P;

const S: u32 = BPF_F_SLEEPABLE;
const F: u32 = BPF_F_XDP_HAS_FRAGS;

/// libbpf's table, in its order (the first match wins). A pattern ending in `+` matches the name
/// exactly or followed by `/...`; one ending in `/` matches any name with that prefix; any other
/// pattern matches exactly. (libbpf 1.0 dropped the sloppy prefix matching of 0.x, so
/// `xdp_foo` is not an XDP section.)
#[rustfmt::skip]
const TABLE: &[(&str, ProgType, Option<AttachType>, u32)] = &[
    ("socket", P::SocketFilter, None, 0),
    ("sk_reuseport/migrate", P::SkReuseport, Some(A::SkReuseportSelectOrMigrate), 0),
    ("sk_reuseport", P::SkReuseport, Some(A::SkReuseportSelect), 0),
    ("kprobe+", P::Kprobe, None, 0),
    ("uprobe+", P::Kprobe, None, 0),
    ("uprobe.s+", P::Kprobe, None, S),
    ("kretprobe+", P::Kprobe, None, 0),
    ("uretprobe+", P::Kprobe, None, 0),
    ("uretprobe.s+", P::Kprobe, None, S),
    ("kprobe.multi+", P::Kprobe, Some(A::TraceKprobeMulti), 0),
    ("kretprobe.multi+", P::Kprobe, Some(A::TraceKprobeMulti), 0),
    ("uprobe.multi+", P::Kprobe, Some(A::TraceUprobeMulti), 0),
    ("uretprobe.multi+", P::Kprobe, Some(A::TraceUprobeMulti), 0),
    ("uprobe.multi.s+", P::Kprobe, Some(A::TraceUprobeMulti), S),
    ("uretprobe.multi.s+", P::Kprobe, Some(A::TraceUprobeMulti), S),
    ("ksyscall+", P::Kprobe, None, 0),
    ("kretsyscall+", P::Kprobe, None, 0),
    ("usdt+", P::Kprobe, None, 0),
    ("usdt.s+", P::Kprobe, None, S),
    ("tc/ingress", P::SchedCls, Some(A::TcxIngress), 0),
    ("tc/egress", P::SchedCls, Some(A::TcxEgress), 0),
    ("tcx/ingress", P::SchedCls, Some(A::TcxIngress), 0),
    ("tcx/egress", P::SchedCls, Some(A::TcxEgress), 0),
    ("tc", P::SchedCls, None, 0),
    ("classifier", P::SchedCls, None, 0),
    ("action", P::SchedAct, None, 0),
    ("netkit/primary", P::SchedCls, Some(A::NetkitPrimary), 0),
    ("netkit/peer", P::SchedCls, Some(A::NetkitPeer), 0),
    ("tracepoint+", P::Tracepoint, None, 0),
    ("tp+", P::Tracepoint, None, 0),
    ("raw_tracepoint+", P::RawTracepoint, None, 0),
    ("raw_tp+", P::RawTracepoint, None, 0),
    ("raw_tracepoint.w+", P::RawTracepointWritable, None, 0),
    ("raw_tp.w+", P::RawTracepointWritable, None, 0),
    ("tp_btf+", P::Tracing, Some(A::TraceRawTp), 0),
    ("fentry+", P::Tracing, Some(A::TraceFentry), 0),
    ("fmod_ret+", P::Tracing, Some(A::ModifyReturn), 0),
    ("fexit+", P::Tracing, Some(A::TraceFexit), 0),
    ("fentry.s+", P::Tracing, Some(A::TraceFentry), S),
    ("fmod_ret.s+", P::Tracing, Some(A::ModifyReturn), S),
    ("fexit.s+", P::Tracing, Some(A::TraceFexit), S),
    ("freplace+", P::Ext, None, 0),
    ("lsm+", P::Lsm, Some(A::LsmMac), 0),
    ("lsm.s+", P::Lsm, Some(A::LsmMac), S),
    ("lsm_cgroup+", P::Lsm, Some(A::LsmCgroup), 0),
    ("iter+", P::Tracing, Some(A::TraceIter), 0),
    ("iter.s+", P::Tracing, Some(A::TraceIter), S),
    ("syscall", P::Syscall, None, S),
    ("xdp.frags/devmap", P::Xdp, Some(A::XdpDevmap), F),
    ("xdp/devmap", P::Xdp, Some(A::XdpDevmap), 0),
    ("xdp.frags/cpumap", P::Xdp, Some(A::XdpCpumap), F),
    ("xdp/cpumap", P::Xdp, Some(A::XdpCpumap), 0),
    ("xdp.frags", P::Xdp, Some(A::Xdp), F),
    ("xdp", P::Xdp, Some(A::Xdp), 0),
    ("perf_event", P::PerfEvent, None, 0),
    ("lwt_in", P::LwtIn, None, 0),
    ("lwt_out", P::LwtOut, None, 0),
    ("lwt_xmit", P::LwtXmit, None, 0),
    ("lwt_seg6local", P::LwtSeg6local, None, 0),
    ("sockops", P::SockOps, Some(A::CgroupSockOps), 0),
    ("sk_skb/stream_parser", P::SkSkb, Some(A::SkSkbStreamParser), 0),
    ("sk_skb/stream_verdict", P::SkSkb, Some(A::SkSkbStreamVerdict), 0),
    ("sk_skb", P::SkSkb, None, 0),
    ("sk_msg", P::SkMsg, Some(A::SkMsgVerdict), 0),
    ("lirc_mode2", P::LircMode2, Some(A::LircMode2), 0),
    ("flow_dissector", P::FlowDissector, Some(A::FlowDissector), 0),
    ("cgroup_skb/ingress", P::CgroupSkb, Some(A::CgroupInetIngress), 0),
    ("cgroup_skb/egress", P::CgroupSkb, Some(A::CgroupInetEgress), 0),
    ("cgroup/skb", P::CgroupSkb, None, 0),
    ("cgroup/sock_create", P::CgroupSock, Some(A::CgroupInetSockCreate), 0),
    ("cgroup/sock_release", P::CgroupSock, Some(A::CgroupInetSockRelease), 0),
    ("cgroup/sock", P::CgroupSock, Some(A::CgroupInetSockCreate), 0),
    ("cgroup/post_bind4", P::CgroupSock, Some(A::CgroupInet4PostBind), 0),
    ("cgroup/post_bind6", P::CgroupSock, Some(A::CgroupInet6PostBind), 0),
    ("cgroup/bind4", P::CgroupSockAddr, Some(A::CgroupInet4Bind), 0),
    ("cgroup/bind6", P::CgroupSockAddr, Some(A::CgroupInet6Bind), 0),
    ("cgroup/connect4", P::CgroupSockAddr, Some(A::CgroupInet4Connect), 0),
    ("cgroup/connect6", P::CgroupSockAddr, Some(A::CgroupInet6Connect), 0),
    ("cgroup/connect_unix", P::CgroupSockAddr, Some(A::CgroupUnixConnect), 0),
    ("cgroup/sendmsg4", P::CgroupSockAddr, Some(A::CgroupUdp4Sendmsg), 0),
    ("cgroup/sendmsg6", P::CgroupSockAddr, Some(A::CgroupUdp6Sendmsg), 0),
    ("cgroup/sendmsg_unix", P::CgroupSockAddr, Some(A::CgroupUnixSendmsg), 0),
    ("cgroup/recvmsg4", P::CgroupSockAddr, Some(A::CgroupUdp4Recvmsg), 0),
    ("cgroup/recvmsg6", P::CgroupSockAddr, Some(A::CgroupUdp6Recvmsg), 0),
    ("cgroup/recvmsg_unix", P::CgroupSockAddr, Some(A::CgroupUnixRecvmsg), 0),
    ("cgroup/getpeername4", P::CgroupSockAddr, Some(A::CgroupInet4Getpeername), 0),
    ("cgroup/getpeername6", P::CgroupSockAddr, Some(A::CgroupInet6Getpeername), 0),
    ("cgroup/getpeername_unix", P::CgroupSockAddr, Some(A::CgroupUnixGetpeername), 0),
    ("cgroup/getsockname4", P::CgroupSockAddr, Some(A::CgroupInet4Getsockname), 0),
    ("cgroup/getsockname6", P::CgroupSockAddr, Some(A::CgroupInet6Getsockname), 0),
    ("cgroup/getsockname_unix", P::CgroupSockAddr, Some(A::CgroupUnixGetsockname), 0),
    ("cgroup/sysctl", P::CgroupSysctl, Some(A::CgroupSysctl), 0),
    ("cgroup/getsockopt", P::CgroupSockopt, Some(A::CgroupGetsockopt), 0),
    ("cgroup/setsockopt", P::CgroupSockopt, Some(A::CgroupSetsockopt), 0),
    ("cgroup/dev", P::CgroupDevice, Some(A::CgroupDevice), 0),
    ("struct_ops+", P::StructOps, None, 0),
    ("struct_ops.s+", P::StructOps, None, S),
    ("sk_lookup", P::SkLookup, Some(A::SkLookup), 0),
    ("netfilter", P::Netfilter, Some(A::Netfilter), 0),
];

fn matches(pattern: &str, name: &str) -> bool {
    if pattern.ends_with('/') {
        return name.starts_with(pattern);
    }
    if let Some(base) = pattern.strip_suffix('+') {
        return match name.strip_prefix(base) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        };
    }
    name == pattern
}

/// The program type, attach type and flags libbpf derives from a section name; `None` for
/// names libbpf does not know (cilium's `from-netdev`, iproute2's `2/7`): the user gives the type.
pub fn section_def(name: &str) -> Option<SectionDef> {
    TABLE
        .iter()
        .find(|(pattern, ..)| matches(pattern, name))
        .map(|&(_, prog_type, attach_type, flags)| SectionDef {
            prog_type,
            attach_type,
            flags,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libbpf_matching_rules() {
        let def = |n| section_def(n).map(|d| (d.prog_type, d.attach_type));
        assert_eq!(def("xdp"), Some((P::Xdp, Some(A::Xdp))));
        assert_eq!(def("xdp/devmap"), Some((P::Xdp, Some(A::XdpDevmap))));
        assert_eq!(def("xdp_foo"), None, "no sloppy prefixes since libbpf 1.0");
        assert_eq!(def("kprobe"), Some((P::Kprobe, None)));
        assert_eq!(def("kprobe/do_sys_open"), Some((P::Kprobe, None)));
        assert_eq!(
            def("kprobe.multi/x*"),
            Some((P::Kprobe, Some(A::TraceKprobeMulti)))
        );
        assert_eq!(def("kprobex"), None);
        assert_eq!(def("tc"), Some((P::SchedCls, None)));
        assert_eq!(def("tc/ingress"), Some((P::SchedCls, Some(A::TcxIngress))));
        assert_eq!(def("tcx/egress"), Some((P::SchedCls, Some(A::TcxEgress))));
        assert_eq!(def("sk_skb/other"), None);
        assert_eq!(
            section_def("xdp.frags").map(|d| d.flags),
            Some(BPF_F_XDP_HAS_FRAGS)
        );
        assert_eq!(
            section_def("lsm.s/file_open").map(|d| d.flags),
            Some(BPF_F_SLEEPABLE)
        );
    }

    #[test]
    fn attach_type_names_and_ids() {
        assert_eq!(A::TcxIngress.id(), 46);
        assert_eq!(A::NetkitPeer.id(), 55);
        assert_eq!(A::from_name("xdp_cpumap"), Some(A::XdpCpumap));
        assert_eq!(A::from_id(37), Some(A::Xdp));
        // The ids are dense: the table has no gaps or duplicates.
        for (i, t) in A::ALL.iter().enumerate() {
            assert_eq!(t.id() as usize, i);
        }
    }
}
