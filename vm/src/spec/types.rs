//! Map and program types with the kernel's numbers (UAPI `enum bpf_map_type`, `enum bpf_prog_type`).

macro_rules! kernel_enum {
    ($(#[$m:meta])* $name:ident, $prefix:literal, [$($v:ident = $n:literal, $k:literal, $lower:literal;)*]) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        #[repr(u32)]
        pub enum $name { $(#[doc(alias = $k)] $v = $n),* }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v),*];
            /// The kernel's number for this type.
            pub const fn id(self) -> u32 { self as u32 }
            pub fn from_id(id: u32) -> Option<$name> { Self::ALL.iter().copied().find(|t| t.id() == id) }
            /// The UAPI name without its prefix, in lower case (`hash`, `sched_cls`): the names the CLI takes.
            pub fn name(self) -> &'static str { match self { $($name::$v => $lower),* } }
            pub fn from_name(name: &str) -> Option<$name> {
                let lower = name.to_ascii_lowercase();
                let lower = lower.strip_prefix(&$prefix.to_ascii_lowercase()).unwrap_or(&lower).to_string();
                Self::ALL.iter().copied().find(|t| t.name().eq_ignore_ascii_case(&lower))
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.name()) }
        }
    };
}

kernel_enum!(
    /// `enum bpf_map_type`.
    MapType, "BPF_MAP_TYPE_", [
    Unspec = 0, "BPF_MAP_TYPE_UNSPEC", "unspec";
    Hash = 1, "BPF_MAP_TYPE_HASH", "hash";
    Array = 2, "BPF_MAP_TYPE_ARRAY", "array";
    ProgArray = 3, "BPF_MAP_TYPE_PROG_ARRAY", "prog_array";
    PerfEventArray = 4, "BPF_MAP_TYPE_PERF_EVENT_ARRAY", "perf_event_array";
    PercpuHash = 5, "BPF_MAP_TYPE_PERCPU_HASH", "percpu_hash";
    PercpuArray = 6, "BPF_MAP_TYPE_PERCPU_ARRAY", "percpu_array";
    StackTrace = 7, "BPF_MAP_TYPE_STACK_TRACE", "stack_trace";
    CgroupArray = 8, "BPF_MAP_TYPE_CGROUP_ARRAY", "cgroup_array";
    LruHash = 9, "BPF_MAP_TYPE_LRU_HASH", "lru_hash";
    LruPercpuHash = 10, "BPF_MAP_TYPE_LRU_PERCPU_HASH", "lru_percpu_hash";
    LpmTrie = 11, "BPF_MAP_TYPE_LPM_TRIE", "lpm_trie";
    ArrayOfMaps = 12, "BPF_MAP_TYPE_ARRAY_OF_MAPS", "array_of_maps";
    HashOfMaps = 13, "BPF_MAP_TYPE_HASH_OF_MAPS", "hash_of_maps";
    Devmap = 14, "BPF_MAP_TYPE_DEVMAP", "devmap";
    Sockmap = 15, "BPF_MAP_TYPE_SOCKMAP", "sockmap";
    Cpumap = 16, "BPF_MAP_TYPE_CPUMAP", "cpumap";
    Xskmap = 17, "BPF_MAP_TYPE_XSKMAP", "xskmap";
    Sockhash = 18, "BPF_MAP_TYPE_SOCKHASH", "sockhash";
    CgroupStorage = 19, "BPF_MAP_TYPE_CGROUP_STORAGE", "cgroup_storage";
    ReuseportSockarray = 20, "BPF_MAP_TYPE_REUSEPORT_SOCKARRAY", "reuseport_sockarray";
    PercpuCgroupStorage = 21, "BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE", "percpu_cgroup_storage";
    Queue = 22, "BPF_MAP_TYPE_QUEUE", "queue";
    Stack = 23, "BPF_MAP_TYPE_STACK", "stack";
    SkStorage = 24, "BPF_MAP_TYPE_SK_STORAGE", "sk_storage";
    DevmapHash = 25, "BPF_MAP_TYPE_DEVMAP_HASH", "devmap_hash";
    StructOps = 26, "BPF_MAP_TYPE_STRUCT_OPS", "struct_ops";
    Ringbuf = 27, "BPF_MAP_TYPE_RINGBUF", "ringbuf";
    InodeStorage = 28, "BPF_MAP_TYPE_INODE_STORAGE", "inode_storage";
    TaskStorage = 29, "BPF_MAP_TYPE_TASK_STORAGE", "task_storage";
    BloomFilter = 30, "BPF_MAP_TYPE_BLOOM_FILTER", "bloom_filter";
    UserRingbuf = 31, "BPF_MAP_TYPE_USER_RINGBUF", "user_ringbuf";
    CgrpStorage = 32, "BPF_MAP_TYPE_CGRP_STORAGE", "cgrp_storage";
    Arena = 33, "BPF_MAP_TYPE_ARENA", "arena";
]);

kernel_enum!(
    /// `enum bpf_prog_type`.
    ProgType, "BPF_PROG_TYPE_", [
    Unspec = 0, "BPF_PROG_TYPE_UNSPEC", "unspec";
    SocketFilter = 1, "BPF_PROG_TYPE_SOCKET_FILTER", "socket_filter";
    Kprobe = 2, "BPF_PROG_TYPE_KPROBE", "kprobe";
    SchedCls = 3, "BPF_PROG_TYPE_SCHED_CLS", "sched_cls";
    SchedAct = 4, "BPF_PROG_TYPE_SCHED_ACT", "sched_act";
    Tracepoint = 5, "BPF_PROG_TYPE_TRACEPOINT", "tracepoint";
    Xdp = 6, "BPF_PROG_TYPE_XDP", "xdp";
    PerfEvent = 7, "BPF_PROG_TYPE_PERF_EVENT", "perf_event";
    CgroupSkb = 8, "BPF_PROG_TYPE_CGROUP_SKB", "cgroup_skb";
    CgroupSock = 9, "BPF_PROG_TYPE_CGROUP_SOCK", "cgroup_sock";
    LwtIn = 10, "BPF_PROG_TYPE_LWT_IN", "lwt_in";
    LwtOut = 11, "BPF_PROG_TYPE_LWT_OUT", "lwt_out";
    LwtXmit = 12, "BPF_PROG_TYPE_LWT_XMIT", "lwt_xmit";
    SockOps = 13, "BPF_PROG_TYPE_SOCK_OPS", "sock_ops";
    SkSkb = 14, "BPF_PROG_TYPE_SK_SKB", "sk_skb";
    CgroupDevice = 15, "BPF_PROG_TYPE_CGROUP_DEVICE", "cgroup_device";
    SkMsg = 16, "BPF_PROG_TYPE_SK_MSG", "sk_msg";
    RawTracepoint = 17, "BPF_PROG_TYPE_RAW_TRACEPOINT", "raw_tracepoint";
    CgroupSockAddr = 18, "BPF_PROG_TYPE_CGROUP_SOCK_ADDR", "cgroup_sock_addr";
    LwtSeg6local = 19, "BPF_PROG_TYPE_LWT_SEG6LOCAL", "lwt_seg6local";
    LircMode2 = 20, "BPF_PROG_TYPE_LIRC_MODE2", "lirc_mode2";
    SkReuseport = 21, "BPF_PROG_TYPE_SK_REUSEPORT", "sk_reuseport";
    FlowDissector = 22, "BPF_PROG_TYPE_FLOW_DISSECTOR", "flow_dissector";
    CgroupSysctl = 23, "BPF_PROG_TYPE_CGROUP_SYSCTL", "cgroup_sysctl";
    RawTracepointWritable = 24, "BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE", "raw_tracepoint_writable";
    CgroupSockopt = 25, "BPF_PROG_TYPE_CGROUP_SOCKOPT", "cgroup_sockopt";
    Tracing = 26, "BPF_PROG_TYPE_TRACING", "tracing";
    StructOps = 27, "BPF_PROG_TYPE_STRUCT_OPS", "struct_ops";
    Ext = 28, "BPF_PROG_TYPE_EXT", "ext";
    Lsm = 29, "BPF_PROG_TYPE_LSM", "lsm";
    SkLookup = 30, "BPF_PROG_TYPE_SK_LOOKUP", "sk_lookup";
    Syscall = 31, "BPF_PROG_TYPE_SYSCALL", "syscall";
    Netfilter = 32, "BPF_PROG_TYPE_NETFILTER", "netfilter";
]);

/// A map definition as an object file declares it (BTF `.maps` or the legacy `maps` section).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MapDef {
    pub name: String,
    pub map_type: MapType,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
    /// For map-in-map types: the definition every inner map must match.
    pub inner: Option<Box<MapDef>>,
    /// BTF type ids of key and value when the object describes them (0 otherwise).
    pub btf_key_type_id: u32,
    pub btf_value_type_id: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_numbers_and_names() {
        assert_eq!(MapType::LpmTrie.id(), 11);
        assert_eq!(MapType::Ringbuf.id(), 27);
        assert_eq!(MapType::DevmapHash.id(), 25);
        assert_eq!(
            MapType::from_name("lru_percpu_hash"),
            Some(MapType::LruPercpuHash)
        );
        assert_eq!(ProgType::Xdp.id(), 6);
        assert_eq!(ProgType::SchedCls.name(), "sched_cls");
        assert_eq!(
            ProgType::from_name("socket_filter"),
            Some(ProgType::SocketFilter)
        );
        assert_eq!(
            ProgType::from_name("BPF_PROG_TYPE_XDP"),
            Some(ProgType::Xdp)
        );
        assert_eq!(ProgType::from_id(31), Some(ProgType::Syscall));
        assert_eq!(ProgType::from_name("nonsense"), None);
    }
}
