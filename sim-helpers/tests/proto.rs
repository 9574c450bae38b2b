//! The helper prototype table and per-program-type availability: spot checks of kernel facts and
//! the invariants the kernel's `check_func_proto` enforces on every prototype. The live-kernel
//! comparison is `kernel/tests/helper_availability.rs`.

use bpfsim_helpers::helpers::proto::{
    allowed, allowed_with, proto, proto_for, ArgAux, ArgBase, ArgType, Caps, KernelConfig,
    Lockdown, RetBase, RetType, TypeFlags, COVERED_PROG_TYPES, PROTOS,
};
use bpfsim_vm::spec::{helper_name, MapType, ProgType};

fn id_of(name: &str) -> u32 {
    PROTOS
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("{name} is not in the table"))
        .id
}

#[test]
fn ids_are_sorted_unique_and_named_as_the_uapi_names_them() {
    assert!(PROTOS.len() >= 90, "table has {} helpers", PROTOS.len());
    for w in PROTOS.windows(2) {
        assert!(w[0].id < w[1].id, "{} then {}", w[0].name, w[1].name);
    }
    for p in PROTOS {
        assert_eq!(
            helper_name(i64::from(p.id)),
            Some(p.name),
            "helper {}",
            p.id
        );
        assert_eq!(proto(p.id).map(|q| q.name), Some(p.name));
    }
    assert!(proto(0).is_none());
    assert!(proto(212).is_none());
}

#[test]
fn the_brief_s_helpers_are_all_there_with_their_kernel_ids() {
    for (id, name) in [
        (1, "map_lookup_elem"),
        (2, "map_update_elem"),
        (3, "map_delete_elem"),
        (4, "probe_read"),
        (5, "ktime_get_ns"),
        (6, "trace_printk"),
        (7, "get_prandom_u32"),
        (8, "get_smp_processor_id"),
        (9, "skb_store_bytes"),
        (10, "l3_csum_replace"),
        (11, "l4_csum_replace"),
        (12, "tail_call"),
        (14, "get_current_pid_tgid"),
        (15, "get_current_uid_gid"),
        (16, "get_current_comm"),
        (23, "redirect"),
        (25, "perf_event_output"),
        (26, "skb_load_bytes"),
        (28, "csum_diff"),
        (38, "skb_change_tail"),
        (42, "get_numa_node_id"),
        (44, "xdp_adjust_head"),
        (50, "skb_adjust_room"),
        (51, "redirect_map"),
        (54, "xdp_adjust_meta"),
        (65, "xdp_adjust_tail"),
        (68, "skb_load_bytes_relative"),
        (69, "fib_lookup"),
        (87, "map_push_elem"),
        (88, "map_pop_elem"),
        (89, "map_peek_elem"),
        (93, "spin_lock"),
        (94, "spin_unlock"),
        (105, "strtol"),
        (106, "strtoul"),
        (112, "probe_read_user"),
        (113, "probe_read_kernel"),
        (114, "probe_read_user_str"),
        (115, "probe_read_kernel_str"),
        (118, "jiffies64"),
        (125, "ktime_get_boot_ns"),
        (130, "ringbuf_output"),
        (131, "ringbuf_reserve"),
        (132, "ringbuf_submit"),
        (133, "ringbuf_discard"),
        (134, "ringbuf_query"),
        (160, "ktime_get_coarse_ns"),
        (164, "for_each_map_elem"),
        (165, "snprintf"),
        (181, "loop"),
        (195, "map_lookup_percpu_elem"),
    ] {
        assert_eq!(proto(id).map(|p| p.name), Some(name), "helper {id}");
    }
}

