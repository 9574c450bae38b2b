//! The bpf(2) wrapper against the live kernel. Each test skips (passes with a `skipped:` line)
//! where bpf(2) is unavailable.

use bpfsim_kernel::{xdp, Errno, KernelBpf, ProgType};
use bpfsim_vm::isa::{encode, AluOp, Insn, Reg, Source, Width};

fn kernel() -> Option<KernelBpf> {
    match KernelBpf::probe() {
        Ok(k) => Some(k),
        Err(u) => {
            println!("skipped: {u}");
            None
        }
    }
}

fn mov_r0(imm: i32) -> Insn {
    Insn::Alu {
        width: Width::W64,
        op: AluOp::Mov,
        dst: Reg::R0,
        src: Source::Imm(imm),
    }
}

#[test]
fn load_and_test_run() {
    let Some(bpf) = kernel() else { return };
    let prog = bpf
        .prog_load(
            ProgType::XDP,
            &encode(&[mov_r0(xdp::DROP as i32), Insn::Exit]),
            "GPL",
            1,
        )
        .expect("r0 = XDP_DROP; exit loads");
    let packet: Vec<u8> = (0..60).collect();
    let out = bpf.test_run(&prog, &packet, 3).expect("test run");
    assert_eq!(out.retval, xdp::DROP);
    assert_eq!(out.data_out, packet);

    // A socket filter returns the number of bytes to keep.
    let prog = bpf
        .prog_load(
            ProgType::SOCKET_FILTER,
            &encode(&[mov_r0(-1), Insn::Exit]),
            "GPL",
            0,
        )
        .expect("socket filter loads");
    let out = bpf.test_run(&prog, &packet, 0).expect("test run");
    assert_eq!(out.retval, u32::MAX);
}

#[test]
fn load_failure_carries_the_verifier_log() {
    let Some(bpf) = kernel() else { return };
    // `exit` with r0 never written.
    let err = bpf
        .prog_load(ProgType::XDP, &encode(&[Insn::Exit]), "GPL", 1)
        .expect_err("r0 is not initialised");
    assert_eq!(err.errno, Errno::EACCES, "{err}");
    assert_eq!(err.reason(), Some("R0 !read_ok"), "log:\n{}", err.log);
    // Not a whole number of instructions: refused before the syscall.
    let err = bpf
        .prog_load(ProgType::XDP, &[0x95, 0, 0], "GPL", 1)
        .expect_err("3 bytes");
    assert_eq!(err.errno, Errno::EINVAL);
}

#[test]
fn array_map_roundtrip() {
    let Some(bpf) = kernel() else { return };
    let map = bpf.array_map_create(5, 3).expect("create");
    assert_eq!((map.value_size(), map.max_entries()), (5, 3));
    assert_eq!(bpf.array_map_lookup(&map, 2).unwrap(), vec![0; 5]);
    bpf.array_map_update(&map, 2, b"hello").unwrap();
    assert_eq!(bpf.array_map_lookup(&map, 2).unwrap(), b"hello");
    assert_eq!(bpf.array_map_lookup(&map, 0).unwrap(), vec![0; 5]);
    assert_eq!(bpf.array_map_lookup(&map, 3), Err(Errno::ENOENT));
    assert_eq!(bpf.array_map_update(&map, 3, b"hello"), Err(Errno::E2BIG));
    assert_eq!(bpf.array_map_update(&map, 0, b"hi"), Err(Errno::EINVAL));
}

#[test]
fn conformance_wrapper_passes_memory_and_64_bit_r0() {
    let Some(bpf) = kernel() else { return };
    // lddw r0, 0x8877665544332211; exit
    let prog = encode(&[
        Insn::LdImm64 {
            dst: Reg::R0,
            imm: bpfsim_vm::isa::Imm64::Imm(0x8877_6655_4433_2211),
        },
        Insn::Exit,
    ]);
    assert_eq!(
        bpf.run_conformance_in_kernel(&prog, &[]),
        Ok(0x8877_6655_4433_2211)
    );
    // r0 = r2 (the memory length), then r0 += *(u8 *)(r1 + 2)
    let prog = encode(&[
        Insn::Alu {
            width: Width::W64,
            op: AluOp::Mov,
            dst: Reg::R0,
            src: Source::Reg(Reg::R2),
        },
        Insn::Load {
            size: bpfsim_vm::isa::Size::B,
            signed: false,
            dst: Reg::R1,
            src: Reg::R1,
            off: 2,
        },
        Insn::Alu {
            width: Width::W64,
            op: AluOp::Add,
            dst: Reg::R0,
            src: Source::Reg(Reg::R1),
        },
        Insn::Exit,
    ]);
    assert_eq!(
        bpf.run_conformance_in_kernel(&prog, &[0xaa, 0xbb, 0x11, 0xcc, 0xdd]),
        Ok(5 + 0x11)
    );
    // Reading past the memory is the verifier's business.
    let err = bpf
        .run_conformance_in_kernel(&prog, &[0xaa, 0xbb])
        .expect_err("out of bounds");
    assert!(
        err.log
            .contains("invalid access to map value, value_size=2 off=2 size=1"),
        "{err}\n{}",
        err.log
    );
}

