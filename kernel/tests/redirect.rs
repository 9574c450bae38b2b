//! `bpf_redirect_map` and `bpf_redirect` against the live kernel: the same return value for
//! each map kind, key and flags, on empty maps and on a devmap holding the loopback device.

use bpfsim_helpers::maps::MapId;
use bpfsim_helpers::run::{Input, Runner, MAP_HANDLE_BASE};
use bpfsim_helpers::Env;
use bpfsim_kernel::{KernelBpf, KernelMap, MapSpec, ProgType};
use bpfsim_vm::asm::assemble;
use bpfsim_vm::isa::{encode, Imm64, Insn};
use bpfsim_vm::spec::{MapDef, MapType};
use bpfsim_vm::Program;

const PACKET: [u8; 64] = [0x11; 64];

/// `r0 = bpf_redirect_map(map, key, flags)` with the map's handle `map` (a file descriptor in
/// the kernel, a simulator handle here).
fn redirect_map(map: u64, key: u64, flags: u64) -> Vec<Insn> {
    assemble(&format!(
        "lddw %r1, {map:#x}\nlddw %r2, {key:#x}\nlddw %r3, {flags:#x}\ncall 51\nexit"
    ))
    .unwrap()
}

fn kernel_load(kernel: &KernelBpf, mut insns: Vec<Insn>, fd: i32) -> bpfsim_kernel::ProgFd {
    insns[0] = match insns[0] {
        Insn::LdImm64 { dst, .. } => Insn::LdImm64 {
            dst,
            imm: Imm64::MapFd(fd),
        },
        other => other,
    };
    kernel
        .prog_load(ProgType::XDP, &encode(&insns), "GPL", 1)
        .unwrap_or_else(|e| panic!("{e}\n{}", e.log))
}

fn sim_retval(def: &MapDef, fill: Option<(u32, u32)>, insns: Vec<Insn>) -> u32 {
    let mut r = Runner::new(Env::default());
    r.set_timing(false);
    let id: MapId = r.maps.create(def).unwrap();
    if let Some((key, value)) = fill {
        r.maps
            .update(id, &key.to_le_bytes(), &value.to_le_bytes(), 0)
            .unwrap();
    }
    let prog = Program::new(insns).unwrap();
    let out = r
        .run(
            &bpfsim_vm::Interpreter::new(&prog),
            bpfsim_vm::spec::ProgType::Xdp,
            &PACKET,
            Input::default(),
        )
        .unwrap();
    assert_eq!(out.trap, None);
    out.retval as u32
}

const FLAGS: [u64; 12] = [0, 1, 2, 3, 4, 8, 9, 0x10, 0x12, 0x18, 0x20, 1 << 32];

#[test]
fn redirect_map_flags_and_misses_match_the_kernel() {
    let kernel = match KernelBpf::probe() {
        Ok(k) => k,
        Err(e) => return println!("skipped: {e}"),
    };
    let mut compared = 0;
    for (t, value_size) in [
        (MapType::Devmap, 4),
        (MapType::DevmapHash, 4),
        (MapType::Cpumap, 4),
        (MapType::Xskmap, 4),
    ] {
        let def = MapDef {
            name: "redir".into(),
            map_type: t,
            key_size: 4,
            value_size,
            max_entries: 4,
            flags: 0,
            inner: None,
            btf_key_type_id: 0,
            btf_value_type_id: 0,
        };
        let spec = MapSpec {
            map_type: t.id(),
            key_size: 4,
            value_size,
            max_entries: 4,
            name: "redir".into(),
            ..MapSpec::default()
        };
        let map: KernelMap = kernel
            .map_create(&spec, None)
            .unwrap_or_else(|e| panic!("{t:?}: {e}"));
        // The loopback device (ifindex 1) under key 1 of the devmaps: a hit. Other kinds stay
        // empty (a cpumap entry starts a kernel thread, an xskmap's needs a socket).
        let fill = matches!(t, MapType::Devmap | MapType::DevmapHash)
            .then_some((1u32, 1u32))
            .filter(|&(k, v)| map.update(&k.to_le_bytes(), &v.to_le_bytes(), 0).is_ok());
        for key in [0u64, 1, 7, 1 << 32 | 1] {
            for flags in FLAGS {
                let insns = redirect_map(MAP_HANDLE_BASE, key, flags);
                let prog = kernel_load(&kernel, insns.clone(), map.raw_fd());
                let k = kernel.test_run(&prog, &PACKET, 1).unwrap().retval;
                let ours = sim_retval(&def, fill, insns);
                assert_eq!(
                    ours, k,
                    "{t:?} (filled: {fill:?}) key {key:#x} flags {flags:#x}"
                );
                compared += 1;
            }
        }
    }
    println!("bpf_redirect_map: {compared} cases agree with the kernel");
}

#[test]
fn redirect_flags_match_the_kernel() {
    let kernel = match KernelBpf::probe() {
        Ok(k) => k,
        Err(e) => return println!("skipped: {e}"),
    };
    let mut compared = 0;
    for flags in FLAGS {
        let insns = assemble(&format!("mov %r1, 1\nlddw %r2, {flags:#x}\ncall 23\nexit")).unwrap();
        let prog = kernel
            .prog_load(ProgType::XDP, &encode(&insns), "GPL", 1)
            .unwrap_or_else(|e| panic!("{e}\n{}", e.log));
        let k = kernel.test_run(&prog, &PACKET, 1).unwrap().retval;
        let mut r = Runner::new(Env::default());
        let prog = Program::new(insns).unwrap();
        let ours = r
            .run(
                &bpfsim_vm::Interpreter::new(&prog),
                bpfsim_vm::spec::ProgType::Xdp,
                &PACKET,
                Input::default(),
            )
            .unwrap();
        assert_eq!(ours.retval as u32, k, "flags {flags:#x}");
        assert_eq!(ours.redirect.is_some(), k == 4, "flags {flags:#x}");
        compared += 1;
    }
    println!("bpf_redirect (XDP): {compared} cases agree with the kernel");
}