#[test]
fn map_helpers() {
    let lookup = proto(1).unwrap();
    assert_eq!(lookup.ret, RetType::PTR_TO_MAP_VALUE_OR_NULL);
    assert!(lookup.ret.may_be_null());
    assert_eq!(lookup.arg_count(), 2);
    assert_eq!(lookup.args[0], ArgType::CONST_MAP_PTR);
    assert_eq!(lookup.args[1], ArgType::PTR_TO_MAP_KEY);
    assert!(lookup.args[2..].iter().all(|a| a.is_unused()));
    assert!(lookup.pkt_access && !lookup.gpl_only);
    assert!(!lookup.is_acquire(Some(MapType::Hash)));
    assert!(lookup.is_acquire(Some(MapType::Sockmap)));
    assert!(lookup.is_acquire(Some(MapType::Sockhash)));

    let update = proto(2).unwrap();
    assert_eq!(update.ret, RetType::INTEGER);
    assert_eq!(
        update.args[..4],
        [
            ArgType::CONST_MAP_PTR,
            ArgType::PTR_TO_MAP_KEY,
            ArgType::PTR_TO_MAP_VALUE,
            ArgType::ANYTHING
        ]
    );

    // pop/peek write the value slot, which need not be initialised; push only reads it.
    let pop = proto(88).unwrap();
    assert_eq!(pop.args[1].base, ArgBase::PtrToMapValue);
    assert!(pop.args[1].is_uninit() && pop.args[1].is_write());
    assert!(!pop.pkt_access);
    assert_eq!(proto(87).unwrap().args[1], ArgType::PTR_TO_MAP_VALUE);
}

#[test]
fn ringbuf_reference_tracking() {
    let reserve = proto(131).unwrap();
    assert_eq!(reserve.ret, RetType::PTR_TO_RINGBUF_MEM_OR_NULL);
    assert_eq!(reserve.ret.base, RetBase::PtrToMem);
    assert!(reserve.ret.flags.contains(TypeFlags::MEM_RINGBUF));
    assert_eq!(reserve.ret_size_arg(), Some(1));
    assert!(reserve.is_acquire(None));
    for submit in [132, 133] {
        let p = proto(submit).unwrap();
        assert_eq!(p.ret, RetType::VOID);
        assert_eq!(p.release_arg(), Some(0));
        assert_eq!(p.args[0].base, ArgBase::PtrToRingbufMem);
    }
    let output = proto(130).unwrap();
    assert!(output.args[1].is_rdonly() && output.args[2].is_mem_size());
    assert_eq!(output.release_arg(), None);
}

#[test]
fn socket_references() {
    for name in ["sk_lookup_tcp", "sk_lookup_udp", "skc_lookup_tcp"] {
        let p = proto(id_of(name)).unwrap();
        assert!(p.is_acquire(None), "{name}");
        assert!(p.ret.may_be_null(), "{name}");
    }
    let release = proto(id_of("sk_release")).unwrap();
    assert_eq!(release.release_arg(), Some(0));
    assert_eq!(release.args[0].base, ArgBase::PtrToBtfIdSockCommon);
}

#[test]
fn gpl_only_sleeping_and_packet_access() {
    for name in [
        "trace_printk",
        "perf_event_output",
        "probe_read",
        "probe_read_kernel",
        "probe_read_user_str",
        "fib_lookup",
        "check_mtu",
        "snprintf",
        "get_current_task",
    ] {
        assert!(proto(id_of(name)).unwrap().gpl_only, "{name}");
    }
    for name in [
        "map_lookup_elem",
        "ktime_get_ns",
        "xdp_adjust_head",
        "ringbuf_output",
    ] {
        assert!(!proto(id_of(name)).unwrap().gpl_only, "{name}");
    }
    let sleepers: Vec<_> = PROTOS
        .iter()
        .filter(|p| p.might_sleep)
        .map(|p| p.name)
        .collect();
    assert_eq!(sleepers, ["copy_from_user"]);
    assert!(proto(28).unwrap().pkt_access, "csum_diff");
}

#[test]
fn fixed_size_and_access_flags() {
    for name in ["strtol", "strtoul"] {
        let p = proto(id_of(name)).unwrap();
        let res = p.args[3];
        assert!(res
            .flags
            .contains(TypeFlags::MEM_FIXED_SIZE | TypeFlags::MEM_UNINIT | TypeFlags::MEM_WRITE));
        assert!(res.flags.contains(TypeFlags::MEM_ALIGNED));
        assert_eq!(p.fixed_size(3), Some(8));
        assert!(!res.is_sized_mem());
    }
    let mtu = proto(id_of("check_mtu")).unwrap();
    assert_eq!(mtu.arg_aux[2], ArgAux::Size(4));
    assert!(mtu.args[2].is_write() && !mtu.args[2].is_uninit());
    assert_eq!(proto(93).unwrap().arg_aux[0], ArgAux::Poison);

    // skb_store_bytes reads its buffer, skb_load_bytes fills an uninitialised one.
    assert_eq!(proto(9).unwrap().args[2], ArgType::PTR_TO_RDONLY_MEM);
    assert_eq!(proto(26).unwrap().args[2], ArgType::PTR_TO_UNINIT_MEM);
    let csum_diff = proto(28).unwrap();
    assert!(csum_diff.args[0].may_be_null() && csum_diff.args[0].is_rdonly());
    assert_eq!(csum_diff.args[1], ArgType::CONST_SIZE_OR_ZERO);
}

