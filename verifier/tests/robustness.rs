//! The verifier never panics or hangs, whatever the bytecode: arbitrary decodable programs, and
//! structured random ones that reach deep into do_check.

use bpfsim_verifier::{verify, MapInfo, Options};
use bpfsim_vm::asm::assemble;
use bpfsim_vm::isa::decode;
use bpfsim_vm::spec::{MapType, ProgType};
use proptest::prelude::*;

fn opts(t: ProgType) -> Options {
    let mut o = Options::new(t);
    o.limit = 20_000;
    o.maps = vec![MapInfo {
        name: "m".into(),
        map_type: MapType::Hash,
        key_size: 4,
        value_size: 8,
        max_entries: 4,
        rdonly_prog: false,
        frozen: false,
        btf: false,
        spin_lock: None,
        data: None,
    }];
    o
}

const TYPES: [ProgType; 4] = [
    ProgType::Xdp,
    ProgType::SchedCls,
    ProgType::SocketFilter,
    ProgType::Kprobe,
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 8..256), t in 0usize..4) {
        let len = bytes.len() / 8 * 8;
        if let Ok(insns) = decode(&bytes[..len]) {
            let v = verify(&insns, &opts(TYPES[t]));
            prop_assert!(v.accepted || v.error.is_some());
            prop_assert!(v.processed <= 20_001);
        }
    }

    #[test]
    fn structured_programs_never_panic(
        ops in proptest::collection::vec((0u8..14, 0u8..11, 0u8..11, -64i32..64), 1..40),
        t in 0usize..4,
    ) {
        // Instructions that touch the stack, the context, maps, packets and branches.
        let mut src = String::new();
        for (k, (op, a, b, imm)) in ops.iter().enumerate() {
            let (a, b) = (a % 10, b % 11);
            let line = match op {
                0 => format!("mov %r{a}, {imm}"),
                1 => format!("add %r{a}, %r{b}"),
                2 => format!("ldxw %r{a}, [%r{b}+{}]", (imm & !3).abs() % 32),
                3 => format!("stxdw [%r10-{}], %r{a}", 8 * (1 + imm.unsigned_abs() % 8)),
                4 => format!("ldxdw %r{a}, [%r10-{}]", 8 * (1 + imm.unsigned_abs() % 8)),
                5 => format!("jgt %r{a}, %r{b}, +{}", imm.unsigned_abs() % 3),
                6 => format!("jeq %r{a}, {imm}, +1"),
                7 => "call 1".to_string(),
                8 => "lddw %r1, map_idx 0".to_string(),
                9 => format!("mov %r2, %r10\nadd %r2, -{}", 4 + imm.unsigned_abs() % 8),
                10 => format!("and %r{a}, {}", imm & 0x3f),
                11 => format!("ldxb %r{a}, [%r{b}+{}]", imm.unsigned_abs() % 16),
                12 => format!("lsh %r{a}, {}", imm.unsigned_abs() % 64),
                _ => if k % 2 == 0 { "ja +0".to_string() } else { format!("sub %r{a}, %r{b}") },
            };
            src.push_str(&line);
            src.push('\n');
        }
        src.push_str("mov %r0, 0\nexit\n");
        if let Ok(insns) = assemble(&src) {
            let v = verify(&insns, &opts(TYPES[t]));
            prop_assert!(v.accepted || v.error.is_some());
        }
    }
}

#[test]
fn runaway_exploration_stops_at_the_limit() {
    // 2^40 paths: every branch doubles them, with nothing to prune (r6 keeps changing, and
    // the last branch, decided by r6's value, makes r6 precise on every path).
    let mut src = String::from("mov %r6, 0\n");
    for _ in 0..40 {
        src.push_str("call 7\njgt %r0, 100, +1\nadd %r6, 1\nlsh %r6, 1\n");
    }
    src.push_str("jeq %r6, -1, +0\nmov %r0, %r6\nexit\n");
    let mut o = Options::new(ProgType::Xdp);
    o.limit = 100_000;
    let v = verify(&assemble(&src).unwrap(), &o);
    assert_eq!(
        v.error.as_deref(),
        Some("BPF program is too large. Processed 100001 insn")
    );
}

/// Regression: a helper reading more than 8 bytes of a frozen map (a printk format in
/// `.rodata`) went through the constant-load path and panicked.
#[test]
fn helper_reads_of_frozen_maps_do_not_panic() {
    let mut o = Options::new(ProgType::Xdp);
    o.maps = vec![MapInfo {
        name: ".rodata".into(),
        map_type: MapType::Array,
        key_size: 4,
        value_size: 16,
        max_entries: 1,
        rdonly_prog: true,
        frozen: true,
        btf: false,
        spin_lock: None,
        data: Some(b"hello %d\n\0\0\0\0\0\0\0".to_vec()),
    }];
    let src = "lddw %r1, map_idx_value 0, 0\nmov %r2, 16\nmov %r3, 1\ncall 6\nmov %r0, 0\nexit";
    let v = verify(&assemble(src).unwrap(), &o);
    assert!(v.accepted, "{:?}", v.error);
    // And a plain load of the constant is known: the branch on it is decided.
    let src = "lddw %r1, map_idx_value 0, 0\nldxb %r2, [%r1+0]\nmov %r0, 0\njeq %r2, 0x68, +1\nldxdw %r0, [%r0+0]\nexit";
    let v = verify(&assemble(src).unwrap(), &o);
    assert!(v.accepted, "the dead branch is not checked: {:?}", v.error);
}
