//! The ELF loader on the clang-built objects of test-vectors/loader/ (sources and Makefile there):
//! section names, map definitions, global data, relocations, linked subprograms and refusals.

use bpfsim_vm::asm::{assemble, disassemble};
use std::sync::Arc;

use bpfsim_vm::isa::{AluOp, CallTarget, Imm64, Insn, Source};
use bpfsim_vm::loader::{
    load_object, load_object_with, AttachType, Btf, BtfEnumValue, BtfKind, BtfMember, BtfParam,
    BtfType, KernelBtfSource, LoadOptions, MapInitTarget, ObjProgram, Object, ObjectError,
    TargetBtf, TracingArgKind, BPF_F_MMAPABLE, BPF_F_RDONLY_PROG, BPF_F_XDP_HAS_FRAGS, POISON_IMM,
};
use bpfsim_vm::spec::{MapType, ProgType};
use bpfsim_vm::{Interpreter, NoHelpers, Program, Vm};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../test-vectors/loader/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn load(name: &str) -> Object {
    load_object(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

const FIXTURES: &[&str] = &[
    "calls.bpf.o",
    "core.bpf.o",
    "core_vmlinux.bpf.o",
    "globals.bpf.o",
    "kconfig.bpf.o",
    "kfunc.bpf.o",
    "linked.o",
    "maps_btf.bpf.o",
    "maps_iproute2.bpf.o",
    "maps_legacy.bpf.o",
    "sections.bpf.o",
    "text_only.bpf.o",
    "unsupported.bpf.o",
];

/// `(slot, instruction)` of every lddw in a program.
fn lddws(p: &ObjProgram) -> Vec<(usize, Imm64)> {
    let prog = Program::new(p.insns.clone()).unwrap();
    prog.iter()
        .filter_map(|(pc, i)| match i {
            Insn::LdImm64 { imm, .. } => Some((pc, *imm)),
            _ => None,
        })
        .collect()
}

/// Slot each local call or function address of `p` lands on.
fn code_targets(p: &ObjProgram) -> Vec<(usize, usize)> {
    let prog = Program::new(p.insns.clone()).unwrap();
    prog.iter()
        .filter_map(|(pc, i)| match *i {
            Insn::Call(CallTarget::Local(off))
            | Insn::LdImm64 {
                imm: Imm64::Func(off),
                ..
            } => Some((pc, (pc as i64 + 1 + off as i64) as usize)),
            _ => None,
        })
        .collect()
}

fn slot_of(p: &ObjProgram, function: &str) -> usize {
    p.functions
        .iter()
        .find(|f| f.name == function)
        .unwrap_or_else(|| panic!("{function} not linked into {}", p.name))
        .slot
}

#[test]
fn every_loaded_program_is_a_valid_program_and_round_trips_through_the_disassembler() {
    for name in FIXTURES {
        let obj = load(name);
        assert!(!obj.programs.is_empty(), "{name}");
        for p in &obj.programs {
            let prog = Program::new(p.insns.clone()).unwrap();
            // Raw bytes (what `bpfsim disasm` reads) and assembler text both round-trip.
            assert_eq!(
                Program::from_bytes(&p.to_bytes()).unwrap(),
                prog,
                "{}",
                p.name
            );
            let text = disassemble(&p.insns);
            assert_eq!(assemble(&text).unwrap(), p.insns, "{}:\n{text}", p.name);
            assert_eq!(p.functions[0].name, p.name);
            assert_eq!(p.functions[0].slot, 0);
        }
    }
}

#[test]
fn section_names_give_libbpf_program_and_attach_types() {
    let obj = load("sections.bpf.o");
    let expect: &[(&str, &str, Option<ProgType>, Option<AttachType>)] = &[
        ("p_xdp", "xdp", Some(ProgType::Xdp), Some(AttachType::Xdp)),
        (
            "p_xdp_frags",
            "xdp.frags",
            Some(ProgType::Xdp),
            Some(AttachType::Xdp),
        ),
        (
            "p_xdp_devmap",
            "xdp/devmap",
            Some(ProgType::Xdp),
            Some(AttachType::XdpDevmap),
        ),
        (
            "p_xdp_cpumap",
            "xdp/cpumap",
            Some(ProgType::Xdp),
            Some(AttachType::XdpCpumap),
        ),
        ("p_tc", "tc", Some(ProgType::SchedCls), None),
        (
            "p_tc_ingress",
            "tc/ingress",
            Some(ProgType::SchedCls),
            Some(AttachType::TcxIngress),
        ),
        (
            "p_tc_egress",
            "tc/egress",
            Some(ProgType::SchedCls),
            Some(AttachType::TcxEgress),
        ),
        (
            "p_tcx_ingress",
            "tcx/ingress",
            Some(ProgType::SchedCls),
            Some(AttachType::TcxIngress),
        ),
        (
            "p_tcx_egress",
            "tcx/egress",
            Some(ProgType::SchedCls),
            Some(AttachType::TcxEgress),
        ),
        ("p_classifier", "classifier", Some(ProgType::SchedCls), None),
        ("p_action", "action", Some(ProgType::SchedAct), None),
        ("p_socket", "socket", Some(ProgType::SocketFilter), None),
        (
            "p_cgroup_skb_ingress",
            "cgroup_skb/ingress",
            Some(ProgType::CgroupSkb),
            Some(AttachType::CgroupInetIngress),
        ),
        (
            "p_cgroup_skb_egress",
            "cgroup_skb/egress",
            Some(ProgType::CgroupSkb),
            Some(AttachType::CgroupInetEgress),
        ),
        (
            "p_kprobe",
            "kprobe/do_unlinkat",
            Some(ProgType::Kprobe),
            None,
        ),
        (
            "p_kretprobe",
            "kretprobe/do_unlinkat",
            Some(ProgType::Kprobe),
            None,
        ),
        ("p_uprobe", "uprobe/bin:func", Some(ProgType::Kprobe), None),
        (
            "p_tracepoint",
            "tracepoint/syscalls/sys_enter_openat",
            Some(ProgType::Tracepoint),
            None,
        ),
        (
            "p_tp",
            "tp/sched/sched_switch",
            Some(ProgType::Tracepoint),
            None,
        ),
        (
            "p_raw_tracepoint",
            "raw_tracepoint/sys_enter",
            Some(ProgType::RawTracepoint),
            None,
        ),
        (
            "p_raw_tp",
            "raw_tp/sys_exit",
            Some(ProgType::RawTracepoint),
            None,
        ),
        (
            "p_perf_event",
            "perf_event",
            Some(ProgType::PerfEvent),
            None,
        ),
        ("p_lwt_in", "lwt_in", Some(ProgType::LwtIn), None),
        ("p_lwt_out", "lwt_out", Some(ProgType::LwtOut), None),
        ("p_lwt_xmit", "lwt_xmit", Some(ProgType::LwtXmit), None),
        (
            "p_lwt_seg6local",
            "lwt_seg6local",
            Some(ProgType::LwtSeg6local),
            None,
        ),
        (
            "p_flow_dissector",
            "flow_dissector",
            Some(ProgType::FlowDissector),
            Some(AttachType::FlowDissector),
        ),
        (
            "p_sk_lookup",
            "sk_lookup",
            Some(ProgType::SkLookup),
            Some(AttachType::SkLookup),
        ),
        (
            "p_sk_skb_parser",
            "sk_skb/stream_parser",
            Some(ProgType::SkSkb),
            Some(AttachType::SkSkbStreamParser),
        ),
        (
            "p_sk_skb_verdict",
            "sk_skb/stream_verdict",
            Some(ProgType::SkSkb),
            Some(AttachType::SkSkbStreamVerdict),
        ),
        (
            "p_sk_msg",
            "sk_msg",
            Some(ProgType::SkMsg),
            Some(AttachType::SkMsgVerdict),
        ),
        (
            "p_sockops",
            "sockops",
            Some(ProgType::SockOps),
            Some(AttachType::CgroupSockOps),
        ),
        // Free names (cilium, iproute2) and libbpf 0.x sloppy prefixes: the user gives the type.
        ("p_cilium", "from-netdev", None, None),
        ("p_iproute2", "2/7", None, None),
        ("p_xdp_legacy", "xdp_legacy_name", None, None),
    ];
    for &(name, section, prog_type, attach) in expect {
        let p = obj.find_program(name).unwrap();
        assert_eq!(
            (p.section.as_str(), p.prog_type, p.expected_attach_type),
            (section, prog_type, attach),
            "{name}"
        );
    }
    assert_eq!(
        obj.program("p_xdp_frags").unwrap().flags,
        BPF_F_XDP_HAS_FRAGS
    );
    let frags_devmap = obj.program("p_xdp_frags_devmap").unwrap();
    assert_eq!(
        frags_devmap.expected_attach_type,
        Some(AttachType::XdpDevmap)
    );
    assert_eq!(frags_devmap.flags, BPF_F_XDP_HAS_FRAGS);
    assert_eq!(obj.program("p_xdp").unwrap().flags, 0);
    assert_eq!(AttachType::TcxIngress.name(), "tcx_ingress");
    assert_eq!(obj.programs.len(), expect.len() + 1);
    assert!(obj.rejected.is_empty());
    assert_eq!(obj.license, "GPL");
}

#[test]
fn btf_maps_of_every_kind_with_sizes_from_btf() {
    let obj = load("maps_btf.bpf.o");
    assert_eq!(obj.license, "Dual BSD/GPL");
    let btf = obj.btf.as_ref().unwrap();
    let m = |name: &str| &obj.maps[obj.map_index(name).unwrap()];
    let shape = |name: &str| {
        let d = m(name);
        (d.map_type, d.key_size, d.value_size, d.max_entries, d.flags)
    };
    assert_eq!(shape("flows"), (MapType::Hash, 13, 16, 1024, 0)); // packed key
    assert_eq!(btf.type_name(m("flows").btf_key_type_id), "struct flow_key");
    assert_eq!(
        btf.type_name(m("flows").btf_value_type_id),
        "struct counters"
    );
    assert_eq!(shape("stats"), (MapType::Array, 4, 8, 16, 0));
    assert_eq!(btf.type_name(m("stats").btf_key_type_id), "__u32");
    assert_eq!(btf.type_name(m("stats").btf_value_type_id), "__u64");
    assert_eq!(shape("percpu"), (MapType::PercpuArray, 4, 16, 4, 0));
    assert_eq!(m("percpu").btf_value_type_id, 0, "sizes only, no types");
    assert_eq!(shape("lru"), (MapType::LruHash, 8, 4, 128, 2)); // BPF_F_NO_COMMON_LRU
    assert_eq!(shape("routes"), (MapType::LpmTrie, 8, 4, 256, 1)); // BPF_F_NO_PREALLOC
    assert_eq!(btf.type_name(m("routes").btf_key_type_id), "struct lpm_v4");
    assert_eq!(shape("events"), (MapType::Ringbuf, 0, 0, 4096, 0));
    // A perf event array without max_entries keeps 0: the runtime sizes it to its CPU count.
    assert_eq!(shape("perf"), (MapType::PerfEventArray, 4, 4, 0, 0));
    assert_eq!(shape("tx_ports"), (MapType::Devmap, 4, 8, 8, 0));
    assert_eq!(
        btf.type_name(m("tx_ports").btf_value_type_id),
        "struct bpf_devmap_val"
    );
    assert_eq!(shape("jumps"), (MapType::ProgArray, 4, 4, 4, 0));

    // Map-in-map: value size 4 (an fd), inner definition from `values`.
    assert_eq!(shape("outer_array"), (MapType::ArrayOfMaps, 4, 4, 4, 0));
    let inner = m("outer_array").inner.as_deref().unwrap();
    assert_eq!(
        (
            inner.name.as_str(),
            inner.map_type,
            inner.key_size,
            inner.value_size,
            inner.max_entries
        ),
        ("outer_array.inner", MapType::Array, 4, 4, 8)
    );
    let inner = m("outer_hash").inner.as_deref().unwrap();
    assert_eq!(
        (
            inner.map_type,
            inner.key_size,
            inner.value_size,
            inner.max_entries
        ),
        (MapType::Hash, 4, 8, 32)
    );

    // Static `values` initialisers: inner maps into the outer array, a program into the prog array.
    let (outer, jumps) = (
        obj.map_index("outer_array").unwrap(),
        obj.map_index("jumps").unwrap(),
    );
    let inits: Vec<_> = obj
        .map_inits
        .iter()
        .map(|i| (i.map, i.slot, i.target.clone()))
        .collect();
    assert_eq!(
        inits,
        vec![
            (
                outer,
                1,
                MapInitTarget::Map(obj.map_index("inner_a").unwrap())
            ),
            (
                outer,
                3,
                MapInitTarget::Map(obj.map_index("inner_b").unwrap())
            ),
            (jumps, 2, MapInitTarget::Program("tail_target".into())),
        ]
    );

    let stats = obj.map_index("stats").unwrap();
    assert_eq!(obj.map_sources[stats].section, ".maps");
    assert_eq!(obj.map_sources[stats].pinning, 1, "LIBBPF_PIN_BY_NAME");
    assert_eq!(obj.map_sources[obj.map_index("flows").unwrap()].pinning, 0);

    // Map references became `lddw rN, map_idx K` with K the map named in the source.
    let p = obj.find_program("use_maps").unwrap();
    let idx: Vec<_> = lddws(p)
        .into_iter()
        .map(|(_, imm)| match imm {
            Imm64::MapIdx(k) => obj.maps[k as usize].name.clone(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(idx, ["flows", "stats", "outer_array", "jumps", "tx_ports"]);
}

#[test]
fn legacy_maps_in_both_layouts() {
    // libbpf's 20-byte struct bpf_map_def.
    let obj = load("maps_legacy.bpf.o");
    let shapes: Vec<_> = obj
        .maps
        .iter()
        .map(|d| {
            (
                d.name.as_str(),
                d.map_type,
                d.key_size,
                d.value_size,
                d.max_entries,
                d.flags,
            )
        })
        .collect();
    assert_eq!(
        shapes,
        [
            ("counts", MapType::Array, 4, 8, 4, 0),
            ("table", MapType::Hash, 4, 16, 64, 1),
        ]
    );
    assert_eq!(obj.map_sources[1].section, "maps");
    assert_eq!(obj.map_sources[1].offset, 20);
    let p = obj.find_program("legacy_socket").unwrap();
    let maps: Vec<_> = lddws(p).into_iter().map(|(_, imm)| imm).collect();
    assert_eq!(maps, [Imm64::MapIdx(0), Imm64::MapIdx(1)]);

    // iproute2's 36-byte struct bpf_elf_map: pinning, and a map-in-map whose inner template is
    // named by id; the template (id set, inner_idx 0) also fills slot 0 of the outer map.
    let obj = load("maps_iproute2.bpf.o");
    let names: Vec<_> = obj.maps.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["acl", "inner_tmpl", "outer"], "ordered by offset");
    let acl = &obj.maps[0];
    assert_eq!(
        (acl.map_type, acl.key_size, acl.value_size, acl.max_entries),
        (MapType::Hash, 4, 4, 256)
    );
    assert_eq!(obj.map_sources[0].pinning, 2, "PIN_GLOBAL_NS");
    let outer = &obj.maps[2];
    assert_eq!(outer.map_type, MapType::ArrayOfMaps);
    assert_eq!(outer.value_size, 4, "map-in-map value size 0 means 4");
    let inner = outer.inner.as_deref().unwrap();
    assert_eq!((inner.name.as_str(), inner.value_size), ("inner_tmpl", 8));
    assert_eq!(obj.map_inits.len(), 1);
    assert_eq!((obj.map_inits[0].map, obj.map_inits[0].slot), (2, 0));
    assert_eq!(obj.map_inits[0].target, MapInitTarget::Map(1));
    let p = obj.find_program("classify").unwrap();
    assert_eq!((p.prog_type, p.section.as_str()), (None, "from-netdev"));
    let maps: Vec<_> = lddws(p).into_iter().map(|(_, imm)| imm).collect();
    assert_eq!(maps, [Imm64::MapIdx(0), Imm64::MapIdx(2)]);
}

#[test]
fn global_data_sections_become_single_entry_arrays() {
    let obj = load("globals.bpf.o");
    let shapes: Vec<_> = obj
        .maps
        .iter()
        .map(|d| {
            (
                d.name.as_str(),
                d.map_type,
                d.key_size,
                d.value_size,
                d.max_entries,
                d.flags,
            )
        })
        .collect();
    let rw = BPF_F_MMAPABLE;
    let ro = BPF_F_RDONLY_PROG | BPF_F_MMAPABLE;
    assert_eq!(
        shapes,
        [
            (".data", MapType::Array, 4, 4, 1, rw),
            (".rodata", MapType::Array, 4, 34, 1, ro),
            (".data.custom", MapType::Array, 4, 4, 1, rw),
            (".bss", MapType::Array, 4, 16, 1, rw),
            // Only string literals, no variables: read-only but not mmapable, as in libbpf.
            (
                ".rodata.str1.1",
                MapType::Array,
                4,
                10,
                1,
                BPF_F_RDONLY_PROG
            ),
        ]
    );
    let btf = obj.btf.as_ref().unwrap();
    assert_eq!(btf.type_name(obj.maps[1].btf_value_type_id), ".rodata");
    let g: Vec<_> = obj
        .globals
        .iter()
        .map(|g| (g.map, g.section.as_str(), g.read_only, g.data.as_slice()))
        .collect();
    let mut rodata = vec![0x90, 0x1f, 0, 0, 0xde, 0xad, 0xbe, 0xef];
    rodata.extend_from_slice(b"short packet %llu\0pass %u\0");
    assert_eq!(
        g,
        [
            (0, ".data", false, &[0x44, 0x33, 0x22, 0x11][..]),
            (1, ".rodata", true, &rodata[..]),
            (2, ".data.custom", false, &[7, 0, 0, 0][..]),
            (3, ".bss", false, &[0; 16][..]),
            (4, ".rodata.str1.1", true, &b"len %llu\n\0"[..]),
        ]
    );

    // References: symbol offset (port at 0, magic at 4, drops at 8 of .bss) plus the addend
    // clang leaves in imm (printk formats at 8 and 26 of .rodata, against the section symbol).
    let p = obj.find_program("globals").unwrap();
    let refs: Vec<_> = lddws(p).into_iter().map(|(_, imm)| imm).collect();
    let v = |idx, off| Imm64::MapIdxValue { idx, off };
    assert_eq!(
        refs,
        [
            v(0, 0),  // hits
            v(2, 0),  // custom
            v(3, 0),  // last_len
            v(1, 0),  // port
            v(1, 4),  // magic
            v(3, 8),  // drops
            v(1, 8),  // "short packet %llu"
            v(1, 26), // "pass %u"
            v(4, 0),  // "len %llu\n"
        ]
    );
}

#[test]
fn subprograms_are_appended_and_calls_land_on_them() {
    let obj = load("calls.bpf.o");
    let names: Vec<_> = obj.programs.iter().map(|p| p.name.as_str()).collect();
    // `in_section` is a local function with a size in a program section: a program too.
    assert_eq!(names, ["first", "in_section", "second"]);

    // first -> twice_plus_one (.text, global) -> add_one (.text, static, unrelocated call),
    // then in_section (same section, unrelocated call), in libbpf's depth-first order.
    let first = obj.find_program("first").unwrap();
    let order: Vec<_> = first
        .functions
        .iter()
        .map(|f| (f.name.as_str(), f.section.as_str(), f.slot))
        .collect();
    assert_eq!(
        order,
        [
            ("first", "xdp", 0),
            ("twice_plus_one", ".text", 6),
            ("add_one", ".text", 10),
            ("in_section", "xdp", 13)
        ]
    );
    assert_eq!(
        code_targets(first),
        [
            (1, slot_of(first, "twice_plus_one")),
            (3, slot_of(first, "in_section")),
            (7, slot_of(first, "add_one")),
        ]
    );

    // second: the bpf_loop callback (lddw of a function), then two static .text callees; the
    // subprogram shared with `first` is copied into each program.
    let second = obj.find_program("second").unwrap();
    let order: Vec<_> = second.functions.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(order, ["second", "loop_body", "square", "add_one"]);
    let targets = code_targets(second);
    assert_eq!(
        targets,
        [
            (6, slot_of(second, "loop_body")),
            (11, slot_of(second, "square")),
            (14, slot_of(second, "add_one")),
        ]
    );
    let prog = Program::new(second.insns.clone()).unwrap();
    assert!(matches!(
        prog.iter().find(|(pc, _)| *pc == 6).unwrap().1,
        Insn::LdImm64 {
            imm: Imm64::Func(_),
            ..
        }
    ));
    assert_eq!(prog.subprograms(), &[0, 18, 23, 26]);

    // The linked program computes what the C source says: ((x + 1) + x) ^ 1, masked.
    let interp = Interpreter::new(&Program::new(first.insns.clone()).unwrap());
    let mut vm = Vm::default();
    let mut ctx = [0u8; 24];
    ctx[12..16].copy_from_slice(&5u32.to_le_bytes()); // ingress_ifindex
    let mut mem = vm.memory();
    let addr = mem.map_mut(&mut ctx).unwrap();
    let out = interp.run(&mut mem, &mut NoHelpers, [addr, 0, 0, 0, 0], 1000);
    assert_eq!(out.result, Ok(((5 + 1 + 5) ^ 1) & 3));
}

#[test]
fn text_functions_load_by_name_with_a_type() {
    // A .text function of an object that has program sections is a subprogram, not a program.
    let obj = load("calls.bpf.o");
    assert!(obj.program("standalone").is_none());
    let err = obj.find_program("standalone").unwrap_err();
    assert!(
        err.to_string().contains("is a function in section '.text'"),
        "{err}"
    );
    let p = obj.function_program("standalone", ProgType::Xdp).unwrap();
    assert_eq!(
        (p.section.as_str(), p.prog_type, p.expected_attach_type),
        (".text", Some(ProgType::Xdp), None)
    );
    let tpo = obj
        .function_program("twice_plus_one", ProgType::SchedCls)
        .unwrap();
    assert_eq!(tpo.functions.len(), 2, "with its own callee");
    // A program's function loaded under its own type keeps the section's attach type.
    let second = obj.function_program("second", ProgType::Xdp).unwrap();
    assert_eq!(second.expected_attach_type, Some(AttachType::Xdp));
    assert!(matches!(
        obj.function_program("nope", ProgType::Xdp),
        Err(ObjectError::NoSuchProgram { .. })
    ));
    let err = obj.find_program("nope").unwrap_err();
    assert_eq!(
        err.to_string(),
        "no program named 'nope' in the object (programs: first, in_section, second)"
    );

    // Without any program section, .text functions are the programs, with no type.
    let obj = load("text_only.bpf.o");
    assert_eq!(obj.license, "");
    let p = obj.find_program("only_text").unwrap();
    assert_eq!((p.section.as_str(), p.prog_type), (".text", None));
    let typed = obj.function_program("only_text", ProgType::Xdp).unwrap();
    assert_eq!(typed.insns, p.insns);
    assert!(obj.maps.is_empty() && obj.globals.is_empty());
}

#[test]
fn unsupported_features_reject_only_the_programs_that_use_them() {
    // Without kernel BTF, the CO-RE program is refused with what it needs.
    let no_btf = LoadOptions {
        kernel_btf: KernelBtfSource::None,
    };
    let obj = load_object_with(&fixture("unsupported.bpf.o"), &no_btf).unwrap();
    assert_eq!(obj.programs.len(), 1);
    assert_eq!(obj.programs[0].name, "plain");
    let core = obj.find_program("core_reader").unwrap_err();
    assert_eq!(
        core.to_string(),
        "CO-RE relocation against struct task_struct (field byte offset, access 0:0) \
         in section 'kprobe/do_nanosleep' (instruction 3, symbol 'core_reader') needs the \
         kernel's BTF: no kernel BTF was given"
    );
    assert_eq!(core.section(), "kprobe/do_nanosleep");
    let kfunc = obj.find_program("kfunc_caller").unwrap_err();
    assert_eq!(
        kfunc,
        ObjectError::NeedsKernelBtf {
            feature: "kfunc call to 'bpf_fake_kfunc' (.ksyms)".into(),
            section: "tc".into(),
            insn: 1,
            symbol: "bpf_fake_kfunc".into(),
            reason: "no kernel BTF was given".into(),
        }
    );
    let rejected: Vec<_> = obj
        .rejected
        .iter()
        .map(|r| (r.name.as_str(), r.section.as_str()))
        .collect();
    assert_eq!(
        rejected,
        [
            ("core_reader", "kprobe/do_nanosleep"),
            ("kfunc_caller", "tc")
        ]
    );
    // With it, the field offset is relocated (`&task->pid` is `r1 += 12` here).
    let obj = load_object_with(&fixture("unsupported.bpf.o"), &test_kernel()).unwrap();
    let p = obj.find_program("core_reader").unwrap();
    assert!(
        p.insns.iter().any(|i| matches!(
            i,
            Insn::Alu {
                src: Source::Imm(12),
                ..
            }
        )),
        "{:?}",
        p.insns
    );
}

/// A made-up kernel: `struct task_struct { long state; int tgid; int pid; }` (pid at 12),
/// `struct sk_buff` of 232 bytes, `enum bpf_map_type { BPF_MAP_TYPE_HASH = 7 }`, the tracing
/// targets `do_nanosleep`, `btf_trace_sched_switch` and `bpf_lsm_file_open`, the kfuncs
/// `bpf_rcu_read_lock` and `bpf_rcu_read_unlock`, and the variable `int bpf_prog_active`.
fn test_kernel_btf() -> Btf {
    let int = |name: &str, size: u32, signed: bool| BtfType {
        name: name.into(),
        kind: BtfKind::Int {
            size,
            encoding: signed as u8,
            offset: 0,
            bits: (size * 8) as u8,
        },
    };
    let m = |name: &str, type_id: u32, bit_offset: u32| BtfMember {
        name: name.into(),
        type_id,
        bit_offset,
        bitfield_size: 0,
    };
    let t = |name: &str, kind: BtfKind| BtfType {
        name: name.into(),
        kind,
    };
    let p = |name: &str, type_id: u32| BtfParam {
        name: name.into(),
        type_id,
    };
    Btf::from_types(vec![
        int("long", 8, true), // [1]
        int("int", 4, true),  // [2]
        t(
            "task_struct",
            BtfKind::Struct {
                size: 16,
                members: vec![m("state", 1, 0), m("tgid", 2, 64), m("pid", 2, 96)],
            },
        ), // [3]
        t(
            "sk_buff",
            BtfKind::Struct {
                size: 232,
                members: vec![m("len", 2, 0)],
            },
        ), // [4]
        t(
            "bpf_map_type",
            BtfKind::Enum {
                size: 4,
                signed: false,
                values: vec![BtfEnumValue {
                    name: "BPF_MAP_TYPE_HASH".into(),
                    value: 7,
                }],
            },
        ), // [5]
        t("", BtfKind::Ptr { target: 0 }), // [6] void *
        t(
            "",
            BtfKind::FuncProto {
                ret: 2,
                params: vec![p("t", 6), p("mode", 2)],
            },
        ), // [7]
        t(
            "do_nanosleep",
            BtfKind::Func {
                proto: 7,
                linkage: 0,
            },
        ), // [8]
        t(
            "",
            BtfKind::FuncProto {
                ret: 0,
                params: vec![p("", 6), p("preempt", 2)],
            },
        ), // [9]
        t("", BtfKind::Ptr { target: 9 }), // [10]
        t("btf_trace_sched_switch", BtfKind::Typedef { target: 10 }), // [11]
        t(
            "",
            BtfKind::FuncProto {
                ret: 2,
                params: vec![p("file", 6)],
            },
        ), // [12]
        t(
            "bpf_lsm_file_open",
            BtfKind::Func {
                proto: 12,
                linkage: 0,
            },
        ), // [13]
        t(
            "",
            BtfKind::FuncProto {
                ret: 0,
                params: vec![],
            },
        ), // [14] void (void)
        t(
            "bpf_rcu_read_lock",
            BtfKind::Func {
                proto: 14,
                linkage: 1,
            },
        ), // [15]
        t(
            "bpf_rcu_read_unlock",
            BtfKind::Func {
                proto: 14,
                linkage: 1,
            },
        ), // [16]
        t(
            "bpf_prog_active",
            BtfKind::Var {
                target: 2,
                linkage: 1,
            },
        ), // [17]
    ])
}

fn test_kernel() -> LoadOptions {
    LoadOptions {
        kernel_btf: KernelBtfSource::Parsed(Arc::new(TargetBtf::new(test_kernel_btf(), "test"))),
    }
}

/// Immediates of the `mov`/`lddw` instructions of a program, in order.
fn immediates(p: &ObjProgram) -> Vec<i64> {
    p.insns
        .iter()
        .filter_map(|i| match i {
            Insn::Alu {
                op: AluOp::Mov,
                src: Source::Imm(v),
                ..
            } => Some(*v as i64),
            Insn::LdImm64 {
                imm: Imm64::Imm(v), ..
            } => Some(*v as i64),
            _ => None,
        })
        .collect()
}

#[test]
fn core_relocations_of_every_kind_against_a_made_up_kernel() {
    let obj = load_object_with(&fixture("core.bpf.o"), &test_kernel()).unwrap();
    // BPF_CORE_READ(t, pid): `r1 = offsetof(pid)`, added to the task pointer.
    let read = obj.find_program("read_pid").unwrap();
    assert_eq!(immediates(read)[0], 12);
    // kinds: type id (lddw), exists(tgid), size(tgid), offset(tgid), exists(no_such_field),
    // type exists x2, sizeof(sk_buff), enum value exists x2 and the value (lddw).
    let kinds = obj.find_program("kinds").unwrap();
    assert_eq!(
        immediates(kinds),
        [3, 1, 0, 1, 4, 8, 0, 1, 0, 232, 1, 0, 7],
        "{}",
        bpfsim_vm::asm::disassemble(&kinds.insns)
    );
    // A relocation in a .text function, applied where the function is linked in.
    let sub = obj.find_program("via_subprog").unwrap();
    assert_eq!(sub.functions.len(), 2);
    let callee = &sub.insns[sub.functions[1].slot..];
    assert!(
        callee.iter().any(|i| matches!(
            i,
            Insn::Alu {
                src: Source::Imm(8),
                ..
            }
        )),
        "{callee:?}"
    );
    // A read of a field the kernel lacks becomes `call 0xbad2310`, reachable only in
    // `unguarded`.
    for name in ["guarded", "unguarded"] {
        let p = obj.find_program(name).unwrap();
        assert!(
            p.insns
                .iter()
                .any(|i| matches!(i, Insn::Call(CallTarget::Helper(id)) if *id == POISON_IMM)),
            "{name}"
        );
    }
}

#[test]
fn core_relocation_errors_reject_the_program() {
    // Two flavors of task_struct with pid at different offsets: libbpf's ambiguity error.
    let mut types = test_kernel_btf().types()[1..].to_vec();
    let int = 2;
    types.push(BtfType {
        name: "task_struct___2".into(),
        kind: BtfKind::Struct {
            size: 8,
            members: vec![BtfMember {
                name: "pid".into(),
                type_id: int,
                bit_offset: 32,
                bitfield_size: 0,
            }],
        },
    });
    let opts = LoadOptions {
        kernel_btf: KernelBtfSource::Parsed(Arc::new(TargetBtf::new(
            Btf::from_types(types),
            "test",
        ))),
    };
    let obj = load_object_with(&fixture("core.bpf.o"), &opts).unwrap();
    let err = obj.find_program("read_pid").unwrap_err();
    assert!(matches!(err, ObjectError::Core { insn: 1, .. }), "{err}");
    assert!(
        err.to_string().contains("field offset ambiguity: 32 != 96"),
        "{err}"
    );
    // Programs without a task_struct relocation still load.
    assert!(obj.find_program("fentry_sleep").is_ok());
}

/// Byte offset of `needle` in `hay` (the fixtures' code is found by its bytes).
fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .expect("pattern in fixture")
}

#[test]
fn broken_objects_are_errors_with_positions() {
    assert!(matches!(
        load_object(b""),
        Err(ObjectError::NotBpf { offset: 0, .. })
    ));
    assert!(matches!(
        load_object(b"\x7fELF"),
        Err(ObjectError::NotBpf { .. })
    ));

    let good = fixture("unsupported.bpf.o");
    let mut x86 = good.clone();
    x86[18] = 62; // e_machine = EM_X86_64
    assert_eq!(
        load_object(&x86).unwrap_err().to_string(),
        "not an eBPF object (byte offset 0x12): e_machine is 62, not EM_BPF (247)"
    );
    let mut be = good.clone();
    be[5] = 2; // ELFDATA2MSB
    assert!(load_object(&be)
        .unwrap_err()
        .to_string()
        .contains("big-endian (bpfeb)"));
    let mut class32 = good.clone();
    class32[4] = 1;
    assert!(load_object(&class32)
        .unwrap_err()
        .to_string()
        .contains("64-bit"));
    assert!(matches!(
        load_object(&good[..good.len() / 2]),
        Err(ObjectError::Elf { .. })
    ));

    // `plain` is `r0 = 2; exit`. An unknown opcode in it rejects that program, naming it.
    let plain = find(&good, &[0xb7, 0, 0, 0, 2, 0, 0, 0, 0x95]);
    let mut bad_op = good.clone();
    bad_op[plain] = 0xff;
    let obj = load_object(&bad_op).unwrap();
    let err = obj.find_program("plain").unwrap_err();
    assert_eq!(
        err.to_string(),
        "function 'plain' in section 'xdp' instruction 0 (opcode 0xff): unknown opcode"
    );
    // Replacing its exit makes it fall through: the linked program is structurally invalid.
    let mut no_exit = good.clone();
    no_exit[plain + 8] = 0xb7;
    let err = load_object(&no_exit)
        .unwrap()
        .find_program("plain")
        .unwrap_err();
    assert!(matches!(err, ObjectError::Structure { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "program 'plain' (section 'xdp'): instruction 1: last insn is not an exit or jmp"
    );
}

#[test]
fn relocation_errors_name_section_instruction_and_symbol() {
    // Point the map reference of `legacy_socket` (a relocation against `counts`) at an
    // instruction that is not an lddw: the program is refused with the position.
    let good = fixture("maps_legacy.bpf.o");
    let obj = load_object(&good).unwrap();
    let p = obj.find_program("legacy_socket").unwrap();
    let (slot, _) = lddws(p)[0];
    assert_eq!(slot, 4);
    // The lddw's first slot `18 01 00 00 00 00 00 00` -> `b7 01 ...` (mov r1, 0) + a 2nd slot.
    let at = find(
        &good,
        &[0x18, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x85],
    );
    let mut bad = good.clone();
    bad[at] = 0xb7;
    bad[at + 8] = 0xb7;
    let obj = load_object(&bad).unwrap();
    let err = obj.find_program("legacy_socket").unwrap_err();
    assert_eq!(
        err.to_string(),
        "section 'socket' instruction 4: reference to 'counts': opcode 0xb7 cannot be relocated (only lddw and call)"
    );
}

#[test]
fn objects_linked_by_bpftool_load_like_clang_output() {
    // linked.o is `bpftool gen object` of globals.bpf.o and text_only.bpf.o: libbpf's static
    // linker lays sections and symbols out differently and fills in the BTF DATASEC offsets.
    let linked = load("linked.o");
    let plain = load("globals.bpf.o");
    let shape = |o: &Object| {
        o.maps
            .iter()
            .map(|m| (m.name.clone(), m.value_size, m.flags))
            .collect::<Vec<_>>()
    };
    assert_eq!(shape(&linked), shape(&plain));
    assert_eq!(linked.globals, plain.globals);
    assert_eq!(
        linked.find_program("globals").unwrap().insns,
        plain.find_program("globals").unwrap().insns
    );
    // only_text joined `.text` next to a program section: now a subprogram, loadable by name.
    assert_eq!(linked.programs.len(), 1);
    let p = linked.function_program("only_text", ProgType::Xdp).unwrap();
    assert_eq!(p.insns, load("text_only.bpf.o").programs[0].insns);
}

#[test]
fn tracing_programs_find_their_attach_targets() {
    let obj = load_object_with(&fixture("core.bpf.o"), &test_kernel()).unwrap();
    let target = |name: &str| {
        obj.find_program(name)
            .unwrap()
            .attach_target
            .clone()
            .unwrap()
    };
    // fentry/fexit: the FUNC itself, with its prototype's arguments and return value.
    for name in ["fentry_sleep", "fexit_sleep"] {
        let t = target(name);
        assert_eq!((t.btf_name.as_str(), t.btf_id), ("do_nanosleep", 8));
        let kinds: Vec<_> = t.args.iter().map(|a| (a.name.as_str(), a.kind)).collect();
        assert_eq!(
            kinds,
            [
                ("t", TracingArgKind::Pointer { to_struct: false }),
                ("mode", TracingArgKind::Scalar)
            ]
        );
        assert_eq!(t.ret.map(|r| r.type_name), Some("int".to_string()));
    }
    // tp_btf: the btf_trace_ typedef, without the prototype's leading `void *`.
    let t = target("tp_switch");
    assert_eq!(
        (t.btf_name.as_str(), t.btf_id),
        ("btf_trace_sched_switch", 11)
    );
    assert_eq!(t.args.len(), 1);
    assert_eq!(t.args[0].name, "preempt");
    assert_eq!(t.ret, None);
    // lsm: the bpf_lsm_ hook.
    let t = target("lsm_open");
    assert_eq!((t.btf_name.as_str(), t.btf_id), ("bpf_lsm_file_open", 13));
    // Programs without a BTF target have none.
    assert_eq!(obj.find_program("read_pid").unwrap().attach_target, None);
    // A target the kernel does not have, named as libbpf names it.
    let err = obj.find_program("fentry_missing").unwrap_err();
    assert_eq!(
        err.to_string(),
        "program 'fentry_missing' (section 'fentry/no_such_function_in_the_kernel'): failed to \
         find kernel BTF type ID of 'no_such_function_in_the_kernel': no function \
         'no_such_function_in_the_kernel' in test"
    );
    // Without kernel BTF, tracing programs say what they need.
    let no_btf = LoadOptions {
        kernel_btf: KernelBtfSource::None,
    };
    let obj = load_object_with(&fixture("core.bpf.o"), &no_btf).unwrap();
    let err = obj.find_program("tp_switch").unwrap_err();
    assert!(
        matches!(&err, ObjectError::NeedsKernelBtf { feature, .. } if feature == "attach target 'sched_switch' (trace_raw_tp)"),
        "{err}"
    );
}

#[test]
fn kfunc_calls_resolve_against_the_kernels_btf() {
    let obj = load_object_with(&fixture("kfunc.bpf.o"), &test_kernel()).unwrap();
    let rcu = obj.find_program("rcu").unwrap();
    let calls: Vec<_> = rcu
        .insns
        .iter()
        .filter_map(|i| match i {
            Insn::Call(t) => Some(*t),
            _ => None,
        })
        .collect();
    assert_eq!(
        calls,
        [
            CallTarget::Kfunc {
                btf_id: 15,
                module: 0
            },
            CallTarget::Kfunc {
                btf_id: 16,
                module: 0
            }
        ]
    );
    // The raw bytes are what libbpf sends: src_reg BPF_PSEUDO_KFUNC_CALL, imm the BTF id.
    let raw = rcu.to_bytes();
    assert_eq!(&raw[..8], &[0x85, 0x20, 0, 0, 15, 0, 0, 0]);
    // A flavored name finds the kernel's function, whose prototype then must agree.
    let err = obj.find_program("wrong_proto").unwrap_err().to_string();
    assert!(
        err.contains("extern (func ksym) 'bpf_rcu_read_lock___wrong': func_proto [")
            && err.contains("] incompatible with vmlinux [14]"),
        "{err}"
    );
    // A typed kernel variable: `lddw` with src_reg BPF_PSEUDO_BTF_ID and the kernel's VAR id.
    let active = obj.find_program("prog_active").unwrap();
    assert!(
        lddws(active).contains(&(
            0,
            Imm64::BtfId {
                id: 17,
                module_fd: 0
            }
        )),
        "{:?}",
        lddws(active)
    );
    assert_eq!(&active.to_bytes()[..2], &[0x18, 0x31]);
    let err = obj.find_program("missing").unwrap_err().to_string();
    assert!(
        err.contains("extern (func ksym) 'bpf_no_such_kfunc': not found in kernel BTF (test)"),
        "{err}"
    );
}

#[test]
fn kconfig_externs_live_in_a_frozen_map() {
    let obj = load_object_with(&fixture("kconfig.bpf.o"), &test_kernel()).unwrap();
    let map = obj.map_index(".kconfig").expect("a .kconfig map");
    let def = &obj.maps[map];
    assert_eq!((def.key_size, def.max_entries), (4, 1));
    assert_eq!(def.flags & BPF_F_RDONLY_PROG, BPF_F_RDONLY_PROG);
    let init = obj.globals.iter().find(|g| g.map == map).unwrap();
    assert!(init.read_only);
    // LINUX_KERNEL_VERSION: this machine's release, as KERNEL_VERSION(a, b, c).
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut nums = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b, c) = (
        nums.next().unwrap(),
        nums.next().unwrap(),
        nums.next().unwrap(),
    );
    let version = (a << 16) + (b << 8) + c.min(255);
    let p = obj.find_program("version").unwrap();
    let off = lddws(p)
        .iter()
        .find_map(|(_, imm)| match imm {
            Imm64::MapIdxValue { idx, off } if *idx as usize == map => Some(*off as usize),
            _ => None,
        })
        .expect("an lddw into .kconfig");
    assert_eq!(init.data[off..off + 4], version.to_le_bytes());
    // The made-up kernel has no __x64_sys_bpf: LINUX_HAS_SYSCALL_WRAPPER is false there.
    let ks = obj.find_program("ksys_nanosleep").unwrap();
    let flag = lddws(ks)
        .iter()
        .find_map(|(_, imm)| match imm {
            Imm64::MapIdxValue { idx, off } if *idx as usize == map => Some(*off as usize),
            _ => None,
        })
        .expect("BPF_KSYSCALL reads LINUX_HAS_SYSCALL_WRAPPER");
    assert_eq!(init.data[flag], 0);
    // CONFIG_ values are not read: only the program using one is refused.
    let err = obj.find_program("config_value").unwrap_err().to_string();
    assert!(
        err.contains("Kconfig extern 'CONFIG_BPF_SYSCALL' (.kconfig; kernel config values"),
        "{err}"
    );
}