#[test]
fn raw_values_are_the_reference_kernel_s() {
    // `enum bpf_arg_type` / `enum bpf_return_type` as the 6.18 kernel's BTF numbers them.
    assert_eq!(ArgType::PTR_TO_UNINIT_MEM.raw(), 67_141_636);
    assert_eq!(ArgType::PTR_TO_FIXED_SIZE_MEM.raw(), 262_148);
    assert_eq!(ArgType::PTR_TO_MEM_OR_NULL.raw(), 260);
    assert_eq!(ArgType::PTR_TO_CTX_OR_NULL.raw(), 264);
    assert_eq!(ArgType::PTR_TO_SOCKET_OR_NULL.raw(), 268);
    assert_eq!(ArgType::PTR_TO_STACK_OR_NULL.raw(), 275);
    assert_eq!(ArgType::ANYTHING.raw(), 9);
    assert_eq!(ArgType::PTR_TO_FUNC.raw(), 18);
    assert_eq!(RetType::PTR_TO_MAP_VALUE_OR_NULL.raw(), 258);
    assert_eq!(RetType::PTR_TO_SOCK_COMMON_OR_NULL.raw(), 261);
    assert_eq!(RetType::PTR_TO_DYNPTR_MEM_OR_NULL.raw(), 262);
    assert_eq!(RetType::PTR_TO_RINGBUF_MEM_OR_NULL.raw(), 1286);
    assert_eq!(RetType::PTR_TO_BTF_ID_TRUSTED.raw(), 1_048_584);
    assert_eq!(TypeFlags::from_bits(1 << 26), Some(TypeFlags::MEM_WRITE));
    assert_eq!(TypeFlags::from_bits(1), None);
    assert_eq!(
        format!("{:?}", ArgType::PTR_TO_UNINIT_MEM.flags),
        "MEM_UNINIT | MEM_WRITE"
    );
}

/// The kernel's `check_func_proto` rejects prototypes that break these rules; ours must not.
#[test]
fn every_prototype_is_well_formed() {
    for p in PROTOS {
        // check_arg_pair_ok: a memory argument sized by the next one, and a size argument
        // right after a memory argument.
        for i in 0..5 {
            let a = p.args[i];
            if a.is_mem_size() {
                assert!(
                    i > 0 && p.args[i - 1].is_sized_mem(),
                    "{} arg {}",
                    p.name,
                    i + 1
                );
            }
            if a.is_sized_mem() {
                assert!(
                    i < 4 && p.args[i + 1].is_mem_size(),
                    "{} arg {}",
                    p.name,
                    i + 1
                );
            }
            if a.flags.contains(TypeFlags::MEM_FIXED_SIZE) {
                assert!(p.fixed_size(i).is_some(), "{} arg {}", p.name, i + 1);
            }
        }
        // check_raw_mode_ok: at most one uninitialised memory argument.
        let raw = p
            .args
            .iter()
            .filter(|a| a.base == ArgBase::PtrToMem && a.is_uninit())
            .count();
        assert!(raw <= 1, "{}", p.name);
        // At most one released argument, and no argument after an unused one.
        assert!(
            p.args.iter().filter(|a| a.is_release()).count() <= 1,
            "{}",
            p.name
        );
        assert!(
            p.args[p.arg_count()..].iter().all(|a| a.is_unused()),
            "{}",
            p.name
        );
        // A returned memory pointer is sized by an argument.
        if p.ret.base == RetBase::PtrToMem {
            assert!(p.ret_size_arg().is_some(), "{}", p.name);
        }
    }
}

