//! Properties over random instructions and programs: encodings round-trip, text round-trips,
//! and nothing a user can pass in makes decoding or the interpreter panic.

use bpfsim_vm::asm::{assemble, disassemble};
use bpfsim_vm::isa::*;
use bpfsim_vm::{ConformanceHost, Interpreter, Program, Vm};
use proptest::prelude::*;

fn reg() -> impl Strategy<Value = Reg> {
    (0u8..=10).prop_map(|n| Reg::new(n).unwrap())
}

fn width() -> impl Strategy<Value = Width> {
    prop_oneof![Just(Width::W32), Just(Width::W64)]
}

fn size() -> impl Strategy<Value = Size> {
    prop_oneof![Just(Size::B), Just(Size::H), Just(Size::W), Just(Size::DW)]
}

fn source() -> impl Strategy<Value = Source> {
    prop_oneof![
        reg().prop_map(Source::Reg),
        any::<i32>().prop_map(Source::Imm)
    ]
}

fn atomic() -> impl Strategy<Value = (Size, AtomicOp)> {
    let fetch = any::<bool>();
    let rmw = prop_oneof![
        fetch.prop_map(|fetch| AtomicOp::Add { fetch }),
        fetch.prop_map(|fetch| AtomicOp::Or { fetch }),
        fetch.prop_map(|fetch| AtomicOp::And { fetch }),
        fetch.prop_map(|fetch| AtomicOp::Xor { fetch }),
        Just(AtomicOp::Xchg),
        Just(AtomicOp::CmpXchg),
    ];
    prop_oneof![
        (prop_oneof![Just(Size::W), Just(Size::DW)], rmw),
        (
            size(),
            prop_oneof![Just(AtomicOp::LoadAcquire), Just(AtomicOp::StoreRelease)]
        ),
    ]
}

fn imm64() -> impl Strategy<Value = Imm64> {
    prop_oneof![
        4 => any::<u64>().prop_map(Imm64::Imm),
        1 => any::<i32>().prop_map(Imm64::MapFd),
        1 => (any::<i32>(), any::<i32>()).prop_map(|(fd, off)| Imm64::MapValue { fd, off }),
        1 => (any::<i32>(), any::<i32>()).prop_map(|(id, module_fd)| Imm64::BtfId { id, module_fd }),
        1 => any::<i32>().prop_map(Imm64::Func),
        1 => any::<i32>().prop_map(Imm64::MapIdx),
        1 => (any::<i32>(), any::<i32>()).prop_map(|(idx, off)| Imm64::MapIdxValue { idx, off }),
    ]
}

/// Any instruction the decoder accepts.
fn insn() -> impl Strategy<Value = Insn> {
    prop_oneof![
        6 => (width(), proptest::sample::select(AluOp::ALL.to_vec()), reg(), source())
            .prop_map(|(width, op, dst, src)| Insn::Alu { width, op, dst, src }),
        1 => (width(), reg()).prop_map(|(width, dst)| Insn::Neg { width, dst }),
        1 => (width(), reg(), reg(), size()).prop_filter_map("movsx widths", |(width, dst, src, from)| {
            let ok = match width {
                Width::W64 => from != Size::DW,
                Width::W32 => matches!(from, Size::B | Size::H),
            };
            ok.then_some(Insn::MovSx { width, dst, src, from })
        }),
        1 => (reg(), prop_oneof![Just(Endian::Le), Just(Endian::Be), Just(Endian::Swap)],
              prop_oneof![Just(16u8), Just(32), Just(64)])
            .prop_map(|(dst, order, bits)| Insn::Endian { dst, order, bits }),
        2 => (reg(), imm64()).prop_map(|(dst, imm)| Insn::LdImm64 { dst, imm }),
        1 => (prop_oneof![Just(None), reg().prop_map(Some)], prop_oneof![Just(Size::B), Just(Size::H), Just(Size::W)], any::<i32>())
            .prop_map(|(r, size, imm)| Insn::LoadPacket {
                mode: r.map_or(PacketMode::Abs, PacketMode::Ind), size, imm }),
        3 => (size(), any::<bool>(), reg(), reg(), any::<i16>()).prop_map(|(size, signed, dst, src, off)| {
            Insn::Load { size, signed: signed && size != Size::DW, dst, src, off }
        }),
        3 => (size(), reg(), any::<i16>(), source()).prop_map(|(size, dst, off, src)| Insn::Store { size, dst, off, src }),
        1 => (atomic(), reg(), reg(), any::<i16>())
            .prop_map(|((size, op), dst, src, off)| Insn::Atomic { size, op, dst, src, off }),
        1 => any::<i16>().prop_map(|off| Insn::Ja { off }),
        1 => any::<i32>().prop_map(|off| Insn::Gotol { off }),
        4 => (width(), proptest::sample::select(Cond::ALL.to_vec()), reg(), source(), any::<i16>())
            .prop_map(|(width, cond, dst, src, off)| Insn::Jmp { width, cond, dst, src, off }),
        1 => prop_oneof![
            any::<i32>().prop_map(CallTarget::Helper),
            any::<i32>().prop_map(CallTarget::Local),
            (any::<i32>(), any::<i16>()).prop_map(|(btf_id, module)| CallTarget::Kfunc { btf_id, module }),
        ].prop_map(Insn::Call),
        1 => reg().prop_map(|reg| Insn::Callx { reg }),
        1 => Just(Insn::Exit),
    ]
}