#[cfg(target_os = "linux")]
mod maps {
    use super::{encode, kernel, mov_r0, Insn};
    use bpfsim_kernel::{possible_cpus, Errno, MapSpec, ProgSpec, ProgType};
    use bpfsim_vm::isa::{Imm64, Reg};

    fn spec(map_type: u32, value_size: u32, max_entries: u32) -> MapSpec {
        MapSpec {
            map_type,
            key_size: 4,
            value_size,
            max_entries,
            name: "bpfsim_test".into(),
            ..MapSpec::default()
        }
    }

    #[test]
    fn hash_map_flags_and_errnos() {
        let Some(bpf) = kernel() else { return };
        let m = bpf.map_create(&spec(1, 8, 2), None).expect("hash map");
        let k = |i: u32| i.to_le_bytes();
        m.update(&k(1), &7u64.to_le_bytes(), 1)
            .expect("BPF_NOEXIST on a new key");
        assert_eq!(m.update(&k(1), &8u64.to_le_bytes(), 1), Err(Errno(17))); // EEXIST
        assert_eq!(m.update(&k(2), &8u64.to_le_bytes(), 2), Err(Errno::ENOENT)); // BPF_EXIST
        m.update(&k(2), &9u64.to_le_bytes(), 0).unwrap();
        assert_eq!(m.update(&k(3), &1u64.to_le_bytes(), 0), Err(Errno(7))); // E2BIG: full
        let mut keys = m.keys().unwrap();
        keys.sort();
        assert_eq!(keys, vec![k(1).to_vec(), k(2).to_vec()]);
        assert_eq!(
            m.lookup(&k(2)).unwrap(),
            Some(vec![9u64.to_le_bytes().to_vec()])
        );
        m.delete(&k(2)).unwrap();
        assert_eq!(m.lookup(&k(2)).unwrap(), None);
        assert_eq!(m.delete(&k(2)), Err(Errno::ENOENT));
        // A key of the wrong size never reaches the kernel.
        assert_eq!(m.lookup(&[0u8; 3]), Err(Errno::EINVAL));
    }

    #[test]
    fn percpu_values_and_freeze() {
        let Some(bpf) = kernel() else { return };
        let m = bpf.map_create(&spec(6, 4, 1), None).expect("percpu array");
        assert_eq!(m.value_count(), possible_cpus());
        m.update(&0u32.to_le_bytes(), &5u32.to_le_bytes(), 0)
            .unwrap();
        let v = m.lookup(&0u32.to_le_bytes()).unwrap().unwrap();
        assert_eq!(v, vec![5u32.to_le_bytes().to_vec(); possible_cpus()]);

        let ro = bpf.map_create(&spec(2, 4, 1), None).unwrap();
        ro.update(&0u32.to_le_bytes(), &1u32.to_le_bytes(), 0)
            .unwrap();
        ro.freeze().unwrap();
        assert_eq!(
            ro.update(&0u32.to_le_bytes(), &2u32.to_le_bytes(), 0),
            Err(Errno::EPERM)
        );
    }

    #[test]
    fn fd_array_indexes_are_checked_before_the_kernel_reads_them() {
        let Some(bpf) = kernel() else { return };
        let m = bpf.map_create(&spec(2, 8, 1), None).unwrap();
        let load = |idx: i32, fds: &[i32]| {
            let insns = encode(&[
                Insn::LdImm64 {
                    dst: Reg::R1,
                    imm: Imm64::MapIdx(idx),
                },
                mov_r0(2),
                Insn::Exit,
            ]);
            bpf.prog_load_spec(
                &ProgSpec {
                    fd_array: fds,
                    ..ProgSpec::new(ProgType::XDP, &insns, "GPL")
                },
                1,
            )
            .map(|_| ())
        };
        load(0, &[m.raw_fd()]).expect("map index 0 of a 1-map fd_array");
        let e = load(1, &[m.raw_fd()]).unwrap_err();
        assert_eq!(e.errno, Errno::EINVAL);
        assert!(
            e.log.contains("map index 1 is outside fd_array"),
            "{}",
            e.log
        );
    }
}