#[test]
fn networking_availability() {
    let xdp_adjust_head = id_of("xdp_adjust_head");
    assert!(allowed(ProgType::Xdp, xdp_adjust_head));
    assert!(!allowed(ProgType::SocketFilter, xdp_adjust_head));
    assert!(!allowed(ProgType::SchedCls, xdp_adjust_head));

    let skb_store_bytes = id_of("skb_store_bytes");
    assert!(allowed(ProgType::SchedCls, skb_store_bytes));
    assert!(allowed(ProgType::SchedAct, skb_store_bytes));
    assert!(!allowed(ProgType::SocketFilter, skb_store_bytes));
    assert!(!allowed(ProgType::CgroupSkb, skb_store_bytes));
    assert!(!allowed(ProgType::Xdp, skb_store_bytes));

    // Socket filters and cgroup skb programs may read the packet but not rewrite it.
    for t in [
        ProgType::SocketFilter,
        ProgType::CgroupSkb,
        ProgType::SchedCls,
    ] {
        assert!(allowed(t, id_of("skb_load_bytes")), "{t}");
        assert!(allowed(t, id_of("skb_load_bytes_relative")), "{t}");
    }
    assert!(!allowed(ProgType::Xdp, id_of("skb_load_bytes")));
    assert!(allowed(ProgType::Xdp, id_of("xdp_load_bytes")));

    for name in ["redirect", "csum_diff", "fib_lookup", "check_mtu"] {
        assert!(allowed(ProgType::Xdp, id_of(name)), "{name}");
        assert!(allowed(ProgType::SchedCls, id_of(name)), "{name}");
        assert!(!allowed(ProgType::SocketFilter, id_of(name)), "{name}");
    }
    assert!(allowed(ProgType::Xdp, id_of("redirect_map")));
    assert!(!allowed(ProgType::SchedCls, id_of("redirect_map")));
    assert!(allowed(ProgType::CgroupSkb, id_of("sk_lookup_tcp")));
    assert!(!allowed(ProgType::SocketFilter, id_of("sk_lookup_tcp")));
}

#[test]
fn surprising_facts() {
    // `bpf_ktime_get_coarse_ns` is in `bpf_sk_base_func_proto`, not the tracing sets.
    let coarse = id_of("ktime_get_coarse_ns");
    assert!(allowed(ProgType::Xdp, coarse));
    assert!(allowed(ProgType::SocketFilter, coarse));
    for t in [
        ProgType::Kprobe,
        ProgType::Tracepoint,
        ProgType::RawTracepoint,
        ProgType::PerfEvent,
    ] {
        assert!(!allowed(t, coarse), "{t}");
    }
    // Since 6.16 the "current task" helpers are in the base set: XDP may call them.
    assert!(allowed(ProgType::Xdp, id_of("get_current_comm")));
    assert!(allowed(
        ProgType::SocketFilter,
        id_of("get_current_uid_gid")
    ));
    // trace_printk and probe_read_kernel are in the base set's CAP_PERFMON tier.
    assert!(allowed(ProgType::Xdp, id_of("trace_printk")));
    assert!(allowed(ProgType::SchedCls, id_of("probe_read_kernel")));
    // The legacy probe_read stays with tracing programs.
    assert!(allowed(ProgType::Kprobe, id_of("probe_read")));
    assert!(!allowed(ProgType::Xdp, id_of("probe_read")));
    // The reference kernel forces lockdown=integrity: no probe_write_user even for root.
    let write_user = id_of("probe_write_user");
    assert!(!allowed(ProgType::Kprobe, write_user));
    let unlocked = KernelConfig::UNLOCKED;
    assert!(allowed_with(
        ProgType::Kprobe,
        write_user,
        Caps::ROOT,
        unlocked
    ));
    assert!(!allowed_with(
        ProgType::Kprobe,
        write_user,
        Caps::BPF_PERFMON,
        unlocked
    ));
    assert!(!allowed_with(
        ProgType::Xdp,
        write_user,
        Caps::ROOT,
        unlocked
    ));
    // get_attach_cookie: every tracing type (raw tracepoints since 6.10), no networking one.
    for t in [
        ProgType::Kprobe,
        ProgType::RawTracepoint,
        ProgType::PerfEvent,
    ] {
        assert!(allowed(t, 174), "{t}");
    }
    assert!(!allowed(ProgType::Xdp, 174));
}