/// A program whose jumps and calls land on instruction starts inside it, ending in `exit`, so
/// that most samples pass the structural checks and actually run.
fn program() -> impl Strategy<Value = Vec<Insn>> {
    (
        proptest::collection::vec(insn(), 1..40),
        proptest::collection::vec(any::<u16>(), 40),
    )
        .prop_map(|(mut insns, picks)| {
            insns.push(Insn::Exit);
            let mut starts = Vec::new();
            let mut slot = 0i64;
            for i in &insns {
                starts.push(slot);
                slot += i.slots() as i64;
            }
            for (i, insn) in insns.iter_mut().enumerate() {
                let to = starts[picks[i % picks.len()] as usize % starts.len()];
                let off = to - starts[i] - 1;
                // Most memory accesses go to the stack, so that runs get past their first access.
                let stack_off = -1 - (picks[(i + 1) % picks.len()] % 512) as i16;
                let on_stack = picks[(i + 2) % picks.len()] % 4 != 0;
                match insn {
                    Insn::Load {
                        src: base, off: o, ..
                    }
                    | Insn::Store {
                        dst: base, off: o, ..
                    } if on_stack => {
                        *base = Reg::FP;
                        *o = stack_off;
                    }
                    Insn::Atomic {
                        dst,
                        src,
                        off: o,
                        op,
                        ..
                    } if on_stack => {
                        if *op == AtomicOp::LoadAcquire {
                            *src = Reg::FP
                        } else {
                            *dst = Reg::FP
                        }
                        *o = stack_off;
                    }
                    Insn::Ja { off: o } | Insn::Jmp { off: o, .. } => *o = off as i16,
                    Insn::Gotol { off: o } => *o = off as i32,
                    Insn::Call(CallTarget::Local(o)) => *o = off as i32,
                    Insn::LdImm64 {
                        imm: Imm64::Func(o),
                        ..
                    } => *o = off as i32,
                    _ => {}
                }
            }
            insns
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn encode_then_decode_is_identity(i in insn()) {
        let bytes = encode(&[i]);
        prop_assert_eq!(bytes.len(), 8 * i.slots());
        prop_assert_eq!(decode(&bytes).unwrap(), vec![i]);
    }

    #[test]
    fn decode_then_encode_is_identity(raw in proptest::collection::vec(any::<u8>(), 0..128)) {
        let whole = &raw[..raw.len() / 8 * 8];
        if let Ok(insns) = decode(whole) {
            prop_assert_eq!(encode(&insns), whole.to_vec());
        }
    }

    #[test]
    fn assemble_disassemble_round_trip(p in program()) {
        let text = disassemble(&p);
        let back = assemble(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(back, p);
    }
}

fn run_any(bytes: &[u8]) {
    if let Ok(prog) = Program::from_bytes(bytes) {
        let interp = Interpreter::new(&prog);
        let mut vm = Vm::default();
        vm.budget = 2_000;
        let mut mem = [0x5au8; 64];
        let first = vm.run_with_memory(&interp, &mut ConformanceHost, &mut mem);
        let mut mem2 = [0x5au8; 64];
        let again = vm.run_with_memory(&interp, &mut ConformanceHost, &mut mem2);
        assert_eq!(first, again, "runs are deterministic");
        assert_eq!(mem, mem2);
        assert!(first.insns <= 2_000);
    }
}

/// Regression (found by `random_programs_never_panic`): a pointer forged into a frame the run
/// never entered (`r10 ^= r1`, a raw run's memory being region 9, lands in frame 7's region),
/// written through there by an atomic that also loads `r10`; the next run read what the first
/// wrote, so two runs of one program trapped at different addresses.
#[test]
fn a_frame_written_through_a_forged_pointer_is_clean_for_the_next_run() {
    let r = |n| Reg::new(n).unwrap();
    let p = vec![
        Insn::Load {
            size: Size::B,
            signed: false,
            dst: r(2),
            src: r(10),
            off: -1,
        },
        Insn::Jmp {
            width: Width::W32,
            cond: Cond::Gt,
            dst: r(0),
            src: Source::Reg(r(0)),
            off: -2,
        },
        Insn::Alu {
            width: Width::W32,
            op: AluOp::Add,
            dst: r(2),
            src: Source::Reg(r(0)),
        },
        Insn::Alu {
            width: Width::W64,
            op: AluOp::Xor,
            dst: r(10),
            src: Source::Reg(r(1)),
        },
        Insn::Atomic {
            size: Size::W,
            op: AtomicOp::Xor { fetch: true },
            dst: r(10),
            src: r(10),
            off: -4,
        },
        Insn::Load {
            size: Size::B,
            signed: false,
            dst: r(0),
            src: r(10),
            off: -218,
        },
        Insn::Exit,
    ];
    run_any(&encode(&p));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    /// Arbitrary bytes: decoding returns Ok or an error, never panics; whatever loads, runs.
    #[test]
    fn arbitrary_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(&raw);
        run_any(&raw);
    }

    /// Structured random programs reach the interpreter far more often than random bytes do.
    #[test]
    fn random_programs_never_panic(p in program()) {
        run_any(&encode(&p));
    }
}

/// The program generator is only useful if most samples get past the loader and run for a while.
#[test]
fn generated_programs_mostly_load_and_run() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut loaded, mut ran_long) = (0, 0);
    for _ in 0..1000 {
        let p = program().new_tree(&mut runner).unwrap().current();
        if let Ok(prog) = Program::new(p) {
            loaded += 1;
            let mut vm = Vm::default();
            vm.budget = 2_000;
            let out = vm.run_with_memory(
                &Interpreter::new(&prog),
                &mut ConformanceHost,
                &mut [0u8; 64],
            );
            if out.insns >= 5 {
                ran_long += 1;
            }
        }
    }
    eprintln!("loaded {loaded}/1000, ran >= 5 insns: {ran_long}");
    assert!(
        loaded >= 300,
        "only {loaded} of 1000 generated programs loaded"
    );
    assert!(
        ran_long >= 100,
        "only {ran_long} ran 5 instructions or more"
    );
}