#[test]
fn privilege_tiers_and_configuration() {
    let none = Caps::NONE;
    let cfg = KernelConfig::REFERENCE;
    let sf = ProgType::SocketFilter;
    assert!(
        allowed_with(sf, 1, none, cfg),
        "map_lookup_elem needs nothing"
    );
    assert!(allowed_with(sf, id_of("get_current_uid_gid"), none, cfg));
    assert!(
        !allowed_with(sf, id_of("loop"), none, cfg),
        "bpf_loop needs CAP_BPF"
    );
    assert!(!allowed_with(sf, id_of("spin_lock"), none, cfg));
    assert!(!allowed_with(sf, id_of("trace_printk"), none, cfg));
    let bpf_only = Caps {
        bpf: true,
        perfmon: false,
        sys_admin: false,
    };
    assert!(allowed_with(sf, id_of("loop"), bpf_only, cfg));
    assert!(!allowed_with(sf, id_of("trace_printk"), bpf_only, cfg));
    assert!(allowed_with(sf, id_of("skb_load_bytes"), none, cfg));

    let confidential = KernelConfig {
        lockdown: Lockdown::Confidentiality,
        ..cfg
    };
    let read_kernel = id_of("probe_read_kernel");
    assert!(allowed_with(ProgType::Kprobe, read_kernel, Caps::ROOT, cfg));
    assert!(!allowed_with(
        ProgType::Kprobe,
        read_kernel,
        Caps::ROOT,
        confidential
    ));
    assert!(!allowed_with(ProgType::Kprobe, 4, Caps::ROOT, confidential));
    assert!(allowed_with(
        ProgType::Kprobe,
        id_of("probe_read_user"),
        Caps::ROOT,
        confidential
    ));

    let arm64 = KernelConfig {
        non_overlapping_address_space: false,
        ..cfg
    };
    assert!(!allowed_with(ProgType::Kprobe, 4, Caps::ROOT, arm64));

    // override_return (58) needs CONFIG_BPF_KPROBE_OVERRIDE, unset on the reference kernel.
    assert!(!allowed(ProgType::Kprobe, 58));
    assert!(allowed_with(
        ProgType::Kprobe,
        58,
        Caps::ROOT,
        KernelConfig::UNLOCKED
    ));
    assert!(!allowed_with(
        ProgType::Tracepoint,
        58,
        Caps::ROOT,
        KernelConfig::UNLOCKED
    ));
}

#[test]
fn per_program_type_prototypes() {
    // TC's get_cgroup_classid takes the skb; elsewhere it is the current task's, no argument.
    let tc = proto_for(ProgType::SchedCls, 17).unwrap();
    assert_eq!(tc.arg_count(), 1);
    let xdp = proto_for(ProgType::Xdp, 17).unwrap();
    assert_eq!(xdp.arg_count(), 0);
    // Perf event programs' get_stackid is not GPL-only.
    assert!(proto_for(ProgType::Kprobe, 27).unwrap().gpl_only);
    assert!(!proto_for(ProgType::PerfEvent, 27).unwrap().gpl_only);
    // Base-only program types get the raw get_smp_processor_id, without fastcall.
    assert!(proto_for(ProgType::Xdp, 8).unwrap().allow_fastcall);
    assert!(!proto_for(ProgType::SocketFilter, 8).unwrap().allow_fastcall);
    // Not available: no prototype.
    assert!(proto_for(ProgType::SocketFilter, id_of("xdp_adjust_head")).is_none());
    assert!(proto_for(ProgType::Xdp, 58).is_none());
}

#[test]
fn uncovered_program_types_and_ids() {
    assert!(!allowed(ProgType::SkMsg, 1));
    assert!(!allowed(ProgType::CgroupSock, 1));
    assert!(!allowed(ProgType::Unspec, 1));
    // Tracing and LSM programs have their own sets (checked against the kernel by the kernel
    // crate's helper_availability test), with map lookups.
    assert!(allowed(ProgType::Tracing, 1) && allowed(ProgType::Lsm, 1));
    assert!(!allowed(ProgType::Xdp, 0));
    assert!(!allowed(ProgType::Xdp, 212));
    assert!(!allowed(ProgType::Xdp, u32::MAX));
    // Every covered type may at least look up maps and tail call.
    for &t in COVERED_PROG_TYPES {
        assert!(allowed(t, 1) && allowed(t, 12), "{t}");
    }
    // Every table helper but probe_write_user is callable from some covered type, or from
    // tracing programs (the trampoline helpers, get_func_arg and friends).
    for p in PROTOS {
        let somewhere = COVERED_PROG_TYPES
            .iter()
            .chain(&[ProgType::Tracing])
            .any(|&t| allowed(t, p.id));
        assert_eq!(somewhere, p.name != "probe_write_user", "{}", p.name);
    }
}

/// Prototypes added for issue 5 (helpers XDP/TC and tracing programs call), spot-checked
/// against the kernel's `bpf_func_proto` definitions in 6.18.
#[test]
fn syncookie_socket_and_tracing_prototypes() {
    for name in ["tcp_check_syncookie", "tcp_gen_syncookie"] {
        let p = proto(id_of(name)).unwrap();
        assert!(p.gpl_only && p.pkt_access, "{name}");
        assert_eq!(p.args[0], ArgType::PTR_TO_BTF_ID_SOCK_COMMON, "{name}");
        assert_eq!(p.args[1], ArgType::PTR_TO_RDONLY_MEM, "{name}");
        assert_eq!(p.args[4], ArgType::CONST_SIZE, "{name}");
    }
    // argN_size: sizeof(struct iphdr) 20, ipv6hdr 40, tcphdr 20.
    for (name, sizes) in [
        ("tcp_raw_gen_syncookie_ipv4", [Some(20), None]),
        ("tcp_raw_gen_syncookie_ipv6", [Some(40), None]),
        ("tcp_raw_check_syncookie_ipv4", [Some(20), Some(20)]),
        ("tcp_raw_check_syncookie_ipv6", [Some(40), Some(20)]),
    ] {
        let p = proto(id_of(name)).unwrap();
        assert_eq!([p.fixed_size(0), p.fixed_size(1)], sizes, "{name}");
        assert!(p.gpl_only && p.pkt_access, "{name}");
    }
    assert_eq!(
        proto(id_of("tcp_sock")).unwrap().ret,
        RetType::PTR_TO_TCP_SOCK_OR_NULL
    );
    assert_eq!(
        proto(id_of("get_listener_sock")).unwrap().ret,
        RetType::PTR_TO_SOCKET_OR_NULL
    );
    assert_eq!(
        proto(id_of("tcp_sock")).unwrap().args[0],
        ArgType::PTR_TO_SOCK_COMMON
    );
    // bpf_get_stack: raw tracepoint and tracing programs get the variant whose buffer is
    // MEM_RDONLY in 6.18; kprobes the uninit one.
    let stack = id_of("get_stack");
    assert_eq!(
        proto_for(ProgType::Kprobe, stack).unwrap().args[1],
        ArgType::PTR_TO_UNINIT_MEM
    );
    assert_eq!(
        proto_for(ProgType::RawTracepoint, stack).unwrap().args[1],
        ArgType::PTR_TO_RDONLY_MEM
    );
    assert!(proto_for(ProgType::Xdp, stack).is_none());
    for name in [
        "get_func_ip",
        "perf_event_read",
        "perf_event_read_value",
        "get_stack",
    ] {
        assert!(proto(id_of(name)).unwrap().gpl_only, "{name}");
    }
    for name in [
        "send_signal",
        "send_signal_thread",
        "skb_ecn_set_ce",
        "sk_assign",
    ] {
        assert!(!proto(id_of(name)).unwrap().gpl_only, "{name}");
    }
    // bpf_get_local_storage cannot fail: its value pointer is not _OR_NULL.
    let storage = proto(id_of("get_local_storage")).unwrap();
    assert_eq!(storage.ret.base, RetBase::PtrToMapValue);
    assert!(!storage.ret.may_be_null());
    assert!(proto(id_of("read_branch_records")).unwrap().args[1].may_be_null());
    assert!(proto(id_of("get_branch_snapshot")).unwrap().args[0].is_uninit());
    // bpf_sk_storage_get: networking programs' prototype (the initial value may be NULL);
    // tracing programs get another one, with a BTF socket pointer, which bpfsim does not model.
    let get = id_of("sk_storage_get");
    assert!(proto_for(ProgType::SchedCls, get).unwrap().args[2].may_be_null());
    assert!(allowed(ProgType::Tracing, get));
    assert!(proto_for(ProgType::Tracing, get).is_none());
    // A helper returning a BTF pointer stays unprototyped: the verifier cannot model it yet.
    assert!(proto(158).is_none(), "get_current_task_btf");
}
